/* wisp_policy_yaml: the policy compiler's YAML side. libyaml's events
 * become a small tree per document; node type and map field checks say
 * exactly what is wrong and where. See wisp_policy_parse.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "lib/wisp_policy_parse.h"

/* ---- messages --------------------------------------------------------- */

/* Writes |s| quoted and escaped, cut after 64 bytes, for messages. */
void wpp_quote(char *out, size_t out_len, const char *s, size_t len) {
  size_t w = 0;
  const size_t limit = 64;
  if (out_len < 8) {
    if (out_len) out[0] = '\0';
    return;
  }
  out[w++] = '"';
  for (size_t i = 0; i < len && i < limit && w + 6 < out_len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\') {
      out[w++] = '\\';
      out[w++] = (char)ch;
    } else if (ch < 0x20 || ch >= 0x7f) {
      w += (size_t)snprintf(out + w, out_len - w, "\\x%02x", ch);
    } else {
      out[w++] = (char)ch;
    }
  }
  if (len > limit && w + 5 < out_len) {
    memcpy(out + w, "...", 3);
    w += 3;
  }
  out[w++] = '"';
  out[w] = '\0';
}

static wisp_err failv(pctx *c, const yn *at, wisp_err code, const char *fmt, va_list ap) {
  if (!c->err_buf || c->err_len == 0) return code;
  char reason[512];
  vsnprintf(reason, sizeof(reason), fmt, ap);
  char where[64] = "";
  if (at) snprintf(where, sizeof(where), " [line %u, column %u]", at->line, at->col);
  if (c->path_len) snprintf(c->err_buf, c->err_len, "%s: %s: %s%s", c->desc, c->path, reason, where);
  else snprintf(c->err_buf, c->err_len, "%s: %s%s", c->desc, reason, where);
  return code;
}

/* Writes "<document>: <path>: <reason> [line L, column C]" and returns
 * WISP_ERR_PARSE. */
wisp_err wpp_fail(pctx *c, const yn *at, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wisp_err e = failv(c, at, WISP_ERR_PARSE, fmt, ap);
  va_end(ap);
  return e;
}

/* As fail, for a WISP_POLICY_MAX_* bound. */
wisp_err wpp_fail_big(pctx *c, const yn *at, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wisp_err e = failv(c, at, WISP_ERR_TOO_BIG, fmt, ap);
  va_end(ap);
  return e;
}

/* Field paths: push a key or an index, pop back to a mark. */
size_t wpp_push_key(pctx *c, const char *key, size_t len) {
  size_t mark = c->path_len;
  size_t room = sizeof(c->path) - c->path_len;
  int w = snprintf(c->path + c->path_len, room, "%s%.*s", c->path_len ? "." : "", (int)(len > 64 ? 64 : len), key);
  c->path_len = w < 0 ? c->path_len : (size_t)w >= room ? sizeof(c->path) - 1 : c->path_len + (size_t)w;
  return mark;
}

size_t wpp_push_index(pctx *c, uint32_t i) {
  size_t mark = c->path_len;
  size_t room = sizeof(c->path) - c->path_len;
  int w = snprintf(c->path + c->path_len, room, "[%u]", i);
  c->path_len = w < 0 ? c->path_len : (size_t)w >= room ? sizeof(c->path) - 1 : c->path_len + (size_t)w;
  return mark;
}

void wpp_pop(pctx *c, size_t mark) {
  c->path_len = mark;
  c->path[mark] = '\0';
}

/* ---- node types ------------------------------------------------------- */

bool wpp_eq(const yn *n, const char *s) {
  return n->kind == YN_SCALAR && n->len == strlen(s) && memcmp(n->s, s, n->len) == 0;
}

bool wpp_all_digits(const char *s, size_t len) {
  if (len == 0) return false;
  for (size_t i = 0; i < len; i++)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

/* YAML 1.2 core schema: what a plain scalar is when it is not a string.
 * Returns NULL for a string. */
const char *wpp_plain_type(const yn *n) {
  if (n->kind != YN_SCALAR || !n->plain) return NULL;
  const char *s = n->s;
  size_t len = n->len;
  if (len == 0 || wpp_eq(n, "~") || wpp_eq(n, "null") || wpp_eq(n, "Null") || wpp_eq(n, "NULL")) return "null";
  if (wpp_eq(n, "true") || wpp_eq(n, "True") || wpp_eq(n, "TRUE") || wpp_eq(n, "false") || wpp_eq(n, "False") ||
      wpp_eq(n, "FALSE"))
    return "a boolean";
  size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (wpp_all_digits(s + i, len - i)) return "an integer";
  if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
    size_t k = 2;
    while (k < len && ((s[k] >= '0' && s[k] <= '9') || (s[1] == 'x' && ((s[k] | 0x20) >= 'a' && (s[k] | 0x20) <= 'f'))))
      k++;
    if (k == len) return "an integer";
  }
  /* [-+]? ( . digits | digits [. digits*] ) ([eE] [-+]? digits)? */
  size_t k = i, int_digits = 0, frac_digits = 0;
  while (k < len && s[k] >= '0' && s[k] <= '9') k++, int_digits++;
  if (k < len && s[k] == '.') {
    k++;
    while (k < len && s[k] >= '0' && s[k] <= '9') k++, frac_digits++;
  }
  if (int_digits + frac_digits > 0 && k < len && (s[k] == 'e' || s[k] == 'E')) {
    size_t e = k + 1;
    if (e < len && (s[e] == '-' || s[e] == '+')) e++;
    if (wpp_all_digits(s + e, len - e)) k = len;
  }
  if (int_digits + frac_digits > 0 && k == len) return "a number";
  const char *rest = s + i;
  size_t rlen = len - i;
  if ((rlen == 4 && (!memcmp(rest, ".inf", 4) || !memcmp(rest, ".Inf", 4) || !memcmp(rest, ".INF", 4))) ||
      (i == 0 && (wpp_eq(n, ".nan") || wpp_eq(n, ".NaN") || wpp_eq(n, ".NAN"))))
    return "a number";
  return NULL;
}

