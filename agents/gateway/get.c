/*
 * The get data path (SPEC §6): GET and HEAD /v1/objects/<key>.
 *
 * k fragments are fetched in parallel (the data ones when they are there: the code is
 * systematic, so no decoding), each from the record of the first stripe the requested
 * range needs, through the lib/frag.h parser which checks every record's CRC. The object
 * goes out stripe by stripe from MHD's content reader, in the client connection's thread:
 * a fragment that gets a stripe ahead is paused, so memory stays at a few units per
 * fragment whatever the object size.
 *
 * A fragment that fails (offline container, connect error, HTTP error, truncated body,
 * bad CRC, no progress in time) is replaced within the request by the next unused
 * fragment, started at the current stripe, and the stripe is decoded. Up to m failures
 * are survived; past that the response is cut: the client sees an error, never wrong
 * bytes. A full read also checks the object's SHA-256 before its last stripe goes out.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "hash.h"
#include "httpd.h"
#include "json.h"
#include "log.h"

#define GW_GET_BLOCK (256 * 1024) /* MHD's response buffer */

struct gw_get;

/* One fragment being read. */
struct gw_down {
    struct gw_xfer x;
    struct gw_get *g;
    int index;
    bool active;
    bool has_parser;
    int perr;        /* the parser's error, reported once the transfer stops */
    bool bad_status; /* 2xx but not the partial content we asked for */
    struct dyno_frag_parser parser;
    uint8_t *fifo; /* CRC-checked payload of records not consumed yet */
    size_t fcap, rd, wr;
    size_t pend;       /* bytes of the record being received, behind wr, not checked yet */
    uint64_t next_rec; /* next record the parser should deliver */
};

struct gw_frag_info {
    char url[512];
    char container[DYNO_SEG_MAX + 1];
    bool present;
    bool usable; /* online and not known bad */
    bool tried;
};

struct gw_get {
    struct gw *gw;
    struct gw_conn *conn;
    struct gw_req *r; /* only while MHD calls us for this request */
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
    struct gw_frag_info info[GW_MAX_N];
    struct gw_down frag[GW_MAX_N];
    int active[GW_MAX_N];
    int nactive;
    bool degraded;
    const struct dyno_ec *ec;
    char msg[300];
};

/* ---- fragment readers ---- */

static size_t gw_fifo_avail(const struct gw_down *d)
{
    return d->wr - d->rd;
}

static int gw_on_header(void *arg, const struct dyno_frag_hdr *h)
{
    struct gw_down *d = arg;
    if (strcmp(h->key, d->g->key) != 0 || h->index != d->index)
        return DYNO_ECORRUPT; /* the container served some other fragment */
    return 0;
}

/* Streaming parse: a record's payload is written straight behind the fifo's committed
 * bytes as it arrives (its CRC computed on the way) and committed by gw_on_record once the
 * CRC matched, so every byte is copied once, from curl's buffer to the fifo. */
static int gw_on_payload(void *arg, uint64_t s, size_t off, const uint8_t *p, size_t len)
{
    struct gw_down *d = arg;
    struct gw_get *g = d->g;
    if (s != d->next_rec || s > g->s_last)
        return 0; /* checked by gw_on_record; past what we need is dropped */
    if (d->fcap - d->wr < off + len) {
        /* Room is made only between stripes (gw_down_write pauses a transfer instead while
         * a stripe is sent straight from the fifo), so moving the bytes is safe here. */
        if (g->pop_len)
            return DYNO_EINTERNAL;
        memmove(d->fifo, d->fifo + d->rd, d->wr - d->rd + off);
        d->wr -= d->rd;
        d->rd = 0;
        if (d->fcap - d->wr < off + len) {
            size_t cap = d->wr + (size_t)g->lay.unit;
            uint8_t *nf = cap >= d->wr + off + len ? realloc(d->fifo, cap) : NULL;
            if (!nf)
                return DYNO_ENOMEM;
            d->fifo = nf;
            d->fcap = cap;
        }
    }
    memcpy(d->fifo + d->wr + off, p, len);
    d->pend = off + len;
    return 0;
}

