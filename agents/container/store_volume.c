/*
 * The volume backend of the fragment store: small fragments appended to volume files with
 * group commit, large ones left to the posix backend (store_posix.c) in the same folder.
 *
 *   <dir>/vol/NNNNNNNNNN.vol    volume files: records appended one after the other
 *   <dir>/<key[0..1]>/<id>      fragments over small_max (the posix layout, unchanged)
 *
 * Why: a fragment file costs a create, an fsync, a rename and a folder fsync (about 0.8 ms
 * of CPU and one journal commit each); a record appended to an open volume costs one
 * pwritev, and one fdatasync serves every record queued behind it.
 *
 * A record: a 64-byte header (magic, CRC32C of the rest of the header and the payload, a
 * sequence number, payload length, flags, the id) and the payload. A tombstone (flag
 * VOL_TOMB, no payload) removes its id. Sequence numbers grow with every append, across
 * volumes, so the newest record of an id is the one with the highest sequence; appends only
 * go to the newest ("active") volume, so that order is also the order on disk.
 *
 * Group commit: a commit appends its record under mu, then waits until `synced` covers the
 * record's end. The first waiter with nobody syncing becomes the leader: it fdatasyncs the
 * active volume (outside mu) and on return marks everything appended before it started as
 * durable; the others wait on a condition variable and one fdatasync serves them all. A
 * lone put syncs at once (no timer). An fdatasync failure marks the store broken: every
 * later put fails with DYNO_EIO (after a failed fsync the page cache cannot be trusted).
 * The index (id -> volume, offset, length, sequence) changes only once the record is
 * durable, so a reader never sees a fragment that a crash could take back.
 *
 * A crash leaves at most a torn tail on the last volume (nothing after it was acknowledged:
 * its fdatasync would have covered the torn record too). Opening scans every volume,
 * keeps the newest record per id, stops a volume at the first record whose magic, length
 * or CRC is wrong and truncates the last volume there, and appends go to a new volume.
 *
 * One id lives in one place: small puts of an id that exists as a file replace the file
 * (posix rename); a large put of an id held in a volume commits the file, then a durable
 * tombstone. A crash between the two leaves both: opening then trusts the file and writes
 * the tombstone. Commits and removes of one id are serialized by a striped lock, so a
 * compaction copy or a concurrent put cannot reorder them.
 *
 * Compaction: a thread picks a volume whose dead bytes are at least compact_ratio of it
 * (and compact_min), copies its live records to the active volume in batches (stripes of
 * the batch locked, liveness checked again, one group commit per batch, the index moved
 * only if it still points to the old copy), then unlinks the volume. Readers hold a
 * reference to the volume they opened, so they keep reading the unlinked file. Tombstones
 * are copied forward too, except from the oldest volume (nothing older can hold a record
 * they must hide). Memory: one batch (VOL_BATCH_BYTES) and the index.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* fallocate */
#endif
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "crashpoint.h"
#include "dynostore/error.h"
#include "hash.h"

#define VOL_MAGIC 0x31525644u /* "DVR1" little-endian */
#define VOL_HDR 64
#define VOL_ID_FIELD 36 /* at 24; the payload CRC at 60 */
#define VOL_TOMB 1u
#define VOL_REC_MAX (16u * 1024 * 1024) /* longest payload a scan accepts */
#define VOL_GROW (1024 * 1024)          /* preallocation step of the active volume */
#define VOL_STRIPES 256
#define VOL_BATCH_RECS 64
#define VOL_BATCH_BYTES (1024 * 1024)
#define VOL_PATH_MAX 4096

struct vol {
    struct vol *next; /* s->vols, ascending no */
    uint32_t no;
    int fd;
    uint64_t end;   /* bytes of whole records */
    uint64_t alloc; /* file size (preallocated) */
    uint64_t live;  /* bytes of records the index points to */
    uint64_t tomb;  /* bytes of tombstones (kept until compaction of the oldest volume) */
    int refs;       /* the list's own reference + open readers */
};

struct vol_ent {
    struct vol_ent *next;
    char id[STORE_ID_MAX + 1];
    bool tomb; /* only while opening */
    uint32_t vol;
    uint32_t len;
    uint64_t off; /* of the record header */
    uint64_t seq;
};

struct vol_store {
    struct store base;
    struct store *files; /* the posix backend: large fragments */
    struct store_volume_opts o;
    char vdir[VOL_PATH_MAX];
    pthread_mutex_t stripe[VOL_STRIPES]; /* one id's commits and removes, in order */

    pthread_mutex_t mu; /* everything below */
    pthread_cond_t sync_cv;
    struct vol *vols, *active;
    uint32_t next_no;
    uint64_t seq;
    uint64_t appended, synced; /* bytes appended / known durable, across volumes */
    bool syncing, broken;
    struct vol_ent **bucket;
    size_t nbucket, nent;
    uint64_t used;             /* payload bytes of live records */
    uint64_t nrecords, nsyncs; /* appended records, fdatasyncs of group commits */

    pthread_t compactor;
    bool compactor_running, stop;
    pthread_cond_t compact_cv;
};

/* The handles of this backend; cast to the opaque store_put/store_read of store.h. */
struct vol_put {
    struct vol_store *s;
    char id[STORE_ID_MAX + 1];
    uint8_t *buf;
    size_t blen, cap;
    struct store_put *file; /* set once the fragment is over small_max */
    int err;                /* a failed move to a file: the put can only be aborted */
};

struct vol_read {
    struct vol *v;           /* NULL: file */
    struct store_read *file; /* the posix handle */
    uint64_t base, len;
    struct vol_store *s;
};

