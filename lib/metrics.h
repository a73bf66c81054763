/*
 * Counters and gauges for GET /metrics (Prometheus text format 0.0.4). A metric is a
 * static table entry; updates are atomic and lock-free, so any thread may touch them.
 */
#ifndef DYNO_METRICS_H
#define DYNO_METRICS_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct dyno_metric {
    const char *name; /* dyno_<agent>_<what>[_total] */
    const char *help;
    const char *type; /* "counter" or "gauge" */
    _Atomic int64_t value;
};

static inline void dyno_metric_add(struct dyno_metric *m, int64_t v)
{
    atomic_fetch_add(&m->value, v);
}
static inline void dyno_metric_set(struct dyno_metric *m, int64_t v)
{
    atomic_store(&m->value, v);
}
/* Appends the text of n metrics to out. */
int dyno_metrics_render(struct dyno_metric *m, size_t n, struct dyno_buf *out);
#endif
