/*
 * S3 multipart uploads in progress (docs/s3.md): one row per upload that CreateMultipartUpload
 * began and neither CompleteMultipartUpload nor AbortMultipartUpload (nor the gateway's
 * cleaning of abandoned uploads) ended. The row says where the object goes (catalog, name),
 * who began it and the attributes the final object gets (S3's Content-Type and
 * x-amz-meta-*, as the gateway's JSON); the parts themselves are ordinary objects that the
 * gateway stores in a hidden catalog (agents/gateway/s3_mpu.c), so this module holds no
 * fragment and no byte. The table (s3_uploads) is created with the others by md_db_schema.
 *
 * Same rules as md_store.h: one connection per thread, results are new cJSON objects owned
 * by the caller, errors are DYNO_E* with a message in err, no clock (callers pass now).
 */
#ifndef DYNO_MD_UPLOAD_H
#define DYNO_MD_UPLOAD_H
#include <cjson/cJSON.h>
#include <stdint.h>

#include "md_store.h"

#define MD_UPLOAD_ATTRS_MAX                                                                                  \
    (7 * 1024) /* the attrs JSON of one upload: room left for the ETag under MD_ATTRS_MAX */

struct md_upload_req {
    const char *catalog;   /* where the completed object goes (a valid catalog) */
    const char *name;      /* its name there (a valid name) */
    const char *initiator; /* who began it (a valid segment) */
    const cJSON *attrs;    /* an object (may be NULL: {}), at most MD_UPLOAD_ATTRS_MAX as JSON */
};

/* An upload row as JSON: {id, catalog, name, initiator, attrs, created_at}. */

/* Records a new upload with a fresh random id (32 hex). result: its row. 0, DYNO_ETOOBIG
 * (attrs), or a storage error. */
int md_upload_create(struct md_db *db, const struct md_upload_req *r, int64_t now, cJSON **result, char *err,
                     size_t errlen);
/* The row of id, or DYNO_ENOTFOUND. */
int md_upload_get(struct md_db *db, const char *id, cJSON **result, char *err, size_t errlen);
/* Ends an upload: its row goes. 0 or DYNO_ENOTFOUND (none, or already ended). */
int md_upload_delete(struct md_db *db, const char *id, char *err, size_t errlen);
/* A page of catalog's uploads ordered by name then id: names that start with prefix (NULL:
 * all), after (after_name, after_id) (NULL: from the start; after_id NULL: after every
 * upload of after_name). 1 <= limit <= 1000. result: {uploads:[row], next:{name, id} or
 * null}. */
int md_upload_list(struct md_db *db, const char *catalog, const char *prefix, const char *after_name,
                   const char *after_id, int limit, cJSON **result, char *err, size_t errlen);
/* Uploads begun before cutoff, oldest first, at most limit: {uploads:[row]} (the gateway's
 * housekeeping aborts them). */
int md_upload_expired(struct md_db *db, int64_t cutoff, int limit, cJSON **result, char *err, size_t errlen);
#endif
