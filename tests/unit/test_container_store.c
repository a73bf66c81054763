/* Unit tests of the container's fragment store (agents/container/store.c, store_posix.c,
 * store_memory.c) and its LRU cache (cache.c): ids, put/commit/abort, replace accounting,
 * remove, scan at open, temp cleanup, and cache bounds, LRU order and epoch-guarded inserts.
 * The store cases run over every backend (struct test_backend, cmocka's prestate); checks
 * of files on disk are made only for the backends that have files.
 * The unit test target links only dyno_core, so the agent's sources are compiled in here. */
#define _GNU_SOURCE /* before any header, as store_posix.c needs it (sync_file_range) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../agents/container/cache.c"
#include "../../agents/container/store.c"
#include "../../agents/container/store_memory.c"
#include "../../agents/container/store_posix.c"
#include "../../agents/container/store_s3.c"
#include <signal.h>
#include <sys/wait.h>

#define KEY "0123456789abcdef0123456789abcdef"

/* A backend under test: how to open it on a folder, and what it keeps. */
struct test_backend {
    const char *name;
    bool files;    /* fragments are files under dir (path and tmp checks apply) */
    bool durable;  /* a reopened store finds what was committed */
    bool versions; /* an open reader keeps its version through a replace or remove (s3: it
                      gets DYNO_EIO instead, never other bytes) */
    int (*open)(const char *dir, struct store **out, char *err, size_t errlen);
};

static int test_open_memory(const char *dir, struct store **out, char *err, size_t errlen)
{
    (void)dir;
    return store_memory_open(64 * 1024 * 1024, out, err, errlen);
}

static void test_rm_rf(const char *path);

/* The s3 backend runs against a real s3rver (tests/s3/node_modules, scripts/install-deps.sh)
 * started once for the whole run on an ephemeral port with a temp folder, stopped by pid. */
static pid_t test_s3_pid = -1;
static char test_s3_url[64], test_s3_dir[64], test_s3_secret[96];
static int test_s3_seq;

static int test_s3_start(void **state)
{
    (void)state;
    char bin[1024], *dir = strdup(__FILE__);
    snprintf(bin, sizeof(bin), "%s/../s3/node_modules/.bin/s3rver", dirname(dir));
    free(dir);
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "s3rver not installed (%s): run scripts/install-deps.sh\n", bin);
        return -1; /* the s3 cases fail: the backend is not tested */
    }
    snprintf(test_s3_dir, sizeof(test_s3_dir), "/tmp/dyno-test-s3-XXXXXX");
    assert_non_null(mkdtemp(test_s3_dir));
    snprintf(test_s3_secret, sizeof(test_s3_secret), "%s.secret", test_s3_dir);
    FILE *f = fopen(test_s3_secret, "w");
    assert_non_null(f);
    fputs("S3RVER\n", f);
    fclose(f);
    /* its log goes to a file: a pipe closed after the first line would kill it (EPIPE) */
    char log[128];
    snprintf(log, sizeof(log), "%s.log", test_s3_dir);
    test_s3_pid = fork();
    assert_true(test_s3_pid >= 0);
    if (test_s3_pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0)
            dup2(fd, 1);
        /* s3rver's continuation tokens use a cipher node 20's OpenSSL 3 keeps in the legacy
         * provider: without it ListObjectsV2 with continuation answers 500 */
        setenv("NODE_OPTIONS", "--openssl-legacy-provider", 1);
        execl(bin, "s3rver", "-d", test_s3_dir, "-a", "127.0.0.1", "-p", "0", "--configure-bucket", "frags",
              (char *)NULL);
        _exit(127);
    }
    /* "S3rver listening on 127.0.0.1:PORT" */
    for (int i = 0; i < 600 && !test_s3_url[0]; i++) {
        char line[512];
        FILE *out = fopen(log, "r");
        while (out && fgets(line, sizeof(line), out)) {
            char *at = strstr(line, "listening on ");
            if (at) {
                snprintf(test_s3_url, sizeof(test_s3_url), "http://%.40s", at + 13);
                test_s3_url[strcspn(test_s3_url, "\r\n")] = '\0';
            }
        }
        if (out)
            fclose(out);
        if (!test_s3_url[0])
            usleep(50000);
    }
    unlink(log);
    assert_true(test_s3_url[0] != '\0');
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int test_s3_stop(void **state)
{
    (void)state;
    if (test_s3_pid > 0) {
        kill(test_s3_pid, SIGTERM);
        waitpid(test_s3_pid, NULL, 0);
        test_rm_rf(test_s3_dir);
        unlink(test_s3_secret);
    }
    return 0;
}

