/*
 * The put data path (SPEC §6): POST /v1/catalogs/<owner>/<path>/~/objects?name=
 *
 * The body is cut into stripes of k units; each stripe is hashed (SHA-256 of the object),
 * encoded (m parity units) and handed as one record to each of the n fragment streams,
 * which libcurl sends in parallel to n containers. Memory per put is the stripe buffer
 * plus m parity units plus curl's buffers, whatever the object size.
 *
 * Objects of at most small_max bytes are stored as m + 1 replicas (k = 1, replica flag).
 * Without a Content-Length the first small_max + 1 bytes are buffered to decide. A replica
 * is one record: its streams start only when the whole body is in, so each container gets
 * header, record and trailer in one request with no pause in between (latency of small
 * puts); object.begin still runs as soon as the size is known.
 *
 * Everything runs in the client connection's MHD thread: when a stripe is ready the
 * thread drives curl until every live stream has taken its record, then goes back to
 * MHD for more body. That is the back-pressure: a slow container slows the client.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crashpoint.h"
#include "gw.h"
#include "hash.h"
#include "httpd.h"
#include "json.h"
#include "log.h"
#include "mq.h"
#include "rest.h"

enum gw_put_mode { GW_PUT_UNDECIDED, GW_PUT_REPLICA, GW_PUT_EC };

struct gw_put {
    struct gw *gw;
    struct gw_conn *conn;
    struct gw_req *r;
    enum gw_put_mode mode;
    int k, m, n, quorum;
    int req_k, req_m; /* resilience asked for (EC); a replica uses 1, req_m */
    uint32_t unit;
    int64_t declared; /* Content-Length, or -1 for a chunked body */
    uint64_t size;    /* body bytes so far */
    bool begun;       /* object.begin succeeded: abort must clean up */
    bool deferred;    /* a replica: the streams start in gw_put_finish, with everything */
    char key[DYNO_KEY_LEN + 1];
    char publisher[DYNO_SEG_MAX + 1]; /* who stores it (object.begin); grants nothing */
    const struct dyno_ec *ec;
    struct dyno_sha256 *sha;
    struct gw_hasher hash; /* hashes the stripe while it is encoded and sent */
    uint8_t *stripe;
    size_t stripe_cap; /* k * unit: a full stripe */
    size_t fill;
    uint8_t *parity; /* m units of parity_unit bytes */
    size_t parity_unit;
    uint64_t records;
    struct gw_upload *up;     /* n fragment streams (fanout.c) */
    struct gw_upload_set set; /* up, for gw_upload_pump */
    struct dyno_buf pre;      /* the undecided prefix of a chunked body */
    uint8_t tail[DYNO_FRAG_END_SIZE + DYNO_FRAG_TRAILER_SIZE];
    uint8_t sha256[32];
    char msg[400];
};

int gw_ec_get(struct gw *gw, int k, int m, const struct dyno_ec **out)
{
    int rc = 0;
    if (k < 1 || k > DYNO_EC_MAX_K || m < 0 || m > DYNO_EC_MAX_M)
        return DYNO_EINVAL;
    pthread_mutex_lock(&gw->ec_lock);
    if (!gw->ec_cache[k][m])
        rc = dyno_ec_new(k, m, &gw->ec_cache[k][m]);
    *out = gw->ec_cache[k][m];
    pthread_mutex_unlock(&gw->ec_lock);
    return rc;
}

/* ---- SHA-256 helper thread ---- */

static void *gw_hasher_main(void *arg)
{
    struct gw_hasher *h = arg;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->busy && !h->stop)
            pthread_cond_wait(&h->cv, &h->mu);
        if (!h->busy)
            break; /* stop, nothing pending */
        pthread_mutex_unlock(&h->mu);
        for (int i = 0; i < h->nseg; i++)
            dyno_sha256_update(h->sha, h->seg[i], h->len[i]);
        pthread_mutex_lock(&h->mu);
        h->busy = false;
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

