/*
 * dyno-pubsub: catalogs, shares, subscriptions and catalog events (protocol.md §3).
 */
#include <dynostore/error.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "agent.h"
#include "config.h"
#include "ec.h"
#include "log.h"
#include "ps_feed.h"
#include "ps_rpc.h"
#include "ps_store.h"

struct ps_cfg {
    struct dyno_agent_common c;
    char *db;
    int64_t rpc_threads;
    int64_t default_k;
    int64_t default_m;
};

static const struct dyno_opt ps_opts[] = {
    DYNO_AGENT_COMMON_OPTS(struct ps_cfg, c, "ps1"),
    {"db", DYNO_OPT_STR, offsetof(struct ps_cfg, db), "pubsub.db", "SQLite database file"},
    {"rpc_threads", DYNO_OPT_INT, offsetof(struct ps_cfg, rpc_threads), "2", "RPC worker threads"},
    {"default_k", DYNO_OPT_INT, offsetof(struct ps_cfg, default_k), "3", "data fragments of a new catalog"},
    {"default_m", DYNO_OPT_INT, offsetof(struct ps_cfg, default_m), "2", "parity fragments of a new catalog"},
};
#define PS_NOPTS (sizeof(ps_opts) / sizeof(ps_opts[0]))

int main(int argc, char **argv)
{
    struct ps_cfg cfg = {0};
    struct dyno_agent agent = {0};
    struct ps_ctx ctx = {0};
    int ret = 1;
    char q[600];
    bool feed_mu = false;

    int rc = dyno_agent_setup("pubsub", ps_opts, PS_NOPTS, &cfg, &cfg.c, argc, argv);
    if (rc != 0)
        return rc == 1 ? 0 : 1;
    if (cfg.rpc_threads < 1 || cfg.rpc_threads > 256 || cfg.default_k < 1 || cfg.default_k > DYNO_EC_MAX_K ||
        cfg.default_m < 0 || cfg.default_m > DYNO_EC_MAX_M || !cfg.db || !*cfg.db) {
        dyno_error(
            "bad configuration", "error=%s",
            dyno_log_q(q, sizeof(q), "rpc_threads must be 1..256, default_k 1..32, default_m 0..16, db set"));
        goto out;
    }
    if (pthread_mutex_init(&ctx.feed_mu, NULL) != 0)
        goto out;
    feed_mu = true;
    if (ps_store_open(cfg.db, &ctx.store) != 0)
        goto out;
    ctx.default_k = (int)cfg.default_k;
    ctx.default_m = (int)cfg.default_m;
    if (dyno_agent_init(&agent, "pubsub", &cfg.c) != 0)
        goto out;
    ctx.mq = agent.mq;
    /* Every (re)connect republishes the whole policy feed (protocol.md §7). */
    if (dyno_agent_serve(&agent, ps_feed_republish, ps_rpc_methods, ps_rpc_nmethods, &ctx,
                         (int)cfg.rpc_threads) != 0)
        goto out;
    dyno_info("serving", "db=%s", dyno_log_q(q, sizeof(q), cfg.db));
    dyno_agent_run(&agent, 30);
    ret = 0;
out:
    dyno_agent_fini(&agent);
    ps_store_close(ctx.store);
    if (feed_mu)
        pthread_mutex_destroy(&ctx.feed_mu);
    dyno_config_free(ps_opts, PS_NOPTS, &cfg);
    if (ret == 0)
        dyno_info("stopped", NULL);
    return ret;
}
