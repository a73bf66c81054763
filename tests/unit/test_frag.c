/*
 * Unit tests of lib/frag.c: header and trailer round trips and hostile variants, record
 * framing, the push parser under every kind of split and damage, and the layout math.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dynostore/error.h"
#include "frag.h"
#include "hash.h"

static const char *const KEY = "00112233445566778899aabbccddeeff";

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void sample_hdr(struct dyno_frag_hdr *h)
{
    memset(h, 0, sizeof(*h));
    h->version = DYNO_FRAG_VERSION;
    h->k = 3;
    h->m = 2;
    h->index = 4;
    h->unit = 1024 * 1024;
    strcpy(h->key, KEY);
    strcpy(h->catalog, "alice/projects/ct-scans");
    strcpy(h->name, "scan \xc3\xa9 001.tiff");
}

/* Rewrites the header CRC after a deliberate edit, so the field checks are reached. */
static void reseal_hdr(uint8_t *b)
{
    uint32_t c = dyno_crc32c(0, b, DYNO_FRAG_HDR_SIZE - 4);
    for (int i = 0; i < 4; i++)
        b[DYNO_FRAG_HDR_SIZE - 4 + i] = (uint8_t)(c >> (8 * i));
}

static void reseal_trailer(uint8_t *b)
{
    uint32_t c = dyno_crc32c(0, b, 60);
    for (int i = 0; i < 4; i++)
        b[60 + i] = (uint8_t)(c >> (8 * i));
}

static void assert_hdr_equal(const struct dyno_frag_hdr *a, const struct dyno_frag_hdr *b)
{
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->k, b->k);
    assert_int_equal(a->m, b->m);
    assert_int_equal(a->index, b->index);
    assert_int_equal(a->replica, b->replica);
    assert_int_equal(a->unit, b->unit);
    assert_string_equal(a->key, b->key);
    assert_string_equal(a->catalog, b->catalog);
    assert_string_equal(a->name, b->name);
}

static void test_hdr_layout_and_round_trip(void **state)
{
    struct dyno_frag_hdr h, d;
    uint8_t b[DYNO_FRAG_HDR_SIZE];
    (void)state;
    sample_hdr(&h);
    assert_int_equal(dyno_frag_hdr_encode(&h, b), 0);
    /* The documented byte layout, field by field. */
    assert_memory_equal(b, "DYNOFRAG", 8);
    assert_int_equal(b[8], 1);
    assert_int_equal(b[9], 0);
    assert_int_equal(b[10], 3);
    assert_int_equal(b[11], 2);
    assert_int_equal(b[12], 4);
    assert_int_equal(b[13], 0);
    assert_int_equal(b[14], strlen(h.catalog));
    assert_int_equal(b[15], 0);
    assert_int_equal(b[16], 0x00);
    assert_int_equal(b[17], 0x00);
    assert_int_equal(b[18], 0x10);
    assert_int_equal(b[19], 0x00);
    assert_int_equal(b[20], strlen(h.name));
    assert_int_equal(b[21] | b[22] | b[23], 0);
    assert_memory_equal(b + 24, KEY, 32);
    assert_memory_equal(b + 56, h.catalog, strlen(h.catalog));
    assert_memory_equal(b + 56 + strlen(h.catalog), h.name, strlen(h.name));
    for (size_t i = 56 + strlen(h.catalog) + strlen(h.name); i < 1020; i++)
        assert_int_equal(b[i], 0);
    uint32_t crc = dyno_crc32c(0, b, 1020);
    assert_int_equal(b[1020] | b[1021] << 8 | b[1022] << 16 | (uint32_t)b[1023] << 24, crc);

    assert_int_equal(dyno_frag_hdr_decode(b, sizeof(b), &d), 0);
    assert_hdr_equal(&h, &d);
    /* A longer buffer is fine (the header is read from a stream's start). */
    uint8_t big[DYNO_FRAG_HDR_SIZE + 10];
    memcpy(big, b, sizeof(b));
    assert_int_equal(dyno_frag_hdr_decode(big, sizeof(big), &d), 0);
}

static void test_hdr_extremes(void **state)
{
    struct dyno_frag_hdr h, d;
    uint8_t b[DYNO_FRAG_HDR_SIZE];
    (void)state;
    /* The longest catalog and the longest name fit together. */
    sample_hdr(&h);
    size_t off = 0;
    for (int s = 0; s <= DYNO_DEPTH_MAX; s++) {
        if (s)
            h.catalog[off++] = '/';
        memset(h.catalog + off, 'a' + s, DYNO_SEG_MAX);
        off += DYNO_SEG_MAX;
    }
    h.catalog[off] = '\0';
    memset(h.name, 'n', DYNO_NAME_MAX);
    h.name[DYNO_NAME_MAX] = '\0';
    h.k = 32;
    h.m = 16;
    h.index = 47;
    h.unit = DYNO_FRAG_MAX_UNIT;
    assert_int_equal(dyno_frag_hdr_encode(&h, b), 0);
    assert_int_equal(dyno_frag_hdr_decode(b, sizeof(b), &d), 0);
    assert_hdr_equal(&h, &d);
    /* A replica: k = 1, flag set. */
    sample_hdr(&h);
    h.k = 1;
    h.m = 2;
    h.index = 2;
    h.replica = true;
    h.unit = 1;
    assert_int_equal(dyno_frag_hdr_encode(&h, b), 0);
    assert_int_equal(b[13], 1);
    assert_int_equal(dyno_frag_hdr_decode(b, sizeof(b), &d), 0);
    assert_hdr_equal(&h, &d);
}

static void test_hdr_encode_rejects(void **state)
{
    struct dyno_frag_hdr h;
    uint8_t b[DYNO_FRAG_HDR_SIZE];
    (void)state;
#define REJECT(stmt)                                                                                         \
    do {                                                                                                     \
        sample_hdr(&h);                                                                                      \
        stmt;                                                                                                \
        assert_int_equal(dyno_frag_hdr_encode(&h, b), DYNO_EINVAL);                                          \
    } while (0)
    REJECT(h.k = 0);
    REJECT(h.k = 33);
    REJECT(h.m = 17);
    REJECT(h.index = 5);
    REJECT(h.unit = 0);
    REJECT(h.unit = DYNO_FRAG_MAX_UNIT + 1);
    REJECT(h.replica = true); /* k = 3 */
    REJECT(h.key[0] = 'A');
    REJECT(h.key[31] = '\0');
    REJECT(strcpy(h.catalog, "alice"));
    REJECT(strcpy(h.catalog, "alice/../bob"));
    REJECT(strcpy(h.catalog, ""));
    REJECT(strcpy(h.name, ""));
    REJECT(strcpy(h.name, "/a")); /* a leading '/' (inner ones are S3 keys) */
    REJECT(strcpy(h.name, ".."));
    REJECT(strcpy(h.name, "bad\xff"));
#undef REJECT
    assert_int_equal(dyno_frag_hdr_encode(NULL, b), DYNO_EINVAL);
}

