/* wisp_policy_compile: YAML (libyaml events) -> a small tree per document
 * -> strict validation -> the compiled model of wisp_policy_internal.h.
 * Bytes in, policy or message out; no I/O, no globals. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "lib/wisp_mem.h"
#include "lib/wisp_net.h"
#include "lib/wisp_path.h"
#include "lib/wisp_policy.h"
#include "lib/wisp_policy_internal.h"
#include "lib/wisp_spiffe.h"

#define API_VERSION "wisp.dev/v1"
#define KIND_AUTHZ "AuthorizationPolicy"
#define KIND_PEER "PeerAuthentication"
#define KIND_DEST "Destination"
#define SCHEME "spiffe://"
#define NAME_MAX_LEN 253
#define METHOD_MAX_LEN 32
#define SEEN_SLOTS (4 * WISP_POLICY_MAX_DOCS) /* 2 keys a document, half full */

/* ---- a document as a tree -------------------------------------------- */

typedef enum { YN_SCALAR, YN_SEQ, YN_MAP } yn_kind;

typedef struct yn yn;
struct yn {
  yn_kind kind;
  bool plain;         /* a scalar written without quotes: typed as YAML 1.2 core */
  uint32_t line, col; /* 1-based */
  uint32_t n;         /* children; a map's are key, value, key, value... */
  const char *s;      /* a scalar's bytes, NUL-terminated */
  size_t len;
  yn *first, *last, *next;
};

/* Keys already used: policy names and PeerAuthentication scopes. */
typedef struct {
  uint64_t hash;
  const char *key; /* NULL: empty */
  uint32_t doc;
  const char *desc; /* of that document */
} seen_slot;

typedef struct {
  wisp_policy *p;
  wp_arena tree;     /* the current document's nodes */
  uint32_t doc;      /* 1-based index of the current document */
  char desc[192];    /* "document 2 (AuthorizationPolicy \"x\")" */
  char path[256];    /* field path of what is being checked */
  size_t path_len;
  char *err_buf;
  size_t err_len;
  uint32_t cap_authz, cap_peer, cap_docs, cap_dest_docs, cap_dests;
  seen_slot *seen;
} pctx;

/* ---- messages --------------------------------------------------------- */

/* Writes |s| quoted and escaped, cut after 64 bytes, for messages. */
static void quote(char *out, size_t out_len, const char *s, size_t len) {
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
  if (c->path_len)
    snprintf(c->err_buf, c->err_len, "%s: %s: %s%s", c->desc, c->path, reason, where);
  else
    snprintf(c->err_buf, c->err_len, "%s: %s%s", c->desc, reason, where);
  return code;
}

/* Writes "<document>: <path>: <reason> [line L, column C]" and returns
 * WISP_ERR_PARSE. */
