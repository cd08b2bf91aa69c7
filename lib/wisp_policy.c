/* wisp_policy: ownership of compiled policies, summaries, and views (what
 * governs one workload, with rules indexed by exact caller ID). Parsing is
 * in wisp_policy_parse.c, matching in wisp_policy_eval.c. */
#include "lib/wisp_policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_mem.h"
#include "lib/wisp_policy_internal.h"
#include "lib/wisp_spiffe.h"

/* ---- arena -------------------------------------------------------------- */

#define CHUNK_SIZE 65536
#define ALIGN 16

struct wp_chunk {
  wp_chunk *next;
  size_t used, cap;
  _Alignas(ALIGN) unsigned char data[];
};

void *wp_alloc(wp_arena *a, size_t n) {
  n = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
  wp_chunk *ch = a->head;
  if (!ch || ch->cap - ch->used < n) {
    size_t cap = n > CHUNK_SIZE / 4 ? n : CHUNK_SIZE;
    wp_chunk *fresh = wisp_malloc(sizeof(wp_chunk) + cap);
    fresh->used = 0;
    fresh->cap = cap;
    if (ch && cap != CHUNK_SIZE) {
      /* A big block gets a chunk of its own behind the current one, which
       * keeps its free space. */
      fresh->next = ch->next;
      ch->next = fresh;
    } else {
      fresh->next = ch;
      a->head = fresh;
    }
    ch = fresh;
  }
  void *p = ch->data + ch->used;
  ch->used += n;
  memset(p, 0, n);
  return p;
}

char *wp_strndup(wp_arena *a, const char *s, size_t len) {
  char *d = wp_alloc(a, len + 1);
  if (len) memcpy(d, s, len);
  return d;
}

void wp_arena_free(wp_arena *a) {
  wp_chunk *ch = a->head;
  while (ch) {
    wp_chunk *next = ch->next;
    free(ch);
    ch = next;
  }
  a->head = NULL;
}

/* ---- shared helpers ------------------------------------------------------ */

uint64_t wp_hash(const char *s, size_t len) {
  uint64_t h = 0x9e3779b97f4a7c15u ^ (uint64_t)len;
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdu;
    h ^= h >> 32;
    s += 8;
    len -= 8;
  }
  uint64_t w = 0;
  if (len) memcpy(&w, s, len);
  h = (h ^ w) * 0xc4ceb9fe1a85ec53u;
  return h ^ (h >> 29);
}

uint64_t wp_key_hash(uint32_t kind, const char *s, size_t len) {
  return wp_hash(s, len) + (uint64_t)kind * 0x9e3779b97f4a7c15u;
}

int wp_str_cmp(const char *a, size_t a_len, const char *b, size_t b_len) {
  if (a_len != b_len) return a_len < b_len ? -1 : 1;
  return a_len ? memcmp(a, b, a_len) : 0;
}

