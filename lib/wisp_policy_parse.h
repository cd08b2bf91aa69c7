/* wisp_policy_parse: what the three files of the policy compiler share;
 * private to //lib:policy (as wisp_policy_internal.h is).
 *   wisp_policy_yaml.c   YAML events -> a small node tree per document;
 *                        messages that name the document, field path,
 *                        line and column; strict node type checks
 *   wisp_policy_rules.c  the fields of a rule: names, selectors, patterns,
 *                        methods, ports, from/to
 *   wisp_policy_parse.c  the documents (AuthorizationPolicy,
 *                        PeerAuthentication, Destination) and
 *                        wisp_policy_compile itself
 * Everything here works on one pctx: bytes in, no I/O, no globals. */
#ifndef WISP_POLICY_PARSE_H
#define WISP_POLICY_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "lib/wisp_err.h"
#include "lib/wisp_policy.h"
#include "lib/wisp_policy_internal.h"

#define NAME_MAX_LEN 253

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
  wp_arena tree;  /* the current document's nodes */
  uint32_t doc;   /* 1-based index of the current document */
  char desc[192]; /* "document 2 (AuthorizationPolicy \"x\")" */
  char path[256]; /* field path of what is being checked */
  size_t path_len;
  char *err_buf;
  size_t err_len;
  uint32_t cap_authz, cap_peer, cap_docs, cap_dest_docs, cap_dests;
  seen_slot *seen;
} pctx;

/* ---- wisp_policy_yaml.c: the tree ---------------------------------------- */

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

/* Adds one event to the document being built in |b|. */
wisp_err wpp_add_event(pctx *c, builder *b, const yaml_event_t *ev) WISP_MUST_CHECK;
/* Describes libyaml's error in |y| (the current document) and returns it. */
wisp_err wpp_syntax_error(pctx *c, const yaml_parser_t *y);

/* ---- wisp_policy_yaml.c: messages ------------------------------------------ */

/* Writes |s| quoted and escaped, cut after 64 bytes, for messages. */
void wpp_quote(char *out, size_t out_len, const char *s, size_t len);
/* Writes "<document>: <path>: <reason> [line L, column C]" (|at| NULL: no
 * place) and returns WISP_ERR_PARSE. */
wisp_err wpp_fail(pctx *c, const yn *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* As wpp_fail, for a WISP_POLICY_MAX_* bound: WISP_ERR_TOO_BIG. */
wisp_err wpp_fail_big(pctx *c, const yn *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Field paths: push a key or an index (returns a mark), pop back to a mark. */
size_t wpp_push_key(pctx *c, const char *key, size_t len);
size_t wpp_push_index(pctx *c, uint32_t i);
void wpp_pop(pctx *c, size_t mark);

/* Runs |expr| on the value of field |name| with the path pushed; returns
 * from the caller with its error. */
#define FIELD(c, name, expr)                              \
  do {                                                    \
    size_t mark_ = wpp_push_key((c), name, strlen(name)); \
    wisp_err e_ = (expr);                                 \
    if (e_ != WISP_OK) return e_;                         \
    wpp_pop((c), mark_);                                  \
  } while (0)

/* ---- wisp_policy_yaml.c: node types ------------------------------------------ */

/* |n| is the scalar |s|. */
bool wpp_eq(const yn *n, const char *s);
bool wpp_all_digits(const char *s, size_t len);
/* YAML 1.2 core schema: what a plain scalar is when it is not a string
 * ("null", "a boolean", "an integer", "a number"); NULL for a string. */
const char *wpp_plain_type(const yn *n);
/* "a mapping", "a list", "a string" or wpp_plain_type's answer. */
const char *wpp_kind_name(const yn *n);
wisp_err wpp_want_map(pctx *c, const yn *n);
/* A string scalar of 1..|max| bytes with no NUL. */
wisp_err wpp_want_str(pctx *c, const yn *n, size_t max);
/* A list of 1..|max| items (0.. when |allow_empty|). */
wisp_err wpp_want_seq(pctx *c, const yn *n, bool allow_empty, size_t max);
/* Checks the keys of map |m| against |known| (|n_known| names): each a
 * string, known, given once. Sets vals[i] to the value of known[i] or
 * NULL. */
wisp_err wpp_map_fields(pctx *c, const yn *m, const char *const *known, size_t n_known, const yn **vals);

/* ---- wisp_policy_rules.c ----------------------------------------------------- */

/* A name, namespace or service account: 1-253 characters that can be a
 * SPIFFE ID path segment. */
wisp_err wpp_check_name(pctx *c, const yn *n);
/* A copy of |s| in the policy's arena. */
wp_str wpp_arena_str(pctx *c, const char *s, size_t len);
/* spec.selector: {serviceAccount, namespace}; the namespace defaults to
 * |ns|, the document's. |n| NULL: the whole namespace. */
wisp_err wpp_compile_selector(pctx *c, const yn *n, wp_str ns, wp_selector *out);
/* One entry of spec.rules: {from, to}. */
wisp_err wpp_compile_rule(pctx *c, const yn *n, wp_rule *out);

#endif
