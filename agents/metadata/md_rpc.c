/* Metadata RPC handlers (md_rpc.h). */
#include "md_rpc.h"
#include "md_upload.h"

#include <dynostore/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crashpoint.h"
#include "ec.h"
#include "frag.h"
#include "agent.h"
#include "json.h"
#include "log.h"
#include "names.h"

#define MD_FRAGS_MAX 256               /* fragment entries in one request (index is a u8) */
#define MD_SIZE_MAX (INT64_C(1) << 53) /* exact in a JSON number */

int md_ctx_init(struct md_ctx *ctx, const char *db_path, const struct md_repair_cfg *repair)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->db_path = db_path;
    if (pthread_mutex_init(&ctx->mu, NULL) != 0)
        return DYNO_EINTERNAL;
    if (pthread_mutex_init(&ctx->writer, NULL) != 0) {
        pthread_mutex_destroy(&ctx->mu);
        return DYNO_EINTERNAL;
    }
    if (pthread_key_create(&ctx->dbkey, NULL) != 0) {
        pthread_mutex_destroy(&ctx->writer);
        pthread_mutex_destroy(&ctx->mu);
        return DYNO_EINTERNAL;
    }
    int rc = md_reg_init(&ctx->reg);
    if (rc == 0) {
        rc = md_repair_init(&ctx->repair, repair);
        if (rc != 0)
            md_reg_fini(&ctx->reg);
    }
    if (rc == 0) {
        rc = md_writer_start(&ctx->wr, db_path, &ctx->writer);
        if (rc != 0) {
            md_repair_fini(&ctx->repair);
            md_reg_fini(&ctx->reg);
        }
    }
    if (rc != 0) {
        pthread_key_delete(ctx->dbkey);
        pthread_mutex_destroy(&ctx->writer);
        pthread_mutex_destroy(&ctx->mu);
    }
    return rc;
}

void md_rpc_emit(struct md_ctx *ctx, const cJSON *events)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, events)
    {
        int rc = ctx->mq ? dyno_mq_notify(ctx->mq, "pubsub", "event.emit", e) : DYNO_EUNAVAIL;
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(e, "object");
        if (rc != 0)
            dyno_warn("cannot emit event", "type=%s key=%s error=%s", dyno_json_str(e, "type"),
                      o ? dyno_json_str(o, "key") : "", dyno_err_code(rc));
    }
}

void md_ctx_fini(struct md_ctx *ctx)
{
    md_writer_stop(&ctx->wr);
    for (size_t i = 0; i < ctx->ndbs; i++)
        md_db_close(ctx->dbs[i]);
    free(ctx->dbs);
    ctx->dbs = NULL;
    ctx->ndbs = 0;
    md_repair_fini(&ctx->repair);
    md_reg_fini(&ctx->reg);
    pthread_key_delete(ctx->dbkey);
    pthread_mutex_destroy(&ctx->writer);
    pthread_mutex_destroy(&ctx->mu);
}

int md_ctx_db(struct md_ctx *ctx, struct md_db **out)
{
    struct md_db *db = pthread_getspecific(ctx->dbkey);
    if (db) {
        *out = db;
        return 0;
    }
    int rc = md_db_open(ctx->db_path, &db);
    if (rc != 0)
        return rc;
    md_db_share_writer(db, &ctx->writer);
    pthread_mutex_lock(&ctx->mu);
    if (ctx->ndbs == ctx->capdbs) {
        size_t ncap = ctx->capdbs ? ctx->capdbs * 2 : 8;
        struct md_db **nv = realloc(ctx->dbs, ncap * sizeof(*nv));
        if (!nv) {
            pthread_mutex_unlock(&ctx->mu);
            md_db_close(db);
            return DYNO_ENOMEM;
        }
        ctx->dbs = nv;
        ctx->capdbs = ncap;
    }
    ctx->dbs[ctx->ndbs++] = db;
    pthread_mutex_unlock(&ctx->mu);
    pthread_setspecific(ctx->dbkey, db);
    *out = db;
    return 0;
}

/* ---- param helpers ------------------------------------------------------------------------ */

/* Integer member name in [min, max]; def when absent (required when !has_def). */
static int p_int(const cJSON *req, const char *name, bool has_def, int64_t def, int64_t min, int64_t max,
                 int64_t *out, char *err, size_t errlen)
{
    int rc = dyno_json_i64(req, name, out);
    if (rc == DYNO_ENOTFOUND && has_def) {
        *out = def;
        return 0;
    }
    if (rc == DYNO_ENOTFOUND) {
        snprintf(err, errlen, "%s is required", name);
        return DYNO_EINVAL;
    }
    if (rc != 0 || *out < min || *out > max) {
        snprintf(err, errlen, "%s must be an integer in %lld..%lld", name, (long long)min, (long long)max);
        return DYNO_EINVAL;
    }
    return 0;
}

static int p_bool(const cJSON *req, const char *name, bool def, bool *out, char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(req, name);
    if (!it || cJSON_IsNull(it)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(it)) {
        snprintf(err, errlen, "%s must be true or false", name);
        return DYNO_EINVAL;
    }
    *out = cJSON_IsTrue(it);
    return 0;
}

static int p_key(const cJSON *req, const char **out, char *err, size_t errlen)
{
    *out = dyno_json_str(req, "key");
    if (!dyno_valid_key(*out)) {
        snprintf(err, errlen, "key must be 32 lowercase hex characters");
        return DYNO_EINVAL;
    }
    return 0;
}

static int p_catalog(const cJSON *req, const char **out, char *err, size_t errlen)
{
    *out = dyno_json_str(req, "catalog");
    if (!dyno_valid_catalog(*out)) {
        snprintf(err, errlen, "catalog must be <owner>/<path> with 1..8 segments of [A-Za-z0-9._-]{1,64}");
        return DYNO_EINVAL;
    }
    return 0;
}

