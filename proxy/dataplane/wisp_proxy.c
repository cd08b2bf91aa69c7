#include "proxy/dataplane/wisp_h2.h"
#include "proxy/dataplane/wisp_proxy.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_memtrim.h"
#include "proxy/dataplane/wisp_conn.h"
#include "proxy/dataplane/wisp_dests.h"
#include "proxy/dataplane/wisp_events.h"
#include "proxy/dataplane/wisp_metrics.h"
#include "proxy/dataplane/wisp_pool.h"
#include "proxy/dataplane/wisp_stream.h"
#include "proxy/dataplane/wisp_h1.h"
#include "proxy/dataplane/wisp_handshake.h"
#include "proxy/dataplane/wisp_tunnel.h"
#include "proxy/dataplane/wisp_workers.h"

#define WISP_ACCEPTS_PER_EVENT 64
#define WISP_LISTEN_BACKLOG 1024
/* How often the summaries of rate-limited log lines are written, and
 * whether memory should go back after a burst is looked at (wisp_memtrim). */
#define WISP_LOG_FLUSH_INTERVAL 1.0
/* "refused" lines per listener: this many a second, then a count. */
#define WISP_REFUSAL_LOG_BURST 20
#define WISP_REFUSAL_LOG_WINDOW 1.0
/* Descriptors beside the connections: listeners, admin, agent, logs. */
#define WISP_FD_RESERVE 64

static void on_accept(wisp_acceptor *a, int fd, const wisp_addr *peer) { wisp_conn_accept(a->data, fd, peer); }

/* Runs before each flush pass: waiting requests go upstream. */
static void before_flush(wisp_h2loop *lp) { wisp_pool_pump(lp->data); }

static void after_write(wisp_h2loop *lp) { wisp_stream_after_write(lp->data); }

/* Runs before the loop sleeps, after every dirty connection was flushed. */
static void before_sleep(wisp_h2loop *lp) {
  wisp_proxy *px = lp->data;
  fflush(stdout); /* access log lines, batched per loop iteration */
  if (px->workers) wisp_workers_sync(px->workers);
  if (px->draining) {
    /* L4 streams have no GOAWAY: they are let run to their end (or to
     * --drain-timeout), as callers' HTTP/2 connections are. */
    bool busy = !wisp_list_empty(&px->tunnels) || px->nhandshakes != 0;
    WISP_LIST_FOREACH(it, &px->conns) {
      if (busy) break;
      busy = !WISP_LIST_ELEM(it, wisp_conn, link)->io.upstream;
    }
    if (!busy) ev_break(lp->loop, EVBREAK_ALL);
  }
}

static void on_reload(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_proxy *px = w->data;
  bool changed = false;
  char err[512];
  if (wisp_tls_reload_if_changed(px->tls, &changed, err, sizeof(err)) != WISP_OK) {
    WISP_ERROR("certificate reload failed, keeping the current certificate: %s", err);
    return;
  }
  if (changed) {
    const wisp_tls_info *info = wisp_tls_get0_info(px->tls);
    wisp_json j;
    wisp_json_begin(&j, "cert");
    wisp_json_str(&j, "event", "reloaded");
    wisp_json_str(&j, "spiffe_id", info->spiffe_id);
    wisp_json_str(&j, "serial", info->serial);
    wisp_json_str(&j, "not_after", info->not_after);
    wisp_json_int(&j, "bundle_roots", info->bundle_roots);
    wisp_json_emit_err(&j);
  }
}

/* --stream-idle-timeout is checked this many times per timeout by one
 * sweep of the streams that went idle (wisp_stream_sweep_idle), not by a
 * timer per request: a stream is cut between 1 and 1.25 timeouts idle. */
#define WISP_STREAM_SWEEPS_PER_TIMEOUT 4

static void on_stream_sweep(struct ev_loop *loop, ev_timer *w, int revents) { wisp_stream_sweep_idle(w->data); }

/* This worker's live connections: callers in their handshake, HTTP/2
 * connections both ways (an HTTP/1 caller's gateway has one), L4 tunnels. */
static size_t live_conns(const wisp_proxy *px) {
  size_t n = px->nhandshakes;
  WISP_LIST_FOREACH(it, &px->conns) n++;
  WISP_LIST_FOREACH(it, &px->tunnels) n++;
  return n;
}

