/* lib/wisp_flags: one table of flags, environment variables and defaults.
 * Every parse is followed by wisp_flags_cleanup (LSan checks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/wisp_flags.h"

typedef struct {
  char *name;
  bool verbose, help;
  int workers;
  size_t conns;
  double timeout;
  int64_t ttl;
  double idle;
  size_t buffer;
  int nitems;
  char items[4][16];
} opts;

/* CUSTOM: a repeatable flag, every value kept. */
static wisp_err add_item(void *out, const char *val, char *err, size_t err_len) {
  opts *o = out;
  if (o->nitems == 4 || strlen(val) >= sizeof(o->items[0])) {
    snprintf(err, err_len, "--item %s: too many or too long", val);
    return WISP_ERR_USAGE;
  }
  snprintf(o->items[o->nitems++], sizeof(o->items[0]), "%s", val);
  return WISP_OK;
}

#define OFF(f) offsetof(opts, f)
static const wisp_flag kRows[] = {
    {.name = "name", .kind = WISP_FLAG_STR, .off = OFF(name), .dflt = "anon"},
    {.name = "verbose", .kind = WISP_FLAG_BOOL, .off = OFF(verbose), .dflt = "false"},
    {.name = "workers", .kind = WISP_FLAG_INT, .off = OFF(workers), .dflt = "4", .min = 1, .max = 64},
    {.name = "max-conns",
     .kind = WISP_FLAG_COUNT,
     .off = OFF(conns),
     .dflt = "100",
     .min = 1,
     .max = 1000,
     .expect = "a number from 1 to 1000"},
    {.name = "timeout", .kind = WISP_FLAG_SECONDS, .off = OFF(timeout), .dflt = "5", .max = 60},
    {.name = "ttl",
     .kind = WISP_FLAG_DURATION,
     .off = OFF(ttl),
     .dflt = "24h",
     .min = 600,
     .expect = "a duration of at least 600s"},
    {.name = "idle", .kind = WISP_FLAG_DURATION_F, .off = OFF(idle), .dflt = "60s", .expect = "a duration"},
    {.name = "buffer", .kind = WISP_FLAG_SIZE, .off = OFF(buffer), .dflt = "16MiB", .min = 1024, .max = 1LL << 40},
    {.name = "item", .kind = WISP_FLAG_CUSTOM, .set = add_item},
    {.name = "help", .kind = WISP_FLAG_HELP, .off = OFF(help), .no_env = true},
};
static const wisp_flags_table kTable = {
    .flags = kRows,
    .nflags = sizeof(kRows) / sizeof(kRows[0]),
    .env_prefix = "FLAGSTEST_",
    .unknown_hint = " (see --help)",
    .extra_hint = "",
};

#define MAX_ARGS 16

static const char *const kEnv[] = {"FLAGSTEST_NAME",    "FLAGSTEST_VERBOSE", "FLAGSTEST_WORKERS", "FLAGSTEST_MAX_CONNS",
                                   "FLAGSTEST_TIMEOUT", "FLAGSTEST_TTL",     "FLAGSTEST_IDLE",    "FLAGSTEST_BUFFER",
                                   "FLAGSTEST_ITEM",    "FLAGSTEST_HELP"};

static int clear_env(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(kEnv) / sizeof(kEnv[0]); i++) unsetenv(kEnv[i]);
  return 0;
}

/* Parses "prog" + |args| (NULL-terminated) with table |t| into |o|. */
static wisp_err parse_with(const wisp_flags_table *t, opts *o, const char *const *args, char *err, size_t err_len) {
  static char prog[] = "prog";
  char *argv[MAX_ARGS + 2] = {prog};
  int argc = 1;
  for (; args[argc - 1] && argc <= MAX_ARGS; argc++) argv[argc] = (char *)args[argc - 1];
  argv[argc] = NULL;
  memset(o, 0, sizeof(*o));
  err[0] = '\0';
  return wisp_flags_parse(t, o, argc, argv, err, err_len);
}

static wisp_err parse(opts *o, const char *const *args, char *err, size_t err_len) {
  return parse_with(&kTable, o, args, err, err_len);
}

static void test_defaults(void **state) {
  (void)state;
  opts o;
  char err[256];
  assert_int_equal(parse(&o, (const char *[]){NULL}, err, sizeof(err)), WISP_OK);
  assert_string_equal(o.name, "anon");
  assert_false(o.verbose);
  assert_int_equal(o.workers, 4);
  assert_int_equal(o.conns, 100);
  assert_true(o.timeout == 5);
  assert_int_equal(o.ttl, 86400);
  assert_true(o.idle == 60);
  assert_int_equal(o.buffer, 16 << 20);
  assert_int_equal(o.nitems, 0);
  assert_false(o.help);
  wisp_flags_cleanup(&kTable, &o);
  assert_null(o.name);
}

