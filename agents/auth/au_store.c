/* The auth store over SQLite, and password hashing (au_store.h). */
#include "au_store.h"

#include <dynostore/error.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "json.h"
#include "log.h"

struct au_store {
    pthread_mutex_t mu;
    struct dyno_db *db;
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS users(username TEXT PRIMARY KEY, org TEXT NOT NULL DEFAULT '',"
    " admin INTEGER NOT NULL DEFAULT 0, pw_hash BLOB NOT NULL, pw_salt BLOB NOT NULL,"
    " pw_iter INTEGER NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS tokens(jti TEXT PRIMARY KEY, username TEXT NOT NULL,"
    " kind TEXT NOT NULL CHECK(kind IN ('session','api')), name TEXT NOT NULL DEFAULT '',"
    " expires_at INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0, revoked_at INTEGER,"
    " created_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS tokens_by_user ON tokens(username, expires_at);"
    "CREATE INDEX IF NOT EXISTS tokens_by_expiry ON tokens(expires_at);"
    "CREATE INDEX IF NOT EXISTS tokens_revoked ON tokens(revoked, expires_at) WHERE revoked <> 0;"
    "CREATE TABLE IF NOT EXISTS orgs(path TEXT PRIMARY KEY, parent TEXT NOT NULL DEFAULT '',"
    " created_at INTEGER NOT NULL);"
    /* A user's revocation epoch: every token of username created (iat) before "before" is
     * revoked; kept until the last token it covers has expired (expires_at). */
    "CREATE TABLE IF NOT EXISTS epochs(username TEXT PRIMARY KEY, before INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL);"
    /* S3 access keys (docs/s3.md): sealed is the secret encrypted under the master key kept
     * outside this file (au_seal.h); a revoked key keeps its row (revoked_at set, sealed
     * NULL) for a while, so a repeated revoke is answered and republished. */
    "CREATE TABLE IF NOT EXISTS s3keys(id TEXT PRIMARY KEY, username TEXT NOT NULL,"
    " description TEXT NOT NULL DEFAULT '', sealed BLOB, created_at INTEGER NOT NULL,"
    " last_used_at INTEGER, revoked_at INTEGER);"
    "CREATE INDEX IF NOT EXISTS s3keys_by_user ON s3keys(username, created_at);";

/* A token row that the revocation feed lists one by one: revoked, alive at :now, and not
 * covered by its user's epoch. tokens.created_at is the token's iat. */
#define AU_LISTED_REVOKED                                                                                    \
    "t.revoked <> 0 AND t.expires_at > :now AND t.created_at >= coalesce((SELECT e.before FROM epochs e"     \
    " WHERE e.username = t.username AND e.expires_at > :now), 0)"

/* A refusal: writes the message into err when err is non-NULL and returns code. */
static int refuse(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/*
 * SQLITE_OK when org is "" or exists. When it does not exist: SQLITE_NOTFOUND with *ret
 * DYNO_EINVAL and err "no <what> <org>". Else the SQLite code. Locked.
 */
static int org_known_locked(struct au_store *s, const char *org, const char *what, int *ret, char *err,
                            size_t errlen)
{
    if (org[0] == '\0')
        return SQLITE_OK;
    int rc = dyno_db_exists(s->db, "SELECT 1 FROM orgs WHERE path = ?1", org);
    if (rc == SQLITE_NOTFOUND)
        *ret = refuse(err, errlen, DYNO_EINVAL, "no %s %s", what, org);
    return rc;
}

/*
 * Answers {key: [rows]} of the SELECT sql (dyno_db_list_json, bools as there) under the
 * lock. sql names the parameters it takes: :user (user), :now (now), :max (AU_LIST_MAX).
 */
static int list_json(struct au_store *s, const char *sql, const char *user, int64_t now, const char *key,
                     const char *const *bools, cJSON **result, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int rc = dyno_db_prepare(s->db, sql, &st);
    if (rc == SQLITE_OK) {
        int user_i = sqlite3_bind_parameter_index(st, ":user");
        int now_i = sqlite3_bind_parameter_index(st, ":now");
        int max_i = sqlite3_bind_parameter_index(st, ":max");
        if (user_i > 0)
            sqlite3_bind_text(st, user_i, user, -1, SQLITE_STATIC);
        if (now_i > 0)
            sqlite3_bind_int64(st, now_i, now);
        if (max_i > 0)
            sqlite3_bind_int(st, max_i, AU_LIST_MAX);
    }
    int ret = dyno_db_list_json(s->db, rc, st, key, bools, result, err, errlen);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

int au_store_open(const char *path, struct au_store **out)
{
    *out = NULL;
    struct au_store *s = calloc(1, sizeof(*s));
    if (!s)
        return DYNO_ENOMEM;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return DYNO_EINTERNAL;
    }
    /* FULL: an issued token or a revocation must survive a power cut. */
    const struct dyno_db_opts o = {.name = "auth", .schema = SCHEMA, .sync = DYNO_DB_SYNC_FULL};
    int rc = dyno_db_open(path, &o, &s->db);
    /* A revoked S3 key's sealed secret is overwritten, not left in a free page. */
    if (rc == 0 &&
        sqlite3_exec(dyno_db_sqlite(s->db), "PRAGMA secure_delete=ON", NULL, NULL, NULL) != SQLITE_OK) {
        dyno_db_close(s->db);
        rc = DYNO_EIO;
    }
    if (rc != 0) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void au_store_close(struct au_store *s)
{
    if (!s)
        return;
    dyno_db_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int au_user_get(struct au_store *s, const char *username, struct au_user *out)
{
    sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&s->mu);
    int rc = dyno_db_prepare(s->db,
                             "SELECT username, org, admin, pw_hash, pw_salt, pw_iter, created_at"
                             " FROM users WHERE username = ?1",
                             &st);
    int ret = 0;
    if (rc != SQLITE_OK) {
        ret = dyno_db_err(s->db, rc, NULL, 0);
        goto out;
    }
    sqlite3_bind_text(st, 1, username, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        ret = DYNO_ENOTFOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        ret = dyno_db_err(s->db, rc, NULL, 0);
        goto out;
    }
    snprintf(out->username, sizeof(out->username), "%s", dyno_db_text(st, 0));
    snprintf(out->org, sizeof(out->org), "%s", dyno_db_text(st, 1));
    out->admin = sqlite3_column_int(st, 2) != 0;
    if (sqlite3_column_bytes(st, 3) != AU_HASH_LEN || sqlite3_column_bytes(st, 4) != AU_SALT_LEN) {
        dyno_error("corrupt user row", "user=%s", out->username);
        ret = DYNO_EINTERNAL;
        goto out;
    }
    memcpy(out->hash, sqlite3_column_blob(st, 3), AU_HASH_LEN);
    memcpy(out->salt, sqlite3_column_blob(st, 4), AU_SALT_LEN);
    out->iterations = sqlite3_column_int(st, 5);
    out->created_at = sqlite3_column_int64(st, 6);
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

int au_user_create(struct au_store *s, const struct au_user *u, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int ret = 0;
    pthread_mutex_lock(&s->mu);
    int rc = dyno_db_begin(s->db);
    if (rc == SQLITE_OK)
        rc = org_known_locked(s, u->org, "org", &ret, err, errlen);
    if (rc == SQLITE_OK)
        rc = dyno_db_prepare(s->db,
                             "INSERT INTO users(username, org, admin, pw_hash, pw_salt, pw_iter, created_at)"
                             " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                             &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, u->username, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, u->org, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, u->admin ? 1 : 0);
        sqlite3_bind_blob(st, 4, u->hash, AU_HASH_LEN, SQLITE_STATIC);
        sqlite3_bind_blob(st, 5, u->salt, AU_SALT_LEN, SQLITE_STATIC);
        sqlite3_bind_int(st, 6, u->iterations);
        sqlite3_bind_int64(st, 7, u->created_at);
        rc = dyno_db_step(st);
        if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
            ret = refuse(err, errlen, DYNO_EEXIST, "user %s exists", u->username);
    }
    sqlite3_finalize(st);
    ret = dyno_db_tx_finish(s->db, ret, rc, err, errlen);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

int au_user_list(struct au_store *s, cJSON **result, char *err, size_t errlen)
{
    static const char *const bools[] = {"admin", NULL};
    return list_json(s, "SELECT username, org, admin, created_at FROM users ORDER BY username LIMIT :max",
                     NULL, 0, "users", bools, result, err, errlen);
}

int au_token_record(struct au_store *s, const char *jti, const char *username, const char *kind,
                    const char *name, int64_t expires_at, int64_t now, int64_t max, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int ret = 0;
    pthread_mutex_lock(&s->mu);
    int rc = dyno_db_begin(s->db);
    /* Expired records are useless (every verifier refuses the token anyway). */
    if (rc == SQLITE_OK)
        rc = dyno_db_prepare(s->db, "DELETE FROM tokens WHERE expires_at <= ?1", &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, now);
        rc = dyno_db_step(st);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc == SQLITE_OK)
        rc = dyno_db_prepare(s->db, "DELETE FROM epochs WHERE expires_at <= ?1", &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, now);
        rc = dyno_db_step(st);
    }
    sqlite3_finalize(st);
    st = NULL;
    /* Revoked tokens count until they expire: each is state that every verifier holds, so
     * revoking does not make room for more (issue 9, class 2). */
    if (rc == SQLITE_OK && max > 0) {
        rc = dyno_db_prepare(s->db,
                             "SELECT count(*) FROM tokens WHERE username = ?1 AND kind = ?3"
                             " AND expires_at > ?2",
                             &st);
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(st, 1, username, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, now);
            sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
            rc = sqlite3_step(st);
            if (rc == SQLITE_ROW) {
                rc = SQLITE_OK;
                if (sqlite3_column_int64(st, 0) >= max)
                    ret = refuse(err, errlen, DYNO_ETOOBIG,
                                 "%s has %lld unexpired %s tokens (revoked ones count until they expire)",
                                 username, (long long)max, kind);
            }
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    if (rc == SQLITE_OK && ret == 0)
        rc = dyno_db_prepare(s->db,
                             "INSERT INTO tokens(jti, username, kind, name, expires_at, created_at)"
                             " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                             &st);
    if (rc == SQLITE_OK && ret == 0) {
        sqlite3_bind_text(st, 1, jti, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, username, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, name ? name : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, expires_at);
        sqlite3_bind_int64(st, 6, now);
        rc = dyno_db_step(st);
    }
    sqlite3_finalize(st);
    ret = dyno_db_tx_finish(s->db, ret, rc, err, errlen);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

int au_token_list(struct au_store *s, const char *username, int64_t now, cJSON **result, char *err,
                  size_t errlen)
{
    static const char *const bools[] = {"revoked", NULL};
    return list_json(s,
                     "SELECT jti, kind, name, created_at, expires_at, revoked FROM tokens"
                     " WHERE username = :user AND expires_at > :now ORDER BY created_at DESC, jti LIMIT :max",
                     username, now, "tokens", bools, result, err, errlen);
}

/* Binds :user, :now, :before and :exp of st where it names them. */
static void bind_named(sqlite3_stmt *st, const char *user, int64_t now, int64_t before, int64_t exp)
{
    int i;
    if ((i = sqlite3_bind_parameter_index(st, ":user")) > 0)
        sqlite3_bind_text(st, i, user, -1, SQLITE_STATIC);
    if ((i = sqlite3_bind_parameter_index(st, ":now")) > 0)
        sqlite3_bind_int64(st, i, now);
    if ((i = sqlite3_bind_parameter_index(st, ":before")) > 0)
        sqlite3_bind_int64(st, i, before);
    if ((i = sqlite3_bind_parameter_index(st, ":exp")) > 0)
        sqlite3_bind_int64(st, i, exp);
}

/* Runs sql (one statement, named parameters as bind_named); the first column of its first
 * row goes to *out when out is non-NULL (0 without a row). SQLite code. Locked. */
static int exec_named(struct au_store *s, const char *sql, const char *user, int64_t now, int64_t before,
                      int64_t exp, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = dyno_db_prepare(s->db, sql, &st);
    if (out)
        *out = 0;
    if (rc == SQLITE_OK) {
        bind_named(st, user, now, before, exp);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            if (out)
                *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/*
 * Collapses user's revocations into an epoch at now: every token of user issued so far is
 * revoked by one entry {user, before = past now and past every iat of theirs}, kept until the
 * last of them expires. The tokens it covers are marked revoked, so token.list tells the truth.
 * In a transaction, locked. SQLite code.
 */
static int epoch_collapse_locked(struct au_store *s, const char *user, int64_t now, int64_t *before)
{
    int64_t last = 0, newest = 0;
    /* Past the newest iat too: tokens minted since an earlier epoch of this same second
     * carry that epoch as their iat (au_mint), and must be covered as well. */
    int rc =
        exec_named(s, "SELECT max(created_at) FROM tokens WHERE username = :user", user, now, 0, 0, &newest);
    *before = newest >= now ? newest + 1 : now + 1;
    if (rc == SQLITE_OK)
        rc = exec_named(s,
                        "SELECT max(expires_at) FROM tokens WHERE username = :user AND created_at < :before",
                        user, now, *before, 0, &last);
    if (rc == SQLITE_OK)
        rc = exec_named(s,
                        "INSERT INTO epochs(username, before, expires_at) VALUES(:user, :before, :exp)"
                        " ON CONFLICT(username) DO UPDATE SET before = max(before, excluded.before),"
                        " expires_at = max(expires_at, excluded.expires_at)",
                        user, now, *before, last > now ? last : now + 1, NULL);
    if (rc == SQLITE_OK)
        rc = exec_named(s,
                        "UPDATE tokens SET revoked = 1, revoked_at = :now WHERE username = :user"
                        " AND revoked = 0 AND created_at < :before AND expires_at > :now",
                        user, now, *before, 0, NULL);
    return rc;
}

int au_token_revoke(struct au_store *s, const char *jti, const char *by, bool by_admin, int64_t now,
                    int64_t per_user_max, bool *changed, int64_t *exp, int64_t *epoch, char *err,
                    size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int ret = 0;
    char owner[DYNO_SEG_MAX + 1] = "";
    *changed = false;
    *exp = 0;
    *epoch = 0;
    pthread_mutex_lock(&s->mu);
    int rc = dyno_db_begin(s->db);
    if (rc == SQLITE_OK)
        rc = dyno_db_prepare(s->db, "SELECT username, expires_at, revoked FROM tokens WHERE jti = ?1", &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, jti, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            rc = SQLITE_OK;
            *exp = sqlite3_column_int64(st, 1);
            snprintf(owner, sizeof(owner), "%s", dyno_db_text(st, 0));
            if (*exp <= now) {
                ret = DYNO_ENOTFOUND;
            } else if (!by_admin && strcmp(owner, by) != 0) {
                ret = refuse(err, errlen, DYNO_EFORBIDDEN, "token %s is not yours", jti);
            } else {
                *changed = sqlite3_column_int(st, 2) == 0;
            }
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
            ret = DYNO_ENOTFOUND;
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (ret == DYNO_ENOTFOUND)
        ret = refuse(err, errlen, DYNO_ENOTFOUND, "no live token %s", jti);
    if (rc == SQLITE_OK && ret == 0 && *changed)
        rc = dyno_db_prepare(s->db, "UPDATE tokens SET revoked = 1, revoked_at = ?2 WHERE jti = ?1", &st);
    if (rc == SQLITE_OK && ret == 0 && *changed) {
        sqlite3_bind_text(st, 1, jti, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        rc = dyno_db_step(st);
    }
    sqlite3_finalize(st);
    st = NULL;
    /* Bounded per user: past per_user_max listed revocations, the owner's whole history
     * collapses into one epoch entry (counted per owner, whoever revokes). */
    if (rc == SQLITE_OK && ret == 0 && *changed && per_user_max > 0) {
        int64_t listed = 0;
        rc = exec_named(s, "SELECT count(*) FROM tokens t WHERE t.username = :user AND " AU_LISTED_REVOKED,
                        owner, now, 0, 0, &listed);
        if (rc == SQLITE_OK && listed > per_user_max)
            rc = epoch_collapse_locked(s, owner, now, epoch);
    }
    ret = dyno_db_tx_finish(s->db, ret, rc, err, errlen);
    pthread_mutex_unlock(&s->mu);
    if (ret != 0) {
        *changed = false;
        *epoch = 0;
    }
    return ret;
}

int au_revoked_collapse_biggest(struct au_store *s, int64_t now, char *user, size_t cap, int64_t *epoch,
                                char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int ret = 0;
    char who[DYNO_SEG_MAX + 1] = "";
    *epoch = 0;
    pthread_mutex_lock(&s->mu);
    int rc = dyno_db_begin(s->db);
    if (rc == SQLITE_OK)
        rc = dyno_db_prepare(s->db,
                             "SELECT t.username FROM tokens t WHERE " AU_LISTED_REVOKED
                             " GROUP BY t.username ORDER BY count(*) DESC, t.username LIMIT 1",
                             &st);
    if (rc == SQLITE_OK) {
        bind_named(st, NULL, now, 0, 0);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            snprintf(who, sizeof(who), "%s", dyno_db_text(st, 0));
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
            ret = refuse(err, errlen, DYNO_ENOTFOUND, "no revocation to collapse");
        }
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK && ret == 0)
        rc = epoch_collapse_locked(s, who, now, epoch);
    ret = dyno_db_tx_finish(s->db, ret, rc, err, errlen);
    pthread_mutex_unlock(&s->mu);
    if (ret == 0)
        snprintf(user, cap, "%s", who);
    return ret;
}

int au_user_epoch(struct au_store *s, const char *username, int64_t now, int64_t *before)
{
    pthread_mutex_lock(&s->mu);
    int rc = exec_named(s, "SELECT before FROM epochs WHERE username = :user AND expires_at > :now", username,
                        now, 0, 0, before);
    int ret = rc == SQLITE_OK ? 0 : dyno_db_err(s->db, rc, NULL, 0);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

int au_revoked_list(struct au_store *s, int64_t now, cJSON **result, char *err, size_t errlen)
{
    cJSON *epochs = NULL;
    int rc = list_json(s,
                       "SELECT t.jti, t.expires_at AS exp FROM tokens t WHERE " AU_LISTED_REVOKED
                       " ORDER BY t.expires_at, t.jti",
                       NULL, now, "revoked", NULL, result, err, errlen);
    if (rc == 0)
        rc = list_json(s,
                       "SELECT username AS sub, before FROM epochs WHERE expires_at > :now ORDER BY username",
                       NULL, now, "epochs", NULL, &epochs, err, errlen);
    if (rc != 0) {
        cJSON_Delete(*result);
        *result = NULL;
        return rc;
    }
    cJSON *arr = cJSON_DetachItemFromObjectCaseSensitive(epochs, "epochs");
    cJSON_Delete(epochs);
    if (!arr || !cJSON_AddItemToObject(*result, "epochs", arr)) {
        cJSON_Delete(arr);
        cJSON_Delete(*result);
        *result = NULL;
        return refuse(err, errlen, DYNO_ENOMEM, "out of memory");
    }
    return 0;
}

/* ---- S3 access keys ------------------------------------------------------------------ */

int au_key_insert(struct au_store *s, const struct au_key *k, const uint8_t *sealed, size_t sealed_len,
                  int64_t max, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int ret = 0;
    int64_t live = 0;
    pthread_mutex_lock(&s->mu);
    int rc = dyno_db_begin(s->db);
    /* Revoked rows are only kept so that a repeated revoke is answered (au_key_revoke). */
    if (rc == SQLITE_OK)
        rc = exec_named(s, "DELETE FROM s3keys WHERE revoked_at IS NOT NULL AND revoked_at < :before", NULL,
                        0, k->created_at - AU_KEY_REVOKED_KEEP, 0, NULL);
    if (rc == SQLITE_OK && max > 0)
        rc = exec_named(s, "SELECT count(*) FROM s3keys WHERE username = :user AND revoked_at IS NULL",
                        k->username, 0, 0, 0, &live);
    if (rc == SQLITE_OK && max > 0 && live >= max)
        ret =
            refuse(err, errlen, DYNO_ETOOBIG, "%s has %lld access keys (s3_keys_per_user); revoke one first",
                   k->username, (long long)live);
    if (rc == SQLITE_OK && ret == 0)
        rc = dyno_db_prepare(s->db,
                             "INSERT INTO s3keys(id, username, description, sealed, created_at)"
                             " VALUES(?1, ?2, ?3, ?4, ?5)",
                             &st);
    if (rc == SQLITE_OK && ret == 0) {
        sqlite3_bind_text(st, 1, k->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, k->username, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, k->description, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 4, sealed, (int)sealed_len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, k->created_at);
        rc = dyno_db_step(st);
        if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
            ret = refuse(err, errlen, DYNO_EEXIST, "access key id %s exists", k->id);
    }
    sqlite3_finalize(st);
    ret = dyno_db_tx_finish(s->db, ret, rc, err, errlen);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

int au_key_list(struct au_store *s, const char *username, cJSON **result, char *err, size_t errlen)
{
    if (username)
        return list_json(s,
                         "SELECT id AS access_key_id, username AS user, description, created_at, last_used_at"
                         " FROM s3keys WHERE username = :user AND revoked_at IS NULL"
                         " ORDER BY created_at DESC, id LIMIT :max",
                         username, 0, "keys", NULL, result, err, errlen);
    return list_json(
        s,
        "SELECT id AS access_key_id, username AS user, description, created_at, last_used_at"
        " FROM s3keys WHERE revoked_at IS NULL ORDER BY username, created_at DESC, id LIMIT :max",
        NULL, 0, "keys", NULL, result, err, errlen);
}

int au_key_get(struct au_store *s, const char *id, struct au_key *k, uint8_t *sealed, size_t cap,
               size_t *sealed_len)
{
    sqlite3_stmt *st = NULL;
    int ret = 0;
    memset(k, 0, sizeof(*k));
    *sealed_len = 0;
    pthread_mutex_lock(&s->mu);
    int rc = dyno_db_prepare(s->db,
                             "SELECT id, username, description, sealed, created_at, revoked_at IS NOT NULL"
                             " FROM s3keys WHERE id = ?1",
                             &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_DONE) {
        ret = DYNO_ENOTFOUND;
    } else if (rc != SQLITE_ROW) {
        ret = dyno_db_err(s->db, rc, NULL, 0);
    } else {
        snprintf(k->id, sizeof(k->id), "%s", dyno_db_text(st, 0));
        snprintf(k->username, sizeof(k->username), "%s", dyno_db_text(st, 1));
        snprintf(k->description, sizeof(k->description), "%s", dyno_db_text(st, 2));
        k->created_at = sqlite3_column_int64(st, 4);
        k->revoked = sqlite3_column_int(st, 5) != 0;
        size_t n = (size_t)sqlite3_column_bytes(st, 3);
        if (!k->revoked) {
            if (n > cap || n == 0) {
                dyno_error("corrupt access key row", "id=%s", k->id);
                ret = DYNO_ECORRUPT;
            } else {
                memcpy(sealed, sqlite3_column_blob(st, 3), n);
                *sealed_len = n;
            }
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

int au_key_count(struct au_store *s, int64_t *n)
{
    pthread_mutex_lock(&s->mu);
    int rc = exec_named(s, "SELECT count(*) FROM s3keys WHERE revoked_at IS NULL", NULL, 0, 0, 0, n);
    int ret = rc == SQLITE_OK ? 0 : dyno_db_err(s->db, rc, NULL, 0);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

int au_key_touch(struct au_store *s, const char *id, int64_t now)
{
    /* exec_named's :user carries the key id in the s3keys statements. */
    pthread_mutex_lock(&s->mu);
    /* At most one write a minute a key: lookups come every few seconds from each gateway. */
    int rc = exec_named(s,
                        "UPDATE s3keys SET last_used_at = :now WHERE id = :user AND revoked_at IS NULL"
                        " AND (last_used_at IS NULL OR last_used_at < :before)",
                        id, now, now - 60, 0, NULL);
    int ret = rc == SQLITE_OK ? 0 : dyno_db_err(s->db, rc, NULL, 0);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

int au_key_revoke(struct au_store *s, const char *id, const char *by, bool by_admin, int64_t now, char *owner,
                  size_t owner_cap, bool *changed, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int ret = 0;
    *changed = false;
    pthread_mutex_lock(&s->mu);
    int rc = dyno_db_begin(s->db);
    if (rc == SQLITE_OK)
        rc = dyno_db_prepare(s->db, "SELECT username, revoked_at IS NULL FROM s3keys WHERE id = ?1", &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            rc = SQLITE_OK;
            snprintf(owner, owner_cap, "%s", dyno_db_text(st, 0));
            if (!by_admin && strcmp(owner, by) != 0)
                ret = refuse(err, errlen, DYNO_EFORBIDDEN, "access key %s is not yours", id);
            else
                *changed = sqlite3_column_int(st, 1) != 0;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
            ret = refuse(err, errlen, DYNO_ENOTFOUND, "no access key %s", id);
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    /* The sealed secret goes with the revocation (secure_delete overwrites it on disk). */
    if (rc == SQLITE_OK && ret == 0 && *changed)
        rc = exec_named(s, "UPDATE s3keys SET revoked_at = :now, sealed = NULL WHERE id = :user", id, now, 0,
                        0, NULL);
    ret = dyno_db_tx_finish(s->db, ret, rc, err, errlen);
    pthread_mutex_unlock(&s->mu);
    if (ret != 0)
        *changed = false;
    return ret;
}

/* ---- organizations ------------------------------------------------------------------- */

int au_org_create(struct au_store *s, const char *path, int64_t now, cJSON **result, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int ret = 0;
    *result = NULL;
    char parent[AU_ORG_MAX + 1];
    snprintf(parent, sizeof(parent), "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash)
        *slash = '\0';
    else
        parent[0] = '\0';
    pthread_mutex_lock(&s->mu);
    int rc = dyno_db_begin(s->db);
    if (rc == SQLITE_OK)
        rc = org_known_locked(s, parent, "parent org", &ret, err, errlen);
    if (rc == SQLITE_OK)
        rc = dyno_db_prepare(s->db, "INSERT INTO orgs(path, parent, created_at) VALUES(?1, ?2, ?3)", &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, parent, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now);
        rc = dyno_db_step(st);
        if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
            ret = refuse(err, errlen, DYNO_EEXIST, "org %s exists", path);
    }
    sqlite3_finalize(st);
    ret = dyno_db_tx_finish(s->db, ret, rc, err, errlen);
    pthread_mutex_unlock(&s->mu);
    if (ret != 0)
        return ret;
    cJSON *res = cJSON_CreateObject();
    if (!res || !cJSON_AddStringToObject(res, "org", path) ||
        !cJSON_AddStringToObject(res, "parent", parent) || !dyno_json_add_i64(res, "created_at", now)) {
        cJSON_Delete(res);
        return refuse(err, errlen, DYNO_ENOMEM, "out of memory");
    }
    *result = res;
    return 0;
}

int au_org_list(struct au_store *s, cJSON **result, char *err, size_t errlen)
{
    return list_json(s, "SELECT path AS org, parent, created_at FROM orgs ORDER BY path LIMIT :max", NULL, 0,
                     "orgs", NULL, result, err, errlen);
}

static int pbkdf2(const char *password, size_t len, const uint8_t *salt, int iter, uint8_t out[AU_HASH_LEN])
{
    if (len > AU_PW_MAX || iter < 1)
        return DYNO_EINVAL;
    if (PKCS5_PBKDF2_HMAC(password, (int)len, salt, AU_SALT_LEN, iter, EVP_sha256(), AU_HASH_LEN, out) != 1)
        return DYNO_EINTERNAL;
    return 0;
}

int au_pw_set(struct au_user *u, const char *password, size_t len)
{
    if (RAND_bytes(u->salt, AU_SALT_LEN) != 1)
        return DYNO_EINTERNAL;
    u->iterations = AU_PW_ITER;
    return pbkdf2(password, len, u->salt, u->iterations, u->hash);
}

bool au_pw_check(const struct au_user *u, const char *password, size_t len)
{
    uint8_t h[AU_HASH_LEN];
    if (pbkdf2(password, len, u->salt, u->iterations, h) != 0)
        return false;
    return CRYPTO_memcmp(h, u->hash, AU_HASH_LEN) == 0;
}
