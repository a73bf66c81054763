/*
 * Fragment transfers over the gateway's transport (dp.h): the dispatch to gw->tp, the
 * upload streams that send a fragment a record at a time (put and repair), and parallel
 * deletes. Nothing here knows HTTP libraries; xfer_curl.c is the transport of the running
 * gateway, tests/unit/test_gw_datapath.c has a fake one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "log.h"

/* ---- dispatch ---- */

int gw_xfer_start(struct gw *gw, struct gw_conn *conn, struct gw_xfer *x, const struct gw_xfer_spec *s)
{
    conn->gw = gw;
    x->h = NULL;
    x->running = x->paused = x->done = false;
    x->result = GW_XFER_OK;
    x->status = 0;
    x->err[0] = '\0';
    x->read = s->read;
    x->write = s->write;
    x->arg = s->arg;
    x->last_ms = gw_now_ms();
    int rc = gw->tp->start(gw, conn, x, s);
    if (rc)
        x->h = NULL;
    x->last_ms = gw_now_ms();
    return rc;
}

void gw_xfer_resume(struct gw_conn *conn, struct gw_xfer *x)
{
    if (x->h && x->running && x->paused) {
        x->paused = false;
        conn->gw->tp->resume(conn, x);
    }
}

void gw_xfer_close(struct gw_conn *conn, struct gw_xfer *x)
{
    if (!x->h)
        return;
    conn->gw->tp->close(conn, x);
    x->h = NULL;
    x->running = false;
    x->paused = false;
}

void gw_xfer_step(struct gw_conn *conn, int poll_ms)
{
    if (conn->gw)
        conn->gw->tp->step(conn, poll_ms);
}

void gw_xfer_reason(const struct gw_xfer *x, char *out, size_t cap)
{
    if (x->status >= 300)
        snprintf(out, cap, "HTTP %ld", x->status);
    else if (x->done && x->result == GW_XFER_CUT)
        snprintf(out, cap, "body cut short");
    else if (x->done && x->result != GW_XFER_OK)
        snprintf(out, cap, "%s", x->err[0] ? x->err : "transfer failed");
    else if (x->done)
        snprintf(out, cap, "unexpected end of transfer");
    else
        snprintf(out, cap, "no progress in time");
}

/* ---- fragment buffers ---- */

/* A buffer carries its size in a header, so that a pool slot is one pointer, swapped
 * atomically (no lock to set up, and the zero of a fresh struct gw is an empty pool). */
#define XFER_BUF_HDR 16     /* keeps the payload 16-byte aligned */
#define XFER_BUF_MIN 65536u /* below this malloc is cheap (no mapping): never pooled */

static size_t xfer__buf_std(const struct gw *gw)
{
    return 2 * (size_t)(gw->cfg.unit > 0 ? gw->cfg.unit : 1) + GW_CURL_BUFSIZE;
}

uint8_t *gw_buf_take(struct gw *gw, size_t need, size_t *cap)
{
    size_t std = xfer__buf_std(gw);
    if (need >= XFER_BUF_MIN && need <= std) {
        for (int i = 0; i < GW_SPARE_BUFS; i++) {
            uint8_t *b = atomic_exchange(&gw->spare_bufs[i], NULL);
            if (!b)
                continue;
            size_t have;
            memcpy(&have, b, sizeof(have));
            if (have >= need) {
                *cap = have;
                return b + XFER_BUF_HDR;
            }
            uint8_t *empty = NULL;
            if (!atomic_compare_exchange_strong(&gw->spare_bufs[i], &empty, b))
                free(b);
        }
        need = std; /* the usual size, so any later get can reuse it */
    }
    uint8_t *b = malloc(XFER_BUF_HDR + (need ? need : 1));
    if (!b)
        return NULL;
    memcpy(b, &need, sizeof(need));
    *cap = need;
    return b + XFER_BUF_HDR;
}

