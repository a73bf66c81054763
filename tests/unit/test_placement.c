/* Unit tests of lib/placement.c: UF order, distinctness, sites, full and offline nodes,
 * determinism, and a balance simulation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dynostore/error.h"
#include "placement.h"

#define GB (1024ull * 1024 * 1024)

static void assert_distinct(const size_t *idx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            assert_true(idx[i] != idx[j]);
}

static void test_lowest_uf_first(void **state)
{
    /* UF with share 10: a 0.6, b 0.11, c 0.51, d 0.31, e 0.91. */
    const struct dyno_place_node nodes[] = {
        {"a", NULL, 100, 50, true}, {"b", NULL, 1000, 100, true}, {"c", NULL, 100, 41, true},
        {"d", NULL, 100, 21, true}, {"e", NULL, 100, 81, true},
    };
    size_t idx[5];
    (void)state;
    assert_int_equal(dyno_place(nodes, 5, 3, 10, idx), 0);
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 3);
    assert_int_equal(idx[2], 2);
    assert_int_equal(dyno_place(nodes, 5, 5, 10, idx), 0);
    assert_distinct(idx, 5);
    assert_int_equal(idx[3], 0);
    assert_int_equal(idx[4], 4);
}

static void test_uf_counts_the_share(void **state)
{
    /* Empty nodes of unequal size: the share makes the big one's UF lower. */
    const struct dyno_place_node nodes[] = {
        {"small", NULL, 100, 0, true},
        {"big", NULL, 1000, 0, true},
    };
    size_t idx[1];
    (void)state;
    assert_int_equal(dyno_place(nodes, 2, 1, 10, idx), 0);
    assert_int_equal(idx[0], 1);
}

static void test_tie_break_by_id(void **state)
{
    const struct dyno_place_node nodes[] = {
        {"c3", NULL, 100, 10, true},
        {"c1", NULL, 100, 10, true},
        {"c2", NULL, 200, 20, true},
        {"c0", NULL, 100, 11, true},
    };
    size_t idx[4], again[4];
    (void)state;
    /* c1, c3, c2 tie exactly at (10 + 0) / 100 = (20 + 0) / 200 with share 0. */
    assert_int_equal(dyno_place(nodes, 4, 4, 0, idx), 0);
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 2);
    assert_int_equal(idx[2], 0);
    assert_int_equal(idx[3], 3);
    assert_int_equal(dyno_place(nodes, 4, 4, 0, again), 0);
    assert_memory_equal(idx, again, sizeof(idx));
}

static void test_site_preference(void **state)
{
    /* Site x holds the three emptiest nodes; distinct sites come first anyway. */
    const struct dyno_place_node nodes[] = {
        {"x1", "x", 100, 0, true},  {"x2", "x", 100, 1, true},  {"x3", "x", 100, 2, true},
        {"y1", "y", 100, 50, true}, {"y2", "y", 100, 40, true}, {"z1", "z", 100, 60, true},
    };
    size_t idx[6];
    (void)state;
    assert_int_equal(dyno_place(nodes, 6, 3, 1, idx), 0);
    assert_int_equal(idx[0], 0); /* x1 */
    assert_int_equal(idx[1], 4); /* y2: lowest UF on a new site */
    assert_int_equal(idx[2], 5); /* z1 */
    /* Once every site is used, lowest UF among the rest. */
    assert_int_equal(dyno_place(nodes, 6, 5, 1, idx), 0);
    assert_int_equal(idx[3], 1); /* x2 */
    assert_int_equal(idx[4], 2); /* x3 */
    assert_distinct(idx, 5);
}

static void test_no_site_is_own_site(void **state)
{
    /* NULL and "" sites never clash with each other. */
    const struct dyno_place_node nodes[] = {
        {"a", NULL, 100, 0, true},
        {"b", "", 100, 1, true},
        {"c", NULL, 100, 2, true},
        {"d", "s", 100, 50, true},
    };
    size_t idx[3];
    (void)state;
    assert_int_equal(dyno_place(nodes, 4, 3, 1, idx), 0);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 1);
    assert_int_equal(idx[2], 2);
}

