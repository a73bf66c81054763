/*
 * The REST request grammar (rest.h): route parsing and formatting, query values, headers.
 */
#include "rest.h"

#include <stdio.h>
#include <string.h>

#include "dynostore/error.h"
#include "ec.h"
#include "hash.h"

#define REST_NO_ROUTE "no such route"
#define REST_BAD_CATALOG "bad catalog path (owner/segment[/segment...], [A-Za-z0-9._-])"
#define REST_RESERVED_PATH                                                                                   \
    "bad catalog path: without ~, objects, shares and subscription name a catalog's sub-resources, "         \
    "so a catalog with a segment so named is reached as /v1/catalogs/<catalog>/~[/...]"

static const char *const rest_kind_names[DYNO_REST_KIND_COUNT] = {
    [DYNO_REST_NONE] = "none",
    [DYNO_REST_HEALTHZ] = "healthz",
    [DYNO_REST_METRICS] = "metrics",
    [DYNO_REST_LOGIN] = "auth.login",
    [DYNO_REST_WHOAMI] = "auth.whoami",
    [DYNO_REST_USERS] = "users",
    [DYNO_REST_TOKENS] = "tokens",
    [DYNO_REST_TOKEN] = "token",
    [DYNO_REST_CATALOGS] = "catalogs",
    [DYNO_REST_CATALOG] = "catalog",
    [DYNO_REST_CATALOG_OBJECTS] = "catalog.objects",
    [DYNO_REST_CATALOG_SHARES] = "catalog.shares",
    [DYNO_REST_CATALOG_SHARE] = "catalog.share",
    [DYNO_REST_CATALOG_SUBSCRIPTION] = "catalog.subscription",
    [DYNO_REST_OBJECT] = "object",
    [DYNO_REST_OBJECT_META] = "object.meta",
    [DYNO_REST_CONTAINERS] = "containers",
    [DYNO_REST_CONTAINER_DRAIN] = "container.drain",
    [DYNO_REST_ADMIN_REBUILD] = "admin.rebuild-metadata",
    [DYNO_REST_ADMIN_REPAIR] = "admin.repair",
    [DYNO_REST_EVENTS] = "events",
    [DYNO_REST_KEYS] = "keys",
    [DYNO_REST_KEY] = "key",
};

const char *dyno_rest_kind_name(enum dyno_rest_kind kind)
{
    if ((int)kind <= 0 || kind >= DYNO_REST_KIND_COUNT)
        return "none";
    return rest_kind_names[kind];
}

/* ---- parsing ---- */

/* The decoded segments of a path, in buf (the caller's, DYNO_REST_PATH_MAX bytes). */
struct rest_segs {
    char *s[DYNO_REST_SEGS_MAX];
    int n;
};

static int rest_is(struct dyno_rest_route *out, enum dyno_rest_kind kind)
{
    out->kind = kind;
    return 0;
}

static int rest_fail(int rc, const char *msg, const char **why)
{
    if (why)
        *why = msg;
    return rc;
}

static int rest_split(const char *path, char *buf, struct rest_segs *sg, const char **why)
{
    size_t len = strlen(path);
    if (len >= DYNO_REST_PATH_MAX || path[0] != '/')
        return rest_fail(DYNO_ENOTFOUND, REST_NO_ROUTE, why);
    memcpy(buf, path, len + 1);
    sg->n = 0;
    char *p = buf + 1;
    if (*p == '\0')
        return 0;
    for (;;) {
        char *slash = strchr(p, '/');
        if (slash)
            *slash = '\0';
        /* An empty segment ("//", a trailing '/') names nothing. */
        if (sg->n == DYNO_REST_SEGS_MAX || *p == '\0')
            return rest_fail(DYNO_ENOTFOUND, REST_NO_ROUTE, why);
        if (dyno_url_decode(p))
            return rest_fail(DYNO_EINVAL, "bad percent-encoding in the path", why);
        sg->s[sg->n++] = p;
        if (!slash)
            return 0;
        p = slash + 1;
    }
}

/* Joins s[0..n) with '/' into out and checks it is a catalog. Each decoded segment is
 * checked on its own first: an escaped '/' ("a%2Fb") must not become a nesting level. */
