/*
 * Fuzzes the REST request parsing of the gateway: the route grammar (lib/rest.h
 * dyno_rest_route_parse and _format), percent-decoding of path segments and query values
 * (dyno_url_decode), the query values (limit, flags), the headers it reads (Range through
 * dyno_http_parse_range, X-Dyno-Resilience, Content-Length).
 *
 * Input: one mode byte, then the rest.
 *   mode % 4 == 0  the rest is a request path. Checked: a failed parse leaves the route zeroed
 *                  and says why; a parsed route has the fields its kind promises (a valid
 *                  catalog, key, principal or container id) and no others; it formats back to
 *                  a path in the "~" form that parses to the very same route and formats to
 *                  itself (one canonical form); the route of a catalog path is what an oracle
 *                  written apart reads from the decoded segments: with a "~" segment, the
 *                  catalog before it and the sub-resource after; without (the SPEC form), the
 *                  reserved words at the end; no path without "~" gives a catalog with a
 *                  reserved segment ("objects", "shares", "subscription"), and a SPEC-form
 *                  path (the canonical one with its "~" segment taken out) parses to the same
 *                  route as its canonical form.
 *   mode % 4 == 1  8 bytes of object size (little endian), then a Range header value. Checked:
 *                  a satisfiable range lies within the object (first <= last < size); the
 *                  result is one of the documented codes.
 *   mode % 4 == 2  a query value. Checked: decoding fails, leaving it as it was, or gives a
 *                  string no longer than the input with no NUL inside; limit and flag agree
 *                  with oracles (a decimal 1..1000; "1", "true", "yes").
 *   mode % 4 == 3  a header value. Checked: X-Dyno-Resilience and Content-Length accept exactly
 *                  what an oracle accepts (strict decimals in range) and give the same numbers;
 *                  Authorization gives a non-empty token inside the value, after "Bearer" (any
 *                  letter case) and at least one space, or nothing.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "dynostore/error.h"
#include "ec.h"
#include "fuzz.h"
#include "httpd.h"
#include "rest.h"

static bool is_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Decimal value of digits s[0..n) or UINT64_MAX + overflow flag. */
static bool dec_value(const char *s, size_t n, uint64_t *out)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *out = x;
    return true;
}

static bool is_catalog_kind(enum dyno_rest_kind k)
{
    return k == DYNO_REST_CATALOG || k == DYNO_REST_CATALOG_OBJECTS || k == DYNO_REST_CATALOG_SHARES ||
           k == DYNO_REST_CATALOG_SHARE || k == DYNO_REST_CATALOG_SUBSCRIPTION;
}

static bool is_word(const char *seg)
{
    return strcmp(seg, "objects") == 0 || strcmp(seg, "shares") == 0 || strcmp(seg, "subscription") == 0;
}

/* Whether a catalog path ("a/b/c") has a reserved segment. */
static bool has_word(const char *catalog)
{
    char seg[DYNO_REST_PATH_MAX];
    for (const char *p = catalog;;) {
        size_t n = strcspn(p, "/");
        memcpy(seg, p, n);
        seg[n] = '\0';
        if (is_word(seg))
            return true;
        if (p[n] == '\0')
            return false;
        p += n + 1;
    }
}

/* What the oracle reads from a catalog path. */
struct oracle {
    bool tilde;                       /* a segment decodes to "~" */
    enum dyno_rest_kind kind;         /* NONE: no catalog route of this shape */
    char catalog[DYNO_REST_PATH_MAX]; /* the decoded segments of the catalog, joined */
};

/*
 * The oracle of the catalog routes, for a path "/v1/catalogs/..." (its fixed segments may be
 * percent-encoded too: "catalog%73" is "catalogs", RFC 3986 2.3): decodes every segment, then
 * reads the route from the end (SPEC form) or from the first "~". false when a segment does
 * not decode. The catalog is not checked for validity here: the parser must refuse what is
 * invalid, and the caller checks what it accepted.
 */
