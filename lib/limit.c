/*
 * Per-key rate and concurrency limits in a bounded table (lib/limit.h). A plain array
 * scanned under one mutex: the tables are small (thousands of keys) and are consulted once
 * per connection or login, next to work (a TCP accept, a PBKDF2) that costs far more.
 */
#include "limit.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dynostore/error.h"

struct limit_slot {
    char key[DYNO_LIMIT_KEY_MAX + 1]; /* "" = free */
    double tokens;                    /* rate: events left in the bucket at t_ms */
    int64_t t_ms;                     /* rate: when tokens was computed; -1 = never */
    int count;                        /* concurrency */
    int64_t used_ms;                  /* last use, for eviction */
};

struct dyno_limit {
    pthread_mutex_t lock;
    size_t cap;
    struct limit_slot *slots;
};

int dyno_limit_new(size_t cap, struct dyno_limit **out)
{
    struct dyno_limit *l;

    if (out == NULL || cap == 0 || cap > DYNO_LIMIT_CAP_MAX)
        return DYNO_EINVAL;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return DYNO_ENOMEM;
    l->slots = calloc(cap, sizeof(*l->slots));
    if (l->slots == NULL) {
        free(l);
        return DYNO_ENOMEM;
    }
    l->cap = cap;
    pthread_mutex_init(&l->lock, NULL);
    *out = l;
    return 0;
}

void dyno_limit_free(struct dyno_limit *l)
{
    if (l == NULL)
        return;
    pthread_mutex_destroy(&l->lock);
    free(l->slots);
    free(l);
}

/* The slot of key, made (or taken over) when absent; NULL when the table is full of
 * connections. Lock held. */
static struct limit_slot *limit__slot(struct dyno_limit *l, const char *key, int64_t now_ms, bool create)
{
    char k[DYNO_LIMIT_KEY_MAX + 1];
    struct limit_slot *free_slot = NULL, *lru = NULL;

    strncpy(k, key, DYNO_LIMIT_KEY_MAX);
    k[DYNO_LIMIT_KEY_MAX] = '\0';
    for (size_t i = 0; i < l->cap; i++) {
        struct limit_slot *s = &l->slots[i];

        if (s->key[0] == '\0') {
            if (free_slot == NULL)
                free_slot = s;
            continue;
        }
        if (strcmp(s->key, k) == 0)
            return s;
        if (s->count == 0 && (lru == NULL || s->used_ms < lru->used_ms))
            lru = s;
    }
    if (!create)
        return NULL;
    struct limit_slot *s = free_slot != NULL ? free_slot : lru;
    if (s == NULL)
        return NULL;
    memset(s, 0, sizeof(*s));
    memcpy(s->key, k, sizeof(k));
    s->t_ms = -1;
    s->used_ms = now_ms;
    return s;
}

bool dyno_limit_take(struct dyno_limit *l, const char *key, int64_t now_ms, double per_min, double burst,
                     int *retry_s)
{
    bool ok = false;
    double rate = per_min / 60000.0; /* events per ms */

    if (retry_s != NULL)
        *retry_s = 1;
    if (l == NULL || key == NULL || !(per_min > 0) || !(burst >= 1))
        return false;
    pthread_mutex_lock(&l->lock);
    struct limit_slot *s = limit__slot(l, key, now_ms, true);
    if (s == NULL)
        goto out;
    if (s->t_ms < 0) {
        s->tokens = burst;
    } else if (now_ms > s->t_ms) {
        s->tokens += (double)(now_ms - s->t_ms) * rate;
        if (s->tokens > burst)
            s->tokens = burst;
    }
    if (now_ms > s->t_ms)
        s->t_ms = now_ms;
    s->used_ms = now_ms;
    if (s->tokens >= 1.0) {
        s->tokens -= 1.0;
        ok = true;
    } else if (retry_s != NULL) {
        double wait_s = ceil((1.0 - s->tokens) / rate / 1000.0);
        *retry_s = wait_s < 1 ? 1 : wait_s > 86400 ? 86400 : (int)wait_s;
    }
out:
    pthread_mutex_unlock(&l->lock);
    return ok;
}

bool dyno_limit_enter(struct dyno_limit *l, const char *key, int64_t now_ms, int max)
{
    bool ok = false;

    if (l == NULL || key == NULL || max < 1)
        return false;
    pthread_mutex_lock(&l->lock);
    struct limit_slot *s = limit__slot(l, key, now_ms, true);
    if (s != NULL && s->count < max) {
        s->count++;
        s->used_ms = now_ms;
        ok = true;
    }
    pthread_mutex_unlock(&l->lock);
    return ok;
}

void dyno_limit_leave(struct dyno_limit *l, const char *key)
{
    if (l == NULL || key == NULL)
        return;
    pthread_mutex_lock(&l->lock);
    struct limit_slot *s = limit__slot(l, key, 0, false);
    if (s != NULL && s->count > 0)
        s->count--;
    pthread_mutex_unlock(&l->lock);
}

int dyno_limit_count(struct dyno_limit *l, const char *key)
{
    int n = 0;

    if (l == NULL || key == NULL)
        return 0;
    pthread_mutex_lock(&l->lock);
    struct limit_slot *s = limit__slot(l, key, 0, false);
    if (s != NULL)
        n = s->count;
    pthread_mutex_unlock(&l->lock);
    return n;
}
