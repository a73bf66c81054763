/* Unit tests of lib/acl.c: the access rule, policy parsing, the catalog table, topic rules,
 * broker login names (the revoked feed is tests/unit/test_token.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acl.h"
#include "dynostore/error.h"

#define POLICY_X                                                                                             \
    "{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"public\":false,\"shares\":["                             \
    "{\"principal\":\"bob\",\"kind\":\"user\",\"access\":\"read\"},"                                         \
    "{\"principal\":\"dave\",\"kind\":\"user\",\"access\":\"write\"},"                                       \
    "{\"principal\":\"lab\",\"kind\":\"org\",\"access\":\"write\"},"                                         \
    "{\"principal\":\"physics/theory\",\"kind\":\"org\",\"access\":\"read\"}]}"

static const struct dyno_acl_principal alice = {"alice", "", false, false};
static const struct dyno_acl_principal bob = {"bob", NULL, false, false};
static const struct dyno_acl_principal carol = {"carol", "labx", false, false};
static const struct dyno_acl_principal dave = {"dave", "", false, false};
static const struct dyno_acl_principal lab_ct = {"erin", "lab/ct", false, false};
static const struct dyno_acl_principal lab = {"frank", "lab", false, false};
static const struct dyno_acl_principal physics = {"gina", "physics", false, false};
static const struct dyno_acl_principal theory_sub = {"hal", "physics/theory/strings", false, false};
static const struct dyno_acl_principal root = {"root", "", true, false};
static const struct dyno_acl_principal svc = {"service", "", false, true};

static struct dyno_acl_policy *parse(const char *json)
{
    struct dyno_acl_policy *p = NULL;
    assert_int_equal(dyno_acl_policy_parse(json, strlen(json), &p), 0);
    assert_non_null(p);
    return p;
}

static int parse_rc(const char *json)
{
    struct dyno_acl_policy *p = (struct dyno_acl_policy *)1;
    int rc = dyno_acl_policy_parse(json, strlen(json), &p);
    if (rc != 0)
        assert_null(p);
    dyno_acl_policy_free(p);
    return rc;
}

static void test_decide(void **state)
{
    (void)state;
    struct dyno_acl_policy *p = parse(POLICY_X);

    assert_string_equal(p->catalog, "alice/x");
    assert_string_equal(p->owner, "alice");
    assert_false(p->public);
    assert_int_equal(p->nshares, 4);

    /* owner */
    assert_true(dyno_acl_decide(p, &alice, DYNO_ACL_READ));
    assert_true(dyno_acl_decide(p, &alice, DYNO_ACL_WRITE));
    /* user read share: read, not write */
    assert_true(dyno_acl_decide(p, &bob, DYNO_ACL_READ));
    assert_false(dyno_acl_decide(p, &bob, DYNO_ACL_WRITE));
    /* user write share implies read */
    assert_true(dyno_acl_decide(p, &dave, DYNO_ACL_READ));
    assert_true(dyno_acl_decide(p, &dave, DYNO_ACL_WRITE));
    /* org share: the org and its sub-orgs, never a name that merely starts the same */
    assert_true(dyno_acl_decide(p, &lab, DYNO_ACL_WRITE));
    assert_true(dyno_acl_decide(p, &lab_ct, DYNO_ACL_WRITE));
    assert_true(dyno_acl_decide(p, &lab_ct, DYNO_ACL_READ));
    assert_false(dyno_acl_decide(p, &carol, DYNO_ACL_READ));
    assert_false(dyno_acl_decide(p, &carol, DYNO_ACL_WRITE));
    /* a deeper org share does not cover its parent; covers its children */
    assert_false(dyno_acl_decide(p, &physics, DYNO_ACL_READ));
    assert_true(dyno_acl_decide(p, &theory_sub, DYNO_ACL_READ));
    assert_false(dyno_acl_decide(p, &theory_sub, DYNO_ACL_WRITE));
    /* admin and service */
    assert_true(dyno_acl_decide(p, &root, DYNO_ACL_READ));
    assert_true(dyno_acl_decide(p, &root, DYNO_ACL_WRITE));
    assert_true(dyno_acl_decide(p, &svc, DYNO_ACL_WRITE));
    /* hostile principals */
    struct dyno_acl_principal nosub = {NULL, "lab", false, false};
    struct dyno_acl_principal badsub = {"../alice", "", false, false};
    struct dyno_acl_principal emptyorg_share = {"x", "", false, false};
    assert_false(dyno_acl_decide(p, &nosub, DYNO_ACL_READ));
    assert_false(dyno_acl_decide(p, &badsub, DYNO_ACL_READ));
    assert_false(dyno_acl_decide(p, &emptyorg_share, DYNO_ACL_READ));
    assert_false(dyno_acl_decide(NULL, &alice, DYNO_ACL_READ));
    assert_false(dyno_acl_decide(p, NULL, DYNO_ACL_READ));
    assert_false(dyno_acl_decide(p, &alice, (enum dyno_acl_access)7));
    dyno_acl_policy_free(p);

    /* public: everyone reads, nobody but the owner writes */
    p = parse("{\"catalog\":\"alice/pub/deep\",\"owner\":\"alice\",\"public\":true}");
    assert_true(dyno_acl_decide(p, &carol, DYNO_ACL_READ));
    assert_false(dyno_acl_decide(p, &carol, DYNO_ACL_WRITE));
    assert_true(dyno_acl_decide(p, &alice, DYNO_ACL_WRITE));
    assert_int_equal(p->nshares, 0);
    dyno_acl_policy_free(p);
    dyno_acl_policy_free(NULL);
}