/* Once calm after a burst, this worker's memory goes back to the system
 * (lib/wisp_memtrim.h): on this tick, not a timer of its own, and nothing
 * per request. */
static void give_back_memory(wisp_proxy *px) {
  if (!wisp_memtrim_due(&px->memtrim, px->stats.conns_accepted + px->stats.requests, live_conns(px))) return;
  wisp_memtrim_cost cost = wisp_memtrim_run();
  px->stats.memory_trims++;
  WISP_DEBUG("worker %u: memory given back after a burst (malloc_trim): %.0f us, %.0f us of CPU", px->worker,
             cost.wall_us, cost.cpu_us);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_log_limit_flush(wisp_log_now());
  give_back_memory(w->data);
}

static void on_drain_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
  WISP_WARN("drain timeout reached, closing the remaining connections");
  ev_break(loop, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents) { wisp_dataplane_start_drain(w->data); }

static wisp_err add_target(wisp_proxy *px, wisp_target **out, const char *addr, bool tls, const char *id, char *err,
                           size_t err_len) {
  wisp_target *t = &px->targets[px->ntargets];
  if (wisp_addr_parse(&t->addr, addr) != WISP_OK) {
    snprintf(err, err_len, "bad address %s", addr);
    return WISP_ERR_USAGE;
  }
  t->px = px;
  t->name = wisp_strdup(addr);
  t->tls = tls;
  t->expect_id = id ? wisp_strdup(id) : NULL;
  px->ntargets++;
  *out = t;
  return WISP_OK;
}

static void dyn_free(wisp_dyn_target *d) {
  wisp_pool_forget(&d->t); /* a freed connection may have woken it */
  free(d->t.name);
  free(d->t.expect_id);
  free(d);
}

/* Users, requests waiting for a stream, or streams on its pool connections
 * (a stream outlives its caller's connection only on an upstream one). */
static bool target_in_use(const wisp_target *t) {
  if (t->users || t->waiters) return true;
  for (const wisp_conn *c = t->conns; c; c = c->pool_next) {
    if (c->nstreams) return true;
  }
  return false;
}

/* Makes room for one destination: the least recently used one not in use
 * goes; its idle pool connections are closed and it is freed with the last
 * (wisp_proxy_reap_target). False when every one is in use. */
static bool evict_one(wisp_proxy *px) {
  wisp_dyn_target **victim = NULL;
  for (wisp_dyn_target **p = &px->dyn; *p; p = &(*p)->next) {
    if (!target_in_use(&(*p)->t) && (!victim || (*p)->t.last_used < (*victim)->t.last_used)) victim = p;
  }
  if (!victim) return false;
  wisp_dyn_target *d = *victim;
  *victim = d->next;
  px->ndyn--;
  px->dyn_evicted++;
  if (d->t.nconns == 0) {
    dyn_free(d);
    return true;
  }
  d->t.retired = true;
  d->next = px->retired;
  px->retired = d;
  for (wisp_conn *c = d->t.conns; c; c = c->pool_next) wisp_conn_drain(c);
  return true;
}

void wisp_proxy_hold_target(wisp_target *t) {
  t->users++;
  t->last_used = ev_now(t->px->loop);
}

void wisp_proxy_release_target(wisp_target *t) {
  t->users--;
  t->last_used = ev_now(t->px->loop);
}

void wisp_proxy_reap_target(wisp_target *t) {
  if (!t->retired || t->nconns) return;
  wisp_proxy *px = t->px;
  for (wisp_dyn_target **p = &px->retired; *p; p = &(*p)->next) {
    if (&(*p)->t == t) {
      wisp_dyn_target *d = *p;
      *p = d->next;
      dyn_free(d);
      return;
    }
  }
}

