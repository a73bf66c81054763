/*
 * dynostore up: a whole fabric on this machine (SPEC §2, protocol.md §5 and §6).
 *
 * Lays out DIR (keys, secrets, broker, one folder per agent, containers, logs), writes
 * every config, then starts mosquitto, dyno-auth, dyno-metadata, dyno-pubsub, N
 * dyno-container and dyno-gateway, each with stdout and stderr in DIR/logs/<name>.log and
 * in its own process group (so a Ctrl-C in the terminal reaches only `up`). When the
 * gateway answers and every container is online it writes DIR/fabric.json ("ready": true)
 * and the CLI settings, and supervises: a child that dies is reported, never restarted
 * (tests kill and restart children themselves from fabric.json's argv); SIGINT or SIGTERM
 * stops the children in reverse order (SIGTERM, 5 s, SIGKILL), by pid.
 *
 * Starting again on the same DIR reuses keys, tokens, databases and fragments.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>

#include "buf.h"
#include "cli.h"
#include "config.h"
#include "json.h"
#include "mq.h"
#include "names.h"
#include "rest.h"
#include "token.h"

#define UP_PATH 4096
#define UP_MAX_CONTAINERS 64
#define UP_MAX_PROCS (2 * UP_MAX_CONTAINERS + 6) /* + a broker per site (sites <= containers) */
#define UP_STOP_GRACE_S 5.0
#define UP_AUTH_WAIT_S 10.0
#define UP_PORTFILE_WAIT_S 10.0
#define UP_READY_WAIT_S 20.0
#define UP_LOG_TAIL_LINES 20
/* The largest MQTT ingest payload: the gateway's ingest_max and the broker plugin's, one
 * number so a user can never make the broker keep what the gateway would refuse. */
#define UP_INGEST_MAX (256 * 1024)
/* The largest packet the broker takes from anyone: a service RPC (lib/mq.h
 * DYNO_MQ_PAYLOAD_MAX) plus room for its topic and properties. Users are held to
 * UP_INGEST_MAX by the plugin. */
#define UP_PACKET_MAX (DYNO_MQ_PAYLOAD_MAX + 64 * 1024)
#define UP_BROKER_QUEUED_MAX 100000                  /* messages queued per broker client (docs/pubsub.md) */
#define UP_BROKER_QUEUED_BYTES (128LL * 1024 * 1024) /* and their bytes */
#define UP_BROKER_SYS_INTERVAL_S 5 /* how often $SYS counters (drops, bridge state) are published */
#define UP_BRIDGE_KEEPALIVE_S 10   /* a site bridge notices a cut link within 15 s */

/* Start stages; stopping goes the other way. */
/* The site brokers start once dyno-auth wrote the service token their bridges log in with. */
enum { ST_BROKER, ST_AUTH, ST_METADATA, ST_PUBSUB, ST_SITE_BROKERS, ST_CONTAINERS, ST_GATEWAY, ST_COUNT };

struct up_proc {
    char name[64]; /* "container-c1" */
    const char *kind;
    char id[32];
    int stage;
    char *argv[8]; /* malloc'd strings, NULL-terminated */
    char log[UP_PATH];
    off_t log_start; /* where this run's lines begin */
    pid_t pid;
    bool alive;
    bool reported; /* its death was announced */
};

struct up {
    const struct cli_ctx *x;
    char data[UP_PATH];
    char bindir[UP_PATH];
    char mosquitto[UP_PATH];
    char plugin[UP_PATH]; /* dyno_auth.so, absolute */
    int ncont;
    int nsites; /* containers go round robin over site-1..site-<nsites> */
    const char *capacity;
    const char *backend; /* --backend SPEC (up__backend_of), NULL: posix everywhere */
    const char *s3_endpoint, *s3_bucket, *s3_region, *s3_access_key, *s3_secret_file; /* --s3-* */
    const char *repair_grace; /* NULL: the metadata default */
    int port_req;             /* asked gateway port; 0 = any */
    bool tls;
    bool site_brokers; /* --site-brokers: a broker per site, bridged to this one */
    int broker_port, gw_port;
    int s3_port; /* the gateway's S3 endpoint (issue 14): 0 until it bound one */
    char s3_url[128];
    int site_port[UP_MAX_CONTAINERS + 1]; /* [S]: site-S's broker port (with site_brokers) */
    int def_k, def_m; /* default resilience when fewer than 5 containers; 0 = agents' default */
    char gw_url[128];
    struct up_proc procs[UP_MAX_PROCS];
    int nprocs;
    int lock_fd;
};

static volatile sig_atomic_t up_signal;

static void up__on_signal(int sig)
{
    up_signal = sig;
}

static void up__sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal cuts it short: fine, the callers poll */
}

/* snprintf into a path buffer; false when it does not fit. */
static bool up__path(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool up__path(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, UP_PATH, fmt, ap);
    va_end(ap);
    return n >= 0 && n < UP_PATH;
}

static bool up__file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* path made absolute (against the current folder; "." and ".." are left to the kernel). */
static bool up__abs_path(const char *in, char *out)
{
    if (in[0] == '/')
        return up__path(out, "%s", in);
    char cwd[UP_PATH];
    if (!getcwd(cwd, sizeof(cwd)))
        return false;
    if (strcmp(in, ".") == 0)
        return up__path(out, "%s", cwd);
    if (strncmp(in, "./", 2) == 0)
        in += 2;
    return up__path(out, "%s/%s", cwd, in);
}

/* ---- ports ------------------------------------------------------------------------------- */

/* A free 127.0.0.1 port (bind port 0, read it, close); 0 on failure. */
static int up__free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Whether 127.0.0.1:port can be bound now (as servers do, with SO_REUSEADDR). */
static bool up__port_is_free(int port)
{
    if (port <= 0 || port > 65535)
        return false;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static bool up__port_accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* A whole decimal in lo..hi (lo >= 0), through the library's strict parser: no sign, no
 * space, no trailing text, no overflow, as the gateway reads numbers. */
static bool up__parse_num(const char *s, long lo, long hi, long *out)
{
    uint64_t v;
    if (dyno_rest_parse_u64(s, &v) != 0 || v < (uint64_t)lo || v > (uint64_t)hi)
        return false;
    *out = (long)v;
    return true;
}

/* Port number written in a port file; 0 when absent or not yet written. */
static int up__read_port_file(const char *path)
{
    char *t = NULL;
    if (dyno_read_file(path, 64, &t, NULL) < 0)
        return 0;
    long v = 0;
    int port = up__parse_num(t, 1, 65535, &v) ? (int)v : 0;
    free(t);
    return port;
}

/* ---- files ------------------------------------------------------------------------------- */

static int up__write_json(const char *path, const cJSON *doc, unsigned mode)
{
    char *text = cJSON_Print(doc);
    if (!text)
        return DYNO_ENOMEM;
    size_t n = strlen(text);
    int rc = dyno_write_file(path, text, n, mode);
    cJSON_free(text);
    if (rc < 0)
        cli_err("cannot write %s: %s", path, dyno_strerror(rc));
    return rc;
}

/* Random hex secret of 2*nbytes characters. */
static int up__random_hex(char *out, size_t nbytes)
{
    uint8_t b[64];
    if (nbytes > sizeof(b))
        return DYNO_EINVAL;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return DYNO_EIO;
    ssize_t r = read(fd, b, nbytes);
    close(fd);
    if (r != (ssize_t)nbytes)
        return DYNO_EIO;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * nbytes] = '\0';
    return 0;
}

static int up__make_dirs(struct up *u)
{
    static const char *const sub[] = {"keys",   "secrets", "broker",     "broker/data", "auth", "metadata",
                                      "pubsub", "gateway", "containers", "logs",        "tls"};
    char p[UP_PATH];
    for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
        if (strcmp(sub[i], "tls") == 0 && !u->tls)
            continue;
        if (!up__path(p, "%s/%s", u->data, sub[i]) || cli_mkdirs(p, 0700) < 0)
            return cli_err("cannot create %s/%s: %s", u->data, sub[i], strerror(errno));
    }
    for (int i = 1; i <= u->ncont; i++) {
        if (!up__path(p, "%s/containers/c%d/frags", u->data, i) || cli_mkdirs(p, 0700) < 0)
            return cli_err("cannot create %s: %s", p, strerror(errno));
    }
    /* secrets and keys are for the owner only, whatever the umask said before */
    if (up__path(p, "%s/secrets", u->data))
        chmod(p, 0700);
    if (up__path(p, "%s/keys", u->data))
        chmod(p, 0700);
    return CLI_OK;
}

/* Only one `up` per DIR: a fcntl lock on DIR/up.lock, held while we run. */
static int up__lock_dir(struct up *u)
{
    char p[UP_PATH];
    if (!up__path(p, "%s/up.lock", u->data))
        return cli_err("data folder path too long");
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return cli_err("cannot open %s: %s", p, strerror(errno));
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        long other = fcntl(fd, F_GETLK, &q) == 0 ? (long)q.l_pid : 0;
        close(fd);
        return cli_err("a fabric is already running on %s (dynostore up, pid %ld)", u->data, other);
    }
    u->lock_fd = fd;
    return CLI_OK;
}

