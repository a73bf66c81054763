/*
 * dyno-container's life: configuration, start-up checks, the MQTT status announcements,
 * token revocations, and the main loop that waits for signals.
 *
 * Threads: main() blocks SIGINT, SIGTERM and SIGUSR1 before any thread starts, so they all
 * inherit the mask and the main thread alone takes those signals with sigtimedwait(): no
 * handler, no global flag. The MQTT loop thread's connect hook only raises status_due and
 * wakes the main thread with SIGUSR1; the main thread publishes the status (lib/mq.h says
 * not to publish from the loop thread).
 */
#include "container.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "acl.h"
#include "agent.h"
#include "config.h"
#include "dynostore/error.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "mq.h"
#include "names.h"
#include "scrub.h"
#include "token.h"

#define OPT(name, type, field, def, help)                                                                    \
    {                                                                                                        \
        name, type, offsetof(struct container_cfg, field), def, help                                         \
    }
static const struct dyno_opt container_opts[] = {
    DYNO_AGENT_COMMON_OPTS(struct container_cfg, c, "c1"),
    OPT("dir", DYNO_OPT_STR, dir, NULL, "fragment folder (created when missing)"),
    OPT("site", DYNO_OPT_STR, site, "", "site name"),
    OPT("capacity", DYNO_OPT_INT, capacity, "10G", "bytes this container may hold"),
    OPT("listen_host", DYNO_OPT_STR, listen_host, "127.0.0.1", "HTTP listen address"),
    OPT("port", DYNO_OPT_INT, port, "0", "HTTP port, 0 = any"),
    OPT("port_file", DYNO_OPT_STR, port_file, NULL, "file that receives the bound port"),
    OPT("url", DYNO_OPT_STR, url, NULL, "advertised URL (default http://<listen_host>:<port>)"),
    OPT("status_interval", DYNO_OPT_INT, status_interval, "5", "seconds between status messages"),
    OPT("cache_bytes", DYNO_OPT_INT, cache_bytes, "64M", "memory cache of hot fragments, bytes"),
    OPT("max_connections", DYNO_OPT_INT, max_connections, "256", "concurrent HTTP connections"),
    OPT("stream_timeout", DYNO_OPT_INT, stream_timeout, "120",
        "seconds a connection may move no byte before it is closed"),
    OPT("scrub_rate", DYNO_OPT_INT, scrub_rate, "8M", "bytes per second the scrubber reads at most"),
    OPT("scrub_interval", DYNO_OPT_INT, scrub_interval, "3600", "seconds between full scrub passes, 0 = off"),
};
#define CONTAINER_NOPTS (sizeof(container_opts) / sizeof(container_opts[0]))

static const struct {
    const char *name, *help, *type;
} container_metric_defs[CM_COUNT] = {
    [CM_FRAGMENTS] = {"dyno_container_fragments", "Fragments stored", "gauge"},
    [CM_USED] = {"dyno_container_used_bytes", "Bytes of stored fragments", "gauge"},
    [CM_CAPACITY] = {"dyno_container_capacity_bytes", "Configured capacity in bytes", "gauge"},
    [CM_PUTS] = {"dyno_container_puts_total", "Fragments stored by PUT", "counter"},
    [CM_GETS] = {"dyno_container_gets_total", "Fragment GET requests served", "counter"},
    [CM_DELETES] = {"dyno_container_deletes_total", "Fragments deleted", "counter"},
    [CM_CRC_ERRORS] = {"dyno_container_crc_errors_total", "Corrupt fragments found on read", "counter"},
    [CM_BYTES_IN] = {"dyno_container_bytes_in_total", "Bytes received in PUT bodies", "counter"},
    [CM_BYTES_OUT] = {"dyno_container_bytes_out_total", "Bytes sent in GET bodies", "counter"},
    [CM_CACHE_HITS] = {"dyno_container_cache_hits_total", "GETs served from the memory cache", "counter"},
    [CM_SCRUBBED_BYTES] = {"dyno_container_scrubbed_bytes_total",
                           "Bytes re-read and verified by the scrubber", "counter"},
    [CM_SCRUB_ERRORS] = {"dyno_container_scrub_errors_total", "Corrupt fragments found by the scrubber",
                         "counter"},
};

static void container_fatal(const char *what)
{
    char q[600];
    dyno_error("cannot start", "error=%s", dyno_log_q(q, sizeof(q), what));
}

uint64_t container_free(struct container *c, uint64_t used)
{
    uint64_t cap = (uint64_t)c->cfg.capacity;
    uint64_t free_bytes = used >= cap ? 0 : cap - used;
    /* The configured capacity is a promise the disk may not keep (a shared or small
     * filesystem): report what is really left, so placement stops choosing a full disk. */
    struct statvfs vfs;
    if (statvfs(c->cfg.dir, &vfs) == 0) {
        uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
        if (avail < free_bytes)
            free_bytes = avail;
    }
    return free_bytes;
}

