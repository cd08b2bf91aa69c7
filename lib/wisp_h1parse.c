#include "lib/wisp_h1parse.h"

#include <string.h>
#include <strings.h>

enum { PHASE_HEAD, PHASE_BODY, PHASE_ERROR };

/* Where the chunked framing is (RFC 9112 7.1): http-parser, built without
 * STRICT_CHECK, takes any two bytes after a chunk's data as its CRLF, so
 * the wrapper follows the grammar itself over the bytes that are not data. */
enum {
  F_SIZE_FIRST, /* a chunk size's first hex digit */
  F_SIZE,       /* more hex digits, ';', or CR */
  F_SIZE_BWS,   /* blanks after the size: only before a ';' */
  F_EXT,        /* a chunk extension, up to CR */
  F_EXT_QUOTED, /* inside a quoted-string of an extension */
  F_EXT_ESCAPE, /* after a backslash in a quoted-string */
  F_SIZE_LF,    /* the LF ending a chunk-size line */
  F_DATA,       /* chunk data: handed to on_body, never framing */
  F_DATA_CR,    /* the CR after a chunk's data */
  F_DATA_LF,    /* the LF after a chunk's data */
  F_TRAILERS,   /* trailer lines after the last chunk (checked as a head is) */
};

static void fail(wisp_h1parse *p, int status, const char *why) {
  if (p->why) return; /* the first reason wins */
  p->status = status;
  p->why = why;
  p->phase = PHASE_ERROR;
}

static bool ieq(const char *a, size_t alen, const char *lit) {
  return alen == strlen(lit) && strncasecmp(a, lit, alen) == 0;
}

static void trim(const char **v, size_t *len) {
  while (*len && (**v == ' ' || **v == '\t')) (*v)++, (*len)--;
  while (*len && ((*v)[*len - 1] == ' ' || (*v)[*len - 1] == '\t')) (*len)--;
}

/* ---- http-parser callbacks: the head ---- */

static wisp_h1parse *of(http_parser *hp) { return hp->data; }

static int on_url(http_parser *hp, const char *at, size_t len) {
  wisp_h1parse *p = of(hp);
  p->h.target = at; /* the whole head is one execute call: contiguous */
  p->h.target_len = len;
  return 0;
}

/* Field names and values: in the head they point into the head buffer (one
 * execute call, so never split); trailers are copied as they come. */
static int trailer_piece(wisp_h1parse *p, const char *at, size_t len, bool name) {
  if (name == p->tin_value || p->ntrailers == 0) {
    if (name) {
      if (p->ntrailers == WISP_H1_FIELDS_MAX) {
        fail(p, 400, "too many trailer fields");
        return -1;
      }
      p->ntrailers++;
      p->tname_off[p->ntrailers - 1] = wisp_buf_len(&p->tbuf);
      p->tname_len[p->ntrailers - 1] = 0;
      p->tval_len[p->ntrailers - 1] = 0;
      p->tval_off[p->ntrailers - 1] = wisp_buf_len(&p->tbuf);
    } else {
      p->tval_off[p->ntrailers - 1] = wisp_buf_len(&p->tbuf);
    }
    p->tin_value = !name;
  }
  if (wisp_buf_append(&p->tbuf, at, len, WISP_H1_TRAILERS_MAX) != WISP_OK) {
    fail(p, 400, "trailer fields larger than 16 KiB");
    return -1;
  }
  if (name) {
    p->tname_len[p->ntrailers - 1] += len;
  } else {
    p->tval_len[p->ntrailers - 1] += len;
  }
  return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t len) {
  wisp_h1parse *p = of(hp);
  if (p->phase == PHASE_BODY) return trailer_piece(p, at, len, true);
  if (p->h.nfields == WISP_H1_FIELDS_MAX) {
    fail(p, 400, "more than 128 header fields");
    return -1;
  }
  wisp_h1_field *f = &p->h.fields[p->h.nfields++];
  f->name = at;
  f->name_len = len;
  f->value = at + len; /* an empty value gets no value callback */
  f->value_len = 0;
  return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t len) {
  wisp_h1parse *p = of(hp);
  if (p->phase == PHASE_BODY) return trailer_piece(p, at, len, false);
  if (p->h.nfields == 0) return -1;
  wisp_h1_field *f = &p->h.fields[p->h.nfields - 1];
  f->value = at;
  f->value_len = len;
  return 0;
}