/* The broker port of the last run, from DIR/fabric.json, and the gateway's in *gw; 0 if none. */
static int up__previous_ports(const struct up *u, int *gw)
{
    char p[UP_PATH];
    char *text = NULL;
    size_t len = 0;
    cJSON *doc = NULL;
    int64_t port = 0;
    *gw = 0;
    if (!up__path(p, "%s/fabric.json", u->data) || dyno_read_file(p, 1024 * 1024, &text, &len) < 0)
        return 0;
    if (dyno_json_parse(text, len, 1024 * 1024, &doc) == 0) {
        (void)dyno_json_i64(cJSON_GetObjectItemCaseSensitive(doc, "broker"), "port", &port);
        const char *url = dyno_json_str(doc, "gateway");
        const char *colon = url ? strrchr(url, ':') : NULL;
        long v;
        if (colon && up__parse_num(colon + 1, 1, 65535, &v))
            *gw = (int)v;
    }
    cJSON_Delete(doc);
    free(text);
    return port > 0 && port <= 65535 ? (int)port : 0;
}

static int up__make_secrets(struct up *u)
{
    char key[UP_PATH], pub[UP_PATH], pw[UP_PATH];
    if (!up__path(key, "%s/keys/auth.key", u->data) || !up__path(pub, "%s/keys/auth.pub", u->data) ||
        !up__path(pw, "%s/secrets/admin.password", u->data))
        return cli_err("data folder path too long");
    if (!up__file_exists(key) || !up__file_exists(pub)) {
        int rc = dyno_token_keygen(key, pub);
        if (rc < 0)
            return cli_err("cannot generate the signing keys in %s/keys: %s", u->data, dyno_strerror(rc));
        chmod(key, 0600);
    }
    if (!up__file_exists(pw)) {
        char secret[41];
        if (up__random_hex(secret, 20) < 0)
            return cli_err("cannot read /dev/urandom");
        secret[40] = '\n';
        int rc = dyno_write_file(pw, secret, 41, 0600);
        memset(secret, 0, sizeof(secret));
        if (rc < 0)
            return cli_err("cannot write %s: %s", pw, dyno_strerror(rc));
    }
    return CLI_OK;
}

/*
 * The part of a broker's mosquitto.conf that the core broker and a site broker share: the
 * listener on port, the plugin (bridge_id: the site's bridge, NULL for the core; its feeds
 * are trusted, broker/plugin.c), the bounds, and persistence in DIR/<dir>/data.
 */
static int up__broker_conf_common(const struct up *u, struct dyno_buf *b, int port, const char *dir,
                                  const char *bridge_id)
{
    struct passwd *pw = getpwuid(geteuid());
    const char *user = pw && pw->pw_name ? pw->pw_name : "root";
    int rc = dyno_buf_printf(b,
                             "# Written by `dynostore up`; rewritten on every start.\n"
                             "per_listener_settings false\n"
                             "# run as the user who started the fabric (as root, mosquitto would switch\n"
                             "# to the 'mosquitto' user, who cannot write %s)\n"
                             "user %s\n"
                             "# without it Nagle + delayed ACK add ~40 ms to request/response\n"
                             "set_tcp_nodelay true\n"
                             "listener %d 127.0.0.1\n",
                             u->data, user, port);
    if (rc == 0 && u->tls)
        rc = dyno_buf_printf(b,
                             "cafile %s/tls/ca.crt\n"
                             "certfile %s/tls/server.crt\n"
                             "keyfile %s/tls/server.key\n",
                             u->data, u->data, u->data);
    if (rc == 0)
        rc = dyno_buf_printf(b,
                             "\n"
                             "# Authentication and access: the dyno_auth plugin (SPEC section 7,\n"
                             "# docs/security.md). Clients log in with username = their name (services:\n"
                             "# <kind>-<id>) and password = a token; nobody gets in anonymously.\n"
                             "allow_anonymous false\n"
                             "plugin %s\n"
                             "plugin_opt_public_key_file %s/keys/auth.pub\n"
                             "# users may publish at most the gateway's ingest_max, never retained\n"
                             "plugin_opt_ingest_max %d\n"
                             "# the revocation document, kept across broker restarts (fail closed without)\n"
                             "plugin_opt_revoked_file %s/%s/data/revoked.json\n",
                             u->plugin, u->data, UP_INGEST_MAX, u->data, dir);
    if (rc == 0 && bridge_id)
        rc = dyno_buf_printf(b,
                             "# the policy and revocation feeds come in through the bridge below\n"
                             "plugin_opt_bridge_client_id %s\n",
                             bridge_id);
    if (rc == 0)
        rc = dyno_buf_printf(b,
                             "# no packet past a service RPC's limit (mosquitto's default is 256 MB)\n"
                             "max_packet_size %d\n"
                             "\n"
                             "# Messages queued per client (docs/pubsub.md): the gateway's ingest\n"
                             "# sessions acknowledge a reading only once it is stored, so the backlog of a\n"
                             "# burst waits here, up to these bounds per session (past them the broker\n"
                             "# drops what it queues, with a warning in this log). On a site broker they\n"
                             "# bound the bridge's queue while the link to the core is down\n"
                             "# (docs/operations.md); $SYS/broker/publish/messages/dropped counts drops.\n"
                             "max_queued_messages %d\n"
                             "max_queued_bytes %lld\n"
                             "\n"
                             "persistence true\n"
                             "persistence_location %s/%s/data/\n"
                             "autosave_interval 1\n"
                             "sys_interval %d\n"
                             "log_dest stderr\n"
                             "# not 'information': autosave every second would flood the log\n"
                             "log_type error\nlog_type warning\nlog_type notice\n"
                             "log_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S\n",
                             UP_PACKET_MAX, UP_BROKER_QUEUED_MAX, (long long)UP_BROKER_QUEUED_BYTES, u->data,
                             dir, UP_BROKER_SYS_INTERVAL_S);
    return rc;
}

static int up__write_conf_buf(struct dyno_buf *b, const char *path, int rc)
{
    if (rc < 0) {
        dyno_buf_free(b);
        return cli_err("cannot build the broker configuration %s", path);
    }
    rc = dyno_write_file(path, b->data, b->len, 0600);
    dyno_buf_free(b);
    if (rc < 0)
        return cli_err("cannot write %s: %s", path, dyno_strerror(rc));
    return CLI_OK;
}

static int up__write_broker_conf(struct up *u)
{
    char p[UP_PATH];
    struct dyno_buf b;
    dyno_buf_init(&b, 64 * 1024);
    if (!up__path(p, "%s/broker/mosquitto.conf", u->data))
        return cli_err("data folder path too long");
    return up__write_conf_buf(&b, p, up__broker_conf_common(u, &b, u->broker_port, "broker", NULL));
}

/*
 * One bridge connection of a site broker to the core broker, logging in there as the
 * service id (also its client id on both brokers) with token; topics: its "topic" lines.
 */
static int up__bridge_section(const struct up *u, struct dyno_buf *b, const char *name, const char *id,
                              const char *protocol, const char *token, const char *topics)
{
    int rc =
        dyno_buf_printf(b,
                        "\n"
                        "connection %s\n"
                        "address 127.0.0.1:%d\n"
                        "bridge_protocol_version %s\n"
                        "remote_clientid %s\n"
                        "local_clientid %s\n"
                        "remote_username %s\n"
                        "remote_password %s\n"
                        "cleansession false\n"
                        "# a cut is noticed within 1.5 x keepalive; reconnects back off up to 10 s\n"
                        "keepalive_interval %d\n"
                        "restart_timeout 1 10\n"
                        "# $SYS/broker/connection/%s/state on this broker: 1 connected, 0 not\n"
                        "notifications true\n"
                        "notifications_local_only true\n"
                        "%s",
                        name, u->broker_port, protocol, id, id, id, token, UP_BRIDGE_KEEPALIVE_S, id, topics);
    if (rc == 0 && u->tls)
        rc = dyno_buf_printf(b, "bridge_cafile %s/tls/ca.crt\n", u->data);
    return rc;
}

/*
 * DIR/sites/site-S/broker/mosquitto.conf: a broker for site S's devices, bridged to the core
 * broker (docs/architecture.md, "A broker per site") by two connections, both logged in with
 * the service token (written by dyno-auth; it goes into the file, 0600, because mosquitto
 * reads no password file):
 *   bridge-site-S     MQTT v5, readings out: v5 carries the user properties the site's plugin
 *                     stamped (dyno-user, ...) and the reading's name. What waits while the
 *                     link is down is queued here (this broker keeps the bridge's session).
 *   bridge-site-S-in  MQTT 3.1.1, events and the policy and revocation feeds in. mosquitto
 *                     2.0's v5 bridge sends no Session Expiry Interval, so the core would drop
 *                     its session (and what it queued for the site) on every disconnect;
 *                     3.1.1 with cleansession false keeps it, and what the core publishes
 *                     during a cut reaches the site after it. These carry nothing in user
 *                     properties that a consumer needs (an event's type is in its payload).
 * RPCs and their replies stay at the core, where every agent is connected.
 */
