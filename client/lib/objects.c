/*
 * libdynostore objects: put (memory, stream, FILE*, path), get (memory, range, stream,
 * FILE*, path), exists, evict, meta. Transfers are streamed: memory use does not grow
 * with the object, except for the to-memory gets, which are bounded by the caller's max.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client_int.h"
#include "hash.h"
#include "json.h"
#include "names.h"

/* ---- put --------------------------------------------------------------------------------- */

static int put_path(dyno_client *c, const char *catalog, const struct dyno_put_opts *opts,
                    struct dyno_buf *path)
{
    int rc;
    if (!catalog || !dyno_valid_catalog(catalog))
        return dyno__fail(c, DYNO_EINVAL, "invalid catalog path '%s'", catalog ? catalog : "(null)");
    if (opts && opts->name && !dyno_valid_name(opts->name))
        return dyno__fail(c, DYNO_EINVAL, "invalid object name '%s'", opts->name);
    if (opts && (opts->k < 0 || opts->m < 0 || (opts->k == 0 && opts->m > 0)))
        return dyno__fail(c, DYNO_EINVAL, "invalid resilience %d,%d", opts->k, opts->m);
    rc = dyno__catalog_path(c, DYNO_REST_CATALOG_OBJECTS, catalog, NULL, path);
    if (rc < 0)
        return rc;
    if (opts && opts->name) {
        rc = dyno_buf_append(path, "?name=", 6);
        if (rc == 0)
            rc = dyno__escape(path, opts->name);
    }
    if (rc < 0)
        return dyno__fail(c, rc, "request path too long");
    return 0;
}

/* Copies a JSON string member into dst[cap]; "" when absent. */
static void copy_str(const cJSON *o, const char *name, char *dst, size_t cap)
{
    const char *s = dyno_json_str(o, name);
    snprintf(dst, cap, "%s", s ? s : "");
}

static int put_result(dyno_client *c, const struct dyno_buf *body, struct dyno_put_result *res)
{
    cJSON *doc = NULL;
    struct dyno_put_result r;
    memset(&r, 0, sizeof(r));
    if (dyno_json_parse(body->data ? body->data : "", body->len, DYNO_CLIENT_JSON_MAX, &doc) < 0)
        return dyno__fail(c, DYNO_EPROTO, "the gateway's answer to a put is not JSON");
    copy_str(doc, "key", r.key, sizeof(r.key));
    copy_str(doc, "name", r.name, sizeof(r.name));
    copy_str(doc, "sha256", r.sha256, sizeof(r.sha256));
    int64_t v = 0;
    if (dyno_json_i64(doc, "size", &v) == 0 && v >= 0)
        r.size = (uint64_t)v;
    if (dyno_json_i64(doc, "k", &v) == 0)
        r.k = (int)v;
    if (dyno_json_i64(doc, "m", &v) == 0)
        r.m = (int)v;
    cJSON_Delete(doc);
    if (!dyno_valid_key(r.key))
        return dyno__fail(c, DYNO_EPROTO, "the gateway's answer to a put has no valid key");
    if (res)
        *res = r;
    return 0;
}

/* The common body of the put calls: memory (data) or stream (read_fn). */
static int put_any(dyno_client *c, const char *catalog, const void *data, size_t len,
                   dyno_client_read_fn read_fn, void *arg, int64_t size, const struct dyno_put_opts *opts,
                   struct dyno_put_result *res)
{
    int rc;
    struct dyno_buf path, body;
    char resil[64];
    dyno_buf_init(&path, DYNO__URL_MAX);
    dyno_buf_init(&body, DYNO_CLIENT_JSON_MAX);
    rc = put_path(c, catalog, opts, &path);
    if (rc < 0)
        goto out;
    struct dyno__req r = {.method = "POST",
                          .path = path.data,
                          .content_type = "application/octet-stream",
                          .resp = &body,
                          .progress = true};
    if (read_fn) {
        r.read_fn = read_fn;
        r.read_arg = arg;
        r.read_size = size;
    } else {
        r.body = data;
        r.body_len = len;
        r.has_body = true;
    }
    if (opts && opts->k > 0) {
        snprintf(resil, sizeof(resil), "X-Dyno-Resilience: %d,%d", opts->k, opts->m);
        r.extra_hdr = resil;
    }
    rc = dyno__request(c, &r, NULL);
    if (rc < 0)
        goto out;
    rc = put_result(c, &body, res);
out:
    dyno_buf_free(&path);
    dyno_buf_free(&body);
    return rc;
}

