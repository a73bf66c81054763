/*
 * Unit tests for agents/gateway/s3key.c, the gateway's cache of S3 access keys: a hit within
 * GW_S3KEY_TTL_MS (< 5 s, so a lost revocation message still bites in time), eviction of one
 * key and of all, the order rule (a key.lookup answer that raced an eviction is not stored),
 * revocation messages (good, hostile, not understood), secrets wiped when entries go, and
 * the lookup glue over a fake key.lookup RPC (gw_rpc is defined here: mqtt.c is not linked).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../agents/gateway/s3key.c"
#include "../../agents/gateway/util.c"

#define ID_A "DKAAAAAAAAAAAAAAAAAA"
#define ID_B "DKBBBBBBBBBBBBBBBBBB"
#define SECRET_A "secret-of-a-0123456789012345678901234567"

/* ---- the fake key.lookup ----------------------------------------------------------------- */

static int fake_calls;
static int fake_rc;                    /* what the fake answers: 0 (a key), or an error */
static const char *fake_answer;        /* JSON of the result when fake_rc == 0; NULL: a good one */
static struct gw_s3keys *evict_during; /* an eviction that arrives while the RPC is in flight */

int gw_rpc(struct gw *gw, const char *service, const char *method, const cJSON *params, cJSON **result,
           char *msg, size_t cap)
{
    (void)gw;
    fake_calls++;
    assert_string_equal(service, "auth");
    assert_string_equal(method, "key.lookup");
    const char *id = dyno_json_str(params, "access_key_id");
    assert_non_null(id);
    if (evict_during)
        gw_s3keys_evict(evict_during, id);
    if (fake_rc != 0) {
        snprintf(msg, cap, "fake %s", dyno_err_code(fake_rc));
        return fake_rc;
    }
    char doc[512];
    if (fake_answer)
        snprintf(doc, sizeof(doc), "%s", fake_answer);
    else
        snprintf(doc, sizeof(doc),
                 "{\"access_key_id\":\"%s\",\"user\":\"alice\",\"org\":\"lab/ct\",\"admin\":false,"
                 "\"secret_access_key\":\"" SECRET_A "\"}",
                 id);
    *result = cJSON_Parse(doc);
    assert_non_null(*result);
    return 0;
}

static struct gw *new_gw(void)
{
    struct gw *gw = calloc(1, sizeof(*gw));
    assert_non_null(gw);
    assert_int_equal(gw_s3keys_new(&gw->s3keys), 0);
    fake_calls = 0;
    fake_rc = 0;
    fake_answer = NULL;
    evict_during = NULL;
    return gw;
}

static void free_gw(struct gw *gw)
{
    gw_s3key_free(gw);
    free(gw);
}

static struct gw_s3key key_of(const char *user, const char *secret)
{
    struct gw_s3key k;
    memset(&k, 0, sizeof(k));
    snprintf(k.user, sizeof(k.user), "%s", user);
    snprintf(k.secret, sizeof(k.secret), "%s", secret);
    return k;
}

/* ---- the cache ----------------------------------------------------------------------------- */

static void test_ttl_below_five_seconds(void **state)
{
    (void)state;
    struct gw_s3keys *c = NULL;
    struct gw_s3key k = key_of("alice", SECRET_A), out;
    uint64_t gen;
    assert_true(GW_S3KEY_TTL_MS > 0 && GW_S3KEY_TTL_MS < 5000);
    assert_int_equal(gw_s3keys_new(&c), 0);
    assert_false(gw_s3keys_get(c, ID_A, 1000, &out, &gen));
    gw_s3keys_put(c, ID_A, &k, 1000, gen);
    assert_true(gw_s3keys_get(c, ID_A, 1000 + GW_S3KEY_TTL_MS - 1, &out, &gen));
    assert_string_equal(out.user, "alice");
    assert_string_equal(out.secret, SECRET_A);
    assert_false(gw_s3keys_get(c, ID_B, 1000, &out, &gen));
    /* expired: a miss, and the secret is gone from the slot at once */
    assert_false(gw_s3keys_get(c, ID_A, 1000 + GW_S3KEY_TTL_MS, &out, &gen));
    for (size_t i = 0; i < S3KEY_SLOTS; i++)
        assert_false(c->slot[i].used);
    /* a clock that went back is no hit either */
    gw_s3keys_put(c, ID_A, &k, 5000, gen);
    assert_false(gw_s3keys_get(c, ID_A, 4999, &out, &gen));
    gw_s3keys_free(c);
}

