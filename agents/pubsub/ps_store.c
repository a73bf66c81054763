/* The pubsub store over SQLite (ps_store.h). */
#include "ps_store.h"

#include <dynostore/error.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "json.h"
#include "log.h"

struct ps_store {
    pthread_mutex_t mu;
    sqlite3 *db;
};

static const char SCHEMA[] =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS catalogs(path TEXT PRIMARY KEY, owner TEXT NOT NULL,"
    " public INTEGER NOT NULL DEFAULT 0, k INTEGER NOT NULL, m INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS catalogs_by_owner ON catalogs(owner);"
    "CREATE TABLE IF NOT EXISTS shares(path TEXT NOT NULL, principal TEXT NOT NULL,"
    " kind TEXT NOT NULL CHECK(kind IN ('user','org')),"
    " access TEXT NOT NULL CHECK(access IN ('read','write')), PRIMARY KEY(path, kind, principal));"
    "CREATE INDEX IF NOT EXISTS shares_by_principal ON shares(kind, principal);"
    "CREATE TABLE IF NOT EXISTS subscriptions(path TEXT NOT NULL, user TEXT NOT NULL,"
    " PRIMARY KEY(path, user));"
    "CREATE INDEX IF NOT EXISTS subscriptions_by_user ON subscriptions(user);";

static const char SQL_CREATE[] =
    "INSERT INTO catalogs(path, owner, public, k, m, created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"
    " ON CONFLICT(path) DO NOTHING";
static const char SQL_GET[] = "SELECT path, owner, public, k, m, created_at FROM catalogs WHERE path = ?1";
static const char SQL_SHARES[] = "SELECT principal, kind, access FROM shares WHERE path = ?1 ORDER BY kind, principal";
/* An org share covers the org and every org below it ("lab" covers "lab/team"). */
static const char SQL_LIST[] =
    "SELECT path, owner, public, k, m, created_at FROM catalogs c WHERE owner = ?1"
    " OR EXISTS(SELECT 1 FROM shares s WHERE s.path = c.path AND ((s.kind = 'user' AND s.principal = ?1)"
    "   OR (s.kind = 'org' AND ?2 <> '' AND (s.principal = ?2"
    "       OR substr(?2, 1, length(s.principal) + 1) = s.principal || '/'))))"
    " OR EXISTS(SELECT 1 FROM subscriptions u WHERE u.path = c.path AND u.user = ?1)"
    " ORDER BY path LIMIT ?3";

/* The SQLite adapter: maps a result code to DYNO_E* and logs the detail. */
static int sqlerr(struct ps_store *s, int rc, char *err, size_t errlen)
{
    char q[512];
    dyno_error("sqlite error", "rc=%d error=%s", rc, dyno_agent_q(q, sizeof(q), sqlite3_errmsg(s->db)));
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        snprintf(err, errlen, "pubsub database busy, retry");
        return DYNO_EUNAVAIL;
    case SQLITE_FULL:
        snprintf(err, errlen, "pubsub database disk full");
        return DYNO_ENOSPC;
    case SQLITE_NOMEM:
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    default:
        snprintf(err, errlen, "pubsub database error");
        return DYNO_EIO;
    }
}

int ps_store_open(const char *path, struct ps_store **out)
{
    *out = NULL;
    char q[512];
    struct ps_store *s = calloc(1, sizeof(*s));
    if (!s)
        return DYNO_ENOMEM;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return DYNO_EINTERNAL;
    }
    char *msg = NULL;
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                             NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(s->db, 10000);
        rc = sqlite3_exec(s->db, SCHEMA, NULL, NULL, &msg);
    }
    if (rc != SQLITE_OK) {
        char q2[256];
        dyno_error("cannot open the database", "db=%s error=%s", dyno_agent_q(q, sizeof(q), path),
                   dyno_agent_q(q2, sizeof(q2), msg ? msg : (s->db ? sqlite3_errmsg(s->db) : "nomem")));
        sqlite3_free(msg);
        sqlite3_close(s->db);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return DYNO_EIO;
    }
    *out = s;
    return 0;
}

