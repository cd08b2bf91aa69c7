/* wisp_policy_rules: the fields of an AuthorizationPolicy rule (names,
 * selectors, principal/namespace/path patterns, methods, ports, from/to),
 * compiled into the model of wisp_policy_internal.h. See
 * wisp_policy_parse.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_mem.h"
#include "lib/wisp_net.h"
#include "lib/wisp_path.h"
#include "lib/wisp_spiffe.h"
#include "lib/wisp_policy_parse.h"

#define SCHEME "spiffe://"
#define METHOD_MAX_LEN 32

/* ---- names and selectors --------------------------------------------- */

static bool seg_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
         ch == '_';
}

/* Names, namespaces and service accounts are compared with SPIFFE ID path
 * segments, so they must be able to be one. */
wisp_err wpp_check_name(pctx *c, const yn *n) {
  WISP_GUARD(wpp_want_str(c, n, NAME_MAX_LEN));
  bool ok = !(n->len == 1 && n->s[0] == '.') && !(n->len == 2 && n->s[0] == '.' && n->s[1] == '.');
  for (size_t i = 0; ok && i < n->len; i++) ok = seg_char(n->s[i]);
  if (!ok) {
    char q[96];
    wpp_quote(q, sizeof(q), n->s, n->len);
    return wpp_fail(c, n, "%s is not a valid name (1-253 characters of A-Z a-z 0-9 . - _)", q);
  }
  return WISP_OK;
}

wp_str wpp_arena_str(pctx *c, const char *s, size_t len) {
  wp_str r = {wp_strndup(&c->p->arena, s, len), (uint32_t)len};
  return r;
}

/* spec.selector: {serviceAccount, namespace}; the namespace defaults to
 * |ns|, the document's. */
wisp_err wpp_compile_selector(pctx *c, const yn *n, wp_str ns, wp_selector *out) {
  out->ns = ns;
  out->sa.s = NULL;
  out->sa.len = 0;
  if (!n) return WISP_OK;
  static const char *const kFields[] = {"serviceAccount", "namespace"};
  const yn *v[2];
  WISP_GUARD(wpp_map_fields(c, n, kFields, 2, v));
  for (int i = 0; i < 2; i++) {
    if (!v[i]) continue;
    size_t mark = wpp_push_key(c, kFields[i], strlen(kFields[i]));
    wisp_err e = wpp_check_name(c, v[i]);
    wpp_pop(c, mark);
    WISP_GUARD(e);
    if (i == 0) out->sa = wpp_arena_str(c, v[i]->s, v[i]->len);
    else out->ns = wpp_arena_str(c, v[i]->s, v[i]->len);
  }
  return WISP_OK;
}

/* ---- patterns ---------------------------------------------------------- */

typedef enum { PAT_PRINCIPAL, PAT_NAMESPACE, PAT_PATH } pat_kind;

static bool path_char(unsigned char ch) { return ch > 0x20 && ch < 0x7f; }

static int cmp_wp_str(const void *a, const void *b) {
  const wp_str *x = a, *y = b;
  return wp_str_cmp(x->s, x->len, y->s, y->len);
}

/* Sorts |v| and drops duplicates; returns the new count. */
static uint32_t sort_unique(wp_str *v, uint32_t n) {
  if (n < 2) return n;
  qsort(v, n, sizeof(*v), cmp_wp_str);
  uint32_t w = 1;
  for (uint32_t i = 1; i < n; i++)
    if (cmp_wp_str(&v[w - 1], &v[i]) != 0) v[w++] = v[i];
  return w;
}

/* Checks the part of a pattern around its '*' (|body|, |len| bytes); |shape|
 * is 'e'xact, 'p'refix or 's'uffix. Returns a reason or NULL. */
