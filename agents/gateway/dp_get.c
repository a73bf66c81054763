/*
 * The get core (SPEC §6), top to bottom: locate (gw_get_new, from metadata's object
 * record) -> fetch (k fragments in parallel over the transport) -> verify (every record's
 * CRC, the object's SHA-256) -> decode (a stripe with a fragment missing) -> stream
 * (gw_get_read, a stripe at a time). The adapter (get.c) authorizes, answers HEAD and
 * ranges, and feeds MHD's content reader from gw_get_read.
 *
 * k fragments are fetched in parallel (the data ones when they are there: the code is
 * systematic, so no decoding), each from the record of the first stripe the requested
 * range needs, through the lib/frag.h parser which checks every record's CRC. A fragment
 * that gets a stripe ahead is paused, so memory stays at a few units per fragment whatever
 * the object size.
 *
 * A fragment that fails (offline container, connect error, HTTP error, truncated body,
 * bad CRC, no progress in time) is replaced within the request by the next unused
 * fragment, started at the current stripe, and the stripe is decoded. Up to m failures
 * are survived; past that the read ends with an error: the client sees an error, never
 * wrong bytes. A full read also checks the object's SHA-256 before its last stripe goes out.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "hash.h"
#include "json.h"
#include "log.h"

struct gw_get;

/* One fragment being read. */
struct get__down {
    struct gw_xfer x;
    struct gw_get *g;
    int index;
    bool active;
    bool has_parser;
    int perr;        /* the parser's error, reported once the transfer stops */
    bool bad_status; /* 2xx but not the partial content we asked for */
    bool status_ok;  /* the status was checked: partial content (or all of it from 0) */
    struct dyno_frag_parser parser;
    uint8_t *fifo; /* CRC-checked payload of records not consumed yet */
    size_t fcap, rd, wr;
    size_t pend;       /* bytes of the record being received, behind wr, not checked yet */
    uint64_t next_rec; /* next record the parser should deliver */
    int64_t t0_us;     /* when the request went out: its first byte is a latency sample */
};

struct get__frag_info {
    char url[512];
    char container[DYNO_SEG_MAX + 1];
    bool present;
    bool usable;    /* online and not known bad */
    bool local;     /* on the gateway's own site (cfg.site) */
    int64_t rtt_us; /* the container's latency when the read began (rtt.c), -1: unknown */
    bool tried;
};

struct gw_get {
    struct gw *gw;
    struct gw_conn *conn;
    char key[DYNO_KEY_LEN + 1];
    struct dyno_layout lay;
    int k, m, n;
    bool replica;
    uint8_t sha_expect[32];
    bool verify;
    struct dyno_sha256 *sha;
    struct gw_hasher hash; /* hashes a stripe while MHD sends it */
    uint64_t first, last;  /* inclusive byte range sent */
    uint64_t s_first, s_last, cur;
    uint8_t *stripe;
    size_t stripe_alloc;
    uint8_t *parity;
    size_t parity_unit;
    /* The stripe being sent: window [out_off, out_end) of its bytes, either straight from
     * the fifos (direct: unitp[i] is data unit i, ulen bytes) or from stripe. */
    bool direct;
    const uint8_t *unitp[DYNO_EC_MAX_K];
    size_t ulen, out_off, out_end;
    size_t pop_len; /* fifo bytes to release before the next stripe */
    struct get__frag_info info[GW_MAX_N];
    struct get__down frag[GW_MAX_N];
    int active[GW_MAX_N];
    int nactive;
    bool degraded;
    bool internal; /* GW_GET_INTERNAL */
    const struct dyno_ec *ec;
    char msg[300];
};

/* ---- fragment readers ---- */

static size_t get__fifo_avail(const struct get__down *d)
{
    return d->wr - d->rd;
}

/* Streaming parse: a record's payload is written straight behind the fifo's committed
 * bytes as it arrives (its CRC computed on the way) and committed by get__on_record once the
 * CRC matched, so every byte is copied once, from curl's buffer to the fifo. */
