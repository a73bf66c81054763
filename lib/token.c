/*
 * Ed25519 bearer tokens (OpenSSL 3 EVP), base64url, and the revocation set.
 *
 * Verification is deliberately strict and ordered: shape and size first, then the
 * signature, and only then is the (now authenticated) claims JSON parsed, so an attacker
 * never gets cJSON to chew on bytes we did not sign.
 */
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "dynostore/error.h"
#include "json.h"

#define TOKEN_PREFIX "dyn1"
#define TOKEN_SIG_LEN 64 /* Ed25519 signatures are always 64 bytes */
#define TOKEN_JTI_BYTES (DYNO_KEY_LEN / 2)

struct dyno_signer {
    EVP_PKEY *key;
};

/* Revoked token ids, sorted by jti for binary search. */
struct token_revoked {
    char jti[DYNO_KEY_LEN + 1];
    int64_t exp;
};

/*
 * Tokens whose signature verified, with their claims. An Ed25519 verification costs about
 * as much CPU as the rest of a small get or put (issue 11: a third of the gateway's CPU per
 * 4 KiB get, and every container pays it again per fragment for the service token), while a
 * client sends the same token on every request. A signature is a pure function of the token's
 * bytes and the verifier's key, which never changes, so its outcome can be remembered: an
 * entry is found only by comparing the whole token (in constant time, so that timing tells
 * nothing about how much of a remembered token a guess matched), and a hit still goes through
 * dyno_verifier_check (expiry, revocation, epochs, fed state), so nothing that can change is
 * cached. Direct-mapped and fixed in size: a flood of distinct tokens evicts, never grows.
 */
#define TOKEN_CACHE_SLOTS 64
struct token_cached {
    char *token; /* NULL: empty */
    size_t len;
    struct dyno_claims claims;
};

struct dyno_verifier {
    EVP_PKEY *key;
    pthread_mutex_t lock; /* guards everything below */
    struct token_cached cache[TOKEN_CACHE_SLOTS];
    struct token_revoked *revoked;
    size_t nrevoked;
    size_t caprevoked;
    struct dyno_revoked_epoch *epochs; /* sorted by sub */
    size_t nepochs;
    bool fed; /* a revocation document has been applied, and none failed since */
};

/* ---- base64url ---------------------------------------------------------------------- */

static const char b64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t dyno_b64url_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0, i = 0;

    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = b64url_alphabet[v >> 6 & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = b64url_alphabet[v >> 6 & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64url_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int dyno_b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen)
{
    size_t need = n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;

    /* A remainder of one character cannot encode a whole byte. */
    if (in == NULL || n % 4 == 1)
        return DYNO_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (b64url_val(in[i]) < 0)
            return DYNO_EINVAL;
    if (need > cap)
        return DYNO_ETOOBIG;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 6 | (uint32_t)b64url_val(in[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Leftover bits must be zero: one canonical encoding per byte string, so a token
     * cannot be altered without changing what was signed. */
    if (acc != 0)
        return DYNO_EINVAL;
    if (outlen != NULL)
        *outlen = o;
    return 0;
}

/* ---- keys --------------------------------------------------------------------------- */

/* Writes pkey as PEM to a new file (never an existing one: O_EXCL) created with mode;
 * priv selects PKCS#8 private key or SubjectPublicKeyInfo. The private key's mode is set
 * at open, before a single byte is written, so it is never readable by others. */
static int token_write_pem(const char *path, EVP_PKEY *pkey, bool priv, mode_t mode)
{
    int rc = DYNO_EIO;
    int fd = -1;
    FILE *fp = NULL;

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        rc = errno == EEXIST ? DYNO_EEXIST : errno == ENOENT ? DYNO_ENOTFOUND : DYNO_EIO;
        goto out;
    }
    fp = fdopen(fd, "w");
    if (fp == NULL)
        goto out;
    fd = -1; /* owned by fp now */
    if (priv ? PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL) != 1
             : PEM_write_PUBKEY(fp, pkey) != 1) {
        rc = DYNO_EINTERNAL;
        goto out;
    }
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0)
        goto out;
    rc = 0;
out:
    if (fp != NULL && fclose(fp) != 0 && rc == 0)
        rc = DYNO_EIO;
    if (fd >= 0)
        close(fd);
    return rc;
}

