/* Unit tests of the volume backend of the container's store (agents/container/store_volume.c):
 * records and replacement, tombstones, small <-> large moves between volumes and files,
 * rebuild at open, a torn tail record ignored, group commit under many threads, and
 * compaction with readers and writers running.
 * The unit test target links only dyno_core, so the agent's sources are compiled in here. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../agents/container/store.c"
#include "../../agents/container/store_posix.c"
#include "../../agents/container/store_volume.c"

#define KEY "0123456789abcdef0123456789abcdef"

static char *tv_mkdtemp(void)
{
    char *d = strdup("/tmp/dyno-test-vol-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void tv_rm_rf(const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static void tv_id(char *out, unsigned n)
{
    snprintf(out, STORE_ID_MAX + 1, "%08x%s.%u", n, KEY + 8, n % 256);
}

static void tv_fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

static int tv_put(struct store *s, const char *id, const uint8_t *data, size_t len, uint64_t *old)
{
    struct store_put *p = NULL;
    uint64_t size = 0;
    int rc = store_put_begin(s, id, &p);
    if (rc)
        return rc;
    size_t half = len / 2;
    rc = store_put_write(s, p, data, half);
    if (rc == 0)
        rc = store_put_write(s, p, data + half, len - half);
    if (rc) {
        store_put_abort(s, p);
        return rc;
    }
    rc = store_put_commit(s, p, &size, old);
    if (rc == 0)
        assert_int_equal(size, len);
    return rc;
}

/* Reads id whole through an open handle and compares with the expected bytes. */
static void tv_expect(struct store *s, const char *id, const uint8_t *want, size_t len)
{
    struct store_read *r = NULL;
    uint64_t size = 0;
    assert_int_equal(store_open_read(s, id, &r, &size), 0);
    assert_int_equal(size, len);
    uint8_t *buf = malloc(len + 16);
    size_t got = 0;
    assert_int_equal(store_read_at(s, r, 0, buf, len + 16, &got), 0);
    assert_int_equal(got, len);
    assert_memory_equal(buf, want, len);
    store_read_close(s, r);
    free(buf);
}

static struct store_volume_opts tv_opts(void)
{
    struct store_volume_opts o;
    store_volume_defaults(&o);
    o.small_max = 8192;
    o.volume_max = 256 * 1024;
    o.compact_min = 16 * 1024;
    o.compact_interval_ms = 3600 * 1000; /* the tests call compaction themselves */
    return o;
}

static struct store *tv_open(const char *dir)
{
    struct store_volume_opts o = tv_opts();
    struct store *s = NULL;
    char err[256];
    assert_int_equal(store_volume_open(dir, &o, &s, err, sizeof(err)), 0);
    return s;
}

static int tv_count_id(void *arg, const char *id, uint64_t size)
{
    (void)id;
    (void)size;
    (*(size_t *)arg)++;
    return 0;
}

/* Bytes the volume files take (their sizes). */
static uint64_t tv_volume_bytes(const char *dir)
{
    char vd[512];
    snprintf(vd, sizeof(vd), "%s/vol", dir);
    DIR *d = opendir(vd);
    assert_non_null(d);
    uint64_t total = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, 0) != 0)
            continue;
        total += (uint64_t)st.st_blocks * 512;
    }
    closedir(d);
    return total;
}

static bool tv_file_exists(const char *dir, const char *id)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%.2s/%s", dir, id, id);
    return stat(path, &st) == 0;
}

