/*
 * Unit tests for lib/rtask.c: the repair task's JSON, written by metadata and read by the
 * gateway through the same pair of functions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynostore/error.h"
#include "json.h"
#include "rtask.h"

static const char *const SHA = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

static struct dyno_rtask_head sample(void)
{
    struct dyno_rtask_head h = {.size = 123456, .k = 3, .m = 2, .unit = 65536, .lease_until = 1700000000};
    snprintf(h.id, sizeof(h.id), "%s", "ffffffffffffffffffffffffffffffff");
    snprintf(h.key, sizeof(h.key), "%s", "0123456789abcdef0123456789abcdef");
    snprintf(h.catalog, sizeof(h.catalog), "%s", "alice/data");
    snprintf(h.name, sizeof(h.name), "%s", "scan 1.tiff");
    snprintf(h.sha256, sizeof(h.sha256), "%s", SHA);
    return h;
}

/* What metadata writes, the gateway reads back as it was: head and both lists. */
static void test_round_trip(void **state)
{
    (void)state;
    struct dyno_rtask_head h = sample(), got;
    cJSON *t = dyno_rtask_new(&h);
    assert_non_null(t);
    assert_int_equal(dyno_rtask_add_loc(t, "sources", 0, "c1", "http://127.0.0.1:1", "ok", -1), 0);
    assert_int_equal(dyno_rtask_add_loc(t, "sources", 2, "c3", "https://h:3", "draining", -1), 0);
    assert_int_equal(dyno_rtask_add_loc(t, "rebuild", 1, "c9", "http://127.0.0.1:9", NULL, 4096), 0);
    assert_int_equal(dyno_rtask_add_loc(t, "nowhere", 1, "c9", "http://x", NULL, -1), DYNO_EINVAL);
    assert_int_equal(dyno_rtask_parse_head(t, &got), 0);
    assert_memory_equal(&got, &h, sizeof(h));
    struct dyno_rtask_loc src[DYNO_RTASK_LOCS_MAX], tgt[DYNO_RTASK_LOCS_MAX];
    int ns = 0, nt = 0;
    assert_int_equal(dyno_rtask_parse_locs(t, "sources", 5, src, &ns), 0);
    assert_int_equal(dyno_rtask_parse_locs(t, "rebuild", 5, tgt, &nt), 0);
    assert_int_equal(ns, 2);
    assert_int_equal(nt, 1);
    assert_int_equal(src[1].index, 2);
    assert_string_equal(src[1].container, "c3");
    assert_true(src[1].draining);
    assert_false(src[0].draining);
    assert_string_equal(tgt[0].url, "http://127.0.0.1:9");
    int64_t size = 0;
    assert_int_equal(
        dyno_json_i64(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "rebuild"), 0), "size", &size),
        0);
    assert_int_equal(size, 4096);
    /* An index past n, or twice, is refused. */
    assert_int_equal(dyno_rtask_parse_locs(t, "sources", 2, src, &ns), DYNO_EPROTO);
    assert_int_equal(dyno_rtask_add_loc(t, "sources", 0, "c2", "http://127.0.0.1:2", NULL, -1), 0);
    assert_int_equal(dyno_rtask_parse_locs(t, "sources", 5, src, &ns), DYNO_EPROTO);
    cJSON_Delete(t);
}

/* A head that does not hold is refused whole: each field out of its range in turn. */
static void test_bad_heads(void **state)
{
    (void)state;
    struct dyno_rtask_head got;
    const char *fields[] = {"id", "key", "catalog", "name", "sha256", "size", "k", "m", "unit"};
    const char *bad[] = {"x", "X", "/a", "", "00", "-1", "0", "99", "0"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        struct dyno_rtask_head h = sample();
        cJSON *t = dyno_rtask_new(&h);
        cJSON *v = i < 5 ? cJSON_CreateString(bad[i]) : cJSON_CreateNumber(strtod(bad[i], NULL));
        assert_true(cJSON_ReplaceItemInObjectCaseSensitive(t, fields[i], v));
        assert_int_equal(dyno_rtask_parse_head(t, &got), DYNO_EPROTO);
        cJSON_Delete(t);
    }
    struct dyno_rtask_head h = sample();
    h.replica = true; /* with k = 3 */
    cJSON *t = dyno_rtask_new(&h);
    assert_int_equal(dyno_rtask_parse_head(t, &got), DYNO_EPROTO);
    cJSON_Delete(t);
    /* A location with an URL that is not http(s). */
    h = sample();
    t = dyno_rtask_new(&h);
    struct dyno_rtask_loc src[DYNO_RTASK_LOCS_MAX];
    int ns;
    assert_int_equal(dyno_rtask_add_loc(t, "sources", 0, "c1", "file:///etc/passwd", NULL, -1), 0);
    assert_int_equal(dyno_rtask_parse_locs(t, "sources", 5, src, &ns), DYNO_EPROTO);
    cJSON_Delete(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bad_heads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
