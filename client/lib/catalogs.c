/*
 * libdynostore catalogs, listing, and the fabric and identity calls (containers, healthz,
 * login, whoami). All are small JSON exchanges through dyno__json_call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "json.h"
#include "names.h"

/* The start of every call on a catalog: DYNO_EINVAL without c or with a bad catalog path,
 * else 0 with the message cleared. */
static int catalog_begin(dyno_client *c, const char *catalog)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!catalog || !dyno_valid_catalog(catalog))
        return dyno__fail(c, DYNO_EINVAL, "invalid catalog path '%s' (owner/name[/name...])",
                          catalog ? catalog : "(null)");
    return 0;
}

int dyno__catalog_path(dyno_client *c, enum dyno_rest_kind kind, const char *catalog, const char *principal,
                       struct dyno_buf *b)
{
    struct dyno_rest_route rt = {.kind = kind};
    char path[DYNO_REST_PATH_MAX];
    if (!catalog || strlen(catalog) >= sizeof(rt.catalog) ||
        (principal && strlen(principal) >= sizeof(rt.name)))
        return dyno__fail(c, DYNO_EINVAL, "invalid catalog path or principal");
    memcpy(rt.catalog, catalog, strlen(catalog) + 1);
    if (principal)
        memcpy(rt.name, principal, strlen(principal) + 1);
    int rc = dyno_rest_route_format(&rt, path, sizeof(path));
    if (rc == DYNO_EINVAL)
        return dyno__fail(c, rc, "invalid %s '%s'", principal ? "principal" : "catalog path",
                          principal ? principal : catalog);
    if (rc == 0)
        rc = dyno_buf_append(b, path, strlen(path));
    if (rc < 0)
        return dyno__fail(c, rc, "request path too long");
    return 0;
}

/* A JSON call on route kind of catalog (already checked), with principal (may be NULL) and a
 * query (may be ""); a bare "not found" answer names the catalog. */
static int catalog_call(dyno_client *c, const char *method, enum dyno_rest_kind kind, const char *catalog,
                        const char *principal, const char *query, const cJSON *body, cJSON **out)
{
    struct dyno_buf path;
    dyno_buf_init(&path, DYNO__URL_MAX);
    int rc = dyno__catalog_path(c, kind, catalog, principal, &path);
    if (rc == 0 && query[0] && (rc = dyno_buf_append(&path, query, strlen(query))) < 0)
        rc = dyno__fail(c, rc, "request path too long");
    if (rc == 0)
        rc = dyno__notfound(c, dyno__json_call(c, method, path.data, body, out), "catalog", catalog);
    dyno_buf_free(&path);
    return rc;
}

int dyno_client_catalog_create(dyno_client *c, const char *catalog, const struct dyno_catalog_opts *opts,
                               struct cJSON **out)
{
    int rc = catalog_begin(c, catalog);
    if (rc < 0)
        return rc;
    if (opts && (opts->k < 0 || opts->m < 0 || (opts->k == 0 && opts->m > 0)))
        return dyno__fail(c, DYNO_EINVAL, "invalid resilience %d,%d", opts->k, opts->m);
    char path[DYNO_REST_PATH_MAX];
    struct dyno_rest_route rt = {.kind = DYNO_REST_CATALOG};
    memcpy(rt.catalog, catalog, strlen(catalog) + 1); /* valid, so it fits */
    if (dyno_rest_route_format(&rt, path, sizeof(path)) != 0)
        return dyno__fail(c, DYNO_EINVAL, "invalid catalog path '%s'", catalog);
    cJSON *body = cJSON_CreateObject();
    if (!body)
        return dyno__fail(c, DYNO_ENOMEM, "out of memory");
    if (opts && opts->public_read && !cJSON_AddTrueToObject(body, "public"))
        goto nomem;
    if (opts && opts->k > 0) {
        cJSON *r = cJSON_AddObjectToObject(body, "resilience");
        if (!r || !cJSON_AddNumberToObject(r, "k", opts->k) || !cJSON_AddNumberToObject(r, "m", opts->m))
            goto nomem;
    }
    rc = dyno__json_call(c, "PUT", path, body, out);
    cJSON_Delete(body);
    return rc;
nomem:
    cJSON_Delete(body);
    return dyno__fail(c, DYNO_ENOMEM, "out of memory");
}

int dyno_client_catalog_list(dyno_client *c, struct cJSON **out)
{
    return dyno__json_get(c, "/v1/catalogs", out);
}

