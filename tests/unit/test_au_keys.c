/*
 * Unit tests of S3 access keys in dyno-auth (agents/auth/au_seal.c, au_keys.c and their rows
 * in au_store.c): the sealing of a secret under the master key (round trip, another master
 * key, another key id as AAD, any changed byte), the master key file (made 0600 once, read
 * back, refused when malformed), and the key.* RPCs on an in-memory database without a broker
 * (ctx.mq is NULL: a revocation publishes nothing and still succeeds, gateways fall back on
 * their cache TTL).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../agents/auth/au_limit.c"
#include "../../agents/auth/au_store.c"
#include "../../agents/auth/au_feed.c"
#include "../../agents/auth/au_rpc.c"
#include "../../agents/auth/au_seal.c"
#include "../../agents/auth/au_keys.c"
#include "agent_fixture.h"

#define SECRET "0123456789abcdefghijABCDEFGHIJ-_0123456"
#define ID_A "DKAAAAAAAAAAAAAAAAAA"
#define ID_B "DKBBBBBBBBBBBBBBBBBB"

static const uint8_t MASTER[AU_MASTER_LEN] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                              17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

/* True when needle (a string) occurs in buf[0..n). */
static bool contains(const void *buf, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        if (memcmp((const char *)buf + i, needle, m) == 0)
            return true;
    }
    return false;
}

/* ---- sealing --------------------------------------------------------------------------- */

static size_t seal(const uint8_t *key, const char *aad, uint8_t *out)
{
    size_t n = 0;
    assert_int_equal(
        au_seal(key, aad, (const uint8_t *)SECRET, strlen(SECRET), out, 40 + AU_SEAL_OVERHEAD, &n), 0);
    assert_int_equal(n, strlen(SECRET) + AU_SEAL_OVERHEAD);
    return n;
}

static void test_seal_round_trip(void **state)
{
    (void)state;
    uint8_t a[128], b[128], pt[64];
    size_t n = seal(MASTER, ID_A, a), m = 0;
    /* the secret is not in the sealed bytes, and two seals differ (fresh nonce) */
    assert_false(contains(a, n, SECRET));
    assert_false(contains(a, n, "0123456789"));
    seal(MASTER, ID_A, b);
    assert_memory_not_equal(a, b, n);
    assert_int_equal(au_seal_open(MASTER, ID_A, a, n, pt, sizeof(pt), &m), 0);
    assert_int_equal(m, strlen(SECRET));
    assert_memory_equal(pt, SECRET, m);
    assert_int_equal(au_seal_open(MASTER, ID_A, b, n, pt, sizeof(pt), &m), 0);
    assert_memory_equal(pt, SECRET, m);
}

static void test_seal_wrong_master_key_fails(void **state)
{
    (void)state;
    uint8_t a[128], pt[64], other[AU_MASTER_LEN];
    size_t n = seal(MASTER, ID_A, a), m = 0;
    memcpy(other, MASTER, sizeof(other));
    other[31] ^= 1; /* one bit */
    memset(pt, 'x', sizeof(pt));
    assert_int_equal(au_seal_open(other, ID_A, a, n, pt, sizeof(pt), &m), DYNO_ECORRUPT);
    assert_false(contains(pt, sizeof(pt), "0123456789")); /* nothing of it is left in pt */
}

static void test_seal_other_key_id_fails(void **state)
{
    (void)state;
    uint8_t a[128], pt[64];
    size_t n = seal(MASTER, ID_A, a), m = 0;
    /* a sealed secret copied into another key's row does not open there */
    assert_int_equal(au_seal_open(MASTER, ID_B, a, n, pt, sizeof(pt), &m), DYNO_ECORRUPT);
}

static void test_seal_tampered_fails(void **state)
{
    (void)state;
    uint8_t a[128], t[128], pt[64];
    size_t n = seal(MASTER, ID_A, a), m = 0;
    /* every byte: nonce, ciphertext and tag */
    for (size_t i = 0; i < n; i++) {
        memcpy(t, a, n);
        t[i] ^= 0x40;
        assert_int_equal(au_seal_open(MASTER, ID_A, t, n, pt, sizeof(pt), &m), DYNO_ECORRUPT);
    }
    /* cut short, or no room: refused, never read past */
    assert_int_equal(au_seal_open(MASTER, ID_A, a, n - 1, pt, sizeof(pt), &m), DYNO_ECORRUPT);
    assert_int_equal(au_seal_open(MASTER, ID_A, a, AU_SEAL_OVERHEAD - 1, pt, sizeof(pt), &m), DYNO_EINVAL);
    assert_int_equal(au_seal_open(MASTER, ID_A, a, n, pt, 10, &m), DYNO_EINVAL);
    assert_int_equal(au_seal(MASTER, ID_A, (const uint8_t *)SECRET, 40, t, 40, &m), DYNO_EINVAL);
}

