#include "lib/wisp_time.h"

#include <math.h>
#include <string.h>
#include <time.h>

#define TEN_YEARS (10.0 * 366 * 86400)

wisp_err wisp_duration_parse_seconds(double *out_seconds, const char *s) {
  static const struct {
    const char *unit;
    double seconds;
  } units[] = {{"ms", 0.001}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
  if (!s || !*s) return WISP_ERR_PARSE;
  double total = 0;
  const char *p = s;
  for (int parts = 0; *p; parts++) {
    if (parts >= 8 || !(*p >= '0' && *p <= '9')) return WISP_ERR_PARSE;
    /* DIGITS[.DIGITS]: no signs, exponents or hex, unlike strtod. */
    double v = 0, scale = 1;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 12; p++, digits++) v = v * 10 + (*p - '0');
    if (*p == '.') {
      p++;
      for (; *p >= '0' && *p <= '9' && digits < 12; p++, digits++) v += (*p - '0') * (scale /= 10);
      if (p[-1] == '.') return WISP_ERR_PARSE;
    }
    if (*p >= '0' && *p <= '9') return WISP_ERR_PARSE; /* too many digits */
    if (!*p && parts == 0) {                           /* a bare number: seconds */
      total = v;
      break;
    }
    size_t best = 0;
    double mult = 0;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
      size_t n = strlen(units[i].unit);
      if (n > best && strncmp(p, units[i].unit, n) == 0) {
        best = n;
        mult = units[i].seconds;
      }
    }
    if (!best) return WISP_ERR_PARSE;
    p += best;
    total += v * mult;
  }
  if (!(total > 0) || total > TEN_YEARS) return WISP_ERR_PARSE;
  *out_seconds = total;
  return WISP_OK;
}

wisp_err wisp_duration_parse(int64_t *out_seconds, const char *s) {
  double d;
  WISP_GUARD(wisp_duration_parse_seconds(&d, s));
  *out_seconds = (int64_t)ceil(d); /* "500ms" is still a positive lifetime */
  return WISP_OK;
}

/* ---- the monotonic clock ---- */

double wisp_time_monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void wisp_time_cond_init(pthread_cond_t *cv) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(cv, &attr);
  pthread_condattr_destroy(&attr);
}

int wisp_time_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu, double seconds) {
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  if (!(seconds > 0)) seconds = 0;
  double whole = floor(seconds);
  until.tv_sec += (time_t)whole;
  until.tv_nsec += (long)((seconds - whole) * 1e9);
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  return pthread_cond_timedwait(cv, mu, &until);
}
