/* wispctl check: the agent's checks, the report and its printing (see
 * check.h). */
#include "control/wispctl/check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_json.h"
#include "lib/wisp_mem.h"

#define CHECK_JSON_MAX (64u << 20)
#define CHECK_ERR_MAX 2048

static const char kMarks[3][4] = {"\xe2\x9c\x93", "\xe2\x80\xbc", "\xe2\x9c\x97"}; /* ✓ ‼ ✗ */
static const char *const kStatusNames[3] = {"pass", "warning", "fail"};

/* ---- the report ---- */

static char *vformat(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static char *vformat(const char *fmt, va_list ap) {
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(NULL, 0, fmt, copy);
  va_end(copy);
  char *s = wisp_malloc(n > 0 ? (size_t)n + 1 : 1);
  vsnprintf(s, n > 0 ? (size_t)n + 1 : 1, fmt, ap);
  return s;
}

wispctl_check *wispctl_report_add(wispctl_report *r, const char *group, const char *id, wispctl_check_status st,
                                  const char *hint, const char *fmt, ...) {
  if (r->n == r->cap) {
    r->cap = r->cap ? 2 * r->cap : 16;
    r->v = wisp_realloc(r->v, r->cap * sizeof(*r->v));
  }
  wispctl_check *c = &r->v[r->n++];
  memset(c, 0, sizeof(*c));
  c->group = wisp_strdup(group);
  c->id = wisp_strdup(id);
  c->status = st;
  c->hint = hint && st != WISPCTL_PASS ? wisp_strdup(hint) : NULL;
  va_list ap;
  va_start(ap, fmt);
  c->title = vformat(fmt, ap);
  va_end(ap);
  return c;
}

void wispctl_check_detail(wispctl_check *c, const char *fmt, ...) {
  c->details = wisp_realloc(c->details, (c->ndetails + 1) * sizeof(*c->details));
  va_list ap;
  va_start(ap, fmt);
  c->details[c->ndetails++] = vformat(fmt, ap);
  va_end(ap);
}

static void check_free(wispctl_check *c) {
  for (size_t i = 0; i < c->ndetails; i++) free(c->details[i]);
  free(c->details);
  free(c->group);
  free(c->id);
  free(c->title);
  free(c->hint);
}

void wispctl_report_free(wispctl_report *r) {
  for (size_t i = 0; i < r->n; i++) check_free(&r->v[i]);
  free(r->v);
  memset(r, 0, sizeof(*r));
}

/* ---- the agent's checks ---- */

static const char kHintAgent[] =
    "start wisp-agent (on a VM: systemctl status wisp-agent; in Kubernetes: the wisp-agent pod in wisp-system), "
    "or point --agent (or WISP_AGENT) at its API socket";
static const char kHintRotate[] =
    "rotate the CA before it expires: wispctl ca rotate prepare; once every proxy ACKed the new bundle, "
    "wispctl ca rotate activate; one SVID lifetime later, wispctl ca rotate finish";
static const char kHintOldRoot[] = "finish the rotation (wispctl ca rotate finish) before the old root ends";
static const char kHintRotationPrepared[] =
    "the new root is in every bundle but does not sign yet: once every proxy ACKed the current version (below), "
    "run wispctl ca rotate activate";
static const char kHintRotationActive[] =
    "the new root signs, the old root is still trusted: once every SVID was renewed (one SVID lifetime after "
    "activate), run wispctl ca rotate finish";
static const char kHintConnected[] =
    "a running proxy reconnects by itself with backoff: read its log (\"config watch ended\", \"sign_failed\") and "
    "check it can reach the agent's socket; if the workload was removed, this entry is stale";
static const char kHintAcked[] =
    "a proxy that has not ACKed still enforces an older policy: wait a second and check again; a NACK is "
    "explained below";
static const char kHintNack[] =
    "the proxy refused the config and keeps enforcing its last good one: fix what the reason names (wispctl "
    "policy check FILE), then wispctl apply -f FILE again; the proxy's log has the same reason (\"event\":\"nack\")";
static const char kHintSvid[] =
    "proxies renew at about half-life: an SVID this close to its end means renewals fail (the proxy's log: "
    "\"sign_failed\"; the agent must be reachable), or, with --svid-min-validity given, the agent's --svid-ttl is "
    "shorter than it";

void wispctl_check_when(char *out, size_t out_len, int64_t t, int64_t now) {
  char span[32], at[64];
  wispctl_format_span(span, sizeof(span), t - now);
  wispctl_format_time(at, sizeof(at), t);
  snprintf(out, out_len, t > now ? "in %s (%s)" : "%s ago (%s)", span, at);
}

bool wispctl_check_rotation_step(const char *rotation, int64_t finish_after, int64_t now, char *where, size_t where_len,
                                 char *next, size_t next_len) {
  char w[128];
  wispctl_check_when(w, sizeof(w), finish_after, now);
  if (rotation && strcmp(rotation, "prepared") == 0) {
    snprintf(where, where_len, "CA rotation prepared: the new root is in the bundle, the old root still signs");
    snprintf(next, next_len,
             "a CA rotation is under way: next, once every proxy ACKed the current version, wispctl ca rotate "
             "activate; finish (which drops the old root) is allowed one SVID lifetime after that");
  } else if (rotation && strcmp(rotation, "active") == 0) {
    if (finish_after > now) {
      snprintf(where, where_len, "CA rotation active: the new root signs; finish is allowed %s", w);
    } else {
      snprintf(where, where_len, "CA rotation active: the new root signs; finish is allowed now");
    }
    snprintf(next, next_len,
             "a CA rotation is under way: next, wispctl ca rotate finish (drops the old root) once it is allowed%s; "
             "the old root must not end before then",
             finish_after > now ? " (see above)" : ", now");
  } else {
    return false;
  }
  return true;
}

static void check_ca(wispctl_report *r, const Wisp__V1__StatusResponse *st, const wispctl_check_opts *o, int64_t now) {
  char w[128], min[32];
  int64_t t = st->ca_not_after_unix;
  wispctl_format_span(min, sizeof(min), o->ca_min_s);
  wispctl_check_when(w, sizeof(w), t, now);
  if (t == 0) {
    wispctl_report_add(r, "agent", "agent.ca", WISPCTL_FAIL, kHintRotate, "the agent cannot read its CA's expiry");
  } else if (t <= now) {
    wispctl_report_add(r, "agent", "agent.ca", WISPCTL_FAIL, kHintRotate, "the CA certificate expired %s", w);
  } else if (t - now < o->ca_min_s) {
    wispctl_report_add(r, "agent", "agent.ca", WISPCTL_FAIL, kHintRotate,
                       "the CA certificate expires %s, within --ca-min-validity %s", w, min);
  } else {
    wispctl_report_add(r, "agent", "agent.ca", WISPCTL_PASS, NULL, "the CA certificate is valid, expires %s", w);
  }
}

static void check_bundle(wispctl_report *r, const Wisp__V1__StatusResponse *st, const wispctl_check_opts *o,
                         int64_t now) {
  if (st->bundle_roots == 0) {
    wispctl_report_add(r, "agent", "agent.bundle", WISPCTL_FAIL, kHintRotate, "the trust bundle holds no root");
    return;
  }
  /* The signing root's expiry is the CA check's; an older root nearing its
   * end during a rotation is expected, until finish drops it. */
  wispctl_check_status worst = WISPCTL_PASS;
  char w[128];
  for (size_t i = 0; i < st->n_bundle_not_after_unix; i++) {
    int64_t t = st->bundle_not_after_unix[i];
    if (t > now + o->ca_min_s) continue;
    wispctl_check_status s = t <= now || i == 0 ? WISPCTL_FAIL : WISPCTL_WARN;
    if (s > worst) worst = s;
  }
  if (worst == WISPCTL_PASS) {
    wispctl_report_add(r, "agent", "agent.bundle", worst, NULL, "the trust bundle's %u root(s) are valid",
                       st->bundle_roots);
    return;
  }
  wispctl_check *c =
      wispctl_report_add(r, "agent", "agent.bundle", worst, worst == WISPCTL_FAIL ? kHintRotate : kHintOldRoot,
                         "the trust bundle holds %u root(s), not all valid for long", st->bundle_roots);
  for (size_t i = 0; i < st->n_bundle_not_after_unix; i++) {
    int64_t t = st->bundle_not_after_unix[i];
    wispctl_check_when(w, sizeof(w), t, now);
    wispctl_check_detail(c, "root %zu%s: %s %s", i + 1, i == 0 ? " (the signing CA's)" : "",
                         t <= now ? "expired" : "expires", w);
  }
}

static void check_rotation(wispctl_report *r, const Wisp__V1__StatusResponse *st, int64_t now) {
  const char *state = st->ca_rotation && *st->ca_rotation ? st->ca_rotation : "none";
  if (strcmp(state, "none") == 0) {
    wispctl_report_add(r, "agent", "agent.rotation", WISPCTL_PASS, NULL, "no CA rotation in progress");
  } else if (strcmp(state, "prepared") == 0) {
    wispctl_report_add(r, "agent", "agent.rotation", WISPCTL_WARN, kHintRotationPrepared,
                       "a CA rotation is prepared: a new root is in the bundle, the old root still signs");
  } else if (strcmp(state, "active") == 0) {
    wispctl_check *c =
        wispctl_report_add(r, "agent", "agent.rotation", WISPCTL_WARN, kHintRotationActive,
                           "a CA rotation is active: the new root signs, %u roots are trusted", st->bundle_roots);
    char w[128];
    int64_t t = st->ca_rotation_finish_after_unix;
    wispctl_check_when(w, sizeof(w), t, now);
    if (t > now) {
      wispctl_check_detail(c, "SVIDs the old root signed may still be in use: finish %s or later", w);
    } else if (t) {
      wispctl_check_detail(c, "every SVID the old root signed has expired: finish is due");
    }
  } else {
    wispctl_report_add(r, "agent", "agent.rotation", WISPCTL_WARN, NULL, "CA rotation state \"%s\"", state);
  }
}

static bool has(const char *s) { return s && *s; }

/* An identity's connected sidecars, ACKs and NACKs; an agent without the
 * per-sidecar counts (older) counts each connected identity as one. */
static uint32_t sidecars(const Wisp__V1__ProxyStatus *p) {
  return p->sidecars_connected ? p->sidecars_connected : p->connected ? 1 : 0;
}

static bool at_version(const Wisp__V1__ProxyStatus *p, const char *version) {
  return has(p->acked_version) && strcmp(p->acked_version, version) == 0;
}

static uint32_t sidecars_acked(const Wisp__V1__ProxyStatus *p, const char *version) {
  if (p->sidecars_connected) return p->sidecars_acked;
  return p->connected && at_version(p, version) && !has(p->last_nack_error) ? 1 : 0;
}

static uint32_t sidecars_nacked(const Wisp__V1__ProxyStatus *p) {
  if (p->sidecars_connected) return p->sidecars_nacked;
  return has(p->last_nack_error) ? 1 : 0;
}

static const char *plural(size_t n) { return n == 1 ? "" : "s"; }

static void check_connected(wispctl_report *r, const Wisp__V1__StatusResponse *st, int64_t now) {
  size_t down = 0, gone = 0, running = 0;
  for (size_t i = 0; i < st->n_proxies; i++) {
    const Wisp__V1__ProxyStatus *p = st->proxies[i];
    running += sidecars(p);
    if (p->connected) continue;
    if (p->svid_not_after_unix && p->svid_not_after_unix <= now) {
      gone++;
    } else {
      down++;
    }
  }
  wispctl_check_status s = down ? WISPCTL_FAIL : gone ? WISPCTL_WARN : WISPCTL_PASS;
  wispctl_check *c;
  if (st->n_proxies == 0) {
    c = wispctl_report_add(r, "agent", "agent.proxies", s, NULL, "no proxy has connected yet");
  } else if (s == WISPCTL_PASS) {
    c = wispctl_report_add(r, "agent", "agent.proxies", s, NULL,
                           "all %zu known identities have sidecars connected (%zu sidecar%s)", st->n_proxies, running,
                           plural(running));
  } else {
    c = wispctl_report_add(r, "agent", "agent.proxies", s, kHintConnected,
                           "%zu of %zu known identities have no sidecar connected (%zu sidecar%s connected)",
                           down + gone, st->n_proxies, running, plural(running));
  }
  char seen[128];
  for (size_t i = 0; i < st->n_proxies; i++) {
    const Wisp__V1__ProxyStatus *p = st->proxies[i];
    if (p->connected) continue;
    if (p->last_seen_unix) {
      wispctl_check_when(seen, sizeof(seen), p->last_seen_unix, now);
    } else {
      snprintf(seen, sizeof(seen), "never");
    }
    bool expired = p->svid_not_after_unix && p->svid_not_after_unix <= now;
    wispctl_check_detail(c, "%s: no sidecar connected, last seen %s%s", p->spiffe_id, seen,
                         expired ? "; its SVID has expired (gone?)" : "");
  }
}

static void check_acked(wispctl_report *r, const Wisp__V1__StatusResponse *st) {
  size_t behind = 0, connected = 0, ids = 0;
  for (size_t i = 0; i < st->n_proxies; i++) {
    const Wisp__V1__ProxyStatus *p = st->proxies[i];
    uint32_t n = sidecars(p), acked = sidecars_acked(p, st->version);
    if (!n) continue;
    ids++;
    connected += n;
    behind += acked < n ? n - acked : 0;
  }
  if (!behind) {
    wispctl_report_add(r, "agent", "agent.acked", WISPCTL_PASS, NULL,
                       "every connected sidecar (%zu, of %zu identit%s) ACKed policy version %s", connected, ids,
                       ids == 1 ? "y" : "ies", st->version);
    return;
  }
  wispctl_check *c = wispctl_report_add(r, "agent", "agent.acked", WISPCTL_FAIL, kHintAcked,
                                        "%zu of %zu connected sidecars have not ACKed policy version %s", behind,
                                        connected, st->version);
  for (size_t i = 0; i < st->n_proxies; i++) {
    const Wisp__V1__ProxyStatus *p = st->proxies[i];
    uint32_t n = sidecars(p), acked = sidecars_acked(p, st->version), nacked = sidecars_nacked(p);
    if (acked >= n) continue;
    uint32_t silent = n - acked > nacked ? n - acked - nacked : 0;
    char nacks[128] = "", waits[64] = "";
    if (nacked) {
      snprintf(nacks, sizeof(nacks), ", %u NACKed version %s (see below)", nacked,
               has(p->nacked_version) ? p->nacked_version : "?");
    }
    if (silent) snprintf(waits, sizeof(waits), ", %u %s not answered yet", silent, silent == 1 ? "has" : "have");
    wispctl_check_detail(c, "%s: %u of %u sidecar%s not at it%s%s", p->spiffe_id, n - acked, n, plural(n), nacks,
                         waits);
  }
}

static void check_nacks(wispctl_report *r, const Wisp__V1__StatusResponse *st) {
  size_t n = 0;
  for (size_t i = 0; i < st->n_proxies; i++) n += sidecars_nacked(st->proxies[i]);
  if (!n) {
    wispctl_report_add(r, "agent", "agent.nacks", WISPCTL_PASS, NULL,
                       "no connected sidecar refused a config (no NACK)");
    return;
  }
  wispctl_check *c = wispctl_report_add(r, "agent", "agent.nacks", WISPCTL_FAIL, kHintNack,
                                        "%zu sidecar%s refused a config (NACK)", n, plural(n));
  for (size_t i = 0; i < st->n_proxies; i++) {
    const Wisp__V1__ProxyStatus *p = st->proxies[i];
    uint32_t k = sidecars_nacked(p);
    if (!k) continue;
    wispctl_check_detail(c, "%s (%u of %u sidecar%s) NACKed version %s: %s", p->spiffe_id, k, sidecars(p),
                         plural(sidecars(p)), has(p->nacked_version) ? p->nacked_version : "?", p->last_nack_error);
  }
}

int64_t wispctl_check_svid_min(const wispctl_check_opts *o, int64_t issued, int64_t not_after) {
  int64_t lifetime = issued && not_after > issued ? not_after - issued : 0;
  if (o->svid_min_given || lifetime == 0) return o->svid_min_s;
  return lifetime / 4 < o->svid_min_s ? lifetime / 4 : o->svid_min_s;
}

static bool svid_near_end(const wispctl_check_opts *o, const Wisp__V1__ProxyStatus *p, int64_t now) {
  int64_t t = p->svid_not_after_unix;
  return t - now < wispctl_check_svid_min(o, p->svid_signed_unix, t);
}

static void check_svids(wispctl_report *r, const Wisp__V1__StatusResponse *st, const wispctl_check_opts *o,
                        int64_t now) {
  size_t bad = 0, connected = 0;
  for (size_t i = 0; i < st->n_proxies; i++) {
    const Wisp__V1__ProxyStatus *p = st->proxies[i];
    if (!p->connected || !p->svid_not_after_unix) continue;
    connected++;
    bad += svid_near_end(o, p, now);
  }
  char min[32], w[128], age[32];
  wispctl_format_span(min, sizeof(min), o->svid_min_s);
  if (!bad && o->svid_min_given) {
    wispctl_report_add(r, "agent", "agent.svids", WISPCTL_PASS, NULL,
                       "the SVIDs of connected identities (%zu) are valid for more than %s", connected, min);
    return;
  }
  if (!bad) {
    wispctl_report_add(r, "agent", "agent.svids", WISPCTL_PASS, NULL,
                       "the SVIDs of connected identities (%zu) are not near expiry", connected);
    return;
  }
  wispctl_check *c;
  if (o->svid_min_given) {
    c = wispctl_report_add(r, "agent", "agent.svids", WISPCTL_FAIL, kHintSvid,
                           "%zu of %zu connected identities hold an SVID valid for less than %s (--svid-min-validity)",
                           bad, connected, min);
  } else {
    c = wispctl_report_add(r, "agent", "agent.svids", WISPCTL_FAIL, kHintSvid,
                           "%zu of %zu connected identities hold an SVID near expiry (less than a quarter of its "
                           "lifetime, or %s, left: its renewal is overdue)",
                           bad, connected, min);
  }
  for (size_t i = 0; i < st->n_proxies; i++) {
    const Wisp__V1__ProxyStatus *p = st->proxies[i];
    if (!p->connected || !p->svid_not_after_unix || !svid_near_end(o, p, now)) continue;
    wispctl_check_when(w, sizeof(w), p->svid_not_after_unix, now);
    wispctl_format_span(age, sizeof(age), now - p->svid_signed_unix);
    wispctl_check_detail(c, "%s: SVID %s %s %s, signed %s ago", p->spiffe_id,
                         has(p->svid_serial) ? p->svid_serial : "?",
                         p->svid_not_after_unix <= now ? "expired" : "expires", w, p->svid_signed_unix ? age : "?");
  }
}

static void agent_checks(wispctl_report *r, const wispctl_check_opts *o, const char *target,
                         const Wisp__V1__StatusResponse *st, const char *err, int64_t now) {
  if (!st) {
    wispctl_check *c = wispctl_report_add(r, "agent", "agent.reachable", WISPCTL_FAIL, kHintAgent,
                                          "the agent does not answer at %s", target);
    wispctl_check_detail(c, "%s", err);
    return;
  }
  wispctl_report_add(r, "agent", "agent.reachable", WISPCTL_PASS, NULL, "the agent answers at %s (policy version %s)",
                     target, has(st->version) ? st->version : "-");
  check_ca(r, st, o, now);
  check_bundle(r, st, o, now);
  check_rotation(r, st, now);
  check_connected(r, st, now);
  check_acked(r, st);
  check_nacks(r, st);
  check_svids(r, st, o, now);
}

/* ---- printing ---- */

static const char *group_title(const char *group, const wispctl_check_opts *o, char *buf, size_t len) {
  if (strcmp(group, "proxy") == 0) {
    snprintf(buf, len, "wisp-proxy (admin %s)", o->proxy);
  } else {
    snprintf(buf, len, "wisp-agent");
  }
  return buf;
}

static void print_text(FILE *f, const wispctl_report *r, const wispctl_check_opts *o, const size_t count[3]) {
  const char *group = NULL;
  char title[512];
  for (size_t i = 0; i < r->n; i++) {
    const wispctl_check *c = &r->v[i];
    if (!group || strcmp(group, c->group) != 0) {
      group = c->group;
      group_title(group, o, title, sizeof(title));
      fprintf(f, "%s%s\n", i ? "\n" : "", title);
      for (size_t k = strlen(title); k > 0; k--) fputc('-', f);
      fputc('\n', f);
    }
    fprintf(f, "%s %s\n", kMarks[c->status], c->title);
    for (size_t k = 0; k < c->ndetails; k++) fprintf(f, "    %s\n", c->details[k]);
    if (c->hint) fprintf(f, "    hint: %s\n", c->hint);
  }
  fprintf(f, "\n");
  if (count[WISPCTL_FAIL]) {
    fprintf(f, "%s %zu of %zu checks failed", kMarks[WISPCTL_FAIL], count[WISPCTL_FAIL], r->n);
  } else {
    fprintf(f, "%s all %zu checks passed", kMarks[WISPCTL_PASS], r->n);
  }
  if (count[WISPCTL_WARN]) fprintf(f, " (%zu warning%s)", count[WISPCTL_WARN], count[WISPCTL_WARN] == 1 ? "" : "s");
  fprintf(f, "\n");
}

static void json_field(wisp_json_writer *w, const char *key, const char *val) {
  wisp_json_writer_printf(w, ", \"%s\": ", key);
  wisp_json_writer_str(w, val);
}

static wisp_err print_json(FILE *f, const wispctl_report *r, const size_t count[3]) {
  wisp_json_writer w;
  wisp_json_writer_init(&w, CHECK_JSON_MAX, WISP_JSON_ESCAPE_SHORT);
  wisp_json_writer_printf(&w, "{\"ok\": %s, \"passed\": %zu, \"warnings\": %zu, \"failed\": %zu, \"checks\": [",
                          count[WISPCTL_FAIL] ? "false" : "true", count[WISPCTL_PASS], count[WISPCTL_WARN],
                          count[WISPCTL_FAIL]);
  for (size_t i = 0; i < r->n; i++) {
    const wispctl_check *c = &r->v[i];
    wisp_json_writer_printf(&w, "%s\n  {\"id\": ", i ? "," : "");
    wisp_json_writer_str(&w, c->id);
    json_field(&w, "group", c->group);
    json_field(&w, "status", kStatusNames[c->status]);
    json_field(&w, "title", c->title);
    wisp_json_writer_printf(&w, ", \"details\": [");
    for (size_t k = 0; k < c->ndetails; k++) {
      if (k) wisp_json_writer_raw(&w, ", ", 2);
      wisp_json_writer_str(&w, c->details[k]);
    }
    wisp_json_writer_raw(&w, "]", 1);
    json_field(&w, "hint", c->hint);
    wisp_json_writer_raw(&w, "}", 1);
  }
  wisp_json_writer_printf(&w, "%s]}\n", r->n ? "\n" : "");
  if (w.err == WISP_OK) fwrite(wisp_buf_rptr(&w.out), 1, wisp_buf_len(&w.out), f);
  wisp_err rc = w.err;
  wisp_json_writer_cleanup(&w);
  return rc;
}

/* ---- the run ---- */

/* Moves |from|'s checks to the end of |to|. */
static void report_append(wispctl_report *to, wispctl_report *from) {
  for (size_t i = 0; i < from->n; i++) {
    if (to->n == to->cap) {
      to->cap = to->cap ? 2 * to->cap : 16;
      to->v = wisp_realloc(to->v, to->cap * sizeof(*to->v));
    }
    to->v[to->n++] = from->v[i];
  }
  free(from->v);
  memset(from, 0, sizeof(*from));
}

/* Which agent to check: the one named (--agent, WISP_AGENT); else the
 * sidecar's own, when it is a Unix socket (wispctl's Admin calls go over
 * one); else the default. NULL: none, with |*why_not| saying why (NULL:
 * the sidecar uses certificate files, nothing to say). */
static const char *agent_target(const wispctl_check_opts *o, const wispctl_sidecar *sc, const char **why_not) {
  *why_not = NULL;
  if (o->agent_explicit || !sc) return o->agent.agent;
  const char *t = wispctl_sidecar_agent(sc);
  if (!t) return NULL;
  if (strncmp(t, "unix:", 5) == 0) return t;
  *why_not = t;
  return NULL;
}

static const char kHintAgentRemote[] =
    "wispctl calls the agent's Admin API on its Unix socket: run wispctl check where that socket is (the agent's "
    "host, or its pod), or name it with --agent";

int wispctl_check_run(const wispctl_check_opts *o, int64_t now) {
  char err[CHECK_ERR_MAX] = "";
  wispctl_report rep = {0}, proxy = {0};
  wispctl_sidecar *sc = o->proxy ? wispctl_sidecar_fetch(&proxy, o) : NULL;
  const char *remote = NULL;
  wispctl_opts agent = o->agent;
  agent.agent = agent_target(o, sc, &remote);
  ProtobufCMessage *m = NULL;
  if (agent.agent) {
    Wisp__V1__StatusRequest req = WISP__V1__STATUS_REQUEST__INIT;
    int rc = wispctl_call_quiet(&agent, "status", "/wisp.v1.Admin/Status", &req.base,
                                &wisp__v1__status_response__descriptor, &m, err, sizeof(err));
    if (rc == WISPCTL_EXIT_USAGE) {
      fprintf(stderr, "wispctl: %s\n", err);
      wispctl_sidecar_free(sc);
      wispctl_report_free(&proxy);
      return rc;
    }
    agent_checks(&rep, o, agent.agent, (const Wisp__V1__StatusResponse *)m, err, now);
  } else if (remote) {
    wispctl_report_add(&rep, "agent", "agent.reachable", WISPCTL_WARN, kHintAgentRemote,
                       "the agent checks are left out: the sidecar's agent is %s, not a Unix socket", remote);
  }
  const Wisp__V1__StatusResponse *st = (const Wisp__V1__StatusResponse *)m;
  if (sc) {
    wispctl_agent_facts facts = {st ? st->version : NULL, st ? st->bundle_roots : 0, st ? st->ca_rotation : NULL,
                                 st ? st->ca_rotation_finish_after_unix : 0};
    wispctl_sidecar_check(&proxy, sc, o, st ? &facts : NULL, now);
  }
  report_append(&rep, &proxy);
  wispctl_sidecar_free(sc);
  if (m) protobuf_c_message_free_unpacked(m, NULL);
  size_t count[3] = {0, 0, 0};
  for (size_t i = 0; i < rep.n; i++) count[rep.v[i].status]++;
  wisp_err prc = WISP_OK;
  if (o->json) {
    prc = print_json(stdout, &rep, count);
  } else {
    print_text(stdout, &rep, o, count);
  }
  fflush(stdout);
  wispctl_report_free(&rep);
  if (prc != WISP_OK) {
    fprintf(stderr, "wispctl: check: cannot print the report: %s\n", wisp_err_str(prc));
    return WISPCTL_EXIT_FAIL;
  }
  return count[WISPCTL_FAIL] ? WISPCTL_EXIT_FAIL : 0;
}
