/*
 * Unit tests of the metadata store (agents/metadata/md_store.c) on an in-memory SQLite
 * database with an injected clock and a hand-made container snapshot. The agent's sources
 * are compiled in here because unit tests link only dyno_core.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

/* The store is compiled in so the test can reach its static helpers. */
#include "../../agents/metadata/md_store.c"

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct fx {
    struct md_db *db;
    struct md_node v[6];
    struct md_nodes nodes;
};

static int setup(void **state)
{
    static struct fx f;
    memset(&f, 0, sizeof(f));
    assert_int_equal(md_db_open(":memory:", &f.db), 0);
    assert_int_equal(md_db_schema(f.db), 0);
    for (int i = 0; i < 6; i++) {
        snprintf(f.v[i].id, sizeof(f.v[i].id), "c%d", i + 1);
        snprintf(f.v[i].url, sizeof(f.v[i].url), "http://127.0.0.1:%d", 40001 + i);
        snprintf(f.v[i].site, sizeof(f.v[i].site), "s%d", i % 3);
        f.v[i].capacity = 1000000;
        f.v[i].reported_free = -1; /* no status yet: the configured capacity counts */
        f.v[i].online = i < 5;     /* c6 offline */
    }
    f.nodes.v = f.v;
    f.nodes.n = 6;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    int64_t drift = -1;
    /* Whatever the test did, the usage counters equal the sums over the rows. */
    assert_int_equal(md__usage_drift(f->db, &drift), SQLITE_OK);
    assert_int_equal(drift, 0);
    md_db_close(f->db);
    return 0;
}

static int64_t used_of(struct fx *f, const char *id)
{
    struct md__usage u = {.used = -1};
    assert_int_equal(md__usage(f->db, id, &u), SQLITE_OK);
    return u.used;
}

/* Begins and commits an object named name with all fragments ok; returns its result. */
static cJSON *put(struct fx *f, const char *name, int64_t size, int64_t now)
{
    char err[256];
    cJSON *res = NULL;
    struct md_begin_req r = {
        .catalog = "alice/c", .name = name, .owner = "alice", .size = size, .k = 3, .m = 2, .unit = 1024};
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, now, &res, err, sizeof(err)), 0);
    char key[33];
    snprintf(key, sizeof(key), "%s", dyno_json_str(res, "key"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "fragments")), 5);
    cJSON_Delete(res);
    struct md_commit_frag fr[5];
    for (int i = 0; i < 5; i++)
        fr[i] = (struct md_commit_frag){.index = i, .ok = true, .size = -1};
    assert_int_equal(
        md_store_commit(f->db, key, size, SHA, fr, 5, &f->nodes, now + 1, &res, err, sizeof(err)), 0);
    return res;
}

static void test_unavailable_changes_nothing(void **state)
{
    struct fx *f = *state;
    char err[256];
    cJSON *res = NULL;
    f->v[4].online = false; /* 4 online */
    struct md_begin_req r = {
        .catalog = "alice/c", .owner = "alice", .size = 10, .k = 3, .m = 2, .unit = 1024};
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, 100, &res, err, sizeof(err)), DYNO_EUNAVAIL);
    assert_string_equal(err, "need 5 containers online with room, 4 online");
    assert_null(res);
    for (int i = 0; i < 6; i++)
        assert_int_equal(used_of(f, f->v[i].id), 0);
    f->v[4].online = true;
}

/* A container whose disk is fuller than its configured capacity says (its status reports
 * little free space) is skipped by placement, and named in the error when it is needed. */
static void test_full_disk_is_skipped(void **state)
{
    struct fx *f = *state;
    char err[256];
    cJSON *res = NULL;
    f->v[5].online = true;      /* six online */
    f->v[2].reported_free = 10; /* c3's disk is nearly full */
    struct md_begin_req r = {
        .catalog = "alice/c", .owner = "alice", .size = 5000, .k = 3, .m = 2, .unit = 1024};
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, 100, &res, err, sizeof(err)), 0);
    cJSON *fr;
    cJSON_ArrayForEach(fr, cJSON_GetObjectItem(res, "fragments"))
        assert_string_not_equal(dyno_json_str(fr, "container"), "c3");
    cJSON_Delete(res);
    f->v[5].online = false; /* five online, one of them full: no room for five fragments */
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, 100, &res, err, sizeof(err)), DYNO_EUNAVAIL);
    assert_non_null(strstr(err, "4 with room"));
    f->v[2].reported_free = -1;
}

