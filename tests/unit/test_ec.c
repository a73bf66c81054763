/*
 * Unit tests of lib/ec.c: every erasure pattern of up to m losses for several (k, m) and
 * odd lengths, too many losses, argument checks, and concurrent use of one dyno_ec.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "dynostore/error.h"
#include "ec.h"

#define MAXN (DYNO_EC_MAX_K + DYNO_EC_MAX_M)

/* xorshift: reproducible data without touching rand()'s global state from threads. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void fill_random(uint8_t *p, size_t n, uint64_t *seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rng_next(seed);
}

struct stripe {
    int k, m;
    size_t len;
    uint8_t *bufs[MAXN]; /* working fragments, damaged and repaired */
    uint8_t *good[MAXN]; /* reference copy after encode */
};

static void stripe_new(struct stripe *st, const struct dyno_ec *ec, size_t len, uint64_t seed)
{
    st->k = dyno_ec_k(ec);
    st->m = dyno_ec_m(ec);
    st->len = len;
    for (int i = 0; i < st->k + st->m; i++) {
        st->bufs[i] = malloc(len);
        st->good[i] = malloc(len);
        assert_non_null(st->bufs[i]);
        assert_non_null(st->good[i]);
    }
    for (int i = 0; i < st->k; i++)
        fill_random(st->bufs[i], len, &seed);
    assert_int_equal(dyno_ec_encode(ec, len, st->bufs, st->bufs + st->k), 0);
    for (int i = 0; i < st->k + st->m; i++)
        memcpy(st->good[i], st->bufs[i], len);
}

static void stripe_free(struct stripe *st)
{
    for (int i = 0; i < st->k + st->m; i++) {
        free(st->bufs[i]);
        free(st->good[i]);
    }
}

/* Damages the fragments in mask, decodes, and checks every fragment is back. */
static void check_pattern(const struct dyno_ec *ec, struct stripe *st, uint64_t mask)
{
    bool present[MAXN] = {false};
    int n = st->k + st->m;

    for (int i = 0; i < n; i++) {
        present[i] = !(mask >> i & 1);
        if (!present[i])
            memset(st->bufs[i], 0xA5, st->len); /* garbage the decoder must overwrite */
    }
    assert_int_equal(dyno_ec_decode(ec, st->len, present, st->bufs), 0);
    for (int i = 0; i < n; i++) {
        if (memcmp(st->bufs[i], st->good[i], st->len) != 0)
            fail_msg("k=%d m=%d len=%zu mask=%#llx: fragment %d wrong", st->k, st->m, st->len,
                     (unsigned long long)mask, i);
    }
}

static int popcount64(uint64_t v)
{
    int c = 0;
    for (; v; v &= v - 1)
        c++;
    return c;
}

static void test_every_pattern(void **state)
{
    static const int km[][2] = {{1, 0}, {1, 2}, {2, 1}, {3, 2}, {4, 2}, {6, 3}, {10, 4}};
    static const size_t lens[] = {1, 7, 4096, 65537};
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    (void)state;

    for (size_t c = 0; c < sizeof(km) / sizeof(km[0]); c++) {
        struct dyno_ec *ec = NULL;
        int k = km[c][0], m = km[c][1], n = k + m;
        assert_int_equal(dyno_ec_new(k, m, &ec), 0);
        assert_int_equal(dyno_ec_k(ec), k);
        assert_int_equal(dyno_ec_m(ec), m);
        for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
            struct stripe st;
            int patterns = 0;
            stripe_new(&st, ec, lens[l], rng_next(&seed));
            for (uint64_t mask = 0; mask < (1ull << n); mask++) {
                if (popcount64(mask) > m)
                    continue;
                check_pattern(ec, &st, mask);
                patterns++;
            }
            /* sum_{e<=m} C(n, e) patterns, each one checked. */
            int expect = 0, binom = 1;
            for (int e = 0; e <= m; e++) {
                expect += binom;
                binom = binom * (n - e) / (e + 1);
            }
            assert_int_equal(patterns, expect);
            stripe_free(&st);
        }
        dyno_ec_free(ec);
    }
}

static void test_systematic(void **state)
{
    struct dyno_ec *ec = NULL;
    struct stripe st;
    uint8_t *orig[4];
    uint64_t seed = 42;
    (void)state;
    assert_int_equal(dyno_ec_new(4, 2, &ec), 0);
    /* Encode must not modify the data units, and parity must not be trivial. */
    for (int i = 0; i < 4; i++) {
        orig[i] = malloc(100);
        assert_non_null(orig[i]);
    }
    stripe_new(&st, ec, 100, seed);
    for (int i = 0; i < 4; i++)
        memcpy(orig[i], st.bufs[i], 100);
    assert_int_equal(dyno_ec_encode(ec, 100, st.bufs, st.bufs + 4), 0);
    for (int i = 0; i < 4; i++)
        assert_memory_equal(orig[i], st.bufs[i], 100);
    assert_memory_not_equal(st.bufs[4], st.bufs[5], 100);
    assert_memory_not_equal(st.bufs[4], st.bufs[0], 100);
    for (int i = 0; i < 4; i++)
        free(orig[i]);
    stripe_free(&st);
    dyno_ec_free(ec);
}

