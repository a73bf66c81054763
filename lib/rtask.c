/* The repair task's JSON (rtask.h). */
#include "rtask.h"

#include <stdio.h>
#include <string.h>

#include "dynostore/error.h"
#include "frag.h"
#include "json.h"

cJSON *dyno_rtask_new(const struct dyno_rtask_head *h)
{
    cJSON *t = cJSON_CreateObject();
    if (!t || !cJSON_AddStringToObject(t, "id", h->id) || !cJSON_AddStringToObject(t, "key", h->key) ||
        !cJSON_AddStringToObject(t, "catalog", h->catalog) || !cJSON_AddStringToObject(t, "name", h->name) ||
        !dyno_json_add_i64(t, "size", h->size) || !cJSON_AddStringToObject(t, "sha256", h->sha256) ||
        !cJSON_AddNumberToObject(t, "k", h->k) || !cJSON_AddNumberToObject(t, "m", h->m) ||
        !cJSON_AddBoolToObject(t, "replica", h->replica) || !dyno_json_add_i64(t, "unit", h->unit) ||
        !cJSON_AddArrayToObject(t, "sources") || !cJSON_AddArrayToObject(t, "rebuild") ||
        !dyno_json_add_i64(t, "lease_until", h->lease_until)) {
        cJSON_Delete(t);
        return NULL;
    }
    return t;
}

int dyno_rtask_add_loc(cJSON *task, const char *list, int index, const char *container, const char *url,
                       const char *state, int64_t size)
{
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(task, list);
    if (!cJSON_IsArray(arr))
        return DYNO_EINVAL;
    cJSON *f = cJSON_CreateObject();
    if (!f || !cJSON_AddItemToArray(arr, f))
        goto nomem;
    if (!cJSON_AddNumberToObject(f, "index", index) || !cJSON_AddStringToObject(f, "container", container) ||
        !cJSON_AddStringToObject(f, "url", url) || (state && !cJSON_AddStringToObject(f, "state", state)) ||
        (size >= 0 && !dyno_json_add_i64(f, "size", size)))
        return DYNO_ENOMEM; /* f is in arr: freed with the task */
    return 0;
nomem:
    cJSON_Delete(f);
    return DYNO_ENOMEM;
}

static bool rtask__hex64(const char *s)
{
    if (!s || strlen(s) != 64)
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') || (*c >= 'A' && *c <= 'F')))
            return false;
    return true;
}

int dyno_rtask_parse_head(const cJSON *task, struct dyno_rtask_head *out)
{
    const char *id = dyno_json_str(task, "id"), *key = dyno_json_str(task, "key");
    const char *cat = dyno_json_str(task, "catalog"), *name = dyno_json_str(task, "name");
    const char *sha = dyno_json_str(task, "sha256");
    int64_t size, k, m, unit, lease = 0;
    if (!dyno_valid_key(id) || !dyno_valid_key(key) || !cat || !dyno_valid_catalog(cat) || !name ||
        !dyno_valid_name(name) || !rtask__hex64(sha) || dyno_json_i64(task, "size", &size) ||
        dyno_json_i64(task, "k", &k) || dyno_json_i64(task, "m", &m) || dyno_json_i64(task, "unit", &unit) ||
        size < 0 || k < 1 || k > DYNO_EC_MAX_K || m < 0 || m > DYNO_EC_MAX_M || unit < 1 ||
        unit > (int64_t)DYNO_FRAG_MAX_UNIT)
        return DYNO_EPROTO;
    bool replica = dyno_json_bool(task, "replica", false);
    if (replica && k != 1)
        return DYNO_EPROTO; /* a replica is the whole object: one data unit */
    (void)dyno_json_i64(task, "lease_until", &lease);
    memset(out, 0, sizeof(*out));
    snprintf(out->id, sizeof(out->id), "%s", id);
    snprintf(out->key, sizeof(out->key), "%s", key);
    snprintf(out->catalog, sizeof(out->catalog), "%s", cat);
    snprintf(out->name, sizeof(out->name), "%s", name);
    snprintf(out->sha256, sizeof(out->sha256), "%s", sha);
    out->size = size;
    out->k = (int)k;
    out->m = (int)m;
    out->unit = (uint32_t)unit;
    out->replica = replica;
    out->lease_until = lease;
    return 0;
}

int dyno_rtask_parse_locs(const cJSON *task, const char *list, int n, struct dyno_rtask_loc *out, int *count)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(task, list), *it;
    bool seen[DYNO_RTASK_LOCS_MAX] = {false};
    *count = 0;
    if (!cJSON_IsArray(arr) || n < 0 || n > DYNO_RTASK_LOCS_MAX)
        return DYNO_EPROTO;
    cJSON_ArrayForEach(it, arr)
    {
        int64_t idx;
        const char *c = dyno_json_str(it, "container"), *url = dyno_json_str(it, "url");
        if (dyno_json_i64(it, "index", &idx) || idx < 0 || idx >= n || seen[idx] || !dyno_valid_segment(c) ||
            !url || strlen(url) > DYNO_RTASK_URL_MAX ||
            (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
            *count == DYNO_RTASK_LOCS_MAX)
            return DYNO_EPROTO;
        seen[idx] = true;
        struct dyno_rtask_loc *l = &out[(*count)++];
        l->index = (int)idx;
        snprintf(l->container, sizeof(l->container), "%s", c);
        snprintf(l->url, sizeof(l->url), "%s", url);
        const char *state = dyno_json_str(it, "state");
        l->draining = state && strcmp(state, "draining") == 0;
    }
    return 0;
}
