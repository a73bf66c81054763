/*
 * Unit tests of libdynostore (client/lib/) against a canned HTTP server on 127.0.0.1 in a
 * thread of this test: request shape (paths, escaping, Authorization), error mapping from
 * the JSON error body and the status, put results, digest checks, ranges, limits, and the
 * temp-file-then-rename of get_file. The test binary links only dyno_core, so the library
 * sources are compiled in here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../client/lib/catalogs.c"
#include "../../client/lib/client.c"
#include "../../client/lib/objects.c"

/* strcasestr is a GNU extension */
static char *ci_find(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++)
        if (strncasecmp(p, needle, n) == 0)
            return (char *)p;
    return NULL;
}

/* ---- a one-connection-at-a-time canned server ---- */

struct canned {
    int lfd;
    int port;
    pthread_t thr;
    pthread_mutex_t mu;
    char reply[1 << 16]; /* full response bytes to send */
    size_t reply_len;
    char request[1 << 16]; /* last request head + body */
    size_t request_len;
    int stop;
};

static struct canned srv;

static void canned_set(int status, const char *extra_headers, const void *body, size_t len)
{
    pthread_mutex_lock(&srv.mu);
    int n = snprintf(srv.reply, sizeof(srv.reply),
                     "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n", status, len,
                     extra_headers ? extra_headers : "");
    memcpy(srv.reply + n, body, len);
    srv.reply_len = (size_t)n + len;
    pthread_mutex_unlock(&srv.mu);
}

