/*
 * MQTT ingest (SPEC §3, §8): a message published to dyno/v1/ingest/<owner>/<path> becomes
 * an object of that catalog, like a REST put of the payload.
 *
 *   name          user property "name" (default: the key)
 *   publisher     the user properties "dyno-user" (username), "dyno-org" (the token's org,
 *                 "" for none) and "dyno-admin" ("true"|"false") that the broker plugin
 *                 stamps on every user's ingest message from the claims it logged the client
 *                 in with (any copy sent by the client, in any letter case, is removed
 *                 first). A message without exactly one valid copy of each did not come
 *                 through the plugin's login and is refused.
 *   publisher     the stamped username, kept as the object's "publisher"; it grants no
 *                 access (every access to the object is decided by the catalog's policy)
 *   access        the publisher must be allowed to write the catalog (catalog.get +
 *                 dyno_acl_decide) as the principal {user, org, admin} of the stamps: the
 *                 same rule the plugin applied (owner, user and org shares, admins), decided
 *                 again on pubsub's current policy
 *   size          at most ingest_max bytes
 *   reply         with a v5 Response Topic in dyno/v1/reply/<publisher>[/...], the publisher
 *                 gets {"key","name","size","sha256"} or {"error":{"code","message"}} with
 *                 its Correlation Data
 *
 * Threads: the subscription ($share/gateway/..., so gateway replicas share the load)
 * delivers in the MQTT loop thread, which only validates, copies and queues (bounded in
 * jobs; a full queue drops the message with a log line and a metric, as the loop thread
 * may not publish an answer). GW_INGEST_THREADS workers, each with its own curl connection
 * cache, do the RPCs, the put and the reply. A refused message stores nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "acl.h"
#include "agent.h"
#include "gw.h"
#include "httpd.h"
#include "json.h"
#include "log.h"
#include "mq.h"

#define GW_INGEST_THREADS 2
#define GW_INGEST_QUEUE_MAX 64 /* jobs waiting: at most this many ingest_max payloads in memory */
#define GW_INGEST_TOPIC "dyno/v1/ingest/"
#define GW_INGEST_SUB "$share/gateway/" GW_INGEST_TOPIC "#"
#define GW_INGEST_USER_PROP "dyno-user" /* the plugin's stamps (see the header) */
#define GW_INGEST_ORG_PROP "dyno-org"
#define GW_INGEST_ADMIN_PROP "dyno-admin"

struct gw_ingest_job {
    struct gw_ingest_job *next;
    char catalog[DYNO_CATALOG_MAX + 1];
    char user[DYNO_SEG_MAX + 1]; /* "" when not stamped */
    char org[DYNO_ACL_ORG_MAX + 1];
    bool admin;
    int nusers, norgs, nadmins; /* stamps seen (the plugin leaves exactly one of each) */
    bool bad_stamp;             /* a stamp with a value the plugin never writes */
    char name[DYNO_NAME_MAX + 1];
    bool has_name, bad_name;
    char *resp_topic; /* NULL: no answer wanted */
    void *corr;
    size_t corr_len;
    void *data;
    size_t len;
    bool oversize;
};

struct gw_ingest {
    struct gw *gw;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct gw_ingest_job *head, *tail;
    int njobs;
    bool stop;
    int nthreads;
    pthread_t threads[GW_INGEST_THREADS];
};

static void gw_ingest_job_free(struct gw_ingest_job *j)
{
    if (!j)
        return;
    free(j->resp_topic);
    free(j->corr);
    free(j->data);
    free(j);
}

/* ---- the loop-thread side ---- */

