/*
 * dyno-gateway internals, shared by the files of agents/gateway/ only.
 *
 *   main.c     configuration, start-up, signals
 *   mqtt.c     broker connection, retained status, revocations, RPC wrapper
 *   rest.c     the MHD daemon, request lifecycle, routing, replies, per-request log
 *   auth.c     bearer tokens, caller identity, catalog access
 *   put.c      POST .../~/objects: the REST adapter of the put core (dp_put.c)
 *   get.c      GET and HEAD /v1/objects/<key>: the REST adapter of the get core (dp_get.c)
 *   dp*.c, xfer*.c  the data path core: put, get, repair, and its transport (dp.h)
 *   objects.c  meta, evict, list
 *   catalogs.c catalogs (info, list, delete, shares, subscription), containers, login, whoami,
 *              healthz, metrics
 *   events.c   catalog events: event.emit to pubsub, GET /v1/events (server-sent events)
 *   ingest.c   MQTT ingest: dyno/v1/ingest/<catalog> messages stored as objects
 *   admin.c    users and API tokens (dyno-auth RPCs)
 *   keys.c     S3 access keys: create, list, revoke (dyno-auth RPCs)
 *   web.c      the web console's static files (agents/frontend), its security headers
 *   session.c  console sessions (HttpOnly cookie + CSRF header), device login for the CLI
 *   s3key.c    S3 access keys: key.lookup answers of dyno-auth, cached < 5 s, evicted on revocation
 *
 * Threads: MHD runs one thread per client connection and every handler runs in it, so a
 * handler may block (RPC, fragment transfers): that is the back-pressure. struct gw is
 * read-only after start-up except for the atomic metrics, the EC cache and the container
 * latencies (locked).
 */
#ifndef GW_H
#define GW_H
#include <curl/curl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "agent.h"
#include "buf.h"
#include "dp.h"
#include "httpd.h"
#include "dynostore/error.h"
#include "ec.h"
#include "frag.h"
#include "metrics.h"
#include "names.h"
#include "token.h"

#define GW_JSON_BODY_MAX (64 * 1024) /* small JSON bodies (login, catalog create) */
#define GW_DISCARD_MAX (64ull << 20) /* body bytes read and dropped after a failed put */
#define GW_CURL_BUFSIZE (256 * 1024) /* libcurl receive and upload buffers */
#define GW_EASY_POOL 16              /* idle curl easy handles kept per connection */
#define GW_IDLE_CONNS 16             /* parked curl multis (with live container connections) */
#define GW_MULTI_MAXCONNECTS 64L     /* idle container connections a multi keeps */
#define GW_SPARE_BUFS 16             /* fragment buffers kept for the next gets (xfer.c) */

struct gw_cfg {
    struct dyno_agent_common c; /* the keys every agent has (lib/agent.h), first */
    char *listen_host;
    int64_t port;
    char *port_file;
    int64_t unit;
    int64_t k;
    int64_t m;
    int64_t write_quorum;
    int64_t small_max;
    int64_t fragment_timeout_ms;
    int64_t rpc_timeout_ms;
    int64_t commit_resolve_ms; /* dp_put.c: how long an object.commit of unknown outcome is retried */
    int64_t max_connections;
    int64_t max_body;
    char *frontend_dir;
    char *site; /* dp_get.c: the gateway's site (NULL: none); reads fetch from its containers first */
    char *tls_cert;
    char *tls_key;
    int64_t ingest_max;
    int64_t max_connections_per_ip; /* rest.c: more from one address get 429 */
    int64_t login_per_ip_per_min;   /* auth.c: login attempts a minute (and burst) per address */
    int64_t login_per_user_per_min; /* auth.c: ... and per username */
    int64_t limit_table_size;       /* keys each of those tables holds at most */
    int64_t max_streams_per_user;   /* events.c: SSE streams one user may hold */
    int64_t device_code_ttl_s;      /* session.c: life of a device-login code */
    int64_t repair_workers;         /* repair.c: 0 disables repair and GC */
    int64_t repair_poll_ms;         /* idle wait between repair.claim calls */
    int64_t repair_rate_bytes;      /* bytes/s the repair workers read and write at most */
    int64_t reserve_batch;          /* dp_resv.c: small objects reserved per object.reserve; 0: off */
    int64_t reserve_ttl_ms;         /* dp_resv.c: an unused reservation is released after this */
    int64_t s3_port;                /* s3.c: the S3 listener's port; -1: off, 0: any */
    int64_t s3_upload_ttl_s;        /* s3_mpu.c: abandoned multipart uploads are cleaned after it */
    int64_t s3_long_grace_ms;       /* s3_ops.c: a long S3 operation's ordinary-reply window */
    char *s3_port_file;             /* the bound S3 port is written here */
    char *s3_region;                /* the region clients sign with (SigV4 scope) */
    char *s3_domain;                /* virtual-host requests: Host <bucket>.<s3_domain>; "": off */
};

