#include "lib/wisp_state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/wisp_mem.h"

/* Temp files: ".<name>.<8 hex>.tmp"; tries this many names before giving
 * up (a clash means a leftover of a crashed write, or a concurrent one). */
#define WISP_STATE_TMP_TRIES 16

/* Writes "<what>: <strerror(errnum)>" (or just <what> if errnum is 0) to
 * |err|, sets errno back to |errnum| and returns |e|. */
static wisp_err wisp_state_fail(char *err, size_t err_len, wisp_err e, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static wisp_err wisp_state_fail(char *err, size_t err_len, wisp_err e, int errnum, const char *fmt, ...) {
  if (err && err_len > 0) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    if (errnum != 0 && n >= 0 && (size_t)n < err_len) {
      snprintf(err + n, err_len - (size_t)n, ": %s", strerror(errnum));
    }
  }
  errno = errnum;
  return e;
}

static bool wisp_state_name_ok(const char *name) {
  size_t len = strlen(name);
  if (len == 0 || len > WISP_STATE_NAME_MAX || name[0] == '.') return false;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

wisp_err wisp_state_ensure_dir(const char *dir, mode_t mode, char *err, size_t err_len) {
  mode = mode ? (mode & 07777) : WISP_STATE_DIR_MODE;
  uid_t me = geteuid();
  struct stat st;
  if (lstat(dir, &st) != 0) {
    if (errno != ENOENT) {
      return wisp_state_fail(err, err_len, WISP_ERR_IO, errno, "state dir %s", dir);
    }
    if (mkdir(dir, mode) != 0 && errno != EEXIST) {
      return wisp_state_fail(err, err_len, WISP_ERR_IO, errno, "create state dir %s", dir);
    }
    if (lstat(dir, &st) != 0) {
      return wisp_state_fail(err, err_len, WISP_ERR_IO, errno, "state dir %s", dir);
    }
  }
  if (S_ISLNK(st.st_mode)) {
    if (st.st_uid != me && st.st_uid != 0) {
      return wisp_state_fail(err, err_len, WISP_ERR_USAGE, 0,
                             "state dir %s is a symlink owned by uid %u, not by us (uid %u) "
                             "or root",
                             dir, (unsigned)st.st_uid, (unsigned)me);
    }
  } else if (!S_ISDIR(st.st_mode)) {
    return wisp_state_fail(err, err_len, WISP_ERR_USAGE, 0, "state dir %s is not a directory", dir);
  }

  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOTDIR) {
      return wisp_state_fail(err, err_len, WISP_ERR_USAGE, 0,
                             "state dir %s is a symlink to something that is not a directory", dir);
    }
    return wisp_state_fail(err, err_len, WISP_ERR_IO, errno, "open state dir %s", dir);
  }
  wisp_err e = WISP_OK;
  if (fstat(fd, &st) != 0) {
    e = wisp_state_fail(err, err_len, WISP_ERR_IO, errno, "state dir %s", dir);
  } else if (st.st_uid != me) {
    e = wisp_state_fail(err, err_len, WISP_ERR_USAGE, 0,
                        "state dir %s is owned by uid %u, not by us (uid %u): give a directory "
                        "of our own, e.g. a new subdirectory",
                        dir, (unsigned)st.st_uid, (unsigned)me);
  } else if ((st.st_mode & 07777) != mode && fchmod(fd, mode) != 0) {
    e = wisp_state_fail(err, err_len, WISP_ERR_IO, errno, "chmod %o state dir %s", (unsigned)mode, dir);
  }
  int saved = errno;
  close(fd);
  errno = saved;
  return e;
}

static bool wisp_state_write_all(int fd, const uint8_t *p, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) {
      errno = EIO;
      return false;
    }
    p += n;
    len -= (size_t)n;
  }
  return true;
}

