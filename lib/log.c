/* logfmt lines on stderr (lib/log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Set once in main() before threads start, read-only afterwards. */
static char log_agent[64] = "dyno";
static int log_min = DYNO_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void dyno_log_init(const char *agent, int level)
{
    snprintf(log_agent, sizeof(log_agent), "%s", agent ? agent : "dyno");
    log_min = level;
}

int dyno_log_level_parse(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    if (strcmp(s, "warning") == 0)
        return DYNO_LOG_WARN;
    return -1;
}

const char *dyno_log_q(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    if (cap < 3) {
        if (cap)
            out[0] = '\0';
        return out;
    }
    out[o++] = '"';
    /* o + 6 < cap leaves room for the longest escape (4), the closing quote and the NUL, so
     * a long value is cut but always closed: a log line never runs into the next field. */
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p && o + 6 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            out[o++] = '\\';
            out[o++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *p);
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

void dyno_log(int level, const char *msg, const char *fields, ...)
{
    if (level < log_min)
        return;
    if (level < DYNO_LOG_DEBUG || level > DYNO_LOG_ERROR)
        level = DYNO_LOG_ERROR;
    char line[4096];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    int n = snprintf(line, sizeof(line), "level=%s time=%s.%03ldZ agent=%s msg=", level_names[level], when,
                     ts.tv_nsec / 1000000, log_agent);
    size_t o = n > 0 ? (size_t)n : 0;
    if (o < sizeof(line))
        o += strlen(dyno_log_q(line + o, sizeof(line) - o, msg));
    if (fields && *fields && o + 2 < sizeof(line)) {
        line[o++] = ' ';
        va_list ap;
        va_start(ap, fields);
        int m = vsnprintf(line + o, sizeof(line) - o, fields, ap);
        va_end(ap);
        if (m > 0)
            o += (size_t)m;
    }
    if (o > sizeof(line) - 2)
        o = sizeof(line) - 2;
    line[o++] = '\n';
    /* One write per line keeps lines from different threads whole. */
    ssize_t w = write(STDERR_FILENO, line, o);
    (void)w;
}
