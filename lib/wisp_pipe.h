/* wisp_pipe: an in-process byte pipe between two parts of one event loop,
 * in place of a socketpair(AF_UNIX): the same stream semantics (bytes in
 * order, a bound per direction, half-close, EOF, a reset for a close with
 * bytes unread, EPIPE for a write to a closed end), without the kernel:
 * no descriptors, no system calls.
 *
 * Users: the proxy's HTTP/1 gateways (proxy/dataplane/wisp_h1 for HTTP/1
 * callers, wisp_h1app for HTTP/1.1 apps), whose HTTP/2 side is an ordinary
 * wisp_h2conn on the other end (lib/wisp_transport's "pipe" kind).
 *
 * Readiness is re-armed on each change, not polled: an end
 * says what it waits for (wisp_pipe_want); while it is readable (bytes,
 * EOF or a reset wait) or writable (the other direction has room, or the
 * write would fail) and it wants that, its callback is put on its
 * scheduler's ready list, and wisp_pipe_sched_run calls it from there
 * (again after a read that left something, or a wisp_pipe_want),
 * never from inside a read or write (so a write never re-enters its
 * reader). lib/wisp_h2conn's loop runs the scheduler in each of its flush
 * passes before the loop sleeps: a write and the reader's callback happen
 * in the same loop iteration. A callback that neither reads nor calls
 * wisp_pipe_want is not called again until something changes (a write, a
 * close, a shutdown): unlike a level-triggered ev_io it cannot spin.
 *
 * Ownership: wisp_pipe_new makes both ends; each belongs to whoever took
 * it, who closes it once with wisp_pipe_close (which frees it). The bytes
 * written to an end are held by the end that reads them (at most
 * WISP_PIPE_CAP, from wisp_slab; released whenever emptied, so an idle
 * pipe holds no buffer). Both ends and the scheduler are of one thread
 * (one loop); every end must be closed before its scheduler goes. */
#ifndef WISP_PIPE_H
#define WISP_PIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "lib/wisp_buf.h"
#include "lib/wisp_list.h"

/* Bytes one direction holds before writes to it return WISP_PIPE_AGAIN. */
#define WISP_PIPE_CAP (64 * 1024)

/* Results besides a byte count (the same values as wisp_transport's). */
enum {
  WISP_PIPE_AGAIN = -1, /* read: nothing yet; write: full */
  WISP_PIPE_ERROR = -2, /* errno EPIPE (write to a closed or shut end) or ECONNRESET */
};

/* What an end's callback is told: readable, writable, or both. */
enum { WISP_PIPE_READ = 1, WISP_PIPE_WRITE = 2 };

typedef struct {
  wisp_list ready; /* ends whose callback is due */
} wisp_pipe_sched;

typedef struct wisp_pipe_end wisp_pipe_end;
typedef void (*wisp_pipe_cb)(wisp_pipe_end *e, int events, void *arg);

struct wisp_pipe_end {
  wisp_pipe_end *peer; /* NULL once the other end closed */
  wisp_pipe_sched *sched;
  wisp_buf in;  /* what the other end wrote, for this one to read */
  bool in_eof;  /* the other end shut down or closed: after |in|, EOF */
  bool in_rst;  /* ... closed with bytes unread: after |in|, ECONNRESET */
  bool shut;    /* this end shut down its writing */
  bool drained; /* the last read emptied |in| (as wisp_transport's hint) */
  bool want_read, want_write;
  wisp_list link; /* in sched->ready while due */
  wisp_pipe_cb cb;
  void *arg;
};

void wisp_pipe_sched_init(wisp_pipe_sched *s);
/* Calls the callback of every end that was due when it began and still is
 * (ends made due meanwhile wait for the next run); true if it called any. */
bool wisp_pipe_sched_run(wisp_pipe_sched *s);
static inline bool wisp_pipe_sched_busy(const wisp_pipe_sched *s) { return !wisp_list_empty(&s->ready); }

/* Two connected ends on |s|. */
void wisp_pipe_new(wisp_pipe_sched *s, wisp_pipe_end **a, wisp_pipe_end **b);
/* Who is told of |e|'s readiness (nobody until set). */
void wisp_pipe_set_cb(wisp_pipe_end *e, wisp_pipe_cb cb, void *arg);
/* What |e|'s owner waits for (as ev_io_start/ev_io_stop). */
void wisp_pipe_want(wisp_pipe_end *e, bool read, bool write);

/* >0 bytes read; 0 EOF; WISP_PIPE_AGAIN; WISP_PIPE_ERROR (ECONNRESET).
 * |len| must be above 0 (0 would read as EOF). */
ssize_t wisp_pipe_read(wisp_pipe_end *e, void *buf, size_t len);
/* >0 bytes taken (maybe fewer than |len|); WISP_PIPE_AGAIN while full;
 * WISP_PIPE_ERROR (EPIPE) once the other end closed or |e| shut down. */
ssize_t wisp_pipe_write(wisp_pipe_end *e, const void *buf, size_t len);
/* Half-close: the other end reads EOF after what was written. */
void wisp_pipe_shutdown(wisp_pipe_end *e);
/* Closes and frees |e|: the other end reads what |e| wrote, then EOF (a
 * reset if |e| left bytes unread), and its writes fail. NULL: nothing. */
void wisp_pipe_close(wisp_pipe_end *e);

#endif
