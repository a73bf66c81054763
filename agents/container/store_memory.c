/*
 * The memory backend of the fragment store: fragments held in the process's memory, for
 * caches and edge nodes. Nothing survives the process: a container restarted on this
 * backend comes back empty and registers so (used 0, fragments 0), and repair refills it
 * like a replaced disk.
 *
 * Bounded: committed bytes plus the bytes of puts in progress never exceed max_bytes; a
 * write that would pass it fails with DYNO_ENOSPC (the client's 507) and the put is then
 * aborted by the caller. Semantics as store.h: a put is private until commit, commit
 * replaces atomically, and a reader holds a reference on the version it opened (an
 * immutable blob), so a replace or remove never changes what it reads.
 */
#include "store.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynostore/error.h"

#define MEM_BUCKETS 4096 /* hash chains; fragments per container are thousands, not millions */

/* An immutable committed version of a fragment, shared by the table and its readers. */
struct mem_blob {
    size_t refs; /* guarded by the store's mu */
    uint64_t size;
    uint8_t data[];
};

struct mem_entry {
    struct mem_entry *next;
    char id[STORE_ID_MAX + 1];
    struct mem_blob *blob;
};

struct mem_store {
    struct store base;
    pthread_mutex_t mu; /* guards the table, used, count, pending and every blob's refs */
    uint64_t max_bytes;
    uint64_t used;    /* committed bytes */
    uint64_t count;   /* committed fragments */
    uint64_t pending; /* bytes held by puts in progress */
    struct mem_entry *bucket[MEM_BUCKETS];
};

struct mem_put { /* a struct store_put */
    struct mem_store *s;
    char id[STORE_ID_MAX + 1];
    uint8_t *buf;
    uint64_t len, cap; /* cap is what is counted in s->pending */
};

struct mem_read { /* a struct store_read */
    struct mem_store *s;
    struct mem_blob *blob;
};

static unsigned mem__hash(const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *id; id++)
        h = (h ^ (uint8_t)*id) * 16777619u;
    return h % MEM_BUCKETS;
}

