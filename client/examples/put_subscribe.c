/*
 * put_subscribe: a small libdynostore program for an edge node. It subscribes to a catalog,
 * and once the subscription is in place it puts a file into that catalog, prints the new
 * object's key, gets the object back and compares it with the file, then waits for the
 * object.created event of that object and prints it.
 *
 *   DYNOSTORE_TOKEN=... ./put_subscribe http://127.0.0.1:8080 mqtt://127.0.0.1:1883 \
 *       alice/sensors reading.bin [TIMEOUT_SECONDS]
 *
 * Output, one line each: "key <key>", "get <size> bytes identical", "event <json>".
 * Exit status 0 when all three happened, 1 on any failure or when no event came within the
 * timeout (default 60 s), 2 on bad arguments. The catalog must exist
 * (`dynostore catalog create C`), and the token must allow writing to it.
 *
 * Build it against an installed libdynostore (see README.md):
 *   cc -o put_subscribe put_subscribe.c $(pkg-config --cflags --libs dynostore)
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dynostore/client.h>

struct example {
    dyno_client *c;
    const char *catalog, *path;
    void *file; /* the file's bytes, to compare the object with */
    size_t file_len;
    char key[DYNO_CLIENT_KEY_LEN + 1]; /* "" until the put succeeded */
    int failed;                        /* the put or the get failed: stop with exit status 1 */
    int got_event;
};

/* Set by SIGALRM (the timeout) or SIGINT; dyno_client_subscribe checks it every second. */
static volatile int stop_flag;
static volatile sig_atomic_t timed_out;

static void on_alarm(int sig)
{
    (void)sig;
    timed_out = 1;
    stop_flag = 1;
}

static void on_interrupt(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* Reads the whole (small) file: the example keeps it to compare the object with. */
static int read_file(const char *path, void **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int bad = 0;

    if (!f)
        return -1;
    for (;;) {
        if (n == cap) {
            char *p = realloc(buf, cap ? 2 * cap : 65536);
            if (!p) {
                bad = 1;
                break;
            }
            buf = p;
            cap = cap ? 2 * cap : 65536;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    if (ferror(f))
        bad = 1;
    fclose(f);
    if (bad) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

/*
 * Called once the broker has our subscription (and again after a reconnection): events
 * published from now on reach us, so this is the moment to put. Put and get once only.
 */
static int on_ready(void *arg, int session_present)
{
    struct example *ex = arg;
    const char *slash = strrchr(ex->path, '/');
    struct dyno_put_opts opts = {.name = slash ? slash + 1 : ex->path};
    struct dyno_put_result res;
    void *data = NULL;
    size_t len = 0;

    (void)session_present;
    if (ex->key[0])
        return 0;
    int rc = dyno_client_put_file(ex->c, ex->catalog, ex->path, &opts, &res);
    if (rc < 0) {
        fprintf(stderr, "put %s: %s (%s)\n", ex->path, dyno_client_last_error(ex->c), dyno_strerror(rc));
        ex->failed = 1;
        return rc;
    }
    memcpy(ex->key, res.key, sizeof(ex->key));
    printf("key %s\n", ex->key);
    fflush(stdout);

    rc = dyno_client_get(ex->c, ex->key, ex->file_len + 1, &data, &len);
    if (rc < 0) {
        fprintf(stderr, "get %s: %s (%s)\n", ex->key, dyno_client_last_error(ex->c), dyno_strerror(rc));
        ex->failed = 1;
        return rc;
    }
    int same = len == ex->file_len && (len == 0 || memcmp(data, ex->file, len) == 0);
    free(data);
    if (!same) {
        fprintf(stderr, "get %s: %zu bytes that differ from the %zu bytes of %s\n", ex->key, len,
                ex->file_len, ex->path);
        ex->failed = 1;
        return DYNO_ECORRUPT;
    }
    printf("get %zu bytes identical\n", len);
    fflush(stdout);
    return 0;
}

/*
 * Every event of the catalog: print ours and stop; others (earlier puts) are skipped. Events
 * are delivered at least once, so ours may come again before the stop takes effect: once is
 * enough.
 */
static int on_event(void *arg, const struct dyno_event *ev)
{
    struct example *ex = arg;

    if (ex->got_event || !ex->key[0] || !ev->key || strcmp(ev->key, ex->key) != 0 ||
        strcmp(ev->type, "object.created") != 0)
        return 0;
    printf("event %s\n", ev->json);
    fflush(stdout);
    ex->got_event = 1;
    stop_flag = 1;
    return 0;
}

int main(int argc, char **argv)
{
    struct example ex = {0};
    struct sigaction sa = {0};
    int rc, status = 1;

    if (argc < 5 || argc > 6) {
        fprintf(stderr,
                "usage: DYNOSTORE_TOKEN=... %s GATEWAY_URL BROKER_URL CATALOG FILE [TIMEOUT_SECONDS]\n",
                argv[0]);
        return 2;
    }
    const char *token = getenv("DYNOSTORE_TOKEN");
    long timeout = argc == 6 ? strtol(argv[5], NULL, 10) : 60;
    if (!token || !*token || timeout <= 0) {
        fprintf(stderr, "%s: needs DYNOSTORE_TOKEN and a positive timeout\n", argv[0]);
        return 2;
    }
    ex.catalog = argv[3];
    ex.path = argv[4];
    if (read_file(ex.path, &ex.file, &ex.file_len) < 0) {
        perror(ex.path);
        return 1;
    }

    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (dyno_client_global_init() < 0) {
        fprintf(stderr, "cannot initialise libcurl\n");
        goto out;
    }
    rc = dyno_client_new(argv[1], token, &ex.c);
    if (rc < 0) {
        fprintf(stderr, "gateway %s: %s\n", argv[1], dyno_strerror(rc));
        goto out_global;
    }

    struct dyno_subscribe_opts so = {.broker = argv[2], .on_ready = on_ready, .stop = &stop_flag};
    alarm((unsigned)timeout);
    rc = dyno_client_subscribe(ex.c, ex.catalog, &so, on_event, &ex);
    alarm(0);
    if (rc < 0 && !ex.failed)
        fprintf(stderr, "subscribe %s: %s (%s)\n", ex.catalog, dyno_client_last_error(ex.c),
                dyno_strerror(rc));
    else if (timed_out && !ex.got_event)
        fprintf(stderr, "no object.created event for %s within %ld s\n", ex.key[0] ? ex.key : "the put",
                timeout);
    if (rc == 0 && !ex.failed && ex.got_event)
        status = 0;
    dyno_client_free(ex.c);
out_global:
    dyno_client_global_cleanup();
out:
    free(ex.file);
    return status;
}
