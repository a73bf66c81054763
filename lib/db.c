/* The SQLite adapter (db.h). */
#include "db.h"

#include <dynostore/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "json.h"
#include "log.h"

struct dyno_db {
    sqlite3 *sq;
    char name[DYNO_DB_NAME_MAX + 1];
};

/* Logs a failure to open or set up path; detail may be NULL. */
static void log_open_error(const char *path, const char *detail)
{
    char q[512], q2[256];
    dyno_error("cannot open the database", "db=%s error=%s", dyno_log_q(q, sizeof(q), path),
               dyno_log_q(q2, sizeof(q2), detail ? detail : "nomem"));
}

int dyno_db_open(const char *path, const struct dyno_db_opts *o, struct dyno_db **out)
{
    if (!out)
        return DYNO_EINVAL;
    *out = NULL;
    if (!path || !o)
        return DYNO_EINVAL;
    struct dyno_db *db = calloc(1, sizeof(*db));
    if (!db)
        return DYNO_ENOMEM;
    snprintf(db->name, sizeof(db->name), "%s", o->name ? o->name : "");
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                (o->one_thread ? SQLITE_OPEN_NOMUTEX : SQLITE_OPEN_FULLMUTEX);
    char *msg = NULL;
    int rc = sqlite3_open_v2(path, &db->sq, flags, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(db->sq, 1);
        sqlite3_busy_timeout(db->sq, o->busy_timeout_ms > 0 ? o->busy_timeout_ms : DYNO_DB_BUSY_TIMEOUT_MS);
        /* WAL lets readers run during a commit; the sync level is the caller's durability. */
        char pragmas[128];
        snprintf(pragmas, sizeof(pragmas),
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=%s;",
                 o->sync == DYNO_DB_SYNC_NORMAL ? "NORMAL" : "FULL", o->foreign_keys ? "ON" : "OFF");
        rc = sqlite3_exec(db->sq, pragmas, NULL, NULL, &msg);
    }
    if (rc == SQLITE_OK && o->schema)
        rc = sqlite3_exec(db->sq, o->schema, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        log_open_error(path, msg ? msg : (db->sq ? sqlite3_errmsg(db->sq) : NULL));
        sqlite3_free(msg);
        sqlite3_close(db->sq);
        free(db);
        return DYNO_EIO;
    }
    *out = db;
    return 0;
}

void dyno_db_close(struct dyno_db *db)
{
    if (!db)
        return;
    sqlite3_close(db->sq);
    free(db);
}

sqlite3 *dyno_db_sqlite(struct dyno_db *db)
{
    return db->sq;
}

int dyno_db_err(struct dyno_db *db, int rc, char *err, size_t errlen)
{
    char q[512];
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    /* A step without extended codes reports SQLITE_CONSTRAINT; the connection still knows
     * which one, unless a later call (a ROLLBACK) has reset it. */
    int last = sqlite3_extended_errcode(db->sq);
    if (rc == (rc & 0xff) && (last & 0xff) == rc)
        rc = last;
    /* The message is the connection's when it speaks of rc, else the code's generic text. */
    const char *detail = (last & 0xff) == (rc & 0xff) ? sqlite3_errmsg(db->sq) : sqlite3_errstr(rc);
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        dyno_debug("sqlite refusal", "rc=%d error=%s", rc, dyno_log_q(q, sizeof(q), detail));
        snprintf(err, errlen, "%s database: the record exists", db->name);
        return DYNO_EEXIST;
    }
    dyno_error("sqlite error", "rc=%d error=%s", rc, dyno_log_q(q, sizeof(q), detail));
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        snprintf(err, errlen, "%s database busy, retry", db->name);
        return DYNO_EUNAVAIL;
    case SQLITE_FULL:
        snprintf(err, errlen, "%s database disk full", db->name);
        return DYNO_ENOSPC;
    case SQLITE_NOMEM:
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    default:
        snprintf(err, errlen, "%s database error", db->name);
        return DYNO_EIO;
    }
}

