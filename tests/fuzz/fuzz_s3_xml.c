/*
 * Fuzzes the XML reader of S3 request bodies (agents/gateway/s3_xml.c, which DeleteObjects
 * and CompleteMultipartUpload parse hostile bodies with), walking every document the way
 * the handlers do: children, leaf texts into small and large buffers, skips.
 *
 * Checked: return codes are the ones s3_xml.h lists; the reader never moves backwards, past
 * the end, or deeper than S3_XML_DEPTH; a text is NUL-terminated within its buffer; the walk
 * ends (each step consumes input or closes an element).
 */
#include <string.h>

#include "../../agents/gateway/s3_xml.c"
#include "fuzz.h"

static int walk(struct s3_xml *x, int level, const uint8_t *sel, size_t nsel, size_t *k)
{
    char name[S3_XML_NAME_MAX + 1], text[64];
    for (int steps = 0; steps < 100000; steps++) {
        const char *before = x->p;
        int c = s3_xml_child(x, name, sizeof(name));
        FUZZ_CHECK(c == 0 || c == 1 || c == DYNO_EINVAL);
        FUZZ_CHECK(x->p >= before && x->p <= x->end);
        FUZZ_CHECK(x->depth >= 0 && x->depth <= S3_XML_DEPTH);
        if (c <= 0)
            return c;
        uint8_t how = nsel ? sel[(*k)++ % nsel] : 0;
        int rc;
        if (how % 3 == 0) {
            size_t cap = 1 + how % sizeof(text);
            rc = s3_xml_text(x, text, cap);
            FUZZ_CHECK(rc == 0 || rc == DYNO_EINVAL || rc == DYNO_ETOOBIG);
            FUZZ_CHECK(memchr(text, '\0', cap) != NULL);
        } else if (how % 3 == 1) {
            rc = s3_xml_skip(x);
            FUZZ_CHECK(rc == 0 || rc == DYNO_EINVAL);
        } else {
            rc = level < 16 ? walk(x, level + 1, sel, nsel, k) : DYNO_EINVAL;
        }
        FUZZ_CHECK(x->p <= x->end);
        if (rc)
            return rc;
    }
    return DYNO_EINVAL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first bytes choose how to walk; the rest is the document, in a buffer of exactly
     * its size so that ASan sees any read past it. */
    size_t nsel = size > 8 ? 8 : size;
    char *doc = malloc(size - nsel + 1);
    if (!doc)
        return 0;
    memcpy(doc, data + nsel, size - nsel);
    struct s3_xml x;
    s3_xml_init(&x, doc, size - nsel);
    size_t k = 0;
    const char *roots[] = {"Delete", "CompleteMultipartUpload"};
    if (s3_xml_root(&x, roots[nsel ? data[0] & 1 : 0]) == 0)
        (void)walk(&x, 0, data, nsel, &k);
    free(doc);
    return 0;
}
