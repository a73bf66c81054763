/*
 * The gateway's start-up checks and state (main.c is the option table and the order):
 * metric names, the range checks the option parser cannot make, the verifier, service
 * token, limit tables and container headers, and their cleanup.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "limit.h"
#include "log.h"

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
    [GW_M_INGEST_DUPLICATES] = {"dyno_gateway_ingest_duplicates_total",
                                "MQTT ingest readings whose name already held the same bytes (stored once)",
                                "counter"},
    [GW_M_SSE_CLIENTS] = {"dyno_gateway_sse_clients", "open server-sent event streams", "gauge"},
    [GW_M_REPAIRS] = {"dyno_gateway_repairs_total", "objects whose lost fragments were rebuilt", "counter"},
    [GW_M_REPAIR_BYTES] = {"dyno_gateway_repair_bytes_total", "fragment bytes written by repairs", "counter"},
    [GW_M_GC_DELETED] = {"dyno_gateway_gc_deleted_total", "garbage fragments deleted", "counter"},
    [GW_M_AUTH_US] = {"dyno_gateway_auth_microseconds_total", "time spent checking bearer tokens", "counter"},
    [GW_M_GET_LOCATE_US] = {"dyno_gateway_get_locate_microseconds_total",
                            "time gets spent locating and authorizing (object.get, catalog policy)",
                            "counter"},
    [GW_M_GET_FETCH_US] = {"dyno_gateway_get_fetch_microseconds_total",
                           "time gets spent fetching, checking and decoding their first stripe", "counter"},
    [GW_M_GET_STREAM_US] = {"dyno_gateway_get_stream_microseconds_total",
                            "time from a get's reply queued to its response released", "counter"},
};

void gw_metrics_init(struct gw *gw)
{
    for (int i = 0; i < GW_M_COUNT; i++) {
        gw->metrics[i].name = gw_metric_defs[i].name;
        gw->metrics[i].help = gw_metric_defs[i].help;
        gw->metrics[i].type = gw_metric_defs[i].type;
        atomic_init(&gw->metrics[i].value, 0);
    }
}

void gw_log_config_error(const char *err)
{
    char q[600];
    dyno_error("bad configuration", "error=%s", dyno_log_q(q, sizeof(q), err));
}

/* Checks what the option parser cannot: ranges and combinations. */
int gw_cfg_check(const struct gw_cfg *c, char *err, size_t cap)
{
    if (!dyno_valid_segment(c->c.id))
        snprintf(err, cap, "id must be [A-Za-z0-9._-]{1,64}");
    else if (c->port < 0 || c->port > 65535)
        snprintf(err, cap, "port must be 0..65535");
    else if (c->s3_port < -1 || c->s3_port > 65535)
        snprintf(err, cap, "s3_port must be -1 (off) or 0..65535");
    else if (c->s3_port >= 0 && (!c->s3_region || !c->s3_region[0] || strlen(c->s3_region) > 63))
        snprintf(err, cap, "s3_region must be 1..63 characters");
    else if (c->s3_upload_ttl_s < 0)
        snprintf(err, cap, "s3_upload_ttl_s must be >= 0 (0: never)");
    else if (c->s3_long_grace_ms < 0 || c->s3_long_grace_ms > 600000)
        snprintf(err, cap, "s3_long_grace_ms must be 0..600000");
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
    else if (c->reserve_batch < 0 || c->reserve_batch > 128 || c->reserve_ttl_ms < 100)
        snprintf(err, cap, "reserve_batch must be 0..128 and reserve_ttl_ms >= 100");
    else if (c->device_code_ttl_s < 1 || c->device_code_ttl_s > 86400)
        snprintf(err, cap, "device_code_ttl_s must be 1..86400");
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

int gw_init(struct gw *gw, char *err, size_t cap)
{
    int rc = dyno_verifier_load(gw->cfg.c.public_key_file, &gw->verifier);
    if (rc) {
        snprintf(err, cap, "cannot load public_key_file %s: %s", gw->cfg.c.public_key_file,
                 dyno_strerror(rc));
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
     * stall with a peer that does not answer it; containers refuse early anyway. No
     * Content-Type (curl's form type on a body sent whole, xfer_curl.c) and no Accept:
     * containers read neither, and every header is bytes to send and parse per fragment. */
    static const char *const drop[] = {"Expect:", "Content-Type:", "Accept:"};
    struct curl_slist *more = gw->svc_headers;
    for (size_t i = 0; more && i < sizeof(drop) / sizeof(drop[0]); i++)
        more = curl_slist_append(gw->svc_headers, drop[i]);
    if (!more) {
        snprintf(err, cap, "out of memory");
        return DYNO_ENOMEM;
    }
    return 0;
}

void gw_cleanup(struct gw *gw)
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
    gw_s3key_free(gw);
    for (int k = 0; k <= DYNO_EC_MAX_K; k++)
        for (int m = 0; m <= DYNO_EC_MAX_M; m++)
            dyno_ec_free(gw->ec_cache[k][m]);
    pthread_mutex_destroy(&gw->ec_lock);
    gw_rtt_destroy(&gw->rtt);
}
