/*
 * Fragment inspection, full verification and the scrubber thread (scrub.h).
 *
 * The scrubber walks the store in pages of ids in id order (each page is one scan of the
 * store, so memory stays bounded whatever the fragment count), reads every fragment fully
 * and paces itself so that the bytes it reads in a pass never run ahead of scrub_rate
 * bytes per second. A pass starts scrub_interval seconds after the previous one started
 * (the first one scrub_interval seconds after start-up), or at once after the previous
 * one when it took longer than that.
 */
#include "scrub.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dynostore/error.h"
#include "json.h"
#include "log.h"
#include "mq.h"
#include "names.h"

#define SCRUB_PAGE 4096 /* ids per scan of the store */

/* ---- inspection and verification: lib/frag.c's readers over the store ---------------- */

/* A fragment of the store as a lib/frag.h source. */
struct scrub_src {
    struct container *c;
    struct store_read *r;
};

static int scrub_read_at(void *arg, uint64_t off, uint8_t *buf, size_t len, size_t *got)
{
    struct scrub_src *ss = arg;
    return store_read_at(ss->c->store, ss->r, off, buf, len, got);
}

/* Opens fragment id of the store as src, and says which fragment the id names. */
static int scrub_open(struct container *c, const char *id, struct scrub_src *ss, struct dyno_frag_src *src,
                      char key[DYNO_KEY_LEN + 1], unsigned *index)
{
    *ss = (struct scrub_src){.c = c};
    *src = (struct dyno_frag_src){.read_at = scrub_read_at, .arg = ss};
    int rc = store_open_read(c->store, id, &ss->r, &src->size);
    if (rc == 0)
        (void)store_valid_id(id, key, index); /* the store opens valid ids only */
    return rc;
}

int container_frag_inspect(struct container *c, const char *id, struct container_frag_info *info)
{
    struct scrub_src ss;
    struct dyno_frag_src src;
    struct dyno_frag_ends ends;
    char key[DYNO_KEY_LEN + 1];
    unsigned index = 0;
    memset(info, 0, sizeof(*info));
    int rc = scrub_open(c, id, &ss, &src, key, &index);
    if (rc)
        return rc;
    info->size = src.size;
    rc = dyno_frag_read_ends(&src, key, index, &ends);
    info->hdr_ok = ends.hdr_ok;
    info->trailer_ok = ends.trailer_ok;
    info->hdr = ends.hdr;
    info->trailer = ends.trailer;
    store_read_close(c->store, ss.r);
    return rc;
}

int container_frag_verify(struct container *c, const char *id, int (*pace)(void *arg, uint64_t n), void *arg,
                          uint64_t *bytes)
{
    struct scrub_src ss;
    struct dyno_frag_src src;
    char key[DYNO_KEY_LEN + 1];
    unsigned index = 0;
    *bytes = 0;
    int rc = scrub_open(c, id, &ss, &src, key, &index);
    if (rc)
        return rc;
    rc = dyno_frag_verify(&src, key, index, CONTAINER_IO_CHUNK, pace, arg, bytes);
    store_read_close(c->store, ss.r);
    return rc;
}

/* ---- the scrubber thread ----------------------------------------------------------------- */

/* The smallest up-to-cap ids above after, sorted (a bounded insertion sort over one scan). */
struct scrub_page {
    const char *after;
    char (*ids)[STORE_ID_MAX + 1];
    size_t n, cap;
    bool more; /* ids past the page were seen */
};

static int scrub_page_add(void *arg, const char *id, uint64_t size)
{
    struct scrub_page *pg = arg;
    (void)size;
    if (pg->after && strcmp(id, pg->after) <= 0)
        return 0;
    if (pg->n == pg->cap) {
        pg->more = true;
        if (strcmp(id, pg->ids[pg->n - 1]) >= 0)
            return 0;
        pg->n--; /* the largest leaves the page */
    }
    bool found;
    size_t lo = dyno_name_search(pg->ids, pg->n, sizeof(pg->ids[0]), 0, id, &found);
    memmove(&pg->ids[lo + 1], &pg->ids[lo], (pg->n - lo) * sizeof(pg->ids[0]));
    snprintf(pg->ids[lo], sizeof(pg->ids[lo]), "%s", id);
    pg->n++;
    return 0;
}

int container_scan_page(struct container *c, const char *after, size_t cap, char (*ids)[STORE_ID_MAX + 1],
                        size_t *n, bool *more)
{
    struct scrub_page pg = {.after = after && *after ? after : NULL, .ids = ids, .cap = cap};
    int rc = store_scan(c->store, scrub_page_add, &pg);
    *n = pg.n;
    *more = pg.more;
    return rc;
}

/* Sleeps until deadline (CLOCK_MONOTONIC) or stop; returns false once stopping. */
static bool scrub_sleep_until(struct container *c, const struct timespec *deadline)
{
    pthread_mutex_lock(&c->scrub_mu);
    while (!c->scrub_stop) {
        if (pthread_cond_timedwait(&c->scrub_cv, &c->scrub_mu, deadline) == ETIMEDOUT)
            break;
    }
    bool go = !c->scrub_stop;
    pthread_mutex_unlock(&c->scrub_mu);
    return go;
}

static double scrub_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timespec scrub_at(double t)
{
    struct timespec ts = {.tv_sec = (time_t)t, .tv_nsec = (long)((t - (double)(time_t)t) * 1e9)};
    return ts;
}

