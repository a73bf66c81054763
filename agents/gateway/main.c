/*
 * dyno-gateway: the REST front door of DynoStore. Its options and the start-up order over
 * the agent skeleton (lib/agent.h): configuration, checks and state (setup.c), HTTP, the
 * broker session with its feeds (mqtt.c), events, ingest, repair; then the signal loop.
 */
#include <stddef.h>

#include "agent.h"
#include "config.h"
#include "gw.h"
#include "s3.h"
#include "log.h"
#include "mq.h"

static const struct dyno_opt gw_opts[] = {
    DYNO_AGENT_COMMON_OPTS(struct gw_cfg, c, "gw1"),
    {"listen_host", DYNO_OPT_STR, offsetof(struct gw_cfg, listen_host), "127.0.0.1", "HTTP listen address"},
    {"port", DYNO_OPT_INT, offsetof(struct gw_cfg, port), "8080", "HTTP port, 0 = any"},
    {"port_file", DYNO_OPT_STR, offsetof(struct gw_cfg, port_file), NULL, "write the bound port here"},
    {"unit", DYNO_OPT_INT, offsetof(struct gw_cfg, unit), "1M", "stripe unit, bytes"},
    {"k", DYNO_OPT_INT, offsetof(struct gw_cfg, k), "3", "default data fragments"},
    {"m", DYNO_OPT_INT, offsetof(struct gw_cfg, m), "2", "default parity fragments"},
    {"write_quorum", DYNO_OPT_INT, offsetof(struct gw_cfg, write_quorum), "0",
     "fragments that must be stored (0 = k+1, capped at n)"},
    {"small_max", DYNO_OPT_INT, offsetof(struct gw_cfg, small_max), "64K", "largest replicated object"},
    {"fragment_timeout_ms", DYNO_OPT_INT, offsetof(struct gw_cfg, fragment_timeout_ms), "10000",
     "a fragment transfer without progress this long fails"},
    {"rpc_timeout_ms", DYNO_OPT_INT, offsetof(struct gw_cfg, rpc_timeout_ms), "5000", "RPC timeout"},
    {"commit_resolve_ms", DYNO_OPT_INT, offsetof(struct gw_cfg, commit_resolve_ms), "30000",
     "a put whose commit got no answer retries it this long before answering 504"},
    {"max_connections", DYNO_OPT_INT, offsetof(struct gw_cfg, max_connections), "256",
     "concurrent client connections"},
    {"max_body", DYNO_OPT_INT, offsetof(struct gw_cfg, max_body), "1T", "largest object"},
    {"frontend_dir", DYNO_OPT_STR, offsetof(struct gw_cfg, frontend_dir), NULL, "web GUI files"},
    {"site", DYNO_OPT_STR, offsetof(struct gw_cfg, site), NULL,
     "this gateway's site: reads fetch from the containers of the same site first"},
    {"tls_cert", DYNO_OPT_STR, offsetof(struct gw_cfg, tls_cert), NULL, "HTTPS certificate (PEM)"},
    {"tls_key", DYNO_OPT_STR, offsetof(struct gw_cfg, tls_key), NULL, "HTTPS key (PEM)"},
    {"ingest_max", DYNO_OPT_INT, offsetof(struct gw_cfg, ingest_max), "256K", "largest MQTT ingest"},
    {"max_connections_per_ip", DYNO_OPT_INT, offsetof(struct gw_cfg, max_connections_per_ip), "64",
     "concurrent connections from one client address (more get 429)"},
    {"login_per_ip_per_min", DYNO_OPT_INT, offsetof(struct gw_cfg, login_per_ip_per_min), "60",
     "login attempts a minute from one client address, also the burst (more get 429)"},
    {"login_per_user_per_min", DYNO_OPT_INT, offsetof(struct gw_cfg, login_per_user_per_min), "20",
     "login attempts a minute for one username, also the burst (more get 429)"},
    {"max_streams_per_user", DYNO_OPT_INT, offsetof(struct gw_cfg, max_streams_per_user), "8",
     "event streams (GET /v1/events) one user may hold (more get 429)"},
    {"device_code_ttl_s", DYNO_OPT_INT, offsetof(struct gw_cfg, device_code_ttl_s), "600",
     "seconds a device-login code (dynostore login --device) may wait for its approval"},
    {"limit_table_size", DYNO_OPT_INT, offsetof(struct gw_cfg, limit_table_size), "4096",
     "client addresses and usernames each limit table tracks at most"},
    {"repair_workers", DYNO_OPT_INT, offsetof(struct gw_cfg, repair_workers), "1",
     "repair and GC worker threads (0 = none)"},
    {"repair_poll_ms", DYNO_OPT_INT, offsetof(struct gw_cfg, repair_poll_ms), "1000",
     "idle wait between repair claims"},
    {"repair_rate_bytes", DYNO_OPT_INT, offsetof(struct gw_cfg, repair_rate_bytes), "64M",
     "bytes/s repairs read and write at most"},
    {"reserve_batch", DYNO_OPT_INT, offsetof(struct gw_cfg, reserve_batch), "32",
     "small objects placed ahead per object.reserve (0: every put sends object.begin)"},
    {"s3_port", DYNO_OPT_INT, offsetof(struct gw_cfg, s3_port), "-1",
     "S3 endpoint port (docs/s3.md): -1 = off, 0 = any free port"},
    {"s3_port_file", DYNO_OPT_STR, offsetof(struct gw_cfg, s3_port_file), NULL,
     "write the bound S3 port here"},
    {"s3_region", DYNO_OPT_STR, offsetof(struct gw_cfg, s3_region), "us-east-1",
     "the region S3 clients sign with (AWS SigV4 credential scope)"},
    {"s3_domain", DYNO_OPT_STR, offsetof(struct gw_cfg, s3_domain), "localhost",
     "virtual-host-style S3: Host <bucket>.<s3_domain>[:port] names the bucket (\"\" = path-style only)"},
    {"s3_long_grace_ms", DYNO_OPT_INT, offsetof(struct gw_cfg, s3_long_grace_ms), "2000",
     "a CopyObject or CompleteMultipartUpload still running after this answers 200 and keeps the "
     "connection alive with spaces until its result"},
    {"s3_upload_ttl_s", DYNO_OPT_INT, offsetof(struct gw_cfg, s3_upload_ttl_s), "604800",
     "an S3 multipart upload neither completed nor aborted is cleaned after this (0: never)"},
    {"reserve_ttl_ms", DYNO_OPT_INT, offsetof(struct gw_cfg, reserve_ttl_ms), "5000",
     "an unused reservation is released after this (its placement may be stale)"},
};
/* Checks and state before the broker (setup.c); library inits before any thread starts. */
static int gw_setup(void *arg)
{
    struct gw *gw = arg;
    char err[512] = "";
    pthread_mutex_init(&gw->ec_lock, NULL);
    gw_rtt_init(&gw->rtt);
    gw->tp = &gw_curl_transport; /* the data path reaches containers over HTTP (dp.h) */
    gw->meta = &gw_mqtt_meta;    /* and metadata over the broker */
    gw_metrics_init(gw);
    if (gw_cfg_check(&gw->cfg, err, sizeof(err))) {
        gw_log_config_error(err);
        return -1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        dyno_error("curl_global_init failed", NULL);
        return -1;
    }
    gw->curl_ok = true;
    if (gw_init(gw, err, sizeof(err))) {
        gw_log_config_error(err);
        return -1;
    }
    return 0;
}