static bool oracle_catalog(const char *path, struct oracle *o)
{
    static char segs[DYNO_REST_SEGS_MAX + 1][DYNO_REST_PATH_MAX];
    int n = 0, cat_n = -1;
    memset(o, 0, sizeof(*o));
    if (path[0] != '/')
        return false;
    const char *p = path + 1;
    static const char *const fixed[] = {"v1", "catalogs"};
    for (int i = 0; i < 2; i++) {
        size_t l = strcspn(p, "/");
        if (p[l] != '/' || l >= sizeof(segs[0]))
            return false;
        memcpy(segs[0], p, l);
        segs[0][l] = '\0';
        if (dyno_url_decode(segs[0]) != 0 || strcmp(segs[0], fixed[i]) != 0)
            return false;
        p += l + 1;
    }
    for (; n <= DYNO_REST_SEGS_MAX;) {
        size_t l = strcspn(p, "/");
        memcpy(segs[n], p, l);
        segs[n][l] = '\0';
        if (dyno_url_decode(segs[n]) != 0)
            return false;
        if (cat_n < 0 && strcmp(segs[n], "~") == 0)
            cat_n = n;
        n++;
        if (p[l] == '\0')
            break;
        p += l + 1;
    }
    const char *last = segs[n - 1];
    int tail; /* segments after the catalog that name the sub-resource */
    o->tilde = cat_n >= 0;
    if (o->tilde) {
        tail = n - cat_n - 1;
        const char *w = tail >= 1 ? segs[cat_n + 1] : "";
        if (tail == 0)
            o->kind = DYNO_REST_CATALOG;
        else if (tail == 2 && strcmp(w, "shares") == 0)
            o->kind = DYNO_REST_CATALOG_SHARE;
        else if (tail == 1 && strcmp(w, "objects") == 0)
            o->kind = DYNO_REST_CATALOG_OBJECTS;
        else if (tail == 1 && strcmp(w, "shares") == 0)
            o->kind = DYNO_REST_CATALOG_SHARES;
        else if (tail == 1 && strcmp(w, "subscription") == 0)
            o->kind = DYNO_REST_CATALOG_SUBSCRIPTION;
    } else if (n >= 2 && strcmp(segs[n - 2], "shares") == 0) {
        o->kind = DYNO_REST_CATALOG_SHARE;
        cat_n = n - 2;
    } else if (strcmp(last, "objects") == 0) {
        o->kind = DYNO_REST_CATALOG_OBJECTS;
        cat_n = n - 1;
    } else if (strcmp(last, "shares") == 0) {
        o->kind = DYNO_REST_CATALOG_SHARES;
        cat_n = n - 1;
    } else if (strcmp(last, "subscription") == 0) {
        o->kind = DYNO_REST_CATALOG_SUBSCRIPTION;
        cat_n = n - 1;
    } else {
        o->kind = DYNO_REST_CATALOG;
        cat_n = n;
    }
    size_t len = 0;
    for (int i = 0; i < cat_n; i++) {
        size_t l = strlen(segs[i]);
        if (len + l + 2 > sizeof(o->catalog))
            return false;
        if (i)
            o->catalog[len++] = '/';
        memcpy(o->catalog + len, segs[i], l + 1);
        len += l;
    }
    return true;
}

/* The canonical path with its "/~" segment taken out: the SPEC form of the same route. */
static void spec_form_of(const char *canonical, char *out, size_t cap)
{
    const char *t = strstr(canonical, "/~");
    FUZZ_CHECK(t != NULL && (t[2] == '\0' || t[2] == '/'));
    size_t head = (size_t)(t - canonical);
    FUZZ_CHECK(head + strlen(t + 2) < cap);
    memcpy(out, canonical, head);
    strcpy(out + head, t + 2);
}