void store_volume_defaults(struct store_volume_opts *o)
{
    o->small_max = 64 * 1024;
    o->volume_max = 64ull * 1024 * 1024;
    o->compact_ratio = 0.5;
    o->compact_min = 4ull * 1024 * 1024;
    o->compact_interval_ms = 1000;
}

/* ---- little helpers ---- */

static void vol_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void vol_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t vol_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t vol_get64(const uint8_t *p)
{
    return (uint64_t)vol_get32(p) | (uint64_t)vol_get32(p + 4) << 32;
}

static uint64_t vol_hash(const char *id)
{
    uint64_t h = 1469598103934665603ull;
    for (; *id; id++)
        h = (h ^ (uint8_t)*id) * 1099511628211ull;
    return h;
}

static pthread_mutex_t *vol_stripe(struct vol_store *s, const char *id)
{
    return &s->stripe[vol_hash(id) % VOL_STRIPES];
}

/* The record header of (id, flags, seq, payload) into h: a CRC of the header and one of the
 * payload, so a scan tells a torn tail (bad header, or a bad payload with nothing valid
 * after it) from a damaged payload in the middle, which stays indexed: the fragment's own
 * CRCs then catch it when it is read or scrubbed, and repair replaces it, as for a file. */
static void vol_header(uint8_t h[VOL_HDR], const char *id, unsigned flags, uint64_t seq, const void *data,
                       uint32_t len)
{
    memset(h, 0, VOL_HDR);
    vol_put32(h, VOL_MAGIC);
    vol_put64(h + 8, seq);
    vol_put32(h + 16, len);
    h[20] = (uint8_t)flags;
    size_t idlen = strlen(id);
    h[21] = (uint8_t)idlen;
    memcpy(h + 24, id, idlen);
    vol_put32(h + 60, dyno_crc32c(0, data, len));
    vol_put32(h + 4, dyno_crc32c(0, h + 8, VOL_HDR - 8));
}

/* ---- the index (under mu) ---- */

static struct vol_ent **vol_ix_slot(struct vol_store *s, const char *id)
{
    struct vol_ent **pp = &s->bucket[vol_hash(id) & (s->nbucket - 1)];
    while (*pp && strcmp((*pp)->id, id) != 0)
        pp = &(*pp)->next;
    return pp;
}

static struct vol_ent *vol_ix_find(struct vol_store *s, const char *id)
{
    return *vol_ix_slot(s, id);
}

static void vol_ix_grow(struct vol_store *s)
{
    size_t n = s->nbucket * 2;
    struct vol_ent **b = calloc(n, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < s->nbucket; i++) {
        struct vol_ent *e = s->bucket[i];
        while (e) {
            struct vol_ent *next = e->next;
            size_t k = vol_hash(e->id) & (n - 1);
            e->next = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(s->bucket);
    s->bucket = b;
    s->nbucket = n;
}

static struct vol *vol_by_no(struct vol_store *s, uint32_t no)
{
    for (struct vol *v = s->vols; v; v = v->next)
        if (v->no == no)
            return v;
    return NULL;
}

static uint64_t vol_rec_bytes(uint32_t len)
{
    return (uint64_t)VOL_HDR + len;
}

/* Makes (id -> vol, off, len, seq) the newest state of id unless a newer one is known.
 * tomb: the id is removed. *old: the payload length it replaced (0 when none). */
static int vol_ix_apply(struct vol_store *s, const char *id, bool tomb, uint32_t vno, uint64_t off,
                        uint32_t len, uint64_t seq, bool counted, uint64_t *old)
{
    struct vol_ent **pp = vol_ix_slot(s, id);
    struct vol_ent *e = *pp;
    struct vol *nv = vol_by_no(s, vno);
    if (old)
        *old = 0;
    if (e && e->seq > seq) {
        if (counted && nv) /* dead on arrival: a newer version is known */
            nv->live -= vol_rec_bytes(len);
        return 0;
    }
    if (e && !e->tomb) {
        struct vol *ov = vol_by_no(s, e->vol);
        if (ov)
            ov->live -= vol_rec_bytes(e->len);
        s->used -= e->len;
        if (old)
            *old = e->len;
    }
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e)
            return DYNO_ENOMEM;
        snprintf(e->id, sizeof(e->id), "%s", id);
        e->next = NULL;
        *pp = e;
        s->nent++;
    }
    e->tomb = tomb;
    e->vol = vno;
    e->off = off;
    e->len = len;
    e->seq = seq;
    if (!tomb) {
        if (nv && !counted)
            nv->live += vol_rec_bytes(len);
        s->used += len;
    }
    if (s->nent > s->nbucket)
        vol_ix_grow(s);
    return 0;
}

static void vol_ix_drop(struct vol_store *s, const char *id)
{
    struct vol_ent **pp = vol_ix_slot(s, id);
    struct vol_ent *e = *pp;
    if (!e)
        return;
    if (!e->tomb) {
        struct vol *v = vol_by_no(s, e->vol);
        if (v)
            v->live -= vol_rec_bytes(e->len);
        s->used -= e->len;
    }
    *pp = e->next;
    free(e);
    s->nent--;
}

/* ---- volumes (under mu) ---- */

static void vol_unref(struct vol *v)
{
    if (--v->refs == 0) {
        close(v->fd);
        free(v);
    }
}

static int vol_path(const struct vol_store *s, uint32_t no, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%010u.vol", s->vdir, no);
    return (n < 0 || (size_t)n >= cap) ? DYNO_EINVAL : 0;
}

/* Marks everything appended so far durable: the leader of a group commit, or a rotation. */
static int vol_sync_active_locked(struct vol_store *s)
{
    while (s->syncing)
        pthread_cond_wait(&s->sync_cv, &s->mu);
    if (!s->active || s->synced == s->appended)
        return s->broken ? DYNO_EIO : 0;
    uint64_t target = s->appended;
    if (fdatasync(s->active->fd) != 0) {
        s->broken = true;
        pthread_cond_broadcast(&s->sync_cv);
        return DYNO_EIO;
    }
    s->synced = target;
    pthread_cond_broadcast(&s->sync_cv);
    return 0;
}