/* Copies what the worker needs from the properties. false on out of memory. */
static bool gw_ingest_read_props(struct gw_ingest_job *j, const mosquitto_property *props)
{
    const mosquitto_property *pr = props;
    char *name = NULL, *value = NULL;
    bool skip = false;
    while (pr && (pr = mosquitto_property_read_string_pair(pr, MQTT_PROP_USER_PROPERTY, &name, &value,
                                                           skip)) != NULL) {
        skip = true;
        if (name && value) {
            if (strcasecmp(name, GW_INGEST_USER_PROP) == 0) {
                j->nusers++;
                if (dyno_valid_segment(value))
                    snprintf(j->user, sizeof(j->user), "%s", value);
                else
                    j->bad_stamp = true;
            } else if (strcasecmp(name, GW_INGEST_ORG_PROP) == 0) {
                j->norgs++;
                if (dyno_agent_valid_org(value, true))
                    snprintf(j->org, sizeof(j->org), "%s", value);
                else
                    j->bad_stamp = true;
            } else if (strcasecmp(name, GW_INGEST_ADMIN_PROP) == 0) {
                j->nadmins++;
                j->admin = strcmp(value, "true") == 0;
                if (!j->admin && strcmp(value, "false") != 0)
                    j->bad_stamp = true;
            } else if (strcmp(name, "name") == 0 && !j->has_name) {
                j->has_name = true;
                if (dyno_valid_name(value))
                    snprintf(j->name, sizeof(j->name), "%s", value);
                else
                    j->bad_name = true;
            }
        }
        free(name);
        free(value);
        name = value = NULL;
    }
    char *rt = NULL;
    if (props && mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &rt, false))
        j->resp_topic = rt;
    void *cd = NULL;
    uint16_t cdlen = 0;
    if (props && mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &cd, &cdlen, false)) {
        j->corr = cd;
        j->corr_len = cdlen;
    }
    return true;
}

/* MQTT loop thread: validate, copy, queue. Never blocks beyond the queue mutex. */
static void gw_ingest_on_msg(void *arg, const struct dyno_mq_msg *msg)
{
    struct gw_ingest *in = arg;
    struct gw *gw = in->gw;
    const char *catalog = msg->topic + sizeof(GW_INGEST_TOPIC) - 1;
    if (strncmp(msg->topic, GW_INGEST_TOPIC, sizeof(GW_INGEST_TOPIC) - 1) != 0 ||
        !dyno_valid_catalog(catalog)) {
        dyno_metric_add(&gw->metrics[GW_M_INGEST_REFUSED], 1);
        dyno_warn("ingest refused", "reason=\"bad catalog in topic\"");
        return;
    }
    struct gw_ingest_job *j = calloc(1, sizeof(*j));
    if (!j)
        goto nomem;
    memcpy(j->catalog, catalog, strlen(catalog) + 1);
    if (!gw_ingest_read_props(j, msg->props))
        goto nomem;
    j->len = msg->len;
    if (msg->len > (size_t)gw->cfg.ingest_max) {
        j->oversize = true; /* answered by a worker; the payload is not kept */
    } else {
        j->data = malloc(msg->len ? msg->len : 1);
        if (!j->data)
            goto nomem;
        memcpy(j->data, msg->payload, msg->len);
    }
    pthread_mutex_lock(&in->mu);
    if (in->stop || in->njobs >= GW_INGEST_QUEUE_MAX) {
        bool stopping = in->stop;
        pthread_mutex_unlock(&in->mu);
        dyno_metric_add(&gw->metrics[GW_M_INGEST_REFUSED], 1);
        dyno_warn("ingest refused", "catalog=%s user=%s reason=\"%s\"", j->catalog,
                  j->user[0] ? j->user : "-", stopping ? "gateway stopping" : "queue full");
        gw_ingest_job_free(j);
        return;
    }
    if (in->tail)
        in->tail->next = j;
    else
        in->head = j;
    in->tail = j;
    in->njobs++;
    pthread_cond_signal(&in->cond);
    pthread_mutex_unlock(&in->mu);
    return;
nomem:
    dyno_metric_add(&gw->metrics[GW_M_INGEST_REFUSED], 1);
    dyno_warn("ingest refused", "catalog=%s reason=\"out of memory\"", catalog);
    gw_ingest_job_free(j);
}

/* ---- workers ---- */

/* True when topic is dyno/v1/reply/<user> or below it. */
static bool gw_ingest_reply_topic_ok(const char *topic, const char *user)
{
    size_t pl = strlen(DYNO_ACL_TOPIC_REPLY), ul = strlen(user);
    return strncmp(topic, DYNO_ACL_TOPIC_REPLY, pl) == 0 && strncmp(topic + pl, user, ul) == 0 &&
           (topic[pl + ul] == '\0' || topic[pl + ul] == '/') && strpbrk(topic, "+#") == NULL;
}

