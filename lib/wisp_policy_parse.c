/* wisp_policy_compile: YAML (libyaml events) -> a small tree per document
 * (wisp_policy_yaml.c) -> strict validation (the fields of rules in
 * wisp_policy_rules.c, the documents here) -> the compiled model of
 * wisp_policy_internal.h. Bytes in, policy or message out; no I/O, no
 * globals. */
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
#include "lib/wisp_policy_parse.h"
#include "lib/wisp_spiffe.h"

#define API_VERSION "wisp.dev/v1"
#define KIND_AUTHZ "AuthorizationPolicy"
#define KIND_PEER "PeerAuthentication"
#define KIND_DEST "Destination"
#define SEEN_SLOTS (4 * WISP_POLICY_MAX_DOCS) /* 2 keys a document, half full */

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
    if (wpp_eq(k, "kind") && k->next->kind == YN_SCALAR) kind = k->next;
    if (wpp_eq(k, "metadata") && k->next->kind == YN_MAP)
      for (const yn *m = k->next->first; m; m = m->next->next)
        if (wpp_eq(m, "name") && m->next->kind == YN_SCALAR && m->next->len) name = m->next;
  }
  if (!kind || !(wpp_eq(kind, KIND_AUTHZ) || wpp_eq(kind, KIND_PEER) || wpp_eq(kind, KIND_DEST))) {
    snprintf(c->desc, sizeof(c->desc), "document %u", c->doc);
    return;
  }
  if (!name) {
    snprintf(c->desc, sizeof(c->desc), "document %u (%s)", c->doc, kind->s);
    return;
  }
  char q[96];
  wpp_quote(q, sizeof(q), name->s, name->len);
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
  size_t mark = wpp_push_key(c, "spec", 4);
  WISP_GUARD(wpp_map_fields(c, spec, kFields, 3, v));
  FIELD(c, "selector", wpp_compile_selector(c, v[0], ns, &a.sel));
  if (v[1]) {
    size_t m = wpp_push_key(c, "action", 6);
    WISP_GUARD(wpp_want_str(c, v[1], WISP_POLICY_MAX_STR));
    if (wpp_eq(v[1], "DENY")) {
      a.deny = true;
    } else if (!wpp_eq(v[1], "ALLOW")) {
      char q[96];
      wpp_quote(q, sizeof(q), v[1]->s, v[1]->len);
      bool istio = wpp_eq(v[1], "AUDIT") || wpp_eq(v[1], "CUSTOM");
      return wpp_fail(c, v[1], "%s is %s (ALLOW or DENY)", q, istio ? "not supported" : "not an action");
    }
    wpp_pop(c, m);
  }
  if (v[2]) {
    size_t m = wpp_push_key(c, "rules", 5);
    WISP_GUARD(wpp_want_seq(c, v[2], true, WISP_POLICY_MAX_RULES));
    if (v[2]->n > WISP_POLICY_MAX_RULES - c->p->n_rules)
      return wpp_fail_big(c, v[2], "more than %u rules in all", WISP_POLICY_MAX_RULES);
    wp_rule *rules = wp_alloc(&c->p->arena, v[2]->n * sizeof(wp_rule));
    uint32_t i = 0;
    for (const yn *it = v[2]->first; it; it = it->next, i++) {
      size_t mi = wpp_push_index(c, i);
      WISP_GUARD(wpp_compile_rule(c, it, &rules[i]));
      wpp_pop(c, mi);
    }
    a.rules = rules;
    a.n_rules = v[2]->n;
    wpp_pop(c, m);
  }
  wpp_pop(c, mark);
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
  size_t mark = wpp_push_key(c, "spec", 4);
  WISP_GUARD(wpp_map_fields(c, spec, kFields, 2, v));
  FIELD(c, "selector", wpp_compile_selector(c, v[0], ns, &pa.sel));
  if (!v[1]) return wpp_fail(c, spec, "mode: required (STRICT or PERMISSIVE)");
  size_t m = wpp_push_key(c, "mode", 4);
  WISP_GUARD(wpp_want_str(c, v[1], WISP_POLICY_MAX_STR));
  if (wpp_eq(v[1], "STRICT")) {
    pa.mode = WISP_MTLS_STRICT;
  } else if (wpp_eq(v[1], "PERMISSIVE")) {
    pa.mode = WISP_MTLS_PERMISSIVE;
  } else {
    char q[96];
    wpp_quote(q, sizeof(q), v[1]->s, v[1]->len);
    bool istio = wpp_eq(v[1], "DISABLE") || wpp_eq(v[1], "UNSET");
    return wpp_fail(c, v[1], "%s is %s (STRICT or PERMISSIVE)", q, istio ? "not supported" : "not a mode");
  }
  wpp_pop(c, m);
  /* One PeerAuthentication per scope: which would win is not obvious. */
  char key[2 * NAME_MAX_LEN + 8];
  snprintf(key, sizeof(key), "S:%s/%s", pa.sel.ns.s, pa.sel.sa.s ? pa.sel.sa.s : "");
  uint32_t other;
  const char *other_desc;
  if (!seen_add(c, key, &other, &other_desc)) {
    if (v[0]) wpp_push_key(c, "selector", 8);
    return wpp_fail(c, v[0] ? v[0] : spec, "selects the same workloads as %s; keep one PeerAuthentication per scope",
                    other_desc);
  }
  wpp_pop(c, mark);
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
  WISP_GUARD(wpp_want_str(c, n, WISP_SPIFFE_MAX));
  wisp_spiffe_id id;
  char reason[160];
  if (wisp_spiffe_parse(&id, n->s, n->len, reason, sizeof(reason)) != WISP_OK) {
    char q[96];
    wpp_quote(q, sizeof(q), n->s, n->len);
    return wpp_fail(c, n, "%s is not a SPIFFE ID (%s)", q, reason);
  }
  *out = wpp_arena_str(c, n->s, n->len).s;
  return WISP_OK;
}

