/*
 * The repair core (docs/healing.md, protocol.md §8): one task of metadata's (repair.claim)
 * rebuilt. The object is read stripe by stripe with the get core (dp_get.c: k healthy
 * sources in parallel, every record CRC-checked, a source that fails replaced within the
 * stripe and the stripe decoded); each target's unit is cut from the stripe or encoded and
 * appended to one upload stream per target (xfer.c), framed by lib/frag.c's writer as a
 * put's. Claiming and reporting are here too (gw_repair_next over gw->meta, so a unit test
 * runs a whole task on a fake metadata), with garbage collection (gw_gc_next); the worker
 * threads and the pacing are repair.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crashpoint.h"
#include "gw.h"
#include "json.h"
#include "log.h"

/* ---- target streams (xfer.c's upload streams, as the put core's fragment streams) ---- */

static void rtask__target_failed(void *arg, const struct gw_upload *u)
{
    const struct gw_rtask *t = arg;
    const struct dyno_rtask_loc *l = &t->tgt[u - t->put];
    dyno_warn("repair target failed", "key=%s index=%d container=%s reason=\"%s\"", t->key, l->index,
              l->container, u->why);
}

int gw_rtask_live_targets(const struct gw_rtask *t)
{
    return gw_upload_live(&t->set);
}

/* Drives the target streams until each live one took its segments (final: until each has
 * its answer). Streams that fail or stall for fragment_timeout_ms are dropped. */
static int rtask__pump(struct gw_rtask *t, bool final)
{
    int rc = gw_upload_pump(&t->set, final);
    if (rc)
        snprintf(t->msg, sizeof(t->msg), "every target failed");
    return rc;
}

static int rtask__open_targets(struct gw_rtask *t)
{
    struct dyno_frag_hdr h = {.version = DYNO_FRAG_VERSION,
                              .k = (uint8_t)t->k,
                              .m = (uint8_t)t->m,
                              .replica = t->replica,
                              .unit = t->lay.unit};
    memcpy(h.key, t->key, sizeof(h.key));
    snprintf(h.catalog, sizeof(h.catalog), "%s", t->catalog);
    snprintf(h.name, sizeof(h.name), "%s", t->name);
    uint64_t fsize = dyno_layout_fragment_size(&t->lay);
    t->set = (struct gw_upload_set){.gw = t->gw,
                                    .conn = t->conn,
                                    .up = t->put,
                                    .n = t->ntgt,
                                    .need = 1,
                                    .timeout_ms = t->gw->cfg.fragment_timeout_ms,
                                    .on_fail = rtask__target_failed,
                                    .arg = t};
    for (int i = 0; i < t->ntgt; i++) {
        struct gw_upload *u = &t->put[i];
        const struct dyno_rtask_loc *l = &t->tgt[i];
        memset(u, 0, sizeof(*u));
        h.index = (uint8_t)l->index;
        int rc = dyno_frag_writer_init(&u->w, &h);
        if (rc) {
            snprintf(t->msg, sizeof(t->msg), "cannot encode the fragment header: %s", dyno_strerror(rc));
            return rc;
        }
        char url[700];
        snprintf(url, sizeof(url), "%s/v1/fragments/%s.%d", l->url, t->key, l->index);
        snprintf(u->url, sizeof(u->url), "%s", l->url);
        u->x.index = l->index;
        (void)gw_upload_open(t->gw, t->conn, u, url, (int64_t)fsize);
    }
    if (gw_rtask_live_targets(t) == 0) {
        snprintf(t->msg, sizeof(t->msg), "no target stream could be started");
        return DYNO_EUNAVAIL;
    }
    return 0;
}

/* Hands the stripe's record (t->buf of each target's index) to every live target stream. */
static int rtask__write_stripe(struct gw_rtask *t, size_t ulen)
{
    for (int i = 0; i < t->ntgt; i++) {
        if (!t->put[i].live)
            continue;
        gw_upload_record(&t->put[i], t->buf[t->tgt[i].index], ulen, NULL);
        t->bytes_written += ulen + DYNO_FRAG_REC_OVERHEAD;
    }
    return rtask__pump(t, false);
}