static int up__write_site_broker_conf(struct up *u, int site)
{
    char p[UP_PATH], dir[64], id[64], in_id[64], tokp[UP_PATH];
    char *token = NULL;
    size_t toklen = 0;
    snprintf(dir, sizeof(dir), "sites/site-%d/broker", site);
    snprintf(id, sizeof(id), "bridge-site-%d", site);
    snprintf(in_id, sizeof(in_id), "bridge-site-%d-in", site);
    if (!up__path(p, "%s/%s/data", u->data, dir) || cli_mkdirs(p, 0700) < 0)
        return cli_err("cannot create %s/%s/data: %s", u->data, dir, strerror(errno));
    if (!up__path(tokp, "%s/secrets/service.token", u->data) ||
        dyno_read_file(tokp, DYNO_TOKEN_MAX, &token, &toklen) < 0)
        return cli_err("cannot read the service token %s for the site brokers' bridges", tokp);
    while (toklen > 0 && (token[toklen - 1] == '\n' || token[toklen - 1] == '\r' || token[toklen - 1] == ' '))
        token[--toklen] = '\0';
    struct dyno_buf b;
    dyno_buf_init(&b, 64 * 1024);
    int rc = up__broker_conf_common(u, &b, u->site_port[site], dir, in_id);
    if (rc == 0)
        rc = dyno_buf_printf(
            &b, "\n# The bridge to the core broker (docs/architecture.md, \"A broker per site\"):\n"
                "# readings out over MQTT v5, events and feeds in over 3.1.1 (up.c says why).\n");
    if (rc == 0)
        rc = up__bridge_section(u, &b, "core-out", id, "mqttv50", token, "topic dyno/v1/ingest/# out 1\n");
    if (rc == 0)
        rc = up__bridge_section(u, &b, "core-in", in_id, "mqttv311", token,
                                "topic dyno/v1/events/# in 1\n"
                                "topic dyno/v1/acl/# in 1\n"
                                "topic dyno/v1/auth/revoked in 1\n");
    memset(token, 0, toklen);
    free(token);
    if (!up__path(p, "%s/%s/mosquitto.conf", u->data, dir)) {
        dyno_buf_free(&b);
        return cli_err("data folder path too long");
    }
    return up__write_conf_buf(&b, p, rc);
}

/* The keys every agent has (protocol.md §6). */
static cJSON *up__agent_conf(const struct up *u, const char *id)
{
    char p[UP_PATH];
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "broker_host", "127.0.0.1");
    cJSON_AddNumberToObject(o, "broker_port", u->broker_port);
    if (u->tls && up__path(p, "%s/tls/ca.crt", u->data))
        cJSON_AddStringToObject(o, "broker_cafile", p);
    if (up__path(p, "%s/secrets/service.token", u->data))
        cJSON_AddStringToObject(o, "service_token_file", p);
    if (up__path(p, "%s/keys/auth.pub", u->data))
        cJSON_AddStringToObject(o, "public_key_file", p);
    cJSON_AddStringToObject(o, "log_level", "info");
    return o;
}

static void up__add_path(cJSON *o, const char *key, const struct up *u, const char *rel)
{
    char p[UP_PATH];
    if (up__path(p, "%s/%s", u->data, rel))
        cJSON_AddStringToObject(o, key, p);
}

/* Registers a process to start; its config goes to conf_path. */
static struct up_proc *up__add_proc(struct up *u, const char *kind, const char *id, int stage,
                                    const char *exe, const char *conf_path)
{
    struct up_proc *p = &u->procs[u->nprocs];
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    snprintf(p->id, sizeof(p->id), "%s", id);
    if (strcmp(kind, "broker") == 0)
        snprintf(p->name, sizeof(p->name), "mosquitto");
    else if (strcmp(kind, "site-broker") == 0)
        snprintf(p->name, sizeof(p->name), "mosquitto-%s", id);
    else
        snprintf(p->name, sizeof(p->name), "%s-%s", kind, id);
    p->stage = stage;
    if (!up__path(p->log, "%s/logs/%s.log", u->data, p->name))
        return NULL;
    p->argv[0] = strdup(exe);
    p->argv[1] = strdup(strcmp(kind, "broker") == 0 || strcmp(kind, "site-broker") == 0 ? "-c" : "--config");
    p->argv[2] = strdup(conf_path);
    if (!p->argv[0] || !p->argv[1] || !p->argv[2])
        return NULL;
    u->nprocs++;
    return p;
}

/* DIR/gateway/config.json with the gateway port of now (0 = any, the gateway writes the one it
 * bound to its port file); its path goes to conf (UP_PATH bytes). */
static int up__write_gateway_conf(struct up *u, char *conf)
{
    cJSON *o = up__agent_conf(u, "gw1");
    if (!o)
        return cli_err("out of memory while writing the gateway config");
    cJSON_AddStringToObject(o, "listen_host", "127.0.0.1");
    cJSON_AddNumberToObject(o, "port", u->gw_port);
    cJSON_AddNumberToObject(o, "ingest_max", UP_INGEST_MAX);
    up__add_path(o, "port_file", u, "gateway/port");
    /* The S3 endpoint (docs/s3.md) on a port of its own, kept across restarts like the
     * gateway's; its port file is written before the gateway's. */
    cJSON_AddNumberToObject(o, "s3_port", u->s3_port);
    up__add_path(o, "s3_port_file", u, "gateway/s3port");
    if (u->def_k) {
        cJSON_AddNumberToObject(o, "k", u->def_k);
        cJSON_AddNumberToObject(o, "m", u->def_m);
    }
    if (u->tls) {
        up__add_path(o, "tls_cert", u, "tls/server.crt");
        up__add_path(o, "tls_key", u, "tls/server.key");
    }
    int rc = CLI_OK;
    if (!up__path(conf, "%s/gateway/config.json", u->data) || up__write_json(conf, o, 0600) < 0)
        rc = CLI_FAIL;
    cJSON_Delete(o);
    return rc;
}

/*
 * The backend of container i under a --backend SPEC: a comma-separated list whose items are
 * a backend name (every container), site-N=NAME (the containers of site-N, --sites) or
 * cN=NAME (container cN); cN wins over site-N, which wins over a bare name. Writes the name
 * into out (posix when the spec says nothing). False on an item that is none of these, a
 * name that is not a backend, cN out of 1..ncont or site-N out of 1..nsites.
 */
static bool up__backend_of(const char *spec, int ncont, int nsites, int i, char *out, size_t cap)
{
    static const char *const names[] = {"posix", "memory", "s3"};
    char all[16] = "posix", mine[16] = "", site[16] = "";
    const char *p = spec ? spec : "";
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char item[64];
        if (n == 0 || n >= sizeof(item))
            return false;
        memcpy(item, p, n);
        item[n] = '\0';
        char *eq = strchr(item, '=');
        const char *name = eq ? eq + 1 : item;
        bool known = false;
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
            known = known || strcmp(name, names[k]) == 0;
        if (!known)
            return false;
        if (eq && strncmp(item, "site-", 5) == 0) {
            *eq = '\0';
            char *num_end = NULL;
            long s = strtol(item + 5, &num_end, 10);
            if (num_end == item + 5 || *num_end || item[5] < '1' || item[5] > '9' || s < 1 || s > nsites)
                return false;
            if ((i - 1) % nsites + 1 == s)
                snprintf(site, sizeof(site), "%.15s", name);
        } else if (eq) {
            *eq = '\0';
            char *num_end = NULL;
            long c = item[0] == 'c' ? strtol(item + 1, &num_end, 10) : 0;
            if (!num_end || num_end == item + 1 || *num_end || c < 1 || c > ncont)
                return false;
            if (c == i)
                snprintf(mine, sizeof(mine), "%.15s", name);
        } else {
            snprintf(all, sizeof(all), "%.15s", name);
        }
        p += n;
        if (*p == ',')
            p++;
    }
    snprintf(out, cap, "%s", mine[0] ? mine : site[0] ? site : all);
    return true;
}

/*
 * DIR/containers/c<i>/config.json. port 0 lets the container take any free port; once it has
 * written the one it bound, up calls this again with that port, so that a container restarted
 * from its recorded command line comes back on the same URL: a read or repair that began
 * before the restart, or a fragment location not yet refreshed, still reaches it (and a port
 * taken over by another container cannot be mistaken for it).
 */
