/*
 * lib/sigv4.c against vectors signed by an independent implementation (botocore, and the
 * aws-chunked rules in Python: tests/unit/gen_sigv4_vectors.py -> sigv4_vectors.h): every
 * vector verifies with the right secret, fails with a wrong one or once tampered with, the
 * clock skew and presigned expiry are enforced, and bodies decode to their payload in any
 * split, with their hash or chunk signatures checked.
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "dynostore/error.h"
#include "sigv4.h"
#include "sigv4_vectors.h"

#define NVEC (sizeof(sigv4_vecs) / sizeof(sigv4_vecs[0]))

/* A request under test: a vector, maybe with one header replaced. */
struct treq {
    const struct sigv4_vec *v;
    const char *over_name, *over_value;
};

static const char *t_header(void *cls, const char *name)
{
    const struct treq *t = cls;
    if (t->over_name && strcasecmp(name, t->over_name) == 0)
        return t->over_value;
    for (size_t i = 0; i < 12 && t->v->hdrs[i].name; i++)
        if (strcasecmp(t->v->hdrs[i].name, name) == 0)
            return t->v->hdrs[i].value;
    return NULL;
}

static struct sigv4_in t_in(struct treq *t, int64_t now)
{
    return (struct sigv4_in){.method = t->v->method,
                             .path = t->v->path,
                             .query = t->v->query,
                             .header = t_header,
                             .cls = t,
                             .now = now};
}

static const struct sigv4_vec *vec(const char *name)
{
    for (size_t i = 0; i < NVEC; i++)
        if (strcmp(sigv4_vecs[i].name, name) == 0)
            return &sigv4_vecs[i];
    fail_msg("no vector %s", name);
    return NULL;
}

/* Parses and verifies in; the S3 code of a failure in *code. */
static int check(const struct sigv4_in *in, const char *secret, const char **code, struct sigv4_req *s,
                 uint8_t key[32])
{
    unsigned status = 0;
    char msg[300];
    int rc = sigv4_parse(in, SIGV4_VEC_REGION, s, code, &status, msg, sizeof(msg));
    if (rc)
        return rc;
    return sigv4_verify(in, s, secret, key, code, &status, msg, sizeof(msg));
}

struct collect {
    uint8_t *p;
    size_t len, cap;
};

static int collect_emit(void *cls, const char *data, size_t len)
{
    struct collect *c = cls;
    if (c->len + len > c->cap)
        return DYNO_ETOOBIG;
    memcpy(c->p + c->len, data, len);
    c->len += len;
    return 0;
}

/* Feeds body in pieces of step bytes; the failure's code in *code. */
static int run_body(const struct sigv4_req *s, const uint8_t key[32], const char *decoded_len,
                    const char *body, size_t len, size_t step, struct collect *out, const char **code)
{
    struct sigv4_body b;
    unsigned status;
    char msg[300];
    *code = NULL;
    int rc = sigv4_body_init(&b, s, key, decoded_len);
    assert_int_equal(rc, 0);
    for (size_t off = 0; off < len && !rc; off += step) {
        size_t n = len - off < step ? len - off : step;
        rc = sigv4_body_feed(&b, body + off, n, collect_emit, out, code, &status, msg, sizeof(msg));
    }
    if (!rc)
        rc = sigv4_body_end(&b, code, &status, msg, sizeof(msg));
    sigv4_body_free(&b);
    return rc;
}

static void expect_payload(const struct sigv4_vec *v, const struct collect *c)
{
    assert_int_equal(c->len, v->decoded_len);
    bool streaming = strncmp(v->name, "streaming", 9) == 0;
    for (size_t i = 0; i < c->len; i++) {
        uint8_t want = streaming ? (uint8_t)((i * 7) & 0xFF) : (uint8_t)v->body[i];
        if (c->p[i] != want)
            fail_msg("%s: payload byte %zu is %u, want %u", v->name, i, c->p[i], want);
    }
}

