/*
 * Identity routes that dyno-auth answers (SPEC §4, protocol.md §3 "auth"):
 *
 *   POST /v1/users          admin: {username, password, org?, admin?} -> 201 {username, org, admin}
 *   GET  /v1/users          admin: {users:[...]}
 *   POST /v1/tokens         {ttl?, name?} -> 201 {token, jti, id, expires_at, name}: a long-lived
 *                           API token for the caller (what the user is now, per dyno-auth)
 *   GET  /v1/tokens         {tokens:[...]} of the caller (?user=U: another user's, admin only)
 *   DELETE /v1/tokens/<id>  revokes a token of the caller (any token for an admin)
 *
 * Every call carries the caller established from the verified token; dyno-auth checks it
 * again (admin-only methods, own tokens only). The gateway checks what it can first, so
 * a refused request costs no RPC. When dyno-auth does not answer, the route is a 503 with
 * Retry-After (lib/httpd.c adds it for DYNO_EUNAVAIL); tokens already issued keep working
 * everywhere because verification is offline (auth.c). Tokens in replies are never logged:
 * the request log (rest.c) has the method, path and status only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "httpd.h"
#include "json.h"
#include "log.h"
#include "mq.h"
#include "names.h"
#include "rest.h"

#define GW_TTL_MAX (100LL * 365 * 86400) /* far beyond any api_token_ttl; dyno-auth caps it */

int gw_auth_rpc(struct gw_req *r, const char *method, const cJSON *params, cJSON **res, char *msg, size_t cap)
{
    int rc = gw_rpc(r->gw, "auth", method, params, res, msg, cap);
    /* Only when auth was not reached or did not answer (the message is lib/mq's "auth.<method>:
     * ..." or gw_rpc's "the auth service ..."): an unavailable that auth answered itself (a
     * revocation it could not publish) keeps auth's message. */
    char mq_prefix[96];
    snprintf(mq_prefix, sizeof(mq_prefix), "auth.%s:", method);
    bool transport = strncmp(msg, "the auth service", strlen("the auth service")) == 0 ||
                     strncmp(msg, mq_prefix, strlen(mq_prefix)) == 0;
    if (rc == DYNO_EUNAVAIL && transport)
        snprintf(msg, cap,
                 "the auth service is unavailable (%s did not answer); tokens already issued keep "
                 "working, retry later",
                 method);
    return rc;
}

enum MHD_Result gw_auth_error(struct gw_req *r, int rc, const char *msg)
{
    if (rc != DYNO_ELIMIT)
        return gw_reply_error(r, rc, "%s", msg);
    const char *at = strstr(msg, "retry after ");
    uint64_t secs = 1;
    if (at) {
        at += strlen("retry after ");
        if (dyno_rest_dec(at, strspn(at, "0123456789"), &secs) || secs < 1 || secs > 3600)
            secs = 1;
    }
    const struct dyno_http_error e = {.err = rc, .retry_after = (unsigned)secs};
    return gw_reply_err(r, &e, "%s", msg);
}

enum MHD_Result gw_auth_reply(struct gw_req *r, const char *method, cJSON *params, unsigned status)
{
    char msg[400];
    cJSON *res = NULL;
    int rc = gw_auth_rpc(r, method, params, &res, msg, sizeof(msg));
    cJSON_Delete(params);
    if (rc)
        return gw_auth_error(r, rc, msg);
    enum MHD_Result ret = gw_reply_json(r, status, res);
    cJSON_Delete(res);
    return ret;
}

cJSON *gw_params_with_caller(const struct gw_req *r)
{
    cJSON *params = cJSON_CreateObject();
    cJSON *caller = gw_caller_json(r);
    if (!params || !caller) {
        cJSON_Delete(params);
        cJSON_Delete(caller);
        return NULL;
    }
    cJSON_AddItemToObject(params, "caller", caller);
    return params;
}

int gw_body_object(struct gw_req *r, bool empty_ok, cJSON **out)
{
    *out = NULL;
    if (r->body.len == 0 && empty_ok) {
        *out = cJSON_CreateObject();
        return *out ? 0 : DYNO_ENOMEM;
    }
    if (dyno_json_parse(r->body.data ? r->body.data : "", r->body.len, GW_JSON_BODY_MAX, out) ||
        !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return DYNO_EINVAL;
    }
    return 0;
}

/* Wipes the password member of a parsed body before it is freed. */
static void gw_wipe_password(cJSON *o)
{
    cJSON *pw = cJSON_GetObjectItemCaseSensitive(o, "password");
    if (cJSON_IsString(pw) && pw->valuestring)
        gw_wipe(pw->valuestring, strlen(pw->valuestring));
}

static enum MHD_Result gw_need_admin(struct gw_req *r)
{
    return gw_reply_error(r, DYNO_EFORBIDDEN, "only an admin may manage users");
}

enum MHD_Result gw_user_create(struct gw_req *r)
{
    cJSON *body = NULL, *params = NULL;
    enum MHD_Result ret;
    const char *why = NULL;

