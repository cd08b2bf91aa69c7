#include "proxy/dataplane/wisp_metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_mem.h"
#include "lib/wisp_spiffe.h"

/* Istio's default buckets for istio_request_duration_milliseconds, so a
 * dashboard's histogram_quantile reads the same. */
static const double kBucketsMs[] = {0.5,  1,    5,     10,    25,    50,     100,    250,     500,    1000,
                                    2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000};
#define NBUCKETS (sizeof(kBucketsMs) / sizeof(kBucketsMs[0]))
/* The same bounds as the "le" labels print them (no exponents). */
static const char *const kBucketLabels[NBUCKETS] = {"0.5",   "1",      "5",      "10",      "25",     "50",    "100",
                                                    "250",   "500",    "1000",   "2500",    "5000",   "10000", "30000",
                                                    "60000", "300000", "600000", "1800000", "3600000"};

/* Peer slots 0 and 1 are the stand-ins; real peers follow. */
enum { PEER_OVERFLOW = 0, PEER_UNKNOWN = 1, PEER_FIRST = 2 };

/* A response_code that is not 0 or 100..599 counts as this ("other"). */
#define CODE_OTHER 600
/* gRPC statuses 0..16 are kept; others count as 2 (UNKNOWN), as
 * wisp_grpc_status_parse already maps them. */
#define GRPC_MAX 16
#define GRPC_UNKNOWN 2
#define STATUS_CLASSES 7 /* none, 1xx..5xx, other: as wisp_requests_total's code label */
/* The longest label value: a SPIFFE ID is at most 2048 bytes. */
#define LABEL_VALUE_MAX 2048

/* The byte budget (--metrics-max-bytes) is charged per rendered line:
 * at most this much besides the label values (metric name, label names,
 * direction, statuses, le, value), then the peer's and our own label
 * values (principal, trust domain, namespace, workload) in full. */
#define LINE_FIXED 448
/* Lines an HTTP series renders: 3 counters, the histogram's buckets, +Inf,
 * _sum and _count; a TCP series: 4 counters. */
#define HTTP_LINES (3 + NBUCKETS + 3)
#define TCP_LINES 4
/* Our own label values before the first render tells their real size. */
#define LOCAL_LABELS_GUESS 256

/* A series key: kind, direction, decision, overflow, peer, status, gRPC. */
#define KEY_TCP (1ull << 0)
#define KEY_INBOUND (1ull << 1)
#define KEY_DENIED (1ull << 2)
#define KEY_OVERFLOW (1ull << 3)
#define KEY_PEER_SHIFT 8
#define KEY_PEER_MASK 0xffffffull
#define KEY_STATUS_SHIFT 32
#define KEY_STATUS_MASK 0xfffull
#define KEY_GRPC_SHIFT 44 /* gRPC status + 1: 0 means none */
#define KEY_GRPC_MASK 0xffull

typedef struct {
  char *id, *td, *ns, *sa; /* owned */
  uint64_t hash;
  size_t label_bytes; /* strlen of the four: what each of its lines carries */
} peer;

struct wisp_metrics_series {
  wisp_metrics *owner; /* for its lock (wisp_metrics_share) */
  uint64_t key;
  uint64_t count;                 /* HTTP: requests finished */
  uint64_t buckets[NBUCKETS + 1]; /* HTTP: by duration, not cumulative; last: above every bound */
  double sum_ms;
  uint64_t bytes_in, bytes_out; /* HTTP: request/response body; TCP: received from / sent to the caller */
  uint64_t opened, closed;      /* TCP */
};

struct wisp_metrics {
  peer *peers; /* [PEER_FIRST + max_peers] */
  size_t npeers, max_peers;
  uint32_t *peer_index; /* open addressing: peer slot + 1, 0: empty */
  size_t peer_mask;
  uint32_t last_peer;          /* the labelled peer peer_slot found last; 0: none yet */
  wisp_metrics_series *series; /* [max_series + reserved], never moved */
  size_t nseries, cap_series;  /* cap: max_series plus the overflow series */
  uint32_t *series_index;
  size_t series_mask;
  uint64_t overflowed;
  /* The budget: a body of at most sum_lines * (LINE_FIXED + local_bytes)
   * + sum_peer_bytes, kept under max_bytes when series are admitted. */
  size_t max_bytes, local_bytes;
  uint64_t sum_lines, sum_peer_bytes;
  /* wisp_metrics_share: every call takes |lock| (--workers > 1: one table
   * written by every worker's thread); else it is never touched. */
  bool shared;
  pthread_mutex_t lock;
};

