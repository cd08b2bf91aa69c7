/* Unit tests for lib/wisp_sniff: the first-bytes classifier (a table, every
 * prefix of the HTTP/2 preface, decisions that never change), and the
 * watcher on real sockets (TCP on loopback and a Unix socketpair): bytes in
 * pieces, a half-sent preface then EOF or silence, nothing at all, a close;
 * the bytes stay unread and SO_RCVLOWAT is put back. Also every prefix of
 * a real BoringSSL ClientHello and of every registered HTTP/1 method, every
 * first byte, and seeded garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "lib/wisp_net.h"
#include "lib/wisp_sniff.h"
#include "tests/unit/test_util.h"

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define PREFACE_LINE "PRI * HTTP/2.0\r\n" /* the first line alone */

typedef struct {
  const char *bytes;
  size_t len; /* 0: strlen(bytes) */
  wisp_sniff_proto want;
} sniff_case;

static const sniff_case kCases[] = {
    {"", 0, WISP_SNIFF_NEED_MORE},
    /* TLS: a handshake record, SSL 3.0 / TLS major version */
    {"\x16", 0, WISP_SNIFF_NEED_MORE},
    {"\x16\x03", 0, WISP_SNIFF_TLS},
    {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 0, WISP_SNIFF_TLS},
    {"\x16\x02", 0, WISP_SNIFF_OTHER},
    {"\x16\x00", 2, WISP_SNIFF_OTHER},
    {"\x15\x03", 0, WISP_SNIFF_OTHER}, /* an alert record is no client hello */
    /* HTTP/2: only the whole preface */
    {PREFACE, 0, WISP_SNIFF_HTTP2},
    {PREFACE "\x00\x00\x12\x04", 28, WISP_SNIFF_HTTP2},
    {PREFACE_LINE, 0, WISP_SNIFF_NEED_MORE},
    {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r", 0, WISP_SNIFF_NEED_MORE},
    {"P", 0, WISP_SNIFF_NEED_MORE},
    /* past the preface, "PRI " is a method token and a space like any */
    {"PRI * HTTP/2.0\r\n\r\nSM\r\n\rX", 0, WISP_SNIFF_HTTP1},
    {"PRI * HTTP/1.1\r\n", 0, WISP_SNIFF_HTTP1},
    {"PRIX", 0, WISP_SNIFF_NEED_MORE},
    /* HTTP/1: a method token and a space */
    {"GET ", 0, WISP_SNIFF_HTTP1},
    {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, WISP_SNIFF_HTTP1},
    {"POST /x HTTP/1.1\r\n", 0, WISP_SNIFF_HTTP1},
    {"OPTIONS * HTTP/1.1\r\n", 0, WISP_SNIFF_HTTP1},
    {"CONNECT a:443 HTTP/1.1\r\n", 0, WISP_SNIFF_HTTP1},
    {"M-SEARCH * HTTP/1.1\r\n", 0, WISP_SNIFF_HTTP1},
    {"BASELINE-CONTROL ", 0, WISP_SNIFF_HTTP1},
    {"ABCDEFGHIJKLMNOPQRST ", 0, WISP_SNIFF_HTTP1}, /* WISP_SNIFF_METHOD_MAX letters */
    {"ABCDEFGHIJKLMNOPQRSTU ", 0, WISP_SNIFF_OTHER},
    {"ABCDEFGHIJKLMNOPQRST", 0, WISP_SNIFF_NEED_MORE},
    {"GET", 0, WISP_SNIFF_NEED_MORE},
    {"G", 0, WISP_SNIFF_NEED_MORE},
    {" GET /", 0, WISP_SNIFF_OTHER},
    {"GE(T /", 0, WISP_SNIFF_OTHER},
    {"GET\t/", 0, WISP_SNIFF_OTHER},
    /* other TCP */
    {"*1\r\n$4\r\nPING\r\n", 0, WISP_SNIFF_OTHER},             /* redis */
    {"\x00\x00\x00\x08\x04\xd2\x16\x2f", 8, WISP_SNIFF_OTHER}, /* postgres SSLRequest */
    {"SSH-2.0-OpenSSH_9.2\r\n", 0, WISP_SNIFF_OTHER},
    {"\x80\x01", 0, WISP_SNIFF_OTHER},
    {"\xff", 0, WISP_SNIFF_OTHER},
};

static wisp_sniff_proto classify_str(const char *s, size_t len) { return wisp_sniff_classify((const uint8_t *)s, len); }

static void test_classify_table(void **state) {
  for (size_t i = 0; i < sizeof(kCases) / sizeof(kCases[0]); i++) {
    const sniff_case *c = &kCases[i];
    size_t len = c->len ? c->len : strlen(c->bytes);
    wisp_sniff_proto got = classify_str(c->bytes, len);
    if (got != c->want)
      fail_msg("case %zu (%.*s): got %s, want %s", i, (int)len, c->bytes, wisp_sniff_proto_name(got),
               wisp_sniff_proto_name(c->want));
  }
}

/* The defect this module fixed: any prefix of the preface was HTTP/2. */
static void test_preface_prefixes_are_not_http2(void **state) {
  const char *p = PREFACE;
  for (size_t n = 1; n < strlen(p); n++) assert_int_equal(classify_str(p, n), WISP_SNIFF_NEED_MORE);
  assert_int_equal(classify_str(p, strlen(p)), WISP_SNIFF_HTTP2);
}

/* A decision stands whatever follows; NEED_MORE never lasts past the look. */
static void test_decisions_are_final(void **state) {
  static const char *const kStreams[] = {PREFACE "junk", "GET / HTTP/1.1\r\n\r\n", "\x16\x03\x01\x00\x05",
                                         "PRI * HTTP/2.0\r\nxx\r\n\r\n", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"};
  for (size_t s = 0; s < sizeof(kStreams) / sizeof(kStreams[0]); s++) {
    const char *d = kStreams[s];
    wisp_sniff_proto decided = WISP_SNIFF_NEED_MORE;
    for (size_t n = 0; n <= strlen(d); n++) {
      wisp_sniff_proto p = classify_str(d, n);
      if (decided != WISP_SNIFF_NEED_MORE) assert_int_equal(p, decided);
      decided = p;
      if (n >= WISP_SNIFF_PEEK_MAX) assert_int_not_equal(p, WISP_SNIFF_NEED_MORE);
    }
    assert_int_not_equal(decided, WISP_SNIFF_NEED_MORE);
  }
}

static void test_names(void **state) {
  assert_string_equal(wisp_sniff_proto_name(WISP_SNIFF_HTTP2), "h2");
  assert_string_equal(wisp_sniff_proto_name(WISP_SNIFF_TLS), "tls");
  assert_string_equal(wisp_sniff_proto_name(WISP_SNIFF_OTHER), "other");
  assert_string_equal(wisp_sniff_proto_name(WISP_SNIFF_TIMEOUT), "timeout");
}

/* ---- every prefix, every first byte, and garbage ---- */

/* The bytes BoringSSL's client sends first (its whole ClientHello record). */
static size_t client_hello(uint8_t *out, size_t cap) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  assert_non_null(ctx);
  SSL *ssl = SSL_new(ctx);
  BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rbio, wbio);
  SSL_set_connect_state(ssl);
  assert_int_equal(SSL_set_tlsext_host_name(ssl, "orders.shop.svc"), 1);
  static const uint8_t kAlpn[] = "\x02h2";
  assert_int_equal(SSL_set_alpn_protos(ssl, kAlpn, sizeof(kAlpn) - 1), 0);
  assert_int_equal(SSL_do_handshake(ssl), -1); /* waits for the ServerHello */
  const uint8_t *data = NULL;
  size_t len = 0;
  assert_int_equal(BIO_mem_contents(wbio, &data, &len), 1);
  assert_true(len > WISP_SNIFF_PEEK_MAX && len <= cap);
  memcpy(out, data, len);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return len;
}

