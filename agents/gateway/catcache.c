/*
 * A short-lived cache of catalog records (pubsub catalog.get results), so a put or a get
 * does not pay a broker round trip to pubsub for the catalog's policy every time.
 *
 * Correctness comes from invalidation, not from the TTL: pubsub publishes the retained
 * dyno/v1/acl/<catalog> record on every change of a catalog (create, share, delete), the
 * gateway drops that entry when it arrives, and drops everything on every broker
 * (re)connect, since changes may have been missed while it was away. The TTL only bounds
 * the damage of a lost message. A generation counter stops a catalog.get that was in
 * flight during an invalidation from re-inserting what it read before it.
 *
 * Threads: lookups and inserts from MHD and worker threads, invalidations from the
 * libmosquitto loop thread; one mutex, held only for short copies.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "names.h"

#define CATCACHE_SLOTS 256
#define CATCACHE_TTL_MS 10000

struct catcache_entry {
    char catalog[DYNO_CATALOG_MAX + 1];
    cJSON *record; /* owned */
    int64_t at_ms;
};

struct gw_catcache {
    pthread_mutex_t mu;
    uint64_t gen;
    struct catcache_entry slot[CATCACHE_SLOTS];
};

static size_t slot_of(const char *catalog)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)catalog; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)(h % CATCACHE_SLOTS);
}

int gw_catcache_new(struct gw_catcache **out)
{
    struct gw_catcache *c = calloc(1, sizeof(*c));
    if (!c)
        return DYNO_ENOMEM;
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return 0;
}

void gw_catcache_free(struct gw_catcache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < CATCACHE_SLOTS; i++)
        cJSON_Delete(c->slot[i].record);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

cJSON *gw_catcache_get(struct gw_catcache *c, const char *catalog, uint64_t *gen)
{
    cJSON *copy = NULL;
    pthread_mutex_lock(&c->mu);
    *gen = c->gen;
    struct catcache_entry *e = &c->slot[slot_of(catalog)];
    if (e->record && strcmp(e->catalog, catalog) == 0 && gw_now_ms() - e->at_ms < CATCACHE_TTL_MS)
        copy = cJSON_Duplicate(e->record, 1);
    pthread_mutex_unlock(&c->mu);
    return copy;
}

void gw_catcache_put(struct gw_catcache *c, const char *catalog, const cJSON *record, uint64_t gen)
{
    if (strlen(catalog) > DYNO_CATALOG_MAX)
        return;
    cJSON *copy = cJSON_Duplicate(record, 1);
    if (!copy)
        return;
    pthread_mutex_lock(&c->mu);
    if (gen == c->gen) {
        struct catcache_entry *e = &c->slot[slot_of(catalog)];
        cJSON_Delete(e->record);
        memcpy(e->catalog, catalog, strlen(catalog) + 1);
        e->record = copy;
        e->at_ms = gw_now_ms();
        copy = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    cJSON_Delete(copy);
}

void gw_catcache_invalidate(struct gw_catcache *c, const char *catalog)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->gen++;
    size_t first = catalog ? slot_of(catalog) : 0, last = catalog ? first + 1 : CATCACHE_SLOTS;
    for (size_t i = first; i < last; i++) {
        struct catcache_entry *e = &c->slot[i];
        if (e->record && (!catalog || strcmp(e->catalog, catalog) == 0)) {
            cJSON_Delete(e->record);
            e->record = NULL;
        }
    }
    pthread_mutex_unlock(&c->mu);
}
