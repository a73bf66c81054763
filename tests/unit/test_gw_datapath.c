/*
 * Unit tests of the gateway's data-path core (agents/gateway/dp*.c, xfer.c) over a fake
 * transport and a fake metadata (dp.h's two interfaces): puts and gets with every loss
 * pattern up to m, a CRC failure mid-stripe, short reads, cut bodies, stalls, containers
 * that die mid-put, replicas, and the rule that a put whose outcome is unknown deletes
 * nothing; repairs that rebuild fragments byte for byte. The agent's sources are compiled in because unit
 * tests link only dyno_core.
 *
 * The fake transport is a set of in-memory containers. It moves a few bytes per transfer
 * per step (short reads and writes, interleaved like real ones), honours pauses, stores a
 * PUT only when its body parses as a whole fragment (as a container does), and can refuse
 * connections, answer 404, cut a body, stall, or die in the middle of an upload.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../agents/gateway/dp.c"
#include "../../agents/gateway/dp_get.c"
#include "../../agents/gateway/dp_put.c"
#include "../../agents/gateway/dp_resv.c"
#include "../../agents/gateway/dp_repair.c"
#include "../../agents/gateway/rtt.c"
#include "../../agents/gateway/util.c"
#include "../../agents/gateway/xfer.c"

#define FK_NODES GW_MAX_N
#define FK_FRAGS 64
#define UNIT 1024

/* ---- fake containers ---- */

struct fk_frag {
    char id[DYNO_KEY_LEN + 8];
    uint8_t *data;
    size_t len;
};

struct fk_node {
    char url[64];
    struct fk_frag frag[FK_FRAGS];
    int nfrag;
    /* faults */
    bool refuse;         /* connections refused */
    bool missing;        /* every GET answers 404 */
    int64_t cut_after;   /* GET: the body ends (cut) after this many bytes; -1 never */
    int64_t stall_after; /* GET and PUT: no byte moves after this many; -1 never */
    int64_t die_after;   /* PUT: the connection breaks after this many body bytes; -1 never */
    char site[16];       /* the site object records name for its fragments ("" none) */
    int deletes;         /* DELETE requests received */
    int gets;            /* GET requests received */
    int whole_puts;      /* PUT requests that brought their whole body at the start */
    int streamed_puts;   /* PUT requests whose body came through the read callback */
};

struct fk_xfer {
    struct gw_xfer *x;
    struct fk_node *node;
    enum gw_xfer_method method;
    char id[DYNO_KEY_LEN + 8];
    uint8_t *buf; /* PUT: the body so far; GET: the range to serve */
    size_t len, cap, pos;
    bool live;
};

/* ---- fake metadata ---- */

enum fk_outcome { FK_ANSWER, FK_UNKNOWN, FK_REFUSE };

struct fk {
    struct fk_node node[FK_NODES];
    struct fk_xfer xf[256];
    size_t chunk; /* bytes a transfer moves per step */
    /* metadata */
    int next_key;
    cJSON *begun;  /* the last object.begin params, with the key it got */
    cJSON *object; /* the last committed object, as object.get answers it */
    enum fk_outcome commit, abort, reserve;
    int commits, aborts, reports, emits;
    int begins, reserves, fresh_reserves, released; /* object.begin, .reserve, keys released */
    cJSON *last_commit;                             /* the last object.commit params */
    char last_report[16];
    int last_report_index;
    /* healing: what the next repair.claim / gc.claim hands out (taken by it), and the last
     * repair.complete / gc.complete params */
    cJSON *task, *gc_items;
    cJSON *completed, *gc_completed;
    int claims;
};

static struct fk *FK; /* the fixture's, for the transport callbacks */

static struct fk_node *fk__node_of(const char *url)
{
    for (int i = 0; i < FK_NODES; i++) {
        size_t n = strlen(FK->node[i].url);
        if (strncmp(url, FK->node[i].url, n) == 0 && url[n] == '/')
            return &FK->node[i];
    }
    return NULL;
}

static struct fk_frag *fk__find(struct fk_node *nd, const char *id)
{
    for (int i = 0; i < nd->nfrag; i++)
        if (strcmp(nd->frag[i].id, id) == 0)
            return &nd->frag[i];
    return NULL;
}

static void fk__remove(struct fk_node *nd, const char *id)
{
    struct fk_frag *f = fk__find(nd, id);
    if (!f)
        return;
    free(f->data);
    *f = nd->frag[--nd->nfrag];
}

/* A container stores only what parses as a whole fragment. */
static int fk__on_record(void *arg, uint64_t s, const uint8_t *payload, size_t len)
{
    (void)arg, (void)s, (void)payload, (void)len;
    return 0;
}
static const struct dyno_frag_parser_cbs fk__cbs = {.on_record = fk__on_record};

static bool fk__valid_fragment(const uint8_t *p, size_t len)
{
    struct dyno_frag_parser ps;
    if (dyno_frag_parser_init(&ps, true, 0, DYNO_FRAG_MAX_UNIT, &fk__cbs, NULL))
        return false;
    bool ok = dyno_frag_parser_feed(&ps, p, len) == 0 && dyno_frag_parser_done(&ps);
    dyno_frag_parser_free(&ps);
    return ok;
}

static void fk__finish(struct fk_xfer *f, int result, long status, const char *err)
{
    f->x->running = false;
    f->x->done = true;
    f->x->result = result;
    f->x->status = status;
    if (err)
        snprintf(f->x->err, sizeof(f->x->err), "%s", err);
    f->live = false;
}

static int fk_start(struct gw *gw, struct gw_conn *conn, struct gw_xfer *x, const struct gw_xfer_spec *s)
{
    (void)gw, (void)conn;
    struct fk_xfer *f = NULL;
    for (size_t i = 0; i < sizeof(FK->xf) / sizeof(FK->xf[0]) && !f; i++)
        if (!FK->xf[i].x)
            f = &FK->xf[i];
    if (!f) {
        fail_msg("the fake transport has no free transfer slot: a transfer was never closed");
        return DYNO_ENOMEM;
    }
    memset(f, 0, sizeof(*f));
    f->x = x;
    f->method = s->method;
    f->node = fk__node_of(s->url);
    f->live = true;
    const char *id = strrchr(s->url, '/');
    snprintf(f->id, sizeof(f->id), "%s", id ? id + 1 : "");
    x->h = f;
    x->running = true;
    if (!f->node || f->node->refuse) {
        fk__finish(f, GW_XFER_FAILED, 0, "connection refused");
        return 0;
    }
    if (s->method == GW_XFER_GET) {
        f->node->gets++;
        struct fk_frag *fr = fk__find(f->node, f->id);
        if (f->node->missing || !fr) {
            fk__finish(f, GW_XFER_FAILED, 404, "HTTP 404");
            return 0;
        }
        unsigned long long from = 0, to = fr->len - 1;
        if (s->range)
            assert_int_equal(sscanf(s->range, "%llu-%llu", &from, &to), 2);
        if (to >= fr->len)
            to = fr->len - 1;
        assert_true(from <= to);
        f->len = (size_t)(to - from + 1);
        f->buf = malloc(f->len);
        memcpy(f->buf, fr->data + from, f->len);
    } else if (s->method == GW_XFER_PUT && s->body) {
        /* The whole body with the request: the read callback has nothing more to give. */
        f->node->whole_puts++;
        assert_true(s->size >= 0);
        f->cap = f->len = (size_t)s->size;
        f->buf = malloc(f->cap ? f->cap : 1);
        memcpy(f->buf, s->body, f->len);
    } else if (s->method == GW_XFER_PUT) {
        f->node->streamed_puts++;
    } else if (s->method == GW_XFER_DELETE) {
        f->node->deletes++;
        bool had = fk__find(f->node, f->id) != NULL;
        fk__remove(f->node, f->id);
        fk__finish(f, had ? GW_XFER_OK : GW_XFER_FAILED, had ? 204 : 404, NULL);
    }
    return 0;
}

static void fk_resume(struct gw_conn *conn, struct gw_xfer *x)
{
    (void)conn, (void)x; /* the next step offers the bytes again */
}

static void fk_close(struct gw_conn *conn, struct gw_xfer *x)
{
    (void)conn;
    struct fk_xfer *f = x->h;
    free(f->buf);
    memset(f, 0, sizeof(*f));
}

