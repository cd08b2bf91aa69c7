/* The data plane's side of proxy/wisp_dataplane.h: what the control side
 * may put in force and read, over the private types of internal.h. */
#include "proxy/wisp_dataplane.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "proxy/dataplane/internal.h"
#include "proxy/dataplane/wisp_conn.h"
#include "proxy/dataplane/wisp_dests.h"
#include "proxy/dataplane/wisp_handshake.h"
#include "proxy/dataplane/wisp_workers.h"

/* One worker's counters (its own thread, or while it is stopped). */
static void own_counters(const wisp_proxy *px, wisp_dataplane_counters *out) {
  *out = (wisp_dataplane_counters){
      .stats = px->stats,
      .hdr_held = px->hdr_held,
      .destinations = px->ndyn,
      .destinations_gone = px->dyn_evicted,
  };
  WISP_LIST_FOREACH(it, &px->conns) {
    const wisp_conn *c = WISP_LIST_ELEM(it, wisp_conn, link);
    out->conns_open[c->io.upstream ? 1 : 0]++;
    out->requests_queued += (uint64_t)c->nwaiting;
  }
  out->conns_open[0] += px->nhandshakes; /* callers in their TLS handshake (wisp_handshake) */
}

static void counters_cb(const wisp_proxy *px, void *arg) { own_counters(px, arg); }

size_t wisp_dataplane_worker_count(const wisp_proxy *px) { return 1 + wisp_workers_count(px->workers); }

void wisp_dataplane_get_worker_counters(const wisp_proxy *px, size_t i, wisp_dataplane_counters *out) {
  if (i == 0) {
    own_counters(px, out);
  } else {
    wisp_workers_with(px->workers, i - 1, counters_cb, out);
  }
}

/* Every field of both is a uint64_t counter: sums field by field. */
_Static_assert(sizeof(wisp_dataplane_counters) % sizeof(uint64_t) == 0, "counters are uint64_t only");

static void add_counters(wisp_dataplane_counters *sum, const wisp_dataplane_counters *c) {
  uint64_t *s = (uint64_t *)sum;
  const uint64_t *v = (const uint64_t *)c;
  for (size_t k = 0; k < sizeof(*sum) / sizeof(uint64_t); k++) s[k] += v[k];
}

void wisp_dataplane_get_counters(const wisp_proxy *px, wisp_dataplane_counters *out) {
  own_counters(px, out);
  for (size_t i = 1; i < wisp_dataplane_worker_count(px); i++) {
    wisp_dataplane_counters c;
    wisp_dataplane_get_worker_counters(px, i, &c);
    add_counters(out, &c);
  }
}

size_t wisp_dataplane_listener_count(const wisp_proxy *px) { return px->nlisteners; }

typedef struct {
  size_t i;
  wisp_dataplane_listener *sum;
} listener_sum;

/* Adds one worker's listener |i| (every worker has the same listeners, in
 * the same order). */
static void add_listener_cb(const wisp_proxy *px, void *arg) {
  listener_sum *ls = arg;
  const wisp_listener *l = &px->listeners[ls->i];
  ls->sum->accept_pauses += l->acc.pauses;
  ls->sum->accept_failures += l->acc.failures;
}

void wisp_dataplane_get_listener(const wisp_proxy *px, size_t i, wisp_dataplane_listener *out) {
  const wisp_listener *l = &px->listeners[i];
  /* Connections: one table for all workers (worker 0's), counted once. */
  *out = (wisp_dataplane_listener){.name = l->name, .dir = l->dir, .connections = wisp_connlimit_count(l->limit)};
  listener_sum ls = {.i = i, .sum = out};
  add_listener_cb(px, &ls);
  for (size_t w = 0; w < wisp_workers_count(px->workers); w++) wisp_workers_with(px->workers, w, add_listener_cb, &ls);
}

bool wisp_dataplane_listening(const wisp_proxy *px) {
  if (px->nlisteners == 0) return false;
  for (size_t i = 0; i < px->nlisteners; i++) {
    if (px->listeners[i].fd < 0) return false;
  }
  return true;
}