static int get__on_payload(void *arg, uint64_t s, size_t off, const uint8_t *p, size_t len)
{
    struct get__down *d = arg;
    struct gw_get *g = d->g;
    if (s != d->next_rec || s > g->s_last)
        return 0; /* checked by get__on_record; past what we need is dropped */
    if (d->fcap - d->wr < off + len) {
        /* Room is made only between stripes (get__down_write pauses a transfer instead while
         * a stripe is sent straight from the fifo), so moving the bytes is safe here. */
        if (g->pop_len)
            return DYNO_EINTERNAL;
        memmove(d->fifo, d->fifo + d->rd, d->wr - d->rd + off);
        d->wr -= d->rd;
        d->rd = 0;
        if (d->fcap - d->wr < off + len) {
            size_t cap = d->wr + (size_t)g->lay.unit, ncap = 0;
            uint8_t *nf = cap >= d->wr + off + len ? gw_buf_take(g->gw, cap, &ncap) : NULL;
            if (!nf)
                return DYNO_ENOMEM;
            memcpy(nf, d->fifo, d->wr + off);
            gw_buf_give(g->gw, d->fifo, d->fcap);
            d->fifo = nf;
            d->fcap = ncap;
        }
    }
    memcpy(d->fifo + d->wr + off, p, len);
    d->pend = off + len;
    return 0;
}

static int get__on_record(void *arg, uint64_t s, const uint8_t *payload, size_t len)
{
    struct get__down *d = arg;
    struct gw_get *g = d->g;
    (void)payload; /* streaming mode: the payload is already behind d->wr */
    if (s != d->next_rec || len != dyno_layout_unit_len(&g->lay, s))
        return DYNO_ECORRUPT;
    d->next_rec++;
    if (s > g->s_last)
        return 0; /* past what we need (a container that ignored our Range end) */
    d->wr += len;
    d->pend = 0;
    return 0;
}

static const struct dyno_frag_parser_cbs get__parser_cbs = {
    .on_header = NULL, /* the parser checks that it is our fragment (dyno_frag_parser_expect) */
    .on_record = get__on_record,
    .on_trailer = NULL,
    .on_payload = get__on_payload,
};

/*
 * The back-pressure rule: true when fragment d cannot take a chunk of len bytes now, because
 * it holds a full unit ahead of the stripe being sent, or (while a stripe is sent straight
 * from the fifos, which must not move) there is no room behind wr. So a fragment reads at
 * most one stripe ahead. With no stripe in flight (pop_len 0) only a full unit blocks, and a
 * fragment short of the unit it is waited for is never blocked: get__wait_stripe relies on
 * that to resume, and time out, every fragment it waits for.
 */
static bool get__down_full(const struct gw_get *g, const struct get__down *d, size_t len)
{
    size_t avail = get__fifo_avail(d), ahead = avail > g->pop_len ? avail - g->pop_len : 0;
    return ahead >= g->lay.unit || (g->pop_len && d->fcap - d->wr < d->pend + len);
}

static size_t get__down_write(const char *p, size_t len, void *arg)
{
    struct get__down *d = arg;
    struct gw_get *g = d->g;
    if (d->perr || d->bad_status)
        return 0;
    if (!d->status_ok) {
        /* We always ask for a range; a whole file is fine only when the range starts at 0. */
        if (d->x.status != 206 && !(d->x.status == 200 && d->next_rec == 0)) {
            d->bad_status = true;
            return 0;
        }
        d->status_ok = true;
        /* The first body bytes: the request's round trip to this container. */
        gw_rtt_note(&g->gw->rtt, g->info[d->index].container, gw_now_us() - d->t0_us, gw_now_ms());
    }
    if (get__down_full(g, d, len))
        return GW_XFER_PAUSE; /* offered again on resume */
    int rc = dyno_frag_parser_feed(&d->parser, (const uint8_t *)p, len);
    if (rc) {
        d->perr = rc;
        return 0;
    }
    d->x.last_ms = gw_now_ms();
    return len;
}

