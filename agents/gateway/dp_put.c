/*
 * The put core (SPEC §6), top to bottom: place (object.begin) -> encode (a stripe at a
 * time) -> send (n fragment streams) -> commit (object.commit, resolved when its outcome is
 * unknown). Authorization is the adapter's (put.c for REST, ingest.c for MQTT ingest).
 *
 * The body is cut into stripes of k units; each stripe is hashed (SHA-256 of the object),
 * encoded (m parity units) and handed as one record to each of the n fragment streams,
 * which the transport sends in parallel to n containers. Memory per put is the stripe
 * buffer plus m parity units plus the transport's buffers, whatever the object size.
 *
 * Objects of at most small_max bytes are stored as m + 1 replicas (k = 1, replica flag).
 * Without a known size the first small_max + 1 bytes are buffered to decide. A replica is
 * one record: its streams start only when the whole body is in, so each container gets
 * header, record and trailer in one request with no pause in between (latency of small
 * puts); object.begin still runs as soon as the size is known.
 *
 * Everything runs in the caller's thread: when a stripe is ready it drives the transfers
 * until every live stream has taken its record, then returns for more body. That is the
 * back-pressure: a slow container slows the client.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crashpoint.h"
#include "gw.h"
#include "hash.h"
#include "json.h"
#include "log.h"

enum put__mode { PUT_UNDECIDED, PUT_REPLICA, PUT_EC };

struct gw_put {
    struct gw *gw;
    struct gw_conn *conn;
    enum put__mode mode;
    int k, m, n, quorum;
    int req_k, req_m;  /* resilience asked for (EC); a replica uses 1, req_m */
    bool site_relaxed; /* object.begin "site_spread": "relaxed" */
    uint32_t unit;
    int64_t declared; /* the announced size, or -1 */
    uint64_t size;    /* body bytes so far */
    bool begun;       /* object.begin succeeded: abort must clean up */
    bool committed;   /* object.commit succeeded: never abort */
    bool deferred;    /* a replica: the streams start in gw_put_finish, with everything */
    bool reserved;    /* placed by a reservation (dp_resv.c): the commit names catalog and name */
    char key[DYNO_KEY_LEN + 1];
    char catalog[DYNO_CATALOG_MAX + 1];
    char name[DYNO_NAME_MAX + 1]; /* "" when none was given */
    char publisher[DYNO_SEG_MAX + 1];
    const struct dyno_ec *ec;
    struct dyno_sha256 *sha;
    struct gw_hasher hash; /* hashes the stripe while it is encoded and sent */
    uint8_t *stripe;
    size_t stripe_cap; /* k * unit: a full stripe */
    size_t fill;
    uint8_t *parity; /* m units of parity_unit bytes */
    size_t parity_unit;
    uint64_t records;
    struct gw_upload *up;     /* n fragment streams (xfer.c) */
    struct gw_upload_set set; /* up, for gw_upload_pump */
    struct dyno_buf pre;      /* the undecided prefix of a body of unknown size */
    uint8_t sha256[32];
    /* The object this put replaced: its fragments are deleted by gw_put_close. */
    bool quiet;     /* gw_put_args.quiet: no object.created */
    bool dedupe;    /* gw_put_args.dedupe: object.commit "dedupe" */
    bool duplicate; /* metadata discarded it as a copy (now deleting): its fragments go */
    char purge_key[DYNO_KEY_LEN + 1];
    cJSON *purge_frags;
    cJSON *attrs; /* the object's attributes for object.commit (gw_put_set_attrs), or NULL */
    /* Stage timers (gw_put_us): the "put committed" log line gives each stage's share. */
    int64_t t_start, t_new, t_placed, t_finish, t_sent, t_committed, t_event;
    int64_t encode_us; /* inside put__encode_send: erasure code and CRC */
    char msg[400];
};

int64_t gw_put_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int gw_put_set_attrs(struct gw_put *p, const cJSON *attrs)
{
    cJSON *copy = attrs ? cJSON_Duplicate(attrs, true) : NULL;
    if (attrs && !copy)
        return DYNO_ENOMEM;
    cJSON_Delete(p->attrs);
    p->attrs = copy;
    return 0;
}

const char *gw_put_msg(const struct gw_put *p)
{
    return p->msg;
}

const char *gw_put_key(const struct gw_put *p)
{
    return p->key;
}

uint64_t gw_put_size(const struct gw_put *p)
{
    return p->size;
}