static void records_tombstones_and_restart(void **state)
{
    (void)state;
    char *dir = tv_mkdtemp();
    struct store *s = tv_open(dir);
    uint8_t a[3000], b[5000], big[20000];
    char id1[40], id2[40], id3[40];
    tv_fill(a, sizeof(a), 1);
    tv_fill(b, sizeof(b), 2);
    tv_fill(big, sizeof(big), 3);
    tv_id(id1, 1);
    tv_id(id2, 2);
    tv_id(id3, 3);
    uint64_t old = 99, used = 0, frags = 0, size = 0;

    assert_int_equal(tv_put(s, id1, a, sizeof(a), &old), 0);
    assert_int_equal(old, 0);
    assert_false(tv_file_exists(dir, id1)); /* small: in a volume */
    assert_int_equal(tv_put(s, id1, b, sizeof(b), &old), 0);
    assert_int_equal(old, sizeof(a));
    tv_expect(s, id1, b, sizeof(b));
    assert_int_equal(tv_put(s, id2, a, sizeof(a), NULL), 0);
    assert_int_equal(tv_put(s, id3, big, sizeof(big), NULL), 0);
    assert_true(tv_file_exists(dir, id3)); /* large: a file */
    store_usage(s, &used, &frags);
    assert_int_equal(used, sizeof(b) + sizeof(a) + sizeof(big));
    assert_int_equal(frags, 3);
    assert_int_equal(store_remove(s, id2, &size), 0);
    assert_int_equal(size, sizeof(a));
    assert_int_equal(store_remove(s, id2, &size), DYNO_ENOTFOUND);
    assert_int_equal(store_stat(s, id2, &size), DYNO_ENOTFOUND);
    /* small -> large: the file replaces the record; large -> small: stays a file */
    char id4[40];
    tv_id(id4, 4);
    assert_int_equal(tv_put(s, id4, a, sizeof(a), NULL), 0);
    assert_int_equal(tv_put(s, id4, big, sizeof(big), &old), 0);
    assert_int_equal(old, sizeof(a));
    tv_expect(s, id4, big, sizeof(big));
    assert_int_equal(tv_put(s, id3, b, sizeof(b), &old), 0);
    assert_int_equal(old, sizeof(big));
    tv_expect(s, id3, b, sizeof(b));
    store_free(s);

    /* rebuilt from the volumes: the newest record of each id, the tombstones applied */
    s = tv_open(dir);
    tv_expect(s, id1, b, sizeof(b));
    assert_int_equal(store_stat(s, id2, &size), DYNO_ENOTFOUND);
    tv_expect(s, id3, b, sizeof(b));
    tv_expect(s, id4, big, sizeof(big));
    store_usage(s, &used, &frags);
    assert_int_equal(used, sizeof(b) + sizeof(b) + sizeof(big));
    assert_int_equal(frags, 3);
    size_t n = 0;
    assert_int_equal(store_scan(s, tv_count_id, &n), 0);
    assert_int_equal(n, 3);
    store_free(s);
    tv_rm_rf(dir);
    free(dir);
}

/* The volume that holds the records of a fresh store: the newest .vol file. */
static void tv_last_volume(const char *dir, char *out, size_t cap)
{
    char vd[512];
    snprintf(vd, sizeof(vd), "%s/vol", dir);
    DIR *d = opendir(vd);
    assert_non_null(d);
    char best[300] = "";
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strstr(de->d_name, ".vol") && strcmp(de->d_name, best) > 0)
            snprintf(best, sizeof(best), "%s", de->d_name);
    closedir(d);
    assert_true(best[0] != '\0');
    snprintf(out, cap, "%s/%s", vd, best);
}

