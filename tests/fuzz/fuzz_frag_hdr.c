/*
 * Fuzzes the fragment header and trailer decoders (lib/frag.h) on arbitrary bytes.
 *
 * The input is a candidate header (a fragment file's first bytes). Each input is decoded
 * twice: as is, and with the CRC rewritten over its first 1020 bytes, so the fuzzer gets
 * past the checksum to the field checks without having to solve CRC32C. What is checked:
 *   - short input is DYNO_EINVAL, anything else 0 or DYNO_ECORRUPT;
 *   - an accepted header satisfies every check the header documents, re-encodes, and the
 *     encoding decodes to the same header; its bytes equal the input's up to the end of
 *     the name, and all 1024 bytes when the input's padding is zero (decode does not
 *     require zero padding, encode writes it);
 *   - the same for the trailer decoder on the first 64 bytes: an accepted trailer
 *     re-encodes to exactly the input bytes (decode requires the reserved field to be 0).
 */
#include <stdbool.h>
#include <string.h>

#include "dynostore/error.h"
#include "ec.h"
#include "frag.h"
#include "fuzz.h"
#include "hash.h"

static void check_hdr_fields(const struct dyno_frag_hdr *h)
{
    FUZZ_CHECK(h->version == DYNO_FRAG_VERSION);
    FUZZ_CHECK(h->k >= 1 && h->k <= DYNO_EC_MAX_K && h->m <= DYNO_EC_MAX_M);
    FUZZ_CHECK(h->index < h->k + h->m);
    FUZZ_CHECK(!h->replica || h->k == 1);
    FUZZ_CHECK(h->unit > 0 && h->unit <= DYNO_FRAG_MAX_UNIT);
    FUZZ_CHECK(dyno_valid_key(h->key));
    FUZZ_CHECK(dyno_valid_catalog(h->catalog));
    FUZZ_CHECK(dyno_valid_name(h->name));
}

static bool hdr_equal(const struct dyno_frag_hdr *a, const struct dyno_frag_hdr *b)
{
    return a->version == b->version && a->k == b->k && a->m == b->m && a->index == b->index &&
           a->replica == b->replica && a->unit == b->unit && strcmp(a->key, b->key) == 0 &&
           strcmp(a->catalog, b->catalog) == 0 && strcmp(a->name, b->name) == 0;
}

static void fuzz_hdr(const uint8_t *buf, size_t len)
{
    struct dyno_frag_hdr h, again;
    uint8_t enc[DYNO_FRAG_HDR_SIZE];

    int rc = dyno_frag_hdr_decode(buf, len, &h);
    if (len < DYNO_FRAG_HDR_SIZE) {
        FUZZ_CHECK(rc == DYNO_EINVAL);
        return;
    }
    FUZZ_CHECK(rc == 0 || rc == DYNO_ECORRUPT);
    if (rc != 0)
        return;
    check_hdr_fields(&h);
    FUZZ_CHECK(dyno_frag_hdr_encode(&h, enc) == 0);
    FUZZ_CHECK(dyno_frag_hdr_decode(enc, sizeof(enc), &again) == 0);
    FUZZ_CHECK(hdr_equal(&h, &again));

    /* an accepted header is exactly what the encoder writes, padding included */
    FUZZ_CHECK(memcmp(enc, buf, DYNO_FRAG_HDR_SIZE) == 0);
}

static void fuzz_trailer(const uint8_t *buf, size_t len)
{
    struct dyno_frag_trailer t;
    uint8_t enc[DYNO_FRAG_TRAILER_SIZE];

    int rc = dyno_frag_trailer_decode(buf, len, &t);
    if (len < DYNO_FRAG_TRAILER_SIZE) {
        FUZZ_CHECK(rc == DYNO_EINVAL);
        return;
    }
    FUZZ_CHECK(rc == 0 || rc == DYNO_ECORRUPT);
    if (rc != 0)
        return;
    FUZZ_CHECK(dyno_frag_trailer_encode(&t, enc) == 0);
    FUZZ_CHECK(memcmp(enc, buf, sizeof(enc)) == 0);
}

/* A copy of buf with a valid CRC32C at byte crc_at over bytes [0, crc_at). */
static uint8_t *resealed(const uint8_t *buf, size_t len, size_t crc_at)
{
    uint8_t *c = malloc(len);

    FUZZ_CHECK(c != NULL);
    memcpy(c, buf, len);
    uint32_t crc = dyno_crc32c(0, c, crc_at);
    for (int i = 0; i < 4; i++)
        c[crc_at + (size_t)i] = (uint8_t)(crc >> (8 * i));
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_hdr(data, size);
    fuzz_trailer(data, size);
    if (size >= DYNO_FRAG_HDR_SIZE) {
        uint8_t *c = resealed(data, size, DYNO_FRAG_HDR_SIZE - 4);
        fuzz_hdr(c, size);
        free(c);
    }
    if (size >= DYNO_FRAG_TRAILER_SIZE) {
        uint8_t *c = resealed(data, size, DYNO_FRAG_TRAILER_SIZE - 4);
        fuzz_trailer(c, size);
        free(c);
    }
    return 0;
}
