/*
 * The SQLite adapter: the one place that opens a database with the project's pragmas, maps
 * SQLite result codes to DYNO_E*, runs transactions and turns result rows into JSON. Every
 * agent store (auth, pubsub, metadata) sits on it.
 *
 * Two return vocabularies, by design:
 *   - functions documented "SQLite code" return SQLITE_OK or a SQLite result code (extended
 *     codes are on: SQLITE_CONSTRAINT_UNIQUE, not SQLITE_CONSTRAINT), so the steps of one
 *     store call chain with `if (rc == SQLITE_OK) rc = ...` inside one transaction;
 *   - the rest return 0 or a negative DYNO_E*; dyno_db_err() and dyno_db_tx_finish() are
 *     where a SQLite code becomes a DYNO_E* with a message for the caller.
 *
 * Threads: a connection opened without one_thread is serialised by SQLite (FULLMUTEX) and
 * may be shared; a transaction spans several calls, so a store that shares one connection
 * between threads still holds its own lock around each transaction. Statements and their
 * column text belong to the thread that stepped them.
 */
#ifndef DYNO_DB_H
#define DYNO_DB_H
#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

#define DYNO_DB_BUSY_TIMEOUT_MS 10000 /* default wait for a lock held by another connection */
#define DYNO_DB_NAME_MAX 31           /* bytes of dyno_db_opts.name kept for messages */

enum dyno_db_sync {
    DYNO_DB_SYNC_FULL = 0, /* the WAL is synced on every commit: an acknowledged change survives power loss */
    DYNO_DB_SYNC_NORMAL,   /* synced at checkpoints: a power cut may lose the last commits, never corrupt */
};

/* How to open a database. Zero-initialised means FULL sync, the default busy timeout, foreign
 * keys off, a connection shared between threads and no schema. */
struct dyno_db_opts {
    const char *name;   /* what it holds, in messages: "auth" gives "auth database busy, retry" */
    const char *schema; /* SQL script run after the pragmas (CREATE ... IF NOT EXISTS), or NULL */
    enum dyno_db_sync sync;
    int busy_timeout_ms; /* 0: DYNO_DB_BUSY_TIMEOUT_MS */
    bool foreign_keys;   /* PRAGMA foreign_keys=ON (else OFF) */
    bool one_thread;     /* SQLITE_OPEN_NOMUTEX: one thread at a time uses it (else FULLMUTEX) */
};

struct dyno_db;

/*
 * Opens (creating when missing) the database file path (":memory:" works), sets busy_timeout,
 * journal_mode=WAL, synchronous and foreign_keys, then runs o->schema. *out is the caller's
 * (dyno_db_close); NULL on error. 0, DYNO_EINVAL (o or path NULL), DYNO_ENOMEM or DYNO_EIO
 * (the SQLite detail is logged).
 */
int dyno_db_open(const char *path, const struct dyno_db_opts *o, struct dyno_db **out);
/* Closes the connection (every statement must be finalized). NULL is a no-op. */
void dyno_db_close(struct dyno_db *db);
/* The SQLite connection, borrowed: to register functions, bind, read sqlite3_changes. */
sqlite3 *dyno_db_sqlite(struct dyno_db *db);

/*
 * Maps SQLite code rc to DYNO_E* and writes a message for the caller into err (when err is
 * non-NULL): BUSY and LOCKED DYNO_EUNAVAIL ("<name> database busy, retry"), CONSTRAINT_UNIQUE
 * and CONSTRAINT_PRIMARYKEY DYNO_EEXIST, NOMEM DYNO_ENOMEM, FULL DYNO_ENOSPC, anything else
 * DYNO_EIO ("<name> database error"). A primary code (SQLITE_CONSTRAINT) is refined from the
 * connection's last extended code when that is of the same kind. Logs the SQLite detail (a
 * refusal as EEXIST only at debug level). Call it with a failure code only.
 */
int dyno_db_err(struct dyno_db *db, int rc, char *err, size_t errlen);

/* Prepares sql (the whole string, one statement) into *st, the caller's (sqlite3_finalize);
 * *st is NULL on error. SQLite code. */
int dyno_db_prepare(struct dyno_db *db, const char *sql, sqlite3_stmt **st);
/* Steps st once: SQLITE_OK when it ran (DONE, or a first ROW), else the SQLite code. For
 * INSERT, UPDATE, DELETE; st is borrowed. */
int dyno_db_step(sqlite3_stmt *st);
/* Runs sql with key bound as ?1: SQLITE_OK when it yields a row, SQLITE_NOTFOUND when none,
 * else the SQLite code. For "SELECT 1 FROM t WHERE k = ?1". */
int dyno_db_exists(struct dyno_db *db, const char *sql, const char *key);

/* BEGIN IMMEDIATE: a write transaction that takes the write lock now (waiting up to the
 * busy timeout), so it never fails half-way on a lock upgrade. SQLite code. */
int dyno_db_begin(struct dyno_db *db);
/* BEGIN (deferred): a read transaction, so several SELECTs see one snapshot. SQLite code. */
int dyno_db_begin_read(struct dyno_db *db);
/* Commits when rc is SQLITE_OK, else rolls back; returns the final SQLite code: rc when it
 * was an error, else the COMMIT's (a failed COMMIT is rolled back). */
int dyno_db_end(struct dyno_db *db, int rc);
/*
 * Ends the write transaction of a store call: commits when ret is 0 and rc is SQLITE_OK,
 * else rolls back. Returns ret when it is nonzero (a refusal the caller decided, its message
 * already in err), else 0, or dyno_db_err() of the step's or the COMMIT's failure.
 */
int dyno_db_tx_finish(struct dyno_db *db, int ret, int rc, char *err, size_t errlen);

/* Column col of the current row as text, "" for NULL; valid until the next step/finalize. */
const char *dyno_db_text(sqlite3_stmt *st, int col);
/*
 * The current row of st as a new JSON object (*out, the caller's): the first ncols columns
 * (every column when ncols <= 0), keyed by column name (use AS to rename), typed by the
 * value: INTEGER a number (exact up to 2^53), FLOAT a number, TEXT a string, NULL null.
 * A column named in bools (a NULL-terminated list, or NULL) is true or false (nonzero, NULL
 * false) instead. SQLITE_OK, SQLITE_NOMEM, or SQLITE_MISMATCH for a BLOB value.
 */
int dyno_db_row_json(sqlite3_stmt *st, int ncols, const char *const *bools, cJSON **out);
/*
 * Steps st to its end, appending dyno_db_row_json() of every row (all columns) to the array
 * arr (borrowed). st is borrowed: the caller binds it before and finalizes it after. On error
 * the rows so far stay in arr. SQLite code.
 */
int dyno_db_rows_json(sqlite3_stmt *st, const char *const *bools, cJSON *arr);
/*
 * A list answer: steps st to its end into *result = {key: [rows]} (dyno_db_rows_json), the
 * caller's. rc is the SQLite code of preparing and binding st: when it is not SQLITE_OK,
 * nothing runs and rc is mapped. st is borrowed (the caller finalizes it). 0, or DYNO_E*
 * with err filled (dyno_db_err) and *result NULL.
 */
int dyno_db_list_json(struct dyno_db *db, int rc, sqlite3_stmt *st, const char *key, const char *const *bools,
                      cJSON **result, char *err, size_t errlen);
#endif
