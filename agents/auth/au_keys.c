/* S3 access key RPC handlers (au_keys.h). */
#include "au_keys.h"

#include <dynostore/error.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "agent.h"
#include "au_rpc.h"
#include "au_seal.h"
#include "json.h"
#include "log.h"
#include "names.h"
#include "token.h"

#define KEYS_ID_PREFIX "DK"
#define KEYS_SECRET_RAW 30 /* base64url: AU_KEY_SECRET_LEN characters */
#define KEYS_ID_TRIES 4    /* draws of a fresh id when one collides (36^18: never in practice) */

_Static_assert(4 * KEYS_SECRET_RAW / 3 == AU_KEY_SECRET_LEN, "the secret is 40 characters");
_Static_assert(AU_KEY_ID_LEN == DYNO_ACCESS_KEY_ID_LEN, "one id length");

/* A fresh id: the prefix and 18 uniform draws from [A-Z0-9] (rejection sampling). */
static int keys__new_id(char id[AU_KEY_ID_LEN + 1])
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    uint8_t raw[64];
    size_t w = 2, r = sizeof(raw);
    memcpy(id, KEYS_ID_PREFIX, 2);
    while (w < AU_KEY_ID_LEN) {
        if (r == sizeof(raw)) {
            if (RAND_bytes(raw, sizeof(raw)) != 1)
                return DYNO_EINTERNAL;
            r = 0;
        }
        uint8_t b = raw[r++];
        if (b < 252) /* 252 = 7 * 36: no bias */
            id[w++] = alnum[b % 36];
    }
    id[AU_KEY_ID_LEN] = '\0';
    return 0;
}