bool wisp_dataplane_draining(const wisp_proxy *px) { return px->draining; }
struct ev_loop *wisp_dataplane_loop(const wisp_proxy *px) {
  return px->loop;
}
const wisp_config *wisp_dataplane_config(const wisp_proxy *px) { return px->cfg; }
wisp_h2loop *wisp_dataplane_h2loop(wisp_proxy *px) { return &px->lp; }
const wisp_tls *wisp_dataplane_tls(const wisp_proxy *px) { return px->tls; }
struct wisp_metrics *wisp_dataplane_metrics(const wisp_proxy *px) {
  return px->metrics;
}
const struct wisp_events *wisp_dataplane_events(const wisp_proxy *px) { return px->events; }
void wisp_dataplane_get_upfails(const wisp_proxy *px, wisp_upfail_table *out) {
  bool shared = px->workers != NULL; /* the others write it too (wisp_proxy_note_upfail) */
  if (shared) pthread_mutex_lock((pthread_mutex_t *)&px->upfails_lock);
  *out = px->upfails;
  if (shared) pthread_mutex_unlock((pthread_mutex_t *)&px->upfails_lock);
}

wisp_err wisp_dataplane_install_credentials(wisp_proxy *px, EVP_PKEY *key, STACK_OF(X509) * chain,
                                            STACK_OF(X509) * roots, char *err, size_t err_len) {
  return wisp_tls_set_creds(px->tls, key, chain, roots, err, err_len);
}

wisp_err wisp_dataplane_install_roots(wisp_proxy *px, STACK_OF(X509) * roots, char *err, size_t err_len) {
  return wisp_tls_set_roots(px->tls, roots, err, err_len);
}

void wisp_dataplane_set_hooks(wisp_proxy *px, const wisp_dataplane_hooks *h) {
  px->hooks = h ? *h : (wisp_dataplane_hooks){0};
}

void wisp_dataplane_apply_policy(wisp_proxy *px, const wisp_dataplane_policy *p) {
  wisp_policy_view_free(px->view);
  wisp_policy_free(px->policy);
  px->policy = p->policy;
  px->view = p->view;
  px->permissive = p->permissive;
  free(px->policy_yaml);
  px->policy_yaml = wisp_strndup(p->yaml, p->len);
  snprintf(px->policy_version, sizeof(px->policy_version), "%s", p->version ? p->version : "");
  px->policy_gen++; /* the other workers follow (wisp_workers_sync) */
}

void wisp_dataplane_get_policy(const wisp_proxy *px, wisp_dataplane_policy_info *out) {
  *out = (wisp_dataplane_policy_info){
      .policy = px->policy,
      .view = px->view,
      .yaml = px->policy ? px->policy_yaml : NULL,
      .version = px->policy ? px->policy_version : "",
  };
}

void wisp_dataplane_set_dests(wisp_proxy *px, struct wisp_dests *d) {
  wisp_dests_free(px->dests);
  px->dests = d;
  px->dests_gen++;
  for (wisp_dyn_target *dt = px->dyn; dt; dt = dt->next) {
    wisp_target *t = &dt->t;
    if (!t->tls) continue;
    const char *id = wisp_dests_lookup(d, &t->addr);
    if ((!id && !t->expect_id) || (id && t->expect_id && strcmp(id, t->expect_id) == 0)) continue;
    free(t->expect_id);
    t->expect_id = id ? wisp_strdup(id) : NULL;
    /* Pooled connections were verified against the old ID: no new streams
     * on them; the next request dials and verifies anew. */
    for (wisp_conn *c = t->conns; c; c = c->pool_next) {
      if (c->io.state == WISP_H2CONN_OPEN) wisp_conn_drain(c);
      else c->goaway = true;
    }
  }
}

const struct wisp_dests *wisp_dataplane_dests(const wisp_proxy *px) { return px->dests; }

void wisp_dataplane_start_drain(wisp_proxy *px) {
  if (px->draining) return;
  px->draining = true;
  WISP_INFO("draining: no new connections, GOAWAY to callers, up to %gs", px->cfg->drain_timeout);
  if (px->hooks.drain_started) px->hooks.drain_started(px->hooks.ctx);
  for (size_t i = 0; i < px->nlisteners; i++) {
    wisp_acceptor_stop(&px->listeners[i].acc);
    close(px->listeners[i].fd);
    px->listeners[i].fd = -1;
  }
  /* No use for a caller that is not one yet (nor let one become one:
   * a caller still being told would start its handshake mid-drain). */
  wisp_conn_close_detecting(px);
  wisp_handshake_close_all(px);
  WISP_LIST_FOREACH(it, &px->conns) {
    wisp_conn *c = WISP_LIST_ELEM(it, wisp_conn, link);
    if (!c->io.upstream) wisp_conn_drain(c);
  }
  ev_timer_set(&px->drain_timer, px->cfg->drain_timeout, 0);
  ev_timer_start(px->loop, &px->drain_timer);
  wisp_workers_drain(px->workers); /* each drains on its own loop */
}
