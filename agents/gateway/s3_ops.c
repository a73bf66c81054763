/*
 * What the S3 operations of s3-ops share (s3_ops.h): the XML reader of request bodies, MD5,
 * the lookup of an object by name, and the server-side copy of an object's bytes.
 */
#include "s3_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "json.h"
#include "log.h"

#define COPY_BLOCK (1u << 20) /* bytes moved from the get to the put at a time */

/* ---- XML ---- */

void s3_xml_init(struct s3_xml *x, const char *doc, size_t len)
{
    x->p = doc;
    x->end = doc + len;
    x->depth = 0;
    x->empty = false;
}

static bool xml__space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool xml__starts(const struct s3_xml *x, const char *s)
{
    size_t n = strlen(s);
    return (size_t)(x->end - x->p) >= n && memcmp(x->p, s, n) == 0;
}

/* Skips white space, comments and (before the root only) the XML declaration. */
static int xml__skip_misc(struct s3_xml *x)
{
    for (;;) {
        while (x->p < x->end && xml__space(*x->p))
            x->p++;
        const char *close = NULL;
        if (xml__starts(x, "<!--"))
            close = "-->";
        else if (x->depth == 0 && xml__starts(x, "<?xml"))
            close = "?>";
        else
            return 0;
        const char *q = x->p + 4;
        size_t cl = strlen(close);
        while (q + cl <= x->end && memcmp(q, close, cl) != 0)
            q++;
        if (q + cl > x->end)
            return DYNO_EINVAL;
        x->p = q + cl;
    }
}

/* A tag's name at x->p into name; x->p after it. */
static int xml__name(struct s3_xml *x, char *name, size_t cap)
{
    const char *s = x->p;
    while (x->p < x->end && !xml__space(*x->p) && *x->p != '>' && *x->p != '/' && *x->p != '<')
        x->p++;
    size_t n = (size_t)(x->p - s);
    if (n == 0 || n >= cap)
        return DYNO_EINVAL;
    memcpy(name, s, n);
    name[n] = '\0';
    return 0;
}

/* After a start tag's name: its attributes (skipped, quotes honoured) up to '>' or "/>". */
static int xml__tag_end(struct s3_xml *x, bool *empty)
{
    char quote = 0;
    for (; x->p < x->end; x->p++) {
        char c = *x->p;
        if (quote) {
            if (c == quote)
                quote = 0;
        } else if (c == '"' || c == '\'') {
            quote = c;
        } else if (c == '<') {
            return DYNO_EINVAL;
        } else if (c == '>') {
            *empty = x->p[-1] == '/'; /* the name came before: p[-1] is in the tag */
            x->p++;
            return 0;
        }
    }
    return DYNO_EINVAL;
}

/* An end tag </name> at x->p. */
static int xml__end_tag(struct s3_xml *x, const char *name)
{
    if (!xml__starts(x, "</"))
        return DYNO_EINVAL;
    x->p += 2;
    char got[128];
    if (xml__name(x, got, sizeof(got)) != 0 || (name && strcmp(got, name) != 0))
        return DYNO_EINVAL;
    while (x->p < x->end && xml__space(*x->p))
        x->p++;
    if (x->p >= x->end || *x->p != '>')
        return DYNO_EINVAL;
    x->p++;
    return 0;
}

int s3_xml_root(struct s3_xml *x, const char *root)
{
    if (xml__skip_misc(x) != 0 || !xml__starts(x, "<") || xml__starts(x, "</") || xml__starts(x, "<!"))
        return DYNO_EINVAL;
    x->p++;
    char name[128];
    bool empty = false;
    if (xml__name(x, name, sizeof(name)) != 0 || strcmp(name, root) != 0 || xml__tag_end(x, &empty) != 0)
        return DYNO_EINVAL;
    x->depth = 1;
    x->empty = empty;
    return 0;
}

int s3_xml_child(struct s3_xml *x, char *name, size_t cap)
{
    if (x->empty) {
        /* <parent/>: no children, and nothing to consume. */
        x->empty = false;
        x->depth--;
        return 0;
    }
    if (xml__skip_misc(x) != 0 || x->p >= x->end || *x->p != '<')
        return DYNO_EINVAL; /* text between elements is not S3's */
    if (xml__starts(x, "</")) {
        if (xml__end_tag(x, NULL) != 0)
            return DYNO_EINVAL;
        x->depth--;
        return 0;
    }
    if (xml__starts(x, "<!") || xml__starts(x, "<?"))
        return DYNO_EINVAL;
    x->p++;
    bool empty = false;
    if (xml__name(x, name, cap) != 0 || xml__tag_end(x, &empty) != 0)
        return DYNO_EINVAL;
    x->depth++;
    x->empty = empty;
    return 1;
}

