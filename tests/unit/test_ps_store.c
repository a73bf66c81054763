/*
 * Unit tests of the pubsub store and RPC handlers (agents/pubsub/) on an in-memory SQLite
 * database, without a broker (ctx.mq is NULL, so the feeds publish nothing). The agent's
 * sources are compiled in because unit tests link only dyno_core.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

#include "../../agents/pubsub/ps_store.c"
#include "../../agents/pubsub/ps_feed.c"
#include "../../agents/pubsub/ps_rpc.c"
#include "agent_fixture.h"

#define NOW 1767139200

struct fx {
    struct ps_ctx ctx;
    char err[256];
};

static int setup(void **state)
{
    static struct fx f;
    memset(&f, 0, sizeof(f));
    assert_int_equal(ps_store_open(":memory:", &f.ctx.store), 0);
    assert_int_equal(pthread_mutex_init(&f.ctx.feed_mu, NULL), 0);
    f.ctx.default_k = 3;
    f.ctx.default_m = 2;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    ps_store_close(f->ctx.store);
    pthread_mutex_destroy(&f->ctx.feed_mu);
    return 0;
}

static void create(struct fx *f, const char *path, bool pub)
{
    cJSON *res = NULL, *pol = NULL;
    char owner[DYNO_SEG_MAX + 1];
    assert_int_equal(dyno_catalog_owner(path, owner, sizeof(owner)), 0);
    assert_int_equal(
        ps_store_create(f->ctx.store, path, owner, pub, 3, 2, false, NOW, &res, &pol, f->err, sizeof(f->err)),
        0);
    cJSON_Delete(res);
    cJSON_Delete(pol);
}

static bool exists(struct fx *f, const char *path)
{
    cJSON *res = NULL;
    int rc = ps_store_get(f->ctx.store, path, &res, f->err, sizeof(f->err));
    cJSON_Delete(res);
    assert_true(rc == 0 || rc == DYNO_ENOTFOUND);
    return rc == 0;
}

static void share(struct fx *f, const char *path, const char *principal, const char *kind, const char *access)
{
    cJSON *pol = NULL;
    assert_int_equal(
        ps_store_share_add(f->ctx.store, path, principal, kind, access, &pol, f->err, sizeof(f->err)), 0);
    cJSON_Delete(pol);
}

static bool can_read(struct fx *f, const char *path, const char *sub, const char *org, bool admin)
{
    struct ps_who who = {.sub = sub, .org = org, .admin = admin};
    bool ok = true;
    assert_int_equal(ps_store_may_read(f->ctx.store, path, &who, &ok, f->err, sizeof(f->err)), 0);
    return ok;
}

/* Calls an RPC handler with the JSON text req; returns its code, *res when asked. */
static int call(struct fx *f, const char *method, const char *req, cJSON **res)
{
    return fx_rpc_call(ps_rpc_methods, ps_rpc_nmethods, &f->ctx, method, req, res, f->err, sizeof(f->err));
}

/* The relation of path in a catalog.list result, or NULL when absent. */
static const char *relation(cJSON *list, const char *path)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(list, "catalogs"))
    {
        if (strcmp(dyno_json_str(it, "catalog"), path) == 0)
            return dyno_json_str(it, "relation");
    }
    return NULL;
}

static int count_rows(struct fx *f, const char *sql)
{
    return fx_count_rows(f->ctx.store->db, sql);
}

/* ---- catalogs ------------------------------------------------------------------------ */

/* A pubsub.db of before site_spread: opened, it gains the column, its catalogs are
 * strict, and a new catalog can be relaxed (kept by an idempotent create). */