static void lock(const wisp_metrics *m) {
  if (m->shared) pthread_mutex_lock(&((wisp_metrics *)m)->lock);
}

static void unlock(const wisp_metrics *m) {
  if (m->shared) pthread_mutex_unlock(&((wisp_metrics *)m)->lock);
}

/* ---- keys and hashing ---- */

static uint64_t mix64(uint64_t x) { /* splitmix64's finaliser */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static uint64_t hash_str(const char *s) { /* FNV-1a */
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
  return h;
}

static size_t pow2_at_least(size_t n) {
  size_t p = 16;
  while (p < n) p <<= 1;
  return p;
}

static int status_class(int status) { return status == 0 ? 0 : (status >= 100 && status < 600) ? status / 100 : 6; }

static uint64_t http_key(bool inbound, bool denied, uint32_t peer_slot, int status, int grpc) {
  uint64_t code = (status == 0 || (status >= 100 && status < 600)) ? (uint64_t)status : CODE_OTHER;
  uint64_t g = grpc < 0 ? 0 : (uint64_t)(grpc > GRPC_MAX ? GRPC_UNKNOWN : grpc) + 1;
  return (inbound ? KEY_INBOUND : 0) | (denied ? KEY_DENIED : 0) | ((uint64_t)peer_slot << KEY_PEER_SHIFT) |
         (code << KEY_STATUS_SHIFT) | (g << KEY_GRPC_SHIFT);
}

/* The series that takes a request when the table is full: its direction,
 * decision and status class, under peer "overflow". */
static uint64_t http_overflow_key(bool inbound, bool denied, int cls) {
  return (inbound ? KEY_INBOUND : 0) | (denied ? KEY_DENIED : 0) | KEY_OVERFLOW |
         ((uint64_t)PEER_OVERFLOW << KEY_PEER_SHIFT) | ((uint64_t)cls << KEY_STATUS_SHIFT);
}

static uint64_t tcp_key(bool inbound, bool denied, uint32_t peer_slot) {
  return KEY_TCP | (inbound ? KEY_INBOUND : 0) | (denied ? KEY_DENIED : 0) | ((uint64_t)peer_slot << KEY_PEER_SHIFT);
}

/* ---- peers ---- */

/* A stand-in peer: every label |name|. */
static void peer_init_named(peer *p, const char *name) {
  p->id = wisp_strdup(name);
  p->td = wisp_strdup(name);
  p->ns = wisp_strdup(name);
  p->sa = wisp_strdup(name);
  p->label_bytes = 4 * strlen(name);
}

static void peer_init(peer *p, const char *id, uint64_t hash) {
  char td[LABEL_VALUE_MAX + 1], ns[LABEL_VALUE_MAX + 1], sa[LABEL_VALUE_MAX + 1];
  wisp_spiffe_split_names(id, td, sizeof(td), ns, sizeof(ns), sa, sizeof(sa));
  p->id = wisp_strdup(id);
  p->td = wisp_strdup(td);
  p->ns = wisp_strdup(ns);
  p->sa = wisp_strdup(sa);
  p->hash = hash;
  p->label_bytes = strlen(id) + strlen(td) + strlen(ns) + strlen(sa);
}

/* ---- the byte budget ---- */

static uint64_t series_lines(uint64_t key) { return (key & KEY_TCP) ? TCP_LINES : HTTP_LINES; }

static uint64_t line_bytes(const wisp_metrics *m, size_t peer_label_bytes) {
  return LINE_FIXED + m->local_bytes + peer_label_bytes;
}

/* The rendered size the table may reach, at our current label sizes. */
static uint64_t budget_used(const wisp_metrics *m) {
  return m->sum_lines * (LINE_FIXED + m->local_bytes) + m->sum_peer_bytes;
}

/* Whether |lines| more lines with |peer_label_bytes| of peer labels each
 * still fit the budget. */
static bool budget_fits(const wisp_metrics *m, uint64_t lines, size_t peer_label_bytes) {
  uint64_t used = budget_used(m);
  return used <= m->max_bytes && lines * line_bytes(m, peer_label_bytes) <= m->max_bytes - used;
}

/* The slot of |id|: found, or added while there is room, else overflow. */
static uint32_t peer_slot(wisp_metrics *m, const char *id) {
  if (!id || !*id) return PEER_UNKNOWN;
  /* Most requests come from the peer of the one before (a sidecar's
   * callers are few; the other side has one peer per route): one string
   * compare instead of hashing the ID. Peers are never removed. */
  if (m->last_peer >= PEER_FIRST && strcmp(m->peers[m->last_peer].id, id) == 0) return m->last_peer;
  uint64_t h = hash_str(id);
  for (size_t i = (size_t)h & m->peer_mask;; i = (i + 1) & m->peer_mask) {
    uint32_t v = m->peer_index[i];
    if (v == 0) break;
    const peer *p = &m->peers[v - 1];
    if (p->hash == h && strcmp(p->id, id) == 0) return m->last_peer = v - 1;
  }
  /* A peer is labelled only if one HTTP series of its fits the budget
   * (its four label values are at most twice its ID). */
  if (m->npeers >= m->max_peers || !budget_fits(m, HTTP_LINES, 2 * strlen(id))) return PEER_OVERFLOW;
  uint32_t slot = (uint32_t)(PEER_FIRST + m->npeers++);
  peer_init(&m->peers[slot], id, h);
  size_t i = (size_t)h & m->peer_mask;
  while (m->peer_index[i]) i = (i + 1) & m->peer_mask;
  m->peer_index[i] = slot + 1;
  return m->last_peer = slot;
}

/* ---- series ---- */

static wisp_metrics_series *series_find(const wisp_metrics *m, uint64_t key, size_t *out_free) {
  size_t i = (size_t)mix64(key) & m->series_mask;
  for (;; i = (i + 1) & m->series_mask) {
    uint32_t v = m->series_index[i];
    if (v == 0) break;
    if (m->series[v - 1].key == key) return &m->series[v - 1];
  }
  if (out_free) *out_free = i;
  return NULL;
}

static wisp_metrics_series *series_add(wisp_metrics *m, uint64_t key, size_t free_slot) {
  wisp_metrics_series *s = &m->series[m->nseries++];
  s->owner = m;
  s->key = key;
  uint64_t lines = series_lines(key);
  m->sum_lines += lines;
  m->sum_peer_bytes += lines * m->peers[(key >> KEY_PEER_SHIFT) & KEY_PEER_MASK].label_bytes;
  m->series_index[free_slot] = (uint32_t)m->nseries;
  return s;
}

/* The series of |key|, or |overflow_key|'s (always there) once full.
 * Counts one overflow if that, or |peer_of| being the overflow peer, happened. */
static wisp_metrics_series *series_get(wisp_metrics *m, uint64_t key, uint64_t overflow_key, uint32_t peer_of) {
  size_t free_slot;
  wisp_metrics_series *s = series_find(m, key, &free_slot);
  if (!s && m->nseries < m->cap_series &&
      budget_fits(m, series_lines(key), m->peers[(key >> KEY_PEER_SHIFT) & KEY_PEER_MASK].label_bytes)) {
    s = series_add(m, key, free_slot);
  }
  if (!s || peer_of == PEER_OVERFLOW) m->overflowed++;
  return s ? s : series_find(m, overflow_key, NULL);
}

static void reserve(wisp_metrics *m, uint64_t key) {
  size_t free_slot;
  if (!series_find(m, key, &free_slot)) series_add(m, key, free_slot);
}

wisp_metrics *wisp_metrics_new(size_t max_peers, size_t max_series, size_t max_bytes) {
  enum { RESERVED = 2 * 2 * STATUS_CLASSES + 2 * 2 }; /* HTTP and TCP overflow series */
  wisp_metrics *m = wisp_calloc(1, sizeof(*m));
  m->max_peers = max_peers;
  m->max_bytes = max_bytes;
  m->local_bytes = LOCAL_LABELS_GUESS;
  m->peers = wisp_calloc(PEER_FIRST + max_peers, sizeof(*m->peers));
  peer_init_named(&m->peers[PEER_OVERFLOW], "overflow");
  peer_init_named(&m->peers[PEER_UNKNOWN], "unknown");
  m->peer_mask = pow2_at_least(2 * max_peers) - 1;
  m->peer_index = wisp_calloc(m->peer_mask + 1, sizeof(*m->peer_index));
  m->cap_series = max_series + RESERVED;
  /* calloc: pages of series never used are never touched. */
  m->series = wisp_calloc(m->cap_series, sizeof(*m->series));
  m->series_mask = pow2_at_least(2 * m->cap_series) - 1;
  m->series_index = wisp_calloc(m->series_mask + 1, sizeof(*m->series_index));
  for (int in = 0; in < 2; in++) {
    for (int d = 0; d < 2; d++) {
      for (int c = 0; c < STATUS_CLASSES; c++) reserve(m, http_overflow_key(in, d, c));
      reserve(m, tcp_key(in, d, PEER_OVERFLOW));
    }
  }
  m->cap_series = m->nseries + max_series;
  pthread_mutex_init(&m->lock, NULL);
  return m;
}

void wisp_metrics_share(wisp_metrics *m) { m->shared = true; }

void wisp_metrics_free(wisp_metrics *m) {
  if (!m) return;
  for (size_t i = 0; i < PEER_FIRST + m->npeers; i++) {
    free(m->peers[i].id);
    free(m->peers[i].td);
    free(m->peers[i].ns);
    free(m->peers[i].sa);
  }
  free(m->peers);
  free(m->peer_index);
  free(m->series);
  free(m->series_index);
  pthread_mutex_destroy(&m->lock);
  free(m);
}

void wisp_metrics_request_done(wisp_metrics *m, const wisp_metrics_request *r) {
  if (!m) return;
  lock(m);
  uint32_t p = peer_slot(m, r->peer_id);
  wisp_metrics_series *s = series_get(m, http_key(r->inbound, r->denied, p, r->status, r->grpc_status),
                                      http_overflow_key(r->inbound, r->denied, status_class(r->status)), p);
  size_t b = 0;
  while (b < NBUCKETS && r->duration_ms > kBucketsMs[b]) b++;
  s->count++;
  s->buckets[b]++;
  s->sum_ms += r->duration_ms;
  s->bytes_in += r->bytes_in;
  s->bytes_out += r->bytes_out;
  unlock(m);
}

wisp_metrics_series *wisp_metrics_tcp_open(wisp_metrics *m, bool inbound, const char *peer_id, bool denied) {
  if (!m) return NULL;
  lock(m);
  uint32_t p = peer_slot(m, peer_id);
  wisp_metrics_series *s = series_get(m, tcp_key(inbound, denied, p), tcp_key(inbound, denied, PEER_OVERFLOW), p);
  s->opened++;
  unlock(m);
  return s;
}

void wisp_metrics_tcp_bytes(wisp_metrics_series *s, uint64_t received, uint64_t sent) {
  if (!s) return;
  lock(s->owner);
  s->bytes_in += received;
  s->bytes_out += sent;
  unlock(s->owner);
}

void wisp_metrics_tcp_close(wisp_metrics_series *s) {
  if (!s) return;
  lock(s->owner);
  s->closed++;
  unlock(s->owner);
}

size_t wisp_metrics_peers(const wisp_metrics *m) {
  if (!m) return 0;
  lock(m);
  size_t n = m->npeers;
  unlock(m);
  return n;
}

uint64_t wisp_metrics_overflowed(const wisp_metrics *m) {
  if (!m) return 0;
  lock(m);
  uint64_t n = m->overflowed;
  unlock(m);
  return n;
}

/* ---- rendering ---- */

void wisp_metrics_label(wisp_json_writer *b, const char *name, const char *value, const char *dflt) {
  const char *v = value && *value ? value : dflt;
  wisp_json_writer_printf(b, ",%s=\"", name);
  for (const char *p = v; *p; p++) {
    if (*p == '\\' || *p == '"') {
      char esc[3] = {'\\', *p, 0};
      wisp_json_writer_raw(b, esc, 2);
    } else if (*p == '\n') {
      wisp_json_writer_raw(b, "\\n", 2);
    } else {
      wisp_json_writer_raw(b, p, 1);
    }
  }
  wisp_json_writer_raw(b, "\"", 1);
}

/* One side's labels: PREFIX_workload (the service account: wisp knows a
 * workload by its SPIFFE ID), _workload_namespace, _principal, _trust_domain. */
static void side_labels(wisp_json_writer *b, const char *prefix, const char *id, const char *td, const char *ns,
                        const char *sa) {
  static const char *const kSuffix[] = {"workload", "workload_namespace", "principal", "trust_domain"};
  const char *values[] = {sa, ns, id, td};
  for (size_t i = 0; i < sizeof(kSuffix) / sizeof(kSuffix[0]); i++) {
    char name[64];
    snprintf(name, sizeof(name), "%s_%s", prefix, kSuffix[i]);
    wisp_metrics_label(b, name, values[i], "unknown");
  }
}

/* NAME{labels of |s|[,le="LE"]} VALUE-prefix; the caller prints the value. */
static void series_labels(wisp_json_writer *b, const wisp_metrics *m, const wisp_metrics_series *s,
                          const wisp_spiffe_names *local) {
  static const char *const kClass[STATUS_CLASSES] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx", "other"};
  bool inbound = s->key & KEY_INBOUND;
  const peer *p = &m->peers[(s->key >> KEY_PEER_SHIFT) & KEY_PEER_MASK];
  wisp_json_writer_printf(b, "direction=\"%s\",reporter=\"%s\"", inbound ? "inbound" : "outbound",
                          inbound ? "destination" : "source");
  if (inbound) {
    side_labels(b, "source", p->id, p->td, p->ns, p->sa);
    side_labels(b, "destination", local->id, local->td, local->ns, local->sa);
  } else {
    side_labels(b, "source", local->id, local->td, local->ns, local->sa);
    side_labels(b, "destination", p->id, p->td, p->ns, p->sa);
  }
  if (!(s->key & KEY_TCP)) {
    unsigned code = (unsigned)((s->key >> KEY_STATUS_SHIFT) & KEY_STATUS_MASK);
    unsigned g = (unsigned)((s->key >> KEY_GRPC_SHIFT) & KEY_GRPC_MASK);
    if (s->key & KEY_OVERFLOW) {
      wisp_json_writer_printf(b, ",response_code=\"overflow\",grpc_response_status=\"overflow\",code=\"%s\"",
                              kClass[code]);
    } else {
      char grpc[8] = "";
      if (g > 0) snprintf(grpc, sizeof(grpc), "%u", g - 1);
      char rc[8];
      if (code == CODE_OTHER) snprintf(rc, sizeof(rc), "other");
      else snprintf(rc, sizeof(rc), "%u", code);
      wisp_json_writer_printf(b, ",response_code=\"%s\",grpc_response_status=\"%s\",code=\"%s\"", rc, grpc,
                              kClass[status_class((int)code)]);
    }
  }
  wisp_json_writer_printf(b, ",decision=\"%s\"", (s->key & KEY_DENIED) ? "deny" : "allow");
}

typedef enum { F_COUNT, F_BYTES_IN, F_BYTES_OUT, F_OPENED, F_CLOSED } field;

static uint64_t field_of(const wisp_metrics_series *s, field f) {
  switch (f) {
    case F_COUNT:
      return s->count;
    case F_BYTES_IN:
      return s->bytes_in;
    case F_BYTES_OUT:
      return s->bytes_out;
    case F_OPENED:
      return s->opened;
    case F_CLOSED:
      return s->closed;
  }
  return 0;
}

/* Reserved overflow series are printed only once they counted something. */
static bool series_used(const wisp_metrics_series *s) { return s->count || s->opened; }

static void render_counter(wisp_json_writer *b, const wisp_metrics *m, size_t n, const wisp_spiffe_names *local,
                           bool tcp, const char *name, const char *help, field f) {
  wisp_json_writer_printf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
  for (size_t i = 0; i < n; i++) {
    const wisp_metrics_series *s = &m->series[i];
    if (!(s->key & KEY_TCP) != !tcp || !series_used(s)) continue;
    wisp_json_writer_printf(b, "%s{", name);
    series_labels(b, m, s, local);
    wisp_json_writer_printf(b, "} %" PRIu64 "\n", field_of(s, f));
  }
}

static void render_histogram(wisp_json_writer *b, const wisp_metrics *m, size_t n, const wisp_spiffe_names *local) {
  static const char kName[] = "wisp_request_duration_milliseconds";
  wisp_json_writer_printf(b,
                          "# HELP %s Duration of finished requests, from their first HEADERS to the end of both "
                          "sides, in milliseconds (Istio's buckets).\n# TYPE %s histogram\n",
                          kName, kName);
  for (size_t i = 0; i < n; i++) {
    const wisp_metrics_series *s = &m->series[i];
    if ((s->key & KEY_TCP) || !series_used(s)) continue;
    uint64_t cum = 0;
    for (size_t k = 0; k <= NBUCKETS; k++) {
      cum += s->buckets[k];
      wisp_json_writer_printf(b, "%s_bucket{", kName);
      series_labels(b, m, s, local);
      if (k < NBUCKETS) {
        wisp_json_writer_printf(b, ",le=\"%s\"} %" PRIu64 "\n", kBucketLabels[k], cum);
      } else {
        wisp_json_writer_printf(b, ",le=\"+Inf\"} %" PRIu64 "\n", cum);
      }
    }
    wisp_json_writer_printf(b, "%s_sum{", kName);
    series_labels(b, m, s, local);
    wisp_json_writer_printf(b, "} %.3f\n%s_count{", s->sum_ms, kName);
    series_labels(b, m, s, local);
    wisp_json_writer_printf(b, "} %" PRIu64 "\n", s->count);
  }
}

/* How many series (a prefix of the table: the reserved overflow series
 * first, then in the order admitted) fit the budget at our own labels'
 * real size. All of them, unless our SPIFFE ID grew past what the budget
 * assumed when they were admitted. */
static size_t series_within_budget(const wisp_metrics *m) {
  uint64_t used = 0;
  for (size_t i = 0; i < m->nseries; i++) {
    uint64_t key = m->series[i].key;
    used += series_lines(key) * line_bytes(m, m->peers[(key >> KEY_PEER_SHIFT) & KEY_PEER_MASK].label_bytes);
    if (used > m->max_bytes) return i;
  }
  return m->nseries;
}

void wisp_metrics_render(wisp_json_writer *b, wisp_metrics *m, const char *local_id) {
  if (!m) return;
  wisp_spiffe_names *local = wisp_calloc(1, sizeof(*local));
  wisp_spiffe_names_init(local, local_id);
  lock(m);
  /* From now on new series are charged at our labels' real size. */
  m->local_bytes = strlen(local->id) + strlen(local->td) + strlen(local->ns) + strlen(local->sa);
  size_t n = series_within_budget(m);
  render_counter(b, m, n, local, false, "wisp_requests_total",
                 "Finished requests by direction, caller and callee identity, status, gRPC status, status class "
                 "(code; none: ended without a response) and policy decision.",
                 F_COUNT);
  render_histogram(b, m, n, local);
  render_counter(b, m, n, local, false, "wisp_request_bytes_total", "Request body bytes of finished requests.",
                 F_BYTES_IN);
  render_counter(b, m, n, local, false, "wisp_response_bytes_total", "Response body bytes of finished requests.",
                 F_BYTES_OUT);
  render_counter(b, m, n, local, true, "wisp_tcp_connections_opened_total",
                 "L4 (non-HTTP/2) connections opened, by caller and callee identity and policy decision.", F_OPENED);
  render_counter(b, m, n, local, true, "wisp_tcp_connections_closed_total", "L4 connections closed.", F_CLOSED);
  render_counter(b, m, n, local, true, "wisp_tcp_received_bytes_total",
                 "L4 bytes received from the caller (the request direction).", F_BYTES_IN);
  render_counter(b, m, n, local, true, "wisp_tcp_sent_bytes_total",
                 "L4 bytes sent back to the caller (the response direction).", F_BYTES_OUT);
  wisp_json_writer_printf(b,
                          "# HELP wisp_metrics_peers Distinct peer SPIFFE IDs labelled in metrics "
                          "(at most --metrics-max-peers).\n# TYPE wisp_metrics_peers gauge\nwisp_metrics_peers %zu\n",
                          m->npeers);
  wisp_json_writer_printf(
      b,
      "# HELP wisp_metrics_overflow_total Requests and L4 connections counted under \"overflow\" "
      "labels because --metrics-max-peers, --metrics-max-series or --metrics-max-bytes was reached.\n"
      "# TYPE wisp_metrics_overflow_total counter\nwisp_metrics_overflow_total %" PRIu64 "\n",
      m->overflowed);
  wisp_json_writer_printf(b,
                          "# HELP wisp_metrics_budget_bytes The most bytes the series above may render "
                          "(--metrics-max-bytes) and what the series kept so far may take at most.\n"
                          "# TYPE wisp_metrics_budget_bytes gauge\nwisp_metrics_budget_bytes{kind=\"max\"} %zu\n"
                          "wisp_metrics_budget_bytes{kind=\"used\"} %" PRIu64 "\n",
                          m->max_bytes, budget_used(m));
  unlock(m);
  free(local);
}
