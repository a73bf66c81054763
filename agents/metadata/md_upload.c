/*
 * S3 multipart uploads in progress (md_upload.h). Plain rows: the work of an upload (its
 * parts, the assembly) is the gateway's.
 */
#include "md_upload.h"

#include <stdio.h>
#include <string.h>

#include "db.h"
#include "dynostore/error.h"
#include "json.h"
#include "names.h"

#define UPLOAD_COLS "SELECT id, catalog, name, initiator, attrs, created_at FROM s3_uploads"
static const char SQL_INSERT[] =
    "INSERT INTO s3_uploads(id, catalog, name, initiator, attrs, created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)";
static const char SQL_GET[] = UPLOAD_COLS " WHERE id = ?1";
static const char SQL_DELETE[] = "DELETE FROM s3_uploads WHERE id = ?1";
/* (name, id) > (?2, ?3) in the order of s3_uploads_by_name; ?3 NULL: past every id of ?2. */
static const char SQL_LIST[] =
    UPLOAD_COLS " WHERE catalog = ?1 AND (name > ?2 OR (name = ?2 AND ?3 IS NOT NULL AND id > ?3))"
                " AND name >= ?4 AND (?5 IS NULL OR name < ?5) ORDER BY name, id LIMIT ?6";
static const char SQL_EXPIRED[] = UPLOAD_COLS " WHERE created_at < ?1 ORDER BY created_at LIMIT ?2";

/* The row at st as JSON, attrs parsed back into an object. SQLite code. */
static int upload__row(sqlite3_stmt *st, cJSON **out)
{
    cJSON *o = NULL;
    int rc = dyno_db_row_json(st, 0, NULL, &o);
    if (rc != SQLITE_OK)
        return rc;
    const char *txt = dyno_json_str(o, "attrs");
    cJSON *attrs = txt ? cJSON_Parse(txt) : NULL;
    if (!attrs || !cJSON_IsObject(attrs)) {
        cJSON_Delete(attrs);
        attrs = cJSON_CreateObject();
    }
    if (!attrs || !cJSON_ReplaceItemInObjectCaseSensitive(o, "attrs", attrs)) {
        cJSON_Delete(attrs);
        cJSON_Delete(o);
        return SQLITE_NOMEM;
    }
    *out = o;
    return SQLITE_OK;
}

/* Rows of st into a new {array:[...]} (*res), at most max; *more when one more was there. */
static int upload__rows(sqlite3_stmt *st, int max, cJSON **res, bool *more)
{
    cJSON *arr = NULL;
    *res = cJSON_CreateObject();
    if (!*res || !(arr = cJSON_AddArrayToObject(*res, "uploads")))
        return SQLITE_NOMEM;
    int rc, n = 0;
    *more = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == max) {
            *more = true;
            rc = SQLITE_DONE;
            break;
        }
        cJSON *o = NULL;
        if ((rc = upload__row(st, &o)) != SQLITE_OK)
            break;
        cJSON_AddItemToArray(arr, o);
        n++;
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int md_upload_create(struct md_db *db, const struct md_upload_req *r, int64_t now, cJSON **result, char *err,
                     size_t errlen)
{
    *result = NULL;
    char id[DYNO_KEY_LEN + 1];
    if (dyno_key_new(id) != 0) {
        snprintf(err, errlen, "no random id");
        return DYNO_EINTERNAL;
    }
    char *attrs = r->attrs ? cJSON_PrintUnformatted(r->attrs) : NULL;
    if (r->attrs && !attrs) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    if (attrs && strlen(attrs) > MD_UPLOAD_ATTRS_MAX) {
        cJSON_free(attrs);
        snprintf(err, errlen, "attrs larger than %d bytes", MD_UPLOAD_ATTRS_MAX);
        return DYNO_ETOOBIG;
    }
    sqlite3_stmt *st;
    int rc = md__begin(db);
    if (rc == SQLITE_OK)
        rc = md__stmt(db, SQL_INSERT, &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, r->catalog, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, r->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, r->initiator, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, attrs ? attrs : "{}", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, now);
        rc = md__step0(st);
    }
    int ret = md__finish(db, 0, rc, err, errlen);
    cJSON_free(attrs);
    return ret ? ret : md_upload_get(db, id, result, err, errlen);
}

