/*
 * The revocation feed (protocol.md §7): dyno/v1/auth/revoked, retained, QoS 1, the document of
 * lib/token.h {"revoked":[{"jti","exp"}...],"epochs":[{"sub","before"}...]} (au_revoked_list),
 * at most ctx->revoked_doc_max bytes: past that, the user with the most listed revocations
 * has them collapsed into an epoch, until it fits. Published after every revocation and,
 * through the agent's connect hook, on every (re)connect.
 *
 * Ordering: callers hold ctx->feed_mu around the change and au_feed_publish, so the last
 * retained list is always the committed one. Threads: RPC workers and the connect-hook
 * thread; never the MQTT loop thread.
 */
#ifndef DYNO_AU_FEED_H
#define DYNO_AU_FEED_H
#include <stdint.h>

struct au_ctx;

/* Reads the document at now and publishes it; ctx->feed_mu held. 0 or DYNO_E* (logged):
 * DYNO_EUNAVAIL when not connected (or ctx->mq is NULL), DYNO_ETOOBIG when even the epochs
 * alone exceed the limit. */
int au_feed_publish(struct au_ctx *ctx, int64_t now);
/* The connect hook (dyno_agent_on_connect; arg is the struct au_ctx). */
void au_feed_on_connect(void *arg);
#endif
