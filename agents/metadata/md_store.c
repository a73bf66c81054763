/* The metadata store over SQLite (md_store.h). */
#include "md_store.h"

#include <dynostore/error.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "db.h"
#include "frag.h"
#include "json.h"
#include "log.h"
#include "placement.h"

#define MD_STMT_CACHE 128
/* WAL pages after which a committing connection checkpoints by itself. The housekeeping
 * thread checkpoints every second (md_store_checkpoint), so RPCs normally never pay for one;
 * this only bounds the WAL if that thread falls behind. */
#define MD_WAL_BACKSTOP "16384"
/* PRAGMA user_version: 1 = the usage table exists and is exact; 2 = objects.site_spread;
 * 3 = objects.attrs (S3 attributes: ETag, Content-Type, user metadata; issue 14) */
#define MD_SCHEMA_VERSION 3

struct md_db {
    struct dyno_db *d;
    sqlite3 *db; /* dyno_db_sqlite(d), borrowed */
    /* Prepared statements keyed by the address of their static SQL text. */
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } cache[MD_STMT_CACHE];
    size_t ncache;
    bool relaxed;            /* PRAGMA synchronous=NORMAL is in force (object.begin), else FULL */
    pthread_mutex_t *writer; /* shared by the process's connections, or NULL (md_db_share_writer) */
    bool writing;            /* this connection holds writer */
    /* Inside the batch writer's transaction (md__batch_begin .. md__batch_end): md__begin
     * and friends open and close savepoints instead of transactions. */
    bool batch;
    int depth; /* md__begin savepoints open inside the batch */
};

/* States that make an object visible, and fragment states that take room on a container.
 * The partial index below must use exactly this expression to serve the queries. */
#define VISIBLE "state IN ('committed','degraded')"
#define OCC_STATES "('ok','bad','garbage','lost','draining')"
#define OCCUPIES "state IN " OCC_STATES

/*
 * Usage accounting, incremental: the usage table holds, per container, exactly what
 * USAGE_RECOMPUTE would sum from the rows, and triggers keep it so in the transaction that
 * changes a row (every writer, present or future, is covered). Placement and container.list
 * read one row per container instead of summing every fragment.
 * For a fragments row R: used += R.size when R occupies room, fragments += 1 when it occupies
 * room, repairing += 1 when it waits for repair; a garbage row: used += size, garbage += 1;
 * a repair_targets row: used += size.
 */
#define FRAG_USED(R) "CASE WHEN " R ".state IN " OCC_STATES " THEN " R ".size ELSE 0 END"
#define FRAG_COUNTS(R) R ".state IN " OCC_STATES
#define FRAG_REPAIRING(R) R ".state IN " MD__NEEDS_REPAIR
#define USAGE_ADD(cont, used, frags, repairing, garbage)                                                     \
    "INSERT INTO usage(container, used, fragments, repairing, garbage) VALUES(" cont ", " used ", " frags    \
    ", " repairing ", " garbage ") ON CONFLICT(container) DO UPDATE SET used = used + excluded.used,"        \
    " fragments = fragments + excluded.fragments, repairing = repairing + excluded.repairing,"               \
    " garbage = garbage + excluded.garbage;"
#define USAGE_FRAG(R, sign)                                                                                  \
    USAGE_ADD(R ".container", sign "(" FRAG_USED(R) ")", sign "(" FRAG_COUNTS(R) ")",                        \
              sign "(" FRAG_REPAIRING(R) ")", "0")
#define USAGE_ROW(R, sign, garbage) USAGE_ADD(R ".container", sign R ".size", "0", "0", garbage)

/* The usage table recomputed from the rows: the migration fills it with this, and the unit
 * tests check the triggers against it. */
#define USAGE_RECOMPUTE                                                                                      \
    "SELECT container, SUM(used) AS used, SUM(fragments) AS fragments, SUM(repairing) AS repairing,"         \
    " SUM(garbage) AS garbage FROM ("                                                                        \
    "SELECT container, " FRAG_USED("f") " AS used, " FRAG_COUNTS("f") " AS fragments, " FRAG_REPAIRING(      \
        "f") " AS repairing, 0 AS garbage FROM fragments f"                                                  \
             " UNION ALL SELECT container, size, 0, 0, 1 FROM garbage"                                       \
             " UNION ALL SELECT container, size, 0, 0, 0 FROM repair_targets) GROUP BY container"

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
    "CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    /* S3 multipart uploads in progress (md_upload.h). */
    "CREATE TABLE IF NOT EXISTS s3_uploads("
    " id TEXT PRIMARY KEY, catalog TEXT NOT NULL, name TEXT NOT NULL, initiator TEXT NOT NULL,"
    " attrs TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS s3_uploads_by_name ON s3_uploads(catalog, name, id);"
    "CREATE INDEX IF NOT EXISTS s3_uploads_by_age ON s3_uploads(created_at);";

/* The usage table and its triggers, one statement each (run after SCHEMA). */
static const char *const SCHEMA_USAGE[] = {
    "CREATE TABLE IF NOT EXISTS usage("
    " container TEXT PRIMARY KEY, used INTEGER NOT NULL DEFAULT 0, fragments INTEGER NOT NULL DEFAULT 0,"
    " repairing INTEGER NOT NULL DEFAULT 0, garbage INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;",
    "CREATE TRIGGER IF NOT EXISTS usage_frag_ins AFTER INSERT ON fragments BEGIN " USAGE_FRAG("NEW",
                                                                                              "+") " END;",
    "CREATE TRIGGER IF NOT EXISTS usage_frag_del AFTER DELETE ON fragments BEGIN " USAGE_FRAG("OLD",
                                                                                              "-") " END;",
    "CREATE TRIGGER IF NOT EXISTS usage_frag_upd AFTER UPDATE OF container, state, size ON fragments"
    " WHEN OLD.container IS NOT NEW.container OR OLD.state IS NOT NEW.state OR OLD.size IS NOT NEW.size"
    " BEGIN " USAGE_FRAG("OLD", "-") USAGE_FRAG("NEW", "+") " END;",
    "CREATE TRIGGER IF NOT EXISTS usage_garbage_ins AFTER INSERT ON garbage BEGIN " USAGE_ROW("NEW", "+",
                                                                                              "1") " END;",
    "CREATE TRIGGER IF NOT EXISTS usage_garbage_del AFTER DELETE ON garbage BEGIN " USAGE_ROW("OLD", "-",
                                                                                              "-1") " END;",
    "CREATE TRIGGER IF NOT EXISTS usage_garbage_upd AFTER UPDATE OF container, size ON garbage "
    "BEGIN " USAGE_ROW("OLD", "-", "-1") USAGE_ROW("NEW", "+", "1") " END;",
    "CREATE TRIGGER IF NOT EXISTS usage_target_ins AFTER INSERT ON repair_targets BEGIN " USAGE_ROW(
        "NEW", "+", "0") " END;",
    "CREATE TRIGGER IF NOT EXISTS usage_target_del AFTER DELETE ON repair_targets BEGIN " USAGE_ROW(
        "OLD", "-", "0") " END;",
    "CREATE TRIGGER IF NOT EXISTS usage_target_upd AFTER UPDATE OF container, size ON repair_targets "
    "BEGIN " USAGE_ROW("OLD", "-", "0") USAGE_ROW("NEW", "+", "0") " END;",
};

/* A database made before the usage table: fill it once from the rows. */
static const char SQL_USAGE_FILL[] =
    "DELETE FROM usage; INSERT INTO usage(container, used, fragments, repairing, garbage) " USAGE_RECOMPUTE
    ";";

/* Containers whose usage row differs from the recomputation (an all-zero row = no row). */
static const char SQL_USAGE_DRIFT[] =
    "SELECT COUNT(DISTINCT container) FROM (SELECT * FROM (SELECT container, used, fragments, repairing, "
    "garbage FROM usage"
    " EXCEPT " USAGE_RECOMPUTE ") WHERE used OR fragments OR repairing OR garbage"
    " UNION ALL SELECT * FROM (" USAGE_RECOMPUTE
    " EXCEPT SELECT container, used, fragments, repairing, garbage"
    " FROM usage) WHERE used OR fragments OR repairing OR garbage)";

static const char SQL_SYNC_FULL[] = "PRAGMA synchronous=FULL";
static const char SQL_SYNC_NORMAL[] = "PRAGMA synchronous=NORMAL";
/* One container's usage row (zeros when it has none) and whether it is draining. */
static const char SQL_USAGE[] =
    "SELECT COALESCE(u.used,0), COALESCE(u.fragments,0), COALESCE(u.repairing,0), COALESCE(u.garbage,0),"
    " EXISTS(SELECT 1 FROM drains WHERE id = ?1) FROM (SELECT 1) LEFT JOIN usage u ON u.container = ?1";
static const char SQL_FRAG_CONTAINER[] = "SELECT container, state FROM fragments WHERE key = ?1 AND idx = ?2";
static const char SQL_OBJ_INSERT[] = "INSERT INTO objects(key, catalog, name, owner, size, k, m, replica, "
                                     "unit, state, created_at, site_spread)"
                                     " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?10, ?11)";