wisp_target *wisp_proxy_target_for(wisp_proxy *px, const wisp_addr *addr, bool outbound) {
  wisp_addr want = *addr;
  if (!outbound) { /* the app listens on loopback at the original port */
    char local[32];
    snprintf(local, sizeof(local), "127.0.0.1:%u", (unsigned)wisp_addr_port(addr));
    if (wisp_addr_parse(&want, local) != WISP_OK) return &px->full;
  }
  for (wisp_dyn_target *d = px->dyn; d; d = d->next) {
    if (d->t.tls == outbound && wisp_addr_equal(&d->t.addr, &want)) return &d->t;
  }
  size_t cap = (size_t)px->cfg->max_destinations; /* 0: no limit */
  if (cap && px->ndyn >= cap && !evict_one(px)) return &px->full;
  wisp_dyn_target *d = wisp_calloc(1, sizeof(*d));
  char name[64];
  wisp_addr_format(&want, name, sizeof(name));
  d->t.px = px;
  d->t.addr = want;
  d->t.name = wisp_strdup(name);
  d->t.tls = outbound;
  const char *id = outbound ? wisp_dests_lookup(px->dests, &want) : NULL;
  d->t.expect_id = id ? wisp_strdup(id) : NULL;
  d->t.last_used = ev_now(px->loop);
  d->next = px->dyn;
  px->dyn = d;
  px->ndyn++;
  return &d->t;
}

bool wisp_proxy_owns_port(const wisp_proxy *px, unsigned port) {
  for (size_t i = 0; i < px->nlisteners; i++) {
    if (px->listeners[i].port == port) return true;
  }
  const char *own[] = {px->cfg->admin, px->cfg->metrics_listen};
  for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
    wisp_addr a;
    if (own[i] && wisp_addr_parse(&a, own[i]) == WISP_OK && wisp_addr_port(&a) == port) return true;
  }
  return false;
}

/* A transparent inbound listener maps a caller to the app on its original
 * port. A caller that dialled the listener itself (an explicit-mode
 * sidecar's --route, a health check) has no such port: mapping it would
 * dial the listener again. It gets this stand-in, which answers 503 and
 * says why, instead. */
static void init_stand_in(wisp_proxy *px, wisp_target *t, const char *name, const char *reason) {
  t->px = px;
  t->name = wisp_strdup(name);
  t->refuse = wisp_strdup(reason);
}

static void init_direct(wisp_proxy *px) {
  init_stand_in(px, &px->direct, "none (direct connection to the sidecar)",
                "connected to the sidecar's own port directly, not redirected from an app port: a transparent "
                "sidecar without --app cannot tell which app port it is for (call the workload's own address "
                "and port)");
}

static void init_full(wisp_proxy *px) {
  char why[160];
  snprintf(why, sizeof(why), "all %d transparent destinations are in use by open connections (--max-destinations %d)",
           px->cfg->max_destinations, px->cfg->max_destinations);
  init_stand_in(px, &px->full, "none (every --max-destinations slot in use)", why);
}

/* A connection limit flag as the table takes it. 0: no limit. */
static uint32_t limit_of(int flag) { return flag <= 0 ? 0 : (uint32_t)flag; }

/* With --workers every worker binds the same address with SO_REUSEPORT
 * (worker 0 too: the option must be on every socket before its bind), on
 * the port worker 0 got (the address may say port 0). */
static wisp_err open_listener(wisp_proxy *px, int *fd, const char *addr, char *err, size_t err_len) {
  wisp_addr a;
  if (wisp_addr_parse(&a, addr) != WISP_OK) {
    snprintf(err, err_len, "bad listen address %s", addr);
    return WISP_ERR_USAGE;
  }
  if (px->first) wisp_addr_set_port(&a, (uint16_t)px->first->listeners[px->nlisteners].port);
  wisp_err rc = px->cfg->workers > 1 ? wisp_net_listen_shared(fd, &a, WISP_LISTEN_BACKLOG)
                                     : wisp_net_listen(fd, &a, WISP_LISTEN_BACKLOG);
  if (rc != WISP_OK) {
    if (px->first) {
      snprintf(err, err_len, "worker %u: cannot listen on %s (SO_REUSEPORT): %s", px->worker, addr, strerror(errno));
    } else {
      snprintf(err, err_len, "cannot listen on %s: %s", addr, strerror(errno));
    }
    return WISP_ERR_IO;
  }
  return WISP_OK;
}

