/*
 * dyno-metadata: objects, fragments, container registry and placement (protocol.md §3).
 * Its options and hooks over the agent skeleton (lib/agent.h dyno_agent_main): SQLite, the
 * container registry, the RPC workers and the housekeeping thread (md_house.h).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include "agent.h"
#include "config.h"
#include "log.h"
#include "md_house.h"
#include "md_repair.h"
#include "md_rpc.h"
#include "md_store.h"

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
    /* Most of a worker's time in a write is waiting for its batch's commit (md_writer.h),
     * not CPU: commits that arrive together share one batch and one fsync only if as many
     * workers can wait at once, so there are as many as the puts a gateway runs at a time
     * (16 clients, 16 ingest sessions), not as many as cores. */
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
struct md_main {
    struct md_cfg cfg;
    struct md_ctx ctx;
    struct dyno_agent agent;
    struct md_house house;
    bool ctx_ok;
    size_t nknown; /* containers known from the database at start */
};

static int md_setup(void *arg)
{
    struct md_main *a = arg;
    const struct md_cfg *cfg = &a->cfg;
    char q[600];
    if (cfg->rpc_threads < 1 || cfg->rpc_threads > 256 || cfg->pending_timeout < 1 || !cfg->db || !*cfg->db) {
        dyno_error("bad configuration", "error=%s",
                   dyno_log_q(q, sizeof(q), "rpc_threads must be 1..256, pending_timeout >= 1, db set"));
        return -1;
    }
    if (cfg->repair_grace < 0 || cfg->repair_lease < 1 || cfg->repair_rate < 1) {
        dyno_error("bad configuration", "error=%s",
                   dyno_log_q(q, sizeof(q), "repair_grace must be >= 0, repair_lease and repair_rate >= 1"));
        return -1;
    }
    const struct md_repair_cfg rcfg = {
        .grace = cfg->repair_grace, .lease = cfg->repair_lease, .rate = cfg->repair_rate};
    if (md_ctx_init(&a->ctx, cfg->db, &rcfg) != 0)
        return -1;
    a->ctx_ok = true;
    /* The housekeeping thread's connection also creates the schema before anyone else. */
    struct md_node *known = NULL;
    if (md_house_open(&a->house, &a->ctx) != 0 ||
        md_store_load_containers(a->house.db, &known, &a->nknown) != 0)
        return -1;
    md_reg_load(&a->ctx.reg, known, a->nknown);
    free(known);
    return 0;
}

static int md_start(void *arg)
{
    struct md_main *a = arg;
    a->ctx.mq = a->agent.mq;
    if (dyno_mq_subscribe(a->agent.mq, "dyno/v1/agents/container/+/status", 1, md_reg_on_status,
                          &a->ctx.reg) != 0) {
        dyno_error("cannot set up MQTT subscriptions", NULL);
        return -1;
    }
    a->house.pending_timeout = a->cfg.pending_timeout;
    a->house.mq = a->agent.mq;
    if (md_house_start(&a->house) != 0)
        return -1;
    return dyno_agent_serve(&a->agent, NULL, md_rpc_methods, md_rpc_nmethods, &a->ctx,
                            (int)a->cfg.rpc_threads);
}

static int md_started(void *arg)
{
    struct md_main *a = arg;
    const struct md_cfg *cfg = &a->cfg;
    char q[600];
    dyno_info("serving",
              "db=%s containers=%zu rpc_threads=%lld repair_grace=%lld repair_lease=%lld repair_rate=%lld",
              dyno_log_q(q, sizeof(q), cfg->db), a->nknown, (long long)cfg->rpc_threads,
              (long long)cfg->repair_grace, (long long)cfg->repair_lease, (long long)cfg->repair_rate);
    return 0;
}

/* The housekeeping thread publishes through the client: it stops before the client goes. */
static void md_stop(void *arg)
{
    struct md_main *a = arg;
    md_house_stop(&a->house);
}

/* After the client and its RPC workers are gone: SQLite last. */
static void md_cleanup(void *arg)
{
    struct md_main *a = arg;
    if (a->ctx_ok)
        md_ctx_fini(&a->ctx);
}

int main(int argc, char **argv)
{
    static struct md_main a;
    const struct dyno_agent_hooks hooks = {
        DYNO_AGENT_HOOKS_STATE("metadata", md_opts, a),
        .interval = 30,
        .setup = md_setup,
        .start = md_start,
        .started = md_started,
        .stop = md_stop,
        .cleanup = md_cleanup,
    };
    return dyno_agent_main(argc, argv, &hooks);
}