static int up__write_container_conf(struct up *u, int i, int port, char *conf)
{
    char id[16], rel[64], site[32];
    snprintf(id, sizeof(id), "c%d", i);
    snprintf(site, sizeof(site), "site-%d", (i - 1) % u->nsites + 1);
    cJSON *o = up__agent_conf(u, id);
    if (!o)
        return cli_err("out of memory while writing the config of container %s", id);
    snprintf(rel, sizeof(rel), "containers/%s/frags", id);
    up__add_path(o, "dir", u, rel);
    char backend[16];
    if (!up__backend_of(u->backend, u->ncont, u->nsites, i, backend, sizeof(backend))) {
        cJSON_Delete(o);
        return cli_err("up: bad --backend for container %s", id); /* checked at parse */
    }
    cJSON_AddStringToObject(o, "backend", backend);
    if (strcmp(backend, "s3") == 0) {
        /* One bucket for the fabric, a prefix per container. The secret stays in its file. */
        char prefix[24], secret[UP_PATH];
        snprintf(prefix, sizeof(prefix), "%s/", id);
        cJSON_AddStringToObject(o, "s3_endpoint", u->s3_endpoint);
        cJSON_AddStringToObject(o, "s3_bucket", u->s3_bucket);
        cJSON_AddStringToObject(o, "s3_prefix", prefix);
        cJSON_AddStringToObject(o, "s3_region", u->s3_region ? u->s3_region : "us-east-1");
        cJSON_AddStringToObject(o, "s3_access_key", u->s3_access_key);
        char cwd[UP_PATH];
        /* the container runs elsewhere: a relative path is made absolute */
        if (u->s3_secret_file[0] == '/' || !getcwd(cwd, sizeof(cwd)) ||
            !up__path(secret, "%s/%s", cwd, u->s3_secret_file))
            snprintf(secret, sizeof(secret), "%s", u->s3_secret_file);
        cJSON_AddStringToObject(o, "s3_secret_file", secret);
    }
    cJSON_AddStringToObject(o, "site", site);
    cJSON_AddStringToObject(o, "capacity", u->capacity);
    cJSON_AddStringToObject(o, "listen_host", "127.0.0.1");
    cJSON_AddNumberToObject(o, "port", port);
    snprintf(rel, sizeof(rel), "containers/%s/port", id);
    up__add_path(o, "port_file", u, rel);
    int rc = CLI_OK;
    if (!up__path(conf, "%s/containers/%s/config.json", u->data, id) || up__write_json(conf, o, 0600) < 0)
        rc = CLI_FAIL;
    cJSON_Delete(o);
    return rc;
}

#define UP_CONF_NOMEM "out of memory or path too long while writing the configs"

static cJSON *up__auth_conf(const struct up *u)
{
    cJSON *o = up__agent_conf(u, "auth1");
    if (!o)
        return NULL;
    up__add_path(o, "db", u, "auth/auth.db");
    up__add_path(o, "private_key_file", u, "keys/auth.key");
    /* Apart from auth/: a copy of the database folder alone gives no S3 secret. */
    up__add_path(o, "s3_master_key_file", u, "keys/s3-master.key");
    cJSON_AddStringToObject(o, "admin_user", "admin");
    up__add_path(o, "admin_password_file", u, "secrets/admin.password");
    up__add_path(o, "admin_token_file", u, "secrets/admin.token");
    return o;
}

static cJSON *up__metadata_conf(const struct up *u)
{
    cJSON *o = up__agent_conf(u, "md1");
    if (!o)
        return NULL;
    up__add_path(o, "db", u, "metadata/metadata.db");
    if (u->repair_grace)
        cJSON_AddStringToObject(o, "repair_grace", u->repair_grace);
    return o;
}

static cJSON *up__pubsub_conf(const struct up *u)
{
    cJSON *o = up__agent_conf(u, "ps1");
    if (!o)
        return NULL;
    up__add_path(o, "db", u, "pubsub/pubsub.db");
    if (u->def_k) {
        cJSON_AddNumberToObject(o, "default_k", u->def_k);
        cJSON_AddNumberToObject(o, "default_m", u->def_m);
    }
    return o;
}

/* Registers <bindir>/<exe_name> --config conf to start at stage. */
static int up__register(struct up *u, const char *kind, const char *id, int stage, const char *exe_name,
                        const char *conf)
{
    char exe[UP_PATH];
    if (!up__path(exe, "%s/%s", u->bindir, exe_name) || !up__add_proc(u, kind, id, stage, exe, conf))
        return cli_err(UP_CONF_NOMEM);
    return CLI_OK;
}

/* Every config, and the processes in start order: the broker, then the agents of each stage. */
static int up__write_configs(struct up *u)
{
    static const struct {
        const char *kind, *id, *exe;
        int stage;
        cJSON *(*conf)(const struct up *u);
    } agents[] = {
        {"auth", "auth1", "dyno-auth", ST_AUTH, up__auth_conf},
        {"metadata", "md1", "dyno-metadata", ST_METADATA, up__metadata_conf},
        {"pubsub", "ps1", "dyno-pubsub", ST_PUBSUB, up__pubsub_conf},
    };
    char conf[UP_PATH], id[16];
    int rc;

    if (!up__path(conf, "%s/broker/mosquitto.conf", u->data) ||
        !up__add_proc(u, "broker", "mosquitto", ST_BROKER, u->mosquitto, conf))
        return cli_err(UP_CONF_NOMEM);

    for (size_t i = 0; i < sizeof(agents) / sizeof(agents[0]); i++) {
        cJSON *o = agents[i].conf(u);
        if (!o)
            return cli_err(UP_CONF_NOMEM);
        /* up__write_json says why it failed; a path too long cannot happen (u->data is short) */
        bool written = up__path(conf, "%s/%s/config.json", u->data, agents[i].kind) &&
                       up__write_json(conf, o, 0600) >= 0;
        cJSON_Delete(o);
        if (!written)
            return CLI_FAIL;
        if ((rc = up__register(u, agents[i].kind, agents[i].id, agents[i].stage, agents[i].exe, conf)) !=
            CLI_OK)
            return rc;
    }

    /* Their configs are written when they start (up__start_site_brokers): they need the
     * service token, which dyno-auth writes. */
    for (int site = 1; u->site_brokers && site <= u->nsites; site++) {
        snprintf(id, sizeof(id), "site-%d", site);
        if (!up__path(conf, "%s/sites/site-%d/broker/mosquitto.conf", u->data, site) ||
            !up__add_proc(u, "site-broker", id, ST_SITE_BROKERS, u->mosquitto, conf))
            return cli_err(UP_CONF_NOMEM);
    }

    for (int i = 1; i <= u->ncont; i++) {
        snprintf(id, sizeof(id), "c%d", i);
        if (up__write_container_conf(u, i, 0, conf) != CLI_OK)
            return CLI_FAIL;
        if ((rc = up__register(u, "container", id, ST_CONTAINERS, "dyno-container", conf)) != CLI_OK)
            return rc;
    }

    if ((rc = up__write_gateway_conf(u, conf)) != CLI_OK)
        return rc;
    return up__register(u, "gateway", "gw1", ST_GATEWAY, "dyno-gateway", conf);
}

/* DIR/fabric.json (protocol.md §5). */
static int up__write_fabric(const struct up *u, bool ready)
{
    char p[UP_PATH];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "gateway", u->gw_url);
    if (u->s3_url[0])
        cJSON_AddStringToObject(o, "s3", u->s3_url);
    cJSON *b = cJSON_AddObjectToObject(o, "broker");
    if (!o || !b) {
        cJSON_Delete(o);
        return cli_err("out of memory");
    }
    cJSON_AddStringToObject(b, "host", "127.0.0.1");
    cJSON_AddNumberToObject(b, "port", u->broker_port);
    cJSON_AddBoolToObject(b, "tls", u->tls);
    up__add_path(o, "admin_token_file", u, "secrets/admin.token");
    up__add_path(o, "admin_password_file", u, "secrets/admin.password");
    up__add_path(o, "service_token_file", u, "secrets/service.token");
    up__add_path(o, "public_key_file", u, "keys/auth.pub");
    if (u->tls)
        up__add_path(o, "cacert", u, "tls/ca.crt");
    cJSON_AddStringToObject(o, "data", u->data);
    cJSON_AddNumberToObject(o, "containers", u->ncont);
    cJSON_AddNumberToObject(o, "sites", u->nsites);
    if (u->site_brokers) {
        cJSON *sb = cJSON_AddObjectToObject(o, "site_brokers");
        for (int site = 1; sb && site <= u->nsites; site++) {
            char name[32];
            snprintf(name, sizeof(name), "site-%d", site);
            cJSON *e = cJSON_AddObjectToObject(sb, name);
            if (!e)
                break;
            cJSON_AddStringToObject(e, "host", "127.0.0.1");
            cJSON_AddNumberToObject(e, "port", u->site_port[site]);
            cJSON_AddBoolToObject(e, "tls", u->tls);
            char bid[48];
            snprintf(bid, sizeof(bid), "bridge-%s", name);
            cJSON_AddStringToObject(e, "bridge_out", bid); /* readings out */
            snprintf(bid, sizeof(bid), "bridge-%s-in", name);
            cJSON_AddStringToObject(e, "bridge_in", bid); /* events and feeds in */
        }
    }
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    cJSON_AddBoolToObject(o, "ready", ready);
    cJSON *procs = cJSON_AddArrayToObject(o, "processes");
    for (int i = 0; procs && i < u->nprocs; i++) {
        const struct up_proc *pr = &u->procs[i];
        cJSON *e = cJSON_CreateObject();
        if (!e)
            continue;
        cJSON_AddStringToObject(e, "name", pr->name);
        cJSON_AddStringToObject(e, "kind", pr->kind);
        cJSON_AddStringToObject(e, "id", pr->id);
        cJSON_AddNumberToObject(e, "pid", pr->alive ? (double)pr->pid : 0);
        cJSON *av = cJSON_AddArrayToObject(e, "argv");
        for (int k = 0; av && pr->argv[k]; k++)
            cJSON_AddItemToArray(av, cJSON_CreateString(pr->argv[k]));
        cJSON_AddStringToObject(e, "log", pr->log);
        cJSON_AddItemToArray(procs, e);
    }
    int rc = up__path(p, "%s/fabric.json", u->data) ? up__write_json(p, o, 0644) : DYNO_EINVAL;
    cJSON_Delete(o);
    return rc < 0 ? CLI_FAIL : CLI_OK;
}

