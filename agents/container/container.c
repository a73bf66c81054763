/*
 * dyno-container's life: start-up checks, its state, its status fields and token
 * revocations, as the hooks main.c hands the agent skeleton (lib/agent.h dyno_agent_main):
 * the broker session, the status announcements and the signal loop are the skeleton's.
 */
#include "container.h"

#include <curl/curl.h>
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
    [CM_VOL_RECORDS] = {"dyno_container_volume_records_total",
                        "Records appended to volume files (small fragments, tombstones, compaction copies)",
                        "counter"},
    [CM_VOL_SYNCS] =
        {"dyno_container_volume_syncs_total",
         "Group-commit fdatasyncs of volume files (records / syncs = the commits one sync served)",
         "counter"},
    [CM_CONNECTIONS] = {"dyno_container_connections_total",
                        "HTTP connections accepted (the gateway keeps its connections across requests)",
                        "counter"},
};

static void container_fatal(const char *what)
{
    char q[600];
    dyno_error("cannot start", "error=%s", dyno_log_q(q, sizeof(q), what));
}

bool container_backend_is(const struct container *c, const char *name)
{
    return strcmp(c->cfg.backend ? c->cfg.backend : "posix", name) == 0;
}

/* Bytes left under the configured capacity (or the memory backend's own bound). */
static uint64_t container__cap_free(const struct container *c, uint64_t used)
{
    uint64_t cap = (uint64_t)c->cfg.capacity;
    /* The memory backend's own bound, when lower, is what placement must see. */
    if (container_backend_is(c, "memory") && c->cfg.memory_max > 0 && (uint64_t)c->cfg.memory_max < cap)
        cap = (uint64_t)c->cfg.memory_max;
    return used >= cap ? 0 : cap - used;
}

