/* Unit tests of lib/names.c: segments, catalogs, object names (UTF-8), keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dynostore/error.h"
#include "names.h"

static void test_segments(void **state)
{
    char s[DYNO_SEG_MAX + 2];
    (void)state;
    assert_true(dyno_valid_segment("alice"));
    assert_true(dyno_valid_segment("A-Z_a.z-09"));
    assert_true(dyno_valid_segment("a"));
    assert_true(dyno_valid_segment("..."));
    assert_true(dyno_valid_segment(".hidden"));
    assert_false(dyno_valid_segment(NULL));
    assert_false(dyno_valid_segment(""));
    assert_false(dyno_valid_segment("."));
    assert_false(dyno_valid_segment(".."));
    assert_false(dyno_valid_segment("a/b"));
    assert_false(dyno_valid_segment("a b"));
    assert_false(dyno_valid_segment("a+b")); /* MQTT wildcards */
    assert_false(dyno_valid_segment("a#"));
    assert_false(dyno_valid_segment("caf\xc3\xa9"));
    assert_false(dyno_valid_segment("a\\b"));
    assert_false(dyno_valid_segment("a\nb"));
    memset(s, 'x', DYNO_SEG_MAX);
    s[DYNO_SEG_MAX] = '\0';
    assert_true(dyno_valid_segment(s));
    s[DYNO_SEG_MAX] = 'x';
    s[DYNO_SEG_MAX + 1] = '\0';
    assert_false(dyno_valid_segment(s));
}

/* Builds "owner/s1/.../s<depth>" into buf. */
static void make_catalog(char *buf, size_t cap, int depth, size_t seglen)
{
    size_t off = 0;
    memset(buf, 0, cap);
    memcpy(buf, "owner", 5);
    off = 5;
    for (int d = 0; d < depth; d++) {
        buf[off++] = '/';
        memset(buf + off, 'a' + d, seglen);
        off += seglen;
    }
    assert_true(off < cap);
}

static void test_catalogs(void **state)
{
    char buf[2048];
    (void)state;
    assert_true(dyno_valid_catalog("alice/projects"));
    assert_true(dyno_valid_catalog("alice/projects/ct-scans"));
    assert_true(dyno_valid_catalog("a.b/c_d/e-f"));
    assert_false(dyno_valid_catalog(NULL));
    assert_false(dyno_valid_catalog(""));
    assert_false(dyno_valid_catalog("alice")); /* owner alone is not a catalog */
    assert_false(dyno_valid_catalog("alice/"));
    assert_false(dyno_valid_catalog("/alice/x"));
    assert_false(dyno_valid_catalog("alice//x"));
    assert_false(dyno_valid_catalog("alice/x/"));
    assert_false(dyno_valid_catalog("alice/../bob"));
    assert_false(dyno_valid_catalog("alice/./x"));
    assert_false(dyno_valid_catalog("../alice/x"));
    assert_false(dyno_valid_catalog("alice/x/.."));
    assert_false(dyno_valid_catalog("alice/+"));
    assert_false(dyno_valid_catalog("alice/#"));
    assert_false(dyno_valid_catalog("alice/a b"));
    assert_false(dyno_valid_catalog("alice\\x"));
    /* Depth 1..8 after the owner; 9 is refused. */
    for (int depth = 1; depth <= DYNO_DEPTH_MAX; depth++) {
        make_catalog(buf, sizeof(buf), depth, 3);
        assert_true(dyno_valid_catalog(buf));
    }
    make_catalog(buf, sizeof(buf), DYNO_DEPTH_MAX + 1, 3);
    assert_false(dyno_valid_catalog(buf));
    /* The longest valid catalog fits DYNO_CATALOG_MAX; a longer segment does not pass. */
    memset(buf, 'o', DYNO_SEG_MAX);
    size_t off = DYNO_SEG_MAX;
    for (int d = 0; d < DYNO_DEPTH_MAX; d++) {
        buf[off++] = '/';
        memset(buf + off, 'x', DYNO_SEG_MAX);
        off += DYNO_SEG_MAX;
    }
    buf[off] = '\0';
    assert_true(off <= DYNO_CATALOG_MAX);
    assert_true(dyno_valid_catalog(buf));
    make_catalog(buf, sizeof(buf), 2, DYNO_SEG_MAX + 1);
    assert_false(dyno_valid_catalog(buf));
}

static void test_catalog_owner(void **state)
{
    char owner[DYNO_SEG_MAX + 1];
    char tiny[3];
    (void)state;
    assert_int_equal(dyno_catalog_owner("alice/projects/x", owner, sizeof(owner)), 0);
    assert_string_equal(owner, "alice");
    assert_int_equal(dyno_catalog_owner("bob/a", owner, sizeof(owner)), 0);
    assert_string_equal(owner, "bob");
    assert_int_equal(dyno_catalog_owner("alice", owner, sizeof(owner)), DYNO_EINVAL);
    assert_int_equal(dyno_catalog_owner("alice/..", owner, sizeof(owner)), DYNO_EINVAL);
    assert_int_equal(dyno_catalog_owner(NULL, owner, sizeof(owner)), DYNO_EINVAL);
    assert_int_equal(dyno_catalog_owner("alice/x", tiny, sizeof(tiny)), DYNO_EINVAL);
    assert_int_equal(dyno_catalog_owner("al/x", tiny, sizeof(tiny)), 0);
    assert_string_equal(tiny, "al");
}

