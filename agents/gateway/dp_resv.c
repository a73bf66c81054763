/*
 * The reservation pool (dp.h "reservations"): keys and placements of small objects, taken
 * from metadata ahead and in batches (object.reserve), so that a put of a replica takes one
 * from memory instead of sending object.begin on its critical path. One object.reserve of
 * `reserve_batch` objects costs metadata one write transaction and the broker two messages,
 * where as many object.begin calls cost as many of each.
 *
 * What a reservation is, in metadata: a pending object of catalog "" held by this gateway
 * (md_store.h), fragments placed and sized for small_max bytes. The put that takes one
 * commits it with its catalog, name and publisher (put__commit); one that fails aborts it
 * like any pending object. What must not leak or be reused:
 *
 *   never used      entries older than reserve_ttl_ms (their placement may be stale: a
 *                   container went offline or filled up) and every entry at a stop are
 *                   released (object.release drops their rows; nothing was sent under them)
 *   a crash         the next incarnation's first object.reserve says "fresh": metadata moves
 *                   every reservation this holder still has to deleting before it places new
 *                   ones (their fragments, if a put had begun sending, become garbage for GC)
 *   unknown outcome an object.reserve or object.release without an answer leaves its rows to
 *                   the next fresh reserve or to metadata's pending_timeout; a key is handed
 *                   to one put only (taken under the lock), so none is used twice
 *   a stale place   a put whose stream to a reserved container fails flushes the pool
 *                   (gw_resv_flush), so the next puts get placements of the current registry
 *
 * The refill runs on the pool's own thread, woken when the pool falls below half, so no put
 * waits for it; a put that finds the pool empty uses object.begin as before.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "crashpoint.h"
#include "gw.h"
#include "json.h"
#include "log.h"

struct gw_resv_entry {
    cJSON *obj; /* {key, unit, k, m, fragments} as object.reserve gave it */
    int64_t at_ms;
};

struct gw_resv {
    struct gw *gw;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    bool started, stop, kick;
    bool fresh; /* no object.reserve answered yet in this incarnation */
    int m;      /* the shape it holds: replicas (k = 1) with m parity copies */
    int batch;
    int64_t ttl_ms;
    struct gw_resv_entry *v;
    int n;
    int64_t taken, refills, released;
};

int gw_resv_new(struct gw *gw, int m, int batch, int64_t ttl_ms, struct gw_resv **out)
{
    *out = NULL;
    struct gw_resv *r = calloc(1, sizeof(*r));
    if (!r)
        return DYNO_ENOMEM;
    r->v = calloc((size_t)batch * 2, sizeof(*r->v));
    if (!r->v || pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r->v);
        free(r);
        return DYNO_ENOMEM;
    }
    pthread_cond_init(&r->cv, NULL);
    r->gw = gw;
    r->m = m;
    r->batch = batch;
    r->ttl_ms = ttl_ms;
    r->fresh = true;
    *out = r;
    return 0;
}

/* object.release of keys (best effort: unreleased ones wait for the next fresh reserve or
 * pending_timeout). */
static void resv__release(struct gw_resv *r, cJSON *keys)
{
    if (cJSON_GetArraySize(keys) == 0)
        return;
    struct gw *gw = r->gw;
    cJSON *params = cJSON_CreateObject();
    if (!params)
        return;
    cJSON_AddStringToObject(params, "holder", gw->cfg.c.id);
    cJSON_AddItemReferenceToObject(params, "keys", keys);
    char msg[256];
    int rc = gw->meta->call(gw, "object.release", params, NULL, msg, sizeof(msg), NULL);
    cJSON_Delete(params);
    if (rc)
        dyno_info("reservations not released", "count=%d err=%s", cJSON_GetArraySize(keys),
                  dyno_err_code(rc));
    else
        r->released += cJSON_GetArraySize(keys);
}

/* Moves the entries older than cutoff (all: INT64_MAX) into keys (their key strings) and
 * frees them. Under r->mu. */
static void resv__drop_older(struct gw_resv *r, int64_t cutoff, cJSON *keys)
{
    int w = 0;
    for (int i = 0; i < r->n; i++) {
        if (r->v[i].at_ms < cutoff) {
            const char *key = dyno_json_str(r->v[i].obj, "key");
            if (key && keys)
                cJSON_AddItemToArray(keys, cJSON_CreateString(key));
            cJSON_Delete(r->v[i].obj);
        } else {
            r->v[w++] = r->v[i];
        }
    }
    r->n = w;
}