static void torn_tail_ignored(void **state)
{
    (void)state;
    char *dir = tv_mkdtemp();
    struct store *s = tv_open(dir);
    uint8_t a[1000], b[2000], c[3000];
    char ida[40], idb[40], idc[40], idd[40];
    tv_fill(a, sizeof(a), 5);
    tv_fill(b, sizeof(b), 6);
    tv_fill(c, sizeof(c), 7);
    tv_id(ida, 10);
    tv_id(idb, 11);
    tv_id(idc, 12);
    tv_id(idd, 13);
    assert_int_equal(tv_put(s, ida, a, sizeof(a), NULL), 0);
    assert_int_equal(tv_put(s, idb, b, sizeof(b), NULL), 0);
    assert_int_equal(tv_put(s, idc, c, sizeof(c), NULL), 0);
    store_free(s);

    /* A crash in the middle of c's append: its record is cut short. */
    char path[600];
    tv_last_volume(dir, path, sizeof(path));
    off_t cut = (off_t)(VOL_HDR + sizeof(a) + VOL_HDR + sizeof(b) + VOL_HDR + 100);
    assert_int_equal(truncate(path, cut), 0);
    s = tv_open(dir);
    tv_expect(s, ida, a, sizeof(a));
    tv_expect(s, idb, b, sizeof(b));
    uint64_t size;
    assert_int_equal(store_stat(s, idc, &size), DYNO_ENOTFOUND);
    /* the rest of the torn record is gone from the file, and new puts land after it */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, (off_t)(VOL_HDR + sizeof(a) + VOL_HDR + sizeof(b)));
    assert_int_equal(tv_put(s, idd, c, sizeof(c), NULL), 0);
    store_free(s);

    /* A flipped byte in the last record's payload: its CRC fails, it is not served. */
    tv_last_volume(dir, path, sizeof(path));
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, VOL_HDR + 10, SEEK_SET), 0);
    assert_int_equal(fputc(0x5a ^ c[10], f), 0x5a ^ c[10]);
    fclose(f);
    s = tv_open(dir);
    tv_expect(s, ida, a, sizeof(a));
    tv_expect(s, idb, b, sizeof(b));
    assert_int_equal(store_stat(s, idd, &size), DYNO_ENOTFOUND);
    store_free(s);

    /* A flipped byte in a record with valid ones after it is damage, not a torn tail: the
     * record stays (the fragment's CRCs catch it when served, repair replaces it) and so
     * does every record after it. */
    char first[600];
    snprintf(first, sizeof(first), "%s/vol/0000000001.vol", dir);
    f = fopen(first, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, VOL_HDR + 10, SEEK_SET), 0);
    assert_int_equal(fputc(0x5a ^ a[10], f), 0x5a ^ a[10]);
    fclose(f);
    s = tv_open(dir);
    assert_int_equal(store_stat(s, ida, &size), 0);
    assert_int_equal(size, sizeof(a));
    tv_expect(s, idb, b, sizeof(b));
    store_free(s);
    tv_rm_rf(dir);
    free(dir);
}

#define TV_THREADS 16
#define TV_PUTS 40

struct tv_worker {
    struct store *s;
    unsigned t;
    pthread_barrier_t *go;
    int rc;
};

static void *tv_worker_main(void *arg)
{
    struct tv_worker *w = arg;
    uint8_t buf[1500];
    char id[40];
    pthread_barrier_wait(w->go);
    for (unsigned i = 0; i < TV_PUTS && w->rc == 0; i++) {
        unsigned n = w->t * 1000 + i;
        tv_fill(buf, sizeof(buf), n);
        tv_id(id, n);
        w->rc = tv_put(w->s, id, buf, sizeof(buf), NULL);
    }
    return NULL;
}

static void group_commit_many_threads(void **state)
{
    (void)state;
    char *dir = tv_mkdtemp();
    struct store *s = tv_open(dir);
    pthread_t th[TV_THREADS];
    struct tv_worker w[TV_THREADS];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, TV_THREADS);
    for (unsigned t = 0; t < TV_THREADS; t++) {
        w[t] = (struct tv_worker){.s = s, .t = t, .go = &go};
        assert_int_equal(pthread_create(&th[t], NULL, tv_worker_main, &w[t]), 0);
    }
    for (unsigned t = 0; t < TV_THREADS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(w[t].rc, 0);
    }
    pthread_barrier_destroy(&go);
    uint64_t records = 0, syncs = 0;
    store_volume_stats(s, &records, &syncs);
    assert_int_equal(records, TV_THREADS * TV_PUTS);
    /* one fdatasync served several commits: far fewer syncs than records */
    assert_true(syncs > 0);
    assert_true(syncs < records);
    store_free(s);
    /* the metrics ask every store: another backend answers 0 and 0 */
    char err[256];
    assert_int_equal(store_posix_open(dir, &s, err, sizeof(err)), 0);
    store_volume_stats(s, &records, &syncs);
    assert_int_equal(records, 0);
    assert_int_equal(syncs, 0);
    store_free(s);
    s = tv_open(dir);
    uint8_t buf[1500];
    char id[40];
    for (unsigned t = 0; t < TV_THREADS; t++)
        for (unsigned i = 0; i < TV_PUTS; i++) {
            tv_fill(buf, sizeof(buf), t * 1000 + i);
            tv_id(id, t * 1000 + i);
            tv_expect(s, id, buf, sizeof(buf));
        }
    store_free(s);
    tv_rm_rf(dir);
    free(dir);
}