static const char SQL_FRAG_INSERT[] =
    "INSERT INTO fragments(key, idx, container, size, state) VALUES(?1, ?2, ?3, ?4, 'ok')";
static const char SQL_OBJ_GET[] =
    "SELECT catalog, name, owner, size, sha256, k, m, replica, unit, state, created_at, committed_at,"
    " site_spread FROM objects WHERE key = ?1";
/* The owner column holds the publisher (who stored the object; restored objects: the
 * catalog's owner), shown under that name so that nobody reads it as a grant. */
static const char SQL_OBJ_JSON[] =
    "SELECT key, catalog, name, owner AS publisher, size, sha256, k, m, replica, unit, state, created_at,"
    " committed_at, CASE site_spread WHEN 1 THEN 'relaxed' ELSE 'strict' END AS site_spread, attrs"
    " FROM objects WHERE key = ?1";
static const char SQL_OBJ_BY_NAME[] = "SELECT key FROM objects WHERE catalog = ?1 AND name = ?2 AND " VISIBLE;
static const char SQL_FRAGS[] =
    "SELECT idx AS \"index\", container, state FROM fragments WHERE key = ?1 ORDER BY idx";
static const char SQL_FRAG_SET[] = "UPDATE fragments SET state = ?3, size = ?4 WHERE key = ?1 AND idx = ?2";
static const char SQL_FRAG_STATE[] = "UPDATE fragments SET state = ?3 WHERE key = ?1 AND idx = ?2";
static const char SQL_SAME_NAME[] =
    "SELECT key FROM objects WHERE catalog = ?1 AND name = ?2 AND " VISIBLE " AND key <> ?3";
static const char SQL_OBJ_STATE[] = "UPDATE objects SET state = ?2 WHERE key = ?1";
static const char SQL_OBJ_COMMIT[] =
    "UPDATE objects SET state = ?2, size = ?3, sha256 = ?4, committed_at = ?5, attrs = ?6 WHERE key = ?1";
/* A page of names from a lower bound (exclusive: GT, inclusive: GE) up to an exclusive upper
 * bound (?3, NULL: none), in name order (BINARY: bytewise, S3's order). The VISIBLE term
 * matches objects_by_name's, so both seek in that index. */
#define SQL_LIST_COLS                                                                                        \
    "SELECT key, name, size, sha256, k, m, created_at, committed_at, state, attrs FROM objects"
#define SQL_LIST_TAIL " AND (?3 IS NULL OR name < ?3) AND " VISIBLE " ORDER BY name LIMIT ?4"
static const char SQL_LIST_GT[] = SQL_LIST_COLS " WHERE catalog = ?1 AND name > ?2" SQL_LIST_TAIL;
static const char SQL_LIST_GE[] = SQL_LIST_COLS " WHERE catalog = ?1 AND name >= ?2" SQL_LIST_TAIL;
static const char SQL_FRAG_DELETE[] = "DELETE FROM fragments WHERE key = ?1 AND idx = ?2";
static const char SQL_FRAG_MISSING_DROP[] = "DELETE FROM fragments WHERE key = ?1 AND state = 'missing'";
static const char SQL_FRAG_GARBAGE[] = "UPDATE fragments SET state = 'garbage' WHERE key = ?1";
static const char SQL_FRAG_COUNT[] = "SELECT COUNT(*) FROM fragments WHERE key = ?1";
static const char SQL_OBJ_DELETE[] = "DELETE FROM objects WHERE key = ?1";
static const char SQL_STATS[] =
    "SELECT ?1 AS catalog, COUNT(*) AS objects, COALESCE(SUM(size),0) AS bytes FROM objects"
    " WHERE catalog = ?1 AND " VISIBLE;
static const char SQL_REAP_FRAGS[] = "UPDATE fragments SET state = 'garbage' WHERE key IN"
                                     " (SELECT key FROM objects WHERE state = 'pending' AND created_at < ?1)";
static const char SQL_REAP_OBJS[] =
    "UPDATE objects SET state = 'deleting' WHERE state = 'pending' AND created_at < ?1";
static const char SQL_CT_SAVE[] =
    "INSERT INTO containers(id, url, site, state, capacity, last_seen, reported_used, fragments)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(id) DO UPDATE SET url = excluded.url,"
    " site = excluded.site, state = excluded.state, capacity = excluded.capacity,"
    " last_seen = excluded.last_seen, reported_used = excluded.reported_used,"
    " fragments = excluded.fragments";
static const char SQL_CT_LOAD[] =
    "SELECT id, url, site, capacity, last_seen, reported_used, fragments FROM containers ORDER BY id";

/* ---- connection, statements, errors ---------------------------------------------------- */

/* lib/db.h maps SQLite codes; metadata keeps one exception: a constraint (a name that
 * objects_by_name already has, a key taken meanwhile) is a conflict the caller may retry. */
int md__sqlerr(struct md_db *db, int rc, char *err, size_t errlen)
{
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        char q[512];
        dyno_warn("sqlite refusal", "rc=%d error=%s", rc, dyno_log_q(q, sizeof(q), sqlite3_errmsg(db->db)));
        snprintf(err, errlen, "conflicting change, retry");
        return DYNO_ECONFLICT;
    }
    return dyno_db_err(db->d, rc, err, errlen);
}

/* A reset statement for sql (a static string above) with no bindings. */
int md__stmt(struct md_db *db, const char *sql, sqlite3_stmt **out)
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

int md__stmt_key(struct md_db *db, const char *sql, const char *key, sqlite3_stmt **out)
{
    int rc = md__stmt(db, sql, out);
    if (rc == SQLITE_OK)
        sqlite3_bind_text(*out, 1, key, -1, SQLITE_STATIC);
    return rc;
}

int md__step0(sqlite3_stmt *st)
{
    int rc = dyno_db_step(st);
    sqlite3_reset(st);
    return rc;
}