/* One transfer's step; true when bytes moved. */
static bool fk__move(struct fk_xfer *f)
{
    struct fk_node *nd = f->node;
    size_t n = FK->chunk;
    size_t moved = f->method == GW_XFER_GET ? f->pos : f->len;
    if (nd->stall_after >= 0 && moved >= (size_t)nd->stall_after)
        return false; /* stalled: the connection stays open, nothing moves */
    if (f->method == GW_XFER_GET) {
        if (nd->cut_after >= 0 && f->pos >= (size_t)nd->cut_after) {
            fk__finish(f, GW_XFER_CUT, 206, NULL);
            return true;
        }
        if (n > f->len - f->pos)
            n = f->len - f->pos;
        f->x->status = 206;
        size_t took = f->x->write((const char *)f->buf + f->pos, n, f->x->arg);
        if (took == GW_XFER_PAUSE) {
            f->x->paused = true;
            return false;
        }
        if (took != n) {
            fk__finish(f, GW_XFER_FAILED, 206, "aborted by the write callback");
            return true;
        }
        f->pos += n;
        if (f->pos == f->len)
            fk__finish(f, GW_XFER_OK, 206, NULL);
        return true;
    }
    /* PUT */
    char tmp[4096];
    if (n > sizeof(tmp))
        n = sizeof(tmp);
    size_t got = f->x->read(tmp, n, f->x->arg);
    if (got == GW_XFER_PAUSE) {
        f->x->paused = true;
        return false;
    }
    if (got == 0) {
        if (!fk__valid_fragment(f->buf, f->len)) {
            fk__finish(f, GW_XFER_FAILED, 400, "HTTP 400");
            return true;
        }
        fk__remove(nd, f->id);
        assert_true(nd->nfrag < FK_FRAGS);
        nd->frag[nd->nfrag++] = (struct fk_frag){.data = f->buf, .len = f->len};
        snprintf(nd->frag[nd->nfrag - 1].id, sizeof(nd->frag[0].id), "%s", f->id);
        f->buf = NULL;
        fk__finish(f, GW_XFER_OK, 201, NULL);
        return true;
    }
    if (f->len + got > f->cap) {
        f->cap = (f->len + got) * 2;
        f->buf = realloc(f->buf, f->cap);
    }
    memcpy(f->buf + f->len, tmp, got);
    f->len += got;
    if (nd->die_after >= 0 && f->len >= (size_t)nd->die_after)
        fk__finish(f, GW_XFER_FAILED, 0, "connection reset by peer");
    return true;
}

static void fk_step(struct gw_conn *conn, int poll_ms)
{
    (void)conn;
    bool moved = false;
    for (size_t i = 0; i < sizeof(FK->xf) / sizeof(FK->xf[0]); i++) {
        struct fk_xfer *f = &FK->xf[i];
        if (f->x && f->live && !f->x->paused)
            moved |= fk__move(f);
    }
    if (!moved && poll_ms > 0) {
        struct timespec ts = {0, 1000000}; /* nothing moves: let the clock run for timeouts */
        nanosleep(&ts, NULL);
    }
}

static const struct gw_transport fk_transport = {
    .start = fk_start, .resume = fk_resume, .close = fk_close, .step = fk_step};

static int fk_call(struct gw *gw, const char *method, const cJSON *params, cJSON **result, char *msg,
                   size_t cap, bool *unknown)
{
    (void)gw;
    if (result)
        *result = NULL;
    if (unknown)
        *unknown = false;
    msg[0] = '\0';
    if (strcmp(method, "object.reserve") == 0) {
        if (FK->reserve != FK_ANSWER) {
            if (unknown)
                *unknown = FK->reserve == FK_UNKNOWN;
            snprintf(msg, cap, "no reservation");
            return FK->reserve == FK_UNKNOWN ? DYNO_ETIMEDOUT : DYNO_EUNAVAIL;
        }
        FK->reserves++;
        FK->fresh_reserves += dyno_json_bool(params, "fresh", false);
        int64_t count = 0, m = 0;
        dyno_json_i64(params, "count", &count);
        dyno_json_i64(params, "m", &m);
        cJSON *res = cJSON_CreateObject();
        cJSON *objs = cJSON_AddArrayToObject(res, "objects");
        for (int64_t j = 0; j < count; j++) {
            char key[DYNO_KEY_LEN + 1];
            snprintf(key, sizeof(key), "%032x", ++FK->next_key);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "key", key);
            cJSON *fr = cJSON_AddArrayToObject(o, "fragments");
            for (int i = 0; i < m + 1; i++) {
                cJSON *f = cJSON_CreateObject();
                cJSON_AddNumberToObject(f, "index", i);
                cJSON_AddStringToObject(f, "url", FK->node[i].url);
                cJSON_AddItemToArray(fr, f);
            }
            cJSON_AddItemToArray(objs, o);
        }
        *result = res;
        return 0;
    }
    if (strcmp(method, "object.release") == 0) {
        FK->released += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(params, "keys"));
        return 0;
    }
    if (strcmp(method, "object.commit") == 0 && cJSON_GetObjectItemCaseSensitive(params, "catalog")) {
        /* A reservation's commit carries what object.begin would have. */
        cJSON_Delete(FK->begun);
        FK->begun = cJSON_Duplicate(params, true);
    }
    if (strcmp(method, "object.commit") == 0) {
        cJSON_Delete(FK->last_commit);
        FK->last_commit = cJSON_Duplicate(params, true);
    }
    if (strcmp(method, "object.begin") == 0) {
        FK->begins++;
        char key[DYNO_KEY_LEN + 1];
        snprintf(key, sizeof(key), "%032x", ++FK->next_key);
        int64_t k = 0, m = 0;
        dyno_json_i64(params, "k", &k);
        dyno_json_i64(params, "m", &m);
        cJSON_Delete(FK->begun);
        FK->begun = cJSON_Duplicate(params, true);
        cJSON_AddStringToObject(FK->begun, "key", key);
        cJSON *res = cJSON_CreateObject();
        cJSON_AddStringToObject(res, "key", key);
        int64_t unit = 0;
        dyno_json_i64(params, "unit", &unit);
        dyno_json_add_i64(res, "unit", unit);
        cJSON *fr = cJSON_AddArrayToObject(res, "fragments");
        for (int i = 0; i < k + m; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "index", i);
            cJSON_AddStringToObject(o, "url", FK->node[i].url);
            cJSON_AddItemToArray(fr, o);
        }
        *result = res;
        return 0;
    }
    if (strcmp(method, "repair.claim") == 0 || strcmp(method, "gc.claim") == 0) {
        bool gc = method[0] == 'g';
        cJSON **give = gc ? &FK->gc_items : &FK->task;
        FK->claims++;
        *result = cJSON_CreateObject();
        if (*give)
            cJSON_AddItemToObject(*result, gc ? "items" : "task", *give);
        *give = NULL;
        return 0;
    }
    if (strcmp(method, "repair.complete") == 0 || strcmp(method, "gc.complete") == 0) {
        cJSON **keep = method[0] == 'g' ? &FK->gc_completed : &FK->completed;
        cJSON_Delete(*keep);
        *keep = cJSON_Duplicate(params, true);
        return 0;
    }
    enum fk_outcome out = FK_ANSWER;
    if (strcmp(method, "object.commit") == 0) {
        FK->commits++;
        out = FK->commit;
        if (out == FK_ANSWER) {
            /* The object as object.get will give it. */
            cJSON *o = cJSON_CreateObject();
            const char *fields[] = {"key", "catalog"};
            for (int i = 0; i < 2; i++)
                cJSON_AddStringToObject(o, fields[i], dyno_json_str(FK->begun, fields[i]));
            const char *numbers[] = {"k", "m", "unit"};
            for (int i = 0; i < 3; i++) {
                int64_t v = 0;
                dyno_json_i64(FK->begun, numbers[i], &v);
                dyno_json_add_i64(o, numbers[i], v);
            }
            cJSON_AddBoolToObject(o, "replica", dyno_json_bool(FK->begun, "replica", false));
            int64_t size = 0;
            dyno_json_i64(params, "size", &size);
            dyno_json_add_i64(o, "size", size);
            cJSON_AddStringToObject(o, "sha256", dyno_json_str(params, "sha256"));
            cJSON *fr = cJSON_AddArrayToObject(o, "fragments");
            const cJSON *f;
            cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(params, "fragments"))
            {
                int64_t idx = 0;
                dyno_json_i64(f, "index", &idx);
                cJSON *e = cJSON_CreateObject();
                cJSON_AddNumberToObject(e, "index", (double)idx);
                cJSON_AddStringToObject(e, "url", FK->node[idx].url);
                char cid[16];
                snprintf(cid, sizeof(cid), "c%d", (int)idx); /* node i is container "ci" */
                cJSON_AddStringToObject(e, "container", cid);
                if (FK->node[idx].site[0])
                    cJSON_AddStringToObject(e, "site", FK->node[idx].site);
                cJSON_AddStringToObject(e, "state", dyno_json_bool(f, "ok", false) ? "ok" : "missing");
                cJSON_AddItemToArray(fr, e);
            }
            cJSON_Delete(FK->object);
            FK->object = o;
            if (result)
                *result = cJSON_CreateObject();
        }
    } else if (strcmp(method, "object.abort") == 0) {
        FK->aborts++;
        out = FK->abort;
    }
    if (out == FK_UNKNOWN) {
        if (unknown)
            *unknown = true;
        snprintf(msg, cap, "no answer in time");
        return DYNO_ETIMEDOUT;
    }
    if (out == FK_REFUSE) {
        snprintf(msg, cap, "refused");
        return DYNO_ECONFLICT;
    }
    return 0;
}

