/*
 * Fuzzes token verification (dyno_token_verify, lib/token.h) and base64url.
 *
 * One fixed Ed25519 key pair is made at start-up from a constant seed (so a saved crash
 * input replays with the same key), written as PEM to a private temp folder, and loaded
 * through the library (dyno_signer_load, dyno_verifier_load).
 *
 * Input: one mode byte, then the rest.
 *   mode % 3 == 0  the rest is a token string; verify it as is;
 *   mode % 3 == 1  the rest is claims JSON; the target signs "dyn1.<b64url(rest)>" with the
 *                  key and verifies the result, so hostile claims reach the JSON parsing
 *                  behind the signature check (what a buggy or compromised signer could mint);
 *   mode % 3 == 2  base64url: decode then encode gives the input back (one canonical
 *                  encoding), encode then decode gives the bytes back.
 * An accepted token must have well-formed claims (sub a segment, org "" or an org path,
 * role user|service, jti a key, exp after now), must be refused at now = exp and once its
 * jti is revoked, and re-signing its claims must give a token that verifies to the same.
 */
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "dynostore/error.h"
#include "fuzz.h"
#include "token.h"

#define EMPTY_DOC "{\"revoked\":[]}"

#define NOW 1700000000 /* the verifier's clock: fixed, so runs replay */

static struct {
    EVP_PKEY *key;
    struct dyno_signer *signer;
    struct dyno_verifier *verifier;
    char dir[64], priv[96], pub[96];
} g;

static void cleanup(void)
{
    unlink(g.priv);
    unlink(g.pub);
    rmdir(g.dir);
}

