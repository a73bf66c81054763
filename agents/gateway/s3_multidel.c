/*
 * DeleteObjects (POST /bucket?delete) of the S3 door (s3.h; owner s3-ops; docs/s3.md).
 *
 * The body lists up to 1000 keys; S3 requires it to carry an integrity check, Content-MD5
 * (checked here) or one of the newer x-amz-checksum-* headers (accepted: the payload hash
 * of SigV4 already covers the body unless it is UNSIGNED-PAYLOAD). The whole document is
 * parsed before anything is deleted, so a malformed one changes nothing. Each key is then
 * deleted on its own (a key that is not there counts as deleted, as in S3); the answer lists
 * each outcome, or only the errors in Quiet mode.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "s3_ops.h"

#include "log.h"

#define MULTIDEL_MAX 1000 /* keys one request may name (S3's limit) */

/* The keys of the request, parsed. */
struct multidel {
    bool quiet;
    size_t n;
    char *keys[MULTIDEL_MAX];
};

static void multidel__free(struct multidel *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->keys[i]);
    free(d);
}

/* <Delete><Quiet>bool</Quiet><Object><Key>k</Key><VersionId>v</VersionId></Object>...</Delete> */
static int multidel__parse(const char *doc, size_t len, struct multidel *d, char *msg, size_t cap)
{
    struct s3_xml x;
    char name[64], text[16];
    char *key = malloc(S3_KEY_MAX + 1);
    if (!key)
        return DYNO_ENOMEM;
    s3_xml_init(&x, doc, len);
    int rc = s3_xml_root(&x, "Delete");
    while (rc == 0) {
        int c = s3_xml_child(&x, name, sizeof(name));
        if (c == 0)
            break;
        if (c < 0) {
            rc = c;
            break;
        }
        if (strcmp(name, "Quiet") == 0) {
            rc = s3_xml_text(&x, text, sizeof(text));
            d->quiet = rc == 0 && strcasecmp(text, "true") == 0;
            continue;
        }
        if (strcmp(name, "Object") != 0) {
            rc = DYNO_EINVAL;
            break;
        }
        key[0] = '\0';
        bool has_key = false;
        while (rc == 0 && (c = s3_xml_child(&x, name, sizeof(name))) == 1) {
            if (strcmp(name, "Key") == 0) {
                rc = s3_xml_text(&x, key, S3_KEY_MAX + 1);
                has_key = true;
            } else {
                rc = s3_xml_skip(&x); /* VersionId and the like: no versions here */
            }
        }
        if (rc == 0 && c < 0)
            rc = c;
        if (rc == 0 && (!has_key || !key[0])) {
            snprintf(msg, cap, "an Object without a Key");
            rc = DYNO_EINVAL;
        }
        if (rc == 0 && d->n == MULTIDEL_MAX) {
            snprintf(msg, cap, "more than %d keys in one DeleteObjects", MULTIDEL_MAX);
            rc = DYNO_EINVAL;
        }
        if (rc == 0 && !(d->keys[d->n++] = strdup(key)))
            rc = DYNO_ENOMEM;
    }
    free(key);
    if (rc == 0 && d->n == 0) {
        snprintf(msg, cap, "no Object to delete");
        rc = DYNO_EINVAL;
    }
    if (rc == DYNO_EINVAL && !msg[0])
        snprintf(msg, cap, "the XML you provided was not well-formed or did not validate against our schema");
    return rc;
}

/* Appends one <Deleted> or <Error> entry. */
static int multidel__entry(struct dyno_buf *b, const char *key, int err, const char *why)
{
    int rc;
    if (!err) {
        rc = dyno_buf_printf(b, "<Deleted><Key>");
        rc = rc ? rc : s3_xml_esc(b, key);
        return rc ? rc : dyno_buf_printf(b, "</Key></Deleted>");
    }
    const char *code = err == DYNO_EFORBIDDEN  ? "AccessDenied"
                       : err == DYNO_EINVAL    ? "InvalidArgument"
                       : err == DYNO_EUNAVAIL  ? "ServiceUnavailable"
                       : err == DYNO_ETIMEDOUT ? "ServiceUnavailable"
                                               : "InternalError";
    rc = dyno_buf_printf(b, "<Error><Key>");
    rc = rc ? rc : s3_xml_esc(b, key);
    rc = rc ? rc : dyno_buf_printf(b, "</Key><Code>%s</Code><Message>", code);
    rc = rc ? rc : s3_xml_esc(b, why);
    return rc ? rc : dyno_buf_printf(b, "</Message></Error>");
}

static enum MHD_Result multidel__end(struct s3_ctx *x)
{
    struct gw_req *r = x->r;
    const char *doc = r->body.data ? r->body.data : "";
    size_t len = r->body.len;
    const char *md5 = s3_header(x, "Content-MD5");
    if (md5) {
        int rc = s3_content_md5_check(md5, doc, len);
        if (rc == DYNO_EINVAL)
            return gw_s3_err(x, 400, "InvalidDigest", "the Content-MD5 you specified is not valid");
        if (rc)
            return gw_s3_err(x, 400, "BadDigest",
                             "the Content-MD5 you specified did not match what we received");
    } else if (!s3_header(x, "x-amz-checksum-crc32") && !s3_header(x, "x-amz-checksum-crc32c") &&
               !s3_header(x, "x-amz-checksum-sha1") && !s3_header(x, "x-amz-checksum-sha256") &&
               !s3_header(x, "x-amz-sdk-checksum-algorithm")) {
        return gw_s3_err(x, 400, "InvalidRequest", "Missing required header for this request: Content-MD5");
    }
    struct multidel *d = calloc(1, sizeof(*d));
    if (!d)
        return gw_s3_err(x, 500, "InternalError", "out of memory");
    char msg[400] = "";
    int rc = multidel__parse(doc, len, d, msg, sizeof(msg));
    if (rc) {
        multidel__free(d);
        return rc == DYNO_ENOMEM ? gw_s3_err(x, 500, "InternalError", "out of memory")
                                 : gw_s3_err(x, 400, "MalformedXML", "%s", msg);
    }
    /* One access decision for the bucket: the catalog policy, for writing. */
    rc = gw_catalog_check(r, x->catalog, true, NULL, msg, sizeof(msg));
    if (rc) {
        multidel__free(d);
        return s3_reply_dyno(x, rc, msg);
    }
    struct dyno_buf b;
    dyno_buf_init(&b, 8u << 20);
    rc = dyno_buf_printf(&b, "<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    size_t failed = 0;
    for (size_t i = 0; i < d->n && !rc; i++) {
        int err = dyno_valid_name(d->keys[i])
                      ? s3_delete_name(r->gw, r->conn, x->catalog, d->keys[i], msg, sizeof(msg))
                      : 0; /* a key that cannot exist here is not here */
        failed += err != 0;
        if (err || !d->quiet)
            rc = multidel__entry(&b, d->keys[i], err, msg);
    }
    rc = rc ? rc : dyno_buf_printf(&b, "</DeleteResult>");
    dyno_info("s3 delete objects", "catalog=%s keys=%zu failed=%zu quiet=%d", x->catalog, d->n, failed,
              d->quiet);
    multidel__free(d);
    if (rc) {
        dyno_buf_free(&b);
        return gw_s3_err(x, 500, "InternalError", "cannot build the answer (%s)", dyno_strerror(rc));
    }
    return s3_reply_xml(x, 200, &b);
}

enum MHD_Result s3_delete_objects(struct s3_ctx *x)
{
    s3_expect_xml(x, multidel__end);
    return MHD_YES;
}
