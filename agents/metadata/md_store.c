/* The metadata store over SQLite (md_store.h). */
#include "md_store.h"

#include <dynostore/error.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "frag.h"
#include "json.h"
#include "log.h"
#include "placement.h"

#define MD_STMT_CACHE 128
#define MD_BUSY_TIMEOUT_MS 10000

struct md_db {
    sqlite3 *db;
    /* Prepared statements keyed by the address of their static SQL text. */
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } cache[MD_STMT_CACHE];
    size_t ncache;
};

/* States that make an object visible, and fragment states that take room on a container.
 * The partial index below must use exactly this expression to serve the queries. */
#define VISIBLE "state IN ('committed','degraded')"
#define OCCUPIES "state IN ('ok','bad','garbage','lost','draining')"

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS containers("
    " id TEXT PRIMARY KEY, url TEXT NOT NULL DEFAULT '', site TEXT NOT NULL DEFAULT '',"
    " state TEXT NOT NULL DEFAULT 'offline', capacity INTEGER NOT NULL DEFAULT 0,"
    " last_seen INTEGER NOT NULL DEFAULT 0, reported_used INTEGER NOT NULL DEFAULT 0,"
    " fragments INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS objects("
    " key TEXT PRIMARY KEY, catalog TEXT NOT NULL, name TEXT NOT NULL, owner TEXT NOT NULL,"
    " size INTEGER NOT NULL, sha256 TEXT, k INTEGER NOT NULL, m INTEGER NOT NULL,"
    " replica INTEGER NOT NULL, unit INTEGER NOT NULL, state TEXT NOT NULL,"
    " created_at INTEGER NOT NULL, committed_at INTEGER);"
    "CREATE UNIQUE INDEX IF NOT EXISTS objects_by_name ON objects(catalog, name) WHERE " VISIBLE ";"
    "CREATE INDEX IF NOT EXISTS objects_pending ON objects(created_at) WHERE state = 'pending';"
    "CREATE TABLE IF NOT EXISTS fragments("
    " key TEXT NOT NULL, idx INTEGER NOT NULL, container TEXT NOT NULL, size INTEGER NOT NULL,"
    " state TEXT NOT NULL, PRIMARY KEY(key, idx));"
    "CREATE INDEX IF NOT EXISTS fragments_by_container ON fragments(container, state, size);"
    /* Healing (md_repair.h). Partial indexes keep the planner's scans proportional to the
     * objects that need work, not to the store. */
    "CREATE INDEX IF NOT EXISTS objects_degraded ON objects(key) WHERE state = 'degraded';"
    "CREATE INDEX IF NOT EXISTS objects_deleting ON objects(key) WHERE state = 'deleting';"
    "CREATE TABLE IF NOT EXISTS garbage("
    " key TEXT NOT NULL, idx INTEGER NOT NULL, container TEXT NOT NULL, size INTEGER NOT NULL,"
    " since INTEGER NOT NULL, PRIMARY KEY(key, idx, container));"
    "CREATE INDEX IF NOT EXISTS garbage_by_container ON garbage(container);"
    "CREATE TABLE IF NOT EXISTS repairs("
    " key TEXT PRIMARY KEY, task_id TEXT, worker TEXT, lease_until INTEGER NOT NULL DEFAULT 0,"
    " not_before INTEGER NOT NULL DEFAULT 0, unrecoverable INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS repair_targets("
    " key TEXT NOT NULL, idx INTEGER NOT NULL, container TEXT NOT NULL, size INTEGER NOT NULL,"
    " PRIMARY KEY(key, idx));"
    "CREATE INDEX IF NOT EXISTS repair_targets_by_container ON repair_targets(container);"
    "CREATE TABLE IF NOT EXISTS drains(id TEXT PRIMARY KEY, since INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);";

static const char SQL_BEGIN[] = "BEGIN IMMEDIATE";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";
static const char SQL_USED[] =
    "SELECT (SELECT COALESCE(SUM(size),0) FROM fragments WHERE container = ?1 AND " OCCUPIES ")"
    " + (SELECT COALESCE(SUM(size),0) FROM garbage WHERE container = ?1)"
    " + (SELECT COALESCE(SUM(size),0) FROM repair_targets WHERE container = ?1)";
static const char SQL_USAGE[] =
    "SELECT (SELECT COALESCE(SUM(size),0) FROM fragments WHERE container = ?1 AND " OCCUPIES ")"
    " + (SELECT COALESCE(SUM(size),0) FROM garbage WHERE container = ?1)"
    " + (SELECT COALESCE(SUM(size),0) FROM repair_targets WHERE container = ?1),"
    " (SELECT COUNT(*) FROM fragments WHERE container = ?1 AND " OCCUPIES "),"
    " (SELECT COUNT(*) FROM fragments WHERE container = ?1 AND state IN " MD__NEEDS_REPAIR "),"
    " (SELECT COUNT(*) FROM garbage WHERE container = ?1),"
    " EXISTS(SELECT 1 FROM drains WHERE id = ?1)";
static const char SQL_DRAINING[] = "SELECT 1 FROM drains WHERE id = ?1";
static const char SQL_FRAG_CONTAINER[] = "SELECT container, state FROM fragments WHERE key = ?1 AND idx = ?2";
static const char SQL_OBJ_INSERT[] =
    "INSERT INTO objects(key, catalog, name, owner, size, k, m, replica, unit, state, created_at)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?10)";
static const char SQL_FRAG_INSERT[] =
    "INSERT INTO fragments(key, idx, container, size, state) VALUES(?1, ?2, ?3, ?4, 'ok')";
static const char SQL_OBJ_GET[] =
    "SELECT catalog, name, owner, size, sha256, k, m, replica, unit, state, created_at, committed_at"
    " FROM objects WHERE key = ?1";
static const char SQL_FRAGS[] = "SELECT idx, container, state FROM fragments WHERE key = ?1 ORDER BY idx";
static const char SQL_FRAG_SET[] = "UPDATE fragments SET state = ?3, size = ?4 WHERE key = ?1 AND idx = ?2";
static const char SQL_FRAG_STATE[] = "UPDATE fragments SET state = ?3 WHERE key = ?1 AND idx = ?2";
static const char SQL_SAME_NAME[] =
    "SELECT key FROM objects WHERE catalog = ?1 AND name = ?2 AND " VISIBLE " AND key <> ?3";
static const char SQL_OBJ_STATE[] = "UPDATE objects SET state = ?2 WHERE key = ?1";
static const char SQL_OBJ_COMMIT[] =
    "UPDATE objects SET state = ?2, size = ?3, sha256 = ?4, committed_at = ?5 WHERE key = ?1";
static const char SQL_LIST[] =
    "SELECT key, name, size, sha256, k, m, created_at FROM objects"
    " WHERE catalog = ?1 AND name > ?2 AND " VISIBLE " ORDER BY name LIMIT ?3";
static const char SQL_FRAG_DELETE[] = "DELETE FROM fragments WHERE key = ?1 AND idx = ?2";
static const char SQL_FRAG_MISSING_DROP[] = "DELETE FROM fragments WHERE key = ?1 AND state = 'missing'";
static const char SQL_FRAG_GARBAGE[] = "UPDATE fragments SET state = 'garbage' WHERE key = ?1";
static const char SQL_FRAG_COUNT[] = "SELECT COUNT(*) FROM fragments WHERE key = ?1";
static const char SQL_OBJ_DELETE[] = "DELETE FROM objects WHERE key = ?1";
static const char SQL_STATS[] =
    "SELECT COUNT(*), COALESCE(SUM(size),0) FROM objects WHERE catalog = ?1 AND " VISIBLE;
static const char SQL_REAP_FRAGS[] =
    "UPDATE fragments SET state = 'garbage' WHERE key IN"
    " (SELECT key FROM objects WHERE state = 'pending' AND created_at < ?1)";
static const char SQL_REAP_OBJS[] = "UPDATE objects SET state = 'deleting' WHERE state = 'pending' AND created_at < ?1";
static const char SQL_CT_SAVE[] =
    "INSERT INTO containers(id, url, site, state, capacity, last_seen, reported_used, fragments)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(id) DO UPDATE SET url = excluded.url,"
    " site = excluded.site, state = excluded.state, capacity = excluded.capacity,"
    " last_seen = excluded.last_seen, reported_used = excluded.reported_used,"
    " fragments = excluded.fragments";
static const char SQL_CT_LOAD[] =
    "SELECT id, url, site, capacity, last_seen, reported_used, fragments FROM containers ORDER BY id";

/* ---- connection, statements, errors ---------------------------------------------------- */

/* The SQLite adapter: maps a result code to DYNO_E* and logs the detail. */
static int sqlerr(struct md_db *db, int rc, char *err, size_t errlen)
{
    char q[512];
    dyno_error("sqlite error", "rc=%d error=%s", rc, dyno_agent_q(q, sizeof(q), sqlite3_errmsg(db->db)));
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        snprintf(err, errlen, "metadata database busy, retry");
        return DYNO_EUNAVAIL;
    case SQLITE_FULL:
        snprintf(err, errlen, "metadata database disk full");
        return DYNO_ENOSPC;
    case SQLITE_NOMEM:
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    case SQLITE_CONSTRAINT:
        snprintf(err, errlen, "conflicting change, retry");
        return DYNO_ECONFLICT;
    default:
        snprintf(err, errlen, "metadata database error");
        return DYNO_EIO;
    }
}

