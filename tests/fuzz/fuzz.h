/* What every fuzz target here shares: the libFuzzer entry point and CHECK,
 * which names the invariant that broke before it aborts (libFuzzer and the
 * replay tests both report an abort as a crash, with the input). */
#ifndef WISP_TESTS_FUZZ_H
#define WISP_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                   \
    }                                                                            \
  } while (0)

#endif