static wisp_err add_listener(wisp_proxy *px, const char *addr, wisp_direction dir, wisp_target *t, char *err,
                             size_t err_len) {
  wisp_listener *l = &px->listeners[px->nlisteners];
  l->fd = -1;
  WISP_GUARD(open_listener(px, &l->fd, addr, err, err_len));
  wisp_addr bound;
  if (wisp_net_local_addr(l->fd, &bound) == WISP_OK) l->port = wisp_addr_port(&bound);
  l->px = px;
  l->dir = dir;
  l->name = wisp_strdup(addr);
  l->target = t;
  char name[80];
  snprintf(name, sizeof(name), "%s listener %s", dir == WISP_DIR_INBOUND ? "inbound" : "outbound", addr);
  wisp_acceptor_init(&l->acc, px->loop, l->fd, name, WISP_ACCEPTS_PER_EVENT, on_accept, l);
  wisp_acceptor_start(&l->acc);
  /* Callers of the inbound port are other workloads: none may take every
   * slot. Outbound callers are the local app. With --workers the limits
   * are the process's: every worker counts into worker 0's table (shared
   * in wisp_proxy_start_workers). */
  if (px->first) {
    l->limit = px->first->listeners[px->nlisteners].limit;
  } else {
    l->limit = wisp_connlimit_new(limit_of(px->cfg->max_connections),
                                  dir == WISP_DIR_INBOUND ? limit_of(px->cfg->max_connections_per_source) : 0);
  }
  char what[WISP_LOG_LIMIT_WHAT_MAX];
  snprintf(what, sizeof(what), "refused or closed-early connections on the %s", name);
  wisp_log_limit_init(&l->refusals, what, WISP_REFUSAL_LOG_BURST, WISP_REFUSAL_LOG_WINDOW, WISP_LOG_TO_STDOUT);
  px->nlisteners++;
  return WISP_OK;
}

/* Each connection is a descriptor, two while it is relayed (an L4 tunnel,
 * an inbound HTTP/1.1 app's request: wisp_h1app); an HTTP/1 caller of an
 * outbound listener is one (its hop to the h2c path is an in-process pipe,
 * lib/wisp_pipe, with none): raise the soft open-file limit
 * toward the hard one if the connection limits need it, and say so if they
 * still do not fit. Running out is survivable (accepts pause, see
 * lib/wisp_accept.h), but the limits should bind first. */
static void check_fd_limit(const wisp_proxy *px) {
  const wisp_config *cfg = px->cfg;
  if (cfg->max_connections == 0) return;
  uint64_t want = WISP_FD_RESERVE + (uint64_t)cfg->max_connections * 2 * px->nlisteners;
  uint64_t have = wisp_accept_raise_fd_limit(want);
  if (have == 0 || have >= want) return;
  WISP_WARN(
      "the open file limit (%llu) is below what --max-connections %d on %zu listener(s) may need (%llu): "
      "past it, accepts pause until descriptors are free; raise it (ulimit -n, LimitNOFILE=) or lower "
      "--max-connections",
      (unsigned long long)have, cfg->max_connections, px->nlisteners, (unsigned long long)want);
}

static void log_started(const wisp_proxy *px) {
  const wisp_tls_info *info = wisp_tls_get0_info(px->tls);
  for (size_t i = 0; i < px->nlisteners; i++) {
    const wisp_listener *l = &px->listeners[i];
    wisp_json j;
    wisp_json_begin(&j, "listener");
    wisp_json_str(&j, "direction", l->dir == WISP_DIR_INBOUND ? "inbound" : "outbound");
    wisp_json_str(&j, "listen", l->name);
    wisp_json_str(&j, "upstream", l->target ? l->target->name : "original destination (transparent)");
    if (l->target) wisp_json_str(&j, "expect_id", l->target->expect_id);
    wisp_json_str(&j, "spiffe_id", info->spiffe_id);
    wisp_json_emit_err(&j);
  }
}

/* What every worker has of its own: listeners, targets, the loop's hooks
 * and timers. Worker 0 (|first| NULL) also makes what all share. */
