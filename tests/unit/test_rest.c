/* Unit tests of lib/rest.c: the REST route grammar (every route and each catalog
 * sub-resource in the "~" and the SPEC form, catalogs named like sub-resources, the reserved
 * words of new catalogs), formatting, query values, headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dynostore/error.h"
#include "rest.h"

#define KEY "0123456789abcdef0123456789abcdef"

/* Parses path, expects kind, the given fields and spec_form, and checks that it formats back
 * to want (NULL: the path itself) and that this parses to the same route in the "~" form. */
static void route_check(const char *path, bool spec_form, enum dyno_rest_kind kind, const char *catalog,
                        const char *id, const char *name, const char *want)
{
    struct dyno_rest_route r, again;
    const char *why = NULL;
    char out[DYNO_REST_PATH_MAX];
    int rc = dyno_rest_route_parse(path, &r, &why);
    if (rc != 0)
        fail_msg("%s: %s (%s)", path, dyno_strerror(rc), why);
    if (r.kind != kind)
        fail_msg("%s: kind %s, want %s", path, dyno_rest_kind_name(r.kind), dyno_rest_kind_name(kind));
    assert_string_equal(r.catalog, catalog ? catalog : "");
    assert_string_equal(r.id, id ? id : "");
    assert_string_equal(r.name, name ? name : "");
    if (r.spec_form != spec_form)
        fail_msg("%s: spec_form %d, want %d", path, r.spec_form, spec_form);
    assert_int_equal(dyno_rest_route_format(&r, out, sizeof(out)), 0);
    assert_string_equal(out, want ? want : path);
    assert_int_equal(dyno_rest_route_parse(out, &again, NULL), 0);
    assert_false(again.spec_form);
    r.spec_form = false;
    assert_memory_equal(&r, &again, sizeof(r));
}

/* A path of the "~" form, or a route that is not a catalog's. */
static void route_ok(const char *path, enum dyno_rest_kind kind, const char *catalog, const char *id,
                     const char *name, const char *want)
{
    route_check(path, false, kind, catalog, id, name, want);
}

/* A path of the SPEC form: the same route as its "~" form, canonical. */
static void spec_ok(const char *path, enum dyno_rest_kind kind, const char *catalog, const char *name,
                    const char *canonical)
{
    route_check(path, true, kind, catalog, NULL, name, canonical);
}

static void route_err(const char *path, int want)
{
    struct dyno_rest_route r;
    const char *why = NULL;
    int rc = dyno_rest_route_parse(path, &r, &why);
    if (rc != want)
        fail_msg("%s: %s, want %s", path, dyno_strerror(rc), dyno_strerror(want));
    assert_int_equal(r.kind, DYNO_REST_NONE);
    assert_non_null(why);
    assert_true(why[0] != '\0');
}

static void test_fixed_routes(void **state)
{
    (void)state;
    route_ok("/healthz", DYNO_REST_HEALTHZ, NULL, NULL, NULL, NULL);
    route_ok("/metrics", DYNO_REST_METRICS, NULL, NULL, NULL, NULL);
    route_ok("/v1/auth/login", DYNO_REST_LOGIN, NULL, NULL, NULL, NULL);
    route_ok("/v1/auth/whoami", DYNO_REST_WHOAMI, NULL, NULL, NULL, NULL);
    route_ok("/v1/users", DYNO_REST_USERS, NULL, NULL, NULL, NULL);
    route_ok("/v1/tokens", DYNO_REST_TOKENS, NULL, NULL, NULL, NULL);
    route_ok("/v1/tokens/" KEY, DYNO_REST_TOKEN, NULL, KEY, NULL, NULL);
    route_ok("/v1/catalogs", DYNO_REST_CATALOGS, NULL, NULL, NULL, NULL);
    route_ok("/v1/objects/" KEY, DYNO_REST_OBJECT, NULL, KEY, NULL, NULL);
    route_ok("/v1/objects/" KEY "/meta", DYNO_REST_OBJECT_META, NULL, KEY, NULL, NULL);
    route_ok("/v1/containers", DYNO_REST_CONTAINERS, NULL, NULL, NULL, NULL);
    route_ok("/v1/containers/c1/drain", DYNO_REST_CONTAINER_DRAIN, NULL, NULL, "c1", NULL);
    route_ok("/v1/admin/repair", DYNO_REST_ADMIN_REPAIR, NULL, NULL, NULL, NULL);
    route_ok("/v1/admin/rebuild-metadata", DYNO_REST_ADMIN_REBUILD, NULL, NULL, NULL, NULL);
    route_ok("/v1/events", DYNO_REST_EVENTS, NULL, NULL, NULL, NULL);
    route_ok("/v1/keys", DYNO_REST_KEYS, NULL, NULL, NULL, NULL);
    route_ok("/v1/keys/DKABCDEFGHIJ01234567", DYNO_REST_KEY, NULL, NULL, "DKABCDEFGHIJ01234567", NULL);
}

