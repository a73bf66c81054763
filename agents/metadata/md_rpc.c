/* Metadata RPC handlers (md_rpc.h). */
#include "md_rpc.h"

#include <dynostore/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ec.h"
#include "frag.h"
#include "json.h"
#include "names.h"

#define MD_FRAGS_MAX 256 /* fragment entries in one request (index is a u8) */
#define MD_SIZE_MAX (INT64_C(1) << 53) /* exact in a JSON number */

int md_ctx_init(struct md_ctx *ctx, const char *db_path)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->db_path = db_path;
    if (pthread_mutex_init(&ctx->mu, NULL) != 0)
        return DYNO_EINTERNAL;
    if (pthread_key_create(&ctx->dbkey, NULL) != 0) {
        pthread_mutex_destroy(&ctx->mu);
        return DYNO_EINTERNAL;
    }
    int rc = md_reg_init(&ctx->reg);
    if (rc != 0) {
        pthread_key_delete(ctx->dbkey);
        pthread_mutex_destroy(&ctx->mu);
    }
    return rc;
}

void md_ctx_fini(struct md_ctx *ctx)
{
    for (size_t i = 0; i < ctx->ndbs; i++)
        md_db_close(ctx->dbs[i]);
    free(ctx->dbs);
    ctx->dbs = NULL;
    ctx->ndbs = 0;
    md_reg_fini(&ctx->reg);
    pthread_key_delete(ctx->dbkey);
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
#define WITH_DB(ctx, db, err, errlen)                                                                 \
    struct md_db *db;                                                                                 \
    do {                                                                                              \
        int _rc = md_ctx_db(ctx, &db);                                                                \
        if (_rc != 0) {                                                                               \
            snprintf(err, errlen, "metadata database unavailable");                                   \
            return _rc;                                                                               \
        }                                                                                             \
    } while (0)

static int snapshot(struct md_ctx *ctx, struct md_nodes *nodes, char *err, size_t errlen)
{
    int rc = md_reg_snapshot(&ctx->reg, nodes);
    if (rc != 0)
        snprintf(err, errlen, "out of memory");
    return rc;
}

/* ---- handlers ------------------------------------------------------------------------------ */

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
            snprintf(err, errlen, "name must be 1..255 bytes of UTF-8 without '/', '\\' or control characters");
            return DYNO_EINVAL;
        }
    }
    r.owner = dyno_json_str(req, "owner");
    if (!dyno_valid_segment(r.owner)) {
        snprintf(err, errlen, "owner must match [A-Za-z0-9._-]{1,64}");
        return DYNO_EINVAL;
    }
    if ((rc = p_int(req, "size", false, 0, -1, MD_SIZE_MAX, &r.size, err, errlen)) != 0)
        return rc;
    if ((rc = p_bool(req, "replica", false, &r.replica, err, errlen)) != 0)
        return rc;
    if ((rc = p_int(req, "k", true, 3, 1, DYNO_EC_MAX_K, &v, err, errlen)) != 0)
        return rc;
    r.k = (int)v;
    if ((rc = p_int(req, "m", true, 2, 0, DYNO_EC_MAX_M, &v, err, errlen)) != 0)
        return rc;
    r.m = (int)v;
    if ((rc = p_int(req, "unit", true, 1024 * 1024, 1, DYNO_FRAG_MAX_UNIT, &v, err, errlen)) != 0)
        return rc;
    r.unit = (uint32_t)v;
    WITH_DB(ctx, db, err, errlen);
    struct md_nodes nodes;
    if ((rc = snapshot(ctx, &nodes, err, errlen)) != 0)
        return rc;
    rc = md_store_begin(db, &r, &nodes, (int64_t)time(NULL), result, err, errlen);
    free(nodes.v);
    return rc;
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
    WITH_DB(ctx, db, err, errlen);
    struct md_nodes nodes;
    if ((rc = snapshot(ctx, &nodes, err, errlen)) != 0)
        return rc;
    rc = md_store_commit(db, key, size, sha, frags, (size_t)i, &nodes, (int64_t)time(NULL), result, err,
                         errlen);
    free(nodes.v);
    return rc;
}

typedef int (*key_op_fn)(struct md_db *, const char *, const struct md_nodes *, cJSON **, char *, size_t);

static int key_op(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen, key_op_fn fn)
{
    struct md_ctx *ctx = arg;
    const char *key;
    int rc;
    if ((rc = p_key(req, &key, err, errlen)) != 0)
        return rc;
    WITH_DB(ctx, db, err, errlen);
    struct md_nodes nodes;
    if ((rc = snapshot(ctx, &nodes, err, errlen)) != 0)
        return rc;
    rc = fn(db, key, &nodes, result, err, errlen);
    free(nodes.v);
    return rc;
}

static int h_abort(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    return key_op(arg, req, result, err, errlen, md_store_abort);
}

static int h_get(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    return key_op(arg, req, result, err, errlen, md_store_get);
}

static int h_evict(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    return key_op(arg, req, result, err, errlen, md_store_evict);
}

static int h_list(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct md_ctx *ctx = arg;
    const char *catalog;
    int64_t limit;
    int rc;
    if ((rc = p_catalog(req, &catalog, err, errlen)) != 0)
        return rc;
    const cJSON *after = cJSON_GetObjectItemCaseSensitive(req, "after");
    const char *a = NULL;
    if (after && !cJSON_IsNull(after)) {
        a = cJSON_IsString(after) ? after->valuestring : NULL;
        if (!a || (*a && !dyno_valid_name(a))) {
            snprintf(err, errlen, "after must be an object name");
            return DYNO_EINVAL;
        }
    }
    if ((rc = p_int(req, "limit", true, 100, 1, 1000, &limit, err, errlen)) != 0)
        return rc;
    WITH_DB(ctx, db, err, errlen);
    return md_store_list(db, catalog, a, (int)limit, result, err, errlen);
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
    WITH_DB(ctx, db, err, errlen);
    return md_store_purge(db, key, idx, (size_t)n, result, err, errlen);
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
    WITH_DB(ctx, db, err, errlen);
    return md_store_report(db, key, (int)index, problem, result, err, errlen);
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

const struct dyno_rpc_method md_rpc_methods[] = {
    {"object.begin", h_begin},     {"object.commit", h_commit},   {"object.abort", h_abort},
    {"object.get", h_get},         {"object.list", h_list},       {"object.evict", h_evict},
    {"object.purge", h_purge},     {"object.report", h_report},   {"container.list", h_containers},
    {"catalog.stats", h_stats},
};
const size_t md_rpc_nmethods = sizeof(md_rpc_methods) / sizeof(md_rpc_methods[0]);
