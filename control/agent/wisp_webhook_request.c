#include "control/agent/wisp_webhook_request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The value of header line |line| if its name is |name|, else NULL. */
static const char *header(const char *line, size_t len, const char *name, size_t *out_len) {
  size_t n = strlen(name);
  if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':') return NULL;
  const char *v = line + n + 1;
  const char *end = line + len;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
  *out_len = (size_t)(end - v);
  return v;
}

bool wwr_parse_head(wwr_request *q, const char *p, size_t len, int *status) {
  memset(q, 0, sizeof(*q));
  const char *eol = memmem(p, len, "\r\n", 2);
  size_t line = eol ? (size_t)(eol - p) : len;
  char version[16];
  char first[512];
  *status = 400;
  if (line >= sizeof(first)) return false;
  memcpy(first, p, line);
  first[line] = '\0';
  _Static_assert(sizeof(q->method) == 16 && sizeof(q->path) == 256 && sizeof(version) == 16,
                 "the widths in the format below");
  if (sscanf(first, "%15s %255s %15s", q->method, q->path, version) != 3 || strncmp(version, "HTTP/1.", 7) != 0)
    return false;
  q->http10 = !strcmp(version, "HTTP/1.0");
  q->close = q->http10;
  for (const char *h = eol ? eol + 2 : p + len; h < p + len;) {
    const char *e = memmem(h, (size_t)(p + len - h), "\r\n", 2);
    size_t hl = e ? (size_t)(e - h) : (size_t)(p + len - h), vl = 0;
    const char *v;
    if ((v = header(h, hl, "content-length", &vl))) {
      char num[24];
      if (q->has_length || vl == 0 || vl >= sizeof(num) || strspn(v, "0123456789") < vl) return false;
      memcpy(num, v, vl);
      num[vl] = '\0';
      q->length = strtoull(num, NULL, 10);
      q->has_length = true;
    } else if ((v = header(h, hl, "transfer-encoding", &vl))) {
      q->chunked = true;
    } else if ((v = header(h, hl, "expect", &vl))) {
      q->expect_continue = vl == 12 && !strncasecmp(v, "100-continue", 12);
    } else if ((v = header(h, hl, "connection", &vl))) {
      q->close = vl == 5 && !strncasecmp(v, "close", 5);
    }
    h += hl + 2;
  }
  return true;
}

const char *wwr_status_text(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}
