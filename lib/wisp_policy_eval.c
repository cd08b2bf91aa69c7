/* wisp_policy_evaluate: matches one request against a view. The request
 * path: no allocation, no locks, no string parsing beyond finding the '?'
 * of the path and, only when a rule names namespaces, the /ns/N/ of the
 * caller's ID. Semantics are in wisp_policy.h. */
#include <string.h>

#include "lib/wisp_policy.h"
#include "lib/wisp_policy_internal.h"

/* What is known of the request, worked out at most once. */
typedef struct {
  const wisp_policy_request *r;
  const char *path; /* "" when none */
  size_t path_len;  /* up to the first '?' */
  size_t trim_len;  /* path_len less one trailing '/' (not of "/" itself) */
  uint32_t method;  /* WP_* bit; 0: another method */
  bool hashed;
  uint64_t hash; /* of the principal, once hashed */
  int ns_state;  /* 0: not looked at, 1: found, 2: none */
  const char *ns;
  size_t ns_len;
  uint32_t tried; /* rule_match calls, for wisp_policy_decision */
} req_ctx;

static uint32_t method_bit(const char *m, size_t len) {
  switch (len) {
    case 3:
      if (memcmp(m, "GET", 3) == 0) return WP_GET;
      if (memcmp(m, "PUT", 3) == 0) return WP_PUT;
      break;
    case 4:
      if (memcmp(m, "POST", 4) == 0) return WP_POST;
      if (memcmp(m, "HEAD", 4) == 0) return WP_HEAD;
      break;
    case 5:
      if (memcmp(m, "PATCH", 5) == 0) return WP_PATCH;
      if (memcmp(m, "TRACE", 5) == 0) return WP_TRACE;
      break;
    case 6:
      if (memcmp(m, "DELETE", 6) == 0) return WP_DELETE;
      break;
    case 7:
      if (memcmp(m, "OPTIONS", 7) == 0) return WP_OPTIONS;
      if (memcmp(m, "CONNECT", 7) == 0) return WP_CONNECT;
      break;
  }
  return 0;
}

/* Binary search in strings sorted by (length, bytes). */
static bool exact_find(const wp_str *v, uint32_t n, const char *s, size_t len) {
  uint32_t lo = 0, hi = n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    int c = wp_str_cmp(v[mid].s, v[mid].len, s, len);
    if (c == 0) return true;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return false;
}

static bool strset_match(const wp_strset *set, const char *s, size_t len) {
  if (set->any) return true;
  if (set->n_exact && exact_find(set->exact, set->n_exact, s, len)) return true;
  for (uint32_t i = 0; i < set->n_prefix; i++)
    if (len >= set->prefix[i].len && memcmp(s, set->prefix[i].s, set->prefix[i].len) == 0) return true;
  for (uint32_t i = 0; i < set->n_suffix; i++)
    if (len >= set->suffix[i].len && memcmp(s + len - set->suffix[i].len, set->suffix[i].s, set->suffix[i].len) == 0)
      return true;
  return false;
}

/* Apps commonly serve `/x/` as `/x` (Express, Flask's strict_slashes
 * redirect, Go routers with RedirectTrailingSlash), so a rule that names
 * `/x` or `*.x` must not be walked around with one trailing '/'. Where a
 * match leads towards refusing (|lenient|: DENY paths, ALLOW notPaths) the
 * path also matches without it; where a match leads towards admitting, it
 * must match as sent. Prefix patterns need nothing: a prefix of the path
 * without its '/' is a prefix of the path. */
static bool paths_match(const wp_strset *set, const req_ctx *c, bool lenient) {
  if (strset_match(set, c->path, c->path_len)) return true;
  return lenient && c->trim_len != c->path_len && strset_match(set, c->path, c->trim_len);
}

/* HEAD is GET without the body, and apps answer it with their GET
 * handler (Go's ServeMux, Express, Flask, Spring): where a match refuses
 * (|lenient|: DENY methods, ALLOW notMethods) a rule naming GET also
 * names HEAD. Where a match admits, HEAD must be named. */
static bool methods_match(const wp_methodset *m, const req_ctx *c, bool lenient) {
  if (c->method == WP_HEAD && lenient && (m->mask & WP_GET)) return true;
  if (c->method) return (m->mask & c->method) != 0;
  return m->n_other && exact_find(m->other, m->n_other, c->r->method, c->r->method_len);
}

static bool port_in(const wp_portset *p, uint16_t port) {
  uint32_t lo = 0, hi = p->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (p->ports[mid] == port) return true;
    if (p->ports[mid] < port) lo = mid + 1;
    else hi = mid;
  }
  return false;
}

