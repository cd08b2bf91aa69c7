/* Unit tests for control/agent/wisp_tokens: spending a join token (one-use,
 * reusable, expired, wrong ID, unknown), the tokens state file (round
 * trip; strict lines; all or nothing), extreme times that must not
 * overflow, the store's bound, what pruning keeps, and the order in which
 * a refusal is decided; a restart through the state dir (wisp_state), and
 * NUL bytes in a state file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "control/agent/wisp_tokens.h"
#include "lib/wisp_state.h"
#include "tests/unit/test_x509.h"
#include "tests/unit/test_util.h"

#define ID "spiffe://example.org/ns/shop/sa/orders"
#define T1 "0123456789abcdef0123456789abcdef"
#define T2 "fedcba9876543210fedcba9876543210"

/* Why the last wisp_tokens_parse refused. */
static char perr[512];

static void test_spend(void **state) {
  wisp_tokens t = {0};
  const wisp_token *one = NULL, *many = NULL;
  char err[256];
  assert_int_equal(wisp_tokens_create(&t, &one, ID, 1000, 60, false), WISP_OK);
  char one_tok[WISP_TOKEN_LEN + 1];
  strcpy(one_tok, one->token);
  assert_int_equal(strlen(one_tok), WISP_TOKEN_LEN);
  assert_int_equal(wisp_tokens_create(&t, &many, ID, 1000, 60, true), WISP_OK);
  char many_tok[WISP_TOKEN_LEN + 1];
  strcpy(many_tok, many->token);
  assert_string_not_equal(one_tok, many_tok);

  assert_int_equal(wisp_tokens_use(&t, one_tok, "spiffe://example.org/other", 1001, err, sizeof(err)), WISP_ERR_POLICY);
  assert_non_null(strstr(err, "the join token is for " ID));
  assert_int_equal(wisp_tokens_use(&t, one_tok, ID, 1001, err, sizeof(err)), WISP_OK);
  assert_int_equal(wisp_tokens_use(&t, one_tok, ID, 1002, err, sizeof(err)), WISP_ERR_IDENTITY);
  assert_non_null(strstr(err, "already used"));
  for (int i = 0; i < 3; i++) assert_int_equal(wisp_tokens_use(&t, many_tok, ID, 1001, err, sizeof(err)), WISP_OK);
  assert_int_equal(wisp_tokens_use(&t, many_tok, ID, 1060, err, sizeof(err)), WISP_ERR_IDENTITY);
  assert_string_equal(err, "join token expired 0s ago");
  assert_int_equal(wisp_tokens_use(&t, T1, ID, 1001, err, sizeof(err)), WISP_ERR_IDENTITY);
  assert_string_equal(err, "unknown join token");
  assert_int_equal(wisp_tokens_use(&t, "", ID, 1001, err, sizeof(err)), WISP_ERR_IDENTITY);
  wisp_tokens_prune(&t, 1060);
  assert_int_equal(t.n, 0);
  wisp_tokens_cleanup(&t);
}

static void test_state_round_trip(void **state) {
  static const char kText[] = T1 " " ID " 1900000000 0 1\n" T2 " spiffe://example.org/b -5 1 0\n";
  wisp_tokens t = {0};
  assert_int_equal(wisp_tokens_parse(&t, kText, strlen(kText), perr, sizeof(perr)), WISP_OK);
  assert_int_equal(t.n, 2);
  assert_string_equal(t.items[0].token, T1);
  assert_string_equal(t.items[0].spiffe_id, ID);
  assert_true(t.items[0].expires == 1900000000 && !t.items[0].reusable && t.items[0].used);
  assert_true(t.items[1].expires == -5 && t.items[1].reusable && !t.items[1].used);
  wisp_buf b = {0};
  assert_int_equal(wisp_tokens_serialize(&t, &b), WISP_OK);
  assert_int_equal(wisp_buf_len(&b), strlen(kText));
  assert_memory_equal(wisp_buf_rptr(&b), kText, strlen(kText));
  wisp_buf_cleanup(&b);
  wisp_tokens_cleanup(&t);
  /* Empty lines and a missing final newline are fine; so is nothing. */
  static const char kLoose[] = "\n\n" T1 " " ID " 7 1 1";
  assert_int_equal(wisp_tokens_parse(&t, kLoose, strlen(kLoose), perr, sizeof(perr)), WISP_OK);
  assert_int_equal(t.n, 1);
  assert_int_equal(wisp_tokens_parse(&t, "", 0, perr, sizeof(perr)), WISP_OK);
  assert_int_equal(t.n, 1);
  wisp_tokens_cleanup(&t);
}