int container_reserve(struct container *c, uint64_t n, uint64_t credit)
{
    uint64_t used = 0;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    store_usage(c->store, &used, NULL);
    if (used + c->reserved + n > (uint64_t)c->cfg.capacity + credit ||
        c->reserved + n > container_free(c, used) + credit)
        rc = DYNO_ENOSPC;
    else
        c->reserved += n;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void container_unreserve(struct container *c, uint64_t n)
{
    pthread_mutex_lock(&c->mu);
    c->reserved = n > c->reserved ? 0 : c->reserved - n;
    pthread_mutex_unlock(&c->mu);
}

void container_update_gauges(struct container *c)
{
    uint64_t used = 0, frags = 0;
    store_usage(c->store, &used, &frags);
    dyno_metric_set(&c->metrics[CM_USED], (int64_t)used);
    dyno_metric_set(&c->metrics[CM_FRAGMENTS], (int64_t)frags);
    dyno_metric_set(&c->metrics[CM_CAPACITY], c->cfg.capacity);
}

/* ---- configuration ---- */

static int container_check_cfg(const struct container_cfg *cfg, char *err, size_t errlen)
{
    if (!dyno_valid_segment(cfg->c.id)) {
        snprintf(err, errlen, "id must be [A-Za-z0-9._-]{1,64}");
        return DYNO_EINVAL;
    }
    if (cfg->site && cfg->site[0] && !dyno_valid_segment(cfg->site)) {
        snprintf(err, errlen, "site must be [A-Za-z0-9._-]{1,64}");
        return DYNO_EINVAL;
    }
    if (dyno_log_level_parse(cfg->c.log_level) < 0) {
        snprintf(err, errlen, "log_level must be debug, info, warn or error");
        return DYNO_EINVAL;
    }
    if (!cfg->dir || !cfg->dir[0]) {
        snprintf(err, errlen, "dir is required");
        return DYNO_EINVAL;
    }
    if (!cfg->c.public_key_file || !cfg->c.public_key_file[0]) {
        snprintf(err, errlen, "public_key_file is required");
        return DYNO_EINVAL;
    }
    if (!cfg->c.broker_host || !cfg->c.broker_host[0] || cfg->c.broker_port < 1 || cfg->c.broker_port > 65535) {
        snprintf(err, errlen, "broker_host/broker_port are invalid");
        return DYNO_EINVAL;
    }
    if (!cfg->listen_host || !cfg->listen_host[0] || cfg->port < 0 || cfg->port > 65535) {
        snprintf(err, errlen, "listen_host/port are invalid (port 0..65535)");
        return DYNO_EINVAL;
    }
    if (cfg->capacity < 1) {
        snprintf(err, errlen, "capacity must be positive");
        return DYNO_EINVAL;
    }
    if (cfg->status_interval < 1 || cfg->status_interval > 3600) {
        snprintf(err, errlen, "status_interval must be 1..3600 seconds");
        return DYNO_EINVAL;
    }
    if (cfg->cache_bytes < 0) {
        snprintf(err, errlen, "cache_bytes must not be negative");
        return DYNO_EINVAL;
    }
    if (cfg->scrub_rate < 1 || cfg->scrub_interval < 0) {
        snprintf(err, errlen, "scrub_rate must be positive and scrub_interval >= 0");
        return DYNO_EINVAL;
    }
    if (cfg->stream_timeout < 1 || cfg->stream_timeout > 86400) {
        snprintf(err, errlen, "stream_timeout must be 1..86400 seconds");
        return DYNO_EINVAL;
    }
    if (cfg->max_connections < 1 || cfg->max_connections > 65535) {
        snprintf(err, errlen, "max_connections must be 1..65535");
        return DYNO_EINVAL;
    }
    if (cfg->url && (strlen(cfg->url) > 400 ||
                     (strncmp(cfg->url, "http://", 7) != 0 && strncmp(cfg->url, "https://", 8) != 0))) {
        snprintf(err, errlen, "url must be an http:// or https:// URL");
        return DYNO_EINVAL;
    }
    if (cfg->c.broker_cafile && access(cfg->c.broker_cafile, R_OK) != 0) {
        snprintf(err, errlen, "cannot read broker_cafile %s", cfg->c.broker_cafile);
        return DYNO_EINVAL;
    }
    return 0;
}

/* ---- status over MQTT ---- */

static void container_status_topic(const struct container *c, char *out, size_t cap)
{
    snprintf(out, cap, "dyno/v1/agents/container/%s/status", c->cfg.c.id);
}

static char *container_offline_json(const struct container *c, size_t *len)
{
    char *text = NULL;
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "id", c->cfg.c.id) && cJSON_AddStringToObject(o, "kind", "container") &&
        cJSON_AddStringToObject(o, "state", "offline"))
        text = dyno_json_print(o, len);
    cJSON_Delete(o);
    return text;
}

