#include "proxy/dataplane/wisp_events.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_mem.h"
#include "lib/wisp_policy.h"
#include "lib/wisp_spiffe.h"
#include "proxy/dataplane/wisp_metrics.h"

enum { FAM_REFUSED, FAM_DENIED, FAM_UPSTREAM, FAM_COUNT };

#define OVERFLOW "overflow"
#define UNKNOWN "unknown"
/* The longest label value kept: a SPIFFE ID is at most 2048 bytes. */
#define LABEL_MAX 2048

/* One series. |reason| is static; the rest owned copies. Refused: a =
 * caller address (no port), b = claimed ID. Denied: a = policy, b = caller
 * ID, rule. Upstream: a = upstream address, b = expected ID, c = presented. */
typedef struct {
  bool inbound;
  const char *reason;
  char *a, *b, *c;
  int rule;
  bool overflow; /* an overflow series: never evicted */
  uint64_t count;
  uint64_t hash;
  uint64_t last; /* the tick of its last event: the least recent gives way */
} series;

typedef struct {
  series **items;  /* [cap], in order of first sight */
  size_t n, nreal; /* all series; those counted against the cap */
  size_t cap;
  uint32_t *index; /* open addressing: item + 1, 0: empty */
  size_t mask;
} family;

struct wisp_events {
  family fam[FAM_COUNT];
  size_t max;
  uint64_t overflowed;
  uint64_t tick; /* events counted so far */
  bool shared;   /* wisp_events_share: every call takes |lock| */
  pthread_mutex_t lock;
};

static void lock(const wisp_events *e) {
  if (e->shared) pthread_mutex_lock(&((wisp_events *)e)->lock);
}

static void unlock(const wisp_events *e) {
  if (e->shared) pthread_mutex_unlock(&((wisp_events *)e)->lock);
}

/* The rule of an overflow series (rendered "overflow"); -1: none. */
#define RULE_OVERFLOW (-2)

