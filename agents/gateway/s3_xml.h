/*
 * A small XML reader for the request bodies S3 clients send (Delete, CompleteMultipartUpload;
 * s3_multidel.c, s3_mpu.c). No dependency but libc, so that a unit test and a fuzz target
 * can take it alone.
 */
#ifndef GW_S3_XML_H
#define GW_S3_XML_H
#include <stdbool.h>
#include <stddef.h>

/*
 * A pull reader over a complete document (borrowed). It knows elements, text with the five
 * entities and numeric character references, the XML declaration and comments; it refuses
 * CDATA, DOCTYPE and processing instructions elsewhere (no entity expansion, no external
 * anything). Namespaces are kept as attributes and ignored. Every end tag must name the
 * element it closes; more than S3_XML_DEPTH open elements is an error.
 */
#define S3_XML_DEPTH 8     /* elements open at once at most (S3's bodies need 3) */
#define S3_XML_NAME_MAX 63 /* an element name, bytes at most */
struct s3_xml {
    const char *p, *end;
    int depth;
    bool empty;                                   /* the element s3_xml_child returned was <x/> */
    char open[S3_XML_DEPTH][S3_XML_NAME_MAX + 1]; /* the open elements: each end tag must match */
};
void s3_xml_init(struct s3_xml *x, const char *doc, size_t len);
/* Enters the root element, which must be named root. 0 or DYNO_EINVAL. */
int s3_xml_root(struct s3_xml *x, const char *root);
/* The next child element of the current one: 1 with its name in name (cap bytes; the reader
 * is then inside it), 0 at the end of the current element (its end tag consumed: the reader
 * is back in the parent), or DYNO_EINVAL. */
int s3_xml_child(struct s3_xml *x, char *name, size_t cap);
/* The text of the element s3_xml_child just entered (entities decoded, into out of cap
 * bytes), its end tag consumed. 0, DYNO_EINVAL (markup inside, bad entity) or DYNO_ETOOBIG. */
int s3_xml_text(struct s3_xml *x, char *out, size_t cap);
/* Skips the element s3_xml_child just entered, whatever it holds. 0 or DYNO_EINVAL. */
int s3_xml_skip(struct s3_xml *x);

#endif
