/*
 * The container's HTTP server (libmicrohttpd, one thread per connection): routes, bearer
 * auth with service tokens, streamed and verified PUT, DELETE, health and metrics.
 *
 * PUT: the body goes through the lib/frag.h push parser while the raw bytes go to a store
 * put. The first DYNO_FRAG_HDR_SIZE bytes are buffered here and decoded first, so the
 * parser is sized for the fragment's own stripe unit (not the 16 MiB maximum) and the
 * key/index can be matched against the URL before anything else. On any problem the put
 * is aborted at once, the rest of the body is read and dropped, and the error is sent when
 * the request is complete (MHD answers only then).
 */
#include "http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "crashpoint.h"
#include "dynostore/error.h"
#include "frag.h"
#include "httpd.h"
#include "json.h"
#include "log.h"
#include "rest.h"
#include "token.h"

#define HTTP_FRAG_PREFIX "/v1/fragments/"
#define HTTP_POOL (32 * 1024) /* per-connection memory of MHD: headers, upload reads */

/* MHD's per-request pointer of a request without a body between its first call and the
 * second, where it is answered (see http_handler). Only its address is used. */
static char http_deferred;

/* State of one PUT, kept in MHD's per-request pointer. */
struct http_put {
    struct container *c;
    char id[STORE_ID_MAX + 1];
    char key[DYNO_KEY_LEN + 1];
    unsigned index;
    struct store_put *sp;
    uint64_t received;
    uint64_t reserved; /* capacity reserved by this put */
    uint64_t credit;   /* size of the fragment it replaces (once credit_known) */
    bool credit_known; /* looked up: only when a reservation without it failed */
    uint8_t hdr[DYNO_FRAG_HDR_SIZE];
    size_t hdr_have;
    bool parser_ready;
    struct dyno_frag_parser parser;
    uint32_t unit;
    uint64_t records;
    bool short_seen; /* a record shorter than unit was seen: it must be the last */
    int err;         /* first error, answered when the body is complete */
    char errmsg[160];
};

enum MHD_Result container_http_error(struct MHD_Connection *conn, unsigned status, int err, const char *hname,
                                     const char *hval, const char *fmt, ...)
{
    const struct dyno_http_error e = {.err = err, .status = status, .hname = hname, .hval = hval};
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result ret = dyno_http_vreply_err(conn, &e, fmt, ap);
    va_end(ap);
    return ret;
}

/* 0 when the request carries a valid service token; DYNO_EUNAUTH or DYNO_EFORBIDDEN. */
static int http_auth(struct container *c, struct MHD_Connection *conn, const char **why)
{
    struct dyno_claims claims;
    const char *tok = dyno_http_bearer(conn);
    if (!tok) {
        *why = "missing bearer token";
        return DYNO_EUNAUTH;
    }
    if (dyno_token_verify(c->verifier, tok, (int64_t)time(NULL), &claims) != 0) {
        *why = "invalid, expired or revoked token";
        return DYNO_EUNAUTH;
    }
    if (strcmp(claims.role, "service") != 0) {
        *why = "a service token is required";
        return DYNO_EFORBIDDEN;
    }
    return 0;
}

static enum MHD_Result http_health(struct container *c, struct MHD_Connection *conn)
{
    uint64_t used = 0, frags = 0;
    store_usage(c->store, &used, &frags);
    uint64_t cap = (uint64_t)c->cfg.capacity;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return MHD_NO;
    cJSON_AddStringToObject(o, "id", c->cfg.c.id);
    cJSON_AddStringToObject(o, "state", "online");
    dyno_json_add_i64(o, "capacity", (int64_t)cap);
    dyno_json_add_i64(o, "used", (int64_t)used);
    dyno_json_add_i64(o, "free", (int64_t)container_free(c, used));
    dyno_json_add_i64(o, "fragments", (int64_t)frags);
    enum MHD_Result ret = dyno_http_reply_json(conn, MHD_HTTP_OK, o);
    cJSON_Delete(o);
    return ret;
}