int gw_hasher_init(struct gw_hasher *h, struct dyno_sha256 *sha, bool helper)
{
    h->sha = sha;
    if (!helper || h->started)
        return 0;
    if (pthread_mutex_init(&h->mu, NULL) != 0)
        return DYNO_ENOMEM;
    if (pthread_cond_init(&h->cv, NULL) != 0) {
        pthread_mutex_destroy(&h->mu);
        return DYNO_ENOMEM;
    }
    h->busy = h->stop = false;
    if (pthread_create(&h->th, NULL, gw_hasher_main, h) != 0) {
        pthread_cond_destroy(&h->cv);
        pthread_mutex_destroy(&h->mu);
        return DYNO_ENOMEM;
    }
    h->started = true;
    return 0;
}

void gw_hasher_wait(struct gw_hasher *h)
{
    if (!h->started)
        return;
    pthread_mutex_lock(&h->mu);
    while (h->busy)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

void gw_hasher_submit(struct gw_hasher *h, const uint8_t *const *seg, const size_t *len, int n)
{
    if (!h->started) {
        for (int i = 0; i < n; i++)
            dyno_sha256_update(h->sha, seg[i], len[i]);
        return;
    }
    gw_hasher_wait(h);
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < n && i < DYNO_EC_MAX_K; i++) {
        h->seg[i] = seg[i];
        h->len[i] = len[i];
    }
    h->nseg = n < DYNO_EC_MAX_K ? n : DYNO_EC_MAX_K;
    h->busy = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

void gw_hasher_stop(struct gw_hasher *h)
{
    if (!h->started)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->th, NULL); /* it finishes a pending job first */
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    h->started = false;
}

/* ---- fragment streams ---- */

static void gw_up_failed(void *arg, const struct gw_upload *u)
{
    const struct gw_put *p = arg;
    dyno_warn("fragment stream failed", "key=%s index=%d url=%s reason=\"%s\"", p->key, u->x.index, u->url,
              u->why);
}

static int gw_put_live(const struct gw_put *p)
{
    return p->up ? gw_upload_live(&p->set) : 0;
}

/* Fills p->msg with why the put cannot reach its quorum. */
static int gw_put_quorum_error(struct gw_put *p)
{
    size_t o = (size_t)snprintf(p->msg, sizeof(p->msg), "only %d of %d fragment streams succeeded, %d needed",
                                gw_put_live(p), p->n, p->quorum);
    for (int i = 0; i < p->n && o < sizeof(p->msg); i++) {
        if (!p->up[i].live && p->up[i].why[0])
            o += (size_t)snprintf(p->msg + o, sizeof(p->msg) - o, "; fragment %d: %s", i, p->up[i].why);
    }
    return DYNO_EUNAVAIL;
}

/* gw_upload_pump over the put's streams; below the quorum the put fails. */
static int gw_put_pump(struct gw_put *p, bool final)
{
    return gw_upload_pump(&p->set, final) ? gw_put_quorum_error(p) : 0;
}

/* Encodes the stripe (units of ulen bytes) and hands one record to every live stream. */
static int gw_put_flush_send(struct gw_put *p, size_t ulen)
{
    uint8_t *data[DYNO_EC_MAX_K], *par[DYNO_EC_MAX_M];
    for (int i = 0; i < p->k; i++)
        data[i] = p->stripe + (size_t)i * ulen;
    for (int j = 0; j < p->m; j++)
        par[j] = p->parity + (size_t)j * p->parity_unit;
    if (p->mode == GW_PUT_EC && p->m > 0) {
        int rc = dyno_ec_encode(p->ec, ulen, data, par);
        if (rc) {
            snprintf(p->msg, sizeof(p->msg), "erasure coding failed: %s", dyno_strerror(rc));
            return rc;
        }
    }
    /* Every replica carries the same record: its CRC is computed once. */
    uint8_t rep_suf[4];
    if (p->mode == GW_PUT_REPLICA)
        dyno_frag_rec_suffix(p->stripe, ulen, rep_suf);
    for (int i = 0; i < p->n; i++) {
        if (!p->up[i].live && !p->deferred)
            continue;
        const uint8_t *payload = p->mode == GW_PUT_REPLICA ? p->stripe : i < p->k ? data[i] : par[i - p->k];
        gw_upload_record(&p->up[i], p->records == 0, payload, ulen,
                         p->mode == GW_PUT_REPLICA ? rep_suf : NULL);
    }
    p->records++;
    p->fill = 0;
    return p->deferred ? 0 : gw_put_pump(p, false);
}

