/*
 * Buckets of the S3 door (s3.h): ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
 * GetBucketLocation. A bucket is a top-level catalog (docs/s3.md): these are the catalog
 * operations of catalogs.c, asked through pubsub and metadata as the key's owner, so the
 * catalog policy decides everything.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3.h"

#include "json.h"
#include "log.h"
#include "rest.h"

/* ListBuckets: the caller's own top-level catalogs and the top-level catalogs shared with
 * them (pubsub catalog.list), each under its bucket name. */
enum MHD_Result s3_list_buckets(struct s3_ctx *x)
{
    struct gw_req *r = x->r;
    char msg[400];
    cJSON *params = cJSON_CreateObject(), *res = NULL;
    if (!params)
        return gw_s3_err(x, 500, "InternalError", "out of memory");
    cJSON_AddItemToObject(params, "caller", gw_caller_json(r));
    int rc = gw_rpc(r->gw, "pubsub", "catalog.list", params, &res, msg, sizeof(msg));
    cJSON_Delete(params);
    if (rc)
        return s3_reply_dyno(x, rc, msg);
    struct dyno_buf b;
    dyno_buf_init(&b, 4 << 20);
    rc = dyno_buf_printf(&b, "<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                             "<Owner><ID>");
    rc = rc ? rc : s3_xml_esc(&b, x->user);
    rc = rc ? rc : dyno_buf_printf(&b, "</ID><DisplayName>");
    rc = rc ? rc : s3_xml_esc(&b, x->user);
    rc = rc ? rc : dyno_buf_printf(&b, "</DisplayName></Owner><Buckets>");
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(res, "catalogs"))
    {
        const char *cat = dyno_json_str(c, "catalog");
        char bucket[sizeof(x->bucket)];
        if (rc || !cat)
            continue;
        s3_catalog_to_bucket(x->user, cat, bucket, sizeof(bucket));
        if (!bucket[0])
            continue; /* a sub-catalog: reached through its top-level bucket's keys */
        int64_t created = 0;
        dyno_json_i64(c, "created_at", &created);
        char when[32];
        s3_iso_time(created * 1000, when);
        rc = dyno_buf_printf(&b, "<Bucket><Name>");
        rc = rc ? rc : s3_xml_esc(&b, bucket);
        rc = rc ? rc : dyno_buf_printf(&b, "</Name><CreationDate>%s</CreationDate></Bucket>", when);
    }
    rc = rc ? rc : dyno_buf_printf(&b, "</Buckets></ListAllMyBucketsResult>");
    cJSON_Delete(res);
    if (rc) {
        dyno_buf_free(&b);
        return gw_s3_err(x, 500, "InternalError", "bucket list too large");
    }
    return s3_reply_xml(x, 200, &b);
}

/* The end of CreateBucket's body (an optional CreateBucketConfiguration, whose
 * LocationConstraint can only be this gateway's region). */
static enum MHD_Result s3__create_end(struct s3_ctx *x)
{
    struct gw_req *r = x->r;
    char msg[400];
    const char *region = r->gw->cfg.s3_region;
    if (r->body.len > 0) {
        /* Not a full XML parse: the only element we act on is LocationConstraint. */
        char *doc = strndup(r->body.data, r->body.len);
        if (!doc)
            return gw_s3_err(x, 500, "InternalError", "out of memory");
        const char *lc = strstr(doc, "<LocationConstraint>");
        if (lc) {
            lc += strlen("<LocationConstraint>");
            const char *end = strstr(lc, "</LocationConstraint>");
            size_t n = end ? (size_t)(end - lc) : 0;
            bool ok = end && (n == 0 || (n == strlen(region) && strncmp(lc, region, n) == 0));
            if (!ok) {
                free(doc);
                return gw_s3_err(x, 400, "InvalidLocationConstraint",
                                 "the specified location constraint is not valid: this endpoint is %s",
                                 region);
            }
        }
        free(doc);
    }
    if (strcmp(x->owner, x->user) != 0 && !r->claims.admin)
        return gw_s3_err(x, 403, "AccessDenied", "only %s may create buckets under %s (%s)", x->owner,
                         x->owner, x->catalog);
    const char *why = NULL;
    if (dyno_rest_catalog_creatable(x->catalog, &why))
        return gw_s3_err(x, 400, "InvalidBucketName", "%s", why ? why : "bad bucket name");
    /* S3 tells a bucket the caller already has from a new one; catalog.create is idempotent. */
    cJSON *cat = NULL;
    int rc = gw_catalog_get(r->gw, x->catalog, &cat, msg, sizeof(msg));
    cJSON_Delete(cat);
    if (rc == 0)
        return gw_s3_err(x, 409, "BucketAlreadyOwnedByYou",
                         "your previous request to create the named bucket succeeded and you already own it");
    if (rc != DYNO_ENOTFOUND)
        return s3_reply_dyno(x, rc, msg);
    cJSON *params = cJSON_CreateObject(), *res = NULL;
    if (!params)
        return gw_s3_err(x, 500, "InternalError", "out of memory");
    cJSON_AddStringToObject(params, "catalog", x->catalog);
    cJSON_AddItemToObject(params, "caller", gw_caller_json(r));
    rc = gw_rpc(r->gw, "pubsub", "catalog.create", params, &res, msg, sizeof(msg));
    cJSON_Delete(params);
    cJSON_Delete(res);
    if (rc)
        return s3_reply_dyno(x, rc, msg);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    char loc[sizeof(x->bucket) + 2];
    snprintf(loc, sizeof(loc), "/%s", x->bucket);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, loc);
    return gw_reply_response(r, 200, resp);
}