/* The entry of id and the link that points to it; caller holds mu. */
static struct mem_entry **mem__find(struct mem_store *s, const char *id)
{
    struct mem_entry **pp = &s->bucket[mem__hash(id)];
    while (*pp && strcmp((*pp)->id, id) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* Drops one reference; caller holds mu. */
static void mem__unref(struct mem_blob *b)
{
    if (b && --b->refs == 0)
        free(b);
}

static int mem_put_begin(struct store *base, const char *id, struct store_put **out)
{
    *out = NULL;
    if (!store_valid_id(id, NULL, NULL))
        return DYNO_EINVAL;
    struct mem_put *p = calloc(1, sizeof(*p));
    if (!p)
        return DYNO_ENOMEM;
    p->s = (struct mem_store *)base;
    snprintf(p->id, sizeof(p->id), "%s", id);
    *out = (struct store_put *)p;
    return 0;
}

static int mem_put_write(struct store_put *sp, const void *data, size_t len)
{
    struct mem_put *p = (struct mem_put *)sp;
    struct mem_store *s = p->s;
    if (len == 0)
        return 0;
    if (p->len + len > p->cap) {
        uint64_t want = p->cap ? p->cap : 4096;
        while (want < p->len + len)
            want *= 2;
        pthread_mutex_lock(&s->mu);
        uint64_t others = s->used + s->pending - p->cap;
        if (others + want > s->max_bytes)
            want = p->len + len; /* the exact need may still fit where doubling does not */
        bool fits = others + want <= s->max_bytes;
        if (fits)
            s->pending += want - p->cap;
        pthread_mutex_unlock(&s->mu);
        if (!fits)
            return DYNO_ENOSPC;
        uint8_t *nb = want <= SIZE_MAX ? realloc(p->buf, (size_t)want) : NULL;
        if (!nb) {
            pthread_mutex_lock(&s->mu);
            s->pending -= want - p->cap;
            pthread_mutex_unlock(&s->mu);
            return DYNO_ENOMEM;
        }
        p->buf = nb;
        p->cap = want;
    }
    memcpy(p->buf + p->len, data, len);
    p->len += len;
    return 0;
}

static void mem_put_abort(struct store_put *sp)
{
    struct mem_put *p = (struct mem_put *)sp;
    if (!p)
        return;
    pthread_mutex_lock(&p->s->mu);
    p->s->pending -= p->cap;
    pthread_mutex_unlock(&p->s->mu);
    free(p->buf);
    free(p);
}

static int mem_put_commit(struct store_put *sp, uint64_t *size, uint64_t *old_size)
{
    struct mem_put *p = (struct mem_put *)sp;
    struct mem_store *s = p->s;
    struct mem_blob *b = malloc(sizeof(*b) + (size_t)p->len);
    struct mem_entry *fresh = malloc(sizeof(*fresh));
    if (!b || !fresh) {
        free(b);
        free(fresh);
        mem_put_abort(sp);
        return DYNO_ENOMEM;
    }
    b->refs = 1;
    b->size = p->len;
    if (p->len)
        memcpy(b->data, p->buf, (size_t)p->len);

    pthread_mutex_lock(&s->mu);
    struct mem_entry **pp = mem__find(s, p->id);
    uint64_t old = 0;
    if (*pp) {
        old = (*pp)->blob->size;
        mem__unref((*pp)->blob);
        (*pp)->blob = b;
        free(fresh);
    } else {
        snprintf(fresh->id, sizeof(fresh->id), "%s", p->id);
        fresh->blob = b;
        fresh->next = NULL;
        *pp = fresh;
        s->count++;
    }
    /* The put's reservation becomes the committed size (never more than it reserved). */
    s->used = s->used - old + p->len;
    s->pending -= p->cap;
    pthread_mutex_unlock(&s->mu);

    if (size)
        *size = p->len;
    if (old_size)
        *old_size = old;
    free(p->buf);
    free(p);
    return 0;
}

static int mem_open_read(struct store *base, const char *id, struct store_read **out, uint64_t *size)
{
    struct mem_store *s = (struct mem_store *)base;
    *out = NULL;
    if (!store_valid_id(id, NULL, NULL))
        return DYNO_EINVAL;
    struct mem_read *r = malloc(sizeof(*r));
    if (!r)
        return DYNO_ENOMEM;
    pthread_mutex_lock(&s->mu);
    struct mem_entry *e = *mem__find(s, id);
    if (e)
        e->blob->refs++;
    pthread_mutex_unlock(&s->mu);
    if (!e) {
        free(r);
        return DYNO_ENOTFOUND;
    }
    r->s = s;
    r->blob = e->blob;
    *size = r->blob->size;
    *out = (struct store_read *)r;
    return 0;
}

static int mem_read_at(struct store_read *sr, uint64_t off, void *buf, size_t len, size_t *got)
{
    const struct mem_read *r = (const struct mem_read *)sr;
    uint64_t size = r->blob->size; /* immutable: no lock needed */
    size_t n = off >= size ? 0 : (size - off < len ? (size_t)(size - off) : len);
    if (n)
        memcpy(buf, r->blob->data + off, n);
    *got = n;
    return 0;
}

static void mem_read_close(struct store_read *sr)
{
    struct mem_read *r = (struct mem_read *)sr;
    if (!r)
        return;
    pthread_mutex_lock(&r->s->mu);
    mem__unref(r->blob);
    pthread_mutex_unlock(&r->s->mu);
    free(r);
}

static int mem_stat(struct store *base, const char *id, uint64_t *size)
{
    struct mem_store *s = (struct mem_store *)base;
    if (!store_valid_id(id, NULL, NULL))
        return DYNO_EINVAL;
    pthread_mutex_lock(&s->mu);
    struct mem_entry *e = *mem__find(s, id);
    if (e)
        *size = e->blob->size;
    pthread_mutex_unlock(&s->mu);
    return e ? 0 : DYNO_ENOTFOUND;
}

static int mem_remove(struct store *base, const char *id, uint64_t *size)
{
    struct mem_store *s = (struct mem_store *)base;
    if (!store_valid_id(id, NULL, NULL))
        return DYNO_EINVAL;
    pthread_mutex_lock(&s->mu);
    struct mem_entry **pp = mem__find(s, id);
    struct mem_entry *e = *pp;
    if (e) {
        *pp = e->next;
        if (size)
            *size = e->blob->size;
        s->used -= e->blob->size;
        s->count--;
        mem__unref(e->blob);
    }
    pthread_mutex_unlock(&s->mu);
    free(e);
    return e ? 0 : DYNO_ENOTFOUND;
}

/* Calls fn outside the lock (it may call back into the store, as the scrubber does) on a
 * snapshot of ids and sizes. */
static int mem_scan(struct store *base, store_scan_fn fn, void *arg)
{
    struct mem_store *s = (struct mem_store *)base;
    struct snap {
        char id[STORE_ID_MAX + 1];
        uint64_t size;
    } *v = NULL;
    size_t n = 0;
    int rc = 0;

    pthread_mutex_lock(&s->mu);
    if (s->count) {
        v = malloc((size_t)s->count * sizeof(*v));
        if (!v)
            rc = DYNO_ENOMEM;
    }
    for (size_t i = 0; v && i < MEM_BUCKETS; i++)
        for (struct mem_entry *e = s->bucket[i]; e; e = e->next) {
            memcpy(v[n].id, e->id, sizeof(v[n].id));
            v[n++].size = e->blob->size;
        }
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = fn(arg, v[i].id, v[i].size);
    free(v);
    return rc;
}

static void mem_usage(struct store *base, uint64_t *used, uint64_t *fragments)
{
    struct mem_store *s = (struct mem_store *)base;
    pthread_mutex_lock(&s->mu);
    if (used)
        *used = s->used;
    if (fragments)
        *fragments = s->count;
    pthread_mutex_unlock(&s->mu);
}

static void mem_destroy(struct store *base)
{
    struct mem_store *s = (struct mem_store *)base;
    for (size_t i = 0; i < MEM_BUCKETS; i++) {
        struct mem_entry *e = s->bucket[i];
        while (e) {
            struct mem_entry *next = e->next;
            mem__unref(e->blob);
            free(e);
            e = next;
        }
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const struct store_ops mem_ops = {
    .name = "memory",
    .put_begin = mem_put_begin,
    .put_write = mem_put_write,
    .put_commit = mem_put_commit,
    .put_abort = mem_put_abort,
    .open_read = mem_open_read,
    .read_at = mem_read_at,
    .read_close = mem_read_close,
    .stat = mem_stat,
    .remove = mem_remove,
    .scan = mem_scan,
    .usage = mem_usage,
    .destroy = mem_destroy,
};

int store_memory_open(uint64_t max_bytes, struct store **out, char *err, size_t errlen)
{
    *out = NULL;
    if (max_bytes == 0) {
        snprintf(err, errlen, "the memory backend needs a positive byte limit");
        return DYNO_EINVAL;
    }
    struct mem_store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    s->base.ops = &mem_ops;
    s->max_bytes = max_bytes;
    pthread_mutex_init(&s->mu, NULL);
    *out = &s->base;
    return 0;
}