void ps_store_close(struct ps_store *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

static cJSON *row_json(sqlite3_stmt *st)
{
    cJSON *c = cJSON_CreateObject();
    if (!c)
        return NULL;
    cJSON_AddStringToObject(c, "catalog", col_text(st, 0));
    cJSON_AddStringToObject(c, "owner", col_text(st, 1));
    cJSON_AddBoolToObject(c, "public", sqlite3_column_int(st, 2) != 0);
    cJSON_AddNumberToObject(c, "k", sqlite3_column_int(st, 3));
    cJSON_AddNumberToObject(c, "m", sqlite3_column_int(st, 4));
    dyno_json_add_i64(c, "created_at", sqlite3_column_int64(st, 5));
    return c;
}

/* The row of path (with shares when asked); SQLITE_NOTFOUND when absent. Locked. */
static int get_locked(struct ps_store *s, const char *path, bool shares, cJSON **out)
{
    *out = NULL;
    sqlite3_stmt *st = NULL;
    cJSON *c = NULL;
    int rc = sqlite3_prepare_v2(s->db, SQL_GET, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        c = row_json(st);
        rc = c ? SQLITE_OK : SQLITE_NOMEM;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_NOTFOUND;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_OK || !shares)
        goto out;
    cJSON *arr = cJSON_AddArrayToObject(c, "shares");
    rc = sqlite3_prepare_v2(s->db, SQL_SHARES, -1, &st, NULL);
    if (rc != SQLITE_OK || !arr) {
        rc = arr ? rc : SQLITE_NOMEM;
        goto out;
    }
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *sh = cJSON_CreateObject();
        if (!sh) {
            rc = SQLITE_NOMEM;
            break;
        }
        cJSON_AddItemToArray(arr, sh);
        cJSON_AddStringToObject(sh, "principal", col_text(st, 0));
        cJSON_AddStringToObject(sh, "kind", col_text(st, 1));
        cJSON_AddStringToObject(sh, "access", col_text(st, 2));
    }
    rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
out:
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        cJSON_Delete(c);
        return rc;
    }
    *out = c;
    return SQLITE_OK;
}

int ps_store_create(struct ps_store *s, const char *path, const char *owner, bool pub, int k, int m,
                    int64_t now, cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int rc = sqlite3_prepare_v2(s->db, SQL_CREATE, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, pub ? 1 : 0);
        sqlite3_bind_int(st, 4, k);
        sqlite3_bind_int(st, 5, m);
        sqlite3_bind_int64(st, 6, now);
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        rc = get_locked(s, path, false, result);
    int ret = rc == SQLITE_OK ? 0 : sqlerr(s, rc, err, errlen);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

int ps_store_get(struct ps_store *s, const char *path, cJSON **result, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    /* One read transaction so the row and its shares agree. */
    sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL);
    int rc = get_locked(s, path, true, result);
    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    int ret = 0;
    if (rc == SQLITE_NOTFOUND) {
        snprintf(err, errlen, "no catalog %s", path);
        ret = DYNO_ENOTFOUND;
    } else if (rc != SQLITE_OK) {
        ret = sqlerr(s, rc, err, errlen);
    }
    pthread_mutex_unlock(&s->mu);
    return ret;
}

int ps_store_list(struct ps_store *s, const char *user, const char *org, cJSON **result, char *err,
                  size_t errlen)
{
    *result = NULL;
    sqlite3_stmt *st = NULL;
    cJSON *res = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(res, "catalogs");
    if (!res || !arr) {
        cJSON_Delete(res);
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    pthread_mutex_lock(&s->mu);
    int rc = sqlite3_prepare_v2(s->db, SQL_LIST, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, org ? org : "", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, PS_LIST_MAX);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            cJSON *c = row_json(st);
            if (!c) {
                rc = SQLITE_NOMEM;
                break;
            }
            cJSON_AddItemToArray(arr, c);
        }
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    int ret = rc == SQLITE_OK ? 0 : sqlerr(s, rc, err, errlen);
    pthread_mutex_unlock(&s->mu);
    if (ret != 0) {
        cJSON_Delete(res);
        return ret;
    }
    *result = res;
    return 0;
}
