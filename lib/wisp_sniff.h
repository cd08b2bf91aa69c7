/* wisp_sniff: waits for a new connection's first byte, without consuming
 * it, to tell TLS (a handshake record, 0x16) from anything else: how the
 * agent's Unix socket serves both h2c and TLS, and how a PERMISSIVE inbound
 * port accepts plaintext callers beside mTLS ones. */
#ifndef WISP_SNIFF_H
#define WISP_SNIFF_H

#include <ev.h>

#define WISP_SNIFF_TLS_RECORD 0x16
#define WISP_SNIFF_CLOSED (-1)  /* the peer closed or failed: |fd| is already closed */
#define WISP_SNIFF_TIMEOUT (-2) /* silent past the timeout: |fd| is the callback's */

/* Called once: |first| is the first byte (peeked: still unread), or one of
 * the codes above. Except after WISP_SNIFF_CLOSED, |fd| now belongs to the
 * callback (a server-first protocol is silent on purpose). */
typedef void (*wisp_sniff_cb)(int fd, int first, void *arg);

/* Takes |fd| and calls |cb| when its first byte arrives or |timeout| s pass. */
void wisp_sniff_start(struct ev_loop *loop, int fd, double timeout, wisp_sniff_cb cb, void *arg);

#endif