static void test_vectors_verify(void **state)
{
    (void)state;
    static const size_t steps[] = {1, 7, 100, 8192, 1 << 20};
    for (size_t i = 0; i < NVEC; i++) {
        struct treq t = {.v = &sigv4_vecs[i]};
        struct sigv4_in in = t_in(&t, SIGV4_VEC_NOW);
        struct sigv4_req s;
        uint8_t key[32];
        const char *code = NULL;
        int rc = check(&in, SIGV4_VEC_SECRET, &code, &s, key);
        if (rc)
            fail_msg("%s: %s (%s)", t.v->name, dyno_strerror(rc), code ? code : "-");
        assert_int_equal(s.presigned, t.v->presigned);
        assert_string_equal(s.key_id, SIGV4_VEC_KEY_ID);
        for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
            struct collect c = {.p = malloc(t.v->decoded_len + 1), .cap = t.v->decoded_len};
            rc = run_body(&s, key, t_header(&t, "x-amz-decoded-content-length"), t.v->body, t.v->body_len,
                          steps[k], &c, &code);
            if (rc)
                fail_msg("%s step %zu: %s (%s)", t.v->name, steps[k], dyno_strerror(rc), code ? code : "-");
            expect_payload(t.v, &c);
            free(c.p);
        }
    }
}

