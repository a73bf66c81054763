/* Deadlines for timed waits (clock.h). */
#include "clock.h"

void dyno_deadline_in(struct timespec *ts, clockid_t clk, int64_t ms)
{
    clock_gettime(clk, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}
