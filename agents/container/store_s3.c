/*
 * The s3 backend of the fragment store: fragments as objects of an S3-compatible service,
 * <endpoint>/<bucket>/<prefix><id> (path-style), every request signed with SigV4 by
 * libcurl (CURLOPT_AWS_SIGV4) and sent with x-amz-content-sha256: UNSIGNED-PAYLOAD, which
 * S3 requires and libcurl does not add.
 *
 * Put: bytes are gathered in a buffer of part_size; a fragment that fits is one PUT at
 * commit, a bigger one becomes a multipart upload whose parts go out as the buffer fills
 * (so a put holds at most one part in memory), completed at commit. Either way the object
 * appears only when it is complete, which is commit's visibility; an abort deletes the
 * upload. Read: HEAD at open (size and ETag), ranged GETs with If-Match on that ETag
 * through a read-ahead window, so a reader never mixes two versions: one replaced under
 * it gets DYNO_EIO (S3 without versioning cannot keep the old one), never other bytes.
 * Scan: ListObjectsV2 with continuation, parsed by a small bounded scanner (s3__xml_next).
 * Usage: by a scan at open, kept by commit and remove (a HEAD before each gives the size
 * replaced or removed; two puts of one id at once may leave it off by one of them, which
 * the next open's scan corrects).
 *
 * Errors: curl failures and 5xx are DYNO_EIO, 404 DYNO_ENOTFOUND, 412 (replaced under a
 * reader) DYNO_EIO, other 4xx DYNO_EIO; each is logged once with the method, key, HTTP
 * status and S3's error code.
 */
#include "store.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dynostore/error.h"
#include "log.h"

#define S3_URL_MAX 2048
#define S3_ETAG_MAX 128
#define S3_BODY_MAX (1024 * 1024)     /* a response body we parse (list, upload ids, errors) */
#define S3_READAHEAD (1024 * 1024)    /* bytes one ranged GET fetches at least */
#define S3_MAX_PARTS 10000            /* S3's limit on the parts of one upload */
#define S3_PART_MIN (5 * 1024 * 1024) /* S3's smallest part (all but the last) */

struct s3_store {
    struct store base;
    struct store_s3_opts o; /* its strings point into the copies below */
    char endpoint[401], bucket[64], prefix[201], region[41], access_key[129];
    char secret[256];
    char userpwd[512];
    char sigv4[128];
    pthread_mutex_t mu; /* guards used and count */
    uint64_t used, count;
};

struct s3_put { /* a struct store_put */
    struct s3_store *s;
    char id[STORE_ID_MAX + 1];
    uint8_t *buf;
    size_t blen, bcap; /* bcap grows up to one part */
    uint64_t size;
    char upload_id[256]; /* "" until the fragment outgrows one part */
    unsigned nparts;
    char (*etags)[S3_ETAG_MAX]; /* etags[i]: part i + 1 */
    bool failed;
};

struct s3_read { /* a struct store_read */
    struct s3_store *s;
    char id[STORE_ID_MAX + 1];
    char etag[S3_ETAG_MAX];
    uint64_t size;
    uint8_t *win; /* the read-ahead window: bytes [win_off, win_off + win_len) */
    uint64_t win_off;
    size_t win_len;
};

/* ---- one request ---- */

struct s3_body {
    uint8_t *p;
    size_t len, cap; /* cap: where it must stop (a fixed buffer) or the limit (grown) */
    bool fixed;
    bool over;
};

struct s3_req {
    const char *method;
    char url[S3_URL_MAX];
    const void *send; /* body to send (PUT, POST) */
    size_t send_len;
    const char *range; /* "bytes=a-b" or NULL */
    const char *if_match;
    struct s3_body body;
    /* answers */
    long status;
    char etag[S3_ETAG_MAX];
    uint64_t length;
    bool have_length;
};

