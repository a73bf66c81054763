/* Unit tests for lib/config.c, lib/buf.c, lib/json.c and lib/error.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "config.h"
#include "json.h"

#include <dynostore/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cfg {
    char *dir;
    int64_t port;
    int64_t capacity;
    bool tls;
    double ratio;
};

static const struct dyno_opt opts[] = {
    {"dir", DYNO_OPT_STR, offsetof(struct cfg, dir), "/var/lib/x", "folder"},
    {"port", DYNO_OPT_INT, offsetof(struct cfg, port), "8080", "port"},
    {"capacity", DYNO_OPT_INT, offsetof(struct cfg, capacity), "10G", "bytes"},
    {"tls", DYNO_OPT_BOOL, offsetof(struct cfg, tls), "false", "tls"},
    {"ratio", DYNO_OPT_DBL, offsetof(struct cfg, ratio), "0.5", "ratio"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static int parse(struct cfg *c, char *err, int argc, char **argv)
{
    memset(c, 0, sizeof(*c));
    return dyno_config_parse(opts, NOPTS, c, argc, argv, err, 256);
}

static void test_defaults(void **state)
{
    (void)state;
    struct cfg c;
    char err[256];
    char *argv[] = {"prog"};
    assert_int_equal(parse(&c, err, 1, argv), 0);
    assert_string_equal(c.dir, "/var/lib/x");
    assert_int_equal(c.port, 8080);
    assert_int_equal(c.capacity, 10LL * 1024 * 1024 * 1024);
    assert_false(c.tls);
    dyno_config_free(opts, NOPTS, &c);
}

static void test_file_then_flags(void **state)
{
    (void)state;
    char path[] = "/tmp/dyno-test-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *json = "{\"dir\":\"/data\",\"port\":9000,\"tls\":true,\"capacity\":\"2M\"}\n";
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    struct cfg c;
    char err[256];
    /* Flags win over the file even when they come before --config. */
    char *argv[] = {"prog", "--port", "7000", "--config", path, "--ratio=0.25"};
    assert_int_equal(parse(&c, err, 6, argv), 0);
    assert_string_equal(c.dir, "/data");
    assert_int_equal(c.port, 7000);
    assert_int_equal(c.capacity, 2 * 1024 * 1024);
    assert_true(c.tls);
    assert_true(c.ratio == 0.25);
    dyno_config_free(opts, NOPTS, &c);
    unlink(path);
}

static void test_errors(void **state)
{
    (void)state;
    struct cfg c;
    char err[256];
    char *a1[] = {"prog", "--nope", "1"};
    assert_int_equal(parse(&c, err, 3, a1), DYNO_EINVAL);
    assert_non_null(strstr(err, "nope"));
    dyno_config_free(opts, NOPTS, &c);
    char *a2[] = {"prog", "--port", "12x"};
    assert_int_equal(parse(&c, err, 3, a2), DYNO_EINVAL);
    dyno_config_free(opts, NOPTS, &c);
    char *a3[] = {"prog", "--config", "/nonexistent/file.json"};
    assert_int_equal(parse(&c, err, 3, a3), DYNO_EINVAL);
    assert_non_null(strstr(err, "/nonexistent/file.json"));
    dyno_config_free(opts, NOPTS, &c);
    char *a4[] = {"prog", "--port"};
    assert_int_equal(parse(&c, err, 2, a4), DYNO_EINVAL);
    dyno_config_free(opts, NOPTS, &c);
    char *a5[] = {"prog", "--tls=maybe"};
    assert_int_equal(parse(&c, err, 2, a5), DYNO_EINVAL);
    dyno_config_free(opts, NOPTS, &c);
    /* A bare bool flag means true; dashes equal underscores. */
    char *a6[] = {"prog", "--tls", "--port", "1"};
    assert_int_equal(parse(&c, err, 4, a6), 0);
    assert_true(c.tls);
    dyno_config_free(opts, NOPTS, &c);
}

static void test_bad_file(void **state)
{
    (void)state;
    char path[] = "/tmp/dyno-test-config-XXXXXX";
    int fd = mkstemp(path);
    const char *json = "{\"dir\":\"/data\",\"unknown\":1}";
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    struct cfg c;
    char err[256];
    char *argv[] = {"prog", "--config", path};
    assert_int_equal(parse(&c, err, 3, argv), DYNO_EINVAL);
    assert_non_null(strstr(err, "unknown"));
    dyno_config_free(opts, NOPTS, &c);
    unlink(path);
}

