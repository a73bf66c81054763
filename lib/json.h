/*
 * Small helpers over cJSON. Input from the network is size-capped before parsing.
 */
#ifndef DYNO_JSON_H
#define DYNO_JSON_H
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DYNO_JSON_MAX (1024 * 1024) /* default cap on a JSON document, bytes */

/* Parses buf[0..len) (need not be NUL-terminated). DYNO_ETOOBIG if len > max,
 * DYNO_EINVAL if not JSON. *out is the caller's (cJSON_Delete). */
int dyno_json_parse(const char *buf, size_t len, size_t max, cJSON **out);
/* Member as a string, or NULL when absent or not a string. Borrowed from obj. */
const char *dyno_json_str(const cJSON *obj, const char *name);
/* Member as an integer: DYNO_ENOTFOUND when absent, DYNO_EINVAL when not an integral number. */
int dyno_json_i64(const cJSON *obj, const char *name, int64_t *out);
/* Member as a bool, def when absent or not a bool. */
bool dyno_json_bool(const cJSON *obj, const char *name, bool def);
/* Unformatted text, caller frees with free(); NULL on ENOMEM. len may be NULL. */
char *dyno_json_print(const cJSON *obj, size_t *len);
/* Adds an int64 as a JSON number (exact up to 2^53). Returns the item or NULL. */
cJSON *dyno_json_add_i64(cJSON *obj, const char *name, int64_t v);
#endif