static void get__down_release(struct gw_get *g, struct get__down *d)
{
    gw_xfer_close(g->conn, &d->x);
    if (d->has_parser)
        dyno_frag_parser_free(&d->parser);
    d->has_parser = false;
    gw_buf_give(g->gw, d->fifo, d->fcap);
    d->fifo = NULL;
    d->fcap = d->rd = d->wr = 0;
}

/*
 * Drops fragment d from the active set; a replacement is started by get__fill.
 *
 * What is reported to metadata decides what gets rebuilt, so only evidence is reported:
 * "crc" when our own parser found a record whose CRC or framing is wrong (or the container
 * served another fragment), "missing" when the container answered 404. A body cut short is
 * unavailability, not corruption: a container cuts a response when its stream times out
 * (a slow client makes us stop reading), when it crashes or restarts, and also when it finds
 * a bad CRC itself, and then it reports that itself (protocol.md §4). Timeouts, connection
 * errors and other HTTP errors only make this read use another fragment.
 */
static void get__down_fail(struct gw_get *g, struct get__down *d)
{
    struct get__frag_info *fi = &g->info[d->index];
    char why[300];
    const char *problem = NULL;
    if (d->perr == DYNO_ECORRUPT) {
        snprintf(why, sizeof(why), "bad record (CRC or framing)");
        problem = "crc";
        dyno_metric_add(&g->gw->metrics[GW_M_CRC_ERRORS], 1);
        dyno_warn("fragment corrupt", "key=%s index=%d container=%s stripe=%llu reason=\"%s\"", g->key,
                  d->index, fi->container, (unsigned long long)g->cur, why);
    } else if (d->perr) {
        snprintf(why, sizeof(why), "%s", dyno_strerror(d->perr));
    } else if (d->bad_status) {
        snprintf(why, sizeof(why), "HTTP %ld instead of partial content", d->x.status);
    } else if (d->x.done && d->x.result == GW_XFER_OK) {
        snprintf(why, sizeof(why), "truncated body");
    } else if (d->x.done && d->x.result == GW_XFER_CUT) {
        snprintf(why, sizeof(why),
                 "cut short by the container (a stream timeout, a restart, or a bad CRC it reports itself)");
    } else {
        gw_xfer_reason(&d->x, why, sizeof(why));
        if (d->x.status == 404)
            problem = "missing";
        /* No answer in time (a hung container, a cut link): as slow as the timeout, for the
         * read order of the next requests. Not a refused connection, an HTTP error or a 404:
         * those are quick answers, and a container that is down becomes unusable (offline)
         * anyway; counting them would keep a restarted container behind the others. */
        if (!d->x.done)
            gw_rtt_silent(&g->gw->rtt, fi->container, g->gw->cfg.fragment_timeout_ms * 1000, gw_now_ms());
    }
    if (!problem || strcmp(problem, "crc") != 0)
        dyno_warn("fragment read failed", "key=%s index=%d container=%s stripe=%llu reason=\"%s\"", g->key,
                  d->index, fi->container, (unsigned long long)g->cur, why);
    if (problem)
        gw_report_fragment(g->gw, g->key, d->index, fi->container, problem);
    d->active = false;
    get__down_release(g, d);
    for (int i = 0; i < g->nactive; i++) {
        if (g->active[i] == d->index) {
            g->active[i] = g->active[--g->nactive];
            break;
        }
    }
    g->degraded = true;
}

/* Whether every data fragment of the object is there to be read. */
static bool get__data_usable(const struct gw_get *g)
{
    for (int i = 0; i < g->k; i++)
        if (!g->info[i].present || !g->info[i].usable)
            return false;
    return true;
}

