/* wisp_log: structured logs. Access/decision records are one JSON object per
 * line on stdout; diagnostics are JSON lines on stderr. A wisp_json is a
 * caller-allocated line builder over a fixed buffer: it never allocates and
 * truncates (keeping valid JSON) rather than overflow. */
#ifndef WISP_LOG_H
#define WISP_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define WISP_JSON_MAX 2048

typedef struct {
  char buf[WISP_JSON_MAX];
  size_t len;
  int truncated;
} wisp_json;

/* Starts an object with "time" (RFC 3339, ms) and "type". */
void wisp_json_begin(wisp_json *j, const char *type);
/* A field; |key| (|key_len| bytes) is not escaped. Callers use the
 * wrappers below, whose keys are literals: inlined, their length is a
 * constant (the request log writes a line per request). */
void wisp_json_field_strn(wisp_json *j, const char *key, size_t key_len, const char *val, size_t len);
/* A string field whose value the caller knows needs no escaping (no '"',
 * '\\', control byte, DEL or byte from 0x80: checked by assert), copied as it is: the
 * request log's enumerations ("outbound", "allow", "h2"), a line per
 * request. The same bytes as wisp_json_field_strn. */
void wisp_json_field_plain(wisp_json *j, const char *key, size_t key_len, const char *val, size_t len);
void wisp_json_field_int(wisp_json *j, const char *key, size_t key_len, int64_t val);
void wisp_json_field_double(wisp_json *j, const char *key, size_t key_len, double val);

/* NULL val: skipped. */
static inline void wisp_json_strn(wisp_json *j, const char *key, const char *val, size_t len) {
  if (val) wisp_json_field_strn(j, key, strlen(key), val, len);
}
static inline void wisp_json_str(wisp_json *j, const char *key, const char *val) {
  if (val) wisp_json_field_strn(j, key, strlen(key), val, strlen(val));
}
/* |val| a literal (or one of a few): its length is a constant too. */
static inline void wisp_json_plain(wisp_json *j, const char *key, const char *val) {
  wisp_json_field_plain(j, key, strlen(key), val, strlen(val));
}
static inline void wisp_json_int(wisp_json *j, const char *key, int64_t val) {
  wisp_json_field_int(j, key, strlen(key), val);
}
static inline void wisp_json_double(wisp_json *j, const char *key, double val) {
  wisp_json_field_double(j, key, strlen(key), val);
}
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

/* ---- wisp_log_limit: bounding repeated lines ------------------------------
 * Use it for any line a peer (or a broken environment) can make us repeat:
 * an accept error, a refused connection, a reset stream. One limiter per
 * kind of line lets at most |burst| lines through per |window| seconds and
 * counts the rest instead of writing them. What was dropped is reported
 * once, in one of two ways:
 *   - as "suppressed":N on the next line that passes (the caller adds the
 *     field when wisp_log_limit_pass hands it a nonzero count), or,
 *   - when the flood has stopped, as one summary line from
 *     wisp_log_limit_flush, on the limiter's stream:
 *       {"time":..,"type":"suppressed","what":"<what>","count":N}
 * A diagnostic line on stderr (JSON "log" line), limited:
 *     static _Thread_local wisp_log_limit lim = WISP_LOG_LIMIT_INIT("accept failed", 5, 1.0, WISP_LOG_TO_STDERR);
 *     wisp_log_limited(&lim, WISP_LOG_WARN, "accept on %s failed: %s", name, why);
 *   or, with a limiter per call site: WISP_LOG_LIMITED(WISP_LOG_WARN, 5, 1.0, "fmt", ...).
 * A JSON record on stdout (access/conn lines), limited:
 *     static _Thread_local wisp_log_limit lim = WISP_LOG_LIMIT_INIT("stream reset", 20, 1.0, WISP_LOG_TO_STDOUT);
 *     uint64_t dropped;
 *     if (wisp_log_limit_pass(&lim, wisp_log_now(), &dropped)) {
 *       wisp_json j; wisp_json_begin(&j, "access"); ...
 *       if (dropped) wisp_json_int(&j, "suppressed", (int64_t)dropped);
 *       wisp_json_emit(&j);
 *     }
 * A process with limiters calls wisp_log_limit_flush(wisp_log_now()) now and
 * then (wisp-proxy: every second), so the summary of a flood that stopped
 * is not held back until the next line of its kind.
 * A limiter belongs to one thread: a function-level one is
 * `static _Thread_local` (wisp-proxy's --workers run one loop per thread;
 * a limiter two threads share ends up on both threads' lists, and a flush
 * then loops forever), so its bound holds per thread. A limiter that holds
 * an unreported count sits on its thread's list until the count is
 * reported: one freed before the process ends must be given to
 * wisp_log_limit_cleanup first (static and thread-lifetime ones need not). */