/* A reset statement for sql (a static string above) with no bindings. */
static int stmt(struct md_db *db, const char *sql, sqlite3_stmt **out)
{
    for (size_t i = 0; i < db->ncache; i++) {
        if (db->cache[i].sql == sql) {
            sqlite3_reset(db->cache[i].st);
            sqlite3_clear_bindings(db->cache[i].st);
            *out = db->cache[i].st;
            return SQLITE_OK;
        }
    }
    if (db->ncache == MD_STMT_CACHE)
        return SQLITE_INTERNAL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v3(db->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    db->cache[db->ncache].sql = sql;
    db->cache[db->ncache].st = st;
    db->ncache++;
    *out = st;
    return SQLITE_OK;
}

/* Runs a statement without a result row (BEGIN, COMMIT, ...). */
static int exec0(struct md_db *db, const char *sql)
{
    sqlite3_stmt *st;
    int rc = stmt(db, sql, &st);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void rollback(struct md_db *db)
{
    if (!sqlite3_get_autocommit(db->db))
        exec0(db, SQL_ROLLBACK);
}

int md_db_open(const char *path, struct md_db **out)
{
    *out = NULL;
    struct md_db *db = calloc(1, sizeof(*db));
    if (!db)
        return DYNO_ENOMEM;
    int rc = sqlite3_open_v2(path, &db->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        char q[512];
        char q2[256];
        dyno_error("cannot open the database", "db=%s error=%s", dyno_agent_q(q, sizeof(q), path),
                   dyno_agent_q(q2, sizeof(q2), db->db ? sqlite3_errmsg(db->db) : "nomem"));
        sqlite3_close(db->db);
        free(db);
        return DYNO_EIO;
    }
    sqlite3_busy_timeout(db->db, MD_BUSY_TIMEOUT_MS);
    /* WAL lets readers run during a commit; FULL syncs the WAL on every commit, so an
     * acknowledged object survives a kill -9 or a power cut. */
    rc = sqlite3_exec(db->db,
                      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;"
                      " PRAGMA temp_store=MEMORY;",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        char q[512];
        char q2[256];
        dyno_error("cannot configure the database", "db=%s error=%s", dyno_agent_q(q, sizeof(q), path),
                   dyno_agent_q(q2, sizeof(q2), sqlite3_errmsg(db->db)));
        sqlite3_close(db->db);
        free(db);
        return DYNO_EIO;
    }
    *out = db;
    return 0;
}

void md_db_close(struct md_db *db)
{
    if (!db)
        return;
    for (size_t i = 0; i < db->ncache; i++)
        sqlite3_finalize(db->cache[i].st);
    sqlite3_close(db->db);
    free(db);
}

int md_db_schema(struct md_db *db)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db->db, SCHEMA, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        char q[512];
        dyno_error("cannot create the schema", "error=%s", dyno_agent_q(q, sizeof(q), msg ? msg : ""));
        sqlite3_free(msg);
        return DYNO_EIO;
    }
    return 0;
}

