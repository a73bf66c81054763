/*
 * Unit tests of the metadata RPC handlers (agents/metadata/md_rpc.c), called through the
 * method table with cJSON requests as lib/mq would, on a temporary SQLite file and a
 * container registry fed real status messages (md_reg_on_status). No broker: events the
 * handlers emit fail to send and are logged, which the handlers tolerate by design.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../agents/metadata/md_reg.c"
#include "../../agents/metadata/md_repair.c"
#include "../../agents/metadata/md_rpc.c"
#include "../../agents/metadata/md_store.c"
#include "../../agents/metadata/md_upload.c"
#include "../../agents/metadata/md_writer.c"
#include "agent_fixture.h"

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SHA2 "1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct fx {
    char dir[64];
    char path[96];
    struct md_ctx ctx;
    struct md_db *db;
};

/* Feeds the registry one retained status, as the broker would deliver it. */
static void status(struct fx *f, const char *id, const char *json)
{
    char topic[128];
    snprintf(topic, sizeof(topic), "dyno/v1/agents/container/%s/status", id);
    struct dyno_mq_msg m = {.topic = topic, .payload = json, .len = strlen(json), .qos = 1, .retain = true};
    md_reg_on_status(&f->ctx.reg, &m);
}

static void online(struct fx *f, int n)
{
    for (int i = 1; i <= n; i++) {
        char id[16], js[256];
        snprintf(id, sizeof(id), "c%d", i);
        snprintf(js, sizeof(js),
                 "{\"id\":\"c%d\",\"state\":\"online\",\"url\":\"http://127.0.0.1:%d\",\"site\":\"s%d\","
                 "\"capacity\":1000000000}",
                 i, 40000 + i, i);
        status(f, id, js);
    }
}

static int setup(void **state)
{
    static struct fx f;
    memset(&f, 0, sizeof(f));
    snprintf(f.dir, sizeof(f.dir), "/tmp/dyno-mdrpc-XXXXXX");
    assert_non_null(mkdtemp(f.dir));
    snprintf(f.path, sizeof(f.path), "%s/md.db", f.dir);
    struct md_repair_cfg cfg = {.grace = 60, .lease = 120, .rate = 20};
    assert_int_equal(md_ctx_init(&f.ctx, f.path, &cfg), 0);
    assert_int_equal(md_ctx_db(&f.ctx, &f.db), 0);
    assert_int_equal(md_db_schema(f.db), 0);
    online(&f, 5);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    md_ctx_fini(&f->ctx);
    char p[160];
    const char *sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", f->path, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
    return 0;
}

static int call(struct fx *f, const char *method, const char *req, cJSON **res, char *err, size_t errlen)
{
    err[0] = '\0';
    return fx_rpc_call(md_rpc_methods, md_rpc_nmethods, &f->ctx, method, req, res, err, errlen);
}

static int objects(struct fx *f)
{
    return fx_count_rows(f->db->d, "SELECT count(*) FROM objects");
}

/* object.begin for alice/c/name of size; the new key in key[33]; returns the result. */
static cJSON *begin(struct fx *f, const char *name, int size, char key[33])
{
    char req[256], err[256];
    cJSON *res = NULL;
    snprintf(req, sizeof(req),
             "{\"catalog\":\"alice/c\",\"name\":\"%s\",\"publisher\":\"alice\",\"size\":%d,\"unit\":1024}",
             name, size);
    assert_int_equal(call(f, "object.begin", req, &res, err, sizeof(err)), 0);
    snprintf(key, 33, "%s", dyno_json_str(res, "key"));
    assert_int_equal(strlen(key), 32);
    return res;
}

static void commit_req(char *req, size_t len, const char *key, int size, const char *sha, int nok)
{
    int n =
        snprintf(req, len, "{\"key\":\"%s\",\"size\":%d,\"sha256\":\"%s\",\"fragments\":[", key, size, sha);
    for (int i = 0; i < 5; i++)
        n += snprintf(req + n, len - (size_t)n, "%s{\"index\":%d,\"ok\":%s}", i ? "," : "", i,
                      i < nok ? "true" : "false");
    snprintf(req + n, len - (size_t)n, "]}");
}