static enum MHD_Result http_metrics(struct container *c, struct MHD_Connection *conn)
{
    struct dyno_buf b;
    size_t len = 0;
    container_update_gauges(c);
    dyno_buf_init(&b, 1024 * 1024);
    if (dyno_metrics_render(c->metrics, CM_COUNT, &b) != 0) {
        dyno_buf_free(&b);
        return container_http_error(conn, 0, DYNO_EINTERNAL, NULL, NULL, "cannot render metrics");
    }
    char *text = dyno_buf_take(&b, &len);
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, text ? text : (char *)"", text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result http_delete(struct container *c, struct MHD_Connection *conn, const char *id)
{
    uint64_t size = 0;
    int rc = store_remove(c->store, id, &size);
    container_cache_invalidate(c->cache, id);
    if (rc == DYNO_ENOTFOUND)
        return container_http_error(conn, 0, rc, NULL, NULL, "no fragment %s", id);
    if (rc) {
        dyno_error("delete failed", "id=%s err=%s", id, dyno_err_code(rc));
        return container_http_error(conn, 0, rc, NULL, NULL, "cannot delete fragment %s", id);
    }
    dyno_metric_add(&c->metrics[CM_DELETES], 1);
    dyno_debug("fragment deleted", "id=%s size=%llu", id, (unsigned long long)size);
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_NO_CONTENT, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- PUT ---- */

static void http_put_fail(struct http_put *p, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void http_put_fail(struct http_put *p, int err, const char *fmt, ...)
{
    if (p->err)
        return;
    p->err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->errmsg, sizeof(p->errmsg), fmt, ap);
    va_end(ap);
    if (p->sp) {
        store_put_abort(p->c->store, p->sp);
        p->sp = NULL;
    }
    if (p->reserved) {
        container_unreserve(p->c, p->reserved);
        p->reserved = 0;
    }
}

static void http_put_free(struct http_put *p)
{
    if (!p)
        return;
    if (p->sp)
        store_put_abort(p->c->store, p->sp);
    if (p->reserved)
        container_unreserve(p->c, p->reserved);
    if (p->parser_ready)
        dyno_frag_parser_free(&p->parser);
    free(p);
}

static int http_put_on_header(void *arg, const struct dyno_frag_hdr *h)
{
    struct http_put *p = arg;
    if (strcmp(h->key, p->key) != 0 || h->index != p->index)
        return DYNO_ECORRUPT;
    return 0;
}

static int http_put_on_record(void *arg, uint64_t s, const uint8_t *payload, size_t len)
{
    struct http_put *p = arg;
    (void)payload;
    if (s != p->records || len == 0 || len > p->unit || p->short_seen)
        return DYNO_ECORRUPT;
    if (len < p->unit)
        p->short_seen = true;
    p->records++;
    return 0;
}

static int http_put_on_trailer(void *arg, const struct dyno_frag_trailer *t)
{
    struct http_put *p = arg;
    return t->records == p->records ? 0 : DYNO_ECORRUPT;
}

/* The payload goes to the store as it is (http_put_data writes the raw body): the parser
 * only needs to run the CRC over it, in place, so it streams instead of copying. */
static int http_put_on_payload(void *arg, uint64_t s, size_t off, const uint8_t *p, size_t len)
{
    (void)arg;
    (void)s;
    (void)off;
    (void)p;
    (void)len;
    return 0;
}

static const struct dyno_frag_parser_cbs http_put_cbs = {
    .on_header = http_put_on_header,
    .on_record = http_put_on_record,
    .on_trailer = http_put_on_trailer,
    .on_payload = http_put_on_payload,
};

/* Feeds body bytes to the parser; the header is buffered until complete. */
static int http_put_parse(struct http_put *p, const uint8_t *data, size_t len)
{
    if (!p->parser_ready) {
        size_t n = DYNO_FRAG_HDR_SIZE - p->hdr_have;
        if (n > len)
            n = len;
        memcpy(p->hdr + p->hdr_have, data, n);
        p->hdr_have += n;
        data += n;
        len -= n;
        if (p->hdr_have < DYNO_FRAG_HDR_SIZE)
            return 0;
        struct dyno_frag_hdr h;
        int rc = dyno_frag_hdr_decode(p->hdr, sizeof(p->hdr), &h);
        if (rc) {
            http_put_fail(p, DYNO_ECORRUPT, "bad fragment header");
            return rc;
        }
        if (strcmp(h.key, p->key) != 0 || h.index != p->index) {
            http_put_fail(p, DYNO_ECORRUPT, "fragment header is %s.%u, not %s", h.key, (unsigned)h.index,
                          p->id);
            return DYNO_ECORRUPT;
        }
        p->unit = h.unit;
        rc = dyno_frag_parser_init(&p->parser, true, 0, h.unit, &http_put_cbs, p);
        if (rc) {
            http_put_fail(p, rc, "cannot start the fragment parser");
            return rc;
        }
        p->parser_ready = true;
        rc = dyno_frag_parser_feed(&p->parser, p->hdr, sizeof(p->hdr));
        if (rc) {
            http_put_fail(p, DYNO_ECORRUPT, "bad fragment header");
            return rc;
        }
    }
    if (len == 0)
        return 0;
    int rc = dyno_frag_parser_feed(&p->parser, data, len);
    if (rc) {
        http_put_fail(p, DYNO_ECORRUPT, "corrupt fragment stream after %llu records",
                      (unsigned long long)p->records);
        return rc;
    }
    return 0;
}

/* Reserves n more bytes of capacity for p. A put that replaces a fragment is credited with
 * the old one's size, but looking that up costs a stat of a path that, for almost every put,
 * does not exist: it is done only when the reservation does not fit without it. */
static int http_put_reserve(struct http_put *p, uint64_t n)
{
    if (container_reserve(p->c, n, p->credit) == 0)
        return 0;
    if (p->credit_known)
        return DYNO_ENOSPC;
    uint64_t old = 0;
    p->credit_known = true;
    if (store_stat(p->c->store, p->id, &old) != 0 || old == 0)
        return DYNO_ENOSPC;
    p->credit = old;
    return container_reserve(p->c, n, p->credit);
}

/* First call of a PUT: capacity check against Content-Length, then the store put. */
static enum MHD_Result http_put_begin(struct container *c, struct MHD_Connection *conn, const char *id,
                                      void **con_cls)
{
    struct http_put *p = calloc(1, sizeof(*p));
    if (!p)
        return container_http_error(conn, 0, DYNO_ENOMEM, NULL, NULL, "out of memory");
    p->c = c;
    snprintf(p->id, sizeof(p->id), "%s", id);
    (void)store_valid_id(id, p->key, &p->index);

    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        uint64_t v;
        /* MHD already refuses a Content-Length it cannot read; this is the same strict
         * parser as the gateway's, so the two never disagree on what a length is. */
        if (dyno_rest_parse_u64(cl, &v)) {
            http_put_free(p);
            return container_http_error(conn, 0, DYNO_EINVAL, NULL, NULL, "bad Content-Length");
        }
        if (v < DYNO_FRAG_HDR_SIZE + DYNO_FRAG_END_SIZE + DYNO_FRAG_TRAILER_SIZE) {
            http_put_free(p);
            return container_http_error(conn, 400, DYNO_ECORRUPT, NULL, NULL,
                                        "body of %llu bytes is too short for a fragment",
                                        (unsigned long long)v);
        }
        if (http_put_reserve(p, v) != 0) {
            http_put_free(p);
            dyno_warn("no space", "id=%s size=%llu", id, (unsigned long long)v);
            return container_http_error(conn, 0, DYNO_ENOSPC, NULL, NULL, "no room for %llu bytes",
                                        (unsigned long long)v);
        }
        p->reserved = v;
    }
    int rc = store_put_begin(c->store, id, &p->sp);
    if (rc) {
        http_put_free(p);
        dyno_error("put failed", "id=%s err=%s", id, dyno_err_code(rc));
        return container_http_error(conn, 0, rc, NULL, NULL, "cannot store fragment %s", id);
    }
    *con_cls = p;
    return MHD_YES;
}

static void http_put_data(struct http_put *p, const char *data, size_t len)
{
    struct container *c = p->c;
    dyno_metric_add(&c->metrics[CM_BYTES_IN], (int64_t)len);
    if (p->err)
        return; /* dropping the rest of a failed put */
    p->received += len;
    if (p->received > p->reserved) {
        uint64_t more = p->received - p->reserved;
        if (http_put_reserve(p, more) != 0) {
            dyno_warn("no space", "id=%s received=%llu", p->id, (unsigned long long)p->received);
            http_put_fail(p, DYNO_ENOSPC, "no room for fragment %s", p->id);
            return;
        }
        p->reserved += more;
    }
    if (http_put_parse(p, (const uint8_t *)data, len) != 0)
        return;
    int rc = store_put_write(c->store, p->sp, data, len);
    if (rc) {
        dyno_error("write failed", "id=%s err=%s", p->id, dyno_err_code(rc));
        http_put_fail(p, rc, "cannot write fragment %s", p->id);
    }
}

static enum MHD_Result http_put_end(struct http_put *p, struct MHD_Connection *conn)
{
    struct container *c = p->c;
    if (!p->err && (!p->parser_ready || !dyno_frag_parser_done(&p->parser)))
        http_put_fail(p, DYNO_ECORRUPT, "incomplete fragment stream (%llu bytes)",
                      (unsigned long long)p->received);
    if (p->err) {
        unsigned status = p->err == DYNO_ECORRUPT ? 400 : 0;
        if (p->err == DYNO_ECORRUPT)
            dyno_warn("put refused", "id=%s err=corrupt", p->id);
        return container_http_error(conn, status, p->err, NULL, NULL, "%s", p->errmsg);
    }
    uint64_t size = 0, old = 0;
    int rc = store_put_commit(c->store, p->sp, &size, &old);
    p->sp = NULL;
    container_unreserve(c, p->reserved);
    p->reserved = 0;
    container_cache_invalidate(c->cache, p->id);
    if (rc) {
        dyno_error("commit failed", "id=%s err=%s", p->id, dyno_err_code(rc));
        return container_http_error(conn, 0, rc, NULL, NULL, "cannot store fragment %s", p->id);
    }
    dyno_crash_point("container.put.before_reply"); /* in place, not acknowledged */
    dyno_metric_add(&c->metrics[CM_PUTS], 1);
    dyno_debug("fragment stored", "id=%s size=%llu replaced=%llu", p->id, (unsigned long long)size,
               (unsigned long long)old);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return MHD_NO;
    cJSON_AddStringToObject(o, "id", p->id);
    dyno_json_add_i64(o, "size", (int64_t)size);
    enum MHD_Result ret = dyno_http_reply_json(conn, MHD_HTTP_CREATED, o);
    cJSON_Delete(o);
    return ret;
}

/* ---- routing ---- */

static enum MHD_Result http_count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                         const char *value)
{
    size_t *total = cls;
    (void)kind;
    *total += strlen(key) + (value ? strlen(value) : 0) + 4; /* "k: v\r\n" */
    return MHD_YES;
}