/* Lines serialize would never write are refused, not half-read, each
 * with the line number and what is wrong with it (never the token). */
static void test_state_strict(void **state) {
  static const struct {
    const char *text, *why;
  } kBad[] = {
      {"0123 " ID " 1 0 0", "line 1: the token is not 32 lower-case hex digits"},
      {T1 "0 " ID " 1 0 0", "line 1: the token is not 32 lower-case hex digits"},
      {"0123456789abcdef0123456789abcdeX " ID " 1 0 0", "line 1: the token is not 32 lower-case hex digits"},
      {"0123456789ABCDEF0123456789ABCDEF " ID " 1 0 0", "line 1: the token is not 32 lower-case hex digits"},
      {T1 " http://example.org/a 1 0 0", "line 1: the SPIFFE ID: "},
      {T1 " spiffe://example.org/a/../b 1 0 0", "line 1: the SPIFFE ID: "},
      {T1 " " ID " 1 0", "line 1: 4 fields, expected 5: <token> <spiffe-id> <expires> <reusable> <used>"},
      {T1 " " ID " 1 0 0 0", "line 1: more than 5 fields"},
      {T1 " " ID " 1 0 0\r", "line 1: the used flag is not 0 or 1"}, /* CRLF */
      {T1 " " ID " 1 0 0 ", "line 1: field 6 is empty (fields are separated by exactly one space)"},
      {" " T1 " " ID " 1 0 0", "line 1: field 1 is empty (fields are separated by exactly one space)"},
      {T1 "  " ID " 1 0 0", "line 1: field 2 is empty (fields are separated by exactly one space)"},
      {T1 "\t" ID "\t1\t0\t0", "line 1: 1 field, expected 5"},
      {T1 " " ID " 99999999999999999999999 0 0", "line 1: the expiry is not a decimal 64-bit integer"},
      {T1 " " ID " +1 0 0", "line 1: the expiry is not a decimal 64-bit integer"},
      {T1 " " ID " 1x 0 0", "line 1: the expiry is not a decimal 64-bit integer"},
      {T1 " " ID " 1 7 0", "line 1: the reusable flag is not 0 or 1"},
      {T1 " " ID " 1 0 -1", "line 1: the used flag is not 0 or 1"},
      /* The line counts empty lines, as an editor shows them. */
      {"\n" T1 " " ID " 1 0 0\n\n" T2 " " ID " 1 0 2\n", "line 4: the used flag is not 0 or 1"},
  };
  for (size_t i = 0; i < sizeof(kBad) / sizeof(kBad[0]); i++) {
    wisp_tokens t = {0};
    perr[0] = '\0';
    if (wisp_tokens_parse(&t, kBad[i].text, strlen(kBad[i].text), perr, sizeof(perr)) != WISP_ERR_PARSE)
      fail_msg("accepted: \"%s\"", kBad[i].text);
    if (strncmp(perr, kBad[i].why, strlen(kBad[i].why)) != 0)
      fail_msg("line %zu refused with \"%s\", not \"%s...\"", i, perr, kBad[i].why);
    if (strstr(perr, T1) || strstr(perr, "0123")) fail_msg("the reason quotes the token: \"%s\"", perr);
    assert_int_equal(t.n, 0);
    wisp_tokens_cleanup(&t);
  }
  /* The SPIFFE ID's own reason is carried. */
  static const char kDots[] = T1 " spiffe://example.org/a/../b 1 0 0";
  assert_int_equal(wisp_tokens_parse(&(wisp_tokens){0}, kDots, strlen(kDots), perr, sizeof(perr)), WISP_ERR_PARSE);
  assert_true(strlen(perr) > strlen("line 1: the SPIFFE ID: "));
}

