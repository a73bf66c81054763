/*
 * Fuzzes the revocation document parser (dyno_revoked_parse, lib/token.h) on arbitrary bytes.
 *
 * Checked: the return code is one the header lists; on failure nothing is handed out; on
 * success there is one entry per element of the document's "revoked" array and of its
 * "epochs" array (absent: none), in order, each equal to the document's: a valid jti and an
 * integral exp, a valid sub and an integral before; neither array is over
 * DYNO_REVOKED_ENTRIES_MAX.
 */
#include <math.h>
#include <string.h>

#include "dynostore/error.h"
#include "fuzz.h"
#include "json.h"
#include "names.h"
#include "token.h"

/* The integer member name of it equals v. */
static bool same_int(const cJSON *it, const char *name, int64_t v)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, name);
    return cJSON_IsNumber(n) && n->valuedouble == floor(n->valuedouble) && (double)v == n->valuedouble;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dyno_revoked_doc *d = (struct dyno_revoked_doc *)1;
    cJSON *doc = NULL;

    int rc = dyno_revoked_parse(data, size, &d);
    FUZZ_CHECK(rc == 0 || rc == DYNO_EINVAL || rc == DYNO_ETOOBIG || rc == DYNO_ENOMEM);
    if (rc != 0) {
        FUZZ_CHECK(d == NULL);
        return 0;
    }
    FUZZ_CHECK(d != NULL && d->njtis <= DYNO_REVOKED_ENTRIES_MAX && d->nepochs <= DYNO_REVOKED_ENTRIES_MAX);
    FUZZ_CHECK((d->jtis == NULL) == (d->njtis == 0) && (d->epochs == NULL) == (d->nepochs == 0));
    /* An independent look at the same document. */
    FUZZ_CHECK(dyno_json_parse((const char *)data, size, DYNO_REVOKED_DOC_MAX, &doc) == 0);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "revoked");
    const cJSON *epochs = cJSON_GetObjectItemCaseSensitive(doc, "epochs");
    FUZZ_CHECK(cJSON_IsObject(doc) && cJSON_IsArray(list) && (size_t)cJSON_GetArraySize(list) == d->njtis);
    FUZZ_CHECK(epochs == NULL ? d->nepochs == 0
                              : cJSON_IsArray(epochs) && (size_t)cJSON_GetArraySize(epochs) == d->nepochs);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        const char *jti = dyno_json_str(it, "jti");
        FUZZ_CHECK(strnlen(d->jtis[i].jti, sizeof(d->jtis[i].jti)) == DYNO_KEY_LEN &&
                   dyno_valid_key(d->jtis[i].jti));
        FUZZ_CHECK(jti != NULL && strcmp(d->jtis[i].jti, jti) == 0);
        FUZZ_CHECK(same_int(it, "exp", d->jtis[i].exp));
        i++;
    }
    FUZZ_CHECK(i == d->njtis);
    i = 0;
    cJSON_ArrayForEach(it, epochs)
    {
        const char *sub = dyno_json_str(it, "sub");
        FUZZ_CHECK(strnlen(d->epochs[i].sub, sizeof(d->epochs[i].sub)) < sizeof(d->epochs[i].sub) &&
                   dyno_valid_segment(d->epochs[i].sub));
        FUZZ_CHECK(sub != NULL && strcmp(d->epochs[i].sub, sub) == 0);
        FUZZ_CHECK(same_int(it, "before", d->epochs[i].before));
        i++;
    }
    FUZZ_CHECK(i == d->nepochs);
    cJSON_Delete(doc);
    dyno_revoked_free(d);
    return 0;
}
