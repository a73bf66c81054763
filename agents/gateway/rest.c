/*
 * The HTTP side of the gateway: the MHD daemon, the life of a request, the router of the
 * REST API (SPEC §4), replies, and the one log line per request.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "gw.h"
#include "httpd.h"
#include "json.h"
#include "limit.h"
#include "log.h"
#include "rest.h"
#include "s3.h"

/* ---- replies ---- */

enum MHD_Result gw_reply_json(struct gw_req *r, unsigned status, const cJSON *body)
{
    r->status = status;
    r->replied = true;
    return dyno_http_reply_json(r->c, status, body);
}

/* Every error reply of the gateway (gw_reply_error and gw_reply_limited are this, gw.h):
 * the one builder of lib/httpd.c, and the status noted for the request log. */
enum MHD_Result gw_reply_err(struct gw_req *r, const struct dyno_http_error *e, const char *fmt, ...)
{
    r->status = e->status ? e->status : (unsigned)dyno_err_http_status(e->err);
    r->replied = true;
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result ret;
    if (r->s3_door) { /* the same failure in S3's words (s3.c) */
        char msg[1024];
        if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
            msg[0] = '\0';
        ret = gw_s3_reply_err(r, e, msg);
    } else {
        ret = dyno_http_vreply_err(r->c, e, fmt, ap);
    }
    va_end(ap);
    return ret;
}

/* An error reply whose status has no DYNO_E* code (431, 501). */
static enum MHD_Result gw_reply_code(struct gw_req *r, unsigned status, const char *code, const char *msg)
{
    const struct dyno_http_error e = {.err = DYNO_EINTERNAL, .status = status, .code = code};
    return gw_reply_err(r, &e, "%s", msg);
}

/* 501 has no DYNO_E* code on purpose: it is a gap of this gateway, not an error of the
 * caller or of a peer, and it disappears as the routes are filled in. */
enum MHD_Result gw_reply_not_implemented(struct gw_req *r, const char *what)
{
    char msg[200];
    snprintf(msg, sizeof(msg), "%s is not implemented yet", what);
    return gw_reply_code(r, 501, "not_implemented", msg);
}