static bool lower_hex(const char *s, size_t len)
{
    if (!s || strnlen(s, len + 1) != len)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

/* Runs fn with the thread's connection and, when want_nodes, a registry snapshot. */
#define WITH_DB(ctx, db, err, errlen)                                                                        \
    struct md_db *db;                                                                                        \
    do {                                                                                                     \
        int _rc = md_ctx_db(ctx, &db);                                                                       \
        if (_rc != 0) {                                                                                      \
            snprintf(err, errlen, "metadata database unavailable");                                          \
            return _rc;                                                                                      \
        }                                                                                                    \
    } while (0)

static int snapshot(struct md_ctx *ctx, struct md_nodes *nodes, char *err, size_t errlen)
{
    int rc = md_reg_snapshot(&ctx->reg, nodes);
    if (rc != 0)
        snprintf(err, errlen, "out of memory");
    return rc;
}

/* One write handed to the writer thread (md_writer.h): a handler's parsed request, read by
 * its w_* function on the writer's connection, and where the answer goes. Everything it
 * points to lives on the handler's stack, which waits. */
struct wr {
    struct md_ctx *ctx;
    const void *req; /* the handler's request struct */
    const char *key;
    const struct md_nodes *nodes;
    int64_t now;
    cJSON *events; /* NULL, or receives event.emit params (md_rpc_emit after the commit) */
    cJSON *result;
    int count;
};

/* Runs fn(w) in the writer's next batch and waits for its commit. On success *result (may
 * be NULL) takes w->result; on failure it is freed, and so are events the call had queued:
 * what was not committed is not announced. */
static int write_call(struct md_ctx *ctx, md_write_fn fn, struct wr *w, bool durable, cJSON **result,
                      char *err, size_t errlen)
{
    int rc = md_writer_run(&ctx->wr, fn, w, durable, NULL, err, errlen);
    if (rc == 0 && result)
        *result = w->result;
    else
        cJSON_Delete(w->result);
    w->result = NULL;
    while (rc != 0 && w->events && cJSON_GetArraySize(w->events) > 0)
        cJSON_DeleteItemFromArray(w->events, 0);
    return rc;
}

/* ---- handlers ------------------------------------------------------------------------------ */

static int w_begin(struct md_db *db, void *arg, char *err, size_t errlen)
{
    struct wr *w = arg;
    return md_store_begin(db, w->req, w->nodes, w->now, &w->result, err, errlen);
}

static int h_begin(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    struct md_begin_req r = {0};
    int64_t v;
    int rc;
    if ((rc = p_catalog(req, &r.catalog, err, errlen)) != 0)
        return rc;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(req, "name");
    if (name && !cJSON_IsNull(name)) {
        r.name = cJSON_IsString(name) ? name->valuestring : NULL;
        if (!dyno_valid_name(r.name)) {
            snprintf(err, errlen,
                     "name must be 1..255 bytes of UTF-8 without '/', '\\' or control characters");
            return DYNO_EINVAL;
        }
    }
    /* The publisher: who stores the object, recorded apart from the catalog's owner and
     * never used for access. "owner" is its old name, still taken from older gateways. */
    r.owner = dyno_json_str(req, "publisher");
    if (!r.owner)
        r.owner = dyno_json_str(req, "owner");
    if (!dyno_valid_segment(r.owner)) {
        snprintf(err, errlen, "publisher must match [A-Za-z0-9._-]{1,64}");
        return DYNO_EINVAL;
    }
    if ((rc = p_int(req, "size", false, 0, -1, MD_SIZE_MAX, &r.size, err, errlen)) != 0)
        return rc;
    if ((rc = p_bool(req, "replica", false, &r.replica, err, errlen)) != 0)
        return rc;
    const cJSON *spread = cJSON_GetObjectItemCaseSensitive(req, "site_spread");
    if (spread && !cJSON_IsNull(spread)) {
        const char *sv = cJSON_IsString(spread) ? spread->valuestring : "";
        if (strcmp(sv, "strict") != 0 && strcmp(sv, "relaxed") != 0) {
            snprintf(err, errlen, "site_spread must be \"strict\" or \"relaxed\"");
            return DYNO_EINVAL;
        }
        r.site_relaxed = strcmp(sv, "relaxed") == 0;
    }
    if ((rc = p_int(req, "k", true, 3, 1, DYNO_EC_MAX_K, &v, err, errlen)) != 0)
        return rc;
    r.k = (int)v;
    if ((rc = p_int(req, "m", true, 2, 0, DYNO_EC_MAX_M, &v, err, errlen)) != 0)
        return rc;
    r.m = (int)v;
    if ((rc = p_int(req, "unit", true, 1024 * 1024, 1, DYNO_FRAG_MAX_UNIT, &v, err, errlen)) != 0)
        return rc;
    r.unit = (uint32_t)v;
    struct md_nodes nodes;
    if ((rc = snapshot(ctx, &nodes, err, errlen)) != 0)
        return rc;
    /* Not durable: a pending object is invisible until its commit, which syncs. */
    struct wr w = {.req = &r, .nodes = &nodes, .now = (int64_t)time(NULL)};
    rc = write_call(ctx, w_begin, &w, false, result, err, errlen);
    free(nodes.v);
    return rc;
}

/* The identity of a reserved object at its commit: catalog, name (optional), publisher,
 * k, m, replica, unit, checked as object.begin checks them. */
static int p_identity(const cJSON *req, struct md_resv_commit *c, char *err, size_t errlen)
{
    int64_t v;
    int rc;
    if ((rc = p_catalog(req, &c->catalog, err, errlen)) != 0)
        return rc;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(req, "name");
    if (name && !cJSON_IsNull(name)) {
        c->name = cJSON_IsString(name) ? name->valuestring : NULL;
        if (!dyno_valid_name(c->name)) {
            snprintf(err, errlen,
                     "name must be 1..255 bytes of UTF-8 without '/', '\\' or control characters");
            return DYNO_EINVAL;
        }
    }
    c->publisher = dyno_json_str(req, "publisher");
    if (!dyno_valid_segment(c->publisher)) {
        snprintf(err, errlen, "publisher must match [A-Za-z0-9._-]{1,64}");
        return DYNO_EINVAL;
    }
    if ((rc = p_bool(req, "replica", false, &c->replica, err, errlen)) != 0)
        return rc;
    if ((rc = p_int(req, "k", false, 0, 1, DYNO_EC_MAX_K, &v, err, errlen)) != 0)
        return rc;
    c->k = (int)v;
    if ((rc = p_int(req, "m", false, 0, 0, DYNO_EC_MAX_M, &v, err, errlen)) != 0)
        return rc;
    c->m = (int)v;
    if ((rc = p_int(req, "unit", false, 0, 1, DYNO_FRAG_MAX_UNIT, &v, err, errlen)) != 0)
        return rc;
    c->unit = (uint32_t)v;
    return 0;
}

#define MD_RESERVE_MAX 256 /* objects one object.reserve may place */

static int w_reserve(struct md_db *db, void *arg, char *err, size_t errlen)
{
    struct wr *w = arg;
    return md_store_reserve(db, w->req, w->nodes, w->now, &w->result, err, errlen);
}

static int h_reserve(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    struct md_resv_req r = {0};
    int64_t v;
    int rc;
    r.holder = dyno_json_str(req, "holder");
    if (!dyno_valid_segment(r.holder)) {
        snprintf(err, errlen, "holder must match [A-Za-z0-9._-]{1,64}");
        return DYNO_EINVAL;
    }
    if ((rc = p_int(req, "size", false, 0, 0, MD_SIZE_MAX, &r.size, err, errlen)) != 0)
        return rc;
    if ((rc = p_bool(req, "replica", false, &r.replica, err, errlen)) != 0)
        return rc;
    if ((rc = p_bool(req, "fresh", false, &r.fresh, err, errlen)) != 0)
        return rc;
    if ((rc = p_int(req, "k", false, 0, 1, DYNO_EC_MAX_K, &v, err, errlen)) != 0)
        return rc;
    r.k = (int)v;
    if ((rc = p_int(req, "m", false, 0, 0, DYNO_EC_MAX_M, &v, err, errlen)) != 0)
        return rc;
    r.m = (int)v;
    if ((rc = p_int(req, "unit", false, 0, 1, DYNO_FRAG_MAX_UNIT, &v, err, errlen)) != 0)
        return rc;
    r.unit = (uint32_t)v;
    if ((rc = p_int(req, "count", false, 0, 1, MD_RESERVE_MAX, &v, err, errlen)) != 0)
        return rc;
    r.count = (int)v;
    struct md_nodes nodes;
    if ((rc = snapshot(ctx, &nodes, err, errlen)) != 0)
        return rc;
    /* Not durable, as object.begin (md_store_reserve says why "fresh" need not be). */
    struct wr w = {.req = &r, .nodes = &nodes, .now = (int64_t)time(NULL)};
    rc = write_call(ctx, w_reserve, &w, false, result, err, errlen);
    free(nodes.v);
    if (rc == 0)
        dyno_crash_point("metadata.reserve.before_reply"); /* reserved, not answered */
    return rc;
}

struct w_release_req {
    const char *holder;
    const char *const *keys;
    size_t n;
};

static int w_release(struct md_db *db, void *arg, char *err, size_t errlen)
{
    struct wr *w = arg;
    const struct w_release_req *r = w->req;
    return md_store_release(db, r->holder, r->keys, r->n, &w->count, err, errlen);
}

static int h_release(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    const char *holder = dyno_json_str(req, "holder");
    if (!dyno_valid_segment(holder)) {
        snprintf(err, errlen, "holder must match [A-Za-z0-9._-]{1,64}");
        return DYNO_EINVAL;
    }
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(req, "keys");
    int count = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
    if (count < 1 || count > MD_RESERVE_MAX) {
        snprintf(err, errlen, "keys must be an array of 1..%d keys", MD_RESERVE_MAX);
        return DYNO_EINVAL;
    }
    const char *keys[MD_RESERVE_MAX];
    int i = 0;
    const cJSON *k;
    cJSON_ArrayForEach(k, arr)
    {
        keys[i] = cJSON_IsString(k) ? k->valuestring : NULL;
        if (!dyno_valid_key(keys[i])) {
            snprintf(err, errlen, "keys[%d] is not a key", i);
            return DYNO_EINVAL;
        }
        i++;
    }
    struct w_release_req rr = {.holder = holder, .keys = keys, .n = (size_t)i};
    struct wr w = {.req = &rr};
    int rc = write_call(ctx, w_release, &w, true, NULL, err, errlen);
    if (rc != 0)
        return rc;
    int dropped = w.count;
    *result = cJSON_CreateObject();
    if (!*result) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    cJSON_AddNumberToObject(*result, "released", dropped);
    return 0;
}

struct w_commit_req {
    const struct md_resv_commit *resv;
    const char *attrs; /* JSON text of the object's attributes, or NULL */
    bool dedupe;       /* "dedupe": the same bytes under this name already stored: discard */
    int64_t size;
    const char *sha;
    const struct md_commit_frag *frags;
    size_t nfrags;
};

static int w_commit(struct md_db *db, void *arg, char *err, size_t errlen)
{
    struct wr *w = arg;
    const struct w_commit_req *c = w->req;
    return md_store_commit_opts(db, w->key, c->resv, c->attrs, c->dedupe, c->size, c->sha, c->frags,
                                c->nfrags, w->nodes, w->now, &w->result, err, errlen);
}

static int h_commit(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    const char *key;
    int64_t size;
    int rc;
    if ((rc = p_key(req, &key, err, errlen)) != 0)
        return rc;
    if ((rc = p_int(req, "size", false, 0, 0, MD_SIZE_MAX, &size, err, errlen)) != 0)
        return rc;
    const char *sha = dyno_json_str(req, "sha256");
    if (!lower_hex(sha, 64)) {
        snprintf(err, errlen, "sha256 must be 64 lowercase hex characters");
        return DYNO_EINVAL;
    }
    /* MQTT ingest's named readings: a copy of what the name already holds is not stored
     * again (md_store_commit_opts); REST and S3 puts replace. */
    bool dedupe = false;
    if ((rc = p_bool(req, "dedupe", false, &dedupe, err, errlen)) != 0)
        return rc;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(req, "fragments");
    int count = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
    if (count < 1 || count > MD_FRAGS_MAX) {
        snprintf(err, errlen, "fragments must be an array of 1..%d entries", MD_FRAGS_MAX);
        return DYNO_EINVAL;
    }
    struct md_commit_frag frags[MD_FRAGS_MAX];
    int i = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, arr)
    {
        int64_t ix, fsize;
        if (!cJSON_IsObject(f)) {
            snprintf(err, errlen, "fragments[%d] must be an object", i);
            return DYNO_EINVAL;
        }
        if ((rc = p_int(f, "index", false, 0, 0, MD_FRAGS_MAX - 1, &ix, err, errlen)) != 0)
            return rc;
        const cJSON *ok = cJSON_GetObjectItemCaseSensitive(f, "ok");
        if (!cJSON_IsBool(ok)) {
            snprintf(err, errlen, "fragments[%d].ok must be true or false", i);
            return DYNO_EINVAL;
        }
        if ((rc = p_int(f, "size", true, -1, 0, MD_SIZE_MAX, &fsize, err, errlen)) != 0)
            return rc;
        frags[i].index = (int)ix;
        frags[i].ok = cJSON_IsTrue(ok);
        frags[i].size = fsize;
        i++;
    }
    /* A reserved object (object.reserve) names its catalog, name, publisher and shape now. */
    struct md_resv_commit rc_id = {0};
    bool resv = cJSON_GetObjectItemCaseSensitive(req, "catalog") != NULL;
    if (resv && (rc = p_identity(req, &rc_id, err, errlen)) != 0)
        return rc;
    struct md_nodes nodes;
    if ((rc = snapshot(ctx, &nodes, err, errlen)) != 0)
        return rc;
    /* The object's attributes (S3: etag, content_type, meta; issue 14): a small object. */
    const cJSON *aj = cJSON_GetObjectItemCaseSensitive(req, "attrs");
    char *attrs = NULL;
    if (aj && !cJSON_IsNull(aj)) {
        attrs = cJSON_IsObject(aj) ? cJSON_PrintUnformatted(aj) : NULL;
        if (!attrs || strlen(attrs) > MD_ATTRS_MAX) {
            free(attrs);
            free(nodes.v);
            snprintf(err, errlen, "attrs must be an object of at most %d bytes of JSON", MD_ATTRS_MAX);
            return DYNO_EINVAL;
        }
    }
    struct w_commit_req cr = {.resv = resv ? &rc_id : NULL,
                              .attrs = attrs,
                              .dedupe = dedupe,
                              .size = size,
                              .sha = sha,
                              .frags = frags,
                              .nfrags = (size_t)i};
    struct wr w = {.req = &cr, .key = key, .nodes = &nodes, .now = (int64_t)time(NULL)};
    rc = write_call(ctx, w_commit, &w, true, result, err, errlen);
    free(attrs);
    free(nodes.v);
    if (rc == 0)
        dyno_crash_point("metadata.commit.before_reply"); /* durable, not answered */
    return rc;
}

