/*
 * The auth RPC methods (protocol.md §3): auth.login, user.create, user.list. Handlers run
 * in the lib/mq.h worker threads; the password hashing runs outside the store's lock.
 */
#ifndef DYNO_AU_RPC_H
#define DYNO_AU_RPC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "au_store.h"
#include "mq.h"
#include "token.h"

struct au_ctx {
    struct au_store *store;
    struct dyno_signer *signer;
    int64_t session_ttl;
    int64_t api_token_ttl;
};

/* Signs a token for sub (role "user" or "service") valid ttl seconds from now and records
 * its jti as kind ("session" or "api"). *token is malloc'd; *exp (may be NULL) gets expiry. */
int au_mint(struct au_ctx *ctx, const char *sub, const char *org, bool admin, const char *role,
            const char *kind, int64_t ttl, int64_t now, char **token, int64_t *exp);

extern const struct dyno_rpc_method au_rpc_methods[];
extern const size_t au_rpc_nmethods;
#endif
