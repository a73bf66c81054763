/*
 * Unit tests for lib/crashpoint.c: each case runs in a forked child (the variable is read
 * once per process) and the parent checks how the child ended.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "crashpoint.h"

#define PASSED_ALL 7 /* the child's exit status when no point fired */

/* Forks a child that sets DYNO_CRASH_AT to env (NULL: unset), passes through name passes
 * times, and exits PASSED_ALL; returns the child's exit status (-1: not a normal exit). */
static int run(const char *env, const char *name, int passes, int *fired_at)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (env != NULL)
            setenv(DYNO_CRASH_ENV, env, 1);
        else
            unsetenv(DYNO_CRASH_ENV);
        for (int i = 1; i <= passes; i++) {
            unsigned char b = (unsigned char)i;
            if (write(fds[1], &b, 1) != 1)
                _exit(1);
            dyno_crash_point("other.point");
            dyno_crash_point(name);
        }
        _exit(PASSED_ALL);
    }
    close(fds[1]);
    unsigned char b, last = 0;
    while (read(fds[0], &b, 1) == 1)
        last = b;
    close(fds[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    *fired_at = last;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_inert_without_variable(void **state)
{
    int at;
    (void)state;
    assert_int_equal(run(NULL, "gateway.put.before_commit", 3, &at), PASSED_ALL);
    assert_int_equal(run("", "gateway.put.before_commit", 3, &at), PASSED_ALL);
    assert_int_equal(run("metadata.commit.before_reply", "gateway.put.before_commit", 3, &at), PASSED_ALL);
}

static void test_exits_at_named_point(void **state)
{
    int at;
    (void)state;
    assert_int_equal(run("gateway.put.before_commit", "gateway.put.before_commit", 3, &at), DYNO_CRASH_EXIT);
    assert_int_equal(at, 1);
}

static void test_exits_at_nth_pass(void **state)
{
    int at;
    (void)state;
    assert_int_equal(run("repair.mid_move@3", "repair.mid_move", 5, &at), DYNO_CRASH_EXIT);
    assert_int_equal(at, 3);
    /* Fewer passes than asked: never fires. */
    assert_int_equal(run("repair.mid_move@9", "repair.mid_move", 5, &at), PASSED_ALL);
}

static void test_malformed_stays_inert(void **state)
{
    int at;
    (void)state;
    const char *bad[] = {"repair.mid_move@", "repair.mid_move@0", "repair.mid_move@x", "@2",
                         "a.very.long.point.name.that.is.longer.than.any.real.one.can.ever.be.at.all"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(run(bad[i], "repair.mid_move", 3, &at), PASSED_ALL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inert_without_variable),
        cmocka_unit_test(test_exits_at_named_point),
        cmocka_unit_test(test_exits_at_nth_pass),
        cmocka_unit_test(test_malformed_stays_inert),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