static int cmp_node(const void *a, const void *b)
{
    return strcmp(((const struct md_node *)a)->id, ((const struct md_node *)b)->id);
}

const struct md_node *md_nodes_find(const struct md_nodes *nodes, const char *id)
{
    if (!nodes || !nodes->n || !id)
        return NULL;
    struct md_node key;
    snprintf(key.id, sizeof(key.id), "%s", id);
    return bsearch(&key, nodes->v, nodes->n, sizeof(key), cmp_node);
}

/* ---- JSON builders ----------------------------------------------------------------------- */

static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

/* fragments:[{index, container, url, state, online}] of key, in index order. */
static int frags_json(struct md_db *db, const char *key, const struct md_nodes *nodes, cJSON **out)
{
    *out = NULL;
    sqlite3_stmt *st;
    int rc = stmt(db, SQL_FRAGS, &st);
    if (rc != SQLITE_OK)
        return rc;
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return SQLITE_NOMEM;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *cid = col_text(st, 1);
        const struct md_node *nd = md_nodes_find(nodes, cid);
        cJSON *f = cJSON_CreateObject();
        if (!f) {
            rc = SQLITE_NOMEM;
            break;
        }
        cJSON_AddItemToArray(arr, f);
        cJSON_AddNumberToObject(f, "index", sqlite3_column_int(st, 0));
        cJSON_AddStringToObject(f, "container", cid);
        cJSON_AddStringToObject(f, "url", nd ? nd->url : "");
        cJSON_AddStringToObject(f, "state", col_text(st, 2));
        cJSON_AddBoolToObject(f, "online", nd && nd->online);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        cJSON_Delete(arr);
        return rc;
    }
    *out = arr;
    return SQLITE_OK;
}

/*
 * The object as object.get returns it. *state_out (may be NULL) receives the state.
 * SQLITE_NOTFOUND when there is no such row.
 */
static int object_json(struct md_db *db, const char *key, const struct md_nodes *nodes, cJSON **out)
{
    *out = NULL;
    sqlite3_stmt *st;
    int rc = stmt(db, SQL_OBJ_GET, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? SQLITE_NOTFOUND : rc;
    }
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        sqlite3_reset(st);
        return SQLITE_NOMEM;
    }
    cJSON_AddStringToObject(o, "key", key);
    cJSON_AddStringToObject(o, "catalog", col_text(st, 0));
    cJSON_AddStringToObject(o, "name", col_text(st, 1));
    cJSON_AddStringToObject(o, "owner", col_text(st, 2));
    dyno_json_add_i64(o, "size", sqlite3_column_int64(st, 3));
    if (sqlite3_column_type(st, 4) == SQLITE_NULL)
        cJSON_AddNullToObject(o, "sha256");
    else
        cJSON_AddStringToObject(o, "sha256", col_text(st, 4));
    cJSON_AddNumberToObject(o, "k", sqlite3_column_int(st, 5));
    cJSON_AddNumberToObject(o, "m", sqlite3_column_int(st, 6));
    cJSON_AddBoolToObject(o, "replica", sqlite3_column_int(st, 7) != 0);
    dyno_json_add_i64(o, "unit", sqlite3_column_int64(st, 8));
    cJSON_AddStringToObject(o, "state", col_text(st, 9));
    dyno_json_add_i64(o, "created_at", sqlite3_column_int64(st, 10));
    if (sqlite3_column_type(st, 11) == SQLITE_NULL)
        cJSON_AddNullToObject(o, "committed_at");
    else
        dyno_json_add_i64(o, "committed_at", sqlite3_column_int64(st, 11));
    sqlite3_reset(st);
    cJSON *frags;
    rc = frags_json(db, key, nodes, &frags);
    if (rc != SQLITE_OK) {
        cJSON_Delete(o);
        return rc;
    }
    cJSON_AddItemToObject(o, "fragments", frags);
    *out = o;
    return SQLITE_OK;
}


static bool visible(const char *state)
{
    return strcmp(state, "committed") == 0 || strcmp(state, "degraded") == 0;
}

/* SQLITE_NOTFOUND when there is no such object. */
static int obj_row(struct md_db *db, const char *key, struct md__obj *r)
{
    sqlite3_stmt *st;
    int rc = stmt(db, SQL_OBJ_GET, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(r->catalog, sizeof(r->catalog), "%s", col_text(st, 0));
        snprintf(r->name, sizeof(r->name), "%s", col_text(st, 1));
        snprintf(r->owner, sizeof(r->owner), "%s", col_text(st, 2));
        r->size = sqlite3_column_int64(st, 3);
        snprintf(r->sha256, sizeof(r->sha256), "%s", col_text(st, 4));
        r->k = sqlite3_column_int(st, 5);
        r->m = sqlite3_column_int(st, 6);
        r->replica = sqlite3_column_int(st, 7) != 0;
        r->unit = (uint32_t)sqlite3_column_int64(st, 8);
        snprintf(r->state, sizeof(r->state), "%s", col_text(st, 9));
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_NOTFOUND;
    }
    sqlite3_reset(st);
    return rc;
}