static void test_hdr_decode_hostile(void **state)
{
    struct dyno_frag_hdr h, d;
    uint8_t good[DYNO_FRAG_HDR_SIZE], b[DYNO_FRAG_HDR_SIZE];
    (void)state;
    sample_hdr(&h);
    assert_int_equal(dyno_frag_hdr_encode(&h, good), 0);

    /* Truncated: never read past len. Heap copies so ASan sees any overread. */
    for (size_t len = 0; len < DYNO_FRAG_HDR_SIZE; len += 97) {
        uint8_t *p = malloc(len ? len : 1);
        assert_non_null(p);
        memcpy(p, good, len);
        assert_int_equal(dyno_frag_hdr_decode(p, len, &d), DYNO_EINVAL);
        free(p);
    }
    assert_int_equal(dyno_frag_hdr_decode(good, DYNO_FRAG_HDR_SIZE - 1, &d), DYNO_EINVAL);
    assert_int_equal(dyno_frag_hdr_decode(NULL, DYNO_FRAG_HDR_SIZE, &d), DYNO_EINVAL);

    /* Every single bit flip anywhere is caught. */
    for (size_t i = 0; i < DYNO_FRAG_HDR_SIZE; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(b, good, sizeof(b));
            b[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(dyno_frag_hdr_decode(b, sizeof(b), &d), DYNO_ECORRUPT);
        }
    }

    /* Forged headers with a correct CRC but bad fields. */
    size_t cl = strlen(h.catalog), nl = strlen(h.name);
#define FORGE(stmt)                                                                                          \
    do {                                                                                                     \
        memcpy(b, good, sizeof(b));                                                                          \
        stmt;                                                                                                \
        reseal_hdr(b);                                                                                       \
        assert_int_equal(dyno_frag_hdr_decode(b, sizeof(b), &d), DYNO_ECORRUPT);                             \
    } while (0)
    FORGE(b[0] = 'X'); /* magic */
    FORGE(b[8] = 2);   /* version */
    FORGE(b[8] = 0);
    FORGE(b[9] = 1);   /* version 257 */
    FORGE(b[10] = 0);  /* k = 0 */
    FORGE(b[10] = 33); /* k > max */
    FORGE(b[11] = 17); /* m > max */
    FORGE(b[12] = 5);  /* index = k + m */
    FORGE(b[12] = 255);
    FORGE(b[13] = 2);                                  /* unknown flag */
    FORGE(b[13] = 1);                                  /* replica with k = 3 */
    FORGE(b[22] = 1);                                  /* reserved */
    FORGE(memset(b + 16, 0, 4));                       /* unit 0 */
    FORGE(b[16] = 1; b[17] = 0; b[18] = 0; b[19] = 1); /* unit > max */
    FORGE(memset(b + 16, 0xff, 4));
    FORGE(b[14] = 0xff; b[15] = 0xff); /* catalog_len 65535 */
    FORGE(b[14] = (DYNO_CATALOG_MAX + 1) & 0xff; b[15] = (DYNO_CATALOG_MAX + 1) >> 8);
    FORGE(b[20] = 0xff; b[21] = 0xff); /* name_len 65535 */
    FORGE(b[20] = 0; b[21] = 1);       /* name_len 256 */
    FORGE(b[14] = (uint8_t)DYNO_CATALOG_MAX; b[15] = DYNO_CATALOG_MAX >> 8;
          b[20] = 255);                                             /* both max, over padding */
    FORGE(b[14] = 0; b[15] = 0);                                    /* empty catalog */
    FORGE(b[20] = 0);                                               /* empty name */
    FORGE(b[14] = 15);                                              /* catalog_len cut: "alice/projects/" */
    FORGE(b[20] = (uint8_t)(nl + 1));                               /* name takes one padding NUL */
    FORGE(b[24] = 'G');                                             /* key not hex */
    FORGE(b[24] = 'A');                                             /* key uppercase */
    FORGE(b[30] = '\0');                                            /* NUL inside the key */
    FORGE(b[56 + 3] = '\0');                                        /* NUL inside the catalog */
    FORGE(b[56 + cl + 2] = '\0');                                   /* NUL inside the name */
    FORGE(memcpy(b + 56, "alice/../bob/ct-scans", 21); b[14] = 21); /* traversal */
    FORGE(b[56 + cl] = '/');                                        /* name with a leading '/' */
    FORGE(b[56 + cl + 1] = '\n');                                   /* control char */
    FORGE(b[56 + cl + 5] = 0xc0);                                   /* bad UTF-8 */
    FORGE(b[DYNO_FRAG_HDR_SIZE - 5] = 'x');                         /* padding not zero */
#undef FORGE
    /* A resealed but unchanged copy still decodes, so the forgeries above were real. */
    memcpy(b, good, sizeof(b));
    reseal_hdr(b);
    assert_int_equal(dyno_frag_hdr_decode(b, sizeof(b), &d), 0);
}

static void test_trailer(void **state)
{
    struct dyno_frag_trailer t, d;
    uint8_t b[DYNO_FRAG_TRAILER_SIZE], x[DYNO_FRAG_TRAILER_SIZE];
    (void)state;
    t.object_size = 0x0102030405060708ull;
    for (int i = 0; i < 32; i++)
        t.sha256[i] = (uint8_t)(i * 7 + 1);
    t.records = 0x1122334455667788ull;
    assert_int_equal(dyno_frag_trailer_encode(&t, b), 0);
    assert_memory_equal(b, "DYNOTAIL", 8);
    assert_int_equal(b[8], 0x08);
    assert_int_equal(b[15], 0x01);
    assert_memory_equal(b + 16, t.sha256, 32);
    assert_int_equal(b[48], 0x88);
    assert_int_equal(b[55], 0x11);
    assert_int_equal(b[56] | b[57] | b[58] | b[59], 0);
    assert_int_equal(b[60] | b[61] << 8 | b[62] << 16 | (uint32_t)b[63] << 24, dyno_crc32c(0, b, 60));
    assert_int_equal(dyno_frag_trailer_decode(b, sizeof(b), &d), 0);
    assert_int_equal(d.object_size, t.object_size);
    assert_int_equal(d.records, t.records);
    assert_memory_equal(d.sha256, t.sha256, 32);

    assert_int_equal(dyno_frag_trailer_decode(b, sizeof(b) - 1, &d), DYNO_EINVAL);
    for (size_t i = 0; i < sizeof(b); i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(x, b, sizeof(b));
            x[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(dyno_frag_trailer_decode(x, sizeof(x), &d), DYNO_ECORRUPT);
        }
    }
    memcpy(x, b, sizeof(b));
    x[56] = 1;
    reseal_trailer(x);
    assert_int_equal(dyno_frag_trailer_decode(x, sizeof(x), &d), DYNO_ECORRUPT);
    memcpy(x, b, sizeof(b));
    x[7] = 'X';
    reseal_trailer(x);
    assert_int_equal(dyno_frag_trailer_decode(x, sizeof(x), &d), DYNO_ECORRUPT);
}

