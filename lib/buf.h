/*
 * dyno_buf: a growable byte buffer with a hard maximum (like curl's dynbuf).
 * Every buffer that grows from network input has a max; appending past it fails with
 * DYNO_ETOOBIG and leaves the buffer as it was. data is always NUL-terminated (the NUL
 * is not counted in len), so a text buffer can be used as a C string.
 */
#ifndef DYNO_BUF_H
#define DYNO_BUF_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dyno_buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /* largest len allowed */
};

void dyno_buf_init(struct dyno_buf *b, size_t max);
/* 0, DYNO_ETOOBIG (buffer unchanged) or DYNO_ENOMEM. */
int dyno_buf_append(struct dyno_buf *b, const void *p, size_t n);
int dyno_buf_printf(struct dyno_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dyno_buf_reset(struct dyno_buf *b); /* len = 0, keeps memory */
/* Hands data to the caller (who frees it) and reinitialises b; NULL if empty. */
char *dyno_buf_take(struct dyno_buf *b, size_t *len);
void dyno_buf_free(struct dyno_buf *b);
/*
 * Fills a fixed-size unit from a stream: copies bytes of (*data, *len) to dst + *have
 * until *have reaches need, and advances *data, *len and *have past them. True once the
 * unit is whole (*have == need). The step every push parser and stripe filler repeats
 * (lib/frag.c's parser, the gateway's stripe buffer).
 */
bool dyno_fill(uint8_t *dst, size_t *have, size_t need, const uint8_t **data, size_t *len);
#endif
