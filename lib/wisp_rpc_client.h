/* wisp_rpc_client (wisp_rpcc_*): gRPC calls over ONE HTTP/2 connection, on
 * lib/wisp_h2conn and a libev loop. For wispctl and for wisp-proxy's agent
 * client: real gRPC wire format (HTTP/2, application/grpc, 5-byte
 * length-prefixed protobuf messages, grpc-status trailers), so any gRPC
 * server can answer it (tested against @grpc/grpc-js and wisp-agent).
 *
 * A client is one connection, opened by wisp_rpcc_connect and never
 * reopened: when it fails (or the server sends GOAWAY) wisp_rpcc_usable says
 * so and the owner makes a new one, with its own backoff.
 *
 * Every call ends in exactly one on_done: normal trailers, a trailers-only
 * response, RST_STREAM, an HTTP status other than 200, a response that is
 * not gRPC, the connection failing or closing, the call's deadline,
 * wisp_rpcc_cancel or wisp_rpcc_free. The library frees the call after
 * on_done returns; the handle is invalid from then on. on_done is never
 * called from inside wisp_rpcc_call_start or wisp_rpcc_send, only from the
 * loop, wisp_rpcc_cancel and wisp_rpcc_free; handlers may call any function
 * here, including wisp_rpcc_cancel and wisp_rpcc_free. */
#ifndef WISP_RPC_CLIENT_H
#define WISP_RPC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "lib/wisp_err.h"
#include "lib/wisp_grpc.h"
#include "lib/wisp_h2conn.h"
#include "lib/wisp_net.h"
#include "lib/wisp_tls.h"

/* Largest response message accepted; a larger one ends the call with
 * RESOURCE_EXHAUSTED (decided from the length prefix, nothing buffered). */
#define WISP_RPCC_MAX_MSG WISP_GRPC_DEFAULT_MAX_MSG
/* Request bytes a call may have queued and not yet sent. */
#define WISP_RPCC_OUT_LIMIT (8u * 1024 * 1024)
/* Longest grpc-message kept (decoded); longer ones are cut. */
#define WISP_RPCC_MESSAGE_MAX 1024
/* Longest Unix socket path (sockaddr_un.sun_path minus the NUL). */
#define WISP_RPCC_UNIX_PATH_MAX 107

typedef struct wisp_rpcc wisp_rpcc;
typedef struct wisp_rpcc_call wisp_rpcc_call;

typedef struct {
  /* One response message; |msg| is borrowed until the handler returns. */
  void (*on_message)(wisp_rpcc_call *call, const uint8_t *msg, size_t len, void *arg);
  /* The call is over: |code| and |message| ("" if none; borrowed until the
   * handler returns). Called exactly once; the call is freed afterwards. */
  void (*on_done)(wisp_rpcc_call *call, wisp_grpc_status code, const char *message, void *arg);
} wisp_rpcc_handlers;

/* ---- the client ---- */

/* Opens a connection to |target|:
 *   unix:PATH, unix:///ABSOLUTE/PATH   a Unix socket;
 *   HOST:PORT, http://HOST:PORT        TCP (HOST a literal address or
 *                                      "localhost": no DNS);
 *   https://HOST:PORT                  TCP with TLS (needs |tls|).
 * With |tls| (borrowed, must outlive the client) the connection is a TLS
 * client with ALPN h2 and our SVID, over a Unix socket too, and the server
 * is verified by chain and SPIFFE ID: |expect_id| (copied; NULL: any ID in
 * our trust domain).
 *
 * Returns NULL, with |err| saying why, only for a target that does not parse,
 * https:// without |tls|, or |tls| without credentials. A connection that
 * fails (even at once, as a missing socket file does) still gives a client:
 * its calls end with UNAVAILABLE and the reason ("cannot connect: No such file
 * or directory", or the TLS verification failure in plain words). */
wisp_rpcc *wisp_rpcc_connect(wisp_h2loop *lp, const char *target, const wisp_tls *tls, const char *expect_id, char *err,
                             size_t err_len);

/* Closes the connection; calls still open end with UNAVAILABLE "client
 * closed" (their on_done runs inside this function). NULL is fine. The
 * connection itself is torn down by |lp|'s next flush. */
void wisp_rpcc_free(wisp_rpcc *c);

/* True while new calls can go out: the connection has not failed or closed
 * and the server has not sent GOAWAY. */
bool wisp_rpcc_usable(const wisp_rpcc *c);

/* True once the connection was established (TCP or Unix connected, and for
 * TLS the server verified): tells "could not reach the server" apart from
 * "the server went away". */
bool wisp_rpcc_reached(const wisp_rpcc *c);

/* Why the client is not usable ("" while it is), e.g. "cannot connect: No
 * such file or directory". Borrowed, valid until the next loop iteration. */
const char *wisp_rpcc_get0_error(const wisp_rpcc *c);

/* ---- calls ---- */

