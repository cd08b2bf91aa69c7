#include "lib/wisp_grpc.h"

#include <string.h>
#include <strings.h>

/* After handing out a message this large from its own storage, the reader
 * gives the storage back rather than keep it for a long-lived stream. */
#define WISP_GRPC_KEEP_CAP (64u * 1024)

/* ---- status codes ---- */

static const char *const wisp_grpc_status_names[] = {
    "OK",        "CANCELLED",       "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS",  "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",    "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED",
};

#define WISP_GRPC_STATUS_COUNT (sizeof(wisp_grpc_status_names) / sizeof(wisp_grpc_status_names[0]))

const char *wisp_grpc_status_name(int code) {
  if (code < 0 || (size_t)code >= WISP_GRPC_STATUS_COUNT) return "UNKNOWN";
  return wisp_grpc_status_names[code];
}

static bool wisp_grpc_is_digit(char c) { return c >= '0' && c <= '9'; }

wisp_err wisp_grpc_status_parse(wisp_grpc_status *out_code, const char *s, size_t len) {
  WISP_ENSURE(len >= 1 && len <= 10, WISP_ERR_PARSE);
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    WISP_ENSURE(wisp_grpc_is_digit(s[i]), WISP_ERR_PARSE);
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  *out_code = v < WISP_GRPC_STATUS_COUNT ? (wisp_grpc_status)v : WISP_GRPC_UNKNOWN;
  return WISP_OK;
}

/* ---- message framing ---- */

void wisp_grpc_reader_init(wisp_grpc_reader *r, size_t max_msg) {
  memset(r, 0, sizeof(*r));
  r->max_msg = max_msg;
}

void wisp_grpc_reader_cleanup(wisp_grpc_reader *r) {
  wisp_buf_cleanup(&r->body);
  memset(r, 0, sizeof(*r));
}

static wisp_err wisp_grpc_reader_fail(wisp_grpc_reader *r, wisp_err err) {
  r->err = err;
  wisp_buf_cleanup(&r->body);
  return err;
}

/* Ready for the next prefix. */
static void wisp_grpc_reader_next(wisp_grpc_reader *r) {
  r->prefix_len = 0;
  r->msg_len = 0;
}

wisp_err wisp_grpc_reader_feed(wisp_grpc_reader *r, wisp_grpc_msg *out_msg, bool *out_has_msg, size_t *out_consumed,
                               const uint8_t *data, size_t len) {
  static const uint8_t empty[1] = {0};
  *out_has_msg = false;
  *out_consumed = 0;
  if (r->err != WISP_OK) return r->err;

  /* The message handed out last lived in |body|: the caller is done now. */
  if (r->delivered) {
    r->delivered = false;
    if (r->body.cap > WISP_GRPC_KEEP_CAP) {
      wisp_buf_cleanup(&r->body);
    } else {
      wisp_buf_consume(&r->body, wisp_buf_len(&r->body));
    }
  }

  size_t used = 0;
  if (r->prefix_len < WISP_GRPC_PREFIX_LEN) {
    size_t n = WISP_GRPC_PREFIX_LEN - r->prefix_len;
    if (n > len) n = len;
    if (n > 0) memcpy(r->prefix + r->prefix_len, data, n);
    r->prefix_len += n;
    used += n;
    if (r->prefix_len < WISP_GRPC_PREFIX_LEN) {
      *out_consumed = used;
      return WISP_OK;
    }
    if (r->prefix[0] == 1) return wisp_grpc_reader_fail(r, WISP_ERR_PROTO);
    if (r->prefix[0] != 0) return wisp_grpc_reader_fail(r, WISP_ERR_PARSE);
    uint32_t msg_len = (uint32_t)r->prefix[1] << 24 | (uint32_t)r->prefix[2] << 16 | (uint32_t)r->prefix[3] << 8 |
                       (uint32_t)r->prefix[4];
    size_t max = r->max_msg ? r->max_msg : WISP_GRPC_DEFAULT_MAX_MSG;
    if (msg_len > max) return wisp_grpc_reader_fail(r, WISP_ERR_TOO_BIG);
    r->msg_len = msg_len;
  }

  size_t have = wisp_buf_len(&r->body);
  size_t need = r->msg_len - have;
  size_t avail = len - used;

  /* The whole body is in this chunk and none of it was buffered: hand it
   * out in place, no copy. */
  if (have == 0 && avail >= need) {
    out_msg->data = need ? data + used : empty;
    out_msg->len = need;
    *out_has_msg = true;
    *out_consumed = used + need;
    wisp_grpc_reader_next(r);
    return WISP_OK;
  }

  size_t n = avail < need ? avail : need;
  wisp_err e = wisp_buf_append(&r->body, data + used, n, r->msg_len);
  if (e != WISP_OK) return wisp_grpc_reader_fail(r, e); /* unreachable: have + n <= msg_len */
  used += n;
  *out_consumed = used;
  if (wisp_buf_len(&r->body) == r->msg_len) {
    out_msg->data = wisp_buf_rptr(&r->body);
    out_msg->len = r->msg_len;
    *out_has_msg = true;
    r->delivered = true;
    wisp_grpc_reader_next(r);
  }
  return WISP_OK;
}

wisp_err wisp_grpc_reader_finish(const wisp_grpc_reader *r) {
  if (r->err != WISP_OK) return r->err;
  return r->prefix_len == 0 ? WISP_OK : WISP_ERR_CLOSED;
}

