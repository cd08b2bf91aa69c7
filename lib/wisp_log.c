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

void wisp_log(wisp_log_level level, const char *fmt, ...) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  if (level < g_level) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  wisp_json j;
  wisp_json_begin(&j, "log");
  wisp_json_str(&j, "level", names[level]);
  wisp_json_str(&j, "msg", msg);
  wisp_json_emit_err(&j);
}
