/*
 * GET /v1/fragments?after=<id>&limit=<n> (service token): the fragments this container
 * holds, in id order, each described by its own header and trailer (both CRC-checked, see
 * container_frag_inspect). Metadata rebuilds (object.restore) and drain checks read it.
 * Corrupt fragments are listed with "corrupt": true and whatever could still be decoded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynostore/error.h"
#include "hash.h"
#include "http.h"
#include "httpd.h"
#include "json.h"
#include "rest.h"
#include "scrub.h"

#define LIST_DEFAULT 100
#define LIST_MAX 1000

static void list_entry(cJSON *arr, const char *id, int rc, const struct container_frag_info *fi)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return;
    cJSON_AddStringToObject(o, "id", id);
    dyno_json_add_i64(o, "size", (int64_t)fi->size);
    if (fi->hdr_ok) {
        cJSON_AddStringToObject(o, "key", fi->hdr.key);
        cJSON_AddNumberToObject(o, "index", fi->hdr.index);
        cJSON_AddNumberToObject(o, "k", fi->hdr.k);
        cJSON_AddNumberToObject(o, "m", fi->hdr.m);
        cJSON_AddBoolToObject(o, "replica", fi->hdr.replica);
        dyno_json_add_i64(o, "unit", fi->hdr.unit);
        cJSON_AddStringToObject(o, "catalog", fi->hdr.catalog);
        cJSON_AddStringToObject(o, "name", fi->hdr.name);
    }
    if (fi->trailer_ok) {
        char hex[65];
        dyno_hex(fi->trailer.sha256, 32, hex);
        dyno_json_add_i64(o, "object_size", (int64_t)fi->trailer.object_size);
        cJSON_AddStringToObject(o, "sha256", hex);
    }
    if (rc)
        cJSON_AddBoolToObject(o, "corrupt", true);
    cJSON_AddItemToArray(arr, o);
}

enum MHD_Result container_list(struct container *c, struct MHD_Connection *conn)
{
    const char *after = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "after");
    const char *lim = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
    uint64_t limit = LIST_DEFAULT;
    if (lim) {
        if (dyno_rest_parse_u64(lim, &limit) || limit < 1 || limit > LIST_MAX)
            return container_http_error(conn, 0, DYNO_EINVAL, NULL, NULL, "limit must be 1..%d", LIST_MAX);
    }
    if (after && *after && !store_valid_id(after, NULL, NULL))
        return container_http_error(conn, 0, DYNO_EINVAL, NULL, NULL, "after must be a fragment id");
    char(*ids)[STORE_ID_MAX + 1] = malloc((size_t)limit * sizeof(*ids));
    cJSON *body = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(body, "fragments");
    size_t n = 0;
    bool more = false;
    enum MHD_Result ret;
    if (!ids || !body || !arr) {
        ret = container_http_error(conn, 0, DYNO_ENOMEM, NULL, NULL, "out of memory");
        goto out;
    }
    int rc = container_scan_page(c, after, (size_t)limit, ids, &n, &more);
    if (rc) {
        ret = container_http_error(conn, 0, rc, NULL, NULL, "cannot list fragments");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct container_frag_info fi;
        rc = container_frag_inspect(c, ids[i], &fi);
        if (rc == DYNO_ENOTFOUND)
            continue; /* deleted since the scan */
        list_entry(arr, ids[i], rc, &fi);
    }
    if (more && n > 0)
        cJSON_AddStringToObject(body, "next", ids[n - 1]);
    else
        cJSON_AddNullToObject(body, "next");
    ret = dyno_http_reply_json(conn, MHD_HTTP_OK, body);
out:
    free(ids);
    cJSON_Delete(body);
    return ret;
}
