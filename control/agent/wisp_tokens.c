#include "control/agent/wisp_tokens.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/mem.h>
#include <openssl/rand.h>

#include "lib/wisp_mem.h"

static wisp_err push(wisp_tokens *t, const wisp_token *tok) {
  WISP_ENSURE(t->n < WISP_TOKENS_MAX, WISP_ERR_TOO_BIG);
  if (t->n == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 16;
    t->items = wisp_realloc(t->items, t->cap * sizeof(*t->items));
  }
  t->items[t->n++] = *tok;
  return WISP_OK;
}

wisp_err wisp_tokens_create(wisp_tokens *t, const wisp_token **out, const char *spiffe_id, int64_t now, int64_t ttl,
                            bool reusable) {
  static const char hex[] = "0123456789abcdef";
  uint8_t raw[WISP_TOKEN_LEN / 2];
  WISP_ENSURE(RAND_bytes(raw, sizeof(raw)) == 1, WISP_ERR_INTERNAL);
  /* A TTL past the end of time never expires (and never overflows). */
  wisp_token tok = {.expires = ttl > INT64_MAX - now ? INT64_MAX : now + ttl, .reusable = reusable};
  for (size_t i = 0; i < sizeof(raw); i++) {
    tok.token[2 * i] = hex[raw[i] >> 4];
    tok.token[2 * i + 1] = hex[raw[i] & 15];
  }
  WISP_ENSURE(strlen(spiffe_id) <= WISP_SPIFFE_MAX, WISP_ERR_IDENTITY);
  strcpy(tok.spiffe_id, spiffe_id);
  WISP_GUARD(push(t, &tok));
  if (out) *out = &t->items[t->n - 1];
  return WISP_OK;
}

/* The stored token equal to |token|, compared in constant time against
 * every entry so timing tells a guesser nothing. */
static wisp_token *find(wisp_tokens *t, const char *token) {
  wisp_token *found = NULL;
  if (strlen(token) != WISP_TOKEN_LEN) return NULL;
  for (size_t i = 0; i < t->n; i++) {
    if (CRYPTO_memcmp(t->items[i].token, token, WISP_TOKEN_LEN) == 0) found = &t->items[i];
  }
  return found;
}

wisp_err wisp_tokens_use(wisp_tokens *t, const char *token, const char *spiffe_id, int64_t now, char *err,
                         size_t err_len) {
  wisp_token *tok = find(t, token);
  if (tok) {
    if (tok->expires <= now) {
      /* Unsigned: the distance always fits, whatever a state file said. */
      snprintf(err, err_len, "join token expired %" PRIu64 "s ago", (uint64_t)now - (uint64_t)tok->expires);
      return WISP_ERR_IDENTITY;
    }
    if (tok->used && !tok->reusable) {
      snprintf(err, err_len, "join token was already used (it is one-use; create it with --reusable to share it)");
      return WISP_ERR_IDENTITY;
    }
    if (strcmp(tok->spiffe_id, spiffe_id) != 0) {
      snprintf(err, err_len, "the CSR asks for %s, but the join token is for %s", spiffe_id, tok->spiffe_id);
      return WISP_ERR_POLICY;
    }
    tok->used = true;
    return WISP_OK;
  }
  snprintf(err, err_len, "unknown join token");
  return WISP_ERR_IDENTITY;
}

void wisp_tokens_prune(wisp_tokens *t, int64_t now) {
  size_t k = 0;
  for (size_t i = 0; i < t->n; i++) {
    const wisp_token *tok = &t->items[i];
    /* Spent tokens stay until they expire, so a replay gets "already used". */
    if (tok->expires > now) t->items[k++] = *tok;
  }
  t->n = k;
}

wisp_err wisp_tokens_serialize(const wisp_tokens *t, wisp_buf *out) {
  for (size_t i = 0; i < t->n; i++) {
    const wisp_token *tok = &t->items[i];
    char line[WISP_SPIFFE_MAX + 128];
    int n = snprintf(line, sizeof(line), "%s %s %" PRId64 " %d %d\n", tok->token, tok->spiffe_id, tok->expires,
                     tok->reusable, tok->used);
    WISP_GUARD(wisp_buf_append(out, line, (size_t)n, SIZE_MAX / 2));
  }
  return WISP_OK;
}

static bool parse_hex_token(char out[WISP_TOKEN_LEN + 1], const char *s, size_t len) {
  if (len != WISP_TOKEN_LEN) return false;
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  memcpy(out, s, len);
  out[len] = '\0';
  return true;
}

static bool parse_i64(int64_t *out, const char *s, size_t len) {
  char buf[24];
  if (len == 0 || len >= sizeof(buf) || (s[0] != '-' && (s[0] < '0' || s[0] > '9'))) return false;
  memcpy(buf, s, len);
  buf[len] = '\0';
  char *end;
  errno = 0;
  long long v = strtoll(buf, &end, 10);
  if (errno || end != buf + len) return false; /* all of it: a NUL byte inside is no digit */
  *out = v;
  return true;
}

static bool parse_flag(bool *out, const char *s, size_t len) {
  if (len != 1 || (s[0] != '0' && s[0] != '1')) return false;
  *out = s[0] == '1';
  return true;
}

