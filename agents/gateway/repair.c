/*
 * Healing, the executing side (docs/healing.md, protocol.md §8): metadata plans, the
 * gateway does the work.
 *
 *   repair workers  cfg.repair_workers threads. Each runs the repair core (dp_repair.c
 *                   gw_repair_next: claims a task, rebuilds the fragments it lists with the
 *                   get core's read, the lost units encoded and sent as a put's, and reports
 *                   them). Memory: a few units per fragment, whatever the object size.
 *   GC              the first worker, when idle, deletes the garbage fragments metadata
 *                   hands out (dp_repair.c gw_gc_next).
 *   rate            claims are bounded by metadata (repair_rate); bytes read and written
 *                   by repair_rate_bytes per second over all workers of this gateway.
 *   admin routes    rebuild-metadata (fragments listed by every online container, grouped
 *                   by key, restored with object.restore), repair status, container drain.
 *
 * Threads: the workers are plain threads with their own struct gw_conn (curl multi and easy
 * handles are never shared); the admin handlers run in MHD's connection thread with that
 * connection's gw_conn, like every other handler.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "crashpoint.h"
#include "gw.h"
#include "hash.h"
#include "json.h"
#include "log.h"

#define GW_REPAIR_NAME_MAX 96
#define GW_RESTORE_BATCH 200         /* objects per object.restore (metadata takes 1000) */
#define GW_LIST_PAGE 1000            /* fragments per GET /v1/fragments page */
#define GW_LIST_BODY_MAX (8u << 20)  /* one listing page: 1000 entries of < 1 KiB */
#define GW_REBUILD_FRAGS_MAX 4000000 /* fragments one rebuild-metadata holds at most (~1 GiB) */

struct gw_repair {
    struct gw *gw;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled on stop */
    bool stop;
    int64_t rate_next_ms; /* when the bytes accounted so far are "paid" (token bucket) */
    int nthreads;
    struct gw_repair_worker *workers;
};

struct gw_repair_worker {
    struct gw_repair *rep;
    int no;
    pthread_t thread;
    bool started;
    struct gw_conn *conn;
    char name[GW_REPAIR_NAME_MAX];
};

/* ---- stop, sleep, rate ---- */

static bool gw_repair_stopping(struct gw_repair *rep)
{
    pthread_mutex_lock(&rep->mu);
    bool s = rep->stop;
    pthread_mutex_unlock(&rep->mu);
    return s;
}

/* Sleeps ms unless asked to stop; true when stopping. */
static bool gw_repair_sleep(struct gw_repair *rep, int64_t ms)
{
    struct timespec ts;
    dyno_deadline_in(&ts, CLOCK_REALTIME, ms);
    pthread_mutex_lock(&rep->mu);
    while (!rep->stop) {
        if (pthread_cond_timedwait(&rep->cv, &rep->mu, &ts) == ETIMEDOUT)
            break;
    }
    bool s = rep->stop;
    pthread_mutex_unlock(&rep->mu);
    return s;
}

/* Accounts bytes against repair_rate_bytes (shared by the workers) and sleeps for what is
 * over the budget; a quarter second of burst is allowed. True when stopping. */
static bool gw_repair_throttle(struct gw_repair *rep, uint64_t bytes)
{
    int64_t rate = rep->gw->cfg.repair_rate_bytes;
    int64_t now = gw_now_ms();
    pthread_mutex_lock(&rep->mu);
    if (rep->rate_next_ms < now - 250)
        rep->rate_next_ms = now - 250;
    rep->rate_next_ms += (int64_t)(bytes * 1000 / (uint64_t)rate);
    int64_t wait = rep->rate_next_ms - now;
    pthread_mutex_unlock(&rep->mu);
    return wait > 0 ? gw_repair_sleep(rep, wait) : gw_repair_stopping(rep);
}

/* gw_rtask_rebuild's pace: true when the gateway stops. */
static bool gw_repair_pace(void *arg, uint64_t bytes)
{
    return gw_repair_throttle(arg, bytes);
}

/* ---- the worker loop ---- */

