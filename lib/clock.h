/*
 * Deadlines for timed waits: pthread_cond_timedwait wants an absolute time on the clock its
 * condition variable was made with (CLOCK_REALTIME by default, CLOCK_MONOTONIC when the
 * condattr says so), and every caller used to add milliseconds to it by hand.
 */
#ifndef DYNO_CLOCK_H
#define DYNO_CLOCK_H
#include <stdint.h>
#include <time.h>

/* Sets *ts to now on clock clk plus ms milliseconds (ms >= 0), normalised. */
void dyno_deadline_in(struct timespec *ts, clockid_t clk, int64_t ms);

#endif
