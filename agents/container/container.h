/*
 * dyno-container: a data container serving erasure-coded fragments over HTTP
 * (docs/protocol.md §4), announcing itself on the broker (§2).
 *
 * One struct container holds everything the process has: its configuration, the store,
 * the cache, the token verifier, the MQTT client, the HTTP daemon and the metrics. It is
 * made in main() (main.c) and passed to every callback; there is no other global state.
 */
#ifndef CONTAINER_H
#define CONTAINER_H
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent.h"
#include "cache.h"
#include "httpd.h"
#include "metrics.h"
#include "store.h"

#define CONTAINER_CACHE_ITEM_MAX (1024 * 1024) /* only fragments up to this are cached */
#define CONTAINER_IO_CHUNK (256 * 1024)        /* read size of a streamed GET */

/* Configuration (docs/protocol.md §6): common keys, then the container's own. */
struct container_cfg {
    struct dyno_agent_common c; /* the keys every agent has (lib/agent.h), first */
    char *dir;
    char *site;
    char *backend;      /* "posix" (a folder: store_volume.c), "s3" or "memory" (store_memory.c) */
    int64_t memory_max; /* bytes the memory backend may hold; 0 = capacity */
    char *s3_endpoint;  /* the s3 backend (store_s3.c) */
    char *s3_bucket;
    char *s3_prefix;
    char *s3_region;
    char *s3_access_key;
    char *s3_secret_file;
    int64_t s3_part_size;
    int64_t capacity;
    char *listen_host;
    int64_t port;
    char *port_file;
    char *url;
    int64_t status_interval;
    int64_t cache_bytes;
    int64_t max_connections;
    int64_t stream_timeout; /* seconds a connection may move no byte (idle, or a reader that
                               stopped reading) before it is closed */
    int64_t scrub_rate;     /* bytes per second the scrubber reads at most */
    int64_t scrub_interval; /* seconds between full scrub passes; 0 disables the scrubber */
    int64_t small_max;      /* fragments up to this go to volume files (store_volume.c) */
    int64_t volume_max;     /* size of a volume before the next one starts */
    int64_t compact_min;    /* dead bytes of a volume before compaction reclaims it */
};

enum container_metric {
    CM_FRAGMENTS,
    CM_USED,
    CM_CAPACITY,
    CM_PUTS,
    CM_GETS,
    CM_DELETES,
    CM_CRC_ERRORS,
    CM_BYTES_IN,
    CM_BYTES_OUT,
    CM_CACHE_HITS,
    CM_SCRUBBED_BYTES,
    CM_SCRUB_ERRORS,
    CM_VOL_RECORDS,
    CM_VOL_SYNCS,
    CM_CONNECTIONS,
    CM_COUNT
};

struct dyno_verifier;
struct dyno_mq;

struct container {
    struct container_cfg cfg;
    char url[512];
    struct store *store;
    struct container_cache *cache;
    struct dyno_verifier *verifier;
    struct dyno_agent agent; /* the broker session and status (lib/agent.h) */
    struct dyno_mq *mq;      /* agent.mq */
    struct dyno_httpd httpd;
    unsigned port;

    /* Bytes of puts in flight, reserved against capacity. Guarded by mu. */
    pthread_mutex_t mu;
    uint64_t reserved;
    /* The disk's free bytes at the last statvfs, bytes reserved since, reservations since
     * (container.c container__disk_room). Guarded by mu. */
    uint64_t disk_avail, disk_taken;
    unsigned disk_uses;
    bool disk_known;

    /* The scrubber (scrub.c): its thread waits on scrub_cv, so stopping is immediate. */
    pthread_t scrub_thread;
    pthread_mutex_t scrub_mu;
    pthread_cond_t scrub_cv;
    bool scrub_stop, scrub_started;

    struct dyno_metric metrics[CM_COUNT];
};

/* The hooks of the agent skeleton (lib/agent.h struct dyno_agent_hooks, main.c), arg the
 * struct container. setup: checks, verifier, store, cache (before the broker); start: HTTP,
 * the URL and port file, the revocation feed and the status fields; started: the scrubber
 * and the "started" line; stop: scrubber and HTTP threads; close: the rest. 0 or DYNO_E*
 * (logged). */
int container_setup(void *arg);
int container_start(void *arg);
int container_started(void *arg);
void container_stop(void *arg);
void container_close(void *arg);

/* Starts the HTTP daemon on cfg.listen_host:cfg.port and sets c->port.
 * DYNO_EIO with a message in err when it cannot listen. (http.c) */
int container_http_start(struct container *c, char *err, size_t errlen);
void container_http_stop(struct container *c);

/* True when the container's configured backend is name ("posix" when none is set). */
bool container_backend_is(const struct container *c, const char *name);
/* Reserves n more bytes of capacity for a put in flight, given the bytes already reserved by
 * it; credit: bytes of the fragment it replaces. DYNO_ENOSPC when they do not fit. */
/* Bytes that can still be stored: the configured capacity left, or the filesystem's free
 * space when that is smaller. Any thread. */
uint64_t container_free(struct container *c, uint64_t used);
int container_reserve(struct container *c, uint64_t n, uint64_t credit);
void container_unreserve(struct container *c, uint64_t n);
/* Refreshes the usage gauges from the store: when /metrics is rendered, not per request
 * (each call takes the volume store's lock, the one its group commit waits on). */
void container_update_gauges(struct container *c);
#endif