static void lower(const char *name, size_t len) {
  char *n = (char *)name; /* our own head buffer */
  for (size_t i = 0; i < len; i++) {
    if (n[i] >= 'A' && n[i] <= 'Z') n[i] = (char)(n[i] - 'A' + 'a');
  }
}

/* Not empty, and every byte a letter, a digit or one of |extra|. */
static bool alnum_or(const char *s, size_t len, const char *extra) {
  if (len == 0) return false;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c != 0 && strchr(extra, c) != NULL);
    if (!ok) return false;
  }
  return true;
}

/* RFC 9110 token: a field name, with no whitespace before its colon. */
static bool token(const char *s, size_t len) { return alnum_or(s, len, "!#$%&'*+-.^_`|~"); }

/* A Host value: uri-host [":" port] (RFC 9110 7.2), not empty. What is
 * refused is whatever would make the authority mean something else
 * (userinfo '@', a path '/', blanks); the characters of reg-name, an IP
 * literal in brackets, and a port pass. */
static bool host_ok(const char *v, size_t len) { return alnum_or(v, len, "-._~!$&'()*+,;=%:[]"); }

/* The framing checks http-parser leaves to its user; false: refused. */
static bool framing_ok(wisp_h1parse *p) {
  wisp_h1_head *h = &p->h;
  int hosts = 0, lengths = 0, codings = 0;
  for (size_t i = 0; i < h->nfields; i++) {
    wisp_h1_field *f = &h->fields[i];
    if (!token(f->name, f->name_len)) {
      fail(p, 400, "a field name with whitespace or a character not allowed in a token (request smuggling)");
      return false;
    }
    lower(f->name, f->name_len);
    trim(&f->value, &f->value_len);
    if (ieq(f->name, f->name_len, "host")) {
      hosts++;
      if (h->request && !host_ok(f->value, f->value_len)) {
        fail(p, 400, "bad Host: not a host name or address with an optional port");
        return false;
      }
    }
    if (ieq(f->name, f->name_len, "content-length")) lengths++;
    if (ieq(f->name, f->name_len, "transfer-encoding")) {
      codings++;
      if (!ieq(f->value, f->value_len, "chunked")) {
        fail(p, 501, "Transfer-Encoding other than chunked is not supported");
        return false;
      }
    }
    if (h->request && ieq(f->name, f->name_len, "expect")) {
      if (!ieq(f->value, f->value_len, "100-continue")) {
        fail(p, 417, "the only expectation understood is Expect: 100-continue");
        return false;
      }
      h->expect_continue = true;
    }
  }
  if (codings && lengths) {
    fail(p, 400, "both Content-Length and Transfer-Encoding (request smuggling)");
  } else if (lengths > 1) {
    fail(p, 400, "more than one Content-Length (request smuggling)");
  } else if (codings > 1) {
    fail(p, 400, "more than one Transfer-Encoding field");
  } else if (h->request && hosts > 1) {
    fail(p, 400, "more than one Host field");
  } else if (h->request && hosts == 0 && h->major == 1 && h->minor >= 1) {
    fail(p, 400, "an HTTP/1.1 request without a Host field");
  }
  return p->why == NULL;
}