/* End marker and trailer (size and digest from the task), then every target's answer. */
static int rtask__finish_targets(struct gw_rtask *t, uint64_t stripes)
{
    (void)stripes; /* each target's writer counted the records it was given */
    for (int i = 0; i < t->ntgt; i++) {
        struct dyno_frag_seg tail[DYNO_FRAG_WRITER_SEGS];
        int nt = dyno_frag_writer_end(&t->put[i].w, t->lay.size, t->sha256, tail);
        for (int j = 0; j < nt; j++)
            gw_upload_tail(&t->put[i], tail[j].p, tail[j].len);
    }
    return rtask__pump(t, true);
}

int gw_rtask_init(struct gw_rtask *t, const cJSON *task)
{
    struct dyno_rtask_head h;
    if (dyno_rtask_parse_head(task, &h) || dyno_unhex(h.sha256, t->sha256, sizeof(t->sha256)))
        return DYNO_EPROTO;
    memcpy(t->id, h.id, sizeof(t->id));
    memcpy(t->key, h.key, sizeof(t->key));
    memcpy(t->catalog, h.catalog, sizeof(t->catalog));
    memcpy(t->name, h.name, sizeof(t->name));
    t->replica = h.replica;
    t->k = h.k;
    t->m = h.m;
    t->n = t->k + t->m;
    t->lay = (struct dyno_layout){.size = (uint64_t)h.size, .unit = h.unit, .k = h.k};
    if (dyno_rtask_parse_locs(task, "sources", t->n, t->src, &t->nsrc) ||
        dyno_rtask_parse_locs(task, "rebuild", t->n, t->tgt, &t->ntgt))
        return DYNO_EPROTO;
    return 0;
}

void gw_rtask_free(struct gw_rtask *t)
{
    for (int i = 0; i < t->ntgt; i++)
        gw_upload_close(t->conn, &t->put[i]);
    free(t->stripe);
    free(t->parity);
}

/* The object record the get core reads the sources from (dp_get.c): sources on draining
 * containers are its last resort (protocol.md §8), and data fragments come before parity
 * (a systematic set needs no decoding). */
static cJSON *rtask__source_record(const struct gw_rtask *t)
{
    char sha[65];
    dyno_hex(t->sha256, 32, sha);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    dyno_json_add_i64(o, "size", (int64_t)t->lay.size);
    cJSON_AddNumberToObject(o, "k", t->k);
    cJSON_AddNumberToObject(o, "m", t->m);
    dyno_json_add_i64(o, "unit", t->lay.unit);
    cJSON_AddStringToObject(o, "sha256", sha);
    cJSON_AddBoolToObject(o, "replica", t->replica);
    cJSON *fr = cJSON_AddArrayToObject(o, "fragments");
    for (int i = 0; fr && i < t->nsrc; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddNumberToObject(f, "index", t->src[i].index);
        cJSON_AddStringToObject(f, "url", t->src[i].url);
        cJSON_AddStringToObject(f, "container", t->src[i].container);
        cJSON_AddBoolToObject(f, "last_resort", t->src[i].draining);
        cJSON_AddItemToArray(fr, f);
    }
    return o;
}

/* Reads the next stripe (len object bytes) of the object into t->stripe. */
static int rtask__read_stripe(struct gw_rtask *t, struct gw_get *g, uint64_t len)
{
    uint64_t got = 0;
    while (got < len) {
        ssize_t n = gw_get_read(g, (char *)t->stripe + got, (size_t)(len - got));
        if (n <= 0) {
            snprintf(t->msg, sizeof(t->msg), "%s", n < 0 ? gw_get_msg(g) : "the read ended early");
            return DYNO_EUNAVAIL;
        }
        got += (uint64_t)n;
    }
    t->bytes_read += len;
    return 0;
}

/* Points t->buf at the units of the stripe in t->stripe (ulen bytes each, the last data
 * unit zero-padded), encoding the parity units when a target needs one. */
