/* Unit tests for lib/token.c: keys, signing, strict verification, revocation, base64url. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "dynostore/error.h"
#include "token.h"

#define EMPTY_DOC "{\"revoked\":[]}"

struct fixture {
    char dir[64];
    char priv[128], pub[128];
    struct dyno_signer *signer;
    struct dyno_verifier *verifier;
    int64_t now;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/dyno-token-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->priv, sizeof(f->priv), "%s/auth.key", f->dir);
    snprintf(f->pub, sizeof(f->pub), "%s/auth.pub", f->dir);
    assert_int_equal(dyno_token_keygen(f->priv, f->pub), 0);
    assert_int_equal(dyno_signer_load(f->priv, &f->signer), 0);
    assert_int_equal(dyno_verifier_load(f->pub, &f->verifier), 0);
    /* Fed with an empty document, as the feed does at start; test_fail_closed starts unfed. */
    assert_int_equal(dyno_verifier_apply_revoked(f->verifier, EMPTY_DOC, strlen(EMPTY_DOC), NULL, NULL), 0);
    f->now = (int64_t)time(NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    dyno_signer_free(f->signer);
    dyno_verifier_free(f->verifier);
    unlink(f->priv);
    unlink(f->pub);
    rmdir(f->dir);
    free(f);
    return 0;
}

static struct dyno_claims claims(int64_t exp)
{
    struct dyno_claims c;

    memset(&c, 0, sizeof(c));
    snprintf(c.sub, sizeof(c.sub), "alice");
    snprintf(c.org, sizeof(c.org), "lab/ct");
    c.admin = true;
    snprintf(c.role, sizeof(c.role), "user");
    c.exp = exp;
    c.iat = exp - 3600;
    return c;
}

static char *sign(struct fixture *f, struct dyno_claims *c)
{
    char *tok = NULL;

    assert_int_equal(dyno_token_sign(f->signer, c, &tok), 0);
    assert_non_null(tok);
    return tok;
}

