/*
 * Fragment placement: choose n distinct online containers with the lowest utilization
 * factor UF = (used + share) / capacity, preferring containers on sites not yet chosen.
 * Pure function: no I/O, no clock; metadata feeds it exact usage (committed fragment
 * bytes plus pending reservations).
 */
#ifndef DYNO_PLACEMENT_H
#define DYNO_PLACEMENT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dyno_place_node {
    const char *id;
    const char *site; /* NULL or "" = a site of its own */
    uint64_t capacity;
    uint64_t used;
    bool online;
};

/*
 * Writes n indices into nodes to idx_out, in the order chosen (lowest UF first, distinct
 * sites first). A node qualifies when online and capacity - used >= share.
 * DYNO_EUNAVAIL when fewer than n nodes qualify (nothing written); DYNO_EINVAL for n == 0.
 * Ties in UF break by id, so the result is deterministic.
 */
int dyno_place(const struct dyno_place_node *nodes, size_t count, size_t n, uint64_t share, size_t *idx_out);
#endif
