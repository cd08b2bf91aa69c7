#include "lib/wisp_accept.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

/* Routine accept errors, not worth a line, each of which took one caller
 * off the backlog: it gave up first (ECONNABORTED, EPROTO) or a firewall
 * refused it (EPERM). EAGAIN and EINTR are WISP_ERR_AGAIN. */
static bool err_is_routine(int err) { return err == ECONNABORTED || err == EPROTO || err == EPERM; }

bool wisp_accept_err_is_resource(int err) { return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM; }

uint64_t wisp_accept_raise_fd_limit(uint64_t want) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur == RLIM_INFINITY) return UINT64_MAX;
  if (rl.rlim_cur < want) {
    struct rlimit raised = {rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? (rlim_t)want : rl.rlim_max,
                            rl.rlim_max};
    if (raised.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &raised) == 0) rl.rlim_cur = raised.rlim_cur;
  }
  return (uint64_t)rl.rlim_cur;
}

static void log_episode_begin(wisp_acceptor *a, int err) {
  struct rlimit rl;
  char limit[64] = "";
  if (!a->episode_resource) {
    wisp_log_limited(&a->other_errors, WISP_LOG_WARN,
                     "accept on the %s failed: %s; pausing accepts (%g s, up to %g s between tries)", a->name,
                     strerror(err), WISP_ACCEPT_BACKOFF_MIN, WISP_ACCEPT_BACKOFF_MAX);
    return;
  }
  if (err == EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0)
    snprintf(limit, sizeof(limit), " (open file limit %llu)", (unsigned long long)rl.rlim_cur);
  WISP_WARN(
      "accept on the %s failed: %s%s; pausing accepts (%g s, up to %g s between tries) until "
      "descriptors are free; waiting callers stay queued",
      a->name, strerror(err), limit, WISP_ACCEPT_BACKOFF_MIN, WISP_ACCEPT_BACKOFF_MAX);
}

static void episode_end(wisp_acceptor *a) {
  if (a->backoff == 0) return;
  static const char kFmt[] = "accepting again on the %s after %.1f s paused (%llu failed tries)";
  double took = ev_now(a->loop) - a->episode_start;
  if (a->episode_resource) {
    WISP_WARN(kFmt, a->name, took, (unsigned long long)a->episode_failures);
  } else {
    wisp_log_limited(&a->other_errors, WISP_LOG_WARN, kFmt, a->name, took, (unsigned long long)a->episode_failures);
  }
  a->backoff = 0;
  a->episode_failures = 0;
}

/* accept(2) failed with |err|, and not routinely: stop watching the socket
 * for a while instead of retrying at once. */
static void pause_accepts(wisp_acceptor *a, int err) {
  if (a->backoff == 0) {
    a->backoff = WISP_ACCEPT_BACKOFF_MIN;
    a->episode_start = ev_now(a->loop);
    a->episode_resource = wisp_accept_err_is_resource(err);
    a->pauses++;
    log_episode_begin(a, err);
  }
  a->episode_failures++;
  a->paused = true;
  ev_io_stop(a->loop, &a->io);
  ev_timer_set(&a->pause, a->backoff, 0);
  ev_timer_start(a->loop, &a->pause);
  a->backoff = a->backoff * 2 < WISP_ACCEPT_BACKOFF_MAX ? a->backoff * 2 : WISP_ACCEPT_BACKOFF_MAX;
}

static void accept_some(wisp_acceptor *a) {
  for (int i = 0; i < a->per_event && a->running; i++) {
    int fd;
    wisp_addr peer;
    wisp_err rc = wisp_net_accept(&fd, a->fd, &peer);
    if (rc == WISP_ERR_AGAIN) {
      episode_end(a); /* the backlog is empty: whoever waited has gone */
      return;
    }
    if (rc != WISP_OK) {
      int err = errno;
      if (err_is_routine(err)) continue; /* that caller is gone; the next may be fine */
      a->failures++;
      pause_accepts(a, err);
      return;
    }
    episode_end(a);
    a->cb(a, fd, &peer);
  }
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents) { accept_some(w->data); }

static void on_pause_over(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_acceptor *a = w->data;
  a->paused = false;
  if (!a->running) return;
  ev_io_start(loop, &a->io);
  accept_some(a); /* try now: the socket may have stayed readable all along */
}

void wisp_acceptor_init(wisp_acceptor *a, struct ev_loop *loop, int fd, const char *name, int per_event,
                        wisp_accept_cb cb, void *data) {
  memset(a, 0, sizeof(*a));
  a->loop = loop;
  a->fd = fd;
  snprintf(a->name, sizeof(a->name), "%s", name);
  a->per_event = per_event;
  a->cb = cb;
  a->data = data;
  ev_io_init(&a->io, on_readable, fd, EV_READ);
  a->io.data = a;
  ev_init(&a->pause, on_pause_over);
  a->pause.data = a;
  char what[WISP_LOG_LIMIT_WHAT_MAX];
  snprintf(what, sizeof(what), "accept errors on the %s", name);
  wisp_log_limit_init(&a->other_errors, what, 5, 10.0, WISP_LOG_TO_STDERR);
}

void wisp_acceptor_start(wisp_acceptor *a) {
  a->running = true;
  ev_io_start(a->loop, &a->io);
}

void wisp_acceptor_stop(wisp_acceptor *a) {
  a->running = false;
  a->paused = false;
  ev_io_stop(a->loop, &a->io);
  ev_timer_stop(a->loop, &a->pause);
  wisp_log_limit_cleanup(&a->other_errors);
}

bool wisp_acceptor_paused(const wisp_acceptor *a) { return a->paused; }
