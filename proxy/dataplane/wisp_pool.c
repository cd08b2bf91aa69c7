#include "proxy/dataplane/wisp_pool.h"

#include <stdio.h>
#include <stdlib.h>

#include <ev.h>

#include "lib/wisp_mem.h"
#include "proxy/dataplane/wisp_conn.h"
#include "proxy/dataplane/wisp_stream.h"

static bool usable(const wisp_conn *c) { return !c->io.closing && !c->goaway && !c->draining; }

/* Streams |c| may carry: the peer's SETTINGS, at most ours per connection. */
static int stream_limit(const wisp_conn *c) {
  uint32_t limit = nghttp2_session_get_remote_settings(c->io.h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return limit > WISP_POOL_STREAMS_PER_CONN ? WISP_POOL_STREAMS_PER_CONN : (int)limit;
}

/* A connection with a free stream for |t| of the kind |h1app| asks (to an
 * app as HTTP/1.1 or h2c: each kind its own --pool-size), opening one if
 * the pool has room: WISP_OK with |*out|, WISP_ERR_AGAIN when every stream of a full
 * pool is in use (a freed one wakes the target), WISP_ERR_IO with |err|
 * when a new connection could not be started. Never oversubscribes a
 * connection: a request nghttp2 would hold back in its own queue would
 * wait without a bound. */
static wisp_err free_slot(wisp_target *t, bool h1app, wisp_conn **out, char *err, size_t err_len) {
  if (t->refuse) { /* a stand-in: nowhere to go */
    snprintf(err, err_len, "%s", t->refuse);
    return WISP_ERR_IO;
  }
  for (wisp_conn *c = t->conns; c; c = c->pool_next) {
    /* First fit keeps traffic on few connections. */
    if (usable(c) && c->h1app == h1app && c->nstreams < stream_limit(c)) {
      *out = c;
      return WISP_OK;
    }
  }
  int usable_conns = 0;
  for (wisp_conn *c = t->conns; c; c = c->pool_next) usable_conns += usable(c) && c->h1app == h1app;
  if (usable_conns >= t->px->cfg->pool_size) return WISP_ERR_AGAIN;
  wisp_conn *c = wisp_conn_connect(t, h1app, err, err_len);
  if (!c) return WISP_ERR_IO;
  c->pool_next = t->conns;
  t->conns = c;
  t->nconns++;
  *out = c;
  return WISP_OK;
}

/* ---- lanes: a connection's waiting requests, per original caller ----
 * A peer sidecar's pooled connection carries the requests of many callers
 * of its own; x-wisp-caller (set by that sidecar, one value per caller
 * connection it serves) tells them apart. Each caller gets a lane, a FIFO,
 * and a connection's turn goes to its lanes round robin, so one busy
 * caller behind a peer sidecar cannot push the others' requests to the
 * back of that connection's queue. A tag only orders a connection's own
 * requests: turns between connections, and their shares, stay per
 * connection, whatever tags a caller sends. Requests without one share
 * lane 0. */
struct wisp_lane {
  uint64_t tag;
  wisp_stream *head, *tail;
  int n;
  struct wisp_lane *next, *prev; /* ring in conn->lanes */
};

static wisp_lane *lane_for(wisp_conn *c, uint64_t tag) {
  wisp_lane *l = c->lanes;
  if (l) {
    do {
      if (l->tag == tag) return l;
      l = l->next;
    } while (l != c->lanes);
  }
  l = wisp_calloc(1, sizeof(*l));
  l->tag = tag;
  if (!c->lanes) {
    l->next = l->prev = l;
    c->lanes = l;
  } else { /* last in turn */
    l->next = c->lanes;
    l->prev = c->lanes->prev;
    c->lanes->prev->next = l;
    c->lanes->prev = l;
  }
  return l;
}

static void lane_free(wisp_conn *c, wisp_lane *l) {
  if (l->next == l) {
    c->lanes = NULL;
  } else {
    l->prev->next = l->next;
    l->next->prev = l->prev;
    if (c->lanes == l) c->lanes = l->next;
  }
  free(l);
}

/* ---- the ring of callers with waiting requests ---- */

static void ring_add(wisp_target *t, wisp_conn *c) {
  if (!t->waiters) {
    c->rr_next = c->rr_prev = c;
    t->waiters = c;
    return;
  }
  /* Last in turn: just before the caller served next. */
  wisp_conn *first = t->waiters;
  c->rr_next = first;
  c->rr_prev = first->rr_prev;
  first->rr_prev->rr_next = c;
  first->rr_prev = c;
}

static void ring_remove(wisp_target *t, wisp_conn *c) {
  if (c->rr_next == c) {
    t->waiters = NULL;
  } else {
    c->rr_prev->rr_next = c->rr_next;
    c->rr_next->rr_prev = c->rr_prev;
    if (t->waiters == c) t->waiters = c->rr_next;
  }
  c->rr_next = c->rr_prev = NULL;
}

void wisp_pool_wake(wisp_target *t) {
  if (t->woken) return;
  t->woken = true;
  t->woken_next = t->px->woken;
  t->px->woken = t;
}

/* Why a request waited in vain, for the caller (x-wisp-error). */
static void describe_wait(const wisp_stream *s, const wisp_conn *caller, char *out, size_t out_len) {
  const wisp_target *t = s->target;
  const wisp_config *cfg = t->px->cfg;
  if (caller->nupstream >= wisp_conn_upstream_share(caller) && wisp_conn_over_resets(caller)) {
    snprintf(out, out_len,
             "upstream %s: no stream for this request within %gs: its caller (address) reset more streams than "
             "--max-resets allows, and its requests wait for that budget",
             t->name, cfg->queue_timeout);
  } else if (caller->nupstream >= wisp_conn_upstream_share(caller)) {
    snprintf(out, out_len,
             "upstream %s: no stream for this request within %gs: this connection already has %d requests in "
             "progress upstream, or its source address its share (--max-upstream-per-caller)",
             t->name, cfg->queue_timeout, caller->nupstream);
  } else {
    snprintf(out, out_len,
             "upstream %s: no stream for this request within %gs: all streams of its %d connections are busy "
             "(--queue-timeout)",
             t->name, cfg->queue_timeout, t->nconns);
  }
}

static void on_wait_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_stream *s = w->data;
  wisp_conn *caller = s->link[WISP_DOWN].conn;
  char why[WISP_TLS_REASON_MAX];
  if (!caller) return;
  describe_wait(s, caller, why, sizeof(why));
  wisp_pool_dequeue(s);
  wisp_stream_unavailable(s, 503, why);
}

