/*
 * libdynostore core: client life cycle, options, and the one HTTP request engine
 * (a libcurl easy handle per client, reused across calls for keep-alive). This file is
 * also the adapter that maps libcurl's errors and the gateway's error bodies to DYNO_E*.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "client_int.h"
#include "json.h"
#include "token.h"

/* ---- errors ------------------------------------------------------------------------------ */

int dyno__fail(dyno_client *c, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
    va_end(ap);
    return err;
}

void dyno__begin(dyno_client *c)
{
    c->errmsg[0] = '\0';
}

const char *dyno_client_last_error(const dyno_client *c)
{
    if (!c)
        return "";
    return c->errmsg;
}

/* libcurl's transport failures. */
static int curl_err(CURLcode cc)
{
    switch (cc) {
    case CURLE_OK:
        return DYNO_OK;
    case CURLE_OUT_OF_MEMORY:
        return DYNO_ENOMEM;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return DYNO_EINVAL;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return DYNO_EUNAVAIL;
    case CURLE_OPERATION_TIMEDOUT:
        return DYNO_ETIMEDOUT;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
        return DYNO_EPROTO;
    default:
        return DYNO_EIO;
    }
}

/* Message and code of an error answer: {"error":{"code":..,"message":..}} when the body
 * is that, else the status alone. */
static int http_fail(dyno_client *c, long status, const struct dyno_buf *body)
{
    int err = dyno_err_from_http_status((int)status);
    if (err == DYNO_OK) /* 1xx/3xx: not a success for us */
        err = DYNO_EPROTO;
    cJSON *doc = NULL;
    if (body->len > 0 && dyno_json_parse(body->data, body->len, DYNO__ERRBODY_MAX, &doc) == 0) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
        const char *code = dyno_json_str(e, "code");
        const char *msg = dyno_json_str(e, "message");
        if (code) {
            int mapped = dyno_err_from_code(code);
            if (mapped != DYNO_EINTERNAL || strcmp(code, "internal") == 0)
                err = mapped;
        }
        if (msg && msg[0]) {
            dyno__fail(c, err, "%s", msg);
            cJSON_Delete(doc);
            return err;
        }
        cJSON_Delete(doc);
    }
    if (status == 401)
        return dyno__fail(c, err, "unauthorized: missing, invalid or expired token");
    if (status == 403)
        return dyno__fail(c, err, "forbidden");
    if (status == 404)
        return dyno__fail(c, err, "not found");
    return dyno__fail(c, err, "gateway answered HTTP %ld (%s)", status, dyno_strerror(err));
}

/* ---- life cycle -------------------------------------------------------------------------- */

int dyno_client_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : DYNO_EINTERNAL;
}

void dyno_client_global_cleanup(void)
{
    curl_global_cleanup();
}

static bool token_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > DYNO_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (t[i] <= ' ' || t[i] > '~') /* keeps CR/LF out of the header */
            return false;
    return true;
}

int dyno_client_new(const char *gateway_url, const char *token, dyno_client **out)
{
    int rc = DYNO_ENOMEM;
    if (!gateway_url || !out)
        return DYNO_EINVAL;
    if (strncmp(gateway_url, "http://", 7) != 0 && strncmp(gateway_url, "https://", 8) != 0)
        return DYNO_EINVAL;
    if (strlen(gateway_url) > DYNO__URL_MAX / 2)
        return DYNO_EINVAL;
    if (token && !token_ok(token))
        return DYNO_EINVAL;
    dyno_client *c = calloc(1, sizeof(*c));
    if (!c)
        return DYNO_ENOMEM;
    c->connect_ms = 10000;
    c->idle_ms = 60000;
    c->base = strdup(gateway_url);
    if (!c->base)
        goto out;
    size_t n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/')
        c->base[--n] = '\0';
    if (token) {
        c->token = strdup(token);
        if (!c->token)
            goto out;
    }
    c->curl = curl_easy_init();
    if (!c->curl) {
        rc = DYNO_EINTERNAL;
        goto out;
    }
    *out = c;
    return 0;
out:
    dyno_client_free(c);
    return rc;
}

