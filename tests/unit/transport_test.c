/* Unit tests for lib/wisp_transport over real sockets: plain TCP and TLS
 * (BoringSSL, SVIDs made in-test by tests/unit/test_x509) on non-blocking
 * socketpairs, one end each: the handshake and what it gives (ALPN, the
 * verified peer), a refused peer's reason, short writes under a full
 * socket, EOF (FIN, close_notify, a TCP end without close_notify),
 * half-close, bytes pending inside TLS, a hand-over (move) and a reset;
 * TLS reads through the transport's buffer (several records in one read,
 * records split across reads, the stream's end behind buffered bytes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "lib/wisp_tls.h"
#include "lib/wisp_transport.h"
#include "tests/unit/test_util.h"
#include "tests/unit/test_x509.h"

#define ID_SERVER "spiffe://example.org/ns/test/sa/server"
#define ID_CLIENT "spiffe://example.org/ns/test/sa/client"
#define DAY 86400L
/* Bounds on every loop: steps, and how long one wait for a socket may be. */
#define MAX_STEPS 10000
#define POLL_MS 2000

static struct {
  char dir[1024];
  wisp_tls *server, *client, *foreign_client;
} fx;

static const char *P(const char *name) { return test_path(fx.dir, name); }

static bool write_svid(const char *name, const char *id, X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key) {
  test_san san = {GEN_URI, id, 0};
  test_cert_spec spec = {
      .cn = "workload", .sans = &san, .nsans = 1, .not_ca = true, .not_before_sec = -3600, .not_after_sec = DAY};
  X509 *x = test_new_cert(&spec, key, ca, ca_key);
  bool ok = x && test_write_certs(P(name), &x, 1);
  X509_free(x);
  return ok;
}

static wisp_tls *load(const char *cert, const char *bundle) {
  char err[512];
  wisp_tls *t = wisp_tls_new(NULL);
  if (wisp_tls_load_files(t, P(cert), P("key.pem"), P(bundle), err, sizeof(err)) != WISP_OK) {
    print_error("%s\n", err);
    wisp_tls_free(t);
    return NULL;
  }
  return t;
}

static int group_setup(void **state) {
  if (!test_make_tmpdir(fx.dir, sizeof(fx.dir), "transport_test")) return -1;
  EVP_PKEY *ca_key = test_new_key(), *other_key = test_new_key(), *key = test_new_key();
  test_cert_spec ca_spec = {.cn = "test CA", .is_ca = true, .not_before_sec = -3600, .not_after_sec = 10 * DAY};
  test_cert_spec other_spec = {
      .cn = "other CA", .is_ca = true, .serial = 2, .not_before_sec = -3600, .not_after_sec = 10 * DAY};
  X509 *ca = test_new_cert(&ca_spec, ca_key, NULL, NULL);
  X509 *other = test_new_cert(&other_spec, other_key, NULL, NULL);
  bool ok = ca && other && test_write_certs(P("ca.pem"), &ca, 1) && test_write_certs(P("other-ca.pem"), &other, 1) &&
            test_write_key(P("key.pem"), key) && write_svid("server.pem", ID_SERVER, ca, ca_key, key) &&
            write_svid("client.pem", ID_CLIENT, ca, ca_key, key) &&
            write_svid("foreign.pem", ID_CLIENT, other, other_key, key);
  X509_free(ca);
  X509_free(other);
  EVP_PKEY_free(ca_key);
  EVP_PKEY_free(other_key);
  EVP_PKEY_free(key);
  if (!ok) return -1;
  fx.server = load("server.pem", "ca.pem");
  fx.client = load("client.pem", "ca.pem");
  fx.foreign_client = load("foreign.pem", "ca.pem");
  return fx.server && fx.client && fx.foreign_client ? 0 : -1;
}

static int group_teardown(void **state) {
  wisp_tls_free(fx.server);
  wisp_tls_free(fx.client);
  wisp_tls_free(fx.foreign_client);
  test_remove_tmpdir(fx.dir);
  return 0;
}

/* ---- helpers ---- */

static void nonblocking(int fd) { assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0); }

static void pair(int sv[2]) {
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  nonblocking(sv[0]);
  nonblocking(sv[1]);
}

/* Two connected non-blocking loopback TCP sockets: sv[0] accepted, sv[1]
 * connected (a socketpair cannot carry an RST). */
