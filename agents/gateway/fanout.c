/*
 * Parallel fragment transfers with libcurl multi. The multi handle belongs to one client
 * connection (one MHD thread), so nothing here is shared between threads; its connection
 * cache keeps container connections alive across the requests of a keep-alive client.
 *
 * The get path and repair's reads own their transfers (struct gw_xfer embedded in their
 * stream structs) and their callbacks; this file sets the common options, drives the multi
 * and records which transfers finished. Fragments sent to containers (put.c, repair.c) use
 * the upload streams here: record framing, the read callback and the pump that drives them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "json.h"
#include "log.h"

static void gw_conn_destroy(struct gw_conn *conn)
{
    for (int i = 0; i < conn->npool; i++)
        curl_easy_cleanup(conn->pool[i]);
    if (conn->multi)
        curl_multi_cleanup(conn->multi);
    free(conn);
}

void gw_conn_free(struct gw_conn *conn)
{
    if (!conn)
        return;
    if (conn->gw && conn->multi) {
        /* Every transfer was closed by its owner, so the multi holds only idle
         * connections: park it, without the easy handles and their buffers. */
        for (int i = 0; i < conn->npool; i++)
            curl_easy_cleanup(conn->pool[i]);
        conn->npool = 0;
        for (int i = 0; i < GW_IDLE_CONNS; i++) {
            struct gw_conn *empty = NULL;
            if (atomic_compare_exchange_strong(&conn->gw->idle_conns[i], &empty, conn))
                return;
        }
    }
    gw_conn_destroy(conn);
}

void gw_conn_pool_free(struct gw *gw)
{
    for (int i = 0; i < GW_IDLE_CONNS; i++) {
        struct gw_conn *c = atomic_exchange(&gw->idle_conns[i], NULL);
        if (c)
            gw_conn_destroy(c);
    }
}

/* Gives conn a multi: a parked one (its connections to the containers already open), or
 * a new one. */
static int gw_conn_attach(struct gw *gw, struct gw_conn *conn)
{
    conn->gw = gw;
    for (int i = 0; i < GW_IDLE_CONNS; i++) {
        struct gw_conn *c = atomic_exchange(&gw->idle_conns[i], NULL);
        if (!c)
            continue;
        conn->multi = c->multi;
        free(c);
        return 0;
    }
    conn->multi = curl_multi_init();
    if (!conn->multi)
        return DYNO_ENOMEM;
    /* Keep one idle connection per container even after every transfer ended (curl's
     * default scales with the transfers in the multi, which is zero between requests). */
    curl_multi_setopt(conn->multi, CURLMOPT_MAXCONNECTS, GW_MULTI_MAXCONNECTS);
    return 0;
}

int gw_xfer_open(struct gw *gw, struct gw_conn *conn, struct gw_xfer *x, const char *url)
{
    if (!conn->multi) {
        int rc = gw_conn_attach(gw, conn);
        if (rc)
            return rc;
    }
    CURL *e = conn->npool ? conn->pool[--conn->npool] : curl_easy_init();
    if (!e)
        return DYNO_ENOMEM;
    x->easy = e;
    x->running = x->paused = x->done = false;
    x->result = CURLE_OK;
    x->status = 0;
    x->err[0] = '\0';
    x->last_ms = gw_now_ms();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, gw->svc_headers);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)gw->cfg.fragment_timeout_ms);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->err);
    /* An HTTP error ends the transfer without feeding its body to our parsers. */
    curl_easy_setopt(e, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)GW_CURL_BUFSIZE);
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, (long)GW_CURL_BUFSIZE);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    if (gw->cfg.broker_cafile)
        curl_easy_setopt(e, CURLOPT_CAINFO, gw->cfg.broker_cafile);
    return 0;
}

int gw_xfer_start(struct gw_conn *conn, struct gw_xfer *x)
{
    if (curl_multi_add_handle(conn->multi, x->easy) != CURLM_OK)
        return DYNO_EINTERNAL;
    x->running = true;
    x->last_ms = gw_now_ms();
    return 0;
}

void gw_xfer_resume(struct gw_xfer *x)
{
    if (x->easy && x->running && x->paused) {
        x->paused = false;
        /* May call our read/write callback right away, which may pause again. */
        curl_easy_pause(x->easy, CURLPAUSE_CONT);
    }
}

