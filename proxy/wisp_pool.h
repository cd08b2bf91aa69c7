/* wisp_pool: a small pool of upstream connections per target. Streams from
 * every downstream connection share it, so a request never pays for a
 * handshake when a connection is open (or opening). */
#ifndef WISP_POOL_H
#define WISP_POOL_H

#include "proxy/internal.h"

/* Streams we put on one upstream connection before opening another. */
#define WISP_POOL_STREAMS_PER_CONN 100

/* Returns a connection for a new stream (borrowed: owned by the proxy), or
 * NULL with |err| saying why none could be had. */
wisp_conn *wisp_pool_get(wisp_target *t, char *err, size_t err_len);
/* Forgets |c| (on its teardown). */
void wisp_pool_remove(wisp_target *t, wisp_conn *c);

#endif
