#include "proxy/dataplane/wisp_workers.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "proxy/dataplane/internal.h"
#include "proxy/dataplane/wisp_dests.h"
#include "proxy/dataplane/wisp_proxy.h"

/* What worker 0 hands a worker, under its loop lock; the worker takes it
 * on its own thread (on_wake). References and copies are the handoff's
 * until then. */
typedef struct {
  bool policy_set;
  wisp_dataplane_policy policy; /* .policy and .view: one reference each */
  char *yaml, *version;         /* owned copies behind policy.yaml/.version */
  bool dests_set;
  struct wisp_dests *dests; /* one reference; NULL: no map */
  bool drain;
} handoff;

/* wisp_dataplane_hooks.policy_pending_reason's words, as far as kept. */
#define WISP_PENDING_MAX 512

typedef struct {
  wisp_proxy px;
  struct ev_loop *loop;
  pthread_mutex_t lock; /* the loop lock: held while the loop runs (see the header) */
  ev_async wake;
  pthread_t thread;
  bool running; /* its thread is started and not joined yet */
  handoff in;
  struct wisp_workers *g;
  char pending[WISP_PENDING_MAX]; /* why worker 0 has no policy yet (its hook's words) */
} worker;

/* Probe arrivals a worker passes on to worker 0 at once (more in one
 * loop iteration of worker 0 are dropped: the check probes one at a time). */
#define PROBES_QUEUED 8

typedef struct {
  wisp_addr orig_dst, peer;
} probe_arrival;

struct wisp_workers {
  wisp_proxy *first;
  worker *w;
  size_t n; /* workers whose loop exists (cleaned up by wisp_workers_free) */
  /* What the workers were last handed. */
  uint64_t tls_gen, policy_gen, dests_gen;
  char pending[WISP_PENDING_MAX];
  /* --transparent's interception check (wisp_dataplane_hooks.probe_arrived)
   * is worker 0's control side, but its probe may land on any worker's
   * outbound listener: a worker tells it by its address and hands the
   * arrival to worker 0 (on_probes), which judges it as if it had come
   * there. */
  wisp_addr probe;
  ev_async probe_wake; /* on worker 0's loop */
  pthread_mutex_t probe_lock;
  probe_arrival probes[PROBES_QUEUED];
  size_t nprobes;
};

static void loop_release(struct ev_loop *loop) {
  worker *w = ev_userdata(loop);
  pthread_mutex_unlock(&w->lock);
}

static void loop_acquire(struct ev_loop *loop) {
  worker *w = ev_userdata(loop);
  pthread_mutex_lock(&w->lock);
}

static void handoff_clear_policy(handoff *h) {
  if (!h->policy_set) return;
  wisp_policy_view_free(h->policy.view);
  wisp_policy_free(h->policy.policy);
  free(h->yaml);
  free(h->version);
  h->policy_set = false;
  h->yaml = h->version = NULL;
}

static void handoff_clear_dests(handoff *h) {
  if (h->dests_set) wisp_dests_free(h->dests);
  h->dests = NULL;
  h->dests_set = false;
}

/* On the worker's thread (or before it starts): puts in force what worker
 * 0 handed over. */
static void take_handoff(worker *w) {
  handoff *h = &w->in;
  if (h->policy_set) {
    wisp_dataplane_apply_policy(&w->px, &h->policy); /* takes the references */
    h->policy.policy = NULL;
    h->policy.view = NULL;
    free(h->yaml);
    free(h->version);
    h->yaml = h->version = NULL;
    h->policy_set = false;
  }
  if (h->dests_set) {
    wisp_dataplane_set_dests(&w->px, h->dests); /* takes the reference */
    h->dests = NULL;
    h->dests_set = false;
  }
  if (h->drain) wisp_dataplane_start_drain(&w->px); /* once only, there */
}

static void on_wake(struct ev_loop *loop, ev_async *a, int revents) { take_handoff(a->data); }

/* Worker 0's policy in force, shared: the policy and its view are
 * immutable, each worker holds a reference. */
static void hand_policy(handoff *h, const wisp_proxy *first) {
  handoff_clear_policy(h);
  wisp_policy_up_ref(first->policy);
  wisp_policy_view_up_ref(first->view);
  h->yaml = wisp_strdup(first->policy_yaml ? first->policy_yaml : "");
  h->version = wisp_strdup(first->policy_version);
  h->policy = (wisp_dataplane_policy){.policy = first->policy,
                                      .view = first->view,
                                      .permissive = first->permissive,
                                      .yaml = h->yaml,
                                      .len = strlen(h->yaml),
                                      .version = h->version[0] ? h->version : NULL};
  h->policy_set = true;
}

