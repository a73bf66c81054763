/*
 * The housekeeping thread of dyno-metadata: writes container changes to SQLite as they come
 * (off the MQTT loop thread), checkpoints the WAL, aborts pending objects older than
 * pending_timeout and runs the repair planner's periodic pass (md_repair_tick).
 *
 * Threads: md_house_start and md_house_stop from the main thread; the thread opens its own
 * connection (md_ctx_db).
 */
#ifndef MD_HOUSE_H
#define MD_HOUSE_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "md_rpc.h"

struct md_house {
    struct md_ctx *ctx;
    struct md_db *db; /* the thread's connection; it also made the schema */
    int64_t pending_timeout;
    struct dyno_mq *mq; /* statuses are heard only while it is connected */
    pthread_t thread;
    bool started;
};

/* Opens h->db and creates the schema, before anyone else uses the database. 0 or DYNO_E*
 * (logged). */
int md_house_open(struct md_house *h, struct md_ctx *ctx);
/* Starts the thread (h->pending_timeout and h->mq set). 0 or DYNO_EINTERNAL (logged). */
int md_house_start(struct md_house *h);
/* Stops the registry's wait (md_reg_stop) and joins the thread. No-op when not started. */
void md_house_stop(struct md_house *h);
#endif
