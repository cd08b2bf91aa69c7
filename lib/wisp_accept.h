/* wisp_accept: the accept loop of a listening socket on a libev loop, for
 * the proxy's data listeners and its admin listener alike.
 *
 * When accept(2) fails for lack of resources (EMFILE, ENFILE, ENOBUFS,
 * ENOMEM) the connection stays in the kernel's backlog and the socket stays
 * readable: retrying at once spins the loop at full CPU and, logging each
 * failure, floods the log. Instead the acceptor stops watching the socket
 * for a backoff (100 ms, doubling to 1 s) and then tries again. Waiting
 * callers stay queued in the backlog and are served as soon as descriptors
 * are free (we do not keep a reserve descriptor to accept-and-close them,
 * as libuv does: a momentary shortage would turn into refusals, and the
 * connection limits keep the data plane well below the fd limit anyway).
 * One such stretch is an episode: it is logged once when it begins and once
 * when accepting works again, with its length and the failed attempts.
 *
 * Routine accept errors (a connection aborted before we took it, a
 * firewall's refusal) took one connection off the backlog and are skipped
 * without a line. Any other error (EBADF, EINVAL, ...: the socket itself is
 * broken) would most likely come back at every wakeup, so it pauses
 * accepting the same way, with its lines rate-limited. */
#ifndef WISP_ACCEPT_H
#define WISP_ACCEPT_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "lib/wisp_log.h"
#include "lib/wisp_net.h"

/* Backoff after a resource failure: starts here, doubles, stays at most. */
#define WISP_ACCEPT_BACKOFF_MIN 0.1
#define WISP_ACCEPT_BACKOFF_MAX 1.0

typedef struct wisp_acceptor wisp_acceptor;

/* Called for each accepted connection; |fd| (non-blocking, close-on-exec)
 * is the callback's. */
typedef void (*wisp_accept_cb)(wisp_acceptor *a, int fd, const wisp_addr *peer);

struct wisp_acceptor {
  struct ev_loop *loop;
  int fd;        /* the listening socket (borrowed) */
  char name[80]; /* for the log: "inbound listener 0.0.0.0:15006" */
  int per_event; /* connections accepted per readiness event at most */
  wisp_accept_cb cb;
  void *data; /* for the callback */
  ev_io io;
  ev_timer pause;       /* the backoff */
  double backoff;       /* the next pause, seconds; 0: not in an episode */
  double episode_start; /* ev_now of the first failure of the episode */
  uint64_t episode_failures;
  bool episode_resource; /* it began for lack of resources (else its lines are rate-limited) */
  uint64_t pauses;       /* episodes so far, for /metrics */
  uint64_t failures;     /* failed accept(2) calls so far (routine ones not counted) */
  bool running;
  bool paused; /* not watching the socket until |pause| fires */
  wisp_log_limit other_errors;
};

/* Sets |a| up over the listening socket |fd|; call wisp_acceptor_start to
 * begin. |name| is copied. */
void wisp_acceptor_init(wisp_acceptor *a, struct ev_loop *loop, int fd, const char *name, int per_event,
                        wisp_accept_cb cb, void *data);
void wisp_acceptor_start(wisp_acceptor *a);
/* Stops watching (and any backoff); the socket stays open: it is the
 * caller's. Safe to call twice; wisp_acceptor_start watches it again. */
void wisp_acceptor_stop(wisp_acceptor *a);
/* True while accepting is paused after a failure: from the failure until
 * the pause ends and the socket is watched again (or the acceptor stops),
 * whether or not the next accept then works. */
bool wisp_acceptor_paused(const wisp_acceptor *a);
/* Whether an accept errno means "out of descriptors or memory". */
bool wisp_accept_err_is_resource(int err);

/* Every connection a listener holds is a descriptor: a process that sets
 * connection limits raises its soft open-files limit to fit them, as far
 * as the hard limit allows (never lowering it). Returns the soft limit in
 * force afterwards (UINT64_MAX: unlimited, 0: it could not be read); the
 * caller says what it does when that is still below |want|. */
uint64_t wisp_accept_raise_fd_limit(uint64_t want);

#endif
