/*
 * Catalog events (SPEC §3, §4; protocol.md §3 event.emit).
 *
 * Out: object.created / object.evicted go to pubsub as event.emit notifications; pubsub
 * validates them and publishes {"type","catalog","time","object":{key,name,size,sha256}}
 * QoS 1 on dyno/v1/events/<catalog> with the user property event=<type>.
 *
 * In: GET /v1/events?catalog=<owner>/<path> serves those messages as server-sent events
 * ("event: <type>\ndata: <json>\n\n", a ": keep-alive" comment every 15 s). The gateway
 * subscribes once to dyno/v1/events/# with its service login; the MQTT loop thread copies
 * each message into the queue of every SSE client of that exact catalog (bounded: a client
 * whose queue is full loses its stream, it reconnects) and wakes them; each SSE client is
 * served by its own MHD thread, which waits on the hub's condition variable.
 *
 * A stream is a long-lived grant, so it is checked again, not only when it opens (issue 9):
 *   - its token's expiry, at every wake-up (at least once a second);
 *   - its token (signature, expiry, revocation: dyno_token_verify on the copy kept with the
 *     stream) and the caller's read access to the catalog (catalog.get + the acl rule),
 *     whenever a revocation list is applied (gw_events_recheck from mqtt.c), when the
 *     policy of the catalog or of a catalog above it changes (dyno/v1/acl/...), on every
 *     broker reconnect, and every GW_SSE_RECHECK_MS anyway.
 * A check that fails, for any reason (pubsub unreachable included), ends the stream: the
 * client reconnects and is answered like any new request. Each user may hold at most
 * max_streams_per_user streams (gateway config); more get 429 with Retry-After.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/socket.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "clock.h"
#include "gw.h"
#include "httpd.h"
#include "json.h"
#include "log.h"
#include "mq.h"

#define GW_SSE_CLIENTS_MAX 64        /* concurrent SSE streams */
#define GW_SSE_QUEUE_MAX 256         /* events waiting per stream */
#define GW_SSE_EVENT_MAX (64 * 1024) /* larger event payloads are not forwarded */
#define GW_SSE_KEEPALIVE_MS 15000    /* a comment line when nothing else was sent */
#define GW_SSE_WAIT_SLICE_MS 1000    /* how often a waiting stream looks at the shutdown flag */
#define GW_EVENTS_TOPIC "dyno/v1/events/"
#define GW_EVENT_TYPE_MAX 64
#define GW_SSE_RECHECK_MS 30000 /* the longest a stream goes without a full check */
#define GW_SSE_RETRY_AFTER_S 5  /* Retry-After of a user over max_streams_per_user */

struct gw_sse_ev {
    struct gw_sse_ev *next;
    size_t len;
    char data[]; /* "event: ...\ndata: ...\n\n" */
};

struct gw_sse {
    struct gw_sse *next, *prev;
    struct gw_events *hub;
    char catalog[DYNO_CATALOG_MAX + 1];
    struct gw_sse_ev *head, *tail; /* queued, not yet started */
    int nqueued;
    struct gw_sse_ev *cur; /* being sent */
    size_t off;
    bool overflow; /* lost events: end the stream so the client reconnects */
    bool hello;    /* the opening comment was sent */
    int64_t last_ms;
    /* The grant: whose stream it is, with the token to verify again. */
    struct dyno_claims claims;
    char *token;
    bool recheck;       /* a change that may revoke it happened: check before sending more */
    int64_t checked_ms; /* the last full check */
    int fd;             /* the client's socket, to see it hang up (-1: unknown) */
};

struct gw_events {
    struct gw *gw;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    struct gw_sse *clients;
    int nclients;
    bool stop;
};

/* ---- emitting ---- */

