/*
 * S3 access keys of the caller, answered by dyno-auth (docs/s3.md "Access keys", protocol.md
 * §3 "auth" key.*):
 *
 *   POST   /v1/keys        {description?} -> 201 {access_key_id, secret_access_key, created,
 *                          description, user}: the only answer that ever holds the secret
 *   GET    /v1/keys        {keys:[{access_key_id, user, description, created, last_used}]} of the
 *                          caller; ?user=U another user's, ?all=1 everyone's (admin only)
 *   DELETE /v1/keys/<id>   revokes a key of the caller (any key for an admin): S3 requests
 *                          signed with it fail at every gateway within 5 s (s3key.c)
 *
 * As admin.c: the gateway checks what it can first (a refused request costs no RPC), dyno-auth
 * checks again; the secret is wiped from our copy once the reply is queued and never logged.
 */
#include <stdio.h>
#include <string.h>

#include "gw.h"
#include "json.h"
#include "names.h"
#include "rest.h"

enum MHD_Result gw_key_create(struct gw_req *r)
{
    cJSON *body = NULL, *params = NULL, *res = NULL;
    enum MHD_Result ret;

    if (gw_body_object(r, true, &body))
        return gw_reply_error(r, DYNO_EINVAL, "body must be empty or a JSON object {description?}");
    const cJSON *dj = cJSON_GetObjectItemCaseSensitive(body, "description");
    if (dj && !cJSON_IsNull(dj) && !cJSON_IsString(dj)) {
        ret = gw_reply_error(r, DYNO_EINVAL, "description must be a string");
        goto out;
    }
    params = gw_params_with_caller(r);
    if (!params || (cJSON_IsString(dj) && !cJSON_AddStringToObject(params, "description", dj->valuestring))) {
        ret = gw_reply_error(r, DYNO_ENOMEM, "out of memory");
        goto out;
    }
    char msg[400];
    int rc = gw_auth_rpc(r, "key.create", params, &res, msg, sizeof(msg));
    if (rc) {
        ret = gw_auth_error(r, rc, msg);
        goto out;
    }
    ret = gw_reply_json(r, 201, res); /* MHD copied the body */
    cJSON *sec = cJSON_GetObjectItemCaseSensitive(res, "secret_access_key");
    if (cJSON_IsString(sec) && sec->valuestring)
        gw_wipe(sec->valuestring, strlen(sec->valuestring));
out:
    cJSON_Delete(res);
    cJSON_Delete(params);
    cJSON_Delete(body);
    return ret;
}

enum MHD_Result gw_key_list(struct gw_req *r)
{
    char user[DYNO_SEG_MAX + 1], all[8];
    int qrc = gw_query_arg(r, "user", user, sizeof(user));
    if ((qrc && qrc != DYNO_ENOTFOUND) || (qrc == 0 && !dyno_valid_segment(user)))
        return gw_reply_error(r, DYNO_EINVAL, "bad ?user= (a user name)");
    int arc = gw_query_arg(r, "all", all, sizeof(all));
    bool everyone = arc == 0 && dyno_rest_flag(all);
    if ((arc && arc != DYNO_ENOTFOUND) ||
        (arc == 0 && !everyone && strcmp(all, "0") != 0 && strcmp(all, "false") != 0))
        return gw_reply_error(r, DYNO_EINVAL, "bad ?all= (1 or 0)");
    if (everyone && qrc == 0)
        return gw_reply_error(r, DYNO_EINVAL, "give ?user= or ?all=1, not both");
    if ((everyone || (qrc == 0 && strcmp(user, r->claims.sub) != 0)) && !r->claims.admin)
        return gw_reply_error(r, DYNO_EFORBIDDEN, "only an admin may list the access keys of another user");
    cJSON *params = gw_params_with_caller(r);
    if (!params || (qrc == 0 && !cJSON_AddStringToObject(params, "user", user)) ||
        (everyone && !cJSON_AddBoolToObject(params, "all", true))) {
        cJSON_Delete(params);
        return gw_reply_error(r, DYNO_ENOMEM, "out of memory");
    }
    return gw_auth_reply(r, "key.list", params, 200);
}

enum MHD_Result gw_key_revoke(struct gw_req *r)
{
    cJSON *params = gw_params_with_caller(r);
    if (!params || !cJSON_AddStringToObject(params, "access_key_id", r->name)) {
        cJSON_Delete(params);
        return gw_reply_error(r, DYNO_ENOMEM, "out of memory");
    }
    return gw_auth_reply(r, "key.revoke", params, 200);
}
