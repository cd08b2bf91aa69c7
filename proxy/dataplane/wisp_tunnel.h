/* wisp_tunnel: traffic that is not HTTP/2, carried as an L4 byte stream
 * over the same mTLS (told apart on the wire by ALPN "wisp-l4"): the app's
 * plaintext connection on one end, the peer sidecar's TLS on the other.
 * Bounded buffers each way (a slow reader stops the other end's reads),
 * half-close carried (FIN <-> TLS close_notify), a reset or error on either
 * end resets the other. One JSON line per tunnel. Owned by the proxy. */
#ifndef WISP_TUNNEL_H
#define WISP_TUNNEL_H

#include "lib/wisp_transport.h"
#include "proxy/dataplane/internal.h"

#define WISP_ALPN_L4 "wisp-l4"

/* Both take the caller's |slot| in its listener's connection limits (it is
 * given back when the tunnel closes).
 * Outbound: |app_fd| (taken) is an app connection to |t|'s address; dials
 * it over mTLS (ALPN wisp-l4) and relays. */
void wisp_tunnel_outbound(wisp_proxy *px, int app_fd, const char *peer_addr, wisp_target *t, wisp_connlimit_slot *slot);
/* The same, for an app connection whose first |len| bytes were already
 * read (an HTTP/1 Upgrade or CONNECT request, wisp_h1): they go first. */
void wisp_tunnel_outbound_after(wisp_proxy *px, int app_fd, const char *peer_addr, wisp_target *t,
                                wisp_connlimit_slot *slot, const uint8_t *read, size_t len);
/* Inbound: |tp| is a verified mTLS connection that negotiated wisp-l4
 * (wisp_handshake), taken over (wisp_transport_move: |tp| is left closed)
 * with its connection id |id|; |v| (borrowed) has the peer's identity: the
 * tunnel copies it and points the SSL at its copy, so |v| may go once this
 * returns. Connects to |app| after the policy allows the caller on |app|'s
 * port, and relays. */
void wisp_tunnel_inbound(wisp_proxy *px, uint64_t id, wisp_transport *tp, const wisp_tls_verify *v,
                         const char *peer_addr, wisp_target *app, wisp_connlimit_slot *slot);

/* Closes every tunnel (proxy shutdown). */
void wisp_tunnel_close_all(wisp_proxy *px);

#endif
