#include "lib/wisp_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_mem.h"
#include "lib/wisp_slab.h"

static void wisp_buf_compact(wisp_buf *b) {
  if (b->rpos > 0) {
    memmove(b->data, b->data + b->rpos, b->wpos - b->rpos);
    b->wpos -= b->rpos;
    b->rpos = 0;
  }
}

/* Makes room for |len| more bytes after wpos. */
static void wisp_buf_reserve(wisp_buf *b, size_t len) {
  if (b->cap - b->wpos >= len) return;
  wisp_buf_compact(b);
  size_t need = b->wpos + len;
  if (b->cap < need) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need) cap *= 2;
    b->data = b->slab ? wisp_slab_realloc(b->data, cap) : wisp_realloc(b->data, cap);
    b->cap = cap;
  }
}

wisp_err wisp_buf_append(wisp_buf *b, const void *data, size_t len, size_t limit) {
  WISP_ENSURE(len <= limit && wisp_buf_len(b) <= limit - len, WISP_ERR_TOO_BIG);
  if (len == 0) return WISP_OK;
  wisp_buf_reserve(b, len);
  memcpy(b->data + b->wpos, data, len);
  b->wpos += len;
  return WISP_OK;
}

uint8_t *wisp_buf_extend(wisp_buf *b, size_t len, size_t limit) {
  if (len > limit || wisp_buf_len(b) > limit - len) return NULL;
  /* Nothing to write into a buffer without storage: a byte of our own, as
   * wisp_buf_rptr's (b->data + 0 would be NULL + 0, and NULL is failure). */
  static uint8_t nothing[1];
  if (!b->data && len == 0) return nothing;
  wisp_buf_reserve(b, len);
  uint8_t *at = b->data + b->wpos;
  b->wpos += len;
  return at;
}

wisp_err wisp_buf_vprintf(wisp_buf *b, size_t limit, const char *fmt, va_list ap) {
  va_list again;
  va_copy(again, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  wisp_err rc = WISP_OK;
  size_t len = n < 0 ? 0 : (size_t)n;
  if (n < 0) {
    rc = WISP_ERR_INTERNAL;
  } else if (len > limit || wisp_buf_len(b) > limit - len) {
    rc = WISP_ERR_TOO_BIG;
  } else if (len > 0) {
    wisp_buf_reserve(b, len + 1); /* vsnprintf's NUL lands past the text, unread */
    vsnprintf((char *)b->data + b->wpos, len + 1, fmt, again);
    b->wpos += len;
  }
  va_end(again);
  return rc;
}

wisp_err wisp_buf_printf(wisp_buf *b, size_t limit, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wisp_err rc = wisp_buf_vprintf(b, limit, fmt, ap);
  va_end(ap);
  return rc;
}

void wisp_buf_truncate(wisp_buf *b, size_t keep) {
  if (keep < wisp_buf_len(b)) b->wpos = b->rpos + keep;
  if (b->rpos == b->wpos) b->rpos = b->wpos = 0;
}

void wisp_buf_consume(wisp_buf *b, size_t n) {
  if (n > wisp_buf_len(b)) n = wisp_buf_len(b);
  b->rpos += n;
  /* Drained: rewind but keep the storage, which a busy connection is about
   * to need again (freeing it churned the heap on every frame). */
  if (b->rpos == b->wpos) b->rpos = b->wpos = 0;
}

size_t wisp_buf_read(wisp_buf *b, void *out, size_t max) {
  size_t n = wisp_buf_len(b);
  if (n > max) n = max;
  if (n) memcpy(out, wisp_buf_rptr(b), n);
  wisp_buf_consume(b, n);
  return n;
}

void wisp_buf_cleanup(wisp_buf *b) {
  bool slab = b->slab;
  if (slab) {
    wisp_slab_free(b->data);
  } else {
    free(b->data);
  }
  memset(b, 0, sizeof(*b));
  b->slab = slab;
}
