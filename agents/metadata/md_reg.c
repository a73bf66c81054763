/* Container registry (md_reg.h). */
#include "md_reg.h"

#include "md_repair.h"

#include <dynostore/error.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "clock.h"
#include "json.h"
#include "log.h"
#include "names.h"

#define STATUS_PREFIX "dyno/v1/agents/container/"
#define STATUS_SUFFIX "/status"

int md_reg_init(struct md_reg *r)
{
    memset(r, 0, sizeof(*r));
    if (pthread_mutex_init(&r->mu, NULL) != 0)
        return DYNO_EINTERNAL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        pthread_mutex_destroy(&r->mu);
        return DYNO_EINTERNAL;
    }
    return 0;
}

void md_reg_fini(struct md_reg *r)
{
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r->v);
    r->v = NULL;
    r->n = r->cap = 0;
}

/* The entry for id, inserted (zeroed, in order) when absent; NULL when full. Locked. */
static struct md_node *lookup(struct md_reg *r, const char *id, bool create)
{
    bool found;
    size_t lo = dyno_name_search(r->v, r->n, sizeof(r->v[0]), offsetof(struct md_node, id), id, &found);
    if (found)
        return &r->v[lo];
    if (!create || r->n >= MD_REG_MAX)
        return NULL;
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 16;
        struct md_node *nv = realloc(r->v, ncap * sizeof(*nv));
        if (!nv)
            return NULL;
        r->v = nv;
        r->cap = ncap;
    }
    memmove(&r->v[lo + 1], &r->v[lo], (r->n - lo) * sizeof(*r->v));
    r->n++;
    memset(&r->v[lo], 0, sizeof(r->v[lo]));
    snprintf(r->v[lo].id, sizeof(r->v[lo].id), "%s", id);
    r->v[lo].reported_free = -1;
    return &r->v[lo];
}

int md_reg_load(struct md_reg *r, const struct md_node *v, size_t n)
{
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < n; i++) {
        struct md_node *nd = lookup(r, v[i].id, true);
        if (!nd)
            break;
        *nd = v[i];
        nd->online = false;
        nd->dirty = false;
        /* Offline since we last heard of it; the planner counts from no earlier than its
         * own connection to the broker (md_repair_tick). */
        nd->offline_since = v[i].last_seen;
    }
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static bool valid_url(const char *u)
{
    if (!u)
        return false;
    size_t len = strnlen(u, MD_URL_MAX + 1);
    if (len > MD_URL_MAX)
        return false;
    if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
            return false;
    }
    return true;
}

