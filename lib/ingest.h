/*
 * MQTT ingest messages (SPEC §3, §8, docs/pubsub.md): the pure parse and validation step of
 * the gateway's ingest, apart from any I/O so that a fuzzer can drive it (tests/fuzz).
 *
 * A message published to dyno/v1/ingest/<catalog> carries:
 *   name          user property "name" (the first one counts; default: the object key)
 *   publisher     the user properties "dyno-user", "dyno-org" ("" for none) and
 *                 "dyno-admin" ("true"|"false") that the broker plugin stamps from the claims
 *                 the client logged in with (names compared without letter case, as the
 *                 plugin removes a client's copies in any case); exactly one valid copy of
 *                 each, or the message came through no login we know of
 *   reply         an optional v5 Response Topic and Correlation Data
 *   size          the payload, at most the gateway's ingest_max bytes
 */
#ifndef DYNO_INGEST_H
#define DYNO_INGEST_H
#include <stdbool.h>
#include <stddef.h>

#include "acl.h"
#include "names.h"

#define DYNO_INGEST_TOPIC "dyno/v1/ingest/"
#define DYNO_INGEST_USER_PROP "dyno-user"
#define DYNO_INGEST_ORG_PROP "dyno-org"
#define DYNO_INGEST_ADMIN_PROP "dyno-admin"
#define DYNO_INGEST_NAME_PROP "name"

/* What the parse read. Strings are NUL-terminated and "" when absent or refused. */
struct dyno_ingest_msg {
    char catalog[DYNO_CATALOG_MAX + 1]; /* "" when the topic names no valid catalog */
    char user[DYNO_SEG_MAX + 1];        /* the stamped publisher; "" unless the stamps are valid */
    char org[DYNO_ACL_ORG_MAX + 1];
    bool admin;
    char name[DYNO_NAME_MAX + 1]; /* "" when none was given (the key names the object) */
    char *resp_topic;             /* owned; NULL: no answer wanted */
    void *corr;                   /* owned; Correlation Data, corr_len bytes (NULL when none) */
    size_t corr_len;
    size_t len; /* payload bytes */
};

/*
 * Reads topic, props (a const mosquitto_property *, may be NULL) and the payload length into
 * *out (zeroed first; release with dyno_ingest_msg_clear even on failure) and decides
 * whether the message may be stored, in this order:
 *   DYNO_EINVAL    the topic is not dyno/v1/ingest/<valid catalog> (catalog stays "")
 *   DYNO_EUNAUTH   not exactly one valid copy of each stamp (user stays "", so nobody is
 *                  answered: a reply would go to a topic nobody vouched for)
 *   DYNO_ETOOBIG   len > max
 *   DYNO_EINVAL    the name is not a valid object name (user is set: the publisher is told)
 * 0 when it may be stored, subject to the catalog's policy. msg (cap bytes) says why not.
 */
int dyno_ingest_parse(const char *topic, const void *props, size_t len, size_t max,
                      struct dyno_ingest_msg *out, char *msg, size_t cap);

/* Frees what dyno_ingest_parse allocated in m; m may be reused afterwards. */
void dyno_ingest_msg_clear(struct dyno_ingest_msg *m);

/* True when topic is dyno/v1/reply/<user> or below it, without wildcards: the only place an
 * ingest answer may go (the plugin lets user read only there). */
bool dyno_ingest_reply_topic_ok(const char *topic, const char *user);
#endif
