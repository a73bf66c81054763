/*
 * dyno-metadata: objects, fragments, container registry and placement (protocol.md §3).
 * main() wires the configuration, SQLite, the container registry, the RPC workers and the
 * housekeeping thread (registry persistence, pending-object timeout, the repair planner's
 * periodic pass).
 */
#include <dynostore/error.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include "agent.h"
#include "config.h"
#include "log.h"
#include "md_repair.h"
#include "md_rpc.h"
#include "md_store.h"

#define MD_TICK_EVERY 2 /* s between passes of the repair planner */

struct md_cfg {
    struct dyno_agent_common c;
    char *db;
    int64_t rpc_threads;
    int64_t pending_timeout;
    int64_t repair_grace;
    int64_t repair_lease;
    int64_t repair_rate;
};

static const struct dyno_opt md_opts[] = {
    DYNO_AGENT_COMMON_OPTS(struct md_cfg, c, "md1"),
    {"db", DYNO_OPT_STR, offsetof(struct md_cfg, db), "metadata.db", "SQLite database file"},
    /* Most of a worker's time in a commit is waiting for the group's fdatasync (md_store.h),
     * not CPU: commits that arrive together share one sync only if as many workers can wait
     * at once, so there are as many as the puts a gateway runs at a time (16 clients, 16
     * ingest sessions), not as many as cores. */
    {"rpc_threads", DYNO_OPT_INT, offsetof(struct md_cfg, rpc_threads), "16", "RPC worker threads"},
    {"pending_timeout", DYNO_OPT_INT, offsetof(struct md_cfg, pending_timeout), "3600",
     "seconds before an uncommitted put is aborted"},
    {"repair_grace", DYNO_OPT_INT, offsetof(struct md_cfg, repair_grace), "60",
     "seconds a container may stay offline before its fragments are rebuilt elsewhere"},
    {"repair_lease", DYNO_OPT_INT, offsetof(struct md_cfg, repair_lease), "120",
     "seconds a claimed repair task stays leased to its worker"},
    {"repair_rate", DYNO_OPT_INT, offsetof(struct md_cfg, repair_rate), "20",
     "repair tasks handed out per second at most"},
};
#define MD_NOPTS (sizeof(md_opts) / sizeof(md_opts[0]))

struct md_house {
    struct md_ctx *ctx;
    struct md_db *db;
    int64_t pending_timeout;
    struct dyno_mq *mq;
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
    int64_t next_reap = 0, next_tick = 0, observed_since = 0;
    for (;;) {
        struct md_nodes dirty;
        bool running = md_reg_wait_dirty(&h->ctx->reg, 1000, &dirty);
        if (dirty.n && md_store_save_containers(h->db, dirty.v, dirty.n) != 0)
            dyno_warn("cannot save container states", "count=%zu", dirty.n);
        free(dirty.v);
        if (!running)
            break;
        /* Here rather than in the RPC commits (which only checkpoint past a backstop). */
        if (md_store_checkpoint(h->db) != 0)
            dyno_warn("wal checkpoint failed", NULL);
        int64_t now = (int64_t)time(NULL);
        if (now >= next_reap) {
            int count = 0;
            if (md_store_reap(h->db, now - h->pending_timeout, &count) == 0 && count > 0)
                dyno_info("aborted stale pending objects", "count=%d timeout=%lld", count,
                          (long long)h->pending_timeout);
            next_reap = now + every;
        }
        /* Statuses are only heard while connected: the offline clock of the planner starts
         * at the connection (0 = not connected, nothing is marked lost). */
        bool up = dyno_mq_connected(h->mq);
        if (!up)
            observed_since = 0;
        else if (observed_since == 0)
            observed_since = now;
        if (now >= next_tick) {
            struct md_nodes nodes;
            cJSON *events = cJSON_CreateArray();
            if (events && md_reg_snapshot(&h->ctx->reg, &nodes) == 0) {
                if (md_repair_tick(&h->ctx->repair, h->db, &nodes, now, observed_since, events) != 0)
                    dyno_warn("repair planner pass failed", NULL);
                md_rpc_emit(h->ctx, events);
                free(nodes.v);
            }
            cJSON_Delete(events);
            next_tick = now + MD_TICK_EVERY;
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

    int rc = dyno_agent_setup("metadata", md_opts, MD_NOPTS, &cfg, &cfg.c, argc, argv);
    if (rc != 0)
        return rc == 1 ? 0 : 1;
    if (cfg.rpc_threads < 1 || cfg.rpc_threads > 256 || cfg.pending_timeout < 1 || !cfg.db || !*cfg.db) {
        dyno_error("bad configuration", "error=%s",
                   dyno_log_q(q, sizeof(q), "rpc_threads must be 1..256, pending_timeout >= 1, db set"));
        goto out;
    }
    if (cfg.repair_grace < 0 || cfg.repair_lease < 1 || cfg.repair_rate < 1) {
        dyno_error("bad configuration", "error=%s",
                   dyno_log_q(q, sizeof(q), "repair_grace must be >= 0, repair_lease and repair_rate >= 1"));
        goto out;
    }
    struct md_repair_cfg rcfg = {
        .grace = cfg.repair_grace, .lease = cfg.repair_lease, .rate = cfg.repair_rate};
    if (md_ctx_init(&ctx, cfg.db, &rcfg) != 0)
        goto out;
    ctx_ok = true;
    /* The housekeeping thread's connection also creates the schema before anyone else. */
    if (md_ctx_db(&ctx, &house.db) != 0 || md_db_schema(house.db) != 0) {
        dyno_error("cannot open the database", "db=%s", dyno_log_q(q, sizeof(q), cfg.db));
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
    ctx.mq = agent.mq;
    if (dyno_mq_subscribe(agent.mq, "dyno/v1/agents/container/+/status", 1, md_reg_on_status, &ctx.reg) !=
        0) {
        dyno_error("cannot set up MQTT subscriptions", NULL);
        goto out;
    }
    house.ctx = &ctx;
    house.pending_timeout = cfg.pending_timeout;
    house.mq = agent.mq;
    if (pthread_create(&house_thread, NULL, house_main, &house) != 0) {
        dyno_error("cannot start the housekeeping thread", NULL);
        goto out;
    }
    house_started = true;
    if (dyno_agent_serve(&agent, NULL, md_rpc_methods, md_rpc_nmethods, &ctx, (int)cfg.rpc_threads) != 0)
        goto out;
    dyno_info("serving",
              "db=%s containers=%zu rpc_threads=%lld repair_grace=%lld repair_lease=%lld repair_rate=%lld",
              dyno_log_q(q, sizeof(q), cfg.db), nknown, (long long)cfg.rpc_threads,
              (long long)cfg.repair_grace, (long long)cfg.repair_lease, (long long)cfg.repair_rate);
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
    dyno_config_free(md_opts, MD_NOPTS, &cfg);
    if (ret == 0)
        dyno_info("stopped", NULL);
    return ret;
}