static int get__down_start(struct gw_get *g, int idx)
{
    struct get__down *d = &g->frag[idx];
    struct get__frag_info *fi = &g->info[idx];
    fi->tried = true;
    memset(d, 0, sizeof(*d));
    d->g = g;
    d->index = idx;
    d->next_rec = g->cur;
    uint64_t from = g->cur == 0 ? 0 : dyno_layout_record_offset(&g->lay, g->cur);
    /* Exactly through the last record we need (the object's last one may be short). */
    uint64_t to = dyno_layout_record_offset(&g->lay, g->s_last) + dyno_layout_unit_len(&g->lay, g->s_last) +
                  DYNO_FRAG_REC_OVERHEAD - 1;
    int rc = dyno_frag_parser_init(&d->parser, from == 0, g->cur, g->lay.unit, &get__parser_cbs, d);
    if (rc)
        return rc;
    /* A container that serves some other fragment serves corruption. */
    dyno_frag_parser_expect(&d->parser, g->key, (unsigned)idx);
    d->has_parser = true;
    /* Room for a unit ahead of the one being sent plus one transport buffer; a read that
     * needs less than that in all (a small object, a short range) gets just what it needs,
     * which is never overrun: records past s_last are dropped. */
    size_t need = (size_t)(g->s_last - g->cur) * g->lay.unit + dyno_layout_unit_len(&g->lay, g->s_last);
    size_t std = 2 * (size_t)g->lay.unit + GW_CURL_BUFSIZE;
    d->fifo = gw_buf_take(g->gw, need < std ? need : std, &d->fcap);
    char url[700], range[64];
    snprintf(url, sizeof(url), "%s/v1/fragments/%s.%d", fi->url, g->key, idx);
    snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)from, (unsigned long long)to);
    struct gw_xfer_spec spec = {
        .method = GW_XFER_GET, .url = url, .range = range, .write = get__down_write, .arg = d};
    d->t0_us = gw_now_us();
    if (!d->fifo || gw_xfer_start(g->gw, g->conn, &d->x, &spec)) {
        get__down_release(g, d);
        return DYNO_EUNAVAIL;
    }
    d->x.index = idx;
    d->active = true;
    g->active[g->nactive++] = idx;
    /* Degraded (dyno_gateway_degraded_reads_total, "reads that needed parity"): parity
     * taken because a data fragment is gone (absent, offline, known bad), or a fragment that
     * failed (get__down_fail). Parity taken by choice, on the gateway's own site or instead
     * of a data fragment across a slow link, is no fault. */
    if (idx >= g->k && !g->replica && !get__data_usable(g))
        g->degraded = true;
    return 0;
}

/*
 * Next fragment to try (docs/architecture.md, "Read order"):
 *  1. usable ones on the gateway's own site (a wide-area link costs more than decoding a
 *     parity unit);
 *  2. the other usable ones on containers whose latency (rtt.c) is near the best one
 *     (gw_rtt_far), or not known: never measured, or forgotten. Those go with the near ones
 *     because a container is measured only by reading from it: behind the others, one never
 *     read (a fresh gateway's, a restarted one) would stay unread, and on one site every read
 *     would decode parity instead of reading it;
 *  3. the usable ones on containers measured clearly slower than the best, nearest first;
 *  4. the rest (offline, known bad, last resort).
 * Data before parity (index order) within 1, 2 and 4. Without a site nothing is local, and
 * on one site every container is near: that is data, then parity, then the rest. The
 * latencies are those of when the read began, so one read keeps one order.
 */
static int get__next_candidate(struct gw_get *g)
{
    int64_t best = -1;
    for (int i = 0; i < g->n; i++) {
        const struct get__frag_info *fi = &g->info[i];
        if (fi->present && fi->usable && !fi->local && fi->rtt_us >= 0 && (best < 0 || fi->rtt_us < best))
            best = fi->rtt_us; /* over every remote usable fragment, tried or not: a stable bar */
    }
    int pick = -1, pick_class = 5;
    int64_t pick_rtt = 0;
    for (int i = 0; i < g->n; i++) {
        const struct get__frag_info *fi = &g->info[i];
        if (!fi->present || fi->tried)
            continue;
        int cls;
        if (!fi->usable)
            cls = 4;
        else if (fi->local)
            cls = 1;
        else if (fi->rtt_us < 0 || !gw_rtt_far(fi->rtt_us, best))
            cls = 2;
        else
            cls = 3;
        /* Index order within a class (data first), by latency within class 3. */
        if (cls < pick_class || (cls == 3 && cls == pick_class && fi->rtt_us < pick_rtt)) {
            pick = i;
            pick_class = cls;
            pick_rtt = fi->rtt_us;
        }
    }
    return pick;
}

