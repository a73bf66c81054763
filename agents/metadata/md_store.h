/*
 * The metadata store: objects, fragments and containers in SQLite through lib/db.h (WAL,
 * synchronous=FULL, so an acknowledged commit survives kill -9 and a power cut; only
 * object.begin's invisible pending rows are written with synchronous=NORMAL). Pure logic over one connection:
 * no MQTT, no clock (callers pass now), so a unit test can drive it with an in-memory or temp database.
 *
 * Usage accounting is exact: a container's used bytes are the sum of the sizes of its
 * fragment rows that occupy or may occupy space there: 'ok' (including the reservations of
 * pending objects), 'bad', 'lost', 'draining' and 'garbage' (still on disk until deleted),
 * plus its rows in the garbage table (old locations of repaired fragments) and the
 * repair_targets table (reservations of leased repair tasks, md_repair.h). 'missing'
 * fragments were never written and count nothing. Purged rows are gone. The sums are kept
 * per container in a usage table that triggers update in the same transaction as the rows,
 * so placement reads one row per container, whatever the number of objects.
 *
 * Inputs are validated by the RPC layer (md_rpc.c); the store checks state transitions.
 * Every function that changes more than one row does it in one BEGIN IMMEDIATE
 * transaction (a savepoint of the batch writer's transaction when it runs there,
 * md_writer.h) and leaves nothing changed on error. Results are new cJSON objects owned by
 * the caller; errors are DYNO_E* with a message in err.
 *
 * Threads: a struct md_db is used by one thread at a time; open one per thread.
 */
#ifndef DYNO_MD_STORE_H
#define DYNO_MD_STORE_H
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "names.h"

#define MD_URL_MAX 512

/* One container as the registry knows it (from its retained status). */
struct md_node {
    char id[DYNO_SEG_MAX + 1];
    char site[DYNO_SEG_MAX + 1];
    char backend[16];   /* its store (posix, s3, memory) as its status says; not persisted */
    int64_t started_at; /* its process's start time (status started_at); not persisted */
    /* Restarts of a memory-backed container not yet handled by the planner: each one lost
     * every fragment it held (md_repair_tick marks them missing; md_reg_wiped_done). */
    uint64_t wiped;
    char url[MD_URL_MAX + 1];
    int64_t capacity;
    int64_t reported_used;
    int64_t reported_free; /* what the container says it can still store; -1 unknown */
    int64_t reported_fragments;
    int64_t last_seen;
    int64_t offline_since; /* when it was last seen going offline (0: online or unknown) */
    bool online;
    bool dirty; /* registry bookkeeping: not yet written to SQLite */
};

/* Capacity placement may plan with: the configured capacity, lowered to used + what the
 * container reports free when its disk has less room than configured (used is metadata's
 * exact accounting). Placement then skips a container whose disk is full. */
uint64_t md_node_capacity(const struct md_node *nd, uint64_t used);

/* A snapshot of the registry, sorted by id (md_nodes_find bsearches it). */
struct md_nodes {
    struct md_node *v;
    size_t n;
};

const struct md_node *md_nodes_find(const struct md_nodes *nodes, const char *id);

struct md_db;

/* Opens (creating when missing) the database at path with the pragmas above (dyno_db_open).
 * ":memory:" works for tests. 0, DYNO_ENOMEM or DYNO_EIO. */
int md_db_open(const char *path, struct md_db **out);
void md_db_close(struct md_db *db);
/* Makes db's write transactions take writer (a process-wide mutex shared by every
 * connection, which must outlive them) around BEGIN IMMEDIATE .. COMMIT/ROLLBACK; NULL: none
 * (the SQLite lock alone, as in tests). Before the first transaction. */
void md_db_share_writer(struct md_db *db, pthread_mutex_t *writer);

/* A passive WAL checkpoint (never waits for readers or writers): the housekeeping thread
 * runs it so that RPC commits do not. 0 or DYNO_E*. */
int md_store_checkpoint(struct md_db *db);
/* Creates tables, indexes and the usage triggers when missing; a database made before the
 * usage table gets it filled from its rows, once. 0 or DYNO_EIO. Call before other threads
 * open their connections. */
int md_db_schema(struct md_db *db);

struct md_begin_req {
    const char *catalog;
    const char *name; /* NULL: the key */
    /* The publisher (object.begin "publisher"): who stores it; it grants nothing. */
    const char *owner;
    int64_t size; /* -1: unknown */
    int k, m;
    bool replica;
    uint32_t unit;
    /* The catalog's "site_spread": "relaxed" (true) lets placement, repair and drain put
     * more than m fragments on one site when the sites are too few; strict refuses. */
    bool site_relaxed;
};

