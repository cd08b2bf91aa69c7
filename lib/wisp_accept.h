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
 * Other accept errors (a connection aborted before we took it, ...) are
 * skipped; the ones that are not routine are logged, rate-limited. */
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
  int fd;                /* the listening socket (borrowed) */
  char name[80];         /* for the log: "inbound listener 0.0.0.0:15006" */
  int per_event;         /* connections accepted per readiness event at most */
  wisp_accept_cb cb;
  void *data;            /* for the callback */
  ev_io io;
  ev_timer pause;        /* the backoff */
  double backoff;        /* the next pause, seconds; 0: not in an episode */
  double episode_start;  /* ev_now of the first failure of the episode */
  uint64_t episode_failures;
  uint64_t pauses;       /* episodes so far, for /metrics */
  bool running;
  wisp_log_limit other_errors;
};

/* Sets |a| up over the listening socket |fd|; call wisp_acceptor_start to
 * begin. |name| is copied. */
void wisp_acceptor_init(wisp_acceptor *a, struct ev_loop *loop, int fd, const char *name, int per_event,
                        wisp_accept_cb cb, void *data);
void wisp_acceptor_start(wisp_acceptor *a);
/* Stops watching (and any backoff); the socket stays open: it is the
 * caller's. Safe to call twice. */
void wisp_acceptor_stop(wisp_acceptor *a);
/* True while accepting is paused for lack of resources. */
bool wisp_acceptor_paused(const wisp_acceptor *a);
/* Whether an accept errno means "out of descriptors or memory". */
bool wisp_accept_err_is_resource(int err);

#endif
