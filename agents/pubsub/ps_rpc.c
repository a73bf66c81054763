/* Pubsub RPC handlers (ps_rpc.h). */
#include "ps_rpc.h"

#include <dynostore/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ec.h"
#include "json.h"
#include "log.h"
#include "names.h"

#define PS_ORG_MAX 259      /* fits struct dyno_claims.org */
#define PS_EVENT_TYPE_MAX 64

struct ps_caller {
    const char *sub;
    const char *org; /* "" when none */
    bool admin;
};

/* "" or seg[/seg...] with valid segments, at most PS_ORG_MAX bytes. */
static bool valid_org(const char *org)
{
    size_t len = strnlen(org, PS_ORG_MAX + 1);
    if (len == 0)
        return true;
    if (len > PS_ORG_MAX)
        return false;
    char seg[DYNO_SEG_MAX + 1];
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && org[i] != '/')
            continue;
        if (i - start == 0 || i - start > DYNO_SEG_MAX)
            return false;
        memcpy(seg, org + start, i - start);
        seg[i - start] = '\0';
        if (!dyno_valid_segment(seg))
            return false;
        start = i + 1;
    }
    return true;
}

static int p_caller(const cJSON *req, struct ps_caller *c, char *err, size_t errlen)
{
    const cJSON *cj = cJSON_GetObjectItemCaseSensitive(req, "caller");
    if (!cJSON_IsObject(cj)) {
        snprintf(err, errlen, "caller is required");
        return DYNO_EUNAUTH;
    }
    c->sub = dyno_json_str(cj, "sub");
    if (!dyno_valid_segment(c->sub)) {
        snprintf(err, errlen, "caller.sub must match [A-Za-z0-9._-]{1,64}");
        return DYNO_EINVAL;
    }
    const cJSON *org = cJSON_GetObjectItemCaseSensitive(cj, "org");
    c->org = cJSON_IsString(org) ? org->valuestring : "";
    if ((org && !cJSON_IsNull(org) && !cJSON_IsString(org)) || !valid_org(c->org)) {
        snprintf(err, errlen, "caller.org must be an org path");
        return DYNO_EINVAL;
    }
    const cJSON *adm = cJSON_GetObjectItemCaseSensitive(cj, "admin");
    if (adm && !cJSON_IsNull(adm) && !cJSON_IsBool(adm)) {
        snprintf(err, errlen, "caller.admin must be true or false");
        return DYNO_EINVAL;
    }
    c->admin = cJSON_IsTrue(adm);
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

static int p_int(const cJSON *req, const char *name, int64_t def, int64_t min, int64_t max, int64_t *out,
                 char *err, size_t errlen)
{
    int rc = dyno_json_i64(req, name, out);
    if (rc == DYNO_ENOTFOUND) {
        *out = def;
        return 0;
    }
    if (rc != 0 || *out < min || *out > max) {
        snprintf(err, errlen, "%s must be an integer in %lld..%lld", name, (long long)min, (long long)max);
        return DYNO_EINVAL;
    }
    return 0;
}

static int h_create(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct ps_ctx *ctx = arg;
    struct ps_caller c;
    const char *path;
    int64_t k, m;
    int rc;
    if ((rc = p_catalog(req, &path, err, errlen)) != 0)
        return rc;
    if ((rc = p_caller(req, &c, err, errlen)) != 0)
        return rc;
    const cJSON *pub = cJSON_GetObjectItemCaseSensitive(req, "public");
    if (pub && !cJSON_IsNull(pub) && !cJSON_IsBool(pub)) {
        snprintf(err, errlen, "public must be true or false");
        return DYNO_EINVAL;
    }
    if ((rc = p_int(req, "k", ctx->default_k, 1, DYNO_EC_MAX_K, &k, err, errlen)) != 0)
        return rc;
    if ((rc = p_int(req, "m", ctx->default_m, 0, DYNO_EC_MAX_M, &m, err, errlen)) != 0)
        return rc;
    char owner[DYNO_SEG_MAX + 1];
    if (dyno_catalog_owner(path, owner, sizeof(owner)) != 0) {
        snprintf(err, errlen, "bad catalog");
        return DYNO_EINVAL;
    }
    if (strcmp(owner, c.sub) != 0 && !c.admin) {
        snprintf(err, errlen, "only %s or an admin may create catalogs under %s/", owner, owner);
        return DYNO_EFORBIDDEN;
    }
    rc = ps_store_create(ctx->store, path, owner, cJSON_IsTrue(pub), (int)k, (int)m, (int64_t)time(NULL), result,
                         err, errlen);
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
    struct ps_caller c;
    int rc;
    if ((rc = p_caller(req, &c, err, errlen)) != 0)
        return rc;
    return ps_store_list(ctx->store, c.sub, c.org, result, err, errlen);
}

static bool valid_event_type(const char *t)
{
    if (!t)
        return false;
    size_t len = strnlen(t, PS_EVENT_TYPE_MAX + 1);
    if (len == 0 || len > PS_EVENT_TYPE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = t[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* Publishes the params as they came on dyno/v1/events/<catalog> (QoS 1), with the type
 * also in the "event" user property so subscribers can filter without parsing. */
static int h_emit(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct ps_ctx *ctx = arg;
    const char *path;
    int rc;
    const char *type = dyno_json_str(req, "type");
    if (!valid_event_type(type)) {
        snprintf(err, errlen, "type must be 1..64 characters of [a-z0-9._-]");
        return DYNO_EINVAL;
    }
    if ((rc = p_catalog(req, &path, err, errlen)) != 0)
        return rc;
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(req, "object");
    if (obj && !cJSON_IsObject(obj) && !cJSON_IsNull(obj)) {
        snprintf(err, errlen, "object must be an object");
        return DYNO_EINVAL;
    }
    char topic[sizeof("dyno/v1/events/") + DYNO_CATALOG_MAX + 1];
    snprintf(topic, sizeof(topic), "dyno/v1/events/%s", path);
    size_t len = 0;
    char *text = dyno_json_print(req, &len);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    const char *props[] = {"event", type, NULL};
    rc = dyno_mq_publish(ctx->mq, topic, text, len, 1, false, props);
    free(text);
    if (rc != 0) {
        dyno_warn("event not published", "catalog=%s type=%s error=%s", path, type, dyno_err_code(rc));
        snprintf(err, errlen, "cannot publish the event");
        return rc;
    }
    dyno_debug("event published", "catalog=%s type=%s", path, type);
    *result = cJSON_CreateObject();
    return *result ? 0 : DYNO_ENOMEM;
}

const struct dyno_rpc_method ps_rpc_methods[] = {
    {"catalog.create", h_create},
    {"catalog.get", h_get},
    {"catalog.list", h_list},
    {"event.emit", h_emit},
};
const size_t ps_rpc_nmethods = sizeof(ps_rpc_methods) / sizeof(ps_rpc_methods[0]);
