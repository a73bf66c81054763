/*
 * Integrity of stored fragments (docs/protocol.md §4, §8): a cheap inspection of a fragment's
 * header and trailer (for GET /v1/fragments, the listing that metadata rebuilds and drain
 * checks use), a full verification of every record, and the scrubber thread that re-reads
 * every fragment at a bounded rate and reports corrupt ones to metadata (object.report).
 *
 * Threads: container_frag_inspect and container_frag_verify may run on any thread (MHD's
 * connection threads, the scrubber). The scrubber is one thread of its own, started and
 * stopped from main().
 */
#ifndef CONTAINER_SCRUB_H
#define CONTAINER_SCRUB_H
#include <stdbool.h>
#include <stdint.h>

#include "container.h"
#include "frag.h"

/* What a fragment says about itself. */
struct container_frag_info {
    uint64_t size; /* file bytes */
    bool hdr_ok;   /* hdr is valid (CRC, fields, id matches) */
    bool trailer_ok;
    struct dyno_frag_hdr hdr;
    struct dyno_frag_trailer trailer;
};

/*
 * Reads and checks the header and the trailer of fragment id (lib/frag.h dyno_frag_read_ends
 * over the store): their CRCs, that the header
 * names id, the end marker, and that the file size and record count match the object's
 * layout. 0 when all holds; DYNO_ECORRUPT when anything does not (info says which parts
 * could be decoded); DYNO_ENOTFOUND; DYNO_EIO.
 */
int container_frag_inspect(struct container *c, const char *id, struct container_frag_info *info);

/*
 * Reads the whole fragment through the lib/frag.h parser, as the gateway's stripe reader does
 * (dyno_frag_verify over the store: the header naming id, every record CRC, the framing, the
 * trailer). *bytes: bytes read (for the rate limit and the metrics). pace (may be NULL) is
 * called after every chunk with the bytes just read, and may sleep; returning non-zero stops
 * the read (the result is then that value). 0, DYNO_ECORRUPT, DYNO_ENOTFOUND, DYNO_EIO.
 */
int container_frag_verify(struct container *c, const char *id, int (*pace)(void *arg, uint64_t n), void *arg,
                          uint64_t *bytes);

/* Up to cap fragment ids above after (NULL or "": from the start) in id order, from one scan
 * of the store; *more says whether ids past the page exist. 0 or the scan's error. */
int container_scan_page(struct container *c, const char *after, size_t cap, char (*ids)[STORE_ID_MAX + 1],
                        size_t *n, bool *more);

/*
 * Tells metadata that fragment id failed a check of its own bytes on this container
 * (object.report {key, index, problem:"crc", container: this id}; a notification, never
 * blocks). Only for a CRC or framing mismatch of bytes read from disk: an I/O error, a
 * timeout or a client that went away is not corruption. Any thread.
 */
void container_report_corrupt(struct container *c, const char *id);

/* Starts the scrubber thread when scrub_interval > 0 (no-op otherwise). 0 or DYNO_EINTERNAL. */
int container_scrub_start(struct container *c);
/* Stops and joins the scrubber (a fragment being read is finished first). No-op if not started. */
void container_scrub_stop(struct container *c);
#endif
