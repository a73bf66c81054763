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

#include "au_store.h"
#include "mq.h"
#include "token.h"

struct au_ctx {
    struct au_store *store;
    struct dyno_signer *signer;
    struct dyno_mq *mq; /* for the revocation feed (au_feed.h); NULL: nothing is published */
    pthread_mutex_t feed_mu;
    int64_t session_ttl;
    int64_t api_token_ttl;
};

/* Signs a token for sub (role "user" or "service") valid ttl seconds from now and records
 * it as kind ("session" or "api") with name (NULL or "" for none). *token is malloc'd;
 * jti (DYNO_KEY_LEN + 1 bytes) and exp may be NULL. 0 or DYNO_E* (err filled when
 * non-NULL); DYNO_ETOOBIG when the user has too many live API tokens. */
int au_mint(struct au_ctx *ctx, const char *sub, const char *org, bool admin, const char *role,
            const char *kind, const char *name, int64_t ttl, int64_t now, char **token, char *jti,
            int64_t *exp, char *err, size_t errlen);
/* Wipes and frees a token from au_mint. NULL is a no-op. */
void au_mint_free(char *token);

extern const struct dyno_rpc_method au_rpc_methods[];
extern const size_t au_rpc_nmethods;
#endif