static int on_headers_complete(http_parser *hp) {
  wisp_h1parse *p = of(hp);
  wisp_h1_head *h = &p->h;
  h->request = p->type == HTTP_REQUEST;
  h->major = hp->http_major;
  h->minor = hp->http_minor;
  h->method = h->request ? http_method_str((enum http_method)hp->method) : NULL;
  h->status = h->request ? 0 : (int)hp->status_code;
  if (h->major != 1) {
    /* http-parser takes HTTP/0.9 (no version) and any major version */
    if (h->request) {
      fail(p, 505, "HTTP version not supported: only HTTP/1.0 and HTTP/1.1 in this syntax");
    } else {
      fail(p, 400, "a response in an HTTP version other than 1.x");
    }
    return -1;
  }
  if (!framing_ok(p)) return -1;
  h->keep_alive = http_should_keep_alive(hp) != 0;
  /* http-parser sets it for Upgrade named in Connection (and CONNECT) */
  h->upgrade = h->request && hp->upgrade && hp->method != HTTP_CONNECT;
  h->chunked = (hp->flags & F_CHUNKED) != 0;
  h->content_length = (hp->flags & F_CONTENTLENGTH) ? (int64_t)hp->content_length : -1;
  bool bodiless = !h->request && (p->no_body || h->status / 100 == 1 || h->status == 204 || h->status == 304);
  h->has_body = !bodiless && (h->chunked || h->content_length > 0 || (!h->request && h->content_length < 0));
  p->phase = PHASE_BODY;
  p->cbs->on_head(p->arg, h);
  return bodiless ? 1 : 0; /* 1: no body follows (http-parser's convention) */
}

/* ---- http-parser callbacks: body and end ---- */

/* A chunked body's framing (chunk-size lines, trailers) is checked as the
 * head is: CRLF only, no obs-fold, no control bytes. http-parser is lenient
 * there; the bytes it does not hand to on_body are the framing. */
static bool hex_digit(uint8_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* One framing byte through the chunked grammar; a refusal is recorded. */
static void framing_grammar(wisp_h1parse *p, uint8_t c) {
  switch (p->fstate) {
    case F_SIZE_FIRST:
    case F_SIZE:
      if (hex_digit(c)) {
        p->fsize_nonzero |= c != '0';
        p->fstate = F_SIZE;
      } else if (p->fstate == F_SIZE_FIRST) {
        fail(p, 400, "bad chunk size");
      } else if (c == ';') {
        p->fstate = F_EXT;
      } else if (c == ' ' || c == '\t') {
        p->fstate = F_SIZE_BWS;
      } else if (c == '\r') {
        p->fstate = F_SIZE_LF;
      } else {
        fail(p, 400, "bad chunk size");
      }
      break;
    case F_SIZE_BWS:
      if (c == ';') {
        p->fstate = F_EXT;
      } else if (c != ' ' && c != '\t') {
        fail(p, 400, "whitespace after a chunk size not followed by an extension (request smuggling)");
      }
      break;
    case F_EXT:
      if (c == '"') p->fstate = F_EXT_QUOTED;
      if (c == '\r') p->fstate = F_SIZE_LF;
      break;
    case F_EXT_QUOTED:
    case F_EXT_ESCAPE:
      if (c == '\r' || c == '\n') {
        fail(p, 400, "CR or LF inside a quoted chunk extension (request smuggling)");
      } else if (p->fstate == F_EXT_ESCAPE) {
        p->fstate = F_EXT_QUOTED;
      } else if (c == '\\') {
        p->fstate = F_EXT_ESCAPE;
      } else if (c == '"') {
        p->fstate = F_EXT;
      }
      break;
    case F_SIZE_LF: /* a byte other than LF is a bare CR, refused by the caller */
      p->fstate = p->fsize_nonzero ? F_DATA : F_TRAILERS;
      p->fsize_nonzero = false;
      break;
    case F_DATA:
      fail(p, 400, "chunked framing where chunk data was due");
      break;
    case F_DATA_CR:
    case F_DATA_LF:
      if (c != (p->fstate == F_DATA_CR ? '\r' : '\n')) {
        fail(p, 400, "chunk data not followed by CRLF (request smuggling)");
      }
      p->fstate = p->fstate == F_DATA_CR ? F_DATA_LF : F_SIZE_FIRST;
      break;
    default: /* F_TRAILERS: the line checks below */
      break;
  }
}

static bool framing_bytes(wisp_h1parse *p, const char *from, const char *to) {
  for (; from < to && !p->why; from++) {
    uint8_t c = (uint8_t)*from;
    framing_grammar(p, c);
    if (p->why) break;
    if (p->fprev == '\r' && c != '\n') {
      fail(p, 400, "bare CR in the chunked framing (request smuggling)");
    } else if (c == '\n' && p->fprev != '\r') {
      fail(p, 400, "bare LF in the chunked framing (request smuggling)");
    } else if ((c == ' ' || c == '\t') && p->fprev == '\n') {
      fail(p, 400, "a chunk or trailer line starting with a space (request smuggling)");
    } else if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f) {
      fail(p, 400, "control character in the chunked framing");
    }
    p->fprev = c;
  }
  return p->why == NULL;
}