static void test_record_framing(void **state)
{
    uint8_t p[4], s[4];
    (void)state;
    dyno_frag_rec_prefix(0x01020304u, p);
    assert_int_equal(p[0], 4);
    assert_int_equal(p[1], 3);
    assert_int_equal(p[2], 2);
    assert_int_equal(p[3], 1);
    dyno_frag_rec_suffix((const uint8_t *)"123456789", 9, s);
    assert_int_equal(s[0] | s[1] << 8 | s[2] << 16 | (uint32_t)s[3] << 24, 0xE3069283u);
}

/* ---- streams ------------------------------------------------------------------------ */

struct stream {
    uint8_t *p;
    size_t len;
    size_t nrec;
    size_t rec_off[64]; /* offset of each record's length prefix */
    size_t end_off;     /* offset of the end marker */
};

static void put_bytes(struct stream *s, const void *p, size_t n)
{
    s->p = realloc(s->p, s->len + n);
    assert_non_null(s->p);
    memcpy(s->p + s->len, p, n);
    s->len += n;
}

/* Payload byte j of record r of the sample object: deterministic, so tests can check it. */
static uint8_t payload_byte(uint64_t r, size_t j)
{
    return (uint8_t)(r * 131 + j * 7 + (j >> 8));
}

/* A fragment stream for an object of `size` bytes with k, unit: records as the layout
 * says, payload from payload_byte, a trailer with the real record count. */
static void build_stream(struct stream *s, uint64_t size, int k, uint32_t unit)
{
    struct dyno_frag_hdr h;
    struct dyno_frag_trailer t;
    struct dyno_layout l = {.size = size, .unit = unit, .k = k};
    uint8_t hb[DYNO_FRAG_HDR_SIZE], tb[DYNO_FRAG_TRAILER_SIZE], b4[4];

    memset(s, 0, sizeof(*s));
    sample_hdr(&h);
    h.k = (uint8_t)k;
    h.m = 1;
    h.index = 0;
    h.unit = unit;
    assert_int_equal(dyno_frag_hdr_encode(&h, hb), 0);
    put_bytes(s, hb, sizeof(hb));
    uint64_t n = dyno_layout_stripes(&l);
    assert_true(n <= 64);
    for (uint64_t r = 0; r < n; r++) {
        uint32_t len = dyno_layout_unit_len(&l, r);
        uint8_t *pl = malloc(len);
        assert_non_null(pl);
        for (size_t j = 0; j < len; j++)
            pl[j] = payload_byte(r, j);
        assert_int_equal(s->len, dyno_layout_record_offset(&l, r));
        s->rec_off[s->nrec++] = s->len;
        dyno_frag_rec_prefix(len, b4);
        put_bytes(s, b4, 4);
        put_bytes(s, pl, len);
        dyno_frag_rec_suffix(pl, len, b4);
        put_bytes(s, b4, 4);
        free(pl);
    }
    s->end_off = s->len;
    memset(b4, 0, 4);
    put_bytes(s, b4, 4);
    memset(&t, 0, sizeof(t));
    t.object_size = size;
    t.records = n;
    for (int i = 0; i < 32; i++)
        t.sha256[i] = (uint8_t)i;
    assert_int_equal(dyno_frag_trailer_encode(&t, tb), 0);
    put_bytes(s, tb, sizeof(tb));
    assert_int_equal(s->len, dyno_layout_fragment_size(&l));
}

/* What the callbacks saw. */
struct seen {
    int headers, trailers;
    uint64_t records, first, last;
    uint64_t bytes;
    bool payload_ok, order_ok;
    uint64_t trailer_size;
    int fail_on_record; /* return this from on_record at record fail_at */
    uint64_t fail_at;
};

static int on_header(void *arg, const struct dyno_frag_hdr *h)
{
    struct seen *s = arg;
    (void)h;
    s->headers++;
    return 0;
}

static int on_record(void *arg, uint64_t r, const uint8_t *p, size_t len)
{
    struct seen *s = arg;
    if (s->fail_on_record && r == s->fail_at)
        return s->fail_on_record;
    if (s->records == 0)
        s->first = r;
    else if (r != s->last + 1)
        s->order_ok = false;
    s->last = r;
    s->records++;
    s->bytes += len;
    for (size_t j = 0; j < len; j++) {
        if (p[j] != payload_byte(r, j)) {
            s->payload_ok = false;
            break;
        }
    }
    return 0;
}

static int on_trailer(void *arg, const struct dyno_frag_trailer *t)
{
    struct seen *s = arg;
    s->trailers++;
    s->trailer_size = t->object_size;
    return 0;
}

static const struct dyno_frag_parser_cbs CBS = {on_header, on_record, on_trailer, NULL};

static void seen_init(struct seen *s)
{
    memset(s, 0, sizeof(*s));
    s->payload_ok = s->order_ok = true;
}

/* Feeds data in pieces whose sizes come from `split` (0: whole; 1: byte by byte;
 * otherwise random pieces seeded by split). Returns the first non-zero feed result. */
static int feed_split(struct dyno_frag_parser *p, const uint8_t *data, size_t len, uint64_t split)
{
    size_t off = 0;
    uint64_t seed = split | 1;
    while (off < len) {
        size_t n;
        if (split == 0)
            n = len;
        else if (split == 1)
            n = 1;
        else
            n = 1 + (size_t)(rng_next(&seed) % (rng_next(&seed) % 4 == 0 ? 3000 : 40));
        if (n > len - off)
            n = len - off;
        int rc = dyno_frag_parser_feed(p, data + off, n);
        if (rc)
            return rc;
        off += n;
    }
    return 0;
}

static void parse_whole(const struct stream *st, uint64_t split, uint32_t max_unit, uint64_t size, int k,
                        uint32_t unit)
{
    struct dyno_frag_parser p;
    struct seen s;
    struct dyno_layout l = {.size = size, .unit = unit, .k = k};
    seen_init(&s);
    assert_int_equal(dyno_frag_parser_init(&p, true, 0, max_unit, &CBS, &s), 0);
    assert_false(dyno_frag_parser_done(&p));
    assert_int_equal(feed_split(&p, st->p, st->len, split), 0);
    assert_true(dyno_frag_parser_done(&p));
    assert_int_equal(s.headers, 1);
    assert_int_equal(s.trailers, 1);
    assert_int_equal(s.records, dyno_layout_stripes(&l));
    assert_true(s.payload_ok);
    assert_true(s.order_ok);
    assert_int_equal(s.trailer_size, size);
    if (s.records)
        assert_int_equal(s.first, 0);
    dyno_frag_parser_free(&p);
}