typedef int (*key_op_fn)(struct md_db *, const char *, const struct md_nodes *, cJSON **, char *, size_t);

/* A write of one key (w->req is its key_op_fn). */
static int w_key_op(struct md_db *db, void *arg, char *err, size_t errlen)
{
    struct wr *w = arg;
    key_op_fn fn = *(const key_op_fn *)w->req;
    return fn(db, w->key, w->nodes, &w->result, err, errlen);
}

/* fn on key: through the writer when write, else on this thread's connection. */
static int key_op(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen, key_op_fn fn,
                  bool write)
{
    struct md_ctx *ctx = arg;
    const char *key;
    int rc;
    if ((rc = p_key(req, &key, err, errlen)) != 0)
        return rc;
    struct md_nodes nodes;
    if (write) {
        if ((rc = snapshot(ctx, &nodes, err, errlen)) != 0)
            return rc;
        struct wr w = {.req = &fn, .key = key, .nodes = &nodes};
        rc = write_call(ctx, w_key_op, &w, true, result, err, errlen);
        free(nodes.v);
        return rc;
    }
    WITH_DB(ctx, db, err, errlen);
    if ((rc = snapshot(ctx, &nodes, err, errlen)) != 0)
        return rc;
    rc = fn(db, key, &nodes, result, err, errlen);
    free(nodes.v);
    return rc;
}

