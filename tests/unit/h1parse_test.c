/* Unit tests for lib/wisp_h1parse: messages fed whole and a byte at a time
 * (pipelined requests, chunked bodies with trailers, responses read to the
 * close and to HEAD), each request smuggling refusal with its status and
 * reason, hop-by-hop fields, and the request-line test transparent mode
 * uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "lib/wisp_h1parse.h"
#include "tests/unit/test_util.h"

/* What the callbacks saw, as text: "H<method> <target>|" per head, the
 * body bytes, "E<trailer names>|" per end. */
typedef struct {
  char log[4096];
  size_t len;
  wisp_h1_head last; /* copied scalars of the last head (fields not kept) */
} seen;

static void put(seen *s, const char *d, size_t n) {
  assert_true(s->len + n < sizeof(s->log));
  memcpy(s->log + s->len, d, n);
  s->len += n;
  s->log[s->len] = 0;
}

static void on_head(void *arg, const wisp_h1_head *h) {
  seen *s = arg;
  char b[256];
  int n = h->request ? snprintf(b, sizeof(b), "H%s %.*s|", h->method, (int)h->target_len, h->target)
                     : snprintf(b, sizeof(b), "H%d|", h->status);
  put(s, b, (size_t)n);
  s->last = *h;
}

static void on_body(void *arg, const uint8_t *d, size_t n) { put(arg, (const char *)d, n); }

static void on_end(void *arg, const wisp_h1_field *t, size_t nt) {
  seen *s = arg;
  put(s, "E", 1);
  for (size_t i = 0; i < nt; i++) {
    put(s, t[i].name, t[i].name_len);
    put(s, "=", 1);
    put(s, t[i].value, t[i].value_len);
  }
  put(s, "|", 1);
}

static const wisp_h1parse_cbs kCbs = {on_head, on_body, on_end};

/* Feeds |in| in pieces of |step| bytes (0: whole), then EOF; returns the
 * outcome and fills |s|; |status|/|why| after a refusal. */
static wisp_h1p_result run(enum http_parser_type type, bool no_body, const char *in, size_t step, seen *s, int *status,
                           const char **why) {
  wisp_h1parse p;
  memset(s, 0, sizeof(*s));
  wisp_h1parse_init(&p, type, &kCbs, s);
  wisp_h1parse_set_no_body(&p, no_body);
  size_t len = strlen(in), off = 0;
  wisp_h1p_result r = WISP_H1P_MORE;
  while (off < len && r != WISP_H1P_ERROR) {
    size_t n = step && len - off > step ? step : len - off, used;
    r = wisp_h1parse_feed(&p, (const uint8_t *)in + off, n, &used);
    off += used;
  }
  if (r != WISP_H1P_ERROR) r = wisp_h1parse_eof(&p);
  *status = p.status;
  *why = p.why;
  wisp_h1parse_cleanup(&p);
  return r;
}

static void expect_log(enum http_parser_type type, bool no_body, const char *in, const char *want) {
  size_t steps[] = {0, 1, 7};
  for (size_t i = 0; i < 3; i++) {
    seen s;
    int status;
    const char *why;
    wisp_h1p_result r = run(type, no_body, in, steps[i], &s, &status, &why);
    assert_int_not_equal(r, WISP_H1P_ERROR);
    assert_string_equal(s.log, want);
  }
}

static void test_pipelined_requests(void **state) {
  expect_log(HTTP_REQUEST, false,
             "\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
             "GET /c HTTP/1.0\r\n\r\n",
             "HGET /a|E|HPOST /b|abcE|HGET /c|E|");
}

static void test_chunked_with_trailers(void **state) {
  expect_log(HTTP_REQUEST, false,
             "PUT /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n"
             "X-Sum:  ok \r\n\r\n",
             "HPUT /u|abcdeEx-sum=ok|");
  /* extensions the grammar allows: blanks before ';', a quoted value with an escape */
  expect_log(HTTP_REQUEST, false,
             "PUT /u HTTP/1.1\r\nHost: [::1]:8080\r\nTransfer-Encoding: chunked\r\n\r\n"
             "3 ;a=b\r\nabc\r\nA;q=\"x \\\" y\"\r\n0123456789\r\n00\r\n\r\n",
             "HPUT /u|abc0123456789E|");
}

static void test_responses(void **state) {
  expect_log(HTTP_RESPONSE, false, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nto the close",
             "H100|E|H200|to the closeE|");
  expect_log(HTTP_RESPONSE, true, "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", "H200|E|");
  expect_log(HTTP_RESPONSE, false, "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n",
             "H204|E|H304|E|");
}