/* Encodes the stripe buffer (fill bytes) and hands one record to every live stream. */
static int gw_put_flush(struct gw_put *p)
{
    size_t len = p->fill;
    size_t ulen = (len + (size_t)p->k - 1) / (size_t)p->k;
    /* The last data unit is zero-padded up to ulen. */
    memset(p->stripe + len, 0, (size_t)p->k * ulen - len);
    /* The helper hashes the stripe while this thread encodes and sends it; both are done
     * with it before gw_put_flush returns (the next body bytes overwrite it). */
    const uint8_t *hseg = p->stripe;
    gw_hasher_submit(&p->hash, &hseg, &len, 1);
    int rc = gw_put_flush_send(p, ulen);
    gw_hasher_wait(&p->hash);
    return rc;
}

static int gw_put_feed(struct gw_put *p, const uint8_t *data, size_t len)
{
    while (len > 0) {
        size_t take = p->stripe_cap - p->fill;
        if (take > len)
            take = len;
        memcpy(p->stripe + p->fill, data, take);
        p->fill += take;
        data += take;
        len -= take;
        if (p->fill == p->stripe_cap) {
            int rc = gw_put_flush(p);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Starts the n fragment streams (fsize bytes each, -1 = chunked); fails below the quorum. */
static int gw_put_open_streams(struct gw_put *p, int64_t fsize)
{
    for (int i = 0; i < p->n; i++) {
        struct gw_upload *s = &p->up[i];
        char furl[700];
        snprintf(furl, sizeof(furl), "%s/v1/fragments/%s.%d", s->url, p->key, i);
        (void)gw_upload_open(p->gw, p->conn, s, furl, fsize);
    }
    if (gw_put_live(p) < p->quorum)
        return gw_put_quorum_error(p);
    /* Let the connections open (and a deferred replica go out) at once. */
    gw_fanout_step(p->conn, 0);
    return 0;
}

/* ---- setup: object.begin, buffers, streams ---- */

static int gw_put_setup(struct gw_put *p, int64_t size, bool replica)
{
    struct gw *gw = p->gw;
    struct gw_req *r = p->r;
    int rc;
    p->mode = replica ? GW_PUT_REPLICA : GW_PUT_EC;
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

    cJSON *params = cJSON_CreateObject(), *res = NULL;
    if (!params)
        return DYNO_ENOMEM;
    cJSON_AddStringToObject(params, "catalog", r->catalog);
    if (r->has_name)
        cJSON_AddStringToObject(params, "name", r->name);
    cJSON_AddStringToObject(params, "publisher", p->publisher);
    dyno_json_add_i64(params, "size", size);
    cJSON_AddNumberToObject(params, "k", p->k);
    cJSON_AddNumberToObject(params, "m", p->m);
    cJSON_AddBoolToObject(params, "replica", replica);
    dyno_json_add_i64(params, "unit", p->unit);
    rc = gw_rpc(gw, "metadata", "object.begin", params, &res, p->msg, sizeof(p->msg));
    cJSON_Delete(params);
    if (rc)
        return rc;

    const char *key = dyno_json_str(res, "key");
    const cJSON *frags = cJSON_GetObjectItemCaseSensitive(res, "fragments");
    int64_t unit = p->unit;
    if (dyno_json_i64(res, "unit", &unit) == DYNO_EINVAL)
        unit = 0;
    if (!dyno_valid_key(key) || !cJSON_IsArray(frags) || cJSON_GetArraySize(frags) != p->n || unit < 1 ||
        unit > (int64_t)DYNO_FRAG_MAX_UNIT || (replica && unit < size)) {
        snprintf(p->msg, sizeof(p->msg), "metadata object.begin answered an unusable placement");
        rc = DYNO_EPROTO;
        /* If it gave a key, it has a pending object to forget. */
        if (dyno_valid_key(key)) {
            memcpy(p->key, key, sizeof(p->key));
            p->begun = true;
        }
        goto out;
    }
    memcpy(p->key, key, sizeof(p->key));
    p->begun = true;
    p->unit = (uint32_t)unit;

    /* Buffers: a full stripe is k units, but a small known size needs only size + k
     * (the padding of the one short stripe). */
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
        rc = DYNO_ENOMEM;
        goto out;
    }
    p->set = (struct gw_upload_set){.conn = p->conn,
                                    .up = p->up,
                                    .n = p->n,
                                    .need = p->quorum,
                                    .timeout_ms = gw->cfg.fragment_timeout_ms,
                                    .on_fail = gw_up_failed,
                                    .arg = p};
    /* A helper thread hashes while the stripes go out, for objects of several stripes. */
    if (gw_hasher_init(&p->hash, p->sha, !replica && (size < 0 || (uint64_t)size > p->stripe_cap)) != 0)
        dyno_warn("no hashing thread", "key=%s detail=\"hashing inline\"", p->key);
    if (!replica && (rc = gw_ec_get(gw, p->k, p->m, &p->ec)) != 0) {
        snprintf(p->msg, sizeof(p->msg), "no erasure code for k=%d m=%d", p->k, p->m);
        goto out;
    }

    struct dyno_frag_hdr h = {.version = DYNO_FRAG_VERSION,
                              .k = (uint8_t)p->k,
                              .m = (uint8_t)p->m,
                              .replica = replica,
                              .unit = p->unit};
    memcpy(h.key, p->key, sizeof(h.key));
    snprintf(h.catalog, sizeof(h.catalog), "%s", r->catalog);
    snprintf(h.name, sizeof(h.name), "%s", r->has_name ? r->name : p->key);
    struct dyno_layout lay = {.size = size >= 0 ? (uint64_t)size : 0, .unit = p->unit, .k = p->k};

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
            rc = DYNO_EPROTO;
            goto out;
        }
        seen[idx] = true;
        snprintf(p->up[idx].url, sizeof(p->up[idx].url), "%s", url);
    }
    for (int i = 0; i < p->n; i++) {
        struct gw_upload *s = &p->up[i];
        h.index = (uint8_t)i;
        if ((rc = dyno_frag_hdr_encode(&h, s->hdr)) != 0) {
            snprintf(p->msg, sizeof(p->msg), "cannot encode the fragment header: %s", dyno_strerror(rc));
            goto out;
        }
        s->x.index = i;
    }
    p->deferred = replica;
    if (!replica &&
        (rc = gw_put_open_streams(p, size >= 0 ? (int64_t)dyno_layout_fragment_size(&lay) : -1)) != 0)
        goto out;
    rc = 0;
out:
    cJSON_Delete(res);
    return rc;
}

