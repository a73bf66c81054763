/*
 * Unit tests of the SQLite adapter (lib/db.h) on real database files in a temp folder:
 * open with pragmas and schema, the error mapping (a real unique violation, a real lock
 * held by a second connection, a real full database), transactions that roll back on an
 * error, and rows to JSON with their types.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dynostore/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"

static const char SCHEMA[] = "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
                             " flag INTEGER NOT NULL DEFAULT 0, note TEXT, score REAL,"
                             " CHECK(length(name) < 10));";

struct fx {
    char dir[64];
    char path[128];
    struct dyno_db *db;
    char err[256];
};

static int setup(void **state)
{
    static struct fx f;
    memset(&f, 0, sizeof(f));
    snprintf(f.dir, sizeof(f.dir), "/tmp/test_db.XXXXXX");
    assert_non_null(mkdtemp(f.dir));
    snprintf(f.path, sizeof(f.path), "%s/t.db", f.dir);
    const struct dyno_db_opts o = {.name = "test", .schema = SCHEMA};
    assert_int_equal(dyno_db_open(f.path, &o, &f.db), 0);
    assert_non_null(f.db);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char p[160];
    dyno_db_close(f->db);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
        unlink(p);
    }
    rmdir(f->dir);
    return 0;
}

/* Runs one statement; returns the SQLite code of dyno_db_step. */
static int exec(struct dyno_db *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = dyno_db_prepare(db, sql, &st);
    if (rc == SQLITE_OK)
        rc = dyno_db_step(st);
    sqlite3_finalize(st);
    return rc;
}