static int on_body(http_parser *hp, const char *at, size_t len) {
  wisp_h1parse *p = of(hp);
  if (p->scan) {
    if (!framing_bytes(p, p->scan, at)) return -1;
    p->scan = at + len;
    if (p->fstate != F_DATA) {
      fail(p, 400, "chunk data where chunked framing was due");
      return -1;
    }
    if (hp->content_length == 0) p->fstate = F_DATA_CR; /* this chunk's data is complete */
  }
  p->cbs->on_body(p->arg, (const uint8_t *)at, len);
  return 0;
}

static int on_message_complete(http_parser *hp) {
  wisp_h1parse *p = of(hp);
  p->ended = true;          /* on_end is called once the framing is checked (deliver_end) */
  http_parser_pause(hp, 1); /* hand control back: the caller decides about the next message */
  return 0;
}

/* The message ended: its trailers are checked and handed out. */
static void deliver_end(wisp_h1parse *p) {
  wisp_h1_field t[WISP_H1_FIELDS_MAX];
  const char *base = (const char *)wisp_buf_rptr(&p->tbuf);
  for (size_t i = 0; i < p->ntrailers; i++) {
    t[i] = (wisp_h1_field){base + p->tname_off[i], p->tname_len[i], base + p->tval_off[i], p->tval_len[i]};
    if (!token(t[i].name, t[i].name_len)) {
      fail(p, 400, "a trailer field name with whitespace or a character not allowed in a token");
      return;
    }
    lower(t[i].name, t[i].name_len);
    trim(&t[i].value, &t[i].value_len);
    if (ieq(t[i].name, t[i].name_len, "transfer-encoding") || ieq(t[i].name, t[i].name_len, "content-length")) {
      fail(p, 400, "Transfer-Encoding or Content-Length in the trailer fields (request smuggling)");
      return;
    }
  }
  p->cbs->on_end(p->arg, t, p->ntrailers);
}

/* ---- collecting and checking a head ---- */

static void begin_message(wisp_h1parse *p) {
  p->phase = PHASE_HEAD;
  wisp_buf_cleanup(&p->head);
  wisp_buf_cleanup(&p->tbuf);
  p->line_start = 0;
  p->ntrailers = 0;
  p->tin_value = false;
  p->lead_cr = false;
  p->fprev = '\n';
  p->fstate = F_SIZE_FIRST;
  p->fsize_nonzero = false;
  p->ended = false;
  memset(&p->h, 0, sizeof(p->h));
  http_parser_init(&p->hp, p->type);
  p->hp.data = p;
}

void wisp_h1parse_init(wisp_h1parse *p, enum http_parser_type type, const wisp_h1parse_cbs *cbs, void *arg) {
  memset(p, 0, sizeof(*p));
  /* A head is collected and released once per message: wisp_slab's
   * freelists, not malloc (issue 15). */
  p->head.slab = p->tbuf.slab = true;
  p->type = type;
  p->cbs = cbs;
  p->arg = arg;
  http_parser_settings_init(&p->settings);
  p->settings.on_url = on_url;
  p->settings.on_header_field = on_header_field;
  p->settings.on_header_value = on_header_value;
  p->settings.on_headers_complete = on_headers_complete;
  p->settings.on_body = on_body;
  p->settings.on_message_complete = on_message_complete;
  begin_message(p);
}

void wisp_h1parse_cleanup(wisp_h1parse *p) {
  wisp_buf_cleanup(&p->head);
  wisp_buf_cleanup(&p->tbuf);
}

