#include "lib/wisp_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static wisp_log_level g_level = WISP_LOG_INFO;

void wisp_log_set_level(wisp_log_level level) { g_level = level; }

/* Room kept for the closing "}\n". */
enum { WISP_JSON_RESERVE = 2 };

/* Appends |n| bytes whole or not at all: a field that does not fit is
 * dropped and the line marked truncated, so every line stays valid JSON. */
static int json_raw(wisp_json *j, const char *s, size_t n) {
  if (j->len + n + WISP_JSON_RESERVE > sizeof(j->buf)) {
    j->truncated = 1;
    return 0;
  }
  memcpy(j->buf + j->len, s, n);
  j->len += n;
  return 1;
}

/* Writes ,"key":"escaped value" into |out| (cutting an over-long value);
 * returns its length. */
static size_t json_field(char *out, size_t cap, int first, const char *key, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t o = (size_t)snprintf(out, cap, "%s\"%s\":\"", first ? "" : ",", key);
  for (size_t i = 0; i < n && o + 8 < cap; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      out[o++] = '\\';
      out[o++] = (char)c;
    } else if (c < 0x20 || c == 0x7f) {
      o += (size_t)snprintf(out + o, cap - o, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
    } else {
      out[o++] = (char)c;
    }
  }
  out[o++] = '"';
  return o;
}

void wisp_json_begin(wisp_json *j, const char *type) {
  struct timeval tv;
  struct tm tm;
  char ts[40];
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(tv.tv_usec / 1000));
  j->len = 0;
  j->truncated = 0;
  json_raw(j, "{", 1);
  wisp_json_str(j, "time", ts);
  wisp_json_str(j, "type", type);
}

void wisp_json_strn(wisp_json *j, const char *key, const char *val, size_t len) {
  char field[WISP_JSON_MAX];
  if (!val) return;
  json_raw(j, field, json_field(field, sizeof(field), j->len <= 1, key, val, len));
}

void wisp_json_str(wisp_json *j, const char *key, const char *val) {
  if (val) wisp_json_strn(j, key, val, strlen(val));
}

void wisp_json_int(wisp_json *j, const char *key, int64_t val) {
  char field[128];
  int n = snprintf(field, sizeof(field), "%s\"%s\":%lld", j->len <= 1 ? "" : ",", key, (long long)val);
  json_raw(j, field, (size_t)n < sizeof(field) ? (size_t)n : sizeof(field) - 1);
}

void wisp_json_double(wisp_json *j, const char *key, double val) {
  char field[128];
  int n = snprintf(field, sizeof(field), "%s\"%s\":%.3f", j->len <= 1 ? "" : ",", key, val);
  json_raw(j, field, (size_t)n < sizeof(field) ? (size_t)n : sizeof(field) - 1);
}

static void json_finish(wisp_json *j) {
  /* The reserve guarantees room for these. */
  if (j->truncated) json_raw(j, ",\"truncated\":true", 17);
  j->buf[j->len++] = '}';
  j->buf[j->len++] = '\n';
}

void wisp_json_emit(wisp_json *j) {
  json_finish(j);
  fwrite(j->buf, 1, j->len, stdout);
  fflush(stdout);
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
