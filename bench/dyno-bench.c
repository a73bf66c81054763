/*
 * dyno-bench: throughput and latency of put and get against a DynoStore gateway (REST,
 * libcurl) or a Redis server (RESP over a TCP socket), with N client threads.
 *
 *   dyno-bench --system dyno  --gateway URL --token-file F --catalog OWNER/PATH
 *              --op putget --size BYTES --clients N --ops N [--evict]
 *   dyno-bench --system redis --redis-port P [--redis-host H]
 *              --op putget --size BYTES --clients N --ops N [--evict]
 *   dyno-bench --system dyno ... --op events --broker-port P [--broker-host H] --ops N
 *   dyno-bench --system redis --redis-port P --op ping
 *
 * putget runs a put phase (ops objects, split over the clients), then a get phase that
 * reads every object back and checks its size and its per-object stamp. For each phase it
 * prints one line:
 *
 *   RESULT <system> <put|get> <size> <clients> <ops> <MB/s> <ops/s> <p50 ms> <p99 ms> <cpu ms/op>
 *
 * where cpu ms/op is the user + system CPU of the --cpu-pids processes during the phase divided
 * by ops (-1 when not measured). --label names the system in that line (e.g. redis-aof).
 *
 *   dyno-bench --op disk --dir D --size BYTES --clients N --ops N
 *
 * disk is the disk's limit for a put of k=3, m=2 without any network: for every object, N
 * writers (one per container) each write one fragment of size/3 bytes to its own file in D
 * with write + fdatasync, then remove it. It prints RESULT disk-limit put ... (MB/s of object
 * bytes, p50/p99 of one fragment's write + fdatasync).
 *
 *   dyno-bench --system dyno --op ingest --token-file F --catalog admin/PATH --broker-port P
 *              --size 200 --clients 16 --ops 5000 [--deadline S]
 *
 * ingest: N MQTT v5 publishers (user admin, password = the token) publish ops readings at
 * QoS 1 to dyno/v1/ingest/<catalog>, each named by the user property `name`, while a
 * subscriber follows dyno/v1/events/<catalog>; readings/s is from the first publish to the
 * last object.created event, p50/p99 from a reading's publish to its event. It fails (exit 1)
 * when not every event arrived within --deadline seconds (default 60).
 *
 * events measures put-to-event latency: one client puts 4 KiB objects one at a time while
 * an MQTT v5 subscriber (user admin, password = the token) follows the catalog's event topic
 * dyno/v1/events/<catalog>; latency is from the start of the put request to the arrival of
 * the event naming the new key. It prints "EVENTS <n> <p50 ms> <p99 ms> <ack-to-event p50 ms>"
 * or "EVENTS none <reason>" when the fabric publishes no events.
 *
 * Every object carries a 16-byte stamp (op number, size) at its start, over a shared random
 * buffer, so no two objects are equal and no client holds a private copy of a large object.
 * Exit status: 0 when every operation succeeded, 1 otherwise (the smoke test relies on it).
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define STAMP_LEN 16
#define KEY_MAX 64
#define TOKEN_MAX 4096
#define RESP_LINE_MAX 128
#define MiB (1024.0 * 1024.0)

enum bench_system { SYS_DYNO, SYS_REDIS };

struct bench_opts {
    enum bench_system system;
    const char *op;
    const char *gateway;
    const char *token_file;
    const char *catalog;
    const char *redis_host;
    const char *redis_port;
    const char *broker_host;
    int broker_port;
    uint64_t size;
    int clients;
    int ops;
    bool evict;
    long timeout_s;
    const char *label;    /* system name printed in RESULT lines (default dynostore / redis) */
    const char *cpu_pids; /* comma-separated pids whose CPU is charged to each phase, or NULL */
    const char *dir;      /* --op disk: the folder the writers write into */
    double deadline_s;    /* --op ingest: fail the row after this many seconds */
};

/* One benchmark run: shared read-only payload, per-op keys and latencies. */
struct bench {
    struct bench_opts o;
    char token[TOKEN_MAX];
    uint8_t *payload; /* o.size bytes, shared by every thread, never written after setup */
    char (*keys)[KEY_MAX];
    double *lat_ms; /* per op of the current phase */
    int failures;   /* guarded by lock */
    pthread_mutex_t lock;
    pthread_barrier_t start;
};

struct worker {
    struct bench *b;
    int id;
    int first, count; /* ops [first, first + count) */
    bool get_phase;
    double t_start, t_end;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void fail(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct bench *b, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&b->lock);
    b->failures++;
    if (b->failures <= 10) {
        fputs("dyno-bench: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
    pthread_mutex_unlock(&b->lock);
}

/* CPU (user + system) used so far by the processes in the comma-separated pid list, in ms;
 * -1 when no list was given or a pid cannot be read (it exited: the figure would be wrong). */
static double cpu_ms(const char *pids)
{
    if (!pids || !*pids)
        return -1;
    double total = 0;
    long tck = sysconf(_SC_CLK_TCK);
    for (const char *p = pids; *p;) {
        char *end = NULL;
        long pid = strtol(p, &end, 10);
        if (end == p || pid <= 0)
            return -1;
        char path[64], line[1024];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            return -1;
        size_t n = fread(line, 1, sizeof line - 1, f);
        fclose(f);
        line[n] = '\0';
        /* the command name (field 2) may hold spaces: count fields after its closing ')';
         * utime and stime are fields 14 and 15, so the 12th and 13th after it */
        char *q = strrchr(line, ')');
        unsigned long long ut = 0, st = 0;
        if (!q || sscanf(q + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
            return -1;
        total += (double)(ut + st) * 1e3 / (double)tck;
        p = *end == ',' ? end + 1 : end;
    }
    return total;
}

/* cpu ms per op between two cpu_ms() samples, -1 when either is unknown */
static double cpu_per_op(double before, double after, int ops)
{
    return before < 0 || after < 0 || ops <= 0 ? -1 : (after - before) / ops;
}

static const char *sys_label(const struct bench *b)
{
    return b->o.label ? b->o.label : b->o.system == SYS_DYNO ? "dynostore" : "redis";
}

/* xorshift bytes: fast to make, and nothing below (disk, network) could compress them */
static void fill_payload(uint8_t *p, uint64_t n)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

static void make_stamp(uint64_t op, uint64_t size, uint8_t out[STAMP_LEN])
{
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(op >> (8 * i));
        out[8 + i] = (uint8_t)(size >> (8 * i));
    }
}

/* ------------------------------------------------------------------------------------ */
/* a source of object bytes: the stamp, then the shared payload                          */

struct src {
    const uint8_t *payload;
    uint64_t size, off;
    uint8_t stamp[STAMP_LEN];
};

static size_t src_read(struct src *s, uint8_t *dst, size_t cap)
{
    size_t n = 0;
    while (n < cap && s->off < s->size) {
        size_t chunk;
        if (s->off < STAMP_LEN) {
            chunk = STAMP_LEN - (size_t)s->off;
            if (chunk > cap - n)
                chunk = cap - n;
            if (chunk > s->size - s->off)
                chunk = (size_t)(s->size - s->off);
            memcpy(dst + n, s->stamp + s->off, chunk);
        } else {
            uint64_t left = s->size - s->off;
            chunk = cap - n;
            if (chunk > left)
                chunk = (size_t)left;
            memcpy(dst + n, s->payload + s->off, chunk);
        }
        n += chunk;
        s->off += chunk;
    }
    return n;
}

/* A sink that counts bytes and checks the stamp. */
struct sink {
    uint64_t got;
    uint8_t stamp[STAMP_LEN];
    bool bad_stamp;
    char *text; /* small text replies (put JSON), NUL-terminated */
    size_t text_len, text_cap;
};

static void sink_data(struct sink *k, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n && k->got + i < STAMP_LEN; i++)
        if (p[i] != k->stamp[k->got + i])
            k->bad_stamp = true;
    k->got += n;
}

/* ------------------------------------------------------------------------------------ */
/* DynoStore over libcurl                                                                */

static size_t curl_read_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    return src_read(arg, (uint8_t *)buf, size * nitems);
}

static size_t curl_text_cb(char *p, size_t size, size_t nmemb, void *arg)
{
    struct sink *k = arg;
    size_t n = size * nmemb;
    if (k->text_len + n + 1 > k->text_cap) {
        size_t cap = k->text_cap ? k->text_cap * 2 : 1024;
        while (cap < k->text_len + n + 1)
            cap *= 2;
        if (cap > 1 << 20)
            return 0; /* a put reply is small: refuse to grow past 1 MiB */
        char *t = realloc(k->text, cap);
        if (!t)
            return 0;
        k->text = t;
        k->text_cap = cap;
    }
    memcpy(k->text + k->text_len, p, n);
    k->text_len += n;
    k->text[k->text_len] = '\0';
    return n;
}

static size_t curl_sink_cb(char *p, size_t size, size_t nmemb, void *arg)
{
    sink_data(arg, (const uint8_t *)p, size * nmemb);
    return size * nmemb;
}

static struct curl_slist *dyno_headers(struct bench *b)
{
    char auth[TOKEN_MAX + 32];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", b->token);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Expect:");
    h = curl_slist_append(h, "Content-Type: application/octet-stream");
    return h;
}