static void test_site_spread_added_to_old_files(void **state)
{
    char path[] = "/tmp/dyno-ps-old-XXXXXX";
    int fd = mkstemp(path);
    sqlite3 *old = NULL;
    (void)state;
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(sqlite3_open(path, &old), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(old,
                     "CREATE TABLE catalogs(path TEXT PRIMARY KEY, owner TEXT NOT NULL,"
                     " public INTEGER NOT NULL DEFAULT 0, k INTEGER NOT NULL, m INTEGER NOT NULL,"
                     " created_at INTEGER NOT NULL);"
                     "INSERT INTO catalogs VALUES('alice/old', 'alice', 0, 3, 2, 1);",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(old);
    struct ps_store *st = NULL;
    char err[256];
    cJSON *res = NULL, *pol = NULL;
    assert_int_equal(ps_store_open(path, &st), 0);
    assert_int_equal(ps_store_get(st, "alice/old", &res, err, sizeof(err)), 0);
    assert_string_equal(dyno_json_str(res, "site_spread"), "strict");
    cJSON_Delete(res);
    assert_int_equal(
        ps_store_create(st, "alice/new", "alice", false, 3, 2, true, NOW, &res, &pol, err, sizeof(err)), 0);
    assert_string_equal(dyno_json_str(res, "site_spread"), "relaxed");
    cJSON_Delete(res);
    cJSON_Delete(pol);
    ps_store_close(st);
    assert_int_equal(ps_store_open(path, &st), 0); /* reopened: nothing to add twice */
    assert_int_equal(ps_store_get(st, "alice/new", &res, err, sizeof(err)), 0);
    assert_string_equal(dyno_json_str(res, "site_spread"), "relaxed");
    cJSON_Delete(res);
    ps_store_close(st);
    unlink(path);
}

static void test_create_idempotent_keeps_settings(void **state)
{
    struct fx *f = *state;
    cJSON *res = NULL, *pol = NULL;
    assert_int_equal(ps_store_create(f->ctx.store, "alice/x", "alice", true, 4, 1, false, NOW, &res, &pol,
                                     f->err, sizeof(f->err)),
                     0);
    assert_int_equal(cJSON_GetObjectItem(res, "k")->valueint, 4);
    assert_int_equal(cJSON_GetObjectItem(res, "m")->valueint, 1);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(pol, "public")));
    assert_string_equal(dyno_json_str(pol, "owner"), "alice");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(pol, "shares")), 0);
    cJSON_Delete(res);
    cJSON_Delete(pol);
    assert_int_equal(ps_store_create(f->ctx.store, "alice/x", "alice", false, 2, 2, false, NOW + 5, &res,
                                     &pol, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(cJSON_GetObjectItem(res, "k")->valueint, 4);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(res, "public")));
    int64_t created = 0;
    assert_int_equal(dyno_json_i64(res, "created_at", &created), 0);
    assert_int_equal(created, NOW);
    cJSON_Delete(res);
    cJSON_Delete(pol);
}

static void test_nested_mkdir_p(void **state)
{
    struct fx *f = *state;
    create(f, "alice/a/b/c", false);
    assert_true(exists(f, "alice/a/b/c"));
    assert_false(exists(f, "alice/a"));
    assert_false(exists(f, "alice/a/b"));
    create(f, "alice/a", false);
    assert_true(exists(f, "alice/a"));
    /* Shares never inherit: a share of alice/a says nothing about alice/a/b/c. */
    share(f, "alice/a", "bob", "user", "read");
    assert_true(can_read(f, "alice/a", "bob", "", false));
    assert_false(can_read(f, "alice/a/b/c", "bob", "", false));
}