static void test_catalog_sub_resources(void **state)
{
    (void)state;
    route_ok("/v1/catalogs/alice/a/~", DYNO_REST_CATALOG, "alice/a", NULL, NULL, NULL);
    route_ok("/v1/catalogs/alice/a/b/c/~", DYNO_REST_CATALOG, "alice/a/b/c", NULL, NULL, NULL);
    route_ok("/v1/catalogs/alice/a/~/objects", DYNO_REST_CATALOG_OBJECTS, "alice/a", NULL, NULL, NULL);
    route_ok("/v1/catalogs/alice/a/~/shares", DYNO_REST_CATALOG_SHARES, "alice/a", NULL, NULL, NULL);
    route_ok("/v1/catalogs/alice/a/~/shares/bob", DYNO_REST_CATALOG_SHARE, "alice/a", NULL, "bob", NULL);
    route_ok("/v1/catalogs/alice/a/~/shares/lab%2Fct", DYNO_REST_CATALOG_SHARE, "alice/a", NULL, "lab/ct",
             NULL);
    route_ok("/v1/catalogs/alice/a/~/subscription", DYNO_REST_CATALOG_SUBSCRIPTION, "alice/a", NULL, NULL,
             NULL);
    /* an escaped "~" is the separator too, and formats back as the literal */
    route_ok("/v1/catalogs/alice/a/%7E/objects", DYNO_REST_CATALOG_OBJECTS, "alice/a", NULL, NULL,
             "/v1/catalogs/alice/a/~/objects");
    route_ok("/v1/catalogs/al%69ce/a/%7e", DYNO_REST_CATALOG, "alice/a", NULL, NULL,
             "/v1/catalogs/alice/a/~");
}

/* SPEC §4's paths: the reserved words at the end name the sub-resource, and each is the same
 * route as its "~" form, which the formatter writes. */
