/* Helpers over a libyaml document tree; see yaml_tree.h. */
#include "control/wispctl/yaml_tree.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/wisp_mem.h"

/* libyaml returns 0 when it cannot allocate (our scalars are valid UTF-8:
 * flags are checked, everything else comes from the parser). */
static int must(int id) {
  if (id == 0) {
    fputs("wispctl: out of memory (libyaml)\n", stderr);
    abort();
  }
  return id;
}

yaml_node_t *wispctl_yaml_node(yaml_document_t *d, int id, yaml_node_type_t type) {
  yaml_node_t *n = id ? yaml_document_get_node(d, id) : NULL;
  return n && n->type == type ? n : NULL;
}

const char *wispctl_yaml_str(yaml_document_t *d, int id) {
  yaml_node_t *n = wispctl_yaml_node(d, id, YAML_SCALAR_NODE);
  return n ? (const char *)n->data.scalar.value : NULL;
}

bool wispctl_yaml_is_true(yaml_document_t *d, int id) {
  yaml_node_t *n = wispctl_yaml_node(d, id, YAML_SCALAR_NODE);
  if (!n || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
  const char *s = (const char *)n->data.scalar.value;
  return !strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on");
}

/* The pair of |key| in mapping |map|, or NULL. */
static yaml_node_pair_t *find_pair(yaml_document_t *d, int map, const char *key) {
  yaml_node_t *m = wispctl_yaml_node(d, map, YAML_MAPPING_NODE);
  if (!m) return NULL;
  for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
    const char *k = wispctl_yaml_str(d, p->key);
    if (k && strcmp(k, key) == 0) return p;
  }
  return NULL;
}

int wispctl_yaml_get(yaml_document_t *d, int map, const char *key) {
  yaml_node_pair_t *p = find_pair(d, map, key);
  return p ? p->value : 0;
}

int wispctl_yaml_path(yaml_document_t *d, int node, const char *const *keys) {
  for (; node && *keys; keys++) node = wispctl_yaml_get(d, node, *keys);
  return node;
}

/* Would a YAML reader take plain |s| for something other than a string? */
static bool reads_as_non_string(const char *s) {
  static const char *const kWords[] = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"};
  if (!*s || isdigit((unsigned char)s[0])) return true;
  if (strchr("+-.", s[0]) && s[1] != '-') return true; /* -1, +1, .5, .inf; "--flag" is a string */
  for (size_t i = 0; i < sizeof(kWords) / sizeof(kWords[0]); i++) {
    if (!strcasecmp(s, kWords[i])) return true;
  }
  return false;
}

static int add_scalar(yaml_document_t *d, const char *s, yaml_scalar_style_t style) {
  return must(yaml_document_add_scalar(d, NULL, (yaml_char_t *)s, (int)strlen(s), style));
}

int wispctl_yaml_add_str(yaml_document_t *d, const char *s) {
  return add_scalar(d, s, reads_as_non_string(s) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_PLAIN_SCALAR_STYLE);
}

int wispctl_yaml_add_plain(yaml_document_t *d, const char *s) { return add_scalar(d, s, YAML_PLAIN_SCALAR_STYLE); }

int wispctl_yaml_add_int(yaml_document_t *d, long n) {
  char s[32];
  snprintf(s, sizeof(s), "%ld", n);
  return wispctl_yaml_add_plain(d, s);
}

int wispctl_yaml_add_map(yaml_document_t *d, const wispctl_yaml_kv *kv) {
  int map = must(yaml_document_add_mapping(d, NULL, YAML_BLOCK_MAPPING_STYLE));
  for (; kv->key; kv++) {
    if (kv->value) must(yaml_document_append_mapping_pair(d, map, wispctl_yaml_add_plain(d, kv->key), kv->value));
  }
  return map;
}

int wispctl_yaml_add_seq(yaml_document_t *d, const int *items) {
  int seq = must(yaml_document_add_sequence(d, NULL, YAML_BLOCK_SEQUENCE_STYLE));
  for (; *items; items++) wispctl_yaml_append(d, seq, *items);
  return seq;
}