struct scrub_pass {
    struct container *c;
    double start;
    uint64_t bytes;
};

/* Paces a pass: bytes read so far may not run ahead of scrub_rate * elapsed. */
static int scrub_pace(void *arg, uint64_t n)
{
    struct scrub_pass *ps = arg;
    ps->bytes += n;
    dyno_metric_add(&ps->c->metrics[CM_SCRUBBED_BYTES], (int64_t)n);
    double due = ps->start + (double)ps->bytes / (double)ps->c->cfg.scrub_rate;
    if (due > scrub_now()) {
        struct timespec ts = scrub_at(due);
        if (!scrub_sleep_until(ps->c, &ts))
            return DYNO_ETIMEDOUT; /* stopping */
    }
    return 0;
}

void container_report_corrupt(struct container *c, const char *id)
{
    char key[DYNO_KEY_LEN + 1];
    unsigned index = 0;
    if (!store_valid_id(id, key, &index))
        return;
    cJSON *p = cJSON_CreateObject();
    if (!p)
        return;
    cJSON_AddStringToObject(p, "key", key);
    cJSON_AddNumberToObject(p, "index", index);
    cJSON_AddStringToObject(p, "problem", "crc");
    cJSON_AddStringToObject(p, "container", c->cfg.c.id);
    int rc = dyno_mq_notify(c->mq, "metadata", "object.report", p);
    if (rc)
        dyno_warn("cannot report a corrupt fragment", "id=%s error=%s", id, dyno_err_code(rc));
    cJSON_Delete(p);
}

static void scrub_report(struct container *c, const char *id)
{
    dyno_error("fragment corrupt", "id=%s source=scrub", id);
    dyno_metric_add(&c->metrics[CM_SCRUB_ERRORS], 1);
    container_report_corrupt(c, id);
}

/* One full pass; false once stopping. */
static bool scrub_pass(struct container *c)
{
    char(*ids)[STORE_ID_MAX + 1] = malloc(SCRUB_PAGE * sizeof(*ids));
    char after[STORE_ID_MAX + 1] = "";
    struct scrub_pass ps = {.c = c, .start = scrub_now()};
    uint64_t frags = 0, bad = 0;
    bool go = true;
    if (!ids) {
        dyno_warn("scrub pass skipped", "error=%s", dyno_err_code(DYNO_ENOMEM));
        return true;
    }
    dyno_info("scrub pass started", NULL);
    for (;;) {
        size_t n = 0;
        bool more = false;
        int rc = container_scan_page(c, after, SCRUB_PAGE, ids, &n, &more);
        if (rc) {
            dyno_warn("scrub scan failed", "error=%s", dyno_err_code(rc));
            break;
        }
        for (size_t i = 0; go && i < n; i++) {
            uint64_t bytes = 0;
            rc = container_frag_verify(c, ids[i], scrub_pace, &ps, &bytes);
            if (rc == DYNO_ETIMEDOUT) {
                go = false;
                break;
            }
            if (rc == DYNO_ENOTFOUND)
                continue; /* deleted since the scan */
            frags++;
            if (rc == DYNO_ECORRUPT) {
                bad++;
                scrub_report(c, ids[i]);
            } else if (rc) {
                dyno_warn("scrub read failed", "id=%s error=%s", ids[i], dyno_err_code(rc));
            }
        }
        if (!go || !more || n == 0)
            break;
        snprintf(after, sizeof(after), "%s", ids[n - 1]);
    }
    free(ids);
    if (go)
        dyno_info("scrub pass done", "fragments=%llu corrupt=%llu bytes=%llu seconds=%.1f",
                  (unsigned long long)frags, (unsigned long long)bad, (unsigned long long)ps.bytes,
                  scrub_now() - ps.start);
    return go;
}

static void *scrub_main(void *arg)
{
    struct container *c = arg;
    double next = scrub_now() + (double)c->cfg.scrub_interval;
    for (;;) {
        struct timespec ts = scrub_at(next);
        if (!scrub_sleep_until(c, &ts))
            break;
        double started = scrub_now();
        if (!scrub_pass(c))
            break;
        next = started + (double)c->cfg.scrub_interval;
    }
    return NULL;
}

int container_scrub_start(struct container *c)
{
    if (c->cfg.scrub_interval <= 0 || c->cfg.scrub_rate <= 0)
        return 0;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&c->scrub_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        return DYNO_EINTERNAL;
    pthread_mutex_init(&c->scrub_mu, NULL);
    c->scrub_stop = false;
    if (pthread_create(&c->scrub_thread, NULL, scrub_main, c) != 0) {
        pthread_cond_destroy(&c->scrub_cv);
        pthread_mutex_destroy(&c->scrub_mu);
        return DYNO_EINTERNAL;
    }
    c->scrub_started = true;
    return 0;
}

void container_scrub_stop(struct container *c)
{
    if (!c->scrub_started)
        return;
    pthread_mutex_lock(&c->scrub_mu);
    c->scrub_stop = true;
    pthread_cond_broadcast(&c->scrub_cv);
    pthread_mutex_unlock(&c->scrub_mu);
    pthread_join(c->scrub_thread, NULL);
    pthread_cond_destroy(&c->scrub_cv);
    pthread_mutex_destroy(&c->scrub_mu);
    c->scrub_started = false;
}
