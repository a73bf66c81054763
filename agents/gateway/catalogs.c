/*
 * Catalog, container, identity and liveness routes: small JSON in, RPC, small JSON out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "json.h"
#include "log.h"
#include "mq.h"
#include "rest.h"

/* Replies with the RPC's result, or its error. Takes params. */
static enum MHD_Result gw_rpc_reply(struct gw_req *r, const char *service, const char *method, cJSON *params,
                                    unsigned status)
{
    char msg[400];
    cJSON *res = NULL;
    int rc = gw_rpc(r->gw, service, method, params, &res, msg, sizeof(msg));
    cJSON_Delete(params);
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    enum MHD_Result ret = gw_reply_json(r, status, res);
    cJSON_Delete(res);
    return ret;
}

enum MHD_Result gw_catalog_create(struct gw_req *r)
{
    char owner[DYNO_SEG_MAX + 1] = "";
    dyno_catalog_owner(r->catalog, owner, sizeof(owner));
    if (!r->claims.admin && strcmp(owner, r->claims.sub) != 0)
        return gw_reply_error(r, DYNO_EFORBIDDEN, "only %s or an admin may create catalogs under %s", owner,
                              owner);
    cJSON *body = NULL;
    if (r->body.len > 0) {
        if (dyno_json_parse(r->body.data, r->body.len, GW_JSON_BODY_MAX, &body) || !cJSON_IsObject(body)) {
            cJSON_Delete(body);
            return gw_reply_error(r, DYNO_EINVAL,
                                  "body must be a JSON object {public?, resilience?:{k,m}, site_spread?}");
        }
    }
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "catalog", r->catalog);
    const cJSON *pub = cJSON_GetObjectItemCaseSensitive(body, "public");
    if (pub) {
        if (!cJSON_IsBool(pub))
            goto bad;
        cJSON_AddBoolToObject(params, "public", cJSON_IsTrue(pub));
    }
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(body, "resilience");
    if (res) {
        int64_t k, m;
        if (!cJSON_IsObject(res) || dyno_json_i64(res, "k", &k) || dyno_json_i64(res, "m", &m) || k < 1 ||
            k > DYNO_EC_MAX_K || m < 0 || m > DYNO_EC_MAX_M || k + m > GW_MAX_N)
            goto bad;
        dyno_json_add_i64(params, "k", k);
        dyno_json_add_i64(params, "m", m);
    }
    const cJSON *spread = cJSON_GetObjectItemCaseSensitive(body, "site_spread");
    if (spread) {
        if (!cJSON_IsString(spread) ||
            (strcmp(spread->valuestring, "strict") != 0 && strcmp(spread->valuestring, "relaxed") != 0))
            goto bad;
        cJSON_AddStringToObject(params, "site_spread", spread->valuestring);
    }
    cJSON_AddItemToObject(params, "caller", gw_caller_json(r));
    cJSON_Delete(body);
    return gw_rpc_reply(r, "pubsub", "catalog.create", params, 201);
bad:
    cJSON_Delete(body);
    cJSON_Delete(params);
    return gw_reply_error(r, DYNO_EINVAL,
                          "bad body: public is a bool, resilience is {k: 1..32, m: 0..16}, site_spread is "
                          "\"strict\" or \"relaxed\"");
}

enum MHD_Result gw_catalog_info(struct gw_req *r)
{
    char msg[400];
    cJSON *cat = NULL, *stats = NULL;
    int rc = gw_catalog_check(r, r->catalog, false, &cat, msg, sizeof(msg));
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "catalog", r->catalog);
    rc = gw_rpc(r->gw, "metadata", "catalog.stats", params, &stats, msg, sizeof(msg));
    cJSON_Delete(params);
    if (rc) {
        cJSON_Delete(cat);
        return gw_reply_error(r, rc, "%s", msg);
    }
    int64_t v;
    if (dyno_json_i64(stats, "objects", &v) == 0)
        dyno_json_add_i64(cat, "objects", v);
    if (dyno_json_i64(stats, "bytes", &v) == 0)
        dyno_json_add_i64(cat, "bytes", v);
    enum MHD_Result ret = gw_reply_json(r, 200, cat);
    cJSON_Delete(stats);
    cJSON_Delete(cat);
    return ret;
}

/* A boolean query flag: "1", "true" or "yes" (absent: false). */
static bool gw_query_flag(struct gw_req *r, const char *name)
{
    char v[8];
    if (gw_query_arg(r, name, v, sizeof(v)))
        return false;
    return dyno_rest_flag(v);
}