int dyno_client_catalog_info(dyno_client *c, const char *catalog, struct cJSON **out)
{
    int rc = catalog_begin(c, catalog);
    if (rc < 0)
        return rc;
    if (!out)
        return dyno__fail(c, DYNO_EINVAL, "no output");
    return catalog_call(c, "GET", DYNO_REST_CATALOG, catalog, NULL, "", NULL, out);
}

int dyno_client_catalog_delete(dyno_client *c, const char *catalog, int recursive)
{
    int rc = catalog_begin(c, catalog);
    if (rc < 0)
        return rc;
    return catalog_call(c, "DELETE", DYNO_REST_CATALOG, catalog, NULL, recursive ? "?recursive=1" : "", NULL,
                        NULL);
}

int dyno_client_catalog_share(dyno_client *c, const char *catalog, const char *principal, int is_org,
                              const char *access)
{
    int rc = catalog_begin(c, catalog);
    if (rc < 0)
        return rc;
    if (!principal || !principal[0] || strlen(principal) > DYNO_CATALOG_MAX)
        return dyno__fail(c, DYNO_EINVAL, "no user or org to share with");
    if (!access || (strcmp(access, "read") != 0 && strcmp(access, "write") != 0))
        return dyno__fail(c, DYNO_EINVAL, "access must be read or write");
    cJSON *body = cJSON_CreateObject();
    if (!body || !cJSON_AddStringToObject(body, is_org ? "org" : "user", principal) ||
        !cJSON_AddStringToObject(body, "access", access)) {
        cJSON_Delete(body);
        return dyno__fail(c, DYNO_ENOMEM, "out of memory");
    }
    rc = catalog_call(c, "POST", DYNO_REST_CATALOG_SHARES, catalog, NULL, "", body, NULL);
    cJSON_Delete(body);
    return rc;
}

int dyno_client_catalog_unshare(dyno_client *c, const char *catalog, const char *principal, int is_org)
{
    int rc = catalog_begin(c, catalog);
    if (rc < 0)
        return rc;
    if (!principal || !principal[0])
        return dyno__fail(c, DYNO_EINVAL, "no user or org to unshare");
    return catalog_call(c, "DELETE", DYNO_REST_CATALOG_SHARE, catalog, principal,
                        is_org ? "?kind=org" : "?kind=user", NULL, NULL);
}

int dyno_client_list(dyno_client *c, const char *catalog, const char *after, int limit, struct cJSON **page,
                     char **next)
{
    int rc = catalog_begin(c, catalog);
    if (rc < 0)
        return rc;
    if (!page || limit < 0 || limit > 1000)
        return dyno__fail(c, DYNO_EINVAL, "bad page size %d (1..1000)", limit);
    struct dyno_buf path;
    dyno_buf_init(&path, DYNO__URL_MAX);
    cJSON *doc = NULL;
    char *nx = NULL;
    rc = dyno__catalog_path(c, DYNO_REST_CATALOG_OBJECTS, catalog, NULL, &path);
    const char *sep = "?";
    if (rc == 0 && after && after[0]) {
        rc = dyno_buf_append(&path, "?after=", 7);
        if (rc == 0)
            rc = dyno__escape(&path, after);
        sep = "&";
    }
    if (rc == 0 && limit > 0)
        rc = dyno_buf_printf(&path, "%slimit=%d", sep, limit);
    if (rc < 0) {
        rc = dyno__fail(c, rc, "request path too long");
        goto out;
    }
    rc = dyno__notfound(c, dyno__json_call(c, "GET", path.data, NULL, &doc), "catalog", catalog);
    if (rc < 0)
        goto out;
    const cJSON *objs = cJSON_GetObjectItemCaseSensitive(doc, "objects");
    if (!cJSON_IsArray(objs)) {
        rc = dyno__fail(c, DYNO_EPROTO, "the gateway's object list has no \"objects\" array");
        goto out;
    }
    if (next) {
        /* "next": the last name, or null when done. Without the member, a full page means
         * there may be more: go on after its last name. */
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(doc, "next");
        const char *name = NULL;
        if (cJSON_IsString(n) && n->valuestring[0])
            name = n->valuestring;
        else if (!n && limit > 0 && cJSON_GetArraySize(objs) >= limit)
            name = dyno_json_str(cJSON_GetArrayItem(objs, cJSON_GetArraySize(objs) - 1), "name");
        if (name && after && strcmp(name, after) == 0)
            name = NULL; /* no progress: stop rather than loop */
        if (name) {
            nx = strdup(name);
            if (!nx) {
                rc = dyno__fail(c, DYNO_ENOMEM, "out of memory");
                goto out;
            }
        }
        *next = nx;
        nx = NULL;
    }
    *page = doc;
    doc = NULL;
out:
    cJSON_Delete(doc);
    free(nx);
    dyno_buf_free(&path);
    return rc;
}