static void test_too_few_present(void **state)
{
    static const int km[][2] = {{1, 0}, {1, 2}, {3, 2}, {4, 2}, {6, 3}};
    (void)state;
    for (size_t c = 0; c < sizeof(km) / sizeof(km[0]); c++) {
        struct dyno_ec *ec = NULL;
        struct stripe st;
        int k = km[c][0], m = km[c][1], n = k + m;
        assert_int_equal(dyno_ec_new(k, m, &ec), 0);
        stripe_new(&st, ec, 33, 1234 + c);
        /* Every pattern with m + 1 or more losses is refused and leaves the present
         * fragments alone. */
        for (uint64_t mask = 1; mask < (1ull << n); mask++) {
            bool present[MAXN];
            if (popcount64(mask) <= m)
                continue;
            for (int i = 0; i < n; i++)
                present[i] = !(mask >> i & 1);
            assert_int_equal(dyno_ec_decode(ec, 33, present, st.bufs), DYNO_EUNAVAIL);
            for (int i = 0; i < n; i++) {
                if (present[i])
                    assert_memory_equal(st.bufs[i], st.good[i], 33);
            }
        }
        stripe_free(&st);
        dyno_ec_free(ec);
    }
}

static void test_max_geometry(void **state)
{
    struct dyno_ec *ec = NULL;
    struct stripe st;
    uint64_t seed = 77;
    (void)state;
    assert_int_equal(dyno_ec_new(DYNO_EC_MAX_K, DYNO_EC_MAX_M, &ec), 0);
    stripe_new(&st, ec, 513, 99);
    /* m data units lost (every parity unit used), then random patterns of up to m losses. */
    check_pattern(ec, &st, (1ull << DYNO_EC_MAX_M) - 1);
    check_pattern(ec, &st, ((1ull << DYNO_EC_MAX_M) - 1) << (DYNO_EC_MAX_K - DYNO_EC_MAX_M));
    for (int t = 0; t < 200; t++) {
        uint64_t mask = 0;
        int lost = (int)(rng_next(&seed) % (DYNO_EC_MAX_M + 1));
        while (popcount64(mask) < lost)
            mask |= 1ull << (rng_next(&seed) % MAXN);
        check_pattern(ec, &st, mask);
    }
    stripe_free(&st);
    dyno_ec_free(ec);
}

static void test_bad_args(void **state)
{
    struct dyno_ec *ec = (struct dyno_ec *)&ec;
    (void)state;
    assert_int_equal(dyno_ec_new(0, 2, &ec), DYNO_EINVAL);
    assert_null(ec);
    assert_int_equal(dyno_ec_new(DYNO_EC_MAX_K + 1, 2, &ec), DYNO_EINVAL);
    assert_int_equal(dyno_ec_new(3, -1, &ec), DYNO_EINVAL);
    assert_int_equal(dyno_ec_new(3, DYNO_EC_MAX_M + 1, &ec), DYNO_EINVAL);
    assert_int_equal(dyno_ec_new(3, 2, NULL), DYNO_EINVAL);
    assert_int_equal(dyno_ec_new(3, 2, &ec), 0);
    assert_int_equal(dyno_ec_encode(NULL, 10, NULL, NULL), DYNO_EINVAL);
    assert_int_equal(dyno_ec_encode(ec, 10, NULL, NULL), DYNO_EINVAL);
    assert_int_equal(dyno_ec_decode(ec, 10, NULL, NULL), DYNO_EINVAL);
    /* Zero-length stripes are a no-op. */
    uint8_t *none[5] = {NULL, NULL, NULL, NULL, NULL};
    bool present[5] = {true, false, true, true, false};
    assert_int_equal(dyno_ec_encode(ec, 0, none, none + 3), 0);
    assert_int_equal(dyno_ec_decode(ec, 0, present, none), 0);
    dyno_ec_free(ec);
    dyno_ec_free(NULL);
}

struct worker {
    const struct dyno_ec *ec;
    uint64_t seed;
    int failures;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint8_t *bufs[6], *good[6];
    bool present[6];
    size_t len = 1000;

    for (int i = 0; i < 6; i++) {
        bufs[i] = malloc(len);
        good[i] = malloc(len);
    }
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 4; i++)
            fill_random(bufs[i], len, &w->seed);
        if (dyno_ec_encode(w->ec, len, bufs, bufs + 4) != 0)
            w->failures++;
        for (int i = 0; i < 6; i++) {
            memcpy(good[i], bufs[i], len);
            present[i] = true;
        }
        int a = (int)(rng_next(&w->seed) % 6), b = (int)(rng_next(&w->seed) % 6);
        present[a] = present[b] = false;
        memset(bufs[a], 0, len);
        memset(bufs[b], 0, len);
        if (dyno_ec_decode(w->ec, len, present, bufs) != 0)
            w->failures++;
        for (int i = 0; i < 6; i++)
            w->failures += memcmp(bufs[i], good[i], len) != 0;
    }
    for (int i = 0; i < 6; i++) {
        free(bufs[i]);
        free(good[i]);
    }
    return NULL;
}

static void test_concurrent_use(void **state)
{
    struct dyno_ec *ec = NULL;
    pthread_t th[4];
    struct worker w[4];
    (void)state;
    assert_int_equal(dyno_ec_new(4, 2, &ec), 0);
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.ec = ec, .seed = 1000 + (uint64_t)i, .failures = 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].failures, 0);
    }
    dyno_ec_free(ec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_pattern),   cmocka_unit_test(test_systematic),
        cmocka_unit_test(test_too_few_present), cmocka_unit_test(test_max_geometry),
        cmocka_unit_test(test_bad_args),        cmocka_unit_test(test_concurrent_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
