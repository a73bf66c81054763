/*
 * Fuzzes the push parser of fragment streams (dyno_frag_parser_*, lib/frag.h).
 *
 * Input: 5 configuration bytes, then the stream.
 *   cfg[0]  bit 0: the stream starts with a header (else range mode);
 *           bit 1: reseal: rewrite every CRC the stream's own framing points at (header,
 *                  records, trailer) so the fuzzer reaches the framing checks behind them;
 *           bit 2: with bit 1, also rewrite the trailer's record count to match.
 *   cfg[1..2]  max_unit - 1 (little-endian), so 1..65536.
 *   cfg[3]  range mode: the first record's number (255: near UINT64_MAX, to wrap).
 *   cfg[4]  where a callback returns a stop value: high nibble 0 on_record, at the record
 *           count in the low nibble (0: never); 1 on_payload, at the first piece of that
 *           record (streaming run only); 2 on_header; 3 on_trailer; else never.
 *
 * The stream is parsed three times: buffered in one feed, buffered in pieces, and in
 * streaming mode (on_payload) in other pieces; the piece sizes (0 included) come from a
 * generator seeded by the input. Checked on every run:
 *   - callbacks arrive in order: header (with_header only, once), records numbered from
 *     the first one up without gaps, trailer at most once with the right record count;
 *   - a record is 1..max_unit bytes, at most the unit, and only the last may be shorter;
 *   - the parser never reports more bytes (header, records with framing, payload pieces)
 *     than it was fed, and streaming pieces are contiguous slices of the caller's buffer;
 *   - feed returns 0, DYNO_ECORRUPT or the callback's stop value; done only after the
 *     trailer and without error; a failed parser stays failed, a done one refuses data;
 *   - a stop value ends the parse right there and is what feed returns;
 *   - all three runs see the same records with the same payloads and end the same way:
 *     how the stream is cut and whether payloads are copied must not change the result
 *     (the streaming run is left out of the comparison when it alone is stopped).
 */
#include <stdbool.h>
#include <string.h>

#include "dynostore/error.h"
#include "frag.h"
#include "fuzz.h"
#include "hash.h"

#define CFG_SIZE 5
#define STOP_RC 77

enum stop_where { STOP_NEVER, STOP_RECORD, STOP_PAYLOAD, STOP_HEADER, STOP_TRAILER };

struct run {
    /* configuration */
    bool with_header, streaming;
    uint64_t first;
    uint32_t max_unit;
    enum stop_where stop;
    unsigned stop_at; /* STOP_RECORD: the record count; STOP_PAYLOAD: the record index */
    bool stopped;     /* a callback returned STOP_RC */
    /* the piece being fed and the bytes fed before it */
    const uint8_t *piece;
    size_t piece_len, fed_before;
    /* what the callbacks saw */
    bool hdr_seen, trailer_seen, short_seen;
    uint32_t unit;           /* 0 until known: the header's, or the first record's in range mode */
    uint64_t nrec, reported; /* records, and stream bytes they account for */
    uint64_t digest;
    size_t pay_off; /* streaming: payload bytes of the current record seen */
    uint64_t pay_hash;
};

static uint64_t digest_u64(uint64_t h, uint64_t v)
{
    return fuzz_fnv(h, &v, sizeof(v));
}

static int on_header(void *arg, const struct dyno_frag_hdr *h)
{
    struct run *r = arg;

    FUZZ_CHECK(!r->stopped); /* nothing after a stop */
    FUZZ_CHECK(r->with_header && !r->hdr_seen && r->nrec == 0);
    FUZZ_CHECK(h->unit > 0 && h->unit <= DYNO_FRAG_MAX_UNIT);
    r->hdr_seen = true;
    r->unit = h->unit;
    r->reported = DYNO_FRAG_HDR_SIZE;
    FUZZ_CHECK(r->reported <= r->fed_before + r->piece_len);
    r->digest = digest_u64(r->digest, h->unit);
    r->stopped = r->stop == STOP_HEADER;
    return r->stopped ? STOP_RC : 0;
}

static int on_payload(void *arg, uint64_t s, size_t off, const uint8_t *p, size_t len)
{
    struct run *r = arg;

    FUZZ_CHECK(!r->stopped); /* nothing after a stop */
    FUZZ_CHECK(r->streaming);
    FUZZ_CHECK(s == r->first + r->nrec);
    FUZZ_CHECK(len > 0 && off == r->pay_off);
    /* In place, inside the piece being fed. */
    FUZZ_CHECK(p >= r->piece && len <= r->piece_len && (size_t)(p - r->piece) <= r->piece_len - len);
    r->pay_hash = fuzz_fnv(r->pay_hash, p, len);
    r->pay_off += len;
    FUZZ_CHECK(r->pay_off <= r->max_unit);
    FUZZ_CHECK(r->unit == 0 || r->pay_off <= r->unit);
    FUZZ_CHECK(r->reported + 4 + r->pay_off <= r->fed_before + r->piece_len);
    r->stopped = r->stop == STOP_PAYLOAD && r->nrec == r->stop_at;
    return r->stopped ? STOP_RC : 0;
}