static void test_names_valid(void **state)
{
    char s[DYNO_NAME_MAX + 2];
    (void)state;
    assert_true(dyno_valid_name("scan-001.tiff"));
    assert_true(dyno_valid_name("a"));
    assert_true(dyno_valid_name("with space and #+? chars"));
    assert_true(dyno_valid_name("..."));
    /* S3 keys (issue 14): '/' between segments, empty segments, a trailing '/' */
    assert_true(dyno_valid_name("a/b"));
    assert_true(dyno_valid_name("photos/2026/a.jpg"));
    assert_true(dyno_valid_name("a//b"));
    assert_true(dyno_valid_name("dir/"));
    assert_true(dyno_valid_name("a/.../b"));
    assert_true(dyno_valid_name(".hidden"));
    assert_true(dyno_valid_name("caf\xc3\xa9"));      /* U+00E9 */
    assert_true(dyno_valid_name("\xc2\xa0"));         /* U+00A0, first after C1 */
    assert_true(dyno_valid_name("\xe2\x82\xac"));     /* U+20AC */
    assert_true(dyno_valid_name("\xed\x9f\xbf"));     /* U+D7FF, below surrogates */
    assert_true(dyno_valid_name("\xee\x80\x80"));     /* U+E000, above surrogates */
    assert_true(dyno_valid_name("\xef\xbf\xbd"));     /* U+FFFD */
    assert_true(dyno_valid_name("\xf0\x9f\x98\x80")); /* U+1F600 */
    assert_true(dyno_valid_name("\xf4\x8f\xbf\xbf")); /* U+10FFFF */
    memset(s, 'n', DYNO_NAME_MAX);
    s[DYNO_NAME_MAX] = '\0';
    assert_true(dyno_valid_name(s));
    s[DYNO_NAME_MAX] = 'n';
    s[DYNO_NAME_MAX + 1] = '\0';
    assert_false(dyno_valid_name(s));
}

static void test_names_invalid(void **state)
{
    char s[4];
    (void)state;
    assert_false(dyno_valid_name(NULL));
    assert_false(dyno_valid_name(""));
    assert_false(dyno_valid_name("."));
    assert_false(dyno_valid_name(".."));
    assert_false(dyno_valid_name("/"));
    assert_false(dyno_valid_name("/a"));
    assert_false(dyno_valid_name("../etc/passwd"));
    assert_false(dyno_valid_name("a/../../etc"));
    assert_false(dyno_valid_name("a/./b"));
    assert_false(dyno_valid_name("a/.."));
    /* the plain rule (client ids, mirror files) refuses every '/' */
    assert_false(dyno_valid_plain_name("a/b"));
    assert_false(dyno_valid_plain_name(".."));
    assert_false(dyno_valid_plain_name("a\\b"));
    assert_true(dyno_valid_plain_name("a.b"));
    assert_false(dyno_valid_name("a\\b"));
    /* Every C0 control, DEL, and C1 controls. */
    for (int c = 1; c < 0x20; c++) {
        s[0] = 'a';
        s[1] = (char)c;
        s[2] = '\0';
        assert_false(dyno_valid_name(s));
    }
    assert_false(dyno_valid_name("a\x7f"));
    assert_false(dyno_valid_name("\xc2\x80"));
    assert_false(dyno_valid_name("\xc2\x9f"));
    /* Bad UTF-8. */
    assert_false(dyno_valid_name("\x80")); /* lone continuation */
    assert_false(dyno_valid_name("a\xbf"));
    assert_false(dyno_valid_name("\xc3")); /* truncated */
    assert_false(dyno_valid_name("\xe2\x82"));
    assert_false(dyno_valid_name("\xf0\x9f\x98"));
    assert_false(dyno_valid_name("\xc3(a"));           /* bad continuation */
    assert_false(dyno_valid_name("\xc0\xaf"));         /* overlong '/' */
    assert_false(dyno_valid_name("\xc1\xbf"));         /* overlong */
    assert_false(dyno_valid_name("\xe0\x80\xaf"));     /* overlong '/', 3 bytes */
    assert_false(dyno_valid_name("\xe0\x9f\xbf"));     /* overlong U+07FF */
    assert_false(dyno_valid_name("\xf0\x80\x80\xaf")); /* overlong '/', 4 bytes */
    assert_false(dyno_valid_name("\xf0\x8f\xbf\xbf")); /* overlong U+FFFF */
    assert_false(dyno_valid_name("\xed\xa0\x80"));     /* U+D800 surrogate */
    assert_false(dyno_valid_name("\xed\xbf\xbf"));     /* U+DFFF surrogate */
    assert_false(dyno_valid_name("\xf4\x90\x80\x80")); /* U+110000 */
    assert_false(dyno_valid_name("\xf5\x80\x80\x80"));
    assert_false(dyno_valid_name("\xf8\x88\x80\x80\x80")); /* 5-byte form */
    assert_false(dyno_valid_name("\xfe"));
    assert_false(dyno_valid_name("\xff"));
    /* A 2-byte character may not be cut by the length limit. */
    char longname[DYNO_NAME_MAX + 2];
    memset(longname, 'n', DYNO_NAME_MAX - 1);
    longname[DYNO_NAME_MAX - 1] = '\xc3';
    longname[DYNO_NAME_MAX] = '\xa9';
    longname[DYNO_NAME_MAX + 1] = '\0';
    assert_false(dyno_valid_name(longname));
}