const char *wpp_kind_name(const yn *n) {
  if (n->kind == YN_MAP) return "a mapping";
  if (n->kind == YN_SEQ) return "a list";
  const char *t = wpp_plain_type(n);
  return t ? t : "a string";
}

wisp_err wpp_want_map(pctx *c, const yn *n) {
  if (n->kind != YN_MAP) return wpp_fail(c, n, "expected a mapping, got %s", wpp_kind_name(n));
  return WISP_OK;
}

/* A string scalar of 1..|max| bytes with no NUL. */
wisp_err wpp_want_str(pctx *c, const yn *n, size_t max) {
  const char *t = n->kind == YN_SCALAR ? wpp_plain_type(n) : wpp_kind_name(n);
  if (t && n->kind == YN_SCALAR && strcmp(t, "null") != 0)
    return wpp_fail(c, n, "expected a string, got %s (quote it)", t);
  if (t) return wpp_fail(c, n, "expected a string, got %s", t);
  if (n->len == 0) return wpp_fail(c, n, "must not be empty");
  if (n->len > max) return wpp_fail_big(c, n, "longer than %zu bytes", max);
  if (memchr(n->s, '\0', n->len)) return wpp_fail(c, n, "contains a NUL byte");
  return WISP_OK;
}

/* A list of 1..|max| items (0.. when |allow_empty|). */
wisp_err wpp_want_seq(pctx *c, const yn *n, bool allow_empty, size_t max) {
  if (n->kind != YN_SEQ) return wpp_fail(c, n, "expected a list, got %s", wpp_kind_name(n));
  if (n->n == 0 && !allow_empty) return wpp_fail(c, n, "must not be empty (omit the field to match any)");
  if (n->n > max) return wpp_fail_big(c, n, "more than %zu items", max);
  return WISP_OK;
}

/* Hints for fields Istio has and wisp does not. */
static const char *const kHints[][2] = {
    {"source", "write principals/namespaces directly in the from entry"},
    {"operation", "write methods/paths/ports directly in the to entry"},
    {"when", "conditions are not supported"},
    {"mtls", "write spec.mode directly"},
    {"portLevelMtls", "not supported"},
    {"matchLabels", "select by serviceAccount and namespace"},
    {"requestPrincipals", "not supported (no JWT)"},
    {"notRequestPrincipals", "not supported (no JWT)"},
    {"ipBlocks", "not supported"},
    {"notIpBlocks", "not supported"},
    {"remoteIpBlocks", "not supported"},
    {"notRemoteIpBlocks", "not supported"},
    {"hosts", "not supported"},
    {"notHosts", "not supported"},
    {"provider", "CUSTOM actions are not supported"},
    {"targetRef", "select by serviceAccount and namespace"},
    {"targetRefs", "select by serviceAccount and namespace"},
};

/* Checks the keys of map |m| against |known| (|n_known| names): each a
 * string, known, given once. Sets vals[i] to the value of known[i] or
 * NULL. */
