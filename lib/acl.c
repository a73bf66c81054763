/*
 * Catalog access policy and broker topic rules (lib/acl.h). Pure: every input is untrusted
 * and bounded before it is copied; no I/O, no clock, no locks.
 */
#include "acl.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "dynostore/error.h"
#include "json.h"

struct dyno_acl_table {
    struct dyno_acl_policy **v; /* sorted by catalog (strcmp) */
    size_t n, cap;
};

/* One level of a topic: a view into the topic string. */
struct acl_level {
    const char *s;
    size_t len;
};

/* ---- small validators ------------------------------------------------------------------ */

/* A valid segment of s[0..len) (not NUL-terminated), via lib/names.h. */
static bool acl_segment_n(const char *s, size_t len)
{
    char seg[DYNO_SEG_MAX + 1];

    if (len == 0 || len > DYNO_SEG_MAX)
        return false;
    memcpy(seg, s, len);
    seg[len] = '\0';
    return dyno_valid_segment(seg);
}

/* An org path: 1..DYNO_DEPTH_MAX valid segments joined by '/', at most DYNO_ACL_ORG_MAX bytes. */
static bool acl_valid_org(const char *org)
{
    size_t len = strnlen(org, DYNO_ACL_ORG_MAX + 1), start = 0, depth = 0;

    if (len == 0 || len > DYNO_ACL_ORG_MAX)
        return false;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && org[i] != '/')
            continue;
        if (!acl_segment_n(org + start, i - start) || ++depth > DYNO_DEPTH_MAX)
            return false;
        start = i + 1;
    }
    return true;
}

bool dyno_acl_valid_client_id(const char *s)
{
    if (s == NULL)
        return false;
    size_t len = strnlen(s, DYNO_ACL_CLIENT_ID_MAX + 1);
    if (len == 0 || len > DYNO_ACL_CLIENT_ID_MAX)
        return false;
    /* MQTT wildcards would let a name pose as a filter in topics built from it. */
    if (memchr(s, '+', len) != NULL || memchr(s, '#', len) != NULL)
        return false;
    /* UTF-8, no controls, no '/' or '\\', not "." or "..": the object-name rule. */
    return dyno_valid_plain_name(s);
}

bool dyno_acl_valid_service_name(const char *s)
{
    if (!dyno_valid_segment(s))
        return false;
    const char *dash = strchr(s, '-');
    if (dash == NULL || dash == s || dash[1] == '\0')
        return false;
    for (const char *p = s; p < dash; p++) {
        if (*p < 'a' || *p > 'z')
            return false;
    }
    return true;
}

bool dyno_acl_org_covers(const char *share_org, const char *org)
{
    if (share_org == NULL || org == NULL || share_org[0] == '\0' || org[0] == '\0')
        return false;
    size_t n = strlen(share_org);
    /* "lab" covers "lab" and "lab/..." but not "labx". */
    return strncmp(share_org, org, n) == 0 && (org[n] == '\0' || org[n] == '/');
}

/* ---- policy ------------------------------------------------------------------------------ */

void dyno_acl_policy_free(struct dyno_acl_policy *p)
{
    if (p == NULL)
        return;
    free(p->shares);
    free(p);
}

/* Copies a string member that must be present into dst (cap bytes). */
static bool acl_copy_str(const cJSON *obj, const char *name, char *dst, size_t cap)
{
    const char *v = dyno_json_str(obj, name);
    if (v == NULL)
        return false;
    size_t len = strnlen(v, cap);
    if (len >= cap)
        return false;
    memcpy(dst, v, len + 1);
    return true;
}

/*
 * True when the JSON text has a "\u0000" escape: cJSON decodes it into a NUL that would
 * silently cut a name short ("bob\u0000x" read as "bob"). An even run of backslashes is
 * an escaped backslash, not an escape.
 */