static size_t s3__on_body(char *data, size_t sz, size_t n, void *arg)
{
    struct s3_req *q = arg;
    struct s3_body *b = &q->body;
    size_t len = sz * n;
    if (b->fixed && (q->status < 200 || q->status > 299))
        return len; /* an error document is not the caller's data (s3__run maps the status) */
    if (b->fixed) {
        if (len > b->cap - b->len) {
            b->over = true;
            return 0;
        }
    } else {
        if (b->len + len > S3_BODY_MAX) {
            b->over = true;
            return 0;
        }
        if (b->len + len > b->cap) {
            size_t want = b->cap ? b->cap * 2 : 4096;
            while (want < b->len + len)
                want *= 2;
            uint8_t *nb = realloc(b->p, want + 1);
            if (!nb)
                return 0;
            b->p = nb;
            b->cap = want;
        }
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    if (!b->fixed)
        b->p[b->len] = '\0';
    return len;
}

static size_t s3__on_header(char *data, size_t sz, size_t n, void *arg)
{
    struct s3_req *q = arg;
    size_t len = sz * n;
    char line[512];
    if (len >= sizeof(line))
        return len;
    memcpy(line, data, len);
    line[len] = '\0';
    if (strncmp(line, "HTTP/", 5) == 0) {
        /* A status line (one per response, e.g. after a 100): the body's fate depends on it. */
        const char *sp = strchr(line, ' ');
        q->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        q->etag[0] = '\0';
        q->have_length = false;
        return len;
    }
    char *colon = strchr(line, ':');
    if (!colon)
        return len;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ')
        v++;
    size_t vl = strcspn(v, "\r\n");
    v[vl] = '\0';
    if (strcasecmp(line, "ETag") == 0)
        snprintf(q->etag, sizeof(q->etag), "%s", v);
    else if (strcasecmp(line, "Content-Length") == 0) {
        q->length = strtoull(v, NULL, 10);
        q->have_length = true;
    }
    return len;
}

/* "<Code>X</Code>" of an S3 error body into out ("" when none). */
static void s3__error_code(const struct s3_body *b, char *out, size_t cap)
{
    out[0] = '\0';
    if (b->fixed || !b->p)
        return;
    const char *a = strstr((const char *)b->p, "<Code>");
    const char *e = a ? strstr(a, "</Code>") : NULL;
    if (a && e) {
        a += 6;
        snprintf(out, cap, "%.*s", (int)(e - a < 64 ? e - a : 64), a);
    }
}

/* Runs q; 0 when the service answered 2xx, else a DYNO_E* (logged unless quiet_404). */
static int s3__run(struct s3_store *s, struct s3_req *q, bool quiet_404)
{
    CURL *c = curl_easy_init();
    if (!c)
        return DYNO_ENOMEM;
    struct curl_slist *h = NULL, *t;
    char range[96], im[S3_ETAG_MAX + 16];
    h = curl_slist_append(h, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    if (h && (t = curl_slist_append(h, "Expect:")))
        h = t;
    if (h && q->send && (t = curl_slist_append(h, "Content-Type: application/octet-stream")))
        h = t;
    if (h && q->range) {
        snprintf(range, sizeof(range), "Range: %s", q->range);
        if ((t = curl_slist_append(h, range)))
            h = t;
    }
    if (h && q->if_match && q->if_match[0]) {
        snprintf(im, sizeof(im), "If-Match: %s", q->if_match);
        if ((t = curl_slist_append(h, im)))
            h = t;
    }
    curl_easy_setopt(c, CURLOPT_URL, q->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, s->sigv4);
    curl_easy_setopt(c, CURLOPT_USERPWD, s->userpwd);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s3__on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, s3__on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, q);
    if (strcmp(q->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(q->method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
        /* The body from memory (also for an empty PUT), so curl sends Content-Length. */
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->send ? (const char *)q->send : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(q->send ? q->send_len : 0));
    }
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &q->status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);

    int rc = 0;
    if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && q->body.over))
        rc = DYNO_EIO;
    else if (q->body.over)
        rc = DYNO_EPROTO;
    else if (q->status == 404)
        rc = DYNO_ENOTFOUND;
    else if (q->status < 200 || q->status > 299)
        rc = DYNO_EIO;
    if (rc && !(rc == DYNO_ENOTFOUND && quiet_404)) {
        char code[80], qu[S3_URL_MAX + 64];
        s3__error_code(&q->body, code, sizeof(code));
        dyno_warn("s3 request failed", "method=%s url=%s status=%ld s3_code=%s curl=%s error=%s", q->method,
                  dyno_log_q(qu, sizeof(qu), q->url), q->status, code[0] ? code : "-",
                  cc == CURLE_OK ? "ok" : curl_easy_strerror(cc), dyno_err_code(rc));
    }
    return rc;
}