static void write_pem(const char *path, bool priv)
{
    FILE *fp = fopen(path, "w");

    FUZZ_CHECK(fp != NULL);
    FUZZ_CHECK(priv ? PEM_write_PrivateKey(fp, g.key, NULL, NULL, 0, NULL, NULL) == 1
                    : PEM_write_PUBKEY(fp, g.key) == 1);
    FUZZ_CHECK(fclose(fp) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const uint8_t seed[32] = {'d', 'y', 'n', 'o', 's', 't', 'o', 'r', 'e', '-', 'f',
                                     'u', 'z', 'z', '-', 'k', 'e', 'y', 0,   1,   2,   3,
                                     4,   5,   6,   7,   8,   9,   10,  11,  12,  13};
    const char *tmp = getenv("TMPDIR");

    (void)argc;
    (void)argv;
    g.key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
    FUZZ_CHECK(g.key != NULL);
    snprintf(g.dir, sizeof(g.dir), "%s/dyno-fuzz-token-XXXXXX", tmp && strlen(tmp) < 32 ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(g.dir) != NULL);
    snprintf(g.priv, sizeof(g.priv), "%s/priv.pem", g.dir);
    snprintf(g.pub, sizeof(g.pub), "%s/pub.pem", g.dir);
    atexit(cleanup);
    write_pem(g.priv, true);
    write_pem(g.pub, false);
    FUZZ_CHECK(dyno_signer_load(g.priv, &g.signer) == 0);
    unlink(g.priv); /* loaded once; the public key is reloaded for each fresh verifier */
    FUZZ_CHECK(dyno_verifier_load(g.pub, &g.verifier) == 0);
    FUZZ_CHECK(dyno_verifier_apply_revoked(g.verifier, EMPTY_DOC, strlen(EMPTY_DOC), NULL, NULL) == 0);
    return 0;
}

/* "" or 1..DYNO_DEPTH_MAX valid segments joined by '/'. */
static bool claims_equal(const struct dyno_claims *a, const struct dyno_claims *b)
{
    return strcmp(a->sub, b->sub) == 0 && strcmp(a->org, b->org) == 0 && a->admin == b->admin &&
           strcmp(a->role, b->role) == 0 && a->exp == b->exp && a->iat == b->iat &&
           strcmp(a->jti, b->jti) == 0;
}

/* Verifies token; when accepted, checks everything an accepted token promises. */
static void verify_and_check(const char *token)
{
    struct dyno_claims c, again;
    struct dyno_verifier *fresh = NULL;
    char *tok2 = NULL;

    memset(&c, 0, sizeof(c));
    int rc = dyno_token_verify(g.verifier, token, NOW, &c);
    FUZZ_CHECK(rc == 0 || rc == DYNO_EUNAUTH);
    if (rc != 0)
        return;
    FUZZ_CHECK(strlen(token) <= DYNO_TOKEN_MAX);
    FUZZ_CHECK(strnlen(c.sub, sizeof(c.sub)) < sizeof(c.sub) && dyno_valid_segment(c.sub));
    FUZZ_CHECK(strnlen(c.org, sizeof(c.org)) < sizeof(c.org) && fuzz_org_ok(c.org, true, sizeof(c.org) - 1));
    FUZZ_CHECK(strcmp(c.role, "user") == 0 || strcmp(c.role, "service") == 0);
    FUZZ_CHECK(dyno_valid_key(c.jti));
    FUZZ_CHECK(c.exp > NOW);

    /* Expiry is exclusive: refused from exp on. */
    FUZZ_CHECK(dyno_token_verify(g.verifier, token, c.exp, NULL) == DYNO_EUNAUTH);
    /* Same claims, signed by the library: verifies to the same claims. */
    again = c;
    FUZZ_CHECK(dyno_token_sign(g.signer, &again, &tok2) == 0);
    memset(&again, 0, sizeof(again));
    FUZZ_CHECK(dyno_token_verify(g.verifier, tok2, NOW, &again) == 0);
    FUZZ_CHECK(claims_equal(&c, &again));
    free(tok2);
    /* Revoked: refused. A fresh verifier keeps runs independent of each other. */
    FUZZ_CHECK(dyno_verifier_load(g.pub, &fresh) == 0);
    /* Unfed, it fails closed for users only (issue 9, class 3). */
    FUZZ_CHECK(dyno_token_verify(fresh, token, NOW, NULL) ==
               (strcmp(c.role, "user") == 0 ? DYNO_EUNAVAIL : 0));
    FUZZ_CHECK(dyno_verifier_apply_revoked(fresh, EMPTY_DOC, strlen(EMPTY_DOC), NULL, NULL) == 0);
    FUZZ_CHECK(dyno_token_verify(fresh, token, NOW, NULL) == 0);
    FUZZ_CHECK(dyno_verifier_revoke(fresh, c.jti, c.exp) == 0);
    FUZZ_CHECK(dyno_verifier_is_revoked(fresh, c.jti));
    FUZZ_CHECK(dyno_token_verify(fresh, token, NOW, NULL) == DYNO_EUNAUTH);
    dyno_verifier_free(fresh);
}

static void fuzz_raw(const uint8_t *data, size_t size)
{
    char *token = malloc(size + 1);

    FUZZ_CHECK(token != NULL);
    memcpy(token, data, size);
    token[size] = '\0';
    verify_and_check(token);
    free(token);
}

static void fuzz_signed_claims(const uint8_t *claims, size_t size)
{
    uint8_t sig[64];
    size_t siglen = sizeof(sig);
    /* "dyn1." + claims + "." + signature, as dyno_token_sign lays it out. */
    char *tok = malloc(5 + (size + 2) / 3 * 4 + 1 + (sizeof(sig) + 2) / 3 * 4 + 1);
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    FUZZ_CHECK(tok != NULL && md != NULL);
    memcpy(tok, "dyn1.", 5);
    size_t pos = 5 + dyno_b64url_encode(claims, size, tok + 5);
    FUZZ_CHECK(EVP_DigestSignInit(md, NULL, NULL, NULL, g.key) == 1);
    FUZZ_CHECK(EVP_DigestSign(md, sig, &siglen, (const unsigned char *)tok, pos) == 1 && siglen == 64);
    tok[pos++] = '.';
    dyno_b64url_encode(sig, siglen, tok + pos);
    verify_and_check(tok);
    EVP_MD_CTX_free(md);
    free(tok);
}

static void fuzz_b64(const uint8_t *data, size_t size)
{
    uint8_t *dec = malloc(size + 1);
    char *enc = malloc(4 * (size / 3 + 1) + 1);
    size_t n = 0;

    FUZZ_CHECK(dec != NULL && enc != NULL);
    int rc = dyno_b64url_decode((const char *)data, size, dec, size, &n);
    FUZZ_CHECK(rc == 0 || rc == DYNO_EINVAL);
    if (rc == 0) {
        FUZZ_CHECK(n <= size && n == size / 4 * 3 + (size % 4 ? size % 4 - 1 : 0));
        FUZZ_CHECK(dyno_b64url_encode(dec, n, enc) == size && memcmp(enc, data, size) == 0);
        /* One byte short of room: refused before a byte is written (ASan sees the exact
         * allocation). */
        if (n > 0) {
            uint8_t *small = malloc(n - 1 ? n - 1 : 1);
            FUZZ_CHECK(small != NULL);
            FUZZ_CHECK(dyno_b64url_decode((const char *)data, size, small, n - 1, NULL) == DYNO_ETOOBIG);
            free(small);
        }
    }
    size_t elen = dyno_b64url_encode(data, size, enc);
    FUZZ_CHECK(elen == strlen(enc) && elen % 4 != 1);
    FUZZ_CHECK(dyno_b64url_decode(enc, elen, dec, size, &n) == 0 && n == size &&
               memcmp(dec, data, size) == 0);
    free(dec);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_raw(data + 1, size - 1);
        break;
    case 1:
        fuzz_signed_claims(data + 1, size - 1);
        break;
    default:
        fuzz_b64(data + 1, size - 1);
        break;
    }
    return 0;
}