/* ---- teardown ---- */

static void gw_put_free(struct gw_put *p)
{
    if (!p)
        return;
    gw_hasher_stop(&p->hash); /* first: it may still read the stripe */
    for (int i = 0; p->up && i < p->n; i++)
        gw_xfer_close(p->conn, &p->up[i].x);
    free(p->up);
    free(p->stripe);
    free(p->parity);
    dyno_sha256_free(p->sha);
    dyno_buf_free(&p->pre);
    free(p);
}

/*
 * Nothing of a failed put may become visible, and nothing committed may be destroyed. The
 * fragments are deleted only once metadata confirmed the abort (the pending object is then
 * 'deleting' and can never be committed; or metadata knows no such object). Any other
 * outcome leaves them where they are: no answer (the abort, or a commit still in flight,
 * may yet be carried out), or "committed" (a commit of unknown outcome went through after
 * all: the object is live). An object that stays pending becomes garbage at metadata's
 * pending_timeout, and GC deletes it then.
 */
static void gw_put_abort(struct gw_put *p)
{
    struct gw *gw = p->gw;
    dyno_metric_add(&gw->metrics[GW_M_PUT_FAILURES], 1);
    if (!p->begun)
        return;
    for (int i = 0; p->up && i < p->n; i++) {
        p->up[i].live = false;
        gw_xfer_close(p->conn, &p->up[i].x);
    }
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "key", p->key);
    char msg[256], q[300];
    bool unknown = false;
    int rc = gw_rpc_change(gw, "metadata", "object.abort", params, NULL, msg, sizeof(msg), &unknown);
    cJSON_Delete(params);
    /* not_found confirms as well: metadata has no such object (reaped and collected while
     * this put was still sending), so nothing can commit it, and GC no longer knows these
     * fragments: they are this put's to delete. */
    if (rc && rc != DYNO_ENOTFOUND) {
        gw_quote(msg, q, sizeof(q));
        dyno_warn("put not aborted: fragments left to metadata's pending timeout and GC",
                  "key=%s err=%s unknown=%d detail=%s", p->key, dyno_err_code(rc), unknown, q);
        return;
    }
    if (p->up) {
        int index[GW_MAX_N];
        const char *url[GW_MAX_N];
        bool deleted[GW_MAX_N];
        for (int i = 0; i < p->n; i++) {
            index[i] = i;
            url[i] = p->up[i].url[0] ? p->up[i].url : NULL;
        }
        gw_fanout_delete(gw, p->conn, p->key, index, url, p->n, deleted);
    }
    dyno_info("put aborted", "key=%s size=%llu", p->key, (unsigned long long)p->size);
}