static void fk_notify(struct gw *gw, const char *method, const cJSON *params)
{
    (void)gw;
    if (strcmp(method, "object.report") == 0) {
        FK->reports++;
        snprintf(FK->last_report, sizeof(FK->last_report), "%s", dyno_json_str(params, "problem"));
        int64_t idx = -1;
        dyno_json_i64(params, "index", &idx);
        FK->last_report_index = (int)idx;
    }
}

static void fk_wait(struct gw *gw, int ms)
{
    (void)gw, (void)ms;
}

static bool fk_reachable(struct gw *gw)
{
    (void)gw;
    return true;
}

static void fk_emit(struct gw *gw, const char *type, const char *catalog, const char *key, const char *name,
                    int64_t size, const char *sha256)
{
    (void)gw, (void)type, (void)catalog, (void)key, (void)name, (void)size, (void)sha256;
    FK->emits++;
}

static const struct gw_meta fk_meta = {.call = fk_call,
                                       .notify = fk_notify,
                                       .wait_reachable = fk_wait,
                                       .reachable = fk_reachable,
                                       .emit = fk_emit};

/* ---- fixture ---- */

struct fx {
    struct gw gw;
    struct gw_conn conn;
    struct fk fk;
};

static void fk_heal(struct fk *fk)
{
    for (int i = 0; i < FK_NODES; i++) {
        struct fk_node *nd = &fk->node[i];
        nd->refuse = nd->missing = false;
        nd->cut_after = nd->stall_after = nd->die_after = -1;
    }
}

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof(*x));
    FK = &x->fk;
    for (int i = 0; i < FK_NODES; i++)
        snprintf(x->fk.node[i].url, sizeof(x->fk.node[i].url), "http://c%d.test", i);
    fk_heal(&x->fk);
    x->fk.chunk = 1500;
    struct gw_cfg *c = &x->gw.cfg;
    c->unit = UNIT;
    c->k = 3;
    c->m = 2;
    c->small_max = 600;
    c->fragment_timeout_ms = 150;
    c->commit_resolve_ms = 60;
    c->max_body = 1 << 24;
    pthread_mutex_init(&x->gw.ec_lock, NULL);
    gw_rtt_init(&x->gw.rtt);
    x->gw.tp = &fk_transport;
    x->gw.meta = &fk_meta;
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    for (int i = 0; i < FK_NODES; i++)
        for (int j = 0; j < x->fk.node[i].nfrag; j++)
            free(x->fk.node[i].frag[j].data);
    for (int k = 0; k <= DYNO_EC_MAX_K; k++)
        for (int m = 0; m <= DYNO_EC_MAX_M; m++)
            dyno_ec_free(x->gw.ec_cache[k][m]);
    pthread_mutex_destroy(&x->gw.ec_lock);
    gw_rtt_destroy(&x->gw.rtt);
    gw_buf_pool_free(&x->gw);
    cJSON_Delete(x->fk.begun);
    cJSON_Delete(x->fk.object);
    cJSON_Delete(x->fk.last_commit);
    gw_resv_free(x->gw.resv);
    cJSON_Delete(x->fk.task);
    cJSON_Delete(x->fk.gc_items);
    cJSON_Delete(x->fk.completed);
    cJSON_Delete(x->fk.gc_completed);
    free(x);
    FK = NULL;
    return 0;
}

static uint8_t *pattern(size_t len, unsigned seed)
{
    uint8_t *p = malloc(len ? len : 1);
    uint32_t v = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        v = v * 1103515245u + 12345u;
        p[i] = (uint8_t)(v >> 16);
    }
    return p;
}

/* Whether do_put's catalog has "site_spread": "relaxed". */
static bool g_relaxed;

/* Puts data (in writes of step bytes; size announced when known) with resilience k,m.
 * The result code; *res the put result on success. */
static int do_put(struct fx *x, const uint8_t *data, size_t len, int k, int m, bool known, size_t step,
                  cJSON **res)
{
    struct gw_put_args a = {.catalog = "alice/data",
                            .name = "obj",
                            .publisher = "alice",
                            .k = k,
                            .m = m,
                            .size = known ? (int64_t)len : -1,
                            .site_relaxed = g_relaxed};
    struct gw_put *p = NULL;
    char msg[400];
    *res = NULL;
    int rc = gw_put_new(&x->gw, &x->conn, &a, &p, msg, sizeof(msg));
    for (size_t o = 0; rc == 0 && o < len; o += step)
        rc = gw_put_write(p, data + o, len - o < step ? len - o : step);
    if (rc == 0)
        rc = gw_put_finish(p, res);
    gw_put_close(p);
    return rc;
}

/* How do_get takes the bytes of a one-stripe read: through gw_get_whole as get.c does (its
 * segments, in place), or through gw_get_read (which multi-stripe reads always use). */
static bool g_whole = true;
static int g_whole_hits; /* reads gw_get_whole served */

/* Reads [first, last] of the last committed object into a new buffer; the code. */
static int do_get(struct fx *x, uint64_t first, uint64_t last, bool verify, uint8_t **out, size_t *outlen)
{
    struct gw_get *g = NULL;
    *out = NULL;
    *outlen = 0;
    int rc = gw_get_new(&x->gw, &x->conn, dyno_json_str(x->fk.object, "key"), x->fk.object, &g);
    if (rc)
        return rc;
    size_t want = (size_t)(last - first + 1), n = 0;
    uint8_t *buf = malloc(want);
    rc = gw_get_start(g, first, last, verify ? GW_GET_VERIFY : 0);
    struct dyno_frag_seg seg[GW_MAX_N];
    int nseg = rc == 0 && g_whole ? gw_get_whole(g, seg, GW_MAX_N) : 0;
    for (int i = 0; i < nseg; i++) {
        assert_true(n + seg[i].len <= want);
        memcpy(buf + n, seg[i].p, seg[i].len);
        n += seg[i].len;
    }
    g_whole_hits += nseg > 0;
    if (nseg > 0) /* all of it: the core has nothing more */
        assert_int_equal(gw_get_read(g, (char *)buf, want), 0);
    while (rc == 0) {
        ssize_t got = gw_get_read(g, (char *)buf + n, want - n < 7000 ? want - n : 7000);
        if (got < 0)
            rc = DYNO_EUNAVAIL;
        else if (got == 0)
            break;
        else
            n += (size_t)got;
        assert_true(n <= want);
    }
    gw_get_free(g);
    if (rc == 0 && n != want)
        rc = DYNO_EPROTO;
    if (rc)
        free(buf);
    else
        *out = buf, *outlen = n;
    return rc;
}

static int count_fragments(const struct fx *x, int n)
{
    int c = 0;
    for (int i = 0; i < n; i++)
        c += x->fk.node[i].nfrag;
    return c;
}

static int total_deletes(const struct fx *x)
{
    int c = 0;
    for (int i = 0; i < FK_NODES; i++)
        c += x->fk.node[i].deletes;
    return c;
}

/* Checks a whole read and a range read of the object against data, with and without
 * gw_get_whole. */
static void expect_read1(struct fx *x, const uint8_t *data, size_t len);
static void expect_read(struct fx *x, const uint8_t *data, size_t len)
{
    g_whole = false;
    expect_read1(x, data, len);
    g_whole = true;
    expect_read1(x, data, len);
}

static void expect_read1(struct fx *x, const uint8_t *data, size_t len)
{
    uint8_t *got;
    size_t glen;
    assert_int_equal(do_get(x, 0, len - 1, true, &got, &glen), 0);
    assert_int_equal(glen, len);
    assert_memory_equal(got, data, len);
    free(got);
    if (len > 10) {
        uint64_t a = len / 3, b = len - 5;
        assert_int_equal(do_get(x, a, b, false, &got, &glen), 0);
        assert_int_equal(glen, b - a + 1);
        assert_memory_equal(got, data + a, glen);
        free(got);
    }
}

/* ---- tests ---- */

/* Every pattern of lost fragments up to m, each loss in turn a refused connection, a 404
 * and a cut body, over an object of several full stripes and a short one: the read is
 * whole and exact. With m + 1 lost, the read fails: never wrong bytes. */