/* Seals the active volume (durable first) and opens a new, empty one. */
static int vol_rotate_locked(struct vol_store *s)
{
    char path[VOL_PATH_MAX];
    int rc = vol_sync_active_locked(s);
    if (rc)
        return rc;
    if (s->active && s->active->alloc > s->active->end) {
        /* The unused preallocation of the sealed volume goes back (zeros: harmless if
         * a crash undoes this). */
        if (ftruncate(s->active->fd, (off_t)s->active->end) == 0)
            s->active->alloc = s->active->end;
    }
    if (vol_path(s, s->next_no, path, sizeof(path)))
        return DYNO_EINVAL;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno == ENOSPC || errno == EDQUOT ? DYNO_ENOSPC : DYNO_EIO;
    struct vol *v = calloc(1, sizeof(*v));
    if (!v || store_fsync_dir(s->vdir) != 0) {
        free(v);
        close(fd);
        unlink(path);
        return v ? DYNO_EIO : DYNO_ENOMEM;
    }
    v->no = s->next_no++;
    v->fd = fd;
    v->refs = 1;
    struct vol **pp = &s->vols;
    while (*pp)
        pp = &(*pp)->next;
    *pp = v;
    s->active = v;
    return 0;
}

/* Preallocates grow more bytes of the active volume by writing zeros and syncing them
 * once. Blocks written ahead (not fallocate's unwritten extents, which every fdatasync
 * would have to convert, writing the inode) make a group commit's fdatasync the data
 * and a cache flush only: measured, an ext4 fdatasync into fallocated space also wrote
 * the inode synchronously. Costs one more write of each volume byte, off the commit path
 * of all but the put that crosses the step. */
static int vol_extend_locked(struct vol_store *s, struct vol *v, uint64_t grow)
{
    static const uint8_t zeros[64 * 1024];
    uint64_t at = v->alloc, left = grow;
    while (left > 0) {
        size_t n = left < sizeof(zeros) ? (size_t)left : sizeof(zeros);
        ssize_t w = pwrite(v->fd, zeros, n, (off_t)at);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (ftruncate(v->fd, (off_t)v->alloc) != 0) {
                /* the zeros past alloc are harmless: a scan stops at them */
            }
            return errno == ENOSPC || errno == EDQUOT ? DYNO_ENOSPC : DYNO_EIO;
        }
        at += (uint64_t)w;
        left -= (uint64_t)w;
    }
    uint64_t target = s->appended;
    if (fdatasync(v->fd) != 0) {
        s->broken = true;
        pthread_cond_broadcast(&s->sync_cv);
        return DYNO_EIO;
    }
    v->alloc += grow;
    if (target > s->synced) { /* it covered every record appended so far */
        s->synced = target;
        pthread_cond_broadcast(&s->sync_cv);
    }
    return 0;
}

/* Appends one record to the active volume: its place in *vno, *off and its end in *lsn.
 * Not durable until vol_wait_durable(lsn). */
static int vol_append_locked(struct vol_store *s, const char *id, unsigned flags, const void *data,
                             uint32_t len, uint64_t seq_in, uint32_t *vno, uint64_t *off, uint64_t *seq,
                             uint64_t *lsn)
{
    uint64_t rec = vol_rec_bytes(len);
    if (s->broken)
        return DYNO_EIO;
    if (!s->active || (s->active->end > 0 && s->active->end + rec > s->o.volume_max)) {
        int rc = vol_rotate_locked(s);
        if (rc)
            return rc;
    }
    struct vol *v = s->active;
    if (v->end + rec > v->alloc) {
        uint64_t grow = VOL_GROW;
        if (v->alloc + grow > s->o.volume_max)
            grow = s->o.volume_max > v->alloc ? s->o.volume_max - v->alloc : 0;
        if (v->alloc + grow < v->end + rec)
            grow = v->end + rec - v->alloc;
        int rc = vol_extend_locked(s, v, grow);
        if (rc)
            return rc;
    }
    uint64_t sq = seq_in ? seq_in : ++s->seq;
    uint8_t h[VOL_HDR];
    vol_header(h, id, flags, sq, data, len);
    struct iovec iov[2] = {{h, VOL_HDR}, {(void *)data, len}};
    uint64_t at = v->end;
    size_t want = (size_t)rec, done = 0;
    while (done < want) {
        /* pwritev of the rest: the header and the payload in one call */
        struct iovec part[2];
        int n = 0;
        size_t skip = done;
        for (int i = 0; i < 2; i++) {
            if (skip >= iov[i].iov_len) {
                skip -= iov[i].iov_len;
                continue;
            }
            part[n].iov_base = (uint8_t *)iov[i].iov_base + skip;
            part[n].iov_len = iov[i].iov_len - skip;
            skip = 0;
            n++;
        }
        ssize_t w = pwritev(v->fd, part, n, (off_t)(at + done));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            /* The tail may hold part of the record: nothing later can be trusted. */
            s->broken = true;
            return errno == ENOSPC || errno == EDQUOT ? DYNO_ENOSPC : DYNO_EIO;
        }
        done += (size_t)w;
    }
    v->end += rec;
    v->live += rec; /* counted live from the start, so compaction never takes it for dead */
    if (v->end > v->alloc)
        v->alloc = v->end;
    s->appended += rec;
    s->nrecords++;
    *vno = v->no;
    *off = at;
    *seq = sq;
    *lsn = s->appended;
    return 0;
}

