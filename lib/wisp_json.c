#include "lib/wisp_json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* wisp_buf_append with the common case inline: log lines put a few dozen
 * short pieces per request, and this is on that path (no printf here
 * either, but for %.17g). */
static inline wisp_err put(wisp_buf *b, const void *s, size_t n, size_t limit) {
  if (n && b->cap - b->wpos >= n && wisp_buf_len(b) + n <= limit) {
    memcpy(b->data + b->wpos, s, n);
    b->wpos += n;
    return WISP_OK;
  }
  return wisp_buf_append(b, s, n, limit);
}

static inline bool needs_escape(unsigned char c, wisp_json_escape esc) {
  return c < 0x20 || c == '"' || c == '\\' || (c == 0x7f && esc == WISP_JSON_ESCAPE_U);
}

/* Writes the escape of |c| (an ASCII byte) to |e|; returns its length. */
static size_t escape_byte(unsigned char c, wisp_json_escape esc, char e[6]) {
  static const char hex[] = "0123456789abcdef";
  e[0] = '\\';
  if (c == '"' || c == '\\') {
    e[1] = (char)c;
    return 2;
  }
  if (esc == WISP_JSON_ESCAPE_SHORT && (c == '\n' || c == '\r' || c == '\t')) {
    e[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
    return 2;
  }
  e[1] = 'u';
  e[2] = '0';
  e[3] = '0';
  e[4] = hex[c >> 4];
  e[5] = hex[c & 15];
  return 6;
}

/* What stands for bytes that are not well-formed UTF-8: U+FFFD, escaped
 * (ASCII, as many bytes as the worst case of an escaped byte). */
static const char kReplacement[6] = {'\\', 'u', 'f', 'f', 'f', 'd'};

/* The UTF-8 sequence at |p| (|avail| >= 1 bytes, p[0] >= 0x80), by RFC
 * 3629's grammar (Unicode's Table 3-7): returns its length (2 to 4) if it
 * is well-formed, else 0 with |*bad| the length of its maximal subpart (1
 * to 3: the lead byte and the continuation bytes that could still begin a
 * well-formed sequence, as the Unicode Standard (3.9, "U+FFFD Substitution
 * of Maximal Subparts") and the WHATWG decoder count), which becomes one
 * U+FFFD. So no overlong forms (C0, C1, E0 80-9F, F0 80-8F), no surrogates
 * (ED A0-BF), nothing past U+10FFFF (F4 90-BF, F5-FF), no lone continuation
 * byte, and a sequence cut short (by the string's end too) is one U+FFFD;
 * the byte that broke it is read again as the start of what follows. */
static inline size_t utf8_seq(const unsigned char *p, size_t avail, size_t *bad) {
  unsigned char c = p[0], lo = 0x80, hi = 0xbf;
  size_t need;
  if (c >= 0xc2 && c <= 0xdf) {
    need = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    need = 3;
    if (c == 0xe0) lo = 0xa0; /* overlong below U+0800 */
    if (c == 0xed) hi = 0x9f; /* surrogates */
  } else if (c >= 0xf0 && c <= 0xf4) {
    need = 4;
    if (c == 0xf0) lo = 0x90; /* overlong below U+10000 */
    if (c == 0xf4) hi = 0x8f; /* past U+10FFFF */
  } else {
    *bad = 1; /* a continuation byte, C0, C1, F5-FF */
    return 0;
  }
  for (size_t k = 1; k < need; k++) {
    if (k >= avail || p[k] < lo || p[k] > hi) {
      *bad = k;
      return 0;
    }
    lo = 0x80;
    hi = 0xbf;
  }
  return need;
}

/* Whether one of the 8 bytes of |w| needs_escape or is >= 0x80 (a byte of
 * a UTF-8 sequence, to be checked): the has-less-than and has-zero-byte
 * word tricks, exact for "is there one" (a borrow can only come from a
 * byte that matched). (w - 0x20s) | w sets a byte's high bit for bytes
 * below 0x20 and from 0x80 alike: no more instructions than plain ASCII's
 * & ~w, so the fast path costs what it did. */
static inline bool word_needs_escape(uint64_t w, wisp_json_escape esc) {
  const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  uint64_t quote = w ^ (ones * '"'), bslash = w ^ (ones * '\\');
  uint64_t hit = ((w - ones * 0x20) | w) | ((quote - ones) & ~quote) | ((bslash - ones) & ~bslash);
  if (esc == WISP_JSON_ESCAPE_U) {
    uint64_t del = w ^ (ones * 0x7f);
    hit |= (del - ones) & ~del;
  }
  return (hit & highs) != 0;
}

/* |n| (2, 4 or 8) bytes at |p| as a word; stores one. */
static inline uint64_t load_n(const void *p, size_t n) {
  uint64_t w = 0;
  if (n == 8) memcpy(&w, p, 8);
  if (n == 4) {
    uint32_t v;
    memcpy(&v, p, 4);
    w = v;
  }
  if (n == 2) {
    uint16_t v;
    memcpy(&v, p, 2);
    w = v;
  }
  return w;
}

static inline void store_n(void *p, uint64_t w, size_t n) {
  if (n == 8) memcpy(p, &w, 8);
  if (n == 4) {
    uint32_t v = (uint32_t)w;
    memcpy(p, &v, 4);
  }
  if (n == 2) {
    uint16_t v = (uint16_t)w;
    memcpy(p, &v, 2);
  }
}

/* A string of 2 to 7 bytes that needs no escaping, as two halves of |n|
 * (2 or 4) bytes, n <= len <= 2n, that overlap in the middle, copied to
 * |o|: the log's short fields ("GET", "h2", "allow") in a few
 * instructions, not a loop per byte. False (nothing written) if a byte
 * needs escaping or is >= 0x80. */
static inline bool put_short_plain(uint8_t *o, const char *s, size_t len, size_t n, wisp_json_escape esc) {
  uint64_t head = load_n(s, n), tail = load_n(s + len - n, n);
  /* Both halves in one word for the check; 2-byte halves leave its upper
   * half zero, which would count as control bytes: 'a's there. */
  uint64_t both = head | tail << (8 * n);
  if (n == 2) both |= 0x6161616100000000ULL;
  if (word_needs_escape(both, esc)) return false;
  store_n(o, head, n);
  store_n(o + len - n, tail, n);
  return true;
}

/* Bytes of |s| from |*i| up to |end|, one by one: ASCII escaped as needed,
 * well-formed UTF-8 sequences copied, the maximal subparts of broken ones
 * as U+FFFD. A sequence that starts before |end| is read to its own end
 * (never past |len|), so |*i| ends at |end| or up to 3 bytes after. */
static uint8_t *put_bytes(uint8_t *o, const char *s, size_t *i, size_t end, size_t len, wisp_json_escape esc) {
  const unsigned char *u = (const unsigned char *)s;
  size_t at = *i;
  while (at < end) {
    unsigned char c = u[at];
    if (c >= 0x80) {
      size_t bad, n = utf8_seq(u + at, len - at, &bad);
      if (n) {
        memcpy(o, u + at, n);
        o += n;
        at += n;
      } else {
        memcpy(o, kReplacement, sizeof(kReplacement));
        o += sizeof(kReplacement);
        at += bad;
      }
    } else if (!needs_escape(c, esc)) {
      *o++ = c;
      at++;
    } else {
      char e[6];
      size_t n = escape_byte(c, esc, e);
      memcpy(o, e, n);
      o += n;
      at++;
    }
  }
  *i = at;
  return o;
}

/* The common case (a log line's field, with room for the worst case, six
 * bytes per input byte): one pass straight into the buffer, no bounds
 * checks per piece, 8 bytes at a time while none needs escaping or is
 * >= 0x80 (the log writes a few hundred bytes of IDs, paths and names per
 * request). The last partial word is read as a whole word ending at the
 * string's end (overlapping bytes already written), a string shorter than
 * a word as two overlapping halves: no byte loop unless a byte needs
 * escaping or UTF-8 checking. A word with such a byte goes byte by byte
 * (put_bytes), and the words go on from where that ended. Nothing is read
 * outside |s| nor written past the worst case (a U+FFFD, six bytes, stands
 * for one input byte or more). */
static void put_escaped_fast(wisp_buf *b, const char *s, size_t len, wisp_json_escape esc) {
  uint8_t *o = b->data + b->wpos;
  *o++ = '"';
  if (len < sizeof(uint64_t)) {
    bool plain = len >= 4 ? put_short_plain(o, s, len, 4, esc) : len >= 2 && put_short_plain(o, s, len, 2, esc);
    if (plain) {
      o += len;
    } else {
      size_t i = 0;
      o = put_bytes(o, s, &i, len, len, esc);
    }
  } else {
    size_t i = 0;
    while (len - i >= sizeof(uint64_t)) {
      uint64_t w = load_n(s + i, 8);
      if (!word_needs_escape(w, esc)) {
        store_n(o, w, 8);
        o += sizeof(w);
        i += sizeof(w);
      } else {
        o = put_bytes(o, s, &i, i + sizeof(w), len, esc);
      }
    }
    size_t rest = len - i;
    if (rest) {
      uint64_t w = load_n(s + len - 8, 8); /* ends with the |rest| bytes */
      if (!word_needs_escape(w, esc)) {
        /* None of its bytes needs escaping or is >= 0x80, so its first
         * 8 - rest went out as they are, just before: written again, the
         * same. */
        store_n(o - (8 - rest), w, 8);
        o += rest;
      } else {
        o = put_bytes(o, s, &i, len, len, esc);
      }
    }
  }
  *o++ = '"';
  b->wpos = (size_t)(o - b->data);
}

static wisp_err put_escaped(wisp_buf *b, const char *s, size_t len, wisp_json_escape esc, size_t limit) {
  if (len < (SIZE_MAX - 2) / 6) {
    size_t worst = 6 * len + 2;
    if (b->cap - b->wpos >= worst && wisp_buf_len(b) + worst <= limit) {
      put_escaped_fast(b, s, len, esc);
      return WISP_OK;
    }
  }
  const unsigned char *u = (const unsigned char *)s;
  WISP_GUARD(put(b, "\"", 1, limit));
  size_t i = 0;
  while (i < len) {
    /* Plain runs (ASCII that needs no escape, well-formed UTF-8) are
     * copied whole. */
    size_t run = i, bad = 1;
    while (run < len) {
      size_t n = u[run] < 0x80 ? (size_t)!needs_escape(u[run], esc) : utf8_seq(u + run, len - run, &bad);
      if (!n) break;
      run += n;
    }
    if (run > i) WISP_GUARD(put(b, s + i, run - i, limit));
    if (run == len) break;
    if (u[run] >= 0x80) {
      WISP_GUARD(put(b, kReplacement, sizeof(kReplacement), limit));
      i = run + bad;
    } else {
      char e[6];
      WISP_GUARD(put(b, e, escape_byte(u[run], esc, e), limit));
      i = run + 1;
    }
  }
  return put(b, "\"", 1, limit);
}

wisp_err wisp_json_put_str(wisp_buf *b, const char *s, size_t len, wisp_json_escape esc, size_t limit) {
  size_t mark = wisp_buf_len(b);
  wisp_err rc = put_escaped(b, s, len, esc, limit);
  if (rc != WISP_OK) wisp_buf_truncate(b, mark);
  return rc;
}

wisp_err wisp_json_put_key(wisp_buf *b, const char *key, size_t limit) {
  return wisp_json_put_keyn(b, key, strlen(key), limit);
}

wisp_err wisp_json_put_keyn(wisp_buf *b, const char *key, size_t key_len, size_t limit) {
  size_t mark = wisp_buf_len(b);
  char last = mark ? (char)b->data[b->wpos - 1] : '{';
  wisp_err rc = last == '{' || last == '[' ? put(b, "\"", 1, limit) : put(b, ",\"", 2, limit);
  if (rc == WISP_OK) rc = put(b, key, key_len, limit);
  if (rc == WISP_OK) rc = put(b, "\":", 2, limit);
  if (rc != WISP_OK) wisp_buf_truncate(b, mark);
  return rc;
}

size_t wisp_json_fmt_u64(char *out, uint64_t u) {
  char tmp[20];
  size_t n = 0, o = 0;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  while (n) out[o++] = tmp[--n];
  return o;
}

/* Writes |v| in decimal to |out| (at most 20 digits and a sign). */
static size_t fmt_int(char *out, int64_t v) {
  if (v >= 0) return wisp_json_fmt_u64(out, (uint64_t)v);
  out[0] = '-';
  return 1 + wisp_json_fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
}

wisp_err wisp_json_put_int(wisp_buf *b, int64_t v, size_t limit) {
  char num[24];
  return put(b, num, fmt_int(num, v), limit);
}

wisp_err wisp_json_put_double(wisp_buf *b, double v, size_t limit) {
  if (!isfinite(v)) return wisp_json_put_null(b, limit);
  char num[32];
  int n = snprintf(num, sizeof(num), "%.17g", v);
  WISP_ENSURE(n > 0 && (size_t)n < sizeof(num), WISP_ERR_INTERNAL);
  return put(b, num, (size_t)n, limit);
}

wisp_err wisp_json_put_fixed3(wisp_buf *b, double v, size_t limit) {
  /* Beyond this the milli count leaves int64's exact range. */
  if (!isfinite(v) || fabs(v) >= 9e15) return wisp_json_put_double(b, v, limit);
  int64_t milli = (int64_t)(v * 1000.0 + (v < 0 ? -0.5 : 0.5));
  uint64_t mag = milli < 0 ? (uint64_t)0 - (uint64_t)milli : (uint64_t)milli;
  char num[32];
  size_t n = 0;
  if (milli < 0) num[n++] = '-';
  n += fmt_int(num + n, (int64_t)(mag / 1000));
  num[n++] = '.';
  num[n++] = (char)('0' + mag / 100 % 10);
  num[n++] = (char)('0' + mag / 10 % 10);
  num[n++] = (char)('0' + mag % 10);
  return put(b, num, n, limit);
}

wisp_err wisp_json_put_bool(wisp_buf *b, bool v, size_t limit) {
  return v ? put(b, "true", 4, limit) : put(b, "false", 5, limit);
}

wisp_err wisp_json_put_null(wisp_buf *b, size_t limit) { return put(b, "null", 4, limit); }

/* ---- measuring untrusted input ---- */

/* A byte that starts a number or a literal (true, false, null). */
static inline bool starts_scalar(unsigned char c) {
  return c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n';
}

/* A byte that goes on inside one (digits, letters, '.', '+', '-'). */
static inline bool in_scalar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '+' || c == '-';
}