static void test_wrong_secret(void **state)
{
    (void)state;
    for (size_t i = 0; i < NVEC; i++) {
        struct treq t = {.v = &sigv4_vecs[i]};
        struct sigv4_in in = t_in(&t, SIGV4_VEC_NOW);
        struct sigv4_req s;
        uint8_t key[32];
        const char *code = NULL;
        assert_int_equal(check(&in, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz", &code, &s, key),
                         DYNO_EUNAUTH);
        assert_string_equal(code, "SignatureDoesNotMatch");
    }
}

static void test_tampered(void **state)
{
    (void)state;
    const char *code = NULL;
    struct sigv4_req s;
    uint8_t key[32];
    /* another key */
    struct sigv4_vec v = *vec("get_object");
    v.path = "/photos/dog.jpg";
    struct treq t = {.v = &v};
    struct sigv4_in in = t_in(&t, SIGV4_VEC_NOW);
    assert_int_equal(check(&in, SIGV4_VEC_SECRET, &code, &s, key), DYNO_EUNAUTH);
    assert_string_equal(code, "SignatureDoesNotMatch");
    /* another query value */
    v = *vec("list_query");
    v.query = "list-type=2&prefix=a%2Fc&delimiter=%2F&max-keys=10";
    in = t_in(&t, SIGV4_VEC_NOW);
    assert_int_equal(check(&in, SIGV4_VEC_SECRET, &code, &s, key), DYNO_EUNAUTH);
    /* the same parameters in another order: still the same request */
    v.query = "max-keys=10&delimiter=%2F&prefix=a%2Fb&list-type=2";
    in = t_in(&t, SIGV4_VEC_NOW);
    assert_int_equal(check(&in, SIGV4_VEC_SECRET, &code, &s, key), 0);
    /* a signed header changed */
    v = *vec("put_unicode_key");
    t.over_name = "content-type";
    t.over_value = "text/html";
    in = t_in(&t, SIGV4_VEC_NOW);
    assert_int_equal(check(&in, SIGV4_VEC_SECRET, &code, &s, key), DYNO_EUNAUTH);
    /* another method */
    t.over_name = NULL;
    v.method = "POST";
    in = t_in(&t, SIGV4_VEC_NOW);
    assert_int_equal(check(&in, SIGV4_VEC_SECRET, &code, &s, key), DYNO_EUNAUTH);
}

static void test_clock_skew(void **state)
{
    (void)state;
    struct treq t = {.v = vec("get_object")};
    struct sigv4_req s;
    uint8_t key[32];
    const char *code = NULL;
    const int64_t offs[] = {-SIGV4_SKEW_MAX_S, SIGV4_SKEW_MAX_S};
    for (int i = 0; i < 2; i++) {
        struct sigv4_in in = t_in(&t, SIGV4_VEC_NOW + offs[i]);
        assert_int_equal(check(&in, SIGV4_VEC_SECRET, &code, &s, key), 0);
    }
    const int64_t bad[] = {-SIGV4_SKEW_MAX_S - 1, SIGV4_SKEW_MAX_S + 1, 20 * 60, -20 * 60};
    for (int i = 0; i < 4; i++) {
        struct sigv4_in in = t_in(&t, SIGV4_VEC_NOW + bad[i]);
        assert_int_equal(check(&in, SIGV4_VEC_SECRET, &code, &s, key), DYNO_EUNAUTH);
        assert_string_equal(code, "RequestTimeTooSkewed");
    }
}

static void test_presigned_expiry(void **state)
{
    (void)state;
    struct treq t = {.v = vec("presigned_get")};
    struct sigv4_req s;
    uint8_t key[32];
    const char *code = NULL;
    struct sigv4_in in = t_in(&t, SIGV4_VEC_NOW + 3600);
    assert_int_equal(check(&in, SIGV4_VEC_SECRET, &code, &s, key), 0);
    in = t_in(&t, SIGV4_VEC_NOW + 3601);
    assert_int_equal(check(&in, SIGV4_VEC_SECRET, &code, &s, key), DYNO_EUNAUTH);
    assert_string_equal(code, "AccessDenied");
    /* a URL made for the future (a skewed signer) */
    in = t_in(&t, SIGV4_VEC_NOW - SIGV4_SKEW_MAX_S - 1);
    assert_int_equal(check(&in, SIGV4_VEC_SECRET, &code, &s, key), DYNO_EUNAUTH);
    assert_string_equal(code, "RequestTimeTooSkewed");
    /* a longer expiry written into the URL breaks the signature */
    struct sigv4_vec v = *vec("presigned_get");
    char q[1024];
    snprintf(q, sizeof(q), "%s", v.query);
    char *e = strstr(q, "X-Amz-Expires=3600");
    assert_non_null(e);
    memcpy(e, "X-Amz-Expires=7200", 18);
    v.query = q;
    t.v = &v;
    in = t_in(&t, SIGV4_VEC_NOW + 4000);
    assert_int_equal(check(&in, SIGV4_VEC_SECRET, &code, &s, key), DYNO_EUNAUTH);
    assert_string_equal(code, "SignatureDoesNotMatch");
}

static void test_malformed(void **state)
{
    (void)state;
    struct sigv4_req s;
    uint8_t key[32];
    const char *code = NULL;
    unsigned status;
    char msg[300];
    /* anonymous */
    struct sigv4_vec v = *vec("get_object");
    struct treq t = {.v = &v, .over_name = "authorization", .over_value = NULL};
    struct sigv4_in in = t_in(&t, SIGV4_VEC_NOW);
    assert_int_equal(sigv4_parse(&in, SIGV4_VEC_REGION, &s, &code, &status, msg, sizeof(msg)),
                     DYNO_ENOTFOUND);
    assert_string_equal(code, "AccessDenied");
    /* another region than the gateway's */
    t.over_name = NULL;
    in = t_in(&t, SIGV4_VEC_NOW);
    assert_int_equal(sigv4_parse(&in, "eu-west-1", &s, &code, &status, msg, sizeof(msg)), DYNO_EINVAL);
    assert_string_equal(code, "AuthorizationHeaderMalformed");
    assert_int_equal(status, 400);
    /* garbage in the header */
    const char *bad[] = {
        "AWS4-HMAC-SHA256 Credential=x", "AWS AKID:sig",
        "AWS4-HMAC-SHA256 Credential=A/20261207/us-east-1/s3/aws4_request, SignedHeaders=host, "
        "Signature=zz",
        "AWS4-HMAC-SHA256 Credential=A/2026/us-east-1/s3/aws4_request, SignedHeaders=host, "
        "Signature=0434fe59b8a8151673bfe3c6db5a3cb3a0bc05322c502caf84abc5374aa9112b",
        "AWS4-HMAC-SHA256 Credential=A/20261207/us-east-1/ec2/aws4_request, SignedHeaders=host, "
        "Signature=0434fe59b8a8151673bfe3c6db5a3cb3a0bc05322c502caf84abc5374aa9112b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        t.over_name = "authorization";
        t.over_value = bad[i];
        in = t_in(&t, SIGV4_VEC_NOW);
        assert_int_equal(sigv4_parse(&in, SIGV4_VEC_REGION, &s, &code, &status, msg, sizeof(msg)),
                         DYNO_EINVAL);
        assert_int_equal(status, 400);
    }
    (void)key;
}

static void test_body_hash_mismatch(void **state)
{
    (void)state;
    const struct sigv4_vec *v = vec("put_unicode_key");
    struct treq t = {.v = v};
    struct sigv4_in in = t_in(&t, SIGV4_VEC_NOW);
    struct sigv4_req s;
    uint8_t key[32];
    const char *code = NULL;
    assert_int_equal(check(&in, SIGV4_VEC_SECRET, &code, &s, key), 0);
    char *body = malloc(v->body_len);
    memcpy(body, v->body, v->body_len);
    body[5] ^= 1;
    struct collect c = {.p = malloc(v->body_len), .cap = v->body_len};
    assert_int_equal(run_body(&s, key, NULL, body, v->body_len, 13, &c, &code), DYNO_EINVAL);
    assert_string_equal(code, "XAmzContentSHA256Mismatch");
    free(c.p);
    free(body);
}

static void test_streaming_tampered(void **state)
{
    (void)state;
    const struct sigv4_vec *v = vec("streaming_signed");
    struct treq t = {.v = v};
    struct sigv4_in in = t_in(&t, SIGV4_VEC_NOW);
    struct sigv4_req s;
    uint8_t key[32];
    const char *code = NULL;
    assert_int_equal(check(&in, SIGV4_VEC_SECRET, &code, &s, key), 0);
    assert_int_equal(s.payload, SIGV4_PAYLOAD_STREAMING);
    const char *dl = t_header(&t, "x-amz-decoded-content-length");
    char *body = malloc(v->body_len);
    struct collect c = {.p = malloc(v->decoded_len + 1), .cap = v->decoded_len};
    /* a data byte of the second chunk */
    memcpy(body, v->body, v->body_len);
    const char *first = memmem(body, v->body_len, "\r\n", 2);
    const char *second = (const char *)memmem(first + 2 + 8192 + 2, 200, "\r\n", 2) + 2;
    body[second - body + 100] ^= 1;
    assert_int_equal(run_body(&s, key, dl, body, v->body_len, 999, &c, &code), DYNO_EUNAUTH);
    assert_string_equal(code, "SignatureDoesNotMatch");
    /* a chunk signature */
    memcpy(body, v->body, v->body_len);
    char *sig = (char *)memmem(body, v->body_len, "chunk-signature=", 16) + 16;
    sig[0] = sig[0] == 'a' ? 'b' : 'a';
    c.len = 0;
    assert_int_equal(run_body(&s, key, dl, body, v->body_len, 999, &c, &code), DYNO_EUNAUTH);
    /* the body cut before its final chunk */
    memcpy(body, v->body, v->body_len);
    char *last = memmem(body, v->body_len, "\r\n0;chunk-signature=", 20);
    assert_non_null(last);
    c.len = 0;
    assert_int_equal(run_body(&s, key, dl, body, (size_t)(last - body) + 2, 999, &c, &code), DYNO_EINVAL);
    assert_string_equal(code, "IncompleteBody");
    /* fewer payload bytes announced than sent */
    memcpy(body, v->body, v->body_len);
    c.len = 0;
    assert_int_equal(run_body(&s, key, "5", body, v->body_len, 999, &c, &code), DYNO_EINVAL);
    assert_string_equal(code, "IncompleteBody");
    free(c.p);
    free(body);
}

static void test_uri_encode(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(sigv4_uri_encode("a b/c+~é", strlen("a b/c+~é"), false, out, sizeof(out)), 0);
    assert_string_equal(out, "a%20b/c%2B~%C3%A9");
    assert_int_equal(sigv4_uri_encode("a/b", 3, true, out, sizeof(out)), 0);
    assert_string_equal(out, "a%2Fb");
    assert_int_equal(sigv4_uri_encode("abc", 3, false, out, 3), DYNO_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_verify),     cmocka_unit_test(test_wrong_secret),
        cmocka_unit_test(test_tampered),           cmocka_unit_test(test_clock_skew),
        cmocka_unit_test(test_presigned_expiry),   cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_body_hash_mismatch), cmocka_unit_test(test_streaming_tampered),
        cmocka_unit_test(test_uri_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
