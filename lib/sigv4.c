/*
 * AWS Signature Version 4 verification (sigv4.h). Follows AWS's published rules for S3:
 * the canonical URI is the path's segments decoded and encoded again with UriEncode (S3 does
 * not normalize or double-encode), the canonical query every parameter encoded and sorted,
 * header values trimmed with inner runs of spaces collapsed.
 */
#define _DEFAULT_SOURCE /* timegm */
#include "sigv4.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "dynostore/error.h"
#include "hash.h"
#include "rest.h"

#define SIGV4_ALGO "AWS4-HMAC-SHA256"
#define SIGV4_QPARAMS_MAX 64 /* query parameters of one request */
#define SIGV4_EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Sets the S3 error (code, status) and the message; returns rc. */
static int sigv4__failn(int rc, const char **code, unsigned *status, const char *c, unsigned st, char *msg,
                        size_t cap, const char *text)
{
    *code = c;
    *status = st;
    snprintf(msg, cap, "%s", text);
    return rc;
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

int sigv4_uri_encode(const char *s, size_t n, bool encode_slash, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (c == '/' && !encode_slash)) {
            if (o + 1 >= cap)
                return DYNO_ETOOBIG;
            out[o++] = (char)c;
        } else {
            if (o + 3 >= cap)
                return DYNO_ETOOBIG;
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (o >= cap)
        return DYNO_ETOOBIG;
    out[o] = '\0';
    return 0;
}

/* Percent-decodes s[0..n) into out (cap bytes); '+' stays '+' (S3 reads it literally in
 * paths; SDKs send a space in a query as %20). Returns the length, or -1 on a bad escape,
 * an escaped NUL or no room. */
static long pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = dyno_hexval(s[i + 1]), lo = dyno_hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            if (c == '\0')
                return -1;
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

/* ---- appending to a bounded buffer ---- */
struct sbuf {
    char *p;
    size_t len, cap;
    bool over;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->over || b->len + n >= b->cap) {
        b->over = true;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* ---- the query string ---- */
struct qparam {
    char *name, *value; /* encoded again (canonical form) */
};

static int qparam_cmp(const void *a, const void *b)
{
    const struct qparam *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* Finds the raw value of parameter name (exact, case-sensitive) in query, decoded into out.
 * 0, DYNO_ENOTFOUND, DYNO_EINVAL. */
static int query_get(const char *query, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        char k[128];
        if (klen < sizeof(k) && pct_decode(p, klen, k, sizeof(k)) == (long)nl && strcmp(k, name) == 0) {
            if (!eq) {
                if (cap == 0)
                    return DYNO_EINVAL;
                out[0] = '\0';
                return 0;
            }
            return pct_decode(eq + 1, len - klen - 1, out, cap) < 0 ? DYNO_EINVAL : 0;
        }
        p = amp ? amp + 1 : NULL;
    }
    return DYNO_ENOTFOUND;
}

/* The canonical query string: every parameter but skip (NULL: none), decoded, encoded with
 * UriEncode, sorted by name then value. */
static int canonical_query(const char *query, const char *skip, struct sbuf *out)
{
    struct qparam ps[SIGV4_QPARAMS_MAX];
    size_t n = 0;
    int rc = 0;
    const char *p = query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > 0) {
            if (n == SIGV4_QPARAMS_MAX) {
                rc = DYNO_ETOOBIG;
                goto out;
            }
            const char *eq = memchr(p, '=', len);
            size_t klen = eq ? (size_t)(eq - p) : len;
            size_t vlen = eq ? len - klen - 1 : 0;
            char *kd = malloc(klen + 1), *vd = malloc(vlen + 1);
            char *ke = malloc(3 * klen + 1), *ve = malloc(3 * vlen + 1);
            long kn = kd ? pct_decode(p, klen, kd, klen + 1) : -1;
            long vn = vd ? (eq ? pct_decode(eq + 1, vlen, vd, vlen + 1) : 0) : -1;
            if (vd && !eq)
                vd[0] = '\0';
            if (kn < 0 || vn < 0 || !ke || !ve || sigv4_uri_encode(kd, (size_t)kn, true, ke, 3 * klen + 1) ||
                sigv4_uri_encode(vd, (size_t)vn, true, ve, 3 * vlen + 1)) {
                free(kd);
                free(vd);
                free(ke);
                free(ve);
                rc = DYNO_EINVAL;
                goto out;
            }
            bool skipped = skip && strcmp(kd, skip) == 0;
            free(kd);
            free(vd);
            if (skipped) {
                free(ke);
                free(ve);
            } else {
                ps[n].name = ke;
                ps[n].value = ve;
                n++;
            }
        }
        p = amp ? amp + 1 : NULL;
    }
    qsort(ps, n, sizeof(ps[0]), qparam_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i)
            sb_add(out, "&", 1);
        sb_str(out, ps[i].name);
        sb_add(out, "=", 1);
        sb_str(out, ps[i].value);
    }
