/*
 * S3 access keys at the gateway (gw.h "s3key.c"): who an access key id is, and its secret,
 * for the SigV4 check. dyno-auth keeps the secrets sealed (agents/auth/au_keys.h) and hands
 * one out to services only (key.lookup over the broker); this file keeps the answers a few
 * seconds so a busy client does not cost an RPC per request.
 *
 * Revocation reaches every gateway within 5 s: dyno-auth publishes each revoked id on
 * DYNO_ACL_TOPIC_KEYS_REVOKED and the entry is evicted when it arrives; a gateway that was
 * away from the broker flushes everything on reconnect (messages may have gone by), and an
 * entry lives at most GW_S3KEY_TTL_MS anyway, which bounds the damage of a lost message. A
 * generation counter stops a key.lookup that was in flight during an eviction from
 * re-inserting what it read before it (as catcache.c).
 *
 * Threads: lookups from MHD threads, evictions from the libmosquitto loop thread; one mutex,
 * held only for short copies. Secrets are wiped when an entry goes.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "gw.h"
#include "json.h"
#include "log.h"
#include "names.h"

#define S3KEY_SLOTS 512
#define S3KEY_REVOKED_MAX (64 * 1024) /* bytes of one revocation message parsed */

struct s3key_entry {
    bool used;
    char id[DYNO_ACCESS_KEY_ID_LEN + 1];
    char user[DYNO_SEG_MAX + 1];
    char org[DYNO_SEG_MAX * 4 + 4];
    bool admin;
    char secret[GW_S3KEY_SECRET_MAX + 1];
    int64_t at_ms;
};

struct gw_s3keys {
    pthread_mutex_t mu;
    uint64_t gen;
    struct s3key_entry slot[S3KEY_SLOTS];
};

bool gw_s3key_valid_id(const char *id)
{
    return dyno_valid_access_key_id(id);
}

static size_t s3key__slot(const char *id)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)(h % S3KEY_SLOTS);
}

static void s3key__drop(struct s3key_entry *e)
{
    gw_wipe(e, sizeof(*e));
}

int gw_s3keys_new(struct gw_s3keys **out)
{
    struct gw_s3keys *c = calloc(1, sizeof(*c));
    if (!c)
        return DYNO_ENOMEM;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return DYNO_EINTERNAL;
    }
    *out = c;
    return 0;
}

void gw_s3keys_free(struct gw_s3keys *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < S3KEY_SLOTS; i++)
        s3key__drop(&c->slot[i]);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