static int gw_on_record(void *arg, uint64_t s, const uint8_t *payload, size_t len)
{
    struct gw_down *d = arg;
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

static const struct dyno_frag_parser_cbs gw_parser_cbs = {
    .on_header = gw_on_header,
    .on_record = gw_on_record,
    .on_trailer = NULL,
    .on_payload = gw_on_payload,
};

/*
 * The back-pressure rule: true when fragment d cannot take a chunk of len bytes now, because
 * it holds a full unit ahead of the stripe being sent, or (while a stripe is sent straight
 * from the fifos, which must not move) there is no room behind wr. So a fragment reads at
 * most one stripe ahead. With no stripe in flight (pop_len 0) only a full unit blocks, and a
 * fragment short of the unit it is waited for is never blocked: gw_get_wait_stripe relies on
 * that to resume, and time out, every fragment it waits for.
 */
static bool gw_down_full(const struct gw_get *g, const struct gw_down *d, size_t len)
{
    size_t avail = gw_fifo_avail(d), ahead = avail > g->pop_len ? avail - g->pop_len : 0;
    return ahead >= g->lay.unit || (g->pop_len && d->fcap - d->wr < d->pend + len);
}

static size_t gw_down_write(char *p, size_t size, size_t n, void *arg)
{
    struct gw_down *d = arg;
    struct gw_get *g = d->g;
    size_t len = size * n;
    if (d->perr || d->bad_status)
        return 0;
    if (d->x.status == 0) {
        curl_easy_getinfo(d->x.easy, CURLINFO_RESPONSE_CODE, &d->x.status);
        /* We always ask for a range; a whole file is fine only when the range starts at 0. */
        if (d->x.status != 206 && !(d->x.status == 200 && d->next_rec == 0)) {
            d->bad_status = true;
            return 0;
        }
    }
    if (gw_down_full(g, d, len)) {
        d->x.paused = true;
        return CURL_WRITEFUNC_PAUSE; /* curl keeps the chunk and re-delivers it on resume */
    }
    int rc = dyno_frag_parser_feed(&d->parser, (const uint8_t *)p, len);
    if (rc) {
        d->perr = rc;
        return 0;
    }
    d->x.last_ms = gw_now_ms();
    return len;
}

static void gw_down_release(struct gw_get *g, struct gw_down *d)
{
    gw_xfer_close(g->conn, &d->x);
    if (d->has_parser)
        dyno_frag_parser_free(&d->parser);
    d->has_parser = false;
    free(d->fifo);
    d->fifo = NULL;
    d->fcap = d->rd = d->wr = 0;
}

void gw_report_fragment(struct gw *gw, const char *key, int index, const char *container, const char *problem)
{
    cJSON *p = cJSON_CreateObject();
    if (!p)
        return;
    cJSON_AddStringToObject(p, "key", key);
    cJSON_AddNumberToObject(p, "index", index);
    cJSON_AddStringToObject(p, "problem", problem);
    if (container && dyno_valid_segment(container))
        cJSON_AddStringToObject(p, "container", container);
    gw_notify(gw, "metadata", "object.report", p);
    cJSON_Delete(p);
}

/*
 * Drops fragment d from the active set; a replacement is started by gw_get_fill.
 *
 * What is reported to metadata decides what gets rebuilt, so only evidence is reported:
 * "crc" when our own parser found a record whose CRC or framing is wrong (or the container
 * served another fragment), "missing" when the container answered 404. A body cut short is
 * unavailability, not corruption: a container cuts a response when its stream times out
 * (a slow client makes us stop reading), when it crashes or restarts, and also when it finds
 * a bad CRC itself, and then it reports that itself (protocol.md §4). Timeouts, connection
 * errors and other HTTP errors only make this read use another fragment.
 */
static void gw_down_fail(struct gw_get *g, struct gw_down *d)
{
    struct gw_frag_info *fi = &g->info[d->index];
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
    } else if (d->x.done && d->x.result == CURLE_OK) {
        snprintf(why, sizeof(why), "truncated body");
    } else if (d->x.done && d->x.result == CURLE_PARTIAL_FILE) {
        snprintf(why, sizeof(why),
                 "cut short by the container (a stream timeout, a restart, or a bad CRC it reports itself)");
    } else {
        gw_xfer_reason(&d->x, why, sizeof(why));
        if (d->x.status == 404)
            problem = "missing";
    }
    if (!problem || strcmp(problem, "crc") != 0)
        dyno_warn("fragment read failed", "key=%s index=%d container=%s stripe=%llu reason=\"%s\"", g->key,
                  d->index, fi->container, (unsigned long long)g->cur, why);
    if (problem)
        gw_report_fragment(g->gw, g->key, d->index, fi->container, problem);
    d->active = false;
    gw_down_release(g, d);
    for (int i = 0; i < g->nactive; i++) {
        if (g->active[i] == d->index) {
            g->active[i] = g->active[--g->nactive];
            break;
        }
    }
    g->degraded = true;
}

