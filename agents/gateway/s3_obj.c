/*
 * Objects of the S3 door (s3.h): PutObject, GetObject, HeadObject, DeleteObject, over the
 * data path of the REST API (dp_put.c, dp_get.c): the key is the object's name in the
 * bucket's catalog, the catalog policy is the access check, a put commits with the S3
 * attributes (ETag = MD5 of the bytes, Content-Type, x-amz-meta-*) and raises the same
 * object.created event as a REST put, a delete the same object.evicted.
 */
#define _GNU_SOURCE /* strptime, timegm */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <isa-l/crc.h>
#include <openssl/evp.h>

#include "s3.h"

#include "hash.h"
#include "json.h"
#include "log.h"
#include "rest.h"
#include "s3_ops.h"

/* ---- the key ---- */

/* Whether x->key can be an object name; else the error is answered (*ret). */
static bool s3__key_ok(struct s3_ctx *x, enum MHD_Result *ret)
{
    if (dyno_valid_name(x->key))
        return true;
    if (strlen(x->key) > DYNO_NAME_MAX)
        *ret = gw_s3_err(x, 400, "KeyTooLongError", "DynoStore keys are at most %d bytes", DYNO_NAME_MAX);
    else
        *ret = gw_s3_err(x, 400, "InvalidArgument",
                         "the key is not a valid object name: UTF-8 without control characters or '\\', not "
                         "starting with '/', no segment \".\" or \"..\"");
    return false;
}

/* ---- PutObject ---- */

/* An x-amz-checksum-<algo> header of the request: its algorithm, the value it announces and
 * the running sum of the body. */
enum s3_ck { S3_CK_NONE, S3_CK_CRC32, S3_CK_CRC32C, S3_CK_SHA1, S3_CK_SHA256 };

struct s3_put {
    struct gw_put *p;
    EVP_MD_CTX *md5;
    enum s3_ck ck;
    const char *ck_name; /* "CRC32"... for the error message */
    uint8_t ck_want[32]; /* the announced digest, decoded */
    size_t ck_len;       /* its bytes: 4, 20 or 32 */
    uint32_t crc;        /* CRC32 / CRC32C so far */
    EVP_MD_CTX *ck_md;   /* SHA1 / SHA256 */
    uint8_t want_md5[16];
    bool has_md5;
    cJSON *attrs; /* content_type, meta; etag added at the end */
};

static void s3__put_free(struct s3_ctx *x)
{
    struct s3_put *sp = x->hstate;
    if (!sp)
        return;
    gw_put_close(sp->p); /* aborts an uncommitted put */
    EVP_MD_CTX_free(sp->md5);
    EVP_MD_CTX_free(sp->ck_md);
    cJSON_Delete(sp->attrs);
    free(sp);
    x->hstate = NULL;
}

/* The request's close hook: the put ends with the request, whatever happened. */
static void s3__put_close(struct gw_req *r)
{
    s3__put_free(r->s3);
}

static int s3__put_body(struct s3_ctx *x, const char *data, size_t len)
{
    struct s3_put *sp = x->hstate;
    if (EVP_DigestUpdate(sp->md5, data, len) != 1)
        return DYNO_ENOMEM;
    if (sp->ck == S3_CK_CRC32)
        sp->crc = crc32_gzip_refl(sp->crc, (const unsigned char *)data, len);
    else if (sp->ck == S3_CK_CRC32C)
        sp->crc = dyno_crc32c(sp->crc, data, len);
    else if (sp->ck_md && EVP_DigestUpdate(sp->ck_md, data, len) != 1)
        return DYNO_ENOMEM;
    int rc = gw_put_write(sp->p, data, len);
    if (rc) {
        char q[440];
        snprintf(x->r->body_msg, sizeof(x->r->body_msg), "%s", gw_put_msg(sp->p));
        dyno_warn("s3 put failed", "catalog=%s err=%s detail=%s", x->catalog, dyno_err_code(rc),
                  dyno_log_q(q, sizeof(q), x->r->body_msg));
        gw_req_close(x->r);
    }
    return rc;
}