/* A real ClientHello: its first byte alone is undecided, every longer
 * prefix is TLS (the record header is all the classifier reads). */
static void test_client_hello_prefixes(void **state) {
  uint8_t hello[4096];
  size_t len = client_hello(hello, sizeof(hello));
  assert_int_equal(hello[0], 0x16);
  assert_int_equal(wisp_sniff_classify(hello, 1), WISP_SNIFF_NEED_MORE);
  for (size_t n = 2; n <= len; n++) {
    if (wisp_sniff_classify(hello, n) != WISP_SNIFF_TLS) fail_msg("ClientHello prefix of %zu bytes is not TLS", n);
  }
  /* Any record version under major 3 (SSL 3.0, TLS 1.0-1.3) is TLS. */
  for (int minor = 0; minor <= 4; minor++) {
    uint8_t rec[] = {0x16, 0x03, (uint8_t)minor, 0x00, 0x05};
    assert_int_equal(wisp_sniff_classify(rec, sizeof(rec)), WISP_SNIFF_TLS);
  }
}

/* Every registered method (RFC 9110 and the IANA registry's longest), in
 * every prefix: undecided until the space, HTTP/1 from it on. */
static void test_method_prefixes(void **state) {
  static const char *const kMethods[] = {
      "GET",   "HEAD",        "POST",  "PUT",      "DELETE",          "CONNECT",          "OPTIONS",           "TRACE",
      "PATCH", "PROPFIND",    "MKCOL", "M-SEARCH", "VERSION-CONTROL", "BASELINE-CONTROL", "UPDATEREDIRECTREF", "get",
      "Post",  "X_CUSTOM.1~",
  };
  for (size_t m = 0; m < sizeof(kMethods) / sizeof(kMethods[0]); m++) {
    char line[64];
    int len = snprintf(line, sizeof(line), "%s /x HTTP/1.1\r\n", kMethods[m]);
    size_t space = strlen(kMethods[m]);
    for (size_t n = 1; n <= (size_t)len; n++) {
      wisp_sniff_proto want = n <= space ? WISP_SNIFF_NEED_MORE : WISP_SNIFF_HTTP1;
      wisp_sniff_proto got = classify_str(line, n);
      if (got != want)
        fail_msg("\"%.*s\": got %s, want %s", (int)n, line, wisp_sniff_proto_name(got), wisp_sniff_proto_name(want));
    }
  }
}

