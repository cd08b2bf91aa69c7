/* wisp_sniff: what a new connection speaks, told from its first bytes.
 *
 * wisp_sniff_classify is the one place wisp detects a protocol: a pure
 * function of the bytes seen so far (unit-tested and fuzzed alone).
 * wisp_sniff_start watches a socket for it, peeking (never consuming)
 * until the classifier decides, the peer stops sending, or a timeout:
 * how the agent's Unix socket serves both h2c and TLS, how a PERMISSIVE
 * inbound port accepts plaintext callers beside mTLS ones, and how
 * transparent outbound tells HTTP/2 from other TCP. */
#ifndef WISP_SNIFF_H
#define WISP_SNIFF_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

/* The classifier never needs more bytes than this (the HTTP/2 preface). */
#define WISP_SNIFF_PEEK_MAX 24
/* Longest HTTP/1 method token it waits for (registered ones: 17). */
#define WISP_SNIFF_METHOD_MAX 20

typedef enum {
  WISP_SNIFF_TIMEOUT = -2,  /* watcher only: nothing arrived in time */
  WISP_SNIFF_CLOSED = -1,   /* watcher only: closed or failed before a byte */
  WISP_SNIFF_NEED_MORE = 0, /* classifier only: not decided yet */
  WISP_SNIFF_TLS,           /* a TLS handshake record (0x16 0x03) */
  WISP_SNIFF_HTTP2,         /* the whole 24-byte HTTP/2 client preface */
  WISP_SNIFF_HTTP1,         /* an HTTP/1 method token and a space: a hint
                                only; a parser must still read the request
                                line (memcached's "get k" looks the same) */
  WISP_SNIFF_OTHER,         /* anything else */
} wisp_sniff_proto;

/* Classifies the first |len| bytes a client sent. WISP_SNIFF_NEED_MORE
 * while they are a strict prefix of something it would recognise (never
 * once |len| >= WISP_SNIFF_PEEK_MAX); a decision never changes as more
 * bytes arrive. A prefix of the HTTP/2 preface is not HTTP/2: the caller
 * that gets no more (EOF, timeout) treats it as WISP_SNIFF_OTHER. */
wisp_sniff_proto wisp_sniff_classify(const uint8_t *data, size_t len);

/* "tls", "h2", "http1", "other", "need-more", "closed", "timeout". */
const char *wisp_sniff_proto_name(wisp_sniff_proto p);

/* Called once with the classification (never NEED_MORE: bytes that were
 * still undecided when the peer half-closed or the timeout hit are
 * WISP_SNIFF_OTHER), or WISP_SNIFF_CLOSED (|fd| is already closed) or
 * WISP_SNIFF_TIMEOUT (no byte; a server-first protocol is silent on
 * purpose). Except after WISP_SNIFF_CLOSED, |fd| now belongs to the
 * callback, with every byte still unread. */
typedef void (*wisp_sniff_cb)(int fd, wisp_sniff_proto proto, void *arg);

/* One socket being watched: from wisp_sniff_start until its callback is
 * called (then freed) or wisp_sniff_cancel. */
typedef struct wisp_sniff wisp_sniff;

/* Takes |fd| and calls |cb| when its first bytes decide, or |timeout| s
 * after the start. */
wisp_sniff *wisp_sniff_start(struct ev_loop *loop, int fd, double timeout, wisp_sniff_cb cb, void *arg);

/* A classifier with wisp_sniff_classify's contract, looking at up to
 * |peek_max| bytes (NEED_MORE never once it has them). */
typedef wisp_sniff_proto (*wisp_sniff_classifier)(const uint8_t *data, size_t len);
#define WISP_SNIFF_WATCH_MAX (8 * 1024)
/* wisp_sniff_start with another classifier (|peek_max| at most
 * WISP_SNIFF_WATCH_MAX): e.g. a second look at a whole HTTP/1 request line. */
wisp_sniff *wisp_sniff_start_with(struct ev_loop *loop, int fd, double timeout, wisp_sniff_classifier classify,
                                  size_t peek_max, wisp_sniff_cb cb, void *arg);

/* Stops |sn| before it decided (its owner is going away: a drain, a
 * shutdown): closes its fd and frees it; its callback is never called. */
void wisp_sniff_cancel(wisp_sniff *sn);

#endif
