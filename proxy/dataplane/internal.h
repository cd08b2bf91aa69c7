/* Private types of wisp-proxy's data plane, shared by its modules (the
 * control side sees proxy/wisp_dataplane.h instead):
 *   wisp_proxy   the process: loop, credentials, listeners, targets
 *   wisp_listener  an accepting socket (outbound route or inbound mTLS)
 *   wisp_target  an upstream destination and its pool of connections
 *   wisp_conn    one TCP connection (plain or TLS) carrying one nghttp2 session
 *                (an inbound mTLS caller's only once its handshake is done:
 *                until then proxy/dataplane/wisp_handshake holds it)
 *   wisp_stream  one proxied request: a downstream stream bridged to an
 *                upstream stream
 * Ownership: the proxy owns listeners, targets and (through its conn list)
 * every connection; a connection owns its wisp_h2conn (fd, SSL, session); a
 * stream is owned jointly by the two connections it bridges and is freed
 * when both sides have let go of it. */
#ifndef WISP_PROXY_INTERNAL_H
#define WISP_PROXY_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <ev.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include "lib/wisp_accept.h"
#include "lib/wisp_buf.h"
#include "lib/wisp_connlimit.h"
#include "lib/wisp_h2conn.h"
#include "lib/wisp_list.h"
#include "lib/wisp_memtrim.h"
#include "lib/wisp_net.h"
#include "lib/wisp_resetlim.h"
#include "lib/wisp_tls.h"
#include "proxy/wisp_config.h"
#include "proxy/wisp_dataplane.h"
#include "proxy/dataplane/wisp_hdrs.h"
#include "proxy/dataplane/wisp_upfail.h"

/* HTTP/2 flow-control windows we grant. They bound what one stream (and one
 * connection) can make us buffer, whatever the peer does. Every stream
 * starts with WISP_H2_STREAM_WINDOW_MIN (SETTINGS_INITIAL_WINDOW_SIZE, the
 * HTTP/2 default); once its reader has taken more than that, it is raised
 * to WISP_H2_STREAM_WINDOW if its caller's --conn-buffer-limit has room
 * (wisp_stream: buffer budgets). A stream nobody reads holds 64 KiB. */
#define WISP_H2_STREAM_WINDOW_MIN (64 * 1024)
#define WISP_H2_STREAM_WINDOW (256 * 1024)
#define WISP_H2_CONN_WINDOW (1024 * 1024)
/* --max-resets N: premature stream resets a caller (a source address) may
 * make per this many seconds, by RST_STREAM or by breaking the protocol on
 * a stream (lib/wisp_resetlim: N at once, refilled at N per window). */
#define WISP_RESET_WINDOW 10
/* A caller (not a peer sidecar) with no --max-resets budget left sends one
 * request upstream at a time, at most one per this many seconds
 * (wisp_conn_upstream_share). */
#define WISP_RESET_PROBE_INTERVAL 0.1
#define WISP_RESET_LIMIT_REASON                                                                   \
  "premature stream resets (rapid reset CVE-2023-44487, MadeYouReset CVE-2025-8671): the caller " \
  "reset, or made the proxy reset, more streams than --max-resets allows; sent GOAWAY ENHANCE_YOUR_CALM"
#define WISP_RESET_THROTTLE_REASON                                                                   \
  "premature stream resets over --max-resets on a peer sidecar's shared connection: throttled, not " \
  "cut (its connections from this source share 4 upstream streams until its budget comes back)"

typedef struct wisp_conn wisp_conn;
typedef struct wisp_stream wisp_stream;
typedef struct wisp_lane wisp_lane;

typedef struct wisp_target {
  wisp_proxy *px;
  char *name; /* owned, HOST:PORT */
  wisp_addr addr;
  bool tls;         /* mTLS to a peer sidecar, else h2c to the app */
  char *expect_id;  /* owned, NULL: any ID in our trust domain */
  char *refuse;     /* owned; non-NULL: a stand-in with no upstream, every
                        * request is answered 503 with this reason */
  wisp_conn *conns; /* pool, linked by pool_next; borrowed from px->conns */
  int nconns;
  /* Requests waiting for an upstream stream (wisp_pool): a ring of the
   * callers that have some, served round robin; |waiters| is next. */
  wisp_conn *waiters;
  int nwaiting;         /* requests waiting, all callers (at most --max-queued) */
  bool woken;           /* on px->woken: a stream or a slot may be ready */
  ev_timer probe_timer; /* wakes it when a caller over --max-resets may send a probe (wisp_pool) */
  struct wisp_target *woken_next;
  int users;           /* downstream connections (and accepts being sniffed) sent here */
  ev_tstamp last_used; /* when a user last came or went (LRU eviction) */
  bool retired;        /* an evicted transparent destination, freed with its last pool connection */
} wisp_target;