static void test_parser_splits(void **state)
{
    static const uint64_t sizes[] = {0, 1, 299, 300, 301, 1000, 3001};
    (void)state;
    for (int k = 1; k <= 3; k++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            struct stream st;
            build_stream(&st, sizes[i], k, 100);
            parse_whole(&st, 0, DYNO_FRAG_MAX_UNIT, sizes[i], k, 100);
            parse_whole(&st, 1, 100, sizes[i], k, 100);
            for (uint64_t split = 2; split < 12; split++)
                parse_whole(&st, split * 7919, 4096, sizes[i], k, 100);
            free(st.p);
        }
    }
}

/* Streaming mode: payload pieces arrive in place, records only after their CRC. */
struct streamed {
    uint8_t rec[4096];
    size_t have;
    uint64_t records, cur;
    bool ok;
};

static int st_on_payload(void *arg, uint64_t r, size_t off, const uint8_t *p, size_t len)
{
    struct streamed *s = arg;
    if (off != s->have || off + len > sizeof(s->rec) || (off == 0 && r != s->cur))
        s->ok = false;
    else
        memcpy(s->rec + off, p, len);
    s->have += len;
    return 0;
}

static int st_on_record(void *arg, uint64_t r, const uint8_t *p, size_t len)
{
    struct streamed *s = arg;
    if (p != NULL || len != s->have || r != s->cur)
        s->ok = false;
    for (size_t j = 0; s->ok && j < len; j++)
        if (s->rec[j] != payload_byte(r, j))
            s->ok = false;
    s->have = 0;
    s->cur++;
    s->records++;
    return 0;
}

static const struct dyno_frag_parser_cbs STREAM_CBS = {NULL, st_on_record, NULL, st_on_payload};

static void test_parser_streaming(void **state)
{
    struct stream st;
    (void)state;
    build_stream(&st, 3001, 3, 100);
    for (uint64_t split = 0; split < 12; split++) {
        struct dyno_frag_parser p;
        struct streamed s = {.ok = true};
        assert_int_equal(dyno_frag_parser_init(&p, true, 0, 4096, &STREAM_CBS, &s), 0);
        assert_int_equal(feed_split(&p, st.p, st.len, split < 2 ? split : split * 7919), 0);
        assert_true(dyno_frag_parser_done(&p));
        assert_true(s.ok);
        assert_int_equal(s.records, st.nrec);
        dyno_frag_parser_free(&p);
    }
    /* A flipped payload bit: the record is never confirmed. */
    st.p[st.rec_off[4] + 10] ^= 0x10;
    for (uint64_t split = 0; split < 3; split++) {
        struct dyno_frag_parser p;
        struct streamed s = {.ok = true};
        assert_int_equal(dyno_frag_parser_init(&p, true, 0, 4096, &STREAM_CBS, &s), 0);
        assert_int_equal(feed_split(&p, st.p, st.len, split), DYNO_ECORRUPT);
        assert_int_equal(s.records, 4);
        dyno_frag_parser_free(&p);
    }
    free(st.p);
}

static void test_parser_range_mode(void **state)
{
    struct stream st;
    struct dyno_frag_parser p;
    struct seen s;
    const uint64_t size = 2550; /* k = 2, unit 100: 13 stripes, the last of 75 bytes */
    (void)state;
    build_stream(&st, size, 2, 100);
    assert_int_equal(st.nrec, 13);
    /* From every record boundary to the end, in pieces. */
    for (size_t r = 0; r <= st.nrec; r++) {
        size_t off = r < st.nrec ? st.rec_off[r] : st.end_off;
        for (uint64_t split = 0; split < 4; split++) {
            seen_init(&s);
            assert_int_equal(dyno_frag_parser_init(&p, false, r, DYNO_FRAG_MAX_UNIT, &CBS, &s), 0);
            assert_int_equal(feed_split(&p, st.p + off, st.len - off, split * 31), 0);
            assert_true(dyno_frag_parser_done(&p));
            assert_int_equal(s.headers, 0);
            assert_int_equal(s.records, st.nrec - r);
            if (s.records)
                assert_int_equal(s.first, r);
            assert_true(s.payload_ok);
            assert_true(s.order_ok);
            dyno_frag_parser_free(&p);
        }
    }
    /* A middle range (records 3..5): records seen, not done. */
    seen_init(&s);
    assert_int_equal(dyno_frag_parser_init(&p, false, 3, 100, &CBS, &s), 0);
    assert_int_equal(feed_split(&p, st.p + st.rec_off[3], st.rec_off[6] - st.rec_off[3], 1), 0);
    assert_false(dyno_frag_parser_done(&p));
    assert_int_equal(s.records, 3);
    assert_int_equal(s.first, 3);
    assert_true(s.payload_ok);
    dyno_frag_parser_free(&p);
    /* Starting at the wrong record number: the trailer's count disagrees. */
    seen_init(&s);
    assert_int_equal(dyno_frag_parser_init(&p, false, 2, DYNO_FRAG_MAX_UNIT, &CBS, &s), 0);
    assert_int_equal(feed_split(&p, st.p + st.rec_off[3], st.len - st.rec_off[3], 0), DYNO_ECORRUPT);
    dyno_frag_parser_free(&p);
    free(st.p);
}

/* Parses a whole stream and returns the feed result (fed in one piece and byte by byte,
 * both must agree). */
static int parse_result(const uint8_t *data, size_t len, uint32_t max_unit, bool *done)
{
    int rc[2];
    bool dn[2];
    for (int mode = 0; mode < 2; mode++) {
        struct dyno_frag_parser p;
        struct seen s;
        seen_init(&s);
        assert_int_equal(dyno_frag_parser_init(&p, true, 0, max_unit, &CBS, &s), 0);
        rc[mode] = feed_split(&p, data, len, (uint64_t)mode);
        dn[mode] = dyno_frag_parser_done(&p);
        assert_true(s.payload_ok);
        dyno_frag_parser_free(&p);
    }
    assert_int_equal(rc[0], rc[1]);
    assert_int_equal(dn[0], dn[1]);
    if (done)
        *done = dn[0];
    return rc[0];
}

