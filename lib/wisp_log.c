#include "lib/wisp_log.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static wisp_log_level g_level = WISP_LOG_INFO;

void wisp_log_set_level(wisp_log_level level) { g_level = level; }

/* Room kept for the closing ,"truncated":true}\n. */
static const char kTruncated[] = ",\"truncated\":true";
enum { WISP_JSON_RESERVE = sizeof(kTruncated) - 1 + 2 };

/* Fields are written in place; one that does not fit is rolled back and the
 * line marked truncated, so every line stays valid JSON. This is on the
 * per-request path: no printf here. */
static inline int json_put(wisp_json *j, const char *s, size_t n) {
  if (j->len + n + WISP_JSON_RESERVE > sizeof(j->buf)) return 0;
  memcpy(j->buf + j->len, s, n);
  j->len += n;
  return 1;
}

static int json_key(wisp_json *j, const char *key) {
  return json_put(j, j->len > 1 ? ",\"" : "\"", j->len > 1 ? 2 : 1) && json_put(j, key, strlen(key)) &&
         json_put(j, "\":", 2);
}

static int needs_escape(unsigned char c) { return c < 0x20 || c == 0x7f || c == '"' || c == '\\'; }

static int json_escaped(wisp_json *j, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  if (!json_put(j, "\"", 1)) return 0;
  size_t i = 0;
  while (i < n) {
    size_t run = i;
    while (run < n && !needs_escape((unsigned char)s[run])) run++;
    if (run > i && !json_put(j, s + i, run - i)) return 0; /* copy plain runs whole */
    if (run == n) break;
    unsigned char c = (unsigned char)s[run];
    char e[6] = {'\\', (char)c, 0, 0, 0, 0};
    size_t en = 2;
    if (c < 0x20 || c == 0x7f) { /* \u00XX */
      e[1] = 'u';
      e[2] = '0';
      e[3] = '0';
      e[4] = hex[c >> 4];
      e[5] = hex[c & 15];
      en = 6;
    }
    if (!json_put(j, e, en)) return 0;
    i = run + 1;
  }
  return json_put(j, "\"", 1);
}

static void json_field_done(wisp_json *j, size_t start, int fits) {
  if (!fits) {
    j->len = start;
    j->truncated = 1;
  }
}

/* Writes |v| in decimal at the end of |out| (at most 20 digits + sign). */
static size_t fmt_int(char *out, int64_t v) {
  char tmp[24];
  size_t n = 0, o = 0;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) out[o++] = '-';
  while (n) out[o++] = tmp[--n];
  return o;
}

/* "YYYY-MM-DDTHH:MM:SS" is formatted once per second. */
static void json_time(wisp_json *j) {
  static time_t cached_sec = -1;
  static char cached[32];
  static size_t cached_len;
  struct timeval tv;
  gettimeofday(&tv, NULL);
  if (tv.tv_sec != cached_sec) {
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    cached_len = strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
    cached_sec = tv.tv_sec;
  }
  int ms = (int)(tv.tv_usec / 1000);
  char frac[6] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z', '"'};
  json_put(j, "\"time\":\"", 8);
  json_put(j, cached, cached_len);
  json_put(j, frac, sizeof(frac));
}

void wisp_json_begin(wisp_json *j, const char *type) {
  j->len = 0;
  j->truncated = 0;
  json_put(j, "{", 1);
  json_time(j);
  wisp_json_str(j, "type", type);
}

void wisp_json_strn(wisp_json *j, const char *key, const char *val, size_t len) {
  if (!val) return;
  size_t start = j->len;
  json_field_done(j, start, json_key(j, key) && json_escaped(j, val, len));
}

void wisp_json_str(wisp_json *j, const char *key, const char *val) {
  if (val) wisp_json_strn(j, key, val, strlen(val));
}

void wisp_json_int(wisp_json *j, const char *key, int64_t val) {
  char num[24];
  size_t start = j->len;
  json_field_done(j, start, json_key(j, key) && json_put(j, num, fmt_int(num, val)));
}

void wisp_json_double(wisp_json *j, const char *key, double val) {
  if (!isfinite(val) || fabs(val) >= 9e15) {
    /* Out of int64 range for the fast path: JSON has no NaN or infinity. */
    char num[32];
    int n = isfinite(val) ? snprintf(num, sizeof(num), "%.17g", val) : snprintf(num, sizeof(num), "null");
    size_t start = j->len;
    json_field_done(j, start, json_key(j, key) && json_put(j, num, (size_t)n));
    return;
  }
  /* Three decimals, by integer arithmetic. */
  int64_t milli = (int64_t)(val * 1000.0 + (val < 0 ? -0.5 : 0.5));
  uint64_t mag = milli < 0 ? (uint64_t)0 - (uint64_t)milli : (uint64_t)milli;
  char num[32];
  size_t n = 0;
  if (milli < 0) num[n++] = '-';
  n += fmt_int(num + n, (int64_t)(mag / 1000));
  num[n++] = '.';
  num[n++] = (char)('0' + mag / 100 % 10);
  num[n++] = (char)('0' + mag / 10 % 10);
  num[n++] = (char)('0' + mag % 10);
  size_t start = j->len;
  json_field_done(j, start, json_key(j, key) && json_put(j, num, n));
}