/* Starts a call of |path| ("/wisp.v1.Admin/Status"). |h| is copied; |arg| is
 * handed to the handlers. |timeout_s| > 0 sets a deadline (sent to the
 * server as grpc-timeout; at expiry the call is reset and ends with
 * DEADLINE_EXCEEDED); 0 means none. Never returns NULL: a call that cannot
 * start ends with on_done from the loop. */
wisp_rpcc_call *wisp_rpcc_call_start(wisp_rpcc *c, const char *path, const wisp_rpcc_handlers *h, void *arg,
                                     double timeout_s);

/* Queues one request message. Fails with WISP_ERR_CLOSED after
 * wisp_rpcc_close_send, and WISP_ERR_TOO_BIG (nothing queued) when the
 * call's unsent bytes would pass WISP_RPCC_OUT_LIMIT. */
wisp_err wisp_rpcc_send(wisp_rpcc_call *call, const ProtobufCMessage *msg) WISP_MUST_CHECK;

/* Half-closes: no more request messages (END_STREAM after those queued). */
void wisp_rpcc_close_send(wisp_rpcc_call *call);

/* Resets the call (RST_STREAM CANCEL); its on_done(CANCELLED) runs inside
 * this function. */
void wisp_rpcc_cancel(wisp_rpcc_call *call);

/* A unary call: start, send |req|, half-close. */
wisp_rpcc_call *wisp_rpcc_unary(wisp_rpcc *c, const char *path, const ProtobufCMessage *req,
                                const wisp_rpcc_handlers *h, void *arg, double timeout_s);

/* ---- the pure parts, exposed for tests and for logs ---- */

typedef enum { WISP_RPCC_TARGET_UNIX, WISP_RPCC_TARGET_TCP } wisp_rpcc_target_kind;

typedef struct {
  wisp_rpcc_target_kind kind;
  bool tls;                               /* https:// */
  char path[WISP_RPCC_UNIX_PATH_MAX + 1]; /* UNIX */
  wisp_addr addr;                         /* TCP */
  char authority[128];                    /* :authority; "localhost" for Unix */
} wisp_rpcc_target;

/* Parses a target (see wisp_rpcc_connect). WISP_ERR_USAGE, with |err|
 * naming the problem, otherwise; |*out| is then untouched. */
wisp_err wisp_rpcc_target_parse(wisp_rpcc_target *out, const char *s, char *err, size_t err_len) WISP_MUST_CHECK;

/* What a response's headers and trailers said, as far as the call's status
 * goes. Zeroed: nothing seen yet. */
typedef struct {
  int http_status; /* :status; 0 if none */
  bool has_content_type;
  bool grpc_content_type; /* application/grpc[+proto][;...] */
  bool has_grpc_status;
  bool bad_grpc_status; /* present but not a number */
  wisp_grpc_status grpc_status;
  char message[WISP_RPCC_MESSAGE_MAX + 1]; /* grpc-message, decoded */
} wisp_rpcc_response;

/* Takes one header (from the response headers or the trailers) into |r|;
 * headers other than :status, content-type, grpc-status and grpc-message
 * are ignored. */
void wisp_rpcc_response_header(wisp_rpcc_response *r, const uint8_t *name, size_t name_len, const uint8_t *value,
                               size_t value_len);

/* True if the response is gRPC (200 and a gRPC content-type), so that DATA
 * holds messages. */
bool wisp_rpcc_response_is_grpc(const wisp_rpcc_response *r);

/* The status of a call whose response ended (END_STREAM), per the gRPC spec:
 * grpc-status if present (and well-formed); otherwise a non-200 HTTP status
 * mapped as in doc/http-grpc-status-mapping.md (404 UNIMPLEMENTED, 503
 * UNAVAILABLE, ... anything else UNKNOWN); otherwise UNKNOWN for a response
 * that is not gRPC, INTERNAL for one without trailers. |out_msg| gets the
 * message (grpc-message, or a description). */
wisp_grpc_status wisp_rpcc_response_status(const wisp_rpcc_response *r, char *out_msg, size_t out_msg_len);

/* The gRPC status for an HTTP status without grpc-status. */
wisp_grpc_status wisp_rpcc_status_from_http(int http_status);

/* The gRPC status for a stream reset with HTTP/2 error |code| (spec:
 * REFUSED_STREAM UNAVAILABLE, CANCEL CANCELLED, ENHANCE_YOUR_CALM
 * RESOURCE_EXHAUSTED, INADEQUATE_SECURITY PERMISSION_DENIED, else INTERNAL). */
wisp_grpc_status wisp_rpcc_status_from_h2_error(uint32_t code);

/* Formats a grpc-timeout header value for |seconds| (> 0) into |out|: at
 * most 8 digits and a unit, rounded up so it never shortens the deadline
 * ("1500m", "100000S"). */
void wisp_rpcc_timeout_format(char *out, size_t out_len, double seconds);

#endif