static int rtask__units(struct gw_rtask *t, uint64_t len, size_t ulen)
{
    if (t->replica) {
        for (int i = 0; i < t->n; i++)
            t->buf[i] = t->stripe; /* k = 1: every fragment is the whole object */
        return 0;
    }
    memset(t->stripe + len, 0, (size_t)t->k * ulen - (size_t)len);
    uint8_t *data[DYNO_EC_MAX_K], *par[DYNO_EC_MAX_M];
    bool need = false;
    for (int i = 0; i < t->k; i++)
        t->buf[i] = data[i] = t->stripe + (size_t)i * ulen;
    for (int j = 0; j < t->m; j++)
        t->buf[t->k + j] = par[j] = t->parity + (size_t)j * ulen;
    for (int i = 0; i < t->ntgt; i++)
        need |= t->tgt[i].index >= t->k;
    int rc = need ? dyno_ec_encode(t->ec, ulen, data, par) : 0;
    if (rc)
        snprintf(t->msg, sizeof(t->msg), "erasure coding failed: %s", dyno_strerror(rc));
    return rc;
}

/* Rebuilds every target of t: the object is read stripe by stripe through the get core
 * (k sources in parallel, every record CRC-checked, a failing source replaced and the
 * stripe decoded), each target's unit is cut from the stripe or encoded, and appended to
 * its stream. 0 when the stream reached its end (see put[i].stored for each target's
 * outcome), else a DYNO_E* code with t->msg. */
int gw_rtask_rebuild(struct gw_rtask *t, bool (*pace)(void *arg, uint64_t bytes), void *arg)
{
    int rc;
    uint64_t stripes = dyno_layout_stripes(&t->lay);
    size_t maxlen = stripes ? dyno_layout_unit_len(&t->lay, 0) : 1;
    /* n units: the stripe's k, and m parity units. */
    t->stripe = malloc((size_t)t->k * maxlen);
    t->parity = !t->replica && t->m > 0 ? malloc((size_t)t->m * maxlen) : NULL;
    if (!t->stripe || (!t->replica && t->m > 0 && !t->parity)) {
        snprintf(t->msg, sizeof(t->msg), "out of memory");
        return DYNO_ENOMEM;
    }
    if (!t->replica && t->m > 0 && (rc = gw_ec_get(t->gw, t->k, t->m, &t->ec)) != 0) {
        snprintf(t->msg, sizeof(t->msg), "no erasure code for k=%d m=%d", t->k, t->m);
        return rc;
    }
    if ((rc = rtask__open_targets(t)) != 0)
        return rc;
    gw_xfer_step(t->conn, 0);
    struct gw_get *g = NULL;
    if (stripes > 0) {
        cJSON *rec = rtask__source_record(t);
        rc = rec ? gw_get_new(t->gw, t->conn, t->key, rec, &g) : DYNO_ENOMEM;
        cJSON_Delete(rec);
        if (rc == 0 && (rc = gw_get_start(g, 0, t->lay.size - 1, GW_GET_INTERNAL)) != 0)
            snprintf(t->msg, sizeof(t->msg), "%s", gw_get_msg(g));
        else if (rc)
            snprintf(t->msg, sizeof(t->msg), "cannot read the sources: %s", dyno_strerror(rc));
    }
    for (uint64_t s = 0; rc == 0 && s < stripes; s++) {
        uint64_t st, len;
        size_t ulen = dyno_layout_unit_len(&t->lay, s);
        dyno_layout_stripe_span(&t->lay, s, &st, &len);
        if ((rc = rtask__read_stripe(t, g, len)) != 0 || (rc = rtask__units(t, len, ulen)) != 0 ||
            (rc = rtask__write_stripe(t, ulen)) != 0)
            break;
        if (s == 0 && stripes > 1)
            dyno_crash_point("repair.mid_move"); /* targets half written, sources intact */
        if (pace && pace(arg, (uint64_t)ulen * (uint64_t)(t->k + gw_rtask_live_targets(t)))) {
            snprintf(t->msg, sizeof(t->msg), "gateway stopping");
            rc = DYNO_EUNAVAIL;
        }
    }
    gw_get_free(g);
    return rc ? rc : rtask__finish_targets(t, stripes);
}

/* ---- a task from claim to complete, and garbage collection (over gw->meta) ---- */

/* The repair.complete params of t: every target with its outcome; *ok the stored ones and
 * rebuilt their "index@container" list for the log. NULL when out of memory. */