/* A destination met in transparent mode, kept for its connection pool while
 * there is room (--max-destinations), evicted when unused and room is
 * wanted (wisp_proxy_target_for). */
typedef struct wisp_dyn_target {
  wisp_target t; /* first: a retired wisp_target is its wisp_dyn_target */
  struct wisp_dyn_target *next;
} wisp_dyn_target;

typedef struct wisp_listener {
  wisp_proxy *px;
  wisp_direction dir;
  char *name;    /* owned, HOST:PORT */
  unsigned port; /* the port it is bound to */
  int fd;
  wisp_acceptor acc;       /* its accept loop */
  wisp_target *target;     /* borrowed; NULL: transparent (per connection) */
  wisp_connlimit *limit;   /* --max-connections, and per source on inbound: worker 0's owns it, the
                            * other workers' same listener borrows it (lib/wisp_connlimit.h: shared) */
  wisp_log_limit refusals; /* bounds the "refused" lines a flood makes */
} wisp_listener;

struct wisp_conn {
  wisp_h2conn io; /* first: the transport, session and buffers */
  wisp_proxy *px;
  uint64_t id;
  wisp_direction dir;
  ev_timer timer;
  ev_tstamp started;
  char peer_addr[64];
  wisp_listener *listener;  /* downstream: borrowed */
  wisp_target *dst;         /* downstream: where its streams go (borrowed) */
  wisp_target *target;      /* upstream: borrowed */
  wisp_connlimit_slot slot; /* downstream: its place in the listener's limits */
  char *expect_id;      /* upstream mTLS: owned copy of the ID the peer must present (NULL: any in our trust domain) */
  wisp_stream *streams; /* streams on this side, linked per side */
  int nstreams;
  /* The stream of the header block being decoded (HEADERS and its
   * CONTINUATIONs are never interleaved with another stream's frames), so
   * wisp_h2 looks it up once per block, not once per field; NULL when none,
   * and cleared when that stream leaves this connection (borrowed). */
  wisp_stream *hdr_stream;
  int32_t hdr_stream_id;
  bool got_preface; /* the peer's preface (its first SETTINGS) arrived: either side */
  /* downstream: its streams waiting for an upstream stream, one lane per
   * original caller (wisp_pool), served round robin from |lanes| on, and
   * its place in dst->waiters (linked by rr_next/prev) */
  struct wisp_lane *lanes;
  wisp_conn *rr_next, *rr_prev;
  int nwaiting;       /* downstream: its streams in its lanes */
  size_t buffered_in; /* downstream: body bytes it sent us that wait in its streams' buffers */
  size_t window_owed; /* downstream: connection window held back while over --conn-buffer-limit */
  size_t granted;     /* downstream: window its streams got beyond the first 64 KiB, both ways */
  size_t hdr_held;    /* downstream: header and trailer bytes its streams hold (wisp_stream: budgets) */
  int nupstream;      /* downstream: its streams holding an upstream stream (at most --max-upstream-per-caller) */
  struct wisp_resetlim_caller
      *caller;                /* downstream: its caller's premature resets (held; NULL until the first stream) */
  uint32_t streams_completed; /* downstream: streams of this connection that ended whole */
  uint32_t streams_reset;     /* downstream: ... and that ended in a premature reset */
  const char *term_reason;    /* static; set when we terminated the session (GOAWAY sent, then close) */
  uint64_t first_caller_tag;  /* downstream, inbound: the first x-wisp-caller tag it carried (0: none yet) */
  bool many_callers;          /* downstream, inbound: it carried more than one distinct tag (a peer sidecar's) */
  bool conn_error;            /* nghttp2 ended the session for the peer's connection error */
  bool goaway;                /* no new streams on this connection */
  bool draining;              /* we sent GOAWAY; close when streams end */
  bool h1_gateway;            /* downstream: our HTTP/1 gateway's end (wisp_h1): its x-wisp-proto is ours */
  bool h1app;                 /* upstream: to the app through the HTTP/1.1 gateway (wisp_h1app), else h2c */
  wisp_list link;             /* in px->conns */
  wisp_conn *pool_next;       /* target->conns */
};

/* A stream has two sides: DOWN (the caller: we are its HTTP/2 server) and
 * UP (where the request goes: we are its HTTP/2 client). Everything that
 * flows is indexed by the side it came from: hdrs[DOWN] are the request
 * headers, body[UP] is response data waiting to be sent down, and so on. */
