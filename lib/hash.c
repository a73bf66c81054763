/*
 * Digests: SHA-256 from OpenSSL's EVP interface, and hex. CRC32C (ISA-L) is in crc32c.c:
 * this file is part of the client library, which must not need ISA-L.
 */
#include "hash.h"

#include <stdlib.h>

#include <openssl/evp.h>

#include "dynostore/error.h"

struct dyno_sha256 {
    EVP_MD_CTX *ctx;
};

int dyno_sha256_new(struct dyno_sha256 **out)
{
    int rc = DYNO_ENOMEM;
    struct dyno_sha256 *h = calloc(1, sizeof(*h));

    *out = NULL;
    if (!h)
        goto out;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx)
        goto out;
    rc = dyno_sha256_reset(h);
    if (rc)
        goto out;
    *out = h;
    h = NULL;
out:
    dyno_sha256_free(h);
    return rc;
}

int dyno_sha256_reset(struct dyno_sha256 *h)
{
    if (!h)
        return DYNO_EINVAL;
    if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
        return DYNO_EINTERNAL;
    return 0;
}

int dyno_sha256_update(struct dyno_sha256 *h, const void *p, size_t n)
{
    if (!h || (!p && n))
        return DYNO_EINVAL;
    if (n == 0)
        return 0;
    if (EVP_DigestUpdate(h->ctx, p, n) != 1)
        return DYNO_EINTERNAL;
    return 0;
}

int dyno_sha256_final(struct dyno_sha256 *h, uint8_t digest[32])
{
    unsigned int len = 0;

    if (!h || !digest)
        return DYNO_EINVAL;
    if (EVP_DigestFinal_ex(h->ctx, digest, &len) != 1 || len != 32)
        return DYNO_EINTERNAL;
    return 0;
}

void dyno_sha256_free(struct dyno_sha256 *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

int dyno_sha256(const void *p, size_t n, uint8_t digest[32])
{
    unsigned int len = 0;

    if ((!p && n) || !digest)
        return DYNO_EINVAL;
    /* EVP_Digest wants a non-NULL pointer even for zero bytes. */
    if (EVP_Digest(n ? p : "", n, digest, &len, EVP_sha256(), NULL) != 1 || len != 32)
        return DYNO_EINTERNAL;
    return 0;
}

void dyno_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

int dyno_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int dyno_unhex(const char *in, uint8_t *out, size_t n)
{
    if (!in || (!out && n))
        return DYNO_EINVAL;
    /* Check everything first so a failed call leaves out untouched. */
    for (size_t i = 0; i < 2 * n; i++) {
        if (dyno_hexval(in[i]) < 0) /* also stops at a short string's NUL */
            return DYNO_EINVAL;
    }
    if (in[2 * n] != '\0')
        return DYNO_EINVAL;
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(dyno_hexval(in[2 * i]) << 4 | dyno_hexval(in[2 * i + 1]));
    return 0;
}
