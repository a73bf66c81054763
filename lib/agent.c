/* Service-agent scaffolding (agent.h). */
#include "agent.h"

#include <dynostore/error.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "config.h"
#include "json.h"
#include "log.h"
#include "names.h"
#include "token.h"

int dyno_agent_config(const char *kind, const struct dyno_opt *opts, size_t nopts, void *cfg,
                      const struct dyno_agent_common *c, int argc, char **argv)
{
    char err[512] = "";
    char q[600];
    int rc = dyno_config_parse(opts, nopts, cfg, argc, argv, err, sizeof(err));
    if (rc == 1)
        return 1;
    int level = rc == 0 ? dyno_log_level_parse(c->log_level) : DYNO_LOG_INFO;
    dyno_log_init(kind, level < 0 ? DYNO_LOG_INFO : level);
    if (rc != 0) {
        dyno_error("bad configuration", "error=%s", dyno_log_q(q, sizeof(q), err));
        return -1;
    }
    if (level < 0) {
        dyno_error("bad configuration", "error=%s",
                   dyno_log_q(q, sizeof(q), "log_level must be debug, info, warn or error"));
        return -1;
    }
    return 0;
}

int dyno_agent_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    /* Blocked before any thread starts, so every thread inherits the mask and only
     * agent_run's sigtimedwait sees them. */
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return DYNO_EINTERNAL;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Loop thread: must not publish (lib/mq.h), so the connect thread is woken to. */
static void on_connect(void *arg, struct dyno_mq *mq)
{
    struct dyno_agent *a = arg;
    (void)mq;
    if (a->hook_started) {
        pthread_mutex_lock(&a->hook_mu);
        a->hook_pending = true;
        pthread_cond_signal(&a->hook_cond);
        pthread_mutex_unlock(&a->hook_mu);
    }
}

static void *hook_main(void *arg)
{
    struct dyno_agent *a = arg;
    pthread_mutex_lock(&a->hook_mu);
    for (;;) {
        while (!a->hook_pending && !a->hook_stop)
            pthread_cond_wait(&a->hook_cond, &a->hook_mu);
        if (a->hook_stop)
            break;
        a->hook_pending = false;
        pthread_mutex_unlock(&a->hook_mu);
        int rc = dyno_agent_publish_status(a, "online");
        if (rc != 0)
            dyno_debug("status not published", "err=%s", dyno_err_code(rc));
        if (a->hook)
            a->hook(a->hook_arg);
        pthread_mutex_lock(&a->hook_mu);
    }
    pthread_mutex_unlock(&a->hook_mu);
    return NULL;
}

int dyno_agent_on_status(struct dyno_agent *a, int (*fn)(void *arg, cJSON *status), void *arg)
{
    if (!fn || a->hook_started)
        return DYNO_EINVAL;
    a->status_fn = fn;
    a->status_arg = arg;
    return 0;
}

int dyno_agent_on_connect(struct dyno_agent *a, void (*fn)(void *arg), void *arg)
{
    if (!fn || a->hook || a->hook_started)
        return DYNO_EINVAL;
    a->hook = fn;
    a->hook_arg = arg;
    return 0;
}

static int hook_start(struct dyno_agent *a)
{
    a->hook_pending = false;
    a->hook_stop = false;
    if (pthread_mutex_init(&a->hook_mu, NULL) != 0)
        return DYNO_EINTERNAL;
    if (pthread_cond_init(&a->hook_cond, NULL) != 0) {
        pthread_mutex_destroy(&a->hook_mu);
        return DYNO_EINTERNAL;
    }
    if (pthread_create(&a->hook_thread, NULL, hook_main, a) != 0) {
        pthread_cond_destroy(&a->hook_cond);
        pthread_mutex_destroy(&a->hook_mu);
        return DYNO_EINTERNAL;
    }
    a->hook_started = true;
    return 0;
}

/* Stops the hook thread after the run in progress, if any. The mutex and condition stay
 * until hook_free: the loop thread may still signal them until the client is freed. */
static void hook_stop(struct dyno_agent *a)
{
    if (!a->hook_started)
        return;
    pthread_mutex_lock(&a->hook_mu);
    a->hook_stop = true;
    pthread_cond_signal(&a->hook_cond);
    pthread_mutex_unlock(&a->hook_mu);
    pthread_join(a->hook_thread, NULL);
}

/* After the MQTT client is gone. */
static void hook_free(struct dyno_agent *a)
{
    if (!a->hook_started)
        return;
    pthread_cond_destroy(&a->hook_cond);
    pthread_mutex_destroy(&a->hook_mu);
    a->hook_started = false;
}