out:
    for (size_t i = 0; i < n; i++) {
        free(ps[i].name);
        free(ps[i].value);
    }
    return rc;
}

/* The canonical URI: each segment of the raw path decoded and encoded again. */
static int canonical_uri(const char *path, struct sbuf *out)
{
    size_t n = strlen(path);
    if (n == 0) {
        sb_add(out, "/", 1);
        return 0;
    }
    char *dec = malloc(n + 1), *enc = malloc(3 * n + 1);
    int rc = 0;
    long dn = dec ? pct_decode(path, n, dec, n + 1) : -1;
    if (dn < 0 || !enc || sigv4_uri_encode(dec, (size_t)dn, false, enc, 3 * n + 1))
        rc = DYNO_EINVAL;
    else
        sb_str(out, enc);
    free(dec);
    free(enc);
    return rc;
}

/* Appends value trimmed, inner runs of spaces and tabs as one space. */
static void header_value(struct sbuf *b, const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    bool space = false;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            space = true;
            continue;
        }
        if (space)
            sb_add(b, " ", 1);
        space = false;
        sb_add(b, v, 1);
    }
}

int sigv4_canonical_request(const struct sigv4_in *in, const struct sigv4_req *s, char *out, size_t cap)
{
    struct sbuf b = {.p = out, .cap = cap};
    if (cap == 0)
        return DYNO_ETOOBIG;
    out[0] = '\0';
    sb_str(&b, in->method);
    sb_add(&b, "\n", 1);
    if (canonical_uri(in->path, &b))
        return DYNO_EINVAL;
    sb_add(&b, "\n", 1);
    int rc = canonical_query(in->query ? in->query : "", s->presigned ? "X-Amz-Signature" : NULL, &b);
    if (rc)
        return rc;
    sb_add(&b, "\n", 1);
    /* SignedHeaders is lowercase names joined by ';', sorted by the signer. */
    const char *h = s->signed_headers;
    while (*h) {
        const char *semi = strchr(h, ';');
        size_t len = semi ? (size_t)(semi - h) : strlen(h);
        char name[128];
        if (len == 0 || len >= sizeof(name))
            return DYNO_EINVAL;
        memcpy(name, h, len);
        name[len] = '\0';
        const char *v = in->header(in->cls, name);
        sb_str(&b, name);
        sb_add(&b, ":", 1);
        if (v)
            header_value(&b, v);
        sb_add(&b, "\n", 1);
        h = semi ? semi + 1 : h + len;
    }
    sb_add(&b, "\n", 1);
    sb_str(&b, s->signed_headers);
    sb_add(&b, "\n", 1);
    sb_str(&b, s->presigned ? "UNSIGNED-PAYLOAD" : s->payload_decl);
    return b.over ? DYNO_ETOOBIG : 0;
}

static void hmac(const uint8_t *key, size_t klen, const char *data, size_t dlen, uint8_t out[32])
{
    unsigned int olen = 32;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)data, dlen, out, &olen);
}