static void test_get_every_loss_pattern(void **state)
{
    struct fx *x = *state;
    const int k = 3, m = 2, n = k + m;
    size_t len = 3 * (size_t)k * UNIT + 777;
    uint8_t *data = pattern(len, 1);
    cJSON *res;
    assert_int_equal(do_put(x, data, len, k, m, true, 4000, &res), 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(res, "degraded"));
    cJSON_Delete(res);
    assert_int_equal(count_fragments(x, n), n);
    int patterns = 0;
    for (unsigned set = 0; set < (1u << n); set++) {
        int lost = __builtin_popcount(set);
        for (int kind = 0; kind < 3; kind++) {
            fk_heal(&x->fk);
            for (int i = 0; i < n; i++) {
                if (!(set & (1u << i)))
                    continue;
                if (kind == 0)
                    x->fk.node[i].refuse = true;
                else if (kind == 1)
                    x->fk.node[i].missing = true;
                else
                    x->fk.node[i].cut_after = 1500 + 700 * i; /* mid-stripe, after the header */
            }
            if (lost <= m) {
                expect_read(x, data, len);
                patterns++;
            } else {
                /* Refused or missing: unreadable. Cut: a fragment cut at a later stripe
                 * may have served the earlier ones, so the read may succeed; if it does,
                 * it is exact. */
                uint8_t *got;
                size_t glen;
                int rc = do_get(x, 0, len - 1, true, &got, &glen);
                if (kind < 2)
                    assert_int_not_equal(rc, 0);
                if (rc == 0) {
                    assert_int_equal(glen, len);
                    assert_memory_equal(got, data, len);
                    free(got);
                }
            }
        }
    }
    assert_int_equal(patterns, 3 * (1 + 5 + 10)); /* subsets of 5 of size 0, 1, 2 */
    fk_heal(&x->fk);
    free(data);
}

/* A flipped bit in a record of stripe 1 of a data fragment: the stripe is decoded from a
 * parity fragment, the read is exact, and the bad fragment is reported as "crc". */
static void test_get_crc_mid_stripe(void **state)
{
    struct fx *x = *state;
    size_t len = 4 * 3 * (size_t)UNIT;
    uint8_t *data = pattern(len, 2);
    cJSON *res;
    assert_int_equal(do_put(x, data, len, 3, 2, true, 10000, &res), 0);
    cJSON_Delete(res);
    struct dyno_layout lay = {.size = len, .unit = UNIT, .k = 3};
    struct fk_frag *f = &x->fk.node[1].frag[0];
    f->data[dyno_layout_record_offset(&lay, 1) + 4 + 100] ^= 0x10;
    expect_read(x, data, len);
    assert_true(x->fk.reports >= 1);
    assert_string_equal(x->fk.last_report, "crc");
    assert_int_equal(x->fk.last_report_index, 1);
    free(data);
}

/* Short reads and writes: the transport moves 1..13 bytes at a time. */
static void test_short_reads(void **state)
{
    struct fx *x = *state;
    size_t len = 3 * (size_t)UNIT + 5;
    uint8_t *data = pattern(len, 3);
    for (size_t chunk = 1; chunk <= 13; chunk += 6) {
        x->fk.chunk = chunk;
        cJSON *res;
        assert_int_equal(do_put(x, data, len, 3, 2, chunk != 7, 333, &res), 0);
        cJSON_Delete(res);
        x->fk.node[0].refuse = true; /* and a degraded read */
        expect_read(x, data, len);
        fk_heal(&x->fk);
    }
    free(data);
}

/* A container that stops sending in the middle of a fragment is timed out and replaced;
 * one that stalls in the middle of an upload is dropped, and the quorum still holds. */
static void test_stalls(void **state)
{
    struct fx *x = *state;
    size_t len = 5 * 3 * (size_t)UNIT;
    uint8_t *data = pattern(len, 4);
    cJSON *res;
    x->fk.node[4].stall_after = 3000;
    assert_int_equal(do_put(x, data, len, 3, 2, true, 5000, &res), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "degraded")));
    cJSON_Delete(res);
    fk_heal(&x->fk);
    assert_int_equal(x->fk.node[4].nfrag, 0); /* its upload was dropped */
    x->fk.node[0].stall_after = 2500;         /* and a data fragment stalls mid-read */
    expect_read(x, data, len);
    fk_heal(&x->fk);
    free(data);
}

/* Containers that die mid-put: with the write quorum (k + 1) left the put commits
 * (degraded) and reads back; below it the put fails, is aborted, and its fragments are
 * deleted once metadata confirmed the abort. */
static void test_container_dies_mid_put(void **state)
{
    struct fx *x = *state;
    size_t len = 6 * 3 * (size_t)UNIT + 99;
    uint8_t *data = pattern(len, 5);
    cJSON *res;
    x->fk.node[3].die_after = 5000;
    assert_int_equal(do_put(x, data, len, 3, 2, true, 4096, &res), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "degraded")));
    cJSON_Delete(res);
    assert_int_equal(x->fk.node[3].nfrag, 0);
    fk_heal(&x->fk);
    x->fk.node[4].refuse = true; /* the other parity gone too: k data left */
    expect_read(x, data, len);
    fk_heal(&x->fk);

    int commits = x->fk.commits;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < x->fk.node[i].nfrag; j++)
            free(x->fk.node[i].frag[j].data);
    for (int i = 0; i < 5; i++)
        x->fk.node[i].nfrag = 0;
    x->fk.node[1].die_after = 3000;
    x->fk.node[3].die_after = 6000;
    assert_int_equal(do_put(x, data, len, 3, 2, false, 4096, &res), DYNO_EUNAVAIL);
    assert_null(res);
    assert_int_equal(x->fk.commits, commits); /* never committed */
    assert_int_equal(x->fk.aborts, 1);
    assert_int_equal(total_deletes(x), 5); /* the abort was confirmed: every fragment deleted */
    assert_int_equal(count_fragments(x, 5), 0);
    free(data);
}

/* Small objects are m + 1 replicas, each a whole copy; any one of them serves a read. */
static void test_replica(void **state)
{
    struct fx *x = *state;
    for (int known = 0; known < 2; known++) {
        size_t len = 500;
        uint8_t *data = pattern(len, 6);
        cJSON *res;
        int before = count_fragments(x, 3);
        assert_int_equal(do_put(x, data, len, 3, 2, known, 64, &res), 0);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "replica")));
        assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x->fk.begun, "replica")));
        cJSON_Delete(res);
        assert_int_equal(count_fragments(x, 3), before + 3);
        assert_int_equal(count_fragments(x, 5), before + 3); /* m + 1 copies, no more */
        {
            /* One round, one container: a replica is read from a single copy. */
            uint8_t *got;
            size_t glen;
            int asked = 0;
            for (int i = 0; i < FK_NODES; i++)
                x->fk.node[i].gets = 0;
            assert_int_equal(do_get(x, 0, len - 1, true, &got, &glen), 0);
            free(got);
            for (int i = 0; i < FK_NODES; i++)
                asked += x->fk.node[i].gets;
            assert_int_equal(asked, 1);
        }
        for (int keep = 0; keep < 3; keep++) {
            fk_heal(&x->fk);
            for (int i = 0; i < 3; i++)
                x->fk.node[i].refuse = i != keep;
            expect_read(x, data, len);
        }
        fk_heal(&x->fk);
        for (int i = 0; i < 3; i++)
            x->fk.node[i].refuse = true;
        uint8_t *got;
        size_t glen;
        assert_int_not_equal(do_get(x, 0, len - 1, true, &got, &glen), 0);
        fk_heal(&x->fk);
        free(data);
    }
}

/* A replica's fragment is known whole when its streams open: each goes out in one piece,
 * its body given with the request (one send with the headers, xfer_curl.c), and reads back
 * byte-identical; an erasure-coded put streams its fragments record by record. */
static void test_replica_sent_whole(void **state)
{
    struct fx *x = *state;
    size_t len = 600; /* the fixture's small_max */
    uint8_t *data = pattern(len, 9);
    cJSON *res;
    assert_int_equal(do_put(x, data, len, 3, 2, true, 64, &res), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "replica")));
    cJSON_Delete(res);
    int whole = 0, streamed = 0;
    for (int i = 0; i < FK_NODES; i++) {
        whole += x->fk.node[i].whole_puts;
        streamed += x->fk.node[i].streamed_puts;
        x->fk.node[i].whole_puts = x->fk.node[i].streamed_puts = 0;
    }
    assert_int_equal(whole, 3);
    assert_int_equal(streamed, 0);
    expect_read(x, data, len);
    free(data);

    /* Over the replica limit: erasure-coded, streamed. */
    len = 3000;
    data = pattern(len, 10);
    assert_int_equal(do_put(x, data, len, 3, 2, true, 64, &res), 0);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "replica")));
    cJSON_Delete(res);
    whole = streamed = 0;
    for (int i = 0; i < FK_NODES; i++) {
        whole += x->fk.node[i].whole_puts;
        streamed += x->fk.node[i].streamed_puts;
    }
    assert_int_equal(whole, 0);
    assert_int_equal(streamed, 5);
    expect_read(x, data, len);
    free(data);
}