int dyno_agent_init(struct dyno_agent *a, const char *kind, const struct dyno_agent_common *c)
{
    char q[300];
    memset(a, 0, sizeof(*a));
    a->kind = kind;
    a->id = c->id;
    a->started_at = (int64_t)time(NULL);
    if (!dyno_valid_segment(c->id)) {
        dyno_error("bad configuration", "error=%s",
                   dyno_log_q(q, sizeof(q), "id must match [A-Za-z0-9._-]{1,64}"));
        return DYNO_EINVAL;
    }
    if (c->broker_port < 1 || c->broker_port > 65535) {
        dyno_error("bad configuration", "error=%s", dyno_log_q(q, sizeof(q), "broker_port must be 1..65535"));
        return DYNO_EINVAL;
    }
    snprintf(a->client_id, sizeof(a->client_id), "%s-%s", kind, c->id);
    snprintf(a->status_topic, sizeof(a->status_topic), "dyno/v1/agents/%s/%s/status", kind, c->id);
    snprintf(a->will, sizeof(a->will), "{\"id\":\"%s\",\"kind\":\"%s\",\"state\":\"offline\"}", c->id, kind);
    if (c->service_token_file) {
        size_t len = 0;
        int rc = dyno_read_file(c->service_token_file, 4096, &a->token, &len);
        if (rc != 0) {
            dyno_error("cannot read service_token_file", "file=%s error=%s",
                       dyno_log_q(q, sizeof(q), c->service_token_file), dyno_err_code(rc));
            return rc;
        }
    }
    struct dyno_mq_opts o = {
        .host = c->broker_host,
        .port = (int)c->broker_port,
        .client_id = a->client_id,
        .username = a->client_id,
        .password = a->token,
        .cafile = c->broker_cafile,
        .will_topic = a->status_topic,
        .will_payload = a->will,
        .keepalive = 10,
    };
    int rc = dyno_mq_new(&o, &a->mq);
    if (rc != 0) {
        dyno_error("cannot create the MQTT client", "error=%s", dyno_err_code(rc));
        return rc;
    }
    dyno_mq_on_connect(a->mq, on_connect, a);
    return 0;
}

int dyno_agent_start(struct dyno_agent *a)
{
    int rc = hook_start(a);
    if (rc != 0) {
        dyno_error("cannot start the connect thread", NULL);
        return rc;
    }
    rc = dyno_mq_start(a->mq);
    if (rc != 0) {
        dyno_error("cannot start the MQTT client", "error=%s", dyno_err_code(rc));
        return rc;
    }
    char q[300];
    dyno_info("started", "id=%s client_id=%s", dyno_log_q(q, sizeof(q), a->id), a->client_id);
    return 0;
}

int dyno_agent_publish_status(struct dyno_agent *a, const char *state)
{
    cJSON *s = cJSON_CreateObject();
    if (!s)
        return DYNO_ENOMEM;
    cJSON_AddStringToObject(s, "id", a->id);
    cJSON_AddStringToObject(s, "kind", a->kind);
    cJSON_AddStringToObject(s, "state", state);
    cJSON_AddStringToObject(s, "version", DYNO_VERSION);
    dyno_json_add_i64(s, "started_at", a->started_at);
    dyno_json_add_i64(s, "time", (int64_t)time(NULL));
    if (a->status_fn && strcmp(state, "online") == 0) {
        int rc = a->status_fn(a->status_arg, s);
        if (rc != 0) {
            cJSON_Delete(s);
            return rc;
        }
    }
    size_t len = 0;
    char *text = dyno_json_print(s, &len);
    cJSON_Delete(s);
    if (!text)
        return DYNO_ENOMEM;
    int rc = dyno_mq_publish(a->mq, a->status_topic, text, len, 1, true, NULL);
    free(text);
    return rc;
}

void dyno_agent_run(struct dyno_agent *a, int interval)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    for (;;) {
        struct timespec ts = {.tv_sec = interval > 0 ? interval : 30, .tv_nsec = 0};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM) {
            dyno_info("stopping", "signal=%d", sig);
            return;
        }
        if (sig < 0 && errno != EAGAIN && errno != EINTR) {
            dyno_error("sigtimedwait failed", "errno=%d", errno);
            return;
        }
        if (sig < 0 && errno == EAGAIN && dyno_mq_connected(a->mq))
            dyno_agent_publish_status(a, "online");
    }
}

