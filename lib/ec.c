/*
 * Systematic Reed-Solomon over GF(2^8) with ISA-L. The generator is the (k+m) x k matrix
 * of gf_gen_cauchy1_matrix: identity on top (data units pass through), a Cauchy block
 * below. Every k x k submatrix of it is invertible, so any k surviving fragments rebuild
 * the rest; that is why Cauchy and not ISA-L's Vandermonde generator, which is not MDS
 * for every k, m.
 */
#include "ec.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/erasure_code.h>

#include "dynostore/error.h"

#define EC_MAX_N (DYNO_EC_MAX_K + DYNO_EC_MAX_M)
/* ISA-L takes int lengths; big units are coded in slices of this many bytes. */
#define EC_SLICE ((size_t)1 << 30)

struct dyno_ec {
    int k, m;
    uint8_t *matrix;     /* (k+m) x k generator, row-major */
    uint8_t *enc_tables; /* ec_init_tables of the m parity rows: 32 * k * m bytes */
};

int dyno_ec_new(int k, int m, struct dyno_ec **out)
{
    int rc = DYNO_EINVAL;
    struct dyno_ec *ec = NULL;

    if (!out)
        return DYNO_EINVAL;
    *out = NULL;
    if (k < 1 || k > DYNO_EC_MAX_K || m < 0 || m > DYNO_EC_MAX_M)
        goto out;
    rc = DYNO_ENOMEM;
    ec = calloc(1, sizeof(*ec));
    if (!ec)
        goto out;
    ec->k = k;
    ec->m = m;
    ec->matrix = malloc((size_t)(k + m) * (size_t)k);
    /* +1 so that m == 0 never asks malloc for zero bytes. */
    ec->enc_tables = malloc(32u * (size_t)k * (size_t)m + 1);
    if (!ec->matrix || !ec->enc_tables)
        goto out;
    gf_gen_cauchy1_matrix(ec->matrix, k + m, k);
    if (m > 0)
        ec_init_tables(k, m, ec->matrix + (size_t)k * (size_t)k, ec->enc_tables);
    *out = ec;
    ec = NULL;
    rc = 0;
out:
    dyno_ec_free(ec);
    return rc;
}

void dyno_ec_free(struct dyno_ec *ec)
{
    if (!ec)
        return;
    free(ec->matrix);
    free(ec->enc_tables);
    free(ec);
}

int dyno_ec_k(const struct dyno_ec *ec)
{
    return ec->k;
}

int dyno_ec_m(const struct dyno_ec *ec)
{
    return ec->m;
}

/*
 * Runs ec_encode_data over len bytes in slices that fit ISA-L's int length. ISA-L only
 * reads tables and the source pointer arrays; the casts drop const it does not declare.
 */
static void encode_sliced(size_t len, int k, int rows, const uint8_t *tables, uint8_t *const *src,
                          uint8_t *const *dst)
{
    uint8_t *s[EC_MAX_N];
    uint8_t *d[EC_MAX_N];

    for (size_t off = 0; off < len; off += EC_SLICE) {
        size_t n = len - off < EC_SLICE ? len - off : EC_SLICE;
        for (int i = 0; i < k; i++)
            s[i] = src[i] + off;
        for (int i = 0; i < rows; i++)
            d[i] = dst[i] + off;
        ec_encode_data((int)n, k, rows, (unsigned char *)(uintptr_t)tables, s, d);
    }
}

int dyno_ec_encode(const struct dyno_ec *ec, size_t len, uint8_t *const *data, uint8_t *const *parity)
{
    if (!ec || (len > 0 && (!data || (ec->m > 0 && !parity))))
        return DYNO_EINVAL;
    if (ec->m == 0 || len == 0)
        return 0;
    encode_sliced(len, ec->k, ec->m, ec->enc_tables, data, parity);
    return 0;
}

/*
 * Decoding: take the first k present fragments as sources. Their generator rows form a
 * k x k matrix B with B * data = sources, so data = B^-1 * sources, and any fragment r
 * (data or parity) is G[r] * B^-1 * sources. One ec_encode_data pass with those rows as
 * coefficients regenerates every missing fragment at once.
 */
int dyno_ec_decode(const struct dyno_ec *ec, size_t len, const bool *present, uint8_t *const *frags)
{
    int rc = DYNO_EINVAL;
    uint8_t *b = NULL, *binv = NULL, *coef = NULL, *tables = NULL;
    uint8_t *src[EC_MAX_N];
    uint8_t *dst[EC_MAX_N];
    int src_row[EC_MAX_N];
    int miss_row[EC_MAX_N];
    int nsrc = 0, nmiss = 0, k, n;

    if (!ec || !present || !frags)
        goto out;
    k = ec->k;
    n = ec->k + ec->m;
    for (int i = 0; i < n; i++) {
        if (present[i]) {
            if (nsrc < k) {
                src_row[nsrc] = i;
                src[nsrc++] = frags[i];
            }
        } else {
            miss_row[nmiss] = i;
            dst[nmiss++] = frags[i];
        }
    }
    if (nsrc < k) {
        rc = DYNO_EUNAVAIL;
        goto out;
    }
    rc = 0;
    if (nmiss == 0 || len == 0)
        goto out;

    rc = DYNO_ENOMEM;
    b = malloc((size_t)k * (size_t)k);
    binv = malloc((size_t)k * (size_t)k);
    coef = malloc((size_t)nmiss * (size_t)k);
    tables = malloc(32u * (size_t)k * (size_t)nmiss);
    if (!b || !binv || !coef || !tables)
        goto out;

    for (int i = 0; i < k; i++)
        memcpy(b + (size_t)i * (size_t)k, ec->matrix + (size_t)src_row[i] * (size_t)k, (size_t)k);
    if (gf_invert_matrix(b, binv, k) != 0) {
        /* Cannot happen with a Cauchy generator: it would be a bug, not bad input. */
        rc = DYNO_EINTERNAL;
        goto out;
    }
    for (int r = 0; r < nmiss; r++) {
        const uint8_t *g = ec->matrix + (size_t)miss_row[r] * (size_t)k;
        for (int j = 0; j < k; j++) {
            uint8_t acc = 0;
            for (int t = 0; t < k; t++)
                acc ^= gf_mul(g[t], binv[(size_t)t * (size_t)k + (size_t)j]);
            coef[(size_t)r * (size_t)k + (size_t)j] = acc;
        }
    }
    ec_init_tables(k, nmiss, coef, tables);
    encode_sliced(len, k, nmiss, tables, src, dst);
    rc = 0;
out:
    free(tables);
    free(coef);
    free(binv);
    free(b);
    return rc;
}
