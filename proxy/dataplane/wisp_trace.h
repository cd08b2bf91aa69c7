/* wisp_trace: the trace ID of a request, from the headers tracers send, for
 * the request log line (so logs join traces in any backend). wisp passes
 * every trace header through unchanged; it only reads them. A pure parser:
 * strings in, result out, no I/O, no state. */
#ifndef WISP_TRACE_H
#define WISP_TRACE_H

#include <stdbool.h>

/* A trace ID as lowercase hex: 32 digits (W3C, B3 128-bit) or 16 (B3 64-bit). */
#define WISP_TRACE_ID_MAX 32

/* Writes the request's trace ID (NUL-terminated, at most WISP_TRACE_ID_MAX
 * hex digits) to |out| and returns true, from the first of these that is
 * well-formed: W3C |traceparent| ("00-<32 hex>-<16 hex>-<2 hex>", version
 * not ff, IDs not all zero), B3 single header |b3| ("<16|32 hex>-<16 hex>
 * [-...]"), B3 |x_b3_traceid| (16 or 32 hex). Each may be NULL. Returns
 * false, |out| untouched, when none is. */
bool wisp_trace_id(const char *traceparent, const char *b3, const char *x_b3_traceid, char out[WISP_TRACE_ID_MAX + 1]);

#endif