/* The site rule (lib/placement.h) in object.begin: k=2, m=1 needs three sites with one
 * fragment each; with site s2 down only two are left: refused naming the rule, nothing
 * reserved, unless the object's catalog is relaxed. */
static void test_begin_site_rule(void **state)
{
    struct fx *f = *state;
    char err[256];
    cJSON *res = NULL;
    struct md_begin_req r = {
        .catalog = "alice/c", .owner = "alice", .size = 5000, .k = 2, .m = 1, .unit = 1024};
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, 100, &res, err, sizeof(err)), 0);
    char seen[3] = {0};
    cJSON *fr;
    cJSON_ArrayForEach(fr, cJSON_GetObjectItem(res, "fragments"))
    {
        int c = atoi(dyno_json_str(fr, "container") + 1) - 1;
        assert_int_equal(seen[c % 3]++, 0); /* one a site */
    }
    cJSON_Delete(res);
    int64_t before[6];
    for (int i = 0; i < 6; i++)
        before[i] = used_of(f, f->v[i].id);
    f->v[2].online = false; /* c3 and c6: site s2 down */
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, 100, &res, err, sizeof(err)), DYNO_EUNAVAIL);
    assert_non_null(strstr(err, "site"));
    assert_null(res);
    for (int i = 0; i < 6; i++)
        assert_int_equal(used_of(f, f->v[i].id), before[i]);
    r.site_relaxed = true;
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, 100, &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "fragments")), 3);
    cJSON_Delete(res);
    f->v[2].online = true;
}

/* A metadata.db of schema version 1 (no objects.site_spread): md_db_schema adds the column,
 * keeps the objects (strict), and relaxed objects can be begun. */
static void test_schema_1_gets_site_spread(void **state)
{
    char path[] = "/tmp/dyno-md-v1-XXXXXX";
    int fd = mkstemp(path);
    struct md_db *db = NULL;
    char err[256];
    cJSON *res = NULL;
    struct fx *f = *state;
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(md_db_open(path, &db), 0);
    assert_int_equal(md_db_schema(db), 0);
    struct md_begin_req r = {
        .catalog = "alice/c", .owner = "alice", .size = 10, .k = 3, .m = 2, .unit = 1024};
    assert_int_equal(md_store_begin(db, &r, &f->nodes, 100, &res, err, sizeof(err)), 0);
    char key[DYNO_KEY_LEN + 1];
    snprintf(key, sizeof(key), "%s", dyno_json_str(res, "key"));
    cJSON_Delete(res);
    /* back to version 1 */
    assert_int_equal(
        sqlite3_exec(db->db,
                     "ALTER TABLE objects DROP COLUMN attrs; ALTER TABLE objects DROP COLUMN site_spread; "
                     "PRAGMA user_version=1",
                     NULL, NULL, NULL),
        SQLITE_OK);
    md_db_close(db);
    assert_int_equal(md_db_open(path, &db), 0);
    assert_int_equal(md_db_schema(db), 0);
    struct md__obj o;
    assert_int_equal(md__obj_get(db, key, &o), SQLITE_OK);
    assert_false(o.site_relaxed);
    r.site_relaxed = true;
    assert_int_equal(md_store_begin(db, &r, &f->nodes, 100, &res, err, sizeof(err)), 0);
    snprintf(key, sizeof(key), "%s", dyno_json_str(res, "key"));
    cJSON_Delete(res);
    assert_int_equal(md__obj_get(db, key, &o), SQLITE_OK);
    assert_true(o.site_relaxed);
    md_db_close(db);
    assert_int_equal(md_db_open(path, &db), 0); /* version 2: nothing added twice */
    assert_int_equal(md_db_schema(db), 0);
    md_db_close(db);
    unlink(path);
    snprintf(err, sizeof(err), "%s-wal", path);
    unlink(err);
    snprintf(err, sizeof(err), "%s-shm", path);
    unlink(err);
}

static void test_begin_commit_get_usage(void **state)
{
    struct fx *f = *state;
    char err[256];
    cJSON *res = put(f, "x", 5000, 100);
    assert_string_equal(dyno_json_str(res, "state"), "committed");
    assert_null(cJSON_GetObjectItem(res, "replaced"));
    char key[33];
    snprintf(key, sizeof(key), "%s", dyno_json_str(res, "key"));
    cJSON_Delete(res);
    struct dyno_layout l = {.size = 5000, .unit = 1024, .k = 3};
    int64_t fs = (int64_t)dyno_layout_fragment_size(&l);
    for (int i = 0; i < 5; i++)
        assert_int_equal(used_of(f, f->v[i].id), fs);
    assert_int_equal(used_of(f, "c6"), 0);
    assert_int_equal(md_store_get(f->db, key, &f->nodes, &res, err, sizeof(err)), 0);
    const cJSON *fr = cJSON_GetArrayItem(cJSON_GetObjectItem(res, "fragments"), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(fr, "online")));
    assert_non_null(strstr(dyno_json_str(fr, "url"), "http://127.0.0.1:"));
    cJSON_Delete(res);
}