static void test_master_key_file(void **state)
{
    (void)state;
    char dir[64], path[128];
    uint8_t k1[AU_MASTER_LEN], k2[AU_MASTER_LEN];
    bool created = false;
    snprintf(dir, sizeof(dir), "/tmp/test_au_keys.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/s3-master.key", dir);

    assert_int_equal(au_seal_master_load(path, false, k1, &created), DYNO_ENOTFOUND);
    assert_int_equal(au_seal_master_load(path, true, k1, &created), 0);
    assert_true(created);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* read back, not made again */
    assert_int_equal(au_seal_master_load(path, true, k2, &created), 0);
    assert_false(created);
    assert_memory_equal(k1, k2, AU_MASTER_LEN);

    static const char *const bad[] = {"", "00",
                                      "zz00000000000000000000000000000000000000000000000000000000000000",
                                      "000000000000000000000000000000000000000000000000000000000000000000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(dyno_write_file(path, bad[i], strlen(bad[i]), 0600), 0);
        assert_int_equal(au_seal_master_load(path, true, k2, &created), DYNO_ECORRUPT);
        assert_false(created);
    }
    unlink(path);
    rmdir(dir);
}

/* ---- the RPCs -------------------------------------------------------------------------- */

struct fx {
    struct au_ctx ctx;
    char err[256];
};

static int setup(void **state)
{
    static struct fx f;
    memset(&f, 0, sizeof(f));
    assert_int_equal(au_store_open(":memory:", &f.ctx.store), 0);
    assert_int_equal(pthread_mutex_init(&f.ctx.feed_mu, NULL), 0);
    memcpy(f.ctx.s3_master, MASTER, sizeof(MASTER));
    f.ctx.s3_master_ok = true;
    f.ctx.keys_max = 3;
    static const char *const users[] = {"alice", "bob", "admin"};
    for (size_t i = 0; i < 3; i++) {
        struct au_user u;
        memset(&u, 0, sizeof(u));
        snprintf(u.username, sizeof(u.username), "%s", users[i]);
        u.admin = i == 2;
        u.iterations = 1;
        assert_int_equal(au_user_create(f.ctx.store, &u, f.err, sizeof(f.err)), 0);
    }
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    au_store_close(f->ctx.store);
    pthread_mutex_destroy(&f->ctx.feed_mu);
    return 0;
}

static int call(struct fx *f, const char *method, const char *req, cJSON **res)
{
    return fx_rpc_call(au_rpc_methods, au_rpc_nmethods, &f->ctx, method, req, res, f->err, sizeof(f->err));
}

#define AS(user) "\"caller\":{\"sub\":\"" user "\",\"admin\":false}"
#define AS_ADMIN "\"caller\":{\"sub\":\"admin\",\"admin\":true}"

/* key.create as user: the new id into id (21 bytes) and secret (41). */
static void create(struct fx *f, const char *req, char *id, char *secret)
{
    cJSON *res = NULL;
    assert_int_equal(call(f, "key.create", req, &res), 0);
    const char *i = dyno_json_str(res, "access_key_id"), *s = dyno_json_str(res, "secret_access_key");
    assert_true(dyno_valid_access_key_id(i));
    assert_int_equal(strlen(s), AU_KEY_SECRET_LEN);
    strcpy(id, i);
    strcpy(secret, s);
    cJSON_Delete(res);
}

static int nkeys(struct fx *f, const char *req)
{
    cJSON *res = NULL;
    assert_int_equal(call(f, "key.list", req, &res), 0);
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(res, "keys"));
    /* never a secret, and never the sealed bytes */
    char *text = cJSON_PrintUnformatted(res);
    assert_null(strstr(text, "secret"));
    assert_null(strstr(text, "sealed"));
    free(text);
    cJSON_Delete(res);
    return n;
}