enum gw_metric_id {
    GW_M_REQUESTS,
    GW_M_PUTS,
    GW_M_GETS,
    GW_M_BYTES_IN,
    GW_M_BYTES_OUT,
    GW_M_PUT_FAILURES,
    GW_M_CRC_ERRORS,
    GW_M_DEGRADED_READS,
    GW_M_INFLIGHT,
    GW_M_INGESTED,
    GW_M_INGEST_REFUSED,
    GW_M_INGEST_DUPLICATES, /* ingest.c: named readings already stored with the same bytes */
    GW_M_SSE_CLIENTS,
    GW_M_REPAIRS,      /* repair.c: objects repaired */
    GW_M_REPAIR_BYTES, /* repair.c: fragment bytes written by repairs */
    GW_M_GC_DELETED,   /* repair.c: garbage fragments deleted */
    /* Where a get's time goes (issue 11), microseconds summed over the gets (divide by
     * GW_M_GETS): token check (every request), locate and authorize (object.get, policy),
     * fetch (the first stripe: k fragments, CRCs, decode, the SHA-256 of a one-stripe
     * object), and stream (from the reply queued until MHD let the response go). */
    GW_M_AUTH_US,
    GW_M_GET_LOCATE_US,
    GW_M_GET_FETCH_US,
    GW_M_GET_STREAM_US,
    GW_M_COUNT
};

struct gw {
    struct gw_cfg cfg;
    struct dyno_verifier *verifier;
    const struct gw_transport *tp; /* fragment transfers (dp.h): gw_curl_transport */
    const struct gw_meta *meta;    /* metadata RPCs of the data path (dp.h): gw_mqtt_meta */
    void *fake;                    /* unit tests: the fake transport's and metadata's state */
    struct dyno_agent agent;       /* the broker session and status (lib/agent.h) */
    struct dyno_mq *mq;            /* agent.mq, the one client every module uses */
    struct gw_catcache *catcache;  /* catalog records, invalidated by dyno/v1/acl/# */
    struct gw_s3keys *s3keys;      /* s3key.c: access keys, evicted by dyno/v1/auth/keys/revoked */
    char *service_token;
    struct curl_slist *svc_headers; /* Authorization for containers; read-only, shared */
    struct dyno_httpd httpd;
    unsigned port;
    struct dyno_httpd s3httpd; /* s3.c: the S3 listener (d NULL when off) */
    unsigned s3_port;
    struct gw_s3_mpu *s3mpu; /* s3_mpu.c: the cleaner of abandoned uploads, or NULL */
    struct dyno_metric metrics[GW_M_COUNT];
    bool curl_ok; /* curl_global_init done (main.c) */
    pthread_mutex_t ec_lock;
    struct dyno_ec *ec_cache[DYNO_EC_MAX_K + 1][DYNO_EC_MAX_M + 1];
    struct gw_rtt rtt;              /* rtt.c: per-container latency, for the read order (locked) */
    struct gw_events *events;       /* events.c: SSE fan-out, NULL until gw_events_start */
    struct gw_ingest *ingest;       /* ingest.c: MQTT ingest sessions, NULL until gw_ingest_start */
    struct gw_repair *repair;       /* repair.c: repair and GC workers, NULL until gw_repair_start */
    struct gw_resv *resv;           /* dp_resv.c: reserved placements of small objects, or NULL */
    struct dyno_limit *conn_limit;  /* rest.c: open connections per client address */
    struct dyno_limit *login_limit; /* auth.c: login buckets per address and per username */
    /* xfer_curl.c: curl multis (with their open container connections) of client connections
     * that closed, taken by the next one. Slots are swapped atomically; the zero of static
     * storage is their valid empty state. Emptied by gw_conn_pool_free. */
    _Atomic(struct gw_conn *) idle_conns[GW_IDLE_CONNS];
    /* xfer.c: fragment buffers of gets given back, taken by the next (gw_buf_take); the
     * same atomic slots, emptied by gw_buf_pool_free. */
    _Atomic(uint8_t *) spare_bufs[GW_SPARE_BUFS];
};

