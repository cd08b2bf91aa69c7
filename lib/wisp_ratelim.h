/* wisp_ratelim: a token bucket, for counting what a peer may do only so
 * often (wisp-proxy: RST_STREAM frames per caller connection). |burst|
 * tokens to start with and at most; |per_second| come back each second; an
 * event takes one. Pure: the caller passes the time, so it is unit-tested
 * without a clock. A zeroed struct is not usable: call wisp_ratelim_init. */
#ifndef WISP_RATELIM_H
#define WISP_RATELIM_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
  double burst;      /* most tokens held */
  double per_second; /* refill rate */
  double tokens;
  double last; /* time of the last refill, seconds (any monotonic clock) */
} wisp_ratelim;

/* A full bucket at time |now|. */
void wisp_ratelim_init(wisp_ratelim *r, uint32_t burst, double per_second, double now);
/* Takes one token at |now|: true if there was one, false if the peer is
 * over its rate (nothing is taken then). Time going backwards refills
 * nothing. */
bool wisp_ratelim_take(wisp_ratelim *r, double now);

#endif
