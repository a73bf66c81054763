/*
 * dyno-metadata: objects, fragments, container registry and placement (protocol.md §3).
 * main() wires the configuration, SQLite, the container registry, the RPC workers and the
 * housekeeping thread (registry persistence, pending-object timeout).
 */
#include <dynostore/error.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include "agent.h"
#include "config.h"
#include "log.h"
#include "md_rpc.h"
#include "md_store.h"

struct md_cfg {
    struct dyno_agent_common c;
    char *db;
    int64_t rpc_threads;
    int64_t pending_timeout;
};

static const struct dyno_opt md_opts[] = {
    DYNO_AGENT_COMMON_OPTS(struct md_cfg, c, "md1"),
    {"db", DYNO_OPT_STR, offsetof(struct md_cfg, db), "metadata.db", "SQLite database file"},
    {"rpc_threads", DYNO_OPT_INT, offsetof(struct md_cfg, rpc_threads), "4", "RPC worker threads"},
    {"pending_timeout", DYNO_OPT_INT, offsetof(struct md_cfg, pending_timeout), "3600",
     "seconds before an uncommitted put is aborted"},
};

struct md_house {
    struct md_ctx *ctx;
    struct md_db *db;
    int64_t pending_timeout;
};

/* Housekeeping thread: writes container changes to SQLite as they come (off the MQTT loop
 * thread) and aborts pending objects older than pending_timeout. */
static void *house_main(void *arg)
{
    struct md_house *h = arg;
    int64_t every = h->pending_timeout / 4;
    if (every < 1)
        every = 1;
    if (every > 30)
        every = 30;
    int64_t next_reap = 0;
    for (;;) {
        struct md_nodes dirty;
        bool running = md_reg_wait_dirty(&h->ctx->reg, 1000, &dirty);
        if (dirty.n && md_store_save_containers(h->db, dirty.v, dirty.n) != 0)
            dyno_warn("cannot save container states", "count=%zu", dirty.n);
        free(dirty.v);
        if (!running)
            break;
        int64_t now = (int64_t)time(NULL);
        if (now >= next_reap) {
            int count = 0;
            if (md_store_reap(h->db, now - h->pending_timeout, &count) == 0 && count > 0)
                dyno_info("aborted stale pending objects", "count=%d timeout=%lld", count,
                          (long long)h->pending_timeout);
            next_reap = now + every;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct md_cfg cfg = {0};
    struct md_ctx ctx;
    struct dyno_agent agent = {0};
    struct md_house house = {0};
    pthread_t house_thread;
    bool ctx_ok = false, house_started = false;
    int ret = 1;
    char q[600];

    if (dyno_agent_block_signals() != 0)
        return 1;
    int rc = dyno_agent_config("metadata", md_opts, sizeof(md_opts) / sizeof(md_opts[0]), &cfg, &cfg.c, argc, argv);
    if (rc != 0) {
        dyno_config_free(md_opts, sizeof(md_opts) / sizeof(md_opts[0]), &cfg);
        return rc == 1 ? 0 : 1;
    }
    if (cfg.rpc_threads < 1 || cfg.rpc_threads > 256 || cfg.pending_timeout < 1 || !cfg.db || !*cfg.db) {
        dyno_error("bad configuration", "error=%s",
                   dyno_agent_q(q, sizeof(q), "rpc_threads must be 1..256, pending_timeout >= 1, db set"));
        goto out;
    }
    if (md_ctx_init(&ctx, cfg.db) != 0)
        goto out;
    ctx_ok = true;
    /* The housekeeping thread's connection also creates the schema before anyone else. */
    if (md_ctx_db(&ctx, &house.db) != 0 || md_db_schema(house.db) != 0) {
        dyno_error("cannot open the database", "db=%s", dyno_agent_q(q, sizeof(q), cfg.db));
        goto out;
    }
    struct md_node *known = NULL;
    size_t nknown = 0;
    if (md_store_load_containers(house.db, &known, &nknown) != 0)
        goto out;
    md_reg_load(&ctx.reg, known, nknown);
    free(known);

    if (dyno_agent_init(&agent, "metadata", &cfg.c) != 0)
        goto out;
    if (dyno_mq_subscribe(agent.mq, "dyno/v1/agents/container/+/status", 1, md_reg_on_status, &ctx.reg) != 0 ||
        dyno_mq_serve(agent.mq, "metadata", md_rpc_methods, md_rpc_nmethods, &ctx, (int)cfg.rpc_threads) != 0) {
        dyno_error("cannot set up MQTT subscriptions", NULL);
        goto out;
    }
    house.ctx = &ctx;
    house.pending_timeout = cfg.pending_timeout;
    if (pthread_create(&house_thread, NULL, house_main, &house) != 0) {
        dyno_error("cannot start the housekeeping thread", NULL);
        goto out;
    }
    house_started = true;
    if (dyno_agent_start(&agent) != 0)
        goto out;
    dyno_info("serving", "db=%s containers=%zu rpc_threads=%lld", dyno_agent_q(q, sizeof(q), cfg.db), nknown,
              (long long)cfg.rpc_threads);
    dyno_agent_run(&agent, 30);
    ret = 0;
out:
    /* Workers stop with the MQTT client, then the housekeeping thread, then SQLite. */
    dyno_agent_fini(&agent);
    if (house_started) {
        md_reg_stop(&ctx.reg);
        pthread_join(house_thread, NULL);
    }
    if (ctx_ok)
        md_ctx_fini(&ctx);
    dyno_config_free(md_opts, sizeof(md_opts) / sizeof(md_opts[0]), &cfg);
    if (ret == 0)
        dyno_info("stopped", NULL);
    return ret;
}