/* ---- processes --------------------------------------------------------------------------- */

static int up__spawn(struct up *u, struct up_proc *p)
{
    int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return cli_err("cannot open %s: %s", p->log, strerror(errno));
    time_t t = time(NULL);
    char ts[32] = "";
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    dprintf(fd, "---- dynostore up: starting %s at %s ----\n", p->name, ts);
    p->log_start = lseek(fd, 0, SEEK_END);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        return cli_err("cannot start %s: %s", p->name, strerror(errno));
    }
    if (pid == 0) {
        /* child: own process group, default signals, stdin from /dev/null, output to the log */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* if `up` is killed outright, do not linger */
        if (getppid() != parent)
            _exit(1);
        struct sigaction sa = {.sa_handler = SIG_DFL};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGPIPE, &sa, NULL);
        sigaction(SIGCHLD, &sa, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execv(p->argv[0], p->argv);
        dprintf(STDERR_FILENO, "dynostore up: cannot run %s: %s\n", p->argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also here: no race with a signal sent right after fork */
    close(fd);
    p->pid = pid;
    p->alive = true;
    p->reported = false;
    (void)u;
    return CLI_OK;
}

/* Last lines of this run's part of a log, on stderr. */
static void up__log_tail(const struct up_proc *p)
{
    int fd = open(p->log, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[8192];
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end - (off_t)(sizeof(buf) - 1);
    if (from < p->log_start)
        from = p->log_start;
    if (from < 0)
        from = 0;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
    close(fd);
    if (n <= 0) {
        fprintf(stderr, "  (%s is empty)\n", p->log);
        return;
    }
    buf[n] = '\0';
    /* keep the last UP_LOG_TAIL_LINES lines */
    int lines = 0;
    char *s = buf + n;
    while (s > buf) {
        s--;
        if (*s == '\n' && s != buf + n - 1 && ++lines >= UP_LOG_TAIL_LINES) {
            s++;
            break;
        }
    }
    fprintf(stderr, "---- last lines of %s ----\n%s", p->log, s);
    if (n > 0 && buf[n - 1] != '\n')
        fputc('\n', stderr);
    fprintf(stderr, "----\n");
}

static void up__describe_exit(int status, char *out, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "was killed by signal %d", WTERMSIG(status));
    else
        snprintf(out, cap, "stopped");
}

/* Reaps children without blocking. Returns the first of ours that died (or NULL). */
static struct up_proc *up__reap(struct up *u, int *status_out)
{
    struct up_proc *first = NULL;
    for (;;) {
        int status = 0;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        for (int i = 0; i < u->nprocs; i++) {
            struct up_proc *p = &u->procs[i];
            if (p->alive && p->pid == pid) {
                p->alive = false;
                if (!first) {
                    first = p;
                    if (status_out)
                        *status_out = status;
                }
                if (!p->reported && u->x && first != p) {
                    char why[64];
                    up__describe_exit(status, why, sizeof(why));
                    fprintf(stderr, "dynostore up: %s (pid %ld) %s; log: %s\n", p->name, (long)pid, why,
                            p->log);
                    p->reported = true;
                }
            }
        }
    }
    return first;
}

/* Stops every live child, stage by stage in reverse start order. */
static void up__stop(struct up *u)
{
    for (int stage = ST_COUNT - 1; stage >= 0; stage--) {
        bool any = false;
        for (int i = 0; i < u->nprocs; i++) {
            struct up_proc *p = &u->procs[i];
            if (p->stage == stage && p->alive && p->pid > 0) {
                kill(p->pid, SIGTERM);
                any = true;
            }
        }
        if (!any)
            continue;
        double deadline = cli_now_s() + UP_STOP_GRACE_S;
        for (;;) {
            int status;
            for (int i = 0; i < u->nprocs; i++) {
                struct up_proc *p = &u->procs[i];
                if (p->stage == stage && p->alive && waitpid(p->pid, &status, WNOHANG) == p->pid)
                    p->alive = false;
            }
            bool left = false;
            for (int i = 0; i < u->nprocs; i++)
                if (u->procs[i].stage == stage && u->procs[i].alive)
                    left = true;
            if (!left)
                break;
            if (cli_now_s() >= deadline) {
                for (int i = 0; i < u->nprocs; i++) {
                    struct up_proc *p = &u->procs[i];
                    if (p->stage == stage && p->alive) {
                        fprintf(stderr, "dynostore up: %s (pid %ld) did not stop in %.0f s: killing it\n",
                                p->name, (long)p->pid, UP_STOP_GRACE_S);
                        kill(p->pid, SIGKILL);
                        waitpid(p->pid, &status, 0);
                        p->alive = false;
                    }
                }
                break;
            }
            up__sleep_ms(50);
        }
    }
}

/* ---- waiting ----------------------------------------------------------------------------- */

enum { WAIT_OK = 0, WAIT_TIMEOUT = 1, WAIT_DIED = 2, WAIT_SIGNAL = 3 };

typedef bool (*up_cond_fn)(struct up *u, void *arg);

/* Polls cond until true, timeout, a child's death (its log tail is printed) or a signal. */
static int up__wait_for(struct up *u, double timeout, up_cond_fn cond, void *arg)
{
    double deadline = cli_now_s() + timeout;
    for (;;) {
        if (up_signal)
            return WAIT_SIGNAL;
        int status = 0;
        struct up_proc *dead = up__reap(u, &status);
        if (dead) {
            char why[64];
            up__describe_exit(status, why, sizeof(why));
            cli_err("up: %s (pid %ld) %s during start-up", dead->name, (long)dead->pid, why);
            dead->reported = true;
            up__log_tail(dead);
            return WAIT_DIED;
        }
        if (cond(u, arg))
            return WAIT_OK;
        if (cli_now_s() >= deadline)
            return WAIT_TIMEOUT;
        up__sleep_ms(100);
    }
}

static bool up__cond_broker(struct up *u, void *arg)
{
    (void)arg;
    return up__port_accepts(u->broker_port);
}

static bool up__cond_auth_files(struct up *u, void *arg)
{
    char a[UP_PATH], b[UP_PATH];
    (void)arg;
    return up__path(a, "%s/secrets/service.token", u->data) &&
           up__path(b, "%s/secrets/admin.token", u->data) && up__file_exists(a) && up__file_exists(b);
}

struct port_wait {
    int first, count; /* procs[first .. first+count) */
    int missing;      /* index of one that is still missing */
};

static bool up__cond_port_files(struct up *u, void *arg)
{
    struct port_wait *w = arg;
    char p[UP_PATH];
    for (int i = w->first; i < w->first + w->count; i++) {
        const struct up_proc *pr = &u->procs[i];
        bool ok;
        if (strcmp(pr->kind, "container") == 0)
            ok = up__path(p, "%s/containers/%s/port", u->data, pr->id) && up__read_port_file(p) > 0;
        else
            ok = up__path(p, "%s/gateway/port", u->data) && up__read_port_file(p) > 0;
        if (!ok) {
            w->missing = i;
            return false;
        }
    }
    return true;
}

struct ready_wait {
    dyno_client *c;
    bool healthy;
    char missing[1024]; /* containers not online yet */
    char last_error[256];
    double next_try;
};

static bool up__cond_ready(struct up *u, void *arg)
{
    struct ready_wait *w = arg;
    double t = cli_now_s();
    if (t < w->next_try)
        return false;
    w->next_try = t + 0.25;
    cJSON *doc = NULL;
    if (dyno_client_healthz(w->c, NULL) < 0) {
        snprintf(w->last_error, sizeof(w->last_error), "healthz: %s", dyno_client_last_error(w->c));
        return false;
    }
    w->healthy = true;
    if (dyno_client_containers(w->c, &doc) < 0) {
        snprintf(w->last_error, sizeof(w->last_error), "GET /v1/containers: %s",
                 dyno_client_last_error(w->c));
        return false;
    }
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "containers");
    size_t off = 0;
    w->missing[0] = '\0';
    for (int i = 1; i <= u->ncont; i++) {
        char id[16];
        snprintf(id, sizeof(id), "c%d", i);
        bool online = false;
        const cJSON *it;
        cJSON_ArrayForEach(it, arr)
        {
            const char *cid = dyno_json_str(it, "id");
            const char *st = dyno_json_str(it, "state");
            if (cid && strcmp(cid, id) == 0 && st && strcmp(st, "online") == 0)
                online = true;
        }
        if (!online && off + 8 < sizeof(w->missing)) {
            int n = snprintf(w->missing + off, sizeof(w->missing) - off, "%s%s", off ? " " : "", id);
            if (n > 0)
                off += (size_t)n;
        }
    }
    cJSON_Delete(doc);
    return w->missing[0] == '\0';
}

/* ---- the command ------------------------------------------------------------------------- */

/* The broker plugin: --plugin PATH, else <bindir>/../lib/dyno_auth.so (the build tree's
 * layout: binaries in <build>/bin, the plugin in <build>/lib). */