static uint64_t hash_str(uint64_t h, const char *s) { /* FNV-1a */
  for (; s && *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
  return (h ^ 0xff) * 0x100000001b3ull; /* a separator: ("ab","c") != ("a","bc") */
}

static uint64_t key_hash(bool inbound, const char *reason, const char *a, const char *b, const char *c, int rule) {
  uint64_t h = 0xcbf29ce484222325ull ^ (inbound ? 1 : 0) ^ ((uint64_t)(uint32_t)rule << 8);
  return hash_str(hash_str(hash_str(hash_str(h, reason), a), b), c);
}

static bool str_eq(const char *x, const char *y) { return strcmp(x ? x : "", y ? y : "") == 0; }

static bool same(const series *s, bool inbound, const char *reason, const char *a, const char *b, const char *c,
                 int rule) {
  return s->inbound == inbound && s->rule == rule && strcmp(s->reason, reason) == 0 && str_eq(s->a, a) &&
         str_eq(s->b, b) && str_eq(s->c, c);
}

static size_t pow2_at_least(size_t n) {
  size_t p = 16;
  while (p < n) p <<= 1;
  return p;
}

/* Tables start small and double as series come (a cap of a million
 * must not cost its tables up front). The index stays at most half full. */
#define INITIAL_SLOTS 16

static void family_init(family *fm) {
  fm->cap = INITIAL_SLOTS;
  fm->items = wisp_calloc(fm->cap, sizeof(*fm->items));
  fm->mask = pow2_at_least(fm->cap * 2) - 1;
  fm->index = wisp_calloc(fm->mask + 1, sizeof(*fm->index));
}

static void family_grow(family *fm) {
  fm->cap *= 2;
  fm->items = wisp_realloc(fm->items, fm->cap * sizeof(*fm->items));
  free(fm->index);
  fm->mask = pow2_at_least(fm->cap * 2) - 1;
  fm->index = wisp_calloc(fm->mask + 1, sizeof(*fm->index));
  for (size_t k = 0; k < fm->n; k++) {
    size_t i = (size_t)fm->items[k]->hash & fm->mask;
    while (fm->index[i]) i = (i + 1) & fm->mask;
    fm->index[i] = (uint32_t)(k + 1);
  }
}

wisp_events *wisp_events_new(size_t max_series) {
  wisp_events *e = wisp_calloc(1, sizeof(*e));
  e->max = max_series ? max_series : 1;
  for (int f = 0; f < FAM_COUNT; f++) family_init(&e->fam[f]);
  pthread_mutex_init(&e->lock, NULL);
  return e;
}

void wisp_events_share(wisp_events *e) { e->shared = true; }

void wisp_events_free(wisp_events *e) {
  if (!e) return;
  for (int f = 0; f < FAM_COUNT; f++) {
    family *fm = &e->fam[f];
    for (size_t i = 0; i < fm->n; i++) {
      free(fm->items[i]->a);
      free(fm->items[i]->b);
      free(fm->items[i]->c);
      free(fm->items[i]);
    }
    free(fm->items);
    free(fm->index);
  }
  pthread_mutex_destroy(&e->lock);
  free(e);
}

static char *dup_or_null(const char *s) { return s && *s ? wisp_strndup(s, strnlen(s, LABEL_MAX)) : NULL; }

/* The series of these labels in |fm|; made (count 0, |*made| set) when
 * absent and |room|, else NULL. */
static series *find_or_make(family *fm, bool room, bool *made, bool inbound, const char *reason, const char *a,
                            const char *b, const char *c, int rule) {
  uint64_t h = key_hash(inbound, reason, a, b, c, rule);
  size_t i = (size_t)h & fm->mask;
  *made = false;
  for (; fm->index[i]; i = (i + 1) & fm->mask) {
    series *s = fm->items[fm->index[i] - 1];
    if (s->hash == h && same(s, inbound, reason, a, b, c, rule)) return s;
  }
  if (!room) return NULL;
  if (fm->n == fm->cap) {
    family_grow(fm);
    i = (size_t)h & fm->mask;
    while (fm->index[i]) i = (i + 1) & fm->mask;
  }
  series *s = wisp_calloc(1, sizeof(*s));
  *s = (series){.inbound = inbound,
                .reason = reason,
                .a = dup_or_null(a),
                .b = dup_or_null(b),
                .c = dup_or_null(c),
                .rule = rule,
                .hash = h};
  fm->items[fm->n++] = s;
  fm->index[i] = (uint32_t)fm->n;
  *made = true;
  return s;
}

/* The overflow series of |inbound| and |reason| in family |f| (made when
 * first needed: the reasons are a fixed set, so those stay few). */
static series *overflow_series(family *fm, int f, bool inbound, const char *reason) {
  bool made;
  series *s = find_or_make(fm, true, &made, inbound, reason, OVERFLOW, OVERFLOW, f == FAM_UPSTREAM ? OVERFLOW : NULL,
                           RULE_OVERFLOW);
  s->overflow = true;
  return s;
}

/* Drops item |k| from the index (linear probing: later entries of the
 * same run shift back, so lookups still find them). */
static void index_remove(family *fm, size_t k) {
  size_t i = (size_t)fm->items[k]->hash & fm->mask;
  while (fm->index[i] != k + 1) i = (i + 1) & fm->mask;
  for (size_t j = (i + 1) & fm->mask; fm->index[j]; j = (j + 1) & fm->mask) {
    size_t home = (size_t)fm->items[fm->index[j] - 1]->hash & fm->mask;
    bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (stays) continue;
    fm->index[i] = fm->index[j];
    i = j;
  }
  fm->index[i] = 0;
}

/* A full refusals family: the series counted least recently gives way to
 * these labels (its count moves to the overflow series of its reason, so
 * the family's sum never drops). Refusals name what an unverified caller
 * claims (any address, any ID), so no caller may keep the table for good.
 * O(series) per eviction, only while the family is full. */
static series *evict_for(wisp_events *e, family *fm, bool inbound, const char *reason, const char *a, const char *b) {
  size_t victim = fm->n;
  for (size_t k = 0; k < fm->n; k++) {
    if (!fm->items[k]->overflow && (victim == fm->n || fm->items[k]->last < fm->items[victim]->last)) victim = k;
  }
  if (victim == fm->n) return NULL;
  series *v = fm->items[victim];
  overflow_series(fm, FAM_REFUSED, v->inbound, v->reason)->count += v->count;
  e->overflowed += v->count;
  index_remove(fm, victim);
  free(v->a);
  free(v->b);
  *v = (series){.inbound = inbound,
                .reason = reason,
                .a = dup_or_null(a),
                .b = dup_or_null(b),
                .rule = -1,
                .hash = key_hash(inbound, reason, a, b, NULL, -1)};
  size_t i = (size_t)v->hash & fm->mask;
  while (fm->index[i]) i = (i + 1) & fm->mask;
  fm->index[i] = (uint32_t)(victim + 1);
  return v;
}

/* Counts one event in |f|: its own series while there is room under the
 * cap; once full, a refusal takes the least recently counted series
 * (evict_for), any other event the overflow series of its direction and
 * reason. */
static void count(wisp_events *e, int f, bool inbound, const char *reason, const char *a, const char *b, const char *c,
                  int rule) {
  family *fm = &e->fam[f];
  bool made;
  series *s = find_or_make(fm, fm->nreal < e->max, &made, inbound, reason, a, b, c, rule);
  if (s && made) fm->nreal++;
  if (!s && f == FAM_REFUSED) s = evict_for(e, fm, inbound, reason, a, b);
  if (!s) {
    e->overflowed++;
    s = overflow_series(fm, f, inbound, reason);
  }
  s->count++;
  s->last = ++e->tick;
}

/* "1.2.3.4:5678" -> "1.2.3.4", "[::1]:5678" -> "::1": one series per
 * caller host, not per connection. */
static void host_of(const char *addr, char *out, size_t out_len) {
  const char *colon = addr ? strrchr(addr, ':') : NULL;
  size_t n = colon ? (size_t)(colon - addr) : addr ? strlen(addr) : 0;
  if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
    addr++;
    n -= 2;
  }
  snprintf(out, out_len, "%.*s", (int)n, n ? addr : UNKNOWN);
}

