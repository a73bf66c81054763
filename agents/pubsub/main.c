/*
 * dyno-pubsub: catalogs, shares, subscriptions and catalog events (protocol.md §3). Its
 * options and hooks over the agent skeleton (lib/agent.h dyno_agent_main).
 */
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

struct ps_main {
    struct ps_cfg cfg;
    struct ps_ctx ctx;
    struct dyno_agent agent;
    bool feed_mu;
};

static int ps_setup(void *arg)
{
    struct ps_main *p = arg;
    char q[600];
    if (p->cfg.rpc_threads < 1 || p->cfg.rpc_threads > 256 || p->cfg.default_k < 1 ||
        p->cfg.default_k > DYNO_EC_MAX_K || p->cfg.default_m < 0 || p->cfg.default_m > DYNO_EC_MAX_M ||
        !p->cfg.db || !*p->cfg.db) {
        dyno_error(
            "bad configuration", "error=%s",
            dyno_log_q(q, sizeof(q), "rpc_threads must be 1..256, default_k 1..32, default_m 0..16, db set"));
        return -1;
    }
    if (pthread_mutex_init(&p->ctx.feed_mu, NULL) != 0)
        return -1;
    p->feed_mu = true;
    p->ctx.default_k = (int)p->cfg.default_k;
    p->ctx.default_m = (int)p->cfg.default_m;
    return ps_store_open(p->cfg.db, &p->ctx.store);
}

static int ps_start(void *arg)
{
    struct ps_main *p = arg;
    p->ctx.mq = p->agent.mq;
    /* Every (re)connect republishes the whole policy feed (protocol.md §7). */
    return dyno_agent_serve(&p->agent, ps_feed_republish, ps_rpc_methods, ps_rpc_nmethods, &p->ctx,
                            (int)p->cfg.rpc_threads);
}

static int ps_started(void *arg)
{
    struct ps_main *p = arg;
    char q[600];
    dyno_info("serving", "db=%s", dyno_log_q(q, sizeof(q), p->cfg.db));
    return 0;
}

static void ps_cleanup(void *arg)
{
    struct ps_main *p = arg;
    ps_store_close(p->ctx.store);
    if (p->feed_mu)
        pthread_mutex_destroy(&p->ctx.feed_mu);
}

int main(int argc, char **argv)
{
    static struct ps_main p;
    const struct dyno_agent_hooks hooks = {
        DYNO_AGENT_HOOKS_STATE("pubsub", ps_opts, p),
        .interval = 30,
        .setup = ps_setup,
        .start = ps_start,
        .started = ps_started,
        .cleanup = ps_cleanup,
    };
    return dyno_agent_main(argc, argv, &hooks);
}
