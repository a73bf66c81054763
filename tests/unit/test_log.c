/* Unit tests of lib/log.c: the one logfmt quoter (dyno_log_q) and that dyno_log keeps a
 * message with quotes or newlines on one line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static void test_quote_plain(void **state)
{
    char q[64];
    (void)state;
    assert_string_equal(dyno_log_q(q, sizeof(q), "put committed"), "\"put committed\"");
    assert_string_equal(dyno_log_q(q, sizeof(q), ""), "\"\"");
    assert_string_equal(dyno_log_q(q, sizeof(q), NULL), "\"\"");
    assert_ptr_equal(dyno_log_q(q, sizeof(q), "x"), q);
}

/* A value must not be able to close its quotes or start a new line: a forged field or a
 * forged log line would otherwise be one object name away. */
static void test_quote_escapes(void **state)
{
    char q[64];
    (void)state;
    assert_string_equal(dyno_log_q(q, sizeof(q), "a\"b"), "\"a\\\"b\"");
    assert_string_equal(dyno_log_q(q, sizeof(q), "a\\b"), "\"a\\\\b\"");
    assert_string_equal(dyno_log_q(q, sizeof(q), "a\nlevel=error"), "\"a\\x0alevel=error\"");
    assert_string_equal(dyno_log_q(q, sizeof(q), "\r\t\x1b"), "\"\\x0d\\x09\\x1b\"");
    assert_string_equal(dyno_log_q(q, sizeof(q), "del\x7f"), "\"del\\x7f\"");
    /* UTF-8 passes through: names may be any language. */
    assert_string_equal(dyno_log_q(q, sizeof(q), "caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

/* A long value is cut, never overflows, and is always closed. */
static void test_quote_bounded(void **state)
{
    char big[300];
    (void)state;
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (size_t cap = 3; cap < 40; cap++) {
        char q[48];
        memset(q, '#', sizeof(q));
        dyno_log_q(q, cap, big);
        size_t n = strlen(q);
        assert_true(n < cap);
        assert_true(n >= 2);
        assert_int_equal(q[0], '"');
        assert_int_equal(q[n - 1], '"');
        assert_int_equal(q[cap], '#'); /* nothing written past cap */
    }
    /* An escape is never cut in half. */
    for (size_t cap = 3; cap < 20; cap++) {
        char q[24];
        dyno_log_q(q, cap, "\n\n\n\n\n\n\n\n");
        size_t n = strlen(q);
        assert_int_equal(q[n - 1], '"');
        assert_int_equal((n - 2) % 4, 0);
    }
    char tiny[2] = "x";
    assert_string_equal(dyno_log_q(tiny, sizeof(tiny), "abc"), "");
}

/* dyno_log writes exactly one line, with the message quoted by dyno_log_q. */
static void test_log_one_line(void **state)
{
    char path[] = "/tmp/dyno_test_log_XXXXXX";
    int fd = mkstemp(path);
    (void)state;
    assert_true(fd >= 0);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    dyno_log_init("unit", DYNO_LOG_DEBUG);
    dyno_info("bad \"name\"\nlevel=error msg=forged", "key=%s", "k1");
    dup2(saved, STDERR_FILENO);
    close(saved);
    char buf[512] = "";
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, " agent=unit msg=\"bad \\\"name\\\"\\x0alevel=error msg=forged\" key=k1\n"));
    assert_non_null(strstr(buf, "level=info "));
    assert_ptr_equal(strchr(buf, '\n'), buf + n - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote_plain),
        cmocka_unit_test(test_quote_escapes),
        cmocka_unit_test(test_quote_bounded),
        cmocka_unit_test(test_log_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