bool wp_tchar(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

bool wp_k8s_id(const char *id, size_t len, const char **ns, size_t *ns_len, const char **sa, size_t *sa_len) {
  static const char kScheme[] = "spiffe://";
  const size_t scheme_len = sizeof(kScheme) - 1;
  if (len < scheme_len || memcmp(id, kScheme, scheme_len) != 0) return false;
  const char *end = id + len;
  const char *path = memchr(id + scheme_len, '/', len - scheme_len);
  if (!path || end - path < 4 || memcmp(path, "/ns/", 4) != 0) return false;
  const char *n = path + 4;
  const char *slash = memchr(n, '/', (size_t)(end - n));
  if (!slash || slash == n || end - slash < 4 || memcmp(slash, "/sa/", 4) != 0) return false;
  const char *a = slash + 4;
  if (a == end || memchr(a, '/', (size_t)(end - a))) return false;
  *ns = n;
  *ns_len = (size_t)(slash - n);
  *sa = a;
  *sa_len = (size_t)(end - a);
  return true;
}

/* ---- policies -------------------------------------------------------------- */

void wisp_policy_up_ref(wisp_policy *p) { atomic_fetch_add(&p->refs, 1); }

void wisp_policy_free(wisp_policy *p) {
  if (!p || atomic_fetch_sub(&p->refs, 1) != 1) return;
  free(p->authz);
  free(p->peer);
  free(p->docs);
  free(p->dest_docs);
  free(p->dests);
  free(p->dest_list);
  wp_arena_free(&p->arena);
  free(p);
}

void wisp_policy_get_stats(const wisp_policy *p, wisp_policy_stats *out) {
  out->documents = p->n_docs;
  out->authorization_policies = p->n_authz;
  out->allow_policies = p->n_allow;
  out->deny_policies = p->n_deny;
  out->peer_authentications = p->n_peer;
  out->rules = p->n_rules;
  out->destinations = p->n_dest_docs;
  out->destination_addresses = p->n_dests;
}

size_t wisp_policy_get_destinations(const wisp_policy *p, const wisp_policy_destination **out) {
  *out = p->dest_list;
  return p->n_dests;
}

typedef struct {
  char *out;
  size_t cap, len;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  bool room = b->len < b->cap;
  int n = vsnprintf(room ? b->out + b->len : NULL, room ? b->cap - b->len : 0, fmt, ap);
  va_end(ap);
  if (n > 0) b->len += (size_t)n;
}

static void sb_selector(sbuf *b, const wp_selector *s) {
  sb_printf(b, " selector=%s/%s", s->ns.s, s->sa.s ? s->sa.s : "*");
}

size_t wisp_policy_summary(const wisp_policy *p, char *out, size_t out_len) {
  sbuf b = {out, out_len, 0};
  if (out_len) out[0] = '\0';
  sb_printf(&b, "%u document%s", p->n_docs, p->n_docs == 1 ? "" : "s");
  for (uint32_t i = 0; i < p->n_docs; i++) {
    sb_printf(&b, "%s", i ? "; " : ": ");
    if (p->docs[i].kind == WP_DOC_PEER) {
      const wp_peer *pa = &p->peer[p->docs[i].index];
      sb_printf(&b, "PeerAuthentication %s %s", pa->qname, wisp_mtls_mode_name(pa->mode));
      sb_selector(&b, &pa->sel);
    } else if (p->docs[i].kind == WP_DOC_DEST) {
      const wp_dest *d = &p->dest_docs[p->docs[i].index];
      sb_printf(&b, "Destination %s %s addresses=%u", d->qname, d->spiffe_id, d->n_addrs);
    } else {
      const wp_authz *a = &p->authz[p->docs[i].index];
      sb_printf(&b, "AuthorizationPolicy %s %s", a->qname, a->deny ? "DENY" : "ALLOW");
      sb_selector(&b, &a->sel);
      sb_printf(&b, " rules=%u", a->n_rules);
    }
  }
  return b.len;
}

const char *wisp_mtls_mode_name(wisp_mtls_mode mode) { return mode == WISP_MTLS_PERMISSIVE ? "PERMISSIVE" : "STRICT"; }

/* ---- views ------------------------------------------------------------------ */

typedef struct {
  const char *ns, *sa;
  size_t ns_len, sa_len;
  bool known; /* the workload ID is spiffe://td/ns/N/sa/SA */
} workload;

static bool selects(const wp_selector *s, const workload *w) {
  if (!w->known || wp_str_cmp(s->ns.s, s->ns.len, w->ns, w->ns_len) != 0) return false;
  return !s->sa.s || wp_str_cmp(s->sa.s, s->sa.len, w->sa, w->sa_len) == 0;
}

/* The patterns entry |i| of |r| is filed under (see wisp_policy_internal.h)
 * and the exact kind of them (the prefix and suffix kinds follow), or NULL
 * when there are none. */
static const wp_strset *entry_keys(const wp_rule *r, bool by_path, uint32_t i, uint32_t *kind) {
  if (by_path) {
    const wp_to *t = &r->to[i];
    *kind = WP_K_PATH;
    return (t->fields & WP_T_PATHS) && !t->paths.any ? &t->paths : NULL;
  }
  const wp_from *f = &r->from[i];
  if ((f->fields & WP_F_PRINCIPALS) && !f->principals.any) {
    *kind = WP_K_PRINCIPAL;
    return &f->principals;
  }
  if ((f->fields & WP_F_NAMESPACES) && !f->namespaces.any) {
    *kind = WP_K_NAMESPACE;
    return &f->namespaces;
  }
  return NULL;
}

typedef enum { IX_SCAN, IX_CALLER, IX_PATH } ix_how;

static bool all_entries_keyed(const wp_rule *r, bool by_path) {
  uint32_t n = by_path ? r->n_to : r->n_from, kind;
  if (n == 0) return false;
  for (uint32_t i = 0; i < n; i++)
    if (!entry_keys(r, by_path, i, &kind)) return false;
  return true;
}

static ix_how how_filed(const wp_rule *r) {
  if (all_entries_keyed(r, false)) return IX_CALLER;
  if (all_entries_keyed(r, true)) return IX_PATH;
  return IX_SCAN;
}

static wp_slot *slot_for(wp_slot *table, uint32_t mask, uint32_t kind, const wp_str *key) {
  uint64_t h = wp_key_hash(kind, key->s, key->len);
  for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
    wp_slot *s = &table[i];
    if (!s->s) {
      s->hash = h;
      s->s = key->s;
      s->len = key->len;
      s->kind = kind;
      return s;
    }
    if (s->hash == h && s->kind == kind && s->len == key->len && memcmp(s->s, key->s, key->len) == 0) return s;
  }
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Index building state: pass 0 counts postings and lengths, pass 1 fills. */
typedef struct {
  wp_slot *table;
  uint32_t mask;
  uint32_t *last;     /* per slot: item + 1 last filed there */
  uint32_t *postings; /* NULL in pass 0 */
  uint32_t *lens[WP_K_COUNT];
  uint32_t n_lens[WP_K_COUNT];
} ix_build;

static void file_rule(ix_build *b, uint32_t item, const wp_rule *r, bool by_path) {
  for (uint32_t i = 0; i < (by_path ? r->n_to : r->n_from); i++) {
    uint32_t kind;
    const wp_strset *s = entry_keys(r, by_path, i, &kind);
    const wp_str *parts[3] = {s->exact, s->prefix, s->suffix};
    const uint32_t counts[3] = {s->n_exact, s->n_prefix, s->n_suffix};
    for (uint32_t part = 0; part < 3; part++)
      for (uint32_t j = 0; j < counts[part]; j++) {
        wp_slot *slot = slot_for(b->table, b->mask, kind + part, &parts[part][j]);
        uint32_t at = (uint32_t)(slot - b->table);
        if (!b->postings) b->lens[kind + part][b->n_lens[kind + part]++] = parts[part][j].len;
        if (b->last[at] == item + 1) continue;
        b->last[at] = item + 1;
        if (b->postings) b->postings[slot->off + slot->n] = item;
        slot->n++;
      }
  }
}

/* Builds the index of |l| (items already set). */
static void build_index(wp_arena *a, wp_list *l) {
  uint32_t n_keys = 0, n_generic = 0;
  for (uint32_t k = 0; k < l->n_items; k++) {
    const wp_rule *r = l->items[k].rule;
    ix_how how = how_filed(r);
    if (how == IX_SCAN) {
      n_generic++;
      continue;
    }
    l->n_indexed++;
    if (how == IX_PATH) l->n_by_path++;
    for (uint32_t i = 0; i < (how == IX_PATH ? r->n_to : r->n_from); i++) {
      uint32_t kind;
      const wp_strset *s = entry_keys(r, how == IX_PATH, i, &kind);
      n_keys += s->n_exact + s->n_prefix + s->n_suffix;
      if (kind == WP_K_NAMESPACE) l->has_namespaces = true;
      if (kind == WP_K_PATH) l->has_paths = true;
      else l->has_callers = true;
    }
  }
  uint32_t *generic = wp_alloc(a, n_generic * sizeof(uint32_t));
  uint32_t *by_path = wp_alloc(a, l->n_by_path * sizeof(uint32_t));
  uint32_t n_by_path = 0;
  for (uint32_t k = 0; k < l->n_items; k++) {
    ix_how how = how_filed(l->items[k].rule);
    if (how == IX_SCAN) generic[l->n_generic++] = k;
    if (how == IX_PATH) by_path[n_by_path++] = k;
  }
  l->generic = generic;
  l->by_path = by_path;
  if (l->n_indexed == 0) return;

  ix_build b;
  memset(&b, 0, sizeof(b));
  uint32_t cap = 8;
  while (cap < 2 * n_keys) cap *= 2;
  b.table = wp_alloc(a, cap * sizeof(wp_slot));
  b.mask = cap - 1;
  b.last = wisp_calloc(cap, sizeof(uint32_t));
  for (uint32_t kind = 0; kind < WP_K_COUNT; kind++) b.lens[kind] = wisp_malloc(n_keys * sizeof(uint32_t));
  for (uint32_t k = 0; k < l->n_items; k++) {
    ix_how how = how_filed(l->items[k].rule);
    if (how != IX_SCAN) file_rule(&b, k, l->items[k].rule, how == IX_PATH);
  }
  uint32_t off = 0;
  for (uint32_t i = 0; i < cap; i++) {
    b.table[i].off = off;
    off += b.table[i].n;
    b.table[i].n = 0;
  }
  b.postings = wp_alloc(a, off * sizeof(uint32_t));
  memset(b.last, 0, cap * sizeof(uint32_t));
  for (uint32_t k = 0; k < l->n_items; k++) {
    ix_how how = how_filed(l->items[k].rule);
    if (how != IX_SCAN) file_rule(&b, k, l->items[k].rule, how == IX_PATH);
  }

  /* The distinct lengths of prefix and suffix patterns: what to probe. */
  for (uint32_t kind = 0; kind < WP_K_COUNT; kind++) {
    uint32_t n = b.n_lens[kind], w = 0;
    qsort(b.lens[kind], n, sizeof(uint32_t), cmp_u32);
    for (uint32_t i = 0; i < n; i++)
      if (w == 0 || b.lens[kind][i] != b.lens[kind][w - 1]) b.lens[kind][w++] = b.lens[kind][i];
    bool probed = kind != WP_K_PRINCIPAL && kind != WP_K_NAMESPACE && kind != WP_K_PATH;
    if (probed && w) {
      uint32_t *lens = wp_alloc(a, w * sizeof(uint32_t));
      memcpy(lens, b.lens[kind], w * sizeof(uint32_t));
      l->lens[kind] = lens;
      l->n_lens[kind] = w;
    }
    free(b.lens[kind]);
  }
  free(b.last);
  l->table = b.table;
  l->mask = b.mask;
  l->postings = b.postings;
}

/* Sets up |l| with the rules of the policies of action |deny| that govern
 * |w|, in document order. */
static void build_list(wisp_policy_view *v, wp_list *l, bool deny, const workload *w, uint32_t *n_policies) {
  const wisp_policy *p = v->policy;
  uint32_t n = 0;
  for (uint32_t i = 0; i < p->n_authz; i++)
    if (p->authz[i].deny == deny && selects(&p->authz[i].sel, w)) {
      n += p->authz[i].n_rules;
      (*n_policies)++;
    }
  wp_item *items = wp_alloc(&v->arena, n * sizeof(wp_item));
  for (uint32_t i = 0; i < p->n_authz; i++) {
    const wp_authz *a = &p->authz[i];
    if (a->deny != deny || !selects(&a->sel, w)) continue;
    for (uint32_t r = 0; r < a->n_rules; r++) {
      items[l->n_items].rule = &a->rules[r];
      items[l->n_items].policy = a->qname;
      items[l->n_items++].index = (int32_t)r;
    }
  }
  l->items = items;
  build_index(&v->arena, l);
}

wisp_err wisp_policy_view_new(wisp_policy_view **out, wisp_policy *p, const char *workload_id, size_t id_len) {
  wisp_spiffe_id id;
  WISP_ENSURE(wisp_spiffe_parse(&id, workload_id, id_len, NULL, 0) == WISP_OK, WISP_ERR_IDENTITY);
  workload w;
  memset(&w, 0, sizeof(w));
  w.known = wp_k8s_id(id.id, id_len, &w.ns, &w.ns_len, &w.sa, &w.sa_len);

  wisp_policy_view *v = wisp_calloc(1, sizeof(*v));
  atomic_init(&v->refs, 1);
  wisp_policy_up_ref(p);
  v->policy = p;
  build_list(v, &v->deny, true, &w, &v->n_deny_policies);
  build_list(v, &v->allow, false, &w, &v->n_allow_policies);

  /* PeerAuthentication: the service account's beats the namespace's. */
  const wp_peer *best = NULL;
  for (uint32_t i = 0; i < p->n_peer; i++) {
    const wp_peer *pa = &p->peer[i];
    if (selects(&pa->sel, &w) && (!best || (pa->sel.sa.s && !best->sel.sa.s))) best = pa;
  }
  v->mode = best ? best->mode : WISP_MTLS_STRICT;
  v->mode_from = best ? best->qname : NULL;
  *out = v;
  return WISP_OK;
}

void wisp_policy_view_up_ref(wisp_policy_view *v) { atomic_fetch_add(&v->refs, 1); }

void wisp_policy_view_free(wisp_policy_view *v) {
  if (!v || atomic_fetch_sub(&v->refs, 1) != 1) return;
  wp_arena_free(&v->arena);
  wisp_policy_free(v->policy);
  free(v);
}

wisp_mtls_mode wisp_policy_view_mode(const wisp_policy_view *v) { return v->mode; }

void wisp_policy_view_get_info(const wisp_policy_view *v, wisp_policy_view_info *out) {
  out->allow_policies = v->n_allow_policies;
  out->deny_policies = v->n_deny_policies;
  out->allow_rules = v->allow.n_items;
  out->deny_rules = v->deny.n_items;
  out->indexed_rules = v->allow.n_indexed + v->deny.n_indexed;
  out->mode = v->mode;
  out->mode_from = v->mode_from;
}
