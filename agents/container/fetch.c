/*
 * GET and HEAD of fragments: streamed reads that verify what they serve.
 *
 * A served range that starts at a record boundary (offset 0, which includes the header, or
 * HDR_SIZE + s * (unit + 8) inside the records) runs through the lib/frag.h parser, and a
 * byte is handed to MHD only once the record (or header, or trailer) that holds it has been
 * verified. A record the range cuts at its end is read whole (past the range) so that it is
 * verified too. On a mismatch the container logs "fragment corrupt", counts it and ends the
 * response with an error, so the client sees a short body, never bad bytes. Ranges that
 * start elsewhere are served as they are.
 *
 * Memory of a verified stream: the parser's record buffer (unit + 8) plus a window of
 * unverified raw bytes (at most one record, the header or the trailer) plus one read chunk.
 *
 * Small fragments read whole and verified are put in the LRU cache; a cache hit is served
 * from memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynostore/error.h"
#include "frag.h"
#include "http.h"
#include "httpd.h"
#include "log.h"

#define FETCH_TAIL (DYNO_FRAG_END_SIZE + DYNO_FRAG_TRAILER_SIZE)

struct fetch_stream {
    struct container *c;
    char id[STORE_ID_MAX + 1];
    struct store_read *r;
    uint64_t size, first, end; /* the file's size; the range [first, end) */
    bool verify;
    bool failed;
    bool parser_ready;
    struct dyno_frag_parser parser;
    uint32_t unit;
    uint64_t verified;     /* file bytes below this offset are verified */
    uint64_t last_rec_end; /* where the record after the last verified one starts */
    bool short_seen;
    uint64_t read_pos; /* next file offset to read */
    uint8_t *raw;      /* raw[0..raw_len) = file bytes [raw_off, raw_off + raw_len) */
    size_t raw_cap, raw_len;
    uint64_t raw_off;
    uint8_t *capture; /* the whole fragment, for the cache (NULL: not cached) */
    uint64_t epoch;
};

struct fetch_hit {
    struct container *c;
    struct container_cache_entry *e;
    const uint8_t *data;
    uint64_t first, len;
};

