/* wisp_upfail: the upstreams this proxy failed to reach lately, and why,
 * for GET /status and `wispctl check --proxy`. A small fixed table keyed
 * by upstream name (the peer's address, or the local app's): a failure
 * adds or refreshes an entry (the oldest makes room when full), a
 * connection that comes up removes it, so what is listed is still failing.
 * Pure: no I/O, the caller passes the time.
 *
 * Ownership: the proxy holds one wisp_upfail_table inline; the strings are
 * copied in (truncated to their fields). */
#ifndef WISP_UPFAIL_H
#define WISP_UPFAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wisp_spiffe.h"

#define WISP_UPFAIL_MAX 16
#define WISP_UPFAIL_REASON_MAX 256

typedef struct {
  char upstream[96];                   /* "127.0.0.1:15006" */
  char expect_id[WISP_SPIFFE_MAX + 1]; /* the identity it must present; "" for the local app */
  bool app;                            /* the local app (inbound), not a peer sidecar */
  char reason[WISP_UPFAIL_REASON_MAX];
  uint64_t count; /* failures since it last came up */
  int64_t first_unix, last_unix;
} wisp_upfail;

typedef struct {
  wisp_upfail v[WISP_UPFAIL_MAX];
  size_t n;
} wisp_upfail_table;

/* A failure to reach |upstream| (|expect_id| may be NULL). */
void wisp_upfail_note(wisp_upfail_table *t, const char *upstream, const char *expect_id, bool app, const char *reason,
                      int64_t now);
/* |upstream| was reached: its entry, if any, goes. */
void wisp_upfail_clear(wisp_upfail_table *t, const char *upstream);

#endif
