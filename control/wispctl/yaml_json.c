/* JSON <-> libyaml document tree; see yaml_json.h. */
#include "control/wispctl/yaml_json.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "control/wispctl/yaml_tree.h"

#define NUM_MAX 64

static int scalar(yaml_document_t *d, const char *s, size_t len, yaml_scalar_style_t style) {
  int id = yaml_document_add_scalar(d, NULL, (yaml_char_t *)s, (int)len, style);
  if (!id) abort(); /* libyaml out of memory: fatal, as in yaml_tree.c */
  return id;
}

static int plain(yaml_document_t *d, const char *s) { return scalar(d, s, strlen(s), YAML_PLAIN_SCALAR_STYLE); }

static int real_node(yaml_document_t *d, double v) {
  char num[NUM_MAX];
  if (!isfinite(v)) return plain(d, "null"); /* jansson never makes these */
  snprintf(num, sizeof(num), "%.17g", v);
  if (!strpbrk(num, ".eE")) strcat(num, ".0");
  return plain(d, num);
}

static int add(yaml_document_t *d, const json_t *v, size_t depth, size_t max, bool *too_deep) {
  if (depth > max) {
    *too_deep = true;
    return plain(d, "null");
  }
  char num[NUM_MAX];
  switch (json_typeof(v)) {
    case JSON_OBJECT: {
      int map = yaml_document_add_mapping(d, NULL, YAML_BLOCK_MAPPING_STYLE);
      if (!map) abort();
      const char *k;
      json_t *val;
      json_object_foreach((json_t *)v, k, val) {
        int key = scalar(d, k, strlen(k), YAML_DOUBLE_QUOTED_SCALAR_STYLE);
        int value = add(d, val, depth + 1, max, too_deep);
        if (!yaml_document_append_mapping_pair(d, map, key, value)) abort();
      }
      return map;
    }
    case JSON_ARRAY: {
      int seq = yaml_document_add_sequence(d, NULL, YAML_BLOCK_SEQUENCE_STYLE);
      if (!seq) abort();
      for (size_t i = 0; i < json_array_size(v); i++)
        wispctl_yaml_append(d, seq, add(d, json_array_get(v, i), depth + 1, max, too_deep));
      return seq;
    }
    case JSON_STRING:
      return scalar(d, json_string_value(v), json_string_length(v), YAML_DOUBLE_QUOTED_SCALAR_STYLE);
    case JSON_INTEGER:
      snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
      return plain(d, num);
    case JSON_REAL:
      return real_node(d, json_real_value(v));
    case JSON_TRUE:
      return plain(d, "true");
    case JSON_FALSE:
      return plain(d, "false");
    case JSON_NULL:
      break;
  }
  return plain(d, "null");
}

wisp_err wispctl_yaml_from_json(yaml_document_t *d, const json_t *v, size_t max_depth) {
  bool too_deep = false;
  add(d, v, 1, max_depth, &too_deep);
  return too_deep ? WISP_ERR_TOO_BIG : WISP_OK;
}

/* ---- back ---- */

static bool one_of(const char *s, const char *const *words) {
  for (; *words; words++) {
    if (!strcmp(s, *words)) return true;
  }
  return false;
}

/* A plain scalar as YAML 1.1 (go-yaml, which kubectl uses) reads it. */
static json_t *resolve_plain(const char *s) {
  static const char *const kNull[] = {"", "~", "null", "Null", "NULL", NULL};
  static const char *const kTrue[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y", NULL};
  static const char *const kFalse[] = {"false", "False", "FALSE", "no", "No", "NO",
                                       "off",   "Off",   "OFF",   "n",  "N",  NULL};
  if (one_of(s, kNull)) return json_null();
  if (one_of(s, kTrue)) return json_true();
  if (one_of(s, kFalse)) return json_false();
  char *end = NULL;
  errno = 0;
  long long i = strtoll(s, &end, 10);
  if (*s && !*end && !errno && (s[0] != '0' || !s[1])) return json_integer(i);
  errno = 0;
  double r = strtod(s, &end);
  /* ERANGE on underflow (a subnormal such as 5e-324, or 1e-400 that
   * rounds to 0) is still a number, as jansson and go-yaml read it; only
   * overflow (1e400, infinite) has no JSON number and stays a string. */
  bool in_range = !errno || (errno == ERANGE && isfinite(r) && fabs(r) <= DBL_MIN);
  if (*s && !*end && in_range && strpbrk(s, ".eE") && strspn(s, "+-0123456789.eE") == strlen(s)) return json_real(r);
  return json_string(s);
}

json_t *wispctl_yaml_to_json(yaml_document_t *d, int id, size_t max_depth) {
  yaml_node_t *n = yaml_document_get_node(d, id);
  if (!n || max_depth == 0) return NULL;
  if (n->type == YAML_SCALAR_NODE) {
    const char *s = (const char *)n->data.scalar.value;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return json_stringn(s, n->data.scalar.length);
    return resolve_plain(s);
  }
  if (n->type == YAML_SEQUENCE_NODE) {
    json_t *arr = json_array();
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    for (size_t i = 0; i < count; i++) {
      n = yaml_document_get_node(d, id); /* stable here (no adds), looked up for clarity */
      json_t *item = wispctl_yaml_to_json(d, n->data.sequence.items.start[i], max_depth - 1);
      if (!item || json_array_append_new(arr, item) != 0) {
        json_decref(arr);
        return NULL;
      }
    }
    return arr;
  }
  json_t *obj = json_object();
  size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
  for (size_t i = 0; i < count; i++) {
    yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
    const char *key = wispctl_yaml_str(d, p->key);
    json_t *val = key ? wispctl_yaml_to_json(d, p->value, max_depth - 1) : NULL;
    if (!val || json_object_set_new(obj, key, val) != 0) {
      json_decref(obj);
      return NULL;
    }
  }
  return obj;
}
