/*
 * The pubsub RPC methods (protocol.md §3): catalog.create, catalog.get, catalog.list and
 * the event.emit notification. Handlers run in the lib/mq.h worker threads.
 */
#ifndef DYNO_PS_RPC_H
#define DYNO_PS_RPC_H
#include <stddef.h>

#include "mq.h"
#include "ps_store.h"

struct ps_ctx {
    struct ps_store *store;
    struct dyno_mq *mq; /* for event.emit */
    int default_k, default_m;
};

extern const struct dyno_rpc_method ps_rpc_methods[];
extern const size_t ps_rpc_nmethods;
#endif
