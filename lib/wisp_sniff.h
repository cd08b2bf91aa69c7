/* wisp_sniff: waits for a new connection's first byte, without consuming
 * it, to tell TLS (a handshake record, 0x16) from anything else: how the
 * agent's Unix socket serves both h2c and TLS, and how a PERMISSIVE inbound
 * port accepts plaintext callers beside mTLS ones. */
#ifndef WISP_SNIFF_H
#define WISP_SNIFF_H

#include <ev.h>

#define WISP_SNIFF_TLS_RECORD 0x16

/* Called once: |first| is the first byte (peeked: still unread), or -1 if
 * the peer closed or stayed silent past the timeout (then |fd| is already
 * closed). Otherwise |fd| now belongs to the callback. */
typedef void (*wisp_sniff_cb)(int fd, int first, void *arg);

/* Takes |fd| and calls |cb| when its first byte arrives or |timeout| s pass. */
void wisp_sniff_start(struct ev_loop *loop, int fd, double timeout, wisp_sniff_cb cb, void *arg);

#endif