static int gw_down_start(struct gw_get *g, int idx)
{
    struct gw_down *d = &g->frag[idx];
    struct gw_frag_info *fi = &g->info[idx];
    fi->tried = true;
    memset(d, 0, sizeof(*d));
    d->g = g;
    d->index = idx;
    d->next_rec = g->cur;
    uint64_t from = g->cur == 0 ? 0 : dyno_layout_record_offset(&g->lay, g->cur);
    /* Exactly through the last record we need (the object's last one may be short). */
    uint64_t to = dyno_layout_record_offset(&g->lay, g->s_last) + dyno_layout_unit_len(&g->lay, g->s_last) +
                  DYNO_FRAG_REC_OVERHEAD - 1;
    int rc = dyno_frag_parser_init(&d->parser, from == 0, g->cur, g->lay.unit, &gw_parser_cbs, d);
    if (rc)
        return rc;
    d->has_parser = true;
    d->fcap = 2 * (size_t)g->lay.unit + GW_CURL_BUFSIZE;
    d->fifo = malloc(d->fcap);
    char url[700], range[64];
    snprintf(url, sizeof(url), "%s/v1/fragments/%s.%d", fi->url, g->key, idx);
    snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)from, (unsigned long long)to);
    if (!d->fifo || gw_xfer_open(g->gw, g->conn, &d->x, url)) {
        gw_down_release(g, d);
        return DYNO_ENOMEM;
    }
    d->x.index = idx;
    curl_easy_setopt(d->x.easy, CURLOPT_RANGE, range);
    curl_easy_setopt(d->x.easy, CURLOPT_WRITEFUNCTION, gw_down_write);
    curl_easy_setopt(d->x.easy, CURLOPT_WRITEDATA, d);
    if (gw_xfer_start(g->conn, &d->x)) {
        gw_down_release(g, d);
        return DYNO_EINTERNAL;
    }
    d->active = true;
    g->active[g->nactive++] = idx;
    if (idx >= g->k && !g->replica)
        g->degraded = true;
    return 0;
}

/* Next fragment to try: usable data, usable parity, then the rest as a last resort. */
static int gw_next_candidate(struct gw_get *g)
{
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < g->n; i++) {
            struct gw_frag_info *fi = &g->info[i];
            if (fi->present && !fi->tried && fi->usable == (pass == 0))
                return i;
        }
    return -1;
}

/* Tops the active set up to k fragments, started at the current stripe. */
static int gw_get_fill(struct gw_get *g)
{
    while (g->nactive < g->k) {
        int idx = gw_next_candidate(g);
        if (idx < 0) {
            snprintf(g->msg, sizeof(g->msg), "fewer than %d fragments of %s readable", g->k, g->key);
            return DYNO_EUNAVAIL;
        }
        if (gw_down_start(g, idx))
            g->degraded = true; /* try the next one */
    }
    return 0;
}

/* Gives back the fifo bytes of the stripe just sent and lets paused fragments go on.
 * Deferred until the stripe is out because a systematic stripe is sent straight from
 * the fifos (no curl callback runs in between, so they stay put). */
static void gw_get_release_stripe(struct gw_get *g)
{
    size_t pop = g->pop_len;
    if (!pop)
        return;
    gw_hasher_wait(&g->hash); /* the stripe's bytes may move or be overwritten from here */
    /* Cleared first: a resumed transfer's callback runs inside gw_xfer_resume and must see
     * that no stripe is in flight any more (else it could pause again for good). */
    g->pop_len = 0;
    for (int i = 0; i < g->nactive; i++) {
        struct gw_down *d = &g->frag[g->active[i]];
        d->rd += pop;
        if (d->rd == d->wr && d->pend == 0) /* (a record arriving sits behind wr) */
            d->rd = d->wr = 0;
    }
    for (int i = 0; i < g->nactive; i++)
        gw_xfer_resume(&g->frag[g->active[i]].x);
}