static void test_full_and_offline_skipped(void **state)
{
    const struct dyno_place_node nodes[] = {
        {"full", NULL, 100, 95, true},                                     /* 5 free < share 10 */
        {"offline", NULL, 1000, 0, false},                                 /* emptiest, but down */
        {"over", NULL, 100, 200, true},                                    /* used > capacity */
        {"zero", NULL, 0, 0, true},                                        /* no capacity */
        {"ok1", NULL, 100, 50, true},      {"exact", NULL, 100, 90, true}, /* exactly share free: qualifies */
    };
    size_t idx[2];
    (void)state;
    assert_int_equal(dyno_place(nodes, 6, 2, 10, idx), 0);
    assert_int_equal(idx[0], 4);
    assert_int_equal(idx[1], 5);
}

static void test_unavailable(void **state)
{
    const struct dyno_place_node nodes[] = {
        {"a", NULL, 100, 0, true},
        {"b", NULL, 100, 0, false},
        {"c", NULL, 100, 95, true},
    };
    size_t idx[3] = {77, 77, 77};
    (void)state;
    assert_int_equal(dyno_place(nodes, 3, 2, 10, idx), DYNO_EUNAVAIL);
    assert_int_equal(dyno_place(nodes, 3, 4, 0, idx), DYNO_EUNAVAIL);
    assert_int_equal(dyno_place(NULL, 0, 1, 0, idx), DYNO_EUNAVAIL);
    /* Nothing written on failure. */
    assert_int_equal(idx[0], 77);
    assert_int_equal(idx[1], 77);
    assert_int_equal(idx[2], 77);
    assert_int_equal(dyno_place(nodes, 3, 0, 0, idx), DYNO_EINVAL);
    assert_int_equal(dyno_place(nodes, 3, 1, 0, NULL), DYNO_EINVAL);
    assert_int_equal(dyno_place(nodes, 3, 2, 0, idx), 0);
}

static void test_huge_values(void **state)
{
    /* UF products need 128 bits: these would overflow a 64-bit cross-multiplication. */
    const struct dyno_place_node nodes[] = {
        {"a", NULL, UINT64_MAX, UINT64_MAX / 2, true},
        {"b", NULL, UINT64_MAX - 1, UINT64_MAX / 2 - 1000, true},
    };
    size_t idx[2];
    (void)state;
    assert_int_equal(dyno_place(nodes, 2, 2, 0, idx), 0);
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 0);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_balance_simulation(void **state)
{
    /* Five containers of unequal capacity, 200 objects of mixed sizes (1 KiB .. 2 GiB)
     * coded k=2, m=1. Placing by UF must keep every node's utilization within 10% of the
     * mean, whatever its size. (Each node gets at most one of the n = 3 fragments of an
     * object, so no node may hold more than a third of the capacity, or it could never
     * catch up; the largest here holds 30%.) */
    struct dyno_place_node nodes[5] = {
        {"c1", "s1", 100 * GB, 0, true}, {"c2", "s2", 200 * GB, 0, true}, {"c3", "s3", 300 * GB, 0, true},
        {"c4", "s4", 150 * GB, 0, true}, {"c5", "s5", 250 * GB, 0, true},
    };
    const int k = 2;
    uint64_t seed = 0xDEADBEEFull;
    size_t idx[3];
    (void)state;
    for (int i = 0; i < 200; i++) {
        uint64_t r = rng_next(&seed);
        uint64_t size;
        switch (r % 4) {
        case 0:
            size = 1024 + r % (64 * 1024);
            break;
        case 1:
            size = 1024 * 1024 + r % (64ull * 1024 * 1024);
            break;
        case 2:
            size = 256ull * 1024 * 1024 + r % GB;
            break;
        default:
            size = GB + r % GB;
            break;
        }
        uint64_t share = (size + k - 1) / k;
        assert_int_equal(dyno_place(nodes, 5, 3, share, idx), 0);
        assert_distinct(idx, 3);
        for (int j = 0; j < 3; j++)
            nodes[idx[j]].used += share;
    }
    double util[5], mean = 0;
    for (int i = 0; i < 5; i++) {
        util[i] = (double)nodes[i].used / (double)nodes[i].capacity;
        mean += util[i] / 5;
    }
    assert_true(mean > 0.1); /* the simulation actually filled the nodes */
    for (int i = 0; i < 5; i++) {
        if (util[i] < mean * 0.9 || util[i] > mean * 1.1)
            fail_msg("node %s utilization %.4f, mean %.4f", nodes[i].id, util[i], mean);
    }
}

