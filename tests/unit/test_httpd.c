/* Unit tests for lib/httpd.c: Range parsing, percent-decoding, and the reply helpers
 * against a real MHD daemon on 127.0.0.1 with an ephemeral port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dynostore/error.h"
#include "httpd.h"
#include "rest.h" /* dyno_url_decode */

static void expect_range(const char *hdr, uint64_t size, int rc, uint64_t first, uint64_t last)
{
    uint64_t a = 12345, b = 67890;

    assert_int_equal(dyno_http_parse_range(hdr, size, &a, &b), rc);
    if (rc == 0) {
        assert_int_equal(a, first);
        assert_int_equal(b, last);
    }
}

static void test_range(void **state)
{
    (void)state;
    expect_range(NULL, 100, DYNO_ENOTFOUND, 0, 0);
    expect_range("bytes=0-0", 100, 0, 0, 0);
    expect_range("bytes=0-99", 100, 0, 0, 99);
    expect_range("bytes=10-19", 100, 0, 10, 19);
    expect_range("bytes=10-1000", 100, 0, 10, 99); /* last clamped to the size */
    expect_range("bytes=10-", 100, 0, 10, 99);
    expect_range("bytes=99-", 100, 0, 99, 99);
    expect_range("bytes=-1", 100, 0, 99, 99);
    expect_range("bytes=-10", 100, 0, 90, 99);
    expect_range("bytes=-1000", 100, 0, 0, 99); /* suffix longer than the object: all of it */
    expect_range("BYTES=1-2", 100, 0, 1, 2);    /* the unit is case-insensitive */
    expect_range(" bytes=1-2 ", 100, 0, 1, 2);

    /* Unsatisfiable. */
    expect_range("bytes=100-", 100, DYNO_ERANGE, 0, 0);
    expect_range("bytes=100-200", 100, DYNO_ERANGE, 0, 0);
    expect_range("bytes=-0", 100, DYNO_ERANGE, 0, 0);
    expect_range("bytes=0-", 0, DYNO_ERANGE, 0, 0);
    expect_range("bytes=-5", 0, DYNO_ERANGE, 0, 0);

    /* Malformed. */
    expect_range("", 100, DYNO_EINVAL, 0, 0);
    expect_range("bytes=", 100, DYNO_EINVAL, 0, 0);
    expect_range("bytes=-", 100, DYNO_EINVAL, 0, 0);
    expect_range("bytes=5", 100, DYNO_EINVAL, 0, 0);
    expect_range("bytes=5-4", 100, DYNO_EINVAL, 0, 0);
    expect_range("bytes=a-b", 100, DYNO_EINVAL, 0, 0);
    expect_range("bytes=1-2x", 100, DYNO_EINVAL, 0, 0);
    expect_range("bytes=+1-2", 100, DYNO_EINVAL, 0, 0);
    expect_range("bytes=1 -2", 100, DYNO_EINVAL, 0, 0);
    expect_range("bytes=--1", 100, DYNO_EINVAL, 0, 0);
    expect_range("bytes=0-1,5-6", 100, DYNO_EINVAL, 0, 0); /* multi-range */
    expect_range("bytes=0-1, 5-6", 100, DYNO_EINVAL, 0, 0);
    expect_range("items=0-1", 100, DYNO_EINVAL, 0, 0);
    expect_range("bytes 0-1", 100, DYNO_EINVAL, 0, 0);
    /* Overflow: 2^64 does not fit. */
    expect_range("bytes=18446744073709551616-", UINT64_MAX, DYNO_EINVAL, 0, 0);
    expect_range("bytes=0-18446744073709551616", UINT64_MAX, DYNO_EINVAL, 0, 0);
    expect_range("bytes=-99999999999999999999999", 100, DYNO_EINVAL, 0, 0);
    expect_range("bytes=0-18446744073709551615", 100, 0, 0, 99);
    expect_range("bytes=18446744073709551614-", UINT64_MAX, 0, UINT64_MAX - 1, UINT64_MAX - 1);
}

static void expect_decode(const char *in, int rc, const char *out)
{
    char buf[256];

    snprintf(buf, sizeof(buf), "%s", in);
    assert_int_equal(dyno_url_decode(buf), rc);
    assert_string_equal(buf, rc == 0 ? out : in); /* a failure leaves the input alone */
}

static void test_url_decode(void **state)
{
    (void)state;
    expect_decode("", 0, "");
    expect_decode("plain", 0, "plain");
    expect_decode("a%20b", 0, "a b");
    expect_decode("%2Fetc%2fpasswd", 0, "/etc/passwd");
    expect_decode("a+b", 0, "a+b");
    expect_decode("%41%42%43", 0, "ABC");
    expect_decode("%e2%82%ac", 0, "\xe2\x82\xac");
    expect_decode("100%", DYNO_EINVAL, NULL);
    expect_decode("%4", DYNO_EINVAL, NULL);
    expect_decode("%G1", DYNO_EINVAL, NULL);
    expect_decode("%1G", DYNO_EINVAL, NULL);
    expect_decode("a%00b", DYNO_EINVAL, NULL);
    expect_decode("ok%20then%zz", DYNO_EINVAL, NULL);
    assert_int_equal(dyno_url_decode(NULL), DYNO_EINVAL);
}

