/* The revocation feed (au_feed.h). */
#include "au_feed.h"

#include <dynostore/error.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "acl.h"
#include "au_rpc.h"
#include "json.h"
#include "log.h"
#include "token.h"

/* The document at now as text (*text malloc'd, *n its revoked entries). 0 or DYNO_E* (logged). */
static int feed_build(struct au_ctx *ctx, int64_t now, char **text, size_t *len, int *n)
{
    cJSON *list = NULL;
    char err[200];
    int rc = au_revoked_list(ctx->store, now, &list, err, sizeof(err));
    if (rc != 0) {
        dyno_error("revocation list unavailable", "error=%s", dyno_err_code(rc));
        return rc;
    }
    *n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(list, "revoked"));
    *text = dyno_json_print(list, len);
    cJSON_Delete(list);
    return *text ? 0 : DYNO_ENOMEM;
}

int au_feed_publish(struct au_ctx *ctx, int64_t now)
{
    size_t max = ctx->revoked_doc_max > 0 && ctx->revoked_doc_max < DYNO_REVOKED_DOC_MAX
                     ? ctx->revoked_doc_max
                     : DYNO_REVOKED_DOC_MAX;
    char *text = NULL;
    size_t len = 0;
    int n = 0;
    int rc = feed_build(ctx, now, &text, &len, &n);
    /* Never stop publishing because the document grew (verifiers would keep an old list):
     * collapse the largest user's revocations into an epoch until it fits. Each round
     * removes at least one listed entry, so this ends. */
    while (rc == 0 && len > max) {
        char user[DYNO_SEG_MAX + 1], err[200];
        int64_t epoch = 0;
        free(text);
        text = NULL;
        rc = au_revoked_collapse_biggest(ctx->store, now, user, sizeof(user), &epoch, err, sizeof(err));
        if (rc != 0) {
            dyno_error("revocation document over its limit and nothing left to collapse", "bytes=%zu max=%zu",
                       len, max);
            rc = DYNO_ETOOBIG;
            break;
        }
        dyno_warn("revocations collapsed into an epoch to bound the document",
                  "user=%s before=%lld bytes=%zu", user, (long long)epoch, len);
        rc = feed_build(ctx, now, &text, &len, &n);
    }
    if (rc == 0)
        rc = ctx->mq ? dyno_mq_publish(ctx->mq, DYNO_ACL_TOPIC_REVOKED, text, len, 1, true, NULL)
                     : DYNO_EUNAVAIL;
    free(text);
    if (rc != 0)
        dyno_error("revocation list not published", "revoked=%d bytes=%zu error=%s", n, len,
                   dyno_err_code(rc));
    else
        dyno_info("revocation list published", "revoked=%d bytes=%zu", n, len);
    return rc;
}

void au_feed_on_connect(void *arg)
{
    struct au_ctx *ctx = arg;
    pthread_mutex_lock(&ctx->feed_mu);
    au_feed_publish(ctx, (int64_t)time(NULL));
    pthread_mutex_unlock(&ctx->feed_mu);
}
