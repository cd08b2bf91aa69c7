/* wisp_grpc: the gRPC-over-HTTP/2 wire format, without I/O (as nghttp2's
 * session: bytes in, results out). Message framing (the 5-byte
 * length prefix), status codes, the grpc-message percent-encoding, the
 * grpc-timeout header and the content-type check, per
 * https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md.
 * The parsers keep no globals; the reader's only state is in its struct. */
#ifndef WISP_GRPC_H
#define WISP_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wisp_buf.h"
#include "lib/wisp_err.h"

/* Compressed-Flag (1 byte) + Message-Length (4 bytes, big-endian). */
#define WISP_GRPC_PREFIX_LEN 5
/* gRPC's default receive limit; a zeroed reader uses it. */
#define WISP_GRPC_DEFAULT_MAX_MSG (4u * 1024 * 1024)

/* ---- status codes ---- */

typedef enum {
  WISP_GRPC_OK = 0,
  WISP_GRPC_CANCELLED = 1,
  WISP_GRPC_UNKNOWN = 2,
  WISP_GRPC_INVALID_ARGUMENT = 3,
  WISP_GRPC_DEADLINE_EXCEEDED = 4,
  WISP_GRPC_NOT_FOUND = 5,
  WISP_GRPC_ALREADY_EXISTS = 6,
  WISP_GRPC_PERMISSION_DENIED = 7,
  WISP_GRPC_RESOURCE_EXHAUSTED = 8,
  WISP_GRPC_FAILED_PRECONDITION = 9,
  WISP_GRPC_ABORTED = 10,
  WISP_GRPC_OUT_OF_RANGE = 11,
  WISP_GRPC_UNIMPLEMENTED = 12,
  WISP_GRPC_INTERNAL = 13,
  WISP_GRPC_UNAVAILABLE = 14,
  WISP_GRPC_DATA_LOSS = 15,
  WISP_GRPC_UNAUTHENTICATED = 16,
} wisp_grpc_status;

/* Returns the canonical static name of |code| ("OK", "PERMISSION_DENIED",
 * ...). A code outside 0..16 is named "UNKNOWN", as the spec says to treat
 * it. Never NULL. */
const char *wisp_grpc_status_name(int code);

/* Parses a grpc-status header value (1*DIGIT, nothing else) into
 * |*out_code|. A well-formed code outside 0..16 becomes WISP_GRPC_UNKNOWN,
 * as the spec says. Returns WISP_ERR_PARSE (|*out_code| untouched) for an
 * empty value, a sign, space or any other non-digit, or more than 10 digits. */
wisp_err wisp_grpc_status_parse(wisp_grpc_status *out_code, const char *s, size_t len) WISP_MUST_CHECK;

/* ---- message framing ---- */

/* A message handed out by the reader. |data| is borrowed: it points into
 * the reader's storage or into the caller's chunk, and is valid until the
 * next call on the reader (or until the caller's chunk goes away). |data|
 * is never NULL, even when |len| is 0. */
typedef struct {
  const uint8_t *data;
  size_t len;
} wisp_grpc_msg;

/* Streaming reader of length-prefixed messages: feed it the bytes of a
 * stream's DATA frames as they arrive, in chunks of any size, and it yields
 * complete messages one at a time. Caller-allocated; a zeroed reader is
 * valid (with WISP_GRPC_DEFAULT_MAX_MSG). Memory is bounded: it buffers at
 * most one message (at most |max_msg| bytes), and only what has arrived of
 * it, never the length a peer merely announces. Fields are private. */
typedef struct {
  uint8_t prefix[WISP_GRPC_PREFIX_LEN];
  size_t prefix_len; /* prefix bytes seen of the current message */
  size_t msg_len;    /* announced length, once the prefix is complete */
  size_t max_msg;    /* 0: WISP_GRPC_DEFAULT_MAX_MSG */
  wisp_buf body;     /* the current message's bytes, when split */
  bool delivered;    /* |body| holds the message handed out last */
  wisp_err err;      /* sticky: once set, every feed returns it */
} wisp_grpc_reader;

/* Sets up |r| to accept messages of at most |max_msg| bytes (0: the
 * default). */
void wisp_grpc_reader_init(wisp_grpc_reader *r, size_t max_msg);
/* Releases storage; |r| is zeroed (valid, default limit) again. */
void wisp_grpc_reader_cleanup(wisp_grpc_reader *r);