static void s3__req_free(struct s3_req *q)
{
    if (!q->body.fixed)
        free(q->body.p);
}

/* q->url = <endpoint>/<bucket>/<prefix><id><query>. */
static int s3__url(const struct s3_store *s, struct s3_req *q, const char *id, const char *query)
{
    int n = snprintf(q->url, sizeof(q->url), "%s/%s/%s%s%s", s->o.endpoint, s->o.bucket, s->o.prefix, id,
                     query ? query : "");
    return (n < 0 || (size_t)n >= sizeof(q->url)) ? DYNO_EINVAL : 0;
}

/* HEAD of id: its size (and etag when asked). */
static int s3__head(struct s3_store *s, const char *id, uint64_t *size, char *etag, bool quiet_404)
{
    struct s3_req q = {.method = "HEAD"};
    int rc = s3__url(s, &q, id, NULL);
    if (!rc)
        rc = s3__run(s, &q, quiet_404);
    if (!rc && !q.have_length)
        rc = DYNO_EPROTO;
    if (!rc) {
        *size = q.length;
        if (etag)
            snprintf(etag, S3_ETAG_MAX, "%s", q.etag);
    }
    s3__req_free(&q);
    return rc;
}

/* ---- a tiny bounded XML scanner: the text of the next <tag>...</tag> at or after *pos ---- */

/* Copies the text of the next element named tag at or after *pos (before end) into out,
 * with the five predefined entities decoded; moves *pos past it. False when there is none
 * or it does not fit. */
static bool s3__xml_next(const char **pos, const char *end, const char *tag, char *out, size_t cap)
{
    char open[64], close[64];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    size_t ol = strlen(open), cl = strlen(close);
    for (const char *p = *pos; p + ol <= end; p++) {
        if (memcmp(p, open, ol) != 0)
            continue;
        const char *a = p + ol;
        for (const char *e = a; e + cl <= end; e++) {
            if (memcmp(e, close, cl) != 0)
                continue;
            size_t o = 0;
            for (const char *x = a; x < e; o++) {
                if (o + 1 >= cap)
                    return false;
                static const struct {
                    const char *ent;
                    char ch;
                } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
                bool done = false;
                for (size_t k = 0; k < sizeof(ents) / sizeof(ents[0]) && *x == '&'; k++) {
                    size_t el = strlen(ents[k].ent);
                    if ((size_t)(e - x) >= el && memcmp(x, ents[k].ent, el) == 0) {
                        out[o] = ents[k].ch;
                        x += el;
                        done = true;
                        break;
                    }
                }
                if (!done)
                    out[o] = *x++;
            }
            out[o] = '\0';
            *pos = e + cl;
            return true;
        }
        return false;
    }
    return false;
}

/* ---- puts ---- */

static int s3_put_begin(struct store *base, const char *id, struct store_put **out)
{
    struct s3_store *s = (struct s3_store *)base;
    *out = NULL;
    if (!store_valid_id(id, NULL, NULL))
        return DYNO_EINVAL;
    struct s3_put *p = calloc(1, sizeof(*p));
    if (!p)
        return DYNO_ENOMEM;
    p->s = s;
    snprintf(p->id, sizeof(p->id), "%s", id);
    /* Small to begin with: most fragments are far smaller than a part. */
    p->bcap = 64 * 1024;
    p->buf = malloc(p->bcap);
    if (!p->buf) {
        free(p);
        return DYNO_ENOMEM;
    }
    *out = (struct store_put *)p;
    return 0;
}