/* Begin and commit with every fragment stored. */
static void put(struct fx *f, const char *name, int size, char key[33])
{
    char req[1024], err[256];
    cJSON_Delete(begin(f, name, size, key));
    cJSON *res = NULL;
    commit_req(req, sizeof(req), key, size, SHA, 5);
    assert_int_equal(call(f, "object.commit", req, &res, err, sizeof(err)), 0);
    assert_string_equal(dyno_json_str(res, "state"), "committed");
    cJSON_Delete(res);
}

static void test_begin_places_on_registered_containers(void **state)
{
    struct fx *f = *state;
    char key[33];
    cJSON *res = begin(f, "a", 5000, key);
    const cJSON *fr;
    int n = 0;
    cJSON_ArrayForEach(fr, cJSON_GetObjectItem(res, "fragments"))
    {
        /* Each fragment goes to a container the registry learnt from its status. */
        assert_non_null(strstr(dyno_json_str(fr, "url"), "http://127.0.0.1:4000"));
        n++;
    }
    assert_int_equal(n, 5); /* k=3, m=2 by default */
    cJSON_Delete(res);
    /* A pending object is not visible. */
    char req[96], err[256];
    snprintf(req, sizeof(req), "{\"key\":\"%s\"}", key);
    assert_int_equal(call(f, "object.get", req, &res, err, sizeof(err)), DYNO_ENOTFOUND);
}

static void test_commit_is_idempotent(void **state)
{
    struct fx *f = *state;
    char key[33], req[1024], err[256];
    cJSON *res = NULL;
    put(f, "x", 5000, key);
    /* The same commit again (its reply was lost): the same answer, nothing changes. */
    commit_req(req, sizeof(req), key, 5000, SHA, 5);
    assert_int_equal(call(f, "object.commit", req, &res, err, sizeof(err)), 0);
    assert_string_equal(dyno_json_str(res, "key"), key);
    assert_string_equal(dyno_json_str(res, "state"), "committed");
    cJSON_Delete(res);
    /* Another digest for the committed key is a conflict. */
    commit_req(req, sizeof(req), key, 5000, SHA2, 5);
    assert_int_equal(call(f, "object.commit", req, &res, err, sizeof(err)), DYNO_ECONFLICT);
    assert_non_null(strstr(err, "already committed"));
    /* The object reads back. */
    snprintf(req, sizeof(req), "{\"key\":\"%s\"}", key);
    assert_int_equal(call(f, "object.get", req, &res, err, sizeof(err)), 0);
    int64_t size = 0;
    assert_int_equal(dyno_json_i64(res, "size", &size), 0);
    assert_int_equal(size, 5000);
    assert_string_equal(dyno_json_str(res, "sha256"), SHA);
    cJSON_Delete(res);
}

