/*
 * Crash points (lib/crashpoint.h).
 *
 * The variable is read once, on the first pass through any point (getenv is not safe
 * against a concurrent setenv, which no agent calls). The pass counter is the one piece of
 * process-wide mutable state: a crash point is process-wide by nature, and threading a
 * context through every layer that has a point would make test-only code shape the API.
 */
#include "crashpoint.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rest.h"

#define CRASH_NAME_MAX 64

static pthread_once_t crash_once = PTHREAD_ONCE_INIT;
static char crash_name[CRASH_NAME_MAX]; /* "" when no point is armed */
static long crash_at = 1;               /* the pass that exits */
static atomic_long crash_passes;

static void crash__load(void)
{
    const char *v = getenv(DYNO_CRASH_ENV);
    if (v == NULL || *v == '\0')
        return;
    const char *at = strchr(v, '@');
    size_t len = at != NULL ? (size_t)(at - v) : strlen(v);
    if (len == 0 || len >= sizeof(crash_name))
        return; /* not a point name: stays inert, as any unmatched name would */
    if (at != NULL) {
        uint64_t n;
        if (dyno_rest_parse_u64(at + 1, &n) || n < 1 || n > LONG_MAX)
            return;
        crash_at = (long)n;
    }
    memcpy(crash_name, v, len);
    crash_name[len] = '\0';
}

void dyno_crash_point(const char *name)
{
    pthread_once(&crash_once, crash__load);
    if (crash_name[0] == '\0' || name == NULL || strcmp(name, crash_name) != 0)
        return;
    if (atomic_fetch_add(&crash_passes, 1) + 1 < crash_at)
        return;
    char line[CRASH_NAME_MAX + 64];
    int n = snprintf(line, sizeof(line), "crash point %s reached: exiting (%s)\n", name, DYNO_CRASH_ENV);
    if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* nothing to do: the exit below is the point */
    }
    _exit(DYNO_CRASH_EXIT);
}
