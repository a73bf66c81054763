/*
 * The S3 door (s3.h): a second listener whose requests live the REST request's life
 * (rest.c: connection pool, body callbacks, close hook, request log) but are routed here:
 * the bucket and key from the Host header or the path, AWS Signature V4 (lib/sigv4.h) with
 * the access key's secret from s3key.c, the bucket mapped to a catalog, then the dispatch
 * table below. Every error is S3's XML document (gw_s3_err); anything the table does not
 * know answers 501 NotImplemented.
 */
#define _GNU_SOURCE /* memmem */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "s3.h"

#include "json.h"
#include "log.h"
#include "rest.h"

/* ---- XML ---- */

int s3_xml_esc(struct dyno_buf *b, const char *s)
{
    int rc = 0;
    for (const char *p = s; *p && !rc; p++) {
        switch (*p) {
        case '<':
            rc = dyno_buf_append(b, "&lt;", 4);
            break;
        case '>':
            rc = dyno_buf_append(b, "&gt;", 4);
            break;
        case '&':
            rc = dyno_buf_append(b, "&amp;", 5);
            break;
        case '"':
            rc = dyno_buf_append(b, "&quot;", 6);
            break;
        case '\'':
            rc = dyno_buf_append(b, "&apos;", 6);
            break;
        default:
            rc = dyno_buf_append(b, p, 1);
        }
    }
    return rc;
}

void s3_iso_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[24];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", base, (int)(ms % 1000));
}

void s3_http_date(int64_t ms, char out[40])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday, mons[tm.tm_mon],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* A request id for x-amz-request-id and error documents: unique enough to find a log line. */
static void s3__request_id(char out[20])
{
    static atomic_uint_fast64_t seq;
    uint64_t n = atomic_fetch_add(&seq, 1);
    snprintf(out, 20, "%08llX%08llX", (unsigned long long)(time(NULL) & 0xffffffff),
             (unsigned long long)(n & 0xffffffff));
}

static void s3__common_headers(struct MHD_Response *resp)
{
    char id[20];
    s3__request_id(id);
    MHD_add_response_header(resp, "x-amz-request-id", id);
    MHD_add_response_header(resp, "Server", "DynoStore");
}

