/*
 * MQTT v5 client and RPC over libmosquitto (lib/mq.h).
 *
 * Threads
 *   - the loop thread (ours, see mq_loop_main) connects, runs mosquitto_loop() and every
 *     libmosquitto callback: connect, disconnect, message dispatch;
 *   - RPC worker threads (dyno_mq_serve) parse requests, run handlers, publish replies;
 *   - any other thread may publish, subscribe and call.
 *
 * Why our own loop thread instead of mosquitto_loop_start(): libmosquitto 2.0's
 * loop_forever() reconnects with mosquitto_reconnect(), which sends a CONNECT without
 * properties, so a persistent session would silently get a session expiry of 0 at the
 * first reconnect and lose queued QoS 1 events; loop_forever() also gives up for good on
 * some errors (a refused CONNACK, TLS), and we must reconnect forever. Our loop calls
 * mosquitto_connect_bind_v5() with the properties on every attempt and backs off
 * 1 s .. 10 s exponentially, as reconnect_delay_set(1, 10, true) would.
 *
 * mosquitto_connect_bind_v5() re-creates libmosquitto's wake-up socket pair, which other
 * threads write to when they queue a packet; conn_lock (a rwlock) keeps those writers out
 * while a connect is in progress: they take it shared with trylock and report
 * DYNO_EUNAVAIL rather than wait for a TCP connect.
 *
 * Subscriptions carry a v5 Subscription Identifier (one per distinct pattern): mosquitto
 * delivers one copy of a message per matching subscription, and the identifier tells
 * which one, so overlapping patterns never deliver a message twice to the same handler.
 */
#include "mq.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <openssl/rand.h>
#include <sys/socket.h>

#include "clock.h"
#include "dynostore/error.h"
#include "json.h"
#include "log.h"
#include "names.h"

#define MQ_RECONNECT_MIN_S 1
#define MQ_RECONNECT_MAX_S 10
#define MQ_LOOP_TIMEOUT_MS 1000                         /* longest a stop request waits on a silent socket */
#define MQ_SESSION_EXPIRY_S (30 * 24 * 3600)            /* persistent sessions survive a month offline */
#define MQ_PACKET_MAX (DYNO_MQ_PAYLOAD_MAX + 64 * 1024) /* broker drops larger packets to us */
#define MQ_QUEUE_MAX 1024                               /* queued requests per service before overload */
#define MQ_THREADS_MAX 64
#define MQ_CORR_LEN 8
#define MQ_METHOD_MAX 128
#define MQ_TOPIC_MAX 512
#define MQ_ERRMSG_MAX 512
#define MQ_MSG_SIDS_MAX 16 /* subscription identifiers read from one message */

#define MQ_RPC_PREFIX "dyno/v1/rpc/"
#define MQ_REPLY_PREFIX "dyno/v1/reply/"

struct dyno_mq;

/* A registered subscription. The list is append-only until dyno_mq_free, so the loop
 * thread walks it without a lock while other threads append (under mq->lock). */
struct mq_sub {
    _Atomic(struct mq_sub *) next;
    char *pattern;      /* as sent to the broker */
    const char *filter; /* pattern without "$share/<group>/", for topic matching */
    uint32_t sid;       /* Subscription Identifier, shared by equal patterns */
    bool primary;       /* first entry of its pattern: the one that subscribes */
    _Atomic int qos;    /* on the primary: the highest QoS asked for this pattern */
    dyno_mq_msg_fn fn;
    void *arg;
};

/* One outstanding dyno_mq_call, linked in mq->calls while it waits. */
struct mq_call {
    struct mq_call *next;
    uint8_t corr[MQ_CORR_LEN];
    pthread_cond_t cond;
    bool done;
    bool lost;  /* the connection dropped while waiting: the reply can no longer come */
    int status; /* 0: payload holds the reply; else why there is none */
    char *payload;
    size_t len;
};

/* A request copied out of the loop thread for a worker; strings point into the same
 * allocation. resp_topic is NULL for a notification. */
struct mq_job {
    char *method;
    char *payload;
    size_t len;
    char *resp_topic;
    uint8_t *corr;
    uint16_t corrlen;
};

struct mq_service {
    struct mq_service *next; /* in mq->services, under mq->lock */
    struct dyno_mq *mq;
    char *name;
    const struct dyno_rpc_method *methods;
    size_t nmethods;
    void *arg;
    pthread_mutex_t lock; /* guards ring, head, count, stopping */
    pthread_cond_t cond;
    struct mq_job *ring[MQ_QUEUE_MAX];
    size_t head, count;
    bool stopping;
    pthread_t *threads;
    int nthreads;
};

struct dyno_mq {
    struct mosquitto *mosq;
    char *host;
    int port;
    int keepalive;
    char *client_id;
    char reply_topic[MQ_TOPIC_MAX];
    mosquitto_property *connect_props;

    dyno_mq_connect_fn on_connect;
    void *on_connect_arg;

    pthread_rwlock_t conn_lock; /* exclusive while connecting, shared around packet queueing */
    pthread_mutex_t lock;       /* guards everything below */
    pthread_cond_t cond;        /* connected changed, or stopping */
    bool connected;
    bool stopping;
    bool started;
    pthread_t loop_thread;
    unsigned backoff_s; /* loop thread only */

    _Atomic(struct mq_sub *) subs;
    struct mq_sub *subs_tail;
    uint32_t next_sid;
    struct mq_call *calls;
    struct mq_service *services;
    _Atomic uint64_t next_corr;
};

static pthread_once_t mq_lib_once = PTHREAD_ONCE_INIT;
static int mq_lib_rc;

static void mq_lib_init(void)
{
    mq_lib_rc = mosquitto_lib_init();
}