wisp_err wisp_json_measure(const char *p, size_t len, size_t max_values, size_t max_depth, wisp_json_shape *out) {
  size_t values = 0, depth = 0, deepest = 0;
  bool scalar = false; /* inside a number or literal */
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)p[i];
    if (scalar && in_scalar(c)) continue;
    scalar = false;
    if (c == '"') {
      /* Skip the string: an escape takes the byte after it. */
      for (i++; i < len && p[i] != '"'; i++)
        if (p[i] == '\\') i++;
      values++;
    } else if (c == '{' || c == '[') {
      values++;
      if (++depth > deepest) deepest = depth;
    } else if (c == '}' || c == ']') {
      if (depth) depth--;
    } else if (starts_scalar(c)) {
      values++;
      scalar = true;
    }
    if (values > max_values || deepest > max_depth) break;
  }
  out->values = values;
  out->depth = deepest;
  return values > max_values || deepest > max_depth ? WISP_ERR_TOO_BIG : WISP_OK;
}

/* ---- a document writer ---- */

void wisp_json_writer_init(wisp_json_writer *w, size_t limit, wisp_json_escape esc) {
  memset(w, 0, sizeof(*w));
  w->limit = limit;
  w->esc = esc;
}

void wisp_json_writer_cleanup(wisp_json_writer *w) {
  wisp_buf_cleanup(&w->out);
  w->err = WISP_OK;
}

