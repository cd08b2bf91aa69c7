#include "lib/wisp_log.h"

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "lib/wisp_buf.h"
#include "lib/wisp_json.h"

static wisp_log_level g_level = WISP_LOG_INFO;

void wisp_log_set_level(wisp_log_level level) { g_level = level; }

/* Room kept for the closing ,"truncated":true}\n. */
static const char kTruncated[] = ",\"truncated\":true";
enum { WISP_JSON_RESERVE = sizeof(kTruncated) - 1 + 2, LINE_LIMIT = WISP_JSON_MAX - WISP_JSON_RESERVE };

/* The line as a wisp_buf for lib/wisp_json, over the line's own array:
 * nothing is read from it (rpos 0) and LINE_LIMIT < cap, so no append
 * ever grows (reallocates) it. */
static wisp_buf line_buf(wisp_json *j) {
  return (wisp_buf){.data = (uint8_t *)j->buf, .cap = sizeof(j->buf), .wpos = j->len};
}

/* Fields are written in place; one that does not fit is dropped whole
 * (lib/wisp_json writes all or nothing) and the line marked truncated, so
 * every line stays valid JSON. */
static void field_done(wisp_json *j, const wisp_buf *b, wisp_err rc) {
  if (rc == WISP_OK) {
    j->len = b->wpos;
  } else {
    j->truncated = 1;
  }
}

/* "YYYY-MM-DDTHH:MM:SS" is formatted once per second (per thread: the
 * agent's helper threads log too). */
static void json_time(wisp_json *j) {
  static _Thread_local time_t cached_sec = -1;
  static _Thread_local char cached[32];
  static _Thread_local size_t cached_len;
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
  /* At the start of an empty line: always fits. */
  memcpy(j->buf + j->len, "\"time\":\"", 8);
  memcpy(j->buf + j->len + 8, cached, cached_len);
  memcpy(j->buf + j->len + 8 + cached_len, frac, sizeof(frac));
  j->len += 8 + cached_len + sizeof(frac);
}

void wisp_json_begin(wisp_json *j, const char *type) {
  j->buf[0] = '{';
  j->len = 1;
  j->truncated = 0;
  json_time(j);
  wisp_json_str(j, "type", type);
}

/* The key of a field whose value needs at most |worst| bytes, written
 * straight into the line when both fit (so the value cannot fail): a
 * request log line has ~20 fields, and wisp_json_put_keyn's three bounded
 * appends were most of a field's cost. The same bytes as put_keyn. */
static inline bool key_fits(wisp_json *j, const char *key, size_t key_len, size_t worst) {
  size_t room = LINE_LIMIT - j->len; /* the line never passes LINE_LIMIT */
  if (key_len + 4 > room || worst > room - key_len - 4) return false;
  char *o = j->buf + j->len;
  char last = j->buf[j->len - 1]; /* begin wrote '{' */
  if (last != '{' && last != '[') *o++ = ',';
  *o++ = '"';
  memcpy(o, key, key_len);
  o += key_len;
  *o++ = '"';
  *o++ = ':';
  j->len = (size_t)(o - j->buf);
  return true;
}

enum { INT_MAX_CHARS = 20 }; /* INT64_MIN */

void wisp_json_field_strn(wisp_json *j, const char *key, size_t key_len, const char *val, size_t len) {
  if (!val) return;
  size_t mark = j->len;
  if (len < LINE_LIMIT / 6 && key_fits(j, key, key_len, 6 * len + 2)) {
    wisp_buf b = line_buf(j);
    if (wisp_json_put_str(&b, val, len, WISP_JSON_ESCAPE_U, LINE_LIMIT) == WISP_OK) {
      j->len = b.wpos;
      return;
    }
    j->len = mark; /* not reached: the worst case fitted */
  }
  wisp_buf b = line_buf(j);
  wisp_err rc = wisp_json_put_keyn(&b, key, key_len, LINE_LIMIT);
  if (rc == WISP_OK) rc = wisp_json_put_str(&b, val, len, WISP_JSON_ESCAPE_U, LINE_LIMIT);
  field_done(j, &b, rc);
}

#ifndef NDEBUG
/* Whether |val| needs no escaping as a log line writes it
 * (WISP_JSON_ESCAPE_U) and is ASCII (nothing to check as UTF-8): for
 * wisp_json_field_plain's assert. */
static bool plain_bytes(const char *val, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)val[i];
    if (c < 0x20 || c == '"' || c == '\\' || c >= 0x7f) return false;
  }
  return true;
}
#endif

void wisp_json_field_plain(wisp_json *j, const char *key, size_t key_len, const char *val, size_t len) {
  assert(plain_bytes(val, len));
  if (len >= LINE_LIMIT || !key_fits(j, key, key_len, len + 2)) {
    wisp_json_field_strn(j, key, key_len, val, len); /* does not fit: dropped, marked truncated */
    return;
  }
  char *o = j->buf + j->len;
  *o++ = '"';
  memcpy(o, val, len);
  o += len;
  *o++ = '"';
  j->len = (size_t)(o - j->buf);
}

void wisp_json_field_int(wisp_json *j, const char *key, size_t key_len, int64_t val) {
  if (key_fits(j, key, key_len, INT_MAX_CHARS)) {
    /* Straight into the line, as wisp_json_put_int writes it. */
    char *o = j->buf + j->len;
    uint64_t mag = (uint64_t)val;
    if (val < 0) {
      *o++ = '-';
      mag = (uint64_t)0 - mag;
    }
    o += wisp_json_fmt_u64(o, mag);
    j->len = (size_t)(o - j->buf);
    return;
  }
  wisp_buf b = line_buf(j);
  wisp_err rc = wisp_json_put_keyn(&b, key, key_len, LINE_LIMIT);
  if (rc == WISP_OK) rc = wisp_json_put_int(&b, val, LINE_LIMIT);
  field_done(j, &b, rc);
}

void wisp_json_field_double(wisp_json *j, const char *key, size_t key_len, double val) {
  wisp_buf b = line_buf(j);
  wisp_err rc = wisp_json_put_keyn(&b, key, key_len, LINE_LIMIT);
  if (rc == WISP_OK) rc = wisp_json_put_fixed3(&b, val, LINE_LIMIT);
  field_done(j, &b, rc);
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

/* Limiters holding a count not yet reported (see the header), per thread:
 * a limiter belongs to the loop (thread) that uses it, and that loop's
 * timer flushes them. */
static _Thread_local wisp_log_limit *g_pending;

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

void wisp_log_limit_init(wisp_log_limit *l, const char *what, uint32_t burst, double window, wisp_log_stream stream) {
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
