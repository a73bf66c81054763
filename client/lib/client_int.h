/*
 * libdynostore internals shared between the files of client/lib/ (dyno__ names). Not installed.
 *
 * client.c   life cycle, options, the one HTTP request engine over libcurl, error mapping
 * objects.c  put, get, exists, evict, meta
 * catalogs.c catalogs, listing, containers, healthz, login, whoami
 * identity.c users and API tokens
 * admin.c    healing administration
 * subscribe.c events over MQTT
 */
#ifndef DYNO_CLIENT_INT_H
#define DYNO_CLIENT_INT_H
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dynostore/client.h>

#include "buf.h"
#include "rest.h"

#define DYNO__ERRMSG_MAX 512
#define DYNO__ERRBODY_MAX (64u * 1024u) /* an error body beyond this is cut (not an error) */
#define DYNO__URL_MAX 4096

struct dyno_client {
    CURL *curl;
    char *base;  /* gateway URL without the trailing '/' */
    char *token; /* NULL when none */
    char *cafile;
    long connect_ms, total_ms, idle_ms;
    dyno_client_progress_fn progress;
    void *progress_arg;
    char errmsg[DYNO__ERRMSG_MAX];
};

/* One request. Zero it, then fill what applies. */
struct dyno__req {
    const char *method;       /* "GET", "POST", "PUT", "DELETE", "HEAD" */
    const char *path;         /* absolute path with query, already escaped */
    const char *content_type; /* of the body, or NULL */
    /* body: from memory (body, body_len), or streamed (read_fn, read_size -1 = chunked) */
    const void *body;
    size_t body_len;
    bool has_body;
    dyno_client_read_fn read_fn;
    void *read_arg;
    int64_t read_size;
    /* 2xx response body: streamed to write_fn, else collected in resp (bounded by its max) */
    dyno_client_write_fn write_fn;
    void *write_arg;
    struct dyno_buf *resp;
    const char *range;     /* value of a Range header, or NULL */
    const char *extra_hdr; /* one more "Name: value" header, or NULL */
    bool progress;         /* report progress through the client's callback */
};

/* What came back. */
struct dyno__resp {
    long status;
    int64_t content_length; /* -1 unknown */
    char etag[72];          /* unquoted, "" when absent */
    char sha_hdr[72];       /* X-Dyno-Sha256, "" when absent */
};

/*
 * Runs r. Returns 0 for a 2xx answer; else the mapped error, with c->errmsg set from the
 * error body or the transport failure. out (may be NULL) gets the status and headers.
 */
int dyno__request(dyno_client *c, const struct dyno__req *r, struct dyno__resp *out);

/* GET/POST/... expecting a JSON object answer (bounded by DYNO_CLIENT_JSON_MAX). body may be
 * NULL (no body). *out may be NULL (answer dropped). */
int dyno__json_call(dyno_client *c, const char *method, const char *path, const cJSON *body, cJSON **out);

/* The whole of a public call that only reads one JSON document (catalog list, whoami, ...):
 * DYNO_EINVAL without c or out; else clears the message and GETs path into *out (the
 * caller's). */
int dyno__json_get(dyno_client *c, const char *path, cJSON **out);

/* *dst = a malloc'd copy (the caller's) of the string member name of the answer doc.
 * DYNO_EPROTO ("the gateway's <answer> has no <name>") when it is absent or empty, DYNO_ENOMEM. */
int dyno__json_strdup(dyno_client *c, const cJSON *doc, const char *name, const char *answer, char **dst);

/* Zeroes the string member name of o (a password or a token) before o is freed. o may be NULL. */
void dyno__json_wipe(cJSON *o, const char *name);

/* The gateway's bare "not found" says little: when rc is DYNO_ENOTFOUND with that message,
 * the message becomes "<what> <name> not found". Returns rc. */
int dyno__notfound(dyno_client *c, int rc, const char *what, const char *name);

/* Sets the message of the current failure and returns err. */
int dyno__fail(dyno_client *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Clears the message at the start of a public call. */
void dyno__begin(dyno_client *c);

/* The path of a REST route (lib/rest.h, the grammar the gateway parses with) of kind for
 * catalog (and principal, for a share; may be NULL), appended to b. 0, or a DYNO_E* with the
 * message set (a bad catalog or principal, a path too long). */
int dyno__catalog_path(dyno_client *c, enum dyno_rest_kind kind, const char *catalog, const char *principal,
                       struct dyno_buf *b);

/* Appends s percent-encoded (RFC 3986 unreserved kept) to b. 0 or DYNO_ETOOBIG/ENOMEM. */
int dyno__escape(struct dyno_buf *b, const char *s);
#endif