static int container_publish_status(struct container *c, bool online)
{
    char topic[160];
    char *text = NULL;
    size_t len = 0;
    int rc = DYNO_ENOMEM;

    container_status_topic(c, topic, sizeof(topic));
    if (!online) {
        text = container_offline_json(c, &len);
    } else {
        uint64_t used = 0, frags = 0;
        uint64_t cap = (uint64_t)c->cfg.capacity;
        store_usage(c->store, &used, &frags);
        cJSON *o = cJSON_CreateObject();
        if (o) {
            cJSON_AddStringToObject(o, "id", c->cfg.c.id);
            cJSON_AddStringToObject(o, "kind", "container");
            cJSON_AddStringToObject(o, "state", "online");
            cJSON_AddStringToObject(o, "version", DYNO_VERSION);
            dyno_json_add_i64(o, "started_at", c->started_at);
            dyno_json_add_i64(o, "time", (int64_t)time(NULL));
            cJSON_AddStringToObject(o, "url", c->url);
            cJSON_AddStringToObject(o, "site", c->cfg.site ? c->cfg.site : "");
            dyno_json_add_i64(o, "capacity", (int64_t)cap);
            dyno_json_add_i64(o, "used", (int64_t)used);
            dyno_json_add_i64(o, "free", (int64_t)container_free(c, used));
            dyno_json_add_i64(o, "fragments", (int64_t)frags);
            text = dyno_json_print(o, &len);
        }
        cJSON_Delete(o);
    }
    if (text)
        rc = dyno_mq_publish(c->mq, topic, text, len, 1, true, NULL);
    free(text);
    return rc;
}

/* Loop thread: must not block. The main thread publishes. */
static void container_on_connect(void *arg, struct dyno_mq *mq)
{
    struct container *c = arg;
    (void)mq;
    atomic_store(&c->status_due, true);
    pthread_kill(c->main_thread, SIGUSR1);
}

static int container_mq_start(struct container *c, const char *token, char *err, size_t errlen)
{
    char cid[80], topic[160];
    char *will = NULL;
    size_t wlen = 0;
    int rc;

    snprintf(cid, sizeof(cid), "container-%s", c->cfg.c.id);
    container_status_topic(c, topic, sizeof(topic));
    will = container_offline_json(c, &wlen);
    if (!will) {
        snprintf(err, errlen, "out of memory");
        return DYNO_ENOMEM;
    }
    struct dyno_mq_opts o = {
        .host = c->cfg.c.broker_host,
        .port = (int)c->cfg.c.broker_port,
        .client_id = cid,
        .username = cid,
        .password = token,
        .cafile = c->cfg.c.broker_cafile,
        .will_topic = topic,
        .will_payload = will,
        .keepalive = 10,
        .persistent = false,
    };
    rc = dyno_mq_new(&o, &c->mq);
    if (rc) {
        snprintf(err, errlen, "cannot set up the MQTT client: %s", dyno_strerror(rc));
        goto out;
    }
    dyno_mq_on_connect(c->mq, container_on_connect, c);
    rc = dyno_mq_subscribe(c->mq, DYNO_ACL_TOPIC_REVOKED, 1, dyno_agent_on_revoked, c->verifier);
    if (rc == 0)
        rc = dyno_mq_start(c->mq);
    if (rc)
        snprintf(err, errlen, "cannot start the MQTT client: %s", dyno_strerror(rc));
out:
    free(will);
    return rc;
}

/* ---- main ---- */