int dyno_token_keygen(const char *priv_path, const char *pub_path)
{
    int rc = DYNO_EINTERNAL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    bool priv_written = false;

    if (priv_path == NULL || pub_path == NULL)
        return DYNO_EINVAL;
    ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &pkey) != 1)
        goto out;
    rc = token_write_pem(priv_path, pkey, true, 0600);
    if (rc != 0)
        goto out;
    priv_written = true;
    rc = token_write_pem(pub_path, pkey, false, 0644);
out:
    /* Never leave half a key pair behind: a later keygen would fail with EEXIST. */
    if (rc != 0 && priv_written)
        unlink(priv_path);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

static int token_read_pem(const char *path, bool priv, EVP_PKEY **out)
{
    FILE *fp = NULL;
    EVP_PKEY *pkey = NULL;

    if (path == NULL || out == NULL)
        return DYNO_EINVAL;
    fp = fopen(path, "re");
    if (fp == NULL)
        return errno == ENOENT ? DYNO_ENOTFOUND : DYNO_EIO;
    pkey = priv ? PEM_read_PrivateKey(fp, NULL, NULL, NULL) : PEM_read_PUBKEY(fp, NULL, NULL, NULL);
    fclose(fp);
    if (pkey == NULL)
        return DYNO_EINVAL;
    if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(pkey);
        return DYNO_EINVAL;
    }
    *out = pkey;
    return 0;
}

