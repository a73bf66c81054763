/*
 * What the S3 operations of s3-ops (s3_list.c, s3_multidel.c, s3_copy.c, s3_mpu.c) share:
 * a small XML reader for the request bodies S3 clients send (Delete,
 * CompleteMultipartUpload), MD5 helpers, the object lookup by name, and the server-side
 * stream of one object's bytes into a put (CopyObject, CompleteMultipartUpload).
 */
#ifndef GW_S3_OPS_H
#define GW_S3_OPS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "s3.h"
#include "s3_xml.h"

/* ---- MD5 (S3's ETag and Content-MD5) ---- */
struct s3_md5; /* OpenSSL's EVP context */
int s3_md5_new(struct s3_md5 **out);
void s3_md5_update(struct s3_md5 *m, const void *p, size_t n);
void s3_md5_final(struct s3_md5 *m, uint8_t out[16]); /* m may be updated again only after _new */
void s3_md5_free(struct s3_md5 *m);
/* MD5 of p[0..n). */
void s3_md5(const void *p, size_t n, uint8_t out[16]);
/* Whether the Content-MD5 header value (base64 of 16 bytes) is the MD5 of p[0..n). 0,
 * DYNO_EINVAL (not base64 of 16 bytes: InvalidDigest), DYNO_ECONFLICT (BadDigest). */
int s3_content_md5_check(const char *header, const void *p, size_t n);

/* ---- objects ---- */
/* The visible object named name in catalog: its object.get record, fragments and attributes
 * included (*obj, the caller's). 0, DYNO_ENOTFOUND, or the RPC's error (msg). */
int s3_find_object(struct gw *gw, const char *catalog, const char *name, cJSON **obj, char *msg, size_t cap);
/* Removes the object named name from catalog if there is one (object.evict, its fragments,
 * object.evicted). 0 (also when there was none: S3's delete), or DYNO_E* with msg. */
int s3_delete_name(struct gw *gw, struct gw_conn *conn, const char *catalog, const char *name, char *msg,
                   size_t cap);

/* The source of a copy (x-amz-copy-source: [/]<bucket>/<key>, percent-encoded): read access
 * on its catalog, then its object.get record (*src, the caller's). 0, or the error was
 * answered (*ret: NoSuchBucket, NoSuchKey, AccessDenied, InvalidArgument...). */
int s3_copy_source(struct s3_ctx *x, cJSON **src, enum MHD_Result *ret);

/*
 * A server-side copy: bytes [first, last] of the object src (its object.get record) read
 * through the get core and written into put p, a bounded buffer at a time, with md5 (may
 * be NULL) updated on the way; last S3_WHOLE: to the end. 0, DYNO_ERANGE (outside the
 * object) or another DYNO_E* with msg.
 */
int s3_stream_copy(struct gw *gw, struct gw_conn *conn, const char *src_key, const cJSON *src, uint64_t first,
                   uint64_t last, struct gw_put *p, struct s3_md5 *md5, char *msg, size_t cap);
#define S3_WHOLE UINT64_MAX /* last of s3_stream_copy: to the end of the object */
#endif

/* ---- long operations (CopyObject, CompleteMultipartUpload) ---- */
/*
 * An operation that may take minutes runs on a thread of its own while the request waits.
 * When it ends within s3_long_grace_ms (config, default 2 s) the reply is ordinary (its status, its
 * document); otherwise the reply is a 200 whose body starts with the XML declaration and then one space a
 * second (S3's keep-alive: clients and proxies see bytes moving) until the operation's document follows,
 * which is then <Error> on a failure, as S3 does.
 *
 * work fills the outcome: on success doc (without the XML declaration) and status 0; on
 * failure status (HTTP), code (S3's, static) and msg. It gets a gw_conn of its own (the
 * client's may be freed with its connection when the client goes away). It must not touch
 * the s3_ctx (the request may end first: the thread is then joined at its end), so
 * everything it needs is in arg, freed by arg_free after it ends.
 */
struct s3_long_out {
    struct dyno_buf doc;
    unsigned status; /* 0: success (200 with doc) */
    const char *code;
    char msg[400];
};
/* Fills out with the S3 status and code of a DYNO_E* failure (EntityTooLarge, InvalidArgument,
 * ServiceUnavailable, InternalError...) and msg. */
void s3_long_fail(struct s3_long_out *out, int err, const char *msg);
enum MHD_Result s3_reply_long(struct s3_ctx *x,
                              void (*work)(void *arg, struct gw_conn *conn, struct s3_long_out *out),
                              void *arg, void (*arg_free)(void *arg));

/* ---- puts of the S3 operations ---- */
/* Where and how an S3 operation writes an object: the destination catalog's resilience and
 * site rule (from its catalog.get record), the publisher. */
struct s3_target {
    char catalog[DYNO_CATALOG_MAX + 1];
    char name[S3_KEY_MAX + 1]; /* a valid object name */
    char publisher[DYNO_SEG_MAX + 1];
    int k, m;
    bool site_relaxed;
    bool quiet; /* no object.created (multipart parts: a hidden catalog) */
};
/* Fills t's k, m and site rule from a catalog record (gw defaults when it has none). */
void s3_target_shape(struct gw *gw, const cJSON *cat, struct s3_target *t);
/* gw_put_new for t with size bytes (-1: unknown). */
int s3_put_open(struct gw *gw, struct gw_conn *conn, const struct s3_target *t, int64_t size,
                struct gw_put **out, char *msg, size_t cap);
#define S3_META_MAX 2048        /* x-amz-meta-* names and values together (S3's limit) */
#define S3_CONTENT_TYPE_MAX 256 /* longest Content-Type kept */
/* The S3 attributes of a new object from the request: Content-Type and x-amz-meta-* (new
 * object {content_type?, meta?:{name: value}}, the caller's, names in lower case). NULL with
 * *err: DYNO_ETOOBIG (metadata over S3_META_MAX), DYNO_EINVAL (Content-Type too long),
 * DYNO_ENOMEM; s3_attrs_err answers it. */
cJSON *s3_attrs_from_request(struct s3_ctx *x, int *err);
enum MHD_Result s3_attrs_err(struct s3_ctx *x, int err);
/* Gives the put p the S3 attributes it commits with (attrs borrowed; etag: the quoted
 * ETag, stored bare). 0 or DYNO_ENOMEM. */
int s3_put_attrs(struct gw_put *p, const cJSON *attrs, const char *etag);
/* The object's S3 attributes (its object.get or object.list record): borrowed, or NULL. */
const cJSON *s3_obj_attrs(const cJSON *obj);
/* The quoted ETag of an object record (object.get or object.list): its attributes' (stored
 * bare), else, for an object stored through REST, "<32 hex of its SHA-256>-1" (the rule of
 * s3_obj.c: the multipart form, which tells clients not to compare it with an MD5). */
void s3_obj_etag(const cJSON *obj, char out[80]);
/* The conditional headers of a request about an object of this etag (quoted) and
 * modification time (s), their names prefixed by prefix ("" for If-Match, If-None-Match,
 * If-Modified-Since, If-Unmodified-Since; "x-amz-copy-source-" for a copy's source), in
 * RFC 9110 13.2.2 order: 0 to go on, 412 (a match or unmodified test failed) or 304 (a
 * none-match or modified test failed; a copy answers 412 for it too). s3_obj.c. */
unsigned s3_conditions(struct s3_ctx *x, const char *prefix, const char *etag, int64_t mtime);
/* "\"<32 hex>\"" of an MD5. */
void s3_etag_hex(const uint8_t md5[16], char out[35]);
