/*
 * The auth RPC methods (protocol.md §3): auth.login; user.create, user.list; org.create,
 * org.list; token.create, token.list, token.revoke. Handlers run in the lib/mq.h worker
 * threads; the password hashing runs outside the store's lock. Every handler validates all
 * of its params before it changes anything: bad input is DYNO_EINVAL and changes nothing.
 */
#ifndef DYNO_AU_RPC_H
#define DYNO_AU_RPC_H
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "au_limit.h"
#include "au_seal.h"
#include "au_store.h"
#include "mq.h"
#include "token.h"

struct au_ctx {
    struct au_store *store;
    struct dyno_signer *signer;
    struct dyno_mq *mq; /* for the revocation feed (au_feed.h); NULL: nothing is published */
    /* Held around a change of the revocation state and its publication, and around minting
     * (so a token's iat is never before an epoch set while it was being minted). */
    pthread_mutex_t feed_mu;
    struct au_limit *limit; /* per-user token operations (au_limit.h); NULL: none */
    int64_t session_ttl;
    int64_t api_token_ttl;
    int64_t api_tokens_max;   /* per user, revoked included; 0: no cap */
    int64_t sessions_max;     /* per user, revoked included; 0: no cap */
    int64_t revoked_per_user; /* listed revocations before an epoch; 0: no bound */
    size_t revoked_doc_max;   /* bytes of the published document; 0: DYNO_REVOKED_DOC_MAX */
    /* S3 access keys (au_keys.h): their secrets are sealed under this key (au_seal.h). */
    uint8_t s3_master[AU_MASTER_LEN];
    bool s3_master_ok; /* loaded; else the key.* methods answer unavailable */
    int64_t keys_max;  /* live access keys per user; 0: no cap */
};

/* One unit of user's token-operation budget (au_limit.h; key.create and key.revoke spend it
 * too): 0, or DYNO_ELIMIT with err ending in "retry after N s", which the gateway turns into
 * Retry-After (protocol.md §3). */
int au_take_budget(struct au_ctx *ctx, const char *user, char *err, size_t errlen);

/* Signs a token for sub (role "user" or "service") valid ttl seconds from now and records
 * it as kind ("session" or "api") with name (NULL or "" for none); its iat is now, or sub's
 * epoch when that is later (so it is not born revoked). *token is malloc'd; jti
 * (DYNO_KEY_LEN + 1 bytes) and exp may be NULL. Takes ctx->feed_mu. 0 or DYNO_E* (err filled
 * when non-NULL); DYNO_ETOOBIG when the user has too many unexpired tokens of that kind. */
int au_mint(struct au_ctx *ctx, const char *sub, const char *org, bool admin, const char *role,
            const char *kind, const char *name, int64_t ttl, int64_t now, char **token, char *jti,
            int64_t *exp, char *err, size_t errlen);
/* Wipes and frees a token from au_mint. NULL is a no-op. */
void au_mint_free(char *token);

extern const struct dyno_rpc_method au_rpc_methods[];
extern const size_t au_rpc_nmethods;
/* err = msg, DYNO_EINVAL (bad input); err = "out of memory", DYNO_ENOMEM: the two replies
 * every auth RPC handler (au_rpc.c, au_keys.c) gives for them. */
int au_rpc_bad(char *err, size_t errlen, const char *msg);
int au_rpc_nomem(char *err, size_t errlen);

#endif