static void test_delete_conflict_dry_run_recursive(void **state)
{
    struct fx *f = *state;
    create(f, "alice/a", false);
    create(f, "alice/a/b", false);
    create(f, "alice/a/b/c", false);
    /* Neighbours that a prefix or LIKE match would catch. */
    create(f, "alice/a0", false);
    create(f, "alice/a-b", false);
    create(f, "alice/ab", false);
    create(f, "alice/a_b", false);
    create(f, "alice/aXb", false);
    share(f, "alice/a/b", "bob", "user", "read");
    struct ps_who bob = {.sub = "bob", .org = "", .admin = false};
    assert_int_equal(ps_store_sub_add(f->ctx.store, "alice/a/b", &bob, NOW, f->err, sizeof(f->err)), 0);

    cJSON *del = NULL;
    assert_int_equal(
        ps_store_delete(f->ctx.store, "alice/a", false, false, NOW, &del, f->err, sizeof(f->err)),
        DYNO_ECONFLICT);
    assert_null(del);
    assert_non_null(strstr(f->err, "2 sub-catalogs"));
    assert_true(exists(f, "alice/a"));

    assert_int_equal(ps_store_delete(f->ctx.store, "alice/a", true, true, NOW, &del, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(cJSON_GetArraySize(del), 3);
    cJSON_Delete(del);
    assert_true(exists(f, "alice/a/b/c"));
    assert_int_equal(count_rows(f, "SELECT count(*) FROM tombstones"), 0);

    assert_int_equal(ps_store_delete(f->ctx.store, "alice/a", true, false, NOW, &del, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(cJSON_GetArraySize(del), 3);
    assert_string_equal(cJSON_GetArrayItem(del, 0)->valuestring, "alice/a");
    assert_string_equal(cJSON_GetArrayItem(del, 1)->valuestring, "alice/a/b");
    assert_string_equal(cJSON_GetArrayItem(del, 2)->valuestring, "alice/a/b/c");
    cJSON_Delete(del);
    assert_false(exists(f, "alice/a"));
    assert_false(exists(f, "alice/a/b/c"));
    assert_true(exists(f, "alice/a0"));
    assert_true(exists(f, "alice/a-b"));
    assert_true(exists(f, "alice/ab"));
    assert_true(exists(f, "alice/a_b"));
    assert_true(exists(f, "alice/aXb"));
    assert_int_equal(count_rows(f, "SELECT count(*) FROM shares"), 0);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM subscriptions"), 0);

    /* Tombstones for the feed, dropped when a path is created again or grows old. */
    cJSON *tomb = NULL;
    assert_int_equal(
        ps_store_tombstone_page(f->ctx.store, "", PS_PAGE_MAX, NOW, &tomb, f->err, sizeof(f->err)), 0);
    assert_int_equal(cJSON_GetArraySize(tomb), 3);
    cJSON_Delete(tomb);
    create(f, "alice/a/b", false);
    assert_int_equal(
        ps_store_tombstone_page(f->ctx.store, "", PS_PAGE_MAX, NOW, &tomb, f->err, sizeof(f->err)), 0);
    assert_int_equal(cJSON_GetArraySize(tomb), 2);
    cJSON_Delete(tomb);
    assert_int_equal(ps_store_tombstone_page(f->ctx.store, "", PS_PAGE_MAX, NOW + PS_TOMBSTONE_TTL + 1, &tomb,
                                             f->err, sizeof(f->err)),
                     0);
    assert_int_equal(cJSON_GetArraySize(tomb), 0);
    cJSON_Delete(tomb);

    /* Only a (missing) parent of sub-catalogs: conflict, or recursive removes them. */
    assert_int_equal(
        ps_store_delete(f->ctx.store, "alice/a", false, false, NOW, &del, f->err, sizeof(f->err)),
        DYNO_ECONFLICT);
    assert_int_equal(
        ps_store_delete(f->ctx.store, "alice/nothing", true, false, NOW, &del, f->err, sizeof(f->err)),
        DYNO_ENOTFOUND);
    assert_int_equal(
        ps_store_delete(f->ctx.store, "alice/a_b", false, false, NOW, &del, f->err, sizeof(f->err)), 0);
    cJSON_Delete(del);
    assert_true(exists(f, "alice/aXb"));
}

/* ---- shares and the read rule -------------------------------------------------------- */

static void test_share_replace_and_remove(void **state)
{
    struct fx *f = *state;
    cJSON *pol = NULL, *removed = NULL;
    create(f, "alice/x", false);
    assert_int_equal(
        ps_store_share_add(f->ctx.store, "alice/nope", "bob", "user", "read", &pol, f->err, sizeof(f->err)),
        DYNO_ENOTFOUND);
    share(f, "alice/x", "bob", "user", "read");
    share(f, "alice/x", "bob", "user", "write"); /* replaces */
    share(f, "alice/x", "bob", "org", "read");   /* another principal: the org "bob" */
    assert_int_equal(
        ps_store_share_add(f->ctx.store, "alice/x", "lab", "org", "read", &pol, f->err, sizeof(f->err)), 0);
    const cJSON *shares = cJSON_GetObjectItem(pol, "shares");
    assert_int_equal(cJSON_GetArraySize(shares), 3);
    /* Ordered by kind, principal: org bob, org lab, user bob. */
    assert_string_equal(dyno_json_str(cJSON_GetArrayItem(shares, 2), "principal"), "bob");
    assert_string_equal(dyno_json_str(cJSON_GetArrayItem(shares, 2), "access"), "write");
    cJSON_Delete(pol);

    /* The record the plugin parses. */
    assert_int_equal(policy_locked(f->ctx.store, "alice/x", &pol), SQLITE_OK);
    char *text = dyno_json_print(pol, NULL);
    struct dyno_acl_policy *p = NULL;
    assert_int_equal(dyno_acl_policy_parse(text, strlen(text), &p), 0);
    assert_int_equal(p->nshares, 3);
    dyno_acl_policy_free(p);
    free(text);
    cJSON_Delete(pol);

    /* Without a kind both shares named bob go. */
    assert_int_equal(
        ps_store_share_remove(f->ctx.store, "alice/x", "bob", NULL, &removed, &pol, f->err, sizeof(f->err)),
        0);
    assert_int_equal(cJSON_GetArraySize(removed), 2);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(pol, "shares")), 1);
    cJSON_Delete(removed);
    cJSON_Delete(pol);
    assert_int_equal(
        ps_store_share_remove(f->ctx.store, "alice/x", "bob", NULL, &removed, &pol, f->err, sizeof(f->err)),
        DYNO_ENOTFOUND);
    assert_null(removed);
    assert_null(pol);
    assert_int_equal(
        ps_store_share_remove(f->ctx.store, "alice/x", "lab", "user", &removed, &pol, f->err, sizeof(f->err)),
        DYNO_ENOTFOUND);
    assert_int_equal(
        ps_store_share_remove(f->ctx.store, "alice/x", "lab", "org", &removed, &pol, f->err, sizeof(f->err)),
        0);
    cJSON_Delete(removed);
    cJSON_Delete(pol);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM shares"), 0);
}

static void test_share_limit_changes_nothing(void **state)
{
    struct fx *f = *state;
    char name[32];
    create(f, "alice/x", false);
    for (int i = 0; i < DYNO_ACL_SHARES_MAX; i++) {
        snprintf(name, sizeof(name), "u%04d", i);
        share(f, "alice/x", name, "user", "read");
    }
    cJSON *pol = NULL;
    assert_int_equal(ps_store_share_add(f->ctx.store, "alice/x", "one-too-many", "user", "read", &pol, f->err,
                                        sizeof(f->err)),
                     DYNO_ETOOBIG);
    assert_null(pol);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM shares"), DYNO_ACL_SHARES_MAX);
    /* Replacing an existing share is still fine at the limit. */
    share(f, "alice/x", "u0000", "user", "write");
}

static void test_read_rule(void **state)
{
    struct fx *f = *state;
    create(f, "alice/priv", false);
    create(f, "alice/pub", true);
    create(f, "alice/org", false);
    create(f, "alice/deep", false);
    share(f, "alice/priv", "bob", "user", "read");
    share(f, "alice/org", "lab", "org", "read");
    share(f, "alice/deep", "lab/ct", "org", "write");

    assert_true(can_read(f, "alice/priv", "alice", "", false));  /* owner */
    assert_true(can_read(f, "alice/priv", "root", "", true));    /* admin */
    assert_true(can_read(f, "alice/priv", "bob", "", false));    /* user share */
    assert_false(can_read(f, "alice/priv", "carol", "", false)); /* nobody */
    assert_false(can_read(f, "alice/priv", "bobby", "", false));
    assert_true(can_read(f, "alice/pub", "carol", "", false)); /* public */

    /* "lab" covers "lab" and "lab/ct", never "labx" or "lab2/x"; "lab/ct" not "lab". */
    assert_true(can_read(f, "alice/org", "carol", "lab", false));
    assert_true(can_read(f, "alice/org", "carol", "lab/ct", false));
    assert_true(can_read(f, "alice/org", "carol", "lab/ct/x", false));
    assert_false(can_read(f, "alice/org", "carol", "labx", false));
    assert_false(can_read(f, "alice/org", "carol", "labx/ct", false));
    assert_false(can_read(f, "alice/org", "carol", "", false));
    assert_false(can_read(f, "alice/org", "lab", "", false)); /* a user named like the org */
    assert_true(can_read(f, "alice/deep", "dan", "lab/ct", false));
    assert_false(can_read(f, "alice/deep", "dan", "lab", false));
    assert_false(can_read(f, "alice/deep", "dan", "lab/ctx", false));

    struct ps_who who = {.sub = "x", .org = "", .admin = false};
    bool ok = true;
    assert_int_equal(ps_store_may_read(f->ctx.store, "alice/none", &who, &ok, f->err, sizeof(f->err)),
                     DYNO_ENOTFOUND);
    assert_false(ok);

    /* The rule agrees with lib/acl.h on the same records. */
    const char *orgs[] = {"", "lab", "lab/ct", "labx", "lab/ctx"};
    const char *paths[] = {"alice/priv", "alice/pub", "alice/org", "alice/deep"};
    for (size_t i = 0; i < 4; i++) {
        cJSON *pol = NULL;
        assert_int_equal(policy_locked(f->ctx.store, paths[i], &pol), SQLITE_OK);
        char *text = dyno_json_print(pol, NULL);
        struct dyno_acl_policy *p = NULL;
        assert_int_equal(dyno_acl_policy_parse(text, strlen(text), &p), 0);
        for (size_t j = 0; j < 5; j++) {
            struct dyno_acl_principal pr = {.sub = "bob", .org = orgs[j]};
            assert_int_equal(dyno_acl_decide(p, &pr, DYNO_ACL_READ),
                             can_read(f, paths[i], "bob", orgs[j], false));
        }
        dyno_acl_policy_free(p);
        free(text);
        cJSON_Delete(pol);
    }
}

/* ---- subscriptions and catalog.list -------------------------------------------------- */

static void test_subscriptions_and_list(void **state)
{
    struct fx *f = *state;
    struct ps_who bob = {.sub = "bob", .org = "lab/ct", .admin = false};
    cJSON *res = NULL;
    create(f, "alice/priv", false);
    create(f, "alice/pub", true);
    create(f, "alice/shared", false);
    create(f, "bob/mine", false);
    share(f, "alice/shared", "lab", "org", "write");

    assert_int_equal(ps_store_sub_add(f->ctx.store, "alice/priv", &bob, NOW, f->err, sizeof(f->err)),
                     DYNO_EFORBIDDEN);
    assert_int_equal(ps_store_sub_add(f->ctx.store, "alice/none", &bob, NOW, f->err, sizeof(f->err)),
                     DYNO_ENOTFOUND);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM subscriptions"), 0);
    assert_int_equal(ps_store_sub_add(f->ctx.store, "alice/pub", &bob, NOW, f->err, sizeof(f->err)), 0);
    assert_int_equal(ps_store_sub_add(f->ctx.store, "alice/pub", &bob, NOW + 1, f->err, sizeof(f->err)), 0);
    assert_int_equal(ps_store_sub_add(f->ctx.store, "alice/shared", &bob, NOW, f->err, sizeof(f->err)), 0);
    assert_int_equal(ps_store_sub_list(f->ctx.store, "bob", &res, f->err, sizeof(f->err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "subscriptions")), 2);
    cJSON_Delete(res);

    assert_int_equal(ps_store_list(f->ctx.store, &bob, false, &res, f->err, sizeof(f->err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "catalogs")), 3);
    assert_string_equal(relation(res, "bob/mine"), "owner");
    assert_string_equal(relation(res, "alice/shared"), "shared");
    assert_string_equal(relation(res, "alice/pub"), "subscribed");
    assert_null(relation(res, "alice/priv"));
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(res, "catalogs"), 0);
    assert_string_equal(dyno_json_str(first, "catalog"), "alice/pub");
    assert_string_equal(dyno_json_str(first, "access"), "read");
    assert_int_equal(cJSON_GetObjectItem(first, "k")->valueint, 3);
    cJSON_Delete(res);

    /* With public: carol sees the public catalog as "public", nothing private. */
    struct ps_who carol = {.sub = "carol", .org = "", .admin = false};
    assert_int_equal(ps_store_list(f->ctx.store, &carol, true, &res, f->err, sizeof(f->err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "catalogs")), 1);
    assert_string_equal(relation(res, "alice/pub"), "public");
    cJSON_Delete(res);

    /* A subscription bob may no longer read is not listed; the row stays until removed. */
    share(f, "alice/priv", "bob", "user", "read");
    assert_int_equal(ps_store_sub_add(f->ctx.store, "alice/priv", &bob, NOW, f->err, sizeof(f->err)), 0);
    cJSON *removed = NULL, *pol = NULL;
    assert_int_equal(ps_store_share_remove(f->ctx.store, "alice/priv", "bob", "user", &removed, &pol, f->err,
                                           sizeof(f->err)),
                     0);
    cJSON_Delete(removed);
    cJSON_Delete(pol);
    assert_int_equal(ps_store_list(f->ctx.store, &bob, false, &res, f->err, sizeof(f->err)), 0);
    assert_null(relation(res, "alice/priv"));
    cJSON_Delete(res);

    bool gone = false;
    assert_int_equal(ps_store_sub_remove(f->ctx.store, "alice/pub", "bob", &gone, f->err, sizeof(f->err)), 0);
    assert_true(gone);
    assert_int_equal(ps_store_sub_remove(f->ctx.store, "alice/pub", "bob", &gone, f->err, sizeof(f->err)), 0);
    assert_false(gone);
}

static void test_policy_pages(void **state)
{
    struct fx *f = *state;
    char path[64];
    for (int i = 0; i < 25; i++) {
        snprintf(path, sizeof(path), "u%02d/c", i);
        create(f, path, i % 2 == 0);
    }
    share(f, "u03/c", "bob", "user", "read");
    char after[DYNO_CATALOG_MAX + 1] = "";
    int total = 0, pages = 0;
    for (;;) {
        cJSON *page = NULL;
        assert_int_equal(ps_store_policy_page(f->ctx.store, after, 10, &page, f->err, sizeof(f->err)), 0);
        int n = cJSON_GetArraySize(page);
        const cJSON *it;
        cJSON_ArrayForEach(it, page)
        {
            if (strcmp(dyno_json_str(it, "catalog"), "u03/c") == 0)
                assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(it, "shares")), 1);
            snprintf(after, sizeof(after), "%s", dyno_json_str(it, "catalog"));
        }
        cJSON_Delete(page);
        total += n;
        pages++;
        if (n < 10)
            break;
    }
    assert_int_equal(total, 25);
    assert_int_equal(pages, 3);
    cJSON *page = NULL;
    assert_int_equal(ps_store_policy_page(f->ctx.store, "", 0, &page, f->err, sizeof(f->err)), DYNO_EINVAL);
    assert_int_equal(ps_store_policy_page(f->ctx.store, "", PS_PAGE_MAX + 1, &page, f->err, sizeof(f->err)),
                     DYNO_EINVAL);
}