void wisp_h1parse_set_no_body(wisp_h1parse *p, bool no_body) { p->no_body = no_body; }

bool wisp_h1parse_idle(const wisp_h1parse *p) {
  return p->ended || (p->phase == PHASE_HEAD && wisp_buf_len(&p->head) == 0);
}

/* Why http-parser refused, in words a client can act on. */
static const char *parser_reason(enum http_errno e) {
  switch (e) {
    case HPE_UNEXPECTED_CONTENT_LENGTH:
      return "a second Content-Length, or Content-Length with Transfer-Encoding (request smuggling)";
    case HPE_INVALID_TRANSFER_ENCODING:
      return "bad Transfer-Encoding";
    case HPE_INVALID_CONTENT_LENGTH:
      return "bad Content-Length";
    case HPE_INVALID_CHUNK_SIZE:
      return "bad chunk size";
    case HPE_HEADER_OVERFLOW:
      return "header fields too large";
    case HPE_INVALID_VERSION:
      return "bad HTTP version";
    case HPE_INVALID_METHOD:
      return "unknown method";
    case HPE_INVALID_URL:
      return "bad request-target";
    case HPE_INVALID_HEADER_TOKEN:
      return "bad header field name";
    case HPE_LF_EXPECTED:
      return "bare CR or LF in the body framing";
    case HPE_INVALID_EOF_STATE:
      return "the connection closed in the middle of a message";
    default:
      return "malformed HTTP/1 message";
  }
}

/* Runs http-parser over |len| bytes; the error, if any, is recorded. */
static size_t run(wisp_h1parse *p, const uint8_t *data, size_t len) {
  bool check = p->phase == PHASE_BODY && p->h.chunked;
  p->scan = check ? (const char *)data : NULL;
  size_t n = http_parser_execute(&p->hp, &p->settings, (const char *)data, len);
  /* the framing after the last body piece, up to where parsing stopped
   * (the end of the message when it ended) */
  if (p->scan) framing_bytes(p, p->scan, (const char *)data + n);
  p->scan = NULL;
  enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
  if (e == HPE_PAUSED) {
    http_parser_pause(&p->hp, 0);
  } else if (e == HPE_INVALID_CONTENT_LENGTH && p->phase == PHASE_BODY && p->h.chunked) {
    fail(p, 400, "chunk size too large"); /* http-parser reports its overflow as a bad Content-Length */
  } else if (e != HPE_OK) {
    fail(p, 400, parser_reason(e));
  }
  if (p->ended && !p->why) deliver_end(p);
  return n;
}

/* Checks byte |c| at the end of the head collected so far; false: refused. */
static bool head_byte_ok(wisp_h1parse *p, uint8_t c, size_t at) {
  uint8_t prev = at ? wisp_buf_rptr(&p->head)[at - 1] : 0;
  if (prev == '\r' && c != '\n') {
    fail(p, 400, "bare CR in the head (request smuggling)");
  } else if (c == '\n' && prev != '\r') {
    fail(p, 400, "bare LF in the head: lines must end in CRLF (request smuggling)");
  } else if ((c == ' ' || c == '\t') && at == p->line_start && at != 0) {
    fail(p, 400, "obs-fold (a header line starting with a space) is refused (request smuggling)");
  } else if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f) {
    fail(p, 400, "control character in the head");
  }
  return p->why == NULL;
}

/* A request line (without its CRLF) that is HTTP/0.9 (method and target,
 * no version) or names a major version other than 1: refused with 505 as
 * soon as the line ends, since an HTTP/0.9 client sends no empty line. */