/* Each prefix of the preface with its next byte changed: what the bytes
 * then are (never HTTP/2, decided or still a method token). */
static void test_preface_diverging(void **state) {
  const char *p = PREFACE;
  for (size_t k = 0; k < strlen(p); k++) {
    char buf[WISP_SNIFF_PEEK_MAX + 1];
    memcpy(buf, p, k);
    buf[k] = '\x01'; /* in no method token, no record type */
    wisp_sniff_proto got = classify_str(buf, k + 1);
    /* Up to "PRI", a control byte ends a method token that had no space:
     * other. From "PRI " on, a method and a space were seen: an HTTP/1
     * hint (the parser then refuses "PRI *\x01"). */
    assert_int_equal(got, k < 4 ? WISP_SNIFF_OTHER : WISP_SNIFF_HTTP1);
    if (k >= 3) continue;
    buf[k] = 'X'; /* "X", "PX", "PRX": still a method token */
    assert_int_equal(classify_str(buf, k + 1), WISP_SNIFF_NEED_MORE);
  }
  /* "PRI " that goes on unlike the preface: a method and a space. */
  assert_int_equal(classify_str("PRI *", 5), WISP_SNIFF_NEED_MORE);
  assert_int_equal(classify_str("PRI /", 5), WISP_SNIFF_HTTP1);
}

