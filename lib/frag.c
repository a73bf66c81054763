/*
 * The fragment format (see frag.h for the byte layout). Every multi-byte field is packed
 * and unpacked byte by byte in little-endian order, never by casting a struct over the
 * buffer: the format must not depend on the compiler's padding or the host's endianness,
 * and hostile input must never steer a read outside the buffer.
 */
#include "frag.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "dynostore/error.h"
#include "ec.h"
#include "hash.h"

/* Header field offsets. */
#define H_MAGIC 0
#define H_VERSION 8
#define H_K 10
#define H_M 11
#define H_INDEX 12
#define H_FLAGS 13
#define H_CATALOG_LEN 14
#define H_UNIT 16
#define H_NAME_LEN 20
#define H_RESERVED 22
#define H_KEY 24
#define H_STRINGS 56
#define H_CRC (DYNO_FRAG_HDR_SIZE - 4)

#define FLAG_REPLICA 0x01u

/* Trailer field offsets. */
#define T_MAGIC 0
#define T_SIZE 8
#define T_SHA 16
#define T_RECORDS 48
#define T_RESERVED 56
#define T_CRC 60

static const char hdr_magic[8] = {'D', 'Y', 'N', 'O', 'F', 'R', 'A', 'G'};
static const char tail_magic[8] = {'D', 'Y', 'N', 'O', 'T', 'A', 'I', 'L'};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/*
 * The checks shared by encode (a caller's bug: DYNO_EINVAL) and decode (bad bytes:
 * DYNO_ECORRUPT). k and m are bounded by what dyno_ec can decode, and a replica is always
 * k = 1, so no header can describe a fragment that no reader could use.
 */
static bool hdr_fields_ok(unsigned k, unsigned m, unsigned index, bool replica, uint32_t unit)
{
    if (k < 1 || k > DYNO_EC_MAX_K || m > DYNO_EC_MAX_M || index >= k + m)
        return false;
    if (replica && k != 1)
        return false;
    return unit > 0 && unit <= DYNO_FRAG_MAX_UNIT;
}

int dyno_frag_hdr_encode(const struct dyno_frag_hdr *h, uint8_t out[DYNO_FRAG_HDR_SIZE])
{
    if (!h || !out)
        return DYNO_EINVAL;
    if (!hdr_fields_ok(h->k, h->m, h->index, h->replica, h->unit))
        return DYNO_EINVAL;
    if (!dyno_valid_key(h->key) || !dyno_valid_catalog(h->catalog) || !dyno_valid_name(h->name))
        return DYNO_EINVAL;
    /* The validators bound both lengths, and CATALOG_MAX + NAME_MAX fit before the CRC. */
    size_t cl = strlen(h->catalog), nl = strlen(h->name);

    memset(out, 0, DYNO_FRAG_HDR_SIZE);
    memcpy(out + H_MAGIC, hdr_magic, sizeof(hdr_magic));
    put16(out + H_VERSION, DYNO_FRAG_VERSION);
    out[H_K] = h->k;
    out[H_M] = h->m;
    out[H_INDEX] = h->index;
    out[H_FLAGS] = h->replica ? FLAG_REPLICA : 0;
    put16(out + H_CATALOG_LEN, (uint16_t)cl);
    put32(out + H_UNIT, h->unit);
    put16(out + H_NAME_LEN, (uint16_t)nl);
    memcpy(out + H_KEY, h->key, DYNO_KEY_LEN);
    memcpy(out + H_STRINGS, h->catalog, cl);
    memcpy(out + H_STRINGS + cl, h->name, nl);
    put32(out + H_CRC, dyno_crc32c(0, out, H_CRC));
    return 0;
}

