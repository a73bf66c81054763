/*
 * ListObjects V1 and V2 of the S3 door (s3.h; owner s3-ops; docs/s3.md "Listing").
 *
 * One page is one metadata object.list: the bucket's catalog, the prefix, the delimiter
 * (metadata rolls names up into common prefixes and seeks past each group), the start
 * (V2: the continuation token, else start-after; V1: the marker) and max-keys. The page's
 * "next" (the last key or common prefix listed) is what the next page starts after:
 * V1's NextMarker as it is, V2's NextContinuationToken as base64url of it (opaque to the
 * client, checked when it comes back).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3_ops.h"

#include "json.h"
#include "token.h" /* base64url */

#define LIST_MAX_KEYS 1000
/* A token is base64url of a name: 4/3 of it, and some room. */
#define LIST_TOKEN_MAX (((DYNO_NAME_MAX + 2) / 3) * 4 + 8)

/* One listing request, as parsed from the query. */
struct list__req {
    bool v2;
    bool url; /* encoding-type=url */
    int max;  /* max-keys */
    char prefix[DYNO_NAME_MAX + 1];
    char delim[DYNO_NAME_MAX + 1];
    char start[DYNO_NAME_MAX + 1];  /* V2 start-after, V1 marker */
    char token[LIST_TOKEN_MAX + 1]; /* V2 continuation-token as received */
    char after[DYNO_NAME_MAX + 1];  /* where the page starts (exclusive) */
};

/* Appends <tag>value</tag>, value XML-escaped, or URL-encoded first (encoding-type=url). */
static int list__elem(struct dyno_buf *b, const char *tag, const char *value, bool url)
{
    int rc = dyno_buf_printf(b, "<%s>", tag);
    if (!rc && url) {
        size_t n = strlen(value);
        char *enc = malloc(n * 3 + 1);
        if (!enc)
            return DYNO_ENOMEM;
        rc = sigv4_uri_encode(value, n, false, enc, n * 3 + 1);
        rc = rc ? rc : s3_xml_esc(b, enc);
        free(enc);
    } else if (!rc) {
        rc = s3_xml_esc(b, value);
    }
    return rc ? rc : dyno_buf_printf(b, "</%s>", tag);
}

/* A text parameter of at most DYNO_NAME_MAX bytes of UTF-8 ("" when absent). */
static int list__text(struct s3_ctx *x, const char *name, char *out, size_t cap, char *msg, size_t mcap)
{
    int rc = s3_query(x, name, out, cap);
    if (rc == DYNO_ENOTFOUND) {
        out[0] = '\0';
        return 0;
    }
    if (rc == 0 && (!out[0] || dyno_valid_text(out, cap - 1)))
        return 0;
    snprintf(msg, mcap, "%s must be UTF-8 text of at most %zu bytes without control characters", name,
             cap - 1);
    return DYNO_EINVAL;
}

/* The query of a listing into q; an error message in msg. */
static int list__parse(struct s3_ctx *x, struct list__req *q, char *msg, size_t cap)
{
    char v[32];
    int rc = s3_query(x, "max-keys", v, sizeof(v));
    q->max = LIST_MAX_KEYS;
    if (rc == 0) {
        char *end = NULL;
        long n = strtol(v, &end, 10);
        if (!v[0] || *end || n < 0 || v[0] == '+' || v[0] == ' ') {
            snprintf(msg, cap, "max-keys must be a non-negative integer");
            return DYNO_EINVAL;
        }
        q->max = n > LIST_MAX_KEYS ? LIST_MAX_KEYS : (int)n;
    } else if (rc != DYNO_ENOTFOUND) {
        snprintf(msg, cap, "max-keys must be a non-negative integer");
        return DYNO_EINVAL;
    }
    rc = s3_query(x, "encoding-type", v, sizeof(v));
    if (rc == 0 && strcmp(v, "url") != 0) {
        snprintf(msg, cap, "encoding-type must be url");
        return DYNO_EINVAL;
    }
    q->url = rc == 0;
    if ((rc = list__text(x, "prefix", q->prefix, sizeof(q->prefix), msg, cap)) != 0 ||
        (rc = list__text(x, "delimiter", q->delim, sizeof(q->delim), msg, cap)) != 0 ||
        (rc = list__text(x, q->v2 ? "start-after" : "marker", q->start, sizeof(q->start), msg, cap)) != 0)
        return rc;
    snprintf(q->after, sizeof(q->after), "%s", q->start);
    if (!q->v2)
        return 0;
    rc = s3_query(x, "continuation-token", q->token, sizeof(q->token));
    if (rc == DYNO_ENOTFOUND) {
        q->token[0] = '\0';
        return 0;
    }
    /* The token wins over start-after (S3). It is base64url of the name to start after. */
    uint8_t raw[DYNO_NAME_MAX + 1];
    size_t n = 0;
    if (rc || !q->token[0] || dyno_b64url_decode(q->token, strlen(q->token), raw, sizeof(raw) - 1, &n) != 0 ||
        n == 0) {
        snprintf(msg, cap, "the continuation token provided is incorrect");
        return DYNO_EINVAL;
    }
    raw[n] = '\0';
    if (strlen((char *)raw) != n || !dyno_valid_text((char *)raw, DYNO_NAME_MAX)) {
        snprintf(msg, cap, "the continuation token provided is incorrect");
        return DYNO_EINVAL;
    }
    memcpy(q->after, raw, n + 1);
    return 0;
}

/* LastModified of a listed object: committed_at (seconds). */
static int64_t list__mtime_ms(const cJSON *o)
{
    int64_t t = 0;
    if (dyno_json_i64(o, "committed_at", &t) != 0 && dyno_json_i64(o, "created_at", &t) != 0)
        t = 0;
    return t * 1000;
}

