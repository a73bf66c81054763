/*
 * AWS Signature Version 4 verification for the gateway's S3 door (issue 14, docs/s3.md):
 * the Authorization header and presigned URLs (query parameters), the canonical request,
 * the signing key, constant-time comparison, the 15-minute clock skew, the expiry of
 * presigned URLs, and the request body: a plain body hashed as it streams and checked
 * against x-amz-content-sha256 at its end, UNSIGNED-PAYLOAD, and aws-chunked bodies
 * (STREAMING-AWS4-HMAC-SHA256-PAYLOAD with chained chunk signatures,
 * STREAMING-UNSIGNED-PAYLOAD-TRAILER) decoded on the fly.
 *
 * Pure code: no I/O, no MHD; the caller passes the request's parts, the time and the
 * secret. Every function that fails sets *code to the S3 error code (a static string:
 * "SignatureDoesNotMatch", "RequestTimeTooSkewed"...) and *status to its HTTP status, and
 * writes a sentence into msg; they return 0 or a DYNO_E* (DYNO_EUNAUTH for a refused
 * signature, DYNO_EINVAL for a malformed request, DYNO_ENOMEM).
 */
#ifndef DYNO_SIGV4_H
#define DYNO_SIGV4_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIGV4_SKEW_MAX_S 900          /* a signed request's time may be this far from ours */
#define SIGV4_EXPIRES_MAX_S 604800    /* X-Amz-Expires of a presigned URL: 7 days at most */
#define SIGV4_KEYID_MAX 128           /* access key id */
#define SIGV4_SECRET_MAX 128          /* secret access key */
#define SIGV4_SIGNED_HEADERS_MAX 1024 /* the SignedHeaders list */
#define SIGV4_CANON_MAX (64 * 1024)   /* a canonical request larger than this is refused */
#define SIGV4_CHUNK_LINE_MAX 512      /* "<hex size>;chunk-signature=<64 hex>" and trailer lines */

/* What x-amz-content-sha256 announced. */
enum sigv4_payload {
    SIGV4_PAYLOAD_SHA256,            /* the hex SHA-256 of the body: checked at its end */
    SIGV4_PAYLOAD_UNSIGNED,          /* UNSIGNED-PAYLOAD (and every presigned URL) */
    SIGV4_PAYLOAD_STREAMING,         /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD: signed chunks */
    SIGV4_PAYLOAD_STREAMING_TRAILER, /* STREAMING-UNSIGNED-PAYLOAD-TRAILER: unsigned chunks, trailers */
};

/* The parts of a request that SigV4 signs. Borrowed; valid during the calls that take it. */
struct sigv4_in {
    const char *method;
    const char *path;  /* the raw path as sent (percent-encoded), no query */
    const char *query; /* the raw query string after '?', or "" */
    /* The value of a request header (case-insensitive name), or NULL when absent. Several
     * headers of one name are joined with ',' by the caller. */
    const char *(*header)(void *cls, const char *name);
    void *cls;
    int64_t now; /* unix seconds */
};

/* A parsed signature (sigv4_parse). */
struct sigv4_req {
    bool presigned;
    char key_id[SIGV4_KEYID_MAX + 1];
    char date[9];      /* YYYYMMDD of the scope */
    char amz_date[17]; /* YYYYMMDDTHHMMSSZ */
    char region[64];
    char scope[128]; /* date/region/s3/aws4_request */
    char signed_headers[SIGV4_SIGNED_HEADERS_MAX + 1];
    char signature[65]; /* lowercase hex */
    int64_t time;       /* amz_date in unix seconds */
    int64_t expires;    /* presigned: X-Amz-Expires */
    enum sigv4_payload payload;
    char payload_hash[65]; /* SIGV4_PAYLOAD_SHA256: the announced lowercase hex */
    char payload_decl[80]; /* x-amz-content-sha256 as sent (goes into the canonical request) */
};