/* Consumes bytes from |data| (|len| bytes) up to the end of the next
 * complete message, and no further. Sets |*out_consumed| to the bytes taken.
 * If a message completed, sets |*out_has_msg| and |*out_msg| (borrowed, see
 * wisp_grpc_msg); otherwise clears |*out_has_msg| and has buffered what it
 * took. Call it again with the rest of the chunk until the chunk is used up:
 *
 *   while (len > 0) {
 *     WISP_GUARD(wisp_grpc_reader_feed(r, &msg, &has, &n, data, len));
 *     data += n, len -= n;
 *     if (has) handle(msg.data, msg.len);
 *   }
 *
 * Errors (then |*out_consumed| is 0, nothing is handed out, and the reader
 * returns the same error from now on: the stream is broken). The gRPC status
 * to answer with is in brackets:
 *   WISP_ERR_TOO_BIG  the prefix announces more than max_msg bytes, decided
 *                     from the prefix alone, before any of it is buffered
 *                     [RESOURCE_EXHAUSTED];
 *   WISP_ERR_PROTO    the Compressed-Flag is 1: we announce and accept no
 *                     grpc-encoding [INTERNAL, or UNIMPLEMENTED];
 *   WISP_ERR_PARSE    the Compressed-Flag is neither 0 nor 1 [INTERNAL]. */
wisp_err wisp_grpc_reader_feed(wisp_grpc_reader *r, wisp_grpc_msg *out_msg, bool *out_has_msg, size_t *out_consumed,
                               const uint8_t *data, size_t len) WISP_MUST_CHECK;

/* Call when the stream ended (END_STREAM): WISP_OK if the reader stopped
 * between messages, WISP_ERR_CLOSED if the stream ended inside one (the
 * prefix or the body was cut short) [INTERNAL], or the reader's sticky
 * error. */
wisp_err wisp_grpc_reader_finish(const wisp_grpc_reader *r) WISP_MUST_CHECK;

/* Writes the 5-byte prefix of an uncompressed message of |msg_len| bytes
 * into |out|; for callers that serialize the message in place after it. */
void wisp_grpc_prefix_write(uint8_t out[WISP_GRPC_PREFIX_LEN], uint32_t msg_len);

/* Appends the prefix and |len| bytes of |msg| to |out|. Both or neither:
 * fails with WISP_ERR_TOO_BIG, |out| unchanged, if |len| exceeds
 * UINT32_MAX or the unread bytes of |out| would exceed |limit|. */
wisp_err wisp_grpc_write_msg(wisp_buf *out, const void *msg, size_t len, size_t limit) WISP_MUST_CHECK;

/* ---- grpc-message: percent-encoding ---- */

/* Length of the percent-encoded form of |len| bytes of |in| (excluding the
 * NUL): bytes 0x20-0x7E except '%' stay, every other byte becomes "%XX"
 * (uppercase hex). Size |out| for wisp_grpc_message_encode with it + 1. */
size_t wisp_grpc_message_encoded_len(const void *in, size_t len);

/* Percent-encodes |len| bytes of |in| (UTF-8 text, usually) into |out|
 * (|out_len| bytes), NUL-terminated; |*out_written| is the length without
 * the NUL. If it does not fit, writes the longest prefix that does without
 * splitting an escape, and returns WISP_ERR_TOO_BIG (if |out_len| is 0 it
 * writes nothing at all). */
wisp_err wisp_grpc_message_encode(char *out, size_t out_len, size_t *out_written, const void *in,
                                  size_t len) WISP_MUST_CHECK;

/* Decodes a grpc-message value into |out| (|out_len| bytes),
 * NUL-terminated; |*out_written| is the decoded length without the NUL (the
 * text may hold a NUL of its own, from "%00"). Never fails on bad input, as
 * the spec requires: a '%' not followed by two hex digits (either case) is
 * kept as it is. The result is never longer than the input, so
 * |out_len| = |len| + 1 always fits; otherwise returns WISP_ERR_TOO_BIG with
 * the longest decoded prefix that fits. */
wisp_err wisp_grpc_message_decode(char *out, size_t out_len, size_t *out_written, const char *in,
                                  size_t len) WISP_MUST_CHECK;

/* ---- request headers ---- */

/* Parses a grpc-timeout header value, TimeoutValue TimeoutUnit: 1 to 8 ASCII
 * digits then one of H (hours), M (minutes), S (seconds), m (ms),
 * u (microseconds), n (nanoseconds), nothing else. Sets |*out_ms| to the
 * timeout in milliseconds, rounding sub-millisecond remainders up so that a
 * non-zero timeout never becomes 0 ("0n" is 0: already expired). Returns
 * WISP_ERR_PARSE (|*out_ms| untouched) otherwise: empty, no digits, 9+
 * digits, a sign or space, a missing or unknown unit, trailing bytes. */
wisp_err wisp_grpc_timeout_parse(uint64_t *out_ms, const char *s, size_t len) WISP_MUST_CHECK;

/* True if |value| (|len| bytes) is a content-type we serve: exactly
 * "application/grpc", or followed by ";" and parameters, or by "+proto"
 * (any case; an empty subtype "+" means proto too) then the end or ";". False
 * for anything else, including other codecs such as "application/grpc+json"
 * (answer HTTP 415, as the spec says for non-gRPC content types). The type
 * is matched case-sensitively, as grpc-go and grpc-core do. */
bool wisp_grpc_content_type_ok(const char *value, size_t len);

#endif
