/*
 * Fragment placement by utilization factor. Pure and deterministic: the same inputs give
 * the same choice on every replica of the metadata service.
 */
#include "placement.h"

#include <string.h>

#include "dynostore/error.h"

/* 64 x 64 -> 128-bit product as hi:lo, so UF comparisons need neither floating point
 * (whose rounding could make two replicas disagree) nor the non-ISO __int128. */
static void mul128(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo)
{
    uint64_t a_lo = a & 0xffffffffu, a_hi = a >> 32;
    uint64_t b_lo = b & 0xffffffffu, b_hi = b >> 32;
    uint64_t p0 = a_lo * b_lo, p1 = a_lo * b_hi, p2 = a_hi * b_lo, p3 = a_hi * b_hi;
    uint64_t mid = (p0 >> 32) + (p1 & 0xffffffffu) + (p2 & 0xffffffffu);

    *lo = (p0 & 0xffffffffu) | (mid << 32);
    *hi = p3 + (p1 >> 32) + (p2 >> 32) + (mid >> 32);
}

static bool qualifies(const struct dyno_place_node *nd, uint64_t share)
{
    /* capacity 0 would make UF undefined; used > capacity leaves no room at all. */
    return nd->online && nd->capacity > 0 && nd->used <= nd->capacity && nd->capacity - nd->used >= share;
}

/* Negative, 0, positive as a's UF (then id) is lower, equal, higher than b's. Both qualify,
 * so used + share <= capacity cannot overflow. */
static int compare(const struct dyno_place_node *a, size_t ia, const struct dyno_place_node *b, size_t ib,
                   uint64_t share)
{
    uint64_t ahi, alo, bhi, blo;

    /* (ua + s) / ca < (ub + s) / cb  <=>  (ua + s) * cb < (ub + s) * ca */
    mul128(a->used + share, b->capacity, &ahi, &alo);
    mul128(b->used + share, a->capacity, &bhi, &blo);
    if (ahi != bhi)
        return ahi < bhi ? -1 : 1;
    if (alo != blo)
        return alo < blo ? -1 : 1;
    int c = strcmp(a->id ? a->id : "", b->id ? b->id : "");
    if (c != 0)
        return c;
    /* Duplicate ids are a caller bug, but the answer must still be deterministic. */
    return ia < ib ? -1 : (ia > ib ? 1 : 0);
}

static bool has_site(const struct dyno_place_node *nd)
{
    return nd->site && nd->site[0] != '\0';
}

/* Same site: two nodes without a site never share one (each is a site of its own). */
static bool same_site(const char *a, const char *b)
{
    return a && b && a[0] != '\0' && b[0] != '\0' && strcmp(a, b) == 0;
}

/* Fragments of the object already on nd's site: the held ones (rule) plus those chosen. */
static size_t site_load(const struct dyno_place_node *nodes, const size_t *chosen, size_t nchosen,
                        const struct dyno_place_rule *rule, const struct dyno_place_node *nd)
{
    size_t load = 0;
    if (!has_site(nd))
        return 0;
    for (size_t i = 0; rule && i < rule->nheld; i++)
        load += same_site(rule->held[i], nd->site);
    for (size_t i = 0; i < nchosen; i++)
        load += same_site(nodes[chosen[i]].site, nd->site);
    return load;
}

static bool is_chosen(const size_t *chosen, size_t nchosen, size_t idx)
{
    for (size_t i = 0; i < nchosen; i++) {
        if (chosen[i] == idx)
            return true;
    }
    return false;
}

/* Whether node i is the first qualifying node of its site (so each site is counted once). */
static bool first_of_site(const struct dyno_place_node *nodes, size_t i, uint64_t share)
{
    for (size_t j = 0; j < i; j++) {
        if (qualifies(&nodes[j], share) && same_site(nodes[j].site, nodes[i].site))
            return false;
    }
    return true;
}

/*
 * How many fragments the qualifying nodes can take under the cap: per site, the smaller
 * of its qualifying nodes and the room the cap leaves beside what the site already holds.
 * A node without a site counts one (a site of its own holding nothing).
 */
static size_t spread_room(const struct dyno_place_node *nodes, size_t count, uint64_t share,
                          const struct dyno_place_rule *rule)
{
    size_t room = 0;
    for (size_t i = 0; i < count; i++) {
        const struct dyno_place_node *nd = &nodes[i];
        if (!qualifies(nd, share))
            continue;
        if (!has_site(nd)) {
            room += 1;
            continue;
        }
        if (!first_of_site(nodes, i, share))
            continue;
        size_t q = 0;
        for (size_t j = i; j < count; j++)
            q += qualifies(&nodes[j], share) && same_site(nodes[j].site, nd->site);
        size_t held = site_load(nodes, NULL, 0, rule, nd);
        size_t left = held >= rule->site_max ? 0 : rule->site_max - held;
        room += q < left ? q : left;
    }
    return room;
}

int dyno_place_spread(const struct dyno_place_node *nodes, size_t count, size_t n, uint64_t share,
                      const struct dyno_place_rule *rule, size_t *idx_out)
{
    size_t qualifying = 0;

    if (n == 0 || !idx_out || (count > 0 && !nodes) || (rule && rule->nheld > 0 && !rule->held))
        return DYNO_EINVAL;
    for (size_t i = 0; i < count; i++) {
        if (qualifies(&nodes[i], share))
            qualifying++;
    }
    if (qualifying < n)
        return DYNO_EUNAVAIL;
    bool capped = rule && rule->site_max > 0;
    if (capped && spread_room(nodes, count, share, rule) < n)
        return DYNO_ECONFLICT;

    /*
     * Greedy, one pick per round: the lowest-UF qualifying node on a site that holds
     * nothing of the object yet; once every site holds some, the lowest-UF node on a site
     * still under the cap. Each pick uses up exactly one unit of spread_room (its site had
     * both a free node and room under the cap), so when the room was >= n every round finds
     * a node. idx_out doubles as the chosen set, and is only ever written with the final
     * picks, in order. n <= count here, so the O(n^2 * count) cost is bounded by the (small)
     * number of containers.
     */
    for (size_t round = 0; round < n; round++) {
        size_t best = count, best_any = count;
        for (size_t i = 0; i < count; i++) {
            const struct dyno_place_node *nd = &nodes[i];
            if (!qualifies(nd, share) || is_chosen(idx_out, round, i))
                continue;
            size_t load = site_load(nodes, idx_out, round, rule, nd);
            if (capped && load >= rule->site_max)
                continue;
            if (best_any == count || compare(nd, i, &nodes[best_any], best_any, share) < 0)
                best_any = i;
            if (load > 0)
                continue;
            if (best == count || compare(nd, i, &nodes[best], best, share) < 0)
                best = i;
        }
        if (best_any == count) /* cannot happen (see above); never write a bad index */
            return DYNO_EINTERNAL;
        idx_out[round] = best != count ? best : best_any;
    }
    return 0;
}

int dyno_place(const struct dyno_place_node *nodes, size_t count, size_t n, uint64_t share, size_t *idx_out)
{
    return dyno_place_spread(nodes, count, n, share, NULL, idx_out);
}