/* ---- send: the fragment streams ---- */

static void put__stream_failed(void *arg, const struct gw_upload *u)
{
    const struct gw_put *p = arg;
    dyno_warn("fragment stream failed", "key=%s index=%d url=%s reason=\"%s\"", p->key, u->x.index, u->url,
              u->why);
    /* The reservations placed with the same registry may name the same container. */
    if (p->reserved)
        gw_resv_flush(p->gw->resv);
}

static int put__live(const struct gw_put *p)
{
    return p->up ? gw_upload_live(&p->set) : 0;
}

/* Fills p->msg with why the put cannot reach its quorum. */
static int put__quorum_error(struct gw_put *p)
{
    size_t o = (size_t)snprintf(p->msg, sizeof(p->msg), "only %d of %d fragment streams succeeded, %d needed",
                                put__live(p), p->n, p->quorum);
    for (int i = 0; i < p->n && o < sizeof(p->msg); i++) {
        if (!p->up[i].live && p->up[i].why[0])
            o += (size_t)snprintf(p->msg + o, sizeof(p->msg) - o, "; fragment %d: %s", i, p->up[i].why);
    }
    return DYNO_EUNAVAIL;
}

/* gw_upload_pump over the put's streams; below the quorum the put fails. */
static int put__pump(struct gw_put *p, bool final)
{
    return gw_upload_pump(&p->set, final) ? put__quorum_error(p) : 0;
}

/* Starts the n fragment streams (fsize bytes each, -1 = chunked); fails below the quorum. */
static int put__open_streams(struct gw_put *p, int64_t fsize)
{
    for (int i = 0; i < p->n; i++) {
        struct gw_upload *s = &p->up[i];
        char furl[700];
        snprintf(furl, sizeof(furl), "%s/v1/fragments/%s.%d", s->url, p->key, i);
        if (gw_upload_open(p->gw, p->conn, s, furl, fsize) != 0 && p->reserved)
            gw_resv_flush(p->gw->resv);
    }
    if (put__live(p) < p->quorum)
        return put__quorum_error(p);
    /* Let the connections open (and a deferred replica go out) at once. */
    gw_xfer_step(p->conn, 0);
    return 0;
}

/* ---- encode ---- */

/* Encodes the stripe (units of ulen bytes) and hands one record to every live stream. */
static int put__encode_send(struct gw_put *p, size_t ulen)
{
    int64_t t = gw_put_us();
    uint8_t *data[DYNO_EC_MAX_K], *par[DYNO_EC_MAX_M];
    for (int i = 0; i < p->k; i++)
        data[i] = p->stripe + (size_t)i * ulen;
    for (int j = 0; j < p->m; j++)
        par[j] = p->parity + (size_t)j * p->parity_unit;
    if (p->mode == PUT_EC && p->m > 0) {
        int rc = dyno_ec_encode(p->ec, ulen, data, par);
        if (rc) {
            snprintf(p->msg, sizeof(p->msg), "erasure coding failed: %s", dyno_strerror(rc));
            return rc;
        }
    }
    /* Every replica carries the same record: its CRC is computed once. */
    uint8_t rep_suf[4];
    if (p->mode == PUT_REPLICA)
        dyno_frag_rec_suffix(p->stripe, ulen, rep_suf);
    for (int i = 0; i < p->n; i++) {
        if (!p->up[i].live && !p->deferred)
            continue;
        const uint8_t *payload = p->mode == PUT_REPLICA ? p->stripe : i < p->k ? data[i] : par[i - p->k];
        gw_upload_record(&p->up[i], payload, ulen, p->mode == PUT_REPLICA ? rep_suf : NULL);
    }
    p->encode_us += gw_put_us() - t;
    p->records++;
    p->fill = 0;
    return p->deferred ? 0 : put__pump(p, false);
}

/* Hashes, encodes and sends the stripe buffer (fill bytes). */
static int put__flush(struct gw_put *p)
{
    size_t len = p->fill;
    size_t ulen = (len + (size_t)p->k - 1) / (size_t)p->k;
    /* The last data unit is zero-padded up to ulen. */
    memset(p->stripe + len, 0, (size_t)p->k * ulen - len);
    /* The helper hashes the stripe while this thread encodes and sends it; both are done
     * with it before put__flush returns (the next body bytes overwrite it). */
    const uint8_t *hseg = p->stripe;
    gw_hasher_submit(&p->hash, &hseg, &len, 1);
    int rc = put__encode_send(p, ulen);
    gw_hasher_wait(&p->hash);
    return rc;
}