static void test_parser_damage(void **state)
{
    struct stream st;
    uint8_t *x;
    bool done;
    (void)state;
    build_stream(&st, 250, 1, 100); /* records of 100, 100, 50 */
    x = malloc(st.len + 16);
    assert_non_null(x);

    /* Intact. */
    assert_int_equal(parse_result(st.p, st.len, 100, &done), 0);
    assert_true(done);

    /* Every single-byte change anywhere is an error or at least never a completed parse. */
    for (size_t i = 0; i < st.len; i++) {
        for (int v = 0; v < 3; v++) {
            static const uint8_t xors[] = {0x01, 0x80, 0xff};
            memcpy(x, st.p, st.len);
            x[i] ^= xors[v];
            int rc = parse_result(x, st.len, 100, &done);
            if (rc == 0 && done)
                fail_msg("flip at %zu (^%#x) went unnoticed", i, xors[v]);
        }
    }

    /* Bad payload CRC and bad CRC field. */
    memcpy(x, st.p, st.len);
    x[st.rec_off[1] + 4 + 10] ^= 1;
    assert_int_equal(parse_result(x, st.len, 100, NULL), DYNO_ECORRUPT);
    memcpy(x, st.p, st.len);
    x[st.rec_off[1] + 4 + 100] ^= 1;
    assert_int_equal(parse_result(x, st.len, 100, NULL), DYNO_ECORRUPT);

    /* Data after the trailer, in the same feed or a later one. */
    memcpy(x, st.p, st.len);
    x[st.len] = 0;
    assert_int_equal(parse_result(x, st.len + 1, 100, NULL), DYNO_ECORRUPT);
    {
        struct dyno_frag_parser p;
        struct seen s;
        seen_init(&s);
        assert_int_equal(dyno_frag_parser_init(&p, true, 0, 100, &CBS, &s), 0);
        assert_int_equal(dyno_frag_parser_feed(&p, st.p, st.len), 0);
        assert_true(dyno_frag_parser_done(&p));
        assert_int_equal(dyno_frag_parser_feed(&p, NULL, 0), 0);
        assert_int_equal(dyno_frag_parser_feed(&p, (const uint8_t *)"x", 1), DYNO_ECORRUPT);
        assert_false(dyno_frag_parser_done(&p));
        /* A failed parser stays failed. */
        assert_int_not_equal(dyno_frag_parser_feed(&p, st.p, 4), 0);
        dyno_frag_parser_free(&p);
        dyno_frag_parser_free(&p); /* idempotent */
    }

    /* Truncated anywhere: no error yet, but never done. */
    for (size_t cut = 0; cut < st.len; cut++) {
        assert_int_equal(parse_result(st.p, cut, 100, &done), 0);
        assert_false(done);
    }
    free(x);
    free(st.p);
}

static void test_parser_framing(void **state)
{
    struct stream st;
    uint8_t *x;
    uint8_t b4[4];
    (void)state;
    build_stream(&st, 250, 1, 100); /* records of 100, 100, 50 */
    x = malloc(st.len + 512);
    assert_non_null(x);

    /* Header unit over the caller's limit: refused at the header. */
    assert_int_equal(parse_result(st.p, st.len, 99, NULL), DYNO_ECORRUPT);

    /* A record longer than the header's unit (length and CRC consistent). */
    {
        size_t off = st.rec_off[0];
        memcpy(x, st.p, off);
        uint8_t pl[101];
        memset(pl, 1, sizeof(pl));
        dyno_frag_rec_prefix(101, b4);
        memcpy(x + off, b4, 4);
        memcpy(x + off + 4, pl, 101);
        dyno_frag_rec_suffix(pl, 101, x + off + 105);
        assert_int_equal(parse_result(x, off + 109, 4096, NULL), DYNO_ECORRUPT);
    }

    /* A short record followed by another record: only the last may be short. */
    {
        size_t off = st.rec_off[0];
        memcpy(x, st.p, off);
        uint8_t pl[50];
        memset(pl, 2, sizeof(pl));
        for (int r = 0; r < 2; r++) {
            dyno_frag_rec_prefix(50, b4);
            memcpy(x + off, b4, 4);
            memcpy(x + off + 4, pl, 50);
            dyno_frag_rec_suffix(pl, 50, x + off + 54);
            off += 58;
        }
        struct dyno_frag_parser p;
        struct seen s;
        seen_init(&s);
        assert_int_equal(dyno_frag_parser_init(&p, true, 0, 100, &CBS, &s), 0);
        s.payload_ok = false; /* payloads are not payload_byte here */
        assert_int_equal(dyno_frag_parser_feed(&p, x, off), DYNO_ECORRUPT);
        dyno_frag_parser_free(&p);
    }

    /* Range mode: a record longer than max_unit is refused before buffering it. */
    {
        struct dyno_frag_parser p;
        struct seen s;
        seen_init(&s);
        assert_int_equal(dyno_frag_parser_init(&p, false, 0, 64, &CBS, &s), 0);
        dyno_frag_rec_prefix(65, b4);
        assert_int_equal(dyno_frag_parser_feed(&p, b4, 4), DYNO_ECORRUPT);
        dyno_frag_parser_free(&p);
        /* A hostile 4 GiB length is refused just the same. */
        seen_init(&s);
        assert_int_equal(dyno_frag_parser_init(&p, false, 0, DYNO_FRAG_MAX_UNIT, &CBS, &s), 0);
        memset(b4, 0xff, 4);
        assert_int_equal(dyno_frag_parser_feed(&p, b4, 4), DYNO_ECORRUPT);
        dyno_frag_parser_free(&p);
    }

    /* Range mode: later records may not exceed the first one's length. */
    {
        struct dyno_frag_parser p;
        struct seen s;
        uint8_t pl[80];
        size_t off = 0;
        memset(pl, 3, sizeof(pl));
        uint32_t lens[2] = {40, 80};
        for (int r = 0; r < 2; r++) {
            dyno_frag_rec_prefix(lens[r], x + off);
            memcpy(x + off + 4, pl, lens[r]);
            dyno_frag_rec_suffix(pl, lens[r], x + off + 4 + lens[r]);
            off += 8 + lens[r];
        }
        seen_init(&s);
        s.payload_ok = false; /* payloads are not payload_byte here */
        assert_int_equal(dyno_frag_parser_init(&p, false, 0, 4096, &CBS, &s), 0);
        assert_int_equal(dyno_frag_parser_feed(&p, x, off), DYNO_ECORRUPT);
        dyno_frag_parser_free(&p);
    }

    /* Trailer record count off by one. */
    {
        memcpy(x, st.p, st.len);
        size_t t = st.len - DYNO_FRAG_TRAILER_SIZE;
        x[t + 48] ^= 1;
        reseal_trailer(x + t);
        assert_int_equal(parse_result(x, st.len, 100, NULL), DYNO_ECORRUPT);
    }

    free(x);
    free(st.p);
    /* No header where one is expected (enough records to fill a header's worth). */
    build_stream(&st, 3000, 1, 100);
    assert_int_equal(parse_result(st.p + DYNO_FRAG_HDR_SIZE, st.len - DYNO_FRAG_HDR_SIZE, 100, NULL),
                     DYNO_ECORRUPT);
    free(st.p);
}

static int fail_header(void *arg, const struct dyno_frag_hdr *h)
{
    (void)arg;
    (void)h;
    return DYNO_EFORBIDDEN;
}

static int fail_trailer(void *arg, const struct dyno_frag_trailer *t)
{
    (void)arg;
    (void)t;
    return DYNO_ENOSPC;
}

