/*
 * Unit tests of the repair planner, garbage-collection plan, drain and restore
 * (agents/metadata/md_repair.c) on an in-memory SQLite database with injected time and a
 * hand-made container snapshot. The agent's sources are compiled in because unit tests link
 * only dyno_core.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "../../agents/metadata/md_repair.c"
#include "../../agents/metadata/md_store.c"

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define NODES 7
#define T0 100000 /* the fixture's clock starts here */

struct fx {
    struct md_db *db;
    struct md_node v[NODES];
    struct md_nodes nodes;
    struct md_repair rp;
    cJSON *events;
};

static int setup(void **state)
{
    static struct fx f;
    memset(&f, 0, sizeof(f));
    assert_int_equal(md_db_open(":memory:", &f.db), 0);
    assert_int_equal(md_db_schema(f.db), 0);
    for (int i = 0; i < NODES; i++) {
        snprintf(f.v[i].id, sizeof(f.v[i].id), "c%d", i + 1);
        snprintf(f.v[i].url, sizeof(f.v[i].url), "http://127.0.0.1:%d", 40001 + i);
        snprintf(f.v[i].site, sizeof(f.v[i].site), "s%d", i);
        f.v[i].capacity = 1000000;
        f.v[i].reported_free = -1; /* no status yet: the configured capacity counts */
        f.v[i].online = i < 5;     /* puts land on c1..c5; c6, c7 are spares */
    }
    f.nodes.v = f.v;
    f.nodes.n = NODES;
    struct md_repair_cfg cfg = {.grace = 60, .lease = 120, .rate = 20};
    assert_int_equal(md_repair_init(&f.rp, &cfg), 0);
    f.events = cJSON_CreateArray();
    *state = &f;
    return 0;
}

/* The usage counters equal the sums recomputed from the fragment, garbage and
 * repair_targets rows. */
static void assert_usage_exact(struct fx *f)
{
    int64_t drift = -1;
    assert_int_equal(md__usage_drift(f->db, &drift), SQLITE_OK);
    assert_int_equal(drift, 0);
}

static int64_t used_of(struct fx *f, const char *id)
{
    struct md__usage u = {.used = -1};
    assert_int_equal(md__usage(f->db, id, &u), SQLITE_OK);
    return u.used;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    assert_usage_exact(f);
    cJSON_Delete(f->events);
    md_repair_fini(&f->rp);
    md_db_close(f->db);
    return 0;
}

static struct md_node *node(struct fx *f, int i) /* 1-based, as in the ids */
{
    return &f->v[i - 1];
}

static void go_offline(struct fx *f, int i, int64_t at)
{
    node(f, i)->online = false;
    node(f, i)->offline_since = at;
}

static void go_online(struct fx *f, int i)
{
    node(f, i)->online = true;
    node(f, i)->offline_since = 0;
}

/* Puts a committed object (k=3, m=2) named name on c1..c5; its key goes to key. */
static void put(struct fx *f, const char *name, char key[33])
{
    char err[256];
    cJSON *res = NULL;
    struct md_begin_req r = {
        .catalog = "alice/c", .name = name, .owner = "alice", .size = 3000, .k = 3, .m = 2, .unit = 1024};
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, T0, &res, err, sizeof(err)), 0);
    snprintf(key, 33, "%s", dyno_json_str(res, "key"));
    cJSON_Delete(res);
    struct md_commit_frag fr[5];
    for (int i = 0; i < 5; i++)
        fr[i] = (struct md_commit_frag){.index = i, .ok = true, .size = -1};
    assert_int_equal(md_store_commit(f->db, key, 3000, SHA, fr, 5, &f->nodes, T0, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
}

/* One-value SQL probe (an integer), with ?1 and ?2 bound as text when given. */
static int64_t q1(struct fx *f, const char *sql, const char *a, const char *b)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->db->db, sql, -1, &st, NULL), SQLITE_OK);
    if (a)
        sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static const char *obj_state(struct fx *f, const char *key)
{
    static struct md__obj o;
    assert_int_equal(md__obj_get(f->db, key, &o), SQLITE_OK);
    return o.state;
}

/* The container of fragment idx of key (static buffer). */
static const char *frag_at(struct fx *f, const char *key, int idx)
{
    static char out[80];
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->db->db,
                                        "SELECT container, state FROM fragments WHERE key=?1 AND idx=?2", -1,
                                        &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, idx);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(out, sizeof(out), "%s/%s", sqlite3_column_text(st, 0), sqlite3_column_text(st, 1));
    sqlite3_finalize(st);
    return out;
}

/* Index of key's fragment on container id, -1 when none. */
static int idx_on(struct fx *f, const char *key, const char *id)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->db->db, "SELECT idx FROM fragments WHERE key=?1 AND container=?2",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

static void tick(struct fx *f, int64_t now)
{
    assert_int_equal(md_repair_tick(&f->rp, f->db, &f->nodes, now, T0 - 1000, f->events), 0);
}

/* Brings spares containers (c6, c7, ...) online as repair targets, then loses c1 at T0 and ticks
 * past the grace period: every object with a fragment on c1 is degraded. */
static void lose_c1(struct fx *f, int spares)
{
    for (int i = 0; i < spares; i++)
        go_online(f, 6 + i);
    go_offline(f, 1, T0);
    tick(f, T0 + 60);
}