void dyno_client_free(dyno_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->base);
    if (c->token) {
        memset(c->token, 0, strlen(c->token));
        free(c->token);
    }
    free(c->cafile);
    free(c);
}

int dyno_client_set_token(dyno_client *c, const char *token)
{
    if (!c)
        return DYNO_EINVAL;
    char *t = NULL;
    if (token) {
        if (!token_ok(token))
            return DYNO_EINVAL;
        t = strdup(token);
        if (!t)
            return DYNO_ENOMEM;
    }
    if (c->token) {
        memset(c->token, 0, strlen(c->token));
        free(c->token);
    }
    c->token = t;
    return 0;
}

int dyno_client_set_cafile(dyno_client *c, const char *path)
{
    if (!c)
        return DYNO_EINVAL;
    char *p = NULL;
    if (path) {
        if (access(path, R_OK) != 0)
            return DYNO_ENOTFOUND;
        p = strdup(path);
        if (!p)
            return DYNO_ENOMEM;
    }
    free(c->cafile);
    c->cafile = p;
    return 0;
}

int dyno_client_set_timeouts(dyno_client *c, long connect_ms, long total_ms, long idle_ms)
{
    if (!c || connect_ms < 0 || total_ms < 0 || idle_ms < 0)
        return DYNO_EINVAL;
    c->connect_ms = connect_ms;
    c->total_ms = total_ms;
    c->idle_ms = idle_ms;
    return 0;
}

void dyno_client_set_progress(dyno_client *c, dyno_client_progress_fn fn, void *arg)
{
    if (!c)
        return;
    c->progress = fn;
    c->progress_arg = arg;
}

/* ---- the request engine ------------------------------------------------------------------ */

struct xfer {
    dyno_client *c;
    const struct dyno__req *r;
    struct dyno__resp *resp;
    struct dyno_buf errbody; /* body of a non-2xx answer */
    int cb_err;              /* error raised inside a callback */
    bool upload;
};

static bool status_ok(long s)
{
    return s >= 200 && s < 300;
}

/* Copies a header value (trimmed, unquoted) into dst. */
static void header_value(const char *v, size_t n, char *dst, size_t cap)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* a new response (after a 100 Continue, for instance): start over */
        const char *sp = memchr(p, ' ', n);
        long st = 0;
        if (sp) {
            for (const char *q = sp + 1; q < p + n && *q >= '0' && *q <= '9'; q++)
                st = st * 10 + (*q - '0');
        }
        x->resp->status = st;
        x->resp->content_length = -1;
        x->resp->etag[0] = '\0';
        x->resp->sha_hdr[0] = '\0';
        return n;
    }
    const char *colon = memchr(p, ':', n);
    if (!colon)
        return n;
    size_t nl = (size_t)(colon - p);
    const char *v = colon + 1;
    size_t vl = n - nl - 1;
    if (nl == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
        char tmp[32];
        header_value(v, vl, tmp, sizeof(tmp));
        uint64_t cl;
        /* A length that does not parse, or does not fit int64_t, stays unknown (-1). */
        if (dyno_rest_parse_u64(tmp, &cl) == 0 && cl <= INT64_MAX)
            x->resp->content_length = (int64_t)cl;
    } else if (nl == 4 && strncasecmp(p, "ETag", 4) == 0) {
        header_value(v, vl, x->resp->etag, sizeof(x->resp->etag));
    } else if (nl == 13 && strncasecmp(p, "X-Dyno-Sha256", 13) == 0) {
        header_value(v, vl, x->resp->sha_hdr, sizeof(x->resp->sha_hdr));
    }
    return n;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nmemb;
    if (!status_ok(x->resp->status)) {
        size_t room = x->errbody.max - x->errbody.len;
        if (room > 0)
            (void)dyno_buf_append(&x->errbody, p, n < room ? n : room);
        return n;
    }
    if (x->r->write_fn) {
        int rc = x->r->write_fn(x->r->write_arg, p, n);
        if (rc < 0) {
            x->cb_err = rc;
            return 0;
        }
        return n;
    }
    if (x->r->resp) {
        int rc = dyno_buf_append(x->r->resp, p, n);
        if (rc < 0) {
            x->cb_err = rc;
            if (rc == DYNO_ETOOBIG)
                dyno__fail(x->c, rc, "answer larger than the limit of %zu bytes", x->r->resp->max);
            return 0;
        }
    }
    return n;
}

