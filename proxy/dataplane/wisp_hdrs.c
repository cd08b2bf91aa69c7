#include "proxy/dataplane/wisp_hdrs.h"

#include <string.h>

#include "lib/wisp_slab.h"

/* Field bytes live in a small arena of blocks that never move, and so do
 * the first WISP_HDRS_NV_FIRST nv entries: a typical request's headers
 * cost one allocation, not one per field (nor a second for the array).
 * Past that many fields the array moves to a chunk of its own (and grows
 * there). Both come from wisp_slab's freelists: a list lives for one
 * request. Nothing is read that this request did not write (|n|, |used|),
 * so a reused chunk needs no clearing. */
#define WISP_HDRS_BLOCK 1024
#define WISP_HDRS_NV_FIRST 16

struct wisp_hdrs_block {
  wisp_hdrs_block *next;
  size_t used, cap;
  uint8_t data[];
};

static inline uint8_t *arena_alloc(wisp_hdrs *h, size_t n) {
  wisp_hdrs_block *b = h->blocks;
  if (!b || b->cap - b->used < n) {
    size_t want = n > WISP_HDRS_BLOCK ? n : WISP_HDRS_BLOCK;
    /* The size class's slack is room too. */
    size_t cap = wisp_slab_class_size(sizeof(*b) + want) - sizeof(*b);
    b = wisp_slab_alloc(sizeof(*b) + cap);
    b->next = h->blocks;
    b->used = 0;
    b->cap = cap;
    h->blocks = b;
  }
  uint8_t *p = b->data + b->used;
  b->used += n;
  return p;
}

/* Room for more fields (|h->cap| doubled): the first array in the arena,
 * aligned for nghttp2_nv; the bigger ones from wisp_slab. */
static void grow_nv(wisp_hdrs *h) {
  if (h->cap == 0) {
    const size_t align = _Alignof(nghttp2_nv);
    uintptr_t p = (uintptr_t)arena_alloc(h, WISP_HDRS_NV_FIRST * sizeof(nghttp2_nv) + align - 1);
    h->nv = (nghttp2_nv *)((p + align - 1) & ~(uintptr_t)(align - 1));
    h->cap = WISP_HDRS_NV_FIRST;
    return;
  }
  nghttp2_nv *nv = h->cap == WISP_HDRS_NV_FIRST ? wisp_slab_alloc(2 * h->cap * sizeof(*nv))
                                                : wisp_slab_realloc(h->nv, 2 * h->cap * sizeof(*nv));
  if (h->cap == WISP_HDRS_NV_FIRST) memcpy(nv, h->nv, h->n * sizeof(*nv));
  h->nv = nv;
  h->cap *= 2;
}

wisp_err wisp_hdrs_add(wisp_hdrs *h, const uint8_t *name, size_t name_len, const uint8_t *value, size_t value_len,
                       uint8_t flags) {
  WISP_ENSURE(h->n < WISP_HDRS_MAX_FIELDS, WISP_ERR_TOO_BIG);
  /* Checked one term at a time: the sum of two lengths could wrap. */
  WISP_ENSURE(name_len <= WISP_HDRS_MAX_BYTES - h->bytes, WISP_ERR_TOO_BIG);
  WISP_ENSURE(value_len <= WISP_HDRS_MAX_BYTES - h->bytes - name_len, WISP_ERR_TOO_BIG);
  if (h->n == h->cap) grow_nv(h);
  uint8_t *block = arena_alloc(h, name_len + value_len + 2); /* name\0value\0 */
  memcpy(block, name, name_len);
  block[name_len] = '\0';
  memcpy(block + name_len + 1, value, value_len);
  block[name_len + 1 + value_len] = '\0';
  nghttp2_nv *nv = &h->nv[h->n++];
  nv->name = block;
  nv->namelen = name_len;
  nv->value = block + name_len + 1;
  nv->valuelen = value_len;
  nv->flags = flags & NGHTTP2_NV_FLAG_NO_INDEX;
  h->bytes += name_len + value_len;
  return WISP_OK;
}

wisp_err wisp_hdrs_add_str(wisp_hdrs *h, const char *name, const char *value) {
  return wisp_hdrs_add(h, (const uint8_t *)name, strlen(name), (const uint8_t *)value, strlen(value),
                       NGHTTP2_NV_FLAG_NONE);
}

static nghttp2_nv *find(const wisp_hdrs *h, const char *name) {
  size_t len = strlen(name);
  for (size_t i = 0; i < h->n; i++) {
    if (h->nv[i].namelen == len && memcmp(h->nv[i].name, name, len) == 0) return &h->nv[i];
  }
  return NULL;
}

wisp_err wisp_hdrs_set(wisp_hdrs *h, const char *name, const uint8_t *value, size_t value_len) {
  nghttp2_nv *nv = find(h, name);
  WISP_ENSURE(nv != NULL, WISP_ERR_USAGE);
  size_t others = h->bytes - nv->valuelen;
  WISP_ENSURE(value_len <= WISP_HDRS_MAX_BYTES - others, WISP_ERR_TOO_BIG);
  uint8_t *copy = arena_alloc(h, value_len + 1);
  memcpy(copy, value, value_len);
  copy[value_len] = '\0';
  nv->value = copy;
  nv->valuelen = value_len;
  h->bytes = others + value_len;
  return WISP_OK;
}

const char *wisp_hdrs_get(const wisp_hdrs *h, const char *name) {
  const nghttp2_nv *nv = find(h, name);
  return nv ? (const char *)nv->value : NULL;
}

void wisp_hdrs_cleanup(wisp_hdrs *h) {
  while (h->blocks) {
    wisp_hdrs_block *next = h->blocks->next;
    wisp_slab_free(h->blocks);
    h->blocks = next;
  }
  if (h->cap > WISP_HDRS_NV_FIRST) wisp_slab_free(h->nv); /* else it was in the arena */
  memset(h, 0, sizeof(*h));
}
