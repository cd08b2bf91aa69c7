/* h2peer: real nghttp2 sessions for in-process tests of wisp-proxy, driven
 * by the same libev loop as the proxy: a client (the caller) on one end of
 * a socketpair whose other end the proxy accepted, and a fake app (an
 * HTTP/2 server on loopback TCP) that records every request and answers
 * it, echoing, or holds it until the test answers or resets it.
 * Test-only. Every wait is bounded in iterations and in time. */
#ifndef WISP_TESTS_H2PEER_H
#define WISP_TESTS_H2PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#define TP_MAX_HDRS 64
#define TP_MAX_MSGS 64
#define TP_MAX_CONNS 16

typedef struct {
  char name[64];
  char value[512];
} tp_hdr;

/* One stream as one peer sees it: what arrived (request at the app,
 * response at the client) and what it sends. */
typedef struct tp_msg {
  int32_t id;
  int conn; /* app: index of the connection it came on */
  tp_hdr hdrs[TP_MAX_HDRS];
  int nhdrs;
  tp_hdr trailers[8];
  int ntrailers;
  uint8_t *body; /* owned */
  size_t body_len, body_cap;
  bool headers_done, ended, closed;
  uint32_t close_code; /* RST_STREAM code it closed with (0: cleanly) */
  bool rst_received;   /* the other side sent RST_STREAM (even NO_ERROR) */
  /* Outgoing body: |send| borrowed (for the app's echo: |body|). */
  const uint8_t *send;
  size_t send_len, sent;
  bool send_eof; /* no more body after |send| */
  bool answered; /* app: a response was submitted */
  tp_hdr send_trailers[4];
  int nsend_trailers;
} tp_msg;

typedef struct tp_app tp_app;

typedef struct tp_peer {
  struct ev_loop *loop;
  int fd;
  SSL *ssl;        /* owned; NULL: plaintext */
  bool handshaken; /* TLS: the handshake finished */
  bool server;
  nghttp2_session *h2;
  ev_io io;
  bool eof;    /* the other end closed the socket */
  bool failed; /* our session refused what arrived */
  bool goaway;
  uint32_t goaway_code;
  bool got_settings, settings_acked;
  tp_msg *msgs[TP_MAX_MSGS];
  int nmsgs;
  tp_app *app;
  int index;
  uint8_t *out;
  size_t out_len, out_cap;
} tp_peer;

struct tp_app {
  struct ev_loop *loop;
  int lfd;
  unsigned port;
  ev_io accept_io;
  uint32_t max_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS it sends */
  bool hold;            /* answer only when the test says */
  SSL_CTX *tls;         /* owned; NULL: plaintext, else the TLS server of each connection */
  tp_peer *conns[TP_MAX_CONNS];
  int nconns;
  tp_msg *reqs[TP_MAX_MSGS]; /* every request, in arrival order (borrowed from conns) */
  int nreqs;
};

/* ---- the client ---- */

/* A client session on |fd| (taken): sends its preface and SETTINGS. */
tp_peer *tp_client_new(struct ev_loop *loop, int fd);
/* The same over TLS: |ssl| (taken) is a client SSL not yet bound to a
 * socket; the session starts once the handshake is done. A refused
 * handshake ends as |failed| and |eof|. */
tp_peer *tp_client_new_tls(struct ev_loop *loop, int fd, SSL *ssl);
/* Submits a request; |body| (borrowed until sent) may be NULL. |end|
 * false: the stream stays open after the body (tp_msg_end ends it). */
tp_msg *tp_client_request(tp_peer *p, const char *method, const char *path, const tp_hdr *extra, int nextra,
                          const void *body, size_t len, bool end);
/* tp_client_request with a body ended by trailers (at most 4). */
tp_msg *tp_client_request_trailers(tp_peer *p, const char *method, const char *path, const void *body, size_t len,
                                   const tp_hdr *trailers, int ntrailers);
/* Ends an open request (or response) body. */
void tp_msg_end(tp_peer *p, tp_msg *m);
void tp_peer_rst(tp_peer *p, tp_msg *m, uint32_t code);
/* Writes |len| raw bytes on the socket, after what the session queued. */
void tp_peer_write_raw(tp_peer *p, const void *data, size_t len);
void tp_peer_flush(tp_peer *p);
/* Reads what the socket holds now, outside the loop's turn (e.g. once a
 * drained proxy has ended the loop's polling). */
void tp_peer_read(tp_peer *p);
void tp_peer_free(tp_peer *p);

/* A tp_run_until condition: tp_msg |msg| closed (ended or reset). */
bool tp_msg_closed(void *msg);

/* The value of header |name| in |m| (request or response), or NULL. */
const char *tp_hdr_get(const tp_msg *m, const char *name);

/* ---- the fake app ---- */

/* Listens on 127.0.0.1 (a free port); |hold|: requests wait for
 * tp_app_respond / tp_app_rst, else each is answered once whole: 200,
 * "x-app-conn: <conn index>", its own body echoed back. */
tp_app *tp_app_new(struct ev_loop *loop, uint32_t max_streams, bool hold);
/* The same over TLS: each connection's server SSL comes from |tls| (taken). */
tp_app *tp_app_new_tls(struct ev_loop *loop, uint32_t max_streams, bool hold, SSL_CTX *tls);
void tp_app_respond(tp_app *a, tp_msg *m, int status, const void *body, size_t len);
/* A response whose body is ended by |trailers| (at most 4), or, with
 * |ntrailers| -1, left open after |body| (tp_msg_end or tp_app_rst end it). */
void tp_app_respond_trailers(tp_app *a, tp_msg *m, int status, const void *body, size_t len, const tp_hdr *trailers,
                             int ntrailers);
/* App connection |index| sends GOAWAY NO_ERROR saying it processed streams
 * up to |last_stream_id| (the ones after are refused: a graceful restart). */
void tp_app_goaway(tp_app *a, int index, int32_t last_stream_id);
/* Stops accepting and closes the listening socket: the app is down. */
void tp_app_stop_listening(tp_app *a);
/* App connection |index| crashes: what it queued is written, and once the
 * other end's kernel has all of it (nothing left unacknowledged), the
 * socket is closed with an RST (SO_LINGER 0, no close_notify). */
void tp_app_reset_conn(tp_app *a, int index);
/* Closes app connection |index| (its socket), streams and all. */
void tp_app_drop_conn(tp_app *a, int index);
void tp_app_rst(tp_app *a, tp_msg *m, uint32_t code);
void tp_app_free(tp_app *a);

/* ---- the loop ---- */

typedef bool (*tp_cond)(void *arg);
/* Runs |loop| until |cond| holds, at most |max_seconds| and a bounded
 * number of iterations. Returns whether it held. */
bool tp_run_until(struct ev_loop *loop, tp_cond cond, void *arg, double max_seconds);
/* Runs |loop| for a while with nothing to wait for (|iterations| passes of
 * at most 10 ms each): to see that something does NOT happen. */
void tp_run_for(struct ev_loop *loop, int iterations);

#endif
