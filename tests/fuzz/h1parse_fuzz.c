/* Fuzz target for lib/wisp_h1parse, the HTTP/1 framing every HTTP/1 caller's
 * bytes go through (request smuggling defences over http-parser). The first
 * input byte picks requests or responses (and "no body" for a response to
 * HEAD); the rest is fed twice: whole, and one byte at a time. Checked:
 *   - both feeds give the same events and the same outcome: the framing
 *     never depends on how the bytes arrived (the smuggling invariant);
 *   - every head handed out has token field names in lower case and values
 *     without CR, LF or NUL; a chunked head has no Content-Length;
 *   - a refusal has a status (400, 417, 501 or 505) and a reason; body bytes
 *     never exceed the input;
 *   - wisp_h1_request_line (transparent mode's HTTP/1 test) never changes
 *     its decision as more bytes arrive.
 *
 * Replayed over corpus/h1parse/ by //tests/fuzz:h1parse_fuzz_replay in the
 * normal suite; tests/fuzz/run_fuzzers.sh fuzzes it for real. */
#include <string.h>

#include "lib/wisp_h1parse.h"
#include "tests/fuzz/fuzz.h"

#define TRANSCRIPT_MAX (256 * 1024)

typedef struct {
  char t[TRANSCRIPT_MAX];
  size_t len;
  size_t body;
} transcript;

static void put(transcript *tr, const void *d, size_t n) {
  if (n > TRANSCRIPT_MAX - tr->len) n = TRANSCRIPT_MAX - tr->len;
  memcpy(tr->t + tr->len, d, n);
  tr->len += n;
}

static void check_field(const wisp_h1_field *f) {
  CHECK(f->name_len > 0);
  for (size_t i = 0; i < f->name_len; i++) {
    CHECK(fuzz_is_tchar((uint8_t)f->name[i]));
    CHECK(!(f->name[i] >= 'A' && f->name[i] <= 'Z'));
  }
  for (size_t i = 0; i < f->value_len; i++) CHECK(f->value[i] != '\r' && f->value[i] != '\n' && f->value[i] != 0);
}

static void on_head(void *arg, const wisp_h1_head *h) {
  transcript *tr = arg;
  put(tr, "H", 1);
  if (h->request) {
    put(tr, h->method, strlen(h->method));
    put(tr, h->target, h->target_len);
  }
  CHECK(!(h->chunked && h->content_length >= 0));
  for (size_t i = 0; i < h->nfields; i++) {
    check_field(&h->fields[i]);
    put(tr, h->fields[i].name, h->fields[i].name_len);
    put(tr, wisp_h1_hop_by_hop(h, &h->fields[i]) ? "-" : "+", 1);
    put(tr, h->fields[i].value, h->fields[i].value_len);
  }
  put(tr, h->has_body ? "b" : "n", 1);
}

static void on_body(void *arg, const uint8_t *d, size_t n) {
  transcript *tr = arg;
  tr->body += n;
  put(tr, d, n); /* split feeds may cut a body in other places: bytes only, no markers */
}

static void on_end(void *arg, const wisp_h1_field *t, size_t nt) {
  transcript *tr = arg;
  put(tr, "E", 1);
  for (size_t i = 0; i < nt; i++) {
    check_field(&t[i]);
    put(tr, t[i].name, t[i].name_len);
    put(tr, t[i].value, t[i].value_len);
  }
}

static const wisp_h1parse_cbs kCbs = {on_head, on_body, on_end};

/* Feeds |data| in pieces of |step| bytes (0: whole); returns the outcome. */
static wisp_h1p_result feed_all(wisp_h1parse *p, const uint8_t *data, size_t size, size_t step, int *status) {
  size_t off = 0;
  wisp_h1p_result r = WISP_H1P_MORE;
  while (off < size) {
    size_t n = step && size - off > step ? step : size - off;
    size_t used = 0;
    r = wisp_h1parse_feed(p, data + off, n, &used);
    CHECK(used <= n);
    if (r == WISP_H1P_ERROR) break;
    if (r == WISP_H1P_MORE) CHECK(used == n);
    off += used;
  }
  if (r != WISP_H1P_ERROR) r = wisp_h1parse_eof(p);
  if (r == WISP_H1P_ERROR) {
    CHECK(p->why != NULL);
    CHECK(p->status == 400 || p->status == 417 || p->status == 501 || p->status == 505);
  }
  *status = p->status;
  return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  enum http_parser_type type = (data[0] & 1) ? HTTP_RESPONSE : HTTP_REQUEST;
  bool no_body = (data[0] & 2) != 0;
  data++, size--;
  static transcript a, b;
  a.len = a.body = b.len = b.body = 0;
  wisp_h1parse pa, pb;
  int sa, sb;
  wisp_h1parse_init(&pa, type, &kCbs, &a);
  wisp_h1parse_init(&pb, type, &kCbs, &b);
  wisp_h1parse_set_no_body(&pa, no_body);
  wisp_h1parse_set_no_body(&pb, no_body);
  wisp_h1p_result ra = feed_all(&pa, data, size, 0, &sa);
  wisp_h1p_result rb = feed_all(&pb, data, size, 1, &sb);
  CHECK(ra == rb);
  CHECK(sa == sb);
  CHECK(a.len == b.len && memcmp(a.t, b.t, a.len) == 0);
  CHECK(a.body <= size);
  /* The request-line check: a decision never changes with more bytes, and
   * a yes has its line (LF) within WISP_H1_LINE_MAX. */
  int decided = -1;
  size_t upto = size < 512 ? size : 512;
  for (size_t n = 0; n <= upto; n++) {
    int r = wisp_h1_request_line(data, n);
    if (decided >= 0) CHECK(r == decided);
    if (r == 1) CHECK(memchr(data, '\n', n) != NULL);
    decided = r;
  }
  if (decided >= 0) CHECK(wisp_h1_request_line(data, size) == decided);
  wisp_h1parse_cleanup(&pa);
  wisp_h1parse_cleanup(&pb);
  return 0;
}
