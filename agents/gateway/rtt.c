/*
 * Per-container latency (dp.h, "container latency"): a smoothed round-trip time for each
 * container the gateway read fragments from, which the get core orders its remote candidates
 * by. A sample is a fragment GET's time to its first body byte (the request's way there, the
 * container finding the fragment, the first bytes' way back): across a wide-area link that is
 * the link's round trip, on one site a millisecond or so. A read that got no answer in the
 * fragment timeout counts as a sample of that timeout.
 *
 * The estimate is the EWMA (a new sample weighs 1/4) or, when lower, the floor: the lowest
 * sample of about the last GW_RTT_FLOOR_MS. A wide-area link never answers below its round
 * trip, so both are high; a container of the same site that answered slowly once (a loaded
 * machine, a pause) keeps its low floor and stays near, instead of being passed over, with
 * a decode on every read, until its estimate came down again, which it cannot while it is
 * not read. A container that became slow for good is far once its old floor has aged out of
 * the window. A read that got no answer in the fragment timeout (gw_rtt_silent) lifts the
 * floor to that timeout.
 *
 * An estimate is forgotten GW_RTT_TTL_MS after its last sample. A container measured slow is
 * read only when the nearer ones are not enough, so without that its estimate would never
 * move again, and a link that became fast again would never be noticed. Forgotten, it is
 * "unknown" again, which the read order treats as near: the next read that reaches it in
 * data-first order measures it afresh.
 */
#include <stdio.h>
#include <string.h>

#include "gw.h"
#include "names.h"

void gw_rtt_init(struct gw_rtt *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    r->ready = true;
}

void gw_rtt_destroy(struct gw_rtt *r)
{
    if (r->ready)
        pthread_mutex_destroy(&r->mu);
    r->ready = false;
}

/* The slot of container (r->mu held), or NULL. */
static struct gw_rtt_slot *rtt__find(struct gw_rtt *r, const char *container)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->slot[i].container, container) == 0)
            return &r->slot[i];
    return NULL;
}

static bool rtt__fresh(const struct gw_rtt_slot *s, int64_t now_ms)
{
    return now_ms - s->at_ms <= GW_RTT_TTL_MS;
}

/* One sample; silent: the container did not answer in us (the fragment timeout). */
static void rtt__sample(struct gw_rtt *r, const char *container, int64_t us, int64_t now_ms, bool silent)
{
    if (!r->ready || !container || !dyno_valid_segment(container))
        return;
    if (us < 0)
        us = 0;
    pthread_mutex_lock(&r->mu);
    struct gw_rtt_slot *s = rtt__find(r, container);
    if (!s) {
        if (r->n < GW_RTT_SLOTS) {
            s = &r->slot[r->n++];
        } else {
            /* A full table (more containers than slots): the one sampled longest ago goes
             * (unknown again, as if forgotten). */
            s = &r->slot[0];
            for (int i = 1; i < r->n; i++)
                if (r->slot[i].at_ms < s->at_ms)
                    s = &r->slot[i];
        }
        snprintf(s->container, sizeof(s->container), "%s", container);
        s->at_ms = now_ms - GW_RTT_TTL_MS - 1; /* as forgotten: a first sample */
    }
    if (!rtt__fresh(s, now_ms)) {
        /* The first sample is the estimate, as TCP's SRTT (RFC 6298), and the floor. */
        s->srtt_us = s->floor_us = us;
        s->floor_at_ms = now_ms;
    } else {
        s->srtt_us += (us - s->srtt_us) / GW_RTT_EWMA_DIV;
        /* The floor: the lowest sample of the last GW_RTT_FLOOR_MS, approximately (a lower
         * one replaces it, and once it is older than the window the next sample does). */
        if (us <= s->floor_us || now_ms - s->floor_at_ms > GW_RTT_FLOOR_MS) {
            s->floor_us = us;
            s->floor_at_ms = now_ms;
        }
    }
    if (silent && s->floor_us < us) {
        /* No answer at all is no spike: far until it answers fast again or is forgotten. */
        s->floor_us = us;
        s->floor_at_ms = now_ms;
    }
    s->at_ms = now_ms;
    pthread_mutex_unlock(&r->mu);
}

void gw_rtt_note(struct gw_rtt *r, const char *container, int64_t us, int64_t now_ms)
{
    rtt__sample(r, container, us, now_ms, false);
}

void gw_rtt_silent(struct gw_rtt *r, const char *container, int64_t us, int64_t now_ms)
{
    rtt__sample(r, container, us, now_ms, true);
}

/* What the read order uses: the EWMA, or the floor when it is lower (s->mu held). */
static int64_t rtt__estimate(const struct gw_rtt_slot *s)
{
    return s->floor_us < s->srtt_us ? s->floor_us : s->srtt_us;
}

int64_t gw_rtt_get(struct gw_rtt *r, const char *container, int64_t now_ms)
{
    int64_t us = -1;
    if (!r->ready || !container)
        return -1;
    pthread_mutex_lock(&r->mu);
    const struct gw_rtt_slot *s = rtt__find(r, container);
    if (s && rtt__fresh(s, now_ms))
        us = rtt__estimate(s);
    pthread_mutex_unlock(&r->mu);
    return us;
}

int gw_rtt_render(struct gw_rtt *r, int64_t now_ms, struct dyno_buf *out)
{
    int rc = 0;
    if (!r->ready)
        return 0;
    rc =
        dyno_buf_printf(out, "# HELP dyno_gateway_container_rtt_microseconds smoothed time to the first byte "
                             "of this gateway's fragment GETs, per container (its read order)\n"
                             "# TYPE dyno_gateway_container_rtt_microseconds gauge\n");
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n && rc == 0; i++)
        if (rtt__fresh(&r->slot[i], now_ms))
            rc = dyno_buf_printf(out, "dyno_gateway_container_rtt_microseconds{container=\"%s\"} %lld\n",
                                 r->slot[i].container, (long long)rtt__estimate(&r->slot[i]));
    pthread_mutex_unlock(&r->mu);
    return rc;
}

bool gw_rtt_far(int64_t us, int64_t best_us)
{
    return us > 2 * best_us + GW_RTT_NEAR_US;
}
