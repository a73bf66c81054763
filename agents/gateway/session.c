/*
 * Browser sessions and device login (issue 12, docs/security.md "Web console").
 *
 * A browser never holds its token where a script can read it: POST /v1/auth/session logs in
 * like /v1/auth/login and puts the token in an HttpOnly, SameSite=Strict cookie
 * (GW_SESSION_COOKIE) instead of the body. Every route accepts that cookie where it accepts
 * a bearer token (gw_request_token); a request authenticated by the cookie that changes
 * state must also carry the header X-Dyno-CSRF equal to the GW_CSRF_COOKIE cookie, which
 * only a page of this origin can read (double submit: a cross-site form can send the
 * cookie, never the header). DELETE /v1/auth/session revokes the token and clears both.
 *
 * Device login (the CLI on a machine without a browser): POST /v1/auth/device hands out a
 * secret device_code (for the CLI) and a short user_code (for the human); a user logged in
 * to the console approves the user_code (POST /v1/auth/device/approve), which issues an API
 * token of that user (dyno-auth token.create); the CLI polls POST /v1/auth/device/token with
 * its device_code and gets the token once. Codes live device_code_ttl_s (10 minutes) in this gateway's
 * memory only: a restarted gateway forgets them, and the CLI starts again.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "gw.h"
#include "httpd.h"
#include "json.h"
#include "log.h"
#include "names.h"

#define GW_DEVICE_MAX 64   /* pending device logins held at once */
#define GW_DEVICE_POLL_S 2 /* what the CLI is told to wait between polls */
#define GW_USER_CODE_LEN 9 /* "BCDF-GHJK" */
#define GW_CSRF_HEADER "X-Dyno-CSRF"
/* No vowels: a code never spells a word; 20^8 codes, and approving needs a login. */
static const char gw_code_alphabet[] = "BCDFGHJKLMNPQRSTVWXZ";

struct gw_device {
    bool used;
    bool approved;
    int64_t expires_ms;
    char device_code[DYNO_KEY_LEN + 1];
    char user_code[GW_USER_CODE_LEN + 1];
    char user[DYNO_SEG_MAX + 1]; /* who approved */
    char *token;                 /* issued at approval, handed out once, then wiped */
    int64_t token_exp;
};

static pthread_mutex_t gw_device_mu = PTHREAD_MUTEX_INITIALIZER;
static struct gw_device gw_devices[GW_DEVICE_MAX];

static void gw_device_clear(struct gw_device *d)
{
    if (d->token) {
        gw_wipe(d->token, strlen(d->token));
        free(d->token);
    }
    gw_wipe(d, sizeof(*d));
}

/* Frees the slots whose codes expired. Under gw_device_mu. */
static void gw_device_expire(int64_t now)
{
    for (int i = 0; i < GW_DEVICE_MAX; i++)
        if (gw_devices[i].used && gw_devices[i].expires_ms <= now)
            gw_device_clear(&gw_devices[i]);
}

const char *gw_request_token(struct gw_req *r, bool *from_cookie)
{
    if (from_cookie)
        *from_cookie = false;
    const char *tok = dyno_http_bearer(r->c);
    if (tok)
        return tok;
    tok = MHD_lookup_connection_value(r->c, MHD_COOKIE_KIND, GW_SESSION_COOKIE);
    if (!tok || !*tok)
        return NULL;
    if (from_cookie)
        *from_cookie = true;
    return tok;
}

bool gw_csrf_ok(struct gw_req *r)
{
    const char *want = MHD_lookup_connection_value(r->c, MHD_COOKIE_KIND, GW_CSRF_COOKIE);
    const char *got = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, GW_CSRF_HEADER);
    if (!want || !got || strlen(want) != DYNO_KEY_LEN || strlen(got) != DYNO_KEY_LEN)
        return false;
    return CRYPTO_memcmp(want, got, DYNO_KEY_LEN) == 0;
}

/* Set-Cookie for name=value living max_age seconds (0: deleted). Secure over TLS, where a
 * browser would otherwise also send it over plain HTTP to the same host. */
static void gw_set_cookie(struct gw_req *r, struct MHD_Response *resp, const char *name, const char *value,
                          int64_t max_age, bool http_only)
{
    char c[DYNO_TOKEN_MAX + 200];
    snprintf(c, sizeof(c), "%s=%s; Path=/; Max-Age=%lld; SameSite=Strict%s%s", name, value,
             (long long)(max_age > 0 ? max_age : 0), http_only ? "; HttpOnly" : "",
             r->gw->cfg.tls_cert ? "; Secure" : "");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, c);
}