static int set_obj_state(struct md_db *db, const char *key, const char *state)
{
    sqlite3_stmt *st;
    int rc = stmt(db, SQL_OBJ_STATE, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Exact used bytes of a container (fragments that occupy room, reservations included). */
static int container_used(struct md_db *db, const char *id, int64_t *used)
{
    sqlite3_stmt *st;
    int rc = stmt(db, SQL_USED, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *used = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    return rc;
}

/* ---- shared with md_repair.c (md_store.h, internal section) ----------------------------- */

int md__stmt(struct md_db *db, const char *sql, sqlite3_stmt **out)
{
    return stmt(db, sql, out);
}

int md__exec0(struct md_db *db, const char *sql)
{
    return exec0(db, sql);
}

int md__begin(struct md_db *db)
{
    return exec0(db, SQL_BEGIN);
}

int md__commit(struct md_db *db)
{
    return exec0(db, SQL_COMMIT);
}

void md__rollback(struct md_db *db)
{
    rollback(db);
}

int md__sqlerr(struct md_db *db, int rc, char *err, size_t errlen)
{
    return sqlerr(db, rc, err, errlen);
}

const char *md__col_text(sqlite3_stmt *st, int i)
{
    return col_text(st, i);
}

int md__obj_get(struct md_db *db, const char *key, struct md__obj *o)
{
    return obj_row(db, key, o);
}

int md__obj_set_state(struct md_db *db, const char *key, const char *state)
{
    return set_obj_state(db, key, state);
}

int md__container_used(struct md_db *db, const char *id, int64_t *used)
{
    return container_used(db, id, used);
}

int md__draining(struct md_db *db, const char *id, bool *out)
{
    sqlite3_stmt *st;
    int rc = stmt(db, SQL_DRAINING, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int md__obj_n(const struct md__obj *o)
{
    return o->replica ? o->m + 1 : o->k + o->m;
}

void md__event(cJSON *events, const char *type, const char *key, const struct md__obj *o)
{
    if (!events)
        return;
    cJSON *e = cJSON_CreateObject();
    if (!e)
        return;
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddStringToObject(e, "catalog", o->catalog);
    cJSON *ob = cJSON_AddObjectToObject(e, "object");
    if (ob) {
        cJSON_AddStringToObject(ob, "key", key);
        cJSON_AddStringToObject(ob, "name", o->name);
        dyno_json_add_i64(ob, "size", o->size);
        cJSON_AddStringToObject(ob, "sha256", o->sha256);
    }
    cJSON_AddItemToArray(events, e);
}

/* ---- object.begin ------------------------------------------------------------------------ */

static int insert_object(struct md_db *db, const char *key, const struct md_begin_req *r, int k, int64_t now)
{
    sqlite3_stmt *st;
    int rc = stmt(db, SQL_OBJ_INSERT, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->catalog, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->name ? r->name : key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, r->size);
    sqlite3_bind_int(st, 6, k);
    sqlite3_bind_int(st, 7, r->m);
    sqlite3_bind_int(st, 8, r->replica ? 1 : 0);
    sqlite3_bind_int64(st, 9, r->unit);
    sqlite3_bind_int64(st, 10, now);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int md_store_begin(struct md_db *db, const struct md_begin_req *r, const struct md_nodes *nodes,
                   int64_t now, cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    int k = r->replica ? 1 : r->k;
    size_t n = (size_t)(r->replica ? r->m + 1 : r->k + r->m);
    uint64_t share = 0;
    if (r->size >= 0) {
        struct dyno_layout l = {.size = (uint64_t)r->size, .unit = r->unit, .k = k};
        share = dyno_layout_fragment_size(&l);
    }
    struct dyno_place_node *pn = calloc(nodes->n ? nodes->n : 1, sizeof(*pn));
    size_t *idx = calloc(n, sizeof(*idx));
    const struct md_node **chosen = calloc(nodes->n ? nodes->n : 1, sizeof(*chosen));
    cJSON *res = NULL;
    int ret = 0;
    int rc;
    if (!pn || !idx || !chosen) {
        snprintf(err, errlen, "out of memory");
        ret = DYNO_ENOMEM;
        goto out;
    }
    /* Usage is read and the reservation written in one write transaction, so two
     * concurrent puts cannot both take the last room of a container. */
    rc = exec0(db, SQL_BEGIN);
    if (rc != SQLITE_OK)
        goto sql;
    size_t count = 0, online = 0, room = 0;
    for (size_t i = 0; i < nodes->n; i++) {
        const struct md_node *nd = &nodes->v[i];
        if (!nd->online)
            continue;
        bool draining = false;
        rc = md__draining(db, nd->id, &draining);
        if (rc != SQLITE_OK)
            goto sql;
        if (draining)
            continue;
        int64_t used = 0;
        rc = container_used(db, nd->id, &used);
        if (rc != SQLITE_OK)
            goto sql;
        online++;
        uint64_t cap = nd->capacity > 0 ? (uint64_t)nd->capacity : 0;
        if (cap >= (uint64_t)used && cap - (uint64_t)used >= share)
            room++;
        pn[count] = (struct dyno_place_node){
            .id = nd->id, .site = nd->site, .capacity = cap, .used = (uint64_t)used, .online = true};
        chosen[count] = nd;
        count++;
    }
    int prc = dyno_place(pn, count, n, share, idx);
    if (prc == DYNO_EUNAVAIL) {
        if (room == online)
            snprintf(err, errlen, "need %zu containers online with room, %zu online", n, online);
        else
            snprintf(err, errlen, "need %zu containers online with room, %zu online, %zu with room", n,
                     online, room);
        ret = DYNO_EUNAVAIL;
        goto out;
    }
    if (prc != 0) {
        snprintf(err, errlen, "placement failed");
        ret = prc;
        goto out;
    }
    char key[DYNO_KEY_LEN + 1];
    for (int attempt = 0;; attempt++) {
        if (dyno_key_new(key) != 0) {
            snprintf(err, errlen, "cannot make a key");
            ret = DYNO_EINTERNAL;
            goto out;
        }
        rc = insert_object(db, key, r, k, now);
        /* A 128-bit random key collides only when the generator is broken; retry once. */
        if ((rc & 0xff) == SQLITE_CONSTRAINT && attempt == 0)
            continue;
        if (rc != SQLITE_OK)
            goto sql;
        break;
    }
    res = cJSON_CreateObject();
    cJSON *frags = cJSON_AddArrayToObject(res, "fragments");
    if (!res || !frags) {
        snprintf(err, errlen, "out of memory");
        ret = DYNO_ENOMEM;
        goto out;
    }
    cJSON_AddStringToObject(res, "key", key);
    dyno_json_add_i64(res, "unit", r->unit);
    cJSON_AddNumberToObject(res, "k", k);
    cJSON_AddNumberToObject(res, "m", r->m);
    sqlite3_stmt *st;
    rc = stmt(db, SQL_FRAG_INSERT, &st);
    if (rc != SQLITE_OK)
        goto sql;
    for (size_t i = 0; i < n; i++) {
        const struct md_node *nd = chosen[idx[i]];
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, (int)i);
        sqlite3_bind_text(st, 3, nd->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (int64_t)share);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            sqlite3_reset(st);
            goto sql;
        }
        cJSON *f = cJSON_CreateObject();
        cJSON_AddItemToArray(frags, f);
        cJSON_AddNumberToObject(f, "index", (double)i);
        cJSON_AddStringToObject(f, "container", nd->id);
        cJSON_AddStringToObject(f, "url", nd->url);
    }
    sqlite3_reset(st);
    rc = exec0(db, SQL_COMMIT);
    if (rc != SQLITE_OK)
        goto sql;
    *result = res;
    res = NULL;
    goto out;
sql:
    ret = sqlerr(db, rc, err, errlen);
out:
    if (ret != 0)
        rollback(db);
    cJSON_Delete(res);
    free(pn);
    free(idx);
    free(chosen);
    return ret;
}

/* ---- object.commit ----------------------------------------------------------------------- */

static int set_frag(struct md_db *db, const char *key, int index, const char *state, int64_t size)
{
    sqlite3_stmt *st;
    int rc = size >= 0 ? stmt(db, SQL_FRAG_SET, &st) : stmt(db, SQL_FRAG_STATE, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, index);
    sqlite3_bind_text(st, 3, state, -1, SQLITE_STATIC);
    if (size >= 0)
        sqlite3_bind_int64(st, 4, size);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int md_store_commit(struct md_db *db, const char *key, int64_t size, const char *sha256,
                    const struct md_commit_frag *frags, size_t nfrags, const struct md_nodes *nodes,
                    int64_t now, cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    cJSON *res = NULL, *rep = NULL;
    int ret = 0;
    struct md__obj o;
    int rc = exec0(db, SQL_BEGIN);
    if (rc != SQLITE_OK)
        goto sql;
    rc = obj_row(db, key, &o);
    if (rc == SQLITE_NOTFOUND) {
        snprintf(err, errlen, "no object %s", key);
        ret = DYNO_ENOTFOUND;
        goto out;
    }
    if (rc != SQLITE_OK)
        goto sql;
    if (visible(o.state)) {
        /* A retried commit (the reply was lost) gets the same answer, minus "replaced",
         * which the first answer carried. */
        if (o.size == size && strcmp(o.sha256, sha256) == 0) {
            rc = object_json(db, key, nodes, &res);
            if (rc != SQLITE_OK)
                goto sql;
            exec0(db, SQL_ROLLBACK);
            *result = res;
            return 0;
        }
        snprintf(err, errlen, "object %s is already committed with another size or digest", key);
        ret = DYNO_ECONFLICT;
        goto out;
    }
    if (strcmp(o.state, "pending") != 0) {
        snprintf(err, errlen, "object %s was aborted or evicted", key);
        ret = DYNO_ECONFLICT;
        goto out;
    }
    int n = o.replica ? o.m + 1 : o.k + o.m;
    if (o.size >= 0 && size != o.size) {
        snprintf(err, errlen, "size %lld differs from the size given at begin (%lld)", (long long)size,
                 (long long)o.size);
        ret = DYNO_EINVAL;
        goto out;
    }
    /* Fragment size of the committed layout, for ok fragments that do not say theirs. */
    struct dyno_layout lay = {.size = (uint64_t)size, .unit = o.unit, .k = o.k};
    int64_t fsize = (int64_t)dyno_layout_fragment_size(&lay);
    bool seen[256] = {false};
    bool ok[256] = {false};
    int64_t sizes[256];
    int nok = 0;
    for (size_t i = 0; i < nfrags; i++) {
        int ix = frags[i].index;
        if (ix < 0 || ix >= n) {
            snprintf(err, errlen, "fragment index %d out of range 0..%d", ix, n - 1);
            ret = DYNO_EINVAL;
            goto out;
        }
        if (seen[ix]) {
            snprintf(err, errlen, "fragment index %d given twice", ix);
            ret = DYNO_EINVAL;
            goto out;
        }
        seen[ix] = true;
        ok[ix] = frags[i].ok;
        sizes[ix] = frags[i].size >= 0 ? frags[i].size : fsize;
        if (frags[i].ok)
            nok++;
    }
    if (nok < o.k) {
        snprintf(err, errlen, "only %d of %d fragments ok, need at least %d", nok, n, o.k);
        ret = DYNO_EINVAL;
        goto out;
    }
    for (int ix = 0; ix < n; ix++) {
        rc = ok[ix] ? set_frag(db, key, ix, "ok", sizes[ix]) : set_frag(db, key, ix, "missing", -1);
        if (rc != SQLITE_OK)
            goto sql;
    }
    /* The old object of the same name leaves the unique index before the new one enters
     * it, in the same transaction: readers see one or the other. */
    sqlite3_stmt *st;
    rc = stmt(db, SQL_SAME_NAME, &st);
    if (rc != SQLITE_OK)
        goto sql;
    sqlite3_bind_text(st, 1, o.catalog, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, o.name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    char old[DYNO_KEY_LEN + 1] = "";
    if (rc == SQLITE_ROW)
        snprintf(old, sizeof(old), "%s", col_text(st, 0));
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        goto sql;
    if (old[0]) {
        rc = set_obj_state(db, old, "deleting");
        if (rc != SQLITE_OK)
            goto sql;
        cJSON *ofr;
        rc = frags_json(db, old, nodes, &ofr);
        if (rc != SQLITE_OK)
            goto sql;
        rep = cJSON_CreateObject();
        if (!rep) {
            cJSON_Delete(ofr);
            rc = SQLITE_NOMEM;
            goto sql;
        }
        cJSON_AddStringToObject(rep, "key", old);
        cJSON_AddItemToObject(rep, "fragments", ofr);
    }
    rc = stmt(db, SQL_OBJ_COMMIT, &st);
    if (rc != SQLITE_OK)
        goto sql;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, nok == n ? "committed" : "degraded", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, size);
    sqlite3_bind_text(st, 4, sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        goto sql;
    rc = object_json(db, key, nodes, &res);
    if (rc != SQLITE_OK)
        goto sql;
    rc = exec0(db, SQL_COMMIT);
    if (rc != SQLITE_OK)
        goto sql;
    if (rep) {
        cJSON_AddItemToObject(res, "replaced", rep);
        rep = NULL;
    }
    *result = res;
    res = NULL;
    goto out;
sql:
    ret = sqlerr(db, rc, err, errlen);
out:
    if (ret != 0)
        rollback(db);
    cJSON_Delete(res);
    cJSON_Delete(rep);
    return ret;
}

/* ---- abort, evict, get, list, purge, report ----------------------------------------------- */

/* Moves key to deleting when its state passes want(); result {key, fragments}. */
static int to_deleting(struct md_db *db, const char *key, bool from_pending, const struct md_nodes *nodes,
                       cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    cJSON *res = NULL, *frags = NULL;
    int ret = 0;
    struct md__obj o;
    int rc = exec0(db, SQL_BEGIN);
    if (rc != SQLITE_OK)
        goto sql;
    rc = obj_row(db, key, &o);
    if (rc != SQLITE_OK && rc != SQLITE_NOTFOUND)
        goto sql;
    if (from_pending) {
        if (rc == SQLITE_NOTFOUND) {
            snprintf(err, errlen, "no object %s", key);
            ret = DYNO_ENOTFOUND;
            goto out;
        }
        if (visible(o.state)) {
            snprintf(err, errlen, "object %s is committed: evict it instead", key);
            ret = DYNO_ECONFLICT;
            goto out;
        }
        /* deleting already: an idempotent repeat of the abort. */
    } else if (rc == SQLITE_NOTFOUND || !visible(o.state)) {
        snprintf(err, errlen, "no object %s", key);
        ret = DYNO_ENOTFOUND;
        goto out;
    }
    if (strcmp(o.state, "deleting") != 0) {
        rc = set_obj_state(db, key, "deleting");
        if (rc != SQLITE_OK)
            goto sql;
    }
    rc = frags_json(db, key, nodes, &frags);
    if (rc != SQLITE_OK)
        goto sql;
    rc = exec0(db, SQL_COMMIT);
    if (rc != SQLITE_OK)
        goto sql;
    res = cJSON_CreateObject();
    if (!res) {
        snprintf(err, errlen, "out of memory");
        ret = DYNO_ENOMEM;
        goto out;
    }
    cJSON_AddStringToObject(res, "key", key);
    cJSON_AddItemToObject(res, "fragments", frags);
    frags = NULL;
    *result = res;
    goto out;
sql:
    ret = sqlerr(db, rc, err, errlen);
out:
    if (ret != 0)
        rollback(db);
    cJSON_Delete(frags);
    return ret;
}

int md_store_abort(struct md_db *db, const char *key, const struct md_nodes *nodes, cJSON **result,
                   char *err, size_t errlen)
{
    return to_deleting(db, key, true, nodes, result, err, errlen);
}

int md_store_evict(struct md_db *db, const char *key, const struct md_nodes *nodes, cJSON **result,
                   char *err, size_t errlen)
{
    return to_deleting(db, key, false, nodes, result, err, errlen);
}

int md_store_get(struct md_db *db, const char *key, const struct md_nodes *nodes, cJSON **result,
                 char *err, size_t errlen)
{
    *result = NULL;
    cJSON *o = NULL;
    /* One read transaction: the object row and its fragments from the same snapshot. */
    int rc = sqlite3_exec(db->db, "BEGIN", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return sqlerr(db, rc, err, errlen);
    rc = object_json(db, key, nodes, &o);
    exec0(db, SQL_ROLLBACK);
    if (rc == SQLITE_NOTFOUND || (rc == SQLITE_OK && !visible(dyno_json_str(o, "state")))) {
        cJSON_Delete(o);
        snprintf(err, errlen, "no object %s", key);
        return DYNO_ENOTFOUND;
    }
    if (rc != SQLITE_OK)
        return sqlerr(db, rc, err, errlen);
    *result = o;
    return 0;
}

int md_store_list(struct md_db *db, const char *catalog, const char *after, int limit, cJSON **result,
                  char *err, size_t errlen)
{
    *result = NULL;
    sqlite3_stmt *st;
    int rc = stmt(db, SQL_LIST, &st);
    if (rc != SQLITE_OK)
        return sqlerr(db, rc, err, errlen);
    cJSON *res = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(res, "objects");
    if (!res || !arr) {
        cJSON_Delete(res);
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    sqlite3_bind_text(st, 1, catalog, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, after ? after : "", -1, SQLITE_STATIC);
    /* One row more than asked tells whether there is a next page. */
    sqlite3_bind_int(st, 3, limit + 1);
    int got = 0;
    bool more = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (got == limit) {
            more = true;
            continue;
        }
        got++;
        cJSON *o = cJSON_CreateObject();
        if (!o) {
            rc = SQLITE_NOMEM;
            break;
        }
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "key", col_text(st, 0));
        cJSON_AddStringToObject(o, "name", col_text(st, 1));
        dyno_json_add_i64(o, "size", sqlite3_column_int64(st, 2));
        cJSON_AddStringToObject(o, "sha256", col_text(st, 3));
        cJSON_AddNumberToObject(o, "k", sqlite3_column_int(st, 4));
        cJSON_AddNumberToObject(o, "m", sqlite3_column_int(st, 5));
        dyno_json_add_i64(o, "created_at", sqlite3_column_int64(st, 6));
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        cJSON_Delete(res);
        return sqlerr(db, rc, err, errlen);
    }
    cJSON *last = cJSON_GetArrayItem(arr, got - 1);
    if (more && last)
        cJSON_AddStringToObject(res, "next", dyno_json_str(last, "name"));
    else
        cJSON_AddNullToObject(res, "next");
    *result = res;
    return 0;
}

int md_store_purge(struct md_db *db, const char *key, const int *deleted, size_t ndeleted,
                   cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    int ret = 0;
    struct md__obj o;
    sqlite3_stmt *st;
    int rc = exec0(db, SQL_BEGIN);
    if (rc != SQLITE_OK)
        goto sql;
    rc = obj_row(db, key, &o);
    if (rc == SQLITE_NOTFOUND) {
        snprintf(err, errlen, "no object %s", key);
        ret = DYNO_ENOTFOUND;
        goto out;
    }
    if (rc != SQLITE_OK)
        goto sql;
    if (strcmp(o.state, "deleting") != 0) {
        snprintf(err, errlen, "object %s is %s: evict or abort it first", key, o.state);
        ret = DYNO_ECONFLICT;
        goto out;
    }
    rc = stmt(db, SQL_FRAG_DELETE, &st);
    if (rc != SQLITE_OK)
        goto sql;
    for (size_t i = 0; i < ndeleted; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, deleted[i]);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            sqlite3_reset(st);
            goto sql;
        }
    }
    sqlite3_reset(st);
    /* A missing fragment was never stored (containers write to a temp file and rename
     * only when whole): nothing to delete. */
    rc = stmt(db, SQL_FRAG_MISSING_DROP, &st);
    if (rc != SQLITE_OK)
        goto sql;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        goto sql;
    /* What is left sits on containers that could not be reached: garbage to collect. */
    rc = stmt(db, SQL_FRAG_GARBAGE, &st);
    if (rc != SQLITE_OK)
        goto sql;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        goto sql;
    rc = stmt(db, SQL_FRAG_COUNT, &st);
    if (rc != SQLITE_OK)
        goto sql;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int64_t left = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        goto sql;
    if (left == 0) {
        rc = stmt(db, SQL_OBJ_DELETE, &st);
        if (rc != SQLITE_OK)
            goto sql;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            goto sql;
    }
    rc = exec0(db, SQL_COMMIT);
    if (rc != SQLITE_OK)
        goto sql;
    cJSON *res = cJSON_CreateObject();
    if (!res) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    cJSON_AddStringToObject(res, "key", key);
    dyno_json_add_i64(res, "remaining", left);
    cJSON_AddBoolToObject(res, "removed", left == 0);
    *result = res;
    return 0;
sql:
    ret = sqlerr(db, rc, err, errlen);
out:
    rollback(db);
    return ret;
}

int md_store_report(struct md_db *db, const char *key, int index, const char *problem, const char *container,
                    cJSON *events, cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    int ret = 0;
    struct md__obj o;
    sqlite3_stmt *st;
    const char *fstate = strcmp(problem, "crc") == 0 ? "bad" : "missing";
    bool ignored = false;
    int rc = exec0(db, SQL_BEGIN);
    if (rc != SQLITE_OK)
        goto sql;
    rc = obj_row(db, key, &o);
    if (rc != SQLITE_OK && rc != SQLITE_NOTFOUND)
        goto sql;
    if (rc == SQLITE_NOTFOUND || !visible(o.state)) {
        snprintf(err, errlen, "no object %s", key);
        ret = DYNO_ENOTFOUND;
        goto out;
    }
    int n = md__obj_n(&o);
    if (index >= n) {
        snprintf(err, errlen, "fragment index %d out of range 0..%d", index, n - 1);
        ret = DYNO_EINVAL;
        goto out;
    }
    rc = stmt(db, SQL_FRAG_CONTAINER, &st);
    if (rc != SQLITE_OK)
        goto sql;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, index);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        /* A report about a copy the object no longer uses (a stale or repaired-away location)
         * says nothing about the live fragment; nor does one about a fragment already known
         * to be missing, or a repeat (the scrubber reports a bad fragment every pass). */
        ignored = (container && strcmp(container, col_text(st, 0)) != 0) ||
                  strcmp(col_text(st, 1), "missing") == 0 || strcmp(col_text(st, 1), fstate) == 0;
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        ignored = true;
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_OK)
        goto sql;
    if (!ignored) {
        rc = set_frag(db, key, index, fstate, -1);
        if (rc != SQLITE_OK)
            goto sql;
        if (strcmp(o.state, "degraded") != 0) {
            rc = set_obj_state(db, key, "degraded");
            if (rc != SQLITE_OK)
                goto sql;
        }
    }
    rc = exec0(db, SQL_COMMIT);
    if (rc != SQLITE_OK)
        goto sql;
    if (!ignored && strcmp(o.state, "committed") == 0)
        md__event(events, "object.degraded", key, &o);
    cJSON *res = cJSON_CreateObject();
    if (!res) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    cJSON_AddStringToObject(res, "key", key);
    cJSON_AddNumberToObject(res, "index", index);
    cJSON_AddStringToObject(res, "state", ignored ? "unchanged" : fstate);
    cJSON_AddBoolToObject(res, "ignored", ignored);
    *result = res;
    return 0;
sql:
    ret = sqlerr(db, rc, err, errlen);
out:
    rollback(db);
    return ret;
}

/* ---- containers, stats, housekeeping ---------------------------------------------------- */

int md_store_containers(struct md_db *db, const struct md_nodes *nodes, cJSON **result, char *err,
                        size_t errlen)
{
    *result = NULL;
    cJSON *res = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(res, "containers");
    if (!res || !arr) {
        cJSON_Delete(res);
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    sqlite3_stmt *st;
    int rc = stmt(db, SQL_USAGE, &st);
    if (rc != SQLITE_OK)
        goto sql;
    for (size_t i = 0; i < nodes->n; i++) {
        const struct md_node *nd = &nodes->v[i];
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, nd->id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
            sqlite3_reset(st);
            goto sql;
        }
        int64_t used = sqlite3_column_int64(st, 0);
        int64_t count = sqlite3_column_int64(st, 1);
        int64_t repairing = sqlite3_column_int64(st, 2);
        int64_t garbage = sqlite3_column_int64(st, 3);
        bool draining = sqlite3_column_int(st, 4) != 0;
        cJSON *c = cJSON_CreateObject();
        if (!c) {
            rc = SQLITE_NOMEM;
            sqlite3_reset(st);
            goto sql;
        }
        cJSON_AddItemToArray(arr, c);
        cJSON_AddStringToObject(c, "id", nd->id);
        cJSON_AddStringToObject(c, "url", nd->url);
        cJSON_AddStringToObject(c, "site", nd->site);
        cJSON_AddStringToObject(c, "state", draining ? "draining" : nd->online ? "online" : "offline");
        cJSON_AddBoolToObject(c, "online", nd->online);
        dyno_json_add_i64(c, "capacity", nd->capacity);
        dyno_json_add_i64(c, "used", used);
        dyno_json_add_i64(c, "free", nd->capacity > used ? nd->capacity - used : 0);
        cJSON_AddNumberToObject(c, "utilization", nd->capacity > 0 ? (double)used / (double)nd->capacity : 0.0);
        dyno_json_add_i64(c, "fragments", count);
        dyno_json_add_i64(c, "repairing", repairing);
        dyno_json_add_i64(c, "garbage", garbage);
        dyno_json_add_i64(c, "last_seen", nd->last_seen);
        dyno_json_add_i64(c, "reported_used", nd->reported_used);
    }
    sqlite3_reset(st);
    *result = res;
    return 0;
sql:
    cJSON_Delete(res);
    return sqlerr(db, rc, err, errlen);
}

int md_store_catalog_stats(struct md_db *db, const char *catalog, cJSON **result, char *err,
                           size_t errlen)
{
    *result = NULL;
    sqlite3_stmt *st;
    int rc = stmt(db, SQL_STATS, &st);
    if (rc != SQLITE_OK)
        return sqlerr(db, rc, err, errlen);
    sqlite3_bind_text(st, 1, catalog, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return sqlerr(db, rc, err, errlen);
    }
    cJSON *res = cJSON_CreateObject();
    if (res) {
        cJSON_AddStringToObject(res, "catalog", catalog);
        dyno_json_add_i64(res, "objects", sqlite3_column_int64(st, 0));
        dyno_json_add_i64(res, "bytes", sqlite3_column_int64(st, 1));
    }
    sqlite3_reset(st);
    if (!res) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    *result = res;
    return 0;
}

int md_store_reap(struct md_db *db, int64_t cutoff, int *count)
{
    char err[128];
    *count = 0;
    sqlite3_stmt *st;
    int rc = exec0(db, SQL_BEGIN);
    if (rc != SQLITE_OK)
        goto sql;
    rc = stmt(db, SQL_REAP_FRAGS, &st);
    if (rc != SQLITE_OK)
        goto sql;
    sqlite3_bind_int64(st, 1, cutoff);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        goto sql;
    rc = stmt(db, SQL_REAP_OBJS, &st);
    if (rc != SQLITE_OK)
        goto sql;
    sqlite3_bind_int64(st, 1, cutoff);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        goto sql;
    int changed = sqlite3_changes(db->db);
    rc = exec0(db, SQL_COMMIT);
    if (rc != SQLITE_OK)
        goto sql;
    *count = changed;
    return 0;
sql:
    rollback(db);
    return sqlerr(db, rc, err, sizeof(err));
}

int md_store_save_containers(struct md_db *db, const struct md_node *v, size_t n)
{
    char err[128];
    sqlite3_stmt *st;
    int rc = exec0(db, SQL_BEGIN);
    if (rc != SQLITE_OK)
        goto sql;
    rc = stmt(db, SQL_CT_SAVE, &st);
    if (rc != SQLITE_OK)
        goto sql;
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, v[i].id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, v[i].url, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, v[i].site, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, v[i].online ? "online" : "offline", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, v[i].capacity);
        sqlite3_bind_int64(st, 6, v[i].last_seen);
        sqlite3_bind_int64(st, 7, v[i].reported_used);
        sqlite3_bind_int64(st, 8, v[i].reported_fragments);
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            sqlite3_reset(st);
            goto sql;
        }
    }
    sqlite3_reset(st);
    rc = exec0(db, SQL_COMMIT);
    if (rc != SQLITE_OK)
        goto sql;
    return 0;