/* Sends the buffer as the next part of the multipart upload (starting it first). */
static int s3__send_part(struct s3_put *p)
{
    struct s3_store *s = p->s;
    int rc;
    if (!p->upload_id[0]) {
        struct s3_req q = {.method = "POST"};
        rc = s3__url(s, &q, p->id, "?uploads");
        if (!rc)
            rc = s3__run(s, &q, false);
        if (!rc) {
            const char *pos = (const char *)q.body.p;
            if (!pos ||
                !s3__xml_next(&pos, pos + q.body.len, "UploadId", p->upload_id, sizeof(p->upload_id)) ||
                strspn(p->upload_id, "0123456789abcdefABCDEF-_.~") != strlen(p->upload_id))
                rc = DYNO_EPROTO;
        }
        s3__req_free(&q);
        if (rc) {
            p->upload_id[0] = '\0';
            return rc;
        }
        p->etags = calloc(S3_MAX_PARTS, S3_ETAG_MAX);
        if (!p->etags)
            return DYNO_ENOMEM;
    }
    if (p->nparts >= S3_MAX_PARTS)
        return DYNO_ETOOBIG;
    char query[320];
    snprintf(query, sizeof(query), "?partNumber=%u&uploadId=%s", p->nparts + 1, p->upload_id);
    struct s3_req q = {.method = "PUT", .send = p->buf, .send_len = p->blen};
    rc = s3__url(s, &q, p->id, query);
    if (!rc)
        rc = s3__run(s, &q, false);
    if (!rc && !q.etag[0])
        rc = DYNO_EPROTO;
    if (!rc)
        snprintf(p->etags[p->nparts++], S3_ETAG_MAX, "%s", q.etag);
    s3__req_free(&q);
    p->blen = 0;
    return rc;
}

static int s3_put_write(struct store_put *sp, const void *data, size_t len)
{
    struct s3_put *p = (struct s3_put *)sp;
    struct s3_store *s = p->s;
    const uint8_t *d = data;
    if (p->failed)
        return DYNO_EIO;
    while (len > 0) {
        if (p->blen == s->o.part_size) {
            int rc = s3__send_part(p);
            if (rc) {
                p->failed = true;
                return rc;
            }
        }
        /* The buffer grows up to one part as the fragment does. */
        if (p->blen == p->bcap) {
            size_t cap = p->bcap * 2 < s->o.part_size ? p->bcap * 2 : s->o.part_size;
            uint8_t *nb = realloc(p->buf, cap);
            if (!nb) {
                p->failed = true;
                return DYNO_ENOMEM;
            }
            p->buf = nb;
            p->bcap = cap;
        }
        size_t cap = p->bcap;
        size_t n = cap - p->blen < len ? cap - p->blen : len;
        memcpy(p->buf + p->blen, d, n);
        p->blen += n;
        p->size += n;
        d += n;
        len -= n;
    }
    return 0;
}

static void s3_put_abort(struct store_put *sp)
{
    struct s3_put *p = (struct s3_put *)sp;
    if (!p)
        return;
    if (p->upload_id[0]) {
        char query[300];
        snprintf(query, sizeof(query), "?uploadId=%s", p->upload_id);
        struct s3_req q = {.method = "DELETE"};
        if (s3__url(p->s, &q, p->id, query) == 0)
            (void)s3__run(p->s, &q, true); /* logged; the service expires stale uploads */
        s3__req_free(&q);
    }
    free(p->etags);
    free(p->buf);
    free(p);
}

