/*
 * dyno-gateway internals, shared by the files of agents/gateway/ only.
 *
 *   main.c     configuration, start-up, signals
 *   mqtt.c     broker connection, retained status, revocations, RPC wrapper
 *   rest.c     the MHD daemon, request lifecycle, routing, replies, per-request log
 *   auth.c     bearer tokens, caller identity, catalog access
 *   fanout.c   libcurl multi machinery: parallel fragment transfers, upload streams, deletes
 *   put.c      POST .../~/objects (streaming erasure-coded put)
 *   get.c      GET and HEAD /v1/objects/<key> (streaming, degraded reads)
 *   objects.c  meta, evict, list
 *   catalogs.c catalogs (info, list, delete, shares, subscription), containers, login, whoami,
 *              healthz, metrics
 *   events.c   catalog events: event.emit to pubsub, GET /v1/events (server-sent events)
 *   ingest.c   MQTT ingest: dyno/v1/ingest/<catalog> messages stored as objects
 *   admin.c    users and API tokens (dyno-auth RPCs)
 *
 * Threads: MHD runs one thread per client connection and every handler runs in it, so a
 * handler may block (RPC, fragment transfers): that is the back-pressure. struct gw is
 * read-only after start-up except for the atomic metrics and the EC cache (locked).
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

#include "buf.h"
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
#define GW_MAX_N (DYNO_EC_MAX_K + DYNO_EC_MAX_M)

struct gw_cfg {
    char *id;
    char *broker_host;
    int64_t broker_port;
    char *broker_cafile;
    char *service_token_file;
    char *public_key_file;
    char *log_level;
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
    int64_t commit_resolve_ms; /* put.c: how long an object.commit of unknown outcome is retried */
    int64_t max_connections;
    int64_t max_body;
    char *frontend_dir;
    char *tls_cert;
    char *tls_key;
    int64_t ingest_max;
    int64_t max_connections_per_ip; /* rest.c: more from one address get 429 */
    int64_t login_per_ip_per_min;   /* auth.c: login attempts a minute (and burst) per address */
    int64_t login_per_user_per_min; /* auth.c: ... and per username */
    int64_t limit_table_size;       /* keys each of those tables holds at most */
    int64_t max_streams_per_user;   /* events.c: SSE streams one user may hold */
    int64_t repair_workers;    /* repair.c: 0 disables repair and GC */
    int64_t repair_poll_ms;    /* idle wait between repair.claim calls */
    int64_t repair_rate_bytes; /* bytes/s the repair workers read and write at most */
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
    GW_M_SSE_CLIENTS,
    GW_M_REPAIRS,      /* repair.c: objects repaired */
    GW_M_REPAIR_BYTES, /* repair.c: fragment bytes written by repairs */
    GW_M_GC_DELETED,   /* repair.c: garbage fragments deleted */
    GW_M_COUNT
};

struct gw {
    struct gw_cfg cfg;
    struct dyno_verifier *verifier;
    struct dyno_mq *mq;
    struct gw_catcache *catcache; /* catalog records, invalidated by dyno/v1/acl/# */
    char *service_token;
    struct curl_slist *svc_headers; /* Authorization for containers; read-only, shared */
    struct MHD_Daemon *httpd;
    unsigned port;
    int64_t started_at;
    atomic_bool status_due; /* set by the MQTT loop thread, served by main */
    struct dyno_metric metrics[GW_M_COUNT];
    pthread_mutex_t ec_lock;
    struct dyno_ec *ec_cache[DYNO_EC_MAX_K + 1][DYNO_EC_MAX_M + 1];
    struct gw_events *events; /* events.c: SSE fan-out, NULL until gw_events_start */
    struct gw_ingest *ingest; /* ingest.c: MQTT ingest sessions, NULL until gw_ingest_start */
    struct gw_repair *repair; /* repair.c: repair and GC workers, NULL until gw_repair_start */
    struct dyno_limit *conn_limit;  /* rest.c: open connections per client address */
    struct dyno_limit *login_limit; /* auth.c: login buckets per address and per username */
    /* fanout.c: curl multis (with their open container connections) of client connections
     * that closed, taken by the next one. Slots are swapped atomically; the zero of static
     * storage is their valid empty state. Emptied by gw_conn_pool_free. */
    _Atomic(struct gw_conn *) idle_conns[GW_IDLE_CONNS];
};