/* The reservation pool (dp_resv.c): a small put takes a reserved placement (no
 * object.begin) and its commit names catalog, name and publisher; each key goes to one put
 * only; the first object.reserve of an incarnation is the only fresh one; an empty pool, a
 * refused object.reserve or an object too large for a replica use object.begin; the stale
 * are released and a failed placement flushes the pool. */
static void test_reservations(void **state)
{
    struct fx *x = *state;
    assert_int_equal(gw_resv_new(&x->gw, 2, 4, 60000, &x->gw.resv), 0);
    cJSON *res;
    uint8_t *data = pattern(300, 9);
    /* Empty pool: object.begin. */
    assert_int_equal(do_put(x, data, 300, 3, 2, true, 300, &res), 0);
    cJSON_Delete(res);
    assert_int_equal(x->fk.begins, 1);
    assert_int_equal(gw_resv_refill(x->gw.resv), 0);
    assert_int_equal(gw_resv_refill(x->gw.resv), 0);
    assert_int_equal(x->fk.reserves, 2);
    assert_int_equal(x->fk.fresh_reserves, 1); /* only the incarnation's first */
    assert_int_equal(gw_resv_count(x->gw.resv), 8);
    char seen[8][DYNO_KEY_LEN + 1];
    for (int i = 0; i < 8; i++) {
        assert_int_equal(do_put(x, data, 300, 3, 2, i % 2 == 0, 300, &res), 0);
        snprintf(seen[i], sizeof(seen[i]), "%s", dyno_json_str(res, "key"));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(seen[i], seen[j]); /* never one key twice */
        assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "replica")));
        cJSON_Delete(res);
        assert_string_equal(dyno_json_str(x->fk.last_commit, "catalog"), "alice/data");
        assert_string_equal(dyno_json_str(x->fk.last_commit, "name"), "obj");
        assert_string_equal(dyno_json_str(x->fk.last_commit, "publisher"), "alice");
        assert_true(dyno_json_bool(x->fk.last_commit, "replica", false));
        expect_read(x, data, 300);
    }
    assert_int_equal(x->fk.begins, 1); /* none of the eight sent object.begin */
    assert_int_equal(gw_resv_count(x->gw.resv), 0);
    /* Another resilience, or too big for a replica: object.begin. */
    assert_int_equal(gw_resv_refill(x->gw.resv), 0);
    assert_int_equal(do_put(x, data, 300, 3, 1, true, 300, &res), 0);
    cJSON_Delete(res);
    assert_int_equal(x->fk.begins, 2);
    uint8_t *big = pattern(2000, 10);
    assert_int_equal(do_put(x, big, 2000, 3, 2, true, 2000, &res), 0);
    cJSON_Delete(res);
    free(big);
    assert_int_equal(x->fk.begins, 3);
    /* A container refuses a reserved put's stream: the put still reaches its quorum, and the
     * pool is flushed (its placements may name that container too) and released. */
    int held = gw_resv_count(x->gw.resv);
    assert_true(held > 0);
    x->fk.node[0].refuse = true;
    assert_int_equal(do_put(x, data, 300, 3, 2, true, 300, &res), 0);
    cJSON_Delete(res);
    fk_heal(&x->fk);
    assert_null(gw_resv_take(x->gw.resv, 2)); /* stale: none handed out */
    int before = x->fk.released;
    gw_resv_expire(x->gw.resv, false);
    assert_int_equal(x->fk.released - before, held - 1);
    assert_int_equal(gw_resv_count(x->gw.resv), 0);
    /* object.reserve refused or unknown: nothing held, puts use object.begin. */
    x->fk.reserve = FK_UNKNOWN;
    assert_int_equal(gw_resv_refill(x->gw.resv), DYNO_ETIMEDOUT);
    assert_int_equal(gw_resv_count(x->gw.resv), 0);
    assert_int_equal(do_put(x, data, 300, 3, 2, true, 300, &res), 0);
    cJSON_Delete(res);
    assert_int_equal(x->fk.begins, 4);
    /* At the stop, the unused go back. */
    x->fk.reserve = FK_ANSWER;
    assert_int_equal(gw_resv_refill(x->gw.resv), 0);
    /* A catalog with "site_spread": "relaxed": a reservation was placed (and is recorded) as
     * strict, so its small objects use object.begin, which records the catalog's rule. */
    g_relaxed = true;
    assert_int_equal(do_put(x, data, 300, 3, 2, true, 300, &res), 0);
    g_relaxed = false;
    cJSON_Delete(res);
    assert_int_equal(x->fk.begins, 5);
    assert_string_equal(dyno_json_str(x->fk.begun, "site_spread"), "relaxed");
    assert_int_equal(gw_resv_count(x->gw.resv), 4);
    before = x->fk.released;
    gw_resv_free(x->gw.resv);
    x->gw.resv = NULL;
    assert_int_equal(x->fk.released - before, 4);
    free(data);
}

/* Issue 11: a read that fits in one stripe leaves from the get's own buffers (gw_get_whole):
 * the systematic case, a decoded stripe, a replica, short ranges; a longer read is left to
 * gw_get_read. The fragment buffers go back to a bounded pool and are reused. */
static void test_get_whole(void **state)
{
    struct fx *x = *state;
    const int k = 3, m = 2;
    size_t len = 2 * UNIT + 100; /* one stripe of k units (the last short) */
    uint8_t *data = pattern(len, 21), *got;
    size_t glen;
    cJSON *res;
    assert_int_equal(do_put(x, data, len, k, m, true, 333, &res), 0);
    cJSON_Delete(res);
    g_whole_hits = 0;
    expect_read(x, data, len);
    assert_int_equal(g_whole_hits, 2); /* the whole read and the range, in the second pass */
    /* A healthy read asks exactly k containers, once each: the data fragments. */
    for (int i = 0; i < FK_NODES; i++)
        x->fk.node[i].gets = 0;
    assert_int_equal(do_get(x, 0, len - 1, true, &got, &glen), 0);
    free(got);
    for (int i = 0; i < FK_NODES; i++)
        assert_int_equal(x->fk.node[i].gets, i < k ? 1 : 0);
    /* Degraded: data fragments 0 and 2 gone, the stripe is decoded, still one piece. */
    x->fk.node[0].refuse = x->fk.node[2].refuse = true;
    g_whole_hits = 0;
    expect_read(x, data, len);
    assert_int_equal(g_whole_hits, 2);
    fk_heal(&x->fk);
    /* Every one-byte range and ranges across unit boundaries. */
    uint64_t cuts[][2] = {{0, 0}, {UNIT - 1, UNIT}, {UNIT, 2 * UNIT}, {len - 1, len - 1}, {5, len - 2}};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        assert_int_equal(do_get(x, cuts[i][0], cuts[i][1], false, &got, &glen), 0);
        assert_int_equal(glen, cuts[i][1] - cuts[i][0] + 1);
        assert_memory_equal(got, data + cuts[i][0], glen);
        free(got);
    }
    free(data);

    /* Several stripes: gw_get_read carries it, gw_get_whole declines. */
    len = 7 * UNIT + 3;
    data = pattern(len, 22);
    assert_int_equal(do_put(x, data, len, k, m, true, 1000, &res), 0);
    cJSON_Delete(res);
    g_whole_hits = 0;
    assert_int_equal(do_get(x, 0, len - 1, true, &got, &glen), 0);
    assert_int_equal(glen, len);
    assert_memory_equal(got, data, len);
    free(got);
    assert_int_equal(g_whole_hits, 0);
    /* ... unless the range lies in one stripe. */
    assert_int_equal(do_get(x, 3 * UNIT + 1, 5 * UNIT, false, &got, &glen), 0);
    assert_memory_equal(got, data + 3 * UNIT + 1, glen);
    free(got);
    assert_int_equal(g_whole_hits, 1);
    free(data);

    /* The pool: what was given back is taken again, and it holds GW_SPARE_BUFS at most. */
    size_t cap = 0, cap2 = 0;
    uint8_t *b[GW_SPARE_BUFS + 4];
    for (int i = 0; i < GW_SPARE_BUFS + 4; i++) {
        b[i] = gw_buf_take(&x->gw, 70000, &cap);
        assert_non_null(b[i]);
        assert_true(cap >= 70000);
        memset(b[i], i, 70000);
    }
    for (int i = 0; i < GW_SPARE_BUFS + 4; i++)
        gw_buf_give(&x->gw, b[i], cap);
    int held = 0;
    for (int i = 0; i < GW_SPARE_BUFS; i++)
        held += atomic_load(&x->gw.spare_bufs[i]) != NULL;
    assert_int_equal(held, GW_SPARE_BUFS);
    uint8_t *again = gw_buf_take(&x->gw, 70000, &cap2);
    bool reused = false;
    for (int i = 0; i < GW_SPARE_BUFS + 4; i++)
        reused |= again == b[i];
    assert_true(reused);
    gw_buf_give(&x->gw, again, cap2);
    /* Small ones are plain malloc, never pooled. */
    uint8_t *small = gw_buf_take(&x->gw, 100, &cap);
    assert_int_equal(cap, 100);
    gw_buf_give(&x->gw, small, cap);
}

