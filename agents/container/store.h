/*
 * The fragment store of a data container: one small interface (a table of hooks, one
 * backend per file) so that posix, s3 and memory backends plug in the same way.
 *
 * A fragment is named by its id "<key>.<index>" (store_valid_id). A put streams into a
 * private temporary object and becomes visible only at commit, atomically replacing an
 * existing fragment of the same id; a committed fragment survives a crash (not in the
 * memory backend, which is empty after a restart). Readers that opened a fragment keep
 * reading the version they opened (the s3 backend cannot keep it: its reader gets
 * DYNO_EIO once the fragment is replaced or removed, never bytes of another version).
 *
 * The store keeps its own usage accounting (bytes and fragments of committed data),
 * computed by a scan when it opens and kept exact by commit and remove.
 *
 * Threads: every hook may be called from any thread; a put or read handle is used by one
 * thread at a time. Returns: 0 or a negative DYNO_E* code.
 */
#ifndef CONTAINER_STORE_H
#define CONTAINER_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "names.h"

#define STORE_ID_MAX (DYNO_KEY_LEN + 4) /* "<32 hex>.<0..255>" */

struct store;      /* a backend instance */
struct store_put;  /* a put in progress (backend-defined) */
struct store_read; /* an open fragment (backend-defined) */

/* Called once per committed fragment by scan; non-zero stops the scan and is returned. */
typedef int (*store_scan_fn)(void *arg, const char *id, uint64_t size);

struct store_ops {
    const char *name;
    /* Starts a put of id. *out is the caller's until put_commit or put_abort. */
    int (*put_begin)(struct store *s, const char *id, struct store_put **out);
    /* Appends len bytes. DYNO_EIO on a write error (the put must then be aborted). */
    int (*put_write)(struct store_put *p, const void *data, size_t len);
    /* Makes the data durable and visible (replacing any fragment of the same id) and frees
     * p, whatever the result; on failure nothing is left behind. *size: bytes committed;
     * *old_size: size of the replaced fragment, 0 when there was none (both may be NULL). */
    int (*put_commit)(struct store_put *p, uint64_t *size, uint64_t *old_size);
    /* Drops the put and everything it wrote; frees p. NULL is a no-op. */
    void (*put_abort)(struct store_put *p);
    /* Opens id for reading; DYNO_ENOTFOUND when absent. *size: its size. */
    int (*open_read)(struct store *s, const char *id, struct store_read **out, uint64_t *size);
    /* Reads up to len bytes at off; *got < len only at the end of the fragment. */
    int (*read_at)(struct store_read *r, uint64_t off, void *buf, size_t len, size_t *got);
    /* NULL is a no-op. */
    void (*read_close)(struct store_read *r);
    /* Size of a committed fragment; DYNO_ENOTFOUND when absent. */
    int (*stat)(struct store *s, const char *id, uint64_t *size);
    /* Removes a committed fragment durably; DYNO_ENOTFOUND when absent. *size: its size. */
    int (*remove)(struct store *s, const char *id, uint64_t *size);
    /* Calls fn for every committed fragment (no order). */
    int (*scan)(struct store *s, store_scan_fn fn, void *arg);
    /* Committed bytes and fragment count. */
    void (*usage)(struct store *s, uint64_t *used, uint64_t *fragments);
    /* Frees the instance (puts and reads must be finished). */
    void (*destroy)(struct store *s);
};

/* Every backend instance begins with this. */
struct store {
    const struct store_ops *ops;
};

/* True when id is "<key>.<index>": 32 lowercase hex, '.', a decimal 0..255 without
 * leading zeros. When key/index are non-NULL they receive the parts (key: 33 bytes). */
bool store_valid_id(const char *id, char *key, unsigned *index);

/*
 * The posix backend: a folder (local disk, NFS, Lustre). Layout <dir>/<key[0..1]>/<id>,
 * temporary files in <dir>/tmp/ (emptied here). dir is created when missing. A write is
 * fsynced, renamed into place and the folder fsynced before commit returns.
 * DYNO_EIO with a message in err when dir cannot be used.
 */
int store_posix_open(const char *dir, struct store **out, char *err, size_t errlen);

/*
 * The volume backend (store_volume.c): fragments up to small_max bytes are appended to
 * volume files in <dir>/vol/ with group commit (one fdatasync serves every put queued
 * behind it), larger ones are posix files in the same dir (store_posix_open's layout, so
 * a posix folder opens as it is). Removed and replaced records are reclaimed by a
 * compaction thread. Durability and atomicity as for posix: a commit or remove returns
 * once its record is on disk.
 */