static int h_abort(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    return key_op(arg, req, result, err, errlen, md_store_abort, true);
}

/* object.get: {key}, or {catalog, name} (the S3 door reads objects by name). */
static int h_get(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    if (cJSON_GetObjectItemCaseSensitive(req, "key"))
        return key_op(arg, req, result, err, errlen, md_store_get, false);
    struct md_ctx *ctx = arg;
    const char *catalog, *name = dyno_json_str(req, "name");
    int rc;
    if ((rc = p_catalog(req, &catalog, err, errlen)) != 0)
        return rc;
    if (!dyno_valid_name(name)) {
        snprintf(err, errlen, "name must be an object name (or give key)");
        return DYNO_EINVAL;
    }
    WITH_DB(ctx, db, err, errlen);
    struct md_nodes nodes;
    if ((rc = snapshot(ctx, &nodes, err, errlen)) != 0)
        return rc;
    rc = md_store_get_by_name(db, catalog, name, &nodes, result, err, errlen);
    free(nodes.v);
    return rc;
}

static int h_evict(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    return key_op(arg, req, result, err, errlen, md_store_evict, true);
}

/* An optional text member of an object.list request ("" and null: absent). */
static int p_list_text(const cJSON *req, const char *member, const char **out, char *err, size_t errlen)
{
    *out = NULL;
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(req, member);
    if (!j || cJSON_IsNull(j))
        return 0;
    const char *v = cJSON_IsString(j) ? j->valuestring : NULL;
    if (!v || (*v && !dyno_valid_text(v, MD_LIST_TOKEN_MAX))) {
        snprintf(err, errlen, "%s must be UTF-8 text of at most %d bytes without control characters", member,
                 MD_LIST_TOKEN_MAX);
        return DYNO_EINVAL;
    }
    *out = v;
    return 0;
}

