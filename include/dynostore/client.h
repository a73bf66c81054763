/*
 * libdynostore: the C client of a DynoStore gateway (REST API v1, SPEC §4).
 *
 *   dyno_client *c;
 *   int rc = dyno_client_new("http://127.0.0.1:8080", token, &c);
 *   struct dyno_put_result r;
 *   rc = dyno_client_put_file(c, "alice/scans", "scan.raw", NULL, &r);
 *   if (rc < 0)
 *       fprintf(stderr, "put: %s\n", dyno_client_last_error(c));
 *   dyno_client_free(c);
 *
 * Conventions
 * - Every function that can fail returns int: 0 on success or a negative DYNO_E* code of
 *   <dynostore/error.h>. Errors answered by the gateway are mapped from the JSON error code
 *   of the body ({"error":{"code":"not_found",...}}), else from the HTTP status. Transport
 *   failures map to DYNO_EUNAVAIL (cannot connect), DYNO_ETIMEDOUT, DYNO_EPROTO (TLS or
 *   protocol), DYNO_EIO (connection cut short) or DYNO_ENOMEM. Every call can also return
 *   DYNO_EINVAL for bad arguments (NULL where not allowed, an invalid key or catalog path).
 *   The header of each function lists the codes with a meaning of their own for it.
 * - After any call, dyno_client_last_error() describes its failure ("" after a success):
 *   the server's error.message when there was one.
 * - Results go in out-parameters, which are only written on success. Strings and cJSON
 *   trees returned through them belong to the caller (free() / cJSON_Delete()). Arguments
 *   are borrowed for the duration of the call.
 * - Callbacks: when a function that takes a callback fails before the transfer starts,
 *   the callback is never called. A callback that returns a negative DYNO_E* code stops
 *   the transfer and the function returns that code.
 * - Threads: a dyno_client is NOT thread-safe; use one client per thread (it owns one
 *   libcurl easy handle and reuses its connections). Distinct clients may be used from
 *   distinct threads at the same time. A multi-threaded program calls
 *   dyno_client_global_init() once in main() before starting threads.
 * - The token only ever travels in the "Authorization: Bearer" header, never in a URL,
 *   and is never part of an error message. Redirects are not followed.
 */
#ifndef DYNOSTORE_CLIENT_H
#define DYNOSTORE_CLIENT_H

#include <stdint.h>
#include <stdio.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define DYNO_CLIENT_WUR __attribute__((warn_unused_result))
#else
#define DYNO_CLIENT_WUR
#endif

struct cJSON; /* <cjson/cJSON.h>; results of the JSON-returning calls */

typedef struct dyno_client dyno_client; /* opaque */

#define DYNO_CLIENT_KEY_LEN 32                     /* an object key: 32 lowercase hex characters */
#define DYNO_CLIENT_NAME_MAX 255                   /* longest object name, bytes */
#define DYNO_CLIENT_JSON_MAX (16u * 1024u * 1024u) /* cap on a JSON reply from the gateway */
#define DYNO_CLIENT_TO_END UINT64_MAX              /* length for "up to the end" in ranged gets */

/*
 * Progress of a transfer: done bytes of total (0 when unknown). Called from the thread
 * that runs the transfer, at least once per second while it runs and for the last byte.
 * Return 0 to go on, non-zero to abort it (the call then fails with DYNO_EIO).
 */
typedef int (*dyno_client_progress_fn)(void *arg, uint64_t done, uint64_t total);

/*
 * Source of a streamed upload: copy up to cap bytes into buf and set *n (0 = end of data).
 * Return 0, or a negative DYNO_E* code to abort the upload with that code.
 */
typedef int (*dyno_client_read_fn)(void *arg, void *buf, size_t cap, size_t *n);

/*
 * Sink of a streamed download: consume buf[0..len). Only the object's bytes are passed
 * (never an error body). Return 0, or a negative DYNO_E* code to abort with that code.
 */
typedef int (*dyno_client_write_fn)(void *arg, const void *buf, size_t len);

/* ---- life cycle and options ------------------------------------------------------------- */

/* Initialises libcurl's global state. Call once, before threads start. 0 or DYNO_EINTERNAL. */
int dyno_client_global_init(void);
/* Releases it; after every client has been freed. */
void dyno_client_global_cleanup(void);

