/*
 * Unit tests for agents/gateway/catcache.c, the gateway's cache of catalog policies (issue 11:
 * "what the gateway keeps", docs/architecture.md): copies in and out, invalidation of one
 * catalog and of all, the order rule (a lookup that raced an invalidation never re-inserts
 * what it read before it), the TTL, and a fixed size whatever the number of catalogs.
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

#include "../../agents/gateway/catcache.c"
#include "../../agents/gateway/util.c"

static cJSON *record(const char *catalog, bool pub)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "catalog", catalog);
    cJSON_AddBoolToObject(r, "public", pub);
    return r;
}

static bool is_public(const cJSON *r)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "public"));
}

static int hits(struct gw_catcache *c, const char *catalog)
{
    uint64_t gen;
    cJSON *r = gw_catcache_get(c, catalog, &gen);
    int hit = r != NULL;
    cJSON_Delete(r);
    return hit;
}

static void test_copies(void **state)
{
    (void)state;
    struct gw_catcache *c = NULL;
    assert_int_equal(gw_catcache_new(&c), 0);
    uint64_t gen;
    assert_null(gw_catcache_get(c, "alice/a", &gen));
    cJSON *r = record("alice/a", false);
    gw_catcache_put(c, "alice/a", r, gen);
    /* The cache holds its own copy: changing or freeing ours changes nothing. */
    cJSON_ReplaceItemInObject(r, "public", cJSON_CreateTrue());
    cJSON_Delete(r);
    cJSON *got = gw_catcache_get(c, "alice/a", &gen);
    assert_non_null(got);
    assert_false(is_public(got));
    /* ... and so does the caller: changing what we got does not reach the cache. */
    cJSON_ReplaceItemInObject(got, "public", cJSON_CreateTrue());
    cJSON_Delete(got);
    got = gw_catcache_get(c, "alice/a", &gen);
    assert_false(is_public(got));
    cJSON_Delete(got);
    /* Another catalog, even one sharing the slot, is a miss. */
    assert_int_equal(hits(c, "alice/b"), 0);
    gw_catcache_free(c);
}