/* One object.reserve for what the pool lacks. 0, or the call's error. */
int gw_resv_refill(struct gw_resv *r)
{
    struct gw *gw = r->gw;
    pthread_mutex_lock(&r->mu);
    int want = r->batch * 2 - r->n;
    bool fresh = r->fresh;
    pthread_mutex_unlock(&r->mu);
    if (want < r->batch / 2 + 1)
        return 0;
    if (want > r->batch)
        want = r->batch;
    cJSON *params = cJSON_CreateObject();
    if (!params)
        return DYNO_ENOMEM;
    cJSON_AddStringToObject(params, "holder", gw->cfg.c.id);
    dyno_json_add_i64(params, "size", gw->cfg.small_max);
    cJSON_AddNumberToObject(params, "k", 1);
    cJSON_AddNumberToObject(params, "m", r->m);
    cJSON_AddBoolToObject(params, "replica", true);
    dyno_json_add_i64(params, "unit", gw->cfg.small_max > 0 ? gw->cfg.small_max : 1);
    cJSON_AddNumberToObject(params, "count", want);
    if (fresh)
        cJSON_AddBoolToObject(params, "fresh", true);
    cJSON *res = NULL;
    char msg[256];
    int rc = gw->meta->call(gw, "object.reserve", params, &res, msg, sizeof(msg), NULL);
    cJSON_Delete(params);
    if (rc) {
        cJSON_Delete(res);
        return rc;
    }
    dyno_crash_point("gateway.reserve.after_reply"); /* reserved in metadata, held by nobody */
    int64_t now = gw_now_ms();
    cJSON *objs = cJSON_GetObjectItemCaseSensitive(res, "objects");
    cJSON *extra = cJSON_CreateArray();
    pthread_mutex_lock(&r->mu);
    r->fresh = false;
    r->refills++;
    cJSON *o;
    while (objs && (o = cJSON_DetachItemFromArray(objs, 0)) != NULL) {
        const cJSON *fr = cJSON_GetObjectItemCaseSensitive(o, "fragments");
        bool usable = dyno_valid_key(dyno_json_str(o, "key")) && cJSON_GetArraySize(fr) == r->m + 1;
        if (usable && r->n < r->batch * 2) {
            r->v[r->n++] = (struct gw_resv_entry){.obj = o, .at_ms = now};
        } else {
            if (dyno_valid_key(dyno_json_str(o, "key")) && extra)
                cJSON_AddItemToArray(extra, cJSON_CreateString(dyno_json_str(o, "key")));
            cJSON_Delete(o);
        }
    }
    pthread_mutex_unlock(&r->mu);
    cJSON_Delete(res);
    if (extra) {
        resv__release(r, extra);
        cJSON_Delete(extra);
    }
    return 0;
}

cJSON *gw_resv_take(struct gw_resv *r, int m)
{
    if (!r || m != r->m)
        return NULL;
    cJSON *o = NULL;
    int64_t cutoff = gw_now_ms() - r->ttl_ms;
    pthread_mutex_lock(&r->mu);
    /* The newest first: the oldest age out and are released by the pool's thread. */
    while (r->n > 0 && !o) {
        struct gw_resv_entry e = r->v[--r->n];
        if (e.at_ms >= cutoff) {
            o = e.obj;
            r->taken++;
        } else {
            r->v[r->n++] = e; /* stale, and so are all below it: leave them to the thread */
            break;
        }
    }
    if (r->n < r->batch) {
        r->kick = true;
        pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return o;
}

void gw_resv_flush(struct gw_resv *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++)
        r->v[i].at_ms = INT64_MIN; /* the thread releases them at its next turn */
    r->kick = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Releases what is older than the ttl (everything when all). */
void gw_resv_expire(struct gw_resv *r, bool all)
{
    cJSON *keys = cJSON_CreateArray();
    if (!keys)
        return;
    pthread_mutex_lock(&r->mu);
    resv__drop_older(r, all ? INT64_MAX : gw_now_ms() - r->ttl_ms, keys);
    pthread_mutex_unlock(&r->mu);
    resv__release(r, keys);
    cJSON_Delete(keys);
}

static void *resv__main(void *arg)
{
    struct gw_resv *r = arg;
    int64_t backoff_until = 0;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        r->kick = false;
        pthread_mutex_unlock(&r->mu);
        gw_resv_expire(r, false);
        if (gw_now_ms() >= backoff_until && r->gw->meta->reachable(r->gw)) {
            int rc = gw_resv_refill(r);
            if (rc) {
                /* Puts fall back to object.begin meanwhile (and report the same error). */
                backoff_until = gw_now_ms() + 1000;
                dyno_debug("object.reserve failed", "err=%s", dyno_err_code(rc));
            }
        }
        pthread_mutex_lock(&r->mu);
        if (r->stop || r->kick)
            continue;
        struct timespec ts;
        int64_t wait_ms = r->ttl_ms / 4 > 1000 ? 1000 : r->ttl_ms / 4 + 1;
        dyno_deadline_in(&ts, CLOCK_REALTIME, wait_ms);
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int gw_resv_start(struct gw_resv *r)
{
    if (pthread_create(&r->th, NULL, resv__main, r) != 0)
        return DYNO_EINTERNAL;
    r->started = true;
    return 0;
}

void gw_resv_free(struct gw_resv *r)
{
    if (!r)
        return;
    if (r->started) {
        pthread_mutex_lock(&r->mu);
        r->stop = true;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->th, NULL);
    }
    gw_resv_expire(r, true); /* the unused ones go back now, not at pending_timeout */
    dyno_info("reservations", "taken=%lld refills=%lld released=%lld", (long long)r->taken,
              (long long)r->refills, (long long)r->released);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r->v);
    free(r);
}

int gw_resv_count(struct gw_resv *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}
