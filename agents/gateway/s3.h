/*
 * The S3 door of the gateway (issue 14, docs/s3.md): a second MHD listener on s3_port whose
 * requests go through the same request life as the REST API (rest.c: struct gw_req, body
 * callbacks, close hook) but are routed here, authenticated by AWS Signature V4
 * (lib/sigv4.h) and answered in S3's XML.
 *
 *   s3.c          listener, request context, router (the dispatch table), SigV4 glue, the
 *                 body filter (aws-chunked decoding, payload hash check), XML replies
 *   s3_bucket.c   ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation
 *   s3_obj.c      PutObject, GetObject, HeadObject, DeleteObject
 *   s3_list.c     ListObjects V1/V2                          (s3-ops)
 *   s3_multidel.c DeleteObjects                              (s3-ops)
 *   s3_copy.c     CopyObject (PUT with x-amz-copy-source)    (s3-ops)
 *   s3_mpu.c      multipart uploads                          (s3-ops)
 *
 * Mapping: bucket B is the caller's catalog <caller>/B; bucket <owner>--<B> is the catalog
 * <owner>/<B> of another user (shared with the caller). The key is the object's name.
 * The catalog policy is the only access decision (gw_catalog_check).
 *
 * Threads: every handler runs in its client connection's MHD thread, like the REST ones.
 */
#ifndef GW_S3_H
#define GW_S3_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw.h"
#include "sigv4.h"

#define S3_KEY_MAX 1024           /* an object key, bytes of UTF-8 (S3's limit) */
#define S3_BUCKET_MAX 63          /* a bucket name (S3's limit) */
#define S3_OWNER_SEP "--"         /* <owner>--<bucket>: a catalog of another user (docs/s3.md) */
#define S3_XML_BODY_MAX (1 << 20) /* XML request bodies (CompleteMultipartUpload, Delete) */

/* What the request addresses: the service (ListBuckets), a bucket, or an object in it. */
enum s3_level { S3_SERVICE, S3_BUCKET, S3_OBJECT };

/* One S3 request, held by r->s3 from the router on; freed with the request. */
struct s3_ctx {
    struct gw_req *r;
    const char *method;
    enum s3_level level;
    char bucket[S3_BUCKET_MAX + DYNO_SEG_MAX + 8]; /* as the client named it */
    char catalog[DYNO_CATALOG_MAX + 1];            /* the catalog it maps to ("" at S3_SERVICE) */
    char owner[DYNO_SEG_MAX + 1];                  /* the catalog's owner */
    char key[S3_KEY_MAX + 1];                      /* decoded object key ("" unless S3_OBJECT) */
    bool virtual_host;                             /* the bucket came from the Host header */
    char *query;                                   /* the raw query string (after '?'), or "" */
    char user[DYNO_SEG_MAX + 1];                   /* the caller after SigV4 ("" = anonymous) */
    struct sigv4_req sig;                          /* the parsed signature (lib/sigv4.h) */

    /* Body: s3.c's filter decodes aws-chunked bodies, hashes what arrives and hands the
     * payload bytes to sink; at the end of the body it checks x-amz-content-sha256 and only
     * then calls sink_end, so a body whose hash does not match is never committed. A handler
     * that takes a body sets both (s3_expect_body); bodies of other requests are refused. */
    int (*sink)(struct s3_ctx *x, const char *data, size_t len);
    enum MHD_Result (*sink_end)(struct s3_ctx *x);
    void *hstate;                          /* the handler's */
    void (*hstate_free)(struct s3_ctx *x); /* frees hstate when the request ends, or NULL */
    struct sigv4_body body;                /* the filter's state */
    const char *fail_code;                 /* S3 code of a body failure (static), or NULL */
    unsigned fail_status;
    enum MHD_Result (*xml_end)(struct s3_ctx *x); /* s3_expect_xml's */
};

/* Header of the request (case-insensitive name), or NULL. */
const char *s3_header(const struct s3_ctx *x, const char *name);
/* A query parameter, percent-decoded into out: 0, DYNO_ENOTFOUND, DYNO_ETOOBIG, DYNO_EINVAL. A
 * parameter without '=' ("?uploads") is found with value "". */
int s3_query(const struct s3_ctx *x, const char *name, char *out, size_t cap);
bool s3_has_query(const struct s3_ctx *x, const char *name);
/* Installs the body sink of the request (see struct s3_ctx). */
void s3_expect_body(struct s3_ctx *x, int (*sink)(struct s3_ctx *, const char *, size_t),
                    enum MHD_Result (*sink_end)(struct s3_ctx *));
/* Collects an XML body of at most S3_XML_BODY_MAX bytes into x->r->body, then runs on_end. */
void s3_expect_xml(struct s3_ctx *x, enum MHD_Result (*on_end)(struct s3_ctx *));

/* ---- replies ---- */
/* S3's error document <Error><Code>code</Code><Message>..</Message><Resource>..</Resource>
 * <RequestId>..</RequestId></Error> with status. */
