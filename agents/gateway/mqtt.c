/*
 * The gateway's broker feeds: token revocations, catalog policies, its status fields and
 * connect hook (the session itself, gateway-<id> with its Will, is lib/agent.c), and the
 * RPC wrapper every handler uses.
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

/* Connect thread (lib/agent.c), after the online status: policy changes and revocations
 * may have gone by while we were away. */
void gw_mqtt_on_connect(void *arg)
{
    struct gw *gw = arg;
    gw_catcache_invalidate(gw->catcache, NULL);
    gw_s3key_flush(gw);
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

int gw_mqtt_status(void *arg, cJSON *st)
{
    struct gw *gw = arg;
    char url[300];
    snprintf(url, sizeof(url), "%s://%s:%u", gw->cfg.tls_cert ? "https" : "http", gw->cfg.listen_host,
             gw->port);
    return cJSON_AddStringToObject(st, "url", url) ? 0 : DYNO_ENOMEM;
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
    int rc = gw_catcache_new(&gw->catcache);
    if (rc == 0)
        rc = dyno_mq_subscribe(gw->mq, DYNO_ACL_TOPIC_REVOKED, 1, gw_on_revoked, gw);
    if (rc == 0)
        rc = dyno_mq_subscribe(gw->mq, "dyno/v1/acl/#", 1, gw_on_acl, gw);
    if (rc == 0)
        rc = gw_s3key_start(gw);
    if (rc)
        dyno_error("cannot set up MQTT subscriptions", "err=%s", dyno_err_code(rc));
    return rc;
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