static void test_buf_limit(void **state)
{
    (void)state;
    struct dyno_buf b;
    dyno_buf_init(&b, 10);
    assert_int_equal(dyno_buf_append(&b, "hello", 5), 0);
    assert_int_equal(dyno_buf_printf(&b, "%d", 12345), 0);
    assert_string_equal(b.data, "hello12345");
    assert_int_equal(dyno_buf_append(&b, "x", 1), DYNO_ETOOBIG);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "hello12345");
    size_t n;
    char *p = dyno_buf_take(&b, &n);
    assert_int_equal(n, 10);
    free(p);
    assert_null(b.data);
    dyno_buf_free(&b);
}

static void test_json(void **state)
{
    (void)state;
    cJSON *j = NULL;
    const char *doc = "{\"a\":\"x\",\"n\":42,\"f\":1.5,\"b\":true}  ";
    assert_int_equal(dyno_json_parse(doc, strlen(doc), 1024, &j), 0);
    assert_string_equal(dyno_json_str(j, "a"), "x");
    assert_null(dyno_json_str(j, "n"));
    int64_t v = 0;
    assert_int_equal(dyno_json_i64(j, "n", &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(dyno_json_i64(j, "f", &v), DYNO_EINVAL);
    assert_int_equal(dyno_json_i64(j, "zz", &v), DYNO_ENOTFOUND);
    assert_true(dyno_json_bool(j, "b", false));
    cJSON_Delete(j);
    assert_int_equal(dyno_json_parse(doc, strlen(doc), 10, &j), DYNO_ETOOBIG);
    assert_int_equal(dyno_json_parse("{\"a\":1} x", 9, 100, &j), DYNO_EINVAL);
    assert_int_equal(dyno_json_parse("{\"a\":", 5, 100, &j), DYNO_EINVAL);
    /* Not NUL-terminated input must not be read past len. */
    char raw[4] = {'[', '1', ']', 'X'};
    assert_int_equal(dyno_json_parse(raw, 3, 100, &j), 0);
    cJSON_Delete(j);
}

static void test_errors_map(void **state)
{
    (void)state;
    int codes[] = {DYNO_EINVAL,  DYNO_ENOTFOUND, DYNO_EFORBIDDEN, DYNO_EUNAUTH, DYNO_EUNAVAIL,
                   DYNO_ETOOBIG, DYNO_ENOSPC,    DYNO_ECONFLICT,  DYNO_ERANGE,  DYNO_EINTERNAL};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        assert_int_equal(dyno_err_from_code(dyno_err_code(codes[i])), codes[i]);
        assert_true(dyno_err_http_status(codes[i]) >= 400);
        assert_non_null(dyno_strerror(codes[i]));
    }
    assert_int_equal(dyno_err_http_status(DYNO_EUNAVAIL), 503);
    assert_int_equal(dyno_err_from_http_status(404), DYNO_ENOTFOUND);
    assert_int_equal(dyno_err_from_http_status(507), DYNO_ENOSPC);
    assert_int_equal(dyno_err_from_http_status(429), DYNO_ELIMIT);
    assert_int_equal(dyno_err_from_code("too_many_requests"), DYNO_ELIMIT);
    assert_int_equal(dyno_err_from_code("no such code"), DYNO_EINTERNAL);
}

static void test_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/dyno-test-files-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/secret", dir);
    assert_int_equal(dyno_write_file(path, "tok\n", 4, 0600), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *s = NULL;
    size_t n = 0;
    assert_int_equal(dyno_read_file(path, 100, &s, &n), 0);
    assert_string_equal(s, "tok");
    free(s);
    assert_int_equal(dyno_read_file(path, 2, &s, &n), DYNO_ETOOBIG);
    unlink(path);
    assert_int_equal(dyno_read_file(path, 100, &s, &n), DYNO_ENOTFOUND);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),   cmocka_unit_test(test_file_then_flags),
        cmocka_unit_test(test_errors),     cmocka_unit_test(test_bad_file),
        cmocka_unit_test(test_buf_limit),  cmocka_unit_test(test_json),
        cmocka_unit_test(test_errors_map), cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
