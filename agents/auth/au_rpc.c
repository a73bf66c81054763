/* Auth RPC handlers (au_rpc.h). */
#include "au_rpc.h"

#include <dynostore/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "agent.h"
#include "au_feed.h"
#include "au_keys.h"
#include "json.h"
#include "log.h"
#include "names.h"
#include "rest.h"

#define AU_BAD_LOGIN "wrong username or password"

/* dyno_agent_valid_org accepts what a user row and a token's org hold. */
_Static_assert(AU_ORG_MAX == DYNO_ACL_ORG_MAX, "an org path has one size limit");

int au_mint(struct au_ctx *ctx, const char *sub, const char *org, bool admin, const char *role,
            const char *kind, const char *name, int64_t ttl, int64_t now, char **token, char *jti,
            int64_t *exp, char *err, size_t errlen)
{
    *token = NULL;
    struct dyno_claims c;
    memset(&c, 0, sizeof(c));
    snprintf(c.sub, sizeof(c.sub), "%s", sub);
    snprintf(c.org, sizeof(c.org), "%s", org ? org : "");
    snprintf(c.role, sizeof(c.role), "%s", role);
    c.admin = admin;
    int64_t max = strcmp(kind, "api") == 0 ? ctx->api_tokens_max : ctx->sessions_max;
    int64_t before = 0;
    pthread_mutex_lock(&ctx->feed_mu);
    int rc = au_user_epoch(ctx->store, sub, now, &before);
    if (rc != 0) {
        if (err)
            snprintf(err, errlen, "auth database unavailable");
        goto out;
    }
    /* A token minted in the second of a mass revocation must not fall under it. */
    c.iat = before > now ? before : now;
    c.exp = now + ttl;
    rc = dyno_token_sign(ctx->signer, &c, token);
    if (rc != 0) {
        if (err)
            snprintf(err, errlen, "cannot sign a token");
        goto out;
    }
    /* Recorded before the token leaves, so every token in use can be listed and revoked. */
    rc = au_token_record(ctx->store, c.jti, sub, kind, name, c.exp, c.iat, max, err, errlen);
    if (rc != 0) {
        au_mint_free(*token);
        *token = NULL;
    }
out:
    pthread_mutex_unlock(&ctx->feed_mu);
    if (rc != 0)
        return rc;
    if (jti)
        memcpy(jti, c.jti, sizeof(c.jti));
    if (exp)
        *exp = c.exp;
    return 0;
}

void au_mint_free(char *token)
{
    if (!token)
        return;
    memset(token, 0, strlen(token));
    free(token);
}

int au_rpc_bad(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return DYNO_EINVAL;
}

int au_rpc_nomem(char *err, size_t errlen)
{
    snprintf(err, errlen, "out of memory");
    return DYNO_ENOMEM;
}

/* Only an admin caller passes. */
static int require_admin(const cJSON *req, const char *what, char *err, size_t errlen)
{
    struct dyno_agent_caller c;
    int rc = dyno_agent_caller(req, &c, err, errlen);
    if (rc != 0)
        return rc;
    if (!c.admin) {
        snprintf(err, errlen, "only an admin may %s", what);
        return DYNO_EFORBIDDEN;
    }
    return 0;
}

int au_take_budget(struct au_ctx *ctx, const char *user, char *err, size_t errlen)
{
    struct timespec ts;
    int64_t after = 0;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int rc = au_limit_take(ctx->limit, user, (double)ts.tv_sec + ts.tv_nsec / 1e9, &after);
    if (rc == DYNO_ELIMIT)
        snprintf(err, errlen, "too many token operations by %s; retry after %lld s", user, (long long)after);
    else if (rc != 0)
        snprintf(err, errlen, "bad user name");
    return rc;
}

/* The row of user name: 0, DYNO_ENOTFOUND (err untouched), or the store's error with err
 * saying the database is unavailable. */
static int lookup_user(struct au_ctx *ctx, const char *name, struct au_user *u, char *err, size_t errlen)
{
    int rc = au_user_get(ctx->store, name, u);
    if (rc != 0 && rc != DYNO_ENOTFOUND)
        snprintf(err, errlen, "auth database unavailable");
    return rc;
}

/*
 * Mints a token of kind for u, valid ttl seconds (au_mint), and answers {token, expires_at};
 * an API token (jti non-NULL: DYNO_KEY_LEN + 1 bytes, filled) answers {token, jti,
 * expires_at, name}. The token is wiped once it is in the answer. 0 or DYNO_E* (err filled).
 */
