/*
 * The XML reader of S3 request bodies (agents/gateway/s3_xml.c): the documents S3 clients
 * send (DeleteObjects, CompleteMultipartUpload) as botocore and the aws CLI write them, and
 * hostile ones, which must be refused without reading past their end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../agents/gateway/s3_xml.c"

/* The keys of a <Delete> document, joined by '|' into out; the reader's result. */
static int delete_keys(const char *doc, char *out, size_t cap)
{
    struct s3_xml x;
    char name[64], key[256];
    out[0] = '\0';
    s3_xml_init(&x, doc, strlen(doc));
    int rc = s3_xml_root(&x, "Delete");
    while (rc == 0) {
        int c = s3_xml_child(&x, name, sizeof(name));
        if (c <= 0)
            return c;
        if (strcmp(name, "Object") != 0) {
            rc = s3_xml_skip(&x);
            continue;
        }
        while (rc == 0 && (c = s3_xml_child(&x, name, sizeof(name))) == 1) {
            if (strcmp(name, "Key") == 0) {
                rc = s3_xml_text(&x, key, sizeof(key));
                if (rc == 0)
                    snprintf(out + strlen(out), cap - strlen(out), "%s|", key);
            } else {
                rc = s3_xml_skip(&x);
            }
        }
        if (rc == 0 && c < 0)
            rc = c;
    }
    return rc;
}

static void test_botocore_documents(void **state)
{
    (void)state;
    char got[512];
    assert_int_equal(delete_keys("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                                 "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                                 "<Object><Key>a/b c</Key></Object><Object><Key>d</Key><VersionId>null"
                                 "</VersionId></Object><Quiet>true</Quiet></Delete>",
                                 got, sizeof(got)),
                     0);
    assert_string_equal(got, "a/b c|d|");
    /* White space and comments between elements, an empty element, attributes with '>'. */
    assert_int_equal(delete_keys("<Delete a='x>y'>\n  <!-- c -->\n  <Object>\n <Key>k</Key>\n </Object>\n"
                                 "<Object><VersionId/><Key>k2</Key></Object></Delete>",
                                 got, sizeof(got)),
                     0);
    assert_string_equal(got, "k|k2|");
    /* An empty root has no children. */
    assert_int_equal(delete_keys("<Delete/>", got, sizeof(got)), 0);
    assert_string_equal(got, "");
}

static void test_entities(void **state)
{
    (void)state;
    char got[512];
    assert_int_equal(
        delete_keys("<Delete><Object><Key>&lt;&gt;&amp;&quot;&apos;&#65;&#x42;&#xe9;&#x1F600;</Key>"
                    "</Object></Delete>",
                    got, sizeof(got)),
        0);
    assert_string_equal(got, "<>&\"'AB\xc3\xa9\xf0\x9f\x98\x80|");
}

static void test_hostile_documents_are_refused(void **state)
{
    (void)state;
    char got[512];
    const char *bad[] = {
        "",
        "<Other/>",
        "<Delete>",
        "<Delete><Object><Key>k</Key></Object>",       /* no end */
        "<Delete><Object><Key>k</Object></Delete>",    /* crossed tags */
        "<Delete><Object><Key>k</Key></Obj></Delete>", /* wrong end tag */
        "<Delete><Object><Key>&bogus;</Key></Object></Delete>",
        "<Delete><Object><Key>&#0;</Key></Object></Delete>",     /* NUL */
        "<Delete><Object><Key>&#xD800;</Key></Object></Delete>", /* a surrogate */
        "<Delete><Object><Key>&#x110000;</Key></Object></Delete>",
        "<Delete><Object><Key>&#12345678901;</Key></Object></Delete>",
        "<Delete><Object><Key><![CDATA[x]]></Key></Object></Delete>",
        "<!DOCTYPE d [<!ENTITY e \"x\">]><Delete/>",
        "<Delete><?pi x?></Delete>",
        "<Delete>text<Object/></Delete>",
        "<Delete><Object><Key>k",
        "<Delete a=\"unterminated><Object/></Delete>",
        "<Delete><!-- unterminated comment <Object/></Delete>",
        /* deeper than S3_XML_DEPTH, even inside an element that is skipped */
        "<Delete><Object><a><b><c><d><e><f><g><h>x</h></g></f></e></d></c></b></a></Object></Delete>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* A copy of exactly its length: a read past the end is an ASan error. */
        size_t n = strlen(bad[i]);
        char *doc = malloc(n + 1);
        memcpy(doc, bad[i], n + 1);
        int rc = delete_keys(doc, got, sizeof(got));
        if (rc == 0)
            fail_msg("accepted: %s", bad[i]);
        free(doc);
    }
}

static void test_text_too_long(void **state)
{
    (void)state;
    struct s3_xml x;
    char name[16], small[4];
    const char *doc = "<R><K>abcdef</K></R>";
    s3_xml_init(&x, doc, strlen(doc));
    assert_int_equal(s3_xml_root(&x, "R"), 0);
    assert_int_equal(s3_xml_child(&x, name, sizeof(name)), 1);
    assert_string_equal(name, "K");
    assert_int_equal(s3_xml_text(&x, small, sizeof(small)), DYNO_ETOOBIG);
    /* A name longer than the caller's buffer is refused too. */
    const char *doc2 = "<R><AVeryLongElementName/></R>";
    s3_xml_init(&x, doc2, strlen(doc2));
    assert_int_equal(s3_xml_root(&x, "R"), 0);
    assert_int_equal(s3_xml_child(&x, name, sizeof(name)), DYNO_EINVAL);
}

/* The reader never looks past len, even when the buffer goes on. */
static void test_bounded_by_len(void **state)
{
    (void)state;
    struct s3_xml x;
    char name[16];
    const char *doc = "<R><K>v</K></R><R>";
    s3_xml_init(&x, doc, 8); /* "<R><K>v<" */
    assert_int_equal(s3_xml_root(&x, "R"), 0);
    assert_int_equal(s3_xml_child(&x, name, sizeof(name)), 1);
    char v[8];
    assert_int_equal(s3_xml_text(&x, v, sizeof(v)), DYNO_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_botocore_documents),
        cmocka_unit_test(test_entities),
        cmocka_unit_test(test_hostile_documents_are_refused),
        cmocka_unit_test(test_text_too_long),
        cmocka_unit_test(test_bounded_by_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
