/*
 * dyno-gateway: the REST front door of DynoStore. Reads the configuration, loads the
 * token verifier, connects to the broker, serves HTTP, and waits for a signal.
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "gw.h"
#include "limit.h"
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
    {"limit_table_size", DYNO_OPT_INT, offsetof(struct gw_cfg, limit_table_size), "4096",
     "client addresses and usernames each limit table tracks at most"},
    {"repair_workers", DYNO_OPT_INT, offsetof(struct gw_cfg, repair_workers), "1",
     "repair and GC worker threads (0 = none)"},
    {"repair_poll_ms", DYNO_OPT_INT, offsetof(struct gw_cfg, repair_poll_ms), "1000",
     "idle wait between repair claims"},
    {"repair_rate_bytes", DYNO_OPT_INT, offsetof(struct gw_cfg, repair_rate_bytes), "64M",
     "bytes/s repairs read and write at most"},
};
#define GW_NOPTS (sizeof(gw_opts) / sizeof(gw_opts[0]))

static const struct {
    const char *name, *help, *type;
} gw_metric_defs[GW_M_COUNT] = {
    [GW_M_REQUESTS] = {"dyno_gateway_requests_total", "REST requests received", "counter"},
    [GW_M_PUTS] = {"dyno_gateway_puts_total", "objects stored", "counter"},
    [GW_M_GETS] = {"dyno_gateway_gets_total", "object reads served", "counter"},
    [GW_M_BYTES_IN] = {"dyno_gateway_bytes_in_total", "object bytes received from clients", "counter"},
    [GW_M_BYTES_OUT] = {"dyno_gateway_bytes_out_total", "object bytes sent to clients", "counter"},
    [GW_M_PUT_FAILURES] = {"dyno_gateway_put_failures_total", "puts that failed and were aborted", "counter"},
    [GW_M_CRC_ERRORS] = {"dyno_gateway_fragment_crc_errors_total", "fragment records with a bad CRC",
                         "counter"},
    [GW_M_DEGRADED_READS] = {"dyno_gateway_degraded_reads_total", "reads that needed parity", "counter"},
    [GW_M_INFLIGHT] = {"dyno_gateway_inflight_requests", "requests in progress", "gauge"},
    [GW_M_INGESTED] = {"dyno_gateway_ingested_total", "MQTT ingest messages stored as objects", "counter"},
    [GW_M_INGEST_REFUSED] = {"dyno_gateway_ingest_refused_total",
                             "MQTT ingest messages refused (unauthenticated, forbidden, too large, failed)",
                             "counter"},
    [GW_M_SSE_CLIENTS] = {"dyno_gateway_sse_clients", "open server-sent event streams", "gauge"},
    [GW_M_REPAIRS] = {"dyno_gateway_repairs_total", "objects whose lost fragments were rebuilt", "counter"},
    [GW_M_REPAIR_BYTES] = {"dyno_gateway_repair_bytes_total", "fragment bytes written by repairs", "counter"},
    [GW_M_GC_DELETED] = {"dyno_gateway_gc_deleted_total", "garbage fragments deleted", "counter"},
};

static void gw_log_config_error(const char *err)
{
    char q[600];
    dyno_error("bad configuration", "error=%s", dyno_log_q(q, sizeof(q), err));
}

/* Checks what the option parser cannot: ranges and combinations. */
static int gw_cfg_check(const struct gw_cfg *c, char *err, size_t cap)
{
    if (!dyno_valid_segment(c->c.id))
        snprintf(err, cap, "id must be [A-Za-z0-9._-]{1,64}");
    else if (c->port < 0 || c->port > 65535)
        snprintf(err, cap, "port must be 0..65535");
    else if (c->c.broker_port < 1 || c->c.broker_port > 65535)
        snprintf(err, cap, "broker_port must be 1..65535");
    else if (c->unit < 4096 || c->unit > (int64_t)DYNO_FRAG_MAX_UNIT)
        snprintf(err, cap, "unit must be 4K..16M");
    else if (c->k < 1 || c->k > DYNO_EC_MAX_K || c->m < 0 || c->m > DYNO_EC_MAX_M)
        snprintf(err, cap, "k must be 1..%d and m 0..%d", DYNO_EC_MAX_K, DYNO_EC_MAX_M);
    else if (c->write_quorum < 0 || c->write_quorum > GW_MAX_N)
        snprintf(err, cap, "write_quorum must be 0..%d", GW_MAX_N);
    else if (c->small_max < 0 || c->small_max > (int64_t)DYNO_FRAG_MAX_UNIT)
        snprintf(err, cap, "small_max must be 0..16M");
    else if (c->fragment_timeout_ms < 100 || c->rpc_timeout_ms < 100)
        snprintf(err, cap, "fragment_timeout_ms and rpc_timeout_ms must be >= 100");
    else if (c->commit_resolve_ms < 0)
        snprintf(err, cap, "commit_resolve_ms must be >= 0");
    else if (c->max_connections < 1 || c->max_connections > 65536)
        snprintf(err, cap, "max_connections must be 1..65536");
    else if (c->max_connections_per_ip < 1 || c->max_connections_per_ip > c->max_connections)
        snprintf(err, cap, "max_connections_per_ip must be 1..max_connections");
    else if (c->login_per_ip_per_min < 1 || c->login_per_user_per_min < 1 ||
             c->login_per_ip_per_min > 1000000 || c->login_per_user_per_min > 1000000)
        snprintf(err, cap, "login_per_ip_per_min and login_per_user_per_min must be 1..1000000");
    else if (c->max_streams_per_user < 1 || c->max_streams_per_user > 65536)
        snprintf(err, cap, "max_streams_per_user must be 1..65536");
    else if (c->limit_table_size < c->max_connections || c->limit_table_size > DYNO_LIMIT_CAP_MAX)
        snprintf(err, cap, "limit_table_size must be max_connections..%d", DYNO_LIMIT_CAP_MAX);
    else if (c->max_body < 0)
        snprintf(err, cap, "max_body must be >= 0");
    else if (c->repair_workers < 0 || c->repair_workers > 64)
        snprintf(err, cap, "repair_workers must be 0..64");
    else if (c->repair_poll_ms < 10 || c->repair_rate_bytes < 4096)
        snprintf(err, cap, "repair_poll_ms must be >= 10 and repair_rate_bytes >= 4K");
    else if (!c->c.public_key_file)
        snprintf(err, cap, "public_key_file is required (tokens are verified offline)");
    else if (!c->c.service_token_file)
        snprintf(err, cap, "service_token_file is required (broker login, container calls)");
    else if ((c->tls_cert != NULL) != (c->tls_key != NULL))
        snprintf(err, cap, "tls_cert and tls_key go together");
    else
        return 0;
    return DYNO_EINVAL;
}