static void tcp_pair(int sv[2]) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sa);
  assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(listen(l, 1), 0);
  assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &len), 0);
  sv[1] = socket(AF_INET, SOCK_STREAM, 0);
  assert_int_equal(connect(sv[1], (struct sockaddr *)&sa, sizeof(sa)), 0);
  sv[0] = accept(l, NULL, NULL);
  assert_true(sv[0] >= 0);
  close(l);
  nonblocking(sv[0]);
  nonblocking(sv[1]);
}

/* Waits (bounded) until |t|'s socket is ready for what it last waited on. */
static void wait_io(const wisp_transport *t) {
  struct pollfd p = {.fd = t->fd, .events = t->want_write ? POLLOUT : POLLIN};
  (void)poll(&p, 1, POLL_MS);
}

typedef struct {
  int sv[2];
  wisp_transport srv, cli;
  wisp_tls_verify vs, vc;
} tls_pair;

/* A server and a client transport over a socketpair, the client's SSL
 * from |client_tls| offering |alpn| (wire format; NULL: wisp_tls's h2)
 * and expecting |expect_id| of the server (NULL: any in the domain). */
static void tls_pair_init_on(tls_pair *p, wisp_tls *client_tls, const uint8_t *alpn, size_t alpn_len,
                             const char *expect_id) {
  p->vc.expect_id = expect_id;
  SSL *s = wisp_tls_new_ssl(fx.server, true, &p->vs);
  SSL *c = wisp_tls_new_ssl(client_tls, false, &p->vc);
  assert_non_null(s);
  assert_non_null(c);
  if (alpn) assert_int_equal(SSL_set_alpn_protos(c, alpn, (unsigned)alpn_len), 0);
  wisp_transport_init(&p->srv, p->sv[0]);
  wisp_transport_set0_tls(&p->srv, s, true);
  wisp_transport_init(&p->cli, -1); /* the fd comes later, as after a connect */
  wisp_transport_set0_tls(&p->cli, c, false);
  wisp_transport_set_fd(&p->cli, p->sv[1]);
}

static void tls_pair_init(tls_pair *p, wisp_tls *client_tls, const uint8_t *alpn, size_t alpn_len,
                          const char *expect_id) {
  memset(p, 0, sizeof(*p));
  pair(p->sv);
  tls_pair_init_on(p, client_tls, alpn, alpn_len, expect_id);
}

/* Steps both handshakes until each is DONE or ERROR; their results. */
static void handshake_both(tls_pair *p, int *out_srv, int *out_cli) {
  int rs = WISP_TRANSPORT_AGAIN, rc = WISP_TRANSPORT_AGAIN;
  for (int i = 0; i < MAX_STEPS && (rs == WISP_TRANSPORT_AGAIN || rc == WISP_TRANSPORT_AGAIN); i++) {
    if (rc == WISP_TRANSPORT_AGAIN) rc = wisp_transport_handshake(&p->cli);
    if (rs == WISP_TRANSPORT_AGAIN) rs = wisp_transport_handshake(&p->srv);
    if (rs == WISP_TRANSPORT_AGAIN && rc != WISP_TRANSPORT_AGAIN) wait_io(&p->srv);
    if (rc == WISP_TRANSPORT_AGAIN && rs != WISP_TRANSPORT_AGAIN) wait_io(&p->cli);
  }
  *out_srv = rs;
  *out_cli = rc;
}

static void tls_pair_up(tls_pair *p) {
  tls_pair_init(p, fx.client, NULL, 0, ID_SERVER);
  int rs, rc;
  handshake_both(p, &rs, &rc);
  assert_int_equal(rs, WISP_TRANSPORT_DONE);
  assert_int_equal(rc, WISP_TRANSPORT_DONE);
}

static void tls_pair_close(tls_pair *p) {
  wisp_transport_close(&p->srv, false);
  wisp_transport_close(&p->cli, false);
}

/* Reads from |t| into |buf| until |len| bytes came, the stream ended, or an
 * error; the count, and in |out_last| the result that stopped it (0 if all
 * came). */
static size_t read_n(wisp_transport *t, uint8_t *buf, size_t len, ssize_t *out_last) {
  size_t got = 0;
  *out_last = 0;
  for (int i = 0; i < MAX_STEPS && got < len; i++) {
    ssize_t n = wisp_transport_read(t, buf + got, len - got);
    if (n == WISP_TRANSPORT_AGAIN) {
      wait_io(t);
      continue;
    }
    if (n <= 0) {
      *out_last = n;
      break;
    }
    got += (size_t)n;
  }
  return got;
}