static int events_of(struct fx *f, const char *type)
{
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, f->events) n += strcmp(dyno_json_str(e, "type"), type) == 0;
    return n;
}

static cJSON *claim(struct fx *f, int64_t now)
{
    char err[256];
    cJSON *res = NULL;
    assert_int_equal(md_repair_claim(&f->rp, f->db, &f->nodes, "gw1", now, &res, err, sizeof(err)), 0);
    cJSON *t = cJSON_DetachItemFromObject(res, "task");
    cJSON_Delete(res);
    if (cJSON_IsNull(t)) {
        cJSON_Delete(t);
        return NULL;
    }
    return t;
}

/* Completes task with every rebuild target ok (or every one failed). */
static int complete(struct fx *f, const cJSON *task, bool ok, int64_t now, cJSON **res)
{
    char err[256];
    struct md_repair_result r[16];
    size_t n = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(task, "rebuild"))
    {
        r[n].index = cJSON_GetObjectItem(t, "index")->valueint;
        r[n].container = dyno_json_str(t, "container");
        r[n].ok = ok;
        r[n].size = -1;
        n++;
    }
    *res = NULL;
    return md_repair_complete(&f->rp, f->db, dyno_json_str(task, "id"), dyno_json_str(task, "key"), r, n, now,
                              f->events, res, err, sizeof(err));
}

static void test_grace_period(void **state)
{
    struct fx *f = *state;
    char key[33];
    put(f, "a", key);
    go_offline(f, 1, T0 + 10);
    tick(f, T0 + 10 + 59);
    assert_string_equal(obj_state(f, key), "committed");
    assert_int_equal(cJSON_GetArraySize(f->events), 0);
    tick(f, T0 + 10 + 60);
    assert_string_equal(obj_state(f, key), "degraded");
    int ix = idx_on(f, key, "c1");
    assert_true(ix >= 0);
    assert_string_equal(frag_at(f, key, ix), "c1/lost");
    assert_int_equal(events_of(f, "object.degraded"), 1);
    const cJSON *e = cJSON_GetArrayItem(f->events, 0);
    assert_string_equal(dyno_json_str(e, "catalog"), "alice/c");
    assert_string_equal(dyno_json_str(cJSON_GetObjectItem(e, "object"), "key"), key);
    /* Once per transition: later passes and a second lost container add no event. */
    tick(f, T0 + 200);
    go_offline(f, 2, T0 + 200);
    tick(f, T0 + 300);
    assert_int_equal(events_of(f, "object.degraded"), 1);
    assert_int_equal(q1(f, "SELECT COUNT(*) FROM fragments WHERE key=?1 AND state='lost'", key, NULL), 2);
}

static void test_not_connected_marks_nothing(void **state)
{
    struct fx *f = *state;
    char key[33];
    put(f, "a", key);
    go_offline(f, 1, T0);
    /* Not connected to the broker: silence proves nothing. */
    assert_int_equal(md_repair_tick(&f->rp, f->db, &f->nodes, T0 + 1000, 0, f->events), 0);
    assert_string_equal(obj_state(f, key), "committed");
    /* Connected only since T0 + 990: the offline clock starts there. */
    assert_int_equal(md_repair_tick(&f->rp, f->db, &f->nodes, T0 + 1000, T0 + 990, f->events), 0);
    assert_string_equal(obj_state(f, key), "committed");
    assert_int_equal(md_repair_tick(&f->rp, f->db, &f->nodes, T0 + 1050, T0 + 990, f->events), 0);
    assert_string_equal(obj_state(f, key), "degraded");
}

static void test_flapping_within_grace(void **state)
{
    struct fx *f = *state;
    char key[33];
    put(f, "a", key);
    for (int i = 0; i < 5; i++) {
        go_offline(f, 1, T0 + i * 100);
        tick(f, T0 + i * 100 + 30);
        go_online(f, 1);
        tick(f, T0 + i * 100 + 90);
    }
    assert_string_equal(obj_state(f, key), "committed");
    assert_int_equal(cJSON_GetArraySize(f->events), 0);
    cJSON *t = claim(f, T0 + 1000);
    assert_null(t);
}

static void test_back_after_grace_restores(void **state)
{
    struct fx *f = *state;
    char key[33];
    put(f, "a", key);
    go_offline(f, 1, T0);
    tick(f, T0 + 60);
    assert_string_equal(obj_state(f, key), "degraded");
    /* Back before any repair was leased: its fragments are ok again, nothing moves. */
    go_online(f, 1);
    tick(f, T0 + 70);
    assert_string_equal(obj_state(f, key), "committed");
    assert_string_equal(frag_at(f, key, idx_on(f, key, "c1")), "c1/ok");
    assert_int_equal(events_of(f, "object.repaired"), 1);
    assert_int_equal(q1(f, "SELECT COUNT(*) FROM repairs", NULL, NULL), 0);
}