/* Tops the active set up to k fragments, started at the current stripe. */
static int get__fill(struct gw_get *g)
{
    while (g->nactive < g->k) {
        int idx = get__next_candidate(g);
        if (idx < 0) {
            snprintf(g->msg, sizeof(g->msg), "fewer than %d fragments of %s readable", g->k, g->key);
            return DYNO_EUNAVAIL;
        }
        if (get__down_start(g, idx))
            g->degraded = true; /* try the next one */
    }
    return 0;
}

/* Gives back the fifo bytes of the stripe just sent and lets paused fragments go on.
 * Deferred until the stripe is out because a systematic stripe is sent straight from
 * the fifos (no curl callback runs in between, so they stay put). */
static void get__release_stripe(struct gw_get *g)
{
    size_t pop = g->pop_len;
    if (!pop)
        return;
    gw_hasher_wait(&g->hash); /* the stripe's bytes may move or be overwritten from here */
    /* Cleared first: a resumed transfer's callback runs inside gw_xfer_resume and must see
     * that no stripe is in flight any more (else it could pause again for good). */
    g->pop_len = 0;
    for (int i = 0; i < g->nactive; i++) {
        struct get__down *d = &g->frag[g->active[i]];
        d->rd += pop;
        if (d->rd == d->wr && d->pend == 0) /* (a record arriving sits behind wr) */
            d->rd = d->wr = 0;
    }
    for (int i = 0; i < g->nactive; i++)
        gw_xfer_resume(g->conn, &g->frag[g->active[i]].x);
}

/*
 * Waits until every active fragment holds record g->cur, replacing the ones that fail.
 *
 * Bounded: a fragment short of the unit is never blocked by us here (no stripe is in flight,
 * see get__down_full), so it is resumed if a pause is left over and it gets no exemption from
 * the no-progress timeout, paused or not. The clock starts at its last byte, or when this
 * wait began if that is later: while MHD was not calling us (a slow client) nobody drove the
 * transfers, which is no fault of theirs. Each fragment so fails within fragment_timeout_ms,
 * is replaced by the next one, and past m failures get__fill ends the read.
 */
static int get__wait_stripe(struct gw_get *g, size_t ulen)
{
    int64_t timeout = g->gw->cfg.fragment_timeout_ms;
    int64_t since = gw_now_ms();
    int rc;
    assert(g->pop_len == 0);
    for (;;) {
        if ((rc = get__fill(g)) != 0)
            return rc;
        bool ready = true;
        int64_t now = gw_now_ms();
        for (int i = 0; i < g->nactive; i++) {
            struct get__down *d = &g->frag[g->active[i]];
            if (get__fifo_avail(d) >= ulen)
                continue; /* ready (and, if paused, really full) */
            ready = false;
            gw_xfer_resume(g->conn, &d->x);
            int64_t idle = now - (d->x.last_ms > since ? d->x.last_ms : since);
            if (d->perr || d->bad_status || d->x.done || idle > timeout) {
                get__down_fail(g, d);
                break; /* the set changed: refill and look again */
            }
        }
        if (ready && g->nactive == g->k)
            return 0;
        if (!ready)
            gw_xfer_step(g->conn, 50);
    }
}