static void fuzz_route(const char *path)
{
    struct dyno_rest_route r, again;
    const char *why = NULL;
    char out[DYNO_REST_PATH_MAX], out2[DYNO_REST_PATH_MAX];

    int rc = dyno_rest_route_parse(path, &r, &why);
    FUZZ_CHECK(why != NULL);
    if (rc != 0) {
        static const struct dyno_rest_route zero;
        FUZZ_CHECK(rc == DYNO_ENOTFOUND || rc == DYNO_EINVAL);
        FUZZ_CHECK(why[0] != '\0');
        FUZZ_CHECK(memcmp(&r, &zero, sizeof(r)) == 0);
        return;
    }
    FUZZ_CHECK(r.kind > DYNO_REST_NONE && r.kind < DYNO_REST_KIND_COUNT);
    FUZZ_CHECK(strcmp(dyno_rest_kind_name(r.kind), "none") != 0);

    /* the fields of the kind, and only those */
    bool cat = is_catalog_kind(r.kind);
    bool id = r.kind == DYNO_REST_OBJECT || r.kind == DYNO_REST_OBJECT_META || r.kind == DYNO_REST_TOKEN;
    bool name =
        r.kind == DYNO_REST_CATALOG_SHARE || r.kind == DYNO_REST_CONTAINER_DRAIN || r.kind == DYNO_REST_KEY;
    FUZZ_CHECK(cat ? dyno_valid_catalog(r.catalog) : r.catalog[0] == '\0');
    FUZZ_CHECK(id ? dyno_valid_key(r.id) : r.id[0] == '\0');
    if (r.kind == DYNO_REST_CATALOG_SHARE)
        FUZZ_CHECK(fuzz_org_ok(r.name, false, DYNO_ACL_ORG_MAX));
    else if (r.kind == DYNO_REST_CONTAINER_DRAIN)
        FUZZ_CHECK(dyno_valid_segment(r.name));
    else if (r.kind == DYNO_REST_KEY)
        FUZZ_CHECK(dyno_valid_access_key_id(r.name));
    else
        FUZZ_CHECK(!name && r.name[0] == '\0');

    /* unambiguous: the route is the oracle's, and without "~" never a reserved catalog */
    if (cat) {
        static struct oracle o;
        FUZZ_CHECK(oracle_catalog(path, &o));
        FUZZ_CHECK(r.kind == o.kind);
        FUZZ_CHECK(strcmp(r.catalog, o.catalog) == 0);
        FUZZ_CHECK(r.spec_form == !o.tilde);
        if (r.spec_form)
            FUZZ_CHECK(!has_word(r.catalog));
    } else {
        FUZZ_CHECK(!r.spec_form);
    }

    /* one canonical form: format, parse back, format again */
    FUZZ_CHECK(dyno_rest_route_format(&r, out, sizeof(out)) == 0);
    FUZZ_CHECK(out[0] == '/' && strlen(out) < sizeof(out));
    FUZZ_CHECK(dyno_rest_route_parse(out, &again, NULL) == 0);
    FUZZ_CHECK(!again.spec_form);
    struct dyno_rest_route canon = r;
    canon.spec_form = false;
    FUZZ_CHECK(memcmp(&canon, &again, sizeof(r)) == 0);
    FUZZ_CHECK(dyno_rest_route_format(&again, out2, sizeof(out2)) == 0);
    FUZZ_CHECK(strcmp(out, out2) == 0);
    /* a buffer one byte short is refused, never truncated */
    size_t len = strlen(out);
    FUZZ_CHECK(dyno_rest_route_format(&r, out2, len) == DYNO_ETOOBIG && out2[0] == '\0');

    /* the SPEC form of a catalog route without a reserved segment is the same route; with
     * one, it is refused or another route, never that catalog */
    if (cat) {
        spec_form_of(out, out2, sizeof(out2));
        int src = dyno_rest_route_parse(out2, &again, NULL);
        if (!has_word(r.catalog)) {
            FUZZ_CHECK(src == 0 && again.spec_form);
            again.spec_form = false;
            FUZZ_CHECK(memcmp(&canon, &again, sizeof(r)) == 0);
        } else {
            FUZZ_CHECK(src != 0 || strcmp(again.catalog, r.catalog) != 0);
        }
    }
}

