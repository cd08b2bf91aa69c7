/* wisp_filewatch: have some files changed since we last looked? The one
 * file-change watcher of the tree: the TLS credential files (lib/wisp_tls)
 * and --policy FILE (proxy/control/wisp_authz_load) are polled through it. Polling by
 * stat(2), not inotify: it also sees a file replaced by rename (a new
 * inode: Kubernetes swaps its ..data symlink so) and a file rewritten in
 * place (size or mtime to the nanosecond), on every file system.
 *
 * Caller-allocated; a zeroed watch watches nothing and is valid; it owns
 * copies of its paths until wisp_filewatch_cleanup. No callbacks: the owner
 * polls from its own timer and decides what to do with a change. */
#ifndef WISP_FILEWATCH_H
#define WISP_FILEWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "lib/wisp_err.h"

#define WISP_FILEWATCH_MAX 4

typedef struct {
  ino_t ino;
  off_t size;
  struct timespec mtime;
} wisp_file_stamp;

typedef struct {
  size_t n;
  char *paths[WISP_FILEWATCH_MAX]; /* owned copies */
  wisp_file_stamp stamps[WISP_FILEWATCH_MAX];
} wisp_filewatch;

/* Stats |n| files into |out| (zeroed or cleaned up): what later changes
 * are judged against. Take the stamps before reading the files, so that a
 * change made while they are read is seen at the next poll. On failure
 * |out| is untouched: WISP_ERR_IO when a file cannot be stat'ed (errno says
 * why, |*out_failed| is its index), WISP_ERR_USAGE when |n| is more than
 * WISP_FILEWATCH_MAX (|*out_failed| is |n|). */
wisp_err wisp_filewatch_init(wisp_filewatch *out, const char *const *paths, size_t n,
                             size_t *out_failed) WISP_MUST_CHECK;
/* Frees the path copies; |w| is zeroed (watches nothing) again. */
void wisp_filewatch_cleanup(wisp_filewatch *w);
/* Path |i| (borrowed from |w|), or NULL past the last. */
const char *wisp_filewatch_get0_path(const wisp_filewatch *w, size_t i);
/* True when every file exists and one differs from its stamp; the stamps
 * are then the new ones, so one change is reported once (a file that is
 * broken stays reported once, not at every poll). A file missing for a
 * moment (mid-rotation) is not a change yet: the stamps are kept. */
bool wisp_filewatch_changed(wisp_filewatch *w);

#endif
