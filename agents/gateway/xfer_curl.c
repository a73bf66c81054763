/*
 * The transport of the running gateway (dp.h struct gw_transport): HTTP to containers with
 * libcurl multi. The multi handle belongs to one client connection (one MHD thread), or to
 * one ingest or repair worker, so nothing here is shared between threads; its connection
 * cache keeps container connections alive across the requests of a keep-alive client.
 *
 * The core's callbacks are transport-neutral (dp.h): the trampolines here translate
 * GW_XFER_PAUSE into curl's pause codes and set the response status before the first body
 * byte is handed on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "log.h"

static void xc__conn_destroy(struct gw_conn *conn)
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
    xc__conn_destroy(conn);
}

void gw_conn_pool_free(struct gw *gw)
{
    gw_buf_pool_free(gw);
    for (int i = 0; i < GW_IDLE_CONNS; i++) {
        struct gw_conn *c = atomic_exchange(&gw->idle_conns[i], NULL);
        if (c)
            xc__conn_destroy(c);
    }
}

/* Gives conn a multi: a parked one (its connections to the containers already open), or
 * a new one. */
static int xc__conn_attach(struct gw *gw, struct gw_conn *conn)
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

static size_t xc__read(char *buf, size_t size, size_t nitems, void *arg)
{
    struct gw_xfer *x = arg;
    size_t n = x->read(buf, size * nitems, x->arg);
    if (n == GW_XFER_PAUSE) {
        x->paused = true;
        return CURL_READFUNC_PAUSE;
    }
    return n;
}

static size_t xc__write(char *p, size_t size, size_t n, void *arg)
{
    struct gw_xfer *x = arg;
    size_t len = size * n;
    if (!x->write)
        return len; /* a container's answer to a PUT or DELETE: the status code is what counts */
    if (x->status == 0)
        curl_easy_getinfo((CURL *)x->h, CURLINFO_RESPONSE_CODE, &x->status);
    size_t took = x->write(p, len, x->arg);
    if (took == GW_XFER_PAUSE) {
        x->paused = true;
        return CURL_WRITEFUNC_PAUSE; /* curl keeps the chunk and re-delivers it on resume */
    }
    return took;
}

static int xc__start(struct gw *gw, struct gw_conn *conn, struct gw_xfer *x, const struct gw_xfer_spec *s)
{
    if (!conn->multi) {
        int rc = xc__conn_attach(gw, conn);
        if (rc)
            return rc;
    }
    CURL *e = conn->npool ? conn->pool[--conn->npool] : curl_easy_init();
    if (!e)
        return DYNO_ENOMEM;
    x->h = e;
    curl_easy_setopt(e, CURLOPT_URL, s->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, gw->svc_headers);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)gw->cfg.fragment_timeout_ms);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->err);
    /* An HTTP error ends the transfer without feeding its body to our parsers. */
    curl_easy_setopt(e, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)GW_CURL_BUFSIZE);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    if (gw->cfg.c.broker_cafile)
        curl_easy_setopt(e, CURLOPT_CAINFO, gw->cfg.c.broker_cafile);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, xc__write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    switch (s->method) {
    case GW_XFER_GET:
        if (s->range)
            curl_easy_setopt(e, CURLOPT_RANGE, s->range);
        break;
    case GW_XFER_PUT:
        if (s->body && s->size >= 0) {
            /* A body known whole goes as "POST fields" under the PUT method: curl then sends
             * it in the same buffer as the headers (one send, one wake-up of the container)
             * and needs no upload buffer. "Content-Type:" in svc_headers keeps curl's form
             * type out. */
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->size);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, s->body);
            break;
        }
        /* Set only for streamed bodies: curl frees its upload buffer at each setting. */
        curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, (long)GW_CURL_BUFSIZE);
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, xc__read);
        curl_easy_setopt(e, CURLOPT_READDATA, x);
        /* Known size: containers check their capacity up front; else chunked. */
        if (s->size >= 0)
            curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)s->size);
        break;
    case GW_XFER_DELETE:
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
        break;
    }
    if (s->timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    if (curl_multi_add_handle(conn->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        x->h = NULL;
        return DYNO_EINTERNAL;
    }
    x->running = true;
    return 0;
}

static void xc__resume(struct gw_conn *conn, struct gw_xfer *x)
{
    (void)conn;
    /* May call our read/write callback right away, which may pause again. */
    curl_easy_pause((CURL *)x->h, CURLPAUSE_CONT);
}

static void xc__close(struct gw_conn *conn, struct gw_xfer *x)
{
    CURL *e = x->h;
    /* A handle closed mid-transfer (still running, or paused by us) may hold buffered
     * bytes of that transfer: it is not worth reusing. Only finished ones go back. */
    bool reusable = !x->running && !x->paused;
    if (x->running)
        curl_multi_remove_handle(conn->multi, e);
    if (reusable && conn->npool < GW_EASY_POOL) {
        /* Reset drops our callbacks and pointers; live connections stay in the multi. */
        curl_easy_reset(e);
        conn->pool[conn->npool++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

static void xc__collect_done(struct gw_conn *conn)
{
    int left = 0;
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
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &x->status);
        if (res == CURLE_OK) {
            x->result = GW_XFER_OK;
        } else if (res == CURLE_PARTIAL_FILE) {
            x->result = GW_XFER_CUT;
        } else {
            /* curl's own words first, then its detail (cut to fit: it is for the log). */
            char detail[sizeof(x->err)];
            memcpy(detail, x->err, sizeof(detail));
            detail[sizeof(detail) - 1] = '\0';
            size_t o = (size_t)snprintf(x->err, sizeof(x->err), "%s", curl_easy_strerror(res));
            if (detail[0] && o + 2 < sizeof(x->err))
                snprintf(x->err + o, sizeof(x->err) - o, ": %.*s", (int)(sizeof(x->err) - o - 3), detail);
            x->result = GW_XFER_FAILED;
        }
    }
}

static void xc__step(struct gw_conn *conn, int poll_ms)
{
    int running = 0;
    if (!conn->multi)
        return;
    /* Wait first, then work: the caller checks its condition right after, so no poll
     * timeout is spent when the work already satisfied it. curl shortens the wait
     * itself when a timer (a resumed transfer, a timeout) is due. */
    curl_multi_poll(conn->multi, NULL, 0, poll_ms, NULL);
    curl_multi_perform(conn->multi, &running);
    xc__collect_done(conn);
}

const struct gw_transport gw_curl_transport = {
    .start = xc__start,
    .resume = xc__resume,
    .close = xc__close,
    .step = xc__step,
};
