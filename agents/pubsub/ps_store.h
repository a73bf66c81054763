/*
 * The pubsub store: catalogs, shares and subscriptions in SQLite (WAL, synchronous=FULL).
 * One connection behind a mutex: catalog calls are rare next to object traffic. Inputs are
 * validated by the caller (ps_rpc.c). Results are new cJSON objects owned by the caller;
 * errors are DYNO_E* with a message in err. All functions are thread-safe.
 */
#ifndef DYNO_PS_STORE_H
#define DYNO_PS_STORE_H
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PS_LIST_MAX 10000 /* catalogs in one catalog.list answer */

struct ps_store;

int ps_store_open(const char *path, struct ps_store **out);
void ps_store_close(struct ps_store *s);

/* Creates the catalog unless it exists; either way the result is the stored row. */
int ps_store_create(struct ps_store *s, const char *path, const char *owner, bool pub, int k, int m,
                    int64_t now, cJSON **result, char *err, size_t errlen);
/* The catalog with its shares, or DYNO_ENOTFOUND. */
int ps_store_get(struct ps_store *s, const char *path, cJSON **result, char *err, size_t errlen);
/* Catalogs user owns, is shared with (directly or through org or an ancestor org), or
 * subscribes to. org may be "". */
int ps_store_list(struct ps_store *s, const char *user, const char *org, cJSON **result, char *err,
                  size_t errlen);
#endif