enum MHD_Result gw_reply_response(struct gw_req *r, unsigned status, struct MHD_Response *resp)
{
    if (!resp)
        return MHD_NO;
    r->status = status;
    r->replied = true;
    enum MHD_Result ret = MHD_queue_response(r->c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

int gw_query_arg(struct gw_req *r, const char *name, char *out, size_t cap)
{
    /* MHD already turned '+' into ' '; our unescape callback left the %xx for us so that
     * an escaped NUL or a bad escape is an error instead of a silent truncation. */
    const char *v = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, name);
    if (!v)
        return DYNO_ENOTFOUND;
    size_t len = strlen(v);
    if (len >= cap)
        return DYNO_ETOOBIG;
    memcpy(out, v, len + 1);
    return dyno_url_decode(out);
}

/* ---- JSON bodies ---- */

static int gw_collect_body(struct gw_req *r, const char *data, size_t len)
{
    int rc = dyno_buf_append(&r->body, data, len);
    if (rc == DYNO_ETOOBIG)
        snprintf(r->body_msg, sizeof(r->body_msg), "request body larger than %d bytes", GW_JSON_BODY_MAX);
    else if (rc)
        snprintf(r->body_msg, sizeof(r->body_msg), "out of memory");
    return rc;
}

void gw_expect_json(struct gw_req *r, enum MHD_Result (*on_end)(struct gw_req *))
{
    dyno_buf_init(&r->body, GW_JSON_BODY_MAX);
    r->on_body = gw_collect_body;
    r->on_end = on_end;
}

/* ---- routing ---- */

static enum MHD_Result gw_need_auth(struct gw_req *r)
{
    char msg[200];
    int rc = gw_authenticate(r, msg, sizeof(msg));
    if (rc) /* DYNO_EUNAUTH, or DYNO_EUNAVAIL (503) before the revocation feed arrived */
        return gw_reply_error(r, rc, "%s", msg);
    return MHD_YES;
}

#define GW_IS(m) (strcmp(r->method, MHD_HTTP_METHOD_##m) == 0)

static enum MHD_Result gw_method_not_allowed(struct gw_req *r)
{
    return gw_reply_error(r, DYNO_EMETHOD, "method %s not allowed here", r->method);
}

/* Authenticates (unless already), then runs h. */
static enum MHD_Result gw_authed(struct gw_req *r, enum MHD_Result (*h)(struct gw_req *))
{
    if (!r->authed) {
        enum MHD_Result ret = gw_need_auth(r);
        if (r->replied)
            return ret;
    }
    return h(r);
}

/* A catalog or one of its sub-resources (lib/rest.h): r->catalog is set and valid. */
static enum MHD_Result gw_route_catalog(struct gw_req *r, const struct dyno_rest_route *rt)
{
    enum MHD_Result ret = gw_need_auth(r);
    if (r->replied)
        return ret;
    /* PUT /v1/catalogs/o/a/shares: without "~", the only reading that would allow a PUT is a
     * new catalog with a reserved segment, which no one may create. */
    if (GW_IS(PUT) && rt->spec_form && rt->kind != DYNO_REST_CATALOG)
        return gw_reply_error(r, DYNO_EINVAL, "%s", DYNO_REST_RESERVED_WHY);
    switch (rt->kind) {
    case DYNO_REST_CATALOG_OBJECTS:
        if (GW_IS(GET))
            return gw_object_list(r);
        if (GW_IS(POST))
            return gw_put_begin(r);
        break;
    case DYNO_REST_CATALOG_SHARES:
        if (GW_IS(POST)) {
            gw_expect_json(r, gw_share_add);
            return MHD_YES;
        }
        break;
    case DYNO_REST_CATALOG_SHARE:
        if (GW_IS(DELETE))
            return gw_share_remove(r);
        break;
    case DYNO_REST_CATALOG_SUBSCRIPTION:
        if (GW_IS(POST))
            return gw_subscription_add(r);
        if (GW_IS(DELETE))
            return gw_subscription_remove(r);
        break;
    default: /* the catalog itself */
        if (GW_IS(PUT)) {
            gw_expect_json(r, gw_catalog_create);
            return MHD_YES;
        }
        if (GW_IS(GET))
            return gw_catalog_info(r);
        if (GW_IS(DELETE))
            return gw_catalog_delete(r);
        break;
    }
    /* Most likely a catalog named with a reserved word, asked for in the SPEC form. */
    if (rt->spec_form && rt->kind != DYNO_REST_CATALOG) {
        const char *what = strchr(dyno_rest_kind_name(rt->kind), '.'); /* "catalog.share" */
        return gw_reply_error(r, DYNO_EMETHOD,
                              "method %s not allowed on the %s of catalog %s; a catalog with a segment "
                              "objects, shares or subscription is /v1/catalogs/<catalog>/~",
                              r->method, what ? what + 1 : "sub-resource", r->catalog);
    }
    return gw_method_not_allowed(r);
}

static enum MHD_Result gw_route_object(struct gw_req *r, enum dyno_rest_kind kind)
{
    if (kind == DYNO_REST_OBJECT_META)
        return GW_IS(GET) ? gw_authed(r, gw_object_meta) : gw_method_not_allowed(r);
    if (!GW_IS(GET) && !GW_IS(HEAD) && !GW_IS(DELETE))
        return gw_method_not_allowed(r);
    enum MHD_Result ret = gw_need_auth(r);
    if (r->replied)
        return ret;
    if (GW_IS(DELETE))
        return gw_object_evict(r);
    return gw_get_object(r, GW_IS(HEAD));
}

/* /v1/users, /v1/tokens[/<id>] (admin.c). */
static enum MHD_Result gw_route_identity(struct gw_req *r, enum dyno_rest_kind kind)
{
    if (kind == DYNO_REST_TOKEN ? !GW_IS(DELETE) : !GW_IS(GET) && !GW_IS(POST))
        return gw_method_not_allowed(r);
    enum MHD_Result ret = gw_need_auth(r);
    if (r->replied)
        return ret;
    if (kind == DYNO_REST_TOKEN)
        return gw_token_revoke(r);
    bool users = kind == DYNO_REST_USERS;
    if (GW_IS(GET))
        return users ? gw_user_list(r) : gw_token_list(r);
    gw_expect_json(r, users ? gw_user_create : gw_token_create);
    return MHD_YES;
}

/* /v1/keys[/<id>] (keys.c): S3 access keys of the caller. */
static enum MHD_Result gw_route_keys(struct gw_req *r, enum dyno_rest_kind kind)
{
    if (kind == DYNO_REST_KEY ? !GW_IS(DELETE) : !GW_IS(GET) && !GW_IS(POST))
        return gw_method_not_allowed(r);
    enum MHD_Result ret = gw_need_auth(r);
    if (r->replied)
        return ret;
    if (kind == DYNO_REST_KEY)
        return gw_key_revoke(r);
    if (GW_IS(GET))
        return gw_key_list(r);
    gw_expect_json(r, gw_key_create);
    return MHD_YES;
}

/* A route with one method: h (authenticated unless open) for it, 405 for any other. */
static enum MHD_Result gw_route_one(struct gw_req *r, const char *method, bool open,
                                    enum MHD_Result (*h)(struct gw_req *))
{
    if (strcmp(r->method, method) != 0)
        return gw_method_not_allowed(r);
    return open ? h(r) : gw_authed(r, h);
}

/* Parses the path with the REST grammar (lib/rest.h: the same code the clients format with
 * and the fuzzer checks), copies its parts into r, and dispatches on the method. MHD was told
 * not to unescape the path, so the grammar sees every escape. */
static enum MHD_Result gw_route(struct gw_req *r, const char *url)
{
    enum MHD_Result web;
    if (gw_web_route(r, url, &web)) /* the console's files and session routes (web.c) */
        return web;
    struct dyno_rest_route rt;
    const char *why = NULL;
    int rc = dyno_rest_route_parse(url, &rt, &why);
    if (rc)
        return gw_reply_error(r, rc, "%s", why ? why : "no such route");
    if (strlen(rt.name) >= sizeof(r->name))
        return gw_reply_error(r, DYNO_EINVAL, "bad principal (longer than %zu bytes)", sizeof(r->name) - 1);
    memcpy(r->catalog, rt.catalog, sizeof(r->catalog));
    memcpy(r->key, rt.id, sizeof(r->key));
    memcpy(r->name, rt.name, strlen(rt.name) + 1);

