#include "lib/wisp_flags.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_mem.h"
#include "lib/wisp_time.h"

/* getopt_long's value for row i: above every short option character and
 * '?', so a long table never collides with them. */
#define ROW_VAL_BASE 1000

static bool takes_no_arg(const wisp_flag *f) { return f->kind == WISP_FLAG_BOOL || f->kind == WISP_FLAG_HELP; }

wisp_err wisp_flags_parse_size(size_t *out, const char *val, unsigned long long min, unsigned long long max) {
  static const struct {
    const char *unit;
    unsigned shift;
  } kUnits[] = {{"", 0},   {"B", 0},    {"K", 10}, {"k", 10}, {"KiB", 10}, {"M", 20},
                {"m", 20}, {"MiB", 20}, {"G", 30}, {"g", 30}, {"GiB", 30}};
  if (!isdigit((unsigned char)val[0])) return WISP_ERR_PARSE;
  char *end = NULL;
  errno = 0;
  unsigned long long n = strtoull(val, &end, 10);
  if (errno) return WISP_ERR_PARSE;
  for (size_t i = 0; i < sizeof(kUnits) / sizeof(kUnits[0]); i++) {
    if (strcmp(end, kUnits[i].unit) != 0) continue;
    if (n > max >> kUnits[i].shift || (n << kUnits[i].shift) < min) return WISP_ERR_PARSE;
    *out = (size_t)(n << kUnits[i].shift);
    return WISP_OK;
  }
  return WISP_ERR_PARSE;
}

static bool parse_number(long long *out, const char *val, long long min, long long max) {
  char *end = NULL;
  errno = 0;
  long long n = strtoll(val, &end, 10);
  if (errno || end == val || *end || n < min || n > max) return false;
  *out = n;
  return true;
}

/* Converts |val| into the field of |f|; false: not a valid value. */
static bool convert(const wisp_flag *f, char *field, const char *val) {
  long long n;
  switch (f->kind) {
    case WISP_FLAG_STR:
      free(*(char **)field);
      *(char **)field = wisp_strdup(val);
      return true;
    case WISP_FLAG_BOOL:
    case WISP_FLAG_HELP:
      if (strcmp(val, "true") != 0 && strcmp(val, "1") != 0 && strcmp(val, "false") != 0 && strcmp(val, "0") != 0)
        return false;
      *(bool *)field = strcmp(val, "true") == 0 || strcmp(val, "1") == 0;
      return true;
    case WISP_FLAG_INT:
      if (!parse_number(&n, val, f->min, f->max)) return false;
      *(int *)field = (int)n;
      return true;
    case WISP_FLAG_COUNT:
      if (!parse_number(&n, val, f->min, f->max)) return false;
      *(size_t *)field = (size_t)n;
      return true;
    case WISP_FLAG_SECONDS: {
      char *end = NULL;
      double d = strtod(val, &end);
      if (end == val || *end || !(d >= (double)f->min && d <= (double)f->max)) return false; /* NaN too */
      *(double *)field = d;
      return true;
    }
    case WISP_FLAG_DURATION: {
      int64_t s;
      if (wisp_duration_parse(&s, val) != WISP_OK || s < f->min) return false;
      *(int64_t *)field = s;
      return true;
    }
    case WISP_FLAG_DURATION_F: {
      double d;
      if (wisp_duration_parse_seconds(&d, val) != WISP_OK || d < (double)f->min) return false;
      *(double *)field = d;
      return true;
    }
    case WISP_FLAG_SIZE:
      return wisp_flags_parse_size((size_t *)field, val, (unsigned long long)f->min, (unsigned long long)f->max) ==
             WISP_OK;
    case WISP_FLAG_CUSTOM:
      return false; /* set_one calls |set| */
  }
  return false;
}

static wisp_err set_one(const wisp_flag *f, void *out, const char *val, char *err, size_t err_len) {
  if (f->kind == WISP_FLAG_CUSTOM) return f->set(out, val, err, err_len);
  if (convert(f, (char *)out + f->off, val)) return WISP_OK;
  const char *expect = f->expect ? f->expect : f->kind == WISP_FLAG_BOOL ? "true or false" : NULL;
  if (expect) {
    snprintf(err, err_len, "--%s %s: expected %s", f->name, val, expect);
  } else {
    snprintf(err, err_len, "--%s: invalid value '%s'", f->name, val);
  }
  return WISP_ERR_USAGE;
}