typedef enum { WISP_DOWN = 0, WISP_UP = 1 } wisp_side;
/* The protocol a request's original caller spoke (wisp_stream.h: x-wisp-proto). */
typedef enum { WISP_PROTO_H2 = 0, WISP_PROTO_HTTP10, WISP_PROTO_HTTP11 } wisp_caller_proto;
#define WISP_OTHER(side) ((wisp_side)(1 - (side)))

typedef struct {
  wisp_conn *conn; /* NULL while not (or no longer) open on this side */
  int32_t id;
  wisp_stream *next, *prev; /* in conn->streams */
} wisp_stream_link;

/* Header fields the request log and the request's handling read, noted as
 * they arrive. */
#define WISP_LOG_FIELDS 12

struct wisp_stream {
  wisp_stream_link link[2];
  wisp_direction dir;
  wisp_target *target; /* borrowed */
  wisp_hdrs hdrs[2];   /* request headers (DOWN), response headers (UP) */
  wisp_hdrs trailers[2];
  wisp_buf body[2];       /* received on a side, not yet sent on the other */
  bool eof[2];            /* that side sent END_STREAM */
  uint64_t bytes[2];      /* body bytes received on that side */
  uint64_t sent_up;       /* request bytes handed to the upstream */
  uint64_t discard_until; /* after our response: reset past this many request bytes (0: no) */
  bool headers_done[2];   /* final header block received on that side */
  bool resp_started;      /* response HEADERS submitted downstream */
  bool discard_req;       /* we answered already: drop request data */
  bool waiting;           /* in its caller's wait queue for an upstream stream */
  uint64_t caller_tag;    /* the original caller behind a peer sidecar's connection (x-wisp-caller), 0: none */
  struct wisp_lane *lane; /* while waiting: its lane in its connection's queue */
  wisp_stream *wait_next, *wait_prev;
  ev_timer wait_timer;        /* --queue-timeout while waiting; after our own answer, its reset */
  bool counted_up;            /* counted in its caller's nupstream */
  bool counted_untrusted;     /* ... and in its address's (wisp_conn_upstream_held) */
  bool counted_throttled;     /* ... or in its peer sidecar's throttled ones (the same) */
  bool counted_source;        /* ... and in its source's share (--inbound) */
  bool premature;             /* its caller ended it early: a premature reset (--max-resets) */
  bool line_dropped;          /* our own answer's request line, over its source's bound (wisp_conn_answer_line) */
  bool grown[2];              /* that side's window raised to WISP_H2_STREAM_WINDOW (charged to the caller) */
  uint64_t lines_dropped;     /* written, how many of its source's lines it follows (line_dropped) */
  uint64_t taken[2];          /* body bytes from that side taken by the other */
  size_t hdr_held;            /* header and trailer bytes it holds, charged to the process and its caller */
  size_t section[2];          /* bytes of the header section arriving on that side (--max-header-list-size) */
  const char *hdr_refused[2]; /* static: why that side's section is not kept (too large, no budget), else NULL */
  bool is_grpc;
  wisp_caller_proto caller_proto; /* what the original caller spoke (x-wisp-proto between sidecars) */
  bool app_h1;                    /* inbound: goes to the app as HTTP/1.1 (else h2c) */
  bool continue_sent;             /* a 100 (Expect: 100-continue) went to the caller */
  int retries;
  int status;
  int grpc_status;     /* -1: none */
  uint32_t reset_code; /* RST_STREAM seen on either side, 0: none */
  bool reset_by_peer;  /* the caller sent RST_STREAM for it */
  bool reset_by_us;    /* we reset the caller's side ourselves (an upstream failure, ...) */
  bool resp_done;      /* the whole response went out to the caller */
  bool stop_request;   /* once the response is out, reset the unfinished request (NO_ERROR): ours, or the
                        * upstream's followed by RST_STREAM(NO_ERROR) */
  /* The verified peer's SPIFFE ID ("" if none): the copy of the connection
   * it came from while that one is linked, else peer_id_copy (owned, from
   * wisp_slab). */
  const char *peer_id;
  char *peer_id_copy;
  char *error;           /* owned: why it failed, NULL while nothing did (set_error in wisp_stream.c) */
  uint64_t down_conn_id; /* for the log, after the connection is gone */
  bool policy_checked;   /* a policy was in force when it started */
  bool denied;
  int policy_rule;           /* -1: no rule decided */
  const char *policy_reason; /* static */
  char policy_name[128];     /* "namespace/name" of the deciding policy */
  const char *path_received; /* the :path as received when it was normalised (in hdrs[DOWN]'s arena), else NULL */
  ev_tstamp started;
  ev_tstamp progress;                 /* when a byte of it last moved, either way (--stream-idle-timeout) */
  wisp_list idle_link;                /* in px->idle_streams while its caller holds it */
  bool idle_ended;                    /* --stream-idle-timeout ended it (counted once) */
  bool finishing;                     /* ended during a flush: in px->finished until that wrote */
  wisp_stream *finished_next;         /* in px->finished */
  uint8_t log_field[WISP_LOG_FIELDS]; /* where the fields it reads are in their lists (wisp_stream.c), 0: absent */
};