static void test_parser_callbacks(void **state)
{
    struct stream st;
    struct dyno_frag_parser p;
    struct seen s;
    (void)state;
    build_stream(&st, 250, 1, 100);

    const struct dyno_frag_parser_cbs only_records = {NULL, on_record, NULL, NULL};
    seen_init(&s);
    assert_int_equal(dyno_frag_parser_init(&p, true, 0, 100, &only_records, &s), 0);
    assert_int_equal(dyno_frag_parser_feed(&p, st.p, st.len), 0);
    assert_true(dyno_frag_parser_done(&p));
    assert_int_equal(s.records, 3);
    dyno_frag_parser_free(&p);

    /* A callback's non-zero value stops the parse and comes back from feed. */
    seen_init(&s);
    s.fail_on_record = DYNO_EIO;
    s.fail_at = 1;
    assert_int_equal(dyno_frag_parser_init(&p, true, 0, 100, &CBS, &s), 0);
    assert_int_equal(feed_split(&p, st.p, st.len, 1), DYNO_EIO);
    assert_int_equal(s.records, 1);
    dyno_frag_parser_free(&p);

    const struct dyno_frag_parser_cbs bad_hdr = {fail_header, on_record, NULL, NULL};
    seen_init(&s);
    assert_int_equal(dyno_frag_parser_init(&p, true, 0, 100, &bad_hdr, &s), 0);
    assert_int_equal(dyno_frag_parser_feed(&p, st.p, st.len), DYNO_EFORBIDDEN);
    assert_int_equal(s.records, 0);
    dyno_frag_parser_free(&p);

    const struct dyno_frag_parser_cbs bad_tail = {NULL, on_record, fail_trailer, NULL};
    seen_init(&s);
    assert_int_equal(dyno_frag_parser_init(&p, true, 0, 100, &bad_tail, &s), 0);
    assert_int_equal(dyno_frag_parser_feed(&p, st.p, st.len), DYNO_ENOSPC);
    assert_false(dyno_frag_parser_done(&p));
    dyno_frag_parser_free(&p);

    /* Bad init arguments. */
    const struct dyno_frag_parser_cbs no_record = {NULL, NULL, NULL, NULL};
    assert_int_equal(dyno_frag_parser_init(&p, true, 0, 100, &no_record, &s), DYNO_EINVAL);
    dyno_frag_parser_free(&p);
    assert_int_equal(dyno_frag_parser_init(&p, true, 0, 0, &CBS, &s), DYNO_EINVAL);
    dyno_frag_parser_free(&p);
    assert_int_equal(dyno_frag_parser_init(&p, true, 0, DYNO_FRAG_MAX_UNIT + 1, &CBS, &s), DYNO_EINVAL);
    dyno_frag_parser_free(&p);
    assert_int_equal(dyno_frag_parser_init(&p, true, 0, 100, NULL, &s), DYNO_EINVAL);
    assert_int_equal(dyno_frag_parser_feed(&p, st.p, 10), DYNO_EINVAL);
    dyno_frag_parser_free(&p);
    dyno_frag_parser_free(NULL);
    free(st.p);
}

static void test_parser_random_garbage(void **state)
{
    uint64_t seed = 12345;
    uint8_t *g = malloc(8192);
    struct stream st;
    (void)state;
    assert_non_null(g);
    build_stream(&st, 250, 1, 100);
    for (int t = 0; t < 300; t++) {
        size_t len = (size_t)(rng_next(&seed) % 8192);
        for (size_t i = 0; i < len; i++)
            g[i] = (uint8_t)rng_next(&seed);
        /* Sometimes a valid header followed by garbage, to reach the record states. */
        if (t % 2 && len > DYNO_FRAG_HDR_SIZE)
            memcpy(g, st.p, DYNO_FRAG_HDR_SIZE);
        for (int mode = 0; mode < 2; mode++) {
            struct dyno_frag_parser p;
            struct seen s;
            seen_init(&s);
            assert_int_equal(dyno_frag_parser_init(&p, mode == 0, 0, 100, &CBS, &s), 0);
            int rc = feed_split(&p, g, len, rng_next(&seed));
            assert_true(rc == 0 || rc == DYNO_ECORRUPT);
            assert_false(dyno_frag_parser_done(&p));
            dyno_frag_parser_free(&p);
        }
    }
    free(g);
    free(st.p);
}

/* ---- layout ------------------------------------------------------------------------- */

static void check_layout(uint64_t size, int k, uint32_t unit)
{
    struct dyno_layout l = {.size = size, .unit = unit, .k = k};
    uint64_t stripe = (uint64_t)k * unit;
    uint64_t n = dyno_layout_stripes(&l);
    assert_int_equal(n, (size + stripe - 1) / stripe);

    uint64_t covered = 0, frag = DYNO_FRAG_HDR_SIZE;
    for (uint64_t s = 0; s < n; s++) {
        uint64_t start, len;
        dyno_layout_stripe_span(&l, s, &start, &len);
        assert_int_equal(start, covered); /* contiguous */
        assert_true(len > 0 && len <= stripe);
        if (s + 1 < n)
            assert_int_equal(len, stripe);
        uint32_t ul = dyno_layout_unit_len(&l, s);
        assert_int_equal(ul, (len + (uint64_t)k - 1) / (uint64_t)k);
        assert_true(ul >= 1 && ul <= unit);
        assert_true((uint64_t)ul * (uint64_t)k >= len);
        assert_true((uint64_t)(ul - 1) * (uint64_t)k < len);
        assert_int_equal(dyno_layout_record_offset(&l, s), frag);
        frag += ul + DYNO_FRAG_REC_OVERHEAD;
        covered += len;
    }
    assert_int_equal(covered, size);
    assert_int_equal(dyno_layout_unit_len(&l, n), 0);
    uint64_t start, len;
    dyno_layout_stripe_span(&l, n, &start, &len);
    assert_int_equal(len, 0);
    assert_int_equal(dyno_layout_fragment_size(&l), frag + DYNO_FRAG_END_SIZE + DYNO_FRAG_TRAILER_SIZE);
}

static void test_layout(void **state)
{
    static const int ks[] = {1, 2, 3, 4, 6, 10};
    static const uint32_t units[] = {1, 7, 100, 1024 * 1024};
    (void)state;
    for (size_t a = 0; a < sizeof(ks) / sizeof(ks[0]); a++) {
        for (size_t b = 0; b < sizeof(units) / sizeof(units[0]); b++) {
            int k = ks[a];
            uint32_t u = units[b];
            uint64_t ku = (uint64_t)k * u;
            const uint64_t sizes[] = {0, 1, ku - 1, ku, ku + 1, 2 * ku - 1, 2 * ku, 2 * ku + 1, 5 * ku + 3};
            for (size_t c = 0; c < sizeof(sizes) / sizeof(sizes[0]); c++) {
                if (units[b] == 1024 * 1024 && sizes[c] > 3 * ku)
                    continue; /* keep the loop fast; the math is the same */
                check_layout(sizes[c], k, u);
            }
        }
    }
}