/* Per client connection (one MHD thread): a curl multi whose connection cache lets a
 * keep-alive client reuse its container connections, and a pool of idle easy handles. */
struct gw_conn {
    struct gw *gw; /* set by the first gw_xfer_start; lets gw_conn_free park the multi */
    CURLM *multi;
    CURL *pool[GW_EASY_POOL];
    int npool;
};

/* One REST request, from the first call of the access handler to MHD's completion call. */
struct gw_req {
    struct gw *gw;
    struct gw_conn *conn;
    struct MHD_Connection *c;
    const char *method; /* MHD's, valid for the request */
    char *url;          /* raw path, for the log */
    int64_t t0_ms;
    unsigned status;
    uint64_t bytes_in, bytes_out;
    bool authed;
    struct dyno_claims claims;
    bool replied;
    bool route_later; /* bodiless request: routed once it is complete (keep-alive) */

    /* Body handling: on_body gets every chunk, on_end runs at the last call. */
    int (*on_body)(struct gw_req *r, const char *data, size_t len);
    enum MHD_Result (*on_end)(struct gw_req *r);
    struct dyno_buf body; /* JSON bodies */
    int body_err;         /* set when on_body failed: the rest is discarded, then replied */
    char body_msg[400];
    uint64_t discarded;

    /* Route parameters. */
    char catalog[DYNO_CATALOG_MAX + 1];
    char key[DYNO_KEY_LEN + 1];
    char name[DYNO_NAME_MAX + 1]; /* ?name= of a put, "" when absent */
    bool has_name;

    /* Called once when the request ends (MHD's completion, or before an error reply of a
     * failed body), whatever happened: a handler's state goes here (a put aborts when it
     * did not commit, or deletes the fragments of the object it replaced once the reply
     * is out). */
    void (*on_close)(struct gw_req *r);
    void *state; /* the handler's, for on_close */

    bool s3_door;      /* came in on the S3 listener: routed by s3.c, errors in S3 XML */
    struct s3_ctx *s3; /* s3.c's request context, freed at the end (gw_s3_req_free) */
};

/* ---- time and small helpers (util.c) ---- */
int64_t gw_now_ms(void);
int64_t gw_now_us(void); /* monotonic, for the stage timers */

/* catcache.c: catalog.get results, dropped when pubsub republishes a catalog's policy
 * (dyno/v1/acl/<catalog>) and on every broker reconnect. gen (from get) guards put against
 * an invalidation that happened while the caller fetched. */
struct gw_catcache;
int gw_catcache_new(struct gw_catcache **out);
void gw_catcache_free(struct gw_catcache *c);
cJSON *gw_catcache_get(struct gw_catcache *c, const char *catalog, uint64_t *gen);
void gw_catcache_put(struct gw_catcache *c, const char *catalog, const cJSON *record, uint64_t gen);
void gw_catcache_invalidate(struct gw_catcache *c, const char *catalog); /* NULL: all */
/* auth.c: the catalog record (cache, else pubsub catalog.get); *out is the caller's. */
int gw_catalog_get(struct gw *gw, const char *catalog, cJSON **out, char *msg, size_t cap);
/* Zeroes secrets in a way the compiler keeps (explicit_bzero is not POSIX). */
void gw_wipe(void *p, size_t n);

