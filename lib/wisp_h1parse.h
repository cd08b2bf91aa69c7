/* wisp_h1parse: HTTP/1.x message framing, pure (bytes in, events out),
 * over Debian's http-parser (libhttp-parser, no TLS library of its own).
 *
 * http-parser does the grammar and the body framing (Content-Length,
 * chunked, trailers); this wrapper adds what a proxy in front of other
 * HTTP implementations must refuse so that no two of them can read one
 * byte stream as different messages (request smuggling, RFC 9112 11.2):
 *   - a head is collected whole (at most WISP_H1_HEAD_MAX bytes, at most
 *     WISP_H1_FIELDS_MAX fields) and checked before the parser sees it:
 *     every line ends in CRLF (no bare CR, no bare LF), no obs-fold (a line
 *     starting with SP or HTAB), no NUL or other control byte in a value;
 *   - Content-Length with Transfer-Encoding, two Content-Length fields, a
 *     Transfer-Encoding other than exactly "chunked", a request without
 *     exactly one Host (HTTP/1.1), a Host that is not host[:port] are refused;
 *   - the chunked framing is checked byte by byte (http-parser is built
 *     without STRICT_CHECK): CRLF after each chunk's data, no whitespace
 *     after a chunk size unless a ';' extension follows, no CR or LF in a
 *     quoted extension, no Transfer-Encoding or Content-Length trailer;
 *   - an HTTP/0.9 request line (no version) or a major version other than
 *     1 is refused with 505.
 * Each refusal is a status (400, 505, or 501 for an unknown transfer
 * coding) and a static reason; the caller answers it and closes the
 * connection.
 *
 * Owns its head buffer; the head and trailers handed to the callbacks are
 * borrowed until the callback returns. */
#ifndef WISP_H1PARSE_H
#define WISP_H1PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "lib/wisp_buf.h"

/* The largest request or response head (start line and fields) and the
 * most fields in it: the bounds HTTP/2 streams have (proxy/dataplane/wisp_hdrs). */
#define WISP_H1_HEAD_MAX (64 * 1024)
#define WISP_H1_FIELDS_MAX 128
/* Trailer fields of a chunked body, in bytes. */
#define WISP_H1_TRAILERS_MAX (16 * 1024)

typedef struct {
  const char *name; /* lower-cased */
  size_t name_len;
  const char *value; /* leading and trailing blanks removed */
  size_t value_len;
} wisp_h1_field;

typedef struct {
  bool request;
  const char *method; /* request: static, from http-parser */
  const char *target; /* request-target, not NUL-terminated */
  size_t target_len;
  int status; /* response */
  unsigned major, minor;
  wisp_h1_field fields[WISP_H1_FIELDS_MAX];
  size_t nfields;
  bool keep_alive; /* the connection may carry another message after this one */
  bool chunked;
  int64_t content_length; /* -1: none */
  bool has_body;          /* a body follows (chunked, a length > 0, or a response read to EOF) */
  bool expect_continue;   /* Expect: 100-continue */
  bool upgrade;           /* request: an Upgrade field named by Connection (not CONNECT) */
} wisp_h1_head;

typedef struct {
  /* A head arrived and passed the checks. */
  void (*on_head)(void *arg, const wisp_h1_head *head);
  void (*on_body)(void *arg, const uint8_t *data, size_t len);
  /* The message ended; |trailers| of a chunked body (names lower-cased). */
  void (*on_end)(void *arg, const wisp_h1_field *trailers, size_t ntrailers);
} wisp_h1parse_cbs;

typedef enum {
  WISP_H1P_MORE,  /* every byte taken; more wanted */
  WISP_H1P_END,   /* a message ended (on_end called); bytes after it are not taken yet */
  WISP_H1P_ERROR, /* refused: see status and why; feed no more */
} wisp_h1p_result;

typedef struct {
  http_parser hp;
  http_parser_settings settings;
  enum http_parser_type type;
  const wisp_h1parse_cbs *cbs;
  void *arg;
  int phase;         /* private */
  wisp_buf head;     /* the head being collected */
  size_t line_start; /* offset of the current line in |head| */
  bool no_body;      /* response: to a HEAD request, or a 1xx/204/304 */
  wisp_h1_head h;
  /* trailers (chunked): fields as they arrive, across feeds */
  wisp_buf tbuf;
  size_t tname_off[WISP_H1_FIELDS_MAX], tname_len[WISP_H1_FIELDS_MAX];
  size_t tval_off[WISP_H1_FIELDS_MAX], tval_len[WISP_H1_FIELDS_MAX];
  size_t ntrailers;
  bool tin_value;
  bool lead_cr;       /* a CR of an empty line before the start line */
  uint8_t fprev;      /* the last chunked-framing byte checked */
  int fstate;         /* private: where in the chunked framing grammar */
  bool fsize_nonzero; /* the chunk size being read is not 0 */
  const char *scan;   /* chunked framing not yet checked in the bytes being parsed */
  bool ended;
  int status;      /* after WISP_H1P_ERROR: 400, 417, 501 or 505 */
  const char *why; /* after WISP_H1P_ERROR: static */
} wisp_h1parse;

/* |type| HTTP_REQUEST or HTTP_RESPONSE. */
void wisp_h1parse_init(wisp_h1parse *p, enum http_parser_type type, const wisp_h1parse_cbs *cbs, void *arg);
void wisp_h1parse_cleanup(wisp_h1parse *p);
/* Response parsers: the next response answers a HEAD request (no body). */
void wisp_h1parse_set_no_body(wisp_h1parse *p, bool no_body);
/* Takes bytes; |*used| says how many (all of them unless END or ERROR). */
wisp_h1p_result wisp_h1parse_feed(wisp_h1parse *p, const uint8_t *data, size_t len, size_t *used);
/* The peer closed: ends a response read to EOF (WISP_H1P_END), else says
 * whether a message was cut short (WISP_H1P_ERROR) or none was open
 * (WISP_H1P_MORE). */
wisp_h1p_result wisp_h1parse_eof(wisp_h1parse *p);
/* Between messages: no byte of a next one taken yet. */
bool wisp_h1parse_idle(const wisp_h1parse *p);

/* Longest request line taken as HTTP/1 by wisp_h1_request_line. */
#define WISP_H1_LINE_MAX (8 * 1024)
/* Is this the start of an HTTP/1 request: "METHOD SP target SP HTTP/1.x"
 * then CRLF? 1 yes, 0 no, -1 not known before more bytes (no LF yet, fewer
 * than WISP_H1_LINE_MAX). What tells HTTP/1 from another protocol whose
 * first word and space look alike (memcached's "get k"). */
int wisp_h1_request_line(const uint8_t *data, size_t len);

/* Hop-by-hop fields (RFC 9110 7.6.1) a proxy does not forward:
 * Connection and every field it names, Keep-Alive, Proxy-Connection,
 * Transfer-Encoding, Upgrade, TE (except "trailers", which HTTP/2 keeps),
 * and Host (it becomes :authority). */
bool wisp_h1_hop_by_hop(const wisp_h1_head *h, const wisp_h1_field *f);

/* The reason phrase of an HTTP status for the status line ("Forbidden"
 * for 403, ...); for a code it does not know, the name of its class
 * ("Client Error" for 4xx), never NULL. Static text. */
const char *wisp_h1_reason_phrase(int status);

#endif