enum MHD_Result gw_catalog_list(struct gw_req *r)
{
    cJSON *params = cJSON_CreateObject();
    cJSON_AddItemToObject(params, "caller", gw_caller_json(r));
    if (gw_query_flag(r, "public"))
        cJSON_AddBoolToObject(params, "public", true);
    return gw_rpc_reply(r, "pubsub", "catalog.list", params, 200);
}

int gw_catalog_delete_rpc(struct gw_req *r, bool recursive, bool dry_run, cJSON **res, char *msg, size_t cap)
{
    cJSON *params = cJSON_CreateObject();
    if (!params)
        return DYNO_ENOMEM;
    cJSON_AddStringToObject(params, "catalog", r->catalog);
    cJSON_AddBoolToObject(params, "recursive", recursive);
    cJSON_AddBoolToObject(params, "dry_run", dry_run);
    cJSON_AddItemToObject(params, "caller", gw_caller_json(r));
    int rc = gw_rpc(r->gw, "pubsub", "catalog.delete", params, res, msg, cap);
    cJSON_Delete(params);
    return rc;
}

/* Evicts every object of catalog, page by page; *n counts them. */
static int gw_catalog_evict_all(struct gw_req *r, const char *catalog, int64_t *n, char *msg, size_t cap)
{
    char after[DYNO_NAME_MAX + 1] = "";
    for (;;) {
        cJSON *params = cJSON_CreateObject(), *page = NULL;
        if (!params)
            return DYNO_ENOMEM;
        cJSON_AddStringToObject(params, "catalog", catalog);
        if (after[0])
            cJSON_AddStringToObject(params, "after", after);
        else
            cJSON_AddNullToObject(params, "after");
        dyno_json_add_i64(params, "limit", 1000);
        int rc = gw_rpc(r->gw, "metadata", "object.list", params, &page, msg, cap);
        cJSON_Delete(params);
        if (rc)
            return rc;
        cJSON *objs = cJSON_GetObjectItemCaseSensitive(page, "objects");
        cJSON *o;
        cJSON_ArrayForEach(o, objs)
        {
            const char *key = dyno_json_str(o, "key");
            const char *name = dyno_json_str(o, "name");
            if (!dyno_valid_key(key) || !name || strlen(name) > DYNO_NAME_MAX)
                continue;
            snprintf(after, sizeof(after), "%s", name);
            cJSON_AddStringToObject(o, "catalog", catalog);
            rc = gw_evict_object(r->gw, r->conn, key, o, msg, cap);
            if (rc == DYNO_ENOTFOUND)
                continue; /* evicted meanwhile by someone else */
            if (rc) {
                cJSON_Delete(page);
                return rc;
            }
            (*n)++;
        }
        const char *next = dyno_json_str(page, "next");
        bool more = next && cJSON_GetArraySize(objs) > 0;
        if (more)
            snprintf(after, sizeof(after), "%s", next);
        cJSON_Delete(page);
        if (!more)
            return 0;
    }
}

/*
 * DELETE /v1/catalogs/<owner>/<path>[?recursive=1] (protocol.md §3 catalog.delete): pubsub
 * cannot see objects, so the gateway learns the tree with a dry run (which also checks
 * that the caller may delete), counts the objects of each catalog, refuses a non-empty
 * tree unless recursive, evicts every object (each emitting object.evicted), then deletes.
 */