/* Per client connection (one MHD thread): a curl multi whose connection cache lets a
 * keep-alive client reuse its container connections, and a pool of idle easy handles. */
struct gw_conn {
    struct gw *gw; /* set by the first gw_xfer_open; lets gw_conn_free park the multi */
    CURLM *multi;
    CURL *pool[GW_EASY_POOL];
    int npool;
};

struct gw_put;

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

    struct gw_put *put; /* the put in progress, aborted if the client goes away */
    /* Fragments of an object a put replaced: deleted after the reply is sent, in the
     * completion callback, so the client does not wait for garbage collection. */
    char purge_key[DYNO_KEY_LEN + 1];
    cJSON *purge_frags;
};

/* ---- time and small helpers (rest.c) ---- */
int64_t gw_now_ms(void);

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
/* Writes s as a quoted logfmt value into out (always terminated). */
void gw_quote(const char *s, char *out, size_t cap);

/* ---- replies (rest.c): each records the status for the request log ---- */
enum MHD_Result gw_reply_json(struct gw_req *r, unsigned status, const cJSON *body);
/* 429 too_many_requests (DYNO_ELIMIT) with Retry-After: retry_s (a limit of the gateway). */
enum MHD_Result gw_reply_limited(struct gw_req *r, int retry_s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
enum MHD_Result gw_reply_error(struct gw_req *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
enum MHD_Result gw_reply_not_implemented(struct gw_req *r, const char *what);
/* Queues resp with status, then drops our reference. */
enum MHD_Result gw_reply_response(struct gw_req *r, unsigned status, struct MHD_Response *resp);
/* Query argument, percent-decoded into out; 0, DYNO_ENOTFOUND, DYNO_EINVAL, DYNO_ETOOBIG. */
int gw_query_arg(struct gw_req *r, const char *name, char *out, size_t cap);

/* ---- MQTT (mqtt.c) ---- */
int gw_mqtt_start(struct gw *gw);
struct dyno_mq_opts;
/* Fills *o (zeroed first) for a broker connection of this gateway as client_id (borrowed:
 * it must outlive dyno_mq_new): broker address, TLS CA, the service login. */
void gw_mqtt_opts(const struct gw *gw, const char *client_id, struct dyno_mq_opts *o);
void gw_mqtt_publish_status(struct gw *gw, const char *state);
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

/* ---- EC contexts (put.c): cached per (k, m), immutable, shared by threads ---- */
int gw_ec_get(struct gw *gw, int k, int m, const struct dyno_ec **out);

/* ---- SHA-256 off the request's thread (put.c) ----
 * SHA-256 is the biggest CPU cost of a large put or get (one pass over the object, about
 * 1.8 GB/s with SHA-NI). A request of several stripes hashes stripe s on its own helper
 * thread while its thread encodes, checks and moves the bytes, one stripe at a time: the
 * caller keeps the submitted bytes unchanged until gw_hasher_wait returns. Without a
 * helper (not asked for, or its thread failed to start) submit hashes inline. */
struct gw_hasher {
    struct dyno_sha256 *sha; /* borrowed; touched only by the helper while a job runs */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, busy, stop;
    const uint8_t *seg[DYNO_EC_MAX_K];
    size_t len[DYNO_EC_MAX_K];
    int nseg;
};
/* Binds h (zeroed by the caller) to sha; with helper, starts its thread (0, or a DYNO_E*
 * after which h still works inline). */
int gw_hasher_init(struct gw_hasher *h, struct dyno_sha256 *sha, bool helper);
/* Hashes n segments, in order, after everything submitted before. Waits for the previous
 * job first, so at most one is pending. */
void gw_hasher_submit(struct gw_hasher *h, const uint8_t *const *seg, const size_t *len, int n);
/* Returns once every submitted byte is hashed (then the digest may be read). */
void gw_hasher_wait(struct gw_hasher *h);
/* Waits, stops the helper. Safe on a zeroed h and twice. */
void gw_hasher_stop(struct gw_hasher *h);

/* ---- fragment transfers (fanout.c) ---- */
struct gw_xfer {
    CURL *easy;
    int index;
    bool running; /* in the multi */
    bool paused;  /* a callback returned PAUSE and nobody resumed it yet */
    bool done;    /* finished: see result and status */
    CURLcode result;
    long status;
    /* Last progress, for the no-progress timeout: set by the owner's callbacks when bytes
     * move and by the owner when it hands new work. Never by gw_xfer_resume: a resume is
     * not progress, and a transfer resumed again and again must still time out. */
    int64_t last_ms;
    char err[CURL_ERROR_SIZE];
};

/* Frees conn, the caller's. Its curl multi (and so the idle container
 * connections it keeps alive) is parked in gw->idle_conns when there is room, for the
 * next gw_conn's first gw_xfer_open: a client that opens a connection per request still
 * reaches the containers over connections already open. Any thread. */
void gw_conn_free(struct gw_conn *conn);
/* Frees every parked multi; after gw_httpd_stop and every worker that uses a gw_conn. */
void gw_conn_pool_free(struct gw *gw);
/* Takes an easy handle from the pool, sets the common options (service token, timeouts,
 * PRIVATE = x) and the url. The caller then sets its callbacks and calls gw_xfer_start. */
int gw_xfer_open(struct gw *gw, struct gw_conn *conn, struct gw_xfer *x, const char *url);
int gw_xfer_start(struct gw_conn *conn, struct gw_xfer *x);
/* Lifts a pause one of x's callbacks asked for (no-op when not paused). curl may call the
 * callback before this returns, and the callback may pause again. Leaves last_ms alone. */
void gw_xfer_resume(struct gw_xfer *x);
/* Removes x from the multi and gives its handle back to the pool. Safe on a closed x. */
void gw_xfer_close(struct gw_conn *conn, struct gw_xfer *x);
/* One round: wait up to poll_ms for activity (less when a curl timer is due), then
 * perform and record finished transfers. */
int gw_fanout_step(struct gw_conn *conn, int poll_ms);
/* Human-readable reason a finished or failed transfer did not succeed. */
void gw_xfer_reason(const struct gw_xfer *x, char *out, size_t cap);
/*
 * Upload streams: one fragment sent to a container with PUT, a record at a time, for the
 * put path (put.c) and repairs (repair.c). The owner hands each stream its next bytes as
 * borrowed segments (gw_upload_record, gw_upload_tail), kept unchanged until the pump has
 * returned; gw_upload_pump drives the transfers until every live stream took them.
 */
#define GW_UPLOAD_SEGS 5 /* header, record prefix, payload, suffix, and the tail of a one-record fragment */
struct gw_seg {
    const uint8_t *p;
    size_t len;
};
struct gw_upload {
    struct gw_xfer x;
    bool live;   /* started and not failed */
    bool stored; /* the container answered 2xx to the whole body */
    struct gw_seg seg[GW_UPLOAD_SEGS];
    int nseg, iseg;
    size_t off;
    bool eof;      /* after the segments, end the body */
    char url[512]; /* the container's base URL (the owner's, for its log) */
    char why[200]; /* why it failed (not live) */
    uint8_t hdr[DYNO_FRAG_HDR_SIZE];
    uint8_t pre[4], suf[4];
};
/* The streams of one put or repair, for gw_upload_pump. */
struct gw_upload_set {
    struct gw_conn *conn;
    struct gw_upload *up; /* n streams, owned by the caller */
    int n;
    int need; /* fewer live streams than this fail the pump (DYNO_EUNAVAIL) */
    int64_t timeout_ms;
    /* Called once for a stream that failed (u->why set, its transfer closed): the owner's
     * log line. May be NULL. */
    void (*on_fail)(void *arg, const struct gw_upload *u);
    void *arg;
};
/* Starts u (zeroed or closed) as a PUT of a fragment of size bytes (-1: unknown, chunked) to
 * url; u->x.index is the caller's. 0 with u->live, else a DYNO_E* with u->why set. */
int gw_upload_open(struct gw *gw, struct gw_conn *conn, struct gw_upload *u, const char *url, int64_t size);
/* Gives u its next record: the fragment header first when first, then payload (borrowed,
 * ulen bytes) framed by its prefix and CRC suffix (suf: a precomputed suffix, or NULL). */
void gw_upload_record(struct gw_upload *u, bool first, const uint8_t *payload, size_t ulen,
                      const uint8_t *suf);
/* Gives u its last bytes (borrowed), after the header when first, then ends the body. */
void gw_upload_tail(struct gw_upload *u, bool first, const uint8_t *tail, size_t len);
/* Number of live streams. */
int gw_upload_live(const struct gw_upload_set *set);
/* Drops u (closes its transfer, records why, calls on_fail). No-op when not live. */
void gw_upload_fail(const struct gw_upload_set *set, struct gw_upload *u, const char *why);
/* Drives the transfers until every live stream handed its segments to the network (final:
 * until every live stream has its answer; a 2xx makes it stored). Streams that fail or make
 * no progress for timeout_ms are dropped. 0, or DYNO_EUNAVAIL once fewer than need are live. */
int gw_upload_pump(const struct gw_upload_set *set, bool final);

/* Deletes fragment ids <key>.<index> at urls in parallel; deleted[i] is set for 2xx and 404.
 * Returns the number deleted. */
int gw_fanout_delete(struct gw *gw, struct gw_conn *conn, const char *key, const int *index,
                     const char *const *url, int n, bool *deleted);
/* Deletes every fragment of a metadata fragments array [{index, url}], then object.purge. */
void gw_purge_fragments(struct gw *gw, struct gw_conn *conn, const char *key, const cJSON *frags);

/* get.c: tells metadata (object.report, a notification) that fragment index of key, read
 * from container (NULL: unknown), is bad ("crc": a CRC or framing mismatch our parser saw)
 * or "missing" (the container answered 404). Never for a timeout or a cut: those are
 * unavailability, and a report makes metadata mark the fragment and rebuild it. */
void gw_report_fragment(struct gw *gw, const char *key, int index, const char *container,
                        const char *problem);

/* ---- handlers ---- */
enum MHD_Result gw_put_begin(struct gw_req *r);             /* put.c: first call of a put */
void gw_put_abort_req(struct gw_req *r);                    /* put.c: client went away */
enum MHD_Result gw_get_object(struct gw_req *r, bool head); /* get.c */
enum MHD_Result gw_object_meta(struct gw_req *r);           /* objects.c */
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
enum MHD_Result gw_metrics(struct gw_req *r);

/* ---- in-memory put (put.c), for ingest ---- */
struct gw_put_mem {
    const char *catalog; /* valid catalog path */
    const char *name;    /* valid object name, or NULL: the key */
    /* who stores it (a valid segment), recorded as the object's publisher; grants nothing */
    const char *publisher;
    int k, m; /* resilience of an erasure-coded object (small ones are replicas) */
    const void *data;
    size_t len;
};
/*
 * Stores in->data as an object, like a REST put (placement, fragments in parallel, commit,
 * object.created), from any thread that owns conn. 0 with *out the put result {key, name,
 * size, sha256, k, m, catalog} (the caller's); else a DYNO_E* code with msg set, and
 * nothing is visible (the object is aborted).
 */
int gw_put_memory(struct gw *gw, struct gw_conn *conn, const struct gw_put_mem *in, cJSON **out, char *msg,
                  size_t cap);

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
