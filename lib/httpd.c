/*
 * libmicrohttpd helpers shared by the gateway and the containers: JSON replies, the REST
 * error body, bearer tokens, Range and percent-decoding. No state; MHD threads call these.
 */
#include "httpd.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <sys/socket.h>

#include "config.h"
#include "dynostore/error.h"
#include "json.h"
#include "log.h"
#include "rest.h"

#define HTTP_ERRMSG_MAX 1024 /* longest message put in an error body */

#define HTTP_PEM_MAX (1 << 20) /* largest TLS certificate or key file read */

/* MHD's own messages, one logfmt line each. fmt comes from MHD, never from the network. */
__attribute__((format(printf, 2, 0))) static void http_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct dyno_httpd *h = cls;
    char msg[400], q[420];

    if (!atomic_load(&h->logging))
        return;
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
        return;
    for (const char *const *p = h->quiet; p != NULL && *p != NULL; p++)
        if (strstr(msg, *p) != NULL)
            return;
    size_t l = strlen(msg);
    while (l > 0 && (msg[l - 1] == '\n' || msg[l - 1] == '\r'))
        msg[--l] = '\0';
    dyno_warn("httpd", "detail=%s", dyno_log_q(q, sizeof(q), msg));
}

/* Reads the PEM pair into *cert and *key (the caller frees; the key wiped first). */
static int http_read_tls(const struct dyno_httpd_conf *conf, char **cert, char **key, char *err, size_t cap)
{
    size_t l;

    *cert = *key = NULL;
    if (conf->tls_cert == NULL && conf->tls_key == NULL)
        return 0;
    if (conf->tls_cert == NULL || conf->tls_key == NULL ||
        dyno_read_file(conf->tls_cert, HTTP_PEM_MAX, cert, &l) != 0 ||
        dyno_read_file(conf->tls_key, HTTP_PEM_MAX, key, &l) != 0) {
        free(*cert);
        free(*key);
        *cert = *key = NULL;
        snprintf(err, cap, "cannot read tls_cert or tls_key");
        return DYNO_EINVAL;
    }
    return 0;
}

int dyno_httpd_start(struct dyno_httpd *h, const struct dyno_httpd_conf *conf, char *err, size_t cap)
{
    struct addrinfo hints = {.ai_flags = AI_NUMERICSERV | AI_PASSIVE, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    char port[16], *cert = NULL, *key = NULL;
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ERROR_LOG;

    h->quiet = conf->quiet;
    atomic_store(&h->logging, false);
    snprintf(port, sizeof(port), "%u", conf->port);
    int grc = getaddrinfo(conf->host, port, &hints, &ai);
    if (grc != 0 || ai == NULL) {
        snprintf(err, cap, "cannot resolve listen_host %s: %s", conf->host, gai_strerror(grc));
        return DYNO_EINVAL;
    }
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    int rc = http_read_tls(conf, &cert, &key, err, cap);
    if (rc != 0) {
        freeaddrinfo(ai);
        return rc;
    }
    if (cert != NULL)
        flags |= MHD_USE_TLS;
    /* The hooks and TLS an agent does not use are left out of the array. */
    struct MHD_OptionItem opts[8];
    size_t n = 0;
    if (conf->completed != NULL)
        opts[n++] =
            (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)conf->completed, conf->cls};
    if (conf->notify_connection != NULL)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)conf->notify_connection,
                                            conf->cls};
    if (conf->unescape != NULL)
        opts[n++] =
            (struct MHD_OptionItem){MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)conf->unescape, conf->cls};
    if (cert != NULL) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, cert};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, key};
    }
    opts[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, conf->handler, conf->cls, MHD_OPTION_EXTERNAL_LOGGER,
                            http_mhd_log, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT,
                            conf->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT, conf->per_ip_limit,
                            MHD_OPTION_CONNECTION_TIMEOUT, conf->timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                            conf->pool, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    freeaddrinfo(ai);
    free(cert);
    if (key != NULL) {
        OPENSSL_cleanse(key, strlen(key)); /* the private key does not outlive the start */
        free(key);
    }
    if (h->d == NULL) {
        snprintf(err, cap, "cannot listen on %s:%u (port in use or address not available)", conf->host,
                 conf->port);
        return DYNO_EIO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di != NULL ? di->port : conf->port;
    atomic_store(&h->logging, true);
    return 0;
}

void dyno_httpd_stop(struct dyno_httpd *h)
{
    if (h->d != NULL) {
        MHD_stop_daemon(h->d);
        h->d = NULL;
    }
}

/* Builds a response holding the serialized body; NULL on ENOMEM. MHD frees the text. */
static struct MHD_Response *http_json_response(const cJSON *body)
{
    struct MHD_Response *resp = NULL;
    size_t len = 0;
    char *text = dyno_json_print(body, &len);

    if (text == NULL)
        return NULL;
    resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(text);
        return NULL;
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") != MHD_YES) {
        MHD_destroy_response(resp);
        return NULL;
    }
    return resp;
}

enum MHD_Result dyno_http_reply_json(struct MHD_Connection *c, unsigned status, const cJSON *body)
{
    struct MHD_Response *resp = http_json_response(body);
    enum MHD_Result ret;