static void test_layout_exact_values(void **state)
{
    (void)state;
    /* Size 0: no records; header, end marker, trailer. */
    struct dyno_layout l0 = {.size = 0, .unit = 1024 * 1024, .k = 3};
    assert_int_equal(dyno_layout_stripes(&l0), 0);
    assert_int_equal(dyno_layout_fragment_size(&l0), 1024 + 4 + 64);
    /* Size 1, k 3: one stripe, unit length 1. */
    struct dyno_layout l1 = {.size = 1, .unit = 1024 * 1024, .k = 3};
    assert_int_equal(dyno_layout_stripes(&l1), 1);
    assert_int_equal(dyno_layout_unit_len(&l1, 0), 1);
    assert_int_equal(dyno_layout_fragment_size(&l1), 1024 + 9 + 4 + 64);
    /* k*u - 1 with k 3, u 100: one stripe of 299 bytes, unit length 100. */
    struct dyno_layout l2 = {.size = 299, .unit = 100, .k = 3};
    assert_int_equal(dyno_layout_stripes(&l2), 1);
    assert_int_equal(dyno_layout_unit_len(&l2, 0), 100);
    /* k*u + 1: two stripes, the second one byte. */
    struct dyno_layout l3 = {.size = 301, .unit = 100, .k = 3};
    assert_int_equal(dyno_layout_stripes(&l3), 2);
    assert_int_equal(dyno_layout_unit_len(&l3, 0), 100);
    assert_int_equal(dyno_layout_unit_len(&l3, 1), 1);
    uint64_t start, len;
    dyno_layout_stripe_span(&l3, 1, &start, &len);
    assert_int_equal(start, 300);
    assert_int_equal(len, 1);
    assert_int_equal(dyno_layout_record_offset(&l3, 1), 1024 + 108);
    assert_int_equal(dyno_layout_fragment_size(&l3), 1024 + 108 + 9 + 4 + 64);
    /* A 1 TiB object in 1 MiB units with k 3. */
    struct dyno_layout big = {.size = 1ull << 40, .unit = 1u << 20, .k = 3};
    uint64_t n = dyno_layout_stripes(&big);
    assert_int_equal(n, ((1ull << 40) + 3 * (1ull << 20) - 1) / (3 * (1ull << 20)));
    dyno_layout_stripe_span(&big, n - 1, &start, &len);
    assert_int_equal(start + len, 1ull << 40);
}

/* ---- writer ---- */

struct wr_seen {
    struct dyno_frag_hdr h;
    uint8_t got[4000];
    size_t len;
    uint64_t records;
    struct dyno_frag_trailer t;
    bool trailer;
};

static int wr_on_header(void *arg, const struct dyno_frag_hdr *h)
{
    ((struct wr_seen *)arg)->h = *h;
    return 0;
}

static int wr_on_record(void *arg, uint64_t s, const uint8_t *payload, size_t len)
{
    struct wr_seen *w = arg;
    assert_int_equal(s, w->records);
    assert_true(w->len + len <= sizeof(w->got));
    memcpy(w->got + w->len, payload, len);
    w->len += len;
    w->records++;
    return 0;
}

static int wr_on_trailer(void *arg, const struct dyno_frag_trailer *t)
{
    struct wr_seen *w = arg;
    w->t = *t;
    w->trailer = true;
    return 0;
}

/* What the writer writes, the parser reads: header, records (with and without a
 * precomputed CRC suffix), trailer with the writer's record count; also a fragment of no
 * record (an empty object). A flipped payload bit after the CRC was taken is caught. */
static void test_writer_round_trip(void **state)
{
    (void)state;
    static const struct dyno_frag_parser_cbs cbs = {
        .on_header = wr_on_header, .on_record = wr_on_record, .on_trailer = wr_on_trailer};
    for (int nrec = 0; nrec <= 3; nrec++) {
        struct dyno_frag_hdr h;
        sample_hdr(&h);
        h.unit = 1000;
        struct dyno_frag_writer w;
        assert_int_equal(dyno_frag_writer_init(&w, &h), 0);
        uint8_t payload[3][1000], sha[32], out[8000];
        size_t o = 0;
        for (int r = 0; r < nrec; r++) {
            size_t len = r == nrec - 1 ? 321 : 1000;
            memset(payload[r], 'a' + r, len);
            uint8_t suf[4];
            dyno_frag_rec_suffix(payload[r], len, suf);
            struct dyno_frag_seg seg[DYNO_FRAG_WRITER_SEGS];
            int n = dyno_frag_writer_record(&w, payload[r], len, r == 1 ? suf : NULL, seg);
            assert_int_equal(n, r == 0 ? 4 : 3);
            for (int i = 0; i < n; i++, o += seg[i - 1].len)
                memcpy(out + o, seg[i].p, seg[i].len);
        }
        memset(sha, 0x5a, sizeof(sha));
        struct dyno_frag_seg seg[DYNO_FRAG_WRITER_SEGS];
        int n = dyno_frag_writer_end(&w, 2321, sha, seg);
        assert_int_equal(n, nrec == 0 ? 2 : 1);
        for (int i = 0; i < n; i++, o += seg[i - 1].len)
            memcpy(out + o, seg[i].p, seg[i].len);

        struct wr_seen seen = {0};
        struct dyno_frag_parser p;
        assert_int_equal(dyno_frag_parser_init(&p, true, 0, 1000, &cbs, &seen), 0);
        assert_int_equal(dyno_frag_parser_feed(&p, out, o), 0);
        assert_true(dyno_frag_parser_done(&p));
        dyno_frag_parser_free(&p);
        assert_string_equal(seen.h.key, KEY);
        assert_int_equal(seen.h.unit, 1000);
        assert_int_equal(seen.records, (uint64_t)nrec);
        assert_true(seen.trailer);
        assert_int_equal(seen.t.records, (uint64_t)nrec);
        assert_int_equal(seen.t.object_size, 2321);
        assert_memory_equal(seen.t.sha256, sha, 32);
        for (int r = 0; r < nrec; r++)
            assert_int_equal(seen.got[(size_t)r * 1000], 'a' + r);

        if (nrec > 0) {
            out[DYNO_FRAG_HDR_SIZE + 4 + 7] ^= 1; /* a bit of the first payload */
            memset(&seen, 0, sizeof(seen));
            assert_int_equal(dyno_frag_parser_init(&p, true, 0, 1000, &cbs, &seen), 0);
            assert_int_equal(dyno_frag_parser_feed(&p, out, o), DYNO_ECORRUPT);
            dyno_frag_parser_free(&p);
        }
    }
}

/* ---- readers of a stored fragment (dyno_frag_read_ends, dyno_frag_verify) ---- */

/* A source over a memory buffer; read_err: every read fails with it. */
struct memsrc {
    const uint8_t *p;
    size_t len;
    int read_err;
    int reads;
};

static int mem_read_at(void *arg, uint64_t off, uint8_t *buf, size_t len, size_t *got)
{
    struct memsrc *m = arg;
    m->reads++;
    *got = 0;
    if (m->read_err)
        return m->read_err;
    if (off < m->len)
        *got = m->len - off < len ? m->len - off : len;
    memcpy(buf, m->p + off, *got);
    return 0;
}

static struct dyno_frag_src mem_src(struct memsrc *m, const uint8_t *p, size_t len)
{
    *m = (struct memsrc){.p = p, .len = len};
    return (struct dyno_frag_src){.read_at = mem_read_at, .arg = m, .size = len};
}