int dyno_signer_load(const char *priv_path, struct dyno_signer **out)
{
    struct dyno_signer *s = NULL;
    int rc;

    if (out == NULL)
        return DYNO_EINVAL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return DYNO_ENOMEM;
    rc = token_read_pem(priv_path, true, &s->key);
    if (rc != 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void dyno_signer_free(struct dyno_signer *s)
{
    if (s == NULL)
        return;
    EVP_PKEY_free(s->key);
    free(s);
}

int dyno_verifier_load(const char *pub_path, struct dyno_verifier **out)
{
    struct dyno_verifier *v = NULL;
    int rc;

    if (out == NULL)
        return DYNO_EINVAL;
    v = calloc(1, sizeof(*v));
    if (v == NULL)
        return DYNO_ENOMEM;
    rc = token_read_pem(pub_path, false, &v->key);
    if (rc != 0) {
        free(v);
        return rc;
    }
    pthread_mutex_init(&v->lock, NULL);
    *out = v;
    return 0;
}

void dyno_verifier_free(struct dyno_verifier *v)
{
    if (v == NULL)
        return;
    EVP_PKEY_free(v->key);
    pthread_mutex_destroy(&v->lock);
    for (size_t i = 0; i < TOKEN_CACHE_SLOTS; i++)
        free(v->cache[i].token);
    free(v->revoked);
    free(v->epochs);
    free(v);
}

/* ---- claims ------------------------------------------------------------------------- */

/* An org is "" or a '/'-separated path of valid segments, at most DYNO_DEPTH_MAX deep. */
static bool token_valid_org(const char *org)
{
    char seg[DYNO_SEG_MAX + 1];
    size_t depth = 0;
    const char *p = org;

    if (*org == '\0')
        return true;
    if (strlen(org) >= sizeof(((struct dyno_claims *)0)->org))
        return false;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash != NULL ? (size_t)(slash - p) : strlen(p);

        if (len == 0 || len > DYNO_SEG_MAX || ++depth > DYNO_DEPTH_MAX)
            return false;
        memcpy(seg, p, len);
        seg[len] = '\0';
        if (!dyno_valid_segment(seg))
            return false;
        if (slash == NULL)
            return true;
        p = slash + 1;
    }
}

static bool token_valid_role(const char *role)
{
    return role != NULL && (strcmp(role, "user") == 0 || strcmp(role, "service") == 0);
}

static int token_new_jti(char out[DYNO_KEY_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t raw[TOKEN_JTI_BYTES];

    if (RAND_bytes(raw, (int)sizeof(raw)) != 1)
        return DYNO_EINTERNAL;
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[DYNO_KEY_LEN] = '\0';
    return 0;
}

int dyno_token_sign(struct dyno_signer *s, struct dyno_claims *c, char **token)
{
    int rc = DYNO_ENOMEM;
    cJSON *j = NULL;
    char *json = NULL, *tok = NULL;
    size_t jlen = 0, pos, siglen = TOKEN_SIG_LEN;
    uint8_t sig[TOKEN_SIG_LEN];
    EVP_MD_CTX *md = NULL;
    char jti[DYNO_KEY_LEN + 1];

    if (s == NULL || c == NULL || token == NULL)
        return DYNO_EINVAL;
    /* Refuse to mint what no verifier would accept. */
    if (!dyno_valid_segment(c->sub) || !token_valid_org(c->org) || !token_valid_role(c->role) ||
        c->exp <= 0 || (c->jti[0] != '\0' && !dyno_valid_key(c->jti)))
        return DYNO_EINVAL;
    if (c->jti[0] == '\0') {
        rc = token_new_jti(jti);
        if (rc != 0)
            return rc;
    } else {
        memcpy(jti, c->jti, sizeof(jti));
    }

    j = cJSON_CreateObject();
    if (j == NULL || cJSON_AddStringToObject(j, "sub", c->sub) == NULL ||
        cJSON_AddStringToObject(j, "org", c->org) == NULL ||
        cJSON_AddBoolToObject(j, "adm", c->admin) == NULL ||
        cJSON_AddStringToObject(j, "role", c->role) == NULL || dyno_json_add_i64(j, "exp", c->exp) == NULL ||
        cJSON_AddStringToObject(j, "jti", jti) == NULL || dyno_json_add_i64(j, "iat", c->iat) == NULL)
        goto out;
    json = dyno_json_print(j, &jlen);
    if (json == NULL)
        goto out;

    /* "dyn1." + claims + "." + signature; all sizes are known before allocating. */
    size_t clen = (jlen + 2) / 3 * 4, slen = (TOKEN_SIG_LEN + 2) / 3 * 4;
    size_t total = sizeof(TOKEN_PREFIX) + clen + 1 + slen + 1;
    tok = malloc(total);
    if (tok == NULL)
        goto out;
    memcpy(tok, TOKEN_PREFIX ".", sizeof(TOKEN_PREFIX));
    pos = sizeof(TOKEN_PREFIX);
    pos += dyno_b64url_encode((const uint8_t *)json, jlen, tok + pos);

    rc = DYNO_EINTERNAL;
    md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestSignInit(md, NULL, NULL, NULL, s->key) != 1 ||
        EVP_DigestSign(md, sig, &siglen, (const unsigned char *)tok, pos) != 1 || siglen != TOKEN_SIG_LEN)
        goto out;
    tok[pos++] = '.';
    pos += dyno_b64url_encode(sig, siglen, tok + pos);
    if (pos > DYNO_TOKEN_MAX) {
        rc = DYNO_ETOOBIG;
        goto out;
    }
    memcpy(c->jti, jti, sizeof(jti));
    *token = tok;
    tok = NULL;
    rc = 0;
out:
    EVP_MD_CTX_free(md);
    free(tok);
    free(json);
    cJSON_Delete(j);
    return rc;
}

/* Copies a required string member into dst (cap bytes); false if absent, not a string
 * or too long. */
static bool token_claim_str(const cJSON *j, const char *name, char *dst, size_t cap)
{
    const char *v = dyno_json_str(j, name);
    size_t len;

    if (v == NULL)
        return false;
    len = strlen(v);
    if (len >= cap)
        return false;
    memcpy(dst, v, len + 1);
    return true;
}

static int token_parse_claims(const char *json, size_t len, struct dyno_claims *c)
{
    cJSON *j = NULL, *adm;
    int rc = DYNO_EUNAUTH;

    if (dyno_json_parse(json, len, DYNO_TOKEN_MAX, &j) != 0 || !cJSON_IsObject(j))
        goto out;
    adm = cJSON_GetObjectItemCaseSensitive(j, "adm");
    if (!cJSON_IsBool(adm))
        goto out;
    c->admin = cJSON_IsTrue(adm);
    if (!token_claim_str(j, "sub", c->sub, sizeof(c->sub)) || !dyno_valid_segment(c->sub) ||
        !token_claim_str(j, "org", c->org, sizeof(c->org)) || !token_valid_org(c->org) ||
        !token_claim_str(j, "role", c->role, sizeof(c->role)) || !token_valid_role(c->role) ||
        !token_claim_str(j, "jti", c->jti, sizeof(c->jti)) || !dyno_valid_key(c->jti))
        goto out;
    if (dyno_json_i64(j, "exp", &c->exp) != 0 || dyno_json_i64(j, "iat", &c->iat) != 0)
        goto out;
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

static size_t token_cache_slot(const char *token, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)token[i]) * 1099511628211ULL;
    return (size_t)(h % TOKEN_CACHE_SLOTS);
}