void md_reg_on_status(void *arg, const struct dyno_mq_msg *msg)
{
    struct md_reg *r = arg;
    char id[DYNO_SEG_MAX + 1];
    char q[700];
    size_t tlen = strlen(msg->topic);
    size_t plen = sizeof(STATUS_PREFIX) - 1, slen = sizeof(STATUS_SUFFIX) - 1;
    if (tlen <= plen + slen || strncmp(msg->topic, STATUS_PREFIX, plen) != 0 ||
        strcmp(msg->topic + tlen - slen, STATUS_SUFFIX) != 0 || tlen - plen - slen > DYNO_SEG_MAX) {
        dyno_warn("ignored status", "topic=%s", dyno_log_q(q, sizeof(q), msg->topic));
        return;
    }
    memcpy(id, msg->topic + plen, tlen - plen - slen);
    id[tlen - plen - slen] = '\0';
    if (!dyno_valid_segment(id)) {
        dyno_warn("ignored status", "topic=%s", dyno_log_q(q, sizeof(q), msg->topic));
        return;
    }
    /* An empty retained message clears the status: the container is gone. */
    cJSON *j = NULL;
    bool online = false;
    const char *url = NULL, *site = NULL, *backend = NULL;
    int64_t capacity = 0, used = 0, frags = 0, free_bytes = -1, started_at = 0;
    if (msg->len > 0) {
        int rc = dyno_json_parse(msg->payload, msg->len, MD_STATUS_MAX, &j);
        if (rc != 0 || !cJSON_IsObject(j)) {
            dyno_warn("bad container status", "id=%s error=%s", id, dyno_err_code(rc ? rc : DYNO_EINVAL));
            cJSON_Delete(j);
            return;
        }
        const char *pid = dyno_json_str(j, "id");
        const char *state = dyno_json_str(j, "state");
        if ((pid && strcmp(pid, id) != 0) || !state) {
            dyno_warn("bad container status", "id=%s error=%s", id,
                      dyno_log_q(q, sizeof(q), pid ? "id differs from the topic" : "no state"));
            cJSON_Delete(j);
            return;
        }
        online = strcmp(state, "online") == 0;
        if (online) {
            url = dyno_json_str(j, "url");
            site = dyno_json_str(j, "site");
            backend = dyno_json_str(j, "backend");
            if (backend && !dyno_valid_segment(backend))
                backend = NULL; /* shown only; a bad one is not worth refusing the container */
            if (!valid_url(url) || (site && *site && !dyno_valid_segment(site)) ||
                dyno_json_i64(j, "capacity", &capacity) != 0 || capacity < 0) {
                dyno_warn("bad container status", "id=%s error=%s", id,
                          dyno_log_q(q, sizeof(q), "needs url, capacity >= 0 and a valid site"));
                cJSON_Delete(j);
                return;
            }
            if (dyno_json_i64(j, "used", &used) != 0 || used < 0)
                used = 0;
            if (dyno_json_i64(j, "fragments", &frags) != 0 || frags < 0)
                frags = 0;
            if (dyno_json_i64(j, "free", &free_bytes) != 0 || free_bytes < 0)
                free_bytes = -1;
            if (dyno_json_i64(j, "started_at", &started_at) != 0)
                started_at = 0;
        }
    }
    pthread_mutex_lock(&r->mu);
    struct md_node *nd = lookup(r, id, online);
    if (nd) {
        bool was = nd->online;
        nd->online = online;
        if (!online && (was || nd->offline_since == 0))
            nd->offline_since = (int64_t)time(NULL);
        if (online) {
            nd->offline_since = 0;
            snprintf(nd->url, sizeof(nd->url), "%s", url);
            snprintf(nd->site, sizeof(nd->site), "%s", site ? site : "");
            snprintf(nd->backend, sizeof(nd->backend), "%.15s", backend ? backend : "");
            /* A memory container that started again (a new process) holds nothing of what
             * it held: the planner marks those fragments missing so repair refills it. */
            if (strcmp(nd->backend, "memory") == 0 && started_at && nd->started_at &&
                started_at != nd->started_at) {
                nd->wiped++;
                dyno_warn("memory container restarted: its fragments are gone", "id=%s", id);
            }
            if (started_at)
                nd->started_at = started_at;
            nd->capacity = capacity;
            nd->reported_used = used;
            nd->reported_free = free_bytes;
            nd->reported_fragments = frags;
            nd->last_seen = (int64_t)time(NULL);
        }
        nd->dirty = true;
        r->dirty = true;
        pthread_cond_signal(&r->cv);
        if (was != online)
            dyno_info(online ? "container online" : "container offline", "id=%s", id);
    } else if (online) {
        dyno_warn("container registry full", "id=%s", id);
    }
    pthread_mutex_unlock(&r->mu);
    cJSON_Delete(j);
}

int md_reg_snapshot(struct md_reg *r, struct md_nodes *out)
{
    out->v = NULL;
    out->n = 0;
    pthread_mutex_lock(&r->mu);
    if (r->n) {
        out->v = malloc(r->n * sizeof(*out->v));
        if (!out->v) {
            pthread_mutex_unlock(&r->mu);
            return DYNO_ENOMEM;
        }
        memcpy(out->v, r->v, r->n * sizeof(*out->v));
        out->n = r->n;
    }
    pthread_mutex_unlock(&r->mu);
    /* A container that stopped publishing without a Will (the broker has not noticed yet)
     * is offline once its status is MD_STATUS_STALE seconds old. */
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < out->n; i++) {
        struct md_node *nd = &out->v[i];
        if (nd->online && now - nd->last_seen > MD_STATUS_STALE) {
            nd->online = false;
            nd->offline_since = nd->last_seen + MD_STATUS_STALE;
        }
    }
    return 0;
}

void md_reg_wiped_done(struct md_reg *r, const char *id, uint64_t seen)
{
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i].id, id) == 0 && r->v[i].wiped >= seen)
            r->v[i].wiped -= seen; /* a restart seen after the snapshot stays */
    pthread_mutex_unlock(&r->mu);
}

bool md_reg_wait_dirty(struct md_reg *r, int timeout_ms, struct md_nodes *out)
{
    out->v = NULL;
    out->n = 0;
    struct timespec deadline;
    dyno_deadline_in(&deadline, CLOCK_MONOTONIC, timeout_ms);
    pthread_mutex_lock(&r->mu);
    while (!r->dirty && !r->stop) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &deadline) != 0)
            break;
    }
    bool running = !r->stop;
    if (r->dirty) {
        size_t cnt = 0;
        for (size_t i = 0; i < r->n; i++)
            cnt += r->v[i].dirty;
        out->v = malloc((cnt ? cnt : 1) * sizeof(*out->v));
        if (out->v) {
            for (size_t i = 0; i < r->n; i++) {
                if (r->v[i].dirty) {
                    out->v[out->n++] = r->v[i];
                    r->v[i].dirty = false;
                }
            }
            r->dirty = false;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return running;
}

void md_reg_stop(struct md_reg *r)
{
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}