static void test_invalidation(void **state)
{
    (void)state;
    struct gw_catcache *c = NULL;
    assert_int_equal(gw_catcache_new(&c), 0);
    uint64_t gen;
    const char *cats[] = {"alice/a", "alice/b", "bob/c"};
    for (int i = 0; i < 3; i++) {
        assert_null(gw_catcache_get(c, cats[i], &gen));
        cJSON *r = record(cats[i], false);
        gw_catcache_put(c, cats[i], r, gen);
        cJSON_Delete(r);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(hits(c, cats[i]), 1);
    gw_catcache_invalidate(c, "alice/b"); /* one catalog: only that one */
    assert_int_equal(hits(c, "alice/a"), 1);
    assert_int_equal(hits(c, "alice/b"), 0);
    assert_int_equal(hits(c, "bob/c"), 1);
    gw_catcache_invalidate(c, NULL); /* a reconnect: everything */
    for (int i = 0; i < 3; i++)
        assert_int_equal(hits(c, cats[i]), 0);
    gw_catcache_invalidate(NULL, "x/y"); /* no cache: nothing to do */
    gw_catcache_free(c);
}

/* The order rule: a lookup misses (gen g), fetches from pubsub, and meanwhile the policy
 * changes and its invalidation arrives. What it fetched may predate the change: its insert
 * with g is refused, so the next lookup asks pubsub again. An insert after the invalidation
 * was seen (a newer gen) is kept. */
static void test_invalidation_order(void **state)
{
    (void)state;
    struct gw_catcache *c = NULL;
    assert_int_equal(gw_catcache_new(&c), 0);
    uint64_t g1, g2;
    assert_null(gw_catcache_get(c, "alice/a", &g1));
    gw_catcache_invalidate(c, "alice/a"); /* arrives while the fetch is in flight */
    cJSON *stale = record("alice/a", true);
    gw_catcache_put(c, "alice/a", stale, g1);
    cJSON_Delete(stale);
    assert_null(gw_catcache_get(c, "alice/a", &g2));
    /* Any invalidation refuses an insert begun before it (conservative: one of another
     * catalog too). */
    gw_catcache_invalidate(c, "bob/zz");
    cJSON *r = record("alice/a", false);
    gw_catcache_put(c, "alice/a", r, g2);
    assert_int_equal(hits(c, "alice/a"), 0);
    /* With the current gen it sticks, until the next invalidation. */
    uint64_t g3;
    assert_null(gw_catcache_get(c, "alice/a", &g3));
    gw_catcache_put(c, "alice/a", r, g3);
    cJSON_Delete(r);
    cJSON *got = gw_catcache_get(c, "alice/a", &g3);
    assert_non_null(got);
    assert_false(is_public(got));
    cJSON_Delete(got);
    gw_catcache_invalidate(c, "alice/a");
    assert_int_equal(hits(c, "alice/a"), 0);
    gw_catcache_free(c);
}

static void test_ttl(void **state)
{
    (void)state;
    struct gw_catcache *c = NULL;
    assert_int_equal(gw_catcache_new(&c), 0);
    uint64_t gen;
    assert_null(gw_catcache_get(c, "alice/a", &gen));
    cJSON *r = record("alice/a", false);
    gw_catcache_put(c, "alice/a", r, gen);
    cJSON_Delete(r);
    assert_int_equal(hits(c, "alice/a"), 1);
    /* Aged past the TTL (a lost invalidation): a miss. */
    c->slot[slot_of("alice/a")].at_ms -= CATCACHE_TTL_MS + 1;
    assert_int_equal(hits(c, "alice/a"), 0);
    gw_catcache_free(c);
}

/* Bounded: thousands of catalogs never make it hold more than its slots; an over-long name
 * is not kept. */
static void test_bounded(void **state)
{
    (void)state;
    struct gw_catcache *c = NULL;
    assert_int_equal(gw_catcache_new(&c), 0);
    char cat[64];
    for (int i = 0; i < 5000; i++) {
        uint64_t gen;
        snprintf(cat, sizeof(cat), "user%d/cat%d", i % 97, i);
        cJSON_Delete(gw_catcache_get(c, cat, &gen));
        cJSON *r = record(cat, false);
        gw_catcache_put(c, cat, r, gen);
        cJSON_Delete(r);
    }
    int held = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(cat, sizeof(cat), "user%d/cat%d", i % 97, i);
        held += hits(c, cat);
    }
    assert_true(held <= CATCACHE_SLOTS);
    assert_true(held > 0);
    int used = 0;
    for (size_t i = 0; i < CATCACHE_SLOTS; i++)
        used += c->slot[i].record != NULL;
    assert_int_equal(used, held);

    char *big = malloc(DYNO_CATALOG_MAX + 10);
    memset(big, 'a', DYNO_CATALOG_MAX + 9);
    big[DYNO_CATALOG_MAX + 9] = '\0';
    uint64_t gen;
    cJSON_Delete(gw_catcache_get(c, big, &gen));
    cJSON *r = record("x/y", false);
    gw_catcache_put(c, big, r, gen);
    cJSON_Delete(r);
    assert_int_equal(hits(c, big), 0);
    free(big);
    gw_catcache_free(c);
}

/* Lookups, inserts and invalidations from several threads (the MHD threads and the MQTT
 * loop thread); run under ASan/TSan it shows no race, and it ends consistent. */
struct stress {
    struct gw_catcache *c;
    int id;
    int wrong; /* records found under another catalog's name (asserted in the main thread) */
};

static void *stress_main(void *arg)
{
    struct stress *s = arg;
    char cat[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(cat, sizeof(cat), "u%d/c%d", i % 7, i % 300);
        if (s->id == 0 && i % 50 == 0) {
            gw_catcache_invalidate(s->c, i % 500 == 0 ? NULL : cat);
            continue;
        }
        uint64_t gen;
        cJSON *got = gw_catcache_get(s->c, cat, &gen);
        if (got) {
            s->wrong += strcmp(cJSON_GetObjectItemCaseSensitive(got, "catalog")->valuestring, cat) != 0;
            cJSON_Delete(got);
        } else {
            cJSON *r = record(cat, false);
            gw_catcache_put(s->c, cat, r, gen);
            cJSON_Delete(r);
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct gw_catcache *c = NULL;
    assert_int_equal(gw_catcache_new(&c), 0);
    pthread_t th[4];
    struct stress s[4];
    for (int i = 0; i < 4; i++) {
        s[i] = (struct stress){c, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, stress_main, &s[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(s[i].wrong, 0);
    }
    gw_catcache_invalidate(c, NULL);
    assert_int_equal(hits(c, "u1/c1"), 0);
    gw_catcache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copies),
        cmocka_unit_test(test_invalidation),
        cmocka_unit_test(test_invalidation_order),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