static void *gw_repair_main(void *arg)
{
    struct gw_repair_worker *w = arg;
    struct gw_repair *rep = w->rep;
    struct gw *gw = rep->gw;
    bool warned = false;
    while (!gw_repair_stopping(rep)) {
        int rc = gw_repair_next(gw, w->conn, w->name, gw_repair_pace, rep);
        if (rc < 0 && !warned) {
            dyno_debug("repair.claim failed", "err=%s", dyno_err_code(rc));
            warned = true;
        } else if (rc >= 0) {
            warned = false;
        }
        if (rc > 0)
            continue; /* more may be waiting: claim again at once (metadata bounds the rate) */
        /* Idle: collect garbage, then wait. */
        if (w->no == 0 && rc == 0) {
            while (!gw_repair_stopping(rep) && gw_gc_next(gw, w->conn, w->name) == GW_GC_BATCH)
                ;
        }
        if (gw_repair_sleep(rep, gw->cfg.repair_poll_ms))
            break;
    }
    return NULL;
}

int gw_repair_start(struct gw *gw)
{
    int n = (int)gw->cfg.repair_workers;
    if (n <= 0) {
        dyno_info("repair disabled", "repair_workers=0");
        return 0;
    }
    struct gw_repair *rep = calloc(1, sizeof(*rep));
    if (!rep)
        return DYNO_ENOMEM;
    rep->gw = gw;
    pthread_mutex_init(&rep->mu, NULL);
    pthread_cond_init(&rep->cv, NULL);
    rep->workers = calloc((size_t)n, sizeof(*rep->workers));
    if (!rep->workers) {
        pthread_cond_destroy(&rep->cv);
        pthread_mutex_destroy(&rep->mu);
        free(rep);
        return DYNO_ENOMEM;
    }
    rep->nthreads = n;
    gw->repair = rep;
    for (int i = 0; i < n; i++) {
        struct gw_repair_worker *w = &rep->workers[i];
        w->rep = rep;
        w->no = i;
        snprintf(w->name, sizeof(w->name), "%s-r%d", gw->cfg.c.id, i);
        if (!dyno_valid_segment(w->name))
            snprintf(w->name, sizeof(w->name), "gw-r%d", i);
        w->conn = calloc(1, sizeof(*w->conn));
        if (!w->conn || pthread_create(&w->thread, NULL, gw_repair_main, w) != 0) {
            dyno_error("cannot start a repair worker", "worker=%d", i);
            gw_repair_stop(gw);
            return DYNO_EINTERNAL;
        }
        w->started = true;
    }
    dyno_info("repair workers started", "workers=%d poll_ms=%lld rate_bytes=%lld", n,
              (long long)gw->cfg.repair_poll_ms, (long long)gw->cfg.repair_rate_bytes);
    return 0;
}

void gw_repair_stop(struct gw *gw)
{
    struct gw_repair *rep = gw->repair;
    if (!rep)
        return;
    pthread_mutex_lock(&rep->mu);
    rep->stop = true;
    pthread_cond_broadcast(&rep->cv);
    pthread_mutex_unlock(&rep->mu);
    for (int i = 0; i < rep->nthreads; i++) {
        struct gw_repair_worker *w = &rep->workers[i];
        if (w->started)
            pthread_join(w->thread, NULL);
        gw_conn_free(w->conn);
    }
    free(rep->workers);
    pthread_cond_destroy(&rep->cv);
    pthread_mutex_destroy(&rep->mu);
    free(rep);
    gw->repair = NULL;
}

/* ---- admin routes ---- */

/* Runs an RPC and replies with its result (or its error). Takes params. */
static enum MHD_Result gw_repair_rpc_reply(struct gw_req *r, const char *service, const char *method,
                                           cJSON *params)
{
    char msg[400];
    cJSON *res = NULL;
    if (!params)
        return gw_reply_error(r, DYNO_ENOMEM, "out of memory");
    int rc = gw_rpc(r->gw, service, method, params, &res, msg, sizeof(msg));
    cJSON_Delete(params);
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    enum MHD_Result ret = gw_reply_json(r, 200, res ? res : cJSON_CreateObject());
    cJSON_Delete(res);
    return ret;
}

enum MHD_Result gw_admin_repair_status(struct gw_req *r)
{
    if (!r->claims.admin)
        return gw_reply_error(r, DYNO_EFORBIDDEN, "repair status is for admins");
    return gw_repair_rpc_reply(r, "metadata", "repair.status", cJSON_CreateObject());
}

