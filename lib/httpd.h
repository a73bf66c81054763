/*
 * Helpers for agents that serve HTTP with libmicrohttpd (gateway, containers): JSON
 * replies, the error body of the REST API, bearer tokens, Range parsing.
 * All functions are safe to call from MHD's connection threads.
 */
#ifndef DYNO_HTTPD_H
#define DYNO_HTTPD_H
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

#define DYNO_HTTP_HEADER_MAX 8192 /* a request whose headers exceed this gets 431 from MHD */

/* Queues body (serialized) with status and Content-Type: application/json. body borrowed. */
enum MHD_Result dyno_http_reply_json(struct MHD_Connection *c, unsigned status, const cJSON *body);
/* Queues {"error":{"code":dyno_err_code(err),"message":message}} with dyno_err_http_status(err);
 * adds Retry-After: 1 for DYNO_EUNAVAIL and DYNO_ELIMIT. */
enum MHD_Result dyno_http_reply_error(struct MHD_Connection *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same with Retry-After: retry_after seconds (none when 0). */
enum MHD_Result dyno_http_reply_error_after(struct MHD_Connection *c, int err, unsigned retry_after,
                                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The same, and "Connection: close": the connection ends with this answer. */
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
