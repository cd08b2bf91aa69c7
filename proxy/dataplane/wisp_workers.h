/* wisp_workers: the data plane on more than one core (--workers N).
 *
 * Worker 0 is the main thread: its wisp_proxy runs the control side
 * (admin API, agent client, policy loader, signals) and a data plane, as
 * with one worker. Workers 1..N-1 are threads, each with a loop and a
 * wisp_proxy of its own (wisp_proxy_init_worker): listeners bound with
 * SO_REUSEPORT on the same addresses (the kernel spreads connections over
 * them), and their own targets, pools, connections, streams, handshakes,
 * tunnels and timers. Nothing on the request path takes a lock that
 * another worker's requests take, except the shared metrics and events
 * tables (wisp_metrics_share, wisp_events_share) and the upstream-failure
 * table; off it, a connection takes its listener's shared connection
 * limits (wisp_connlimit_share) at accept and gives them back at close.
 *
 * Each worker's loop lock: a worker holds its mutex whenever its loop runs
 * and lets go only while the loop waits in epoll (libev's
 * ev_set_loop_release_cb), so once worker 0 holds it that worker is
 * stopped between two iterations. Worker 0 takes it (never two at once) to
 *   - read the worker's single-writer counters and listeners for /metrics
 *     and /status (wisp_workers_with), no atomics on the request path;
 *   - follow new credentials (wisp_tls_adopt: the same SSL_CTXs), and
 *     hand over a new policy (the same immutable policy and view, one more
 *     reference each) and a copy of the address -> identity map, which the
 *     worker puts in force on its own thread (ev_async), as it does a
 *     drain.
 * Worker 0 looks for such changes once per loop iteration
 * (wisp_workers_sync, before it sleeps).
 *
 * Ownership: worker 0's wisp_proxy owns the wisp_workers, which owns the
 * workers' loops and proxies. */
#ifndef WISP_WORKERS_H
#define WISP_WORKERS_H

#include <stddef.h>

#include "lib/wisp_err.h"

typedef struct wisp_workers wisp_workers;
struct wisp_proxy;

/* Builds workers 1..cfg->workers-1 beside |first| (worker 0, fully
 * initialised) and starts their threads. A worker that cannot start (a
 * listener that will not bind) fails the whole call: |err| names it. */
wisp_err wisp_workers_new(wisp_workers **out, struct wisp_proxy *first, char *err, size_t err_len) WISP_MUST_CHECK;
/* Worker 0, once per loop iteration: hands new credentials, policy and
 * map to every worker. */
void wisp_workers_sync(wisp_workers *g);
/* Worker 0's drain (SIGTERM, POST /drain): every worker starts its own. */
void wisp_workers_drain(wisp_workers *g);
/* Drains every worker and waits for each thread to end (each ends once
 * its callers are gone or at its --drain-timeout). Accepts NULL. */
void wisp_workers_join(wisp_workers *g);
/* Joins, then closes and frees every worker. Accepts NULL. */
void wisp_workers_free(wisp_workers *g);
/* Workers besides worker 0 (0 for NULL). */
size_t wisp_workers_count(const wisp_workers *g);
/* Calls |fn| with worker |i|'s proxy (i < wisp_workers_count; worker i+1
 * of the process) while that worker is stopped (its loop lock). */
void wisp_workers_with(wisp_workers *g, size_t i, void (*fn)(const struct wisp_proxy *px, void *arg), void *arg);

#endif
