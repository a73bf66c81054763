/*
 * Catalog access policy: who may read and write a catalog, and which MQTT topics a
 * principal may subscribe to, read from and publish to (SPEC §3, §7; protocol.md §7).
 *
 * Everything here is pure and in memory: no I/O, no clock, no locks. The policy records
 * come from the retained feed dyno/v1/acl/<catalog> that only services may publish:
 *
 *   {"catalog":"alice/x","owner":"alice","public":false,
 *    "shares":[{"principal":"bob","kind":"user","access":"read"},
 *              {"principal":"lab","kind":"org","access":"write"}]}
 *
 * Access rule (dyno_acl_decide):
 *   - a service (token role "service") may read and write every catalog: services act for
 *     users and check the user themselves;
 *   - an admin may read and write every catalog;
 *   - the owner may read and write;
 *   - everyone may read a public catalog;
 *   - a share names a user (exact username) or an org; an org share covers that org and
 *     every sub-org ("lab" covers "lab" and "lab/ct", never "labx");
 *   - a "write" share also grants read; a "read" share grants read only.
 * Sub-catalogs are catalogs of their own: a share of alice/x says nothing about alice/x/y.
 *
 * Topic rules (dyno_acl_table_check_topic), everything not listed is denied:
 *   services: every op on dyno/v1/{rpc,reply,agents,events,ingest,auth,acl}/...
 *   users:
 *     SUBSCRIBE dyno/v1/events/<catalog>            if they may read <catalog>;
 *     SUBSCRIBE dyno/v1/events/<prefix>/{+,#}...     if <prefix> names a catalog (owner plus
 *               at least one segment) they may read, or that has a sub-catalog they may read;
 *               when <prefix> names no catalog ("dyno/v1/events/#", ".../alice/#",
 *               ".../alice/+/x") the filter spans catalogs nobody can enumerate for the user,
 *               so the SUBSCRIBE is allowed and every delivered message is checked by READ;
 *     READ      dyno/v1/events/<catalog>            if they may read <catalog> (the catalog
 *               is the topic minus the prefix);
 *     WRITE     dyno/v1/ingest/<catalog>            if they may write <catalog>;
 *     SUBSCRIBE, READ dyno/v1/reply/<username>[/...] their own reply tree (Response Topics).
 *   A catalog missing from the table is denied to users.
 * Topics are validated level by level: every level that is not a wildcard must be a valid
 * segment (lib/names.h: [A-Za-z0-9._-]{1,64}, not "." or ".."), so empty levels, traversal,
 * control characters and non-ASCII bytes are denied; "+" and "#" only in SUBSCRIBE filters,
 * "#" only last; at most DYNO_ACL_LEVELS_MAX levels and DYNO_ACL_TOPIC_MAX bytes. A SUBSCRIBE
 * filter may start with "$share/<group>/" (group a valid segment); the rest is checked.
 *
 * Threads: a policy is immutable once parsed, so dyno_acl_decide() may run on many threads
 * at once over the same policy. A table is not locked: the broker plugin uses it from the
 * broker's single thread; a multi-threaded user (the gateway) must hold its own
 * read-write lock around table calls (shared for lookups and checks, exclusive for updates)
 * and must not keep a policy pointer from dyno_acl_table_get() past an update.
 */
#ifndef DYNO_ACL_H
#define DYNO_ACL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "names.h"

#define DYNO_ACL_SHARES_MAX 1024            /* shares per catalog */
#define DYNO_ACL_POLICY_MAX (256 * 1024)    /* bytes of one policy document */
#define DYNO_ACL_CATALOGS_MAX (1024 * 1024) /* catalogs in one table */
#define DYNO_ACL_TOPIC_MAX 1024             /* bytes of a topic or filter */
#define DYNO_ACL_LEVELS_MAX 16              /* levels of a topic or filter */
#define DYNO_ACL_ORG_MAX 259                /* an org path; the size of dyno_claims.org - 1 */
#define DYNO_ACL_CLIENT_ID_MAX 64           /* bytes of an MQTT client id or username */

#define DYNO_ACL_TOPIC_EVENTS "dyno/v1/events/"
#define DYNO_ACL_TOPIC_INGEST "dyno/v1/ingest/"
#define DYNO_ACL_TOPIC_REPLY "dyno/v1/reply/"
#define DYNO_ACL_TOPIC_ACL "dyno/v1/acl/"
#define DYNO_ACL_TOPIC_REVOKED "dyno/v1/auth/revoked"
/* Revoked S3 access keys, {"revoked":["<id>",...]}: not retained, QoS 1, from dyno-auth
 * (agents/auth/au_keys.h); gateways evict those ids from their key caches. */
#define DYNO_ACL_TOPIC_KEYS_REVOKED "dyno/v1/auth/keys/revoked"