/* Waits (bounded) for |t|'s next read result that is not AGAIN. */
static ssize_t read_result(wisp_transport *t, uint8_t *buf, size_t len) {
  for (int i = 0; i < MAX_STEPS; i++) {
    ssize_t n = wisp_transport_read(t, buf, len);
    if (n != WISP_TRANSPORT_AGAIN) return n;
    wait_io(t);
  }
  return WISP_TRANSPORT_AGAIN;
}

/* ---- plain TCP ---- */

/* Two plain transports, the ends of one socketpair. */
static void plain_pair(wisp_transport *a, wisp_transport *b) {
  int sv[2];
  pair(sv);
  wisp_transport_init(a, sv[0]);
  wisp_transport_init(b, sv[1]);
}

static void test_plain(void **state) {
  wisp_transport a, b;
  plain_pair(&a, &b);
  assert_false(wisp_transport_is_tls(&a));
  assert_string_equal(a.type->name, "tcp");
  assert_int_equal(wisp_transport_handshake(&a), WISP_TRANSPORT_DONE);
  wisp_transport_peer peer;
  wisp_transport_get_peer(&a, &peer);
  assert_null(peer.alpn);
  assert_null(peer.peer_id);
  assert_false(peer.peer_cert);

  uint8_t buf[64];
  assert_int_equal(wisp_transport_read(&b, buf, sizeof(buf)), WISP_TRANSPORT_AGAIN); /* nothing yet */
  assert_int_equal(wisp_transport_write(&a, (const uint8_t *)"hello", 5), 5);
  assert_int_equal(wisp_transport_write(&a, (const uint8_t *)", world", 7), 7);
  ssize_t last;
  assert_int_equal(read_n(&b, buf, 12, &last), 12);
  assert_memory_equal(buf, "hello, world", 12);
  assert_false(wisp_transport_has_pending(&b));

  /* half-close: b sees the end, and can still answer */
  wisp_transport_shutdown(&a);
  assert_int_equal(read_result(&b, buf, sizeof(buf)), 0);
  assert_int_equal(wisp_transport_write(&b, (const uint8_t *)"bye", 3), 3);
  assert_int_equal(read_n(&a, buf, 3, &last), 3);
  assert_memory_equal(buf, "bye", 3);

  wisp_transport_close(&a, false);
  assert_int_equal(a.fd, -1);
  wisp_transport_close(&a, false); /* a closed transport closes again harmlessly */
  wisp_transport_close(&b, false);
}

/* A socket whose buffer is full takes part of a write, then none (AGAIN);
 * once the reader drained it, everything arrived in order. */
static void check_short_writes(wisp_transport *w, wisp_transport *r) {
  enum { TOTAL = 4 * 1024 * 1024 };
  uint8_t *data = malloc(TOTAL), *got = malloc(TOTAL);
  for (size_t i = 0; i < TOTAL; i++) data[i] = (uint8_t)(i * 7 + i / 4099);
  size_t sent = 0;
  bool blocked = false;
  while (!blocked && sent < TOTAL) {
    ssize_t n = wisp_transport_write(w, data + sent, TOTAL - sent);
    assert_true(n > 0 || n == WISP_TRANSPORT_AGAIN);
    if (n == WISP_TRANSPORT_AGAIN) blocked = true;
    if (n > 0) sent += (size_t)n;
  }
  assert_true(blocked);      /* the buffers filled before 4 MiB went */
  assert_true(sent < TOTAL); /* and the writes said so */
  size_t rcvd = 0;
  for (int i = 0; i < MAX_STEPS && rcvd < TOTAL; i++) {
    ssize_t n = wisp_transport_read(r, got + rcvd, TOTAL - rcvd);
    if (n > 0) rcvd += (size_t)n;
    assert_true(n > 0 || n == WISP_TRANSPORT_AGAIN);
    if (sent < TOTAL) {
      ssize_t m = wisp_transport_write(w, data + sent, TOTAL - sent);
      assert_true(m > 0 || m == WISP_TRANSPORT_AGAIN);
      if (m > 0) sent += (size_t)m;
    }
    if (n == WISP_TRANSPORT_AGAIN) wait_io(r);
  }
  assert_int_equal(rcvd, TOTAL);
  assert_memory_equal(got, data, TOTAL);
  free(data);
  free(got);
}

static void test_plain_short_writes(void **state) {
  wisp_transport a, b;
  plain_pair(&a, &b);
  check_short_writes(&a, &b);
  wisp_transport_close(&a, false);
  wisp_transport_close(&b, false);
}

