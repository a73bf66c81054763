/*
 * MQTT v5 client for agents (over libmosquitto, threaded loop) with request/response RPC.
 *
 * Connection: connects asynchronously and reconnects forever (1 s .. 10 s back-off); on
 * every (re)connect it re-subscribes everything registered with dyno_mq_subscribe and
 * dyno_mq_serve, then calls the on_connect hook (for republishing retained status).
 *
 * RPC: a request is published to dyno/v1/rpc/<service>/<method> (QoS 0) with the v5
 * Response Topic dyno/v1/reply/<client-id> and 8 bytes of Correlation Data; the payload is
 * the params object as JSON. Services subscribe to $share/<service>/dyno/v1/rpc/<service>/+
 * so replicas share the load. The reply payload is
 *   {"ok":true,"result":{...}}  or  {"ok":false,"error":{"code":"not_found","message":"..."}}
 * A request without a Response Topic is a notification: the handler runs, nothing is sent.
 *
 * Threads: message handlers registered with dyno_mq_subscribe run in the libmosquitto loop
 * thread and must not block. RPC handlers run in the service's worker threads. dyno_mq_call
 * and dyno_mq_publish may be called from any thread except the loop thread.
 */
#ifndef DYNO_MQ_H
#define DYNO_MQ_H
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#define DYNO_MQ_PAYLOAD_MAX (4 * 1024 * 1024) /* RPC payloads larger than this are refused */

struct dyno_mq;

struct dyno_mq_opts {
    const char *host;         /* default 127.0.0.1 */
    int port;                 /* default 1883 */
    const char *client_id;    /* required: [A-Za-z0-9._-], no + # / */
    const char *username;     /* may be NULL */
    const char *password;     /* a token; may be NULL; never logged */
    const char *cafile;       /* non-NULL: TLS, verify the broker against this CA */
    const char *will_topic;   /* may be NULL */
    const char *will_payload; /* retained, QoS 1 */
    int keepalive;            /* seconds, default 10 */
    bool persistent;          /* keep the session across reconnects (clean start off, long expiry) */
    int receive_max;          /* v5 Receive Maximum: QoS 1/2 messages the broker may send us
                                 unacknowledged; 0 = the protocol default (65535) */
};

struct dyno_mq_msg {
    const char *topic;
    const void *payload;
    size_t len;
    int qos;
    bool retain;
    const void *props; /* const mosquitto_property *; read with mosquitto_property_read_* */
};

typedef void (*dyno_mq_msg_fn)(void *arg, const struct dyno_mq_msg *msg);
typedef void (*dyno_mq_connect_fn)(void *arg, struct dyno_mq *mq);

int dyno_mq_new(const struct dyno_mq_opts *o, struct dyno_mq **out);
/* Stops the loop, disconnects (no Will), frees. NULL is a no-op. */
void dyno_mq_free(struct dyno_mq *mq);
/* Set before dyno_mq_start. Runs in the loop thread after re-subscribing. */
void dyno_mq_on_connect(struct dyno_mq *mq, dyno_mq_connect_fn fn, void *arg);
/* pattern may contain + and #; remembered for reconnects. Before or after start. */
int dyno_mq_subscribe(struct dyno_mq *mq, const char *pattern, int qos, dyno_mq_msg_fn fn, void *arg);
/* Starts the loop thread and the first connection attempt; returns at once. */
int dyno_mq_start(struct dyno_mq *mq);
/* 0 once connected, DYNO_ETIMEDOUT after timeout_ms. */
int dyno_mq_wait_connected(struct dyno_mq *mq, int timeout_ms);
bool dyno_mq_connected(struct dyno_mq *mq);
const char *dyno_mq_client_id(const struct dyno_mq *mq);

/* Message handlers of a QoS 1 subscription, loop thread only: libmosquitto acknowledges a
 * message when its handler returns (the PUBACK leaves on the loop's next write), so a handler
 * that could not take charge of the message calls this first. It cuts the connection at once,
 * so that neither that acknowledgement nor any other still queued is sent; a persistent
 * session then gets every unacknowledged message again after the reconnect (with DUP set;
 * some may have been handled already: at least once). Other threads: DYNO_EINVAL. */
int dyno_mq_abandon(struct dyno_mq *mq);

/* user_props: NULL or a NULL-terminated list of name, value, name, value, ... */
int dyno_mq_publish(struct dyno_mq *mq, const char *topic, const void *payload, size_t len, int qos,
                    bool retain, const char *const *user_props);

/* Publishes an answer to a v5 Response Topic (QoS 1, not retained) with the requester's
 * Correlation Data corr[0..corr_len) (none when corr_len is 0). Same rules and codes as
 * dyno_mq_publish. */
int dyno_mq_publish_reply(struct dyno_mq *mq, const char *topic, const void *payload, size_t len,
                          const void *corr, size_t corr_len);

/* RPC server side. fn fills *result (a new cJSON object the library frees) or returns a
 * DYNO_E* code with a message in errmsg. req is borrowed for the call only. */
typedef int (*dyno_rpc_fn)(void *arg, const cJSON *req, cJSON **result, char *errmsg, size_t errlen);
struct dyno_rpc_method {
    const char *name; /* e.g. "object.begin" */
    dyno_rpc_fn fn;
};
/* Serves methods of service with nthreads workers (queue bounded; overload answers
 * DYNO_EUNAVAIL). methods must outlive mq. */
int dyno_mq_serve(struct dyno_mq *mq, const char *service, const struct dyno_rpc_method *methods,
                  size_t nmethods, void *arg, int nthreads);

/* RPC client side: blocks until the reply or timeout_ms. *result is the caller's (may be
 * NULL: ignored). The code tells a caller whose request changes state what it may assume:
 *   0                 answered; the service did it.
 *   DYNO_EUNAVAIL     not sent (not connected, a connect in progress): the service never saw
 *                     it, unless the service itself answered unavailable (then it did not act).
 *   DYNO_ETIMEDOUT    SENT, OUTCOME UNKNOWN: no answer in timeout_ms, or the broker
 *                     connection dropped after the request went out (the request may have
 *                     been delivered and acted on, only the reply lost). Resolve it by
 *                     retrying an idempotent request or asking; never undo on this code.
 *   other DYNO_E*     the remote code, with its message in errmsg (a remote "timeout" is
 *                     also an unknown outcome).
 *   DYNO_EINVAL, DYNO_ENOMEM, DYNO_ETOOBIG   bad arguments or local failure: not sent. */
int dyno_mq_call(struct dyno_mq *mq, const char *service, const char *method, const cJSON *params,
                 int timeout_ms, cJSON **result, char *errmsg, size_t errlen);
/* Fire-and-forget notification to a service method (no reply). */
int dyno_mq_notify(struct dyno_mq *mq, const char *service, const char *method, const cJSON *params);
#endif