/* Group commit: returns once every byte appended up to lsn is on disk. */
static int vol_wait_durable(struct vol_store *s, uint64_t lsn)
{
    while (s->synced < lsn) {
        if (s->broken)
            return DYNO_EIO;
        if (s->syncing) {
            pthread_cond_wait(&s->sync_cv, &s->mu);
            continue;
        }
        s->syncing = true;
        s->nsyncs++;
        uint64_t target = s->appended;
        struct vol *v = s->active;
        v->refs++;
        pthread_mutex_unlock(&s->mu);
        int r = fdatasync(v->fd);
        pthread_mutex_lock(&s->mu);
        vol_unref(v);
        s->syncing = false;
        if (r != 0)
            s->broken = true;
        else if (target > s->synced)
            s->synced = target;
        pthread_cond_broadcast(&s->sync_cv);
    }
    return 0;
}

/* Appends a record and waits until it is durable, then applies it to the index. */
static int vol_commit_record(struct vol_store *s, const char *id, bool tomb, const void *data, uint32_t len,
                             uint64_t *old)
{
    uint32_t vno;
    uint64_t off, seq, lsn;
    pthread_mutex_lock(&s->mu);
    int rc = vol_append_locked(s, id, tomb ? VOL_TOMB : 0, data, len, 0, &vno, &off, &seq, &lsn);
    if (rc == 0) {
        dyno_crash_point("container.volume.after_append"); /* written, not yet durable */
        rc = vol_wait_durable(s, lsn);
    }
    if (rc == 0) {
        dyno_crash_point("container.volume.after_sync"); /* durable, not yet acknowledged */
        if (tomb) {
            struct vol_ent *e = vol_ix_find(s, id);
            if (old)
                *old = e ? e->len : 0;
            if (e && e->seq < seq)
                vol_ix_drop(s, id);
            struct vol *tv = vol_by_no(s, vno);
            if (tv) {
                tv->live -= vol_rec_bytes(0);
                tv->tomb += vol_rec_bytes(0);
            }
        } else {
            rc = vol_ix_apply(s, id, false, vno, off, len, seq, true, old);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- the store ops ---- */

static int vol_put_begin(struct store *base, const char *id, struct store_put **out)
{
    struct vol_store *s = (struct vol_store *)base;
    *out = NULL;
    if (!store_valid_id(id, NULL, NULL))
        return DYNO_EINVAL;
    struct vol_put *p = calloc(1, sizeof(*p));
    if (!p)
        return DYNO_ENOMEM;
    p->s = s;
    snprintf(p->id, sizeof(p->id), "%s", id);
    *out = (struct store_put *)p;
    return 0;
}

static int vol_put_write(struct store_put *sp, const void *data, size_t len)
{
    struct vol_put *p = (struct vol_put *)sp;
    struct vol_store *s = p->s;
    if (p->err)
        return p->err;
    if (p->file)
        return store_put_write(s->files, p->file, data, len);
    if (p->blen + len > s->o.small_max) {
        /* Too big for a volume: from here on it is a file. */
        int rc = store_put_begin(s->files, p->id, &p->file);
        if (rc == 0 && p->blen > 0)
            rc = store_put_write(s->files, p->file, p->buf, p->blen);
        free(p->buf);
        p->buf = NULL;
        p->blen = p->cap = 0;
        if (rc == 0)
            rc = store_put_write(s->files, p->file, data, len);
        p->err = rc;
        return rc;
    }
    if (p->blen + len > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < p->blen + len)
            cap *= 2;
        if (cap > s->o.small_max)
            cap = (size_t)s->o.small_max;
        uint8_t *b = realloc(p->buf, cap);
        if (!b)
            return DYNO_ENOMEM;
        p->buf = b;
        p->cap = cap;
    }
    memcpy(p->buf + p->blen, data, len);
    p->blen += len;
    return 0;
}

static void vol_put_abort(struct store_put *sp)
{
    struct vol_put *p = (struct vol_put *)sp;
    if (!p)
        return;
    if (p->file)
        store_put_abort(p->s->files, p->file);
    free(p->buf);
    free(p);
}

/* A small fragment written as a file: its id is a file already, so the posix rename keeps
 * the replacement atomic. */
static int vol_put_as_file(struct vol_put *p, uint64_t *size, uint64_t *old)
{
    struct vol_store *s = p->s;
    int rc = store_put_begin(s->files, p->id, &p->file);
    if (rc == 0 && p->blen > 0)
        rc = store_put_write(s->files, p->file, p->buf, p->blen);
    if (rc)
        return rc;
    struct store_put *f = p->file;
    p->file = NULL;
    return store_put_commit(s->files, f, size, old);
}

static int vol_put_commit(struct store_put *sp, uint64_t *size, uint64_t *old_size)
{
    struct vol_put *p = (struct vol_put *)sp;
    struct vol_store *s = p->s;
    pthread_mutex_t *stripe = vol_stripe(s, p->id);
    uint64_t sz = 0, old = 0, fsz;
    int rc;

    if (p->err) {
        rc = p->err;
        vol_put_abort(sp);
        return rc;
    }
    pthread_mutex_lock(stripe);
    if (p->file) {
        struct store_put *f = p->file;
        p->file = NULL;
        rc = store_put_commit(s->files, f, &sz, &old);
        pthread_mutex_lock(&s->mu);
        bool in_vol = vol_ix_find(s, p->id) != NULL;
        pthread_mutex_unlock(&s->mu);
        if (rc == 0 && in_vol) /* the small version it replaces goes, durably */
            rc = vol_commit_record(s, p->id, true, NULL, 0, &old);
    } else if (store_stat(s->files, p->id, &fsz) == 0) {
        rc = vol_put_as_file(p, &sz, &old);
    } else {
        sz = p->blen;
        rc = vol_commit_record(s, p->id, false, p->buf, (uint32_t)p->blen, &old);
    }
    pthread_mutex_unlock(stripe);
    if (rc == 0) {
        if (size)
            *size = sz;
        if (old_size)
            *old_size = old;
    }
    vol_put_abort(sp);
    return rc;
}

static int vol_open_read(struct store *base, const char *id, struct store_read **out, uint64_t *size)
{
    struct vol_store *s = (struct vol_store *)base;
    *out = NULL;
    if (!store_valid_id(id, NULL, NULL))
        return DYNO_EINVAL;
    struct vol_read *r = calloc(1, sizeof(*r));
    if (!r)
        return DYNO_ENOMEM;
    r->s = s;
    pthread_mutex_lock(&s->mu);
    struct vol_ent *e = vol_ix_find(s, id);
    if (e) {
        r->v = vol_by_no(s, e->vol);
        r->v->refs++;
        r->base = e->off + VOL_HDR;
        r->len = e->len;
    }
    pthread_mutex_unlock(&s->mu);
    if (r->v) {
        *size = r->len;
        *out = (struct store_read *)r;
        return 0;
    }
    int rc = store_open_read(s->files, id, &r->file, size);
    if (rc) {
        free(r);
        return rc;
    }
    *out = (struct store_read *)r;
    return 0;
}

static int vol_read_at(struct store_read *sr, uint64_t off, void *buf, size_t len, size_t *got)
{
    struct vol_read *r = (struct vol_read *)sr;
    if (!r->v)
        return store_read_at(r->s->files, r->file, off, buf, len, got);
    *got = 0;
    if (off >= r->len)
        return 0;
    if (len > r->len - off)
        len = (size_t)(r->len - off);
    return store_pread_full(r->v->fd, buf, len, r->base + off, got);
}

static void vol_read_close(struct store_read *sr)
{
    struct vol_read *r = (struct vol_read *)sr;
    if (!r)
        return;
    if (r->v) {
        pthread_mutex_lock(&r->s->mu);
        vol_unref(r->v);
        pthread_mutex_unlock(&r->s->mu);
    } else {
        store_read_close(r->s->files, r->file);
    }
    free(r);
}

static int vol_stat(struct store *base, const char *id, uint64_t *size)
{
    struct vol_store *s = (struct vol_store *)base;
    if (!store_valid_id(id, NULL, NULL))
        return DYNO_EINVAL;
    pthread_mutex_lock(&s->mu);
    struct vol_ent *e = vol_ix_find(s, id);
    if (e)
        *size = e->len;
    pthread_mutex_unlock(&s->mu);
    return e ? 0 : store_stat(s->files, id, size);
}

static int vol_remove(struct store *base, const char *id, uint64_t *size)
{
    struct vol_store *s = (struct vol_store *)base;
    if (!store_valid_id(id, NULL, NULL))
        return DYNO_EINVAL;
    pthread_mutex_t *stripe = vol_stripe(s, id);
    pthread_mutex_lock(stripe);
    pthread_mutex_lock(&s->mu);
    bool in_vol = vol_ix_find(s, id) != NULL;
    pthread_mutex_unlock(&s->mu);
    uint64_t old = 0;
    int rc = in_vol ? vol_commit_record(s, id, true, NULL, 0, &old) : store_remove(s->files, id, &old);
    pthread_mutex_unlock(stripe);
    if (rc == 0 && size)
        *size = old;
    return rc;
}

struct vol_scan_item {
    char id[STORE_ID_MAX + 1];
    uint64_t size;
};

static int vol_scan(struct store *base, store_scan_fn fn, void *arg)
{
    struct vol_store *s = (struct vol_store *)base;
    pthread_mutex_lock(&s->mu);
    size_t n = 0, cap = s->nent;
    struct vol_scan_item *items = cap ? malloc(cap * sizeof(*items)) : NULL;
    if (cap && !items) {
        pthread_mutex_unlock(&s->mu);
        return DYNO_ENOMEM;
    }
    for (size_t i = 0; i < s->nbucket; i++)
        for (struct vol_ent *e = s->bucket[i]; e; e = e->next)
            if (!e->tomb && n < cap) {
                memcpy(items[n].id, e->id, sizeof(e->id));
                items[n++].size = e->len;
            }
    pthread_mutex_unlock(&s->mu);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = fn(arg, items[i].id, items[i].size);
    free(items);
    return rc ? rc : store_scan(s->files, fn, arg);
}

static void vol_usage(struct store *base, uint64_t *used, uint64_t *fragments)
{
    struct vol_store *s = (struct vol_store *)base;
    uint64_t fu = 0, fc = 0;
    store_usage(s->files, &fu, &fc);
    pthread_mutex_lock(&s->mu);
    if (used)
        *used = fu + s->used;
    if (fragments)
        *fragments = fc + s->nent;
    pthread_mutex_unlock(&s->mu);
}

/* ---- compaction ---- */

struct vol_batch_rec {
    char id[STORE_ID_MAX + 1];
    bool tomb;
    uint64_t seq;
    uint64_t off;   /* in the victim */
    uint32_t len;   /* payload */
    size_t at;      /* payload offset in the batch buffer */
    unsigned strip; /* stripe index */
};

static int vol_cmp_uint(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

/* Copies the batch's records that are still live (tombstones: always) to the active
 * volume, durably, and moves the index to the copies. */
static int vol_compact_batch(struct vol_store *s, struct vol *victim, struct vol_batch_rec *b, size_t n,
                             const uint8_t *buf)
{
    unsigned locks[VOL_BATCH_RECS];
    size_t nl = 0;
    for (size_t i = 0; i < n; i++)
        locks[nl++] = b[i].strip;
    qsort(locks, nl, sizeof(locks[0]), vol_cmp_uint);
    for (size_t i = 0; i < nl; i++)
        if (i == 0 || locks[i] != locks[i - 1])
            pthread_mutex_lock(&s->stripe[locks[i]]);
    int rc = 0;
    uint32_t vno[VOL_BATCH_RECS];
    uint64_t noff[VOL_BATCH_RECS], seq[VOL_BATCH_RECS], lsn = 0;
    bool copied[VOL_BATCH_RECS] = {false};
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!b[i].tomb) {
            struct vol_ent *e = vol_ix_find(s, b[i].id);
            if (!e || e->vol != victim->no || e->off != b[i].off)
                continue; /* replaced or removed meanwhile */
        }
        /* The copy keeps the original's sequence: a tombstone copied forward must not hide a
         * newer put of its id, and a crash before the victim is unlinked leaves two equal
         * records, either one right. */
        rc = vol_append_locked(s, b[i].id, b[i].tomb ? VOL_TOMB : 0, buf + b[i].at, b[i].len, b[i].seq,
                               &vno[i], &noff[i], &seq[i], &lsn);
        copied[i] = rc == 0;
    }
    if (rc == 0 && lsn)
        rc = vol_wait_durable(s, lsn);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            if (!copied[i])
                continue;
            if (b[i].tomb) {
                struct vol *v = vol_by_no(s, vno[i]);
                if (v) {
                    v->live -= vol_rec_bytes(0);
                    v->tomb += vol_rec_bytes(0);
                }
                continue;
            }
            (void)vol_ix_apply(s, b[i].id, false, vno[i], noff[i], b[i].len, seq[i], true, NULL);
        }
    }
    pthread_mutex_unlock(&s->mu);
    for (size_t i = nl; i-- > 0;)
        if (i == 0 || locks[i] != locks[i - 1])
            pthread_mutex_unlock(&s->stripe[locks[i]]);
    return rc;
}