static bool acl_has_nul_escape(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        if (s[i] != '\\') {
            i++;
            continue;
        }
        size_t run = 0;
        while (i < len && s[i] == '\\') {
            run++;
            i++;
        }
        if (run % 2 == 1 && len - i >= 5 && s[i] == 'u' && memcmp(s + i + 1, "0000", 4) == 0)
            return true;
    }
    return false;
}

static int acl_parse_share(const cJSON *it, struct dyno_acl_share *sh)
{
    const char *kind, *access;

    if (!cJSON_IsObject(it) || !acl_copy_str(it, "principal", sh->principal, sizeof(sh->principal)))
        return DYNO_EINVAL;
    kind = dyno_json_str(it, "kind");
    access = dyno_json_str(it, "access");
    if (kind == NULL || access == NULL)
        return DYNO_EINVAL;
    if (strcmp(kind, "user") == 0) {
        sh->kind = DYNO_ACL_KIND_USER;
        if (!dyno_valid_segment(sh->principal))
            return DYNO_EINVAL;
    } else if (strcmp(kind, "org") == 0) {
        sh->kind = DYNO_ACL_KIND_ORG;
        if (!acl_valid_org(sh->principal))
            return DYNO_EINVAL;
    } else {
        return DYNO_EINVAL;
    }
    if (strcmp(access, "read") == 0)
        sh->access = DYNO_ACL_READ;
    else if (strcmp(access, "write") == 0)
        sh->access = DYNO_ACL_WRITE;
    else
        return DYNO_EINVAL;
    return 0;
}

int dyno_acl_policy_parse(const char *json, size_t len, struct dyno_acl_policy **out)
{
    cJSON *j = NULL;
    const cJSON *pub, *shares, *it;
    struct dyno_acl_policy *p = NULL;
    char owner[DYNO_SEG_MAX + 1];
    int rc;

    if (out == NULL)
        return DYNO_EINVAL;
    *out = NULL;
    if (json == NULL)
        return DYNO_EINVAL;
    rc = dyno_json_parse(json, len, DYNO_ACL_POLICY_MAX, &j);
    if (rc != 0)
        goto out;
    rc = DYNO_EINVAL;
    if (!cJSON_IsObject(j) || acl_has_nul_escape(json, len))
        goto out;
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        rc = DYNO_ENOMEM;
        goto out;
    }
    if (!acl_copy_str(j, "catalog", p->catalog, sizeof(p->catalog)) || !dyno_valid_catalog(p->catalog) ||
        !acl_copy_str(j, "owner", p->owner, sizeof(p->owner)) ||
        dyno_catalog_owner(p->catalog, owner, sizeof(owner)) != 0 || strcmp(owner, p->owner) != 0)
        goto out;
    pub = cJSON_GetObjectItemCaseSensitive(j, "public");
    if (pub != NULL && !cJSON_IsBool(pub))
        goto out;
    p->public = cJSON_IsTrue(pub);

    shares = cJSON_GetObjectItemCaseSensitive(j, "shares");
    if (shares != NULL && !cJSON_IsNull(shares)) {
        if (!cJSON_IsArray(shares))
            goto out;
        int n = cJSON_GetArraySize(shares);
        if (n > DYNO_ACL_SHARES_MAX) {
            rc = DYNO_ETOOBIG;
            goto out;
        }
        if (n > 0) {
            p->shares = calloc((size_t)n, sizeof(*p->shares));
            if (p->shares == NULL) {
                rc = DYNO_ENOMEM;
                goto out;
            }
        }
        cJSON_ArrayForEach(it, shares)
        {
            rc = acl_parse_share(it, &p->shares[p->nshares]);
            if (rc != 0)
                goto out;
            p->nshares++;
        }
    }
    *out = p;
    p = NULL;
    rc = 0;
out:
    dyno_acl_policy_free(p);
    cJSON_Delete(j);
    return rc;
}

