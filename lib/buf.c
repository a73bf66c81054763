/* Bounded growable buffer (lib/buf.h). */
#include "buf.h"

#include <dynostore/error.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dyno_buf_init(struct dyno_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

/* Makes room for n more bytes plus the terminating NUL. */
static int reserve(struct dyno_buf *b, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return DYNO_ETOOBIG;
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return DYNO_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int dyno_buf_append(struct dyno_buf *b, const void *p, size_t n)
{
    int rc = reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int dyno_buf_printf(struct dyno_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return DYNO_EINVAL;
    int rc = reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void dyno_buf_reset(struct dyno_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *dyno_buf_take(struct dyno_buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    if (!p && len)
        *len = 0;
    dyno_buf_init(b, b->max);
    return p;
}

void dyno_buf_free(struct dyno_buf *b)
{
    free(b->data);
    dyno_buf_init(b, b->max);
}

bool dyno_fill(uint8_t *dst, size_t *have, size_t need, const uint8_t **data, size_t *len)
{
    size_t take = need - *have;
    if (take > *len)
        take = *len;
    memcpy(dst + *have, *data, take);
    *have += take;
    *data += take;
    *len -= take;
    return *have == need;
}
