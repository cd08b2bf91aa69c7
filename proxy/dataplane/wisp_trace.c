#include "proxy/dataplane/wisp_trace.h"

#include <string.h>

#define W3C_TRACE_LEN 32
#define W3C_SPAN_LEN 16
#define B3_SHORT_LEN 16

/* |n| lowercase hex digits at |s| (the W3C and B3 specs want lowercase). */
static bool hex_run(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

static bool all_zero(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '0') return false;
  }
  return true;
}

/* A trace ID of 16 or 32 hex digits at |s|, ending where |end_ok| allows;
 * its length, or 0. */
static size_t trace_run(const char *s, bool (*end_ok)(char)) {
  static const size_t kLens[] = {W3C_TRACE_LEN, B3_SHORT_LEN};
  for (size_t i = 0; i < sizeof(kLens) / sizeof(kLens[0]); i++) {
    size_t n = kLens[i];
    if (strnlen(s, n) == n && hex_run(s, n) && end_ok(s[n]) && !all_zero(s, n)) return n;
  }
  return 0;
}

static bool end_nul(char c) { return c == '\0'; }
static bool end_dash(char c) { return c == '-'; }

static bool copy_id(const char *s, size_t n, char out[WISP_TRACE_ID_MAX + 1]) {
  memcpy(out, s, n);
  out[n] = '\0';
  return true;
}

/* version "-" trace-id "-" parent-id "-" flags; a later version may append
 * "-..." fields (W3C Trace Context, 3.2.4). */
static bool w3c(const char *v, char out[WISP_TRACE_ID_MAX + 1]) {
  static const size_t kMin = 2 + 1 + W3C_TRACE_LEN + 1 + W3C_SPAN_LEN + 1 + 2;
  if (strnlen(v, kMin) < kMin || !hex_run(v, 2) || !strncmp(v, "ff", 2) || v[2] != '-') return false;
  const char *trace = v + 3, *span = trace + W3C_TRACE_LEN + 1, *flags = span + W3C_SPAN_LEN + 1;
  if (!hex_run(trace, W3C_TRACE_LEN) || trace[W3C_TRACE_LEN] != '-' || all_zero(trace, W3C_TRACE_LEN)) return false;
  if (!hex_run(span, W3C_SPAN_LEN) || span[W3C_SPAN_LEN] != '-' || all_zero(span, W3C_SPAN_LEN)) return false;
  if (!hex_run(flags, 2)) return false;
  bool v00 = !strncmp(v, "00", 2);
  if (flags[2] != '\0' && (v00 || flags[2] != '-')) return false; /* version 00 has exactly 4 fields */
  return copy_id(trace, W3C_TRACE_LEN, out);
}

bool wisp_trace_id(const char *traceparent, const char *b3, const char *x_b3_traceid, char out[WISP_TRACE_ID_MAX + 1]) {
  if (traceparent && w3c(traceparent, out)) return true;
  size_t n;
  if (b3 && (n = trace_run(b3, end_dash)) && hex_run(b3 + n + 1, W3C_SPAN_LEN) &&
      (b3[n + 1 + W3C_SPAN_LEN] == '\0' || b3[n + 1 + W3C_SPAN_LEN] == '-'))
    return copy_id(b3, n, out);
  if (x_b3_traceid && (n = trace_run(x_b3_traceid, end_nul))) return copy_id(x_b3_traceid, n, out);
  return false;
}