/* Attributes given at commit come back from object.get; an object is found by its name,
 * '/' and all (S3 keys, issue 14), and a name that is not there is not found. */
static void test_attrs_and_get_by_name(void **state)
{
    struct fx *f = *state;
    char err[256];
    cJSON *res = NULL;
    struct md_begin_req r = {.catalog = "alice/c",
                             .name = "photos/2026/a.jpg",
                             .owner = "alice",
                             .size = 10,
                             .k = 3,
                             .m = 2,
                             .unit = 1024};
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, 100, &res, err, sizeof(err)), 0);
    char key[33];
    snprintf(key, sizeof(key), "%s", dyno_json_str(res, "key"));
    cJSON_Delete(res);
    struct md_commit_frag fr[5] = {{0, true, -1}, {1, true, -1}, {2, true, -1}, {3, true, -1}, {4, true, -1}};
    const char *attrs = "{\"etag\":\"0123456789abcdef0123456789abcdef\",\"content_type\":\"image/jpeg\"}";
    assert_int_equal(md_store_commit_attrs(f->db, key, NULL, attrs, 10, SHA, fr, 5, &f->nodes, 101, &res, err,
                                           sizeof(err)),
                     0);
    cJSON_Delete(res);
    assert_int_equal(
        md_store_get_by_name(f->db, "alice/c", "photos/2026/a.jpg", &f->nodes, &res, err, sizeof(err)), 0);
    assert_string_equal(dyno_json_str(res, "key"), key);
    const cJSON *a = cJSON_GetObjectItem(res, "attrs");
    assert_true(cJSON_IsObject(a));
    assert_string_equal(dyno_json_str(a, "content_type"), "image/jpeg");
    cJSON_Delete(res);
    assert_int_equal(md_store_get_by_name(f->db, "alice/c", "photos/2026", &f->nodes, &res, err, sizeof(err)),
                     DYNO_ENOTFOUND);
    assert_int_equal(
        md_store_get_by_name(f->db, "alice/d", "photos/2026/a.jpg", &f->nodes, &res, err, sizeof(err)),
        DYNO_ENOTFOUND);
    /* without attrs: none shown */
    res = put(f, "plain", 10, 100);
    snprintf(key, sizeof(key), "%s", dyno_json_str(res, "key"));
    cJSON_Delete(res);
    assert_int_equal(md_store_get(f->db, key, &f->nodes, &res, err, sizeof(err)), 0);
    assert_null(cJSON_GetObjectItem(res, "attrs"));
    cJSON_Delete(res);
}

static void test_bad_commit_changes_nothing(void **state)
{
    struct fx *f = *state;
    char err[256];
    cJSON *res = NULL;
    struct md_begin_req r = {
        .catalog = "alice/c", .name = "y", .owner = "alice", .size = 10, .k = 3, .m = 2, .unit = 1024};
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, 100, &res, err, sizeof(err)), 0);
    char key[33];
    snprintf(key, sizeof(key), "%s", dyno_json_str(res, "key"));
    cJSON_Delete(res);
    /* Only 2 of 5 ok: below k. */
    struct md_commit_frag fr[2] = {{0, true, -1}, {1, true, -1}};
    assert_int_equal(md_store_commit(f->db, key, 10, SHA, fr, 2, &f->nodes, 101, &res, err, sizeof(err)),
                     DYNO_EINVAL);
    struct md_commit_frag dup[3] = {{0, true, -1}, {0, true, -1}, {1, true, -1}};
    assert_int_equal(md_store_commit(f->db, key, 10, SHA, dup, 3, &f->nodes, 101, &res, err, sizeof(err)),
                     DYNO_EINVAL);
    assert_int_equal(md_store_get(f->db, key, &f->nodes, &res, err, sizeof(err)), DYNO_ENOTFOUND);
    /* Still pending: a good commit with one missing fragment is degraded. */
    struct md_commit_frag good[5] = {
        {0, true, -1}, {1, true, -1}, {2, true, -1}, {3, true, -1}, {4, false, -1}};
    assert_int_equal(md_store_commit(f->db, key, 10, SHA, good, 5, &f->nodes, 101, &res, err, sizeof(err)),
                     0);
    assert_string_equal(dyno_json_str(res, "state"), "degraded");
    cJSON_Delete(res);
}