static void test_org_covers(void **state)
{
    (void)state;
    assert_true(dyno_acl_org_covers("lab", "lab"));
    assert_true(dyno_acl_org_covers("lab", "lab/ct"));
    assert_true(dyno_acl_org_covers("lab/ct", "lab/ct/mri"));
    assert_false(dyno_acl_org_covers("lab", "labx"));
    assert_false(dyno_acl_org_covers("lab/ct", "lab"));
    assert_false(dyno_acl_org_covers("lab/ct", "lab/ctx"));
    assert_false(dyno_acl_org_covers("", "lab"));
    assert_false(dyno_acl_org_covers("lab", ""));
    assert_false(dyno_acl_org_covers(NULL, "lab"));
    assert_false(dyno_acl_org_covers("lab", NULL));
}

static void test_policy_parse_bad(void **state)
{
    (void)state;
    struct dyno_acl_policy *p = NULL;

    assert_int_equal(dyno_acl_policy_parse(NULL, 0, &p), DYNO_EINVAL);
    assert_int_equal(dyno_acl_policy_parse("{}", 2, NULL), DYNO_EINVAL);
    assert_int_equal(parse_rc(""), DYNO_EINVAL);
    assert_int_equal(parse_rc("{"), DYNO_EINVAL);
    assert_int_equal(parse_rc("[]"), DYNO_EINVAL);
    assert_int_equal(parse_rc("\"alice/x\""), DYNO_EINVAL);
    assert_int_equal(parse_rc("{}"), DYNO_EINVAL);
    assert_int_equal(parse_rc("{\"catalog\":\"alice/x\",\"owner\":\"alice\"} trailing"), DYNO_EINVAL);
    /* catalog and owner */
    assert_int_equal(parse_rc("{\"catalog\":\"alice\",\"owner\":\"alice\"}"), DYNO_EINVAL);
    assert_int_equal(parse_rc("{\"catalog\":\"alice/x\",\"owner\":\"bob\"}"), DYNO_EINVAL);
    assert_int_equal(parse_rc("{\"catalog\":\"alice/x\"}"), DYNO_EINVAL);
    assert_int_equal(parse_rc("{\"catalog\":\"alice/../x\",\"owner\":\"alice\"}"), DYNO_EINVAL);
    assert_int_equal(parse_rc("{\"catalog\":\"alice//x\",\"owner\":\"alice\"}"), DYNO_EINVAL);
    assert_int_equal(parse_rc("{\"catalog\":\"alice/#\",\"owner\":\"alice\"}"), DYNO_EINVAL);
    assert_int_equal(parse_rc("{\"catalog\":\"alice/+\",\"owner\":\"alice\"}"), DYNO_EINVAL);
    assert_int_equal(parse_rc("{\"catalog\":\"alice/caf\xc3\xa9\",\"owner\":\"alice\"}"), DYNO_EINVAL);
    assert_int_equal(parse_rc("{\"catalog\":\"alice/\xff\xfe\",\"owner\":\"alice\"}"), DYNO_EINVAL);
    assert_int_equal(parse_rc("{\"catalog\":\"a/1/2/3/4/5/6/7/8/9\",\"owner\":\"a\"}"), DYNO_EINVAL);
    assert_int_equal(parse_rc("{\"catalog\":7,\"owner\":\"alice\"}"), DYNO_EINVAL);
    /* public */
    assert_int_equal(parse_rc("{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"public\":\"yes\"}"),
                     DYNO_EINVAL);
    assert_int_equal(parse_rc("{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"public\":1}"), DYNO_EINVAL);
    /* shares */
    assert_int_equal(parse_rc("{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"shares\":{}}"), DYNO_EINVAL);
    assert_int_equal(parse_rc("{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"shares\":[1]}"), DYNO_EINVAL);
    assert_int_equal(
        parse_rc("{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"shares\":[{\"principal\":\"bob\","
                 "\"kind\":\"user\",\"access\":\"admin\"}]}"),
        DYNO_EINVAL);
    assert_int_equal(
        parse_rc("{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"shares\":[{\"principal\":\"bob\","
                 "\"kind\":\"group\",\"access\":\"read\"}]}"),
        DYNO_EINVAL);
    assert_int_equal(
        parse_rc("{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"shares\":[{\"principal\":\"bob\","
                 "\"access\":\"read\"}]}"),
        DYNO_EINVAL);
    assert_int_equal(
        parse_rc("{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"shares\":[{\"principal\":\"a/b\","
                 "\"kind\":\"user\",\"access\":\"read\"}]}"),
        DYNO_EINVAL);
    assert_int_equal(
        parse_rc("{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"shares\":[{\"principal\":\"lab/\","
                 "\"kind\":\"org\",\"access\":\"read\"}]}"),
        DYNO_EINVAL);
    assert_int_equal(
        parse_rc("{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"shares\":[{\"principal\":\"lab/../x\","
                 "\"kind\":\"org\",\"access\":\"read\"}]}"),
        DYNO_EINVAL);
    assert_int_equal(parse_rc("{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"shares\":[{\"principal\":\"\","
                              "\"kind\":\"user\",\"access\":\"read\"}]}"),
                     DYNO_EINVAL);
    assert_int_equal(
        parse_rc("{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"shares\":[{\"principal\":\"b+\","
                 "\"kind\":\"user\",\"access\":\"read\"}]}"),
        DYNO_EINVAL);
    /* an embedded NUL in a name must not truncate it into a valid one */
    const char nul[] = "{\"catalog\":\"alice/x\\u0000/y\",\"owner\":\"alice\"}";
    assert_int_equal(parse_rc(nul), DYNO_EINVAL);
    assert_int_equal(parse_rc("{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"shares\":[{\"principal\":"
                              "\"bob\\u0000x\",\"kind\":\"user\",\"access\":\"read\"}]}"),
                     DYNO_EINVAL);
    /* an escaped backslash followed by "u0000" is plain text, not a NUL */
    assert_int_equal(parse_rc("{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"note\":\"\\\\u0000\"}"), 0);
    /* unknown members are ignored, null shares mean none */
    p = parse("{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"shares\":null,\"k\":3}");
    assert_int_equal(p->nshares, 0);
    dyno_acl_policy_free(p);
}