enum MHD_Result gw_container_drain(struct gw_req *r)
{
    if (!r->claims.admin)
        return gw_reply_error(r, DYNO_EFORBIDDEN, "draining a container is for admins");
    if (!dyno_valid_segment(r->name))
        return gw_reply_error(r, DYNO_EINVAL, "bad container id ([A-Za-z0-9._-]{1,64})");
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "id", r->name);
    cJSON_AddItemToObject(params, "caller", gw_caller_json(r));
    dyno_info("drain requested", "container=%s by=%s", r->name, r->claims.sub);
    return gw_repair_rpc_reply(r, "metadata", "container.drain", params);
}

/* One fragment as a container lists it (its header and trailer). */
struct gw_lfrag {
    char key[DYNO_KEY_LEN + 1];
    int index;
    int k, m;
    bool replica;
    int64_t unit, size, object_size;
    char sha256[65];
    char container[DYNO_SEG_MAX + 1];
    char *catalog, *name; /* malloc'd */
};

struct gw_rebuild {
    struct gw_lfrag *v;
    size_t n, cap;
    int64_t corrupt, skipped, objects, fragments, conflicts, containers, unreachable;
    cJSON *catalogs; /* catalog path -> true, those made sure of */
};

static size_t gw_collect(const char *p, size_t len, void *arg)
{
    struct dyno_buf *b = arg;
    return dyno_buf_append(b, p, len) ? 0 : len;
}

/* GET url with the service token into a JSON document (bounded). Blocks on conn's multi. */
static int gw_repair_get_json(struct gw *gw, struct gw_conn *conn, const char *url, cJSON **out, char *msg,
                              size_t cap)
{
    struct gw_xfer x;
    struct dyno_buf b;
    int rc;
    *out = NULL;
    memset(&x, 0, sizeof(x));
    dyno_buf_init(&b, GW_LIST_BODY_MAX);
    struct gw_xfer_spec spec = {.method = GW_XFER_GET,
                                .url = url,
                                .timeout_ms = (long)gw->cfg.fragment_timeout_ms * 6,
                                .write = gw_collect,
                                .arg = &b};
    if ((rc = gw_xfer_start(gw, conn, &x, &spec)) != 0) {
        snprintf(msg, cap, "cannot start a transfer");
        goto out;
    }
    while (x.running)
        gw_xfer_step(conn, 100);
    if (!x.done || x.result != GW_XFER_OK || x.status != 200) {
        gw_xfer_reason(&x, msg, cap);
        rc = DYNO_EUNAVAIL;
        goto out;
    }
    if (dyno_json_parse(b.data ? b.data : "", b.len, GW_LIST_BODY_MAX, out) || !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        snprintf(msg, cap, "the container answered no JSON object");
        rc = DYNO_EPROTO;
    }
out:
    gw_xfer_close(conn, &x);
    dyno_buf_free(&b);
    return rc;
}

static void gw_rebuild_free(struct gw_rebuild *rb)
{
    for (size_t i = 0; i < rb->n; i++) {
        free(rb->v[i].catalog);
        free(rb->v[i].name);
    }
    free(rb->v);
    cJSON_Delete(rb->catalogs);
}

