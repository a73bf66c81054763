/*
 * libdynostore users, API tokens and S3 access keys (SPEC §4: /v1/users, /v1/tokens; /v1/keys). Small JSON
 * exchanges through dyno__json_call; passwords and tokens are wiped from our own buffers after use.
 */
#include <stdio.h>
#include <string.h>

#include "client_int.h"
#include "json.h"
#include "names.h"

int dyno_client_user_create(dyno_client *c, const char *username, const char *password, const char *org,
                            int admin, struct cJSON **out)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!username || !dyno_valid_segment(username))
        return dyno__fail(c, DYNO_EINVAL, "invalid user name (letters, digits, '.', '_', '-'; 1..64)");
    if (!password)
        return dyno__fail(c, DYNO_EINVAL, "a password is required");
    int rc;
    cJSON *body = cJSON_CreateObject();
    if (!body || !cJSON_AddStringToObject(body, "username", username) ||
        !cJSON_AddStringToObject(body, "password", password) ||
        (org && org[0] && !cJSON_AddStringToObject(body, "org", org)) ||
        !cJSON_AddBoolToObject(body, "admin", admin != 0)) {
        rc = dyno__fail(c, DYNO_ENOMEM, "out of memory");
        goto out;
    }
    rc = dyno__json_call(c, "POST", "/v1/users", body, out);
out:
    dyno__json_wipe(body, "password");
    cJSON_Delete(body);
    return rc;
}

int dyno_client_user_list(dyno_client *c, struct cJSON **out)
{
    return dyno__json_get(c, "/v1/users", out);
}

int dyno_client_token_create(dyno_client *c, int64_t ttl, const char *name, char **token, struct cJSON **out)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!token)
        return dyno__fail(c, DYNO_EINVAL, "no output for the token");
    if (ttl < 0)
        return dyno__fail(c, DYNO_EINVAL, "ttl must be positive (0 = the service's default)");
    int rc;
    cJSON *doc = NULL;
    cJSON *body = cJSON_CreateObject();
    if (!body || (ttl > 0 && !dyno_json_add_i64(body, "ttl", ttl)) ||
        (name && !cJSON_AddStringToObject(body, "name", name))) {
        rc = dyno__fail(c, DYNO_ENOMEM, "out of memory");
        goto out;
    }
    rc = dyno__json_call(c, "POST", "/v1/tokens", body, &doc);
    if (rc == 0)
        rc = dyno__json_strdup(c, doc, "token", "answer", token);
    if (rc == 0 && out) {
        dyno__json_wipe(doc, "token");
        cJSON_DeleteItemFromObjectCaseSensitive(doc, "token");
        *out = doc;
        doc = NULL;
    }
out:
    dyno__json_wipe(doc, "token");
    cJSON_Delete(doc);
    cJSON_Delete(body);
    return rc;
}

int dyno_client_token_list(dyno_client *c, struct cJSON **out)
{
    return dyno__json_get(c, "/v1/tokens", out);
}

int dyno_client_token_revoke(dyno_client *c, const char *id)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!id || !dyno_valid_key(id))
        return dyno__fail(c, DYNO_EINVAL, "invalid token id '%s' (32 lowercase hex, as token list shows)",
                          id && strlen(id) <= 64 ? id : "(null or too long)");
    char path[64];
    snprintf(path, sizeof(path), "/v1/tokens/%s", id);
    return dyno__json_call(c, "DELETE", path, NULL, NULL);
}

int dyno_client_key_create(dyno_client *c, const char *description, char **secret, struct cJSON **out)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!secret)
        return dyno__fail(c, DYNO_EINVAL, "no output for the secret");
    int rc;
    cJSON *doc = NULL;
    cJSON *body = cJSON_CreateObject();
    if (!body || (description && !cJSON_AddStringToObject(body, "description", description))) {
        rc = dyno__fail(c, DYNO_ENOMEM, "out of memory");
        goto out;
    }
    rc = dyno__json_call(c, "POST", "/v1/keys", body, &doc);
    if (rc == 0)
        rc = dyno__json_strdup(c, doc, "secret_access_key", "answer", secret);
    if (rc == 0 && out) {
        dyno__json_wipe(doc, "secret_access_key");
        cJSON_DeleteItemFromObjectCaseSensitive(doc, "secret_access_key");
        *out = doc;
        doc = NULL;
    }
out:
    dyno__json_wipe(doc, "secret_access_key");
    cJSON_Delete(doc);
    cJSON_Delete(body);
    return rc;
}

int dyno_client_key_list(dyno_client *c, const char *user, int all, struct cJSON **out)
{
    char path[128];
    if (!c)
        return DYNO_EINVAL;
    if (user && !dyno_valid_segment(user)) {
        dyno__begin(c);
        return dyno__fail(c, DYNO_EINVAL, "invalid user name (letters, digits, '.', '_', '-'; 1..64)");
    }
    if (user && all) {
        dyno__begin(c);
        return dyno__fail(c, DYNO_EINVAL, "give a user or all, not both");
    }
    if (user)
        snprintf(path, sizeof(path), "/v1/keys?user=%s", user);
    else
        snprintf(path, sizeof(path), "/v1/keys%s", all ? "?all=1" : "");
    return dyno__json_get(c, path, out);
}

int dyno_client_key_revoke(dyno_client *c, const char *id)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!id || !dyno_valid_access_key_id(id))
        return dyno__fail(c, DYNO_EINVAL,
                          "invalid access key id '%s' (DK and 18 of A-Z 0-9, as key list shows)",
                          id && strlen(id) <= 64 ? id : "(null or too long)");
    char path[64];
    snprintf(path, sizeof(path), "/v1/keys/%s", id);
    return dyno__json_call(c, "DELETE", path, NULL, NULL);
}
