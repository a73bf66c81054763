/*
 * Helpers shared by the unit tests of the service agents (test_au_store.c, test_ps_store.c),
 * which compile an agent's sources in and drive its store and RPC table without a broker.
 * Header-only; include after <cmocka.h>. Failures fail the running test (cmocka asserts).
 */
#ifndef DYNO_TEST_AGENT_FIXTURE_H
#define DYNO_TEST_AGENT_FIXTURE_H
#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stddef.h>
#include <string.h>

#include "db.h"
#include "mq.h"

/*
 * Calls method of the RPC table methods[0..n) with ctx and the JSON text req, as lib/mq
 * would. Fails the test when req is not JSON, when no method has that name, or when a
 * refused call left a result. Returns the handler's code; *res gets the result (the
 * caller's) when res is non-NULL, else the result is freed.
 */
static inline int fx_rpc_call(const struct dyno_rpc_method *methods, size_t n, void *ctx, const char *method,
                              const char *req, cJSON **res, char *err, size_t errlen)
{
    cJSON *r = cJSON_Parse(req);
    cJSON *out = NULL;
    assert_non_null(r);
    int rc = -100;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(methods[i].name, method) == 0)
            rc = methods[i].fn(ctx, r, &out, err, errlen);
    }
    assert_int_not_equal(rc, -100);
    cJSON_Delete(r);
    if (rc != 0)
        assert_null(out);
    if (res)
        *res = out;
    else
        cJSON_Delete(out);
    return rc;
}

/* The integer in the first column of the first row of sql on db ("SELECT count(*) ..."). */
static inline int fx_count_rows(struct dyno_db *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(dyno_db_sqlite(db), sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* Fills buf with size - 1 bytes c and a NUL: an oversized input. */
static inline void fx_fill(char *buf, size_t size, char c)
{
    memset(buf, c, size - 1);
    buf[size - 1] = '\0';
}
#endif