    if (!r->claims.admin)
        return gw_need_admin(r);
    if (gw_body_object(r, false, &body))
        return gw_reply_error(r, DYNO_EINVAL,
                              "body must be a JSON object {username, password, org?, admin?}");
    const char *user = dyno_json_str(body, "username");
    const cJSON *pw = cJSON_GetObjectItemCaseSensitive(body, "password");
    const cJSON *org = cJSON_GetObjectItemCaseSensitive(body, "org");
    const cJSON *adm = cJSON_GetObjectItemCaseSensitive(body, "admin");
    if (!user || !dyno_valid_segment(user))
        why = "username must match [A-Za-z0-9._-]{1,64}";
    else if (!cJSON_IsString(pw))
        why = "password must be a string";
    else if (org && !cJSON_IsNull(org) && !cJSON_IsString(org))
        why = "org must be a string (an org path such as lab/ct)";
    else if (adm && !cJSON_IsNull(adm) && !cJSON_IsBool(adm))
        why = "admin must be true or false";
    if (why) {
        ret = gw_reply_error(r, DYNO_EINVAL, "%s", why);
        goto out;
    }
    params = gw_params_with_caller(r);
    if (!params || !cJSON_AddStringToObject(params, "username", user) ||
        !cJSON_AddStringToObject(params, "password", pw->valuestring) ||
        (cJSON_IsString(org) && !cJSON_AddStringToObject(params, "org", org->valuestring)) ||
        (cJSON_IsBool(adm) && !cJSON_AddBoolToObject(params, "admin", cJSON_IsTrue(adm)))) {
        ret = gw_reply_error(r, DYNO_ENOMEM, "out of memory");
        goto out;
    }
    char msg[400];
    cJSON *res = NULL;
    int rc = gw_auth_rpc(r, "user.create", params, &res, msg, sizeof(msg));
    if (rc) {
        ret = gw_reply_error(r, rc, "%s", msg);
        goto out;
    }
    ret = gw_reply_json(r, 201, res);
    cJSON_Delete(res);
out:
    gw_wipe_password(params);
    gw_wipe_password(body);
    cJSON_Delete(params);
    cJSON_Delete(body);
    return ret;
}

enum MHD_Result gw_user_list(struct gw_req *r)
{
    if (!r->claims.admin)
        return gw_need_admin(r);
    cJSON *params = gw_params_with_caller(r);
    if (!params)
        return gw_reply_error(r, DYNO_ENOMEM, "out of memory");
    return gw_auth_reply(r, "user.list", params, 200);
}

enum MHD_Result gw_token_create(struct gw_req *r)
{
    cJSON *body = NULL, *params = NULL, *res = NULL;
    enum MHD_Result ret;
    int64_t ttl = 0;

    if (gw_body_object(r, true, &body))
        return gw_reply_error(r, DYNO_EINVAL, "body must be empty or a JSON object {ttl?, name?}");
    const cJSON *tj = cJSON_GetObjectItemCaseSensitive(body, "ttl");
    const cJSON *nj = cJSON_GetObjectItemCaseSensitive(body, "name");
    if (tj && !cJSON_IsNull(tj) && (dyno_json_i64(body, "ttl", &ttl) || ttl < 1 || ttl > GW_TTL_MAX)) {
        ret = gw_reply_error(r, DYNO_EINVAL, "ttl must be a positive number of seconds");
        goto out;
    }
    if (nj && !cJSON_IsNull(nj) && !cJSON_IsString(nj)) {
        ret = gw_reply_error(r, DYNO_EINVAL, "name must be a string");
        goto out;
    }
    params = gw_params_with_caller(r);
    if (!params || (ttl > 0 && !dyno_json_add_i64(params, "ttl", ttl)) ||
        (cJSON_IsString(nj) && !cJSON_AddStringToObject(params, "name", nj->valuestring))) {
        ret = gw_reply_error(r, DYNO_ENOMEM, "out of memory");
        goto out;
    }
    char msg[400];
    int rc = gw_auth_rpc(r, "token.create", params, &res, msg, sizeof(msg));
    if (rc) {
        ret = gw_auth_error(r, rc, msg);
        goto out;
    }
    /* "id" is what DELETE /v1/tokens/<id> takes: the token's jti. */
    const char *jti = dyno_json_str(res, "jti");
    if (jti && !cJSON_GetObjectItemCaseSensitive(res, "id"))
        cJSON_AddStringToObject(res, "id", jti);
    ret = gw_reply_json(r, 201, res);
    cJSON *tok = cJSON_GetObjectItemCaseSensitive(res, "token");
    if (cJSON_IsString(tok) && tok->valuestring)
        gw_wipe(tok->valuestring, strlen(tok->valuestring));
out:
    cJSON_Delete(res);
    cJSON_Delete(params);
    cJSON_Delete(body);
    return ret;
}

enum MHD_Result gw_token_list(struct gw_req *r)
{
    char user[DYNO_SEG_MAX + 1];
    int qrc = gw_query_arg(r, "user", user, sizeof(user));
    if (qrc && qrc != DYNO_ENOTFOUND)
        return gw_reply_error(r, DYNO_EINVAL, "bad ?user= (a user name)");
    bool other = qrc == 0 && strcmp(user, r->claims.sub) != 0;
    if (qrc == 0 && !dyno_valid_segment(user))
        return gw_reply_error(r, DYNO_EINVAL, "bad ?user= (a user name)");
    if (other && !r->claims.admin)
        return gw_reply_error(r, DYNO_EFORBIDDEN, "only an admin may list the tokens of another user");
    cJSON *params = gw_params_with_caller(r);
    if (!params || (qrc == 0 && !cJSON_AddStringToObject(params, "user", user))) {
        cJSON_Delete(params);
        return gw_reply_error(r, DYNO_ENOMEM, "out of memory");
    }
    return gw_auth_reply(r, "token.list", params, 200);
}

enum MHD_Result gw_token_revoke(struct gw_req *r)
{
    cJSON *params = gw_params_with_caller(r);
    if (!params || !cJSON_AddStringToObject(params, "jti", r->key)) {
        cJSON_Delete(params);
        return gw_reply_error(r, DYNO_ENOMEM, "out of memory");
    }
    return gw_auth_reply(r, "token.revoke", params, 200);
}
