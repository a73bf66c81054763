/*
 * Unit tests of the metadata batch writer (agents/metadata/md_writer.c) on a temporary
 * SQLite file: many threads hand it writes at once; the ones queued behind a running batch
 * run together in the next one, each in its own savepoint: a failing request is rolled
 * back alone, every waiter gets its own result, and the batch commits once. The writer and
 * the store are compiled in (unit tests link only dyno_core) so the test can count the
 * queue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../agents/metadata/md_store.c"
#include "../../agents/metadata/md_writer.c"

#define CLIENTS 12 /* requests queued behind the first batch */

enum kind {
    GOOD,      /* inserts its row, answers its own number */
    REFUSED,   /* inserts its row, then refuses (a DYNO_E* of its own) */
    DUPLICATE, /* inserts a row that exists: SQLite refuses it (a conflict) */
    INNER,     /* a store call's transaction rolled back, then another one kept */
    LOSE_ALL,  /* an error that rolls the whole transaction back (ROLLBACK behind its back) */
};

struct fx {
    char dir[64];
    char path[96];
    pthread_mutex_t lock; /* the process's writer mutex */
    struct md_writer w;
    struct md_db *reader; /* another connection, as an RPC thread's for reads */
    /* the first batch's request holds its batch open until this many are queued */
    size_t hold_until;
};

struct client {
    struct fx *f;
    int id;
    enum kind kind;
    int ret;
    char err[128];
    uint64_t batch;
    int answer; /* what its write answered (its own number times 10) */
    pthread_t thread;
};

