/*
 * Helpers shared by the libFuzzer targets in tests/fuzz/ (one fuzz_<name>.c per parser).
 *
 * A target checks what the API under test promises and calls FUZZ_CHECK on it: a broken
 * promise prints the condition and aborts, which libFuzzer reports as a crash and saves
 * the input. assert() is not used because a release build would drop it.
 */
#ifndef DYNO_FUZZ_H
#define DYNO_FUZZ_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond);                   \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* xorshift64: deterministic choices (chunk sizes) derived from the input, so a saved crash
 * input replays the same way. A zero state is moved off zero, where xorshift sticks. */
static inline uint64_t fuzz_rng(uint64_t *s)
{
    if (*s == 0)
        *s = 0x9e3779b97f4a7c15u;
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* FNV-1a over n bytes, continuing from h (start with FUZZ_FNV_INIT). */
#define FUZZ_FNV_INIT 0xcbf29ce484222325u
static inline uint64_t fuzz_fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3u;
    }
    return h;
}

/* The oracle for an org path, written apart from lib/: seg[/seg...] of 1..DYNO_DEPTH_MAX
 * valid segments, at most max bytes; "" only when empty_ok. Needs names.h. */
static inline bool fuzz_org_ok(const char *org, bool empty_ok, size_t max)
{
    char seg[DYNO_SEG_MAX + 1];
    size_t depth = 0;

    if (*org == '\0')
        return empty_ok;
    if (strlen(org) > max)
        return false;
    for (const char *p = org;;) {
        size_t n = strcspn(p, "/");
        if (n == 0 || n > DYNO_SEG_MAX || ++depth > DYNO_DEPTH_MAX)
            return false;
        memcpy(seg, p, n);
        seg[n] = '\0';
        if (!dyno_valid_segment(seg))
            return false;
        if (p[n] == '\0')
            return true;
        p += n + 1;
    }
}

/* Splits the next NUL-terminated part off *p (n bytes left in *n) into a malloc'd C
 * string; the last part runs to the end. Never NULL (aborts on ENOMEM: a harness failure). */
static inline char *fuzz_take_part(const uint8_t **p, size_t *n, size_t *part_len)
{
    size_t len = 0;

    while (len < *n && (*p)[len] != '\0')
        len++;
    char *s = malloc(len + 1);
    FUZZ_CHECK(s != NULL);
    for (size_t i = 0; i < len; i++)
        s[i] = (char)(*p)[i];
    s[len] = '\0';
    if (part_len != NULL)
        *part_len = len;
    *p += len < *n ? len + 1 : len;
    *n -= len < *n ? len + 1 : len;
    return s;
}
#endif
