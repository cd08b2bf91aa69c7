/* wisp_log: structured logs. Access/decision records are one JSON object per
 * line on stdout; diagnostics are JSON lines on stderr. A wisp_json is a
 * caller-allocated line builder over a fixed buffer: it never allocates and
 * truncates (keeping valid JSON) rather than overflow. */
#ifndef WISP_LOG_H
#define WISP_LOG_H

#include <stddef.h>
#include <stdint.h>

#define WISP_JSON_MAX 2048

typedef struct {
  char buf[WISP_JSON_MAX];
  size_t len;
  int truncated;
} wisp_json;

/* Starts an object with "time" (RFC 3339, ms) and "type". */
void wisp_json_begin(wisp_json *j, const char *type);
void wisp_json_str(wisp_json *j, const char *key, const char *val); /* NULL val: skipped */
void wisp_json_strn(wisp_json *j, const char *key, const char *val, size_t len);
void wisp_json_int(wisp_json *j, const char *key, int64_t val);
void wisp_json_double(wisp_json *j, const char *key, double val);
/* Closes the object and writes it, with a newline, to stdout. Not flushed:
 * the caller flushes stdout when it is about to wait (the proxy does once
 * per loop iteration), so a busy proxy writes its log in large chunks. */
void wisp_json_emit(wisp_json *j);
/* As wisp_json_emit, to stderr. */
void wisp_json_emit_err(wisp_json *j);

typedef enum { WISP_LOG_DEBUG, WISP_LOG_INFO, WISP_LOG_WARN, WISP_LOG_ERROR } wisp_log_level;

void wisp_log_set_level(wisp_log_level level);
/* A diagnostic line on stderr: {"time","type":"log","level","msg"}. */
void wisp_log(wisp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define WISP_DEBUG(...) wisp_log(WISP_LOG_DEBUG, __VA_ARGS__)
#define WISP_INFO(...) wisp_log(WISP_LOG_INFO, __VA_ARGS__)
#define WISP_WARN(...) wisp_log(WISP_LOG_WARN, __VA_ARGS__)
#define WISP_ERROR(...) wisp_log(WISP_LOG_ERROR, __VA_ARGS__)

#endif