/* Adds one listing entry; counts it corrupt when its header or trailer is unusable. */
static int gw_rebuild_add(struct gw_rebuild *rb, const char *container, const cJSON *e)
{
    int64_t idx, k, m, unit, size = -1, osize;
    const char *key = dyno_json_str(e, "key"), *cat = dyno_json_str(e, "catalog");
    const char *name = dyno_json_str(e, "name"), *sha = dyno_json_str(e, "sha256");
    if (dyno_json_bool(e, "corrupt", false) || !dyno_valid_key(key) || !cat || !dyno_valid_catalog(cat) ||
        !name || !dyno_valid_name(name) || !sha || strlen(sha) != 64 || dyno_json_i64(e, "index", &idx) ||
        dyno_json_i64(e, "k", &k) || dyno_json_i64(e, "m", &m) || dyno_json_i64(e, "unit", &unit) ||
        dyno_json_i64(e, "object_size", &osize) || idx < 0 || k < 1 || k > DYNO_EC_MAX_K || m < 0 ||
        m > DYNO_EC_MAX_M || idx >= k + m || unit < 1 || osize < 0) {
        rb->corrupt++;
        return 0;
    }
    (void)dyno_json_i64(e, "size", &size);
    if (rb->n == rb->cap) {
        if (rb->cap >= GW_REBUILD_FRAGS_MAX)
            return DYNO_ETOOBIG;
        size_t nc = rb->cap ? rb->cap * 2 : 1024;
        struct gw_lfrag *nv = realloc(rb->v, nc * sizeof(*nv));
        if (!nv)
            return DYNO_ENOMEM;
        rb->v = nv;
        rb->cap = nc;
    }
    struct gw_lfrag *f = &rb->v[rb->n];
    memset(f, 0, sizeof(*f));
    memcpy(f->key, key, sizeof(f->key));
    f->index = (int)idx;
    f->k = (int)k;
    f->m = (int)m;
    f->replica = dyno_json_bool(e, "replica", false);
    f->unit = unit;
    f->size = size;
    f->object_size = osize;
    snprintf(f->sha256, sizeof(f->sha256), "%s", sha);
    snprintf(f->container, sizeof(f->container), "%s", container);
    f->catalog = strdup(cat);
    f->name = strdup(name);
    if (!f->catalog || !f->name) {
        free(f->catalog);
        free(f->name);
        return DYNO_ENOMEM;
    }
    rb->n++;
    return 0;
}

/* Every fragment of one container, page by page. */
static int gw_rebuild_list(struct gw_req *r, struct gw_rebuild *rb, const char *id, const char *url)
{
    char after[DYNO_KEY_LEN + 16] = "";
    for (;;) {
        char u[800], msg[300];
        cJSON *page = NULL;
        snprintf(u, sizeof(u), "%s/v1/fragments?limit=%d%s%s", url, GW_LIST_PAGE, after[0] ? "&after=" : "",
                 after);
        int rc = gw_repair_get_json(r->gw, r->conn, u, &page, msg, sizeof(msg));
        if (rc) {
            char q[340];
            dyno_log_q(q, sizeof(q), msg);
            dyno_warn("cannot list a container's fragments", "container=%s err=%s detail=%s", id,
                      dyno_err_code(rc), q);
            return rc;
        }
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(page, "fragments"), *e;
        cJSON_ArrayForEach(e, arr)
        {
            if ((rc = gw_rebuild_add(rb, id, e)) != 0) {
                cJSON_Delete(page);
                return rc;
            }
        }
        const char *next = dyno_json_str(page, "next");
        bool more = next && *next && strlen(next) < sizeof(after) && strcmp(next, after) != 0 &&
                    cJSON_GetArraySize(arr) > 0;
        if (more) {
            /* An id is <key>.<index>: nothing to escape. */
            for (const char *c = next; *c; c++)
                if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') || *c == '.'))
                    more = false;
            if (more)
                snprintf(after, sizeof(after), "%s", next);
        }
        cJSON_Delete(page);
        if (!more)
            return 0;
    }
}

static int gw_lfrag_cmp(const void *a, const void *b)
{
    const struct gw_lfrag *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : x->index - y->index;
}

/* Same object as described by two fragments' headers and trailers. */
static bool gw_lfrag_agree(const struct gw_lfrag *a, const struct gw_lfrag *b)
{
    return a->k == b->k && a->m == b->m && a->replica == b->replica && a->unit == b->unit &&
           a->object_size == b->object_size && strcmp(a->sha256, b->sha256) == 0 &&
           strcmp(a->catalog, b->catalog) == 0 && strcmp(a->name, b->name) == 0;
}

/* Makes sure the catalog exists in pubsub: an admin creates it for its owner when missing. */
static void gw_rebuild_catalog(struct gw_req *r, struct gw_rebuild *rb, const char *catalog)
{
    if (cJSON_GetObjectItemCaseSensitive(rb->catalogs, catalog))
        return;
    cJSON_AddBoolToObject(rb->catalogs, catalog, true);
    cJSON *p = cJSON_CreateObject();
    char msg[300];
    cJSON_AddStringToObject(p, "catalog", catalog);
    int rc = gw_rpc(r->gw, "pubsub", "catalog.get", p, NULL, msg, sizeof(msg));
    cJSON_Delete(p);
    if (rc != DYNO_ENOTFOUND)
        return;
    p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "catalog", catalog);
    /* It existed (its objects say so), so a reserved segment in its name is no new catalog. */
    cJSON_AddBoolToObject(p, "restore", true);
    cJSON_AddItemToObject(p, "caller", gw_caller_json(r));
    rc = gw_rpc(r->gw, "pubsub", "catalog.create", p, NULL, msg, sizeof(msg));
    cJSON_Delete(p);
    if (rc)
        dyno_warn("catalog not recreated", "catalog=%s err=%s", catalog, dyno_err_code(rc));
    else
        dyno_info("catalog recreated", "catalog=%s", catalog);
}