/* Creates a new temp file next to |name| in |dfd|; its name goes to |tmp|. */
static int wisp_state_create_tmp(int dfd, const char *name, mode_t mode, char *tmp, size_t tmp_len) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint32_t x = (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec * 2654435761u ^ (uint32_t)getpid() << 16;
  for (int i = 0; i < WISP_STATE_TMP_TRIES; i++) {
    x = x * 1103515245u + 12345u;
    snprintf(tmp, tmp_len, ".%s.%08x.tmp", name, (unsigned)x);
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  return -1; /* errno is EEXIST */
}

wisp_err wisp_state_write(const char *dir, const char *name, const void *data, size_t len, mode_t mode, char *err,
                          size_t err_len) {
  if (!wisp_state_name_ok(name)) {
    return wisp_state_fail(err, err_len, WISP_ERR_USAGE, 0, "bad state file name \"%s\"", name);
  }
  mode = mode ? (mode & 0777) : WISP_STATE_FILE_MODE;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    return wisp_state_fail(err, err_len, WISP_ERR_IO, errno, "write %s: open state dir %s", name, dir);
  }
  char tmp[NAME_MAX + 1];
  const char *step;
  int fd = wisp_state_create_tmp(dfd, name, mode, tmp, sizeof(tmp));
  if (fd < 0) {
    int saved = errno;
    close(dfd);
    return wisp_state_fail(err, err_len, WISP_ERR_IO, saved, "write %s in %s: create temp file", name, dir);
  }
  /* The mode asked for, whatever the umask took away at creation. */
  step = "chmod temp file";
  if (fchmod(fd, mode) != 0) goto fail;
  step = "write temp file";
  if (!wisp_state_write_all(fd, data, len)) goto fail;
  step = "fsync temp file";
  if (fsync(fd) != 0) goto fail;
  step = "close temp file";
  int rc = close(fd);
  fd = -1;
  if (rc != 0) goto fail;
  step = "rename temp file";
  if (renameat(dfd, tmp, dfd, name) != 0) goto fail;
  if (fsync(dfd) != 0) {
    wisp_err e = wisp_state_fail(err, err_len, WISP_ERR_IO, errno,
                                 "write %s in %s: fsync dir (new content in place, may not be "
                                 "durable)",
                                 name, dir);
    int saved = errno;
    close(dfd);
    errno = saved;
    return e;
  }
  close(dfd);
  return WISP_OK;

fail : {
  int saved = errno;
  if (fd >= 0) close(fd);
  unlinkat(dfd, tmp, 0);
  close(dfd);
  return wisp_state_fail(err, err_len, WISP_ERR_IO, saved, "write %s in %s: %s", name, dir, step);
}
}

wisp_err wisp_state_read(const char *dir, const char *name, size_t max_len, uint8_t **out, size_t *out_len, char *err,
                         size_t err_len) {
  *out = NULL;
  *out_len = 0;
  if (!wisp_state_name_ok(name)) {
    return wisp_state_fail(err, err_len, WISP_ERR_USAGE, 0, "bad state file name \"%s\"", name);
  }
  if (max_len > SIZE_MAX / 2) max_len = SIZE_MAX / 2;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    return wisp_state_fail(err, err_len, WISP_ERR_IO, errno, "read %s: open state dir %s", name, dir);
  }
  /* O_NONBLOCK: a FIFO planted here must not hang us before the check. */
  int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  int saved = errno;
  close(dfd);
  if (fd < 0) {
    if (saved == ELOOP) {
      return wisp_state_fail(err, err_len, WISP_ERR_USAGE, 0, "read %s in %s: is a symlink", name, dir);
    }
    return wisp_state_fail(err, err_len, WISP_ERR_IO, saved, "read %s in %s", name, dir);
  }

  wisp_err e = WISP_OK;
  uint8_t *buf = NULL;
  size_t n = 0;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    e = wisp_state_fail(err, err_len, WISP_ERR_IO, errno, "read %s in %s: stat", name, dir);
    goto done;
  }
  if (!S_ISREG(st.st_mode)) {
    e = wisp_state_fail(err, err_len, WISP_ERR_USAGE, 0, "read %s in %s: not a regular file", name, dir);
    goto done;
  }
  if ((uint64_t)st.st_size > max_len) {
    e = wisp_state_fail(err, err_len, WISP_ERR_TOO_BIG, 0, "read %s in %s: %lld bytes, more than the %zu allowed", name,
                        dir, (long long)st.st_size, max_len);
    goto done;
  }
  /* One spare byte: the NUL, or the sign that the file grew since fstat. */
  size_t cap = (size_t)st.st_size + 1;
  buf = wisp_malloc(cap);
  for (;;) {
    if (n == cap) {
      if (cap > max_len) {
        e = wisp_state_fail(err, err_len, WISP_ERR_TOO_BIG, 0, "read %s in %s: more than the %zu bytes allowed", name,
                            dir, max_len);
        goto done;
      }
      cap = cap * 2 > max_len + 1 ? max_len + 1 : cap * 2;
      buf = wisp_realloc(buf, cap);
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0) {
      if (errno == EINTR) continue;
      e = wisp_state_fail(err, err_len, WISP_ERR_IO, errno, "read %s in %s", name, dir);
      goto done;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  if (n == cap) buf = wisp_realloc(buf, n + 1);
  buf[n] = '\0';

done:
  saved = errno;
  close(fd);
  if (e != WISP_OK) {
    free(buf);
    errno = saved;
    return e;
  }
  *out = buf;
  *out_len = n;
  return WISP_OK;
}