/* A listing's prefix or delimiter: text that need not be a name ('/', "." allowed). */
static void test_text(void **state)
{
    (void)state;
    assert_true(dyno_valid_text("a/", 10));
    assert_true(dyno_valid_text(".", 10));
    assert_true(dyno_valid_text("\xc3\xa9t\xc3\xa9/", 10));
    assert_false(dyno_valid_text("", 10));
    assert_false(dyno_valid_text(NULL, 10));
    assert_false(dyno_valid_text("abcdef", 5));
    assert_false(dyno_valid_text("a\x01", 10));
    assert_false(dyno_valid_text("\xff", 10));
    assert_false(dyno_valid_text("\xc3", 10));
}

static void test_keys(void **state)
{
    char k1[DYNO_KEY_LEN + 1], k2[DYNO_KEY_LEN + 1];
    (void)state;
    assert_true(dyno_valid_key("0123456789abcdef0123456789abcdef"));
    assert_false(dyno_valid_key(NULL));
    assert_false(dyno_valid_key(""));
    assert_false(dyno_valid_key("0123456789abcdef0123456789abcde"));   /* 31 */
    assert_false(dyno_valid_key("0123456789abcdef0123456789abcdef0")); /* 33 */
    assert_false(dyno_valid_key("0123456789ABCDEF0123456789abcdef"));  /* uppercase */
    assert_false(dyno_valid_key("0123456789abcdef0123456789abcdeg"));
    assert_false(dyno_valid_key("0123456789abcdef0123456789abcd/."));
    for (int i = 0; i < 100; i++) {
        assert_int_equal(dyno_key_new(k1), 0);
        assert_int_equal(dyno_key_new(k2), 0);
        assert_int_equal(strlen(k1), DYNO_KEY_LEN);
        assert_true(dyno_valid_key(k1));
        assert_true(dyno_valid_key(k2));
        assert_string_not_equal(k1, k2);
    }
}

/* The one binary search of the sorted name tables: a hit gives its index, a miss where it
 * goes (before, between, after), by the member at its offset, in an empty table too. */
static void test_name_search(void **state)
{
    struct row {
        int pad;
        char name[8];
    } rows[] = {{1, "b"}, {2, "d"}, {3, "f"}, {4, "h"}};
    bool found = false;
    (void)state;
    size_t off = offsetof(struct row, name), n = sizeof(rows) / sizeof(rows[0]);
    assert_int_equal(dyno_name_search(rows, n, sizeof(rows[0]), off, "f", &found), 2);
    assert_true(found);
    assert_int_equal(dyno_name_search(rows, n, sizeof(rows[0]), off, "b", &found), 0);
    assert_true(found);
    assert_int_equal(dyno_name_search(rows, n, sizeof(rows[0]), off, "a", &found), 0);
    assert_false(found);
    assert_int_equal(dyno_name_search(rows, n, sizeof(rows[0]), off, "e", &found), 2);
    assert_false(found);
    assert_int_equal(dyno_name_search(rows, n, sizeof(rows[0]), off, "z", &found), 4);
    assert_false(found);
    found = true;
    assert_int_equal(dyno_name_search(rows, 0, sizeof(rows[0]), off, "b", &found), 0);
    assert_false(found);
    /* The same over a table of pointers (the ACL table, the broker's clients). */
    const struct row *ptrs[] = {&rows[0], &rows[1], &rows[2], &rows[3]};
    assert_int_equal(dyno_name_search_ptr((const void *const *)ptrs, n, off, "h", &found), 3);
    assert_true(found);
    assert_int_equal(dyno_name_search_ptr((const void *const *)ptrs, n, off, "c", &found), 1);
    assert_false(found);
    assert_int_equal(dyno_name_search_ptr((const void *const *)ptrs, 0, off, "c", &found), 0);
    assert_false(found);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segments),      cmocka_unit_test(test_catalogs),
        cmocka_unit_test(test_catalog_owner), cmocka_unit_test(test_names_valid),
        cmocka_unit_test(test_names_invalid), cmocka_unit_test(test_keys),
        cmocka_unit_test(test_text),          cmocka_unit_test(test_name_search),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