/* True with *c when token (len bytes) verified before. */
static bool token_cache_find(struct dyno_verifier *v, const char *token, size_t len, struct dyno_claims *c)
{
    struct token_cached *e = &v->cache[token_cache_slot(token, len)];
    bool hit;
    pthread_mutex_lock(&v->lock);
    hit = e->token && e->len == len && CRYPTO_memcmp(e->token, token, len) == 0;
    if (hit)
        *c = e->claims;
    pthread_mutex_unlock(&v->lock);
    return hit;
}

/* Remembers a token whose signature and claims verified (best effort: no memory, no entry). */
static void token_cache_add(struct dyno_verifier *v, const char *token, size_t len,
                            const struct dyno_claims *c)
{
    struct token_cached *e = &v->cache[token_cache_slot(token, len)];
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return;
    memcpy(copy, token, len);
    copy[len] = '\0';
    pthread_mutex_lock(&v->lock);
    char *old = e->token;
    e->token = copy;
    e->len = len;
    e->claims = *c;
    pthread_mutex_unlock(&v->lock);
    free(old);
}

size_t dyno_verifier_cached(struct dyno_verifier *v)
{
    size_t n = 0;
    if (v == NULL)
        return 0;
    pthread_mutex_lock(&v->lock);
    for (size_t i = 0; i < TOKEN_CACHE_SLOTS; i++)
        n += v->cache[i].token != NULL;
    pthread_mutex_unlock(&v->lock);
    return n;
}