/* spec.addresses of a Destination: IP:PORT or IP, each kept canonical. */
static wisp_err compile_dest_addrs(pctx *c, const yn *list, wp_dest *d) {
  WISP_GUARD(wpp_want_seq(c, list, false, WISP_POLICY_MAX_LIST));
  wisp_policy *p = c->p;
  if (list->n > WISP_POLICY_MAX_DESTINATIONS - p->n_dests)
    return wpp_fail_big(c, list, "more than %u destination addresses in all", WISP_POLICY_MAX_DESTINATIONS);
  d->first = p->n_dests;
  uint32_t i = 0;
  for (const yn *it = list->first; it; it = it->next, i++) {
    size_t mark = wpp_push_index(c, i);
    WISP_GUARD(wpp_want_str(c, it, 64));
    wisp_addr a;
    if (wisp_addr_parse_dest(&a, it->s) != WISP_OK) {
      char q[96];
      wpp_quote(q, sizeof(q), it->s, it->len);
      return wpp_fail(c, it, "%s is not IP:PORT or an IP (literal addresses only, port 1..65535)", q);
    }
    char canon[64];
    wisp_addr_format_dest(&a, canon, sizeof(canon));
    p->dests = grow(p->dests, p->n_dests, &c->cap_dests, sizeof(wp_dest_addr));
    wp_dest_addr *e = &p->dests[p->n_dests++];
    e->pub.address = wpp_arena_str(c, canon, strlen(canon)).s;
    e->pub.spiffe_id = d->spiffe_id;
    e->dest = p->n_dest_docs;
    e->item = i;
    e->line = it->line;
    e->col = it->col;
    wpp_pop(c, mark);
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
  size_t mark = wpp_push_key(c, "spec", 4);
  WISP_GUARD(wpp_map_fields(c, spec, kFields, 2, v));
  if (!v[1]) return wpp_fail(c, spec, "spiffeId: required (the identity the sidecar at these addresses presents)");
  if (!v[0]) return wpp_fail(c, spec, "addresses: required (IP:PORT or IP, as the app dials them)");
  FIELD(c, "spiffeId", compile_dest_id(c, v[1], &d.spiffe_id));
  FIELD(c, "addresses", compile_dest_addrs(c, v[0], &d));
  wpp_pop(c, mark);
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
    wpp_pop(c, 0);
    wpp_push_key(c, "spec.addresses", 14);
    wpp_push_index(c, again->item);
    yn at = {.line = again->line, .col = again->col};
    return wpp_fail(c, &at, "%s is already mapped by document %u (" KIND_DEST " %s, to %s)", again->pub.address,
                    d1->doc, d1->qname, d1->spiffe_id);
  }
  p->dest_list = wisp_calloc(p->n_dests, sizeof(wisp_policy_destination));
  for (uint32_t i = 0; i < p->n_dests; i++) p->dest_list[i] = p->dests[i].pub;
  return WISP_OK;
}