int dyno_frag_hdr_decode(const uint8_t *buf, size_t len, struct dyno_frag_hdr *out)
{
    struct dyno_frag_hdr h;

    if (!buf || !out || len < DYNO_FRAG_HDR_SIZE)
        return DYNO_EINVAL;
    /* Magic and CRC first: everything after them is then at least what the writer meant. */
    if (memcmp(buf + H_MAGIC, hdr_magic, sizeof(hdr_magic)) != 0)
        return DYNO_ECORRUPT;
    if (get32(buf + H_CRC) != dyno_crc32c(0, buf, H_CRC))
        return DYNO_ECORRUPT;

    memset(&h, 0, sizeof(h));
    h.version = get16(buf + H_VERSION);
    h.k = buf[H_K];
    h.m = buf[H_M];
    h.index = buf[H_INDEX];
    h.replica = (buf[H_FLAGS] & FLAG_REPLICA) != 0;
    h.unit = get32(buf + H_UNIT);
    size_t cl = get16(buf + H_CATALOG_LEN), nl = get16(buf + H_NAME_LEN);

    if (h.version != DYNO_FRAG_VERSION)
        return DYNO_ECORRUPT;
    /* Unknown flags or a non-zero reserved field mean a writer we do not understand. */
    if ((buf[H_FLAGS] & ~FLAG_REPLICA) != 0 || get16(buf + H_RESERVED) != 0)
        return DYNO_ECORRUPT;
    if (!hdr_fields_ok(h.k, h.m, h.index, h.replica, h.unit))
        return DYNO_ECORRUPT;
    if (cl > DYNO_CATALOG_MAX || nl > DYNO_NAME_MAX || H_STRINGS + cl + nl > H_CRC)
        return DYNO_ECORRUPT;
    /* An embedded NUL would make the C string disagree with the recorded length. */
    if (memchr(buf + H_KEY, '\0', DYNO_KEY_LEN) || memchr(buf + H_STRINGS, '\0', cl + nl))
        return DYNO_ECORRUPT;
    /* The padding is zeros: anything else is a writer we do not understand (the encoder
     * writes zeros, so a decoded header re-encodes to the same bytes). */
    for (size_t i = H_STRINGS + cl + nl; i < H_CRC; i++)
        if (buf[i] != 0)
            return DYNO_ECORRUPT;
    memcpy(h.key, buf + H_KEY, DYNO_KEY_LEN);
    memcpy(h.catalog, buf + H_STRINGS, cl);
    memcpy(h.name, buf + H_STRINGS + cl, nl);
    if (!dyno_valid_key(h.key) || !dyno_valid_catalog(h.catalog) || !dyno_valid_name(h.name))
        return DYNO_ECORRUPT;
    *out = h;
    return 0;
}

int dyno_frag_trailer_encode(const struct dyno_frag_trailer *t, uint8_t out[DYNO_FRAG_TRAILER_SIZE])
{
    if (!t || !out)
        return DYNO_EINVAL;
    memset(out, 0, DYNO_FRAG_TRAILER_SIZE);
    memcpy(out + T_MAGIC, tail_magic, sizeof(tail_magic));
    put64(out + T_SIZE, t->object_size);
    memcpy(out + T_SHA, t->sha256, 32);
    put64(out + T_RECORDS, t->records);
    put32(out + T_CRC, dyno_crc32c(0, out, T_CRC));
    return 0;
}

int dyno_frag_trailer_decode(const uint8_t *buf, size_t len, struct dyno_frag_trailer *out)
{
    if (!buf || !out || len < DYNO_FRAG_TRAILER_SIZE)
        return DYNO_EINVAL;
    if (memcmp(buf + T_MAGIC, tail_magic, sizeof(tail_magic)) != 0)
        return DYNO_ECORRUPT;
    if (get32(buf + T_CRC) != dyno_crc32c(0, buf, T_CRC) || get32(buf + T_RESERVED) != 0)
        return DYNO_ECORRUPT;
    out->object_size = get64(buf + T_SIZE);
    memcpy(out->sha256, buf + T_SHA, 32);
    out->records = get64(buf + T_RECORDS);
    return 0;
}

void dyno_frag_rec_prefix(uint32_t len, uint8_t out[4])
{
    put32(out, len);
}

void dyno_frag_rec_suffix(const uint8_t *payload, size_t len, uint8_t out[4])
{
    put32(out, dyno_crc32c(0, payload, len));
}