/* A description: at most AU_KEY_DESC_MAX bytes without control characters. */
static bool keys__valid_desc(const char *d)
{
    size_t n = strnlen(d, AU_KEY_DESC_MAX + 1);
    if (n > AU_KEY_DESC_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

static int keys__no_master(const struct au_ctx *ctx, char *err, size_t errlen)
{
    if (ctx->s3_master_ok)
        return 0;
    snprintf(err, errlen, "S3 access keys are not available: dyno-auth has no s3_master_key_file");
    return DYNO_EUNAVAIL;
}

int au_keys_create(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct au_ctx *ctx = arg;
    struct dyno_agent_caller c;
    int rc = dyno_agent_caller(req, &c, err, errlen);
    if (rc != 0)
        return rc;
    const cJSON *dj = cJSON_GetObjectItemCaseSensitive(req, "description");
    const char *desc = cJSON_IsString(dj) ? dj->valuestring : "";
    if (dj && !cJSON_IsNull(dj) && (!cJSON_IsString(dj) || !keys__valid_desc(desc)))
        return au_rpc_bad(err, errlen,
                          "description must be a string of at most 256 bytes without control characters");
    if ((rc = keys__no_master(ctx, err, errlen)) != 0)
        return rc;
    /* Only a user owns keys: the key acts as the user's record says, now and at each lookup. */
    struct au_user u;
    rc = au_user_get(ctx->store, c.sub, &u);
    if (rc == DYNO_ENOTFOUND) {
        snprintf(err, errlen, "no user %s", c.sub);
        return DYNO_EFORBIDDEN;
    }
    if (rc != 0) {
        snprintf(err, errlen, "auth database unavailable");
        return rc;
    }
    if ((rc = au_take_budget(ctx, u.username, err, errlen)) != 0)
        return rc;

    struct au_key k;
    memset(&k, 0, sizeof(k));
    snprintf(k.username, sizeof(k.username), "%s", u.username);
    snprintf(k.description, sizeof(k.description), "%s", desc);
    k.created_at = (int64_t)time(NULL);
    uint8_t raw[KEYS_SECRET_RAW], sealed[AU_KEY_SECRET_LEN + AU_SEAL_OVERHEAD];
    char secret[AU_KEY_SECRET_LEN + 1];
    size_t sealed_len = 0;
    rc = RAND_bytes(raw, sizeof(raw)) == 1 ? 0 : DYNO_EINTERNAL;
    if (rc == 0 && dyno_b64url_encode(raw, sizeof(raw), secret) != AU_KEY_SECRET_LEN)
        rc = DYNO_EINTERNAL;
    rc = rc != 0 ? rc : DYNO_EEXIST;
    for (int i = 0; i < KEYS_ID_TRIES && rc == DYNO_EEXIST; i++) {
        rc = keys__new_id(k.id);
        /* The id is the AAD: a sealed secret copied into another key's row does not open. */
        if (rc == 0)
            rc = au_seal(ctx->s3_master, k.id, (const uint8_t *)secret, AU_KEY_SECRET_LEN, sealed,
                         sizeof(sealed), &sealed_len);
        if (rc == 0)
            rc = au_key_insert(ctx->store, &k, sealed, sealed_len, ctx->keys_max, err, errlen);
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    if (rc == DYNO_EINTERNAL)
        snprintf(err, errlen, "cannot make a secret");
    cJSON *res = NULL;
    if (rc == 0) {
        res = cJSON_CreateObject();
        if (!res || !cJSON_AddStringToObject(res, "access_key_id", k.id) ||
            !cJSON_AddStringToObject(res, "secret_access_key", secret) ||
            !dyno_json_add_i64(res, "created", k.created_at) ||
            !cJSON_AddStringToObject(res, "description", k.description) ||
            !cJSON_AddStringToObject(res, "user", k.username)) {
            cJSON_Delete(res);
            res = NULL;
            rc = au_rpc_nomem(err, errlen);
        }
    }
    OPENSSL_cleanse(secret, sizeof(secret));
    if (rc != 0)
        return rc;
    dyno_info("access key created", "user=%s id=%s", k.username, k.id);
    *result = res;
    return 0;
}

int au_keys_list(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct au_ctx *ctx = arg;
    struct dyno_agent_caller c;
    int rc = dyno_agent_caller(req, &c, err, errlen);
    if (rc != 0)
        return rc;
    const cJSON *uj = cJSON_GetObjectItemCaseSensitive(req, "user");
    const cJSON *aj = cJSON_GetObjectItemCaseSensitive(req, "all");
    const char *user = c.sub;
    if (aj && !cJSON_IsNull(aj) && !cJSON_IsBool(aj))
        return au_rpc_bad(err, errlen, "all must be true or false");
    if (uj && !cJSON_IsNull(uj)) {
        user = cJSON_IsString(uj) ? uj->valuestring : NULL;
        if (!dyno_valid_segment(user))
            return au_rpc_bad(err, errlen, "user must match [A-Za-z0-9._-]{1,64}");
    }
    bool all = cJSON_IsTrue(aj);
    if (all && uj && !cJSON_IsNull(uj))
        return au_rpc_bad(err, errlen, "give user or all, not both");
    if ((all || strcmp(user, c.sub) != 0) && !c.admin) {
        snprintf(err, errlen, "only an admin may list the access keys of another user");
        return DYNO_EFORBIDDEN;
    }
    return au_key_list(ctx->store, all ? NULL : user, result, err, errlen);
}

/* Tells the gateways to drop id from their caches now (au_keys.h). */
static int keys__publish_revoked(struct au_ctx *ctx, const char *id)
{
    char doc[64 + AU_KEY_ID_LEN];
    int n = snprintf(doc, sizeof(doc), "{\"revoked\":[\"%s\"]}", id);
    if (!ctx->mq)
        return DYNO_EUNAVAIL;
    return dyno_mq_publish(ctx->mq, DYNO_ACL_TOPIC_KEYS_REVOKED, doc, (size_t)n, 1, false, NULL);
}

int au_keys_revoke(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct au_ctx *ctx = arg;
    struct dyno_agent_caller c;
    int rc = dyno_agent_caller(req, &c, err, errlen);
    if (rc != 0)
        return rc;
    const char *id = dyno_json_str(req, "access_key_id");
    if (!dyno_valid_access_key_id(id))
        return au_rpc_bad(err, errlen, "access_key_id must be DK and 18 of A-Z 0-9");
    if ((rc = au_take_budget(ctx, c.sub, err, errlen)) != 0)
        return rc;
    char owner[DYNO_SEG_MAX + 1] = "";
    bool changed = false;
    rc = au_key_revoke(ctx->store, id, c.sub, c.admin, (int64_t)time(NULL), owner, sizeof(owner), &changed,
                       err, errlen);
    if (rc != 0)
        return rc;
    /* Published on every call, changed or not, so a retry repeats a publication that failed. */
    int prc = keys__publish_revoked(ctx, id);
    if (changed)
        dyno_info("access key revoked", "id=%s user=%s by=%s", id, owner, c.sub);
    if (prc != 0)
        /* Still bounded: the gateways keep a key at most 5 s (gw_s3key_lookup). */
        dyno_warn("access key revocation not published: gateways drop it within their cache ttl",
                  "id=%s error=%s", id, dyno_err_code(prc));
    cJSON *res = cJSON_CreateObject();
    if (!res || !cJSON_AddStringToObject(res, "access_key_id", id) ||
        !cJSON_AddBoolToObject(res, "revoked", true) || !cJSON_AddStringToObject(res, "user", owner)) {
        cJSON_Delete(res);
        return au_rpc_nomem(err, errlen);
    }
    *result = res;
    return 0;
}

int au_keys_lookup(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct au_ctx *ctx = arg;
    const char *id = dyno_json_str(req, "access_key_id");
    if (!dyno_valid_access_key_id(id))
        return au_rpc_bad(err, errlen, "access_key_id must be DK and 18 of A-Z 0-9");
    int rc = keys__no_master(ctx, err, errlen);
    if (rc != 0)
        return rc;
    struct au_key k;
    uint8_t sealed[AU_KEY_SECRET_LEN + AU_SEAL_OVERHEAD];
    size_t sealed_len = 0;
    rc = au_key_get(ctx->store, id, &k, sealed, sizeof(sealed), &sealed_len);
    if (rc == 0 && k.revoked)
        rc = DYNO_ENOTFOUND;
    if (rc == DYNO_ENOTFOUND) {
        snprintf(err, errlen, "no live access key %s", id);
        return rc;
    }
    if (rc != 0) {
        snprintf(err, errlen, "auth database unavailable");
        return rc;
    }
    struct au_user u;
    rc = au_user_get(ctx->store, k.username, &u);
    if (rc != 0) {
        /* A key outlives nothing: without its user it grants nothing. */
        snprintf(err, errlen, rc == DYNO_ENOTFOUND ? "no live access key %s" : "auth database unavailable",
                 id);
        return rc;
    }
    char secret[AU_KEY_SECRET_LEN + 1];
    size_t n = 0;
    rc = au_seal_open(ctx->s3_master, id, sealed, sealed_len, (uint8_t *)secret, AU_KEY_SECRET_LEN, &n);
    if (rc != 0 || n != AU_KEY_SECRET_LEN) {
        /* Another master key than the one it was sealed with, or a changed row. */
        dyno_error("access key secret does not open: wrong s3_master_key_file or a tampered row", "id=%s",
                   id);
        snprintf(err, errlen, "access key %s cannot be used (its secret does not decrypt)", id);
        return DYNO_EINTERNAL;
    }
    secret[AU_KEY_SECRET_LEN] = '\0';
    cJSON *res = cJSON_CreateObject();
    bool ok = res && cJSON_AddStringToObject(res, "access_key_id", id) &&
              cJSON_AddStringToObject(res, "user", u.username) &&
              cJSON_AddStringToObject(res, "org", u.org) && cJSON_AddBoolToObject(res, "admin", u.admin) &&
              cJSON_AddStringToObject(res, "secret_access_key", secret);
    OPENSSL_cleanse(secret, sizeof(secret));
    if (!ok) {
        cJSON_Delete(res);
        return au_rpc_nomem(err, errlen);
    }
    if (au_key_touch(ctx->store, id, (int64_t)time(NULL)) != 0)
        dyno_warn("last use of an access key not recorded", "id=%s", id);
    *result = res;
    return 0;
}