static void test_replace_evict_purge(void **state)
{
    struct fx *f = *state;
    char err[256];
    cJSON *a = put(f, "same", 100, 100);
    char ka[33];
    snprintf(ka, sizeof(ka), "%s", dyno_json_str(a, "key"));
    cJSON_Delete(a);
    cJSON *b = put(f, "same", 200, 200);
    const cJSON *rep = cJSON_GetObjectItem(b, "replaced");
    assert_non_null(rep);
    assert_string_equal(dyno_json_str(rep, "key"), ka);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(rep, "fragments")), 5);
    char kb[33];
    snprintf(kb, sizeof(kb), "%s", dyno_json_str(b, "key"));
    cJSON_Delete(b);
    cJSON *res = NULL;
    assert_int_equal(md_store_get(f->db, ka, &f->nodes, &res, err, sizeof(err)), DYNO_ENOTFOUND);
    /* Purge of 3 of 5: the rest waits as garbage and still counts. */
    int del[3] = {0, 1, 2};
    assert_int_equal(md_store_purge(f->db, ka, del, 3, &res, err, sizeof(err)), 0);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(res, "removed")));
    cJSON_Delete(res);
    int rest[2] = {3, 4};
    assert_int_equal(md_store_purge(f->db, ka, rest, 2, &res, err, sizeof(err)), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(res, "removed")));
    cJSON_Delete(res);
    /* A visible object cannot be purged; evict first. */
    assert_int_equal(md_store_purge(f->db, kb, del, 3, &res, err, sizeof(err)), DYNO_ECONFLICT);
    assert_int_equal(md_store_evict(f->db, kb, &f->nodes, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    int all[5] = {0, 1, 2, 3, 4};
    assert_int_equal(md_store_purge(f->db, kb, all, 5, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    for (int i = 0; i < 6; i++)
        assert_int_equal(used_of(f, f->v[i].id), 0);
}

/* Begins an object named name (pending) and returns its key in key. */
static void begin_named(struct fx *f, const char *name, int64_t size, char key[33])
{
    char err[256];
    cJSON *res = NULL;
    struct md_begin_req r = {
        .catalog = "alice/c", .name = name, .owner = "alice", .size = size, .k = 3, .m = 2, .unit = 1024};
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, 300, &res, err, sizeof(err)), 0);
    snprintf(key, 33, "%s", dyno_json_str(res, "key"));
    cJSON_Delete(res);
}

static int commit_dedupe(struct fx *f, const char *key, int64_t size, const char *sha, cJSON **res)
{
    char err[256];
    struct md_commit_frag fr[5] = {{0, true, -1}, {1, true, -1}, {2, true, -1}, {3, true, -1}, {4, true, -1}};
    return md_store_commit_opts(f->db, key, NULL, NULL, true, size, sha, fr, 5, &f->nodes, 301, res, err,
                                sizeof(err));
}

/* object.commit "dedupe" (MQTT ingest's named readings): the same bytes under a name already
 * stored are not committed again; the pending object is discarded (deleting, as an abort
 * leaves it) and the existing one answered, untouched. Other bytes replace, and a name not
 * yet stored commits. */
static void test_commit_dedupe(void **state)
{
    struct fx *f = *state;
    char err[256];
    cJSON *res = NULL;
    cJSON *a = put(f, "r1", 100, 100);
    char ka[33];
    snprintf(ka, sizeof(ka), "%s", dyno_json_str(a, "key"));
    cJSON_Delete(a);
    struct md__obj before;
    assert_int_equal(md__obj_get(f->db, ka, &before), SQLITE_OK);

    /* same size and digest: a duplicate */
    char kb[33];
    begin_named(f, "r1", 100, kb);
    assert_int_equal(commit_dedupe(f, kb, 100, SHA, &res), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(res, "duplicate")));
    assert_string_equal(dyno_json_str(res, "key"), ka);
    assert_string_equal(dyno_json_str(res, "name"), "r1");
    assert_string_equal(dyno_json_str(res, "sha256"), SHA);
    assert_null(cJSON_GetObjectItem(res, "replaced"));
    cJSON_Delete(res);
    struct md__obj o;
    assert_int_equal(md__obj_get(f->db, kb, &o), SQLITE_OK);
    assert_string_equal(o.state, "deleting");
    assert_int_equal(md__obj_get(f->db, ka, &o), SQLITE_OK);
    assert_string_equal(o.state, "committed");
    assert_int_equal(o.size, before.size);
    assert_string_equal(o.sha256, before.sha256);
    assert_int_equal(md_store_get_by_name(f->db, "alice/c", "r1", &f->nodes, &res, err, sizeof(err)), 0);
    assert_string_equal(dyno_json_str(res, "key"), ka);
    cJSON_Delete(res);
    /* a repeat (the first answer lost) answers the same; the discarded one never commits */
    assert_int_equal(commit_dedupe(f, kb, 100, SHA, &res), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(res, "duplicate")));
    assert_string_equal(dyno_json_str(res, "key"), ka);
    cJSON_Delete(res);
    struct md_commit_frag fr[5] = {{0, true, -1}, {1, true, -1}, {2, true, -1}, {3, true, -1}, {4, true, -1}};
    assert_int_equal(md_store_commit(f->db, kb, 100, SHA, fr, 5, &f->nodes, 302, &res, err, sizeof(err)),
                     DYNO_ECONFLICT);
    /* its fragments are garbage: abort confirms and lists them, purge drops them */
    assert_int_equal(md_store_abort(f->db, kb, &f->nodes, &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "fragments")), 5);
    cJSON_Delete(res);
    int all[5] = {0, 1, 2, 3, 4};
    assert_int_equal(md_store_purge(f->db, kb, all, 5, &res, err, sizeof(err)), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(res, "removed")));
    cJSON_Delete(res);

    /* other bytes under the name: replaces, as without dedupe */
    const char *other = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    char kc[33];
    begin_named(f, "r1", 100, kc);
    assert_int_equal(commit_dedupe(f, kc, 100, other, &res), 0);
    assert_null(cJSON_GetObjectItem(res, "duplicate"));
    assert_string_equal(dyno_json_str(res, "key"), kc);
    assert_string_equal(dyno_json_str(cJSON_GetObjectItem(res, "replaced"), "key"), ka);
    cJSON_Delete(res);
    /* another size, same digest field: not the same bytes either */
    char kd[33];
    begin_named(f, "r1", 99, kd);
    assert_int_equal(commit_dedupe(f, kd, 99, other, &res), 0);
    assert_null(cJSON_GetObjectItem(res, "duplicate"));
    assert_string_equal(dyno_json_str(cJSON_GetObjectItem(res, "replaced"), "key"), kc);
    cJSON_Delete(res);

    /* no object of that name yet: commits */
    char ke[33];
    begin_named(f, "r2", 100, ke);
    assert_int_equal(commit_dedupe(f, ke, 100, SHA, &res), 0);
    assert_null(cJSON_GetObjectItem(res, "duplicate"));
    assert_string_equal(dyno_json_str(res, "key"), ke);
    assert_string_equal(dyno_json_str(res, "state"), "committed");
    cJSON_Delete(res);
}