/* A file with a bad line changes nothing: no half-loaded store. */
static void test_state_all_or_nothing(void **state) {
  wisp_tokens t = {0};
  assert_int_equal(wisp_tokens_create(&t, NULL, ID, 1000, 60, false), WISP_OK);
  wisp_token before = t.items[0];
  static const char kText[] = T1 " " ID " 1900000000 0 0\n" T2 " " ID " 1900000000 0 0\ngarbage\n";
  assert_int_equal(wisp_tokens_parse(&t, kText, strlen(kText), perr, sizeof(perr)), WISP_ERR_PARSE);
  assert_string_equal(perr, "line 3: 1 field, expected 5: <token> <spiffe-id> <expires> <reusable> <used>");
  assert_int_equal(t.n, 1);
  assert_memory_equal(&t.items[0], &before, sizeof(before));
  wisp_tokens_cleanup(&t);
}

/* Times at the ends of int64: no overflow (UBSan under --config=asan). */
static void test_extreme_times(void **state) {
  wisp_tokens t = {0};
  const wisp_token *tok = NULL;
  char err[256];
  /* A TTL past the end of time never expires, it does not wrap around. */
  assert_int_equal(wisp_tokens_create(&t, &tok, ID, 1000, INT64_MAX, true), WISP_OK);
  assert_true(tok->expires == INT64_MAX);
  char token[WISP_TOKEN_LEN + 1];
  strcpy(token, tok->token);
  assert_int_equal(wisp_tokens_use(&t, token, ID, INT64_MAX - 1, err, sizeof(err)), WISP_OK);
  wisp_tokens_cleanup(&t);
  /* A state file's far-past expiry, checked at a far-future now. */
  static const char kText[] = T1 " " ID " -9223372036854775808 0 0\n";
  assert_int_equal(wisp_tokens_parse(&t, kText, strlen(kText), perr, sizeof(perr)), WISP_OK);
  assert_int_equal(wisp_tokens_use(&t, T1, ID, INT64_MAX, err, sizeof(err)), WISP_ERR_IDENTITY);
  assert_string_equal(err, "join token expired 18446744073709551615s ago");
  wisp_tokens_cleanup(&t);
}

/* Tokens are 32 lower-case hex digits, fresh each time; |out| borrows the
 * new entry. */
static void test_create_tokens(void **state) {
  (void)state;
  wisp_tokens t = {0};
  for (int i = 0; i < 50; i++) {
    const wisp_token *tok = NULL;
    assert_int_equal(wisp_tokens_create(&t, &tok, ID, 1000, 60, false), WISP_OK);
    assert_ptr_equal(tok, &t.items[t.n - 1]);
    assert_int_equal(strlen(tok->token), WISP_TOKEN_LEN);
    assert_int_equal(strspn(tok->token, "0123456789abcdef"), WISP_TOKEN_LEN);
    assert_string_equal(tok->spiffe_id, ID);
    assert_true(tok->expires == 1060 && !tok->used && !tok->reusable);
    for (size_t k = 0; k + 1 < t.n; k++) assert_string_not_equal(t.items[k].token, tok->token);
  }
  /* An ID longer than a SPIFFE ID may be is refused; the store is unchanged. */
  static char long_id[WISP_SPIFFE_MAX + 64];
  memset(long_id, 'a', sizeof(long_id) - 1);
  memcpy(long_id, "spiffe://example.org/", 21);
  const wisp_token *none = NULL;
  assert_int_equal(wisp_tokens_create(&t, &none, long_id, 1000, 60, false), WISP_ERR_IDENTITY);
  assert_null(none);
  assert_int_equal(t.n, 50);
  wisp_tokens_cleanup(&t);
  assert_int_equal(t.n, 0);
  assert_null(t.items);
}

/* The store holds at most WISP_TOKENS_MAX tokens, whether created or read
 * from the state file. */