/* The ListBucketResult of one page (res: object.list's answer, NULL when max-keys is 0). */
static int list__xml(struct s3_ctx *x, const struct list__req *q, const cJSON *res, struct dyno_buf *b)
{
    const cJSON *objs = cJSON_GetObjectItemCaseSensitive(res, "objects");
    const cJSON *pfx = cJSON_GetObjectItemCaseSensitive(res, "prefixes");
    const char *next = dyno_json_str(res, "next");
    int count = cJSON_GetArraySize(objs) + cJSON_GetArraySize(pfx);
    int rc = dyno_buf_printf(b, "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    rc = rc ? rc : list__elem(b, "Name", x->bucket, false);
    rc = rc ? rc : list__elem(b, "Prefix", q->prefix, q->url);
    if (!rc && q->delim[0])
        rc = list__elem(b, "Delimiter", q->delim, q->url);
    rc = rc ? rc : dyno_buf_printf(b, "<MaxKeys>%d</MaxKeys>", q->max);
    if (!rc && q->url)
        rc = dyno_buf_printf(b, "<EncodingType>url</EncodingType>");
    rc = rc ? rc : dyno_buf_printf(b, "<IsTruncated>%s</IsTruncated>", next ? "true" : "false");
    if (q->v2) {
        rc = rc ? rc : dyno_buf_printf(b, "<KeyCount>%d</KeyCount>", count);
        if (!rc && q->token[0])
            rc = list__elem(b, "ContinuationToken", q->token, false);
        if (!rc && q->start[0])
            rc = list__elem(b, "StartAfter", q->start, q->url);
        if (!rc && next) {
            size_t n = strlen(next);
            char *tok = malloc(((n + 2) / 3) * 4 + 1);
            if (!tok)
                return DYNO_ENOMEM;
            dyno_b64url_encode((const uint8_t *)next, n, tok);
            rc = list__elem(b, "NextContinuationToken", tok, false);
            free(tok);
        }
    } else {
        rc = rc ? rc : list__elem(b, "Marker", q->start, q->url);
        /* S3 gives NextMarker only with a delimiter (else the last key is the marker);
         * giving it always is allowed and spares clients the rule. */
        if (!rc && next)
            rc = list__elem(b, "NextMarker", next, q->url);
    }
    const cJSON *o;
    cJSON_ArrayForEach(o, objs)
    {
        if (rc)
            break;
        char etag[80], when[32];
        int64_t size = 0;
        (void)dyno_json_i64(o, "size", &size);
        s3_obj_etag(o, etag);
        s3_iso_time(list__mtime_ms(o), when);
        rc = dyno_buf_printf(b, "<Contents>");
        rc = rc ? rc : list__elem(b, "Key", dyno_json_str(o, "name"), q->url);
        rc = rc ? rc : dyno_buf_printf(b, "<LastModified>%s</LastModified>", when);
        if (!rc && etag[0])
            rc = list__elem(b, "ETag", etag, false);
        rc = rc ? rc
                : dyno_buf_printf(b, "<Size>%lld</Size><StorageClass>STANDARD</StorageClass></Contents>",
                                  (long long)size);
    }
    cJSON_ArrayForEach(o, pfx)
    {
        if (rc)
            break;
        rc = dyno_buf_printf(b, "<CommonPrefixes>");
        rc = rc ? rc : list__elem(b, "Prefix", cJSON_IsString(o) ? o->valuestring : "", q->url);
        rc = rc ? rc : dyno_buf_printf(b, "</CommonPrefixes>");
    }
    return rc ? rc : dyno_buf_printf(b, "</ListBucketResult>");
}

static enum MHD_Result list__run(struct s3_ctx *x, bool v2)
{
    char msg[400];
    struct list__req *q = calloc(1, sizeof(*q));
    if (!q)
        return gw_s3_err(x, 500, "InternalError", "out of memory");
    q->v2 = v2;
    int rc = list__parse(x, q, msg, sizeof(msg));
    if (rc) {
        free(q);
        return gw_s3_err(x, 400, "InvalidArgument", "%s", msg);
    }
    cJSON *res = NULL;
    rc = gw_catalog_check(x->r, x->catalog, false, NULL, msg, sizeof(msg));
    if (rc == 0 && q->max > 0) {
        cJSON *params = cJSON_CreateObject();
        cJSON_AddStringToObject(params, "catalog", x->catalog);
        if (q->prefix[0])
            cJSON_AddStringToObject(params, "prefix", q->prefix);
        if (q->delim[0])
            cJSON_AddStringToObject(params, "delimiter", q->delim);
        if (q->after[0])
            cJSON_AddStringToObject(params, "after", q->after);
        cJSON_AddNumberToObject(params, "limit", q->max);
        rc = gw_rpc(x->r->gw, "metadata", "object.list", params, &res, msg, sizeof(msg));
        cJSON_Delete(params);
    }
    if (rc) {
        free(q);
        return s3_reply_dyno(x, rc, msg);
    }
    struct dyno_buf b;
    dyno_buf_init(&b, 64u << 20);
    rc = list__xml(x, q, res, &b);
    cJSON_Delete(res);
    free(q);
    if (rc) {
        dyno_buf_free(&b);
        return gw_s3_err(x, 500, "InternalError", "cannot build the listing (%s)", dyno_strerror(rc));
    }
    return s3_reply_xml(x, 200, &b);
}

enum MHD_Result s3_list_objects_v1(struct s3_ctx *x)
{
    return list__run(x, false);
}

enum MHD_Result s3_list_objects_v2(struct s3_ctx *x)
{
    return list__run(x, true);
}