static void curl_common(CURL *c, struct bench *b, struct curl_slist *h)
{
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, b->o.timeout_s);
}

/* Extracts "key":"<hex>" from a put reply. */
static int json_key(const char *text, char out[KEY_MAX])
{
    const char *p = text ? strstr(text, "\"key\"") : NULL;
    if (!p)
        return -1;
    p = strchr(p + 5, '"');
    if (!p)
        return -1;
    p++;
    size_t n = strcspn(p, "\"");
    if (n == 0 || n >= KEY_MAX)
        return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

/* PUT of the catalog (idempotent). */
static int dyno_catalog_create(struct bench *b)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = dyno_headers(b);
    char url[2048];
    long status = 0;
    struct sink k = {0};
    if (!c)
        return -1;
    snprintf(url, sizeof url, "%s/v1/catalogs/%s", b->o.gateway, b->o.catalog);
    curl_common(c, b, h);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{}");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_text_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &k);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK || status < 200 || status > 299) {
        fprintf(stderr, "dyno-bench: create catalog %s: %s, HTTP %ld %s\n", b->o.catalog,
                curl_easy_strerror(rc), status, k.text ? k.text : "");
        free(k.text);
        return -1;
    }
    free(k.text);
    return 0;
}

/* One put: returns 0 and the key, or -1. *t_ack gets the time the reply arrived. */
static int dyno_put(struct bench *b, CURL *c, struct curl_slist *h, int op, char key[KEY_MAX])
{
    char url[2048];
    struct src s = {.payload = b->payload, .size = b->o.size};
    struct sink k = {0};
    long status = 0;
    make_stamp((uint64_t)op, b->o.size, s.stamp);
    snprintf(url, sizeof url, "%s/v1/catalogs/%s/~/objects?name=bench-%llu-%d-%d", b->o.gateway, b->o.catalog,
             (unsigned long long)b->o.size, (int)getpid(), op);
    curl_common(c, b, h);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, curl_read_cb);
    curl_easy_setopt(c, CURLOPT_READDATA, &s);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->o.size);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_text_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &k);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    int ret = 0;
    if (rc != CURLE_OK || status != 201 || json_key(k.text, key) != 0) {
        fail(b, "put %d: %s, HTTP %ld %.200s", op, curl_easy_strerror(rc), status, k.text ? k.text : "");
        ret = -1;
    }
    free(k.text);
    return ret;
}

static int dyno_get(struct bench *b, CURL *c, struct curl_slist *h, int op, const char *key)
{
    char url[2048];
    struct sink k = {0};
    long status = 0;
    make_stamp((uint64_t)op, b->o.size, k.stamp);
    snprintf(url, sizeof url, "%s/v1/objects/%s", b->o.gateway, key);
    curl_common(c, b, h);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_sink_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &k);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != 200 || k.got != b->o.size || k.bad_stamp) {
        fail(b, "get %d (%s): %s, HTTP %ld, %llu of %llu bytes%s", op, key, curl_easy_strerror(rc), status,
             (unsigned long long)k.got, (unsigned long long)b->o.size, k.bad_stamp ? ", WRONG BYTES" : "");
        return -1;
    }
    return 0;
}

static int dyno_evict(struct bench *b, CURL *c, struct curl_slist *h, const char *key)
{
    char url[2048];
    long status = 0;
    struct sink k = {0};
    snprintf(url, sizeof url, "%s/v1/objects/%s", b->o.gateway, key);
    curl_common(c, b, h);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_text_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &k);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    free(k.text);
    return rc == CURLE_OK && status >= 200 && status < 300 ? 0 : -1;
}

/* ------------------------------------------------------------------------------------ */
/* Redis over RESP                                                                       */

struct resp_conn {
    int fd;
    uint8_t buf[65536];
    size_t have, pos;
};

static int resp_connect(struct bench *b, struct resp_conn *rc)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int err = getaddrinfo(b->o.redis_host, b->o.redis_port, &hints, &ai);
    if (err != 0) {
        fprintf(stderr, "dyno-bench: redis %s:%s: %s\n", b->o.redis_host, b->o.redis_port, gai_strerror(err));
        return -1;
    }
    rc->fd = -1;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            rc->fd = fd;
            break;
        }
        close(fd);
    }
    freeaddrinfo(ai);
    rc->have = rc->pos = 0;
    if (rc->fd < 0) {
        fprintf(stderr, "dyno-bench: cannot connect to redis %s:%s: %s\n", b->o.redis_host, b->o.redis_port,
                strerror(errno));
        return -1;
    }
    return 0;
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *q = p;
    while (n > 0) {
        ssize_t w = send(fd, q, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        q += w;
        n -= (size_t)w;
    }
    return 0;
}

