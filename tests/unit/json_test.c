/* Unit tests for lib/wisp_json: exact bytes for every escape and number
 * form, all-or-nothing writes at the limit, and byte-for-byte agreement
 * with the three escapers it replaced (the admin listener's and wispctl's,
 * kept below as oracles, their bytes from 0x80 read as UTF-8 by a
 * reference decoder here; the log's forms are pinned by log_test), UTF-8
 * passed through or replaced by U+FFFD per maximal subpart, and strings
 * that python3's strict json.loads takes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/wisp_json.h"
#include "tests/unit/test_util.h"

#define BIG ((size_t)1 << 20)

/* The unread bytes of |b| as a NUL-terminated string (static storage). */
static const char *text(const wisp_buf *b) {
  static char out[4096];
  size_t n = wisp_buf_len(b);
  assert_true(n < sizeof(out));
  if (n) memcpy(out, wisp_buf_rptr(b), n);
  out[n] = '\0';
  return out;
}

static void expect_str(const char *in, size_t len, wisp_json_escape esc, const char *want) {
  wisp_buf b = {0};
  assert_int_equal(wisp_json_put_str(&b, in, len, esc, BIG), WISP_OK);
  assert_string_equal(text(&b), want);
  wisp_buf_cleanup(&b);
}

static void test_escape_u(void **state) {
  (void)state;
  expect_str("plain", 5, WISP_JSON_ESCAPE_U, "\"plain\"");
  expect_str("", 0, WISP_JSON_ESCAPE_U, "\"\"");
  expect_str("a\"b\\c", 5, WISP_JSON_ESCAPE_U, "\"a\\\"b\\\\c\"");
  expect_str("l1\nl2\r\t", 7, WISP_JSON_ESCAPE_U, "\"l1\\u000al2\\u000d\\u0009\"");
  expect_str("\x01\x1f\x7f", 3, WISP_JSON_ESCAPE_U, "\"\\u0001\\u001f\\u007f\"");
  expect_str("nul\0in", 6, WISP_JSON_ESCAPE_U, "\"nul\\u0000in\"");
  /* well-formed UTF-8 as it is, a byte that is not part of it as U+FFFD */
  expect_str("caf\xc3\xa9 \xff", 7, WISP_JSON_ESCAPE_U, "\"caf\xc3\xa9 \\ufffd\"");
}

static void test_escape_short(void **state) {
  (void)state;
  expect_str("l1\nl2\r\t", 7, WISP_JSON_ESCAPE_SHORT, "\"l1\\nl2\\r\\t\"");
  expect_str("\x01\x1f", 2, WISP_JSON_ESCAPE_SHORT, "\"\\u0001\\u001f\"");
  expect_str("del\x7f", 4, WISP_JSON_ESCAPE_SHORT, "\"del\x7f\"");
  expect_str("q\"b\\", 4, WISP_JSON_ESCAPE_SHORT, "\"q\\\"b\\\\\"");
}

static void test_key_commas(void **state) {
  (void)state;
  wisp_buf b = {0};
  assert_int_equal(wisp_json_put_key(&b, "a", BIG), WISP_OK); /* empty: no comma */
  assert_string_equal(text(&b), "\"a\":");
  wisp_buf_cleanup(&b);
  assert_int_equal(wisp_buf_append(&b, "{", 1, BIG), WISP_OK);
  assert_int_equal(wisp_json_put_key(&b, "a", BIG), WISP_OK);
  assert_int_equal(wisp_json_put_int(&b, 1, BIG), WISP_OK);
  assert_int_equal(wisp_json_put_key(&b, "l", BIG), WISP_OK);
  assert_int_equal(wisp_buf_append(&b, "[", 1, BIG), WISP_OK);
  assert_int_equal(wisp_buf_append(&b, "{", 1, BIG), WISP_OK);
  assert_int_equal(wisp_json_put_key(&b, "x", BIG), WISP_OK);
  assert_int_equal(wisp_json_put_null(&b, BIG), WISP_OK);
  assert_int_equal(wisp_buf_append(&b, "}]", 2, BIG), WISP_OK);
  assert_int_equal(wisp_json_put_key(&b, "t", BIG), WISP_OK);
  assert_int_equal(wisp_json_put_bool(&b, true, BIG), WISP_OK);
  assert_int_equal(wisp_json_put_key(&b, "f", BIG), WISP_OK);
  assert_int_equal(wisp_json_put_bool(&b, false, BIG), WISP_OK);
  assert_string_equal(text(&b), "{\"a\":1,\"l\":[{\"x\":null}],\"t\":true,\"f\":false");
  wisp_buf_cleanup(&b);
}