int dyno_client_put(dyno_client *c, const char *catalog, const void *data, size_t len,
                    const struct dyno_put_opts *opts, struct dyno_put_result *res)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!data && len > 0)
        return dyno__fail(c, DYNO_EINVAL, "no data");
    return put_any(c, catalog, data, len, NULL, NULL, 0, opts, res);
}

int dyno_client_put_stream(dyno_client *c, const char *catalog, dyno_client_read_fn read_fn, void *arg,
                           int64_t size, const struct dyno_put_opts *opts, struct dyno_put_result *res)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!read_fn || size < -1)
        return dyno__fail(c, DYNO_EINVAL, "no read callback or bad size");
    return put_any(c, catalog, NULL, 0, read_fn, arg, size, opts, res);
}

struct fp_src {
    FILE *fp;
    int64_t left; /* bytes still expected when the size is known, else -1 */
};

static int fp_read(void *arg, void *buf, size_t cap, size_t *n)
{
    struct fp_src *s = arg;
    if (s->left >= 0 && (uint64_t)s->left < cap)
        cap = (size_t)s->left;
    size_t got = cap ? fread(buf, 1, cap, s->fp) : 0;
    if (got < cap && ferror(s->fp))
        return DYNO_EIO;
    if (s->left >= 0) {
        s->left -= (int64_t)got;
        if (got == 0 && s->left > 0) /* the file shrank under us */
            return DYNO_EIO;
    }
    *n = got;
    return 0;
}

int dyno_client_put_fp(dyno_client *c, const char *catalog, FILE *fp, const struct dyno_put_opts *opts,
                       struct dyno_put_result *res)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!fp)
        return dyno__fail(c, DYNO_EINVAL, "no file");
    struct fp_src src = {.fp = fp, .left = -1};
    struct stat st;
    if (fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode)) {
        off_t pos = ftello(fp);
        if (pos >= 0 && pos <= st.st_size)
            src.left = (int64_t)(st.st_size - pos);
    }
    int rc = put_any(c, catalog, NULL, 0, fp_read, &src, src.left, opts, res);
    if (rc == DYNO_EIO && c->errmsg[0] == '\0')
        dyno__fail(c, rc, "cannot read the file: %s", strerror(errno));
    return rc;
}

int dyno_client_put_file(dyno_client *c, const char *catalog, const char *path,
                         const struct dyno_put_opts *opts, struct dyno_put_result *res)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!path)
        return dyno__fail(c, DYNO_EINVAL, "no file");
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return dyno__fail(c, errno == ENOENT ? DYNO_ENOTFOUND : DYNO_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(fp);
        return dyno__fail(c, DYNO_EINVAL, "%s: is a folder", path);
    }
    int rc = dyno_client_put_fp(c, catalog, fp, opts, res);
    if (rc == DYNO_EIO && strncmp(c->errmsg, "cannot read", 11) == 0)
        dyno__fail(c, rc, "%s: read error", path);
    fclose(fp);
    return rc;
}

/* ---- get --------------------------------------------------------------------------------- */

/* The sink between libcurl and the caller: cuts a 200 answer to the asked window (when the
 * gateway ignored Range), hashes a whole-object get, and enforces a memory max. */
struct sink {
    dyno_client *c;
    const struct dyno__resp *resp;
    uint64_t offset, length; /* asked window */
    bool ranged;
    uint64_t pos;            /* bytes of the answer seen */
    struct dyno_sha256 *sha; /* whole-object gets */
    bool hash_ok;            /* the answer carries a digest to check against */
    bool started;
    dyno_client_write_fn fn;
    void *arg;
    struct dyno_buf *mem; /* to-memory gets */
};

static bool hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')))
            return false;
    return true;
}

static const char *resp_digest(const struct dyno__resp *r)
{
    if (hex64(r->sha_hdr))
        return r->sha_hdr;
    if (hex64(r->etag))
        return r->etag;
    return NULL;
}

static int sink_deliver(struct sink *s, const void *p, size_t n)
{
    if (s->mem) {
        int rc = dyno_buf_append(s->mem, p, n);
        if (rc == DYNO_ETOOBIG)
            return dyno__fail(s->c, rc, "object larger than the limit of %zu bytes", s->mem->max);
        return rc;
    }
    return s->fn(s->arg, p, n);
}