static void nap(void)
{
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

static const char SQL_INSERT[] = "INSERT INTO t(k, v) VALUES(?1, ?2)";

static int insert(struct md_db *db, int k, int v)
{
    sqlite3_stmt *st;
    int rc = md__stmt(db, SQL_INSERT, &st);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int(st, 1, k);
    sqlite3_bind_int(st, 2, v);
    return md__step0(st);
}

static size_t queued(struct md_writer *w)
{
    size_t n = 0;
    pthread_mutex_lock(&w->mu);
    for (struct md_wreq *r = w->head; r; r = r->next)
        n++;
    pthread_mutex_unlock(&w->mu);
    return n;
}

static bool leading(struct md_writer *w)
{
    pthread_mutex_lock(&w->mu);
    bool busy = w->busy;
    pthread_mutex_unlock(&w->mu);
    return busy;
}

/* The first batch: writes row 0, then waits (with its batch open) until the others queued. */
static int w_hold(struct md_db *db, void *arg, char *err, size_t errlen)
{
    struct client *c = arg;
    (void)err;
    (void)errlen;
    while (queued(&c->f->w) < c->f->hold_until)
        nap();
    c->answer = c->id * 10;
    return insert(db, 0, 0) == SQLITE_OK ? 0 : DYNO_EIO;
}

static int w_client(struct md_db *db, void *arg, char *err, size_t errlen)
{
    struct client *c = arg;
    int rc;
    switch (c->kind) {
    case GOOD:
        rc = insert(db, c->id, c->id);
        if (rc != SQLITE_OK)
            return md__sqlerr(db, rc, err, errlen);
        c->answer = c->id * 10;
        return 0;
    case REFUSED:
        rc = insert(db, c->id, c->id);
        snprintf(err, errlen, "refused %d", c->id);
        return rc == SQLITE_OK ? DYNO_EINVAL : DYNO_EIO;
    case DUPLICATE:
        /* a store call as md_store.c writes one: begin, step, finish */
        rc = md__begin(db);
        if (rc == SQLITE_OK)
            rc = insert(db, 0, c->id); /* row 0 was committed by the first batch */
        return md__finish(db, 0, rc, err, errlen);
    case INNER:
        rc = md__begin(db);
        if (rc == SQLITE_OK)
            rc = insert(db, c->id, -1);
        md__rollback(db); /* undone: its own savepoint */
        if (rc == SQLITE_OK)
            rc = md__begin(db);
        if (rc == SQLITE_OK)
            rc = insert(db, c->id, c->id);
        if (rc == SQLITE_OK)
            rc = md__commit(db);
        c->answer = c->id * 10;
        return rc == SQLITE_OK ? 0 : md__sqlerr(db, rc, err, errlen);
    case LOSE_ALL:
        rc = insert(db, c->id, c->id);
        sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
        return 0;
    }
    return DYNO_EINTERNAL;
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    c->ret = md_writer_run(&c->f->w, w_client, c, true, &c->batch, c->err, sizeof(c->err));
    return NULL;
}

static void *holder_main(void *arg)
{
    struct client *c = arg;
    c->ret = md_writer_run(&c->f->w, w_hold, c, true, &c->batch, c->err, sizeof(c->err));
    return NULL;
}

static int setup(void **state)
{
    static struct fx f;
    memset(&f, 0, sizeof(f));
    snprintf(f.dir, sizeof(f.dir), "/tmp/dyno-mdwriter-XXXXXX");
    assert_non_null(mkdtemp(f.dir));
    snprintf(f.path, sizeof(f.path), "%s/md.db", f.dir);
    assert_int_equal(pthread_mutex_init(&f.lock, NULL), 0);
    assert_int_equal(md_db_open(f.path, &f.reader), 0);
    md_db_share_writer(f.reader, &f.lock);
    assert_int_equal(
        sqlite3_exec(f.reader->db, "CREATE TABLE t(k INTEGER PRIMARY KEY, v INTEGER)", NULL, NULL, NULL),
        SQLITE_OK);
    assert_int_equal(md_writer_start(&f.w, f.path, &f.lock), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    md_writer_stop(&f->w);
    md_db_close(f->reader);
    pthread_mutex_destroy(&f->lock);
    char p[160];
    const char *sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", f->path, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
    return 0;
}

/* v of row k on the reader's connection, -100 when there is no such row. */
static int row(struct fx *f, int k)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(f->reader->db, "SELECT v FROM t WHERE k = ?1", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int(st, 1, k);
    int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -100;
    sqlite3_finalize(st);
    return v;
}

/* Runs the holder (batch 1), then CLIENTS clients of the given kinds, all queued behind it
 * (so all in batch 2), and waits for every answer. */
static void run_batch_of(struct fx *f, struct client *holder, struct client *c, const enum kind *kinds)
{
    f->hold_until = CLIENTS;
    *holder = (struct client){.f = f, .id = 1000};
    assert_int_equal(pthread_create(&holder->thread, NULL, holder_main, holder), 0);
    /* the holder leads batch 1 before any client queues */
    while (queued(&f->w) != 0 || !leading(&f->w))
        nap();
    for (int i = 0; i < CLIENTS; i++) {
        c[i] = (struct client){.f = f, .id = i + 1, .kind = kinds[i]};
        assert_int_equal(pthread_create(&c[i].thread, NULL, client_main, &c[i]), 0);
    }
    pthread_join(holder->thread, NULL);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(c[i].thread, NULL);
}

/* One refused request, one SQLite refusal and one with a rolled-back inner transaction
 * among good ones, all in the same batch: only the two refused fail, with their own
 * errors; every other waiter gets its own answer; the batch committed the rest at once. */
static void test_one_failure_fails_alone(void **state)
{
    struct fx *f = *state;
    enum kind kinds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        kinds[i] = GOOD;
    kinds[3] = REFUSED;
    kinds[7] = DUPLICATE;
    kinds[9] = INNER;
    struct client holder, c[CLIENTS];
    run_batch_of(f, &holder, c, kinds);

    assert_int_equal(holder.ret, 0);
    assert_int_equal(holder.batch, 1);
    for (int i = 0; i < CLIENTS; i++) {
        /* queued while batch 1 ran: all in batch 2, whatever order they queued in */
        assert_int_equal(c[i].batch, 2);
        if (kinds[i] == REFUSED) {
            assert_int_equal(c[i].ret, DYNO_EINVAL);
            assert_string_equal(c[i].err, "refused 4");
            assert_int_equal(row(f, c[i].id), -100); /* its insert rolled back */
        } else if (kinds[i] == DUPLICATE) {
            assert_int_equal(c[i].ret, DYNO_ECONFLICT);
            assert_int_equal(row(f, 0), 0); /* row 0 as batch 1 wrote it */
        } else {
            assert_int_equal(c[i].ret, 0);
            assert_int_equal(c[i].answer, c[i].id * 10); /* its own answer */
            /* read-your-writes: another connection sees it once answered */
            assert_int_equal(row(f, c[i].id), c[i].id);
        }
    }
    assert_int_equal(f->w.batches, 2);
    assert_int_equal(f->w.requests, CLIENTS + 1);
    assert_int_equal(f->w.max_batch, CLIENTS);
    assert_false(f->w.busy);
    assert_null(f->w.head);
}

/* An error that rolls the whole transaction back (as SQLITE_FULL or SQLITE_IOERR may):
 * nothing of the batch is committed, so every request of it fails, the good ones too, and
 * the writer goes on with the next batch. */
static void test_lost_batch_fails_every_request(void **state)
{
    struct fx *f = *state;
    enum kind kinds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        kinds[i] = GOOD;
    kinds[5] = LOSE_ALL;
    struct client holder, c[CLIENTS];
    run_batch_of(f, &holder, c, kinds);
    assert_int_equal(holder.ret, 0);
    assert_int_equal(row(f, 0), 0);
    for (int i = 0; i < CLIENTS; i++) {
        assert_int_equal(c[i].batch, 2);
        assert_int_equal(c[i].ret, DYNO_EIO);
        assert_string_equal(c[i].err, "metadata database error");
        assert_int_equal(row(f, c[i].id), -100);
    }
    /* the next write works */
    struct client one = {.f = f, .id = 500, .kind = GOOD};
    client_main(&one);
    assert_int_equal(one.ret, 0);
    assert_int_equal(one.batch, 3);
    assert_int_equal(row(f, 500), 500);
}

/* A lone write leads its own batch at once, on the caller's thread; a stopped writer
 * refuses. */
static void test_lone_write_and_stop(void **state)
{
    struct fx *f = *state;
    struct client one = {.f = f, .id = 7, .kind = GOOD};
    client_main(&one);
    assert_int_equal(one.ret, 0);
    assert_int_equal(one.batch, 1);
    assert_int_equal(row(f, 7), 7);
    md_writer_stop(&f->w);
    struct client late = {.f = f, .id = 8, .kind = GOOD};
    client_main(&late);
    assert_int_equal(late.ret, DYNO_EUNAVAIL);
    assert_int_equal(row(f, 8), -100);
}

int main(void)
{
    dyno_log_init("test", DYNO_LOG_ERROR + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_failure_fails_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_batch_fails_every_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lone_write_and_stop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