void wisp_pool_enqueue(wisp_stream *s) {
  wisp_conn *c = s->link[WISP_DOWN].conn;
  wisp_target *t = s->target;
  const wisp_config *cfg = t->px->cfg;
  if (!c || s->waiting) return;
  t->nwaiting++;
  c->nwaiting++;
  ev_timer_init(&s->wait_timer, on_wait_timeout, cfg->queue_timeout, 0);
  s->wait_timer.data = s;
  ev_timer_start(t->px->loop, &s->wait_timer);
  s->waiting = true;
  if (c->nwaiting == 1) ring_add(t, c);
  wisp_lane *l = lane_for(c, s->caller_tag);
  s->lane = l;
  s->wait_next = NULL;
  s->wait_prev = l->tail;
  if (l->tail) {
    l->tail->wait_next = s;
  } else {
    l->head = s;
  }
  l->tail = s;
  l->n++;
  wisp_pool_wake(t);
}

void wisp_pool_dequeue(wisp_stream *s) {
  wisp_conn *c = s->link[WISP_DOWN].conn;
  wisp_lane *l = s->lane;
  if (!s->waiting || !c) return;
  if (s->wait_prev) {
    s->wait_prev->wait_next = s->wait_next;
  } else {
    l->head = s->wait_next;
  }
  if (s->wait_next) {
    s->wait_next->wait_prev = s->wait_prev;
  } else {
    l->tail = s->wait_prev;
  }
  if (--l->n == 0) lane_free(c, l);
  s->waiting = false;
  s->lane = NULL;
  s->wait_next = s->wait_prev = NULL;
  s->target->nwaiting--;
  c->nwaiting--;
  ev_timer_stop(s->target->px->loop, &s->wait_timer);
  if (c->nwaiting == 0) ring_remove(s->target, c);
}

/* The next caller in turn, still open, that may have one more upstream stream, from
 * t->waiters on, and its next lane whose head goes to a kind of app
 * connection (|full|: indexed by app_h1) that may still have a free
 * stream; NULL if there is none. */
static wisp_conn *next_caller(wisp_target *t, const bool full[2], wisp_lane **lane) {
  wisp_conn *c = t->waiters;
  do {
    /* A caller that closed its connection (or that we cut) has its
     * waiting requests freed at its teardown, later in this pass: they
     * never go upstream (they did, and were cancelled there at once, when
     * its requests and its close came in one read). */
    if (!c->io.closing && !c->term_reason && c->nupstream < wisp_conn_upstream_share(c)) {
      wisp_lane *l = c->lanes;
      do {
        if (!full[l->head->app_h1]) {
          *lane = l;
          return c;
        }
        l = l->next;
      } while (l != c->lanes);
    }
    c = c->rr_next;
  } while (c != t->waiters);
  return NULL;
}