enum MHD_Result gw_catalog_delete(struct gw_req *r)
{
    char msg[1024];
    bool recursive = gw_query_flag(r, "recursive");
    cJSON *dry = NULL, *res = NULL;
    int64_t total = 0, evicted = 0;
    int rc = gw_catalog_delete_rpc(r, recursive, true, &dry, msg, sizeof(msg));
    if (rc == DYNO_ECONFLICT)
        return gw_reply_error(r, rc, "catalog %s has sub-catalogs: delete them first or use ?recursive=1",
                              r->catalog);
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    const cJSON *tree = cJSON_GetObjectItemCaseSensitive(dry, "deleted");
    const cJSON *it;
    cJSON_ArrayForEach(it, tree)
    {
        if (!cJSON_IsString(it) || !dyno_valid_catalog(it->valuestring))
            continue;
        cJSON *params = cJSON_CreateObject(), *stats = NULL;
        cJSON_AddStringToObject(params, "catalog", it->valuestring);
        rc = gw_rpc(r->gw, "metadata", "catalog.stats", params, &stats, msg, sizeof(msg));
        cJSON_Delete(params);
        int64_t n = 0;
        if (rc == 0 && dyno_json_i64(stats, "objects", &n) == 0 && n > 0)
            total += n;
        cJSON_Delete(stats);
        if (rc)
            goto fail;
        if (!recursive && total > 0) {
            rc = DYNO_ECONFLICT;
            snprintf(msg, sizeof(msg), "catalog %s holds %lld object(s): evict them or use ?recursive=1",
                     r->catalog, (long long)total);
            goto fail;
        }
    }
    if (recursive) {
        cJSON_ArrayForEach(it, tree)
        {
            if (!cJSON_IsString(it) || !dyno_valid_catalog(it->valuestring))
                continue;
            if ((rc = gw_catalog_evict_all(r, it->valuestring, &evicted, msg, sizeof(msg))) != 0)
                goto fail;
        }
    }
    rc = gw_catalog_delete_rpc(r, recursive, false, &res, msg, sizeof(msg));
    if (rc)
        goto fail;
    cJSON_DeleteItemFromObjectCaseSensitive(res, "dry_run");
    cJSON_AddStringToObject(res, "catalog", r->catalog);
    dyno_json_add_i64(res, "evicted", evicted);
    dyno_info("catalog deleted", "catalog=%s recursive=%d evicted=%lld user=%s", r->catalog, recursive,
              (long long)evicted, r->claims.sub);
    enum MHD_Result ret = gw_reply_json(r, 200, res);
    cJSON_Delete(dry);
    cJSON_Delete(res);
    return ret;
fail:
    cJSON_Delete(dry);
    cJSON_Delete(res);
    return gw_reply_error(r, rc, "%s", msg);
}

/* POST .../~/shares {"user": U | "org": O, "access": "read"|"write"} -> pubsub share.add. */
enum MHD_Result gw_share_add(struct gw_req *r)
{
    cJSON *body = NULL;
    if (dyno_json_parse(r->body.data ? r->body.data : "", r->body.len, GW_JSON_BODY_MAX, &body) ||
        !cJSON_IsObject(body)) {
        cJSON_Delete(body);
        return gw_reply_error(r, DYNO_EINVAL,
                              "body must be {\"user\"|\"org\": ..., \"access\": \"read\"|\"write\"}");
    }
    const char *user = dyno_json_str(body, "user");
    const char *org = dyno_json_str(body, "org");
    const char *access = dyno_json_str(body, "access");
    if (!access)
        access = "read";
    if ((user != NULL) == (org != NULL) || (strcmp(access, "read") != 0 && strcmp(access, "write") != 0)) {
        cJSON_Delete(body);
        return gw_reply_error(r, DYNO_EINVAL, "give exactly one of user or org, and access read or write");
    }
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "catalog", r->catalog);
    cJSON_AddStringToObject(params, "principal", user ? user : org);
    cJSON_AddStringToObject(params, "kind", user ? "user" : "org");
    cJSON_AddStringToObject(params, "access", access);
    cJSON_AddItemToObject(params, "caller", gw_caller_json(r));
    cJSON_Delete(body);
    return gw_rpc_reply(r, "pubsub", "share.add", params, 200);
}

/* DELETE .../~/shares/<principal>[?kind=user|org] -> pubsub share.remove. */
enum MHD_Result gw_share_remove(struct gw_req *r)
{
    char kind[8];
    int rc = gw_query_arg(r, "kind", kind, sizeof(kind));
    if (rc == 0 && strcmp(kind, "user") != 0 && strcmp(kind, "org") != 0)
        return gw_reply_error(r, DYNO_EINVAL, "kind must be user or org");
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "catalog", r->catalog);
    cJSON_AddStringToObject(params, "principal", r->name);
    if (rc == 0)
        cJSON_AddStringToObject(params, "kind", kind);
    cJSON_AddItemToObject(params, "caller", gw_caller_json(r));
    return gw_rpc_reply(r, "pubsub", "share.remove", params, 200);
}

static enum MHD_Result gw_subscription(struct gw_req *r, const char *method)
{
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "catalog", r->catalog);
    cJSON_AddItemToObject(params, "caller", gw_caller_json(r));
    return gw_rpc_reply(r, "pubsub", method, params, 200);
}

enum MHD_Result gw_subscription_add(struct gw_req *r)
{
    return gw_subscription(r, "subscription.add");
}