/* Places and records a pending object (result: key, unit, fragments). */
int md_store_begin(struct md_db *db, const struct md_begin_req *r, const struct md_nodes *nodes, int64_t now,
                   cJSON **result, char *err, size_t errlen);

/*
 * Reservations (object.reserve): a gateway places small objects ahead, in batches, so that
 * no object.begin sits on a put's critical path. A reservation is a pending object with
 * catalog "" (no real catalog is empty) and owner = the holder (the gateway's id), its
 * fragments placed and sized for size bytes; the commit gives it its catalog, name,
 * publisher and unit (md_store_commit_resv). Unused ones are released (object.release),
 * those of a dead holder when it reserves again with fresh (its new incarnation), and any
 * left over at pending_timeout like every pending object.
 */
struct md_resv_req {
    const char *holder; /* a valid segment */
    int64_t size;       /* bytes each reserved object may hold at most */
    int k, m;
    bool replica;
    uint32_t unit;
    int count;  /* objects to reserve */
    bool fresh; /* first call of a holder's incarnation: older reservations go first */
};
/* result: {objects:[{key, unit, k, m, fragments:[{index, container, url}]}], released}. */
int md_store_reserve(struct md_db *db, const struct md_resv_req *r, const struct md_nodes *nodes, int64_t now,
                     cJSON **result, char *err, size_t errlen);
/* Drops the never-used reservations among keys held by holder (rows deleted: no bytes were
 * sent under them); others (used, not its own) are left alone. *count: dropped. */
int md_store_release(struct md_db *db, const char *holder, const char *const *keys, size_t nkeys, int *count,
                     char *err, size_t errlen);
/* The identity a reservation takes at its commit. */
struct md_resv_commit {
    const char *catalog;
    const char *name; /* NULL: the key */
    const char *publisher;
    int k, m;
    bool replica;
    uint32_t unit;
};

#define MD_ATTRS_MAX 8192 /* an object's attributes, bytes of JSON (object.commit "attrs") */

struct md_commit_frag {
    int index;
    bool ok;
    int64_t size;
};

/* Commits a pending object; result as md_store_get plus "replaced" when a same-name
 * object was superseded. Committing an already committed object again returns it. */
int md_store_commit(struct md_db *db, const char *key, int64_t size, const char *sha256,
                    const struct md_commit_frag *frags, size_t nfrags, const struct md_nodes *nodes,
                    int64_t now, cJSON **result, char *err, size_t errlen);
/* md_store_commit of a reservation (resv: its identity; NULL: a plain pending object).
 * A reservation committed without resv, or a plain object with it, is DYNO_ECONFLICT. */
int md_store_commit_resv(struct md_db *db, const char *key, const struct md_resv_commit *resv, int64_t size,
                         const char *sha256, const struct md_commit_frag *frags, size_t nfrags,
                         const struct md_nodes *nodes, int64_t now, cJSON **result, char *err, size_t errlen);
/* md_store_commit_resv that also records the object's attributes: attrs is a JSON object's
 * text (the caller checked it), or NULL for none. object.get shows it back as "attrs". */
int md_store_commit_attrs(struct md_db *db, const char *key, const struct md_resv_commit *resv,
                          const char *attrs, int64_t size, const char *sha256,
                          const struct md_commit_frag *frags, size_t nfrags, const struct md_nodes *nodes,
                          int64_t now, cJSON **result, char *err, size_t errlen);
/* md_store_commit_attrs with object.commit's "dedupe": when the catalog already has a visible
 * object of this name with the same size and sha256, key is not committed but moved to
 * deleting (as md_store_abort does) and result is that object plus "duplicate": true.
 * A repeat of such a commit answers the same. Without dedupe, md_store_commit_attrs. */
int md_store_commit_opts(struct md_db *db, const char *key, const struct md_resv_commit *resv,
                         const char *attrs, bool dedupe, int64_t size, const char *sha256,
                         const struct md_commit_frag *frags, size_t nfrags, const struct md_nodes *nodes,
                         int64_t now, cJSON **result, char *err, size_t errlen);
/* Pending (or already deleting) -> deleting; result: fragments to delete. */
int md_store_abort(struct md_db *db, const char *key, const struct md_nodes *nodes, cJSON **result, char *err,
                   size_t errlen);
/* A committed or degraded object, else DYNO_ENOTFOUND. */
int md_store_get(struct md_db *db, const char *key, const struct md_nodes *nodes, cJSON **result, char *err,
                 size_t errlen);
/* md_store_get of the visible object named name in catalog (S3 keys), else DYNO_ENOTFOUND. */
int md_store_get_by_name(struct md_db *db, const char *catalog, const char *name,
                         const struct md_nodes *nodes, cJSON **result, char *err, size_t errlen);
