/*
 * Object routes other than the data paths: metadata, evict, and the listing of a catalog.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "json.h"
#include "log.h"
#include "rest.h"

int gw_object_load(struct gw_req *r, bool write, cJSON **obj, char *msg, size_t cap)
{
    *obj = NULL;
    cJSON *params = cJSON_CreateObject();
    if (!params)
        return DYNO_ENOMEM;
    cJSON_AddStringToObject(params, "key", r->key);
    cJSON *o = NULL;
    int rc = gw_rpc(r->gw, "metadata", "object.get", params, &o, msg, cap);
    cJSON_Delete(params);
    if (rc == DYNO_ENOTFOUND)
        snprintf(msg, cap, "no object %s", r->key);
    if (rc)
        return rc;
    const char *catalog = dyno_json_str(o, "catalog");
    if (!catalog || !dyno_valid_catalog(catalog)) {
        snprintf(msg, cap, "metadata answered an object without a catalog");
        cJSON_Delete(o);
        return DYNO_EPROTO;
    }
    /* Access is the catalog's policy and nothing else: who published the object (its
     * "publisher") grants nothing, so removing a share takes effect on everything the
     * principal stored. The catalog's owner and admins skip the lookup because the policy
     * allows them whatever its shares say (lib/acl.h), so the answer is the same. */
    char cat_owner[DYNO_SEG_MAX + 1] = "";
    dyno_catalog_owner(catalog, cat_owner, sizeof(cat_owner));
    if (!r->claims.admin && strcmp(cat_owner, r->claims.sub) != 0) {
        rc = gw_catalog_check(r, catalog, write, NULL, msg, cap);
        if (rc == DYNO_ENOTFOUND) {
            snprintf(msg, cap, "no object %s", r->key);
        }
        if (rc) {
            cJSON_Delete(o);
            return rc;
        }
    }
    *obj = o;
    return 0;
}

enum MHD_Result gw_object_meta(struct gw_req *r)
{
    char msg[400];
    cJSON *obj = NULL;
    int rc = gw_object_load(r, false, &obj, msg, sizeof(msg));
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    enum MHD_Result ret = gw_reply_json(r, 200, obj);
    cJSON_Delete(obj);
    return ret;
}

int gw_evict_object(struct gw *gw, struct gw_conn *conn, const char *key, const cJSON *obj, char *msg,
                    size_t cap)
{
    cJSON *res = NULL;
    cJSON *params = cJSON_CreateObject();
    if (!params) {
        snprintf(msg, cap, "out of memory");
        return DYNO_ENOMEM;
    }
    cJSON_AddStringToObject(params, "key", key);
    int rc = gw_rpc(gw, "metadata", "object.evict", params, &res, msg, cap);
    cJSON_Delete(params);
    if (rc) {
        if (rc == DYNO_ENOTFOUND)
            snprintf(msg, cap, "no object %s", key);
        return rc;
    }
    /* The object is now invisible ("deleting"); what follows is garbage collection. */
    gw_purge_fragments(gw, conn, key, cJSON_GetObjectItemCaseSensitive(res, "fragments"));
    gw_event_emit_obj(gw, "object.evicted", obj);
    dyno_info("object evicted", "key=%s", key);
    cJSON_Delete(res);
    return 0;
}

enum MHD_Result gw_object_evict(struct gw_req *r)
{
    char msg[400];
    cJSON *obj = NULL;
    int rc = gw_object_load(r, true, &obj, msg, sizeof(msg));
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    rc = gw_evict_object(r->gw, r->conn, r->key, obj, msg, sizeof(msg));
    cJSON_Delete(obj);
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    return gw_reply_response(r, MHD_HTTP_NO_CONTENT, resp);
}

enum MHD_Result gw_object_list(struct gw_req *r)
{
    char msg[400], after[DYNO_NAME_MAX + 1], lim[16];
    int limit = 100;
    int rc = gw_query_arg(r, "limit", lim, sizeof(lim));
    if (rc == 0) {
        if (dyno_rest_parse_limit(lim, &limit))
            return gw_reply_error(r, DYNO_EINVAL, "limit must be 1..1000");
    } else if (rc != DYNO_ENOTFOUND) {
        return gw_reply_error(r, DYNO_EINVAL, "limit must be 1..1000");
    }
    rc = gw_query_arg(r, "after", after, sizeof(after));
    bool has_after = rc == 0 && after[0] != '\0';
    if (rc != 0 && rc != DYNO_ENOTFOUND)
        return gw_reply_error(r, DYNO_EINVAL, "bad after");
    if (has_after && !dyno_valid_name(after))
        return gw_reply_error(r, DYNO_EINVAL, "bad after (an object name)");

    char prefix[DYNO_NAME_MAX + 1];
    rc = gw_query_arg(r, "prefix", prefix, sizeof(prefix));
    bool has_prefix = rc == 0 && prefix[0] != '\0';
    if ((rc != 0 && rc != DYNO_ENOTFOUND) || (has_prefix && !dyno_valid_name(prefix)))
        return gw_reply_error(r, DYNO_EINVAL, "bad prefix (the start of an object name)");

    rc = gw_catalog_check(r, r->catalog, false, NULL, msg, sizeof(msg));
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    cJSON *params = cJSON_CreateObject(), *res = NULL;
    cJSON_AddStringToObject(params, "catalog", r->catalog);
    if (has_prefix)
        cJSON_AddStringToObject(params, "prefix", prefix);
    if (has_after)
        cJSON_AddStringToObject(params, "after", after);
    else
        cJSON_AddNullToObject(params, "after");
    dyno_json_add_i64(params, "limit", limit);
    rc = gw_rpc(r->gw, "metadata", "object.list", params, &res, msg, sizeof(msg));
    cJSON_Delete(params);
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    enum MHD_Result ret = gw_reply_json(r, 200, res);
    cJSON_Delete(res);
    return ret;
}