void wisp_flags_env_name(char *out, size_t out_len, const char *prefix, const char *flag) {
  if (out_len == 0) return;
  size_t o = 0;
  for (const char *p = prefix; *p && o + 1 < out_len; p++) out[o++] = *p;
  for (; *flag && o + 1 < out_len; flag++) out[o++] = *flag == '-' ? '_' : (char)toupper((unsigned char)*flag);
  out[o] = '\0';
}

static wisp_err unknown_flag(const wisp_flags_table *t, char **argv, char *err, size_t err_len) {
  const char *arg = argv[optind - 1];
  if (strncmp(arg, "--", 2) != 0 && optopt > 0 && optopt < 256) {
    snprintf(err, err_len, "unknown flag '-%c'%s", optopt, t->unknown_hint);
  } else {
    snprintf(err, err_len, "unknown or incomplete flag '%s'%s", arg, t->unknown_hint);
  }
  return WISP_ERR_USAGE;
}

/* The command line; |seen| marks the rows it gave. *out_stop: a HELP flag
 * ended it (help_stops). */
static wisp_err parse_argv(const wisp_flags_table *t, void *out, int argc, char **argv, bool *seen, bool *out_stop,
                           char *err, size_t err_len) {
  struct option *longopts = wisp_calloc(t->nflags + 1, sizeof(*longopts));
  int help_row = -1;
  for (size_t i = 0; i < t->nflags; i++) {
    const wisp_flag *f = &t->flags[i];
    /* A boolean is --name (true) or --name=false: a default of true can be turned off on the command line. */
    int has_arg = f->kind == WISP_FLAG_BOOL ? optional_argument : takes_no_arg(f) ? no_argument : required_argument;
    longopts[i] = (struct option){f->name, has_arg, NULL, ROW_VAL_BASE + (int)i};
    if (f->kind == WISP_FLAG_HELP) help_row = (int)i;
  }
  optind = 0; /* 0, not 1: also resets getopt's position inside a short-option cluster */
  opterr = 0;
  wisp_err rc = WISP_OK;
  int val;
  while (rc == WISP_OK && (val = getopt_long(argc, argv, help_row >= 0 ? "h" : "", longopts, NULL)) != -1) {
    if (val == 'h' && help_row >= 0) val = ROW_VAL_BASE + help_row;
    if (val < ROW_VAL_BASE || val >= ROW_VAL_BASE + (int)t->nflags) {
      rc = unknown_flag(t, argv, err, err_len);
      break;
    }
    const wisp_flag *f = &t->flags[val - ROW_VAL_BASE];
    rc = set_one(f, out, takes_no_arg(f) && !optarg ? "true" : optarg, err, err_len);
    seen[val - ROW_VAL_BASE] = true;
    if (rc == WISP_OK && f->kind == WISP_FLAG_HELP && t->help_stops) {
      *out_stop = true;
      break;
    }
  }
  if (rc == WISP_OK && !*out_stop && optind < argc) {
    snprintf(err, err_len, "unexpected argument '%s'%s", argv[optind], t->extra_hint);
    rc = WISP_ERR_USAGE;
  }
  free(longopts);
  return rc;
}

wisp_err wisp_flags_parse(const wisp_flags_table *t, void *out, int argc, char **argv, char *err, size_t err_len) {
  bool *seen = wisp_calloc(t->nflags ? t->nflags : 1, sizeof(*seen));
  bool stop = false;
  wisp_err rc = parse_argv(t, out, argc, argv, seen, &stop, err, err_len);
  for (size_t i = 0; rc == WISP_OK && !stop && i < t->nflags; i++) {
    const wisp_flag *f = &t->flags[i];
    if (seen[i]) continue;
    char env[WISP_FLAGS_ENV_MAX];
    wisp_flags_env_name(env, sizeof(env), t->env_prefix, f->name);
    const char *val = f->no_env ? NULL : getenv(env);
    if (val && *val) {
      rc = set_one(f, out, val, err, err_len);
    } else if (f->dflt) {
      rc = set_one(f, out, f->dflt, err, err_len);
    }
  }
  free(seen);
  return rc;
}

void wisp_flags_cleanup(const wisp_flags_table *t, void *out) {
  for (size_t i = 0; i < t->nflags; i++) {
    if (t->flags[i].kind != WISP_FLAG_STR) continue;
    char **p = (char **)((char *)out + t->flags[i].off);
    free(*p);
    *p = NULL;
  }
}
