/*
 * Prometheus text exposition (format 0.0.4) of a static table of metrics.
 */
#include "metrics.h"

#include <inttypes.h>

#include "dynostore/error.h"

/* HELP text escapes backslash and newline (the exposition format requires it), so a
 * help string can never break the line structure a scraper parses. */
static int metrics_append_help(struct dyno_buf *out, const char *help)
{
    int rc = 0;

    for (const char *p = help; *p != '\0' && rc == 0; p++) {
        if (*p == '\\')
            rc = dyno_buf_append(out, "\\\\", 2);
        else if (*p == '\n')
            rc = dyno_buf_append(out, "\\n", 2);
        else
            rc = dyno_buf_append(out, p, 1);
    }
    return rc;
}

int dyno_metrics_render(struct dyno_metric *m, size_t n, struct dyno_buf *out)
{
    int rc = 0;

    if (out == NULL || (m == NULL && n > 0))
        return DYNO_EINVAL;
    for (size_t i = 0; i < n && rc == 0; i++) {
        int64_t v = atomic_load(&m[i].value);

        rc = dyno_buf_printf(out, "# HELP %s ", m[i].name);
        if (rc == 0)
            rc = metrics_append_help(out, m[i].help != NULL ? m[i].help : "");
        if (rc == 0)
            rc = dyno_buf_printf(out, "\n# TYPE %s %s\n%s %" PRId64 "\n", m[i].name,
                                 m[i].type != NULL ? m[i].type : "untyped", m[i].name, v);
    }
    return rc;
}