static enum MHD_Result s3__put_end(struct s3_ctx *x)
{
    struct gw_req *r = x->r;
    struct s3_put *sp = x->hstate;
    uint8_t md5[16];
    unsigned int mlen = 0;
    if (!sp || EVP_DigestFinal_ex(sp->md5, md5, &mlen) != 1 || mlen != 16) {
        gw_req_close(r);
        return gw_s3_err(x, 500, "InternalError", "MD5 failed");
    }
    if (sp->has_md5 && memcmp(md5, sp->want_md5, 16) != 0) {
        gw_req_close(r); /* aborted: nothing is committed */
        return gw_s3_err(x, 400, "BadDigest", "the Content-MD5 you specified did not match what we received");
    }
    if (sp->ck != S3_CK_NONE) {
        uint8_t got[32];
        unsigned int glen = 0;
        if (sp->ck == S3_CK_CRC32 || sp->ck == S3_CK_CRC32C) {
            for (int i = 0; i < 4; i++) /* S3 sends the CRC big-endian */
                got[i] = (uint8_t)(sp->crc >> (24 - 8 * i));
            glen = 4;
        } else if (EVP_DigestFinal_ex(sp->ck_md, got, &glen) != 1) {
            glen = 0;
        }
        if (glen != sp->ck_len || memcmp(got, sp->ck_want, glen) != 0) {
            const char *name = sp->ck_name; /* static; sp goes with the close */
            gw_req_close(r);                /* aborted: nothing is committed */
            return gw_s3_err(x, 400, "BadDigest",
                             "the %s you specified did not match the calculated checksum", name);
        }
    }
    char etag[33];
    dyno_hex(md5, 16, etag);
    cJSON_AddStringToObject(sp->attrs, "etag", etag);
    cJSON *res = NULL;
    int rc = gw_put_set_attrs(sp->p, sp->attrs);
    if (rc == 0)
        rc = gw_put_finish(sp->p, &res);
    if (rc) {
        char msg[440];
        snprintf(msg, sizeof(msg), "%s", gw_put_msg(sp->p));
        gw_req_close(r);
        return s3_reply_dyno(x, rc, msg);
    }
    cJSON_Delete(res);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    char q[40];
    snprintf(q, sizeof(q), "\"%s\"", etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, q);
    return gw_reply_response(r, 200, resp);
}

/* The x-amz-checksum-* header of the request, if any: 0, or the error is answered (*ret).
 * Several are refused, as S3 does. (Checksums sent as trailers of an aws-chunked body are
 * accepted without a check: docs/s3.md.) */
static int s3__checksum_header(struct s3_ctx *x, struct s3_put *sp, enum MHD_Result *ret)
{
    static const struct {
        const char *hdr, *name;
        enum s3_ck ck;
        size_t len;
    } algos[] = {{"x-amz-checksum-crc32", "CRC32", S3_CK_CRC32, 4},
                 {"x-amz-checksum-crc32c", "CRC32C", S3_CK_CRC32C, 4},
                 {"x-amz-checksum-sha1", "SHA1", S3_CK_SHA1, 20},
                 {"x-amz-checksum-sha256", "SHA256", S3_CK_SHA256, 32}};
    for (size_t i = 0; i < sizeof(algos) / sizeof(algos[0]); i++) {
        const char *v = s3_header(x, algos[i].hdr);
        if (!v)
            continue;
        if (sp->ck != S3_CK_NONE) {
            *ret = gw_s3_err(x, 400, "InvalidRequest", "expecting a single x-amz-checksum- header");
            return DYNO_EINVAL;
        }
        /* base64 of len bytes: 4 * ceil(len / 3) characters with '=' padding */
        size_t want = 4 * ((algos[i].len + 2) / 3), n = strlen(v);
        unsigned char buf[48];
        int dec = n == want ? EVP_DecodeBlock(buf, (const unsigned char *)v, (int)n) : -1;
        size_t pad = n >= 2 ? (size_t)(v[n - 1] == '=') + (size_t)(v[n - 2] == '=') : 0;
        if (dec < 0 || (size_t)dec - pad != algos[i].len) {
            *ret = gw_s3_err(x, 400, "InvalidRequest", "value for %s header is invalid", algos[i].hdr);
            return DYNO_EINVAL;
        }
        sp->ck = algos[i].ck;
        sp->ck_name = algos[i].name;
        sp->ck_len = algos[i].len;
        memcpy(sp->ck_want, buf, algos[i].len);
        if (sp->ck == S3_CK_SHA1 || sp->ck == S3_CK_SHA256) {
            sp->ck_md = EVP_MD_CTX_new();
            if (!sp->ck_md ||
                EVP_DigestInit_ex(sp->ck_md, sp->ck == S3_CK_SHA1 ? EVP_sha1() : EVP_sha256(), NULL) != 1) {
                *ret = gw_s3_err(x, 500, "InternalError", "out of memory");
                return DYNO_ENOMEM;
            }
        }
    }
    return 0;
}