int md__run_key(struct md_db *db, const char *sql, const char *key, int64_t v2, int *changes)
{
    sqlite3_stmt *st;
    int rc = md__stmt(db, sql, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int64(st, 2, v2);
    rc = md__step0(st);
    if (changes)
        *changes = sqlite3_changes(db->db);
    return rc;
}

/* A cached statement without result rows or bindings (PRAGMA ...). */
static int exec0(struct md_db *db, const char *sql)
{
    sqlite3_stmt *st;
    int rc = md__stmt(db, sql, &st);
    return rc == SQLITE_OK ? md__step0(st) : rc;
}

/* Releases the writer mutex after a write transaction ended (no-op without one). */
static void tx_unlock(struct md_db *db)
{
    if (db->writing) {
        db->writing = false;
        pthread_mutex_unlock(db->writer);
    }
}

static const char SQL_SP_OPEN[] = "SAVEPOINT md_tx";
static const char SQL_SP_RELEASE[] = "RELEASE md_tx";
static const char SQL_SP_UNDO[] = "ROLLBACK TO md_tx";
static const char SQL_REQ_OPEN[] = "SAVEPOINT md_req";
static const char SQL_REQ_RELEASE[] = "RELEASE md_req";
static const char SQL_REQ_UNDO[] = "ROLLBACK TO md_req";

/* A store call's transaction inside the batch: a savepoint. Refused (SQLITE_ABORT) when an
 * error has already rolled the batch's transaction back: a SAVEPOINT outside a transaction
 * would start one of its own, outside the writer's commit. */
static int sp_open(struct md_db *db)
{
    if (sqlite3_get_autocommit(db->db))
        return SQLITE_ABORT;
    int rc = exec0(db, SQL_SP_OPEN);
    if (rc == SQLITE_OK)
        db->depth++;
    return rc;
}

/* Ends the innermost store savepoint: kept (released into the batch) or undone. */
static int sp_close(struct md_db *db, bool keep)
{
    if (db->depth == 0)
        return SQLITE_OK;
    db->depth--;
    if (sqlite3_get_autocommit(db->db))
        return SQLITE_ABORT;
    int rc = keep ? SQLITE_OK : exec0(db, SQL_SP_UNDO);
    int rc2 = exec0(db, SQL_SP_RELEASE);
    return rc != SQLITE_OK ? rc : rc2;
}

/*
 * BEGIN IMMEDIATE at a durability level. FULL syncs the WAL at COMMIT, so an acknowledged
 * change survives a power cut. relaxed (NORMAL) does not: object.begin's pending rows may
 * vanish with a power cut (not with a kill -9), which is harmless: the put was never
 * acknowledged, and the next FULL commit syncs the WAL and so them too. synchronous is a
 * connection setting, changed between transactions only.
 */
static int tx_begin(struct md_db *db, bool relaxed)
{
    if (db->batch)
        return sp_open(db); /* the batch's durability is decided by the writer */
    if (db->relaxed != relaxed) {
        int rc = exec0(db, relaxed ? SQL_SYNC_NORMAL : SQL_SYNC_FULL);
        if (rc != SQLITE_OK)
            return rc;
        db->relaxed = relaxed;
    }
    /* Writers of this process queue on a mutex (woken at once) rather than in SQLite's busy
     * handler, which sleeps 1, 2, 5, 10 ... ms between tries of the file lock. */
    if (db->writer) {
        pthread_mutex_lock(db->writer);
        db->writing = true;
    }
    int rc = dyno_db_begin(db->d);
    if (rc != SQLITE_OK)
        tx_unlock(db);
    return rc;
}

int md__begin(struct md_db *db)
{
    return tx_begin(db, false);
}

int md__begin_read(struct md_db *db)
{
    return db->batch ? sp_open(db) : dyno_db_begin_read(db->d);
}

int md__commit(struct md_db *db)
{
    if (db->batch)
        return sp_close(db, true);
    int rc = dyno_db_end(db->d, SQLITE_OK);
    tx_unlock(db);
    return rc;
}

void md__rollback(struct md_db *db)
{
    if (db->batch) {
        sp_close(db, false);
        return;
    }
    if (!sqlite3_get_autocommit(db->db))
        dyno_db_end(db->d, SQLITE_ABORT);
    tx_unlock(db);
}

int md__finish(struct md_db *db, int ret, int rc, char *err, size_t errlen)
{
    if (ret == 0 && (rc & 0xff) == SQLITE_CONSTRAINT) {
        ret = md__sqlerr(db, rc, err, errlen); /* before the ROLLBACK resets the message */
        md__rollback(db);
        return ret;
    }
    if (db->batch) {
        if (ret == 0 && rc == SQLITE_OK)
            rc = sp_close(db, true);
        else
            sp_close(db, false);
        if (ret == 0 && rc != SQLITE_OK)
            ret = md__sqlerr(db, rc, err, errlen);
        return ret;
    }
    ret = dyno_db_tx_finish(db->d, ret, rc, err, errlen);
    tx_unlock(db);
    return ret;
}

/* ---- the batch writer's transaction (md_writer.h) ---- */

int md__batch_begin(struct md_db *db, bool durable)
{
    int rc = tx_begin(db, !durable);
    if (rc == SQLITE_OK) {
        db->batch = true;
        db->depth = 0;
    }
    return rc;
}

int md__batch_mark(struct md_db *db)
{
    if (sqlite3_get_autocommit(db->db))
        return SQLITE_ABORT;
    db->depth = 0;
    return exec0(db, SQL_REQ_OPEN);
}

int md__batch_unmark(struct md_db *db, bool keep)
{
    /* An error that rolled the whole transaction back took every request with it. */
    if (sqlite3_get_autocommit(db->db))
        return SQLITE_ABORT;
    /* A store call that left a savepoint open is ended with its request: RELEASE and
     * ROLLBACK TO of md_req also end every savepoint nested in it. */
    db->depth = 0;
    int rc = keep ? SQLITE_OK : exec0(db, SQL_REQ_UNDO);
    int rc2 = exec0(db, SQL_REQ_RELEASE);
    return rc != SQLITE_OK ? rc : rc2;
}

int md__batch_end(struct md_db *db, bool commit)
{
    db->batch = false;
    db->depth = 0;
    int rc = commit && !sqlite3_get_autocommit(db->db) ? SQLITE_OK : SQLITE_ABORT;
    rc = dyno_db_end(db->d, rc);
    tx_unlock(db);
    return rc;
}

void md_db_share_writer(struct md_db *db, pthread_mutex_t *writer)
{
    db->writer = writer;
}

int md_store_checkpoint(struct md_db *db)
{
    char err[128];
    int rc = sqlite3_wal_checkpoint_v2(db->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return rc == SQLITE_OK || rc == SQLITE_BUSY ? 0 : md__sqlerr(db, rc, err, sizeof(err));
}

int md_db_open(const char *path, struct md_db **out)
{
    *out = NULL;
    struct md_db *db = calloc(1, sizeof(*db));
    if (!db)
        return DYNO_ENOMEM;
    /* FULL by default: an acknowledged object survives a kill -9 or a power cut. One
     * connection per thread (md_ctx_db), so SQLite's own mutex is not needed. */
    const struct dyno_db_opts o = {
        .name = "metadata",
        .schema = "PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=" MD_WAL_BACKSTOP ";",
        .sync = DYNO_DB_SYNC_FULL,
        .one_thread = true};
    int rc = dyno_db_open(path, &o, &db->d);
    if (rc != 0) {
        free(db);
        return rc;
    }
    db->db = dyno_db_sqlite(db->d);
    *out = db;
    return 0;
}

void md_db_close(struct md_db *db)
{
    if (!db)
        return;
    for (size_t i = 0; i < db->ncache; i++)
        sqlite3_finalize(db->cache[i].st);
    dyno_db_close(db->d);
    free(db);
}

int md_db_schema(struct md_db *db)
{
    /* One transaction: the tables, the triggers and the usage fill agree. */
    int version = 0;
    sqlite3_stmt *st = NULL;
    int rc = md__begin(db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db->db, SCHEMA, NULL, NULL, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < sizeof(SCHEMA_USAGE) / sizeof(SCHEMA_USAGE[0]); i++)
        rc = sqlite3_exec(db->db, SCHEMA_USAGE[i], NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = dyno_db_prepare(db->d, "PRAGMA user_version", &st);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    /* Version 2: the object's site rule (md_begin_req.site_relaxed). Not in the CREATE
     * above, so that one ALTER serves new and old files alike; old objects are strict. */
    if (rc == SQLITE_OK && version < 2)
        rc = sqlite3_exec(db->db, "ALTER TABLE objects ADD COLUMN site_spread INTEGER NOT NULL DEFAULT 0",
                          NULL, NULL, NULL);
    /* Version 3: S3 attributes of an object (ETag, Content-Type, x-amz-meta-*), JSON. Added
     * when the column is missing, whatever the version says (a file taken back to an older
     * version keeps its newer columns). */
    bool has_attrs = false;
    if (rc == SQLITE_OK &&
        (rc = dyno_db_prepare(db->d, "SELECT 1 FROM pragma_table_info('objects') WHERE name = 'attrs'",
                              &st)) == SQLITE_OK) {
        has_attrs = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
    }
    if (rc == SQLITE_OK && !has_attrs)
        rc = sqlite3_exec(db->db, "ALTER TABLE objects ADD COLUMN attrs TEXT", NULL, NULL, NULL);
    if (rc == SQLITE_OK && version < MD_SCHEMA_VERSION) {
        rc = sqlite3_exec(db->db, SQL_USAGE_FILL, NULL, NULL, NULL);
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", MD_SCHEMA_VERSION);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db->db, sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            dyno_info("usage accounting filled from the rows", "schema_version=%d", MD_SCHEMA_VERSION);
    }
    char err[128];
    if (md__finish(db, 0, rc, err, sizeof(err)) != 0) {
        dyno_error("cannot create the schema", NULL);
        return DYNO_EIO;
    }
    return 0;
}

static int cmp_node(const void *a, const void *b)
{
    return strcmp(((const struct md_node *)a)->id, ((const struct md_node *)b)->id);
}

uint64_t md_node_capacity(const struct md_node *nd, uint64_t used)
{
    uint64_t cap = nd->capacity > 0 ? (uint64_t)nd->capacity : 0;
    if (nd->reported_free >= 0 && used + (uint64_t)nd->reported_free < cap)
        cap = used + (uint64_t)nd->reported_free;
    return cap;
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

/* fragments:[{index, container, state, url, online}] of key, in index order. SQLite code. */
static int frags_json(struct md_db *db, const char *key, const struct md_nodes *nodes, cJSON **out)
{
    *out = NULL;
    sqlite3_stmt *st;
    int rc = md__stmt(db, SQL_FRAGS, &st);
    if (rc != SQLITE_OK)
        return rc;
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return SQLITE_NOMEM;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = dyno_db_rows_json(st, NULL, arr);
    sqlite3_reset(st);
    cJSON *f;
    cJSON_ArrayForEach(f, arr)
    {
        if (rc != SQLITE_OK)
            break;
        const struct md_node *nd = md_nodes_find(nodes, dyno_json_str(f, "container"));
        if (!cJSON_AddStringToObject(f, "url", nd ? nd->url : "") ||
            !cJSON_AddStringToObject(f, "site", nd ? nd->site : "") ||
            !cJSON_AddBoolToObject(f, "online", nd && nd->online))
            rc = SQLITE_NOMEM;
    }
    if (rc != SQLITE_OK) {
        cJSON_Delete(arr);
        return rc;
    }
    *out = arr;
    return SQLITE_OK;
}

/* The object as object.get returns it (whatever its state). SQLITE_NOTFOUND when there is
 * no such row. */
/* An object row's attrs column (JSON text, or NULL) as a JSON object member; none when it has
 * none. SQLite code. */
static int attrs_json(cJSON *o)
{
    cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "attrs");
    if (!a)
        return SQLITE_OK;
    cJSON *parsed = cJSON_IsString(a) ? cJSON_Parse(a->valuestring) : NULL;
    if (!cJSON_IsObject(parsed)) {
        cJSON_Delete(parsed);
        cJSON_DeleteItemFromObjectCaseSensitive(o, "attrs");
        return SQLITE_OK;
    }
    return cJSON_ReplaceItemInObjectCaseSensitive(o, "attrs", parsed) ? SQLITE_OK : SQLITE_NOMEM;
}

static int object_json(struct md_db *db, const char *key, const struct md_nodes *nodes, cJSON **out)
{
    static const char *const bools[] = {"replica", NULL};
    *out = NULL;
    sqlite3_stmt *st;
    int rc = md__stmt_key(db, SQL_OBJ_JSON, key, &st);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    cJSON *o = NULL;
    if (rc == SQLITE_ROW)
        rc = dyno_db_row_json(st, 0, bools, &o);
    else if (rc == SQLITE_DONE)
        rc = SQLITE_NOTFOUND;
    sqlite3_reset(st);
    if (rc != SQLITE_OK)
        return rc;
    /* attrs is stored as JSON text: given back as the object it was, absent when none. */
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "attrs");
    cJSON *parsed = cJSON_IsString(at) ? cJSON_Parse(at->valuestring) : NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(o, "attrs");
    if (cJSON_IsObject(parsed))
        cJSON_AddItemToObject(o, "attrs", parsed);
    else
        cJSON_Delete(parsed);
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

/* ---- shared with md_repair.c (md_store.h, internal section) ----------------------------- */

int md__begin_obj(struct md_db *db, const char *key, struct md__obj *o, int *rc, char *err, size_t errlen)
{
    *rc = md__begin(db);
    if (*rc == SQLITE_OK)
        *rc = md__obj_get(db, key, o);
    if (*rc != SQLITE_NOTFOUND)
        return 0;
    *rc = SQLITE_OK;
    snprintf(err, errlen, "no object %s", key);
    return DYNO_ENOTFOUND;
}

cJSON *md__result_new(const char *array, cJSON **arr, char *err, size_t errlen)
{
    cJSON *res = cJSON_CreateObject();
    *arr = cJSON_AddArrayToObject(res, array);
    if (!res || !*arr) {
        cJSON_Delete(res);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return res;
}

int md__read_end(struct md_db *db, int rc, cJSON *res, cJSON **result, char *err, size_t errlen)
{
    md__rollback(db);
    if (rc != SQLITE_OK) {
        cJSON_Delete(res);
        return md__sqlerr(db, rc, err, errlen);
    }
    *result = res;
    return 0;
}

int md__obj_get(struct md_db *db, const char *key, struct md__obj *r)
{
    sqlite3_stmt *st;
    int rc = md__stmt_key(db, SQL_OBJ_GET, key, &st);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(r->catalog, sizeof(r->catalog), "%s", dyno_db_text(st, 0));
        snprintf(r->name, sizeof(r->name), "%s", dyno_db_text(st, 1));
        snprintf(r->owner, sizeof(r->owner), "%s", dyno_db_text(st, 2));
        r->size = sqlite3_column_int64(st, 3);
        snprintf(r->sha256, sizeof(r->sha256), "%s", dyno_db_text(st, 4));
        r->k = sqlite3_column_int(st, 5);
        r->m = sqlite3_column_int(st, 6);
        r->replica = sqlite3_column_int(st, 7) != 0;
        r->unit = (uint32_t)sqlite3_column_int64(st, 8);
        snprintf(r->state, sizeof(r->state), "%s", dyno_db_text(st, 9));
        r->site_relaxed = sqlite3_column_int(st, 12) != 0;
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_NOTFOUND;
    }
    sqlite3_reset(st);
    return rc;
}

int md__obj_set_state(struct md_db *db, const char *key, const char *state)
{
    sqlite3_stmt *st;
    int rc = md__stmt_key(db, SQL_OBJ_STATE, key, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
    return md__step0(st);
}

int md__usage(struct md_db *db, const char *id, struct md__usage *u)
{
    sqlite3_stmt *st;
    int rc = md__stmt(db, SQL_USAGE, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        u->used = sqlite3_column_int64(st, 0);
        u->fragments = sqlite3_column_int64(st, 1);
        u->repairing = sqlite3_column_int64(st, 2);
        u->garbage = sqlite3_column_int64(st, 3);
        u->draining = sqlite3_column_int(st, 4) != 0;
        rc = SQLITE_OK;
    }
    sqlite3_reset(st);
    return rc;
}

int md__usage_drift(struct md_db *db, int64_t *rows)
{
    sqlite3_stmt *st;
    int rc = md__stmt(db, SQL_USAGE_DRIFT, &st);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    *rows = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? SQLITE_OK : rc;
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
    int rc = md__stmt_key(db, SQL_OBJ_INSERT, key, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 2, r->catalog, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->name ? r->name : key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, r->size);
    sqlite3_bind_int(st, 6, k);
    sqlite3_bind_int(st, 7, r->m);
    sqlite3_bind_int(st, 8, r->replica ? 1 : 0);
    sqlite3_bind_int64(st, 9, r->unit);
    sqlite3_bind_int64(st, 10, now);
    sqlite3_bind_int(st, 11, r->site_relaxed ? 1 : 0);
    return md__step0(st);
}

/* Places one object of r inside the open write transaction and records it pending: the
 * object row and its n fragment rows (each reserving share bytes), appended to into as
 * {key, unit, k, m, fragments}. Usage is re-read per object, so a batch of reservations
 * spreads like as many object.begin calls. 0 with *rc the SQLite result, or a DYNO_E*. */
static int begin_one(struct md_db *db, const struct md_begin_req *r, const struct md_nodes *nodes,
                     int64_t now, cJSON *into, int *rc, char *err, size_t errlen)
{
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
    int ret = 0;
    *rc = SQLITE_OK;
    if (!pn || !idx || !chosen) {
        snprintf(err, errlen, "out of memory");
        ret = DYNO_ENOMEM;
        goto out;
    }
    size_t count = 0, online = 0, room = 0;
    for (size_t i = 0; i < nodes->n; i++) {
        const struct md_node *nd = &nodes->v[i];
        if (!nd->online)
            continue;
        struct md__usage u;
        *rc = md__usage(db, nd->id, &u);
        if (*rc != SQLITE_OK)
            goto out;
        if (u.draining)
            continue;
        online++;
        uint64_t used = u.used > 0 ? (uint64_t)u.used : 0;
        uint64_t cap = md_node_capacity(nd, used);
        if (cap >= used && cap - used >= share)
            room++;
        pn[count] = (struct dyno_place_node){
            .id = nd->id, .site = nd->site, .capacity = cap, .used = used, .online = true};
        chosen[count] = nd;
        count++;
    }
    /* The site rule: no site holds more fragments than the object can lose (m, for the m + 1
     * replicas of a small object too), so losing a whole site loses nothing. m = 0 cannot
     * survive any loss, so there is nothing for a cap to protect. */
    const struct dyno_place_rule rule = {.site_max = r->site_relaxed ? 0 : (size_t)r->m};
    int prc = dyno_place_spread(pn, count, n, share, &rule, idx);
    if (prc == DYNO_ECONFLICT) {
        /* Transient as much as "too few containers": a site coming back (or added) lets it
         * through, so the same 503 with Retry-After. */
        snprintf(err, errlen,
                 "need %zu fragments with at most m=%d on one site (so that a site can be lost), "
                 "but the %zu online containers with room are on too few sites (a catalog with "
                 "\"site_spread\": \"relaxed\" allows more on one site)",
                 n, r->m, room);
        ret = DYNO_EUNAVAIL;
        goto out;
    }
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
        *rc = insert_object(db, key, r, k, now);
        /* A 128-bit random key collides only when the generator is broken; retry once. */
        if ((*rc & 0xff) == SQLITE_CONSTRAINT && attempt == 0)
            continue;
        if (*rc != SQLITE_OK)
            goto out;
        break;
    }
    cJSON *frags = cJSON_AddArrayToObject(into, "fragments");
    if (!frags || !cJSON_AddStringToObject(into, "key", key)) {
        snprintf(err, errlen, "out of memory");
        ret = DYNO_ENOMEM;
        goto out;
    }
    dyno_json_add_i64(into, "unit", r->unit);
    cJSON_AddNumberToObject(into, "k", k);
    cJSON_AddNumberToObject(into, "m", r->m);
    sqlite3_stmt *st;
    *rc = md__stmt(db, SQL_FRAG_INSERT, &st);
    for (size_t i = 0; *rc == SQLITE_OK && i < n; i++) {
        const struct md_node *nd = chosen[idx[i]];
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, (int)i);
        sqlite3_bind_text(st, 3, nd->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (int64_t)share);
        *rc = md__step0(st);
        cJSON *f = cJSON_CreateObject();
        cJSON_AddItemToArray(frags, f);
        cJSON_AddNumberToObject(f, "index", (double)i);
        cJSON_AddStringToObject(f, "container", nd->id);
        cJSON_AddStringToObject(f, "url", nd->url);
    }
out:
    free(pn);
    free(idx);
    free(chosen);
    return ret;
}

int md_store_begin(struct md_db *db, const struct md_begin_req *r, const struct md_nodes *nodes, int64_t now,
                   cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    int ret = 0;
    /* Usage is read and the reservation written in one write transaction, so two
     * concurrent puts cannot both take the last room of a container. Relaxed durability:
     * a pending object is invisible until its commit, which syncs (tx_begin). */
    int rc = tx_begin(db, true);
    cJSON *res = cJSON_CreateObject();
    if (!res) {
        snprintf(err, errlen, "out of memory");
        ret = DYNO_ENOMEM;
    }
    if (rc == SQLITE_OK && ret == 0)
        ret = begin_one(db, r, nodes, now, res, &rc, err, errlen);
    ret = md__finish(db, ret, rc, err, errlen);
    if (ret == 0) {
        *result = res;
        res = NULL;
    }
    cJSON_Delete(res);
    return ret;
}

/* ---- object.reserve, object.release ---------------------------------------------------- */

static const char SQL_RESV_OLD_FRAGS[] =
    "UPDATE fragments SET state = 'garbage' WHERE key IN (SELECT key FROM objects WHERE state = 'pending'"
    " AND catalog = '' AND owner = ?1)";
static const char SQL_RESV_OLD_OBJS[] =
    "UPDATE objects SET state = 'deleting' WHERE state = 'pending' AND catalog = '' AND owner = ?1";
static const char SQL_RESV_IS[] =
    "SELECT 1 FROM objects WHERE key = ?1 AND state = 'pending' AND catalog = '' AND owner = ?2";
static const char SQL_RESV_FRAGS_DROP[] = "DELETE FROM fragments WHERE key = ?1";
static const char SQL_RESV_SET[] =
    "UPDATE objects SET catalog = ?2, name = ?3, owner = ?4, k = ?5, m = ?6, replica = ?7, unit = ?8"
    " WHERE key = ?1 AND state = 'pending' AND catalog = ''";

/* Moves every reservation of holder to deleting (its fragment rows garbage: a gateway may
 * have sent bytes under such a key before it died, and GC deletes whatever is there). */
static int release_holder(struct md_db *db, const char *holder, int *count)
{
    int rc = SQLITE_OK;
    *count = 0;
    for (int i = 0; i < 2 && rc == SQLITE_OK; i++) {
        sqlite3_stmt *st;
        rc = md__stmt(db, i == 0 ? SQL_RESV_OLD_FRAGS : SQL_RESV_OLD_OBJS, &st);
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(st, 1, holder, -1, SQLITE_STATIC);
            rc = md__step0(st);
            if (i == 1)
                *count = sqlite3_changes(db->db);
        }
    }
    return rc;
}

int md_store_reserve(struct md_db *db, const struct md_resv_req *r, const struct md_nodes *nodes, int64_t now,
                     cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    int ret = 0, released = 0;
    struct md_begin_req b = {.catalog = "",
                             .name = NULL,
                             .owner = r->holder,
                             .size = r->size,
                             .k = r->k,
                             .m = r->m,
                             .replica = r->replica,
                             .unit = r->unit};
    cJSON *arr = NULL;
    cJSON *res = md__result_new("objects", &arr, err, errlen);
    if (!res)
        return DYNO_ENOMEM;
    /* Relaxed like object.begin: a reservation is invisible until a commit, which syncs.
     * Only "fresh" (a new holder incarnation) writes what must not be lost: the old
     * reservations' move to deleting. If that is lost in a crash, the next fresh reserve
     * (or pending_timeout) does it again. */
    int rc = tx_begin(db, true);
    if (rc == SQLITE_OK && r->fresh)
        rc = release_holder(db, r->holder, &released);
    for (int i = 0; rc == SQLITE_OK && ret == 0 && i < r->count; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o) {
            snprintf(err, errlen, "out of memory");
            ret = DYNO_ENOMEM;
            break;
        }
        cJSON_AddItemToArray(arr, o);
        ret = begin_one(db, &b, nodes, now, o, &rc, err, errlen);
        /* The name of a reservation is its key (insert_object), so no catalog+name clash.
         * Room for only some: those (placement failed before writing anything for this one,
         * which is dropped), so that reservations never hold what the last puts need. */
        if (ret == DYNO_EUNAVAIL && i > 0) {
            cJSON_DeleteItemFromArray(arr, i);
            ret = 0;
            break;
        }
    }
    ret = md__finish(db, ret, rc, err, errlen);
    if (ret != 0) {
        cJSON_Delete(res);
        return ret;
    }
    cJSON_AddNumberToObject(res, "released", released);
    *result = res;
    return 0;
}