/* Decodes stripe g->cur into g->stripe from whichever k fragments are active. */
static int get__decode(struct gw_get *g, size_t ulen)
{
    /* Only a degraded read needs these: allocated on first use. */
    if (!g->stripe)
        g->stripe = malloc(g->stripe_alloc);
    if (!g->parity)
        g->parity = malloc((size_t)g->m * g->parity_unit);
    {
        if (!g->stripe || !g->parity) {
            snprintf(g->msg, sizeof(g->msg), "out of memory");
            return DYNO_ENOMEM;
        }
    }
    uint8_t *frags[GW_MAX_N];
    bool present[GW_MAX_N] = {false};
    for (int i = 0; i < g->k; i++)
        frags[i] = g->stripe + (size_t)i * ulen;
    for (int j = 0; j < g->m; j++)
        frags[g->k + j] = g->parity + (size_t)j * g->parity_unit;
    for (int i = 0; i < g->nactive; i++) {
        struct get__down *d = &g->frag[g->active[i]];
        memcpy(frags[d->index], d->fifo + d->rd, ulen);
        present[d->index] = true;
    }
    int rc = dyno_ec_decode(g->ec, ulen, present, frags);
    if (rc)
        snprintf(g->msg, sizeof(g->msg), "decoding failed: %s", dyno_strerror(rc));
    return rc;
}

/*
 * Makes stripe g->cur ready to send: data units straight from the fifos when the active
 * set is systematic (data fragments, or a replica), else decoded into g->stripe. Sets
 * the window [out_off, out_end) of stripe bytes the client asked for.
 */
static int get__stripe(struct gw_get *g)
{
    size_t ulen = dyno_layout_unit_len(&g->lay, g->cur);
    int rc;
    get__release_stripe(g);
    if ((rc = get__wait_stripe(g, ulen)) != 0)
        return rc;

    bool systematic = true;
    for (int i = 0; i < g->nactive; i++)
        systematic &= g->replica || g->active[i] < g->k;
    g->direct = systematic;
    if (systematic) {
        for (int i = 0; i < g->nactive; i++) {
            struct get__down *d = &g->frag[g->active[i]];
            g->unitp[g->replica ? 0 : d->index] = d->fifo + d->rd;
        }
    } else if ((rc = get__decode(g, ulen)) != 0) {
        return rc;
    }
    g->ulen = ulen;
    g->pop_len = ulen;

    uint64_t st, len;
    dyno_layout_stripe_span(&g->lay, g->cur, &st, &len);
    if (g->verify) {
        /* Hashed by the helper while MHD sends the stripe (the bytes stay put until
         * get__release_stripe, which waits for it). */
        const uint8_t *seg[DYNO_EC_MAX_K];
        size_t seglen[DYNO_EC_MAX_K];
        int nseg = 0;
        if (g->direct) {
            for (int i = 0; i < g->k && (uint64_t)i * ulen < len; i++) {
                uint64_t left = len - (uint64_t)i * ulen;
                seg[nseg] = g->unitp[i];
                seglen[nseg++] = left < ulen ? (size_t)left : ulen;
            }
        } else {
            seg[nseg] = g->stripe;
            seglen[nseg++] = (size_t)len;
        }
        gw_hasher_submit(&g->hash, seg, seglen, nseg);
        if (g->cur == g->s_last) {
            /* Checked before the last stripe leaves: a bad object never arrives whole. */
            uint8_t dg[32];
            gw_hasher_wait(&g->hash);
            dyno_sha256_final(g->sha, dg);
            if (memcmp(dg, g->sha_expect, 32) != 0) {
                char hex[65];
                dyno_hex(dg, 32, hex);
                dyno_error("object digest mismatch", "key=%s got=%s", g->key, hex);
                snprintf(g->msg, sizeof(g->msg), "object digest mismatch");
                return DYNO_ECORRUPT;
            }
        }
    }
    uint64_t a = g->first > st ? g->first : st;
    uint64_t b = g->last < st + len - 1 ? g->last : st + len - 1;
    g->out_off = (size_t)(a - st);
    g->out_end = (size_t)(b - st + 1);
    g->cur++;
    return 0;
}