    switch (rt.kind) {
    case DYNO_REST_HEALTHZ:
        return gw_route_one(r, MHD_HTTP_METHOD_GET, true, gw_healthz);
    case DYNO_REST_METRICS:
        return gw_route_one(r, MHD_HTTP_METHOD_GET, true, gw_metrics);
    case DYNO_REST_LOGIN:
        if (!GW_IS(POST))
            return gw_method_not_allowed(r);
        gw_expect_json(r, gw_login);
        return MHD_YES;
    case DYNO_REST_WHOAMI:
        return gw_route_one(r, MHD_HTTP_METHOD_GET, false, gw_whoami);
    case DYNO_REST_CATALOGS:
        return gw_route_one(r, MHD_HTTP_METHOD_GET, false, gw_catalog_list);
    case DYNO_REST_CATALOG:
    case DYNO_REST_CATALOG_OBJECTS:
    case DYNO_REST_CATALOG_SHARES:
    case DYNO_REST_CATALOG_SHARE:
    case DYNO_REST_CATALOG_SUBSCRIPTION:
        return gw_route_catalog(r, &rt);
    case DYNO_REST_OBJECT:
    case DYNO_REST_OBJECT_META:
        return gw_route_object(r, rt.kind);
    case DYNO_REST_CONTAINERS:
        return gw_route_one(r, MHD_HTTP_METHOD_GET, false, gw_containers);
    case DYNO_REST_CONTAINER_DRAIN:
        return gw_route_one(r, MHD_HTTP_METHOD_POST, false, gw_container_drain);
    case DYNO_REST_ADMIN_REBUILD:
        return gw_route_one(r, MHD_HTTP_METHOD_POST, false, gw_admin_rebuild_metadata);
    case DYNO_REST_ADMIN_REPAIR:
        return gw_route_one(r, MHD_HTTP_METHOD_GET, false, gw_admin_repair_status);
    case DYNO_REST_USERS:
    case DYNO_REST_TOKENS:
    case DYNO_REST_TOKEN:
        return gw_route_identity(r, rt.kind);
    case DYNO_REST_EVENTS:
        return gw_route_one(r, MHD_HTTP_METHOD_GET, false, gw_events_sse);
    case DYNO_REST_KEYS:
    case DYNO_REST_KEY:
        return gw_route_keys(r, rt.kind);
    default:
        return gw_reply_error(r, DYNO_ENOTFOUND, "no such route");
    }
}

/* ---- MHD callbacks ---- */

/* MHD's socket context: one per client connection (see gw_notify_connection). */
struct gw_client {
    struct gw_conn *conn;          /* the curl cache of its transfers */
    char peer[DYNO_HTTP_PEER_MAX]; /* the client's address */
    bool counted;                  /* holds a place in gw->conn_limit (false: over the limit) */
};

static struct gw_client *gw_client_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static enum MHD_Result gw_count_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    size_t *n = cls;
    *n += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
    return MHD_YES;
}

