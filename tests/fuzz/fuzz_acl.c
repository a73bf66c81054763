/*
 * Fuzzes the catalog policy parser, the access rule and the broker topic rules
 * (lib/acl.h): dyno_acl_policy_parse, dyno_acl_decide, the table and
 * dyno_acl_table_check_topic, plus the login-name validators.
 *
 * Input: a flags byte, then NUL-separated parts: policy A, policy B, topic, sub, org.
 *   flags bit 0: admin; bit 1: service; bit 2: no org (NULL).
 * Checked:
 *   - a parsed policy holds what the parser promises (valid catalog, owner its first
 *     segment, valid shares); a failed parse returns NULL;
 *   - decide: services and admins may do everything, owners too, write implies read,
 *     public grants read, an invalid sub gets nothing, and a plain user is allowed exactly
 *     when a share (of the right access) names them or covers their org;
 *   - the table returns what was stored; the topics derived from a stored catalog get
 *     the same verdict as decide (events READ/SUBSCRIBE, ingest WRITE, the sub-tree
 *     SUBSCRIBE), and a removed catalog is denied;
 *   - on the arbitrary topic: nothing outside the rules is allowed (an allowed user WRITE
 *     is an ingest topic of a writable catalog, an allowed READ an events topic of a
 *     readable catalog or their own reply tree), SUBSCRIBE without wildcards equals READ,
 *     "$share/<group>/" changes nothing, and the feed accepts it only as the ACL topic of
 *     the policy's own catalog.
 */
#include <stdbool.h>
#include <string.h>

#include "acl.h"
#include "dynostore/error.h"
#include "fuzz.h"

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The documented org rule, written independently: "lab" covers "lab" and "lab/...". */
static bool ref_covers(const char *share_org, const char *org)
{
    size_t n = strlen(share_org);

    if (org == NULL || *share_org == '\0' || *org == '\0')
        return false;
    return strcmp(share_org, org) == 0 || (strncmp(share_org, org, n) == 0 && org[n] == '/');
}

static void check_policy(const struct dyno_acl_policy *p)
{
    char owner[DYNO_SEG_MAX + 1];

    FUZZ_CHECK(dyno_valid_catalog(p->catalog));
    FUZZ_CHECK(dyno_catalog_owner(p->catalog, owner, sizeof(owner)) == 0 && strcmp(owner, p->owner) == 0);
    FUZZ_CHECK(p->nshares <= DYNO_ACL_SHARES_MAX && (p->nshares == 0 || p->shares != NULL));
    for (size_t i = 0; i < p->nshares; i++) {
        const struct dyno_acl_share *sh = &p->shares[i];
        FUZZ_CHECK(sh->access == DYNO_ACL_READ || sh->access == DYNO_ACL_WRITE);
        FUZZ_CHECK(sh->kind == DYNO_ACL_KIND_USER ? dyno_valid_segment(sh->principal)
                                                  : sh->kind == DYNO_ACL_KIND_ORG &&
                                                        fuzz_org_ok(sh->principal, false, DYNO_ACL_ORG_MAX));
    }
}

static struct dyno_acl_policy *parse(const char *json, size_t len)
{
    struct dyno_acl_policy *p = (struct dyno_acl_policy *)1;

    int rc = dyno_acl_policy_parse(json, len, &p);
    FUZZ_CHECK(rc == 0 || rc == DYNO_EINVAL || rc == DYNO_ETOOBIG || rc == DYNO_ENOMEM);
    FUZZ_CHECK((rc == 0) == (p != NULL));
    if (p != NULL)
        check_policy(p);
    return p;
}

static void check_decide(const struct dyno_acl_policy *p, const struct dyno_acl_principal *who)
{
    bool r = dyno_acl_decide(p, who, DYNO_ACL_READ), w = dyno_acl_decide(p, who, DYNO_ACL_WRITE);

    FUZZ_CHECK(!dyno_acl_decide(p, who, 0) && !dyno_acl_decide(p, who, 3));
    FUZZ_CHECK(!dyno_acl_decide(NULL, who, DYNO_ACL_READ) && !dyno_acl_decide(p, NULL, DYNO_ACL_READ));
    FUZZ_CHECK(!w || r);
    if (who->service) {
        FUZZ_CHECK(r && w);
        return;
    }
    if (!dyno_valid_segment(who->sub)) {
        FUZZ_CHECK(!r && !w);
        return;
    }
    if (who->admin || strcmp(who->sub, p->owner) == 0) {
        FUZZ_CHECK(r && w);
        return;
    }
    bool share_r = false, share_w = false;
    for (size_t i = 0; i < p->nshares; i++) {
        const struct dyno_acl_share *sh = &p->shares[i];
        bool names = sh->kind == DYNO_ACL_KIND_USER ? strcmp(sh->principal, who->sub) == 0
                                                    : ref_covers(sh->principal, who->org);
        share_r = share_r || names;
        share_w = share_w || (names && sh->access == DYNO_ACL_WRITE);
    }
    FUZZ_CHECK(r == (p->public || share_r));
    FUZZ_CHECK(w == share_w);
}