static int gw_rebuild_flush(struct gw_req *r, struct gw_rebuild *rb, cJSON **batch, int *nbatch)
{
    if (*nbatch == 0)
        return 0;
    cJSON *params = cJSON_CreateObject(), *res = NULL;
    char msg[400];
    cJSON_AddItemToObject(params, "objects", *batch);
    *batch = cJSON_CreateArray();
    *nbatch = 0;
    int rc = gw_rpc(r->gw, "metadata", "object.restore", params, &res, msg, sizeof(msg));
    if (rc == 0) {
        const cJSON *restored = cJSON_GetObjectItemCaseSensitive(res, "restored"), *it;
        const cJSON *objs = cJSON_GetObjectItemCaseSensitive(params, "objects");
        rb->skipped += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res, "skipped"));
        rb->conflicts += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res, "conflicts"));
        cJSON_ArrayForEach(it, restored)
        {
            rb->objects++;
            const cJSON *o;
            cJSON_ArrayForEach(o, objs)
            {
                const char *k = dyno_json_str(o, "key");
                if (k && cJSON_IsString(it) && strcmp(k, it->valuestring) == 0) {
                    rb->fragments += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "fragments"));
                    break;
                }
            }
        }
    } else {
        char q[440];
        dyno_log_q(q, sizeof(q), msg);
        dyno_warn("object.restore failed", "err=%s detail=%s", dyno_err_code(rc), q);
    }
    cJSON_Delete(params);
    cJSON_Delete(res);
    return rc;
}

/* Groups the sorted fragments by key and restores them, GW_RESTORE_BATCH objects a call. */
static int gw_rebuild_restore(struct gw_req *r, struct gw_rebuild *rb)
{
    int rc = 0, nbatch = 0;
    cJSON *batch = cJSON_CreateArray();
    if (!batch)
        return DYNO_ENOMEM;
    qsort(rb->v, rb->n, sizeof(*rb->v), gw_lfrag_cmp);
    for (size_t i = 0; i < rb->n && rc == 0;) {
        size_t j = i;
        while (j < rb->n && strcmp(rb->v[j].key, rb->v[i].key) == 0)
            j++;
        /* The description most fragments agree on wins; the others are corrupt. */
        size_t best = i, best_votes = 0;
        for (size_t a = i; a < j; a++) {
            size_t votes = 0;
            for (size_t b = i; b < j; b++)
                votes += gw_lfrag_agree(&rb->v[a], &rb->v[b]);
            if (votes > best_votes) {
                best = a;
                best_votes = votes;
            }
        }
        const struct gw_lfrag *o = &rb->v[best];
        char owner[DYNO_SEG_MAX + 1];
        dyno_catalog_owner(o->catalog, owner, sizeof(owner));
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "key", o->key);
        cJSON_AddStringToObject(obj, "catalog", o->catalog);
        cJSON_AddStringToObject(obj, "name", o->name);
        cJSON_AddStringToObject(obj, "owner", owner);
        dyno_json_add_i64(obj, "size", o->object_size);
        cJSON_AddStringToObject(obj, "sha256", o->sha256);
        cJSON_AddNumberToObject(obj, "k", o->k);
        cJSON_AddNumberToObject(obj, "m", o->m);
        cJSON_AddBoolToObject(obj, "replica", o->replica);
        dyno_json_add_i64(obj, "unit", o->unit);
        cJSON *fr = cJSON_AddArrayToObject(obj, "fragments");
        int last_index = -1;
        for (size_t a = i; a < j; a++) {
            const struct gw_lfrag *f = &rb->v[a];
            if (!gw_lfrag_agree(o, f)) {
                rb->corrupt++;
                continue;
            }
            if (f->index == last_index)
                continue; /* the same fragment on two containers (a repair's leftover): one is enough */
            last_index = f->index;
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "index", f->index);
            cJSON_AddStringToObject(x, "container", f->container);
            dyno_json_add_i64(x, "size", f->size);
            cJSON_AddItemToArray(fr, x);
        }
        if (o->replica && o->k != 1) {
            cJSON_Delete(obj);
            rb->corrupt += (int64_t)(j - i);
        } else {
            gw_rebuild_catalog(r, rb, o->catalog);
            cJSON_AddItemToArray(batch, obj);
            if (++nbatch == GW_RESTORE_BATCH)
                rc = gw_rebuild_flush(r, rb, &batch, &nbatch);
        }
        i = j;
    }
    if (rc == 0)
        rc = gw_rebuild_flush(r, rb, &batch, &nbatch);
    cJSON_Delete(batch);
    return rc;
}