static enum MHD_Result gw_reply_json_cookies(struct gw_req *r, unsigned status, const cJSON *body,
                                             const char *token, const char *csrf, int64_t max_age)
{
    char *txt = cJSON_PrintUnformatted(body);
    if (!txt)
        return gw_reply_error(r, DYNO_ENOMEM, "out of memory");
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(txt), txt, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(txt);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    gw_set_cookie(r, resp, GW_SESSION_COOKIE, token, max_age, true);
    gw_set_cookie(r, resp, GW_CSRF_COOKIE, csrf, max_age, false);
    return gw_reply_response(r, status, resp);
}

/* POST /v1/auth/session {username, password}: the login of auth.c, the token in a cookie.
 * The reply has who logged in, the expiry and the CSRF value, never the token. */
static enum MHD_Result gw_session_login(struct gw_req *r)
{
    char msg[400];
    cJSON *res = NULL;
    int retry_s = 0;
    int rc = gw_login_call(r, &res, &retry_s, msg, sizeof(msg));
    if (rc == DYNO_ELIMIT && retry_s > 0)
        return gw_reply_limited(r, retry_s, "%s", msg);
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    const char *tok = dyno_json_str(res, "token");
    struct dyno_claims cl;
    char csrf[DYNO_KEY_LEN + 1];
    if (!tok || strlen(tok) > DYNO_TOKEN_MAX ||
        dyno_token_verify(r->gw->verifier, tok, (int64_t)time(NULL), &cl) != 0 || dyno_key_new(csrf) != 0) {
        cJSON_Delete(res);
        return gw_reply_error(r, DYNO_EPROTO, "the auth service answered a token this gateway cannot verify");
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "user", cl.sub);
    cJSON_AddStringToObject(o, "org", cl.org);
    cJSON_AddBoolToObject(o, "admin", cl.admin);
    dyno_json_add_i64(o, "expires_at", cl.exp);
    cJSON_AddStringToObject(o, "csrf", csrf);
    enum MHD_Result ret = gw_reply_json_cookies(r, 200, o, tok, csrf, cl.exp - (int64_t)time(NULL));
    cJSON_Delete(o);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(res, "token");
    if (cJSON_IsString(t))
        gw_wipe(t->valuestring, strlen(t->valuestring));
    cJSON_Delete(res);
    return ret;
}

/* DELETE /v1/auth/session: revokes the session's token when the request proves it comes
 * from the console (CSRF), and clears the cookies whatever happened (an expired session
 * must still be able to leave). */
static enum MHD_Result gw_session_logout(struct gw_req *r)
{
    char msg[400];
    bool cookie = false;
    const char *tok = gw_request_token(r, &cookie);
    if (tok && cookie && gw_csrf_ok(r) && gw_authenticate(r, msg, sizeof(msg)) == 0) {
        cJSON *params = cJSON_CreateObject(), *res = NULL;
        cJSON_AddItemToObject(params, "caller", gw_caller_json(r));
        cJSON_AddStringToObject(params, "jti", r->claims.jti);
        if (gw_rpc(r->gw, "auth", "token.revoke", params, &res, msg, sizeof(msg)) != 0)
            dyno_info("session token not revoked at logout", "user=%s", r->claims.sub);
        cJSON_Delete(params);
        cJSON_Delete(res);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "logged_out", true);
    enum MHD_Result ret = gw_reply_json_cookies(r, 200, o, "", "", 0);
    cJSON_Delete(o);
    return ret;
}

