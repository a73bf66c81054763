/*
 * Fuzzes the revocation feed parser (dyno_acl_revoked_parse, lib/acl.h) on arbitrary bytes.
 *
 * Checked: the return code is one the header lists; on failure nothing is handed out; on
 * success *out is NULL exactly when *n is 0, there is one entry per element of the
 * document's "revoked" array, in order, each with a valid jti equal to the document's and
 * an integral exp equal to the document's.
 */
#include <math.h>
#include <string.h>

#include "acl.h"
#include "dynostore/error.h"
#include "fuzz.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dyno_acl_revoked *v = (struct dyno_acl_revoked *)1;
    size_t n = 12345;
    cJSON *doc = NULL;

    int rc = dyno_acl_revoked_parse((const char *)data, size, &v, &n);
    FUZZ_CHECK(rc == 0 || rc == DYNO_EINVAL || rc == DYNO_ETOOBIG || rc == DYNO_ENOMEM);
    if (rc != 0) {
        FUZZ_CHECK(v == NULL && n == 0);
        return 0;
    }
    FUZZ_CHECK((v == NULL) == (n == 0));
    /* An independent look at the same document. */
    FUZZ_CHECK(dyno_json_parse((const char *)data, size, DYNO_ACL_REVOKED_MAX, &doc) == 0);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "revoked");
    FUZZ_CHECK(cJSON_IsObject(doc) && cJSON_IsArray(list) && (size_t)cJSON_GetArraySize(list) == n);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        const cJSON *exp = cJSON_GetObjectItemCaseSensitive(it, "exp");
        FUZZ_CHECK(strnlen(v[i].jti, sizeof(v[i].jti)) == DYNO_KEY_LEN && dyno_valid_key(v[i].jti));
        const char *jti = dyno_json_str(it, "jti");
        FUZZ_CHECK(jti != NULL && strcmp(v[i].jti, jti) == 0);
        FUZZ_CHECK(cJSON_IsNumber(exp) && exp->valuedouble == floor(exp->valuedouble) &&
                   (double)v[i].exp == exp->valuedouble);
        i++;
    }
    FUZZ_CHECK(i == n);
    cJSON_Delete(doc);
    free(v);
    return 0;
}
