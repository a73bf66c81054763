/*
 * What the S3 operations of s3-ops share (s3_ops.h): the XML reader of request bodies, MD5,
 * the lookup of an object by name, and the server-side copy of an object's bytes.
 */
#include "s3_ops.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "clock.h"
#include "hash.h"
#include "json.h"
#include "log.h"

#define COPY_BLOCK (1u << 20) /* bytes moved from the get to the put at a time */

/* ---- MD5 ---- */

struct s3_md5 {
    EVP_MD_CTX *ctx;
};

int s3_md5_new(struct s3_md5 **out)
{
    struct s3_md5 *m = calloc(1, sizeof(*m));
    if (!m || !(m->ctx = EVP_MD_CTX_new()) || EVP_DigestInit_ex(m->ctx, EVP_md5(), NULL) != 1) {
        s3_md5_free(m);
        *out = NULL;
        return DYNO_ENOMEM;
    }
    *out = m;
    return 0;
}

void s3_md5_update(struct s3_md5 *m, const void *p, size_t n)
{
    if (n)
        EVP_DigestUpdate(m->ctx, p, n);
}

void s3_md5_final(struct s3_md5 *m, uint8_t out[16])
{
    unsigned int len = 16;
    EVP_DigestFinal_ex(m->ctx, out, &len);
}

void s3_md5_free(struct s3_md5 *m)
{
    if (!m)
        return;
    EVP_MD_CTX_free(m->ctx);
    free(m);
}

void s3_md5(const void *p, size_t n, uint8_t out[16])
{
    unsigned int len = 16;
    EVP_Digest(p, n, out, &len, EVP_md5(), NULL);
}

int s3_content_md5_check(const char *header, const void *p, size_t n)
{
    size_t hl = strlen(header);
    if (hl != 24)
        return DYNO_EINVAL;
    uint8_t dec[24];
    /* EVP_DecodeBlock counts the padding as zero bytes: 24 characters give 18. */
    if (EVP_DecodeBlock(dec, (const unsigned char *)header, 24) != 18 || header[22] != '=' ||
        header[23] != '=')
        return DYNO_EINVAL;
    uint8_t md[16];
    s3_md5(p, n, md);
    return memcmp(md, dec, 16) == 0 ? 0 : DYNO_ECONFLICT;
}

/* ---- objects ---- */

int s3_find_object(struct gw *gw, const char *catalog, const char *name, cJSON **obj, char *msg, size_t cap)
{
    *obj = NULL;
    cJSON *params = cJSON_CreateObject();
    if (!params) {
        snprintf(msg, cap, "out of memory");
        return DYNO_ENOMEM;
    }
    cJSON_AddStringToObject(params, "catalog", catalog);
    cJSON_AddStringToObject(params, "name", name);
    int rc = gw_rpc(gw, "metadata", "object.get", params, obj, msg, cap);
    cJSON_Delete(params);
    if (rc == DYNO_ENOTFOUND)
        snprintf(msg, cap, "no object %s in %s", name, catalog);
    if (rc == 0 && !dyno_valid_key(dyno_json_str(*obj, "key"))) {
        cJSON_Delete(*obj);
        *obj = NULL;
        snprintf(msg, cap, "metadata answered an object without a key");
        rc = DYNO_EPROTO;
    }
    return rc;
}

