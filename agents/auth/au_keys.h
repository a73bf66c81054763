/*
 * S3 access keys, the auth RPC methods (protocol.md §3 "auth", docs/s3.md "Access keys"):
 *
 *   key.create  {caller, description?}  -> {access_key_id, secret_access_key, created, description,
 *                                           user}: the only time the secret leaves dyno-auth for a user
 *   key.list    {caller, user?, all?}   -> {keys:[{access_key_id, user, description, created,
 *                                           last_used}]}: never a secret; user/all: admin only
 *   key.revoke  {caller, access_key_id} -> {access_key_id, revoked:true}: the owner or an admin;
 *                                           publishes the revocation (below)
 *   key.lookup  {access_key_id}         -> {access_key_id, user, org, admin, secret_access_key}:
 *                                           for the gateway's SigV4 check. Only services reach RPC
 *                                           topics (the broker plugin's topic rule, lib/acl.h)
 *
 * Handlers run in lib/mq.h worker threads, validate every param before any change (bad input
 * is DYNO_EINVAL, nothing changes), and wipe each plaintext secret once it is in an answer.
 */
#ifndef DYNO_AU_KEYS_H
#define DYNO_AU_KEYS_H
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* key.revoke publishes {"revoked":["<access key id>"]} on DYNO_ACL_TOPIC_KEYS_REVOKED
 * (lib/acl.h), not retained, QoS 1. A gateway evicts those ids from its cache at once; one that
 * was away flushes its whole cache on reconnect, and its entries live less than 5 s anyway, so
 * nothing needs to be retained. */

int au_keys_create(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen);
int au_keys_list(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen);
int au_keys_revoke(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen);
int au_keys_lookup(void *arg, const cJSON *req, cJSON **result, char *err, size_t errlen);
#endif
