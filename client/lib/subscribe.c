/*
 * dyno_client_subscribe: catalog events straight from the broker (SPEC §3, §8), over
 * libmosquitto (MQTT v5) driven by the calling thread. See client.h for the contract.
 *
 * A subscription the broker refuses on the first connection is an access error. Once it
 * was granted, a refusal after a reconnect is first taken as the broker's policy table
 * being empty after its restart (it denies every user until dyno-pubsub has republished
 * the catalogs' policies): the client disconnects and tries again with back-off, and gives
 * up with the access error only when the refusals last SUB_REFUSED_GRACE_S seconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "client_int.h"
#include "json.h"
#include "names.h"
#include "token.h"

#define SUB_EVENTS_PREFIX "dyno/v1/events/"
#define SUB_EVENT_MAX (1024 * 1024) /* larger payloads are skipped */
#define SUB_HOST_MAX 256
#define SUB_BACKOFF_MIN_MS 1000
#define SUB_BACKOFF_MAX_MS 10000
#define SUB_REFUSED_GRACE_S 120 /* refusals after a granted subscription, before giving up */

struct sub_ctx {
    dyno_client *c;
    struct mosquitto *mosq;
    const struct dyno_subscribe_opts *o;
    dyno_client_event_fn fn;
    void *arg;
    /* <prefix><catalog>/#, the one subscription: a trailing '#' also matches its parent level,
     * so it covers the catalog's own topic and every sub-catalog's. A second subscription to
     * the catalog's topic would have every event of the catalog delivered twice (mosquitto
     * sends a message once per matching subscription). */
    char topic[sizeof(SUB_EVENTS_PREFIX) + DYNO_CATALOG_MAX + 2];
    int mid;
    bool connected, ever_connected, session_present;
    bool ever_granted;    /* a subscription was granted on some connection */
    time_t refused_since; /* first refusal after a grant, 0 when granted now */
    int rc;               /* non-zero: stop with it */
};

/* Splits "mqtt://host:port" / "mqtts://host:port". */
static int sub_parse_broker(const char *url, char *host, size_t cap, int *port, bool *tls)
{
    const char *rest;
    if (strncmp(url, "mqtt://", 7) == 0) {
        rest = url + 7;
        *tls = false;
        *port = 1883;
    } else if (strncmp(url, "mqtts://", 8) == 0) {
        rest = url + 8;
        *tls = true;
        *port = 8883;
    } else {
        return DYNO_EINVAL;
    }
    const char *end = rest + strcspn(rest, "/");
    const char *colon = NULL;
    if (*rest == '[') { /* [v6]:port */
        const char *rb = memchr(rest, ']', (size_t)(end - rest));
        if (!rb)
            return DYNO_EINVAL;
        if (rb + 1 < end && rb[1] == ':')
            colon = rb + 1;
        rest++;
        end = colon ? colon : rb + 1;
        if ((size_t)(rb - rest) >= cap || rb == rest)
            return DYNO_EINVAL;
        memcpy(host, rest, (size_t)(rb - rest));
        host[rb - rest] = '\0';
    } else {
        colon = memchr(rest, ':', (size_t)(end - rest));
        const char *hend = colon ? colon : end;
        if (hend == rest || (size_t)(hend - rest) >= cap)
            return DYNO_EINVAL;
        memcpy(host, rest, (size_t)(hend - rest));
        host[hend - rest] = '\0';
    }
    if (colon) {
        uint64_t p;
        if (dyno_rest_dec(colon + 1, strcspn(colon + 1, "/"), &p) || p < 1 || p > 65535)
            return DYNO_EINVAL;
        *port = (int)p;
    }
    return 0;
}

/* The "sub" claim of a token, read without verifying it (the broker verifies). */
static int sub_token_user(const char *token, char *out, size_t cap)
{
    const char *a = token ? strchr(token, '.') : NULL;
    const char *b = a ? strchr(a + 1, '.') : NULL;
    if (!b)
        return DYNO_EINVAL;
    uint8_t buf[DYNO_TOKEN_MAX];
    size_t n = 0;
    if (dyno_b64url_decode(a + 1, (size_t)(b - a - 1), buf, sizeof(buf), &n))
        return DYNO_EINVAL;
    cJSON *doc = NULL;
    if (dyno_json_parse((const char *)buf, n, sizeof(buf), &doc))
        return DYNO_EINVAL;
    const char *sub = dyno_json_str(doc, "sub");
    int rc = sub && dyno_valid_segment(sub) && strlen(sub) < cap ? 0 : DYNO_EINVAL;
    if (rc == 0)
        memcpy(out, sub, strlen(sub) + 1);
    cJSON_Delete(doc);
    return rc;
}