static const char *check_body(pat_kind kind, char shape, const char *body, size_t len, char *why, size_t why_len) {
  switch (kind) {
    case PAT_NAMESPACE:
      for (size_t i = 0; i < len; i++)
        if (!seg_char(body[i])) return "only A-Z a-z 0-9 . - _ may appear in a namespace";
      return NULL;
    case PAT_PATH:
      if (shape != 's' && body[0] != '/') return "must start with '/' (or '*')";
      for (size_t i = 0; i < len; i++) {
        if (body[i] == '?') return "contains '?': paths are matched without the query string";
        if (body[i] == '#') return "contains '#'";
        if (!path_char((unsigned char)body[i])) return "contains a space, control or non-ASCII byte";
      }
      return NULL;
    case PAT_PRINCIPAL:
      if (shape == 'e') {
        wisp_spiffe_id id;
        char reason[160];
        if (len > WISP_SPIFFE_MAX) return "longer than a SPIFFE ID may be (2048 bytes)";
        if (wisp_spiffe_parse(&id, body, len, reason, sizeof(reason)) != WISP_OK) {
          snprintf(why, why_len, "not a SPIFFE ID (%s)", reason);
          return why;
        }
        return NULL;
      }
      for (size_t i = shape == 'p' ? strlen(SCHEME) : 0; i < len; i++)
        if (!seg_char(body[i]) && body[i] != '/' && (shape == 'p' || body[i] != ':'))
          return "only A-Z a-z 0-9 . - _ / may follow spiffe://";
      return NULL;
  }
  return NULL;
}

typedef enum { PART_NORMAL, PART_REFUSED, PART_CLIMBS } part_result;

/* Normalises |body| as the |shape| part of a path, with |mark| ('x' or
 * 'y') in what is put around it; |in| and |out| hold |len| + 3 bytes. On
 * PART_NORMAL, |*norm| and |*norm_len| are the literal's normal form (in
 * |out|); on PART_REFUSED, |*refused| says why. */
static part_result normal_part(char shape, char mark, const char *body, size_t len, char *in, char *out,
                               const char **norm, size_t *norm_len, const char **refused) {
  size_t in_len = 0, n = 0, before = 0, after = 0;
  if (shape == 's') {
    in[in_len++] = '/';
    in[in_len++] = mark;
    before = 2;
  }
  memcpy(in + in_len, body, len);
  in_len += len;
  if (shape == 'p') {
    in[in_len++] = mark;
    after = 1;
  }
  if (wisp_path_normalize(out, len + 3, &n, in, in_len, refused) != WISP_OK) return PART_REFUSED;
  if (n < before + after || memcmp(out, in, before) != 0) return PART_CLIMBS;
  *norm = out + before;
  *norm_len = n - before - after;
  return PART_NORMAL;
}

/* Requests are judged in lib/wisp_path's normal form, so a path pattern
 * whose literal no normal form holds could never match: as a DENY rule it
 * would fail open. The literal is normalised as the part of a path it
 * stands for: a whole path (exact); the start of one (prefix): a plain
 * byte is put after it, so its last segment, which a request may carry on
 * ("/a/." starts "/a/.well-known"), is not taken for a whole "." or "..";
 * the end of one (suffix): a plain segment start is put before it, once
 * "/x" and once "/y", so a ".." that would climb out of the literal shows
 * as the two results not starting with what was put before. Returns NULL
 * when the literal is in normal form, else why not (in |why|). */
static const char *path_never_matches(char shape, const char *body, size_t len, char *why, size_t why_len) {
  char *in = wisp_malloc(len + 3), *out = wisp_malloc(len + 3);
  const char *norm = NULL, *refused = NULL;
  size_t norm_len = 0;
  part_result r = normal_part(shape, 'x', body, len, in, out, &norm, &norm_len, &refused);
  if (r == PART_NORMAL && shape == 's') { /* a ".." may have left "/x" by chance: "/y" tells */
    char *out2 = wisp_malloc(len + 3);
    const char *norm2;
    size_t norm2_len;
    r = normal_part(shape, 'y', body, len, in, out2, &norm2, &norm2_len, &refused);
    free(out2);
  }
  if (r == PART_REFUSED) {
    snprintf(why, why_len, "the proxy refuses such paths: %s", refused);
  } else if (r == PART_CLIMBS) {
    snprintf(why, why_len, "requests are matched in normal form, which has no \"..\" segment");
  } else if (norm_len != len || memcmp(norm, body, len) != 0) {
    char *pat = wisp_malloc(norm_len + 2), q[96];
    size_t w = 0;
    if (shape == 's') pat[w++] = '*';
    memcpy(pat + w, norm, norm_len);
    w += norm_len;
    if (shape == 'p') pat[w++] = '*';
    wpp_quote(q, sizeof(q), pat, w);
    free(pat);
    snprintf(why, why_len, "requests are matched in normal form %s", q);
  } else {
    why = NULL;
  }
  free(in);
  free(out);
  return why;
}

