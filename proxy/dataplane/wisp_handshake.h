/* wisp_handshake: an inbound mTLS caller from accept to the end of its TLS
 * handshake (issue 12). It owns the caller's transport (fd and SSL), its
 * watchers, the handshake timeout, its place in the listener's connection
 * limits and its connection id; no HTTP/2 state and no connection
 * bookkeeping exist yet. Once the handshake is done and the peer verified,
 * ALPN picks exactly one owner, which takes the transport, the slot and the
 * id (one id for every line of the caller):
 *   wisp-l4        the L4 tunnel (wisp_tunnel_inbound)
 *   anything else  an HTTP/2 connection (wisp_conn_accept_tls)
 * A handshake that fails or times out is logged ("refused", with the
 * reason, rate-limited per listener), counted (wisp_events) and freed with
 * all it held. Owned by the proxy (px->handshakes). */
#ifndef WISP_HANDSHAKE_H
#define WISP_HANDSHAKE_H

#include "proxy/dataplane/internal.h"
#include "proxy/dataplane/wisp_conn.h"

/* Starts the server handshake of |who|'s caller on |fd| (taken), taking
 * |who->slot| and holding |who->dst| (the caller keeps its own hold). Its
 * budget is --handshake-timeout from |who->accepted|. */
void wisp_handshake_start(wisp_conn_pending *who, int fd);

/* Closes every handshake in progress, not logged (drain, shutdown). */
void wisp_handshake_close_all(wisp_proxy *px);

#endif
