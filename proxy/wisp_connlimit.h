/* wisp_connlimit: how many connections a listener holds, in total and per
 * source address, against --max-connections and
 * --max-connections-per-source. Pure bookkeeping (no I/O, no clock, no
 * globals), unit-tested in tests/unit/connlimit_test.c.
 *
 * A source is an IPv4 address, or the /64 prefix of an IPv6 address (a
 * single host commonly holds a whole /64); a v4-mapped IPv6 address counts
 * as its IPv4 address. The port never matters.
 *
 * Ownership: a slot taken with wisp_connlimit_take belongs to whatever
 * carries the connection (detection, an HTTP/2 connection, an L4 tunnel)
 * and moves with it; wisp_connlimit_release gives it back exactly once (it
 * zeroes the slot, so releasing again is harmless). Every slot must be
 * released before its wisp_connlimit is freed. */
#ifndef WISP_CONNLIMIT_H
#define WISP_CONNLIMIT_H

#include <stdint.h>

#include "lib/wisp_net.h"

typedef struct wisp_connlimit wisp_connlimit;
struct wisp_connlimit_src;

typedef enum {
  WISP_CONNLIMIT_OK,
  WISP_CONNLIMIT_TOTAL,  /* the listener holds max_total connections */
  WISP_CONNLIMIT_SOURCE, /* this source holds max_per_source of them */
} wisp_connlimit_result;

typedef struct {
  wisp_connlimit *cl;             /* NULL: no slot held */
  struct wisp_connlimit_src *src; /* NULL when sources are not counted */
} wisp_connlimit_slot;

/* A limiter of |max_total| connections, |max_per_source| from one source;
 * 0 means no limit (with max_per_source 0, sources are not tracked). */
wisp_connlimit *wisp_connlimit_new(uint32_t max_total, uint32_t max_per_source);
/* Accepts NULL. */
void wisp_connlimit_free(wisp_connlimit *cl);
/* Takes a slot for a connection from |src| into |out| (zeroed on refusal).
 * Returns WISP_CONNLIMIT_OK, or which limit refuses it. */
wisp_connlimit_result wisp_connlimit_take(wisp_connlimit *cl, const wisp_addr *src, wisp_connlimit_slot *out);
/* Gives the slot back and zeroes it; a zeroed slot is left alone. */
void wisp_connlimit_release(wisp_connlimit_slot *slot);
/* Moves a slot to a new holder: |*to| = |*from|, |from| zeroed. */
void wisp_connlimit_move(wisp_connlimit_slot *to, wisp_connlimit_slot *from);

/* Connections held now, in total and from |src|'s source. */
uint32_t wisp_connlimit_count(const wisp_connlimit *cl);
uint32_t wisp_connlimit_source_count(const wisp_connlimit *cl, const wisp_addr *src);
/* Distinct sources holding connections now (0 when not tracked). */
uint32_t wisp_connlimit_sources(const wisp_connlimit *cl);
/* The source of |src| as text ("10.0.0.5", "fd00:1:2:3::/64"). */
void wisp_connlimit_source_name(const wisp_addr *src, char *out, size_t out_len);

#endif