/* Every first byte alone: 0x16 (a TLS record) and token characters wait
 * for more; anything else is decided at once. */
static void test_every_first_byte(void **state) {
  for (int b = 0; b < 256; b++) {
    uint8_t c = (uint8_t)b;
    bool token = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
    wisp_sniff_proto want = c == 0x16 || token ? WISP_SNIFF_NEED_MORE : WISP_SNIFF_OTHER;
    wisp_sniff_proto got = wisp_sniff_classify(&c, 1);
    if (got != want)
      fail_msg("byte 0x%02x: got %s, want %s", b, wisp_sniff_proto_name(got), wisp_sniff_proto_name(want));
  }
}

/* Garbage (a fixed xorshift sequence, biased toward token bytes so some
 * of it stays undecided for a while): a decision never changes as bytes
 * arrive, nothing is undecided at the look's length, and bytes past the
 * look change nothing. */
static void test_garbage_is_decided_and_final(void **state) {
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  static const char kToken[] = "GETPOSTabcXYZ019-_.";
  for (int round = 0; round < 20000; round++) {
    uint8_t buf[WISP_SNIFF_PEEK_MAX + 16];
    for (size_t i = 0; i < sizeof(buf); i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      uint8_t r = (uint8_t)(x >> 24);
      buf[i] = (r & 3) ? (uint8_t)kToken[r % (sizeof(kToken) - 1)] : (uint8_t)(x >> 40);
    }
    if (round % 5 == 0) buf[0] = 0x16;
    wisp_sniff_proto decided = WISP_SNIFF_NEED_MORE;
    for (size_t n = 0; n <= sizeof(buf); n++) {
      wisp_sniff_proto p = wisp_sniff_classify(buf, n);
      if (decided != WISP_SNIFF_NEED_MORE && p != decided)
        fail_msg("round %d: decided %s, then %s at %zu bytes", round, wisp_sniff_proto_name(decided),
                 wisp_sniff_proto_name(p), n);
      if (n >= WISP_SNIFF_PEEK_MAX && p == WISP_SNIFF_NEED_MORE) fail_msg("round %d: undecided at %zu bytes", round, n);
      assert_true(p != WISP_SNIFF_HTTP2 || memcmp(buf, PREFACE, WISP_SNIFF_PEEK_MAX) == 0);
      decided = p;
    }
  }
}

/* ---- the watcher, on real sockets ---- */

typedef struct {
  bool called;
  int fd;
  wisp_sniff_proto proto;
  double at; /* loop time of the call */
  struct ev_loop *loop;
} result;

static void on_sniffed(int fd, wisp_sniff_proto proto, void *arg) {
  result *r = arg;
  r->called = true;
  r->fd = fd;
  r->proto = proto;
  r->at = ev_now(r->loop);
  ev_break(r->loop, EVBREAK_ALL);
}

/* A connected pair: [0] the accepted (watched) end, [1] the client. */
static void tcp_pair(int fds[2]) {
  wisp_addr a;
  int lfd;
  assert_int_equal(wisp_addr_parse(&a, "127.0.0.1:0"), WISP_OK);
  assert_int_equal(wisp_net_listen(&lfd, &a, 4), WISP_OK);
  assert_int_equal(wisp_net_local_addr(lfd, &a), WISP_OK);
  int cfd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(cfd >= 0);
  assert_int_equal(connect(cfd, (struct sockaddr *)&a.sa, a.len), 0);
  int sfd = -1;
  for (int i = 0; i < 200 && sfd < 0; i++) {
    if (wisp_net_accept(&sfd, lfd, NULL) != WISP_OK) usleep(5000);
  }
  assert_true(sfd >= 0);
  close(lfd);
  fds[0] = sfd;
  fds[1] = cfd;
}

enum { KIND_TCP, KIND_UNIX, KINDS };

static void make_pair(int kind, int fds[2]) {
  if (kind == KIND_TCP) {
    tcp_pair(fds);
  } else {
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  }
}