/* Every open of a new folder is a new prefix of the one bucket; a reopen of the same
 * folder (dir) is the same prefix, so durability is checked like posix's. */
static int test_open_s3(const char *dir, struct store **out, char *err, size_t errlen)
{
    char prefix[128];
    (void)test_s3_seq;
    snprintf(prefix, sizeof(prefix), "t/%s/", strrchr(dir, '/') + 1);
    struct store_s3_opts o = {.endpoint = test_s3_url,
                              .bucket = "frags",
                              .prefix = prefix,
                              .region = "us-east-1",
                              .access_key = "S3RVER",
                              .secret_file = test_s3_secret,
                              .part_size = 5 * 1024 * 1024,
                              .list_max = 2};
    if (test_s3_pid <= 0) {
        snprintf(err, errlen, "no s3rver");
        return DYNO_EIO;
    }
    return store_s3_open(&o, out, err, errlen);
}

static const struct test_backend test_posix = {"posix", true, true, true, store_posix_open};
static const struct test_backend test_memory = {"memory", false, false, true, test_open_memory};
static const struct test_backend test_s3 = {"s3", false, true, false, test_open_s3};

static char *test_mkdtemp(void)
{
    char *d = strdup("/tmp/dyno-test-store-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void test_rm_rf(const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static size_t test_count_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void test_put(struct store *s, const char *id, const char *data, size_t len, uint64_t *old)
{
    struct store_put *p = NULL;
    uint64_t size = 0;
    assert_int_equal(store_put_begin(s, id, &p), 0);
    /* in two writes, the second larger than the write buffer when len is big */
    size_t half = len / 2;
    assert_int_equal(store_put_write(s, p, data, half), 0);
    assert_int_equal(store_put_write(s, p, data + half, len - half), 0);
    assert_int_equal(store_put_commit(s, p, &size, old), 0);
    assert_int_equal(size, len);
}

static void valid_ids(void **state)
{
    (void)state;
    char key[DYNO_KEY_LEN + 1];
    unsigned index = 99;
    assert_true(store_valid_id(KEY ".0", key, &index));
    assert_string_equal(key, KEY);
    assert_int_equal(index, 0);
    assert_true(store_valid_id(KEY ".255", NULL, &index));
    assert_int_equal(index, 255);
    assert_false(store_valid_id(KEY ".256", NULL, NULL));
    assert_false(store_valid_id(KEY ".01", NULL, NULL));
    assert_false(store_valid_id(KEY ".", NULL, NULL));
    assert_false(store_valid_id(KEY, NULL, NULL));
    assert_false(store_valid_id(KEY ".1/", NULL, NULL));
    assert_false(store_valid_id("0123456789ABCDEF0123456789abcdef.1", NULL, NULL));
    assert_false(store_valid_id("../3456789abcdef0123456789abcdef.1", NULL, NULL));
    assert_false(store_valid_id(KEY "0.1", NULL, NULL));
    assert_false(store_valid_id(NULL, NULL, NULL));
}

static void put_get_replace_remove(void **state)
{
    const struct test_backend *b = *state;
    char *dir = test_mkdtemp();
    char err[256], path[512];
    struct store *s = NULL;
    uint64_t used = 1, frags = 1, old = 9, size = 0;

    assert_int_equal(b->open(dir, &s, err, sizeof(err)), 0);
    store_usage(s, &used, &frags);
    assert_int_equal(used, 0);
    assert_int_equal(frags, 0);

    size_t big = 700 * 1024; /* over the write buffer */
    char *data = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)(i * 7);
    test_put(s, KEY ".1", data, big, &old);
    assert_int_equal(old, 0);
    if (b->files) {
        snprintf(path, sizeof(path), "%s/01/" KEY ".1", dir);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal((uint64_t)st.st_size, big);
    }

    struct store_read *r = NULL;
    assert_int_equal(store_open_read(s, KEY ".1", &r, &size), 0);
    assert_int_equal(size, big);
    char buf[100];
    size_t got = 0;
    assert_int_equal(store_read_at(s, r, 1000, buf, sizeof(buf), &got), 0);
    assert_int_equal(got, sizeof(buf));
    assert_memory_equal(buf, data + 1000, sizeof(buf));
    assert_int_equal(store_read_at(s, r, big - 10, buf, sizeof(buf), &got), 0);
    assert_int_equal(got, 10);

    /* replace with a smaller version: usage moves by the difference; the open reader
     * still sees the version it opened */
    test_put(s, KEY ".1", "hello", 5, &old);
    assert_int_equal(old, big);
    store_usage(s, &used, &frags);
    assert_int_equal(used, 5);
    assert_int_equal(frags, 1);
    if (b->versions) {
        assert_int_equal(store_read_at(s, r, 0, buf, 5, &got), 0);
        assert_memory_equal(buf, data, 5);
    } else {
        assert_int_equal(store_read_at(s, r, 0, buf, 5, &got), DYNO_EIO);
    }
    store_read_close(s, r);
    assert_int_equal(store_stat(s, KEY ".1", &size), 0);
    assert_int_equal(size, 5);

    test_put(s, KEY ".2", "abc", 3, NULL);
    store_usage(s, &used, &frags);
    assert_int_equal(used, 8);
    assert_int_equal(frags, 2);

    assert_int_equal(store_remove(s, KEY ".1", &size), 0);
    assert_int_equal(size, 5);
    assert_int_equal(store_remove(s, KEY ".1", &size), DYNO_ENOTFOUND);
    assert_int_equal(store_stat(s, KEY ".1", &size), DYNO_ENOTFOUND);
    assert_int_equal(store_open_read(s, KEY ".1", &r, &size), DYNO_ENOTFOUND);
    store_usage(s, &used, &frags);
    assert_int_equal(used, 3);
    assert_int_equal(frags, 1);

    /* bad ids never reach the file system */
    struct store_put *p = NULL;
    assert_int_equal(store_put_begin(s, "../../etc/passwd", &p), DYNO_EINVAL);
    assert_null(p);

    /* a reader keeps the version it opened through a remove too */
    test_put(s, KEY ".4", "kept", 4, NULL);
    assert_int_equal(store_open_read(s, KEY ".4", &r, &size), 0);
    assert_int_equal(store_remove(s, KEY ".4", NULL), 0);
    if (b->versions) {
        assert_int_equal(store_read_at(s, r, 0, buf, sizeof(buf), &got), 0);
        assert_int_equal(got, 4);
        assert_memory_equal(buf, "kept", 4);
    } else {
        assert_int_equal(store_read_at(s, r, 0, buf, sizeof(buf), &got), DYNO_EIO);
    }
    store_read_close(s, r);

    /* an empty fragment is a fragment */
    test_put(s, KEY ".5", "", 0, NULL);
    assert_int_equal(store_stat(s, KEY ".5", &size), 0);
    assert_int_equal(size, 0);
    store_usage(s, &used, &frags);
    assert_int_equal(used, 3);
    assert_int_equal(frags, 2);

    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s/tmp", dir);
    store_free(s); /* with its spare temp files: no temp file is left of the puts */
    if (b->files)
        assert_int_equal(test_count_files(tmp), 0);
    free(data);
    test_rm_rf(dir);
    free(dir);
}

static void abort_leaves_nothing(void **state)
{
    const struct test_backend *b = *state;
    char *dir = test_mkdtemp();
    char err[256], tmp[512];
    struct store *s = NULL;
    struct store_put *p = NULL;
    uint64_t used = 1, frags = 1, size;

    assert_int_equal(b->open(dir, &s, err, sizeof(err)), 0);
    assert_int_equal(store_put_begin(s, KEY ".3", &p), 0);
    assert_int_equal(store_put_write(s, p, "partial", 7), 0);
    snprintf(tmp, sizeof(tmp), "%s/tmp", dir);
    if (b->files)
        assert_true(test_count_files(tmp) >= 1);
    assert_int_equal(store_stat(s, KEY ".3", &size), DYNO_ENOTFOUND); /* not visible before commit */
    store_put_abort(s, p);
    assert_int_equal(store_stat(s, KEY ".3", &size), DYNO_ENOTFOUND);
    store_usage(s, &used, &frags);
    assert_int_equal(used, 0);
    assert_int_equal(frags, 0);
    store_free(s); /* removes the spares: a temp file the abort left would remain */
    if (b->files)
        assert_int_equal(test_count_files(tmp), 0);
    test_rm_rf(dir);
    free(dir);
}

static int count_cb(void *arg, const char *id, uint64_t size)
{
    uint64_t *acc = arg;
    assert_true(store_valid_id(id, NULL, NULL));
    acc[0]++;
    acc[1] += size;
    return 0;
}

static void reopen_scans_and_clears_tmp(void **state)
{
    (void)state;
    char *dir = test_mkdtemp();
    char err[256], path[512];
    struct store *s = NULL;
    uint64_t used = 0, frags = 0;

    assert_int_equal(store_posix_open(dir, &s, err, sizeof(err)), 0);
    test_put(s, KEY ".0", "0123456789", 10, NULL);
    test_put(s, "ff23456789abcdef0123456789abcdef.7", "xy", 2, NULL);
    store_free(s);

    /* leftovers of a crash, and files that are not fragments */
    snprintf(path, sizeof(path), "%s/tmp/" KEY ".0.abcdef", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("junk", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/01/notes.txt", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);

    assert_int_equal(store_posix_open(dir, &s, err, sizeof(err)), 0);
    store_usage(s, &used, &frags);
    assert_int_equal(used, 12);
    assert_int_equal(frags, 2);
    uint64_t acc[2] = {0, 0};
    assert_int_equal(store_scan(s, count_cb, acc), 0);
    assert_int_equal(acc[0], 2);
    assert_int_equal(acc[1], 12);
    /* the leftover is gone (spare temp files may already be there) */
    snprintf(path, sizeof(path), "%s/tmp/" KEY ".0.abcdef", dir);
    assert_int_not_equal(access(path, F_OK), 0);
    store_free(s);
    /* closing the store removes its spare temp files */
    snprintf(path, sizeof(path), "%s/tmp", dir);
    assert_int_equal(test_count_files(path), 0);
    test_rm_rf(dir);
    free(dir);
}

/* Puts start on temp files created ahead by the spare thread; many puts in a row (more
 * than the spares) all land, and nothing is left in tmp afterwards. */
static void spare_temp_files(void **state)
{
    (void)state;
    char *dir = test_mkdtemp();
    char err[256], path[512], id[64];
    struct store *s = NULL;

    assert_int_equal(store_posix_open(dir, &s, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/tmp", dir);
    for (int i = 0; i < 200 && test_count_files(path) == 0; i++)
        usleep(5000);
    assert_true(test_count_files(path) > 0); /* the spares are made ahead */
    for (int i = 0; i < 40; i++) {
        snprintf(id, sizeof(id), "%02x23456789abcdef0123456789abcdef.%d", i, i % 5);
        test_put(s, id, "spare", 5, NULL);
    }
    struct store_put *p = NULL;
    assert_int_equal(store_put_begin(s, KEY ".9", &p), 0);
    assert_int_equal(store_put_write(s, p, "abc", 3), 0);
    store_put_abort(s, p);
    uint64_t used = 0, frags = 0;
    store_usage(s, &used, &frags);
    assert_int_equal(frags, 40);
    assert_int_equal(used, 200);
    store_free(s);
    assert_int_equal(test_count_files(path), 0);
    test_rm_rf(dir);
    free(dir);
}

static void unusable_dir(void **state)
{
    (void)state;
    char *dir = test_mkdtemp();
    char err[256] = "", path[512];
    struct store *s = NULL;

    snprintf(path, sizeof(path), "%s/file", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(store_posix_open(path, &s, err, sizeof(err)), DYNO_EIO);
    assert_null(s);
    assert_non_null(strstr(err, "Not a directory"));

    snprintf(path, sizeof(path), "%s/a/b/c", dir); /* missing folders are created */
    assert_int_equal(store_posix_open(path, &s, err, sizeof(err)), 0);
    store_free(s);
    test_rm_rf(dir);
    free(dir);
}

/* The memory backend keeps nothing across a reopen: a restarted container registers
 * empty and repair refills it. */
static void memory_reopen_is_empty(void **state)
{
    (void)state;
    char err[256];
    struct store *s = NULL;
    uint64_t used = 1, frags = 1, size;
    assert_int_equal(store_memory_open(1024, &s, err, sizeof(err)), 0);
    test_put(s, KEY ".0", "0123456789", 10, NULL);
    store_free(s);
    assert_int_equal(store_memory_open(1024, &s, err, sizeof(err)), 0);
    store_usage(s, &used, &frags);
    assert_int_equal(used, 0);
    assert_int_equal(frags, 0);
    assert_int_equal(store_stat(s, KEY ".0", &size), DYNO_ENOTFOUND);
    store_free(s);
    assert_int_equal(store_memory_open(0, &s, err, sizeof(err)), DYNO_EINVAL);
    assert_null(s);
}

/* The byte limit holds committed data and puts in progress together: a write past it is
 * DYNO_ENOSPC and, once aborted, changes nothing; a replace needs room for both versions
 * only while it is in progress. */
static void memory_bound(void **state)
{
    (void)state;
    char err[256], big[1000];
    struct store *s = NULL;
    struct store_put *p = NULL, *q = NULL;
    uint64_t used = 0, frags = 0, size = 0;
    memset(big, 'b', sizeof(big));

    assert_int_equal(store_memory_open(1000, &s, err, sizeof(err)), 0);
    test_put(s, KEY ".0", big, 600, NULL);
    assert_int_equal(store_put_begin(s, KEY ".1", &p), 0);
    assert_int_equal(store_put_write(s, p, big, 300), 0);
    assert_int_equal(store_put_write(s, p, big, 101), DYNO_ENOSPC); /* 600 + 401 > 1000 */
    /* a second put sees the first one's bytes as taken */
    assert_int_equal(store_put_begin(s, KEY ".2", &q), 0);
    assert_int_equal(store_put_write(s, q, big, 101), DYNO_ENOSPC);
    store_put_abort(s, q);
    store_put_abort(s, p);
    store_usage(s, &used, &frags);
    assert_int_equal(used, 600);
    assert_int_equal(frags, 1);
    assert_int_equal(store_stat(s, KEY ".1", &size), DYNO_ENOTFOUND);
    /* the exact remainder fits */
    test_put(s, KEY ".1", big, 400, NULL);
    store_usage(s, &used, NULL);
    assert_int_equal(used, 1000);
    /* after a remove the room is there again */
    assert_int_equal(store_remove(s, KEY ".0", &size), 0);
    assert_int_equal(size, 600);
    test_put(s, KEY ".0", big, 600, NULL);
    store_usage(s, &used, &frags);
    assert_int_equal(used, 1000);
    assert_int_equal(frags, 2);
    store_free(s);
}

/* s3: a fragment over the part size goes up as a multipart upload, invisible until commit,
 * reads back byte-identical by ranges; an aborted multipart leaves nothing; a reopen
 * counts what is there through a listing of several pages (list_max 2). */
static void s3_multipart_and_reopen(void **state)
{
    (void)state;
    char *dir = test_mkdtemp();
    char err[256];
    struct store *s = NULL;
    struct store_put *p = NULL;
    uint64_t used = 0, frags = 0, size = 0;
    size_t big = 12 * 1024 * 1024 + 3; /* three parts of 5 MiB, the last short */
    uint8_t *data = malloc(big), *back = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 131 + (i >> 12));

    assert_int_equal(test_open_s3(dir, &s, err, sizeof(err)), 0);
    assert_int_equal(store_put_begin(s, KEY ".7", &p), 0);
    for (size_t off = 0; off < big; off += 300 * 1024) {
        size_t n = big - off < 300 * 1024 ? big - off : 300 * 1024;
        assert_int_equal(store_put_write(s, p, data + off, n), 0);
    }
    assert_int_equal(store_stat(s, KEY ".7", &size), DYNO_ENOTFOUND); /* parts are not the object */
    assert_int_equal(store_put_commit(s, p, &size, NULL), 0);
    assert_int_equal(size, big);
    struct store_read *r = NULL;
    assert_int_equal(store_open_read(s, KEY ".7", &r, &size), 0);
    assert_int_equal(size, big);
    size_t got = 0, have = 0;
    while (have < big) { /* uneven reads: some through the window, some straight */
        size_t want = have % 3 ? 70000 : 3 * 1024 * 1024;
        assert_int_equal(store_read_at(s, r, have, back + have, want, &got), 0);
        assert_true(got > 0);
        have += got;
    }
    assert_int_equal(have, big);
    assert_memory_equal(back, data, big);
    store_read_close(s, r);

    assert_int_equal(store_put_begin(s, KEY ".8", &p), 0);
    assert_int_equal(store_put_write(s, p, data, 6 * 1024 * 1024), 0); /* one part sent */
    store_put_abort(s, p);
    assert_int_equal(store_stat(s, KEY ".8", &size), DYNO_ENOTFOUND);

    for (int i = 0; i < 5; i++) {
        char id[64];
        snprintf(id, sizeof(id), "%02x23456789abcdef0123456789abcdef.%d", i, i);
        test_put(s, id, "five!", 5, NULL);
    }
    store_free(s);
    assert_int_equal(test_open_s3(dir, &s, err, sizeof(err)), 0);
    store_usage(s, &used, &frags);
    assert_int_equal(frags, 6);
    assert_int_equal(used, big + 25);
    store_free(s);

    /* bad settings are refused with a message, before any request */
    struct store_s3_opts o = {.endpoint = "ftp://x",
                              .bucket = "frags",
                              .prefix = "",
                              .region = "r",
                              .access_key = "S3RVER",
                              .secret_file = test_s3_secret,
                              .part_size = 5 << 20};
    assert_int_equal(store_s3_open(&o, &s, err, sizeof(err)), DYNO_EINVAL);
    assert_non_null(strstr(err, "s3_endpoint"));
    o.endpoint = test_s3_url;
    o.secret_file = "/nonexistent/secret";
    assert_int_equal(store_s3_open(&o, &s, err, sizeof(err)), DYNO_EINVAL);
    assert_non_null(strstr(err, "s3_secret_file"));
    o.secret_file = test_s3_secret;
    o.bucket = "no-such-bucket";
    assert_int_equal(store_s3_open(&o, &s, err, sizeof(err)), DYNO_ENOTFOUND);
    assert_null(s);
    free(data);
    free(back);
    test_rm_rf(dir);
    free(dir);
}

static uint8_t *test_bytes(size_t n, int fill)
{
    uint8_t *p = malloc(n);
    memset(p, fill, n);
    return p;
}

static void cache_lru_and_epoch(void **state)
{
    (void)state;
    struct container_cache *c = NULL;
    size_t size = 0;

    assert_int_equal(container_cache_new(300, 200, &c), 0);
    uint64_t ep = container_cache_epoch(c);
    container_cache_insert(c, KEY ".0", ep, test_bytes(100, 'a'), 100);
    container_cache_insert(c, KEY ".1", ep, test_bytes(100, 'b'), 100);
    container_cache_insert(c, KEY ".2", ep, test_bytes(250, 'c'), 250); /* over item_max */
    assert_null(container_cache_get(c, KEY ".2"));

    struct container_cache_entry *e = container_cache_get(c, KEY ".0"); /* .0 is now recent */
    assert_non_null(e);
    const uint8_t *d = container_cache_entry_data(e, &size);
    assert_int_equal(size, 100);
    assert_int_equal(d[99], 'a');
    container_cache_insert(c, KEY ".3", ep, test_bytes(150, 'd'), 150); /* evicts .1 (LRU) */
    assert_null(container_cache_get(c, KEY ".1"));
    struct container_cache_entry *e3 = container_cache_get(c, KEY ".3");
    assert_non_null(e3);
    container_cache_release(c, e3);

    /* an entry evicted while referenced stays readable until released */
    container_cache_invalidate(c, KEY ".0");
    assert_null(container_cache_get(c, KEY ".0"));
    assert_int_equal(d[0], 'a');
    container_cache_release(c, e);

    /* an insert that raced with an invalidation is dropped */
    uint64_t old = ep;
    assert_true(container_cache_epoch(c) != old);
    container_cache_insert(c, KEY ".4", old, test_bytes(10, 'e'), 10);
    assert_null(container_cache_get(c, KEY ".4"));
    container_cache_free(c);

    assert_int_equal(container_cache_new(0, 200, &c), 0); /* disabled */
    container_cache_insert(c, KEY ".0", container_cache_epoch(c), test_bytes(10, 'a'), 10);
    assert_null(container_cache_get(c, KEY ".0"));
    container_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_ids),
        cmocka_unit_test_prestate(put_get_replace_remove, (void *)&test_posix),
        cmocka_unit_test_prestate(put_get_replace_remove, (void *)&test_memory),
        cmocka_unit_test_prestate(abort_leaves_nothing, (void *)&test_posix),
        cmocka_unit_test_prestate(abort_leaves_nothing, (void *)&test_memory),
        cmocka_unit_test_prestate(put_get_replace_remove, (void *)&test_s3),
        cmocka_unit_test_prestate(abort_leaves_nothing, (void *)&test_s3),
        cmocka_unit_test(s3_multipart_and_reopen),
        cmocka_unit_test(memory_reopen_is_empty),
        cmocka_unit_test(memory_bound),
        cmocka_unit_test(reopen_scans_and_clears_tmp),
        cmocka_unit_test(spare_temp_files),
        cmocka_unit_test(unusable_dir),
        cmocka_unit_test(cache_lru_and_epoch),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, test_s3_start, test_s3_stop);
}