bool dyno_acl_decide(const struct dyno_acl_policy *p, const struct dyno_acl_principal *who,
                     enum dyno_acl_access access)
{
    if (p == NULL || who == NULL || (access != DYNO_ACL_READ && access != DYNO_ACL_WRITE))
        return false;
    if (who->service)
        return true;
    if (!dyno_valid_segment(who->sub))
        return false;
    if (who->admin || strcmp(p->owner, who->sub) == 0)
        return true;
    if (access == DYNO_ACL_READ && p->public)
        return true;
    for (size_t i = 0; i < p->nshares; i++) {
        const struct dyno_acl_share *sh = &p->shares[i];
        /* A write share grants read too; a read share never grants write. */
        if (access == DYNO_ACL_WRITE && sh->access != DYNO_ACL_WRITE)
            continue;
        if (sh->kind == DYNO_ACL_KIND_USER && strcmp(sh->principal, who->sub) == 0)
            return true;
        if (sh->kind == DYNO_ACL_KIND_ORG && dyno_acl_org_covers(sh->principal, who->org))
            return true;
    }
    return false;
}

/* ---- table ------------------------------------------------------------------------------- */

int dyno_acl_table_new(struct dyno_acl_table **out)
{
    if (out == NULL)
        return DYNO_EINVAL;
    *out = calloc(1, sizeof(**out));
    return *out == NULL ? DYNO_ENOMEM : 0;
}

void dyno_acl_table_free(struct dyno_acl_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        dyno_acl_policy_free(t->v[i]);
    free(t->v);
    free(t);
}

size_t dyno_acl_table_count(const struct dyno_acl_table *t)
{
    return t == NULL ? 0 : t->n;
}

/* First index whose catalog is >= key (n when none); *found when it is equal. */
static size_t acl_lower_bound(const struct dyno_acl_table *t, const char *key, bool *found)
{
    return dyno_name_search_ptr((const void *const *)t->v, t->n, offsetof(struct dyno_acl_policy, catalog),
                                key, found);
}

const struct dyno_acl_policy *dyno_acl_table_get(const struct dyno_acl_table *t, const char *catalog)
{
    bool found;

    if (t == NULL || catalog == NULL)
        return NULL;
    size_t at = acl_lower_bound(t, catalog, &found);
    return found ? t->v[at] : NULL;
}

int dyno_acl_table_remove(struct dyno_acl_table *t, const char *catalog)
{
    bool found;

    if (t == NULL || catalog == NULL)
        return DYNO_EINVAL;
    size_t at = acl_lower_bound(t, catalog, &found);
    if (!found)
        return DYNO_ENOTFOUND;
    dyno_acl_policy_free(t->v[at]);
    memmove(&t->v[at], &t->v[at + 1], (t->n - at - 1) * sizeof(t->v[0]));
    t->n--;
    return 0;
}

int dyno_acl_table_update(struct dyno_acl_table *t, const char *catalog, const void *payload, size_t len)
{
    struct dyno_acl_policy *p = NULL;
    bool found;
    int rc;

    if (t == NULL || !dyno_valid_catalog(catalog))
        return DYNO_EINVAL;
    if (len == 0) {
        rc = dyno_acl_table_remove(t, catalog);
        return rc == DYNO_ENOTFOUND ? 0 : rc;
    }
    rc = dyno_acl_policy_parse(payload, len, &p);
    if (rc != 0)
        return rc;
    if (strcmp(p->catalog, catalog) != 0) {
        rc = DYNO_EINVAL;
        goto out;
    }
    size_t at = acl_lower_bound(t, catalog, &found);
    if (found) {
        dyno_acl_policy_free(t->v[at]);
        t->v[at] = p;
        p = NULL;
        goto out;
    }
    if (t->n >= DYNO_ACL_CATALOGS_MAX) {
        rc = DYNO_ETOOBIG;
        goto out;
    }
    if (t->n == t->cap) {
        size_t ncap = t->cap == 0 ? 64 : t->cap * 2;
        struct dyno_acl_policy **nv = realloc(t->v, ncap * sizeof(*nv));
        if (nv == NULL) {
            rc = DYNO_ENOMEM;
            goto out;
        }
        t->v = nv;
        t->cap = ncap;
    }
    memmove(&t->v[at + 1], &t->v[at], (t->n - at) * sizeof(t->v[0]));
    t->v[at] = p;
    t->n++;
    p = NULL;
out:
    dyno_acl_policy_free(p);
    return rc;
}