static void request_version(wisp_h1parse *p, const uint8_t *line, size_t len) {
  const uint8_t *sp1 = memchr(line, ' ', len);
  const uint8_t *sp2 = sp1 ? memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - line)) : NULL;
  if (sp1 && !sp2) {
    fail(p, 505, "HTTP/0.9 (a request line without a version) is not supported");
    return;
  }
  const uint8_t *last = line + len;
  while (last > line && last[-1] != ' ') last--;
  size_t vlen = (size_t)(line + len - last);
  static const char kHttp[] = "HTTP/";
  size_t hlen = sizeof(kHttp) - 1;
  if (vlen <= hlen || memcmp(last, kHttp, hlen) != 0) return; /* http-parser refuses it */
  const uint8_t *major = last + hlen;
  bool digit = *major >= '0' && *major <= '9';
  bool more = vlen > hlen + 1 && major[1] >= '0' && major[1] <= '9';
  if (digit && (*major != '1' || more)) {
    fail(p, 505, "HTTP version not supported: only HTTP/1.0 and HTTP/1.1 in this syntax");
  }
}

/* How many of the |len| bytes at |data|, which would go at offset |at| > 0
 * of the head, head_byte_ok passes on their own: none a CR, LF or other
 * control byte (a tab is not one), no space or tab first on a line, and
 * the byte before them not a CR. Those are copied as a run, not one by one
 * (issue 15); every other byte takes the checks of collect_head's loop. */
static size_t plain_run(const wisp_h1parse *p, const uint8_t *data, size_t len, size_t at) {
  if (wisp_buf_rptr(&p->head)[at - 1] == '\r') return 0;
  size_t k = 0;
  while (k < len) {
    uint8_t c = data[k];
    if ((c < 0x20 && c != '\t') || c == 0x7f) break;
    if ((c == ' ' || c == '\t') && at + k == p->line_start) break;
    k++;
  }
  return k;
}

/* Collects head bytes; returns how many it took. The head is parsed once
 * its empty line arrives. */
static size_t collect_head(wisp_h1parse *p, const uint8_t *data, size_t len) {
  size_t i = 0;
  while (i < len && p->phase == PHASE_HEAD) {
    size_t at = wisp_buf_len(&p->head);
    size_t plain = at > 0 ? plain_run(p, data + i, len - i, at) : 0;
    if (plain > 0) {
      size_t room = WISP_H1_HEAD_MAX - at;
      bool over = plain > room; /* the byte past the limit is taken and refused, as one by one */
      if (over) plain = room;
      if (wisp_buf_append(&p->head, data + i, plain, WISP_H1_HEAD_MAX) != WISP_OK) over = true;
      i += plain;
      if (!over) continue;
      fail(p, 400, "head larger than 64 KiB");
      return i + 1;
    }
    uint8_t c = data[i++];
    if (at == 0 && (c == '\r' || c == '\n') && p->line_start == 0) {
      /* Empty lines before a request line are skipped (RFC 9112 2.2);
       * a bare LF among them is refused like anywhere else. */
      if (c == '\n' && !p->lead_cr) fail(p, 400, "bare LF before the start line (request smuggling)");
      p->lead_cr = c == '\r';
      if (p->why) return i;
      continue;
    }
    if (p->lead_cr && at == 0) {
      p->lead_cr = false;
      if (c != '\n') fail(p, 400, "bare CR before the start line (request smuggling)");
      if (p->why) return i;
      continue;
    }
    if (!head_byte_ok(p, c, at)) return i;
    if (wisp_buf_append(&p->head, &c, 1, WISP_H1_HEAD_MAX) != WISP_OK) {
      fail(p, 400, "head larger than 64 KiB");
      return i;
    }
    if (c != '\n') continue;
    if (p->line_start == 0 && p->type == HTTP_REQUEST) {
      request_version(p, wisp_buf_rptr(&p->head), at - 1); /* at - 1: the CR */
      if (p->why) return i;
    }
    bool empty_line = at + 1 - p->line_start == 2;
    p->line_start = at + 1;
    if (!empty_line) continue;
    size_t hlen = wisp_buf_len(&p->head);
    size_t n = run(p, wisp_buf_rptr(&p->head), hlen);
    if (!p->why && n != hlen && !p->ended) fail(p, 400, "malformed HTTP/1 head");
    if (!p->why && p->phase == PHASE_HEAD) fail(p, 400, "malformed HTTP/1 head");
  }
  return i;
}

