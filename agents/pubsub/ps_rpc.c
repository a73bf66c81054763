/* Pubsub RPC handlers (ps_rpc.h). */
#include "ps_rpc.h"

#include <dynostore/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "agent.h"
#include "ec.h"
#include "json.h"
#include "log.h"
#include "names.h"
#include "ps_feed.h"
#include "rest.h"

#define PS_SHA256_HEX 64
#define PS_SIZE_MAX (INT64_C(1) << 53) /* exact in JSON */

/* The event types event.emit accepts. catalog.shared is pubsub's own (share.add/remove). */
static const char *const OBJECT_EVENTS[] = {"object.created", "object.evicted", "object.degraded",
                                            "object.repaired", NULL};

static int bad(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return DYNO_EINVAL;
}

/* The caller (dyno_agent_caller) as the store takes it. */
static int p_caller(const cJSON *req, struct ps_who *w, char *err, size_t errlen)
{
    struct dyno_agent_caller c;
    int rc = dyno_agent_caller(req, &c, err, errlen);
    if (rc == 0)
        *w = (struct ps_who){.sub = c.sub, .org = c.org, .admin = c.admin};
    return rc;
}

static int p_catalog(const cJSON *req, const char **out, char *err, size_t errlen)
{
    *out = dyno_json_str(req, "catalog");
    if (!dyno_valid_catalog(*out))
        return bad(err, errlen, "catalog must be <owner>/<path> with 1..8 segments of [A-Za-z0-9._-]{1,64}");
    return 0;
}

