/* Unit tests of lib/limit.c: token buckets with injected time, connection counts, and a
 * table that stays bounded whatever keys come in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dynostore/error.h"
#include "limit.h"

static void test_bucket_allows_a_burst_then_refills(void **state)
{
    struct dyno_limit *l = NULL;
    int retry = 0;
    (void)state;
    assert_int_equal(dyno_limit_new(8, &l), 0);
    /* 6 a minute, burst 3: three at once, then one every 10 s. */
    for (int i = 0; i < 3; i++)
        assert_true(dyno_limit_take(l, "1.2.3.4", 1000, 6, 3, &retry));
    assert_false(dyno_limit_take(l, "1.2.3.4", 1000, 6, 3, &retry));
    assert_int_equal(retry, 10);
    assert_false(dyno_limit_take(l, "1.2.3.4", 6000, 6, 3, &retry));
    assert_int_equal(retry, 5);
    assert_true(dyno_limit_take(l, "1.2.3.4", 11000, 6, 3, &retry));
    assert_false(dyno_limit_take(l, "1.2.3.4", 11000, 6, 3, &retry));
    /* Other keys have buckets of their own. */
    assert_true(dyno_limit_take(l, "alice", 11000, 6, 3, NULL));
    /* A long pause refills up to the burst, not beyond. */
    for (int i = 0; i < 3; i++)
        assert_true(dyno_limit_take(l, "1.2.3.4", 10000000, 6, 3, NULL));
    assert_false(dyno_limit_take(l, "1.2.3.4", 10000000, 6, 3, NULL));
    dyno_limit_free(l);
}

static void test_counts_connections_per_key(void **state)
{
    struct dyno_limit *l = NULL;
    (void)state;
    assert_int_equal(dyno_limit_new(4, &l), 0);
    assert_true(dyno_limit_enter(l, "a", 0, 2));
    assert_true(dyno_limit_enter(l, "a", 0, 2));
    assert_false(dyno_limit_enter(l, "a", 0, 2));
    assert_true(dyno_limit_enter(l, "b", 0, 2));
    assert_int_equal(dyno_limit_count(l, "a"), 2);
    dyno_limit_leave(l, "a");
    assert_true(dyno_limit_enter(l, "a", 0, 2));
    dyno_limit_leave(l, "nobody");
    dyno_limit_leave(l, "b");
    dyno_limit_leave(l, "b"); /* once too often: stays 0 */
    assert_int_equal(dyno_limit_count(l, "b"), 0);
    dyno_limit_free(l);
}

static void test_table_stays_bounded_and_fails_closed(void **state)
{
    struct dyno_limit *l = NULL;
    char key[32];
    (void)state;
    assert_int_equal(dyno_limit_new(3, &l), 0);
    /* Three keys hold connections: a fourth key finds no slot and is refused. */
    assert_true(dyno_limit_enter(l, "a", 1, 5));
    assert_true(dyno_limit_enter(l, "b", 2, 5));
    assert_true(dyno_limit_enter(l, "c", 3, 5));
    assert_false(dyno_limit_enter(l, "d", 4, 5));
    assert_false(dyno_limit_take(l, "d", 4, 60, 1, NULL));
    /* A slot without connections is taken over, the least recently used first. */
    dyno_limit_leave(l, "b");
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_true(dyno_limit_take(l, key, 10 + i, 60, 1, NULL));
    }
    assert_int_equal(dyno_limit_count(l, "a"), 1);
    assert_int_equal(dyno_limit_count(l, "c"), 1);
    dyno_limit_free(l);
}

static void test_bad_arguments(void **state)
{
    struct dyno_limit *l = NULL;
    (void)state;
    assert_int_equal(dyno_limit_new(0, &l), DYNO_EINVAL);
    assert_int_equal(dyno_limit_new(1, &l), 0);
    assert_false(dyno_limit_take(l, "a", 0, 0, 1, NULL));
    assert_false(dyno_limit_take(l, "a", 0, 60, 0.5, NULL));
    assert_false(dyno_limit_enter(l, "a", 0, 0));
    assert_false(dyno_limit_take(NULL, "a", 0, 60, 1, NULL));
    dyno_limit_free(l);
    dyno_limit_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_allows_a_burst_then_refills),
        cmocka_unit_test(test_counts_connections_per_key),
        cmocka_unit_test(test_table_stays_bounded_and_fails_closed),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
