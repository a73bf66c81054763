/*
 * The pubsub RPC methods (protocol.md §3): catalog.create, .get, .list, .delete;
 * share.add, .remove; subscription.add, .remove, .list; and the event.emit notification.
 * Handlers run in the lib/mq.h worker threads. Every handler validates all of its params
 * before it changes anything: bad input is DYNO_EINVAL and changes nothing.
 */
#ifndef DYNO_PS_RPC_H
#define DYNO_PS_RPC_H
#include <pthread.h>
#include <stddef.h>

#include "mq.h"
#include "ps_store.h"

struct ps_ctx {
    struct ps_store *store;
    struct dyno_mq *mq; /* for the feeds (ps_feed.h); NULL: nothing is published */
    int default_k, default_m;
    pthread_mutex_t feed_mu; /* a change and its policy publish, in order (ps_feed.h) */
};

extern const struct dyno_rpc_method ps_rpc_methods[];
extern const size_t ps_rpc_nmethods;
#endif
