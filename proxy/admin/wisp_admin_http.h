/* wisp_admin_http: the admin listener's HTTP/1.x request parser and
 * router (status reason phrases: lib/wisp_h1parse). Pure functions (bytes in, result out: no I/O,
 * no globals, no allocation), unit-tested in tests/unit/admin_test.c and
 * fuzzed by tests/fuzz/admin_fuzz.c; the server is proxy/admin/wisp_admin.h. */
#ifndef WISP_ADMIN_HTTP_H
#define WISP_ADMIN_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "lib/wisp_err.h"

/* Whole request (line, headers, body) at most this many bytes. */
#define WISP_ADMIN_REQUEST_MAX 8192
#define WISP_ADMIN_METHOD_MAX 16
#define WISP_ADMIN_TARGET_MAX 1024

typedef struct {
  char method[WISP_ADMIN_METHOD_MAX + 1];
  char path[WISP_ADMIN_TARGET_MAX + 1];  /* the target up to '?' */
  char query[WISP_ADMIN_TARGET_MAX + 1]; /* after '?', "" if none */
  int minor_version;                     /* HTTP/1.0 or HTTP/1.1 */
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
wisp_err wisp_admin_parse_request(wisp_admin_request *out, const uint8_t *data, size_t len, size_t max) WISP_MUST_CHECK;

typedef enum {
  WISP_ADMIN_EP_NONE,
  WISP_ADMIN_EP_HEALTHZ,
  WISP_ADMIN_EP_READY,
  WISP_ADMIN_EP_CERTS,
  WISP_ADMIN_EP_CONFIG,
  WISP_ADMIN_EP_METRICS,
  WISP_ADMIN_EP_DRAIN,
  WISP_ADMIN_EP_STATUS,
} wisp_admin_endpoint;

/* Maps a parsed request to an endpoint. Returns the HTTP status: 200 with
 * |out_ep| set, 404 for an unknown path, 405 for a method the endpoint does
 * not take (|out_allow| then names the ones it does, for the Allow header). */
int wisp_admin_route(const wisp_admin_request *req, wisp_admin_endpoint *out_ep, const char **out_allow);

#endif