/* Keeps the first failure. */
static void keep(wisp_json_writer *w, wisp_err rc) {
  if (w->err == WISP_OK) w->err = rc;
}

void wisp_json_writer_raw(wisp_json_writer *w, const char *s, size_t len) {
  if (w->err == WISP_OK) keep(w, wisp_buf_append(&w->out, s, len, w->limit));
}

void wisp_json_writer_vprintf(wisp_json_writer *w, const char *fmt, va_list ap) {
  if (w->err == WISP_OK) keep(w, wisp_buf_vprintf(&w->out, w->limit, fmt, ap));
}

void wisp_json_writer_printf(wisp_json_writer *w, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wisp_json_writer_vprintf(w, fmt, ap);
  va_end(ap);
}

void wisp_json_writer_key(wisp_json_writer *w, const char *key) {
  if (w->err == WISP_OK) keep(w, wisp_json_put_key(&w->out, key, w->limit));
}

void wisp_json_writer_str(wisp_json_writer *w, const char *s) {
  if (w->err != WISP_OK) return;
  keep(w, s ? wisp_json_put_str(&w->out, s, strlen(s), w->esc, w->limit) : wisp_json_put_null(&w->out, w->limit));
}

void wisp_json_writer_int(wisp_json_writer *w, int64_t v) {
  if (w->err == WISP_OK) keep(w, wisp_json_put_int(&w->out, v, w->limit));
}

void wisp_json_writer_double(wisp_json_writer *w, double v) {
  if (w->err == WISP_OK) keep(w, wisp_json_put_double(&w->out, v, w->limit));
}

void wisp_json_writer_bool(wisp_json_writer *w, bool v) {
  if (w->err == WISP_OK) keep(w, wisp_json_put_bool(&w->out, v, w->limit));
}