void gw_event_emit(struct gw *gw, const char *type, const char *catalog, const char *key, const char *name,
                   int64_t size, const char *sha256)
{
    cJSON *ev = cJSON_CreateObject();
    cJSON *o = ev ? cJSON_AddObjectToObject(ev, "object") : NULL;
    if (!o || !cJSON_AddStringToObject(ev, "type", type) ||
        !cJSON_AddStringToObject(ev, "catalog", catalog) || !cJSON_AddStringToObject(o, "key", key) ||
        !cJSON_AddStringToObject(o, "name", name ? name : key) || !dyno_json_add_i64(o, "size", size) ||
        !cJSON_AddStringToObject(o, "sha256", sha256 ? sha256 : "")) {
        dyno_warn("event not sent", "type=%s key=%s err=nomem", type, key);
        cJSON_Delete(ev);
        return;
    }
    gw_notify(gw, "pubsub", "event.emit", ev);
    cJSON_Delete(ev);
}

void gw_event_emit_obj(struct gw *gw, const char *type, const cJSON *obj)
{
    const char *key = dyno_json_str(obj, "key");
    const char *catalog = dyno_json_str(obj, "catalog");
    int64_t size = 0;
    if (!key || !catalog || dyno_json_i64(obj, "size", &size)) {
        dyno_warn("event not sent", "type=%s detail=\"object without key, catalog or size\"", type);
        return;
    }
    gw_event_emit(gw, type, catalog, key, dyno_json_str(obj, "name"), size, dyno_json_str(obj, "sha256"));
}

/* ---- the hub ---- */

/* The "event" user property into out, or the payload's "type" member; false when neither
 * is a plausible event type. */
static bool gw_event_type(const struct dyno_mq_msg *msg, char *out, size_t cap)
{
    const mosquitto_property *pr = msg->props;
    char *name = NULL, *value = NULL;
    bool skip = false, found = false;
    while (!found && pr &&
           (pr = mosquitto_property_read_string_pair(pr, MQTT_PROP_USER_PROPERTY, &name, &value, skip)) !=
               NULL) {
        skip = true;
        if (name && value && strcmp(name, "event") == 0 && strlen(value) < cap) {
            memcpy(out, value, strlen(value) + 1);
            found = true;
        }
        free(name);
        free(value);
        name = value = NULL;
    }
    if (!found) {
        cJSON *doc = NULL;
        if (dyno_json_parse(msg->payload, msg->len, GW_SSE_EVENT_MAX, &doc) == 0) {
            const char *t = dyno_json_str(doc, "type");
            if (t && strlen(t) < cap) {
                memcpy(out, t, strlen(t) + 1);
                found = true;
            }
        }
        cJSON_Delete(doc);
    }
    if (!found)
        return false;
    for (const char *c = out; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || *c == '.' || *c == '_'))
            return false;
    return out[0] != '\0';
}

/* MQTT loop thread: copy, queue, wake. Never blocks beyond the hub mutex. */
static void gw_events_on_msg(void *arg, const struct dyno_mq_msg *msg)
{
    struct gw_events *hub = arg;
    size_t plen = sizeof(GW_EVENTS_TOPIC) - 1;
    if (strncmp(msg->topic, GW_EVENTS_TOPIC, plen) != 0 || msg->len == 0 || msg->len > GW_SSE_EVENT_MAX)
        return;
    const char *catalog = msg->topic + plen;
    /* SSE data lines end at a newline: a payload with one would break the framing. */
    if (memchr(msg->payload, '\n', msg->len) || memchr(msg->payload, '\r', msg->len))
        return;
    char type[GW_EVENT_TYPE_MAX];
    if (!gw_event_type(msg, type, sizeof(type)))
        return;

    pthread_mutex_lock(&hub->mu);
    bool woke = false;
    for (struct gw_sse *s = hub->clients; s; s = s->next) {
        if (strcmp(s->catalog, catalog) != 0 || s->overflow)
            continue;
        if (s->nqueued >= GW_SSE_QUEUE_MAX) {
            s->overflow = true;
            woke = true;
            continue;
        }
        size_t cap = strlen(type) + msg->len + 32;
        struct gw_sse_ev *e = malloc(sizeof(*e) + cap);
        if (!e) {
            s->overflow = true;
            woke = true;
            continue;
        }
        int n = snprintf(e->data, cap, "event: %s\ndata: %.*s\n\n", type, (int)msg->len,
                         (const char *)msg->payload);
        e->len = n > 0 && (size_t)n < cap ? (size_t)n : 0;
        e->next = NULL;
        if (s->tail)
            s->tail->next = e;
        else
            s->head = e;
        s->tail = e;
        s->nqueued++;
        woke = true;
    }
    if (woke)
        pthread_cond_broadcast(&hub->cond);
    pthread_mutex_unlock(&hub->mu);
}