static void test_rpc_create_lookup_revoke(void **state)
{
    struct fx *f = *state;
    char id[32], secret[64], req[256];
    cJSON *res = NULL;
    create(f, "{" AS("alice") ",\"description\":\"laptop\"}", id, secret);
    /* the row holds the sealed secret, not the secret */
    assert_int_equal(fx_count_rows(f->ctx.store->db, "SELECT count(*) FROM s3keys WHERE length(sealed) = 68"),
                     1);
    snprintf(req, sizeof(req),
             "SELECT count(*) FROM s3keys WHERE instr(sealed, '%s') > 0 OR instr(description, '%s') > 0",
             secret, secret);
    assert_int_equal(fx_count_rows(f->ctx.store->db, req), 0);

    snprintf(req, sizeof(req), "{\"access_key_id\":\"%s\"}", id);
    assert_int_equal(call(f, "key.lookup", req, &res), 0);
    assert_string_equal(dyno_json_str(res, "user"), "alice");
    assert_string_equal(dyno_json_str(res, "secret_access_key"), secret);
    assert_string_equal(dyno_json_str(res, "org"), "");
    assert_false(dyno_json_bool(res, "admin", true));
    cJSON_Delete(res);
    assert_int_equal(nkeys(f, "{" AS("alice") "}"), 1);
    assert_int_equal(nkeys(f, "{" AS("bob") "}"), 0);

    /* bob may neither revoke nor list it */
    snprintf(req, sizeof(req), "{" AS("bob") ",\"access_key_id\":\"%s\"}", id);
    assert_int_equal(call(f, "key.revoke", req, NULL), DYNO_EFORBIDDEN);
    assert_int_equal(call(f, "key.list", "{" AS("bob") ",\"user\":\"alice\"}", NULL), DYNO_EFORBIDDEN);
    assert_int_equal(call(f, "key.list", "{" AS("bob") ",\"all\":true}", NULL), DYNO_EFORBIDDEN);
    assert_int_equal(nkeys(f, "{" AS_ADMIN ",\"user\":\"alice\"}"), 1);
    assert_int_equal(nkeys(f, "{" AS_ADMIN ",\"all\":true}"), 1);

    /* revoked: lookup fails, the sealed secret is gone from the row, a repeat is answered */
    snprintf(req, sizeof(req), "{" AS("alice") ",\"access_key_id\":\"%s\"}", id);
    assert_int_equal(call(f, "key.revoke", req, NULL), 0);
    assert_int_equal(call(f, "key.revoke", req, NULL), 0);
    snprintf(req, sizeof(req), "{\"access_key_id\":\"%s\"}", id);
    assert_int_equal(call(f, "key.lookup", req, NULL), DYNO_ENOTFOUND);
    assert_int_equal(fx_count_rows(f->ctx.store->db, "SELECT count(*) FROM s3keys WHERE sealed IS NOT NULL"),
                     0);
    assert_int_equal(nkeys(f, "{" AS("alice") "}"), 0);
    assert_int_equal(call(f, "key.lookup", "{\"access_key_id\":\"" ID_A "\"}", NULL), DYNO_ENOTFOUND);
}

static void test_rpc_lookup_refuses_a_tampered_row(void **state)
{
    struct fx *f = *state;
    char id[32], secret[64], req[256];
    create(f, "{" AS("alice") "}", id, secret);
    /* another key's sealed secret moved into this row: no secret comes out */
    char id2[32], secret2[64];
    create(f, "{" AS("bob") "}", id2, secret2);
    snprintf(req, sizeof(req),
             "UPDATE s3keys SET sealed = (SELECT sealed FROM s3keys WHERE id = '%s') WHERE id = '%s'", id2,
             id);
    assert_int_equal(sqlite3_exec(dyno_db_sqlite(f->ctx.store->db), req, NULL, NULL, NULL), SQLITE_OK);
    snprintf(req, sizeof(req), "{\"access_key_id\":\"%s\"}", id);
    assert_int_equal(call(f, "key.lookup", req, NULL), DYNO_EINTERNAL);
    assert_null(strstr(f->err, secret2));
    /* and another master key opens nothing */
    f->ctx.s3_master[0] ^= 1;
    snprintf(req, sizeof(req), "{\"access_key_id\":\"%s\"}", id2);
    assert_int_equal(call(f, "key.lookup", req, NULL), DYNO_EINTERNAL);
    f->ctx.s3_master[0] ^= 1;
    assert_int_equal(call(f, "key.lookup", req, NULL), 0);
}