enum MHD_Result gw_admin_rebuild_metadata(struct gw_req *r)
{
    if (!r->claims.admin)
        return gw_reply_error(r, DYNO_EFORBIDDEN, "rebuilding metadata is for admins");
    char msg[400];
    cJSON *cl = NULL;
    struct gw_rebuild rb;
    memset(&rb, 0, sizeof(rb));
    int64_t t0 = gw_now_ms();
    cJSON *params = cJSON_CreateObject();
    int rc = gw_rpc(r->gw, "metadata", "container.list", params, &cl, msg, sizeof(msg));
    cJSON_Delete(params);
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    rb.catalogs = cJSON_CreateObject();
    if (!rb.catalogs) {
        cJSON_Delete(cl);
        return gw_reply_error(r, DYNO_ENOMEM, "out of memory");
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(cl, "containers"))
    {
        const char *id = dyno_json_str(c, "id"), *url = dyno_json_str(c, "url");
        const char *state = dyno_json_str(c, "state");
        if (!dyno_valid_segment(id) || !url ||
            (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
            continue;
        /* "online" (a bool) when metadata gives it; else the state ("draining" is online too). */
        if (!dyno_json_bool(c, "online",
                            state && (strcmp(state, "online") == 0 || strcmp(state, "draining") == 0))) {
            rb.unreachable++;
            continue;
        }
        rc = gw_rebuild_list(r, &rb, id, url);
        if (rc == DYNO_ENOMEM || rc == DYNO_ETOOBIG)
            goto fail;
        if (rc)
            rb.unreachable++;
        else
            rb.containers++;
    }
    rc = gw_rebuild_restore(r, &rb);
    if (rc) {
        snprintf(msg, sizeof(msg), "object.restore failed: %s", dyno_strerror(rc));
        goto fail;
    }
    dyno_info("metadata rebuilt",
              "containers=%lld unreachable=%lld objects=%lld fragments=%lld skipped=%lld "
              "corrupt=%lld conflicts=%lld ms=%lld",
              (long long)rb.containers, (long long)rb.unreachable, (long long)rb.objects,
              (long long)rb.fragments, (long long)rb.skipped, (long long)rb.corrupt, (long long)rb.conflicts,
              (long long)(gw_now_ms() - t0));
    cJSON *out = cJSON_CreateObject();
    dyno_json_add_i64(out, "objects", rb.objects);
    dyno_json_add_i64(out, "fragments", rb.fragments);
    dyno_json_add_i64(out, "skipped", rb.skipped);
    dyno_json_add_i64(out, "corrupt", rb.corrupt);
    dyno_json_add_i64(out, "conflicts", rb.conflicts);
    dyno_json_add_i64(out, "containers", rb.containers);
    dyno_json_add_i64(out, "unreachable", rb.unreachable);
    enum MHD_Result ret = gw_reply_json(r, 200, out);
    cJSON_Delete(out);
    cJSON_Delete(cl);
    gw_rebuild_free(&rb);
    return ret;
fail:
    cJSON_Delete(cl);
    gw_rebuild_free(&rb);
    if (rc == DYNO_ETOOBIG)
        return gw_reply_error(r, rc, "more than %d fragments: rebuild not attempted", GW_REBUILD_FRAGS_MAX);
    if (rc == DYNO_ENOMEM)
        return gw_reply_error(r, rc, "out of memory");
    return gw_reply_error(r, rc, "%s", msg);
}
