/* Fuzz target for join tokens (control/agent/wisp_tokens): the token a
 * caller presents in a SignRequest, and the agent's tokens state file.
 * Input: the state file's text, then optionally a 0xff byte and the token
 * presented (a C string, as protobuf-c gives it).
 *
 * Invariants: the state file parses all or nothing (a refusal leaves the
 * store as it was, and says why); a parsed store serialises to text that parses back to
 * the very same entries, and serialises the same again. Spending: a token
 * is accepted only for the ID it was made for, before it expires, once
 * unless reusable; it is then marked used; an unknown, expired or spent
 * token is refused with WISP_ERR_IDENTITY, a wrong ID with
 * WISP_ERR_POLICY; a presented token is accepted only if it is stored.
 *
 * Replayed over corpus/tokens/ by //tests/fuzz:tokens_fuzz_replay in the
 * normal suite; tests/fuzz/run_fuzzers.sh fuzzes it for real. */
#include <stdbool.h>
#include <string.h>

#include "control/agent/wisp_tokens.h"
#include "tests/fuzz/fuzz.h"

#define SEPARATOR 0xff
#define OTHER_ID "spiffe://example.org/not/the/one"
#define SPEND_CHECKS 8 /* tokens spent per input, to bound the time */

static char perr[512]; /* why wisp_tokens_parse refused */

static bool same_store(const wisp_tokens *a, const wisp_tokens *b) {
  if (a->n != b->n) return false;
  for (size_t i = 0; i < a->n; i++) {
    const wisp_token *x = &a->items[i], *y = &b->items[i];
    if (strcmp(x->token, y->token) || strcmp(x->spiffe_id, y->spiffe_id) || x->expires != y->expires ||
        x->reusable != y->reusable || x->used != y->used)
      return false;
  }
  return true;
}

static size_t count_token(const wisp_tokens *t, const char *token) {
  size_t n = 0;
  for (size_t i = 0; i < t->n; i++) n += strcmp(t->items[i].token, token) == 0;
  return n;
}

static void check_roundtrip(const wisp_tokens *t) {
  wisp_buf text = {0};
  CHECK(wisp_tokens_serialize(t, &text) == WISP_OK);
  wisp_tokens back = {0};
  CHECK(wisp_tokens_parse(&back, (const char *)wisp_buf_rptr(&text), wisp_buf_len(&text), perr, sizeof(perr)) ==
        WISP_OK);
  CHECK(same_store(t, &back));
  wisp_buf again = {0};
  CHECK(wisp_tokens_serialize(&back, &again) == WISP_OK);
  CHECK(wisp_buf_len(&again) == wisp_buf_len(&text) &&
        memcmp(wisp_buf_rptr(&again), wisp_buf_rptr(&text), wisp_buf_len(&text)) == 0);
  wisp_buf_cleanup(&text);
  wisp_buf_cleanup(&again);
  wisp_tokens_cleanup(&back);
}

/* Spends entry |i| as the agent would, around its expiry. */
static void check_spend(wisp_tokens *t, size_t i) {
  wisp_token tok = t->items[i]; /* a copy: the store may change */
  if (count_token(t, tok.token) != 1 || tok.expires == INT64_MIN) return;
  char err[WISP_SPIFFE_MAX + 256];
  int64_t before = tok.expires - 1;
  CHECK(wisp_tokens_use(t, tok.token, tok.spiffe_id, tok.expires, err, sizeof(err)) == WISP_ERR_IDENTITY);
  CHECK(strstr(err, "expired") != NULL);
  if (strcmp(tok.spiffe_id, OTHER_ID) != 0 && !(tok.used && !tok.reusable)) {
    CHECK(wisp_tokens_use(t, tok.token, OTHER_ID, before, err, sizeof(err)) == WISP_ERR_POLICY);
    CHECK(t->items[i].used == tok.used); /* a refusal spends nothing */
  }
  wisp_err rc = wisp_tokens_use(t, tok.token, tok.spiffe_id, before, err, sizeof(err));
  if (tok.used && !tok.reusable) {
    CHECK(rc == WISP_ERR_IDENTITY && strstr(err, "already used") != NULL);
    return;
  }
  CHECK(rc == WISP_OK && t->items[i].used);
  rc = wisp_tokens_use(t, tok.token, tok.spiffe_id, before, err, sizeof(err));
  CHECK(rc == (tok.reusable ? WISP_OK : WISP_ERR_IDENTITY));
}

/* A token as a caller presents it: accepted only if stored, unexpired and
 * for that ID. */
static void check_presented(wisp_tokens *t, const char *token) {
  char err[WISP_SPIFFE_MAX + 256];
  const wisp_token *hit = NULL;
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->items[i].token, token) == 0) hit = &t->items[i];
  const char *id = hit ? hit->spiffe_id : OTHER_ID;
  int64_t now = hit && hit->expires != INT64_MIN ? hit->expires - 1 : 0;
  wisp_err rc = wisp_tokens_use(t, token, id, now, err, sizeof(err));
  if (!hit) {
    CHECK(rc == WISP_ERR_IDENTITY && strcmp(err, "unknown join token") == 0);
  } else if (rc == WISP_OK) {
    CHECK(hit->used && hit->expires > now && strcmp(hit->spiffe_id, id) == 0);
  } else {
    CHECK(rc == WISP_ERR_IDENTITY || rc == WISP_ERR_POLICY);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *sep = memchr(data, SEPARATOR, size);
  size_t text_len = sep ? (size_t)(sep - data) : size;
  wisp_tokens t = {0};
  /* A store that already holds something: a refusal must leave it so. */
  CHECK(wisp_tokens_create(&t, NULL, "spiffe://example.org/existing", 100, 50, false) == WISP_OK);
  wisp_token first = t.items[0];
  perr[0] = '\0';
  wisp_err rc = wisp_tokens_parse(&t, (const char *)data, text_len, perr, sizeof(perr));
  if (rc != WISP_OK) {
    CHECK(rc == WISP_ERR_PARSE || rc == WISP_ERR_TOO_BIG);
    CHECK(perr[0] != '\0'); /* every refusal says why */
    CHECK(t.n == 1 && memcmp(&t.items[0], &first, sizeof(first)) == 0);
  } else {
    CHECK(t.n >= 1 && t.n <= WISP_TOKENS_MAX);
    check_roundtrip(&t);
    for (size_t i = 1; i < t.n && i <= SPEND_CHECKS; i++) check_spend(&t, i);
  }
  if (sep) {
    size_t len = size - text_len - 1;
    char *token = malloc(len + 1);
    CHECK(token != NULL);
    memcpy(token, sep + 1, len);
    token[len] = '\0';
    check_presented(&t, token);
    free(token);
  }
  wisp_tokens_cleanup(&t);
  return 0;
}