static int h_list(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    struct md_list_req q = {0};
    int64_t limit;
    int rc;
    if ((rc = p_catalog(req, &q.catalog, err, errlen)) != 0)
        return rc;
    if ((rc = p_list_text(req, "after", &q.after, err, errlen)) != 0 ||
        (rc = p_list_text(req, "prefix", &q.prefix, err, errlen)) != 0 ||
        (rc = p_list_text(req, "delimiter", &q.delimiter, err, errlen)) != 0)
        return rc;
    if ((rc = p_int(req, "limit", true, 100, 1, 1000, &limit, err, errlen)) != 0)
        return rc;
    q.limit = (int)limit;
    WITH_DB(ctx, db, err, errlen);
    return md_store_list_page(db, &q, result, err, errlen);
}

struct w_purge_req {
    const int *idx;
    size_t n;
};

static int w_purge(struct md_db *db, void *arg, char *err, size_t errlen)
{
    struct wr *w = arg;
    const struct w_purge_req *r = w->req;
    return md_store_purge(db, w->key, r->idx, r->n, &w->result, err, errlen);
}

static int h_purge(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    const char *key;
    int rc;
    if ((rc = p_key(req, &key, err, errlen)) != 0)
        return rc;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(req, "deleted");
    int count = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
    if (count < 0 || count > MD_FRAGS_MAX) {
        snprintf(err, errlen, "deleted must be an array of at most %d fragment indexes", MD_FRAGS_MAX);
        return DYNO_EINVAL;
    }
    int idx[MD_FRAGS_MAX];
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        double d = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (d < 0 || d >= MD_FRAGS_MAX || d != (double)(int)d) {
            snprintf(err, errlen, "deleted[%d] must be a fragment index 0..%d", n, MD_FRAGS_MAX - 1);
            return DYNO_EINVAL;
        }
        idx[n++] = (int)d;
    }
    struct w_purge_req pr = {.idx = idx, .n = (size_t)n};
    struct wr w = {.req = &pr, .key = key};
    return write_call(ctx, w_purge, &w, true, result, err, errlen);
}

struct w_report_req {
    int index;
    const char *problem;
    const char *container;
};

static int w_report(struct md_db *db, void *arg, char *err, size_t errlen)
{
    struct wr *w = arg;
    const struct w_report_req *r = w->req;
    return md_store_report(db, w->key, r->index, r->problem, r->container, w->events, &w->result, err,
                           errlen);
}

static int h_report(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    const char *key;
    int64_t index;
    int rc;
    if ((rc = p_key(req, &key, err, errlen)) != 0)
        return rc;
    if ((rc = p_int(req, "index", false, 0, 0, MD_FRAGS_MAX - 1, &index, err, errlen)) != 0)
        return rc;
    const char *problem = dyno_json_str(req, "problem");
    if (!problem || (strcmp(problem, "crc") != 0 && strcmp(problem, "missing") != 0)) {
        snprintf(err, errlen, "problem must be \"crc\" or \"missing\"");
        return DYNO_EINVAL;
    }
    const cJSON *cont = cJSON_GetObjectItemCaseSensitive(req, "container");
    const char *container = NULL;
    if (cont && !cJSON_IsNull(cont)) {
        container = cJSON_IsString(cont) ? cont->valuestring : NULL;
        if (!dyno_valid_segment(container)) {
            snprintf(err, errlen, "container must match [A-Za-z0-9._-]{1,64}");
            return DYNO_EINVAL;
        }
    }
    cJSON *events = cJSON_CreateArray();
    if (!events) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    struct w_report_req rr = {.index = (int)index, .problem = problem, .container = container};
    struct wr w = {.req = &rr, .key = key, .events = events};
    rc = write_call(ctx, w_report, &w, true, result, err, errlen);
    if (rc == 0 && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(*result, "ignored")))
        dyno_warn("fragment reported", "key=%s index=%d problem=%s", key, (int)index, problem);
    md_rpc_emit(ctx, events);
    cJSON_Delete(events);
    return rc;
}

static int h_containers(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    (void)req;
    int rc;
    WITH_DB(ctx, db, err, errlen);
    struct md_nodes nodes;
    if ((rc = snapshot(ctx, &nodes, err, errlen)) != 0)
        return rc;
    rc = md_store_containers(db, &nodes, result, err, errlen);
    free(nodes.v);
    return rc;
}

static int h_stats(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    const char *catalog;
    int rc;
    if ((rc = p_catalog(req, &catalog, err, errlen)) != 0)
        return rc;
    WITH_DB(ctx, db, err, errlen);
    return md_store_catalog_stats(db, catalog, result, err, errlen);
}

/* ---- healing (md_repair.h, protocol.md §8) ------------------------------------------------- */

static int p_segment(const cJSON *req, const char *name, const char **out, char *err, size_t errlen)
{
    *out = dyno_json_str(req, name);
    if (!dyno_valid_segment(*out)) {
        snprintf(err, errlen, "%s must match [A-Za-z0-9._-]{1,64}", name);
        return DYNO_EINVAL;
    }
    return 0;
}

/* An array member of 0..max entries; *count its size. */
static int p_array(const cJSON *req, const char *name, int max, const cJSON **arr, int *count, char *err,
                   size_t errlen)
{
    *arr = cJSON_GetObjectItemCaseSensitive(req, name);
    *count = cJSON_IsArray(*arr) ? cJSON_GetArraySize(*arr) : -1;
    if (*count < 0 || *count > max) {
        snprintf(err, errlen, "%s must be an array of at most %d entries", name, max);
        return DYNO_EINVAL;
    }
    return 0;
}