static void test_keygen_private_mode(void **state)
{
    struct fixture *f = *state;
    struct stat st;

    assert_int_equal(stat(f->priv, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* An existing key is never overwritten. */
    assert_int_equal(dyno_token_keygen(f->priv, f->pub), DYNO_EEXIST);
    assert_int_equal(dyno_signer_load("/nonexistent/key", &(struct dyno_signer *){NULL}), DYNO_ENOTFOUND);
    /* A public key is not a private key. */
    struct dyno_signer *s = NULL;
    assert_int_equal(dyno_signer_load(f->pub, &s), DYNO_EINVAL);
}

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    struct dyno_claims c = claims(f->now + 3600), out;
    char *tok = sign(f, &c);

    assert_int_equal(strlen(c.jti), DYNO_KEY_LEN);
    assert_int_equal(strncmp(tok, "dyn1.", 5), 0);
    memset(&out, 0, sizeof(out));
    assert_int_equal(dyno_token_verify(f->verifier, tok, f->now, &out), 0);
    assert_string_equal(out.sub, "alice");
    assert_string_equal(out.org, "lab/ct");
    assert_true(out.admin);
    assert_string_equal(out.role, "user");
    assert_int_equal(out.exp, c.exp);
    assert_int_equal(out.iat, c.iat);
    assert_string_equal(out.jti, c.jti);
    free(tok);

    /* A given jti is kept; a service token with an empty org works too. */
    struct dyno_claims s = claims(f->now + 60);
    snprintf(s.role, sizeof(s.role), "service");
    s.org[0] = '\0';
    s.admin = false;
    snprintf(s.jti, sizeof(s.jti), "0123456789abcdef0123456789abcdef");
    tok = sign(f, &s);
    assert_int_equal(dyno_token_verify(f->verifier, tok, f->now, &out), 0);
    assert_string_equal(out.jti, "0123456789abcdef0123456789abcdef");
    assert_string_equal(out.role, "service");
    assert_string_equal(out.org, "");
    assert_false(out.admin);
    free(tok);
}

static void test_sign_refuses_bad_claims(void **state)
{
    struct fixture *f = *state;
    char *tok = NULL;
    struct dyno_claims c = claims(f->now + 60);

    snprintf(c.sub, sizeof(c.sub), "al/ice");
    assert_int_equal(dyno_token_sign(f->signer, &c, &tok), DYNO_EINVAL);
    c = claims(f->now + 60);
    snprintf(c.role, sizeof(c.role), "root");
    assert_int_equal(dyno_token_sign(f->signer, &c, &tok), DYNO_EINVAL);
    c = claims(f->now + 60);
    snprintf(c.org, sizeof(c.org), "lab//x");
    assert_int_equal(dyno_token_sign(f->signer, &c, &tok), DYNO_EINVAL);
    assert_null(tok);
}

/* Replaces the claims part of tok with base64url(json), keeping the old signature. */
static char *with_claims(const char *tok, const char *json)
{
    const char *d2 = strrchr(tok, '.');
    char *out = malloc(5 + 4 * strlen(json) / 3 + 8 + strlen(d2) + 1);
    size_t n;

    assert_non_null(out);
    memcpy(out, "dyn1.", 5);
    n = 5 + dyno_b64url_encode((const uint8_t *)json, strlen(json), out + 5);
    strcpy(out + n, d2);
    return out;
}

static void test_tampered(void **state)
{
    struct fixture *f = *state;
    struct dyno_claims c = claims(f->now + 3600), out;
    char *tok = sign(f, &c);
    char *bad;

    /* Claims changed (admin escalation), signature kept. */
    char json[512];
    snprintf(json, sizeof(json),
             "{\"sub\":\"mallory\",\"org\":\"lab/ct\",\"adm\":true,\"role\":\"user\",\"exp\":%lld,"
             "\"jti\":\"%s\",\"iat\":1}",
             (long long)c.exp, c.jti);
    bad = with_claims(tok, json);
    assert_int_equal(dyno_token_verify(f->verifier, bad, f->now, &out), DYNO_EUNAUTH);
    free(bad);

    /* One signature character flipped. */
    bad = strdup(tok);
    char *sig = strrchr(bad, '.') + 1;
    sig[3] = sig[3] == 'A' ? 'B' : 'A';
    assert_int_equal(dyno_token_verify(f->verifier, bad, f->now, &out), DYNO_EUNAUTH);
    free(bad);

    /* One claims character flipped. */
    bad = strdup(tok);
    bad[8] = bad[8] == 'A' ? 'B' : 'A';
    assert_int_equal(dyno_token_verify(f->verifier, bad, f->now, &out), DYNO_EUNAUTH);
    free(bad);

    /* Signature truncated. */
    bad = strdup(tok);
    bad[strlen(bad) - 2] = '\0';
    assert_int_equal(dyno_token_verify(f->verifier, bad, f->now, &out), DYNO_EUNAUTH);
    free(bad);

    /* Still fine untouched. */
    assert_int_equal(dyno_token_verify(f->verifier, tok, f->now, &out), 0);
    free(tok);
}

static void test_wrong_key(void **state)
{
    struct fixture *f = *state;
    char priv[160], pub[160];
    struct dyno_verifier *other = NULL;
    struct dyno_claims c = claims(f->now + 3600), out;
    char *tok = sign(f, &c);

    snprintf(priv, sizeof(priv), "%s/other.key", f->dir);
    snprintf(pub, sizeof(pub), "%s/other.pub", f->dir);
    assert_int_equal(dyno_token_keygen(priv, pub), 0);
    assert_int_equal(dyno_verifier_load(pub, &other), 0);
    assert_int_equal(dyno_token_verify(other, tok, f->now, &out), DYNO_EUNAUTH);
    dyno_verifier_free(other);
    unlink(priv);
    unlink(pub);
    free(tok);
}

static void test_expired(void **state)
{
    struct fixture *f = *state;
    struct dyno_claims c = claims(f->now + 10), out;
    char *tok = sign(f, &c);

    assert_int_equal(dyno_token_verify(f->verifier, tok, f->now + 9, &out), 0);
    /* exp <= now is expired: the boundary second itself is refused. */
    assert_int_equal(dyno_token_verify(f->verifier, tok, f->now + 10, &out), DYNO_EUNAUTH);
    assert_int_equal(dyno_token_verify(f->verifier, tok, f->now + 1000, &out), DYNO_EUNAUTH);
    free(tok);
}

static void test_revoked(void **state)
{
    struct fixture *f = *state;
    struct dyno_claims c = claims(f->now + 3600), c2 = claims(f->now + 3600), out;
    char *tok = sign(f, &c), *tok2 = sign(f, &c2);

    assert_false(dyno_verifier_is_revoked(f->verifier, c.jti));
    assert_int_equal(dyno_verifier_revoke(f->verifier, c.jti, c.exp), 0);
    assert_true(dyno_verifier_is_revoked(f->verifier, c.jti));
    assert_int_equal(dyno_token_verify(f->verifier, tok, f->now, &out), DYNO_EUNAUTH);
    /* Others are unaffected; revoking twice is fine. */
    assert_int_equal(dyno_token_verify(f->verifier, tok2, f->now, &out), 0);
    assert_int_equal(dyno_verifier_revoke(f->verifier, c.jti, c.exp), 0);
    assert_int_equal(dyno_verifier_revoke(f->verifier, "not-a-jti", c.exp), DYNO_EINVAL);

    /* Many revocations (forces growth and pruning of long-expired entries). */
    for (int i = 0; i < 1000; i++) {
        char jti[DYNO_KEY_LEN + 1];
        snprintf(jti, sizeof(jti), "%032x", i);
        assert_int_equal(dyno_verifier_revoke(f->verifier, jti, i % 2 ? f->now + 3600 : 1), 0);
    }
    assert_true(dyno_verifier_is_revoked(f->verifier, c.jti));
    assert_true(dyno_verifier_is_revoked(f->verifier, "000000000000000000000000000003e7"));
    assert_int_equal(dyno_token_verify(f->verifier, tok, f->now, &out), DYNO_EUNAUTH);
    assert_int_equal(dyno_token_verify(f->verifier, tok2, f->now, &out), 0);
    free(tok);
    free(tok2);
}

static void test_malformed(void **state)
{
    struct fixture *f = *state;
    struct dyno_claims c = claims(f->now + 3600), out;
    char *tok = sign(f, &c);
    char buf[DYNO_TOKEN_MAX * 2];
    char *bad;

    assert_int_equal(dyno_token_verify(f->verifier, NULL, f->now, &out), DYNO_EUNAUTH);
    assert_int_equal(dyno_token_verify(f->verifier, "", f->now, &out), DYNO_EUNAUTH);
    assert_int_equal(dyno_token_verify(f->verifier, "dyn1", f->now, &out), DYNO_EUNAUTH);
    assert_int_equal(dyno_token_verify(f->verifier, "nodotsatall", f->now, &out), DYNO_EUNAUTH);
    assert_int_equal(dyno_token_verify(f->verifier, "dyn1..", f->now, &out), DYNO_EUNAUTH);
    assert_int_equal(dyno_token_verify(f->verifier, "dyn1.abc", f->now, &out), DYNO_EUNAUTH);

    /* Four parts. */
    snprintf(buf, sizeof(buf), "%s.AAAA", tok);
    assert_int_equal(dyno_token_verify(f->verifier, buf, f->now, &out), DYNO_EUNAUTH);
    /* Wrong prefix. */
    snprintf(buf, sizeof(buf), "dyn2%s", tok + 4);
    assert_int_equal(dyno_token_verify(f->verifier, buf, f->now, &out), DYNO_EUNAUTH);
    snprintf(buf, sizeof(buf), "xdyn1%s", tok + 4);
    assert_int_equal(dyno_token_verify(f->verifier, buf, f->now, &out), DYNO_EUNAUTH);
    /* Bad base64 (padding, '+', '/' are not base64url). */
    snprintf(buf, sizeof(buf), "%s=", tok);
    assert_int_equal(dyno_token_verify(f->verifier, buf, f->now, &out), DYNO_EUNAUTH);
    bad = strdup(tok);
    bad[6] = '+';
    assert_int_equal(dyno_token_verify(f->verifier, bad, f->now, &out), DYNO_EUNAUTH);
    free(bad);

    /* Huge: over DYNO_TOKEN_MAX, even if it started well. */
    memset(buf, 'A', sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = '\0';
    memcpy(buf, tok, strlen(tok));
    assert_int_equal(dyno_token_verify(f->verifier, buf, f->now, &out), DYNO_EUNAUTH);

    free(tok);
}

/* Signs arbitrary claims bytes with the real private key straight through OpenSSL,
 * bypassing dyno_token_sign's checks, to show the verifier does not trust a valid
 * signature over bad claims. */
static char *sign_raw(struct fixture *f, const char *json)
{
    FILE *fp = fopen(f->priv, "r");
    EVP_PKEY *key;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t sig[64];
    size_t siglen = sizeof(sig), n;
    char *tok = malloc(5 + 4 * strlen(json) / 3 + 8 + 1 + 90);

    assert_non_null(fp);
    assert_non_null(tok);
    key = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(key);
    memcpy(tok, "dyn1.", 5);
    n = 5 + dyno_b64url_encode((const uint8_t *)json, strlen(json), tok + 5);
    assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, key), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &siglen, (const unsigned char *)tok, n), 1);
    tok[n++] = '.';
    dyno_b64url_encode(sig, siglen, tok + n);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    return tok;
}