int dyno_frag_rec_check(const uint8_t *rec, size_t len)
{
    if (!rec || len < DYNO_FRAG_REC_OVERHEAD)
        return DYNO_ECORRUPT;
    size_t plen = len - DYNO_FRAG_REC_OVERHEAD;
    if (get32(rec) != plen || get32(rec + 4 + plen) != dyno_crc32c(0, rec + 4, plen))
        return DYNO_ECORRUPT;
    return 0;
}

int dyno_frag_end_decode(const uint8_t *buf, size_t len, struct dyno_frag_trailer *out)
{
    if (!buf || len < DYNO_FRAG_END_SIZE + DYNO_FRAG_TRAILER_SIZE)
        return DYNO_EINVAL;
    if (get32(buf) != 0)
        return DYNO_ECORRUPT;
    return dyno_frag_trailer_decode(buf + DYNO_FRAG_END_SIZE, len - DYNO_FRAG_END_SIZE, out);
}

/*
 * Parser states. Each state waits for exactly `need` bytes in buf, then acts on them.
 * In range mode the stripe unit is not known up front, so the first record's length is
 * taken as the unit (FIRST_LEN/FIRST_BODY); a record shorter than the unit must be the
 * last one, so after it only the end marker is accepted (END).
 */
enum {
    ST_HDR,
    ST_FIRST_LEN,  /* range mode: length of the first record, or the end marker */
    ST_FIRST_BODY, /* range mode: payload + CRC of the first record */
    ST_LEN,        /* length of the next record, or the end marker */
    ST_BODY,       /* payload + CRC */
    ST_END,        /* after a short (last) record: the end marker only */
    ST_TRAILER,
    ST_DONE,
    ST_FAILED
};

/* ---- writer ---- */

int dyno_frag_writer_init(struct dyno_frag_writer *w, const struct dyno_frag_hdr *h)
{
    w->records = 0;
    return dyno_frag_hdr_encode(h, w->hdr);
}

int dyno_frag_writer_record(struct dyno_frag_writer *w, const uint8_t *payload, size_t len,
                            const uint8_t *suf, struct dyno_frag_seg out[DYNO_FRAG_WRITER_SEGS])
{
    int n = 0;
    dyno_frag_rec_prefix((uint32_t)len, w->pre);
    if (suf)
        memcpy(w->suf, suf, sizeof(w->suf));
    else
        dyno_frag_rec_suffix(payload, len, w->suf);
    if (w->records == 0)
        out[n++] = (struct dyno_frag_seg){w->hdr, DYNO_FRAG_HDR_SIZE};
    out[n++] = (struct dyno_frag_seg){w->pre, sizeof(w->pre)};
    out[n++] = (struct dyno_frag_seg){payload, len};
    out[n++] = (struct dyno_frag_seg){w->suf, sizeof(w->suf)};
    w->records++;
    return n;
}

int dyno_frag_writer_end(struct dyno_frag_writer *w, uint64_t object_size, const uint8_t sha256[32],
                         struct dyno_frag_seg out[DYNO_FRAG_WRITER_SEGS])
{
    int n = 0;
    struct dyno_frag_trailer t = {.object_size = object_size, .records = w->records};
    memcpy(t.sha256, sha256, sizeof(t.sha256));
    memset(w->tail, 0, DYNO_FRAG_END_SIZE);
    dyno_frag_trailer_encode(&t, w->tail + DYNO_FRAG_END_SIZE);
    if (w->records == 0)
        out[n++] = (struct dyno_frag_seg){w->hdr, DYNO_FRAG_HDR_SIZE};
    out[n++] = (struct dyno_frag_seg){w->tail, sizeof(w->tail)};
    return n;
}

