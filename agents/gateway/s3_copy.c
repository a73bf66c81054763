/*
 * CopyObject (PUT /bucket/key with x-amz-copy-source) of the S3 door (s3.h; owner s3-ops;
 * docs/s3.md "Copy").
 *
 * The source is read through the get core and streamed into a normal put of the
 * destination, a bounded buffer at a time (s3_stream_copy): a server-side copy that never
 * holds the object and raises the destination's object.created like any put. Access is the
 * two catalogs' policies: read on the source, write on the destination. The metadata
 * directive decides the destination's Content-Type and x-amz-meta-*: COPY (default) takes
 * the source's, REPLACE the request's. The ETag is the MD5 of the bytes copied.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "s3_ops.h"

#include "json.h"
#include "log.h"
#include "rest.h" /* dyno_url_decode */

/* What the copy thread needs (s3_reply_long): nothing of the request. */
struct copy {
    struct gw *gw;
    char src_key[DYNO_KEY_LEN + 1];
    cJSON *src;   /* object.get of the source */
    cJSON *attrs; /* the destination's attributes, without the ETag */
    struct s3_target dst;
};

static void copy__free(void *arg)
{
    struct copy *c = arg;
    cJSON_Delete(c->src);
    cJSON_Delete(c->attrs);
    free(c);
}

static void copy__work(void *arg, struct gw_conn *conn, struct s3_long_out *out)
{
    struct copy *c = arg;
    char msg[400] = "";
    int64_t size = 0;
    (void)dyno_json_i64(c->src, "size", &size);
    struct gw_put *p = NULL;
    struct s3_md5 *md5 = NULL;
    int rc = s3_md5_new(&md5);
    if (rc == 0)
        rc = s3_put_open(c->gw, conn, &c->dst, size, &p, msg, sizeof(msg));
    if (rc == 0)
        rc = s3_stream_copy(c->gw, conn, c->src_key, c->src, 0, S3_WHOLE, p, md5, msg, sizeof(msg));
    uint8_t digest[16];
    char etag[35];
    if (rc == 0) {
        s3_md5_final(md5, digest);
        s3_etag_hex(digest, etag);
        rc = s3_put_attrs(p, c->attrs, etag);
    }
    cJSON *res = NULL;
    if (rc == 0 && (rc = gw_put_finish(p, &res)) != 0)
        snprintf(msg, sizeof(msg), "%s", gw_put_msg(p));
    gw_put_close(p); /* aborts an uncommitted put */
    s3_md5_free(md5);
    cJSON_Delete(res);
    if (rc) {
        s3_long_fail(out, rc, msg[0] ? msg : dyno_strerror(rc));
        return;
    }
    char when[32];
    s3_iso_time((int64_t)time(NULL) * 1000, when); /* wall clock: gw_now_ms is monotonic */
    rc =
        dyno_buf_printf(&out->doc,
                        "<CopyObjectResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LastModified>%s"
                        "</LastModified><ETag>",
                        when);
    rc = rc ? rc : s3_xml_esc(&out->doc, etag);
    rc = rc ? rc : dyno_buf_printf(&out->doc, "</ETag></CopyObjectResult>");
    if (rc)
        s3_long_fail(out, rc, "cannot build the answer");
    dyno_info("s3 object copied", "src=%s catalog=%s size=%lld", c->src_key, c->dst.catalog, (long long)size);
}

/* x-amz-copy-source: [/]bucket/key[?versionId=null], percent-encoded, into bucket and key. */
static int copy__source(const char *hdr, char *bucket, size_t bcap, char *key, size_t kcap)
{
    const char *s = hdr[0] == '/' ? hdr + 1 : hdr;
    const char *q = strchr(s, '?');
    size_t len = q ? (size_t)(q - s) : strlen(s);
    if (q && strcmp(q, "?versionId=null") != 0)
        return DYNO_EINVAL; /* no versions here */
    const char *slash = memchr(s, '/', len);
    if (!slash || slash == s || (size_t)(slash - s) >= bcap || len - (size_t)(slash - s) - 1 >= kcap)
        return DYNO_EINVAL;
    memcpy(bucket, s, (size_t)(slash - s));
    bucket[slash - s] = '\0';
    size_t kl = len - (size_t)(slash - s) - 1;
    memcpy(key, slash + 1, kl);
    key[kl] = '\0';
    return dyno_url_decode(bucket) || dyno_url_decode(key) || !key[0] ? DYNO_EINVAL : 0;
}

