/* wisp_tokens: join tokens. A token binds one SPIFFE ID, expires, and is
 * one-use unless created reusable. The store is a plain list with a text
 * form for the state dir; parse and serialize are pure. */
#ifndef WISP_TOKENS_H
#define WISP_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wisp_buf.h"
#include "lib/wisp_err.h"
#include "lib/wisp_spiffe.h"

#define WISP_TOKEN_LEN 32 /* hex of 16 random bytes */
#define WISP_TOKENS_MAX 10000

typedef struct {
  char token[WISP_TOKEN_LEN + 1];
  char spiffe_id[WISP_SPIFFE_MAX + 1];
  int64_t expires;
  bool reusable;
  bool used;
} wisp_token;

typedef struct {
  wisp_token *items; /* owned */
  size_t n, cap;
} wisp_tokens;

/* Appends a fresh random token for |spiffe_id|; |out| (may be NULL) borrows
 * the new entry until the next change to the store. */
wisp_err wisp_tokens_create(wisp_tokens *t, const wisp_token **out, const char *spiffe_id, int64_t now, int64_t ttl,
                            bool reusable) WISP_MUST_CHECK;
/* Spends |token| for a CSR that asks for |spiffe_id|. On refusal returns
 * WISP_ERR_IDENTITY (unknown, expired, used) or WISP_ERR_POLICY (wrong ID),
 * with a reason in |err|. */
wisp_err wisp_tokens_use(wisp_tokens *t, const char *token, const char *spiffe_id, int64_t now, char *err,
                         size_t err_len) WISP_MUST_CHECK;
/* Drops expired tokens (spent ones stay until then, to be named as such). */
void wisp_tokens_prune(wisp_tokens *t, int64_t now);
/* One line per token: "<token> <spiffe-id> <expires> <reusable> <used>",
 * single spaces, 32 lower-case hex digits, a SPIFFE ID, a decimal int64,
 * 0 or 1, 0 or 1 (empty lines are skipped). */
wisp_err wisp_tokens_serialize(const wisp_tokens *t, wisp_buf *out) WISP_MUST_CHECK;
/* Appends the tokens of |text| (serialize's format) to |out|, all or
 * nothing: WISP_ERR_PARSE for any line not in that exact form,
 * WISP_ERR_TOO_BIG past WISP_TOKENS_MAX, and |out| is then unchanged and
 * |err| says why, with the line number ("line 3: the used flag is not 0
 * or 1"; never a token). */
wisp_err wisp_tokens_parse(wisp_tokens *out, const char *text, size_t len, char *err, size_t err_len) WISP_MUST_CHECK;
void wisp_tokens_cleanup(wisp_tokens *t);

#endif
