/*
 * The self-describing fragment format and the stripe layout of an object.
 *
 * A fragment file (and the body of PUT/GET /v1/fragments/<id>) is:
 *
 *   header   DYNO_FRAG_HDR_SIZE bytes, little-endian:
 *              0  "DYNOFRAG"            8  u16 version (1)   10 u8 k   11 u8 m
 *             12  u8 index             13  u8 flags (bit 0: replica)
 *             14  u16 catalog_len      16  u32 unit         20 u16 name_len   22 u16 0
 *             24  key, 32 ASCII hex    56  catalog bytes, then name bytes, zero padding
 *           1020  u32 CRC32C of bytes 0..1019
 *   records  one per stripe s = 0, 1, ...: u32 len (1..unit), len payload bytes,
 *            u32 CRC32C(payload)
 *   end      u32 0
 *   trailer  DYNO_FRAG_TRAILER_SIZE bytes:
 *              0  "DYNOTAIL"   8 u64 object_size   16 sha256[32] of the whole object
 *             48  u64 record count   56 u32 0   60 u32 CRC32C of bytes 0..59
 *
 * The object's SHA-256 and size are known only when a streaming put ends, so they live in
 * the trailer. Every record but the last has len == unit, so record s starts at
 * DYNO_FRAG_HDR_SIZE + s * (unit + 8): a reader can fetch any stripe with a byte Range.
 *
 * Layout of an object of size S with k data fragments and stripe unit u: stripe s covers
 * object bytes [s*k*u, min(S, (s+1)*k*u)); its unit length is ceil(stripe_bytes / k); data
 * fragment i of the stripe holds the i-th unit_len slice of it, zero-padded. Replicated
 * small objects use k = 1 with the replica flag: every fragment holds the whole object.
 */
#ifndef DYNO_FRAG_H
#define DYNO_FRAG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "names.h"

#define DYNO_FRAG_HDR_SIZE 1024
#define DYNO_FRAG_TRAILER_SIZE 64
#define DYNO_FRAG_REC_OVERHEAD 8 /* u32 len + u32 crc */
#define DYNO_FRAG_END_SIZE 4
#define DYNO_FRAG_VERSION 1
#define DYNO_FRAG_MAX_UNIT (16u * 1024 * 1024)

struct dyno_frag_hdr {
    uint16_t version;
    uint8_t k, m, index;
    bool replica;
    uint32_t unit;
    char key[DYNO_KEY_LEN + 1];
    char catalog[DYNO_CATALOG_MAX + 1];
    char name[DYNO_NAME_MAX + 1];
};

struct dyno_frag_trailer {
    uint64_t object_size;
    uint8_t sha256[32];
    uint64_t records;
};

/* Encodes h (validated: key, catalog, name, 1 <= k <= DYNO_EC_MAX_K, m <= DYNO_EC_MAX_M,
 * index < k+m, replica only with k = 1, 0 < unit <= MAX_UNIT; DYNO_EINVAL otherwise).
 * h->version is ignored: DYNO_FRAG_VERSION is written. Decode applies the same checks and
 * also refuses unknown flag bits and a non-zero reserved field. */
int dyno_frag_hdr_encode(const struct dyno_frag_hdr *h, uint8_t out[DYNO_FRAG_HDR_SIZE]);
/* Decodes and validates a header; DYNO_ECORRUPT for bad magic/CRC/lengths, DYNO_EINVAL if
 * len < DYNO_FRAG_HDR_SIZE. Safe on hostile input. */
int dyno_frag_hdr_decode(const uint8_t *buf, size_t len, struct dyno_frag_hdr *out);
int dyno_frag_trailer_encode(const struct dyno_frag_trailer *t, uint8_t out[DYNO_FRAG_TRAILER_SIZE]);
int dyno_frag_trailer_decode(const uint8_t *buf, size_t len, struct dyno_frag_trailer *out);
/* Record framing: 4-byte length prefix and 4-byte CRC32C suffix of payload. */
void dyno_frag_rec_prefix(uint32_t len, uint8_t out[4]);
void dyno_frag_rec_suffix(const uint8_t *payload, size_t len, uint8_t out[4]);
/* Checks one whole record of len bytes (prefix, payload, suffix) read from storage: the
 * prefix says len - 8 and the CRC matches. 0 or DYNO_ECORRUPT. */