static int s3__complete(struct s3_put *p)
{
    struct s3_store *s = p->s;
    size_t cap = 128 + (size_t)p->nparts * (S3_ETAG_MAX + 80);
    char *xml = malloc(cap);
    if (!xml)
        return DYNO_ENOMEM;
    size_t n = (size_t)snprintf(xml, cap, "<CompleteMultipartUpload>");
    for (unsigned i = 0; i < p->nparts; i++)
        n += (size_t)snprintf(xml + n, cap - n, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>",
                              i + 1, p->etags[i]);
    n += (size_t)snprintf(xml + n, cap - n, "</CompleteMultipartUpload>");
    char query[300];
    snprintf(query, sizeof(query), "?uploadId=%s", p->upload_id);
    struct s3_req q = {.method = "POST", .send = xml, .send_len = n};
    int rc = s3__url(s, &q, p->id, query);
    if (!rc)
        rc = s3__run(s, &q, false);
    /* S3 may answer 200 with an <Error> body when completing fails late. */
    if (!rc && q.body.p && strstr((const char *)q.body.p, "<Error>"))
        rc = DYNO_EIO;
    s3__req_free(&q);
    free(xml);
    if (!rc)
        p->upload_id[0] = '\0'; /* completed: nothing to abort */
    return rc;
}

static int s3_put_commit(struct store_put *sp, uint64_t *size, uint64_t *old_size)
{
    struct s3_put *p = (struct s3_put *)sp;
    struct s3_store *s = p->s;
    int rc = p->failed ? DYNO_EIO : 0;
    uint64_t old = 0;
    bool existed = false;
    if (!rc) {
        rc = s3__head(s, p->id, &old, NULL, true);
        existed = rc == 0;
        if (rc == DYNO_ENOTFOUND)
            rc = 0, old = 0;
    }
    if (!rc && p->upload_id[0]) {
        /* The last part may be short: S3 takes any size for the last one. */
        if (p->blen > 0)
            rc = s3__send_part(p);
        if (!rc)
            rc = s3__complete(p);
    } else if (!rc) {
        struct s3_req q = {.method = "PUT", .send = p->buf, .send_len = p->blen};
        rc = s3__url(s, &q, p->id, NULL);
        if (!rc)
            rc = s3__run(s, &q, false);
        s3__req_free(&q);
    }
    if (!rc) {
        pthread_mutex_lock(&s->mu);
        s->used = s->used - (old <= s->used ? old : s->used) + p->size;
        if (!existed)
            s->count++;
        pthread_mutex_unlock(&s->mu);
        if (size)
            *size = p->size;
        if (old_size)
            *old_size = old;
    }
    s3_put_abort(sp); /* frees p; deletes the upload when it was not completed */
    return rc;
}

/* ---- reads ---- */

static int s3_open_read(struct store *base, const char *id, struct store_read **out, uint64_t *size)
{
    struct s3_store *s = (struct s3_store *)base;
    *out = NULL;
    if (!store_valid_id(id, NULL, NULL))
        return DYNO_EINVAL;
    struct s3_read *r = calloc(1, sizeof(*r));
    if (!r)
        return DYNO_ENOMEM;
    int rc = s3__head(s, id, &r->size, r->etag, true);
    if (rc) {
        free(r);
        return rc;
    }
    r->s = s;
    snprintf(r->id, sizeof(r->id), "%s", id);
    *size = r->size;
    *out = (struct store_read *)r;
    return 0;
}

/* One ranged GET of [off, off + len) into dst; the bytes it got. */
static int s3__get_range(struct s3_read *r, uint64_t off, uint8_t *dst, size_t len, size_t *got)
{
    char range[96];
    snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)off,
             (unsigned long long)(off + len - 1));
    struct s3_req q = {.method = "GET", .range = range, .if_match = r->etag};
    q.body = (struct s3_body){.p = dst, .cap = len, .fixed = true};
    int rc = s3__url(r->s, &q, r->id, NULL);
    if (!rc)
        rc = s3__run(r->s, &q, false);
    if (!rc && q.etag[0] && strcmp(q.etag, r->etag) != 0) {
        /* Replaced since open, by a service that ignores If-Match: not the reader's bytes. */
        char qid[64];
        dyno_warn("s3 fragment replaced under a reader", "id=%s", dyno_log_q(qid, sizeof(qid), r->id));
        rc = DYNO_EIO;
    }
    if (!rc && q.status != 206 && !(q.status == 200 && off == 0))
        rc = DYNO_EPROTO; /* a service that ignored the range */
    if (rc == DYNO_ENOTFOUND || (rc == DYNO_EIO && q.status == 412))
        rc = DYNO_EIO; /* removed or replaced under an open reader */
    *got = rc ? 0 : q.body.len;
    return rc;
}