void gw_buf_give(struct gw *gw, uint8_t *p, size_t cap)
{
    if (!p)
        return;
    uint8_t *b = p - XFER_BUF_HDR;
    memcpy(&cap, b, sizeof(cap)); /* the size it was made with */
    if (cap >= XFER_BUF_MIN && cap <= xfer__buf_std(gw)) {
        for (int i = 0; i < GW_SPARE_BUFS; i++) {
            uint8_t *empty = NULL;
            if (atomic_compare_exchange_strong(&gw->spare_bufs[i], &empty, b))
                return;
        }
    }
    free(b);
}

void gw_buf_pool_free(struct gw *gw)
{
    for (int i = 0; i < GW_SPARE_BUFS; i++)
        free(atomic_exchange(&gw->spare_bufs[i], NULL));
}

/* ---- upload streams ---- */

static size_t xfer__upload_read(char *buf, size_t cap, void *arg)
{
    struct gw_upload *u = arg;
    size_t o = 0;
    while (o < cap && u->iseg < u->nseg) {
        struct dyno_frag_seg *g = &u->seg[u->iseg];
        size_t take = g->len - u->off;
        if (take > cap - o)
            take = cap - o;
        memcpy(buf + o, g->p + u->off, take);
        o += take;
        u->off += take;
        if (u->off == g->len) {
            u->iseg++;
            u->off = 0;
        }
    }
    if (o > 0) {
        u->x.last_ms = gw_now_ms();
        return o;
    }
    if (u->eof)
        return 0;
    /* Nothing yet: everything we had went out; the next record resumes us. */
    return GW_XFER_PAUSE;
}

/* Gathers the segments of a stream that already holds its whole fragment (size bytes) into
 * u->body, and marks them taken. False (nothing changed) when the stream is not complete,
 * too large, or memory is short: it is then streamed as usual. */
static bool xfer__upload_gather(struct gw_upload *u, int64_t size)
{
    if (!u->eof || size < 0 || size > GW_UPLOAD_INLINE_MAX || u->body)
        return false;
    size_t total = 0;
    for (int i = u->iseg; i < u->nseg; i++)
        total += u->seg[i].len - (i == u->iseg ? u->off : 0);
    if (total != (size_t)size)
        return false;
    uint8_t *b = malloc(total ? total : 1);
    if (!b)
        return false;
    size_t o = 0;
    for (int i = u->iseg; i < u->nseg; i++) {
        size_t skip = i == u->iseg ? u->off : 0;
        memcpy(b + o, u->seg[i].p + skip, u->seg[i].len - skip);
        o += u->seg[i].len - skip;
    }
    u->body = b;
    u->iseg = u->nseg;
    u->off = 0;
    return true;
}

int gw_upload_open(struct gw *gw, struct gw_conn *conn, struct gw_upload *u, const char *url, int64_t size)
{
    struct gw_xfer_spec s = {
        .method = GW_XFER_PUT, .url = url, .size = size, .read = xfer__upload_read, .arg = u};
    if (xfer__upload_gather(u, size))
        s.body = u->body;
    int rc = gw_xfer_start(gw, conn, &u->x, &s);
    u->live = rc == 0;
    if (rc)
        snprintf(u->why, sizeof(u->why), "cannot start a transfer");
    return rc;
}

void gw_upload_close(struct gw_conn *conn, struct gw_upload *u)
{
    gw_xfer_close(conn, &u->x);
    free(u->body);
    u->body = NULL;
}

void gw_upload_record(struct gw_upload *u, const uint8_t *payload, size_t ulen, const uint8_t *suf)
{
    u->nseg = dyno_frag_writer_record(&u->w, payload, ulen, suf, u->seg);
    u->iseg = 0;
    u->off = 0;
}

void gw_upload_tail(struct gw_upload *u, const uint8_t *tail, size_t len)
{
    /* A stream not started yet (a deferred replica) still holds its one record: the tail
     * goes after it, and the whole fragment leaves in one piece. */
    if (u->iseg >= u->nseg) {
        u->nseg = u->iseg = 0;
        u->off = 0;
    }
    u->seg[u->nseg++] = (struct dyno_frag_seg){tail, len};
    u->eof = true;
}

