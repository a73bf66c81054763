/*
 * Per-key limits in a bounded table (issue 9, unauthenticated exhaustion): a token bucket
 * per key for rates (logins per client address and per username) and a counter per key for
 * concurrency (connections per client address).
 *
 * The table holds at most cap keys, whatever the callers send: a new key takes a free slot,
 * else the least recently used slot that counts no connection (a rate key evicted that way
 * starts again with a full bucket: an attacker who floods the table with keys gains at most
 * one burst per eviction, and the table never grows). When every slot counts connections,
 * a new key is refused: the table fails closed.
 *
 * Time is passed in (now_ms, any monotonic clock) so that tests control it. Every function
 * is thread-safe (one mutex) and O(cap).
 */
#ifndef DYNO_LIMIT_H
#define DYNO_LIMIT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DYNO_LIMIT_KEY_MAX 127 /* longer keys are cut to this many bytes */
#define DYNO_LIMIT_CAP_MAX (1 << 20)

struct dyno_limit;

/* A table of cap (1..DYNO_LIMIT_CAP_MAX) keys. 0, DYNO_EINVAL or DYNO_ENOMEM. */
int dyno_limit_new(size_t cap, struct dyno_limit **out);
/* NULL is a no-op. */
void dyno_limit_free(struct dyno_limit *l);

/*
 * Rate: true when key may have one more event at now_ms, and counts it. A key has a bucket
 * of burst events (>= 1), refilled at per_min events a minute (> 0). false when the bucket
 * is empty (or the table is full of connections), with *retry_s (may be NULL) the whole
 * seconds, at least 1, after which one event will be allowed.
 */
bool dyno_limit_take(struct dyno_limit *l, const char *key, int64_t now_ms, double per_min, double burst,
                     int *retry_s);

/* Concurrency: true when key holds fewer than max, and counts one more; every true must be
 * matched by one dyno_limit_leave. false when key holds max already, or the table is full. */
bool dyno_limit_enter(struct dyno_limit *l, const char *key, int64_t now_ms, int max);
/* Counts one less for key (no-op for a key that holds none). */
void dyno_limit_leave(struct dyno_limit *l, const char *key);
/* The count of key (0 for an unknown key); for tests and metrics. */
int dyno_limit_count(struct dyno_limit *l, const char *key);
#endif