static int s3_read_at(struct store_read *sr, uint64_t off, void *buf, size_t len, size_t *got)
{
    struct s3_read *r = (struct s3_read *)sr;
    uint8_t *dst = buf;
    size_t have = 0;
    *got = 0;
    if (off >= r->size || len == 0)
        return 0;
    if (len > r->size - off)
        len = (size_t)(r->size - off);
    while (have < len) {
        uint64_t at = off + have;
        if (r->win && at >= r->win_off && at < r->win_off + r->win_len) {
            size_t n = (size_t)(r->win_off + r->win_len - at);
            if (n > len - have)
                n = len - have;
            memcpy(dst + have, r->win + (at - r->win_off), n);
            have += n;
            continue;
        }
        size_t want = len - have;
        if (want >= S3_READAHEAD) {
            /* Big reads go straight to the caller's buffer. */
            size_t n = 0;
            int rc = s3__get_range(r, at, dst + have, want, &n);
            if (rc)
                return rc;
            if (n != want)
                return DYNO_EPROTO;
            have += n;
            continue;
        }
        uint64_t wl = r->size - at < S3_READAHEAD ? r->size - at : S3_READAHEAD;
        if (!r->win && !(r->win = malloc(S3_READAHEAD)))
            return DYNO_ENOMEM;
        size_t n = 0;
        int rc = s3__get_range(r, at, r->win, (size_t)wl, &n);
        if (rc) {
            r->win_len = 0;
            return rc;
        }
        if (n != wl)
            return DYNO_EPROTO;
        r->win_off = at;
        r->win_len = n;
    }
    *got = have;
    return 0;
}

static void s3_read_close(struct store_read *sr)
{
    struct s3_read *r = (struct s3_read *)sr;
    if (!r)
        return;
    free(r->win);
    free(r);
}

static int s3_stat(struct store *base, const char *id, uint64_t *size)
{
    if (!store_valid_id(id, NULL, NULL))
        return DYNO_EINVAL;
    return s3__head((struct s3_store *)base, id, size, NULL, true);
}

static int s3_remove(struct store *base, const char *id, uint64_t *size)
{
    struct s3_store *s = (struct s3_store *)base;
    uint64_t sz = 0;
    if (!store_valid_id(id, NULL, NULL))
        return DYNO_EINVAL;
    int rc = s3__head(s, id, &sz, NULL, true); /* S3's DELETE says 204 for a missing key too */
    if (rc)
        return rc;
    struct s3_req q = {.method = "DELETE"};
    rc = s3__url(s, &q, id, NULL);
    if (!rc)
        rc = s3__run(s, &q, false);
    s3__req_free(&q);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->mu);
    s->used -= sz <= s->used ? sz : s->used;
    if (s->count)
        s->count--;
    pthread_mutex_unlock(&s->mu);
    if (size)
        *size = sz;
    return 0;
}

/* Percent-encodes src (RFC 3986 unreserved kept) into out. */
static bool s3__pct(const char *src, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
        bool keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                    *p == '-' || *p == '_' || *p == '.' || *p == '~';
        if (o + (keep ? 1 : 3) >= cap)
            return false;
        if (keep) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return true;
}

