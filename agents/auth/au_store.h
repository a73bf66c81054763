/*
 * The auth store: users (PBKDF2-SHA256 password hashes), the organization tree and issued
 * token records, in SQLite (WAL, synchronous=FULL), one connection behind a mutex.
 * Thread-safe. Inputs are validated by the caller (au_rpc.c); every change is one
 * transaction, so a refused call changes nothing. Results are new cJSON values owned by the
 * caller. Errors are DYNO_E* with a message in err (when err is non-NULL).
 */
#ifndef DYNO_AU_STORE_H
#define DYNO_AU_STORE_H
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "names.h"

#define AU_SALT_LEN 16
#define AU_HASH_LEN 32
#define AU_PW_ITER 200000 /* PBKDF2 iterations for new hashes (stored per user) */
#define AU_PW_MIN 8
#define AU_PW_MAX 1024
#define AU_ORG_MAX 259 /* fits struct dyno_claims.org */
#define AU_TOKEN_NAME_MAX DYNO_NAME_MAX
#define AU_API_TOKENS_MAX 1000 /* default: unexpired API tokens per user, revoked ones included */
#define AU_SESSIONS_MAX 1000   /* default: unexpired session tokens per user, revoked ones included */
#define AU_REVOKED_PER_USER 32 /* default: listed revocations of a user before they become an epoch */
#define AU_LIST_MAX 100000     /* rows in one list answer */

struct au_user {
    char username[DYNO_SEG_MAX + 1];
    char org[AU_ORG_MAX + 1];
    bool admin;
    uint8_t hash[AU_HASH_LEN];
    uint8_t salt[AU_SALT_LEN];
    int iterations;
    int64_t created_at;
};

struct au_store;

int au_store_open(const char *path, struct au_store **out);
void au_store_close(struct au_store *s);

/* DYNO_ENOTFOUND when there is no such user. */
int au_user_get(struct au_store *s, const char *username, struct au_user *out);
/* DYNO_EEXIST when the name is taken, DYNO_EINVAL when u->org is not "" and no such org. */
int au_user_create(struct au_store *s, const struct au_user *u, char *err, size_t errlen);
/* {users:[{username, org, admin, created_at}]} by name. */
int au_user_list(struct au_store *s, cJSON **result, char *err, size_t errlen);
/* Records an issued token (kind "session" or "api"; name "" when none; now is its iat) and
 * drops the records and epochs that expired before now. DYNO_ETOOBIG when username already has
 * max (> 0; 0: no cap) unexpired tokens of that kind, revoked ones included. */
int au_token_record(struct au_store *s, const char *jti, const char *username, const char *kind,
                    const char *name, int64_t expires_at, int64_t now, int64_t max, char *err, size_t errlen);
/* {tokens:[{jti, kind, name, created_at, expires_at, revoked}]}: the tokens of username
 * that have not expired at now, newest first. */
int au_token_list(struct au_store *s, const char *username, int64_t now, cJSON **result, char *err,
                  size_t errlen);
/*
 * Revokes token jti on behalf of by (admin: any token). *changed says whether it was live
 * and not yet revoked (the revocation feed changes); *exp gets its expiry. When the token's
 * owner then has more than per_user_max (> 0) revocations listed one by one, they collapse
 * into an epoch: every token of the owner issued so far is revoked by one entry, and *epoch
 * gets its "before" (else 0). DYNO_ENOTFOUND (no such live token), DYNO_EFORBIDDEN (someone
 * else's and by is no admin).
 */
int au_token_revoke(struct au_store *s, const char *jti, const char *by, bool by_admin, int64_t now,
                    int64_t per_user_max, bool *changed, int64_t *exp, int64_t *epoch, char *err,
                    size_t errlen);
/* Collapses the revocations of the user with the most listed ones into an epoch (as
 * au_token_revoke does past its bound): the feed's last resort when its document would be
 * too large. user (cap bytes) and *epoch say whose and which. DYNO_ENOTFOUND: nothing listed. */