static void test_flags(void **state) {
  (void)state;
  opts o;
  char err[256];
  const char *args[] = {"--name",      "a",    "--name", "b",     "--verbose", "--workers=64",
                        "--max-conns", "1000", "--ttl",  "1h30m", "--idle",    "500ms",
                        "--buffer",    "4k",   "--item", "x",     NULL};
  assert_int_equal(parse(&o, args, err, sizeof(err)), WISP_OK);
  assert_string_equal(o.name, "b"); /* the last one wins */
  assert_true(o.verbose);
  assert_int_equal(o.workers, 64);
  assert_int_equal(o.conns, 1000);
  assert_int_equal(o.ttl, 5400);
  assert_true(o.idle == 0.5);
  assert_int_equal(o.buffer, 4096);
  assert_int_equal(o.nitems, 1);
  wisp_flags_cleanup(&kTable, &o);
}

static void test_custom_repeats(void **state) {
  (void)state;
  opts o;
  char err[256];
  assert_int_equal(parse(&o, (const char *[]){"--item", "x", "--item", "y", NULL}, err, sizeof(err)), WISP_OK);
  assert_int_equal(o.nitems, 2);
  assert_string_equal(o.items[1], "y");
  wisp_flags_cleanup(&kTable, &o);
  assert_int_equal(parse(&o, (const char *[]){"--item", "0123456789abcdefg", NULL}, err, sizeof(err)), WISP_ERR_USAGE);
  assert_string_equal(err, "--item 0123456789abcdefg: too many or too long");
  wisp_flags_cleanup(&kTable, &o);
}

static void test_env_and_flag_over_env(void **state) {
  (void)state;
  opts o;
  char err[256];
  setenv("FLAGSTEST_NAME", "from-env", 1);
  setenv("FLAGSTEST_MAX_CONNS", "7", 1);
  setenv("FLAGSTEST_VERBOSE", "1", 1);
  setenv("FLAGSTEST_WORKERS", "", 1);  /* empty: unset, the default applies */
  setenv("FLAGSTEST_HELP", "true", 1); /* no_env: ignored */
  setenv("FLAGSTEST_TTL", "nope", 1);  /* bad, but the flag wins */
  assert_int_equal(parse(&o, (const char *[]){"--max-conns", "9", "--ttl", "1h", NULL}, err, sizeof(err)), WISP_OK);
  assert_string_equal(o.name, "from-env");
  assert_int_equal(o.conns, 9);
  assert_true(o.verbose);
  assert_int_equal(o.workers, 4);
  assert_false(o.help);
  assert_int_equal(o.ttl, 3600);
  wisp_flags_cleanup(&kTable, &o);
  /* A bad environment value is named by its flag. */
  assert_int_equal(parse(&o, (const char *[]){NULL}, err, sizeof(err)), WISP_ERR_USAGE);
  assert_string_equal(err, "--ttl nope: expected a duration of at least 600s");
  wisp_flags_cleanup(&kTable, &o);
  clear_env(NULL);
}

typedef struct {
  const char *args[4];
  const char *err;
} bad_case;

static const bad_case kBad[] = {
    {{"--workers", "0"}, "--workers: invalid value '0'"},
    {{"--workers", "65"}, "--workers: invalid value '65'"},
    {{"--workers", "4x"}, "--workers: invalid value '4x'"},
    {{"--workers", ""}, "--workers: invalid value ''"},
    {{"--max-conns", "0"}, "--max-conns 0: expected a number from 1 to 1000"},
    {{"--max-conns", "-5"}, "--max-conns -5: expected a number from 1 to 1000"},
    {{"--max-conns", "99999999999999999999"}, "--max-conns 99999999999999999999: expected a number from 1 to 1000"},
    {{"--timeout", "5s"}, "--timeout: invalid value '5s'"},
    {{"--timeout", "61"}, "--timeout: invalid value '61'"},
    {{"--timeout", "nan"}, "--timeout: invalid value 'nan'"},
    {{"--ttl", "5m"}, "--ttl 5m: expected a duration of at least 600s"},
    {{"--idle", "0s"}, "--idle 0s: expected a duration"},
    {{"--buffer", "12XB"}, "--buffer: invalid value '12XB'"},
    {{"--buffer", "1023"}, "--buffer: invalid value '1023'"},
    {{"--verbose=yes"}, "--verbose yes: expected true or false"},
    {{"--bogus"}, "unknown or incomplete flag '--bogus' (see --help)"},
    {{"--name"}, "unknown or incomplete flag '--name' (see --help)"},
    {{"-x"}, "unknown flag '-x' (see --help)"},
    {{"stray"}, "unexpected argument 'stray'"},
};