typedef enum { WISP_LOG_TO_STDERR, WISP_LOG_TO_STDOUT } wisp_log_stream;

#define WISP_LOG_LIMIT_WHAT_MAX 96

typedef struct wisp_log_limit {
  char what[WISP_LOG_LIMIT_WHAT_MAX]; /* names the lines in the summary */
  uint32_t burst;                     /* lines let through per window */
  double window;                      /* seconds */
  wisp_log_stream stream;             /* where the summary goes */
  /* state (zero at start) */
  double start;        /* when the current window began */
  uint32_t used;       /* lines let through in it */
  uint64_t suppressed; /* dropped, not reported yet */
  struct wisp_log_limit *next_pending;
  int pending;
} wisp_log_limit;

#define WISP_LOG_LIMIT_INIT(what_, burst_, window_, stream_) \
  { .what = (what_), .burst = (burst_), .window = (window_), .stream = (stream_) }

/* The same at run time (a limiter inside a struct); |what| is copied, cut
 * to fit. */
void wisp_log_limit_init(wisp_log_limit *l, const char *what, uint32_t burst, double window, wisp_log_stream stream);
/* Decides one line at |now| (seconds, wisp_log_now's clock): true if it
 * may be written. On true |*out_suppressed| is the number of lines dropped
 * since the last report (mostly 0), which the caller puts into the line it
 * writes ("suppressed":N): that reports them. On false it is the running
 * count of dropped lines. No I/O. */
bool wisp_log_limit_pass(wisp_log_limit *l, double now, uint64_t *out_suppressed);
/* wisp_log, through |l|: a line that passes carries "suppressed":N when
 * lines were dropped before it. */
void wisp_log_limited(wisp_log_limit *l, wisp_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Writes the summary line of every limiter whose window has ended at |now|
 * with lines dropped and not yet reported; returns how many it wrote.
 * INFINITY (at exit) writes them all. */
int wisp_log_limit_flush(double now);
/* Takes |l| off the pending list (its unreported count is lost). */
void wisp_log_limit_cleanup(wisp_log_limit *l);
/* Monotonic seconds (CLOCK_MONOTONIC). */
double wisp_log_now(void);

#define WISP_LOG_LIMIT_STR2_(x) #x
#define WISP_LOG_LIMIT_STR_(x) WISP_LOG_LIMIT_STR2_(x)
/* wisp_log_limited with a limiter of its own per call site and thread
 * (named by file:line in summaries): a limiter is on the pending list of
 * the thread that uses it (--workers run a loop each). */
#define WISP_LOG_LIMITED(level, burst, window, ...)                                                         \
  do {                                                                                                      \
    static _Thread_local wisp_log_limit wisp_log_site_ =                                                    \
        WISP_LOG_LIMIT_INIT(__FILE__ ":" WISP_LOG_LIMIT_STR_(__LINE__), burst, window, WISP_LOG_TO_STDERR); \
    wisp_log_limited(&wisp_log_site_, level, __VA_ARGS__);                                                  \
  } while (0)

#endif
