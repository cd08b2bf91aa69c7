/* Fuzz target for lib/wisp_json's string escaper, which writes what callers
 * send (paths, header values, SPIFFE IDs, error texts) into the request
 * log, the admin listener's bodies and wispctl's --json. The input is one
 * string, written with both escapes, into a buffer with room for the worst
 * case (the log's one-pass path, 8 bytes at a time) and into an empty one
 * (piece by piece). Checked on every input:
 * - both paths write the same bytes; a limit one byte short is refused
 *   with WISP_ERR_TOO_BIG and leaves the buffer as it was;
 * - the output is one JSON string (RFC 8259: quotes, no raw control byte,
 *   only the escapes it defines, \u with four hex digits) and valid UTF-8
 *   (RFC 3629: no overlong form, surrogate or code point past U+10FFFF,
 *   nothing cut short), checked by a decoder written here, apart from the
 *   escaper; its only \u escapes are of control bytes, DEL, and U+FFFD;
 * - it means the input: decoded, without its U+FFFDs, it is the input
 *   without the bytes that are not part of a well-formed sequence (and
 *   without U+FFFDs of its own); there is a U+FFFD exactly when such a
 *   byte is there, at most one per byte and at least one per three (a
 *   maximal subpart is one to three bytes); well-formed input that needs
 *   no escape comes out as it is.
 *
 * Replayed over corpus/json/ by //tests/fuzz:json_fuzz_replay in the
 * normal suite; tests/fuzz/run_fuzzers.sh fuzzes it for real. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_json.h"
#include "tests/fuzz/fuzz.h"

#define MAX_IN 4096 /* longer inputs are cut: the log's fields are shorter */

/* The length of the well-formed UTF-8 sequence at |p| (|avail| bytes), 1
 * for ASCII; 0 if none starts there. By the code point a sequence holds,
 * not by byte ranges. */