/* Content-MD5: base64 of 16 bytes. */
static bool s3__parse_md5(const char *v, uint8_t out[16])
{
    size_t n = strlen(v);
    if (n != 24)
        return false;
    unsigned char buf[24];
    if (EVP_DecodeBlock(buf, (const unsigned char *)v, 24) != 18) /* 16 bytes and 2 of padding */
        return false;
    memcpy(out, buf, 16);
    return true;
}

enum MHD_Result s3_put_object(struct s3_ctx *x)
{
    struct gw_req *r = x->r;
    struct gw *gw = r->gw;
    enum MHD_Result ret;
    char msg[400];
    int64_t t0 = gw_put_us();
    if (!s3__key_ok(x, &ret))
        return ret;

    /* The payload's size: an aws-chunked body announces it apart from its encoded length. */
    int64_t declared = -1;
    const char *dl = s3_header(x, "x-amz-decoded-content-length");
    const char *cl = s3_header(x, MHD_HTTP_HEADER_CONTENT_LENGTH);
    bool chunked =
        x->sig.payload == SIGV4_PAYLOAD_STREAMING || x->sig.payload == SIGV4_PAYLOAD_STREAMING_TRAILER;
    const char *size_hdr = chunked ? dl : cl;
    if (size_hdr) {
        uint64_t v;
        if (dyno_rest_parse_u64(size_hdr, &v))
            return gw_s3_err(x, 400, "InvalidArgument", "bad %s",
                             chunked ? "x-amz-decoded-content-length" : "Content-Length");
        if (v > (uint64_t)gw->cfg.max_body)
            return gw_s3_err(x, 400, "EntityTooLarge", "object larger than max_body (%lld bytes)",
                             (long long)gw->cfg.max_body);
        declared = (int64_t)v;
    } else if (!s3_header(x, MHD_HTTP_HEADER_TRANSFER_ENCODING) && !chunked) {
        declared = 0; /* no body at all */
    }

    struct s3_put *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return gw_s3_err(x, 500, "InternalError", "out of memory");
    x->hstate = sp;
    x->hstate_free = s3__put_free;
    const char *md5h = s3_header(x, "Content-MD5");
    if (md5h) {
        if (!s3__parse_md5(md5h, sp->want_md5))
            return gw_s3_err(x, 400, "InvalidDigest", "the Content-MD5 you specified was invalid");
        sp->has_md5 = true;
    }
    if (s3__checksum_header(x, sp, &ret))
        return ret;
    int aerr;
    sp->attrs = s3_attrs_from_request(x, &aerr);
    if (!sp->attrs)
        return s3_attrs_err(x, aerr);
    sp->md5 = EVP_MD_CTX_new();
    if (!sp->md5 || EVP_DigestInit_ex(sp->md5, EVP_md5(), NULL) != 1)
        return gw_s3_err(x, 500, "InternalError", "out of memory");

    /* authorize: the catalog's policy, for writing */
    cJSON *cat = NULL;
    int rc = gw_catalog_check(r, x->catalog, true, &cat, msg, sizeof(msg));
    if (rc)
        return s3_reply_dyno(x, rc, msg);
    int k, mm;
    if (gw_put_resilience(r, cat, &k, &mm)) {
        cJSON_Delete(cat);
        return gw_s3_err(x, 400, "InvalidArgument", "bad X-Dyno-Resilience (k,m)");
    }
    bool relaxed = gw_site_relaxed(cat);
    cJSON_Delete(cat);
    const struct gw_put_args a = {.catalog = x->catalog,
                                  .name = x->key,
                                  .publisher = x->user,
                                  .k = k,
                                  .m = mm,
                                  .site_relaxed = relaxed,
                                  .size = declared,
                                  .t0_us = t0};
    rc = gw_put_new(gw, r->conn, &a, &sp->p, msg, sizeof(msg));
    if (rc)
        return s3_reply_dyno(x, rc, msg);
    r->on_close = s3__put_close;
    s3_expect_body(x, s3__put_body, s3__put_end);
    return MHD_YES;
}

/* ---- GetObject, HeadObject ---- */

