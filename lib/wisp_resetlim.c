#include "lib/wisp_resetlim.h"

#include <stdlib.h>

#include "lib/wisp_mem.h"

/* Callers are chained in a fixed table: a chain holds at most the
 * connections' callers and WISP_RESETLIM_IDLE_MAX others, spread by a
 * seeded hash (wisp_connlimit_key_hash). */
#define RESETLIM_BUCKETS 1024
/* Unheld records looked at per hold/release, to drop those whose debt is
 * paid: bounded work per call. */
#define RESETLIM_SWEEP 4

struct wisp_resetlim_caller {
  wisp_resetlim *rl;
  wisp_connlimit_key key;
  uint32_t holders;                                 /* connections holding it; 0: on the idle list */
  double tokens;                                    /* resets it may make; below 0: its debt */
  double last;                                      /* time of the last refill */
  double win_start;                                 /* the current counting window began */
  uint32_t completed, resets;                       /* streams that ended so, in the current window */
  uint32_t prev_completed, prev_resets;             /* in the window before */
  bool shared;                                      /* a peer sidecar (wisp_resetlim_mark_shared) */
  uint32_t untrusted;                               /* upstream streams (wisp_resetlim_untrusted_add) */
  double untrusted_at;                              /* when the last of them started (-1: never) */
  uint32_t upstream;                                /* upstream streams, all (wisp_resetlim_upstream_add) */
  uint32_t throttled;                               /* a peer sidecar's, throttled (wisp_resetlim_throttled_add) */
  double parked[WISP_RESETLIM_THROTTLE_STREAMS];    /* until when each place stays taken (past: free) */
  double lines_at[WISP_RESETLIM_LINE_KINDS];        /* the current window of its request lines began */
  uint32_t lines[WISP_RESETLIM_LINE_KINDS];         /* lines written in it */
  uint64_t lines_dropped[WISP_RESETLIM_LINE_KINDS]; /* dropped since the last one written */
  wisp_resetlim_caller *next;                       /* in its chain */
  wisp_resetlim_caller *idle_next, *idle_prev;
};

struct wisp_resetlim {
  double burst, per_second, window;
  uint64_t seed;
  size_t n, nidle;
  wisp_resetlim_caller *idle_head, *idle_tail; /* longest-released first */
  wisp_resetlim_caller *buckets[RESETLIM_BUCKETS];
};

wisp_resetlim *wisp_resetlim_new(uint32_t max_resets, double window) {
  wisp_resetlim *rl = wisp_calloc(1, sizeof(*rl));
  rl->burst = max_resets ? max_resets : 1;
  rl->window = window > 0 ? window : 1;
  rl->per_second = rl->burst / rl->window;
  rl->seed = wisp_connlimit_seed(rl);
  return rl;
}

void wisp_resetlim_free(wisp_resetlim *rl) {
  if (!rl) return;
  for (size_t b = 0; b < RESETLIM_BUCKETS; b++) {
    while (rl->buckets[b]) {
      wisp_resetlim_caller *next = rl->buckets[b]->next;
      free(rl->buckets[b]);
      rl->buckets[b] = next;
    }
  }
  free(rl);
}

size_t wisp_resetlim_callers(const wisp_resetlim *rl) { return rl->n; }

static wisp_resetlim_caller **chain_of(wisp_resetlim *rl, const wisp_connlimit_key *key) {
  return &rl->buckets[wisp_connlimit_key_hash(key, rl->seed) % RESETLIM_BUCKETS];
}

/* ---- the bucket and the windows ---- */

static void refill(wisp_resetlim_caller *c, double now) {
  if (now <= c->last) return; /* time going backwards refills nothing */
  c->tokens += (now - c->last) * c->rl->per_second;
  if (c->tokens > c->rl->burst) c->tokens = c->rl->burst;
  c->last = now;
}

static void roll(wisp_resetlim_caller *c, double now) {
  double w = c->rl->window;
  if (now < c->win_start + w) return;
  bool adjacent = now < c->win_start + 2 * w;
  c->prev_completed = adjacent ? c->completed : 0;
  c->prev_resets = adjacent ? c->resets : 0;
  c->win_start = adjacent ? c->win_start + w : now;
  c->completed = c->resets = 0;
}

