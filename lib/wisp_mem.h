/* wisp_mem: allocation. Out of memory is fatal, in this one place (as h2o's
 * h2o_mem_alloc): callers never check for NULL. */
#ifndef WISP_MEM_H
#define WISP_MEM_H

#include <stddef.h>

void *wisp_malloc(size_t n);
void *wisp_calloc(size_t count, size_t n);
void *wisp_realloc(void *p, size_t n);
/* Returns a new copy of |s| (or of its first |len| bytes), NUL-terminated. */
char *wisp_strdup(const char *s);
char *wisp_strndup(const char *s, size_t len);
/* Out of memory met elsewhere (a library's allocation that failed, e.g.
 * BoringSSL's): logs it and aborts, as the calls above do. */
void *wisp_oom(void);

#endif