/* The one adapter from libmosquitto errors to ours. */
static int mq_err(int mrc)
{
    switch (mrc) {
    case MOSQ_ERR_SUCCESS:
        return 0;
    case MOSQ_ERR_NOMEM:
        return DYNO_ENOMEM;
    case MOSQ_ERR_INVAL:
    case MOSQ_ERR_MALFORMED_UTF8:
    case MOSQ_ERR_DUPLICATE_PROPERTY:
    case MOSQ_ERR_QOS_NOT_SUPPORTED:
        return DYNO_EINVAL;
    case MOSQ_ERR_NO_CONN:
    case MOSQ_ERR_CONN_LOST:
    case MOSQ_ERR_CONN_REFUSED:
    case MOSQ_ERR_ERRNO:
    case MOSQ_ERR_EAI:
        return DYNO_EUNAVAIL;
    case MOSQ_ERR_PAYLOAD_SIZE:
    case MOSQ_ERR_OVERSIZE_PACKET:
        return DYNO_ETOOBIG;
    case MOSQ_ERR_AUTH:
        return DYNO_EUNAUTH;
    case MOSQ_ERR_ACL_DENIED:
        return DYNO_EFORBIDDEN;
    case MOSQ_ERR_PROTOCOL:
        return DYNO_EPROTO;
    case MOSQ_ERR_TLS:
        return DYNO_EIO;
    default:
        return DYNO_EINTERNAL;
    }
}

static void mq_deadline(struct timespec *ts, int64_t ms)
{
    dyno_deadline_in(ts, CLOCK_MONOTONIC, ms);
}

static int mq_cond_init(pthread_cond_t *c)
{
    pthread_condattr_t a;
    int rc;

    if (pthread_condattr_init(&a) != 0)
        return DYNO_ENOMEM;
    /* Timeouts must not jump with the wall clock. */
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    rc = pthread_cond_init(c, &a) == 0 ? 0 : DYNO_ENOMEM;
    pthread_condattr_destroy(&a);
    return rc;
}

static bool mq_in_loop_thread(struct dyno_mq *mq)
{
    bool in;

    pthread_mutex_lock(&mq->lock);
    in = mq->started && pthread_equal(pthread_self(), mq->loop_thread);
    pthread_mutex_unlock(&mq->lock);
    return in;
}

/* MQTT topic names we publish to and names embedded in topics: no wildcards, no NUL. */
static bool mq_valid_topic_name(const char *t)
{
    return t != NULL && *t != '\0' && strlen(t) < MQ_TOPIC_MAX && strpbrk(t, "+#") == NULL;
}

static bool mq_valid_method(const char *m)
{
    return m != NULL && *m != '\0' && strlen(m) < MQ_METHOD_MAX && strpbrk(m, "/+#") == NULL;
}

/* ---- publishing --------------------------------------------------------------------- */

/* Queues a publish unless a connect holds conn_lock; see the file comment. */
static int mq_publish_raw(struct dyno_mq *mq, const char *topic, const void *payload, size_t len, int qos,
                          bool retain, const mosquitto_property *props)
{
    int mrc;

    if (len > INT_MAX)
        return DYNO_ETOOBIG;
    if (pthread_rwlock_tryrdlock(&mq->conn_lock) != 0)
        return DYNO_EUNAVAIL;
    mrc = mosquitto_publish_v5(mq->mosq, NULL, topic, (int)len, payload, qos, retain, props);
    pthread_rwlock_unlock(&mq->conn_lock);
    return mq_err(mrc);
}

int dyno_mq_publish(struct dyno_mq *mq, const char *topic, const void *payload, size_t len, int qos,
                    bool retain, const char *const *user_props)
{
    mosquitto_property *props = NULL;
    int rc = 0;

    if (mq == NULL || !mq_valid_topic_name(topic) || qos < 0 || qos > 2 || (payload == NULL && len > 0))
        return DYNO_EINVAL;
    if (len > DYNO_MQ_PAYLOAD_MAX)
        return DYNO_ETOOBIG;
    if (!dyno_mq_connected(mq))
        return DYNO_EUNAVAIL;
    for (size_t i = 0; user_props != NULL && user_props[i] != NULL; i += 2) {
        if (user_props[i + 1] == NULL) {
            rc = DYNO_EINVAL;
            goto out;
        }
        rc = mq_err(mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, user_props[i],
                                                       user_props[i + 1]));
        if (rc != 0)
            goto out;
    }
    rc = mq_publish_raw(mq, topic, payload, len, qos, retain, props);
out:
    mosquitto_property_free_all(&props);
    return rc;
}

int dyno_mq_publish_reply(struct dyno_mq *mq, const char *topic, const void *payload, size_t len,
                          const void *corr, size_t corr_len)
{
    mosquitto_property *props = NULL;
    int rc = 0;

    if (mq == NULL || !mq_valid_topic_name(topic) || (payload == NULL && len > 0) ||
        (corr == NULL && corr_len > 0) || corr_len > UINT16_MAX)
        return DYNO_EINVAL;
    if (len > DYNO_MQ_PAYLOAD_MAX)
        return DYNO_ETOOBIG;
    if (!dyno_mq_connected(mq))
        return DYNO_EUNAVAIL;
    if (corr_len > 0) {
        rc = mq_err(
            mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, corr, (uint16_t)corr_len));
        if (rc != 0)
            goto out;
    }
    rc = mq_publish_raw(mq, topic, payload, len, 1, false, props);
out:
    mosquitto_property_free_all(&props);
    return rc;
}

int dyno_mq_abandon(struct dyno_mq *mq)
{
    int fd;

    if (mq == NULL || !mq_in_loop_thread(mq))
        return DYNO_EINVAL;
    /* shutdown, not close: libmosquitto still owns the descriptor and closes it when its
     * next read or write fails, which ends this connection before anything queued leaves. */
    fd = mosquitto_socket(mq->mosq);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    dyno_warn("mq connection abandoned", "client=%s reason=\"unacknowledged messages to come again\"",
              mq->client_id);
    return 0;
}

/* ---- subscriptions ------------------------------------------------------------------ */

/* Sends one SUBSCRIBE for a primary entry. Caller must not hold conn_lock. */
static int mq_send_subscribe(struct dyno_mq *mq, struct mq_sub *s)
{
    mosquitto_property *props = NULL;
    int rc;

    rc = mq_err(mosquitto_property_add_varint(&props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, s->sid));
    if (rc != 0)
        return rc;
    if (pthread_rwlock_tryrdlock(&mq->conn_lock) != 0) {
        rc = DYNO_EUNAVAIL; /* a connect is in progress; its on_connect resubscribes */
    } else {
        rc = mq_err(mosquitto_subscribe_v5(mq->mosq, NULL, s->pattern, atomic_load(&s->qos), 0, props));
        pthread_rwlock_unlock(&mq->conn_lock);
    }
    mosquitto_property_free_all(&props);
    return rc;
}

/* Registers a subscription; *out (may be NULL) gets the primary entry to (re)subscribe
 * now, or NULL when nothing new needs sending. */