static void hand_dests(handoff *h, const wisp_proxy *first) {
  handoff_clear_dests(h);
  if (first->dests) wisp_dests_up_ref(first->dests);
  h->dests = first->dests;
  h->dests_set = true;
}

/* Hands worker |w| what changed on worker 0 since the last time. Worker
 * 0's thread, with |w|'s loop lock held (or before |w|'s thread starts). */
static void hand_over(wisp_workers *g, worker *w) {
  wisp_proxy *first = g->first;
  if (wisp_tls_get0_info(first->tls)->generation != g->tls_gen) wisp_tls_adopt(w->px.tls, first->tls);
  if (first->policy_gen != g->policy_gen && first->policy) hand_policy(&w->in, first);
  if (first->dests_gen != g->dests_gen) hand_dests(&w->in, first);
  memcpy(w->pending, g->pending, sizeof(w->pending));
}

/* With --agent, until the first policy: why none came yet, in worker 0's
 * words (its hook, asked on its own thread), for the workers' refusals.
 * True when the words changed. */
static bool note_pending(wisp_workers *g) {
  const wisp_proxy *first = g->first;
  const wisp_dataplane_hooks *hk = &first->hooks;
  if (!first->cfg->agent || first->policy || !hk->policy_pending_reason) return false;
  const char *why = hk->policy_pending_reason(hk->ctx);
  if (strncmp(why, g->pending, sizeof(g->pending) - 1) == 0) return false;
  snprintf(g->pending, sizeof(g->pending), "%s", why);
  return true;
}

static bool changed(const wisp_workers *g) {
  const wisp_proxy *first = g->first;
  return wisp_tls_get0_info(first->tls)->generation != g->tls_gen || first->policy_gen != g->policy_gen ||
         first->dests_gen != g->dests_gen;
}

static void handed(wisp_workers *g) {
  g->tls_gen = wisp_tls_get0_info(g->first->tls)->generation;
  g->policy_gen = g->first->policy_gen;
  g->dests_gen = g->first->dests_gen;
}

void wisp_workers_sync(wisp_workers *g) {
  bool pending = note_pending(g);
  if (!changed(g) && !pending) return;
  for (size_t i = 0; i < g->n; i++) {
    worker *w = &g->w[i];
    pthread_mutex_lock(&w->lock);
    hand_over(g, w);
    pthread_mutex_unlock(&w->lock);
    ev_async_send(w->loop, &w->wake);
  }
  handed(g);
}

/* A worker's hook: the probe's address is the configuration's, read-only. */
static bool probe_arrived(void *ctx, const wisp_addr *orig_dst, const wisp_addr *peer) {
  wisp_workers *g = ((worker *)ctx)->g;
  if (!wisp_addr_equal(orig_dst, &g->probe)) return false;
  pthread_mutex_lock(&g->probe_lock);
  if (g->nprobes < PROBES_QUEUED) g->probes[g->nprobes++] = (probe_arrival){*orig_dst, *peer};
  pthread_mutex_unlock(&g->probe_lock);
  ev_async_send(g->first->loop, &g->probe_wake);
  return true; /* closed here either way; worker 0 says whether it was ours */
}

static void on_probes(struct ev_loop *loop, ev_async *a, int revents) {
  wisp_workers *g = a->data;
  probe_arrival got[PROBES_QUEUED];
  pthread_mutex_lock(&g->probe_lock);
  size_t n = g->nprobes;
  memcpy(got, g->probes, n * sizeof(got[0]));
  g->nprobes = 0;
  pthread_mutex_unlock(&g->probe_lock);
  const wisp_dataplane_hooks *hk = &g->first->hooks;
  for (size_t i = 0; i < n && hk->probe_arrived; i++) hk->probe_arrived(hk->ctx, &got[i].orig_dst, &got[i].peer);
}

/* On the worker's thread: the words worker 0 handed over (hand_over). */
static const char *pending_reason(void *ctx) { return ((const worker *)ctx)->pending; }

/* Worker 0's hooks as a worker needs them: the probe's arrival passed on
 * (only while worker 0 has a check), why a policy is late in worker 0's
 * words, and no drain hook (worker 0's drain is the process's). */
static void set_hooks(wisp_workers *g, worker *w) {
  const wisp_config *cfg = g->first->cfg;
  w->g = g;
  wisp_dataplane_hooks h = {.ctx = w, .policy_pending_reason = pending_reason};
  if (g->first->hooks.probe_arrived && cfg->intercept_probe &&
      wisp_addr_parse(&g->probe, cfg->intercept_probe) == WISP_OK)
    h.probe_arrived = probe_arrived;
  wisp_dataplane_set_hooks(&w->px, &h);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  char name[16]; /* the kernel's limit: top -H, /proc/PID/task/TID/comm */
  snprintf(name, sizeof(name), "wisp-worker-%u", w->px.worker);
  pthread_setname_np(pthread_self(), name);
  pthread_mutex_lock(&w->lock);
  ev_run(w->loop, 0);
  wisp_log_limit_flush(INFINITY); /* this thread's limiters */
  fflush(stdout);
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

/* Signals are worker 0's (its ev_signal watchers): the threads block them. */
static int start_thread(worker *w) {
  sigset_t block, old;
  sigemptyset(&block);
  int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE};
  for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) sigaddset(&block, sigs[i]);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  int rc = pthread_create(&w->thread, NULL, worker_main, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc == 0) w->running = true;
  return rc;
}

