#include "lib/wisp_slab.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define SLAB_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define SLAB_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define SLAB_CACHE_DEFAULT 0 /* ASan's quarantine sees more (wisp_slab.h) */
#else
#define SLAB_POISON(p, n) ((void)(p), (void)(n))
#define SLAB_UNPOISON(p, n) ((void)(p), (void)(n))
#define SLAB_CACHE_DEFAULT 1
#endif

static int g_cache = SLAB_CACHE_DEFAULT;

void wisp_slab_set_cache(int on) { g_cache = on; }

/* Classes: 16-byte steps up to 256 (16 classes), then four steps per
 * doubling up to WISP_SLAB_MAX (320, 384, 448, 512, 640, ... 4096). */
enum { SMALL_STEP = 16, SMALL_MAX = 256, SMALL_CLASSES = SMALL_MAX / SMALL_STEP, CLASSES = SMALL_CLASSES + 4 * 4 };
enum { CLASS_LARGE = 0xff };
/* A chunk's state, checked on free: catches double frees and pointers that
 * did not come from here in every build. */
enum { STATE_LIVE = 0x5a11ab1eu, STATE_CACHED = 0xcac4edu };

typedef struct chunk {
  union {
    struct chunk *next; /* while cached */
    size_t len;         /* while live: the size asked for */
  };
  uint32_t cls;
  uint32_t state;
} chunk;
_Static_assert(sizeof(chunk) == 16, "the header keeps payloads 16-byte aligned");

typedef struct {
  chunk *head[CLASSES];
  size_t bytes[CLASSES];
  size_t total;
} slab_lists;

static _Thread_local slab_lists g_lists;

static void *slab_oom(void) {
  fputs("{\"level\":\"fatal\",\"msg\":\"out of memory\"}\n", stderr);
  abort();
}

static void slab_corrupt(const void *p) {
  fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"wisp_slab_free: %p is not a live chunk (double free?)\"}\n", p);
  abort();
}

static unsigned class_of(size_t n) {
  if (n <= SMALL_MAX) return n == 0 ? 0 : (unsigned)((n - 1) / SMALL_STEP);
  unsigned p = (unsigned)(63 - __builtin_clzll((unsigned long long)(n - 1))); /* 2^p <= n-1 < 2^(p+1) */
  /* Four steps of 2^(p-2) each: a shift, not a division. */
  return SMALL_CLASSES + (p - 8) * 4 + (unsigned)((n - 1 - ((size_t)1 << p)) >> (p - 2));
}

static size_t class_bytes(unsigned cls) {
  if (cls < SMALL_CLASSES) return (cls + 1) * (size_t)SMALL_STEP;
  unsigned k = cls - SMALL_CLASSES, p = 8 + k / 4;
  return ((size_t)1 << p) + (k % 4 + 1) * ((size_t)1 << (p - 2));
}

size_t wisp_slab_class_size(size_t n) { return n > WISP_SLAB_MAX ? n : class_bytes(class_of(n)); }

static void *payload(chunk *c) { return c + 1; }
static chunk *header(void *p) { return (chunk *)p - 1; }

static void *large_alloc(size_t n) {
  if (n > SIZE_MAX - sizeof(chunk)) return slab_oom();
  chunk *c = malloc(sizeof(chunk) + n);
  if (!c) return slab_oom();
  c->len = n;
  c->cls = CLASS_LARGE;
  c->state = STATE_LIVE;
  return payload(c);
}

/* Under ASan, the live chunk's bytes past what was asked for are poisoned:
 * an overflow into the class's slack is reported as ASan would report one
 * past a malloc'd block. */
static void live_bytes(chunk *c, size_t size) {
  SLAB_UNPOISON(payload(c), c->len);
  SLAB_POISON((char *)payload(c) + c->len, size - c->len);
}

void *wisp_slab_alloc(size_t n) {
  if (n > WISP_SLAB_MAX) return large_alloc(n);
  unsigned cls = class_of(n);
  size_t size = class_bytes(cls);
  chunk *c = g_lists.head[cls];
  if (c) {
    g_lists.head[cls] = c->next;
    g_lists.bytes[cls] -= sizeof(chunk) + size;
    g_lists.total -= sizeof(chunk) + size;
  } else {
    c = malloc(sizeof(chunk) + size);
    if (!c) return slab_oom();
    c->cls = cls;
  }
  c->len = n;
  c->state = STATE_LIVE;
  live_bytes(c, size);
  return payload(c);
}

void *wisp_slab_calloc(size_t count, size_t n) {
  if (n && count > SIZE_MAX / n) return slab_oom();
  void *p = wisp_slab_alloc(count * n);
  memset(p, 0, count * n);
  return p;
}

void wisp_slab_free(void *p) {
  if (!p) return;
  chunk *c = header(p);
  if (c->state != STATE_LIVE) slab_corrupt(p);
  if (c->cls == CLASS_LARGE) {
    c->state = 0;
    free(c);
    return;
  }
  if (c->cls >= CLASSES) slab_corrupt(p);
  unsigned cls = c->cls;
  size_t size = class_bytes(cls), cost = sizeof(chunk) + size;
  if (!g_cache || g_lists.bytes[cls] + cost > WISP_SLAB_CLASS_KEEP || g_lists.total + cost > WISP_SLAB_KEEP) {
    c->state = 0;
    free(c);
    return;
  }
  c->state = STATE_CACHED;
  c->next = g_lists.head[cls];
  g_lists.head[cls] = c;
  g_lists.bytes[cls] += cost;
  g_lists.total += cost;
  SLAB_POISON(p, size);
}

void *wisp_slab_realloc(void *p, size_t n) {
  if (!p) return wisp_slab_alloc(n);
  chunk *c = header(p);
  if (c->state != STATE_LIVE) slab_corrupt(p);
  if (c->cls == CLASS_LARGE && n > WISP_SLAB_MAX) {
    chunk *r = realloc(c, sizeof(chunk) + n);
    if (!r) return slab_oom();
    r->len = n;
    return payload(r);
  }
  if (c->cls != CLASS_LARGE && n <= class_bytes(c->cls)) {
    c->len = n;
    live_bytes(c, class_bytes(c->cls));
    return p;
  }
  size_t old = c->len;
  void *q = wisp_slab_alloc(n);
  memcpy(q, p, old < n ? old : n);
  wisp_slab_free(p);
  return q;
}

void wisp_slab_trim(size_t keep) {
  /* Largest classes first: the fewest frees for the most bytes. */
  for (int cls = CLASSES - 1; cls >= 0 && g_lists.total > keep; cls--) {
    size_t size = class_bytes((unsigned)cls), cost = sizeof(chunk) + size;
    while (g_lists.head[cls] && g_lists.total > keep) {
      chunk *c = g_lists.head[cls];
      g_lists.head[cls] = c->next;
      g_lists.bytes[cls] -= cost;
      g_lists.total -= cost;
      SLAB_UNPOISON(payload(c), size);
      c->state = 0;
      free(c);
    }
  }
}

size_t wisp_slab_cached(void) { return g_lists.total; }
