/* wisp_time: durations as users write them on command lines ("500ms",
 * "90s", "5m", "1.5h", "7d", "1h30m", or plain seconds): pure parsers.
 * And the monotonic clock for deadlines and timed waits of threads that
 * run off the event loop: the wall clock can jump (NTP, an operator), and
 * a timed wait against it then ends early or hours late. */
#ifndef WISP_TIME_H
#define WISP_TIME_H

#include <pthread.h>
#include <stdint.h>

#include "lib/wisp_err.h"

/* Parses |s|: one or more NUMBER UNIT pairs (units ms, s, m, h, d; numbers
 * DIGITS[.DIGITS], no signs or exponents) or a bare number of seconds.
 * Must be > 0 and at most ten years; WISP_ERR_PARSE otherwise. */
wisp_err wisp_duration_parse_seconds(double *out_seconds, const char *s) WISP_MUST_CHECK;
/* The same, rounded up to whole seconds. */
wisp_err wisp_duration_parse(int64_t *out_seconds, const char *s) WISP_MUST_CHECK;

/* Seconds on CLOCK_MONOTONIC (from an unspecified start). */
double wisp_time_monotonic(void);
/* pthread_cond_init with the condition's clock CLOCK_MONOTONIC, so that
 * wisp_time_cond_wait waits |seconds| whatever the wall clock does. */
void wisp_time_cond_init(pthread_cond_t *cv);
/* pthread_cond_timedwait for at most |seconds| (>= 0) on a condition made
 * by wisp_time_cond_init; returns its result (0, or ETIMEDOUT). */
int wisp_time_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu, double seconds);

#endif