static bool rest_catalog(char **s, int n, char *out, size_t cap)
{
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        if (!dyno_valid_segment(s[i]))
            return false;
        size_t l = strlen(s[i]);
        if (o + l + 2 > cap)
            return false;
        if (i)
            out[o++] = '/';
        memcpy(out + o, s[i], l);
        o += l;
    }
    out[o] = '\0';
    return dyno_valid_catalog(out);
}

static const char *const rest_reserved_words[] = {"objects", "shares", "subscription", NULL};

bool dyno_rest_reserved(const char *segment)
{
    for (size_t i = 0; segment && rest_reserved_words[i]; i++)
        if (strcmp(segment, rest_reserved_words[i]) == 0)
            return true;
    return false;
}

int dyno_rest_catalog_creatable(const char *path, const char **why)
{
    char seg[DYNO_SEG_MAX + 1];
    if (!dyno_valid_catalog(path))
        return rest_fail(DYNO_EINVAL, REST_BAD_CATALOG, why);
    /* A valid catalog's segments are 1..DYNO_SEG_MAX bytes, so each fits seg. */
    for (const char *p = path;;) {
        size_t n = strcspn(p, "/");
        memcpy(seg, p, n);
        seg[n] = '\0';
        if (dyno_rest_reserved(seg))
            return rest_fail(DYNO_EINVAL, DYNO_REST_RESERVED_WHY, why);
        if (p[n] == '\0')
            return 0;
        p += n + 1;
    }
}

/* What follows "~": sub[0..nsub) names the catalog itself (nothing) or a sub-resource. */
static int rest_sub_resource(char **sub, int nsub, struct dyno_rest_route *out, const char **why)
{
    if (nsub == 0) {
        out->kind = DYNO_REST_CATALOG;
    } else if (nsub == 1 && strcmp(sub[0], "objects") == 0) {
        out->kind = DYNO_REST_CATALOG_OBJECTS;
    } else if (nsub == 1 && strcmp(sub[0], "shares") == 0) {
        out->kind = DYNO_REST_CATALOG_SHARES;
    } else if (nsub == 1 && strcmp(sub[0], "subscription") == 0) {
        out->kind = DYNO_REST_CATALOG_SUBSCRIPTION;
    } else if (nsub == 2 && strcmp(sub[0], "shares") == 0) {
        if (!dyno_agent_valid_org(sub[1], false))
            return rest_fail(DYNO_EINVAL, "bad principal (a user, or an org path with '/' escaped as %2F)",
                             why);
        memcpy(out->name, sub[1], strlen(sub[1]) + 1);
        out->kind = DYNO_REST_CATALOG_SHARE;
    } else {
        return rest_fail(DYNO_ENOTFOUND,
                         "no such sub-resource of a catalog (~, ~/objects, ~/shares, ~/subscription)", why);
    }
    return 0;
}

/*
 * s[0..n): what follows /v1/catalogs/. With a "~" segment, the catalog is what precedes it
 * (any catalog). Without, the reserved words at the end name the sub-resource (the SPEC form,
 * rest.h), and the catalog before them may have no reserved segment: that keeps the two
 * readings of a path apart, so every path is one route.
 */
static int rest_catalog_route(char **s, int n, struct dyno_rest_route *out, const char **why)
{
    int cat_n = 0;
    while (cat_n < n && strcmp(s[cat_n], DYNO_REST_SUB) != 0)
        cat_n++;
    if (cat_n < n) {
        if (!rest_catalog(s, cat_n, out->catalog, sizeof(out->catalog)))
            return rest_fail(DYNO_EINVAL, REST_BAD_CATALOG, why);
        return rest_sub_resource(s + cat_n + 1, n - cat_n - 1, out, why);
    }
    out->spec_form = true;
    /* .../shares/<principal> first: read as .../<word> (.../shares/objects), the catalog
     * before the word would end in "shares", which the check below refuses anyway. */
    if (n >= 2 && strcmp(s[n - 2], "shares") == 0)
        cat_n = n - 2;
    else if (dyno_rest_reserved(s[n - 1]))
        cat_n = n - 1;
    bool reserved = false;
    for (int i = 0; i < cat_n; i++)
        reserved = reserved || dyno_rest_reserved(s[i]);
    if (!reserved && rest_catalog(s, cat_n, out->catalog, sizeof(out->catalog)))
        return rest_sub_resource(s + cat_n, n - cat_n, out, why);
    /* Point to "~" when the whole path would name a catalog: o/objects is reached as o/objects/~. */
    if (reserved || (cat_n < n && rest_catalog(s, n, out->catalog, sizeof(out->catalog))))
        return rest_fail(DYNO_EINVAL, REST_RESERVED_PATH, why);
    return rest_fail(DYNO_EINVAL, REST_BAD_CATALOG, why);
}

