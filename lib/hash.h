/*
 * Checksums and digests: CRC32C (Castagnoli, ISA-L's crc32_iscsi) for fragment units,
 * SHA-256 (OpenSSL EVP) for whole objects.
 */
#ifndef DYNO_HASH_H
#define DYNO_HASH_H
#include <stddef.h>
#include <stdint.h>

/* CRC32C of buf; chain calls by passing the previous result as crc (start with 0).
 * Defined in crc32c.c, which is in dyno_core only (not in libdynostore: it needs ISA-L).
 * dyno_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t dyno_crc32c(uint32_t crc, const void *buf, size_t len);

struct dyno_sha256; /* opaque */
int dyno_sha256_new(struct dyno_sha256 **out);
int dyno_sha256_update(struct dyno_sha256 *h, const void *p, size_t n);
/* Writes 32 bytes to digest; the context may then be reset with dyno_sha256_reset. */
int dyno_sha256_final(struct dyno_sha256 *h, uint8_t digest[32]);
int dyno_sha256_reset(struct dyno_sha256 *h);
void dyno_sha256_free(struct dyno_sha256 *h);
/* One-shot. */
int dyno_sha256(const void *p, size_t n, uint8_t digest[32]);
/* Lowercase hex of n bytes into out (2n+1 bytes). */
void dyno_hex(const uint8_t *in, size_t n, char *out);
/* The value of one hex digit (either case), or -1. */
int dyno_hexval(char c);
/* Parses exactly 2n hex chars (either case) into out; DYNO_EINVAL otherwise, including
 * when in is longer than 2n chars. out is untouched on failure. */
int dyno_unhex(const char *in, uint8_t *out, size_t n);
#endif