ssize_t gw_get_read(struct gw_get *g, char *buf, size_t max)
{
    if (g->out_off == g->out_end) {
        if (g->cur > g->s_last)
            return 0;
        int rc = get__stripe(g);
        if (rc) {
            dyno_error("read cut short", "key=%s stripe=%llu err=%s detail=\"%s\"", g->key,
                       (unsigned long long)g->cur, dyno_err_code(rc), g->msg);
            return -1;
        }
    }
    size_t n = 0;
    while (n < max && g->out_off < g->out_end) {
        size_t take = g->out_end - g->out_off;
        if (take > max - n)
            take = max - n;
        const uint8_t *src;
        if (g->direct) {
            /* Data unit i holds stripe bytes [i * ulen, (i + 1) * ulen). */
            size_t i = g->out_off / g->ulen, o = g->out_off % g->ulen;
            if (take > g->ulen - o)
                take = g->ulen - o;
            src = g->unitp[i] + o;
        } else {
            src = g->stripe + g->out_off;
        }
        memcpy(buf + n, src, take);
        n += take;
        g->out_off += take;
    }
    /* Read ahead: let the fragments fill their fifos with the next stripe while the caller
     * sends this one (never waits; the pause rule of get__down_write bounds what is
     * buffered). */
    gw_xfer_step(g->conn, 0);
    if (!g->internal)
        dyno_metric_add(&g->gw->metrics[GW_M_BYTES_OUT], (int64_t)n);
    return (ssize_t)n;
}

int gw_get_whole(struct gw_get *g, struct dyno_frag_seg *seg, int max)
{
    /* One stripe, fetched and checked by gw_get_start, and nothing of it sent yet. */
    if (g->cur <= g->s_last || g->out_off == g->out_end || max < 1)
        return 0;
    int n = 0;
    size_t len = g->out_end - g->out_off;
    if (g->direct) {
        size_t o = g->out_off;
        while (o < g->out_end) {
            size_t i = o / g->ulen, uo = o % g->ulen, take = g->ulen - uo;
            if (take > g->out_end - o)
                take = g->out_end - o;
            if (n == max)
                return 0;
            seg[n++] = (struct dyno_frag_seg){g->unitp[i] + uo, take};
            o += take;
        }
    } else {
        seg[n++] = (struct dyno_frag_seg){g->stripe + g->out_off, len};
    }
    g->out_off = g->out_end;
    if (!g->internal)
        dyno_metric_add(&g->gw->metrics[GW_M_BYTES_OUT], (int64_t)len);
    return n;
}

void gw_get_free(struct gw_get *g)
{
    if (!g)
        return;
    gw_hasher_stop(&g->hash); /* first: it may still read a fifo or the stripe */
    for (int i = 0; i < g->n; i++)
        if (g->frag[i].active || g->frag[i].fifo || g->frag[i].x.h)
            get__down_release(g, &g->frag[i]);
    if (g->degraded && !g->internal)
        dyno_metric_add(&g->gw->metrics[GW_M_DEGRADED_READS], 1);
    dyno_sha256_free(g->sha);
    free(g->stripe);
    free(g->parity);
    free(g);
}