/* ---- reply helpers over a real daemon ---------------------------------------------- */

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_size, void **ptr)
{
    (void)cls;
    (void)method;
    (void)version;
    (void)upload_data;
    (void)upload_size;
    (void)ptr;
    if (strcmp(url, "/busy") == 0)
        return dyno_http_reply_error(c, DYNO_EUNAVAIL, "need %d containers", 5);
    if (strcmp(url, "/missing") == 0)
        return dyno_http_reply_error(c, DYNO_ENOTFOUND, "no object \"%s\"", "k1");
    if (strcmp(url, "/limited") == 0) {
        const struct dyno_http_error e = {.err = DYNO_ELIMIT, .retry_after = 7, .close = true};
        return dyno_http_reply_err(c, &e, "slow down");
    }
    if (strcmp(url, "/method") == 0) {
        const struct dyno_http_error e = {.err = DYNO_EMETHOD, .hname = "Allow", .hval = "GET, HEAD"};
        return dyno_http_reply_err(c, &e, "only %s", "GET");
    }
    if (strcmp(url, "/short") == 0) {
        const struct dyno_http_error e = {.err = DYNO_ECORRUPT, .status = 400};
        return dyno_http_reply_err(c, &e, "too short");
    }
    if (strcmp(url, "/gap") == 0) {
        const struct dyno_http_error e = {.err = DYNO_EINTERNAL, .status = 501, .code = "not_implemented"};
        return dyno_http_reply_err(c, &e, "later");
    }
    if (strcmp(url, "/overloaded") == 0) {
        /* a 503 chosen by status (not by err) still tells the client when to come back */
        const struct dyno_http_error e = {.err = DYNO_EIO, .status = 503};
        return dyno_http_reply_err(c, &e, "busy disk");
    }
    if (strcmp(url, "/bearer") == 0) {
        const char *tok = dyno_http_bearer(c);
        cJSON *b = cJSON_CreateObject();
        enum MHD_Result r;

        if (tok == NULL) {
            cJSON_Delete(b);
            return dyno_http_reply_error(c, DYNO_EUNAUTH, "no token");
        }
        cJSON_AddStringToObject(b, "token", tok);
        r = dyno_http_reply_json(c, 200, b);
        cJSON_Delete(b);
        return r;
    }
    return dyno_http_reply_error(c, DYNO_ENOTFOUND, "no route");
}

/* Case-insensitive strstr (header names are case-insensitive); NULL when absent. */
static const char *has_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; *hay != '\0'; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return hay;
    return NULL;
}

/* One HTTP/1.0 exchange; returns the whole response in out. */
static void http_get(uint16_t port, const char *path, const char *extra, char *out, size_t cap)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    char req[512];
    size_t n = 0;
    ssize_t r;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: x\r\n%s\r\n", path, extra);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while (n + 1 < cap && (r = read(fd, out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fd);
}