void gw_xfer_close(struct gw_conn *conn, struct gw_xfer *x)
{
    if (!x->easy)
        return;
    /* A handle closed mid-transfer (still running, or paused by us) may hold buffered
     * bytes of that transfer: it is not worth reusing. Only finished ones go back. */
    bool reusable = !x->running && !x->paused;
    if (x->running)
        curl_multi_remove_handle(conn->multi, x->easy);
    x->running = false;
    x->paused = false;
    if (reusable && conn->npool < GW_EASY_POOL) {
        /* Reset drops our callbacks and pointers; live connections stay in the multi. */
        curl_easy_reset(x->easy);
        conn->pool[conn->npool++] = x->easy;
    } else {
        curl_easy_cleanup(x->easy);
    }
    x->easy = NULL;
}

static int gw_collect_done(struct gw_conn *conn)
{
    int finished = 0, left = 0;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(conn->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct gw_xfer *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode res = msg->data.result;
        curl_multi_remove_handle(conn->multi, msg->easy_handle);
        if (!x)
            continue;
        x->running = false;
        x->done = true;
        x->result = res;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
        finished++;
    }
    return finished;
}

int gw_fanout_step(struct gw_conn *conn, int poll_ms)
{
    int running = 0;
    /* Wait first, then work: the caller checks its condition right after, so no poll
     * timeout is spent when the work already satisfied it. curl shortens the wait
     * itself when a timer (a resumed transfer, a timeout) is due. */
    curl_multi_poll(conn->multi, NULL, 0, poll_ms, NULL);
    curl_multi_perform(conn->multi, &running);
    gw_collect_done(conn);
    return 0;
}

void gw_xfer_reason(const struct gw_xfer *x, char *out, size_t cap)
{
    if (x->status >= 300)
        snprintf(out, cap, "HTTP %ld", x->status);
    else if (x->done && x->result != CURLE_OK)
        snprintf(out, cap, "%s%s%s", curl_easy_strerror(x->result), x->err[0] ? ": " : "", x->err);
    else if (x->done)
        snprintf(out, cap, "unexpected end of transfer");
    else
        snprintf(out, cap, "no progress in time");
}

/* ---- upload streams ---- */

static size_t gw_upload_read(char *buf, size_t size, size_t nitems, void *arg)
{
    struct gw_upload *u = arg;
    size_t cap = size * nitems, o = 0;
    while (o < cap && u->iseg < u->nseg) {
        struct gw_seg *g = &u->seg[u->iseg];
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
    /* Nothing yet: curl has sent all it had; the next record resumes us. */
    u->x.paused = true;
    return CURL_READFUNC_PAUSE;
}

static size_t gw_discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n; /* a container's answer to a PUT or DELETE: the status code is what counts */
}

int gw_upload_open(struct gw *gw, struct gw_conn *conn, struct gw_upload *u, const char *url, int64_t size)
{
    int rc = gw_xfer_open(gw, conn, &u->x, url);
    if (rc) {
        snprintf(u->why, sizeof(u->why), "cannot create a transfer");
        return rc;
    }
    CURL *e = u->x.easy;
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, gw_upload_read);
    curl_easy_setopt(e, CURLOPT_READDATA, u);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, gw_discard);
    /* Known size: containers check their capacity up front; else chunked. */
    if (size >= 0)
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
    u->live = true;
    if ((rc = gw_xfer_start(conn, &u->x)) != 0) {
        u->live = false;
        gw_xfer_close(conn, &u->x);
        snprintf(u->why, sizeof(u->why), "cannot start a transfer");
    }
    return rc;
}

void gw_upload_record(struct gw_upload *u, bool first, const uint8_t *payload, size_t ulen,
                      const uint8_t *suf)
{
    dyno_frag_rec_prefix((uint32_t)ulen, u->pre);
    if (suf)
        memcpy(u->suf, suf, sizeof(u->suf));
    else
        dyno_frag_rec_suffix(payload, ulen, u->suf);
    u->nseg = u->iseg = 0;
    u->off = 0;
    if (first)
        u->seg[u->nseg++] = (struct gw_seg){u->hdr, DYNO_FRAG_HDR_SIZE};
    u->seg[u->nseg++] = (struct gw_seg){u->pre, sizeof(u->pre)};
    u->seg[u->nseg++] = (struct gw_seg){payload, ulen};
    u->seg[u->nseg++] = (struct gw_seg){u->suf, sizeof(u->suf)};
}

