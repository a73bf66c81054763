/*
 * The metadata writer: one SQLite connection runs every RPC write, in batches (group
 * commit, docs/architecture.md "Metadata").
 *
 * An RPC worker hands its write over as a function and its argument (md_writer_run) and
 * waits. One batch runs at a time: everything queued (up to MD_WRITER_BATCH_MAX requests)
 * in one BEGIN IMMEDIATE transaction, each request inside a SAVEPOINT of its own (a request
 * that fails is rolled back alone; the store's own md__begin/md__finish become nested
 * savepoints, md_store.h), then one COMMIT, then every waiter is woken with its own result.
 * The commit is synchronous=FULL when any request of the batch is durable, so one fsync of
 * the WAL covers the whole batch, and md_writer_run returns only after it: a request is
 * never answered before its change is on disk. There is no timer: the next batch is what
 * queued while the previous one ran, so a lone request is committed at once.
 *
 * Who runs a batch: a waiting worker, not a thread of its own (leader and followers). A
 * request that finds no batch running leads: it runs the queue itself, its own request
 * first. When its batch has committed it wakes the others of the batch and hands the lead
 * to the first request queued meanwhile, which had to be woken anyway. So a lone write
 * costs no thread switch at all, and a batch of n wakes n - 1 waiters; a writer thread
 * would add two switches to every batch (measured: thread switches were the largest cost
 * of the metadata process). The connection is still used by one thread at a time.
 *
 * Why one connection: SQLite runs one write transaction at a time anyway, and with a
 * connection per RPC thread every commit paid for its own transaction, its own WAL append
 * of the same pages, and a reload of the pages the other connections had changed. One
 * connection keeps its page cache valid, and one transaction writes a page touched by many
 * requests once.
 *
 * Failure: a request's DYNO_E* (its err filled by its function) is its own. When the batch
 * itself cannot be committed (BEGIN or COMMIT fails, or an error such as SQLITE_FULL or
 * SQLITE_IOERR rolls the whole transaction back), every request of the batch that had
 * succeeded fails too, with the mapped error: nothing of it was acknowledged.
 *
 * Threads: md_writer_start / md_writer_stop from one thread while no md_writer_run is in
 * flight (after the RPC workers have stopped); md_writer_run from any other threads. The
 * function passed to it may run on another caller's thread, with the writer's connection:
 * it must not call md_writer_run itself, use thread-local state, nor block on anything that
 * waits for a write.
 */
#ifndef MD_WRITER_H
#define MD_WRITER_H
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "md_store.h"

#define MD_WRITER_BATCH_MAX 256 /* requests one transaction runs at most */

/* A write: runs on the writer thread with db (inside a savepoint) and arg (the caller's,
 * borrowed for the call). 0, or a DYNO_E* with err (errlen bytes) filled; a nonzero
 * return rolls back whatever it changed. */
typedef int (*md_write_fn)(struct md_db *db, void *arg, char *err, size_t errlen);

struct md_wreq; /* one queued request (md_writer.c), on its caller's stack */

struct md_writer {
    struct md_db *db; /* used by the leader of the running batch only */
    pthread_mutex_t mu;
    struct md_wreq *head, *tail; /* queued, not yet in a batch */
    bool busy;                   /* a batch is running (the queue then has a leader to come) */
    bool stop;
    bool started;
    /* Counters, under mu (tests, logs): batches run, requests run, the largest batch. */
    uint64_t batches;
    uint64_t requests;
    size_t max_batch;
};

/*
 * Opens the writer's connection to path (md_db_open; lock: the process's writer mutex,
 * shared with the connections that still write on their own, md_db_share_writer: the
 * housekeeping thread). 0, or DYNO_E* (nothing left open).
 */
int md_writer_start(struct md_writer *w, const char *path, pthread_mutex_t *lock);
/* Closes the connection (nothing may be in flight); later calls are DYNO_EUNAVAIL until
 * started again. No-op when not started. */
void md_writer_stop(struct md_writer *w);
/*
 * Queues fn(arg), waits until the batch it ran in is committed (or failed) and returns
 * fn's result, or the batch's failure (err filled). durable: the change must be on disk
 * before this returns (every write but a pending object's); a batch of only non-durable
 * requests commits with synchronous=NORMAL. *batch (may be NULL) receives the number of
 * the batch it ran in (1, 2, ...), for tests. DYNO_EUNAVAIL when the writer is not running.
 */
int md_writer_run(struct md_writer *w, md_write_fn fn, void *arg, bool durable, uint64_t *batch, char *err,
                  size_t errlen);
#endif