static void expect_num(wisp_err (*put)(wisp_buf *, double, size_t), double v, const char *want) {
  wisp_buf b = {0};
  assert_int_equal(put(&b, v, BIG), WISP_OK);
  assert_string_equal(text(&b), want);
  wisp_buf_cleanup(&b);
}

static void test_numbers(void **state) {
  (void)state;
  static const struct {
    int64_t v;
    const char *want;
  } kInts[] = {{0, "0"},
               {-1, "-1"},
               {1234567890, "1234567890"},
               {INT64_MAX, "9223372036854775807"},
               {INT64_MIN, "-9223372036854775808"}};
  for (size_t i = 0; i < sizeof(kInts) / sizeof(kInts[0]); i++) {
    wisp_buf b = {0};
    assert_int_equal(wisp_json_put_int(&b, kInts[i].v, BIG), WISP_OK);
    assert_string_equal(text(&b), kInts[i].want);
    wisp_buf_cleanup(&b);
  }
  char u[20];
  assert_int_equal(wisp_json_fmt_u64(u, UINT64_MAX), 20);
  assert_memory_equal(u, "18446744073709551615", 20);
  assert_int_equal(wisp_json_fmt_u64(u, 0), 1);
  assert_memory_equal(u, "0", 1);
  assert_int_equal(wisp_json_fmt_u64(u, 100), 3);
  assert_memory_equal(u, "100", 3);
  expect_num(wisp_json_put_double, 0.1, "0.10000000000000001");
  expect_num(wisp_json_put_double, 30, "30");
  expect_num(wisp_json_put_double, NAN, "null");
  expect_num(wisp_json_put_double, -INFINITY, "null");
  expect_num(wisp_json_put_fixed3, 1.5, "1.500");
  expect_num(wisp_json_put_fixed3, 0.25, "0.250");
  expect_num(wisp_json_put_fixed3, -2.25, "-2.250");
  expect_num(wisp_json_put_fixed3, -0.0004, "0.000");
  expect_num(wisp_json_put_fixed3, 9e15, "9000000000000000");
  expect_num(wisp_json_put_fixed3, INFINITY, "null");
}

/* Every call at every limit either writes its whole text or leaves the
 * buffer as it was with WISP_ERR_TOO_BIG. */
static void test_all_or_nothing(void **state) {
  (void)state;
  static const char kPrefix[] = "{\"k\":1";
  const size_t plen = sizeof(kPrefix) - 1;
  for (int what = 0; what < 5; what++) {
    const char *full = NULL;
    for (size_t limit = plen; limit < plen + 40; limit++) {
      wisp_buf b = {0};
      assert_int_equal(wisp_buf_append(&b, kPrefix, plen, BIG), WISP_OK);
      wisp_err rc = WISP_OK;
      switch (what) {
        case 0:
          rc = wisp_json_put_str(&b, "a\nb\"c", 5, WISP_JSON_ESCAPE_U, limit);
          break;
        case 1:
          rc = wisp_json_put_key(&b, "key", limit);
          break;
        case 2:
          rc = wisp_json_put_int(&b, -123456, limit);
          break;
        case 3:
          rc = wisp_json_put_fixed3(&b, 12.5, limit);
          break;
        default:
          rc = wisp_json_put_double(&b, 0.1, limit);
          break;
      }
      if (rc == WISP_OK) {
        if (!full) full = strdup(text(&b));
        assert_string_equal(text(&b), full); /* the same text at any limit that fits */
        assert_true(wisp_buf_len(&b) <= limit);
      } else {
        assert_int_equal(rc, WISP_ERR_TOO_BIG);
        assert_null(full); /* a larger limit never fails after a smaller one fit */
        assert_int_equal(wisp_buf_len(&b), plen);
        assert_memory_equal(wisp_buf_rptr(&b), kPrefix, plen);
      }
      wisp_buf_cleanup(&b);
    }
    assert_non_null(full);
    free((void *)full);
  }
}