void wisp_grpc_prefix_write(uint8_t out[WISP_GRPC_PREFIX_LEN], uint32_t msg_len) {
  out[0] = 0;
  out[1] = (uint8_t)(msg_len >> 24);
  out[2] = (uint8_t)(msg_len >> 16);
  out[3] = (uint8_t)(msg_len >> 8);
  out[4] = (uint8_t)msg_len;
}

wisp_err wisp_grpc_write_msg(wisp_buf *out, const void *msg, size_t len, size_t limit) {
  WISP_ENSURE(len <= UINT32_MAX, WISP_ERR_TOO_BIG);
  WISP_ENSURE(limit >= WISP_GRPC_PREFIX_LEN && len <= limit - WISP_GRPC_PREFIX_LEN &&
                  wisp_buf_len(out) <= limit - WISP_GRPC_PREFIX_LEN - len,
              WISP_ERR_TOO_BIG);
  uint8_t prefix[WISP_GRPC_PREFIX_LEN];
  wisp_grpc_prefix_write(prefix, (uint32_t)len);
  /* Neither append can fail now: the check above covers both. */
  WISP_GUARD(wisp_buf_append(out, prefix, sizeof(prefix), limit));
  WISP_GUARD(wisp_buf_append(out, msg, len, limit));
  return WISP_OK;
}

/* ---- grpc-message: percent-encoding ---- */

static bool wisp_grpc_msg_plain(uint8_t c) { return c >= 0x20 && c <= 0x7e && c != '%'; }

size_t wisp_grpc_message_encoded_len(const void *in, size_t len) {
  const uint8_t *p = in;
  size_t n = 0;
  for (size_t i = 0; i < len; i++) n += wisp_grpc_msg_plain(p[i]) ? 1 : 3;
  return n;
}

wisp_err wisp_grpc_message_encode(char *out, size_t out_len, size_t *out_written, const void *in, size_t len) {
  static const char hex[] = "0123456789ABCDEF";
  const uint8_t *p = in;
  *out_written = 0;
  if (out_len == 0) return WISP_ERR_TOO_BIG;
  size_t w = 0;
  wisp_err e = WISP_OK;
  for (size_t i = 0; i < len; i++) {
    size_t piece = wisp_grpc_msg_plain(p[i]) ? 1 : 3;
    if (out_len - 1 - w < piece) {
      e = WISP_ERR_TOO_BIG;
      break;
    }
    if (piece == 1) {
      out[w++] = (char)p[i];
    } else {
      out[w++] = '%';
      out[w++] = hex[p[i] >> 4];
      out[w++] = hex[p[i] & 0xf];
    }
  }
  out[w] = '\0';
  *out_written = w;
  return e;
}

static int wisp_grpc_hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

wisp_err wisp_grpc_message_decode(char *out, size_t out_len, size_t *out_written, const char *in, size_t len) {
  *out_written = 0;
  if (out_len == 0) return WISP_ERR_TOO_BIG;
  size_t w = 0;
  wisp_err e = WISP_OK;
  for (size_t i = 0; i < len; i++) {
    if (w == out_len - 1) {
      e = WISP_ERR_TOO_BIG;
      break;
    }
    int hi, lo;
    if (in[i] == '%' && len - i >= 3 && (hi = wisp_grpc_hexval(in[i + 1])) >= 0 &&
        (lo = wisp_grpc_hexval(in[i + 2])) >= 0) {
      out[w++] = (char)(hi << 4 | lo);
      i += 2;
    } else {
      out[w++] = in[i];
    }
  }
  out[w] = '\0';
  *out_written = w;
  return e;
}

/* ---- request headers ---- */

wisp_err wisp_grpc_timeout_parse(uint64_t *out_ms, const char *s, size_t len) {
  /* TimeoutValue: positive integer as ASCII string of at most 8 digits. */
  WISP_ENSURE(len >= 2 && len <= 9, WISP_ERR_PARSE);
  uint64_t v = 0;
  for (size_t i = 0; i + 1 < len; i++) {
    WISP_ENSURE(wisp_grpc_is_digit(s[i]), WISP_ERR_PARSE);
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  uint64_t ms;
  switch (s[len - 1]) {
    case 'H':
      ms = v * 3600000;
      break;
    case 'M':
      ms = v * 60000;
      break;
    case 'S':
      ms = v * 1000;
      break;
    case 'm':
      ms = v;
      break;
    case 'u':
      ms = (v + 999) / 1000;
      break;
    case 'n':
      ms = (v + 999999) / 1000000;
      break;
    default:
      return WISP_ERR_PARSE;
  }
  *out_ms = ms;
  return WISP_OK;
}

bool wisp_grpc_content_type_ok(const char *value, size_t len) {
  static const char base[] = "application/grpc";
  const size_t base_len = sizeof(base) - 1;
  if (len < base_len || memcmp(value, base, base_len) != 0) return false;
  const char *rest = value + base_len;
  size_t rest_len = len - base_len;
  if (rest_len == 0 || rest[0] == ';') return true;
  if (rest[0] != '+') return false;
  const char *sub = rest + 1;
  size_t sub_len = 0;
  while (sub_len < rest_len - 1 && sub[sub_len] != ';') sub_len++;
  return sub_len == 0 || (sub_len == 5 && strncasecmp(sub, "proto", 5) == 0);
}