static void test_claim_complete_gc(void **state)
{
    struct fx *f = *state;
    char key[33], err[256];
    put(f, "a", key);
    int64_t used_c6 = 0, fsize = 0;
    lose_c1(f, 1);
    int ix = idx_on(f, key, "c1");
    cJSON *t = claim(f, T0 + 61);
    assert_non_null(t);
    assert_string_equal(dyno_json_str(t, "key"), key);
    assert_string_equal(dyno_json_str(t, "catalog"), "alice/c");
    assert_string_equal(dyno_json_str(t, "sha256"), SHA);
    assert_int_equal(cJSON_GetObjectItem(t, "k")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(t, "lease_until")->valueint, T0 + 61 + 120);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t, "sources")), 4); /* c1 is offline */
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(t, "sources"))
        assert_string_not_equal(dyno_json_str(s, "container"), "c1");
    cJSON *reb = cJSON_GetObjectItem(t, "rebuild");
    assert_int_equal(cJSON_GetArraySize(reb), 1);
    const cJSON *r0 = cJSON_GetArrayItem(reb, 0);
    assert_int_equal(cJSON_GetObjectItem(r0, "index")->valueint, ix);
    assert_string_equal(dyno_json_str(r0, "container"), "c6"); /* the only online non-holder */
    assert_string_equal(dyno_json_str(r0, "url"), "http://127.0.0.1:40006");
    fsize = (int64_t)cJSON_GetObjectItem(r0, "size")->valuedouble;
    assert_true(fsize > 0);
    /* The target is reserved like a put. */
    used_c6 = used_of(f, "c6");
    assert_int_equal(used_c6, fsize);
    /* Leased: not handed out twice. */
    assert_null(claim(f, T0 + 62));
    cJSON *res;
    assert_int_equal(complete(f, t, true, T0 + 70, &res), 0);
    assert_string_equal(dyno_json_str(res, "state"), "committed");
    cJSON_Delete(res);
    assert_string_equal(obj_state(f, key), "committed");
    assert_string_equal(frag_at(f, key, ix), "c6/ok");
    assert_int_equal(events_of(f, "object.repaired"), 1);
    used_c6 = used_of(f, "c6");
    assert_int_equal(used_c6, fsize);
    /* The old location is garbage, collected only once c1 is back. */
    assert_int_equal(q1(f, "SELECT COUNT(*) FROM garbage WHERE key=?1 AND container='c1'", key, NULL), 1);
    assert_int_equal(md_repair_gc_claim(f->db, &f->nodes, 100, &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "items")), 0);
    cJSON_Delete(res);
    go_online(f, 1);
    tick(f, T0 + 80); /* nothing lost on c1 any more: nothing flips */
    assert_string_equal(frag_at(f, key, ix), "c6/ok");
    assert_int_equal(md_repair_gc_claim(f->db, &f->nodes, 100, &res, err, sizeof(err)), 0);
    cJSON *items = cJSON_GetObjectItem(res, "items");
    assert_int_equal(cJSON_GetArraySize(items), 1);
    const cJSON *it = cJSON_GetArrayItem(items, 0);
    assert_string_equal(dyno_json_str(it, "container"), "c1");
    assert_int_equal(cJSON_GetObjectItem(it, "index")->valueint, ix);
    cJSON_Delete(res);
    struct md_gc_item gi = {.key = key, .index = ix, .container = "c1", .ok = true};
    assert_int_equal(md_repair_gc_complete(f->db, &gi, 1, &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetObjectItem(res, "removed")->valueint, 1);
    cJSON_Delete(res);
    assert_int_equal(q1(f, "SELECT COUNT(*) FROM garbage", NULL, NULL), 0);
    assert_int_equal(md_repair_status(f->db, T0 + 90, &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetObjectItem(res, "repaired_total")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(res, "degraded_objects")->valueint, 0);
    cJSON_Delete(res);
    /* A late duplicate completion changes nothing. */
    assert_int_equal(complete(f, t, true, T0 + 95, &res), DYNO_ECONFLICT);
    cJSON_Delete(t);
}

static void test_lease_expiry(void **state)
{
    struct fx *f = *state;
    char key[33], err[256];
    put(f, "a", key);
    lose_c1(f, 2);
    cJSON *a = claim(f, T0 + 61);
    assert_non_null(a);
    assert_null(claim(f, T0 + 61 + 119));
    /* The worker died: the expired lease is handed out again (a metadata restart changes
     * nothing, leases are rows). The first target may hold a partial write: garbage. */
    cJSON *b = claim(f, T0 + 61 + 120);
    assert_non_null(b);
    assert_string_not_equal(dyno_json_str(a, "id"), dyno_json_str(b, "id"));
    const char *ta = dyno_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(a, "rebuild"), 0), "container");
    const char *tb = dyno_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(b, "rebuild"), 0), "container");
    assert_string_not_equal(ta, tb);
    assert_int_equal(q1(f, "SELECT COUNT(*) FROM garbage WHERE key=?1 AND container=?2", key, ta), 1);
    cJSON *res;
    assert_int_equal(complete(f, a, true, T0 + 200, &res), DYNO_ECONFLICT);
    assert_string_equal(obj_state(f, key), "degraded");
    assert_int_equal(complete(f, b, true, T0 + 200, &res), 0);
    cJSON_Delete(res);
    assert_string_equal(obj_state(f, key), "committed");
    /* The garbage of the first lease never names the live location. */
    assert_int_equal(md_repair_gc_claim(f->db, &f->nodes, 100, &res, err, sizeof(err)), 0);
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(res, "items"))
        assert_string_not_equal(dyno_json_str(it, "container"), tb);
    cJSON_Delete(res);
    cJSON_Delete(a);
    cJSON_Delete(b);
}

