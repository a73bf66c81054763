/*
 * MQTT ingest (SPEC §3, §8): a message published to dyno/v1/ingest/<owner>/<path> becomes
 * an object of that catalog, like a REST put of the payload. lib/ingest.h parses and
 * validates a message (name, the plugin's publisher stamps, size, reply); here:
 *
 *   publisher     the stamped username, kept as the object's "publisher"; it grants no
 *                 access (every access to the object is decided by the catalog's policy)
 *   access        the publisher must be allowed to write the catalog (catalog.get +
 *                 dyno_acl_decide) as the principal {user, org, admin} of the stamps: the
 *                 same rule the plugin applied (owner, user and org shares, admins), decided
 *                 again on pubsub's current policy
 *   reply         with a v5 Response Topic in dyno/v1/reply/<publisher>[/...], the publisher
 *                 gets {"key","name","size","sha256"} or {"error":{"code","message"}} with
 *                 its Correlation Data
 *
 * Nothing the broker accepted is dropped (issue 9): a reading is acknowledged to the broker
 * only once it is stored, or refused for good (no publisher, forbidden, too large, bad
 * name: the publisher is answered when it asked). Ingest has broker connections of its own,
 * GW_INGEST_SESSIONS of them, client ids gateway-<id>-ingest<i>, each in the shared
 * subscription $share/gateway/dyno/v1/ingest/# (so the sessions of every gateway share
 * the load) with a persistent session and a Receive Maximum of GW_INGEST_RECEIVE_MAX. A
 * session's libmosquitto loop thread stores each message itself before its handler returns,
 * and libmosquitto sends the PUBACK only after that (checked on Debian 12's 2.0.11: the ack
 * is queued after the handler and written by the next turn of the loop). So at most
 * GW_INGEST_RECEIVE_MAX readings per session are in the gateway at a time, and the backlog of
 * a burst waits in the broker (bounded by max_queued_messages and max_queued_bytes in the
 * generated mosquitto.conf, docs/pubsub.md). Blocking the loop thread is safe only because
 * these connections carry nothing else: RPCs, replies and events use the main connection.
 *
 * A put that fails for a passing reason (a service or containers unavailable, a timeout) is
 * retried a few times; then, or when the gateway stops, the session is abandoned
 * (dyno_mq_abandon) without its acknowledgements, and the broker sends the message again
 * after the reconnect: delivery is at least once.
 *
 * So a named reading is idempotent (issue 13: readings of a site cut off arrive after the
 * heal, and any hop may send one again): its put commits with object.commit "dedupe", and
 * when the catalog's object of that name already holds the same bytes (size and sha256),
 * metadata discards the new object in the commit's transaction (its fragments are deleted
 * as an aborted put's) and answers the existing one; the reading is answered with it,
 * emits no event, and counts in dyno_gateway_ingest_duplicates_total. The check costs no
 * RPC of its own, and it holds across sessions and gateways: metadata's writer runs one
 * commit after the other, so of two copies committed at once the second finds the first.
 * An unnamed reading is named by its new key, so a copy sent again is a second object:
 * devices that must not store a reading twice name it (docs/pubsub.md).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "agent.h"
#include "gw.h"
#include "httpd.h"
#include "ingest.h"
#include "json.h"
#include "log.h"
#include "mq.h"

/* Broker connections, so this many puts run at once: as many as the commits metadata groups
 * under one fsync (its rpc_threads). */
#define GW_INGEST_SESSIONS 16
#define GW_INGEST_RECEIVE_MAX 2  /* unacknowledged readings the broker sends a session */
#define GW_INGEST_KEEPALIVE_S 60 /* a put blocks the loop: no PINGREQ goes out meanwhile */
#define GW_INGEST_TRIES 3        /* attempts of a put that failed for a passing reason */
#define GW_INGEST_RETRY_MS 500   /* wait between them */
#define GW_INGEST_SUB "$share/gateway/" DYNO_INGEST_TOPIC "#"