/* An empty object is a replica of no bytes: stored, committed, its fragments whole. */
static void test_empty_object(void **state)
{
    struct fx *x = *state;
    cJSON *res;
    assert_int_equal(do_put(x, (const uint8_t *)"", 0, 3, 2, false, 1, &res), 0);
    int64_t size = -1;
    assert_int_equal(dyno_json_i64(res, "size", &size), 0);
    assert_int_equal(size, 0);
    cJSON_Delete(res);
    assert_int_equal(count_fragments(x, 3), 3);
}

/* A commit whose outcome stays unknown deletes nothing: not the fragments (the commit may
 * have gone through), not after an abort of unknown outcome either. A refused commit with
 * a confirmed abort deletes them (so the test can see a delete when one happens). */
static void test_unknown_outcome_never_deletes(void **state)
{
    struct fx *x = *state;
    size_t len = 2 * 3 * (size_t)UNIT;
    uint8_t *data = pattern(len, 7);
    cJSON *res;
    x->fk.commit = FK_UNKNOWN;
    x->fk.abort = FK_UNKNOWN;
    assert_int_equal(do_put(x, data, len, 3, 2, true, 4096, &res), DYNO_ETIMEDOUT);
    assert_true(x->fk.commits >= 2); /* resolved by asking again */
    assert_int_equal(total_deletes(x), 0);
    assert_int_equal(count_fragments(x, 5), 5);

    x->fk.abort = FK_ANSWER; /* the commit unknown, the abort confirmed: that confirms */
    assert_int_equal(do_put(x, data, len, 3, 2, true, 4096, &res), DYNO_ETIMEDOUT);
    assert_int_equal(total_deletes(x), 5);
    assert_int_equal(count_fragments(x, 5), 5); /* the first put's, still there */

    x->fk.commit = FK_REFUSE;
    x->fk.abort = FK_UNKNOWN;
    assert_int_equal(do_put(x, data, len, 3, 2, true, 4096, &res), DYNO_ECONFLICT);
    assert_int_equal(total_deletes(x), 5);
    assert_int_equal(count_fragments(x, 5), 10);
    free(data);
}

/* Bad input to the core changes nothing: more body than announced is refused. */
static void test_more_than_announced(void **state)
{
    struct fx *x = *state;
    struct gw_put_args a = {.catalog = "alice/data", .publisher = "alice", .k = 3, .m = 2, .size = 10};
    struct gw_put *p = NULL;
    char msg[200];
    assert_int_equal(gw_put_new(&x->gw, &x->conn, &a, &p, msg, sizeof(msg)), 0);
    assert_int_equal(gw_put_write(p, "0123456789", 10), 0);
    assert_int_equal(gw_put_write(p, "x", 1), DYNO_EINVAL);
    gw_put_close(p);
    assert_int_equal(x->fk.aborts, 1);
    assert_int_equal(count_fragments(x, 5), 0);
}

/* The bytes of fragment index of key on node nd (NULL when it has none). */
static struct fk_frag *fk_frag_of(struct fx *x, int nd, const char *key, int index)
{
    char id[DYNO_KEY_LEN + 8];
    snprintf(id, sizeof(id), "%s.%d", key, index);
    return fk__find(&x->fk.node[nd], id);
}

static cJSON *task_loc(int index, int node, const char *state)
{
    cJSON *o = cJSON_CreateObject();
    char c[16];
    snprintf(c, sizeof(c), "c%d", node);
    cJSON_AddNumberToObject(o, "index", index);
    cJSON_AddStringToObject(o, "container", c);
    cJSON_AddStringToObject(o, "url", FK->node[node].url);
    if (state)
        cJSON_AddStringToObject(o, "state", state);
    return o;
}

/* A repair task (as repair.claim hands it out) of the last committed object: sources and
 * targets as {index, node} pairs (a source node < 0: on a draining container, node -1 - n). */
static cJSON *repair_task(struct fx *x, const int (*src)[2], int nsrc, const int (*tgt)[2], int ntgt)
{
    const cJSON *o = x->fk.object;
    cJSON *task = cJSON_CreateObject();
    cJSON_AddStringToObject(task, "id", "ffffffffffffffffffffffffffffffff");
    cJSON_AddStringToObject(task, "key", dyno_json_str(o, "key"));
    cJSON_AddStringToObject(task, "catalog", "alice/data");
    cJSON_AddStringToObject(task, "name", "obj");
    cJSON_AddStringToObject(task, "sha256", dyno_json_str(o, "sha256"));
    const char *numbers[] = {"size", "k", "m", "unit"};
    for (int i = 0; i < 4; i++) {
        int64_t v = 0;
        dyno_json_i64(o, numbers[i], &v);
        dyno_json_add_i64(task, numbers[i], v);
    }
    cJSON *sa = cJSON_AddArrayToObject(task, "sources"), *ta = cJSON_AddArrayToObject(task, "rebuild");
    for (int i = 0; i < nsrc; i++)
        cJSON_AddItemToArray(sa, task_loc(src[i][0], src[i][1] < 0 ? -1 - src[i][1] : src[i][1],
                                          src[i][1] < 0 ? "draining" : "ok"));
    for (int i = 0; i < ntgt; i++)
        cJSON_AddItemToArray(ta, task_loc(tgt[i][0], tgt[i][1], NULL));
    return task;
}

/* Runs the repair core on a task of repair_task's. */
static int run_repair(struct fx *x, const int (*src)[2], int nsrc, const int (*tgt)[2], int ntgt,
                      struct gw_rtask **out)
{
    cJSON *task = repair_task(x, src, nsrc, tgt, ntgt);
    struct gw_rtask *t = calloc(1, sizeof(*t));
    t->gw = &x->gw;
    t->conn = &x->conn;
    int rc = gw_rtask_init(t, task);
    cJSON_Delete(task);
    if (rc == 0)
        rc = gw_rtask_rebuild(t, NULL, NULL);
    *out = t;
    return rc;
}

/* Repair rebuilds lost fragments byte for byte, a data and a parity one, from what is
 * left; with a source that serves a bad record mid-object it reads past it (a source on a
 * draining container as the last resort), reports it, and the rebuilt fragment is still
 * exact. With fewer than k readable sources it fails and no target is stored. */
static void test_repair_rebuilds_exact_fragments(void **state)
{
    struct fx *x = *state;
    size_t len = 3 * 3 * (size_t)UNIT + 500;
    uint8_t *data = pattern(len, 8);
    cJSON *res;
    assert_int_equal(do_put(x, data, len, 3, 2, true, 4096, &res), 0);
    cJSON_Delete(res);
    const char *key = dyno_json_str(x->fk.object, "key");
    struct fk_frag orig[5];
    for (int i = 0; i < 5; i++) {
        struct fk_frag *f = fk_frag_of(x, i, key, i);
        assert_non_null(f);
        orig[i] = (struct fk_frag){.len = f->len, .data = malloc(f->len)};
        memcpy(orig[i].data, f->data, f->len);
    }
    /* Fragments 1 (data) and 4 (parity) lost: rebuilt on nodes 5 and 6. */
    fk__remove(&x->fk.node[1], fk_frag_of(x, 1, key, 1)->id);
    fk__remove(&x->fk.node[4], fk_frag_of(x, 4, key, 4)->id);
    const int src1[][2] = {{0, 0}, {2, 2}, {3, 3}}, tgt1[][2] = {{1, 5}, {4, 6}};
    struct gw_rtask *t;
    assert_int_equal(run_repair(x, src1, 3, tgt1, 2, &t), 0);
    assert_true(t->put[0].stored && t->put[1].stored);
    gw_rtask_free(t);
    free(t);
    for (int i = 0; i < 2; i++) {
        struct fk_frag *f = fk_frag_of(x, tgt1[i][1], key, tgt1[i][0]);
        assert_non_null(f);
        assert_int_equal(f->len, orig[tgt1[i][0]].len);
        assert_memory_equal(f->data, orig[tgt1[i][0]].data, f->len);
    }

    /* Source 2 serves a bad record in stripe 1; source 1 (rebuilt on node 5) is on a
     * draining container: read only when the others are not enough. */
    struct dyno_layout lay = {.size = len, .unit = UNIT, .k = 3};
    fk_frag_of(x, 2, key, 2)->data[dyno_layout_record_offset(&lay, 1) + 4 + 9] ^= 4;
    const int src2[][2] = {{0, 0}, {1, -1 - 5}, {2, 2}, {3, 3}}, tgt2[][2] = {{4, 7}};
    assert_int_equal(run_repair(x, src2, 4, tgt2, 1, &t), 0);
    assert_true(t->put[0].stored);
    gw_rtask_free(t);
    free(t);
    struct fk_frag *f = fk_frag_of(x, 7, key, 4);
    assert_non_null(f);
    assert_int_equal(f->len, orig[4].len);
    assert_memory_equal(f->data, orig[4].data, f->len);
    assert_string_equal(x->fk.last_report, "crc");
    assert_int_equal(x->fk.last_report_index, 2);

    /* Two sources only: not enough for k = 3. */
    const int src3[][2] = {{0, 0}, {3, 3}}, tgt3[][2] = {{2, 8}};
    assert_int_not_equal(run_repair(x, src3, 2, tgt3, 1, &t), 0);
    assert_false(t->put[0].stored);
    gw_rtask_free(t);
    free(t);
    assert_null(fk_frag_of(x, 8, key, 2));
    for (int i = 0; i < 5; i++)
        free(orig[i].data);
    free(data);
}