/*
 * Waits until every active fragment holds record g->cur, replacing the ones that fail.
 *
 * Bounded: a fragment short of the unit is never blocked by us here (no stripe is in flight,
 * see gw_down_full), so it is resumed if a pause is left over and it gets no exemption from
 * the no-progress timeout, paused or not. The clock starts at its last byte, or when this
 * wait began if that is later: while MHD was not calling us (a slow client) nobody drove the
 * transfers, which is no fault of theirs. Each fragment so fails within fragment_timeout_ms,
 * is replaced by the next one, and past m failures gw_get_fill ends the read.
 */
static int gw_get_wait_stripe(struct gw_get *g, size_t ulen)
{
    int64_t timeout = g->gw->cfg.fragment_timeout_ms;
    int64_t since = gw_now_ms();
    int rc;
    assert(g->pop_len == 0);
    for (;;) {
        if ((rc = gw_get_fill(g)) != 0)
            return rc;
        bool ready = true;
        int64_t now = gw_now_ms();
        for (int i = 0; i < g->nactive; i++) {
            struct gw_down *d = &g->frag[g->active[i]];
            if (gw_fifo_avail(d) >= ulen)
                continue; /* ready (and, if paused, really full) */
            ready = false;
            gw_xfer_resume(&d->x);
            int64_t idle = now - (d->x.last_ms > since ? d->x.last_ms : since);
            if (d->perr || d->bad_status || d->x.done || idle > timeout) {
                gw_down_fail(g, d);
                break; /* the set changed: refill and look again */
            }
        }
        if (ready && g->nactive == g->k)
            return 0;
        if (!ready)
            gw_fanout_step(g->conn, 50);
    }
}