/* The watcher gave the socket back with SO_RCVLOWAT as it found it. */
static void assert_lowat_restored(int fd) {
  int lowat = 0;
  socklen_t ll = sizeof(lowat);
  assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, &ll), 0);
  assert_int_equal(lowat, 1);
}

typedef struct {
  int fd;
  const char *bytes;
  size_t len;
  int shut; /* 0: nothing; 1: shutdown(SHUT_WR) after; 2: close */
} later_write;

static void on_later(struct ev_loop *loop, ev_timer *w, int revents) {
  later_write *lw = w->data;
  if (lw->len) assert_int_equal(send(lw->fd, lw->bytes, lw->len, MSG_NOSIGNAL), (ssize_t)lw->len);
  if (lw->shut == 1) shutdown(lw->fd, SHUT_WR);
  if (lw->shut == 2) close(lw->fd);
}

static void on_guard(struct ev_loop *loop, ev_timer *w, int revents) { ev_break(loop, EVBREAK_ALL); }

/* Runs the watcher on fds[0] (timeout |timeout|): |first| is sent before,
 * |then| after |delay| s. Returns the result; at most 5 s of loop. */
static result watch(int fds[2], double timeout, const char *first, size_t first_len, const char *then, size_t then_len,
                    int shut, double delay, unsigned *out_iterations) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  result r = {.loop = loop, .fd = -1};
  if (first_len) assert_int_equal(send(fds[1], first, first_len, MSG_NOSIGNAL), (ssize_t)first_len);
  later_write lw = {fds[1], then, then_len, shut};
  ev_timer later, guard;
  ev_timer_init(&later, on_later, delay, 0);
  later.data = &lw;
  ev_timer_start(loop, &later);
  ev_timer_init(&guard, on_guard, 5.0, 0);
  ev_timer_start(loop, &guard);
  double start = ev_now(loop);
  wisp_sniff_start(loop, fds[0], timeout, on_sniffed, &r);
  ev_run(loop, 0);
  if (out_iterations) *out_iterations = ev_iteration(loop);
  r.at -= start;
  ev_timer_stop(loop, &later);
  ev_timer_stop(loop, &guard);
  ev_loop_destroy(loop);
  assert_true(r.called);
  return r;
}

/* Every byte the peer sent is still there for the next owner. */
static void assert_unread(int fd, const char *want, size_t len) {
  char buf[256];
  ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  assert_int_equal(n, (ssize_t)len);
  assert_memory_equal(buf, want, len);
}

static void test_watch_preface_whole(void **state) {
  int fds[2];
  tcp_pair(fds);
  result r = watch(fds, 2.0, PREFACE "\x00\x00", 26, NULL, 0, 0, 10, NULL);
  assert_int_equal(r.proto, WISP_SNIFF_HTTP2);
  assert_int_equal(r.fd, fds[0]);
  assert_unread(fds[0], PREFACE "\x00\x00", 26);
  assert_lowat_restored(fds[0]);
  close(fds[0]);
  close(fds[1]);
}

/* The preface in two pieces, 0.2 s apart: the watcher waits for the rest
 * (without spinning on the bytes it has already seen), then says HTTP/2. */
static void test_watch_preface_in_pieces(void **state) {
  for (int kind = 0; kind < KINDS; kind++) {
    int fds[2];
    make_pair(kind, fds);
    unsigned iterations = 0;
    result r = watch(fds, 2.0, PREFACE_LINE, 16, PREFACE + 16, 8, 0, 0.2, &iterations);
    assert_int_equal(r.proto, WISP_SNIFF_HTTP2);
    assert_true(r.at >= 0.15);
    /* TCP honours SO_RCVLOWAT: a handful of wake-ups; a Unix socket is
     * re-polled every 10 ms: ~20. A spin would be many thousands. */
    unsigned most = kind == KIND_TCP ? 10 : 100;
    if (iterations > most) fail_msg("%s: %u loop iterations", kind == KIND_TCP ? "tcp" : "unix", iterations);
    assert_unread(fds[0], PREFACE, 24);
    assert_lowat_restored(fds[0]);
    close(fds[0]);
    close(fds[1]);
  }
}