static int mq_add_sub(struct dyno_mq *mq, const char *pattern, int qos, dyno_mq_msg_fn fn, void *arg,
                      struct mq_sub **send)
{
    struct mq_sub *s = NULL, *prim = NULL;
    int rc = DYNO_ENOMEM;

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto out;
    s->pattern = strdup(pattern);
    if (s->pattern == NULL)
        goto out;
    s->filter = s->pattern;
    /* "$share/<group>/<filter>": topics match <filter>, never the prefix. */
    if (strncmp(pattern, "$share/", 7) == 0) {
        const char *slash = strchr(pattern + 7, '/');

        if (slash == NULL || slash == pattern + 7 || slash[1] == '\0') {
            rc = DYNO_EINVAL;
            goto out;
        }
        s->filter = s->pattern + (slash + 1 - pattern);
    }
    s->fn = fn;
    s->arg = arg;
    atomic_init(&s->next, NULL);
    atomic_init(&s->qos, qos);

    pthread_mutex_lock(&mq->lock);
    for (struct mq_sub *p = atomic_load(&mq->subs); p != NULL; p = atomic_load(&p->next)) {
        if (p->primary && strcmp(p->pattern, pattern) == 0) {
            prim = p;
            break;
        }
    }
    if (prim != NULL) {
        /* Same pattern again: share its identifier, so one broker subscription feeds
         * both handlers; resubscribe only to raise the QoS. */
        s->sid = prim->sid;
        *send = NULL;
        if (qos > atomic_load(&prim->qos)) {
            atomic_store(&prim->qos, qos);
            *send = prim;
        }
    } else {
        s->sid = mq->next_sid++;
        s->primary = true;
        *send = s;
    }
    if (mq->subs_tail == NULL)
        atomic_store(&mq->subs, s);
    else
        atomic_store(&mq->subs_tail->next, s);
    mq->subs_tail = s;
    if (!mq->connected)
        *send = NULL; /* the next on_connect subscribes everything */
    pthread_mutex_unlock(&mq->lock);
    s = NULL;
    rc = 0;
out:
    if (s != NULL) {
        free(s->pattern);
        free(s);
    }
    return rc;
}

int dyno_mq_subscribe(struct dyno_mq *mq, const char *pattern, int qos, dyno_mq_msg_fn fn, void *arg)
{
    struct mq_sub *send = NULL;
    int rc;

    if (mq == NULL || pattern == NULL || fn == NULL || qos < 0 || qos > 2)
        return DYNO_EINVAL;
    if (mosquitto_sub_topic_check(pattern) != MOSQ_ERR_SUCCESS || strlen(pattern) >= MQ_TOPIC_MAX)
        return DYNO_EINVAL;
    rc = mq_add_sub(mq, pattern, qos, fn, arg, &send);
    if (rc != 0 || send == NULL)
        return rc;
    /* Registered: every (re)connect subscribes it, so a SUBSCRIBE that cannot be sent
     * now (the connection just dropped) is retried then, and is not a failure. */
    rc = mq_send_subscribe(mq, send);
    if (rc != 0)
        dyno_warn("mq subscribe deferred", "client=%s pattern=%s err=%s", mq->client_id, pattern,
                  dyno_err_code(rc));
    return 0;
}

/* Loop thread: hands a message to every subscription it was delivered for. */
static void mq_dispatch(struct dyno_mq *mq, const struct mosquitto_message *m,
                        const mosquitto_property *props)
{
    uint32_t sids[MQ_MSG_SIDS_MAX];
    size_t nsids = 0;
    struct dyno_mq_msg msg = {
        .topic = m->topic,
        .payload = m->payload,
        .len = m->payloadlen > 0 ? (size_t)m->payloadlen : 0,
        .qos = m->qos,
        .retain = m->retain,
        .props = props,
    };

    const mosquitto_property *p =
        mosquitto_property_read_varint(props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, &sids[0], false);
    while (p != NULL && ++nsids < MQ_MSG_SIDS_MAX)
        p = mosquitto_property_read_varint(p, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, &sids[nsids], true);
    for (struct mq_sub *s = atomic_load(&mq->subs); s != NULL; s = atomic_load(&s->next)) {
        bool match = false;

        if (nsids > 0) {
            for (size_t i = 0; i < nsids && !match; i++)
                match = sids[i] == s->sid;
        } else if (mosquitto_topic_matches_sub(s->filter, m->topic, &match) != MOSQ_ERR_SUCCESS) {
            match = false;
        }
        if (match)
            s->fn(s->arg, &msg);
    }
}

/* ---- connection --------------------------------------------------------------------- */

/* Completes every waiting call: the reply can no longer arrive. Whether the request itself
 * reached the service is unknown (it may sit in a socket buffer of either side), so each
 * caller decides from what it knows: dyno_mq_call reports a call it had sent as
 * DYNO_ETIMEDOUT (outcome unknown), never as "not sent". Lock held. */
static void mq_fail_calls(struct dyno_mq *mq)
{
    for (struct mq_call *c = mq->calls; c != NULL; c = c->next) {
        if (!c->done) {
            c->done = true;
            c->lost = true;
            c->status = DYNO_ETIMEDOUT;
            pthread_cond_signal(&c->cond);
        }
    }
}

static void mq_set_disconnected(struct dyno_mq *mq)
{
    pthread_mutex_lock(&mq->lock);
    if (mq->connected && !mq->stopping)
        dyno_warn("mq disconnected", "client=%s", mq->client_id);
    mq->connected = false;
    /* QoS 0 replies on a dropped connection are lost: tell the callers now rather than
     * let them wait for their timeout. */
    mq_fail_calls(mq);
    pthread_cond_broadcast(&mq->cond);
    pthread_mutex_unlock(&mq->lock);
}

