#include "lib/wisp_mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *wisp_oom(void) {
  fputs("{\"level\":\"fatal\",\"msg\":\"out of memory\"}\n", stderr);
  abort();
}

void *wisp_malloc(size_t n) {
  void *p = malloc(n ? n : 1);
  return p ? p : wisp_oom();
}

void *wisp_calloc(size_t count, size_t n) {
  void *p = calloc(count ? count : 1, n ? n : 1);
  return p ? p : wisp_oom();
}

void *wisp_realloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  return q ? q : wisp_oom();
}

char *wisp_strndup(const char *s, size_t len) {
  char *d = wisp_malloc(len + 1);
  if (len) memcpy(d, s, len); /* s may be NULL when len is 0 */
  d[len] = '\0';
  return d;
}

char *wisp_strdup(const char *s) { return wisp_strndup(s, strlen(s)); }
