/*
 * Multipart uploads of the S3 door (s3.h; owner s3-ops; docs/s3.md "Multipart uploads").
 *
 * An upload in progress is a metadata row (upload.create: bucket catalog, key, initiator,
 * the final object's attributes). Each part is an ordinary fabric object, streamed through
 * the put core like any put, in the initiator's hidden catalog service/s3mpu/<initiator>
 * ("service" is never a user, so no bucket, listing, share or event reaches it; its puts are
 * quiet), named <upload id>.<part number, 5 digits> so that a listing of "<upload id>."
 * gives the parts in order; its attributes hold its ETag (the MD5 of its bytes).
 *
 * CompleteMultipartUpload checks the client's list against the stored parts, then streams
 * the parts in order into one normal put of the final object (server-side, a bounded buffer
 * at a time) on a thread of its own, the reply sending S3's whitespace keep-alive
 * (s3_reply_long); the final ETag is S3's MD5 of the parts' MD5s, "-N". Only once it is
 * committed do the parts go, then the upload row: a crash in between leaves an upload that
 * the cleaner ends. Abandoned uploads (older than s3_upload_ttl_s) are aborted by the
 * cleaner thread (gw_s3_mpu_start).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "s3_ops.h"

#include "hash.h"
#include "json.h"
#include "log.h"

#define MPU_AREA "service/s3mpu/" /* + initiator: the hidden catalog of its parts */
#define MPU_PARTS_MAX 10000       /* part numbers 1..10000 (S3) */
#define MPU_PART_MIN (5u << 20)   /* every part but the last: 5 MiB at least (S3) */
#define MPU_PART_MAX (5ull << 30) /* one part: 5 GiB at most (S3) */
#define MPU_ID_LEN DYNO_KEY_LEN   /* an upload id: 32 hex (metadata's) */
#define MPU_PART_NAME_MAX (MPU_ID_LEN + 7)

/* ---- helpers ---- */

static void mpu__area(const char *initiator, char *out, size_t cap)
{
    snprintf(out, cap, MPU_AREA "%s", initiator);
}

static void mpu__part_name(const char *id, int n, char *out, size_t cap)
{
    snprintf(out, cap, "%s.%05d", id, n);
}

static enum MHD_Result mpu__no_upload(struct s3_ctx *x, const char *id)
{
    return gw_s3_err(
        x, 404, "NoSuchUpload",
        "the specified multipart upload (%s) does not exist: it may have been aborted or completed", id);
}

/* The uploadId parameter and its row, which must be for this bucket and key. *up is the
 * caller's. 0, or the reply was sent (*ret). */
static int mpu__load(struct s3_ctx *x, char id[MPU_ID_LEN + 1], cJSON **up, enum MHD_Result *ret)
{
    char msg[400];
    *up = NULL;
    if (s3_query(x, "uploadId", id, MPU_ID_LEN + 1) != 0 || !dyno_valid_key(id)) {
        *ret = mpu__no_upload(x, "?");
        return -1;
    }
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "id", id);
    int rc = gw_rpc(x->r->gw, "metadata", "upload.get", params, up, msg, sizeof(msg));
    cJSON_Delete(params);
    if (rc == 0 &&
        (strcmp(dyno_json_str(*up, "catalog") ? dyno_json_str(*up, "catalog") : "", x->catalog) != 0 ||
         strcmp(dyno_json_str(*up, "name") ? dyno_json_str(*up, "name") : "", x->key) != 0 ||
         !dyno_valid_segment(dyno_json_str(*up, "initiator"))))
        rc = DYNO_ENOTFOUND;
    if (rc) {
        cJSON_Delete(*up);
        *up = NULL;
        *ret = rc == DYNO_ENOTFOUND ? mpu__no_upload(x, id) : s3_reply_dyno(x, rc, msg);
        return -1;
    }
    return 0;
}

/* One stored part. */
struct mpu_part {
    int n;
    int64_t size;
    int64_t mtime;
    char key[DYNO_KEY_LEN + 1];
    char etag[80]; /* quoted */
};

/* The stored parts of upload id (every page of its area), in part order. *out (the
 * caller's, free) and *n. 0 or DYNO_E* with msg. */
static int mpu__parts(struct gw *gw, const char *area, const char *id, struct mpu_part **out, size_t *n,
                      char *msg, size_t cap)
{
    *out = NULL;
    *n = 0;
    char prefix[MPU_ID_LEN + 2], after[MPU_PART_NAME_MAX + 1] = "";
    snprintf(prefix, sizeof(prefix), "%s.", id);
    struct mpu_part *v = NULL;
    size_t nv = 0, capv = 0;
    int rc = 0;
    for (;;) {
        cJSON *params = cJSON_CreateObject(), *res = NULL;
        cJSON_AddStringToObject(params, "catalog", area);
        cJSON_AddStringToObject(params, "prefix", prefix);
        if (after[0])
            cJSON_AddStringToObject(params, "after", after);
        cJSON_AddNumberToObject(params, "limit", 1000);
        rc = gw_rpc(gw, "metadata", "object.list", params, &res, msg, cap);
        cJSON_Delete(params);
        if (rc)
            break;
        const cJSON *o;
        cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(res, "objects"))
        {
            const char *name = dyno_json_str(o, "name");
            const char *key = dyno_json_str(o, "key");
            int num = name && strlen(name) == MPU_ID_LEN + 6 ? atoi(name + MPU_ID_LEN + 1) : 0;
            if (num < 1 || num > MPU_PARTS_MAX || !dyno_valid_key(key))
                continue;
            if (nv == capv) {
                capv = capv ? capv * 2 : 64;
                struct mpu_part *nvv = realloc(v, capv * sizeof(*v));
                if (!nvv) {
                    rc = DYNO_ENOMEM;
                    break;
                }
                v = nvv;
            }
            struct mpu_part *p = &v[nv++];
            memset(p, 0, sizeof(*p));
            p->n = num;
            (void)dyno_json_i64(o, "size", &p->size);
            if (dyno_json_i64(o, "committed_at", &p->mtime) != 0)
                p->mtime = 0;
            snprintf(p->key, sizeof(p->key), "%s", key);
            s3_obj_etag(o, p->etag);
        }
        const char *next = dyno_json_str(res, "next");
        if (!rc && next)
            snprintf(after, sizeof(after), "%s", next);
        cJSON_Delete(res);
        if (rc || !next)
            break;
    }
    if (rc) {
        free(v);
        if (rc == DYNO_ENOMEM)
            snprintf(msg, cap, "out of memory");
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

/* Ends upload id: every part evicted, then its row. 0 or DYNO_E* with msg. */
static int mpu__end(struct gw *gw, struct gw_conn *conn, const char *area, const char *id, char *msg,
                    size_t cap)
{
    struct mpu_part *parts = NULL;
    size_t n = 0;
    int rc = mpu__parts(gw, area, id, &parts, &n, msg, cap);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char name[MPU_PART_NAME_MAX + 1];
        mpu__part_name(id, parts[i].n, name, sizeof(name));
        rc = s3_delete_name(gw, conn, area, name, msg, cap);
    }
    free(parts);
    if (rc)
        return rc;
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "id", id);
    rc = gw_rpc(gw, "metadata", "upload.delete", params, NULL, msg, cap);
    cJSON_Delete(params);
    return rc == DYNO_ENOTFOUND ? 0 : rc;
}