int md_store_release(struct md_db *db, const char *holder, const char *const *keys, size_t nkeys, int *count,
                     char *err, size_t errlen)
{
    int rc = md__begin(db);
    *count = 0;
    int changed = 0;
    for (size_t i = 0; rc == SQLITE_OK && i < nkeys; i++) {
        sqlite3_stmt *st;
        rc = md__stmt(db, SQL_RESV_IS, &st);
        if (rc != SQLITE_OK)
            break;
        sqlite3_bind_text(st, 1, keys[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, holder, -1, SQLITE_STATIC);
        int s = sqlite3_step(st);
        sqlite3_reset(st);
        if (s == SQLITE_DONE)
            continue; /* used (committed or aborted), or not this holder's: not ours to drop */
        if (s != SQLITE_ROW) {
            rc = s;
            break;
        }
        /* Never used: the holder promises no byte was sent under the key, so the rows go
         * at once (their reservations leave the usage sums through the triggers). */
        rc = md__run_key(db, SQL_RESV_FRAGS_DROP, keys[i], 0, NULL);
        if (rc == SQLITE_OK)
            rc = md__run_key(db, SQL_OBJ_DELETE, keys[i], 0, NULL);
        changed++;
    }
    int ret = md__finish(db, 0, rc, err, errlen);
    if (ret == 0)
        *count = changed;
    return ret;
}

/* A reservation being committed takes the object's identity now: catalog, name, publisher
 * and shape, in the commit's transaction (nothing was known when it was reserved). o is
 * updated to match. DYNO_ECONFLICT when key is no reservation of this shape. */
static int resv_claim(struct md_db *db, const char *key, const struct md_resv_commit *c, struct md__obj *o,
                      int *rc, char *err, size_t errlen)
{
    int k = c->replica ? 1 : c->k;
    if (o->k != k || o->m != c->m || o->replica != c->replica) {
        snprintf(err, errlen, "object %s was reserved for another resilience", key);
        return DYNO_ECONFLICT;
    }
    sqlite3_stmt *st;
    *rc = md__stmt(db, SQL_RESV_SET, &st);
    if (*rc != SQLITE_OK)
        return 0;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->catalog, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, c->name ? c->name : key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, c->publisher, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, k);
    sqlite3_bind_int(st, 6, c->m);
    sqlite3_bind_int(st, 7, c->replica ? 1 : 0);
    sqlite3_bind_int64(st, 8, c->unit);
    *rc = md__step0(st);
    if (*rc == SQLITE_OK) {
        snprintf(o->catalog, sizeof(o->catalog), "%s", c->catalog);
        snprintf(o->name, sizeof(o->name), "%s", c->name ? c->name : key);
        snprintf(o->owner, sizeof(o->owner), "%s", c->publisher);
        o->unit = c->unit;
        o->size = -1; /* reserved for at most its size: the commit's is the real one */
    }
    return 0;
}