/* ---- the site rule (dyno_place_spread) -------------------------------------------------- */

/* Fragments of the choice (plus held) on the busiest site. */
static size_t max_on_a_site(const struct dyno_place_node *nodes, const size_t *idx, size_t n,
                            const char *const *held, size_t nheld)
{
    size_t most = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = nodes[idx[i]].site;
        if (!s || !s[0]) {
            most = most > 1 ? most : 1;
            continue;
        }
        size_t c = 0;
        for (size_t j = 0; j < n; j++)
            c += nodes[idx[j]].site && strcmp(nodes[idx[j]].site, s) == 0;
        for (size_t j = 0; j < nheld; j++)
            c += held[j] && strcmp(held[j], s) == 0;
        most = c > most ? c : most;
    }
    return most;
}

/* Six containers over three sites, two each (what `up --sites 3 --containers 6` lays out). */
#define SIX_OVER_THREE(on3)                                                                                  \
    {                                                                                                        \
        {"c1", "site-1", 100, 0, true}, {"c2", "site-2", 100, 0, true}, {"c3", "site-3", 100, 0, (on3)},     \
            {"c4", "site-1", 100, 0, true}, {"c5", "site-2", 100, 0, true}, {"c6", "site-3", 100, 0, (on3)}, \
    }

static void test_spread_caps_each_site_at_m(void **state)
{
    /* k=3, m=2: five fragments over three sites must be 2+2+1, never 3 on one site, even
     * when one site's containers are by far the emptiest. */
    struct dyno_place_node nodes[] = SIX_OVER_THREE(true);
    nodes[0].used = nodes[3].used = 0;      /* site-1 empty */
    nodes[1].used = nodes[4].used = 50;     /* site-2 half full */
    nodes[2].used = 60, nodes[5].used = 40; /* site-3 */
    const struct dyno_place_rule rule = {.site_max = 2};
    size_t idx[5];
    (void)state;
    assert_int_equal(dyno_place_spread(nodes, 6, 5, 1, &rule, idx), 0);
    assert_distinct(idx, 5);
    assert_true(max_on_a_site(nodes, idx, 5, NULL, 0) <= 2);
    /* Without the rule the same layout still spreads (distinct sites first) but nothing caps it. */
    assert_int_equal(dyno_place(nodes, 6, 5, 1, idx), 0);
    assert_distinct(idx, 5);
}