/* Bytes of the request line and headers, as sent (near enough: spaces are not counted). */
static size_t http_headers_size(struct MHD_Connection *conn, const char *url, const char *method)
{
    size_t total = strlen(method) + strlen(url) + 12;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, http_count_header, &total);
    return total;
}

static bool http_is(const char *method, const char *m)
{
    return strcmp(method, m) == 0;
}

static enum MHD_Result http_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version, const char *upload_data,
                                    size_t *upload_data_size, void **con_cls)
{
    struct container *c = cls;
    (void)version;

    if (*con_cls == &http_deferred) {
        /* The second call of a request without a body: answer now. A body where none is
         * expected closes the connection instead of being read. */
        if (*upload_data_size > 0)
            return MHD_NO;
        *con_cls = NULL;
    } else if (*con_cls) { /* a PUT in progress */
        struct http_put *p = *con_cls;
        if (*upload_data_size > 0) {
            http_put_data(p, upload_data, *upload_data_size);
            *upload_data_size = 0;
            return MHD_YES;
        }
        return http_put_end(p, conn);
    } else if (!http_is(method, MHD_HTTP_METHOD_PUT)) {
        /* MHD 0.9.75 closes the connection after a response queued before the request is
         * complete, even one without a body: wait for the second call so that the
         * gateway's connections stay alive across requests. */
        *con_cls = &http_deferred;
        return MHD_YES;
    }

    if (http_headers_size(conn, url, method) > DYNO_HTTP_HEADER_MAX)
        return container_http_error(conn, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE, DYNO_ETOOBIG, NULL, NULL,
                                    "request headers over %d bytes", DYNO_HTTP_HEADER_MAX);

    bool get = http_is(method, MHD_HTTP_METHOD_GET), head = http_is(method, MHD_HTTP_METHOD_HEAD);
    if (strcmp(url, "/v1/health") == 0 || strcmp(url, "/metrics") == 0) {
        if (!get && !head)
            return container_http_error(conn, 0, DYNO_EMETHOD, MHD_HTTP_HEADER_ALLOW, "GET, HEAD",
                                        "%s not allowed on %s", method, url);
        return url[1] == 'v' ? http_health(c, conn) : http_metrics(c, conn);
    }
    if (strcmp(url, "/v1/fragments") == 0) {
        if (!get)
            return container_http_error(conn, 0, DYNO_EMETHOD, MHD_HTTP_HEADER_ALLOW, "GET",
                                        "%s not allowed on %s", method, url);
        const char *why = NULL;
        int rc = http_auth(c, conn, &why);
        if (rc)
            return container_http_error(conn, 0, rc, NULL, NULL, "%s", why);
        return container_list(c, conn);
    }
    if (strncmp(url, HTTP_FRAG_PREFIX, strlen(HTTP_FRAG_PREFIX)) != 0)
        return container_http_error(conn, 0, DYNO_ENOTFOUND, NULL, NULL, "no route for %s", url);

    const char *id = url + strlen(HTTP_FRAG_PREFIX);
    bool put = http_is(method, MHD_HTTP_METHOD_PUT), del = http_is(method, MHD_HTTP_METHOD_DELETE);
    if (!get && !head && !put && !del)
        return container_http_error(conn, 0, DYNO_EMETHOD, MHD_HTTP_HEADER_ALLOW, "GET, HEAD, PUT, DELETE",
                                    "%s not allowed on fragments", method);
    const char *why = NULL;
    int rc = http_auth(c, conn, &why);
    if (rc)
        return container_http_error(conn, 0, rc, NULL, NULL, "%s", why);
    if (!store_valid_id(id, NULL, NULL))
        return container_http_error(conn, 0, DYNO_EINVAL, NULL, NULL, "bad fragment id");
    if (put)
        return http_put_begin(c, conn, id, con_cls);
    if (del)
        return http_delete(c, conn, id);
    return container_fetch(c, conn, id, head);
}