int gw_events_start(struct gw *gw)
{
    struct gw_events *hub = calloc(1, sizeof(*hub));
    if (!hub)
        return DYNO_ENOMEM;
    hub->gw = gw;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&hub->mu, NULL);
    pthread_cond_init(&hub->cond, &ca);
    pthread_condattr_destroy(&ca);
    gw->events = hub;
    int rc = dyno_mq_subscribe(gw->mq, GW_EVENTS_TOPIC "#", 1, gw_events_on_msg, hub);
    if (rc)
        dyno_error("cannot subscribe to the catalog events", "err=%s", dyno_err_code(rc));
    return rc;
}

/* True when catalog is changed or lies under it (a policy change there may concern it). */
static bool gw_events_under(const char *catalog, const char *changed)
{
    size_t n = strlen(changed);
    return strncmp(catalog, changed, n) == 0 && (catalog[n] == '\0' || catalog[n] == '/');
}

void gw_events_recheck(struct gw *gw, const char *catalog)
{
    struct gw_events *hub = gw->events;
    if (!hub)
        return;
    bool woke = false;
    pthread_mutex_lock(&hub->mu);
    for (struct gw_sse *s = hub->clients; s; s = s->next) {
        if (catalog == NULL || gw_events_under(s->catalog, catalog)) {
            s->recheck = true;
            woke = true;
        }
    }
    if (woke)
        pthread_cond_broadcast(&hub->cond);
    pthread_mutex_unlock(&hub->mu);
}

void gw_events_stop(struct gw *gw)
{
    struct gw_events *hub = gw->events;
    if (!hub)
        return;
    pthread_mutex_lock(&hub->mu);
    hub->stop = true;
    pthread_cond_broadcast(&hub->cond);
    pthread_mutex_unlock(&hub->mu);
    /* The hub itself stays: the MQTT loop may still call gw_events_on_msg until
     * dyno_mq_free, and open streams unlink themselves until gw_httpd_stop. */
}

void gw_events_free(struct gw *gw)
{
    struct gw_events *hub = gw->events;
    if (!hub)
        return;
    gw->events = NULL;
    pthread_cond_destroy(&hub->cond);
    pthread_mutex_destroy(&hub->mu);
    free(hub);
}

/* ---- one SSE stream ---- */

static void gw_sse_drop_queue(struct gw_sse *s)
{
    free(s->cur);
    s->cur = NULL;
    while (s->head) {
        struct gw_sse_ev *e = s->head;
        s->head = e->next;
        free(e);
    }
    s->tail = NULL;
    s->nqueued = 0;
}

static void gw_sse_free(void *cls)
{
    struct gw_sse *s = cls;
    struct gw_events *hub = s->hub;
    pthread_mutex_lock(&hub->mu);
    if (s->prev)
        s->prev->next = s->next;
    else
        hub->clients = s->next;
    if (s->next)
        s->next->prev = s->prev;
    hub->nclients--;
    gw_sse_drop_queue(s);
    pthread_mutex_unlock(&hub->mu);
    dyno_metric_add(&hub->gw->metrics[GW_M_SSE_CLIENTS], -1);
    if (s->token) {
        gw_wipe(s->token, strlen(s->token));
        free(s->token);
    }
    free(s);
}