/*
 * Creates a client for the gateway at gateway_url ("http://host:port" or "https://...",
 * trailing '/' ignored). token may be NULL (only healthz and login work without one).
 * Both strings are copied. *out is the caller's (dyno_client_free).
 * Returns 0, DYNO_EINVAL (NULL url or out, url not http(s), token too long), DYNO_ENOMEM.
 */
DYNO_CLIENT_WUR int dyno_client_new(const char *gateway_url, const char *token, dyno_client **out);
/* Frees the client and its connections. NULL is a no-op. */
void dyno_client_free(dyno_client *c);

/* Message of the last call's failure; "" when it succeeded. Borrowed, valid until the next
 * call on c. Never NULL (also for c == NULL). */
const char *dyno_client_last_error(const dyno_client *c);

/* Replaces the token (NULL removes it). 0, DYNO_EINVAL (too long), DYNO_ENOMEM; on failure
 * the client keeps its previous token. */
int dyno_client_set_token(dyno_client *c, const char *token);

/* CA bundle (PEM file) to verify an https gateway with, instead of the system's; NULL
 * restores the system bundle. 0, DYNO_ENOTFOUND (unreadable file), DYNO_ENOMEM. */
int dyno_client_set_cafile(dyno_client *c, const char *path);

/*
 * Timeouts in milliseconds; 0 = none. connect_ms: to establish a connection (default
 * 10000); total_ms: for a whole call (default 0: large objects take what they take);
 * idle_ms: a transfer that moves no byte for this long fails with DYNO_ETIMEDOUT
 * (default 60000, rounded up to whole seconds). 0 or DYNO_EINVAL (negative value).
 */
int dyno_client_set_timeouts(dyno_client *c, long connect_ms, long total_ms, long idle_ms);

/* Progress callback for the object transfers (put and get calls); fn NULL turns it off. */
void dyno_client_set_progress(dyno_client *c, dyno_client_progress_fn fn, void *arg);

/* ---- objects ----------------------------------------------------------------------------- */

/* Options of a put; NULL or zeroed = defaults. */
struct dyno_put_opts {
    const char *name; /* object name in the catalog (1..255 bytes); NULL = the key.
                       * An existing object of the same name is replaced atomically. */
    int k, m;         /* resilience; 0,0 = the catalog's default. k >= 1, m >= 0. */
};

/* What the gateway stored. */
struct dyno_put_result {
    char key[DYNO_CLIENT_KEY_LEN + 1];
    char name[DYNO_CLIENT_NAME_MAX + 1];
    uint64_t size;
    char sha256[65]; /* lowercase hex */
    int k, m;
};

/*
 * Puts len bytes of data into catalog ("owner/path").
 * Returns 0 with *res filled; DYNO_ENOTFOUND (no such catalog), DYNO_EUNAUTH,
 * DYNO_EFORBIDDEN (no write access), DYNO_EUNAVAIL (not enough containers online),
 * DYNO_ETOOBIG, DYNO_ENOSPC, DYNO_EPROTO (unreadable reply).
 */
DYNO_CLIENT_WUR int dyno_client_put(dyno_client *c, const char *catalog, const void *data, size_t len,
                                    const struct dyno_put_opts *opts, struct dyno_put_result *res);
/*
 * Streams an upload from read_fn. size is the exact number of bytes read_fn will give
 * (sent as Content-Length), or -1 when unknown (chunked transfer encoding).
 * Same returns as dyno_client_put, plus the callback's code.
 */
DYNO_CLIENT_WUR int dyno_client_put_stream(dyno_client *c, const char *catalog, dyno_client_read_fn read_fn,
                                           void *arg, int64_t size, const struct dyno_put_opts *opts,
                                           struct dyno_put_result *res);
/*
 * Streams fp from its current position to its end. The size is taken from fstat() for a
 * regular file (Content-Length), else the upload is chunked. fp stays open.
 * Same returns as dyno_client_put, plus DYNO_EIO (read error).
 */
DYNO_CLIENT_WUR int dyno_client_put_fp(dyno_client *c, const char *catalog, FILE *fp,
                                       const struct dyno_put_opts *opts, struct dyno_put_result *res);
/* Streams the file at path. opts->name is NOT derived from path: pass it to name the
 * object after the file. Same returns as dyno_client_put_fp, plus DYNO_ENOTFOUND when the
 * file cannot be opened (last_error tells a missing file from a missing catalog). */
DYNO_CLIENT_WUR int dyno_client_put_file(dyno_client *c, const char *catalog, const char *path,
                                         const struct dyno_put_opts *opts, struct dyno_put_result *res);