static void test_head_flags(void **state) {
  seen s;
  int status;
  const char *why;
  run(HTTP_REQUEST, false, "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 0\r\n\r\n", 0, &s,
      &status, &why);
  assert_true(s.last.expect_continue);
  assert_true(s.last.keep_alive);
  assert_false(s.last.has_body);
  run(HTTP_REQUEST, false, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 0, &s,
      &status, &why);
  assert_true(s.last.upgrade);
  run(HTTP_REQUEST, false, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", 0, &s, &status, &why);
  assert_false(s.last.upgrade); /* not named by Connection */
  run(HTTP_REQUEST, false, "GET / HTTP/1.0\r\n\r\n", 0, &s, &status, &why);
  assert_false(s.last.keep_alive);
}

static void test_refusals(void **state) {
  static const struct {
    const char *in;
    int status;
    const char *why_part;
  } kCases[] = {
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "smuggling"},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400, "Content-Length"},
      {"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400, "obs-fold"},
      {"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n\tb\r\n\r\n", 400, "obs-fold"},
      {"GET / HTTP/1.1\r\nHost: x\r\nX: a\tb\r\nY\x7f: 1\r\n\r\n", 400, "control"},
      {"GET / HTTP/1.1\nHost: x\n\n", 400, "bare LF"},
      {"GET / HTTP/1.1\r\nHost: x\rY: 1\r\n\r\n", 400, "bare CR"},
      {"\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bare LF"},
      {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "field name"},
      {"GET / HTTP/1.1\r\nHost: x\r\nX: a\001b\r\n\r\n", 400, "control"},
      {"GET / HTTP/1.1\r\n\r\n", 400, "Host"},
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "Host"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "Transfer-Encoding"},
      {"POST / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", 417, "100-continue"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400, "chunk"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Name: 1\r\n\r\n", 400, "trailer"},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort", 400, "closed in the middle"},
      /* the CRLF after chunk data, whitespace after a size, CR/LF in a quoted extension (attack9b M2) */
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n"
       "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
       400, "chunk data not followed by CRLF"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r0\r\n\r\n", 400,
       "chunk data not followed by CRLF"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", 400,
       "whitespace after a chunk size"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\"x\r\n\"\r\nabc\r\n0\r\n\r\n", 400,
       "quoted chunk extension"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n", 400,
       "chunk size too large"},
      /* HTTP/0.9 and other major versions */
      {"GET /\r\n", 505, "HTTP/0.9"},
      {"GET /\r\nHost: x\r\n\r\n", 505, "HTTP/0.9"},
      {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "version not supported"},
      {"GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505, "version not supported"},
      /* Host not host[:port]; framing fields in trailers */
      {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "bad Host"},
      {"GET / HTTP/1.1\r\nHost: a/b@c\r\n\r\n", 400, "bad Host"},
      {"GET / HTTP/1.1\r\nHost:\r\n\r\n", 400, "bad Host"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n", 400,
       "in the trailer"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
       "in the trailer"},
  };
  for (size_t i = 0; i < sizeof(kCases) / sizeof(kCases[0]); i++) {
    for (size_t step = 0; step <= 1; step++) {
      seen s;
      int status;
      const char *why;
      wisp_h1p_result r = run(HTTP_REQUEST, false, kCases[i].in, step, &s, &status, &why);
      if (r != WISP_H1P_ERROR || status != kCases[i].status || !why || !strstr(why, kCases[i].why_part))
        fail_msg("case %zu (step %zu): result %d status %d why %s", i, step, r, status, why ? why : "(none)");
      assert_null(strstr(s.log, "E")); /* a refused message never ends as if it were good */
    }
  }
  char big[WISP_H1_HEAD_MAX + 64];
  int n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: x\r\nX: ");
  memset(big + n, 'a', sizeof(big) - (size_t)n - 1);
  big[sizeof(big) - 1] = 0;
  seen s;
  int status;
  const char *why;
  assert_int_equal(run(HTTP_REQUEST, false, big, 0, &s, &status, &why), WISP_H1P_ERROR);
  assert_non_null(strstr(why, "64 KiB"));
}

/* A head of |len| bytes (a GET with one long field) fed in pieces of
 * |step| (0: whole); returns the outcome, |took|: the bytes taken. */