static int64_t container_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for SIGINT/SIGTERM, publishing the status every status_interval and on connect. */
static void container_loop(struct container *c, const sigset_t *sigs)
{
    int64_t period = c->cfg.status_interval * 1000;
    int64_t next = container_mono_ms() + period;
    for (;;) {
        int64_t now = container_mono_ms();
        if (atomic_exchange(&c->status_due, false) || now >= next) {
            if (dyno_mq_connected(c->mq))
                (void)container_publish_status(c, true);
            next = now + period;
        }
        int64_t wait = next - container_mono_ms();
        if (wait < 0)
            wait = 0;
        struct timespec ts = {.tv_sec = (time_t)(wait / 1000), .tv_nsec = (long)(wait % 1000) * 1000000L};
        int sig = sigtimedwait(sigs, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM) {
            dyno_info("stopping", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
            return;
        }
    }
}

int container_main(int argc, char **argv)
{
    struct container *c = NULL;
    char err[512];
    char *token = NULL;
    size_t toklen = 0;
    int status = 1;
    int rc;
    sigset_t sigs;

    c = calloc(1, sizeof(*c));
    if (!c) {
        fprintf(stderr, "dyno-container: out of memory\n");
        return 1;
    }
    pthread_mutex_init(&c->mu, NULL);
    for (int i = 0; i < CM_COUNT; i++) {
        c->metrics[i].name = container_metric_defs[i].name;
        c->metrics[i].help = container_metric_defs[i].help;
        c->metrics[i].type = container_metric_defs[i].type;
        atomic_init(&c->metrics[i].value, 0);
    }

    err[0] = '\0';
    rc = dyno_config_parse(container_opts, CONTAINER_NOPTS, &c->cfg, argc, argv, err, sizeof(err));
    if (rc == 1) {
        status = 0;
        goto out;
    }
    int level = rc == 0 ? dyno_log_level_parse(c->cfg.c.log_level) : -1;
    dyno_log_init("container", level < 0 ? DYNO_LOG_INFO : level);
    if (rc == 0)
        rc = container_check_cfg(&c->cfg, err, sizeof(err));
    if (rc) {
        container_fatal(err[0] ? err : "bad configuration");
        goto out;
    }

    rc = dyno_verifier_load(c->cfg.c.public_key_file, &c->verifier);
    if (rc) {
        snprintf(err, sizeof(err), "cannot load public_key_file %s: %s", c->cfg.c.public_key_file,
                 dyno_strerror(rc));
        container_fatal(err);
        goto out;
    }
    if (c->cfg.c.service_token_file) {
        rc = dyno_read_file(c->cfg.c.service_token_file, DYNO_TOKEN_MAX, &token, &toklen);
        if (rc) {
            snprintf(err, sizeof(err), "cannot read service_token_file %s: %s", c->cfg.c.service_token_file,
                     dyno_strerror(rc));
            container_fatal(err);
            goto out;
        }
    }
    rc = store_posix_open(c->cfg.dir, &c->store, err, sizeof(err));
    if (rc) {
        container_fatal(err);
        goto out;
    }
    rc = container_cache_new((size_t)c->cfg.cache_bytes, CONTAINER_CACHE_ITEM_MAX, &c->cache);
    if (rc) {
        container_fatal("out of memory");
        goto out;
    }
    container_update_gauges(c);

    /* Before any thread starts: every thread inherits the mask; only the main thread
     * takes these signals (sigtimedwait). */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    c->main_thread = pthread_self();
    c->started_at = (int64_t)time(NULL);

    rc = container_http_start(c, err, sizeof(err));
    if (rc) {
        container_fatal(err);
        goto out;
    }
    if (c->cfg.url) {
        snprintf(c->url, sizeof(c->url), "%s", c->cfg.url);
    } else {
        bool v6 = strchr(c->cfg.listen_host, ':') != NULL;
        snprintf(c->url, sizeof(c->url), "http://%s%s%s:%u", v6 ? "[" : "", c->cfg.listen_host, v6 ? "]" : "",
                 c->port);
    }
    if (c->cfg.port_file) {
        char p[16];
        int n = snprintf(p, sizeof(p), "%u\n", c->port);
        rc = dyno_write_file(c->cfg.port_file, p, (size_t)n, 0644);
        if (rc) {
            snprintf(err, sizeof(err), "cannot write port_file %s: %s", c->cfg.port_file, dyno_strerror(rc));
            container_fatal(err);
            goto out;
        }
    }
    rc = container_mq_start(c, token, err, sizeof(err));
    if (rc) {
        container_fatal(err);
        goto out;
    }

    rc = container_scrub_start(c);
    if (rc) {
        container_fatal("cannot start the scrubber thread");
        goto out;
    }

    uint64_t used = 0, frags = 0;
    store_usage(c->store, &used, &frags);
    char qurl[600], qdir[600];
    dyno_info("started", "id=%s url=%s dir=%s capacity=%lld used=%llu fragments=%llu backend=%s", c->cfg.c.id,
              dyno_log_q(qurl, sizeof(qurl), c->url), dyno_log_q(qdir, sizeof(qdir), c->cfg.dir),
              (long long)c->cfg.capacity, (unsigned long long)used, (unsigned long long)frags,
              c->store->ops->name);

    container_loop(c, &sigs);

    if (dyno_mq_connected(c->mq) && container_publish_status(c, false) != 0)
        dyno_warn("cannot publish offline status", NULL);
    status = 0;
out:
    container_scrub_stop(c);
    container_http_stop(c); /* waits for the connection threads */
    dyno_mq_free(c->mq);
    container_cache_free(c->cache);
    store_free(c->store);
    dyno_verifier_free(c->verifier);
    if (token) {
        memset(token, 0, toklen);
        free(token);
    }
    dyno_config_free(container_opts, CONTAINER_NOPTS, &c->cfg);
    pthread_mutex_destroy(&c->mu);
    if (status == 0 && rc == 0)
        dyno_info("stopped", NULL);
    free(c);
    return status;
}