static void test_bad_values_name_the_flag(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(kBad) / sizeof(kBad[0]); i++) {
    opts o;
    char err[256];
    wisp_err rc = parse(&o, kBad[i].args, err, sizeof(err));
    if (rc != WISP_ERR_USAGE || strcmp(err, kBad[i].err) != 0)
      fail_msg("%s: rc %d, '%s', want '%s'", kBad[i].args[0], rc, err, kBad[i].err);
    wisp_flags_cleanup(&kTable, &o);
  }
}

static void test_sizes(void **state) {
  (void)state;
  static const struct {
    const char *in;
    size_t want; /* 0: refused */
  } kSizes[] = {{"1024", 1024},
                {"1K", 1024},
                {"1k", 1024},
                {"1KiB", 1024},
                {"16MiB", 16 << 20},
                {"4M", 4 << 20},
                {"4m", 4 << 20},
                {"1G", 1 << 30},
                {"1GiB", 1 << 30},
                {"2048B", 2048},
                {"1024G", 1ULL << 40},
                {"1025G", 0},
                {"0", 0},
                {"1023", 0},
                {"", 0},
                {"-1K", 0},
                {"+1K", 0},
                {" 1K", 0},
                {"1KB", 0},
                {"1T", 0},
                {"K", 0},
                {"1.5M", 0}};
  for (size_t i = 0; i < sizeof(kSizes) / sizeof(kSizes[0]); i++) {
    size_t got = 7;
    wisp_err rc = wisp_flags_parse_size(&got, kSizes[i].in, 1024, 1ULL << 40);
    if (kSizes[i].want && (rc != WISP_OK || got != kSizes[i].want))
      fail_msg("'%s': rc %d, %zu, want %zu", kSizes[i].in, rc, got, kSizes[i].want);
    if (!kSizes[i].want && (rc != WISP_ERR_PARSE || got != 7)) fail_msg("'%s': accepted as %zu", kSizes[i].in, got);
  }
}

static void test_env_name(void **state) {
  (void)state;
  char env[WISP_FLAGS_ENV_MAX];
  wisp_flags_env_name(env, sizeof(env), "WISP_", "connect-timeout");
  assert_string_equal(env, "WISP_CONNECT_TIMEOUT");
  wisp_flags_env_name(env, sizeof(env), "WISP_AGENT_", "state-dir");
  assert_string_equal(env, "WISP_AGENT_STATE_DIR");
  wisp_flags_env_name(env, 8, "WISP_", "admin");
  assert_string_equal(env, "WISP_AD"); /* truncated, terminated */
}

/* help: on its own the parse goes on (a bad flag after it still fails);
 * with help_stops it ends at once and leaves the rest unread. */
static void test_help(void **state) {
  (void)state;
  opts o;
  char err[256];
  assert_int_equal(parse(&o, (const char *[]){"-h", NULL}, err, sizeof(err)), WISP_OK);
  assert_true(o.help);
  assert_string_equal(o.name, "anon");
  wisp_flags_cleanup(&kTable, &o);
  assert_int_equal(parse(&o, (const char *[]){"--help", "--bogus", NULL}, err, sizeof(err)), WISP_ERR_USAGE);
  wisp_flags_cleanup(&kTable, &o);
  wisp_flags_table stops = kTable;
  stops.help_stops = true;
  assert_int_equal(parse_with(&stops, &o, (const char *[]){"--help", "--bogus", "stray", NULL}, err, sizeof(err)),
                   WISP_OK);
  assert_true(o.help);
  assert_null(o.name); /* no defaults applied */
  wisp_flags_cleanup(&stops, &o);
}

/* getopt keeps state between calls: a second parse starts afresh. */
static void test_parses_twice(void **state) {
  (void)state;
  opts o;
  char err[256];
  assert_int_equal(parse(&o, (const char *[]){"-xh", NULL}, err, sizeof(err)), WISP_ERR_USAGE);
  wisp_flags_cleanup(&kTable, &o);
  assert_int_equal(parse(&o, (const char *[]){"--workers", "2", NULL}, err, sizeof(err)), WISP_OK);
  assert_int_equal(o.workers, 2);
  assert_false(o.help);
  wisp_flags_cleanup(&kTable, &o);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_defaults, clear_env),
      cmocka_unit_test_setup(test_flags, clear_env),
      cmocka_unit_test_setup(test_custom_repeats, clear_env),
      cmocka_unit_test_setup(test_env_and_flag_over_env, clear_env),
      cmocka_unit_test_setup(test_bad_values_name_the_flag, clear_env),
      cmocka_unit_test(test_sizes),
      cmocka_unit_test(test_env_name),
      cmocka_unit_test_setup(test_help, clear_env),
      cmocka_unit_test_setup(test_parses_twice, clear_env),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