int dyno_token_verify(struct dyno_verifier *v, const char *token, int64_t now, struct dyno_claims *out)
{
    const char *d1, *d2;
    size_t len, clen, slen, jlen = 0, siglen = 0;
    uint8_t json[DYNO_TOKEN_MAX];
    uint8_t sig[TOKEN_SIG_LEN + 3];
    struct dyno_claims c;
    EVP_MD_CTX *md = NULL;
    int ok;

    if (v == NULL || token == NULL)
        return DYNO_EUNAUTH;
    len = strnlen(token, DYNO_TOKEN_MAX + 1);
    if (len == 0 || len > DYNO_TOKEN_MAX)
        return DYNO_EUNAUTH;
    /* Exactly three parts: "dyn1", claims, signature. */
    d1 = memchr(token, '.', len);
    if (d1 == NULL || (size_t)(d1 - token) != sizeof(TOKEN_PREFIX) - 1 ||
        memcmp(token, TOKEN_PREFIX, sizeof(TOKEN_PREFIX) - 1) != 0)
        return DYNO_EUNAUTH;
    d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
    if (d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) != NULL)
        return DYNO_EUNAUTH;
    clen = (size_t)(d2 - d1 - 1);
    slen = len - (size_t)(d2 + 1 - token);
    if (clen == 0 || slen == 0)
        return DYNO_EUNAUTH;
    if (token_cache_find(v, token, len, &c)) {
        int crc = dyno_verifier_check(v, &c, now);
        if (crc == 0 && out != NULL)
            *out = c;
        return crc;
    }
    if (dyno_b64url_decode(d2 + 1, slen, sig, sizeof(sig), &siglen) != 0 || siglen != TOKEN_SIG_LEN)
        return DYNO_EUNAUTH;

    md = EVP_MD_CTX_new();
    if (md == NULL)
        return DYNO_ENOMEM;
    ok = EVP_DigestVerifyInit(md, NULL, NULL, NULL, v->key) == 1 &&
         EVP_DigestVerify(md, sig, siglen, (const unsigned char *)token, (size_t)(d2 - token)) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        return DYNO_EUNAUTH;

    if (dyno_b64url_decode(d1 + 1, clen, json, sizeof(json), &jlen) != 0)
        return DYNO_EUNAUTH;
    memset(&c, 0, sizeof(c));
    if (token_parse_claims((const char *)json, jlen, &c) != 0)
        return DYNO_EUNAUTH;
    /* Cached once signature and claims are good, before the checks of what can change
     * (a token revoked now may be checked again; the revocation still bites on every hit). */
    token_cache_add(v, token, len, &c);
    int rc = dyno_verifier_check(v, &c, now);
    if (rc != 0)
        return rc;
    if (out != NULL)
        *out = c;
    return 0;
}

/* ---- revocation --------------------------------------------------------------------- */

/* Index of jti in the sorted set, or where it would go; *found says which. Lock held. */
static size_t token_revoked_find(const struct dyno_verifier *v, const char *jti, bool *found)
{
    return dyno_name_search(v->revoked, v->nrevoked, sizeof(v->revoked[0]),
                            offsetof(struct token_revoked, jti), jti, found);
}

/* Drops entries whose token has expired anyway (verify refuses it on exp alone), so the
 * set stays as small as the number of live revoked tokens. Lock held. */
static void token_revoked_prune(struct dyno_verifier *v, int64_t now)
{
    size_t w = 0;

    for (size_t r = 0; r < v->nrevoked; r++)
        if (v->revoked[r].exp > now)
            v->revoked[w++] = v->revoked[r];
    v->nrevoked = w;
}

int dyno_verifier_revoke(struct dyno_verifier *v, const char *jti, int64_t exp)
{
    int rc = 0;
    bool found;
    size_t at;

    if (v == NULL || jti == NULL || !dyno_valid_key(jti))
        return DYNO_EINVAL;
    pthread_mutex_lock(&v->lock);
    at = token_revoked_find(v, jti, &found);
    if (found) {
        if (exp > v->revoked[at].exp)
            v->revoked[at].exp = exp;
        goto out;
    }
    if (v->nrevoked == v->caprevoked) {
        token_revoked_prune(v, (int64_t)time(NULL));
        at = token_revoked_find(v, jti, &found);
    }
    if (v->nrevoked == v->caprevoked) {
        size_t ncap = v->caprevoked == 0 ? 64 : v->caprevoked * 2;
        struct token_revoked *n = realloc(v->revoked, ncap * sizeof(*n));

        if (n == NULL) {
            rc = DYNO_ENOMEM;
            goto out;
        }
        v->revoked = n;
        v->caprevoked = ncap;
    }
    memmove(&v->revoked[at + 1], &v->revoked[at], (v->nrevoked - at) * sizeof(v->revoked[0]));
    memcpy(v->revoked[at].jti, jti, DYNO_KEY_LEN + 1);
    v->revoked[at].exp = exp;
    v->nrevoked++;
out:
    pthread_mutex_unlock(&v->lock);
    return rc;
}

bool dyno_verifier_is_revoked(struct dyno_verifier *v, const char *jti)
{
    bool found = false;

    if (v == NULL || jti == NULL)
        return false;
    pthread_mutex_lock(&v->lock);
    (void)token_revoked_find(v, jti, &found);
    pthread_mutex_unlock(&v->lock);
    return found;
}

