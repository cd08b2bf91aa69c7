/* wisp_rpc: a small gRPC server (real gRPC wire format: HTTP/2 via nghttp2,
 * application/grpc, 5-byte length-prefixed protobuf messages, grpc-status
 * trailers) on lib/wisp_h2conn, for wisp-agent. Any gRPC client with the
 * .proto files can call it.
 *
 * Listeners: a Unix socket, where a caller may speak plaintext h2c (wispctl,
 * bootstrap with a join token; trusted by the socket's file mode) or TLS
 * (told apart by the first byte), and optionally TLS over TCP. Over TLS a
 * client certificate is optional; when one is presented it is verified, and
 * the call knows the caller's SPIFFE ID.
 *
 * Bounds, so that callers who never read cannot grow the agent: at most
 * |max_connections| connections, |max_per_source| of them from one source
 * (a uid on the Unix socket, an IP address over TCP; more are closed at
 * accept, with a log line), a connection that carries no call is closed
 * after |idle_timeout|, and per connection at most |max_conn_buffer| bytes
 * held for it
 * (request messages being received, responses its peer has not read yet); a
 * call that would pass it ends with RESOURCE_EXHAUSTED. A message sent to
 * many calls (a policy snapshot) is packed once and shared. Out of file
 * descriptors, the listeners pause (lib/wisp_accept).
 *
 * Ownership: the server owns its listeners and connections; a connection
 * owns its calls; a call's |user| state belongs to the method's handlers,
 * which release it in on_close. */
#ifndef WISP_RPC_H
#define WISP_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>
#include <protobuf-c/protobuf-c.h>

#include "lib/wisp_err.h"
#include "lib/wisp_grpc.h"
#include "lib/wisp_tls.h"

/* Largest request message we accept (a CSR, a policy). */
#define WISP_RPC_MAX_MSG (1024 * 1024)
/* Concurrent calls per connection; more are refused by HTTP/2 itself. */
#define WISP_RPC_MAX_STREAMS 100

typedef struct wisp_rpc_server wisp_rpc_server;
typedef struct wisp_rpc_call wisp_rpc_call;

typedef struct {
  const char *path; /* "/wisp.v1.Identity/Sign" */
  bool streaming;   /* client streaming: on_message per message, then on_end */
  /* A request message. Unary calls get exactly one, after the client's
   * END_STREAM. |msg| is borrowed for the call. */
  void (*on_message)(wisp_rpc_call *call, const uint8_t *msg, size_t len);
  /* Streaming: the client half-closed. May be NULL. */
  void (*on_end)(wisp_rpc_call *call);
  /* The call is over (finished, reset, or its connection died): release
   * |user|. May be NULL. The call is freed after it returns. */
  void (*on_close)(wisp_rpc_call *call);
} wisp_rpc_method;

typedef struct {
  const wisp_rpc_method *methods;
  size_t nmethods;
  void *data;             /* the owner's, for handlers: wisp_rpc_server_data */
  size_t max_connections; /* > 0: on all listeners together, handshakes included */
  size_t max_conn_buffer; /* > 0: bytes held per connection, in and out */
  size_t max_per_source;  /* connections from one uid (Unix socket) or IP (TCP); 0: no limit */
  double idle_timeout;    /* seconds an open connection may carry no call; 0: no limit */
} wisp_rpc_config;

/* A server listening nowhere yet; never NULL (out of memory is fatal). */
wisp_rpc_server *wisp_rpc_server_new(struct ev_loop *loop, const wisp_rpc_config *cfg);
/* Closes every connection and listener. NULL is fine. */
void wisp_rpc_server_free(wisp_rpc_server *s);
void *wisp_rpc_server_data(const wisp_rpc_server *s);

/* Sets the TLS credentials (borrowed, must outlive the server). */
void wisp_rpc_server_set_tls(wisp_rpc_server *s, wisp_tls *tls);
/* Listens on a Unix socket at |path| (a stale socket file is replaced) with
 * file mode |mode|. A server listens on at most 4 sockets in all. On
 * failure |err| says why. */
wisp_err wisp_rpc_listen_unix(wisp_rpc_server *s, const char *path, unsigned mode, char *err,
                              size_t err_len) WISP_MUST_CHECK;
/* Listens for TLS on HOST:PORT; as wisp_rpc_listen_unix. */
wisp_err wisp_rpc_listen_tls(wisp_rpc_server *s, const char *addr, char *err, size_t err_len) WISP_MUST_CHECK;
/* Stops accepting; open calls go on. */
void wisp_rpc_server_stop_listening(wisp_rpc_server *s);

/* ---- for handlers ---- */

wisp_rpc_server *wisp_rpc_call_server(const wisp_rpc_call *call);
/* The caller's verified SPIFFE ID (borrowed), or NULL without a client cert. */
const char *wisp_rpc_call_peer_id(const wisp_rpc_call *call);
/* The caller's verified leaf certificate (a new reference: X509_free), or
 * NULL without a verified client cert. */
X509 *wisp_rpc_call_get1_peer_cert(const wisp_rpc_call *call);
/* True for plaintext calls over the Unix socket (local, trusted by mode). */
bool wisp_rpc_call_local(const wisp_rpc_call *call);
/* For a local call: the uid of the process that connected (SO_PEERCRED). */
bool wisp_rpc_call_local_uid(const wisp_rpc_call *call, uid_t *out);
/* Where the call comes from, as the transport proves it (borrowed, never
 * empty): "uid N" on the Unix socket (SO_PEERCRED, TLS or not), the peer's
 * IP address over TCP. */
const char *wisp_rpc_call_origin(const wisp_rpc_call *call);
uint64_t wisp_rpc_call_conn_id(const wisp_rpc_call *call);
void *wisp_rpc_call_user(const wisp_rpc_call *call);
void wisp_rpc_call_set_user(wisp_rpc_call *call, void *user);

/* Sends one response message (headers go first, once). Fails with
 * WISP_ERR_TOO_BIG when the caller does not read and the connection's
 * buffered bytes would pass max_conn_buffer; the handler should then finish
 * the call. */
wisp_err wisp_rpc_send(wisp_rpc_call *call, const ProtobufCMessage *msg) WISP_MUST_CHECK;

/* A packed message for many calls: refcounted, immutable. */
typedef struct wisp_rpc_shared wisp_rpc_shared;
/* Packs |msg|; the caller holds the one reference. Never NULL. */
wisp_rpc_shared *wisp_rpc_shared_new(const ProtobufCMessage *msg);
/* Drops a reference. NULL is fine. */
void wisp_rpc_shared_free(wisp_rpc_shared *shared);

/* Sends one message: |own| (may be NULL) then |shared| (the call takes a
 * reference of its own). Protobuf merges concatenated messages, so the peer
 * reads |shared| with |own|'s fields set (a snapshot with the watcher's
 * nonce). For streams where only the newest message matters: a message sent
 * this way that is still queued and not started is dropped first. One the
 * peer has started to receive is completed, so at most that one and the
 * newest wait for a peer that does not read. Errors as wisp_rpc_send. */
wisp_err wisp_rpc_send_latest(wisp_rpc_call *call, wisp_rpc_shared *shared,
                              const ProtobufCMessage *own) WISP_MUST_CHECK;
/* Ends the call with |code| and |message| (may be NULL) in the trailers,
 * after the messages already sent. Further sends are ignored. */
void wisp_rpc_finish(wisp_rpc_call *call, wisp_grpc_status code, const char *message);
/* wisp_rpc_finish with a printf-style message. */
void wisp_rpc_finishf(wisp_rpc_call *call, wisp_grpc_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