int au_revoked_collapse_biggest(struct au_store *s, int64_t now, char *user, size_t cap, int64_t *epoch,
                                char *err, size_t errlen);
/* The epoch ("before") of username at now, 0 when none. 0 or DYNO_E*. */
int au_user_epoch(struct au_store *s, const char *username, int64_t now, int64_t *before);
/* The revocation document (protocol.md §7, lib/token.h) at now:
 * {"revoked":[{jti, exp}], "epochs":[{sub, before}]}: every revoked unexpired token not covered
 * by its user's epoch, and every epoch that still covers an unexpired token. */
int au_revoked_list(struct au_store *s, int64_t now, cJSON **result, char *err, size_t errlen);

/* ---- S3 access keys (docs/s3.md "Access keys"; the secret is sealed, au_seal.h) ---- */
#define AU_KEY_ID_LEN 20           /* "DK" + 18 of [A-Z0-9] */
#define AU_KEY_SECRET_LEN 40       /* base64url of 30 random bytes */
#define AU_KEY_DESC_MAX 256        /* bytes of a description */
#define AU_KEYS_PER_USER 100       /* default: live keys per user */
#define AU_KEY_REVOKED_KEEP 604800 /* seconds a revoked key's row stays (repeated revokes) */
struct au_key {
    char id[AU_KEY_ID_LEN + 1];
    char username[DYNO_SEG_MAX + 1];
    char description[AU_KEY_DESC_MAX + 1];
    int64_t created_at;
    bool revoked;
};
/* Records a new key k with its sealed secret, unless k->username already has max (> 0) live
 * keys (DYNO_ETOOBIG). Drops revoked rows older than AU_KEY_REVOKED_KEEP. DYNO_EEXIST when the
 * id is taken (the caller draws another). */
int au_key_insert(struct au_store *s, const struct au_key *k, const uint8_t *sealed, size_t sealed_len,
                  int64_t max, char *err, size_t errlen);
/* {keys:[{access_key_id, user, description, created_at, last_used_at}]}: the live keys of
 * username (NULL: everyone's), newest first. Never a secret. */
int au_key_list(struct au_store *s, const char *username, cJSON **result, char *err, size_t errlen);
/* The key id into *k and, when it is live, its sealed secret into sealed (cap bytes,
 * *sealed_len). DYNO_ENOTFOUND (no such id), DYNO_ECORRUPT (a bad row), or a database error. */
int au_key_get(struct au_store *s, const char *id, struct au_key *k, uint8_t *sealed, size_t cap,
               size_t *sealed_len);
/* *n = the live keys of every user. */
int au_key_count(struct au_store *s, int64_t *n);
/* Notes that key id was used at now (written at most once a minute). */
int au_key_touch(struct au_store *s, const char *id, int64_t now);
/* Revokes key id on behalf of by (admin: any key): its sealed secret is erased. owner gets
 * the key's user; *changed says whether it was live. DYNO_ENOTFOUND, DYNO_EFORBIDDEN. */
int au_key_revoke(struct au_store *s, const char *id, const char *by, bool by_admin, int64_t now, char *owner,
                  size_t owner_cap, bool *changed, char *err, size_t errlen);

/* Creates org path ("lab", "lab/ct"); its parent must exist. DYNO_EEXIST, DYNO_EINVAL (no
 * parent). *result is {org, parent, created_at}. */
int au_org_create(struct au_store *s, const char *path, int64_t now, cJSON **result, char *err,
                  size_t errlen);
/* {orgs:[{org, parent, created_at}]} by path. */
int au_org_list(struct au_store *s, cJSON **result, char *err, size_t errlen);

/* Password hashing (OpenSSL PKCS5_PBKDF2_HMAC, SHA-256). */
/* Fills u->salt (random), u->iterations (AU_PW_ITER) and u->hash for password. */
int au_pw_set(struct au_user *u, const char *password, size_t len);
/* True when password matches u; constant time in the hash comparison. */
bool au_pw_check(const struct au_user *u, const char *password, size_t len);
#endif