/* Decodes stripe g->cur into g->stripe from whichever k fragments are active. */
static int gw_get_decode(struct gw_get *g, size_t ulen)
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
        struct gw_down *d = &g->frag[g->active[i]];
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
static int gw_get_stripe(struct gw_get *g)
{
    size_t ulen = dyno_layout_unit_len(&g->lay, g->cur);
    int rc;
    gw_get_release_stripe(g);
    if ((rc = gw_get_wait_stripe(g, ulen)) != 0)
        return rc;

    bool systematic = true;
    for (int i = 0; i < g->nactive; i++)
        systematic &= g->replica || g->active[i] < g->k;
    g->direct = systematic;
    if (systematic) {
        for (int i = 0; i < g->nactive; i++) {
            struct gw_down *d = &g->frag[g->active[i]];
            g->unitp[g->replica ? 0 : d->index] = d->fifo + d->rd;
        }
    } else if ((rc = gw_get_decode(g, ulen)) != 0) {
        return rc;
    }
    g->ulen = ulen;
    g->pop_len = ulen;

    uint64_t st, len;
    dyno_layout_stripe_span(&g->lay, g->cur, &st, &len);
    if (g->verify) {
        /* Hashed by the helper while MHD sends the stripe (the bytes stay put until
         * gw_get_release_stripe, which waits for it). */
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

static ssize_t gw_get_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct gw_get *g = cls;
    if (g->out_off == g->out_end) {
        if (g->cur > g->s_last)
            return MHD_CONTENT_READER_END_OF_STREAM;
        int rc = gw_get_stripe(g);
        if (rc) {
            dyno_error("read cut short", "key=%s stripe=%llu err=%s detail=\"%s\"", g->key,
                       (unsigned long long)g->cur, dyno_err_code(rc), g->msg);
            return MHD_CONTENT_READER_END_WITH_ERROR;
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
    /* Read ahead: let the fragments fill their fifos with the next stripe while MHD sends
     * this one (never waits; the pause rule of gw_down_write bounds what is buffered). */
    gw_fanout_step(g->conn, 0);
    dyno_metric_add(&g->gw->metrics[GW_M_BYTES_OUT], (int64_t)n);
    if (g->r)
        g->r->bytes_out += n;
    return (ssize_t)n;
}

static void gw_get_free(void *cls)
{
    struct gw_get *g = cls;
    if (!g)
        return;
    gw_hasher_stop(&g->hash); /* first: it may still read a fifo or the stripe */
    for (int i = 0; i < g->n; i++)
        if (g->frag[i].active || g->frag[i].fifo || g->frag[i].x.easy)
            gw_down_release(g, &g->frag[i]);
    if (g->degraded)
        dyno_metric_add(&g->gw->metrics[GW_M_DEGRADED_READS], 1);
    dyno_sha256_free(g->sha);
    free(g->stripe);
    free(g->parity);
    free(g);
}

static ssize_t gw_no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    (void)pos;
    (void)buf;
    (void)max;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void gw_add_object_headers(struct MHD_Response *resp, const char *key, const char *sha)
{
    char etag[80];
    snprintf(etag, sizeof(etag), "\"%s\"", sha);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    MHD_add_response_header(resp, "X-Dyno-Key", key);
    MHD_add_response_header(resp, "X-Dyno-Sha256", sha);
}

/* 416 with the Content-Range: bytes * /size the client needs to retry sensibly. */
static enum MHD_Result gw_reply_416(struct gw_req *r, uint64_t size)
{
    char body[200], cr[64];
    int n = snprintf(body, sizeof(body),
                     "{\"error\":{\"code\":\"%s\",\"message\":\"range not satisfiable for %llu bytes\"}}",
                     dyno_err_code(DYNO_ERANGE), (unsigned long long)size);
    snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)size);
    struct MHD_Response *resp = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    return gw_reply_response(r, MHD_HTTP_RANGE_NOT_SATISFIABLE, resp);
}

/* Fills g from an object.get result. */
static int gw_get_init(struct gw_get *g, const cJSON *obj)
{
    int64_t size, k, m, unit;
    const char *sha = dyno_json_str(obj, "sha256");
    const cJSON *frags = cJSON_GetObjectItemCaseSensitive(obj, "fragments");
    if (dyno_json_i64(obj, "size", &size) || dyno_json_i64(obj, "k", &k) || dyno_json_i64(obj, "m", &m) ||
        dyno_json_i64(obj, "unit", &unit) || !sha || dyno_unhex(sha, g->sha_expect, 32) || size < 0 ||
        k < 1 || k > DYNO_EC_MAX_K || m < 0 || m > DYNO_EC_MAX_M || k + m > GW_MAX_N || unit < 1 ||
        unit > (int64_t)DYNO_FRAG_MAX_UNIT || !cJSON_IsArray(frags))
        return DYNO_EPROTO;
    g->replica = dyno_json_bool(obj, "replica", false);
    if (g->replica && k != 1)
        return DYNO_EPROTO;
    g->k = (int)k;
    g->m = (int)m;
    g->n = g->k + g->m;
    g->lay = (struct dyno_layout){.size = (uint64_t)size, .unit = (uint32_t)unit, .k = g->k};
    const cJSON *f;
    cJSON_ArrayForEach(f, frags)
    {
        int64_t idx;
        const char *url = dyno_json_str(f, "url");
        if (dyno_json_i64(f, "index", &idx) || idx < 0 || idx >= g->n || !url ||
            strlen(url) >= sizeof(g->info[0].url))
            continue;
        struct gw_frag_info *fi = &g->info[idx];
        const char *state = dyno_json_str(f, "state");
        const char *container = dyno_json_str(f, "container");
        snprintf(fi->url, sizeof(fi->url), "%s", url);
        snprintf(fi->container, sizeof(fi->container), "%s", container ? container : "?");
        fi->present = true;
        fi->usable = dyno_json_bool(f, "online", true) &&
                     !(state && (strcmp(state, "bad") == 0 || strcmp(state, "missing") == 0 ||
                                 strcmp(state, "lost") == 0 || strcmp(state, "corrupt") == 0));
    }
    return 0;
}

enum MHD_Result gw_get_object(struct gw_req *r, bool head)
{
    struct gw *gw = r->gw;
    char msg[400];
    cJSON *obj = NULL;
    int rc = gw_object_load(r, false, &obj, msg, sizeof(msg));
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);

    struct gw_get *g = calloc(1, sizeof(*g));
    if (!g) {
        cJSON_Delete(obj);
        return gw_reply_error(r, DYNO_ENOMEM, "out of memory");
    }
    g->gw = gw;
    g->conn = r->conn;
    g->r = r;
    memcpy(g->key, r->key, sizeof(g->key));
    rc = gw_get_init(g, obj);
    cJSON_Delete(obj);
    if (rc) {
        gw_get_free(g);
        return gw_reply_error(r, DYNO_EPROTO, "metadata answered an unusable object record");
    }
    char sha[65];
    dyno_hex(g->sha_expect, 32, sha);
    uint64_t size = g->lay.size;

    if (head) {
        struct MHD_Response *resp = MHD_create_response_from_callback(size, 4096, gw_no_body, NULL, NULL);
        gw_add_object_headers(resp, g->key, sha);
        gw_get_free(g);
        return gw_reply_response(r, MHD_HTTP_OK, resp);
    }

    const char *range = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
    unsigned status = MHD_HTTP_OK;
    g->first = 0;
    g->last = size ? size - 1 : 0;
    rc = range ? dyno_http_parse_range(range, size, &g->first, &g->last) : DYNO_ENOTFOUND;
    if (rc == DYNO_ERANGE) {
        gw_get_free(g);
        return gw_reply_416(r, size);
    }
    if (rc == 0) {
        status = MHD_HTTP_PARTIAL_CONTENT;
    } else {
        /* No Range, or a malformed one (ignored, as RFC 9110 allows): the whole object. */
        g->first = 0;
        g->last = size ? size - 1 : 0;
    }
    dyno_metric_add(&gw->metrics[GW_M_GETS], 1);

    if (size == 0) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        gw_add_object_headers(resp, g->key, sha);
        gw_get_free(g);
        return gw_reply_response(r, MHD_HTTP_OK, resp);
    }

    uint64_t stripe_bytes = (uint64_t)g->k * g->lay.unit;
    g->s_first = g->first / stripe_bytes;
    g->s_last = g->last / stripe_bytes;
    g->cur = g->s_first;
    g->verify = status == MHD_HTTP_OK;
    g->stripe_alloc = (size_t)stripe_bytes;
    g->parity_unit = g->lay.unit;
    if (size + (uint64_t)g->k < stripe_bytes) {
        g->stripe_alloc = (size_t)size + (size_t)g->k;
        g->parity_unit = (size_t)(size / (uint64_t)g->k) + 1;
    }
    if (dyno_sha256_new(&g->sha) || (!g->replica && gw_ec_get(gw, g->k, g->m, &g->ec))) {
        gw_get_free(g);
        return gw_reply_error(r, DYNO_ENOMEM, "out of memory");
    }
    /* A helper thread hashes while the stripes go out, for reads of several stripes. */
    if (gw_hasher_init(&g->hash, g->sha, g->verify && g->s_last > g->s_first) != 0)
        dyno_warn("no hashing thread", "key=%s detail=\"hashing inline\"", g->key);

    /* The first stripe is read before answering, so a read that cannot even start gets a
     * proper error status instead of a cut 200. */
    rc = gw_get_stripe(g);
    if (rc) {
        snprintf(msg, sizeof(msg), "%s", g->msg);
        dyno_error("read failed", "key=%s err=%s detail=\"%s\"", g->key, dyno_err_code(rc), msg);
        gw_get_free(g);
        return gw_reply_error(r, rc, "%s", msg);
    }
    struct MHD_Response *resp = MHD_create_response_from_callback(g->last - g->first + 1, GW_GET_BLOCK,
                                                                  gw_get_reader, g, gw_get_free);
    if (!resp) {
        gw_get_free(g);
        return gw_reply_error(r, DYNO_ENOMEM, "out of memory");
    }
    gw_add_object_headers(resp, g->key, sha);
    if (status == MHD_HTTP_PARTIAL_CONTENT) {
        char cr[96];
        snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)g->first,
                 (unsigned long long)g->last, (unsigned long long)size);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    }
    return gw_reply_response(r, status, resp);
}
