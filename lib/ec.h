/*
 * Systematic Reed-Solomon erasure coding over GF(2^8) with a Cauchy matrix (ISA-L),
 * MDS for every k, m in range. Fragments 0..k-1 are the data units unchanged; k..k+m-1
 * are parity. A dyno_ec is immutable after dyno_ec_new and may be used by many threads
 * at once.
 */
#ifndef DYNO_EC_H
#define DYNO_EC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DYNO_EC_MAX_K 32
#define DYNO_EC_MAX_M 16

struct dyno_ec;

/* 1 <= k <= DYNO_EC_MAX_K, 0 <= m <= DYNO_EC_MAX_M, else DYNO_EINVAL. */
int dyno_ec_new(int k, int m, struct dyno_ec **out);
void dyno_ec_free(struct dyno_ec *ec);
int dyno_ec_k(const struct dyno_ec *ec);
int dyno_ec_m(const struct dyno_ec *ec);

/* Computes m parity units of len bytes from k data units of len bytes. */
int dyno_ec_encode(const struct dyno_ec *ec, size_t len, uint8_t *const *data, uint8_t *const *parity);

/*
 * Reconstructs missing fragments. frags has k+m buffers of len bytes; present[i] says
 * whether frags[i] holds good bytes. Every missing buffer (data and parity) is filled.
 * DYNO_EUNAVAIL when fewer than k are present. Allocates its decode tables per call.
 */
int dyno_ec_decode(const struct dyno_ec *ec, size_t len, const bool *present, uint8_t *const *frags);
#endif