static int rest_route(struct rest_segs *sg, struct dyno_rest_route *out, const char **why)
{
    char **s = sg->s;
    int n = sg->n;
    if (n == 1 && strcmp(s[0], "healthz") == 0)
        return rest_is(out, DYNO_REST_HEALTHZ);
    if (n == 1 && strcmp(s[0], "metrics") == 0)
        return rest_is(out, DYNO_REST_METRICS);
    if (n < 2 || strcmp(s[0], "v1") != 0)
        return rest_fail(DYNO_ENOTFOUND, REST_NO_ROUTE, why);
    const char *top = s[1];
    if (strcmp(top, "auth") == 0 && n == 3 && strcmp(s[2], "login") == 0)
        return rest_is(out, DYNO_REST_LOGIN);
    if (strcmp(top, "auth") == 0 && n == 3 && strcmp(s[2], "whoami") == 0)
        return rest_is(out, DYNO_REST_WHOAMI);
    if (strcmp(top, "catalogs") == 0) {
        if (n == 2)
            return rest_is(out, DYNO_REST_CATALOGS);
        return rest_catalog_route(s + 2, n - 2, out, why);
    }
    if (strcmp(top, "objects") == 0 && (n == 3 || (n == 4 && strcmp(s[3], "meta") == 0))) {
        if (!dyno_valid_key(s[2]))
            return rest_fail(DYNO_EINVAL, "bad object key (32 lowercase hex)", why);
        memcpy(out->id, s[2], DYNO_KEY_LEN + 1);
        out->kind = n == 3 ? DYNO_REST_OBJECT : DYNO_REST_OBJECT_META;
        return 0;
    }
    if (strcmp(top, "containers") == 0 && n == 2)
        return rest_is(out, DYNO_REST_CONTAINERS);
    if (strcmp(top, "containers") == 0 && n == 4 && strcmp(s[3], "drain") == 0) {
        if (!dyno_valid_segment(s[2]))
            return rest_fail(DYNO_EINVAL, "bad container id ([A-Za-z0-9._-]{1,64})", why);
        memcpy(out->name, s[2], strlen(s[2]) + 1);
        return rest_is(out, DYNO_REST_CONTAINER_DRAIN);
    }
    if (strcmp(top, "admin") == 0 && n == 3 && strcmp(s[2], "rebuild-metadata") == 0)
        return rest_is(out, DYNO_REST_ADMIN_REBUILD);
    if (strcmp(top, "admin") == 0 && n == 3 && strcmp(s[2], "repair") == 0)
        return rest_is(out, DYNO_REST_ADMIN_REPAIR);
    if (strcmp(top, "users") == 0 && n == 2)
        return rest_is(out, DYNO_REST_USERS);
    if (strcmp(top, "tokens") == 0 && n == 2)
        return rest_is(out, DYNO_REST_TOKENS);
    if (strcmp(top, "tokens") == 0 && n == 3) {
        if (!dyno_valid_key(s[2]))
            return rest_fail(DYNO_EINVAL, "bad token id (32 lowercase hex, the token's jti)", why);
        memcpy(out->id, s[2], DYNO_KEY_LEN + 1);
        return rest_is(out, DYNO_REST_TOKEN);
    }
    if (strcmp(top, "events") == 0 && n == 2)
        return rest_is(out, DYNO_REST_EVENTS);
    if (strcmp(top, "keys") == 0 && n == 2)
        return rest_is(out, DYNO_REST_KEYS);
    if (strcmp(top, "keys") == 0 && n == 3) {
        if (!dyno_valid_access_key_id(s[2]))
            return rest_fail(DYNO_EINVAL, "bad access key id (DK and 18 of A-Z 0-9)", why);
        memcpy(out->name, s[2], DYNO_ACCESS_KEY_ID_LEN + 1);
        return rest_is(out, DYNO_REST_KEY);
    }
    return rest_fail(DYNO_ENOTFOUND, REST_NO_ROUTE, why);
}