/* close(reset) sends an RST on TCP: the peer's read fails, not ends. */
static void test_plain_reset(void **state) {
  int sv[2];
  tcp_pair(sv);
  wisp_transport a, b;
  wisp_transport_init(&a, sv[1]);
  wisp_transport_init(&b, sv[0]);
  wisp_transport_close(&a, true);
  uint8_t buf[16];
  errno = 0;
  assert_int_equal(read_result(&b, buf, sizeof(buf)), WISP_TRANSPORT_ERROR);
  assert_int_equal(errno, ECONNRESET);
  wisp_transport_close(&b, false);
}

/* drained says whether the last read(2) found the socket emptied: fewer
 * bytes than asked for (wisp_h2conn ends an upstream's reads on it). */
static void test_plain_drained(void **state) {
  wisp_transport a, b;
  plain_pair(&a, &b);
  uint8_t buf[8];
  assert_int_equal(wisp_transport_write(&a, (const uint8_t *)"0123456789ab", 12), 12);
  ssize_t last;
  assert_int_equal(read_n(&b, buf, sizeof(buf), &last), sizeof(buf)); /* asked 8, got 8: more may wait */
  assert_false(b.drained);
  assert_int_equal(wisp_transport_read(&b, buf, sizeof(buf)), 4); /* asked 8, got the last 4 */
  assert_true(b.drained);
  assert_int_equal(wisp_transport_read(&b, buf, sizeof(buf)), WISP_TRANSPORT_AGAIN); /* still asks */
  assert_false(b.drained);
  wisp_transport_close(&a, false);
  wisp_transport_close(&b, false);
}

/* ---- TLS ---- */

static void test_tls_handshake_peer_and_alpn(void **state) {
  tls_pair p;
  tls_pair_up(&p);
  assert_true(wisp_transport_is_tls(&p.srv));
  assert_string_equal(p.srv.type->name, "tls");
  wisp_transport_peer ps, pc;
  wisp_transport_get_peer(&p.srv, &ps);
  wisp_transport_get_peer(&p.cli, &pc);
  assert_string_equal(ps.peer_id, ID_CLIENT); /* each side verified the other */
  assert_string_equal(pc.peer_id, ID_SERVER);
  assert_true(ps.peer_cert);
  assert_true(wisp_transport_alpn_is(&ps, "h2")); /* wisp_tls's client offers h2 */
  assert_true(wisp_transport_alpn_is(&pc, "h2"));
  assert_false(wisp_transport_alpn_is(&ps, "wisp-l4"));
  assert_false(wisp_transport_alpn_is(&ps, "h"));
  tls_pair_close(&p);
}

static void test_tls_alpn_l4(void **state) {
  static const uint8_t kL4[] = {7, 'w', 'i', 's', 'p', '-', 'l', '4'};
  tls_pair p;
  tls_pair_init(&p, fx.client, kL4, sizeof(kL4), NULL);
  int rs, rc;
  handshake_both(&p, &rs, &rc);
  assert_int_equal(rs, WISP_TRANSPORT_DONE);
  assert_int_equal(rc, WISP_TRANSPORT_DONE);
  wisp_transport_peer ps;
  wisp_transport_get_peer(&p.srv, &ps);
  assert_true(wisp_transport_alpn_is(&ps, "wisp-l4"));
  assert_false(wisp_transport_alpn_is(&ps, "h2"));
  assert_string_equal(ps.peer_id, ID_CLIENT);
  tls_pair_close(&p);
}

/* A refused peer: the handshake fails with the reason in the owner's
 * wisp_tls_verify, on the side that refused. */
static void test_tls_refused(void **state) {
  tls_pair p;
  tls_pair_init(&p, fx.client, NULL, 0, "spiffe://example.org/ns/test/sa/other");
  int rs, rc;
  handshake_both(&p, &rs, &rc);
  assert_int_equal(rc, WISP_TRANSPORT_ERROR);
  assert_int_equal(rs, WISP_TRANSPORT_ERROR); /* it got the client's alert */
  assert_int_equal(p.vc.failure, WISP_TLS_FAIL_IDENTITY);
  assert_non_null(strstr(p.vc.reason, "peer presented " ID_SERVER));
  assert_false(p.vc.peer_ok);
  tls_pair_close(&p);

  tls_pair_init(&p, fx.foreign_client, NULL, 0, NULL);
  handshake_both(&p, &rs, &rc);
  assert_int_equal(rs, WISP_TRANSPORT_ERROR);
  assert_int_equal(p.vs.failure, WISP_TLS_FAIL_UNKNOWN_CA);
  wisp_transport_peer ps;
  wisp_transport_get_peer(&p.srv, &ps);
  assert_null(ps.peer_id); /* not verified: no ID to act on */
  assert_int_equal(ERR_peek_error(), 0);
  tls_pair_close(&p);
}