static void test_replies(void **state)
{
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    char resp[4096];
    uint16_t port;

    (void)state;
    /* The server the agents use, on an ephemeral port. */
    static struct dyno_httpd h;
    const struct dyno_httpd_conf conf = {
        .host = "127.0.0.1", .max_connections = 8, .timeout = 30, .pool = 64 * 1024, .handler = handler};
    char err[200] = "";
    assert_int_equal(dyno_httpd_start(&h, &conf, err, sizeof(err)), 0);
    d = h.d;
    assert_non_null(d);
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    port = info->port;
    assert_int_equal(h.port, port);
    assert_true(port != 0);

    http_get(port, "/busy", "", resp, sizeof(resp));
    assert_non_null(strstr(resp, " 503 "));
    assert_non_null(has_ci(resp, "\r\nRetry-After: 1\r\n"));
    assert_non_null(has_ci(resp, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(resp, "{\"error\":{\"code\":\"unavailable\",\"message\":\"need 5 containers\"}}"));

    http_get(port, "/missing", "", resp, sizeof(resp));
    assert_non_null(strstr(resp, " 404 "));
    assert_null(has_ci(resp, "Retry-After"));
    assert_non_null(strstr(resp, "\"message\":\"no object \\\"k1\\\"\"")); /* quotes escaped in JSON */

    http_get(port, "/bearer", "Authorization: Bearer dyn1.abc.def\r\n", resp, sizeof(resp));
    assert_non_null(strstr(resp, " 200 "));
    assert_non_null(strstr(resp, "{\"token\":\"dyn1.abc.def\"}"));
    http_get(port, "/bearer", "Authorization: bearer   tok\r\n", resp, sizeof(resp));
    assert_non_null(strstr(resp, "{\"token\":\"tok\"}"));
    http_get(port, "/bearer", "Authorization: Basic YTpi\r\n", resp, sizeof(resp));
    assert_non_null(strstr(resp, " 401 "));
    http_get(port, "/bearer", "Authorization: Bearer\r\n", resp, sizeof(resp));
    assert_non_null(strstr(resp, " 401 "));
    http_get(port, "/bearer", "Authorization: Bearertok\r\n", resp, sizeof(resp));
    assert_non_null(strstr(resp, " 401 "));
    http_get(port, "/bearer", "", resp, sizeof(resp));
    assert_non_null(strstr(resp, " 401 "));
    assert_non_null(strstr(resp, "\"code\":\"unauthorized\""));
    assert_non_null(has_ci(resp, "\r\nWWW-Authenticate: Bearer\r\n"));
    assert_null(has_ci(resp, "Retry-After"));

    http_get(port, "/limited", "", resp, sizeof(resp));
    assert_non_null(strstr(resp, " 429 "));
    assert_non_null(has_ci(resp, "\r\nRetry-After: 7\r\n"));
    assert_non_null(has_ci(resp, "\r\nConnection: close\r\n"));
    assert_non_null(strstr(resp, "{\"error\":{\"code\":\"too_many_requests\",\"message\":\"slow down\"}}"));

    http_get(port, "/method", "", resp, sizeof(resp));
    assert_non_null(strstr(resp, " 405 "));
    assert_non_null(has_ci(resp, "\r\nAllow: GET, HEAD\r\n"));
    assert_non_null(strstr(resp, "\"message\":\"only GET\""));

    http_get(port, "/short", "", resp, sizeof(resp));
    assert_non_null(strstr(resp, " 400 "));
    assert_non_null(strstr(resp, "\"code\":\"corrupt\""));
    assert_null(has_ci(resp, "WWW-Authenticate"));

    http_get(port, "/gap", "", resp, sizeof(resp));
    assert_non_null(strstr(resp, " 501 "));
    assert_non_null(strstr(resp, "{\"error\":{\"code\":\"not_implemented\",\"message\":\"later\"}}"));
    assert_null(has_ci(resp, "Retry-After"));

    http_get(port, "/overloaded", "", resp, sizeof(resp));
    assert_non_null(strstr(resp, " 503 "));
    assert_non_null(has_ci(resp, "\r\nRetry-After: 1\r\n"));

    dyno_httpd_stop(&h);
    assert_null(h.d);
    dyno_httpd_stop(&h); /* stopping twice is harmless */
}

/* A start that cannot work says why and leaves nothing running. */
static void test_start_refused(void **state)
{
    (void)state;
    struct dyno_httpd h = {0}, h2 = {0};
    char err[200] = "";
    struct dyno_httpd_conf conf = {.host = "no.such.host.invalid",
                                   .max_connections = 8,
                                   .timeout = 30,
                                   .pool = 64 * 1024,
                                   .handler = handler};

    assert_int_equal(dyno_httpd_start(&h, &conf, err, sizeof(err)), DYNO_EINVAL);
    assert_non_null(strstr(err, "cannot resolve listen_host no.such.host.invalid"));
    assert_null(h.d);

    conf.host = "127.0.0.1";
    conf.tls_cert = "/nonexistent/cert.pem";
    conf.tls_key = "/nonexistent/key.pem";
    assert_int_equal(dyno_httpd_start(&h, &conf, err, sizeof(err)), DYNO_EINVAL);
    assert_non_null(strstr(err, "tls_cert"));
    assert_null(h.d);

    /* The same port twice: the second cannot listen. */
    conf.tls_cert = conf.tls_key = NULL;
    assert_int_equal(dyno_httpd_start(&h, &conf, err, sizeof(err)), 0);
    conf.port = h.port;
    assert_int_equal(dyno_httpd_start(&h2, &conf, err, sizeof(err)), DYNO_EIO);
    assert_non_null(strstr(err, "cannot listen on 127.0.0.1:"));
    assert_null(h2.d);
    dyno_httpd_stop(&h);
}

/* The body alone (MQTT ingest replies) is the same document as the HTTP one. */
static void test_error_body(void **state)
{
    (void)state;
    cJSON *b = dyno_http_error_body("bad_request", "no \"name\"");
    assert_non_null(b);
    char *t = cJSON_PrintUnformatted(b);
    assert_string_equal(t, "{\"error\":{\"code\":\"bad_request\",\"message\":\"no \\\"name\\\"\"}}");
    cJSON_free(t);
    cJSON_Delete(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range),         cmocka_unit_test(test_url_decode),
        cmocka_unit_test(test_replies),       cmocka_unit_test(test_error_body),
        cmocka_unit_test(test_start_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