void sigv4_signing_key(const char *secret, const char *date, const char *region, uint8_t key[32])
{
    char k0[SIGV4_SECRET_MAX + 8];
    int n = snprintf(k0, sizeof(k0), "AWS4%s", secret);
    uint8_t a[32], b[32];
    hmac((const uint8_t *)k0, (size_t)(n < (int)sizeof(k0) ? n : (int)sizeof(k0) - 1), date, strlen(date), a);
    hmac(a, 32, region, strlen(region), b);
    hmac(b, 32, "s3", 2, a);
    hmac(a, 32, "aws4_request", 12, key);
    OPENSSL_cleanse(k0, sizeof(k0));
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(b, sizeof(b));
}

/* YYYYMMDDTHHMMSSZ to unix seconds; -1 when malformed. */
static int64_t parse_amz_date(const char *d)
{
    if (strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
        return -1;
    for (int i = 0; i < 15; i++)
        if (i != 8 && !isdigit((unsigned char)d[i]))
            return -1;
    struct tm tm = {0};
    tm.tm_year = (d[0] - '0') * 1000 + (d[1] - '0') * 100 + (d[2] - '0') * 10 + (d[3] - '0') - 1900;
    tm.tm_mon = (d[4] - '0') * 10 + (d[5] - '0') - 1;
    tm.tm_mday = (d[6] - '0') * 10 + (d[7] - '0');
    tm.tm_hour = (d[9] - '0') * 10 + (d[10] - '0');
    tm.tm_min = (d[11] - '0') * 10 + (d[12] - '0');
    tm.tm_sec = (d[13] - '0') * 10 + (d[14] - '0');
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    return (int64_t)timegm(&tm);
}

/* "AKID/20261207/us-east-1/s3/aws4_request" into s. */
static bool parse_credential(const char *cred, const char *region, struct sigv4_req *s, char *msg, size_t cap)
{
    const char *slash = strchr(cred, '/');
    if (!slash || slash == cred || (size_t)(slash - cred) > SIGV4_KEYID_MAX) {
        snprintf(msg, cap, "the Credential is not <key id>/<date>/<region>/s3/aws4_request");
        return false;
    }
    memcpy(s->key_id, cred, (size_t)(slash - cred));
    s->key_id[slash - cred] = '\0';
    const char *scope = slash + 1;
    if (strlen(scope) >= sizeof(s->scope)) {
        snprintf(msg, cap, "the credential scope is too long");
        return false;
    }
    snprintf(s->scope, sizeof(s->scope), "%s", scope);
    char date[16] = "", reg[64] = "", svc[16] = "", term[16] = "";
    const char *p = scope;
    char *parts[4] = {date, reg, svc, term};
    size_t caps[4] = {sizeof(date), sizeof(reg), sizeof(svc), sizeof(term)};
    for (int i = 0; i < 4; i++) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if ((i < 3 && !e) || (i == 3 && e) || len == 0 || len >= caps[i]) {
            snprintf(msg, cap, "the credential scope is not <date>/<region>/s3/aws4_request");
            return false;
        }
        memcpy(parts[i], p, len);
        parts[i][len] = '\0';
        p = e ? e + 1 : p + len;
    }
    if (strlen(date) != 8 || strcmp(svc, "s3") != 0 || strcmp(term, "aws4_request") != 0) {
        snprintf(msg, cap, "the credential scope is not <date>/<region>/s3/aws4_request");
        return false;
    }
    if (strcmp(reg, region) != 0) {
        snprintf(msg, cap, "the region '%s' is wrong; expecting '%s'", reg, region);
        return false;
    }
    memcpy(s->date, date, 9);
    snprintf(s->region, sizeof(s->region), "%s", reg);
    return true;
}

static bool valid_signed_headers(const char *h)
{
    if (!*h)
        return false;
    for (const char *p = h; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-' || *p == ';' ||
              *p == '_' || *p == '.'))
            return false;
    return true;
}