static wisp_err fail(pctx *c, const yn *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static wisp_err fail(pctx *c, const yn *at, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wisp_err e = failv(c, at, WISP_ERR_PARSE, fmt, ap);
  va_end(ap);
  return e;
}

/* As fail, for a WISP_POLICY_MAX_* bound. */
static wisp_err fail_big(pctx *c, const yn *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static wisp_err fail_big(pctx *c, const yn *at, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wisp_err e = failv(c, at, WISP_ERR_TOO_BIG, fmt, ap);
  va_end(ap);
  return e;
}

/* Field paths: push a key or an index, pop back to a mark. */
static size_t push_key(pctx *c, const char *key, size_t len) {
  size_t mark = c->path_len;
  size_t room = sizeof(c->path) - c->path_len;
  int w = snprintf(c->path + c->path_len, room, "%s%.*s", c->path_len ? "." : "",
                   (int)(len > 64 ? 64 : len), key);
  c->path_len = w < 0 ? c->path_len : (size_t)w >= room ? sizeof(c->path) - 1 : c->path_len + (size_t)w;
  return mark;
}

static size_t push_index(pctx *c, uint32_t i) {
  size_t mark = c->path_len;
  size_t room = sizeof(c->path) - c->path_len;
  int w = snprintf(c->path + c->path_len, room, "[%u]", i);
  c->path_len = w < 0 ? c->path_len : (size_t)w >= room ? sizeof(c->path) - 1 : c->path_len + (size_t)w;
  return mark;
}

static void pop(pctx *c, size_t mark) {
  c->path_len = mark;
  c->path[mark] = '\0';
}

/* ---- node types ------------------------------------------------------- */

static bool eq(const yn *n, const char *s) {
  return n->kind == YN_SCALAR && n->len == strlen(s) && memcmp(n->s, s, n->len) == 0;
}

static bool all_digits(const char *s, size_t len) {
  if (len == 0) return false;
  for (size_t i = 0; i < len; i++)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

/* YAML 1.2 core schema: what a plain scalar is when it is not a string.
 * Returns NULL for a string. */
static const char *plain_type(const yn *n) {
  if (n->kind != YN_SCALAR || !n->plain) return NULL;
  const char *s = n->s;
  size_t len = n->len;
  if (len == 0 || eq(n, "~") || eq(n, "null") || eq(n, "Null") || eq(n, "NULL")) return "null";
  if (eq(n, "true") || eq(n, "True") || eq(n, "TRUE") || eq(n, "false") || eq(n, "False") ||
      eq(n, "FALSE"))
    return "a boolean";
  size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (all_digits(s + i, len - i)) return "an integer";
  if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
    size_t k = 2;
    while (k < len && ((s[k] >= '0' && s[k] <= '9') || (s[1] == 'x' && ((s[k] | 0x20) >= 'a' &&
                                                                           (s[k] | 0x20) <= 'f'))))
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
    if (all_digits(s + e, len - e)) k = len;
  }
  if (int_digits + frac_digits > 0 && k == len) return "a number";
  const char *rest = s + i;
  size_t rlen = len - i;
  if ((rlen == 4 && (!memcmp(rest, ".inf", 4) || !memcmp(rest, ".Inf", 4) || !memcmp(rest, ".INF", 4))) ||
      (i == 0 && (eq(n, ".nan") || eq(n, ".NaN") || eq(n, ".NAN"))))
    return "a number";
  return NULL;
}

static const char *kind_name(const yn *n) {
  if (n->kind == YN_MAP) return "a mapping";
  if (n->kind == YN_SEQ) return "a list";
  const char *t = plain_type(n);
  return t ? t : "a string";
}

static wisp_err want_map(pctx *c, const yn *n) {
  if (n->kind != YN_MAP) return fail(c, n, "expected a mapping, got %s", kind_name(n));
  return WISP_OK;
}

/* A string scalar of 1..|max| bytes with no NUL. */
static wisp_err want_str(pctx *c, const yn *n, size_t max) {
  const char *t = n->kind == YN_SCALAR ? plain_type(n) : kind_name(n);
  if (t && n->kind == YN_SCALAR && strcmp(t, "null") != 0)
    return fail(c, n, "expected a string, got %s (quote it)", t);
  if (t) return fail(c, n, "expected a string, got %s", t);
  if (n->len == 0) return fail(c, n, "must not be empty");
  if (n->len > max) return fail_big(c, n, "longer than %zu bytes", max);
  if (memchr(n->s, '\0', n->len)) return fail(c, n, "contains a NUL byte");
  return WISP_OK;
}

/* A list of 1..|max| items (0.. when |allow_empty|). */
static wisp_err want_seq(pctx *c, const yn *n, bool allow_empty, size_t max) {
  if (n->kind != YN_SEQ) return fail(c, n, "expected a list, got %s", kind_name(n));
  if (n->n == 0 && !allow_empty) return fail(c, n, "must not be empty (omit the field to match any)");
  if (n->n > max) return fail_big(c, n, "more than %zu items", max);
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
static wisp_err map_fields(pctx *c, const yn *m, const char *const *known, size_t n_known,
                           const yn **vals) {
  WISP_GUARD(want_map(c, m));
  for (size_t i = 0; i < n_known; i++) vals[i] = NULL;
  for (const yn *k = m->first; k; k = k->next->next) {
    const yn *v = k->next;
    if (k->kind != YN_SCALAR) return fail(c, k, "keys must be strings, got %s", kind_name(k));
    size_t i = 0;
    while (i < n_known && !eq(k, known[i])) i++;
    if (i == n_known) {
      size_t mark = push_key(c, k->s, k->len);
      const char *hint = NULL;
      for (size_t h = 0; h < sizeof(kHints) / sizeof(kHints[0]); h++)
        if (eq(k, kHints[h][0])) hint = kHints[h][1];
      char list[256] = "";
      size_t w = 0;
      for (size_t j = 0; j < n_known && w < sizeof(list); j++)
        w += (size_t)snprintf(list + w, sizeof(list) - w, "%s%s", j ? ", " : "", known[j]);
      wisp_err e = hint ? fail(c, k, "unknown field (%s)", hint)
                        : fail(c, k, "unknown field (known: %s)", list);
      pop(c, mark);
      return e;
    }
    if (vals[i]) {
      size_t mark = push_key(c, k->s, k->len);
      wisp_err e = fail(c, k, "duplicate field");
      pop(c, mark);
      return e;
    }
    vals[i] = v;
  }
  return WISP_OK;
}

/* ---- names and selectors --------------------------------------------- */

static bool seg_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         ch == '.' || ch == '-' || ch == '_';
}

/* Names, namespaces and service accounts are compared with SPIFFE ID path
 * segments, so they must be able to be one. */
static wisp_err check_name(pctx *c, const yn *n) {
  WISP_GUARD(want_str(c, n, NAME_MAX_LEN));
  bool ok = !(n->len == 1 && n->s[0] == '.') && !(n->len == 2 && n->s[0] == '.' && n->s[1] == '.');
  for (size_t i = 0; ok && i < n->len; i++) ok = seg_char(n->s[i]);
  if (!ok) {
    char q[96];
    quote(q, sizeof(q), n->s, n->len);
    return fail(c, n, "%s is not a valid name (1-253 characters of A-Z a-z 0-9 . - _)", q);
  }
  return WISP_OK;
}

static wp_str arena_str(pctx *c, const char *s, size_t len) {
  wp_str r = {wp_strndup(&c->p->arena, s, len), (uint32_t)len};
  return r;
}

/* spec.selector: {serviceAccount, namespace}; the namespace defaults to
 * |ns|, the document's. */
static wisp_err compile_selector(pctx *c, const yn *n, wp_str ns, wp_selector *out) {
  out->ns = ns;
  out->sa.s = NULL;
  out->sa.len = 0;
  if (!n) return WISP_OK;
  static const char *const kFields[] = {"serviceAccount", "namespace"};
  const yn *v[2];
  WISP_GUARD(map_fields(c, n, kFields, 2, v));
  for (int i = 0; i < 2; i++) {
    if (!v[i]) continue;
    size_t mark = push_key(c, kFields[i], strlen(kFields[i]));
    wisp_err e = check_name(c, v[i]);
    pop(c, mark);
    WISP_GUARD(e);
    if (i == 0) out->sa = arena_str(c, v[i]->s, v[i]->len);
    else out->ns = arena_str(c, v[i]->s, v[i]->len);
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
static const char *check_body(pat_kind kind, char shape, const char *body, size_t len,
                              char *why, size_t why_len) {
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
    quote(q, sizeof(q), pat, w);
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
  WISP_GUARD(want_seq(c, list, false, WISP_POLICY_MAX_LIST));
  static const char *const kWhat[] = {"a principal pattern", "a namespace pattern",
                                      "a path pattern"};
  wp_str *exact = wp_alloc(&c->p->arena, list->n * sizeof(wp_str));
  wp_str *prefix = wp_alloc(&c->p->arena, list->n * sizeof(wp_str));
  wp_str *suffix = wp_alloc(&c->p->arena, list->n * sizeof(wp_str));
  uint32_t i = 0;
  memset(out, 0, sizeof(*out));
  for (const yn *it = list->first; it; it = it->next, i++) {
    size_t mark = push_index(c, i);
    wisp_err e = want_str(c, it, kind == PAT_PRINCIPAL ? WISP_SPIFFE_MAX : WISP_POLICY_MAX_STR);
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
      pop(c, mark);
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
    if (star && memchr(body, '*', blen))
      why = "'*' may only be the whole pattern, its first or its last character";
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
      quote(q, sizeof(q), s, len);
      e = fail(c, it, "%s can never match a request: %s", q, whybuf);
      pop(c, mark);
      return e;
    }
    if (why) {
      free(norm);
      char q[96];
      quote(q, sizeof(q), s, len);
      e = fail(c, it, "%s is not %s: %s", q, kWhat[kind], why);
      pop(c, mark);
      return e;
    }
    wp_str v = arena_str(c, body, blen);
    free(norm);
    if (shape == 'e') exact[out->n_exact++] = v;
    else if (shape == 'p') prefix[out->n_prefix++] = v;
    else suffix[out->n_suffix++] = v;
    pop(c, mark);
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
    {"GET", WP_GET},         {"HEAD", WP_HEAD},       {"POST", WP_POST},
    {"PUT", WP_PUT},         {"DELETE", WP_DELETE},   {"CONNECT", WP_CONNECT},
    {"OPTIONS", WP_OPTIONS}, {"TRACE", WP_TRACE},     {"PATCH", WP_PATCH},
};

static wisp_err compile_methods(pctx *c, const yn *list, wp_methodset *out) {
  WISP_GUARD(want_seq(c, list, false, WISP_POLICY_MAX_LIST));
  wp_str *other = wp_alloc(&c->p->arena, list->n * sizeof(wp_str));
  uint32_t i = 0;
  memset(out, 0, sizeof(*out));
  for (const yn *it = list->first; it; it = it->next, i++) {
    size_t mark = push_index(c, i);
    wisp_err e = want_str(c, it, WISP_POLICY_MAX_STR);
    if (e != WISP_OK) return e;
    const char *why = NULL;
    char hint[64] = "";
    if (it->len > METHOD_MAX_LEN) why = "longer than 32 bytes";
    if (!why && eq(it, "*")) why = "omit methods to match any";
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
      quote(q, sizeof(q), it->s, it->len);
      e = fail(c, it, "%s is not a method (%s)", q, why);
      pop(c, mark);
      return e;
    }
    uint32_t bit = 0;
    for (size_t k = 0; k < sizeof(kMethods) / sizeof(kMethods[0]); k++)
      if (eq(it, kMethods[k].name)) bit = kMethods[k].bit;
    if (bit) out->mask |= bit;
    else other[out->n_other++] = arena_str(c, it->s, it->len);
    pop(c, mark);
  }
  out->n_other = sort_unique(other, out->n_other);
  out->other = other;
  return WISP_OK;
}

static int cmp_u16(const void *a, const void *b) {
  return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static wisp_err compile_ports(pctx *c, const yn *list, wp_portset *out) {
  WISP_GUARD(want_seq(c, list, false, WISP_POLICY_MAX_LIST));
  uint16_t *ports = wp_alloc(&c->p->arena, list->n * sizeof(uint16_t));
  uint32_t i = 0;
  for (const yn *it = list->first; it; it = it->next, i++) {
    size_t mark = push_index(c, i);
    unsigned long v = 0;
    bool ok = it->kind == YN_SCALAR && all_digits(it->s, it->len) && it->len <= 5;
    if (ok) v = strtoul(it->s, NULL, 10);
    if (!ok || v < 1 || v > 65535) {
      wisp_err e;
      if (it->kind != YN_SCALAR) {
        e = fail(c, it, "expected a port number, got %s", kind_name(it));
      } else if (it->plain) {
        char q[96];
        quote(q, sizeof(q), it->s, it->len);
        /* A plain number reads better bare: 70000, not "70000". */
        e = plain_type(it) && strcmp(plain_type(it), "an integer") == 0 && it->len <= 64
                ? fail(c, it, "%s is not a port (1..65535)", it->s)
                : fail(c, it, "%s is not a port (1..65535)", q);
      } else {
        char q[96];
        quote(q, sizeof(q), it->s, it->len);
        e = fail(c, it, "%s is not a port (1..65535)", q);
      }
      pop(c, mark);
      return e;
    }
    ports[i] = (uint16_t)v;
    pop(c, mark);
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

/* Runs |fn| on the value of field |name| with the path pushed. */
#define FIELD(c, name, expr)                    \
  do {                                          \
    size_t mark_ = push_key((c), name, strlen(name)); \
    wisp_err e_ = (expr);                       \
    if (e_ != WISP_OK) return e_;               \
    pop((c), mark_);                            \
  } while (0)

static wisp_err compile_from(pctx *c, const yn *n, wp_from *out) {
  static const char *const kFields[] = {"principals", "notPrincipals", "namespaces",
                                        "notNamespaces"};
  const yn *v[4];
  WISP_GUARD(map_fields(c, n, kFields, 4, v));
  wp_strset *sets[4] = {&out->principals, &out->not_principals, &out->namespaces,
                        &out->not_namespaces};
  for (uint32_t i = 0; i < 4; i++) {
    if (!v[i]) continue;
    out->fields |= 1u << i;
    FIELD(c, kFields[i], compile_patterns(c, v[i], i < 2 ? PAT_PRINCIPAL : PAT_NAMESPACE, sets[i]));
  }
  if (!out->fields)
    return fail(c, n, "empty entry (give principals, notPrincipals, namespaces or notNamespaces)");
  return WISP_OK;
}

static wisp_err compile_to(pctx *c, const yn *n, wp_to *out) {
  static const char *const kFields[] = {"methods", "notMethods", "paths",
                                        "notPaths", "ports",      "notPorts"};
  const yn *v[6];
  WISP_GUARD(map_fields(c, n, kFields, 6, v));
  for (uint32_t i = 0; i < 6; i++)
    if (v[i]) out->fields |= 1u << i;
  if (v[0]) FIELD(c, kFields[0], compile_methods(c, v[0], &out->methods));
  if (v[1]) FIELD(c, kFields[1], compile_methods(c, v[1], &out->not_methods));
  if (v[2]) FIELD(c, kFields[2], compile_patterns(c, v[2], PAT_PATH, &out->paths));
  if (v[3]) FIELD(c, kFields[3], compile_patterns(c, v[3], PAT_PATH, &out->not_paths));
  if (v[4]) FIELD(c, kFields[4], compile_ports(c, v[4], &out->ports));
  if (v[5]) FIELD(c, kFields[5], compile_ports(c, v[5], &out->not_ports));
  if (!out->fields)
    return fail(c, n, "empty entry (give methods, notMethods, paths, notPaths, ports or notPorts)");
  return WISP_OK;
}

static wisp_err compile_rule(pctx *c, const yn *n, wp_rule *out) {
  static const char *const kFields[] = {"from", "to"};
  const yn *v[2];
  WISP_GUARD(map_fields(c, n, kFields, 2, v));
  if (v[0]) {
    size_t mark = push_key(c, "from", 4);
    WISP_GUARD(want_seq(c, v[0], false, WISP_POLICY_MAX_LIST));
    wp_from *from = wp_alloc(&c->p->arena, v[0]->n * sizeof(wp_from));
    uint32_t i = 0;
    for (const yn *it = v[0]->first; it; it = it->next, i++) {
      size_t m = push_index(c, i);
      WISP_GUARD(compile_from(c, it, &from[i]));
      pop(c, m);
    }
    out->from = from;
    out->n_from = v[0]->n;
    pop(c, mark);
  }
  if (v[1]) {
    size_t mark = push_key(c, "to", 2);
    WISP_GUARD(want_seq(c, v[1], false, WISP_POLICY_MAX_LIST));
    wp_to *to = wp_alloc(&c->p->arena, v[1]->n * sizeof(wp_to));
    uint32_t i = 0;
    for (const yn *it = v[1]->first; it; it = it->next, i++) {
      size_t m = push_index(c, i);
      WISP_GUARD(compile_to(c, it, &to[i]));
      pop(c, m);
    }
    out->to = to;
    out->n_to = v[1]->n;
    pop(c, mark);
  }
  return WISP_OK;
}

/* ---- documents ---------------------------------------------------------- */

/* Remembers |key| for the current document; if it is already there, sets
 * |*doc| and |*desc| to the document that has it and returns false. */
static bool seen_add(pctx *c, const char *key, uint32_t *doc, const char **desc) {
  size_t len = strlen(key);
  uint64_t h = wp_hash(key, len);
  for (size_t i = h & (SEEN_SLOTS - 1);; i = (i + 1) & (SEEN_SLOTS - 1)) {
    seen_slot *s = &c->seen[i];
    if (!s->key) {
      s->hash = h;
      s->key = wp_strndup(&c->p->arena, key, len);
      s->doc = c->doc;
      s->desc = wp_strndup(&c->p->arena, c->desc, strlen(c->desc));
      return true;
    }
    if (s->hash == h && strcmp(s->key, key) == 0) {
      *doc = s->doc;
      *desc = s->desc;
      return false;
    }
  }
}

/* "document N (Kind \"name\")", from whatever of kind and metadata.name
 * the document has, before it is validated. */
static void describe(pctx *c, const yn *root) {
  const yn *kind = NULL, *name = NULL;
  for (const yn *k = root->first; k; k = k->next->next) {
    if (eq(k, "kind") && k->next->kind == YN_SCALAR) kind = k->next;
    if (eq(k, "metadata") && k->next->kind == YN_MAP)
      for (const yn *m = k->next->first; m; m = m->next->next)
        if (eq(m, "name") && m->next->kind == YN_SCALAR && m->next->len) name = m->next;
  }
  if (!kind || !(eq(kind, KIND_AUTHZ) || eq(kind, KIND_PEER) || eq(kind, KIND_DEST))) {
    snprintf(c->desc, sizeof(c->desc), "document %u", c->doc);
    return;
  }
  if (!name) {
    snprintf(c->desc, sizeof(c->desc), "document %u (%s)", c->doc, kind->s);
    return;
  }
  char q[96];
  quote(q, sizeof(q), name->s, name->len);
  snprintf(c->desc, sizeof(c->desc), "document %u (%s %s)", c->doc, kind->s, q);
}

static void *grow(void *v, uint32_t n, uint32_t *cap, size_t size) {
  if (n < *cap) return v;
  *cap = *cap ? *cap * 2 : 8;
  return wisp_realloc(v, (size_t)*cap * size);
}

static wisp_err compile_authz(pctx *c, const yn *spec, const char *qname, wp_str ns) {
  static const char *const kFields[] = {"selector", "action", "rules"};
  const yn *v[3];
  wp_authz a;
  memset(&a, 0, sizeof(a));
  a.qname = qname;
  a.doc = c->doc;
  size_t mark = push_key(c, "spec", 4);
  WISP_GUARD(map_fields(c, spec, kFields, 3, v));
  FIELD(c, "selector", compile_selector(c, v[0], ns, &a.sel));
  if (v[1]) {
    size_t m = push_key(c, "action", 6);
    WISP_GUARD(want_str(c, v[1], WISP_POLICY_MAX_STR));
    if (eq(v[1], "DENY")) {
      a.deny = true;
    } else if (!eq(v[1], "ALLOW")) {
      char q[96];
      quote(q, sizeof(q), v[1]->s, v[1]->len);
      bool istio = eq(v[1], "AUDIT") || eq(v[1], "CUSTOM");
      return fail(c, v[1], "%s is %s (ALLOW or DENY)", q, istio ? "not supported" : "not an action");
    }
    pop(c, m);
  }
  if (v[2]) {
    size_t m = push_key(c, "rules", 5);
    WISP_GUARD(want_seq(c, v[2], true, WISP_POLICY_MAX_RULES));
    if (v[2]->n > WISP_POLICY_MAX_RULES - c->p->n_rules)
      return fail_big(c, v[2], "more than %u rules in all", WISP_POLICY_MAX_RULES);
    wp_rule *rules = wp_alloc(&c->p->arena, v[2]->n * sizeof(wp_rule));
    uint32_t i = 0;
    for (const yn *it = v[2]->first; it; it = it->next, i++) {
      size_t mi = push_index(c, i);
      WISP_GUARD(compile_rule(c, it, &rules[i]));
      pop(c, mi);
    }
    a.rules = rules;
    a.n_rules = v[2]->n;
    pop(c, m);
  }
  pop(c, mark);
  wisp_policy *p = c->p;
  p->authz = grow(p->authz, p->n_authz, &c->cap_authz, sizeof(wp_authz));
  p->docs = grow(p->docs, p->n_docs, &c->cap_docs, sizeof(wp_docref));
  p->docs[p->n_docs].kind = WP_DOC_AUTHZ;
  p->docs[p->n_docs++].index = p->n_authz;
  p->authz[p->n_authz++] = a;
  p->n_rules += a.n_rules;
  if (a.deny) p->n_deny++;
  else p->n_allow++;
  return WISP_OK;
}

static wisp_err compile_peer(pctx *c, const yn *spec, const char *qname, wp_str ns) {
  static const char *const kFields[] = {"selector", "mode"};
  const yn *v[2];
  wp_peer pa;
  memset(&pa, 0, sizeof(pa));
  pa.qname = qname;
  pa.doc = c->doc;
  size_t mark = push_key(c, "spec", 4);
  WISP_GUARD(map_fields(c, spec, kFields, 2, v));
  FIELD(c, "selector", compile_selector(c, v[0], ns, &pa.sel));
  if (!v[1]) return fail(c, spec, "mode: required (STRICT or PERMISSIVE)");
  size_t m = push_key(c, "mode", 4);
  WISP_GUARD(want_str(c, v[1], WISP_POLICY_MAX_STR));
  if (eq(v[1], "STRICT")) {
    pa.mode = WISP_MTLS_STRICT;
  } else if (eq(v[1], "PERMISSIVE")) {
    pa.mode = WISP_MTLS_PERMISSIVE;
  } else {
    char q[96];
    quote(q, sizeof(q), v[1]->s, v[1]->len);
    bool istio = eq(v[1], "DISABLE") || eq(v[1], "UNSET");
    return fail(c, v[1], "%s is %s (STRICT or PERMISSIVE)", q, istio ? "not supported" : "not a mode");
  }
  pop(c, m);
  /* One PeerAuthentication per scope: which would win is not obvious. */
  char key[2 * NAME_MAX_LEN + 8];
  snprintf(key, sizeof(key), "S:%s/%s", pa.sel.ns.s, pa.sel.sa.s ? pa.sel.sa.s : "");
  uint32_t other;
  const char *other_desc;
  if (!seen_add(c, key, &other, &other_desc)) {
    if (v[0]) push_key(c, "selector", 8);
    return fail(c, v[0] ? v[0] : spec,
                "selects the same workloads as %s; keep one PeerAuthentication per scope",
                other_desc);
  }
  pop(c, mark);
  wisp_policy *p = c->p;
  p->peer = grow(p->peer, p->n_peer, &c->cap_peer, sizeof(wp_peer));
  p->docs = grow(p->docs, p->n_docs, &c->cap_docs, sizeof(wp_docref));
  p->docs[p->n_docs].kind = WP_DOC_PEER;
  p->docs[p->n_docs++].index = p->n_peer;
  p->peer[p->n_peer++] = pa;
  return WISP_OK;
}

/* spec.spiffeId of a Destination: one exact SPIFFE ID. */
static wisp_err compile_dest_id(pctx *c, const yn *n, const char **out) {
  WISP_GUARD(want_str(c, n, WISP_SPIFFE_MAX));
  wisp_spiffe_id id;
  char reason[160];
  if (wisp_spiffe_parse(&id, n->s, n->len, reason, sizeof(reason)) != WISP_OK) {
    char q[96];
    quote(q, sizeof(q), n->s, n->len);
    return fail(c, n, "%s is not a SPIFFE ID (%s)", q, reason);
  }
  *out = arena_str(c, n->s, n->len).s;
  return WISP_OK;
}

/* spec.addresses of a Destination: IP:PORT or IP, each kept canonical. */
static wisp_err compile_dest_addrs(pctx *c, const yn *list, wp_dest *d) {
  WISP_GUARD(want_seq(c, list, false, WISP_POLICY_MAX_LIST));
  wisp_policy *p = c->p;
  if (list->n > WISP_POLICY_MAX_DESTINATIONS - p->n_dests)
    return fail_big(c, list, "more than %u destination addresses in all", WISP_POLICY_MAX_DESTINATIONS);
  d->first = p->n_dests;
  uint32_t i = 0;
  for (const yn *it = list->first; it; it = it->next, i++) {
    size_t mark = push_index(c, i);
    WISP_GUARD(want_str(c, it, 64));
    wisp_addr a;
    if (wisp_addr_parse_dest(&a, it->s) != WISP_OK) {
      char q[96];
      quote(q, sizeof(q), it->s, it->len);
      return fail(c, it, "%s is not IP:PORT or an IP (literal addresses only, port 1..65535)", q);
    }
    char canon[64];
    wisp_addr_format_dest(&a, canon, sizeof(canon));
    p->dests = grow(p->dests, p->n_dests, &c->cap_dests, sizeof(wp_dest_addr));
    wp_dest_addr *e = &p->dests[p->n_dests++];
    e->pub.address = arena_str(c, canon, strlen(canon)).s;
    e->pub.spiffe_id = d->spiffe_id;
    e->dest = p->n_dest_docs;
    e->item = i;
    e->line = it->line;
    e->col = it->col;
    pop(c, mark);
  }
  d->n_addrs = list->n;
  return WISP_OK;
}

static wisp_err compile_dest(pctx *c, const yn *spec, const char *qname) {
  static const char *const kFields[] = {"addresses", "spiffeId"};
  const yn *v[2];
  wp_dest d;
  memset(&d, 0, sizeof(d));
  d.qname = qname;
  d.doc = c->doc;
  size_t mark = push_key(c, "spec", 4);
  WISP_GUARD(map_fields(c, spec, kFields, 2, v));
  if (!v[1]) return fail(c, spec, "spiffeId: required (the identity the sidecar at these addresses presents)");
  if (!v[0]) return fail(c, spec, "addresses: required (IP:PORT or IP, as the app dials them)");
  FIELD(c, "spiffeId", compile_dest_id(c, v[1], &d.spiffe_id));
  FIELD(c, "addresses", compile_dest_addrs(c, v[0], &d));
  pop(c, mark);
  wisp_policy *p = c->p;
  p->dest_docs = grow(p->dest_docs, p->n_dest_docs, &c->cap_dest_docs, sizeof(wp_dest));
  p->docs = grow(p->docs, p->n_docs, &c->cap_docs, sizeof(wp_docref));
  p->docs[p->n_docs].kind = WP_DOC_DEST;
  p->docs[p->n_docs++].index = p->n_dest_docs;
  p->dest_docs[p->n_dest_docs++] = d;
  return WISP_OK;
}

static int cmp_dest_addr(const void *a, const void *b) {
  const wp_dest_addr *x = a, *y = b;
  int r = strcmp(x->pub.address, y->pub.address);
  if (r) return r;
  return x->dest != y->dest ? (x->dest < y->dest ? -1 : 1) : (x->item < y->item ? -1 : x->item > y->item);
}

/* Sorts the map by address and refuses an address given twice, naming the
 * later place and the earlier one. */
static wisp_err finish_dests(pctx *c) {
  wisp_policy *p = c->p;
  if (!p->n_dests) return WISP_OK;
  qsort(p->dests, p->n_dests, sizeof(wp_dest_addr), cmp_dest_addr);
  for (uint32_t i = 1; i < p->n_dests; i++) {
    const wp_dest_addr *first = &p->dests[i - 1], *again = &p->dests[i];
    if (strcmp(first->pub.address, again->pub.address) != 0) continue;
    const wp_dest *d1 = &p->dest_docs[first->dest], *d2 = &p->dest_docs[again->dest];
    c->doc = d2->doc;
    snprintf(c->desc, sizeof(c->desc), "document %u (" KIND_DEST " \"%s\")", d2->doc, strchr(d2->qname, '/') + 1);
    pop(c, 0);
    push_key(c, "spec.addresses", 14);
    push_index(c, again->item);
    yn at = {.line = again->line, .col = again->col};
    return fail(c, &at, "%s is already mapped by document %u (" KIND_DEST " %s, to %s)", again->pub.address,
                d1->doc, d1->qname, d1->spiffe_id);
  }
  p->dest_list = wisp_calloc(p->n_dests, sizeof(wisp_policy_destination));
  for (uint32_t i = 0; i < p->n_dests; i++) p->dest_list[i] = p->dests[i].pub;
  return WISP_OK;
}

static wisp_err compile_doc(pctx *c, const yn *root) {
  snprintf(c->desc, sizeof(c->desc), "document %u", c->doc);
  pop(c, 0);
  if (root->kind == YN_SCALAR && plain_type(root) && strcmp(plain_type(root), "null") == 0)
    return WISP_OK; /* an empty document */
  if (root->kind != YN_MAP)
    return fail(c, root, "expected a mapping with apiVersion, kind, metadata and spec, got %s",
                kind_name(root));
  describe(c, root);
  static const char *const kFields[] = {"apiVersion", "kind", "metadata", "spec"};
  const yn *v[4];
  WISP_GUARD(map_fields(c, root, kFields, 4, v));
  for (int i = 0; i < 4; i++)
    if (!v[i]) {
      size_t mark = push_key(c, kFields[i], strlen(kFields[i]));
      wisp_err e = fail(c, root, "required%s", i == 3 ? " (spec: {} governs with no rules)" : "");
      pop(c, mark);
      return e;
    }
  char q[96];
  size_t mark = push_key(c, "apiVersion", 10);
  WISP_GUARD(want_str(c, v[0], WISP_POLICY_MAX_STR));
  if (!eq(v[0], API_VERSION)) {
    quote(q, sizeof(q), v[0]->s, v[0]->len);
    return fail(c, v[0], "%s is not supported (want " API_VERSION ")", q);
  }
  pop(c, mark);
  mark = push_key(c, "kind", 4);
  WISP_GUARD(want_str(c, v[1], WISP_POLICY_MAX_STR));
  bool peer = eq(v[1], KIND_PEER), dest = eq(v[1], KIND_DEST);
  if (!peer && !dest && !eq(v[1], KIND_AUTHZ)) {
    quote(q, sizeof(q), v[1]->s, v[1]->len);
    return fail(c, v[1], "%s is not a known kind (" KIND_AUTHZ ", " KIND_PEER " or " KIND_DEST ")", q);
  }
  pop(c, mark);

  static const char *const kMeta[] = {"name", "namespace", "labels", "annotations"};
  const yn *m[4];
  mark = push_key(c, "metadata", 8);
  WISP_GUARD(map_fields(c, v[2], kMeta, 4, m));
  if (!m[0]) return fail(c, v[2], "name: required");
  FIELD(c, "name", check_name(c, m[0]));
  if (m[1]) FIELD(c, "namespace", check_name(c, m[1]));
  for (int i = 2; i < 4; i++) {
    if (!m[i]) continue;
    size_t mk = push_key(c, kMeta[i], strlen(kMeta[i]));
    WISP_GUARD(want_map(c, m[i]));
    for (const yn *k = m[i]->first; k; k = k->next->next) {
      size_t mv = push_key(c, k->s, k->len);
      WISP_GUARD(want_str(c, k, WISP_POLICY_MAX_STR));
      if (k->next->kind != YN_SCALAR || plain_type(k->next))
        WISP_GUARD(want_str(c, k->next, WISP_POLICY_MAX_STR));
      pop(c, mv);
    }
    pop(c, mk);
  }
  pop(c, mark);

  wp_str ns = m[1] ? arena_str(c, m[1]->s, m[1]->len) : arena_str(c, "default", 7);
  char qname[2 * NAME_MAX_LEN + 8];
  snprintf(qname, sizeof(qname), "%s/%.*s", ns.s, (int)m[0]->len, m[0]->s);
  char key[sizeof(qname) + 2];
  const char *kind = peer ? KIND_PEER : dest ? KIND_DEST : KIND_AUTHZ;
  snprintf(key, sizeof(key), "%c:%s", kind[0], qname);
  uint32_t other;
  const char *other_desc;
  if (!seen_add(c, key, &other, &other_desc)) {
    mark = push_key(c, "metadata.name", 13);
    wisp_err e = fail(c, m[0], "%s %s is already defined by %s", kind, qname, other_desc);
    pop(c, mark);
    return e;
  }
  const char *qn = wp_strndup(&c->p->arena, qname, strlen(qname));
  if (dest) return compile_dest(c, v[3], qn);
  return peer ? compile_peer(c, v[3], qn, ns) : compile_authz(c, v[3], qn, ns);
}

/* ---- events -> tree ---------------------------------------------------- */

typedef struct {
  yn *stack[WISP_POLICY_MAX_DEPTH];
  int depth;
  yn *root;
  size_t nodes;
  /* An anchor, alias or tag: reported when the document ends, so that the
   * message can name it. */
  const char *unsupported;
  yn unsupported_at;
} builder;

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
static wisp_err add_event(pctx *c, builder *b, const yaml_event_t *ev) {
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
    b->unsupported = anchor ? "YAML anchors and aliases are not supported"
                            : "YAML tags are not supported";
    b->unsupported_at = fake;
  }
  if (++b->nodes > WISP_POLICY_MAX_NODES)
    return fail_big(c, &fake, "more than %u YAML nodes in one document", WISP_POLICY_MAX_NODES);
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
    return fail_big(c, &fake, "YAML nested deeper than %d levels", WISP_POLICY_MAX_DEPTH);
  yn *n = new_node(c, b, ev->type == YAML_MAPPING_START_EVENT ? YN_MAP : YN_SEQ, ev);
  b->stack[b->depth++] = n;
  return WISP_OK;
}

static wisp_err syntax_error(pctx *c, const yaml_parser_t *y) {
  snprintf(c->desc, sizeof(c->desc), "document %u", c->doc ? c->doc : 1);
  pop(c, 0);
  const char *problem = y->problem ? y->problem : "unknown error";
  if (y->error == YAML_MEMORY_ERROR) return fail(c, NULL, "YAML parser out of memory");
  if (y->error == YAML_READER_ERROR)
    return fail(c, NULL, "YAML syntax error at byte %zu: %s", y->problem_offset, problem);
  char ctx[192] = "";
  if (y->context)
    snprintf(ctx, sizeof(ctx), " (%s at line %zu, column %zu%s)", y->context,
             y->context_mark.line + 1, y->context_mark.column + 1,
             strstr(y->context, "alias") ? "; quote values that start with '*'" : "");
  return fail(c, NULL, "YAML syntax error at line %zu, column %zu: %s%s", y->problem_mark.line + 1,
              y->problem_mark.column + 1, problem, ctx);
}

/* Reads the stream event by event; each document is checked and compiled
 * as soon as it ends, then its tree is freed. */
static wisp_err run(pctx *c, yaml_parser_t *y) {
  builder b;
  memset(&b, 0, sizeof(b));
  for (;;) {
    yaml_event_t ev;
    if (!yaml_parser_parse(y, &ev)) return syntax_error(c, y);
    wisp_err e = WISP_OK;
    switch (ev.type) {
      case YAML_STREAM_END_EVENT:
        yaml_event_delete(&ev);
        return WISP_OK;
      case YAML_DOCUMENT_START_EVENT:
        memset(&b, 0, sizeof(b));
        c->doc++;
        snprintf(c->desc, sizeof(c->desc), "document %u", c->doc);
        if (c->doc > WISP_POLICY_MAX_DOCS)
          e = fail_big(c, NULL, "more than %u documents", WISP_POLICY_MAX_DOCS);
        break;
      case YAML_DOCUMENT_END_EVENT:
        if (b.unsupported) {
          if (b.root->kind == YN_MAP) describe(c, b.root);
          e = fail(c, &b.unsupported_at, "%s", b.unsupported);
        } else if (b.root) {
          e = compile_doc(c, b.root);
        }
        wp_arena_free(&c->tree);
        memset(&b, 0, sizeof(b));
        break;
      default:
        e = add_event(c, &b, &ev);
        break;
    }
    yaml_event_delete(&ev);
    if (e != WISP_OK) return e;
  }
}

wisp_err wisp_policy_compile(wisp_policy **out, const char *yaml, size_t len, char *err_buf,
                             size_t err_len) {
  pctx c;
  memset(&c, 0, sizeof(c));
  c.err_buf = err_buf;
  c.err_len = err_len;
  if (err_buf && err_len) err_buf[0] = '\0';
  if (len > WISP_POLICY_MAX_INPUT) {
    snprintf(c.desc, sizeof(c.desc), "policy");
    return fail_big(&c, NULL, "%zu bytes, more than the %u allowed", len, WISP_POLICY_MAX_INPUT);
  }
  c.p = wisp_calloc(1, sizeof(wisp_policy));
  atomic_init(&c.p->refs, 1);
  c.seen = wisp_calloc(SEEN_SLOTS, sizeof(seen_slot));
  yaml_parser_t y;
  wisp_err e = WISP_ERR_NOMEM;
  if (yaml_parser_initialize(&y)) {
    yaml_parser_set_input_string(&y, (const unsigned char *)(len ? yaml : ""), len);
    e = run(&c, &y);
    yaml_parser_delete(&y);
  }
  if (e == WISP_OK) e = finish_dests(&c);
  wp_arena_free(&c.tree);
  free(c.seen);
  if (e != WISP_OK) {
    wisp_policy_free(c.p);
    return e;
  }
  *out = c.p;
  return WISP_OK;
}
