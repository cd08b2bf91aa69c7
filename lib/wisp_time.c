#include "lib/wisp_time.h"

#define WISP_DURATION_MAX (10LL * 365 * 86400)

static int64_t unit_seconds(char u) {
  switch (u) {
    case 's': return 1;
    case 'm': return 60;
    case 'h': return 3600;
    case 'd': return 86400;
    default: return 0;
  }
}

wisp_err wisp_duration_parse(int64_t *out_seconds, const char *s) {
  WISP_ENSURE(s && *s, WISP_ERR_PARSE);
  int64_t total = 0;
  while (*s) {
    int64_t n = 0;
    const char *start = s;
    for (; *s >= '0' && *s <= '9'; s++) {
      n = n * 10 + (*s - '0');
      WISP_ENSURE(n <= WISP_DURATION_MAX, WISP_ERR_PARSE);
    }
    WISP_ENSURE(s != start, WISP_ERR_PARSE);
    int64_t unit = 1;
    if (*s) {
      unit = unit_seconds(*s++);
      WISP_ENSURE(unit != 0, WISP_ERR_PARSE);
    } else {
      WISP_ENSURE(total == 0, WISP_ERR_PARSE); /* "1h30" is ambiguous */
    }
    WISP_ENSURE(n <= WISP_DURATION_MAX / unit, WISP_ERR_PARSE);
    total += n * unit;
    WISP_ENSURE(total <= WISP_DURATION_MAX, WISP_ERR_PARSE);
  }
  WISP_ENSURE(total > 0, WISP_ERR_PARSE);
  *out_seconds = total;
  return WISP_OK;
}