static void sub_on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                           const mosquitto_property *props)
{
    (void)props;
    struct sub_ctx *x = obj;
    if (rc != 0) {
        /* v5 reason codes: bad user name or password, not authorized, banned... */
        if (rc == MQTT_RC_BAD_USERNAME_OR_PASSWORD || rc == MQTT_RC_NOT_AUTHORIZED || rc == MQTT_RC_BANNED ||
            rc == MQTT_RC_CLIENTID_NOT_VALID) {
            x->rc = dyno__fail(x->c, DYNO_EUNAUTH, "the broker refused the login: %s",
                               mosquitto_reason_string(rc));
        }
        return;
    }
    x->connected = true;
    x->ever_connected = true;
    x->session_present = (flags & 1) != 0;
    x->mid = -1;
    if (mosquitto_subscribe_v5(mosq, &x->mid, x->topic, 1, 0, NULL) != MOSQ_ERR_SUCCESS)
        mosquitto_disconnect(mosq); /* and try again */
}

static void sub_on_subscribe(struct mosquitto *mosq, void *obj, int mid, int qos_count, const int *granted,
                             const mosquitto_property *props)
{
    (void)props;
    struct sub_ctx *x = obj;
    if (mid != x->mid)
        return;
    for (int i = 0; i < qos_count; i++) {
        if (granted[i] >= 0x80) {
            time_t now = time(NULL);
            if (x->ever_granted && (x->refused_since == 0 || now - x->refused_since < SUB_REFUSED_GRACE_S)) {
                if (x->refused_since == 0)
                    x->refused_since = now;
                mosquitto_disconnect(mosq); /* the loop reconnects with back-off */
                return;
            }
            x->rc = dyno__fail(x->c, DYNO_EFORBIDDEN, "the broker refused the subscription to %s", x->topic);
            return;
        }
    }
    x->ever_granted = true;
    x->refused_since = 0;
    if (x->o->on_ready) {
        int rc = x->o->on_ready(x->arg, x->session_present);
        if (rc < 0)
            x->rc = rc;
    }
}

static void sub_on_disconnect(struct mosquitto *mosq, void *obj, int rc, const mosquitto_property *props)
{
    (void)mosq;
    (void)rc;
    (void)props;
    struct sub_ctx *x = obj;
    x->connected = false;
}

static void sub_on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m,
                           const mosquitto_property *props)
{
    (void)mosq;
    (void)props;
    struct sub_ctx *x = obj;
    size_t pl = sizeof(SUB_EVENTS_PREFIX) - 1;
    if (x->rc || !m->topic || strncmp(m->topic, SUB_EVENTS_PREFIX, pl) != 0 || m->payloadlen <= 0 ||
        m->payloadlen > SUB_EVENT_MAX)
        return;
    cJSON *doc = NULL;
    if (dyno_json_parse(m->payload, (size_t)m->payloadlen, SUB_EVENT_MAX, &doc) || !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return; /* not an event of ours */
    }
    char *json = malloc((size_t)m->payloadlen + 1);
    if (!json) {
        cJSON_Delete(doc);
        x->rc = dyno__fail(x->c, DYNO_ENOMEM, "out of memory");
        return;
    }
    memcpy(json, m->payload, (size_t)m->payloadlen);
    json[m->payloadlen] = '\0';
    struct dyno_event ev = {
        .catalog = m->topic + pl, .size = -1, .json = json, .json_len = (size_t)m->payloadlen, .doc = doc};
    ev.type = dyno_json_str(doc, "type");
    if (!ev.type)
        ev.type = "";
    int64_t t = 0;
    if (dyno_json_i64(doc, "time", &t) == 0)
        ev.time = t;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(doc, "object");
    if (cJSON_IsObject(o)) {
        ev.key = dyno_json_str(o, "key");
        ev.name = dyno_json_str(o, "name");
        ev.sha256 = dyno_json_str(o, "sha256");
        if (dyno_json_i64(o, "size", &t) == 0)
            ev.size = t;
    }
    int rc = x->fn(x->arg, &ev);
    if (rc < 0)
        x->rc = rc;
    free(json);
    cJSON_Delete(doc);
}

