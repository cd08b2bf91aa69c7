/* wisp_flags: one table of a binary's flags, their WISP_* environment
 * variables and defaults, parsed into the binary's own config struct by
 * offset. wisp-proxy (proxy/wisp_config.c) and wisp-agent
 * (control/agent/main.c) both describe their flags with it.
 *
 * Order: each flag on the command line is converted as it comes (the last
 * one wins, CUSTOM rows see every one); then, in table order, each row not
 * given is taken from its environment variable (PREFIX + the flag name in
 * upper case, '-' as '_'; empty counts as unset), else from its default.
 * An error names the flag and the value. Reads argv and environ only. */
#ifndef WISP_FLAGS_H
#define WISP_FLAGS_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/wisp_err.h"

typedef enum {
  WISP_FLAG_STR,        /* char *, an owned copy (wisp_flags_cleanup frees it) */
  WISP_FLAG_BOOL,       /* bool; takes no argument on the command line; true/1/false/0 */
  WISP_FLAG_HELP,       /* bool, as BOOL; with help_stops the parse ends at it */
  WISP_FLAG_INT,        /* int: a decimal number in [min, max] */
  WISP_FLAG_COUNT,      /* size_t: a decimal number in [min, max] */
  WISP_FLAG_SECONDS,    /* double: a bare number of seconds in [min, max] */
  WISP_FLAG_DURATION,   /* int64_t seconds: "24h", "90s", "1h30m" (lib/wisp_time.h), rounded up, >= min */
  WISP_FLAG_DURATION_F, /* double seconds: the same grammar, not rounded */
  WISP_FLAG_SIZE,       /* size_t bytes: digits and a unit K/k/KiB, M/m/MiB, G/g/GiB or B/none, in [min, max] */
  WISP_FLAG_CUSTOM,     /* |set| parses the value (and says why not) */
} wisp_flag_kind;

/* Parses |val| into |out| (the config struct); on failure writes the reason
 * to |err| and returns WISP_ERR_USAGE. */
typedef wisp_err (*wisp_flag_set_fn)(void *out, const char *val, char *err, size_t err_len);

typedef struct {
  const char *name; /* without "--" */
  wisp_flag_kind kind;
  size_t off;         /* offsetof the field in the config struct */
  const char *dflt;   /* as text, parsed like a given value; NULL: left as it was */
  long long min, max; /* for numbers, sizes and durations (max unused by DURATION*) */
  /* NULL: a bad value reads "--NAME: invalid value 'VAL'"; else
   * "--NAME VAL: expected EXPECT". */
  const char *expect;
  wisp_flag_set_fn set; /* CUSTOM only */
  bool no_env;          /* no environment variable for this row */
} wisp_flag;

typedef struct {
  const wisp_flag *flags;
  size_t nflags;
  const char *env_prefix;   /* "WISP_" */
  const char *unknown_hint; /* appended to "unknown ... flag" errors, e.g. " (see --help)" */
  const char *extra_hint;   /* appended to "unexpected argument" errors */
  bool help_stops;          /* a HELP flag ends the parse at once (later argv unread) */
} wisp_flags_table;

/* The longest environment variable name wisp_flags_env_name writes. */
#define WISP_FLAGS_ENV_MAX 64

/* Parses argv, the environment and the defaults of |t| into |out|. On
 * WISP_ERR_USAGE |err| says which flag and why; |out| may then hold some
 * values: release it with wisp_flags_cleanup (or its owner's cleanup)
 * either way. */
wisp_err wisp_flags_parse(const wisp_flags_table *t, void *out, int argc, char **argv, char *err,
                          size_t err_len) WISP_MUST_CHECK;
/* Frees the STR fields of |out| that |t| describes and sets them NULL. */
void wisp_flags_cleanup(const wisp_flags_table *t, void *out);
/* Writes the environment variable of |flag| ("connect-timeout" with prefix
 * "WISP_": "WISP_CONNECT_TIMEOUT") to |out|, truncated to |out_len|. */
void wisp_flags_env_name(char *out, size_t out_len, const char *prefix, const char *flag);
/* Parses a byte size as WISP_FLAG_SIZE does: pure, for the unit tests and
 * for values that are not flags. */
wisp_err wisp_flags_parse_size(size_t *out, const char *val, unsigned long long min,
                               unsigned long long max) WISP_MUST_CHECK;

#endif