/* Strips the quotes of an ETag into out (33 bytes: 32 hex). */
static bool mpu__etag_hex(const char *etag, char out[33])
{
    size_t n = strlen(etag);
    if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"') {
        etag++;
        n -= 2;
    }
    if (n != 32)
        return false;
    for (size_t i = 0; i < 32; i++) {
        char c = etag[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
        out[i] = (char)(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
    }
    out[32] = '\0';
    return true;
}

/* ---- CreateMultipartUpload ---- */

enum MHD_Result s3_mpu_create(struct s3_ctx *x)
{
    char msg[400];
    if (!dyno_valid_name(x->key))
        return gw_s3_err(x, 400, "InvalidArgument", "this key cannot be an object name here");
    int rc = gw_catalog_check(x->r, x->catalog, true, NULL, msg, sizeof(msg));
    if (rc)
        return s3_reply_dyno(x, rc == DYNO_ENOTFOUND && x->level == S3_OBJECT ? DYNO_ENOTFOUND : rc, msg);
    int aerr;
    cJSON *attrs = s3_attrs_from_request(x, &aerr);
    if (!attrs)
        return s3_attrs_err(x, aerr);
    cJSON *params = cJSON_CreateObject(), *up = NULL;
    cJSON_AddStringToObject(params, "catalog", x->catalog);
    cJSON_AddStringToObject(params, "name", x->key);
    cJSON_AddStringToObject(params, "initiator", x->user);
    cJSON_AddItemToObject(params, "attrs", attrs);
    rc = gw_rpc(x->r->gw, "metadata", "upload.create", params, &up, msg, sizeof(msg));
    cJSON_Delete(params);
    if (rc)
        return rc == DYNO_ETOOBIG ? gw_s3_err(x, 400, "MetadataTooLarge", "%s", msg)
                                  : s3_reply_dyno(x, rc, msg);
    struct dyno_buf b;
    dyno_buf_init(&b, 64 * 1024);
    rc = dyno_buf_printf(&b,
                         "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                         "<Bucket>");
    rc = rc ? rc : s3_xml_esc(&b, x->bucket);
    rc = rc ? rc : dyno_buf_printf(&b, "</Bucket><Key>");
    rc = rc ? rc : s3_xml_esc(&b, x->key);
    rc = rc ? rc
            : dyno_buf_printf(&b, "</Key><UploadId>%s</UploadId></InitiateMultipartUploadResult>",
                              dyno_json_str(up, "id"));
    dyno_info("s3 upload begun", "id=%s catalog=%s initiator=%s", dyno_json_str(up, "id"), x->catalog,
              x->user);
    cJSON_Delete(up);
    if (rc) {
        dyno_buf_free(&b);
        return gw_s3_err(x, 500, "InternalError", "out of memory");
    }
    return s3_reply_xml(x, 200, &b);
}

/* ---- UploadPart ---- */

struct mpu_put {
    struct gw_put *p;
    struct s3_md5 *md5;
    char id[MPU_ID_LEN + 1];
    char area[DYNO_CATALOG_MAX + 1];
    char name[MPU_PART_NAME_MAX + 1];
};

static void mpu__put_free(struct s3_ctx *x)
{
    struct mpu_put *s = x->hstate;
    if (!s)
        return;
    gw_put_close(s->p); /* an uncommitted part is aborted */
    s3_md5_free(s->md5);
    free(s);
    x->hstate = NULL;
}

static int mpu__part_sink(struct s3_ctx *x, const char *data, size_t len)
{
    struct mpu_put *s = x->hstate;
    s3_md5_update(s->md5, data, len);
    int rc = gw_put_write(s->p, data, len);
    if (rc)
        snprintf(x->r->body_msg, sizeof(x->r->body_msg), "%s", gw_put_msg(s->p));
    return rc;
}

static enum MHD_Result mpu__part_end(struct s3_ctx *x)
{
    struct mpu_put *s = x->hstate;
    uint8_t d[16];
    char etag[35];
    s3_md5_final(s->md5, d);
    s3_etag_hex(d, etag);
    cJSON *res = NULL;
    int rc = s3_put_attrs(s->p, NULL, etag);
    if (rc == 0)
        rc = gw_put_finish(s->p, &res);
    cJSON_Delete(res);
    if (rc)
        return s3_reply_dyno(x, rc, gw_put_msg(s->p));
    /* An abort (or a completion) that ended the upload while this part streamed has already
     * deleted the parts it saw: this one goes too, else nothing would ever delete it. */
    char msg[400];
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "id", s->id);
    rc = gw_rpc(x->r->gw, "metadata", "upload.get", params, NULL, msg, sizeof(msg));
    cJSON_Delete(params);
    if (rc == DYNO_ENOTFOUND) {
        if (s3_delete_name(x->r->gw, x->r->conn, s->area, s->name, msg, sizeof(msg)) != 0)
            dyno_warn("s3 part of an ended upload left", "id=%s part=%s", s->id, s->name);
        return mpu__no_upload(x, s->id);
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(resp, "Server", "DynoStore");
    return gw_reply_response(x->r, 200, resp);
}

/* The body's size: x-amz-decoded-content-length (aws-chunked), else Content-Length; -1
 * when neither. */
static int64_t mpu__body_size(struct s3_ctx *x)
{
    const char *v = s3_header(x, "x-amz-decoded-content-length");
    if (!v)
        v = s3_header(x, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!v || !*v)
        return -1;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    return errno || *end || n < 0 || v[0] == '-' || v[0] == '+' ? -2 : (int64_t)n;
}

enum MHD_Result s3_mpu_part(struct s3_ctx *x)
{
    char msg[400], id[MPU_ID_LEN + 1], num[16];
    if (s3_query(x, "partNumber", num, sizeof(num)) != 0)
        return gw_s3_err(x, 400, "InvalidArgument", "partNumber must be an integer in 1..10000");
    char *end = NULL;
    long n = strtol(num, &end, 10);
    if (!num[0] || *end || n < 1 || n > MPU_PARTS_MAX)
        return gw_s3_err(x, 400, "InvalidArgument", "partNumber must be an integer in 1..10000");
    int64_t size = mpu__body_size(x);
    if (size == -2)
        return gw_s3_err(x, 400, "InvalidArgument", "bad Content-Length");
    if (size > (int64_t)MPU_PART_MAX)
        return gw_s3_err(x, 400, "EntityTooLarge", "a part is at most 5 GiB");
    cJSON *up = NULL, *cat = NULL;
    enum MHD_Result ret;
    if (mpu__load(x, id, &up, &ret) != 0)
        return ret;
    int rc = gw_catalog_check(x->r, x->catalog, true, &cat, msg, sizeof(msg));
    if (rc) {
        cJSON_Delete(up);
        return s3_reply_dyno(x, rc, msg);
    }
    struct s3_target t = {.quiet = true};
    mpu__area(dyno_json_str(up, "initiator"), t.catalog, sizeof(t.catalog));
    mpu__part_name(id, (int)n, t.name, sizeof(t.name));
    snprintf(t.publisher, sizeof(t.publisher), "%s", x->user);
    s3_target_shape(x->r->gw, cat, &t);
    cJSON_Delete(cat);
    cJSON_Delete(up);
    struct mpu_put *s = calloc(1, sizeof(*s));
    if (!s || s3_md5_new(&s->md5) != 0) {
        free(s);
        return gw_s3_err(x, 500, "InternalError", "out of memory");
    }
    x->hstate = s;
    x->hstate_free = mpu__put_free;
    memcpy(s->id, id, sizeof(s->id));
    snprintf(s->area, sizeof(s->area), "%s", t.catalog);
    mpu__part_name(id, (int)n, s->name, sizeof(s->name));
    rc = s3_put_open(x->r->gw, x->r->conn, &t, size, &s->p, msg, sizeof(msg));
    if (rc)
        return s3_reply_dyno(x, rc, msg);
    s3_expect_body(x, mpu__part_sink, mpu__part_end);
    return MHD_YES;
}

/* ---- UploadPartCopy ---- */

struct mpu_copy {
    struct gw *gw;
    char id[MPU_ID_LEN + 1];
    char src_key[DYNO_KEY_LEN + 1];
    cJSON *src;
    uint64_t first, last;
    struct s3_target t; /* the part */
};

static void mpu__copy_free(void *arg)
{
    struct mpu_copy *c = arg;
    cJSON_Delete(c->src);
    free(c);
}

static void mpu__copy_work(void *arg, struct gw_conn *conn, struct s3_long_out *out)
{
    struct mpu_copy *c = arg;
    char msg[400] = "", etag[35];
    struct gw_put *p = NULL;
    struct s3_md5 *md5 = NULL;
    int rc = s3_md5_new(&md5);
    if (rc == 0)
        rc = s3_put_open(c->gw, conn, &c->t, (int64_t)(c->last - c->first + 1), &p, msg, sizeof(msg));
    if (rc == 0)
        rc = s3_stream_copy(c->gw, conn, c->src_key, c->src, c->first, c->last, p, md5, msg, sizeof(msg));
    if (rc == 0) {
        uint8_t d[16];
        s3_md5_final(md5, d);
        s3_etag_hex(d, etag);
        rc = s3_put_attrs(p, NULL, etag);
    }
    cJSON *res = NULL;
    if (rc == 0 && (rc = gw_put_finish(p, &res)) != 0)
        snprintf(msg, sizeof(msg), "%s", gw_put_msg(p));
    gw_put_close(p);
    s3_md5_free(md5);
    cJSON_Delete(res);
    if (rc == 0) {
        /* As UploadPart: a part of an upload that ended meanwhile goes at once. */
        cJSON *params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "id", c->id);
        int g = gw_rpc(c->gw, "metadata", "upload.get", params, NULL, msg, sizeof(msg));
        cJSON_Delete(params);
        if (g == DYNO_ENOTFOUND) {
            (void)s3_delete_name(c->gw, conn, c->t.catalog, c->t.name, msg, sizeof(msg));
            out->status = 404;
            out->code = "NoSuchUpload";
            snprintf(out->msg, sizeof(out->msg), "the upload %s ended while the part was copied", c->id);
            return;
        }
    }
    if (rc) {
        s3_long_fail(out, rc, msg[0] ? msg : dyno_strerror(rc));
        if (rc == DYNO_ERANGE) {
            out->status = 400;
            out->code = "InvalidRange";
        }
        return;
    }
    char when[32];
    s3_iso_time((int64_t)time(NULL) * 1000, when);
    rc = dyno_buf_printf(&out->doc,
                         "<CopyPartResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LastModified>%s"
                         "</LastModified><ETag>",
                         when);
    rc = rc ? rc : s3_xml_esc(&out->doc, etag);
    rc = rc ? rc : dyno_buf_printf(&out->doc, "</ETag></CopyPartResult>");
    if (rc)
        s3_long_fail(out, rc, "cannot build the answer");
}

/* x-amz-copy-source-range: bytes=first-last (both given, inclusive), within size. */
static int mpu__copy_range(const char *v, int64_t size, uint64_t *first, uint64_t *last)
{
    unsigned long long a, b;
    int used = 0;
    if (strncmp(v, "bytes=", 6) != 0 || v[6] < '0' || v[6] > '9' ||
        sscanf(v + 6, "%llu-%llu%n", &a, &b, &used) != 2 || v[6 + used] != '\0' || a > b ||
        b >= (unsigned long long)size)
        return DYNO_EINVAL;
    *first = a;
    *last = b;
    return 0;
}

enum MHD_Result s3_mpu_copy_part(struct s3_ctx *x)
{
    char msg[400], id[MPU_ID_LEN + 1], num[16];
    if (s3_query(x, "partNumber", num, sizeof(num)) != 0)
        return gw_s3_err(x, 400, "InvalidArgument", "partNumber must be an integer in 1..10000");
    char *end = NULL;
    long n = strtol(num, &end, 10);
    if (!num[0] || *end || n < 1 || n > MPU_PARTS_MAX)
        return gw_s3_err(x, 400, "InvalidArgument", "partNumber must be an integer in 1..10000");
    cJSON *up = NULL, *cat = NULL, *src = NULL;
    enum MHD_Result ret;
    if (mpu__load(x, id, &up, &ret) != 0)
        return ret;
    int rc = gw_catalog_check(x->r, x->catalog, true, &cat, msg, sizeof(msg));
    if (rc) {
        cJSON_Delete(up);
        return s3_reply_dyno(x, rc, msg);
    }
    if (s3_copy_source(x, &src, &ret) != 0) {
        cJSON_Delete(up);
        cJSON_Delete(cat);
        return ret;
    }
    int64_t size = 0;
    (void)dyno_json_i64(src, "size", &size);
    struct mpu_copy *c = calloc(1, sizeof(*c));
    const char *range = s3_header(x, "x-amz-copy-source-range");
    if (c && range && mpu__copy_range(range, size, &c->first, &c->last) != 0) {
        free(c);
        cJSON_Delete(up);
        cJSON_Delete(cat);
        cJSON_Delete(src);
        return gw_s3_err(x, 400, "InvalidArgument",
                         "x-amz-copy-source-range must be bytes=first-last within the source's %lld bytes",
                         (long long)size);
    }
    if (c && !range && size > 0)
        c->last = (uint64_t)size - 1; /* the whole source */
    if (!c || size == 0 || c->last - c->first + 1 > MPU_PART_MAX) {
        bool empty = c && size == 0;
        free(c);
        cJSON_Delete(up);
        cJSON_Delete(cat);
        cJSON_Delete(src);
        return !c      ? gw_s3_err(x, 500, "InternalError", "out of memory")
               : empty ? gw_s3_err(x, 400, "InvalidArgument", "the source object is empty")
                       : gw_s3_err(x, 400, "InvalidArgument", "a part is at most 5 GiB: give a range");
    }
    c->gw = x->r->gw;
    memcpy(c->id, id, sizeof(c->id));
    snprintf(c->src_key, sizeof(c->src_key), "%s", dyno_json_str(src, "key"));
    c->src = src;
    c->t.quiet = true;
    mpu__area(dyno_json_str(up, "initiator"), c->t.catalog, sizeof(c->t.catalog));
    mpu__part_name(id, (int)n, c->t.name, sizeof(c->t.name));
    snprintf(c->t.publisher, sizeof(c->t.publisher), "%s", x->user);
    s3_target_shape(x->r->gw, cat, &c->t);
    cJSON_Delete(cat);
    cJSON_Delete(up);
    return s3_reply_long(x, mpu__copy_work, c, mpu__copy_free);
}

/* ---- CompleteMultipartUpload ---- */

struct mpu_complete {
    struct gw *gw;
    char id[MPU_ID_LEN + 1];
    char area[DYNO_CATALOG_MAX + 1];
    struct s3_target dst;
    cJSON *attrs;
    struct mpu_part *parts; /* the parts to assemble, in order */
    size_t n;
    char etag[48];
    char location[2048];
    char bucket[S3_BUCKET_MAX + DYNO_SEG_MAX + 8];
};

static void mpu__complete_free(void *arg)
{
    struct mpu_complete *c = arg;
    cJSON_Delete(c->attrs);
    free(c->parts);
    free(c);
}

static void mpu__complete_work(void *arg, struct gw_conn *conn, struct s3_long_out *out)
{
    struct mpu_complete *c = arg;
    char msg[400] = "";
    int64_t total = 0;
    for (size_t i = 0; i < c->n; i++)
        total += c->parts[i].size;
    struct gw_put *p = NULL;
    int rc = s3_put_open(c->gw, conn, &c->dst, total, &p, msg, sizeof(msg));
    for (size_t i = 0; rc == 0 && i < c->n; i++) {
        cJSON *params = cJSON_CreateObject(), *src = NULL;
        cJSON_AddStringToObject(params, "key", c->parts[i].key);
        rc = gw_rpc(c->gw, "metadata", "object.get", params, &src, msg, sizeof(msg));
        cJSON_Delete(params);
        if (rc == DYNO_ENOTFOUND)
            snprintf(msg, sizeof(msg), "part %d is gone (replaced or aborted meanwhile)", c->parts[i].n);
        if (rc == 0)
            rc = s3_stream_copy(c->gw, conn, c->parts[i].key, src, 0, S3_WHOLE, p, NULL, msg, sizeof(msg));
        cJSON_Delete(src);
    }
    if (rc == 0)
        rc = s3_put_attrs(p, c->attrs, c->etag);
    cJSON *res = NULL;
    if (rc == 0 && (rc = gw_put_finish(p, &res)) != 0)
        snprintf(msg, sizeof(msg), "%s", gw_put_msg(p));
    gw_put_close(p);
    cJSON_Delete(res);
    if (rc) {
        s3_long_fail(out, rc == DYNO_ENOTFOUND ? DYNO_EINVAL : rc, msg[0] ? msg : dyno_strerror(rc));
        if (rc == DYNO_ENOTFOUND)
            out->code = "InvalidPart"; /* a part gone meanwhile */
        return;
    } /* Committed: the parts and the row go (a failure here leaves them to the cleaner). */
    char m2[400];
    if (mpu__end(c->gw, conn, c->area, c->id, m2, sizeof(m2)) != 0)
        dyno_warn("s3 upload parts left to the cleaner", "id=%s detail=%s", c->id, m2);
    rc = dyno_buf_printf(&out->doc, "<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/"
                                    "2006-03-01/\"><Location>");
    rc = rc ? rc : s3_xml_esc(&out->doc, c->location);
    rc = rc ? rc : dyno_buf_printf(&out->doc, "</Location><Bucket>");
    rc = rc ? rc : s3_xml_esc(&out->doc, c->bucket);
    rc = rc ? rc : dyno_buf_printf(&out->doc, "</Bucket><Key>");
    rc = rc ? rc : s3_xml_esc(&out->doc, c->dst.name);
    rc = rc ? rc : dyno_buf_printf(&out->doc, "</Key><ETag>");
    rc = rc ? rc : s3_xml_esc(&out->doc, c->etag);
    rc = rc ? rc : dyno_buf_printf(&out->doc, "</ETag></CompleteMultipartUploadResult>");
    if (rc) {
        out->status = 500;
        out->code = "InternalError";
        snprintf(out->msg, sizeof(out->msg), "cannot build the answer");
    }
    dyno_info("s3 upload completed", "id=%s catalog=%s parts=%zu size=%lld", c->id, c->dst.catalog, c->n,
              (long long)total);
}

/* The client's list: <CompleteMultipartUpload><Part><PartNumber>n</PartNumber><ETag>e</ETag>
 * </Part>...</CompleteMultipartUpload>, into nums/etags (hex), *n entries. */
static int mpu__parse_list(const char *doc, size_t len, int *nums, char (*etags)[33], size_t *n,
                           const char **code, char *msg, size_t cap)
{
    struct s3_xml x;
    char name[64], text[128];
    *n = 0;
    *code = "MalformedXML";
    s3_xml_init(&x, doc, len);
    int rc = s3_xml_root(&x, "CompleteMultipartUpload");
    while (rc == 0) {
        int c = s3_xml_child(&x, name, sizeof(name));
        if (c == 0)
            break;
        if (c < 0 || strcmp(name, "Part") != 0) {
            rc = DYNO_EINVAL;
            break;
        }
        long num = -1;
        bool has_etag = false;
        while (rc == 0 && (c = s3_xml_child(&x, name, sizeof(name))) == 1) {
            if (strcmp(name, "PartNumber") == 0) {
                rc = s3_xml_text(&x, text, sizeof(text));
                char *end = NULL;
                num = rc == 0 && text[0] ? strtol(text, &end, 10) : -1;
                if (rc == 0 && (*end || num < 1 || num > MPU_PARTS_MAX)) {
                    *code = "InvalidArgument";
                    snprintf(msg, cap, "PartNumber must be an integer in 1..10000");
                    rc = DYNO_EINVAL;
                }
            } else if (strcmp(name, "ETag") == 0) {
                rc = s3_xml_text(&x, text, sizeof(text));
                has_etag = true;
                if (rc == 0 && *n < MPU_PARTS_MAX && !mpu__etag_hex(text, etags[*n])) {
                    *code = "InvalidPart";
                    snprintf(msg, cap, "the ETag %s names no part of this upload", text);
                    rc = DYNO_EINVAL;
                }
            } else {
                rc = s3_xml_skip(&x); /* ChecksumCRC32 and the like */
            }
        }
        if (rc == 0 && c < 0)
            rc = c;
        if (rc == 0 && (num < 0 || !has_etag)) {
            snprintf(msg, cap, "a Part without PartNumber or ETag");
            rc = DYNO_EINVAL;
        }
        if (rc == 0 && *n == MPU_PARTS_MAX) {
            snprintf(msg, cap, "more than %d parts", MPU_PARTS_MAX);
            rc = DYNO_EINVAL;
        }
        if (rc == 0)
            nums[(*n)++] = (int)num;
    }
    if (rc == 0 && *n == 0) {
        snprintf(msg, cap, "you must specify at least one part");
        rc = DYNO_EINVAL;
    }
    if (rc && !msg[0])
        snprintf(msg, cap, "the XML you provided was not well-formed or did not validate against our schema");
    return rc;
}

static enum MHD_Result mpu__complete_end(struct s3_ctx *x)
{
    struct gw_req *r = x->r;
    char msg[400] = "", id[MPU_ID_LEN + 1];
    cJSON *up = NULL, *cat = NULL;
    enum MHD_Result ret;
    if (mpu__load(x, id, &up, &ret) != 0)
        return ret;
    int rc = gw_catalog_check(r, x->catalog, true, &cat, msg, sizeof(msg));
    if (rc) {
        cJSON_Delete(up);
        return s3_reply_dyno(x, rc, msg);
    }
    struct mpu_complete *c = calloc(1, sizeof(*c));
    int *nums = calloc(MPU_PARTS_MAX, sizeof(*nums));
    char(*etags)[33] = calloc(MPU_PARTS_MAX, sizeof(*etags));
    struct mpu_part *stored = NULL;
    size_t nlist = 0, nstored = 0;
    const char *code = "InternalError";
    unsigned status = 500;
    if (!c || !nums || !etags) {
        snprintf(msg, sizeof(msg), "out of memory");
        rc = DYNO_ENOMEM;
        goto fail;
    }
    c->gw = r->gw;
    memcpy(c->id, id, sizeof(c->id));
    mpu__area(dyno_json_str(up, "initiator"), c->area, sizeof(c->area));
    rc = mpu__parse_list(r->body.data ? r->body.data : "", r->body.len, nums, etags, &nlist, &code, msg,
                         sizeof(msg));
    if (rc) {
        status = 400;
        goto fail;
    }
    rc = mpu__parts(r->gw, c->area, id, &stored, &nstored, msg, sizeof(msg));
    if (rc) {
        code = NULL;
        goto fail;
    }
    c->parts = calloc(nlist, sizeof(*c->parts));
    struct s3_md5 *md5 = NULL;
    if (!c->parts || s3_md5_new(&md5) != 0) {
        snprintf(msg, sizeof(msg), "out of memory");
        rc = DYNO_ENOMEM;
        goto fail;
    }
    /* Each listed part: ascending, stored with that ETag, and (but the last) 5 MiB at least. */
    size_t j = 0;
    status = 400;
    rc = DYNO_EINVAL;
    for (size_t i = 0; i < nlist; i++) {
        if (i > 0 && nums[i] <= nums[i - 1]) {
            code = "InvalidPartOrder";
            snprintf(msg, sizeof(msg), "the list of parts was not in ascending order: part %d after part %d",
                     nums[i], nums[i - 1]);
            break;
        }
        while (j < nstored && stored[j].n < nums[i])
            j++;
        char have[33];
        if (j == nstored || stored[j].n != nums[i] || !mpu__etag_hex(stored[j].etag, have) ||
            strcmp(have, etags[i]) != 0) {
            code = "InvalidPart";
            snprintf(msg, sizeof(msg), "part %d was not found or its ETag does not match", nums[i]);
            break;
        }
        if (i + 1 < nlist && stored[j].size < (int64_t)MPU_PART_MIN) {
            code = "EntityTooSmall";
            snprintf(msg, sizeof(msg),
                     "part %d is %lld bytes: every part but the last must be 5 MiB at least", nums[i],
                     (long long)stored[j].size);
            break;
        }
        c->parts[c->n++] = stored[j];
        uint8_t bin[16];
        for (int b = 0; b < 16; b++)
            bin[b] = (uint8_t)(dyno_hexval(have[2 * b]) << 4 | dyno_hexval(have[2 * b + 1]));
        s3_md5_update(md5, bin, 16);
    }
    if (c->n == nlist) {
        uint8_t d[16];
        char hex[33];
        s3_md5_final(md5, d);
        dyno_hex(d, 16, hex);
        snprintf(c->etag, sizeof(c->etag), "\"%s-%zu\"", hex, nlist);
        rc = 0;
    }
    s3_md5_free(md5);
    if (rc)
        goto fail;
    snprintf(c->dst.catalog, sizeof(c->dst.catalog), "%s", x->catalog);
    snprintf(c->dst.name, sizeof(c->dst.name), "%s", x->key);
    snprintf(c->dst.publisher, sizeof(c->dst.publisher), "%s", x->user);
    s3_target_shape(r->gw, cat, &c->dst);
    snprintf(c->bucket, sizeof(c->bucket), "%s", x->bucket);
    const char *host = s3_header(x, MHD_HTTP_HEADER_HOST);
    snprintf(c->location, sizeof(c->location), "http://%s%s", host ? host : "localhost", r->url);
    const cJSON *ua = cJSON_GetObjectItemCaseSensitive(up, "attrs");
    c->attrs = ua ? cJSON_Duplicate(ua, true) : cJSON_CreateObject();
    free(nums);
    free(etags);
    free(stored);
    cJSON_Delete(up);
    cJSON_Delete(cat);
    return s3_reply_long(x, mpu__complete_work, c, mpu__complete_free);
fail:
    free(nums);
    free(etags);
    free(stored);
    cJSON_Delete(up);
    cJSON_Delete(cat);
    if (c)
        mpu__complete_free(c);
    if (!code)
        return s3_reply_dyno(x, rc, msg);
    return gw_s3_err(x, status, code, "%s", msg);
}

enum MHD_Result s3_mpu_complete(struct s3_ctx *x)
{
    s3_expect_xml(x, mpu__complete_end);
    return MHD_YES;
}

/* ---- AbortMultipartUpload ---- */

enum MHD_Result s3_mpu_abort(struct s3_ctx *x)
{
    char msg[400], id[MPU_ID_LEN + 1], area[DYNO_CATALOG_MAX + 1];
    cJSON *up = NULL;
    enum MHD_Result ret;
    if (mpu__load(x, id, &up, &ret) != 0)
        return ret;
    int rc = gw_catalog_check(x->r, x->catalog, true, NULL, msg, sizeof(msg));
    if (rc == 0) {
        mpu__area(dyno_json_str(up, "initiator"), area, sizeof(area));
        rc = mpu__end(x->r->gw, x->r->conn, area, id, msg, sizeof(msg));
    }
    cJSON_Delete(up);
    if (rc)
        return s3_reply_dyno(x, rc, msg);
    dyno_info("s3 upload aborted", "id=%s catalog=%s", id, x->catalog);
    return s3_reply_empty(x, 204);
}

/* ---- ListParts ---- */

/* A non-negative integer parameter (def when absent), at most max. */
static int mpu__int_param(struct s3_ctx *x, const char *name, long def, long max, long *out)
{
    char v[24];
    int rc = s3_query(x, name, v, sizeof(v));
    *out = def;
    if (rc == DYNO_ENOTFOUND)
        return 0;
    char *end = NULL;
    long n = rc == 0 && v[0] && v[0] != '-' && v[0] != '+' ? strtol(v, &end, 10) : -1;
    if (n < 0 || (end && *end))
        return DYNO_EINVAL;
    *out = n > max ? max : n;
    return 0;
}

enum MHD_Result s3_mpu_list_parts(struct s3_ctx *x)
{
    char msg[400], id[MPU_ID_LEN + 1], area[DYNO_CATALOG_MAX + 1];
    long marker, max;
    if (mpu__int_param(x, "part-number-marker", 0, MPU_PARTS_MAX, &marker) != 0 ||
        mpu__int_param(x, "max-parts", 1000, 1000, &max) != 0)
        return gw_s3_err(x, 400, "InvalidArgument", "part-number-marker and max-parts must be integers >= 0");
    cJSON *up = NULL;
    enum MHD_Result ret;
    if (mpu__load(x, id, &up, &ret) != 0)
        return ret;
    int rc = gw_catalog_check(x->r, x->catalog, false, NULL, msg, sizeof(msg));
    if (rc) {
        cJSON_Delete(up);
        return s3_reply_dyno(x, rc, msg);
    }
    const char *initiator = dyno_json_str(up, "initiator");
    mpu__area(initiator, area, sizeof(area));
    cJSON *res = NULL;
    if (max > 0) {
        char prefix[MPU_ID_LEN + 2], after[MPU_PART_NAME_MAX + 1];
        snprintf(prefix, sizeof(prefix), "%s.", id);
        mpu__part_name(id, (int)marker, after, sizeof(after));
        cJSON *params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "catalog", area);
        cJSON_AddStringToObject(params, "prefix", prefix);
        if (marker > 0)
            cJSON_AddStringToObject(params, "after", after);
        cJSON_AddNumberToObject(params, "limit", (double)max);
        rc = gw_rpc(x->r->gw, "metadata", "object.list", params, &res, msg, sizeof(msg));
        cJSON_Delete(params);
        if (rc) {
            cJSON_Delete(up);
            return s3_reply_dyno(x, rc, msg);
        }
    }
    const char *next = dyno_json_str(res, "next");
    struct dyno_buf b;
    dyno_buf_init(&b, 8u << 20);
    rc = dyno_buf_printf(&b, "<ListPartsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>");
    rc = rc ? rc : s3_xml_esc(&b, x->bucket);
    rc = rc ? rc : dyno_buf_printf(&b, "</Bucket><Key>");
    rc = rc ? rc : s3_xml_esc(&b, x->key);
    rc = rc ? rc
            : dyno_buf_printf(
                  &b,
                  "</Key><UploadId>%s</UploadId><Initiator><ID>%s</ID><DisplayName>%s</DisplayName>"
                  "</Initiator><Owner><ID>%s</ID><DisplayName>%s</DisplayName></Owner>"
                  "<StorageClass>STANDARD</StorageClass><PartNumberMarker>%ld</PartNumberMarker>",
                  id, initiator, initiator, x->owner, x->owner, marker);
    int last = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(res, "objects"))
    {
        const char *name = dyno_json_str(o, "name");
        int num = name && strlen(name) == MPU_ID_LEN + 6 ? atoi(name + MPU_ID_LEN + 1) : 0;
        if (rc || num < 1)
            continue;
        int64_t size = 0, t = 0;
        (void)dyno_json_i64(o, "size", &size);
        (void)dyno_json_i64(o, "committed_at", &t);
        char when[32];
        s3_iso_time(t * 1000, when);
        char etag[80];
        s3_obj_etag(o, etag);
        rc = dyno_buf_printf(&b, "<Part><PartNumber>%d</PartNumber><LastModified>%s</LastModified><ETag>",
                             num, when);
        rc = rc ? rc : s3_xml_esc(&b, etag);
        rc = rc ? rc : dyno_buf_printf(&b, "</ETag><Size>%lld</Size></Part>", (long long)size);
        last = num;
    }
    rc = rc ? rc
            : dyno_buf_printf(&b,
                              "<NextPartNumberMarker>%d</NextPartNumberMarker><MaxParts>%ld</MaxParts>"
                              "<IsTruncated>%s</IsTruncated></ListPartsResult>",
                              last, max, next ? "true" : "false");
    cJSON_Delete(res);
    cJSON_Delete(up);
    if (rc) {
        dyno_buf_free(&b);
        return gw_s3_err(x, 500, "InternalError", "cannot build the answer");
    }
    return s3_reply_xml(x, 200, &b);
}