/* Moves the live records of victim elsewhere and deletes it. */
static int vol_compact_one(struct vol_store *s, struct vol *victim, bool oldest)
{
    uint8_t *buf = malloc(VOL_BATCH_BYTES);
    struct vol_batch_rec *b = calloc(VOL_BATCH_RECS, sizeof(*b));
    int rc = 0;
    if (!buf || !b) {
        free(buf);
        free(b);
        return DYNO_ENOMEM;
    }
    pthread_mutex_lock(&s->mu);
    uint64_t off = 0, end = victim->end; /* sealed: it grows no more */
    pthread_mutex_unlock(&s->mu);
    size_t n = 0, used = 0;
    while (rc == 0 && off < end) {
        uint8_t h[VOL_HDR];
        size_t got;
        rc = store_pread_full(victim->fd, h, VOL_HDR, off, &got);
        if (rc || got != VOL_HDR)
            break;
        uint32_t len = vol_get32(h + 16);
        bool tomb = (h[20] & VOL_TOMB) != 0;
        char id[STORE_ID_MAX + 1];
        size_t idlen = h[21] <= STORE_ID_MAX ? h[21] : STORE_ID_MAX;
        memcpy(id, h + 24, idlen);
        id[idlen] = '\0';
        bool want = false;
        uint64_t rseq = vol_get64(h + 8);
        if (tomb) {
            want = !oldest;
        } else {
            /* Dead for good when a newer version is indexed. Not indexed may also be a
             * commit still waiting for its sync: the batch checks again under its stripe,
             * which that commit holds until it is indexed. */
            pthread_mutex_lock(&s->mu);
            struct vol_ent *e = vol_ix_find(s, id);
            want = !e || e->seq <= rseq;
            pthread_mutex_unlock(&s->mu);
        }
        if (want && (n == VOL_BATCH_RECS || used + len > VOL_BATCH_BYTES)) {
            rc = vol_compact_batch(s, victim, b, n, buf);
            n = used = 0;
            if (rc)
                break;
        }
        if (want && len <= VOL_BATCH_BYTES) {
            rc = store_pread_full(victim->fd, buf + used, len, off + VOL_HDR, &got);
            if (rc || got != len) {
                rc = rc ? rc : DYNO_EIO;
                break;
            }
            struct vol_batch_rec *r = &b[n++];
            memcpy(r->id, id, idlen + 1);
            r->tomb = tomb;
            r->seq = vol_get64(h + 8);
            r->off = off;
            r->len = len;
            r->at = used;
            r->strip = (unsigned)(vol_hash(id) % VOL_STRIPES);
            used += len;
        }
        off += vol_rec_bytes(len);
    }
    if (rc == 0 && n > 0)
        rc = vol_compact_batch(s, victim, b, n, buf);
    free(buf);
    free(b);
    if (rc)
        return rc;
    dyno_crash_point("container.volume.before_unlink"); /* copies durable, old volume still there */
    char path[VOL_PATH_MAX];
    pthread_mutex_lock(&s->mu);
    if (victim->live != 0 || vol_path(s, victim->no, path, sizeof(path))) {
        pthread_mutex_unlock(&s->mu);
        return DYNO_EINTERNAL; /* something still points into it: keep it */
    }
    struct vol **pp = &s->vols;
    while (*pp != victim)
        pp = &(*pp)->next;
    *pp = victim->next;
    unlink(path);
    vol_unref(victim); /* readers that hold it keep the open file */
    pthread_mutex_unlock(&s->mu);
    return store_fsync_dir(s->vdir);
}

