/*
 * The pubsub store: catalogs, shares and subscriptions in SQLite (WAL, synchronous=FULL).
 * One connection behind a mutex: catalog calls are rare next to object traffic. Every change
 * is one transaction: on any error nothing changes.
 *
 * Inputs are validated by the caller (ps_rpc.c): paths are valid catalogs, principals valid
 * users or org paths, kinds "user"|"org", accesses "read"|"write". Results are new cJSON
 * values owned by the caller (cJSON_Delete); on error every out-parameter is NULL. Errors are
 * DYNO_E* with a message in err. All functions are thread-safe.
 *
 * Catalogs nest with mkdir -p semantics: "alice/a/b" may exist without "alice/a". A
 * sub-catalog is a catalog of its own: shares and subscriptions never inherit.
 *
 * The policy record (protocol.md §7) of a catalog is
 *   {"catalog","owner","public","shares":[{"principal","kind","access"}...]}
 * and the functions that change it hand it back, read in the same transaction, so the
 * caller can publish exactly the state it committed.
 */
#ifndef DYNO_PS_STORE_H
#define DYNO_PS_STORE_H
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PS_LIST_MAX 10000            /* catalogs in one catalog.list answer */
#define PS_SUBS_MAX 10000            /* subscriptions in one subscription.list answer */
#define PS_DELETE_MAX 10000          /* catalogs one catalog.delete may remove */
#define PS_PAGE_MAX 1000             /* policy records in one ps_store_policy_page */
#define PS_TOMBSTONE_TTL (7 * 86400) /* seconds a deleted catalog's removal is republished */

struct ps_store;

/* Who asks, as the gateway established it from a verified token. Borrowed strings; org is
 * "" when the user has none. */
struct ps_who {
    const char *sub;
    const char *org;
    bool admin;
};

/* 0, or DYNO_EIO (logged). ":memory:" works (tests). */
int ps_store_open(const char *path, struct ps_store **out);
/* NULL is a no-op. */
void ps_store_close(struct ps_store *s);

/* Creates the catalog unless it exists (and drops its tombstone); either way *result is the stored row
 * {catalog, owner, public, k, m, created_at} and *policy its policy record. */
int ps_store_create(struct ps_store *s, const char *path, const char *owner, bool pub, int k, int m,
                    bool site_relaxed, int64_t now, cJSON **result, cJSON **policy, char *err, size_t errlen);
/* The row plus shares:[{principal, kind, access}], or DYNO_ENOTFOUND. */
int ps_store_get(struct ps_store *s, const char *path, cJSON **result, char *err, size_t errlen);
/*
 * {catalogs:[{catalog, owner, public, k, m, created_at, relation, access}]} ordered by path:
 * the catalogs who owns (relation "owner"), is shared with directly or through its org or an
 * ancestor org ("shared"), subscribes to and may still read ("subscribed"), and, when
 * with_public, every public catalog ("public"); the strongest relation wins in that order.
 * access is what who may do: "write" or "read". At most PS_LIST_MAX entries; "truncated":
 * true when there were more.
 */
int ps_store_list(struct ps_store *s, const struct ps_who *who, bool with_public, cJSON **result, char *err,
                  size_t errlen);
/*
 * Deletes the catalog and, when recursive, every sub-catalog, with their shares and
 * subscriptions, and leaves a tombstone (deleted at now) for each so the feed's removal is
 * republished on connects for PS_TOMBSTONE_TTL. *deleted is the array of removed paths, ordered.
 * DYNO_ENOTFOUND when neither the catalog nor a sub-catalog exists, DYNO_ECONFLICT when there are
 * sub-catalogs and not recursive, DYNO_ETOOBIG over PS_DELETE_MAX. dry_run: checks and answers the same,
 * changes nothing. Authorization is the caller's.
 */
int ps_store_delete(struct ps_store *s, const char *path, bool recursive, bool dry_run, int64_t now,
                    cJSON **deleted, char *err, size_t errlen);
/*
 * Shares the catalog with principal (kind "user"|"org", access "read"|"write"), replacing a
 * share of the same principal and kind. DYNO_ENOTFOUND (no catalog), DYNO_ETOOBIG (more
 * than DYNO_ACL_SHARES_MAX shares, or a policy record over DYNO_ACL_POLICY_MAX).
 */
int ps_store_share_add(struct ps_store *s, const char *path, const char *principal, const char *kind,
                       const char *access, cJSON **policy, char *err, size_t errlen);
/* Removes the shares of principal (of kind, or of both kinds when kind is NULL); *removed is
 * [{principal, kind}]. DYNO_ENOTFOUND when the catalog or such a share does not exist. */
int ps_store_share_remove(struct ps_store *s, const char *path, const char *principal, const char *kind,
                          cJSON **removed, cJSON **policy, char *err, size_t errlen);
/* *ok = whether who may read the catalog (the rule of protocol.md §7). DYNO_ENOTFOUND. */
int ps_store_may_read(struct ps_store *s, const char *path, const struct ps_who *who, bool *ok, char *err,
                      size_t errlen);
/* Subscribes who->sub (idempotent). DYNO_ENOTFOUND, DYNO_EFORBIDDEN when who may not read. */
int ps_store_sub_add(struct ps_store *s, const char *path, const struct ps_who *who, int64_t now, char *err,
                     size_t errlen);
/* Unsubscribes user (idempotent); *removed says whether a subscription existed. */
int ps_store_sub_remove(struct ps_store *s, const char *path, const char *user, bool *removed, char *err,
                        size_t errlen);
/* {subscriptions:[{catalog, created_at}]} of user, ordered by path, at most PS_SUBS_MAX. */
int ps_store_sub_list(struct ps_store *s, const char *user, cJSON **result, char *err, size_t errlen);
/* Up to limit (1..PS_PAGE_MAX) policy records of catalogs after the path `after` ("" from
 * the start), ordered by path, as a cJSON array; an empty array at the end. */
int ps_store_policy_page(struct ps_store *s, const char *after, int limit, cJSON **records, char *err,
                         size_t errlen);
/* Drops tombstones older than PS_TOMBSTONE_TTL before now, then returns up to limit
 * (1..PS_PAGE_MAX) deleted paths after `after` as a cJSON array of strings, ordered. */
int ps_store_tombstone_page(struct ps_store *s, const char *after, int limit, int64_t now, cJSON **paths,
                            char *err, size_t errlen);
#endif