static int64_t scalar(struct dyno_db *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(dyno_db_prepare(db, sql, &st), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static const char *pragma_text(struct dyno_db *db, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(dyno_db_prepare(db, sql, &st), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(out, cap, "%s", dyno_db_text(st, 0));
    sqlite3_finalize(st);
    return out;
}

static void test_open_pragmas_and_schema(void **state)
{
    struct fx *f = *state;
    char buf[32];
    assert_string_equal(pragma_text(f->db, "PRAGMA journal_mode", buf, sizeof(buf)), "wal");
    assert_int_equal(scalar(f->db, "PRAGMA synchronous"), 2); /* FULL */
    assert_int_equal(scalar(f->db, "PRAGMA foreign_keys"), 0);
    assert_int_equal(scalar(f->db, "PRAGMA busy_timeout"), DYNO_DB_BUSY_TIMEOUT_MS);
    assert_int_equal(exec(f->db, "INSERT INTO t(name) VALUES('a')"), SQLITE_OK);
    dyno_db_close(f->db);
    f->db = NULL;

    /* Reopened with the other options: the schema is idempotent and the row is still there. */
    const struct dyno_db_opts o = {.name = "test",
                                   .schema = SCHEMA,
                                   .sync = DYNO_DB_SYNC_NORMAL,
                                   .foreign_keys = true,
                                   .one_thread = true};
    assert_int_equal(dyno_db_open(f->path, &o, &f->db), 0);
    assert_int_equal(scalar(f->db, "PRAGMA synchronous"), 1); /* NORMAL */
    assert_int_equal(scalar(f->db, "PRAGMA foreign_keys"), 1);
    assert_int_equal(scalar(f->db, "SELECT count(*) FROM t"), 1);
    assert_int_equal(dyno_db_exists(f->db, "SELECT 1 FROM t WHERE name = ?1", "a"), SQLITE_OK);
    assert_int_equal(dyno_db_exists(f->db, "SELECT 1 FROM t WHERE name = ?1", "b"), SQLITE_NOTFOUND);
}

static void test_open_errors(void **state)
{
    struct fx *f = *state;
    struct dyno_db *db = (struct dyno_db *)1;
    char p[160];
    const struct dyno_db_opts bad = {.name = "test", .schema = "CREATE TABLE oops("};
    assert_int_equal(dyno_db_open(f->path, &bad, &db), DYNO_EIO);
    assert_null(db);
    snprintf(p, sizeof(p), "%s/no/such/dir/x.db", f->dir);
    const struct dyno_db_opts o = {.name = "test"};
    assert_int_equal(dyno_db_open(p, &o, &db), DYNO_EIO);
    assert_null(db);
    assert_int_equal(dyno_db_open(NULL, &o, &db), DYNO_EINVAL);
    assert_int_equal(dyno_db_open(f->path, NULL, &db), DYNO_EINVAL);
    dyno_db_close(NULL);
}

static void test_unique_violation_is_eexist(void **state)
{
    struct fx *f = *state;
    assert_int_equal(exec(f->db, "INSERT INTO t(name) VALUES('a')"), SQLITE_OK);
    int rc = exec(f->db, "INSERT INTO t(name) VALUES('a')");
    assert_int_equal(rc, SQLITE_CONSTRAINT_UNIQUE); /* extended codes are on */
    assert_int_equal(dyno_db_err(f->db, rc, f->err, sizeof(f->err)), DYNO_EEXIST);
    assert_non_null(strstr(f->err, "test database"));
    /* The primary code is refined from the connection. */
    rc = exec(f->db, "INSERT INTO t(id, name) VALUES(1, 'b')");
    assert_int_equal(rc, SQLITE_CONSTRAINT_PRIMARYKEY);
    assert_int_equal(dyno_db_err(f->db, SQLITE_CONSTRAINT, f->err, sizeof(f->err)), DYNO_EEXIST);
    /* Any other constraint is no "exists". */
    rc = exec(f->db, "INSERT INTO t(name) VALUES('much too long')");
    assert_int_equal(rc, SQLITE_CONSTRAINT_CHECK);
    assert_int_equal(dyno_db_err(f->db, rc, f->err, sizeof(f->err)), DYNO_EIO);
    assert_string_equal(f->err, "test database error");
    /* err may be NULL. */
    assert_int_equal(dyno_db_err(f->db, SQLITE_CONSTRAINT_UNIQUE, NULL, 0), DYNO_EEXIST);
}

static void test_error_mapping(void **state)
{
    struct fx *f = *state;
    assert_int_equal(dyno_db_err(f->db, SQLITE_NOMEM, f->err, sizeof(f->err)), DYNO_ENOMEM);
    assert_string_equal(f->err, "out of memory");
    assert_int_equal(dyno_db_err(f->db, SQLITE_LOCKED, f->err, sizeof(f->err)), DYNO_EUNAVAIL);
    assert_int_equal(dyno_db_err(f->db, SQLITE_IOERR_WRITE, f->err, sizeof(f->err)), DYNO_EIO);
    assert_int_equal(dyno_db_err(f->db, SQLITE_CORRUPT, f->err, sizeof(f->err)), DYNO_EIO);

    /* A real lock: a second connection holds the write lock. */
    struct dyno_db *other = NULL;
    const struct dyno_db_opts o = {.name = "test", .busy_timeout_ms = 50};
    assert_int_equal(dyno_db_open(f->path, &o, &other), 0);
    assert_int_equal(dyno_db_begin(other), SQLITE_OK);
    sqlite3_busy_timeout(dyno_db_sqlite(f->db), 50);
    int rc = dyno_db_begin(f->db);
    assert_int_equal(rc & 0xff, SQLITE_BUSY);
    assert_int_equal(dyno_db_err(f->db, rc, f->err, sizeof(f->err)), DYNO_EUNAVAIL);
    assert_string_equal(f->err, "test database busy, retry");
    assert_int_equal(dyno_db_end(other, SQLITE_OK), SQLITE_OK);
    dyno_db_close(other);

    /* A real full database: one page more than it may have. */
    assert_int_equal(exec(f->db, "PRAGMA max_page_count = 3"), SQLITE_OK);
    assert_int_equal(dyno_db_begin(f->db), SQLITE_OK);
    rc = SQLITE_OK;
    for (int i = 0; i < 200 && rc == SQLITE_OK; i++) {
        char sql[128];
        snprintf(sql, sizeof(sql), "INSERT INTO t(name, note) VALUES('f%d', printf('%%.2000c', 'x'))", i);
        rc = exec(f->db, sql);
    }
    assert_int_equal(rc & 0xff, SQLITE_FULL);
    assert_int_equal(dyno_db_tx_finish(f->db, 0, rc, f->err, sizeof(f->err)), DYNO_ENOSPC);
    assert_string_equal(f->err, "test database disk full");
    assert_int_equal(scalar(f->db, "SELECT count(*) FROM t"), 0);
}

static void test_tx_rollback_on_error(void **state)
{
    struct fx *f = *state;
    /* A failing step rolls back what the transaction did before it. */
    assert_int_equal(dyno_db_begin(f->db), SQLITE_OK);
    int rc = exec(f->db, "INSERT INTO t(name) VALUES('x')");
    assert_int_equal(rc, SQLITE_OK);
    rc = exec(f->db, "INSERT INTO t(name) VALUES('x')");
    assert_int_equal(dyno_db_end(f->db, rc), SQLITE_CONSTRAINT_UNIQUE);
    assert_int_equal(scalar(f->db, "SELECT count(*) FROM t"), 0);
    assert_true(sqlite3_get_autocommit(dyno_db_sqlite(f->db)));

    /* A refusal the caller decided (ret) rolls back and is returned as it is. */
    assert_int_equal(dyno_db_begin(f->db), SQLITE_OK);
    assert_int_equal(exec(f->db, "INSERT INTO t(name) VALUES('y')"), SQLITE_OK);
    assert_int_equal(dyno_db_tx_finish(f->db, DYNO_EFORBIDDEN, SQLITE_OK, f->err, sizeof(f->err)),
                     DYNO_EFORBIDDEN);
    assert_int_equal(scalar(f->db, "SELECT count(*) FROM t"), 0);

    /* The mapped step error, through tx_finish. */
    assert_int_equal(exec(f->db, "INSERT INTO t(name) VALUES('z')"), SQLITE_OK);
    assert_int_equal(dyno_db_begin(f->db), SQLITE_OK);
    assert_int_equal(exec(f->db, "INSERT INTO t(name) VALUES('w')"), SQLITE_OK);
    rc = exec(f->db, "INSERT INTO t(name) VALUES('z')");
    assert_int_equal(dyno_db_tx_finish(f->db, 0, rc, f->err, sizeof(f->err)), DYNO_EEXIST);
    assert_int_equal(scalar(f->db, "SELECT count(*) FROM t"), 1);

    /* And a success commits. */
    assert_int_equal(dyno_db_begin(f->db), SQLITE_OK);
    assert_int_equal(exec(f->db, "INSERT INTO t(name) VALUES('v')"), SQLITE_OK);
    assert_int_equal(dyno_db_tx_finish(f->db, 0, SQLITE_OK, f->err, sizeof(f->err)), 0);
    assert_int_equal(scalar(f->db, "SELECT count(*) FROM t"), 2);

    /* A read transaction sees one snapshot and ends either way. */
    assert_int_equal(dyno_db_begin_read(f->db), SQLITE_OK);
    assert_int_equal(dyno_db_end(f->db, SQLITE_OK), SQLITE_OK);
    assert_true(sqlite3_get_autocommit(dyno_db_sqlite(f->db)));
}

static void test_rows_to_json_types(void **state)
{
    struct fx *f = *state;
    static const char *const bools[] = {"flag", "missing_flag", NULL};
    assert_int_equal(exec(f->db, "INSERT INTO t(id, name, flag, note, score) VALUES(9007199254740992, 'a', 1,"
                                 " 'hi', 1.5)"),
                     SQLITE_OK);
    assert_int_equal(exec(f->db, "INSERT INTO t(id, name, flag) VALUES(2, 'b', 0)"), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(dyno_db_prepare(f->db,
                                     "SELECT name AS who, id, flag, note, score, NULL AS missing_flag FROM t"
                                     " ORDER BY id",
                                     &st),
                     SQLITE_OK);
    cJSON *arr = cJSON_CreateArray();
    assert_non_null(arr);
    assert_int_equal(dyno_db_rows_json(st, bools, arr), SQLITE_OK);
    sqlite3_finalize(st);
    assert_int_equal(cJSON_GetArraySize(arr), 2);

    const cJSON *b = cJSON_GetArrayItem(arr, 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(b, "who")->valuestring, "b");
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(b, "id")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(b, "flag")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(b, "note")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(b, "score")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(b, "missing_flag"))); /* NULL as a bool */
    assert_null(cJSON_GetObjectItemCaseSensitive(b, "name"));                        /* renamed by AS */

    const cJSON *a = cJSON_GetArrayItem(arr, 1);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "flag")));
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(a, "note")));
    assert_true(cJSON_GetObjectItemCaseSensitive(a, "score")->valuedouble == 1.5);
    assert_true(cJSON_GetObjectItemCaseSensitive(a, "id")->valuedouble == 9007199254740992.0);
    /* The keys come in column order. */
    assert_string_equal(a->child->string, "who");
    cJSON_Delete(arr);

    /* One row, its first columns only. */
    assert_int_equal(dyno_db_prepare(f->db, "SELECT name, flag, note FROM t WHERE id = 2", &st), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    cJSON *row = NULL;
    assert_int_equal(dyno_db_row_json(st, 2, NULL, &row), SQLITE_OK);
    sqlite3_finalize(st);
    assert_int_equal(cJSON_GetArraySize(row), 2);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(row, "flag"))); /* no override: a number */
    cJSON_Delete(row);

    /* A BLOB has no JSON form. */
    assert_int_equal(dyno_db_prepare(f->db, "SELECT x'00ff' AS b", &st), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    row = (cJSON *)1;
    assert_int_equal(dyno_db_row_json(st, 0, NULL, &row), SQLITE_MISMATCH);
    assert_null(row);
    sqlite3_finalize(st);
}