wisp_h1p_result wisp_h1parse_feed(wisp_h1parse *p, const uint8_t *data, size_t len, size_t *used) {
  size_t off = 0;
  *used = 0;
  if (p->ended) begin_message(p);
  while (off < len && p->phase != PHASE_ERROR && !p->ended) {
    if (p->phase == PHASE_HEAD) {
      off += collect_head(p, data + off, len - off);
    } else {
      off += run(p, data + off, len - off);
    }
  }
  *used = off;
  if (p->phase == PHASE_ERROR) return WISP_H1P_ERROR;
  return p->ended ? WISP_H1P_END : WISP_H1P_MORE;
}

wisp_h1p_result wisp_h1parse_eof(wisp_h1parse *p) {
  if (p->ended) return WISP_H1P_END;
  if (p->phase == PHASE_ERROR) return WISP_H1P_ERROR;
  if (wisp_h1parse_idle(p)) return WISP_H1P_MORE;
  if (p->phase == PHASE_BODY) {
    static const uint8_t kNone[1];
    run(p, kNone, 0); /* http-parser ends a body read to EOF on a zero-length execute */
    if (p->why) return WISP_H1P_ERROR;
    if (p->ended) return WISP_H1P_END;
  }
  fail(p, 400, "the connection closed in the middle of a message");
  return WISP_H1P_ERROR;
}

bool wisp_h1_hop_by_hop(const wisp_h1_head *h, const wisp_h1_field *f) {
  static const char *const kAlways[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                                        "upgrade",    "host",       "http2-settings"};
  for (size_t i = 0; i < sizeof(kAlways) / sizeof(kAlways[0]); i++) {
    if (ieq(f->name, f->name_len, kAlways[i])) return true;
  }
  if (ieq(f->name, f->name_len, "te")) return !ieq(f->value, f->value_len, "trailers");
  /* Named by a Connection field: "Connection: close, X-Foo" makes X-Foo hop-by-hop. */
  for (size_t i = 0; i < h->nfields; i++) {
    const wisp_h1_field *c = &h->fields[i];
    if (!ieq(c->name, c->name_len, "connection")) continue;
    const char *v = c->value, *end = c->value + c->value_len;
    while (v < end) {
      const char *comma = memchr(v, ',', (size_t)(end - v));
      const char *tok = v;
      size_t tlen = (size_t)((comma ? comma : end) - v);
      trim(&tok, &tlen);
      if (tlen && tlen == f->name_len && strncasecmp(tok, f->name, tlen) == 0) return true;
      v = comma ? comma + 1 : end;
    }
  }
  return false;
}

int wisp_h1_request_line(const uint8_t *d, size_t len) {
  if (len > WISP_H1_LINE_MAX) len = WISP_H1_LINE_MAX;
  const uint8_t *lf = memchr(d, '\n', len);
  if (!lf) return len == WISP_H1_LINE_MAX ? 0 : -1;
  size_t n = (size_t)(lf - d);
  static const char kVersion[] = " HTTP/1.";
  size_t vlen = sizeof(kVersion) - 1;
  /* ... SP "HTTP/1." DIGIT CR LF, after a method token and a target */
  if (n < vlen + 4 || d[n - 1] != '\r' || d[n - 2] < '0' || d[n - 2] > '9') return 0;
  if (memcmp(d + n - 2 - vlen, kVersion, vlen) != 0) return 0;
  size_t i = 0;
  while (i < n && d[i] != ' ') {
    if (!token((const char *)d + i, 1)) return 0;
    i++;
  }
  if (i == 0 || i + 1 >= n - 2 - vlen) return 0; /* a method, a space, a target */
  for (size_t j = i + 1; j < n - 2 - vlen; j++) {
    if (d[j] <= ' ' || d[j] == 0x7f) return 0;
  }
  return 1;
}

const char *wisp_h1_reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 429:
      return "Too Many Requests";
    case 417:
      return "Expectation Failed";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      break;
  }
  /* RFC 9110 section 15 names the classes. */
  static const char *const kClass[] = {"Informational", "Successful", "Redirection", "Client Error", "Server Error"};
  return status >= 100 && status < 600 ? kClass[status / 100 - 1] : "Unknown";
}