int dyno_db_prepare(struct dyno_db *db, const char *sql, sqlite3_stmt **st)
{
    *st = NULL;
    return sqlite3_prepare_v2(db->sq, sql, -1, st, NULL);
}

int dyno_db_step(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

int dyno_db_exists(struct dyno_db *db, const char *sql, const char *key)
{
    sqlite3_stmt *st = NULL;
    int rc = dyno_db_prepare(db, sql, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return SQLITE_OK;
    return rc == SQLITE_DONE ? SQLITE_NOTFOUND : rc;
}

int dyno_db_begin(struct dyno_db *db)
{
    return sqlite3_exec(db->sq, "BEGIN IMMEDIATE", NULL, NULL, NULL);
}

int dyno_db_begin_read(struct dyno_db *db)
{
    return sqlite3_exec(db->sq, "BEGIN", NULL, NULL, NULL);
}

int dyno_db_end(struct dyno_db *db, int rc)
{
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db->sq, "COMMIT", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            return SQLITE_OK;
    }
    sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int dyno_db_tx_finish(struct dyno_db *db, int ret, int rc, char *err, size_t errlen)
{
    rc = dyno_db_end(db, ret == 0 ? rc : SQLITE_ABORT);
    if (ret == 0 && rc != SQLITE_OK)
        ret = dyno_db_err(db, rc, err, errlen);
    return ret;
}

const char *dyno_db_text(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? (const char *)t : "";
}

static bool listed(const char *name, const char *const *names)
{
    for (size_t i = 0; names && names[i]; i++) {
        if (strcmp(name, names[i]) == 0)
            return true;
    }
    return false;
}

int dyno_db_row_json(sqlite3_stmt *st, int ncols, const char *const *bools, cJSON **out)
{
    *out = NULL;
    int n = sqlite3_column_count(st);
    if (ncols > 0 && ncols < n)
        n = ncols;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return SQLITE_NOMEM;
    int rc = SQLITE_OK;
    for (int i = 0; i < n && rc == SQLITE_OK; i++) {
        const char *name = sqlite3_column_name(st, i);
        if (!name) {
            rc = SQLITE_NOMEM;
            break;
        }
        cJSON *item;
        if (listed(name, bools)) {
            item = cJSON_AddBoolToObject(o, name, sqlite3_column_int64(st, i) != 0);
        } else {
            switch (sqlite3_column_type(st, i)) {
            case SQLITE_INTEGER:
                item = dyno_json_add_i64(o, name, sqlite3_column_int64(st, i));
                break;
            case SQLITE_FLOAT:
                item = cJSON_AddNumberToObject(o, name, sqlite3_column_double(st, i));
                break;
            case SQLITE_TEXT:
                item = cJSON_AddStringToObject(o, name, dyno_db_text(st, i));
                break;
            case SQLITE_NULL:
                item = cJSON_AddNullToObject(o, name);
                break;
            default: /* a BLOB has no JSON form here: the query is wrong */
                rc = SQLITE_MISMATCH;
                continue;
            }
        }
        if (!item)
            rc = SQLITE_NOMEM;
    }
    if (rc != SQLITE_OK) {
        cJSON_Delete(o);
        return rc;
    }
    *out = o;
    return SQLITE_OK;
}

int dyno_db_rows_json(sqlite3_stmt *st, const char *const *bools, cJSON *arr)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *o = NULL;
        rc = dyno_db_row_json(st, 0, bools, &o);
        if (rc != SQLITE_OK)
            return rc;
        if (!cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            return SQLITE_NOMEM;
        }
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int dyno_db_list_json(struct dyno_db *db, int rc, sqlite3_stmt *st, const char *key, const char *const *bools,
                      cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    if (rc != SQLITE_OK)
        return dyno_db_err(db, rc, err, errlen);
    cJSON *res = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(res, key);
    rc = res && arr ? dyno_db_rows_json(st, bools, arr) : SQLITE_NOMEM;
    if (rc != SQLITE_OK) {
        cJSON_Delete(res);
        return dyno_db_err(db, rc, err, errlen);
    }
    *result = res;
    return 0;
}
