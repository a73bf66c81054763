/*
 * Sealing S3 secret access keys (docs/s3.md "Access keys"). SigV4 needs the server to know
 * each secret (it is an HMAC key), so dyno-auth cannot keep a one-way hash of it as it does
 * for passwords: it keeps it encrypted with AES-256-GCM under a master key that lives in a
 * file OUTSIDE the database (s3_master_key_file). A stolen database without that file gives
 * no secret; the access key id is the additional authenticated data, so a sealed secret
 * moved to another key's row does not open.
 *
 * Sealed form: nonce (12 random bytes, fresh for every seal) || ciphertext || tag (16).
 * Pure functions over caller buffers, thread-safe (OpenSSL EVP, one context per call).
 */
#ifndef DYNO_AU_SEAL_H
#define DYNO_AU_SEAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AU_MASTER_LEN 32 /* AES-256 */
#define AU_SEAL_NONCE 12
#define AU_SEAL_TAG 16
#define AU_SEAL_OVERHEAD (AU_SEAL_NONCE + AU_SEAL_TAG)
#define AU_SEAL_PLAIN_MAX 256 /* bytes of a sealed value (a secret is 40) */

/*
 * Loads the master key from path: 64 hex characters (a trailing newline is ignored). When the
 * file does not exist and create is true, a new random key is written there (mode 0600) and
 * *created is set. 0; DYNO_ENOTFOUND (missing, !create); DYNO_ECORRUPT (not 64 hex
 * characters); DYNO_EIO. key is wiped on failure.
 */
int au_seal_master_load(const char *path, bool create, uint8_t key[AU_MASTER_LEN], bool *created);

/* Seals pt[0..n) (n <= AU_SEAL_PLAIN_MAX) with aad (a NUL-terminated string) into out (cap
 * >= n + AU_SEAL_OVERHEAD); *outlen gets n + AU_SEAL_OVERHEAD. 0, DYNO_EINVAL, DYNO_EINTERNAL. */
int au_seal(const uint8_t key[AU_MASTER_LEN], const char *aad, const uint8_t *pt, size_t n, uint8_t *out,
            size_t cap, size_t *outlen);

/* Opens in[0..n) sealed by au_seal with the same key and aad into pt (cap bytes; the text is
 * n - AU_SEAL_OVERHEAD bytes, *ptlen). DYNO_ECORRUPT when the key, the aad or any byte differs
 * (pt is wiped then), DYNO_EINVAL for a size that cannot be a sealed value. */
int au_seal_open(const uint8_t key[AU_MASTER_LEN], const char *aad, const uint8_t *in, size_t n, uint8_t *pt,
                 size_t cap, size_t *ptlen);
#endif
