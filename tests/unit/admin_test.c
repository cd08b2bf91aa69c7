/* Unit tests for proxy/admin/wisp_admin's pure parts: the HTTP/1.x request
 * parser, the router and the readiness check. Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_h1parse.h"
#include "proxy/admin/wisp_admin.h"
#include "tests/unit/test_util.h"

#define MAX WISP_ADMIN_REQUEST_MAX

/* ---- the parser ------------------------------------------------------------ */

typedef struct {
  const char *name;
  const char *req; /* NUL-terminated unless len is given */
  size_t len;      /* 0: strlen(req) */
  wisp_err want;
  const char *method; /* WISP_OK: expected fields */
  const char *path;
  const char *query;
  int minor;
  size_t content_length;
  const char *reason_has; /* failures: substring of out.reason */
} parse_case;

static const parse_case kParse[] = {
    /* good requests */
    {"GET, HTTP/1.1",
     "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:15000\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n", 0, WISP_OK,
     "GET", "/healthz", "", 1, 0, NULL},
    {"no headers at all", "GET /ready HTTP/1.1\r\n\r\n", 0, WISP_OK, "GET", "/ready", "", 1, 0, NULL},
    {"HTTP/1.0", "GET /metrics HTTP/1.0\r\n\r\n", 0, WISP_OK, "GET", "/metrics", "", 0, 0, NULL},
    {"HEAD", "HEAD /certs HTTP/1.1\r\nHost: x\r\n\r\n", 0, WISP_OK, "HEAD", "/certs", "", 1, 0, NULL},
    {"POST without a body", "POST /drain HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 0, WISP_OK, "POST",
     "/drain", "", 1, 0, NULL},
    {"POST with a body", "POST /drain HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 0, WISP_OK, "POST", "/drain", "", 1,
     5, NULL},
    {"header name case and OWS", "POST /drain HTTP/1.1\r\ncOnTeNt-LeNgTh:\t 2 \t\r\n\r\nhi", 0, WISP_OK, "POST",
     "/drain", "", 1, 2, NULL},
    {"repeated equal Content-Length", "POST /d HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 0, WISP_OK,
     "POST", "/d", "", 1, 1, NULL},
    {"unknown but valid method", "PUT /healthz HTTP/1.1\r\n\r\n", 0, WISP_OK, "PUT", "/healthz", "", 1, 0, NULL},
    {"empty header value", "GET / HTTP/1.1\r\nX-Empty:\r\n\r\n", 0, WISP_OK, "GET", "/", "", 1, 0, NULL},
    {"obs-text in a value", "GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n", 0, WISP_OK, "GET", "/", "", 1, 0, NULL},
    /* path with query */
    {"path with query", "GET /metrics?name=wisp_ready&x=1 HTTP/1.1\r\n\r\n", 0, WISP_OK, "GET", "/metrics",
     "name=wisp_ready&x=1", 1, 0, NULL},
    {"empty query", "GET /ready? HTTP/1.1\r\n\r\n", 0, WISP_OK, "GET", "/ready", "", 1, 0, NULL},
    {"'?' inside the query", "GET /a?b?c HTTP/1.1\r\n\r\n", 0, WISP_OK, "GET", "/a", "b?c", 1, 0, NULL},

    /* incomplete: more bytes needed */
    {"empty", "", 0, WISP_ERR_AGAIN, NULL, NULL, NULL, 0, 0, NULL},
    {"partial method", "GE", 0, WISP_ERR_AGAIN, NULL, NULL, NULL, 0, 0, NULL},
    {"partial target", "GET /hea", 0, WISP_ERR_AGAIN, NULL, NULL, NULL, 0, 0, NULL},
    {"partial version", "GET /healthz HTTP/1", 0, WISP_ERR_AGAIN, NULL, NULL, NULL, 0, 0, NULL},
    {"request line, no CRLFCRLF", "GET /healthz HTTP/1.1\r\n", 0, WISP_ERR_AGAIN, NULL, NULL, NULL, 0, 0, NULL},
    {"headers, no final CRLF", "GET /healthz HTTP/1.1\r\nHost: x\r\n", 0, WISP_ERR_AGAIN, NULL, NULL, NULL, 0, 0, NULL},
    {"headers, half the final CRLF", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r", 0, WISP_ERR_AGAIN, NULL, NULL, NULL, 0,
     0, NULL},
    {"partial header line", "GET /healthz HTTP/1.1\r\nHo", 0, WISP_ERR_AGAIN, NULL, NULL, NULL, 0, 0, NULL},
    {"body still arriving", "POST /drain HTTP/1.1\r\nContent-Length: 10\r\n\r\nhal", 0, WISP_ERR_AGAIN, NULL, NULL,
     NULL, 0, 0, NULL},

    /* bad method */
    {"lowercase-ish garbage method", "G(T / HTTP/1.1\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "method"},
    {"empty method", " / HTTP/1.1\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "method"},
    {"method too long", "ABCDEFGHIJKLMNOPQ / HTTP/1.1\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0,
     "method too long"},
    {"control byte in method", "GE\x01T / HTTP/1.1\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "method"},
    {"NUL in method", "GE\0T / HTTP/1.1\r\n\r\n", 19, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "method"},

    /* bad target or version */
    {"absolute-form target", "GET http://x/healthz HTTP/1.1\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0,
     "starting with /"},
    {"asterisk-form target", "OPTIONS * HTTP/1.1\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0,
     "starting with /"},
    {"fragment", "GET /ready#x HTTP/1.1\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "fragment"},
    {"control byte in target", "GET /rea\x7f HTTP/1.1\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "target"},
    {"HTTP/0.9 request line", "GET /healthz\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "target"},
    {"HTTP/2", "GET / HTTP/2.0\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "HTTP/1.x"},
    {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0,
     "starting with /"},
    {"HTTP/1.2", "GET / HTTP/1.2\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "version"},
    {"lowercase version", "GET / http/1.1\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "HTTP/1.x"},
    {"two spaces", "GET  / HTTP/1.1\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "starting with /"},
    {"bare LF after the request line", "GET / HTTP/1.1\n\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "CRLF"},
    {"junk after the version", "GET / HTTP/1.1 x\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "CRLF"},

    /* bad headers */
    {"bare LF in headers", "GET / HTTP/1.1\r\nHost: x\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0,
     "header field"},
    {"CR without LF", "GET / HTTP/1.1\r\nHost: x\rY\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "CRLF"},
    {"space before the colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0,
     "field name"},
    {"obs-fold", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "field name"},
    {"empty field name", "GET / HTTP/1.1\r\n: x\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "empty"},
    {"line without a colon", "GET / HTTP/1.1\r\nnocolon\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0,
     "field name"},
    {"NUL in a value", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 26, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "header field"},
    {"Transfer-Encoding", "POST /drain HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, WISP_ERR_PROTO,
     NULL, NULL, NULL, 0, 0, "Transfer-Encoding"},
    {"Content-Length not a number", "POST /d HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL,
     NULL, 0, 0, "Content-Length"},
    {"negative Content-Length", "POST /d HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL,
     0, 0, "Content-Length"},
    {"empty Content-Length", "POST /d HTTP/1.1\r\nContent-Length: \r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0,
     "Content-Length"},
    {"conflicting Content-Length", "POST /d HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", 0,
     WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "conflicting"},

    /* garbage */
    {"TLS ClientHello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0,
     "method"},
    {"a word and CRLFCRLF", "garbage\r\n\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "method"},
    {"binary", "\xff\xfe\xfd", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "method"},
    {"just CRLF", "\r\n", 0, WISP_ERR_PROTO, NULL, NULL, NULL, 0, 0, "method"},

    /* oversize */
    {"Content-Length beyond the limit", "POST /d HTTP/1.1\r\nContent-Length: 8193\r\n\r\n", 0, WISP_ERR_TOO_BIG, NULL,
     NULL, NULL, 0, 0, "too large"},
    {"huge Content-Length", "POST /d HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n", 0,
     WISP_ERR_TOO_BIG, NULL, NULL, NULL, 0, 0, "too large"},
    {"head + body just over the limit", "POST /d HTTP/1.1\r\nContent-Length: 8170\r\n\r\n", 0, WISP_ERR_TOO_BIG, NULL,
     NULL, NULL, 0, 0, "too large"},
};

static void run_parse_case(const parse_case *c) {
  size_t len = c->len ? c->len : strlen(c->req);
  wisp_admin_request r;
  wisp_err rc = wisp_admin_parse_request(&r, (const uint8_t *)c->req, len, MAX);
  if (rc != c->want) fail_msg("case '%s': got %d (%s), want %d", c->name, rc, r.reason ? r.reason : "", c->want);
  if (rc == WISP_OK) {
    assert_string_equal(r.method, c->method);
    assert_string_equal(r.path, c->path);
    assert_string_equal(r.query, c->query);
    assert_int_equal(r.minor_version, c->minor);
    assert_int_equal(r.content_length, c->content_length);
    assert_int_equal(r.total_len, len);
    assert_int_equal(r.head_len + r.content_length, r.total_len);
  } else {
    assert_non_null(r.reason);
    if (c->reason_has && !strstr(r.reason, c->reason_has))
      fail_msg("case '%s': reason '%s' does not mention '%s'", c->name, r.reason, c->reason_has);
  }
}

static void test_parse_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(kParse) / sizeof(kParse[0]); i++) {
    print_message("# parse case %zu: %s\n", i, kParse[i].name);
    run_parse_case(&kParse[i]);
  }
}

/* Every proper prefix of a good request is "incomplete", never an error:
 * bytes may arrive one at a time. */
static void test_parse_every_prefix(void **state) {
  (void)state;
  static const char req[] = "POST /drain?now=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc";
  size_t len = sizeof(req) - 1;
  wisp_admin_request r;
  for (size_t n = 0; n < len; n++) {
    wisp_err rc = wisp_admin_parse_request(&r, (const uint8_t *)req, n, MAX);
    if (rc != WISP_ERR_AGAIN) fail_msg("prefix of %zu bytes: got %d (%s)", n, rc, r.reason ? r.reason : "");
  }
  assert_int_equal(wisp_admin_parse_request(&r, (const uint8_t *)req, len, MAX), WISP_OK);
  assert_string_equal(r.path, "/drain");
  assert_string_equal(r.query, "now=1");
  assert_int_equal(r.content_length, 3);
}

/* Bytes after a complete request (pipelining) are left alone. */
static void test_parse_trailing_bytes(void **state) {
  (void)state;
  static const char req[] = "GET /ready HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n";
  wisp_admin_request r;
  assert_int_equal(wisp_admin_parse_request(&r, (const uint8_t *)req, sizeof(req) - 1, MAX), WISP_OK);
  assert_string_equal(r.path, "/ready");
  assert_int_equal(r.total_len, strlen("GET /ready HTTP/1.1\r\n\r\n"));
}

/* Oversize: headers that fill the buffer without CRLFCRLF, at and around
 * the limit. */
static void test_parse_oversize(void **state) {
  (void)state;
  char *buf = malloc(MAX + 64);
  assert_non_null(buf);
  size_t n = (size_t)snprintf(buf, MAX + 64, "GET /metrics HTTP/1.1\r\nX-Pad: ");
  while (n < MAX + 32) buf[n++] = 'a';
  wisp_admin_request r;
  /* The whole buffer, no end of headers: too big. */
  assert_int_equal(wisp_admin_parse_request(&r, (const uint8_t *)buf, MAX, MAX), WISP_ERR_TOO_BIG);
  assert_non_null(strstr(r.reason, "too large"));
  /* One byte short of the limit: still waiting. */
  assert_int_equal(wisp_admin_parse_request(&r, (const uint8_t *)buf, MAX - 1, MAX), WISP_ERR_AGAIN);
  /* More than |max| given: only |max| is looked at. */
  assert_int_equal(wisp_admin_parse_request(&r, (const uint8_t *)buf, MAX + 32, MAX), WISP_ERR_TOO_BIG);
  /* A request of exactly |max| bytes is fine. */
  static const char head[] = "GET /metrics HTTP/1.1\r\nX-Pad: ";
  memcpy(buf, head, sizeof(head) - 1);
  memset(buf + sizeof(head) - 1, 'a', MAX - (sizeof(head) - 1) - 4);
  memcpy(buf + MAX - 4, "\r\n\r\n", 4);
  assert_int_equal(wisp_admin_parse_request(&r, (const uint8_t *)buf, MAX, MAX), WISP_OK);
  assert_int_equal(r.total_len, MAX);
  /* A target longer than WISP_ADMIN_TARGET_MAX. */
  n = (size_t)snprintf(buf, MAX + 64, "GET /");
  while (n < WISP_ADMIN_TARGET_MAX + 10) buf[n++] = 'p';
  memcpy(buf + n, " HTTP/1.1\r\n\r\n", 13);
  assert_int_equal(wisp_admin_parse_request(&r, (const uint8_t *)buf, n + 13, MAX), WISP_ERR_TOO_BIG);
  assert_non_null(strstr(r.reason, "target too long"));
  /* A target of exactly WISP_ADMIN_TARGET_MAX is fine. */
  n = (size_t)snprintf(buf, MAX + 64, "GET /");
  while (n < 4 + WISP_ADMIN_TARGET_MAX) buf[n++] = 'p';
  memcpy(buf + n, " HTTP/1.1\r\n\r\n", 13);
  assert_int_equal(wisp_admin_parse_request(&r, (const uint8_t *)buf, n + 13, MAX), WISP_OK);
  assert_int_equal(strlen(r.path), WISP_ADMIN_TARGET_MAX);
  free(buf);
}

/* A smaller |max| is honoured too. */
static void test_parse_small_max(void **state) {
  (void)state;
  static const char req[] = "GET /healthz HTTP/1.1\r\n\r\n";
  wisp_admin_request r;
  assert_int_equal(wisp_admin_parse_request(&r, (const uint8_t *)req, 10, 10), WISP_ERR_TOO_BIG);
  assert_int_equal(wisp_admin_parse_request(&r, (const uint8_t *)req, sizeof(req) - 1, sizeof(req) - 1), WISP_OK);
}

/* ---- the router -------------------------------------------------------------- */

typedef struct {
  const char *method, *path;
  int want;
  wisp_admin_endpoint ep;
  const char *allow;
} route_case;

static const route_case kRoutes[] = {
    {"GET", "/healthz", 200, WISP_ADMIN_EP_HEALTHZ, NULL},
    {"HEAD", "/healthz", 200, WISP_ADMIN_EP_HEALTHZ, NULL},
    {"GET", "/ready", 200, WISP_ADMIN_EP_READY, NULL},
    {"GET", "/certs", 200, WISP_ADMIN_EP_CERTS, NULL},
    {"GET", "/config", 200, WISP_ADMIN_EP_CONFIG, NULL},
    {"GET", "/metrics", 200, WISP_ADMIN_EP_METRICS, NULL},
    {"POST", "/drain", 200, WISP_ADMIN_EP_DRAIN, NULL},
    {"GET", "/status", 200, WISP_ADMIN_EP_STATUS, NULL},
    {"POST", "/status", 405, WISP_ADMIN_EP_NONE, "GET, HEAD"},
    {"POST", "/healthz", 405, WISP_ADMIN_EP_NONE, "GET, HEAD"},
    {"DELETE", "/config", 405, WISP_ADMIN_EP_NONE, "GET, HEAD"},
    {"get", "/healthz", 405, WISP_ADMIN_EP_NONE, "GET, HEAD"},
    {"GET", "/drain", 405, WISP_ADMIN_EP_NONE, "POST"},
    {"HEAD", "/drain", 405, WISP_ADMIN_EP_NONE, "POST"},
    {"GET", "/", 404, WISP_ADMIN_EP_NONE, NULL},
    {"GET", "/healthz/", 404, WISP_ADMIN_EP_NONE, NULL},
    {"GET", "/HEALTHZ", 404, WISP_ADMIN_EP_NONE, NULL},
    {"GET", "/metricsx", 404, WISP_ADMIN_EP_NONE, NULL},
    {"POST", "/nope", 404, WISP_ADMIN_EP_NONE, NULL},
};

static void test_route_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(kRoutes) / sizeof(kRoutes[0]); i++) {
    const route_case *c = &kRoutes[i];
    print_message("# route case %zu: %s %s\n", i, c->method, c->path);
    wisp_admin_request r;
    memset(&r, 0, sizeof(r));
    snprintf(r.method, sizeof(r.method), "%s", c->method);
    snprintf(r.path, sizeof(r.path), "%s", c->path);
    wisp_admin_endpoint ep = (wisp_admin_endpoint)-1;
    const char *allow = "unset";
    assert_int_equal(wisp_admin_route(&r, &ep, &allow), c->want);
    assert_int_equal(ep, c->ep);
    if (c->allow) {
      assert_non_null(allow);
      assert_string_equal(allow, c->allow);
    } else {
      assert_null(allow);
    }
  }
}

/* Every status the admin answers gets its own reason phrase (a bug gave
 * 403 the phrase "Error"); others get their class name. */
static void test_reason_phrases(void **state) {
  (void)state;
  static const struct {
    int status;
    const char *phrase;
  } kCases[] = {
      {200, "OK"},
      {202, "Accepted"},
      {400, "Bad Request"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {408, "Request Timeout"},
      {413, "Content Too Large"},
      {429, "Too Many Requests"},
      {500, "Internal Server Error"},
      {503, "Service Unavailable"},
      {299, "Successful"},
      {418, "Client Error"},
      {599, "Server Error"},
      {103, "Informational"},
      {0, "Unknown"},
      {600, "Unknown"},
      {-1, "Unknown"},
  };
  for (size_t i = 0; i < sizeof(kCases) / sizeof(kCases[0]); i++) {
    const char *got = wisp_h1_reason_phrase(kCases[i].status);
    if (!got || strcmp(got, kCases[i].phrase) != 0)
      fail_msg("status %d: \"%s\", want \"%s\"", kCases[i].status, got ? got : "(null)", kCases[i].phrase);
  }
}

/* The query does not take part in routing. */
static void test_route_after_parse(void **state) {
  (void)state;
  static const char req[] = "GET /metrics?format=text HTTP/1.1\r\n\r\n";
  wisp_admin_request r;
  assert_int_equal(wisp_admin_parse_request(&r, (const uint8_t *)req, sizeof(req) - 1, MAX), WISP_OK);
  wisp_admin_endpoint ep;
  const char *allow;
  assert_int_equal(wisp_admin_route(&r, &ep, &allow), 200);
  assert_int_equal(ep, WISP_ADMIN_EP_METRICS);
}

/* ---- readiness ----------------------------------------------------------------- */

typedef struct {
  const char *name;
  bool loaded, listening, draining;
  int64_t not_after_unix, now;
  bool want;
  const char *reason_has;
} ready_case;

static const ready_case kReady[] = {
    {"valid SVID, listening", true, true, false, 2000, 1000, true, "ready"},
    {"no SVID yet", false, true, false, 0, 1000, false, "no SVID yet"},
    {"expired SVID", true, true, false, 999, 1000, false, "SVID expired at Nov 22 12:00:00 2026 GMT"},
    {"expires this second", true, true, false, 1000, 1000, false, "expired"},
    {"listeners down", true, false, false, 2000, 1000, false, "listeners"},
    {"draining", true, true, true, 2000, 1000, false, "draining"},
    {"draining wins over expired", true, true, true, 1, 1000, false, "draining"},
};

static void test_ready_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(kReady) / sizeof(kReady[0]); i++) {
    const ready_case *c = &kReady[i];
    print_message("# ready case %zu: %s\n", i, c->name);
    wisp_tls_info info;
    memset(&info, 0, sizeof(info));
    snprintf(info.spiffe_id, sizeof(info.spiffe_id), "spiffe://shop.local/ns/shop/sa/orders");
    snprintf(info.not_after, sizeof(info.not_after), "Nov 22 12:00:00 2026 GMT");
    info.not_after_unix = c->not_after_unix;
    char reason[256] = "";
    assert_int_equal(
        wisp_admin_ready_check(&info, c->loaded, c->listening, c->draining, c->now, reason, sizeof(reason)), c->want);
    if (!strstr(reason, c->reason_has)) fail_msg("case '%s': reason '%s' lacks '%s'", c->name, reason, c->reason_has);
  }
}

/* A small reason buffer is NUL-terminated, not overrun. */
static void test_ready_small_buffer(void **state) {
  (void)state;
  wisp_tls_info info;
  memset(&info, 0, sizeof(info));
  snprintf(info.not_after, sizeof(info.not_after), "Nov 22 12:00:00 2026 GMT");
  char reason[12];
  memset(reason, 'X', sizeof(reason));
  assert_false(wisp_admin_ready_check(&info, true, true, false, 10, reason, 8));
  assert_int_equal(strlen(reason), 7);
  assert_int_equal(reason[8], 'X');
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_table),          cmocka_unit_test(test_parse_every_prefix),
      cmocka_unit_test(test_parse_trailing_bytes), cmocka_unit_test(test_parse_oversize),
      cmocka_unit_test(test_parse_small_max),      cmocka_unit_test(test_route_table),
      cmocka_unit_test(test_route_after_parse),    cmocka_unit_test(test_ready_table),
      cmocka_unit_test(test_ready_small_buffer),   cmocka_unit_test(test_reason_phrases),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
