/*
 * Service-agent scaffolding shared by dyno-metadata, dyno-pubsub and dyno-auth: the MQTT
 * login (<kind>-<id>, service token as password), the retained status with its Will, the
 * signal loop and log quoting. Every agent binary uses it, so an agent's main.c stays thin.
 *
 * Threads: dyno_agent_block_signals() is called in main() before any thread starts; every other
 * function is called from the main thread only.
 */
#ifndef DYNO_AGENT_H
#define DYNO_AGENT_H
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "mq.h"
#include "names.h" /* dyno_agent_valid_org, used by every agent */

/* The options every agent has (protocol.md §6); embed first in the agent's config struct. */
struct dyno_agent_common {
    char *id;
    char *broker_host;
    int64_t broker_port;
    char *broker_cafile;
    char *service_token_file;
    char *public_key_file;
    char *log_level;
};

/* Table entries of the common options for a config struct type T whose member c is the
 * struct dyno_agent_common; def_id is the per-kind default id. */
#define DYNO_AGENT_COMMON_OPTS(T, c, def_id)                                                                 \
    {"id", DYNO_OPT_STR, offsetof(T, c.id), def_id, "instance id"},                                          \
        {"broker_host", DYNO_OPT_STR, offsetof(T, c.broker_host), "127.0.0.1", "MQTT broker host"},          \
        {"broker_port", DYNO_OPT_INT, offsetof(T, c.broker_port), "1883", "MQTT broker port"},               \
        {"broker_cafile", DYNO_OPT_STR, offsetof(T, c.broker_cafile), NULL, "CA file: TLS to the broker"},   \
        {"service_token_file", DYNO_OPT_STR, offsetof(T, c.service_token_file), NULL,                        \
         "service token file (broker password)"},                                                            \
        {"public_key_file", DYNO_OPT_STR, offsetof(T, c.public_key_file), NULL,                              \
         "Ed25519 public key to verify tokens"},                                                             \
    {                                                                                                        \
        "log_level", DYNO_OPT_STR, offsetof(T, c.log_level), "info", "debug, info, warn, error"              \
    }

struct dyno_agent {
    const char *kind; /* "metadata", ... (static string) */
    const char *id;   /* borrowed from the config */
    char client_id[96];
    char status_topic[160];
    char will[192];
    int64_t started_at;
    struct dyno_mq *mq;
    char *token; /* service token (broker password), or NULL */
    /* The agent's own status fields (dyno_agent_on_status), or NULL. */
    int (*status_fn)(void *arg, cJSON *status);
    void *status_arg;
    /* The connect thread: publishes the online status, then runs the connect hook
     * (dyno_agent_on_connect, or NULL) after every connect. */
    void (*hook)(void *arg);
    void *hook_arg;
    pthread_t hook_thread;
    pthread_mutex_t hook_mu;
    pthread_cond_t hook_cond;
    bool hook_started, hook_pending, hook_stop;
};

/*
 * Parses the configuration and starts logging. Returns 0 to go on, 1 when the process
 * should exit 0 (--help), -1 when it should exit 1 (the error is logged).
 */
int dyno_agent_config(const char *kind, const struct dyno_opt *opts, size_t nopts, void *cfg,
                      const struct dyno_agent_common *c, int argc, char **argv);
/* Blocks SIGINT and SIGTERM (agent_run waits for them) and ignores SIGPIPE. */
int dyno_agent_block_signals(void);
/* Checks the common options and creates the MQTT client (not started). 0 or DYNO_E* (logged). */
int dyno_agent_init(struct dyno_agent *a, const char *kind, const struct dyno_agent_common *c);
/*
 * fn(arg, status) adds the agent's own members to its online status object (the skeleton
 * sets id, kind, state, version, started_at, time) every time it is published: on every
 * connect and every dyno_agent_run interval. fn runs in the connect thread or the main
 * thread, never the MQTT loop thread. Call after dyno_agent_init and before
 * dyno_agent_start. 0 or DYNO_EINVAL (fn NULL).
 */
int dyno_agent_on_status(struct dyno_agent *a, int (*fn)(void *arg, cJSON *status), void *arg);
/*
 * Runs fn(arg) after every (re)connect, once the online status is queued: agents republish
 * their retained feeds from it. fn runs in a thread of its own (never the MQTT loop thread),
 * so it may block, query its database and call dyno_mq_publish; connects that happen while
 * it runs coalesce into one more run. Call after dyno_agent_init and before
 * dyno_agent_start, at most once. dyno_agent_fini waits for a run in progress.
 * 0 or DYNO_EINVAL (called twice, or fn NULL).
 */
int dyno_agent_on_connect(struct dyno_agent *a, void (*fn)(void *arg), void *arg);
/* Starts the connect thread and the MQTT loop; the online status is published on every
 * connect (from the connect thread: lib/mq.h, the loop thread must not publish). */
int dyno_agent_start(struct dyno_agent *a);
/* Publishes the retained status with the given state ("online", "offline"). */
int dyno_agent_publish_status(struct dyno_agent *a, const char *state);
/* Waits for SIGINT or SIGTERM, republishing the status every interval seconds (main thread). */
void dyno_agent_run(struct dyno_agent *a, int interval);
/* Publishes the offline status, disconnects and frees the client. */
void dyno_agent_fini(struct dyno_agent *a);

