#include "lib/wisp_sniff.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/wisp_mem.h"

typedef struct {
  struct ev_loop *loop;
  int fd;
  ev_io io;
  ev_timer timer;
  wisp_sniff_cb cb;
  void *arg;
} sniff;

static void done(sniff *sn, int first) {
  ev_io_stop(sn->loop, &sn->io);
  ev_timer_stop(sn->loop, &sn->timer);
  int fd = sn->fd;
  wisp_sniff_cb cb = sn->cb;
  void *arg = sn->arg;
  free(sn);
  if (first == WISP_SNIFF_CLOSED) close(fd);
  cb(fd, first, arg);
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents) {
  sniff *sn = w->data;
  uint8_t b;
  ssize_t n = recv(sn->fd, &b, 1, MSG_PEEK);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  done(sn, n == 1 ? b : WISP_SNIFF_CLOSED);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents) { done(w->data, WISP_SNIFF_TIMEOUT); }

void wisp_sniff_start(struct ev_loop *loop, int fd, double timeout, wisp_sniff_cb cb, void *arg) {
  sniff *sn = wisp_calloc(1, sizeof(*sn));
  sn->loop = loop;
  sn->fd = fd;
  sn->cb = cb;
  sn->arg = arg;
  ev_io_init(&sn->io, on_readable, fd, EV_READ);
  ev_timer_init(&sn->timer, on_timeout, timeout, 0);
  sn->io.data = sn->timer.data = sn;
  ev_io_start(loop, &sn->io);
  ev_timer_start(loop, &sn->timer);
}