/* More than half of the caller's streams that ended lately were resets. */
static bool mostly_resets(const wisp_resetlim_caller *c) {
  return (uint64_t)c->resets + c->prev_resets > (uint64_t)c->completed + c->prev_completed;
}

void wisp_resetlim_completed(wisp_resetlim_caller *c, double now) {
  roll(c, now);
  c->completed++;
}

bool wisp_resetlim_reset(wisp_resetlim_caller *c, double now) {
  roll(c, now);
  refill(c, now);
  c->resets++;
  if (c->tokens >= 1) {
    c->tokens -= 1;
    return true;
  }
  if (!mostly_resets(c)) return true;
  if (c->tokens > 1 - c->rl->burst) c->tokens -= 1; /* the debt: at most one more bucket */
  return false;
}

static double tokens_at(const wisp_resetlim_caller *c, double now) {
  double tokens = c->tokens;
  if (now > c->last) tokens += (now - c->last) * c->rl->per_second;
  return tokens > c->rl->burst ? c->rl->burst : tokens;
}

uint32_t wisp_resetlim_left(const wisp_resetlim_caller *c, double now) {
  if (!mostly_resets(c)) return UINT32_MAX;
  double tokens = tokens_at(c, now);
  return tokens < 1 ? 0 : (uint32_t)tokens;
}

double wisp_resetlim_wait(const wisp_resetlim_caller *c, double now) {
  double tokens = tokens_at(c, now);
  return tokens >= 1 ? 0 : (1 - tokens) / c->rl->per_second;
}

void wisp_resetlim_mark_shared(wisp_resetlim_caller *c) { c->shared = true; }

bool wisp_resetlim_shared(const wisp_resetlim_caller *c) { return c->shared; }

void wisp_resetlim_untrusted_add(wisp_resetlim_caller *c, int delta, double now) {
  if (delta > 0) {
    c->untrusted++;
    c->untrusted_at = now;
  } else if (c->untrusted > 0) {
    c->untrusted--;
  }
}

uint32_t wisp_resetlim_untrusted(const wisp_resetlim_caller *c) { return c->untrusted; }

double wisp_resetlim_probe_wait(const wisp_resetlim_caller *c, double now, double probe_interval) {
  if (c->untrusted_at < 0) return 0;
  double gap = c->untrusted && probe_interval < WISP_RESETLIM_PROBE_HOLD ? WISP_RESETLIM_PROBE_HOLD : probe_interval;
  double wait = c->untrusted_at + gap - now;
  return wait > 0 ? wait : 0;
}

uint32_t wisp_resetlim_room(const wisp_resetlim_caller *c, double now, double probe_interval) {
  uint32_t left = wisp_resetlim_left(c, now);
  if (left == UINT32_MAX) return left;
  if (left == 0) return wisp_resetlim_probe_wait(c, now, probe_interval) == 0;
  return left > c->untrusted ? left - c->untrusted : 0;
}

/* |*n| one more (|delta| > 0) or one fewer, never below 0. */
static void count(uint32_t *n, int delta) {
  if (delta > 0) (*n)++;
  else if (*n > 0) (*n)--;
}

void wisp_resetlim_throttled_add(wisp_resetlim_caller *c, int delta) { count(&c->throttled, delta); }

uint32_t wisp_resetlim_throttled(const wisp_resetlim_caller *c) { return c->throttled; }

void wisp_resetlim_throttled_park(wisp_resetlim_caller *c, double now, double hold) {
  for (int i = 0; i < WISP_RESETLIM_THROTTLE_STREAMS; i++) {
    if (c->parked[i] <= now) {
      c->parked[i] = now + hold;
      return;
    }
  }
}

static uint32_t parked_at(const wisp_resetlim_caller *c, double now) {
  uint32_t n = 0;
  for (int i = 0; i < WISP_RESETLIM_THROTTLE_STREAMS; i++) n += c->parked[i] > now;
  return n;
}

uint32_t wisp_resetlim_throttle_room(const wisp_resetlim_caller *c, double now) {
  uint32_t left = wisp_resetlim_left(c, now);
  if (left == UINT32_MAX) return left;
  uint32_t streams = left > WISP_RESETLIM_THROTTLE_STREAMS ? left : WISP_RESETLIM_THROTTLE_STREAMS;
  uint32_t taken = c->throttled + parked_at(c, now);
  return streams > taken ? streams - taken : 0;
}

