/* Unit tests for lib/metrics.c: Prometheus text rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dynostore/error.h"
#include "metrics.h"

static void test_render(void **state)
{
    struct dyno_metric m[] = {
        {"dyno_test_puts_total", "Objects put.", "counter", 0},
        {"dyno_test_bytes_free", "Free bytes\non disk \\ all", "gauge", 0},
    };
    struct dyno_buf out;

    (void)state;
    dyno_metric_add(&m[0], 3);
    dyno_metric_add(&m[0], 2);
    dyno_metric_set(&m[1], -7);
    dyno_buf_init(&out, 4096);
    assert_int_equal(dyno_metrics_render(m, 2, &out), 0);
    assert_string_equal(out.data, "# HELP dyno_test_puts_total Objects put.\n"
                                  "# TYPE dyno_test_puts_total counter\n"
                                  "dyno_test_puts_total 5\n"
                                  "# HELP dyno_test_bytes_free Free bytes\\non disk \\\\ all\n"
                                  "# TYPE dyno_test_bytes_free gauge\n"
                                  "dyno_test_bytes_free -7\n");
    dyno_buf_free(&out);

    /* A buffer too small says so. */
    dyno_buf_init(&out, 40);
    assert_int_equal(dyno_metrics_render(m, 2, &out), DYNO_ETOOBIG);
    dyno_buf_free(&out);

    dyno_buf_init(&out, 10);
    assert_int_equal(dyno_metrics_render(m, 0, &out), 0);
    assert_int_equal(out.len, 0);
    dyno_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_render)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