static wisp_err init_dataplane(wisp_proxy *px, struct ev_loop *loop, const wisp_config *cfg, wisp_proxy *first,
                               char *err, size_t err_len) {
  px->loop = loop;
  px->cfg = cfg;
  px->first = first;
  wisp_list_init(&px->idle_streams);
  wisp_list_init(&px->handshakes);
  wisp_list_init(&px->detecting);
  wisp_list_init(&px->conns);
  wisp_list_init(&px->tunnels);
  wisp_list_init(&px->h1_gws);
  wisp_tls_opts topts = {.allow_tls12 = cfg->allow_tls12, .require_alpn = true};
  px->tls = wisp_tls_new(&topts);
  if (first) {
    px->metrics = first->metrics;
    px->events = first->events;
    wisp_tls_adopt(px->tls, first->tls);
  } else {
    pthread_mutex_init(&px->upfails_lock, NULL);
    px->metrics =
        wisp_metrics_new((size_t)cfg->metrics_max_peers, (size_t)cfg->metrics_max_series, cfg->metrics_max_bytes);
    px->events = wisp_events_new((size_t)cfg->metrics_max_peers);
    /* With --agent the SVID arrives later: listeners start now and refuse
     * (in words) until it does; /ready says so. */
    if (!cfg->agent) WISP_GUARD(wisp_tls_load_files(px->tls, cfg->cert, cfg->key, cfg->bundle, err, err_len));
  }
  size_t n = cfg->nroutes + 2;
  px->targets = wisp_calloc(n, sizeof(*px->targets));
  px->listeners = wisp_calloc(n, sizeof(*px->listeners));
  for (size_t i = 0; i < cfg->nroutes; i++) {
    wisp_target *t;
    const wisp_route_cfg *r = &cfg->routes[i];
    WISP_GUARD(add_target(px, &t, r->peer, true, r->id, err, err_len));
    WISP_GUARD(add_listener(px, r->listen, WISP_DIR_OUTBOUND, t, err, err_len));
  }
  wisp_target *app = NULL;
  if (cfg->app) WISP_GUARD(add_target(px, &app, cfg->app, false, NULL, err, err_len));
  if (cfg->app || cfg->transparent) WISP_GUARD(add_listener(px, cfg->inbound, WISP_DIR_INBOUND, app, err, err_len));
  if (cfg->transparent) WISP_GUARD(add_listener(px, cfg->outbound, WISP_DIR_OUTBOUND, NULL, err, err_len));
  if (cfg->transparent && !app) init_direct(px);
  if (cfg->transparent) init_full(px);
  px->resets = wisp_resetlim_new((uint32_t)cfg->max_resets, WISP_RESET_WINDOW);
  wisp_h2loop_init(&px->lp, loop);
  px->lp.before_sleep = before_sleep;
  px->lp.before_flush = before_flush;
  px->lp.after_write = after_write;
  px->finished_tail = &px->finished;
  px->lp.data = px;
  ev_init(&px->drain_timer, on_drain_timeout);
  ev_timer_init(&px->log_flush, on_tick, WISP_LOG_FLUSH_INTERVAL, WISP_LOG_FLUSH_INTERVAL);
  px->log_flush.data = px;
  ev_timer_start(loop, &px->log_flush);
  double sweep = cfg->stream_idle_timeout / WISP_STREAM_SWEEPS_PER_TIMEOUT;
  ev_timer_init(&px->stream_sweep, on_stream_sweep, sweep, sweep);
  px->stream_sweep.data = px;
  if (sweep > 0) ev_timer_start(loop, &px->stream_sweep);
  return WISP_OK;
}

wisp_err wisp_proxy_init_worker(wisp_proxy *px, struct ev_loop *loop, wisp_proxy *first, unsigned index, char *err,
                                size_t err_len) {
  px->worker = index;
  /* Connection ids stay distinct across workers in the logs. */
  px->next_conn_id = (uint64_t)index << 40;
  return init_dataplane(px, loop, first->cfg, first, err, err_len);
}

wisp_err wisp_proxy_init(wisp_proxy *px, struct ev_loop *loop, const wisp_config *cfg, char *err, size_t err_len) {
  wisp_h2_prepare(cfg); /* here, on the main thread, before any worker exists */
  WISP_GUARD(init_dataplane(px, loop, cfg, NULL, err, err_len));
  ev_timer_init(&px->reload, on_reload, cfg->reload_interval, cfg->reload_interval);
  px->reload.data = px;
  if (cfg->reload_interval > 0 && !cfg->agent) ev_timer_start(loop, &px->reload);
  ev_signal_init(&px->sigterm, on_signal, SIGTERM);
  ev_signal_init(&px->sigint, on_signal, SIGINT);
  px->sigterm.data = px->sigint.data = px;
  ev_signal_start(loop, &px->sigterm);
  ev_signal_start(loop, &px->sigint);
  return WISP_OK;
}

void wisp_proxy_announce(const wisp_proxy *px) {
  log_started(px);
  check_fd_limit(px);
}