sql:
    rollback(db);
    return sqlerr(db, rc, err, sizeof(err));
}

int md_store_load_containers(struct md_db *db, struct md_node **out, size_t *n)
{
    char err[128];
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = stmt(db, SQL_CT_LOAD, &st);
    if (rc != SQLITE_OK)
        return sqlerr(db, rc, err, sizeof(err));
    struct md_node *v = NULL;
    size_t count = 0, cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct md_node *nv = realloc(v, ncap * sizeof(*nv));
            if (!nv) {
                rc = SQLITE_NOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        struct md_node *nd = &v[count];
        memset(nd, 0, sizeof(*nd));
        const char *id = col_text(st, 0);
        if (!dyno_valid_segment(id))
            continue;
        snprintf(nd->id, sizeof(nd->id), "%s", id);
        snprintf(nd->url, sizeof(nd->url), "%s", col_text(st, 1));
        snprintf(nd->site, sizeof(nd->site), "%s", col_text(st, 2));
        nd->capacity = sqlite3_column_int64(st, 3);
        nd->last_seen = sqlite3_column_int64(st, 4);
        nd->reported_used = sqlite3_column_int64(st, 5);
        nd->reported_fragments = sqlite3_column_int64(st, 6);
        count++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        free(v);
        return sqlerr(db, rc, err, sizeof(err));
    }
    *out = v;
    *n = count;
    return 0;
}