static int on_record(void *arg, uint64_t s, const uint8_t *payload, size_t len)
{
    struct run *r = arg;
    uint64_t h;

    FUZZ_CHECK(!r->stopped); /* nothing after a stop */
    FUZZ_CHECK(s == r->first + r->nrec);
    FUZZ_CHECK(!r->with_header || r->hdr_seen);
    FUZZ_CHECK(!r->trailer_seen && !r->short_seen);
    FUZZ_CHECK(len >= 1 && len <= r->max_unit);
    if (r->unit == 0)
        r->unit = (uint32_t)len; /* range mode: the first record sets the unit */
    FUZZ_CHECK(len <= r->unit);
    r->short_seen = len < r->unit;
    if (r->streaming) {
        FUZZ_CHECK(payload == NULL && r->pay_off == len);
        h = r->pay_hash;
    } else {
        FUZZ_CHECK(payload != NULL);
        h = fuzz_fnv(FUZZ_FNV_INIT, payload, len);
    }
    r->pay_off = 0;
    r->pay_hash = FUZZ_FNV_INIT;
    r->reported += len + DYNO_FRAG_REC_OVERHEAD;
    FUZZ_CHECK(r->reported <= r->fed_before + r->piece_len);
    r->digest = digest_u64(digest_u64(digest_u64(r->digest, s), len), h);
    r->nrec++;
    r->stopped = r->stop == STOP_RECORD && r->nrec == r->stop_at;
    return r->stopped ? STOP_RC : 0;
}

static int on_trailer(void *arg, const struct dyno_frag_trailer *t)
{
    struct run *r = arg;

    FUZZ_CHECK(!r->stopped); /* nothing after a stop */
    FUZZ_CHECK(!r->trailer_seen && (!r->with_header || r->hdr_seen));
    FUZZ_CHECK(t->records == r->first + r->nrec);
    r->trailer_seen = true;
    r->reported += DYNO_FRAG_END_SIZE + DYNO_FRAG_TRAILER_SIZE;
    FUZZ_CHECK(r->reported <= r->fed_before + r->piece_len);
    r->digest = digest_u64(digest_u64(r->digest, t->object_size), t->records);
    r->stopped = r->stop == STOP_TRAILER;
    return r->stopped ? STOP_RC : 0;
}

/* Parses stream[0..len) in pieces (one piece when seed is 0); returns feed's first error. */
static int run_parse(struct run *r, const uint8_t *stream, size_t len, uint64_t seed)
{
    static const struct dyno_frag_parser_cbs buffered = {on_header, on_record, on_trailer, NULL};
    static const struct dyno_frag_parser_cbs streaming = {on_header, on_record, on_trailer, on_payload};
    struct dyno_frag_parser p;
    int rc = 0;

    r->digest = FUZZ_FNV_INIT;
    r->pay_hash = FUZZ_FNV_INIT;
    FUZZ_CHECK(dyno_frag_parser_init(&p, r->with_header, r->first, r->max_unit,
                                     r->streaming ? &streaming : &buffered, r) == 0);
    for (size_t off = 0; off < len && rc == 0;) {
        size_t n = len - off;
        if (seed != 0) {
            uint64_t x = fuzz_rng(&seed);
            /* Mostly tiny pieces (splitting every field), sometimes large ones. */
            size_t want = (x & 3) == 0 ? (size_t)(x >> 8) % 4096 : (size_t)(x >> 8) % 17;
            n = want < n ? want : n;
        }
        r->piece = stream + off;
        r->piece_len = n;
        rc = dyno_frag_parser_feed(&p, stream + off, n);
        r->fed_before += n;
        off += n;
    }
    FUZZ_CHECK(rc == 0 || rc == DYNO_ECORRUPT || rc == STOP_RC);
    FUZZ_CHECK((rc == STOP_RC) == r->stopped);
    bool done = dyno_frag_parser_done(&p);
    FUZZ_CHECK(!done || (rc == 0 && r->trailer_seen));
    FUZZ_CHECK(done || rc != 0 || !r->trailer_seen);
    FUZZ_CHECK(r->reported <= len);

    static const uint8_t extra = 0;
    r->piece = &extra;
    r->piece_len = 1;
    if (rc != 0)
        FUZZ_CHECK(dyno_frag_parser_feed(&p, &extra, 1) != 0); /* failed stays failed */
    else if (done)
        FUZZ_CHECK(dyno_frag_parser_feed(&p, &extra, 1) == DYNO_ECORRUPT);
    dyno_frag_parser_free(&p);
    return rc;
}

