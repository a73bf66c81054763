/*
 * Who is calling, and what may they do: bearer tokens verified offline with the auth
 * service's public key, and the catalog access rule (SPEC §7).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gw.h"
#include "httpd.h"
#include "json.h"
#include "mq.h"

int gw_authenticate(struct gw_req *r, char *msg, size_t cap)
{
    const char *tok = dyno_http_bearer(r->c);
    if (!tok) {
        snprintf(msg, cap, "missing Authorization: Bearer token");
        return DYNO_EUNAUTH;
    }
    if (strlen(tok) > DYNO_TOKEN_MAX) {
        snprintf(msg, cap, "token too long");
        return DYNO_EUNAUTH;
    }
    int rc = dyno_token_verify(r->gw->verifier, tok, (int64_t)time(NULL), &r->claims);
    if (rc) {
        snprintf(msg, cap, "invalid, expired or revoked token");
        return DYNO_EUNAUTH;
    }
    r->authed = true;
    return 0;
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

/* Issue 2: an org share covers exactly that org (sub-orgs are a later decision, made here). */
static bool gw_org_matches(const char *org, const char *principal)
{
    return org[0] != '\0' && strcmp(org, principal) == 0;
}

/*
 * The catalog access rule, kept in one place so later issues extend it here only.
 *   read:  owner, admin, public catalog, or a share (user == sub, or org == caller's org)
 *   write: owner, admin, or a share with access "write"
 */
bool gw_catalog_allows(const struct dyno_claims *cl, const cJSON *cat, bool write)
{
    const char *owner = dyno_json_str(cat, "owner");
    if (cl->admin || (owner && strcmp(owner, cl->sub) == 0))
        return true;
    if (!write && dyno_json_bool(cat, "public", false))
        return true;
    const cJSON *shares = cJSON_GetObjectItemCaseSensitive(cat, "shares");
    const cJSON *sh;
    cJSON_ArrayForEach(sh, shares)
    {
        const char *principal = dyno_json_str(sh, "principal");
        const char *kind = dyno_json_str(sh, "kind");
        const char *access = dyno_json_str(sh, "access");
        if (!principal || !access)
            continue;
        bool who = false;
        if (!kind || strcmp(kind, "user") == 0)
            who = strcmp(principal, cl->sub) == 0;
        if (!who && (!kind || strcmp(kind, "org") == 0))
            who = gw_org_matches(cl->org, principal);
        if (!who)
            continue;
        if (!write && (strcmp(access, "read") == 0 || strcmp(access, "write") == 0))
            return true;
        if (write && strcmp(access, "write") == 0)
            return true;
    }
    return false;
}

int gw_catalog_check(struct gw_req *r, const char *catalog, bool write, cJSON **out, char *msg, size_t cap)
{
    if (out)
        *out = NULL;
    cJSON *params = cJSON_CreateObject();
    if (!params)
        return DYNO_ENOMEM;
    cJSON_AddStringToObject(params, "catalog", catalog);
    cJSON *cat = NULL;
    int rc = gw_rpc(r->gw, "pubsub", "catalog.get", params, &cat, msg, cap);
    cJSON_Delete(params);
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
