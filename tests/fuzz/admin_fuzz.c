/* Fuzz target for the admin listener's HTTP/1.x request parser and router
 * (proxy/admin/wisp_admin_http), which read whatever a local process or, with
 * --admin 0.0.0.0:PORT, any pod sends to the admin port. Checked:
 *   - the answer is one of OK / AGAIN / TOO_BIG / PROTO, the same twice,
 *     and every failure says why;
 *   - a request that parses is what the header promises: a method of
 *     tchars, a target starting with "/", path and query within their
 *     bounds and free of controls, HTTP/1.0 or 1.1, a head ending in
 *     CRLFCRLF, head + body == total_len within the bytes given and |max|;
 *     and the router gives 200/404/405 with an endpoint and Allow to match;
 *   - bytes arriving in pieces change nothing: every prefix of a request
 *     that parses (shorter than it) is AGAIN, the request alone parses the
 *     same, and a prefix that fails fails the same way once more bytes come
 *     (checked for every prefix of short inputs, sampled prefixes of long
 *     ones);
 *   - a |max| smaller than the input never lets the parser read past it.
 *   - every status gets a non-empty reason phrase without CR or LF.
 *
 * Replayed over corpus/admin/ by //tests/fuzz:admin_fuzz_replay in the
 * normal suite; to fuzz for real (clang's libFuzzer, outside Bazel), from
 * the workspace root:
 *   clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -I. \
 *     tests/fuzz/admin_fuzz.c proxy/admin/wisp_admin_http.c lib/wisp_h1parse.c lib/wisp_buf.c \
 *     lib/wisp_mem.c lib/wisp_err.c -lhttp_parser -o /tmp/admin_fuzz &&
 *   /tmp/admin_fuzz -max_total_time=60 tests/fuzz/corpus/admin
 * (or tests/fuzz/run_fuzzers.sh admin where that script exists). */
#include <stdbool.h>
#include <string.h>

#include "lib/wisp_h1parse.h"
#include "proxy/admin/wisp_admin_http.h"
#include "tests/fuzz/fuzz.h"

#define MAX WISP_ADMIN_REQUEST_MAX
/* Inputs up to this long have every prefix checked; longer ones a sample. */
#define ALL_PREFIXES_UP_TO 512
#define PREFIX_SAMPLES 64

static bool printable(const char *s) {
  for (; *s; s++)
    if ((uint8_t)*s <= 0x20 || (uint8_t)*s >= 0x7f) return false;
  return true;
}

static void check_result(wisp_err rc, const wisp_admin_request *r, const uint8_t *d, size_t len, size_t max) {
  CHECK(rc == WISP_OK || rc == WISP_ERR_AGAIN || rc == WISP_ERR_TOO_BIG || rc == WISP_ERR_PROTO);
  if (rc != WISP_OK) {
    CHECK(r->reason != NULL && r->reason[0] != '\0');
    return;
  }
  size_t mlen = strlen(r->method);
  CHECK(mlen > 0 && mlen <= WISP_ADMIN_METHOD_MAX);
  for (size_t i = 0; i < mlen; i++) CHECK(fuzz_is_tchar((uint8_t)r->method[i]));
  CHECK(memcmp(d, r->method, mlen) == 0 && d[mlen] == ' ' && d[mlen + 1] == '/');
  CHECK(r->path[0] == '/');
  CHECK(strlen(r->path) + strlen(r->query) <= WISP_ADMIN_TARGET_MAX);
  CHECK(printable(r->path) && printable(r->query));
  CHECK(strchr(r->path, '?') == NULL && strchr(r->path, '#') == NULL && strchr(r->query, '#') == NULL);
  CHECK(r->minor_version == 0 || r->minor_version == 1);
  CHECK(r->head_len >= 4 && memcmp(d + r->head_len - 4, "\r\n\r\n", 4) == 0);
  CHECK(r->total_len == r->head_len + r->content_length);
  CHECK(r->total_len <= len && r->total_len <= max);

  wisp_admin_endpoint ep;
  const char *allow;
  int status = wisp_admin_route(r, &ep, &allow);
  CHECK(status == 200 || status == 404 || status == 405);
  CHECK((status == 200) == (ep != WISP_ADMIN_EP_NONE));
  CHECK((status == 405) == (allow != NULL));
}

static bool same_request(const wisp_admin_request *a, const wisp_admin_request *b) {
  return strcmp(a->method, b->method) == 0 && strcmp(a->path, b->path) == 0 && strcmp(a->query, b->query) == 0 &&
         a->minor_version == b->minor_version && a->content_length == b->content_length && a->head_len == b->head_len &&
         a->total_len == b->total_len;
}

/* The parse of the first |k| bytes against the parse of all |len|. */
static void check_prefix(const uint8_t *d, size_t k, size_t len, wisp_err full_rc, const wisp_admin_request *full) {
  wisp_admin_request r;
  wisp_err rc = wisp_admin_parse_request(&r, d, k, MAX);
  check_result(rc, &r, d, k, MAX);
  if (full_rc == WISP_OK && k < full->total_len) CHECK(rc == WISP_ERR_AGAIN);
  if (full_rc == WISP_OK && k >= full->total_len) CHECK(rc == WISP_OK && same_request(&r, full));
  if (rc == WISP_ERR_PROTO) CHECK(full_rc == WISP_ERR_PROTO); /* more bytes never heal a bad request */
  if (rc == WISP_OK) CHECK(full_rc == WISP_OK && same_request(&r, full));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 2 * MAX) return 0;
  size_t len = size < MAX ? size : MAX;
  wisp_admin_request full, again;
  wisp_err rc = wisp_admin_parse_request(&full, data, len, MAX);
  check_result(rc, &full, data, len, MAX);
  CHECK(wisp_admin_parse_request(&again, data, len, MAX) == rc);
  if (rc == WISP_OK) CHECK(same_request(&full, &again));

  if (len <= ALL_PREFIXES_UP_TO) {
    for (size_t k = 0; k < len; k++) check_prefix(data, k, len, rc, &full);
  } else {
    for (size_t s = 0; s < PREFIX_SAMPLES; s++) check_prefix(data, (s * 7919 + data[s]) % len, len, rc, &full);
  }

  /* A small |max|: what would not fit is TOO_BIG, never read past. The
   * buffer is copied so ASan sees a read past |small|. */
  if (len > 0) {
    size_t small = 1 + data[0] % len;
    uint8_t *copy = malloc(small);
    CHECK(copy != NULL);
    memcpy(copy, data, small);
    wisp_admin_request r;
    wisp_err src = wisp_admin_parse_request(&r, copy, small, small);
    check_result(src, &r, copy, small, small);
    CHECK(src != WISP_ERR_AGAIN); /* no room for more: it must decide */
    free(copy);
  }

  /* Reason phrases for any status the input names. */
  int status = size >= 2 ? (int)(data[0] | data[1] << 8) % 1000 - 100 : 0;
  const char *phrase = wisp_h1_reason_phrase(status);
  CHECK(phrase != NULL && phrase[0] != '\0' && strpbrk(phrase, "\r\n") == NULL);
  return 0;
}