int dyno_frag_parser_init(struct dyno_frag_parser *p, bool with_header, uint64_t first_record,
                          uint32_t max_unit, const struct dyno_frag_parser_cbs *cbs, void *arg)
{
    if (!p)
        return DYNO_EINVAL;
    memset(p, 0, sizeof(*p));
    p->state = ST_FAILED;
    if (!cbs || !cbs->on_record || max_unit == 0 || max_unit > DYNO_FRAG_MAX_UNIT)
        return DYNO_EINVAL;
    if (with_header && first_record != 0)
        return DYNO_EINVAL;
    /* Large enough for a header or for the biggest record's payload and CRC, no more; in
     * streaming mode payloads never enter it. */
    size_t cap = (max_unit > DYNO_FRAG_HDR_SIZE && !cbs->on_payload ? max_unit : DYNO_FRAG_HDR_SIZE) + 8;
    p->buf = malloc(cap);
    if (!p->buf)
        return DYNO_ENOMEM;
    p->with_header = with_header;
    p->max_unit = max_unit;
    p->next_record = first_record;
    p->cbs = cbs;
    p->arg = arg;
    p->state = with_header ? ST_HDR : ST_FIRST_LEN;
    p->need = with_header ? DYNO_FRAG_HDR_SIZE : 4;
    return 0;
}

/* Acts on the complete unit of p->need bytes in p->buf; sets the next state and need. */
static int parser_step(struct dyno_frag_parser *p)
{
    int rc;

    switch (p->state) {
    case ST_HDR: {
        struct dyno_frag_hdr h;
        rc = dyno_frag_hdr_decode(p->buf, p->have, &h);
        if (rc)
            return DYNO_ECORRUPT;
        if (p->expect_key[0] && (strcmp(h.key, p->expect_key) != 0 || h.index != p->expect_index))
            return DYNO_ECORRUPT; /* some other fragment */
        if (p->cbs->on_header) {
            rc = p->cbs->on_header(p->arg, &h);
            if (rc)
                return rc;
        }
        /* A declared unit over the caller's limit means full records it must refuse:
         * refuse now. Otherwise the header's unit is the exact record length, and a
         * shorter record must be the last one. */
        if (h.unit > p->max_unit)
            return DYNO_ECORRUPT;
        p->max_unit = h.unit;
        p->state = ST_LEN;
        p->need = 4;
        return 0;
    }
    case ST_FIRST_LEN:
    case ST_LEN:
    case ST_END: {
        uint32_t v = get32(p->buf);
        if (v == 0) {
            p->state = ST_TRAILER;
            p->need = DYNO_FRAG_TRAILER_SIZE;
            return 0;
        }
        if (p->state == ST_END || v > p->max_unit)
            return DYNO_ECORRUPT;
        p->cur_len = v;
        p->state = p->state == ST_FIRST_LEN ? ST_FIRST_BODY : ST_BODY;
        /* Streaming mode: only the CRC goes to buf, the payload passes by (see feed). */
        p->need = p->cbs->on_payload ? 4 : (size_t)v + 4;
        p->crc = 0;
        p->pay_have = 0;
        return 0;
    }
    case ST_FIRST_BODY:
    case ST_BODY: {
        if (p->cbs->on_payload) {
            if (get32(p->buf) != p->crc)
                return DYNO_ECORRUPT;
        } else if (get32(p->buf + p->cur_len) != dyno_crc32c(0, p->buf, p->cur_len)) {
            return DYNO_ECORRUPT;
        }
        rc = p->cbs->on_record(p->arg, p->next_record, p->cbs->on_payload ? NULL : p->buf, p->cur_len);
        if (rc)
            return rc;
        p->next_record++;
        if (p->state == ST_FIRST_BODY)
            p->max_unit = p->cur_len;
        p->state = p->cur_len < p->max_unit ? ST_END : ST_LEN;
        p->need = 4;
        return 0;
    }
    case ST_TRAILER: {
        struct dyno_frag_trailer t;
        rc = dyno_frag_trailer_decode(p->buf, p->have, &t);
        if (rc)
            return DYNO_ECORRUPT;
        /* next_record is absolute in both modes, so it must equal the writer's count. */
        if (t.records != p->next_record)
            return DYNO_ECORRUPT;
        if (p->cbs->on_trailer) {
            rc = p->cbs->on_trailer(p->arg, &t);
            if (rc)
                return rc;
        }
        p->state = ST_DONE;
        p->need = 0;
        p->done = true;
        return 0;
    }
    default:
        return DYNO_EINVAL;
    }
}

