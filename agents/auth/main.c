/*
 * dyno-auth: users, organizations, passwords and tokens, and the revocation feed
 * (protocol.md §3, §7). Bootstraps the key pair, the admin and the token files before it
 * connects to the broker (au_boot.h). Its options and hooks over the agent skeleton
 * (lib/agent.h dyno_agent_main).
 */
#include <dynostore/error.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "agent.h"
#include "au_boot.h"
#include "au_feed.h"
#include "au_rpc.h"
#include "au_store.h"
#include "config.h"
#include "log.h"
#include "names.h"
#include "token.h"

#define AU_LIMIT_USERS_MAX 65536 /* users with a rate-limit bucket at once */

struct au_cfg {
    struct dyno_agent_common c;
    char *db;
    char *private_key_file;
    char *admin_user;
    char *admin_password_file;
    char *admin_token_file;
    int64_t session_ttl;
    int64_t api_token_ttl;
    int64_t rpc_threads;
    int64_t token_ops_per_minute;
    int64_t token_ops_burst;
    int64_t api_tokens_per_user;
    int64_t sessions_per_user;
    int64_t revoked_per_user;
    int64_t revoked_doc_max;
    char *s3_master_key_file;
    int64_t s3_keys_per_user;
};

static const struct dyno_opt au_opts[] = {
    DYNO_AGENT_COMMON_OPTS(struct au_cfg, c, "auth1"),
    {"db", DYNO_OPT_STR, offsetof(struct au_cfg, db), "auth.db", "SQLite database file"},
    {"private_key_file", DYNO_OPT_STR, offsetof(struct au_cfg, private_key_file), NULL,
     "Ed25519 private key (PEM) that signs tokens; made with public_key_file when missing"},
    {"admin_user", DYNO_OPT_STR, offsetof(struct au_cfg, admin_user), "admin",
     "the admin created at first start"},
    {"admin_password_file", DYNO_OPT_STR, offsetof(struct au_cfg, admin_password_file), NULL,
     "admin password: read when present, else a random one is written here"},
    {"admin_token_file", DYNO_OPT_STR, offsetof(struct au_cfg, admin_token_file), NULL,
     "admin API token, minted when missing"},
    {"session_ttl", DYNO_OPT_INT, offsetof(struct au_cfg, session_ttl), "86400",
     "login token lifetime, seconds"},
    {"api_token_ttl", DYNO_OPT_INT, offsetof(struct au_cfg, api_token_ttl), "31536000",
     "API token lifetime, seconds"},
    {"rpc_threads", DYNO_OPT_INT, offsetof(struct au_cfg, rpc_threads), "2", "RPC worker threads"},
    {"token_ops_per_minute", DYNO_OPT_INT, offsetof(struct au_cfg, token_ops_per_minute), "60",
     "token creations, revocations and logins per user per minute (then 429 with Retry-After)"},
    {"token_ops_burst", DYNO_OPT_INT, offsetof(struct au_cfg, token_ops_burst), "30",
     "token operations a user may make at once before token_ops_per_minute applies"},
    {"api_tokens_per_user", DYNO_OPT_INT, offsetof(struct au_cfg, api_tokens_per_user), "1000",
     "unexpired API tokens per user, revoked ones included"},
    {"sessions_per_user", DYNO_OPT_INT, offsetof(struct au_cfg, sessions_per_user), "1000",
     "unexpired session tokens per user, revoked ones included"},
    {"revoked_per_user", DYNO_OPT_INT, offsetof(struct au_cfg, revoked_per_user), "32",
     "revocations of one user listed one by one; past it they collapse into one epoch entry"},
    {"revoked_doc_max", DYNO_OPT_INT, offsetof(struct au_cfg, revoked_doc_max), "256K",
     "bytes of the published revocation document (largest users collapse into epochs past it)"},
    {"s3_master_key_file", DYNO_OPT_STR, offsetof(struct au_cfg, s3_master_key_file), "s3-master.key",
     "AES-256 key that encrypts the S3 secret keys in db; made (0600) at first start. Keep it apart "
     "from db: the database without it gives no secret"},
    {"s3_keys_per_user", DYNO_OPT_INT, offsetof(struct au_cfg, s3_keys_per_user), "100",
     "live S3 access keys per user"},
};
struct au_main {
    struct au_cfg cfg;
    struct au_ctx ctx;
    struct dyno_agent agent;
    bool feed_mu;
};

/*
 * Loads the S3 master key, making it at first start. Never makes a new one while the
 * database holds keys: they were sealed under the lost one and a fresh key would only turn
 * every lookup into an error; the operator restores the file instead.
 */