/* Appends the UTF-8 of code point cp to out[*n..cap). */
static int xml__utf8(unsigned long cp, char *out, size_t cap, size_t *n)
{
    char b[4];
    size_t l;
    if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return DYNO_EINVAL;
    if (cp < 0x80) {
        b[0] = (char)cp;
        l = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3f));
        l = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        l = 3;
    } else {
        b[0] = (char)(0xf0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        l = 4;
    }
    if (*n + l >= cap)
        return DYNO_ETOOBIG;
    memcpy(out + *n, b, l);
    *n += l;
    return 0;
}

int s3_xml_text(struct s3_xml *x, char *out, size_t cap)
{
    size_t n = 0;
    if (cap == 0)
        return DYNO_ETOOBIG;
    out[0] = '\0';
    if (x->empty) {
        x->empty = false;
        x->depth--;
        return 0;
    }
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
    while (x->p < x->end && *x->p != '<') {
        if (*x->p != '&') {
            if (n + 1 >= cap)
                return DYNO_ETOOBIG;
            out[n++] = *x->p++;
            continue;
        }
        bool done = false;
        for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]) && !done; i++) {
            if (xml__starts(x, ents[i].ent)) {
                if (n + 1 >= cap)
                    return DYNO_ETOOBIG;
                out[n++] = ents[i].c;
                x->p += strlen(ents[i].ent);
                done = true;
            }
        }
        if (done)
            continue;
        if (!xml__starts(x, "&#"))
            return DYNO_EINVAL;
        const char *q = x->p + 2;
        int base = 10;
        if (q < x->end && (*q == 'x' || *q == 'X')) {
            base = 16;
            q++;
        }
        unsigned long cp = 0;
        const char *digits = q;
        while (q < x->end && *q != ';' && q - digits < 8) {
            int d = (*q >= '0' && *q <= '9')                 ? *q - '0'
                    : (base == 16 && *q >= 'a' && *q <= 'f') ? *q - 'a' + 10
                    : (base == 16 && *q >= 'A' && *q <= 'F') ? *q - 'A' + 10
                                                             : -1;
            if (d < 0)
                return DYNO_EINVAL;
            cp = cp * (unsigned long)base + (unsigned long)d;
            q++;
        }
        if (q == digits || q >= x->end || *q != ';')
            return DYNO_EINVAL;
        int rc = xml__utf8(cp, out, cap, &n);
        if (rc)
            return rc;
        x->p = q + 1;
    }
    out[n] = '\0';
    if (xml__starts(x, "<![CDATA["))
        return DYNO_EINVAL;
    int rc = xml__end_tag(x, NULL);
    if (rc == 0)
        x->depth--;
    return rc;
}

int s3_xml_skip(struct s3_xml *x)
{
    int target = x->depth - 1;
    char name[128], text[256];
    while (x->depth > target) {
        int rc = s3_xml_child(x, name, sizeof(name));
        if (rc < 0) {
            /* Text: read it as a leaf. */
            if (s3_xml_text(x, text, sizeof(text)) == DYNO_EINVAL)
                return DYNO_EINVAL;
        }
    }
    return 0;
}

/* ---- MD5 ---- */

struct s3_md5 {
    EVP_MD_CTX *ctx;
};

int s3_md5_new(struct s3_md5 **out)
{
    struct s3_md5 *m = calloc(1, sizeof(*m));
    if (!m || !(m->ctx = EVP_MD_CTX_new()) || EVP_DigestInit_ex(m->ctx, EVP_md5(), NULL) != 1) {
        s3_md5_free(m);
        *out = NULL;
        return DYNO_ENOMEM;
    }
    *out = m;
    return 0;
}

void s3_md5_update(struct s3_md5 *m, const void *p, size_t n)
{
    if (n)
        EVP_DigestUpdate(m->ctx, p, n);
}

void s3_md5_final(struct s3_md5 *m, uint8_t out[16])
{
    unsigned int len = 16;
    EVP_DigestFinal_ex(m->ctx, out, &len);
}

void s3_md5_free(struct s3_md5 *m)
{
    if (!m)
        return;
    EVP_MD_CTX_free(m->ctx);
    free(m);
}

void s3_md5(const void *p, size_t n, uint8_t out[16])
{
    unsigned int len = 16;
    EVP_Digest(p, n, out, &len, EVP_md5(), NULL);
}