static void on_probe_timer(struct ev_loop *loop, ev_timer *w, int revents) { wisp_pool_wake(w->data); }

/* No waiting caller may send now: one over --max-resets waits for its
 * next probe (wisp_conn_upstream_share), which no stream ending may
 * announce, so a timer wakes |t| then. */
static void arm_probe_timer(wisp_target *t) {
  double wait = 0;
  wisp_conn *c = t->waiters;
  do {
    double w = wisp_conn_probe_wait(c);
    if (w > 0 && (wait == 0 || w < wait)) wait = w;
    c = c->rr_next;
  } while (c != t->waiters);
  if (wait == 0 || ev_is_active(&t->probe_timer)) return;
  ev_timer_init(&t->probe_timer, on_probe_timer, wait, 0);
  t->probe_timer.data = t;
  ev_timer_start(t->px->loop, &t->probe_timer);
}

/* Sends waiting requests of |t|, one per caller connection in turn (and
 * within it, one per lane in turn), while streams are free. A caller at
 * its share (--max-upstream-per-caller) waits for one of its own to end:
 * one connection cannot take every stream of the pool. */
static void pump_target(wisp_target *t) {
  /* HTTP/1.1 and h2c app connections are pooled apart (--app-protocol
   * auto): the head waiter finding its kind busy does not hold back a
   * request for the other kind (it did: a full HTTP/1.1 pool kept h2c
   * requests waiting while h2c streams were free). */
  bool full[2] = {false, false};
  while (t->waiters) {
    wisp_lane *lane = NULL;
    wisp_conn *caller = next_caller(t, full, &lane);
    if (!caller) {
      arm_probe_timer(t);
      return;
    }
    wisp_stream *s = lane->head;
    wisp_conn *up = NULL;
    char err[WISP_TLS_REASON_MAX];
    wisp_err rc = free_slot(t, s->app_h1, &up, err, sizeof(err));
    if (rc == WISP_ERR_AGAIN) {
      full[s->app_h1] = true; /* it keeps its turn */
      continue;
    }
    t->waiters = caller->rr_next; /* the next caller's turn */
    caller->lanes = lane->next;   /* and within this one, the next lane's */
    wisp_pool_dequeue(s);
    if (rc != WISP_OK) {
      wisp_stream_unavailable(s, 503, err);
    } else {
      wisp_stream_send_upstream(s, up);
    }
  }
}

/* More requests wait than --max-queued allows once the free streams were
 * handed out: the newest of the caller with the most waiting (of its lane
 * with the most) are refused, so a caller that floods the queue loses its
 * own requests first. */
static void trim_queue(wisp_target *t) {
  int max = t->px->cfg->max_queued;
  while (t->nwaiting > max && t->waiters) {
    wisp_conn *most = t->waiters, *c = t->waiters;
    do {
      if (c->nwaiting > most->nwaiting) most = c;
      c = c->rr_next;
    } while (c != t->waiters);
    wisp_lane *big = most->lanes, *l = most->lanes;
    do {
      if (l->n > big->n) big = l;
      l = l->next;
    } while (l != most->lanes);
    wisp_stream *s = big->tail;
    char why[WISP_TLS_REASON_MAX];
    snprintf(why, sizeof(why), "upstream %s: %d requests are already waiting for a free stream (--max-queued)", t->name,
             t->nwaiting - 1);
    wisp_pool_dequeue(s);
    wisp_stream_unavailable(s, 503, why);
  }
}

void wisp_pool_pump(wisp_proxy *px) {
  wisp_target *t;
  while ((t = px->woken) != NULL) {
    px->woken = t->woken_next;
    t->woken_next = NULL;
    t->woken = false;
    pump_target(t);
    trim_queue(t);
  }
}

void wisp_pool_remove(wisp_target *t, wisp_conn *c) {
  for (wisp_conn **p = &t->conns; *p; p = &(*p)->pool_next) {
    if (*p == c) {
      *p = c->pool_next;
      t->nconns--;
      wisp_pool_wake(t); /* room for a new connection */
      return;
    }
  }
}

void wisp_pool_forget(wisp_target *t) {
  if (ev_is_active(&t->probe_timer)) ev_timer_stop(t->px->loop, &t->probe_timer);
  if (!t->woken) return;
  for (wisp_target **p = &t->px->woken; *p; p = &(*p)->woken_next) {
    if (*p == t) {
      *p = t->woken_next;
      break;
    }
  }
  t->woken = false;
  t->woken_next = NULL;
}