static void test_store_bound(void **state) {
  (void)state;
  wisp_tokens t = {0};
  for (size_t i = 0; i < WISP_TOKENS_MAX; i++)
    assert_int_equal(wisp_tokens_create(&t, NULL, ID, 1000, 60, false), WISP_OK);
  assert_int_equal(wisp_tokens_create(&t, NULL, ID, 1000, 60, false), WISP_ERR_TOO_BIG);
  assert_int_equal(t.n, WISP_TOKENS_MAX);
  /* Full: one more line from a file is too many, and nothing is added. */
  static const char kOne[] = T1 " " ID " 1900000000 0 0\n";
  assert_int_equal(wisp_tokens_parse(&t, kOne, strlen(kOne), perr, sizeof(perr)), WISP_ERR_TOO_BIG);
  assert_string_equal(perr, "the store holds at most 10000 tokens: 10000 held already, 1 in the file");
  assert_int_equal(t.n, WISP_TOKENS_MAX);
  /* Room for one: a file of two is refused whole. */
  wisp_tokens_prune(&t, 1060); /* all expired */
  assert_int_equal(t.n, 0);
  for (size_t i = 0; i + 1 < WISP_TOKENS_MAX; i++)
    assert_int_equal(wisp_tokens_create(&t, NULL, ID, 1000, 60, false), WISP_OK);
  static const char kTwo[] = T1 " " ID " 1900000000 0 0\n" T2 " " ID " 1900000000 0 0\n";
  assert_int_equal(wisp_tokens_parse(&t, kTwo, strlen(kTwo), perr, sizeof(perr)), WISP_ERR_TOO_BIG);
  assert_int_equal(t.n, WISP_TOKENS_MAX - 1);
  assert_int_equal(wisp_tokens_parse(&t, kOne, strlen(kOne), perr, sizeof(perr)), WISP_OK);
  assert_int_equal(t.n, WISP_TOKENS_MAX);
  assert_string_equal(t.items[t.n - 1].token, T1);
  wisp_tokens_cleanup(&t);
  /* A file of more lines than the store may hold: refused at the first
   * line past the bound. */
  static const char kLine[] = T1 " " ID " 1900000000 0 0\n";
  size_t line_len = strlen(kLine);
  char *big = malloc((WISP_TOKENS_MAX + 1) * line_len + 1);
  assert_non_null(big);
  for (size_t i = 0; i <= WISP_TOKENS_MAX; i++) memcpy(big + i * line_len, kLine, line_len);
  assert_int_equal(wisp_tokens_parse(&t, big, (WISP_TOKENS_MAX + 1) * line_len, perr, sizeof(perr)), WISP_ERR_TOO_BIG);
  assert_string_equal(perr, "line 10001: more than 10000 tokens");
  assert_int_equal(t.n, 0);
  free(big);
}

/* Pruning drops what has expired and keeps spent tokens until then, so a
 * replayed one-use token is named as used, not unknown. */
static void test_prune_keeps_spent(void **state) {
  (void)state;
  static const char kText[] = T1 " " ID " 2000 0 0\n" T2 " " ID " 1500 1 0\n";
  wisp_tokens t = {0};
  char err[256];
  assert_int_equal(wisp_tokens_parse(&t, kText, strlen(kText), perr, sizeof(perr)), WISP_OK);
  assert_int_equal(wisp_tokens_use(&t, T1, ID, 1000, err, sizeof(err)), WISP_OK);
  wisp_tokens_prune(&t, 1000);
  assert_int_equal(t.n, 2);
  assert_int_equal(wisp_tokens_use(&t, T1, ID, 1001, err, sizeof(err)), WISP_ERR_IDENTITY);
  assert_non_null(strstr(err, "already used"));
  wisp_tokens_prune(&t, 1500); /* T2 expires at 1500: gone; T1 stays */
  assert_int_equal(t.n, 1);
  assert_string_equal(t.items[0].token, T1);
  assert_int_equal(wisp_tokens_use(&t, T2, ID, 1001, err, sizeof(err)), WISP_ERR_IDENTITY);
  assert_string_equal(err, "unknown join token");
  /* A spent token is written as spent: a restarted agent still refuses it. */
  wisp_buf b = {0};
  assert_int_equal(wisp_tokens_serialize(&t, &b), WISP_OK);
  static const char kWant[] = T1 " " ID " 2000 0 1\n";
  assert_int_equal(wisp_buf_len(&b), strlen(kWant));
  assert_memory_equal(wisp_buf_rptr(&b), kWant, strlen(kWant));
  wisp_buf_cleanup(&b);
  wisp_tokens_prune(&t, 2000);
  assert_int_equal(t.n, 0);
  wisp_tokens_cleanup(&t);
}

/* What a refusal says when several things are wrong: expiry first, then a
 * spent one-use token, then the wrong ID; a refused use spends nothing. */