static int gw_init(struct gw *gw, char *err, size_t cap)
{
    int rc = dyno_verifier_load(gw->cfg.c.public_key_file, &gw->verifier);
    if (rc) {
        snprintf(err, cap, "cannot load public_key_file %s: %s", gw->cfg.c.public_key_file, dyno_strerror(rc));
        return rc;
    }
    size_t len = 0;
    rc = dyno_read_file(gw->cfg.c.service_token_file, DYNO_TOKEN_MAX, &gw->service_token, &len);
    if (rc || len == 0) {
        snprintf(err, cap, "cannot read service_token_file %s: %s", gw->cfg.c.service_token_file,
                 rc ? dyno_strerror(rc) : "empty");
        return rc ? rc : DYNO_EINVAL;
    }
    /* The connection table holds at least max_connections keys, so every address that
     * holds a connection has a slot: it can only fail closed on a full login table. */
    rc = dyno_limit_new((size_t)gw->cfg.limit_table_size, &gw->conn_limit);
    if (rc == 0)
        rc = dyno_limit_new((size_t)gw->cfg.limit_table_size, &gw->login_limit);
    if (rc) {
        snprintf(err, cap, "cannot make the limit tables: %s", dyno_strerror(rc));
        return rc;
    }
    /* Built once and shared read-only by every easy handle: curl only reads the list. */
    char hdr[DYNO_TOKEN_MAX + 32];
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", gw->service_token);
    gw->svc_headers = curl_slist_append(NULL, hdr);
    gw_wipe(hdr, sizeof(hdr));
    /* No "Expect: 100-continue": it costs a round trip per fragment and a one-second
     * stall with a peer that does not answer it; containers refuse early anyway. */
    struct curl_slist *more = gw->svc_headers ? curl_slist_append(gw->svc_headers, "Expect:") : NULL;
    if (!more) {
        snprintf(err, cap, "out of memory");
        return DYNO_ENOMEM;
    }
    return 0;
}

