#include "lib/wisp_sniff.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/wisp_mem.h"

/* ---- the classifier (pure) ---- */

#define TLS_HANDSHAKE_RECORD 0x16
#define TLS_MAJOR_VERSION 0x03 /* SSL 3.0 and every TLS record */

static const char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define PREFACE_LEN (sizeof(kPreface) - 1)

_Static_assert(PREFACE_LEN == WISP_SNIFF_PEEK_MAX, "the preface is the longest look");
_Static_assert(WISP_SNIFF_METHOD_MAX + 1 < WISP_SNIFF_PEEK_MAX, "a method and its space fit the look");

/* RFC 9110 tchar: what a method token is made of. */
static bool tchar(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* "METHOD " as an HTTP/1 request line starts. */
static wisp_sniff_proto http1_method(const uint8_t *d, size_t len) {
  for (size_t i = 0; i < len; i++) {
    if (d[i] == ' ') return i > 0 ? WISP_SNIFF_HTTP1 : WISP_SNIFF_OTHER;
    if (!tchar(d[i]) || i == WISP_SNIFF_METHOD_MAX) return WISP_SNIFF_OTHER;
  }
  return WISP_SNIFF_NEED_MORE;
}

wisp_sniff_proto wisp_sniff_classify(const uint8_t *data, size_t len) {
  if (len > WISP_SNIFF_PEEK_MAX) len = WISP_SNIFF_PEEK_MAX;
  if (len == 0) return WISP_SNIFF_NEED_MORE;
  if (data[0] == TLS_HANDSHAKE_RECORD) {
    if (len < 2) return WISP_SNIFF_NEED_MORE;
    return data[1] == TLS_MAJOR_VERSION ? WISP_SNIFF_TLS : WISP_SNIFF_OTHER;
  }
  /* Only the whole preface is HTTP/2: "PRI * HTTP/2.0\r\n" and a stall is
   * not (it would be taken from the L4 path for good). */
  if (memcmp(data, kPreface, len) == 0) return len == PREFACE_LEN ? WISP_SNIFF_HTTP2 : WISP_SNIFF_NEED_MORE;
  return http1_method(data, len);
}

const char *wisp_sniff_proto_name(wisp_sniff_proto p) {
  switch (p) {
    case WISP_SNIFF_TIMEOUT:
      return "timeout";
    case WISP_SNIFF_CLOSED:
      return "closed";
    case WISP_SNIFF_NEED_MORE:
      return "need-more";
    case WISP_SNIFF_TLS:
      return "tls";
    case WISP_SNIFF_HTTP2:
      return "h2";
    case WISP_SNIFF_HTTP1:
      return "http1";
    case WISP_SNIFF_OTHER:
      return "other";
  }
  return "?";
}

/* ---- the watcher ---- */

/* While the socket ignores SO_RCVLOWAT (Unix sockets), how often to look
 * again at undecided bytes instead of spinning on their readiness. */
#define SNIFF_REPOLL 0.01

typedef struct wisp_sniff sniff;

struct wisp_sniff {
  struct ev_loop *loop;
  int fd;
  ev_io io;
  ev_timer deadline;
  ev_timer repoll;
  size_t seen; /* undecided bytes at the last look */
  bool lowat;  /* SO_RCVLOWAT raised: put back before handing |fd| over */
  wisp_sniff_classifier classify;
  size_t peek_max;
  wisp_sniff_cb cb;
  void *arg;
};

static void stop(sniff *sn) {
  ev_io_stop(sn->loop, &sn->io);
  ev_timer_stop(sn->loop, &sn->deadline);
  ev_timer_stop(sn->loop, &sn->repoll);
}

static void done(sniff *sn, wisp_sniff_proto p) {
  stop(sn);
  int fd = sn->fd;
  if (sn->lowat) {
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
  }
  wisp_sniff_cb cb = sn->cb;
  void *arg = sn->arg;
  free(sn);
  if (p == WISP_SNIFF_CLOSED) close(fd);
  cb(fd, p, arg);
}

/* True once the peer has shut down its sending side. */
static bool peer_hung_up(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Peeks at what has arrived; decides, or waits for more without spinning:
 * readiness only once more than |seen| bytes are there (SO_RCVLOWAT), or
 * where that is ignored, a short re-poll. At the deadline (|last|) it
 * decides with what there is. */
static void look(sniff *sn, bool last) {
  uint8_t head[WISP_SNIFF_WATCH_MAX];
  ssize_t n = recv(sn->fd, head, sn->peek_max, MSG_PEEK);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    if (last) done(sn, WISP_SNIFF_TIMEOUT);
    return;
  }
  if (n <= 0) {
    done(sn, WISP_SNIFF_CLOSED);
    return;
  }
  wisp_sniff_proto p = sn->classify(head, (size_t)n);
  /* Undecided and no more coming (half-closed, or out of time): not HTTP/2. */
  if (p == WISP_SNIFF_NEED_MORE && (last || peer_hung_up(sn->fd))) p = WISP_SNIFF_OTHER;
  if (p != WISP_SNIFF_NEED_MORE) {
    done(sn, p);
    return;
  }
  if ((size_t)n == sn->seen) {
    ev_io_stop(sn->loop, &sn->io);
    ev_timer_set(&sn->repoll, SNIFF_REPOLL, 0); /* an expired timer keeps no interval */
    ev_timer_start(sn->loop, &sn->repoll);
    return;
  }
  sn->seen = (size_t)n;
  int lowat = (int)n + 1;
  if (setsockopt(sn->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)) == 0) sn->lowat = true;
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents) { look(w->data, false); }

static void on_repoll(struct ev_loop *loop, ev_timer *w, int revents) {
  sniff *sn = w->data;
  ev_io_start(loop, &sn->io);
  look(sn, false);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents) { look(w->data, true); }

wisp_sniff *wisp_sniff_start(struct ev_loop *loop, int fd, double timeout, wisp_sniff_cb cb, void *arg) {
  return wisp_sniff_start_with(loop, fd, timeout, wisp_sniff_classify, WISP_SNIFF_PEEK_MAX, cb, arg);
}

wisp_sniff *wisp_sniff_start_with(struct ev_loop *loop, int fd, double timeout, wisp_sniff_classifier classify,
                                  size_t peek_max, wisp_sniff_cb cb, void *arg) {
  sniff *sn = wisp_calloc(1, sizeof(*sn));
  sn->loop = loop;
  sn->classify = classify;
  sn->peek_max = peek_max < WISP_SNIFF_WATCH_MAX ? peek_max : WISP_SNIFF_WATCH_MAX;
  sn->fd = fd;
  sn->cb = cb;
  sn->arg = arg;
  ev_io_init(&sn->io, on_readable, fd, EV_READ);
  ev_timer_init(&sn->deadline, on_deadline, timeout, 0);
  ev_timer_init(&sn->repoll, on_repoll, SNIFF_REPOLL, 0);
  sn->io.data = sn->deadline.data = sn->repoll.data = sn;
  ev_io_start(loop, &sn->io);
  ev_timer_start(loop, &sn->deadline);
  return sn;
}

void wisp_sniff_cancel(wisp_sniff *sn) {
  stop(sn);
  close(sn->fd);
  free(sn);
}
