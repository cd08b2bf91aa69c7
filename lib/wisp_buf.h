/* wisp_buf: one byte buffer with read and write cursors (as s2n's stuffer /
 * nghttp2_buf). A zeroed wisp_buf is valid and empty; storage is allocated
 * on first write and released by wisp_buf_cleanup. Every buffer has a hard
 * capacity |limit| chosen by us, never by a peer. Storage comes from malloc,
 * or from lib/wisp_slab's freelists for a buffer marked |slab| (one that
 * lives for a request: a stream's body). */
#ifndef WISP_BUF_H
#define WISP_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wisp_err.h"

typedef struct {
  uint8_t *data;
  size_t cap;  /* allocated bytes */
  size_t rpos; /* next byte to read */
  size_t wpos; /* next byte to write */
  /* Storage from wisp_slab, not malloc: set while |data| is NULL (before
   * the first write, or after wisp_buf_cleanup, which keeps it). */
  bool slab;
} wisp_buf;

/* Bytes written and not yet read. */
static inline size_t wisp_buf_len(const wisp_buf *b) { return b->wpos - b->rpos; }
/* Never NULL: a zeroed buffer points at a static empty byte, so that
 * rptr + 0 and memcpy(dst, rptr, 0) are defined (NULL + 0 is not in C). */
static inline const uint8_t *wisp_buf_rptr(const wisp_buf *b) {
  static const uint8_t kEmpty[1];
  return b->data ? b->data + b->rpos : kEmpty;
}

/* Appends |len| bytes; fails with WISP_ERR_TOO_BIG (buffer unchanged) if the
 * unread bytes would exceed |limit|. */
wisp_err wisp_buf_append(wisp_buf *b, const void *data, size_t len, size_t limit) WISP_MUST_CHECK;
/* Makes |len| more bytes written and returns where they start, for the
 * caller to fill at once (several pieces with one check and one
 * reservation); NULL, buffer unchanged, if the unread bytes would exceed
 * |limit|. The pointer is good until the next write to |b|. A |len| of 0
 * gives a valid pointer too (nothing to write there), also on a buffer
 * without storage, which it does not allocate. */
uint8_t *wisp_buf_extend(wisp_buf *b, size_t len, size_t limit) WISP_MUST_CHECK;
/* Appends printf-formatted text (no NUL); all or nothing as
 * wisp_buf_append: WISP_ERR_TOO_BIG past |limit|, WISP_ERR_INTERNAL if
 * |fmt| cannot be formatted, and the buffer is unchanged. */
wisp_err wisp_buf_printf(wisp_buf *b, size_t limit, const char *fmt, ...)
    __attribute__((format(printf, 3, 4))) WISP_MUST_CHECK;
wisp_err wisp_buf_vprintf(wisp_buf *b, size_t limit, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0))) WISP_MUST_CHECK;
/* Drops what was written after the first |keep| unread bytes (keep <=
 * wisp_buf_len): undoes a write that did not finish. */
void wisp_buf_truncate(wisp_buf *b, size_t keep);
/* Marks |n| bytes as read (n <= wisp_buf_len). Keeps the storage; release
 * it with wisp_buf_cleanup when the owner goes idle. */
void wisp_buf_consume(wisp_buf *b, size_t n);
/* Copies up to |max| unread bytes to |out| and consumes them; returns count. */
size_t wisp_buf_read(wisp_buf *b, void *out, size_t max);
/* Releases storage; |b| is zeroed and valid again (but for |slab|). */
void wisp_buf_cleanup(wisp_buf *b);

#endif
