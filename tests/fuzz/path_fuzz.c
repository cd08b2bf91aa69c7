/* Fuzz target for lib/wisp_path, the :path normaliser the policy relies on
 * (issue 9). The input is one :path value. Checked on every input:
 * - a refusal is WISP_ERR_PROTO with a reason and leaves |out| untouched;
 *   a buffer that cannot hold the input is WISP_ERR_TOO_BIG, untouched;
 * - the normal form is never longer than the input, NUL-terminated, and a
 *   fixed point (normalising it again gives it back);
 * - its path part starts with '/' (or is "*") and has no "//", no "." or
 *   ".." segment, no ';', no escape of a character it holds raw (unreserved,
 *   sub-delims, ':' '@'), of '/', '\\', ';' or a control, no lowercase hex,
 *   no %25 followed by two hex digits, no byte outside RFC 3986's path
 *   characters; its query is the input's;
 * - it equals what a plain reference gives: split on '/', decode each
 *   segment, drop empty and "." segments, pop on "..".
 *
 * Replayed over corpus/path/ by //tests/fuzz:path_fuzz_replay in the normal
 * suite. To fuzz for real (clang's libFuzzer, outside Bazel), from the
 * workspace root:
 *   clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -I. \
 *     tests/fuzz/path_fuzz.c lib/wisp_path.c -o /tmp/path_fuzz && \
 *     /tmp/path_fuzz -max_total_time=60 -dict=tests/fuzz/path.dict tests/fuzz/corpus/path */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_path.h"
#include "tests/fuzz/fuzz.h"

#define SENTINEL 0xA5

static bool unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

/* Written apart from lib/wisp_path on purpose: the characters a normal
 * form holds raw, and so never encoded. */
static bool held_raw(unsigned char c) { return unreserved(c) || (c != 0 && strchr("!$&'()*+,=:@", c) != NULL); }

static int hexv(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static bool is_upper_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

/* The shape of a normal path part (|len| bytes, no '?'). */
static void check_normal_path(const char *p, size_t len) {
  CHECK(len >= 1 && p[0] == '/');
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)p[i];
    CHECK(held_raw(c) || c == '/' || c == '%');
    if (c == '%') {
      CHECK(i + 2 < len && is_upper_hex(p[i + 1]) && is_upper_hex(p[i + 2]));
      int v = hexv(p[i + 1]) * 16 + hexv(p[i + 2]);
      CHECK(!held_raw((unsigned char)v) && v != '/' && v != '\\' && v != ';' && v >= 0x20 && v != 0x7f);
      CHECK(!(v == '%' && i + 4 < len && hexv(p[i + 3]) >= 0 && hexv(p[i + 4]) >= 0)); /* no %252e */
    }
    if (c == '/') {
      const char *seg = p + i + 1;
      size_t n = 0;
      while (i + 1 + n < len && seg[n] != '/') n++;
      bool last = i + 1 + n == len;
      CHECK(n > 0 || last);                               /* no "//" */
      CHECK(!(n == 1 && seg[0] == '.'));                  /* no "/./", no trailing "/." */
      CHECK(!(n == 2 && seg[0] == '.' && seg[1] == '.')); /* no "/../", no trailing "/.." */
    }
  }
}

/* The reference: |in| (a path part that was accepted) normalised with a
 * segment list rather than in place. Returns the length written to |out|. */
static size_t reference(char *out, const char *in, size_t len) {
  static const char kHex[] = "0123456789ABCDEF";
  size_t *starts = malloc((len + 1) * sizeof(size_t)); /* output offset of each kept segment */
  CHECK(starts != NULL);
  size_t nseg = 0, o = 0;
  size_t i = 1;
  out[o++] = '/';
  for (;;) {
    size_t seg = o;
    while (i < len && in[i] != '/') {
      if (in[i] == '%') {
        int v = hexv(in[i + 1]) * 16 + hexv(in[i + 2]);
        if (held_raw((unsigned char)v)) {
          out[o++] = (char)v;
        } else {
          out[o++] = '%';
          out[o++] = kHex[v >> 4];
          out[o++] = kHex[v & 15];
        }
        i += 3;
      } else {
        out[o++] = in[i++];
      }
    }
    size_t n = o - seg;
    bool dot = n == 1 && out[seg] == '.';
    bool dotdot = n == 2 && out[seg] == '.' && out[seg + 1] == '.';
    bool at_end = i >= len;
    if (n == 0 || dot) {
      o = seg;
    } else if (dotdot) {
      o = seg;
      if (nseg > 0) o = starts[--nseg];
    } else {
      starts[nseg++] = seg;
      if (!at_end) out[o++] = '/';
    }
    /* A kept segment is followed by '/' unless it was the last; a dropped
     * last segment leaves the '/' of the one before, or the root. */
    if (at_end) break;
    i++; /* the '/' */
  }
  free(starts);
  return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data;
  char *out = malloc(size + 1);
  char *again = malloc(size + 1);
  CHECK(out != NULL && again != NULL);
  memset(out, SENTINEL, size + 1);

  /* A buffer one byte short of the rule is refused, untouched. */
  size_t n = 77;
  const char *why = NULL;
  CHECK(wisp_path_normalize(out, size, &n, in, size, &why) == WISP_ERR_TOO_BIG);
  CHECK(n == 77 && why != NULL);
  for (size_t i = 0; i < size + 1; i++) CHECK((unsigned char)out[i] == SENTINEL);

  why = NULL;
  wisp_err rc = wisp_path_normalize(out, size + 1, &n, in, size, &why);
  if (rc != WISP_OK) {
    CHECK(rc == WISP_ERR_PROTO && why != NULL && n == 77);
    for (size_t i = 0; i < size + 1; i++) CHECK((unsigned char)out[i] == SENTINEL);
    free(out);
    free(again);
    return 0;
  }
  CHECK(why == NULL);
  CHECK(n <= size && out[n] == '\0' && memchr(out, '\0', n) == NULL);

  /* Idempotent. */
  size_t m = 0;
  CHECK(wisp_path_normalize(again, n + 1, &m, out, n, NULL) == WISP_OK);
  CHECK(m == n && memcmp(again, out, n) == 0);

  if (n == 1 && out[0] == '*') {
    CHECK(size == 1 && in[0] == '*');
  } else {
    const char *q_in = memchr(in, '?', size);
    const char *q_out = memchr(out, '?', n);
    size_t path_in = q_in ? (size_t)(q_in - in) : size;
    size_t path_out = q_out ? (size_t)(q_out - out) : n;
    /* The query is kept byte for byte. */
    CHECK(size - path_in == n - path_out && memcmp(in + path_in, out + path_out, n - path_out) == 0);
    check_normal_path(out, path_out);
    size_t r = reference(again, in, path_in);
    CHECK(r == path_out && memcmp(again, out, r) == 0);
  }
  free(out);
  free(again);
  return 0;
}