static void test_refusal_order(void **state) {
  (void)state;
  static const char kText[] = T1 " " ID " 2000 0 1\n" T2 " " ID " 2000 0 0\n";
  wisp_tokens t = {0};
  char err[256];
  assert_int_equal(wisp_tokens_parse(&t, kText, strlen(kText), perr, sizeof(perr)), WISP_OK);
  /* Expired, spent and for another ID: expired. */
  assert_int_equal(wisp_tokens_use(&t, T1, "spiffe://example.org/x", 2000, err, sizeof(err)), WISP_ERR_IDENTITY);
  assert_string_equal(err, "join token expired 0s ago");
  /* Spent and for another ID: spent. */
  assert_int_equal(wisp_tokens_use(&t, T1, "spiffe://example.org/x", 1999, err, sizeof(err)), WISP_ERR_IDENTITY);
  assert_non_null(strstr(err, "already used"));
  /* A wrong ID does not spend the token: the right one still can. */
  assert_int_equal(wisp_tokens_use(&t, T2, "spiffe://example.org/x", 1000, err, sizeof(err)), WISP_ERR_POLICY);
  assert_false(t.items[1].used);
  assert_int_equal(wisp_tokens_use(&t, T2, ID, 1000, err, sizeof(err)), WISP_OK);
  assert_true(t.items[1].used);
  /* A token of the wrong length, or one differing in its last digit, is unknown. */
  assert_int_equal(wisp_tokens_use(&t, T2 "0", ID, 1000, err, sizeof(err)), WISP_ERR_IDENTITY);
  assert_string_equal(err, "unknown join token");
  assert_int_equal(wisp_tokens_use(&t, "fedcba9876543210fedcba9876543211", ID, 1000, err, sizeof(err)),
                   WISP_ERR_IDENTITY);
  assert_string_equal(err, "unknown join token");
  wisp_tokens_cleanup(&t);
}

/* What the agent does on every change and at start (wisp_agent.c
 * save_tokens, wisp_agent_new): prune, serialize, write the state file;
 * read it back into a fresh store. A restarted agent must judge every
 * token as the old one would: spent one-use tokens stay spent, reusable
 * ones stay usable, expiries are kept, the expired are gone. */
