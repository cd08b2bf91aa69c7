#include "lib/wisp_pipe.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "lib/wisp_mem.h"

static bool readable(const wisp_pipe_end *e) { return wisp_buf_len(&e->in) > 0 || e->in_eof; }

/* Writable: there is room, or a write would fail (the writer must learn). */
static bool writable(const wisp_pipe_end *e) {
  return !e->peer || e->shut || wisp_buf_len(&e->peer->in) < WISP_PIPE_CAP;
}

static int due(const wisp_pipe_end *e) {
  int ev = 0;
  if (e->want_read && readable(e)) ev |= WISP_PIPE_READ;
  if (e->want_write && writable(e)) ev |= WISP_PIPE_WRITE;
  return ev;
}

/* Puts |e| on the ready list if its owner waits for what it is. */
static void touch(wisp_pipe_end *e) {
  if (!e->cb || wisp_list_linked(&e->link) || !due(e)) return;
  wisp_list_push_back(&e->sched->ready, &e->link);
}

void wisp_pipe_sched_init(wisp_pipe_sched *s) { wisp_list_init(&s->ready); }

bool wisp_pipe_sched_run(wisp_pipe_sched *s) {
  if (wisp_list_empty(&s->ready)) return false;
  /* This run's ends, taken off the list: those made due during it go on
   * the emptied list, for the next run. */
  wisp_list now;
  now.next = s->ready.next;
  now.prev = s->ready.prev;
  now.next->prev = &now;
  now.prev->next = &now;
  wisp_list_init(&s->ready);
  bool called = false;
  for (wisp_list *n; (n = wisp_list_first(&now)) != NULL;) {
    wisp_list_unlink(n);
    wisp_pipe_end *e = WISP_LIST_ELEM(n, wisp_pipe_end, link);
    int ev = due(e); /* may have stopped being due since it was put there */
    if (!ev) continue;
    called = true;
    e->cb(e, ev, e->arg); /* may close |e|, or others (they unlink) */
  }
  return called;
}

void wisp_pipe_new(wisp_pipe_sched *s, wisp_pipe_end **a, wisp_pipe_end **b) {
  wisp_pipe_end *x = wisp_calloc(1, sizeof(*x)), *y = wisp_calloc(1, sizeof(*y));
  x->peer = y;
  y->peer = x;
  x->sched = y->sched = s;
  x->in.slab = y->in.slab = true;
  *a = x;
  *b = y;
}

void wisp_pipe_set_cb(wisp_pipe_end *e, wisp_pipe_cb cb, void *arg) {
  e->cb = cb;
  e->arg = arg;
}

void wisp_pipe_want(wisp_pipe_end *e, bool read, bool write) {
  e->want_read = read;
  e->want_write = write;
  if (!read && !write) {
    wisp_list_unlink(&e->link);
    return;
  }
  touch(e);
}

ssize_t wisp_pipe_read(wisp_pipe_end *e, void *buf, size_t len) {
  assert(len > 0); /* 0 would be taken for EOF */
  size_t have = wisp_buf_len(&e->in);
  if (have == 0) {
    e->drained = false;
    if (e->in_rst) { /* once, as a socket's error; then EOF */
      e->in_rst = false;
      errno = ECONNRESET;
      return WISP_PIPE_ERROR;
    }
    return e->in_eof ? 0 : WISP_PIPE_AGAIN;
  }
  bool was_full = have >= WISP_PIPE_CAP;
  size_t n = wisp_buf_read(&e->in, buf, len);
  e->drained = wisp_buf_len(&e->in) == 0;
  if (e->drained) wisp_buf_cleanup(&e->in); /* an idle pipe holds no buffer */
  if (was_full && e->peer) touch(e->peer);  /* room again for its writer */
  touch(e);                                 /* level-triggered: what is left is due again */
  return (ssize_t)n;
}

ssize_t wisp_pipe_write(wisp_pipe_end *e, const void *buf, size_t len) {
  if (!e->peer || e->shut) {
    errno = EPIPE;
    return WISP_PIPE_ERROR;
  }
  wisp_pipe_end *r = e->peer;
  size_t room = WISP_PIPE_CAP - wisp_buf_len(&r->in);
  if (room == 0) return WISP_PIPE_AGAIN;
  size_t n = len < room ? len : room;
  if (n == 0) return 0;
  if (wisp_buf_append(&r->in, buf, n, WISP_PIPE_CAP) != WISP_OK) return WISP_PIPE_AGAIN; /* unreachable: room */
  touch(r);
  return (ssize_t)n;
}

void wisp_pipe_shutdown(wisp_pipe_end *e) {
  if (e->shut) return;
  e->shut = true;
  if (!e->peer) return;
  e->peer->in_eof = true;
  touch(e->peer);
}

void wisp_pipe_close(wisp_pipe_end *e) {
  if (!e) return;
  wisp_pipe_end *p = e->peer;
  if (p) {
    p->peer = NULL;
    p->in_eof = true;
    /* As a stream socket closed with bytes unread in it: a reset. */
    if (wisp_buf_len(&e->in)) p->in_rst = true;
    touch(p);
  }
  wisp_list_unlink(&e->link);
  wisp_buf_cleanup(&e->in);
  free(e);
}
