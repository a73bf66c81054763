/*
 * GET and HEAD of fragments: streamed reads that verify what they serve.
 *
 * A served range that starts at a record boundary (offset 0, which includes the header, or
 * HDR_SIZE + s * (unit + 8) inside the records) is served item by item (the header, one
 * record, the end marker with the trailer): each item is read straight into MHD's response
 * buffer, checked there (header and trailer CRCs; a record's length against the layout
 * the file size implies, and its CRC32C) and only then handed to MHD, so a byte leaves
 * only once the item that holds it has been verified, and the bytes are copied once (file
 * to buffer) on their way to the socket. A record the range cuts at its end is read whole
 * into a side buffer so that it is verified too. On a mismatch the container logs
 * "fragment corrupt", counts it, reports it to metadata and ends the response with an
 * error, so the client sees a short body, never bad bytes. Ranges that start elsewhere are
 * served as they are.
 *
 * Memory of a verified stream: MHD's buffer of one header, one record and the trailer
 * (FETCH_BLOCK), plus a side buffer of one record when the range ends inside one.
 *
 * Small fragments read whole and verified are put in the LRU cache; a cache hit is served
 * from memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynostore/error.h"
#include "frag.h"
#include "hash.h"
#include "http.h"
#include "httpd.h"
#include "log.h"
#include "scrub.h"

#define FETCH_TAIL (DYNO_FRAG_END_SIZE + DYNO_FRAG_TRAILER_SIZE)

struct fetch_stream {
    struct container *c;
    char id[STORE_ID_MAX + 1];
    char key[DYNO_KEY_LEN + 1];
    unsigned index;
    struct store_read *r;
    uint64_t size, first, end; /* the file's size; the range [first, end) */
    bool verify;
    bool failed;
    uint32_t unit;
    uint64_t rec;         /* unit + DYNO_FRAG_REC_OVERHEAD: the stride of records */
    uint64_t records_end; /* where the end marker is */
    uint64_t nrec;        /* records the file size implies */
    uint32_t last_len;    /* payload length of the last record */
    uint64_t next_off;    /* the file offset MHD must ask for next */
    uint8_t *side;        /* one item, when the range ends inside it */
    uint8_t *capture;     /* the whole fragment, for the cache (NULL: not cached) */
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

/* The container is the one place that knows a cut response is corruption: it reports it
 * itself, because its reader sees only a short body, which a stream timeout, a crash or a
 * restart produce as well. */
static void fetch_corrupt(struct container *c, const char *id, uint64_t off)
{
    dyno_error("fragment corrupt", "id=%s offset=%llu", id, (unsigned long long)off);
    dyno_metric_add(&c->metrics[CM_CRC_ERRORS], 1);
    container_report_corrupt(c, id);
}

/* The layout the file size implies: record count and last length. DYNO_ECORRUPT when no
 * layout of whole records fits it. */
static int fetch_layout(struct fetch_stream *st)
{
    if (st->size < DYNO_FRAG_HDR_SIZE + FETCH_TAIL)
        return DYNO_ECORRUPT;
    st->rec = (uint64_t)st->unit + DYNO_FRAG_REC_OVERHEAD;
    st->records_end = st->size - FETCH_TAIL;
    uint64_t body = st->records_end - DYNO_FRAG_HDR_SIZE;
    uint64_t rem = body % st->rec;
    st->nrec = body / st->rec;
    st->last_len = st->unit;
    if (rem != 0) {
        if (rem <= DYNO_FRAG_REC_OVERHEAD)
            return DYNO_ECORRUPT;
        st->nrec++;
        st->last_len = (uint32_t)(rem - DYNO_FRAG_REC_OVERHEAD);
    }
    return 0;
}

/* The item (header, record or tail) that starts at off: its length, or 0 when off is not
 * where an item starts. */
static uint64_t fetch_item_len(const struct fetch_stream *st, uint64_t off)
{
    if (off == 0)
        return DYNO_FRAG_HDR_SIZE;
    if (off == st->records_end)
        return FETCH_TAIL;
    if (off < DYNO_FRAG_HDR_SIZE || off > st->records_end || (off - DYNO_FRAG_HDR_SIZE) % st->rec != 0)
        return 0;
    uint64_t s = (off - DYNO_FRAG_HDR_SIZE) / st->rec;
    return (s + 1 == st->nrec ? st->last_len : st->unit) + (uint64_t)DYNO_FRAG_REC_OVERHEAD;
}