static size_t on_read(char *p, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t got = 0;
    int rc = x->r->read_fn(x->r->read_arg, p, size * nmemb, &got);
    if (rc < 0) {
        x->cb_err = rc;
        return CURL_READFUNC_ABORT;
    }
    if (got > size * nmemb) {
        x->cb_err = DYNO_EINVAL;
        return CURL_READFUNC_ABORT;
    }
    return got;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    struct xfer *x = arg;
    dyno_client *c = x->c;
    if (!c->progress)
        return 0;
    uint64_t done = (uint64_t)(x->upload ? ulnow : dlnow);
    uint64_t total = (uint64_t)(x->upload ? ultotal : dltotal);
    if (x->upload && x->r->read_fn && x->r->read_size >= 0)
        total = (uint64_t)x->r->read_size;
    if (c->progress(c->progress_arg, done, total) != 0) {
        x->cb_err = DYNO_EIO;
        dyno__fail(c, DYNO_EIO, "transfer aborted by the progress callback");
        return 1;
    }
    return 0;
}

/* Sets option opt of h, or fails the calling step (it returns the error). */
#define SETOPT(opt, val)                                                                                     \
    do {                                                                                                     \
        if (curl_easy_setopt(h, opt, val) != CURLE_OK)                                                       \
            return dyno__fail(c, DYNO_EINTERNAL, "libcurl refused option %s", #opt);                         \
    } while (0)

/* The options every request has: where, limits, callbacks, and r's range and progress. */
static int client__set_transfer(dyno_client *c, CURL *h, const struct dyno__req *r, const char *url,
                                char *cerr, struct xfer *x)
{
    SETOPT(CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_ERRORBUFFER, cerr);
    SETOPT(CURLOPT_USERAGENT, "libdynostore/" DYNO_VERSION);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, x);
    SETOPT(CURLOPT_WRITEFUNCTION, on_write);
    SETOPT(CURLOPT_WRITEDATA, x);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
    SETOPT(CURLOPT_TIMEOUT_MS, c->total_ms);
    if (c->idle_ms > 0) {
        SETOPT(CURLOPT_LOW_SPEED_LIMIT, 1L);
        SETOPT(CURLOPT_LOW_SPEED_TIME, (c->idle_ms + 999) / 1000);
    }
    SETOPT(CURLOPT_TCP_NODELAY, 1L);
    if (c->cafile)
        SETOPT(CURLOPT_CAINFO, c->cafile);
    if (r->range)
        SETOPT(CURLOPT_RANGE, r->range);
    if (r->progress && c->progress) {
        SETOPT(CURLOPT_NOPROGRESS, 0L);
        SETOPT(CURLOPT_XFERINFOFUNCTION, on_progress);
        SETOPT(CURLOPT_XFERINFODATA, x);
    }
    return 0;
}

/* Appends the header line to *hdrs. */
static int client__add_header(dyno_client *c, struct curl_slist **hdrs, const char *line)
{
    struct curl_slist *tmp = curl_slist_append(*hdrs, line);
    if (!tmp)
        return dyno__fail(c, DYNO_ENOMEM, "out of memory");
    *hdrs = tmp;
    return 0;
}

