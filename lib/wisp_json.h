/* wisp_json: JSON text appended to a wisp_buf. The one home of JSON string
 * escaping and number formatting: log lines (lib/wisp_log), the admin
 * listener's bodies (proxy/admin/wisp_admin) and `wispctl status --json`.
 * Pure: bytes in, bytes appended, no allocation but the buffer's own.
 * And wisp_json_measure: the size of a JSON text before a parser (jansson)
 * builds it, so untrusted input is refused before it costs memory.
 *
 * Every call is all or nothing: text that would take the unread bytes of
 * |b| past |limit| is not written, the call returns WISP_ERR_TOO_BIG and
 * |b| is as it was. Keys are written as given (callers pass literals). */
#ifndef WISP_JSON_H
#define WISP_JSON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wisp_buf.h"
#include "lib/wisp_err.h"

/* How a string's special bytes are written. Both escape '"' and '\' and
 * every byte below 0x20. Bytes from 0x80 are read as UTF-8 (RFC 3629):
 * a well-formed sequence is copied as it is (a path with "é" stays
 * readable), and every byte that is not part of one is written as the
 * escape \ufffd (U+FFFD REPLACEMENT CHARACTER), as Go's encoding/json
 * does, so every string written is valid JSON and valid UTF-8, whatever
 * bytes a caller sent. Not \u00XX: that would claim the byte was a
 * Latin-1 character. Overlong forms, surrogates (U+D800-DFFF), code
 * points past U+10FFFF and sequences cut short (by the string's end too)
 * are not well-formed. One U+FFFD per maximal subpart, as the Unicode
 * Standard (3.9) and the WHATWG decoder count: a lead byte with the
 * continuation bytes that could still have made a well-formed sequence
 * is one U+FFFD ("\xe2\x82" + "A" is U+FFFD "A"), every other stray byte
 * one each ("\xc0\xaf" is two, "\xed\xa0\x80" three). */
typedef enum {
  /* Control bytes and DEL as \u00XX (lower-case hex): log lines and the
   * admin listener, whose readers are programs. */
  WISP_JSON_ESCAPE_U,
  /* \n \r \t as such, other control bytes as \u00XX, DEL as it is:
   * wispctl's --json, read by people too. */
  WISP_JSON_ESCAPE_SHORT,
} wisp_json_escape;

/* |len| bytes of |s| (NULs included) as a quoted JSON string. */
wisp_err wisp_json_put_str(wisp_buf *b, const char *s, size_t len, wisp_json_escape esc, size_t limit) WISP_MUST_CHECK;
/* "key": preceded by a comma unless |b| holds no unread bytes or its last
 * byte opens an object or a list. |key| is not escaped. */
wisp_err wisp_json_put_key(wisp_buf *b, const char *key, size_t limit) WISP_MUST_CHECK;
/* The same with |key|'s length given (the log line's keys are literals). */
wisp_err wisp_json_put_keyn(wisp_buf *b, const char *key, size_t key_len, size_t limit) WISP_MUST_CHECK;
/* Writes |v| in decimal to |out| (room for 20 bytes; no NUL); returns the
 * length. Also for header values made per request, where snprintf costs
 * hundreds of instructions. */
size_t wisp_json_fmt_u64(char *out, uint64_t v);
/* An integer in decimal. */
wisp_err wisp_json_put_int(wisp_buf *b, int64_t v, size_t limit) WISP_MUST_CHECK;
/* A number as printf's %.17g (round-trips a double); null when it is not
 * finite, as JSON has no NaN or infinity. */
wisp_err wisp_json_put_double(wisp_buf *b, double v, size_t limit) WISP_MUST_CHECK;
/* A number with exactly three decimals ("1.500"), by integer arithmetic
 * (no printf: the access log's durations). Past +-9e15, as
 * wisp_json_put_double. */
wisp_err wisp_json_put_fixed3(wisp_buf *b, double v, size_t limit) WISP_MUST_CHECK;
/* true or false. */
wisp_err wisp_json_put_bool(wisp_buf *b, bool v, size_t limit) WISP_MUST_CHECK;
/* null. */
wisp_err wisp_json_put_null(wisp_buf *b, size_t limit) WISP_MUST_CHECK;

/* ---- measuring untrusted input ------------------------------------------
 * A parser allocates a node per value (jansson: 40 to 100 bytes, more for
 * what is built from it), so a megabyte of "[0,0,0,...]" is half a million
 * nodes and hundreds of megabytes: callers that take JSON from the network
 * bound the values and the nesting before parsing. */
typedef struct {
  size_t values; /* every object, array, string (keys too), number, literal */
  size_t depth;  /* the deepest nesting of objects and arrays */
} wisp_json_shape;

/* Counts the values and nesting of the JSON text |p| (|len| bytes) into
 * |*out|, stopping with WISP_ERR_TOO_BIG as soon as there are more than
 * |max_values| values or nesting deeper than |max_depth| (|*out| then says
 * which: the count or depth that passed its limit). It does not validate:
 * a text it passes still goes to a parser, which refuses what is not JSON;
 * malformed text is counted as far as it goes and never read past |len|. */
wisp_err wisp_json_measure(const char *p, size_t len, size_t max_values, size_t max_depth,
                           wisp_json_shape *out) WISP_MUST_CHECK;

/* ---- a document writer -----------------------------------------------
 * The same pieces for a whole document (an admin body, wispctl's output):
 * the first failure is kept in |err| and every later write does nothing,
 * so a renderer checks once, at the end. Caller-allocated; set up with
 * wisp_json_writer_init, release with wisp_json_writer_cleanup. */
typedef struct {
  wisp_buf out;         /* the text so far; owned */
  size_t limit;         /* hard cap on out's unread bytes */
  wisp_json_escape esc; /* for every string */
  wisp_err err;         /* WISP_OK, or the first failure */
} wisp_json_writer;

void wisp_json_writer_init(wisp_json_writer *w, size_t limit, wisp_json_escape esc);
/* Frees the text; |w| keeps its limit and escape and starts over empty. */
void wisp_json_writer_cleanup(wisp_json_writer *w);
/* Verbatim text (punctuation, layout, a whole number...). */
void wisp_json_writer_raw(wisp_json_writer *w, const char *s, size_t len);
void wisp_json_writer_printf(wisp_json_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wisp_json_writer_vprintf(wisp_json_writer *w, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void wisp_json_writer_key(wisp_json_writer *w, const char *key);
/* A NUL-terminated string; NULL: null. */
void wisp_json_writer_str(wisp_json_writer *w, const char *s);
void wisp_json_writer_int(wisp_json_writer *w, int64_t v);
void wisp_json_writer_double(wisp_json_writer *w, double v);
void wisp_json_writer_bool(wisp_json_writer *w, bool v);

#endif