static void test_list_json(void **state)
{
    struct fx *f = *state;
    static const char *const bools[] = {"flag", NULL};
    cJSON *res = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(dyno_db_prepare(f->db, "SELECT name, flag FROM t ORDER BY name", &st), SQLITE_OK);
    assert_int_equal(dyno_db_list_json(f->db, SQLITE_OK, st, "items", bools, &res, f->err, sizeof(f->err)),
                     0);
    sqlite3_finalize(st);
    char *text = cJSON_PrintUnformatted(res);
    assert_string_equal(text, "{\"items\":[]}");
    free(text);
    cJSON_Delete(res);

    assert_int_equal(exec(f->db, "INSERT INTO t(name, flag) VALUES('a', 5)"), SQLITE_OK);
    assert_int_equal(dyno_db_prepare(f->db, "SELECT name, flag FROM t ORDER BY name", &st), SQLITE_OK);
    assert_int_equal(dyno_db_list_json(f->db, SQLITE_OK, st, "items", bools, &res, f->err, sizeof(f->err)),
                     0);
    sqlite3_finalize(st);
    text = cJSON_PrintUnformatted(res);
    assert_string_equal(text, "{\"items\":[{\"name\":\"a\",\"flag\":true}]}");
    free(text);
    cJSON_Delete(res);

    /* A failed preparation is mapped, and nothing runs. */
    res = (cJSON *)1;
    assert_int_equal(dyno_db_list_json(f->db, SQLITE_BUSY, NULL, "items", NULL, &res, f->err, sizeof(f->err)),
                     DYNO_EUNAVAIL);
    assert_null(res);

    /* A failing step maps and leaves no result. */
    assert_int_equal(dyno_db_prepare(f->db, "SELECT name, x'01' AS b FROM t", &st), SQLITE_OK);
    res = (cJSON *)1;
    assert_int_equal(dyno_db_list_json(f->db, SQLITE_OK, st, "items", NULL, &res, f->err, sizeof(f->err)),
                     DYNO_EIO);
    assert_null(res);
    sqlite3_finalize(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_pragmas_and_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unique_violation_is_eexist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_rollback_on_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rows_to_json_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_json, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