void gw_put_abort_req(struct gw_req *r)
{
    struct gw_put *p = r->put;
    if (!p)
        return;
    r->put = NULL;
    gw_put_abort(p);
    gw_put_free(p);
}

/* ---- MHD side ---- */

static int gw_put_body(struct gw_req *r, const char *data, size_t len)
{
    struct gw_put *p = r->put;
    int rc;
    p->size += len;
    if (p->size > (uint64_t)p->gw->cfg.max_body) {
        snprintf(r->body_msg, sizeof(r->body_msg), "object larger than max_body (%lld bytes)",
                 (long long)p->gw->cfg.max_body);
        gw_put_abort_req(r);
        return DYNO_ETOOBIG;
    }
    if (p->mode == GW_PUT_UNDECIDED) {
        if (p->pre.len + len <= (size_t)p->gw->cfg.small_max)
            return dyno_buf_append(&p->pre, data, len);
        /* Too big for a replica: erasure-code it, size unknown. */
        rc = gw_put_setup(p, -1, false);
        if (rc == 0 && p->pre.len)
            rc = gw_put_feed(p, (const uint8_t *)p->pre.data, p->pre.len);
        dyno_buf_free(&p->pre);
        if (rc == 0)
            rc = gw_put_feed(p, (const uint8_t *)data, len);
    } else {
        rc = gw_put_feed(p, (const uint8_t *)data, len);
    }
    if (rc) {
        char q[sizeof(p->msg) + 8];
        gw_quote(p->msg, q, sizeof(q));
        dyno_warn("put failed", "key=%s catalog=%s err=%s detail=%s", p->key[0] ? p->key : "-", r->catalog,
                  dyno_err_code(rc), q);
        snprintf(r->body_msg, sizeof(r->body_msg), "%s", p->msg);
        gw_put_abort_req(r);
    }
    return rc;
}

static enum MHD_Result gw_put_fail_reply(struct gw_req *r, int rc)
{
    struct gw_put *p = r->put;
    char msg[sizeof(p->msg)];
    snprintf(msg, sizeof(msg), "%s", p->msg[0] ? p->msg : dyno_strerror(rc));
    char q[sizeof(msg) + 8];
    gw_quote(msg, q, sizeof(q));
    dyno_warn("put failed", "key=%s catalog=%s err=%s detail=%s", p->key[0] ? p->key : "-", r->catalog,
              dyno_err_code(rc), q);
    gw_put_abort_req(r);
    return gw_reply_error(r, rc, "%s", msg);
}