/* ---- object.commit ----------------------------------------------------------------------- */

static int set_frag(struct md_db *db, const char *key, int index, const char *state, int64_t size)
{
    sqlite3_stmt *st;
    int rc = size >= 0 ? md__stmt(db, SQL_FRAG_SET, &st) : md__stmt(db, SQL_FRAG_STATE, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, index);
    sqlite3_bind_text(st, 3, state, -1, SQLITE_STATIC);
    if (size >= 0)
        sqlite3_bind_int64(st, 4, size);
    return md__step0(st);
}

/* The visible object of key's catalog and name other than key, into old ("" when none). */
static int same_name(struct md_db *db, const struct md__obj *o, const char *key, char old[DYNO_KEY_LEN + 1])
{
    sqlite3_stmt *st;
    old[0] = '\0';
    int rc = md__stmt(db, SQL_SAME_NAME, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, o->catalog, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, o->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(old, DYNO_KEY_LEN + 1, "%s", dyno_db_text(st, 0));
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The checks of object.commit on the pending object o; 0 or DYNO_EINVAL with err filled.
 * ok and sizes receive, per index < n, whether the fragment is stored and its size. */
static int commit_frags(const struct md__obj *o, int64_t size, const struct md_commit_frag *frags,
                        size_t nfrags, bool ok[256], int64_t sizes[256], char *err, size_t errlen)
{
    int n = md__obj_n(o);
    if (o->size >= 0 && size != o->size) {
        snprintf(err, errlen, "size %lld differs from the size given at begin (%lld)", (long long)size,
                 (long long)o->size);
        return DYNO_EINVAL;
    }
    /* Fragment size of the committed layout, for ok fragments that do not say theirs. */
    struct dyno_layout lay = {.size = (uint64_t)size, .unit = o->unit, .k = o->k};
    int64_t fsize = (int64_t)dyno_layout_fragment_size(&lay);
    bool seen[256] = {false};
    int nok = 0;
    for (size_t i = 0; i < nfrags; i++) {
        int ix = frags[i].index;
        if (ix < 0 || ix >= n) {
            snprintf(err, errlen, "fragment index %d out of range 0..%d", ix, n - 1);
            return DYNO_EINVAL;
        }
        if (seen[ix]) {
            snprintf(err, errlen, "fragment index %d given twice", ix);
            return DYNO_EINVAL;
        }
        seen[ix] = true;
        ok[ix] = frags[i].ok;
        sizes[ix] = frags[i].size >= 0 ? frags[i].size : fsize;
        nok += frags[i].ok;
    }
    if (nok < o->k) {
        snprintf(err, errlen, "only %d of %d fragments ok, need at least %d", nok, n, o->k);
        return DYNO_EINVAL;
    }
    return 0;
}

int md_store_commit(struct md_db *db, const char *key, int64_t size, const char *sha256,
                    const struct md_commit_frag *frags, size_t nfrags, const struct md_nodes *nodes,
                    int64_t now, cJSON **result, char *err, size_t errlen)
{
    return md_store_commit_resv(db, key, NULL, size, sha256, frags, nfrags, nodes, now, result, err, errlen);
}

int md_store_commit_resv(struct md_db *db, const char *key, const struct md_resv_commit *resv, int64_t size,
                         const char *sha256, const struct md_commit_frag *frags, size_t nfrags,
                         const struct md_nodes *nodes, int64_t now, cJSON **result, char *err, size_t errlen)
{
    return md_store_commit_attrs(db, key, resv, NULL, size, sha256, frags, nfrags, nodes, now, result, err,
                                 errlen);
}

int md_store_commit_attrs(struct md_db *db, const char *key, const struct md_resv_commit *resv,
                          const char *attrs, int64_t size, const char *sha256,
                          const struct md_commit_frag *frags, size_t nfrags, const struct md_nodes *nodes,
                          int64_t now, cJSON **result, char *err, size_t errlen)
{
    return md_store_commit_opts(db, key, resv, attrs, false, size, sha256, frags, nfrags, nodes, now, result,
                                err, errlen);
}

/*
 * object.commit "dedupe": the visible object of o's catalog and name other than key, when it
 * holds these bytes (size and sha256), into *res as object.get gives it plus "duplicate":
 * true; *res stays NULL when there is none or it differs. Read in the commit's transaction,
 * so of two commits of the same bytes and name (two gateways, two sessions) the writer runs
 * one after the other and the second finds the first.
 */
static int commit_same(struct md_db *db, const struct md__obj *o, const char *key, int64_t size,
                       const char *sha256, const struct md_nodes *nodes, cJSON **res)
{
    char old[DYNO_KEY_LEN + 1] = "";
    *res = NULL;
    int rc = same_name(db, o, key, old);
    if (rc != SQLITE_OK || !old[0])
        return rc;
    cJSON *e = NULL;
    rc = object_json(db, old, nodes, &e);
    if (rc != SQLITE_OK)
        return rc;
    int64_t osize = -1;
    const char *osha = dyno_json_str(e, "sha256");
    if (dyno_json_i64(e, "size", &osize) != 0 || osize != size || !osha || strcmp(osha, sha256) != 0) {
        cJSON_Delete(e);
        return SQLITE_OK;
    }
    if (!cJSON_AddBoolToObject(e, "duplicate", true)) {
        cJSON_Delete(e);
        return SQLITE_NOMEM;
    }
    *res = e;
    return SQLITE_OK;
}

int md_store_commit_opts(struct md_db *db, const char *key, const struct md_resv_commit *resv,
                         const char *attrs, bool dedupe, int64_t size, const char *sha256,
                         const struct md_commit_frag *frags, size_t nfrags, const struct md_nodes *nodes,
                         int64_t now, cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    cJSON *res = NULL, *rep = NULL;
    int ret = 0;
    struct md__obj o;
    bool ok[256] = {false};
    int64_t sizes[256];
    int rc;
    ret = md__begin_obj(db, key, &o, &rc, err, errlen);
    if (ret != 0 || rc != SQLITE_OK)
        goto out;
    if (visible(o.state)) {
        /* A retried commit (the reply was lost) gets the same answer, minus "replaced",
         * which the first answer carried; nothing changes. */
        if (o.size == size && strcmp(o.sha256, sha256) == 0)
            rc = object_json(db, key, nodes, &res);
        else {
            snprintf(err, errlen, "object %s is already committed with another size or digest", key);
            ret = DYNO_ECONFLICT;
        }
        goto out;
    }
    /* A retried dedupe commit whose first answer (duplicate) was lost: answered the same. */
    if (dedupe && strcmp(o.state, "deleting") == 0 && o.catalog[0] != '\0') {
        rc = commit_same(db, &o, key, size, sha256, nodes, &res);
        if (rc == SQLITE_OK && res)
            goto out;
    }
    if (strcmp(o.state, "pending") != 0) {
        snprintf(err, errlen, "object %s was aborted or evicted", key);
        ret = DYNO_ECONFLICT;
        goto out;
    }
    /* A reservation (catalog "") is committed only with its identity, and only that. */
    if ((o.catalog[0] == '\0') != (resv != NULL)) {
        snprintf(err, errlen,
                 resv ? "object %s is not a reservation"
                      : "object %s is a reservation: commit it with its catalog",
                 key);
        ret = DYNO_ECONFLICT;
        goto out;
    }
    if (resv && ((ret = resv_claim(db, key, resv, &o, &rc, err, errlen)) != 0 || rc != SQLITE_OK))
        goto out;
    ret = commit_frags(&o, size, frags, nfrags, ok, sizes, err, errlen);
    if (ret != 0)
        goto out;
    /* The same bytes are already stored under this name: the new object is discarded as an
     * abort discards it (deleting: its fragments are garbage, and the caller, told so by
     * "duplicate", deletes them as after object.abort); the existing one is untouched. */
    if (dedupe) {
        rc = commit_same(db, &o, key, size, sha256, nodes, &res);
        if (rc == SQLITE_OK && res)
            rc = md__obj_set_state(db, key, "deleting");
        if (rc != SQLITE_OK || res)
            goto out;
    }
    int n = md__obj_n(&o), nok = 0;
    for (int ix = 0; rc == SQLITE_OK && ix < n; ix++) {
        nok += ok[ix];
        rc = ok[ix] ? set_frag(db, key, ix, "ok", sizes[ix]) : set_frag(db, key, ix, "missing", -1);
    }
    /* The old object of the same name leaves the unique index before the new one enters
     * it, in the same transaction: readers see one or the other. */
    char old[DYNO_KEY_LEN + 1] = "";
    if (rc == SQLITE_OK)
        rc = same_name(db, &o, key, old);
    if (rc == SQLITE_OK && old[0]) {
        cJSON *ofr = NULL;
        rc = md__obj_set_state(db, old, "deleting");
        if (rc == SQLITE_OK)
            rc = frags_json(db, old, nodes, &ofr);
        if (rc == SQLITE_OK) {
            rep = cJSON_CreateObject();
            if (!rep || !cJSON_AddStringToObject(rep, "key", old)) {
                cJSON_Delete(ofr);
                rc = SQLITE_NOMEM;
            } else {
                cJSON_AddItemToObject(rep, "fragments", ofr);
            }
        }
    }
    sqlite3_stmt *st;
    if (rc == SQLITE_OK)
        rc = md__stmt(db, SQL_OBJ_COMMIT, &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, nok == n ? "committed" : "degraded", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, size);
        sqlite3_bind_text(st, 4, sha256, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, now);
        if (attrs)
            sqlite3_bind_text(st, 6, attrs, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 6);
        rc = md__step0(st);
    }
    if (rc == SQLITE_OK)
        rc = object_json(db, key, nodes, &res);
out:
    ret = md__finish(db, ret, rc, err, errlen);
    if (ret == 0) {
        if (rep) {
            cJSON_AddItemToObject(res, "replaced", rep);
            rep = NULL;
        }
        *result = res;
        res = NULL;
    }
    cJSON_Delete(res);
    cJSON_Delete(rep);
    return ret;
}

/* ---- abort, evict, get, list, purge, report ----------------------------------------------- */

/* Moves key to deleting: from pending (abort; deleting already is an idempotent repeat) or
 * from a visible state (evict); result {key, fragments}. */
static int to_deleting(struct md_db *db, const char *key, bool from_pending, const struct md_nodes *nodes,
                       cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    cJSON *frags = NULL;
    int ret = 0;
    struct md__obj o;
    int rc;
    ret = md__begin_obj(db, key, &o, &rc, err, errlen);
    if (ret != 0 || rc != SQLITE_OK)
        goto out;
    if (!from_pending && !visible(o.state)) {
        snprintf(err, errlen, "no object %s", key);
        ret = DYNO_ENOTFOUND;
        goto out;
    }
    if (from_pending && visible(o.state)) {
        snprintf(err, errlen, "object %s is committed: evict it instead", key);
        ret = DYNO_ECONFLICT;
        goto out;
    }
    rc = strcmp(o.state, "deleting") != 0 ? md__obj_set_state(db, key, "deleting") : SQLITE_OK;
    if (rc == SQLITE_OK)
        rc = frags_json(db, key, nodes, &frags);
out:
    ret = md__finish(db, ret, rc, err, errlen);
    if (ret == 0) {
        cJSON *res = cJSON_CreateObject();
        if (!res || !cJSON_AddStringToObject(res, "key", key)) {
            cJSON_Delete(res);
            snprintf(err, errlen, "out of memory");
            ret = DYNO_ENOMEM;
        } else {
            cJSON_AddItemToObject(res, "fragments", frags);
            frags = NULL;
            *result = res;
        }
    }
    cJSON_Delete(frags);
    return ret;
}

int md_store_abort(struct md_db *db, const char *key, const struct md_nodes *nodes, cJSON **result, char *err,
                   size_t errlen)
{
    return to_deleting(db, key, true, nodes, result, err, errlen);
}

int md_store_evict(struct md_db *db, const char *key, const struct md_nodes *nodes, cJSON **result, char *err,
                   size_t errlen)
{
    return to_deleting(db, key, false, nodes, result, err, errlen);
}

int md_store_get(struct md_db *db, const char *key, const struct md_nodes *nodes, cJSON **result, char *err,
                 size_t errlen)
{
    *result = NULL;
    cJSON *o = NULL;
    /* One read transaction: the object row and its fragments from the same snapshot. */
    int rc = md__begin_read(db);
    if (rc != SQLITE_OK)
        return md__sqlerr(db, rc, err, errlen);
    rc = object_json(db, key, nodes, &o);
    md__rollback(db);
    if (rc == SQLITE_NOTFOUND || (rc == SQLITE_OK && !visible(dyno_json_str(o, "state")))) {
        cJSON_Delete(o);
        snprintf(err, errlen, "no object %s", key);
        return DYNO_ENOTFOUND;
    }
    if (rc != SQLITE_OK)
        return md__sqlerr(db, rc, err, errlen);
    *result = o;
    return 0;
}

int md_store_get_by_name(struct md_db *db, const char *catalog, const char *name,
                         const struct md_nodes *nodes, cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    cJSON *o = NULL;
    char key[DYNO_KEY_LEN + 1] = "";
    sqlite3_stmt *st = NULL;
    /* One read transaction: the name's key, the row and its fragments from one snapshot. */
    int rc = md__begin_read(db);
    if (rc != SQLITE_OK)
        return md__sqlerr(db, rc, err, errlen);
    rc = md__stmt(db, SQL_OBJ_BY_NAME, &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, catalog, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            snprintf(key, sizeof(key), "%s", dyno_db_text(st, 0));
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_NOTFOUND;
        }
        sqlite3_reset(st);
    }
    if (rc == SQLITE_OK)
        rc = object_json(db, key, nodes, &o);
    md__rollback(db);
    if (rc == SQLITE_NOTFOUND || (rc == SQLITE_OK && !visible(dyno_json_str(o, "state")))) {
        cJSON_Delete(o);
        snprintf(err, errlen, "no object %s in %s", name, catalog);
        return DYNO_ENOTFOUND;
    }
    if (rc != SQLITE_OK)
        return md__sqlerr(db, rc, err, errlen);
    *result = o;
    return 0;
}