/* ---- the RPC layer: authorization and hostile input ---------------------------------- */

#define ALICE "\"caller\":{\"sub\":\"alice\",\"org\":\"\",\"admin\":false}"
#define BOB "\"caller\":{\"sub\":\"bob\",\"org\":\"lab\",\"admin\":false}"
#define ROOT "\"caller\":{\"sub\":\"root\",\"admin\":true}"

static void test_rpc_authorization(void **state)
{
    struct fx *f = *state;
    cJSON *res = NULL;
    assert_int_equal(call(f, "catalog.create", "{\"catalog\":\"alice/x/y\"," ALICE "}", NULL), 0);
    assert_int_equal(call(f, "catalog.create", "{\"catalog\":\"alice/z\"," BOB "}", NULL), DYNO_EFORBIDDEN);
    assert_int_equal(call(f, "catalog.create", "{\"catalog\":\"alice/z\",\"k\":5,\"m\":0," ROOT "}", &res),
                     0);
    assert_int_equal(cJSON_GetObjectItem(res, "k")->valueint, 5);
    cJSON_Delete(res);
    assert_int_equal(call(f, "catalog.create", "{\"catalog\":\"alice/x\"," ALICE "}", NULL), 0);
    assert_int_equal(
        call(f, "share.add",
             "{\"catalog\":\"alice/x\",\"principal\":\"lab\",\"kind\":\"org\",\"access\":\"read\"," BOB "}",
             NULL),
        DYNO_EFORBIDDEN);
    assert_int_equal(call(f, "subscription.add", "{\"catalog\":\"alice/x\"," BOB "}", NULL), DYNO_EFORBIDDEN);
    assert_int_equal(
        call(f, "share.add",
             "{\"catalog\":\"alice/x\",\"principal\":\"lab\",\"kind\":\"org\",\"access\":\"read\"," ALICE "}",
             &res),
        0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "shares")), 1);
    cJSON_Delete(res);
    assert_int_equal(call(f, "subscription.add", "{\"catalog\":\"alice/x\"," BOB "}", NULL), 0);
    assert_int_equal(call(f, "catalog.list", "{" BOB "}", &res), 0);
    assert_string_equal(relation(res, "alice/x"), "shared");
    cJSON_Delete(res);
    assert_int_equal(call(f, "catalog.get", "{\"catalog\":\"alice/x\"}", &res), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "shares")), 1);
    cJSON_Delete(res);
    assert_int_equal(
        call(f, "share.remove", "{\"catalog\":\"alice/x\",\"principal\":\"lab\"," ALICE "}", &res), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "removed")), 1);
    cJSON_Delete(res);
    /* Delete: owner or admin, conflict without recursive. */
    assert_int_equal(call(f, "catalog.delete", "{\"catalog\":\"alice/x\"," BOB "}", NULL), DYNO_EFORBIDDEN);
    assert_int_equal(call(f, "catalog.delete", "{\"catalog\":\"alice/x\"," ALICE "}", NULL), DYNO_ECONFLICT);
    assert_int_equal(call(f, "catalog.delete",
                          "{\"catalog\":\"alice/x\",\"recursive\":true,\"dry_run\":true," ALICE "}", &res),
                     0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "deleted")), 2);
    cJSON_Delete(res);
    assert_true(exists(f, "alice/x"));
    assert_int_equal(call(f, "catalog.delete", "{\"catalog\":\"alice/x\",\"recursive\":true," ROOT "}", NULL),
                     0);
    assert_false(exists(f, "alice/x/y"));
    assert_int_equal(call(f, "subscription.list", "{" BOB "}", &res), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "subscriptions")), 0);
    cJSON_Delete(res);
}

