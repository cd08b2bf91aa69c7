/* wisp_transport: one connection's byte stream, plain TCP or TLS
 * (BoringSSL) on a non-blocking socket, behind one small table of function
 * pointers per connection, as valkey's ConnectionType (src/connection.h)
 * is for TCP and TLS. It reads, writes, half-closes, steps the handshake
 * and closes; once the handshake is done it says what was negotiated (ALPN)
 * and who the peer is (the verified SPIFFE ID). It does not watch the
 * socket (its owner's ev_io watchers do: after WISP_TRANSPORT_AGAIN,
 * |want_write| says which readiness TLS waits for) and does not decide (the
 * owner says whether a peer without a certificate or an ALPN will do).
 *
 * Users: wisp_h2conn (the proxy's HTTP/2 connections, wisp-agent's gRPC
 * server, the agent client through wisp_rpc_client) and the proxy's L4
 * tunnel (both of its ends).
 *
 * A third kind, "pipe", is one end of an in-process lib/wisp_pipe (the
 * proxy's HTTP/1 gateways): no fd (-1), no socket events; its owner
 * watches it with wisp_pipe_want and is called back by the pipe's
 * scheduler (wisp_h2conn does both).
 *
 * A wisp_transport is caller-allocated and embedded in its owner, and
 * never copied (the SSL's BIO points at it): wisp_transport_move hands it
 * over. It owns its fd, SSL and read buffer from init (set0_tls) until
 * wisp_transport_close or wisp_transport_move. The TLS verification state
 * (wisp_tls_verify) stays the owner's, borrowed by the SSL
 * (wisp_tls_new_ssl, wisp_tls_set_verify): whoever takes a transport over
 * points the SSL at its own copy. */
#ifndef WISP_TRANSPORT_H
#define WISP_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/wisp_pipe.h"
#include "lib/wisp_tls.h"

/* Results of read, write and handshake besides a byte count. */
enum {
  WISP_TRANSPORT_DONE = 1,       /* handshake: finished */
  WISP_TRANSPORT_AGAIN = -1,     /* would block: wait until readable, or writable if |want_write| */
  WISP_TRANSPORT_ERROR = -2,     /* failed (errno for a socket error; EPROTO for a TLS error, cleared) */
  WISP_TRANSPORT_TRUNCATED = -3, /* read, TLS: the TCP stream ended without close_notify */
};

typedef struct wisp_transport wisp_transport;

typedef struct {
  const char *name; /* "tcp", "tls", "pipe" */
  /* >0 bytes read; 0 the peer finished sending (FIN, or TLS close_notify);
   * AGAIN, ERROR or TRUNCATED. */
  ssize_t (*read)(wisp_transport *t, uint8_t *buf, size_t len);
  /* >0 bytes written (maybe fewer than |len|), AGAIN or ERROR; never 0. */
  ssize_t (*write)(wisp_transport *t, const uint8_t *buf, size_t len);
  /* One step of the handshake: DONE, AGAIN or ERROR (the reason is in the
   * SSL's wisp_tls_verify). Plain TCP is DONE at once. */
  int (*handshake)(wisp_transport *t);
  /* Half-close: no more writes (FIN, or TLS close_notify). */
  void (*shutdown)(wisp_transport *t);
  /* Bytes already inside the transport (read from the socket into its
   * read buffer, or a TLS record decrypted in part): no socket event will
   * announce them, so an owner that stops reading while this is true must
   * come back by itself (wisp_transport_read_pending). */
  bool (*has_pending)(const wisp_transport *t);
  /* As read, but from what the transport holds only, never the socket:
   * AGAIN once that is used up. */
  ssize_t (*read_pending)(wisp_transport *t, uint8_t *buf, size_t len);
} wisp_transport_type;

/* TLS reads go through the transport's own buffer: one read(2) of up to
 * this many bytes takes everything the socket has (several TLS records, or
 * the largest one, 16 KiB + 261 bytes, whole), where BoringSSL alone reads
 * a record in two (its 5-byte header, then its body). */
#define WISP_TRANSPORT_RBUF_SIZE (32 * 1024)