void wisp_events_refused(wisp_events *e, bool inbound, const char *reason, const char *peer_addr,
                         const char *claimed_id) {
  if (!e) return;
  char host[64];
  host_of(peer_addr, host, sizeof(host));
  lock(e);
  count(e, FAM_REFUSED, inbound, reason ? reason : WISP_EVENTS_OTHER, host, claimed_id, NULL, -1);
  unlock(e);
}

const char *wisp_events_decision_name(const char *decision) {
  static const struct {
    const char *reason, *name;
  } kNames[] = {
      {WISP_POLICY_REASON_DENY_RULE, "deny_rule"},     {WISP_POLICY_REASON_NO_ALLOW_MATCH, "no_allow_match"},
      {WISP_POLICY_REASON_NO_POLICY, "no_policy"},     {WISP_POLICY_REASON_NO_ALLOW_POLICY, "no_allow_policy"},
      {WISP_POLICY_REASON_NO_IDENTITY, "no_identity"}, {WISP_POLICY_REASON_ALLOW_RULE, "allow_rule"},
  };
  if (!decision) return "invalid_request";
  for (size_t i = 0; i < sizeof(kNames) / sizeof(kNames[0]); i++)
    if (strcmp(decision, kNames[i].reason) == 0) return kNames[i].name;
  return WISP_EVENTS_OTHER;
}

void wisp_events_denied(wisp_events *e, bool inbound, const char *policy, int rule, const char *decision,
                        const char *peer_id) {
  if (!e) return;
  lock(e);
  count(e, FAM_DENIED, inbound, wisp_events_decision_name(decision), policy, peer_id, NULL, rule < 0 ? -1 : rule);
  unlock(e);
}

void wisp_events_upstream_failed(wisp_events *e, const char *reason, const char *upstream, const char *expected,
                                 const char *presented) {
  if (!e) return;
  lock(e);
  count(e, FAM_UPSTREAM, false, reason ? reason : WISP_EVENTS_OTHER, upstream, expected, presented, -1);
  unlock(e);
}

uint64_t wisp_events_overflowed(const wisp_events *e) {
  if (!e) return 0;
  lock(e);
  uint64_t n = e->overflowed;
  unlock(e);
  return n;
}

/* ---- rendering ---- */

/* Label values from outside (a claimed ID comes from a certificate
 * nobody vouched for) are escaped by wisp_metrics_label. */
static void label(wisp_json_writer *b, const char *name, const char *value, const char *dflt) {
  wisp_metrics_label(b, name, value, dflt);
}

/* Our own side: PREFIX_workload, _workload_namespace, _principal, as
 * wisp_metrics names them. */