static int resp_fill(struct resp_conn *rc)
{
    if (rc->pos == rc->have)
        rc->pos = rc->have = 0;
    for (;;) {
        ssize_t r = recv(rc->fd, rc->buf + rc->have, sizeof rc->buf - rc->have, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        rc->have += (size_t)r;
        return 0;
    }
}

/* Reads one CRLF-terminated line (without CRLF) into out. */
static int resp_line(struct resp_conn *rc, char *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        while (rc->pos < rc->have) {
            char ch = (char)rc->buf[rc->pos++];
            if (ch == '\n') {
                if (n > 0 && out[n - 1] == '\r')
                    n--;
                out[n] = '\0';
                return 0;
            }
            if (n + 1 >= cap)
                return -1;
            out[n++] = ch;
        }
        if (resp_fill(rc) != 0)
            return -1;
    }
}

/* Sends one command of argc binary-safe arguments; arg 2 may be the object source. */
static int resp_send(struct resp_conn *rc, int argc, const char **argv, const size_t *lens, struct src *value)
{
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "*%d\r\n", argc + (value ? 1 : 0));
    if (write_all(rc->fd, hdr, (size_t)n) != 0)
        return -1;
    for (int i = 0; i < argc; i++) {
        n = snprintf(hdr, sizeof hdr, "$%zu\r\n", lens[i]);
        if (write_all(rc->fd, hdr, (size_t)n) != 0 || write_all(rc->fd, argv[i], lens[i]) != 0 ||
            write_all(rc->fd, "\r\n", 2) != 0)
            return -1;
    }
    if (value) {
        uint8_t chunk[65536];
        n = snprintf(hdr, sizeof hdr, "$%llu\r\n", (unsigned long long)value->size);
        if (write_all(rc->fd, hdr, (size_t)n) != 0)
            return -1;
        /* the stamp, then straight from the shared payload without copying */
        size_t first = src_read(value, chunk, value->size < STAMP_LEN ? (size_t)value->size : STAMP_LEN);
        if (write_all(rc->fd, chunk, first) != 0)
            return -1;
        if (value->size > value->off &&
            write_all(rc->fd, value->payload + value->off, (size_t)(value->size - value->off)) != 0)
            return -1;
        if (write_all(rc->fd, "\r\n", 2) != 0)
            return -1;
    }
    return 0;
}

/* Reads a bulk reply into the sink (streamed); *len = -1 for a nil reply. */
static int resp_bulk(struct resp_conn *rc, struct sink *k, long long *len)
{
    char line[RESP_LINE_MAX];
    if (resp_line(rc, line, sizeof line) != 0 || line[0] != '$')
        return -1;
    char *end = NULL;
    *len = strtoll(line + 1, &end, 10);
    if (!end || *end != '\0')
        return -1;
    if (*len < 0)
        return 0;
    uint64_t left = (uint64_t)*len + 2; /* payload and CRLF */
    while (left > 0) {
        if (rc->pos == rc->have && resp_fill(rc) != 0)
            return -1;
        size_t n = rc->have - rc->pos;
        if (n > left)
            n = (size_t)left;
        size_t data = left > 2 ? (size_t)(left - 2 < n ? left - 2 : n) : 0;
        sink_data(k, rc->buf + rc->pos, data);
        rc->pos += n;
        left -= n;
    }
    return 0;
}

static int redis_key(char out[KEY_MAX], uint64_t size, int op)
{
    return snprintf(out, KEY_MAX, "bench:%llu:%d", (unsigned long long)size, op);
}

static int redis_set(struct bench *b, struct resp_conn *rc, int op)
{
    char key[KEY_MAX], line[RESP_LINE_MAX];
    struct src s = {.payload = b->payload, .size = b->o.size};
    make_stamp((uint64_t)op, b->o.size, s.stamp);
    int kl = redis_key(key, b->o.size, op);
    const char *argv[2] = {"SET", key};
    size_t lens[2] = {3, (size_t)kl};
    if (resp_send(rc, 2, argv, lens, &s) != 0 || resp_line(rc, line, sizeof line) != 0 ||
        strcmp(line, "+OK") != 0) {
        fail(b, "redis SET %s: %s", key, rc->fd >= 0 ? line : "no connection");
        return -1;
    }
    memcpy(b->keys[op], key, (size_t)kl + 1);
    return 0;
}

static int redis_get(struct bench *b, struct resp_conn *rc, int op)
{
    struct sink k = {0};
    long long len = 0;
    const char *key = b->keys[op];
    const char *argv[2] = {"GET", key};
    size_t lens[2] = {3, strlen(key)};
    make_stamp((uint64_t)op, b->o.size, k.stamp);
    if (resp_send(rc, 2, argv, lens, NULL) != 0 || resp_bulk(rc, &k, &len) != 0 ||
        len != (long long)b->o.size || k.bad_stamp) {
        fail(b, "redis GET %s: %lld bytes%s", key, len, k.bad_stamp ? ", WRONG BYTES" : "");
        return -1;
    }
    return 0;
}