static void gw_put_nap(int64_t ms)
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
 * metadata confirms it (gw_put_abort).
 */
static int gw_put_commit(struct gw_put *p, const cJSON *params, cJSON **res)
{
    struct gw *gw = p->gw;
    int64_t deadline = gw_now_ms() + gw->cfg.commit_resolve_ms;
    bool unknown = false;
    int rc, tries = 0;
    for (;;) {
        bool unk = false;
        tries++;
        rc = gw_rpc_change(gw, "metadata", "object.commit", params, res, p->msg, sizeof(p->msg), &unk);
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
        if (!dyno_mq_connected(gw->mq))
            (void)dyno_mq_wait_connected(gw->mq, (int)(left < 1000 ? left : 1000));
        else if (!unk)
            gw_put_nap(left < 200 ? left : 200); /* an overloaded metadata: do not spin */
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

/*
 * Everything after the last body byte: the last stripe, the trailers, the answers of the
 * containers, object.commit and the object.created event. 0 with *out the reply body (the
 * caller's) and r->put cleared (p is committed: the caller frees it, never aborts it); or
 * an error with p->msg set and r->put still p (the caller aborts it).
 */
static int gw_put_finish(struct gw_put *p, cJSON **out)
{
    struct gw_req *r = p->r;
    struct gw *gw = p->gw;
    int rc;
    *out = NULL;
    if (p->mode == GW_PUT_UNDECIDED) {
        rc = gw_put_setup(p, (int64_t)p->pre.len, true);
        if (rc == 0 && p->pre.len)
            rc = gw_put_feed(p, (const uint8_t *)p->pre.data, p->pre.len);
        dyno_buf_free(&p->pre);
        if (rc)
            return rc;
    }
    if (p->declared >= 0 && p->size != (uint64_t)p->declared)
        return DYNO_EINVAL;
    if (p->fill > 0 && (rc = gw_put_flush(p)) != 0)
        return rc;

    /* End marker and trailer: only now are the size and digest known. */
    struct dyno_frag_trailer t = {.object_size = p->size, .records = p->records};
    dyno_sha256_final(p->sha, t.sha256);
    memcpy(p->sha256, t.sha256, 32);
    memset(p->tail, 0, DYNO_FRAG_END_SIZE);
    dyno_frag_trailer_encode(&t, p->tail + DYNO_FRAG_END_SIZE);
    for (int i = 0; i < p->n; i++)
        gw_upload_tail(&p->up[i], p->records == 0, p->tail, sizeof(p->tail));
    struct dyno_layout lay = {.size = p->size, .unit = p->unit, .k = p->k};
    uint64_t fsize = dyno_layout_fragment_size(&lay);
    if (p->deferred && (rc = gw_put_open_streams(p, (int64_t)fsize)) != 0)
        return rc;
    if ((rc = gw_put_pump(p, true)) != 0)
        return rc;

    char sha_hex[65];
    dyno_hex(p->sha256, 32, sha_hex);
    cJSON *params = cJSON_CreateObject(), *res = NULL;
    cJSON_AddStringToObject(params, "key", p->key);
    dyno_json_add_i64(params, "size", (int64_t)p->size);
    cJSON_AddStringToObject(params, "sha256", sha_hex);
    cJSON *fr = cJSON_AddArrayToObject(params, "fragments");
    int stored = 0;
    for (int i = 0; i < p->n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", i);
        cJSON_AddBoolToObject(o, "ok", p->up[i].stored);
        dyno_json_add_i64(o, "size", p->up[i].stored ? (int64_t)fsize : 0);
        cJSON_AddItemToArray(fr, o);
        stored += p->up[i].stored;
    }
    dyno_crash_point("gateway.put.before_commit");
    rc = gw_put_commit(p, params, &res);
    cJSON_Delete(params);
    if (rc)
        return rc;
    dyno_crash_point("gateway.put.before_reply");

    /* Committed: from here on the object is visible and must not be aborted. */
    r->put = NULL;
    const char *name = r->has_name ? r->name : p->key;
    cJSON *replaced = cJSON_GetObjectItemCaseSensitive(res, "replaced");
    const char *old_key = dyno_json_str(replaced, "key");
    if (dyno_valid_key(old_key)) {
        memcpy(r->purge_key, old_key, sizeof(r->purge_key));
        r->purge_frags = cJSON_DetachItemFromObjectCaseSensitive(replaced, "fragments");
    }

    gw_event_emit(gw, "object.created", r->catalog, p->key, name, (int64_t)p->size, sha_hex);

    dyno_metric_add(&gw->metrics[GW_M_PUTS], 1);
    dyno_metric_add(&gw->metrics[GW_M_BYTES_IN], (int64_t)p->size);
    dyno_info("put committed", "key=%s catalog=%s size=%llu k=%d m=%d stored=%d replica=%d", p->key,
              r->catalog, (unsigned long long)p->size, p->k, p->m, stored, p->mode == GW_PUT_REPLICA);

    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "key", p->key);
    cJSON_AddStringToObject(body, "name", name);
    dyno_json_add_i64(body, "size", (int64_t)p->size);
    cJSON_AddStringToObject(body, "sha256", sha_hex);
    cJSON_AddNumberToObject(body, "k", p->k);
    cJSON_AddNumberToObject(body, "m", p->m);
    cJSON_AddStringToObject(body, "catalog", r->catalog);
    if (p->mode == GW_PUT_REPLICA)
        cJSON_AddBoolToObject(body, "replica", true);
    if (stored < p->n)
        cJSON_AddBoolToObject(body, "degraded", true);
    cJSON_Delete(res);
    *out = body;
    return 0;
}

static enum MHD_Result gw_put_end(struct gw_req *r)
{
    struct gw_put *p = r->put;
    if (!p)
        return gw_reply_error(r, DYNO_EINTERNAL, "put state lost");
    cJSON *body = NULL;
    int rc = gw_put_finish(p, &body);
    if (rc)
        return gw_put_fail_reply(r, rc);
    enum MHD_Result ret =
        body ? gw_reply_json(r, 201, body) : gw_reply_error(r, DYNO_ENOMEM, "out of memory");
    cJSON_Delete(body);
    gw_put_free(p);
    return ret;
}

enum MHD_Result gw_put_begin(struct gw_req *r)
{
    struct gw *gw = r->gw;
    char msg[sizeof(r->body_msg)];
    int rc = gw_query_arg(r, "name", r->name, sizeof(r->name));
    if (rc == 0) {
        if (!dyno_valid_name(r->name))
            return gw_reply_error(r, DYNO_EINVAL, "bad object name (1..255 bytes of UTF-8, no '/')");
        r->has_name = true;
    } else if (rc != DYNO_ENOTFOUND) {
        return gw_reply_error(r, DYNO_EINVAL, "bad object name");
    }

    int k = (int)gw->cfg.k, m = (int)gw->cfg.m;
    const char *res_hdr = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, "X-Dyno-Resilience");
    if (res_hdr && dyno_rest_parse_resilience(res_hdr, &k, &m))
        return gw_reply_error(r, DYNO_EINVAL, "bad X-Dyno-Resilience (k,m with 1<=k<=32, 0<=m<=16)");

    int64_t declared = 0;
    const char *te = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    const char *cl = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (te) {
        declared = -1;
    } else if (cl) {
        uint64_t v;
        if (dyno_rest_parse_u64(cl, &v))
            return gw_reply_error(r, DYNO_EINVAL, "bad Content-Length");
        if (v > (uint64_t)gw->cfg.max_body)
            return gw_reply_error(r, DYNO_ETOOBIG, "object larger than max_body (%lld bytes)",
                                  (long long)gw->cfg.max_body);
        declared = (int64_t)v;
    }

    cJSON *cat = NULL;
    rc = gw_catalog_check(r, r->catalog, true, &cat, msg, sizeof(msg));
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    if (!res_hdr) {
        int64_t ck, cm;
        if (dyno_json_i64(cat, "k", &ck) == 0 && dyno_json_i64(cat, "m", &cm) == 0 && ck >= 1 &&
            ck <= DYNO_EC_MAX_K && cm >= 0 && cm <= DYNO_EC_MAX_M && ck + cm <= GW_MAX_N) {
            k = (int)ck;
            m = (int)cm;
        }
    }

    struct gw_put *p = calloc(1, sizeof(*p));
    if (!p) {
        cJSON_Delete(cat);
        return gw_reply_error(r, DYNO_ENOMEM, "out of memory");
    }
    p->gw = gw;
    p->r = r;
    p->conn = r->conn;
    p->req_k = k;
    p->req_m = m;
    p->declared = declared;
    dyno_buf_init(&p->pre, (size_t)gw->cfg.small_max);
    snprintf(p->publisher, sizeof(p->publisher), "%s", r->claims.sub);
    cJSON_Delete(cat);
    if (dyno_sha256_new(&p->sha)) {
        gw_put_free(p);
        return gw_reply_error(r, DYNO_ENOMEM, "out of memory");
    }
    r->put = p;
    if (declared >= 0) {
        /* Known size: begin now, so placement errors are answered before the body. */
        rc = gw_put_setup(p, declared, declared <= gw->cfg.small_max);
        if (rc)
            return gw_put_fail_reply(r, rc);
    }
    r->on_body = gw_put_body;
    r->on_end = gw_put_end;
    return MHD_YES;
}

