/* Per-user token buckets (au_limit.h). */
#include "au_limit.h"

#include <dynostore/error.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

struct limit_bucket {
    char user[DYNO_SEG_MAX + 1];
    double units; /* at time at */
    double at;
};

struct au_limit {
    pthread_mutex_t mu;
    double rate; /* units per second */
    double burst;
    struct limit_bucket *v; /* sorted by user */
    size_t n, max;
};

int au_limit_new(double per_minute, double burst, size_t max_users, struct au_limit **out)
{
    *out = NULL;
    if (!(per_minute > 0) || !(burst >= 1) || max_users < 1)
        return DYNO_EINVAL;
    struct au_limit *l = calloc(1, sizeof(*l));
    if (!l)
        return DYNO_ENOMEM;
    l->v = calloc(max_users, sizeof(*l->v));
    if (!l->v || pthread_mutex_init(&l->mu, NULL) != 0) {
        free(l->v);
        free(l);
        return DYNO_ENOMEM;
    }
    l->rate = per_minute / 60.0;
    l->burst = burst;
    l->max = max_users;
    *out = l;
    return 0;
}

void au_limit_free(struct au_limit *l)
{
    if (!l)
        return;
    pthread_mutex_destroy(&l->mu);
    free(l->v);
    free(l);
}

/* The units of b at now (refilled, capped at burst). */
static double limit_units(const struct au_limit *l, const struct limit_bucket *b, double now)
{
    double u = b->units + (now > b->at ? (now - b->at) * l->rate : 0);
    return u > l->burst ? l->burst : u;
}

static size_t limit_find(const struct au_limit *l, const char *user, bool *found)
{
    return dyno_name_search(l->v, l->n, sizeof(l->v[0]), offsetof(struct limit_bucket, user), user, found);
}

/* Drops the buckets that are full again. Locked. */
static void limit_forget_full(struct au_limit *l, double now)
{
    size_t w = 0;
    for (size_t r = 0; r < l->n; r++)
        if (limit_units(l, &l->v[r], now) < l->burst)
            l->v[w++] = l->v[r];
    l->n = w;
}

int au_limit_take(struct au_limit *l, const char *user, double now, int64_t *retry_after)
{
    bool found;
    int rc = 0;

    *retry_after = 0;
    if (!l)
        return 0;
    if (!dyno_valid_segment(user))
        return DYNO_EINVAL;
    pthread_mutex_lock(&l->mu);
    size_t at = limit_find(l, user, &found);
    if (!found) {
        if (l->n == l->max) {
            limit_forget_full(l, now);
            at = limit_find(l, user, &found);
        }
        if (l->n == l->max) {
            *retry_after = 1;
            rc = DYNO_ELIMIT;
            goto out;
        }
        memmove(&l->v[at + 1], &l->v[at], (l->n - at) * sizeof(l->v[0]));
        memset(&l->v[at], 0, sizeof(l->v[at]));
        memcpy(l->v[at].user, user, strlen(user) + 1);
        l->v[at].units = l->burst;
        l->v[at].at = now;
        l->n++;
    }
    struct limit_bucket *b = &l->v[at];
    double u = limit_units(l, b, now);
    if (u < 1) {
        double wait = ceil((1 - u) / l->rate);
        *retry_after = wait < 1 ? 1 : (int64_t)wait;
        rc = DYNO_ELIMIT;
        goto out;
    }
    b->units = u - 1;
    b->at = now;
out:
    pthread_mutex_unlock(&l->mu);
    return rc;
}