/* A repair worker's whole step against the fake metadata: it claims the task, rebuilds the
 * lost fragment byte for byte on its target and reports it with its size (repair.complete);
 * with nothing to claim it says so. A target that cannot store is reported not ok. */
static void test_repair_claim_rebuild_complete(void **state)
{
    struct fx *x = *state;
    size_t len = 2 * 3 * (size_t)UNIT + 77;
    uint8_t *data = pattern(len, 9);
    cJSON *res;
    assert_int_equal(do_put(x, data, len, 3, 2, true, 4096, &res), 0);
    cJSON_Delete(res);
    const char *key = dyno_json_str(x->fk.object, "key");
    struct fk_frag *lost = fk_frag_of(x, 0, key, 0);
    size_t flen = lost->len;
    uint8_t *orig = malloc(flen);
    memcpy(orig, lost->data, flen);
    fk__remove(&x->fk.node[0], lost->id);

    const int src[][2] = {{1, 1}, {2, 2}, {3, 3}, {4, 4}}, tgt[][2] = {{0, 5}};
    x->fk.task = repair_task(x, src, 4, tgt, 1);
    assert_int_equal(gw_repair_next(&x->gw, &x->conn, "gw1-r0", NULL, NULL), 1);
    struct fk_frag *f = fk_frag_of(x, 5, key, 0);
    assert_non_null(f);
    assert_int_equal(f->len, flen);
    assert_memory_equal(f->data, orig, flen);
    const cJSON *done = x->fk.completed;
    assert_non_null(done);
    assert_string_equal(dyno_json_str(done, "id"), "ffffffffffffffffffffffffffffffff");
    assert_string_equal(dyno_json_str(done, "key"), key);
    const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(done, "results"), 0);
    int64_t v = -1;
    assert_true(dyno_json_bool(r, "ok", false));
    assert_int_equal(dyno_json_i64(r, "index", &v), 0);
    assert_int_equal(v, 0);
    assert_string_equal(dyno_json_str(r, "container"), "c5");
    assert_int_equal(dyno_json_i64(r, "size", &v), 0);
    assert_int_equal(v, (int64_t)flen);

    /* Nothing waiting: no task run, nothing reported. */
    cJSON_Delete(x->fk.completed);
    x->fk.completed = NULL;
    assert_int_equal(gw_repair_next(&x->gw, &x->conn, "gw1-r0", NULL, NULL), 0);
    assert_null(x->fk.completed);

    /* The target refuses connections: reported, not ok, no size. */
    x->fk.node[6].refuse = true;
    const int tgt2[][2] = {{0, 6}};
    x->fk.task = repair_task(x, src, 4, tgt2, 1);
    assert_int_equal(gw_repair_next(&x->gw, &x->conn, "gw1-r0", NULL, NULL), 1);
    r = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(x->fk.completed, "results"), 0);
    assert_false(dyno_json_bool(r, "ok", true));
    assert_null(cJSON_GetObjectItemCaseSensitive(r, "size"));
    assert_int_equal(x->fk.claims, 3);
    free(orig);
    free(data);
}

/* Garbage collection against the fake metadata: the claimed fragments are deleted on their
 * containers and each is reported deleted (a fragment already gone counts: 404). */
static void test_gc_deletes_and_reports(void **state)
{
    struct fx *x = *state;
    uint8_t *data = pattern(5000, 10);
    cJSON *res;
    assert_int_equal(do_put(x, data, 5000, 3, 2, true, 4096, &res), 0);
    cJSON_Delete(res);
    const char *key = dyno_json_str(x->fk.object, "key");
    x->fk.gc_items = cJSON_CreateArray();
    for (int i = 0; i < 2; i++) {
        cJSON *it = task_loc(i, i, NULL);
        cJSON_AddStringToObject(it, "key", key);
        cJSON_AddItemToArray(x->fk.gc_items, it);
    }
    assert_int_equal(gw_gc_next(&x->gw, &x->conn, "gw1-r0"), 2);
    assert_null(fk_frag_of(x, 0, key, 0));
    assert_null(fk_frag_of(x, 1, key, 1));
    assert_non_null(fk_frag_of(x, 2, key, 2));
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(x->fk.gc_completed, "items"), *it;
    assert_int_equal(cJSON_GetArraySize(items), 2);
    cJSON_ArrayForEach(it, items)
    {
        assert_true(dyno_json_bool(it, "ok", false));
        assert_string_equal(dyno_json_str(it, "key"), key);
    }
    assert_int_equal(gw_gc_next(&x->gw, &x->conn, "gw1-r0"), 0); /* nothing left */
    free(data);
}

/* ---- read order (issue 13): own site, then measured latency, unknown last ---- */

static void reset_gets(struct fx *x)
{
    for (int i = 0; i < FK_NODES; i++)
        x->fk.node[i].gets = 0;
}

/* A sample of us for container node, taken at at_ms (gw_now_ms's clock). */
static void set_rtt_at(struct fx *x, int node, int64_t us, int64_t at_ms)
{
    char cid[16];
    snprintf(cid, sizeof(cid), "c%d", node);
    /* a fresh table: the first sample is the estimate */
    gw_rtt_note(&x->gw.rtt, cid, us, at_ms);
}

static void set_rtt(struct fx *x, int node, int64_t us)
{
    set_rtt_at(x, node, us, gw_now_ms());
}

static int64_t degraded_reads(struct fx *x)
{
    return atomic_load(&x->gw.metrics[GW_M_DEGRADED_READS].value);
}

static int64_t rtt_of(struct fx *x, int node)
{
    char cid[16];
    snprintf(cid, sizeof(cid), "c%d", node);
    return gw_rtt_get(&x->gw.rtt, cid, gw_now_ms());
}

/* Puts a 3+2 object of several stripes (fragment i on node i); its bytes (the caller's). */
static uint8_t *put_3_2(struct fx *x, size_t *len)
{
    *len = 4 * 3 * (size_t)UNIT + 99;
    uint8_t *data = pattern(*len, 13);
    cJSON *res;
    assert_int_equal(do_put(x, data, *len, 3, 2, true, 4000, &res), 0);
    cJSON_Delete(res);
    return data;
}

/* Reads the object whole; the bytes are exact. */
static void read_exact(struct fx *x, const uint8_t *data, size_t len)
{
    uint8_t *got;
    size_t glen;
    assert_int_equal(do_get(x, 0, len - 1, true, &got, &glen), 0);
    assert_int_equal(glen, len);
    assert_memory_equal(got, data, len);
    free(got);
}

/* A gateway at s1 with one fragment of its own (index 2): it reads that one, then the two
 * on the fast site s3 (indexes 1 and 4: a data and a parity fragment, decoded), never the
 * data fragments 0 and 3 on the slow s2. A fragment of s3 that stops answering: the read
 * falls back within the request to the nearest slow one, and the silence counts against c1. */