static void json_finish(wisp_json *j) {
  /* The reserve guarantees room for these. */
  if (j->truncated) {
    memcpy(j->buf + j->len, kTruncated, sizeof(kTruncated) - 1);
    j->len += sizeof(kTruncated) - 1;
  }
  j->buf[j->len++] = '}';
  j->buf[j->len++] = '\n';
}

void wisp_json_emit(wisp_json *j) {
  json_finish(j);
  fwrite(j->buf, 1, j->len, stdout);
}

void wisp_json_emit_err(wisp_json *j) {
  json_finish(j);
  fwrite(j->buf, 1, j->len, stderr);
  fflush(stderr);
}

static const char *const kLevelNames[] = {"debug", "info", "warn", "error"};

/* One diagnostic line; |suppressed| > 0 adds the count of lines a limiter
 * dropped before it. */
static void log_line(wisp_log_level level, const char *fmt, va_list ap, uint64_t suppressed) {
  char msg[1024];
  vsnprintf(msg, sizeof(msg), fmt, ap);
  wisp_json j;
  wisp_json_begin(&j, "log");
  wisp_json_str(&j, "level", kLevelNames[level]);
  wisp_json_str(&j, "msg", msg);
  if (suppressed) wisp_json_int(&j, "suppressed", (int64_t)suppressed);
  wisp_json_emit_err(&j);
}

void wisp_log(wisp_log_level level, const char *fmt, ...) {
  if (level < g_level) return;
  va_list ap;
  va_start(ap, fmt);
  log_line(level, fmt, ap, 0);
  va_end(ap);
}

/* ---- wisp_log_limit ---- */

/* Limiters holding a count not yet reported (see the header). */
static wisp_log_limit *g_pending;

static void pending_add(wisp_log_limit *l) {
  if (l->pending) return;
  l->pending = 1;
  l->next_pending = g_pending;
  g_pending = l;
}

static void pending_remove(wisp_log_limit *l) {
  if (!l->pending) return;
  for (wisp_log_limit **pp = &g_pending; *pp; pp = &(*pp)->next_pending) {
    if (*pp == l) {
      *pp = l->next_pending;
      break;
    }
  }
  l->pending = 0;
  l->next_pending = NULL;
}

void wisp_log_limit_init(wisp_log_limit *l, const char *what, uint32_t burst, double window,
                         wisp_log_stream stream) {
  memset(l, 0, sizeof(*l));
  snprintf(l->what, sizeof(l->what), "%s", what);
  l->burst = burst;
  l->window = window;
  l->stream = stream;
}

bool wisp_log_limit_pass(wisp_log_limit *l, double now, uint64_t *out_suppressed) {
  *out_suppressed = 0;
  /* A new window: first use, the old one over, or the clock went back. */
  if (l->used == 0 || now - l->start >= l->window || now < l->start) {
    l->start = now;
    l->used = 0;
  }
  if (l->used < l->burst) {
    l->used++;
    *out_suppressed = l->suppressed;
    l->suppressed = 0;
    pending_remove(l);
    return true;
  }
  l->suppressed++;
  *out_suppressed = l->suppressed;
  pending_add(l);
  return false;
}

void wisp_log_limited(wisp_log_limit *l, wisp_log_level level, const char *fmt, ...) {
  if (level < g_level) return;
  uint64_t dropped;
  if (!wisp_log_limit_pass(l, wisp_log_now(), &dropped)) return;
  va_list ap;
  va_start(ap, fmt);
  log_line(level, fmt, ap, dropped);
  va_end(ap);
}

static void emit_summary(const wisp_log_limit *l) {
  wisp_json j;
  wisp_json_begin(&j, "suppressed");
  wisp_json_str(&j, "what", l->what);
  wisp_json_int(&j, "count", (int64_t)l->suppressed);
  wisp_json_double(&j, "window_s", l->window);
  if (l->stream == WISP_LOG_TO_STDOUT) {
    wisp_json_emit(&j);
  } else {
    wisp_json_emit_err(&j);
  }
}

int wisp_log_limit_flush(double now) {
  int written = 0;
  wisp_log_limit **pp = &g_pending;
  while (*pp) {
    wisp_log_limit *l = *pp;
    if (now - l->start < l->window && now >= l->start) {
      pp = &l->next_pending; /* still in its window: the next line may carry it */
      continue;
    }
    emit_summary(l);
    written++;
    l->suppressed = 0;
    *pp = l->next_pending;
    l->pending = 0;
    l->next_pending = NULL;
  }
  return written;
}

void wisp_log_limit_cleanup(wisp_log_limit *l) { pending_remove(l); }

double wisp_log_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
