/*
 * LRU fragment cache: a chained hash table over fragment ids plus a doubly linked list in
 * use order (head = most recent). Entries are reference counted so that an eviction while
 * a response still streams from an entry frees it only when the response is done.
 */
#include "cache.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dynostore/error.h"
#include "store.h"

#define CACHE_BUCKETS 4096

struct container_cache_entry {
    struct container_cache_entry *hnext;       /* hash chain */
    struct container_cache_entry *prev, *next; /* LRU list */
    bool linked;                               /* in the table and list */
    unsigned refs;
    uint8_t *data;
    size_t size;
    char id[STORE_ID_MAX + 1];
};

struct container_cache {
    pthread_mutex_t mu;
    size_t max_bytes, item_max, bytes;
    uint64_t epoch;
    struct container_cache_entry *head, *tail;
    struct container_cache_entry *buckets[CACHE_BUCKETS];
};

static size_t cache_hash(const char *id)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % CACHE_BUCKETS;
}

int container_cache_new(size_t max_bytes, size_t item_max, struct container_cache **out)
{
    struct container_cache *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (!c)
        return DYNO_ENOMEM;
    pthread_mutex_init(&c->mu, NULL);
    c->max_bytes = max_bytes;
    c->item_max = max_bytes == 0 ? 0 : (item_max < max_bytes ? item_max : max_bytes);
    *out = c;
    return 0;
}

static void cache_entry_free(struct container_cache_entry *e)
{
    free(e->data);
    free(e);
}

/* Unlinks e from table and list (mu held); frees it if nobody holds a reference. */
static void cache_unlink(struct container_cache *c, struct container_cache_entry *e)
{
    struct container_cache_entry **pp = &c->buckets[cache_hash(e->id)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = e->hnext = NULL;
    e->linked = false;
    c->bytes -= e->size;
    if (e->refs == 0)
        cache_entry_free(e);
}

static struct container_cache_entry *cache_find(struct container_cache *c, const char *id)
{
    for (struct container_cache_entry *e = c->buckets[cache_hash(id)]; e; e = e->hnext)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

void container_cache_free(struct container_cache *c)
{
    if (!c)
        return;
    while (c->head)
        cache_unlink(c, c->head);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

size_t container_cache_item_max(const struct container_cache *c)
{
    return c->item_max;
}

struct container_cache_entry *container_cache_get(struct container_cache *c, const char *id)
{
    if (c->max_bytes == 0)
        return NULL;
    pthread_mutex_lock(&c->mu);
    struct container_cache_entry *e = cache_find(c, id);
    if (e) {
        e->refs++;
        if (c->head != e) { /* move to front */
            e->prev->next = e->next;
            if (e->next)
                e->next->prev = e->prev;
            else
                c->tail = e->prev;
            e->prev = NULL;
            e->next = c->head;
            c->head->prev = e;
            c->head = e;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return e;
}

const uint8_t *container_cache_entry_data(const struct container_cache_entry *e, size_t *size)
{
    *size = e->size;
    return e->data;
}

void container_cache_release(struct container_cache *c, struct container_cache_entry *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&c->mu);
    e->refs--;
    bool gone = e->refs == 0 && !e->linked;
    pthread_mutex_unlock(&c->mu);
    if (gone)
        cache_entry_free(e);
}

uint64_t container_cache_epoch(struct container_cache *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t e = c->epoch;
    pthread_mutex_unlock(&c->mu);
    return e;
}

void container_cache_insert(struct container_cache *c, const char *id, uint64_t epoch, uint8_t *take_data,
                            size_t size)
{
    struct container_cache_entry *e = NULL;

    if (c->max_bytes == 0 || size > c->item_max || strlen(id) > STORE_ID_MAX)
        goto out;
    e = calloc(1, sizeof(*e));
    if (!e)
        goto out;
    e->data = take_data;
    e->size = size;
    memcpy(e->id, id, strlen(id) + 1);
    take_data = NULL;

    pthread_mutex_lock(&c->mu);
    if (epoch != c->epoch) {
        pthread_mutex_unlock(&c->mu);
        goto out;
    }
    struct container_cache_entry *old = cache_find(c, id);
    if (old)
        cache_unlink(c, old);
    while (c->tail && c->bytes + size > c->max_bytes)
        cache_unlink(c, c->tail);
    size_t b = cache_hash(id);
    e->hnext = c->buckets[b];
    c->buckets[b] = e;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
    e->linked = true;
    c->bytes += size;
    e = NULL;
    pthread_mutex_unlock(&c->mu);
out:
    if (e)
        cache_entry_free(e); /* also frees the data it took */
    free(take_data);
}

void container_cache_invalidate(struct container_cache *c, const char *id)
{
    if (c->max_bytes == 0)
        return;
    pthread_mutex_lock(&c->mu);
    c->epoch++;
    struct container_cache_entry *e = cache_find(c, id);
    if (e)
        cache_unlink(c, e);
    pthread_mutex_unlock(&c->mu);
}