/* ---- S3 access keys (s3key.c; docs/s3.md "Access keys") ---- */
#define GW_S3KEY_ID_LEN 20     /* "DK" + 18 of [A-Z0-9] (dyno-auth's key.create) */
#define GW_S3KEY_SECRET_MAX 64 /* bytes of a secret accepted from dyno-auth (it makes 40) */
#define GW_S3KEY_TTL_MS 4000   /* an entry's life: revocation within 5 s even if a message is lost */
/* Finds a live access key: its owner and secret. 0, or DYNO_ENOTFOUND (unknown or revoked),
 * or another DYNO_E* error (auth unreachable). Cached; a revocation evicts within 5 s. */
int gw_s3key_lookup(struct gw *gw, const char *access_key_id, char *user, size_t user_len, char *secret,
                    size_t secret_len);
/* What a key.lookup tells: the user as dyno-auth's record says now (org, admin flag), for the
 * access checks (gw_catalog_allows wants a struct dyno_claims: sub = user, org, admin, role
 * "user"), and the secret. Wipe it (gw_wipe) when done. */
struct gw_s3key {
    char user[DYNO_SEG_MAX + 1];
    char org[DYNO_SEG_MAX * 4 + 4]; /* as struct dyno_claims.org */
    bool admin;
    char secret[GW_S3KEY_SECRET_MAX + 1];
};
/* gw_s3key_lookup with the whole record in *out (zeroed on failure); same codes. */
int gw_s3key_get(struct gw *gw, const char *access_key_id, struct gw_s3key *out);
/* True for a well-formed access key id (lib/names.h dyno_valid_access_key_id; no RPC is made
 * for another). */
bool gw_s3key_valid_id(const char *id);
/* Makes the cache and subscribes to the revocations (from gw_mqtt_start). 0 or DYNO_E*. */
int gw_s3key_start(struct gw *gw);
/* Forgets every key (broker reconnect: revocations may have gone by). */
void gw_s3key_flush(struct gw *gw);
void gw_s3key_free(struct gw *gw);
/* The cache itself (unit-tested apart): get copies a live entry (younger than
 * GW_S3KEY_TTL_MS at now_ms) and reads the generation; put stores unless an eviction came
 * since that generation; evict drops id (NULL: all) and moves the generation; on_revoked
 * applies a revocation message ({"revoked":[ids]}; anything else drops all). */
struct gw_s3keys;
int gw_s3keys_new(struct gw_s3keys **out);
void gw_s3keys_free(struct gw_s3keys *c);
bool gw_s3keys_get(struct gw_s3keys *c, const char *id, int64_t now_ms, struct gw_s3key *out, uint64_t *gen);
void gw_s3keys_put(struct gw_s3keys *c, const char *id, const struct gw_s3key *k, int64_t now_ms,
                   uint64_t gen);
void gw_s3keys_evict(struct gw_s3keys *c, const char *id);
void gw_s3keys_on_revoked(struct gw_s3keys *c, const void *payload, size_t len);

/* ---- replies (rest.c): each records the status for the request log ---- */
enum MHD_Result gw_reply_json(struct gw_req *r, unsigned status, const cJSON *body);
/* Any error reply (lib/httpd.c's struct dyno_http_error: status, code, Retry-After, close),
 * its status noted for the request log. The two below are this one with a given error. */