static void test_policy_parse_huge(void **state)
{
    (void)state;
    size_t cap = DYNO_ACL_POLICY_MAX * 2, len = 0;
    char *buf = malloc(cap);
    struct dyno_acl_policy *p = NULL;

    assert_non_null(buf);
    /* exactly DYNO_ACL_SHARES_MAX shares parse */
    len = (size_t)snprintf(buf, cap, "{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"shares\":[");
    for (int i = 0; i < DYNO_ACL_SHARES_MAX; i++)
        len += (size_t)snprintf(buf + len, cap - len,
                                "%s{\"principal\":\"u%d\",\"kind\":\"user\",\"access\":\"read\"}",
                                i ? "," : "", i);
    len += (size_t)snprintf(buf + len, cap - len, "]}");
    assert_int_equal(dyno_acl_policy_parse(buf, len, &p), 0);
    assert_int_equal(p->nshares, DYNO_ACL_SHARES_MAX);
    struct dyno_acl_principal last = {"u1023", "", false, false};
    assert_true(dyno_acl_decide(p, &last, DYNO_ACL_READ));
    dyno_acl_policy_free(p);
    /* one more is too many */
    len -= 2;
    len += (size_t)snprintf(buf + len, cap - len,
                            ",{\"principal\":\"z\",\"kind\":\"user\",\"access\":\"read\"}]}");
    assert_int_equal(dyno_acl_policy_parse(buf, len, &p), DYNO_ETOOBIG);
    assert_null(p);
    /* over the byte cap, whatever the content */
    memset(buf, ' ', cap);
    buf[0] = '{';
    assert_int_equal(dyno_acl_policy_parse(buf, DYNO_ACL_POLICY_MAX + 1, &p), DYNO_ETOOBIG);
    /* deep nesting */
    for (size_t i = 0; i < 100000; i++)
        buf[i] = '[';
    assert_int_not_equal(dyno_acl_policy_parse(buf, 100000, &p), 0);
    assert_null(p);
    /* an overlong principal */
    len = (size_t)snprintf(buf, cap,
                           "{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"shares\":[{\"principal\":\"");
    memset(buf + len, 'a', 5000);
    len += 5000;
    len += (size_t)snprintf(buf + len, cap - len, "\",\"kind\":\"org\",\"access\":\"read\"}]}");
    assert_int_equal(dyno_acl_policy_parse(buf, len, &p), DYNO_EINVAL);
    free(buf);
}