int store_volume_compact(struct store *base)
{
    struct vol_store *s = (struct vol_store *)base;
    int done = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        struct vol *victim = NULL;
        bool oldest = false;
        for (struct vol *v = s->vols; v; v = v->next) {
            uint64_t dead = v->end - v->live - v->tomb;
            if (v == s->vols)
                dead = v->end - v->live; /* its tombstones go too */
            if (v->end > 0 && dead >= s->o.compact_min &&
                (double)dead >= s->o.compact_ratio * (double)v->end) {
                victim = v;
                oldest = v == s->vols;
                break;
            }
        }
        int rc = 0;
        if (victim && victim == s->active)
            rc = vol_rotate_locked(s); /* sealed, so nothing lands in it any more */
        if (victim)
            victim->refs++;
        pthread_mutex_unlock(&s->mu);
        if (!victim || rc)
            return rc ? rc : done;
        rc = vol_compact_one(s, victim, oldest);
        pthread_mutex_lock(&s->mu);
        vol_unref(victim);
        pthread_mutex_unlock(&s->mu);
        if (rc)
            return rc;
        done++;
    }
}

void store_volume_stats(struct store *base, uint64_t *records, uint64_t *syncs)
{
    struct vol_store *s = (struct vol_store *)base;
    if (strcmp(base->ops->name, "volume") != 0) {
        *records = *syncs = 0; /* another backend: no volumes */
        return;
    }
    pthread_mutex_lock(&s->mu);
    *records = s->nrecords;
    *syncs = s->nsyncs;
    pthread_mutex_unlock(&s->mu);
}