static int issue(struct au_ctx *ctx, const struct au_user *u, const char *kind, const char *name, int64_t ttl,
                 char *jti, int64_t *exp, cJSON **result, char *err, size_t errlen)
{
    char *token = NULL;
    int rc = au_mint(ctx, u->username, u->org, u->admin, "user", kind, name, ttl, (int64_t)time(NULL), &token,
                     jti, exp, err, errlen);
    if (rc != 0)
        return rc;
    cJSON *res = cJSON_CreateObject();
    bool ok = res && cJSON_AddStringToObject(res, "token", token) &&
              (!jti || cJSON_AddStringToObject(res, "jti", jti)) &&
              dyno_json_add_i64(res, "expires_at", *exp) &&
              (!jti || cJSON_AddStringToObject(res, "name", name ? name : ""));
    au_mint_free(token);
    if (!ok) {
        cJSON_Delete(res);
        return au_rpc_nomem(err, errlen);
    }
    *result = res;
    return 0;
}

/* A password member: a string of min..AU_PW_MAX bytes. */
static int p_password(const cJSON *req, size_t min, const char **pw, size_t *len, char *err, size_t errlen)
{
    *pw = dyno_json_str(req, "password");
    *len = *pw ? strnlen(*pw, AU_PW_MAX + 1) : 0;
    if (!*pw || *len < min || *len > AU_PW_MAX) {
        snprintf(err, errlen, "password must be a string of %zu..%d bytes", min, AU_PW_MAX);
        return DYNO_EINVAL;
    }
    return 0;
}

static int h_login(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct au_ctx *ctx = arg;
    const char *username = dyno_json_str(req, "username");
    const char *password;
    size_t pwlen;
    int rc;
    /* Malformed input is refused before any work; it says nothing about which users exist. */
    if (!dyno_valid_segment(username))
        return au_rpc_bad(err, errlen, "username must match [A-Za-z0-9._-]{1,64}");
    if ((rc = p_password(req, 0, &password, &pwlen, err, errlen)) != 0)
        return rc;
    struct au_user u;
    rc = lookup_user(ctx, username, &u, err, errlen);
    if (rc != 0 && rc != DYNO_ENOTFOUND)
        return rc;
    bool ok;
    if (rc == DYNO_ENOTFOUND) {
        /* Same work for an unknown user, so timing does not tell which names exist. */
        memset(&u, 0, sizeof(u));
        u.iterations = AU_PW_ITER;
        au_pw_check(&u, password, pwlen);
        ok = false;
    } else {
        ok = au_pw_check(&u, password, pwlen);
    }
    if (!ok) {
        dyno_info("login refused", "user=%s", username);
        snprintf(err, errlen, AU_BAD_LOGIN);
        return DYNO_EUNAUTH;
    }
    /* Only now: a wrong password must not spend the real user's budget. */
    if ((rc = au_take_budget(ctx, u.username, err, errlen)) != 0)
        return rc;
    int64_t exp = 0;
    rc = issue(ctx, &u, "session", NULL, ctx->session_ttl, NULL, &exp, result, err, errlen);
    if (rc == 0)
        dyno_info("login", "user=%s", u.username);
    return rc;
}

/* ---- users and orgs ------------------------------------------------------------------ */

