/* Fuzz target for proxy/dataplane/wisp_trace: the trace ID a request's log line
 * carries, read from traceparent, b3 and x-b3-traceid, headers any caller
 * sets. The input is up to three NUL-separated strings, given as those
 * three headers (a missing one is NULL). A trace ID found is 16 or 32
 * lowercase hex digits, not all zero, and is exactly where its header puts
 * it (after "VV-" in traceparent, the start of b3, the whole x-b3-traceid);
 * none found leaves the output alone.
 *
 * Replayed over corpus/trace/ by //tests/fuzz:trace_fuzz_replay in the
 * normal suite; tests/fuzz/run_fuzzers.sh fuzzes it for real. */
#include <stdbool.h>
#include <string.h>

#include "proxy/dataplane/wisp_trace.h"
#include "tests/fuzz/fuzz.h"

#define MAX_INPUT 4096

static bool lower_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!strchr("0123456789abcdef", s[i]) || s[i] == 0) return false;
  }
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > MAX_INPUT) return 0;
  char buf[MAX_INPUT + 1];
  memcpy(buf, data, size);
  buf[size] = 0;
  const char *part[3] = {NULL, NULL, NULL};
  size_t at = 0;
  for (int i = 0; i < 3 && at <= size; i++) {
    part[i] = buf + at;
    at += strlen(buf + at) + 1;
  }
  char out[WISP_TRACE_ID_MAX + 1];
  memset(out, 'u', sizeof(out));
  if (!wisp_trace_id(part[0], part[1], part[2], out)) {
    for (size_t i = 0; i < sizeof(out); i++) CHECK(out[i] == 'u');
    return 0;
  }
  size_t n = strlen(out);
  CHECK(n == 16 || n == 32);
  CHECK(lower_hex(out, n));
  CHECK(strspn(out, "0") != n);
  bool placed = (part[0] && strlen(part[0]) >= 3 + n && !memcmp(part[0] + 3, out, n) && part[0][3 + n] == '-') ||
                (part[1] && !strncmp(part[1], out, n) && part[1][n] == '-') || (part[2] && !strcmp(part[2], out));
  CHECK(placed);
  char again[WISP_TRACE_ID_MAX + 1];
  CHECK(wisp_trace_id(part[0], part[1], part[2], again) && !strcmp(again, out)); /* deterministic */
  return 0;
}
