#include "lib/wisp_filewatch.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/wisp_mem.h"

static wisp_err stamp(wisp_file_stamp *out, const char *path) {
  struct stat st;
  WISP_ENSURE(stat(path, &st) == 0, WISP_ERR_IO);
  out->ino = st.st_ino;
  out->size = st.st_size;
  out->mtime = st.st_mtim;
  return WISP_OK;
}

static bool differs(const wisp_file_stamp *a, const wisp_file_stamp *b) {
  return a->ino != b->ino || a->size != b->size || a->mtime.tv_sec != b->mtime.tv_sec ||
         a->mtime.tv_nsec != b->mtime.tv_nsec;
}

wisp_err wisp_filewatch_init(wisp_filewatch *out, const char *const *paths, size_t n, size_t *out_failed) {
  if (n > WISP_FILEWATCH_MAX) {
    *out_failed = n;
    return WISP_ERR_USAGE;
  }
  wisp_file_stamp stamps[WISP_FILEWATCH_MAX];
  for (size_t i = 0; i < n; i++) {
    if (stamp(&stamps[i], paths[i]) != WISP_OK) {
      *out_failed = i;
      return WISP_ERR_IO;
    }
  }
  memset(out, 0, sizeof(*out));
  for (size_t i = 0; i < n; i++) {
    out->paths[i] = wisp_strdup(paths[i]);
    out->stamps[i] = stamps[i];
  }
  out->n = n;
  return WISP_OK;
}

void wisp_filewatch_cleanup(wisp_filewatch *w) {
  for (size_t i = 0; i < w->n; i++) free(w->paths[i]);
  memset(w, 0, sizeof(*w));
}

const char *wisp_filewatch_get0_path(const wisp_filewatch *w, size_t i) { return i < w->n ? w->paths[i] : NULL; }

bool wisp_filewatch_changed(wisp_filewatch *w) {
  wisp_file_stamp now[WISP_FILEWATCH_MAX];
  bool changed = false;
  for (size_t i = 0; i < w->n; i++) {
    if (stamp(&now[i], w->paths[i]) != WISP_OK) return false;
    changed = changed || differs(&now[i], &w->stamps[i]);
  }
  if (changed) memcpy(w->stamps, now, w->n * sizeof(now[0]));
  return changed;
}