static void mq_on_connect_cb(struct mosquitto *mosq, void *obj, int rc, int flags,
                             const mosquitto_property *props)
{
    struct dyno_mq *mq = obj;

    (void)mosq;
    (void)flags;
    (void)props;
    if (rc != 0) {
        dyno_warn("mq connect refused", "client=%s reason=\"%s\"", mq->client_id,
                  mosquitto_reason_string(rc));
        return;
    }
    pthread_mutex_lock(&mq->lock);
    mq->connected = true;
    pthread_cond_broadcast(&mq->cond);
    pthread_mutex_unlock(&mq->lock);
    mq->backoff_s = MQ_RECONNECT_MIN_S;
    dyno_info("mq connected", "client=%s host=%s port=%d", mq->client_id, mq->host, mq->port);

    for (struct mq_sub *s = atomic_load(&mq->subs); s != NULL; s = atomic_load(&s->next)) {
        if (!s->primary)
            continue;
        int src = mq_send_subscribe(mq, s);
        if (src != 0)
            dyno_warn("mq subscribe failed", "client=%s pattern=%s err=%s", mq->client_id, s->pattern,
                      dyno_err_code(src));
    }
    if (mq->on_connect != NULL)
        mq->on_connect(mq->on_connect_arg, mq);
}

static void mq_on_disconnect_cb(struct mosquitto *mosq, void *obj, int rc, const mosquitto_property *props)
{
    (void)mosq;
    (void)rc;
    (void)props;
    mq_set_disconnected(obj);
}

static void mq_on_message_cb(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m,
                             const mosquitto_property *props)
{
    (void)mosq;
    if (m == NULL || m->topic == NULL)
        return;
    mq_dispatch(obj, m, props);
}

static bool mq_is_stopping(struct dyno_mq *mq)
{
    bool s;

    pthread_mutex_lock(&mq->lock);
    s = mq->stopping;
    pthread_mutex_unlock(&mq->lock);
    return s;
}

/* Loop thread, stopping while connected: sends DISCONNECT (reason 0, so the broker drops
 * the Will) and runs the loop until the packet is out and the socket closed, bounded so a
 * dead broker cannot hold dyno_mq_free. Done here, not in dyno_mq_free, because only
 * the loop thread writes the socket: queued but unwritten, the DISCONNECT would be lost
 * and the broker would publish the Will of an agent that shut down cleanly. */
static void mq_say_goodbye(struct dyno_mq *mq)
{
    struct timespec end, now;
    int mrc = mosquitto_disconnect_v5(mq->mosq, 0, NULL);

    mq_deadline(&end, MQ_LOOP_TIMEOUT_MS);
    while (mrc == MOSQ_ERR_SUCCESS) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec))
            break;
        mrc = mosquitto_loop(mq->mosq, 100, 1);
    }
}

static void *mq_loop_main(void *p)
{
    struct dyno_mq *mq = p;
    bool warned = false;

    mq->backoff_s = MQ_RECONNECT_MIN_S;
    while (!mq_is_stopping(mq)) {
        int mrc;
        struct timespec ts;

        pthread_rwlock_wrlock(&mq->conn_lock);
        mrc = mosquitto_connect_bind_v5(mq->mosq, mq->host, mq->port, mq->keepalive, NULL, mq->connect_props);
        pthread_rwlock_unlock(&mq->conn_lock);
        if (mrc == MOSQ_ERR_SUCCESS) {
            warned = false;
            while (mrc == MOSQ_ERR_SUCCESS && !mq_is_stopping(mq))
                mrc = mosquitto_loop(mq->mosq, MQ_LOOP_TIMEOUT_MS, 1);
            if (mrc == MOSQ_ERR_SUCCESS)
                mq_say_goodbye(mq);
        } else if (!warned) {
            /* Once per outage: the broker being down is logged, not every retry. */
            dyno_warn("mq cannot connect", "client=%s host=%s port=%d err=\"%s\"", mq->client_id, mq->host,
                      mq->port, mosquitto_strerror(mrc));
            warned = true;
        }
        mq_set_disconnected(mq);

        mq_deadline(&ts, (int64_t)mq->backoff_s * 1000);
        pthread_mutex_lock(&mq->lock);
        while (!mq->stopping && pthread_cond_timedwait(&mq->cond, &mq->lock, &ts) != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&mq->lock);
        mq->backoff_s = mq->backoff_s * 2 > MQ_RECONNECT_MAX_S ? MQ_RECONNECT_MAX_S : mq->backoff_s * 2;
    }
    return NULL;
}

/* ---- RPC client --------------------------------------------------------------------- */

/* Loop thread: a reply on our reply topic; wakes the caller waiting for its id. */
static void mq_on_reply(void *arg, const struct dyno_mq_msg *msg)
{
    struct dyno_mq *mq = arg;
    void *corr = NULL;
    uint16_t corrlen = 0;

    if (mosquitto_property_read_binary(msg->props, MQTT_PROP_CORRELATION_DATA, &corr, &corrlen, false) ==
        NULL)
        return;
    pthread_mutex_lock(&mq->lock);
    for (struct mq_call *c = mq->calls; c != NULL; c = c->next) {
        if (c->done || corrlen != MQ_CORR_LEN || memcmp(c->corr, corr, MQ_CORR_LEN) != 0)
            continue;
        c->done = true;
        if (msg->len > DYNO_MQ_PAYLOAD_MAX) {
            c->status = DYNO_ETOOBIG;
        } else {
            c->payload = malloc(msg->len + 1);
            c->status = c->payload != NULL ? 0 : DYNO_ENOMEM;
            if (c->payload != NULL) {
                if (msg->len > 0)
                    memcpy(c->payload, msg->payload, msg->len);
                c->payload[msg->len] = '\0';
                c->len = msg->len;
            }
        }
        pthread_cond_signal(&c->cond);
        break;
    }
    pthread_mutex_unlock(&mq->lock);
    free(corr); /* read_binary hands us a copy */
}

/* Reads the reply envelope: 0 with *result (when asked), the remote code with its
 * message, or DYNO_EPROTO when the envelope is not what lib/mq.h promises. */
static int mq_parse_reply(const char *payload, size_t len, cJSON **result, char *errmsg, size_t errlen)
{
    cJSON *j = NULL, *ok, *e;
    int rc = DYNO_EPROTO;

    if (dyno_json_parse(payload, len, DYNO_MQ_PAYLOAD_MAX, &j) != 0 || !cJSON_IsObject(j))
        goto out;
    ok = cJSON_GetObjectItemCaseSensitive(j, "ok");
    if (cJSON_IsTrue(ok)) {
        if (result != NULL) {
            cJSON *r = cJSON_DetachItemFromObjectCaseSensitive(j, "result");

            *result = r != NULL ? r : cJSON_CreateObject();
            if (*result == NULL) {
                rc = DYNO_ENOMEM;
                goto out;
            }
        }
        rc = 0;
    } else if (cJSON_IsFalse(ok)) {
        e = cJSON_GetObjectItemCaseSensitive(j, "error");
        const char *code = dyno_json_str(e, "code"), *m = dyno_json_str(e, "message");

        if (code == NULL)
            goto out;
        rc = dyno_err_from_code(code);
        if (rc == DYNO_OK)
            rc = DYNO_EPROTO; /* an error reply that claims success is nonsense */
        if (errmsg != NULL && errlen > 0)
            snprintf(errmsg, errlen, "%s", m != NULL ? m : dyno_strerror(rc));
        goto out;
    }
out:
    if (rc == DYNO_EPROTO && errmsg != NULL && errlen > 0 && errmsg[0] == '\0')
        snprintf(errmsg, errlen, "malformed reply");
    cJSON_Delete(j);
    return rc;
}