static void test_claims_checked(void **state)
{
    struct fixture *f = *state;
    struct dyno_claims out;
    char json[512];
    const char *cases[] = {
        "not json at all",
        "[1,2,3]",
        "{}",
        /* missing sub */
        "{\"org\":\"\",\"adm\":false,\"role\":\"user\",\"exp\":4102444800,\"jti\":"
        "\"0123456789abcdef0123456789abcdef\",\"iat\":1}",
        /* missing jti */
        "{\"sub\":\"bob\",\"org\":\"\",\"adm\":false,\"role\":\"user\",\"exp\":4102444800,\"iat\":1}",
        /* exp as a string */
        "{\"sub\":\"bob\",\"org\":\"\",\"adm\":false,\"role\":\"user\",\"exp\":\"4102444800\",\"jti\":"
        "\"0123456789abcdef0123456789abcdef\",\"iat\":1}",
        /* adm not a bool */
        "{\"sub\":\"bob\",\"org\":\"\",\"adm\":1,\"role\":\"user\",\"exp\":4102444800,\"jti\":"
        "\"0123456789abcdef0123456789abcdef\",\"iat\":1}",
        /* bad role */
        "{\"sub\":\"bob\",\"org\":\"\",\"adm\":false,\"role\":\"god\",\"exp\":4102444800,\"jti\":"
        "\"0123456789abcdef0123456789abcdef\",\"iat\":1}",
        /* sub not a valid segment */
        "{\"sub\":\"../"
        "etc\",\"org\":\"\",\"adm\":false,\"role\":\"user\",\"exp\":4102444800,\"jti\":"
        "\"0123456789abcdef0123456789abcdef\",\"iat\":1}",
        "{\"sub\":\"a+b\",\"org\":\"\",\"adm\":false,\"role\":\"user\",\"exp\":4102444800,\"jti\":"
        "\"0123456789abcdef0123456789abcdef\",\"iat\":1}",
        /* jti not 32 hex */
        "{\"sub\":\"bob\",\"org\":\"\",\"adm\":false,\"role\":\"user\",\"exp\":4102444800,\"jti\":\"xyz\","
        "\"iat\":1}",
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *tok = sign_raw(f, cases[i]);
        assert_int_equal(dyno_token_verify(f->verifier, tok, f->now, &out), DYNO_EUNAUTH);
        free(tok);
    }
    /* The control: the same path with good claims verifies. */
    snprintf(json, sizeof(json),
             "{\"sub\":\"bob\",\"org\":\"\",\"adm\":false,\"role\":\"user\",\"exp\":%lld,"
             "\"jti\":\"0123456789abcdef0123456789abcdef\",\"iat\":1}",
             (long long)(f->now + 3600));
    char *tok = sign_raw(f, json);
    assert_int_equal(dyno_token_verify(f->verifier, tok, f->now, &out), 0);
    assert_string_equal(out.sub, "bob");
    free(tok);
}