/* ---- in-memory put (MQTT ingest) ---- */

int gw_put_memory(struct gw *gw, struct gw_conn *conn, const struct gw_put_mem *in, cJSON **out, char *msg,
                  size_t cap)
{
    int rc;
    *out = NULL;
    msg[0] = '\0';
    if (in->len > (size_t)gw->cfg.max_body) {
        snprintf(msg, cap, "object larger than max_body");
        return DYNO_ETOOBIG;
    }
    /* The put machinery reads its catalog and name from a request: give it one without a
     * connection (nothing below replies to it). */
    struct gw_req *r = calloc(1, sizeof(*r));
    struct gw_put *p = calloc(1, sizeof(*p));
    if (!r || !p || dyno_sha256_new(&p->sha)) {
        free(r);
        if (p)
            dyno_sha256_free(p->sha);
        free(p);
        snprintf(msg, cap, "out of memory");
        return DYNO_ENOMEM;
    }
    r->gw = gw;
    r->conn = conn;
    snprintf(r->catalog, sizeof(r->catalog), "%s", in->catalog);
    if (in->name) {
        snprintf(r->name, sizeof(r->name), "%s", in->name);
        r->has_name = true;
    }
    p->gw = gw;
    p->r = r;
    p->conn = conn;
    p->req_k = in->k;
    p->req_m = in->m;
    p->declared = (int64_t)in->len;
    snprintf(p->publisher, sizeof(p->publisher), "%s", in->publisher);
    dyno_buf_init(&p->pre, (size_t)gw->cfg.small_max);
    r->put = p;

    rc = gw_put_setup(p, (int64_t)in->len, (int64_t)in->len <= gw->cfg.small_max);
    if (rc == 0) {
        p->size = in->len;
        rc = gw_put_feed(p, in->data, in->len);
    }
    if (rc == 0)
        rc = gw_put_finish(p, out);
    if (rc) {
        snprintf(msg, cap, "%s", p->msg[0] ? p->msg : dyno_strerror(rc));
        gw_put_abort_req(r);
    } else {
        gw_put_free(p);
    }
    if (r->purge_key[0]) {
        gw_purge_fragments(gw, conn, r->purge_key, r->purge_frags);
        cJSON_Delete(r->purge_frags);
    }
    free(r);
    return rc;
}
