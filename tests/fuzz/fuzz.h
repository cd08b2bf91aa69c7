/* What every fuzz target here shares: the libFuzzer entry point and CHECK,
 * which names the invariant that broke before it aborts (libFuzzer and the
 * replay tests both report an abort as a crash, with the input). */
#ifndef WISP_TESTS_FUZZ_H
#define WISP_TESTS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                     \
    }                                                                              \
  } while (0)

/* RFC 9110 tchar (a method or header name character), written apart from
 * the modules on purpose: the targets check them against it. */
static inline bool fuzz_is_tchar(uint8_t c) {
  static const char kPunct[] = "!#$%&'*+-.^_`|~";
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  if (c >= '0' && c <= '9') return true;
  for (const char *p = kPunct; *p; p++)
    if (c == (uint8_t)*p) return true;
  return false;
}

#endif