enum MHD_Result s3_reply_xml(struct s3_ctx *x, unsigned status, struct dyno_buf *body)
{
    static const char prolog[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    size_t len = 0;
    char *doc = dyno_buf_take(body, &len);
    char *all = malloc(sizeof(prolog) + len);
    if (!all) {
        free(doc);
        return MHD_NO;
    }
    memcpy(all, prolog, sizeof(prolog) - 1);
    if (len)
        memcpy(all + sizeof(prolog) - 1, doc, len);
    free(doc);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(sizeof(prolog) - 1 + len, all, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(all);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/xml");
    s3__common_headers(resp);
    return gw_reply_response(x->r, status, resp);
}

enum MHD_Result s3_reply_empty(struct s3_ctx *x, unsigned status)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    s3__common_headers(resp);
    return gw_reply_response(x->r, status, resp);
}

/* The error document for request r (x may be NULL: a reply before routing). */
static enum MHD_Result s3__err_doc(struct gw_req *r, struct s3_ctx *x, unsigned status, const char *code,
                                   const char *msg, const char *hname, const char *hval)
{
    struct dyno_buf b;
    dyno_buf_init(&b, 16 * 1024);
    char id[20];
    s3__request_id(id);
    int rc = dyno_buf_printf(
        &b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>", code);
    rc = rc ? rc : s3_xml_esc(&b, msg);
    rc = rc ? rc : dyno_buf_printf(&b, "</Message>");
    if (!rc && x && x->bucket[0]) {
        rc = dyno_buf_printf(&b, "<BucketName>");
        rc = rc ? rc : s3_xml_esc(&b, x->bucket);
        rc = rc ? rc : dyno_buf_printf(&b, "</BucketName>");
    }
    if (!rc && x && x->key[0]) {
        rc = dyno_buf_printf(&b, "<Key>");
        rc = rc ? rc : s3_xml_esc(&b, x->key);
        rc = rc ? rc : dyno_buf_printf(&b, "</Key>");
    }
    if (!rc && r->url) {
        rc = dyno_buf_printf(&b, "<Resource>");
        rc = rc ? rc : s3_xml_esc(&b, r->url);
        rc = rc ? rc : dyno_buf_printf(&b, "</Resource>");
    }
    rc = rc ? rc : dyno_buf_printf(&b, "<RequestId>%s</RequestId></Error>", id);
    size_t len = 0;
    char *doc = dyno_buf_take(&b, &len);
    dyno_buf_free(&b);
    if (rc || !doc) {
        free(doc);
        return MHD_NO;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, doc, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(doc);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/xml");
    MHD_add_response_header(resp, "x-amz-request-id", id);
    MHD_add_response_header(resp, "Server", "DynoStore");
    if (status == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (hname)
        MHD_add_response_header(resp, hname, hval);
    char q[300];
    dyno_log_q(q, sizeof(q), msg);
    dyno_info("s3 error", "status=%u code=%s detail=%s", status, code, q);
    return gw_reply_response(r, status, resp);
}

enum MHD_Result gw_s3_err(struct s3_ctx *x, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
        msg[0] = '\0';
    va_end(ap);
    return s3__err_doc(x->r, x, status, code, msg, NULL, NULL);
}

/* S3's code and status for a DYNO_E* failure at level. */
static void s3__map(int err, enum s3_level level, const char **code, unsigned *status)
{
    switch (err) {
    case DYNO_ENOTFOUND:
        *status = 404;
        *code = level == S3_OBJECT ? "NoSuchKey" : "NoSuchBucket";
        return;
    case DYNO_EFORBIDDEN:
    case DYNO_EUNAUTH:
        *status = 403;
        *code = "AccessDenied";
        return;
    case DYNO_EINVAL:
        *status = 400;
        *code = "InvalidArgument";
        return;
    case DYNO_ETOOBIG:
        *status = 400;
        *code = "EntityTooLarge";
        return;
    case DYNO_EMETHOD:
        *status = 405;
        *code = "MethodNotAllowed";
        return;
    case DYNO_ECONFLICT:
        *status = 409;
        *code = "OperationAborted";
        return;
    case DYNO_EEXIST:
        *status = 409;
        *code = "BucketAlreadyExists";
        return;
    case DYNO_ELIMIT:
        *status = 503;
        *code = "SlowDown";
        return;
    case DYNO_EUNAVAIL:
    case DYNO_ENOSPC:
        *status = 503;
        *code = "ServiceUnavailable";
        return;
    case DYNO_ETIMEDOUT:
        *status = 503;
        *code = "ServiceUnavailable";
        return;
    default:
        *status = 500;
        *code = "InternalError";
        return;
    }
}

enum MHD_Result s3_reply_dyno(struct s3_ctx *x, int err, const char *msg)
{
    const char *code;
    unsigned status;
    s3__map(err, x->level, &code, &status);
    return s3__err_doc(x->r, x, status, code, msg, NULL, NULL);
}

/* rest.c's gw_reply_err for a request of the S3 listener: the same failure as S3 XML. An error
 * the body filter met (x->fail_code) keeps its own S3 code. */
enum MHD_Result gw_s3_reply_err(struct gw_req *r, const struct dyno_http_error *e, const char *msg)
{
    struct s3_ctx *x = r->s3;
    const char *code;
    unsigned status;
    s3__map(e->err, x ? x->level : S3_SERVICE, &code, &status);
    if (x && x->fail_code) {
        code = x->fail_code;
        status = x->fail_status;
    } else if (e->status == 501) {
        code = "NotImplemented";
        status = 501;
    } else if (e->status == 431) {
        code = "RequestHeaderSectionTooLarge";
        status = 400;
    } else if (e->err == DYNO_EINVAL && strstr(msg, "takes no body")) {
        code = "UnexpectedContent";
    }
    return s3__err_doc(r, x, status, code, msg, e->close ? MHD_HTTP_HEADER_CONNECTION : NULL,
                       e->close ? "close" : NULL);
}

/* ---- request parts ---- */

const char *s3_header(const struct s3_ctx *x, const char *name)
{
    return MHD_lookup_connection_value(x->r->c, MHD_HEADER_KIND, name);
}

static const char *s3__header_cb(void *cls, const char *name)
{
    return s3_header(cls, name);
}

/* Percent-decodes s[0..n) into out (cap bytes), '+' kept. 0, DYNO_EINVAL, DYNO_ETOOBIG. */
static int s3__decode(const char *s, size_t n, char *out, size_t cap)
{
    if (n >= cap)
        return DYNO_ETOOBIG;
    memcpy(out, s, n);
    out[n] = '\0';
    return dyno_url_decode(out);
}

int s3_query(const struct s3_ctx *x, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = x->query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        char k[128];
        if (klen < sizeof(k) && s3__decode(p, klen, k, sizeof(k)) == 0 && strlen(k) == nl &&
            strcmp(k, name) == 0) {
            if (!eq) {
                if (cap == 0)
                    return DYNO_ETOOBIG;
                out[0] = '\0';
                return 0;
            }
            return s3__decode(eq + 1, len - klen - 1, out, cap);
        }
        p = amp ? amp + 1 : NULL;
    }
    return DYNO_ENOTFOUND;
}

bool s3_has_query(const struct s3_ctx *x, const char *name)
{
    char v[2];
    int rc = s3_query(x, name, v, sizeof(v));
    return rc == 0 || rc == DYNO_ETOOBIG;
}

/* The raw query string back from MHD's arguments: MHD turned '+' into ' ' (our unescape
 * callback decodes nothing else), and a raw space cannot be in a request line, so every
 * space was a '+'. The order does not matter: SigV4 sorts, lookups search. */
struct s3__qs {
    struct dyno_buf b;
    int rc;
};

static void s3__qs_add(struct dyno_buf *b, const char *s, int *rc)
{
    for (const char *p = s; *p && !*rc; p++)
        *rc = dyno_buf_append(b, *p == ' ' ? "+" : p, 1);
}

static enum MHD_Result s3__qs_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    struct s3__qs *q = cls;
    if (q->rc)
        return MHD_NO;
    if (q->b.len)
        q->rc = dyno_buf_append(&q->b, "&", 1);
    s3__qs_add(&q->b, key, &q->rc);
    if (value && !q->rc) {
        q->rc = dyno_buf_append(&q->b, "=", 1);
        s3__qs_add(&q->b, value, &q->rc);
    }
    return q->rc ? MHD_NO : MHD_YES;
}

static int s3__query_string(struct s3_ctx *x)
{
    struct s3__qs q = {.rc = 0};
    dyno_buf_init(&q.b, 16 * 1024);
    MHD_get_connection_values(x->r->c, MHD_GET_ARGUMENT_KIND, s3__qs_cb, &q);
    if (!q.rc && dyno_buf_append(&q.b, "", 1) == 0) {
        x->query = dyno_buf_take(&q.b, NULL);
        dyno_buf_free(&q.b);
        return x->query ? 0 : DYNO_ENOMEM;
    }
    dyno_buf_free(&q.b);
    return q.rc ? q.rc : DYNO_ENOMEM;
}

/* ---- bucket <-> catalog ---- */

int s3_bucket_to_catalog(const char *caller, const char *bucket, char *catalog, size_t cap, char *owner,
                         size_t owner_cap)
{
    const char *sep = strstr(bucket, S3_OWNER_SEP);
    char own[DYNO_SEG_MAX + 1];
    const char *name = bucket;
    if (sep) {
        size_t ol = (size_t)(sep - bucket);
        if (ol == 0 || ol > DYNO_SEG_MAX)
            return DYNO_EINVAL;
        memcpy(own, bucket, ol);
        own[ol] = '\0';
        name = sep + strlen(S3_OWNER_SEP);
    } else {
        snprintf(own, sizeof(own), "%s", caller);
    }
    if (!dyno_valid_segment(own) || !dyno_valid_segment(name))
        return DYNO_EINVAL;
    if ((size_t)snprintf(catalog, cap, "%s/%s", own, name) >= cap)
        return DYNO_EINVAL;
    if (!dyno_valid_catalog(catalog))
        return DYNO_EINVAL;
    snprintf(owner, owner_cap, "%s", own);
    return 0;
}

void s3_catalog_to_bucket(const char *caller, const char *catalog, char *bucket, size_t cap)
{
    bucket[0] = '\0';
    const char *slash = strchr(catalog, '/');
    if (!slash || strchr(slash + 1, '/'))
        return; /* only top-level catalogs are buckets */
    size_t ol = (size_t)(slash - catalog);
    const char *name = slash + 1;
    if (ol == strlen(caller) && strncmp(catalog, caller, ol) == 0 && !strstr(name, S3_OWNER_SEP))
        snprintf(bucket, cap, "%s", name);
    else if (!memmem(catalog, ol, S3_OWNER_SEP, strlen(S3_OWNER_SEP)))
        snprintf(bucket, cap, "%.*s%s%s", (int)ol, catalog, S3_OWNER_SEP, name);
}

/* ---- the body filter ---- */

static int s3__emit(void *cls, const char *data, size_t len)
{
    struct s3_ctx *x = cls;
    return x->sink(x, data, len);
}

static int s3__on_body(struct gw_req *r, const char *data, size_t len)
{
    struct s3_ctx *x = r->s3;
    const char *code = NULL;
    unsigned status = 0;
    int rc =
        sigv4_body_feed(&x->body, data, len, s3__emit, x, &code, &status, r->body_msg, sizeof(r->body_msg));
    if (rc && code) {
        x->fail_code = code;
        x->fail_status = status;
    }
    return rc;
}

static enum MHD_Result s3__on_end(struct gw_req *r)
{
    struct s3_ctx *x = r->s3;
    const char *code = NULL;
    unsigned status = 0;
    char msg[300];
    int rc = sigv4_body_end(&x->body, &code, &status, msg, sizeof(msg));
    if (rc) {
        gw_req_close(r); /* the handler's state (an uncommitted put is aborted) goes first */
        return s3__err_doc(r, x, status, code, msg, NULL, NULL);
    }
    return x->sink_end(x);
}

void s3_expect_body(struct s3_ctx *x, int (*sink)(struct s3_ctx *, const char *, size_t),
                    enum MHD_Result (*sink_end)(struct s3_ctx *))
{
    x->sink = sink;
    x->sink_end = sink_end;
    x->r->on_body = s3__on_body;
    x->r->on_end = s3__on_end;
}

static int s3__xml_sink(struct s3_ctx *x, const char *data, size_t len)
{
    int rc = dyno_buf_append(&x->r->body, data, len);
    if (rc == DYNO_ETOOBIG) {
        x->fail_code = "MalformedXML";
        x->fail_status = 400;
        snprintf(x->r->body_msg, sizeof(x->r->body_msg), "XML body larger than %d bytes", S3_XML_BODY_MAX);
    }
    return rc;
}

static enum MHD_Result s3__xml_end(struct s3_ctx *x)
{
    return x->xml_end(x);
}

void s3_expect_xml(struct s3_ctx *x, enum MHD_Result (*on_end)(struct s3_ctx *))
{
    dyno_buf_free(&x->r->body);
    dyno_buf_init(&x->r->body, S3_XML_BODY_MAX);
    x->xml_end = on_end;
    s3_expect_body(x, s3__xml_sink, s3__xml_end);
}

/* ---- authentication ---- */

/* SigV4 of the request: x->user and r->claims on success; else the error is answered. */
static enum MHD_Result s3__authenticate(struct s3_ctx *x, bool *ok)
{
    struct gw_req *r = x->r;
    *ok = false;
    const struct sigv4_in in = {.method = x->method,
                                .path = r->url,
                                .query = x->query,
                                .header = s3__header_cb,
                                .cls = x,
                                .now = (int64_t)time(NULL)};
    const char *code = NULL;
    unsigned status = 0;
    char msg[400];
    int rc = sigv4_parse(&in, r->gw->cfg.s3_region, &x->sig, &code, &status, msg, sizeof(msg));
    if (rc)
        return s3__err_doc(r, x, status, code, msg, NULL, NULL);
    struct gw_s3key k;
    rc = gw_s3key_valid_id(x->sig.key_id) ? gw_s3key_get(r->gw, x->sig.key_id, &k) : DYNO_ENOTFOUND;
    if (rc == DYNO_ENOTFOUND)
        return gw_s3_err(x, 403, "InvalidAccessKeyId",
                         "the AWS access key id you provided does not exist in our records");
    if (rc)
        return gw_s3_err(x, 503, "ServiceUnavailable", "access keys cannot be checked now (%s)",
                         dyno_strerror(rc));
    uint8_t key[32];
    rc = sigv4_verify(&in, &x->sig, k.secret, key, &code, &status, msg, sizeof(msg));
    gw_wipe(k.secret, sizeof(k.secret));
    if (rc)
        return s3__err_doc(r, x, status, code, msg, NULL, NULL);
    rc = sigv4_body_init(&x->body, &x->sig, key, s3_header(x, "x-amz-decoded-content-length"));
    gw_wipe(key, sizeof(key));
    if (rc == DYNO_EINVAL)
        return gw_s3_err(x, 400, "InvalidArgument", "bad x-amz-decoded-content-length");
    if (rc)
        return gw_s3_err(x, 500, "InternalError", "out of memory");
    if (!dyno_valid_segment(k.user))
        return gw_s3_err(x, 500, "InternalError", "the access key's owner is not a valid user name");
    /* The key's owner is the caller, as a bearer token's sub would be. Access is still the
     * catalog policy alone (gw_catalog_check), now for this user. */
    snprintf(x->user, sizeof(x->user), "%s", k.user);
    memset(&r->claims, 0, sizeof(r->claims));
    snprintf(r->claims.sub, sizeof(r->claims.sub), "%s", k.user);
    snprintf(r->claims.org, sizeof(r->claims.org), "%s", k.org);
    r->claims.admin = k.admin;
    snprintf(r->claims.role, sizeof(r->claims.role), "user");
    r->authed = true;
    *ok = true;
    return MHD_YES;
}

/* ---- routing ---- */

/* The sub-resources of S3 (query parameters that select another operation). A request with
 * one the table does not route is NotImplemented, never mistaken for the plain operation. */
static const char *const s3_subresources[] = {"acl",
                                              "accelerate",
                                              "analytics",
                                              "attributes",
                                              "cors",
                                              "delete",
                                              "encryption",
                                              "intelligent-tiering",
                                              "inventory",
                                              "legal-hold",
                                              "lifecycle",
                                              "location",
                                              "logging",
                                              "metrics",
                                              "notification",
                                              "object-lock",
                                              "ownershipControls",
                                              "partNumber",
                                              "policy",
                                              "policyStatus",
                                              "publicAccessBlock",
                                              "replication",
                                              "requestPayment",
                                              "restore",
                                              "retention",
                                              "select",
                                              "tagging",
                                              "torrent",
                                              "uploadId",
                                              "uploads",
                                              "versioning",
                                              "versions",
                                              "website",
                                              NULL};

struct s3_route {
    const char *method;
    enum s3_level level;
    const char *query;     /* a sub-resource (or parameter) that must be present, or NULL */
    const char *query_val; /* ... with this value, or NULL: any */
    const char *header;    /* a header that must be present, or NULL */
    enum MHD_Result (*h)(struct s3_ctx *x);
};

/* First match wins: the specific forms before the plain one. */
static const struct s3_route s3_routes[] = {
    {"GET", S3_SERVICE, NULL, NULL, NULL, s3_list_buckets},

    {"GET", S3_BUCKET, "location", NULL, NULL, s3_get_bucket_location},
    {"GET", S3_BUCKET, "uploads", NULL, NULL, s3_mpu_list_uploads},
    {"GET", S3_BUCKET, "list-type", "2", NULL, s3_list_objects_v2},
    {"GET", S3_BUCKET, NULL, NULL, NULL, s3_list_objects_v1},
    {"PUT", S3_BUCKET, NULL, NULL, NULL, s3_create_bucket},
    {"HEAD", S3_BUCKET, NULL, NULL, NULL, s3_head_bucket},
    {"DELETE", S3_BUCKET, NULL, NULL, NULL, s3_delete_bucket},
    {"POST", S3_BUCKET, "delete", NULL, NULL, s3_delete_objects},

    {"PUT", S3_OBJECT, "uploadId", NULL, "x-amz-copy-source", s3_mpu_copy_part},
    {"PUT", S3_OBJECT, "uploadId", NULL, NULL, s3_mpu_part},
    {"PUT", S3_OBJECT, NULL, NULL, "x-amz-copy-source", s3_copy_object},
    {"PUT", S3_OBJECT, NULL, NULL, NULL, s3_put_object},
    {"POST", S3_OBJECT, "uploads", NULL, NULL, s3_mpu_create},
    {"POST", S3_OBJECT, "uploadId", NULL, NULL, s3_mpu_complete},
    {"DELETE", S3_OBJECT, "uploadId", NULL, NULL, s3_mpu_abort},
    {"DELETE", S3_OBJECT, NULL, NULL, NULL, s3_delete_object},
    {"GET", S3_OBJECT, "uploadId", NULL, NULL, s3_mpu_list_parts},
    {"GET", S3_OBJECT, "tagging", NULL, NULL, s3_get_object_tagging},
    {"GET", S3_OBJECT, NULL, NULL, NULL, s3_get_object},
    {"HEAD", S3_OBJECT, NULL, NULL, NULL, s3_head_object},
};

/* Whether the request has a sub-resource other than the one the route names. */
static bool s3__other_subresource(const struct s3_ctx *x, const char *allowed)
{
    for (const char *const *s = s3_subresources; *s; s++) {
        if (allowed && strcmp(*s, allowed) == 0)
            continue;
        /* partNumber goes with uploadId (UploadPart), nowhere else. */
        if (allowed && strcmp(allowed, "uploadId") == 0 && strcmp(*s, "partNumber") == 0)
            continue;
        if (s3_has_query(x, *s))
            return true;
    }
    return false;
}

static const struct s3_route *s3__match(const struct s3_ctx *x)
{
    for (size_t i = 0; i < sizeof(s3_routes) / sizeof(s3_routes[0]); i++) {
        const struct s3_route *rt = &s3_routes[i];
        if (rt->level != x->level || strcmp(rt->method, x->method) != 0)
            continue;
        if (rt->header && !s3_header(x, rt->header))
            continue;
        if (rt->query) {
            char v[16];
            int rc = s3_query(x, rt->query, v, sizeof(v));
            if (rc == DYNO_ENOTFOUND || (rt->query_val && (rc || strcmp(v, rt->query_val) != 0)))
                continue;
        }
        if (s3__other_subresource(x, rt->query))
            continue;
        return rt;
    }
    return NULL;
}

/* The bucket of a virtual-host request: Host is <bucket>.<s3_domain>[:port]. */
static bool s3__virtual_bucket(struct s3_ctx *x)
{
    const char *dom = x->r->gw->cfg.s3_domain;
    const char *host = s3_header(x, MHD_HTTP_HEADER_HOST);
    if (!dom || !dom[0] || !host)
        return false;
    size_t hl = strcspn(host, ":"), dl = strlen(dom);
    if (hl <= dl + 1 || host[hl - dl - 1] != '.' || strncasecmp(host + hl - dl, dom, dl) != 0)
        return false;
    size_t bl = hl - dl - 1;
    if (bl >= sizeof(x->bucket))
        return false;
    memcpy(x->bucket, host, bl);
    x->bucket[bl] = '\0';
    x->virtual_host = true;
    return true;
}

/* Bucket and key from the Host header and the raw path. */
static int s3__parse_target(struct s3_ctx *x, char *msg, size_t cap)
{
    const char *path = x->r->url;
    if (path[0] != '/') {
        snprintf(msg, cap, "the path must start with /");
        return DYNO_EINVAL;
    }
    path++;
    const char *keyp;
    if (s3__virtual_bucket(x)) {
        keyp = path;
    } else {
        const char *slash = strchr(path, '/');
        size_t bl = slash ? (size_t)(slash - path) : strlen(path);
        if (bl == 0) {
            x->level = S3_SERVICE;
            return 0;
        }
        if (s3__decode(path, bl, x->bucket, sizeof(x->bucket))) {
            snprintf(msg, cap, "bad bucket name");
            return DYNO_EINVAL;
        }
        keyp = slash ? slash + 1 : "";
    }
    if (!*keyp) {
        x->level = S3_BUCKET;
        return 0;
    }
    int rc = s3__decode(keyp, strlen(keyp), x->key, sizeof(x->key));
    if (rc) {
        snprintf(msg, cap, rc == DYNO_ETOOBIG ? "the key is longer than %d bytes" : "bad key encoding",
                 S3_KEY_MAX);
        x->key[0] = '\0';
        return rc == DYNO_ETOOBIG ? DYNO_ETOOBIG : DYNO_EINVAL;
    }
    x->level = S3_OBJECT;
    return 0;
}

enum MHD_Result gw_s3_route(struct gw_req *r)
{
    struct s3_ctx *x = calloc(1, sizeof(*x));
    if (!x)
        return MHD_NO;
    r->s3 = x;
    x->r = r;
    x->method = r->method;
    if (s3__query_string(x))
        return gw_s3_err(x, 400, "InvalidArgument", "bad query string");
    char msg[300];
    int rc = s3__parse_target(x, msg, sizeof(msg));
    if (rc == DYNO_ETOOBIG)
        return gw_s3_err(x, 400, "KeyTooLongError", "%s", msg);
    if (rc)
        return gw_s3_err(x, 400, "InvalidURI", "%s", msg);

    bool ok = false;
    enum MHD_Result ret = s3__authenticate(x, &ok);
    if (!ok)
        return ret;
    if (x->level != S3_SERVICE &&
        s3_bucket_to_catalog(x->user, x->bucket, x->catalog, sizeof(x->catalog), x->owner, sizeof(x->owner)))
        return gw_s3_err(
            x, 400, "InvalidBucketName",
            "the bucket name is not valid here: a catalog name (letters, digits, '.', '_', '-'), or "
            "<owner>--<catalog> for another user's catalog");
    /* The gateway's helpers (access checks, catalog RPCs) read the catalog from r. */
    memcpy(r->catalog, x->catalog, sizeof(r->catalog));
    const struct s3_route *rt = s3__match(x);
    if (!rt)
        return gw_s3_err(x, 501, "NotImplemented",
                         "%s on this resource is not implemented by DynoStore's S3 door", x->method);
    return rt->h(x);
}

void gw_s3_req_free(struct gw_req *r)
{
    struct s3_ctx *x = r->s3;
    if (!x)
        return;
    if (x->hstate_free)
        x->hstate_free(x);
    sigv4_body_free(&x->body);
    free(x->query);
    free(x);
    r->s3 = NULL;
}

/* ---- the listener ---- */

int gw_s3_start(struct gw *gw)
{
    if (gw->cfg.s3_port < 0)
        return 0;
    char err[300], q[320];
    int rc = gw_httpd_listen(gw, &gw->s3httpd, (unsigned)gw->cfg.s3_port, err, sizeof(err));
    if (rc) {
        dyno_error("cannot start the S3 listener", "port=%d detail=%s", (int)gw->cfg.s3_port,
                   dyno_log_q(q, sizeof(q), err));
        return rc;
    }
    gw->s3_port = gw->s3httpd.port;
    if (gw->cfg.s3_port_file) {
        char txt[16];
        int l = snprintf(txt, sizeof(txt), "%u\n", gw->s3_port);
        if (dyno_write_file(gw->cfg.s3_port_file, txt, (size_t)l, 0644)) {
            dyno_error("cannot write s3_port_file", "path=%s", gw->cfg.s3_port_file);
            gw_s3_stop(gw);
            return DYNO_EIO;
        }
    }
    dyno_info("s3 listener started", "port=%u region=%s", gw->s3_port, gw->cfg.s3_region);
    return 0;
}

void gw_s3_stop(struct gw *gw)
{
    dyno_httpd_stop(&gw->s3httpd);
}