/* The writer: a document of every piece, then a failure that is kept. */
static void test_writer(void **state) {
  (void)state;
  wisp_json_writer w;
  wisp_json_writer_init(&w, 80, WISP_JSON_ESCAPE_U);
  wisp_json_writer_raw(&w, "{", 1);
  wisp_json_writer_key(&w, "s");
  wisp_json_writer_str(&w, "a\n");
  wisp_json_writer_key(&w, "n");
  wisp_json_writer_str(&w, NULL);
  wisp_json_writer_key(&w, "i");
  wisp_json_writer_int(&w, -7);
  wisp_json_writer_key(&w, "d");
  wisp_json_writer_double(&w, 0.5);
  wisp_json_writer_key(&w, "b");
  wisp_json_writer_bool(&w, true);
  wisp_json_writer_printf(&w, ",\"p\":%d}", 3);
  assert_int_equal(w.err, WISP_OK);
  const char *want = "{\"s\":\"a\\u000a\",\"n\":null,\"i\":-7,\"d\":0.5,\"b\":true,\"p\":3}";
  assert_string_equal(text(&w.out), want);
  /* Past the limit: the failing piece is not written, nor anything after. */
  char big[100];
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  wisp_json_writer_str(&w, big);
  assert_int_equal(w.err, WISP_ERR_TOO_BIG);
  wisp_json_writer_raw(&w, "]", 1);
  wisp_json_writer_int(&w, 1);
  assert_string_equal(text(&w.out), want);
  wisp_json_writer_cleanup(&w);
  assert_int_equal(w.err, WISP_OK);
  assert_int_equal(wisp_buf_len(&w.out), 0);
  wisp_json_writer_int(&w, 1); /* usable again, same limit */
  assert_string_equal(text(&w.out), "1");
  wisp_json_writer_cleanup(&w);
}

/* ---- the escapers wisp_json replaced, as they were ------------------------- */

/* proxy/admin/wisp_admin.c's json_str (without the key). */
static void old_admin_str(char *out, size_t *n, const char *val) {
  out[(*n)++] = '"';
  for (const unsigned char *s = (const unsigned char *)val; *s; s++) {
    if (*s == '"' || *s == '\\') {
      out[(*n)++] = '\\';
      out[(*n)++] = (char)*s;
    } else if (*s < 0x20 || *s == 0x7f) {
      *n += (size_t)sprintf(out + *n, "\\u%04x", *s);
    } else {
      out[(*n)++] = (char)*s;
    }
  }
  out[(*n)++] = '"';
}

/* control/wispctl/format.c's json_str. */
static void old_wispctl_str(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    switch (*p) {
      case '"':
        fputs("\\\"", f);
        break;
      case '\\':
        fputs("\\\\", f);
        break;
      case '\n':
        fputs("\\n", f);
        break;
      case '\r':
        fputs("\\r", f);
        break;
      case '\t':
        fputs("\\t", f);
        break;
      default:
        if (*p < 0x20) {
          fprintf(f, "\\u%04x", *p);
        } else {
          fputc(*p, f);
        }
    }
  }
  fputc('"', f);
}

/* ---- UTF-8, checked apart from lib/wisp_json -------------------------------
 * A reference written another way (code point arithmetic, not byte
 * ranges): the RFC 3629 scalar value a sequence's first bytes begin, and
 * a maximal subpart ends at the first byte after which no well-formed
 * sequence could go on. */

/* The sequence's length from its lead byte (0: cannot lead one). */
static size_t ref_lead_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) return c >= 0xc2 ? 2 : 0; /* C0, C1: overlong */
  if ((c & 0xf0) == 0xe0) return 3;
  if ((c & 0xf8) == 0xf0) return c <= 0xf4 ? 4 : 0; /* F5-F7: past U+10FFFF */
  return 0;
}

/* Whether the first |k| + 1 bytes (lead, k continuation bytes, k >= 1) of
 * a |n|-byte sequence can still begin a well-formed one. */
static bool ref_prefix_ok(const unsigned char *p, size_t k, size_t n) {
  if ((p[k] & 0xc0) != 0x80) return false;
  if (k > 1) return true;                                            /* the second byte decides the rest */
  uint32_t hi = (uint32_t)(p[0] & (0x7f >> n)) << 6 | (p[1] & 0x3f); /* the value's top bits */
  if (n == 3) return hi >= (0x800 >> 6) && !(hi >= (0xd800 >> 6) && hi <= (0xdfff >> 6));
  if (n == 4) return hi >= (0x10000 >> 12) && hi <= (0x10ffff >> 12);
  return true;
}

/* |in| (|len| bytes) with every maximal subpart of ill-formed UTF-8 as the
 * six bytes \ufffd, the rest as it is; returns the output's length. */
static size_t ref_repair(const unsigned char *in, size_t len, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    size_t n = ref_lead_len(in[i]), k = 1;
    while (n > 1 && k < n && i + k < len && ref_prefix_ok(in + i, k, n)) k++;
    if (n && k == n) {
      memcpy(out + o, in + i, n);
      o += n;
      i += n;
    } else {
      memcpy(out + o, "\\ufffd", 6);
      o += 6;
      i += k;
    }
  }
  return o;
}

