/* Unit tests of lib/rest.c: the REST route grammar (every route and each catalog
 * sub-resource, nested catalogs named like sub-resources), formatting, query values, headers. */
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

/* Parses path, expects kind and the given fields, and checks that it formats back to want
 * (NULL: the path itself) and that this parses to the same route. */
static void route_ok(const char *path, enum dyno_rest_kind kind, const char *catalog, const char *id,
                     const char *name, const char *want)
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
    assert_int_equal(dyno_rest_route_format(&r, out, sizeof(out)), 0);
    assert_string_equal(out, want ? want : path);
    assert_int_equal(dyno_rest_route_parse(out, &again, NULL), 0);
    assert_memory_equal(&r, &again, sizeof(r));
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
}

static void test_catalog_sub_resources(void **state)
{
    (void)state;
    route_ok("/v1/catalogs/alice/a", DYNO_REST_CATALOG, "alice/a", NULL, NULL, NULL);
    route_ok("/v1/catalogs/alice/a/b/c", DYNO_REST_CATALOG, "alice/a/b/c", NULL, NULL, NULL);
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
    route_ok("/v1/catalogs/al%69ce/a", DYNO_REST_CATALOG, "alice/a", NULL, NULL, "/v1/catalogs/alice/a");
}

/* The ambiguity of the old grammar: without "~", every segment is part of the catalog. */
static void test_catalogs_named_like_sub_resources(void **state)
{
    (void)state;
    route_ok("/v1/catalogs/o/a/shares/x", DYNO_REST_CATALOG, "o/a/shares/x", NULL, NULL, NULL);
    route_ok("/v1/catalogs/o/objects", DYNO_REST_CATALOG, "o/objects", NULL, NULL, NULL);
    route_ok("/v1/catalogs/o/a/shares", DYNO_REST_CATALOG, "o/a/shares", NULL, NULL, NULL);
    route_ok("/v1/catalogs/o/subscription", DYNO_REST_CATALOG, "o/subscription", NULL, NULL, NULL);
    route_ok("/v1/catalogs/o/shares/~/shares/shares", DYNO_REST_CATALOG_SHARE, "o/shares", NULL, "shares",
             NULL);
    route_ok("/v1/catalogs/o/objects/~/objects", DYNO_REST_CATALOG_OBJECTS, "o/objects", NULL, NULL, NULL);
    route_ok("/v1/catalogs/o/a/subscription/~/subscription", DYNO_REST_CATALOG_SUBSCRIPTION,
             "o/a/subscription", NULL, NULL, NULL);
    route_ok("/v1/catalogs/o/1/2/3/4/5/6/7/8/~/shares/lab%2Fa%2Fb", DYNO_REST_CATALOG_SHARE,
             "o/1/2/3/4/5/6/7/8", NULL, "lab/a/b", NULL);
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
    route_err("/v1/catalogs/alice/a/~", DYNO_ENOTFOUND);
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
    route_err("/v1/catalogs/alice/a/~/shares/lab%2F%2Fct", DYNO_EINVAL);
    route_err("/v1/objects/0123", DYNO_EINVAL);
    route_err("/v1/objects/" KEY "X", DYNO_EINVAL);
    route_err("/v1/tokens/nope", DYNO_EINVAL);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_routes),
        cmocka_unit_test(test_catalog_sub_resources),
        cmocka_unit_test(test_catalogs_named_like_sub_resources),
        cmocka_unit_test(test_bad_routes),
        cmocka_unit_test(test_format_refuses_bad_routes),
        cmocka_unit_test(test_query_values_and_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
