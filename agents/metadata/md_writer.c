/* The metadata writer: batched RPC writes on one connection (md_writer.h). */
#include "md_writer.h"

#include <dynostore/error.h>
#include <stdio.h>
#include <string.h>

#include "crashpoint.h"
#include "log.h"

struct md_wreq {
    md_write_fn fn;
    void *arg;
    bool durable;
    char *err;
    size_t errlen;
    int ret;
    bool done; /* its batch ended: ret and err are final */
    bool lead; /* it runs the next batch */
    uint64_t batch;
    pthread_cond_t cv; /* its caller waits on it for done or lead */
    struct md_wreq *next;
};

/* Fails every request of the batch that had succeeded: the batch was not committed. The
 * first such request gets the mapped SQLite error (md__sqlerr logs it once); the others
 * the same code and message. */
static void writer__fail_batch(struct md_db *db, struct md_wreq *list, int rc)
{
    int code = 0;
    const char *msg = "";
    for (struct md_wreq *r = list; r; r = r->next) {
        if (r->ret != 0)
            continue;
        if (code == 0) {
            code = md__sqlerr(db, rc, r->err, r->errlen);
            msg = r->err;
        } else {
            snprintf(r->err, r->errlen, "%s", msg);
        }
        r->ret = code;
    }
}

/* Runs one batch: every request in its own savepoint of one transaction, then one COMMIT.
 * Sets each request's ret (and err). The leader's thread, without the mutex. */
static void writer__run_batch(struct md_writer *w, struct md_wreq *list)
{
    bool durable = false;
    for (struct md_wreq *r = list; r; r = r->next)
        durable = durable || r->durable;
    int rc = md__batch_begin(w->db, durable);
    if (rc != SQLITE_OK) {
        for (struct md_wreq *r = list; r; r = r->next)
            r->ret = 0;
        writer__fail_batch(w->db, list, rc);
        return;
    }
    bool lost = false;
    for (struct md_wreq *r = list; r; r = r->next) {
        r->ret = 0;
        if (lost)
            continue; /* failed with the others below */
        rc = md__batch_mark(w->db);
        if (rc != SQLITE_OK) {
            lost = true;
            continue;
        }
        r->err[0] = '\0';
        r->ret = r->fn(w->db, r->arg, r->err, r->errlen);
        rc = md__batch_unmark(w->db, r->ret == 0);
        if (rc != SQLITE_OK)
            lost = true;
    }
    if (lost) {
        md__batch_end(w->db, false);
        writer__fail_batch(w->db, list, rc == SQLITE_OK ? SQLITE_ABORT : rc);
        return;
    }
    /* Every request has run and none is answered: a crash here loses them all, and each
     * of their callers sees no answer (protocol.md: a put without an answer is unknown). */
    dyno_crash_point("metadata.batch.before_commit");
    rc = md__batch_end(w->db, true);
    if (rc != SQLITE_OK)
        writer__fail_batch(w->db, list, rc);
}

int md_writer_start(struct md_writer *w, const char *path, pthread_mutex_t *lock)
{
    memset(w, 0, sizeof(*w));
    int rc = md_db_open(path, &w->db);
    if (rc != 0)
        return rc;
    md_db_share_writer(w->db, lock);
    if (pthread_mutex_init(&w->mu, NULL) != 0) {
        md_db_close(w->db);
        return DYNO_EINTERNAL;
    }
    w->started = true;
    return 0;
}

void md_writer_stop(struct md_writer *w)
{
    if (!w->started)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_mutex_unlock(&w->mu);
    dyno_debug("metadata writer stopped", "batches=%llu requests=%llu max_batch=%zu",
               (unsigned long long)w->batches, (unsigned long long)w->requests, w->max_batch);
    pthread_mutex_destroy(&w->mu);
    md_db_close(w->db);
    w->db = NULL;
    w->started = false;
}

/* The leader's turn: takes what is queued (its own request first), runs it as one batch
 * without the mutex, then wakes every request of it and hands the lead to the first one
 * queued meanwhile. Called and returns with w->mu held. */
static void writer__lead(struct md_writer *w)
{
    struct md_wreq *list = w->head, *last = list;
    size_t n = 1;
    while (last->next && n < MD_WRITER_BATCH_MAX) {
        last = last->next;
        n++;
    }
    w->head = last->next;
    if (!w->head)
        w->tail = NULL;
    last->next = NULL;
    uint64_t id = ++w->batches;
    pthread_mutex_unlock(&w->mu);

    writer__run_batch(w, list);

    pthread_mutex_lock(&w->mu);
    w->requests += n;
    if (n > w->max_batch)
        w->max_batch = n;
    for (struct md_wreq *r = list, *next; r; r = next) {
        next = r->next;
        r->batch = id;
        r->done = true;
        pthread_cond_signal(&r->cv); /* it wakes once the mutex is released */
    }
    /* What queued while this batch ran is the next batch; its first request leads it
     * (it had to be woken anyway). */
    if (w->head) {
        w->head->lead = true;
        pthread_cond_signal(&w->head->cv);
    } else {
        w->busy = false;
    }
}

int md_writer_run(struct md_writer *w, md_write_fn fn, void *arg, bool durable, uint64_t *batch, char *err,
                  size_t errlen)
{
    char dummy[8];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    if (!w->started) {
        snprintf(err, errlen, "metadata writer not running");
        return DYNO_EUNAVAIL;
    }
    struct md_wreq r = {.fn = fn, .arg = arg, .durable = durable, .err = err, .errlen = errlen};
    if (pthread_cond_init(&r.cv, NULL) != 0) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    pthread_mutex_lock(&w->mu);
    if (w->stop) {
        pthread_mutex_unlock(&w->mu);
        pthread_cond_destroy(&r.cv);
        snprintf(err, errlen, "metadata writer stopping");
        return DYNO_EUNAVAIL;
    }
    if (w->tail)
        w->tail->next = &r;
    else
        w->head = &r;
    w->tail = &r;
    /* Nobody is running a batch: the queue was empty, so this request is its head. */
    if (!w->busy) {
        w->busy = true;
        r.lead = true;
    }
    while (!r.done && !r.lead)
        pthread_cond_wait(&r.cv, &w->mu);
    if (!r.done)
        writer__lead(w); /* r is the head of the queue: in the batch it runs */
    pthread_mutex_unlock(&w->mu);
    pthread_cond_destroy(&r.cv);
    if (batch)
        *batch = r.batch;
    return r.ret;
}