/*
 * Gets the object key into a malloc'd buffer *data of *len bytes (NUL-terminated for
 * convenience, the NUL not counted; the caller frees). At most max bytes are accepted.
 * A whole-object get is verified against the object's SHA-256 (the ETag).
 * Returns 0; DYNO_ENOTFOUND; DYNO_ETOOBIG (object larger than max); DYNO_ECORRUPT (digest
 * mismatch); DYNO_EUNAUTH; DYNO_EFORBIDDEN; DYNO_EUNAVAIL (too many containers down).
 */
DYNO_CLIENT_WUR int dyno_client_get(dyno_client *c, const char *key, size_t max, void **data, size_t *len);
/* Bytes [offset, offset+length) of the object (length DYNO_CLIENT_TO_END: to the end).
 * As dyno_client_get (no digest check), plus DYNO_ERANGE (offset past the end). */
DYNO_CLIENT_WUR int dyno_client_get_range(dyno_client *c, const char *key, uint64_t offset, uint64_t length,
                                          size_t max, void **data, size_t *len);
/*
 * Streams the object (or a range of it, as in dyno_client_get_range; offset 0 and length
 * DYNO_CLIENT_TO_END for all of it) into write_fn. A whole-object stream is verified
 * against its SHA-256 at the end: DYNO_ECORRUPT then means write_fn got bad bytes and the
 * caller must discard them. Same returns as dyno_client_get_range, plus the callback's code.
 */
DYNO_CLIENT_WUR int dyno_client_get_stream(dyno_client *c, const char *key, uint64_t offset, uint64_t length,
                                           dyno_client_write_fn write_fn, void *arg);
/* Streams the whole object into fp (left open, flushed). As dyno_client_get_stream, plus DYNO_EIO. */
DYNO_CLIENT_WUR int dyno_client_get_fp(dyno_client *c, const char *key, FILE *fp);
/*
 * Downloads the whole object to path: into a temp file in the same folder, fsynced, then
 * renamed over path, so path is either untouched or complete and verified. New files get
 * mode 0666 & ~umask. As dyno_client_get_stream, plus DYNO_EIO (cannot write the folder).
 */
DYNO_CLIENT_WUR int dyno_client_get_file(dyno_client *c, const char *key, const char *path);

/* What HEAD tells about an object. */
struct dyno_object_stat {
    uint64_t size;
    char sha256[65]; /* lowercase hex, "" if the gateway did not say */
};
/* Whether key exists: 0 (and *st filled when st is not NULL), DYNO_ENOTFOUND when it does
 * not, DYNO_EUNAUTH, DYNO_EFORBIDDEN. */
DYNO_CLIENT_WUR int dyno_client_exists(dyno_client *c, const char *key, struct dyno_object_stat *st);
/* Evicts key everywhere. 0, DYNO_ENOTFOUND, DYNO_EUNAUTH, DYNO_EFORBIDDEN. */
DYNO_CLIENT_WUR int dyno_client_evict(dyno_client *c, const char *key);
/*
 * Metadata of key: the gateway's JSON object (catalog, name, size, sha256, k, m, state,
 * fragments:[{index, container, state, ...}]) as a cJSON tree; *out is the caller's
 * (cJSON_Delete). 0, DYNO_ENOTFOUND, DYNO_EUNAUTH, DYNO_EFORBIDDEN, DYNO_EPROTO.
 */
DYNO_CLIENT_WUR int dyno_client_meta(dyno_client *c, const char *key, struct cJSON **out);

/* ---- catalogs ---------------------------------------------------------------------------- */

struct dyno_catalog_opts {
    int public_read; /* non-zero: everyone may read */
    int k, m;        /* default resilience of its objects; 0,0 = the fabric's default */
};

/* Creates catalog ("owner/path"; idempotent). *out (may be NULL) gets the catalog as JSON.
 * 0, DYNO_EFORBIDDEN (not the owner), DYNO_EUNAUTH, DYNO_ECONFLICT. */
DYNO_CLIENT_WUR int dyno_client_catalog_create(dyno_client *c, const char *catalog,
                                               const struct dyno_catalog_opts *opts, struct cJSON **out);
/* Catalogs the caller owns, is shared or subscribes to: the reply's JSON (an object with
 * a "catalogs" array). 0, DYNO_EUNAUTH, DYNO_EPROTO. */
