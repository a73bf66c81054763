/*
 * The container registry: what the retained statuses on dyno/v1/agents/container/+/status
 * say, in memory under a mutex. The MQTT loop thread feeds it (parse, update, mark dirty:
 * never SQLite); RPC workers take sorted snapshots; the housekeeping thread writes dirty
 * entries to SQLite so a restart still knows every container's url.
 */
#ifndef DYNO_MD_REG_H
#define DYNO_MD_REG_H
#include <pthread.h>
#include <stdbool.h>

#include "md_store.h"
#include "mq.h"

#define MD_REG_MAX 4096           /* containers remembered at most (bounds memory against a flood) */
#define MD_STATUS_MAX (64 * 1024) /* largest status payload parsed */

struct md_reg {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled when an entry becomes dirty or on stop */
    struct md_node *v; /* sorted by id */
    size_t n, cap;
    bool dirty;
    bool stop;
};

int md_reg_init(struct md_reg *r);
void md_reg_fini(struct md_reg *r);
/* Adds the containers known from SQLite (all offline until their status arrives). */
int md_reg_load(struct md_reg *r, const struct md_node *v, size_t n);
/* dyno_mq_msg_fn for dyno/v1/agents/container/+/status; arg is the registry. Loop thread. */
void md_reg_on_status(void *arg, const struct dyno_mq_msg *msg);
/* Copies the registry into out (sorted by id); out->v is the caller's (free). A container
 * whose last status is older than MD_STATUS_STALE seconds is offline in the copy. */
int md_reg_snapshot(struct md_reg *r, struct md_nodes *out);
/* Waits up to timeout_ms for dirty entries or stop; copies and clears the dirty ones.
 * Returns false once stopped. */
bool md_reg_wait_dirty(struct md_reg *r, int timeout_ms, struct md_nodes *out);
void md_reg_stop(struct md_reg *r);
/* The planner handled seen restarts of memory container id (md_node.wiped of its snapshot). */
void md_reg_wiped_done(struct md_reg *r, const char *id, uint64_t seen);
#endif
