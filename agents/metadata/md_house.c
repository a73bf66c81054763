/* The housekeeping thread of dyno-metadata (md_house.h). */
#include "md_house.h"

#include <dynostore/error.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "md_repair.h"
#include "md_store.h"
#include "mq.h"

#define MD_TICK_EVERY 2 /* s between passes of the repair planner */

static void *house__main(void *arg)
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
                else
                    for (size_t i = 0; i < nodes.n; i++)
                        if (nodes.v[i].wiped && nodes.v[i].online)
                            md_reg_wiped_done(&h->ctx->reg, nodes.v[i].id, nodes.v[i].wiped);
                md_rpc_emit(h->ctx, events);
                free(nodes.v);
            }
            cJSON_Delete(events);
            next_tick = now + MD_TICK_EVERY;
        }
    }
    return NULL;
}

int md_house_open(struct md_house *h, struct md_ctx *ctx)
{
    char q[600];
    h->ctx = ctx;
    if (md_ctx_db(ctx, &h->db) != 0 || md_db_schema(h->db) != 0) {
        dyno_error("cannot open the database", "db=%s", dyno_log_q(q, sizeof(q), ctx->db_path));
        return DYNO_EIO;
    }
    return 0;
}

int md_house_start(struct md_house *h)
{
    if (pthread_create(&h->thread, NULL, house__main, h) != 0) {
        dyno_error("cannot start the housekeeping thread", NULL);
        return DYNO_EINTERNAL;
    }
    h->started = true;
    return 0;
}

void md_house_stop(struct md_house *h)
{
    if (!h->started)
        return;
    md_reg_stop(&h->ctx->reg);
    pthread_join(h->thread, NULL);
    h->started = false;
}