static int up__find_plugin(struct up *u, const char *plugin_flag)
{
    if (plugin_flag) {
        if (!up__abs_path(plugin_flag, u->plugin))
            return cli_err("--plugin %s: path too long", plugin_flag);
    } else {
        /* <bindir>/../lib, spelled without "..": the broker's config gets a clean path */
        const char *slash = strrchr(u->bindir, '/');
        int parent = slash && slash != u->bindir ? (int)(slash - u->bindir) : 0;
        if (!up__path(u->plugin, "%.*s/lib/dyno_auth.so", parent, u->bindir))
            return cli_err("up: path too long");
    }
    if (access(u->plugin, R_OK) != 0)
        return cli_err("up: no broker plugin %s (build dyno_auth, or pass --plugin PATH)", u->plugin);
    return CLI_OK;
}

static int up__find_bins(struct up *u, const char *bin_flag)
{
    static const char *const agents[] = {"dyno-auth", "dyno-metadata", "dyno-pubsub", "dyno-container",
                                         "dyno-gateway"};
    char p[UP_PATH];
    if (bin_flag) {
        if (!up__abs_path(bin_flag, u->bindir))
            return cli_err("--bin %s: path too long", bin_flag);
    } else {
        ssize_t n = readlink("/proc/self/exe", u->bindir, sizeof(u->bindir) - 1);
        if (n <= 0)
            return cli_err("cannot find my own executable (/proc/self/exe); pass --bin DIR");
        u->bindir[n] = '\0';
        char *slash = strrchr(u->bindir, '/');
        if (slash)
            *slash = '\0';
    }
    int missing = 0;
    for (size_t i = 0; i < sizeof(agents) / sizeof(agents[0]); i++) {
        if (!up__path(p, "%s/%s", u->bindir, agents[i]) || access(p, X_OK) != 0) {
            cli_err("up: agent %s not found in %s", agents[i], u->bindir);
            missing++;
        }
    }
    if (missing)
        return cli_err("up: build the agents (cmake --build BUILD) or pass --bin DIR");
    if (access("/usr/sbin/mosquitto", X_OK) == 0) {
        snprintf(u->mosquitto, sizeof(u->mosquitto), "/usr/sbin/mosquitto");
        return CLI_OK;
    }
    const char *path = getenv("PATH");
    while (path && *path) {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        if (n > 0 && up__path(p, "%.*s/mosquitto", (int)n, path) && access(p, X_OK) == 0) {
            snprintf(u->mosquitto, sizeof(u->mosquitto), "%s", p);
            return CLI_OK;
        }
        path = end ? end + 1 : NULL;
    }
    return cli_err("up: mosquitto not found (/usr/sbin/mosquitto or on PATH); install the mosquitto package");
}

static bool up__valid_size(const char *s)
{
    const char *p = s;
    if (!*p)
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    if (p == s)
        return false;
    if (*p == 'K' || *p == 'M' || *p == 'G' || *p == 'T' || *p == 'k' || *p == 'm' || *p == 'g' || *p == 't')
        p++;
    return *p == '\0';
}

static void up__free_procs(struct up *u)
{
    for (int i = 0; i < u->nprocs; i++)
        for (int k = 0; u->procs[i].argv[k]; k++)
            free(u->procs[i].argv[k]);
    u->nprocs = 0;
}

static int up__start_stage(struct up *u, int stage)
{
    for (int i = 0; i < u->nprocs; i++)
        if (u->procs[i].stage == stage && up__spawn(u, &u->procs[i]) != CLI_OK)
            return CLI_FAIL;
    return CLI_OK;
}

static int up__first_of(const struct up *u, int stage, int *count)
{
    int first = -1, n = 0;
    for (int i = 0; i < u->nprocs; i++) {
        if (u->procs[i].stage == stage) {
            if (first < 0)
                first = i;
            n++;
        }
    }
    *count = n;
    return first;
}

/* ---- start-up stages ---------------------------------------------------------------------
 * Each returns a WAIT_* code: WAIT_OK to go on, WAIT_SIGNAL when Ctrl-C or SIGTERM came (not
 * a failure), anything else a failure already printed. */

/* A stage's processes could not be started (up__spawn printed why). */
#define WAIT_FAIL 4

static int up__start_broker(struct up *u)
{
    if (up__start_stage(u, ST_BROKER) != CLI_OK)
        return WAIT_FAIL;
    int w = up__wait_for(u, 5.0, up__cond_broker, NULL);
    if (w == WAIT_TIMEOUT) {
        cli_err("up: the broker does not accept connections on 127.0.0.1:%d after 5 s", u->broker_port);
        up__log_tail(&u->procs[0]);
    }
    if (w == WAIT_OK)
        (void)up__write_fabric(u, false);
    return w;
}

static int up__start_auth(struct up *u)
{
    if (up__start_stage(u, ST_AUTH) != CLI_OK)
        return WAIT_FAIL;
    int w = up__wait_for(u, UP_AUTH_WAIT_S, up__cond_auth_files, NULL);
    if (w == WAIT_TIMEOUT) {
        int n;
        int i = up__first_of(u, ST_AUTH, &n);
        cli_err("up: dyno-auth did not write %s/secrets/service.token and admin.token within %.0f s", u->data,
                UP_AUTH_WAIT_S);
        up__log_tail(&u->procs[i]);
    }
    return w;
}

/* Metadata and pubsub: nothing to wait for, the gateway's readiness covers them. */
static int up__start_services(struct up *u)
{
    if (up__start_stage(u, ST_METADATA) != CLI_OK || up__start_stage(u, ST_PUBSUB) != CLI_OK)
        return WAIT_FAIL;
    return WAIT_OK;
}

static bool up__cond_site_brokers(struct up *u, void *arg)
{
    (void)arg;
    for (int site = 1; site <= u->nsites; site++) {
        if (!up__port_accepts(u->site_port[site]))
            return false;
    }
    return true;
}

/* With --site-brokers: each site's broker, its config written now that the service token
 * exists, listening before the fabric is announced (its bridge connects on its own). */
static int up__start_site_brokers(struct up *u)
{
    if (!u->site_brokers)
        return WAIT_OK;
    for (int site = 1; site <= u->nsites; site++) {
        if (up__write_site_broker_conf(u, site) != CLI_OK)
            return WAIT_FAIL;
    }
    if (up__start_stage(u, ST_SITE_BROKERS) != CLI_OK)
        return WAIT_FAIL;
    int w = up__wait_for(u, 5.0, up__cond_site_brokers, NULL);
    if (w == WAIT_TIMEOUT) {
        int n, first = up__first_of(u, ST_SITE_BROKERS, &n);
        cli_err("up: a site broker does not accept connections after 5 s");
        for (int i = 0; first >= 0 && i < n; i++)
            up__log_tail(&u->procs[first + i]);
    }
    return w;
}

/* The gateway binds before the containers: they take ephemeral ports, which could be the one
 * the gateway was given. */
static int up__start_gateway(struct up *u)
{
    char p[UP_PATH];
    struct port_wait gwait = {0};
    gwait.first = up__first_of(u, ST_GATEWAY, &gwait.count);
    if (up__path(p, "%s/gateway/port", u->data))
        unlink(p);
    if (up__start_stage(u, ST_GATEWAY) != CLI_OK)
        return WAIT_FAIL;
    int w = up__wait_for(u, UP_PORTFILE_WAIT_S, up__cond_port_files, &gwait);
    if (w == WAIT_TIMEOUT) {
        cli_err("up: dyno-gateway did not write %s/gateway/port within %.0f s", u->data, UP_PORTFILE_WAIT_S);
        up__log_tail(&u->procs[gwait.first]);
    }
    if (w != WAIT_OK)
        return w;
    if (up__path(p, "%s/gateway/port", u->data)) {
        int real = up__read_port_file(p);
        bool changed = false;
        if (real > 0 && real != u->gw_port) {
            u->gw_port = real;
            snprintf(u->gw_url, sizeof(u->gw_url), "%s://127.0.0.1:%d", u->tls ? "https" : "http", real);
            changed = true;
        }
        int s3 = up__path(p, "%s/gateway/s3port", u->data) ? up__read_port_file(p) : -1;
        if (s3 > 0) {
            changed = changed || s3 != u->s3_port;
            u->s3_port = s3;
            snprintf(u->s3_url, sizeof(u->s3_url), "%s://127.0.0.1:%d", u->tls ? "https" : "http", s3);
        }
        /* a gateway restarted from its config comes back on the same URLs */
        if (changed && up__write_gateway_conf(u, p) != CLI_OK)
            return WAIT_FAIL;
    }
    return WAIT_OK;
}

static int up__start_containers(struct up *u)
{
    char p[UP_PATH];
    struct port_wait pw = {0};
    pw.first = up__first_of(u, ST_CONTAINERS, &pw.count);
    for (int i = pw.first; i < pw.first + pw.count; i++)
        if (up__path(p, "%s/containers/%s/port", u->data, u->procs[i].id))
            unlink(p); /* a stale port file would look like a started container */
    if (up__start_stage(u, ST_CONTAINERS) != CLI_OK)
        return WAIT_FAIL;
    int w = up__wait_for(u, UP_PORTFILE_WAIT_S, up__cond_port_files, &pw);
    if (w == WAIT_TIMEOUT) {
        cli_err("up: %s did not write its port file within %.0f s", u->procs[pw.missing].name,
                UP_PORTFILE_WAIT_S);
        up__log_tail(&u->procs[pw.missing]);
    }
    if (w != WAIT_OK)
        return w;
    /* a container restarted from its config comes back on the same URL */
    for (int n = 1; n <= u->ncont; n++) {
        char conf[UP_PATH];
        int real = up__path(p, "%s/containers/c%d/port", u->data, n) ? up__read_port_file(p) : -1;
        if (real > 0 && up__write_container_conf(u, n, real, conf) != CLI_OK)
            return WAIT_FAIL;
    }
    return WAIT_OK;
}