/* Compiles one list of patterns (principals, namespaces or paths). */
static wisp_err compile_patterns(pctx *c, const yn *list, pat_kind kind, wp_strset *out) {
  WISP_GUARD(wpp_want_seq(c, list, false, WISP_POLICY_MAX_LIST));
  static const char *const kWhat[] = {"a principal pattern", "a namespace pattern", "a path pattern"};
  wp_str *exact = wp_alloc(&c->p->arena, list->n * sizeof(wp_str));
  wp_str *prefix = wp_alloc(&c->p->arena, list->n * sizeof(wp_str));
  wp_str *suffix = wp_alloc(&c->p->arena, list->n * sizeof(wp_str));
  uint32_t i = 0;
  memset(out, 0, sizeof(*out));
  for (const yn *it = list->first; it; it = it->next, i++) {
    size_t mark = wpp_push_index(c, i);
    wisp_err e = wpp_want_str(c, it, kind == PAT_PRINCIPAL ? WISP_SPIFFE_MAX : WISP_POLICY_MAX_STR);
    if (e != WISP_OK) return e;
    const char *s = it->s;
    size_t len = it->len;
    const char *star = memchr(s, '*', len);
    char shape = 'e';
    const char *body = s;
    size_t blen = len;
    const char *why = NULL;
    char whybuf[224];
    if (len == 1 && star) {
      out->any = true;
      wpp_pop(c, mark);
      continue;
    }
    if (star == s) {
      shape = 's';
      body = s + 1;
      blen = len - 1;
    } else if (star == s + len - 1) {
      shape = 'p';
      blen = len - 1;
    }
    if (star && memchr(body, '*', blen)) why = "'*' may only be the whole pattern, its first or its last character";
    /* Istio writes principals without the scheme: add it. */
    char *norm = NULL;
    if (!why && kind == PAT_PRINCIPAL && shape != 's' &&
        (blen < strlen(SCHEME) || memcmp(body, SCHEME, strlen(SCHEME)) != 0)) {
      norm = wisp_malloc(strlen(SCHEME) + blen + 1);
      memcpy(norm, SCHEME, strlen(SCHEME));
      memcpy(norm + strlen(SCHEME), body, blen);
      blen += strlen(SCHEME);
      norm[blen] = '\0';
      body = norm;
    }
    if (!why) why = check_body(kind, shape, body, blen, whybuf, sizeof(whybuf));
    if (!why && kind == PAT_PATH && path_never_matches(shape, body, blen, whybuf, sizeof(whybuf))) {
      char q[96];
      wpp_quote(q, sizeof(q), s, len);
      e = wpp_fail(c, it, "%s can never match a request: %s", q, whybuf);
      wpp_pop(c, mark);
      return e;
    }
    if (why) {
      free(norm);
      char q[96];
      wpp_quote(q, sizeof(q), s, len);
      e = wpp_fail(c, it, "%s is not %s: %s", q, kWhat[kind], why);
      wpp_pop(c, mark);
      return e;
    }
    wp_str v = wpp_arena_str(c, body, blen);
    free(norm);
    if (shape == 'e') exact[out->n_exact++] = v;
    else if (shape == 'p') prefix[out->n_prefix++] = v;
    else suffix[out->n_suffix++] = v;
    wpp_pop(c, mark);
  }
  out->n_exact = sort_unique(exact, out->n_exact);
  out->exact = exact;
  out->prefix = prefix;
  out->suffix = suffix;
  return WISP_OK;
}

/* ---- methods and ports --------------------------------------------------- */

static const struct {
  const char *name;
  uint32_t bit;
} kMethods[] = {
    {"GET", WP_GET},         {"HEAD", WP_HEAD},       {"POST", WP_POST},   {"PUT", WP_PUT},     {"DELETE", WP_DELETE},
    {"CONNECT", WP_CONNECT}, {"OPTIONS", WP_OPTIONS}, {"TRACE", WP_TRACE}, {"PATCH", WP_PATCH},
};