/* HTTP first (requests answer 503 until the broker is there), then the broker feeds. */
static int gw_start(void *arg)
{
    struct gw *gw = arg;
    gw->mq = gw->agent.mq;
    /* S3 first: its port file is there once the gateway's is (dynostore up reads both). */
    if (gw_s3_start(gw) || gw_httpd_start(gw))
        return -1; /* logged */
    if (gw_mqtt_start(gw) || dyno_agent_on_status(&gw->agent, gw_mqtt_status, gw) ||
        dyno_agent_on_connect(&gw->agent, gw_mqtt_on_connect, gw))
        return -1;
    return 0;
}

static int gw_started(void *arg)
{
    struct gw *gw = arg;
    /* Not fatal: the client keeps reconnecting, and requests answer 503 meanwhile. */
    if (dyno_mq_wait_connected(gw->mq, 3000))
        dyno_warn("broker not reachable yet", "host=%s port=%d", gw->cfg.c.broker_host,
                  (int)gw->cfg.c.broker_port);
    /* Before ingest and while HTTP already serves: puts fall back to object.begin until the
     * pool's first object.reserve is answered. */
    if (gw->cfg.reserve_batch > 0) {
        if (gw_resv_new(gw, (int)gw->cfg.m, (int)gw->cfg.reserve_batch, gw->cfg.reserve_ttl_ms, &gw->resv) ||
            gw_resv_start(gw->resv)) {
            dyno_error("cannot start the reservation pool", NULL);
            return -1;
        }
    }
    if (gw_events_start(gw) || gw_ingest_start(gw) || gw_repair_start(gw) || gw_s3_mpu_start(gw))
        return -1;
    dyno_info("gateway started", "id=%s port=%u", gw->cfg.c.id, gw->port);
    return 0;
}

/* Stops what serves requests and their threads, in order: HTTP first (its threads use the
 * MQTT client until they end), the SSE streams before it (so that MHD's threads finish). */
static void gw_stop(void *arg)
{
    struct gw *gw = arg;
    gw_events_stop(gw);
    gw_httpd_stop(gw);
    gw_s3_stop(gw);
    gw_ingest_stop(gw);
    gw_repair_stop(gw);
    gw_s3_mpu_stop(gw);
    /* No put runs any more: the unused reservations go back to metadata. */
    gw_resv_free(gw->resv);
    gw->resv = NULL;
}

static void gw_free(void *arg)
{
    struct gw *gw = arg;
    gw_resv_free(gw->resv); /* when the start failed before gw_stop */
    gw->resv = NULL;
    gw->mq = NULL;
    gw_events_free(gw);
    gw_ingest_free(gw);
    gw_conn_pool_free(gw); /* every HTTP and repair thread has ended by now */
    if (gw->curl_ok)
        curl_global_cleanup();
    gw_cleanup(gw);
}

int main(int argc, char **argv)
{
    static struct gw gw; /* large (EC cache); the only instance, passed around explicitly */
    const struct dyno_agent_hooks hooks = {
        DYNO_AGENT_HOOKS_STATE("gateway", gw_opts, gw),
        .interval = 10,
        .setup = gw_setup,
        .start = gw_start,
        .started = gw_started,
        .stop = gw_stop,
        .cleanup = gw_free,
    };
    return dyno_agent_main(argc, argv, &hooks);
}