/* Counts accepted connections: puts and gets from a gateway that keeps its connections
 * alive add requests, not connections (test_putpath.py checks it). */
static void http_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                            enum MHD_ConnectionNotificationCode toe)
{
    struct container *c = cls;
    (void)conn;
    (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        dyno_metric_add(&c->metrics[CM_CONNECTIONS], 1);
}

static void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    struct http_put *p = *con_cls;
    if (!p || *con_cls == &http_deferred) {
        *con_cls = NULL;
        return;
    }
    if (p->sp && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        dyno_warn("put interrupted", "id=%s received=%llu", p->id, (unsigned long long)p->received);
    http_put_free(p); /* aborts a put the client left unfinished */
    *con_cls = NULL;
}

/* Streams we end on purpose (corrupt fragment) and puts the client gave up are logged by
 * the handlers already: MHD's own words for them would only repeat it. */
static const char *const http_quiet[] = {"application reported error", "incomplete request", NULL};

int container_http_start(struct container *c, char *err, size_t errlen)
{
    /* The connection's memory pool holds the request headers and is the read buffer of
     * uploads: a pool of just DYNO_HTTP_HEADER_MAX would make MHD refuse larger headers
     * itself, but also cut PUT bodies into 8 KiB reads (measured ~1.5x slower on a 64 MiB
     * fragment). So the pool bounds headers hard at HTTP_POOL and http_headers_size()
     * refuses anything over DYNO_HTTP_HEADER_MAX with 431. But MHD zeroes the whole pool
     * between two requests of a connection: at 128 KiB that memset was 5-8% of a
     * container's CPU under small puts. At 32 KiB it is a quarter of that, and a 64 MiB
     * put measured no slower (73-75 ms of container CPU per put against 80-88 at 128 KiB,
     * 16 clients of 4 KiB: 0.37-0.40 ms per put against 0.41-0.53; a noisy machine). */
    const struct dyno_httpd_conf conf = {
        .host = c->cfg.listen_host,
        .port = (unsigned)c->cfg.port,
        .max_connections = (unsigned)c->cfg.max_connections,
        .timeout = (unsigned)c->cfg.stream_timeout,
        .pool = HTTP_POOL,
        .handler = http_handler,
        .cls = c,
        .completed = http_completed,
        .notify_connection = http_connection,
        .quiet = http_quiet,
    };
    int rc = dyno_httpd_start(&c->httpd, &conf, err, errlen);
    if (rc)
        return rc;
    c->port = c->httpd.port;
    return 0;
}

void container_http_stop(struct container *c)
{
    dyno_httpd_stop(&c->httpd);
}