static enum MHD_Result gw_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    (void)version;
    struct gw *gw = cls;
    struct gw_req *r = *con_cls;

    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        *con_cls = r;
        r->gw = gw;
        r->c = c;
        struct gw_client *cl = gw_client_of(c);
        r->conn = cl ? cl->conn : NULL;
        r->method = method;
        r->url = strdup(url);
        const union MHD_ConnectionInfo *di = MHD_get_connection_info(c, MHD_CONNECTION_INFO_DAEMON);
        r->s3_door = gw->s3httpd.d && di && di->daemon == gw->s3httpd.d;
        r->t0_ms = gw_now_ms();
        dyno_buf_init(&r->body, GW_JSON_BODY_MAX);
        dyno_metric_add(&gw->metrics[GW_M_REQUESTS], 1);
        dyno_metric_add(&gw->metrics[GW_M_INFLIGHT], 1);
        if (!r->url || !r->conn)
            return MHD_NO;
        if (!cl->counted) {
            const struct dyno_http_error e = {.err = DYNO_ELIMIT, .retry_after = 1, .close = true};
            return gw_reply_err(r, &e, "more than %lld connections from %s",
                                (long long)gw->cfg.max_connections_per_ip, cl->peer);
        }
        size_t hdr_bytes = strlen(url) + strlen(method) + 16;
        MHD_get_connection_values(c, MHD_HEADER_KIND, gw_count_header, &hdr_bytes);
        if (hdr_bytes > DYNO_HTTP_HEADER_MAX)
            return gw_reply_code(r, 431, "too_large", "request headers larger than 8 KiB");
        /* MHD 0.9.75 closes the connection after a response queued on this first call,
         * before the request is complete. A request without a body is routed on the next
         * call instead, so keep-alive works for GET, HEAD and DELETE. */
        if (!MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH) &&
            !MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
            r->route_later = true;
            return MHD_YES;
        }
        return r->s3_door ? gw_s3_route(r) : gw_route(r, url);
    }

    if (r->route_later && *upload_data_size == 0) {
        r->route_later = false;
        return r->s3_door ? gw_s3_route(r) : gw_route(r, r->url);
    }

    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        r->bytes_in += n;
        if (r->replied)
            return MHD_YES;
        if (r->body_err || !r->on_body) {
            /* After a failure (or on a route without a body) the rest of the body is read
             * and dropped so the error can still be answered, up to a bound. */
            if (!r->on_body && !r->body_err) {
                r->body_err = DYNO_EINVAL;
                snprintf(r->body_msg, sizeof(r->body_msg), "this request takes no body");
            }
            r->discarded += n;
            return r->discarded > GW_DISCARD_MAX ? MHD_NO : MHD_YES;
        }
        int rc = r->on_body(r, upload_data, n);
        if (rc) {
            r->body_err = rc;
            if (!r->body_msg[0])
                snprintf(r->body_msg, sizeof(r->body_msg), "%s", dyno_strerror(rc));
            /* MHD 0.9.75 cannot answer before the whole body is in: drain the rest when
             * it is small enough to be worth a proper error reply, else close now. */
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            uint64_t total = 0;
            if (cl && dyno_rest_parse_u64(cl, &total) == 0 && total > r->bytes_in &&
                total - r->bytes_in > GW_DISCARD_MAX)
                return MHD_NO;
        }
        return MHD_YES;
    }

    if (r->replied)
        return MHD_YES;
    if (r->body_err) {
        gw_req_close(r); /* before the error reply: a failed put is aborted first */
        return gw_reply_error(r, r->body_err, "%s", r->body_msg);
    }
    if (r->on_end)
        return r->on_end(r);
    return gw_reply_error(r, DYNO_EINTERNAL, "request without a handler");
}

void gw_req_close(struct gw_req *r)
{
    void (*fn)(struct gw_req *) = r->on_close;
    r->on_close = NULL;
    if (fn)
        fn(r);
}

