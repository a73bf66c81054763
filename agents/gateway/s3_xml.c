/*
 * The XML reader of S3 request bodies (s3_xml.h): a pull reader over a complete, bounded
 * document, written for hostile input (every read checks the end; no entity expansion).
 */
#include "s3_xml.h"

#include <stdint.h>
#include <string.h>

#include "dynostore/error.h"

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

/* The end tag of the innermost open element at x->p; the element is closed (depth - 1). */
static int xml__end_tag(struct s3_xml *x)
{
    if (!xml__starts(x, "</") || x->depth < 1)
        return DYNO_EINVAL;
    x->p += 2;
    char got[S3_XML_NAME_MAX + 1];
    if (xml__name(x, got, sizeof(got)) != 0 || strcmp(got, x->open[x->depth - 1]) != 0)
        return DYNO_EINVAL;
    while (x->p < x->end && xml__space(*x->p))
        x->p++;
    if (x->p >= x->end || *x->p != '>')
        return DYNO_EINVAL;
    x->p++;
    x->depth--;
    return 0;
}

/* Records name as the innermost open element (depth + 1). */
static int xml__push(struct s3_xml *x, const char *name)
{
    if (x->depth >= S3_XML_DEPTH || strlen(name) > S3_XML_NAME_MAX)
        return DYNO_EINVAL;
    memcpy(x->open[x->depth], name, strlen(name) + 1);
    x->depth++;
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
    x->depth = 0;
    x->empty = empty;
    return xml__push(x, name);
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
    if (xml__starts(x, "</"))
        return xml__end_tag(x) == 0 ? 0 : DYNO_EINVAL;
    if (xml__starts(x, "<!") || xml__starts(x, "<?"))
        return DYNO_EINVAL;
    x->p++;
    bool empty = false;
    if (xml__name(x, name, cap) != 0 || xml__tag_end(x, &empty) != 0 || xml__push(x, name) != 0)
        return DYNO_EINVAL;
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

static int xml__text(struct s3_xml *x, char *out, size_t cap, size_t *np)
{
    /* *np: the bytes of out so far, at every return (the caller terminates out there). */
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
            if (*np + 1 >= cap)
                return DYNO_ETOOBIG;
            out[(*np)++] = *x->p++;
            continue;
        }
        bool done = false;
        for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]) && !done; i++) {
            if (xml__starts(x, ents[i].ent)) {
                if (*np + 1 >= cap)
                    return DYNO_ETOOBIG;
                out[(*np)++] = ents[i].c;
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
        int rc = xml__utf8(cp, out, cap, np);
        if (rc)
            return rc;
        x->p = q + 1;
    }
    out[*np] = '\0';
    if (xml__starts(x, "<![CDATA["))
        return DYNO_EINVAL;
    return xml__end_tag(x);
}

int s3_xml_text(struct s3_xml *x, char *out, size_t cap)
{
    if (cap == 0)
        return DYNO_ETOOBIG;
    size_t n = 0;
    int rc = xml__text(x, out, cap, &n);
    out[n < cap ? n : cap - 1] = '\0'; /* terminated whatever the outcome */
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