bool gw_s3keys_get(struct gw_s3keys *c, const char *id, int64_t now_ms, struct gw_s3key *out, uint64_t *gen)
{
    bool hit = false;
    pthread_mutex_lock(&c->mu);
    *gen = c->gen;
    struct s3key_entry *e = &c->slot[s3key__slot(id)];
    if (e->used && strcmp(e->id, id) == 0) {
        if (now_ms - e->at_ms < GW_S3KEY_TTL_MS && now_ms >= e->at_ms) {
            memcpy(out->user, e->user, sizeof(out->user));
            memcpy(out->org, e->org, sizeof(out->org));
            out->admin = e->admin;
            memcpy(out->secret, e->secret, sizeof(out->secret));
            hit = true;
        } else {
            s3key__drop(e); /* expired: its secret goes now, not when the slot is reused */
        }
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

void gw_s3keys_put(struct gw_s3keys *c, const char *id, const struct gw_s3key *k, int64_t now_ms,
                   uint64_t gen)
{
    if (!dyno_valid_access_key_id(id))
        return;
    pthread_mutex_lock(&c->mu);
    if (gen == c->gen) {
        struct s3key_entry *e = &c->slot[s3key__slot(id)];
        s3key__drop(e);
        e->used = true;
        memcpy(e->id, id, DYNO_ACCESS_KEY_ID_LEN + 1);
        memcpy(e->user, k->user, sizeof(e->user));
        memcpy(e->org, k->org, sizeof(e->org));
        e->admin = k->admin;
        memcpy(e->secret, k->secret, sizeof(e->secret));
        e->at_ms = now_ms;
    }
    pthread_mutex_unlock(&c->mu);
}

void gw_s3keys_evict(struct gw_s3keys *c, const char *id)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->gen++;
    for (size_t i = id ? s3key__slot(id) : 0, last = id ? i + 1 : S3KEY_SLOTS; i < last; i++) {
        if (c->slot[i].used && (!id || strcmp(c->slot[i].id, id) == 0))
            s3key__drop(&c->slot[i]);
    }
    pthread_mutex_unlock(&c->mu);
}

void gw_s3keys_on_revoked(struct gw_s3keys *c, const void *payload, size_t len)
{
    cJSON *doc = NULL;
    const cJSON *arr = NULL, *it;
    if (!c)
        return;
    if (dyno_json_parse((const char *)payload, len, S3KEY_REVOKED_MAX, &doc) == 0)
        arr = cJSON_GetObjectItemCaseSensitive(doc, "revoked");
    if (!cJSON_IsArray(arr)) {
        /* Not understood: some key may be revoked; forget them all (the next requests ask). */
        dyno_warn("access key revocation not understood: every cached key dropped", "bytes=%zu", len);
        gw_s3keys_evict(c, NULL);
        cJSON_Delete(doc);
        return;
    }
    cJSON_ArrayForEach(it, arr)
    {
        if (cJSON_IsString(it) && dyno_valid_access_key_id(it->valuestring)) {
            gw_s3keys_evict(c, it->valuestring);
            dyno_info("access key revoked: evicted", "id=%s", it->valuestring);
        }
    }
    cJSON_Delete(doc);
}

/* ---- the gateway's glue: key.lookup and the feed ---------------------------------------- */

/* Loop thread: dyno-auth revoked keys. */
static void s3key__on_revoked(void *arg, const struct dyno_mq_msg *msg)
{
    struct gw *gw = arg;
    gw_s3keys_on_revoked(gw->s3keys, msg->payload, msg->len);
}

int gw_s3key_start(struct gw *gw)
{
    int rc = gw_s3keys_new(&gw->s3keys);
    if (rc == 0)
        rc = dyno_mq_subscribe(gw->mq, DYNO_ACL_TOPIC_KEYS_REVOKED, 1, s3key__on_revoked, gw);
    return rc;
}

/* Reads a key.lookup answer into *k: 0 or DYNO_EPROTO. */
static int s3key__parse(const cJSON *res, const char *id, struct gw_s3key *k)
{
    const char *rid = dyno_json_str(res, "access_key_id");
    const char *user = dyno_json_str(res, "user");
    const char *org = dyno_json_str(res, "org");
    const char *secret = dyno_json_str(res, "secret_access_key");
    const cJSON *adm = cJSON_GetObjectItemCaseSensitive(res, "admin");
    if (!rid || strcmp(rid, id) != 0 || !dyno_valid_segment(user) || !secret || !*secret ||
        strlen(secret) > GW_S3KEY_SECRET_MAX || (org && strlen(org) > DYNO_ACL_ORG_MAX) ||
        (adm && !cJSON_IsBool(adm)))
        return DYNO_EPROTO;
    memset(k, 0, sizeof(*k));
    snprintf(k->user, sizeof(k->user), "%s", user);
    snprintf(k->org, sizeof(k->org), "%s", org ? org : "");
    k->admin = cJSON_IsTrue(adm);
    snprintf(k->secret, sizeof(k->secret), "%s", secret);
    return 0;
}

int gw_s3key_get(struct gw *gw, const char *access_key_id, struct gw_s3key *out)
{
    char msg[400];
    uint64_t gen = 0;
    memset(out, 0, sizeof(*out));
    /* Malformed ids cost no RPC: no such key can exist. */
    if (!dyno_valid_access_key_id(access_key_id))
        return DYNO_ENOTFOUND;
    if (!gw->s3keys)
        return DYNO_EUNAVAIL;
    if (gw_s3keys_get(gw->s3keys, access_key_id, gw_now_ms(), out, &gen))
        return 0;
    cJSON *params = cJSON_CreateObject(), *res = NULL;
    if (!params || !cJSON_AddStringToObject(params, "access_key_id", access_key_id)) {
        cJSON_Delete(params);
        return DYNO_ENOMEM;
    }
    int rc = gw_rpc(gw, "auth", "key.lookup", params, &res, msg, sizeof(msg));
    cJSON_Delete(params);
    if (rc == 0 && (rc = s3key__parse(res, access_key_id, out)) != 0)
        dyno_error("key.lookup answered something else than a key", "id=%s", access_key_id);
    else if (rc != 0 && rc != DYNO_ENOTFOUND)
        dyno_warn("access key lookup failed", "id=%s error=%s msg=%.300s", access_key_id, dyno_err_code(rc),
                  msg);
    cJSON *sec = cJSON_GetObjectItemCaseSensitive(res, "secret_access_key");
    if (cJSON_IsString(sec) && sec->valuestring)
        gw_wipe(sec->valuestring, strlen(sec->valuestring));
    cJSON_Delete(res);
    if (rc == 0)
        gw_s3keys_put(gw->s3keys, access_key_id, out, gw_now_ms(), gen);
    else
        gw_wipe(out, sizeof(*out));
    return rc;
}

int gw_s3key_lookup(struct gw *gw, const char *access_key_id, char *user, size_t user_len, char *secret,
                    size_t secret_len)
{
    struct gw_s3key k;
    int rc = gw_s3key_get(gw, access_key_id, &k);
    if (rc == 0 && (strlen(k.user) >= user_len || strlen(k.secret) >= secret_len))
        rc = DYNO_EINVAL;
    if (rc == 0) {
        memcpy(user, k.user, strlen(k.user) + 1);
        memcpy(secret, k.secret, strlen(k.secret) + 1);
    }
    gw_wipe(&k, sizeof(k));
    return rc;
}

void gw_s3key_flush(struct gw *gw)
{
    gw_s3keys_evict(gw->s3keys, NULL);
}

void gw_s3key_free(struct gw *gw)
{
    gw_s3keys_free(gw->s3keys);
    gw->s3keys = NULL;
}