/* |in| escaped is |want|, into an empty buffer (the piecewise path) and
 * again into one with room for the worst case (the one-pass path, 8 bytes
 * at a time, that log lines take). */
static void expect_both_paths(const char *in, size_t len, wisp_json_escape esc, const char *want, size_t n) {
  static const char room[64 * 6 + 8];
  wisp_buf b = {0};
  assert_int_equal(wisp_json_put_str(&b, in, len, esc, BIG), WISP_OK);
  assert_int_equal(wisp_buf_len(&b), n);
  assert_memory_equal(wisp_buf_rptr(&b), want, n);
  wisp_buf_truncate(&b, 0);
  assert_int_equal(wisp_buf_append(&b, room, sizeof(room), BIG), WISP_OK);
  wisp_buf_truncate(&b, 0);
  assert_int_equal(wisp_json_put_str(&b, in, len, esc, BIG), WISP_OK);
  assert_int_equal(wisp_buf_len(&b), n);
  assert_memory_equal(wisp_buf_rptr(&b), want, n);
  wisp_buf_cleanup(&b);
}

static void test_same_bytes_as_before(void **state) {
  (void)state;
  char in[64];
  char want[64 * 6 + 8];
  srand(12345);
  for (int round = 0; round < 3000; round++) {
    size_t len = (size_t)(rand() % 40);
    for (size_t i = 0; i < len; i++) {
      /* Every byte but NUL (the old escapers took C strings), often special. */
      static const unsigned char kUtf8[] = {0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3,
                                            0xdf, 0xe0, 0xe1, 0xed, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff};
      int r = rand() % 5;
      in[i] = (char)(r == 0   ? 1 + rand() % 0x20
                     : r == 1 ? "\"\\\x7f\n\r\t"[rand() % 6]
                     : r == 2 ? kUtf8[rand() % sizeof(kUtf8)] /* leads and continuations that meet */
                              : 1 + rand() % 255);
    }
    in[len] = '\0';
    if (round < 255) { /* first, each byte alone */
      in[0] = (char)(round + 1);
      in[1] = '\0';
      len = 1;
    }
    /* The old escapers copied bytes from 0x80 as they were: now read as
     * UTF-8 (their escapes are ASCII, which never continues a sequence). */
    char old[64 * 6 + 8];
    size_t n = 0;
    old_admin_str(old, &n, in);
    n = ref_repair((const unsigned char *)old, n, want);
    expect_both_paths(in, len, WISP_JSON_ESCAPE_U, want, n);

    char *mem = NULL;
    size_t mlen = 0;
    FILE *f = open_memstream(&mem, &mlen);
    assert_non_null(f);
    old_wispctl_str(f, in);
    fclose(f);
    char *wmem = malloc(6 * mlen + 1);
    assert_non_null(wmem);
    n = ref_repair((const unsigned char *)mem, mlen, wmem);
    expect_both_paths(in, len, WISP_JSON_ESCAPE_SHORT, wmem, n);
    free(wmem);
    free(mem);
  }
}

/* ---- wisp_buf_printf and wisp_buf_truncate, which the writers use --------- */

/* The one-pass escaper (a buffer with room for the worst case) writes
 * what the piecewise one writes (a buffer without room) for |in|. */
static void expect_fast_as_piecewise(const char *in, size_t len, wisp_json_escape esc) {
  static const char room[6 * 24 + 2]; /* the worst case of the longest input */
  assert_true(len <= 24);
  wisp_buf slow = {0}, fast = {0};
  assert_int_equal(wisp_json_put_str(&slow, in, len, esc, BIG), WISP_OK);
  assert_int_equal(wisp_buf_append(&fast, room, sizeof(room), BIG), WISP_OK);
  wisp_buf_truncate(&fast, 0);
  assert_int_equal(wisp_json_put_str(&fast, in, len, esc, BIG), WISP_OK);
  assert_int_equal(wisp_buf_len(&fast), wisp_buf_len(&slow));
  assert_memory_equal(wisp_buf_rptr(&fast), wisp_buf_rptr(&slow), wisp_buf_len(&slow));
  wisp_buf_cleanup(&slow);
  wisp_buf_cleanup(&fast);
}

/* The one-pass escaper reads a string's tail as a whole word ending at its
 * end and a short string as two overlapping halves: every read stays
 * inside the string. Strings of 0 to 24 bytes (plain, and with a byte to
 * escape at every place) end right at a PROT_NONE page, or start right
 * after one: a read one byte outside faults, in every build. */