static struct dyno_acl_table *table_with(const char *const *docs, size_t n)
{
    struct dyno_acl_table *t = NULL;
    assert_int_equal(dyno_acl_table_new(&t), 0);
    for (size_t i = 0; i < n; i++) {
        struct dyno_acl_policy *p = parse(docs[i]);
        char cat[DYNO_CATALOG_MAX + 1];
        strcpy(cat, p->catalog);
        dyno_acl_policy_free(p);
        assert_int_equal(dyno_acl_table_update(t, cat, docs[i], strlen(docs[i])), 0);
    }
    return t;
}

static void test_table(void **state)
{
    (void)state;
    static const char *const docs[] = {
        POLICY_X,
        "{\"catalog\":\"alice/a\",\"owner\":\"alice\"}",
        "{\"catalog\":\"bob/z\",\"owner\":\"bob\",\"public\":true}",
        "{\"catalog\":\"alice/x-2\",\"owner\":\"alice\"}",
    };
    struct dyno_acl_table *t = table_with(docs, 4);
    const char *pub = "{\"catalog\":\"alice/x\",\"owner\":\"alice\",\"public\":true}";

    assert_int_equal(dyno_acl_table_count(t), 4);
    assert_non_null(dyno_acl_table_get(t, "alice/x"));
    assert_non_null(dyno_acl_table_get(t, "alice/a"));
    assert_null(dyno_acl_table_get(t, "alice/y"));
    assert_null(dyno_acl_table_get(t, NULL));
    assert_false(dyno_acl_table_get(t, "alice/x")->public);

    /* replace */
    assert_int_equal(dyno_acl_table_update(t, "alice/x", pub, strlen(pub)), 0);
    assert_int_equal(dyno_acl_table_count(t), 4);
    assert_true(dyno_acl_table_get(t, "alice/x")->public);
    /* a bad document changes nothing */
    assert_int_equal(dyno_acl_table_update(t, "alice/x", "{", 1), DYNO_EINVAL);
    assert_true(dyno_acl_table_get(t, "alice/x")->public);
    /* the document must be about the catalog of the topic */
    assert_int_equal(dyno_acl_table_update(t, "alice/y", pub, strlen(pub)), DYNO_EINVAL);
    assert_null(dyno_acl_table_get(t, "alice/y"));
    assert_int_equal(dyno_acl_table_update(t, "alice/../y", pub, strlen(pub)), DYNO_EINVAL);
    assert_int_equal(dyno_acl_table_update(NULL, "alice/x", pub, strlen(pub)), DYNO_EINVAL);

    /* apply: the feed topic */
    assert_int_equal(dyno_acl_table_apply(t, "dyno/v1/acl/alice/x", "", 0), 0);
    assert_null(dyno_acl_table_get(t, "alice/x"));
    assert_int_equal(dyno_acl_table_count(t), 3);
    assert_int_equal(dyno_acl_table_apply(t, "dyno/v1/acl/alice/x", "", 0), 0); /* idempotent */
    assert_int_equal(dyno_acl_table_apply(t, "dyno/v1/acl/alice/x", pub, strlen(pub)), 0);
    assert_non_null(dyno_acl_table_get(t, "alice/x"));
    assert_int_equal(dyno_acl_table_apply(t, "dyno/v1/aclx/alice/x", pub, strlen(pub)), DYNO_EINVAL);
    assert_int_equal(dyno_acl_table_apply(t, "dyno/v1/acl/", pub, strlen(pub)), DYNO_EINVAL);
    assert_int_equal(dyno_acl_table_apply(t, "dyno/v1/acl/alice/x/", pub, strlen(pub)), DYNO_EINVAL);
    assert_int_equal(dyno_acl_table_apply(t, NULL, pub, strlen(pub)), DYNO_EINVAL);

    /* remove */
    assert_int_equal(dyno_acl_table_remove(t, "bob/z"), 0);
    assert_int_equal(dyno_acl_table_remove(t, "bob/z"), DYNO_ENOTFOUND);
    assert_int_equal(dyno_acl_table_count(t), 3);
    dyno_acl_table_free(t);
    dyno_acl_table_free(NULL);

    /* many catalogs, inserted out of order, all found */
    assert_int_equal(dyno_acl_table_new(&t), 0);
    char doc[256], cat[64];
    for (int i = 0; i < 2000; i++) {
        int k = (i * 7919) % 2000;
        snprintf(cat, sizeof(cat), "u%d/c%d", k % 13, k);
        int n = snprintf(doc, sizeof(doc), "{\"catalog\":\"%s\",\"owner\":\"u%d\"}", cat, k % 13);
        assert_int_equal(dyno_acl_table_update(t, cat, doc, (size_t)n), 0);
    }
    assert_int_equal(dyno_acl_table_count(t), 2000);
    for (int k = 0; k < 2000; k++) {
        snprintf(cat, sizeof(cat), "u%d/c%d", k % 13, k);
        assert_non_null(dyno_acl_table_get(t, cat));
    }
    dyno_acl_table_free(t);
}

