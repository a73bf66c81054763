/*
 * What pubsub publishes: the retained policy feed dyno/v1/acl/<catalog> (protocol.md §7)
 * and the catalog events on dyno/v1/events/<catalog> (protocol.md §3, schemas/event-*).
 *
 * Ordering: a change and its policy publish happen under ctx->feed_mu (the handler takes it
 * around the store call and the publish), and so does every page of the connect-time
 * republish, so the last retained record of a catalog is always the committed state.
 *
 * Threads: RPC workers and the agent's connect-hook thread; never the MQTT loop thread.
 */
#ifndef DYNO_PS_FEED_H
#define DYNO_PS_FEED_H
#include <cjson/cJSON.h>
#include <stdint.h>

struct ps_ctx;

#define PS_EVENT_CATALOG_SHARED "catalog.shared"

/* Publishes a policy record (borrowed) retained, QoS 1, on dyno/v1/acl/<record.catalog>.
 * 0 or DYNO_E* (logged; the next connect republishes). */
int ps_feed_policy(struct ps_ctx *ctx, const cJSON *record);
/* Publishes the empty retained payload that removes catalog from the feed. */
int ps_feed_policy_remove(struct ps_ctx *ctx, const char *catalog);
/* Publishes event (borrowed; "type" and "catalog" set) on dyno/v1/events/<catalog>, QoS 1,
 * not retained, with the user property event=<type>. 0 or DYNO_E* (logged). */
int ps_feed_event(struct ps_ctx *ctx, const cJSON *event);
/* A new event {type, catalog, time} with time = now_ms (unix ms); NULL on ENOMEM. */
cJSON *ps_event_new(const char *type, const char *catalog, int64_t now_ms);
/* Unix time in milliseconds. */
int64_t ps_now_ms(void);
/* The connect hook (dyno_agent_on_connect; arg is the struct ps_ctx): publishes the removal
 * of recently deleted catalogs, then the policy record of every catalog, page by page. */
void ps_feed_republish(void *arg);
#endif
