/*
 * The certificates of `dynostore up --tls` (OpenSSL 3): a local CA and one server
 * certificate for 127.0.0.1 / localhost, used by the broker's listener and the HTTPS
 * gateway; clients verify with DIR/tls/ca.crt. Made once, kept across restarts.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cli.h"

#define TLS_DAYS 3650

static EVP_PKEY *new_key(void)
{
    return EVP_EC_gen("P-256");
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return -1;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* A certificate for key, named cn, signed by (issuer, issuer_key) or self-signed. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, bool ca)
{
    X509 *c = X509_new();
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    if (!c || RAND_bytes(serial, sizeof(serial)) != 1)
        goto fail;
    serial[0] &= 0x7f; /* positive */
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c)))
        goto fail;
    if (!X509_set_version(c, 2) || !X509_gmtime_adj(X509_getm_notBefore(c), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(c), 86400L * TLS_DAYS) || !X509_set_pubkey(c, key))
        goto fail;
    X509_NAME *name = X509_get_subject_name(c);
    if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"DynoStore", -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0))
        goto fail;
    X509 *iss = issuer ? issuer : c;
    if (!X509_set_issuer_name(c, X509_get_subject_name(iss)))
        goto fail;
    if (ca) {
        if (add_ext(c, iss, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
            add_ext(c, iss, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
            add_ext(c, iss, NID_subject_key_identifier, "hash") < 0)
            goto fail;
    } else {
        if (add_ext(c, iss, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
            add_ext(c, iss, NID_key_usage, "critical,digitalSignature,keyEncipherment") < 0 ||
            add_ext(c, iss, NID_ext_key_usage, "serverAuth") < 0 ||
            add_ext(c, iss, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost") < 0 ||
            add_ext(c, iss, NID_authority_key_identifier, "keyid:always") < 0)
            goto fail;
    }
    if (!X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256()))
        goto fail;
    BN_free(bn);
    return c;
fail:
    BN_free(bn);
    X509_free(c);
    return NULL;
}

static FILE *open_mode(const char *path, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return NULL;
    fchmod(fd, mode);
    FILE *f = fdopen(fd, "w");
    if (!f)
        close(fd);
    return f;
}

static int save_key(const char *path, EVP_PKEY *k)
{
    FILE *f = open_mode(path, 0600);
    if (!f)
        return -1;
    int ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int save_cert(const char *path, X509 *c)
{
    FILE *f = open_mode(path, 0644);
    if (!f)
        return -1;
    int ok = PEM_write_X509(f, c);
    return fclose(f) == 0 && ok ? 0 : -1;
}

int cli_up_tls(const char *dir)
{
    char ca_crt[4200], ca_key[4200], srv_crt[4200], srv_key[4200];
    snprintf(ca_crt, sizeof(ca_crt), "%s/tls/ca.crt", dir);
    snprintf(ca_key, sizeof(ca_key), "%s/tls/ca.key", dir);
    snprintf(srv_crt, sizeof(srv_crt), "%s/tls/server.crt", dir);
    snprintf(srv_key, sizeof(srv_key), "%s/tls/server.key", dir);
    if (access(ca_crt, R_OK) == 0 && access(srv_crt, R_OK) == 0 && access(srv_key, R_OK) == 0)
        return CLI_OK;
    int ec = CLI_FAIL;
    EVP_PKEY *cak = new_key(), *sk = new_key();
    X509 *cac = NULL, *sc = NULL;
    if (!cak || !sk)
        goto out;
    cac = make_cert(cak, "DynoStore local CA", NULL, NULL, true);
    if (!cac)
        goto out;
    sc = make_cert(sk, "127.0.0.1", cac, cak, false);
    if (!sc)
        goto out;
    if (save_key(ca_key, cak) < 0 || save_cert(ca_crt, cac) < 0 || save_key(srv_key, sk) < 0 ||
        save_cert(srv_crt, sc) < 0) {
        ec = cli_err("up: cannot write the certificates in %s/tls: %s", dir, strerror(errno));
        goto out;
    }
    ec = CLI_OK;
out:
    if (ec != CLI_OK && (!cak || !sk || !cac || !sc))
        cli_err("up: cannot make the TLS certificates (OpenSSL)");
    X509_free(cac);
    X509_free(sc);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(sk);
    return ec;
}