#define ALLOW(who, topic, op) assert_int_equal(dyno_acl_table_check_topic(t, who, topic, op), DYNO_ACL_ALLOW)
#define DENY(who, topic, op) assert_int_equal(dyno_acl_table_check_topic(t, who, topic, op), DYNO_ACL_DENY)
#define SUB DYNO_ACL_OP_SUBSCRIBE
#define RD DYNO_ACL_OP_READ
#define WR DYNO_ACL_OP_WRITE

static struct dyno_acl_table *topic_table(void)
{
    static const char *const docs[] = {
        POLICY_X,
        ("{\"catalog\":\"alice/x/"
         "deep\",\"owner\":\"alice\",\"shares\":[{\"principal\":\"carol\",\"kind\":\"user\","
         "\"access\":\"read\"}]}"),
        "{\"catalog\":\"alice/y\",\"owner\":\"alice\"}",
        "{\"catalog\":\"bob/pub\",\"owner\":\"bob\",\"public\":true}",
    };
    return table_with(docs, 4);
}

static void test_topics_service(void **state)
{
    (void)state;
    struct dyno_acl_table *t = topic_table();
    static const char *const ok[] = {
        "dyno/v1/rpc/metadata/object.begin",
        "dyno/v1/reply/gateway-gw1",
        "dyno/v1/agents/container/c1/status",
        "dyno/v1/events/alice/x",
        "dyno/v1/ingest/alice/x",
        "dyno/v1/auth/revoked",
        "dyno/v1/acl/alice/x",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ALLOW(&svc, ok[i], SUB);
        ALLOW(&svc, ok[i], RD);
        ALLOW(&svc, ok[i], WR);
    }
    ALLOW(&svc, "$share/metadata/dyno/v1/rpc/metadata/+", SUB);
    ALLOW(&svc, "dyno/v1/agents/container/+/status", SUB);
    ALLOW(&svc, "dyno/v1/events/#", SUB);
    ALLOW(&svc, "dyno/v1/acl/#", SUB);
    DENY(&svc, "dyno/v1/agents/container/+/status", WR); /* wildcards in a topic name */
    DENY(&svc, "dyno/v1/#", SUB);
    DENY(&svc, "dyno/v1/+/x", SUB);
    DENY(&svc, "#", SUB);
    DENY(&svc, "$SYS/broker/uptime", SUB);
    DENY(&svc, "dyno/v2/rpc/x", WR);
    DENY(&svc, "dyno/v1/other/x", WR);
    DENY(&svc, "dyno/v1/rpc", WR);
    DENY(&svc, "other/topic", WR);
    DENY(&svc, "$share/g/dyno/v1/rpc/x", WR); /* $share only in filters */
    DENY(&svc, "$share//dyno/v1/rpc/x", SUB);
    DENY(&svc, "$share/g", SUB);
    DENY(&svc, "dyno/v1/rpc/metadata/", WR);
    dyno_acl_table_free(t);
}