static void test_fast_path_reads_inside(void **state) {
  (void)state;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  uint8_t *map = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(map != MAP_FAILED);
  assert_int_equal(mprotect(map, page, PROT_NONE), 0);
  assert_int_equal(mprotect(map + 2 * page, page, PROT_NONE), 0);
  uint8_t *first = map + page, *end = map + 2 * page; /* the readable page */
  /* Bytes to escape, and UTF-8 sequences whole and cut short: a lead
   * byte as a string's last never has the byte after it read. */
  static const struct {
    const char *s;
    size_t n;
  } odd[] = {{"a", 1},
             {"\0", 1},
             {"\"", 1},
             {"\\", 1},
             {"\x1f", 1},
             {"\x7f", 1},
             {"\xff", 1},
             {"\xc3", 1},
             {"\xe2\x82", 2},
             {"\xf0\x9f\x98", 3},
             {"\xc3\xa9", 2},
             {"\xe2\x82\xac", 3},
             {"\xf0\x9f\x98\x80", 4}};
  for (int esc = 0; esc < 2; esc++) {
    for (size_t len = 0; len <= 24; len++) {
      for (size_t x = 0; x < sizeof(odd) / sizeof(odd[0]); x++) {
        for (size_t at = 0; at < (len ? len : 1); at++) {
          char want[24];
          memset(want, 'q', sizeof(want));
          if (at + odd[x].n > len && len) continue;
          if (len) memcpy(want + at, odd[x].s, odd[x].n);
          char *tail = (char *)end - len, *head = (char *)first;
          memcpy(tail, want, len);
          memcpy(head, want, len);
          expect_fast_as_piecewise(tail, len, (wisp_json_escape)esc);
          expect_fast_as_piecewise(head, len, (wisp_json_escape)esc);
        }
      }
    }
  }
  munmap(map, 3 * page);
}

/* The one-pass escaper (a buffer with room, 8 bytes at a time) writes what
 * the piecewise one writes (a buffer without room): every byte value, NUL
 * included, at every place in and around a word, both escapes. */
static void test_fast_path_as_piecewise(void **state) {
  (void)state;
  char in[24];
  for (int esc = 0; esc < 2; esc++) {
    for (int c = 0; c < 256; c++) {
      for (size_t len = 1; len <= sizeof(in); len++) {
        for (size_t at = 0; at < len; at++) {
          memset(in, 'a', sizeof(in));
          in[at] = (char)c;
          expect_fast_as_piecewise(in, len, (wisp_json_escape)esc);
        }
      }
    }
  }
}

/* The same with two bytes to escape, at every pair of places: a word with
 * one next to one without, and the overlapping reads of a string's tail
 * and of strings shorter than a word, see each combination. */
static void test_fast_path_two_escapes(void **state) {
  (void)state;
  static const unsigned char odd[] = {0x00, 0x1f, '"', '\\', 0x7f, 0x80, 0xff, 'a', 0xc3, 0xa9, 0xe2, 0xf0};
  char in[20];
  for (int esc = 0; esc < 2; esc++) {
    for (size_t x = 0; x < sizeof(odd); x++) {
      for (size_t len = 1; len <= sizeof(in); len++) {
        for (size_t at = 0; at < len; at++) {
          for (size_t at2 = at; at2 < len; at2++) {
            memset(in, 'b', sizeof(in));
            in[at] = (char)odd[x];
            in[at2] = (char)odd[(x + at2) % sizeof(odd)];
            expect_fast_as_piecewise(in, len, (wisp_json_escape)esc);
          }
        }
      }
    }
  }
}

/* ---- UTF-8 ---------------------------------------------------------------- */

/* Well-formed sequences of 2, 3 and 4 bytes, at the edges of their ranges. */
static const char *const kWellFormed[] = {
    "\xc2\x80",         /* U+0080 */
    "\xc3\xa9",         /* é */
    "\xdf\xbf",         /* U+07FF */
    "\xe0\xa0\x80",     /* U+0800 */
    "\xe2\x82\xac",     /* € */
    "\xed\x9f\xbf",     /* U+D7FF, below the surrogates */
    "\xee\x80\x80",     /* U+E000, above them */
    "\xef\xbf\xbd",     /* U+FFFD itself */
    "\xef\xbf\xbf",     /* U+FFFF */
    "\xf0\x90\x80\x80", /* U+10000 */
    "\xf0\x9f\x98\x80", /* 😀 */
    "\xf4\x8f\xbf\xbf", /* U+10FFFF */
};

