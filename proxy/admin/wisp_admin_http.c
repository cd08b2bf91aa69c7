#include "proxy/admin/wisp_admin_http.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* ===================================================================== */
/* The request parser (pure)                                             */
/* ===================================================================== */

static bool is_tchar(uint8_t c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static wisp_err parse_fail(wisp_admin_request *out, wisp_err rc, const char *reason) {
  out->reason = reason;
  return rc;
}

/* Ran out of bytes: wait for more, unless there is no room for more. */
static wisp_err parse_more(wisp_admin_request *out, size_t len, size_t max) {
  if (len >= max) return parse_fail(out, WISP_ERR_TOO_BIG, "request too large");
  return parse_fail(out, WISP_ERR_AGAIN, "incomplete request");
}

/* |*i| is at what must be CRLF. */
static wisp_err parse_crlf(wisp_admin_request *out, const uint8_t *data, size_t len, size_t max, size_t *i) {
  for (int k = 0; k < 2; k++, (*i)++) {
    if (*i == len) return parse_more(out, len, max);
    if (data[*i] != "\r\n"[k]) return parse_fail(out, WISP_ERR_PROTO, "lines must end with CRLF");
  }
  return WISP_OK;
}

static bool name_eq(const uint8_t *name, size_t len, const char *lit) {
  return len == strlen(lit) && strncasecmp((const char *)name, lit, len) == 0;
}

/* One header field; only the ones that frame the body matter here. */
static wisp_err parse_field(wisp_admin_request *out, const uint8_t *name, size_t name_len, const uint8_t *val,
                            size_t val_len, size_t max, bool *have_cl) {
  while (val_len && (val[0] == ' ' || val[0] == '\t')) val++, val_len--;
  while (val_len && (val[val_len - 1] == ' ' || val[val_len - 1] == '\t')) val_len--;
  if (name_eq(name, name_len, "transfer-encoding"))
    return parse_fail(out, WISP_ERR_PROTO, "Transfer-Encoding is not supported (send Content-Length)");
  if (!name_eq(name, name_len, "content-length")) return WISP_OK;
  size_t n = 0;
  if (val_len == 0) return parse_fail(out, WISP_ERR_PROTO, "bad Content-Length");
  for (size_t k = 0; k < val_len; k++) {
    if (val[k] < '0' || val[k] > '9') return parse_fail(out, WISP_ERR_PROTO, "bad Content-Length");
    n = n * 10 + (size_t)(val[k] - '0');
    if (n > max) return parse_fail(out, WISP_ERR_TOO_BIG, "request body too large");
  }
  if (*have_cl && n != out->content_length) return parse_fail(out, WISP_ERR_PROTO, "conflicting Content-Length");
  *have_cl = true;
  out->content_length = n;
  return WISP_OK;
}

wisp_err wisp_admin_parse_request(wisp_admin_request *out, const uint8_t *data, size_t len, size_t max) {
  memset(out, 0, sizeof(*out));
  if (len > max) len = max;
  size_t i = 0;
  /* method SP */
  size_t m = 0;
  for (; i < len && data[i] != ' '; i++) {
    if (!is_tchar(data[i])) return parse_fail(out, WISP_ERR_PROTO, "bad method");
    if (m == WISP_ADMIN_METHOD_MAX) return parse_fail(out, WISP_ERR_PROTO, "method too long");
    out->method[m++] = (char)data[i];
  }
  if (i == len) return parse_more(out, len, max);
  if (m == 0) return parse_fail(out, WISP_ERR_PROTO, "bad method");
  i++;
  /* request-target SP: origin-form only */
  if (i == len) return parse_more(out, len, max);
  if (data[i] != '/') return parse_fail(out, WISP_ERR_PROTO, "the target must be a path starting with /");
  size_t t = 0, p = 0, q = 0;
  bool in_query = false;
  for (; i < len && data[i] != ' '; i++, t++) {
    uint8_t c = data[i];
    if (c <= 0x20 || c >= 0x7f) return parse_fail(out, WISP_ERR_PROTO, "bad character in the target");
    if (c == '#') return parse_fail(out, WISP_ERR_PROTO, "fragment in the target");
    if (t == WISP_ADMIN_TARGET_MAX) return parse_fail(out, WISP_ERR_TOO_BIG, "target too long");
    if (!in_query && c == '?') {
      in_query = true;
    } else if (in_query) {
      out->query[q++] = (char)c;
    } else {
      out->path[p++] = (char)c;
    }
  }
  if (i == len) return parse_more(out, len, max);
  i++;
  /* HTTP-version CRLF */
  static const char kVersion[] = "HTTP/1.";
  for (size_t k = 0; k < sizeof(kVersion) - 1; k++, i++) {
    if (i == len) return parse_more(out, len, max);
    if (data[i] != (uint8_t)kVersion[k]) return parse_fail(out, WISP_ERR_PROTO, "not an HTTP/1.x request");
  }
  if (i == len) return parse_more(out, len, max);
  if (data[i] != '0' && data[i] != '1') return parse_fail(out, WISP_ERR_PROTO, "unsupported HTTP version");
  out->minor_version = data[i++] - '0';
  WISP_GUARD(parse_crlf(out, data, len, max, &i));
  /* *(field-name ":" OWS field-value OWS CRLF) CRLF; every pass consumes at
   * least three bytes, so this ends within |len|. */
  bool have_cl = false;
  while (i < len && data[i] != '\r') {
    size_t name = i;
    for (; i < len && data[i] != ':'; i++) {
      if (!is_tchar(data[i])) return parse_fail(out, WISP_ERR_PROTO, "bad header field name");
    }
    if (i == len) return parse_more(out, len, max);
    if (i == name) return parse_fail(out, WISP_ERR_PROTO, "empty header field name");
    size_t name_len = i - name;
    size_t val = ++i;
    for (; i < len && data[i] != '\r'; i++) {
      if ((data[i] < 0x20 && data[i] != '\t') || data[i] == 0x7f)
        return parse_fail(out, WISP_ERR_PROTO, "bad character in a header field");
    }
    if (i == len) return parse_more(out, len, max);
    size_t val_len = i - val;
    WISP_GUARD(parse_crlf(out, data, len, max, &i));
    WISP_GUARD(parse_field(out, data + name, name_len, data + val, val_len, max, &have_cl));
  }
  if (i == len) return parse_more(out, len, max);
  WISP_GUARD(parse_crlf(out, data, len, max, &i));
  out->head_len = i;
  if (out->content_length > max - out->head_len) return parse_fail(out, WISP_ERR_TOO_BIG, "request body too large");
  out->total_len = out->head_len + out->content_length;
  if (len < out->total_len) return parse_fail(out, WISP_ERR_AGAIN, "incomplete request body");
  return WISP_OK;
}

/* ===================================================================== */
/* Routing and reason phrases (pure)                                     */
/* ===================================================================== */

static const struct {
  const char *path;
  wisp_admin_endpoint ep;
  bool post; /* POST only; else GET and HEAD */
} kRoutes[] = {
    {"/healthz", WISP_ADMIN_EP_HEALTHZ, false}, {"/ready", WISP_ADMIN_EP_READY, false},
    {"/certs", WISP_ADMIN_EP_CERTS, false},     {"/config", WISP_ADMIN_EP_CONFIG, false},
    {"/metrics", WISP_ADMIN_EP_METRICS, false}, {"/drain", WISP_ADMIN_EP_DRAIN, true},
    {"/status", WISP_ADMIN_EP_STATUS, false},
};

int wisp_admin_route(const wisp_admin_request *req, wisp_admin_endpoint *out_ep, const char **out_allow) {
  *out_ep = WISP_ADMIN_EP_NONE;
  *out_allow = NULL;
  for (size_t i = 0; i < sizeof(kRoutes) / sizeof(kRoutes[0]); i++) {
    if (strcmp(req->path, kRoutes[i].path) != 0) continue;
    bool ok = kRoutes[i].post ? strcmp(req->method, "POST") == 0
                              : strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (!ok) {
      *out_allow = kRoutes[i].post ? "POST" : "GET, HEAD";
      return 405;
    }
    *out_ep = kRoutes[i].ep;
    return 200;
  }
  return 404;
}