void dyno_frag_parser_expect(struct dyno_frag_parser *p, const char *key, unsigned index)
{
    size_t n = key ? strlen(key) : 0;
    if (n > DYNO_KEY_LEN)
        n = DYNO_KEY_LEN;
    memcpy(p->expect_key, key, n);
    p->expect_key[n] = '\0';
    p->expect_index = index;
}

int dyno_frag_parser_feed(struct dyno_frag_parser *p, const uint8_t *data, size_t len)
{
    int rc = 0;

    if (!p || (!data && len > 0))
        return DYNO_EINVAL;
    if (p->state == ST_FAILED || !p->buf)
        return DYNO_EINVAL;
    while (len > 0) {
        if (p->state == ST_DONE) {
            rc = DYNO_ECORRUPT; /* nothing may follow the trailer */
            goto out;
        }
        if (p->cbs->on_payload && (p->state == ST_BODY || p->state == ST_FIRST_BODY) &&
            p->pay_have < p->cur_len) {
            /* Streaming mode: payload bytes go to the caller in place, CRC on the way. */
            size_t n = p->cur_len - p->pay_have;
            if (n > len)
                n = len;
            p->crc = dyno_crc32c(p->crc, data, n);
            rc = p->cbs->on_payload(p->arg, p->next_record, p->pay_have, data, n);
            if (rc)
                goto out;
            p->pay_have += n;
            data += n;
            len -= n;
            continue;
        }
        if (!dyno_fill(p->buf, &p->have, p->need, &data, &len))
            break;
        rc = parser_step(p);
        if (rc)
            goto out;
        p->have = 0;
    }
out:
    if (rc) {
        /* A failed parse stays failed: later feeds cannot resync a corrupt stream. */
        p->state = ST_FAILED;
        p->done = false;
    }
    return rc;
}

bool dyno_frag_parser_done(const struct dyno_frag_parser *p)
{
    return p && p->done;
}

void dyno_frag_parser_free(struct dyno_frag_parser *p)
{
    if (!p)
        return;
    free(p->buf);
    p->buf = NULL;
    p->state = ST_FAILED;
}

/* ---- readers of a stored fragment ---- */

/* Exactly len bytes at off: a short read is a fragment shorter than it says (corrupt). */
static int src_read_full(const struct dyno_frag_src *src, uint64_t off, uint8_t *buf, size_t len)
{
    size_t got = 0;
    int rc = src->read_at(src->arg, off, buf, len, &got);
    if (rc)
        return rc;
    return got == len ? 0 : DYNO_ECORRUPT;
}

int dyno_frag_read_ends(const struct dyno_frag_src *src, const char *key, unsigned index,
                        struct dyno_frag_ends *out)
{
    uint8_t hdr[DYNO_FRAG_HDR_SIZE], tail[DYNO_FRAG_END_SIZE + DYNO_FRAG_TRAILER_SIZE];
    memset(out, 0, sizeof(*out));
    if (src->size < DYNO_FRAG_HDR_SIZE + sizeof(tail))
        return DYNO_ECORRUPT;
    int io = src_read_full(src, 0, hdr, sizeof(hdr));
    if (io == 0 && dyno_frag_hdr_decode(hdr, sizeof(hdr), &out->hdr) == 0 && strcmp(out->hdr.key, key) == 0 &&
        out->hdr.index == index)
        out->hdr_ok = true;
    if (io == 0)
        io = src_read_full(src, src->size - sizeof(tail), tail, sizeof(tail));
    if (io && io != DYNO_ECORRUPT)
        return io;
    if (io == 0 && dyno_frag_end_decode(tail, sizeof(tail), &out->trailer) == 0)
        out->trailer_ok = true;
    if (!out->hdr_ok || !out->trailer_ok)
        return DYNO_ECORRUPT;
    /* The layout the two ends describe must be the file we have. */
    struct dyno_layout lay = {.size = out->trailer.object_size, .unit = out->hdr.unit, .k = out->hdr.k};
    if (dyno_layout_fragment_size(&lay) != src->size || dyno_layout_stripes(&lay) != out->trailer.records)
        return DYNO_ECORRUPT;
    return 0;
}

