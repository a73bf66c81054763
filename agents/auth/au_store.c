/* The auth store over SQLite, and password hashing (au_store.h). */
#include "au_store.h"

#include <dynostore/error.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "json.h"
#include "log.h"

#define AU_LIST_MAX 100000

struct au_store {
    pthread_mutex_t mu;
    sqlite3 *db;
};

static const char SCHEMA[] =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS users(username TEXT PRIMARY KEY, org TEXT NOT NULL DEFAULT '',"
    " admin INTEGER NOT NULL DEFAULT 0, pw_hash BLOB NOT NULL, pw_salt BLOB NOT NULL,"
    " pw_iter INTEGER NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS tokens(jti TEXT PRIMARY KEY, username TEXT NOT NULL,"
    " kind TEXT NOT NULL CHECK(kind IN ('session','api')), expires_at INTEGER NOT NULL,"
    " revoked INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS tokens_by_user ON tokens(username);";

static int sqlerr(struct au_store *s, int rc, char *err, size_t errlen)
{
    char q[512];
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    dyno_error("sqlite error", "rc=%d error=%s", rc, dyno_agent_q(q, sizeof(q), sqlite3_errmsg(s->db)));
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        snprintf(err, errlen, "auth database busy, retry");
        return DYNO_EUNAVAIL;
    case SQLITE_FULL:
        snprintf(err, errlen, "auth database disk full");
        return DYNO_ENOSPC;
    default:
        snprintf(err, errlen, "auth database error");
        return DYNO_EIO;
    }
}

int au_store_open(const char *path, struct au_store **out)
{
    *out = NULL;
    char q[512];
    struct au_store *s = calloc(1, sizeof(*s));
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

void au_store_close(struct au_store *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int au_user_get(struct au_store *s, const char *username, struct au_user *out)
{
    sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&s->mu);
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT username, org, admin, pw_hash, pw_salt, pw_iter, created_at"
                                " FROM users WHERE username = ?1",
                                -1, &st, NULL);
    int ret = 0;
    if (rc != SQLITE_OK) {
        ret = sqlerr(s, rc, NULL, 0);
        goto out;
    }
    sqlite3_bind_text(st, 1, username, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        ret = DYNO_ENOTFOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        ret = sqlerr(s, rc, NULL, 0);
        goto out;
    }
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(out->username, sizeof(out->username), "%s", t ? (const char *)t : "");
    t = sqlite3_column_text(st, 1);
    snprintf(out->org, sizeof(out->org), "%s", t ? (const char *)t : "");
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
    pthread_mutex_lock(&s->mu);
    int rc = sqlite3_prepare_v2(s->db,
                                "INSERT INTO users(username, org, admin, pw_hash, pw_salt, pw_iter, created_at)"
                                " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                                -1, &st, NULL);
    int ret = 0;
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, u->username, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, u->org, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, u->admin ? 1 : 0);
        sqlite3_bind_blob(st, 4, u->hash, AU_HASH_LEN, SQLITE_STATIC);
        sqlite3_bind_blob(st, 5, u->salt, AU_SALT_LEN, SQLITE_STATIC);
        sqlite3_bind_int(st, 6, u->iterations);
        sqlite3_bind_int64(st, 7, u->created_at);
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_CONSTRAINT || sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_PRIMARYKEY) {
        snprintf(err, errlen, "user %s exists", u->username);
        ret = DYNO_EEXIST;
    } else if (rc != SQLITE_DONE) {
        ret = sqlerr(s, rc, err, errlen);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

int au_user_list(struct au_store *s, cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    sqlite3_stmt *st = NULL;
    cJSON *res = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(res, "users");
    if (!res || !arr) {
        cJSON_Delete(res);
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    pthread_mutex_lock(&s->mu);
    int rc = sqlite3_prepare_v2(s->db, "SELECT username, org, admin, created_at FROM users ORDER BY username LIMIT ?1",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int(st, 1, AU_LIST_MAX);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            cJSON *u = cJSON_CreateObject();
            if (!u) {
                rc = SQLITE_NOMEM;
                break;
            }
            cJSON_AddItemToArray(arr, u);
            const unsigned char *t = sqlite3_column_text(st, 0);
            cJSON_AddStringToObject(u, "username", t ? (const char *)t : "");
            t = sqlite3_column_text(st, 1);
            cJSON_AddStringToObject(u, "org", t ? (const char *)t : "");
            cJSON_AddBoolToObject(u, "admin", sqlite3_column_int(st, 2) != 0);
            dyno_json_add_i64(u, "created_at", sqlite3_column_int64(st, 3));
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

int au_token_record(struct au_store *s, const char *jti, const char *username, const char *kind,
                    int64_t expires_at, int64_t now)
{
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int rc = sqlite3_prepare_v2(s->db,
                                "INSERT INTO tokens(jti, username, kind, expires_at, created_at)"
                                " VALUES(?1, ?2, ?3, ?4, ?5)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, jti, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, username, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, expires_at);
        sqlite3_bind_int64(st, 5, now);
        rc = sqlite3_step(st);
    }
    int ret = rc == SQLITE_DONE ? 0 : sqlerr(s, rc, NULL, 0);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return ret;
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
