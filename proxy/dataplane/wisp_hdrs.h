/* wisp_hdrs: an owned, bounded list of HTTP/2 header fields, ready to hand
 * to nghttp2. Each field keeps whether it arrived never indexed (HPACK's
 * "literal never indexed", NGHTTP2_NV_FLAG_NO_INDEX in nghttp2's on_header
 * flags): submitted with that flag, it is sent never indexed again (RFC
 * 7541 7.1.3: an intermediary must not re-encode such a field with a
 * representation that would index it). Zeroed is valid and empty. */
#ifndef WISP_HDRS_H
#define WISP_HDRS_H

#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "lib/wisp_err.h"

/* Bounds that a peer cannot raise: a header block bigger than this is
 * refused (the stream is reset), never buffered. */
#define WISP_HDRS_MAX_FIELDS 128
#define WISP_HDRS_MAX_BYTES (64 * 1024)

typedef struct wisp_hdrs_block wisp_hdrs_block;

typedef struct {
  nghttp2_nv *nv; /* in |blocks| up to 16 fields, then a chunk of its own */
  size_t n;
  size_t cap;
  size_t bytes;
  wisp_hdrs_block *blocks; /* owned arena: names and values, never moved */
} wisp_hdrs;

/* Appends a copy. Of |flags| (as nghttp2's on_header callback got them;
 * NGHTTP2_NV_FLAG_NONE for a field that came from HTTP/1 or from us) only
 * NGHTTP2_NV_FLAG_NO_INDEX is kept, in the field's nv flags.
 * WISP_ERR_TOO_BIG past the bounds (list unchanged). */
wisp_err wisp_hdrs_add(wisp_hdrs *h, const uint8_t *name, size_t name_len, const uint8_t *value, size_t value_len,
                       uint8_t flags) WISP_MUST_CHECK;
wisp_err wisp_hdrs_add_str(wisp_hdrs *h, const char *name, const char *value) WISP_MUST_CHECK;
/* Replaces the value of the first field named |name| with a copy of
 * |value| (|value_len| bytes), its flags kept; the old value's bytes stay valid until
 * cleanup (the arena never moves). WISP_ERR_TOO_BIG past the bounds,
 * WISP_ERR_USAGE with no such field (list unchanged). */
wisp_err wisp_hdrs_set(wisp_hdrs *h, const char *name, const uint8_t *value, size_t value_len) WISP_MUST_CHECK;
/* Returns the value of the first field named |name| (NUL-terminated,
 * borrowed), or NULL. */
const char *wisp_hdrs_get(const wisp_hdrs *h, const char *name);
void wisp_hdrs_cleanup(wisp_hdrs *h);

#endif