static wisp_err compile_methods(pctx *c, const yn *list, wp_methodset *out) {
  WISP_GUARD(wpp_want_seq(c, list, false, WISP_POLICY_MAX_LIST));
  wp_str *other = wp_alloc(&c->p->arena, list->n * sizeof(wp_str));
  uint32_t i = 0;
  memset(out, 0, sizeof(*out));
  for (const yn *it = list->first; it; it = it->next, i++) {
    size_t mark = wpp_push_index(c, i);
    wisp_err e = wpp_want_str(c, it, WISP_POLICY_MAX_STR);
    if (e != WISP_OK) return e;
    const char *why = NULL;
    char hint[64] = "";
    if (it->len > METHOD_MAX_LEN) why = "longer than 32 bytes";
    if (!why && wpp_eq(it, "*")) why = "omit methods to match any";
    for (size_t k = 0; !why && k < it->len; k++)
      if (!wp_tchar(it->s[k])) why = "not an HTTP token";
    for (size_t k = 0; !why && k < it->len; k++) {
      if (it->s[k] >= 'a' && it->s[k] <= 'z') {
        size_t w = (size_t)snprintf(hint, sizeof(hint), "methods are case-sensitive: write \"");
        for (size_t j = 0; j < it->len && w + 2 < sizeof(hint); j++)
          hint[w++] = (it->s[j] >= 'a' && it->s[j] <= 'z') ? (char)(it->s[j] - 32) : it->s[j];
        if (w + 2 < sizeof(hint)) hint[w++] = '"';
        hint[w] = '\0';
        why = hint;
      }
    }
    if (why) {
      char q[96];
      wpp_quote(q, sizeof(q), it->s, it->len);
      e = wpp_fail(c, it, "%s is not a method (%s)", q, why);
      wpp_pop(c, mark);
      return e;
    }
    uint32_t bit = 0;
    for (size_t k = 0; k < sizeof(kMethods) / sizeof(kMethods[0]); k++)
      if (wpp_eq(it, kMethods[k].name)) bit = kMethods[k].bit;
    if (bit) out->mask |= bit;
    else other[out->n_other++] = wpp_arena_str(c, it->s, it->len);
    wpp_pop(c, mark);
  }
  out->n_other = sort_unique(other, out->n_other);
  out->other = other;
  return WISP_OK;
}

static int cmp_u16(const void *a, const void *b) { return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b; }

static wisp_err compile_ports(pctx *c, const yn *list, wp_portset *out) {
  WISP_GUARD(wpp_want_seq(c, list, false, WISP_POLICY_MAX_LIST));
  uint16_t *ports = wp_alloc(&c->p->arena, list->n * sizeof(uint16_t));
  uint32_t i = 0;
  for (const yn *it = list->first; it; it = it->next, i++) {
    size_t mark = wpp_push_index(c, i);
    unsigned long v = 0;
    bool ok = it->kind == YN_SCALAR && wpp_all_digits(it->s, it->len) && it->len <= 5;
    if (ok) v = strtoul(it->s, NULL, 10);
    if (!ok || v < 1 || v > 65535) {
      wisp_err e;
      if (it->kind != YN_SCALAR) {
        e = wpp_fail(c, it, "expected a port number, got %s", wpp_kind_name(it));
      } else if (it->plain) {
        char q[96];
        wpp_quote(q, sizeof(q), it->s, it->len);
        /* A plain number reads better bare: 70000, not "70000". */
        e = wpp_plain_type(it) && strcmp(wpp_plain_type(it), "an integer") == 0 && it->len <= 64
                ? wpp_fail(c, it, "%s is not a port (1..65535)", it->s)
                : wpp_fail(c, it, "%s is not a port (1..65535)", q);
      } else {
        char q[96];
        wpp_quote(q, sizeof(q), it->s, it->len);
        e = wpp_fail(c, it, "%s is not a port (1..65535)", q);
      }
      wpp_pop(c, mark);
      return e;
    }
    ports[i] = (uint16_t)v;
    wpp_pop(c, mark);
  }
  uint32_t n = list->n, w = n ? 1 : 0;
  qsort(ports, n, sizeof(uint16_t), cmp_u16);
  for (uint32_t k = 1; k < n; k++)
    if (ports[k] != ports[w - 1]) ports[w++] = ports[k];
  out->n = w;
  out->ports = ports;
  return WISP_OK;
}

