/*
 * Ed25519-signed bearer tokens, verified offline by everyone holding the public key.
 *
 *   dyn1.<base64url(claims JSON)>.<base64url(signature over "dyn1.<claims part>")>
 *   claims: {"sub":"alice","org":"lab","adm":false,"role":"user"|"service","exp":1767225600,
 *            "jti":"<32 hex>","iat":1767139200}
 *
 * Keys are PEM files (PKCS#8 private, SubjectPublicKeyInfo public). A verifier also keeps
 * the revocation state (revoked token ids and per-user epochs), fed from dyno/v1/auth/revoked;
 * all verifier calls are thread-safe.
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
/* A new verifier holds no revocation state yet ("unfed"): until dyno_verifier_apply_revoked
 * has applied a document, it refuses every "user" token with DYNO_EUNAVAIL (fail closed
 * after a restart); "service" tokens verify, so the services can boot and deliver it. */
int dyno_verifier_load(const char *pub_path, struct dyno_verifier **out);
void dyno_verifier_free(struct dyno_verifier *v);
/*
 * 0 and *out for a well-formed, well-signed token that is alive at now (exp > now), whose jti
 * is not revoked and whose iat is not before its sub's revocation epoch. DYNO_EUNAUTH for
 * malformed, badly signed, expired or revoked tokens and for a "user" token whose sub is a
 * reserved name (dyno_token_sub_reserved); DYNO_EUNAVAIL for a good "user" token while v is
 * unfed (see dyno_verifier_load).
 */
int dyno_token_verify(struct dyno_verifier *v, const char *token, int64_t now, struct dyno_claims *out);
/* How many verified tokens v remembers (a fixed, small table: dyno_token_verify skips the
 * signature check of a token seen before, never the revocation and expiry checks). */
size_t dyno_verifier_cached(struct dyno_verifier *v);
/* The revocation half of dyno_token_verify for claims verified earlier (a broker session):
 * 0, DYNO_EUNAUTH (expired at now, revoked, before its sub's epoch) or DYNO_EUNAVAIL (a user
 * token and v unfed). */
int dyno_verifier_check(struct dyno_verifier *v, const struct dyno_claims *c, int64_t now);
/* Remembers jti as revoked until exp (then it expires anyway); the state stays unfed or fed. */
int dyno_verifier_revoke(struct dyno_verifier *v, const char *jti, int64_t exp);
bool dyno_verifier_is_revoked(struct dyno_verifier *v, const char *jti);
/* True once a revocation document has been applied (and none failed to parse since). */
bool dyno_verifier_fed(struct dyno_verifier *v);

/*
 * The revocation document (protocol.md §7), published retained on dyno/v1/auth/revoked by
 * dyno-auth, at most DYNO_REVOKED_DOC_MAX bytes:
 *   {"revoked":[{"jti":"<32 hex>","exp":<unix s>}...],
 *    "epochs":[{"sub":"alice","before":<unix s>}...]}
 * revoked: tokens revoked one by one; epochs: every token of sub whose iat is before
 * "before" is revoked (a mass revocation that costs one entry). "epochs" may be absent.
 * At most DYNO_REVOKED_ENTRIES_MAX entries in each array.
 */
#define DYNO_REVOKED_DOC_MAX (1024 * 1024)
/* More than a document of DYNO_REVOKED_DOC_MAX bytes can hold (an entry takes at least 22
 * bytes), so a document dyno-auth may publish is never refused for its count alone. */
#define DYNO_REVOKED_ENTRIES_MAX 65536

struct dyno_revoked_jti {
    char jti[DYNO_KEY_LEN + 1];
    int64_t exp;
};
struct dyno_revoked_epoch {
    char sub[DYNO_SEG_MAX + 1];
    int64_t before;
};
struct dyno_revoked_doc {
    struct dyno_revoked_jti *jtis; /* njtis entries */
    size_t njtis;
    struct dyno_revoked_epoch *epochs; /* nepochs entries */
    size_t nepochs;
};
/* Parses a document from json[0..len) (need not be NUL-terminated); any malformed entry
 * rejects it whole. 0 and *out (dyno_revoked_free), DYNO_ETOOBIG, DYNO_EINVAL, DYNO_ENOMEM. */
int dyno_revoked_parse(const void *json, size_t len, struct dyno_revoked_doc **out);
void dyno_revoked_free(struct dyno_revoked_doc *d);
/*
 * Replaces v's revocation state by the document json[0..len) and marks v fed: 0 (with the
 * entry counts in *njtis and *nepochs when non-NULL). A document that does not parse leaves
 * v unfed, so user tokens are refused until a good one arrives (fail closed): the parse
 * error is returned. Thread-safe.
 */
int dyno_verifier_apply_revoked(struct dyno_verifier *v, const void *json, size_t len, size_t *njtis,
                                size_t *nepochs);

/* True for a name no user may have: "service" and "<kind>-..." for every service kind
 * (container, gateway, metadata, pubsub, auth, and bridge: a site broker's bridge to the core
 * broker, "bridge-<site>"). Those are the services' broker usernames and client ids, and
 * dyno/v1/reply/<name> is where their RPC replies go. NULL is reserved. */
bool dyno_token_sub_reserved(const char *name);

/* base64url without padding. encode: out needs 4*ceil(n/3)+1 bytes; returns length written.
 * decode: DYNO_EINVAL on bad input, DYNO_ETOOBIG if cap is too small. */
size_t dyno_b64url_encode(const uint8_t *in, size_t n, char *out);
int dyno_b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen);
#endif