static void gw_ingest_reply(struct gw *gw, const struct gw_ingest_job *j, const cJSON *body)
{
    if (!j->resp_topic || !j->user[0])
        return;
    if (!gw_ingest_reply_topic_ok(j->resp_topic, j->user)) {
        dyno_warn("ingest reply not sent",
                  "catalog=%s user=%s reason=\"response topic outside dyno/v1/reply/%s\"", j->catalog,
                  j->user, j->user);
        return;
    }
    size_t len = 0;
    char *txt = dyno_json_print(body, &len);
    if (!txt)
        return;
    int rc = dyno_mq_publish_reply(gw->mq, j->resp_topic, txt, len, j->corr, j->corr_len);
    if (rc)
        dyno_warn("ingest reply not sent", "catalog=%s user=%s err=%s", j->catalog, j->user,
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
    dyno_warn("ingest refused", "catalog=%s user=%s size=%zu err=%s detail=%s", j->catalog,
              j->user[0] ? j->user : "-", j->len, dyno_err_code(err), q);
    cJSON *body = dyno_http_error_body(dyno_err_code(err), msg);
    if (body)
        gw_ingest_reply(gw, j, body);
    cJSON_Delete(body);
}

/* The publisher's write access, decided by lib/acl.c on the catalog's policy. */
static int gw_ingest_check(struct gw *gw, const struct gw_ingest_job *j, int *k, int *m, char *msg,
                           size_t cap)
{
    cJSON *cat = NULL;
    int rc = gw_catalog_get(gw, j->catalog, &cat, msg, cap);
    if (rc == DYNO_ENOTFOUND)
        snprintf(msg, cap, "no catalog %s", j->catalog);
    if (rc)
        return rc;
    struct dyno_acl_policy *pol = NULL;
    size_t len = 0;
    char *txt = dyno_json_print(cat, &len);
    rc = txt ? dyno_acl_policy_parse(txt, len, &pol) : DYNO_ENOMEM;
    free(txt);
    if (rc) {
        snprintf(msg, cap, "pubsub answered an unusable policy for %s", j->catalog);
        cJSON_Delete(cat);
        return rc == DYNO_ENOMEM ? rc : DYNO_EPROTO;
    }
    struct dyno_acl_principal who = {.sub = j->user, .org = j->org, .admin = j->admin, .service = false};
    if (!dyno_acl_decide(pol, &who, DYNO_ACL_WRITE)) {
        snprintf(msg, cap, "%s may not write to catalog %s", j->user, j->catalog);
        rc = DYNO_EFORBIDDEN;
    }
    int64_t ck, cm;
    if (rc == 0 && dyno_json_i64(cat, "k", &ck) == 0 && dyno_json_i64(cat, "m", &cm) == 0 && ck >= 1 &&
        ck <= DYNO_EC_MAX_K && cm >= 0 && cm <= DYNO_EC_MAX_M && ck + cm <= GW_MAX_N) {
        *k = (int)ck;
        *m = (int)cm;
    }
    dyno_acl_policy_free(pol);
    cJSON_Delete(cat);
    return rc;
}

static void gw_ingest_one(struct gw *gw, struct gw_conn *conn, struct gw_ingest_job *j)
{
    char msg[1024];
    if (j->nusers != 1 || j->norgs != 1 || j->nadmins != 1 || j->bad_stamp || !j->user[0]) {
        /* Only the plugin's stamps name a publisher: without them the message came through
         * no login we know of (or a service published it), so nobody can own it. */
        j->user[0] = '\0';
        gw_ingest_refuse(gw, j, DYNO_EUNAUTH,
                         "ingest message without a publisher (not one valid %s, %s and %s stamp each)",
                         GW_INGEST_USER_PROP, GW_INGEST_ORG_PROP, GW_INGEST_ADMIN_PROP);
        return;
    }
    if (j->oversize) {
        gw_ingest_refuse(gw, j, DYNO_ETOOBIG, "message of %zu bytes is larger than ingest_max (%lld bytes)",
                         j->len, (long long)gw->cfg.ingest_max);
        return;
    }
    if (j->bad_name) {
        gw_ingest_refuse(gw, j, DYNO_EINVAL, "bad object name (1..255 bytes of UTF-8, no '/')");
        return;
    }
    int k = (int)gw->cfg.k, m = (int)gw->cfg.m;
    int rc = gw_ingest_check(gw, j, &k, &m, msg, sizeof(msg));
    if (rc) {
        gw_ingest_refuse(gw, j, rc, "%s", msg);
        return;
    }
    struct gw_put_mem pm = {.catalog = j->catalog,
                            .name = j->name[0] ? j->name : NULL,
                            .publisher = j->user,
                            .k = k,
                            .m = m,
                            .data = j->data,
                            .len = j->len};
    cJSON *res = NULL;
    rc = gw_put_memory(gw, conn, &pm, &res, msg, sizeof(msg));
    if (rc) {
        gw_ingest_refuse(gw, j, rc, "%s", msg);
        return;
    }
    dyno_metric_add(&gw->metrics[GW_M_INGESTED], 1);
    dyno_info("ingested", "catalog=%s user=%s key=%s size=%zu", j->catalog, j->user,
              dyno_json_str(res, "key"), j->len);
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
    cJSON_Delete(res);
}

static void *gw_ingest_worker(void *arg)
{
    struct gw_ingest *in = arg;
    struct gw_conn *conn = calloc(1, sizeof(*conn));
    for (;;) {
        pthread_mutex_lock(&in->mu);
        while (!in->stop && !in->head)
            pthread_cond_wait(&in->cond, &in->mu);
        if (in->stop) {
            pthread_mutex_unlock(&in->mu);
            break;
        }
        struct gw_ingest_job *j = in->head;
        in->head = j->next;
        if (!in->head)
            in->tail = NULL;
        in->njobs--;
        pthread_mutex_unlock(&in->mu);
        if (conn)
            gw_ingest_one(in->gw, conn, j);
        else
            gw_ingest_refuse(in->gw, j, DYNO_ENOMEM, "out of memory");
        gw_ingest_job_free(j);
    }
    gw_conn_free(conn);
    return NULL;
}

int gw_ingest_start(struct gw *gw)
{
    struct gw_ingest *in = calloc(1, sizeof(*in));
    if (!in)
        return DYNO_ENOMEM;
    in->gw = gw;
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->cond, NULL);
    for (int i = 0; i < GW_INGEST_THREADS; i++) {
        if (pthread_create(&in->threads[i], NULL, gw_ingest_worker, in) != 0)
            break;
        in->nthreads++;
    }
    gw->ingest = in;
    if (in->nthreads == 0) {
        dyno_error("cannot start the ingest workers", NULL);
        return DYNO_EINTERNAL;
    }
    int rc = dyno_mq_subscribe(gw->mq, GW_INGEST_SUB, 1, gw_ingest_on_msg, in);
    if (rc)
        dyno_error("cannot subscribe to ingest", "err=%s", dyno_err_code(rc));
    return rc;
}

void gw_ingest_stop(struct gw *gw)
{
    struct gw_ingest *in = gw->ingest;
    if (!in)
        return;
    pthread_mutex_lock(&in->mu);
    in->stop = true;
    pthread_cond_broadcast(&in->cond);
    pthread_mutex_unlock(&in->mu);
    for (int i = 0; i < in->nthreads; i++)
        pthread_join(in->threads[i], NULL);
    in->nthreads = 0;
    /* Jobs still queued are dropped; the struct stays for the loop thread, which sees
     * stop and queues nothing more, until dyno_mq_free. */
    pthread_mutex_lock(&in->mu);
    while (in->head) {
        struct gw_ingest_job *j = in->head;
        in->head = j->next;
        gw_ingest_job_free(j);
    }
    in->tail = NULL;
    in->njobs = 0;
    pthread_mutex_unlock(&in->mu);
}

void gw_ingest_free(struct gw *gw)
{
    struct gw_ingest *in = gw->ingest;
    if (!in)
        return;
    gw_ingest_stop(gw); /* no-op when already stopped */
    gw->ingest = NULL;
    pthread_cond_destroy(&in->cond);
    pthread_mutex_destroy(&in->mu);
    free(in);
}