static size_t gw_sse_copy(char *buf, size_t max, const char *txt)
{
    size_t n = strlen(txt);
    if (n > max)
        n = max; /* MHD's buffer is far larger than our comments */
    memcpy(buf, txt, n);
    return n;
}

/* True when the client closed its end: its slot is freed at once rather than at the next
 * keep-alive write (a user at max_streams_per_user who closes one may open another). */
static bool gw_sse_hung_up(const struct gw_sse *s)
{
    char b;
    return s->fd >= 0 && recv(s->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* MHD connection thread, hub mutex not held: is the stream still allowed? Verifies the
 * token again and the caller's read access to the catalog on pubsub's current policy. */
static bool gw_sse_still_allowed(struct gw_sse *s)
{
    struct gw *gw = s->hub->gw;
    struct dyno_claims now_claims;
    char msg[400];
    cJSON *cat = NULL;
    const char *why = NULL;

    if (dyno_token_verify(gw->verifier, s->token, (int64_t)time(NULL), &now_claims) != 0) {
        why = "token expired or revoked";
    } else {
        int rc = gw_catalog_get(gw, s->catalog, &cat, msg, sizeof(msg));
        if (rc)
            why = rc == DYNO_ENOTFOUND ? "catalog deleted" : "catalog policy not available";
        else if (!gw_catalog_allows(&s->claims, cat, false))
            why = "read access removed";
        cJSON_Delete(cat);
    }
    if (why)
        dyno_info("event stream closed", "user=%s catalog=%s reason=\"%s\"", s->claims.sub, s->catalog, why);
    return why == NULL;
}

/* MHD connection thread: waits for events (in slices, to notice a shutdown and the token's
 * expiry), checks the grant again when asked to (see the file comment), sends events, or a
 * keep-alive comment after GW_SSE_KEEPALIVE_MS of silence. */
static ssize_t gw_sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct gw_sse *s = cls;
    struct gw_events *hub = s->hub;
    ssize_t out = 0;
    pthread_mutex_lock(&hub->mu);
    if (!s->hello) {
        s->hello = true;
        s->last_ms = gw_now_ms();
        out = (ssize_t)gw_sse_copy(buf, max, "retry: 3000\n: connected\n\n");
        goto done;
    }
    for (;;) {
        if (hub->stop || s->overflow || (int64_t)time(NULL) >= s->claims.exp) {
            out = MHD_CONTENT_READER_END_OF_STREAM;
            goto done;
        }
        if (gw_sse_hung_up(s)) {
            out = MHD_CONTENT_READER_END_WITH_ERROR;
            goto done;
        }
        if (s->recheck || gw_now_ms() - s->checked_ms >= GW_SSE_RECHECK_MS) {
            /* Not under the hub mutex: the check may wait for pubsub. */
            s->recheck = false;
            pthread_mutex_unlock(&hub->mu);
            bool ok = gw_sse_still_allowed(s);
            pthread_mutex_lock(&hub->mu);
            s->checked_ms = gw_now_ms();
            if (!ok) {
                out = MHD_CONTENT_READER_END_OF_STREAM;
                goto done;
            }
            continue;
        }
        if (!s->cur && s->head) {
            s->cur = s->head;
            s->head = s->cur->next;
            if (!s->head)
                s->tail = NULL;
            s->nqueued--;
            s->off = 0;
        }
        if (s->cur)
            break;
        int64_t now = gw_now_ms();
        if (now - s->last_ms >= GW_SSE_KEEPALIVE_MS) {
            s->last_ms = now;
            out = (ssize_t)gw_sse_copy(buf, max, ": keep-alive\n\n");
            goto done;
        }
        int64_t wait = GW_SSE_KEEPALIVE_MS - (now - s->last_ms);
        if (wait > GW_SSE_WAIT_SLICE_MS)
            wait = GW_SSE_WAIT_SLICE_MS;
        struct timespec ts;
        dyno_deadline_in(&ts, CLOCK_MONOTONIC, wait);
        int rc = pthread_cond_timedwait(&hub->cond, &hub->mu, &ts);
        if (rc != 0 && rc != ETIMEDOUT) {
            out = MHD_CONTENT_READER_END_WITH_ERROR;
            goto done;
        }
    }
    size_t n = s->cur->len - s->off;
    if (n > max)
        n = max;
    memcpy(buf, s->cur->data + s->off, n);
    s->off += n;
    if (s->off == s->cur->len) {
        free(s->cur);
        s->cur = NULL;
    }
    s->last_ms = gw_now_ms();
    out = (ssize_t)n;
done:
    pthread_mutex_unlock(&hub->mu);
    return out;
}

enum MHD_Result gw_events_sse(struct gw_req *r)
{
    struct gw *gw = r->gw;
    struct gw_events *hub = gw->events;
    char msg[400];
    int rc = gw_query_arg(r, "catalog", r->catalog, sizeof(r->catalog));
    if (rc == DYNO_ENOTFOUND)
        return gw_reply_error(r, DYNO_EINVAL, "catalog=<owner>/<path> is required");
    if (rc || !dyno_valid_catalog(r->catalog))
        return gw_reply_error(r, DYNO_EINVAL, "bad catalog (owner/segment[/segment...], [A-Za-z0-9._-])");
    if (!hub)
        return gw_reply_error(r, DYNO_EUNAVAIL, "events are not available");
    rc = gw_catalog_check(r, r->catalog, false, NULL, msg, sizeof(msg));
    if (rc)
        return gw_reply_error(r, rc, "%s", msg);

    struct gw_sse *s = calloc(1, sizeof(*s));
    const char *tok = gw_request_token(r, NULL); /* authenticated: present and verified */
    if (!s || !tok || !(s->token = strdup(tok))) {
        free(s);
        return gw_reply_error(r, DYNO_ENOMEM, "out of memory");
    }
    s->hub = hub;
    memcpy(s->catalog, r->catalog, sizeof(s->catalog));
    s->claims = r->claims;
    s->checked_ms = gw_now_ms();
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->c, MHD_CONNECTION_INFO_CONNECTION_FD);
    s->fd = ci ? ci->connect_fd : -1;
    pthread_mutex_lock(&hub->mu);
    int mine = 0;
    for (struct gw_sse *o = hub->clients; o; o = o->next)
        mine += strcmp(o->claims.sub, r->claims.sub) == 0;
    if (mine >= gw->cfg.max_streams_per_user || hub->nclients >= GW_SSE_CLIENTS_MAX || hub->stop) {
        bool per_user = mine >= gw->cfg.max_streams_per_user;
        pthread_mutex_unlock(&hub->mu);
        gw_wipe(s->token, strlen(s->token));
        free(s->token);
        free(s);
        if (per_user)
            return gw_reply_limited(r, GW_SSE_RETRY_AFTER_S,
                                    "%s holds %d event streams already (max_streams_per_user)", r->claims.sub,
                                    mine);
        return gw_reply_error(r, DYNO_EUNAVAIL, "too many event streams (%d); try again later",
                              GW_SSE_CLIENTS_MAX);
    }
    s->next = hub->clients;
    if (s->next)
        s->next->prev = s;
    hub->clients = s;
    hub->nclients++;
    pthread_mutex_unlock(&hub->mu);
    dyno_metric_add(&gw->metrics[GW_M_SSE_CLIENTS], 1);

    /* From here s belongs to the response: gw_sse_free unlinks it. */
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, gw_sse_read, s, gw_sse_free);
    if (!resp) {
        gw_sse_free(s);
        return gw_reply_error(r, DYNO_ENOMEM, "out of memory");
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    return gw_reply_response(r, 200, resp);
}