/* The caller's namespace, if its ID is spiffe://td/ns/N/sa/SA. */
static bool caller_ns(req_ctx *c) {
  if (c->ns_state == 0) {
    const char *sa;
    size_t sa_len;
    c->ns_state = wp_k8s_id(c->r->principal, c->r->principal_len, &c->ns, &c->ns_len, &sa, &sa_len) ? 1 : 2;
  }
  return c->ns_state == 1;
}

/* A missing attribute (no identity, no namespace) fails closed: positive
 * fields do not match it; negative ones match it only in a DENY rule. */
static bool from_match(const wp_from *f, req_ctx *c, bool deny) {
  const wisp_policy_request *r = c->r;
  if (!r->principal) return !(f->fields & (WP_F_PRINCIPALS | WP_F_NAMESPACES)) && deny;
  if ((f->fields & WP_F_PRINCIPALS) && !strset_match(&f->principals, r->principal, r->principal_len)) return false;
  if ((f->fields & WP_F_NOT_PRINCIPALS) && strset_match(&f->not_principals, r->principal, r->principal_len))
    return false;
  if (f->fields & (WP_F_NAMESPACES | WP_F_NOT_NAMESPACES)) {
    if (!caller_ns(c)) return !(f->fields & WP_F_NAMESPACES) && deny;
    if ((f->fields & WP_F_NAMESPACES) && !strset_match(&f->namespaces, c->ns, c->ns_len)) return false;
    if ((f->fields & WP_F_NOT_NAMESPACES) && strset_match(&f->not_namespaces, c->ns, c->ns_len)) return false;
  }
  return true;
}

/* An L4 connection has no method or path: an entry that names them never
 * matches in an ALLOW rule and has them ignored in a DENY rule. */
static bool to_match(const wp_to *t, const req_ctx *c, bool deny) {
  if (!c->r->method) {
    if ((t->fields & WP_T_HTTP) && !deny) return false;
  } else if (t->fields & WP_T_HTTP) {
    if ((t->fields & WP_T_METHODS) && !methods_match(&t->methods, c, deny)) return false;
    if ((t->fields & WP_T_NOT_METHODS) && methods_match(&t->not_methods, c, !deny)) return false;
    if ((t->fields & WP_T_PATHS) && !paths_match(&t->paths, c, deny)) return false;
    if ((t->fields & WP_T_NOT_PATHS) && paths_match(&t->not_paths, c, !deny)) return false;
  }
  if ((t->fields & WP_T_PORTS) && !port_in(&t->ports, c->r->port)) return false;
  if ((t->fields & WP_T_NOT_PORTS) && port_in(&t->not_ports, c->r->port)) return false;
  return true;
}

static bool rule_match(const wp_rule *r, req_ctx *c, bool deny) {
  if (r->n_from) {
    uint32_t i = 0;
    while (i < r->n_from && !from_match(&r->from[i], c, deny)) i++;
    if (i == r->n_from) return false;
  }
  if (r->n_to) {
    uint32_t i = 0;
    while (i < r->n_to && !to_match(&r->to[i], c, deny)) i++;
    if (i == r->n_to) return false;
  }
  return true;
}

/* Lowers |*best| to the first item of |list| (ascending) below it whose
 * rule matches. */
static void scan(const wp_list *l, const uint32_t *list, uint32_t n, req_ctx *c, bool deny, uint32_t *best) {
  for (uint32_t i = 0; i < n && list[i] < *best; i++) {
    c->tried++;
    if (rule_match(l->items[list[i]].rule, c, deny)) {
      *best = list[i];
      return;
    }
  }
}

static void probe(const wp_list *l, uint32_t kind, const char *s, size_t len, uint64_t h, req_ctx *c, bool deny,
                  uint32_t *best) {
  for (uint32_t i = (uint32_t)h & l->mask;; i = (i + 1) & l->mask) {
    const wp_slot *slot = &l->table[i];
    if (!slot->s) return;
    if (slot->hash == h && slot->kind == kind && slot->len == len && memcmp(slot->s, s, len) == 0) {
      scan(l, l->postings + slot->off, slot->n, c, deny, best);
      return;
    }
  }
}

/* Probes |s| whole (exact kind |kind|) and its prefixes and suffixes of
 * each length a pattern of the next two kinds has. */