int md_upload_get(struct md_db *db, const char *id, cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    sqlite3_stmt *st;
    int rc = md__stmt_key(db, SQL_GET, id, &st);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            rc = upload__row(st, result);
        else if (rc == SQLITE_DONE)
            rc = SQLITE_NOTFOUND;
        sqlite3_reset(st);
    }
    if (rc == SQLITE_NOTFOUND) {
        snprintf(err, errlen, "no upload %s", id);
        return DYNO_ENOTFOUND;
    }
    return rc == SQLITE_OK ? 0 : md__sqlerr(db, rc, err, errlen);
}

int md_upload_delete(struct md_db *db, const char *id, char *err, size_t errlen)
{
    int changes = 0;
    int rc = md__begin(db);
    if (rc == SQLITE_OK)
        rc = md__run_key(db, SQL_DELETE, id, 0, &changes);
    int ret = md__finish(db, 0, rc, err, errlen);
    if (ret == 0 && changes == 0) {
        snprintf(err, errlen, "no upload %s", id);
        return DYNO_ENOTFOUND;
    }
    return ret;
}

int md_upload_list(struct md_db *db, const char *catalog, const char *prefix, const char *after_name,
                   const char *after_id, int limit, cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    size_t plen = prefix ? strlen(prefix) : 0;
    char upper[MD_LIST_TOKEN_MAX + 1];
    if (plen > MD_LIST_TOKEN_MAX || limit < 1) {
        snprintf(err, errlen, "prefix too long or limit < 1");
        return DYNO_EINVAL;
    }
    if (plen) {
        /* UTF-8 never has a 0xFF byte: the last byte + 1 bounds the prefix's range. */
        memcpy(upper, prefix, plen);
        upper[plen - 1] = (char)((unsigned char)upper[plen - 1] + 1);
    }
    sqlite3_stmt *st;
    cJSON *res = NULL;
    bool more = false;
    int rc = md__stmt(db, SQL_LIST, &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, catalog, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, after_name ? after_name : "", -1, SQLITE_STATIC);
        if (after_id)
            sqlite3_bind_text(st, 3, after_id, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 3);
        sqlite3_bind_text(st, 4, plen ? prefix : "", -1, SQLITE_STATIC);
        if (plen)
            sqlite3_bind_text(st, 5, upper, (int)plen, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 5);
        sqlite3_bind_int(st, 6, limit + 1);
        rc = upload__rows(st, limit, &res, &more);
        sqlite3_reset(st);
    }
    if (rc == SQLITE_OK) {
        cJSON *last = cJSON_GetArrayItem(cJSON_GetObjectItem(res, "uploads"), limit - 1);
        cJSON *next = more && last ? cJSON_CreateObject() : cJSON_CreateNull();
        if (next && more && last) {
            cJSON_AddStringToObject(next, "name", dyno_json_str(last, "name"));
            cJSON_AddStringToObject(next, "id", dyno_json_str(last, "id"));
        }
        if (!next || !cJSON_AddItemToObject(res, "next", next)) {
            cJSON_Delete(next);
            rc = SQLITE_NOMEM;
        }
    }
    if (rc != SQLITE_OK) {
        cJSON_Delete(res);
        return md__sqlerr(db, rc, err, errlen);
    }
    *result = res;
    return 0;
}

int md_upload_expired(struct md_db *db, int64_t cutoff, int limit, cJSON **result, char *err, size_t errlen)
{
    *result = NULL;
    sqlite3_stmt *st;
    cJSON *res = NULL;
    bool more;
    int rc = md__stmt(db, SQL_EXPIRED, &st);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, cutoff);
        sqlite3_bind_int(st, 2, limit);
        rc = upload__rows(st, limit, &res, &more);
        sqlite3_reset(st);
    }
    if (rc != SQLITE_OK) {
        cJSON_Delete(res);
        return md__sqlerr(db, rc, err, errlen);
    }
    *result = res;
    return 0;
}