static void test_evict_one_and_all_wipes(void **state)
{
    (void)state;
    struct gw_s3keys *c = NULL;
    struct gw_s3key k = key_of("alice", SECRET_A), out;
    uint64_t gen;
    assert_int_equal(gw_s3keys_new(&c), 0);
    gw_s3keys_get(c, ID_A, 0, &out, &gen);
    gw_s3keys_put(c, ID_A, &k, 0, gen);
    gw_s3keys_put(c, ID_B, &k, 0, gen);
    gw_s3keys_evict(c, ID_A);
    assert_false(gw_s3keys_get(c, ID_A, 1, &out, &gen));
    assert_true(gw_s3keys_get(c, ID_B, 1, &out, &gen));
    gw_s3keys_evict(c, NULL);
    assert_false(gw_s3keys_get(c, ID_B, 1, &out, &gen));
    /* no byte of the secret is left in the cache */
    const unsigned char *p = (const unsigned char *)c->slot;
    for (size_t i = 0; i + 10 <= sizeof(c->slot); i++)
        assert_false(memcmp(p + i, "secret-of-", 10) == 0);
    gw_s3keys_free(c);
}

static void test_put_after_eviction_is_dropped(void **state)
{
    (void)state;
    struct gw_s3keys *c = NULL;
    struct gw_s3key k = key_of("alice", SECRET_A), out;
    uint64_t gen;
    assert_int_equal(gw_s3keys_new(&c), 0);
    assert_false(gw_s3keys_get(c, ID_A, 0, &out, &gen)); /* a lookup starts ... */
    gw_s3keys_evict(c, ID_A);                            /* ... the revocation arrives ... */
    gw_s3keys_put(c, ID_A, &k, 0, gen);                  /* ... its answer comes back */
    assert_false(gw_s3keys_get(c, ID_A, 1, &out, &gen));
    gw_s3keys_free(c);
}

static void test_revocation_messages(void **state)
{
    (void)state;
    struct gw_s3keys *c = NULL;
    struct gw_s3key k = key_of("alice", SECRET_A), out;
    uint64_t gen;
    assert_int_equal(gw_s3keys_new(&c), 0);
#define FILL()                                                                                               \
    do {                                                                                                     \
        gw_s3keys_get(c, ID_A, 0, &out, &gen);                                                               \
        gw_s3keys_put(c, ID_A, &k, 0, gen);                                                                  \
        gw_s3keys_put(c, ID_B, &k, 0, gen);                                                                  \
    } while (0)
#define APPLY(s) gw_s3keys_on_revoked(c, s, strlen(s))
    FILL();
    APPLY("{\"revoked\":[\"" ID_A "\"]}");
    assert_false(gw_s3keys_get(c, ID_A, 1, &out, &gen));
    assert_true(gw_s3keys_get(c, ID_B, 1, &out, &gen));
    /* entries that are not ids are skipped; the others apply */
    FILL();
    APPLY("{\"revoked\":[5,null,\"../x\",\"dkbbbbbbbbbbbbbbbbbb\",\"" ID_B "\"]}");
    assert_true(gw_s3keys_get(c, ID_A, 1, &out, &gen));
    assert_false(gw_s3keys_get(c, ID_B, 1, &out, &gen));
    /* a message not understood drops everything (some key may be revoked) */
    static const char *const bad[] = {"", "{", "[]", "{\"revoked\":\"" ID_A "\"}", "{\"other\":[]}", "null"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        FILL();
        gw_s3keys_on_revoked(c, bad[i], strlen(bad[i]));
        assert_false(gw_s3keys_get(c, ID_A, 1, &out, &gen));
        assert_false(gw_s3keys_get(c, ID_B, 1, &out, &gen));
    }
    /* oversized: not parsed, everything dropped */
    size_t big = S3KEY_REVOKED_MAX + 16;
    char *doc = malloc(big + 1);
    assert_non_null(doc);
    memset(doc, ' ', big);
    memcpy(doc, "{\"revoked\":[]}", 14);
    doc[big] = '\0';
    FILL();
    gw_s3keys_on_revoked(c, doc, big);
    assert_false(gw_s3keys_get(c, ID_A, 1, &out, &gen));
    free(doc);
    gw_s3keys_free(c);
#undef FILL
#undef APPLY
}

/* ---- the lookup glue ------------------------------------------------------------------------ */