static size_t wf_len(const uint8_t *p, size_t avail) {
  if (p[0] < 0x80) return 1;
  size_t n = (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
  if (!n || avail < n) return 0;
  uint32_t cp = p[0] & (0xffu >> (n + 1));
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    cp = cp << 6 | (p[i] & 0x3fu);
  }
  uint32_t least = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
  if (cp < least || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

static bool is_fffd(const uint8_t *p, size_t avail) {
  return avail >= 3 && p[0] == 0xef && p[1] == 0xbf && p[2] == 0xbd;
}

static int hexv(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Parses |s| (|len| bytes) as one JSON string, CHECKs it, and decodes it
 * into |out| (UTF-8); returns the decoded length. */
static size_t decode(const uint8_t *s, size_t len, wisp_json_escape esc, uint8_t *out) {
  CHECK(len >= 2 && s[0] == '"' && s[len - 1] == '"');
  size_t o = 0;
  for (size_t i = 1; i < len - 1;) {
    uint8_t c = s[i];
    CHECK(c >= 0x20 && c != '"'); /* a raw quote would end the string early */
    if (c >= 0x80) {
      size_t n = wf_len(s + i, len - 1 - i);
      CHECK(n > 0); /* valid UTF-8 */
      memcpy(out + o, s + i, n);
      o += n;
      i += n;
      continue;
    }
    if (c != '\\') {
      CHECK(!(c == 0x7f && esc == WISP_JSON_ESCAPE_U)); /* the log escapes DEL */
      out[o++] = c;
      i++;
      continue;
    }
    CHECK(i + 1 < len - 1);
    uint8_t e = s[i + 1];
    const char *shorts = esc == WISP_JSON_ESCAPE_SHORT ? "\"\\nrt" : "\"\\";
    if (e != 'u') {
      CHECK(strchr(shorts, e) != NULL); /* only the escapes each form uses */
      out[o++] = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
      i += 2;
      continue;
    }
    CHECK(i + 6 <= len - 1);
    uint32_t v = 0;
    for (size_t k = 2; k < 6; k++) {
      int h = hexv(s[i + k]);
      CHECK(h >= 0 && !(s[i + k] >= 'A' && s[i + k] <= 'F')); /* lower-case hex */
      v = v << 4 | (uint32_t)h;
    }
    if (v == 0xfffd) {
      memcpy(out + o, "\xef\xbf\xbd", 3);
      o += 3;
    } else {
      CHECK(v < 0x20 || (v == 0x7f && esc == WISP_JSON_ESCAPE_U));
      CHECK(!(esc == WISP_JSON_ESCAPE_SHORT && (v == '\n' || v == '\r' || v == '\t')));
      out[o++] = (uint8_t)v;
    }
    i += 6;
  }
  return o;
}

/* |p| (|len| bytes) without U+FFFDs and, if |drop_bad|, without the bytes
 * that are not part of a well-formed sequence, into |out|; counts those
 * bytes in |*bad| and the U+FFFDs in |*fffd|. */
static size_t strip(const uint8_t *p, size_t len, bool drop_bad, uint8_t *out, size_t *bad, size_t *fffd) {
  size_t o = 0;
  *bad = *fffd = 0;
  for (size_t i = 0; i < len;) {
    size_t n = wf_len(p + i, len - i);
    if (!n) {
      CHECK(drop_bad); /* decoded output is well-formed */
      ++*bad;
      i++;
    } else if (is_fffd(p + i, len - i)) {
      ++*fffd;
      i += 3;
    } else {
      memcpy(out + o, p + i, n);
      o += n;
      i += n;
    }
  }
  return o;
}

/* |in| escaped with |esc| into |b| (empty or with room); returns WISP_OK. */
static void put(wisp_buf *b, const uint8_t *in, size_t len, wisp_json_escape esc, bool room) {
  static uint8_t zeros[6 * MAX_IN + 2];
  if (room) {
    CHECK(wisp_buf_append(b, zeros, 6 * len + 2, SIZE_MAX) == WISP_OK);
    wisp_buf_truncate(b, 0);
  }
  CHECK(wisp_json_put_str(b, (const char *)in, len, esc, SIZE_MAX) == WISP_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t len = size < MAX_IN ? size : MAX_IN;
  /* A copy of its own size, so ASan sees a read past its end. */
  uint8_t *in = malloc(len ? len : 1);
  CHECK(in != NULL);
  if (len) memcpy(in, data, len);
  static uint8_t dec[6 * MAX_IN], want[MAX_IN], got[6 * MAX_IN];
  size_t in_bad, in_fffd;
  size_t want_len = strip(in, len, true, want, &in_bad, &in_fffd);
  bool needs_escape = false;
  for (int esc = 0; esc < 2; esc++) {
    wisp_buf fast = {0}, slow = {0};
    put(&fast, in, len, (wisp_json_escape)esc, true);
    put(&slow, in, len, (wisp_json_escape)esc, false);
    size_t n = wisp_buf_len(&fast);
    const uint8_t *s = wisp_buf_rptr(&fast);
    CHECK(wisp_buf_len(&slow) == n && memcmp(wisp_buf_rptr(&slow), s, n) == 0);
    CHECK(n <= 6 * len + 2);

    size_t dlen = decode(s, n, (wisp_json_escape)esc, dec);
    size_t out_bad, out_fffd;
    size_t got_len = strip(dec, dlen, false, got, &out_bad, &out_fffd);
    CHECK(got_len == want_len && memcmp(got, want, got_len) == 0);
    size_t repl = out_fffd - in_fffd; /* the U+FFFDs the escaper wrote */
    CHECK(out_fffd >= in_fffd && (repl == 0) == (in_bad == 0));
    CHECK(repl <= in_bad && 3 * repl >= in_bad);
    if (n != len + 2 || memcmp(s + 1, in, len) != 0) needs_escape = true;

    /* All or nothing: one byte short, refused, the buffer as it was. */
    wisp_buf_truncate(&slow, 0);
    CHECK(wisp_buf_append(&slow, "x", 1, SIZE_MAX) == WISP_OK);
    CHECK(wisp_json_put_str(&slow, (const char *)in, len, (wisp_json_escape)esc, n) == WISP_ERR_TOO_BIG);
    CHECK(wisp_buf_len(&slow) == 1 && wisp_buf_rptr(&slow)[0] == 'x');
    wisp_buf_cleanup(&fast);
    wisp_buf_cleanup(&slow);
  }
  /* Well-formed input with nothing to escape comes out as it is. */
  bool plain = in_bad == 0;
  for (size_t i = 0; i < len; i++)
    if (in[i] < 0x20 || in[i] == '"' || in[i] == '\\' || in[i] == 0x7f) plain = false;
  CHECK(plain == !needs_escape);
  free(in);
  return 0;
}