/* A verifier that has not applied a revocation document refuses user tokens (they might be
 * revoked) and accepts service tokens (the services deliver the document); a document that
 * does not parse makes it unfed again: never the older list (issue 9, class 3). */
static void test_fail_closed(void **state)
{
    struct fixture *f = *state;
    struct dyno_verifier *v = NULL;
    struct dyno_claims c = claims(f->now + 3600), s = claims(f->now + 3600), out;
    snprintf(s.role, sizeof(s.role), "service");
    snprintf(s.sub, sizeof(s.sub), "service");
    s.admin = false;
    char *tok = sign(f, &c), *stok = sign(f, &s);

    assert_int_equal(dyno_verifier_load(f->pub, &v), 0);
    assert_false(dyno_verifier_fed(v));
    assert_int_equal(dyno_token_verify(v, tok, f->now, &out), DYNO_EUNAVAIL);
    assert_int_equal(dyno_verifier_check(v, &c, f->now), DYNO_EUNAVAIL);
    assert_int_equal(dyno_token_verify(v, stok, f->now, &out), 0);
    assert_int_equal(dyno_verifier_apply_revoked(v, EMPTY_DOC, strlen(EMPTY_DOC), NULL, NULL), 0);
    assert_true(dyno_verifier_fed(v));
    assert_int_equal(dyno_token_verify(v, tok, f->now, &out), 0);
    assert_int_not_equal(dyno_verifier_apply_revoked(v, "{\"revoked\":[1]}", 15, NULL, NULL), 0);
    assert_false(dyno_verifier_fed(v));
    assert_int_equal(dyno_token_verify(v, tok, f->now, &out), DYNO_EUNAVAIL);
    assert_int_equal(dyno_token_verify(v, stok, f->now, &out), 0);
    /* A revoked or expired token stays refused as such, fed or not. */
    assert_int_equal(dyno_verifier_revoke(v, c.jti, c.exp), 0);
    assert_int_equal(dyno_token_verify(v, tok, f->now, &out), DYNO_EUNAUTH);
    dyno_verifier_free(v);
    free(tok);
    free(stok);
}