/* Each well-formed sequence passes through as it is, at every place in
 * strings of up to 24 bytes (inside a word, across two, in the tail read
 * as an overlapping word, in strings shorter than a word), next to
 * another and next to bytes that are escaped, both paths, both escapes. */
static void test_utf8_passes_through(void **state) {
  (void)state;
  const size_t kinds = sizeof(kWellFormed) / sizeof(kWellFormed[0]);
  char in[24], want[2 + 6 * 24];
  for (int esc = 0; esc < 2; esc++) {
    for (size_t q = 0; q < kinds; q++) {
      const char *seq = kWellFormed[q], *next = kWellFormed[(q + 5) % kinds];
      size_t n = strlen(seq), n2 = strlen(next);
      for (size_t len = n; len <= sizeof(in); len++) {
        for (size_t at = 0; at + n <= len; at++) {
          for (int with = 0; with < 3; with++) {
            memset(in, 'a', sizeof(in));
            memcpy(in + at, seq, n);
            if (with == 1) { /* another right after it */
              if (at + n + n2 > len) continue;
              memcpy(in + at + n, next, n2);
            }
            if (with == 2) { /* a byte to escape just before: that word goes byte by byte */
              if (at == 0) continue;
              in[at - 1] = '"';
            }
            size_t w = 0;
            want[w++] = '"';
            for (size_t i = 0; i < len; i++) {
              if (in[i] == '"') want[w++] = '\\';
              want[w++] = in[i];
            }
            want[w++] = '"';
            expect_both_paths(in, len, (wisp_json_escape)esc, want, w);
          }
        }
      }
    }
  }
}

#define R "\\ufffd" /* U+FFFD, as written */

/* Ill-formed input: one U+FFFD per maximal subpart (Unicode 3.9, WHATWG),
 * the byte that broke a sequence read again. */
static const struct {
  const char *in;
  size_t len;
  const char *want;
} kIllFormed[] = {
    {"\x80", 1, R},                               /* a lone continuation byte */
    {"\xbf", 1, R},                               /* another */
    {"\x80\xbf\x80", 3, R R R},                   /* a run of them: one each */
    {"\xc0\x80", 2, R R},                         /* overlong NUL (modified UTF-8) */
    {"\xc0\xaf", 2, R R},                         /* overlong '/' */
    {"\xc1\xbf", 2, R R},                         /* overlong U+007F */
    {"\xe0\x80\xaf", 3, R R R},                   /* overlong '/' in three bytes */
    {"\xe0\x9f\xbf", 3, R R R},                   /* overlong U+07FF */
    {"\xf0\x80\x80\xaf", 4, R R R R},             /* overlong '/' in four bytes */
    {"\xf0\x8f\xbf\xbf", 4, R R R R},             /* overlong U+FFFF */
    {"\xed\xa0\x80", 3, R R R},                   /* U+D800, a surrogate */
    {"\xed\xbf\xbf", 3, R R R},                   /* U+DFFF */
    {"\xed\xa0\xbd\xed\xb8\x80", 6, R R R R R R}, /* 😀 as a surrogate pair (CESU-8) */
    {"\xf4\x90\x80\x80", 4, R R R R},             /* U+110000, past the last code point */
    {"\xf5\x80\x80\x80", 4, R R R R},             /* a lead byte past U+10FFFF */
    {"\xf7\xbf\xbf\xbf", 4, R R R R},             /* U+1FFFFF */
    {"\xf8\x88\x80\x80\x80", 5, R R R R R},       /* five-byte forms */
    {"\xfc\x84\x80\x80\x80\x80", 6, R R R R R R}, /* six-byte forms */
    {"\xfe\xff", 2, R R},                         /* never in UTF-8 (UTF-16 BOMs) */
    {"\xc2", 1, R},                               /* cut by the string's end */
    {"\xe2\x82", 2, R},                           /* cut after two of three */
    {"\xf0\x9f\x98", 3, R},                       /* cut after three of four */
    {"\xf0", 1, R},                               /* a lead alone */
    {"\xc2"
     "A",
     2, R "A"}, /* cut by ASCII: the 'A' stays */
    {"\xe2\x82"
     "A",
     3, R "A"},
    {"\xe2"
     "A"
     "\xac",
     3, R "A" R},
    {"\xf0\x9f\x98"
     "\"",
     4, R "\\\""},                     /* cut by a byte that is escaped */
    {"\xc3\xc3\xa9", 3, R "\xc3\xa9"}, /* cut by a new lead: the lead starts over */
    {"\xf0\x9f\x98\xf0\x9f\x98\x80", 7, R "\xf0\x9f\x98\x80"},
    {"\xc3\xa9\x80", 3, "\xc3\xa9" R}, /* one continuation byte too many */
    {"\xe0\xa0\xc0", 3, R R},          /* E0 A0 then not a continuation byte */
    {"\xed\x9f", 2, R},                /* could still be U+D7FF: one subpart */
    /* The Unicode Standard's own example (Table 3-8). */
    {"a\xf1\x80\x80\xe1\x80\xc2"
     "b\x80"
     "c\x80\xbf"
     "d",
     13, "a" R R R "b" R "c" R R "d"},
};