int dyno_rest_route_parse(const char *path, struct dyno_rest_route *out, const char **why)
{
    char buf[DYNO_REST_PATH_MAX];
    struct rest_segs sg;
    memset(out, 0, sizeof(*out));
    if (why)
        *why = "";
    if (!path)
        return rest_fail(DYNO_ENOTFOUND, REST_NO_ROUTE, why);
    int rc = rest_split(path, buf, &sg, why);
    if (rc == 0)
        rc = rest_route(&sg, out, why);
    if (rc) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    return 0;
}

/* ---- formatting ---- */

struct rest_out {
    char *p;
    size_t cap, len;
    bool full;
};

static void rest_put(struct rest_out *o, const char *s, size_t n)
{
    if (o->full || o->len + n >= o->cap) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void rest_lit(struct rest_out *o, const char *s)
{
    rest_put(o, s, strlen(s));
}

/* One segment, "/" first, every byte outside [A-Za-z0-9._~-] escaped. */
static void rest_seg(struct rest_out *o, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    rest_lit(o, "/");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
            c == '_' || c == '-' || c == '~') {
            rest_put(o, (const char *)s, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rest_put(o, e, 3);
        }
    }
}

/* The catalog's segments, each on its own. */
static void rest_catalog_segs(struct rest_out *o, const char *catalog)
{
    char seg[DYNO_SEG_MAX + 1];
    const char *p = catalog;
    for (;;) {
        size_t n = strcspn(p, "/");
        memcpy(seg, p, n);
        seg[n] = '\0';
        rest_seg(o, seg);
        if (p[n] == '\0')
            return;
        p += n + 1;
    }
}

int dyno_rest_route_format(const struct dyno_rest_route *r, char *out, size_t cap)
{
    struct rest_out o = {.p = out, .cap = cap};
    if (!r || !out || cap == 0)
        return DYNO_EINVAL;
    out[0] = '\0';
    const char *tail = NULL; /* a fixed path, or what follows the catalog's "~" */
    switch (r->kind) {
    case DYNO_REST_HEALTHZ:
        tail = "/healthz";
        break;
    case DYNO_REST_METRICS:
        tail = "/metrics";
        break;
    case DYNO_REST_LOGIN:
        tail = "/v1/auth/login";
        break;
    case DYNO_REST_WHOAMI:
        tail = "/v1/auth/whoami";
        break;
    case DYNO_REST_USERS:
        tail = "/v1/users";
        break;
    case DYNO_REST_TOKENS:
        tail = "/v1/tokens";
        break;
    case DYNO_REST_CATALOGS:
        tail = "/v1/catalogs";
        break;
    case DYNO_REST_CONTAINERS:
        tail = "/v1/containers";
        break;
    case DYNO_REST_ADMIN_REBUILD:
        tail = "/v1/admin/rebuild-metadata";
        break;
    case DYNO_REST_ADMIN_REPAIR:
        tail = "/v1/admin/repair";
        break;
    case DYNO_REST_EVENTS:
        tail = "/v1/events";
        break;
    case DYNO_REST_KEYS:
        tail = "/v1/keys";
        break;
    case DYNO_REST_KEY:
        if (!dyno_valid_access_key_id(r->name))
            return DYNO_EINVAL;
        rest_lit(&o, "/v1/keys");
        rest_seg(&o, r->name);
        break;
    case DYNO_REST_TOKEN:
    case DYNO_REST_OBJECT:
    case DYNO_REST_OBJECT_META:
        if (!dyno_valid_key(r->id))
            return DYNO_EINVAL;
        rest_lit(&o, r->kind == DYNO_REST_TOKEN ? "/v1/tokens" : "/v1/objects");
        rest_seg(&o, r->id);
        if (r->kind == DYNO_REST_OBJECT_META)
            rest_lit(&o, "/meta");
        break;
    case DYNO_REST_CONTAINER_DRAIN:
        if (!dyno_valid_segment(r->name))
            return DYNO_EINVAL;
        rest_lit(&o, "/v1/containers");
        rest_seg(&o, r->name);
        rest_lit(&o, "/drain");
        break;
    case DYNO_REST_CATALOG:
    case DYNO_REST_CATALOG_OBJECTS:
    case DYNO_REST_CATALOG_SHARES:
    case DYNO_REST_CATALOG_SHARE:
    case DYNO_REST_CATALOG_SUBSCRIPTION:
        if (!dyno_valid_catalog(r->catalog))
            return DYNO_EINVAL;
        if (r->kind == DYNO_REST_CATALOG_SHARE && !dyno_agent_valid_org(r->name, false))
            return DYNO_EINVAL;
        rest_lit(&o, "/v1/catalogs");
        rest_catalog_segs(&o, r->catalog);
        rest_lit(&o, "/" DYNO_REST_SUB); /* the "~" form reaches every catalog (rest.h) */
        if (r->kind == DYNO_REST_CATALOG_OBJECTS)
            rest_lit(&o, "/objects");
        else if (r->kind == DYNO_REST_CATALOG_SHARES || r->kind == DYNO_REST_CATALOG_SHARE)
            rest_lit(&o, "/shares");
        else if (r->kind == DYNO_REST_CATALOG_SUBSCRIPTION)
            rest_lit(&o, "/subscription");
        if (r->kind == DYNO_REST_CATALOG_SHARE)
            rest_seg(&o, r->name);
        break;
    default:
        return DYNO_EINVAL;
    }
    if (tail)
        rest_lit(&o, tail);
    if (o.full) {
        out[0] = '\0';
        return DYNO_ETOOBIG;
    }
    return 0;
}

