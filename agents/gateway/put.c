/*
 * POST /v1/catalogs/<owner>/<path>/~/objects?name= : the REST adapter of the put core
 * (dp_put.c). It authorizes (write access to the catalog), reads the request's options
 * (name, X-Dyno-Resilience, Content-Length), hands the body to the core as MHD delivers it
 * and replies. The request's close hook ends the put: an uncommitted put is aborted (the
 * client went away, or the reply was an error), a committed one deletes the fragments of
 * the object it replaced after the reply went out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "json.h"
#include "log.h"
#include "rest.h"

static void put_rest__close(struct gw_req *r)
{
    gw_put_close(r->state);
    r->state = NULL;
}

/* Logs why the put failed and ends it (aborted) before the error reply. */
static void put_rest__failed(struct gw_req *r, int rc)
{
    struct gw_put *p = r->state;
    const char *m = p && gw_put_msg(p)[0] ? gw_put_msg(p) : dyno_strerror(rc);
    char q[sizeof(r->body_msg) + 8];
    snprintf(r->body_msg, sizeof(r->body_msg), "%s", m);
    dyno_log_q(q, sizeof(q), r->body_msg);
    dyno_warn("put failed", "key=%s catalog=%s err=%s detail=%s", p && gw_put_key(p)[0] ? gw_put_key(p) : "-",
              r->catalog, dyno_err_code(rc), q);
    gw_req_close(r);
}

static int put_rest__body(struct gw_req *r, const char *data, size_t len)
{
    int rc = gw_put_write(r->state, data, len);
    if (rc)
        put_rest__failed(r, rc);
    return rc;
}

static enum MHD_Result put_rest__end(struct gw_req *r)
{
    struct gw_put *p = r->state;
    if (!p)
        return gw_reply_error(r, DYNO_EINTERNAL, "put state lost");
    cJSON *body = NULL;
    int rc = gw_put_finish(p, &body);
    if (rc) {
        put_rest__failed(r, rc);
        return gw_reply_error(r, rc, "%s", r->body_msg);
    }
    enum MHD_Result ret = gw_reply_json(r, 201, body);
    cJSON_Delete(body);
    return ret;
}

int gw_put_resilience(struct gw_req *r, const cJSON *cat, int *k, int *m)
{
    *k = (int)r->gw->cfg.k;
    *m = (int)r->gw->cfg.m;
    const char *res_hdr = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, "X-Dyno-Resilience");
    if (res_hdr)
        return dyno_rest_parse_resilience(res_hdr, k, m);
    int64_t ck, cm;
    if (dyno_json_i64(cat, "k", &ck) == 0 && dyno_json_i64(cat, "m", &cm) == 0 && ck >= 1 &&
        ck <= DYNO_EC_MAX_K && cm >= 0 && cm <= DYNO_EC_MAX_M && ck + cm <= GW_MAX_N) {
        *k = (int)ck;
        *m = (int)cm;
    }
    return 0;
}

enum MHD_Result gw_put_begin(struct gw_req *r)
{
    struct gw *gw = r->gw;
    int64_t t0 = gw_put_us();
    char msg[sizeof(r->body_msg)];
    int rc = gw_query_arg(r, "name", r->name, sizeof(r->name));
    if (rc == 0) {
        if (!dyno_valid_name(r->name))
            return gw_reply_error(r, DYNO_EINVAL,
                                  "bad object name (1..255 bytes of UTF-8, no control characters or '\\', no "
                                  "leading '/' or segment \".\" or \"..\")");
        r->has_name = true;
    } else if (rc != DYNO_ENOTFOUND) {
        return gw_reply_error(r, DYNO_EINVAL, "bad object name");
    }
    int k, m;
    const char *res_hdr = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, "X-Dyno-Resilience");
    if (res_hdr && dyno_rest_parse_resilience(res_hdr, &k, &m))
        return gw_reply_error(r, DYNO_EINVAL, "bad X-Dyno-Resilience (k,m with 1<=k<=32, 0<=m<=16)");

    int64_t declared = 0;
    const char *te = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    const char *cl = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (te) {
        declared = -1;
    } else if (cl) {
        uint64_t v;
        if (dyno_rest_parse_u64(cl, &v))
            return gw_reply_error(r, DYNO_EINVAL, "bad Content-Length");
        if (v > (uint64_t)gw->cfg.max_body)
            return gw_reply_error(r, DYNO_ETOOBIG, "object larger than max_body (%lld bytes)",
                                  (long long)gw->cfg.max_body);
        declared = (int64_t)v;
    }

    /* authorize */
    cJSON *cat = NULL;
    rc = gw_catalog_check(r, r->catalog, true, &cat, msg, sizeof(msg));
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);
    (void)gw_put_resilience(r, cat, &k, &m); /* the header was checked above */
    bool relaxed = gw_site_relaxed(cat);
    cJSON_Delete(cat);

    struct gw_put_args a = {.catalog = r->catalog,
                            .name = r->has_name ? r->name : NULL,
                            .publisher = r->claims.sub,
                            .k = k,
                            .m = m,
                            .site_relaxed = relaxed,
                            .size = declared,
                            .t0_us = t0};
    struct gw_put *p = NULL;
    rc = gw_put_new(gw, r->conn, &a, &p, msg, sizeof(msg));
    r->state = p;
    r->on_close = put_rest__close;
    if (rc) {
        put_rest__failed(r, rc);
        return gw_reply_error(r, rc, "%s", r->body_msg);
    }
    r->on_body = put_rest__body;
    r->on_end = put_rest__end;
    return MHD_YES;
}
