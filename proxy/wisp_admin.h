/* wisp_admin: the admin listener (default 127.0.0.1:15000). A small
 * HTTP/1.1 server on the proxy's libev loop: one request per connection,
 * answered with "Connection: close"; non-blocking throughout, with a bounded
 * request size, a bounded number of connections and a timeout, so it never
 * holds up the data plane.
 *
 *   GET  /healthz   200 "ok" while the process runs
 *   GET  /ready     200 while it holds a valid SVID, listens and is not
 *                   draining; else 503 with the reason
 *   GET  /certs     JSON: the current SVID and trust bundle
 *   GET  /config    JSON: routes, inbound, app, timeouts, policy
 *   GET  /metrics   Prometheus text format 0.0.4
 *   POST /drain     202, then the same graceful drain as SIGTERM
 *
 * The request parser and the router are pure functions (no I/O, no
 * globals), unit-tested in tests/unit/admin_test.c. */
#ifndef WISP_ADMIN_H
#define WISP_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wisp_err.h"
#include "lib/wisp_tls.h"

/* Whole request (line, headers, body) at most this many bytes. */
#define WISP_ADMIN_REQUEST_MAX 8192
#define WISP_ADMIN_METHOD_MAX 16
#define WISP_ADMIN_TARGET_MAX 1024

typedef struct {
  char method[WISP_ADMIN_METHOD_MAX + 1];
  char path[WISP_ADMIN_TARGET_MAX + 1];   /* the target up to '?' */
  char query[WISP_ADMIN_TARGET_MAX + 1];  /* after '?', "" if none */
  int minor_version;                      /* HTTP/1.0 or HTTP/1.1 */
  size_t content_length;
  size_t head_len;    /* request line and headers, up to and with CRLFCRLF */
  size_t total_len;   /* head_len + content_length */
  const char *reason; /* on failure: static text saying what is wrong */
} wisp_admin_request;

/* Parses one HTTP/1.x request from the |len| bytes at |data| (what has
 * arrived so far; |len| <= |max|). Returns
 *   WISP_OK            a complete request (head and body) is in |out|
 *   WISP_ERR_AGAIN     well-formed so far, more bytes needed
 *   WISP_ERR_TOO_BIG   the request does not fit in |max| bytes
 *   WISP_ERR_PROTO     not a valid request; |out->reason| says why
 * Only origin-form targets ("/path?query"), CRLF line ends and
 * Content-Length bodies are accepted; Transfer-Encoding is refused.
 * |out| is filled as far as parsing got; only WISP_OK makes it complete. */
wisp_err wisp_admin_parse_request(wisp_admin_request *out, const uint8_t *data, size_t len,
                                  size_t max) WISP_MUST_CHECK;

typedef enum {
  WISP_ADMIN_EP_NONE,
  WISP_ADMIN_EP_HEALTHZ,
  WISP_ADMIN_EP_READY,
  WISP_ADMIN_EP_CERTS,
  WISP_ADMIN_EP_CONFIG,
  WISP_ADMIN_EP_METRICS,
  WISP_ADMIN_EP_DRAIN,
} wisp_admin_endpoint;

/* Maps a parsed request to an endpoint. Returns the HTTP status: 200 with
 * |out_ep| set, 404 for an unknown path, 405 for a method the endpoint does
 * not take (|out_allow| then names the ones it does, for the Allow header). */
int wisp_admin_route(const wisp_admin_request *req, wisp_admin_endpoint *out_ep, const char **out_allow);

/* The reason phrase of an HTTP status for the status line ("Forbidden"
 * for 403, ...); for a code it does not know, the name of its class
 * ("Client Error" for 4xx), never NULL. Static text. */
const char *wisp_admin_reason_phrase(int status);

/* Whether a proxy is ready to take traffic: it holds credentials
 * (|loaded|) whose leaf is not expired at |now| (unix seconds), its
 * listeners are up and it is not draining. When not, |out_reason| says why
 * ("no SVID yet", "SVID expired at ...", "draining", ...). */
bool wisp_admin_ready_check(const wisp_tls_info *info, bool loaded, bool listening, bool draining, int64_t now,
                            char *out_reason, size_t reason_len);

/* ---- the server ---- */

typedef struct wisp_admin wisp_admin;
typedef struct wisp_proxy wisp_proxy;

/* Listens on |addr| and serves |px| (borrowed; must outlive the server) on
 * px's loop. On failure |err| says what and why. */
wisp_err wisp_admin_new(wisp_admin **out, wisp_proxy *px, const char *addr, char *err,
                        size_t err_len) WISP_MUST_CHECK;
/* Closes the listener and every admin connection. Accepts NULL. */
void wisp_admin_free(wisp_admin *a);

#endif