static wisp_err compile_doc(pctx *c, const yn *root) {
  snprintf(c->desc, sizeof(c->desc), "document %u", c->doc);
  wpp_pop(c, 0);
  if (root->kind == YN_SCALAR && wpp_plain_type(root) && strcmp(wpp_plain_type(root), "null") == 0)
    return WISP_OK; /* an empty document */
  if (root->kind != YN_MAP)
    return wpp_fail(c, root, "expected a mapping with apiVersion, kind, metadata and spec, got %s",
                    wpp_kind_name(root));
  describe(c, root);
  static const char *const kFields[] = {"apiVersion", "kind", "metadata", "spec"};
  const yn *v[4];
  WISP_GUARD(wpp_map_fields(c, root, kFields, 4, v));
  for (int i = 0; i < 4; i++)
    if (!v[i]) {
      size_t mark = wpp_push_key(c, kFields[i], strlen(kFields[i]));
      wisp_err e = wpp_fail(c, root, "required%s", i == 3 ? " (spec: {} governs with no rules)" : "");
      wpp_pop(c, mark);
      return e;
    }
  char q[96];
  size_t mark = wpp_push_key(c, "apiVersion", 10);
  WISP_GUARD(wpp_want_str(c, v[0], WISP_POLICY_MAX_STR));
  if (!wpp_eq(v[0], API_VERSION)) {
    wpp_quote(q, sizeof(q), v[0]->s, v[0]->len);
    return wpp_fail(c, v[0], "%s is not supported (want " API_VERSION ")", q);
  }
  wpp_pop(c, mark);
  mark = wpp_push_key(c, "kind", 4);
  WISP_GUARD(wpp_want_str(c, v[1], WISP_POLICY_MAX_STR));
  bool peer = wpp_eq(v[1], KIND_PEER), dest = wpp_eq(v[1], KIND_DEST);
  if (!peer && !dest && !wpp_eq(v[1], KIND_AUTHZ)) {
    wpp_quote(q, sizeof(q), v[1]->s, v[1]->len);
    return wpp_fail(c, v[1], "%s is not a known kind (" KIND_AUTHZ ", " KIND_PEER " or " KIND_DEST ")", q);
  }
  wpp_pop(c, mark);

  static const char *const kMeta[] = {"name", "namespace", "labels", "annotations"};
  const yn *m[4];
  mark = wpp_push_key(c, "metadata", 8);
  WISP_GUARD(wpp_map_fields(c, v[2], kMeta, 4, m));
  if (!m[0]) return wpp_fail(c, v[2], "name: required");
  FIELD(c, "name", wpp_check_name(c, m[0]));
  if (m[1]) FIELD(c, "namespace", wpp_check_name(c, m[1]));
  for (int i = 2; i < 4; i++) {
    if (!m[i]) continue;
    size_t mk = wpp_push_key(c, kMeta[i], strlen(kMeta[i]));
    WISP_GUARD(wpp_want_map(c, m[i]));
    for (const yn *k = m[i]->first; k; k = k->next->next) {
      size_t mv = wpp_push_key(c, k->s, k->len);
      WISP_GUARD(wpp_want_str(c, k, WISP_POLICY_MAX_STR));
      if (k->next->kind != YN_SCALAR || wpp_plain_type(k->next))
        WISP_GUARD(wpp_want_str(c, k->next, WISP_POLICY_MAX_STR));
      wpp_pop(c, mv);
    }
    wpp_pop(c, mk);
  }
  wpp_pop(c, mark);

  wp_str ns = m[1] ? wpp_arena_str(c, m[1]->s, m[1]->len) : wpp_arena_str(c, "default", 7);
  char qname[2 * NAME_MAX_LEN + 8];
  snprintf(qname, sizeof(qname), "%s/%.*s", ns.s, (int)m[0]->len, m[0]->s);
  char key[sizeof(qname) + 2];
  const char *kind = peer ? KIND_PEER : dest ? KIND_DEST : KIND_AUTHZ;
  snprintf(key, sizeof(key), "%c:%s", kind[0], qname);
  uint32_t other;
  const char *other_desc;
  if (!seen_add(c, key, &other, &other_desc)) {
    mark = wpp_push_key(c, "metadata.name", 13);
    wisp_err e = wpp_fail(c, m[0], "%s %s is already defined by %s", kind, qname, other_desc);
    wpp_pop(c, mark);
    return e;
  }
  const char *qn = wp_strndup(&c->p->arena, qname, strlen(qname));
  if (dest) return compile_dest(c, v[3], qn);
  return peer ? compile_peer(c, v[3], qn, ns) : compile_authz(c, v[3], qn, ns);
}