/* The words REST paths reserve (lib/rest.h) name no new catalog, whoever asks; an admin's
 * restore (metadata rebuild) brings one back, and an existing one keeps working. */
static void test_rpc_create_refuses_reserved_words(void **state)
{
    struct fx *f = *state;
    cJSON *res = NULL;
    static const char *const reserved[] = {"alice/objects", "alice/a/shares", "alice/subscription/x",
                                           "objects/a"};
    char req[256];
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        snprintf(req, sizeof(req), "{\"catalog\":\"%s\"," ROOT "}", reserved[i]);
        f->err[0] = '\0';
        assert_int_equal(call(f, "catalog.create", req, NULL), DYNO_EINVAL);
        assert_string_equal(f->err, DYNO_REST_RESERVED_WHY);
        /* restore is for admins only */
        snprintf(req, sizeof(req), "{\"catalog\":\"%s\",\"restore\":true," ALICE "}", reserved[i]);
        int rc = call(f, "catalog.create", req, NULL);
        assert_true(rc == DYNO_EINVAL || rc == DYNO_EFORBIDDEN);
        assert_false(exists(f, reserved[i]));
    }
    assert_int_equal(count_rows(f, "SELECT count(*) FROM catalogs"), 0);
    assert_int_equal(
        call(f, "catalog.create", "{\"catalog\":\"alice/a/shares\",\"restore\":\"yes\"," ROOT "}", NULL),
        DYNO_EINVAL);
    assert_int_equal(
        call(f, "catalog.create", "{\"catalog\":\"alice/a/shares\",\"restore\":true," ROOT "}", &res), 0);
    assert_string_equal(dyno_json_str(res, "owner"), "alice");
    cJSON_Delete(res);
    /* an existing one: shares and subscriptions work as for any catalog */
    assert_int_equal(call(f, "share.add",
                          "{\"catalog\":\"alice/a/shares\",\"principal\":\"bob\",\"kind\":\"user\","
                          "\"access\":\"read\"," ALICE "}",
                          NULL),
                     0);
    assert_int_equal(call(f, "subscription.add", "{\"catalog\":\"alice/a/shares\"," BOB "}", NULL), 0);
    /* words inside a segment, or of another case, are names like any other */
    assert_int_equal(call(f, "catalog.create", "{\"catalog\":\"alice/my-shares/Objects\"," ALICE "}", NULL),
                     0);
}

