/* wisp_time: durations as users write them on command lines ("500ms",
 * "90s", "5m", "1.5h", "7d", "1h30m", or plain seconds). Pure parsers. */
#ifndef WISP_TIME_H
#define WISP_TIME_H

#include <stdint.h>

#include "lib/wisp_err.h"

/* Parses |s|: one or more NUMBER UNIT pairs (units ms, s, m, h, d; numbers
 * DIGITS[.DIGITS], no signs or exponents) or a bare number of seconds.
 * Must be > 0 and at most ten years; WISP_ERR_PARSE otherwise. */
wisp_err wisp_duration_parse_seconds(double *out_seconds, const char *s) WISP_MUST_CHECK;
/* The same, rounded up to whole seconds. */
wisp_err wisp_duration_parse(int64_t *out_seconds, const char *s) WISP_MUST_CHECK;

#endif