static void mq_unlink_call(struct dyno_mq *mq, struct mq_call *call)
{
    for (struct mq_call **pp = &mq->calls; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == call) {
            *pp = call->next;
            return;
        }
    }
}

/* Publishes a request; call (may be NULL: notification) gets the Response Topic and its
 * Correlation Data. */
static int mq_send_request(struct dyno_mq *mq, const char *service, const char *method, const cJSON *params,
                           const struct mq_call *call)
{
    char topic[MQ_TOPIC_MAX];
    mosquitto_property *props = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = DYNO_ENOMEM;

    if (snprintf(topic, sizeof(topic), MQ_RPC_PREFIX "%s/%s", service, method) >= (int)sizeof(topic))
        return DYNO_EINVAL;
    text = params != NULL ? dyno_json_print(params, &len) : strdup("{}");
    if (text == NULL)
        goto out;
    if (params == NULL)
        len = 2;
    if (len > DYNO_MQ_PAYLOAD_MAX) {
        rc = DYNO_ETOOBIG;
        goto out;
    }
    if (call != NULL) {
        rc = mq_err(mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, mq->reply_topic));
        if (rc == 0)
            rc = mq_err(
                mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, call->corr, MQ_CORR_LEN));
        if (rc != 0)
            goto out;
    }
    rc = mq_publish_raw(mq, topic, text, len, 0, false, props);
out:
    mosquitto_property_free_all(&props);
    free(text);
    return rc;
}

/* waits: the caller blocks for a reply, which the loop thread must deliver, so waiting
 * in the loop thread itself would only ever end in a timeout. */
static int mq_check_call(struct dyno_mq *mq, const char *service, const char *method, bool waits)
{
    if (mq == NULL || service == NULL || !dyno_valid_segment(service) || !mq_valid_method(method))
        return DYNO_EINVAL;
    if (waits && mq_in_loop_thread(mq))
        return DYNO_EINVAL;
    if (!dyno_mq_connected(mq))
        return DYNO_EUNAVAIL;
    return 0;
}

int dyno_mq_call(struct dyno_mq *mq, const char *service, const char *method, const cJSON *params,
                 int timeout_ms, cJSON **result, char *errmsg, size_t errlen)
{
    struct mq_call *call = NULL;
    struct timespec ts;
    uint64_t id;
    int rc;

    if (errmsg != NULL && errlen > 0)
        errmsg[0] = '\0';
    if (result != NULL)
        *result = NULL;
    if (timeout_ms < 0)
        return DYNO_EINVAL;
    rc = mq_check_call(mq, service, method, true);
    if (rc != 0) {
        if (errmsg != NULL && errlen > 0)
            snprintf(errmsg, errlen, "%s.%s: not sent: %s", service != NULL ? service : "-",
                     method != NULL ? method : "-",
                     rc == DYNO_EUNAVAIL ? "no broker connection" : dyno_strerror(rc));
        return rc;
    }

    call = calloc(1, sizeof(*call));
    if (call == NULL)
        return DYNO_ENOMEM;
    if (mq_cond_init(&call->cond) != 0) {
        free(call);
        return DYNO_ENOMEM;
    }
    id = atomic_fetch_add(&mq->next_corr, 1);
    for (int i = 0; i < MQ_CORR_LEN; i++)
        call->corr[i] = (uint8_t)(id >> (8 * (MQ_CORR_LEN - 1 - i)));

    /* Registered before publishing: the reply may beat the publish call's return. */
    pthread_mutex_lock(&mq->lock);
    call->next = mq->calls;
    mq->calls = call;
    pthread_mutex_unlock(&mq->lock);

    rc = mq_send_request(mq, service, method, params, call);

    mq_deadline(&ts, timeout_ms);
    pthread_mutex_lock(&mq->lock);
    while (rc == 0 && !call->done) {
        if (pthread_cond_timedwait(&call->cond, &mq->lock, &ts) == ETIMEDOUT && !call->done)
            rc = DYNO_ETIMEDOUT;
    }
    mq_unlink_call(mq, call);
    pthread_mutex_unlock(&mq->lock);
    /* rc != 0 before the wait: the request was not sent (DYNO_EUNAVAIL and friends). From
     * here on it was: no answer means the service may or may not have acted on it. */
    if (rc == 0)
        rc = call->status;
    if (rc == 0) {
        rc = mq_parse_reply(call->payload, call->len, result, errmsg, errlen);
    } else if (rc == DYNO_ETIMEDOUT && errmsg != NULL && errlen > 0) {
        snprintf(errmsg, errlen, "%s.%s: %s; the request was sent, its outcome is unknown", service, method,
                 call->lost ? "broker connection lost before the answer" : "no answer in time");
    } else if (errmsg != NULL && errlen > 0 && errmsg[0] == '\0') {
        snprintf(errmsg, errlen, "%s.%s: not sent: %s", service, method,
                 rc == DYNO_EUNAVAIL ? "no broker connection" : dyno_strerror(rc));
    }

    pthread_cond_destroy(&call->cond);
    free(call->payload);
    free(call);
    return rc;
}

int dyno_mq_notify(struct dyno_mq *mq, const char *service, const char *method, const cJSON *params)
{
    int rc = mq_check_call(mq, service, method, false);

    if (rc != 0)
        return rc;
    return mq_send_request(mq, service, method, params, NULL);
}

/* ---- RPC server --------------------------------------------------------------------- */

/* Publishes a reply envelope for job; used by workers and, for refusals, by the loop
 * thread. Takes result (may be NULL). */