struct store_volume_opts {
    uint64_t small_max;           /* fragments up to this go to volumes */
    uint64_t volume_max;          /* a volume is sealed once this big */
    double compact_ratio;         /* a volume is compacted when this share of it is dead */
    uint64_t compact_min;         /* ... and at least this many bytes */
    unsigned compact_interval_ms; /* how often the compaction thread looks */
};
void store_volume_defaults(struct store_volume_opts *o);
/* opts NULL: the defaults. */
int store_volume_open(const char *dir, const struct store_volume_opts *opts, struct store **out, char *err,
                      size_t errlen);
/* Runs compaction now, in the caller's thread: the number of volumes reclaimed, or a
 * DYNO_E* (tests, and the thread's own pass). */
int store_volume_compact(struct store *s);
/* Records appended and group-commit fdatasyncs since open (metrics, tests); 0 and 0 for
 * a store of another backend. */
void store_volume_stats(struct store *s, uint64_t *records, uint64_t *syncs);

/*
 * The memory backend (store_memory.c): fragments in this process's memory, for caches and
 * edge nodes; lost when the process ends (the container then registers empty and repair
 * refills it). Committed bytes plus puts in progress never pass max_bytes: a write that
 * would is DYNO_ENOSPC. DYNO_EINVAL with a message in err when max_bytes is 0.
 */
int store_memory_open(uint64_t max_bytes, struct store **out, char *err, size_t errlen);

/*
 * The s3 backend (store_s3.c): fragments as objects <prefix><id> of a bucket of an
 * S3-compatible service (path-style URLs, SigV4 by libcurl). A fragment over part_size is
 * a multipart upload; every object appears only when complete. Usage by a listing at open,
 * which also proves the endpoint and credentials. The secret is read from secret_file.
 * curl_global_init must have been called. DYNO_EINVAL/DYNO_EIO with a message in err.
 */
struct store_s3_opts {
    const char *endpoint; /* http(s)://host:port */
    const char *bucket;
    const char *prefix; /* "" or e.g. "c3/" */
    const char *region;
    const char *access_key;
    const char *secret_file;
    size_t part_size;  /* 5M..1G */
    unsigned list_max; /* keys per ListObjectsV2 page, 0 = the service's (tests: continuation) */
};
int store_s3_open(const struct store_s3_opts *o, struct store **out, char *err, size_t errlen);

/* File helpers every file-based backend needs (store.c). */
/* Reads up to len bytes of fd at off, through EINTR and short reads; *got < len only at
 * the end of the file. DYNO_EIO on a read error. */
int store_pread_full(int fd, void *buf, size_t len, uint64_t off, size_t *got);
/* fsyncs a folder so a create, rename or unlink in it is durable; filesystems that cannot
 * fsync a folder (EINVAL, EROFS) are taken as they are. */
int store_fsync_dir(const char *path);

/* Convenience wrappers over s->ops. */
static inline int store_put_begin(struct store *s, const char *id, struct store_put **out)
{
    return s->ops->put_begin(s, id, out);
}
static inline int store_put_write(struct store *s, struct store_put *p, const void *d, size_t n)
{
    return s->ops->put_write(p, d, n);
}
static inline int store_put_commit(struct store *s, struct store_put *p, uint64_t *size, uint64_t *old)
{
    return s->ops->put_commit(p, size, old);
}
static inline void store_put_abort(struct store *s, struct store_put *p)
{
    s->ops->put_abort(p);
}
static inline int store_open_read(struct store *s, const char *id, struct store_read **out, uint64_t *size)
{
    return s->ops->open_read(s, id, out, size);
}
static inline int store_read_at(struct store *s, struct store_read *r, uint64_t off, void *buf, size_t len,
                                size_t *got)
{
    return s->ops->read_at(r, off, buf, len, got);
}
static inline void store_read_close(struct store *s, struct store_read *r)
{
    s->ops->read_close(r);
}
static inline int store_stat(struct store *s, const char *id, uint64_t *size)
{
    return s->ops->stat(s, id, size);
}
static inline int store_remove(struct store *s, const char *id, uint64_t *size)
{
    return s->ops->remove(s, id, size);
}
static inline int store_scan(struct store *s, store_scan_fn fn, void *arg)
{
    return s->ops->scan(s, fn, arg);
}
static inline void store_usage(struct store *s, uint64_t *used, uint64_t *fragments)
{
    s->ops->usage(s, used, fragments);
}
/* NULL is a no-op. */
static inline void store_free(struct store *s)
{
    if (s)
        s->ops->destroy(s);
}
#endif