int dyno_frag_rec_check(const uint8_t *rec, size_t len);
/* Decodes the end marker and the trailer after it (DYNO_FRAG_END_SIZE + TRAILER_SIZE bytes).
 * 0, DYNO_ECORRUPT (marker not 0, or the trailer's own checks), DYNO_EINVAL (too short). */
int dyno_frag_end_decode(const uint8_t *buf, size_t len, struct dyno_frag_trailer *out);

/*
 * Writer: the bytes of a fragment as borrowed segments, so that a payload goes to the
 * network without a copy. The writer holds the header, the framing of the current record
 * and the end marker with the trailer; the payload stays the caller's until the segments
 * are sent. What it writes, dyno_frag_parser reads.
 */
struct dyno_frag_seg {
    const uint8_t *p;
    size_t len;
};
#define DYNO_FRAG_WRITER_SEGS 4 /* most segments one call returns: header, prefix, payload, suffix */
struct dyno_frag_writer {
    uint8_t hdr[DYNO_FRAG_HDR_SIZE];
    uint8_t pre[4], suf[4];
    uint8_t tail[DYNO_FRAG_END_SIZE + DYNO_FRAG_TRAILER_SIZE];
    uint64_t records; /* records written so far */
};
/* Encodes h (as dyno_frag_hdr_encode) for a new fragment. 0 or DYNO_EINVAL. */
int dyno_frag_writer_init(struct dyno_frag_writer *w, const struct dyno_frag_hdr *h);
/* The segments of the next record (the header first, for the first one) into out; payload
 * is borrowed; suf is its precomputed CRC suffix or NULL. Returns the segment count. The
 * previous call's segments are invalid from here. */
int dyno_frag_writer_record(struct dyno_frag_writer *w, const uint8_t *payload, size_t len,
                            const uint8_t *suf, struct dyno_frag_seg out[DYNO_FRAG_WRITER_SEGS]);
/* The end marker and trailer (object_size and sha256 of the object; the record count is the
 * writer's), after the header when no record was written. Returns the segment count. */
int dyno_frag_writer_end(struct dyno_frag_writer *w, uint64_t object_size, const uint8_t sha256[32],
                         struct dyno_frag_seg out[DYNO_FRAG_WRITER_SEGS]);

/*
 * Incremental, push-style parser of a fragment stream (or of a byte range of one that
 * starts at a record boundary). It copies each record into its own buffer, checks the CRC
 * and only then hands the payload to on_record. Any callback returning non-zero stops the
 * parse and that value is returned by feed.
 *
 * Streaming mode (on_payload set): payload bytes are not copied. They are handed to
 * on_payload as they arrive, in the caller's own buffers, while the CRC is computed on the
 * way; on_record then follows with payload NULL once the record's CRC matched. Bytes seen
 * by on_payload are NOT verified until that on_record: a consumer must hold them back (or
 * drop them) until then. The parser's own buffer is then only header-sized.
 */
struct dyno_frag_parser_cbs {
    int (*on_header)(void *arg, const struct dyno_frag_hdr *h); /* may be NULL */
    int (*on_record)(void *arg, uint64_t s, const uint8_t *payload, size_t len);
    int (*on_trailer)(void *arg, const struct dyno_frag_trailer *t); /* may be NULL */
    /* may be NULL: streaming mode, see above. off is the offset of p in record s. */
    int (*on_payload)(void *arg, uint64_t s, size_t off, const uint8_t *p, size_t len);
};

struct dyno_frag_parser {
    /* private */
    int state;
    char expect_key[DYNO_KEY_LEN + 1]; /* "" : any fragment */
    unsigned expect_index;
    bool with_header;
    uint32_t max_unit;
    uint64_t next_record;
    uint8_t *buf; /* max(max_unit, HDR_SIZE) + 8 bytes */
    size_t have, need;
    uint32_t cur_len;
    uint32_t crc;    /* streaming mode: CRC32C of the payload bytes seen so far */
    size_t pay_have; /* streaming mode: payload bytes of the current record seen */
    const struct dyno_frag_parser_cbs *cbs;
    void *arg;
    bool done;
};