static int sink_write(void *arg, const void *buf, size_t len)
{
    struct sink *s = arg;
    const unsigned char *p = buf;
    if (!s->started) {
        s->started = true;
        if (s->mem && s->resp->content_length > 0 && (uint64_t)s->resp->content_length > s->mem->max &&
            (s->resp->status == 206 || !s->ranged))
            return dyno__fail(s->c, DYNO_ETOOBIG, "object is %lld bytes, more than the limit of %zu",
                              (long long)s->resp->content_length, s->mem->max);
        s->hash_ok = !s->ranged && s->sha && resp_digest(s->resp) != NULL;
    }
    if (s->hash_ok && dyno_sha256_update(s->sha, p, len) < 0)
        return DYNO_EINTERNAL;
    if (s->ranged && s->resp->status == 200) {
        /* the whole object came back: pass only [offset, offset+length) */
        uint64_t lo = s->pos, hi = s->pos + len;
        s->pos = hi;
        uint64_t end = s->length == DYNO_CLIENT_TO_END ? UINT64_MAX : s->offset + s->length;
        uint64_t a = lo > s->offset ? lo : s->offset;
        uint64_t b = hi < end ? hi : end;
        if (a >= b)
            return 0;
        return sink_deliver(s, p + (a - lo), (size_t)(b - a));
    }
    s->pos += len;
    return sink_deliver(s, p, len);
}

static int key_path(dyno_client *c, const char *key, const char *suffix, char *out, size_t cap)
{
    if (!key || !dyno_valid_key(key))
        return dyno__fail(c, DYNO_EINVAL, "invalid object key '%s' (32 lowercase hex characters)",
                          key ? key : "(null)");
    snprintf(out, cap, "/v1/objects/%s%s", key, suffix);
    return 0;
}

/* A JSON call on /v1/objects/<key><suffix>; a bare "not found" answer names the object. */
static int key_call(dyno_client *c, const char *method, const char *key, const char *suffix, cJSON **out)
{
    char path[128];
    int rc = key_path(c, key, suffix, path, sizeof(path));
    if (rc < 0)
        return rc;
    return dyno__notfound(c, dyno__json_call(c, method, path, NULL, out), "object", key);
}

static int get_any(dyno_client *c, const char *key, uint64_t offset, uint64_t length, struct sink *s)
{
    int rc;
    char path[128], range[64];
    struct dyno__resp resp;
    rc = key_path(c, key, "", path, sizeof(path));
    if (rc < 0)
        return rc;
    if (length == 0 || (length != DYNO_CLIENT_TO_END && length - 1 > UINT64_MAX - offset))
        return dyno__fail(c, DYNO_EINVAL, "empty or overflowing range");
    s->c = c;
    s->resp = &resp;
    s->offset = offset;
    s->length = length;
    s->ranged = !(offset == 0 && length == DYNO_CLIENT_TO_END);
    struct dyno__req r = {
        .method = "GET", .path = path, .write_fn = sink_write, .write_arg = s, .progress = true};
    if (s->ranged) {
        if (length == DYNO_CLIENT_TO_END)
            snprintf(range, sizeof(range), "%llu-", (unsigned long long)offset);
        else
            snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)offset,
                     (unsigned long long)(offset + length - 1));
        r.range = range;
    } else {
        rc = dyno_sha256_new(&s->sha);
        if (rc < 0)
            return dyno__fail(c, rc, "cannot start SHA-256");
    }
    rc = dyno__request(c, &r, &resp);
    if (rc == 0 && s->hash_ok) {
        uint8_t d[32];
        char hex[65];
        rc = dyno_sha256_final(s->sha, d);
        if (rc == 0) {
            dyno_hex(d, 32, hex);
            const char *want = resp_digest(&resp);
            if (strncasecmp(hex, want, 64) != 0)
                rc = dyno__fail(c, DYNO_ECORRUPT, "object %s: SHA-256 mismatch (got %s, expected %s)", key,
                                hex, want);
        }
    }
    if (resp.status == 404)
        dyno__notfound(c, rc, "object", key);
    dyno_sha256_free(s->sha);
    s->sha = NULL;
    return rc;
}

int dyno_client_get_range(dyno_client *c, const char *key, uint64_t offset, uint64_t length, size_t max,
                          void **data, size_t *len)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!data || !len)
        return dyno__fail(c, DYNO_EINVAL, "no output buffer");
    struct dyno_buf mem;
    dyno_buf_init(&mem, max);
    struct sink s = {.mem = &mem};
    int rc = get_any(c, key, offset, length, &s);
    if (rc < 0) {
        dyno_buf_free(&mem);
        return rc;
    }
    size_t n = 0;
    char *p = dyno_buf_take(&mem, &n);
    if (!p) {
        p = calloc(1, 1); /* an empty object is a valid answer */
        if (!p)
            return dyno__fail(c, DYNO_ENOMEM, "out of memory");
    }
    *data = p;
    *len = n;
    return 0;
}