void wispctl_yaml_append(yaml_document_t *d, int seq, int item) {
  must(yaml_document_append_sequence_item(d, seq, item));
}

void wispctl_yaml_prepend(yaml_document_t *d, int seq, const int *items, size_t n) {
  for (size_t i = 0; i < n; i++) wispctl_yaml_append(d, seq, items[i]);
  yaml_node_t *s = wispctl_yaml_node(d, seq, YAML_SEQUENCE_NODE);
  yaml_node_item_t *start = s->data.sequence.items.start;
  size_t old = (size_t)(s->data.sequence.items.top - start) - n;
  if (old == 0) return;
  /* Rotate: the n new items (at the end) go before the old ones. */
  yaml_node_item_t *tmp = wisp_malloc(n * sizeof(*tmp));
  memcpy(tmp, start + old, n * sizeof(*tmp));
  memmove(start + n, start, old * sizeof(*tmp));
  memcpy(start, tmp, n * sizeof(*tmp));
  free(tmp);
}

void wispctl_yaml_put(yaml_document_t *d, int map, const char *key, int value) {
  yaml_node_pair_t *p = find_pair(d, map, key);
  if (p) {
    p->value = value;
  } else {
    int k = wispctl_yaml_add_plain(d, key); /* may move the mapping's node: look it up after */
    must(yaml_document_append_mapping_pair(d, map, k, value));
  }
}

bool wispctl_yaml_is_null(yaml_document_t *d, int id) {
  const char *s = wispctl_yaml_str(d, id);
  return s && (!*s || !strcmp(s, "null") || !strcmp(s, "~"));
}

int wispctl_yaml_want(yaml_document_t *d, int map, const char *key, yaml_node_type_t type) {
  int id = wispctl_yaml_get(d, map, key);
  if (!id || wispctl_yaml_is_null(d, id)) {
    id = type == YAML_MAPPING_NODE ? must(yaml_document_add_mapping(d, NULL, YAML_BLOCK_MAPPING_STYLE))
                                   : must(yaml_document_add_sequence(d, NULL, YAML_BLOCK_SEQUENCE_STYLE));
    wispctl_yaml_put(d, map, key, id);
    return id;
  }
  if (!wispctl_yaml_node(d, id, type)) return 0;
  wispctl_yaml_set_block(d, id);
  return id;
}

void wispctl_yaml_set_block(yaml_document_t *d, int id) {
  yaml_node_t *n = id ? yaml_document_get_node(d, id) : NULL;
  if (n && n->type == YAML_MAPPING_NODE) n->data.mapping.style = YAML_BLOCK_MAPPING_STYLE;
  if (n && n->type == YAML_SEQUENCE_NODE) n->data.sequence.style = YAML_BLOCK_SEQUENCE_STYLE;
}

/* |max| or the depth below |child| of node |id|, the larger. Children are
 * added after their parent (by the parser and by us); an earlier id is an
 * alias, which the emitter writes as one word. */
static size_t deeper(size_t max, int id, int child, const size_t *depth) {
  size_t c = child > id ? depth[child] : 1;
  return c > max ? c : max;
}

static size_t child_depth(yaml_document_t *d, int id, const size_t *depth) {
  yaml_node_t *n = yaml_document_get_node(d, id);
  size_t max = 0;
  if (n->type == YAML_SEQUENCE_NODE) {
    for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++)
      max = deeper(max, id, *i, depth);
  } else if (n->type == YAML_MAPPING_NODE) {
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++)
      max = deeper(deeper(max, id, p->key, depth), id, p->value, depth);
  }
  return max;
}

size_t wispctl_yaml_depth(yaml_document_t *d) {
  int count = (int)(d->nodes.top - d->nodes.start);
  if (count == 0) return 0;
  size_t *depth = wisp_calloc((size_t)count + 1, sizeof(*depth));
  for (int id = count; id >= 1; id--) depth[id] = 1 + child_depth(d, id, depth);
  size_t root = depth[1];
  free(depth);
  return root;
}