/* Each ill-formed input alone and at every place between plain bytes
 * (which end nothing: a sequence cut by the string's end reads the same
 * cut by an 'x'), both paths, both escapes (U+FFFD is written the same). */
static void test_utf8_ill_formed(void **state) {
  (void)state;
  char in[32], want[2 + 6 * 32];
  for (int esc = 0; esc < 2; esc++) {
    for (size_t c = 0; c < sizeof(kIllFormed) / sizeof(kIllFormed[0]); c++) {
      size_t n = kIllFormed[c].len, wn = strlen(kIllFormed[c].want);
      for (size_t len = n; len <= 24; len++) {
        for (size_t at = 0; at + n <= len; at++) {
          memset(in, 'x', sizeof(in));
          memcpy(in + at, kIllFormed[c].in, n);
          size_t w = 0;
          want[w++] = '"';
          memset(want + w, 'x', at);
          w += at;
          memcpy(want + w, kIllFormed[c].want, wn);
          w += wn;
          memset(want + w, 'x', len - at - n);
          w += len - at - n;
          want[w++] = '"';
          expect_both_paths(in, len, (wisp_json_escape)esc, want, w);
        }
      }
    }
  }
}

#undef R

/* For random byte strings (every byte value, often UTF-8 leads and
 * continuations that meet), what is written is valid UTF-8 (strict, no
 * surrogates) and python3's json.loads takes it (on bytes, as a log
 * shipper reads a line), giving the string Python's own decoder gives
 * for the input with errors="replace": the same U+FFFDs, the same text. */
static void test_utf8_python_parses(void **state) {
  (void)state;
  static const char kCheck[] =
      "/usr/bin/python3 -c '\n"
      "import json, sys\n"
      "n = 0\n"
      "for line in sys.stdin.buffer.read().split(b\"\\n\")[:-1]:\n"
      "    h, out = line.split(b\" \", 1)\n"
      "    raw = bytes.fromhex(h.decode())\n"
      "    out.decode(\"utf-8\")\n"
      "    v = json.loads(out)\n"
      "    if v != raw.decode(\"utf-8\", \"replace\"):\n"
      "        sys.exit(\"mismatch: %s %r %r\" % (h.decode(), out, v))\n"
      "    n += 1\n"
      "if n != 8000: sys.exit(\"read %d lines\" % n)\n"
      "'";
  FILE *py = popen(kCheck, "w");
  assert_non_null(py);
  static const unsigned char kUtf8[] = {0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3,
                                        0xdf, 0xe0, 0xe1, 0xed, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff};
  static const char room[6 * 40 + 2];
  srand(4242);
  for (int round = 0; round < 2000; round++) {
    unsigned char in[40];
    size_t len = (size_t)(rand() % 41);
    for (size_t i = 0; i < len; i++) {
      int r = rand() % 4;
      in[i] = (unsigned char)(r == 0 ? rand() % 256 : r == 1 ? 'a' + rand() % 26 : kUtf8[rand() % sizeof(kUtf8)]);
    }
    for (int esc = 0; esc < 2; esc++) {
      for (int fast = 0; fast < 2; fast++) {
        wisp_buf b = {0};
        if (fast) { /* room for the worst case: the log's one-pass path */
          assert_int_equal(wisp_buf_append(&b, room, sizeof(room), BIG), WISP_OK);
          wisp_buf_truncate(&b, 0);
        }
        assert_int_equal(wisp_json_put_str(&b, (const char *)in, len, (wisp_json_escape)esc, BIG), WISP_OK);
        for (size_t i = 0; i < len; i++) fprintf(py, "%02x", in[i]);
        fputc(' ', py);
        fwrite(wisp_buf_rptr(&b), 1, wisp_buf_len(&b), py);
        fputc('\n', py);
        wisp_buf_cleanup(&b);
      }
    }
  }
  assert_int_equal(pclose(py), 0);
}

