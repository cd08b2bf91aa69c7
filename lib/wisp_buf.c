#include "lib/wisp_buf.h"

#include <stdlib.h>
#include <string.h>

#include "lib/wisp_mem.h"

static void wisp_buf_compact(wisp_buf *b) {
  if (b->rpos > 0) {
    memmove(b->data, b->data + b->rpos, b->wpos - b->rpos);
    b->wpos -= b->rpos;
    b->rpos = 0;
  }
}

wisp_err wisp_buf_append(wisp_buf *b, const void *data, size_t len, size_t limit) {
  WISP_ENSURE(len <= limit && wisp_buf_len(b) <= limit - len, WISP_ERR_TOO_BIG);
  if (len == 0) return WISP_OK;
  if (b->cap - b->wpos < len) {
    wisp_buf_compact(b);
    size_t need = b->wpos + len;
    if (b->cap < need) {
      size_t cap = b->cap ? b->cap : 4096;
      while (cap < need) cap *= 2;
      b->data = wisp_realloc(b->data, cap);
      b->cap = cap;
    }
  }
  memcpy(b->data + b->wpos, data, len);
  b->wpos += len;
  return WISP_OK;
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
  free(b->data);
  memset(b, 0, sizeof(*b));
}