static void test_tls_data_pending(void **state) {
  tls_pair p;
  tls_pair_up(&p);
  assert_int_equal(wisp_transport_write(&p.cli, (const uint8_t *)"GET /x", 6), 6);
  uint8_t buf[32 * 1024];
  ssize_t last;
  assert_int_equal(read_n(&p.srv, buf, 6, &last), 6);
  assert_memory_equal(buf, "GET /x", 6);

  /* One 16 KiB record, read 100 bytes at a time: the rest is inside TLS,
   * where no socket event announces it. */
  memset(buf, 'z', 16384);
  assert_int_equal(wisp_transport_write(&p.srv, buf, 16384), 16384);
  uint8_t small[100];
  assert_int_equal(read_n(&p.cli, small, sizeof(small), &last), sizeof(small));
  assert_true(wisp_transport_has_pending(&p.cli));
  assert_int_equal(read_n(&p.cli, buf, 16384 - sizeof(small), &last), 16384 - sizeof(small));
  assert_false(wisp_transport_has_pending(&p.cli));
  tls_pair_close(&p);
}

static void test_tls_short_writes(void **state) {
  tls_pair p;
  tls_pair_up(&p);
  check_short_writes(&p.cli, &p.srv);
  tls_pair_close(&p);
}

/* shutdown sends close_notify: the other side reads its end (0) and may
 * still answer; a TCP end without close_notify is TRUNCATED, not an end. */
static void test_tls_shutdown_and_truncation(void **state) {
  tls_pair p;
  tls_pair_up(&p);
  uint8_t buf[64];
  ssize_t last;
  wisp_transport_shutdown(&p.cli);
  assert_int_equal(read_result(&p.srv, buf, sizeof(buf)), 0);
  assert_int_equal(wisp_transport_write(&p.srv, (const uint8_t *)"last words", 10), 10);
  assert_int_equal(read_n(&p.cli, buf, 10, &last), 10);
  assert_memory_equal(buf, "last words", 10);
  tls_pair_close(&p);

  tls_pair_up(&p);
  wisp_transport_close(&p.cli, false); /* no close_notify */
  assert_int_equal(read_result(&p.srv, buf, sizeof(buf)), WISP_TRANSPORT_TRUNCATED);
  assert_int_equal(wisp_transport_write(&p.srv, (const uint8_t *)"x", 1), WISP_TRANSPORT_ERROR); /* EPIPE */
  assert_int_equal(ERR_peek_error(), 0);
  tls_pair_close(&p);
}

/* ---- TLS reads through the transport's buffer ---- */

/* Bytes waiting in |fd|'s receive queue. */
static int queued(int fd) {
  int n = -1;
  assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
  return n;
}

/* Writes |msgs| from |w|, one TLS record each (a socketpair queues them
 * at the other end at once). */
static void write_records(wisp_transport *w, const char *const *msgs, int n) {
  for (int i = 0; i < n; i++) {
    size_t len = strlen(msgs[i]);
    assert_int_equal(wisp_transport_write(w, (const uint8_t *)msgs[i], len), (ssize_t)len);
  }
}

/* Reads |msg| from |t| in one read_pending: from what |t| holds, no
 * read(2) of its socket. */
static void expect_pending(wisp_transport *t, const char *msg) {
  uint8_t buf[256];
  assert_true(wisp_transport_has_pending(t));
  ssize_t n = wisp_transport_read_pending(t, buf, sizeof(buf));
  assert_int_equal(n, (ssize_t)strlen(msg));
  assert_memory_equal(buf, msg, strlen(msg));
}

/* A TLS 1.3 record's bytes besides its data: header, content type, tag. */
enum { kRecordOverhead = 5 + 1 + 16 };

static const char *const kThree[] = {"first record", "second record", "third record"};

/* A pair up, the client's three records sent and the first one read by
 * the server: the other two wait in the server's buffer. */
static void three_buffered(tls_pair *p) {
  tls_pair_up(p);
  write_records(&p->cli, kThree, 3);
  uint8_t buf[256];
  ssize_t last;
  assert_int_equal(read_n(&p->srv, buf, strlen(kThree[0]), &last), strlen(kThree[0]));
  assert_memory_equal(buf, kThree[0], strlen(kThree[0]));
}