/* ---- events -> documents -------------------------------------------------- */

/* Reads the stream event by event; each document is checked and compiled
 * as soon as it ends, then its tree is freed. */
static wisp_err run(pctx *c, yaml_parser_t *y) {
  builder b;
  memset(&b, 0, sizeof(b));
  for (;;) {
    yaml_event_t ev;
    if (!yaml_parser_parse(y, &ev)) return wpp_syntax_error(c, y);
    wisp_err e = WISP_OK;
    switch (ev.type) {
      case YAML_STREAM_END_EVENT:
        yaml_event_delete(&ev);
        return WISP_OK;
      case YAML_DOCUMENT_START_EVENT:
        memset(&b, 0, sizeof(b));
        c->doc++;
        snprintf(c->desc, sizeof(c->desc), "document %u", c->doc);
        if (c->doc > WISP_POLICY_MAX_DOCS) e = wpp_fail_big(c, NULL, "more than %u documents", WISP_POLICY_MAX_DOCS);
        break;
      case YAML_DOCUMENT_END_EVENT:
        if (b.unsupported) {
          if (b.root->kind == YN_MAP) describe(c, b.root);
          e = wpp_fail(c, &b.unsupported_at, "%s", b.unsupported);
        } else if (b.root) {
          e = compile_doc(c, b.root);
        }
        wp_arena_free(&c->tree);
        memset(&b, 0, sizeof(b));
        break;
      default:
        e = wpp_add_event(c, &b, &ev);
        break;
    }
    yaml_event_delete(&ev);
    if (e != WISP_OK) return e;
  }
}

wisp_err wisp_policy_compile(wisp_policy **out, const char *yaml, size_t len, char *err_buf, size_t err_len) {
  pctx c;
  memset(&c, 0, sizeof(c));
  c.err_buf = err_buf;
  c.err_len = err_len;
  if (err_buf && err_len) err_buf[0] = '\0';
  if (len > WISP_POLICY_MAX_INPUT) {
    snprintf(c.desc, sizeof(c.desc), "policy");
    return wpp_fail_big(&c, NULL, "%zu bytes, more than the %u allowed", len, WISP_POLICY_MAX_INPUT);
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