int s3_content_md5_check(const char *header, const void *p, size_t n)
{
    size_t hl = strlen(header);
    if (hl != 24)
        return DYNO_EINVAL;
    uint8_t dec[24];
    /* EVP_DecodeBlock counts the padding as zero bytes: 24 characters give 18. */
    if (EVP_DecodeBlock(dec, (const unsigned char *)header, 24) != 18 || header[22] != '=' ||
        header[23] != '=')
        return DYNO_EINVAL;
    uint8_t md[16];
    s3_md5(p, n, md);
    return memcmp(md, dec, 16) == 0 ? 0 : DYNO_ECONFLICT;
}

/* ---- objects ---- */

int s3_find_object(struct gw *gw, const char *catalog, const char *name, cJSON **obj, char *msg, size_t cap)
{
    *obj = NULL;
    /* Names sort bytewise, so a name is the first name that starts with it. */
    cJSON *params = cJSON_CreateObject(), *res = NULL;
    if (!params) {
        snprintf(msg, cap, "out of memory");
        return DYNO_ENOMEM;
    }
    cJSON_AddStringToObject(params, "catalog", catalog);
    cJSON_AddStringToObject(params, "prefix", name);
    cJSON_AddNumberToObject(params, "limit", 1);
    int rc = gw_rpc(gw, "metadata", "object.list", params, &res, msg, cap);
    cJSON_Delete(params);
    if (rc)
        return rc;
    cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "objects"), 0);
    const char *got = dyno_json_str(first, "name");
    if (!got || strcmp(got, name) != 0) {
        cJSON_Delete(res);
        snprintf(msg, cap, "no object %s in %s", name, catalog);
        return DYNO_ENOTFOUND;
    }
    cJSON *o = cJSON_DetachItemFromArray(cJSON_GetObjectItemCaseSensitive(res, "objects"), 0);
    cJSON_Delete(res);
    if (!o || !cJSON_AddStringToObject(o, "catalog", catalog)) {
        cJSON_Delete(o);
        snprintf(msg, cap, "out of memory");
        return DYNO_ENOMEM;
    }
    *obj = o;
    return 0;
}

int s3_delete_name(struct gw *gw, struct gw_conn *conn, const char *catalog, const char *name, char *msg,
                   size_t cap)
{
    cJSON *o = NULL;
    int rc = s3_find_object(gw, catalog, name, &o, msg, cap);
    if (rc == DYNO_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    const char *key = dyno_json_str(o, "key");
    rc = dyno_valid_key(key) ? gw_evict_object(gw, conn, key, o, msg, cap) : DYNO_EPROTO;
    if (rc == DYNO_EPROTO)
        snprintf(msg, cap, "metadata listed an object without a key");
    cJSON_Delete(o);
    return rc == DYNO_ENOTFOUND ? 0 : rc; /* deleted meanwhile: the same outcome */
}

/* ---- server-side copy ---- */

int s3_stream_copy(struct gw *gw, struct gw_conn *conn, const char *src_key, const cJSON *src,
                   struct gw_put *p, struct s3_md5 *md5, void (*tick)(void *arg), void *arg, char *msg,
                   size_t cap)
{
    int64_t size = 0;
    if (dyno_json_i64(src, "size", &size) != 0 || size < 0) {
        snprintf(msg, cap, "metadata answered an object without a size");
        return DYNO_EPROTO;
    }
    if (size == 0)
        return 0;
    struct gw_get *g = NULL;
    int rc = gw_get_new(gw, conn, src_key, src, &g);
    if (rc) {
        snprintf(msg, cap, "cannot read object %s: %s", src_key, dyno_strerror(rc));
        return rc;
    }
    char *buf = malloc(COPY_BLOCK);
    if (!buf) {
        gw_get_free(g);
        snprintf(msg, cap, "out of memory");
        return DYNO_ENOMEM;
    }
    /* A whole read: the get core checks the object's SHA-256 before its last stripe, so a
     * copy never commits bytes that fail it. */
    rc = gw_get_start(g, 0, (uint64_t)size - 1, GW_GET_VERIFY);
    if (rc)
        snprintf(msg, cap, "cannot read object %s: %s", src_key, gw_get_msg(g));
    while (rc == 0) {
        ssize_t n = gw_get_read(g, buf, COPY_BLOCK);
        if (n == 0)
            break;
        if (n < 0) {
            snprintf(msg, cap, "reading object %s failed: %s", src_key, gw_get_msg(g));
            rc = DYNO_EIO;
            break;
        }
        if (md5)
            s3_md5_update(md5, buf, (size_t)n);
        rc = gw_put_write(p, buf, (size_t)n);
        if (rc)
            snprintf(msg, cap, "%s", gw_put_msg(p));
        if (tick)
            tick(arg);
    }
    free(buf);
    gw_get_free(g);
    return rc;
}