/* One read takes every record the socket has: the next ones come from
 * the transport's buffer (no socket event would announce them), and the
 * buffer is gone once empty (an idle connection holds none). */
static void test_tls_records_one_read(void **state) {
  tls_pair p;
  three_buffered(&p);
  uint8_t buf[256];
  ssize_t last;
  assert_int_equal(queued(p.srv.fd), 0); /* all taken by one read(2) */
  expect_pending(&p.srv, kThree[1]);
  expect_pending(&p.srv, kThree[2]);
  assert_false(wisp_transport_has_pending(&p.srv));
  assert_null(p.srv.rbuf);
  assert_int_equal(wisp_transport_read_pending(&p.srv, buf, sizeof(buf)), WISP_TRANSPORT_AGAIN);
  /* read_pending never reads the socket: a record that came since stays
   * there, for the next read. */
  write_records(&p.cli, kThree, 1);
  assert_false(wisp_transport_has_pending(&p.srv));
  assert_int_equal(wisp_transport_read_pending(&p.srv, buf, sizeof(buf)), WISP_TRANSPORT_AGAIN);
  assert_int_equal(read_n(&p.srv, buf, strlen(kThree[0]), &last), strlen(kThree[0]));
  assert_memory_equal(buf, kThree[0], strlen(kThree[0]));
  assert_true(p.srv.drained); /* the record's read(2) got less than the buffer */
  assert_int_equal(wisp_transport_read(&p.srv, buf, sizeof(buf)), WISP_TRANSPORT_AGAIN);
  assert_false(p.srv.drained);
  assert_null(p.srv.rbuf);
  tls_pair_close(&p);
}

/* Records that reach the socket in pieces (a header split, a body split,
 * the next record's start behind the end of one) come out whole and in
 * order: the client writes to a side socketpair, the test relays the
 * bytes to the server in small steps. */
static void test_tls_record_split(void **state) {
  tls_pair p;
  tls_pair_up(&p);
  int side[2];
  pair(side);
  int cli_fd = p.cli.fd;
  wisp_transport_set_fd(&p.cli, side[1]);
  uint8_t big[20000];
  for (size_t i = 0; i < sizeof(big); i++) big[i] = (uint8_t)(i * 7);
  for (size_t put = 0, i = 0; put < sizeof(big) && i < MAX_STEPS; i++) { /* 16 KiB + the rest: 2 records */
    ssize_t n = wisp_transport_write(&p.cli, big + put, sizeof(big) - put);
    assert_true(n > 0);
    put += (size_t)n;
  }
  write_records(&p.cli, kThree, 1);
  uint8_t wire[24000];
  ssize_t wire_len = read(side[0], wire, sizeof(wire));
  assert_true(wire_len > (ssize_t)sizeof(big));
  uint8_t got[sizeof(big) + 64];
  size_t have = 0;
  const size_t steps[] = {3, 4, 1000, 15500, 2000, 1};
  size_t off = 0;
  for (size_t k = 0; off < (size_t)wire_len; k++) {
    size_t step = k < sizeof(steps) / sizeof(steps[0]) ? steps[k] : 1500;
    if (step > (size_t)wire_len - off) step = (size_t)wire_len - off;
    assert_int_equal(write(cli_fd, wire + off, step), (ssize_t)step);
    off += step;
    for (int i = 0; i < MAX_STEPS; i++) {
      ssize_t n = wisp_transport_read(&p.srv, got + have, sizeof(got) - have);
      if (n == WISP_TRANSPORT_AGAIN) break;
      assert_true(n > 0);
      have += (size_t)n;
    }
    assert_null(p.srv.rbuf); /* read until AGAIN: nothing left in the buffer (a record's start may be in the SSL) */
  }
  assert_int_equal(have, sizeof(big) + strlen(kThree[0]));
  assert_memory_equal(got, big, sizeof(big));
  assert_memory_equal(got + sizeof(big), kThree[0], strlen(kThree[0]));
  assert_null(p.srv.rbuf);
  wisp_transport_set_fd(&p.cli, cli_fd);
  close(side[0]);
  close(side[1]);
  tls_pair_close(&p);
}

/* The end of the stream comes after the bytes held: close_notify reads as
 * 0, a TCP end without it as TRUNCATED, a reset as ERROR with the
 * socket's errno, each once what was buffered before it was read. */