static int put__feed(struct gw_put *p, const uint8_t *data, size_t len)
{
    while (len > 0) {
        if (dyno_fill(p->stripe, &p->fill, p->stripe_cap, &data, &len)) {
            int rc = put__flush(p);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* ---- place: object.begin, buffers, streams ---- */

/* The resilience and write quorum of a put of size bytes (-1: unknown). */
static void put__shape(struct gw_put *p, int64_t size, bool replica)
{
    struct gw *gw = p->gw;
    p->mode = replica ? PUT_REPLICA : PUT_EC;
    p->k = replica ? 1 : p->req_k;
    p->m = p->req_m;
    p->n = p->k + p->m;
    /* A replica's unit is the object itself: one record, and no 1 MiB buffers for 4 KiB. */
    p->unit = replica ? (uint32_t)(size > 0 ? size : 1) : (uint32_t)gw->cfg.unit;
    int q = gw->cfg.write_quorum > 0 ? (int)gw->cfg.write_quorum : replica ? 2 : p->k + 1;
    if (q > p->n)
        q = p->n;
    if (!replica && q < p->k)
        q = p->k; /* fewer than k fragments cannot be read back */
    p->quorum = q < 1 ? 1 : q;
}

/* object.begin: the key and the placement (frags, the caller's) of the object. */
static int put__begin(struct gw_put *p, int64_t size, bool replica, cJSON **res)
{
    cJSON *params = cJSON_CreateObject();
    if (!params)
        return DYNO_ENOMEM;
    cJSON_AddStringToObject(params, "catalog", p->catalog);
    if (p->name[0])
        cJSON_AddStringToObject(params, "name", p->name);
    cJSON_AddStringToObject(params, "publisher", p->publisher);
    dyno_json_add_i64(params, "size", size);
    cJSON_AddNumberToObject(params, "k", p->k);
    cJSON_AddNumberToObject(params, "m", p->m);
    cJSON_AddBoolToObject(params, "replica", replica);
    if (p->site_relaxed)
        cJSON_AddStringToObject(params, "site_spread", "relaxed");
    dyno_json_add_i64(params, "unit", p->unit);
    int rc = p->gw->meta->call(p->gw, "object.begin", params, res, p->msg, sizeof(p->msg), NULL);
    cJSON_Delete(params);
    if (rc)
        return rc;

    const char *key = dyno_json_str(*res, "key");
    const cJSON *frags = cJSON_GetObjectItemCaseSensitive(*res, "fragments");
    int64_t unit = p->unit;
    if (dyno_json_i64(*res, "unit", &unit) == DYNO_EINVAL)
        unit = 0;
    /* If it gave a key, it has a pending object to forget (abort). */
    if (dyno_valid_key(key)) {
        memcpy(p->key, key, sizeof(p->key));
        p->begun = true;
    }
    if (!dyno_valid_key(key) || !cJSON_IsArray(frags) || cJSON_GetArraySize(frags) != p->n || unit < 1 ||
        unit > (int64_t)DYNO_FRAG_MAX_UNIT || (replica && unit < size)) {
        snprintf(p->msg, sizeof(p->msg), "metadata object.begin answered an unusable placement");
        return DYNO_EPROTO;
    }
    p->unit = (uint32_t)unit;
    return 0;
}

/* Stripe and parity buffers, the streams' state, the hashing helper and the EC context. */
static int put__buffers(struct gw_put *p, int64_t size, bool replica)
{
    /* A full stripe is k units, but a small known size needs only size + k (the padding
     * of the one short stripe). */
    p->stripe_cap = (size_t)p->k * p->unit;
    size_t alloc = p->stripe_cap;
    p->parity_unit = p->unit;
    if (size >= 0 && (uint64_t)size + (uint64_t)p->k < alloc) {
        alloc = (size_t)size + (size_t)p->k;
        p->parity_unit = (size_t)size / (size_t)p->k + 1;
    }
    p->stripe = malloc(alloc > 0 ? alloc : 1);
    p->parity = p->m > 0 && !replica ? malloc((size_t)p->m * p->parity_unit) : NULL;
    p->up = calloc((size_t)p->n, sizeof(*p->up));
    if (!p->stripe || !p->up || (p->m > 0 && !replica && !p->parity)) {
        snprintf(p->msg, sizeof(p->msg), "out of memory");
        return DYNO_ENOMEM;
    }
    p->set = (struct gw_upload_set){.gw = p->gw,
                                    .conn = p->conn,
                                    .up = p->up,
                                    .n = p->n,
                                    .need = p->quorum,
                                    .timeout_ms = p->gw->cfg.fragment_timeout_ms,
                                    .on_fail = put__stream_failed,
                                    .arg = p};
    /* A helper thread hashes while the stripes go out, for objects of several stripes. */
    if (gw_hasher_init(&p->hash, p->sha, !replica && (size < 0 || (uint64_t)size > p->stripe_cap)) != 0)
        dyno_warn("no hashing thread", "key=%s detail=\"hashing inline\"", p->key);
    if (!replica && gw_ec_get(p->gw, p->k, p->m, &p->ec) != 0) {
        snprintf(p->msg, sizeof(p->msg), "no erasure code for k=%d m=%d", p->k, p->m);
        return DYNO_EINVAL;
    }
    return 0;
}

/* Each stream's container (from object.begin's fragments) and fragment header. */
static int put__streams(struct gw_put *p, const cJSON *frags, bool replica)
{
    struct dyno_frag_hdr h = {.version = DYNO_FRAG_VERSION,
                              .k = (uint8_t)p->k,
                              .m = (uint8_t)p->m,
                              .replica = replica,
                              .unit = p->unit};
    memcpy(h.key, p->key, sizeof(h.key));
    snprintf(h.catalog, sizeof(h.catalog), "%s", p->catalog);
    snprintf(h.name, sizeof(h.name), "%s", p->name[0] ? p->name : p->key);

    bool seen[GW_MAX_N] = {false};
    const cJSON *f;
    cJSON_ArrayForEach(f, frags)
    {
        int64_t idx;
        const char *url = dyno_json_str(f, "url");
        if (dyno_json_i64(f, "index", &idx) || idx < 0 || idx >= p->n || seen[idx] || !url ||
            strlen(url) >= sizeof(p->up[0].url) ||
            (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
            snprintf(p->msg, sizeof(p->msg), "metadata object.begin answered a bad fragment list");
            return DYNO_EPROTO;
        }
        seen[idx] = true;
        snprintf(p->up[idx].url, sizeof(p->up[idx].url), "%s", url);
    }
    for (int i = 0; i < p->n; i++) {
        h.index = (uint8_t)i;
        int rc = dyno_frag_writer_init(&p->up[i].w, &h);
        if (rc) {
            snprintf(p->msg, sizeof(p->msg), "cannot encode the fragment header: %s", dyno_strerror(rc));
            return rc;
        }
        p->up[i].x.index = i;
    }
    return 0;
}

/* Places the object (object.begin) and opens its streams, once the size (or that it is
 * too big for a replica) is known. */
static int put__place(struct gw_put *p, int64_t size, bool replica)
{
    cJSON *res = NULL;
    int rc;
    put__shape(p, size, replica);
    /* A small object takes a placement reserved ahead (dp_resv.c) when there is one: no
     * object.begin on its way. Its key is pending in metadata like a begun one. Not in a
     * catalog with "site_spread": "relaxed": a reservation is placed, and recorded, under
     * the strict rule, and its commit cannot change that (repair would hold the object to
     * the strict rule then), so those use object.begin. */
    if (replica && !p->site_relaxed && size >= 0 && size <= p->gw->cfg.small_max &&
        (res = gw_resv_take(p->gw->resv, p->m)) != NULL) {
        memcpy(p->key, dyno_json_str(res, "key"), sizeof(p->key));
        p->begun = p->reserved = true;
        rc = 0;
    } else {
        rc = put__begin(p, size, replica, &res);
    }
    if (rc == 0)
        rc = put__buffers(p, size, replica);
    if (rc == 0)
        rc = put__streams(p, cJSON_GetObjectItemCaseSensitive(res, "fragments"), replica);
    cJSON_Delete(res);
    if (rc)
        return rc;
    p->t_placed = gw_put_us();
    p->deferred = replica;
    if (!replica) {
        struct dyno_layout lay = {.size = size >= 0 ? (uint64_t)size : 0, .unit = p->unit, .k = p->k};
        return put__open_streams(p, size >= 0 ? (int64_t)dyno_layout_fragment_size(&lay) : -1);
    }
    return 0;
}

/* ---- commit ---- */

static void put__nap(int64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/*
 * object.commit, with its outcome resolved. A commit that got no answer may have been
 * carried out (lib/mq.h), and metadata answers a repeated commit of an object it committed
 * with that object, so the commit is sent again until metadata answers, for
 * commit_resolve_ms at most (while the broker is down nothing can be sent: it waits for the
 * connection). 0 with *res; a definite refusal (the object was never committed); or, still
 * unknown at the end, DYNO_ETIMEDOUT: the abort that follows deletes nothing unless
 * metadata confirms it (put__abort).
 */
static int put__commit_resolved(struct gw_put *p, const cJSON *params, cJSON **res)
{
    struct gw *gw = p->gw;
    int64_t deadline = gw_now_ms() + gw->cfg.commit_resolve_ms;
    bool unknown = false;
    int rc, tries = 0;
    for (;;) {
        bool unk = false;
        tries++;
        rc = gw->meta->call(gw, "object.commit", params, res, p->msg, sizeof(p->msg), &unk);
        if (unk)
            unknown = true;
        else if (rc != DYNO_EUNAVAIL) {
            unknown = false; /* answered: committed, or refused for good */
            break;
        } else if (!unknown)
            break; /* never carried out: no earlier attempt can have reached metadata */
        /* Unknown, or not sent / refused for now after an unknown attempt: ask again. */
        int64_t left = deadline - gw_now_ms();
        if (left <= 0)
            break;
        if (!gw->meta->reachable(gw))
            gw->meta->wait_reachable(gw, (int)(left < 1000 ? left : 1000));
        else if (!unk)
            put__nap(left < 200 ? left : 200); /* an overloaded metadata: do not spin */
    }
    if (tries > 1)
        dyno_info("commit retried", "key=%s tries=%d outcome=%s", p->key, tries,
                  unknown && rc ? "unknown"
                  : rc          ? dyno_err_code(rc)
                                : "committed");
    if (rc && unknown) {
        snprintf(p->msg, sizeof(p->msg),
                 "metadata did not answer object.commit of %s within %lld ms: the object may or may not "
                 "have been stored",
                 p->key, (long long)gw->cfg.commit_resolve_ms);
        return DYNO_ETIMEDOUT;
    }
    return rc;
}

/* object.commit with what the containers stored. */
static int put__commit(struct gw_put *p, uint64_t fsize, const char *sha_hex, cJSON **res, int *stored)
{
    cJSON *params = cJSON_CreateObject();
    if (!params)
        return DYNO_ENOMEM;
    cJSON_AddStringToObject(params, "key", p->key);
    dyno_json_add_i64(params, "size", (int64_t)p->size);
    cJSON_AddStringToObject(params, "sha256", sha_hex);
    if (p->reserved) {
        /* Metadata learns the object's identity only now (md_store_commit_resv). */
        cJSON_AddStringToObject(params, "catalog", p->catalog);
        if (p->name[0])
            cJSON_AddStringToObject(params, "name", p->name);
        cJSON_AddStringToObject(params, "publisher", p->publisher);
        cJSON_AddNumberToObject(params, "k", p->k);
        cJSON_AddNumberToObject(params, "m", p->m);
        cJSON_AddBoolToObject(params, "replica", p->mode == PUT_REPLICA);
        dyno_json_add_i64(params, "unit", p->unit);
    }
    if (p->attrs)
        cJSON_AddItemReferenceToObject(params, "attrs", p->attrs);
    if (p->dedupe)
        cJSON_AddBoolToObject(params, "dedupe", true);
    cJSON *fr = cJSON_AddArrayToObject(params, "fragments");
    *stored = 0;
    for (int i = 0; i < p->n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", i);
        cJSON_AddBoolToObject(o, "ok", p->up[i].stored);
        dyno_json_add_i64(o, "size", p->up[i].stored ? (int64_t)fsize : 0);
        cJSON_AddItemToArray(fr, o);
        *stored += p->up[i].stored;
    }
    dyno_crash_point("gateway.put.before_commit");
    int rc = put__commit_resolved(p, params, res);
    cJSON_Delete(params);
    return rc;
}

/* The put's result, as the REST reply and the ingest answer give it. */
static cJSON *put__result(const struct gw_put *p, const char *sha_hex, int stored)
{
    cJSON *body = cJSON_CreateObject();
    if (!body)
        return NULL;
    cJSON_AddStringToObject(body, "key", p->key);
    cJSON_AddStringToObject(body, "name", p->name[0] ? p->name : p->key);
    dyno_json_add_i64(body, "size", (int64_t)p->size);
    cJSON_AddStringToObject(body, "sha256", sha_hex);
    cJSON_AddNumberToObject(body, "k", p->k);
    cJSON_AddNumberToObject(body, "m", p->m);
    cJSON_AddStringToObject(body, "catalog", p->catalog);
    if (p->mode == PUT_REPLICA)
        cJSON_AddBoolToObject(body, "replica", true);
    if (stored < p->n)
        cJSON_AddBoolToObject(body, "degraded", true);
    return body;
}

/* ---- the calls ---- */

int gw_put_new(struct gw *gw, struct gw_conn *conn, const struct gw_put_args *a, struct gw_put **out,
               char *msg, size_t cap)
{
    *out = NULL;
    struct gw_put *p = calloc(1, sizeof(*p));
    if (!p || dyno_sha256_new(&p->sha)) {
        free(p);
        snprintf(msg, cap, "out of memory");
        return DYNO_ENOMEM;
    }
    p->gw = gw;
    p->conn = conn;
    p->t_new = gw_put_us();
    p->t_start = a->t0_us > 0 ? a->t0_us : p->t_new;
    p->req_k = a->k;
    p->req_m = a->m;
    p->site_relaxed = a->site_relaxed;
    p->quiet = a->quiet;
    p->dedupe = a->dedupe && a->name != NULL;
    p->declared = a->size;
    snprintf(p->catalog, sizeof(p->catalog), "%s", a->catalog);
    snprintf(p->name, sizeof(p->name), "%s", a->name ? a->name : "");
    snprintf(p->publisher, sizeof(p->publisher), "%s", a->publisher);
    dyno_buf_init(&p->pre, (size_t)gw->cfg.small_max);
    *out = p;
    if (a->size < 0)
        return 0;
    /* Known size: place now, so placement errors are answered before the body. */
    int rc = put__place(p, a->size, a->size <= gw->cfg.small_max);
    if (rc)
        snprintf(msg, cap, "%s", p->msg[0] ? p->msg : dyno_strerror(rc));
    return rc;
}

int gw_put_write(struct gw_put *p, const void *data, size_t len)
{
    p->size += len;
    if (p->size > (uint64_t)p->gw->cfg.max_body) {
        snprintf(p->msg, sizeof(p->msg), "object larger than max_body (%lld bytes)",
                 (long long)p->gw->cfg.max_body);
        return DYNO_ETOOBIG;
    }
    if (p->declared >= 0 && p->size > (uint64_t)p->declared) {
        snprintf(p->msg, sizeof(p->msg), "more body than announced");
        return DYNO_EINVAL;
    }
    if (p->mode != PUT_UNDECIDED)
        return put__feed(p, data, len);
    if (p->pre.len + len <= (size_t)p->gw->cfg.small_max)
        return dyno_buf_append(&p->pre, data, len);
    /* Too big for a replica: erasure-code it, size unknown. */
    int rc = put__place(p, -1, false);
    if (rc == 0 && p->pre.len)
        rc = put__feed(p, (const uint8_t *)p->pre.data, p->pre.len);
    dyno_buf_free(&p->pre);
    if (rc == 0)
        rc = put__feed(p, data, len);
    return rc;
}

int gw_put_finish(struct gw_put *p, cJSON **out)
{
    struct gw *gw = p->gw;
    int rc;
    *out = NULL;
    p->t_finish = gw_put_us();
    if (p->mode == PUT_UNDECIDED) {
        rc = put__place(p, (int64_t)p->pre.len, true);
        if (rc == 0 && p->pre.len)
            rc = put__feed(p, (const uint8_t *)p->pre.data, p->pre.len);
        dyno_buf_free(&p->pre);
        if (rc)
            return rc;
    }
    if (p->declared >= 0 && p->size != (uint64_t)p->declared) {
        snprintf(p->msg, sizeof(p->msg), "body shorter than announced");
        return DYNO_EINVAL;
    }
    if (p->fill > 0 && (rc = put__flush(p)) != 0)
        return rc;

    /* End marker and trailer: only now are the size and digest known. */
    dyno_sha256_final(p->sha, p->sha256);
    for (int i = 0; i < p->n; i++) {
        struct dyno_frag_seg tail[DYNO_FRAG_WRITER_SEGS];
        int nt = dyno_frag_writer_end(&p->up[i].w, p->size, p->sha256, tail);
        for (int t = 0; t < nt; t++)
            gw_upload_tail(&p->up[i], tail[t].p, tail[t].len);
    }
    struct dyno_layout lay = {.size = p->size, .unit = p->unit, .k = p->k};
    uint64_t fsize = dyno_layout_fragment_size(&lay);
    if (p->deferred && (rc = put__open_streams(p, (int64_t)fsize)) != 0)
        return rc;
    if ((rc = put__pump(p, true)) != 0)
        return rc;
    p->t_sent = gw_put_us();

    char sha_hex[65];
    dyno_hex(p->sha256, 32, sha_hex);
    cJSON *res = NULL;
    int stored = 0;
    if ((rc = put__commit(p, fsize, sha_hex, &res, &stored)) != 0) {
        /* Metadata lost the reservation (its database was rebuilt): so did it every other
         * one held here. This put fails (its abort deletes what it sent); the next ones place
         * afresh. */
        if (rc == DYNO_ENOTFOUND && p->reserved)
            gw_resv_flush(gw->resv);
        return rc;
    }
    p->t_committed = gw_put_us();
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "duplicate"))) {
        /* Not committed: metadata moved it to deleting in the commit's transaction, which
         * confirms it as object.abort would; gw_put_close deletes its fragments. */
        p->duplicate = true;
        dyno_info("put duplicate", "key=%s catalog=%s size=%llu existing=%s", p->key, p->catalog,
                  (unsigned long long)p->size, dyno_json_str(res, "key"));
        *out = res;
        return 0;
    }
    dyno_crash_point("gateway.put.before_reply");

    /* Committed: from here on the object is visible and must not be aborted. Its stripe
     * buffers go now, not when the adapter closes it (after the reply is out). */
    p->committed = true;
    gw_hasher_stop(&p->hash);
    free(p->stripe);
    free(p->parity);
    p->stripe = p->parity = NULL;
    cJSON *replaced = cJSON_GetObjectItemCaseSensitive(res, "replaced");
    const char *old_key = dyno_json_str(replaced, "key");
    if (dyno_valid_key(old_key)) {
        memcpy(p->purge_key, old_key, sizeof(p->purge_key));
        p->purge_frags = cJSON_DetachItemFromObjectCaseSensitive(replaced, "fragments");
    }
    cJSON_Delete(res);
    if (!p->quiet)
        gw->meta->emit(gw, "object.created", p->catalog, p->key, p->name[0] ? p->name : p->key,
                       (int64_t)p->size, sha_hex);
    p->t_event = gw_put_us();
    dyno_metric_add(&gw->metrics[GW_M_PUTS], 1);
    dyno_metric_add(&gw->metrics[GW_M_BYTES_IN], (int64_t)p->size);
    /* Stages in microseconds: auth (request start to the core), place (object.begin or a
     * reservation), body (until the end of the body; includes encode), send (the last
     * records and the containers' answers), commit (object.commit), event (object.created
     * handed to the broker). */
    int64_t placed = p->t_placed ? p->t_placed : p->t_finish;
    dyno_info(
        "put committed",
        "key=%s catalog=%s size=%llu k=%d m=%d stored=%d replica=%d reserved=%d auth_us=%lld place_us=%lld "
        "body_us=%lld encode_us=%lld send_us=%lld commit_us=%lld event_us=%lld total_us=%lld",
        p->key, p->catalog, (unsigned long long)p->size, p->k, p->m, stored, p->mode == PUT_REPLICA,
        p->reserved, (long long)(p->t_new - p->t_start), (long long)(placed - p->t_new),
        (long long)(p->t_finish > placed ? p->t_finish - placed : 0), (long long)p->encode_us,
        (long long)(p->t_sent - p->t_finish), (long long)(p->t_committed - p->t_sent),
        (long long)(p->t_event - p->t_committed), (long long)(p->t_event - p->t_start));
    *out = put__result(p, sha_hex, stored);
    if (!*out) {
        snprintf(p->msg, sizeof(p->msg), "out of memory");
        return DYNO_ENOMEM;
    }
    return 0;
}

/* ---- end: abort or purge, free ---- */

/*
 * Nothing of a failed put may become visible, and nothing committed may be destroyed. The
 * fragments are deleted only once metadata confirmed the abort (the pending object is then
 * 'deleting' and can never be committed; or metadata knows no such object). Any other
 * outcome leaves them where they are: no answer (the abort, or a commit still in flight,
 * may yet be carried out), or "committed" (a commit of unknown outcome went through after
 * all: the object is live). An object that stays pending becomes garbage at metadata's
 * pending_timeout, and GC deletes it then.
 */
static void put__drop_fragments(struct gw_put *p);

static void put__abort(struct gw_put *p)
{
    struct gw *gw = p->gw;
    dyno_metric_add(&gw->metrics[GW_M_PUT_FAILURES], 1);
    if (!p->begun)
        return;
    for (int i = 0; p->up && i < p->n; i++) {
        p->up[i].live = false;
        gw_upload_close(p->conn, &p->up[i]);
    }
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "key", p->key);
    char msg[256], q[300];
    bool unknown = false;
    int rc = gw->meta->call(gw, "object.abort", params, NULL, msg, sizeof(msg), &unknown);
    cJSON_Delete(params);
    /* not_found confirms as well: metadata has no such object (reaped and collected while
     * this put was still sending), so nothing can commit it, and GC no longer knows these
     * fragments: they are this put's to delete. */
    if (rc && rc != DYNO_ENOTFOUND) {
        dyno_log_q(q, sizeof(q), msg);
        dyno_warn("put not aborted: fragments left to metadata's pending timeout and GC",
                  "key=%s err=%s unknown=%d detail=%s", p->key, dyno_err_code(rc), unknown, q);
        return;
    }
    put__drop_fragments(p);
    dyno_info("put aborted", "key=%s size=%llu", p->key, (unsigned long long)p->size);
}

/* Deletes the fragments this put sent, once metadata confirmed its object deleting. */
static void put__drop_fragments(struct gw_put *p)
{
    if (p->up) {
        int index[GW_MAX_N];
        const char *url[GW_MAX_N];
        bool deleted[GW_MAX_N];
        for (int i = 0; i < p->n; i++) {
            index[i] = i;
            url[i] = p->up[i].url[0] ? p->up[i].url : NULL;
        }
        gw_fanout_delete(p->gw, p->conn, p->key, index, url, p->n, deleted);
    }
}

void gw_put_close(struct gw_put *p)
{
    if (!p)
        return;
    gw_hasher_stop(&p->hash); /* first: it may still read the stripe */
    if (p->duplicate) {
        for (int i = 0; p->up && i < p->n; i++)
            gw_upload_close(p->conn, &p->up[i]); /* ended: its connections serve the deletes */
        put__drop_fragments(p);
    } else if (!p->committed)
        put__abort(p);
    for (int i = 0; p->up && i < p->n; i++)
        gw_upload_close(p->conn, &p->up[i]);
    if (p->purge_key[0])
        gw_purge_fragments(p->gw, p->conn, p->purge_key, p->purge_frags);
    cJSON_Delete(p->purge_frags);
    free(p->up);
    free(p->stripe);
    free(p->parity);
    dyno_sha256_free(p->sha);
    dyno_buf_free(&p->pre);
    cJSON_Delete(p->attrs);
    free(p);
}

bool gw_site_relaxed(const cJSON *cat)
{
    const char *s = dyno_json_str(cat, "site_spread");
    return s && strcmp(s, "relaxed") == 0;
}

/* ---- in-memory put (MQTT ingest) ---- */

int gw_put_memory(struct gw *gw, struct gw_conn *conn, const struct gw_put_mem *in, cJSON **out, char *msg,
                  size_t cap)
{
    struct gw_put *p = NULL;
    *out = NULL;
    msg[0] = '\0';
    if (in->len > (size_t)gw->cfg.max_body) {
        snprintf(msg, cap, "object larger than max_body");
        return DYNO_ETOOBIG;
    }
    struct gw_put_args a = {.catalog = in->catalog,
                            .name = in->name,
                            .publisher = in->publisher,
                            .k = in->k,
                            .m = in->m,
                            .site_relaxed = in->site_relaxed,
                            .dedupe = in->dedupe,
                            .size = (int64_t)in->len};
    int rc = gw_put_new(gw, conn, &a, &p, msg, cap);
    if (rc == 0)
        rc = gw_put_write(p, in->data, in->len);
    if (rc == 0)
        rc = gw_put_finish(p, out);
    if (rc && p)
        snprintf(msg, cap, "%s", p->msg[0] ? p->msg : dyno_strerror(rc));
    gw_put_close(p);
    return rc;
}
