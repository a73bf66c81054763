/* The pubsub feeds (ps_feed.h). */
#include "ps_feed.h"

#include <dynostore/error.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "json.h"
#include "log.h"
#include "names.h"
#include "ps_rpc.h"
#include "ps_store.h"

#define PS_TOPIC_EVENTS "dyno/v1/events/"

int64_t ps_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

cJSON *ps_event_new(const char *type, const char *catalog, int64_t now_ms)
{
    cJSON *e = cJSON_CreateObject();
    if (!e || !cJSON_AddStringToObject(e, "type", type) || !cJSON_AddStringToObject(e, "catalog", catalog) ||
        !dyno_json_add_i64(e, "time", now_ms)) {
        cJSON_Delete(e);
        return NULL;
    }
    return e;
}

static int publish_to(struct ps_ctx *ctx, const char *prefix, const char *catalog, const void *payload,
                      size_t len, bool retain, const char *const *props)
{
    char topic[sizeof(PS_TOPIC_EVENTS) + DYNO_CATALOG_MAX + 1];
    if (!dyno_valid_catalog(catalog))
        return DYNO_EINVAL;
    if (!ctx->mq)
        return DYNO_EUNAVAIL; /* unit tests run without a broker */
    snprintf(topic, sizeof(topic), "%s%s", prefix, catalog);
    return dyno_mq_publish(ctx->mq, topic, payload, len, 1, retain, props);
}

int ps_feed_policy(struct ps_ctx *ctx, const cJSON *record)
{
    const char *catalog = dyno_json_str(record, "catalog");
    size_t len = 0;
    char *text = dyno_json_print(record, &len);
    if (!text)
        return DYNO_ENOMEM;
    int rc = len > DYNO_ACL_POLICY_MAX ? DYNO_ETOOBIG
                                       : publish_to(ctx, DYNO_ACL_TOPIC_ACL, catalog, text, len, true, NULL);
    free(text);
    if (rc != 0)
        dyno_warn("policy not published", "catalog=%s error=%s", catalog ? catalog : "?", dyno_err_code(rc));
    return rc;
}

int ps_feed_policy_remove(struct ps_ctx *ctx, const char *catalog)
{
    int rc = publish_to(ctx, DYNO_ACL_TOPIC_ACL, catalog, NULL, 0, true, NULL);
    if (rc != 0)
        dyno_warn("policy removal not published", "catalog=%s error=%s", catalog, dyno_err_code(rc));
    return rc;
}

int ps_feed_event(struct ps_ctx *ctx, const cJSON *event)
{
    const char *type = dyno_json_str(event, "type");
    const char *catalog = dyno_json_str(event, "catalog");
    if (!type || !catalog)
        return DYNO_EINVAL;
    size_t len = 0;
    char *text = dyno_json_print(event, &len);
    if (!text)
        return DYNO_ENOMEM;
    /* The type also in a user property, so subscribers can filter without parsing. */
    const char *props[] = {"event", type, NULL};
    int rc = publish_to(ctx, PS_TOPIC_EVENTS, catalog, text, len, false, props);
    free(text);
    if (rc != 0)
        dyno_warn("event not published", "catalog=%s type=%s error=%s", catalog, type, dyno_err_code(rc));
    else
        dyno_debug("event published", "catalog=%s type=%s", catalog, type);
    return rc;
}

void ps_feed_republish(void *arg)
{
    struct ps_ctx *ctx = arg;
    char after[DYNO_CATALOG_MAX + 1] = "";
    char err[256];
    size_t policies = 0, removals = 0;
    int rc = 0;

    /* Removals first: a catalog deleted while the broker was away still has its old record
     * retained there. A path deleted then created again has no tombstone. */
    for (;;) {
        cJSON *page = NULL;
        pthread_mutex_lock(&ctx->feed_mu);
        rc = ps_store_tombstone_page(ctx->store, after, PS_PAGE_MAX, ps_now_ms() / 1000, &page, err,
                                     sizeof(err));
        const cJSON *it;
        cJSON_ArrayForEach(it, page)
        {
            if (rc == 0 && (rc = ps_feed_policy_remove(ctx, it->valuestring)) == 0)
                removals++;
            snprintf(after, sizeof(after), "%s", it->valuestring);
        }
        pthread_mutex_unlock(&ctx->feed_mu);
        int n = cJSON_GetArraySize(page);
        cJSON_Delete(page);
        if (rc != 0 || n < PS_PAGE_MAX)
            break;
    }
    after[0] = '\0';
    for (; rc == 0;) {
        cJSON *page = NULL;
        pthread_mutex_lock(&ctx->feed_mu);
        rc = ps_store_policy_page(ctx->store, after, PS_PAGE_MAX, &page, err, sizeof(err));
        const cJSON *it;
        cJSON_ArrayForEach(it, page)
        {
            /* A disconnect stops the run: the next connect starts another. */
            if (rc == 0 && (rc = ps_feed_policy(ctx, it)) == 0)
                policies++;
            snprintf(after, sizeof(after), "%s", dyno_json_str(it, "catalog"));
        }
        pthread_mutex_unlock(&ctx->feed_mu);
        int n = cJSON_GetArraySize(page);
        cJSON_Delete(page);
        if (n < PS_PAGE_MAX)
            break;
    }
    if (rc != 0)
        dyno_warn("policy feed republish stopped", "policies=%zu removals=%zu error=%s", policies, removals,
                  dyno_err_code(rc));
    else
        dyno_info("policy feed republished", "policies=%zu removals=%zu", policies, removals);
}