static int au_main__master(struct au_ctx *ctx, const char *path)
{
    char q[600];
    int64_t live = 0;
    bool created = false;
    int rc = au_key_count(ctx->store, &live);
    if (rc == 0)
        rc = au_seal_master_load(path, live == 0, ctx->s3_master, &created);
    if (rc != 0) {
        if (rc == DYNO_ENOTFOUND)
            dyno_error("s3_master_key_file is missing but the database holds access keys: restore it "
                       "(they cannot be opened without it)",
                       "file=%s keys=%lld", dyno_log_q(q, sizeof(q), path), (long long)live);
        else
            dyno_error("cannot load s3_master_key_file", "file=%s error=%s", dyno_log_q(q, sizeof(q), path),
                       dyno_err_code(rc));
        return rc;
    }
    ctx->s3_master_ok = true;
    if (created)
        dyno_info("s3 master key made", "file=%s", dyno_log_q(q, sizeof(q), path));
    return 0;
}

static int au_setup(void *arg)
{
    struct au_main *a = arg;
    const struct au_cfg *cfg = &a->cfg;
    struct au_ctx *ctx = &a->ctx;
    char q[600];
    if (!cfg->private_key_file || !cfg->db || !*cfg->db || !dyno_valid_segment(cfg->admin_user) ||
        cfg->session_ttl < 1 || cfg->api_token_ttl < 1 || cfg->rpc_threads < 1 || cfg->rpc_threads > 256 ||
        cfg->token_ops_per_minute < 1 || cfg->token_ops_burst < 1 || cfg->api_tokens_per_user < 1 ||
        cfg->sessions_per_user < 1 || cfg->revoked_per_user < 1 || cfg->revoked_doc_max < 4096 ||
        cfg->revoked_doc_max > DYNO_REVOKED_DOC_MAX || !cfg->s3_master_key_file ||
        !*cfg->s3_master_key_file || cfg->s3_keys_per_user < 1) {
        dyno_error("bad configuration", "error=%s",
                   dyno_log_q(q, sizeof(q),
                              "private_key_file and db are required, admin_user must be a valid name, "
                              "session_ttl and api_token_ttl >= 1, rpc_threads 1..256, token_ops_per_minute, "
                              "token_ops_burst, api_tokens_per_user, sessions_per_user and revoked_per_user "
                              ">= 1, revoked_doc_max 4K..1M, s3_master_key_file is required, "
                              "s3_keys_per_user >= 1"));
        return -1;
    }
    if (au_boot_keys(ctx, cfg->private_key_file, cfg->c.public_key_file) != 0 ||
        pthread_mutex_init(&ctx->feed_mu, NULL) != 0)
        return -1;
    a->feed_mu = true;
    if (au_store_open(cfg->db, &ctx->store) != 0)
        return -1;
    ctx->session_ttl = cfg->session_ttl;
    ctx->api_token_ttl = cfg->api_token_ttl;
    ctx->api_tokens_max = cfg->api_tokens_per_user;
    ctx->sessions_max = cfg->sessions_per_user;
    ctx->revoked_per_user = cfg->revoked_per_user;
    ctx->revoked_doc_max = (size_t)cfg->revoked_doc_max;
    ctx->keys_max = cfg->s3_keys_per_user;
    if (au_main__master(ctx, cfg->s3_master_key_file) != 0)
        return -1;
    if (au_limit_new((double)cfg->token_ops_per_minute, (double)cfg->token_ops_burst, AU_LIMIT_USERS_MAX,
                     &ctx->limit) != 0)
        return -1;
    /* Before the broker: the skeleton reads the service token written here as its password. */
    const struct au_boot_cfg boot = {
        .admin_user = cfg->admin_user,
        .admin_password_file = cfg->admin_password_file,
        .admin_token_file = cfg->admin_token_file,
        .service_token_file = cfg->c.service_token_file,
    };
    return au_boot(ctx, &boot);
}

static int au_start(void *arg)
{
    struct au_main *a = arg;
    a->ctx.mq = a->agent.mq;
    /* Every (re)connect republishes the revocation list (protocol.md §7). */
    return dyno_agent_serve(&a->agent, au_feed_on_connect, au_rpc_methods, au_rpc_nmethods, &a->ctx,
                            (int)a->cfg.rpc_threads);
}

static int au_started(void *arg)
{
    struct au_main *a = arg;
    char q[600];
    dyno_info("serving", "db=%s", dyno_log_q(q, sizeof(q), a->cfg.db));
    return 0;
}

static void au_cleanup(void *arg)
{
    struct au_main *a = arg;
    au_store_close(a->ctx.store);
    OPENSSL_cleanse(a->ctx.s3_master, sizeof(a->ctx.s3_master));
    au_limit_free(a->ctx.limit);
    if (a->feed_mu)
        pthread_mutex_destroy(&a->ctx.feed_mu);
    dyno_signer_free(a->ctx.signer);
}

int main(int argc, char **argv)
{
    static struct au_main a;
    const struct dyno_agent_hooks hooks = {
        DYNO_AGENT_HOOKS_STATE("auth", au_opts, a),
        .interval = 30,
        .setup = au_setup,
        .start = au_start,
        .started = au_started,
        .cleanup = au_cleanup,
    };
    /* The database holds password hashes and the files written here are secrets. */
    umask(077);
    return dyno_agent_main(argc, argv, &hooks);
}
