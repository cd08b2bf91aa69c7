#include "lib/wisp_time.h"

#include <math.h>
#include <string.h>

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
    if (!*p && parts == 0) { /* a bare number: seconds */
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
