/*
 * First-start bootstrap of dyno-auth, run before it connects to the broker (the launcher
 * waits for these files, and auth itself logs into the broker with the service token):
 * the admin user (password from admin_password_file, or a random one written there 0600),
 * the admin API token file and the service token file (minted only when missing, 0600,
 * their jtis recorded). Every path may be NULL: that step is skipped.
 */
#ifndef DYNO_AU_BOOT_H
#define DYNO_AU_BOOT_H
#include "au_rpc.h"

struct au_boot_cfg {
    const char *admin_user;
    const char *admin_password_file;
    const char *admin_token_file;
    const char *service_token_file;
};

/* The signing key: the pair is generated when private_key_file is missing and
 * public_key_file (may be NULL) says where its public half goes; then private_key_file is
 * loaded into ctx->signer. 0 or DYNO_E* (logged). */
int au_boot_keys(struct au_ctx *ctx, const char *private_key_file, const char *public_key_file);
/* 0 or DYNO_E* (logged). */
int au_boot(struct au_ctx *ctx, const struct au_boot_cfg *b);
#endif