/* Fills g from an object.get result. */
static int get__init(struct gw_get *g, const cJSON *obj)
{
    struct gw_shape sh;
    const cJSON *frags = cJSON_GetObjectItemCaseSensitive(obj, "fragments");
    if (gw_shape_parse(obj, &sh) || !cJSON_IsArray(frags))
        return DYNO_EPROTO;
    memcpy(g->sha_expect, sh.sha256, sizeof(g->sha_expect));
    g->replica = sh.replica;
    g->k = sh.k;
    g->m = sh.m;
    g->n = g->k + g->m;
    g->lay = sh.lay;
    const cJSON *f;
    int64_t now_ms = gw_now_ms();
    cJSON_ArrayForEach(f, frags)
    {
        int64_t idx;
        const char *url = dyno_json_str(f, "url");
        if (dyno_json_i64(f, "index", &idx) || idx < 0 || idx >= g->n || !url ||
            strlen(url) >= sizeof(g->info[0].url))
            continue;
        struct get__frag_info *fi = &g->info[idx];
        const char *state = dyno_json_str(f, "state");
        const char *container = dyno_json_str(f, "container");
        const char *site = dyno_json_str(f, "site"), *mine = g->gw->cfg.site;
        fi->local = mine && mine[0] && site && strcmp(site, mine) == 0;
        fi->rtt_us = container ? gw_rtt_get(&g->gw->rtt, container, now_ms) : -1;
        snprintf(fi->url, sizeof(fi->url), "%s", url);
        snprintf(fi->container, sizeof(fi->container), "%s", container ? container : "?");
        fi->present = true;
        fi->usable = dyno_json_bool(f, "online", true) && !dyno_json_bool(f, "last_resort", false) &&
                     !(state && (strcmp(state, "bad") == 0 || strcmp(state, "missing") == 0 ||
                                 strcmp(state, "lost") == 0 || strcmp(state, "corrupt") == 0));
    }
    return 0;
}

/* ---- the calls ---- */

int gw_get_new(struct gw *gw, struct gw_conn *conn, const char *key, const cJSON *obj, struct gw_get **out)
{
    *out = NULL;
    struct gw_get *g = calloc(1, sizeof(*g));
    if (!g)
        return DYNO_ENOMEM;
    g->gw = gw;
    g->conn = conn;
    snprintf(g->key, sizeof(g->key), "%s", key);
    int rc = get__init(g, obj);
    if (rc) {
        gw_get_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

struct gw *gw_get_gw(const struct gw_get *g)
{
    return g->gw;
}

uint64_t gw_get_size(const struct gw_get *g)
{
    return g->lay.size;
}

void gw_get_sha256(const struct gw_get *g, char hex[65])
{
    dyno_hex(g->sha_expect, 32, hex);
}

const char *gw_get_msg(const struct gw_get *g)
{
    return g->msg;
}

int gw_get_start(struct gw_get *g, uint64_t first, uint64_t last, unsigned flags)
{
    bool verify = flags & GW_GET_VERIFY;
    uint64_t size = g->lay.size;
    if (size == 0 || first > last || last >= size) {
        snprintf(g->msg, sizeof(g->msg), "bad range");
        return DYNO_ERANGE;
    }
    g->internal = flags & GW_GET_INTERNAL;
    if (!g->internal)
        dyno_metric_add(&g->gw->metrics[GW_M_GETS], 1);
    g->first = first;
    g->last = last;
    uint64_t stripe_bytes = (uint64_t)g->k * g->lay.unit;
    g->s_first = g->first / stripe_bytes;
    g->s_last = g->last / stripe_bytes;
    g->cur = g->s_first;
    g->verify = verify;
    g->stripe_alloc = (size_t)stripe_bytes;
    g->parity_unit = g->lay.unit;
    if (size + (uint64_t)g->k < stripe_bytes) {
        g->stripe_alloc = (size_t)size + (size_t)g->k;
        g->parity_unit = (size_t)(size / (uint64_t)g->k) + 1;
    }
    if (dyno_sha256_new(&g->sha) || (!g->replica && gw_ec_get(g->gw, g->k, g->m, &g->ec))) {
        snprintf(g->msg, sizeof(g->msg), "out of memory");
        return DYNO_ENOMEM;
    }
    /* A helper thread hashes while the stripes go out, for reads of several stripes. */
    if (gw_hasher_init(&g->hash, g->sha, g->verify && g->s_last > g->s_first) != 0)
        dyno_warn("no hashing thread", "key=%s detail=\"hashing inline\"", g->key);
    /* The first stripe is read now, so a read that cannot even start gets a proper error
     * status instead of a cut 200. */
    int rc = get__stripe(g);
    if (rc)
        dyno_error("read failed", "key=%s err=%s detail=\"%s\"", g->key, dyno_err_code(rc), g->msg);
    return rc;
}
