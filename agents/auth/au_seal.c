/* AES-256-GCM sealing of S3 secrets under the master key (au_seal.h). */
#include "au_seal.h"

#include <dynostore/error.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static int seal__hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int au_seal_master_load(const char *path, bool create, uint8_t key[AU_MASTER_LEN], bool *created)
{
    static const char digits[] = "0123456789abcdef";
    char *text = NULL;
    size_t len = 0;
    if (created)
        *created = false;
    int rc = dyno_read_file(path, 4 * AU_MASTER_LEN, &text, &len);
    if (rc == DYNO_ENOTFOUND && create) {
        char hex[2 * AU_MASTER_LEN + 1];
        if (RAND_bytes(key, AU_MASTER_LEN) != 1)
            return DYNO_EINTERNAL;
        for (size_t i = 0; i < AU_MASTER_LEN; i++) {
            hex[2 * i] = digits[key[i] >> 4];
            hex[2 * i + 1] = digits[key[i] & 15];
        }
        hex[2 * AU_MASTER_LEN] = '\n';
        rc = dyno_write_file(path, hex, sizeof(hex), 0600);
        OPENSSL_cleanse(hex, sizeof(hex));
        if (rc != 0) {
            OPENSSL_cleanse(key, AU_MASTER_LEN);
            return rc;
        }
        if (created)
            *created = true;
        return 0;
    }
    if (rc != 0)
        return rc == DYNO_ETOOBIG ? DYNO_ECORRUPT : rc;
    rc = len == 2 * AU_MASTER_LEN ? 0 : DYNO_ECORRUPT;
    for (size_t i = 0; rc == 0 && i < AU_MASTER_LEN; i++) {
        int hi = seal__hex(text[2 * i]), lo = seal__hex(text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            rc = DYNO_ECORRUPT;
        else
            key[i] = (uint8_t)(hi << 4 | lo);
    }
    OPENSSL_cleanse(text, len);
    free(text);
    if (rc != 0)
        OPENSSL_cleanse(key, AU_MASTER_LEN);
    return rc;
}

int au_seal(const uint8_t key[AU_MASTER_LEN], const char *aad, const uint8_t *pt, size_t n, uint8_t *out,
            size_t cap, size_t *outlen)
{
    if (n > AU_SEAL_PLAIN_MAX || cap < n + AU_SEAL_OVERHEAD || !aad)
        return DYNO_EINVAL;
    /* A random 96-bit nonce per seal: far below the 2^32 seals under one key where GCM's
     * nonce collisions would matter (keys are rate-limited per user). */
    if (RAND_bytes(out, AU_SEAL_NONCE) != 1)
        return DYNO_EINTERNAL;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0, rc = DYNO_EINTERNAL;
    uint8_t *ct = out + AU_SEAL_NONCE;
    if (c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, AU_SEAL_NONCE, NULL) == 1 &&
        EVP_EncryptInit_ex(c, NULL, NULL, key, out) == 1 &&
        EVP_EncryptUpdate(c, NULL, &len, (const uint8_t *)aad, (int)strlen(aad)) == 1 &&
        EVP_EncryptUpdate(c, ct, &len, pt, (int)n) == 1 && EVP_EncryptFinal_ex(c, ct + len, &fin) == 1 &&
        (size_t)(len + fin) == n && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, AU_SEAL_TAG, ct + n) == 1) {
        *outlen = n + AU_SEAL_OVERHEAD;
        rc = 0;
    }
    EVP_CIPHER_CTX_free(c);
    if (rc != 0)
        OPENSSL_cleanse(out, cap);
    return rc;
}

int au_seal_open(const uint8_t key[AU_MASTER_LEN], const char *aad, const uint8_t *in, size_t n, uint8_t *pt,
                 size_t cap, size_t *ptlen)
{
    if (n < AU_SEAL_OVERHEAD || n - AU_SEAL_OVERHEAD > AU_SEAL_PLAIN_MAX || cap < n - AU_SEAL_OVERHEAD ||
        !aad)
        return DYNO_EINVAL;
    size_t m = n - AU_SEAL_OVERHEAD;
    uint8_t tag[AU_SEAL_TAG];
    memcpy(tag, in + AU_SEAL_NONCE + m, AU_SEAL_TAG);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0, rc = DYNO_EINTERNAL;
    if (c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, AU_SEAL_NONCE, NULL) == 1 &&
        EVP_DecryptInit_ex(c, NULL, NULL, key, in) == 1 &&
        EVP_DecryptUpdate(c, NULL, &len, (const uint8_t *)aad, (int)strlen(aad)) == 1 &&
        EVP_DecryptUpdate(c, pt, &len, in + AU_SEAL_NONCE, (int)m) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, AU_SEAL_TAG, tag) == 1) {
        /* The tag check is here: any changed byte, another key or another aad fails. */
        rc = EVP_DecryptFinal_ex(c, pt + len, &fin) == 1 && (size_t)(len + fin) == m ? 0 : DYNO_ECORRUPT;
    }
    EVP_CIPHER_CTX_free(c);
    if (rc != 0) {
        OPENSSL_cleanse(pt, cap);
        return rc;
    }
    *ptlen = m;
    return 0;
}