bool dyno_verifier_fed(struct dyno_verifier *v)
{
    bool fed;

    if (v == NULL)
        return false;
    pthread_mutex_lock(&v->lock);
    fed = v->fed;
    pthread_mutex_unlock(&v->lock);
    return fed;
}

/* The epoch of sub ("before"), 0 when none. Lock held. */
static int64_t token_epoch_of(const struct dyno_verifier *v, const char *sub)
{
    bool found;
    size_t at = dyno_name_search(v->epochs, v->nepochs, sizeof(v->epochs[0]),
                                 offsetof(struct dyno_revoked_epoch, sub), sub, &found);
    return found ? v->epochs[at].before : 0;
}

int dyno_verifier_check(struct dyno_verifier *v, const struct dyno_claims *c, int64_t now)
{
    bool user, found = false;
    int rc = 0;

    if (v == NULL || c == NULL || c->exp <= now)
        return DYNO_EUNAUTH;
    user = strcmp(c->role, "service") != 0;
    /* Checked in every verifier, so a user named like a service is refused even where the
     * name alone would grant nothing. */
    if (user && dyno_token_sub_reserved(c->sub))
        return DYNO_EUNAUTH;
    pthread_mutex_lock(&v->lock);
    (void)token_revoked_find(v, c->jti, &found);
    if (found || c->iat < token_epoch_of(v, c->sub))
        rc = DYNO_EUNAUTH;
    else if (user && !v->fed)
        rc = DYNO_EUNAVAIL; /* revocations unknown: a user token might be revoked */
    pthread_mutex_unlock(&v->lock);
    return rc;
}

/* ---- the revocation document -------------------------------------------------------- */

void dyno_revoked_free(struct dyno_revoked_doc *d)
{
    if (d == NULL)
        return;
    free(d->jtis);
    free(d->epochs);
    free(d);
}

/* The array member name of j: NULL when absent (allowed only when optional), else an array
 * of at most DYNO_REVOKED_ENTRIES_MAX entries. *size gets its length. */
static int token_doc_array(const cJSON *j, const char *name, bool optional, const cJSON **arr, size_t *size)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, name);
    int n;

    *arr = NULL;
    *size = 0;
    if (a == NULL)
        return optional ? 0 : DYNO_EINVAL;
    if (!cJSON_IsArray(a))
        return DYNO_EINVAL;
    n = cJSON_GetArraySize(a);
    if (n < 0 || (size_t)n > DYNO_REVOKED_ENTRIES_MAX)
        return DYNO_ETOOBIG;
    *arr = a;
    *size = (size_t)n;
    return 0;
}

int dyno_revoked_parse(const void *json, size_t len, struct dyno_revoked_doc **out)
{
    cJSON *j = NULL;
    const cJSON *jtis, *epochs, *it;
    struct dyno_revoked_doc *d = NULL;
    size_t nj = 0, ne = 0;
    int rc;

    if (out == NULL)
        return DYNO_EINVAL;
    *out = NULL;
    if (json == NULL)
        return DYNO_EINVAL;
    rc = dyno_json_parse(json, len, DYNO_REVOKED_DOC_MAX, &j);
    if (rc != 0)
        goto out;
    rc = DYNO_EINVAL;
    if (!cJSON_IsObject(j))
        goto out;
    if ((rc = token_doc_array(j, "revoked", false, &jtis, &nj)) != 0 ||
        (rc = token_doc_array(j, "epochs", true, &epochs, &ne)) != 0)
        goto out;
    rc = DYNO_ENOMEM;
    d = calloc(1, sizeof(*d));
    if (d == NULL || (nj > 0 && (d->jtis = calloc(nj, sizeof(*d->jtis))) == NULL) ||
        (ne > 0 && (d->epochs = calloc(ne, sizeof(*d->epochs))) == NULL))
        goto out;
    rc = DYNO_EINVAL;
    cJSON_ArrayForEach(it, jtis)
    {
        const char *jti = dyno_json_str(it, "jti");
        struct dyno_revoked_jti *e = &d->jtis[d->njtis];

        if (!cJSON_IsObject(it) || !dyno_valid_key(jti) || dyno_json_i64(it, "exp", &e->exp) != 0)
            goto out;
        memcpy(e->jti, jti, DYNO_KEY_LEN + 1);
        d->njtis++;
    }
    cJSON_ArrayForEach(it, epochs)
    {
        const char *sub = dyno_json_str(it, "sub");
        struct dyno_revoked_epoch *e = &d->epochs[d->nepochs];

        if (!cJSON_IsObject(it) || !dyno_valid_segment(sub) || dyno_json_i64(it, "before", &e->before) != 0)
            goto out;
        memcpy(e->sub, sub, strlen(sub) + 1);
        d->nepochs++;
    }
    *out = d;
    d = NULL;
    rc = 0;
out:
    dyno_revoked_free(d);
    cJSON_Delete(j);
    return rc;
}