int md_store_list(struct md_db *db, const char *catalog, const char *after, const char *prefix, int limit,
                  cJSON **result, char *err, size_t errlen)
{
    struct md_list_req q = {.catalog = catalog, .after = after, .prefix = prefix, .limit = limit};
    return md_store_list_page(db, &q, result, err, errlen);
}

/* The first name after every name that starts with s[0..len) (len >= 1): s with its last
 * byte + 1, into out (len bytes, not terminated). Listed names and prefixes are UTF-8,
 * whose bytes are never 0xFF, so the increment cannot overflow. */
static void list__past(const char *s, size_t len, char *out)
{
    memcpy(out, s, len);
    out[len - 1] = (char)((unsigned char)out[len - 1] + 1);
}

/* Where name's common prefix ends (S3 CommonPrefixes): the length of name up to and with
 * the first delimiter after the prefix's plen bytes, or 0 when there is none. */
static size_t list__group(const char *name, size_t plen, const char *delim, size_t dlen)
{
    if (!dlen || strlen(name) < plen)
        return 0;
    const char *d = strstr(name + plen, delim);
    return d ? (size_t)(d - name) + dlen : 0;
}

/* One listed row into objects (its columns) or, when its name falls in a group, the
 * group's prefix into prefixes. *past_len > 0: a group was listed, the next rows start
 * at past[0..*past_len) (inclusive). */
