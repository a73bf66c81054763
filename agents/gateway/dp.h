/*
 * The gateway's data path: the core that puts and gets objects, and the two interfaces it
 * reaches the world through (docs/architecture.md, "The data path in the code").
 *
 *   dp_put.c   put = authorize (the adapter) -> place -> encode -> send -> commit
 *   dp_get.c   get = locate (the adapter) -> fetch -> verify -> decode -> stream
 *   dp_repair.c repair = claim -> the get core's read -> encode the lost units -> send (as
 *              a put) -> complete; and garbage collection (gc.claim, delete, gc.complete)
 *   dp.c       what both share: EC contexts, the hashing helper thread, fragment reports,
 *              deleting the fragments of a replaced or evicted object
 *   xfer.c     fragment transfers over a transport: upload streams, parallel deletes
 *   xfer_curl.c the transport of the running gateway: HTTP to containers with libcurl multi
 *   dp_meta.c  the metadata interface of the running gateway: RPC over MQTT
 *
 * The core knows neither HTTP server nor broker: put.c and get.c adapt it to REST,
 * ingest.c to MQTT ingest, and tests/unit/test_gw_datapath.c runs it over a fake transport
 * and a fake metadata.
 */
#ifndef GW_DP_H
#define GW_DP_H
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "ec.h"
#include "frag.h"
#include "hash.h"
#include "names.h"
#include "rtask.h"

struct gw;
struct gw_conn;

#define GW_MAX_N (DYNO_EC_MAX_K + DYNO_EC_MAX_M) /* fragments of one object at most */

/* ---- transport: fragment transfers to and from containers ---- */

/* A callback's "not now": the transfer waits (keeping what it offered) until resumed. */
#define GW_XFER_PAUSE SIZE_MAX

enum gw_xfer_method { GW_XFER_GET, GW_XFER_PUT, GW_XFER_DELETE };
/* How a finished transfer ended (x->result). */
enum gw_xfer_result {
    GW_XFER_OK = 0,     /* the whole answer arrived (see x->status) */
    GW_XFER_CUT = 1,    /* the peer ended the body before its announced length */
    GW_XFER_FAILED = 2, /* connection, protocol or HTTP error: x->err says which */
};

struct gw_xfer_spec {
    enum gw_xfer_method method;
    const char *url;
    const char *range; /* GET: "from-to", or NULL for all */
    int64_t size;      /* PUT: body size, -1 when unknown (chunked) */
    long timeout_ms;   /* the whole transfer at most; 0: only the owner's no-progress rule */
    /* PUT body: fills buf with up to cap bytes; 0 ends the body; GW_XFER_PAUSE: nothing yet. */
    size_t (*read)(char *buf, size_t cap, void *arg);
    /* PUT body known whole at the start (size bytes, borrowed until the transfer is closed),
     * or NULL: read is used. A small body leaves with the request line and headers in one
     * send, instead of a second send (and a second wake-up of the container) after them. */
    const void *body;
    /* Response body of a 2xx: returns len (taken), GW_XFER_PAUSE (offered again after a
     * resume) or anything else to abort. x->status is set before the first call. NULL:
     * dropped. */
    size_t (*write)(const char *p, size_t len, void *arg);
    void *arg;
};

/* One transfer, owned (embedded) by whoever started it. */
struct gw_xfer {
    void *h; /* the transport's handle; NULL when closed */
    int index;
    bool running; /* started and not finished */
    bool paused;  /* a callback returned GW_XFER_PAUSE and nobody resumed it yet */
    bool done;    /* finished: see result and status */
    int result;   /* enum gw_xfer_result */
    long status;
    /* Last progress, for the no-progress timeout: set when bytes move and by the owner when
     * it hands new work. Never by gw_xfer_resume: a resume is not progress, and a transfer
     * resumed again and again must still time out. */
    int64_t last_ms;
    size_t (*read)(char *buf, size_t cap, void *arg); /* the spec's, for the transport */
    size_t (*write)(const char *p, size_t len, void *arg);
    void *arg;
    char err[256]; /* why it failed (GW_XFER_FAILED) */
};

