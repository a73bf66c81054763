/*
 * Fuzzes lib/sigv4.c on arbitrary bytes: the Authorization header and query parser with the
 * verifier behind it, and the aws-chunked body decoder fed in pieces of input-derived sizes.
 *
 * Checked: return codes are the ones sigv4.h lists, every failure names an S3 error code and
 * a 4xx/5xx status; the decoder never emits more payload bytes than it was given, counts
 * exactly what it emitted, and the same input gives the same answer whatever the split.
 */
#include <string.h>

#include "dynostore/error.h"
#include "fuzz.h"
#include "sigv4.h"

struct hdrs {
    const char *auth, *date, *sha;
};

static const char *f_header(void *cls, const char *name)
{
    const struct hdrs *h = cls;
    if (strcmp(name, "authorization") == 0)
        return h->auth;
    if (strcmp(name, "x-amz-date") == 0)
        return h->date;
    if (strcmp(name, "x-amz-content-sha256") == 0)
        return h->sha;
    if (strcmp(name, "host") == 0)
        return "127.0.0.1:9000";
    return NULL;
}

static int f_emit(void *cls, const char *data, size_t len)
{
    (void)data;
    *(size_t *)cls += len;
    return 0;
}

static bool failed_ok(int rc, const char *code, unsigned status)
{
    return (rc == DYNO_EINVAL || rc == DYNO_EUNAUTH || rc == DYNO_ENOTFOUND || rc == DYNO_ENOMEM ||
            rc == DYNO_ETOOBIG) &&
           code != NULL && status >= 400 && status < 600;
}

/* Decodes body in pieces (sizes from seed); the result code, *emitted the payload bytes. */
static int decode(enum sigv4_payload mode, const uint8_t *body, size_t len, uint64_t seed, size_t *emitted)
{
    struct sigv4_req s = {.payload = mode};
    memset(s.signature, '0', 64);
    memcpy(s.amz_date, "20261207T200000Z", 17);
    snprintf(s.scope, sizeof(s.scope), "20261207/us-east-1/s3/aws4_request");
    uint8_t key[32] = {1};
    struct sigv4_body b;
    const char *code = NULL;
    unsigned status = 0;
    char msg[300];
    *emitted = 0;
    FUZZ_CHECK(sigv4_body_init(&b, &s, key, NULL) == 0);
    int rc = 0;
    size_t off = 0;
    while (off < len && rc == 0) {
        size_t n = 1 + (size_t)(fuzz_rng(&seed) % 64);
        if (n > len - off)
            n = len - off;
        rc = sigv4_body_feed(&b, (const char *)body + off, n, f_emit, emitted, &code, &status, msg,
                             sizeof(msg));
        off += n;
    }
    if (rc == 0)
        rc = sigv4_body_end(&b, &code, &status, msg, sizeof(msg));
    if (rc)
        FUZZ_CHECK(failed_ok(rc, code, status));
    FUZZ_CHECK(*emitted <= len && b.decoded == *emitted);
    sigv4_body_free(&b);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    if (mode & 1) {
        enum sigv4_payload p = (mode & 2) ? SIGV4_PAYLOAD_STREAMING : SIGV4_PAYLOAD_STREAMING_TRAILER;
        size_t e1, e2;
        int r1 = decode(p, data, size, 1, &e1);
        int r2 = decode(p, data, size, (uint64_t)size * 7919 + 3, &e2);
        FUZZ_CHECK(r1 == r2 && (r1 != 0 || e1 == e2));
        return 0;
    }
    /* header\nquery\ndate: three NUL-free strings */
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    if (strlen(buf) != size) {
        free(buf);
        return 0;
    }
    char *q = strchr(buf, '\n');
    char *d = q ? strchr(q + 1, '\n') : NULL;
    if (q)
        *q++ = '\0';
    if (d)
        *d++ = '\0';
    struct hdrs h = {
        .auth = buf[0] ? buf : NULL, .date = d ? d : "20261207T200000Z", .sha = "UNSIGNED-PAYLOAD"};
    struct sigv4_in in = {.method = "GET",
                          .path = "/b/k",
                          .query = q ? q : "",
                          .header = f_header,
                          .cls = &h,
                          .now = 1796673600};
    struct sigv4_req s;
    const char *code = NULL;
    unsigned status = 0;
    char msg[300];
    int rc = sigv4_parse(&in, "us-east-1", &s, &code, &status, msg, sizeof(msg));
    if (rc) {
        FUZZ_CHECK(failed_ok(rc, code, status));
    } else {
        uint8_t key[32];
        FUZZ_CHECK(strlen(s.signature) == 64 && s.key_id[0]);
        rc = sigv4_verify(&in, &s, "secret", key, &code, &status, msg, sizeof(msg));
        FUZZ_CHECK(rc == 0 || failed_ok(rc, code, status));
    }
    free(buf);
    return 0;
}