static void test_list_pages(void **state)
{
    struct fx *f = *state;
    char err[256];
    const char *names[] = {"d", "a", "c", "b", "e"};
    for (int i = 0; i < 5; i++)
        cJSON_Delete(put(f, names[i], 1, 100));
    cJSON *res = NULL;
    assert_int_equal(md_store_list(f->db, "alice/c", NULL, NULL, 2, &res, err, sizeof(err)), 0);
    assert_string_equal(dyno_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(res, "objects"), 0), "name"),
                        "a");
    assert_string_equal(dyno_json_str(res, "next"), "b");
    cJSON_Delete(res);
    assert_int_equal(md_store_list(f->db, "alice/c", "c", NULL, 2, &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "objects")), 2);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(res, "next")));
    cJSON_Delete(res);
    /* A prefix is a range of names: "b" but not "a" or "c", and "ab" only under "a". */
    cJSON_Delete(put(f, "ab", 1, 100));
    cJSON_Delete(put(f, "bz", 1, 100));
    assert_int_equal(md_store_list(f->db, "alice/c", NULL, "b", 10, &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "objects")), 2);
    assert_string_equal(dyno_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(res, "objects"), 1), "name"),
                        "bz");
    cJSON_Delete(res);
    assert_int_equal(md_store_list(f->db, "alice/c", "b", "b", 10, &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "objects")), 1);
    cJSON_Delete(res);
    cJSON_Delete(put(f, "\xc3\xa9t\xc3\xa9", 1, 100)); /* "été": bytes past 0x7f */
    assert_int_equal(md_store_list(f->db, "alice/c", NULL, "\xc3\xa9", 10, &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "objects")), 1);
    cJSON_Delete(res);
    assert_int_equal(md_store_catalog_stats(f->db, "alice/c", &res, err, sizeof(err)), 0);
    int64_t n = 0;
    assert_int_equal(dyno_json_i64(res, "objects", &n), 0);
    assert_int_equal(n, 8);
    cJSON_Delete(res);
}