enum MHD_Result gw_subscription_remove(struct gw_req *r)
{
    return gw_subscription(r, "subscription.remove");
}

enum MHD_Result gw_containers(struct gw_req *r)
{
    if (!r->claims.admin)
        return gw_reply_error(r, DYNO_EFORBIDDEN, "containers are for admins");
    return gw_rpc_reply(r, "metadata", "container.list", cJSON_CreateObject(), 200);
}

int gw_login_call(struct gw_req *r, cJSON **res, int *retry_s, char *msg, size_t cap)
{
    *res = NULL;
    *retry_s = 0;
    cJSON *body = NULL;
    if (dyno_json_parse(r->body.data ? r->body.data : "", r->body.len, GW_JSON_BODY_MAX, &body) ||
        !dyno_json_str(body, "username") || !dyno_json_str(body, "password")) {
        cJSON_Delete(body);
        snprintf(msg, cap, "body must be {\"username\":...,\"password\":...}");
        return DYNO_EINVAL;
    }
    const char *user = dyno_json_str(body, "username");
    if (!dyno_valid_segment(user)) {
        cJSON_Delete(body);
        snprintf(msg, cap, "bad username or password");
        return DYNO_EUNAUTH;
    }
    int wait_s = 1; /* each attempt costs dyno-auth a PBKDF2: throttled before the call */
    if (!gw_login_allowed(r, user, &wait_s)) {
        cJSON_Delete(body);
        *retry_s = wait_s < 1 ? 1 : wait_s;
        snprintf(msg, cap, "too many login attempts; retry in %d s", *retry_s);
        return DYNO_ELIMIT;
    }
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "username", user);
    cJSON_AddStringToObject(params, "password", dyno_json_str(body, "password"));
    cJSON *pw = cJSON_GetObjectItemCaseSensitive(body, "password");
    gw_wipe(pw->valuestring, strlen(pw->valuestring));
    cJSON_Delete(body);
    int rc = gw_rpc(r->gw, "auth", "auth.login", params, res, msg, cap);
    pw = cJSON_GetObjectItemCaseSensitive(params, "password");
    gw_wipe(pw->valuestring, strlen(pw->valuestring));
    cJSON_Delete(params);
    return rc;
}

enum MHD_Result gw_login(struct gw_req *r)
{
    char msg[400];
    cJSON *res = NULL;
    int retry_s = 0;
    int rc = gw_login_call(r, &res, &retry_s, msg, sizeof(msg));
    if (rc == DYNO_ELIMIT && retry_s > 0)
        return gw_reply_limited(r, retry_s, "%s", msg);
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    enum MHD_Result ret = gw_reply_json(r, 200, res);
    cJSON_Delete(res);
    return ret;
}

enum MHD_Result gw_whoami(struct gw_req *r)
{
    /* {user, org, admin, expires_at} (SPEC §4), plus the claims' own names (sub, exp, ...) */
    cJSON *o = gw_caller_json(r);
    cJSON_AddStringToObject(o, "user", r->claims.sub);
    cJSON_AddStringToObject(o, "role", r->claims.role);
    dyno_json_add_i64(o, "expires_at", r->claims.exp);
    dyno_json_add_i64(o, "exp", r->claims.exp);
    cJSON_AddStringToObject(o, "jti", r->claims.jti);
    enum MHD_Result ret = gw_reply_json(r, 200, o);
    cJSON_Delete(o);
    return ret;
}

enum MHD_Result gw_healthz(struct gw_req *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddBoolToObject(o, "broker", r->gw->mq && dyno_mq_connected(r->gw->mq));
    /* false until the revocation document is applied: user tokens get 503 meanwhile */
    cJSON_AddBoolToObject(o, "revocations", dyno_verifier_fed(r->gw->verifier));
    enum MHD_Result ret = gw_reply_json(r, 200, o);
    cJSON_Delete(o);
    return ret;
}

enum MHD_Result gw_metrics(struct gw_req *r)
{
    struct dyno_buf b;
    dyno_buf_init(&b, 1 << 20);
    if (dyno_metrics_render(r->gw->metrics, GW_M_COUNT, &b) || gw_rtt_render(&r->gw->rtt, gw_now_ms(), &b)) {
        dyno_buf_free(&b);
        return gw_reply_error(r, DYNO_ENOMEM, "cannot render metrics");
    }
    size_t len = 0;
    char *txt = dyno_buf_take(&b, &len);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, txt ? txt : (char *)"", txt ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4");
    return gw_reply_response(r, 200, resp);
}