/* Checks one item of len bytes read from file offset off. */
static int fetch_check_item(const struct fetch_stream *st, uint64_t off, const uint8_t *p, uint64_t len)
{
    if (off == 0) {
        struct dyno_frag_hdr h;
        if (dyno_frag_hdr_decode(p, (size_t)len, &h) != 0 || strcmp(h.key, st->key) != 0 ||
            h.index != st->index || h.unit != st->unit)
            return DYNO_ECORRUPT;
        return 0;
    }
    if (off == st->records_end) {
        struct dyno_frag_trailer t;
        if (dyno_frag_end_decode(p, (size_t)len, &t) != 0 || t.records != st->nrec)
            return DYNO_ECORRUPT;
        return 0;
    }
    return dyno_frag_rec_check(p, (size_t)len);
}

/* Reads exactly len bytes at off into dst. */
static int fetch_pread(struct fetch_stream *st, uint64_t off, uint8_t *dst, uint64_t len)
{
    size_t got = 0;
    int rc = store_read_at(st->c->store, st->r, off, dst, (size_t)len, &got);
    if (rc)
        return rc;
    return got == len ? 0 : DYNO_ECORRUPT; /* the file ends before the data it promises */
}

/* Fills buf (max bytes) with verified bytes from st->next_off: as many whole items as fit,
 * or the part of a cut item. Returns the byte count, or a DYNO_E* (negative). */
static ssize_t fetch_items(struct fetch_stream *st, uint8_t *buf, size_t max)
{
    size_t n = 0;
    while (n < max && st->next_off < st->end) {
        uint64_t off = st->next_off;
        uint64_t len = fetch_item_len(st, off);
        if (len == 0)
            return DYNO_ECORRUPT;
        uint64_t want = fetch_min(len, st->end - off); /* what the range takes of it */
        uint8_t *dst = buf + n;
        if (want < len || len > max - n) {
            if (n > 0)
                break; /* whole items first; this one in the next call */
            if (want == len)
                return DYNO_EINTERNAL; /* MHD's buffer is smaller than an item */
            /* The range ends inside this item: verify it whole on the side. */
            if (!st->side && !(st->side = malloc((size_t)len)))
                return DYNO_ENOMEM;
            dst = st->side;
        }
        int rc = fetch_pread(st, off, dst, len);
        if (rc == 0)
            rc = fetch_check_item(st, off, dst, len);
        if (rc)
            return rc;
        if (st->capture)
            memcpy(st->capture + off, dst, (size_t)len);
        if (dst == st->side) {
            want = fetch_min(want, max);
            memcpy(buf, dst, (size_t)want);
        }
        n += (size_t)want;
        st->next_off += want;
        if (st->capture && off == st->records_end) {
            container_cache_insert(st->c->cache, st->id, st->epoch, st->capture, (size_t)st->size);
            st->capture = NULL;
        }
    }
    return (ssize_t)n;
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
    if (off != st->next_off) {
        st->failed = true; /* MHD asked out of order: refuse rather than guess */
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    ssize_t n = fetch_items(st, (uint8_t *)buf, max);
    if (n <= 0) {
        st->failed = true;
        if (n == DYNO_ECORRUPT)
            fetch_corrupt(c, st->id, st->next_off);
        else
            dyno_error("read failed", "id=%s offset=%llu err=%s", st->id, (unsigned long long)st->next_off,
                       dyno_err_code(n < 0 ? (int)n : DYNO_EINTERNAL));
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    dyno_metric_add(&c->metrics[CM_BYTES_OUT], (int64_t)n);
    return n;
}

static void fetch_stream_free(void *cls)
{
    struct fetch_stream *st = cls;
    if (!st)
        return;
    store_read_close(st->c->store, st->r);
    free(st->side);
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

    snprintf(st->key, sizeof(st->key), "%s", key);
    st->index = index;
    if (fetch_layout(st) != 0) {
        fetch_corrupt(c, id, st->size);
        ret = container_http_error(conn, 0, DYNO_ECORRUPT, NULL, NULL, "fragment %s is unreadable", id);
        goto out;
    }
    /* A verified range starts where an item does: the header or a record. */
    if (first == 0 || (first < st->records_end && fetch_item_len(st, first) != 0)) {
        st->verify = true;
        st->next_off = first;
        if (!ranged && st->size <= container_cache_item_max(c->cache))
            st->capture = malloc((size_t)st->size); /* no memory: just not cached */
    }
    uint64_t size = st->size;
    /* A verified stream needs room for its biggest item (with the header or the tail). */
    size_t block = st->verify ? (size_t)st->rec + DYNO_FRAG_HDR_SIZE + FETCH_TAIL : CONTAINER_IO_CHUNK;
    struct MHD_Response *r =
        MHD_create_response_from_callback(st->end - st->first, block, fetch_read, st, fetch_stream_free);
    if (!r)
        goto out;
    st = NULL; /* the response owns it */
    dyno_metric_add(&c->metrics[CM_GETS], 1);
    return fetch_queue(conn, r, ranged, first, last, size);
out:
    fetch_stream_free(st);
    return ret;
}