void gw_upload_tail(struct gw_upload *u, bool first, const uint8_t *tail, size_t len)
{
    /* A stream not started yet (a deferred replica) still holds its one record: the tail
     * goes after it, and the whole fragment leaves in one piece. */
    if (u->iseg >= u->nseg) {
        u->nseg = u->iseg = 0;
        u->off = 0;
    }
    if (first)
        u->seg[u->nseg++] = (struct gw_seg){u->hdr, DYNO_FRAG_HDR_SIZE};
    u->seg[u->nseg++] = (struct gw_seg){tail, len};
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
    gw_xfer_close(set->conn, &u->x);
    if (set->on_fail)
        set->on_fail(set->arg, u);
}

static bool gw_upload_pending(const struct gw_upload *u)
{
    return u->iseg < u->nseg;
}

int gw_upload_pump(const struct gw_upload_set *set, bool final)
{
    int64_t now = gw_now_ms();
    for (int i = 0; i < set->n; i++) {
        struct gw_upload *u = &set->up[i];
        if (u->live && u->x.paused && (gw_upload_pending(u) || u->eof)) {
            u->x.last_ms = now; /* new work: the no-progress clock starts now */
            gw_xfer_resume(&u->x);
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
                if (final && u->x.result == CURLE_OK && u->x.status >= 200 && u->x.status < 300 &&
                    !gw_upload_pending(u)) {
                    u->stored = true;
                    gw_xfer_close(set->conn, &u->x);
                } else {
                    char why[200];
                    gw_xfer_reason(&u->x, why, sizeof(why));
                    gw_upload_fail(set, u, why);
                }
                continue;
            }
            /* Drained = all segments taken and curl came back for more (so its own
             * buffer went out to the socket): the container works while we read. */
            if (final || gw_upload_pending(u) || !u->x.paused) {
                busy = true;
                if (now - u->x.last_ms > set->timeout_ms)
                    gw_upload_fail(set, u, "no progress in time");
            }
        }
        if (gw_upload_live(set) < set->need)
            return DYNO_EUNAVAIL;
        if (!busy)
            return 0;
        gw_fanout_step(set->conn, 50);
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
        if (gw_xfer_open(gw, conn, &x[i], u))
            continue;
        x[i].index = index[i];
        curl_easy_setopt(x[i].easy, CURLOPT_CUSTOMREQUEST, "DELETE");
        curl_easy_setopt(x[i].easy, CURLOPT_WRITEFUNCTION, gw_discard);
        curl_easy_setopt(x[i].easy, CURLOPT_TIMEOUT_MS, (long)gw->cfg.fragment_timeout_ms);
        if (gw_xfer_start(conn, &x[i]))
            gw_xfer_close(conn, &x[i]);
    }
    for (;;) {
        bool busy = false;
        for (int i = 0; i < n; i++)
            busy |= x[i].running;
        if (!busy)
            break;
        gw_fanout_step(conn, 100);
    }
    for (int i = 0; i < n; i++) {
        if (!x[i].easy)
            continue;
        /* 404: already gone, which is what we wanted. */
        if (x[i].done && (x[i].status == 404 || (x[i].result == CURLE_OK && x[i].status < 300))) {
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

void gw_purge_fragments(struct gw *gw, struct gw_conn *conn, const char *key, const cJSON *frags)
{
    int index[GW_MAX_N] = {0};
    const char *url[GW_MAX_N] = {NULL};
    bool deleted[GW_MAX_N] = {false};
    int n = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, frags)
    {
        int64_t idx;
        if (n == GW_MAX_N || dyno_json_i64(f, "index", &idx) || idx < 0 || idx >= GW_MAX_N)
            continue;
        /* Fragments on offline containers stay as garbage for metadata to collect later. */
        if (!dyno_json_bool(f, "online", true))
            continue;
        index[n] = (int)idx;
        url[n] = dyno_json_str(f, "url");
        n++;
    }
    gw_fanout_delete(gw, conn, key, index, url, n, deleted);

    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "key", key);
    cJSON *del = cJSON_AddArrayToObject(params, "deleted");
    for (int i = 0; i < n; i++)
        if (deleted[i])
            cJSON_AddItemToArray(del, cJSON_CreateNumber(index[i]));
    char msg[256];
    int rc = gw_rpc(gw, "metadata", "object.purge", params, NULL, msg, sizeof(msg));
    if (rc)
        dyno_warn("object.purge failed", "key=%s err=%s", key, dyno_err_code(rc));
    cJSON_Delete(params);
}