/* with_header: the stream begins with the header; else it begins at record first_record.
 * Records longer than max_unit are DYNO_ECORRUPT (so is a header whose unit exceeds it).
 * Only the last record may be shorter than the unit: the header's unit, or in range mode
 * the first record's length. buf holds max(max_unit, HDR_SIZE) + 8 bytes, whatever the
 * input. DYNO_EINVAL for max_unit 0 or over DYNO_FRAG_MAX_UNIT, or no on_record. */
int dyno_frag_parser_init(struct dyno_frag_parser *p, bool with_header, uint64_t first_record,
                          uint32_t max_unit, const struct dyno_frag_parser_cbs *cbs, void *arg);
/* The header must name fragment index of key (a store or a container answering with some
 * other fragment is corruption): DYNO_ECORRUPT otherwise, before on_header runs. Call after
 * init, before the first feed. */
void dyno_frag_parser_expect(struct dyno_frag_parser *p, const char *key, unsigned index);
/* 0, DYNO_ECORRUPT (bad CRC, bad framing, data after the trailer) or a callback's value. */
int dyno_frag_parser_feed(struct dyno_frag_parser *p, const uint8_t *data, size_t len);
/* True once the trailer has been parsed and verified. */
bool dyno_frag_parser_done(const struct dyno_frag_parser *p);
void dyno_frag_parser_free(struct dyno_frag_parser *p);

/*
 * Readers of a stored fragment (a file, a container's store) through any random-access
 * source: the scrubber and the fragment listing use them, and they parse with the same
 * parser as the gateway's stripe reader, so the format is read in one place.
 */
struct dyno_frag_src {
    /* Up to len bytes at off into buf, *got the count (less only at the end). 0 or an
     * error, returned as it is. */
    int (*read_at)(void *arg, uint64_t off, uint8_t *buf, size_t len, size_t *got);
    void *arg;
    uint64_t size; /* bytes of the fragment */
};
/* What the two ends of a fragment say. */
struct dyno_frag_ends {
    bool hdr_ok;     /* hdr decoded (CRC, fields) and names key.index */
    bool trailer_ok; /* the end marker and trailer decoded */
    struct dyno_frag_hdr hdr;
    struct dyno_frag_trailer trailer;
};
/* Reads the header and the end marker with the trailer of fragment index of key and checks
 * them: their CRCs, that the header names the fragment, and that the size and the record
 * count are those of the object's layout. 0 when all holds; DYNO_ECORRUPT when anything
 * does not (out says which ends decoded); read_at's error. */
int dyno_frag_read_ends(const struct dyno_frag_src *src, const char *key, unsigned index,
                        struct dyno_frag_ends *out);
/* Reads the whole fragment through dyno_frag_parser (streaming: a chunk-sized buffer, no
 * record copied): the header naming index of key, every record's length and CRC, the
 * framing, the trailer, and that nothing follows. chunk bytes a read; after each, pace (may
 * be NULL) gets the bytes just read and may stop the read with a non-zero value, which is
 * returned. *bytes: bytes read. 0, DYNO_ECORRUPT, DYNO_ENOMEM or read_at's error. */
int dyno_frag_verify(const struct dyno_frag_src *src, const char *key, unsigned index, size_t chunk,
                     int (*pace)(void *arg, uint64_t n), void *arg, uint64_t *bytes);

/* Stripe layout of one object (k = 1 for replicas). */
struct dyno_layout {
    uint64_t size;
    uint32_t unit;
    int k;
};
uint64_t dyno_layout_stripes(const struct dyno_layout *l);
/* Payload length of record s in every fragment (0 if s is past the end). */
uint32_t dyno_layout_unit_len(const struct dyno_layout *l, uint64_t s);
/* Object bytes covered by stripe s. */
void dyno_layout_stripe_span(const struct dyno_layout *l, uint64_t s, uint64_t *start, uint64_t *len);
/* Byte offset of record s inside a fragment file. */
uint64_t dyno_layout_record_offset(const struct dyno_layout *l, uint64_t s);
/* Total bytes of one fragment file: header, records, end marker, trailer. */
uint64_t dyno_layout_fragment_size(const struct dyno_layout *l);
#endif