static void test_failure_comes_back(void **state)
{
    struct fx *f = *state;
    char key[33];
    put(f, "a", key);
    lose_c1(f, 2);
    cJSON *t = claim(f, T0 + 61), *res;
    assert_non_null(t);
    assert_int_equal(complete(f, t, false, T0 + 62, &res), 0);
    assert_string_equal(dyno_json_str(res, "state"), "degraded");
    cJSON_Delete(res);
    cJSON_Delete(t);
    assert_int_equal(q1(f, "SELECT COUNT(*) FROM repair_targets", NULL, NULL), 0);
    assert_null(claim(f, T0 + 63));
    t = claim(f, T0 + 62 + MD_REPAIR_RETRY);
    assert_non_null(t);
    cJSON_Delete(t);
}

static void test_unrecoverable_not_handed_out(void **state)
{
    struct fx *f = *state;
    char key[33], err[256];
    put(f, "a", key);
    go_online(f, 6);
    go_online(f, 7);
    for (int i = 1; i <= 3; i++)
        go_offline(f, i, T0);
    tick(f, T0 + 60);
    assert_int_equal(q1(f, "SELECT COUNT(*) FROM fragments WHERE key=?1 AND state='lost'", key, NULL), 3);
    assert_null(claim(f, T0 + 61)); /* 2 healthy sources, k = 3 */
    cJSON *res;
    assert_int_equal(md_repair_status(f->db, T0 + 61, &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetObjectItem(res, "unrecoverable")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(res, "degraded_objects")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(res, "lost_fragments")->valueint, 3);
    cJSON_Delete(res);
    assert_string_equal(obj_state(f, key), "degraded");
    /* c3 comes back: its fragment is ok again, 3 sources, the other two get rebuilt. */
    go_online(f, 3);
    tick(f, T0 + 70);
    cJSON *t = claim(f, T0 + 61 + MD_REPAIR_RETRY);
    assert_non_null(t);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t, "sources")), 3);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t, "rebuild")), 2);
    assert_int_equal(complete(f, t, true, T0 + 80, &res), 0);
    cJSON_Delete(res);
    cJSON_Delete(t);
    assert_string_equal(obj_state(f, key), "committed");
}

static void test_no_target_defers(void **state)
{
    struct fx *f = *state;
    char key[33];
    put(f, "a", key);
    /* Every online container holds a fragment: nowhere to rebuild, no error, no task. */
    lose_c1(f, 0);
    assert_null(claim(f, T0 + 61));
    assert_string_equal(obj_state(f, key), "degraded");
    assert_int_equal(q1(f, "SELECT COUNT(*) FROM repair_targets", NULL, NULL), 0);
    /* A spare appears: handed out once the deferral is over. */
    go_online(f, 6);
    assert_null(claim(f, T0 + 62));
    cJSON *t = claim(f, T0 + 61 + MD_REPAIR_RETRY);
    assert_non_null(t);
    cJSON_Delete(t);
}

static void test_rate_limit(void **state)
{
    struct fx *f = *state;
    char a[33], b[33];
    f->rp.cfg.rate = 1;
    put(f, "a", a);
    put(f, "b", b);
    lose_c1(f, 2);
    cJSON *t1 = claim(f, T0 + 61);
    assert_non_null(t1);
    assert_null(claim(f, T0 + 61));
    cJSON *t2 = claim(f, T0 + 62);
    assert_non_null(t2);
    assert_string_not_equal(dyno_json_str(t1, "key"), dyno_json_str(t2, "key"));
    cJSON_Delete(t1);
    cJSON_Delete(t2);
}

/* A completion whose results name no target of the task is refused and changes nothing: the
 * reservation stays and the task can still be completed properly. */
static void test_complete_refuses_foreign_results(void **state)
{
    struct fx *f = *state;
    char key[33], err[256];
    put(f, "a", key);
    lose_c1(f, 1);
    cJSON *t = claim(f, T0 + 61), *res = NULL;
    assert_non_null(t);
    const cJSON *r0 = cJSON_GetArrayItem(cJSON_GetObjectItem(t, "rebuild"), 0);
    int ix = cJSON_GetObjectItem(r0, "index")->valueint;
    int64_t used_c6 = used_of(f, "c6");
    struct md_repair_result bad[] = {
        {.index = ix, .container = "c2", .ok = true, .size = -1},           /* holds another fragment */
        {.index = (ix + 1) % 5, .container = "c6", .ok = true, .size = -1}, /* not a rebuilt index */
        {.index = 5, .container = "c6", .ok = true, .size = -1},            /* out of range */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(md_repair_complete(&f->rp, f->db, dyno_json_str(t, "id"), key, &bad[i], 1, T0 + 70,
                                            f->events, &res, err, sizeof(err)),
                         DYNO_EINVAL);
        assert_null(res);
        assert_string_equal(obj_state(f, key), "degraded");
        assert_int_equal(used_of(f, "c6"), used_c6);
        assert_int_equal(q1(f, "SELECT COUNT(*) FROM repair_targets WHERE key=?1", key, NULL), 1);
        assert_int_equal(q1(f, "SELECT COUNT(*) FROM garbage", NULL, NULL), 0);
    }
    assert_int_equal(complete(f, t, true, T0 + 71, &res), 0);
    assert_string_equal(dyno_json_str(res, "state"), "committed");
    cJSON_Delete(res);
    cJSON_Delete(t);
}