static void test_buf_printf(void **state) {
  (void)state;
  wisp_buf b = {0};
  assert_int_equal(wisp_buf_printf(&b, 64, "%s=%d", "n", 42), WISP_OK);
  assert_string_equal(text(&b), "n=42");
  assert_int_equal(wisp_buf_printf(&b, 64, "%s", ""), WISP_OK);
  assert_string_equal(text(&b), "n=42");
  /* Past the limit: refused, unchanged. */
  assert_int_equal(wisp_buf_printf(&b, 8, "%s", "12345"), WISP_ERR_TOO_BIG);
  assert_string_equal(text(&b), "n=42");
  /* Longer than the storage: grows. */
  char big[6000];
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  assert_int_equal(wisp_buf_printf(&b, BIG, "[%s]", big), WISP_OK);
  assert_int_equal(wisp_buf_len(&b), 4 + 2 + sizeof(big) - 1);
  wisp_buf_truncate(&b, 2);
  assert_string_equal(text(&b), "n=");
  wisp_buf_truncate(&b, 10); /* longer than what is there: nothing */
  assert_string_equal(text(&b), "n=");
  wisp_buf_truncate(&b, 0);
  assert_int_equal(wisp_buf_len(&b), 0);
  assert_int_equal(b.rpos, 0);
  wisp_buf_cleanup(&b);
}

/* wisp_json_measure counts what a parser would build, and stops early. */
static void expect_shape(const char *in, size_t max_values, size_t max_depth, wisp_err want_rc, size_t values,
                         size_t depth) {
  wisp_json_shape sh;
  assert_int_equal(wisp_json_measure(in, strlen(in), max_values, max_depth, &sh), want_rc);
  assert_int_equal(sh.values, values);
  assert_int_equal(sh.depth, depth);
}

static void test_measure(void **state) {
  (void)state;
  /* object, "a", array, 1, 2.5e-3, true, null, "x\"]", "b", {} */
  const char *doc = "{\"a\": [1, 2.5e-3 ,true,null, \"x\\\"]\"], \"b\":{}}";
  expect_shape(doc, 100, 100, WISP_OK, 10, 2);
  expect_shape(doc, 10, 2, WISP_OK, 10, 2);
  expect_shape(doc, 9, 100, WISP_ERR_TOO_BIG, 10, 2);
  expect_shape(doc, 100, 1, WISP_ERR_TOO_BIG, 3, 2);
  expect_shape("[-1,-0.5E+7,\"\\\\\",\"\"]", 100, 100, WISP_OK, 5, 1);
  expect_shape("", 0, 0, WISP_OK, 0, 0);
  expect_shape("[[[]]]", 100, 2, WISP_ERR_TOO_BIG, 3, 3);
  expect_shape("]]]}}[", 100, 100, WISP_OK, 1, 1); /* not validated: counted as far as it goes */
  /* Truncated inside a string or after a backslash: never read past the end. */
  char *cut = malloc(6);
  memcpy(cut, "[\"ab\\", 5);
  wisp_json_shape sh;
  assert_int_equal(wisp_json_measure(cut, 5, 100, 100, &sh), WISP_OK);
  assert_int_equal(sh.values, 2);
  free(cut);
  /* A megabyte of zeros: refused at the first value past the limit. */
  size_t n = (size_t)1 << 20;
  char *zeros = malloc(n);
  zeros[0] = '[';
  for (size_t i = 1; i < n; i += 2) {
    zeros[i] = '0';
    if (i + 1 < n) zeros[i + 1] = ',';
  }
  assert_int_equal(wisp_json_measure(zeros, n, 65536, 512, &sh), WISP_ERR_TOO_BIG);
  assert_int_equal(sh.values, 65537);
  free(zeros);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_escape_u),
      cmocka_unit_test(test_escape_short),
      cmocka_unit_test(test_key_commas),
      cmocka_unit_test(test_numbers),
      cmocka_unit_test(test_all_or_nothing),
      cmocka_unit_test(test_writer),
      cmocka_unit_test(test_same_bytes_as_before),
      cmocka_unit_test(test_fast_path_as_piecewise),
      cmocka_unit_test(test_fast_path_two_escapes),
      cmocka_unit_test(test_fast_path_reads_inside),
      cmocka_unit_test(test_utf8_passes_through),
      cmocka_unit_test(test_utf8_ill_formed),
      cmocka_unit_test(test_utf8_python_parses),
      cmocka_unit_test(test_buf_printf),
      cmocka_unit_test(test_measure),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