/* ---- ListMultipartUploads ---- */

enum MHD_Result s3_mpu_list_uploads(struct s3_ctx *x)
{
    char msg[400], prefix[DYNO_NAME_MAX + 1] = "", kmarker[DYNO_NAME_MAX + 1] = "", imarker[64] = "";
    long max;
    int rc;
    if (mpu__int_param(x, "max-uploads", 1000, 1000, &max) != 0)
        return gw_s3_err(x, 400, "InvalidArgument", "max-uploads must be an integer >= 0");
    if (((rc = s3_query(x, "prefix", prefix, sizeof(prefix))) != 0 && rc != DYNO_ENOTFOUND) ||
        ((rc = s3_query(x, "key-marker", kmarker, sizeof(kmarker))) != 0 && rc != DYNO_ENOTFOUND) ||
        ((rc = s3_query(x, "upload-id-marker", imarker, sizeof(imarker))) != 0 && rc != DYNO_ENOTFOUND) ||
        (prefix[0] && !dyno_valid_text(prefix, DYNO_NAME_MAX)) ||
        (kmarker[0] && !dyno_valid_text(kmarker, DYNO_NAME_MAX)) || (imarker[0] && !dyno_valid_key(imarker)))
        return gw_s3_err(x, 400, "InvalidArgument", "bad prefix, key-marker or upload-id-marker");
    rc = gw_catalog_check(x->r, x->catalog, false, NULL, msg, sizeof(msg));
    if (rc)
        return s3_reply_dyno(x, rc, msg);
    cJSON *res = NULL;
    if (max > 0) {
        cJSON *params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "catalog", x->catalog);
        if (prefix[0])
            cJSON_AddStringToObject(params, "prefix", prefix);
        if (kmarker[0])
            cJSON_AddStringToObject(params, "after", kmarker);
        if (kmarker[0] && imarker[0])
            cJSON_AddStringToObject(params, "after_id", imarker);
        cJSON_AddNumberToObject(params, "limit", (double)max);
        rc = gw_rpc(x->r->gw, "metadata", "upload.list", params, &res, msg, sizeof(msg));
        cJSON_Delete(params);
        if (rc)
            return s3_reply_dyno(x, rc, msg);
    }
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(res, "next");
    bool more = cJSON_IsObject(next);
    struct dyno_buf b;
    dyno_buf_init(&b, 8u << 20);
    rc = dyno_buf_printf(&b, "<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                             "<Bucket>");
    rc = rc ? rc : s3_xml_esc(&b, x->bucket);
    rc = rc ? rc : dyno_buf_printf(&b, "</Bucket><KeyMarker>");
    rc = rc ? rc : s3_xml_esc(&b, kmarker);
    rc = rc ? rc : dyno_buf_printf(&b, "</KeyMarker><UploadIdMarker>%s</UploadIdMarker>", imarker);
    if (!rc && more) {
        rc = dyno_buf_printf(&b, "<NextKeyMarker>");
        rc = rc ? rc : s3_xml_esc(&b, dyno_json_str(next, "name"));
        rc = rc ? rc
                : dyno_buf_printf(&b, "</NextKeyMarker><NextUploadIdMarker>%s</NextUploadIdMarker>",
                                  dyno_json_str(next, "id"));
    }
    rc = rc ? rc : dyno_buf_printf(&b, "<Prefix>");
    rc = rc ? rc : s3_xml_esc(&b, prefix);
    rc = rc ? rc
            : dyno_buf_printf(&b, "</Prefix><MaxUploads>%ld</MaxUploads><IsTruncated>%s</IsTruncated>", max,
                              more ? "true" : "false");
    const cJSON *u;
    cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(res, "uploads"))
    {
        if (rc)
            break;
        const char *ini = dyno_json_str(u, "initiator");
        int64_t t = 0;
        (void)dyno_json_i64(u, "created_at", &t);
        char when[32];
        s3_iso_time(t * 1000, when);
        rc = dyno_buf_printf(&b, "<Upload><Key>");
        rc = rc ? rc : s3_xml_esc(&b, dyno_json_str(u, "name"));
        rc = rc ? rc
                : dyno_buf_printf(
                      &b,
                      "</Key><UploadId>%s</UploadId><Initiator><ID>%s</ID><DisplayName>%s"
                      "</DisplayName></Initiator><Owner><ID>%s</ID><DisplayName>%s</DisplayName>"
                      "</Owner><StorageClass>STANDARD</StorageClass><Initiated>%s</Initiated></Upload>",
                      dyno_json_str(u, "id"), ini, ini, x->owner, x->owner, when);
    }
    rc = rc ? rc : dyno_buf_printf(&b, "</ListMultipartUploadsResult>");
    cJSON_Delete(res);
    if (rc) {
        dyno_buf_free(&b);
        return gw_s3_err(x, 500, "InternalError", "cannot build the answer");
    }
    return s3_reply_xml(x, 200, &b);
}