/* POST /v1/auth/device: open (the CLI has no token yet), throttled like a login. */
static enum MHD_Result gw_device_start(struct gw_req *r)
{
    char peer[DYNO_HTTP_PEER_MAX], who[DYNO_HTTP_PEER_MAX + 8];
    int retry_s = 1;
    dyno_http_peer(r->c, peer);
    snprintf(who, sizeof(who), "device:%s", peer);
    if (!gw_login_allowed(r, who, &retry_s))
        return gw_reply_limited(r, retry_s, "too many device logins; retry in %d s", retry_s);
    struct gw_device d = {.used = true};
    unsigned char raw[8];
    if (dyno_key_new(d.device_code) != 0 || RAND_bytes(raw, sizeof(raw)) != 1)
        return gw_reply_error(r, DYNO_EINTERNAL, "no randomness");
    for (int i = 0, j = 0; i < GW_USER_CODE_LEN; i++)
        d.user_code[i] = i == 4 ? '-' : gw_code_alphabet[raw[j++] % (sizeof(gw_code_alphabet) - 1)];
    int64_t now = gw_now_ms();
    d.expires_ms = now + r->gw->cfg.device_code_ttl_s * 1000LL;
    pthread_mutex_lock(&gw_device_mu);
    gw_device_expire(now);
    int slot = -1;
    for (int i = 0; i < GW_DEVICE_MAX && slot < 0; i++)
        if (!gw_devices[i].used)
            slot = i;
    if (slot >= 0)
        gw_devices[slot] = d;
    pthread_mutex_unlock(&gw_device_mu);
    if (slot < 0)
        return gw_reply_limited(r, 30, "too many device logins pending (%d); retry later", GW_DEVICE_MAX);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "device_code", d.device_code);
    cJSON_AddStringToObject(o, "user_code", d.user_code);
    cJSON_AddStringToObject(o, "verification_path", "/#/device");
    dyno_json_add_i64(o, "expires_in", r->gw->cfg.device_code_ttl_s);
    dyno_json_add_i64(o, "interval", GW_DEVICE_POLL_S);
    enum MHD_Result ret = gw_reply_json(r, 200, o);
    cJSON_Delete(o);
    gw_wipe(&d, sizeof(d));
    return ret;
}

/* The body's string member name (at most cap-1 bytes) into out. */
static int gw_body_str(struct gw_req *r, const char *name, char *out, size_t cap)
{
    cJSON *body = NULL;
    if (dyno_json_parse(r->body.data ? r->body.data : "", r->body.len, GW_JSON_BODY_MAX, &body))
        return DYNO_EINVAL;
    const char *v = dyno_json_str(body, name);
    int rc = v && strlen(v) < cap ? 0 : DYNO_EINVAL;
    if (rc == 0)
        memcpy(out, v, strlen(v) + 1);
    cJSON_Delete(body);
    return rc;
}

/* POST /v1/auth/device/token {device_code}: 202 while pending, 200 {token, expires_at} once,
 * 404 for a code that is unknown, expired or already used. */
static enum MHD_Result gw_device_poll(struct gw_req *r)
{
    char code[DYNO_KEY_LEN + 2];
    if (gw_body_str(r, "device_code", code, sizeof(code)) || !dyno_valid_key(code))
        return gw_reply_error(r, DYNO_EINVAL, "body must be {\"device_code\": <32 hex>}");
    char *tok = NULL;
    int64_t exp = 0;
    bool found = false;
    pthread_mutex_lock(&gw_device_mu);
    gw_device_expire(gw_now_ms());
    for (int i = 0; i < GW_DEVICE_MAX && !found; i++) {
        struct gw_device *d = &gw_devices[i];
        if (!d->used || CRYPTO_memcmp(d->device_code, code, DYNO_KEY_LEN) != 0)
            continue;
        found = true;
        if (d->approved) { /* handed out once: the slot is freed with the token */
            tok = d->token;
            d->token = NULL;
            exp = d->token_exp;
            gw_device_clear(d);
        }
    }
    pthread_mutex_unlock(&gw_device_mu);
    if (!found)
        return gw_reply_error(r, DYNO_ENOTFOUND, "unknown, expired or already used device code");
    cJSON *o = cJSON_CreateObject();
    if (!tok) {
        cJSON_AddStringToObject(o, "status", "pending");
        enum MHD_Result ret = gw_reply_json(r, 202, o);
        cJSON_Delete(o);
        return ret;
    }
    cJSON_AddStringToObject(o, "status", "approved");
    cJSON_AddStringToObject(o, "token", tok);
    dyno_json_add_i64(o, "expires_at", exp);
    enum MHD_Result ret = gw_reply_json(r, 200, o);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "token");
    gw_wipe(t->valuestring, strlen(t->valuestring));
    cJSON_Delete(o);
    gw_wipe(tok, strlen(tok));
    free(tok);
    return ret;
}

/* POST /v1/auth/device/approve {user_code} (authenticated): issues an API token of the
 * caller for the waiting CLI. The code is looked up again after the RPC: it may have
 * expired or been approved by someone else meanwhile, and then the new token is revoked. */