/* ---- query values and headers ---- */

int dyno_rest_dec(const char *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;
    if (n == 0)
        return DYNO_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return DYNO_EINVAL;
        uint64_t d = (uint64_t)(v[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return DYNO_EINVAL;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

int dyno_rest_parse_u64(const char *v, uint64_t *out)
{
    uint64_t x;
    if (!v || dyno_rest_dec(v, strlen(v), &x))
        return DYNO_EINVAL;
    *out = x;
    return 0;
}

int dyno_rest_parse_limit(const char *v, int *out)
{
    uint64_t x;
    if (dyno_rest_parse_u64(v, &x) || x < 1 || x > DYNO_REST_LIMIT_MAX)
        return DYNO_EINVAL;
    *out = (int)x;
    return 0;
}

bool dyno_rest_flag(const char *v)
{
    return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0);
}

int dyno_rest_parse_resilience(const char *v, int *k, int *m)
{
    uint64_t a, b;
    const char *comma = v ? strchr(v, ',') : NULL;
    if (!comma || dyno_rest_dec(v, (size_t)(comma - v), &a) ||
        dyno_rest_dec(comma + 1, strlen(comma + 1), &b) || a < 1 || a > DYNO_EC_MAX_K || b > DYNO_EC_MAX_M)
        return DYNO_EINVAL;
    *k = (int)a;
    *m = (int)b;
    return 0;
}

int dyno_url_decode(char *s)
{
    char *w = s;

    if (s == NULL)
        return DYNO_EINVAL;
    /* Validate first so that a bad input is left exactly as it was. An embedded NUL
     * (%00) would silently truncate the name every later check sees. */
    for (const char *r = s; *r != '\0'; r++) {
        if (*r != '%')
            continue;
        int hi = dyno_hexval(r[1]);
        int lo = hi < 0 ? -1 : dyno_hexval(r[2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            return DYNO_EINVAL;
        r += 2;
    }
    /* '+' stays '+': this decodes path segments, where it is a literal character. */
    for (const char *r = s; *r != '\0'; r++) {
        if (*r == '%') {
            *w++ = (char)(dyno_hexval(r[1]) << 4 | dyno_hexval(r[2]));
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return 0;
}