/* The request's own headers: the bearer token, the body's type, r's extra one. */
static int client__headers(dyno_client *c, const struct dyno__req *r, struct curl_slist **hdrs)
{
    char line[DYNO_TOKEN_MAX + 64];
    int rc = 0;
    if (c->token) {
        snprintf(line, sizeof(line), "Authorization: Bearer %s", c->token);
        rc = client__add_header(c, hdrs, line);
        memset(line, 0, sizeof(line)); /* no copy of the token left on the stack */
    }
    if (rc == 0 && r->content_type) {
        snprintf(line, sizeof(line), "Content-Type: %s", r->content_type);
        rc = client__add_header(c, hdrs, line);
    }
    if (rc == 0 && r->extra_hdr)
        rc = client__add_header(c, hdrs, r->extra_hdr);
    return rc;
}

/* The method and the body: streamed from r->read_fn (chunked when its size is unknown), from
 * memory, or none. */
static int client__set_body(dyno_client *c, CURL *h, const struct dyno__req *r, struct xfer *x,
                            struct curl_slist **hdrs)
{
    if (r->read_fn) {
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_READFUNCTION, on_read);
        SETOPT(CURLOPT_READDATA, x);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->read_size);
        if (r->read_size < 0) {
            int rc = client__add_header(c, hdrs, "Transfer-Encoding: chunked");
            if (rc)
                return rc;
        }
    } else if (r->has_body) {
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        SETOPT(CURLOPT_POSTFIELDS, r->body_len ? r->body : "");
    }
    if (strcmp(r->method, "HEAD") == 0)
        SETOPT(CURLOPT_NOBODY, 1L);
    else if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "POST") != 0)
        SETOPT(CURLOPT_CUSTOMREQUEST, r->method);
    else if (strcmp(r->method, "POST") == 0 && !r->has_body && !r->read_fn) {
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        SETOPT(CURLOPT_POSTFIELDS, "");
    }
    if (*hdrs)
        SETOPT(CURLOPT_HTTPHEADER, *hdrs);
    return 0;
}

/* What a performed transfer amounts to: 0 for a 2xx answer (with a last progress report),
 * else the error of a callback, of the answer or of the transport, with c->errmsg set. */
static int client__outcome(dyno_client *c, CURL *h, const struct dyno__req *r, CURLcode cc,
                           const struct xfer *x, const char *cerr)
{
    if (cc != CURLE_OK) {
        if (x->cb_err < 0) {
            if (c->errmsg[0] == '\0')
                dyno__fail(c, x->cb_err, "transfer stopped: %s", dyno_strerror(x->cb_err));
            return x->cb_err;
        }
        /* An error answer may close the connection before the upload finished; the
         * status and body tell more than the send error. */
        if (x->resp->status >= 300)
            return http_fail(c, x->resp->status, &x->errbody);
        int rc = curl_err(cc);
        dyno__fail(c, rc, "%s %s: %s", r->method, c->base, cerr[0] ? cerr : curl_easy_strerror(cc));
        return rc;
    }
    if (!status_ok(x->resp->status))
        return http_fail(c, x->resp->status, &x->errbody);
    if (r->progress && c->progress) {
        curl_off_t done = 0;
        curl_easy_getinfo(h, x->upload ? CURLINFO_SIZE_UPLOAD_T : CURLINFO_SIZE_DOWNLOAD_T, &done);
        uint64_t total = (uint64_t)done;
        if (x->upload && r->read_fn && r->read_size >= 0)
            total = (uint64_t)r->read_size;
        (void)c->progress(c->progress_arg, (uint64_t)done, total);
    }
    return 0;
}
#undef SETOPT