static void test_read_order_site_then_latency(void **state)
{
    struct fx *x = *state;
    const char *sites[] = {"s2", "s3", "s1", "s2", "s3"};
    for (int i = 0; i < 5; i++)
        snprintf(x->fk.node[i].site, sizeof(x->fk.node[i].site), "%s", sites[i]);
    x->gw.cfg.site = "s1";
    size_t len;
    uint8_t *data = put_3_2(x, &len);
    set_rtt(x, 0, 90000); /* s2: a wide-area link */
    set_rtt(x, 3, 80000);
    set_rtt(x, 1, 1000); /* s3: near */
    set_rtt(x, 4, 1200);
    reset_gets(x);
    int64_t degraded = degraded_reads(x);
    read_exact(x, data, len);
    assert_int_equal(degraded_reads(x), degraded); /* parity by choice: no fault */
    assert_true(x->fk.node[2].gets > 0);           /* own site */
    assert_true(x->fk.node[1].gets > 0 && x->fk.node[4].gets > 0);
    assert_int_equal(x->fk.node[0].gets, 0);
    assert_int_equal(x->fk.node[3].gets, 0);
    /* the reads were measured: c1, c2 and c4 answered (fast, the fake has no wire) */
    assert_true(rtt_of(x, 2) >= 0);
    assert_true(rtt_of(x, 1) < 80000 && rtt_of(x, 4) < 80000);

    /* c1 stops answering: the same read takes the nearer of the slow ones (c3) in its
     * place, and c1 counts as slow as the fragment timeout */
    int64_t c1_before = rtt_of(x, 1);
    x->fk.node[1].stall_after = 0;
    reset_gets(x);
    read_exact(x, data, len);
    assert_true(x->fk.node[3].gets > 0);
    assert_int_equal(x->fk.node[0].gets, 0);
    assert_int_equal(degraded_reads(x), degraded + 1); /* a fragment failed */
    assert_true(rtt_of(x, 1) > c1_before && gw_rtt_far(rtt_of(x, 1), rtt_of(x, 4)));
    /* a refused connection is a quick answer: no latency sample (c4 stays near) */
    fk_heal(&x->fk);
    int64_t c4_before = rtt_of(x, 4);
    x->fk.node[4].refuse = true;
    read_exact(x, data, len);
    assert_int_equal(rtt_of(x, 4), c4_before);
    fk_heal(&x->fk);
    x->gw.cfg.site = NULL;
    free(data);
}

/* Without a site: containers whose latencies differ by one site's noise are alike, so the
 * data fragments are read (no parity, no decode); containers not measured (never, or not
 * lately) go with the near ones, data first; only those measured slow come after. */
static void test_read_order_near_and_unknown_alike(void **state)
{
    struct fx *x = *state;
    size_t len;
    uint8_t *data = put_3_2(x, &len);
    int64_t noise[] = {3000, 1000, 2500, 500, 500};
    for (int i = 0; i < 5; i++)
        set_rtt(x, i, noise[i]);
    reset_gets(x);
    read_exact(x, data, len);
    for (int i = 0; i < 3; i++)
        assert_true(x->fk.node[i].gets > 0);
    assert_int_equal(x->fk.node[3].gets + x->fk.node[4].gets, 0);

    /* a fresh gateway that measured only c2, c3 and c4: c0 and c1 are not passed over (they
     * would never be measured, and every read would decode): data 0, 1, 2 */
    gw_rtt_destroy(&x->gw.rtt);
    gw_rtt_init(&x->gw.rtt);
    assert_int_equal(rtt_of(x, 0), -1);
    for (int i = 2; i < 5; i++)
        set_rtt(x, i, 2000);
    reset_gets(x);
    read_exact(x, data, len);
    for (int i = 0; i < 3; i++)
        assert_true(x->fk.node[i].gets > 0);
    assert_int_equal(x->fk.node[3].gets + x->fk.node[4].gets, 0);

    /* c0 measured slow: parity c3 instead (no fault, not degraded) */
    gw_rtt_destroy(&x->gw.rtt);
    gw_rtt_init(&x->gw.rtt);
    set_rtt(x, 0, 90000);
    set_rtt(x, 1, 1000);
    reset_gets(x);
    int64_t degraded = degraded_reads(x);
    read_exact(x, data, len);
    assert_int_equal(x->fk.node[0].gets, 0);
    assert_true(x->fk.node[3].gets > 0);
    assert_int_equal(degraded_reads(x), degraded);
    /* ... and c1 refused in the next read: then c4 (unknown, so near), and c0 last */
    x->fk.node[1].refuse = true;
    reset_gets(x);
    read_exact(x, data, len);
    assert_true(x->fk.node[4].gets > 0);
    assert_int_equal(x->fk.node[0].gets, 0);
    fk_heal(&x->fk);

    /* the same slow sample of c0, but older than GW_RTT_TTL_MS: forgotten, so c0 is read
     * again (and measured afresh) */
    gw_rtt_destroy(&x->gw.rtt);
    gw_rtt_init(&x->gw.rtt);
    set_rtt_at(x, 0, 90000, gw_now_ms() - GW_RTT_TTL_MS - 1);
    assert_int_equal(rtt_of(x, 0), -1);
    reset_gets(x);
    read_exact(x, data, len);
    for (int i = 0; i < 3; i++)
        assert_true(x->fk.node[i].gets > 0);
    assert_int_equal(x->fk.node[3].gets + x->fk.node[4].gets, 0);
    assert_true(rtt_of(x, 0) >= 0 && rtt_of(x, 0) < 90000);
    free(data);
}

/* The latency table (times injected): the estimate is the EWMA or the recent floor when
 * lower, so a slow answer of a near container leaves it near while a link that stays slow
 * becomes far once the old floor aged out; no answer lifts the floor; unknown until
 * measured, forgotten GW_RTT_TTL_MS after the last sample (the next one starts afresh), bad
 * names ignored, past GW_RTT_SLOTS containers the least recently sampled one goes. */
static void test_rtt_table(void **state)
{
    struct fx *x = *state;
    struct gw_rtt *r = &x->gw.rtt;
    const int64_t t = 1000000;
    assert_int_equal(gw_rtt_get(r, "c1", t), -1);
    gw_rtt_note(r, "c1", 80000, t); /* the first sample is the estimate */
    assert_int_equal(gw_rtt_get(r, "c1", t), 80000);
    gw_rtt_note(r, "c1", 1000, t + 10); /* EWMA 60250, floor 1000 */
    assert_int_equal(gw_rtt_get(r, "c1", t + 10), 1000);
    gw_rtt_note(r, "c1", 200000, t + 20); /* one slow answer: still near */
    assert_int_equal(gw_rtt_get(r, "c1", t + 20), 1000);
    /* slow for good: once the floor is older than the window, the samples are the floor */
    int64_t ewma = 60250 + (200000 - 60250) / GW_RTT_EWMA_DIV;
    ewma += (90000 - ewma) / GW_RTT_EWMA_DIV;
    gw_rtt_note(r, "c1", 90000, t + 11 + GW_RTT_FLOOR_MS);
    assert_int_equal(gw_rtt_get(r, "c1", t + 11 + GW_RTT_FLOOR_MS), ewma < 90000 ? ewma : 90000);
    assert_true(gw_rtt_far(gw_rtt_get(r, "c1", t + 11 + GW_RTT_FLOOR_MS), 1000));
    /* no answer: far at once */
    gw_rtt_note(r, "c2", 1000, t);
    gw_rtt_silent(r, "c2", 150000, t + 5);
    assert_int_equal(gw_rtt_get(r, "c2", t + 5), 1000 + (150000 - 1000) / GW_RTT_EWMA_DIV);
    assert_true(gw_rtt_far(gw_rtt_get(r, "c2", t + 5), 1000));
    /* forgotten after the TTL; a sample after that is the estimate again */
    int64_t last = t + 11 + GW_RTT_FLOOR_MS;
    assert_true(gw_rtt_get(r, "c1", last + GW_RTT_TTL_MS) >= 0);
    assert_int_equal(gw_rtt_get(r, "c1", last + GW_RTT_TTL_MS + 1), -1);
    gw_rtt_note(r, "c1", 70000, last + GW_RTT_TTL_MS + 1);
    assert_int_equal(gw_rtt_get(r, "c1", last + GW_RTT_TTL_MS + 1), 70000);
    gw_rtt_note(r, "../x", 5, t);
    gw_rtt_note(r, "", 5, t);
    assert_int_equal(gw_rtt_get(r, "../x", t), -1);
    char cid[32];
    int64_t t2 = last + 2 * GW_RTT_TTL_MS;
    for (int i = 0; i < GW_RTT_SLOTS; i++) {
        snprintf(cid, sizeof(cid), "n%d", i);
        gw_rtt_note(r, cid, i, t2 + i);
    }
    int64_t now = t2 + GW_RTT_SLOTS;
    assert_int_equal(gw_rtt_get(r, "c1", now), -1); /* the oldest went */
    assert_int_equal(gw_rtt_get(r, "n0", now), 0);
    assert_int_equal(gw_rtt_get(r, "n255", now), 255);
    assert_false(gw_rtt_far(11000, 1000)); /* 2 x 1 ms + 10 ms */
    assert_true(gw_rtt_far(80000, 1000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_every_loss_pattern, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_crc_mid_stripe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stalls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_container_dies_mid_put, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replica, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replica_sent_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reservations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_outcome_never_deletes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_more_than_announced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repair_rebuilds_exact_fragments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repair_claim_rebuild_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_deletes_and_reports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_order_site_then_latency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_order_near_and_unknown_alike, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rtt_table, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
