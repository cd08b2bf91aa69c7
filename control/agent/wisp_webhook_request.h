/* wisp_webhook_request: what the admission webhook reads of an HTTP/1.1
 * request head, and the reason phrases of the statuses it answers. Pure:
 * bytes in, a request out; no I/O. Private to //control:webhook. */
#ifndef WISP_WEBHOOK_REQUEST_H
#define WISP_WEBHOOK_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
  char method[16];
  char path[256];
  bool http10;
  bool has_length, chunked, close;
  bool expect_continue; /* Expect: 100-continue */
  size_t length;
} wwr_request;

/* Parses the head (request line and headers, |len| bytes without the
 * final blank line) into |*q|. False with a status to answer in
 * |*status|. */
bool wwr_parse_head(wwr_request *q, const char *p, size_t len, int *status);
/* "OK", "Not Found"...; "Error" for a status the webhook does not send. */
const char *wwr_status_text(int status);

#endif
