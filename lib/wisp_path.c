#include "lib/wisp_path.h"

#include <stdbool.h>
#include <string.h>

/* Two passes: check() finds every reason to refuse without writing, so
 * write() cannot fail and |out| is touched only on success. */

static int hex_val(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* RFC 3986 2.3. */
static bool is_unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

/* The reserved characters RFC 3986 3.3 lets a segment hold raw (sub-delims,
 * ':' and '@'), which apps treat the same raw or encoded; all but ';',
 * which apps take as the start of parameters and which is refused. */
static bool is_segment_delim(unsigned char c) { return c != '\0' && strchr("!$&'()*+,=:@", c) != NULL; }

/* Whether the normal form holds |c| raw (and so decodes %XX of it). */
static bool decodes(unsigned char c) { return is_unreserved(c) || is_segment_delim(c); }

static bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

static bool is_hex(int c) { return c >= 0 && hex_val((char)c) >= 0; }

/* The character at |p| (|left| bytes) as the normal form has it: a raw
 * byte, or the value of an escape it decodes; -1 for anything else. Sets
 * |*width| to the bytes it spans. */
static int decoded_at(const char *p, size_t left, size_t *width) {
  *width = 1;
  if (left == 0) return -1;
  if (p[0] != '%') return (unsigned char)p[0];
  if (left < 3 || hex_val(p[1]) < 0 || hex_val(p[2]) < 0) return -1;
  *width = 3;
  int v = hex_val(p[1]) * 16 + hex_val(p[2]);
  return decodes((unsigned char)v) ? v : -1;
}

/* Whether the %25 at |p| (|left| bytes from its '%') is followed by two hex
 * digits, raw or encoded: an escape encoded twice (%252e, %25%32%65). */
static bool double_encoded(const char *p, size_t left) {
  size_t w1 = 0, w2 = 0;
  if (!is_hex(decoded_at(p + 3, left - 3, &w1))) return false;
  return is_hex(decoded_at(p + 3 + w1, left - 3 - w1, &w2));
}

/* Why the escape at |p| (|left| bytes from its '%') is refused, or NULL. */
static const char *check_escape(const char *p, size_t left) {
  if (left < 3) return "truncated percent-escape in path (a % needs two hex digits)";
  int hi = hex_val(p[1]), lo = hex_val(p[2]);
  if (hi < 0 || lo < 0) return "bad percent-escape in path (a % needs two hex digits)";
  int v = hi * 16 + lo;
  if (v == '/') return "encoded '/' (%2F) in path: the app may or may not take it as a separator";
  if (v == '\\') return "encoded '\\' (%5C) in path: the app may or may not take it as a separator";
  if (v == ';') return "encoded ';' (%3B) in path: the app may take it as the start of ;parameters";
  if (is_control((unsigned char)v)) return "encoded control character (%00-%1F, %7F) in path";
  if (v == '%' && double_encoded(p, left))
    return "double-encoded percent-escape in path (%25 and two hex digits, as in %252e)";
  return NULL;
}

static const char *check_path_char(unsigned char c) {
  if (is_control(c)) return "control character in path";
  if (c >= 0x80) return "non-ASCII byte in path (a client must percent-encode it)";
  if (c == '\\') return "backslash in path";
  if (c == '#') return "'#' in path (a client never sends a fragment)";
  if (c == ';')
    return "';' in path (servlet containers and Spring cut ;parameters out: /admin;x/secret is /admin/secret "
           "to them)";
  if (c != '/' && !decodes(c)) return "character not allowed in a path by RFC 3986 (a client must percent-encode it)";
  return NULL;
}

/* Returns why |in| is refused, or NULL. |path_len|: the bytes before '?'. */
static const char *check(const char *in, size_t in_len, size_t path_len) {
  if (in_len == 0) return "empty path";
  if (in[0] != '/') return "path does not start with '/'";
  for (size_t i = 0; i < path_len; i++) {
    const char *why = in[i] == '%' ? check_escape(in + i, path_len - i) : check_path_char((unsigned char)in[i]);
    if (why) return why;
    if (in[i] == '%') i += 2;
  }
  for (size_t i = path_len; i < in_len; i++) {
    if (is_control((unsigned char)in[i])) return "control character in query";
  }
  return NULL;
}

/* Appends the segment at in[*i] (up to the next '/' or |end|) to out[*o],
 * decoding the escapes of characters it holds raw, uppercasing the others. */
static void write_segment(char *out, size_t *o, const char *in, size_t *i, size_t end) {
  static const char kHex[] = "0123456789ABCDEF";
  while (*i < end && in[*i] != '/') {
    if (in[*i] != '%') {
      out[(*o)++] = in[(*i)++];
      continue;
    }
    int v = hex_val(in[*i + 1]) * 16 + hex_val(in[*i + 2]);
    *i += 3;
    if (decodes((unsigned char)v)) {
      out[(*o)++] = (char)v;
    } else {
      out[(*o)++] = '%';
      out[(*o)++] = kHex[v >> 4];
      out[(*o)++] = kHex[v & 15];
    }
  }
}

/* Writes the normal form of a checked path part; returns its length. The
 * output always ends in '/' where a segment starts, so dropping a segment
 * is moving |o| back. */
static size_t write_path(char *out, const char *in, size_t path_len) {
  size_t o = 0, i = 1;
  out[o++] = '/';
  while (i < path_len) {
    size_t seg = o;
    write_segment(out, &o, in, &i, path_len);
    size_t n = o - seg;
    bool more = i < path_len; /* in[i] is the '/' after the segment */
    if (more) i++;
    if (n == 1 && out[seg] == '.') {
      o = seg;
    } else if (n == 2 && out[seg] == '.' && out[seg + 1] == '.') {
      o = seg - 1; /* the '/' before ".." */
      if (o == 0) {
        o = 1; /* ".." above the root stays at the root */
      } else {
        while (out[o - 1] != '/') o--;
      }
    } else if (n > 0 && more) {
      out[o++] = '/'; /* an empty segment (a "//") writes nothing: merged */
    }
  }
  return o;
}

wisp_err wisp_path_normalize(char *out, size_t out_cap, size_t *out_len, const char *in, size_t in_len,
                             const char **out_reason) {
  if (out_cap <= in_len) {
    if (out_reason) *out_reason = "path longer than the buffer";
    return WISP_ERR_TOO_BIG;
  }
  if (in_len == 1 && in[0] == '*') { /* OPTIONS * (RFC 9110 7.1) */
    out[0] = '*';
    out[1] = '\0';
    *out_len = 1;
    return WISP_OK;
  }
  const char *q = in_len ? memchr(in, '?', in_len) : NULL;
  size_t path_len = q ? (size_t)(q - in) : in_len;
  const char *why = check(in, in_len, path_len);
  if (why) {
    if (out_reason) *out_reason = why;
    return WISP_ERR_PROTO;
  }
  size_t o = write_path(out, in, path_len);
  memcpy(out + o, in + path_len, in_len - path_len);
  o += in_len - path_len;
  out[o] = '\0';
  *out_len = o;
  return WISP_OK;
}