/* What a transport does; every call from the thread that owns conn. */
struct gw_transport {
    /* Sets x->h and starts the transfer (running). 0 or a DYNO_E*. */
    int (*start)(struct gw *gw, struct gw_conn *conn, struct gw_xfer *x, const struct gw_xfer_spec *s);
    /* Lifts a pause; the callback may run (and pause again) before this returns. */
    void (*resume)(struct gw_conn *conn, struct gw_xfer *x);
    /* Stops x if running and releases x->h. */
    void (*close)(struct gw_conn *conn, struct gw_xfer *x);
    /* Waits up to poll_ms for activity, moves bytes, marks finished transfers done. */
    void (*step)(struct gw_conn *conn, int poll_ms);
};
extern const struct gw_transport gw_curl_transport; /* xfer_curl.c */

/* xfer.c: the core's calls, dispatched to gw->tp. */
int gw_xfer_start(struct gw *gw, struct gw_conn *conn, struct gw_xfer *x, const struct gw_xfer_spec *s);
void gw_xfer_resume(struct gw_conn *conn, struct gw_xfer *x); /* no-op when not paused */
void gw_xfer_close(struct gw_conn *conn, struct gw_xfer *x);  /* safe on a closed x */
void gw_xfer_step(struct gw_conn *conn, int poll_ms);
/* Human-readable reason a finished or failed transfer did not succeed. */
void gw_xfer_reason(const struct gw_xfer *x, char *out, size_t cap);

/*
 * Upload streams: one fragment sent to a container with PUT, a record at a time, for the
 * put path (dp_put.c) and repairs (repair.c). The owner hands each stream its next bytes
 * (gw_upload_record, gw_upload_tail), borrowed and kept unchanged until the pump has
 * returned; the framing is lib/frag.c's (dyno_frag_writer). gw_upload_pump drives the
 * transfers until every live stream took them.
 */