int dyno__request(dyno_client *c, const struct dyno__req *r, struct dyno__resp *out)
{
    struct curl_slist *hdrs = NULL;
    struct dyno__resp resp_local;
    struct dyno__resp *resp = out ? out : &resp_local;
    struct xfer x = {.c = c, .r = r, .resp = resp};
    char url[DYNO__URL_MAX];
    char cerr[CURL_ERROR_SIZE];
    CURL *h = c->curl;

    memset(resp, 0, sizeof(*resp));
    resp->content_length = -1;
    dyno_buf_init(&x.errbody, DYNO__ERRBODY_MAX);
    cerr[0] = '\0';
    x.upload = r->has_body || r->read_fn;

    int un = snprintf(url, sizeof(url), "%s%s", c->base, r->path);
    if (un < 0 || (size_t)un >= sizeof(url))
        return dyno__fail(c, DYNO_EINVAL, "URL too long");

    curl_easy_reset(h);
    int rc = client__set_transfer(c, h, r, url, cerr, &x);
    if (rc == 0)
        rc = client__headers(c, r, &hdrs);
    if (rc == 0)
        rc = client__set_body(c, h, r, &x, &hdrs);
    if (rc == 0) {
        CURLcode cc = curl_easy_perform(h);
        long st = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
        if (st > 0)
            resp->status = st;
        rc = client__outcome(c, h, r, cc, &x, cerr);
    }
    curl_slist_free_all(hdrs); /* the token line is freed here; libcurl keeps no copy */
    dyno_buf_free(&x.errbody);
    /* drop the pointer to our stack buffer */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    return rc;
}

int dyno__json_call(dyno_client *c, const char *method, const char *path, const cJSON *body, cJSON **out)
{
    int rc;
    char *text = NULL;
    struct dyno_buf resp;
    dyno_buf_init(&resp, DYNO_CLIENT_JSON_MAX);
    struct dyno__req r = {.method = method, .path = path, .resp = &resp};
    if (body) {
        text = dyno_json_print(body, &r.body_len);
        if (!text)
            return dyno__fail(c, DYNO_ENOMEM, "out of memory");
        r.body = text;
        r.has_body = true;
        r.content_type = "application/json";
    }
    rc = dyno__request(c, &r, NULL);
    if (rc < 0)
        goto out;
    if (out) {
        cJSON *doc = NULL;
        if (resp.len == 0) {
            doc = cJSON_CreateObject(); /* 204 and friends */
            if (!doc) {
                rc = dyno__fail(c, DYNO_ENOMEM, "out of memory");
                goto out;
            }
        } else if (dyno_json_parse(resp.data, resp.len, DYNO_CLIENT_JSON_MAX, &doc) < 0) {
            rc = dyno__fail(c, DYNO_EPROTO, "the gateway's answer to %s %s is not JSON", method, path);
            goto out;
        }
        *out = doc;
    }
out:
    if (text)
        memset(text, 0, r.body_len); /* may hold a password */
    free(text);
    dyno_buf_free(&resp);
    return rc;
}

int dyno__json_get(dyno_client *c, const char *path, cJSON **out)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!out)
        return dyno__fail(c, DYNO_EINVAL, "no output");
    return dyno__json_call(c, "GET", path, NULL, out);
}

int dyno__json_strdup(dyno_client *c, const cJSON *doc, const char *name, const char *answer, char **dst)
{
    const char *s = dyno_json_str(doc, name);
    if (!s || !s[0])
        return dyno__fail(c, DYNO_EPROTO, "the gateway's %s has no %s", answer, name);
    char *copy = strdup(s);
    if (!copy)
        return dyno__fail(c, DYNO_ENOMEM, "out of memory");
    *dst = copy;
    return 0;
}

void dyno__json_wipe(cJSON *o, const char *name)
{
    cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsString(m) && m->valuestring)
        memset(m->valuestring, 0, strlen(m->valuestring));
}

int dyno__notfound(dyno_client *c, int rc, const char *what, const char *name)
{
    if (rc == DYNO_ENOTFOUND && strcmp(c->errmsg, "not found") == 0)
        dyno__fail(c, rc, "%s %s not found", what, name);
    return rc;
}

int dyno__escape(struct dyno_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int rc;
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
            *p == '.' || *p == '_' || *p == '~') {
            rc = dyno_buf_append(b, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rc = dyno_buf_append(b, e, 3);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}