static int stop_at_second(void *arg, uint64_t n)
{
    int *calls = arg;
    (void)n;
    return ++*calls == 2 ? DYNO_ETIMEDOUT : 0;
}

/* A good fragment passes both readers whatever the chunk size; a flipped payload byte, a
 * header naming another fragment, a cut file and a trailer that does not match the size are
 * corrupt; a read error is returned as it is; the pace can stop a read. */
static void test_stored_fragment_readers(void **state)
{
    struct stream st;
    struct memsrc m;
    struct dyno_frag_ends ends;
    uint64_t bytes = 0;
    (void)state;
    build_stream(&st, 3 * 4096 * 2 + 100, 3, 4096); /* 3 records, the last short */
    struct dyno_frag_src src = mem_src(&m, st.p, st.len);
    assert_int_equal(dyno_frag_read_ends(&src, KEY, 0, &ends), 0);
    assert_true(ends.hdr_ok && ends.trailer_ok);
    assert_int_equal(ends.trailer.records, 3);
    assert_int_equal(ends.hdr.unit, 4096);
    const size_t chunks[] = {1, 7, 1000, 4096 + 8, 1 << 20};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        src = mem_src(&m, st.p, st.len);
        assert_int_equal(dyno_frag_verify(&src, KEY, 0, chunks[i], NULL, NULL, &bytes), 0);
        assert_int_equal(bytes, st.len);
    }

    /* The item checks of a verified GET (one record, the end with the trailer). */
    struct dyno_frag_trailer t;
    assert_int_equal(dyno_frag_rec_check(st.p + st.rec_off[0], 4096 + 8), 0);
    assert_int_equal(dyno_frag_rec_check(st.p + st.rec_off[0], 4096 + 7), DYNO_ECORRUPT);
    assert_int_equal(dyno_frag_end_decode(st.p + st.end_off, st.len - st.end_off, &t), 0);
    assert_int_equal(t.records, 3);
    assert_int_equal(dyno_frag_end_decode(st.p + st.end_off, 10, &t), DYNO_EINVAL);
    st.p[st.rec_off[0] + 4] ^= 1;
    st.p[st.end_off] = 1;
    assert_int_equal(dyno_frag_rec_check(st.p + st.rec_off[0], 4096 + 8), DYNO_ECORRUPT);
    assert_int_equal(dyno_frag_end_decode(st.p + st.end_off, st.len - st.end_off, &t), DYNO_ECORRUPT);
    st.p[st.rec_off[0] + 4] ^= 1;
    st.p[st.end_off] = 0;

    /* Some other fragment: index 1 asked, index 0 stored. */
    src = mem_src(&m, st.p, st.len);
    assert_int_equal(dyno_frag_read_ends(&src, KEY, 1, &ends), DYNO_ECORRUPT);
    assert_false(ends.hdr_ok);
    assert_true(ends.trailer_ok);
    assert_int_equal(dyno_frag_verify(&src, KEY, 1, 4096, NULL, NULL, &bytes), DYNO_ECORRUPT);

    /* A flipped payload byte in record 1: the ends are fine, the full read is not. */
    st.p[st.rec_off[1] + 4 + 10] ^= 0x20;
    src = mem_src(&m, st.p, st.len);
    assert_int_equal(dyno_frag_read_ends(&src, KEY, 0, &ends), 0);
    assert_int_equal(dyno_frag_verify(&src, KEY, 0, 4096, NULL, NULL, &bytes), DYNO_ECORRUPT);
    st.p[st.rec_off[1] + 4 + 10] ^= 0x20;

    /* Cut before its trailer; and one record short of what the trailer counts. */
    src = mem_src(&m, st.p, st.len - 10);
    assert_int_equal(dyno_frag_read_ends(&src, KEY, 0, &ends), DYNO_ECORRUPT);
    assert_int_equal(dyno_frag_verify(&src, KEY, 0, 4096, NULL, NULL, &bytes), DYNO_ECORRUPT);
    src = mem_src(&m, st.p, st.len);
    src.size = st.len + 1; /* the store says more than there is */
    assert_int_equal(dyno_frag_verify(&src, KEY, 0, 4096, NULL, NULL, &bytes), DYNO_ECORRUPT);

    /* The I/O error itself, not "corrupt": a disk error is not bad bytes. */
    src = mem_src(&m, st.p, st.len);
    m.read_err = DYNO_EIO;
    assert_int_equal(dyno_frag_read_ends(&src, KEY, 0, &ends), DYNO_EIO);
    assert_int_equal(dyno_frag_verify(&src, KEY, 0, 4096, NULL, NULL, &bytes), DYNO_EIO);

    /* The pace stops the read after its second chunk, with its own code. */
    int calls = 0;
    src = mem_src(&m, st.p, st.len);
    assert_int_equal(dyno_frag_verify(&src, KEY, 0, 4096, stop_at_second, &calls, &bytes), DYNO_ETIMEDOUT);
    assert_int_equal(bytes, 2 * 4096);
    assert_int_equal(m.reads, 2);
    free(st.p);
}

/* The parser refuses a fragment that is not the one expected, before any callback. */
static void test_parser_expect(void **state)
{
    struct stream st;
    struct dyno_frag_parser p;
    struct seen sn;
    (void)state;
    build_stream(&st, 5000, 1, 4096);
    seen_init(&sn);
    assert_int_equal(dyno_frag_parser_init(&p, true, 0, 4096, &CBS, &sn), 0);
    dyno_frag_parser_expect(&p, KEY, 2);
    assert_int_equal(dyno_frag_parser_feed(&p, st.p, st.len), DYNO_ECORRUPT);
    assert_int_equal(sn.headers, 0);
    dyno_frag_parser_free(&p);
    seen_init(&sn);
    assert_int_equal(dyno_frag_parser_init(&p, true, 0, 4096, &CBS, &sn), 0);
    dyno_frag_parser_expect(&p, KEY, 0);
    assert_int_equal(dyno_frag_parser_feed(&p, st.p, st.len), 0);
    assert_true(dyno_frag_parser_done(&p));
    dyno_frag_parser_free(&p);
    free(st.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hdr_layout_and_round_trip),
        cmocka_unit_test(test_hdr_extremes),
        cmocka_unit_test(test_hdr_encode_rejects),
        cmocka_unit_test(test_hdr_decode_hostile),
        cmocka_unit_test(test_trailer),
        cmocka_unit_test(test_record_framing),
        cmocka_unit_test(test_parser_splits),
        cmocka_unit_test(test_parser_range_mode),
        cmocka_unit_test(test_parser_damage),
        cmocka_unit_test(test_parser_streaming),
        cmocka_unit_test(test_parser_framing),
        cmocka_unit_test(test_parser_callbacks),
        cmocka_unit_test(test_parser_random_garbage),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_layout_exact_values),
        cmocka_unit_test(test_writer_round_trip),
        cmocka_unit_test(test_stored_fragment_readers),
        cmocka_unit_test(test_parser_expect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
