/*
 * Validators for user-chosen names. Everything here is called on untrusted input
 * (REST paths, MQTT topics, fragment headers), so every function accepts NULL and never
 * reads past the terminating NUL or past its maximum length.
 */
#include "names.h"

#include <string.h>

#include <openssl/rand.h>

#include "acl.h" /* DYNO_ACL_ORG_MAX */
#include "dynostore/error.h"
#include "hash.h"

static bool seg_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* Validates the segment s[0..len) (not NUL-terminated). */
static bool valid_segment_n(const char *s, size_t len)
{
    if (len == 0 || len > DYNO_SEG_MAX)
        return false;
    /* "." and ".." would walk the on-disk and topic trees. */
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!seg_char((unsigned char)s[i]))
            return false;
    }
    return true;
}

bool dyno_valid_segment(const char *s)
{
    if (!s)
        return false;
    /* strnlen so an unterminated hostile string is never read past its limit + 1. */
    size_t len = strnlen(s, DYNO_SEG_MAX + 1);
    return valid_segment_n(s, len);
}

bool dyno_valid_catalog(const char *path)
{
    if (!path)
        return false;
    size_t len = strnlen(path, DYNO_CATALOG_MAX + 1);
    if (len > DYNO_CATALOG_MAX)
        return false;

    int segs = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && path[i] != '/')
            continue;
        /* An empty segment ("a//b", leading or trailing '/') fails here. */
        if (!valid_segment_n(path + start, i - start))
            return false;
        if (++segs > DYNO_DEPTH_MAX + 1)
            return false;
        start = i + 1;
    }
    /* The owner plus at least one catalog segment. */
    return segs >= 2;
}

/*
 * Decodes one UTF-8 sequence at s (n bytes available). Returns its length and the code
 * point in *cp, or 0 when it is malformed: truncated, bad continuation, overlong,
 * a surrogate or beyond U+10FFFF.
 */
static size_t utf8_decode(const unsigned char *s, size_t n, unsigned long *cp)
{
    unsigned long c;
    size_t len;
    unsigned long min;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) { /* 0xc0, 0xc1 only start overlongs */
        len = 2;
        c = s[0] & 0x1f;
        min = 0x80;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        c = s[0] & 0x0f;
        min = 0x800;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        c = s[0] & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/* 1..DYNO_NAME_MAX bytes of UTF-8 without controls or '\\'; '/' only when slash_ok. */
static bool valid_name_text(const char *name, bool slash_ok)
{
    if (!name)
        return false;
    size_t len = strnlen(name, DYNO_NAME_MAX + 1);
    if (len == 0 || len > DYNO_NAME_MAX)
        return false;
    const unsigned char *s = (const unsigned char *)name;
    for (size_t i = 0; i < len;) {
        unsigned long cp;
        size_t step = utf8_decode(s + i, len - i, &cp);
        if (step == 0)
            return false;
        /* C0, DEL and C1 controls: they break logs, terminals and HTTP headers. */
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return false;
        /* A backslash would let a name pose as a path on another system. */
        if (cp == '\\' || (cp == '/' && !slash_ok))
            return false;
        i += step;
    }
    return true;
}

bool dyno_valid_text(const char *s, size_t max)
{
    if (!s)
        return false;
    size_t len = strnlen(s, max + 1);
    if (len == 0 || len > max)
        return false;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        unsigned long cp;
        size_t step = utf8_decode(u + i, len - i, &cp);
        if (step == 0 || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return false;
        i += step;
    }
    return true;
}

bool dyno_valid_name(const char *name)
{
    if (!valid_name_text(name, true))
        return false;
    /* '/' is allowed (S3 keys, issue 14: "photos/2026/a.jpg"), but never so that a name
     * could walk a tree built from it: no leading '/', and no segment "." or "..". Empty
     * segments ("a//b", "dir/") are kept: they are ordinary S3 keys. */
    if (name[0] == '/')
        return false;
    for (const char *seg = name;;) {
        const char *slash = strchr(seg, '/');
        size_t n = slash ? (size_t)(slash - seg) : strlen(seg);
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        if (!slash)
            return true;
        seg = slash + 1;
    }
}

bool dyno_valid_plain_name(const char *name)
{
    if (!valid_name_text(name, false))
        return false;
    return strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

bool dyno_valid_key(const char *key)
{
    if (!key)
        return false;
    for (size_t i = 0; i < DYNO_KEY_LEN; i++) {
        char c = key[i]; /* a short key stops at its NUL, which is not hex */
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return key[DYNO_KEY_LEN] == '\0';
}

bool dyno_valid_access_key_id(const char *id)
{
    if (!id || id[0] != 'D' || id[1] != 'K')
        return false;
    for (size_t i = 2; i < DYNO_ACCESS_KEY_ID_LEN; i++) {
        char c = id[i]; /* a short id stops at its NUL */
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return false;
    }
    return id[DYNO_ACCESS_KEY_ID_LEN] == '\0';
}

int dyno_key_new(char out[DYNO_KEY_LEN + 1])
{
    uint8_t raw[DYNO_KEY_LEN / 2];

    if (RAND_bytes(raw, (int)sizeof(raw)) != 1)
        return DYNO_EINTERNAL;
    dyno_hex(raw, sizeof(raw), out);
    return 0;
}

int dyno_catalog_owner(const char *path, char *out_owner, size_t cap)
{
    if (!dyno_valid_catalog(path) || !out_owner)
        return DYNO_EINVAL;
    /* A valid catalog always has a '/' after the owner. */
    size_t len = (size_t)(strchr(path, '/') - path);
    if (len + 1 > cap)
        return DYNO_EINVAL;
    memcpy(out_owner, path, len);
    out_owner[len] = '\0';
    return 0;
}

bool dyno_agent_valid_org(const char *org, bool empty_ok)
{
    if (!org)
        return false;
    size_t len = strnlen(org, DYNO_ACL_ORG_MAX + 1);
    if (len == 0)
        return empty_ok;
    if (len > DYNO_ACL_ORG_MAX)
        return false;
    char seg[DYNO_SEG_MAX + 1];
    size_t start = 0;
    int segs = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && org[i] != '/')
            continue;
        if (i == start || i - start > DYNO_SEG_MAX || ++segs > DYNO_DEPTH_MAX)
            return false;
        memcpy(seg, org + start, i - start);
        seg[i - start] = '\0';
        if (!dyno_valid_segment(seg))
            return false;
        start = i + 1;
    }
    return true;
}

/* The one binary search of both: name of element i is at(i). */
static size_t names__search(const void *base, size_t n, size_t size, size_t off, bool ptr, const char *name,
                            bool *found)
{
    const char *b = base;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *e = ptr ? ((const char *const *)base)[mid] : b + mid * size;
        int cmp = strcmp(e + off, name);
        if (cmp == 0) {
            *found = true;
            return mid;
        }
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

size_t dyno_name_search(const void *base, size_t n, size_t size, size_t off, const char *name, bool *found)
{
    return names__search(base, n, size, off, false, name, found);
}

size_t dyno_name_search_ptr(const void *const *base, size_t n, size_t off, const char *name, bool *found)
{
    return names__search(base, n, 0, off, true, name, found);
}