static void *canned_run(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(srv.lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        if (srv.stop) {
            close(fd);
            return NULL;
        }
        char buf[1 << 16];
        size_t got = 0;
        size_t need = 0;
        char *head_end = NULL;
        while (got < sizeof(buf) - 1) {
            ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
            if (r <= 0)
                break;
            got += (size_t)r;
            buf[got] = '\0';
            if (!head_end && (head_end = strstr(buf, "\r\n\r\n")) != NULL) {
                char *cl = ci_find(buf, "Content-Length:");
                size_t body = cl && cl < head_end ? strtoul(cl + 15, NULL, 10) : 0;
                need = (size_t)(head_end + 4 - buf) + body;
                if (ci_find(buf, "Expect: 100-continue"))
                    (void)!write(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
            }
            if (head_end && got >= need)
                break;
        }
        pthread_mutex_lock(&srv.mu);
        memcpy(srv.request, buf, got);
        srv.request[got] = '\0';
        srv.request_len = got;
        (void)!write(fd, srv.reply, srv.reply_len);
        pthread_mutex_unlock(&srv.mu);
        shutdown(fd, SHUT_WR);
        close(fd);
    }
}

static int setup(void **state)
{
    (void)state;
    memset(&srv, 0, sizeof(srv));
    pthread_mutex_init(&srv.mu, NULL);
    srv.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    if (bind(srv.lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(srv.lfd, 16) != 0 ||
        getsockname(srv.lfd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    srv.port = ntohs(a.sin_port);
    return pthread_create(&srv.thr, NULL, canned_run, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    srv.stop = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    (void)!connect(fd, (struct sockaddr *)&a, sizeof(a));
    close(fd);
    pthread_join(srv.thr, NULL);
    close(srv.lfd);
    return 0;
}

static dyno_client *client(const char *token)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", srv.port);
    dyno_client *c = NULL;
    assert_int_equal(dyno_client_new(url, token, &c), 0);
    assert_int_equal(dyno_client_set_timeouts(c, 2000, 10000, 5000), 0);
    return c;
}

#define KEY "0123456789abcdef0123456789abcdef"

/* ---- tests ---- */

static void test_arguments(void **state)
{
    dyno_client *c = NULL;
    (void)state;
    assert_int_equal(dyno_client_new(NULL, NULL, &c), DYNO_EINVAL);
    assert_int_equal(dyno_client_new("ftp://x", NULL, &c), DYNO_EINVAL);
    assert_int_equal(dyno_client_new("http://x", "bad\r\ntoken", &c), DYNO_EINVAL);
    assert_null(c);
    assert_string_equal(dyno_client_last_error(NULL), "");
    dyno_client_free(NULL);
    c = client("tok");
    assert_int_equal(dyno_client_set_token(c, "a b"), DYNO_EINVAL);
    assert_int_equal(dyno_client_set_timeouts(c, -1, 0, 0), DYNO_EINVAL);
    assert_int_equal(dyno_client_exists(c, "not-a-key", NULL), DYNO_EINVAL);
    assert_non_null(strstr(dyno_client_last_error(c), "not-a-key"));
    assert_int_equal(dyno_client_put(c, "../etc", "x", 1, NULL, NULL), DYNO_EINVAL);
    struct dyno_put_opts bad = {.k = 0, .m = 2};
    assert_int_equal(dyno_client_put(c, "admin/x", "x", 1, &bad, NULL), DYNO_EINVAL);
    void *d = NULL;
    size_t n = 0;
    assert_int_equal(dyno_client_get_range(c, KEY, 0, 0, 10, &d, &n), DYNO_EINVAL);
    dyno_client_free(c);
}

static void test_unreachable(void **state)
{
    (void)state;
    /* a port nobody listens on: bind, read, close */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));
    dyno_client *c = NULL;
    assert_int_equal(dyno_client_new(url, "tok", &c), 0);
    assert_int_equal(dyno_client_healthz(c, NULL), DYNO_EUNAVAIL);
    assert_int_equal(dyno_client_evict(c, KEY), DYNO_EUNAVAIL);
    assert_true(strlen(dyno_client_last_error(c)) > 0);
    assert_null(strstr(dyno_client_last_error(c), "tok")); /* the token never shows */
    dyno_client_free(c);
}

static void test_error_mapping(void **state)
{
    (void)state;
    dyno_client *c = client("sekrit");
    const char *nf = "{\"error\":{\"code\":\"not_found\",\"message\":\"no object " KEY "\"}}";
    canned_set(404, "Content-Type: application/json\r\n", nf, strlen(nf));
    assert_int_equal(dyno_client_evict(c, KEY), DYNO_ENOTFOUND);
    assert_string_equal(dyno_client_last_error(c), "no object " KEY);
    assert_non_null(strstr(srv.request, "DELETE /v1/objects/" KEY " HTTP/1.1"));
    assert_non_null(strstr(srv.request, "Authorization: Bearer sekrit\r\n"));
    assert_null(strstr(srv.request, "sekrit HTTP")); /* not in the URL */

    const char *cf = "{\"error\":{\"code\":\"conflict\",\"message\":\"not empty\"}}";
    canned_set(409, NULL, cf, strlen(cf));
    assert_int_equal(dyno_client_catalog_delete(c, "admin/x", 0), DYNO_ECONFLICT);
    const char *un = "{\"error\":{\"code\":\"unavailable\",\"message\":\"need 5 containers, 3 online\"}}";
    canned_set(503, "Retry-After: 1\r\n", un, strlen(un));
    assert_int_equal(dyno_client_put(c, "admin/x", "abc", 3, NULL, NULL), DYNO_EUNAVAIL);
    assert_string_equal(dyno_client_last_error(c), "need 5 containers, 3 online");
    /* no JSON: the status decides */
    canned_set(403, NULL, "nope", 4);
    assert_int_equal(dyno_client_whoami(c, &(struct cJSON *){NULL}), DYNO_EFORBIDDEN);
    canned_set(401, NULL, "", 0);
    assert_int_equal(dyno_client_exists(c, KEY, NULL), DYNO_EUNAUTH);
    canned_set(404, NULL, "", 0);
    assert_int_equal(dyno_client_exists(c, KEY, NULL), DYNO_ENOTFOUND);
    /* a 2xx that is not JSON where JSON is due */
    canned_set(200, NULL, "<html>", 6);
    struct cJSON *doc = NULL;
    assert_int_equal(dyno_client_catalog_list(c, &doc), DYNO_EPROTO);
    assert_null(doc);
    dyno_client_free(c);
}

static void test_put(void **state)
{
    (void)state;
    dyno_client *c = client("tok");
    const char *ok =
        "{\"key\":\"" KEY "\",\"name\":\"a b\",\"size\":3,\"sha256\":\"ba7816bf8f01cfea414140de5dae2223"
        "b00361a396177a9cb410ff61f20015ad\",\"k\":2,\"m\":1}";
    canned_set(201, "Content-Type: application/json\r\n", ok, strlen(ok));
    struct dyno_put_opts o = {.name = "a b", .k = 2, .m = 1};
    struct dyno_put_result r;
    assert_int_equal(dyno_client_put(c, "admin/x/y", "abc", 3, &o, &r), 0);
    assert_string_equal(r.key, KEY);
    assert_string_equal(r.name, "a b");
    assert_int_equal(r.size, 3);
    assert_int_equal(r.k, 2);
    assert_int_equal(r.m, 1);
    assert_non_null(strstr(srv.request, "POST /v1/catalogs/admin/x/y/~/objects?name=a%20b HTTP/1.1"));
    assert_non_null(strstr(srv.request, "X-Dyno-Resilience: 2,1\r\n"));
    assert_non_null(strstr(srv.request, "\r\n\r\nabc"));

    /* from a FILE*: Content-Length from the file size */
    FILE *f = tmpfile();
    assert_non_null(f);
    fputs("hello world", f);
    rewind(f);
    assert_int_equal(dyno_client_put_fp(c, "admin/x", f, NULL, &r), 0);
    fclose(f);
    assert_non_null(ci_find(srv.request, "Content-Length: 11\r\n"));
    assert_non_null(strstr(srv.request, "hello world"));

    /* a reply without a valid key is a protocol error */
    canned_set(201, NULL, "{}", 2);
    assert_int_equal(dyno_client_put(c, "admin/x", "abc", 3, NULL, &r), DYNO_EPROTO);
    dyno_client_free(c);
}

#define HELLO_SHA "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

static int count_parts(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".part"))
            n++;
    if (d)
        closedir(d);
    return n;
}