static bool allowed(const struct dyno_acl_table *t, const struct dyno_acl_principal *who, const char *topic,
                    enum dyno_acl_op op)
{
    enum dyno_acl_verdict v = dyno_acl_table_check_topic(t, who, topic, op);

    FUZZ_CHECK(v == DYNO_ACL_ALLOW || v == DYNO_ACL_DENY);
    return v == DYNO_ACL_ALLOW;
}

/*
 * Topics built from each stored catalog get decide's verdict. cats[0..ncats) are the
 * catalogs in t (the table has no iterator).
 */
static void check_catalog_topics(const struct dyno_acl_table *t, const struct dyno_acl_principal *who,
                                 const char *const *cats, size_t ncats)
{
    char topic[DYNO_ACL_TOPIC_MAX + 1];

    for (size_t i = 0; i < ncats; i++) {
        const struct dyno_acl_policy *p = dyno_acl_table_get(t, cats[i]);
        FUZZ_CHECK(p != NULL && strcmp(p->catalog, cats[i]) == 0);
        bool r = dyno_acl_decide(p, who, DYNO_ACL_READ), w = dyno_acl_decide(p, who, DYNO_ACL_WRITE);

        snprintf(topic, sizeof(topic), "dyno/v1/events/%s", cats[i]);
        FUZZ_CHECK(allowed(t, who, topic, DYNO_ACL_OP_READ) == r);
        FUZZ_CHECK(allowed(t, who, topic, DYNO_ACL_OP_SUBSCRIBE) == r);
        FUZZ_CHECK(allowed(t, who, topic, DYNO_ACL_OP_WRITE) == who->service);
        snprintf(topic, sizeof(topic), "$share/g1/dyno/v1/events/%s", cats[i]);
        FUZZ_CHECK(allowed(t, who, topic, DYNO_ACL_OP_SUBSCRIBE) == r);
        snprintf(topic, sizeof(topic), "dyno/v1/ingest/%s", cats[i]);
        FUZZ_CHECK(allowed(t, who, topic, DYNO_ACL_OP_WRITE) == w);
        FUZZ_CHECK(allowed(t, who, topic, DYNO_ACL_OP_READ) == who->service);

        /* ".../<catalog>/#": the catalog or a stored sub-catalog of it is readable. */
        bool under = r;
        size_t n = strlen(cats[i]);
        for (size_t j = 0; j < ncats; j++) {
            if (strncmp(cats[j], cats[i], n) == 0 && cats[j][n] == '/')
                under = under || dyno_acl_decide(dyno_acl_table_get(t, cats[j]), who, DYNO_ACL_READ);
        }
        snprintf(topic, sizeof(topic), "dyno/v1/events/%s/#", cats[i]);
        FUZZ_CHECK(allowed(t, who, topic, DYNO_ACL_OP_SUBSCRIBE) == under);
        FUZZ_CHECK(!allowed(t, who, topic, DYNO_ACL_OP_READ));
    }
}

/* The rules on an arbitrary topic, as far as they can be said without re-implementing them. */
static void check_topic(const struct dyno_acl_table *t, const struct dyno_acl_principal *who,
                        const char *topic)
{
    char shared[DYNO_ACL_TOPIC_MAX + 16];
    size_t len = strlen(topic);
    bool sub = allowed(t, who, topic, DYNO_ACL_OP_SUBSCRIBE), rd = allowed(t, who, topic, DYNO_ACL_OP_READ),
         wr = allowed(t, who, topic, DYNO_ACL_OP_WRITE);

    FUZZ_CHECK(!allowed(t, who, topic, 0) && !allowed(t, who, topic, 4));
    FUZZ_CHECK(!allowed(NULL, who, topic, DYNO_ACL_OP_READ) && !allowed(t, NULL, topic, DYNO_ACL_OP_READ));
    if (len == 0 || len > DYNO_ACL_TOPIC_MAX)
        FUZZ_CHECK(!sub && !rd && !wr);
    FUZZ_CHECK(!rd || starts_with(topic, "dyno/v1/"));
    FUZZ_CHECK(!wr || starts_with(topic, "dyno/v1/"));
    FUZZ_CHECK(!sub || starts_with(topic, "dyno/v1/") || starts_with(topic, "$share/"));
    if ((sub || rd || wr) && !who->service)
        FUZZ_CHECK(dyno_valid_segment(who->sub));
    if (wr && !who->service) {
        FUZZ_CHECK(starts_with(topic, DYNO_ACL_TOPIC_INGEST));
        const char *cat = topic + strlen(DYNO_ACL_TOPIC_INGEST);
        FUZZ_CHECK(dyno_acl_decide(dyno_acl_table_get(t, cat), who, DYNO_ACL_WRITE));
    }
    if (rd && !who->service) {
        size_t r = strlen(DYNO_ACL_TOPIC_REPLY), s = strlen(who->sub);
        bool own_reply = starts_with(topic, DYNO_ACL_TOPIC_REPLY) && strncmp(topic + r, who->sub, s) == 0 &&
                         (topic[r + s] == '\0' || topic[r + s] == '/');
        bool events =
            starts_with(topic, DYNO_ACL_TOPIC_EVENTS) &&
            dyno_acl_decide(dyno_acl_table_get(t, topic + strlen(DYNO_ACL_TOPIC_EVENTS)), who, DYNO_ACL_READ);
        FUZZ_CHECK(own_reply || events);
    }
    /* Without wildcards a filter is a topic: SUBSCRIBE and READ agree. */
    if (!starts_with(topic, "$share/") && strpbrk(topic, "+#") == NULL)
        FUZZ_CHECK(sub == rd);
    /* A shared subscription is judged by its filter. */
    if (!starts_with(topic, "$share/") && len + 11 <= DYNO_ACL_TOPIC_MAX) {
        snprintf(shared, sizeof(shared), "$share/grp/%s", topic);
        FUZZ_CHECK(allowed(t, who, shared, DYNO_ACL_OP_SUBSCRIBE) == sub);
        FUZZ_CHECK(!allowed(t, who, shared, DYNO_ACL_OP_READ) && !allowed(t, who, shared, DYNO_ACL_OP_WRITE));
    }
}

