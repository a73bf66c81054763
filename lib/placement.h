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

/*
 * The site rule (docs/architecture.md, "Placement"): an object survives the loss of a whole
 * site only when no site holds more of its fragments than it can lose (m; m for the m + 1
 * replicas of a small object too).
 */
struct dyno_place_rule {
    size_t site_max;         /* most fragments of the object on one site; 0 = no cap */
    const char *const *held; /* sites of the object's fragments that stay where they are */
    size_t nheld;            /* (repair and drain place around them); NULL/"" = own site */
};

/*
 * dyno_place under a rule (NULL: no cap, nothing held, the same as dyno_place). Held sites
 * count towards the cap and are "used" for the distinct-sites-first preference.
 * DYNO_EUNAVAIL when fewer than n nodes qualify; DYNO_ECONFLICT when enough qualify but
 * the cap leaves room for fewer than n on their sites (nothing written in either case);
 * DYNO_EINVAL for n == 0 or held missing. Deterministic, like dyno_place.
 */
int dyno_place_spread(const struct dyno_place_node *nodes, size_t count, size_t n, uint64_t share,
                      const struct dyno_place_rule *rule, size_t *idx_out);
#endif