static int token_cmp_jti(const void *a, const void *b)
{
    return strcmp(((const struct token_revoked *)a)->jti, ((const struct token_revoked *)b)->jti);
}

static int token_cmp_epoch(const void *a, const void *b)
{
    return strcmp(((const struct dyno_revoked_epoch *)a)->sub, ((const struct dyno_revoked_epoch *)b)->sub);
}

int dyno_verifier_apply_revoked(struct dyno_verifier *v, const void *json, size_t len, size_t *njtis,
                                size_t *nepochs)
{
    struct dyno_revoked_doc *d = NULL;
    struct token_revoked *set = NULL;
    size_t n = 0, w = 0;
    int rc;

    if (v == NULL)
        return DYNO_EINVAL;
    rc = dyno_revoked_parse(json, len, &d);
    if (rc == 0 && d->njtis > 0 && (set = calloc(d->njtis, sizeof(*set))) == NULL)
        rc = DYNO_ENOMEM;
    if (rc != 0) {
        /* Whatever the document said is unknown now: refuse users until a good one. */
        pthread_mutex_lock(&v->lock);
        v->fed = false;
        pthread_mutex_unlock(&v->lock);
        dyno_revoked_free(d);
        return rc;
    }
    for (size_t i = 0; i < d->njtis; i++) {
        memcpy(set[i].jti, d->jtis[i].jti, sizeof(set[i].jti));
        set[i].exp = d->jtis[i].exp;
    }
    n = d->njtis;
    if (n > 0)
        qsort(set, n, sizeof(*set), token_cmp_jti);
    /* One entry per jti (the later expiry), as dyno_verifier_revoke keeps it. */
    for (size_t r = 0; r < n; r++) {
        if (w > 0 && strcmp(set[w - 1].jti, set[r].jti) == 0) {
            if (set[r].exp > set[w - 1].exp)
                set[w - 1].exp = set[r].exp;
        } else {
            set[w++] = set[r];
        }
    }
    if (d->nepochs > 0)
        qsort(d->epochs, d->nepochs, sizeof(*d->epochs), token_cmp_epoch);
    if (njtis != NULL)
        *njtis = w;
    if (nepochs != NULL)
        *nepochs = d->nepochs;
    pthread_mutex_lock(&v->lock);
    free(v->revoked);
    v->revoked = set;
    v->nrevoked = w;
    v->caprevoked = n;
    free(v->epochs);
    v->epochs = d->epochs;
    v->nepochs = d->nepochs;
    v->fed = true;
    pthread_mutex_unlock(&v->lock);
    d->epochs = NULL;
    dyno_revoked_free(d);
    return 0;
}

bool dyno_token_sub_reserved(const char *name)
{
    static const char *const kinds[] = {"container", "gateway", "metadata", "pubsub", "auth", "bridge"};

    if (name == NULL || strcmp(name, "service") == 0)
        return true;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        size_t n = strlen(kinds[i]);
        if (strncmp(name, kinds[i], n) == 0 && name[n] == '-')
            return true;
    }
    return false;
}
