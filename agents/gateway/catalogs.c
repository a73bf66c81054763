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
            return gw_reply_error(r, DYNO_EINVAL, "body must be a JSON object {public?, resilience?:{k,m}}");
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
    cJSON_AddItemToObject(params, "caller", gw_caller_json(r));
    cJSON_Delete(body);
    return gw_rpc_reply(r, "pubsub", "catalog.create", params, 201);
bad:
    cJSON_Delete(body);
    cJSON_Delete(params);
    return gw_reply_error(r, DYNO_EINVAL, "bad body: public is a bool, resilience is {k: 1..32, m: 0..16}");
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

enum MHD_Result gw_catalog_list(struct gw_req *r)
{
    cJSON *params = cJSON_CreateObject();
    cJSON_AddItemToObject(params, "caller", gw_caller_json(r));
    return gw_rpc_reply(r, "pubsub", "catalog.list", params, 200);
}

enum MHD_Result gw_containers(struct gw_req *r)
{
    if (!r->claims.admin)
        return gw_reply_error(r, DYNO_EFORBIDDEN, "containers are for admins");
    return gw_rpc_reply(r, "metadata", "container.list", cJSON_CreateObject(), 200);
}

enum MHD_Result gw_login(struct gw_req *r)
{
    cJSON *body = NULL;
    if (dyno_json_parse(r->body.data ? r->body.data : "", r->body.len, GW_JSON_BODY_MAX, &body) ||
        !dyno_json_str(body, "username") || !dyno_json_str(body, "password")) {
        cJSON_Delete(body);
        return gw_reply_error(r, DYNO_EINVAL, "body must be {\"username\":...,\"password\":...}");
    }
    const char *user = dyno_json_str(body, "username");
    if (!dyno_valid_segment(user)) {
        cJSON_Delete(body);
        return gw_reply_error(r, DYNO_EUNAUTH, "bad username or password");
    }
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "username", user);
    cJSON_AddStringToObject(params, "password", dyno_json_str(body, "password"));
    cJSON_Delete(body);
    char msg[400];
    cJSON *res = NULL;
    int rc = gw_rpc(r->gw, "auth", "auth.login", params, &res, msg, sizeof(msg));
    cJSON_Delete(params);
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    enum MHD_Result ret = gw_reply_json(r, 200, res);
    cJSON_Delete(res);
    return ret;
}

enum MHD_Result gw_whoami(struct gw_req *r)
{
    cJSON *o = gw_caller_json(r);
    cJSON_AddStringToObject(o, "role", r->claims.role);
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
    enum MHD_Result ret = gw_reply_json(r, 200, o);
    cJSON_Delete(o);
    return ret;
}

enum MHD_Result gw_metrics(struct gw_req *r)
{
    struct dyno_buf b;
    dyno_buf_init(&b, 1 << 20);
    if (dyno_metrics_render(r->gw->metrics, GW_M_COUNT, &b)) {
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