enum MHD_Result gw_reply_err(struct gw_req *r, const struct dyno_http_error *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The error reply of a DYNO_E* code: gw_reply_error(r, err, fmt, ...). */
#define gw_reply_error(r, code_, ...)                                                                        \
    gw_reply_err((r), &(const struct dyno_http_error){.err = (code_)}, __VA_ARGS__)
/* 429 too_many_requests (DYNO_ELIMIT) with Retry-After: retry_s, at least 1 (a limit of the
 * gateway): gw_reply_limited(r, retry_s, fmt, ...). */
static inline unsigned gw__retry_after(int retry_s)
{
    return retry_s < 1 ? 1u : (unsigned)retry_s;
}
#define gw_reply_limited(r, retry_s, ...)                                                                    \
    gw_reply_err(                                                                                            \
        (r), &(const struct dyno_http_error){.err = DYNO_ELIMIT, .retry_after = gw__retry_after(retry_s)},   \
        __VA_ARGS__)
enum MHD_Result gw_reply_not_implemented(struct gw_req *r, const char *what);
/* Queues resp with status, then drops our reference. */
enum MHD_Result gw_reply_response(struct gw_req *r, unsigned status, struct MHD_Response *resp);
/* Query argument, percent-decoded into out; 0, DYNO_ENOTFOUND, DYNO_EINVAL, DYNO_ETOOBIG. */
int gw_query_arg(struct gw_req *r, const char *name, char *out, size_t cap);

/* ---- start-up (setup.c) ---- */
/* Names the metrics (all zero). */
void gw_metrics_init(struct gw *gw);
/* Checks what the option parser cannot: ranges and combinations. 0 or DYNO_EINVAL, err says. */
int gw_cfg_check(const struct gw_cfg *c, char *err, size_t cap);
/* Logs a start-up error as "bad configuration". */
void gw_log_config_error(const char *err);
/* Loads the verifier and the service token, makes the limit tables and the container
 * headers. 0 or DYNO_E*, err says; gw_cleanup frees either way. */
int gw_init(struct gw *gw, char *err, size_t cap);
/* Frees what gw_init and the data path made (not the configuration). */
void gw_cleanup(struct gw *gw);

/* ---- MQTT (mqtt.c) ---- */
/* Subscribes the gateway's feeds on gw->mq (made by dyno_agent_init, not started yet) and
 * makes the catalog cache. 0 or DYNO_E* (logged). */
int gw_mqtt_start(struct gw *gw);
/* The connect hook (dyno_agent_on_connect): forgets what may have changed while away. */
void gw_mqtt_on_connect(void *gw);
/* The status hook (dyno_agent_on_status): the gateway's URL. */
int gw_mqtt_status(void *gw, cJSON *status);
struct dyno_mq_opts;
/* Fills *o (zeroed first) for a broker connection of this gateway as client_id (borrowed:
 * it must outlive dyno_mq_new): broker address, TLS CA, the service login. */
void gw_mqtt_opts(const struct gw *gw, const char *client_id, struct dyno_mq_opts *o);
/* dyno_mq_call with the configured timeout; a silent or unreachable service becomes
 * DYNO_EUNAVAIL with a message naming it. *result is the caller's (may be NULL). */
int gw_rpc(struct gw *gw, const char *service, const char *method, const cJSON *params, cJSON **result,
           char *msg, size_t cap);
/* gw_rpc for a request that changes state. *unknown is set when the request went out and
 * no answer came (lib/mq.h DYNO_ETIMEDOUT): the service may have carried it out, so the
 * caller must not undo anything on that failure; it resolves the outcome (an idempotent
 * retry, a question) or leaves it to metadata's timeouts and GC. The code is gw_rpc's. */
int gw_rpc_change(struct gw *gw, const char *service, const char *method, const cJSON *params, cJSON **result,
                  char *msg, size_t cap, bool *unknown);
void gw_notify(struct gw *gw, const char *service, const char *method, const cJSON *params);

/* ---- auth (auth.c) ---- */
/* Verifies the bearer token into r->claims; 0, DYNO_EUNAUTH, or DYNO_EUNAVAIL for a user token
 * while the revocation feed has not been applied since start (message in msg). */
int gw_authenticate(struct gw_req *r, char *msg, size_t cap);
/* The login throttle (issue 9): true when one more login attempt for user from the client
 * of r is within login_per_ip_per_min and login_per_user_per_min (and counts it); else
 * false with *retry_s, the seconds until it would be. */
bool gw_login_allowed(struct gw_req *r, const char *user, int *retry_s);
/* {"sub","org","admin"} of the caller, new object (caller frees). */
cJSON *gw_caller_json(const struct gw_req *r);
/* Fetches the catalog (pubsub catalog.get) into *out (caller frees; may be NULL to skip)
 * and checks the caller's access. 0, DYNO_ENOTFOUND, DYNO_EFORBIDDEN, DYNO_EUNAVAIL... */
int gw_catalog_check(struct gw_req *r, const char *catalog, bool write, cJSON **out, char *msg, size_t cap);
/* The access rule (lib/acl.h dyno_acl_decide, as the broker plugin) on a catalog.get result. */
bool gw_catalog_allows(const struct dyno_claims *cl, const cJSON *cat, bool write);

/* ---- curl connections (xfer_curl.c) ---- */
/* Frees conn, the caller's. Its curl multi (and so the idle container
 * connections it keeps alive) is parked in gw->idle_conns when there is room, for the
 * next gw_conn's first gw_xfer_start: a client that opens a connection per request still
 * reaches the containers over connections already open. Any thread. */
void gw_conn_free(struct gw_conn *conn);
/* Frees every parked multi; after gw_httpd_stop and every worker that uses a gw_conn. */
void gw_conn_pool_free(struct gw *gw);
/* Runs r->on_close once (rest.c). */
void gw_req_close(struct gw_req *r);

/* ---- handlers ---- */
enum MHD_Result gw_put_begin(struct gw_req *r); /* put.c: first call of a put */
/* The resilience of a put into catalog cat (catalog.get): X-Dyno-Resilience, else the
 * catalog's, else the gateway's. 0 or DYNO_EINVAL (bad header; k, m then the default). */
int gw_put_resilience(struct gw_req *r, const cJSON *cat, int *k, int *m);
enum MHD_Result gw_get_object(struct gw_req *r, bool head); /* get.c */
/* The streaming response of bytes [first, last] of g (size > 0): the first stripe is
 * fetched (and a whole read verified) now. Takes g (freed on failure, else with the
 * response). 0 with *out, or DYNO_E* with msg. (The REST and S3 gets.) */
int gw_get_response(struct gw_req *r, struct gw_get *g, uint64_t first, uint64_t last, bool whole,
                    struct MHD_Response **out, char *msg, size_t cap);
enum MHD_Result gw_object_meta(struct gw_req *r); /* objects.c */
enum MHD_Result gw_object_evict(struct gw_req *r);
enum MHD_Result gw_object_list(struct gw_req *r);
/* Loads object.get for key and checks read or write access. *obj is the caller's. */
int gw_object_load(struct gw_req *r, bool write, cJSON **obj, char *msg, size_t cap);
enum MHD_Result gw_catalog_create(struct gw_req *r); /* catalogs.c (on_end of a JSON body) */
enum MHD_Result gw_catalog_info(struct gw_req *r);
enum MHD_Result gw_catalog_list(struct gw_req *r);
enum MHD_Result gw_containers(struct gw_req *r);
enum MHD_Result gw_login(struct gw_req *r); /* on_end */
enum MHD_Result gw_whoami(struct gw_req *r);
enum MHD_Result gw_healthz(struct gw_req *r);
/* admin.c: users (admin only) and API tokens, answered by dyno-auth */
enum MHD_Result gw_user_create(struct gw_req *r); /* on_end */
enum MHD_Result gw_user_list(struct gw_req *r);
enum MHD_Result gw_token_create(struct gw_req *r); /* on_end */
enum MHD_Result gw_token_list(struct gw_req *r);
enum MHD_Result gw_token_revoke(struct gw_req *r); /* r->key = the token id */
/* The helpers of those routes, shared with keys.c. */
/* An auth RPC; a silent dyno-auth becomes a 503 whose message says what still works. */
int gw_auth_rpc(struct gw_req *r, const char *method, const cJSON *params, cJSON **res, char *msg,
                size_t cap);
/* The error reply of an auth RPC. dyno-auth's rate limit (too_many_requests) says when to come
 * back in its message ("... retry after N s", protocol.md §3): that becomes Retry-After. */
enum MHD_Result gw_auth_error(struct gw_req *r, int rc, const char *msg);
/* Runs the auth method with params (taken) and replies with its result or error. */
enum MHD_Result gw_auth_reply(struct gw_req *r, const char *method, cJSON *params, unsigned status);
/* params = {"caller": ...}; NULL on ENOMEM. */
cJSON *gw_params_with_caller(const struct gw_req *r);
/* The JSON object body (an empty body is {} when empty_ok). 0 or DYNO_EINVAL. */
int gw_body_object(struct gw_req *r, bool empty_ok, cJSON **out);
/* keys.c: S3 access keys of the caller, answered by dyno-auth (docs/s3.md "Access keys") */
enum MHD_Result gw_key_create(struct gw_req *r); /* on_end */
enum MHD_Result gw_key_list(struct gw_req *r);
enum MHD_Result gw_key_revoke(struct gw_req *r); /* r->name = the access key id */
enum MHD_Result gw_metrics(struct gw_req *r);

/* ---- events (events.c) ---- */
/* Sends event.emit to pubsub: {type, catalog, object:{key, name, size, sha256}} (the
 * uniform payload pubsub validates and publishes). Never blocks on an answer. */
void gw_event_emit(struct gw *gw, const char *type, const char *catalog, const char *key, const char *name,
                   int64_t size, const char *sha256);
/* gw_event_emit from a metadata object (object.get: key, catalog, name, size, sha256). */
void gw_event_emit_obj(struct gw *gw, const char *type, const cJSON *obj);
/* Creates the SSE hub and subscribes to dyno/v1/events/# (after gw_mqtt_start). 0 or DYNO_E*. */
int gw_events_start(struct gw *gw);
/* Asks the SSE streams of catalog and of the catalogs under it (NULL: every stream) to
 * check their token and read access again before sending more. Any thread; never blocks
 * beyond the hub mutex (the MQTT loop thread calls it). */
void gw_events_recheck(struct gw *gw, const char *catalog);
/* Ends every SSE stream (before gw_httpd_stop, so that their threads finish). */
void gw_events_stop(struct gw *gw);
/* Frees the hub, after gw_httpd_stop and dyno_mq_free (nothing may call into it). */
void gw_events_free(struct gw *gw);
/* GET /v1/events?catalog=<owner>/<path> (authenticated). */
enum MHD_Result gw_events_sse(struct gw_req *r);

/* ---- ingest (ingest.c) ---- */
/* Opens the ingest sessions, each subscribed to $share/gateway/dyno/v1/ingest/# (after
 * gw_mqtt_start: their puts use gw->mq). 0 or DYNO_E*; gw_ingest_free cleans up either way. */
int gw_ingest_start(struct gw *gw);
/* Closes the sessions, after the puts in progress; what the broker did not get an
 * acknowledgement for stays there for the next start. Before dyno_mq_free(gw->mq). */
void gw_ingest_stop(struct gw *gw);
/* Frees what gw_ingest_start made. */
void gw_ingest_free(struct gw *gw);

/* ---- catalog routes (catalogs.c) ---- */
enum MHD_Result gw_catalog_delete(struct gw_req *r);
/* pubsub catalog.delete of r->catalog as r's caller; *res is the caller's. (The S3 door's
 * DeleteBucket too.) 0 or DYNO_E* with msg (DYNO_ECONFLICT: sub-catalogs, not recursive). */
int gw_catalog_delete_rpc(struct gw_req *r, bool recursive, bool dry_run, cJSON **res, char *msg, size_t cap);
enum MHD_Result gw_share_add(struct gw_req *r); /* on_end of a JSON body */
/* DELETE .../~/shares/<principal>: principal in r->name. */
enum MHD_Result gw_share_remove(struct gw_req *r);
enum MHD_Result gw_subscription_add(struct gw_req *r);
enum MHD_Result gw_subscription_remove(struct gw_req *r);
/* Evicts one object (metadata object.evict, fragments deleted, object.evicted emitted).
 * obj is its object.get (or object.list entry plus catalog). 0 or DYNO_E* with msg. */
int gw_evict_object(struct gw *gw, struct gw_conn *conn, const char *key, const cJSON *obj, char *msg,
                    size_t cap);

/* ---- server (rest.c) ---- */
int gw_httpd_start(struct gw *gw);
void gw_httpd_stop(struct gw *gw);
/* Starts one more listener h on port with the REST listener's settings and request life
 * (s3.c's): its requests are told apart by their daemon. 0 or DYNO_E* with err. */
int gw_httpd_listen(struct gw *gw, struct dyno_httpd *h, unsigned port, char *err, size_t cap);
/* Collects a JSON body (at most GW_JSON_BODY_MAX) and runs on_end once it is complete. */
void gw_expect_json(struct gw_req *r, enum MHD_Result (*on_end)(struct gw_req *));

/* ---- web console (web.c: static files; session.c: cookie sessions, device login) ---- */
#define GW_SESSION_COOKIE "dyno_session" /* the token: HttpOnly, SameSite=Strict */
#define GW_CSRF_COOKIE "dyno_csrf"       /* read by the page, sent back as X-Dyno-CSRF */
/* Routes of the console (files, /v1/auth/session, /v1/auth/device...): true when url is
 * one of them and *ret is the handler's result; false for the REST router. */
bool gw_web_route(struct gw_req *r, const char *url, enum MHD_Result *ret);
bool gw_session_route(struct gw_req *r, const char *url, enum MHD_Result *ret);
/* For the unit test: a file path the console may serve; its Content-Type or NULL. */
bool gw_web_path_ok(const char *path);
const char *gw_web_type(const char *path);
/* The security headers of every console file (CSP without unsafe-inline, nosniff...). */
void gw_web_headers(struct MHD_Response *resp);
/* The caller's token: the bearer header, else the session cookie (*from_cookie set). */
const char *gw_request_token(struct gw_req *r, bool *from_cookie);
/* X-Dyno-CSRF equals the CSRF cookie (constant time). */
bool gw_csrf_ok(struct gw_req *r);
/* The login of POST /v1/auth/login and /v1/auth/session: body checks, the throttle
 * (DYNO_ELIMIT with *retry_s > 0), auth.login. *res ({token, expires_at}) is the caller's. */
int gw_login_call(struct gw_req *r, cJSON **res, int *retry_s, char *msg, size_t cap);

/* ---- S3 multipart uploads (s3_mpu.c) ---- */
/* Starts the cleaner of abandoned uploads (older than s3_upload_ttl_s) when the S3 door is
 * on and the ttl > 0. 0 or DYNO_E*. */
int gw_s3_mpu_start(struct gw *gw);
void gw_s3_mpu_stop(struct gw *gw); /* safe when never started */
/* One pass of the cleaner: aborts up to 100 expired uploads; the count ended. */
int gw_s3_mpu_clean(struct gw *gw, struct gw_conn *conn);

/* ---- healing (repair.c, docs/healing.md, protocol.md §8) ---- */
/* Starts cfg.repair_workers threads (none when 0) that claim repair tasks from metadata
 * (repair.claim), rebuild the listed fragments stripe by stripe onto their targets and
 * report them (repair.complete); the first worker also deletes garbage (gc.claim,
 * DELETE on the container, gc.complete). After gw_mqtt_start. 0 or DYNO_E*. */
int gw_repair_start(struct gw *gw);
/* Asks the workers to stop and joins them (a task in progress is reported failed, so its
 * lease is released). Before dyno_mq_free. Safe when never started. */
void gw_repair_stop(struct gw *gw);
/* POST /v1/admin/rebuild-metadata (admin): lists every online container's fragments,
 * groups them by key and restores the objects in metadata (object.restore). */
enum MHD_Result gw_admin_rebuild_metadata(struct gw_req *r);
/* GET /v1/admin/repair (admin): metadata's repair.status. */
enum MHD_Result gw_admin_repair_status(struct gw_req *r);
/* POST /v1/containers/<id>/drain (admin), id in r->name: metadata's container.drain. */
enum MHD_Result gw_container_drain(struct gw_req *r);
#endif
