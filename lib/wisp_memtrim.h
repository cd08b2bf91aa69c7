/* wisp_memtrim: memory back to the system once a burst is over.
 *
 * After a burst (thousands of connections or streams at once) glibc's
 * malloc keeps the freed memory in its arenas and wisp_slab keeps chunks on
 * its freelists: RSS stays at the burst's peak although nothing is held
 * (a client proxy at 52 MB RSS idle after one, 5.8 MB before). RSS is what
 * `kubectl top` shows and what a memory limit kills on.
 *
 * wisp_memtrim_due is asked on a periodic tick the proxy has anyway (once a
 * second, per worker; no timer and no work per request): it compares a
 * counter of what the worker did (accepted connections plus requests)
 * with its value at the last tick, and the worker's live connections with
 * their peak. Memory is given back (wisp_memtrim_run) once per calm
 * spell, on a tick that saw no new connection or request (1 to 2 s after
 * the last), when since the last give-back there was some, or the live
 * connections fell far below their peak (callers held idle let go at
 * --idle-timeout, with no request to count). Only then: giving back
 * 190 MB took up to half a second of CPU (malloc_trim madvises every free
 * page away under its arena's lock), a stall not to put on a busy loop. A
 * steady trickle of requests after a burst (never a calm second) so keeps
 * what the burst left until it pauses. wisp_memtrim_due is pure (no clock,
 * no globals) and unit-tested alone. */
#ifndef WISP_MEMTRIM_H
#define WISP_MEMTRIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Live connections fell far: to a quarter of their peak and by at least
 * this many (fewer hold too little memory to be worth a trim: an idle
 * connection is about 30 KB). */
#define WISP_MEMTRIM_CONN_DROP 64
/* What wisp_memtrim_run leaves on this thread's freelists: nothing. A
 * cached chunk pins the page it is on, which malloc_trim could otherwise
 * give back (64 KiB of 48-byte chunks may pin hundreds of pages), and
 * after a calm second the next requests refill the lists in a few
 * allocations. */
#define WISP_MEMTRIM_SLAB_KEEP 0

typedef struct {
  uint64_t seen;     /* the activity counter at the last tick (zeroed: at the start) */
  bool active;       /* it moved since the last give-back */
  size_t peak_conns; /* the most live connections seen at a tick since then */
} wisp_memtrim;

/* One tick: |activity| is the worker's running count of accepted
 * connections and requests since it started, |conns| its live connections
 * now. True when
 * memory should be given back now (then call wisp_memtrim_run). */
bool wisp_memtrim_due(wisp_memtrim *m, uint64_t activity, size_t conns);

/* What a give-back took: elapsed, and this thread's CPU time. */
typedef struct {
  double wall_us, cpu_us;
} wisp_memtrim_cost;

/* Gives memory back: frees this thread's slab freelists down to
 * WISP_MEMTRIM_SLAB_KEEP, then malloc_trim(0) (glibc: every arena, each
 * under its own lock, so it is safe on any thread beside others that
 * allocate; it walks the free chunks and madvises their pages away, so at
 * most once per calm spell; a worker that finds another's under way skips
 * it). */
wisp_memtrim_cost wisp_memtrim_run(void);

#endif
