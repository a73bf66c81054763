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

int au_feed_publish(struct au_ctx *ctx, int64_t now)
{
    cJSON *list = NULL;
    char err[200];
    int rc = au_revoked_list(ctx->store, now, &list, err, sizeof(err));
    if (rc != 0) {
        dyno_error("revocation list unavailable", "error=%s", dyno_err_code(rc));
        return rc;
    }
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(list, "revoked"));
    size_t len = 0;
    char *text = dyno_json_print(list, &len);
    cJSON_Delete(list);
    if (!text)
        return DYNO_ENOMEM;
    /* Verifiers refuse a larger document whole; say so loudly rather than publish it. */
    if (len > DYNO_ACL_REVOKED_MAX)
        rc = DYNO_ETOOBIG;
    else if (!ctx->mq)
        rc = DYNO_EUNAVAIL;
    else
        rc = dyno_mq_publish(ctx->mq, DYNO_ACL_TOPIC_REVOKED, text, len, 1, true, NULL);
    free(text);
    if (rc != 0)
        dyno_error("revocation list not published", "revoked=%d bytes=%zu error=%s", n, len,
                   dyno_err_code(rc));
    else
        dyno_info("revocation list published", "revoked=%d", n);
    return rc;
}

void au_feed_on_connect(void *arg)
{
    struct au_ctx *ctx = arg;
    pthread_mutex_lock(&ctx->feed_mu);
    au_feed_publish(ctx, (int64_t)time(NULL));
    pthread_mutex_unlock(&ctx->feed_mu);
}
