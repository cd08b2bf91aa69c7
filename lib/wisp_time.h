/* wisp_time: durations as users write them on command lines ("90s", "5m",
 * "24h", "7d", "1h30m", or plain seconds). A pure parser. */
#ifndef WISP_TIME_H
#define WISP_TIME_H

#include <stdint.h>

#include "lib/wisp_err.h"

/* Parses |s| into whole seconds (> 0, at most 10 years). WISP_ERR_PARSE for
 * anything else (empty, negative, unknown unit, overflow). */
wisp_err wisp_duration_parse(int64_t *out_seconds, const char *s) WISP_MUST_CHECK;

#endif
