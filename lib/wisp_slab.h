/* wisp_slab: per-size-class freelists in front of malloc, for what is
 * allocated and freed once or more per request (nghttp2's streams, frames
 * and header copies, through wisp_h2conn_mem). Under load these sizes churn by the hundred per loop iteration and
 * glibc's tcache (7 chunks per size) falls through to _int_malloc/_int_free;
 * a freelist hands the same chunk back at the cost of a pointer swap.
 *
 * One set of freelists per thread (no locks; a chunk freed on another thread
 * joins that thread's lists). Sizes above WISP_SLAB_MAX go straight to
 * malloc. Every chunk carries a 16-byte header (its class), so free and
 * realloc need no size and a chunk stays 16-byte aligned, as malloc's.
 *
 * Memory stays bounded: a class keeps at most WISP_SLAB_CLASS_KEEP bytes
 * and all classes together WISP_SLAB_KEEP; past that a freed chunk goes
 * back to free(). wisp_slab_trim returns cached chunks (wisp_h2conn calls it
 * when a connection closes, so an idle proxy holds little).
 *
 * Under AddressSanitizer nothing is cached unless wisp_slab_set_cache
 * turns it on (tests/unit/slab_test does): a freelist hands a freed chunk
 * straight back out (LIFO), so a use after free would land in a live chunk
 * unseen, while ASan's own quarantine keeps freed memory poisoned long after.
 * When caching is on, a cached chunk is poisoned (use-after-poison until it
 * is handed out again). A double free or a pointer that is not a live chunk
 * aborts in every build.
 *
 * Out of memory is fatal, as in wisp_mem: callers never check for NULL. */
#ifndef WISP_SLAB_H
#define WISP_SLAB_H

#include <stddef.h>

/* Largest size served from a freelist. */
#define WISP_SLAB_MAX 4096
/* Cached bytes kept per size class, and in all classes of a thread: room
 * for the churn of a few hundred streams in flight (with 64 KiB per class,
 * half the frees of some classes went back to malloc at 100 streams). Under load this is memory glibc would
 * keep in its bins anyway. */
#define WISP_SLAB_CLASS_KEEP (512 * 1024)
#define WISP_SLAB_KEEP (1024 * 1024)
/* What wisp_h2conn leaves cached when a connection closes. */
#define WISP_SLAB_IDLE_KEEP (64 * 1024)

void *wisp_slab_alloc(size_t n);
void *wisp_slab_calloc(size_t count, size_t n);
/* As realloc: NULL |p| allocates; the contents up to the smaller size are
 * kept. A size that stays in |p|'s class returns |p|. */
void *wisp_slab_realloc(void *p, size_t n);
/* NULL is fine. */
void wisp_slab_free(void *p);

/* Whether freed chunks are cached (default: yes, no under ASan). Set it
 * before any thread allocates. */
void wisp_slab_set_cache(int on);
/* Frees this thread's cached chunks until at most |keep| bytes remain. */
void wisp_slab_trim(size_t keep);
/* Bytes (chunk sizes, headers included) cached on this thread's lists. */
size_t wisp_slab_cached(void);
/* The size a request of |n| bytes is served with (its class), or |n| past
 * WISP_SLAB_MAX: for tests. */
size_t wisp_slab_class_size(size_t n);

#endif
