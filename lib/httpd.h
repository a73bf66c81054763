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
#include <stdbool.h>
#include <stdint.h>

#define DYNO_HTTP_HEADER_MAX 8192 /* a request whose headers exceed this gets 431 from MHD */

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
/* The same with {.err = err, .retry_after = retry_after}. */
enum MHD_Result dyno_http_reply_error_after(struct MHD_Connection *c, int err, unsigned retry_after,
                                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The error body alone, {"error":{"code":code,"message":message}}, for replies that do not
 * go over HTTP (MQTT ingest); NULL on ENOMEM. The caller owns it. */
cJSON *dyno_http_error_body(const char *code, const char *message);
/* The same with {.err = err, .retry_after = retry_after, .close = true}. */
enum MHD_Result dyno_http_reply_error_close(struct MHD_Connection *c, int err, unsigned retry_after,
                                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));
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