int s3_delete_name(struct gw *gw, struct gw_conn *conn, const char *catalog, const char *name, char *msg,
                   size_t cap)
{
    cJSON *o = NULL;
    int rc = s3_find_object(gw, catalog, name, &o, msg, cap);
    if (rc == DYNO_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    rc = gw_evict_object(gw, conn, dyno_json_str(o, "key"), o, msg, cap);
    cJSON_Delete(o);
    return rc == DYNO_ENOTFOUND ? 0 : rc; /* deleted meanwhile: the same outcome */
}

/* ---- server-side copy ---- */

int s3_stream_copy(struct gw *gw, struct gw_conn *conn, const char *src_key, const cJSON *src, uint64_t first,
                   uint64_t last, struct gw_put *p, struct s3_md5 *md5, char *msg, size_t cap)
{
    int64_t size = 0;
    if (dyno_json_i64(src, "size", &size) != 0 || size < 0) {
        snprintf(msg, cap, "metadata answered an object without a size");
        return DYNO_EPROTO;
    }
    if (size == 0)
        return 0;
    if (last == S3_WHOLE)
        last = (uint64_t)size - 1;
    if (first > last || last >= (uint64_t)size) {
        snprintf(msg, cap, "range %llu-%llu outside the %lld bytes of object %s", (unsigned long long)first,
                 (unsigned long long)last, (long long)size, src_key);
        return DYNO_ERANGE;
    }
    struct gw_get *g = NULL;
    int rc = gw_get_new(gw, conn, src_key, src, &g);
    if (rc) {
        snprintf(msg, cap, "cannot read object %s: %s", src_key, dyno_strerror(rc));
        return rc;
    }
    char *buf = malloc(COPY_BLOCK);
    if (!buf) {
        gw_get_free(g);
        snprintf(msg, cap, "out of memory");
        return DYNO_ENOMEM;
    }
    /* A whole read: the get core checks the object's SHA-256 before its last stripe, so a
     * copy never commits bytes that fail it (a range is checked by the fragments' CRCs). */
    rc = gw_get_start(g, first, last, first == 0 && last == (uint64_t)size - 1 ? GW_GET_VERIFY : 0);
    if (rc)
        snprintf(msg, cap, "cannot read object %s: %s", src_key, gw_get_msg(g));
    while (rc == 0) {
        ssize_t n = gw_get_read(g, buf, COPY_BLOCK);
        if (n == 0)
            break;
        if (n < 0) {
            snprintf(msg, cap, "reading object %s failed: %s", src_key, gw_get_msg(g));
            rc = DYNO_EIO;
            break;
        }
        if (md5)
            s3_md5_update(md5, buf, (size_t)n);
        rc = gw_put_write(p, buf, (size_t)n);
        if (rc)
            snprintf(msg, cap, "%s", gw_put_msg(p));
    }
    free(buf);
    gw_get_free(g);
    return rc;
}

/* ---- long operations ---- */

struct s3_long {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    void (*work)(void *arg, struct gw_conn *conn, struct s3_long_out *out);
    void *arg;
    void (*arg_free)(void *arg);
    struct s3_long_out out;
    /* The streamed reply (after the grace): the declaration, spaces, then final. */
    bool prolog_sent;
    char *final;
    size_t final_len, final_off;
    char bucket[S3_BUCKET_MAX + DYNO_SEG_MAX + 8];
    char key[S3_KEY_MAX + 1];
};

static const char long__prolog[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

static void *long__main(void *arg)
{
    struct s3_long *l = arg;
    /* Its own container connections: the client's (r->conn) may be freed with the client's
     * connection while this still runs, when the client goes away. */
    struct gw_conn *conn = calloc(1, sizeof(*conn));
    if (conn) {
        l->work(l->arg, conn, &l->out);
        gw_conn_free(conn);
    } else {
        s3_long_fail(&l->out, DYNO_ENOMEM, "out of memory");
    }
    pthread_mutex_lock(&l->mu);
    l->done = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* Waits up to ms for the work; whether it is done. */
static bool long__wait(struct s3_long *l, int64_t ms)
{
    struct timespec ts;
    dyno_deadline_in(&ts, CLOCK_REALTIME, ms);
    pthread_mutex_lock(&l->mu);
    while (!l->done && pthread_cond_timedwait(&l->cv, &l->mu, &ts) == 0)
        ;
    bool done = l->done;
    pthread_mutex_unlock(&l->mu);
    return done;
}

static void long__free(void *cls)
{
    struct s3_long *l = cls;
    pthread_join(l->th, NULL); /* a client that left: the work still ends (and commits) */
    if (l->arg_free)
        l->arg_free(l->arg);
    dyno_buf_free(&l->out.doc);
    free(l->final);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}

/* The final part of a streamed reply: the document, or <Error> of a failure. */
static int long__final(struct s3_long *l)
{
    struct dyno_buf b;
    dyno_buf_init(&b, 64u << 20);
    int rc = 0;
    if (l->out.status == 0) {
        rc = dyno_buf_append(&b, l->out.doc.data ? l->out.doc.data : "", l->out.doc.len);
    } else {
        rc = dyno_buf_printf(&b, "<Error><Code>%s</Code><Message>",
                             l->out.code ? l->out.code : "InternalError");
        rc = rc ? rc : s3_xml_esc(&b, l->out.msg);
        rc = rc ? rc : dyno_buf_printf(&b, "</Message><Key>");
        rc = rc ? rc : s3_xml_esc(&b, l->key);
        rc = rc ? rc : dyno_buf_printf(&b, "</Key><BucketName>");
        rc = rc ? rc : s3_xml_esc(&b, l->bucket);
        rc = rc ? rc : dyno_buf_printf(&b, "</BucketName></Error>");
    }
    l->final = rc ? NULL : dyno_buf_take(&b, &l->final_len);
    dyno_buf_free(&b);
    return l->final ? 0 : DYNO_ENOMEM;
}

static ssize_t long__reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct s3_long *l = cls;
    if (!l->prolog_sent) {
        size_t n = sizeof(long__prolog) - 1;
        if (max < n)
            return 0;
        memcpy(buf, long__prolog, n);
        l->prolog_sent = true;
        return (ssize_t)n;
    }
    if (!l->final) {
        if (!long__wait(l, 1000)) {
            buf[0] = ' ';
            return 1;
        }
        if (long__final(l) != 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (l->final_off == l->final_len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = l->final_len - l->final_off;
    if (n > max)
        n = max;
    memcpy(buf, l->final + l->final_off, n);
    l->final_off += n;
    return (ssize_t)n;
}

enum MHD_Result s3_reply_long(struct s3_ctx *x,
                              void (*work)(void *arg, struct gw_conn *conn, struct s3_long_out *out),
                              void *arg, void (*arg_free)(void *arg))
{
    struct s3_long *l = calloc(1, sizeof(*l));
    if (!l) {
        if (arg_free)
            arg_free(arg);
        return gw_s3_err(x, 500, "InternalError", "out of memory");
    }
    l->work = work;
    l->arg = arg;
    l->arg_free = arg_free;
    snprintf(l->bucket, sizeof(l->bucket), "%s", x->bucket);
    snprintf(l->key, sizeof(l->key), "%s", x->key);
    dyno_buf_init(&l->out.doc, 64u << 20);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    if (pthread_create(&l->th, NULL, long__main, l) != 0) {
        if (arg_free)
            arg_free(arg);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        free(l);
        return gw_s3_err(x, 503, "ServiceUnavailable", "cannot start the operation now");
    }
    if (long__wait(l, x->r->gw->cfg.s3_long_grace_ms)) {
        /* Ended within the grace: an ordinary reply with its own status. */
        pthread_join(l->th, NULL);
        enum MHD_Result ret;
        if (l->out.status == 0) {
            ret = s3_reply_xml(x, 200, &l->out.doc);
        } else {
            const char *code = l->out.code ? l->out.code : "InternalError";
            ret = gw_s3_err(x, l->out.status, code, "%s", l->out.msg);
        }
        if (l->arg_free)
            l->arg_free(l->arg);
        l->arg_free = NULL;
        dyno_buf_free(&l->out.doc);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        free(l);
        return ret;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, long__reader, l, long__free);
    if (!resp) {
        long__free(l);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/xml");
    MHD_add_response_header(resp, "Server", "DynoStore");
    return gw_reply_response(x->r, 200, resp);
}

/* ---- puts ---- */

void s3_target_shape(struct gw *gw, const cJSON *cat, struct s3_target *t)
{
    t->k = (int)gw->cfg.k;
    t->m = (int)gw->cfg.m;
    int64_t ck, cm;
    if (dyno_json_i64(cat, "k", &ck) == 0 && dyno_json_i64(cat, "m", &cm) == 0 && ck >= 1 &&
        ck <= DYNO_EC_MAX_K && cm >= 0 && cm <= DYNO_EC_MAX_M && ck + cm <= GW_MAX_N) {
        t->k = (int)ck;
        t->m = (int)cm;
    }
    t->site_relaxed = gw_site_relaxed(cat);
}

int s3_put_open(struct gw *gw, struct gw_conn *conn, const struct s3_target *t, int64_t size,
                struct gw_put **out, char *msg, size_t cap)
{
    struct gw_put_args a = {.catalog = t->catalog,
                            .name = t->name,
                            .publisher = t->publisher,
                            .k = t->k,
                            .m = t->m,
                            .size = size,
                            .site_relaxed = t->site_relaxed,
                            .quiet = t->quiet};
    return gw_put_new(gw, conn, &a, out, msg, cap);
}

struct s3__hdr_walk {
    cJSON *meta;
    size_t bytes; /* names and values so far */
    int rc;
};

static enum MHD_Result s3__meta_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    struct s3__hdr_walk *w = cls;
    static const char pre[] = "x-amz-meta-";
    if (strncasecmp(key, pre, sizeof(pre) - 1) != 0 || !key[sizeof(pre) - 1])
        return MHD_YES;
    /* S3 keeps user metadata names in lower case. */
    char name[256];
    size_t n = strlen(key + sizeof(pre) - 1);
    w->bytes += n + (value ? strlen(value) : 0);
    if (n >= sizeof(name) || w->bytes > S3_META_MAX) {
        w->rc = DYNO_ETOOBIG;
        return MHD_NO;
    }
    for (size_t i = 0; i <= n; i++)
        name[i] = (char)tolower((unsigned char)key[sizeof(pre) - 1 + i]);
    cJSON_DeleteItemFromObjectCaseSensitive(w->meta, name);
    if (!cJSON_AddStringToObject(w->meta, name, value ? value : "")) {
        w->rc = DYNO_ENOMEM;
        return MHD_NO;
    }
    return MHD_YES;
}

cJSON *s3_attrs_from_request(struct s3_ctx *x, int *err)
{
    *err = DYNO_ENOMEM;
    cJSON *a = cJSON_CreateObject();
    cJSON *meta = cJSON_CreateObject();
    if (!a || !meta)
        goto fail;
    const char *ct = s3_header(x, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct && strlen(ct) > S3_CONTENT_TYPE_MAX) {
        *err = DYNO_EINVAL;
        goto fail;
    }
    if (ct && !cJSON_AddStringToObject(a, "content_type", ct))
        goto fail;
    struct s3__hdr_walk w = {.meta = meta, .rc = 0};
    MHD_get_connection_values(x->r->c, MHD_HEADER_KIND, s3__meta_cb, &w);
    if (w.rc) {
        *err = w.rc;
        goto fail;
    }
    if (cJSON_GetArraySize(meta) == 0)
        cJSON_Delete(meta);
    else
        cJSON_AddItemToObject(a, "meta", meta);
    *err = 0;
    return a;
fail:
    cJSON_Delete(meta);
    cJSON_Delete(a);
    return NULL;
}

enum MHD_Result s3_attrs_err(struct s3_ctx *x, int err)
{
    if (err == DYNO_ETOOBIG)
        return gw_s3_err(x, 400, "MetadataTooLarge",
                         "your metadata headers exceed the maximum allowed size (%d)", S3_META_MAX);
    if (err == DYNO_EINVAL)
        return gw_s3_err(x, 400, "InvalidArgument", "Content-Type longer than %d bytes", S3_CONTENT_TYPE_MAX);
    return gw_s3_err(x, 500, "InternalError", "out of memory");
}

void s3_etag_hex(const uint8_t md5[16], char out[35])
{
    out[0] = '"';
    dyno_hex(md5, 16, out + 1);
    out[33] = '"';
    out[34] = '\0';
}

/* The S3 attributes travel with the put to object.commit and come back in the object's
 * record as "attrs" (s3-front's object attributes, docs/s3.md). */
int s3_put_attrs(struct gw_put *p, const cJSON *attrs, const char *etag)
{
    cJSON *a = attrs ? cJSON_Duplicate(attrs, true) : cJSON_CreateObject();
    if (!a)
        return DYNO_ENOMEM;
    cJSON_DeleteItemFromObjectCaseSensitive(a, "etag");
    /* Stored without its quotes, as s3_obj.c stores a PutObject's. */
    char bare[80];
    size_t el = etag ? strlen(etag) : 0;
    if (el >= 2 && etag[0] == '"' && etag[el - 1] == '"' && el - 2 < sizeof(bare)) {
        memcpy(bare, etag + 1, el - 2);
        bare[el - 2] = '\0';
        etag = bare;
    }
    if (etag && !cJSON_AddStringToObject(a, "etag", etag)) {
        cJSON_Delete(a);
        return DYNO_ENOMEM;
    }
    int rc = gw_put_set_attrs(p, a);
    cJSON_Delete(a);
    return rc;
}

const cJSON *s3_obj_attrs(const cJSON *obj)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, "attrs");
    return cJSON_IsObject(a) ? a : NULL;
}

void s3_obj_etag(const cJSON *obj, char out[80])
{
    const char *e = dyno_json_str(s3_obj_attrs(obj), "etag");
    const char *sha = dyno_json_str(obj, "sha256");
    if (e && strlen(e) < 70)
        snprintf(out, 80, "\"%s\"", e);
    else
        snprintf(out, 80, "\"%.32s-1\"", sha ? sha : "");
}

void s3_long_fail(struct s3_long_out *out, int err, const char *msg)
{
    switch (err) {
    case DYNO_ETOOBIG:
        out->status = 400;
        out->code = "EntityTooLarge";
        break;
    case DYNO_EINVAL:
        out->status = 400;
        out->code = "InvalidArgument";
        break;
    case DYNO_EUNAVAIL:
    case DYNO_ETIMEDOUT:
    case DYNO_ENOSPC:
        out->status = 503;
        out->code = "ServiceUnavailable";
        break;
    default:
        out->status = 500;
        out->code = "InternalError";
    }
    snprintf(out->msg, sizeof(out->msg), "%s", msg);
}
