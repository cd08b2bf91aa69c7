#include "control/agent/wisp_tokens.h"

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

wisp_err wisp_tokens_create(wisp_tokens *t, const wisp_token **out, const char *spiffe_id, int64_t now,
                            int64_t ttl, bool reusable) {
  static const char hex[] = "0123456789abcdef";
  uint8_t raw[WISP_TOKEN_LEN / 2];
  WISP_ENSURE(RAND_bytes(raw, sizeof(raw)) == 1, WISP_ERR_INTERNAL);
  wisp_token tok = {.expires = now + ttl, .reusable = reusable};
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
      snprintf(err, err_len, "join token expired %" PRId64 "s ago", now - tok->expires);
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

static wisp_err parse_line(wisp_token *tok, const char *line, size_t len) {
  char buf[WISP_SPIFFE_MAX + 128];
  WISP_ENSURE(len < sizeof(buf), WISP_ERR_PARSE);
  memcpy(buf, line, len);
  buf[len] = '\0';
  char token[WISP_TOKEN_LEN + 2], id[WISP_SPIFFE_MAX + 1];
  long long expires;
  int reusable, used, end = 0;
  int got = sscanf(buf, "%33s %2048s %lld %d %d%n", token, id, &expires, &reusable, &used, &end);
  WISP_ENSURE(got == 5 && (size_t)end == len && strlen(token) == WISP_TOKEN_LEN, WISP_ERR_PARSE);
  memset(tok, 0, sizeof(*tok));
  strcpy(tok->token, token);
  strcpy(tok->spiffe_id, id);
  tok->expires = expires;
  tok->reusable = reusable != 0;
  tok->used = used != 0;
  return WISP_OK;
}

wisp_err wisp_tokens_parse(wisp_tokens *out, const char *text, size_t len) {
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

void wisp_tokens_cleanup(wisp_tokens *t) {
  free(t->items);
  memset(t, 0, sizeof(*t));
}