#define TV_N 300
#define TV_LEN 4000

struct tv_churn {
    struct store *s;
    volatile bool stop;
    unsigned puts;
    int rc;
};

/* Puts and removes ids 100000.. while compaction runs; reads its own puts back. */
static void *tv_churn_main(void *arg)
{
    struct tv_churn *c = arg;
    uint8_t buf[TV_LEN];
    char id[40];
    for (unsigned i = 0; !c->stop && c->rc == 0 && i < 200; i++) {
        unsigned n = 100000 + i;
        tv_fill(buf, sizeof(buf), n);
        tv_id(id, n);
        c->rc = tv_put(c->s, id, buf, sizeof(buf), NULL);
        if (c->rc == 0 && i % 2 == 0)
            c->rc = store_remove(c->s, id, NULL);
        c->puts = i + 1;
    }
    return NULL;
}

static void compaction_with_readers_and_writers(void **state)
{
    (void)state;
    char *dir = tv_mkdtemp();
    struct store *s = tv_open(dir);
    uint8_t buf[TV_LEN];
    char id[40];
    for (unsigned n = 0; n < TV_N; n++) {
        tv_fill(buf, sizeof(buf), n);
        tv_id(id, n);
        assert_int_equal(tv_put(s, id, buf, sizeof(buf), NULL), 0);
    }
    /* a reader opens id 1 before its volume goes */
    struct store_read *r = NULL;
    uint64_t size;
    tv_id(id, 1);
    assert_int_equal(store_open_read(s, id, &r, &size), 0);
    /* most of it dies: removes, and replacements of every 10th */
    for (unsigned n = 0; n < TV_N; n++) {
        tv_id(id, n);
        if (n % 10 == 0) {
            tv_fill(buf, sizeof(buf), n + 7);
            assert_int_equal(tv_put(s, id, buf, sizeof(buf), NULL), 0);
        } else if (n % 10 != 5) {
            assert_int_equal(store_remove(s, id, NULL), 0);
        }
    }
    uint64_t before = tv_volume_bytes(dir);
    struct tv_churn churn = {.s = s};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, tv_churn_main, &churn), 0);
    int done = store_volume_compact(s);
    churn.stop = true;
    pthread_join(th, NULL);
    assert_int_equal(churn.rc, 0);
    assert_true(done > 0);
    /* the open reader still reads what it opened */
    uint8_t got_buf[TV_LEN];
    size_t got = 0;
    assert_int_equal(store_read_at(s, r, 0, got_buf, sizeof(got_buf), &got), 0);
    assert_int_equal(got, TV_LEN);
    tv_fill(buf, sizeof(buf), 1);
    assert_memory_equal(got_buf, buf, TV_LEN);
    store_read_close(s, r);
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned n = 0; n < TV_N; n++) {
            tv_id(id, n);
            if (n % 10 == 0 || n % 10 == 5) {
                tv_fill(buf, sizeof(buf), n % 10 == 0 ? n + 7 : n);
                tv_expect(s, id, buf, sizeof(buf));
            } else {
                assert_int_equal(store_stat(s, id, &size), DYNO_ENOTFOUND);
            }
        }
        for (unsigned i = 0; i < churn.puts; i++) {
            unsigned n = 100000 + i;
            tv_id(id, n);
            if (i % 2 == 0) {
                assert_int_equal(store_stat(s, id, &size), DYNO_ENOTFOUND);
            } else {
                tv_fill(buf, sizeof(buf), n);
                tv_expect(s, id, buf, sizeof(buf));
            }
        }
        if (pass == 0) {
            store_free(s);
            s = tv_open(dir); /* the same after a restart */
        }
    }
    /* with the churn's garbage compacted too, the volumes hold little more than the live data */
    while (store_volume_compact(s) > 0) {
    }
    uint64_t after = tv_volume_bytes(dir);
    assert_true(after < before);
    store_free(s);
    tv_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(records_tombstones_and_restart),
        cmocka_unit_test(torn_tail_ignored),
        cmocka_unit_test(group_commit_many_threads),
        cmocka_unit_test(compaction_with_readers_and_writers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