static void test_get(void **state)
{
    (void)state;
    dyno_client *c = client("tok");
    void *d = NULL;
    size_t n = 0;
    canned_set(200, "ETag: \"" HELLO_SHA "\"\r\n", "hello", 5);
    assert_int_equal(dyno_client_get(c, KEY, 100, &d, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(d, "hello", 5);
    free(d);
    /* over the caller's max */
    assert_int_equal(dyno_client_get(c, KEY, 4, &d, &n), DYNO_ETOOBIG);
    /* wrong digest */
    canned_set(200, "ETag: \"" HELLO_SHA "\"\r\n", "hellO", 5);
    assert_int_equal(dyno_client_get(c, KEY, 100, &d, &n), DYNO_ECORRUPT);

    /* get_file: nothing at the target and no temp file left on a bad digest */
    char dir[] = "/tmp/dyno-client-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/out.bin", dir);
    assert_int_equal(dyno_client_get_file(c, KEY, path), DYNO_ECORRUPT);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
    assert_int_equal(count_parts(dir), 0);
    canned_set(200, "ETag: \"" HELLO_SHA "\"\r\n", "hello", 5);
    assert_int_equal(dyno_client_get_file(c, KEY, path), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 5);
    assert_int_equal(count_parts(dir), 0);
    /* a 404 leaves the previous file alone */
    canned_set(404, NULL, "", 0);
    assert_int_equal(dyno_client_get_file(c, KEY, path), DYNO_ENOTFOUND);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 5);
    unlink(path);
    rmdir(dir);

    /* a range the server honours (206) and one it ignores (200: the client cuts) */
    canned_set(206, "Content-Range: bytes 1-3/5\r\n", "ell", 3);
    assert_int_equal(dyno_client_get_range(c, KEY, 1, 3, 100, &d, &n), 0);
    assert_non_null(strstr(srv.request, "Range: bytes=1-3\r\n"));
    assert_int_equal(n, 3);
    assert_memory_equal(d, "ell", 3);
    free(d);
    canned_set(200, NULL, "hello", 5);
    assert_int_equal(dyno_client_get_range(c, KEY, 2, DYNO_CLIENT_TO_END, 100, &d, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(d, "llo", 3);
    free(d);

    /* exists: size and digest from HEAD */
    canned_set(200, "ETag: \"" HELLO_SHA "\"\r\n", "", 0);
    struct dyno_object_stat os;
    /* HEAD answers carry no body but a Content-Length of the object; the canned one says 0 */
    assert_int_equal(dyno_client_exists(c, KEY, &os), 0);
    assert_string_equal(os.sha256, HELLO_SHA);
    assert_non_null(strstr(srv.request, "HEAD /v1/objects/" KEY " HTTP/1.1"));
    dyno_client_free(c);
}

static void test_list_next(void **state)
{
    (void)state;
    dyno_client *c = client("tok");
    const char *page = "{\"objects\":[{\"key\":\"" KEY "\",\"name\":\"a\"}],\"next\":\"a\"}";
    canned_set(200, NULL, page, strlen(page));
    struct cJSON *doc = NULL;
    char *next = NULL;
    assert_int_equal(dyno_client_list(c, "admin/x", "0 start", 1, &doc, &next), 0);
    assert_non_null(
        strstr(srv.request, "GET /v1/catalogs/admin/x/~/objects?after=0%20start&limit=1 HTTP/1.1"));
    assert_string_equal(next, "a");
    free(next);
    cJSON_Delete(doc);
    const char *last = "{\"objects\":[],\"next\":null}";
    canned_set(200, NULL, last, strlen(last));
    assert_int_equal(dyno_client_list(c, "admin/x", "a", 1000, &doc, &next), 0);
    assert_null(next);
    cJSON_Delete(doc);
    const char *noarr = "{\"items\":[]}";
    canned_set(200, NULL, noarr, strlen(noarr));
    assert_int_equal(dyno_client_list(c, "admin/x", NULL, 10, &doc, &next), DYNO_EPROTO);
    dyno_client_free(c);
}

/* Catalog calls use the route grammar of lib/rest.h: sub-resources after "~". */
static void test_catalog_routes(void **state)
{
    (void)state;
    dyno_client *c = client("tok");
    const char *ok = "{\"catalog\":\"admin/x\"}";
    canned_set(200, NULL, ok, strlen(ok));
    assert_int_equal(dyno_client_catalog_share(c, "admin/a/shares", "lab/ct", 1, "write"), 0);
    assert_non_null(strstr(srv.request, "POST /v1/catalogs/admin/a/shares/~/shares HTTP/1.1"));
    assert_non_null(strstr(srv.request, "\"org\":\"lab/ct\""));
    assert_int_equal(dyno_client_catalog_unshare(c, "admin/a", "lab/ct", 1), 0);
    assert_non_null(strstr(srv.request, "DELETE /v1/catalogs/admin/a/~/shares/lab%2Fct?kind=org HTTP/1.1"));
    assert_int_equal(dyno_client_catalog_unshare(c, "admin/a", "bob", 0), 0);
    assert_non_null(strstr(srv.request, "DELETE /v1/catalogs/admin/a/~/shares/bob?kind=user HTTP/1.1"));
    assert_int_equal(dyno_client_catalog_delete(c, "admin/a/shares/bob", 1), 0);
    assert_non_null(strstr(srv.request, "DELETE /v1/catalogs/admin/a/shares/bob?recursive=1 HTTP/1.1"));
    /* a bad principal never reaches the gateway */
    srv.request[0] = '\0';
    assert_int_equal(dyno_client_catalog_unshare(c, "admin/a", "b b", 0), DYNO_EINVAL);
    assert_int_equal(dyno_client_catalog_unshare(c, "admin/a", "", 0), DYNO_EINVAL);
    assert_string_equal(srv.request, "");
    dyno_client_free(c);
}

static void test_login(void **state)
{
    (void)state;
    dyno_client *c = client(NULL);
    const char *ok = "{\"token\":\"dyn1.a.b\",\"expires_at\":1767225600}";
    canned_set(200, NULL, ok, strlen(ok));
    char *tok = NULL;
    int64_t exp = 0;
    assert_int_equal(dyno_client_login(c, "alice", "pw\"x", &tok, &exp), 0);
    assert_string_equal(tok, "dyn1.a.b");
    assert_int_equal(exp, 1767225600);
    assert_null(strstr(srv.request, "Authorization:"));
    assert_non_null(strstr(srv.request, "\"password\":\"pw\\\"x\""));
    free(tok);
    dyno_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arguments),     cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_error_mapping), cmocka_unit_test(test_put),
        cmocka_unit_test(test_get),           cmocka_unit_test(test_list_next),
        cmocka_unit_test(test_login),         cmocka_unit_test(test_catalog_routes),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