static int s3_scan(struct store *base, store_scan_fn fn, void *arg)
{
    struct s3_store *s = (struct s3_store *)base;
    char token[1024] = "", pfx[512], tok[3100];
    int rc = 0;
    if (!s3__pct(s->o.prefix, pfx, sizeof(pfx)))
        return DYNO_EINVAL;
    for (;;) {
        struct s3_req q = {.method = "GET"};
        char maxk[32] = "";
        if (s->o.list_max)
            snprintf(maxk, sizeof(maxk), "&max-keys=%u", s->o.list_max);
        int n;
        if (token[0]) {
            if (!s3__pct(token, tok, sizeof(tok)))
                return DYNO_EPROTO;
            n = snprintf(q.url, sizeof(q.url), "%s/%s?continuation-token=%s&list-type=2%s&prefix=%s",
                         s->o.endpoint, s->o.bucket, tok, maxk, pfx);
        } else {
            n = snprintf(q.url, sizeof(q.url), "%s/%s?list-type=2%s&prefix=%s", s->o.endpoint, s->o.bucket,
                         maxk, pfx);
        }
        if (n < 0 || (size_t)n >= sizeof(q.url))
            return DYNO_EINVAL;
        rc = s3__run(s, &q, false);
        if (rc) {
            s3__req_free(&q);
            return rc;
        }
        const char *pos = q.body.p ? (const char *)q.body.p : "";
        const char *end = pos + q.body.len;
        char truncated[16] = "false";
        const char *t = pos;
        (void)s3__xml_next(&t, end, "IsTruncated", truncated, sizeof(truncated));
        token[0] = '\0';
        t = pos;
        if (strcmp(truncated, "true") == 0 &&
            !s3__xml_next(&t, end, "NextContinuationToken", token, sizeof(token)))
            rc = DYNO_EPROTO;
        size_t plen = strlen(s->o.prefix);
        char contents[4096];
        while (rc == 0 && s3__xml_next(&pos, end, "Contents", contents, sizeof(contents))) {
            const char *c = contents, *ce = contents + strlen(contents);
            char key[1100], sz[32];
            const char *c2 = contents;
            if (!s3__xml_next(&c, ce, "Key", key, sizeof(key)) ||
                !s3__xml_next(&c2, ce, "Size", sz, sizeof(sz)))
                continue;
            /* Only fragments directly under the prefix: other objects of the bucket are not ours. */
            if (strncmp(key, s->o.prefix, plen) != 0 || !store_valid_id(key + plen, NULL, NULL))
                continue;
            rc = fn(arg, key + plen, strtoull(sz, NULL, 10));
        }
        s3__req_free(&q);
        if (rc || !token[0])
            return rc;
    }
}

static void s3_usage(struct store *base, uint64_t *used, uint64_t *fragments)
{
    struct s3_store *s = (struct s3_store *)base;
    pthread_mutex_lock(&s->mu);
    if (used)
        *used = s->used;
    if (fragments)
        *fragments = s->count;
    pthread_mutex_unlock(&s->mu);
}

static void s3_destroy(struct store *base)
{
    struct s3_store *s = (struct s3_store *)base;
    pthread_mutex_destroy(&s->mu);
    memset(s->secret, 0, sizeof(s->secret));
    memset(s->userpwd, 0, sizeof(s->userpwd));
    free(s);
}

static const struct store_ops s3_ops = {
    .name = "s3",
    .put_begin = s3_put_begin,
    .put_write = s3_put_write,
    .put_commit = s3_put_commit,
    .put_abort = s3_put_abort,
    .open_read = s3_open_read,
    .read_at = s3_read_at,
    .read_close = s3_read_close,
    .stat = s3_stat,
    .remove = s3_remove,
    .scan = s3_scan,
    .usage = s3_usage,
    .destroy = s3_destroy,
};

static int s3__count(void *arg, const char *id, uint64_t size)
{
    struct s3_store *s = arg;
    (void)id;
    s->used += size;
    s->count++;
    return 0;
}

/* True when v is made only of the characters allowed. */
static bool s3__only(const char *v, const char *allowed)
{
    return strspn(v, allowed) == strlen(v);
}

#define S3_ALNUM "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