void dyno_agent_fini(struct dyno_agent *a)
{
    /* Before the client goes: the hook publishes through it. */
    hook_stop(a);
    if (a->mq) {
        /* A clean disconnect sends no Will, so say offline ourselves; give the loop a
         * moment to flush it before the DISCONNECT. */
        if (dyno_mq_connected(a->mq) && dyno_agent_publish_status(a, "offline") == 0) {
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        dyno_mq_free(a->mq);
        a->mq = NULL;
    }
    hook_free(a);
    if (a->token) {
        /* A service credential: not left in freed memory. */
        for (volatile char *v = a->token; *v; v++)
            *v = 0;
        free(a->token);
        a->token = NULL;
    }
}

int dyno_agent_serve(struct dyno_agent *a, void (*hook)(void *ctx), const struct dyno_rpc_method *methods,
                     size_t nmethods, void *ctx, int nthreads)
{
    if (hook && dyno_agent_on_connect(a, hook, ctx) != 0) {
        dyno_error("cannot set the connect hook", NULL);
        return DYNO_EINVAL;
    }
    int rc = dyno_mq_serve(a->mq, a->kind, methods, nmethods, ctx, nthreads);
    if (rc != 0)
        dyno_error("cannot set up MQTT subscriptions", NULL);
    return rc;
}

/* The broker part of dyno_agent_main: init, start hook, start, started hook, the signal
 * loop. 0 when it ended on a signal. */
static int agent__session(const struct dyno_agent_hooks *h)
{
    if (dyno_agent_init(h->agent, h->kind, h->common) != 0)
        return -1; /* logged */
    if (h->start && h->start(h->ctx) != 0)
        return -1;
    if (dyno_agent_start(h->agent) != 0)
        return -1;
    if (h->started && h->started(h->ctx) != 0)
        return -1;
    int interval = h->interval_key ? (int)*h->interval_key : h->interval;
    dyno_agent_run(h->agent, interval);
    return 0;
}

int dyno_agent_main(int argc, char **argv, const struct dyno_agent_hooks *h)
{
    if (dyno_agent_block_signals() != 0)
        return 1;
    int rc = dyno_agent_config(h->kind, h->opts, h->nopts, h->cfg, h->common, argc, argv);
    if (rc != 0) {
        dyno_config_free(h->opts, h->nopts, h->cfg);
        return rc == 1 ? 0 : 1;
    }
    bool set_up = h->setup(h->ctx) == 0;
    rc = set_up ? agent__session(h) : -1;
    if (h->stop && set_up)
        h->stop(h->ctx);
    dyno_agent_fini(h->agent); /* a no-op on a session never made */
    if (h->cleanup)
        h->cleanup(h->ctx);
    dyno_config_free(h->opts, h->nopts, h->cfg);
    if (rc == 0)
        dyno_info("stopped", NULL);
    return rc == 0 ? 0 : 1;
}

int dyno_agent_caller(const cJSON *req, struct dyno_agent_caller *c, char *err, size_t errlen)
{
    const cJSON *cj = cJSON_GetObjectItemCaseSensitive(req, "caller");
    if (!cJSON_IsObject(cj)) {
        snprintf(err, errlen, "caller is required");
        return DYNO_EUNAUTH;
    }
    c->sub = dyno_json_str(cj, "sub");
    if (!dyno_valid_segment(c->sub)) {
        snprintf(err, errlen, "caller.sub must match [A-Za-z0-9._-]{1,64}");
        return DYNO_EINVAL;
    }
    const cJSON *org = cJSON_GetObjectItemCaseSensitive(cj, "org");
    c->org = cJSON_IsString(org) ? org->valuestring : "";
    if ((org && !cJSON_IsNull(org) && !cJSON_IsString(org)) || !dyno_agent_valid_org(c->org, true)) {
        snprintf(err, errlen, "caller.org must be an org path");
        return DYNO_EINVAL;
    }
    const cJSON *adm = cJSON_GetObjectItemCaseSensitive(cj, "admin");
    if (adm && !cJSON_IsNull(adm) && !cJSON_IsBool(adm)) {
        snprintf(err, errlen, "caller.admin must be true or false");
        return DYNO_EINVAL;
    }
    c->admin = cJSON_IsTrue(adm);
    return 0;
}

int dyno_agent_revoked(void *verifier, const struct dyno_mq_msg *msg)
{
    size_t njtis = 0, nepochs = 0;

    if (msg->len == 0)
        return DYNO_ENOTFOUND; /* the retained message cleared: nothing to apply */
    int rc = dyno_verifier_apply_revoked(verifier, msg->payload, msg->len, &njtis, &nepochs);
    if (rc != 0) {
        dyno_error("revocation document refused: user tokens refused until a good one", "size=%zu err=%s",
                   msg->len, dyno_err_code(rc));
        return rc;
    }
    dyno_info("revocation document applied", "revoked=%zu epochs=%zu", njtis, nepochs);
    return 0;
}

void dyno_agent_on_revoked(void *verifier, const struct dyno_mq_msg *msg)
{
    (void)dyno_agent_revoked(verifier, msg);
}