/* An optional bool: def when absent or null. */
static int p_bool(const cJSON *req, const char *name, bool def, bool *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v)) {
        snprintf(err, errlen, "%s must be true or false", name);
        return DYNO_EINVAL;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

static int p_int(const cJSON *req, const char *name, int64_t def, int64_t min, int64_t max, int64_t *out,
                 char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    int rc = dyno_json_i64(req, name, out);
    if (rc != 0 || *out < min || *out > max) {
        snprintf(err, errlen, "%s must be an integer in %lld..%lld", name, (long long)min, (long long)max);
        return DYNO_EINVAL;
    }
    return 0;
}

/* One of the strings of a NULL-terminated list, or NULL. */
static const char *p_enum(const cJSON *req, const char *name, const char *const *values)
{
    const char *v = dyno_json_str(req, name);
    for (size_t i = 0; v && values[i]; i++) {
        if (strcmp(v, values[i]) == 0)
            return values[i];
    }
    return NULL;
}

/* Owner of the catalog (its first segment) or an admin. */
static int require_owner(const char *path, const struct ps_who *c, const char *what, char *err, size_t errlen)
{
    char owner[DYNO_SEG_MAX + 1];
    if (dyno_catalog_owner(path, owner, sizeof(owner)) != 0)
        return bad(err, errlen, "bad catalog");
    if (strcmp(owner, c->sub) != 0 && !c->admin) {
        snprintf(err, errlen, "only %s or an admin may %s %s", owner, what, path);
        return DYNO_EFORBIDDEN;
    }
    return 0;
}

/* Publishes catalog.shared for one principal (access "none" on removal). */
static void emit_shared(struct ps_ctx *ctx, const char *catalog, const char *principal, const char *kind,
                        const char *access)
{
    cJSON *e = ps_event_new(PS_EVENT_CATALOG_SHARED, catalog, ps_now_ms());
    if (!e || !cJSON_AddStringToObject(e, "principal", principal) ||
        !cJSON_AddStringToObject(e, "kind", kind) || !cJSON_AddStringToObject(e, "access", access)) {
        dyno_warn("event not published", "catalog=%s type=catalog.shared error=no_memory", catalog);
        cJSON_Delete(e);
        return;
    }
    ps_feed_event(ctx, e);
    cJSON_Delete(e);
}

/* ---- catalogs ------------------------------------------------------------------------ */

static int h_create(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct ps_ctx *ctx = arg;
    struct ps_who c;
    const char *path;
    int64_t k, m;
    bool pub, restore;
    int rc;
    if ((rc = p_catalog(req, &path, err, errlen)) != 0 || (rc = p_caller(req, &c, err, errlen)) != 0 ||
        (rc = p_bool(req, "public", false, &pub, err, errlen)) != 0 ||
        (rc = p_bool(req, "restore", false, &restore, err, errlen)) != 0 ||
        (rc = p_int(req, "k", ctx->default_k, 1, DYNO_EC_MAX_K, &k, err, errlen)) != 0 ||
        (rc = p_int(req, "m", ctx->default_m, 0, DYNO_EC_MAX_M, &m, err, errlen)) != 0 ||
        (rc = require_owner(path, &c, "create catalogs under", err, errlen)) != 0)
        return rc;
    /* The site rule of the catalog's objects (docs/architecture.md, "Placement"). */
    const char *spread = dyno_json_str(req, "site_spread");
    if (cJSON_GetObjectItemCaseSensitive(req, "site_spread") &&
        (!spread || (strcmp(spread, "strict") != 0 && strcmp(spread, "relaxed") != 0)))
        return bad(err, errlen, "site_spread must be \"strict\" or \"relaxed\"");
    bool relaxed = spread && strcmp(spread, "relaxed") == 0;
    /* The REST paths reserve three words (lib/rest.h). Every creation comes here, so this is
     * the one check; an admin's restore (metadata rebuild) brings back a catalog that existed. */
    const char *why = NULL;
    if (!(restore && c.admin) && dyno_rest_catalog_creatable(path, &why) != 0)
        return bad(err, errlen, why);
    char owner[DYNO_SEG_MAX + 1];
    dyno_catalog_owner(path, owner, sizeof(owner));
    cJSON *policy = NULL;
    pthread_mutex_lock(&ctx->feed_mu);
    rc = ps_store_create(ctx->store, path, owner, pub, (int)k, (int)m, relaxed, (int64_t)time(NULL), result,
                         &policy, err, errlen);
    if (rc == 0)
        ps_feed_policy(ctx, policy);
    pthread_mutex_unlock(&ctx->feed_mu);
    cJSON_Delete(policy);
    if (rc == 0)
        dyno_debug("catalog created", "catalog=%s by=%s", path, c.sub);
    return rc;
}

static int h_get(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct ps_ctx *ctx = arg;
    const char *path;
    int rc;
    if ((rc = p_catalog(req, &path, err, errlen)) != 0)
        return rc;
    return ps_store_get(ctx->store, path, result, err, errlen);
}

static int h_list(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct ps_ctx *ctx = arg;
    struct ps_who c;
    bool pub;
    int rc;
    if ((rc = p_caller(req, &c, err, errlen)) != 0 ||
        (rc = p_bool(req, "public", false, &pub, err, errlen)) != 0)
        return rc;
    return ps_store_list(ctx->store, &c, pub, result, err, errlen);
}

/* The gateway has already checked (and, when recursive, evicted) the objects of every
 * catalog in the tree through metadata; pubsub cannot see objects. */
static int h_delete(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct ps_ctx *ctx = arg;
    struct ps_who c;
    const char *path;
    bool recursive, dry_run;
    int rc;
    if ((rc = p_catalog(req, &path, err, errlen)) != 0 || (rc = p_caller(req, &c, err, errlen)) != 0 ||
        (rc = p_bool(req, "recursive", false, &recursive, err, errlen)) != 0 ||
        (rc = p_bool(req, "dry_run", false, &dry_run, err, errlen)) != 0 ||
        (rc = require_owner(path, &c, "delete", err, errlen)) != 0)
        return rc;
    cJSON *deleted = NULL;
    pthread_mutex_lock(&ctx->feed_mu);
    rc = ps_store_delete(ctx->store, path, recursive, dry_run, (int64_t)time(NULL), &deleted, err, errlen);
    if (rc == 0 && !dry_run) {
        const cJSON *it;
        cJSON_ArrayForEach(it, deleted)
        {
            ps_feed_policy_remove(ctx, it->valuestring);
        }
    }
    pthread_mutex_unlock(&ctx->feed_mu);
    if (rc != 0)
        return rc;
    cJSON *res = cJSON_CreateObject();
    if (!res || !cJSON_AddBoolToObject(res, "dry_run", dry_run)) {
        cJSON_Delete(res);
        cJSON_Delete(deleted);
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    cJSON_AddItemToObject(res, "deleted", deleted);
    if (!dry_run)
        dyno_info("catalog deleted", "catalog=%s catalogs=%d by=%s", path, cJSON_GetArraySize(deleted),
                  c.sub);
    *result = res;
    return 0;
}

/* ---- shares -------------------------------------------------------------------------- */

static const char *const KINDS[] = {"user", "org", NULL};
static const char *const ACCESSES[] = {"read", "write", NULL};

static int p_principal(const cJSON *req, const char *kind, const char **out, char *err, size_t errlen)
{
    *out = dyno_json_str(req, "principal");
    bool ok = *out && (kind == NULL   ? dyno_valid_segment(*out) || dyno_agent_valid_org(*out, false)
                       : *kind == 'u' ? dyno_valid_segment(*out)
                                      : dyno_agent_valid_org(*out, false));
    if (!ok)
        return bad(err, errlen,
                   "principal must be a user name or an org path of [A-Za-z0-9._-]{1,64} segments");
    return 0;
}

static int h_share_add(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct ps_ctx *ctx = arg;
    struct ps_who c;
    const char *path, *principal;
    int rc;
    const char *kind = p_enum(req, "kind", KINDS);
    const char *access = p_enum(req, "access", ACCESSES);
    if ((rc = p_catalog(req, &path, err, errlen)) != 0 || (rc = p_caller(req, &c, err, errlen)) != 0)
        return rc;
    if (!kind)
        return bad(err, errlen, "kind must be user or org");
    if (!access)
        return bad(err, errlen, "access must be read or write");
    if ((rc = p_principal(req, kind, &principal, err, errlen)) != 0 ||
        (rc = require_owner(path, &c, "share", err, errlen)) != 0)
        return rc;
    cJSON *policy = NULL;
    pthread_mutex_lock(&ctx->feed_mu);
    rc = ps_store_share_add(ctx->store, path, principal, kind, access, &policy, err, errlen);
    if (rc == 0) {
        ps_feed_policy(ctx, policy);
        emit_shared(ctx, path, principal, kind, access);
    }
    pthread_mutex_unlock(&ctx->feed_mu);
    if (rc != 0)
        return rc;
    dyno_info("catalog shared", "catalog=%s principal=%s kind=%s access=%s by=%s", path, principal, kind,
              access, c.sub);
    *result = policy;
    return 0;
}

static int h_share_remove(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct ps_ctx *ctx = arg;
    struct ps_who c;
    const char *path, *principal;
    int rc;
    const cJSON *kj = cJSON_GetObjectItemCaseSensitive(req, "kind");
    const char *kind = p_enum(req, "kind", KINDS);
    if ((rc = p_catalog(req, &path, err, errlen)) != 0 || (rc = p_caller(req, &c, err, errlen)) != 0)
        return rc;
    if (kj && !cJSON_IsNull(kj) && !kind)
        return bad(err, errlen, "kind must be user or org when given");
    if ((rc = p_principal(req, kind, &principal, err, errlen)) != 0 ||
        (rc = require_owner(path, &c, "unshare", err, errlen)) != 0)
        return rc;
    cJSON *policy = NULL, *removed = NULL;
    pthread_mutex_lock(&ctx->feed_mu);
    rc = ps_store_share_remove(ctx->store, path, principal, kind, &removed, &policy, err, errlen);
    if (rc == 0) {
        ps_feed_policy(ctx, policy);
        const cJSON *it;
        cJSON_ArrayForEach(it, removed)
        {
            emit_shared(ctx, path, dyno_json_str(it, "principal"), dyno_json_str(it, "kind"), "none");
        }
    }
    pthread_mutex_unlock(&ctx->feed_mu);
    if (rc != 0)
        return rc;
    cJSON_AddItemToObject(policy, "removed", removed);
    dyno_info("catalog unshared", "catalog=%s principal=%s by=%s", path, principal, c.sub);
    *result = policy;
    return 0;
}

/* ---- subscriptions ------------------------------------------------------------------- */

static cJSON *sub_result(const char *path, bool subscribed)
{
    cJSON *res = cJSON_CreateObject();
    if (!res || !cJSON_AddStringToObject(res, "catalog", path) ||
        !cJSON_AddBoolToObject(res, "subscribed", subscribed)) {
        cJSON_Delete(res);
        return NULL;
    }
    return res;
}

static int h_sub_add(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct ps_ctx *ctx = arg;
    struct ps_who c;
    const char *path;
    int rc;
    if ((rc = p_catalog(req, &path, err, errlen)) != 0 || (rc = p_caller(req, &c, err, errlen)) != 0)
        return rc;
    rc = ps_store_sub_add(ctx->store, path, &c, (int64_t)time(NULL), err, errlen);
    if (rc != 0)
        return rc;
    *result = sub_result(path, true);
    return *result ? 0 : DYNO_ENOMEM;
}

static int h_sub_remove(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct ps_ctx *ctx = arg;
    struct ps_who c;
    const char *path;
    bool removed = false;
    int rc;
    if ((rc = p_catalog(req, &path, err, errlen)) != 0 || (rc = p_caller(req, &c, err, errlen)) != 0)
        return rc;
    rc = ps_store_sub_remove(ctx->store, path, c.sub, &removed, err, errlen);
    if (rc != 0)
        return rc;
    *result = sub_result(path, false);
    if (!*result || !cJSON_AddBoolToObject(*result, "removed", removed)) {
        cJSON_Delete(*result);
        *result = NULL;
        return DYNO_ENOMEM;
    }
    return 0;
}

static int h_sub_list(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct ps_ctx *ctx = arg;
    struct ps_who c;
    int rc;
    if ((rc = p_caller(req, &c, err, errlen)) != 0)
        return rc;
    return ps_store_sub_list(ctx->store, c.sub, result, err, errlen);
}

/* ---- events -------------------------------------------------------------------------- */

static bool valid_sha256(const char *s)
{
    if (!s || strnlen(s, PS_SHA256_HEX + 1) != PS_SHA256_HEX)
        return false;
    for (size_t i = 0; i < PS_SHA256_HEX; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

/* Copies the four object fields, validated, into a new object (schemas/event-object.*). */
static int p_event_object(const cJSON *req, cJSON **out, char *err, size_t errlen)
{
    *out = NULL;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(req, "object");
    if (!cJSON_IsObject(o))
        return bad(err, errlen, "object must be {key, name, size, sha256}");
    const char *key = dyno_json_str(o, "key");
    const char *name = dyno_json_str(o, "name");
    const char *sha = dyno_json_str(o, "sha256");
    int64_t size = -1;
    if (!dyno_valid_key(key))
        return bad(err, errlen, "object.key must be 32 lowercase hex characters");
    if (!dyno_valid_name(name))
        return bad(err, errlen, "object.name must be a valid object name");
    if (dyno_json_i64(o, "size", &size) != 0 || size < 0 || size > PS_SIZE_MAX)
        return bad(err, errlen, "object.size must be an integer >= 0");
    if (!valid_sha256(sha))
        return bad(err, errlen, "object.sha256 must be 64 lowercase hex characters");
    cJSON *c = cJSON_CreateObject();
    if (!c || !cJSON_AddStringToObject(c, "key", key) || !cJSON_AddStringToObject(c, "name", name) ||
        !dyno_json_add_i64(c, "size", size) || !cJSON_AddStringToObject(c, "sha256", sha)) {
        cJSON_Delete(c);
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    *out = c;
    return 0;
}

/*
 * Publishes {type, catalog, time, object:{key, name, size, sha256}} on
 * dyno/v1/events/<catalog>. Only the validated fields go out, whatever else came in; an
 * invalid event is dropped and logged (a notification has nobody to answer).
 */
static int h_emit(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct ps_ctx *ctx = arg;
    const char *path = NULL;
    cJSON *obj = NULL, *e = NULL;
    const char *type = p_enum(req, "type", OBJECT_EVENTS);
    int rc = 0;
    if (!type)
        rc = bad(err, errlen,
                 "type must be object.created, object.evicted, object.degraded or object.repaired");
    if (rc == 0)
        rc = p_catalog(req, &path, err, errlen);
    if (rc == 0)
        rc = p_event_object(req, &obj, err, errlen);
    if (rc != 0) {
        char q[300];
        dyno_warn("event dropped", "error=%s", dyno_log_q(q, sizeof(q), err));
        return rc;
    }
    e = ps_event_new(type, path, ps_now_ms());
    if (!e) {
        cJSON_Delete(obj);
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    cJSON_AddItemToObject(e, "object", obj);
    rc = ps_feed_event(ctx, e);
    cJSON_Delete(e);
    if (rc != 0) {
        snprintf(err, errlen, "cannot publish the event");
        return rc;
    }
    *result = cJSON_CreateObject();
    return *result ? 0 : DYNO_ENOMEM;
}

const struct dyno_rpc_method ps_rpc_methods[] = {
    {"catalog.create", h_create},      {"catalog.get", h_get},
    {"catalog.list", h_list},          {"catalog.delete", h_delete},
    {"share.add", h_share_add},        {"share.remove", h_share_remove},
    {"subscription.add", h_sub_add},   {"subscription.remove", h_sub_remove},
    {"subscription.list", h_sub_list}, {"event.emit", h_emit},
};
const size_t ps_rpc_nmethods = sizeof(ps_rpc_methods) / sizeof(ps_rpc_methods[0]);