static wisp_h1p_result feed_head_of(size_t len, size_t step, size_t *took) {
  static char in[WISP_H1_HEAD_MAX + 16];
  int n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: x\r\nX: ");
  memset(in + n, 'a', len - (size_t)n - 4);
  memcpy(in + len - 4, "\r\n\r\n", 4);
  seen s = {0};
  wisp_h1parse p;
  wisp_h1parse_init(&p, HTTP_REQUEST, &kCbs, &s);
  wisp_h1p_result r = WISP_H1P_MORE;
  *took = 0;
  while (*took < len && r == WISP_H1P_MORE) {
    size_t piece = step && len - *took > step ? step : len - *took, used;
    r = wisp_h1parse_feed(&p, (const uint8_t *)in + *took, piece, &used);
    *took += used;
  }
  wisp_h1parse_cleanup(&p);
  return r;
}

/* The head limit holds to the byte however the head arrives: plain bytes
 * are taken as runs (issue 15), and a run that crosses the limit is
 * refused at the same byte as one byte at a time. */
static void test_head_limit_exact(void **state) {
  (void)state;
  size_t steps[] = {0, 1, 7, 4096};
  for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    size_t took;
    assert_int_equal(feed_head_of(WISP_H1_HEAD_MAX, steps[i], &took), WISP_H1P_END);
    assert_int_equal(took, WISP_H1_HEAD_MAX);
    assert_int_equal(feed_head_of(WISP_H1_HEAD_MAX + 1, steps[i], &took), WISP_H1P_ERROR);
    assert_int_equal(took, WISP_H1_HEAD_MAX + 1); /* the refused byte is the one past the limit: a LF */
    assert_int_equal(feed_head_of(WISP_H1_HEAD_MAX + 10, steps[i], &took), WISP_H1P_ERROR);
    assert_int_equal(took, WISP_H1_HEAD_MAX + 1); /* ... here an 'a' amid a run */
  }
}

/* Records the fields a proxy would forward, as "name," in |arg|. */
static void keep_forwarded(void *arg, const wisp_h1_head *h) {
  seen *s = arg;
  for (size_t i = 0; i < h->nfields; i++) {
    if (wisp_h1_hop_by_hop(h, &h->fields[i])) continue;
    put(s, h->fields[i].name, h->fields[i].name_len);
    put(s, ",", 1);
  }
}

static void test_hop_by_hop(void **state) {
  static const wisp_h1parse_cbs kKeep = {keep_forwarded, on_body, on_end};
  seen s;
  memset(&s, 0, sizeof(s));
  wisp_h1parse p;
  wisp_h1parse_init(&p, HTTP_REQUEST, &kKeep, &s);
  const char *in =
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\n"
      "TE: trailers\r\nTE: gzip\r\nX-Kept: 1\r\nUpgrade: h2c\r\nProxy-Connection: x\r\n"
      "HTTP2-Settings: AAA\r\nTransfer-Encoding: chunked\r\n\r\n";
  size_t used;
  wisp_h1parse_feed(&p, (const uint8_t *)in, strlen(in), &used);
  assert_string_equal(s.log, "te,x-kept,");
  wisp_h1parse_cleanup(&p);
}

static void test_request_line(void **state) {
  static const struct {
    const char *in;
    int want;
  } kCases[] = {
      {"GET / HTTP/1.1\r\n", 1},
      {"OPTIONS * HTTP/1.0\r\nHost", 1},
      {"GET http://a/b?c HTTP/1.1\r\n", 1},
      {"GET / HTTP/1.1", -1},
      {"get some-key\r\n", 0},
      {"GET / HTTP/2.0\r\n", 0},
      {"GET  / HTTP/1.1\r\n", 0},
      {"GET / HTTP/1.1\n", 0},
      {" / HTTP/1.1\r\n", 0},
      {"GET HTTP/1.1\r\n", 0},
      {"", -1},
  };
  for (size_t i = 0; i < sizeof(kCases) / sizeof(kCases[0]); i++) {
    int got = wisp_h1_request_line((const uint8_t *)kCases[i].in, strlen(kCases[i].in));
    if (got != kCases[i].want) fail_msg("\"%s\": got %d, want %d", kCases[i].in, got, kCases[i].want);
  }
  static uint8_t longline[WISP_H1_LINE_MAX + 1];
  memset(longline, 'a', sizeof(longline));
  assert_int_equal(wisp_h1_request_line(longline, WISP_H1_LINE_MAX - 1), -1);
  assert_int_equal(wisp_h1_request_line(longline, sizeof(longline)), 0); /* no line within 8 KiB */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pipelined_requests), cmocka_unit_test(test_chunked_with_trailers),
      cmocka_unit_test(test_responses),          cmocka_unit_test(test_head_flags),
      cmocka_unit_test(test_refusals),           cmocka_unit_test(test_head_limit_exact),
      cmocka_unit_test(test_hop_by_hop),         cmocka_unit_test(test_request_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
