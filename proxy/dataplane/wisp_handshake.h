/* wisp_handshake: an inbound caller from accept to the end of its TLS
 * handshake (issue 12). It owns the caller's socket (the first bytes'
 * detection, then the transport: fd and SSL), its watchers, the handshake
 * timeout, its place in the listener's connection limits and its
 * connection id, given at accept; no HTTP/2 state and no connection
 * bookkeeping exist yet. The first bytes say TLS or plaintext
 * (PeerAuthentication): plaintext goes to wisp_conn_accept_plain. Once a
 * TLS handshake is done and the peer verified, ALPN picks exactly one
 * owner, which takes the transport, the slot and the id (one id for every
 * line of the caller):
 *   wisp-l4        the L4 tunnel (wisp_tunnel_inbound)
 *   anything else  an HTTP/2 connection (wisp_conn_accept_tls)
 * A caller that closes before a byte is logged "closed"; one whose
 * handshake fails or times out "refused", with the reason (both
 * rate-limited per listener), counted (wisp_events) and freed with all it
 * held. Owned by the proxy (px->handshakes; px->nhandshakes counts those
 * past detection, in TLS). */
#ifndef WISP_HANDSHAKE_H
#define WISP_HANDSHAKE_H

#include "proxy/dataplane/internal.h"
#include "proxy/dataplane/wisp_conn.h"

/* Takes |who|'s caller on |fd| (taken) from accept: detection, then the
 * server handshake; takes |who->slot| and holds |who->dst| (the caller
 * keeps its own hold). Its budget is --handshake-timeout from
 * |who->accepted|. */
void wisp_handshake_accept(wisp_conn_pending *who, int fd);

/* Closes every caller in detection or handshake, not logged (drain,
 * shutdown). */
void wisp_handshake_close_all(wisp_proxy *px);

#endif
