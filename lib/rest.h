/*
 * The request grammar of the gateway's REST API (SPEC §4, docs/protocol.md §9): routes, query
 * values and the request headers the gateway reads. Pure functions, no I/O and no MHD, so
 * that the gateway parses, the clients format and the fuzzer (tests/fuzz/fuzz_rest.c) checks
 * one and the same grammar.
 *
 * Routes. A path is split at '/', and each segment is percent-decoded on its own, so an
 * escaped '/' stays inside its segment (and then fails the name rules) instead of changing
 * the route. Catalog routes have two forms (docs/protocol.md §9).
 *
 * The "~" form, canonical (the formatter writes it, the clients send it), reaches every
 * catalog: the catalog path is every segment after /v1/catalogs/ up to the segment "~", and
 * what follows "~" names the catalog's sub-resource:
 *
 *   /v1/catalogs/<owner>/<path>/~                     the catalog itself
 *   /v1/catalogs/<owner>/<path>/~/objects             its objects (list, put)
 *   /v1/catalogs/<owner>/<path>/~/shares              its shares (add)
 *   /v1/catalogs/<owner>/<path>/~/shares/<principal>  one share (remove): a user, or an org
 *                                                     path with its '/' escaped as %2F
 *   /v1/catalogs/<owner>/<path>/~/subscription        the caller's subscription
 *
 * "~" is outside the alphabet of names ([A-Za-z0-9._-]), so no catalog can be named like it.
 *
 * The SPEC form (SPEC §4, kept because users and scripts rely on it) has no "~" and reserved
 * words instead: a last segment "objects", "shares" or "subscription" is that sub-resource of
 * the catalog before it, a second-to-last segment "shares" is a share of the catalog before it
 * (so /v1/catalogs/o/a/shares/x is the share x of o/a), and otherwise the whole path is the
 * catalog. Parsed so, the catalog never has a reserved segment (DYNO_EINVAL otherwise): no new
 * catalog may have one (dyno_rest_catalog_creatable), and one created before this rule is
 * reached with the "~" form. A path is therefore one route in either form, and a SPEC-form path
 * is the same route as its "~" form.
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

/* Why a new catalog with a reserved segment is refused: the message clients get. */
#define DYNO_REST_RESERVED_WHY                                                                               \
    "objects, shares and subscription are reserved words of REST paths: no new catalog may have "            \
    "a segment so named"

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
    DYNO_REST_KEYS,                 /* /v1/keys (S3 access keys) */
    DYNO_REST_KEY,                  /* /v1/keys/<access key id>: name */
    DYNO_REST_KIND_COUNT
};

/* A parsed route. Only the fields its kind names are set; the others are "". */
struct dyno_rest_route {
    enum dyno_rest_kind kind;
    char catalog[DYNO_CATALOG_MAX + 1]; /* a valid catalog path */
    char id[DYNO_KEY_LEN + 1];          /* an object key or a token id (32 lowercase hex) */
    char name[DYNO_ACL_ORG_MAX + 1];    /* a share's principal (segment or org path), a container id,
                                         * an access key id */
    bool spec_form; /* catalog routes: the path had no "~" segment (the SPEC form); not formatted */
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
 * %2F); a catalog route always in the "~" form, so that it reaches every catalog. Parsing the
 * result gives r back, with spec_form false. 0; DYNO_EINVAL when r is not a route or a field its
 * kind uses is not valid; DYNO_ETOOBIG when cap is too small.
 */
int dyno_rest_route_format(const struct dyno_rest_route *r, char *out, size_t cap);

/* Whether a decoded path segment is one of the reserved words "objects", "shares",
 * "subscription" (exact bytes). */
bool dyno_rest_reserved(const char *segment);

/*
 * Whether a new catalog may be created at path: a valid catalog with no reserved segment.
 * 0; DYNO_EINVAL with *why (may be NULL) a static message for the client. Only creation
 * applies it: a catalog created before the rule keeps working (topics, events, ACLs, REST
 * through "~"), so dyno_valid_catalog() stays as it was.
 */
int dyno_rest_catalog_creatable(const char *path, const char **why);

/* The name of a kind, for logs and tests ("catalog.share"); "none" for anything else. */
const char *dyno_rest_kind_name(enum dyno_rest_kind kind);

/* ?limit=: strict decimal 1..DYNO_REST_LIMIT_MAX. 0 or DYNO_EINVAL. */
int dyno_rest_parse_limit(const char *v, int *out);
/* A boolean query flag: true for "1", "true" and "yes"; anything else is false. */
bool dyno_rest_flag(const char *v);
/* X-Dyno-Resilience "k,m": strict decimals, 1 <= k <= DYNO_EC_MAX_K, 0 <= m <= DYNO_EC_MAX_M,
 * k + m <= DYNO_EC_MAX_K + DYNO_EC_MAX_M. 0 or DYNO_EINVAL (k, m untouched). */
int dyno_rest_parse_resilience(const char *v, int *k, int *m);
/* Percent-decodes a path segment in place ('+' stays '+'); DYNO_EINVAL on bad escapes or an
 * embedded NUL (%00), and s is then untouched. */
int dyno_url_decode(char *s);
/* The one decimal parser of the tree (HTTP headers, query values, Range, config-like strings):
 * v[0..n) is one or more ASCII digits and nothing else (no sign, space or "0x"), and fits in
 * uint64_t. 0 with *out set, or DYNO_EINVAL with *out untouched. */
int dyno_rest_dec(const char *v, size_t n, uint64_t *out);
/* Content-Length and the like: dyno_rest_dec over the whole NUL-terminated v (NULL is
 * DYNO_EINVAL). */
int dyno_rest_parse_u64(const char *v, uint64_t *out);
#endif
