/*
 * The progress bar of large transfers: on stderr, only when stderr is a terminal, the
 * transfer is larger than CLI_PROGRESS_MIN, and neither --quiet nor --json was given.
 * Redrawn at most 10 times a second: "label [#####.....]  45%  120.0/256.0 MiB  210.3 MB/s".
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

double cli_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_progress_init(struct cli_progress *p, const struct cli_ctx *x, const char *label)
{
    memset(p, 0, sizeof(*p));
    p->enabled = !x->quiet && !x->json && isatty(STDERR_FILENO);
    p->label = label;
    p->start = cli_now_s();
}

int cli_progress_cb(void *arg, uint64_t done, uint64_t total)
{
    struct cli_progress *p = arg;
    if (!p->enabled)
        return 0;
    if (total > 0 ? total <= CLI_PROGRESS_MIN : done <= CLI_PROGRESS_MIN)
        return 0;
    double t = cli_now_s();
    bool last = total > 0 && done >= total;
    if (p->drawn && !last && t - p->last < 0.1)
        return 0;
    if (p->drawn && last && p->last < 0) /* the final state is already on screen */
        return 0;
    p->last = last ? -1.0 : t;
    double el = t - p->start;
    double mbs = el > 0 ? (double)done / 1e6 / el : 0;
    char d[32], tot[32];
    cli_human(done, d, sizeof(d));
    const char *label = p->label ? p->label : "";
    char shown[32];
    size_t ll = strlen(label);
    if (ll > 24)
        snprintf(shown, sizeof(shown), "...%s", label + ll - 21);
    else
        snprintf(shown, sizeof(shown), "%s", label);
    if (total > 0) {
        char bar[31];
        int w = 30;
        int fill = (int)((double)done / (double)total * w);
        if (fill > w)
            fill = w;
        for (int i = 0; i < w; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[w] = '\0';
        cli_human(total, tot, sizeof(tot));
        fprintf(stderr, "\r%-24s [%s] %3d%%  %s / %s  %.1f MB/s\033[K", shown, bar,
                (int)((double)done * 100.0 / (double)total), d, tot, mbs);
    } else {
        fprintf(stderr, "\r%-24s %s  %.1f MB/s\033[K", shown, d, mbs);
    }
    fflush(stderr);
    p->drawn = true;
    return 0;
}

void cli_progress_end(struct cli_progress *p)
{
    if (p->drawn) {
        fputc('\n', stderr);
        p->drawn = false;
    }
}