static void *vol_compact_main(void *arg)
{
    struct vol_store *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)s->o.compact_interval_ms * 1000000ull;
        ts.tv_sec += (time_t)(ns / 1000000000ull);
        ts.tv_nsec = (long)(ns % 1000000000ull);
        pthread_cond_timedwait(&s->compact_cv, &s->mu, &ts);
        if (s->stop)
            break;
        pthread_mutex_unlock(&s->mu);
        (void)store_volume_compact(&s->base);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- open and close ---- */

static void vol_destroy(struct store *base)
{
    struct vol_store *s = (struct vol_store *)base;
    if (s->compactor_running) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_broadcast(&s->compact_cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->compactor, NULL);
    }
    while (s->vols) {
        struct vol *v = s->vols;
        s->vols = v->next;
        vol_unref(v);
    }
    for (size_t i = 0; i < s->nbucket; i++) {
        struct vol_ent *e = s->bucket[i];
        while (e) {
            struct vol_ent *next = e->next;
            free(e);
            e = next;
        }
    }
    free(s->bucket);
    store_free(s->files);
    for (int i = 0; i < VOL_STRIPES; i++)
        pthread_mutex_destroy(&s->stripe[i]);
    pthread_cond_destroy(&s->compact_cv);
    pthread_cond_destroy(&s->sync_cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* True when a valid record header is at off: magic, header CRC, length within fsize, id. */
static bool vol_header_ok(int fd, uint64_t off, uint64_t fsize, uint8_t h[VOL_HDR])
{
    size_t got;
    if (off + VOL_HDR > fsize || store_pread_full(fd, h, VOL_HDR, off, &got) || got != VOL_HDR)
        return false;
    if (vol_get32(h) != VOL_MAGIC || vol_get32(h + 4) != dyno_crc32c(0, h + 8, VOL_HDR - 8))
        return false;
    uint32_t len = vol_get32(h + 16);
    unsigned idlen = h[21];
    if (len > VOL_REC_MAX || idlen > VOL_ID_FIELD || off + VOL_HDR + len > fsize)
        return false;
    char id[VOL_ID_FIELD + 1];
    memcpy(id, h + 24, idlen);
    id[idlen] = '\0';
    return store_valid_id(id, NULL, NULL);
}

/* Reads the records of v into the index; v->end: where the whole records end. */
static int vol_load(struct vol_store *s, struct vol *v, uint64_t fsize)
{
    uint8_t h[VOL_HDR], next[VOL_HDR];
    uint8_t *pay = NULL;
    size_t paycap = 0;
    uint64_t off = 0;
    int rc = 0;
    while (vol_header_ok(v->fd, off, fsize, h)) {
        size_t got;
        uint32_t len = vol_get32(h + 16);
        char id[VOL_ID_FIELD + 1];
        memcpy(id, h + 24, h[21]);
        id[h[21]] = '\0';
        if (len > paycap) {
            uint8_t *p = realloc(pay, len);
            if (!p) {
                rc = DYNO_ENOMEM;
                break;
            }
            pay = p;
            paycap = len;
        }
        if (store_pread_full(v->fd, pay, len, off + VOL_HDR, &got) || got != len)
            break;
        if (dyno_crc32c(0, pay, len) != vol_get32(h + 60) &&
            !vol_header_ok(v->fd, off + vol_rec_bytes(len), fsize, next)) {
            /* A bad payload with nothing valid after it: the torn tail of a crash (never
             * acknowledged, its fdatasync would have covered it). */
            break;
        }
        bool tomb = (h[20] & VOL_TOMB) != 0;
        uint64_t seq = vol_get64(h + 8);
        if (seq > s->seq)
            s->seq = seq;
        rc = vol_ix_apply(s, id, tomb, v->no, off, len, seq, false, NULL);
        if (rc)
            break;
        if (tomb)
            v->tomb += vol_rec_bytes(0);
        off += vol_rec_bytes(len);
    }
    free(pay);
    v->end = off;
    return rc;
}

static int vol_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

struct vol_shadow {
    struct vol_store *s;
    char (*ids)[STORE_ID_MAX + 1];
    size_t n, cap;
};

static int vol_shadow_cb(void *arg, const char *id, uint64_t size)
{
    struct vol_shadow *sh = arg;
    (void)size;
    if (!vol_ix_find(sh->s, id))
        return 0;
    if (sh->n == sh->cap) {
        size_t cap = sh->cap ? sh->cap * 2 : 16;
        void *p = realloc(sh->ids, cap * sizeof(*sh->ids));
        if (!p)
            return DYNO_ENOMEM;
        sh->ids = p;
        sh->cap = cap;
    }
    snprintf(sh->ids[sh->n++], STORE_ID_MAX + 1, "%s", id);
    return 0;
}

static int vol_open_volumes(struct vol_store *s, char *err, size_t errlen)
{
    DIR *d = opendir(s->vdir);
    if (!d) {
        snprintf(err, errlen, "cannot open %s: %s", s->vdir, strerror(errno));
        return DYNO_EIO;
    }
    uint32_t *nos = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned no;
        char tail[8];
        if (strlen(de->d_name) != 14 || sscanf(de->d_name, "%10u.%3s", &no, tail) != 2 ||
            strcmp(tail, "vol") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            uint32_t *p = realloc(nos, cap * sizeof(*nos));
            if (!p) {
                free(nos);
                closedir(d);
                return DYNO_ENOMEM;
            }
            nos = p;
        }
        nos[n++] = no;
    }
    closedir(d);
    if (n > 1)
        qsort(nos, n, sizeof(*nos), vol_cmp_u32);
    int rc = 0;
    struct vol **tail = &s->vols;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char path[VOL_PATH_MAX];
        struct stat st;
        struct vol *v = calloc(1, sizeof(*v));
        if (!v || vol_path(s, nos[i], path, sizeof(path))) {
            free(v);
            rc = DYNO_ENOMEM;
            break;
        }
        v->fd = open(path, O_RDWR | O_CLOEXEC);
        if (v->fd < 0 || fstat(v->fd, &st) != 0) {
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
            if (v->fd >= 0)
                close(v->fd);
            free(v);
            rc = DYNO_EIO;
            break;
        }
        v->no = nos[i];
        v->refs = 1;
        *tail = v;
        tail = &v->next;
        s->next_no = v->no + 1;
        rc = vol_load(s, v, (uint64_t)st.st_size);
        if (rc == 0 && i + 1 == n && v->end < (uint64_t)st.st_size) {
            /* The torn tail (and the preallocated zeros) of the last volume: cut, so that
             * no stale bytes follow the records this process will not append here. */
            if (ftruncate(v->fd, (off_t)v->end) != 0 || fsync(v->fd) != 0) {
                snprintf(err, errlen, "cannot truncate %s: %s", path, strerror(errno));
                rc = DYNO_EIO;
            }
        }
        v->alloc = v->end;
    }
    free(nos);
    if (rc)
        return rc;
    /* Tombstones only hide older records: drop them from the index. */
    for (size_t i = 0; i < s->nbucket; i++) {
        struct vol_ent **pp = &s->bucket[i];
        while (*pp) {
            if ((*pp)->tomb) {
                struct vol_ent *e = *pp;
                *pp = e->next;
                free(e);
                s->nent--;
            } else {
                pp = &(*pp)->next;
            }
        }
    }
    return 0;
}