struct list__page {
    const struct md_list_req *q;
    size_t plen, dlen;
    cJSON *objects, *prefixes;
    int count;
    bool more;
    char last[MD_LIST_TOKEN_MAX + 1]; /* the last name or prefix listed */
    char past[MD_LIST_TOKEN_MAX + 1]; /* the next lower bound */
    size_t past_len;
    bool inclusive;
    int64_t rows; /* rows read */
};

/* Reads up to the page's room + 1 rows from the current bound. SQLITE_OK, SQLITE_DONE when
 * nothing is left, else the SQLite code; a group restarts the read (SQLITE_ROW). */
static int list__batch(struct md_db *db, struct list__page *pg, const char *upper, size_t upper_len)
{
    sqlite3_stmt *st = NULL;
    int rc = md__stmt(db, pg->inclusive ? SQL_LIST_GE : SQL_LIST_GT, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, pg->q->catalog, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, pg->past, (int)pg->past_len, SQLITE_TRANSIENT);
    if (upper_len)
        sqlite3_bind_text(st, 3, upper, (int)upper_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_int(st, 4, pg->q->limit - pg->count + 1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        pg->rows++;
        const char *name = dyno_db_text(st, 1);
        size_t nlen = strlen(name);
        if (nlen > MD_LIST_TOKEN_MAX) {
            rc = SQLITE_CORRUPT;
            break;
        }
        if (pg->count == pg->q->limit) {
            pg->more = true;
            break;
        }
        size_t g = list__group(name, pg->plen, pg->q->delimiter, pg->dlen);
        if (g) {
            /* The whole group is one entry: list its prefix, then seek past it instead of
             * reading every name under it. */
            char cp[MD_LIST_TOKEN_MAX + 1];
            memcpy(cp, name, g);
            cp[g] = '\0';
            if (!cJSON_AddItemToArray(pg->prefixes, cJSON_CreateString(cp))) {
                rc = SQLITE_NOMEM;
                break;
            }
            memcpy(pg->last, cp, g + 1);
            list__past(cp, g, pg->past);
            pg->past_len = g;
            pg->inclusive = true;
            pg->count++;
            sqlite3_reset(st);
            return SQLITE_ROW;
        }
        cJSON *o = NULL;
        rc = dyno_db_row_json(st, 0, NULL, &o);
        if (rc == SQLITE_OK && (rc = attrs_json(o)) != SQLITE_OK)
            cJSON_Delete(o);
        if (rc != SQLITE_OK)
            break;
        if (!cJSON_AddItemToArray(pg->objects, o)) {
            cJSON_Delete(o);
            rc = SQLITE_NOMEM;
            break;
        }
        memcpy(pg->last, name, nlen + 1);
        memcpy(pg->past, name, nlen);
        pg->past_len = nlen;
        pg->inclusive = false;
        pg->count++;
    }
    sqlite3_reset(st);
    /* The batch asked for one row more than the room left: a statement that ran dry
     * means the range did too. */
    return pg->more || rc == SQLITE_DONE ? SQLITE_DONE : rc;
}

int md_store_list_page(struct md_db *db, const struct md_list_req *q, cJSON **result, char *err,
                       size_t errlen)
{
    *result = NULL;
    const char *prefix = q->prefix ? q->prefix : "";
    const char *delim = q->delimiter ? q->delimiter : "";
    const char *after = q->after ? q->after : "";
    struct list__page pg = {.q = q, .plen = strlen(prefix), .dlen = strlen(delim)};
    size_t alen = strlen(after);
    if (pg.plen > MD_LIST_TOKEN_MAX || alen > MD_LIST_TOKEN_MAX || q->limit < 1) {
        snprintf(err, errlen, "prefix or after too long, or limit < 1");
        return DYNO_EINVAL;
    }
    /* A prefix is the range [prefix, past(prefix)). */
    char upper[MD_LIST_TOKEN_MAX + 1];
    if (pg.plen)
        list__past(prefix, pg.plen, upper);
    /* Start at the later of the prefix (inclusive) and after (exclusive). An after that is
     * itself a group's prefix (the token of a page that ended on a group) skips the group. */
    if (strcmp(after, prefix) >= 0 && alen) {
        size_t g = list__group(after, pg.plen, delim, pg.dlen);
        if (g && g == alen && strncmp(after, prefix, pg.plen) == 0) {
            list__past(after, alen, pg.past);
            pg.inclusive = true;
        } else {
            memcpy(pg.past, after, alen);
            pg.inclusive = false;
        }
        pg.past_len = alen;
    } else {
        memcpy(pg.past, prefix, pg.plen);
        pg.past_len = pg.plen;
        pg.inclusive = true;
    }
    cJSON *res = cJSON_CreateObject();
    pg.objects = cJSON_AddArrayToObject(res, "objects");
    pg.prefixes = cJSON_AddArrayToObject(res, "prefixes");
    if (!res || !pg.objects || !pg.prefixes) {
        cJSON_Delete(res);
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    /* One read transaction: the batches of a page see one snapshot. Each batch reads at
     * most the room left + 1 rows; a group ends a batch early (SQLITE_ROW: go on). */
    int rc = md__begin_read(db);
    while (rc == SQLITE_OK || rc == SQLITE_ROW)
        rc = list__batch(db, &pg, upper, pg.plen);
    if (rc == SQLITE_DONE)
        rc = SQLITE_OK;
    if (rc == SQLITE_OK &&
        !(pg.more ? cJSON_AddStringToObject(res, "next", pg.last) : cJSON_AddNullToObject(res, "next")))
        rc = SQLITE_NOMEM;
    if (q->rows)
        *q->rows = pg.rows;
    return md__read_end(db, rc, res, result, err, errlen);
}

/* Deletes key's fragment rows of the indexes deleted[0..n). SQLite code. */
static int drop_frags(struct md_db *db, const char *key, const int *deleted, size_t n)
{
    sqlite3_stmt *st;
    int rc = md__stmt(db, SQL_FRAG_DELETE, &st);
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, deleted[i]);
        rc = md__step0(st);
    }
    return rc;
}