DYNO_CLIENT_WUR int dyno_client_catalog_list(dyno_client *c, struct cJSON **out);
/* Info of one catalog (object count, bytes, shares). 0, DYNO_ENOTFOUND, DYNO_EFORBIDDEN. */
DYNO_CLIENT_WUR int dyno_client_catalog_info(dyno_client *c, const char *catalog, struct cJSON **out);
/* Deletes a catalog: only when empty, unless recursive. 0, DYNO_ENOTFOUND,
 * DYNO_ECONFLICT (not empty), DYNO_EFORBIDDEN. */
DYNO_CLIENT_WUR int dyno_client_catalog_delete(dyno_client *c, const char *catalog, int recursive);
/* Shares catalog with a user (is_org 0) or an org (is_org 1); access "read" or "write".
 * 0, DYNO_ENOTFOUND, DYNO_EFORBIDDEN. */
DYNO_CLIENT_WUR int dyno_client_catalog_share(dyno_client *c, const char *catalog, const char *principal,
                                              int is_org, const char *access);
/* Removes the share of catalog with a user (is_org 0) or an org (is_org 1).
 * 0, DYNO_ENOTFOUND (no such catalog or share), DYNO_EFORBIDDEN. */
DYNO_CLIENT_WUR int dyno_client_catalog_unshare(dyno_client *c, const char *catalog, const char *principal,
                                                int is_org);
/*
 * One page of the objects of catalog, in name order, starting after the name `after`
 * (NULL or "" for the first page), at most limit (1..1000; 0 = the gateway's default).
 * *page is the reply (an object with an "objects" array); *next (may be NULL) receives
 * the name to pass as `after` for the next page, malloc'd, or NULL when this was the last.
 * 0, DYNO_ENOTFOUND, DYNO_EFORBIDDEN, DYNO_EPROTO.
 */
DYNO_CLIENT_WUR int dyno_client_list(dyno_client *c, const char *catalog, const char *after, int limit,
                                     struct cJSON **page, char **next);

/* ---- events: subscribe ------------------------------------------------------------------- */

/*
 * One catalog event as published on dyno/v1/events/<catalog> (schemas/event-<type>.schema.json).
 * Every pointer is borrowed for the duration of the callback only.
 */
struct dyno_event {
    const char *type;    /* "object.created", "object.evicted", "object.degraded",
                          * "object.repaired", "catalog.shared", ... */
    const char *catalog; /* the catalog of the topic ("alice/x" or a sub-catalog "alice/x/y") */
    int64_t time;        /* unix milliseconds, 0 when absent */
    /* The object of an object.* event; NULL (size -1) for other events. */
    const char *key, *name, *sha256;
    int64_t size;
    const char *json; /* the whole payload, NUL-terminated */
    size_t json_len;
    const struct cJSON *doc; /* the payload, parsed */
};

/* Called for every event. Return 0 to go on, or a negative DYNO_E* code to stop:
 * dyno_client_subscribe then returns that code. */
typedef int (*dyno_client_event_fn)(void *arg, const struct dyno_event *ev);
/* Called after every (re)connection, once the subscriptions are in place (events published
 * from now on will be delivered). session_present: the broker kept a persistent session,
 * so events of the time away are queued and follow. Return 0 or a negative DYNO_E* code to
 * stop, as above. */
typedef int (*dyno_client_ready_fn)(void *arg, int session_present);

#define DYNO_CLIENT_SESSION_EXPIRY_DEFAULT 86400 /* seconds */

struct dyno_subscribe_opts {
    const char *broker;            /* "mqtt://host:port" (default port 1883) or "mqtts://host:port"
                                    * (8883): required */
    const char *cafile;            /* mqtts: CA bundle; NULL = the client's (dyno_client_set_cafile),
                                    * else the system's */
    const char *client_id;         /* NULL: a random id and a clean session. Else a persistent session
                                    * under this id (1..64 bytes, no '+', '#', '/'; ids of the form
                                    * <kind>-<id> are reserved for services): clean start off, and the
                                    * broker keeps the subscriptions and queues QoS 1 events while the
                                    * client is away, for session_expiry seconds */
    long session_expiry;           /* 0 = DYNO_CLIENT_SESSION_EXPIRY_DEFAULT */
    int keepalive;                 /* seconds, 0 = 60 */
    dyno_client_ready_fn on_ready; /* may be NULL */
    /* Checked at least once a second (set it from a signal handler to stop): when non-zero,
     * the call disconnects and returns 0. May be NULL. */
    volatile int *stop;
};