/* ---- the cleaner of abandoned uploads ---- */

struct gw_s3_mpu {
    struct gw *gw;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

/* One pass: every upload older than the ttl is aborted. Returns the uploads ended. */
int gw_s3_mpu_clean(struct gw *gw, struct gw_conn *conn)
{
    char msg[400];
    cJSON *params = cJSON_CreateObject(), *res = NULL;
    dyno_json_add_i64(params, "older_than_s", gw->cfg.s3_upload_ttl_s);
    cJSON_AddNumberToObject(params, "limit", 100);
    int rc = gw_rpc(gw, "metadata", "upload.expired", params, &res, msg, sizeof(msg));
    cJSON_Delete(params);
    if (rc)
        return 0;
    int ended = 0;
    const cJSON *u;
    cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(res, "uploads"))
    {
        const char *id = dyno_json_str(u, "id");
        const char *ini = dyno_json_str(u, "initiator");
        if (!dyno_valid_key(id) || !dyno_valid_segment(ini))
            continue;
        char area[DYNO_CATALOG_MAX + 1];
        mpu__area(ini, area, sizeof(area));
        if (mpu__end(gw, conn, area, id, msg, sizeof(msg)) == 0) {
            ended++;
            dyno_info("s3 abandoned upload cleaned", "id=%s catalog=%s", id, dyno_json_str(u, "catalog"));
        } else {
            char q[300];
            dyno_warn("s3 abandoned upload not cleaned", "id=%s detail=%s", id,
                      dyno_log_q(q, sizeof(q), msg));
        }
    }
    cJSON_Delete(res);
    return ended;
}