/* After a failed or lost connection: waits *backoff ms, then doubles it up to SUB_BACKOFF_MAX_MS. */
static void sub_backoff(long *backoff)
{
    struct timespec ts = {*backoff / 1000, (*backoff % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    *backoff = *backoff * 2 > SUB_BACKOFF_MAX_MS ? SUB_BACKOFF_MAX_MS : *backoff * 2;
}

static bool sub_stopped(const struct sub_ctx *x)
{
    return x->rc != 0 || (x->o->stop && *x->o->stop);
}

int dyno_client_subscribe(dyno_client *c, const char *catalog, const struct dyno_subscribe_opts *opts,
                          dyno_client_event_fn fn, void *arg)
{
    if (!c)
        return DYNO_EINVAL;
    dyno__begin(c);
    if (!catalog || !dyno_valid_catalog(catalog))
        return dyno__fail(c, DYNO_EINVAL, "bad catalog path (owner/name[/name...])");
    if (!opts || !opts->broker || !fn)
        return dyno__fail(c, DYNO_EINVAL, "no broker address (mqtt://host:port) or no callback");
    if (opts->client_id &&
        (!opts->client_id[0] || strlen(opts->client_id) > 64 || strpbrk(opts->client_id, "+#/\\") != NULL))
        return dyno__fail(c, DYNO_EINVAL, "bad client id");
    char host[SUB_HOST_MAX], user[DYNO_SEG_MAX + 1];
    int port = 0;
    bool tls = false;
    if (sub_parse_broker(opts->broker, host, sizeof(host), &port, &tls))
        return dyno__fail(c, DYNO_EINVAL, "bad broker address '%s' (mqtt://host:port or mqtts://host:port)",
                          opts->broker);
    if (!c->token || sub_token_user(c->token, user, sizeof(user)))
        return dyno__fail(c, DYNO_EINVAL, "no token, or a token whose claims cannot be read");

    struct sub_ctx x = {.c = c, .o = opts, .fn = fn, .arg = arg};
    snprintf(x.topic, sizeof(x.topic), SUB_EVENTS_PREFIX "%s/#", catalog);
    bool persistent = opts->client_id != NULL;
    long expiry = opts->session_expiry > 0 ? opts->session_expiry : DYNO_CLIENT_SESSION_EXPIRY_DEFAULT;
    int keepalive = opts->keepalive > 0 ? opts->keepalive : 60;
    mosquitto_property *cprops = NULL;
    int rc = 0;

    mosquitto_lib_init();
    x.mosq = mosquitto_new(opts->client_id, !persistent, &x);
    if (!x.mosq) {
        rc = dyno__fail(c, DYNO_ENOMEM, "cannot create the MQTT client");
        goto out;
    }
    mosquitto_int_option(x.mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    if (mosquitto_username_pw_set(x.mosq, user, c->token) != MOSQ_ERR_SUCCESS) {
        rc = dyno__fail(c, DYNO_ENOMEM, "out of memory");
        goto out;
    }
    if (tls) {
        const char *ca = opts->cafile ? opts->cafile : c->cafile;
        int trc = ca ? mosquitto_tls_set(x.mosq, ca, NULL, NULL, NULL, NULL)
                     : mosquitto_int_option(x.mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
        if (trc != MOSQ_ERR_SUCCESS) {
            rc = dyno__fail(c, DYNO_EINVAL, "cannot set up TLS to the broker (CA file %s)",
                            ca ? ca : "system");
            goto out;
        }
    }
    if (persistent && mosquitto_property_add_int32(&cprops, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                                   (uint32_t)expiry) != MOSQ_ERR_SUCCESS) {
        rc = dyno__fail(c, DYNO_ENOMEM, "out of memory");
        goto out;
    }
    mosquitto_connect_v5_callback_set(x.mosq, sub_on_connect);
    mosquitto_subscribe_v5_callback_set(x.mosq, sub_on_subscribe);
    mosquitto_disconnect_v5_callback_set(x.mosq, sub_on_disconnect);
    mosquitto_message_v5_callback_set(x.mosq, sub_on_message);

    long backoff = SUB_BACKOFF_MIN_MS;
    bool need_connect = true;
    for (;;) {
        if (sub_stopped(&x))
            break;
        if (need_connect) {
            int crc = mosquitto_connect_bind_v5(x.mosq, host, port, keepalive, NULL, cprops);
            if (crc != MOSQ_ERR_SUCCESS) {
                if (!x.ever_connected) {
                    rc = dyno__fail(c, DYNO_EUNAVAIL, "cannot connect to the broker %s: %s", opts->broker,
                                    mosquitto_strerror(crc));
                    goto out;
                }
                sub_backoff(&backoff);
                continue;
            }
            need_connect = false;
        }
        int lrc = mosquitto_loop(x.mosq, 1000, 1);
        if (x.connected)
            backoff = SUB_BACKOFF_MIN_MS;
        if (lrc != MOSQ_ERR_SUCCESS) {
            x.connected = false;
            if (sub_stopped(&x))
                break;
            if (!x.ever_connected) {
                rc = dyno__fail(c, DYNO_EUNAVAIL, "the broker %s closed the connection: %s", opts->broker,
                                mosquitto_strerror(lrc));
                goto out;
            }
            sub_backoff(&backoff);
            need_connect = true;
        }
    }
    rc = x.rc;
    if (x.connected) {
        /* Flush PUBACKs of what was handled, then leave (the session stays when persistent). */
        mosquitto_loop(x.mosq, 100, 1);
        mosquitto_disconnect_v5(x.mosq, 0, NULL);
        mosquitto_loop(x.mosq, 100, 1);
    }
out:
    mosquitto_property_free_all(&cprops);
    if (x.mosq)
        mosquitto_destroy(x.mosq);
    mosquitto_lib_cleanup();
    return rc;
}