/* The names of a listing's objects and prefixes, as "o:a p:b/ ..." for one comparison. */
static void list_str(struct fx *f, const struct md_list_req *q, char *out, size_t cap, char *next,
                     size_t ncap)
{
    char err[256];
    cJSON *res = NULL;
    assert_int_equal(md_store_list_page(f->db, q, &res, err, sizeof(err)), 0);
    size_t n = 0;
    out[0] = '\0';
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(res, "objects")) n +=
        (size_t)snprintf(out + n, cap - n, "o:%s ", dyno_json_str(it, "name"));
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(res, "prefixes")) n +=
        (size_t)snprintf(out + n, cap - n, "p:%s ", it->valuestring);
    const char *nx = dyno_json_str(res, "next");
    snprintf(next, ncap, "%s", nx ? nx : "(null)");
    assert_true(nx || cJSON_IsNull(cJSON_GetObjectItem(res, "next")));
    cJSON_Delete(res);
}

/* S3 listing: a delimiter rolls names up into common prefixes, pages count both, a page
 * that ends on a group resumes after it, and a group is skipped by a seek, not read. */
static void test_list_delimiter(void **state)
{
    struct fx *f = *state;
    const char *names[] = {"a", "b/1", "b/2", "b/3/x", "c/1", "c2", "d/e/f"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        cJSON_Delete(put(f, names[i], 1, 100));
    for (int i = 0; i < 300; i++) {
        char n[32];
        snprintf(n, sizeof(n), "big/%04d", i);
        cJSON_Delete(put(f, n, 1, 100));
    }
    char got[1024], next[300];
    int64_t rows = 0;
    struct md_list_req q = {.catalog = "alice/c", .delimiter = "/", .limit = 10, .rows = &rows};
    list_str(f, &q, got, sizeof(got), next, sizeof(next));
    assert_string_equal(got, "o:a o:c2 p:b/ p:big/ p:c/ p:d/ ");
    assert_string_equal(next, "(null)");
    /* 300 names under big/, yet only one of them was read. */
    assert_true(rows < 20);

    /* Pages of two: objects and prefixes count alike; each next resumes after a group. */
    q.limit = 2;
    list_str(f, &q, got, sizeof(got), next, sizeof(next));
    assert_string_equal(got, "o:a p:b/ ");
    assert_string_equal(next, "b/");
    q.after = "b/";
    list_str(f, &q, got, sizeof(got), next, sizeof(next));
    assert_string_equal(got, "p:big/ p:c/ ");
    assert_string_equal(next, "c/");
    q.after = "c/";
    list_str(f, &q, got, sizeof(got), next, sizeof(next));
    assert_string_equal(got, "o:c2 p:d/ ");
    assert_string_equal(next, "(null)");

    /* Under a prefix, the rest decides: b/3/ is a group, b/1 and b/2 objects. */
    q = (struct md_list_req){.catalog = "alice/c", .prefix = "b/", .delimiter = "/", .limit = 10};
    list_str(f, &q, got, sizeof(got), next, sizeof(next));
    assert_string_equal(got, "o:b/1 o:b/2 p:b/3/ ");
    /* A start-after that is a plain name (not a group) is exclusive. */
    q.after = "b/1";
    list_str(f, &q, got, sizeof(got), next, sizeof(next));
    assert_string_equal(got, "o:b/2 p:b/3/ ");
    /* A start-after before the prefix starts at the prefix. */
    q.after = "a";
    list_str(f, &q, got, sizeof(got), next, sizeof(next));
    assert_string_equal(got, "o:b/1 o:b/2 p:b/3/ ");

    /* Without a delimiter: every name under the prefix, paged by name. */
    q = (struct md_list_req){.catalog = "alice/c", .prefix = "b/", .limit = 2};
    list_str(f, &q, got, sizeof(got), next, sizeof(next));
    assert_string_equal(got, "o:b/1 o:b/2 ");
    assert_string_equal(next, "b/2");
    q.after = "b/2";
    list_str(f, &q, got, sizeof(got), next, sizeof(next));
    assert_string_equal(got, "o:b/3/x ");
    assert_string_equal(next, "(null)");

    /* A delimiter of several bytes, and a prefix that ends inside a name. */
    q = (struct md_list_req){.catalog = "alice/c", .prefix = "bi", .delimiter = "g/0", .limit = 10};
    list_str(f, &q, got, sizeof(got), next, sizeof(next));
    assert_string_equal(got, "p:big/0 ");
    /* Bad input changes nothing and says why. */
    char err[256];
    cJSON *res = NULL;
    q.limit = 0;
    assert_int_equal(md_store_list_page(f->db, &q, &res, err, sizeof(err)), DYNO_EINVAL);
    assert_null(res);
}

static void test_reap(void **state)
{
    struct fx *f = *state;
    char err[256];
    cJSON *res = NULL;
    struct md_begin_req r = {
        .catalog = "alice/c", .owner = "alice", .size = 10, .m = 2, .replica = true, .unit = 1024};
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, 1000, &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "fragments")), 3);
    char key[33];
    snprintf(key, sizeof(key), "%s", dyno_json_str(res, "key"));
    cJSON_Delete(res);
    int count = -1;
    assert_int_equal(md_store_reap(f->db, 1000, &count), 0);
    assert_int_equal(count, 0);
    assert_int_equal(md_store_reap(f->db, 1001, &count), 0);
    assert_int_equal(count, 1);
    struct md_commit_frag fr[3] = {{0, true, -1}, {1, true, -1}, {2, true, -1}};
    assert_int_equal(md_store_commit(f->db, key, 10, SHA, fr, 3, &f->nodes, 1002, &res, err, sizeof(err)),
                     DYNO_ECONFLICT);
}