static void test_abort(void **state)
{
    struct fx *f = *state;
    char key[33], req[1024], err[256];
    cJSON *res = NULL;
    /* Aborting a pending object: a later commit is refused. */
    cJSON_Delete(begin(f, "p", 10, key));
    snprintf(req, sizeof(req), "{\"key\":\"%s\"}", key);
    assert_int_equal(call(f, "object.abort", req, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    commit_req(req, sizeof(req), key, 10, SHA, 5);
    assert_int_equal(call(f, "object.commit", req, &res, err, sizeof(err)), DYNO_ECONFLICT);
    /* Aborting a committed object is a conflict, and it stays readable. */
    put(f, "q", 10, key);
    snprintf(req, sizeof(req), "{\"key\":\"%s\"}", key);
    assert_int_equal(call(f, "object.abort", req, &res, err, sizeof(err)), DYNO_ECONFLICT);
    assert_int_equal(call(f, "object.get", req, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
}

static void test_list_evict_purge(void **state)
{
    struct fx *f = *state;
    char ka[33], kb[33], req[256], err[256];
    cJSON *res = NULL;
    put(f, "b", 100, kb);
    put(f, "a", 100, ka);
    assert_int_equal(call(f, "object.list", "{\"catalog\":\"alice/c\",\"limit\":1}", &res, err, sizeof(err)),
                     0);
    const cJSON *objs = cJSON_GetObjectItem(res, "objects");
    assert_int_equal(cJSON_GetArraySize(objs), 1);
    assert_string_equal(dyno_json_str(cJSON_GetArrayItem(objs, 0), "name"), "a");
    assert_string_equal(dyno_json_str(res, "next"), "a");
    cJSON_Delete(res);
    assert_int_equal(
        call(f, "object.list", "{\"catalog\":\"alice/c\",\"after\":\"a\"}", &res, err, sizeof(err)), 0);
    objs = cJSON_GetObjectItem(res, "objects");
    assert_int_equal(cJSON_GetArraySize(objs), 1);
    assert_string_equal(dyno_json_str(cJSON_GetArrayItem(objs, 0), "name"), "b");
    cJSON_Delete(res);
    /* S3 listing over the RPC: the delimiter rolls "a" and "b" up into no group (none has
     * one), a prefix "a" lists only a. */
    assert_int_equal(call(f, "object.list", "{\"catalog\":\"alice/c\",\"prefix\":\"a\",\"delimiter\":\"/\"}",
                          &res, err, sizeof(err)),
                     0);
    objs = cJSON_GetObjectItem(res, "objects");
    assert_int_equal(cJSON_GetArraySize(objs), 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "prefixes")), 0);
    cJSON_Delete(res);
    /* A visible object cannot be purged; evict, then purge every fragment. */
    snprintf(req, sizeof(req), "{\"key\":\"%s\",\"deleted\":[0,1,2,3,4]}", ka);
    assert_int_equal(call(f, "object.purge", req, &res, err, sizeof(err)), DYNO_ECONFLICT);
    snprintf(req, sizeof(req), "{\"key\":\"%s\"}", ka);
    assert_int_equal(call(f, "object.evict", req, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    assert_int_equal(call(f, "object.get", req, &res, err, sizeof(err)), DYNO_ENOTFOUND);
    snprintf(req, sizeof(req), "{\"key\":\"%s\",\"deleted\":[0,1,2]}", ka);
    assert_int_equal(call(f, "object.purge", req, &res, err, sizeof(err)), 0);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(res, "removed")));
    cJSON_Delete(res);
    snprintf(req, sizeof(req), "{\"key\":\"%s\",\"deleted\":[3,4]}", ka);
    assert_int_equal(call(f, "object.purge", req, &res, err, sizeof(err)), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(res, "removed")));
    cJSON_Delete(res);
    assert_int_equal(objects(f), 1);
}

static void test_container_registry(void **state)
{
    struct fx *f = *state;
    char err[256];
    cJSON *res = NULL;
    assert_int_equal(call(f, "container.list", "{}", &res, err, sizeof(err)), 0);
    const cJSON *arr = cJSON_IsArray(res) ? res : cJSON_GetObjectItem(res, "containers");
    assert_int_equal(cJSON_GetArraySize(arr), 5);
    cJSON_Delete(res);
    /* A status that disagrees with its topic, or has no url, changes nothing. */
    status(f, "c6", "{\"id\":\"c7\",\"state\":\"online\",\"url\":\"http://127.0.0.1:1\",\"capacity\":1}");
    status(f, "c6", "{\"id\":\"c6\",\"state\":\"online\",\"capacity\":1}");
    status(f, "c6", "not json");
    assert_int_equal(call(f, "container.list", "{}", &res, err, sizeof(err)), 0);
    arr = cJSON_IsArray(res) ? res : cJSON_GetObjectItem(res, "containers");
    assert_int_equal(cJSON_GetArraySize(arr), 5);
    cJSON_Delete(res);
    /* With c5 offline, four containers cannot hold k+m=5 fragments: a clear refusal. */
    status(f, "c5", "{\"id\":\"c5\",\"state\":\"offline\"}");
    assert_int_equal(call(f, "object.begin",
                          "{\"catalog\":\"alice/c\",\"name\":\"z\",\"publisher\":\"alice\",\"size\":1}", &res,
                          err, sizeof(err)),
                     DYNO_EUNAVAIL);
    assert_non_null(strstr(err, "4 online"));
    assert_int_equal(objects(f), 0);
}

/* Every malformed request is refused with a message naming the field, and stores nothing. */
static void test_bad_input_changes_nothing(void **state)
{
    struct fx *f = *state;
    char key[33], req[1024], err[256];
    cJSON *res = NULL;
    cJSON_Delete(begin(f, "pending", 10, key));
    struct {
        const char *method, *req, *needle;
    } bad[] = {
        {"object.begin", "{\"catalog\":\"bad\",\"publisher\":\"alice\",\"size\":1}", "catalog"},
        {"object.begin", "{\"catalog\":\"alice/c\",\"publisher\":\"a/b\",\"size\":1}", "publisher"},
        {"object.begin", "{\"catalog\":\"alice/c\",\"publisher\":\"alice\"}", "size is required"},
        {"object.begin", "{\"catalog\":\"alice/c\",\"publisher\":\"alice\",\"size\":\"1\"}", "size"},
        {"object.begin", "{\"catalog\":\"alice/c\",\"publisher\":\"alice\",\"size\":1,\"k\":0}", "k must"},
        {"object.begin", "{\"catalog\":\"alice/c\",\"name\":\"a/../b\",\"publisher\":\"alice\",\"size\":1}",
         "name"},
        {"object.begin", "{\"catalog\":\"alice/c\",\"publisher\":\"alice\",\"size\":1,\"replica\":1}",
         "replica"},
        {"object.commit", "{\"key\":\"XYZ\",\"size\":1,\"sha256\":\"" SHA "\",\"fragments\":[]}", "key"},
        {"object.get", "{\"key\":\"0123456789ABCDEF0123456789abcdef\"}", "key"},
        {"object.list", "{\"catalog\":\"alice/c\",\"limit\":0}", "limit"},
        {"object.list", "{\"catalog\":\"alice/c\",\"after\":5}", "after"},
        {"object.list", "{\"catalog\":\"alice/c\",\"delimiter\":\"\\u0001\"}", "delimiter"},
        {"object.list", "{\"catalog\":\"alice/c\",\"prefix\":7}", "prefix"},
        {"object.purge", "{\"key\":\"0123456789abcdef0123456789abcdef\",\"deleted\":[-1]}", "deleted[0]"},
        {"object.purge", "{\"key\":\"0123456789abcdef0123456789abcdef\",\"deleted\":3}", "deleted"},
        {"catalog.stats", "{\"catalog\":\"/x\"}", "catalog"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(call(f, bad[i].method, bad[i].req, &res, err, sizeof(err)), DYNO_EINVAL);
        if (!strstr(err, bad[i].needle))
            fail_msg("%s %s: error \"%s\" does not name %s", bad[i].method, bad[i].req, err, bad[i].needle);
    }
    /* Commits of the pending object that are malformed leave it pending. */
    const char *badfr[][2] = {
        {"[]", "fragments"},
        {"[1]", "fragments[0]"},
        {"[{\"index\":0}]", "fragments[0].ok"},
        {"[{\"index\":300,\"ok\":true}]", "index"},
    };
    for (size_t i = 0; i < sizeof(badfr) / sizeof(badfr[0]); i++) {
        snprintf(req, sizeof(req), "{\"key\":\"%s\",\"size\":10,\"sha256\":\"%s\",\"fragments\":%s}", key,
                 SHA, badfr[i][0]);
        assert_int_equal(call(f, "object.commit", req, &res, err, sizeof(err)), DYNO_EINVAL);
        assert_non_null(strstr(err, badfr[i][1]));
    }
    snprintf(req, sizeof(req), "{\"key\":\"%s\",\"size\":10,\"sha256\":\"%.63s\",\"fragments\":[]}", key,
             SHA);
    assert_int_equal(call(f, "object.commit", req, &res, err, sizeof(err)), DYNO_EINVAL);
    assert_non_null(strstr(err, "sha256"));
    /* "dedupe" is a bool or absent (MQTT ingest's named readings). */
    snprintf(req, sizeof(req),
             "{\"key\":\"%s\",\"size\":10,\"sha256\":\"%s\",\"dedupe\":\"yes\",\"fragments\":"
             "[{\"index\":0,\"ok\":true}]}",
             key, SHA);
    assert_int_equal(call(f, "object.commit", req, &res, err, sizeof(err)), DYNO_EINVAL);
    assert_non_null(strstr(err, "dedupe"));
    /* Fewer than k fragments stored: refused by the store, still pending. */
    commit_req(req, sizeof(req), key, 10, SHA, 2);
    assert_int_equal(call(f, "object.commit", req, &res, err, sizeof(err)), DYNO_EINVAL);
    assert_int_equal(fx_count_rows(f->db->d, "SELECT count(*) FROM objects WHERE state='pending'"), 1);
    assert_int_equal(objects(f), 1);
    /* The object is still committable after all that. */
    commit_req(req, sizeof(req), key, 10, SHA, 5);
    assert_int_equal(call(f, "object.commit", req, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
}

/* Every call on a key no object has answers not found, naming the key, and stores nothing. */
static void test_unknown_key_not_found(void **state)
{
    struct fx *f = *state;
    char req[1024], err[256];
    cJSON *res = NULL;
    const char *key = "00000000000000000000000000000001";
    commit_req(req, sizeof(req), key, 10, SHA, 5);
    assert_int_equal(call(f, "object.commit", req, &res, err, sizeof(err)), DYNO_ENOTFOUND);
    assert_non_null(strstr(err, key));
    const char *methods[] = {"object.get", "object.abort", "object.evict"};
    snprintf(req, sizeof(req), "{\"key\":\"%s\"}", key);
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        assert_int_equal(call(f, methods[i], req, &res, err, sizeof(err)), DYNO_ENOTFOUND);
        assert_non_null(strstr(err, "no object"));
    }
    snprintf(req, sizeof(req), "{\"key\":\"%s\",\"deleted\":[0]}", key);
    assert_int_equal(call(f, "object.purge", req, &res, err, sizeof(err)), DYNO_ENOTFOUND);
    assert_non_null(strstr(err, "no object"));
    snprintf(req, sizeof(req), "{\"key\":\"%s\",\"index\":0,\"problem\":\"crc\"}", key);
    assert_int_equal(call(f, "object.report", req, &res, err, sizeof(err)), DYNO_ENOTFOUND);
    assert_non_null(strstr(err, "no object"));
    assert_int_equal(objects(f), 0);
    assert_int_equal(fx_count_rows(f->db->d, "SELECT count(*) FROM garbage"), 0);
}

/* Healing through the RPC table: only an admin drains; the drained fragment is leased to a
 * worker with a spare as target, completed once (a second completion conflicts), and a
 * malformed completion is refused without change. */
static void test_drain_claim_complete(void **state)
{
    struct fx *f = *state;
    char key[33], req[1024], err[256];
    cJSON *res = NULL;
    put(f, "d", 100, key);
    const char *drain = "{\"id\":\"c2\",\"caller\":{\"sub\":\"bob\",\"admin\":false}}";
    assert_int_equal(call(f, "container.drain", drain, &res, err, sizeof(err)), DYNO_EFORBIDDEN);
    assert_int_equal(fx_count_rows(f->db->d, "SELECT count(*) FROM drains"), 0);
    assert_int_equal(call(f, "container.drain",
                          "{\"id\":\"c9\",\"caller\":{\"sub\":\"root\",\"admin\":true}}", &res, err,
                          sizeof(err)),
                     DYNO_ENOTFOUND);
    assert_int_equal(call(f, "container.drain",
                          "{\"id\":\"c2\",\"caller\":{\"sub\":\"root\",\"admin\":true}}", &res, err,
                          sizeof(err)),
                     0);
    cJSON_Delete(res);
    status(f, "c6",
           "{\"id\":\"c6\",\"state\":\"online\",\"url\":\"http://127.0.0.1:40006\",\"capacity\":1000000000}");
    assert_int_equal(call(f, "repair.claim", "{\"worker\":\"gw1\"}", &res, err, sizeof(err)), 0);
    const cJSON *task = cJSON_GetObjectItem(res, "task");
    assert_true(cJSON_IsObject(task));
    assert_string_equal(dyno_json_str(task, "key"), key);
    const cJSON *tg = cJSON_GetArrayItem(cJSON_GetObjectItem(task, "rebuild"), 0);
    assert_string_equal(dyno_json_str(tg, "container"), "c6");
    int ix = cJSON_GetObjectItem(tg, "index")->valueint;
    char id[33];
    snprintf(id, sizeof(id), "%s", dyno_json_str(task, "id"));
    cJSON_Delete(res);
    snprintf(req, sizeof(req),
             "{\"key\":\"%s\",\"id\":\"%s\",\"results\":[{\"index\":%d,\"ok\":true,\"container\":\"c6\"},"
             "{\"index\":%d,\"ok\":true,\"container\":\"c6\"}]}",
             key, id, ix, ix);
    assert_int_equal(call(f, "repair.complete", req, &res, err, sizeof(err)), DYNO_EINVAL);
    assert_non_null(strstr(err, "given twice"));
    assert_int_equal(fx_count_rows(f->db->d, "SELECT count(*) FROM repair_targets"), 1);
    snprintf(req, sizeof(req),
             "{\"key\":\"%s\",\"id\":\"%s\",\"results\":[{\"index\":%d,\"ok\":true,\"container\":\"c6\"}]}",
             key, id, ix);
    assert_int_equal(call(f, "repair.complete", req, &res, err, sizeof(err)), 0);
    assert_string_equal(dyno_json_str(res, "state"), "committed");
    cJSON_Delete(res);
    assert_int_equal(call(f, "repair.complete", req, &res, err, sizeof(err)), DYNO_ECONFLICT);
    assert_int_equal(fx_count_rows(f->db->d, "SELECT count(*) FROM fragments WHERE container='c6'"), 1);
    assert_int_equal(fx_count_rows(f->db->d, "SELECT count(*) FROM garbage WHERE container='c2'"), 1);
}

/* S3 multipart uploads: create, get, list in (name, id) order with paging and a prefix,
 * expired by age, delete once; bad input changes nothing. */
static void test_uploads(void **state)
{
    struct fx *f = *state;
    char err[256], req[512], ids[3][33];
    cJSON *res = NULL;
    const char *names[] = {"b.x", "a.y", "b.x"};
    for (int i = 0; i < 3; i++) {
        snprintf(req, sizeof(req),
                 "{\"catalog\":\"alice/c\",\"name\":\"%s\",\"initiator\":\"bob\","
                 "\"attrs\":{\"content_type\":\"text/plain\"}}",
                 names[i]);
        assert_int_equal(call(f, "upload.create", req, &res, err, sizeof(err)), 0);
        snprintf(ids[i], sizeof(ids[i]), "%s", dyno_json_str(res, "id"));
        assert_true(dyno_valid_key(ids[i]));
        assert_string_equal(dyno_json_str(cJSON_GetObjectItem(res, "attrs"), "content_type"), "text/plain");
        cJSON_Delete(res);
    }
    snprintf(req, sizeof(req), "{\"id\":\"%s\"}", ids[1]);
    assert_int_equal(call(f, "upload.get", req, &res, err, sizeof(err)), 0);
    assert_string_equal(dyno_json_str(res, "name"), "a.y");
    assert_string_equal(dyno_json_str(res, "initiator"), "bob");
    cJSON_Delete(res);

    /* Pages of one: a.y, then the two b.x in id order, resumed from next. */
    const char *lo = strcmp(ids[0], ids[2]) < 0 ? ids[0] : ids[2];
    const char *hi = lo == ids[0] ? ids[2] : ids[0];
    assert_int_equal(call(f, "upload.list", "{\"catalog\":\"alice/c\",\"limit\":1}", &res, err, sizeof(err)),
                     0);
    assert_string_equal(dyno_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(res, "uploads"), 0), "name"),
                        "a.y");
    cJSON *next = cJSON_GetObjectItem(res, "next");
    snprintf(req, sizeof(req), "{\"catalog\":\"alice/c\",\"limit\":1,\"after\":\"%s\",\"after_id\":\"%s\"}",
             dyno_json_str(next, "name"), dyno_json_str(next, "id"));
    cJSON_Delete(res);
    assert_int_equal(call(f, "upload.list", req, &res, err, sizeof(err)), 0);
    assert_string_equal(dyno_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(res, "uploads"), 0), "id"), lo);
    cJSON_Delete(res);
    snprintf(req, sizeof(req), "{\"catalog\":\"alice/c\",\"after\":\"b.x\",\"after_id\":\"%s\"}", lo);
    assert_int_equal(call(f, "upload.list", req, &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "uploads")), 1);
    assert_string_equal(dyno_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(res, "uploads"), 0), "id"), hi);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(res, "next")));
    cJSON_Delete(res);
    assert_int_equal(
        call(f, "upload.list", "{\"catalog\":\"alice/c\",\"prefix\":\"b.\"}", &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "uploads")), 2);
    cJSON_Delete(res);
    assert_int_equal(call(f, "upload.list", "{\"catalog\":\"alice/d\"}", &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "uploads")), 0);
    cJSON_Delete(res);

    /* Expired: none is older than an hour; after a second, all are older than 0 s. */
    assert_int_equal(call(f, "upload.expired", "{\"older_than_s\":3600}", &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "uploads")), 0);
    cJSON_Delete(res);
    sleep(1);
    assert_int_equal(call(f, "upload.expired", "{\"older_than_s\":0}", &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "uploads")), 3);
    cJSON_Delete(res);

    snprintf(req, sizeof(req), "{\"id\":\"%s\"}", ids[1]);
    assert_int_equal(call(f, "upload.delete", req, &res, err, sizeof(err)), 0);
    cJSON_Delete(res);
    assert_int_equal(call(f, "upload.delete", req, &res, err, sizeof(err)), DYNO_ENOTFOUND);
    assert_int_equal(call(f, "upload.get", req, &res, err, sizeof(err)), DYNO_ENOTFOUND);

    const char *bad[] = {
        "{\"catalog\":\"alice/c\",\"name\":\"\",\"initiator\":\"bob\"}",
        "{\"catalog\":\"alice/c\",\"name\":\"n\",\"initiator\":\"b/c\"}",
        "{\"catalog\":\"alice/c\",\"name\":\"n\",\"initiator\":\"bob\",\"attrs\":[1]}",
        "{\"catalog\":\"nocatalog\",\"name\":\"n\",\"initiator\":\"bob\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(call(f, "upload.create", bad[i], &res, err, sizeof(err)), DYNO_EINVAL);
    assert_int_equal(call(f, "upload.get", "{\"id\":\"XYZ\"}", &res, err, sizeof(err)), DYNO_EINVAL);
    assert_int_equal(
        call(f, "upload.list", "{\"catalog\":\"alice/c\",\"after_id\":\"x\"}", &res, err, sizeof(err)),
        DYNO_EINVAL);
    assert_int_equal(call(f, "upload.list", "{\"catalog\":\"alice/c\"}", &res, err, sizeof(err)), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(res, "uploads")), 2);
    cJSON_Delete(res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_begin_places_on_registered_containers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_evict_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_container_registry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_claim_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uploads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