enum MHD_Result gw_s3_err(struct s3_ctx *x, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The S3 error of a DYNO_E* failure (NoSuchBucket/NoSuchKey for DYNO_ENOTFOUND as the level
 * says, AccessDenied, ServiceUnavailable...). */
enum MHD_Result s3_reply_dyno(struct s3_ctx *x, int err, const char *msg);
/* A 200 (or status) with an XML document: the prolog is added. body is taken (freed). */
enum MHD_Result s3_reply_xml(struct s3_ctx *x, unsigned status, struct dyno_buf *body);
/* An empty reply with status (200, 204). */
enum MHD_Result s3_reply_empty(struct s3_ctx *x, unsigned status);
/* Appends s XML-escaped to b. 0 or DYNO_ETOOBIG/ENOMEM. */
int s3_xml_esc(struct dyno_buf *b, const char *s);
/* RFC 3339 time of a unix time in ms, with milliseconds ("2026-12-07T20:00:00.000Z"). */
void s3_iso_time(int64_t ms, char out[32]);
/* RFC 7231 HTTP date ("Mon, 07 Dec 2026 20:00:00 GMT"). */
void s3_http_date(int64_t ms, char out[40]);

/* ---- the listener (s3.c) ---- */
/* Starts the S3 listener when cfg.s3_port >= 0 (writes s3_port_file). 0 or DYNO_E* (logged). */
int gw_s3_start(struct gw *gw);
void gw_s3_stop(struct gw *gw);
/* gw_reply_err for a request of the S3 listener: the same failure as S3 XML (rest.c). */
enum MHD_Result gw_s3_reply_err(struct gw_req *r, const struct dyno_http_error *e, const char *msg);
/* The router of an S3 request (rest.c calls it for requests of the S3 listener). */
enum MHD_Result gw_s3_route(struct gw_req *r);
/* Frees the S3 state of a request (rest.c, at its end). */
void gw_s3_req_free(struct gw_req *r);

/* Bucket name <-> catalog (docs/s3.md). 0, or DYNO_EINVAL (not a bucket name this mapping
 * knows). */
int s3_bucket_to_catalog(const char *caller, const char *bucket, char *catalog, size_t cap, char *owner,
                         size_t owner_cap);
/* The bucket name under which caller sees catalog (a top-level catalog <owner>/<b>); "" when
 * the catalog has no bucket form (deeper catalogs). */
void s3_catalog_to_bucket(const char *caller, const char *catalog, char *bucket, size_t cap);

/* ---- handlers (each answers the request) ---- */
/* s3_bucket.c */
enum MHD_Result s3_list_buckets(struct s3_ctx *x);
enum MHD_Result s3_create_bucket(struct s3_ctx *x);
enum MHD_Result s3_head_bucket(struct s3_ctx *x);
enum MHD_Result s3_delete_bucket(struct s3_ctx *x);
enum MHD_Result s3_get_bucket_location(struct s3_ctx *x);
/* s3_obj.c */
enum MHD_Result s3_put_object(struct s3_ctx *x);
enum MHD_Result s3_get_object(struct s3_ctx *x);
enum MHD_Result s3_head_object(struct s3_ctx *x);
enum MHD_Result s3_delete_object(struct s3_ctx *x);
/* s3_list.c (s3-ops) */
enum MHD_Result s3_list_objects_v1(struct s3_ctx *x);
enum MHD_Result s3_list_objects_v2(struct s3_ctx *x);
/* s3_multidel.c (s3-ops): POST /bucket?delete */
enum MHD_Result s3_delete_objects(struct s3_ctx *x);
/* s3_copy.c (s3-ops): PUT /bucket/key with x-amz-copy-source */
enum MHD_Result s3_copy_object(struct s3_ctx *x);
/* s3_copy.c (s3-ops): GET /bucket/key?tagging, an empty TagSet (no tags here), which
 * `aws s3 cp` asks for before a multipart copy */
enum MHD_Result s3_get_object_tagging(struct s3_ctx *x);
/* s3_mpu.c (s3-ops) */
enum MHD_Result s3_mpu_create(struct s3_ctx *x);       /* POST /b/k?uploads */
enum MHD_Result s3_mpu_part(struct s3_ctx *x);         /* PUT /b/k?partNumber=N&uploadId=U */
enum MHD_Result s3_mpu_copy_part(struct s3_ctx *x);    /* the same with x-amz-copy-source */
enum MHD_Result s3_mpu_complete(struct s3_ctx *x);     /* POST /b/k?uploadId=U */
enum MHD_Result s3_mpu_abort(struct s3_ctx *x);        /* DELETE /b/k?uploadId=U */
enum MHD_Result s3_mpu_list_parts(struct s3_ctx *x);   /* GET /b/k?uploadId=U */
enum MHD_Result s3_mpu_list_uploads(struct s3_ctx *x); /* GET /b?uploads */
#endif