wisp_err wpp_map_fields(pctx *c, const yn *m, const char *const *known, size_t n_known, const yn **vals) {
  WISP_GUARD(wpp_want_map(c, m));
  for (size_t i = 0; i < n_known; i++) vals[i] = NULL;
  for (const yn *k = m->first; k; k = k->next->next) {
    const yn *v = k->next;
    if (k->kind != YN_SCALAR) return wpp_fail(c, k, "keys must be strings, got %s", wpp_kind_name(k));
    size_t i = 0;
    while (i < n_known && !wpp_eq(k, known[i])) i++;
    if (i == n_known) {
      size_t mark = wpp_push_key(c, k->s, k->len);
      const char *hint = NULL;
      for (size_t h = 0; h < sizeof(kHints) / sizeof(kHints[0]); h++)
        if (wpp_eq(k, kHints[h][0])) hint = kHints[h][1];
      char list[256] = "";
      size_t w = 0;
      for (size_t j = 0; j < n_known && w < sizeof(list); j++)
        w += (size_t)snprintf(list + w, sizeof(list) - w, "%s%s", j ? ", " : "", known[j]);
      wisp_err e =
          hint ? wpp_fail(c, k, "unknown field (%s)", hint) : wpp_fail(c, k, "unknown field (known: %s)", list);
      wpp_pop(c, mark);
      return e;
    }
    if (vals[i]) {
      size_t mark = wpp_push_key(c, k->s, k->len);
      wisp_err e = wpp_fail(c, k, "duplicate field");
      wpp_pop(c, mark);
      return e;
    }
    vals[i] = v;
  }
  return WISP_OK;
}

/* ---- events -> tree ---------------------------------------------------- */

static yn *new_node(pctx *c, builder *b, yn_kind kind, const yaml_event_t *ev) {
  yn *n = wp_alloc(&c->tree, sizeof(yn));
  n->kind = kind;
  n->line = (uint32_t)ev->start_mark.line + 1;
  n->col = (uint32_t)ev->start_mark.column + 1;
  if (b->depth == 0) {
    b->root = n;
  } else {
    yn *parent = b->stack[b->depth - 1];
    if (parent->last) parent->last->next = n;
    else parent->first = n;
    parent->last = n;
    parent->n++;
  }
  return n;
}

/* Adds one event to the document being built. */
wisp_err wpp_add_event(pctx *c, builder *b, const yaml_event_t *ev) {
  const yaml_char_t *anchor = NULL, *tag = NULL;
  yn fake = {.line = (uint32_t)ev->start_mark.line + 1, .col = (uint32_t)ev->start_mark.column + 1};
  switch (ev->type) {
    case YAML_ALIAS_EVENT:
      anchor = ev->data.alias.anchor;
      break;
    case YAML_SCALAR_EVENT:
      anchor = ev->data.scalar.anchor;
      tag = ev->data.scalar.tag;
      break;
    case YAML_SEQUENCE_START_EVENT:
      anchor = ev->data.sequence_start.anchor;
      tag = ev->data.sequence_start.tag;
      break;
    case YAML_MAPPING_START_EVENT:
      anchor = ev->data.mapping_start.anchor;
      tag = ev->data.mapping_start.tag;
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      if (b->depth > 0) b->depth--;
      return WISP_OK;
    default:
      return WISP_OK;
  }
  if ((anchor || tag) && !b->unsupported) {
    b->unsupported = anchor ? "YAML anchors and aliases are not supported" : "YAML tags are not supported";
    b->unsupported_at = fake;
  }
  if (++b->nodes > WISP_POLICY_MAX_NODES)
    return wpp_fail_big(c, &fake, "more than %u YAML nodes in one document", WISP_POLICY_MAX_NODES);
  if (ev->type == YAML_ALIAS_EVENT) {
    new_node(c, b, YN_SCALAR, ev)->s = ""; /* a stand-in; the document is refused */
    return WISP_OK;
  }
  if (ev->type == YAML_SCALAR_EVENT) {
    yn *n = new_node(c, b, YN_SCALAR, ev);
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    n->s = wp_strndup(&c->tree, (const char *)ev->data.scalar.value, ev->data.scalar.length);
    n->len = ev->data.scalar.length;
    return WISP_OK;
  }
  if (b->depth == WISP_POLICY_MAX_DEPTH)
    return wpp_fail_big(c, &fake, "YAML nested deeper than %d levels", WISP_POLICY_MAX_DEPTH);
  yn *n = new_node(c, b, ev->type == YAML_MAPPING_START_EVENT ? YN_MAP : YN_SEQ, ev);
  b->stack[b->depth++] = n;
  return WISP_OK;
}

wisp_err wpp_syntax_error(pctx *c, const yaml_parser_t *y) {
  snprintf(c->desc, sizeof(c->desc), "document %u", c->doc ? c->doc : 1);
  wpp_pop(c, 0);
  const char *problem = y->problem ? y->problem : "unknown error";
  if (y->error == YAML_MEMORY_ERROR) return wpp_fail(c, NULL, "YAML parser out of memory");
  if (y->error == YAML_READER_ERROR)
    return wpp_fail(c, NULL, "YAML syntax error at byte %zu: %s", y->problem_offset, problem);
  char ctx[192] = "";
  if (y->context)
    snprintf(ctx, sizeof(ctx), " (%s at line %zu, column %zu%s)", y->context, y->context_mark.line + 1,
             y->context_mark.column + 1, strstr(y->context, "alias") ? "; quote values that start with '*'" : "");
  return wpp_fail(c, NULL, "YAML syntax error at line %zu, column %zu: %s%s", y->problem_mark.line + 1,
                  y->problem_mark.column + 1, problem, ctx);
}