struct wisp_proxy {
  struct ev_loop *loop;
  const wisp_config *cfg;   /* borrowed */
  wisp_tls *tls;            /* owned */
  wisp_listener *listeners; /* owned array */
  size_t nlisteners;
  wisp_target *targets; /* owned array */
  size_t ntargets;
  struct wisp_dyn_target *dyn;     /* owned list: transparent destinations */
  wisp_target direct;              /* transparent inbound without --app: the stand-in
                                * for callers that dialled the port directly */
  wisp_target full;                /* transparent: the stand-in when every destination is in use */
  struct wisp_dyn_target *retired; /* owned list: evicted, their pool connections closing */
  uint64_t dyn_evicted;
  wisp_list tunnels; /* owned: L4 byte streams (wisp_tunnel) */
  wisp_list h1_gws;  /* owned: HTTP/1 gateways (wisp_h1, wisp_h1app: wisp_h1_gw.link) */
  size_t ndyn;
  wisp_list conns;              /* every live connection (wisp_conn.link) */
  wisp_list handshakes;         /* inbound mTLS callers in their handshake (wisp_handshake) */
  size_t nhandshakes;           /* ... how many (callers in wisp_connections_open) */
  wisp_list detecting;          /* callers whose protocol is still being told (wisp_conn_pending) */
  wisp_target *woken;           /* targets whose waiting requests may go upstream (wisp_pool) */
  size_t buffered;              /* body bytes in every stream's buffers (--buffer-limit) */
  size_t hdr_held;              /* header and trailer bytes every stream holds (--buffer-limit too) */
  struct wisp_resetlim *resets; /* owned: premature stream resets per caller (--max-resets) */
  wisp_h2loop lp;               /* flushes connections before the loop sleeps */
  wisp_stream *finished;        /* ended in the flush being written, logged after it (wisp_stream) */
  wisp_stream **finished_tail;  /* where the next one goes */
  ev_timer stream_sweep;        /* --stream-idle-timeout (wisp_stream_sweep_idle) */
  wisp_list idle_streams;       /* callers' streams, least recently moved a byte first (wisp_stream) */
  uint64_t next_conn_id;
  ev_timer reload;
  ev_signal sigterm, sigint;
  ev_timer drain_timer;
  ev_timer log_flush;   /* once a second: summaries of rate-limited log lines, memory after a burst */
  wisp_memtrim memtrim; /* when memory goes back after a burst */
  bool draining;
  wisp_stats stats;
  struct wisp_metrics *metrics;  /* owned: by identity (wisp_metrics) */
  struct wisp_events *events;    /* owned: refusals, denials, upstream verification failures (wisp_events) */
  char *policy_yaml;             /* owned; as pushed by the agent (verbatim for now) */
  bool permissive;               /* PeerAuthentication PERMISSIVE: plaintext callers allowed inbound */
  struct wisp_policy *policy;    /* owned; NULL: no policy (all allowed) */
  struct wisp_policy_view *view; /* owned; this workload's view of |policy| */
  char policy_version[32];
  struct wisp_dests *dests;   /* owned; NULL: no address -> identity map */
  wisp_dataplane_hooks hooks; /* the control side's (wisp_dataplane_set_hooks) */
  wisp_upfail_table upfails;  /* upstreams failing lately (GET /status) */
  /* --workers (proxy/dataplane/wisp_workers.h): worker 0, the main thread, owns the
   * others and everything shared (credentials it loads, metrics and events
   * it made shared, its upfails under upfails_lock); another worker's
   * proxy points at worker 0's as |first| and borrows those. */
  struct wisp_workers *workers;   /* worker 0: owned, NULL with --workers 1 */
  struct wisp_proxy *first;       /* worker k > 0: worker 0's proxy; NULL on worker 0 */
  unsigned worker;                /* this worker's index, 0: the main thread */
  pthread_mutex_t upfails_lock;   /* worker 0, --workers > 1: guards |upfails| */
  uint64_t policy_gen, dests_gen; /* bumped as policy or map change: the workers follow (wisp_workers_sync) */
};

#endif