static void test_lookup_caches_and_answers(void **state)
{
    (void)state;
    struct gw *gw = new_gw();
    char user[DYNO_SEG_MAX + 1], secret[GW_S3KEY_SECRET_MAX + 1];
    assert_int_equal(gw_s3key_lookup(gw, ID_A, user, sizeof(user), secret, sizeof(secret)), 0);
    assert_string_equal(user, "alice");
    assert_string_equal(secret, SECRET_A);
    assert_int_equal(gw_s3key_lookup(gw, ID_A, user, sizeof(user), secret, sizeof(secret)), 0);
    assert_int_equal(fake_calls, 1); /* the second from the cache */
    struct gw_s3key k;
    assert_int_equal(gw_s3key_get(gw, ID_A, &k), 0);
    assert_string_equal(k.org, "lab/ct");
    assert_false(k.admin);
    /* revoked: the next lookup asks again and gets not_found */
    gw_s3keys_on_revoked(gw->s3keys, "{\"revoked\":[\"" ID_A "\"]}", strlen("{\"revoked\":[\"" ID_A "\"]}"));
    fake_rc = DYNO_ENOTFOUND;
    assert_int_equal(gw_s3key_lookup(gw, ID_A, user, sizeof(user), secret, sizeof(secret)), DYNO_ENOTFOUND);
    assert_int_equal(fake_calls, 2);
    /* not found is not cached: a key created later is found */
    fake_rc = 0;
    assert_int_equal(gw_s3key_lookup(gw, ID_A, user, sizeof(user), secret, sizeof(secret)), 0);
    /* buffers too small: refused, nothing half-copied */
    assert_int_equal(gw_s3key_lookup(gw, ID_A, user, 5, secret, sizeof(secret)), DYNO_EINVAL);
    assert_int_equal(gw_s3key_lookup(gw, ID_A, user, sizeof(user), secret, 40), DYNO_EINVAL);
    free_gw(gw);
}

static void test_lookup_errors(void **state)
{
    (void)state;
    struct gw *gw = new_gw();
    char user[DYNO_SEG_MAX + 1], secret[GW_S3KEY_SECRET_MAX + 1];
    /* malformed ids cost no RPC */
    static const char *const bad[] = {"",
                                      "AKIAIOSFODNN7EXAMPLE",
                                      "DKAAAAAAAAAAAAAAAAA",
                                      "DKAAAAAAAAAAAAAAAAAAA",
                                      "dkaaaaaaaaaaaaaaaaaa",
                                      "DKAAAAAAAAAAAAAAAA%41"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(gw_s3key_lookup(gw, bad[i], user, sizeof(user), secret, sizeof(secret)),
                         DYNO_ENOTFOUND);
    assert_int_equal(gw_s3key_lookup(gw, NULL, user, sizeof(user), secret, sizeof(secret)), DYNO_ENOTFOUND);
    assert_int_equal(fake_calls, 0);
    /* auth unreachable: its error, nothing cached */
    fake_rc = DYNO_EUNAVAIL;
    assert_int_equal(gw_s3key_lookup(gw, ID_A, user, sizeof(user), secret, sizeof(secret)), DYNO_EUNAVAIL);
    fake_rc = 0;
    /* answers that are no key: a protocol error, nothing cached */
    static const char *const odd[] = {
        "{}",
        "{\"access_key_id\":\"" ID_B "\",\"user\":\"alice\",\"secret_access_key\":\"s\"}", /* another id */
        "{\"access_key_id\":\"" ID_A "\",\"user\":\"../x\",\"secret_access_key\":\"s\"}",
        "{\"access_key_id\":\"" ID_A "\",\"user\":\"alice\",\"secret_access_key\":\"\"}",
        "{\"access_key_id\":\"" ID_A "\",\"user\":\"alice\",\"secret_access_key\":\"s\",\"admin\":\"yes\"}",
    };
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        fake_answer = odd[i];
        assert_int_equal(gw_s3key_lookup(gw, ID_A, user, sizeof(user), secret, sizeof(secret)), DYNO_EPROTO);
    }
    fake_answer = NULL;
    int before = fake_calls;
    /* a lookup that raced a revocation answers, but what it read is not kept */
    evict_during = gw->s3keys;
    assert_int_equal(gw_s3key_lookup(gw, ID_A, user, sizeof(user), secret, sizeof(secret)), 0);
    evict_during = NULL;
    assert_int_equal(gw_s3key_lookup(gw, ID_A, user, sizeof(user), secret, sizeof(secret)), 0);
    assert_int_equal(fake_calls, before + 2);
    /* a reconnect forgets everything */
    gw_s3key_flush(gw);
    assert_int_equal(gw_s3key_lookup(gw, ID_A, user, sizeof(user), secret, sizeof(secret)), 0);
    assert_int_equal(fake_calls, before + 3);
    free_gw(gw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ttl_below_five_seconds),        cmocka_unit_test(test_evict_one_and_all_wipes),
        cmocka_unit_test(test_put_after_eviction_is_dropped), cmocka_unit_test(test_revocation_messages),
        cmocka_unit_test(test_lookup_caches_and_answers),     cmocka_unit_test(test_lookup_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