/* With room for one rebuilt fragment only, a real loss goes before a fragment that is only
 * being drained (its copy is still readable). */
static void test_losses_before_drains(void **state)
{
    struct fx *f = *state;
    char key[33], err[256];
    cJSON *res = NULL;
    put(f, "a", key);
    int lost = idx_on(f, key, "c1");
    assert_int_equal(md_repair_drain(f->db, &f->nodes, "c2", T0, f->events, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    lose_c1(f, 1); /* c6 is the one target: c1 offline, c2 draining, c3..c5 hold fragments */
    cJSON *t = claim(f, T0 + 61);
    assert_non_null(t);
    const cJSON *reb = cJSON_GetObjectItem(t, "rebuild");
    assert_int_equal(cJSON_GetArraySize(reb), 1);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(reb, 0), "index")->valueint, lost);
    assert_string_equal(dyno_json_str(cJSON_GetArrayItem(reb, 0), "container"), "c6");
    assert_int_equal(complete(f, t, true, T0 + 62, &res), 0);
    assert_string_equal(dyno_json_str(res, "state"), "degraded"); /* the drained one is still to move */
    cJSON_Delete(res);
    cJSON_Delete(t);
}

static void test_drain(void **state)
{
    struct fx *f = *state;
    char a[33], b[33], err[256];
    put(f, "a", a);
    put(f, "b", b);
    go_online(f, 6);
    go_online(f, 7);
    cJSON *res;
    assert_int_equal(md_repair_drain(f->db, &f->nodes, "nope", T0, f->events, &res, err, sizeof(err)),
                     DYNO_ENOTFOUND);
    assert_int_equal(md_repair_drain(f->db, &f->nodes, "c2", T0, f->events, &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetObjectItem(res, "fragments")->valueint, 2);
    cJSON_Delete(res);
    assert_int_equal(
        q1(f, "SELECT COUNT(*) FROM fragments WHERE container='c2' AND state <> 'draining'", NULL, NULL), 0);
    assert_string_equal(obj_state(f, a), "degraded");
    assert_string_equal(obj_state(f, b), "degraded");
    assert_int_equal(events_of(f, "object.degraded"), 2);
    /* Placement skips a draining container. */
    struct md_begin_req r = {
        .catalog = "alice/c", .name = "c", .owner = "alice", .size = 10, .k = 3, .m = 3, .unit = 1024};
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, T0, &res, err, sizeof(err)), 0);
    const cJSON *fr;
    cJSON_ArrayForEach(fr, cJSON_GetObjectItem(res, "fragments"))
        assert_string_not_equal(dyno_json_str(fr, "container"), "c2");
    cJSON_Delete(res);
    assert_int_equal(md_store_containers(f->db, &f->nodes, &res, err, sizeof(err)), 0);
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(res, "containers"), 1);
    assert_string_equal(dyno_json_str(c, "id"), "c2");
    assert_string_equal(dyno_json_str(c, "state"), "draining");
    assert_int_equal(cJSON_GetObjectItem(c, "repairing")->valueint, 2);
    cJSON_Delete(res);
    /* The draining copy is a source; the rebuilt one goes elsewhere; the old is garbage. */
    cJSON *t = claim(f, T0 + 1);
    assert_non_null(t);
    int found = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(t, "sources")) found +=
        strcmp(dyno_json_str(s, "container"), "c2") == 0;
    assert_int_equal(found, 1);
    const cJSON *tg = cJSON_GetArrayItem(cJSON_GetObjectItem(t, "rebuild"), 0);
    assert_string_not_equal(dyno_json_str(tg, "container"), "c2");
    assert_int_equal(complete(f, t, true, T0 + 2, &res), 0);
    cJSON_Delete(res);
    const char *k = dyno_json_str(t, "key");
    assert_string_equal(obj_state(f, k), "committed");
    assert_int_equal(q1(f, "SELECT COUNT(*) FROM garbage WHERE key=?1 AND container='c2'", k, NULL), 1);
    assert_int_equal(idx_on(f, k, "c2"), -1);
    cJSON_Delete(t);
}