int gw_upload_live(const struct gw_upload_set *set)
{
    int live = 0;
    for (int i = 0; i < set->n; i++)
        live += set->up[i].live;
    return live;
}

void gw_upload_fail(const struct gw_upload_set *set, struct gw_upload *u, const char *why)
{
    if (!u->live)
        return;
    u->live = false;
    snprintf(u->why, sizeof(u->why), "%s", why);
    gw_upload_close(set->conn, u);
    if (set->on_fail)
        set->on_fail(set->arg, u);
}

static bool xfer__upload_pending(const struct gw_upload *u)
{
    return u->iseg < u->nseg;
}

int gw_upload_pump(const struct gw_upload_set *set, bool final)
{
    int64_t now = gw_now_ms();
    for (int i = 0; i < set->n; i++) {
        struct gw_upload *u = &set->up[i];
        if (u->live && u->x.paused && (xfer__upload_pending(u) || u->eof)) {
            u->x.last_ms = now; /* new work: the no-progress clock starts now */
            gw_xfer_resume(set->conn, &u->x);
        }
    }
    for (;;) {
        bool busy = false;
        now = gw_now_ms();
        for (int i = 0; i < set->n; i++) {
            struct gw_upload *u = &set->up[i];
            if (!u->live || u->stored)
                continue;
            if (u->x.done) {
                if (final && u->x.result == GW_XFER_OK && u->x.status >= 200 && u->x.status < 300 &&
                    !xfer__upload_pending(u)) {
                    u->stored = true;
                    gw_upload_close(set->conn, u);
                } else {
                    char why[200];
                    gw_xfer_reason(&u->x, why, sizeof(why));
                    gw_upload_fail(set, u, why);
                }
                continue;
            }
            /* Drained = all segments taken and the transport came back for more (so its own
             * buffer went out to the socket): the container works while we read. */
            if (final || xfer__upload_pending(u) || !u->x.paused) {
                busy = true;
                if (now - u->x.last_ms > set->timeout_ms)
                    gw_upload_fail(set, u, "no progress in time");
            }
        }
        if (gw_upload_live(set) < set->need)
            return DYNO_EUNAVAIL;
        if (!busy)
            return 0;
        gw_xfer_step(set->conn, 50);
    }
}

/* ---- deletes ---- */

int gw_fanout_delete(struct gw *gw, struct gw_conn *conn, const char *key, const int *index,
                     const char *const *url, int n, bool *deleted)
{
    struct gw_xfer x[GW_MAX_N];
    int count = 0;
    if (n > GW_MAX_N)
        n = GW_MAX_N;
    memset(x, 0, sizeof(x));
    for (int i = 0; i < n; i++) {
        deleted[i] = false;
        if (!url[i])
            continue;
        char u[1024];
        snprintf(u, sizeof(u), "%s/v1/fragments/%s.%d", url[i], key, index[i]);
        struct gw_xfer_spec s = {
            .method = GW_XFER_DELETE, .url = u, .timeout_ms = (long)gw->cfg.fragment_timeout_ms};
        if (gw_xfer_start(gw, conn, &x[i], &s) == 0)
            x[i].index = index[i];
    }
    for (;;) {
        bool busy = false;
        for (int i = 0; i < n; i++)
            busy |= x[i].h && x[i].running;
        if (!busy)
            break;
        gw_xfer_step(conn, 100);
    }
    for (int i = 0; i < n; i++) {
        if (!x[i].h)
            continue;
        /* 404: already gone, which is what we wanted. */
        if (x[i].done && (x[i].status == 404 || (x[i].result == GW_XFER_OK && x[i].status < 300))) {
            deleted[i] = true;
            count++;
        } else {
            char why[200];
            gw_xfer_reason(&x[i], why, sizeof(why));
            dyno_warn("fragment not deleted", "key=%s index=%d reason=\"%s\"", key, index[i], why);
        }
        gw_xfer_close(conn, &x[i]);
    }
    return count;
}