static int h_user_create(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct au_ctx *ctx = arg;
    int rc = require_admin(req, "manage users", err, errlen);
    if (rc != 0)
        return rc;
    const char *username = dyno_json_str(req, "username");
    if (!dyno_valid_segment(username))
        return au_rpc_bad(err, errlen, "username must match [A-Za-z0-9._-]{1,64}");
    if (dyno_token_sub_reserved(username))
        return au_rpc_bad(err, errlen,
                          "username is reserved: service, and names that start with container-, gateway-, "
                          "metadata-, pubsub- or auth- (the services' broker names and reply topics)");
    if (dyno_rest_reserved(username))
        return au_rpc_bad(err, errlen,
                          "username is reserved: objects, shares and subscription name a catalog's "
                          "sub-resources in REST paths, so such a user could own no catalog");
    const char *password;
    size_t pwlen;
    if ((rc = p_password(req, AU_PW_MIN, &password, &pwlen, err, errlen)) != 0)
        return rc;
    const cJSON *org = cJSON_GetObjectItemCaseSensitive(req, "org");
    if (org && !cJSON_IsNull(org) && (!cJSON_IsString(org) || !dyno_agent_valid_org(org->valuestring, true)))
        return au_rpc_bad(err, errlen, "org must be \"\" or an org path of [A-Za-z0-9._-]{1,64} segments");
    const cJSON *adm = cJSON_GetObjectItemCaseSensitive(req, "admin");
    if (adm && !cJSON_IsNull(adm) && !cJSON_IsBool(adm))
        return au_rpc_bad(err, errlen, "admin must be true or false");
    struct au_user u;
    memset(&u, 0, sizeof(u));
    snprintf(u.username, sizeof(u.username), "%s", username);
    snprintf(u.org, sizeof(u.org), "%s", cJSON_IsString(org) ? org->valuestring : "");
    u.admin = cJSON_IsTrue(adm);
    u.created_at = (int64_t)time(NULL);
    if ((rc = au_pw_set(&u, password, pwlen)) != 0) {
        snprintf(err, errlen, "cannot hash the password");
        return rc;
    }
    if ((rc = au_user_create(ctx->store, &u, err, errlen)) != 0)
        return rc;
    cJSON *res = cJSON_CreateObject();
    if (!res || !cJSON_AddStringToObject(res, "username", u.username) ||
        !cJSON_AddStringToObject(res, "org", u.org) || !cJSON_AddBoolToObject(res, "admin", u.admin)) {
        cJSON_Delete(res);
        return au_rpc_nomem(err, errlen);
    }
    dyno_info("user created", "user=%s admin=%s", u.username, u.admin ? "true" : "false");
    *result = res;
    return 0;
}

/* An admin-only list (user.list, org.list); what names the task in the refusal ("manage users"). */
static int admin_list(void *arg, const cJSON *req, const char *what,
                      int (*list)(struct au_store *s, cJSON **result, char *err, size_t errlen),
                      cJSON **result, char *err, size_t errlen)
{
    struct au_ctx *ctx = arg;
    int rc = require_admin(req, what, err, errlen);
    if (rc != 0)
        return rc;
    return list(ctx->store, result, err, errlen);
}

static int h_user_list(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    return admin_list(arg, req, "manage users", au_user_list, result, err, errlen);
}

static int h_org_create(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct au_ctx *ctx = arg;
    int rc = require_admin(req, "manage organizations", err, errlen);
    if (rc != 0)
        return rc;
    const char *org = dyno_json_str(req, "org");
    if (!org || !dyno_agent_valid_org(org, false))
        return au_rpc_bad(err, errlen, "org must be an org path of 1..8 [A-Za-z0-9._-]{1,64} segments");
    rc = au_org_create(ctx->store, org, (int64_t)time(NULL), result, err, errlen);
    if (rc == 0)
        dyno_info("org created", "org=%s", org);
    return rc;
}

static int h_org_list(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    return admin_list(arg, req, "manage organizations", au_org_list, result, err, errlen);
}

/* ---- API tokens ---------------------------------------------------------------------- */

static int h_token_create(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct au_ctx *ctx = arg;
    struct dyno_agent_caller c;
    int64_t ttl = ctx->api_token_ttl;
    int rc = dyno_agent_caller(req, &c, err, errlen);
    if (rc != 0)
        return rc;
    const cJSON *tj = cJSON_GetObjectItemCaseSensitive(req, "ttl");
    if (tj && !cJSON_IsNull(tj) &&
        (dyno_json_i64(req, "ttl", &ttl) != 0 || ttl < 1 || ttl > ctx->api_token_ttl)) {
        snprintf(err, errlen, "ttl must be an integer in 1..%lld seconds", (long long)ctx->api_token_ttl);
        return DYNO_EINVAL;
    }
    const cJSON *nj = cJSON_GetObjectItemCaseSensitive(req, "name");
    const char *name = cJSON_IsString(nj) ? nj->valuestring : NULL;
    if (nj && !cJSON_IsNull(nj) && !dyno_valid_plain_name(name))
        return au_rpc_bad(err, errlen,
                          "name must be 1..255 bytes of UTF-8 without control characters or slashes");
    /* The token carries what the user is now, not what the caller's token said. */
    struct au_user u;
    rc = lookup_user(ctx, c.sub, &u, err, errlen);
    if (rc == DYNO_ENOTFOUND) {
        snprintf(err, errlen, "no user %s", c.sub);
        return DYNO_EFORBIDDEN;
    }
    if (rc != 0)
        return rc;
    if ((rc = au_take_budget(ctx, u.username, err, errlen)) != 0)
        return rc;
    char jti[DYNO_KEY_LEN + 1];
    int64_t exp = 0;
    rc = issue(ctx, &u, "api", name, ttl, jti, &exp, result, err, errlen);
    if (rc == 0)
        dyno_info("api token issued", "user=%s jti=%s expires_at=%lld", u.username, jti, (long long)exp);
    return rc;
}