static void test_tls_buffered_then_end(void **state) {
  uint8_t buf[256];
  ssize_t last;
  for (int how = 0; how < 3; how++) {
    tls_pair p;
    memset(&p, 0, sizeof(p));
    if (how == 2) {
      tcp_pair(p.sv);
    } else {
      pair(p.sv);
    }
    tls_pair_init_on(&p, fx.client, NULL, 0, ID_SERVER);
    int rs, rc;
    handshake_both(&p, &rs, &rc);
    assert_int_equal(rs, WISP_TRANSPORT_DONE);
    assert_int_equal(rc, WISP_TRANSPORT_DONE);
    write_records(&p.cli, kThree, 2);
    if (how == 0) wisp_transport_shutdown(&p.cli);
    /* once both records are there (loopback TCP may take a moment), the
     * first read takes them */
    for (int i = 0; i < MAX_STEPS && queued(p.srv.fd) < 2 * kRecordOverhead + 25; i++) usleep(1000);
    assert_int_equal(read_n(&p.srv, buf, strlen(kThree[0]), &last), strlen(kThree[0]));
    assert_int_equal(queued(p.srv.fd), 0);
    if (how == 1) wisp_transport_close(&p.cli, false); /* a TCP end, no close_notify */
    if (how == 2) wisp_transport_close(&p.cli, true);  /* an RST */
    expect_pending(&p.srv, kThree[1]);
    errno = 0;
    ssize_t want[] = {0, WISP_TRANSPORT_TRUNCATED, WISP_TRANSPORT_ERROR};
    assert_int_equal(read_result(&p.srv, buf, sizeof(buf)), want[how]);
    if (how == 2) assert_int_equal(errno, ECONNRESET);
    assert_int_equal(ERR_peek_error(), 0);
    assert_null(p.srv.rbuf);
    tls_pair_close(&p);
  }
}

/* A caller's last record and its bare FIN (no close_notify) in one
 * read(2)'s reach: the read after the record finds the end at once, in the
 * same wake-up (not AGAIN, which would leave it to the next one: by then
 * the caller's requests would have gone upstream, and be cancelled there
 * as its premature resets). */
static void test_tls_record_then_fin_same_wakeup(void **state) {
  tls_pair p;
  tls_pair_up(&p);
  write_records(&p.cli, kThree, 1);
  assert_int_equal(shutdown(p.cli.fd, SHUT_WR), 0);
  uint8_t buf[256];
  ssize_t last;
  assert_int_equal(read_n(&p.srv, buf, strlen(kThree[0]), &last), strlen(kThree[0]));
  assert_memory_equal(buf, kThree[0], strlen(kThree[0]));
  assert_int_equal(wisp_transport_read(&p.srv, buf, sizeof(buf)), WISP_TRANSPORT_TRUNCATED);
  tls_pair_close(&p);
}

/* A hand-over with records buffered: they go along with the transport. */
static void test_tls_move_buffered(void **state) {
  tls_pair p;
  three_buffered(&p);
  uint8_t buf[256];
  ssize_t last;
  assert_true(wisp_transport_has_pending(&p.srv));
  wisp_transport moved;
  wisp_tls_verify mine = p.vs;
  wisp_transport_move(&moved, &p.srv);
  wisp_tls_set_verify(moved.ssl, &mine);
  assert_false(wisp_transport_has_pending(&p.srv));
  wisp_transport_close(&p.srv, false); /* closes nothing, frees nothing */
  expect_pending(&moved, kThree[1]);
  expect_pending(&moved, kThree[2]);
  assert_false(wisp_transport_has_pending(&moved));
  /* and the moved transport reads its socket as before */
  write_records(&p.cli, kThree, 1);
  assert_int_equal(read_n(&moved, buf, strlen(kThree[0]), &last), strlen(kThree[0]));
  assert_memory_equal(buf, kThree[0], strlen(kThree[0]));
  wisp_transport_close(&moved, false);
  wisp_transport_close(&p.cli, false);
}

/* A transport closed with bytes buffered frees them (LeakSanitizer). */
static void test_tls_close_buffered(void **state) {
  tls_pair p;
  three_buffered(&p);
  assert_non_null(p.srv.rbuf);
  tls_pair_close(&p);
  assert_null(p.srv.rbuf);
}

/* A hand-over (the proxy's inbound L4 tunnel takes a connection that
 * negotiated wisp-l4): the new owner's transport carries on, the old one
 * closes nothing. */