int s3_copy_source(struct s3_ctx *x, cJSON **src, enum MHD_Result *ret)
{
    struct gw_req *r = x->r;
    char msg[400];
    char sbucket[S3_BUCKET_MAX + DYNO_SEG_MAX + 8], skey[S3_KEY_MAX + 1];
    char scat[DYNO_CATALOG_MAX + 1], sowner[DYNO_SEG_MAX + 1];
    *src = NULL;
    if (copy__source(s3_header(x, "x-amz-copy-source"), sbucket, sizeof(sbucket), skey, sizeof(skey)) != 0 ||
        s3_bucket_to_catalog(x->user, sbucket, scat, sizeof(scat), sowner, sizeof(sowner)) != 0) {
        *ret = gw_s3_err(x, 400, "InvalidArgument",
                         "x-amz-copy-source must be /<bucket>/<key> of a bucket here");
        return -1;
    }
    int rc = gw_catalog_check(r, scat, false, NULL, msg, sizeof(msg));
    if (rc == 0)
        rc =
            dyno_valid_name(skey) ? s3_find_object(r->gw, scat, skey, src, msg, sizeof(msg)) : DYNO_ENOTFOUND;
    else if (rc == DYNO_ENOTFOUND) {
        *ret = gw_s3_err(x, 404, "NoSuchBucket", "no source bucket %s", sbucket);
        return -1;
    }
    if (rc == DYNO_ENOTFOUND) {
        *ret = gw_s3_err(x, 404, "NoSuchKey", "the source key %s does not exist", skey);
        return -1;
    }
    if (rc) {
        *ret = s3_reply_dyno(x, rc, msg);
        return -1;
    }
    /* x-amz-copy-source-if-*: the copy happens only if the source is the one the client
     * means; every failed test is 412 (S3's rule for copies, also for none-match/modified). */
    char etag[80];
    int64_t mtime = 0;
    s3_obj_etag(*src, etag);
    if (dyno_json_i64(*src, "committed_at", &mtime))
        dyno_json_i64(*src, "created_at", &mtime);
    if (s3_conditions(x, "x-amz-copy-source-", etag, mtime) != 0) {
        cJSON_Delete(*src);
        *src = NULL;
        *ret = gw_s3_err(x, 412, "PreconditionFailed",
                         "at least one of the pre-conditions you specified did not hold");
        return -1;
    }
    return 0;
}

enum MHD_Result s3_copy_object(struct s3_ctx *x)
{
    struct gw_req *r = x->r;
    char msg[400];
    const char *dir = s3_header(x, "x-amz-metadata-directive");
    bool replace = dir && strcasecmp(dir, "REPLACE") == 0;
    if (dir && !replace && strcasecmp(dir, "COPY") != 0)
        return gw_s3_err(x, 400, "InvalidArgument", "x-amz-metadata-directive must be COPY or REPLACE");
    if (!dyno_valid_name(x->key))
        return gw_s3_err(x, 400, "InvalidArgument", "this key cannot be an object name here");
    /* The source: read access, then its record. */
    cJSON *dcat = NULL, *src = NULL;
    enum MHD_Result ret;
    if (s3_copy_source(x, &src, &ret) != 0)
        return ret;
    if (!replace &&
        strcmp(dyno_json_str(src, "catalog") ? dyno_json_str(src, "catalog") : "", x->catalog) == 0 &&
        strcmp(dyno_json_str(src, "name") ? dyno_json_str(src, "name") : "", x->key) == 0) {
        cJSON_Delete(src);
        return gw_s3_err(x, 400, "InvalidRequest",
                         "This copy request is illegal because it is trying to copy an object to itself "
                         "without changing the object's metadata");
    }
    int rc;
    /* The destination: write access and its shape. */
    rc = gw_catalog_check(r, x->catalog, true, &dcat, msg, sizeof(msg));
    if (rc) {
        cJSON_Delete(src);
        return s3_reply_dyno(x, rc, msg);
    }
    struct copy *c = calloc(1, sizeof(*c));
    if (!c) {
        cJSON_Delete(src);
        cJSON_Delete(dcat);
        return gw_s3_err(x, 500, "InternalError", "out of memory");
    }
    c->gw = r->gw;
    snprintf(c->src_key, sizeof(c->src_key), "%s", dyno_json_str(src, "key"));
    c->src = src;
    const cJSON *sattrs = s3_obj_attrs(src);
    int aerr = DYNO_ENOMEM;
    c->attrs = replace  ? s3_attrs_from_request(x, &aerr)
               : sattrs ? cJSON_Duplicate(sattrs, true)
                        : cJSON_CreateObject();
    snprintf(c->dst.catalog, sizeof(c->dst.catalog), "%s", x->catalog);
    snprintf(c->dst.name, sizeof(c->dst.name), "%s", x->key);
    snprintf(c->dst.publisher, sizeof(c->dst.publisher), "%s", x->user);
    s3_target_shape(r->gw, dcat, &c->dst);
    cJSON_Delete(dcat);
    if (!c->attrs) {
        copy__free(c);
        return s3_attrs_err(x, aerr);
    }
    return s3_reply_long(x, copy__work, c, copy__free);
}

enum MHD_Result s3_get_object_tagging(struct s3_ctx *x)
{
    char msg[400];
    cJSON *obj = NULL;
    int rc = gw_catalog_check(x->r, x->catalog, false, NULL, msg, sizeof(msg));
    if (rc == 0)
        rc = dyno_valid_name(x->key) ? s3_find_object(x->r->gw, x->catalog, x->key, &obj, msg, sizeof(msg))
                                     : DYNO_ENOTFOUND;
    cJSON_Delete(obj);
    if (rc)
        return s3_reply_dyno(x, rc, msg);
    struct dyno_buf b;
    dyno_buf_init(&b, 1024);
    if (dyno_buf_printf(
            &b, "<Tagging xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><TagSet></TagSet></Tagging>")) {
        dyno_buf_free(&b);
        return gw_s3_err(x, 500, "InternalError", "out of memory");
    }
    return s3_reply_xml(x, 200, &b);
}