/* after may be NULL; 1 <= limit <= 1000. md_store_list_page without a delimiter. */
int md_store_list(struct md_db *db, const char *catalog, const char *after, const char *prefix, int limit,
                  cJSON **result, char *err, size_t errlen);

#define MD_LIST_TOKEN_MAX DYNO_NAME_MAX /* a prefix, after or delimiter at most (bytes) */
/*
 * A page of a catalog's visible objects in name order (bytewise, as S3 lists), the S3 way:
 * names that start with prefix, after the name after (exclusive), and, with a delimiter,
 * every name whose rest after the prefix holds the delimiter rolled up into one entry, its
 * common prefix (prefix + the rest up to and with the first delimiter), listed once in
 * "prefixes". The read seeks past a listed group instead of reading the names under it.
 * Strings are UTF-8 of at most MD_LIST_TOKEN_MAX bytes (the RPC checks them).
 */
struct md_list_req {
    const char *catalog;
    const char *after;     /* NULL or "": from the start. An after that is a common prefix of
                            * this listing (a "next" that ended on a group) skips its group. */
    const char *prefix;    /* NULL or "": every name */
    const char *delimiter; /* NULL or "": no roll-up */
    int limit;             /* 1..1000 entries (objects and prefixes together) */
    int64_t *rows;         /* NULL, or receives the rows read (tests: the seek skipped a group) */
};
/* result: {objects:[{key, name, size, sha256, k, m, created_at, committed_at, state}],
 * prefixes:[string], next}: next is the last name or prefix listed when more follow (pass
 * it back as after), else null. 0, DYNO_EINVAL or a storage error. */
int md_store_list_page(struct md_db *db, const struct md_list_req *q, cJSON **result, char *err,
                       size_t errlen);
/* Committed or degraded -> deleting; result: fragments to delete. */
int md_store_evict(struct md_db *db, const char *key, const struct md_nodes *nodes, cJSON **result, char *err,
                   size_t errlen);
/* Drops the deleted fragment rows of a deleting object; the rest become garbage, and the
 * object row goes with its last fragment. */
int md_store_purge(struct md_db *db, const char *key, const int *deleted, size_t ndeleted, cJSON **result,
                   char *err, size_t errlen);
/* problem: "crc" (fragment bad) or "missing"; the object becomes degraded. container: NULL,
 * or the container the reporter read from: when the fragment's row names another container
 * (the report is about a stale copy), or when the fragment is already missing or already in
 * the reported state, nothing changes and the result says "ignored":true.
 * events: NULL or an array that receives the object.degraded event.emit params when the
 * object went from committed to degraded. */
int md_store_report(struct md_db *db, const char *key, int index, const char *problem, const char *container,
                    cJSON *events, cJSON **result, char *err, size_t errlen);
/* containers:[...] with state online|offline|draining, usage, fragment counts and, per
 * container, "repairing" (its fragments waiting for repair) and "garbage" (rows to delete). */
int md_store_containers(struct md_db *db, const struct md_nodes *nodes, cJSON **result, char *err,
                        size_t errlen);
int md_store_catalog_stats(struct md_db *db, const char *catalog, cJSON **result, char *err, size_t errlen);
/* Pending objects created before cutoff become deleting (their fragments garbage). */
int md_store_reap(struct md_db *db, int64_t cutoff, int *count);

/* Writes the containers of nodes (all of them) in one transaction. */
int md_store_save_containers(struct md_db *db, const struct md_node *v, size_t n);
/* Reads every known container (online false); *out is the caller's (free). */
int md_store_load_containers(struct md_db *db, struct md_node **out, size_t *n);

/* ---- internal to agents/metadata (md_repair.c builds on the same connection) ---------- */

#include <sqlite3.h>

/* Fragment states that still need a healthy copy elsewhere: the repair planner rebuilds them. */
#define MD__NEEDS_REPAIR "('lost','bad','missing','draining')"

/* The row facts the state machines need. */
struct md__obj {
    char state[16];
    char catalog[DYNO_CATALOG_MAX + 1];
    char name[DYNO_NAME_MAX + 1];
    char owner[DYNO_SEG_MAX + 1];
    char sha256[65];
    int64_t size;
    int k, m;
    uint32_t unit;
    bool replica;
    bool site_relaxed; /* objects.site_spread = 1 */
};