static wisp_err init_worker(wisp_workers *g, worker *w, unsigned index, char *err, size_t err_len) {
  pthread_mutex_init(&w->lock, NULL);
  w->loop = ev_loop_new(EVFLAG_AUTO);
  if (!w->loop) {
    pthread_mutex_destroy(&w->lock);
    snprintf(err, err_len, "worker %u: cannot make an event loop", index);
    return WISP_ERR_IO;
  }
  g->n++;
  ev_set_userdata(w->loop, w);
  ev_set_loop_release_cb(w->loop, loop_release, loop_acquire);
  ev_async_init(&w->wake, on_wake);
  w->wake.data = w;
  ev_async_start(w->loop, &w->wake);
  return wisp_proxy_init_worker(&w->px, w->loop, g->first, index, err, err_len);
}

wisp_err wisp_workers_new(wisp_workers **out, wisp_proxy *first, char *err, size_t err_len) {
  size_t n = (size_t)first->cfg->workers - 1;
  wisp_workers *g = wisp_calloc(1, sizeof(*g));
  g->first = first;
  g->w = wisp_calloc(n, sizeof(*g->w));
  pthread_mutex_init(&g->probe_lock, NULL);
  ev_async_init(&g->probe_wake, on_probes);
  g->probe_wake.data = g;
  ev_async_start(first->loop, &g->probe_wake);
  /* Owned by |first| from here: wisp_proxy_cleanup frees what was made. */
  *out = g;
  /* Everything is in force before a thread runs: a worker never serves
   * a request without the policy worker 0 has. */
  g->tls_gen = wisp_tls_get0_info(first->tls)->generation;
  g->policy_gen = first->policy_gen + 1;
  g->dests_gen = first->dests_gen + 1;
  note_pending(g);
  for (size_t i = 0; i < n; i++) {
    WISP_GUARD(init_worker(g, &g->w[i], (unsigned)(i + 1), err, err_len));
    set_hooks(g, &g->w[i]);
    hand_over(g, &g->w[i]);
    take_handoff(&g->w[i]);
  }
  handed(g);
  for (size_t i = 0; i < n; i++) {
    int rc = start_thread(&g->w[i]);
    if (rc != 0) {
      snprintf(err, err_len, "worker %zu: cannot start its thread: %s", i + 1, strerror(rc));
      return WISP_ERR_IO;
    }
  }
  WISP_INFO("%zu workers: each with its own loop on SO_REUSEPORT listeners", n + 1);
  return WISP_OK;
}

void wisp_workers_drain(wisp_workers *g) {
  if (!g) return;
  for (size_t i = 0; i < g->n; i++) {
    worker *w = &g->w[i];
    pthread_mutex_lock(&w->lock);
    w->in.drain = true;
    pthread_mutex_unlock(&w->lock);
    ev_async_send(w->loop, &w->wake);
  }
}

void wisp_workers_join(wisp_workers *g) {
  if (!g) return;
  wisp_workers_drain(g);
  for (size_t i = 0; i < g->n; i++) {
    if (!g->w[i].running) continue;
    pthread_join(g->w[i].thread, NULL);
    g->w[i].running = false;
  }
}

void wisp_workers_free(wisp_workers *g) {
  if (!g) return;
  wisp_workers_join(g);
  for (size_t i = 0; i < g->n; i++) {
    worker *w = &g->w[i];
    wisp_proxy_cleanup(&w->px);
    handoff_clear_policy(&w->in);
    handoff_clear_dests(&w->in);
    ev_async_stop(w->loop, &w->wake);
    ev_loop_destroy(w->loop);
    pthread_mutex_destroy(&w->lock);
  }
  ev_async_stop(g->first->loop, &g->probe_wake);
  pthread_mutex_destroy(&g->probe_lock);
  free(g->w);
  free(g);
}

size_t wisp_workers_count(const wisp_workers *g) { return g ? g->n : 0; }

void wisp_workers_with(wisp_workers *g, size_t i, void (*fn)(const wisp_proxy *px, void *arg), void *arg) {
  worker *w = &g->w[i];
  pthread_mutex_lock(&w->lock);
  fn(&w->px, arg);
  pthread_mutex_unlock(&w->lock);
}