static void test_rpc_hostile_input_changes_nothing(void **state)
{
    struct fx *f = *state;
    char big[2048];
    fx_fill(big, sizeof(big), 'a');
    char req[4096];
    assert_int_equal(call(f, "catalog.create", "{\"catalog\":\"alice/x\"," ALICE "}", NULL), 0);

    const char *bad_creates[] = {
        "{\"catalog\":\"alice\"," ALICE "}",
        "{\"catalog\":\"alice/../x\"," ALICE "}",
        "{\"catalog\":\"alice/x/\"," ALICE "}",
        "{\"catalog\":\"alice//x\"," ALICE "}",
        "{\"catalog\":\"alice/x+\"," ALICE "}",
        "{\"catalog\":\"alice/#\"," ALICE "}",
        "{\"catalog\":\"alice/\\u00e9\"," ALICE "}",
        "{\"catalog\":\"alice/a/b/c/d/e/f/g/h/i\"," ALICE "}",
        "{\"catalog\":\"alice/x'; DROP TABLE catalogs; --\"," ALICE "}",
        "{\"catalog\":42," ALICE "}",
        "{\"catalog\":\"alice/y\",\"k\":0," ALICE "}",
        "{\"catalog\":\"alice/y\",\"k\":33," ALICE "}",
        "{\"catalog\":\"alice/y\",\"m\":-1," ALICE "}",
        "{\"catalog\":\"alice/y\",\"k\":2.5," ALICE "}",
        "{\"catalog\":\"alice/y\",\"k\":\"3\"," ALICE "}",
        "{\"catalog\":\"alice/y\",\"public\":\"yes\"," ALICE "}",
        "{\"catalog\":\"alice/y\",\"caller\":{\"sub\":\"al/ice\"}}",
        "{\"catalog\":\"alice/y\",\"caller\":{\"sub\":\"alice\",\"org\":\"lab//x\"}}",
        "{\"catalog\":\"alice/y\",\"caller\":{\"sub\":\"alice\",\"admin\":\"true\"}}",
        "{\"catalog\":\"alice/y\",\"caller\":{\"sub\":\"alice\",\"org\":7}}",
    };
    for (size_t i = 0; i < sizeof(bad_creates) / sizeof(bad_creates[0]); i++)
        assert_int_equal(call(f, "catalog.create", bad_creates[i], NULL), DYNO_EINVAL);
    assert_int_equal(call(f, "catalog.create", "{\"catalog\":\"alice/y\"}", NULL), DYNO_EUNAUTH);
    snprintf(req, sizeof(req), "{\"catalog\":\"alice/%s\"," ALICE "}", big);
    assert_int_equal(call(f, "catalog.create", req, NULL), DYNO_EINVAL);
    snprintf(req, sizeof(req), "{\"catalog\":\"alice/y\",\"caller\":{\"sub\":\"%s\"}}", big);
    assert_int_equal(call(f, "catalog.create", req, NULL), DYNO_EINVAL);

    const char *bad_shares[] = {
        "{\"catalog\":\"alice/x\",\"principal\":\"bob\",\"kind\":\"group\",\"access\":\"read\"," ALICE "}",
        "{\"catalog\":\"alice/x\",\"principal\":\"bob\",\"kind\":\"user\",\"access\":\"admin\"," ALICE "}",
        "{\"catalog\":\"alice/x\",\"principal\":\"lab/ct\",\"kind\":\"user\",\"access\":\"read\"," ALICE "}",
        "{\"catalog\":\"alice/x\",\"principal\":\"lab/\",\"kind\":\"org\",\"access\":\"read\"," ALICE "}",
        "{\"catalog\":\"alice/x\",\"principal\":\"+\",\"kind\":\"user\",\"access\":\"read\"," ALICE "}",
        "{\"catalog\":\"alice/x\",\"principal\":\"\",\"kind\":\"user\",\"access\":\"read\"," ALICE "}",
        "{\"catalog\":\"alice/x\",\"principal\":null,\"kind\":\"user\",\"access\":\"read\"," ALICE "}",
        "{\"catalog\":\"alice/x\",\"principal\":\"a/b/c/d/e/f/g/h/"
        "i\",\"kind\":\"org\",\"access\":\"read\"," ALICE "}",
    };
    for (size_t i = 0; i < sizeof(bad_shares) / sizeof(bad_shares[0]); i++)
        assert_int_equal(call(f, "share.add", bad_shares[i], NULL), DYNO_EINVAL);
    assert_int_equal(call(f, "share.remove",
                          "{\"catalog\":\"alice/x\",\"principal\":\"bob\",\"kind\":\"x\"," ALICE "}", NULL),
                     DYNO_EINVAL);
    assert_int_equal(call(f, "catalog.delete", "{\"catalog\":\"alice/x\",\"recursive\":1," ALICE "}", NULL),
                     DYNO_EINVAL);
    assert_int_equal(call(f, "catalog.list", "{" ALICE ",\"public\":\"no\"}", NULL), DYNO_EINVAL);

    assert_int_equal(count_rows(f, "SELECT count(*) FROM catalogs"), 1);
    assert_int_equal(count_rows(f, "SELECT count(*) FROM shares"), 0);
    assert_true(exists(f, "alice/x"));
}