static void test_topics_user_events(void **state)
{
    (void)state;
    struct dyno_acl_table *t = topic_table();

    /* exact catalogs */
    ALLOW(&alice, "dyno/v1/events/alice/x", SUB);
    ALLOW(&alice, "dyno/v1/events/alice/x", RD);
    ALLOW(&bob, "dyno/v1/events/alice/x", SUB);
    ALLOW(&bob, "dyno/v1/events/alice/x", RD);
    ALLOW(&lab_ct, "dyno/v1/events/alice/x", RD);
    DENY(&carol, "dyno/v1/events/alice/x", SUB);
    DENY(&carol, "dyno/v1/events/alice/x", RD);
    DENY(&bob, "dyno/v1/events/alice/y", SUB);
    DENY(&bob, "dyno/v1/events/alice/y", RD);
    ALLOW(&carol, "dyno/v1/events/bob/pub", RD); /* public */
    ALLOW(&root, "dyno/v1/events/alice/y", RD);  /* admin */
    /* sub-catalogs are their own catalogs */
    DENY(&bob, "dyno/v1/events/alice/x/deep", RD);
    ALLOW(&carol, "dyno/v1/events/alice/x/deep", RD);
    /* unknown catalogs: denied even to the would-be owner */
    DENY(&alice, "dyno/v1/events/alice/nothing", SUB);
    DENY(&alice, "dyno/v1/events/alice/nothing", RD);
    /* users never write events */
    DENY(&alice, "dyno/v1/events/alice/x", WR);

    /* wildcards under a named catalog */
    ALLOW(&alice, "dyno/v1/events/alice/x/#", SUB);
    ALLOW(&bob, "dyno/v1/events/alice/x/#", SUB);
    ALLOW(&bob, "dyno/v1/events/alice/x/+", SUB);
    ALLOW(&carol, "dyno/v1/events/alice/x/#", SUB); /* may read alice/x/deep */
    DENY(&bob, "dyno/v1/events/alice/y/#", SUB);
    DENY(&dave, "dyno/v1/events/alice/nothing/#", SUB);
    ALLOW(&bob, "$share/g/dyno/v1/events/alice/x", SUB);
    DENY(&carol, "$share/g/dyno/v1/events/alice/y", SUB);
    /* wildcards over catalogs nobody can enumerate: subscribe allowed, READ decides */
    ALLOW(&carol, "dyno/v1/events/#", SUB);
    ALLOW(&carol, "dyno/v1/events/alice/#", SUB);
    ALLOW(&carol, "dyno/v1/events/+/x", SUB);
    ALLOW(&carol, "dyno/v1/events/alice/+", SUB);
    DENY(&carol, "dyno/v1/events/alice/x", RD);

    /* hostile filters */
    DENY(&alice, "dyno/v1/events/alice/x/#/y", SUB);
    DENY(&alice, "dyno/v1/events/alice/x#", SUB);
    DENY(&alice, "dyno/v1/events/alice/x+", SUB);
    DENY(&alice, "dyno/v1/events/alice//x", SUB);
    DENY(&alice, "dyno/v1/events/alice/x/", SUB);
    DENY(&alice, "dyno/v1/events/alice/x/", RD);
    DENY(&alice, "/dyno/v1/events/alice/x", RD);
    DENY(&alice, "dyno/v1/events/alice/../alice/x", RD);
    DENY(&alice, "dyno/v1/events/alice/./x", RD);
    DENY(&alice, "dyno/v1/events/alice/x/..", SUB);
    DENY(&alice, "dyno/v1/events/alice/x\xff", RD);
    DENY(&alice, "dyno/v1/events/alice/caf\xc3\xa9", RD);
    DENY(&alice, "dyno/v1/events/alice/x\n", RD);
    DENY(&alice, "dyno/v1/events/alice/+", RD); /* wildcards in a topic name */
    DENY(&alice, "dyno/v1/events/alice/#", RD);
    DENY(&alice, "dyno/v1/events", SUB);
    DENY(&alice, "dyno/v1/events/", SUB);
    DENY(&alice, "", SUB);
    DENY(&alice, NULL, SUB);
    DENY(&alice, "dyno/v1/events/alice/x", (enum dyno_acl_op)0);
    assert_int_equal(dyno_acl_table_check_topic(NULL, &alice, "dyno/v1/events/alice/x", RD), DYNO_ACL_DENY);
    assert_int_equal(dyno_acl_table_check_topic(t, NULL, "dyno/v1/events/alice/x", RD), DYNO_ACL_DENY);
    dyno_acl_table_free(t);
}