/* Issue 11: a token whose signature verified is remembered (the signature is not checked
 * again), but every use still checks expiry, revocation, epochs and the fed state; only the
 * exact same bytes hit; the table is bounded. */
static void test_verify_cache(void **state)
{
    struct fixture *f = *state;
    struct dyno_claims c = claims(f->now + 3600), out;
    char *tok = sign(f, &c);

    assert_int_equal(dyno_verifier_cached(f->verifier), 0);
    assert_int_equal(dyno_token_verify(f->verifier, tok, f->now, &out), 0);
    assert_int_equal(dyno_verifier_cached(f->verifier), 1);
    memset(&out, 0, sizeof(out));
    assert_int_equal(dyno_token_verify(f->verifier, tok, f->now, &out), 0); /* a hit */
    assert_string_equal(out.sub, "alice");
    assert_string_equal(out.org, "lab/ct");
    assert_string_equal(out.jti, c.jti);
    assert_int_equal(out.exp, c.exp);
    assert_int_equal(dyno_verifier_cached(f->verifier), 1);

    /* The same token with a byte of its signature changed is another string: verified, refused. */
    size_t len = strlen(tok);
    tok[len - 2] = tok[len - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(dyno_token_verify(f->verifier, tok, f->now, &out), DYNO_EUNAUTH);
    tok[len - 2] = tok[len - 2] == 'A' ? 'B' : 'A'; /* not necessarily the original: re-sign */
    free(tok);
    tok = sign(f, &c);
    assert_int_equal(dyno_token_verify(f->verifier, tok, f->now, &out), 0);
    /* A prefix of a cached token is refused too. */
    char *cut = strndup(tok, len - 1);
    assert_int_equal(dyno_token_verify(f->verifier, cut, f->now, &out), DYNO_EUNAUTH);
    free(cut);

    /* Expiry and revocation bite on a cached token. */
    assert_int_equal(dyno_token_verify(f->verifier, tok, c.exp, &out), DYNO_EUNAUTH);
    assert_int_equal(dyno_verifier_revoke(f->verifier, c.jti, c.exp), 0);
    assert_int_equal(dyno_token_verify(f->verifier, tok, f->now, &out), DYNO_EUNAUTH);
    free(tok);

    /* An epoch too. */
    struct dyno_claims b = claims(f->now + 3600);
    snprintf(b.sub, sizeof(b.sub), "bob");
    char *btok = sign(f, &b);
    assert_int_equal(dyno_token_verify(f->verifier, btok, f->now, &out), 0);
    char doc[200];
    snprintf(doc, sizeof(doc), "{\"revoked\":[],\"epochs\":[{\"sub\":\"bob\",\"before\":%lld}]}",
             (long long)(b.iat + 1));
    assert_int_equal(dyno_verifier_apply_revoked(f->verifier, doc, strlen(doc), NULL, NULL), 0);
    assert_int_equal(dyno_token_verify(f->verifier, btok, f->now, &out), DYNO_EUNAUTH);
    /* The fed state: an unparseable document closes a cached user token. */
    assert_int_not_equal(dyno_verifier_apply_revoked(f->verifier, "{\"revoked\":[1]}", 15, NULL, NULL), 0);
    struct dyno_claims d = claims(f->now + 3600);
    char *dtok = sign(f, &d);
    assert_int_equal(dyno_token_verify(f->verifier, dtok, f->now, &out), DYNO_EUNAVAIL);
    assert_int_equal(dyno_token_verify(f->verifier, dtok, f->now, &out), DYNO_EUNAVAIL);
    assert_int_equal(dyno_verifier_apply_revoked(f->verifier, EMPTY_DOC, strlen(EMPTY_DOC), NULL, NULL), 0);
    assert_int_equal(dyno_token_verify(f->verifier, dtok, f->now, &out), 0);
    free(btok);
    free(dtok);

    /* Bounded: many distinct tokens all verify, the table does not grow past its size. */
    for (int i = 0; i < 300; i++) {
        struct dyno_claims e = claims(f->now + 3600);
        char *etok = sign(f, &e);
        assert_int_equal(dyno_token_verify(f->verifier, etok, f->now, &out), 0);
        assert_string_equal(out.jti, e.jti);
        free(etok);
    }
    assert_true(dyno_verifier_cached(f->verifier) <= 64);
    assert_true(dyno_verifier_cached(f->verifier) >= 16);
}

/* The document replaces the state whole; an epoch revokes every token of its sub issued
 * before it, and nothing of anyone else. */
static void test_apply_document_epochs(void **state)
{
    struct fixture *f = *state;
    struct dyno_claims old = claims(f->now + 3600), fresh = claims(f->now + 3600),
                       bob = claims(f->now + 3600), out;
    char doc[512];
    size_t nj = 0, ne = 0;
    old.iat = f->now - 10;
    fresh.iat = f->now;
    snprintf(bob.sub, sizeof(bob.sub), "bob");
    bob.iat = f->now - 10;
    char *t_old = sign(f, &old), *t_fresh = sign(f, &fresh), *t_bob = sign(f, &bob);

    snprintf(doc, sizeof(doc),
             "{\"revoked\":[{\"jti\":\"%s\",\"exp\":%lld},{\"jti\":\"%s\",\"exp\":%lld}],"
             "\"epochs\":[{\"sub\":\"alice\",\"before\":%lld}]}",
             bob.jti, (long long)bob.exp, bob.jti, (long long)bob.exp + 5, (long long)f->now);
    assert_int_equal(dyno_verifier_apply_revoked(f->verifier, doc, strlen(doc), &nj, &ne), 0);
    assert_int_equal(nj, 1); /* one entry per jti */
    assert_int_equal(ne, 1);
    assert_int_equal(dyno_token_verify(f->verifier, t_old, f->now, &out), DYNO_EUNAUTH);
    assert_int_equal(dyno_token_verify(f->verifier, t_fresh, f->now, &out), 0);
    assert_int_equal(dyno_token_verify(f->verifier, t_bob, f->now, &out), DYNO_EUNAUTH);
    assert_int_equal(dyno_verifier_check(f->verifier, &old, f->now), DYNO_EUNAUTH);
    /* The next document is the whole state: bob's entry is gone, so is alice's epoch. */
    assert_int_equal(dyno_verifier_apply_revoked(f->verifier, EMPTY_DOC, strlen(EMPTY_DOC), &nj, &ne), 0);
    assert_int_equal(nj + ne, 0);
    assert_int_equal(dyno_token_verify(f->verifier, t_old, f->now, &out), 0);
    assert_int_equal(dyno_token_verify(f->verifier, t_bob, f->now, &out), 0);
    free(t_old);
    free(t_fresh);
    free(t_bob);
}

static void test_revoked_parse(void **state)
{
    (void)state;
    struct dyno_revoked_doc *d = NULL;
    const char *ok = "{\"revoked\":[{\"jti\":\"0123456789abcdef0123456789abcdef\",\"exp\":1767225600},"
                     "{\"jti\":\"ffffffffffffffffffffffffffffffff\",\"exp\":1}],"
                     "\"epochs\":[{\"sub\":\"alice\",\"before\":1767139200}]}";

    assert_int_equal(dyno_revoked_parse(ok, strlen(ok), &d), 0);
    assert_int_equal(d->njtis, 2);
    assert_string_equal(d->jtis[0].jti, "0123456789abcdef0123456789abcdef");
    assert_int_equal(d->jtis[0].exp, 1767225600);
    assert_int_equal(d->jtis[1].exp, 1);
    assert_int_equal(d->nepochs, 1);
    assert_string_equal(d->epochs[0].sub, "alice");
    assert_int_equal(d->epochs[0].before, 1767139200);
    dyno_revoked_free(d);
    assert_int_equal(dyno_revoked_parse(EMPTY_DOC, strlen(EMPTY_DOC), &d), 0);
    assert_int_equal(d->njtis + d->nepochs, 0);
    dyno_revoked_free(d);

    static const char *const bad[] = {
        "",
        "[]",
        "{}",
        "{\"revoked\":{}}",
        "{\"revoked\":[1]}",
        "{\"revoked\":[{\"jti\":\"0123456789ABCDEF0123456789abcdef\",\"exp\":1}]}",
        "{\"revoked\":[{\"jti\":\"0123456789abcdef\",\"exp\":1}]}",
        "{\"revoked\":[{\"jti\":\"0123456789abcdef0123456789abcdef\"}]}",
        "{\"revoked\":[{\"jti\":\"0123456789abcdef0123456789abcdef\",\"exp\":1.5}]}",
        "{\"revoked\":[{\"jti\":\"0123456789abcdef0123456789abcdef\",\"exp\":\"1\"}]}",
        "{\"revoked\":[{\"jti\":\"0123456789abcdef0123456789abcdef\",\"exp\":1},7]}",
        "{\"revoked\":[],\"epochs\":{}}",
        "{\"revoked\":[],\"epochs\":[{\"sub\":\"a/b\",\"before\":1}]}",
        "{\"revoked\":[],\"epochs\":[{\"sub\":\"alice\"}]}",
        "{\"revoked\":[],\"epochs\":[{\"before\":1}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        d = (struct dyno_revoked_doc *)1;
        assert_int_not_equal(dyno_revoked_parse(bad[i], strlen(bad[i]), &d), 0);
        assert_null(d);
    }
    assert_int_equal(dyno_revoked_parse(ok, DYNO_REVOKED_DOC_MAX + 1, &d), DYNO_ETOOBIG);
    assert_int_equal(dyno_revoked_parse(NULL, 0, &d), DYNO_EINVAL);
}

/* Service names are no user names: a user token for one is refused everywhere. */
static void test_reserved_subs(void **state)
{
    struct fixture *f = *state;
    struct dyno_claims c = claims(f->now + 3600), out;
    static const char *const reserved[] = {"service",    "gateway-gw1", "container-c1", "metadata-x",
                                           "pubsub-ps1", "auth-auth1",  "bridge-site-2"};
    static const char *const fine[] = {"alice", "gateway", "gatewayx-1", "auth", "my-gateway-1", "bridge"};

    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        assert_true(dyno_token_sub_reserved(reserved[i]));
        snprintf(c.sub, sizeof(c.sub), "%s", reserved[i]);
        c.jti[0] = '\0';
        char *tok = sign(f, &c);
        assert_int_equal(dyno_token_verify(f->verifier, tok, f->now, &out), DYNO_EUNAUTH);
        free(tok);
    }
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++)
        assert_false(dyno_token_sub_reserved(fine[i]));
    assert_true(dyno_token_sub_reserved(NULL));
}