static int h_token_list(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct au_ctx *ctx = arg;
    struct dyno_agent_caller c;
    int rc = dyno_agent_caller(req, &c, err, errlen);
    if (rc != 0)
        return rc;
    const cJSON *uj = cJSON_GetObjectItemCaseSensitive(req, "user");
    const char *user = c.sub;
    if (uj && !cJSON_IsNull(uj)) {
        user = cJSON_IsString(uj) ? uj->valuestring : NULL;
        if (!dyno_valid_segment(user))
            return au_rpc_bad(err, errlen, "user must match [A-Za-z0-9._-]{1,64}");
        if (strcmp(user, c.sub) != 0 && !c.admin) {
            snprintf(err, errlen, "only an admin may list the tokens of another user");
            return DYNO_EFORBIDDEN;
        }
    }
    return au_token_list(ctx->store, user, (int64_t)time(NULL), result, err, errlen);
}

static int h_token_revoke(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct au_ctx *ctx = arg;
    struct dyno_agent_caller c;
    int rc = dyno_agent_caller(req, &c, err, errlen);
    if (rc != 0)
        return rc;
    const char *jti = dyno_json_str(req, "jti");
    if (!dyno_valid_key(jti))
        return au_rpc_bad(err, errlen, "jti must be 32 lowercase hex characters");
    if ((rc = au_take_budget(ctx, c.sub, err, errlen)) != 0)
        return rc;
    bool changed = false;
    int64_t exp = 0, epoch = 0, now = (int64_t)time(NULL);
    int prc = 0;
    pthread_mutex_lock(&ctx->feed_mu);
    rc = au_token_revoke(ctx->store, jti, c.sub, c.admin, now, ctx->revoked_per_user, &changed, &exp, &epoch,
                         err, errlen);
    /* Published even when nothing changed: retrying a revoke whose publication failed must
     * propagate it, not answer success from the database alone. */
    if (rc == 0)
        prc = au_feed_publish(ctx, now);
    pthread_mutex_unlock(&ctx->feed_mu);
    if (rc != 0)
        return rc;
    if (changed)
        dyno_info("token revoked", "jti=%s by=%s epoch=%lld", jti, c.sub, (long long)epoch);
    if (prc != 0) {
        /* Recorded, but the verifiers do not know yet: never report that as done. It goes out
         * with the next publication (every reconnect republishes); retry to make sure. */
        snprintf(err, errlen,
                 "token %s is revoked in the auth database but the revocation could not be published (%s); "
                 "verifiers may still accept it: retry",
                 jti, dyno_err_code(prc));
        return DYNO_EUNAVAIL;
    }
    cJSON *res = cJSON_CreateObject();
    if (!res || !cJSON_AddStringToObject(res, "jti", jti) || !cJSON_AddBoolToObject(res, "revoked", true) ||
        !dyno_json_add_i64(res, "expires_at", exp) ||
        (epoch > 0 && !dyno_json_add_i64(res, "revoked_all_before", epoch))) {
        cJSON_Delete(res);
        return au_rpc_nomem(err, errlen);
    }
    *result = res;
    return 0;
}

const struct dyno_rpc_method au_rpc_methods[] = {
    {"auth.login", h_login},      {"user.create", h_user_create},   {"user.list", h_user_list},
    {"org.create", h_org_create}, {"org.list", h_org_list},         {"token.create", h_token_create},
    {"token.list", h_token_list}, {"token.revoke", h_token_revoke}, {"key.create", au_keys_create},
    {"key.list", au_keys_list},   {"key.revoke", au_keys_revoke},   {"key.lookup", au_keys_lookup},
};
const size_t au_rpc_nmethods = sizeof(au_rpc_methods) / sizeof(au_rpc_methods[0]);