static int redis_simple(struct bench *b, struct resp_conn *rc, int argc, const char **argv, char *reply,
                        size_t cap)
{
    size_t lens[4];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    (void)b;
    if (resp_send(rc, argc, argv, lens, NULL) != 0 || resp_line(rc, reply, cap) != 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* the phases                                                                            */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct bench *b = w->b;
    CURL *c = NULL;
    struct curl_slist *h = NULL;
    struct resp_conn *rc = NULL;
    bool ready = true;

    if (b->o.system == SYS_DYNO) {
        c = curl_easy_init();
        h = dyno_headers(b);
        ready = c != NULL;
    } else {
        rc = calloc(1, sizeof *rc);
        ready = rc && resp_connect(b, rc) == 0;
    }
    pthread_barrier_wait(&b->start);
    w->t_start = now_ms();
    for (int i = 0; i < w->count; i++) {
        int op = w->first + i;
        double t0 = now_ms();
        int r = -1;
        if (!ready)
            fail(b, "client %d could not connect", w->id);
        else if (b->o.system == SYS_DYNO)
            r = w->get_phase ? dyno_get(b, c, h, op, b->keys[op]) : dyno_put(b, c, h, op, b->keys[op]);
        else
            r = w->get_phase ? redis_get(b, rc, op) : redis_set(b, rc, op);
        b->lat_ms[op] = now_ms() - t0;
        if (r != 0 && rc) { /* the stream may be out of step: reconnect */
            close(rc->fd);
            ready = resp_connect(b, rc) == 0;
        }
    }
    w->t_end = now_ms();
    if (c)
        curl_easy_cleanup(c);
    curl_slist_free_all(h);
    if (rc) {
        if (rc->fd >= 0)
            close(rc->fd);
        free(rc);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(double *sorted, int n, double p)
{
    if (n <= 0)
        return 0;
    int i = (int)ceil(p * n) - 1;
    if (i < 0)
        i = 0;
    if (i >= n)
        i = n - 1;
    return sorted[i];
}

static int run_phase(struct bench *b, bool get_phase)
{
    int nc = b->o.clients;
    struct worker *ws = calloc((size_t)nc, sizeof *ws);
    pthread_t *ts = calloc((size_t)nc, sizeof *ts);
    if (!ws || !ts) {
        free(ws);
        free(ts);
        return -1;
    }
    pthread_barrier_init(&b->start, NULL, (unsigned)nc);
    double cpu0 = cpu_ms(b->o.cpu_pids);
    int next = 0;
    for (int i = 0; i < nc; i++) {
        ws[i] = (struct worker){.b = b,
                                .id = i,
                                .first = next,
                                .get_phase = get_phase,
                                .count = b->o.ops / nc + (i < b->o.ops % nc ? 1 : 0)};
        next += ws[i].count;
        pthread_create(&ts[i], NULL, worker_main, &ws[i]);
    }
    double t0 = 0, t1 = 0;
    for (int i = 0; i < nc; i++) {
        pthread_join(ts[i], NULL);
        if (i == 0 || ws[i].t_start < t0)
            t0 = ws[i].t_start;
        if (ws[i].t_end > t1)
            t1 = ws[i].t_end;
    }
    double cpu1 = cpu_ms(b->o.cpu_pids);
    pthread_barrier_destroy(&b->start);
    double secs = (t1 - t0) / 1e3;
    if (secs <= 0)
        secs = 1e-9;
    qsort(b->lat_ms, (size_t)b->o.ops, sizeof(double), cmp_double);
    printf("RESULT %s %s %llu %d %d %.2f %.2f %.3f %.3f %.3f\n", sys_label(b), get_phase ? "get" : "put",
           (unsigned long long)b->o.size, nc, b->o.ops, (double)b->o.size * b->o.ops / MiB / secs,
           b->o.ops / secs, percentile(b->lat_ms, b->o.ops, 0.50), percentile(b->lat_ms, b->o.ops, 0.99),
           cpu_per_op(cpu0, cpu1, b->o.ops));
    fflush(stdout);
    free(ws);
    free(ts);
    return 0;
}

static void cleanup_objects(struct bench *b)
{
    if (b->o.system == SYS_DYNO) {
        CURL *c = curl_easy_init();
        struct curl_slist *h = dyno_headers(b);
        for (int i = 0; c && i < b->o.ops; i++)
            if (b->keys[i][0] && dyno_evict(b, c, h, b->keys[i]) != 0)
                fprintf(stderr, "dyno-bench: evict %s failed\n", b->keys[i]);
        curl_slist_free_all(h);
        if (c)
            curl_easy_cleanup(c);
    } else {
        struct resp_conn *rc = calloc(1, sizeof *rc);
        char line[RESP_LINE_MAX];
        const char *argv[1] = {"FLUSHALL"};
        if (rc && resp_connect(b, rc) == 0) {
            if (redis_simple(b, rc, 1, argv, line, sizeof line) != 0)
                fprintf(stderr, "dyno-bench: FLUSHALL failed\n");
            close(rc->fd);
        }
        free(rc);
    }
}

/* ------------------------------------------------------------------------------------ */
/* put-to-event latency                                                                  */

#define EV_RECENT 64
#define EV_SNIP 4096

/* What the subscriber thread shares with the putting thread. An event can arrive before the
 * put's reply tells us the key, so the last EV_RECENT payloads are kept with their arrival
 * times and searched once the key is known. */
struct ev_state {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool connected, subscribed, failed;
    char want[KEY_MAX]; /* the key we wait for, "" while the put runs */
    bool seen;
    double t_seen;
    int events;
    struct {
        char text[EV_SNIP];
        size_t len;
        double t;
    } recent[EV_RECENT];
};

static bool mem_has(const char *hay, size_t n, const char *needle)
{
    size_t kl = strlen(needle);
    for (size_t i = 0; kl > 0 && i + kl <= n; i++)
        if (memcmp(hay + i, needle, kl) == 0)
            return true;
    return false;
}

static void ev_on_connect(struct mosquitto *m, void *arg, int rc, int flags, const mosquitto_property *props)
{
    struct ev_state *st = arg;
    (void)m;
    (void)flags;
    (void)props;
    pthread_mutex_lock(&st->lock);
    st->connected = rc == 0;
    st->failed = rc != 0;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
}

static void ev_on_subscribe(struct mosquitto *m, void *arg, int mid, int qos_count, const int *granted,
                            const mosquitto_property *props)
{
    struct ev_state *st = arg;
    (void)m;
    (void)mid;
    (void)props;
    pthread_mutex_lock(&st->lock);
    st->subscribed = qos_count > 0 && granted[0] < 128;
    st->failed = !st->subscribed;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
}

static void ev_on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg,
                          const mosquitto_property *props)
{
    struct ev_state *st = arg;
    double t = now_ms();
    (void)m;
    (void)props;
    size_t n = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    if (n > EV_SNIP)
        n = EV_SNIP;
    pthread_mutex_lock(&st->lock);
    int slot = st->events++ % EV_RECENT;
    memcpy(st->recent[slot].text, msg->payload, n);
    st->recent[slot].len = n;
    st->recent[slot].t = t;
    /* the payload names the key somewhere; no need to know its exact shape here */
    if (st->want[0] && !st->seen && mem_has(msg->payload, n, st->want)) {
        st->seen = true;
        st->t_seen = t;
        pthread_cond_broadcast(&st->cond);
    }
    pthread_mutex_unlock(&st->lock);
}

/* Waits on cond until *flag, *failed or timeout_ms from now; returns *flag. */
static bool wait_flag(pthread_mutex_t *lock, pthread_cond_t *cond, const bool *flag, const bool *failed,
                      double timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ns = (long long)ts.tv_nsec + (long long)(timeout_ms * 1e6);
    ts.tv_sec += (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    pthread_mutex_lock(lock);
    while (!*flag && !*failed)
        if (pthread_cond_timedwait(cond, lock, &ts) == ETIMEDOUT)
            break;
    bool r = *flag;
    pthread_mutex_unlock(lock);
    return r;
}

static bool ev_wait(struct ev_state *st, bool *flag, double timeout_ms)
{
    return wait_flag(&st->lock, &st->cond, flag, &st->failed, timeout_ms);
}

static int run_events(struct bench *b)
{
    struct ev_state st = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    char topic[1024], cid[64];
    int ret = 0, n = 0;
    double *lat = calloc((size_t)b->o.ops, sizeof *lat), *ack = calloc((size_t)b->o.ops, sizeof *ack);
    CURL *c = curl_easy_init();
    struct curl_slist *h = dyno_headers(b);
    struct mosquitto *m = NULL;

    mosquitto_lib_init();
    snprintf(cid, sizeof cid, "bench-%d", (int)getpid());
    m = mosquitto_new(cid, true, &st);
    if (!m || !lat || !ack || !c) {
        printf("EVENTS none out of memory\n");
        ret = 1;
        goto out;
    }
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_username_pw_set(m, "admin", b->token);
    mosquitto_connect_v5_callback_set(m, ev_on_connect);
    mosquitto_subscribe_v5_callback_set(m, ev_on_subscribe);
    mosquitto_message_v5_callback_set(m, ev_on_message);
    if (mosquitto_connect_bind_v5(m, b->o.broker_host, b->o.broker_port, 30, NULL, NULL) !=
            MOSQ_ERR_SUCCESS ||
        mosquitto_loop_start(m) != MOSQ_ERR_SUCCESS) {
        printf("EVENTS none cannot reach the broker at %s:%d\n", b->o.broker_host, b->o.broker_port);
        goto out;
    }
    if (!ev_wait(&st, &st.connected, 10000)) {
        printf("EVENTS none the broker refused the connection as admin\n");
        goto out;
    }
    snprintf(topic, sizeof topic, "dyno/v1/events/%s", b->o.catalog);
    mosquitto_subscribe_v5(m, NULL, topic, 1, 0, NULL);
    if (!ev_wait(&st, &st.subscribed, 10000)) {
        printf("EVENTS none subscription to %s refused\n", topic);
        goto out;
    }
    for (int i = 0; i < b->o.ops; i++) {
        char key[KEY_MAX];
        pthread_mutex_lock(&st.lock);
        st.seen = false;
        st.want[0] = '\0';
        pthread_mutex_unlock(&st.lock);
        double t0 = now_ms();
        if (dyno_put(b, c, h, i, key) != 0) {
            ret = 1;
            break;
        }
        double t_ack = now_ms();
        pthread_mutex_lock(&st.lock);
        for (int j = 0; j < EV_RECENT && j < st.events; j++) {
            if (st.recent[j].t >= t0 && mem_has(st.recent[j].text, st.recent[j].len, key)) {
                st.seen = true; /* it beat the reply */
                st.t_seen = st.recent[j].t;
            }
        }
        memcpy(st.want, key, sizeof key);
        pthread_mutex_unlock(&st.lock);
        if (!ev_wait(&st, &st.seen, i == 0 ? 3000 : 10000)) {
            if (i == 0) {
                printf("EVENTS none no event naming the new object within 3 s on %s\n", topic);
                goto out;
            }
            fprintf(stderr, "dyno-bench: no event for put %d\n", i);
            continue;
        }
        lat[n] = st.t_seen - t0;
        ack[n] = st.t_seen - t_ack;
        n++;
    }
    if (n > 0) {
        qsort(lat, (size_t)n, sizeof *lat, cmp_double);
        qsort(ack, (size_t)n, sizeof *ack, cmp_double);
        printf("EVENTS %d %.3f %.3f %.3f\n", n, percentile(lat, n, 0.5), percentile(lat, n, 0.99),
               percentile(ack, n, 0.5));
    }
out:
    if (m) {
        mosquitto_disconnect(m);
        mosquitto_loop_stop(m, true);
        mosquitto_destroy(m);
    }
    mosquitto_lib_cleanup();
    curl_slist_free_all(h);
    if (c)
        curl_easy_cleanup(c);
    free(lat);
    free(ack);
    return ret;
}

/* ------------------------------------------------------------------------------------ */
/* the disk's limit: the fragment bytes of a k=3, m=2 put, fdatasync'd by parallel writers */

#define DISK_K 3
#define DISK_CHUNK (1u << 20)

struct disk_writer {
    struct bench *b;
    int id;
    uint64_t frag; /* bytes per fragment */
    double t_start, t_end;
    int errors;
};

/* One fragment: write it whole, fdatasync, close, remove (the next object needs the space,
 * and a container's rename and directory fsync are not part of the disk's limit). */
static int disk_fragment(struct disk_writer *w, int op)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/w%d-%d.frag", w->b->o.dir, w->id, op);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int ret = 0;
    for (uint64_t off = 0; off < w->frag && ret == 0;) {
        size_t n = w->frag - off < DISK_CHUNK ? (size_t)(w->frag - off) : DISK_CHUNK;
        ssize_t r = write(fd, w->b->payload, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            ret = -1;
        else
            off += (uint64_t)r;
    }
    if (ret == 0 && fdatasync(fd) != 0)
        ret = -1;
    if (close(fd) != 0)
        ret = -1;
    unlink(path);
    return ret;
}

static void *disk_main(void *arg)
{
    struct disk_writer *w = arg;
    struct bench *b = w->b;
    pthread_barrier_wait(&b->start);
    w->t_start = now_ms();
    for (int op = 0; op < b->o.ops; op++) {
        double t0 = now_ms();
        if (disk_fragment(w, op) != 0) {
            fail(b, "disk writer %d, fragment %d in %s: %s", w->id, op, b->o.dir, strerror(errno));
            w->errors++;
        }
        /* every writer writes a fragment of every object: keep writer-major latencies */
        b->lat_ms[w->id * b->o.ops + op] = now_ms() - t0;
    }
    w->t_end = now_ms();
    return NULL;
}

static int run_disk(struct bench *b)
{
    int nw = b->o.clients, n = nw * b->o.ops;
    struct disk_writer *ws = calloc((size_t)nw, sizeof *ws);
    pthread_t *ts = calloc((size_t)nw, sizeof *ts);
    b->lat_ms = calloc((size_t)n, sizeof *b->lat_ms);
    b->payload = malloc(DISK_CHUNK);
    if (!ws || !ts || !b->lat_ms || !b->payload) {
        free(ws);
        free(ts);
        fputs("dyno-bench: out of memory\n", stderr);
        return 1;
    }
    fill_payload(b->payload, DISK_CHUNK);
    pthread_barrier_init(&b->start, NULL, (unsigned)nw);
    for (int i = 0; i < nw; i++) {
        ws[i] = (struct disk_writer){.b = b, .id = i, .frag = (b->o.size + DISK_K - 1) / DISK_K};
        pthread_create(&ts[i], NULL, disk_main, &ws[i]);
    }
    double t0 = 0, t1 = 0;
    for (int i = 0; i < nw; i++) {
        pthread_join(ts[i], NULL);
        if (i == 0 || ws[i].t_start < t0)
            t0 = ws[i].t_start;
        if (ws[i].t_end > t1)
            t1 = ws[i].t_end;
    }
    pthread_barrier_destroy(&b->start);
    double secs = (t1 - t0) / 1e3 > 0 ? (t1 - t0) / 1e3 : 1e-9;
    qsort(b->lat_ms, (size_t)n, sizeof(double), cmp_double);
    if (b->failures == 0)
        printf("RESULT disk-limit put %llu %d %d %.2f %.2f %.3f %.3f -1\n", (unsigned long long)b->o.size, nw,
               b->o.ops, (double)b->o.size * b->o.ops / MiB / secs, b->o.ops / secs,
               percentile(b->lat_ms, n, 0.50), percentile(b->lat_ms, n, 0.99));
    free(ws);
    free(ts);
    return b->failures == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------------------------ */
/* MQTT ingest: readings/s and publish-to-event latency                                  */

/* Readings a publisher keeps published but not yet announced (object.created). The broker's
 * PUBACK does not wait for storage, so a window on PUBACKs would let the publishers run ahead
 * and the row would measure the broker's backlog; a window on events keeps 16 x 8 readings in
 * flight: enough to keep the gateway's ingest sessions busy, and p50/p99 stay per reading. */
#define INGEST_WINDOW 8

struct publisher;

struct ingest {
    struct bench *b;
    struct publisher *ps; /* the publishers, to credit each its announced readings */
    int nps;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char prefix[32]; /* names are <prefix><op>: unique to this run */
    double *t_pub;   /* per op, 0 until published */
    double *t_ev;    /* per op, 0 until its object.created event arrived */
    int events;      /* distinct ops announced */
    int refused;     /* PUBACKs with a failure reason */
    bool sub_ok, sub_failed;
};

struct publisher {
    struct ingest *in;
    int id, first, count;
    int acked, sent, announced;
    bool connected, failed;
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

static void in_on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg,
                          const mosquitto_property *props)
{
    struct ingest *in = arg;
    double t = now_ms();
    (void)m;
    (void)props;
    size_t n = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0, pl = strlen(in->prefix);
    const char *p = msg->payload;
    /* the event names the object; find our name in it whatever the JSON's exact shape */
    for (size_t i = 0; i + pl < n; i++) {
        if (memcmp(p + i, in->prefix, pl) != 0)
            continue;
        long op = 0;
        size_t j = i + pl;
        while (j < n && p[j] >= '0' && p[j] <= '9' && op < 1000000000L)
            op = op * 10 + (p[j++] - '0');
        if (j == i + pl || op >= in->b->o.ops)
            break;
        pthread_mutex_lock(&in->lock);
        bool first = in->t_ev[op] == 0; /* at least once: a reading may be announced twice */
        if (first) {
            in->t_ev[op] = t;
            in->events++;
            pthread_cond_broadcast(&in->cond);
        }
        pthread_mutex_unlock(&in->lock);
        for (int k = 0; first && k < in->nps; k++) {
            struct publisher *pb = &in->ps[k];
            if (op >= pb->first && op < pb->first + pb->count) {
                pthread_mutex_lock(&pb->lock);
                pb->announced++;
                pthread_cond_broadcast(&pb->cond);
                pthread_mutex_unlock(&pb->lock);
            }
        }
        break;
    }
}

static void in_on_subscribe(struct mosquitto *m, void *arg, int mid, int qos_count, const int *granted,
                            const mosquitto_property *props)
{
    struct ingest *in = arg;
    (void)m;
    (void)mid;
    (void)props;
    pthread_mutex_lock(&in->lock);
    in->sub_ok = qos_count > 0 && granted[0] < 128;
    in->sub_failed = !in->sub_ok;
    pthread_cond_broadcast(&in->cond);
    pthread_mutex_unlock(&in->lock);
}

static void pub_on_connect(struct mosquitto *m, void *arg, int rc, int flags, const mosquitto_property *props)
{
    struct publisher *p = arg;
    (void)m;
    (void)flags;
    (void)props;
    pthread_mutex_lock(&p->lock);
    p->connected = rc == 0;
    p->failed = rc != 0;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static void pub_on_publish(struct mosquitto *m, void *arg, int mid, int reason,
                           const mosquitto_property *props)
{
    struct publisher *p = arg;
    (void)m;
    (void)mid;
    (void)props;
    if (reason >= 128) {
        pthread_mutex_lock(&p->in->lock);
        p->in->refused++;
        pthread_mutex_unlock(&p->in->lock);
    }
    pthread_mutex_lock(&p->lock);
    p->acked++;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static struct mosquitto *mqtt_open(struct bench *b, const char *cid, void *arg)
{
    struct mosquitto *m = mosquitto_new(cid, true, arg);
    if (!m)
        return NULL;
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_username_pw_set(m, "admin", b->token);
    return m;
}

static void *publisher_main(void *arg)
{
    struct publisher *p = arg;
    struct ingest *in = p->in;
    struct bench *b = in->b;
    char cid[64], topic[1024], name[64];
    snprintf(cid, sizeof cid, "bench-%d-pub%d", (int)getpid(), p->id);
    snprintf(topic, sizeof topic, "dyno/v1/ingest/%s", b->o.catalog);
    struct mosquitto *m = mqtt_open(b, cid, p);
    if (!m) {
        fail(b, "publisher %d: out of memory", p->id);
        return NULL;
    }
    mosquitto_connect_v5_callback_set(m, pub_on_connect);
    mosquitto_publish_v5_callback_set(m, pub_on_publish);
    if (mosquitto_connect_bind_v5(m, b->o.broker_host, b->o.broker_port, 30, NULL, NULL) !=
            MOSQ_ERR_SUCCESS ||
        mosquitto_loop_start(m) != MOSQ_ERR_SUCCESS) {
        fail(b, "publisher %d cannot reach the broker at %s:%d", p->id, b->o.broker_host, b->o.broker_port);
        mosquitto_destroy(m);
        return NULL;
    }
    if (!wait_flag(&p->lock, &p->cond, &p->connected, &p->failed, 10000)) {
        fail(b, "publisher %d: the broker refused the connection as admin", p->id);
        goto out;
    }
    pthread_barrier_wait(&b->start);
    double t_begin = now_ms();
    for (int i = 0; i < p->count; i++) {
        int op = p->first + i;
        uint8_t body[4096];
        size_t len = b->o.size < sizeof body ? (size_t)b->o.size : sizeof body;
        struct src s = {.payload = b->payload, .size = len};
        make_stamp((uint64_t)op, b->o.size, s.stamp);
        len = src_read(&s, body, len);
        pthread_mutex_lock(&p->lock);
        while (p->sent - p->announced >= INGEST_WINDOW && !p->failed) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&p->cond, &p->lock, &ts);
            if (now_ms() - t_begin > b->o.deadline_s * 1e3)
                p->failed = true;
        }
        bool stop = p->failed;
        p->sent++;
        pthread_mutex_unlock(&p->lock);
        if (stop)
            break;
        mosquitto_property *props = NULL;
        snprintf(name, sizeof name, "%s%d", in->prefix, op);
        mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "name", name);
        pthread_mutex_lock(&in->lock);
        in->t_pub[op] = now_ms();
        pthread_mutex_unlock(&in->lock);
        int rc = mosquitto_publish_v5(m, NULL, topic, (int)len, body, 1, false, props);
        mosquitto_property_free_all(&props);
        if (rc != MOSQ_ERR_SUCCESS) {
            fail(b, "publisher %d, reading %d: %s", p->id, op, mosquitto_strerror(rc));
            break;
        }
    }
    /* wait for the broker's PUBACKs so no reading is lost in our own queue */
    pthread_mutex_lock(&p->lock);
    double t_end = now_ms() + b->o.deadline_s * 1e3;
    while (p->acked < p->sent && !p->failed && now_ms() < t_end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&p->cond, &p->lock, &ts);
    }
    pthread_mutex_unlock(&p->lock);
out:
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, true);
    mosquitto_destroy(m);
    return NULL;
}

static int run_ingest(struct bench *b)
{
    struct ingest in = {.b = b, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    int nc = b->o.clients, ret = 1;
    struct publisher *ps = calloc((size_t)nc, sizeof *ps);
    pthread_t *ts = calloc((size_t)nc, sizeof *ts);
    struct mosquitto *sub = NULL;
    char topic[1024], cid[64];
    in.t_pub = calloc((size_t)b->o.ops, sizeof *in.t_pub);
    in.t_ev = calloc((size_t)b->o.ops, sizeof *in.t_ev);
    b->lat_ms = calloc((size_t)b->o.ops, sizeof *b->lat_ms);
    b->payload = malloc(4096);
    if (!ps || !ts || !in.t_pub || !in.t_ev || !b->lat_ms || !b->payload) {
        fputs("dyno-bench: out of memory\n", stderr);
        goto out;
    }
    if (b->o.size > 4096) {
        fputs("dyno-bench: ingest readings are at most 4 KiB here\n", stderr);
        goto out;
    }
    for (int i = 0; i < 4096; i++)
        b->payload[i] = (uint8_t)((unsigned)i * 2654435761u >> 13);
    snprintf(in.prefix, sizeof in.prefix, "ing%d-", (int)getpid());
    mosquitto_lib_init();
    snprintf(cid, sizeof cid, "bench-%d-events", (int)getpid());
    sub = mqtt_open(b, cid, &in);
    if (!sub) {
        fputs("dyno-bench: out of memory\n", stderr);
        goto out;
    }
    {
        struct publisher conn = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
        mosquitto_user_data_set(sub, &conn);
        mosquitto_connect_v5_callback_set(sub, pub_on_connect);
        if (mosquitto_connect_bind_v5(sub, b->o.broker_host, b->o.broker_port, 30, NULL, NULL) !=
                MOSQ_ERR_SUCCESS ||
            mosquitto_loop_start(sub) != MOSQ_ERR_SUCCESS ||
            !wait_flag(&conn.lock, &conn.cond, &conn.connected, &conn.failed, 10000)) {
            fprintf(stderr, "dyno-bench: ingest: cannot connect to the broker at %s:%d as admin\n",
                    b->o.broker_host, b->o.broker_port);
            mosquitto_user_data_set(sub, &in);
            goto out;
        }
        /* conn dies with this block: no later reconnect may call back into it */
        mosquitto_connect_v5_callback_set(sub, NULL);
        mosquitto_user_data_set(sub, &in);
    }
    mosquitto_subscribe_v5_callback_set(sub, in_on_subscribe);
    mosquitto_message_v5_callback_set(sub, in_on_message);
    snprintf(topic, sizeof topic, "dyno/v1/events/%s", b->o.catalog);
    mosquitto_subscribe_v5(sub, NULL, topic, 1, 0, NULL);
    if (!wait_flag(&in.lock, &in.cond, &in.sub_ok, &in.sub_failed, 10000)) {
        fprintf(stderr, "dyno-bench: ingest: subscription to %s refused\n", topic);
        goto out;
    }

    pthread_barrier_init(&b->start, NULL, (unsigned)nc + 1);
    in.ps = ps;
    in.nps = nc;
    int next = 0;
    for (int i = 0; i < nc; i++) {
        ps[i] = (struct publisher){.in = &in,
                                   .id = i,
                                   .first = next,
                                   .count = b->o.ops / nc + (i < b->o.ops % nc ? 1 : 0),
                                   .lock = PTHREAD_MUTEX_INITIALIZER,
                                   .cond = PTHREAD_COND_INITIALIZER};
        next += ps[i].count;
        pthread_create(&ts[i], NULL, publisher_main, &ps[i]);
    }
    /* a publisher that cannot connect never reaches the barrier: give up on the row then */
    bool all_connected = true;
    for (int i = 0; i < nc; i++)
        if (!wait_flag(&ps[i].lock, &ps[i].cond, &ps[i].connected, &ps[i].failed, 15000))
            all_connected = false;
    if (!all_connected) {
        fputs("dyno-bench: ingest: a publisher could not connect\n", stderr);
        exit(1); /* threads wait on the barrier forever; the process is a one-shot bench */
    }
    double cpu0 = cpu_ms(b->o.cpu_pids);
    double t0 = now_ms(), deadline = t0 + b->o.deadline_s * 1e3;
    pthread_barrier_wait(&b->start);
    pthread_mutex_lock(&in.lock);
    while (in.events < b->o.ops && now_ms() < deadline) {
        struct timespec tsp;
        clock_gettime(CLOCK_REALTIME, &tsp);
        tsp.tv_nsec += 100000000L;
        if (tsp.tv_nsec >= 1000000000L) {
            tsp.tv_sec++;
            tsp.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&in.cond, &in.lock, &tsp);
    }
    int got = in.events, refused = in.refused;
    double t_first = 0, t_last = 0;
    int n = 0;
    for (int i = 0; i < b->o.ops; i++) {
        if (in.t_pub[i] > 0 && (t_first == 0 || in.t_pub[i] < t_first))
            t_first = in.t_pub[i];
        if (in.t_ev[i] > t_last)
            t_last = in.t_ev[i];
        if (in.t_ev[i] > 0 && in.t_pub[i] > 0)
            b->lat_ms[n++] = in.t_ev[i] - in.t_pub[i];
    }
    pthread_mutex_unlock(&in.lock);
    double cpu1 = cpu_ms(b->o.cpu_pids);
    for (int i = 0; i < nc; i++) {
        pthread_mutex_lock(&ps[i].lock);
        ps[i].failed = true; /* stop a publisher still waiting for its window */
        pthread_cond_broadcast(&ps[i].cond);
        pthread_mutex_unlock(&ps[i].lock);
        pthread_join(ts[i], NULL);
    }
    pthread_barrier_destroy(&b->start);
    if (got < b->o.ops || refused > 0) {
        fprintf(stderr, "dyno-bench: ingest FAILED: %d of %d readings announced within %.0f s, %d refused\n",
                got, b->o.ops, b->o.deadline_s, refused);
        goto out;
    }
    double secs = (t_last - t_first) / 1e3 > 0 ? (t_last - t_first) / 1e3 : 1e-9;
    qsort(b->lat_ms, (size_t)n, sizeof(double), cmp_double);
    printf("RESULT %s ingest %llu %d %d %.2f %.2f %.3f %.3f %.3f\n", sys_label(b),
           (unsigned long long)b->o.size, nc, b->o.ops, (double)b->o.size * b->o.ops / MiB / secs,
           b->o.ops / secs, percentile(b->lat_ms, n, 0.5), percentile(b->lat_ms, n, 0.99),
           cpu_per_op(cpu0, cpu1, b->o.ops));
    ret = b->failures == 0 ? 0 : 1;
out:
    if (sub) {
        mosquitto_disconnect(sub);
        mosquitto_loop_stop(sub, true);
        mosquitto_destroy(sub);
    }
    mosquitto_lib_cleanup();
    free(ps);
    free(ts);
    free(in.t_pub);
    free(in.t_ev);
    return ret;
}

/* ------------------------------------------------------------------------------------ */

static int read_token(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(out, 1, cap - 1, f);
    fclose(f);
    out[n] = '\0';
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        out[--n] = '\0';
    return n > 0 ? 0 : -1;
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    switch (*end) {
    case 'K':
    case 'k':
        v <<= 10;
        end++;
        break;
    case 'M':
    case 'm':
        v <<= 20;
        end++;
        break;
    case 'G':
    case 'g':
        v <<= 30;
        end++;
        break;
    default:
        break;
    }
    if (*end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int parse_int(const char *s, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < 0 || v > 1000000000L)
        return -1;
    *out = (int)v;
    return 0;
}

static void usage(void)
{
    fputs("usage: dyno-bench --system dyno|redis --op putget|events|ingest|ping --size N[K|M|G]\n"
          "                  --clients N --ops N [--evict] [--label NAME] [--cpu-pids P,P,...]\n"
          "       dyno-bench --op disk --dir D --size N[K|M|G] --clients WRITERS --ops N\n"
          "  ingest: --broker-port P [--broker-host H] [--deadline SECONDS]\n"
          "  dyno:  --gateway URL --token-file F --catalog OWNER/PATH\n"
          "         [--broker-host H --broker-port P]   (events)\n"
          "  redis: --redis-port P [--redis-host H]\n",
          stderr);
}

int main(int argc, char **argv)
{
    struct bench b = {.o = {.op = "putget",
                            .redis_host = "127.0.0.1",
                            .broker_host = "127.0.0.1",
                            .size = 4096,
                            .clients = 1,
                            .ops = 10,
                            .timeout_s = 3600,
                            .deadline_s = 60,
                            .catalog = "admin/bench"}};
    int ret = 1;
    const char *system = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool bad = false;
        if (strcmp(a, "--evict") == 0) {
            b.o.evict = true;
            continue;
        }
        if (!v) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(a, "--system") == 0)
            system = v;
        else if (strcmp(a, "--op") == 0)
            b.o.op = v;
        else if (strcmp(a, "--gateway") == 0)
            b.o.gateway = v;
        else if (strcmp(a, "--token-file") == 0)
            b.o.token_file = v;
        else if (strcmp(a, "--catalog") == 0)
            b.o.catalog = v;
        else if (strcmp(a, "--redis-host") == 0)
            b.o.redis_host = v;
        else if (strcmp(a, "--redis-port") == 0)
            b.o.redis_port = v;
        else if (strcmp(a, "--label") == 0)
            b.o.label = v;
        else if (strcmp(a, "--cpu-pids") == 0)
            b.o.cpu_pids = v;
        else if (strcmp(a, "--dir") == 0)
            b.o.dir = v;
        else if (strcmp(a, "--deadline") == 0) {
            int d = 0;
            bad = parse_int(v, &d) != 0 || d < 1;
            b.o.deadline_s = d;
        } else if (strcmp(a, "--broker-host") == 0)
            b.o.broker_host = v;
        else if (strcmp(a, "--broker-port") == 0)
            bad = parse_int(v, &b.o.broker_port) != 0;
        else if (strcmp(a, "--size") == 0)
            bad = parse_size(v, &b.o.size) != 0;
        else if (strcmp(a, "--clients") == 0)
            bad = parse_int(v, &b.o.clients) != 0 || b.o.clients < 1;
        else if (strcmp(a, "--ops") == 0)
            bad = parse_int(v, &b.o.ops) != 0 || b.o.ops < 1;
        else
            bad = true;
        if (bad) {
            fprintf(stderr, "dyno-bench: bad option %s %s\n", a, v);
            usage();
            return 2;
        }
    }
    if (strcmp(b.o.op, "disk") == 0) {
        if (!b.o.dir || b.o.size == 0) {
            fputs("dyno-bench: disk needs --dir and --size\n", stderr);
            return 2;
        }
        pthread_mutex_init(&b.lock, NULL);
        ret = run_disk(&b);
        free(b.payload);
        free(b.lat_ms);
        pthread_mutex_destroy(&b.lock);
        return ret;
    }
    if (!system || (strcmp(system, "dyno") != 0 && strcmp(system, "redis") != 0)) {
        usage();
        return 2;
    }
    b.o.system = strcmp(system, "dyno") == 0 ? SYS_DYNO : SYS_REDIS;
    if (b.o.clients > b.o.ops)
        b.o.clients = b.o.ops;
    if (b.o.system == SYS_DYNO) {
        if (!b.o.gateway || !b.o.token_file || read_token(b.o.token_file, b.token, sizeof b.token)) {
            fputs("dyno-bench: dyno needs --gateway and a readable --token-file\n", stderr);
            return 2;
        }
    } else if (!b.o.redis_port) {
        fputs("dyno-bench: redis needs --redis-port\n", stderr);
        return 2;
    }

    pthread_mutex_init(&b.lock, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    if (strcmp(b.o.op, "ping") == 0) {
        struct resp_conn rc;
        char line[RESP_LINE_MAX];
        const char *args[1] = {"PING"};
        ret = b.o.system == SYS_REDIS && resp_connect(&b, &rc) == 0 &&
                      redis_simple(&b, &rc, 1, args, line, sizeof line) == 0 && strcmp(line, "+PONG") == 0
                  ? 0
                  : 1;
        goto out;
    }
    if (b.o.system == SYS_DYNO && dyno_catalog_create(&b) != 0)
        goto out;
    if (strcmp(b.o.op, "events") == 0) {
        if (b.o.system != SYS_DYNO || b.o.broker_port <= 0) {
            fputs("dyno-bench: events needs --system dyno and --broker-port\n", stderr);
            goto out;
        }
        b.payload = malloc(b.o.size ? b.o.size : 1);
        if (!b.payload)
            goto out;
        for (uint64_t i = 0; i < b.o.size; i++)
            b.payload[i] = (uint8_t)(i * 2654435761u >> 13);
        ret = run_events(&b);
        goto out;
    }
    if (strcmp(b.o.op, "ingest") == 0) {
        if (b.o.system != SYS_DYNO || b.o.broker_port <= 0) {
            fputs("dyno-bench: ingest needs --system dyno and --broker-port\n", stderr);
            goto out;
        }
        ret = run_ingest(&b);
        goto out;
    }
    if (strcmp(b.o.op, "putget") != 0) {
        usage();
        ret = 2;
        goto out;
    }
    b.payload = malloc(b.o.size ? b.o.size : 1);
    b.keys = calloc((size_t)b.o.ops, sizeof *b.keys);
    b.lat_ms = calloc((size_t)b.o.ops, sizeof *b.lat_ms);
    if (!b.payload || !b.keys || !b.lat_ms) {
        fputs("dyno-bench: out of memory\n", stderr);
        goto out;
    }
    fill_payload(b.payload, b.o.size);
    run_phase(&b, false);
    if (b.failures == 0)
        run_phase(&b, true);
    if (b.o.evict)
        cleanup_objects(&b);
    ret = b.failures == 0 ? 0 : 1;
    if (b.failures)
        fprintf(stderr, "dyno-bench: %d operation(s) failed\n", b.failures);
out:
    free(b.payload);
    free(b.keys);
    free(b.lat_ms);
    curl_global_cleanup();
    pthread_mutex_destroy(&b.lock);
    return ret;
}