static cJSON *rtask__results(const struct gw_rtask *t, int rc, int *ok, char *rebuilt, size_t cap)
{
    uint64_t fsize = dyno_layout_fragment_size(&t->lay);
    cJSON *params = cJSON_CreateObject();
    cJSON *res = params ? cJSON_AddArrayToObject(params, "results") : NULL;
    size_t used = 0;
    *ok = 0;
    rebuilt[0] = '\0';
    if (!res || !cJSON_AddStringToObject(params, "id", t->id) ||
        !cJSON_AddStringToObject(params, "key", t->key)) {
        cJSON_Delete(params);
        return NULL;
    }
    for (int i = 0; i < t->ntgt; i++) {
        bool stored = rc == 0 && t->put[i].stored;
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(res, o) || !cJSON_AddNumberToObject(o, "index", t->tgt[i].index) ||
            !cJSON_AddBoolToObject(o, "ok", stored) ||
            !cJSON_AddStringToObject(o, "container", t->tgt[i].container) ||
            (stored && !dyno_json_add_i64(o, "size", (int64_t)fsize))) {
            cJSON_Delete(params);
            return NULL;
        }
        if (!stored)
            continue;
        (*ok)++;
        int wr = snprintf(rebuilt + used, cap - used, "%s%d@%s", used ? "," : "", t->tgt[i].index,
                          t->tgt[i].container);
        if (wr > 0 && (size_t)wr < cap - used)
            used += (size_t)wr;
    }
    return params;
}

/* Runs one claimed task and reports it (repair.complete). */
static void rtask__run(struct gw *gw, struct gw_conn *conn, const cJSON *task,
                       bool (*pace)(void *arg, uint64_t bytes), void *arg)
{
    struct gw_rtask *t = calloc(1, sizeof(*t));
    int64_t t0 = gw_now_ms();
    if (!t) {
        dyno_error("repair task dropped", "reason=\"out of memory\"");
        return;
    }
    t->gw = gw;
    t->conn = conn;
    int rc = gw_rtask_init(t, task);
    if (rc) {
        /* Nothing to report against: the lease expires and metadata hands it out again. */
        const char *key = dyno_json_str(task, "key");
        dyno_error("unusable repair task", "key=%s", dyno_valid_key(key) ? key : "-");
        free(t);
        return;
    }
    rc = gw_rtask_rebuild(t, pace, arg);
    int ok = 0;
    char rebuilt[200], msg[300] = "out of memory";
    cJSON *params = rtask__results(t, rc, &ok, rebuilt, sizeof(rebuilt));
    if (ok > 0)
        dyno_crash_point("repair.before_complete"); /* new fragments stored, not recorded */
    int crc =
        params ? gw->meta->call(gw, "repair.complete", params, NULL, msg, sizeof(msg), NULL) : DYNO_ENOMEM;
    cJSON_Delete(params);
    int64_t ms = gw_now_ms() - t0;
    char q[340];
    if (crc)
        dyno_warn("repair.complete failed", "key=%s task=%s err=%s detail=%s", t->key, t->id,
                  dyno_err_code(crc), dyno_log_q(q, sizeof(q), msg));
    if (rc == 0 && ok > 0 && crc == 0) {
        dyno_metric_add(&gw->metrics[GW_M_REPAIRS], 1);
        dyno_metric_add(&gw->metrics[GW_M_REPAIR_BYTES],
                        (int64_t)(dyno_layout_fragment_size(&t->lay) * (uint64_t)ok));
        dyno_info("object repaired", "key=%s catalog=%s size=%llu rebuilt=%s of=%d read=%llu ms=%lld", t->key,
                  t->catalog, (unsigned long long)t->lay.size, rebuilt, t->ntgt,
                  (unsigned long long)t->bytes_read, (long long)ms);
    } else {
        dyno_warn("repair failed", "key=%s task=%s rebuilt=%d of=%d ms=%lld detail=%s", t->key, t->id, ok,
                  t->ntgt, (long long)ms,
                  dyno_log_q(q, sizeof(q), rc ? t->msg : "no target stored its fragment"));
    }
    gw_rtask_free(t);
    free(t);
}