static enum MHD_Result gw_device_approve(struct gw_req *r)
{
    char code[GW_USER_CODE_LEN + 8], msg[400];
    if (gw_body_str(r, "user_code", code, sizeof(code)))
        return gw_reply_error(r, DYNO_EINVAL, "body must be {\"user_code\": \"XXXX-XXXX\"}");
    for (char *p = code; *p; p++) /* typed by a human: lower case and no dash are fine */
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    if (strlen(code) == GW_USER_CODE_LEN - 1) {
        memmove(code + 5, code + 4, 5);
        code[4] = '-';
    }
    if (strcmp(r->claims.role, "service") == 0 || !dyno_valid_segment(r->claims.sub))
        return gw_reply_error(r, DYNO_EFORBIDDEN, "only a user may approve a device login");
    bool pending = false;
    pthread_mutex_lock(&gw_device_mu);
    gw_device_expire(gw_now_ms());
    for (int i = 0; i < GW_DEVICE_MAX; i++)
        if (gw_devices[i].used && !gw_devices[i].approved && strcmp(gw_devices[i].user_code, code) == 0)
            pending = true;
    pthread_mutex_unlock(&gw_device_mu);
    if (!pending)
        return gw_reply_error(r, DYNO_ENOTFOUND, "unknown, expired or already used code");

    cJSON *params = cJSON_CreateObject(), *res = NULL;
    cJSON_AddItemToObject(params, "caller", gw_caller_json(r));
    cJSON_AddStringToObject(params, "name", "device login");
    int rc = gw_rpc(r->gw, "auth", "token.create", params, &res, msg, sizeof(msg));
    cJSON_Delete(params);
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    const char *tok = dyno_json_str(res, "token");
    int64_t exp = 0;
    (void)dyno_json_i64(res, "expires_at", &exp);
    bool stored = false;
    pthread_mutex_lock(&gw_device_mu);
    for (int i = 0; i < GW_DEVICE_MAX && tok && !stored; i++) {
        struct gw_device *d = &gw_devices[i];
        if (d->used && !d->approved && strcmp(d->user_code, code) == 0 && d->expires_ms > gw_now_ms() &&
            (d->token = strdup(tok)) != NULL) {
            d->approved = true;
            d->token_exp = exp;
            snprintf(d->user, sizeof(d->user), "%s", r->claims.sub);
            stored = true;
        }
    }
    pthread_mutex_unlock(&gw_device_mu);
    if (!stored) {
        const char *jti = dyno_json_str(res, "jti");
        cJSON *p2 = cJSON_CreateObject(), *r2 = NULL;
        cJSON_AddItemToObject(p2, "caller", gw_caller_json(r));
        cJSON_AddStringToObject(p2, "jti", jti ? jti : "");
        (void)gw_rpc(r->gw, "auth", "token.revoke", p2, &r2, msg, sizeof(msg));
        cJSON_Delete(p2);
        cJSON_Delete(r2);
    }
    cJSON *t = cJSON_GetObjectItemCaseSensitive(res, "token");
    if (cJSON_IsString(t))
        gw_wipe(t->valuestring, strlen(t->valuestring));
    cJSON_Delete(res);
    if (!stored)
        return gw_reply_error(r, DYNO_ENOTFOUND, "the code expired or was used meanwhile");
    dyno_info("device login approved", "user=%s", r->claims.sub);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "approved", true);
    cJSON_AddStringToObject(o, "user", r->claims.sub);
    enum MHD_Result ret = gw_reply_json(r, 200, o);
    cJSON_Delete(o);
    return ret;
}

static enum MHD_Result gw_device_approve_authed(struct gw_req *r)
{
    char msg[200];
    int rc = gw_authenticate(r, msg, sizeof(msg));
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    return gw_device_approve(r);
}

bool gw_session_route(struct gw_req *r, const char *url, enum MHD_Result *ret)
{
    bool post = strcmp(r->method, MHD_HTTP_METHOD_POST) == 0;
    if (strcmp(url, "/v1/auth/session") == 0) {
        if (post)
            *ret = (gw_expect_json(r, gw_session_login), MHD_YES);
        else if (strcmp(r->method, MHD_HTTP_METHOD_DELETE) == 0)
            *ret = gw_session_logout(r);
        else
            *ret = gw_reply_error(r, DYNO_EMETHOD, "method %s not allowed here", r->method);
        return true;
    }
    enum MHD_Result (*h)(struct gw_req *) = NULL;
    if (strcmp(url, "/v1/auth/device") == 0)
        h = gw_device_start;
    else if (strcmp(url, "/v1/auth/device/token") == 0)
        h = gw_device_poll;
    else if (strcmp(url, "/v1/auth/device/approve") == 0)
        h = gw_device_approve_authed;
    else
        return false;
    if (!post)
        *ret = gw_reply_error(r, DYNO_EMETHOD, "method %s not allowed here", r->method);
    else
        *ret = (gw_expect_json(r, h), MHD_YES); /* the start's body, if any, is not read */
    return true;
}
