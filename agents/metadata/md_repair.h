/*
 * Healing (docs/protocol.md §8): the repair planner, the garbage-collection plan, container
 * drain and the metadata restore. Metadata PLANS, a repair worker (in the gateway process)
 * EXECUTES: it claims a task, rebuilds the listed fragments from any k healthy sources onto
 * the target containers chosen here, and reports the outcome; it also deletes the garbage
 * fragments it is handed and reports them deleted.
 *
 * Fragment states (the fragments table, md_store.h):
 *   ok --(container offline > repair_grace)--> lost --(container back, no lease)--> ok
 *   ok --(object.report crc | missing)------> bad | missing
 *   ok --(container.drain)-------------------> draining
 *   lost | bad | missing | draining --(repair.complete ok)--> ok at the new container; the
 *     old location becomes a row of the garbage table (not for 'missing': nothing is there)
 *   garbage --(gc.complete ok)--> deleted
 * An object is 'degraded' while any of its fragments is not ok, 'committed' when all n are.
 *
 * Leases live in SQLite (table repairs), so a restart of metadata or of the worker resumes:
 * an expired lease is handed out again and the targets it reserved become garbage (the old
 * worker may have written them). Every target container holds no row of the object (live,
 * garbage or reserved), so a garbage row never names a live fragment's location.
 *
 * Time is a parameter everywhere (unix seconds), so the unit tests drive it.
 * Threads: struct md_repair is shared by the RPC workers and the housekeeping thread (its
 * mutex guards the rate window); a struct md_db is the calling thread's own.
 * Results are new cJSON objects owned by the caller; errors are DYNO_E* with err filled.
 * events (may be NULL) receives event.emit params ({"type","catalog","object":{...}}) of
 * object.degraded / object.repaired transitions, once per transition, after the commit.
 */
#ifndef DYNO_MD_REPAIR_H
#define DYNO_MD_REPAIR_H
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "md_store.h"

#define MD_STATUS_STALE 15  /* s: a container status older than 3 intervals of 5 s = offline */
#define MD_REPAIR_BATCH 256 /* objects changed per transaction by a marking pass */
#define MD_REPAIR_RETRY 10  /* s before an object that could not be handed out is looked at again */
#define MD_REPAIR_SCAN 64   /* degraded objects one claim looks at */
#define MD_GC_MAX 1000      /* items per gc.claim / gc.complete */
#define MD_RESTORE_MAX 1000 /* objects per object.restore */

struct md_repair_cfg {
    int64_t grace; /* s a container stays offline before its fragments are lost (repair_grace) */
    int64_t lease; /* s a claimed task stays leased (repair_lease) */
    int64_t rate;  /* tasks handed out per second at most (repair_rate) */
};

struct md_repair {
    struct md_repair_cfg cfg;
    pthread_mutex_t mu; /* serializes claims and guards the rate window */
    int64_t window;     /* the second the count is for */
    int64_t handed;
};

int md_repair_init(struct md_repair *r, const struct md_repair_cfg *cfg);
void md_repair_fini(struct md_repair *r);

/*
 * The planner's periodic pass, in this order: expired leases are released (their targets
 * become garbage) and repair rows of objects that are no longer degraded are dropped; 'ok'
 * fragments on containers offline for at least grace become 'lost' (offline time counts
 * from max(offline_since, observed_since)); 'ok' fragments on draining containers become
 * 'draining'; 'lost' fragments on containers that are online again and whose object has no
 * lease become 'ok' again ('draining' on a draining container), and an object whose n
 * fragments are all ok is committed again.
 * observed_since: since when the registry has been fed without a break (the broker
 * connection's start); 0 means not connected, and then nothing is marked lost: without
 * statuses, silence proves nothing.
 */
int md_repair_tick(struct md_repair *r, struct md_db *db, const struct md_nodes *nodes, int64_t now,
                   int64_t observed_since, cJSON *events);

/* repair.claim: result {"task": null} or {"task": {...}} (protocol.md §8). Bounded by cfg.rate
 * per second. An object with fewer than k healthy sources is not handed out: it is flagged
 * unrecoverable (logged once) and looked at again after MD_REPAIR_RETRY. */
int md_repair_claim(struct md_repair *r, struct md_db *db, const struct md_nodes *nodes, const char *worker,
                    int64_t now, cJSON **result, char *err, size_t errlen);

struct md_repair_result {
    int index;
    bool ok;
    const char *container;
    int64_t size; /* -1: the reserved size */
};

/* repair.complete. DYNO_ECONFLICT when task_id is not the object's current lease (expired and
 * handed out again, or completed); DYNO_EINVAL when a result names no target of the task. */
int md_repair_complete(struct md_repair *r, struct md_db *db, const char *task_id, const char *key,
                       const struct md_repair_result *res, size_t nres, int64_t now, cJSON *events,
                       cJSON **result, char *err, size_t errlen);

/* repair.status: {degraded_objects, lost_fragments, leased_tasks, repaired_total, unrecoverable,
 * garbage_fragments, draining:[id...]}. */
int md_repair_status(struct md_db *db, int64_t now, cJSON **result, char *err, size_t errlen);

/* container.drain: marks id draining and its ok fragments 'draining' (objects degraded).
 * DYNO_ENOTFOUND when the registry does not know id. Idempotent. */
int md_repair_drain(struct md_db *db, const struct md_nodes *nodes, const char *id, int64_t now,
                    cJSON *events, cJSON **result, char *err, size_t errlen);

/* gc.claim: up to limit (1..MD_GC_MAX) items {key, index, container, url} on online containers:
 * rows of the garbage table and fragments of deleting objects. */
int md_repair_gc_claim(struct md_db *db, const struct md_nodes *nodes, int limit, cJSON **result, char *err,
                       size_t errlen);

struct md_gc_item {
    const char *key;
    int index;
    const char *container;
    bool ok;
};

/* gc.complete: drops the rows of ok items (and a deleting object's row with its last
 * fragment); result {removed, objects_removed}. */
int md_repair_gc_complete(struct md_db *db, const struct md_gc_item *items, size_t n, cJSON **result,
                          char *err, size_t errlen);

struct md_restore_frag {
    int index;
    const char *container;
    int64_t size;
};

struct md_restore_obj {
    const char *key, *catalog, *name, *owner, *sha256;
    int64_t size;
    int k, m;
    bool replica;
    uint32_t unit;
    const struct md_restore_frag *frags; /* distinct indexes < n */
    size_t nfrags;
};

/*
 * object.restore: inserts objects rebuilt from fragment headers and trailers, in one
 * transaction: committed when all n fragments are given, else degraded (absent indexes are
 * 'missing'). committed_at stays null: that marks a restored object. Existing keys are
 * skipped. A name taken by another visible object: an object committed by a put (non-null
 * committed_at) always wins; between two restored objects the greater key wins, whatever the
 * order they arrive in (the loser's rows are dropped, its fragment files are left alone).
 * Result {restored:[key], skipped:[key], conflicts:[{key, catalog, name, kept}]}.
 */
int md_repair_restore(struct md_db *db, const struct md_restore_obj *objs, size_t n, int64_t now,
                      cJSON **result, char *err, size_t errlen);
#endif
