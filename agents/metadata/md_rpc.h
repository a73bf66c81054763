/*
 * The metadata RPC methods (protocol.md §3): parse and validate params, then call the
 * store with a snapshot of the container registry: a write through the batch writer
 * (md_writer.h: one connection, one commit for every write queued together), a read on the
 * worker's own SQLite connection (WAL: readers never wait for the writer, and a read that
 * starts after a write was answered sees it). Handlers run in the lib/mq.h worker threads.
 */
#ifndef DYNO_MD_RPC_H
#define DYNO_MD_RPC_H
#include <pthread.h>
#include <stddef.h>

#include "md_reg.h"
#include "md_repair.h"
#include "md_store.h"
#include "md_writer.h"
#include "mq.h"

struct md_ctx {
    const char *db_path;
    struct md_reg reg;
    struct md_repair repair;
    struct dyno_mq *mq;     /* set before serving: events go to pubsub through it */
    pthread_key_t dbkey;    /* this thread's struct md_db */
    pthread_mutex_t mu;     /* guards dbs */
    pthread_mutex_t writer; /* one write transaction at a time (md_db_share_writer) */
    struct md_writer wr;    /* runs every RPC write (md_writer.h) */
    struct md_db **dbs;     /* every connection opened, closed by md_ctx_fini */
    size_t ndbs, capdbs;
};

/* Also starts the writer thread (its connection opened on db_path). 0 or DYNO_E*. */
int md_ctx_init(struct md_ctx *ctx, const char *db_path, const struct md_repair_cfg *repair);
/* Stops the writer and closes every connection; call after the workers have stopped. */
void md_ctx_fini(struct md_ctx *ctx);
/* The calling thread's connection, opened on first use: for reads, and for the
 * housekeeping thread's own passes (which take the writer mutex per transaction). */
int md_ctx_db(struct md_ctx *ctx, struct md_db **out);

/* Sends every event.emit params object of events to pubsub (notifications; a failure is
 * logged). Any thread but the MQTT loop thread. */
void md_rpc_emit(struct md_ctx *ctx, const cJSON *events);

extern const struct dyno_rpc_method md_rpc_methods[];
extern const size_t md_rpc_nmethods;
#endif