int dyno_acl_table_apply(struct dyno_acl_table *t, const char *topic, const void *payload, size_t len)
{
    const size_t plen = sizeof(DYNO_ACL_TOPIC_ACL) - 1;

    if (t == NULL || topic == NULL || strncmp(topic, DYNO_ACL_TOPIC_ACL, plen) != 0)
        return DYNO_EINVAL;
    return dyno_acl_table_update(t, topic + plen, payload, len);
}

/* ---- topic rules -------------------------------------------------------------------------- */

static bool acl_level_is(const struct acl_level *l, const char *s)
{
    size_t n = strlen(s);
    return l->len == n && memcmp(l->s, s, n) == 0;
}

static bool acl_level_wild(const struct acl_level *l)
{
    return acl_level_is(l, "+") || acl_level_is(l, "#");
}

/*
 * Splits topic[0..len) into levels and validates them for op: every level a valid segment,
 * or "+" / "#" (last only) in a SUBSCRIBE filter. Returns the level count, or 0 when invalid.
 */
static size_t acl_split(const char *topic, size_t len, enum dyno_acl_op op, struct acl_level *lv)
{
    size_t n = 0, start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && topic[i] != '/')
            continue;
        if (n == DYNO_ACL_LEVELS_MAX)
            return 0;
        lv[n].s = topic + start;
        lv[n].len = i - start;
        start = i + 1;
        if (acl_level_wild(&lv[n])) {
            if (op != DYNO_ACL_OP_SUBSCRIBE)
                return 0;
            if (acl_level_is(&lv[n], "#") && i != len)
                return 0;
        } else if (!acl_segment_n(lv[n].s, lv[n].len)) {
            return 0;
        }
        n++;
    }
    return n;
}

/* Copies levels [from, to) joined by '/' into out (DYNO_CATALOG_MAX + 1 bytes) and checks
 * that they form a valid catalog. */
static bool acl_catalog_of(const struct acl_level *lv, size_t from, size_t to, char *out)
{
    if (from >= to)
        return false;
    size_t len = (size_t)(lv[to - 1].s + lv[to - 1].len - lv[from].s);
    if (len > DYNO_CATALOG_MAX)
        return false;
    memcpy(out, lv[from].s, len);
    out[len] = '\0';
    return dyno_valid_catalog(out);
}

static bool acl_may(const struct dyno_acl_table *t, const struct dyno_acl_principal *who, const char *catalog,
                    enum dyno_acl_access access)
{
    return dyno_acl_decide(dyno_acl_table_get(t, catalog), who, access);
}

/* True when who may read catalog or any of its sub-catalogs known to t. */
static bool acl_may_read_under(const struct dyno_acl_table *t, const struct dyno_acl_principal *who,
                               const char *catalog)
{
    char prefix[DYNO_CATALOG_MAX + 2];
    size_t n = strlen(catalog);
    bool found;

    if (acl_may(t, who, catalog, DYNO_ACL_READ))
        return true;
    /* Sub-catalogs "<catalog>/..." sort together, right after the lower bound of the prefix. */
    memcpy(prefix, catalog, n);
    prefix[n] = '/';
    prefix[n + 1] = '\0';
    for (size_t i = acl_lower_bound(t, prefix, &found); i < t->n; i++) {
        if (strncmp(t->v[i]->catalog, prefix, n + 1) != 0)
            break;
        if (dyno_acl_decide(t->v[i], who, DYNO_ACL_READ))
            return true;
    }
    return false;
}

static bool acl_service_area(const struct acl_level *area)
{
    static const char *const areas[] = {"rpc", "reply", "agents", "events", "ingest", "auth", "acl"};

    for (size_t i = 0; i < sizeof(areas) / sizeof(areas[0]); i++) {
        if (acl_level_is(area, areas[i]))
            return true;
    }
    return false;
}