static void test_gc_never_live(void **state)
{
    struct fx *f = *state;
    char a[33], b[33], c[33], err[256];
    put(f, "a", a);
    put(f, "b", b);
    put(f, "c", c);
    go_online(f, 6);
    go_online(f, 7);
    /* A repaired object (garbage on c1), an evicted one, a reported one, and a pending put. */
    go_offline(f, 1, T0);
    tick(f, T0 + 60);
    cJSON *t = claim(f, T0 + 61), *res;
    assert_non_null(t);
    assert_int_equal(complete(f, t, true, T0 + 62, &res), 0);
    cJSON_Delete(res);
    cJSON_Delete(t);
    go_online(f, 1);
    tick(f, T0 + 63);
    assert_int_equal(md_store_evict(f->db, b, &f->nodes, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    assert_int_equal(md_store_report(f->db, c, 0, "crc", NULL, f->events, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    struct md_begin_req r = {
        .catalog = "alice/c", .name = "p", .owner = "alice", .size = 10, .k = 3, .m = 2, .unit = 1024};
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, T0 + 64, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    assert_int_equal(md_repair_gc_claim(f->db, &f->nodes, 1000, &res, err, sizeof(err)), 0);
    const cJSON *items = cJSON_GetObjectItem(res, "items"), *it;
    assert_true(cJSON_GetArraySize(items) >= 6); /* 5 of b, 1 garbage */
    cJSON_ArrayForEach(it, items)
    {
        const char *k = dyno_json_str(it, "key");
        /* Never a location a visible or pending object still uses. */
        int64_t live = q1(f,
                          "SELECT COUNT(*) FROM fragments f JOIN objects o ON o.key=f.key WHERE f.key=?1"
                          " AND f.container=?2 AND o.state <> 'deleting'",
                          k, dyno_json_str(it, "container"));
        int64_t same_idx = 0;
        if (live) {
            char q[200];
            snprintf(q, sizeof(q), "SELECT COUNT(*) FROM fragments WHERE key=?1 AND container=?2 AND idx=%d",
                     cJSON_GetObjectItem(it, "index")->valueint);
            same_idx = q1(f, q, k, dyno_json_str(it, "container"));
        }
        assert_int_equal(same_idx, 0);
        assert_true(strcmp(k, b) == 0 || q1(f, "SELECT COUNT(*) FROM garbage WHERE key=?1 AND container=?2",
                                            k, dyno_json_str(it, "container")) == 1);
    }
    /* Completing them drops the evicted object with its last fragment. */
    struct md_gc_item gi[16];
    int n = 0;
    cJSON_ArrayForEach(it, items)
    {
        gi[n] = (struct md_gc_item){.key = dyno_json_str(it, "key"),
                                    .index = cJSON_GetObjectItem(it, "index")->valueint,
                                    .container = dyno_json_str(it, "container"),
                                    .ok = true};
        n++;
    }
    cJSON *res2;
    assert_int_equal(md_repair_gc_complete(f->db, gi, (size_t)n, &res2, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetObjectItem(res2, "objects_removed")->valueint, 1);
    cJSON_Delete(res2);
    cJSON_Delete(res);
    assert_int_equal(q1(f, "SELECT COUNT(*) FROM objects WHERE key=?1", b, NULL), 0);
    assert_int_equal(q1(f, "SELECT COUNT(*) FROM fragments WHERE key=?1 AND state='ok'", a, NULL), 5);
}

static void test_report(void **state)
{
    struct fx *f = *state;
    char key[33], err[256];
    put(f, "a", key);
    cJSON *res;
    int ix = idx_on(f, key, "c2");
    /* A report about a copy on another container is about a stale copy: ignored. */
    assert_int_equal(md_store_report(f->db, key, ix, "crc", "c3", f->events, &res, err, sizeof(err)), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(res, "ignored")));
    cJSON_Delete(res);
    assert_string_equal(obj_state(f, key), "committed");
    assert_int_equal(md_store_report(f->db, key, ix, "crc", "c2", f->events, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    assert_string_equal(frag_at(f, key, ix), "c2/bad");
    assert_string_equal(obj_state(f, key), "degraded");
    assert_int_equal(
        md_store_report(f->db, key, idx_on(f, key, "c3"), "crc", NULL, f->events, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    assert_int_equal(events_of(f, "object.degraded"), 1);
    /* Both bad fragments are rebuilt on the spares; the bad copies become garbage. */
    go_online(f, 6);
    go_online(f, 7);
    cJSON *t = claim(f, T0 + 1);
    assert_non_null(t);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t, "sources")), 3);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t, "rebuild")), 2);
    assert_int_equal(complete(f, t, true, T0 + 2, &res), 0);
    cJSON_Delete(res);
    cJSON_Delete(t);
    assert_string_equal(obj_state(f, key), "committed");
    assert_int_equal(q1(f, "SELECT COUNT(*) FROM garbage WHERE key=?1", key, NULL), 2);
}

/* A fragment a put reported not stored may still be on its container (the stream failed after
 * the container renamed it into place, or the container crashed before its reply): once it is
 * rebuilt elsewhere, its first location is garbage, so GC deletes what may be there. */
static void test_missing_location_is_garbage(void **state)
{
    struct fx *f = *state;
    char key[33], err[256];
    cJSON *res = NULL;
    struct md_begin_req r = {
        .catalog = "alice/c", .name = "m", .owner = "alice", .size = 3000, .k = 3, .m = 2, .unit = 1024};
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, T0, &res, err, sizeof(err)), 0);
    snprintf(key, sizeof(key), "%s", dyno_json_str(res, "key"));
    cJSON_Delete(res);
    struct md_commit_frag fr[5];
    for (int i = 0; i < 5; i++)
        fr[i] = (struct md_commit_frag){.index = i, .ok = i != 1, .size = -1};
    assert_int_equal(md_store_commit(f->db, key, 3000, SHA, fr, 5, &f->nodes, T0, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    char first[80];
    snprintf(first, sizeof(first), "%s", frag_at(f, key, 1));
    char *slash = strchr(first, '/');
    assert_non_null(slash);
    assert_string_equal(slash, "/missing");
    *slash = '\0';
    go_online(f, 6);
    cJSON *t = claim(f, T0 + 1);
    assert_non_null(t);
    assert_int_equal(complete(f, t, true, T0 + 2, &res), 0);
    cJSON_Delete(res);
    cJSON_Delete(t);
    assert_string_equal(frag_at(f, key, 1), "c6/ok");
    assert_int_equal(q1(f, "SELECT COUNT(*) FROM garbage WHERE key=?1 AND container=?2", key, first), 1);
    assert_int_equal(md_repair_gc_claim(f->db, &f->nodes, 100, &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "items")), 1);
    cJSON_Delete(res);
    struct md_gc_item gi = {.key = key, .index = 1, .container = first, .ok = true};
    assert_int_equal(md_repair_gc_complete(f->db, &gi, 1, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    assert_int_equal(q1(f, "SELECT COUNT(*) FROM garbage", NULL, NULL), 0);
}

static void restore_one(struct fx *f, const char *key, const char *name, cJSON **res)
{
    char err[256];
    struct md_restore_frag fr[5];
    for (int i = 0; i < 5; i++)
        fr[i] = (struct md_restore_frag){.index = i, .container = f->v[i].id, .size = -1};
    struct md_restore_obj o = {.key = key,
                               .catalog = "bob/x",
                               .name = name,
                               .owner = "bob",
                               .sha256 = SHA,
                               .size = 3000,
                               .k = 3,
                               .m = 2,
                               .unit = 1024,
                               .frags = fr,
                               .nfrags = 4};
    assert_int_equal(md_repair_restore(f->db, &o, 1, T0, res, err, sizeof(err)), 0);
}

static void test_restore(void **state)
{
    struct fx *f = *state;
    char err[256];
    const char *k1 = "11111111111111111111111111111111", *k2 = "22222222222222222222222222222222";
    cJSON *res;
    restore_one(f, k1, "n", &res);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "restored")), 1);
    cJSON_Delete(res);
    assert_string_equal(obj_state(f, k1), "degraded"); /* 4 of 5 fragments found */
    assert_string_equal(frag_at(f, k1, 4), "/missing");
    restore_one(f, k1, "n", &res); /* idempotent */
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "skipped")), 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "restored")), 0);
    cJSON_Delete(res);
    /* Same name, greater key: it wins over the restored one, in any order. */
    restore_one(f, k2, "n", &res);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "conflicts")), 1);
    assert_string_equal(dyno_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(res, "conflicts"), 0), "kept"),
                        k2);
    cJSON_Delete(res);
    restore_one(f, k1, "n", &res);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "restored")), 0);
    cJSON_Delete(res);
    assert_int_equal(q1(f, "SELECT COUNT(*) FROM objects WHERE catalog='bob/x'", NULL, NULL), 1);
    assert_int_equal(md_store_get(f->db, k2, &f->nodes, &res, err, sizeof(err)), 0);
    assert_string_equal(dyno_json_str(res, "publisher"), "bob");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(res, "committed_at")));
    cJSON_Delete(res);
    /* An object committed by a put always wins. */
    char key[33];
    struct md_begin_req r = {
        .catalog = "bob/x", .name = "p", .owner = "bob", .size = 10, .k = 3, .m = 2, .unit = 1024};
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, T0, &res, err, sizeof(err)), 0);
    snprintf(key, sizeof(key), "%s", dyno_json_str(res, "key"));
    cJSON_Delete(res);
    struct md_commit_frag cf[5];
    for (int i = 0; i < 5; i++)
        cf[i] = (struct md_commit_frag){.index = i, .ok = true, .size = -1};
    assert_int_equal(md_store_commit(f->db, key, 10, SHA, cf, 5, &f->nodes, T0, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    restore_one(f, "ffffffffffffffffffffffffffffffff", "p", &res);
    assert_string_equal(dyno_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(res, "conflicts"), 0), "kept"),
                        key);
    cJSON_Delete(res);
    assert_string_equal(obj_state(f, key), "committed");
}

