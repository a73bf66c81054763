/*
 * What the put, get and repair paths share (dp.h): EC contexts, the SHA-256 helper
 * thread, fragment reports and the deletion of a replaced or evicted object's fragments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "json.h"
#include "log.h"

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

static void *dp__hasher_main(void *arg)
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
    if (pthread_create(&h->th, NULL, dp__hasher_main, h) != 0) {
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

int gw_shape_parse(const cJSON *o, struct gw_shape *out)
{
    int64_t size, k, m, unit;
    const char *sha = dyno_json_str(o, "sha256");
    if (dyno_json_i64(o, "size", &size) || dyno_json_i64(o, "k", &k) || dyno_json_i64(o, "m", &m) ||
        dyno_json_i64(o, "unit", &unit) || !sha || strlen(sha) != 64 || dyno_unhex(sha, out->sha256, 32) ||
        size < 0 || k < 1 || k > DYNO_EC_MAX_K || m < 0 || m > DYNO_EC_MAX_M || k + m > GW_MAX_N ||
        unit < 1 || unit > (int64_t)DYNO_FRAG_MAX_UNIT)
        return DYNO_EPROTO;
    out->replica = dyno_json_bool(o, "replica", false);
    if (out->replica && k != 1)
        return DYNO_EPROTO; /* a replica is the whole object: one data unit */
    out->k = (int)k;
    out->m = (int)m;
    out->lay = (struct dyno_layout){.size = (uint64_t)size, .unit = (uint32_t)unit, .k = out->k};
    return 0;
}

/* ---- fragment reports and deletes ---- */

void gw_report_fragment(struct gw *gw, const char *key, int index, const char *container, const char *problem)
{
    cJSON *p = cJSON_CreateObject();
    if (!p)
        return;
    cJSON_AddStringToObject(p, "key", key);
    cJSON_AddNumberToObject(p, "index", index);
    cJSON_AddStringToObject(p, "problem", problem);
    if (container && dyno_valid_segment(container))
        cJSON_AddStringToObject(p, "container", container);
    gw->meta->notify(gw, "object.report", p);
    cJSON_Delete(p);
}

void gw_purge_fragments(struct gw *gw, struct gw_conn *conn, const char *key, const cJSON *frags)
{
    int index[GW_MAX_N] = {0};
    const char *url[GW_MAX_N] = {NULL};
    bool deleted[GW_MAX_N] = {false};
    int n = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, frags)
    {
        int64_t idx;
        if (n == GW_MAX_N || dyno_json_i64(f, "index", &idx) || idx < 0 || idx >= GW_MAX_N)
            continue;
        /* Fragments on offline containers stay as garbage for metadata to collect later. */
        if (!dyno_json_bool(f, "online", true))
            continue;
        index[n] = (int)idx;
        url[n] = dyno_json_str(f, "url");
        n++;
    }
    gw_fanout_delete(gw, conn, key, index, url, n, deleted);

    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "key", key);
    cJSON *del = cJSON_AddArrayToObject(params, "deleted");
    for (int i = 0; i < n; i++)
        if (deleted[i])
            cJSON_AddItemToArray(del, cJSON_CreateNumber(index[i]));
    char msg[256];
    int rc = gw->meta->call(gw, "object.purge", params, NULL, msg, sizeof(msg), NULL);
    if (rc)
        dyno_warn("object.purge failed", "key=%s err=%s", key, dyno_err_code(rc));
    cJSON_Delete(params);
}