int dyno_client_containers(dyno_client *c, struct cJSON **out)
{
    return dyno__json_get(c, "/v1/containers", out);
}

int dyno_client_healthz(dyno_client *c, struct cJSON **out)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    struct dyno_buf body;
    dyno_buf_init(&body, 64 * 1024);
    struct dyno__req r = {.method = "GET", .path = "/healthz", .resp = &body};
    int rc = dyno__request(c, &r, NULL);
    if (rc == DYNO_ETOOBIG)
        rc = 0; /* a chatty health page is still a healthy gateway */
    if (rc == 0 && out) {
        cJSON *doc = NULL;
        if (body.len == 0 || dyno_json_parse(body.data, body.len, body.max, &doc) < 0)
            doc = NULL;
        *out = doc;
    }
    if (rc < 0 && rc != DYNO_EUNAUTH && rc != DYNO_EFORBIDDEN && rc != DYNO_EUNAVAIL && rc != DYNO_ETIMEDOUT)
        rc = DYNO_EUNAVAIL;
    dyno_buf_free(&body);
    return rc;
}

int dyno_client_login(dyno_client *c, const char *username, const char *password, char **token,
                      int64_t *expires_at)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!username || !password || !token)
        return dyno__fail(c, DYNO_EINVAL, "user name and password are required");
    int rc;
    cJSON *doc = NULL;
    cJSON *body = cJSON_CreateObject();
    if (!body || !cJSON_AddStringToObject(body, "username", username) ||
        !cJSON_AddStringToObject(body, "password", password)) {
        rc = dyno__fail(c, DYNO_ENOMEM, "out of memory");
        goto out;
    }
    rc = dyno__json_call(c, "POST", "/v1/auth/login", body, &doc);
    if (rc == 0)
        rc = dyno__json_strdup(c, doc, "token", "login answer", token);
    if (rc == 0 && expires_at) {
        int64_t exp = 0;
        (void)dyno_json_i64(doc, "expires_at", &exp);
        *expires_at = exp;
    }
out:
    dyno__json_wipe(body, "password"); /* do not leave the password in freed memory */
    cJSON_Delete(body);
    cJSON_Delete(doc);
    return rc;
}

int dyno_client_device_start(dyno_client *c, char **device_code, char **user_code, int64_t *expires_in,
                             int64_t *interval)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!device_code || !user_code)
        return dyno__fail(c, DYNO_EINVAL, "device_code and user_code are required");
    *device_code = *user_code = NULL;
    cJSON *doc = NULL, *body = cJSON_CreateObject();
    int rc = body ? dyno__json_call(c, "POST", "/v1/auth/device", body, &doc) : DYNO_ENOMEM;
    if (rc == 0)
        rc = dyno__json_strdup(c, doc, "device_code", "device login answer", device_code);
    if (rc == 0)
        rc = dyno__json_strdup(c, doc, "user_code", "device login answer", user_code);
    if (rc == 0) {
        int64_t v = 600;
        (void)dyno_json_i64(doc, "expires_in", &v);
        if (expires_in)
            *expires_in = v;
        v = 2;
        (void)dyno_json_i64(doc, "interval", &v);
        if (interval)
            *interval = v < 1 ? 1 : v;
    } else {
        free(*device_code);
        *device_code = NULL;
    }
    cJSON_Delete(body);
    cJSON_Delete(doc);
    return rc;
}

int dyno_client_device_poll(dyno_client *c, const char *device_code, char **token, int64_t *expires_at)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!device_code || !token)
        return dyno__fail(c, DYNO_EINVAL, "device_code and token are required");
    *token = NULL;
    cJSON *doc = NULL, *body = cJSON_CreateObject();
    int rc = body && cJSON_AddStringToObject(body, "device_code", device_code) ? 0 : DYNO_ENOMEM;
    if (rc == 0)
        rc = dyno__json_call(c, "POST", "/v1/auth/device/token", body, &doc);
    const char *status = rc == 0 ? dyno_json_str(doc, "status") : NULL;
    if (rc == 0 && status && strcmp(status, "approved") == 0) {
        rc = dyno__json_strdup(c, doc, "token", "device login answer", token);
        int64_t exp = 0;
        (void)dyno_json_i64(doc, "expires_at", &exp);
        if (expires_at)
            *expires_at = exp;
        dyno__json_wipe(doc, "token");
    }
    cJSON_Delete(body);
    cJSON_Delete(doc);
    return rc;
}

int dyno_client_whoami(dyno_client *c, struct cJSON **out)
{
    return dyno__json_get(c, "/v1/auth/whoami", out);
}
