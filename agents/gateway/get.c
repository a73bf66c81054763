/*
 * GET and HEAD /v1/objects/<key>: the REST adapter of the get core (dp_get.c). It
 * authorizes (read access, from the object's record), answers HEAD, parses Range, and
 * feeds MHD's content reader from gw_get_read, in the client connection's thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "httpd.h"
#include "json.h"
#include "log.h"

#define GW_GET_BLOCK (256 * 1024) /* MHD's response buffer */

/* The response's state: the core's get, the request it answers (content reader only)
 * and when the reply was queued. */
struct get_rest {
    struct gw_get *g;
    struct gw_req *r;
    int64_t t_us;
};

static ssize_t get_rest__reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct get_rest *s = cls;
    ssize_t n = gw_get_read(s->g, buf, max);
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    s->r->bytes_out += (uint64_t)n;
    return n;
}

static void get_rest__free(void *cls)
{
    struct get_rest *s = cls;
    struct gw *gw = gw_get_gw(s->g);
    dyno_metric_add(&gw->metrics[GW_M_GET_STREAM_US], gw_now_us() - s->t_us);
    gw_get_free(s->g);
    free(s);
}

static ssize_t gw_no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    (void)pos;
    (void)buf;
    (void)max;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void gw_add_object_headers(struct MHD_Response *resp, const char *key, const char *sha)
{
    char etag[80];
    snprintf(etag, sizeof(etag), "\"%s\"", sha);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    MHD_add_response_header(resp, "X-Dyno-Key", key);
    MHD_add_response_header(resp, "X-Dyno-Sha256", sha);
}

/* 416 with the Content-Range: bytes * /size the client needs to retry sensibly. */
static enum MHD_Result gw_reply_416(struct gw_req *r, uint64_t size)
{
    char body[200], cr[64];
    int n = snprintf(body, sizeof(body),
                     "{\"error\":{\"code\":\"%s\",\"message\":\"range not satisfiable for %llu bytes\"}}",
                     dyno_err_code(DYNO_ERANGE), (unsigned long long)size);
    snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)size);
    struct MHD_Response *resp = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    return gw_reply_response(r, MHD_HTTP_RANGE_NOT_SATISFIABLE, resp);
}

/* Headers, Content-Range of a partial answer, and the reply. */
static enum MHD_Result get_rest__reply(struct gw_req *r, unsigned status, struct MHD_Response *resp,
                                       uint64_t first, uint64_t last, uint64_t size, const char *sha)
{
    gw_add_object_headers(resp, r->key, sha);
    if (status == MHD_HTTP_PARTIAL_CONTENT) {
        char cr[96];
        snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)first, (unsigned long long)last,
                 (unsigned long long)size);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    }
    return gw_reply_response(r, status, resp);
}

enum MHD_Result gw_get_object(struct gw_req *r, bool head)
{
    struct gw *gw = r->gw;
    char msg[400];
    cJSON *obj = NULL;
    /* authorize and locate */
    int64_t t0 = gw_now_us();
    int rc = gw_object_load(r, false, &obj, msg, sizeof(msg));
    if (!head)
        dyno_metric_add(&gw->metrics[GW_M_GET_LOCATE_US], gw_now_us() - t0);
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    struct gw_get *g = NULL;
    rc = gw_get_new(gw, r->conn, r->key, obj, &g);
    cJSON_Delete(obj);
    if (rc == DYNO_ENOMEM)
        return gw_reply_error(r, rc, "out of memory");
    if (rc)
        return gw_reply_error(r, DYNO_EPROTO, "metadata answered an unusable object record");
    char sha[65];
    gw_get_sha256(g, sha);
    uint64_t size = gw_get_size(g);

    if (head) {
        struct MHD_Response *resp = MHD_create_response_from_callback(size, 4096, gw_no_body, NULL, NULL);
        gw_add_object_headers(resp, r->key, sha);
        gw_get_free(g);
        return gw_reply_response(r, MHD_HTTP_OK, resp);
    }

    const char *range = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
    unsigned status = MHD_HTTP_OK;
    uint64_t first = 0, last = size ? size - 1 : 0;
    rc = range ? dyno_http_parse_range(range, size, &first, &last) : DYNO_ENOTFOUND;
    if (rc == DYNO_ERANGE) {
        gw_get_free(g);
        return gw_reply_416(r, size);
    }
    if (rc == 0) {
        status = MHD_HTTP_PARTIAL_CONTENT;
    } else {
        /* No Range, or a malformed one (ignored, as RFC 9110 allows): the whole object. */
        first = 0;
        last = size ? size - 1 : 0;
    }
    if (size == 0) {
        dyno_metric_add(&gw->metrics[GW_M_GETS], 1);
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        gw_add_object_headers(resp, r->key, sha);
        gw_get_free(g);
        return gw_reply_response(r, MHD_HTTP_OK, resp);
    }
    struct MHD_Response *resp = NULL;
    rc = gw_get_response(r, g, first, last, status == MHD_HTTP_OK, &resp, msg, sizeof(msg));
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    return get_rest__reply(r, status, resp, first, last, size, sha);
}

int gw_get_response(struct gw_req *r, struct gw_get *g, uint64_t first, uint64_t last, bool whole,
                    struct MHD_Response **out, char *msg, size_t cap)
{
    struct gw *gw = r->gw;
    *out = NULL;
    /* fetch, verify, decode: the first stripe now, so a read that cannot start fails here */
    int64_t t0 = gw_now_us();
    int rc = gw_get_start(g, first, last, whole ? GW_GET_VERIFY : 0);
    dyno_metric_add(&gw->metrics[GW_M_GET_FETCH_US], gw_now_us() - t0);
    if (rc) {
        snprintf(msg, cap, "%s", gw_get_msg(g));
        gw_get_free(g);
        return rc;
    }
    /* stream: a read of one stripe leaves from where its bytes lie (the fragments' buffers,
     * or the decoded stripe), without a copy into a response buffer (and without MHD's
     * zeroed 256 KiB block per response, a tenth of the CPU of a 4 KiB get); longer reads
     * go a stripe at a time through the content reader. */
    struct dyno_frag_seg seg[GW_MAX_N];
    struct MHD_IoVec iov[GW_MAX_N];
    int nseg = gw_get_whole(g, seg, GW_MAX_N);
    for (int i = 0; i < nseg; i++)
        iov[i] = (struct MHD_IoVec){.iov_base = seg[i].p, .iov_len = seg[i].len};
    struct get_rest *s = malloc(sizeof(*s));
    struct MHD_Response *resp = NULL;
    if (s && nseg > 0)
        resp = MHD_create_response_from_iovec(iov, (unsigned)nseg, get_rest__free, s);
    else if (s)
        resp = MHD_create_response_from_callback(last - first + 1, GW_GET_BLOCK, get_rest__reader, s,
                                                 get_rest__free);
    if (!resp) {
        free(s);
        gw_get_free(g);
        snprintf(msg, cap, "out of memory");
        return DYNO_ENOMEM;
    }
    *s = (struct get_rest){.g = g, .r = nseg > 0 ? NULL : r, .t_us = gw_now_us()};
    if (nseg > 0)
        r->bytes_out += last - first + 1;
    *out = resp;
    return 0;
}
