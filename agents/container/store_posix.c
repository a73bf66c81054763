/*
 * The posix backend of the fragment store: a folder on a local disk, NFS or Lustre.
 *
 *   <dir>/<key[0..1]>/<key>.<index>    committed fragments
 *   <dir>/tmp/put.XXXXXX               puts in progress and spares (emptied when the store opens)
 *
 * A put writes its temp file through a small buffer; commit fsyncs it, renames it into
 * place (atomically replacing an older version) and fsyncs the folder, so an acknowledged
 * fragment survives a crash. Usage accounting is updated under one mutex together with
 * the rename or unlink that changes it, so it stays exact under concurrent puts.
 *
 * Spare temp files: creating a file needs a filesystem journal handle, which waits while
 * another fsync's journal commit is under way (every container and the metadata database
 * of a one-disk machine share that journal). A helper thread keeps POSIX_SPARES empty temp
 * files created ahead, so a put starts on one of them without touching the journal.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sync_file_range */
#endif
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crashpoint.h"
#include "dynostore/error.h"

#define POSIX_WBUF (256 * 1024)           /* write buffer of a put, for small pieces */
#define POSIX_DIRECT_MIN (32 * 1024)      /* pieces at least this big are written as they are */
#define POSIX_WRITEBACK (4 * 1024 * 1024) /* start the disk on every this many bytes */
#define POSIX_PATH_MAX 4096
#define POSIX_SPARES 8 /* empty temp files kept ready for puts */

struct posix_store {
    struct store base;
    char dir[POSIX_PATH_MAX];
    char tmp[POSIX_PATH_MAX];
    pthread_mutex_t mu; /* guards used, count and the stat+rename/unlink that change them */
    uint64_t used;
    uint64_t count;
    /* spares: nspare ready files in spare[0..nspare), refilled by the spare thread */
    pthread_mutex_t spare_mu;
    pthread_cond_t spare_cv;
    pthread_t spare_thread;
    bool spare_running, spare_stop;
    int nspare;
    struct posix_spare {
        int fd;
        char path[POSIX_PATH_MAX];
    } spare[POSIX_SPARES];
};

struct store_put {
    struct posix_store *s;
    int fd;
    char id[STORE_ID_MAX + 1];
    char tmp_path[POSIX_PATH_MAX];
    uint8_t *buf;
    size_t blen;
    uint64_t size;
    uint64_t written;  /* bytes handed to the kernel */
    uint64_t wb_start; /* bytes whose writeback was started */
};

struct store_read {
    int fd;
};

static int posix_write_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            /* A full disk is the client's 507, not an I/O failure. */
            return errno == ENOSPC || errno == EDQUOT ? DYNO_ENOSPC : DYNO_EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int posix_mkdir_p(const char *path)
{
    char buf[POSIX_PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf))
        return DYNO_EINVAL;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return DYNO_EIO;
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return DYNO_EIO;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return DYNO_EIO;
    }
    return 0;
}

static int posix_subdir(const struct posix_store *s, const char *id, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%.2s", s->dir, id);
    return (n < 0 || (size_t)n >= cap) ? DYNO_EINVAL : 0;
}

static int posix_path(const struct posix_store *s, const char *id, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%.2s/%s", s->dir, id, id);
    return (n < 0 || (size_t)n >= cap) ? DYNO_EINVAL : 0;
}