/* ---- rules -------------------------------------------------------------- */

static wisp_err compile_from(pctx *c, const yn *n, wp_from *out) {
  static const char *const kFields[] = {"principals", "notPrincipals", "namespaces", "notNamespaces"};
  const yn *v[4];
  WISP_GUARD(wpp_map_fields(c, n, kFields, 4, v));
  wp_strset *sets[4] = {&out->principals, &out->not_principals, &out->namespaces, &out->not_namespaces};
  for (uint32_t i = 0; i < 4; i++) {
    if (!v[i]) continue;
    out->fields |= 1u << i;
    FIELD(c, kFields[i], compile_patterns(c, v[i], i < 2 ? PAT_PRINCIPAL : PAT_NAMESPACE, sets[i]));
  }
  if (!out->fields) return wpp_fail(c, n, "empty entry (give principals, notPrincipals, namespaces or notNamespaces)");
  return WISP_OK;
}

static wisp_err compile_to(pctx *c, const yn *n, wp_to *out) {
  static const char *const kFields[] = {"methods", "notMethods", "paths", "notPaths", "ports", "notPorts"};
  const yn *v[6];
  WISP_GUARD(wpp_map_fields(c, n, kFields, 6, v));
  for (uint32_t i = 0; i < 6; i++)
    if (v[i]) out->fields |= 1u << i;
  if (v[0]) FIELD(c, kFields[0], compile_methods(c, v[0], &out->methods));
  if (v[1]) FIELD(c, kFields[1], compile_methods(c, v[1], &out->not_methods));
  if (v[2]) FIELD(c, kFields[2], compile_patterns(c, v[2], PAT_PATH, &out->paths));
  if (v[3]) FIELD(c, kFields[3], compile_patterns(c, v[3], PAT_PATH, &out->not_paths));
  if (v[4]) FIELD(c, kFields[4], compile_ports(c, v[4], &out->ports));
  if (v[5]) FIELD(c, kFields[5], compile_ports(c, v[5], &out->not_ports));
  if (!out->fields) return wpp_fail(c, n, "empty entry (give methods, notMethods, paths, notPaths, ports or notPorts)");
  return WISP_OK;
}

wisp_err wpp_compile_rule(pctx *c, const yn *n, wp_rule *out) {
  static const char *const kFields[] = {"from", "to"};
  const yn *v[2];
  WISP_GUARD(wpp_map_fields(c, n, kFields, 2, v));
  if (v[0]) {
    size_t mark = wpp_push_key(c, "from", 4);
    WISP_GUARD(wpp_want_seq(c, v[0], false, WISP_POLICY_MAX_LIST));
    wp_from *from = wp_alloc(&c->p->arena, v[0]->n * sizeof(wp_from));
    uint32_t i = 0;
    for (const yn *it = v[0]->first; it; it = it->next, i++) {
      size_t m = wpp_push_index(c, i);
      WISP_GUARD(compile_from(c, it, &from[i]));
      wpp_pop(c, m);
    }
    out->from = from;
    out->n_from = v[0]->n;
    wpp_pop(c, mark);
  }
  if (v[1]) {
    size_t mark = wpp_push_key(c, "to", 2);
    WISP_GUARD(wpp_want_seq(c, v[1], false, WISP_POLICY_MAX_LIST));
    wp_to *to = wp_alloc(&c->p->arena, v[1]->n * sizeof(wp_to));
    uint32_t i = 0;
    for (const yn *it = v[1]->first; it; it = it->next, i++) {
      size_t m = wpp_push_index(c, i);
      WISP_GUARD(compile_to(c, it, &to[i]));
      wpp_pop(c, m);
    }
    out->to = to;
    out->n_to = v[1]->n;
    wpp_pop(c, mark);
  }
  return WISP_OK;
}