wisp_err wisp_proxy_start_workers(wisp_proxy *px, char *err, size_t err_len) {
  if (px->cfg->workers <= 1) return WISP_OK;
  /* Before another thread sees them. */
  wisp_metrics_share(px->metrics);
  wisp_events_share(px->events);
  for (size_t i = 0; i < px->nlisteners; i++) wisp_connlimit_share(px->listeners[i].limit);
  return wisp_workers_new(&px->workers, px, err, err_len);
}

void wisp_proxy_run(wisp_proxy *px) {
  ev_run(px->loop, 0);
  /* The others drain too (a drain timeout here ended only this loop). */
  wisp_workers_join(px->workers);
}

static wisp_proxy *upfail_home(wisp_proxy *px) { return px->first ? px->first : px; }

void wisp_proxy_note_upfail(wisp_proxy *px, const char *upstream, const char *expect_id, bool app, const char *reason) {
  wisp_proxy *home = upfail_home(px);
  bool shared = home->cfg->workers > 1;
  if (shared) pthread_mutex_lock(&home->upfails_lock);
  wisp_upfail_note(&home->upfails, upstream, expect_id, app, reason, (int64_t)time(NULL));
  if (shared) pthread_mutex_unlock(&home->upfails_lock);
}

void wisp_proxy_clear_upfail(wisp_proxy *px, const char *upstream) {
  wisp_proxy *home = upfail_home(px);
  bool shared = home->cfg->workers > 1;
  if (shared) pthread_mutex_lock(&home->upfails_lock);
  wisp_upfail_clear(&home->upfails, upstream);
  if (shared) pthread_mutex_unlock(&home->upfails_lock);
}

void wisp_proxy_cleanup(wisp_proxy *px) {
  /* The other workers first: they count into what worker 0 owns. */
  wisp_workers_free(px->workers);
  px->workers = NULL;
  if (px->first) { /* borrowed from worker 0 */
    px->metrics = NULL;
    px->events = NULL;
  }
  ev_timer_stop(px->loop, &px->log_flush);
  ev_timer_stop(px->loop, &px->stream_sweep);
  wisp_log_limit_flush(INFINITY); /* whatever is still held back */
  wisp_conn_close_detecting(px);
  wisp_handshake_close_all(px);
  wisp_tunnel_close_all(px);
  wisp_h1_close_all(px);
  WISP_LIST_FOREACH(it, &px->conns) wisp_conn_close(WISP_LIST_ELEM(it, wisp_conn, link), NULL);
  wisp_h2loop_cleanup(&px->lp);
  for (size_t i = 0; i < px->nlisteners; i++) {
    if (px->listeners[i].fd >= 0) {
      wisp_acceptor_stop(&px->listeners[i].acc);
      close(px->listeners[i].fd);
    }
    free(px->listeners[i].name);
    if (!px->first) wisp_connlimit_free(px->listeners[i].limit); /* the others borrow worker 0's */
    wisp_log_limit_cleanup(&px->listeners[i].refusals);
  }
  for (size_t i = 0; i < px->ntargets; i++) {
    free(px->targets[i].name);
    free(px->targets[i].expect_id);
  }
  wisp_target *stand_ins[] = {&px->direct, &px->full};
  for (size_t i = 0; i < sizeof(stand_ins) / sizeof(stand_ins[0]); i++) {
    free(stand_ins[i]->name);
    free(stand_ins[i]->refuse);
  }
  wisp_dyn_target **lists[] = {&px->dyn, &px->retired};
  for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
    while (*lists[i]) {
      wisp_dyn_target *next = (*lists[i])->next;
      dyn_free(*lists[i]);
      *lists[i] = next;
    }
  }
  free(px->listeners);
  free(px->targets);
  wisp_policy_view_free(px->view);
  wisp_policy_free(px->policy);
  px->view = NULL;
  px->policy = NULL;
  wisp_tls_free(px->tls);
  free(px->policy_yaml);
  wisp_dests_free(px->dests);
  wisp_metrics_free(px->metrics); /* last: closing connections above still count */
  px->metrics = NULL;
  wisp_events_free(px->events);
  px->events = NULL;
  wisp_resetlim_free(px->resets); /* after the connections that held its records */
  px->resets = NULL;
  if (!px->first && px->cfg) pthread_mutex_destroy(&px->upfails_lock);
  fflush(stdout);
}
