/* cJSON helpers (lib/json.h). */
#include "json.h"

#include <dynostore/error.h>
#include <math.h>
#include <stdlib.h>

int dyno_json_parse(const char *buf, size_t len, size_t max, cJSON **out)
{
    *out = NULL;
    if (len > max)
        return DYNO_ETOOBIG;
    if (!buf || len == 0)
        return DYNO_EINVAL;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!j)
        return DYNO_EINVAL;
    /* Only white space may follow the document. */
    for (const char *p = end; p && p < buf + len; p++) {
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t' && *p != '\0') {
            cJSON_Delete(j);
            return DYNO_EINVAL;
        }
    }
    *out = j;
    return 0;
}

const char *dyno_json_str(const cJSON *obj, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

int dyno_json_i64(const cJSON *obj, const char *name, int64_t *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!it || cJSON_IsNull(it))
        return DYNO_ENOTFOUND;
    if (!cJSON_IsNumber(it))
        return DYNO_EINVAL;
    double d = it->valuedouble;
    if (!isfinite(d) || d != floor(d) || d > 9007199254740992.0 || d < -9007199254740992.0)
        return DYNO_EINVAL;
    *out = (int64_t)d;
    return 0;
}

bool dyno_json_bool(const cJSON *obj, const char *name, bool def)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (cJSON_IsTrue(it))
        return true;
    if (cJSON_IsFalse(it))
        return false;
    return def;
}

char *dyno_json_print(const cJSON *obj, size_t *len)
{
    char *s = cJSON_PrintUnformatted(obj);
    if (s && len) {
        size_t n = 0;
        while (s[n])
            n++;
        *len = n;
    }
    return s;
}

cJSON *dyno_json_add_i64(cJSON *obj, const char *name, int64_t v)
{
    return cJSON_AddNumberToObject(obj, name, (double)v);
}
