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

/* True when a node already chosen sits on nd's site. A node without a site is a site of
 * its own, so it never clashes. */
static bool site_taken(const struct dyno_place_node *nodes, const size_t *chosen, size_t nchosen,
                       const struct dyno_place_node *nd)
{
    if (!has_site(nd))
        return false;
    for (size_t i = 0; i < nchosen; i++) {
        const struct dyno_place_node *c = &nodes[chosen[i]];
        if (has_site(c) && strcmp(c->site, nd->site) == 0)
            return true;
    }
    return false;
}

static bool is_chosen(const size_t *chosen, size_t nchosen, size_t idx)
{
    for (size_t i = 0; i < nchosen; i++) {
        if (chosen[i] == idx)
            return true;
    }
    return false;
}

int dyno_place(const struct dyno_place_node *nodes, size_t count, size_t n, uint64_t share, size_t *idx_out)
{
    size_t qualifying = 0;

    if (n == 0 || !idx_out || (count > 0 && !nodes))
        return DYNO_EINVAL;
    for (size_t i = 0; i < count; i++) {
        if (qualifies(&nodes[i], share))
            qualifying++;
    }
    if (qualifying < n)
        return DYNO_EUNAVAIL;

    /*
     * Greedy, one pick per round: the lowest-UF qualifying node on a site not yet used;
     * once every site is used, the lowest-UF node left. idx_out doubles as the chosen
     * set, and is only ever written with the final picks, in order. n <= count here, so
     * the O(n^2 * count) cost is bounded by the (small) number of containers.
     */
    for (size_t round = 0; round < n; round++) {
        size_t best = count, best_any = count;
        for (size_t i = 0; i < count; i++) {
            const struct dyno_place_node *nd = &nodes[i];
            if (!qualifies(nd, share) || is_chosen(idx_out, round, i))
                continue;
            if (best_any == count || compare(nd, i, &nodes[best_any], best_any, share) < 0)
                best_any = i;
            if (site_taken(nodes, idx_out, round, nd))
                continue;
            if (best == count || compare(nd, i, &nodes[best], best, share) < 0)
                best = i;
        }
        idx_out[round] = best != count ? best : best_any;
    }
    return 0;
}