int store_s3_open(const struct store_s3_opts *o, struct store **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!o->endpoint ||
        (strncmp(o->endpoint, "http://", 7) != 0 && strncmp(o->endpoint, "https://", 8) != 0) ||
        strlen(o->endpoint) > 400 || !s3__only(o->endpoint, S3_ALNUM ".-_:/[]")) {
        snprintf(err, errlen, "s3_endpoint must be an http:// or https:// URL");
        return DYNO_EINVAL;
    }
    if (!o->bucket || !o->bucket[0] || strlen(o->bucket) > 63 || !s3__only(o->bucket, S3_ALNUM ".-")) {
        snprintf(err, errlen, "s3_bucket must be 1..63 of [A-Za-z0-9.-]");
        return DYNO_EINVAL;
    }
    if (!o->prefix || strlen(o->prefix) > 200 || !s3__only(o->prefix, S3_ALNUM "._-/")) {
        snprintf(err, errlen, "s3_prefix must be up to 200 of [A-Za-z0-9._/-]");
        return DYNO_EINVAL;
    }
    if (!o->region || !o->region[0] || strlen(o->region) > 40 || !s3__only(o->region, S3_ALNUM "-")) {
        snprintf(err, errlen, "s3_region must be 1..40 of [A-Za-z0-9-]");
        return DYNO_EINVAL;
    }
    if (!o->access_key || !o->access_key[0] || strlen(o->access_key) > 128 ||
        !s3__only(o->access_key, S3_ALNUM)) {
        snprintf(err, errlen, "s3_access_key must be 1..128 of [A-Za-z0-9]");
        return DYNO_EINVAL;
    }
    if (o->part_size < S3_PART_MIN || o->part_size > (size_t)1 << 30) {
        snprintf(err, errlen, "s3_part_size must be 5M..1G");
        return DYNO_EINVAL;
    }
    struct s3_store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    s->base.ops = &s3_ops;
    s->o = *o;
    snprintf(s->endpoint, sizeof(s->endpoint), "%s", o->endpoint);
    size_t el = strlen(s->endpoint);
    while (el > 0 && s->endpoint[el - 1] == '/')
        s->endpoint[--el] = '\0';
    snprintf(s->bucket, sizeof(s->bucket), "%s", o->bucket);
    snprintf(s->prefix, sizeof(s->prefix), "%s", o->prefix);
    snprintf(s->region, sizeof(s->region), "%s", o->region);
    snprintf(s->access_key, sizeof(s->access_key), "%s", o->access_key);
    s->o.endpoint = s->endpoint;
    s->o.bucket = s->bucket;
    s->o.prefix = s->prefix;
    s->o.region = s->region;
    s->o.access_key = s->access_key;
    s->o.secret_file = NULL;
    pthread_mutex_init(&s->mu, NULL);
    /* The secret comes from a file, never from the command line (ps would show it). */
    FILE *f = o->secret_file ? fopen(o->secret_file, "re") : NULL;
    size_t n = f ? fread(s->secret, 1, sizeof(s->secret) - 1, f) : 0;
    if (f)
        fclose(f);
    while (n > 0 && (s->secret[n - 1] == '\n' || s->secret[n - 1] == '\r'))
        n--;
    s->secret[n] = '\0';
    if (n == 0 || strchr(s->secret, '\n')) {
        snprintf(err, errlen, "cannot read s3_secret_file %s (one line, the secret key)",
                 o->secret_file ? o->secret_file : "(not set)");
        s3_destroy(&s->base);
        return DYNO_EINVAL;
    }
    snprintf(s->userpwd, sizeof(s->userpwd), "%s:%s", o->access_key, s->secret);
    snprintf(s->sigv4, sizeof(s->sigv4), "aws:amz:%s:s3", o->region);
    /* Usage from a listing, which also proves the endpoint, bucket and credentials work. */
    int rc = s3_scan(&s->base, s3__count, s);
    if (rc) {
        snprintf(err, errlen, "cannot list s3 bucket %s at %s: %s (see the s3 request failed line)",
                 o->bucket, o->endpoint, dyno_strerror(rc));
        s3_destroy(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}