static void test_spec_form(void **state)
{
    (void)state;
    spec_ok("/v1/catalogs/alice/a", DYNO_REST_CATALOG, "alice/a", NULL, "/v1/catalogs/alice/a/~");
    spec_ok("/v1/catalogs/alice/a/b/c", DYNO_REST_CATALOG, "alice/a/b/c", NULL, "/v1/catalogs/alice/a/b/c/~");
    spec_ok("/v1/catalogs/alice/a/objects", DYNO_REST_CATALOG_OBJECTS, "alice/a", NULL,
            "/v1/catalogs/alice/a/~/objects");
    spec_ok("/v1/catalogs/alice/a/b/shares", DYNO_REST_CATALOG_SHARES, "alice/a/b", NULL,
            "/v1/catalogs/alice/a/b/~/shares");
    spec_ok("/v1/catalogs/alice/a/shares/bob", DYNO_REST_CATALOG_SHARE, "alice/a", "bob",
            "/v1/catalogs/alice/a/~/shares/bob");
    spec_ok("/v1/catalogs/alice/a/shares/lab%2Fct", DYNO_REST_CATALOG_SHARE, "alice/a", "lab/ct",
            "/v1/catalogs/alice/a/~/shares/lab%2Fct");
    spec_ok("/v1/catalogs/alice/a/subscription", DYNO_REST_CATALOG_SUBSCRIPTION, "alice/a", NULL,
            "/v1/catalogs/alice/a/~/subscription");
    /* a principal named like a word: .../shares/<principal> is read first */
    spec_ok("/v1/catalogs/o/a/shares/shares", DYNO_REST_CATALOG_SHARE, "o/a", "shares",
            "/v1/catalogs/o/a/~/shares/shares");
    spec_ok("/v1/catalogs/o/a/shares/objects", DYNO_REST_CATALOG_SHARE, "o/a", "objects",
            "/v1/catalogs/o/a/~/shares/objects");
    spec_ok("/v1/catalogs/o/a/shares/subscription", DYNO_REST_CATALOG_SHARE, "o/a", "subscription",
            "/v1/catalogs/o/a/~/shares/subscription");
    /* segments are decoded first: an escaped word is the word */
    spec_ok("/v1/catalogs/o/a/%73hares/bob", DYNO_REST_CATALOG_SHARE, "o/a", "bob",
            "/v1/catalogs/o/a/~/shares/bob");
    /* words are exact bytes */
    spec_ok("/v1/catalogs/o/Objects", DYNO_REST_CATALOG, "o/Objects", NULL, "/v1/catalogs/o/Objects/~");
    spec_ok("/v1/catalogs/o/objects2/shares.x", DYNO_REST_CATALOG, "o/objects2/shares.x", NULL,
            "/v1/catalogs/o/objects2/shares.x/~");
    spec_ok("/v1/catalogs/o/1/2/3/4/5/6/7/8/shares/lab%2Fa%2Fb", DYNO_REST_CATALOG_SHARE, "o/1/2/3/4/5/6/7/8",
            "lab/a/b", "/v1/catalogs/o/1/2/3/4/5/6/7/8/~/shares/lab%2Fa%2Fb");
}

/* A catalog with a reserved segment (created before the words were reserved) is reached with
 * the "~" form only: without it, the path is a sub-resource or no route, never that catalog. */
static void test_catalogs_named_like_sub_resources(void **state)
{
    (void)state;
    route_ok("/v1/catalogs/o/a/shares/x/~", DYNO_REST_CATALOG, "o/a/shares/x", NULL, NULL, NULL);
    route_ok("/v1/catalogs/o/objects/~", DYNO_REST_CATALOG, "o/objects", NULL, NULL, NULL);
    route_ok("/v1/catalogs/o/a/shares/~", DYNO_REST_CATALOG, "o/a/shares", NULL, NULL, NULL);
    route_ok("/v1/catalogs/o/shares/~/shares/shares", DYNO_REST_CATALOG_SHARE, "o/shares", NULL, "shares",
             NULL);
    route_ok("/v1/catalogs/o/objects/~/objects", DYNO_REST_CATALOG_OBJECTS, "o/objects", NULL, NULL, NULL);
    route_ok("/v1/catalogs/o/a/subscription/~/subscription", DYNO_REST_CATALOG_SUBSCRIPTION,
             "o/a/subscription", NULL, NULL, NULL);
    route_ok("/v1/catalogs/objects/a/~", DYNO_REST_CATALOG, "objects/a", NULL, NULL, NULL);
    /* the SPEC form of the same: the share x of o/a, the objects of o/a, ... */
    spec_ok("/v1/catalogs/o/a/shares/x", DYNO_REST_CATALOG_SHARE, "o/a", "x", "/v1/catalogs/o/a/~/shares/x");
    spec_ok("/v1/catalogs/o/a/shares", DYNO_REST_CATALOG_SHARES, "o/a", NULL, "/v1/catalogs/o/a/~/shares");
    /* ... or refused, pointing to "~", when the catalog before the words has a reserved
     * segment or is no catalog */
    static const char *const refused[] = {
        "/v1/catalogs/o/objects",
        "/v1/catalogs/o/subscription",
        "/v1/catalogs/o/shares",
        "/v1/catalogs/o/objects/x",
        "/v1/catalogs/o/a/shares/x/y",
        "/v1/catalogs/o/a/objects/shares",
        "/v1/catalogs/o/subscription/a/objects",
        "/v1/catalogs/objects/a",
        "/v1/catalogs/o/shares/shares/x",
        "/v1/catalogs/o/a/%6fbjects/b",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        struct dyno_rest_route r;
        const char *why = NULL;
        int rc = dyno_rest_route_parse(refused[i], &r, &why);
        if (rc != DYNO_EINVAL || !why || !strstr(why, "/~"))
            fail_msg("%s: %s (%s), want bad_request pointing to ~", refused[i], dyno_strerror(rc), why);
        assert_int_equal(r.kind, DYNO_REST_NONE);
    }
}

