/*
 * Ed25519-signed bearer tokens, verified offline by everyone holding the public key.
 *
 *   dyn1.<base64url(claims JSON)>.<base64url(signature over "dyn1.<claims part>")>
 *   claims: {"sub":"alice","org":"lab","adm":false,"role":"user"|"service","exp":1767225600,
 *            "jti":"<32 hex>","iat":1767139200}
 *
 * Keys are PEM files (PKCS#8 private, SubjectPublicKeyInfo public). A verifier also keeps
 * a set of revoked token ids (jti), fed from dyno/v1/auth/revoked; all verifier calls are
 * thread-safe.
 */
#ifndef DYNO_TOKEN_H
#define DYNO_TOKEN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "names.h"

#define DYNO_TOKEN_MAX 2048 /* longest token accepted anywhere */

struct dyno_claims {
    char sub[DYNO_SEG_MAX + 1];
    char org[DYNO_SEG_MAX * 4 + 4]; /* org path, may be "" */
    bool admin;
    char role[16]; /* "user" or "service" */
    int64_t exp;   /* unix seconds */
    int64_t iat;
    char jti[DYNO_KEY_LEN + 1];
};

/* Generates an Ed25519 key pair; private file written 0600. */
int dyno_token_keygen(const char *priv_path, const char *pub_path);

struct dyno_signer;
int dyno_signer_load(const char *priv_path, struct dyno_signer **out);
void dyno_signer_free(struct dyno_signer *s);
/* Signs c (a fresh jti is made when c->jti is empty, and copied back). *token is malloc'd. */
int dyno_token_sign(struct dyno_signer *s, struct dyno_claims *c, char **token);

struct dyno_verifier;
int dyno_verifier_load(const char *pub_path, struct dyno_verifier **out);
void dyno_verifier_free(struct dyno_verifier *v);
/* DYNO_EUNAUTH for malformed, badly signed, expired (exp <= now) or revoked tokens. */
int dyno_token_verify(struct dyno_verifier *v, const char *token, int64_t now, struct dyno_claims *out);
/* Remembers jti as revoked until exp (then it expires anyway). */
int dyno_verifier_revoke(struct dyno_verifier *v, const char *jti, int64_t exp);
bool dyno_verifier_is_revoked(struct dyno_verifier *v, const char *jti);

/* base64url without padding. encode: out needs 4*ceil(n/3)+1 bytes; returns length written.
 * decode: DYNO_EINVAL on bad input, DYNO_ETOOBIG if cap is too small. */
size_t dyno_b64url_encode(const uint8_t *in, size_t n, char *out);
int dyno_b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen);
#endif