static void mq_send_reply(struct dyno_mq *mq, const char *resp_topic, const void *corr, uint16_t corrlen,
                          int rc, cJSON *result, const char *errmsg)
{
    mosquitto_property *props = NULL;
    cJSON *env = NULL, *e;
    char *text = NULL;
    size_t len = 0;

    env = cJSON_CreateObject();
    if (env == NULL)
        goto out;
    if (rc == 0) {
        if (result == NULL)
            result = cJSON_CreateObject();
        if (result == NULL || cJSON_AddBoolToObject(env, "ok", true) == NULL)
            goto out;
        cJSON_AddItemToObject(env, "result", result);
        result = NULL;
    } else {
        if (cJSON_AddBoolToObject(env, "ok", false) == NULL ||
            (e = cJSON_AddObjectToObject(env, "error")) == NULL ||
            cJSON_AddStringToObject(e, "code", dyno_err_code(rc)) == NULL ||
            cJSON_AddStringToObject(e, "message",
                                    errmsg != NULL && *errmsg != '\0' ? errmsg : dyno_strerror(rc)) == NULL)
            goto out;
    }
    text = dyno_json_print(env, &len);
    if (text == NULL)
        goto out;
    if (len > DYNO_MQ_PAYLOAD_MAX) {
        /* The caller could not take it anyway; tell it why instead of timing it out. */
        free(text);
        text = NULL;
        mq_send_reply(mq, resp_topic, corr, corrlen, DYNO_ETOOBIG, NULL, "reply too large");
        goto out;
    }
    if (corrlen > 0 && mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, corr, corrlen) != 0)
        goto out;
    if (mq_publish_raw(mq, resp_topic, text, len, 0, false, props) != 0)
        dyno_debug("mq reply not sent", "client=%s topic=%s", mq->client_id, resp_topic);
out:
    mosquitto_property_free_all(&props);
    free(text);
    cJSON_Delete(result);
    cJSON_Delete(env);
}

static void mq_run_job(struct mq_service *svc, struct mq_job *job)
{
    const struct dyno_rpc_method *m = NULL;
    cJSON *req = NULL, *result = NULL;
    char errmsg[MQ_ERRMSG_MAX] = "";
    int rc;

    for (size_t i = 0; i < svc->nmethods && m == NULL; i++)
        if (strcmp(svc->methods[i].name, job->method) == 0)
            m = &svc->methods[i];
    if (job->len == 0)
        rc = dyno_json_parse("{}", 2, 2, &req);
    else
        rc = dyno_json_parse(job->payload, job->len, DYNO_MQ_PAYLOAD_MAX, &req);
    if (rc != 0) {
        snprintf(errmsg, sizeof(errmsg), "params are not valid JSON");
    } else if (!cJSON_IsObject(req)) {
        rc = DYNO_EINVAL;
        snprintf(errmsg, sizeof(errmsg), "params must be a JSON object");
    } else if (m == NULL) {
        rc = DYNO_ENOTFOUND;
        snprintf(errmsg, sizeof(errmsg), "no method %s in service %s", job->method, svc->name);
    } else {
        rc = m->fn(svc->arg, req, &result, errmsg, sizeof(errmsg));
        errmsg[sizeof(errmsg) - 1] = '\0';
        if (rc > 0)
            rc = DYNO_EINTERNAL; /* handlers return 0 or a negative code */
        if (rc != 0) {
            cJSON_Delete(result);
            result = NULL;
        }
    }
    if (job->resp_topic != NULL)
        mq_send_reply(svc->mq, job->resp_topic, job->corr, job->corrlen, rc, result, errmsg);
    else
        cJSON_Delete(result);
    cJSON_Delete(req);
}

static void *mq_worker_main(void *p)
{
    struct mq_service *svc = p;

    for (;;) {
        struct mq_job *job;

        pthread_mutex_lock(&svc->lock);
        while (svc->count == 0 && !svc->stopping)
            pthread_cond_wait(&svc->cond, &svc->lock);
        if (svc->stopping) {
            pthread_mutex_unlock(&svc->lock);
            break;
        }
        job = svc->ring[svc->head];
        svc->head = (svc->head + 1) % MQ_QUEUE_MAX;
        svc->count--;
        pthread_mutex_unlock(&svc->lock);
        mq_run_job(svc, job);
        free(job);
    }
    return NULL;
}

/* Loop thread: copies a request into the service's queue; never blocks. */
static void mq_on_request(void *arg, const struct dyno_mq_msg *msg)
{
    struct mq_service *svc = arg;
    struct dyno_mq *mq = svc->mq;
    char *resp = NULL;
    void *corr = NULL;
    uint16_t corrlen = 0;
    const char *method;
    size_t mlen, rlen = 0;
    struct mq_job *job = NULL;
    bool queued = false;

    mosquitto_property_read_string(msg->props, MQTT_PROP_RESPONSE_TOPIC, &resp, false);
    mosquitto_property_read_binary(msg->props, MQTT_PROP_CORRELATION_DATA, &corr, &corrlen, false);
    if (resp != NULL && !mq_valid_topic_name(resp)) {
        free(resp);
        resp = NULL; /* nowhere valid to answer: treat as a notification */
    }
    method = strrchr(msg->topic, '/');
    method = method != NULL ? method + 1 : msg->topic;
    mlen = strlen(method);
    if (!mq_valid_method(method)) {
        if (resp != NULL)
            mq_send_reply(mq, resp, corr, corrlen, DYNO_EINVAL, NULL, "bad method name");
        goto out;
    }
    if (msg->len > DYNO_MQ_PAYLOAD_MAX) {
        if (resp != NULL)
            mq_send_reply(mq, resp, corr, corrlen, DYNO_ETOOBIG, NULL, "request too large");
        goto out;
    }
    if (resp != NULL)
        rlen = strlen(resp) + 1;
    job = malloc(sizeof(*job) + mlen + 1 + msg->len + 1 + rlen + corrlen);
    if (job == NULL) {
        if (resp != NULL)
            mq_send_reply(mq, resp, corr, corrlen, DYNO_EUNAVAIL, NULL, "out of memory");
        goto out;
    }
    char *p = (char *)(job + 1);
    job->method = p;
    memcpy(p, method, mlen + 1);
    p += mlen + 1;
    job->payload = p;
    if (msg->len > 0)
        memcpy(p, msg->payload, msg->len);
    p[msg->len] = '\0';
    job->len = msg->len;
    p += msg->len + 1;
    job->resp_topic = NULL;
    if (resp != NULL) {
        job->resp_topic = p;
        memcpy(p, resp, rlen);
        p += rlen;
    }
    job->corr = (uint8_t *)p;
    job->corrlen = corrlen;
    if (corrlen > 0)
        memcpy(p, corr, corrlen);

    pthread_mutex_lock(&svc->lock);
    if (svc->count < MQ_QUEUE_MAX && !svc->stopping) {
        svc->ring[(svc->head + svc->count) % MQ_QUEUE_MAX] = job;
        svc->count++;
        queued = true;
        pthread_cond_signal(&svc->cond);
    }
    pthread_mutex_unlock(&svc->lock);
    if (!queued) {
        /* Overloaded: answer at once so the caller can back off or try a replica. */
        if (resp != NULL)
            mq_send_reply(mq, resp, corr, corrlen, DYNO_EUNAVAIL, NULL, "service overloaded");
        free(job);
    }
out:
    free(resp);
    free(corr);
}