static uint64_t fetch_min(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static int fetch_on_header(void *arg, const struct dyno_frag_hdr *h)
{
    struct fetch_stream *st = arg;
    (void)h;
    st->verified = DYNO_FRAG_HDR_SIZE;
    st->last_rec_end = DYNO_FRAG_HDR_SIZE;
    return 0;
}

static int fetch_on_record(void *arg, uint64_t s, const uint8_t *payload, size_t len)
{
    struct fetch_stream *st = arg;
    (void)payload;
    uint64_t off = DYNO_FRAG_HDR_SIZE + s * ((uint64_t)st->unit + DYNO_FRAG_REC_OVERHEAD);
    if (off != st->last_rec_end || len == 0 || len > st->unit || st->short_seen)
        return DYNO_ECORRUPT;
    if (len < st->unit)
        st->short_seen = true;
    st->last_rec_end = off + len + DYNO_FRAG_REC_OVERHEAD;
    st->verified = st->last_rec_end;
    return 0;
}

static int fetch_on_trailer(void *arg, const struct dyno_frag_trailer *t)
{
    struct fetch_stream *st = arg;
    (void)t;
    st->verified = st->last_rec_end + FETCH_TAIL;
    return 0;
}

static const struct dyno_frag_parser_cbs fetch_cbs = {
    .on_header = fetch_on_header,
    .on_record = fetch_on_record,
    .on_trailer = fetch_on_trailer,
};

static void fetch_corrupt(struct container *c, const char *id, uint64_t off)
{
    dyno_error("fragment corrupt", "id=%s offset=%llu", id, (unsigned long long)off);
    dyno_metric_add(&c->metrics[CM_CRC_ERRORS], 1);
}

/* Reads the next chunk at read_pos, keeps what the range needs and feeds the parser.
 * sent: the response's current file offset (bytes before it are no longer needed). */
static int fetch_fill(struct fetch_stream *st, uint64_t sent)
{
    struct container *c = st->c;
    if (st->read_pos >= st->size)
        return DYNO_ECORRUPT; /* the file ends before the data it promises */
    if (sent > st->raw_off) { /* drop what MHD has taken */
        size_t drop = (size_t)fetch_min(sent - st->raw_off, st->raw_len);
        memmove(st->raw, st->raw + drop, st->raw_len - drop);
        st->raw_len -= drop;
        st->raw_off += drop;
    }
    size_t room = st->raw_cap - st->raw_len;
    size_t n = (size_t)fetch_min(fetch_min(room, CONTAINER_IO_CHUNK), st->size - st->read_pos);
    if (n == 0)
        return DYNO_EINTERNAL; /* window full: cannot happen with a sane parser */
    uint8_t *dst = st->raw + st->raw_len;
    size_t got = 0;
    int rc = store_read_at(c->store, st->r, st->read_pos, dst, n, &got);
    if (rc)
        return rc;
    if (got == 0)
        return DYNO_ECORRUPT; /* shrank under us */
    if (st->capture)
        memcpy(st->capture + st->read_pos, dst, got);
    if (st->read_pos < st->end)
        st->raw_len += (size_t)fetch_min(got, st->end - st->read_pos);
    st->read_pos += got;
    rc = dyno_frag_parser_feed(&st->parser, dst, got);
    if (rc)
        return DYNO_ECORRUPT;
    if (st->capture && st->read_pos == st->size && dyno_frag_parser_done(&st->parser)) {
        container_cache_insert(c->cache, st->id, st->epoch, st->capture, (size_t)st->size);
        st->capture = NULL;
    }
    return 0;
}

static ssize_t fetch_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct fetch_stream *st = cls;
    struct container *c = st->c;
    uint64_t off = st->first + pos;

    if (st->failed)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (off >= st->end)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (!st->verify) {
        size_t got = 0;
        size_t n = (size_t)fetch_min(max, st->end - off);
        if (store_read_at(c->store, st->r, off, buf, n, &got) != 0 || got == 0) {
            dyno_error("read failed", "id=%s offset=%llu", st->id, (unsigned long long)off);
            st->failed = true;
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        dyno_metric_add(&c->metrics[CM_BYTES_OUT], (int64_t)got);
        return (ssize_t)got;
    }
    while (st->verified <= off) {
        int rc = fetch_fill(st, off);
        if (rc) {
            st->failed = true;
            if (rc == DYNO_ECORRUPT)
                fetch_corrupt(c, st->id, st->verified);
            else
                dyno_error("read failed", "id=%s offset=%llu err=%s", st->id,
                           (unsigned long long)st->read_pos, dyno_err_code(rc));
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    if (off < st->raw_off || off >= st->raw_off + st->raw_len) {
        st->failed = true; /* MHD asked out of order: refuse rather than guess */
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = (size_t)fetch_min(max, fetch_min(st->verified, st->end) - off);
    n = (size_t)fetch_min(n, st->raw_off + st->raw_len - off);
    memcpy(buf, st->raw + (off - st->raw_off), n);
    dyno_metric_add(&c->metrics[CM_BYTES_OUT], (int64_t)n);
    return (ssize_t)n;
}

static void fetch_stream_free(void *cls)
{
    struct fetch_stream *st = cls;
    if (!st)
        return;
    store_read_close(st->c->store, st->r);
    if (st->parser_ready)
        dyno_frag_parser_free(&st->parser);
    free(st->raw);
    free(st->capture);
    free(st);
}

static ssize_t fetch_hit_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct fetch_hit *h = cls;
    if (pos >= h->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = (size_t)fetch_min(max, h->len - pos);
    memcpy(buf, h->data + h->first + pos, n);
    dyno_metric_add(&h->c->metrics[CM_BYTES_OUT], (int64_t)n);
    return (ssize_t)n;
}

static void fetch_hit_free(void *cls)
{
    struct fetch_hit *h = cls;
    container_cache_release(h->c->cache, h->e);
    free(h);
}

/* Queues a body response for [first, last] of size with the range headers. */
static enum MHD_Result fetch_queue(struct MHD_Connection *conn, struct MHD_Response *r, bool ranged,
                                   uint64_t first, uint64_t last, uint64_t size)
{
    char cr[96];
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    if (ranged) {
        snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)first, (unsigned long long)last,
                 (unsigned long long)size);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    }
    enum MHD_Result ret = MHD_queue_response(conn, ranged ? MHD_HTTP_PARTIAL_CONTENT : MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* The range to serve: *ranged false for the whole fragment. DYNO_ERANGE when unsatisfiable.
 * A malformed or multi-range header is ignored (the whole fragment), as HTTP allows. */
static int fetch_range(struct MHD_Connection *conn, uint64_t size, uint64_t *first, uint64_t *last,
                       bool *ranged)
{
    const char *hdr = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
    int rc = dyno_http_parse_range(hdr, size, first, last);
    *ranged = rc == 0;
    if (rc == DYNO_ERANGE)
        return rc;
    if (rc != 0) {
        *first = 0;
        *last = size - 1;
    }
    return 0;
}

static enum MHD_Result fetch_416(struct MHD_Connection *conn, uint64_t size)
{
    char cr[64];
    snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)size);
    return container_http_error(conn, 0, DYNO_ERANGE, MHD_HTTP_HEADER_CONTENT_RANGE, cr,
                                "range not satisfiable");
}

static enum MHD_Result fetch_from_cache(struct container *c, struct MHD_Connection *conn,
                                        struct container_cache_entry *e)
{
    size_t size = 0;
    const uint8_t *data = container_cache_entry_data(e, &size);
    uint64_t first, last;
    bool ranged;
    if (fetch_range(conn, size, &first, &last, &ranged) != 0) {
        container_cache_release(c->cache, e);
        return fetch_416(conn, size);
    }
    struct fetch_hit *h = calloc(1, sizeof(*h));
    if (!h) {
        container_cache_release(c->cache, e);
        return MHD_NO;
    }
    h->c = c;
    h->e = e;
    h->data = data;
    h->first = first;
    h->len = last - first + 1;
    struct MHD_Response *r = MHD_create_response_from_callback(last - first + 1, CONTAINER_IO_CHUNK,
                                                               fetch_hit_read, h, fetch_hit_free);
    if (!r) {
        fetch_hit_free(h);
        return MHD_NO;
    }
    dyno_metric_add(&c->metrics[CM_CACHE_HITS], 1);
    dyno_metric_add(&c->metrics[CM_GETS], 1);
    return fetch_queue(conn, r, ranged, first, last, size);
}

static ssize_t fetch_head_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    (void)pos;
    (void)buf;
    (void)max;
    return MHD_CONTENT_READER_END_WITH_ERROR; /* HEAD: never asked for a body */
}

static enum MHD_Result fetch_head(struct container *c, struct MHD_Connection *conn, const char *id)
{
    uint64_t size = 0;
    int rc = store_stat(c->store, id, &size);
    if (rc == DYNO_ENOTFOUND)
        return container_http_error(conn, 0, rc, NULL, NULL, "no fragment %s", id);
    if (rc)
        return container_http_error(conn, 0, rc, NULL, NULL, "cannot read fragment %s", id);
    struct MHD_Response *r =
        MHD_create_response_from_callback(size, CONTAINER_IO_CHUNK, fetch_head_read, NULL, NULL);
    if (!r)
        return MHD_NO;
    return fetch_queue(conn, r, false, 0, size ? size - 1 : 0, size);
}

enum MHD_Result container_fetch(struct container *c, struct MHD_Connection *conn, const char *id, bool head)
{
    struct fetch_stream *st = NULL;
    enum MHD_Result ret = MHD_NO;
    uint64_t first = 0, last = 0;
    bool ranged = false;
    uint8_t hbuf[DYNO_FRAG_HDR_SIZE];
    struct dyno_frag_hdr h;
    int rc;

    if (head)
        return fetch_head(c, conn, id);
    struct container_cache_entry *e = container_cache_get(c->cache, id);
    if (e)
        return fetch_from_cache(c, conn, e);

    st = calloc(1, sizeof(*st));
    if (!st)
        return container_http_error(conn, 0, DYNO_ENOMEM, NULL, NULL, "out of memory");
    st->c = c;
    snprintf(st->id, sizeof(st->id), "%s", id);
    st->epoch = container_cache_epoch(c->cache); /* before the open: see cache.h */
    rc = store_open_read(c->store, id, &st->r, &st->size);
    if (rc == DYNO_ENOTFOUND) {
        ret = container_http_error(conn, 0, rc, NULL, NULL, "no fragment %s", id);
        goto out;
    }
    if (rc) {
        dyno_error("read failed", "id=%s err=%s", id, dyno_err_code(rc));
        ret = container_http_error(conn, 0, rc, NULL, NULL, "cannot read fragment %s", id);
        goto out;
    }

    /* The header tells the stripe unit, hence where records start. A fragment whose header
     * is bad or names another fragment is corrupt whatever range is asked. */
    size_t got = 0;
    char key[DYNO_KEY_LEN + 1];
    unsigned index = 0;
    (void)store_valid_id(id, key, &index);
    rc = store_read_at(c->store, st->r, 0, hbuf, sizeof(hbuf), &got);
    if (rc == 0 && (got < sizeof(hbuf) || st->size < DYNO_FRAG_HDR_SIZE + FETCH_TAIL ||
                    dyno_frag_hdr_decode(hbuf, got, &h) != 0 || strcmp(h.key, key) != 0 || h.index != index))
        rc = DYNO_ECORRUPT;
    if (rc) {
        if (rc == DYNO_ECORRUPT)
            fetch_corrupt(c, id, 0);
        else
            dyno_error("read failed", "id=%s err=%s", id, dyno_err_code(rc));
        ret = container_http_error(conn, 0, rc, NULL, NULL, "fragment %s is unreadable", id);
        goto out;
    }
    st->unit = h.unit;

    if (fetch_range(conn, st->size, &first, &last, &ranged) != 0) {
        ret = fetch_416(conn, st->size);
        goto out;
    }
    st->first = first;
    st->end = last + 1;

    uint64_t rec = (uint64_t)h.unit + DYNO_FRAG_REC_OVERHEAD;
    uint64_t records_end = st->size - FETCH_TAIL; /* where the end marker must be */
    if (first == 0) {
        st->verify = true;
        rc = dyno_frag_parser_init(&st->parser, true, 0, h.unit, &fetch_cbs, st);
        st->last_rec_end = DYNO_FRAG_HDR_SIZE;
    } else if (first >= DYNO_FRAG_HDR_SIZE && first < records_end &&
               (first - DYNO_FRAG_HDR_SIZE) % rec == 0) {
        st->verify = true;
        rc = dyno_frag_parser_init(&st->parser, false, (first - DYNO_FRAG_HDR_SIZE) / rec, h.unit, &fetch_cbs,
                                   st);
        st->last_rec_end = first;
    }
    if (rc) {
        ret = container_http_error(conn, 0, rc, NULL, NULL, "cannot read fragment %s", id);
        goto out;
    }
    if (st->verify) {
        st->parser_ready = true;
        st->verified = first;
        st->read_pos = first;
        st->raw_off = first;
        st->raw_cap = (rec > DYNO_FRAG_HDR_SIZE ? rec : DYNO_FRAG_HDR_SIZE) + FETCH_TAIL + CONTAINER_IO_CHUNK;
        st->raw = malloc(st->raw_cap);
        if (!st->raw) {
            ret = container_http_error(conn, 0, DYNO_ENOMEM, NULL, NULL, "out of memory");
            goto out;
        }
        if (!ranged && st->size <= container_cache_item_max(c->cache))
            st->capture = malloc((size_t)st->size); /* no memory: just not cached */
    }

    uint64_t size = st->size;
    struct MHD_Response *r = MHD_create_response_from_callback(st->end - st->first, CONTAINER_IO_CHUNK,
                                                               fetch_read, st, fetch_stream_free);
    if (!r)
        goto out;
    st = NULL; /* the response owns it */
    dyno_metric_add(&c->metrics[CM_GETS], 1);
    return fetch_queue(conn, r, ranged, first, last, size);
out:
    fetch_stream_free(st);
    return ret;
}