int store_volume_open(const char *dir, const struct store_volume_opts *opts, struct store **out, char *err,
                      size_t errlen)
{
    static const struct store_ops ops = {
        .name = "volume",
        .put_begin = vol_put_begin,
        .put_write = vol_put_write,
        .put_commit = vol_put_commit,
        .put_abort = vol_put_abort,
        .open_read = vol_open_read,
        .read_at = vol_read_at,
        .read_close = vol_read_close,
        .stat = vol_stat,
        .remove = vol_remove,
        .scan = vol_scan,
        .usage = vol_usage,
        .destroy = vol_destroy,
    };
    *out = NULL;
    struct vol_store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    s->base.ops = &ops;
    if (opts)
        s->o = *opts;
    else
        store_volume_defaults(&s->o);
    if (s->o.small_max > VOL_BATCH_BYTES) /* compaction copies a record in one batch */
        s->o.small_max = VOL_BATCH_BYTES;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->sync_cv, NULL);
    pthread_cond_init(&s->compact_cv, NULL);
    for (int i = 0; i < VOL_STRIPES; i++)
        pthread_mutex_init(&s->stripe[i], NULL);
    s->nbucket = 1024;
    s->bucket = calloc(s->nbucket, sizeof(*s->bucket));
    int rc = s->bucket ? store_posix_open(dir, &s->files, err, errlen) : DYNO_ENOMEM;
    if (rc)
        goto out;
    int n = snprintf(s->vdir, sizeof(s->vdir), "%s/vol", dir);
    if (n < 0 || (size_t)n >= sizeof(s->vdir)) {
        rc = DYNO_EINVAL;
        goto out;
    }
    if (mkdir(s->vdir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", s->vdir, strerror(errno));
        rc = DYNO_EIO;
        goto out;
    }
    s->next_no = 1;
    rc = vol_open_volumes(s, err, errlen);
    if (rc)
        goto out;
    /* An id both in a volume and a file: a large put that replaced a small one crashed
     * before its tombstone. The file is the newer: write the tombstone now. */
    struct vol_shadow sh = {.s = s};
    rc = store_scan(s->files, vol_shadow_cb, &sh);
    for (size_t i = 0; rc == 0 && i < sh.n; i++)
        rc = vol_commit_record(s, sh.ids[i], true, NULL, 0, NULL);
    free(sh.ids);
    if (rc) {
        snprintf(err, errlen, "cannot reconcile volumes and files in %s", dir);
        goto out;
    }
    s->compactor_running = pthread_create(&s->compactor, NULL, vol_compact_main, s) == 0;
    *out = &s->base;
    return 0;
out:
    vol_destroy(&s->base);
    return rc;
}