/*
 * Follows the events of catalog and of all its sub-catalogs: connects to the broker (MQTT
 * v5; username = the "sub" of the client's token, password = the token) and subscribes
 * with QoS 1 to dyno/v1/events/<catalog>/# (the '#' also matches the catalog's own topic,
 * so one subscription covers both and an event is not delivered twice). Blocks until
 * *opts->stop is set or a callback returns an error.
 *
 * Threads: everything runs in the calling thread: fn and on_ready are called from it, one
 * at a time, in the order the broker delivers; they may use c (for example to download the
 * object of an object.created event). The connection is served between callbacks only, so
 * a callback that blocks for longer than 1.5 x keepalive gets the connection dropped; the
 * call then reconnects (1 s .. 10 s back-off, forever) and calls on_ready again.
 * Delivery: QoS 1 is at least once; an event may come twice (after a reconnect).
 *
 * Returns 0 (stopped), the callback's code, DYNO_EUNAUTH (the broker refused the token),
 * DYNO_EFORBIDDEN (subscription refused: no read access; after a reconnect, only when the
 * refusals last 2 minutes, since a restarted broker refuses until its policies are back),
 * DYNO_EUNAVAIL (the first connection
 * failed), DYNO_EINVAL (bad arguments, no token, or a token whose claims cannot be read).
 */
DYNO_CLIENT_WUR int dyno_client_subscribe(dyno_client *c, const char *catalog,
                                          const struct dyno_subscribe_opts *opts, dyno_client_event_fn fn,
                                          void *arg);

/* ---- fabric and identity ----------------------------------------------------------------- */

/* Admin: the containers, {"containers":[{id, url, site, state, capacity, used, free,
 * utilization, ...}]}. 0, DYNO_EUNAUTH, DYNO_EFORBIDDEN (not an admin). */
DYNO_CLIENT_WUR int dyno_client_containers(dyno_client *c, struct cJSON **out);
/* GET /healthz: 0 when the gateway answers 200. *out (may be NULL) gets its JSON body, or
 * NULL when the body is not JSON. DYNO_EUNAVAIL (not reachable or not healthy). */
DYNO_CLIENT_WUR int dyno_client_healthz(dyno_client *c, struct cJSON **out);
/* Logs in: *token (malloc'd, the caller's) and *expires_at (unix seconds; may be NULL).
 * Does not change the client's own token (see dyno_client_set_token).
 * 0, DYNO_EUNAUTH (bad user or password). */
DYNO_CLIENT_WUR int dyno_client_login(dyno_client *c, const char *username, const char *password,
                                      char **token, int64_t *expires_at);
/* Device login (a CLI without a browser, issue 12): asks the gateway for a code pair.
 * *device_code (secret, for dyno_client_device_poll) and *user_code (for the human to
 * approve in the web console at <gateway>/#/device) are malloc'd, the caller's;
 * *expires_in and *interval are seconds. 0, DYNO_ELIMIT. */
DYNO_CLIENT_WUR int dyno_client_device_start(dyno_client *c, char **device_code, char **user_code,
                                             int64_t *expires_in, int64_t *interval);
/* One poll: 0 with *token NULL while nobody approved yet; 0 with *token (malloc'd, the
 * caller's; handed out once) and *expires_at once approved; DYNO_ENOTFOUND when the code
 * is unknown, expired or was already used. */
DYNO_CLIENT_WUR int dyno_client_device_poll(dyno_client *c, const char *device_code, char **token,
                                            int64_t *expires_at);
/* Who the token belongs to: {"user"/"sub", "org", "admin", ...}. 0, DYNO_EUNAUTH. */
DYNO_CLIENT_WUR int dyno_client_whoami(dyno_client *c, struct cJSON **out);

/* ---- users and API tokens ----------------------------------------------------------------- */

/*
 * Admin: creates a user with a password; org NULL or "" = no org (else an org path such as
 * "lab/ct"); admin non-zero makes an admin. *out (may be NULL) gets {username, org, admin}.
 * 0, DYNO_EFORBIDDEN (not an admin), DYNO_ECONFLICT (the user exists), DYNO_EUNAUTH,
 * DYNO_EUNAVAIL (the auth service is down: retry later).
 */
DYNO_CLIENT_WUR int dyno_client_user_create(dyno_client *c, const char *username, const char *password,
                                            const char *org, int admin, struct cJSON **out);
/* Admin: the users, {"users":[{username, org, admin, ...}]}. 0, DYNO_EFORBIDDEN,
 * DYNO_EUNAUTH, DYNO_EUNAVAIL. */