static void test_tls_move(void **state) {
  tls_pair p;
  tls_pair_up(&p);
  wisp_transport moved;
  wisp_tls_verify mine = p.vs;
  wisp_transport_move(&moved, &p.srv);
  wisp_tls_set_verify(moved.ssl, &mine);
  assert_int_equal(p.srv.fd, -1);
  assert_null(p.srv.ssl);
  wisp_transport_close(&p.srv, false); /* closes nothing */
  assert_int_equal(wisp_transport_write(&p.cli, (const uint8_t *)"still here", 10), 10);
  uint8_t buf[16];
  ssize_t last;
  assert_int_equal(read_n(&moved, buf, 10, &last), 10);
  assert_memory_equal(buf, "still here", 10);
  wisp_transport_peer pm;
  wisp_transport_get_peer(&moved, &pm);
  assert_ptr_equal(pm.peer_id, mine.peer.id); /* the new owner's copy */
  wisp_transport_close(&moved, false);
  wisp_transport_close(&p.cli, false);
}

/* A record the TLS layer refuses (here one longer than TLS allows) is an
 * ERROR whose errno says so: the owner logs "read failed: %s" with it,
 * which said "Success" (the cleared TLS error left errno 0). */
static void test_tls_bad_record_errno(void **state) {
  tls_pair p;
  tls_pair_up(&p);
  uint8_t bad[5 + 200] = {0x17, 0x03, 0x03, 0xff, 0xff};
  assert_int_equal(write(p.cli.fd, bad, sizeof(bad)), (ssize_t)sizeof(bad));
  uint8_t buf[256];
  errno = 0;
  assert_int_equal(read_result(&p.srv, buf, sizeof(buf)), WISP_TRANSPORT_ERROR);
  assert_int_equal(errno, EPROTO);
  char why[128];
  assert_string_equal(wisp_transport_error_text(&p.srv, errno, why, sizeof(why)),
                      "TLS error: encrypted length too long");
  tls_pair_close(&p);
}

/* A record whose MAC does not check (one byte of a real record changed on
 * the wire) is named for the log, not "Protocol error"; an error that is
 * not TLS's keeps strerror's words. */
static void test_tls_bad_mac_text(void **state) {
  tls_pair p;
  tls_pair_up(&p);
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  int real = p.cli.fd; /* the record goes to sv[0] first, is changed, then on */
  p.cli.fd = sv[0];
  assert_int_equal(wisp_transport_write(&p.cli, (const uint8_t *)"hello", 5), 5);
  p.cli.fd = real;
  uint8_t rec[256];
  ssize_t n = read(sv[1], rec, sizeof(rec));
  assert_true(n > 5);
  rec[n - 1] ^= 0x01; /* the tag's last byte */
  assert_int_equal(write(real, rec, (size_t)n), n);
  uint8_t buf[64];
  errno = 0;
  assert_int_equal(read_result(&p.srv, buf, sizeof(buf)), WISP_TRANSPORT_ERROR);
  char why[128];
  assert_string_equal(wisp_transport_error_text(&p.srv, errno, why, sizeof(why)),
                      "TLS error: decryption failed or bad record mac");
  assert_string_equal(wisp_transport_error_text(&p.srv, ECONNRESET, why, sizeof(why)), strerror(ECONNRESET));
  close(sv[0]);
  close(sv[1]);
  tls_pair_close(&p);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* as the binaries do */
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain),
      cmocka_unit_test(test_plain_short_writes),
      cmocka_unit_test(test_plain_reset),
      cmocka_unit_test(test_plain_drained),
      cmocka_unit_test(test_tls_handshake_peer_and_alpn),
      cmocka_unit_test(test_tls_alpn_l4),
      cmocka_unit_test(test_tls_refused),
      cmocka_unit_test(test_tls_data_pending),
      cmocka_unit_test(test_tls_short_writes),
      cmocka_unit_test(test_tls_shutdown_and_truncation),
      cmocka_unit_test(test_tls_move),
      cmocka_unit_test(test_tls_records_one_read),
      cmocka_unit_test(test_tls_record_split),
      cmocka_unit_test(test_tls_buffered_then_end),
      cmocka_unit_test(test_tls_move_buffered),
      cmocka_unit_test(test_tls_record_then_fin_same_wakeup),
      cmocka_unit_test(test_tls_close_buffered),
      cmocka_unit_test(test_tls_bad_record_errno),
      cmocka_unit_test(test_tls_bad_mac_text),
  };
  return WISP_RUN_GROUP_TESTS(tests, group_setup, group_teardown);
}
