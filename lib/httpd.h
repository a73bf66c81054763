/*
 * Helpers for agents that serve HTTP with libmicrohttpd (gateway, containers): JSON
 * replies, the error body of the REST API, bearer tokens, Range parsing.
 * All functions are safe to call from MHD's connection threads.
 */
#ifndef DYNO_HTTPD_H
#define DYNO_HTTPD_H
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DYNO_HTTP_HEADER_MAX 8192 /* a request whose headers exceed this gets 431 from MHD */

/* ---- the server: one start-up for the gateway and the containers ---- */

/* What an agent's HTTP server needs; the adapter picks the rest (a thread per connection
 * over poll(2), so no FD_SETSIZE limit, IPv6 when host is, MHD's messages as log lines). */
struct dyno_httpd_conf {
    const char *host;               /* listen address (name or numeric) */
    unsigned port;                  /* 0: an ephemeral port, read back into *port */
    const char *tls_cert, *tls_key; /* PEM files, both or neither (NULL: plain HTTP) */
    unsigned max_connections;       /* MHD refuses connections above this */
    unsigned per_ip_limit;          /* and above this many from one address (0: no limit) */
    unsigned timeout;               /* seconds a connection may stay idle */
    size_t pool;                    /* per-connection memory: headers and upload reads */
    MHD_AccessHandlerCallback handler;
    void *cls;                                                        /* for handler and the hooks below */
    MHD_RequestCompletedCallback completed;                           /* per-request close hook, or NULL */
    MHD_NotifyConnectionCallback notify_connection;                   /* or NULL */
    size_t (*unescape)(void *cls, struct MHD_Connection *c, char *s); /* or NULL: MHD's own */
    const char *const *quiet; /* NULL-terminated parts of MHD messages not to log, or NULL */
};
struct dyno_httpd {
    struct MHD_Daemon *d;
    unsigned port;       /* the bound port */
    atomic_bool logging; /* MHD's messages are logged once the daemon runs */
    const char *const *quiet;
};
/* Starts the server into h (zeroed by the caller; must stay at its address until
 * dyno_httpd_stop). 0, or DYNO_EINVAL (bad host, unreadable TLS files) / DYNO_EIO (cannot
 * listen) with a sentence in err. */
int dyno_httpd_start(struct dyno_httpd *h, const struct dyno_httpd_conf *conf, char *err, size_t cap);
/* Stops the server (waits for its threads); safe on a stopped or never started h. */
void dyno_httpd_stop(struct dyno_httpd *h);

/* Queues body (serialized) with status and Content-Type: application/json. body borrowed. */
enum MHD_Result dyno_http_reply_json(struct MHD_Connection *c, unsigned status, const cJSON *body);
/* The one error reply of the REST API, for the gateway and the containers:
 * {"error":{"code":...,"message":...}} with Content-Type: application/json. The status
 * decides the extra headers, the same for every agent: 503 and 429 carry Retry-After
 * (retry_after seconds, 1 when 0), 401 carries WWW-Authenticate: Bearer. */
struct dyno_http_error {
    int err;                  /* DYNO_E*: the code and, unless status is set, the status */
    unsigned status;          /* 0: dyno_err_http_status(err) */
    const char *code;         /* NULL: dyno_err_code(err); for a status without a DYNO_E* (501) */
    unsigned retry_after;     /* seconds for a 503 or 429; 0: 1 */
    const char *hname, *hval; /* one more header (Allow, Content-Range), or NULL */
    bool close;               /* "Connection: close": the connection ends with this answer */
};
enum MHD_Result dyno_http_reply_err(struct MHD_Connection *c, const struct dyno_http_error *e,
                                    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
enum MHD_Result dyno_http_vreply_err(struct MHD_Connection *c, const struct dyno_http_error *e,
                                     const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
/* The same with {.err = err}. */
enum MHD_Result dyno_http_reply_error(struct MHD_Connection *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The error body alone, {"error":{"code":code,"message":message}}, for replies that do not
 * go over HTTP (MQTT ingest); NULL on ENOMEM. The caller owns it. */
cJSON *dyno_http_error_body(const char *code, const char *message);
#define DYNO_HTTP_PEER_MAX 64 /* an IPv6 address in text, with room to spare */
/* The client's address as text ("127.0.0.1", "::1"; an IPv4-mapped IPv6 address as IPv4)
 * into out (DYNO_HTTP_PEER_MAX bytes): the key of per-client limits. "?" when unknown. */
void dyno_http_peer(struct MHD_Connection *c, char out[DYNO_HTTP_PEER_MAX]);
/* The token of "Authorization: Bearer <token>", or NULL. Borrowed from MHD. */
const char *dyno_http_bearer(struct MHD_Connection *c);
/* The same from the header's value v (may be NULL): a pointer into v, or NULL. No I/O. */
const char *dyno_http_bearer_token(const char *v);
/* Parses a single "bytes=a-b", "bytes=a-" or "bytes=-n" against size into an inclusive
 * [*first, *last]. DYNO_ENOTFOUND when hdr is NULL (no Range), DYNO_ERANGE when
 * unsatisfiable, DYNO_EINVAL when malformed or multi-range. */
int dyno_http_parse_range(const char *hdr, uint64_t size, uint64_t *first, uint64_t *last);
#endif