/* A new empty temp file in tmp: its fd (close-on-exec) and path, or -1. */
static int posix_new_temp(const struct posix_store *s, char *path, size_t cap)
{
    int n = snprintf(path, cap, "%s/put.XXXXXX", s->tmp);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    int fd = mkstemp(path);
    if (fd >= 0)
        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

static void *posix_spare_main(void *arg)
{
    struct posix_store *s = arg;
    char path[POSIX_PATH_MAX];
    pthread_mutex_lock(&s->spare_mu);
    while (!s->spare_stop) {
        if (s->nspare == POSIX_SPARES) {
            pthread_cond_wait(&s->spare_cv, &s->spare_mu);
            continue;
        }
        pthread_mutex_unlock(&s->spare_mu);
        int fd = posix_new_temp(s, path, sizeof(path));
        pthread_mutex_lock(&s->spare_mu);
        if (fd < 0) {
            /* A full or broken disk: puts create their own files and report the error.
             * Try again a little later rather than spin. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&s->spare_cv, &s->spare_mu, &ts);
            continue;
        }
        struct posix_spare *sp = &s->spare[s->nspare++];
        sp->fd = fd;
        memcpy(sp->path, path, sizeof(sp->path));
    }
    pthread_mutex_unlock(&s->spare_mu);
    return NULL;
}

/* A spare temp file into p (fd, tmp_path); false when none is ready. */
static bool posix_take_spare(struct posix_store *s, struct store_put *p)
{
    bool got = false;
    pthread_mutex_lock(&s->spare_mu);
    if (s->nspare > 0) {
        struct posix_spare *sp = &s->spare[--s->nspare];
        p->fd = sp->fd;
        memcpy(p->tmp_path, sp->path, sizeof(p->tmp_path));
        got = true;
        pthread_cond_signal(&s->spare_cv);
    }
    pthread_mutex_unlock(&s->spare_mu);
    return got;
}

static int posix_put_begin(struct store *base, const char *id, struct store_put **out)
{
    struct posix_store *s = (struct posix_store *)base;
    struct store_put *p = NULL;
    int rc;

    *out = NULL;
    if (!store_valid_id(id, NULL, NULL))
        return DYNO_EINVAL;
    p = calloc(1, sizeof(*p));
    if (!p)
        return DYNO_ENOMEM;
    p->fd = -1;
    p->s = s;
    snprintf(p->id, sizeof(p->id), "%s", id);
    p->buf = malloc(POSIX_WBUF);
    if (!p->buf) {
        rc = DYNO_ENOMEM;
        goto out;
    }
    if (!posix_take_spare(s, p) && (p->fd = posix_new_temp(s, p->tmp_path, sizeof(p->tmp_path))) < 0) {
        p->tmp_path[0] = '\0';
        rc = errno == ENOSPC || errno == EDQUOT ? DYNO_ENOSPC : DYNO_EIO;
        goto out;
    }
    *out = p;
    return 0;
out:
    free(p->buf);
    free(p);
    return rc;
}

/* Writes data at the end of the temp file and, every POSIX_WRITEBACK bytes, asks the
 * kernel to start writing the new pages to the disk: the disk then works while the rest
 * of the fragment arrives, and the fsync of the commit (still what makes it durable) has
 * little left to wait for. Advisory: a filesystem that cannot do it is left alone. */
static int posix_put_out(struct store_put *p, const void *data, size_t len)
{
    int rc = posix_write_all(p->fd, data, len);
    if (rc)
        return rc;
    p->written += len;
#ifdef __linux__
    if (p->written - p->wb_start >= POSIX_WRITEBACK) {
        (void)sync_file_range(p->fd, (off_t)p->wb_start, (off_t)(p->written - p->wb_start),
                              SYNC_FILE_RANGE_WRITE);
        p->wb_start = p->written;
    }
#endif
    return 0;
}

static int posix_put_flush(struct store_put *p)
{
    if (p->blen == 0)
        return 0;
    int rc = posix_put_out(p, p->buf, p->blen);
    p->blen = 0;
    return rc;
}

static int posix_put_write(struct store_put *p, const void *data, size_t len)
{
    const uint8_t *d = data;
    if (p->fd < 0)
        return DYNO_EIO;
    p->size += len;
    while (len > 0) {
        if (len >= POSIX_DIRECT_MIN) {
            /* Big pieces (an HTTP read buffer's worth) skip the copy into buf. */
            int rc = posix_put_flush(p);
            return rc ? rc : posix_put_out(p, d, len);
        }
        size_t room = POSIX_WBUF - p->blen;
        size_t n = len < room ? len : room;
        memcpy(p->buf + p->blen, d, n);
        p->blen += n;
        d += n;
        len -= n;
        if (p->blen == POSIX_WBUF) {
            int rc = posix_put_flush(p);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static void posix_put_abort(struct store_put *p)
{
    if (!p)
        return;
    if (p->fd >= 0)
        close(p->fd);
    if (p->tmp_path[0])
        unlink(p->tmp_path);
    free(p->buf);
    free(p);
}

static int posix_put_commit(struct store_put *p, uint64_t *size, uint64_t *old_size)
{
    struct posix_store *s = p->s;
    char sub[POSIX_PATH_MAX], path[POSIX_PATH_MAX];
    int rc;

    rc = posix_put_flush(p);
    if (rc)
        goto fail;
    int frc = fsync(p->fd);
    int ferr = errno;
    int crc = close(p->fd);
    p->fd = -1;
    if (frc != 0 || crc != 0) {
        rc = frc != 0 && (ferr == ENOSPC || ferr == EDQUOT) ? DYNO_ENOSPC : DYNO_EIO;
        goto fail;
    }
    if (posix_subdir(s, p->id, sub, sizeof(sub)) || posix_path(s, p->id, path, sizeof(path))) {
        rc = DYNO_EINVAL;
        goto fail;
    }
    if (mkdir(sub, 0755) == 0) {
        rc = store_fsync_dir(s->dir);
        if (rc)
            goto fail;
    } else if (errno != EEXIST) {
        rc = DYNO_EIO;
        goto fail;
    }

    dyno_crash_point("container.put.before_rename"); /* fsynced, not in place */
    pthread_mutex_lock(&s->mu);
    struct stat st;
    bool existed = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    uint64_t old = existed ? (uint64_t)st.st_size : 0;
    if (rename(p->tmp_path, path) != 0) {
        pthread_mutex_unlock(&s->mu);
        rc = DYNO_EIO;
        goto fail;
    }
    s->used = s->used - old + p->size;
    if (!existed)
        s->count++;
    pthread_mutex_unlock(&s->mu);
    p->tmp_path[0] = '\0'; /* renamed: nothing left to remove */

    if (size)
        *size = p->size;
    if (old_size)
        *old_size = old;
    /* The fragment is in place; only the folder's durability is still at stake. */
    rc = store_fsync_dir(sub);
fail:
    posix_put_abort(p);
    return rc;
}

static int posix_open_read(struct store *base, const char *id, struct store_read **out, uint64_t *size)
{
    struct posix_store *s = (struct posix_store *)base;
    char path[POSIX_PATH_MAX];
    struct stat st;

    *out = NULL;
    if (!store_valid_id(id, NULL, NULL) || posix_path(s, id, path, sizeof(path)))
        return DYNO_EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? DYNO_ENOTFOUND : DYNO_EIO;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return DYNO_EIO;
    }
    struct store_read *r = malloc(sizeof(*r));
    if (!r) {
        close(fd);
        return DYNO_ENOMEM;
    }
    r->fd = fd;
    *out = r;
    *size = (uint64_t)st.st_size;
    return 0;
}

static int posix_read_at(struct store_read *r, uint64_t off, void *buf, size_t len, size_t *got)
{
    return store_pread_full(r->fd, buf, len, off, got);
}

static void posix_read_close(struct store_read *r)
{
    if (!r)
        return;
    close(r->fd);
    free(r);
}

static int posix_stat(struct store *base, const char *id, uint64_t *size)
{
    struct posix_store *s = (struct posix_store *)base;
    char path[POSIX_PATH_MAX];
    struct stat st;
    if (!store_valid_id(id, NULL, NULL) || posix_path(s, id, path, sizeof(path)))
        return DYNO_EINVAL;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? DYNO_ENOTFOUND : DYNO_EIO;
    if (!S_ISREG(st.st_mode))
        return DYNO_EIO;
    *size = (uint64_t)st.st_size;
    return 0;
}

static int posix_remove(struct store *base, const char *id, uint64_t *size)
{
    struct posix_store *s = (struct posix_store *)base;
    char sub[POSIX_PATH_MAX], path[POSIX_PATH_MAX];
    struct stat st;
    int rc = 0;

    if (!store_valid_id(id, NULL, NULL) || posix_subdir(s, id, sub, sizeof(sub)) ||
        posix_path(s, id, path, sizeof(path)))
        return DYNO_EINVAL;
    pthread_mutex_lock(&s->mu);
    if (stat(path, &st) != 0) {
        rc = errno == ENOENT ? DYNO_ENOTFOUND : DYNO_EIO;
    } else if (!S_ISREG(st.st_mode) || unlink(path) != 0) {
        rc = DYNO_EIO;
    } else {
        s->used -= (uint64_t)st.st_size;
        s->count--;
    }
    pthread_mutex_unlock(&s->mu);
    if (rc)
        return rc;
    if (size)
        *size = (uint64_t)st.st_size;
    return store_fsync_dir(sub);
}

static bool posix_is_hex2(const char *name)
{
    for (int i = 0; i < 2; i++) {
        char ch = name[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return false;
    }
    return name[2] == '\0';
}

static int posix_scan(struct store *base, store_scan_fn fn, void *arg)
{
    struct posix_store *s = (struct posix_store *)base;
    DIR *top = opendir(s->dir);
    struct dirent *de;
    int rc = 0;

    if (!top)
        return DYNO_EIO;
    while (rc == 0 && (de = readdir(top)) != NULL) {
        if (!posix_is_hex2(de->d_name))
            continue;
        int fd = openat(dirfd(top), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            continue; /* not a folder */
        DIR *sub = fdopendir(fd);
        if (!sub) {
            close(fd);
            rc = DYNO_EIO;
            break;
        }
        struct dirent *fe;
        while (rc == 0 && (fe = readdir(sub)) != NULL) {
            struct stat st;
            if (!store_valid_id(fe->d_name, NULL, NULL) || strncmp(fe->d_name, de->d_name, 2) != 0)
                continue;
            if (fstatat(dirfd(sub), fe->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
                continue;
            rc = fn(arg, fe->d_name, (uint64_t)st.st_size);
        }
        closedir(sub);
    }
    closedir(top);
    return rc;
}

static void posix_usage(struct store *base, uint64_t *used, uint64_t *fragments)
{
    struct posix_store *s = (struct posix_store *)base;
    pthread_mutex_lock(&s->mu);
    if (used)
        *used = s->used;
    if (fragments)
        *fragments = s->count;
    pthread_mutex_unlock(&s->mu);
}

static void posix_destroy(struct store *base)
{
    struct posix_store *s = (struct posix_store *)base;
    if (s->spare_running) {
        pthread_mutex_lock(&s->spare_mu);
        s->spare_stop = true;
        pthread_cond_signal(&s->spare_cv);
        pthread_mutex_unlock(&s->spare_mu);
        pthread_join(s->spare_thread, NULL);
    }
    for (int i = 0; i < s->nspare; i++) {
        close(s->spare[i].fd);
        unlink(s->spare[i].path);
    }
    pthread_cond_destroy(&s->spare_cv);
    pthread_mutex_destroy(&s->spare_mu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const struct store_ops posix_ops = {
    .name = "posix",
    .put_begin = posix_put_begin,
    .put_write = posix_put_write,
    .put_commit = posix_put_commit,
    .put_abort = posix_put_abort,
    .open_read = posix_open_read,
    .read_at = posix_read_at,
    .read_close = posix_read_close,
    .stat = posix_stat,
    .remove = posix_remove,
    .scan = posix_scan,
    .usage = posix_usage,
    .destroy = posix_destroy,
};

/* Removes every file of the temp folder: puts that a crash interrupted. */
static int posix_clear_tmp(const char *tmp)
{
    DIR *d = opendir(tmp);
    struct dirent *de;
    if (!d)
        return DYNO_EIO;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        (void)unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
    return 0;
}

/* Proves that files can be created, written and synced in tmp. */
static int posix_probe(const char *tmp)
{
    char path[POSIX_PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/.probe.XXXXXX", tmp);
    if (n < 0 || (size_t)n >= sizeof(path))
        return DYNO_EINVAL;
    int fd = mkstemp(path);
    if (fd < 0)
        return DYNO_EIO;
    int rc = 0;
    if (posix_write_all(fd, "x", 1) != 0 || fsync(fd) != 0)
        rc = DYNO_EIO;
    close(fd);
    unlink(path);
    return rc;
}

static int posix_count(void *arg, const char *id, uint64_t size)
{
    struct posix_store *s = arg;
    (void)id;
    s->used += size;
    s->count++;
    return 0;
}

int store_posix_open(const char *dir, struct store **out, char *err, size_t errlen)
{
    struct posix_store *s = NULL;
    int rc;

    *out = NULL;
    if (!dir || !*dir || strlen(dir) > POSIX_PATH_MAX - 128) {
        snprintf(err, errlen, "dir is empty or too long");
        return DYNO_EINVAL;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    s->base.ops = &posix_ops;
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    size_t n = strlen(s->dir);
    while (n > 1 && s->dir[n - 1] == '/')
        s->dir[--n] = '\0';
    snprintf(s->tmp, sizeof(s->tmp), "%.4000s/tmp", s->dir); /* dir was length-checked */
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->spare_mu, NULL);
    pthread_cond_init(&s->spare_cv, NULL);

    if (posix_mkdir_p(s->dir) != 0) {
        snprintf(err, errlen, "cannot create dir %s: %s", s->dir, strerror(errno));
        rc = DYNO_EIO;
        goto out;
    }
    if (posix_mkdir_p(s->tmp) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", s->tmp, strerror(errno));
        rc = DYNO_EIO;
        goto out;
    }
    if (posix_clear_tmp(s->tmp) != 0 || posix_probe(s->tmp) != 0) {
        snprintf(err, errlen, "cannot write in %s: %s", s->tmp, strerror(errno));
        rc = DYNO_EIO;
        goto out;
    }
    rc = posix_scan(&s->base, posix_count, s);
    if (rc) {
        snprintf(err, errlen, "cannot scan %s: %s", s->dir, strerror(errno));
        goto out;
    }
    /* Without the thread every put creates its own temp file: slower, not wrong. */
    s->spare_running = pthread_create(&s->spare_thread, NULL, posix_spare_main, s) == 0;
    *out = &s->base;
    return 0;
out:
    posix_destroy(&s->base);
    return rc;
}