/* Half a preface and a half-close: OTHER (an L4 stream), not HTTP/2. */
static void test_watch_half_preface_then_eof(void **state) {
  for (int kind = 0; kind < KINDS; kind++) {
    int fds[2];
    make_pair(kind, fds);
    result r = watch(fds, 2.0, PREFACE_LINE, 16, NULL, 0, 1, 0.1, NULL);
    assert_int_equal(r.proto, WISP_SNIFF_OTHER);
    assert_true(r.at < 1.0); /* at the EOF, not the timeout */
    assert_unread(fds[0], PREFACE_LINE, 16);
    close(fds[0]);
    close(fds[1]);
  }
}

/* Half a preface and silence: OTHER at the timeout. */
static void test_watch_half_preface_then_silence(void **state) {
  int fds[2];
  tcp_pair(fds);
  result r = watch(fds, 0.3, PREFACE_LINE, 16, NULL, 0, 0, 10, NULL);
  assert_int_equal(r.proto, WISP_SNIFF_OTHER);
  assert_true(r.at >= 0.25 && r.at < 2.0);
  assert_unread(fds[0], PREFACE_LINE, 16);
  close(fds[0]);
  close(fds[1]);
}

static void test_watch_tls_and_http1(void **state) {
  int fds[2];
  tcp_pair(fds);
  result r = watch(fds, 2.0, "\x16\x03\x01", 3, NULL, 0, 0, 10, NULL);
  assert_int_equal(r.proto, WISP_SNIFF_TLS);
  assert_true(r.at < 1.0);
  close(fds[0]);
  close(fds[1]);
  tcp_pair(fds);
  r = watch(fds, 2.0, "GE", 2, "T /", 3, 0, 0.05, NULL);
  assert_int_equal(r.proto, WISP_SNIFF_HTTP1);
  assert_unread(fds[0], "GET /", 5);
  close(fds[0]);
  close(fds[1]);
}

static void test_watch_silence_and_close(void **state) {
  int fds[2];
  tcp_pair(fds);
  result r = watch(fds, 0.2, NULL, 0, NULL, 0, 0, 10, NULL);
  assert_int_equal(r.proto, WISP_SNIFF_TIMEOUT);
  assert_int_equal(r.fd, fds[0]); /* still open: the callback's */
  assert_int_equal(fcntl(fds[0], F_GETFD), FD_CLOEXEC);
  close(fds[0]);
  close(fds[1]);
  tcp_pair(fds);
  r = watch(fds, 2.0, NULL, 0, NULL, 0, 2, 0.05, NULL);
  assert_int_equal(r.proto, WISP_SNIFF_CLOSED);
  assert_true(r.at < 1.0);
  errno = 0;
  assert_int_equal(fcntl(fds[0], F_GETFD), -1); /* the watcher closed it */
  assert_int_equal(errno, EBADF);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_classify_table),
      cmocka_unit_test(test_preface_prefixes_are_not_http2),
      cmocka_unit_test(test_decisions_are_final),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_client_hello_prefixes),
      cmocka_unit_test(test_method_prefixes),
      cmocka_unit_test(test_preface_diverging),
      cmocka_unit_test(test_every_first_byte),
      cmocka_unit_test(test_garbage_is_decided_and_final),
      cmocka_unit_test(test_watch_preface_whole),
      cmocka_unit_test(test_watch_preface_in_pieces),
      cmocka_unit_test(test_watch_half_preface_then_eof),
      cmocka_unit_test(test_watch_half_preface_then_silence),
      cmocka_unit_test(test_watch_tls_and_http1),
      cmocka_unit_test(test_watch_silence_and_close),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