static void test_topics_user_other(void **state)
{
    (void)state;
    struct dyno_acl_table *t = topic_table();

    /* ingest: write share or better */
    ALLOW(&alice, "dyno/v1/ingest/alice/x", WR);
    ALLOW(&dave, "dyno/v1/ingest/alice/x", WR);
    ALLOW(&lab_ct, "dyno/v1/ingest/alice/x", WR);
    DENY(&bob, "dyno/v1/ingest/alice/x", WR);
    DENY(&carol, "dyno/v1/ingest/alice/x", WR);
    DENY(&carol, "dyno/v1/ingest/bob/pub", WR); /* public is read-only */
    DENY(&alice, "dyno/v1/ingest/alice/nothing", WR);
    DENY(&alice, "dyno/v1/ingest/alice/x", SUB);
    DENY(&alice, "dyno/v1/ingest/alice/x", RD);
    DENY(&alice, "dyno/v1/ingest/alice/#", WR);
    DENY(&alice, "dyno/v1/ingest/alice/x/#", WR);
    DENY(&alice, "dyno/v1/ingest/alice", WR);
    DENY(&alice, "dyno/v1/ingest/alice//x", WR);

    /* reply: their own tree only */
    ALLOW(&alice, "dyno/v1/reply/alice", SUB);
    ALLOW(&alice, "dyno/v1/reply/alice/#", SUB);
    ALLOW(&alice, "dyno/v1/reply/alice/r1/+", SUB);
    ALLOW(&alice, "dyno/v1/reply/alice/r1", RD);
    ALLOW(&alice, "dyno/v1/reply/alice", RD);
    DENY(&alice, "dyno/v1/reply/alice/r1", WR);
    DENY(&alice, "dyno/v1/reply/bob/#", SUB);
    DENY(&alice, "dyno/v1/reply/bob", RD);
    DENY(&alice, "dyno/v1/reply/+", SUB);
    DENY(&alice, "dyno/v1/reply/#", SUB);
    DENY(&alice, "dyno/v1/reply/alicex/#", SUB);

    /* everything else */
    DENY(&alice, "dyno/v1/rpc/metadata/object.begin", WR);
    DENY(&root, "dyno/v1/rpc/metadata/object.begin", WR);
    DENY(&alice, "dyno/v1/rpc/#", SUB);
    DENY(&alice, "dyno/v1/agents/container/+/status", SUB);
    DENY(&alice, "dyno/v1/auth/revoked", WR);
    DENY(&alice, "dyno/v1/auth/revoked", SUB);
    DENY(&alice, "dyno/v1/acl/alice/x", WR);
    DENY(&alice, "dyno/v1/acl/#", SUB);
    DENY(&alice, "#", SUB);
    DENY(&alice, "$SYS/#", SUB);
    DENY(&alice, "alice/x", WR);

    /* sizes: levels and bytes */
    char big[DYNO_ACL_TOPIC_MAX + 64];
    strcpy(big, "dyno/v1/reply/alice");
    while (strlen(big) + 4 < DYNO_ACL_TOPIC_MAX)
        strcat(big, "/a");
    DENY(&alice, big, RD);                                      /* far too deep */
    strcpy(big, "dyno/v1/reply/alice/a/b/c/d/e/f/g/h/i/j/k/l"); /* 16 levels */
    ALLOW(&alice, big, RD);
    strcat(big, "/m");
    DENY(&alice, big, RD);
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "dyno/v1/reply/alice/", 20);
    DENY(&alice, big, RD);
    /* a 9-level catalog is not a catalog */
    static const char *const d[] = {"{\"catalog\":\"alice/1/2/3/4/5/6/7/8\",\"owner\":\"alice\"}"};
    dyno_acl_table_free(t);
    t = table_with(d, 1);
    ALLOW(&alice, "dyno/v1/events/alice/1/2/3/4/5/6/7/8", RD);
    DENY(&alice, "dyno/v1/events/alice/1/2/3/4/5/6/7/8/9", RD);
    ALLOW(&alice, "dyno/v1/events/alice/1/2/3/4/5/6/7/8/#", SUB);
    DENY(&alice, "dyno/v1/events/alice/1/2/3/4/5/6/7/8/9/#", SUB);
    dyno_acl_table_free(t);
}

