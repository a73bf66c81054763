/*
 * The request grammar of the gateway's REST API (SPEC §4, docs/protocol.md §9): routes, query
 * values and the request headers the gateway reads. Pure functions, no I/O and no MHD, so
 * that the gateway parses, the clients format and the fuzzer (tests/fuzz/fuzz_rest.c) checks
 * one and the same grammar.
 *
 * Routes. A path is split at '/', and each segment is percent-decoded on its own, so an
 * escaped '/' stays inside its segment (and then fails the name rules) instead of changing
 * the route. A catalog path is every segment after /v1/catalogs/ up to the segment "~", which
 * opens the catalog's sub-resources:
 *
 *   /v1/catalogs/<owner>/<path>                       the catalog itself
 *   /v1/catalogs/<owner>/<path>/~/objects             its objects (list, put)
 *   /v1/catalogs/<owner>/<path>/~/shares              its shares (add)
 *   /v1/catalogs/<owner>/<path>/~/shares/<principal>  one share (remove): a user, or an org
 *                                                     path with its '/' escaped as %2F
 *   /v1/catalogs/<owner>/<path>/~/subscription        the caller's subscription
 *
 * "~" is outside the alphabet of names ([A-Za-z0-9._-]), so no catalog can be named like a
 * sub-resource: /v1/catalogs/o/a/shares/x is the catalog o/a/shares/x, always.
 */
#ifndef DYNO_REST_H
#define DYNO_REST_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acl.h"
#include "names.h"

#define DYNO_REST_SUB "~"        /* the segment between a catalog and its sub-resources */
#define DYNO_REST_PATH_MAX 4096  /* longer request paths are no route */
#define DYNO_REST_SEGS_MAX 16    /* /v1/catalogs/<owner>/<8 segments>/~/shares/<principal> fits */
#define DYNO_REST_LIMIT_MAX 1000 /* ?limit= of listings */

enum dyno_rest_kind {
    DYNO_REST_NONE = 0,
    DYNO_REST_HEALTHZ,              /* /healthz */
    DYNO_REST_METRICS,              /* /metrics */
    DYNO_REST_LOGIN,                /* /v1/auth/login */
    DYNO_REST_WHOAMI,               /* /v1/auth/whoami */
    DYNO_REST_USERS,                /* /v1/users */
    DYNO_REST_TOKENS,               /* /v1/tokens */
    DYNO_REST_TOKEN,                /* /v1/tokens/<id>: id */
    DYNO_REST_CATALOGS,             /* /v1/catalogs */
    DYNO_REST_CATALOG,              /* /v1/catalogs/<catalog>: catalog */
    DYNO_REST_CATALOG_OBJECTS,      /* .../~/objects: catalog */
    DYNO_REST_CATALOG_SHARES,       /* .../~/shares: catalog */
    DYNO_REST_CATALOG_SHARE,        /* .../~/shares/<principal>: catalog, name */
    DYNO_REST_CATALOG_SUBSCRIPTION, /* .../~/subscription: catalog */
    DYNO_REST_OBJECT,               /* /v1/objects/<key>: id */
    DYNO_REST_OBJECT_META,          /* /v1/objects/<key>/meta: id */
    DYNO_REST_CONTAINERS,           /* /v1/containers */
    DYNO_REST_CONTAINER_DRAIN,      /* /v1/containers/<id>/drain: name */
    DYNO_REST_ADMIN_REBUILD,        /* /v1/admin/rebuild-metadata */
    DYNO_REST_ADMIN_REPAIR,         /* /v1/admin/repair */
    DYNO_REST_EVENTS,               /* /v1/events */
    DYNO_REST_KIND_COUNT
};

/* A parsed route. Only the fields its kind names are set; the others are "". */
struct dyno_rest_route {
    enum dyno_rest_kind kind;
    char catalog[DYNO_CATALOG_MAX + 1]; /* a valid catalog path */
    char id[DYNO_KEY_LEN + 1];          /* an object key or a token id (32 lowercase hex) */
    char name[DYNO_ACL_ORG_MAX + 1];    /* a share's principal (segment or org path), a container id */
};

/*
 * Parses the path of a request (no query string) into *out (zeroed first).
 * 0; DYNO_ENOTFOUND when no route has this shape; DYNO_EINVAL when the shape is a route but a
 * part is not valid (bad percent-encoding, catalog path, key, principal or container id).
 * *why (may be NULL) gets a static message for the client either way.
 */
int dyno_rest_route_parse(const char *path, struct dyno_rest_route *out, const char **why);

/*
 * Writes the canonical path of route r into out (cap bytes, always terminated when cap > 0):
 * the fields its kind uses, each segment percent-escaped where needed ('/' of a principal as
 * %2F). Parsing the result gives r back. 0; DYNO_EINVAL when r is not a route or a field its
 * kind uses is not valid; DYNO_ETOOBIG when cap is too small.
 */
int dyno_rest_route_format(const struct dyno_rest_route *r, char *out, size_t cap);

/* The name of a kind, for logs and tests ("catalog.share"); "none" for anything else. */
const char *dyno_rest_kind_name(enum dyno_rest_kind kind);

/* ?limit=: strict decimal 1..DYNO_REST_LIMIT_MAX. 0 or DYNO_EINVAL. */
int dyno_rest_parse_limit(const char *v, int *out);
/* A boolean query flag: true for "1", "true" and "yes"; anything else is false. */
bool dyno_rest_flag(const char *v);
/* X-Dyno-Resilience "k,m": strict decimals, 1 <= k <= DYNO_EC_MAX_K, 0 <= m <= DYNO_EC_MAX_M,
 * k + m <= DYNO_EC_MAX_K + DYNO_EC_MAX_M. 0 or DYNO_EINVAL (k, m untouched). */
int dyno_rest_parse_resilience(const char *v, int *k, int *m);
/* Content-Length and the like: strict decimal, no sign or space, no overflow. 0 or DYNO_EINVAL. */
int dyno_rest_parse_u64(const char *v, uint64_t *out);
#endif
