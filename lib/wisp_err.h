/* wisp_err: one error enum for every module, grouped by kind, and the small
 * GUARD/ENSURE family that replaces hand-written if-ladders (as s2n-tls's
 * utils/s2n_safety.h). Functions that can fail return wisp_err and are
 * marked WISP_MUST_CHECK; data goes out through out_ parameters. */
#ifndef WISP_ERR_H
#define WISP_ERR_H

#define WISP_MUST_CHECK __attribute__((warn_unused_result))

typedef enum {
  WISP_OK = 0,
  /* I/O */
  WISP_ERR_IO = 100,
  WISP_ERR_AGAIN,
  WISP_ERR_CLOSED,
  WISP_ERR_TIMEOUT,
  /* protocol (a peer sent something wrong) */
  WISP_ERR_PROTO = 200,
  WISP_ERR_TLS,
  WISP_ERR_VERIFY,
  WISP_ERR_TOO_BIG,
  /* policy / identity */
  WISP_ERR_POLICY = 300,
  WISP_ERR_IDENTITY,
  /* internal */
  WISP_ERR_INTERNAL = 400,
  WISP_ERR_NOMEM,
  /* usage (a user gave bad input: flags, files) */
  WISP_ERR_USAGE = 500,
  WISP_ERR_PARSE,
} wisp_err;

/* Returns a static, human-readable name for |err|. */
const char *wisp_err_str(wisp_err err);

/* Return |err| from the current function when |cond| is false. */
#define WISP_ENSURE(cond, err) \
  do {                         \
    if (!(cond)) return (err); \
  } while (0)

/* Propagate a non-OK wisp_err. */
#define WISP_GUARD(expr)                                \
  do {                                                  \
    wisp_err wisp_guard_e_ = (expr);                    \
    if (wisp_guard_e_ != WISP_OK) return wisp_guard_e_; \
  } while (0)

#endif