static int w_repair_claim(struct md_db *db, void *arg, char *err, size_t errlen)
{
    struct wr *w = arg;
    return md_repair_claim(&w->ctx->repair, db, w->nodes, w->req, w->now, &w->result, err, errlen);
}

static int h_repair_claim(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    const char *worker;
    int rc;
    if ((rc = p_segment(req, "worker", &worker, err, errlen)) != 0)
        return rc;
    struct md_nodes nodes;
    if ((rc = snapshot(ctx, &nodes, err, errlen)) != 0)
        return rc;
    struct wr w = {.ctx = ctx, .req = worker, .nodes = &nodes, .now = (int64_t)time(NULL)};
    rc = write_call(ctx, w_repair_claim, &w, true, result, err, errlen);
    free(nodes.v);
    return rc;
}

struct w_complete_req {
    const char *id;
    const struct md_repair_result *res;
    size_t n;
};

static int w_repair_complete(struct md_db *db, void *arg, char *err, size_t errlen)
{
    struct wr *w = arg;
    const struct w_complete_req *c = w->req;
    return md_repair_complete(&w->ctx->repair, db, c->id, w->key, c->res, c->n, w->now, w->events, &w->result,
                              err, errlen);
}

static int h_repair_complete(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    const char *key, *id;
    const cJSON *arr, *it;
    int count, rc;
    if ((rc = p_key(req, &key, err, errlen)) != 0)
        return rc;
    id = dyno_json_str(req, "id");
    if (!dyno_valid_key(id)) {
        snprintf(err, errlen, "id must be the task id (32 lowercase hex characters)");
        return DYNO_EINVAL;
    }
    if ((rc = p_array(req, "results", MD_FRAGS_MAX, &arr, &count, err, errlen)) != 0)
        return rc;
    struct md_repair_result res[MD_FRAGS_MAX];
    bool seen[MD_FRAGS_MAX] = {false};
    int n = 0;
    cJSON_ArrayForEach(it, arr)
    {
        int64_t ix, size;
        if (!cJSON_IsObject(it)) {
            snprintf(err, errlen, "results[%d] must be an object", n);
            return DYNO_EINVAL;
        }
        if ((rc = p_int(it, "index", false, 0, 0, MD_FRAGS_MAX - 1, &ix, err, errlen)) != 0)
            return rc;
        if (seen[ix]) {
            snprintf(err, errlen, "fragment index %d given twice", (int)ix);
            return DYNO_EINVAL;
        }
        seen[ix] = true;
        const cJSON *ok = cJSON_GetObjectItemCaseSensitive(it, "ok");
        if (!cJSON_IsBool(ok)) {
            snprintf(err, errlen, "results[%d].ok must be true or false", n);
            return DYNO_EINVAL;
        }
        if ((rc = p_segment(it, "container", &res[n].container, err, errlen)) != 0)
            return rc;
        if ((rc = p_int(it, "size", true, -1, 0, MD_SIZE_MAX, &size, err, errlen)) != 0)
            return rc;
        res[n].index = (int)ix;
        res[n].ok = cJSON_IsTrue(ok);
        res[n].size = size;
        n++;
    }
    cJSON *events = cJSON_CreateArray();
    if (!events) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    struct w_complete_req cr = {.id = id, .res = res, .n = (size_t)n};
    struct wr w = {.ctx = ctx, .req = &cr, .key = key, .now = (int64_t)time(NULL), .events = events};
    rc = write_call(ctx, w_repair_complete, &w, true, result, err, errlen);
    md_rpc_emit(ctx, events);
    cJSON_Delete(events);
    return rc;
}

static int h_repair_status(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    (void)req;
    WITH_DB(ctx, db, err, errlen);
    return md_repair_status(db, (int64_t)time(NULL), result, err, errlen);
}

static int w_drain(struct md_db *db, void *arg, char *err, size_t errlen)
{
    struct wr *w = arg;
    return md_repair_drain(db, w->nodes, w->req, w->now, w->events, &w->result, err, errlen);
}