static void probe_all(const wp_list *l, uint32_t kind, const char *s, size_t len, uint64_t whole, req_ctx *c, bool deny,
                      uint32_t *best) {
  probe(l, kind, s, len, whole, c, deny, best);
  const uint32_t *lens = l->lens[kind + 1];
  for (uint32_t i = 0; i < l->n_lens[kind + 1] && lens[i] <= len; i++)
    probe(l, kind + 1, s, lens[i], wp_key_hash(kind + 1, s, lens[i]), c, deny, best);
  lens = l->lens[kind + 2];
  for (uint32_t i = 0; i < l->n_lens[kind + 2] && lens[i] <= len; i++)
    probe(l, kind + 2, s + len - lens[i], lens[i], wp_key_hash(kind + 2, s + len - lens[i], lens[i]), c, deny, best);
}

/* The first item of |l| whose rule matches, or -1: the rules filed under
 * the caller's ID, its namespace and the path, and the rules scanned. */
static int32_t list_match(const wp_list *l, req_ctx *c, bool deny) {
  uint32_t best = UINT32_MAX;
  const wisp_policy_request *r = c->r;
  if (l->has_paths) {
    if (r->method) {
      probe_all(l, WP_K_PATH, c->path, c->path_len, wp_key_hash(WP_K_PATH, c->path, c->path_len), c, deny, &best);
      if (deny && c->trim_len != c->path_len) /* DENY paths ignore one trailing '/' */
        probe_all(l, WP_K_PATH, c->path, c->trim_len, wp_key_hash(WP_K_PATH, c->path, c->trim_len), c, deny, &best);
    } else if (deny) scan(l, l->by_path, l->n_by_path, c, deny, &best); /* L4: paths ignored */
  }
  if (l->has_callers && r->principal) {
    if (!c->hashed) {
      c->hash = wp_key_hash(WP_K_PRINCIPAL, r->principal, r->principal_len);
      c->hashed = true;
    }
    probe_all(l, WP_K_PRINCIPAL, r->principal, r->principal_len, c->hash, c, deny, &best);
    if (l->has_namespaces && caller_ns(c))
      probe_all(l, WP_K_NAMESPACE, c->ns, c->ns_len, wp_key_hash(WP_K_NAMESPACE, c->ns, c->ns_len), c, deny, &best);
  }
  scan(l, l->generic, l->n_generic, c, deny, &best);
  return best == UINT32_MAX ? -1 : (int32_t)best;
}

static void decide(wisp_policy_decision *out, const req_ctx *c, bool allow, const wp_item *item, const char *reason) {
  out->allow = allow;
  out->rules_tried = c ? c->tried : 0;
  out->policy = item ? item->policy : NULL;
  out->rule = item ? item->index : -1;
  out->reason = reason;
}

const char *wisp_policy_method_refused(const char *method, size_t len) {
  if (len == 0) return "empty method";
  for (size_t i = 0; i < len; i++)
    if (!wp_tchar(method[i])) return "method is not an HTTP token";
  for (size_t i = 0; i < len; i++)
    if (method[i] >= 'a' && method[i] <= 'z')
      return "lower-case letter in method (methods are case-sensitive, and some apps upper-case them: "
             "send it in upper case)";
  return NULL;
}

void wisp_policy_evaluate(const wisp_policy_view *v, const wisp_policy_request *req, wisp_policy_decision *out) {
  wisp_policy_request r = *req;
  if (r.principal_len == 0) r.principal = NULL; /* an empty ID is no ID */
  if (!r.principal && v->mode == WISP_MTLS_STRICT) {
    decide(out, NULL, false, NULL, WISP_POLICY_REASON_NO_IDENTITY);
    return;
  }
  req_ctx c;
  memset(&c, 0, sizeof(c));
  c.r = &r;
  c.path = "";
  if (r.method) {
    c.method = method_bit(r.method, r.method_len);
    if (r.path) {
      const char *q = memchr(r.path, '?', r.path_len);
      c.path = r.path;
      c.path_len = q ? (size_t)(q - r.path) : r.path_len;
    }
    c.trim_len = c.path_len;
    if (c.path_len > 1 && c.path[c.path_len - 1] == '/') c.trim_len--;
  }
  int32_t k = list_match(&v->deny, &c, true);
  if (k >= 0) {
    decide(out, &c, false, &v->deny.items[k], WISP_POLICY_REASON_DENY_RULE);
    return;
  }
  if (v->n_allow_policies == 0) {
    decide(out, &c, true, NULL, v->n_deny_policies ? WISP_POLICY_REASON_NO_ALLOW_POLICY : WISP_POLICY_REASON_NO_POLICY);
    return;
  }
  k = list_match(&v->allow, &c, false);
  if (k >= 0) decide(out, &c, true, &v->allow.items[k], WISP_POLICY_REASON_ALLOW_RULE);
  else decide(out, &c, false, NULL, WISP_POLICY_REASON_NO_ALLOW_MATCH);
}