static void gw_cleanup(struct gw *gw)
{
    curl_slist_free_all(gw->svc_headers);
    if (gw->service_token) {
        gw_wipe(gw->service_token, strlen(gw->service_token));
        free(gw->service_token);
    }
    dyno_verifier_free(gw->verifier);
    dyno_limit_free(gw->conn_limit);
    dyno_limit_free(gw->login_limit);
    gw_catcache_free(gw->catcache);
    for (int k = 0; k <= DYNO_EC_MAX_K; k++)
        for (int m = 0; m <= DYNO_EC_MAX_M; m++)
            dyno_ec_free(gw->ec_cache[k][m]);
    pthread_mutex_destroy(&gw->ec_lock);
    dyno_config_free(gw_opts, GW_NOPTS, &gw->cfg);
}

/* Stops what serves requests and their threads, in order: HTTP first (its threads use the
 * MQTT client until they end), the SSE streams before it (so that MHD's threads finish). */
static void gw_stop(struct gw *gw)
{
    gw_events_stop(gw);
    gw_httpd_stop(gw);
    gw_ingest_stop(gw);
    gw_repair_stop(gw);
}

int main(int argc, char **argv)
{
    static struct gw gwbuf; /* large (EC cache); the only instance, passed around explicitly */
    struct gw *gw = &gwbuf;
    char err[512] = "";
    int exit_code = 1;

    int rc = dyno_agent_setup("gateway", gw_opts, GW_NOPTS, &gw->cfg, &gw->cfg.c, argc, argv);
    if (rc != 0)
        return rc == 1 ? 0 : 1;
    if (gw_cfg_check(&gw->cfg, err, sizeof(err))) {
        gw_log_config_error(err);
        dyno_config_free(gw_opts, GW_NOPTS, &gw->cfg);
        return 1;
    }
    pthread_mutex_init(&gw->ec_lock, NULL);
    gw->tp = &gw_curl_transport; /* the data path reaches containers over HTTP (dp.h) */
    gw->meta = &gw_mqtt_meta;    /* and metadata over the broker */
    for (int i = 0; i < GW_M_COUNT; i++) {
        gw->metrics[i].name = gw_metric_defs[i].name;
        gw->metrics[i].help = gw_metric_defs[i].help;
        gw->metrics[i].type = gw_metric_defs[i].type;
        atomic_init(&gw->metrics[i].value, 0);
    }
    /* Library inits before any thread starts. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        dyno_error("curl_global_init failed", NULL);
        goto out;
    }
    if (gw_init(gw, err, sizeof(err))) {
        gw_log_config_error(err);
        goto out_curl;
    }
    if (dyno_agent_init(&gw->agent, "gateway", &gw->cfg.c) != 0)
        goto out_curl; /* logged */
    gw->mq = gw->agent.mq;
    if (gw_httpd_start(gw))
        goto out_agent; /* logged */
    if (gw_mqtt_start(gw) || dyno_agent_on_status(&gw->agent, gw_mqtt_status, gw) ||
        dyno_agent_on_connect(&gw->agent, gw_mqtt_on_connect, gw) || dyno_agent_start(&gw->agent))
        goto out_stop;
    /* Not fatal: the client keeps reconnecting, and requests answer 503 meanwhile. */
    if (dyno_mq_wait_connected(gw->mq, 3000))
        dyno_warn("broker not reachable yet", "host=%s port=%d", gw->cfg.c.broker_host,
                  (int)gw->cfg.c.broker_port);
    if (gw_events_start(gw) || gw_ingest_start(gw) || gw_repair_start(gw))
        goto out_stop;
    dyno_info("gateway started", "id=%s port=%u", gw->cfg.c.id, gw->port);
    dyno_agent_run(&gw->agent, 10);
    exit_code = 0;
out_stop:
    gw_stop(gw);
out_agent:
    dyno_agent_fini(&gw->agent);
    gw->mq = NULL;
    gw_events_free(gw);
    gw_ingest_free(gw);
out_curl:
    gw_conn_pool_free(gw); /* every HTTP and repair thread has ended by now */
    curl_global_cleanup();
out:
    gw_cleanup(gw);
    if (exit_code == 0)
        dyno_info("stopped", NULL);
    return exit_code;
}
