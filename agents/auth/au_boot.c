/* dyno-auth bootstrap (au_boot.h). */
#include "au_boot.h"

#include <dynostore/error.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "config.h"
#include "log.h"
#include "token.h"

#define AU_GEN_PW_BYTES 18 /* 24 base64url characters */

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static int ensure_admin(struct au_ctx *ctx, const struct au_boot_cfg *b, struct au_user *admin)
{
    char q[600];
    int rc = au_user_get(ctx->store, b->admin_user, admin);
    if (rc != DYNO_ENOTFOUND)
        return rc;
    char *pw = NULL;
    size_t len = 0;
    char gen[4 * ((AU_GEN_PW_BYTES + 2) / 3) + 1];
    if (b->admin_password_file) {
        rc = dyno_read_file(b->admin_password_file, AU_PW_MAX, &pw, &len);
        if (rc != 0 && rc != DYNO_ENOTFOUND) {
            dyno_error("cannot read admin_password_file", "file=%s error=%s",
                       dyno_log_q(q, sizeof(q), b->admin_password_file), dyno_err_code(rc));
            return rc;
        }
        if (rc == 0 && len == 0) {
            free(pw);
            dyno_error("admin_password_file is empty", "file=%s",
                       dyno_log_q(q, sizeof(q), b->admin_password_file));
            return DYNO_EINVAL;
        }
    }
    if (!pw) {
        uint8_t raw[AU_GEN_PW_BYTES];
        if (RAND_bytes(raw, sizeof(raw)) != 1)
            return DYNO_EINTERNAL;
        len = dyno_b64url_encode(raw, sizeof(raw), gen);
        /* Written before the user exists: a crash in between leaves a password file that
         * the next start uses, never an admin nobody can log in as. */
        if (b->admin_password_file) {
            rc = dyno_write_file(b->admin_password_file, gen, len, 0600);
            if (rc != 0) {
                dyno_error("cannot write admin_password_file", "file=%s error=%s",
                           dyno_log_q(q, sizeof(q), b->admin_password_file), dyno_err_code(rc));
                return rc;
            }
        } else {
            dyno_warn("no admin_password_file: the admin can only use its token", NULL);
        }
    }
    memset(admin, 0, sizeof(*admin));
    snprintf(admin->username, sizeof(admin->username), "%s", b->admin_user);
    admin->admin = true;
    admin->created_at = (int64_t)time(NULL);
    rc = au_pw_set(admin, pw ? pw : gen, len);
    if (pw) {
        memset(pw, 0, len);
        free(pw);
    }
    memset(gen, 0, sizeof(gen));
    if (rc != 0)
        return rc;
    char err[200];
    rc = au_user_create(ctx->store, admin, err, sizeof(err));
    if (rc != 0) {
        dyno_error("cannot create the admin", "error=%s", dyno_log_q(q, sizeof(q), err));
        return rc;
    }
    dyno_info("admin created", "user=%s", admin->username);
    return 0;
}

static int mint_file(struct au_ctx *ctx, const char *path, const char *sub, const char *org, bool admin,
                     const char *role)
{
    char q[600];
    if (!path || exists(path))
        return 0;
    char *token = NULL;
    int rc = au_mint(ctx, sub, org, admin, role, "api", "bootstrap", ctx->api_token_ttl, (int64_t)time(NULL),
                     &token, NULL, NULL, NULL, 0);
    if (rc != 0) {
        dyno_error("cannot mint a token", "sub=%s error=%s", sub, dyno_err_code(rc));
        return rc;
    }
    rc = dyno_write_file(path, token, strlen(token), 0600);
    au_mint_free(token);
    if (rc != 0) {
        dyno_error("cannot write a token file", "file=%s error=%s", dyno_log_q(q, sizeof(q), path),
                   dyno_err_code(rc));
        return rc;
    }
    dyno_info("token file written", "file=%s sub=%s role=%s", dyno_log_q(q, sizeof(q), path), sub, role);
    return 0;
}

int au_boot_keys(struct au_ctx *ctx, const char *private_key_file, const char *public_key_file)
{
    char q[600];
    int rc;
    if (!exists(private_key_file) && public_key_file) {
        rc = dyno_token_keygen(private_key_file, public_key_file);
        if (rc != 0) {
            dyno_error("cannot generate the key pair", "file=%s error=%s",
                       dyno_log_q(q, sizeof(q), private_key_file), dyno_err_code(rc));
            return rc;
        }
        dyno_info("key pair generated", "private=%s", dyno_log_q(q, sizeof(q), private_key_file));
    }
    rc = dyno_signer_load(private_key_file, &ctx->signer);
    if (rc != 0)
        dyno_error("cannot load private_key_file", "file=%s error=%s",
                   dyno_log_q(q, sizeof(q), private_key_file), dyno_err_code(rc));
    return rc;
}

int au_boot(struct au_ctx *ctx, const struct au_boot_cfg *b)
{
    struct au_user admin;
    int rc = ensure_admin(ctx, b, &admin);
    if (rc != 0)
        return rc;
    rc = mint_file(ctx, b->admin_token_file, admin.username, admin.org, true, "user");
    if (rc != 0)
        return rc;
    return mint_file(ctx, b->service_token_file, "service", "", false, "service");
}