int md_store_purge(struct md_db *db, const char *key, const int *deleted, size_t ndeleted, cJSON **result,
                   char *err, size_t errlen)
{
    *result = NULL;
    int ret = 0;
    struct md__obj o;
    int64_t left = 0;
    sqlite3_stmt *st;
    int rc;
    ret = md__begin_obj(db, key, &o, &rc, err, errlen);
    if (ret != 0 || rc != SQLITE_OK)
        goto out;
    if (strcmp(o.state, "deleting") != 0) {
        snprintf(err, errlen, "object %s is %s: evict or abort it first", key, o.state);
        ret = DYNO_ECONFLICT;
        goto out;
    }
    rc = drop_frags(db, key, deleted, ndeleted);
    /* A missing fragment was never stored (containers write to a temp file and rename
     * only when whole): nothing to delete. */
    if (rc == SQLITE_OK)
        rc = md__run_key(db, SQL_FRAG_MISSING_DROP, key, 0, NULL);
    /* What is left sits on containers that could not be reached: garbage to collect. */
    if (rc == SQLITE_OK)
        rc = md__run_key(db, SQL_FRAG_GARBAGE, key, 0, NULL);
    if (rc == SQLITE_OK)
        rc = md__stmt(db, SQL_FRAG_COUNT, &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        left = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        rc = rc == SQLITE_ROW ? SQLITE_OK : rc;
    }
    if (rc == SQLITE_OK && left == 0)
        rc = md__run_key(db, SQL_OBJ_DELETE, key, 0, NULL);
out:
    ret = md__finish(db, ret, rc, err, errlen);
    if (ret != 0)
        return ret;
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
    int rc;
    ret = md__begin_obj(db, key, &o, &rc, err, errlen);
    if (ret != 0 || rc != SQLITE_OK)
        goto out;
    if (!visible(o.state)) {
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
    rc = md__stmt_key(db, SQL_FRAG_CONTAINER, key, &st);
    if (rc != SQLITE_OK)
        goto out;
    sqlite3_bind_int(st, 2, index);
    rc = sqlite3_step(st);
    /* A report about a copy the object no longer uses (a stale or repaired-away location)
     * says nothing about the live fragment; nor does one about a fragment already known
     * to be missing, or a repeat (the scrubber reports a bad fragment every pass). */
    ignored = rc != SQLITE_ROW || (container && strcmp(container, dyno_db_text(st, 0)) != 0) ||
              strcmp(dyno_db_text(st, 1), "missing") == 0 || strcmp(dyno_db_text(st, 1), fstate) == 0;
    sqlite3_reset(st);
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    if (rc == SQLITE_OK && !ignored)
        rc = set_frag(db, key, index, fstate, -1);
    if (rc == SQLITE_OK && !ignored && strcmp(o.state, "degraded") != 0)
        rc = md__obj_set_state(db, key, "degraded");
out:
    ret = md__finish(db, ret, rc, err, errlen);
    if (ret != 0)
        return ret;
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
}

/* ---- containers, stats, housekeeping ---------------------------------------------------- */

int md_store_containers(struct md_db *db, const struct md_nodes *nodes, cJSON **result, char *err,
                        size_t errlen)
{
    *result = NULL;
    cJSON *arr;
    cJSON *res = md__result_new("containers", &arr, err, errlen);
    if (!res)
        return DYNO_ENOMEM;
    /* One read transaction: the rows agree with each other. */
    int rc = md__begin_read(db);
    for (size_t i = 0; rc == SQLITE_OK && i < nodes->n; i++) {
        const struct md_node *nd = &nodes->v[i];
        struct md__usage u;
        rc = md__usage(db, nd->id, &u);
        if (rc != SQLITE_OK)
            break;
        cJSON *c = cJSON_CreateObject();
        if (!c || !cJSON_AddItemToArray(arr, c)) {
            cJSON_Delete(c);
            rc = SQLITE_NOMEM;
            break;
        }
        cJSON_AddStringToObject(c, "id", nd->id);
        cJSON_AddStringToObject(c, "url", nd->url);
        cJSON_AddStringToObject(c, "site", nd->site);
        cJSON_AddStringToObject(c, "backend", nd->backend);
        cJSON_AddStringToObject(c, "state", u.draining ? "draining" : nd->online ? "online" : "offline");
        cJSON_AddBoolToObject(c, "online", nd->online);
        dyno_json_add_i64(c, "capacity", nd->capacity);
        dyno_json_add_i64(c, "used", u.used);
        {
            /* free as placement sees it: a full disk shows 0 even below its capacity */
            uint64_t used = u.used > 0 ? (uint64_t)u.used : 0;
            uint64_t room = md_node_capacity(nd, used);
            dyno_json_add_i64(c, "free", room > used ? (int64_t)(room - used) : 0);
        }
        cJSON_AddNumberToObject(c, "utilization",
                                nd->capacity > 0 ? (double)u.used / (double)nd->capacity : 0.0);
        dyno_json_add_i64(c, "fragments", u.fragments);
        dyno_json_add_i64(c, "repairing", u.repairing);
        dyno_json_add_i64(c, "garbage", u.garbage);
        dyno_json_add_i64(c, "last_seen", nd->last_seen);
        dyno_json_add_i64(c, "reported_used", nd->reported_used);
    }
    return md__read_end(db, rc, res, result, err, errlen);
}

int md_store_catalog_stats(struct md_db *db, const char *catalog, cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    sqlite3_stmt *st;
    int rc = md__stmt(db, SQL_STATS, &st);
    if (rc != SQLITE_OK)
        return md__sqlerr(db, rc, err, errlen);
    sqlite3_bind_text(st, 1, catalog, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rc = dyno_db_row_json(st, 0, NULL, result);
    sqlite3_reset(st);
    return rc == SQLITE_OK ? 0 : md__sqlerr(db, rc, err, errlen);
}

int md_store_reap(struct md_db *db, int64_t cutoff, int *count)
{
    char err[128];
    int changed = 0;
    *count = 0;
    sqlite3_stmt *st;
    int rc = md__begin(db);
    for (int i = 0; i < 2 && rc == SQLITE_OK; i++) {
        rc = md__stmt(db, i == 0 ? SQL_REAP_FRAGS : SQL_REAP_OBJS, &st);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, cutoff);
            rc = md__step0(st);
            changed = sqlite3_changes(db->db);
        }
    }
    int ret = md__finish(db, 0, rc, err, sizeof(err));
    if (ret == 0)
        *count = changed;
    return ret;
}

int md_store_save_containers(struct md_db *db, const struct md_node *v, size_t n)
{
    char err[128];
    sqlite3_stmt *st;
    int rc = md__begin(db);
    if (rc == SQLITE_OK)
        rc = md__stmt(db, SQL_CT_SAVE, &st);
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
        sqlite3_bind_text(st, 1, v[i].id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, v[i].url, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, v[i].site, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, v[i].online ? "online" : "offline", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, v[i].capacity);
        sqlite3_bind_int64(st, 6, v[i].last_seen);
        sqlite3_bind_int64(st, 7, v[i].reported_used);
        sqlite3_bind_int64(st, 8, v[i].reported_fragments);
        rc = md__step0(st);
    }
    return md__finish(db, 0, rc, err, sizeof(err));
}

int md_store_load_containers(struct md_db *db, struct md_node **out, size_t *n)
{
    char err[128];
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = md__stmt(db, SQL_CT_LOAD, &st);
    if (rc != SQLITE_OK)
        return md__sqlerr(db, rc, err, sizeof(err));
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
        const char *id = dyno_db_text(st, 0);
        if (!dyno_valid_segment(id))
            continue;
        snprintf(nd->id, sizeof(nd->id), "%s", id);
        snprintf(nd->url, sizeof(nd->url), "%s", dyno_db_text(st, 1));
        snprintf(nd->site, sizeof(nd->site), "%s", dyno_db_text(st, 2));
        nd->capacity = sqlite3_column_int64(st, 3);
        nd->last_seen = sqlite3_column_int64(st, 4);
        nd->reported_used = sqlite3_column_int64(st, 5);
        nd->reported_free = -1; /* unknown until its next status */
        nd->reported_fragments = sqlite3_column_int64(st, 6);
        count++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        free(v);
        return md__sqlerr(db, rc, err, sizeof(err));
    }
    *out = v;
    *n = count;
    return 0;
}
