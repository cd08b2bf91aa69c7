#include "control/agent/wisp_tokens.h"

#include <errno.h>
#include <inttypes.h>
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

/* The next space-separated field of |line| from |*at| (exactly one space
 * between fields, as serialize writes them); |*at| moves past it and its
 * space, to |len| + 1 after the last field. */
static bool next_field(const char *line, size_t len, size_t *at, const char **out, size_t *out_len) {
  if (*at > len) return false;
  const char *sp = memchr(line + *at, ' ', len - *at);
  size_t stop = sp ? (size_t)(sp - line) : len;
  *out = line + *at;
  *out_len = stop - *at;
  *at = stop + 1;
  return *out_len > 0;
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

/* One line as serialize writes it; anything else is WISP_ERR_PARSE. */
static wisp_err parse_line(wisp_token *tok, const char *line, size_t len) {
  const char *f[5];
  size_t n[5], at = 0;
  for (int i = 0; i < 5; i++) WISP_ENSURE(next_field(line, len, &at, &f[i], &n[i]), WISP_ERR_PARSE);
  WISP_ENSURE(at == len + 1, WISP_ERR_PARSE); /* nothing after the fifth field */
  memset(tok, 0, sizeof(*tok));
  wisp_spiffe_id id;
  WISP_ENSURE(parse_hex_token(tok->token, f[0], n[0]), WISP_ERR_PARSE);
  WISP_ENSURE(wisp_spiffe_parse(&id, f[1], n[1], NULL, 0) == WISP_OK, WISP_ERR_PARSE);
  memcpy(tok->spiffe_id, id.id, n[1] + 1);
  WISP_ENSURE(parse_i64(&tok->expires, f[2], n[2]), WISP_ERR_PARSE);
  WISP_ENSURE(parse_flag(&tok->reusable, f[3], n[3]) && parse_flag(&tok->used, f[4], n[4]), WISP_ERR_PARSE);
  return WISP_OK;
}

static wisp_err parse_all(wisp_tokens *out, const char *text, size_t len) {
  size_t i = 0;
  while (i < len) {
    const char *nl = memchr(text + i, '\n', len - i);
    size_t line_len = nl ? (size_t)(nl - (text + i)) : len - i;
    if (line_len > 0) {
      wisp_token tok;
      WISP_GUARD(parse_line(&tok, text + i, line_len));
      WISP_GUARD(push(out, &tok));
    }
    i += line_len + 1;
  }
  return WISP_OK;
}

wisp_err wisp_tokens_parse(wisp_tokens *out, const char *text, size_t len) {
  wisp_tokens parsed = {0};
  wisp_err rc = parse_all(&parsed, text, len);
  if (rc == WISP_OK && parsed.n > WISP_TOKENS_MAX - out->n) rc = WISP_ERR_TOO_BIG;
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