static void local_labels(wisp_json_writer *b, const char *prefix, const wisp_spiffe_names *l) {
  char name[64];
  snprintf(name, sizeof(name), "%s_workload", prefix);
  label(b, name, l->sa, UNKNOWN);
  snprintf(name, sizeof(name), "%s_workload_namespace", prefix);
  label(b, name, l->ns, UNKNOWN);
  snprintf(name, sizeof(name), "%s_principal", prefix);
  label(b, name, l->id, UNKNOWN);
}

static void head(wisp_json_writer *b, const char *name, const char *help) {
  wisp_json_writer_printf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
}

static void render_refused(wisp_json_writer *b, const family *fm, const wisp_spiffe_names *l) {
  static const char kName[] = "wisp_connection_refusals_total";
  head(b, kName,
       "Downstream connections refused, by reason, caller address and the SPIFFE ID its certificate claims "
       "(unverified); the sum is wisp_connections_refused_total.");
  for (size_t i = 0; i < fm->n; i++) {
    const series *s = fm->items[i];
    wisp_json_writer_printf(b, "%s{direction=\"%s\"", kName, s->inbound ? "inbound" : "outbound");
    label(b, "reason", s->reason, UNKNOWN);
    label(b, "source_address", s->a, UNKNOWN);
    label(b, "source_principal", s->b, UNKNOWN);
    local_labels(b, "destination", l);
    wisp_json_writer_printf(b, "} %" PRIu64 "\n", s->count);
  }
}

static void render_denied(wisp_json_writer *b, const family *fm, const wisp_spiffe_names *l) {
  static const char kName[] = "wisp_policy_denials_total";
  head(b, kName, "Requests and L4 connections denied by policy, by decision, deciding policy and rule, and caller.");
  for (size_t i = 0; i < fm->n; i++) {
    const series *s = fm->items[i];
    char rule[16];
    snprintf(rule, sizeof(rule), "%d", s->rule);
    wisp_json_writer_printf(b, "%s{direction=\"%s\"", kName, s->inbound ? "inbound" : "outbound");
    label(b, "decision", s->reason, UNKNOWN);
    label(b, "policy", s->a, "none");
    label(b, "rule", s->rule == RULE_OVERFLOW ? OVERFLOW : s->rule < 0 ? "none" : rule, "none");
    label(b, "source_principal", s->b, UNKNOWN);
    local_labels(b, "destination", l);
    wisp_json_writer_printf(b, "} %" PRIu64 "\n", s->count);
  }
}

static void render_upstream(wisp_json_writer *b, const family *fm, const wisp_spiffe_names *l) {
  static const char kName[] = "wisp_upstream_verification_failures_total";
  head(b, kName,
       "Upstream mTLS handshakes that failed verification, by reason, upstream address, the SPIFFE ID it had to "
       "present and the one it presented.");
  for (size_t i = 0; i < fm->n; i++) {
    const series *s = fm->items[i];
    wisp_json_writer_printf(b, "%s{direction=\"outbound\"", kName);
    label(b, "reason", s->reason, UNKNOWN);
    local_labels(b, "source", l);
    label(b, "destination_address", s->a, UNKNOWN);
    label(b, "destination_principal", s->b, "any");
    label(b, "presented_principal", s->c, UNKNOWN);
    wisp_json_writer_printf(b, "} %" PRIu64 "\n", s->count);
  }
}

void wisp_events_render(wisp_json_writer *b, const wisp_events *e, const char *local_id) {
  wisp_spiffe_names *l = wisp_calloc(1, sizeof(*l)); /* 6 KiB: not on the stack */
  wisp_spiffe_names_init(l, local_id);
  lock(e);
  render_refused(b, &e->fam[FAM_REFUSED], l);
  render_denied(b, &e->fam[FAM_DENIED], l);
  render_upstream(b, &e->fam[FAM_UPSTREAM], l);
  wisp_json_writer_printf(b,
                          "# HELP wisp_events_overflowed_total Refusals, denials and upstream failures counted "
                          "under \"overflow\" labels because --metrics-max-peers series of their family were "
                          "taken.\n# TYPE wisp_events_overflowed_total counter\nwisp_events_overflowed_total %" PRIu64
                          "\n",
                          e->overflowed);
  unlock(e);
  free(l);
}