/* The object named x->key, after the read check of its catalog: 0 with *obj, or the reply. */
static int s3__load(struct s3_ctx *x, bool write, cJSON **obj, char *msg, size_t cap)
{
    *obj = NULL;
    x->level = S3_BUCKET; /* a missing catalog is NoSuchBucket */
    int rc = gw_catalog_check(x->r, x->catalog, write, NULL, msg, cap);
    x->level = S3_OBJECT;
    if (rc) {
        if (rc == DYNO_ENOTFOUND)
            x->level = S3_BUCKET;
        return rc;
    }
    cJSON *params = cJSON_CreateObject();
    if (!params)
        return DYNO_ENOMEM;
    cJSON_AddStringToObject(params, "catalog", x->catalog);
    cJSON_AddStringToObject(params, "name", x->key);
    rc = gw_rpc(x->r->gw, "metadata", "object.get", params, obj, msg, cap);
    cJSON_Delete(params);
    if (rc == DYNO_ENOTFOUND)
        snprintf(msg, cap, "the specified key does not exist");
    if (rc == 0 && !dyno_valid_key(dyno_json_str(*obj, "key"))) {
        cJSON_Delete(*obj);
        *obj = NULL;
        snprintf(msg, cap, "metadata answered an object without a key");
        return DYNO_EPROTO;
    }
    return rc;
}

/* Whether the If-Match / If-None-Match list v names etag (quoted) or is "*". */
static bool s3__etag_match(const char *v, const char *etag)
{
    size_t el = strlen(etag);
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n == 1 && *p == '*')
            return true;
        if (n > 2 && p[0] == 'W' && p[1] == '/') { /* weak tags compare by their value */
            p += 2;
            n -= 2;
        }
        if (n == el && strncmp(p, etag, n) == 0)
            return true;
        /* unquoted, as some clients send it */
        if (n + 2 == el && strncmp(p, etag + 1, n) == 0)
            return true;
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

/* An HTTP date in unix seconds, or -1. */
static int64_t s3__parse_http_date(const char *v)
{
    struct tm tm = {0};
    const char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end)
        return -1;
    return (int64_t)timegm(&tm);
}

unsigned s3_conditions(struct s3_ctx *x, const char *prefix, const char *etag, int64_t mtime)
{
    char h[4][64];
    static const char *const names[4] = {MHD_HTTP_HEADER_IF_MATCH, MHD_HTTP_HEADER_IF_NONE_MATCH,
                                         MHD_HTTP_HEADER_IF_MODIFIED_SINCE,
                                         MHD_HTTP_HEADER_IF_UNMODIFIED_SINCE};
    for (int i = 0; i < 4; i++)
        snprintf(h[i], sizeof(h[i]), "%s%s", prefix, names[i]);
    const char *im = s3_header(x, h[0]);
    const char *inm = s3_header(x, h[1]);
    const char *ims = s3_header(x, h[2]);
    const char *ius = s3_header(x, h[3]);
    if (im) {
        if (!s3__etag_match(im, etag))
            return 412;
    } else if (ius) {
        int64_t t = s3__parse_http_date(ius);
        if (t >= 0 && mtime > t)
            return 412;
    }
    if (inm) {
        if (s3__etag_match(inm, etag))
            return 304;
    } else if (ims) {
        int64_t t = s3__parse_http_date(ims);
        if (t >= 0 && mtime <= t)
            return 304;
    }
    return 0;
}

static void s3__object_headers(struct MHD_Response *resp, const cJSON *obj, const char *etag, int64_t mtime)
{
    const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(obj, "attrs");
    char date[40];
    s3_http_date(mtime * 1000, date);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, date);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    const char *ct = dyno_json_str(attrs, "content_type");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ct ? ct : "binary/octet-stream");
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(attrs, "meta"))
    {
        if (!cJSON_IsString(m) || !m->string)
            continue;
        char name[300];
        snprintf(name, sizeof(name), "x-amz-meta-%s", m->string);
        MHD_add_response_header(resp, name, m->valuestring);
    }
    char id[20];
    snprintf(id, sizeof(id), "%.16s", dyno_json_str(obj, "key") ? dyno_json_str(obj, "key") : "");
    MHD_add_response_header(resp, "x-amz-request-id", id);
    MHD_add_response_header(resp, "X-Dyno-Key", dyno_json_str(obj, "key") ? dyno_json_str(obj, "key") : "");
}