static void test_names(void **state)
{
    (void)state;
    char s[DYNO_ACL_CLIENT_ID_MAX + 2];

    assert_true(dyno_acl_valid_client_id("alice"));
    assert_true(dyno_acl_valid_client_id("mosq-sub|1234-host"));
    assert_true(dyno_acl_valid_client_id("caf\xc3\xa9"));
    assert_false(dyno_acl_valid_client_id(NULL));
    assert_false(dyno_acl_valid_client_id(""));
    assert_false(dyno_acl_valid_client_id("a+b"));
    assert_false(dyno_acl_valid_client_id("a#"));
    assert_false(dyno_acl_valid_client_id("a/b"));
    assert_false(dyno_acl_valid_client_id("a\\b"));
    assert_false(dyno_acl_valid_client_id("a\x01"));
    assert_false(dyno_acl_valid_client_id("\xff\xfe"));
    assert_false(dyno_acl_valid_client_id("\xc0\xaf"));     /* overlong '/' */
    assert_false(dyno_acl_valid_client_id("\xed\xa0\x80")); /* surrogate */
    memset(s, 'x', DYNO_ACL_CLIENT_ID_MAX);
    s[DYNO_ACL_CLIENT_ID_MAX] = '\0';
    assert_true(dyno_acl_valid_client_id(s));
    s[DYNO_ACL_CLIENT_ID_MAX] = 'x';
    s[DYNO_ACL_CLIENT_ID_MAX + 1] = '\0';
    assert_false(dyno_acl_valid_client_id(s));

    assert_true(dyno_acl_valid_service_name("container-c1"));
    assert_true(dyno_acl_valid_service_name("gateway-gw1"));
    assert_true(dyno_acl_valid_service_name("metadata-md-1"));
    assert_false(dyno_acl_valid_service_name("container"));
    assert_false(dyno_acl_valid_service_name("-c1"));
    assert_false(dyno_acl_valid_service_name("container-"));
    assert_false(dyno_acl_valid_service_name("Container-c1"));
    assert_false(dyno_acl_valid_service_name("cont4iner-c1"));
    assert_false(dyno_acl_valid_service_name("container-c/1"));
    assert_false(dyno_acl_valid_service_name("container-c+"));
    assert_false(dyno_acl_valid_service_name(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_org_covers),
        cmocka_unit_test(test_policy_parse_bad),
        cmocka_unit_test(test_policy_parse_huge),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_topics_service),
        cmocka_unit_test(test_topics_user_events),
        cmocka_unit_test(test_topics_user_other),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
