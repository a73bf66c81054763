/*
 * Who is calling, and what may they do: bearer tokens verified offline with the auth
 * service's public key (never a call to dyno-auth per request, so tokens keep working while
 * it is down), and the catalog access rule of lib/acl.h (SPEC §7, protocol.md §7).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "gw.h"
#include "httpd.h"
#include "json.h"
#include "limit.h"
#include "log.h"
#include "mq.h"

int gw_authenticate(struct gw_req *r, char *msg, size_t cap)
{
    bool cookie = false;
    const char *tok = gw_request_token(r, &cookie); /* bearer, else the console's session */
    if (!tok) {
        snprintf(msg, cap, "missing Authorization: Bearer token");
        return DYNO_EUNAUTH;
    }
    /* A cookie is sent by the browser whoever made the page: a change needs the CSRF proof. */
    if (cookie && strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0 && !gw_csrf_ok(r)) {
        snprintf(msg, cap, "a session request that changes state needs the X-Dyno-CSRF header");
        return DYNO_EFORBIDDEN;
    }
    if (strlen(tok) > DYNO_TOKEN_MAX) {
        snprintf(msg, cap, "token too long");
        return DYNO_EUNAUTH;
    }
    int64_t t0 = gw_now_us();
    int rc = dyno_token_verify(r->gw->verifier, tok, (int64_t)time(NULL), &r->claims);
    dyno_metric_add(&r->gw->metrics[GW_M_AUTH_US], gw_now_us() - t0);
    if (rc == DYNO_EUNAVAIL) {
        /* Fail closed: until the revocation feed has been applied, a revoked token cannot
         * be told from a good one. */
        snprintf(msg, cap, "the token revocation list has not been received yet; retry shortly");
        return DYNO_EUNAVAIL;
    }
    if (rc) {
        snprintf(msg, cap, "invalid, expired or revoked token");
        return DYNO_EUNAUTH;
    }
    r->authed = true;
    return 0;
}

bool gw_login_allowed(struct gw_req *r, const char *user, int *retry_s)
{
    const struct gw_cfg *cfg = &r->gw->cfg;
    char peer[DYNO_HTTP_PEER_MAX], key[DYNO_HTTP_PEER_MAX + DYNO_SEG_MAX + 8];
    int64_t now = gw_now_ms();

    /* Both keys share one table, told apart by their prefix. The address is asked first,
     * so that a client over its own limit spends nothing of the username's budget. */
    dyno_http_peer(r->c, peer);
    snprintf(key, sizeof(key), "ip:%s", peer);
    if (!dyno_limit_take(r->gw->login_limit, key, now, (double)cfg->login_per_ip_per_min,
                         (double)cfg->login_per_ip_per_min, retry_s))
        return false;
    snprintf(key, sizeof(key), "user:%s", user);
    return dyno_limit_take(r->gw->login_limit, key, now, (double)cfg->login_per_user_per_min,
                           (double)cfg->login_per_user_per_min, retry_s);
}

cJSON *gw_caller_json(const struct gw_req *r)
{
    cJSON *c = cJSON_CreateObject();
    if (!c)
        return NULL;
    cJSON_AddStringToObject(c, "sub", r->claims.sub);
    cJSON_AddStringToObject(c, "org", r->claims.org);
    cJSON_AddBoolToObject(c, "admin", r->claims.admin);
    return c;
}

static void gw_principal(const struct dyno_claims *cl, struct dyno_acl_principal *who)
{
    who->sub = cl->sub;
    who->org = cl->org;
    who->admin = cl->admin;
    who->service = strcmp(cl->role, "service") == 0;
}

/*
 * The catalog access rule is lib/acl.h's dyno_acl_decide(), the very function the broker
 * plugin applies to the retained policy feed, so the gateway and the broker always answer
 * alike (org shares cover sub-orgs, write shares imply read, public means read). The
 * catalog.get result has the policy document's shape ({catalog, owner, public, shares});
 * it goes through the same parser as the feed, so a malformed record denies.
 */
bool gw_catalog_allows(const struct dyno_claims *cl, const cJSON *cat, bool write)
{
    struct dyno_acl_policy *pol = NULL;
    struct dyno_acl_principal who;
    size_t len = 0;
    char *txt = dyno_json_print(cat, &len);
    bool ok = false;

    if (!txt)
        return false;
    if (dyno_acl_policy_parse(txt, len, &pol) != 0) {
        dyno_warn("catalog record not understood: access denied", "catalog=%.300s",
                  dyno_json_str(cat, "catalog") ? dyno_json_str(cat, "catalog") : "?");
        goto out;
    }
    gw_principal(cl, &who);
    ok = dyno_acl_decide(pol, &who, write ? DYNO_ACL_WRITE : DYNO_ACL_READ);
out:
    dyno_acl_policy_free(pol);
    free(txt);
    return ok;
}

int gw_catalog_get(struct gw *gw, const char *catalog, cJSON **out, char *msg, size_t cap)
{
    uint64_t gen = 0;
    *out = gw->catcache ? gw_catcache_get(gw->catcache, catalog, &gen) : NULL;
    if (*out)
        return 0;
    cJSON *params = cJSON_CreateObject();
    if (!params)
        return DYNO_ENOMEM;
    cJSON_AddStringToObject(params, "catalog", catalog);
    int rc = gw_rpc(gw, "pubsub", "catalog.get", params, out, msg, cap);
    cJSON_Delete(params);
    if (rc == 0 && gw->catcache)
        gw_catcache_put(gw->catcache, catalog, *out, gen);
    return rc;
}

int gw_catalog_check(struct gw_req *r, const char *catalog, bool write, cJSON **out, char *msg, size_t cap)
{
    if (out)
        *out = NULL;
    cJSON *cat = NULL;
    int rc = gw_catalog_get(r->gw, catalog, &cat, msg, cap);
    if (rc == DYNO_ENOTFOUND) {
        snprintf(msg, cap, "no catalog %s", catalog);
        return rc;
    }
    if (rc)
        return rc;
    if (!gw_catalog_allows(&r->claims, cat, write)) {
        snprintf(msg, cap, "%s may not %s catalog %s", r->claims.sub, write ? "write to" : "read", catalog);
        cJSON_Delete(cat);
        return DYNO_EFORBIDDEN;
    }
    if (out)
        *out = cat;
    else
        cJSON_Delete(cat);
    return 0;
}