#define GW_UPLOAD_SEGS 5 /* header, record prefix, payload, suffix, and the tail of a one-record fragment */
struct gw_upload {
    struct gw_xfer x;
    bool live;   /* started and not failed */
    bool stored; /* the container answered 2xx to the whole body */
    struct dyno_frag_seg seg[GW_UPLOAD_SEGS];
    int nseg, iseg;
    size_t off;
    bool eof;      /* after the segments, end the body */
    uint8_t *body; /* the whole body in one piece (gw_upload_open of a complete small one) */
    char url[512]; /* the container's base URL (the owner's, for its log) */
    char why[200]; /* why it failed (not live) */
    struct dyno_frag_writer w;
};
/* The streams of one put or repair, for gw_upload_pump. */
struct gw_upload_set {
    struct gw *gw;
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
/* Starts u (its writer set up, transfer closed) as a PUT of a fragment of size bytes (-1:
 * unknown, chunked) to url; u->x.index is the caller's. 0 with u->live, else a DYNO_E*
 * with u->why set. A stream whose segments already hold the whole fragment (a deferred
 * replica) of at most GW_UPLOAD_INLINE_MAX bytes is gathered into u->body and sent with
 * its request headers in one piece. */
#define GW_UPLOAD_INLINE_MAX (128 * 1024) /* a replica of small_max (64 KiB) and its framing */
int gw_upload_open(struct gw *gw, struct gw_conn *conn, struct gw_upload *u, const char *url, int64_t size);
/* Closes u's transfer and frees what gw_upload_open gathered; safe on a closed u. */
void gw_upload_close(struct gw_conn *conn, struct gw_upload *u);
/* Gives u its next record (payload borrowed, ulen bytes; suf: a precomputed CRC suffix or
 * NULL), after the fragment header when it is the first. */
void gw_upload_record(struct gw_upload *u, const uint8_t *payload, size_t ulen, const uint8_t *suf);
/* Gives u its last bytes (the end marker and trailer, borrowed), then ends the body. */
void gw_upload_tail(struct gw_upload *u, const uint8_t *tail, size_t len);
int gw_upload_live(const struct gw_upload_set *set);
/* Drops u (closes its transfer, records why, calls on_fail). No-op when not live. */
void gw_upload_fail(const struct gw_upload_set *set, struct gw_upload *u, const char *why);
/* Drives the transfers until every live stream handed its segments on (final: until every
 * live stream has its answer; a 2xx makes it stored). Streams that fail or make no
 * progress for timeout_ms are dropped. 0, or DYNO_EUNAVAIL once fewer than need are live. */
int gw_upload_pump(const struct gw_upload_set *set, bool final);
/* Deletes fragment ids <key>.<index> at urls in parallel; deleted[i] is set for 2xx and 404.
 * Returns the number deleted. */
int gw_fanout_delete(struct gw *gw, struct gw_conn *conn, const char *key, const int *index,
                     const char *const *url, int n, bool *deleted);

/* Fragment buffers (a get's fifos) of at least need bytes, *cap their real size. A get of a
 * few MiB used to map fresh pages for each of its fifos and fault every one of them in;
 * these come from a small gateway-wide pool of GW_SPARE_BUFS buffers (any thread). NULL
 * when out of memory. gw_buf_give takes NULL. */
uint8_t *gw_buf_take(struct gw *gw, size_t need, size_t *cap);
void gw_buf_give(struct gw *gw, uint8_t *p, size_t cap);
void gw_buf_pool_free(struct gw *gw); /* at shutdown, when no get runs */

/* ---- metadata: the RPCs and notifications the core sends ---- */
struct gw_meta {
    /* An RPC to metadata. unknown (may be NULL for a read) is set when the request went out
     * and no answer came (lib/mq.h DYNO_ETIMEDOUT). *result is the caller's (may be NULL). */
    int (*call)(struct gw *gw, const char *method, const cJSON *params, cJSON **result, char *msg, size_t cap,
                bool *unknown);
    /* A notification (no answer). */
    void (*notify)(struct gw *gw, const char *method, const cJSON *params);
    /* Waits up to ms for a way to metadata (the broker connection); returns at once when
     * there is one. */
    void (*wait_reachable)(struct gw *gw, int ms);
    bool (*reachable)(struct gw *gw);
    /* A catalog event (events.c gw_event_emit). */
    void (*emit)(struct gw *gw, const char *type, const char *catalog, const char *key, const char *name,
                 int64_t size, const char *sha256);
};
extern const struct gw_meta gw_mqtt_meta; /* dp_meta.c */

/* ---- container latency (rtt.c) ----
 * A round-trip estimate per container from the fragment GETs' time to first byte (an EWMA,
 * or the recent floor when lower), kept by the gateway for the read order of dp_get.c: the
 * fragments of its own site first, then those on containers near the best one or not
 * measured (lately), data first, then those on containers measured clearly slower, nearest
 * first. Times are passed in (now_ms: the gateway's monotonic gw_now_ms), so the tests
 * choose them. Any thread (a mutex). */
#define GW_RTT_SLOTS 256      /* containers remembered; past that the least recently sampled goes */
#define GW_RTT_EWMA_DIV 4     /* a new sample weighs 1/4 */
#define GW_RTT_FLOOR_MS 10000 /* the floor is the lowest sample of about this long */
#define GW_RTT_NEAR_US 10000  /* latencies within 2 x the best + this are alike (one site's noise) */
#define GW_RTT_TTL_MS 60000   /* an estimate without a new sample for this long is forgotten */
struct gw_rtt_slot {
    char container[DYNO_SEG_MAX + 1];
    int64_t srtt_us;     /* the EWMA */
    int64_t floor_us;    /* the lowest recent sample */
    int64_t floor_at_ms; /* when that was */
    int64_t at_ms;       /* the last sample */
};
struct gw_rtt {
    pthread_mutex_t mu;
    bool ready; /* gw_rtt_init ran: a zeroed table knows nothing and records nothing */
    int n;
    struct gw_rtt_slot slot[GW_RTT_SLOTS];
};
void gw_rtt_init(struct gw_rtt *r);
void gw_rtt_destroy(struct gw_rtt *r); /* safe on a zeroed r and twice */
/* One sample of us microseconds for container (a valid segment; others are ignored). */
void gw_rtt_note(struct gw_rtt *r, const char *container, int64_t us, int64_t now_ms);
/* No answer from container in us (the fragment timeout): a sample that also lifts the floor. */
void gw_rtt_silent(struct gw_rtt *r, const char *container, int64_t us, int64_t now_ms);
/* The estimate for container in microseconds, -1 when it was never measured or its last
 * sample is older than GW_RTT_TTL_MS. */
int64_t gw_rtt_get(struct gw_rtt *r, const char *container, int64_t now_ms);
/* Appends the live estimates to a metrics page (dyno_gateway_container_rtt_microseconds, a
 * gauge labelled by container; containers are valid segments, so need no escaping). 0 or
 * the buffer's error. */
struct dyno_buf;
int gw_rtt_render(struct gw_rtt *r, int64_t now_ms, struct dyno_buf *out);
/* Whether an estimate of us is clearly slower than the best one (best_us): past 2 x best +
 * GW_RTT_NEAR_US. The containers of one site answer within a few ms of each other, and
 * telling them apart by noise would trade a data fragment for parity and a decode. */
bool gw_rtt_far(int64_t us, int64_t best_us);

/* ---- shared steps (dp.c) ---- */
/* The shape of an object as metadata records it (an object.get result, a repair task). */
struct gw_shape {
    struct dyno_layout lay; /* size, unit, k */
    int k, m;
    bool replica;
    uint8_t sha256[32];
};
/* Reads and checks size, k, m, unit, sha256 and replica of o. 0 or DYNO_EPROTO. */
int gw_shape_parse(const cJSON *o, struct gw_shape *out);

/* EC contexts, cached per (k, m), immutable, shared by threads. */
int gw_ec_get(struct gw *gw, int k, int m, const struct dyno_ec **out);

/* SHA-256 off the request's thread. SHA-256 is the biggest CPU cost of a large put or get
 * (one pass over the object, about 1.8 GB/s with SHA-NI). A request of several stripes
 * hashes stripe s on its own helper thread while its thread encodes, checks and moves the
 * bytes, one stripe at a time: the caller keeps the submitted bytes unchanged until
 * gw_hasher_wait returns. Without a helper (not asked for, or its thread failed to start)
 * submit hashes inline. */
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
int gw_hasher_init(struct gw_hasher *h, struct dyno_sha256 *sha, bool helper);
void gw_hasher_submit(struct gw_hasher *h, const uint8_t *const *seg, const size_t *len, int n);
void gw_hasher_wait(struct gw_hasher *h);
void gw_hasher_stop(struct gw_hasher *h); /* safe on a zeroed h and twice */

/* Tells metadata (object.report, a notification) that fragment index of key, read from
 * container (NULL: unknown), is bad ("crc": a CRC or framing mismatch our parser saw) or
 * "missing" (the container answered 404). Never for a timeout or a cut: those are
 * unavailability, and a report makes metadata mark the fragment and rebuild it. */
void gw_report_fragment(struct gw *gw, const char *key, int index, const char *container,
                        const char *problem);
/* Deletes every fragment of a metadata fragments array [{index, url}], then object.purge. */
void gw_purge_fragments(struct gw *gw, struct gw_conn *conn, const char *key, const cJSON *frags);

/* ---- put (dp_put.c) ---- */
struct gw_put_args {
    const char *catalog;   /* a valid catalog path the caller may write to (authorized) */
    const char *name;      /* a valid object name, or NULL: the key */
    const char *publisher; /* who stores it (a valid segment), recorded; grants nothing */
    int k, m;              /* resilience of an erasure-coded object (small ones are replicas) */
    int64_t size;          /* the body's size, -1 when unknown (decided at small_max + 1 bytes) */
    int64_t t0_us;         /* when the request began (gw_put_us), for the stage timers; 0: now */
    bool site_relaxed;     /* the catalog's "site_spread": "relaxed" (gw_site_relaxed) */
    bool quiet;            /* no object.created (the parts of an S3 multipart upload) */
    bool dedupe;           /* a named object: when its name already holds the same bytes,
                            * nothing is stored (object.commit "dedupe", MQTT ingest) */
};
/* Whether a catalog (pubsub's catalog.get answer) allows more than m fragments on a site. */
bool gw_site_relaxed(const cJSON *cat);
struct gw_put;
/* A monotonic clock in microseconds: the put's per-stage timers ("put committed" log line). */
int64_t gw_put_us(void);
/* A put: with a known size, object.begin runs (placement) and the streams open now. 0, or
 * a DYNO_E* with msg set (*out is then NULL and nothing is left behind). */
int gw_put_new(struct gw *gw, struct gw_conn *conn, const struct gw_put_args *a, struct gw_put **out,
               char *msg, size_t cap);
/* The next body bytes: encoded and sent a stripe at a time. 0 or a DYNO_E* (gw_put_msg). */
int gw_put_write(struct gw_put *p, const void *data, size_t len);
/* Ends the body: last stripe, trailers, the containers' answers, object.commit,
 * object.created. 0 with *out the result {key, name, size, sha256, k, m, catalog[,
 * replica][, degraded]} (the caller's); else a DYNO_E* (gw_put_msg). With dedupe, when
 * metadata found the same bytes under the name: 0 with *out that object (as object.get)
 * plus "duplicate": true, no event, and this put's fragments are deleted by gw_put_close. */
int gw_put_finish(struct gw_put *p, cJSON **out);
/* The object's attributes (a JSON object: S3's etag, content_type, meta; issue 14), sent
 * with object.commit and shown by object.get as "attrs". Copied; before gw_put_finish.
 * 0 or DYNO_ENOMEM. */
int gw_put_set_attrs(struct gw_put *p, const cJSON *attrs);
const char *gw_put_msg(const struct gw_put *p);
const char *gw_put_key(const struct gw_put *p); /* "" before placement */
uint64_t gw_put_size(const struct gw_put *p);   /* body bytes so far */
/* Ends p: an uncommitted put is aborted (its fragments deleted only once metadata confirmed
 * the abort), a committed one deletes the fragments of the object it replaced. Frees p. */
void gw_put_close(struct gw_put *p);

/* ---- reservations (dp_resv.c): small objects placed ahead, in batches ---- */
struct gw_resv;
/* A pool of reservations of replicas with m parity copies (k = 1), batch per object.reserve,
 * released unused after ttl_ms. Without gw_resv_start nothing refills it by itself. */
int gw_resv_new(struct gw *gw, int m, int batch, int64_t ttl_ms, struct gw_resv **out);
int gw_resv_start(struct gw_resv *r); /* the refill thread */
/* Stops the thread and releases every unused reservation. Safe on NULL. */
void gw_resv_free(struct gw_resv *r);
/* One object.reserve for what the pool lacks: 0 or the call's error. */
int gw_resv_refill(struct gw_resv *r);
/* A reservation {key, unit, k, m, fragments} for a replica of m parity copies, the caller's
 * (cJSON_Delete), or NULL (none fresh, or another shape): then the put uses object.begin. */
cJSON *gw_resv_take(struct gw_resv *r, int m);
/* Marks every held reservation stale (a placement failed): the thread releases them. */
void gw_resv_flush(struct gw_resv *r);
/* Releases the reservations older than the ttl, or all. */
void gw_resv_expire(struct gw_resv *r, bool all);
int gw_resv_count(struct gw_resv *r);

/* In-memory put (MQTT ingest): gw_put_new, write, finish and close in one call. */
struct gw_put_mem {
    const char *catalog;
    const char *name;
    const char *publisher;
    int k, m;
    bool site_relaxed;
    const void *data;
    size_t len;
    bool dedupe; /* gw_put_args.dedupe */
};
int gw_put_memory(struct gw *gw, struct gw_conn *conn, const struct gw_put_mem *in, cJSON **out, char *msg,
                  size_t cap);

/* ---- get (dp_get.c) ---- */
struct gw_get;
/* A get of key from its object.get record (locate). 0 or DYNO_EPROTO / DYNO_ENOMEM. */
int gw_get_new(struct gw *gw, struct gw_conn *conn, const char *key, const cJSON *obj, struct gw_get **out);
uint64_t gw_get_size(const struct gw_get *g);
struct gw *gw_get_gw(const struct gw_get *g);
void gw_get_sha256(const struct gw_get *g, char hex[65]);
#define GW_GET_VERIFY 1u   /* check the object's SHA-256 (a whole read) before its last stripe */
#define GW_GET_INTERNAL 2u /* a repair's read: not counted in the client metrics */
/* Reads bytes [first, last] (inclusive, within the object, which is not empty), with
 * GW_GET_* flags. Fetches the first stripe before it returns, so a read that cannot start
 * fails here. 0 or a DYNO_E* (gw_get_msg). In the object record, a fragment with
 * "last_resort": true is read only when the others are not enough. */
int gw_get_start(struct gw_get *g, uint64_t first, uint64_t last, unsigned flags);
/* Up to max next bytes into buf: the count, 0 at the end, -1 on an error (gw_get_msg; the
 * read is over). Never waits on a fragment longer than fragment_timeout_ms at a time. */
ssize_t gw_get_read(struct gw_get *g, char *buf, size_t max);
/* A read that fits in the stripe gw_get_start fetched (objects up to k units, and short
 * ranges): its bytes where they lie, in up to GW_MAX_N segments, so the adapter hands them to
 * the client without copying them (they stay put until gw_get_free). Returns the segment
 * count, or 0 when the read has more stripes (then gw_get_read). */
int gw_get_whole(struct gw_get *g, struct dyno_frag_seg *seg, int max);
const char *gw_get_msg(const struct gw_get *g);
void gw_get_free(struct gw_get *g);
/* ---- repair (dp_repair.c) ---- */
struct gw_rtask {
    struct gw *gw;
    struct gw_conn *conn;
    char id[DYNO_KEY_LEN + 1];
    char key[DYNO_KEY_LEN + 1];
    char catalog[DYNO_CATALOG_MAX + 1];
    char name[DYNO_NAME_MAX + 1];
    uint8_t sha256[32];
    int k, m, n;
    bool replica;
    struct dyno_layout lay;
    struct dyno_rtask_loc src[GW_MAX_N], tgt[GW_MAX_N]; /* lib/rtask.h: draining sources last */
    int nsrc, ntgt;
    uint8_t *stripe, *parity;       /* the stripe read (k units) and its m parity units */
    const uint8_t *buf[GW_MAX_N];   /* per fragment index, its unit of the current stripe */
    struct gw_upload put[GW_MAX_N]; /* one rebuilt fragment streamed to each target, as tgt */
    struct gw_upload_set set;       /* put, for gw_upload_pump */
    const struct dyno_ec *ec;
    uint64_t bytes_read, bytes_written;
    char msg[300];
};
/* Fills t (zeroed, with gw and conn set) from a repair.claim task (lib/rtask.h's decoder).
 * 0 or DYNO_EPROTO. */
int gw_rtask_init(struct gw_rtask *t, const cJSON *task);
/* Rebuilds every target of t; pace (may be NULL) is told the bytes of each stripe and may
 * stop the task (true). 0 when the streams reached their end (t->put[i].stored says each
 * target's outcome), else a DYNO_E* with t->msg. */
int gw_rtask_rebuild(struct gw_rtask *t, bool (*pace)(void *arg, uint64_t bytes), void *arg);
int gw_rtask_live_targets(const struct gw_rtask *t);
void gw_rtask_free(struct gw_rtask *t); /* what rebuild holds, not t itself */
/*
 * One step of a repair worker, over gw->meta: claims a task for worker (repair.claim),
 * rebuilds it (gw_rtask_rebuild, pace as there) and reports every target's outcome
 * (repair.complete). 1 when a task was run (whatever its outcome, logged), 0 when none was
 * waiting, a DYNO_E* when the claim failed. An unusable task is not reported: its lease
 * runs out and metadata hands it out again.
 */
int gw_repair_next(struct gw *gw, struct gw_conn *conn, const char *worker,
                   bool (*pace)(void *arg, uint64_t bytes), void *arg);
#define GW_GC_BATCH 100 /* items per gc.claim */
/* One batch of garbage collection over gw->meta: gc.claim, DELETE of each fragment on its
 * container (in parallel per key), gc.complete with each item's outcome. Returns the items
 * handed out (0: nothing to do, or metadata unreachable). */
int gw_gc_next(struct gw *gw, struct gw_conn *conn, const char *worker);
#endif
