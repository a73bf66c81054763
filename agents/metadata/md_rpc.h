/*
 * The metadata RPC methods (protocol.md §3): parse and validate params, then call the
 * store with a per-thread SQLite connection and a snapshot of the container registry.
 * Handlers run in the lib/mq.h worker threads.
 */
#ifndef DYNO_MD_RPC_H
#define DYNO_MD_RPC_H
#include <pthread.h>
#include <stddef.h>

#include "md_reg.h"
#include "md_repair.h"
#include "md_store.h"
#include "mq.h"

struct md_ctx {
    const char *db_path;
    struct md_reg reg;
    struct md_repair repair;
    struct dyno_mq *mq;     /* set before serving: events go to pubsub through it */
    pthread_key_t dbkey;    /* this thread's struct md_db */
    pthread_mutex_t mu;     /* guards dbs */
    pthread_mutex_t writer; /* one write transaction at a time (md_db_share_writer) */
    struct md_sync sync;    /* group commit of the durable transactions (md_db_share_sync) */
    struct md_db **dbs;     /* every connection opened, closed by md_ctx_fini */
    size_t ndbs, capdbs;
};

int md_ctx_init(struct md_ctx *ctx, const char *db_path, const struct md_repair_cfg *repair);
/* Closes every connection; call after the workers have stopped. */
void md_ctx_fini(struct md_ctx *ctx);
/* The calling thread's connection, opened on first use. */
int md_ctx_db(struct md_ctx *ctx, struct md_db **out);

/* Sends every event.emit params object of events to pubsub (notifications; a failure is
 * logged). Any thread but the MQTT loop thread. */
void md_rpc_emit(struct md_ctx *ctx, const cJSON *events);

extern const struct dyno_rpc_method md_rpc_methods[];
extern const size_t md_rpc_nmethods;
#endif
