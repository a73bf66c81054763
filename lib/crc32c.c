/*
 * CRC32C from ISA-L (hardware CRC32 instruction when the CPU has it), declared in hash.h.
 * Apart from hash.c because only the server side (fragments) needs it: the client library
 * links hash.c for SHA-256 and must not pull ISA-L in.
 */
#include "hash.h"

#include <limits.h>

#include <isa-l/crc.h>

/*
 * ISA-L's crc32_iscsi is the raw reflected CRC register update: it neither inverts the
 * seed nor the result. The standard CRC32C (init ~0, final xor ~0) is therefore
 * ~crc32_iscsi(buf, len, ~0). Inverting the caller's crc on the way in undoes the final
 * xor of the previous call, so chaining crc32c(crc32c(0, a), b) equals crc32c(0, a||b).
 */
uint32_t dyno_crc32c(uint32_t crc, const void *buf, size_t len)
{
    /* crc32_iscsi takes a non-const pointer but never writes through it. */
    unsigned char *p = (unsigned char *)(uintptr_t)buf;
    uint32_t reg = ~crc;

    /* Its length is an int: feed huge buffers in pieces. */
    while (len > 0) {
        size_t chunk = len > (size_t)(INT_MAX / 2) ? (size_t)(INT_MAX / 2) : len;
        reg = crc32_iscsi(p, (int)chunk, reg);
        p += chunk;
        len -= chunk;
    }
    return ~reg;
}
