/*
 * The web console's files (SPEC §2, issue 12): GET and HEAD of any path outside /v1/,
 * /healthz and /metrics is a file of frontend_dir ("/" is index.html).
 *
 * The path is checked before it touches the file system: only [A-Za-z0-9._-] segments
 * separated by single slashes, no segment starting with a dot (so no "..", no hidden
 * file), no escapes (MHD was told not to unescape: "%2e%2e" stays as typed and is refused).
 * The file is opened with O_NOFOLLOW and must be a regular file. Every answer carries a
 * Content-Security-Policy that allows scripts and styles of this origin only (no inline
 * script, no eval), so a name that slipped into the page as markup still runs nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "gw.h"
#include "log.h"

#ifndef DYNO_FRONTEND_DIR
#define DYNO_FRONTEND_DIR "agents/frontend"
#endif
#define GW_WEB_PATH_MAX 200

static const char gw_csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                             "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
                             "form-action 'self'; frame-ancestors 'none'";

static const struct {
    const char *ext, *type;
} gw_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".txt", "text/plain; charset=utf-8"},
};

const char *gw_web_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof(gw_types) / sizeof(gw_types[0]); i++)
        if (strcmp(dot, gw_types[i].ext) == 0)
            return gw_types[i].type;
    return NULL;
}

bool gw_web_path_ok(const char *path)
{
    size_t len = strlen(path);
    if (len < 2 || len > GW_WEB_PATH_MAX || path[0] != '/')
        return false;
    for (const char *p = path; *p; p++) {
        if (*p == '/') {
            if (p[1] == '/' || p[1] == '.' || p[1] == '\0')
                return false; /* empty segment, dot segment or hidden file, trailing slash */
            continue;
        }
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                  *p == '.' || *p == '_' || *p == '-';
        if (!ok)
            return false;
    }
    return true;
}

void gw_web_headers(struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "Content-Security-Policy", gw_csp);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
}

static enum MHD_Result gw_web_file(struct gw_req *r, const char *url)
{
    const char *path = strcmp(url, "/") == 0 ? "/index.html" : url;
    const char *type = gw_web_path_ok(path) ? gw_web_type(path) : NULL;
    if (!type)
        return gw_reply_error(r, DYNO_ENOTFOUND, "no such file");
    const char *dir = r->gw->cfg.frontend_dir ? r->gw->cfg.frontend_dir : DYNO_FRONTEND_DIR;
    char full[4096];
    if ((size_t)snprintf(full, sizeof(full), "%s%s", dir, path) >= sizeof(full))
        return gw_reply_error(r, DYNO_ENOTFOUND, "no such file");
    int fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return gw_reply_error(r, DYNO_ENOTFOUND, "no such file");
    }
    /* MHD closes fd with the response; HEAD gets the headers and the length only. */
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    gw_web_headers(resp);
    r->bytes_out += (uint64_t)st.st_size;
    return gw_reply_response(r, 200, resp);
}

bool gw_web_route(struct gw_req *r, const char *url, enum MHD_Result *ret)
{
    if (gw_session_route(r, url, ret))
        return true;
    if (strncmp(url, "/v1/", 4) == 0 || strcmp(url, "/v1") == 0 || strcmp(url, "/healthz") == 0 ||
        strcmp(url, "/metrics") == 0)
        return false;
    if (strcmp(r->method, MHD_HTTP_METHOD_GET) != 0 && strcmp(r->method, MHD_HTTP_METHOD_HEAD) != 0)
        *ret = gw_reply_error(r, DYNO_EMETHOD, "method %s not allowed here", r->method);
    else
        *ret = gw_web_file(r, url);
    return true;
}