static void test_spread_refuses_when_sites_are_too_few(void **state)
{
    /* Nine containers over three sites, site-3 down: six qualify, but two sites hold at most
     * 2 + 2 < 5 fragments under m=2. */
    const struct dyno_place_node nine[] = {
        {"c1", "site-1", 100, 0, true}, {"c2", "site-2", 100, 0, true}, {"c3", "site-3", 100, 0, false},
        {"c4", "site-1", 100, 0, true}, {"c5", "site-2", 100, 0, true}, {"c6", "site-3", 100, 0, false},
        {"c7", "site-1", 100, 0, true}, {"c8", "site-2", 100, 0, true}, {"c9", "site-3", 100, 0, false},
    };
    struct dyno_place_node nodes[] = SIX_OVER_THREE(false);
    const struct dyno_place_rule rule = {.site_max = 2};
    size_t idx[5] = {99, 99, 99, 99, 99};
    (void)state;
    assert_int_equal(dyno_place_spread(nine, 9, 5, 1, &rule, idx), DYNO_ECONFLICT);
    for (int i = 0; i < 5; i++)
        assert_int_equal(idx[i], 99);                                 /* nothing written */
    assert_int_equal(dyno_place_spread(nine, 9, 5, 1, NULL, idx), 0); /* relaxed: 3 + 2 */
    assert_int_equal(max_on_a_site(nine, idx, 5, NULL, 0), 3);
    /* k=2, m=2 fits exactly: two on each remaining site. */
    assert_int_equal(dyno_place_spread(nodes, 6, 4, 1, &rule, idx), 0);
    assert_distinct(idx, 4);
    assert_int_equal(max_on_a_site(nodes, idx, 4, NULL, 0), 2);
    /* Too few containers at all stays the "unavailable" answer, whatever the rule. */
    assert_int_equal(dyno_place_spread(nodes, 6, 5, 1, &rule, idx), DYNO_EUNAVAIL);
    assert_int_equal(dyno_place_spread(nodes, 6, 5, 1, NULL, idx), DYNO_EUNAVAIL);
    /* One site only: even k=1, m=1 (two replicas) cannot survive its loss. */
    const struct dyno_place_node one[] = {{"a", "x", 100, 0, true}, {"b", "x", 100, 0, true}};
    const struct dyno_place_rule m1 = {.site_max = 1};
    assert_int_equal(dyno_place_spread(one, 2, 2, 1, &m1, idx), DYNO_ECONFLICT);
    assert_int_equal(dyno_place(one, 2, 2, 1, idx), 0); /* relaxed: allowed */
}

static void test_spread_counts_held_fragments(void **state)
{
    /* Repair of a k=2, m=2 object after site-3 was lost: two fragments stay on site-1 and
     * site-2; the two rebuilt ones must go one to each, never both to the emptier site. */
    struct dyno_place_node nodes[] = {
        {"c4", "site-1", 100, 90, true},
        {"c2", "site-2", 100, 0, true},
        {"c5", "site-2", 100, 0, true},
    };
    const char *held[] = {"site-1", "site-2"};
    const struct dyno_place_rule rule = {.site_max = 2, .held = held, .nheld = 2};
    size_t idx[2];
    (void)state;
    assert_int_equal(dyno_place_spread(nodes, 3, 2, 1, &rule, idx), 0);
    assert_int_equal(max_on_a_site(nodes, idx, 2, held, 2), 2);
    assert_true(idx[0] == 0 || idx[1] == 0);
    /* With site-1 holding two already, only one more fits (on site-2). */
    const char *held2[] = {"site-1", "site-1", "site-2"};
    const struct dyno_place_rule rule2 = {.site_max = 2, .held = held2, .nheld = 3};
    assert_int_equal(dyno_place_spread(nodes, 3, 2, 1, &rule2, idx), DYNO_ECONFLICT);
    assert_int_equal(dyno_place_spread(nodes, 3, 1, 1, &rule2, idx), 0);
    assert_int_not_equal(idx[0], 0);
    /* Held sites are "used" for the distinct-sites-first preference too. */
    const struct dyno_place_node three[] = {
        {"a", "x", 100, 0, true}, {"b", "y", 100, 50, true}, {"c", "z", 100, 60, true}};
    const char *hx[] = {"x"};
    const struct dyno_place_rule rx = {.site_max = 2, .held = hx, .nheld = 1};
    assert_int_equal(dyno_place_spread(three, 3, 1, 1, &rx, idx), 0);
    assert_int_equal(idx[0], 1);
    const struct dyno_place_rule bad = {.site_max = 2, .held = NULL, .nheld = 1};
    assert_int_equal(dyno_place_spread(three, 3, 1, 1, &bad, idx), DYNO_EINVAL);
}