/* Login names: what the validators accept never carries what they promise to refuse. */
static void check_names(const char *s)
{
    size_t len = strlen(s);

    if (dyno_acl_valid_client_id(s))
        FUZZ_CHECK(len >= 1 && len <= DYNO_ACL_CLIENT_ID_MAX && strpbrk(s, "+#/\\") == NULL);
    if (dyno_acl_valid_service_name(s)) {
        const char *dash = strchr(s, '-');
        FUZZ_CHECK(dyno_valid_segment(s) && dash != NULL && dash > s && dash[1] != '\0');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dyno_acl_table *t = NULL, *feed = NULL;
    size_t alen, blen;

    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    char *a = fuzz_take_part(&p, &n, &alen), *b = fuzz_take_part(&p, &n, &blen);
    char *topic = fuzz_take_part(&p, &n, NULL), *sub = fuzz_take_part(&p, &n, NULL);
    char *org = fuzz_take_part(&p, &n, NULL);
    struct dyno_acl_principal who = {sub, flags & 4 ? NULL : org, flags & 1, flags & 2};

    check_names(sub);
    FUZZ_CHECK(dyno_acl_org_covers(org, sub) == ref_covers(org, sub));
    FUZZ_CHECK(dyno_acl_org_covers(sub, org) == ref_covers(sub, org));

    struct dyno_acl_policy *pa = parse(a, alen), *pb = parse(b, blen);
    FUZZ_CHECK(dyno_acl_table_new(&t) == 0 && dyno_acl_table_new(&feed) == 0);
    const char *cats[2];
    size_t ncats = 0;
    if (pa != NULL) {
        check_decide(pa, &who);
        FUZZ_CHECK(dyno_acl_table_update(t, pa->catalog, a, alen) == 0);
        cats[ncats++] = pa->catalog;
    }
    if (pb != NULL) {
        check_decide(pb, &who);
        FUZZ_CHECK(dyno_acl_table_update(t, pb->catalog, b, blen) == 0);
        if (ncats == 0 || strcmp(cats[0], pb->catalog) != 0)
            cats[ncats++] = pb->catalog;
    }
    FUZZ_CHECK(dyno_acl_table_count(t) == ncats);
    check_catalog_topics(t, &who, cats, ncats);
    check_topic(t, &who, topic);

    /* The feed takes a document only on the ACL topic of its own catalog. */
    int rc = dyno_acl_table_apply(feed, topic, a, alen);
    if (alen > 0 && rc == 0) {
        FUZZ_CHECK(pa != NULL && starts_with(topic, DYNO_ACL_TOPIC_ACL) &&
                   strcmp(topic + strlen(DYNO_ACL_TOPIC_ACL), pa->catalog) == 0);
        FUZZ_CHECK(dyno_acl_table_count(feed) == 1);
    }

    /* Removal: the catalog is gone and denied to users. */
    for (size_t i = 0; i < ncats; i++) {
        char ev[DYNO_ACL_TOPIC_MAX + 1];
        FUZZ_CHECK(dyno_acl_table_update(t, cats[i], NULL, 0) == 0);
        FUZZ_CHECK(dyno_acl_table_get(t, cats[i]) == NULL);
        FUZZ_CHECK(dyno_acl_table_remove(t, cats[i]) == DYNO_ENOTFOUND);
        snprintf(ev, sizeof(ev), "dyno/v1/events/%s", cats[i]);
        FUZZ_CHECK(allowed(t, &who, ev, DYNO_ACL_OP_READ) == who.service);
    }
    FUZZ_CHECK(dyno_acl_table_count(t) == 0);

    dyno_acl_table_free(t);
    dyno_acl_table_free(feed);
    dyno_acl_policy_free(pa);
    dyno_acl_policy_free(pb);
    free(a);
    free(b);
    free(topic);
    free(sub);
    free(org);
    return 0;
}