enum MHD_Result s3_create_bucket(struct s3_ctx *x)
{
    s3_expect_xml(x, s3__create_end);
    return MHD_YES;
}

enum MHD_Result s3_head_bucket(struct s3_ctx *x)
{
    char msg[400];
    int rc = gw_catalog_check(x->r, x->catalog, false, NULL, msg, sizeof(msg));
    if (rc)
        return s3_reply_dyno(x, rc, msg);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "x-amz-bucket-region", x->r->gw->cfg.s3_region);
    return gw_reply_response(x->r, 200, resp);
}

/* DeleteBucket: only an empty bucket (no object, no sub-catalog), as S3. */
enum MHD_Result s3_delete_bucket(struct s3_ctx *x)
{
    struct gw_req *r = x->r;
    char msg[1024];
    cJSON *res = NULL;
    /* The dry run checks that the caller may delete it (the owner) and sees sub-catalogs. */
    int rc = gw_catalog_delete_rpc(r, false, true, &res, msg, sizeof(msg));
    cJSON_Delete(res);
    res = NULL;
    if (rc == DYNO_ECONFLICT)
        return gw_s3_err(x, 409, "BucketNotEmpty", "the bucket has sub-catalogs (%s)", msg);
    if (rc)
        return s3_reply_dyno(x, rc, msg);
    cJSON *params = cJSON_CreateObject();
    if (!params)
        return gw_s3_err(x, 500, "InternalError", "out of memory");
    cJSON_AddStringToObject(params, "catalog", x->catalog);
    rc = gw_rpc(r->gw, "metadata", "catalog.stats", params, &res, msg, sizeof(msg));
    cJSON_Delete(params);
    int64_t n = 0;
    if (rc == 0 && dyno_json_i64(res, "objects", &n))
        rc = DYNO_EPROTO;
    cJSON_Delete(res);
    res = NULL;
    if (rc)
        return s3_reply_dyno(x, rc, msg);
    if (n > 0)
        return gw_s3_err(x, 409, "BucketNotEmpty",
                         "the bucket you tried to delete is not empty (%lld objects)", (long long)n);
    rc = gw_catalog_delete_rpc(r, false, false, &res, msg, sizeof(msg));
    cJSON_Delete(res);
    if (rc == DYNO_ECONFLICT)
        return gw_s3_err(x, 409, "BucketNotEmpty", "%s", msg);
    if (rc)
        return s3_reply_dyno(x, rc, msg);
    return s3_reply_empty(x, 204);
}

enum MHD_Result s3_get_bucket_location(struct s3_ctx *x)
{
    char msg[400];
    int rc = gw_catalog_check(x->r, x->catalog, false, NULL, msg, sizeof(msg));
    if (rc)
        return s3_reply_dyno(x, rc, msg);
    struct dyno_buf b;
    dyno_buf_init(&b, 1024);
    /* us-east-1 is S3's empty LocationConstraint. */
    const char *region = x->r->gw->cfg.s3_region;
    rc = dyno_buf_printf(&b, "<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    if (!rc && strcmp(region, "us-east-1") != 0)
        rc = s3_xml_esc(&b, region);
    rc = rc ? rc : dyno_buf_printf(&b, "</LocationConstraint>");
    if (rc) {
        dyno_buf_free(&b);
        return gw_s3_err(x, 500, "InternalError", "out of memory");
    }
    return s3_reply_xml(x, 200, &b);
}