static void test_b64url(void **state)
{
    (void)state;
    /* RFC 4648 section 10 vectors, base64url alphabet, no padding. */
    static const struct {
        const char *in, *out;
    } v[] = {{"", ""},           {"f", "Zg"},          {"fo", "Zm8"},         {"foo", "Zm9v"},
             {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};
    char enc[64];
    uint8_t dec[64];
    size_t n;

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_int_equal(dyno_b64url_encode((const uint8_t *)v[i].in, strlen(v[i].in), enc),
                         strlen(v[i].out));
        assert_string_equal(enc, v[i].out);
        assert_int_equal(dyno_b64url_decode(v[i].out, strlen(v[i].out), dec, sizeof(dec), &n), 0);
        assert_int_equal(n, strlen(v[i].in));
        assert_memory_equal(dec, v[i].in, n);
    }
    /* The URL-safe characters: 0xfb 0xff -> "-_8" */
    const uint8_t bin[] = {0xfb, 0xff};
    assert_int_equal(dyno_b64url_encode(bin, 2, enc), 3);
    assert_string_equal(enc, "-_8");
    assert_int_equal(dyno_b64url_decode("-_8", 3, dec, sizeof(dec), &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(dec, bin, 2);

    assert_int_equal(dyno_b64url_decode("Zm9v=", 5, dec, sizeof(dec), &n), DYNO_EINVAL);
    assert_int_equal(dyno_b64url_decode("Zm+v", 4, dec, sizeof(dec), &n), DYNO_EINVAL);
    assert_int_equal(dyno_b64url_decode("Zm/v", 4, dec, sizeof(dec), &n), DYNO_EINVAL);
    assert_int_equal(dyno_b64url_decode("Z", 1, dec, sizeof(dec), &n), DYNO_EINVAL);
    assert_int_equal(dyno_b64url_decode("Zm9", 3, dec, sizeof(dec), &n),
                     DYNO_EINVAL); /* canonical is "Zm8" */
    /* Non-canonical: "Zh" decodes to 'f' with non-zero leftover bits. */
    assert_int_equal(dyno_b64url_decode("Zh", 2, dec, sizeof(dec), &n), DYNO_EINVAL);
    assert_int_equal(dyno_b64url_decode("Zm9vYmFy", 8, dec, 5, &n), DYNO_ETOOBIG);
    assert_int_equal(dyno_b64url_decode("Zm9vYmFy", 8, dec, 6, &n), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),
        cmocka_unit_test_setup_teardown(test_keygen_private_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_refuses_bad_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_document_epochs, setup, teardown),
        cmocka_unit_test(test_revoked_parse),
        cmocka_unit_test_setup_teardown(test_reserved_subs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claims_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_cache, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
