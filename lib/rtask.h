/*
 * The repair task of protocol.md §8 as JSON: metadata writes it (repair.claim hands it to a
 * worker), the gateway reads it. One encoder and one decoder, so that the two ends cannot
 * drift apart:
 *
 *   {"id", "key", "catalog", "name", "size", "sha256", "k", "m", "replica", "unit",
 *    "lease_until", "sources": [loc...], "rebuild": [loc...]}
 *   loc = {"index", "container", "url", "state"?, "size"?}
 *
 * Threads: no state; any thread.
 */
#ifndef DYNO_RTASK_H
#define DYNO_RTASK_H
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "ec.h"
#include "names.h"

#define DYNO_RTASK_LOCS_MAX (DYNO_EC_MAX_K + DYNO_EC_MAX_M) /* locations in one list at most */
#define DYNO_RTASK_URL_MAX 511                              /* bytes of a location's URL */

/* What a task says of itself and its object. Strings are NUL-terminated. */
struct dyno_rtask_head {
    char id[DYNO_KEY_LEN + 1];
    char key[DYNO_KEY_LEN + 1];
    char catalog[DYNO_CATALOG_MAX + 1];
    char name[DYNO_NAME_MAX + 1];
    char sha256[65]; /* hex */
    int64_t size;
    int k, m;
    bool replica;
    uint32_t unit;
    int64_t lease_until; /* unix seconds; 0 when not given */
};

/* One place of a fragment: a source to read, or a target to write. */
struct dyno_rtask_loc {
    int index;
    char container[DYNO_SEG_MAX + 1];
    char url[DYNO_RTASK_URL_MAX + 1];
    bool draining; /* a source on a draining container ("state": "draining") */
};

/* A new task object for h with empty "sources" and "rebuild" arrays; the caller's (cJSON_Delete).
 * NULL when out of memory. */
cJSON *dyno_rtask_new(const struct dyno_rtask_head *h);
/* Appends a location to task's list ("sources" or "rebuild"); state (NULL: none) and size
 * (< 0: none) are optional. 0, DYNO_EINVAL (no such list) or DYNO_ENOMEM. */
int dyno_rtask_add_loc(cJSON *task, const char *list, int index, const char *container, const char *url,
                       const char *state, int64_t size);
/* Reads and checks the head of task (valid id, key, catalog and name; sha256 64 hex digits;
 * size >= 0, 1 <= k <= DYNO_EC_MAX_K, 0 <= m <= DYNO_EC_MAX_M, 1 <= unit <= DYNO_FRAG_MAX_UNIT,
 * replica only with k = 1). 0 or DYNO_EPROTO. */
int dyno_rtask_parse_head(const cJSON *task, struct dyno_rtask_head *out);
/* Reads task's list ("sources" or "rebuild") into out (DYNO_RTASK_LOCS_MAX entries): every
 * index in [0, n) at most once, a valid container id, an http(s) URL that fits. 0 or
 * DYNO_EPROTO. */
int dyno_rtask_parse_locs(const cJSON *task, const char *list, int n, struct dyno_rtask_loc *out, int *count);
#endif