static ssize_t s3__no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    (void)pos;
    (void)buf;
    (void)max;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static enum MHD_Result s3__get(struct s3_ctx *x, bool head)
{
    struct gw_req *r = x->r;
    struct gw *gw = r->gw;
    enum MHD_Result ret;
    char msg[400];
    cJSON *obj = NULL;
    if (!s3__key_ok(x, &ret))
        return ret;
    int64_t t0 = gw_now_us();
    int rc = s3__load(x, false, &obj, msg, sizeof(msg));
    if (!head)
        dyno_metric_add(&gw->metrics[GW_M_GET_LOCATE_US], gw_now_us() - t0);
    if (rc)
        return s3_reply_dyno(x, rc, msg);
    char etag[80];
    s3_obj_etag(obj, etag);
    int64_t mtime = 0;
    if (dyno_json_i64(obj, "committed_at", &mtime))
        dyno_json_i64(obj, "created_at", &mtime);
    unsigned cond = s3_conditions(x, "", etag, mtime);
    if (cond == 412) {
        cJSON_Delete(obj);
        return gw_s3_err(x, 412, "PreconditionFailed",
                         "at least one of the preconditions you specified did not hold");
    }
    if (cond == 304) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (resp)
            s3__object_headers(resp, obj, etag, mtime);
        cJSON_Delete(obj);
        return gw_reply_response(r, 304, resp);
    }
    struct gw_get *g = NULL;
    snprintf(r->key, sizeof(r->key), "%s", dyno_json_str(obj, "key"));
    rc = gw_get_new(gw, r->conn, r->key, obj, &g);
    if (rc) {
        cJSON_Delete(obj);
        return s3_reply_dyno(x, rc == DYNO_ENOMEM ? rc : DYNO_EPROTO,
                             "metadata answered an unusable object record");
    }
    uint64_t size = gw_get_size(g);
    if (head) {
        gw_get_free(g);
        struct MHD_Response *resp = MHD_create_response_from_callback(size, 4096, s3__no_body, NULL, NULL);
        if (resp)
            s3__object_headers(resp, obj, etag, mtime);
        cJSON_Delete(obj);
        return gw_reply_response(r, 200, resp);
    }
    uint64_t first = 0, last = size ? size - 1 : 0;
    unsigned status = 200;
    const char *range = s3_header(x, MHD_HTTP_HEADER_RANGE);
    rc = range ? dyno_http_parse_range(range, size, &first, &last) : DYNO_ENOTFOUND;
    if (rc == DYNO_ERANGE) {
        gw_get_free(g);
        cJSON_Delete(obj);
        return gw_s3_err(x, 416, "InvalidRange",
                         "the requested range is not satisfiable (object of %llu bytes)",
                         (unsigned long long)size);
    }
    if (rc == 0) {
        status = 206;
    } else {
        first = 0;
        last = size ? size - 1 : 0;
    }
    struct MHD_Response *resp = NULL;
    if (size == 0) {
        gw_get_free(g);
        dyno_metric_add(&gw->metrics[GW_M_GETS], 1);
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    } else {
        rc = gw_get_response(r, g, first, last, status == 200, &resp, msg, sizeof(msg));
        if (rc) {
            cJSON_Delete(obj);
            return s3_reply_dyno(x, rc, msg);
        }
    }
    if (!resp) {
        cJSON_Delete(obj);
        return MHD_NO;
    }
    s3__object_headers(resp, obj, etag, mtime);
    cJSON_Delete(obj);
    if (status == 206) {
        char cr[96];
        snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)first, (unsigned long long)last,
                 (unsigned long long)size);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    }
    return gw_reply_response(r, status, resp);
}

enum MHD_Result s3_get_object(struct s3_ctx *x)
{
    return s3__get(x, false);
}

enum MHD_Result s3_head_object(struct s3_ctx *x)
{
    return s3__get(x, true);
}

/* ---- DeleteObject ---- */

/* 204 whether or not the key existed (S3); the bucket must exist and be writable. */
enum MHD_Result s3_delete_object(struct s3_ctx *x)
{
    struct gw_req *r = x->r;
    char msg[400];
    cJSON *obj = NULL;
    if (!dyno_valid_name(x->key)) {
        /* No object can have this name: nothing to delete, once the bucket is checked. */
        x->level = S3_BUCKET;
        int rc = gw_catalog_check(r, x->catalog, true, NULL, msg, sizeof(msg));
        return rc ? s3_reply_dyno(x, rc, msg) : s3_reply_empty(x, 204);
    }
    int rc = s3__load(x, true, &obj, msg, sizeof(msg));
    if (rc == DYNO_ENOTFOUND && x->level == S3_OBJECT)
        return s3_reply_empty(x, 204);
    if (rc)
        return s3_reply_dyno(x, rc, msg);
    rc = gw_evict_object(r->gw, r->conn, dyno_json_str(obj, "key"), obj, msg, sizeof(msg));
    cJSON_Delete(obj);
    if (rc && rc != DYNO_ENOTFOUND)
        return s3_reply_dyno(x, rc, msg);
    return s3_reply_empty(x, 204);
}