double wisp_resetlim_throttle_wait(const wisp_resetlim_caller *c, double now, double recheck) {
  double wait = c->throttled ? recheck : 0;
  for (int i = 0; i < WISP_RESETLIM_THROTTLE_STREAMS; i++) {
    double w = c->parked[i] - now;
    if (w > 0 && (wait == 0 || w < wait)) wait = w;
  }
  return wait;
}

void wisp_resetlim_upstream_add(wisp_resetlim_caller *c, int delta) { count(&c->upstream, delta); }

uint32_t wisp_resetlim_upstream(const wisp_resetlim_caller *c) { return c->upstream; }

bool wisp_resetlim_line_pass(wisp_resetlim_caller *c, wisp_resetlim_line kind, double now, uint32_t burst,
                             double window, uint64_t *dropped) {
  *dropped = 0;
  if (now >= c->lines_at[kind] + window || now < c->lines_at[kind]) {
    c->lines_at[kind] = now;
    c->lines[kind] = 0;
  }
  if (c->lines[kind] >= burst) {
    c->lines_dropped[kind]++;
    return false;
  }
  c->lines[kind]++;
  *dropped = c->lines_dropped[kind];
  c->lines_dropped[kind] = 0;
  return true;
}

/* ---- records ---- */

static void idle_unlink(wisp_resetlim *rl, wisp_resetlim_caller *c) {
  if (c->idle_prev) {
    c->idle_prev->idle_next = c->idle_next;
  } else {
    rl->idle_head = c->idle_next;
  }
  if (c->idle_next) {
    c->idle_next->idle_prev = c->idle_prev;
  } else {
    rl->idle_tail = c->idle_prev;
  }
  c->idle_next = c->idle_prev = NULL;
  rl->nidle--;
}

static void idle_append(wisp_resetlim *rl, wisp_resetlim_caller *c) {
  c->idle_prev = rl->idle_tail;
  c->idle_next = NULL;
  if (rl->idle_tail) {
    rl->idle_tail->idle_next = c;
  } else {
    rl->idle_head = c;
  }
  rl->idle_tail = c;
  rl->nidle++;
}

static void drop(wisp_resetlim *rl, wisp_resetlim_caller *c) {
  idle_unlink(rl, c);
  for (wisp_resetlim_caller **pp = chain_of(rl, &c->key); *pp; pp = &(*pp)->next) {
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  }
  rl->n--;
  free(c);
}

/* Drops unheld records past the cap, and a few whose debt is paid (a full
 * bucket: nothing left to remember); the others go to the back. */
static void sweep(wisp_resetlim *rl, double now) {
  while (rl->nidle > WISP_RESETLIM_IDLE_MAX) drop(rl, rl->idle_head);
  for (int i = 0; i < RESETLIM_SWEEP && rl->idle_head; i++) {
    wisp_resetlim_caller *c = rl->idle_head;
    refill(c, now);
    if (c->tokens >= rl->burst) {
      drop(rl, c);
    } else if (rl->nidle > 1) {
      idle_unlink(rl, c);
      idle_append(rl, c);
    }
  }
}

wisp_resetlim_caller *wisp_resetlim_hold(wisp_resetlim *rl, const wisp_connlimit_key *key, double now) {
  wisp_resetlim_caller **chain = chain_of(rl, key);
  wisp_resetlim_caller *c;
  for (c = *chain; c; c = c->next) {
    if (wisp_connlimit_key_equal(&c->key, key)) break;
  }
  if (c && c->holders == 0) idle_unlink(rl, c);
  if (!c) {
    c = wisp_calloc(1, sizeof(*c));
    c->rl = rl;
    c->key = *key;
    c->tokens = rl->burst;
    c->last = c->win_start = now;
    c->untrusted_at = -1;
    c->next = *chain;
    *chain = c;
    rl->n++;
  }
  c->holders++;
  sweep(rl, now);
  return c;
}

void wisp_resetlim_release(wisp_resetlim_caller *c, double now) {
  wisp_resetlim *rl = c->rl;
  if (--c->holders > 0) return;
  idle_append(rl, c);
  sweep(rl, now);
}