static void *mpu__cleaner(void *arg)
{
    struct gw_s3_mpu *m = arg;
    struct gw_conn *conn = calloc(1, sizeof(*conn));
    /* Checks at a tenth of the ttl (1 s .. 60 s): an upload is ended at most that late. */
    int64_t period = m->gw->cfg.s3_upload_ttl_s / 10;
    period = period < 1 ? 1 : period > 60 ? 60 : period;
    pthread_mutex_lock(&m->mu);
    while (!m->stop) {
        struct timespec ts;
        dyno_deadline_in(&ts, CLOCK_REALTIME, period * 1000);
        while (!m->stop && pthread_cond_timedwait(&m->cv, &m->mu, &ts) == 0)
            ;
        if (m->stop || !conn)
            break;
        pthread_mutex_unlock(&m->mu);
        while (gw_s3_mpu_clean(m->gw, conn) == 100)
            ; /* a full batch: more may wait */
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    if (conn)
        gw_conn_free(conn);
    return NULL;
}

int gw_s3_mpu_start(struct gw *gw)
{
    if (gw->cfg.s3_port < 0 || gw->cfg.s3_upload_ttl_s <= 0)
        return 0;
    struct gw_s3_mpu *m = calloc(1, sizeof(*m));
    if (!m)
        return DYNO_ENOMEM;
    m->gw = gw;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    if (pthread_create(&m->th, NULL, mpu__cleaner, m) != 0) {
        pthread_mutex_destroy(&m->mu);
        pthread_cond_destroy(&m->cv);
        free(m);
        return DYNO_EINTERNAL;
    }
    gw->s3mpu = m;
    return 0;
}

void gw_s3_mpu_stop(struct gw *gw)
{
    struct gw_s3_mpu *m = gw->s3mpu;
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->th, NULL);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m);
    gw->s3mpu = NULL;
}
