/*
 * An LRU cache of whole fragments in memory, bounded in bytes, for hot small fragments.
 * Entries hold bytes that were CRC-verified when inserted, so a hit is served without
 * reading the disk again. Every call is thread-safe (one mutex).
 *
 * Staleness: a reader takes container_cache_epoch() before it opens a fragment and passes
 * it to container_cache_insert(); any invalidation in between (a PUT or DELETE of any
 * fragment) makes the insert a no-op, so a slow reader of an old version never caches it.
 */
#ifndef CONTAINER_CACHE_H
#define CONTAINER_CACHE_H
#include <stddef.h>
#include <stdint.h>

struct container_cache;
struct container_cache_entry;

/* max_bytes: bound on cached bytes (0 disables the cache); item_max: largest fragment kept. */
int container_cache_new(size_t max_bytes, size_t item_max, struct container_cache **out);
/* NULL is a no-op. Entries still referenced must have been released. */
void container_cache_free(struct container_cache *c);
/* Largest fragment the cache takes (0 when disabled). */
size_t container_cache_item_max(const struct container_cache *c);
/* A referenced entry for id (the caller releases it), or NULL on a miss. Counts as a use. */
struct container_cache_entry *container_cache_get(struct container_cache *c, const char *id);
/* The entry's bytes (borrowed while the reference is held). */
const uint8_t *container_cache_entry_data(const struct container_cache_entry *e, size_t *size);
/* Drops a reference from container_cache_get; NULL is a no-op. */
void container_cache_release(struct container_cache *c, struct container_cache_entry *e);
uint64_t container_cache_epoch(struct container_cache *c);
/* Takes data (malloc'd; freed here whatever happens) as the bytes of id, unless the epoch
 * moved since the caller read it, or size is over item_max. Evicts LRU entries to fit. */
void container_cache_insert(struct container_cache *c, const char *id, uint64_t epoch, uint8_t *take_data,
                            size_t size);
/* Drops id (if cached) and moves the epoch. */
void container_cache_invalidate(struct container_cache *c, const char *id);
#endif
