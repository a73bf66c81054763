/*
 * HTTP side of the container (docs/protocol.md §4): routing, auth, PUT, DELETE, health and
 * metrics in http.c; GET and HEAD (streamed, CRC-verified reads) in fetch.c; the fragment
 * listing in list.c.
 * Everything here runs in MHD's per-connection threads and may block on the disk.
 */
#ifndef CONTAINER_HTTP_H
#define CONTAINER_HTTP_H
#include <microhttpd.h>
#include <stdbool.h>

#include "container.h"

/* Queues the JSON error body {"error":{"code":dyno_err_code(err),"message":...}} with an
 * explicit status (0: the status of err) and one optional extra header (hname may be NULL). */
enum MHD_Result container_http_error(struct MHD_Connection *conn, unsigned status, int err, const char *hname,
                                     const char *hval, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Serves GET /v1/fragments?after=&limit= (already authorized): the listing of list.c. */
enum MHD_Result container_list(struct container *c, struct MHD_Connection *conn);

/* Serves GET (head == false) or HEAD of fragment id (already validated and authorized). */
enum MHD_Result container_fetch(struct container *c, struct MHD_Connection *conn, const char *id, bool head);
#endif