static void gw_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    struct gw *gw = cls;
    struct gw_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    gw_req_close(r);
    gw_s3_req_free(r);

    const char *end = "ok";
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK:
        break;
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
        end = "timeout";
        break;
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
    case MHD_REQUEST_TERMINATED_READ_ERROR:
        end = "client_abort";
        break;
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
        end = "shutdown";
        break;
    default:
        end = "error";
        break;
    }
    char path[600];
    dyno_log_q(path, sizeof(path), r->url);
    dyno_info("request", "method=%s path=%s status=%u in=%llu out=%llu ms=%lld user=%s end=%s", r->method,
              path, r->status, (unsigned long long)r->bytes_in, (unsigned long long)r->bytes_out,
              (long long)(gw_now_ms() - r->t0_ms), r->authed ? r->claims.sub : "-", end);
    dyno_metric_add(&gw->metrics[GW_M_INFLIGHT], -1);
    dyno_buf_free(&r->body);
    free(r->url);
    free(r);
}

/*
 * Counts each client address's connections (issue 9): one over max_connections_per_ip is
 * answered 429 at its first request and closed, so one client cannot hold every
 * connection slot. (MHD's own per-address cap, at twice the limit, closes the ones beyond
 * that without an answer, for clients that connect and send nothing.)
 */
static void gw_notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                                 enum MHD_ConnectionNotificationCode toe)
{
    struct gw *gw = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        struct gw_client *cl = calloc(1, sizeof(*cl));
        if (cl) {
            cl->conn = calloc(1, sizeof(struct gw_conn));
            dyno_http_peer(c, cl->peer);
            cl->counted =
                dyno_limit_enter(gw->conn_limit, cl->peer, gw_now_ms(), (int)gw->cfg.max_connections_per_ip);
        }
        *socket_context = cl;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct gw_client *cl = *socket_context;
        if (cl) {
            if (cl->counted)
                dyno_limit_leave(gw->conn_limit, cl->peer);
            gw_conn_free(cl->conn);
            free(cl);
        }
        *socket_context = NULL;
    }
}

/* We decode path segments and query values ourselves (see gw_route, gw_query_arg). */
static size_t gw_no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

/* MHD's cap per address: twice ours, so that ours answers 429 first (see above). */
static unsigned gw_per_ip_hard_limit(const struct gw *gw)
{
    int64_t n = 2 * gw->cfg.max_connections_per_ip;
    return (unsigned)(n > gw->cfg.max_connections ? gw->cfg.max_connections : n);
}

/* The settings of every listener of the gateway on port. */
static struct dyno_httpd_conf gw_httpd_conf(struct gw *gw, unsigned port)
{
    /* The connection pool holds the headers and the read buffer, whose size is the
     * largest body chunk we get per call: big enough for throughput, small enough that
     * headers far past DYNO_HTTP_HEADER_MAX are refused by MHD itself; gw_access applies
     * the exact limit. */
    return (struct dyno_httpd_conf){
        .host = gw->cfg.listen_host,
        .port = port,
        .tls_cert = gw->cfg.tls_cert,
        .tls_key = gw->cfg.tls_cert ? gw->cfg.tls_key : NULL,
        .max_connections = (unsigned)gw->cfg.max_connections,
        .per_ip_limit = gw_per_ip_hard_limit(gw),
        .timeout = 300,
        .pool = 64 * 1024,
        .handler = gw_access,
        .cls = gw,
        .completed = gw_completed,
        .notify_connection = gw_notify_connection,
        .unescape = gw_no_unescape,
    };
}

int gw_httpd_listen(struct gw *gw, struct dyno_httpd *h, unsigned port, char *err, size_t cap)
{
    const struct dyno_httpd_conf conf = gw_httpd_conf(gw, port);
    return dyno_httpd_start(h, &conf, err, cap);
}

int gw_httpd_start(struct gw *gw)
{
    char err[300], q[320];
    int rc = gw_httpd_listen(gw, &gw->httpd, (unsigned)gw->cfg.port, err, sizeof(err));
    if (rc == DYNO_EINVAL) {
        dyno_error("bad configuration", "detail=%s", dyno_log_q(q, sizeof(q), err));
        return rc;
    }
    if (rc) {
        dyno_error("cannot start the HTTP server", "host=%s port=%d", gw->cfg.listen_host, (int)gw->cfg.port);
        return DYNO_EIO;
    }
    gw->port = gw->httpd.port;
    if (gw->cfg.port_file) {
        char txt[16];
        int l = snprintf(txt, sizeof(txt), "%u\n", gw->port);
        if (dyno_write_file(gw->cfg.port_file, txt, (size_t)l, 0644)) {
            dyno_error("cannot write port_file", "path=%s", gw->cfg.port_file);
            gw_httpd_stop(gw);
            return DYNO_EIO;
        }
    }
    return 0;
}

void gw_httpd_stop(struct gw *gw)
{
    dyno_httpd_stop(&gw->httpd);
}