static void test_rpc_event_validation(void **state)
{
    struct fx *f = *state;
    const char *obj =
        "\"object\":{\"key\":\"0123456789abcdef0123456789abcdef\",\"name\":\"r\\u00e9sum\\u00e9.txt\","
        "\"size\":10,\"sha256\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}";
    char req[1024];
    /* A valid event reaches the publish step, which fails without a broker. */
    snprintf(req, sizeof(req), "{\"type\":\"object.created\",\"catalog\":\"alice/x\",%s}", obj);
    assert_int_equal(call(f, "event.emit", req, NULL), DYNO_EUNAVAIL);
    const char *bad_types[] = {"catalog.shared", "object.created ", "Object.created", "object", ""};
    for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
        snprintf(req, sizeof(req), "{\"type\":\"%s\",\"catalog\":\"alice/x\",%s}", bad_types[i], obj);
        assert_int_equal(call(f, "event.emit", req, NULL), DYNO_EINVAL);
    }
    snprintf(req, sizeof(req), "{\"type\":\"object.evicted\",\"catalog\":\"alice/#\",%s}", obj);
    assert_int_equal(call(f, "event.emit", req, NULL), DYNO_EINVAL);
    const char *bad_objects[] = {
        "{\"type\":\"object.created\",\"catalog\":\"alice/x\"}",
        "{\"type\":\"object.created\",\"catalog\":\"alice/x\",\"object\":[]}",
        "{\"type\":\"object.created\",\"catalog\":\"alice/"
        "x\",\"object\":{\"key\":\"0123456789ABCDEF0123456789abcdef\","
        "\"name\":\"n\",\"size\":1,\"sha256\":"
        "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}}",
        "{\"type\":\"object.created\",\"catalog\":\"alice/"
        "x\",\"object\":{\"key\":\"0123456789abcdef0123456789abcdef\","
        "\"name\":\"a/"
        "../b\",\"size\":1,\"sha256\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}}",
        "{\"type\":\"object.created\",\"catalog\":\"alice/"
        "x\",\"object\":{\"key\":\"0123456789abcdef0123456789abcdef\","
        "\"name\":\"n\",\"size\":-1,\"sha256\":"
        "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}}",
        "{\"type\":\"object.created\",\"catalog\":\"alice/"
        "x\",\"object\":{\"key\":\"0123456789abcdef0123456789abcdef\","
        "\"name\":\"n\",\"size\":1,\"sha256\":\"0123456789abcdef\"}}",
    };
    for (size_t i = 0; i < sizeof(bad_objects) / sizeof(bad_objects[0]); i++)
        assert_int_equal(call(f, "event.emit", bad_objects[i], NULL), DYNO_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_idempotent_keeps_settings, setup, teardown),
        cmocka_unit_test(test_site_spread_added_to_old_files),
        cmocka_unit_test_setup_teardown(test_nested_mkdir_p, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_conflict_dry_run_recursive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_share_replace_and_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_share_limit_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscriptions_and_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_authorization, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_create_refuses_reserved_words, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_hostile_input_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_event_validation, setup, teardown),
    };
    dyno_log_init("test", DYNO_LOG_ERROR + 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