static bool is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* The value of "Name=value" in the Authorization header's list, into out. */
static bool auth_field(const char *v, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            if (len - nl - 1 >= cap)
                return false;
            memcpy(out, p + nl + 1, len - nl - 1);
            out[len - nl - 1] = '\0';
            return true;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

static void lower_hex(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* The payload declaration of x-amz-content-sha256 into s. */
static bool parse_payload(const char *decl, struct sigv4_req *s)
{
    if (strlen(decl) >= sizeof(s->payload_decl))
        return false;
    snprintf(s->payload_decl, sizeof(s->payload_decl), "%s", decl);
    if (strcmp(decl, "UNSIGNED-PAYLOAD") == 0)
        s->payload = SIGV4_PAYLOAD_UNSIGNED;
    else if (strcmp(decl, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD") == 0)
        s->payload = SIGV4_PAYLOAD_STREAMING;
    else if (strcmp(decl, "STREAMING-UNSIGNED-PAYLOAD-TRAILER") == 0)
        s->payload = SIGV4_PAYLOAD_STREAMING_TRAILER;
    else if (is_hex64(decl)) {
        s->payload = SIGV4_PAYLOAD_SHA256;
        snprintf(s->payload_hash, sizeof(s->payload_hash), "%s", decl);
        lower_hex(s->payload_hash);
    } else
        return false;
    return true;
}

static int parse_header_auth(const struct sigv4_in *in, const char *auth, const char *region,
                             struct sigv4_req *s, const char **code, unsigned *status, char *msg, size_t cap)
{
    const char *bad = "AuthorizationHeaderMalformed";
    size_t al = strlen(SIGV4_ALGO);
    if (strncmp(auth, SIGV4_ALGO, al) != 0 || auth[al] != ' ')
        return sigv4__failn(DYNO_EINVAL, code, status, "InvalidArgument", 400, msg, cap,
                            "only AWS Signature Version 4 (AWS4-HMAC-SHA256) is supported");
    const char *rest = auth + al + 1;
    char cred[300], sig[80];
    if (!auth_field(rest, "Credential", cred, sizeof(cred)) ||
        !auth_field(rest, "SignedHeaders", s->signed_headers, sizeof(s->signed_headers)) ||
        !auth_field(rest, "Signature", sig, sizeof(sig)))
        return sigv4__failn(DYNO_EINVAL, code, status, bad, 400, msg, cap,
                            "the Authorization header needs Credential, SignedHeaders and Signature");
    if (!parse_credential(cred, region, s, msg, cap)) {
        *code = bad;
        *status = 400;
        return DYNO_EINVAL;
    }
    if (!is_hex64(sig) || !valid_signed_headers(s->signed_headers))
        return sigv4__failn(DYNO_EINVAL, code, status, bad, 400, msg, cap,
                            "malformed Signature or SignedHeaders");
    memcpy(s->signature, sig, 65);
    lower_hex(s->signature);
    const char *d = in->header(in->cls, "x-amz-date");
    if (!d)
        return sigv4__failn(DYNO_EINVAL, code, status, "AccessDenied", 403, msg, cap,
                            "AWS authentication requires a valid x-amz-date header");
    if (strlen(d) != 16 || (s->time = parse_amz_date(d)) < 0)
        return sigv4__failn(DYNO_EINVAL, code, status, "AccessDenied", 403, msg, cap,
                            "x-amz-date is not YYYYMMDDTHHMMSSZ");
    memcpy(s->amz_date, d, 17);
    const char *decl = in->header(in->cls, "x-amz-content-sha256");
    if (!decl)
        return sigv4__failn(DYNO_EINVAL, code, status, "InvalidRequest", 400, msg, cap,
                            "missing required header for this request: x-amz-content-sha256");
    if (!parse_payload(decl, s))
        return sigv4__failn(
            DYNO_EINVAL, code, status, "InvalidArgument", 400, msg, cap,
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, "
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER or a SHA-256 in hex");
    return 0;
}

static int parse_query_auth(const struct sigv4_in *in, const char *region, struct sigv4_req *s,
                            const char **code, unsigned *status, char *msg, size_t cap)
{
    const char *bad = "AuthorizationQueryParametersError";
    char algo[32], cred[300], exp[32], sig[80];
    s->presigned = true;
    if (query_get(in->query, "X-Amz-Algorithm", algo, sizeof(algo)) || strcmp(algo, SIGV4_ALGO) != 0)
        return sigv4__failn(DYNO_EINVAL, code, status, bad, 400, msg, cap,
                            "X-Amz-Algorithm must be AWS4-HMAC-SHA256");
    if (query_get(in->query, "X-Amz-Credential", cred, sizeof(cred)) ||
        query_get(in->query, "X-Amz-Date", s->amz_date, sizeof(s->amz_date)) ||
        query_get(in->query, "X-Amz-Expires", exp, sizeof(exp)) ||
        query_get(in->query, "X-Amz-SignedHeaders", s->signed_headers, sizeof(s->signed_headers)) ||
        query_get(in->query, "X-Amz-Signature", sig, sizeof(sig)))
        return sigv4__failn(DYNO_EINVAL, code, status, bad, 400, msg, cap,
                            "a presigned URL needs X-Amz-Credential, X-Amz-Date, X-Amz-Expires, "
                            "X-Amz-SignedHeaders and X-Amz-Signature");
    if (!parse_credential(cred, region, s, msg, cap)) {
        *code = bad;
        *status = 400;
        return DYNO_EINVAL;
    }
    uint64_t e;
    if (dyno_rest_parse_u64(exp, &e) || e > SIGV4_EXPIRES_MAX_S)
        return sigv4__failn(DYNO_EINVAL, code, status, bad, 400, msg, cap,
                            "X-Amz-Expires must be a number of seconds up to 604800");
    s->expires = (int64_t)e;
    if (!is_hex64(sig) || !valid_signed_headers(s->signed_headers))
        return sigv4__failn(DYNO_EINVAL, code, status, bad, 400, msg, cap,
                            "malformed X-Amz-Signature or X-Amz-SignedHeaders");
    memcpy(s->signature, sig, 65);
    lower_hex(s->signature);
    if ((s->time = parse_amz_date(s->amz_date)) < 0)
        return sigv4__failn(DYNO_EINVAL, code, status, bad, 400, msg, cap,
                            "X-Amz-Date is not YYYYMMDDTHHMMSSZ");
    /* The body of a presigned request is not signed (a presigned PUT streams anything). */
    s->payload = SIGV4_PAYLOAD_UNSIGNED;
    snprintf(s->payload_decl, sizeof(s->payload_decl), "UNSIGNED-PAYLOAD");
    return 0;
}

int sigv4_parse(const struct sigv4_in *in, const char *region, struct sigv4_req *out, const char **code,
                unsigned *status, char *msg, size_t cap)
{
    memset(out, 0, sizeof(*out));
    *code = NULL;
    *status = 0;
    const char *auth = in->header(in->cls, "authorization");
    char probe[8];
    int rc;
    if (auth) {
        rc = parse_header_auth(in, auth, region, out, code, status, msg, cap);
    } else if (query_get(in->query ? in->query : "", "X-Amz-Signature", probe, sizeof(probe)) !=
               DYNO_ENOTFOUND) {
        rc = parse_query_auth(in, region, out, code, status, msg, cap);
    } else {
        return sigv4__failn(DYNO_ENOTFOUND, code, status, "AccessDenied", 403, msg, cap,
                            "anonymous requests are not allowed: sign with an access key (AWS SigV4)");
    }
    if (rc)
        return rc;
    /* The scope's date must be the request's day. */
    if (strncmp(out->date, out->amz_date, 8) != 0)
        return sigv4__failn(DYNO_EINVAL, code, status,
                            out->presigned ? "AuthorizationQueryParametersError"
                                           : "AuthorizationHeaderMalformed",
                            400, msg, cap, "the credential scope's date is not the request's date");
    int64_t skew = in->now - out->time;
    if (out->presigned) {
        if (out->time - in->now > SIGV4_SKEW_MAX_S)
            return sigv4__failn(DYNO_EUNAUTH, code, status, "RequestTimeTooSkewed", 403, msg, cap,
                                "the presigned URL's time is too far in the future");
        if (in->now > out->time + out->expires)
            return sigv4__failn(DYNO_EUNAUTH, code, status, "AccessDenied", 403, msg, cap,
                                "Request has expired");
    } else if (skew > SIGV4_SKEW_MAX_S || skew < -SIGV4_SKEW_MAX_S) {
        char t[200];
        snprintf(t, sizeof(t),
                 "the difference between the request time (%s) and the server's time is %lld s, more than "
                 "the %d s allowed",
                 out->amz_date, (long long)skew, SIGV4_SKEW_MAX_S);
        return sigv4__failn(DYNO_EUNAUTH, code, status, "RequestTimeTooSkewed", 403, msg, cap, t);
    }
    return 0;
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
    uint8_t d[32];
    dyno_sha256(p, n, d);
    dyno_hex(d, 32, out);
}

int sigv4_verify(const struct sigv4_in *in, const struct sigv4_req *s, const char *secret,
                 uint8_t signing_key[32], const char **code, unsigned *status, char *msg, size_t cap)
{
    *code = NULL;
    *status = 0;
    if (strlen(secret) > SIGV4_SECRET_MAX)
        return sigv4__failn(DYNO_EINVAL, code, status, "InternalError", 500, msg, cap, "secret too long");
    char *canon = malloc(SIGV4_CANON_MAX);
    if (!canon)
        return sigv4__failn(DYNO_ENOMEM, code, status, "InternalError", 500, msg, cap, "out of memory");
    int rc = sigv4_canonical_request(in, s, canon, SIGV4_CANON_MAX);
    if (rc) {
        free(canon);
        return sigv4__failn(DYNO_EINVAL, code, status, "InvalidRequest", 400, msg, cap,
                            "the request cannot be put in canonical form (bad escapes or too large)");
    }
    char ch[65];
    sha256_hex(canon, strlen(canon), ch);
    free(canon);
    char sts[400];
    int n = snprintf(sts, sizeof(sts), "%s\n%s\n%s\n%s", SIGV4_ALGO, s->amz_date, s->scope, ch);
    uint8_t key[32], mac[32];
    sigv4_signing_key(secret, s->date, s->region, key);
    hmac(key, 32, sts, (size_t)n, mac);
    char hex[65];
    dyno_hex(mac, 32, hex);
    if (CRYPTO_memcmp(hex, s->signature, 64) != 0) {
        OPENSSL_cleanse(key, sizeof(key));
        return sigv4__failn(DYNO_EUNAUTH, code, status, "SignatureDoesNotMatch", 403, msg, cap,
                            "the request signature we calculated does not match the signature you provided; "
                            "check your key and signing method");
    }
    memcpy(signing_key, key, 32);
    OPENSSL_cleanse(key, sizeof(key));
    return 0;
}

/* ---- the body ---- */
enum { B_SIZE, B_DATA, B_DATA_END, B_FINAL, B_TRAILER, B_DONE };

int sigv4_body_init(struct sigv4_body *b, const struct sigv4_req *s, const uint8_t signing_key[32],
                    const char *decoded_len)
{
    memset(b, 0, sizeof(*b));
    b->payload = s->payload;
    b->decoded_decl = UINT64_MAX;
    memcpy(b->key, signing_key, 32);
    memcpy(b->prev_sig, s->signature, sizeof(b->prev_sig));
    memcpy(b->amz_date, s->amz_date, sizeof(b->amz_date));
    memcpy(b->scope, s->scope, sizeof(b->scope));
    memcpy(b->want_hash, s->payload_hash, sizeof(b->want_hash));
    if (decoded_len && dyno_rest_parse_u64(decoded_len, &b->decoded_decl))
        return DYNO_EINVAL;
    b->state = B_SIZE;
    if (b->payload == SIGV4_PAYLOAD_SHA256 || b->payload == SIGV4_PAYLOAD_STREAMING) {
        struct dyno_sha256 *h = NULL;
        if (dyno_sha256_new(&h))
            return DYNO_ENOMEM;
        b->sha = h;
    }
    return 0;
}

void sigv4_body_free(struct sigv4_body *b)
{
    dyno_sha256_free(b->sha);
    b->sha = NULL;
    OPENSSL_cleanse(b->key, sizeof(b->key));
}

/* Checks the signature of the chunk that just ended (its hash in b->sha). */
static int chunk_verify(struct sigv4_body *b, const char **code, unsigned *status, char *msg, size_t cap)
{
    uint8_t d[32];
    char dh[65];
    dyno_sha256_final(b->sha, d);
    dyno_sha256_reset(b->sha);
    dyno_hex(d, 32, dh);
    char sts[512];
    int n = snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256-PAYLOAD\n%s\n%s\n%s\n%s\n%s", b->amz_date, b->scope,
                     b->prev_sig, SIGV4_EMPTY_SHA, dh);
    uint8_t mac[32];
    char hex[65];
    hmac(b->key, 32, sts, (size_t)n, mac);
    dyno_hex(mac, 32, hex);
    if (CRYPTO_memcmp(hex, b->chunk_sig, 64) != 0)
        return sigv4__failn(DYNO_EUNAUTH, code, status, "SignatureDoesNotMatch", 403, msg, cap,
                            "a chunk signature of the aws-chunked body does not match");
    memcpy(b->prev_sig, hex, 65);
    return 0;
}

/* The chunk header line in b->line: "<hex size>[;chunk-signature=<sig>][;ext...]". */
static int chunk_header(struct sigv4_body *b, const char **code, unsigned *status, char *msg, size_t cap)
{
    const char *l = b->line;
    uint64_t size = 0;
    size_t i = 0;
    for (; l[i] && l[i] != ';'; i++) {
        int v = dyno_hexval(l[i]);
        if (v < 0 || i >= 16)
            return sigv4__failn(DYNO_EINVAL, code, status, "IncompleteBody", 400, msg, cap,
                                "bad chunk size in the aws-chunked body");
        size = size * 16 + (uint64_t)v;
    }
    if (i == 0)
        return sigv4__failn(DYNO_EINVAL, code, status, "IncompleteBody", 400, msg, cap,
                            "missing chunk size in the aws-chunked body");
    if (b->payload == SIGV4_PAYLOAD_STREAMING) {
        static const char tag[] = ";chunk-signature=";
        if (strncmp(l + i, tag, sizeof(tag) - 1) != 0 || !is_hex64(l + i + sizeof(tag) - 1))
            return sigv4__failn(DYNO_EINVAL, code, status, "IncompleteBody", 400, msg, cap,
                                "a chunk of the aws-chunked body has no chunk-signature");
        memcpy(b->chunk_sig, l + i + sizeof(tag) - 1, 65);
        lower_hex(b->chunk_sig);
    }
    b->chunk_left = size;
    if (size > 0) {
        b->state = B_DATA;
        return 0;
    }
    /* the final chunk */
    if (b->payload == SIGV4_PAYLOAD_STREAMING) {
        int rc = chunk_verify(b, code, status, msg, cap);
        if (rc)
            return rc;
        b->state = B_FINAL;
    } else {
        b->state = B_TRAILER;
    }
    return 0;
}

/* One complete line (CRLF stripped) in b->line, in the current state. */
static int body_line(struct sigv4_body *b, const char **code, unsigned *status, char *msg, size_t cap)
{
    switch (b->state) {
    case B_SIZE:
        return chunk_header(b, code, status, msg, cap);
    case B_DATA_END:
        if (b->line_len != 0)
            return sigv4__failn(DYNO_EINVAL, code, status, "IncompleteBody", 400, msg, cap,
                                "a chunk of the aws-chunked body is longer than its size");
        b->state = B_SIZE;
        return 0;
    case B_FINAL:
        /* Signed streaming may carry trailers too (a -TRAILER variant): read to the empty line. */
        if (b->line_len == 0)
            b->state = B_DONE;
        return 0;
    case B_TRAILER:
        /* x-amz-checksum-<algo>:<value> and the like: accepted, not verified (docs/s3.md). */
        if (b->line_len == 0)
            b->state = B_DONE;
        else if (!strchr(b->line, ':'))
            return sigv4__failn(DYNO_EINVAL, code, status, "IncompleteBody", 400, msg, cap,
                                "malformed trailer in the aws-chunked body");
        return 0;
    default:
        return sigv4__failn(DYNO_EINVAL, code, status, "IncompleteBody", 400, msg, cap,
                            "bytes after the end of the aws-chunked body");
    }
}

int sigv4_body_feed(struct sigv4_body *b, const char *data, size_t len, sigv4_emit_fn emit, void *cls,
                    const char **code, unsigned *status, char *msg, size_t cap)
{
    *code = NULL;
    *status = 0;
    int rc;
    if (b->payload == SIGV4_PAYLOAD_SHA256 || b->payload == SIGV4_PAYLOAD_UNSIGNED) {
        if (b->sha)
            dyno_sha256_update(b->sha, data, len);
        b->decoded += len;
        return emit(cls, data, len);
    }
    while (len > 0) {
        if (b->state == B_DATA) {
            size_t n = len < b->chunk_left ? len : (size_t)b->chunk_left;
            if (b->sha)
                dyno_sha256_update(b->sha, data, n);
            if (b->decoded_decl != UINT64_MAX && b->decoded + n > b->decoded_decl)
                return sigv4__failn(DYNO_EINVAL, code, status, "IncompleteBody", 400, msg, cap,
                                    "the aws-chunked body is longer than x-amz-decoded-content-length");
            b->decoded += n;
            if ((rc = emit(cls, data, n)) != 0)
                return rc;
            data += n;
            len -= n;
            b->chunk_left -= n;
            if (b->chunk_left == 0) {
                if (b->payload == SIGV4_PAYLOAD_STREAMING && (rc = chunk_verify(b, code, status, msg, cap)))
                    return rc;
                b->state = B_DATA_END;
                b->line_len = 0;
            }
            continue;
        }
        if (b->state == B_DONE)
            return sigv4__failn(DYNO_EINVAL, code, status, "IncompleteBody", 400, msg, cap,
                                "bytes after the end of the aws-chunked body");
        /* a line, up to CRLF */
        char c = *data++;
        len--;
        if (c == '\n') {
            if (b->line_len == 0 || b->line[b->line_len - 1] != '\r')
                return sigv4__failn(DYNO_EINVAL, code, status, "IncompleteBody", 400, msg, cap,
                                    "bare LF in the aws-chunked body");
            b->line[--b->line_len] = '\0';
            if ((rc = body_line(b, code, status, msg, cap)) != 0)
                return rc;
            b->line_len = 0;
            continue;
        }
        if (b->line_len >= SIGV4_CHUNK_LINE_MAX)
            return sigv4__failn(DYNO_EINVAL, code, status, "IncompleteBody", 400, msg, cap,
                                "a line of the aws-chunked body is too long");
        b->line[b->line_len++] = c;
        b->line[b->line_len] = '\0';
    }
    return 0;
}

int sigv4_body_end(struct sigv4_body *b, const char **code, unsigned *status, char *msg, size_t cap)
{
    *code = NULL;
    *status = 0;
    switch (b->payload) {
    case SIGV4_PAYLOAD_UNSIGNED:
        return 0;
    case SIGV4_PAYLOAD_SHA256: {
        uint8_t d[32];
        char hex[65];
        dyno_sha256_final(b->sha, d);
        dyno_hex(d, 32, hex);
        if (CRYPTO_memcmp(hex, b->want_hash, 64) != 0)
            return sigv4__failn(DYNO_EINVAL, code, status, "XAmzContentSHA256Mismatch", 400, msg, cap,
                                "the provided x-amz-content-sha256 header does not match what was computed");
        return 0;
    }
    default:
        /* A signed body may end right after its final chunk's header (no trailing CRLF). */
        if (b->state == B_DONE || (b->state == B_FINAL && b->line_len == 0)) {
            if (b->decoded_decl != UINT64_MAX && b->decoded != b->decoded_decl)
                return sigv4__failn(DYNO_EINVAL, code, status, "IncompleteBody", 400, msg, cap,
                                    "the aws-chunked body is shorter than x-amz-decoded-content-length");
            return 0;
        }
        return sigv4__failn(DYNO_EINVAL, code, status, "IncompleteBody", 400, msg, cap,
                            "the aws-chunked body ended before its final chunk");
    }
}
