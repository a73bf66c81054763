/*
 * The web console's path check (agents/gateway/web.c, issue 12): which request paths may
 * name a file of frontend_dir, and their Content-Type. The routes around it are stubs: the
 * integration test test_console.py serves the files for real.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "../../agents/gateway/web.c"

/* web.c's neighbours, never reached by the functions tested here. */
bool gw_session_route(struct gw_req *r, const char *url, enum MHD_Result *ret)
{
    (void)r, (void)url, (void)ret;
    return false;
}
enum MHD_Result gw_reply_err(struct gw_req *r, const struct dyno_http_error *e, const char *fmt, ...)
{
    (void)r, (void)e, (void)fmt;
    return MHD_NO;
}
enum MHD_Result gw_reply_response(struct gw_req *r, unsigned status, struct MHD_Response *resp)
{
    (void)r, (void)status, (void)resp;
    return MHD_NO;
}

static void test_paths_served(void **state)
{
    (void)state;
    const char *ok[] = {"/index.html", "/app.css", "/js/app.js", "/favicon.svg", "/a/b/c.d.js", "/x_y-z.png"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_true(gw_web_path_ok(ok[i]));
        assert_non_null(gw_web_type(ok[i]));
    }
}

static void test_paths_refused(void **state)
{
    (void)state;
    /* escapes, dot segments, hidden files, empty segments, other bytes, too long */
    const char *bad[] = {"",         "/",         "index.html", "/../etc/passwd", "/js/../x.js",  "/./x.js",
                         "//x.js",   "/js//x.js", "/.env",      "/js/.hidden.js", "/%2e%2e/x.js", "/a%00.js",
                         "/a\\b.js", "/a b.js",   "/js/",       "/a?.js",         "/\xc3\xa9.js", "/a:b.js"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(gw_web_path_ok(bad[i]));
    char longp[GW_WEB_PATH_MAX + 2];
    longp[0] = '/';
    memset(longp + 1, 'a', sizeof(longp) - 2);
    longp[sizeof(longp) - 1] = '\0';
    assert_false(gw_web_path_ok(longp));
}

static void test_types(void **state)
{
    (void)state;
    assert_string_equal(gw_web_type("/index.html"), "text/html; charset=utf-8");
    assert_string_equal(gw_web_type("/js/app.js"), "text/javascript; charset=utf-8");
    assert_string_equal(gw_web_type("/app.css"), "text/css; charset=utf-8");
    /* no type, no file: sources, notes and extension-less names are never served */
    assert_null(gw_web_type("/web.c"));
    assert_null(gw_web_type("/README.md"));
    assert_null(gw_web_type("/Makefile"));
    assert_null(gw_web_type("/index.html.bak"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths_served),
        cmocka_unit_test(test_paths_refused),
        cmocka_unit_test(test_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