static void test_rpc_limit_and_bad_input(void **state)
{
    struct fx *f = *state;
    char id[32], secret[64], req[512];
    for (int i = 0; i < 3; i++)
        create(f, "{" AS("bob") "}", id, secret);
    assert_int_equal(call(f, "key.create", "{" AS("bob") "}", NULL), DYNO_ETOOBIG);
    assert_int_equal(nkeys(f, "{" AS("bob") "}"), 3);
    snprintf(req, sizeof(req), "{" AS("bob") ",\"access_key_id\":\"%s\"}", id);
    assert_int_equal(call(f, "key.revoke", req, NULL), 0);
    create(f, "{" AS("bob") "}", id, secret); /* a revoked key made room */

    static const char *const bad[] = {
        "{" AS("alice") ",\"description\":5}",
        "{" AS("alice") ",\"description\":\"a\\u0007b\"}",
        "{" AS("alice") ",\"description\":\"a\\nb\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(call(f, "key.create", bad[i], NULL), DYNO_EINVAL);
    char big[400];
    fx_fill(big, 258, 'd');
    snprintf(req, sizeof(req), "{" AS("alice") ",\"description\":\"%s\"}", big);
    assert_int_equal(call(f, "key.create", req, NULL), DYNO_EINVAL);
    fx_fill(big, 257, 'd'); /* 256 bytes: the limit itself */
    snprintf(req, sizeof(req), "{" AS("alice") ",\"description\":\"%s\"}", big);
    create(f, req, id, secret);
    assert_int_equal(call(f, "key.create", "{}", NULL), DYNO_EUNAUTH);
    assert_int_equal(call(f, "key.create", "{\"caller\":{\"sub\":\"nobody\"}}", NULL), DYNO_EFORBIDDEN);
    static const char *const ids[] = {"\"\"",
                                      "7",
                                      "null",
                                      "\"dkaaaaaaaaaaaaaaaaaa\"",
                                      "\"DKAAAAAAAAAAAAAAAAA\"",
                                      "\"DKAAAAAAAAAAAAAAAAAAA\"",
                                      "\"AKIAAAAAAAAAAAAAAAAA\"",
                                      "\"DKAAAAAAAAAAAAAAAA/A\""};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        snprintf(req, sizeof(req), "{" AS("alice") ",\"access_key_id\":%s}", ids[i]);
        assert_int_equal(call(f, "key.revoke", req, NULL), DYNO_EINVAL);
        assert_int_equal(call(f, "key.lookup", req, NULL), DYNO_EINVAL);
    }
    assert_int_equal(call(f, "key.list", "{" AS("alice") ",\"user\":\"../x\"}", NULL), DYNO_EINVAL);
    assert_int_equal(call(f, "key.list", "{" AS_ADMIN ",\"user\":\"bob\",\"all\":true}", NULL), DYNO_EINVAL);
    assert_int_equal(call(f, "key.list", "{" AS("alice") ",\"all\":1}", NULL), DYNO_EINVAL);
    assert_int_equal(nkeys(f, "{" AS("alice") "}"), 1);
    assert_int_equal(nkeys(f, "{" AS("bob") "}"), 3);
}

static void test_rpc_without_master_key(void **state)
{
    struct fx *f = *state;
    f->ctx.s3_master_ok = false;
    assert_int_equal(call(f, "key.create", "{" AS("alice") "}", NULL), DYNO_EUNAVAIL);
    assert_int_equal(call(f, "key.lookup", "{\"access_key_id\":\"" ID_A "\"}", NULL), DYNO_EUNAVAIL);
    assert_int_equal(fx_count_rows(f->ctx.store->db, "SELECT count(*) FROM s3keys"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_round_trip),
        cmocka_unit_test(test_seal_wrong_master_key_fails),
        cmocka_unit_test(test_seal_other_key_id_fails),
        cmocka_unit_test(test_seal_tampered_fails),
        cmocka_unit_test(test_master_key_file),
        cmocka_unit_test_setup_teardown(test_rpc_create_lookup_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_lookup_refuses_a_tampered_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_limit_and_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_without_master_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