static uint32_t get32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void put32(uint8_t *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

/* Rewrites the CRCs (and with fix_count the trailer's record count) along the framing. */
static void reseal(uint8_t *s, size_t len, bool with_header, uint64_t first, bool fix_count)
{
    size_t pos = 0;
    uint64_t nrec = 0;

    if (with_header) {
        if (len < DYNO_FRAG_HDR_SIZE)
            return;
        put32(s + DYNO_FRAG_HDR_SIZE - 4, dyno_crc32c(0, s, DYNO_FRAG_HDR_SIZE - 4));
        pos = DYNO_FRAG_HDR_SIZE;
    }
    while (len - pos >= 4) {
        uint32_t rl = get32(s + pos);
        if (rl == 0) {
            uint8_t *t = s + pos + 4;
            if (len - pos - 4 < DYNO_FRAG_TRAILER_SIZE)
                return;
            if (fix_count) {
                uint64_t c = first + nrec;
                for (int i = 0; i < 8; i++)
                    t[48 + i] = (uint8_t)(c >> (8 * i));
            }
            put32(t + 60, dyno_crc32c(0, t, 60));
            return;
        }
        if (len - pos - 4 < (size_t)rl + 4)
            return;
        put32(s + pos + 4 + rl, dyno_crc32c(0, s + pos + 4, rl));
        pos += 8 + (size_t)rl;
        nrec++;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dyno_frag_parser bad;
    static const struct dyno_frag_parser_cbs cbs = {NULL, on_record, NULL, NULL};

    if (size < CFG_SIZE)
        return 0;
    bool with_header = data[0] & 1;
    uint32_t max_unit = 1 + ((uint32_t)data[1] | (uint32_t)data[2] << 8);
    uint64_t first = with_header ? 0 : data[3] == 255 ? UINT64_MAX - 2 : data[3];
    static const enum stop_where wheres[] = {STOP_RECORD, STOP_PAYLOAD, STOP_HEADER, STOP_TRAILER};
    enum stop_where stop = data[4] >> 4 < 4 ? wheres[data[4] >> 4] : STOP_NEVER;
    unsigned stop_at = data[4] & 15;

    /* The documented argument checks. */
    FUZZ_CHECK(dyno_frag_parser_init(&bad, with_header, first, 0, &cbs, NULL) == DYNO_EINVAL);
    FUZZ_CHECK(dyno_frag_parser_init(&bad, true, 1, max_unit, &cbs, NULL) == DYNO_EINVAL);
    FUZZ_CHECK(dyno_frag_parser_init(&bad, false, 0, DYNO_FRAG_MAX_UNIT + 1, &cbs, NULL) == DYNO_EINVAL);

    size_t len = size - CFG_SIZE;
    uint8_t *stream = malloc(len ? len : 1);
    FUZZ_CHECK(stream != NULL);
    memcpy(stream, data + CFG_SIZE, len);
    if (data[0] & 2)
        reseal(stream, len, with_header, first, (data[0] & 4) != 0);

    uint64_t seed = fuzz_fnv(FUZZ_FNV_INIT, data, size);
    struct run runs[3];
    int rcs[3];
    for (int i = 0; i < 3; i++) {
        memset(&runs[i], 0, sizeof(runs[i]));
        runs[i].with_header = with_header;
        runs[i].streaming = i == 2;
        runs[i].first = first;
        runs[i].max_unit = max_unit;
        /* Only the streaming run has on_payload to stop in. */
        runs[i].stop = stop == STOP_PAYLOAD && i != 2 ? STOP_NEVER : stop;
        runs[i].stop_at = stop_at;
        rcs[i] = run_parse(&runs[i], stream, len, i == 0 ? 0 : seed + (uint64_t)i);
    }
    for (int i = 1; i < (stop == STOP_PAYLOAD ? 2 : 3); i++) {
        FUZZ_CHECK(rcs[i] == rcs[0]);
        FUZZ_CHECK(runs[i].digest == runs[0].digest && runs[i].nrec == runs[0].nrec);
        FUZZ_CHECK(runs[i].hdr_seen == runs[0].hdr_seen && runs[i].trailer_seen == runs[0].trailer_seen);
    }
    free(stream);
    return 0;
}
