#include "proxy/wisp_hdrs.h"

#include <stdlib.h>
#include <string.h>

#include "lib/wisp_mem.h"

wisp_err wisp_hdrs_add(wisp_hdrs *h, const uint8_t *name, size_t name_len, const uint8_t *value,
                       size_t value_len) {
  WISP_ENSURE(h->n < WISP_HDRS_MAX_FIELDS, WISP_ERR_TOO_BIG);
  WISP_ENSURE(name_len + value_len <= WISP_HDRS_MAX_BYTES - h->bytes, WISP_ERR_TOO_BIG);
  if (h->n == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 16;
    h->nv = wisp_realloc(h->nv, h->cap * sizeof(*h->nv));
  }
  /* name\0value\0 in one block: one allocation per field. */
  uint8_t *block = wisp_malloc(name_len + value_len + 2);
  memcpy(block, name, name_len);
  block[name_len] = '\0';
  memcpy(block + name_len + 1, value, value_len);
  block[name_len + 1 + value_len] = '\0';
  nghttp2_nv *nv = &h->nv[h->n++];
  nv->name = block;
  nv->namelen = name_len;
  nv->value = block + name_len + 1;
  nv->valuelen = value_len;
  nv->flags = NGHTTP2_NV_FLAG_NONE;
  h->bytes += name_len + value_len;
  return WISP_OK;
}

wisp_err wisp_hdrs_add_str(wisp_hdrs *h, const char *name, const char *value) {
  return wisp_hdrs_add(h, (const uint8_t *)name, strlen(name), (const uint8_t *)value, strlen(value));
}

const char *wisp_hdrs_get(const wisp_hdrs *h, const char *name) {
  size_t len = strlen(name);
  for (size_t i = 0; i < h->n; i++) {
    if (h->nv[i].namelen == len && memcmp(h->nv[i].name, name, len) == 0) return (const char *)h->nv[i].value;
  }
  return NULL;
}

void wisp_hdrs_cleanup(wisp_hdrs *h) {
  for (size_t i = 0; i < h->n; i++) free(h->nv[i].name);
  free(h->nv);
  memset(h, 0, sizeof(*h));
}