/* Only new catalogs are checked for reserved segments (the general validator is unchanged). */
static void test_catalog_creatable(void **state)
{
    (void)state;
    const char *why = NULL;
    static const char *const ok[] = {"alice/a",        "alice/a/b/c", "alice/Objects",
                                     "alice/objects2", "alice/share", "alice/my-subscription"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (dyno_rest_catalog_creatable(ok[i], &why) != 0)
            fail_msg("%s: %s", ok[i], why);
    static const char *const reserved[] = {"alice/objects", "alice/a/shares", "alice/subscription/x",
                                           "objects/a",     "shares/a/b",     "alice/a/b/c/d/e/f/g/objects"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        why = NULL;
        assert_int_equal(dyno_rest_catalog_creatable(reserved[i], &why), DYNO_EINVAL);
        assert_string_equal(why, DYNO_REST_RESERVED_WHY);
        assert_true(dyno_valid_catalog(reserved[i])); /* existing ones stay valid everywhere else */
    }
    assert_int_equal(dyno_rest_catalog_creatable("alice", &why), DYNO_EINVAL);
    assert_string_not_equal(why, DYNO_REST_RESERVED_WHY);
    assert_int_equal(dyno_rest_catalog_creatable("alice/a%2Fobjects", NULL), DYNO_EINVAL);
    assert_int_equal(dyno_rest_catalog_creatable(NULL, NULL), DYNO_EINVAL);
    assert_true(dyno_rest_reserved("objects") && dyno_rest_reserved("shares") &&
                dyno_rest_reserved("subscription"));
    assert_false(dyno_rest_reserved("object") || dyno_rest_reserved("SHARES") || dyno_rest_reserved("") ||
                 dyno_rest_reserved(NULL) || dyno_rest_reserved("~"));
}

static void test_bad_routes(void **state)
{
    (void)state;
    route_err("", DYNO_ENOTFOUND);
    route_err("/", DYNO_ENOTFOUND);
    route_err("v1/catalogs", DYNO_ENOTFOUND);
    route_err("/v1", DYNO_ENOTFOUND);
    route_err("/v2/catalogs", DYNO_ENOTFOUND);
    route_err("/v1/catalogs/", DYNO_ENOTFOUND);
    route_err("/v1/catalogs//a", DYNO_ENOTFOUND);
    route_err("/v1/catalogs/alice/a/", DYNO_ENOTFOUND);
    route_err("/v1/objects", DYNO_ENOTFOUND);
    route_err("/v1/objects/" KEY "/data", DYNO_ENOTFOUND);
    route_err("/v1/catalogs/alice/a/~/nothing", DYNO_ENOTFOUND);
    route_err("/v1/catalogs/alice/a/~/objects/x", DYNO_ENOTFOUND);
    route_err("/v1/catalogs/alice/a/~/shares/bob/x", DYNO_ENOTFOUND);
    route_err("/v1/catalogs/alice/a/~/~/objects", DYNO_ENOTFOUND);
    route_err("/v1/catalogs/alice", DYNO_EINVAL); /* an owner alone is no catalog */
    route_err("/v1/catalogs/alice/~/objects", DYNO_EINVAL);
    route_err("/v1/catalogs/~/objects", DYNO_EINVAL);
    route_err("/v1/catalogs/alice/a%2Fb", DYNO_EINVAL); /* no nesting level by escape */
    route_err("/v1/catalogs/alice/..", DYNO_EINVAL);
    route_err("/v1/catalogs/alice/a%00", DYNO_EINVAL);
    route_err("/v1/catalogs/alice/a%zz", DYNO_EINVAL);
    route_err("/v1/catalogs/alice/1/2/3/4/5/6/7/8/9", DYNO_EINVAL);
    route_err("/v1/catalogs/alice/a/~/shares/b%20b", DYNO_EINVAL);
    route_err("/v1/catalogs/alice/a/shares/b%20b", DYNO_EINVAL);
    route_err("/v1/catalogs/alice/a/shares/lab%2F%2Fct", DYNO_EINVAL);
    route_err("/v1/catalogs/alice/a%2Fb/objects", DYNO_EINVAL);
    route_err("/v1/catalogs/shares/bob", DYNO_EINVAL); /* the share bob of no catalog */
    route_err("/v1/catalogs/alice/~", DYNO_EINVAL);
    route_err("/v1/catalogs/alice/a/~/shares/lab%2F%2Fct", DYNO_EINVAL);
    route_err("/v1/objects/0123", DYNO_EINVAL);
    route_err("/v1/objects/" KEY "X", DYNO_EINVAL);
    route_err("/v1/tokens/nope", DYNO_EINVAL);
    route_err("/v1/keys/nope", DYNO_EINVAL);
    route_err("/v1/keys/dkabcdefghij01234567", DYNO_EINVAL);
    route_err("/v1/keys/DKABCDEFGHIJ0123456", DYNO_EINVAL);
    route_err("/v1/keys/DKABCDEFGHIJ012345678", DYNO_EINVAL);
    route_err("/v1/keys/DKABCDEFGHIJ01234567/x", DYNO_ENOTFOUND);
    route_err("/v1/containers/a%2Fb/drain", DYNO_EINVAL);
    char long_path[DYNO_REST_PATH_MAX + 8];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    route_err(long_path, DYNO_ENOTFOUND);
    route_err("/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q", DYNO_ENOTFOUND);
}

static void test_format_refuses_bad_routes(void **state)
{
    (void)state;
    char out[64];
    struct dyno_rest_route r = {.kind = DYNO_REST_CATALOG_SHARE};
    strcpy(r.catalog, "alice/a");
    assert_int_equal(dyno_rest_route_format(&r, out, sizeof(out)), DYNO_EINVAL); /* no principal */
    strcpy(r.name, "bob");
    assert_int_equal(dyno_rest_route_format(&r, out, sizeof(out)), 0);
    assert_string_equal(out, "/v1/catalogs/alice/a/~/shares/bob");
    r.kind = DYNO_REST_CATALOG;
    assert_int_equal(dyno_rest_route_format(&r, out, sizeof(out)), 0);
    assert_string_equal(out, "/v1/catalogs/alice/a/~"); /* the catalog itself in the "~" form too */
    r.kind = DYNO_REST_CATALOG_SHARE;
    assert_int_equal(dyno_rest_route_format(&r, out, 10), DYNO_ETOOBIG);
    assert_string_equal(out, "");
    strcpy(r.catalog, "alice");
    assert_int_equal(dyno_rest_route_format(&r, out, sizeof(out)), DYNO_EINVAL);
    r = (struct dyno_rest_route){.kind = DYNO_REST_OBJECT};
    assert_int_equal(dyno_rest_route_format(&r, out, sizeof(out)), DYNO_EINVAL);
    r.kind = DYNO_REST_NONE;
    assert_int_equal(dyno_rest_route_format(&r, out, sizeof(out)), DYNO_EINVAL);
    r.kind = DYNO_REST_KIND_COUNT;
    assert_int_equal(dyno_rest_route_format(&r, out, sizeof(out)), DYNO_EINVAL);
}

static void test_query_values_and_headers(void **state)
{
    (void)state;
    int v = 0, k = 0, m = 0;
    uint64_t u = 0;
    assert_int_equal(dyno_rest_parse_limit("1", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(dyno_rest_parse_limit("1000", &v), 0);
    assert_int_equal(v, 1000);
    const char *bad_limits[] = {"0", "1001", "-1", "+5", " 5", "5 ", "", "abc", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad_limits) / sizeof(bad_limits[0]); i++)
        assert_int_equal(dyno_rest_parse_limit(bad_limits[i], &v), DYNO_EINVAL);
    assert_true(dyno_rest_flag("1") && dyno_rest_flag("true") && dyno_rest_flag("yes"));
    assert_false(dyno_rest_flag("0") || dyno_rest_flag("") || dyno_rest_flag(NULL) || dyno_rest_flag("TRUE"));
    assert_int_equal(dyno_rest_parse_resilience("3,2", &k, &m), 0);
    assert_true(k == 3 && m == 2);
    assert_int_equal(dyno_rest_parse_resilience("32,16", &k, &m), 0);
    assert_int_equal(dyno_rest_parse_resilience("1,0", &k, &m), 0);
    assert_true(k == 1 && m == 0);
    const char *bad_res[] = {"0,2",   "33,0", "1,17", "3",    "3,",   ",2",
                             "3,2,1", " 3,2", "3, 2", "-1,2", "3,+2", ""};
    for (size_t i = 0; i < sizeof(bad_res) / sizeof(bad_res[0]); i++) {
        k = m = -7;
        assert_int_equal(dyno_rest_parse_resilience(bad_res[i], &k, &m), DYNO_EINVAL);
        assert_true(k == -7 && m == -7);
    }
    assert_int_equal(dyno_rest_parse_resilience(NULL, &k, &m), DYNO_EINVAL);
    assert_int_equal(dyno_rest_parse_u64("18446744073709551615", &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(dyno_rest_parse_u64("18446744073709551616", &u), DYNO_EINVAL);
    assert_int_equal(dyno_rest_parse_u64("-5", &u), DYNO_EINVAL);
    assert_int_equal(dyno_rest_parse_u64("", &u), DYNO_EINVAL);
}

/* dyno_rest_dec: the one decimal parser; the length n bounds it (no NUL needed) and a
 * refusal leaves *out untouched. */
static void test_decimal(void **state)
{
    (void)state;
    uint64_t u = 7;
    assert_int_equal(dyno_rest_dec("0", 1, &u), 0);
    assert_true(u == 0);
    assert_int_equal(dyno_rest_dec("1234x", 4, &u), 0);
    assert_true(u == 1234);
    assert_int_equal(dyno_rest_dec("18446744073709551615", 20, &u), 0);
    assert_true(u == UINT64_MAX);
    const char *bad[] = {
        "",   "+1", "-1", " 1", "1 ", "0x10", "1e3", "1.0", "99999999999999999999", "18446744073709551616",
        "1\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        u = 7;
        assert_int_equal(dyno_rest_dec(bad[i], strlen(bad[i]), &u), DYNO_EINVAL);
        assert_true(u == 7);
    }
    assert_int_equal(dyno_rest_dec("12", 0, &u), DYNO_EINVAL);
    assert_int_equal(dyno_rest_parse_u64(NULL, &u), DYNO_EINVAL);
    assert_true(u == 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_routes),
        cmocka_unit_test(test_catalog_sub_resources),
        cmocka_unit_test(test_spec_form),
        cmocka_unit_test(test_catalogs_named_like_sub_resources),
        cmocka_unit_test(test_catalog_creatable),
        cmocka_unit_test(test_bad_routes),
        cmocka_unit_test(test_format_refuses_bad_routes),
        cmocka_unit_test(test_query_values_and_headers),
        cmocka_unit_test(test_decimal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