int dyno_client_get(dyno_client *c, const char *key, size_t max, void **data, size_t *len)
{
    return dyno_client_get_range(c, key, 0, DYNO_CLIENT_TO_END, max, data, len);
}

int dyno_client_get_stream(dyno_client *c, const char *key, uint64_t offset, uint64_t length,
                           dyno_client_write_fn write_fn, void *arg)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!write_fn)
        return dyno__fail(c, DYNO_EINVAL, "no write callback");
    struct sink s = {.fn = write_fn, .arg = arg};
    return get_any(c, key, offset, length, &s);
}

static int fp_write(void *arg, const void *buf, size_t len)
{
    return fwrite(buf, 1, len, (FILE *)arg) == len ? 0 : DYNO_EIO;
}

int dyno_client_get_fp(dyno_client *c, const char *key, FILE *fp)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!fp)
        return dyno__fail(c, DYNO_EINVAL, "no file");
    struct sink s = {.fn = fp_write, .arg = fp};
    int rc = get_any(c, key, 0, DYNO_CLIENT_TO_END, &s);
    if (fflush(fp) != 0 && rc == 0)
        rc = DYNO_EIO;
    if (rc == DYNO_EIO && c->errmsg[0] == '\0')
        dyno__fail(c, rc, "cannot write the output: %s", strerror(errno));
    return rc;
}

static int fd_write(void *arg, const void *buf, size_t len)
{
    int fd = *(int *)arg;
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return DYNO_EIO;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int dyno_client_get_file(dyno_client *c, const char *key, const char *path)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!path || !path[0])
        return dyno__fail(c, DYNO_EINVAL, "no output path");
    int rc, fd = -1;
    char tmp[4096];
    char rnd[DYNO_KEY_LEN + 1];
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path) + 1 : 0;
    const char *base = slash ? slash + 1 : path;
    if (!base[0])
        return dyno__fail(c, DYNO_EINVAL, "%s: is a folder", path);
    for (int tries = 0; tries < 16 && fd < 0; tries++) {
        if (dyno_key_new(rnd) < 0)
            return dyno__fail(c, DYNO_EINTERNAL, "no randomness");
        int n = snprintf(tmp, sizeof(tmp), "%.*s.%s.%.12s.part", dirlen, path, base, rnd);
        if (n < 0 || (size_t)n >= sizeof(tmp))
            return dyno__fail(c, DYNO_EINVAL, "%s: path too long", path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            return dyno__fail(c, DYNO_EIO, "cannot create a file next to %s: %s", path, strerror(errno));
    }
    if (fd < 0)
        return dyno__fail(c, DYNO_EIO, "cannot create a temp file next to %s", path);
    struct sink s = {.fn = fd_write, .arg = &fd};
    rc = get_any(c, key, 0, DYNO_CLIENT_TO_END, &s);
    if (rc == DYNO_EIO && c->errmsg[0] == '\0')
        dyno__fail(c, rc, "cannot write %s: %s", tmp, strerror(errno));
    if (rc == 0 && fsync(fd) != 0)
        rc = dyno__fail(c, DYNO_EIO, "cannot write %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = dyno__fail(c, DYNO_EIO, "cannot write %s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = dyno__fail(c, DYNO_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc < 0)
        unlink(tmp);
    return rc;
}

/* ---- exists, evict, meta ----------------------------------------------------------------- */

int dyno_client_exists(dyno_client *c, const char *key, struct dyno_object_stat *st)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    char path[128];
    int rc = key_path(c, key, "", path, sizeof(path));
    if (rc < 0)
        return rc;
    struct dyno__resp resp;
    struct dyno__req r = {.method = "HEAD", .path = path};
    rc = dyno__request(c, &r, &resp);
    if (rc == DYNO_ENOTFOUND)
        return dyno__fail(c, rc, "object %s not found", key);
    if (rc < 0)
        return rc;
    if (st) {
        memset(st, 0, sizeof(*st));
        st->size = resp.content_length > 0 ? (uint64_t)resp.content_length : 0;
        const char *d = resp_digest(&resp);
        if (d)
            snprintf(st->sha256, sizeof(st->sha256), "%s", d);
    }
    return 0;
}

int dyno_client_evict(dyno_client *c, const char *key)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    return key_call(c, "DELETE", key, "", NULL);
}

int dyno_client_meta(dyno_client *c, const char *key, struct cJSON **out)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!out)
        return dyno__fail(c, DYNO_EINVAL, "no output");
    return key_call(c, "GET", key, "/meta", out);
}