/* events/<...> for a user; lv[3..n) is what follows "dyno/v1/events/". */
static bool acl_user_events(const struct dyno_acl_table *t, const struct dyno_acl_principal *who,
                            const struct acl_level *lv, size_t n, enum dyno_acl_op op)
{
    char catalog[DYNO_CATALOG_MAX + 1];
    size_t w = 3;

    if (op == DYNO_ACL_OP_READ)
        return acl_catalog_of(lv, 3, n, catalog) && acl_may(t, who, catalog, DYNO_ACL_READ);
    if (op != DYNO_ACL_OP_SUBSCRIBE)
        return false;
    while (w < n && !acl_level_wild(&lv[w]))
        w++;
    if (w == n) /* no wildcard: one catalog */
        return acl_catalog_of(lv, 3, n, catalog) && acl_may(t, who, catalog, DYNO_ACL_READ);
    if (w - 3 < 2) {
        /* The wildcard spans owners or an owner's catalogs, which the user cannot
         * enumerate: allowed, and every delivered message passes the READ check. */
        return true;
    }
    return acl_catalog_of(lv, 3, w, catalog) && acl_may_read_under(t, who, catalog);
}

enum dyno_acl_verdict dyno_acl_table_check_topic(const struct dyno_acl_table *t,
                                                 const struct dyno_acl_principal *who, const char *topic,
                                                 enum dyno_acl_op op)
{
    struct acl_level lv[DYNO_ACL_LEVELS_MAX];
    char catalog[DYNO_CATALOG_MAX + 1];
    size_t len, n;

    if (t == NULL || who == NULL || topic == NULL ||
        (op != DYNO_ACL_OP_SUBSCRIBE && op != DYNO_ACL_OP_READ && op != DYNO_ACL_OP_WRITE))
        return DYNO_ACL_DENY;
    len = strnlen(topic, DYNO_ACL_TOPIC_MAX + 1);
    if (len == 0 || len > DYNO_ACL_TOPIC_MAX)
        return DYNO_ACL_DENY;
    if (op == DYNO_ACL_OP_SUBSCRIBE && strncmp(topic, "$share/", 7) == 0) {
        /* "$share/<group>/<filter>": the group is a name, the filter is what matters. */
        const char *group = topic + 7;
        const char *slash = memchr(group, '/', len - 7);
        if (slash == NULL || !acl_segment_n(group, (size_t)(slash - group)))
            return DYNO_ACL_DENY;
        len -= (size_t)(slash + 1 - topic);
        topic = slash + 1;
    }
    n = acl_split(topic, len, op, lv);
    if (n < 4 || !acl_level_is(&lv[0], "dyno") || !acl_level_is(&lv[1], "v1") || acl_level_wild(&lv[2]))
        return DYNO_ACL_DENY;

    if (who->service)
        return acl_service_area(&lv[2]) ? DYNO_ACL_ALLOW : DYNO_ACL_DENY;
    if (!dyno_valid_segment(who->sub))
        return DYNO_ACL_DENY;

    if (acl_level_is(&lv[2], "events"))
        return acl_user_events(t, who, lv, n, op) ? DYNO_ACL_ALLOW : DYNO_ACL_DENY;
    if (acl_level_is(&lv[2], "ingest")) {
        if (op == DYNO_ACL_OP_WRITE && acl_catalog_of(lv, 3, n, catalog) &&
            acl_may(t, who, catalog, DYNO_ACL_WRITE))
            return DYNO_ACL_ALLOW;
        return DYNO_ACL_DENY;
    }
    if (acl_level_is(&lv[2], "reply")) {
        /* Their own reply tree only; lv[3] is never a wildcard there. */
        if (op != DYNO_ACL_OP_WRITE && acl_level_is(&lv[3], who->sub))
            return DYNO_ACL_ALLOW;
        return DYNO_ACL_DENY;
    }
    return DYNO_ACL_DENY;
}