    if (resp == NULL)
        return MHD_NO;
    ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

cJSON *dyno_http_error_body(const char *code, const char *message)
{
    cJSON *body = cJSON_CreateObject();
    cJSON *e = body != NULL ? cJSON_AddObjectToObject(body, "error") : NULL;

    if (e == NULL || cJSON_AddStringToObject(e, "code", code) == NULL ||
        cJSON_AddStringToObject(e, "message", message != NULL ? message : "") == NULL) {
        cJSON_Delete(body);
        return NULL;
    }
    return body;
}

/* Adds name: value to resp; false when MHD refused it. */
static bool http_add_header(struct MHD_Response *resp, const char *name, const char *value)
{
    return MHD_add_response_header(resp, name, value) == MHD_YES;
}

enum MHD_Result dyno_http_vreply_err(struct MHD_Connection *c, const struct dyno_http_error *e,
                                     const char *fmt, va_list ap)
{
    char msg[HTTP_ERRMSG_MAX];
    enum MHD_Result ret = MHD_NO;
    struct MHD_Response *resp = NULL;
    unsigned status = e->status != 0 ? e->status : (unsigned)dyno_err_http_status(e->err);
    cJSON *body = NULL;
    char after[16];

    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
        msg[0] = '\0';
    body = dyno_http_error_body(e->code != NULL ? e->code : dyno_err_code(e->err), msg);
    resp = body != NULL ? http_json_response(body) : NULL;
    if (resp == NULL)
        goto out;
    /* A 503 or 429 tells well-behaved clients when to come back instead of hammering us;
     * a 401 names the scheme it wants (RFC 9110 11.6.1). Decided here, by status, so that
     * the gateway and the containers cannot disagree. */
    if (status == 503 || status == 429) {
        snprintf(after, sizeof(after), "%u", e->retry_after > 0 ? e->retry_after : 1);
        if (!http_add_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, after))
            goto out;
    }
    if (status == 401 && !http_add_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer"))
        goto out;
    if (e->hname != NULL && !http_add_header(resp, e->hname, e->hval))
        goto out;
    if (e->close && !http_add_header(resp, MHD_HTTP_HEADER_CONNECTION, "close"))
        goto out;
    ret = MHD_queue_response(c, status, resp);
out:
    if (resp != NULL)
        MHD_destroy_response(resp);
    cJSON_Delete(body);
    return ret;
}

enum MHD_Result dyno_http_reply_err(struct MHD_Connection *c, const struct dyno_http_error *e,
                                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result ret = dyno_http_vreply_err(c, e, fmt, ap);
    va_end(ap);
    return ret;
}

enum MHD_Result dyno_http_reply_error(struct MHD_Connection *c, int err, const char *fmt, ...)
{
    const struct dyno_http_error e = {.err = err};
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result ret = dyno_http_vreply_err(c, &e, fmt, ap);
    va_end(ap);
    return ret;
}

void dyno_http_peer(struct MHD_Connection *c, char out[DYNO_HTTP_PEER_MAX])
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;
    const void *addr = NULL;
    int family = AF_UNSPEC;

    snprintf(out, DYNO_HTTP_PEER_MAX, "?");
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET) {
        family = AF_INET;
        addr = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

        family = AF_INET6;
        addr = a6;
        /* One client, one key: ::ffff:1.2.3.4 is 1.2.3.4 (a dual-stack listener). */
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            family = AF_INET;
            addr = &a6->s6_addr[12];
        }
    }
    if (addr == NULL || inet_ntop(family, addr, out, DYNO_HTTP_PEER_MAX) == NULL)
        snprintf(out, DYNO_HTTP_PEER_MAX, "?");
}

const char *dyno_http_bearer(struct MHD_Connection *c)
{
    return dyno_http_bearer_token(
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION));
}

const char *dyno_http_bearer_token(const char *v)
{
    static const char scheme[] = "Bearer";

    /* The auth scheme is case-insensitive (RFC 9110 11.1); the token itself is not. */
    if (v == NULL || strncasecmp(v, scheme, sizeof(scheme) - 1) != 0)
        return NULL;
    v += sizeof(scheme) - 1;
    if (*v != ' ')
        return NULL;
    while (*v == ' ')
        v++;
    return *v != '\0' ? v : NULL;
}

/* Parses the run of decimal digits at *p into *out (dyno_rest_dec), advancing *p past it.
 * DYNO_EINVAL when there is no digit or the value does not fit in uint64_t. */
static int http_parse_u64(const char **p, uint64_t *out)
{
    size_t n = strspn(*p, "0123456789");
    int rc = dyno_rest_dec(*p, n, out);

    if (rc == 0)
        *p += n;
    return rc;
}

int dyno_http_parse_range(const char *hdr, uint64_t size, uint64_t *first, uint64_t *last)
{
    static const char unit[] = "bytes=";
    const char *p = hdr;
    uint64_t a = 0, b = 0;
    bool suffix = false, open_end = false;

    if (hdr == NULL)
        return DYNO_ENOTFOUND;
    while (*p == ' ' || *p == '\t')
        p++;
    /* Range units are case-insensitive (RFC 9110 14.1). */
    if (strncasecmp(p, unit, sizeof(unit) - 1) != 0)
        return DYNO_EINVAL;
    p += sizeof(unit) - 1;
    if (*p == '-') {
        suffix = true;
        p++;
        if (http_parse_u64(&p, &b) != 0)
            return DYNO_EINVAL;
    } else {
        if (http_parse_u64(&p, &a) != 0 || *p != '-')
            return DYNO_EINVAL;
        p++;
        if (*p >= '0' && *p <= '9') {
            if (http_parse_u64(&p, &b) != 0)
                return DYNO_EINVAL;
            if (b < a)
                return DYNO_EINVAL;
        } else {
            open_end = true;
        }
    }
    while (*p == ' ' || *p == '\t')
        p++;
    /* Anything left (a comma of a multi-range, garbage) makes the whole header invalid:
     * we serve exactly one range or none, never a guess. */
    if (*p != '\0')
        return DYNO_EINVAL;

    if (suffix) {
        if (b == 0 || size == 0)
            return DYNO_ERANGE;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 0;
    }
    if (a >= size)
        return DYNO_ERANGE;
    *first = a;
    *last = (open_end || b >= size) ? size - 1 : b;
    return 0;
}