#define TOKEN_FIELDS 5

/* Says why line |lineno| is refused, into |err|; returns |rc|. Never
 * quotes the line: its first field is a secret. */
static wisp_err refuse(char *err, size_t err_len, size_t lineno, wisp_err rc, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static wisp_err refuse(char *err, size_t err_len, size_t lineno, wisp_err rc, const char *fmt, ...) {
  char why[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  snprintf(err, err_len, "line %zu: %s", lineno, why);
  return rc;
}

/* The fields of |line|, separated by single spaces as serialize writes
 * them; false with |err| if there are not exactly TOKEN_FIELDS non-empty
 * ones. */
static bool split_fields(const char *line, size_t len, const char **f, size_t *n, char *why, size_t why_len) {
  size_t at = 0, count = 0;
  while (at <= len) {
    const char *sp = memchr(line + at, ' ', len - at);
    size_t stop = sp ? (size_t)(sp - line) : len;
    if (stop == at) {
      snprintf(why, why_len, "field %zu is empty (fields are separated by exactly one space)", count + 1);
      return false;
    }
    if (count == TOKEN_FIELDS) {
      snprintf(why, why_len, "more than %d fields", TOKEN_FIELDS);
      return false;
    }
    f[count] = line + at;
    n[count++] = stop - at;
    at = stop + 1;
  }
  if (count < TOKEN_FIELDS) {
    snprintf(why, why_len, "%zu field%s, expected %d: <token> <spiffe-id> <expires> <reusable> <used>", count,
             count == 1 ? "" : "s", TOKEN_FIELDS);
    return false;
  }
  return true;
}

/* Line |lineno| as serialize writes it; anything else is WISP_ERR_PARSE
 * with the reason in |err|. */
static wisp_err parse_line(wisp_token *tok, const char *line, size_t len, size_t lineno, char *err, size_t err_len) {
  const char *f[TOKEN_FIELDS];
  size_t n[TOKEN_FIELDS];
  char why[192];
  const char *nul = memchr(line, '\0', len);
  if (nul) return refuse(err, err_len, lineno, WISP_ERR_PARSE, "a NUL byte at column %zu", (size_t)(nul - line) + 1);
  if (!split_fields(line, len, f, n, why, sizeof(why))) return refuse(err, err_len, lineno, WISP_ERR_PARSE, "%s", why);
  memset(tok, 0, sizeof(*tok));
  wisp_spiffe_id id;
  if (!parse_hex_token(tok->token, f[0], n[0]))
    return refuse(err, err_len, lineno, WISP_ERR_PARSE, "the token is not %d lower-case hex digits", WISP_TOKEN_LEN);
  if (wisp_spiffe_parse(&id, f[1], n[1], why, sizeof(why)) != WISP_OK)
    return refuse(err, err_len, lineno, WISP_ERR_PARSE, "the SPIFFE ID: %s", why);
  memcpy(tok->spiffe_id, id.id, n[1] + 1);
  if (!parse_i64(&tok->expires, f[2], n[2]))
    return refuse(err, err_len, lineno, WISP_ERR_PARSE, "the expiry is not a decimal 64-bit integer");
  if (!parse_flag(&tok->reusable, f[3], n[3]))
    return refuse(err, err_len, lineno, WISP_ERR_PARSE, "the reusable flag is not 0 or 1");
  if (!parse_flag(&tok->used, f[4], n[4]))
    return refuse(err, err_len, lineno, WISP_ERR_PARSE, "the used flag is not 0 or 1");
  return WISP_OK;
}

static wisp_err parse_all(wisp_tokens *out, const char *text, size_t len, char *err, size_t err_len) {
  size_t i = 0, lineno = 0;
  while (i < len) {
    const char *nl = memchr(text + i, '\n', len - i);
    size_t line_len = nl ? (size_t)(nl - (text + i)) : len - i;
    lineno++;
    if (line_len > 0) {
      wisp_token tok;
      WISP_GUARD(parse_line(&tok, text + i, line_len, lineno, err, err_len));
      if (push(out, &tok) != WISP_OK)
        return refuse(err, err_len, lineno, WISP_ERR_TOO_BIG, "more than %d tokens", WISP_TOKENS_MAX);
    }
    i += line_len + 1;
  }
  return WISP_OK;
}

wisp_err wisp_tokens_parse(wisp_tokens *out, const char *text, size_t len, char *err, size_t err_len) {
  wisp_tokens parsed = {0};
  wisp_err rc = parse_all(&parsed, text, len, err, err_len);
  if (rc == WISP_OK && parsed.n > WISP_TOKENS_MAX - out->n) {
    snprintf(err, err_len, "the store holds at most %d tokens: %zu held already, %zu in the file", WISP_TOKENS_MAX,
             out->n, parsed.n);
    rc = WISP_ERR_TOO_BIG;
  }
  /* All or nothing: |out| changes only once every line parsed (and then
   * every push fits). */
  for (size_t i = 0; rc == WISP_OK && i < parsed.n; i++) rc = push(out, &parsed.items[i]);
  wisp_tokens_cleanup(&parsed);
  return rc;
}

void wisp_tokens_cleanup(wisp_tokens *t) {
  free(t->items);
  memset(t, 0, sizeof(*t));
}