/*
 * Reads the signature of the request: the Authorization header, else the X-Amz-* query
 * parameters of a presigned URL. Checks the form, the scope (service s3, the given region),
 * the clock skew and a presigned URL's expiry. 0; DYNO_ENOTFOUND when the request carries no
 * signature at all (anonymous: *code "AccessDenied"); DYNO_EINVAL (malformed); DYNO_EUNAUTH
 * (skewed, expired).
 */
int sigv4_parse(const struct sigv4_in *in, const char *region, struct sigv4_req *out, const char **code,
                unsigned *status, char *msg, size_t cap);

/*
 * Checks the signature with the secret: builds the canonical request and the string to sign
 * and compares in constant time. On success the signing key goes to signing_key (for the
 * chunk signatures of a streaming body). 0 or DYNO_EUNAUTH ("SignatureDoesNotMatch"),
 * DYNO_EINVAL, DYNO_ENOMEM.
 */
int sigv4_verify(const struct sigv4_in *in, const struct sigv4_req *s, const char *secret,
                 uint8_t signing_key[32], const char **code, unsigned *status, char *msg, size_t cap);

/* The canonical request of in as s describes it, into out (cap bytes): for tests and logs.
 * 0, DYNO_ETOOBIG, DYNO_EINVAL. */
int sigv4_canonical_request(const struct sigv4_in *in, const struct sigv4_req *s, char *out, size_t cap);
/* The signing key of secret for date (YYYYMMDD), region, service "s3". */
void sigv4_signing_key(const char *secret, const char *date, const char *region, uint8_t key[32]);
/* AWS's UriEncode of the bytes s[0..n) into out (cap bytes): unreserved kept, the rest %XX;
 * '/' kept unless encode_slash. 0 or DYNO_ETOOBIG. */
int sigv4_uri_encode(const char *s, size_t n, bool encode_slash, char *out, size_t cap);

/* ---- the body ---- */
typedef int (*sigv4_emit_fn)(void *cls, const char *data, size_t len);

/* The body state of one request: hash, chunk decoder, chain of chunk signatures. */
struct sigv4_body {
    enum sigv4_payload payload;
    void *sha; /* struct dyno_sha256 *: the plain body's hash, or each chunk's */
    uint8_t key[32];
    char prev_sig[65];
    char amz_date[17];
    char scope[128];
    char want_hash[65];
    int state; /* the chunk decoder's state (sigv4.c) */
    char line[SIGV4_CHUNK_LINE_MAX + 1];
    size_t line_len;
    uint64_t chunk_left; /* data bytes of the current chunk not yet read */
    char chunk_sig[65];
    uint64_t decoded;      /* payload bytes emitted */
    uint64_t decoded_decl; /* x-amz-decoded-content-length, or UINT64_MAX */
    bool done;
};

/* Prepares b for the body of s (signing_key from sigv4_verify). decoded_len: the value of
 * x-amz-decoded-content-length or NULL. 0, DYNO_ENOMEM, DYNO_EINVAL. */
int sigv4_body_init(struct sigv4_body *b, const struct sigv4_req *s, const uint8_t signing_key[32],
                    const char *decoded_len);
/* The next body bytes as received: the payload bytes go to emit (an emit failure is returned
 * as is, *code NULL). A chunk signature that does not match fails at the chunk's end
 * ("SignatureDoesNotMatch"), a malformed chunk encoding at once ("IncompleteBody"). */
int sigv4_body_feed(struct sigv4_body *b, const char *data, size_t len, sigv4_emit_fn emit, void *cls,
                    const char **code, unsigned *status, char *msg, size_t cap);
/* The end of the body: the SHA-256 of a plain body against x-amz-content-sha256
 * ("XAmzContentSHA256Mismatch"), the final chunk of a streaming one ("IncompleteBody").
 * 0 or DYNO_EINVAL / DYNO_EUNAUTH. */
int sigv4_body_end(struct sigv4_body *b, const char **code, unsigned *status, char *msg, size_t cap);
void sigv4_body_free(struct sigv4_body *b); /* safe on a zeroed b */
#endif