static void fuzz_range(const uint8_t *data, size_t size)
{
    uint64_t osize = 0, first = 7, last = 7;
    if (size < 8)
        return;
    for (int i = 7; i >= 0; i--)
        osize = osize << 8 | data[i];
    if ((data[7] & 0x80) != 0)
        osize &= 0xffff; /* often small sizes, where the edges are */
    const uint8_t *p = data + 8;
    size_t n = size - 8;
    char *hdr = fuzz_take_part(&p, &n, NULL);
    int rc = dyno_http_parse_range(hdr, osize, &first, &last);
    FUZZ_CHECK(rc == 0 || rc == DYNO_ERANGE || rc == DYNO_EINVAL);
    if (rc == 0) {
        FUZZ_CHECK(osize > 0);
        FUZZ_CHECK(first <= last);
        FUZZ_CHECK(last < osize);
    } else {
        FUZZ_CHECK(first == 7 && last == 7); /* untouched on failure */
    }
    FUZZ_CHECK(dyno_http_parse_range(NULL, osize, &first, &last) == DYNO_ENOTFOUND);
    free(hdr);
}

static void fuzz_query(const char *v, size_t vlen)
{
    char *copy = malloc(vlen + 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, v, vlen + 1);
    int rc = dyno_url_decode(copy);
    if (rc != 0) {
        FUZZ_CHECK(rc == DYNO_EINVAL);
        FUZZ_CHECK(memcmp(copy, v, vlen + 1) == 0); /* a bad input is left as it was */
    } else {
        FUZZ_CHECK(strlen(copy) <= vlen);
        FUZZ_CHECK(strchr(v, '%') != NULL || strcmp(copy, v) == 0);
    }
    int limit = -1;
    uint64_t x = 0;
    bool want = is_digits(v, vlen) && dec_value(v, vlen, &x) && x >= 1 && x <= DYNO_REST_LIMIT_MAX;
    FUZZ_CHECK((dyno_rest_parse_limit(v, &limit) == 0) == want);
    if (want)
        FUZZ_CHECK((uint64_t)limit == x);
    FUZZ_CHECK(dyno_rest_flag(v) == (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0));
    free(copy);
}

static void fuzz_headers(const char *v, size_t vlen)
{
    uint64_t x = 0, y = 0;
    uint64_t got = 12345;
    bool want = is_digits(v, vlen) && dec_value(v, vlen, &x);
    int rc = dyno_rest_parse_u64(v, &got);
    FUZZ_CHECK((rc == 0) == want);
    FUZZ_CHECK(want ? got == x : got == 12345);

    const char *tok = dyno_http_bearer_token(v);
    if (tok) {
        FUZZ_CHECK(tok > v + 6 && tok <= v + vlen && *tok != '\0' && *tok != ' ');
        FUZZ_CHECK(strncasecmp(v, "Bearer ", 7) == 0);
        for (const char *q = v + 6; q < tok; q++)
            FUZZ_CHECK(*q == ' ');
    } else {
        size_t sp = 6;
        while (vlen >= 6 && v[sp] == ' ')
            sp++;
        FUZZ_CHECK(vlen < 7 || strncasecmp(v, "Bearer ", 7) != 0 || v[sp] == '\0');
    }
    FUZZ_CHECK(dyno_http_bearer_token(NULL) == NULL);

    int k = -1, m = -1;
    const char *comma = strchr(v, ',');
    bool ok = comma && is_digits(v, (size_t)(comma - v)) && is_digits(comma + 1, strlen(comma + 1)) &&
              dec_value(v, (size_t)(comma - v), &x) && dec_value(comma + 1, strlen(comma + 1), &y) &&
              x >= 1 && x <= DYNO_EC_MAX_K && y <= DYNO_EC_MAX_M;
    rc = dyno_rest_parse_resilience(v, &k, &m);
    FUZZ_CHECK((rc == 0) == ok);
    if (ok)
        FUZZ_CHECK((uint64_t)k == x && (uint64_t)m == y);
    else
        FUZZ_CHECK(k == -1 && m == -1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0] % 4;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (mode == 1) {
        fuzz_range(p, n);
        return 0;
    }
    size_t len = 0;
    char *s = fuzz_take_part(&p, &n, &len);
    if (mode == 0)
        fuzz_route(s);
    else if (mode == 2)
        fuzz_query(s, len);
    else
        fuzz_headers(s, len);
    free(s);
    return 0;
}