static int h_drain(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    const char *id;
    int rc;
    if ((rc = p_segment(req, "id", &id, err, errlen)) != 0)
        return rc;
    struct dyno_agent_caller caller;
    rc = dyno_agent_caller(req, &caller, err, errlen);
    if (rc != 0 && rc != DYNO_EUNAUTH)
        return rc;
    if (rc == DYNO_EUNAUTH || !caller.admin) {
        snprintf(err, errlen, "only an admin may drain a container");
        return DYNO_EFORBIDDEN;
    }
    struct md_nodes nodes;
    if ((rc = snapshot(ctx, &nodes, err, errlen)) != 0)
        return rc;
    cJSON *events = cJSON_CreateArray();
    if (!events) {
        free(nodes.v);
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    char q[80];
    struct wr w = {.req = id, .nodes = &nodes, .now = (int64_t)time(NULL), .events = events};
    rc = write_call(ctx, w_drain, &w, true, result, err, errlen);
    if (rc == 0)
        dyno_info("drain requested", "id=%s by=%s", id, dyno_log_q(q, sizeof(q), caller.sub));
    free(nodes.v);
    md_rpc_emit(ctx, events);
    cJSON_Delete(events);
    return rc;
}

static int h_gc_claim(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    int64_t limit;
    int rc;
    if ((rc = p_int(req, "limit", true, 100, 1, MD_GC_MAX, &limit, err, errlen)) != 0)
        return rc;
    WITH_DB(ctx, db, err, errlen);
    struct md_nodes nodes;
    if ((rc = snapshot(ctx, &nodes, err, errlen)) != 0)
        return rc;
    rc = md_repair_gc_claim(db, &nodes, (int)limit, result, err, errlen);
    free(nodes.v);
    return rc;
}

static int w_gc_complete(struct md_db *db, void *arg, char *err, size_t errlen)
{
    struct wr *w = arg;
    return md_repair_gc_complete(db, w->req, (size_t)w->count, &w->result, err, errlen);
}

static int h_gc_complete(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    const cJSON *arr, *it;
    int count, rc;
    if ((rc = p_array(req, "items", MD_GC_MAX, &arr, &count, err, errlen)) != 0)
        return rc;
    struct md_gc_item *items = calloc(count ? (size_t)count : 1, sizeof(*items));
    if (!items) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    int n = 0;
    cJSON_ArrayForEach(it, arr)
    {
        int64_t ix;
        const cJSON *ok = cJSON_GetObjectItemCaseSensitive(it, "ok");
        if (!cJSON_IsObject(it) || (rc = p_key(it, &items[n].key, err, errlen)) != 0 ||
            (rc = p_int(it, "index", false, 0, 0, MD_FRAGS_MAX - 1, &ix, err, errlen)) != 0 ||
            (rc = p_segment(it, "container", &items[n].container, err, errlen)) != 0 || !cJSON_IsBool(ok)) {
            if (rc == 0)
                snprintf(err, errlen, "items[%d] must be {key, index, container, ok}", n);
            free(items);
            return DYNO_EINVAL;
        }
        items[n].index = (int)ix;
        items[n].ok = cJSON_IsTrue(ok);
        n++;
    }
    struct wr w = {.req = items, .count = n};
    rc = write_call(ctx, w_gc_complete, &w, true, result, err, errlen);
    free(items);
    return rc;
}

static bool p_sha256(const char *s)
{
    return lower_hex(s, 64);
}

/* Parses one object.restore entry into o, its fragments into f (MD_FRAGS_MAX entries). */
static int p_restore_obj(const cJSON *it, int i, struct md_restore_obj *o, struct md_restore_frag *f,
                         char *owner, char *err, size_t errlen)
{
    int64_t v;
    int rc;
    const cJSON *arr, *x;
    int count;
    if (!cJSON_IsObject(it)) {
        snprintf(err, errlen, "objects[%d] must be an object", i);
        return DYNO_EINVAL;
    }
    if ((rc = p_key(it, &o->key, err, errlen)) != 0 || (rc = p_catalog(it, &o->catalog, err, errlen)) != 0)
        return rc;
    o->name = dyno_json_str(it, "name");
    if (!dyno_valid_name(o->name)) {
        snprintf(err, errlen, "objects[%d].name is not a valid object name", i);
        return DYNO_EINVAL;
    }
    dyno_catalog_owner(o->catalog, owner, DYNO_SEG_MAX + 1);
    const char *given = dyno_json_str(it, "owner");
    if (given && strcmp(given, owner) != 0) {
        snprintf(err, errlen, "objects[%d].owner must be the catalog's owner %s", i, owner);
        return DYNO_EINVAL;
    }
    o->owner = owner;
    o->sha256 = dyno_json_str(it, "sha256");
    if (!p_sha256(o->sha256)) {
        snprintf(err, errlen, "objects[%d].sha256 must be 64 lowercase hex characters", i);
        return DYNO_EINVAL;
    }
    if ((rc = p_int(it, "size", false, 0, 0, MD_SIZE_MAX, &o->size, err, errlen)) != 0 ||
        (rc = p_bool(it, "replica", false, &o->replica, err, errlen)) != 0)
        return rc;
    if ((rc = p_int(it, "k", false, 0, 1, DYNO_EC_MAX_K, &v, err, errlen)) != 0)
        return rc;
    o->k = (int)v;
    if ((rc = p_int(it, "m", false, 0, 0, DYNO_EC_MAX_M, &v, err, errlen)) != 0)
        return rc;
    o->m = (int)v;
    if (o->replica && o->k != 1) {
        snprintf(err, errlen, "objects[%d]: a replicated object has k = 1", i);
        return DYNO_EINVAL;
    }
    if ((rc = p_int(it, "unit", false, 0, 1, DYNO_FRAG_MAX_UNIT, &v, err, errlen)) != 0)
        return rc;
    o->unit = (uint32_t)v;
    int n = o->replica ? o->m + 1 : o->k + o->m;
    if ((rc = p_array(it, "fragments", MD_FRAGS_MAX, &arr, &count, err, errlen)) != 0)
        return rc;
    if (count < 1) {
        snprintf(err, errlen, "objects[%d].fragments must not be empty", i);
        return DYNO_EINVAL;
    }
    bool seen[MD_FRAGS_MAX] = {false};
    size_t nf = 0;
    cJSON_ArrayForEach(x, arr)
    {
        int64_t ix, size;
        if (!cJSON_IsObject(x) || (rc = p_int(x, "index", false, 0, 0, n - 1, &ix, err, errlen)) != 0 ||
            (rc = p_segment(x, "container", &f[nf].container, err, errlen)) != 0 ||
            (rc = p_int(x, "size", true, -1, 0, MD_SIZE_MAX, &size, err, errlen)) != 0) {
            if (rc == 0)
                snprintf(err, errlen, "objects[%d].fragments entries must be {index, container, size}", i);
            return DYNO_EINVAL;
        }
        if (seen[ix]) {
            snprintf(err, errlen, "objects[%d]: fragment index %d given twice", i, (int)ix);
            return DYNO_EINVAL;
        }
        seen[ix] = true;
        f[nf].index = (int)ix;
        f[nf].size = size;
        nf++;
    }
    o->frags = f;
    o->nfrags = nf;
    return 0;
}

static int w_restore(struct md_db *db, void *arg, char *err, size_t errlen)
{
    struct wr *w = arg;
    return md_repair_restore(db, w->req, (size_t)w->count, w->now, &w->result, err, errlen);
}

static int h_restore(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    const cJSON *arr, *it;
    int count, rc;
    if ((rc = p_array(req, "objects", MD_RESTORE_MAX, &arr, &count, err, errlen)) != 0)
        return rc;
    struct md_restore_obj *objs = calloc(count ? (size_t)count : 1, sizeof(*objs));
    struct md_restore_frag *frags = calloc((count ? (size_t)count : 1) * MD_FRAGS_MAX, sizeof(*frags));
    char(*owners)[DYNO_SEG_MAX + 1] = calloc(count ? (size_t)count : 1, sizeof(*owners));
    if (!objs || !frags || !owners) {
        snprintf(err, errlen, "out of memory");
        rc = DYNO_ENOMEM;
        goto out;
    }
    int i = 0;
    cJSON_ArrayForEach(it, arr)
    {
        rc = p_restore_obj(it, i, &objs[i], &frags[(size_t)i * MD_FRAGS_MAX], owners[i], err, errlen);
        if (rc != 0)
            goto out;
        i++;
    }
    struct wr w = {.req = objs, .count = i, .now = (int64_t)time(NULL)};
    rc = write_call(ctx, w_restore, &w, true, result, err, errlen);
out:
    free(objs);
    free(frags);
    free(owners);
    return rc;
}

/* ---- S3 multipart uploads (md_upload.h) ---------------------------------------------------- */

static int p_upload_id(const cJSON *req, const char **out, char *err, size_t errlen)
{
    *out = dyno_json_str(req, "id");
    if (!dyno_valid_key(*out)) {
        snprintf(err, errlen, "id must be 32 lowercase hex characters");
        return DYNO_EINVAL;
    }
    return 0;
}

static int w_upload_create(struct md_db *db, void *arg, char *err, size_t errlen)
{
    struct wr *w = arg;
    return md_upload_create(db, w->req, w->now, &w->result, err, errlen);
}

static int w_upload_delete(struct md_db *db, void *arg, char *err, size_t errlen)
{
    struct wr *w = arg;
    return md_upload_delete(db, w->key, err, errlen);
}

static int h_upload_create(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    struct md_upload_req r = {0};
    int rc;
    if ((rc = p_catalog(req, &r.catalog, err, errlen)) != 0)
        return rc;
    r.name = dyno_json_str(req, "name");
    r.initiator = dyno_json_str(req, "initiator");
    r.attrs = cJSON_GetObjectItemCaseSensitive(req, "attrs");
    if (!dyno_valid_name(r.name)) {
        snprintf(err, errlen, "name must be an object name");
        return DYNO_EINVAL;
    }
    if (!dyno_valid_segment(r.initiator)) {
        snprintf(err, errlen, "initiator must be a user name");
        return DYNO_EINVAL;
    }
    if (r.attrs && !cJSON_IsObject(r.attrs)) {
        snprintf(err, errlen, "attrs must be an object");
        return DYNO_EINVAL;
    }
    struct wr w = {.req = &r, .now = (int64_t)time(NULL)};
    return write_call(ctx, w_upload_create, &w, true, result, err, errlen);
}

static int h_upload_get(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    const char *id;
    int rc;
    if ((rc = p_upload_id(req, &id, err, errlen)) != 0)
        return rc;
    WITH_DB(ctx, db, err, errlen);
    return md_upload_get(db, id, result, err, errlen);
}

static int h_upload_delete(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    const char *id;
    int rc;
    if ((rc = p_upload_id(req, &id, err, errlen)) != 0)
        return rc;
    struct wr w = {.key = id};
    if ((rc = write_call(ctx, w_upload_delete, &w, true, NULL, err, errlen)) != 0)
        return rc;
    *result = cJSON_CreateObject();
    return *result ? 0 : DYNO_ENOMEM;
}

static int h_upload_list(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    const char *catalog, *prefix, *after, *after_id = NULL;
    int64_t limit;
    int rc;
    if ((rc = p_catalog(req, &catalog, err, errlen)) != 0 ||
        (rc = p_list_text(req, "prefix", &prefix, err, errlen)) != 0 ||
        (rc = p_list_text(req, "after", &after, err, errlen)) != 0)
        return rc;
    const cJSON *aid = cJSON_GetObjectItemCaseSensitive(req, "after_id");
    if (aid && !cJSON_IsNull(aid)) {
        after_id = cJSON_IsString(aid) ? aid->valuestring : NULL;
        if (!dyno_valid_key(after_id)) {
            snprintf(err, errlen, "after_id must be an upload id");
            return DYNO_EINVAL;
        }
    }
    if ((rc = p_int(req, "limit", true, 1000, 1, 1000, &limit, err, errlen)) != 0)
        return rc;
    WITH_DB(ctx, db, err, errlen);
    return md_upload_list(db, catalog, prefix, after, after_id, (int)limit, result, err, errlen);
}

static int h_upload_expired(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    int64_t age, limit;
    int rc;
    if ((rc = p_int(req, "older_than_s", false, 0, 0, INT64_C(1) << 40, &age, err, errlen)) != 0 ||
        (rc = p_int(req, "limit", true, 100, 1, 1000, &limit, err, errlen)) != 0)
        return rc;
    WITH_DB(ctx, db, err, errlen);
    return md_upload_expired(db, (int64_t)time(NULL) - age, (int)limit, result, err, errlen);
}

const struct dyno_rpc_method md_rpc_methods[] = {
    {"object.begin", h_begin},
    {"object.commit", h_commit},
    {"object.reserve", h_reserve},
    {"object.release", h_release},
    {"object.abort", h_abort},
    {"object.get", h_get},
    {"object.list", h_list},
    {"object.evict", h_evict},
    {"object.purge", h_purge},
    {"object.report", h_report},
    {"object.restore", h_restore},
    {"container.list", h_containers},
    {"container.drain", h_drain},
    {"catalog.stats", h_stats},
    {"repair.claim", h_repair_claim},
    {"repair.complete", h_repair_complete},
    {"repair.status", h_repair_status},
    {"gc.claim", h_gc_claim},
    {"gc.complete", h_gc_complete},
    {"upload.create", h_upload_create},
    {"upload.get", h_upload_get},
    {"upload.delete", h_upload_delete},
    {"upload.list", h_upload_list},
    {"upload.expired", h_upload_expired},
};
const size_t md_rpc_nmethods = sizeof(md_rpc_methods) / sizeof(md_rpc_methods[0]);