struct wisp_transport {
  const wisp_transport_type *type;
  SSL *ssl;        /* owned; NULL for plain TCP */
  uint8_t *rbuf;   /* TLS: bytes read from the socket that the SSL has not
                   * taken yet, rbuf[rpos, rlen); owned; NULL whenever there
                   * are none, so an idle connection holds no buffer. The
                   * SSL's BIO points at this transport (move repoints it). */
  int fd;          /* owned; -1: none */
  uint16_t rpos;   /* next byte of rbuf for the SSL */
  uint16_t rlen;   /* end of the bytes in rbuf */
  bool no_refill;  /* read_pending in progress: the BIO does not read(2) */
  bool drained;    /* the last read(2) got bytes, but fewer than it asked
                    * for: the socket was empty then. Only a hint for the
                    * owner (wisp_h2conn ends an upstream's reads on it);
                    * the next read still asks the socket */
  bool want_write; /* TLS: an operation waits for the socket to be writable.
                    * Each handshake step sets or clears it; read and write
                    * set it and never clear it: an owner that acts on it
                    * after the handshake clears it once it saw the socket
                    * writable (wisp_h2conn does; the L4 tunnel reads it
                    * only while handshaking, and watches an end for
                    * writability only while bytes wait for it) */

  /* TLS: the library's packed code of the last failure the peer caused (a
   * bad record, its alert), 0 none: for the owner's log line
   * (wisp_transport_error_text). */
  uint32_t tls_error;

  /* The pipe kind's end, owned; NULL for a socket. */
  wisp_pipe_end *pipe;
};

/* Plain TCP on |fd| (taken; -1: not connected yet, see set_fd). */
void wisp_transport_init(wisp_transport *t, int fd);
/* One end of an in-process pipe (taken). */
void wisp_transport_init_pipe(wisp_transport *t, wisp_pipe_end *e);
/* Sets the fd of a transport made without one (taken). */
void wisp_transport_set_fd(wisp_transport *t, int fd);
/* Makes |t| TLS with |ssl| (taken) in the role |server| or client, on |t|'s
 * fd (now, or once set_fd gives one). */
void wisp_transport_set0_tls(wisp_transport *t, SSL *ssl, bool server);
/* Hands |src|'s fd, SSL and buffered bytes over to |dst| (uninitialised);
 * |src| is left closed (no fd, no SSL). */
void wisp_transport_move(wisp_transport *dst, wisp_transport *src);
/* Frees the SSL and closes the fd (with an RST if |reset|: SO_LINGER 0)
 * or the pipe end (which resets its peer only if bytes were left unread,
 * whatever |reset| says);
 * |t| is then plain with no fd. Safe on a closed transport. */
void wisp_transport_close(wisp_transport *t, bool reset);

static inline bool wisp_transport_is_tls(const wisp_transport *t) { return t->ssl != NULL; }

static inline ssize_t wisp_transport_read(wisp_transport *t, uint8_t *buf, size_t len) {
  return t->type->read(t, buf, len);
}
static inline ssize_t wisp_transport_write(wisp_transport *t, const uint8_t *buf, size_t len) {
  return t->type->write(t, buf, len);
}
static inline int wisp_transport_handshake(wisp_transport *t) { return t->type->handshake(t); }
static inline void wisp_transport_shutdown(wisp_transport *t) { t->type->shutdown(t); }
static inline bool wisp_transport_has_pending(const wisp_transport *t) { return t->type->has_pending(t); }
static inline ssize_t wisp_transport_read_pending(wisp_transport *t, uint8_t *buf, size_t len) {
  return t->type->read_pending(t, buf, len);
}

/* What a finished handshake gave: read once it returned DONE. */
typedef struct {
  const uint8_t *alpn; /* borrowed from the SSL; NULL: none (always so for plain TCP) */
  size_t alpn_len;
  const char *peer_id; /* the verified SPIFFE ID, borrowed from the SSL's
                        * wisp_tls_verify; NULL: no verified peer */
  bool peer_cert;      /* the peer presented a certificate (verified or not) */
} wisp_transport_peer;

void wisp_transport_get_peer(const wisp_transport *t, wisp_transport_peer *out);
/* Whether |p|'s negotiated ALPN is |proto| (NUL-terminated). */
bool wisp_transport_alpn_is(const wisp_transport_peer *p, const char *proto);

/* Why the last WISP_TRANSPORT_ERROR of |t| happened, for a log line; |err|
 * is the errno it left. A peer that broke TLS gets the TLS library's reason
 * in words ("TLS error: decryption failed or bad record mac", "TLS error:
 * tlsv1 alert decode error" for its alert), not strerror's "Protocol
 * error"; anything else is strerror(err). Returns |out| or a static
 * string. */
const char *wisp_transport_error_text(const wisp_transport *t, int err, char *out, size_t out_len);

#endif
