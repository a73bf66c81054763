/*
 * Validation of everything a user can name, and object keys.
 * Segments (user names, org names, catalog path parts) are [A-Za-z0-9._-]{1,64}, never
 * "." or "..". A catalog is "<owner>/<seg>[/<seg>...]" with 1..8 segments after the owner.
 * An object name is 1..255 bytes of valid UTF-8 (no overlongs, surrogates or code points
 * past U+10FFFF), no control characters (C0, DEL, C1), no '/', no '\\',
 * not "." or "..". A key is 32 lowercase hex characters.
 */
#ifndef DYNO_NAMES_H
#define DYNO_NAMES_H
#include <stdbool.h>
#include <stddef.h>

#define DYNO_SEG_MAX 64
#define DYNO_DEPTH_MAX 8
#define DYNO_NAME_MAX 255
#define DYNO_CATALOG_MAX ((DYNO_SEG_MAX + 1) * (DYNO_DEPTH_MAX + 1)) /* 585 */
#define DYNO_KEY_LEN 32

bool dyno_valid_segment(const char *s);
bool dyno_valid_catalog(const char *path);
/* An object name: 1..DYNO_NAME_MAX bytes of UTF-8, no control characters or '\\'; '/' may
 * separate segments (S3 keys) but the name may not start with '/' nor have a segment "." or
 * "..". (DYNO_NAME_MAX stays 255: fragment headers record the name, lib/frag.h.) */
bool dyno_valid_name(const char *name);
/* The same without '/': a name that must be one file or one topic level (MQTT client ids,
 * token names, the files of a mirror). */
bool dyno_valid_plain_name(const char *name);
bool dyno_valid_key(const char *key);
/* 1..max bytes of UTF-8 text (the decoding rules of names) without control characters: a
 * listing's prefix, start or delimiter, which need not be a whole name ('/' allowed). */
bool dyno_valid_text(const char *s, size_t max);
/* An S3 access key id (docs/s3.md "Access keys"): "DK" and 18 of [A-Z0-9]. */
#define DYNO_ACCESS_KEY_ID_LEN 20
bool dyno_valid_access_key_id(const char *id);
/* New random key (OpenSSL RAND_bytes) into out[33]. 0 or DYNO_EINTERNAL. */
int dyno_key_new(char out[DYNO_KEY_LEN + 1]);
/* Splits "owner/a/b" into owner (out_owner, cap bytes) and the rest; DYNO_EINVAL if not a valid catalog. */
int dyno_catalog_owner(const char *path, char *out_owner, size_t cap);
/* An org path: seg[/seg...] of 1..DYNO_DEPTH_MAX valid segments, at most DYNO_ACL_ORG_MAX
 * (acl.h) bytes; "" only when empty_ok. Named for the agents that first needed it; here since
 * the REST grammar (rest.c, in the client library too) checks share principals with it. */
bool dyno_agent_valid_org(const char *org, bool empty_ok);
/*
 * Binary search of name in a table of n elements of size bytes each, sorted by the
 * NUL-terminated char array at byte offset off of every element (strcmp order): the index
 * of the element that holds name (*found true), else where it would be inserted (*found
 * false). The sorted tables of the agents (revoked jtis and epochs, rate-limit users, scrub
 * pages, the container registry) all search with it.
 */
size_t dyno_name_search(const void *base, size_t n, size_t size, size_t off, const char *name, bool *found);
/* The same over a table of n pointers to elements (sorted by the char array at byte offset
 * off of each pointed-to element): the ACL table, the broker plugin's clients. */
size_t dyno_name_search_ptr(const void *const *base, size_t n, size_t off, const char *name, bool *found);
#endif