/* Whether some n qualifying nodes keep every site at <= cap (brute force over subsets). */
static bool spread_feasible(const struct dyno_place_node *nodes, size_t count, size_t n, size_t cap,
                            uint64_t share)
{
    for (unsigned mask = 0; mask < (1u << count); mask++) {
        size_t pick[16], np = 0;
        bool ok = true;
        for (size_t i = 0; i < count && ok; i++) {
            if (!(mask & (1u << i)))
                continue;
            const struct dyno_place_node *nd = &nodes[i];
            ok = nd->online && nd->capacity - nd->used >= share;
            pick[np++] = i;
        }
        if (ok && np == n && max_on_a_site(nodes, pick, np, NULL, 0) <= cap)
            return true;
    }
    return false;
}

static void test_spread_many_layouts(void **state)
{
    /* 3000 random fabrics: 1..10 containers over 1..5 sites (some without a site), some
     * offline or full, k 1..4, m 0..3. dyno_place_spread must find a placement exactly when
     * one exists (checked by brute force), and the one it finds must keep every site at
     * <= m, use n distinct qualifying nodes, and be the same on a second call. */
    static const char *sites[] = {"s1", "s2", "s3", "s4", "s5", ""};
    uint64_t seed = 0x5157E5ull;
    (void)state;
    for (int t = 0; t < 3000; t++) {
        struct dyno_place_node nodes[10];
        size_t count = 1 + rng_next(&seed) % 10, nsites = 1 + rng_next(&seed) % 5;
        for (size_t i = 0; i < count; i++) {
            uint64_t r = rng_next(&seed);
            nodes[i] = (struct dyno_place_node){.id = sites[i % 5] /* any distinct-enough id */,
                                                .site = r % 13 == 0 ? sites[5] : sites[r % nsites],
                                                .capacity = 100,
                                                .used = (r >> 8) % 100,
                                                .online = (r >> 16) % 7 != 0};
        }
        size_t k = 1 + rng_next(&seed) % 4, m = rng_next(&seed) % 4, n = k + m;
        if (n > count)
            continue;
        const struct dyno_place_rule rule = {.site_max = m};
        size_t idx[10], again[10];
        int rc = dyno_place_spread(nodes, count, n, 5, &rule, idx);
        size_t qualifying = 0;
        for (size_t i = 0; i < count; i++)
            qualifying += nodes[i].online && nodes[i].used <= 95;
        if (qualifying < n) {
            assert_int_equal(rc, DYNO_EUNAVAIL);
            continue;
        }
        bool feasible = m == 0 || spread_feasible(nodes, count, n, m, 5);
        if (!feasible) {
            assert_int_equal(rc, DYNO_ECONFLICT);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_distinct(idx, n);
        for (size_t i = 0; i < n; i++)
            assert_true(nodes[idx[i]].online && nodes[idx[i]].used <= 95);
        if (m > 0 && max_on_a_site(nodes, idx, n, NULL, 0) > m)
            fail_msg("layout %d: more than m=%zu fragments on one site", t, m);
        assert_int_equal(dyno_place_spread(nodes, count, n, 5, &rule, again), 0);
        assert_memory_equal(idx, again, n * sizeof(idx[0]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lowest_uf_first),
        cmocka_unit_test(test_uf_counts_the_share),
        cmocka_unit_test(test_tie_break_by_id),
        cmocka_unit_test(test_site_preference),
        cmocka_unit_test(test_no_site_is_own_site),
        cmocka_unit_test(test_full_and_offline_skipped),
        cmocka_unit_test(test_unavailable),
        cmocka_unit_test(test_huge_values),
        cmocka_unit_test(test_balance_simulation),
        cmocka_unit_test(test_spread_caps_each_site_at_m),
        cmocka_unit_test(test_spread_refuses_when_sites_are_too_few),
        cmocka_unit_test(test_spread_counts_held_fragments),
        cmocka_unit_test(test_spread_many_layouts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