/* A client of the gateway with the admin token, for the readiness checks; NULL when it
 * cannot be made (printed). */
static dyno_client *up__admin_client(const struct up *u)
{
    char p[UP_PATH];
    char *admin = NULL;
    dyno_client *c = NULL;
    if (!up__path(p, "%s/secrets/admin.token", u->data) ||
        dyno_read_file(p, DYNO_TOKEN_MAX + 64, &admin, NULL) < 0) {
        cli_err("up: cannot read %s", p);
        return NULL;
    }
    admin[strcspn(admin, "\r\n")] = '\0';
    int rc = dyno_client_new(u->gw_url, admin, &c);
    memset(admin, 0, strlen(admin));
    free(admin);
    if (rc < 0) {
        cli_err("up: cannot make a client for %s: %s", u->gw_url, dyno_strerror(rc));
        return NULL;
    }
    dyno_client_set_timeouts(c, 1000, 2000, 2000);
    if (u->tls && up__path(p, "%s/tls/ca.crt", u->data))
        (void)dyno_client_set_cafile(c, p);
    return c;
}

/* Why the fabric did not become ready in time, with the logs to read. */
static void up__report_not_ready(const struct up *u, const struct ready_wait *rw)
{
    if (!rw->healthy) {
        int n;
        cli_err("up: the gateway at %s is not healthy after %.0f s (%s)", u->gw_url, UP_READY_WAIT_S,
                rw->last_error);
        up__log_tail(&u->procs[up__first_of(u, ST_GATEWAY, &n)]);
        return;
    }
    cli_err("up: containers not online after %.0f s: %s%s%s", UP_READY_WAIT_S,
            rw->missing[0] ? rw->missing : "(unknown)", rw->last_error[0] ? "; last error: " : "",
            rw->last_error);
    for (int i = 0; i < u->nprocs; i++) {
        const struct up_proc *pr = &u->procs[i];
        if (strcmp(pr->kind, "container") == 0 && strstr(rw->missing, pr->id))
            fprintf(stderr, "  %s log: %s\n", pr->name, pr->log);
    }
    fprintf(stderr, "  metadata log: %s/logs/metadata-md1.log\n  gateway log: %s/logs/gateway-gw1.log\n",
            u->data, u->data);
}

/* The gateway answers, and sees every container online. */
static int up__wait_ready(struct up *u)
{
    struct ready_wait rw = {0};
    rw.c = up__admin_client(u);
    if (!rw.c)
        return WAIT_FAIL;
    int w = up__wait_for(u, UP_READY_WAIT_S, up__cond_ready, &rw);
    dyno_client_free(rw.c);
    if (w == WAIT_TIMEOUT)
        up__report_not_ready(u, &rw);
    return w;
}

/* Runs the start-up sequence. CLI_OK when ready; else a failure was printed, or a signal
 * came (*signalled). */
static int up__start(struct up *u, int *signalled)
{
    int (*const stages[])(struct up *) = {up__start_broker,       up__start_auth,    up__start_services,
                                          up__start_site_brokers, up__start_gateway, up__start_containers,
                                          up__wait_ready};
    int w = WAIT_OK;
    for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]) && w == WAIT_OK; i++)
        w = stages[i](u);
    *signalled = w == WAIT_SIGNAL;
    return w == WAIT_OK ? CLI_OK : CLI_FAIL;
}

static void up__print_ready(const struct up *u)
{
    char tok[UP_PATH];
    up__path(tok, "%s/secrets/admin.token", u->data);
    printf("DynoStore fabric is up: %d containers on %d sites, broker on 127.0.0.1:%d\n", u->ncont, u->nsites,
           u->broker_port);
    printf("  gateway:          %s\n", u->gw_url);
    if (u->s3_url[0])
        printf("  S3 endpoint:      %s (region us-east-1, path or <bucket>.localhost; keys: dynostore key "
               "create; docs/s3.md)\n",
               u->s3_url);
    printf("  admin token file: %s\n", tok);
    printf("  data folder:      %s\n", u->data);
    printf("  logs:             %s/logs/\n", u->data);
    if (u->def_k)
        printf("  resilience:       k=%d, m=%d by default (fewer than 5 containers)\n", u->def_k, u->def_m);
    if (u->tls)
        printf("  CA certificate:   %s/tls/ca.crt\n", u->data);
    for (int site = 1; u->site_brokers && site <= u->nsites; site++)
        printf("  site-%d MQTT:      %s://127.0.0.1:%d (bridged to the core broker)\n", site,
               u->tls ? "mqtts" : "mqtt", u->site_port[site]);
    printf("  MQTT login:       username = your user name, password = a token (docs/security.md)\n");
    printf("\nTry, in another shell:\n"
           "  dynostore catalog create admin/demo\n"
           "  dynostore put FILE --catalog admin/demo\n"
           "  dynostore get KEY -o out\n"
           "\nPress Ctrl-C to stop the fabric.\n");
    fflush(stdout);
}

/* ---- the command ------------------------------------------------------------------------- */

/* The flags of `dynostore up`, checked. */
struct up_opts {
    const char *data;     /* NULL: ~/.local/share/dynostore/fabric */
    const char *bin;      /* NULL: next to the CLI */
    const char *plugin;   /* NULL: <bindir>/../lib/dyno_auth.so */
    const char *capacity; /* per container */
    const char *backend;  /* --backend SPEC, NULL: posix */
    const char *s3_endpoint, *s3_bucket, *s3_region, *s3_access_key, *s3_secret_file;
    const char *repair_grace; /* NULL: the metadata default */
    int ncont;
    int nsites; /* 1..ncont; default ncont (a site per container) */
    int port;   /* 0 = any */
    bool tls;
    bool site_brokers; /* --site-brokers */
};

/* Reads and checks the flags; CLI_OK or the usage error (printed). */
static int up__parse_opts(int argc, char **argv, struct up_opts *o)
{
    const char *ncont_s = NULL, *port_s = NULL, *sites_s = NULL;
    bool fg = false;
    *o = (struct up_opts){.capacity = "10G"};
    char **pos = calloc((size_t)argc + 1, sizeof(char *));
    int npos = 0;
    if (!pos)
        return cli_err("out of memory");
    const struct cli_flag flags[] = {
        {"--data", true, &o->data, NULL},
        {"--containers", true, &ncont_s, NULL},
        {"--sites", true, &sites_s, NULL},
        {"--repair-grace", true, &o->repair_grace, NULL},
        {"--port", true, &port_s, NULL},
        {"--bin", true, &o->bin, NULL},
        {"--plugin", true, &o->plugin, NULL},
        {"--capacity", true, &o->capacity, NULL},
        {"--backend", true, &o->backend, NULL},
        {"--s3-endpoint", true, &o->s3_endpoint, NULL},
        {"--s3-bucket", true, &o->s3_bucket, NULL},
        {"--s3-region", true, &o->s3_region, NULL},
        {"--s3-access-key", true, &o->s3_access_key, NULL},
        {"--s3-secret-file", true, &o->s3_secret_file, NULL},
        {"--tls", false, NULL, &o->tls},
        {"--site-brokers", false, NULL, &o->site_brokers},
        {"--foreground", false, NULL, &fg},
    };
    int ec = cli_parse("up", argc, argv, flags, sizeof(flags) / sizeof(flags[0]), pos, &npos);
    if (!ec && npos > 0)
        ec = cli_usage("up: unexpected argument '%s'", pos[0]);
    free(pos);
    if (ec)
        return ec;
    (void)fg; /* `up` always stays in the foreground; the flag says so explicitly */
    long v = 5;
    if (ncont_s && !up__parse_num(ncont_s, 1, UP_MAX_CONTAINERS, &v))
        return cli_usage("up: --containers must be 1..%d", UP_MAX_CONTAINERS);
    o->ncont = (int)v;
    v = o->ncont;
    if (sites_s && !up__parse_num(sites_s, 1, o->ncont, &v))
        return cli_usage("up: --sites must be 1..%d (the number of containers)", o->ncont);
    o->nsites = (int)v;
    v = 8080;
    if (port_s && !up__parse_num(port_s, 0, 65535, &v))
        return cli_usage("up: --port must be 0..65535");
    o->port = (int)v;
    if (o->repair_grace && !up__parse_num(o->repair_grace, 0, 365L * 86400, &v))
        return cli_usage("up: --repair-grace must be a number of seconds");
    if (!up__valid_size(o->capacity))
        return cli_usage("up: --capacity must be a size like 10G, 512M or 1073741824");
    char b[16];
    if (o->backend && !up__backend_of(o->backend, o->ncont, o->nsites, 1, b, sizeof(b)))
        return cli_usage(
            "up: --backend must be NAME, site-S=NAME or cN=NAME[,...] with NAME posix, memory or s3, "
            "S in 1..%d and N in 1..%d",
            o->nsites, o->ncont);
    bool any_s3 = false;
    for (int i = 1; i <= o->ncont && o->backend; i++)
        any_s3 = any_s3 ||
                 (up__backend_of(o->backend, o->ncont, o->nsites, i, b, sizeof(b)) && strcmp(b, "s3") == 0);
    if (any_s3 && (!o->s3_endpoint || !o->s3_bucket || !o->s3_access_key || !o->s3_secret_file))
        return cli_usage("up: an s3 container needs --s3-endpoint URL --s3-bucket B --s3-access-key K "
                         "--s3-secret-file FILE");
    if (any_s3 && access(o->s3_secret_file, R_OK) != 0)
        return cli_usage("up: cannot read the s3 secret file %s (--s3-secret-file)", o->s3_secret_file);
    return CLI_OK;
}