static void mq_service_free(struct mq_service *svc)
{
    if (svc == NULL)
        return;
    pthread_mutex_lock(&svc->lock);
    svc->stopping = true;
    pthread_cond_broadcast(&svc->cond);
    pthread_mutex_unlock(&svc->lock);
    for (int i = 0; i < svc->nthreads; i++)
        pthread_join(svc->threads[i], NULL);
    for (size_t i = 0; i < svc->count; i++)
        free(svc->ring[(svc->head + i) % MQ_QUEUE_MAX]);
    pthread_cond_destroy(&svc->cond);
    pthread_mutex_destroy(&svc->lock);
    free(svc->threads);
    free(svc->name);
    free(svc);
}

int dyno_mq_serve(struct dyno_mq *mq, const char *service, const struct dyno_rpc_method *methods,
                  size_t nmethods, void *arg, int nthreads)
{
    char pattern[MQ_TOPIC_MAX];
    struct mq_service *svc = NULL;
    bool dup = false;
    int rc = DYNO_ENOMEM;

    if (mq == NULL || service == NULL || !dyno_valid_segment(service) || (methods == NULL && nmethods > 0) ||
        nthreads < 1 || nthreads > MQ_THREADS_MAX)
        return DYNO_EINVAL;
    for (size_t i = 0; i < nmethods; i++)
        if (!mq_valid_method(methods[i].name) || methods[i].fn == NULL)
            return DYNO_EINVAL;
    snprintf(pattern, sizeof(pattern), "$share/%s/" MQ_RPC_PREFIX "%s/+", service, service);

    svc = calloc(1, sizeof(*svc));
    if (svc == NULL)
        return DYNO_ENOMEM;
    svc->mq = mq;
    svc->methods = methods;
    svc->nmethods = nmethods;
    svc->arg = arg;
    svc->name = strdup(service);
    svc->threads = calloc((size_t)nthreads, sizeof(pthread_t));
    pthread_mutex_init(&svc->lock, NULL);
    pthread_cond_init(&svc->cond, NULL);
    if (svc->name == NULL || svc->threads == NULL)
        goto out;
    for (; svc->nthreads < nthreads; svc->nthreads++) {
        if (pthread_create(&svc->threads[svc->nthreads], NULL, mq_worker_main, svc) != 0) {
            rc = DYNO_EINTERNAL;
            goto out;
        }
    }
    pthread_mutex_lock(&mq->lock);
    for (struct mq_service *s = mq->services; s != NULL; s = s->next)
        dup = dup || strcmp(s->name, service) == 0;
    if (!dup) {
        svc->next = mq->services;
        mq->services = svc;
    }
    pthread_mutex_unlock(&mq->lock);
    /* A second server of the same service in one process would run every request twice. */
    if (dup) {
        rc = DYNO_EEXIST;
        goto out;
    }
    /* Fails only when nothing was registered, so svc can still be taken back. */
    rc = dyno_mq_subscribe(mq, pattern, 0, mq_on_request, svc);
    if (rc == 0)
        return 0;
    pthread_mutex_lock(&mq->lock);
    for (struct mq_service **pp = &mq->services; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == svc) {
            *pp = svc->next;
            break;
        }
    }
    pthread_mutex_unlock(&mq->lock);
out:
    mq_service_free(svc);
    return rc;
}

/* ---- lifecycle ---------------------------------------------------------------------- */

