/* Auth RPC handlers (au_rpc.h). */
#include "au_rpc.h"

#include <dynostore/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "log.h"
#include "agent.h"
#include "names.h"

#define AU_BAD_LOGIN "wrong username or password"

int au_mint(struct au_ctx *ctx, const char *sub, const char *org, bool admin, const char *role,
            const char *kind, int64_t ttl, int64_t now, char **token, int64_t *exp)
{
    *token = NULL;
    struct dyno_claims c;
    memset(&c, 0, sizeof(c));
    snprintf(c.sub, sizeof(c.sub), "%s", sub);
    snprintf(c.org, sizeof(c.org), "%s", org ? org : "");
    snprintf(c.role, sizeof(c.role), "%s", role);
    c.admin = admin;
    c.iat = now;
    c.exp = now + ttl;
    int rc = dyno_token_sign(ctx->signer, &c, token);
    if (rc != 0)
        return rc;
    /* Recorded before the token leaves, so every token in use can be listed and revoked. */
    rc = au_token_record(ctx->store, c.jti, sub, kind, c.exp, now);
    if (rc != 0) {
        free(*token);
        *token = NULL;
        return rc;
    }
    if (exp)
        *exp = c.exp;
    return 0;
}

/* "" or seg[/seg...] of valid segments, at most AU_ORG_MAX bytes. */
static bool valid_org(const char *org)
{
    size_t len = strnlen(org, AU_ORG_MAX + 1);
    if (len == 0)
        return true;
    if (len > AU_ORG_MAX)
        return false;
    char seg[DYNO_SEG_MAX + 1];
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && org[i] != '/')
            continue;
        if (i == start || i - start > DYNO_SEG_MAX)
            return false;
        memcpy(seg, org + start, i - start);
        seg[i - start] = '\0';
        if (!dyno_valid_segment(seg))
            return false;
        start = i + 1;
    }
    return true;
}

/* Only an admin caller passes (as established by the gateway from a verified token). */
static int require_admin(const cJSON *req, char *err, size_t errlen)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(req, "caller");
    if (!cJSON_IsObject(c) || !dyno_valid_segment(dyno_json_str(c, "sub"))) {
        snprintf(err, errlen, "caller is required");
        return DYNO_EUNAUTH;
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "admin"))) {
        snprintf(err, errlen, "only an admin may manage users");
        return DYNO_EFORBIDDEN;
    }
    return 0;
}

static int h_login(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct au_ctx *ctx = arg;
    const char *username = dyno_json_str(req, "username");
    const char *password = dyno_json_str(req, "password");
    size_t pwlen = password ? strnlen(password, AU_PW_MAX + 1) : 0;
    if (!password || pwlen > AU_PW_MAX) {
        snprintf(err, errlen, AU_BAD_LOGIN);
        return DYNO_EUNAUTH;
    }
    struct au_user u;
    int rc = dyno_valid_segment(username) ? au_user_get(ctx->store, username, &u) : DYNO_ENOTFOUND;
    if (rc != 0 && rc != DYNO_ENOTFOUND) {
        snprintf(err, errlen, "auth database unavailable");
        return rc;
    }
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
        char q[200];
        dyno_info("login refused", "user=%s", dyno_agent_q(q, sizeof(q), dyno_valid_segment(username) ? username : "?"));
        snprintf(err, errlen, AU_BAD_LOGIN);
        return DYNO_EUNAUTH;
    }
    char *token = NULL;
    int64_t exp = 0;
    rc = au_mint(ctx, u.username, u.org, u.admin, "user", "session", ctx->session_ttl, (int64_t)time(NULL), &token,
                 &exp);
    if (rc != 0) {
        snprintf(err, errlen, "cannot issue a token");
        return rc;
    }
    cJSON *res = cJSON_CreateObject();
    if (!res) {
        free(token);
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    cJSON_AddStringToObject(res, "token", token);
    dyno_json_add_i64(res, "expires_at", exp);
    free(token);
    dyno_info("login", "user=%s", u.username);
    *result = res;
    return 0;
}

static int h_user_create(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct au_ctx *ctx = arg;
    int rc = require_admin(req, err, errlen);
    if (rc != 0)
        return rc;
    const char *username = dyno_json_str(req, "username");
    if (!dyno_valid_segment(username)) {
        snprintf(err, errlen, "username must match [A-Za-z0-9._-]{1,64}");
        return DYNO_EINVAL;
    }
    if (strcmp(username, "service") == 0) {
        snprintf(err, errlen, "username service is reserved");
        return DYNO_EINVAL;
    }
    const char *password = dyno_json_str(req, "password");
    size_t pwlen = password ? strnlen(password, AU_PW_MAX + 1) : 0;
    if (pwlen < AU_PW_MIN || pwlen > AU_PW_MAX) {
        snprintf(err, errlen, "password must be %d..%d bytes", AU_PW_MIN, AU_PW_MAX);
        return DYNO_EINVAL;
    }
    const cJSON *org = cJSON_GetObjectItemCaseSensitive(req, "org");
    if (org && !cJSON_IsNull(org) && (!cJSON_IsString(org) || !valid_org(org->valuestring))) {
        snprintf(err, errlen, "org must be an org path of [A-Za-z0-9._-]{1,64} segments");
        return DYNO_EINVAL;
    }
    const cJSON *adm = cJSON_GetObjectItemCaseSensitive(req, "admin");
    if (adm && !cJSON_IsNull(adm) && !cJSON_IsBool(adm)) {
        snprintf(err, errlen, "admin must be true or false");
        return DYNO_EINVAL;
    }
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
    if (!res) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    cJSON_AddStringToObject(res, "username", u.username);
    cJSON_AddStringToObject(res, "org", u.org);
    cJSON_AddBoolToObject(res, "admin", u.admin);
    dyno_info("user created", "user=%s admin=%s", u.username, u.admin ? "true" : "false");
    *result = res;
    return 0;
}

static int h_user_list(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen)
{
    struct au_ctx *ctx = arg;
    int rc = require_admin(req, err, errlen);
    if (rc != 0)
        return rc;
    return au_user_list(ctx->store, result, err, errlen);
}

const struct dyno_rpc_method au_rpc_methods[] = {
    {"auth.login", h_login},
    {"user.create", h_user_create},
    {"user.list", h_user_list},
};
const size_t au_rpc_nmethods = sizeof(au_rpc_methods) / sizeof(au_rpc_methods[0]);