/* The default 3+2 needs 5 containers: with fewer, pick what fits, so that put works. */
static void up__default_resilience(struct up *u)
{
    if (u->ncont >= 5)
        return;
    u->def_m = u->ncont >= 4 ? 2 : u->ncont >= 2 ? 1 : 0;
    u->def_k = u->ncont - u->def_m < 3 ? u->ncont - u->def_m : 3;
}

/* The data folder (--data, else under $HOME), created, made absolute into u->data. */
static int up__data_dir(struct up *u, const char *data)
{
    char want[UP_PATH];
    if (data) {
        snprintf(want, sizeof(want), "%s", data);
    } else {
        const char *home = getenv("HOME");
        if (!home || !home[0])
            return cli_usage("up: $HOME is not set: pass --data DIR");
        if (!up__path(want, "%s/.local/share/dynostore/fabric", home))
            return cli_err("up: $HOME too long");
    }
    if (cli_mkdirs(want, 0700) < 0)
        return cli_err("up: cannot create %s: %s", want, strerror(errno));
    if (!up__abs_path(want, u->data))
        return cli_err("up: %s: path too long", want);
    size_t dl = strlen(u->data);
    while (dl > 1 && u->data[dl - 1] == '/')
        u->data[--dl] = '\0';
    if (strlen(u->data) > UP_PATH - 256)
        return cli_err("up: data folder path too long");
    return CLI_OK;
}

/* Everything before the ports: programs found, DIR locked and laid out, TLS material and
 * secrets made (or kept from the last run). */
static int up__prepare(struct up *u, const struct up_opts *o)
{
    int ec;
    if ((ec = up__data_dir(u, o->data)) != CLI_OK || (ec = up__find_bins(u, o->bin)) != CLI_OK ||
        (ec = up__find_plugin(u, o->plugin)) != CLI_OK || (ec = up__lock_dir(u)) != CLI_OK ||
        (ec = up__make_dirs(u)) != CLI_OK)
        return ec;
    if (u->tls && (ec = cli_up_tls(u->data)) != CLI_OK)
        return ec;
    return up__make_secrets(u);
}

/* True when site's port is one already given out (the core broker's, another site's). */
static bool up__site_port_taken(const struct up *u, int site)
{
    if (u->site_port[site] == u->broker_port || u->site_port[site] == u->gw_port)
        return true;
    for (int s = 1; s < site; s++) {
        if (u->site_port[s] == u->site_port[site])
            return true;
    }
    return false;
}

/* The broker and the gateway keep the ports of the last run when they can; else the gateway
 * binds any free port and reports it in its port file. */
static int up__pick_ports(struct up *u)
{
    int prev_gw = 0;
    int prev = up__previous_ports(u, &prev_gw);
    u->broker_port = prev && up__port_is_free(prev) ? prev : up__free_port();
    if (u->port_req == 0) {
        u->gw_port = prev_gw && prev_gw != u->broker_port && up__port_is_free(prev_gw) ? prev_gw : 0;
    } else if (up__port_is_free(u->port_req)) {
        u->gw_port = u->port_req;
    } else {
        u->gw_port = 0;
        if (!u->x->quiet)
            fprintf(stderr, "dynostore up: port %d is busy; the gateway takes another free port\n",
                    u->port_req);
    }
    if (!u->broker_port)
        return cli_err("up: cannot find a free port on 127.0.0.1");
    for (int site = 1; u->site_brokers && site <= u->nsites; site++) {
        /* A fresh port each start: devices read them from the announcement or fabric.json. */
        do {
            u->site_port[site] = up__free_port();
        } while (u->site_port[site] != 0 && up__site_port_taken(u, site));
        if (!u->site_port[site])
            return cli_err("up: cannot find a free port on 127.0.0.1");
    }
    snprintf(u->gw_url, sizeof(u->gw_url), "%s://127.0.0.1:%d", u->tls ? "https" : "http", u->gw_port);
    return CLI_OK;
}

/* Ctrl-C and SIGTERM stop the fabric; a closed terminal must not kill us midway. */
static void up__catch_signals(void)
{
    struct sigaction sa = {.sa_handler = up__on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, NULL);
}

/* The fabric is ready: fabric.json says so, the CLI settings point at it, the user is told. */
static int up__announce(struct up *u)
{
    if (up__write_fabric(u, true) != CLI_OK)
        return CLI_FAIL;
    char tok[UP_PATH], ca[UP_PATH];
    up__path(tok, "%s/secrets/admin.token", u->data);
    up__path(ca, "%s/tls/ca.crt", u->data);
    if (cli_config_update(u->gw_url, tok, u->tls ? ca : NULL) < 0)
        fprintf(stderr, "dynostore up: the CLI settings were not saved; use --gateway %s --token-file %s\n",
                u->gw_url, tok);
    char broker[64];
    snprintf(broker, sizeof(broker), "%s://127.0.0.1:%d", u->tls ? "mqtts" : "mqtt", u->broker_port);
    if (cli_config_set("broker", broker) < 0)
        fprintf(stderr, "dynostore up: the broker address was not saved; use --broker %s\n", broker);
    if (u->x->json) {
        printf("{\"gateway\":\"%s\",\"admin_token_file\":\"%s\",\"data\":\"%s\",\"ready\":true}\n", u->gw_url,
               tok, u->data);
        fflush(stdout);
    } else {
        up__print_ready(u);
    }
    return CLI_OK;
}

/* Until a signal: a child that dies is reported once, never restarted. */
static void up__supervise(struct up *u)
{
    while (!up_signal) {
        int status = 0;
        struct up_proc *dead = up__reap(u, &status);
        if (dead && !dead->reported) {
            char why[64];
            up__describe_exit(status, why, sizeof(why));
            fprintf(stderr, "dynostore up: %s (pid %ld) %s; not restarting it; log: %s\n", dead->name,
                    (long)dead->pid, why, dead->log);
            dead->reported = true;
        }
        up__sleep_ms(200);
    }
}

/* After a signal: the children stopped in reverse order, fabric.json no longer ready. */
static void up__shutdown(struct up *u)
{
    if (!u->x->quiet)
        fprintf(stderr, "\ndynostore up: %s: stopping the fabric ...\n",
                up_signal == SIGINT ? "interrupted" : "terminated");
    up__stop(u);
    (void)up__write_fabric(u, false);
    if (!u->x->quiet)
        fprintf(stderr, "dynostore up: stopped; data kept in %s\n", u->data);
}

/* Starts, announces and supervises the fabric whose files are written. A signal during
 * start-up is a clean stop (CLI_OK), not a failure. */
static int up__run(struct up *u)
{
    up__catch_signals();
    if (!u->x->quiet)
        fprintf(stderr, "dynostore up: starting the fabric in %s ...\n", u->data);
    int signalled = 0;
    if (up__start(u, &signalled) != CLI_OK) {
        if (!signalled)
            fprintf(stderr, "dynostore up: stopping everything\n");
        up__stop(u);
        (void)up__write_fabric(u, false);
        return signalled ? CLI_OK : CLI_FAIL;
    }
    if (up__announce(u) != CLI_OK) {
        up__stop(u);
        return CLI_FAIL;
    }
    up__supervise(u);
    up__shutdown(u);
    return CLI_OK;
}

int cli_cmd_up(const struct cli_ctx *x, int argc, char **argv)
{
    struct up_opts o;
    int ec = up__parse_opts(argc, argv, &o);
    if (ec)
        return ec;
    struct up *u = calloc(1, sizeof(*u));
    if (!u)
        return cli_err("out of memory");
    u->lock_fd = -1;
    u->x = x;
    u->ncont = o.ncont;
    u->nsites = o.nsites;
    u->port_req = o.port;
    u->repair_grace = o.repair_grace;
    u->capacity = o.capacity;
    u->backend = o.backend;
    u->s3_endpoint = o.s3_endpoint;
    u->s3_bucket = o.s3_bucket;
    u->s3_region = o.s3_region;
    u->s3_access_key = o.s3_access_key;
    u->s3_secret_file = o.s3_secret_file;
    u->tls = o.tls;
    u->site_brokers = o.site_brokers;
    up__default_resilience(u);

    if ((ec = up__prepare(u, &o)) == CLI_OK && (ec = up__pick_ports(u)) == CLI_OK &&
        (ec = up__write_broker_conf(u)) == CLI_OK && (ec = up__write_configs(u)) == CLI_OK)
        ec = up__run(u);

    if (u->lock_fd >= 0)
        close(u->lock_fd);
    up__free_procs(u);
    free(u);
    return ec;
}