struct gw_ingest;

/* One ingest session: its broker connection and the curl cache its loop thread uses. */
struct gw_ingest_session {
    struct gw_ingest *in;
    struct dyno_mq *mq;
    struct gw_conn *conn;
    int index;
};

struct gw_ingest {
    struct gw *gw;
    atomic_bool stop;
    struct gw_ingest_session sessions[GW_INGEST_SESSIONS];
};

/* A message being handled, with what lib/ingest.h read from it. */
struct gw_ingest_job {
    struct dyno_ingest_msg m;
    const void *data;
};

/* ---- answers ---- */

static void gw_ingest_reply(struct gw *gw, const struct gw_ingest_job *j, const cJSON *body)
{
    if (!j->m.resp_topic || !j->m.user[0])
        return;
    if (!dyno_ingest_reply_topic_ok(j->m.resp_topic, j->m.user)) {
        dyno_warn("ingest reply not sent",
                  "catalog=%s user=%s reason=\"response topic outside dyno/v1/reply/%s\"", j->m.catalog,
                  j->m.user, j->m.user);
        return;
    }
    size_t len = 0;
    char *txt = dyno_json_print(body, &len);
    if (!txt)
        return;
    int rc = dyno_mq_publish_reply(gw->mq, j->m.resp_topic, txt, len, j->m.corr, j->m.corr_len);
    if (rc)
        dyno_warn("ingest reply not sent", "catalog=%s user=%s err=%s", j->m.catalog, j->m.user,
                  dyno_err_code(rc));
    free(txt);
}