/*
 * Serves methods as the service a->kind with nthreads workers (dyno_mq_serve, ctx passed to
 * every handler) and runs hook(ctx) after every connect (dyno_agent_on_connect; hook NULL:
 * none). For a start hook of dyno_agent_main: the client is not started yet. methods and
 * ctx must outlive the agent. 0 or DYNO_E* (logged).
 */
int dyno_agent_serve(struct dyno_agent *a, void (*hook)(void *ctx), const struct dyno_rpc_method *methods,
                     size_t nmethods, void *ctx, int nthreads);

/*
 * An agent as data (nginx's modules, a table of directives and hooks): its option table and
 * the hooks the one skeleton, dyno_agent_main, calls in this order:
 *
 *   signals blocked, configuration parsed into cfg, logging started   (--help: exit 0)
 *   setup(ctx)      checks and state the agent needs before the broker; 0 or exit 1
 *   dyno_agent_init the broker client <kind>-<id> with the service token and the Will
 *   start(ctx)      agent->mq exists, not connected: subscriptions, methods
 *                   (dyno_agent_serve), status fields and connect hook; 0 or exit 1
 *   dyno_agent_start the connect thread and the MQTT loop
 *   started(ctx)    what wants the running client (threads, listeners, the "started" line)
 *   dyno_agent_run  until SIGINT or SIGTERM, status every interval seconds
 *   stop(ctx)       stops what uses the client (threads, listeners): called whenever setup
 *                   returned 0, whatever failed after it
 *   dyno_agent_fini offline status, the client goes
 *   cleanup(ctx)    frees the agent's state: called whenever setup ran, even when it failed,
 *                   so it must take a half-made state
 *   dyno_config_free(cfg), then "stopped" when the run ended on a signal
 *
 * Every hook but setup may be NULL. Hooks log their own errors. All of it runs on the main
 * thread; the table and ctx outlive the call.
 */
struct dyno_agent_hooks {
    const char *kind;            /* "auth", "container", ... (static) */
    const struct dyno_opt *opts; /* the agent's table, DYNO_AGENT_COMMON_OPTS first */
    size_t nopts;
    void *cfg;                        /* the struct opts fills */
    struct dyno_agent_common *common; /* its common member */
    struct dyno_agent *agent;         /* the session, usually inside ctx */
    void *ctx;                        /* passed to every hook */
    int interval;                     /* seconds between status messages */
    const int64_t *interval_key;      /* or, when set, this configuration key (read after setup) */
    int (*setup)(void *ctx);
    int (*start)(void *ctx);
    int (*started)(void *ctx);
    void (*stop)(void *ctx);
    void (*cleanup)(void *ctx);
};
/* The members of struct dyno_agent_hooks every agent fills the same way, for an agent whose
 * state m (an lvalue) holds its configuration as m.cfg (common keys in m.cfg.c) and its
 * session as m.agent, and whose option table is the array opts_. */
#define DYNO_AGENT_HOOKS_STATE(kind_, opts_, m)                                                              \
    .kind = (kind_), .opts = (opts_), .nopts = sizeof(opts_) / sizeof((opts_)[0]), .cfg = &(m).cfg,          \
    .common = &(m).cfg.c, .agent = &(m).agent, .ctx = &(m)
/* Runs the agent h describes (above) and returns the process exit status: 0 after --help or
 * a clean stop on a signal, 1 when a step failed (logged). */
int dyno_agent_main(int argc, char **argv, const struct dyno_agent_hooks *h);

/*
 * The revocation feed of a verifying agent (gateway, container): msg, a message of
 * DYNO_ACL_TOPIC_REVOKED, replaces the whole revocation state of verifier (a struct
 * dyno_verifier *, lib/token.h). One that does not parse leaves the verifier unfed, so user
 * tokens are refused until a good one arrives: never the older, possibly shorter, list. An
 * empty payload (the retained message cleared) changes nothing (DYNO_ENOTFOUND). Logged
 * either way; 0 when applied. Called from the MQTT loop thread.
 */
int dyno_agent_revoked(void *verifier, const struct dyno_mq_msg *msg);
/* The same as a dyno_mq_subscribe handler, with the verifier as its argument. */
void dyno_agent_on_revoked(void *verifier, const struct dyno_mq_msg *msg);

/* The caller of an RPC as the gateway established it from a verified token (protocol.md §3).
 * Strings are borrowed from the request; org is "" when the caller has none. */
struct dyno_agent_caller {
    const char *sub;
    const char *org;
    bool admin;
};
/*
 * Reads req's "caller" member {sub, org?, admin?} into c: DYNO_EUNAUTH when it is missing,
 * DYNO_EINVAL when sub is not a valid segment, org not null or an org path, or admin not
 * null or a bool. err says which. Called from MQ worker threads; no state.
 */
int dyno_agent_caller(const cJSON *req, struct dyno_agent_caller *c, char *err, size_t errlen);
#endif