/* The usage table against a recomputation after every kind of change: begin (reservation),
 * commit with real sizes and a missing fragment, abort, evict, purge, report, lost and
 * flip-back, claim (target reservation), complete, lease expiry, drain, gc, restore, reap. */
static void test_usage_exact(void **state)
{
    struct fx *f = *state;
    char a[33], b[33], p[33], err[256];
    cJSON *res = NULL;
    assert_usage_exact(f);
    /* begin: each of c1..c5 reserves one fragment of the layout. */
    struct md_begin_req r = {
        .catalog = "alice/c", .name = "p", .owner = "alice", .size = 3000, .k = 3, .m = 2, .unit = 1024};
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, T0, &res, err, sizeof(err)), 0);
    snprintf(p, sizeof(p), "%s", dyno_json_str(res, "key"));
    cJSON_Delete(res);
    struct dyno_layout lay = {.size = 3000, .unit = 1024, .k = 3};
    int64_t fs = (int64_t)dyno_layout_fragment_size(&lay);
    for (int i = 1; i <= 5; i++)
        assert_int_equal(used_of(f, node(f, i)->id), fs);
    assert_usage_exact(f);
    /* commit: explicit sizes replace the reservation; a missing fragment counts nothing. */
    struct md_commit_frag cf[5];
    for (int i = 0; i < 5; i++)
        cf[i] = (struct md_commit_frag){.index = i, .ok = i != 4, .size = 1000 + i};
    assert_int_equal(md_store_commit(f->db, p, 3000, SHA, cf, 5, &f->nodes, T0, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    int64_t total = q1(f, "SELECT SUM(used) FROM usage", NULL, NULL);
    assert_int_equal(total, 1000 + 1001 + 1002 + 1003);
    assert_usage_exact(f);
    /* abort of a second pending put, then its purge: the reservations go. */
    r.name = "q";
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, T0, &res, err, sizeof(err)), 0);
    char q[33];
    snprintf(q, sizeof(q), "%s", dyno_json_str(res, "key"));
    cJSON_Delete(res);
    assert_usage_exact(f);
    assert_int_equal(md_store_abort(f->db, q, &f->nodes, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    assert_usage_exact(f);
    int del[2] = {0, 1};
    assert_int_equal(md_store_purge(f->db, q, del, 2, &res, err, sizeof(err)), 0); /* 3 left as garbage */
    cJSON_Delete(res);
    assert_usage_exact(f);
    /* evict + purge of all. */
    put(f, "a", a);
    put(f, "b", b);
    assert_int_equal(md_store_evict(f->db, b, &f->nodes, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    int all[5] = {0, 1, 2, 3, 4};
    assert_int_equal(md_store_purge(f->db, b, all, 5, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    assert_usage_exact(f);
    /* report: bad still occupies room and waits for repair. */
    assert_int_equal(md_store_report(f->db, a, 0, "crc", NULL, f->events, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    assert_int_equal(md_store_report(f->db, a, 1, "missing", NULL, f->events, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    assert_usage_exact(f);
    /* lost, flip back, lost again, then a claim reserves targets on the spares. */
    go_offline(f, 3, T0);
    tick(f, T0 + 60);
    assert_usage_exact(f);
    go_online(f, 3);
    tick(f, T0 + 61);
    assert_usage_exact(f);
    go_offline(f, 3, T0 + 61);
    tick(f, T0 + 200);
    go_online(f, 6);
    go_online(f, 7);
    cJSON *t = claim(f, T0 + 201);
    assert_non_null(t);
    assert_true(used_of(f, "c6") > 0 || used_of(f, "c7") > 0);
    assert_usage_exact(f);
    /* lease expiry: the targets become garbage; the next claim reserves anew. */
    cJSON_Delete(t);
    tick(f, T0 + 201 + 121);
    assert_usage_exact(f);
    go_online(f, 3);
    t = claim(f, T0 + 400);
    if (t) {
        assert_usage_exact(f);
        assert_int_equal(complete(f, t, true, T0 + 401, &res), 0);
        cJSON_Delete(res);
        cJSON_Delete(t);
    }
    assert_usage_exact(f);
    /* drain moves ok fragments to draining (still occupying). */
    assert_int_equal(md_repair_drain(f->db, &f->nodes, "c2", T0 + 402, f->events, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    tick(f, T0 + 403);
    assert_usage_exact(f);
    /* gc of everything it offers. */
    assert_int_equal(md_repair_gc_claim(f->db, &f->nodes, 1000, &res, err, sizeof(err)), 0);
    struct md_gc_item gi[64];
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(res, "items"))
    {
        if (n == 64)
            break;
        gi[n++] = (struct md_gc_item){.key = dyno_json_str(it, "key"),
                                      .index = cJSON_GetObjectItem(it, "index")->valueint,
                                      .container = dyno_json_str(it, "container"),
                                      .ok = true};
    }
    assert_true(n > 0);
    cJSON *res2 = NULL;
    assert_int_equal(md_repair_gc_complete(f->db, gi, (size_t)n, &res2, err, sizeof(err)), 0);
    cJSON_Delete(res2);
    cJSON_Delete(res);
    assert_usage_exact(f);
    /* restore (a missing fragment has no container) and the reaper. */
    restore_one(f, "33333333333333333333333333333333", "r", &res);
    cJSON_Delete(res);
    assert_usage_exact(f);
    r.name = "z";
    assert_int_equal(md_store_begin(f->db, &r, &f->nodes, T0, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    int count = 0;
    assert_int_equal(md_store_reap(f->db, T0 + 1, &count), 0);
    assert_int_equal(count, 1);
    assert_usage_exact(f);
    /* The check can fail: a counter off by one byte is drift. */
    int64_t drift = 0;
    assert_int_equal(
        sqlite3_exec(f->db->db, "UPDATE usage SET used = used + 1 WHERE container = 'c1'", NULL, NULL, NULL),
        SQLITE_OK);
    assert_int_equal(md__usage_drift(f->db, &drift), SQLITE_OK);
    assert_int_equal(drift, 1);
    assert_int_equal(
        sqlite3_exec(f->db->db, "UPDATE usage SET used = used - 1 WHERE container = 'c1'", NULL, NULL, NULL),
        SQLITE_OK);
}

int main(void)
{
    dyno_log_init("test", DYNO_LOG_ERROR + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_grace_period, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_connected_marks_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flapping_within_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_back_after_grace_restores, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_complete_gc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_comes_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unrecoverable_not_handed_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_target_defers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_complete_refuses_foreign_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_losses_before_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_never_live, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_location_is_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_exact, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