static void test_persist_restart(void **state) {
  (void)state;
  char dir[256], err[256];
  assert_true(test_make_tmpdir(dir, sizeof(dir), "tokens"));
  wisp_tokens t = {0};
  const wisp_token *tok = NULL;
  char once[WISP_TOKEN_LEN + 1], many[WISP_TOKEN_LEN + 1], unused[WISP_TOKEN_LEN + 1], old[WISP_TOKEN_LEN + 1];
  assert_int_equal(wisp_tokens_create(&t, &tok, ID, 1000, 600, false), WISP_OK);
  strcpy(once, tok->token);
  assert_int_equal(wisp_tokens_create(&t, &tok, ID, 1000, 600, true), WISP_OK);
  strcpy(many, tok->token);
  assert_int_equal(wisp_tokens_create(&t, &tok, "spiffe://example.org/b", 1000, 300, false), WISP_OK);
  strcpy(unused, tok->token);
  assert_int_equal(wisp_tokens_create(&t, &tok, ID, 1000, 10, false), WISP_OK);
  strcpy(old, tok->token);
  assert_int_equal(wisp_tokens_use(&t, once, ID, 1001, err, sizeof(err)), WISP_OK);
  assert_int_equal(wisp_tokens_use(&t, many, ID, 1001, err, sizeof(err)), WISP_OK);

  /* Saved at 1010: |old| expires then and is not written. */
  wisp_buf b = {0};
  wisp_tokens_prune(&t, 1010);
  assert_int_equal(wisp_tokens_serialize(&t, &b), WISP_OK);
  assert_int_equal(wisp_state_write(dir, "tokens", wisp_buf_rptr(&b), wisp_buf_len(&b), 0600, err, sizeof(err)),
                   WISP_OK);
  wisp_buf_cleanup(&b);
  wisp_tokens_cleanup(&t);

  uint8_t *data = NULL;
  size_t len = 0;
  assert_int_equal(wisp_state_read(dir, "tokens", 1 << 20, &data, &len, err, sizeof(err)), WISP_OK);
  wisp_tokens back = {0};
  assert_int_equal(wisp_tokens_parse(&back, (const char *)data, len, perr, sizeof(perr)), WISP_OK);
  free(data);
  assert_int_equal(back.n, 3);
  assert_int_equal(wisp_tokens_use(&back, once, ID, 1020, err, sizeof(err)), WISP_ERR_IDENTITY);
  assert_non_null(strstr(err, "already used"));
  assert_int_equal(wisp_tokens_use(&back, many, ID, 1020, err, sizeof(err)), WISP_OK);
  assert_int_equal(wisp_tokens_use(&back, old, ID, 1020, err, sizeof(err)), WISP_ERR_IDENTITY);
  assert_string_equal(err, "unknown join token");
  assert_int_equal(wisp_tokens_use(&back, unused, ID, 1020, err, sizeof(err)), WISP_ERR_POLICY);
  assert_string_equal(err, "the CSR asks for " ID ", but the join token is for spiffe://example.org/b");
  assert_int_equal(wisp_tokens_use(&back, unused, "spiffe://example.org/b", 1300, err, sizeof(err)), WISP_ERR_IDENTITY);
  assert_string_equal(err, "join token expired 0s ago");
  assert_int_equal(wisp_tokens_use(&back, unused, "spiffe://example.org/b", 1299, err, sizeof(err)), WISP_OK);
  /* Written again, then read again: the same text (a fixed point). */
  wisp_buf b1 = {0}, b2 = {0};
  assert_int_equal(wisp_tokens_serialize(&back, &b1), WISP_OK);
  wisp_tokens again = {0};
  assert_int_equal(wisp_tokens_parse(&again, (const char *)wisp_buf_rptr(&b1), wisp_buf_len(&b1), perr, sizeof(perr)),
                   WISP_OK);
  assert_int_equal(wisp_tokens_serialize(&again, &b2), WISP_OK);
  assert_int_equal(wisp_buf_len(&b1), wisp_buf_len(&b2));
  assert_memory_equal(wisp_buf_rptr(&b1), wisp_buf_rptr(&b2), wisp_buf_len(&b1));
  wisp_buf_cleanup(&b1);
  wisp_buf_cleanup(&b2);
  wisp_tokens_cleanup(&again);
  wisp_tokens_cleanup(&back);
  test_remove_tmpdir(dir);
}

/* A NUL byte is in no field serialize writes: a state file carrying one
 * (a torn write, a bad edit) is refused, not read as a shorter field. */
static void test_state_nul_bytes(void **state) {
  (void)state;
  static const char *const kFields[] = {
      T1 " " ID " 1\0 0 0",                         /* in the expiry */
      T1 " " ID " \0001 0 0", T1 " " ID "\0 1 0 0", /* after the ID */
      T1 "\0 " ID " 1 0 0",                         /* after the token */
      T1 " " ID " 1 0\0 0",                         /* in a flag */
  };
  for (size_t i = 0; i < sizeof(kFields) / sizeof(kFields[0]); i++) {
    /* The length with the NUL: a literal's size, less its terminator. */
    size_t len = strlen(kFields[i]);
    len += 1 + strlen(kFields[i] + len + 1);
    wisp_tokens t = {0};
    if (wisp_tokens_parse(&t, kFields[i], len, perr, sizeof(perr)) != WISP_ERR_PARSE)
      fail_msg("accepted a NUL byte in line %zu", i);
    if (strncmp(perr, "line 1: a NUL byte at column ", 29) != 0) fail_msg("refused with \"%s\"", perr);
    assert_int_equal(t.n, 0);
    wisp_tokens_cleanup(&t);
  }
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spend),           cmocka_unit_test(test_state_round_trip),
      cmocka_unit_test(test_state_strict),    cmocka_unit_test(test_state_all_or_nothing),
      cmocka_unit_test(test_extreme_times),   cmocka_unit_test(test_create_tokens),
      cmocka_unit_test(test_store_bound),     cmocka_unit_test(test_prune_keeps_spent),
      cmocka_unit_test(test_refusal_order),   cmocka_unit_test(test_persist_restart),
      cmocka_unit_test(test_state_nul_bytes),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
