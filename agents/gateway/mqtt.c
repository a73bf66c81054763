/*
 * The gateway's broker connection: client gateway-<id>, retained status with a Will,
 * token revocations, and the RPC wrapper every handler uses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "agent.h"
#include "gw.h"
#include "json.h"
#include "log.h"
#include "mq.h"

static void gw_status_topic(const struct gw *gw, char *out, size_t cap)
{
    snprintf(out, cap, "dyno/v1/agents/gateway/%s/status", gw->cfg.c.id);
}

/* Runs in the loop thread: must not publish, so main is asked to. */
static void gw_on_connect(void *arg, struct dyno_mq *mq)
{
    (void)mq;
    struct gw *gw = arg;
    atomic_store(&gw->status_due, true);
    /* Policy changes may have gone by while we were away. */
    gw_catcache_invalidate(gw->catcache, NULL);
    gw_events_recheck(gw, NULL);
}

/* Loop thread: pubsub republished a catalog's policy (protocol.md §7); forget our copy. */
static void gw_on_acl(void *arg, const struct dyno_mq_msg *msg)
{
    struct gw *gw = arg;
    const char *prefix = "dyno/v1/acl/";
    size_t n = strlen(prefix);
    if (strncmp(msg->topic, prefix, n) == 0) {
        gw_catcache_invalidate(gw->catcache, msg->topic + n);
        gw_events_recheck(gw, msg->topic + n); /* open event streams may have lost access */
    }
}

/* Loop thread: the revocation feed (lib/agent.c); whatever came, open event streams check
 * their token again: one may be revoked now, or no user token passes until a good document. */
static void gw_on_revoked(void *arg, const struct dyno_mq_msg *msg)
{
    struct gw *gw = arg;

    if (dyno_agent_revoked(gw->verifier, msg) != DYNO_ENOTFOUND)
        gw_events_recheck(gw, NULL);
}

void gw_mqtt_publish_status(struct gw *gw, const char *state)
{
    if (!gw->mq)
        return;
    char topic[160];
    gw_status_topic(gw, topic, sizeof(topic));
    cJSON *st = cJSON_CreateObject();
    if (!st)
        return;
    char url[300];
    snprintf(url, sizeof(url), "%s://%s:%u", gw->cfg.tls_cert ? "https" : "http", gw->cfg.listen_host,
             gw->port);
    cJSON_AddStringToObject(st, "id", gw->cfg.c.id);
    cJSON_AddStringToObject(st, "kind", "gateway");
    cJSON_AddStringToObject(st, "state", state);
    cJSON_AddStringToObject(st, "version", DYNO_VERSION);
    dyno_json_add_i64(st, "started_at", gw->started_at);
    dyno_json_add_i64(st, "time", (int64_t)time(NULL));
    cJSON_AddStringToObject(st, "url", url);
    size_t len = 0;
    char *txt = dyno_json_print(st, &len);
    if (txt) {
        int rc = dyno_mq_publish(gw->mq, topic, txt, len, 1, true, NULL);
        if (rc)
            dyno_debug("status not published", "err=%s", dyno_err_code(rc));
        free(txt);
    }
    cJSON_Delete(st);
}

void gw_mqtt_opts(const struct gw *gw, const char *client_id, struct dyno_mq_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->host = gw->cfg.c.broker_host;
    o->port = (int)gw->cfg.c.broker_port;
    o->client_id = client_id;
    o->username = client_id; /* services log in as <kind>-<id> (docs/security.md) */
    o->password = gw->service_token;
    o->cafile = gw->cfg.c.broker_cafile;
}

int gw_mqtt_start(struct gw *gw)
{
    char client_id[80], topic[160], will[200];
    snprintf(client_id, sizeof(client_id), "gateway-%s", gw->cfg.c.id);
    gw_status_topic(gw, topic, sizeof(topic));
    snprintf(will, sizeof(will), "{\"id\":\"%s\",\"kind\":\"gateway\",\"state\":\"offline\"}", gw->cfg.c.id);
    struct dyno_mq_opts o;
    gw_mqtt_opts(gw, client_id, &o);
    o.will_topic = topic;
    o.will_payload = will;
    o.keepalive = 10;
    o.persistent = false;
    int rc = dyno_mq_new(&o, &gw->mq);
    if (rc) {
        dyno_error("cannot create the MQTT client", "err=%s", dyno_err_code(rc));
        return rc;
    }
    dyno_mq_on_connect(gw->mq, gw_on_connect, gw);
    rc = gw_catcache_new(&gw->catcache);
    if (rc == 0)
        rc = dyno_mq_subscribe(gw->mq, DYNO_ACL_TOPIC_REVOKED, 1, gw_on_revoked, gw);
    if (rc == 0)
        rc = dyno_mq_subscribe(gw->mq, "dyno/v1/acl/#", 1, gw_on_acl, gw);
    if (rc == 0)
        rc = dyno_mq_start(gw->mq);
    if (rc) {
        dyno_error("cannot start the MQTT client", "err=%s", dyno_err_code(rc));
        dyno_mq_free(gw->mq);
        gw->mq = NULL;
        return rc;
    }
    /* Not fatal: the client keeps reconnecting, and requests answer 503 meanwhile. */
    if (dyno_mq_wait_connected(gw->mq, 3000))
        dyno_warn("broker not reachable yet", "host=%s port=%d", o.host, o.port);
    return 0;
}

int gw_rpc_change(struct gw *gw, const char *service, const char *method, const cJSON *params, cJSON **result,
                  char *msg, size_t cap, bool *unknown)
{
    if (result)
        *result = NULL;
    msg[0] = '\0';
    int rc = dyno_mq_call(gw->mq, service, method, params, (int)gw->cfg.rpc_timeout_ms, result, msg, cap);
    /* lib/mq.h: DYNO_ETIMEDOUT is "sent, no answer" (or the service's own timeout): the
     * request may have been carried out. */
    *unknown = rc == DYNO_ETIMEDOUT;
    if (rc == DYNO_ETIMEDOUT) {
        /* lib/mq.c says why (no answer in time, or the broker connection lost); keep it. */
        if (msg[0] == '\0')
            snprintf(msg, cap, "the %s service did not answer %s in time; it may have been done", service,
                     method);
        rc = DYNO_EUNAVAIL;
    } else if (rc == DYNO_EUNAVAIL && msg[0] == '\0') {
        snprintf(msg, cap, "the %s service is not reachable (broker connection down)", service);
    } else if (rc && msg[0] == '\0') {
        snprintf(msg, cap, "%s %s: %s", service, method, dyno_strerror(rc));
    }
    if (rc == 0 && result && !*result) {
        /* A success without a result object is a protocol error for every call we make. */
        snprintf(msg, cap, "%s %s answered without a result", service, method);
        rc = DYNO_EPROTO;
    }
    return rc;
}

int gw_rpc(struct gw *gw, const char *service, const char *method, const cJSON *params, cJSON **result,
           char *msg, size_t cap)
{
    bool unknown;
    return gw_rpc_change(gw, service, method, params, result, msg, cap, &unknown);
}

void gw_notify(struct gw *gw, const char *service, const char *method, const cJSON *params)
{
    int rc = dyno_mq_notify(gw->mq, service, method, params);
    if (rc)
        dyno_warn("notification not sent", "service=%s method=%s err=%s", service, method, dyno_err_code(rc));
}