enum dyno_acl_access { DYNO_ACL_READ = 1, DYNO_ACL_WRITE = 2 };
enum dyno_acl_kind { DYNO_ACL_KIND_USER = 1, DYNO_ACL_KIND_ORG = 2 };
enum dyno_acl_op { DYNO_ACL_OP_SUBSCRIBE = 1, DYNO_ACL_OP_READ = 2, DYNO_ACL_OP_WRITE = 3 };
enum dyno_acl_verdict { DYNO_ACL_DENY = 0, DYNO_ACL_ALLOW = 1 };

struct dyno_acl_share {
    char principal[DYNO_ACL_ORG_MAX + 1]; /* a username, or an org path "lab/ct" */
    enum dyno_acl_kind kind;
    enum dyno_acl_access access;
};

/* One catalog's policy. Immutable after dyno_acl_policy_parse(). */
struct dyno_acl_policy {
    char catalog[DYNO_CATALOG_MAX + 1];
    char owner[DYNO_SEG_MAX + 1];
    bool public;
    size_t nshares;
    struct dyno_acl_share *shares; /* nshares entries, owned by the policy */
};

/* Who asks. Strings are borrowed; org may be NULL or "" (no org). */
struct dyno_acl_principal {
    const char *sub;
    const char *org;
    bool admin;
    bool service; /* token role "service" */
};

/*
 * Parses a policy document json[0..len) (need not be NUL-terminated). Checks: at most
 * DYNO_ACL_POLICY_MAX bytes, a JSON object, "catalog" a valid catalog, "owner" equal to its
 * first segment, "public" a bool when present, "shares" an array of at most
 * DYNO_ACL_SHARES_MAX objects when present, each with "principal" (a valid segment for a
 * user, an org path of 1..DYNO_DEPTH_MAX segments for an org), "kind" "user"|"org" and
 * "access" "read"|"write". Unknown members are ignored.
 * Returns 0 and *out (the caller's: dyno_acl_policy_free), DYNO_ETOOBIG, DYNO_EINVAL or
 * DYNO_ENOMEM; *out is NULL on failure.
 */
int dyno_acl_policy_parse(const char *json, size_t len, struct dyno_acl_policy **out);
/* Frees p; NULL is a no-op. */
void dyno_acl_policy_free(struct dyno_acl_policy *p);

/* The access rule above. false for NULL arguments or an invalid sub. Thread-safe. */
bool dyno_acl_decide(const struct dyno_acl_policy *p, const struct dyno_acl_principal *who,
                     enum dyno_acl_access access);

/* True when the share principal org covers the org org ("lab" covers "lab", "lab/ct"). */
bool dyno_acl_org_covers(const char *share_org, const char *org);

/* ---- the table: catalog -> policy ------------------------------------------------------ */

struct dyno_acl_table;

/* 0 or DYNO_ENOMEM. *out is the caller's (dyno_acl_table_free). */
int dyno_acl_table_new(struct dyno_acl_table **out);
/* Frees t and every policy in it; NULL is a no-op. */
void dyno_acl_table_free(struct dyno_acl_table *t);
/* Number of catalogs. */
size_t dyno_acl_table_count(const struct dyno_acl_table *t);
/*
 * Sets the policy of catalog from the document payload[0..len), replacing an older one; an
 * empty payload (len 0) removes the catalog (0 even when it was not there). The document's
 * "catalog" must equal catalog. On failure the table is unchanged. Returns 0,
 * DYNO_EINVAL (bad catalog or document), DYNO_ETOOBIG (document or table over its limit)
 * or DYNO_ENOMEM.
 */
int dyno_acl_table_update(struct dyno_acl_table *t, const char *catalog, const void *payload, size_t len);
/* Removes catalog: 0, or DYNO_ENOTFOUND. */
int dyno_acl_table_remove(struct dyno_acl_table *t, const char *catalog);
/* The policy of catalog, borrowed from t (valid until the next update or remove), or NULL. */
const struct dyno_acl_policy *dyno_acl_table_get(const struct dyno_acl_table *t, const char *catalog);
/*
 * Applies one message of the feed: topic must be DYNO_ACL_TOPIC_ACL "<catalog>" (then as
 * dyno_acl_table_update()). DYNO_EINVAL for any other topic.
 */
int dyno_acl_table_apply(struct dyno_acl_table *t, const char *topic, const void *payload, size_t len);
/* The topic rules above. DENY for any NULL or invalid argument. */
enum dyno_acl_verdict dyno_acl_table_check_topic(const struct dyno_acl_table *t,
                                                 const struct dyno_acl_principal *who, const char *topic,
                                                 enum dyno_acl_op op);

/* ---- broker login names --------------------------------------------------------------------- */
/* (The revocation feed dyno/v1/auth/revoked is parsed by lib/token.h.) */

/* An MQTT client id or username the broker accepts: 1..DYNO_ACL_CLIENT_ID_MAX bytes of
 * valid UTF-8 without control characters, '+', '#', '/' or '\\'. NULL is invalid. */
bool dyno_acl_valid_client_id(const char *s);
/* A service's broker username "<kind>-<id>": kind [a-z]{1,}, id a valid segment, the whole
 * a valid segment. */
bool dyno_acl_valid_service_name(const char *s);

#endif