/* What the disk under a posix store has left (statvfs), or UINT64_MAX when it cannot say. */
static uint64_t container__disk_avail(const struct container *c)
{
    struct statvfs vfs;
    if (!container_backend_is(c, "posix") || statvfs(c->cfg.dir, &vfs) != 0)
        return UINT64_MAX;
    return (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
}

uint64_t container_free(struct container *c, uint64_t used)
{
    uint64_t free_bytes = container__cap_free(c, used);
    /* The configured capacity is a promise the disk may not keep (a shared or small
     * filesystem): report what is really left, so placement stops choosing a full disk. */
    uint64_t avail = container__disk_avail(c);
    return avail < free_bytes ? avail : free_bytes;
}

/* The disk's room for a reservation of n bytes, under mu: statvfs's last answer less what
 * was reserved since. A statvfs per put was a syscall under mu for every put; it is asked
 * again once the reservations since its answer (with this one) reach half of it, and every
 * CONTAINER_STATFS_EVERY reservations. So the estimate errs only towards too little room
 * (deletes are not counted until the next answer), near a full disk every reservation asks
 * again, and nothing is accepted beyond half of what the disk last said it had. */
#define CONTAINER_STATFS_EVERY 256
static uint64_t container__disk_room(struct container *c, uint64_t n)
{
    if (!c->disk_known || c->disk_taken + n > c->disk_avail / 2 || c->disk_uses >= CONTAINER_STATFS_EVERY) {
        c->disk_avail = container__disk_avail(c);
        c->disk_taken = 0;
        c->disk_uses = 0;
        c->disk_known = true;
    }
    c->disk_uses++;
    if (c->disk_avail == UINT64_MAX)
        return UINT64_MAX;
    return c->disk_taken >= c->disk_avail ? 0 : c->disk_avail - c->disk_taken;
}

int container_reserve(struct container *c, uint64_t n, uint64_t credit)
{
    uint64_t used = 0;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    store_usage(c->store, &used, NULL);
    uint64_t room = container__cap_free(c, used), disk = container__disk_room(c, n);
    if (disk < room)
        room = disk;
    if (used + c->reserved + n > (uint64_t)c->cfg.capacity + credit || c->reserved + n > room + credit) {
        rc = DYNO_ENOSPC;
    } else {
        c->reserved += n;
        c->disk_taken += n;
    }
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
    uint64_t records = 0, syncs = 0;
    store_volume_stats(c->store, &records, &syncs);
    dyno_metric_set(&c->metrics[CM_VOL_RECORDS], (int64_t)records);
    dyno_metric_set(&c->metrics[CM_VOL_SYNCS], (int64_t)syncs);
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
    const char *backend = cfg->backend ? cfg->backend : "posix";
    if (strcmp(backend, "posix") != 0 && strcmp(backend, "memory") != 0 && strcmp(backend, "s3") != 0) {
        snprintf(err, errlen, "backend must be posix, s3 or memory");
        return DYNO_EINVAL;
    }
    if (strcmp(backend, "posix") == 0 && (!cfg->dir || !cfg->dir[0])) {
        snprintf(err, errlen, "dir is required");
        return DYNO_EINVAL;
    }
    if (cfg->memory_max < 0) {
        snprintf(err, errlen, "memory_max must not be negative");
        return DYNO_EINVAL;
    }
    if (!cfg->c.public_key_file || !cfg->c.public_key_file[0]) {
        snprintf(err, errlen, "public_key_file is required");
        return DYNO_EINVAL;
    }
    if (!cfg->c.broker_host || !cfg->c.broker_host[0] || cfg->c.broker_port < 1 ||
        cfg->c.broker_port > 65535) {
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
    if (cfg->small_max < 0 || cfg->small_max > 1024 * 1024 || cfg->volume_max < 1024 * 1024 ||
        cfg->volume_max > (int64_t)1 << 40 || cfg->compact_min < 1) {
        snprintf(err, errlen, "small_max must be 0..1M, volume_max 1M..1T and compact_min positive");
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

/* The status hook (dyno_agent_on_status): where to reach us and how full we are. Runs in
 * the agent's connect thread or the main thread. */
static int container_status(void *arg, cJSON *o)
{
    struct container *c = arg;
    uint64_t used = 0, frags = 0;
    store_usage(c->store, &used, &frags);
    if (!cJSON_AddStringToObject(o, "url", c->url) ||
        !cJSON_AddStringToObject(o, "site", c->cfg.site ? c->cfg.site : "") ||
        !cJSON_AddStringToObject(o, "backend", c->cfg.backend ? c->cfg.backend : "posix") ||
        !dyno_json_add_i64(o, "capacity", c->cfg.capacity) || !dyno_json_add_i64(o, "used", (int64_t)used) ||
        !dyno_json_add_i64(o, "free", (int64_t)container_free(c, used)) ||
        !dyno_json_add_i64(o, "fragments", (int64_t)frags))
        return DYNO_ENOMEM;
    return 0;
}

/* ---- the agent's hooks (lib/agent.h dyno_agent_main, main.c) ---- */

int container_setup(void *arg)
{
    struct container *c = arg;
    char err[512] = "";
    pthread_mutex_init(&c->mu, NULL);
    for (int i = 0; i < CM_COUNT; i++) {
        c->metrics[i].name = container_metric_defs[i].name;
        c->metrics[i].help = container_metric_defs[i].help;
        c->metrics[i].type = container_metric_defs[i].type;
        atomic_init(&c->metrics[i].value, 0);
    }
    int rc = container_check_cfg(&c->cfg, err, sizeof(err));
    if (rc) {
        container_fatal(err[0] ? err : "bad configuration");
        return rc;
    }
    rc = dyno_verifier_load(c->cfg.c.public_key_file, &c->verifier);
    if (rc) {
        snprintf(err, sizeof(err), "cannot load public_key_file %s: %s", c->cfg.c.public_key_file,
                 dyno_strerror(rc));
        container_fatal(err);
        return rc;
    }
    if (container_backend_is(c, "s3")) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            container_fatal("curl_global_init failed");
            return DYNO_EINTERNAL;
        }
        struct store_s3_opts so = {.endpoint = c->cfg.s3_endpoint,
                                   .bucket = c->cfg.s3_bucket,
                                   .prefix = c->cfg.s3_prefix ? c->cfg.s3_prefix : "",
                                   .region = c->cfg.s3_region,
                                   .access_key = c->cfg.s3_access_key,
                                   .secret_file = c->cfg.s3_secret_file,
                                   .part_size = c->cfg.s3_part_size > 0 ? (size_t)c->cfg.s3_part_size : 0};
        rc = store_s3_open(&so, &c->store, err, sizeof(err));
    } else if (container_backend_is(c, "memory")) {
        /* Nothing survives a restart: the container registers empty, repair refills it. */
        uint64_t max = (uint64_t)(c->cfg.memory_max ? c->cfg.memory_max : c->cfg.capacity);
        rc = store_memory_open(max, &c->store, err, sizeof(err));
    } else {
        struct store_volume_opts vo;
        store_volume_defaults(&vo);
        vo.small_max = (uint64_t)c->cfg.small_max;
        vo.volume_max = (uint64_t)c->cfg.volume_max;
        vo.compact_min = (uint64_t)c->cfg.compact_min;
        rc = store_volume_open(c->cfg.dir, &vo, &c->store, err, sizeof(err));
    }
    if (rc) {
        container_fatal(err);
        return rc;
    }
    rc = container_cache_new((size_t)c->cfg.cache_bytes, CONTAINER_CACHE_ITEM_MAX, &c->cache);
    if (rc) {
        container_fatal("out of memory");
        return rc;
    }
    container_update_gauges(c);
    return 0;
}

int container_start(void *arg)
{
    struct container *c = arg;
    char err[512] = "";
    c->mq = c->agent.mq;
    int rc = container_http_start(c, err, sizeof(err));
    if (rc) {
        container_fatal(err);
        return rc;
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
            return rc;
        }
    }
    rc = dyno_mq_subscribe(c->mq, DYNO_ACL_TOPIC_REVOKED, 1, dyno_agent_on_revoked, c->verifier);
    if (rc == 0)
        rc = dyno_agent_on_status(&c->agent, container_status, c);
    if (rc) {
        snprintf(err, sizeof(err), "cannot set up the MQTT client: %s", dyno_strerror(rc));
        container_fatal(err);
    }
    return rc;
}

int container_started(void *arg)
{
    struct container *c = arg;
    int rc = container_scrub_start(c);
    if (rc) {
        container_fatal("cannot start the scrubber thread");
        return rc;
    }
    uint64_t used = 0, frags = 0;
    store_usage(c->store, &used, &frags);
    char qurl[600], qdir[600];
    dyno_info("started", "id=%s url=%s dir=%s capacity=%lld used=%llu fragments=%llu backend=%s", c->cfg.c.id,
              dyno_log_q(qurl, sizeof(qurl), c->url),
              dyno_log_q(qdir, sizeof(qdir), c->cfg.dir ? c->cfg.dir : ""), (long long)c->cfg.capacity,
              (unsigned long long)used, (unsigned long long)frags, c->store->ops->name);
    return 0;
}

void container_stop(void *arg)
{
    struct container *c = arg;
    container_scrub_stop(c);
    container_http_stop(c); /* waits for the connection threads */
}

void container_close(void *arg)
{
    struct container *c = arg;
    c->mq = NULL;
    container_cache_free(c->cache);
    store_free(c->store);
    dyno_verifier_free(c->verifier);
    pthread_mutex_destroy(&c->mu);
}