int dyno_mq_new(const struct dyno_mq_opts *o, struct dyno_mq **out)
{
    struct dyno_mq *mq = NULL;
    struct mq_sub *unused = NULL;
    uint64_t corr0 = 0;
    int rc = DYNO_EINVAL;

    if (o == NULL || out == NULL || o->client_id == NULL || !dyno_valid_segment(o->client_id))
        return DYNO_EINVAL;
    if (o->port < 0 || o->port > 65535 || o->keepalive < 0 || (o->keepalive > 0 && o->keepalive < 5) ||
        o->receive_max < 0 || o->receive_max > 65535 ||
        (o->will_topic != NULL && !mq_valid_topic_name(o->will_topic)))
        return DYNO_EINVAL;
    pthread_once(&mq_lib_once, mq_lib_init);
    if (mq_lib_rc != MOSQ_ERR_SUCCESS)
        return DYNO_EINTERNAL;

    mq = calloc(1, sizeof(*mq));
    if (mq == NULL)
        return DYNO_ENOMEM;
    pthread_mutex_init(&mq->lock, NULL);
    pthread_rwlock_init(&mq->conn_lock, NULL);
    if (mq_cond_init(&mq->cond) != 0) {
        pthread_rwlock_destroy(&mq->conn_lock);
        pthread_mutex_destroy(&mq->lock);
        free(mq);
        return DYNO_ENOMEM;
    }
    mq->port = o->port > 0 ? o->port : 1883;
    mq->keepalive = o->keepalive > 0 ? o->keepalive : 10;
    mq->next_sid = 1;
    /* A random start keeps correlation ids of a restarted client apart from replies
     * still in flight for its previous life. */
    if (RAND_bytes((unsigned char *)&corr0, sizeof(corr0)) != 1)
        corr0 = (uint64_t)time(NULL) << 20;
    atomic_init(&mq->next_corr, corr0);
    atomic_init(&mq->subs, NULL);

    rc = DYNO_ENOMEM;
    mq->host = strdup(o->host != NULL ? o->host : "127.0.0.1");
    mq->client_id = strdup(o->client_id);
    if (mq->host == NULL || mq->client_id == NULL)
        goto out;
    snprintf(mq->reply_topic, sizeof(mq->reply_topic), MQ_REPLY_PREFIX "%s", o->client_id);

    mq->mosq = mosquitto_new(o->client_id, !o->persistent, mq);
    if (mq->mosq == NULL)
        goto out;
    rc = mq_err(mosquitto_int_option(mq->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5));
    if (rc == 0) /* RPC is many tiny packets each way: never let Nagle hold one back */
        rc = mq_err(mosquitto_int_option(mq->mosq, MOSQ_OPT_TCP_NODELAY, 1));
    if (rc == 0)
        rc = mq_err(mosquitto_threaded_set(mq->mosq, true));
    if (rc == 0 && (o->username != NULL || o->password != NULL))
        rc = mq_err(mosquitto_username_pw_set(mq->mosq, o->username, o->password));
    if (rc == 0 && o->cafile != NULL)
        rc = mq_err(mosquitto_tls_set(mq->mosq, o->cafile, NULL, NULL, NULL, NULL));
    if (rc == 0 && o->will_topic != NULL) {
        const char *wp = o->will_payload != NULL ? o->will_payload : "";
        size_t wlen = strlen(wp);

        rc = wlen > INT_MAX
                 ? DYNO_ETOOBIG
                 : mq_err(mosquitto_will_set_v5(mq->mosq, o->will_topic, (int)wlen, wp, 1, true, NULL));
    }
    /* Sizes are checked before allocating: the broker will not send us anything bigger. */
    if (rc == 0)
        rc = mq_err(
            mosquitto_property_add_int32(&mq->connect_props, MQTT_PROP_MAXIMUM_PACKET_SIZE, MQ_PACKET_MAX));
    if (rc == 0 && o->persistent)
        rc = mq_err(mosquitto_property_add_int32(&mq->connect_props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                                 MQ_SESSION_EXPIRY_S));
    /* Flow control: the broker keeps what we cannot take yet instead of sending it. */
    if (rc == 0 && o->receive_max > 0)
        rc = mq_err(mosquitto_property_add_int16(&mq->connect_props, MQTT_PROP_RECEIVE_MAXIMUM,
                                                 (uint16_t)o->receive_max));
    if (rc != 0)
        goto out;
    mosquitto_connect_v5_callback_set(mq->mosq, mq_on_connect_cb);
    mosquitto_disconnect_v5_callback_set(mq->mosq, mq_on_disconnect_cb);
    mosquitto_message_v5_callback_set(mq->mosq, mq_on_message_cb);

    rc = mq_add_sub(mq, mq->reply_topic, 0, mq_on_reply, mq, &unused);
    if (rc != 0)
        goto out;
    *out = mq;
    mq = NULL;
out:
    dyno_mq_free(mq);
    return rc;
}

void dyno_mq_on_connect(struct dyno_mq *mq, dyno_mq_connect_fn fn, void *arg)
{
    if (mq == NULL)
        return;
    mq->on_connect = fn;
    mq->on_connect_arg = arg;
}

int dyno_mq_start(struct dyno_mq *mq)
{
    int rc = 0;

    if (mq == NULL)
        return DYNO_EINVAL;
    pthread_mutex_lock(&mq->lock);
    if (mq->started)
        rc = DYNO_EEXIST;
    else if (pthread_create(&mq->loop_thread, NULL, mq_loop_main, mq) != 0)
        rc = DYNO_EINTERNAL;
    else
        mq->started = true;
    pthread_mutex_unlock(&mq->lock);
    return rc;
}

int dyno_mq_wait_connected(struct dyno_mq *mq, int timeout_ms)
{
    struct timespec ts;
    int rc = 0;

    if (mq == NULL || timeout_ms < 0)
        return DYNO_EINVAL;
    mq_deadline(&ts, timeout_ms);
    pthread_mutex_lock(&mq->lock);
    while (!mq->connected && rc == 0)
        if (pthread_cond_timedwait(&mq->cond, &mq->lock, &ts) == ETIMEDOUT && !mq->connected)
            rc = DYNO_ETIMEDOUT;
    pthread_mutex_unlock(&mq->lock);
    return rc;
}

bool dyno_mq_connected(struct dyno_mq *mq)
{
    bool c;

    if (mq == NULL)
        return false;
    pthread_mutex_lock(&mq->lock);
    c = mq->connected;
    pthread_mutex_unlock(&mq->lock);
    return c;
}

const char *dyno_mq_client_id(const struct dyno_mq *mq)
{
    return mq != NULL ? mq->client_id : NULL;
}

void dyno_mq_free(struct dyno_mq *mq)
{
    bool started;

    if (mq == NULL)
        return;
    pthread_mutex_lock(&mq->lock);
    mq->stopping = true;
    started = mq->started;
    pthread_cond_broadcast(&mq->cond);
    pthread_mutex_unlock(&mq->lock);
    if (started) {
        /* Queueing a DISCONNECT wakes the loop thread at once (mq_say_goodbye makes sure it
         * goes out). Waits for a connect in progress, which cannot be interrupted. */
        pthread_rwlock_rdlock(&mq->conn_lock);
        mosquitto_disconnect_v5(mq->mosq, 0, NULL);
        pthread_rwlock_unlock(&mq->conn_lock);
        pthread_join(mq->loop_thread, NULL);
    }
    /* No more requests arrive now; workers finish their current job and exit. */
    while (mq->services != NULL) {
        struct mq_service *s = mq->services;

        mq->services = s->next;
        mq_service_free(s);
    }
    pthread_mutex_lock(&mq->lock);
    mq_fail_calls(mq);
    pthread_mutex_unlock(&mq->lock);
    for (struct mq_sub *s = atomic_load(&mq->subs); s != NULL;) {
        struct mq_sub *next = atomic_load(&s->next);

        free(s->pattern);
        free(s);
        s = next;
    }
    if (mq->mosq != NULL)
        mosquitto_destroy(mq->mosq);
    mosquitto_property_free_all(&mq->connect_props);
    pthread_cond_destroy(&mq->cond);
    pthread_rwlock_destroy(&mq->conn_lock);
    pthread_mutex_destroy(&mq->lock);
    free(mq->host);
    free(mq->client_id);
    free(mq);
}
