/* The pubsub store over SQLite (ps_store.h). */
#include "ps_store.h"

#include <dynostore/error.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "agent.h"
#include "db.h"
#include "json.h"
#include "log.h"
#include "names.h"

struct ps_store {
    pthread_mutex_t mu;
    struct dyno_db *db;
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS catalogs(path TEXT PRIMARY KEY, owner TEXT NOT NULL,"
    " public INTEGER NOT NULL DEFAULT 0, k INTEGER NOT NULL, m INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS catalogs_by_owner ON catalogs(owner);"
    "CREATE TABLE IF NOT EXISTS shares(path TEXT NOT NULL, principal TEXT NOT NULL,"
    " kind TEXT NOT NULL CHECK(kind IN ('user','org')),"
    " access TEXT NOT NULL CHECK(access IN ('read','write')), PRIMARY KEY(path, kind, principal));"
    "CREATE INDEX IF NOT EXISTS shares_by_principal ON shares(kind, principal);"
    "CREATE TABLE IF NOT EXISTS subscriptions(path TEXT NOT NULL, user TEXT NOT NULL,"
    " created_at INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(path, user));"
    "CREATE INDEX IF NOT EXISTS subscriptions_by_user ON subscriptions(user, path);"
    "CREATE TABLE IF NOT EXISTS tombstones(path TEXT PRIMARY KEY, deleted_at INTEGER NOT NULL);";

static const char SQL_CREATE[] = "INSERT INTO catalogs(path, owner, public, k, m, created_at, site_spread) "
                                 "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                                 " ON CONFLICT(path) DO NOTHING";
/* The catalog's site rule as the API names it (docs/architecture.md, "Placement"). */
#define SQL_SPREAD(t) "CASE " t "site_spread WHEN 1 THEN 'relaxed' ELSE 'strict' END AS site_spread"
static const char SQL_GET[] = "SELECT path AS catalog, owner, public, k, m, created_at, " SQL_SPREAD(
    "") " FROM catalogs WHERE path = ?1";
/* Older files have no site_spread column: added once at open (their catalogs are strict). */
static const char SQL_HAS_SPREAD[] = "SELECT 1 FROM pragma_table_info('catalogs') WHERE name = 'site_spread'";
static const char SQL_ADD_SPREAD[] = "ALTER TABLE catalogs ADD COLUMN site_spread INTEGER NOT NULL DEFAULT 0";
static const char SQL_SHARES[] =
    "SELECT principal, kind, access FROM shares WHERE path = ?1 ORDER BY kind, principal";
/* ps_covers(kind, principal, sub, org) is share_covers() below, registered on the connection,
 * so SQL and C apply one rule. */
#define SQL_SHARED_BY(path)                                                                                  \
    "EXISTS(SELECT 1 FROM shares s WHERE s.path = " path " AND ps_covers(s.kind, s.principal, ?2, ?3))"
static const char SQL_READ[] =
    "SELECT owner, public, " SQL_SHARED_BY("c.path") " FROM catalogs c WHERE c.path = ?1";
/* shared: 0 none, 1 read, 2 write (the strongest covering share). */
static const char SQL_LIST[] =
    "SELECT c.path AS catalog, c.owner, c.public, c.k, c.m, c.created_at, " SQL_SPREAD(
        "c.") ","
              " (SELECT MAX(CASE s.access WHEN 'write' THEN 2 ELSE 1 END) FROM shares s"
              "   WHERE s.path = c.path AND ps_covers(s.kind, s.principal, ?1, ?2)),"
              " EXISTS(SELECT 1 FROM subscriptions u WHERE u.path = c.path AND u.user = ?1)"
              " FROM catalogs c WHERE c.owner = ?1 OR (?3 AND c.public <> 0)"
              " OR EXISTS(SELECT 1 FROM shares s WHERE s.path = c.path AND ps_covers(s.kind, s.principal, "
              "?1, ?2))"
              " OR EXISTS(SELECT 1 FROM subscriptions u WHERE u.path = c.path AND u.user = ?1)"
              " ORDER BY c.path";
/* The catalog and its sub-catalogs: "a/b" and every path in ("a/b/", "a/b0"), which is
 * exactly the paths that start with "a/b/" ('0' follows '/'); no LIKE, whose '_' is a
 * wildcard and a valid name character. */
#define SQL_TREE "(path = ?1 OR (path > ?2 AND path < ?3))"
static const char SQL_TREE_LIST[] = "SELECT path FROM catalogs WHERE " SQL_TREE " ORDER BY path LIMIT ?4";
static const char SQL_TREE_DEL_CATALOGS[] = "DELETE FROM catalogs WHERE " SQL_TREE;
static const char SQL_TREE_DEL_SHARES[] = "DELETE FROM shares WHERE " SQL_TREE;
static const char SQL_TREE_DEL_SUBS[] = "DELETE FROM subscriptions WHERE " SQL_TREE;
static const char SQL_TREE_TOMBSTONE[] =
    "INSERT INTO tombstones(path, deleted_at) SELECT path, ?4 FROM catalogs WHERE " SQL_TREE
    " ON CONFLICT(path) DO UPDATE SET deleted_at = excluded.deleted_at";
static const char SQL_UNTOMB[] = "DELETE FROM tombstones WHERE path = ?1";
static const char SQL_TOMB_PURGE[] = "DELETE FROM tombstones WHERE deleted_at < ?1";
static const char SQL_TOMB_PAGE[] = "SELECT path FROM tombstones WHERE path > ?1 ORDER BY path LIMIT ?2";
static const char SQL_EXISTS[] = "SELECT 1 FROM catalogs WHERE path = ?1";
static const char SQL_SHARE_PUT[] =
    "INSERT INTO shares(path, principal, kind, access) VALUES(?1, ?2, ?3, ?4)"
    " ON CONFLICT(path, kind, principal) DO UPDATE SET access = excluded.access";
static const char SQL_SHARE_COUNT[] = "SELECT count(*) FROM shares WHERE path = ?1";
static const char SQL_SHARE_FIND[] =
    "SELECT principal, kind FROM shares WHERE path = ?1 AND principal = ?2 AND (?3 IS NULL OR kind = ?3)"
    " ORDER BY kind";
static const char SQL_SHARE_DEL[] =
    "DELETE FROM shares WHERE path = ?1 AND principal = ?2 AND (?3 IS NULL OR kind = ?3)";
static const char SQL_SUB_PUT[] =
    "INSERT INTO subscriptions(path, user, created_at) VALUES(?1, ?2, ?3) ON CONFLICT(path, user) DO NOTHING";
static const char SQL_SUB_DEL[] = "DELETE FROM subscriptions WHERE path = ?1 AND user = ?2";
static const char SQL_SUB_LIST[] =
    "SELECT path AS catalog, created_at FROM subscriptions WHERE user = ?1 ORDER BY path LIMIT ?2";
static const char SQL_PAGE[] =
    "SELECT path, owner, public FROM catalogs WHERE path > ?1 ORDER BY path LIMIT ?2";

/* ---- the access rule ----------------------------------------------------------------- */

/* Whether a share (kind, principal) names who: the user itself, or an org that covers
 * who's org ("lab" covers "lab" and "lab/ct", never "labx"; lib/acl.h). */
static bool share_covers(const char *kind, const char *principal, const char *sub, const char *org)
{
    if (!kind || !principal)
        return false;
    if (strcmp(kind, "user") == 0)
        return sub && strcmp(principal, sub) == 0;
    if (strcmp(kind, "org") == 0)
        return dyno_acl_org_covers(principal, org);
    return false;
}

/*
 * The read rule of protocol.md §7 (the one lib/acl.h dyno_acl_decide applies to the feed):
 * admins, the owner, everyone for a public catalog, and users or orgs with a share of
 * either access. shared: a share covers who (share_covers). The only place pubsub decides
 * read access.
 */
static bool may_read(const char *owner, bool pub, bool shared, const struct ps_who *who)
{
    return who->admin || strcmp(owner, who->sub) == 0 || pub || shared;
}

static void sql_covers(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const char *a[4];
    for (int i = 0; i < 4; i++)
        a[i] = (const char *)sqlite3_value_text(argv[i]);
    sqlite3_result_int(ctx, share_covers(a[0], a[1], a[2], a[3] ? a[3] : "") ? 1 : 0);
}

/* ---- plumbing ------------------------------------------------------------------------ */

static int nomem(char *err, size_t errlen)
{
    snprintf(err, errlen, "out of memory");
    return DYNO_ENOMEM;
}

static int no_catalog(const char *path, char *err, size_t errlen)
{
    snprintf(err, errlen, "no catalog %s", path);
    return DYNO_ENOTFOUND;
}

/* The answer to a read of path that ended with SQLite code rc: 0, DYNO_ENOTFOUND for
 * SQLITE_NOTFOUND, else dyno_db_err(). */
static int read_answer(struct ps_store *s, int rc, const char *path, char *err, size_t errlen)
{
    if (rc == SQLITE_OK)
        return 0;
    if (rc == SQLITE_NOTFOUND)
        return no_catalog(path, err, errlen);
    return dyno_db_err(s->db, rc, err, errlen);
}

/* The end of a call that makes the value v: hands it to *out when ret is 0, else frees it.
 * Returns ret. */
static int hand_over(int ret, cJSON *v, cJSON **out)
{
    if (ret != 0) {
        cJSON_Delete(v);
        return ret;
    }
    *out = v;
    return 0;
}

/* Appends the string v to arr. SQLite code. */
static int add_string(cJSON *arr, const char *v)
{
    cJSON *item = cJSON_CreateString(v);
    if (!item)
        return SQLITE_NOMEM;
    cJSON_AddItemToArray(arr, item);
    return SQLITE_OK;
}

int ps_store_open(const char *path, struct ps_store **out)
{
    *out = NULL;
    struct ps_store *s = calloc(1, sizeof(*s));
    if (!s)
        return DYNO_ENOMEM;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return DYNO_EINTERNAL;
    }
    /* FULL: a committed share or delete must survive a power cut (the feed republishes it). */
    const struct dyno_db_opts o = {.name = "pubsub", .schema = SCHEMA, .sync = DYNO_DB_SYNC_FULL};
    int rc = dyno_db_open(path, &o, &s->db);
    if (rc == 0 &&
        sqlite3_create_function_v2(dyno_db_sqlite(s->db), "ps_covers", 4, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                   NULL, sql_covers, NULL, NULL, NULL) != SQLITE_OK) {
        char q[512], q2[256];
        dyno_error("cannot open the database", "db=%s error=%s", dyno_log_q(q, sizeof(q), path),
                   dyno_log_q(q2, sizeof(q2), sqlite3_errmsg(dyno_db_sqlite(s->db))));
        rc = DYNO_EIO;
    }
    if (rc == 0 && dyno_db_exists(s->db, SQL_HAS_SPREAD, NULL) == SQLITE_NOTFOUND &&
        sqlite3_exec(dyno_db_sqlite(s->db), SQL_ADD_SPREAD, NULL, NULL, NULL) != SQLITE_OK) {
        dyno_error("cannot add catalogs.site_spread", "error=%s", sqlite3_errmsg(dyno_db_sqlite(s->db)));
        rc = DYNO_EIO;
    }
    if (rc != 0) {
        dyno_db_close(s->db);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void ps_store_close(struct ps_store *s)
{
    if (!s)
        return;
    dyno_db_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* The bounds of a path's sub-catalogs, SQL_TREE's ?2 and ?3. Bound as they are: they must
 * outlive the statement. */
struct tree {
    char lo[DYNO_CATALOG_MAX + 2], hi[DYNO_CATALOG_MAX + 2];
};

/* Prepares sql into *st (the caller's) with path bound as ?1 and, when tree is non-NULL, the
 * bounds of path's sub-catalogs written into *tree and bound as ?2 and ?3. SQLite code. */
static int prepare_path(struct ps_store *s, const char *sql, const char *path, struct tree *tree,
                        sqlite3_stmt **st)
{
    int rc = dyno_db_prepare(s->db, sql, st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(*st, 1, path, -1, SQLITE_STATIC);
    if (tree) {
        snprintf(tree->lo, sizeof(tree->lo), "%s/", path);
        snprintf(tree->hi, sizeof(tree->hi), "%s0", path);
        sqlite3_bind_text(*st, 2, tree->lo, -1, SQLITE_STATIC);
        sqlite3_bind_text(*st, 3, tree->hi, -1, SQLITE_STATIC);
    }
    return SQLITE_OK;
}

/* Prepares sql with path, principal and kind (NULL: either kind) bound as ?1, ?2, ?3. SQLite code. */
static int prepare_share(struct ps_store *s, const char *sql, const char *path, const char *principal,
                         const char *kind, sqlite3_stmt **st)
{
    int rc = prepare_path(s, sql, path, NULL, st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(*st, 2, principal, -1, SQLITE_STATIC);
    if (kind)
        sqlite3_bind_text(*st, 3, kind, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(*st, 3);
    return SQLITE_OK;
}

/* Runs a statement with the path bound as ?1 (and ?2, ?3 as the tree bounds when tree, and
 * ?4 as now). */
static int exec_path(struct ps_store *s, const char *sql, const char *path, bool tree, int64_t now)
{
    sqlite3_stmt *st = NULL;
    struct tree t;
    int rc = prepare_path(s, sql, path, tree ? &t : NULL, &st);
    if (rc == SQLITE_OK && tree)
        sqlite3_bind_int64(st, 4, now);
    if (rc == SQLITE_OK)
        rc = dyno_db_step(st);
    sqlite3_finalize(st);
    return rc;
}

/* SQLITE_OK when the catalog exists, SQLITE_NOTFOUND when not. Locked. */
static int exists_locked(struct ps_store *s, const char *path)
{
    return dyno_db_exists(s->db, SQL_EXISTS, path);
}

/* The row {catalog, owner, public, k, m, created_at, site_spread}: the first CATALOG_COLS
 * columns of SQL_GET and SQL_LIST. SQLite code. */
#define CATALOG_COLS 7
static int row_json(sqlite3_stmt *st, cJSON **out)
{
    static const char *const bools[] = {"public", NULL};
    return dyno_db_row_json(st, CATALOG_COLS, bools, out);
}

/* Adds shares:[{principal, kind, access}] of path to obj. Locked. */
static int add_shares_locked(struct ps_store *s, const char *path, cJSON *obj)
{
    sqlite3_stmt *st = NULL;
    cJSON *arr = cJSON_AddArrayToObject(obj, "shares");
    if (!arr)
        return SQLITE_NOMEM;
    int rc = prepare_path(s, SQL_SHARES, path, NULL, &st);
    if (rc != SQLITE_OK)
        return rc;
    rc = dyno_db_rows_json(st, NULL, arr);
    sqlite3_finalize(st);
    return rc;
}

/* The row of path (with shares when asked); SQLITE_NOTFOUND when absent. Locked. */
static int get_locked(struct ps_store *s, const char *path, bool shares, cJSON **out)
{
    *out = NULL;
    sqlite3_stmt *st = NULL;
    cJSON *c = NULL;
    int rc = prepare_path(s, SQL_GET, path, NULL, &st);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        rc = row_json(st, &c);
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_NOTFOUND;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK && shares)
        rc = add_shares_locked(s, path, c);
    return hand_over(rc, c, out);
}

/* A policy record {catalog, owner, public, shares}. Locked. */
static cJSON *policy_json(const char *path, const char *owner, bool pub)
{
    cJSON *p = cJSON_CreateObject();
    if (!p || !cJSON_AddStringToObject(p, "catalog", path) || !cJSON_AddStringToObject(p, "owner", owner) ||
        !cJSON_AddBoolToObject(p, "public", pub)) {
        cJSON_Delete(p);
        return NULL;
    }
    return p;
}

/* The policy record of path with its stored shares. SQLite code. Locked. */
static int policy_new_locked(struct ps_store *s, const char *path, const char *owner, bool pub, cJSON **out)
{
    cJSON *p = policy_json(path, owner, pub);
    if (!p)
        return SQLITE_NOMEM;
    return hand_over(add_shares_locked(s, path, p), p, out);
}

/* The policy record of path; SQLITE_NOTFOUND when absent. Locked. */
static int policy_locked(struct ps_store *s, const char *path, cJSON **out)
{
    cJSON *row = NULL;
    *out = NULL;
    int rc = get_locked(s, path, false, &row);
    if (rc != SQLITE_OK)
        return rc;
    rc = policy_new_locked(s, path, dyno_json_str(row, "owner"),
                           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(row, "public")), out);
    cJSON_Delete(row);
    return rc;
}

/* owner, public and whether a share covers who; SQLITE_NOTFOUND. Locked. */
static int read_facts_locked(struct ps_store *s, const char *path, const struct ps_who *who, bool *ok)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare_path(s, SQL_READ, path, NULL, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 2, who->sub, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, who->org ? who->org : "", -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *ok = may_read(dyno_db_text(st, 0), sqlite3_column_int(st, 1) != 0, sqlite3_column_int(st, 2) != 0,
                       who);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_NOTFOUND;
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- catalogs ------------------------------------------------------------------------ */

int ps_store_create(struct ps_store *s, const char *path, const char *owner, bool pub, int k, int m,
                    bool site_relaxed, int64_t now, cJSON **result, cJSON **policy, char *err, size_t errlen)
{
    *result = NULL;
    *policy = NULL;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int rc = dyno_db_begin(s->db);
    if (rc == SQLITE_OK)
        rc = prepare_path(s, SQL_CREATE, path, NULL, &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, pub ? 1 : 0);
        sqlite3_bind_int(st, 4, k);
        sqlite3_bind_int(st, 5, m);
        sqlite3_bind_int64(st, 6, now);
        sqlite3_bind_int(st, 7, site_relaxed ? 1 : 0);
        rc = dyno_db_step(st);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        rc = exec_path(s, SQL_UNTOMB, path, false, 0);
    if (rc == SQLITE_OK)
        rc = get_locked(s, path, false, result);
    if (rc == SQLITE_OK)
        rc = policy_locked(s, path, policy);
    int ret = dyno_db_tx_finish(s->db, 0, rc, err, errlen);
    pthread_mutex_unlock(&s->mu);
    if (ret != 0) {
        cJSON_Delete(*result);
        cJSON_Delete(*policy);
        *result = *policy = NULL;
    }
    return ret;
}

int ps_store_get(struct ps_store *s, const char *path, cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    pthread_mutex_lock(&s->mu);
    /* One read transaction so the row and its shares agree. */
    int rc = dyno_db_begin_read(s->db);
    if (rc == SQLITE_OK)
        rc = get_locked(s, path, true, result);
    dyno_db_end(s->db, SQLITE_OK);
    int ret = read_answer(s, rc, path, err, errlen);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

int ps_store_list(struct ps_store *s, const struct ps_who *who, bool with_public, cJSON **result, char *err,
                  size_t errlen)
{
    *result = NULL;
    sqlite3_stmt *st = NULL;
    cJSON *res = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(res, "catalogs");
    if (!res || !arr) {
        cJSON_Delete(res);
        return nomem(err, errlen);
    }
    bool truncated = false;
    int n = 0;
    pthread_mutex_lock(&s->mu);
    int rc = dyno_db_prepare(s->db, SQL_LIST, &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, who->sub, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, who->org ? who->org : "", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, with_public ? 1 : 0);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *owner = dyno_db_text(st, 1);
            bool pub = sqlite3_column_int(st, 2) != 0;
            int shared = sqlite3_column_int(st, CATALOG_COLS);
            bool subscribed = sqlite3_column_int(st, CATALOG_COLS + 1) != 0;
            bool owns = strcmp(owner, who->sub) == 0;
            const char *rel;
            if (owns)
                rel = "owner";
            else if (shared > 0)
                rel = "shared";
            else if (subscribed && may_read(owner, pub, false, who))
                rel = "subscribed";
            else if (with_public && pub)
                rel = "public";
            else
                continue; /* a subscription the user may no longer read */
            if (n == PS_LIST_MAX) {
                truncated = true;
                break;
            }
            cJSON *c = NULL;
            if ((rc = row_json(st, &c)) != SQLITE_OK)
                break;
            cJSON_AddItemToArray(arr, c);
            n++;
            bool write = owns || who->admin || shared == 2;
            if (!cJSON_AddStringToObject(c, "relation", rel) ||
                !cJSON_AddStringToObject(c, "access", write ? "write" : "read")) {
                rc = SQLITE_NOMEM;
                break;
            }
        }
        rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    int ret = rc == SQLITE_OK ? 0 : dyno_db_err(s->db, rc, err, errlen);
    pthread_mutex_unlock(&s->mu);
    if (ret == 0 && truncated && !cJSON_AddBoolToObject(res, "truncated", true))
        ret = nomem(err, errlen);
    return hand_over(ret, res, result);
}

int ps_store_delete(struct ps_store *s, const char *path, bool recursive, bool dry_run, int64_t now,
                    cJSON **deleted, char *err, size_t errlen)
{
    *deleted = NULL;
    sqlite3_stmt *st = NULL;
    struct tree t;
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return nomem(err, errlen);
    int ret = 0, trc;
    bool self = false;
    int n = 0;
    pthread_mutex_lock(&s->mu);
    int rc = dyno_db_begin(s->db);
    if (rc == SQLITE_OK)
        rc = prepare_path(s, SQL_TREE_LIST, path, &t, &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int(st, 4, PS_DELETE_MAX + 1);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *p = dyno_db_text(st, 0);
            if (strcmp(p, path) == 0)
                self = true;
            rc = add_string(arr, p);
            if (rc != SQLITE_OK)
                break;
            n++;
        }
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        goto out;
    if (n == 0) {
        ret = no_catalog(path, err, errlen);
    } else if (n > (self ? 1 : 0) && !recursive) {
        snprintf(err, errlen, "catalog %s has %d sub-catalog%s; delete them first or pass recursive", path,
                 n - (self ? 1 : 0), n - (self ? 1 : 0) == 1 ? "" : "s");
        ret = DYNO_ECONFLICT;
    } else if (n > PS_DELETE_MAX) {
        snprintf(err, errlen, "more than %d catalogs under %s; delete deeper ones first", PS_DELETE_MAX,
                 path);
        ret = DYNO_ETOOBIG;
    }
    if (ret != 0 || dry_run)
        goto out;
    rc = exec_path(s, SQL_TREE_TOMBSTONE, path, true, now);
    if (rc == SQLITE_OK)
        rc = exec_path(s, SQL_TREE_DEL_SHARES, path, true, now);
    if (rc == SQLITE_OK)
        rc = exec_path(s, SQL_TREE_DEL_SUBS, path, true, now);
    if (rc == SQLITE_OK)
        rc = exec_path(s, SQL_TREE_DEL_CATALOGS, path, true, now);
out:
    /* A refusal or a dry run rolls back: it changed nothing anyway. */
    trc = dyno_db_end(s->db, ret == 0 && !dry_run ? rc : SQLITE_ABORT);
    if (ret == 0 && rc != SQLITE_OK)
        ret = dyno_db_err(s->db, rc, err, errlen);
    else if (ret == 0 && !dry_run && trc != SQLITE_OK)
        ret = dyno_db_err(s->db, trc, err, errlen);
    pthread_mutex_unlock(&s->mu);
    return hand_over(ret, arr, deleted);
}

/* ---- shares -------------------------------------------------------------------------- */

int ps_store_share_add(struct ps_store *s, const char *path, const char *principal, const char *kind,
                       const char *access, cJSON **policy, char *err, size_t errlen)
{
    *policy = NULL;
    sqlite3_stmt *st = NULL;
    cJSON *p = NULL;
    int ret = 0;
    pthread_mutex_lock(&s->mu);
    int rc = dyno_db_begin(s->db);
    if (rc == SQLITE_OK)
        rc = exists_locked(s, path);
    if (rc == SQLITE_OK)
        rc = prepare_share(s, SQL_SHARE_PUT, path, principal, kind, &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 4, access, -1, SQLITE_STATIC);
        rc = dyno_db_step(st);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc == SQLITE_OK)
        rc = prepare_path(s, SQL_SHARE_COUNT, path, NULL, &st);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            rc = SQLITE_OK;
            if (sqlite3_column_int64(st, 0) > DYNO_ACL_SHARES_MAX) {
                snprintf(err, errlen, "catalog %s has the most shares allowed (%d)", path,
                         DYNO_ACL_SHARES_MAX);
                ret = DYNO_ETOOBIG;
            }
        }
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK && ret == 0)
        rc = policy_locked(s, path, &p);
    if (rc == SQLITE_OK && ret == 0) {
        /* The broker plugin refuses larger records: refuse the share instead. */
        size_t len = 0;
        char *text = dyno_json_print(p, &len);
        if (!text)
            rc = SQLITE_NOMEM;
        else if (len > DYNO_ACL_POLICY_MAX) {
            snprintf(err, errlen, "the policy record of %s would exceed %d bytes", path, DYNO_ACL_POLICY_MAX);
            ret = DYNO_ETOOBIG;
        }
        free(text);
    }
    if (rc == SQLITE_NOTFOUND)
        ret = no_catalog(path, err, errlen);
    ret = dyno_db_tx_finish(s->db, ret, rc, err, errlen);
    pthread_mutex_unlock(&s->mu);
    return hand_over(ret, p, policy);
}

int ps_store_share_remove(struct ps_store *s, const char *path, const char *principal, const char *kind,
                          cJSON **removed, cJSON **policy, char *err, size_t errlen)
{
    *removed = NULL;
    *policy = NULL;
    sqlite3_stmt *st = NULL;
    cJSON *p = NULL;
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return nomem(err, errlen);
    int ret = 0;
    pthread_mutex_lock(&s->mu);
    int rc = dyno_db_begin(s->db);
    if (rc == SQLITE_OK)
        rc = exists_locked(s, path);
    if (rc == SQLITE_NOTFOUND) {
        ret = no_catalog(path, err, errlen);
        goto out;
    }
    if (rc == SQLITE_OK)
        rc = prepare_share(s, SQL_SHARE_FIND, path, principal, kind, &st);
    if (rc == SQLITE_OK)
        rc = dyno_db_rows_json(st, NULL, arr);
    sqlite3_finalize(st);
    st = NULL;
    if (rc == SQLITE_OK && cJSON_GetArraySize(arr) == 0) {
        snprintf(err, errlen, "catalog %s is not shared with %s", path, principal);
        ret = DYNO_ENOTFOUND;
        goto out;
    }
    if (rc == SQLITE_OK)
        rc = prepare_share(s, SQL_SHARE_DEL, path, principal, kind, &st);
    if (rc == SQLITE_OK)
        rc = dyno_db_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        rc = policy_locked(s, path, &p);
out:
    ret = dyno_db_tx_finish(s->db, ret, rc, err, errlen);
    pthread_mutex_unlock(&s->mu);
    ret = hand_over(ret, arr, removed);
    return hand_over(ret, p, policy);
}

/* ---- subscriptions and reads --------------------------------------------------------- */

int ps_store_may_read(struct ps_store *s, const char *path, const struct ps_who *who, bool *ok, char *err,
                      size_t errlen)
{
    *ok = false;
    pthread_mutex_lock(&s->mu);
    int ret = read_answer(s, read_facts_locked(s, path, who, ok), path, err, errlen);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

int ps_store_sub_add(struct ps_store *s, const char *path, const struct ps_who *who, int64_t now, char *err,
                     size_t errlen)
{
    sqlite3_stmt *st = NULL;
    bool ok = false;
    int ret = 0;
    pthread_mutex_lock(&s->mu);
    /* The check and the insert in one transaction: a share removed in between cannot
     * slip a subscription through. */
    int rc = dyno_db_begin(s->db);
    if (rc == SQLITE_OK)
        rc = read_facts_locked(s, path, who, &ok);
    if (rc == SQLITE_NOTFOUND) {
        ret = no_catalog(path, err, errlen);
    } else if (rc == SQLITE_OK && !ok) {
        snprintf(err, errlen, "%s may not read %s", who->sub, path);
        ret = DYNO_EFORBIDDEN;
    }
    if (rc == SQLITE_OK && ret == 0)
        rc = prepare_path(s, SQL_SUB_PUT, path, NULL, &st);
    if (rc == SQLITE_OK && ret == 0) {
        sqlite3_bind_text(st, 2, who->sub, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now);
        rc = dyno_db_step(st);
    }
    sqlite3_finalize(st);
    ret = dyno_db_tx_finish(s->db, ret, rc, err, errlen);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

int ps_store_sub_remove(struct ps_store *s, const char *path, const char *user, bool *removed, char *err,
                        size_t errlen)
{
    sqlite3_stmt *st = NULL;
    *removed = false;
    pthread_mutex_lock(&s->mu);
    int rc = prepare_path(s, SQL_SUB_DEL, path, NULL, &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
            *removed = sqlite3_changes(dyno_db_sqlite(s->db)) > 0;
        }
    }
    sqlite3_finalize(st);
    int ret = rc == SQLITE_OK ? 0 : dyno_db_err(s->db, rc, err, errlen);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

int ps_store_sub_list(struct ps_store *s, const char *user, cJSON **result, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int rc = dyno_db_prepare(s->db, SQL_SUB_LIST, &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, PS_SUBS_MAX);
    }
    int ret = dyno_db_list_json(s->db, rc, st, "subscriptions", NULL, result, err, errlen);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

/* ---- the policy feed ----------------------------------------------------------------- */

/* An empty page *arr for limit (1..PS_PAGE_MAX) entries. 0, DYNO_EINVAL or DYNO_ENOMEM. */
static int page_new(int limit, cJSON **arr, char *err, size_t errlen)
{
    if (limit < 1 || limit > PS_PAGE_MAX) {
        snprintf(err, errlen, "limit must be 1..%d", PS_PAGE_MAX);
        return DYNO_EINVAL;
    }
    *arr = cJSON_CreateArray();
    return *arr ? 0 : nomem(err, errlen);
}

/* Appends the entry of the current row of a page query to arr. SQLite code. Locked. */
typedef int (*page_row_fn)(struct ps_store *s, sqlite3_stmt *st, cJSON *arr);

/* Runs the page query sql (?1 after, "" from the start; ?2 limit) and appends row() of
 * every row to arr. SQLite code. Locked. */
static int page_locked(struct ps_store *s, const char *sql, const char *after, int limit, page_row_fn row,
                       cJSON *arr)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare_path(s, sql, after ? after : "", NULL, &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int(st, 2, limit);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            rc = row(s, st, arr);
            if (rc != SQLITE_OK)
                break;
        }
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    return rc;
}

/* A row (path, owner, public) of SQL_PAGE as its policy record. */
static int policy_row(struct ps_store *s, sqlite3_stmt *st, cJSON *arr)
{
    cJSON *p = NULL;
    int rc =
        policy_new_locked(s, dyno_db_text(st, 0), dyno_db_text(st, 1), sqlite3_column_int(st, 2) != 0, &p);
    if (rc == SQLITE_OK)
        cJSON_AddItemToArray(arr, p);
    return rc;
}

/* A row (path) of SQL_TOMB_PAGE as a string. */
static int path_row(struct ps_store *s, sqlite3_stmt *st, cJSON *arr)
{
    (void)s;
    return add_string(arr, dyno_db_text(st, 0));
}

int ps_store_policy_page(struct ps_store *s, const char *after, int limit, cJSON **records, char *err,
                         size_t errlen)
{
    *records = NULL;
    cJSON *arr = NULL;
    int ret = page_new(limit, &arr, err, errlen);
    if (ret != 0)
        return ret;
    pthread_mutex_lock(&s->mu);
    /* One read transaction so every record's shares agree with its row. */
    int rc = dyno_db_begin_read(s->db);
    if (rc == SQLITE_OK)
        rc = page_locked(s, SQL_PAGE, after, limit, policy_row, arr);
    dyno_db_end(s->db, SQLITE_OK);
    ret = rc == SQLITE_OK ? 0 : dyno_db_err(s->db, rc, err, errlen);
    pthread_mutex_unlock(&s->mu);
    return hand_over(ret, arr, records);
}

int ps_store_tombstone_page(struct ps_store *s, const char *after, int limit, int64_t now, cJSON **paths,
                            char *err, size_t errlen)
{
    *paths = NULL;
    sqlite3_stmt *st = NULL;
    cJSON *arr = NULL;
    int ret = page_new(limit, &arr, err, errlen);
    if (ret != 0)
        return ret;
    pthread_mutex_lock(&s->mu);
    int rc = dyno_db_prepare(s->db, SQL_TOMB_PURGE, &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, now - PS_TOMBSTONE_TTL);
        rc = dyno_db_step(st);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        rc = page_locked(s, SQL_TOMB_PAGE, after, limit, path_row, arr);
    ret = rc == SQLITE_OK ? 0 : dyno_db_err(s->db, rc, err, errlen);
    pthread_mutex_unlock(&s->mu);
    return hand_over(ret, arr, paths);
}