/* Reservations (object.reserve): a batch of placed, invisible objects; a commit gives one
 * its catalog and name; the unused are released without a trace; a fresh reserve of the
 * same holder (its restart) sends the old ones to deleting; the wrong commit is refused. */
static void test_reserve_commit_release(void **state)
{
    struct fx *f = *state;
    char err[256];
    cJSON *res = NULL;
    struct md_resv_req rq = {
        .holder = "gw1", .size = 65536, .k = 1, .m = 2, .replica = true, .unit = 65536, .count = 4};
    assert_int_equal(md_store_reserve(f->db, &rq, &f->nodes, 100, &res, err, sizeof(err)), 0);
    cJSON *objs = cJSON_GetObjectItem(res, "objects");
    assert_int_equal(cJSON_GetArraySize(objs), 4);
    char keys[4][33];
    for (int i = 0; i < 4; i++) {
        cJSON *o = cJSON_GetArrayItem(objs, i);
        snprintf(keys[i], sizeof(keys[i]), "%s", dyno_json_str(o, "key"));
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "fragments")), 3);
    }
    cJSON_Delete(res);
    /* Space is held for them (12 fragments of 64 KiB + header over 5 containers). */
    int64_t held = 0;
    for (int i = 0; i < 5; i++)
        held += used_of(f, f->v[i].id);
    assert_true(held >= 12 * 65536);
    /* Invisible: nothing listed. */
    assert_int_equal(md_store_list(f->db, "alice/c", NULL, NULL, 100, &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "objects")), 0);
    cJSON_Delete(res);

    struct md_commit_frag fr[3];
    for (int i = 0; i < 3; i++)
        fr[i] = (struct md_commit_frag){.index = i, .ok = true, .size = 150};
    /* A reservation committed without its identity is refused, and changes nothing. */
    assert_int_equal(md_store_commit(f->db, keys[0], 100, SHA, fr, 3, &f->nodes, 101, &res, err, sizeof(err)),
                     DYNO_ECONFLICT);
    struct md_resv_commit id = {.catalog = "alice/c",
                                .name = "r1",
                                .publisher = "alice",
                                .k = 1,
                                .m = 2,
                                .replica = true,
                                .unit = 100};
    /* Another shape than reserved is refused. */
    struct md_resv_commit bad = id;
    bad.m = 1;
    assert_int_equal(
        md_store_commit_resv(f->db, keys[0], &bad, 100, SHA, fr, 3, &f->nodes, 101, &res, err, sizeof(err)),
        DYNO_ECONFLICT);
    assert_int_equal(
        md_store_commit_resv(f->db, keys[0], &id, 100, SHA, fr, 3, &f->nodes, 101, &res, err, sizeof(err)),
        0);
    assert_string_equal(dyno_json_str(res, "catalog"), "alice/c");
    assert_string_equal(dyno_json_str(res, "name"), "r1");
    assert_string_equal(dyno_json_str(res, "state"), "committed");
    cJSON_Delete(res);
    /* A retried commit (its answer was lost) answers the same object. */
    assert_int_equal(
        md_store_commit_resv(f->db, keys[0], &id, 100, SHA, fr, 3, &f->nodes, 102, &res, err, sizeof(err)),
        0);
    cJSON_Delete(res);
    /* A plain object is not committed as a reservation. */
    cJSON *plain = put(f, "p1", 10, 103);
    char pkey[33];
    snprintf(pkey, sizeof(pkey), "%s", dyno_json_str(plain, "key"));
    cJSON_Delete(plain);
    struct md_begin_req br = {
        .catalog = "alice/c", .name = "p2", .owner = "alice", .size = 10, .k = 3, .m = 2, .unit = 1024};
    assert_int_equal(md_store_begin(f->db, &br, &f->nodes, 104, &res, err, sizeof(err)), 0);
    snprintf(pkey, sizeof(pkey), "%s", dyno_json_str(res, "key"));
    cJSON_Delete(res);
    assert_int_equal(
        md_store_commit_resv(f->db, pkey, &id, 100, SHA, fr, 3, &f->nodes, 105, &res, err, sizeof(err)),
        DYNO_ECONFLICT);
    assert_int_equal(md_store_list(f->db, "alice/c", NULL, NULL, 100, &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "objects")), 2); /* r1, p1 */
    cJSON_Delete(res);

    /* Release: keys[1] dropped (never used); keys[0] is committed and another holder's key
     * is not this one's: both left alone. */
    const char *rel[3] = {keys[1], keys[0], keys[2]};
    int dropped = -1;
    assert_int_equal(md_store_release(f->db, "gw2", rel + 2, 1, &dropped, err, sizeof(err)), 0);
    assert_int_equal(dropped, 0);
    assert_int_equal(md_store_release(f->db, "gw1", rel, 2, &dropped, err, sizeof(err)), 0);
    assert_int_equal(dropped, 1);
    struct md__obj o;
    assert_int_equal(md__obj_get(f->db, keys[1], &o), SQLITE_NOTFOUND);
    assert_int_equal(md__obj_get(f->db, keys[0], &o), SQLITE_OK);
    assert_string_equal(o.state, "committed");

    /* The holder restarts: its fresh reserve sends keys[2] and keys[3] to deleting first. */
    rq.fresh = true;
    rq.count = 1;
    assert_int_equal(md_store_reserve(f->db, &rq, &f->nodes, 200, &res, err, sizeof(err)), 0);
    int64_t released = -1;
    assert_int_equal(dyno_json_i64(res, "released", &released), 0);
    assert_int_equal(released, 2);
    cJSON_Delete(res);
    for (int i = 2; i < 4; i++) {
        assert_int_equal(md__obj_get(f->db, keys[i], &o), SQLITE_OK);
        assert_string_equal(o.state, "deleting");
    }
    /* ... and a commit that comes late for one of them is refused: never half-visible. */
    assert_int_equal(
        md_store_commit_resv(f->db, keys[2], &id, 100, SHA, fr, 3, &f->nodes, 201, &res, err, sizeof(err)),
        DYNO_ECONFLICT);
    assert_int_equal(md__obj_get(f->db, keys[0], &o), SQLITE_OK);
    assert_string_equal(o.state, "committed"); /* the committed one survives the restart */
    /* More than there is room for: as many as fit, then unavailable. */
    rq.fresh = false;
    rq.count = 200;
    assert_int_equal(md_store_reserve(f->db, &rq, &f->nodes, 300, &res, err, sizeof(err)), 0);
    int got = cJSON_GetArraySize(cJSON_GetObjectItem(res, "objects"));
    cJSON_Delete(res);
    assert_true(got > 0 && got < 200);
    assert_int_equal(md_store_reserve(f->db, &rq, &f->nodes, 300, &res, err, sizeof(err)), DYNO_EUNAVAIL);
    assert_null(res);
}

int main(void)
{
    dyno_log_init("test", DYNO_LOG_ERROR + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unavailable_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_begin_site_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attrs_and_get_by_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_1_gets_site_spread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_begin_commit_get_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_commit_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_evict_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_dedupe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_delimiter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reserve_commit_release, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
