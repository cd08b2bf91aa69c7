/* The recent upstream failures table (see wisp_upfail.h). */
#include "proxy/dataplane/wisp_upfail.h"

#include <stdio.h>
#include <string.h>

static wisp_upfail *find(wisp_upfail_table *t, const char *upstream) {
  for (size_t i = 0; i < t->n; i++) {
    if (strncmp(t->v[i].upstream, upstream, sizeof(t->v[i].upstream) - 1) == 0) return &t->v[i];
  }
  return NULL;
}

/* A free slot, else the entry that failed longest ago. */
static wisp_upfail *slot(wisp_upfail_table *t) {
  if (t->n < WISP_UPFAIL_MAX) return &t->v[t->n++];
  wisp_upfail *oldest = &t->v[0];
  for (size_t i = 1; i < t->n; i++) {
    if (t->v[i].last_unix < oldest->last_unix) oldest = &t->v[i];
  }
  return oldest;
}

void wisp_upfail_note(wisp_upfail_table *t, const char *upstream, const char *expect_id, bool app, const char *reason,
                      int64_t now) {
  if (!upstream) return;
  wisp_upfail *e = find(t, upstream);
  if (!e) {
    e = slot(t);
    memset(e, 0, sizeof(*e));
    snprintf(e->upstream, sizeof(e->upstream), "%s", upstream);
    e->first_unix = now;
  }
  snprintf(e->expect_id, sizeof(e->expect_id), "%s", expect_id ? expect_id : "");
  snprintf(e->reason, sizeof(e->reason), "%s", reason && *reason ? reason : "unknown");
  e->app = app;
  e->count++;
  e->last_unix = now;
}

void wisp_upfail_clear(wisp_upfail_table *t, const char *upstream) {
  wisp_upfail *e = find(t, upstream);
  if (!e) return;
  size_t i = (size_t)(e - t->v);
  memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(t->v[0]));
  t->n--;
}
