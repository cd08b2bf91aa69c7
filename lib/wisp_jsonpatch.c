/* JSON Patch by diffing; see wisp_jsonpatch.h. */
#include "lib/wisp_jsonpatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_mem.h"

/* |base| + "/" + |token| escaped as a JSON Pointer reference token. */
static char *child_path(const char *base, const char *token) {
  size_t n = strlen(base) + 2 * strlen(token) + 2;
  char *p = wisp_malloc(n), *o = p + strlen(base);
  memcpy(p, base, strlen(base));
  *o++ = '/';
  for (const char *t = token; *t; t++) {
    if (*t == '~' || *t == '/') {
      *o++ = '~';
      *o++ = *t == '~' ? '0' : '1';
    } else {
      *o++ = *t;
    }
  }
  *o = '\0';
  return p;
}

static char *index_path(const char *base, size_t i) {
  char num[24];
  snprintf(num, sizeof(num), "%zu", i);
  return child_path(base, num);
}

static void op(json_t *ops, const char *name, const char *path, const json_t *value) {
  json_t *o = json_object();
  json_object_set_new(o, "op", json_string(name));
  json_object_set_new(o, "path", json_string(path));
  if (value) json_object_set_new(o, "value", json_deep_copy(value));
  json_array_append_new(ops, o);
}

static void diff(json_t *ops, const char *path, const json_t *a, const json_t *b);

static void diff_object(json_t *ops, const char *path, const json_t *a, const json_t *b) {
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)a, k, v) {
    char *p = child_path(path, k);
    const json_t *w = json_object_get(b, k);
    if (!w) {
      op(ops, "remove", p, NULL);
    } else {
      diff(ops, p, v, w);
    }
    free(p);
  }
  json_object_foreach((json_t *)b, k, v) {
    if (json_object_get(a, k)) continue;
    char *p = child_path(path, k);
    op(ops, "add", p, v);
    free(p);
  }
}

static void diff_array(json_t *ops, const char *path, const json_t *a, const json_t *b) {
  size_t na = json_array_size(a), nb = json_array_size(b), pre = 0, suf = 0;
  while (pre < na && pre < nb && json_equal(json_array_get(a, pre), json_array_get(b, pre))) pre++;
  while (suf < na - pre && suf < nb - pre &&
         json_equal(json_array_get(a, na - 1 - suf), json_array_get(b, nb - 1 - suf)))
    suf++;
  if (pre + suf == na) { /* only insertions, between the kept head and tail */
    for (size_t i = pre; i < nb - suf; i++) {
      char *p = suf == 0 ? child_path(path, "-") : index_path(path, i);
      op(ops, "add", p, json_array_get(b, i));
      free(p);
    }
    return;
  }
  if (na == nb) {
    for (size_t i = pre; i < na - suf; i++) {
      char *p = index_path(path, i);
      diff(ops, p, json_array_get(a, i), json_array_get(b, i));
      free(p);
    }
    return;
  }
  op(ops, "replace", path, b);
}

static void diff(json_t *ops, const char *path, const json_t *a, const json_t *b) {
  if (json_equal(a, b)) return;
  if (json_is_object(a) && json_is_object(b)) {
    diff_object(ops, path, a, b);
  } else if (json_is_array(a) && json_is_array(b)) {
    diff_array(ops, path, a, b);
  } else {
    op(ops, "replace", path, b);
  }
}

json_t *wisp_jsonpatch_diff(const json_t *from, const json_t *to) {
  json_t *ops = json_array();
  if (!ops) abort();
  diff(ops, "", from, to);
  return ops;
}