/* Verification only: the streamed payload is checked by the parser and dropped. */
static int verify_on_payload(void *arg, uint64_t s, size_t off, const uint8_t *p, size_t len)
{
    (void)arg, (void)s, (void)off, (void)p, (void)len;
    return 0;
}

static int verify_on_record(void *arg, uint64_t s, const uint8_t *payload, size_t len)
{
    (void)arg, (void)s, (void)payload, (void)len;
    return 0;
}

static const struct dyno_frag_parser_cbs verify_cbs = {
    .on_record = verify_on_record,
    .on_payload = verify_on_payload,
};

int dyno_frag_verify(const struct dyno_frag_src *src, const char *key, unsigned index, size_t chunk,
                     int (*pace)(void *arg, uint64_t n), void *arg, uint64_t *bytes)
{
    struct dyno_frag_parser p;
    uint64_t off = 0;
    *bytes = 0;
    if (chunk == 0)
        return DYNO_EINVAL;
    uint8_t *buf = malloc(chunk);
    if (!buf)
        return DYNO_ENOMEM;
    /* Streaming mode: the parser's own buffer stays header-sized whatever the unit. */
    int rc = dyno_frag_parser_init(&p, true, 0, DYNO_FRAG_MAX_UNIT, &verify_cbs, NULL);
    if (rc) {
        free(buf);
        return rc;
    }
    dyno_frag_parser_expect(&p, key, index);
    while (off < src->size) {
        size_t n = src->size - off < chunk ? (size_t)(src->size - off) : chunk, got = 0;
        rc = src->read_at(src->arg, off, buf, n, &got);
        if (rc)
            goto out;
        if (got == 0) {
            rc = DYNO_ECORRUPT; /* shorter than it said */
            goto out;
        }
        off += got;
        *bytes += got;
        rc = dyno_frag_parser_feed(&p, buf, got);
        if (rc) {
            rc = DYNO_ECORRUPT;
            goto out;
        }
        if (pace && (rc = pace(arg, got)) != 0)
            goto out;
    }
    rc = dyno_frag_parser_done(&p) ? 0 : DYNO_ECORRUPT;
out:
    dyno_frag_parser_free(&p);
    free(buf);
    return rc;
}

uint64_t dyno_layout_stripes(const struct dyno_layout *l)
{
    if (!l || l->k < 1 || l->unit == 0)
        return 0;
    uint64_t stripe = (uint64_t)l->k * l->unit;
    return l->size / stripe + (l->size % stripe != 0);
}

void dyno_layout_stripe_span(const struct dyno_layout *l, uint64_t s, uint64_t *start, uint64_t *len)
{
    uint64_t st = 0, ln = 0;

    if (s < dyno_layout_stripes(l)) {
        uint64_t stripe = (uint64_t)l->k * l->unit;
        /* s < stripes, so s * stripe < size: no overflow. */
        st = s * stripe;
        ln = l->size - st < stripe ? l->size - st : stripe;
    } else if (l) {
        st = l->size;
    }
    if (start)
        *start = st;
    if (len)
        *len = ln;
}

uint32_t dyno_layout_unit_len(const struct dyno_layout *l, uint64_t s)
{
    uint64_t start, len;

    dyno_layout_stripe_span(l, s, &start, &len);
    if (len == 0)
        return 0;
    return (uint32_t)((len + (uint64_t)l->k - 1) / (uint64_t)l->k);
}

uint64_t dyno_layout_record_offset(const struct dyno_layout *l, uint64_t s)
{
    return DYNO_FRAG_HDR_SIZE + s * ((uint64_t)l->unit + DYNO_FRAG_REC_OVERHEAD);
}

uint64_t dyno_layout_fragment_size(const struct dyno_layout *l)
{
    uint64_t n = dyno_layout_stripes(l);
    uint64_t size = DYNO_FRAG_HDR_SIZE + DYNO_FRAG_END_SIZE + DYNO_FRAG_TRAILER_SIZE;

    if (n > 0)
        size += (n - 1) * ((uint64_t)l->unit + DYNO_FRAG_REC_OVERHEAD) + dyno_layout_unit_len(l, n - 1) +
                DYNO_FRAG_REC_OVERHEAD;
    return size;
}
