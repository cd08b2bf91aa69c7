/* wisp_pool: a small pool of upstream connections per target, and the
 * queue of requests waiting for a stream on one. Streams from every
 * downstream connection share the pool, so a request never pays for a
 * handshake when a connection is open (or opening).
 *
 * A request ready to go upstream is queued on its caller's connection and
 * sent when the loop has parsed everything read so far (wisp_pool_pump,
 * before each flush): a request its caller reset in the same read (rapid
 * reset, CVE-2023-44487) is freed without ever reaching the upstream.
 * Callers with waiting requests are served round robin, one request each
 * in turn, while the pool has free streams; within a peer sidecar's
 * connection, its callers (x-wisp-caller) are too. The pool owns the lanes
 * (per-caller FIFOs) of a connection's queue; streams are borrowed. */
#ifndef WISP_POOL_H
#define WISP_POOL_H

#include "proxy/dataplane/internal.h"

/* Streams we put on one upstream connection before opening another. */
#define WISP_POOL_STREAMS_PER_CONN 100

/* Queues |s| (its request headers complete, authorized) behind its
 * caller's other waiting requests and wakes its target. */
void wisp_pool_enqueue(wisp_stream *s);
/* Takes |s| out of its caller's queue (the caller reset it or went away);
 * no-op if it is not queued. */
void wisp_pool_dequeue(wisp_stream *s);
/* Something changed for |t| (a stream slot or a connection freed, a
 * connection opened): its waiting requests are looked at again. */
void wisp_pool_wake(wisp_target *t);
/* Sends waiting requests of every woken target upstream while there are
 * free streams (the h2loop's before_flush hook). */
void wisp_pool_pump(wisp_proxy *px);
/* Forgets |c| (on its teardown). */
void wisp_pool_remove(wisp_target *t, wisp_conn *c);
/* Takes |t|, about to be freed (an evicted transparent destination, no
 * connections, no waiting requests), off the list of woken targets. */
void wisp_pool_forget(wisp_target *t);

#endif