int gw_repair_next(struct gw *gw, struct gw_conn *conn, const char *worker,
                   bool (*pace)(void *arg, uint64_t bytes), void *arg)
{
    cJSON *params = cJSON_CreateObject(), *res = NULL;
    char msg[300];
    if (!params || !cJSON_AddStringToObject(params, "worker", worker)) {
        cJSON_Delete(params);
        return DYNO_ENOMEM;
    }
    int rc = gw->meta->call(gw, "repair.claim", params, &res, msg, sizeof(msg), NULL);
    cJSON_Delete(params);
    if (rc)
        return rc < 0 ? rc : DYNO_EPROTO;
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(res, "task");
    bool ran = cJSON_IsObject(task);
    if (ran)
        rtask__run(gw, conn, task, pace, arg);
    cJSON_Delete(res);
    return ran ? 1 : 0;
}

/* Deletes one key's run of gc items starting at *it (at most GW_MAX_N, the same key) and
 * appends their outcomes to out; *it moves past them. Returns the number deleted, or -1
 * when no usable item was left. */
static int gc__key_batch(struct gw *gw, struct gw_conn *conn, const cJSON **it, cJSON *out)
{
    const char *key = NULL;
    const cJSON *batch[GW_MAX_N];
    int index[GW_MAX_N];
    const char *url[GW_MAX_N];
    bool deleted[GW_MAX_N];
    int nb = 0;
    for (; *it && nb < GW_MAX_N; *it = (*it)->next) {
        const char *k2 = dyno_json_str(*it, "key"), *u = dyno_json_str(*it, "url");
        int64_t idx;
        if (!dyno_valid_key(k2) || dyno_json_i64(*it, "index", &idx) || idx < 0 || idx >= GW_MAX_N || !u ||
            !dyno_valid_segment(dyno_json_str(*it, "container")))
            continue; /* unusable: left for metadata to hand out again */
        if (key && strcmp(k2, key) != 0)
            break;
        key = k2;
        batch[nb] = *it;
        index[nb] = (int)idx;
        url[nb] = u;
        nb++;
    }
    if (nb == 0)
        return -1;
    int got = gw_fanout_delete(gw, conn, key, index, url, nb, deleted);
    for (int i = 0; i < nb; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "key", key);
        cJSON_AddNumberToObject(o, "index", index[i]);
        cJSON_AddStringToObject(o, "container", dyno_json_str(batch[i], "container"));
        cJSON_AddBoolToObject(o, "ok", deleted[i]);
        cJSON_AddItemToArray(out, o);
    }
    return got;
}

int gw_gc_next(struct gw *gw, struct gw_conn *conn, const char *worker)
{
    cJSON *params = cJSON_CreateObject(), *res = NULL, *done = NULL;
    char msg[300];
    int handed = 0;
    cJSON_AddStringToObject(params, "worker", worker);
    cJSON_AddNumberToObject(params, "limit", GW_GC_BATCH);
    int rc = gw->meta->call(gw, "gc.claim", params, &res, msg, sizeof(msg), NULL);
    cJSON_Delete(params);
    if (rc) {
        dyno_debug("gc.claim failed", "err=%s", dyno_err_code(rc));
        return 0;
    }
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(res, "items");
    int n = cJSON_IsArray(items) ? cJSON_GetArraySize(items) : 0;
    if (n <= 0)
        goto out;
    handed = n;
    done = cJSON_CreateObject();
    cJSON *out = cJSON_AddArrayToObject(done, "items");
    /* Items of one key are deleted in one parallel batch (gw_fanout_delete takes one key). */
    const cJSON *it = items->child;
    int deleted_total = 0;
    for (int got; (got = gc__key_batch(gw, conn, &it, out)) >= 0;)
        deleted_total += got;
    if (deleted_total > 0)
        dyno_crash_point("gc.before_complete"); /* deleted on disk, rows still in metadata */
    rc = gw->meta->call(gw, "gc.complete", done, NULL, msg, sizeof(msg), NULL);
    if (rc)
        dyno_warn("gc.complete failed", "err=%s items=%d", dyno_err_code(rc), n);
    dyno_metric_add(&gw->metrics[GW_M_GC_DELETED], deleted_total);
    if (deleted_total)
        dyno_info("garbage deleted", "fragments=%d of=%d", deleted_total, n);
out:
    cJSON_Delete(res);
    cJSON_Delete(done);
    return handed;
}