/* A reset cached statement for sql, a static string (its address is the cache key). */
int md__stmt(struct md_db *db, const char *sql, sqlite3_stmt **out);
/* md__stmt with key bound as ?1 (SQLITE_STATIC: key must outlive the statement's use). */
int md__stmt_key(struct md_db *db, const char *sql, const char *key, sqlite3_stmt **out);
/* Steps st once (dyno_db_step) and resets it; SQLITE_OK or the SQLite code. */
int md__step0(sqlite3_stmt *st);
/* Runs sql (no result rows) with ?1 = key and, when it has a ?2, v2; *changes (may be NULL)
 * receives the rows changed. SQLite code. */
int md__run_key(struct md_db *db, const char *sql, const char *key, int64_t v2, int *changes);
/* BEGIN IMMEDIATE at synchronous=FULL; a read transaction; COMMIT (rolled back when it
 * fails); ROLLBACK when a transaction is open. SQLite codes (dyno_db_begin/end). Inside a
 * batch (md__batch_begin) each is a savepoint instead (SAVEPOINT / RELEASE / ROLLBACK TO),
 * so a store call keeps its all-or-nothing rule and the batch commits it with the others. */
int md__begin(struct md_db *db);
int md__begin_read(struct md_db *db);
int md__commit(struct md_db *db);
void md__rollback(struct md_db *db);
/* dyno_db_err(), except that a constraint (objects_by_name: a name taken meanwhile) is
 * DYNO_ECONFLICT ("conflicting change, retry"). */
int md__sqlerr(struct md_db *db, int rc, char *err, size_t errlen);
/* Ends a store call's write transaction (dyno_db_tx_finish with md__sqlerr's mapping):
 * commits when ret is 0 and rc SQLITE_OK, else rolls back; returns ret when nonzero, else 0
 * or the mapped failure of the step or of the COMMIT. */
int md__finish(struct md_db *db, int ret, int rc, char *err, size_t errlen);
/* The object row; SQLITE_NOTFOUND when absent. */
int md__obj_get(struct md_db *db, const char *key, struct md__obj *o);
/* The prologue of a write on one object: md__begin, then its row into o. Returns
 * DYNO_ENOTFOUND ("no object <key>" in err) when there is none, else 0 with *rc the SQLite
 * result; either way the call ends through md__finish. */
int md__begin_obj(struct md_db *db, const char *key, struct md__obj *o, int *rc, char *err, size_t errlen);
/*
 * The batch writer's transaction (md_writer.c), on its own connection: md__batch_begin
 * takes the writer mutex and opens BEGIN IMMEDIATE, at synchronous=FULL when durable, else
 * NORMAL; md__batch_mark opens one request's savepoint and md__batch_unmark ends it, kept
 * or rolled back (with every savepoint its store call left open); md__batch_end commits
 * (commit true) or rolls back, and releases the mutex. SQLite codes; md__batch_mark and
 * md__batch_unmark return SQLITE_ABORT when an error has already rolled the whole
 * transaction back (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM may), and md__batch_end then
 * rolls back whatever commit says.
 */
int md__batch_begin(struct md_db *db, bool durable);
int md__batch_mark(struct md_db *db);
int md__batch_unmark(struct md_db *db, bool keep);
int md__batch_end(struct md_db *db, bool commit);
/* A result object holding one empty array member named array (*arr); NULL with "out of
 * memory" in err. */
cJSON *md__result_new(const char *array, cJSON **arr, char *err, size_t errlen);
/* The epilogue of a read: ends the read transaction, then hands res to *result when rc is
 * SQLITE_OK (returns 0), else frees it and returns rc mapped by md__sqlerr. */
int md__read_end(struct md_db *db, int rc, cJSON *res, cJSON **result, char *err, size_t errlen);
int md__obj_set_state(struct md_db *db, const char *key, const char *state);

/* A container's accounting (the usage table; zeros for one without rows) and drain flag. */
struct md__usage {
    int64_t used;      /* exact bytes (see the accounting rule above) */
    int64_t fragments; /* fragment rows that occupy room */
    int64_t repairing; /* fragment rows waiting for repair (MD__NEEDS_REPAIR) */
    int64_t garbage;   /* rows of the garbage table */
    bool draining;
};
int md__usage(struct md_db *db, const char *id, struct md__usage *u);
/* *rows: containers whose usage row differs from the sums recomputed from the fragment,
 * garbage and repair_targets rows (0 when the accounting is exact). A full scan: for tests
 * and diagnosis. SQLite code. */
int md__usage_drift(struct md_db *db, int64_t *rows);
/* n of an object: m + 1 replicas, else k + m. */
int md__obj_n(const struct md__obj *o);
/* The event.emit params {"type","catalog","object":{key,name,size,sha256}} appended to events
 * (NULL: nothing). */
void md__event(cJSON *events, const char *type, const char *key, const struct md__obj *o);
#endif
