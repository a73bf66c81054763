/* Unit tests of lib/hash.c: CRC32C vectors and chaining, SHA-256 vectors, hex. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dynostore/error.h"
#include "hash.h"

static void test_crc32c_check_value(void **state)
{
    (void)state;
    /* The CRC-32C catalogue check value. */
    assert_int_equal(dyno_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(dyno_crc32c(0, "", 0), 0);
    assert_int_equal(dyno_crc32c(0x12345678u, NULL, 0), 0x12345678u);
}

static void test_crc32c_rfc3720_vectors(void **state)
{
    uint8_t buf[32];
    (void)state;
    /* RFC 3720 B.4: 32 bytes of zeros, of ones, incrementing, decrementing. */
    memset(buf, 0, sizeof(buf));
    assert_int_equal(dyno_crc32c(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xff, sizeof(buf));
    assert_int_equal(dyno_crc32c(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    assert_int_equal(dyno_crc32c(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    assert_int_equal(dyno_crc32c(0, buf, 32), 0x113FDB5Cu);
}

static void test_crc32c_chaining(void **state)
{
    uint8_t buf[1000];
    (void)state;
    srand(7);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)rand();
    uint32_t whole = dyno_crc32c(0, buf, sizeof(buf));
    /* Every split point, including empty halves. */
    for (size_t cut = 0; cut <= sizeof(buf); cut++) {
        uint32_t c = dyno_crc32c(dyno_crc32c(0, buf, cut), buf + cut, sizeof(buf) - cut);
        assert_int_equal(c, whole);
    }
    /* Three pieces, and byte by byte. */
    uint32_t c = dyno_crc32c(0, buf, 3);
    c = dyno_crc32c(c, buf + 3, 500);
    c = dyno_crc32c(c, buf + 503, sizeof(buf) - 503);
    assert_int_equal(c, whole);
    c = 0;
    for (size_t i = 0; i < sizeof(buf); i++)
        c = dyno_crc32c(c, buf + i, 1);
    assert_int_equal(c, whole);
    /* A flipped bit changes the CRC. */
    buf[500] ^= 0x10;
    assert_int_not_equal(dyno_crc32c(0, buf, sizeof(buf)), whole);
}

static void expect_sha(const void *p, size_t n, const char *hex)
{
    uint8_t d[32];
    char out[65];
    assert_int_equal(dyno_sha256(p, n, d), 0);
    dyno_hex(d, 32, out);
    assert_string_equal(out, hex);
}

static void test_sha256_vectors(void **state)
{
    (void)state;
    expect_sha("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect_sha(NULL, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect_sha("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect_sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
               "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_sha256_streaming(void **state)
{
    struct dyno_sha256 *h = NULL;
    uint8_t d[32], d1[32];
    char hex[65];
    (void)state;
    assert_int_equal(dyno_sha256_new(&h), 0);
    assert_non_null(h);
    /* One million 'a' in uneven pieces: the FIPS 180-2 long vector. */
    char *a = malloc(1000000);
    assert_non_null(a);
    memset(a, 'a', 1000000);
    size_t off = 0, step = 1;
    while (off < 1000000) {
        size_t n = 1000000 - off < step ? 1000000 - off : step;
        assert_int_equal(dyno_sha256_update(h, a + off, n), 0);
        off += n;
        step = step * 3 + 1;
    }
    assert_int_equal(dyno_sha256_final(h, d), 0);
    dyno_hex(d, 32, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* The same context after reset gives the same digest as one-shot. */
    assert_int_equal(dyno_sha256_reset(h), 0);
    assert_int_equal(dyno_sha256_update(h, "ab", 2), 0);
    assert_int_equal(dyno_sha256_update(h, NULL, 0), 0);
    assert_int_equal(dyno_sha256_update(h, "c", 1), 0);
    assert_int_equal(dyno_sha256_final(h, d), 0);
    assert_int_equal(dyno_sha256("abc", 3, d1), 0);
    assert_memory_equal(d, d1, 32);
    free(a);
    dyno_sha256_free(h);
    dyno_sha256_free(NULL);
}

static void test_sha256_bad_args(void **state)
{
    uint8_t d[32];
    (void)state;
    assert_int_equal(dyno_sha256(NULL, 5, d), DYNO_EINVAL);
    assert_int_equal(dyno_sha256_update(NULL, "a", 1), DYNO_EINVAL);
    assert_int_equal(dyno_sha256_final(NULL, d), DYNO_EINVAL);
}

static void test_hex(void **state)
{
    const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char out[2 * sizeof(in) + 1];
    uint8_t back[sizeof(in)];
    (void)state;
    dyno_hex(in, sizeof(in), out);
    assert_string_equal(out, "00017f80abff");
    assert_int_equal(dyno_unhex(out, back, sizeof(back)), 0);
    assert_memory_equal(back, in, sizeof(in));
    assert_int_equal(dyno_unhex("00017F80ABFF", back, sizeof(back)), 0);
    assert_memory_equal(back, in, sizeof(in));
    dyno_hex(in, 0, out);
    assert_string_equal(out, "");
    assert_int_equal(dyno_unhex("", back, 0), 0);
}

static void test_unhex_rejects(void **state)
{
    uint8_t out[3] = {9, 9, 9};
    (void)state;
    assert_int_equal(dyno_unhex("00112", out, 3), DYNO_EINVAL);   /* short */
    assert_int_equal(dyno_unhex("0011223", out, 3), DYNO_EINVAL); /* long */
    assert_int_equal(dyno_unhex("0011g2", out, 3), DYNO_EINVAL);  /* not hex */
    assert_int_equal(dyno_unhex(" 01122", out, 3), DYNO_EINVAL);
    assert_int_equal(dyno_unhex("0x1122", out, 3), DYNO_EINVAL);
    assert_int_equal(dyno_unhex(NULL, out, 3), DYNO_EINVAL);
    /* A failed parse leaves out untouched. */
    assert_int_equal(out[0], 9);
    assert_int_equal(out[1], 9);
    assert_int_equal(out[2], 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_check_value),
        cmocka_unit_test(test_crc32c_rfc3720_vectors),
        cmocka_unit_test(test_crc32c_chaining),
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_sha256_streaming),
        cmocka_unit_test(test_sha256_bad_args),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_unhex_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
