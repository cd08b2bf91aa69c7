#include "lib/wisp_memtrim.h"

#include <stdatomic.h>
#include <time.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "lib/wisp_slab.h"

bool wisp_memtrim_due(wisp_memtrim *m, uint64_t activity, size_t conns) {
  bool quiet = activity == m->seen;
  m->seen = activity;
  if (!quiet) m->active = true;
  if (conns > m->peak_conns) m->peak_conns = conns;
  if (!quiet) return false;
  bool fell = conns + WISP_MEMTRIM_CONN_DROP <= m->peak_conns && conns <= m->peak_conns / 4;
  if (!m->active && !fell) return false;
  /* A new spell starts from here: the next give-back needs new activity
   * (or a new fall from the connections held now). */
  m->active = false;
  m->peak_conns = conns;
  return true;
}

static double now_us(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

wisp_memtrim_cost wisp_memtrim_run(void) {
  double wall = now_us(CLOCK_MONOTONIC), cpu = now_us(CLOCK_THREAD_CPUTIME_ID);
  wisp_slab_trim(WISP_MEMTRIM_SLAB_KEEP);
#if defined(__GLIBC__)
  /* One at a time: workers calm at the same moment would each walk every
   * arena, and wait on each other's arena locks to do it. One that finds
   * a trim under way leaves it to that one. */
  static atomic_flag busy = ATOMIC_FLAG_INIT;
  if (!atomic_flag_test_and_set(&busy)) {
    malloc_trim(0);
    atomic_flag_clear(&busy);
  }
#endif
  return (wisp_memtrim_cost){.wall_us = now_us(CLOCK_MONOTONIC) - wall,
                             .cpu_us = now_us(CLOCK_THREAD_CPUTIME_ID) - cpu};
}