static void gw_ingest_refuse(struct gw *gw, const struct gw_ingest_job *j, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void gw_ingest_refuse(struct gw *gw, const struct gw_ingest_job *j, int err, const char *fmt, ...)
{
    char msg[1024], q[1100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dyno_metric_add(&gw->metrics[GW_M_INGEST_REFUSED], 1);
    dyno_log_q(q, sizeof(q), msg);
    dyno_warn("ingest refused", "catalog=%s user=%s size=%zu err=%s detail=%s",
              j->m.catalog[0] ? j->m.catalog : "-", j->m.user[0] ? j->m.user : "-", j->m.len,
              dyno_err_code(err), q);
    cJSON *body = dyno_http_error_body(dyno_err_code(err), msg);
    if (body)
        gw_ingest_reply(gw, j, body);
    cJSON_Delete(body);
}

/* ---- storing ---- */

/* The publisher's write access, decided by lib/acl.c on the catalog's policy. */
static int gw_ingest_check(struct gw *gw, const struct gw_ingest_job *j, int *k, int *m, bool *relaxed,
                           char *msg, size_t cap)
{
    cJSON *cat = NULL;
    int rc = gw_catalog_get(gw, j->m.catalog, &cat, msg, cap);
    if (rc == DYNO_ENOTFOUND)
        snprintf(msg, cap, "no catalog %s", j->m.catalog);
    if (rc)
        return rc;
    struct dyno_acl_policy *pol = NULL;
    size_t len = 0;
    char *txt = dyno_json_print(cat, &len);
    rc = txt ? dyno_acl_policy_parse(txt, len, &pol) : DYNO_ENOMEM;
    free(txt);
    if (rc) {
        snprintf(msg, cap, "pubsub answered an unusable policy for %s", j->m.catalog);
        cJSON_Delete(cat);
        return rc == DYNO_ENOMEM ? rc : DYNO_EPROTO;
    }
    struct dyno_acl_principal who = {
        .sub = j->m.user, .org = j->m.org, .admin = j->m.admin, .service = false};
    if (!dyno_acl_decide(pol, &who, DYNO_ACL_WRITE)) {
        snprintf(msg, cap, "%s may not write to catalog %s", j->m.user, j->m.catalog);
        rc = DYNO_EFORBIDDEN;
    }
    int64_t ck, cm;
    if (rc == 0 && dyno_json_i64(cat, "k", &ck) == 0 && dyno_json_i64(cat, "m", &cm) == 0 && ck >= 1 &&
        ck <= DYNO_EC_MAX_K && cm >= 0 && cm <= DYNO_EC_MAX_M && ck + cm <= GW_MAX_N) {
        *k = (int)ck;
        *m = (int)cm;
    }
    *relaxed = gw_site_relaxed(cat);
    dyno_acl_policy_free(pol);
    cJSON_Delete(cat);
    return rc;
}

/* Failures that may pass (a service, the broker or containers away, a timeout, memory, a
 * full or failing disk): the message is kept for another try rather than refused. The
 * others (forbidden, no catalog, a bad policy) would fail the same way every time. */
static bool gw_ingest_passing(int rc)
{
    return rc == DYNO_EUNAVAIL || rc == DYNO_ETIMEDOUT || rc == DYNO_ENOMEM || rc == DYNO_EIO ||
           rc == DYNO_ENOSPC;
}

/* Checks access and stores the message. 0 with *res, or the error with msg set; *dup when a
 * named reading was already stored with these bytes (nothing stored again). */
static int gw_ingest_store(struct gw *gw, struct gw_conn *conn, const struct gw_ingest_job *j, cJSON **res,
                           bool *dup, char *msg, size_t cap)
{
    int k = (int)gw->cfg.k, m = (int)gw->cfg.m;
    bool relaxed = false;
    int rc = gw_ingest_check(gw, j, &k, &m, &relaxed, msg, cap);
    if (rc)
        return rc;
    struct gw_put_mem pm = {.catalog = j->m.catalog,
                            .name = j->m.name[0] ? j->m.name : NULL,
                            .publisher = j->m.user,
                            .k = k,
                            .m = m,
                            .site_relaxed = relaxed,
                            .data = j->data,
                            .len = j->m.len,
                            .dedupe = j->m.name[0] != '\0'};
    rc = gw_put_memory(gw, conn, &pm, res, msg, cap);
    *dup = rc == 0 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(*res, "duplicate"));
    return rc;
}

static void gw_ingest_answer_stored(struct gw *gw, const struct gw_ingest_job *j, const cJSON *res, bool dup)
{
    if (dup) {
        dyno_metric_add(&gw->metrics[GW_M_INGEST_DUPLICATES], 1);
        dyno_info("ingest duplicate", "catalog=%s user=%s name=%s key=%s size=%zu", j->m.catalog, j->m.user,
                  j->m.name, dyno_json_str(res, "key"), j->m.len);
    } else {
        dyno_metric_add(&gw->metrics[GW_M_INGESTED], 1);
        dyno_info("ingested", "catalog=%s user=%s key=%s size=%zu", j->m.catalog, j->m.user,
                  dyno_json_str(res, "key"), j->m.len);
    }
    cJSON *body = cJSON_CreateObject();
    const char *fields[] = {"key", "name", "sha256"};
    for (size_t i = 0; body && i < sizeof(fields) / sizeof(fields[0]); i++) {
        const char *v = dyno_json_str(res, fields[i]);
        if (v)
            cJSON_AddStringToObject(body, fields[i], v);
    }
    int64_t size;
    if (body && dyno_json_i64(res, "size", &size) == 0)
        dyno_json_add_i64(body, "size", size);
    if (body)
        gw_ingest_reply(gw, j, body);
    cJSON_Delete(body);
}

static void gw_ingest_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/*
 * A session's loop thread: one message, stored (or refused for good) before returning, as
 * returning lets libmosquitto acknowledge it. Every other outcome abandons the session so
 * that the broker keeps the message (see the file comment).
 */
static void gw_ingest_on_msg(void *arg, const struct dyno_mq_msg *msg)
{
    struct gw_ingest_session *s = arg;
    struct gw_ingest *in = s->in;
    struct gw *gw = in->gw;
    struct gw_ingest_job j = {.data = msg->payload};
    char why[1024];

    if (atomic_load(&in->stop)) {
        dyno_mq_abandon(s->mq); /* stored after the restart, by this gateway or another */
        return;
    }
    int rc = dyno_ingest_parse(msg->topic, msg->props, msg->len, (size_t)gw->cfg.ingest_max, &j.m, why,
                               sizeof(why));
    if (rc) {
        gw_ingest_refuse(gw, &j, rc, "%s", why);
        goto out;
    }
    cJSON *res = NULL;
    bool dup = false;
    for (int attempt = 1;; attempt++) {
        rc = gw_ingest_store(gw, s->conn, &j, &res, &dup, why, sizeof(why));
        if (rc == 0 || !gw_ingest_passing(rc))
            break;
        if (attempt >= GW_INGEST_TRIES || atomic_load(&in->stop)) {
            char q[1100];
            dyno_log_q(q, sizeof(q), why);
            dyno_warn("ingest deferred", "catalog=%s user=%s err=%s detail=%s", j.m.catalog, j.m.user,
                      dyno_err_code(rc), q);
            dyno_mq_abandon(s->mq);
            goto out;
        }
        gw_ingest_sleep_ms(GW_INGEST_RETRY_MS * attempt);
    }
    if (rc)
        gw_ingest_refuse(gw, &j, rc, "%s", why);
    else
        gw_ingest_answer_stored(gw, &j, res, dup);
    cJSON_Delete(res);
out:
    dyno_ingest_msg_clear(&j.m);
}

/* ---- sessions ---- */

static int gw_ingest_session_start(struct gw *gw, struct gw_ingest_session *s)
{
    char client_id[96];
    snprintf(client_id, sizeof(client_id), "gateway-%s-ingest%d", gw->cfg.c.id, s->index);
    struct dyno_mq_opts o;
    gw_mqtt_opts(gw, client_id, &o);
    o.keepalive = GW_INGEST_KEEPALIVE_S;
    o.persistent = true; /* unacknowledged readings wait for us across a reconnect */
    o.receive_max = GW_INGEST_RECEIVE_MAX;
    s->conn = calloc(1, sizeof(*s->conn));
    if (!s->conn)
        return DYNO_ENOMEM;
    int rc = dyno_mq_new(&o, &s->mq);
    if (rc == 0)
        rc = dyno_mq_subscribe(s->mq, GW_INGEST_SUB, 1, gw_ingest_on_msg, s);
    if (rc == 0)
        rc = dyno_mq_start(s->mq);
    return rc;
}

int gw_ingest_start(struct gw *gw)
{
    struct gw_ingest *in = calloc(1, sizeof(*in));
    if (!in)
        return DYNO_ENOMEM;
    in->gw = gw;
    atomic_init(&in->stop, false);
    gw->ingest = in;
    for (int i = 0; i < GW_INGEST_SESSIONS; i++) {
        struct gw_ingest_session *s = &in->sessions[i];
        s->in = in;
        s->index = i;
        int rc = gw_ingest_session_start(gw, s);
        if (rc) {
            dyno_error("cannot start an ingest session", "session=%d err=%s", i, dyno_err_code(rc));
            return rc;
        }
    }
    return 0;
}

void gw_ingest_stop(struct gw *gw)
{
    struct gw_ingest *in = gw->ingest;
    if (!in)
        return;
    atomic_store(&in->stop, true);
    /* Each loop thread finishes the put in progress (the main connection is still up), and
     * abandons what comes after, so the broker keeps it for the next start. */
    for (int i = 0; i < GW_INGEST_SESSIONS; i++) {
        struct gw_ingest_session *s = &in->sessions[i];
        dyno_mq_free(s->mq);
        s->mq = NULL;
        gw_conn_free(s->conn);
        s->conn = NULL;
    }
}

void gw_ingest_free(struct gw *gw)
{
    struct gw_ingest *in = gw->ingest;
    if (!in)
        return;
    gw_ingest_stop(gw); /* no-op when already stopped */
    gw->ingest = NULL;
    free(in);
}