DYNO_CLIENT_WUR int dyno_client_user_list(dyno_client *c, struct cJSON **out);
/*
 * Issues a long-lived API token for the caller, valid ttl seconds (0 = the service's
 * default, its maximum). name (may be NULL) labels it in token lists. *token (malloc'd,
 * the caller's: a secret, wipe it) gets the token; *out (may be NULL) the rest of the reply
 * {id, jti, expires_at, name}, without the token. 0, DYNO_EINVAL (ttl above the maximum),
 * DYNO_EUNAUTH, DYNO_EFORBIDDEN, DYNO_EUNAVAIL.
 */
DYNO_CLIENT_WUR int dyno_client_token_create(dyno_client *c, int64_t ttl, const char *name, char **token,
                                             struct cJSON **out);
/* The caller's tokens, {"tokens":[{jti, kind, name, expires_at, revoked, ...}]} (never the
 * tokens themselves). 0, DYNO_EUNAUTH, DYNO_EUNAVAIL. */
DYNO_CLIENT_WUR int dyno_client_token_list(dyno_client *c, struct cJSON **out);
/* Revokes the token whose id (jti, 32 hex) is id: it stops working everywhere within
 * seconds. Own tokens only, unless an admin. 0, DYNO_ENOTFOUND, DYNO_EFORBIDDEN,
 * DYNO_EUNAUTH, DYNO_EUNAVAIL. */
DYNO_CLIENT_WUR int dyno_client_token_revoke(dyno_client *c, const char *id);
/*
 * S3 access keys (docs/s3.md "Access keys"): creates one for the caller, with description (may
 * be NULL; at most 256 bytes without control characters). *secret (malloc'd, the caller's: wipe
 * it) gets the secret access key, shown this once; *out (may be NULL) the rest of the reply
 * {access_key_id, created, description, user}. 0, DYNO_EINVAL, DYNO_ETOOBIG (the per-user
 * limit: revoke one first), DYNO_EUNAUTH, DYNO_EFORBIDDEN, DYNO_EUNAVAIL.
 */
DYNO_CLIENT_WUR int dyno_client_key_create(dyno_client *c, const char *description, char **secret,
                                           struct cJSON **out);
/* The caller's live access keys, {"keys":[{access_key_id, user, description, created,
 * last_used}]} (never a secret); user (may be NULL) another user's, or all != 0 everyone's:
 * admin only. 0, DYNO_EINVAL, DYNO_EFORBIDDEN, DYNO_EUNAUTH, DYNO_EUNAVAIL. */
DYNO_CLIENT_WUR int dyno_client_key_list(dyno_client *c, const char *user, int all, struct cJSON **out);
/* Revokes access key id ("DK" + 18 of A-Z 0-9): S3 requests signed with it fail everywhere
 * within 5 s. Own keys only, unless an admin. 0, DYNO_EINVAL, DYNO_ENOTFOUND, DYNO_EFORBIDDEN,
 * DYNO_EUNAUTH, DYNO_EUNAVAIL. */
DYNO_CLIENT_WUR int dyno_client_key_revoke(dyno_client *c, const char *id);

/* ---- healing (admin; docs/healing.md) ------------------------------------------------------ */

/* Admin: drains container id: its fragments are moved to other containers by the repair
 * workers, then deleted from it. *out (may be NULL) gets {id, state, fragments}.
 * 0, DYNO_ENOTFOUND (unknown container), DYNO_EFORBIDDEN, DYNO_EUNAUTH, DYNO_EUNAVAIL. */
DYNO_CLIENT_WUR int dyno_client_container_drain(dyno_client *c, const char *id, struct cJSON **out);
/* Admin: rebuilds the metadata of every object from the fragments the online containers
 * hold. *out (may be NULL) gets {objects, fragments, skipped, corrupt, conflicts, containers,
 * unreachable}. 0, DYNO_EFORBIDDEN, DYNO_EUNAUTH, DYNO_EUNAVAIL. */
DYNO_CLIENT_WUR int dyno_client_rebuild_metadata(dyno_client *c, struct cJSON **out);
/* Admin: repair progress {degraded_objects, lost_fragments, leased_tasks, repaired_total,
 * unrecoverable, garbage_fragments, draining:[id...]}. 0, DYNO_EFORBIDDEN, DYNO_EUNAUTH. */
DYNO_CLIENT_WUR int dyno_client_repair_status(dyno_client *c, struct cJSON **out);

#ifdef __cplusplus
}
#endif
#endif
