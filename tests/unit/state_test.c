/* Unit tests for lib/wisp_state, in $TEST_TMPDIR: round trips, exact modes
 * whatever the umask, the state dir checks, atomic overwrite (the old
 * content survives a write that fails half-way, and no temp file is left),
 * the read bound, missing files and names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <linux/capability.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/wisp_state.h"
#include "tests/unit/test_util.h"

/* Someone who is not us, for the ownership checks (needs root to use). */
#define OTHER_UID 65534

typedef struct {
  char dir[512]; /* a fresh, empty state dir for this test */
} fixture;

static int setup(void **state) {
  static unsigned counter;
  fixture *f = calloc(1, sizeof(*f));
  if (!f) return -1;
  const char *base = getenv("TEST_TMPDIR");
  if (!base || !*base) base = "/tmp";
  snprintf(f->dir, sizeof(f->dir), "%s/state_test.%d.%u", base, (int)getpid(), counter++);
  if (mkdir(f->dir, 0700) != 0) {
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

static void rm_rf(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    chmod(path, 0700);
    DIR *d = opendir(path);
    if (d) {
      struct dirent *e;
      while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char sub[1024];
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        rm_rf(sub);
      }
      closedir(d);
    }
    rmdir(path);
  } else {
    unlink(path);
  }
}

static int teardown(void **state) {
  fixture *f = *state;
  rm_rf(f->dir);
  free(f);
  return 0;
}

static void path_of(char *out, size_t out_len, const char *dir, const char *name) {
  snprintf(out, out_len, "%s/%s", dir, name);
}

static mode_t mode_of(const char *path) {
  struct stat st;
  assert_int_equal(lstat(path, &st), 0);
  return st.st_mode & 07777;
}

/* Entries of |dir| other than . and ..; fails the test on any temp file. */
static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (e->d_name[0] == '.') fail_msg("temp file left behind: %s", e->d_name);
    n++;
  }
  closedir(d);
  return n;
}

static void write_raw(const char *path, const char *data) {
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fputs(data, fp);
  assert_int_equal(fclose(fp), 0);
}

/* Reads |name| and checks it holds exactly |want_len| bytes of |want|. */
static void assert_content(const char *dir, const char *name, const void *want, size_t want_len) {
  uint8_t *got = NULL;
  size_t got_len = 99;
  char err[256] = "";
  wisp_err e = wisp_state_read(dir, name, 1 << 20, &got, &got_len, err, sizeof(err));
  if (e != WISP_OK) fail_msg("read %s: %d (%s)", name, e, err);
  assert_non_null(got);
  assert_int_equal(got_len, want_len);
  if (want_len) assert_memory_equal(got, want, want_len);
  assert_int_equal(got[got_len], '\0');
  free(got);
}

/* ---- write / read ---- */

static void test_round_trip(void **state) {
  fixture *f = *state;
  char err[256];
  assert_int_equal(wisp_state_write(f->dir, "ca.key", "secret key", 10, 0, err, sizeof(err)), WISP_OK);
  assert_content(f->dir, "ca.key", "secret key", 10);
  char p[600];
  path_of(p, sizeof(p), f->dir, "ca.key");
  assert_int_equal(mode_of(p), 0600);
  assert_int_equal(count_entries(f->dir), 1);

  /* Binary data with NULs, and an empty file. */
  static const uint8_t bin[] = {0, 1, 2, 0, 255, 0};
  assert_int_equal(wisp_state_write(f->dir, "bin", bin, sizeof(bin), 0, NULL, 0), WISP_OK);
  assert_content(f->dir, "bin", bin, sizeof(bin));
  assert_int_equal(wisp_state_write(f->dir, "empty", NULL, 0, 0, NULL, 0), WISP_OK);
  assert_content(f->dir, "empty", "", 0);

  /* A larger file, written and read in more than one system call's worth. */
  size_t big_len = 3u << 20;
  uint8_t *big = malloc(big_len);
  assert_non_null(big);
  for (size_t i = 0; i < big_len; i++) big[i] = (uint8_t)(i * 13 + (i >> 12));
  assert_int_equal(wisp_state_write(f->dir, "big", big, big_len, 0, NULL, 0), WISP_OK);
  uint8_t *got;
  size_t got_len;
  assert_int_equal(wisp_state_read(f->dir, "big", big_len, &got, &got_len, NULL, 0), WISP_OK);
  assert_int_equal(got_len, big_len);
  assert_memory_equal(got, big, big_len);
  free(got);
  free(big);
  assert_int_equal(count_entries(f->dir), 4);
}

/* The mode is exactly what was asked for, whatever the umask. */
static void test_modes_ignore_umask(void **state) {
  fixture *f = *state;
  static const struct {
    mode_t umask;
    mode_t mode;
    mode_t want;
  } cases[] = {
      {022, 0, 0600},    {077, 0, 0600},  {0, 0, 0600},       {077, 0644, 0644},
      {022, 0640, 0640}, {0, 0400, 0400}, {077, 04755, 0755}, /* no set-id bits */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    mode_t old = umask(cases[i].umask);
    char name[32], p[600];
    snprintf(name, sizeof(name), "f%zu", i);
    wisp_err e = wisp_state_write(f->dir, name, "x", 1, cases[i].mode, NULL, 0);
    umask(old);
    assert_int_equal(e, WISP_OK);
    path_of(p, sizeof(p), f->dir, name);
    if (mode_of(p) != cases[i].want) {
      fail_msg("umask %03o mode %04o: got %04o, want %04o", (unsigned)cases[i].umask, (unsigned)cases[i].mode,
               (unsigned)mode_of(p), (unsigned)cases[i].want);
    }
  }
  /* Overwriting also sets the mode: the new file replaces the old one. */
  char p[600];
  path_of(p, sizeof(p), f->dir, "f0");
  assert_int_equal(chmod(p, 0666), 0);
  assert_int_equal(wisp_state_write(f->dir, "f0", "y", 1, 0, NULL, 0), WISP_OK);
  assert_int_equal(mode_of(p), 0600);
}

static void test_overwrite(void **state) {
  fixture *f = *state;
  assert_int_equal(wisp_state_write(f->dir, "policy.yaml", "version: 1\n", 11, 0, NULL, 0), WISP_OK);
  char p[600];
  path_of(p, sizeof(p), f->dir, "policy.yaml");
  struct stat before;
  assert_int_equal(stat(p, &before), 0);
  assert_int_equal(wisp_state_write(f->dir, "policy.yaml", "v2", 2, 0, NULL, 0), WISP_OK);
  assert_content(f->dir, "policy.yaml", "v2", 2);
  /* Replaced by rename: a new inode, so an open reader keeps the old one. */
  struct stat after;
  assert_int_equal(stat(p, &after), 0);
  assert_true(before.st_ino != after.st_ino);
  assert_int_equal(count_entries(f->dir), 1);
}

/* A write that fails half-way (the file size limit stops write(2) with
 * EFBIG after the temp file exists) leaves the old content intact and no
 * temp file behind. Works as root too, unlike a read-only directory. */
static void test_failed_write_keeps_old_content(void **state) {
  fixture *f = *state;
  assert_int_equal(wisp_state_write(f->dir, "tokens", "old tokens", 10, 0, NULL, 0), WISP_OK);

  size_t len = 256 * 1024;
  char *data = malloc(len);
  assert_non_null(data);
  memset(data, 'n', len);
  struct rlimit old_lim, lim;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old_lim), 0);
  lim = old_lim;
  lim.rlim_cur = 4096;
  void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
  char err[256] = "";
  wisp_err e = wisp_state_write(f->dir, "tokens", data, len, 0, err, sizeof(err));
  int saved = errno;
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old_lim), 0);
  signal(SIGXFSZ, old_sig);
  free(data);

  assert_int_equal(e, WISP_ERR_IO);
  assert_int_equal(saved, EFBIG);
  assert_non_null(strstr(err, "tokens"));
  assert_non_null(strstr(err, "write temp file"));
  assert_content(f->dir, "tokens", "old tokens", 10);
  assert_int_equal(count_entries(f->dir), 1);
}

/* The rename fails (the target is a directory): nothing changes, the temp
 * file is removed. */
static void test_failed_rename_cleans_up(void **state) {
  fixture *f = *state;
  char p[600];
  path_of(p, sizeof(p), f->dir, "ca.crt");
  assert_int_equal(mkdir(p, 0700), 0);
  char err[256] = "";
  assert_int_equal(wisp_state_write(f->dir, "ca.crt", "cert", 4, 0, err, sizeof(err)), WISP_ERR_IO);
  assert_int_equal(errno, EISDIR);
  assert_non_null(strstr(err, "rename"));
  struct stat st;
  assert_int_equal(lstat(p, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(count_entries(f->dir), 1);
}

/* Drops the capabilities that let root ignore file modes, for this
 * process only (a forked child). */
static bool drop_dac_override(void) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &hdr, data) != 0) return false;
  unsigned drop = 1u << CAP_DAC_OVERRIDE | 1u << CAP_DAC_READ_SEARCH | 1u << CAP_FOWNER;
  data[0].effective &= ~drop;
  return syscall(SYS_capset, &hdr, data) == 0;
}

/* A directory we may not write to: the write fails before anything
 * changes. Root ignores the mode bits, so as root the write is tried by a
 * child without CAP_DAC_OVERRIDE. */
static void test_read_only_dir(void **state) {
  fixture *f = *state;
  assert_int_equal(wisp_state_write(f->dir, "ca.key", "old", 3, 0, NULL, 0), WISP_OK);
  assert_int_equal(chmod(f->dir, 0500), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (geteuid() == 0 && !drop_dac_override()) _exit(10);
    wisp_err e = wisp_state_write(f->dir, "ca.key", "new", 3, 0, NULL, 0);
    _exit(e == WISP_ERR_IO && errno == EACCES ? 0 : 11);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_int_equal(chmod(f->dir, 0700), 0);
  assert_content(f->dir, "ca.key", "old", 3);
  assert_int_equal(count_entries(f->dir), 1);
}

static void test_bad_names(void **state) {
  fixture *f = *state;
  char long_name[WISP_STATE_NAME_MAX + 2];
  memset(long_name, 'a', sizeof(long_name) - 1);
  long_name[sizeof(long_name) - 1] = '\0';
  const char *bad[] = {
      "", ".", "..", ".hidden", "../escape", "a/b", "/abs", "a b", "a\nb", "tab\t", "caf\xc3\xa9", long_name,
  };
  assert_int_equal(wisp_state_write(f->dir, "ok", "old", 3, 0, NULL, 0), WISP_OK);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char err[256] = "";
    if (wisp_state_write(f->dir, bad[i], "x", 1, 0, err, sizeof(err)) != WISP_ERR_USAGE) {
      fail_msg("write \"%s\" was not refused", bad[i]);
    }
    assert_non_null(strstr(err, "bad state file name"));
    uint8_t *out = (uint8_t *)"sentinel";
    size_t out_len = 99;
    assert_int_equal(wisp_state_read(f->dir, bad[i], 100, &out, &out_len, NULL, 0), WISP_ERR_USAGE);
    assert_null(out);
    assert_int_equal(out_len, 0);
  }
  assert_content(f->dir, "ok", "old", 3);
  assert_int_equal(count_entries(f->dir), 1);

  /* The longest name allowed works, and so do the allowed characters. */
  long_name[WISP_STATE_NAME_MAX] = '\0';
  assert_int_equal(wisp_state_write(f->dir, long_name, "L", 1, 0, NULL, 0), WISP_OK);
  assert_content(f->dir, long_name, "L", 1);
  assert_int_equal(wisp_state_write(f->dir, "A-z_0.9", "c", 1, 0, NULL, 0), WISP_OK);
  assert_content(f->dir, "A-z_0.9", "c", 1);
}

static void test_read_bound(void **state) {
  fixture *f = *state;
  char data[100];
  memset(data, 'd', sizeof(data));
  assert_int_equal(wisp_state_write(f->dir, "hundred", data, sizeof(data), 0, NULL, 0), WISP_OK);
  uint8_t *out;
  size_t out_len;
  char err[256] = "";
  assert_int_equal(wisp_state_read(f->dir, "hundred", 100, &out, &out_len, err, sizeof(err)), WISP_OK);
  assert_int_equal(out_len, 100);
  free(out);
  out = (uint8_t *)"sentinel";
  out_len = 99;
  assert_int_equal(wisp_state_read(f->dir, "hundred", 99, &out, &out_len, err, sizeof(err)), WISP_ERR_TOO_BIG);
  assert_null(out);
  assert_int_equal(out_len, 0);
  assert_non_null(strstr(err, "hundred"));
  assert_int_equal(wisp_state_read(f->dir, "hundred", 0, &out, &out_len, NULL, 0), WISP_ERR_TOO_BIG);
  /* An empty file fits a bound of 0. */
  assert_int_equal(wisp_state_write(f->dir, "empty", "", 0, 0, NULL, 0), WISP_OK);
  assert_int_equal(wisp_state_read(f->dir, "empty", 0, &out, &out_len, NULL, 0), WISP_OK);
  assert_non_null(out);
  assert_int_equal(out_len, 0);
  assert_int_equal(out[0], '\0');
  free(out);
  /* A huge bound does not overflow anything. */
  assert_int_equal(wisp_state_read(f->dir, "hundred", SIZE_MAX, &out, &out_len, NULL, 0), WISP_OK);
  assert_int_equal(out_len, 100);
  free(out);
}

static void test_read_missing(void **state) {
  fixture *f = *state;
  uint8_t *out = (uint8_t *)"sentinel";
  size_t out_len = 99;
  char err[256] = "";
  errno = 0;
  assert_int_equal(wisp_state_read(f->dir, "ca.key", 4096, &out, &out_len, err, sizeof(err)), WISP_ERR_IO);
  assert_int_equal(errno, ENOENT);
  assert_null(out);
  assert_int_equal(out_len, 0);
  assert_non_null(strstr(err, "ca.key"));
  assert_non_null(strstr(err, "No such file"));
  /* A missing directory, for read and write. */
  char missing[600];
  path_of(missing, sizeof(missing), f->dir, "nope");
  assert_int_equal(wisp_state_read(missing, "ca.key", 4096, &out, &out_len, NULL, 0), WISP_ERR_IO);
  assert_int_equal(errno, ENOENT);
  assert_int_equal(wisp_state_write(missing, "ca.key", "x", 1, 0, NULL, 0), WISP_ERR_IO);
  assert_int_equal(errno, ENOENT);
}

/* read wants a regular file, not a symlink (which could point anywhere),
 * a directory or a FIFO (which would block). */
static void test_read_refuses_non_files(void **state) {
  fixture *f = *state;
  char p[600], target[600];
  assert_int_equal(wisp_state_write(f->dir, "real", "data", 4, 0, NULL, 0), WISP_OK);
  path_of(target, sizeof(target), f->dir, "real");
  path_of(p, sizeof(p), f->dir, "link");
  assert_int_equal(symlink(target, p), 0);
  path_of(p, sizeof(p), f->dir, "subdir");
  assert_int_equal(mkdir(p, 0700), 0);
  path_of(p, sizeof(p), f->dir, "fifo");
  assert_int_equal(mkfifo(p, 0600), 0);
  const char *names[] = {"link", "subdir", "fifo"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    uint8_t *out = (uint8_t *)"sentinel";
    size_t out_len = 99;
    char err[256] = "";
    if (wisp_state_read(f->dir, names[i], 4096, &out, &out_len, err, sizeof(err)) != WISP_ERR_USAGE) {
      fail_msg("read %s was not refused", names[i]);
    }
    assert_null(out);
    assert_non_null(strstr(err, names[i]));
  }
}

/* The error buffer is optional and always NUL-terminated when short. */
static void test_err_buffer(void **state) {
  fixture *f = *state;
  char err[8];
  memset(err, 'Z', sizeof(err));
  uint8_t *out;
  size_t out_len;
  assert_int_equal(wisp_state_read(f->dir, "missing", 10, &out, &out_len, err, sizeof(err)), WISP_ERR_IO);
  assert_int_equal(strlen(err), sizeof(err) - 1);
  memset(err, 'Z', sizeof(err));
  assert_int_equal(wisp_state_read(f->dir, "missing", 10, &out, &out_len, err, 1), WISP_ERR_IO);
  assert_int_equal(err[0], '\0');
  assert_int_equal(err[1], 'Z');
  assert_int_equal(wisp_state_read(f->dir, "missing", 10, &out, &out_len, NULL, 100), WISP_ERR_IO);
}

/* ---- ensure_dir ---- */

static void test_ensure_dir_creates(void **state) {
  fixture *f = *state;
  char d[600];
  path_of(d, sizeof(d), f->dir, "state");
  mode_t old = umask(077);
  char err[256] = "";
  wisp_err e = wisp_state_ensure_dir(d, 0, err, sizeof(err));
  umask(old);
  if (e != WISP_OK) fail_msg("%s", err);
  assert_int_equal(mode_of(d), 0700);
  /* Idempotent; then usable. */
  assert_int_equal(wisp_state_ensure_dir(d, 0700, NULL, 0), WISP_OK);
  assert_int_equal(wisp_state_write(d, "ca.key", "k", 1, 0, NULL, 0), WISP_OK);
  assert_content(d, "ca.key", "k", 1);
  /* Another mode, asked for explicitly. */
  path_of(d, sizeof(d), f->dir, "shared");
  assert_int_equal(wisp_state_ensure_dir(d, 0750, NULL, 0), WISP_OK);
  assert_int_equal(mode_of(d), 0750);
}

static void test_ensure_dir_fixes_mode(void **state) {
  fixture *f = *state;
  char d[600];
  path_of(d, sizeof(d), f->dir, "loose");
  assert_int_equal(mkdir(d, 0700), 0);
  assert_int_equal(chmod(d, 0777), 0);
  assert_int_equal(wisp_state_ensure_dir(d, 0700, NULL, 0), WISP_OK);
  assert_int_equal(mode_of(d), 0700);
  assert_int_equal(chmod(d, 01755), 0);
  assert_int_equal(wisp_state_ensure_dir(d, 0, NULL, 0), WISP_OK);
  assert_int_equal(mode_of(d), 0700);
}

static void test_ensure_dir_refuses(void **state) {
  fixture *f = *state;
  char p[600], err[256];
  /* A regular file. */
  path_of(p, sizeof(p), f->dir, "file");
  write_raw(p, "x");
  assert_int_equal(chmod(p, 0644), 0);
  assert_int_equal(wisp_state_ensure_dir(p, 0700, err, sizeof(err)), WISP_ERR_USAGE);
  assert_non_null(strstr(err, "not a directory"));
  assert_int_equal(mode_of(p), 0644); /* not chmodded */
  /* A symlink (ours) to a regular file. */
  char link[600];
  path_of(link, sizeof(link), f->dir, "link-to-file");
  assert_int_equal(symlink(p, link), 0);
  assert_int_equal(wisp_state_ensure_dir(link, 0700, err, sizeof(err)), WISP_ERR_USAGE);
  /* A missing parent. */
  path_of(p, sizeof(p), f->dir, "no/such");
  assert_int_equal(wisp_state_ensure_dir(p, 0700, err, sizeof(err)), WISP_ERR_IO);
  assert_int_equal(errno, ENOENT);
}

/* A symlink we own, to a directory we own, is fine (e.g. /var/lib/wisp ->
 * /data/wisp); the mode is fixed on the directory itself. */
static void test_ensure_dir_own_symlink(void **state) {
  fixture *f = *state;
  char d[600], link[600];
  path_of(d, sizeof(d), f->dir, "real");
  assert_int_equal(mkdir(d, 0755), 0);
  path_of(link, sizeof(link), f->dir, "link");
  assert_int_equal(symlink(d, link), 0);
  assert_int_equal(wisp_state_ensure_dir(link, 0700, NULL, 0), WISP_OK);
  assert_int_equal(mode_of(d), 0700);
  assert_int_equal(wisp_state_write(link, "x", "1", 1, 0, NULL, 0), WISP_OK);
  assert_content(d, "x", "1", 1);
}

/* Someone else's directory, or a symlink someone else planted. As root we
 * make them with chown; otherwise "/" is someone else's directory (root's),
 * and refused before anything is changed. */
static void test_ensure_dir_other_owner(void **state) {
  fixture *f = *state;
  char err[256] = "";
  if (geteuid() != 0) {
    assert_int_equal(wisp_state_ensure_dir("/", 0700, err, sizeof(err)), WISP_ERR_USAGE);
    assert_non_null(strstr(err, "owned by uid 0"));
    print_message("# not root: the planted-symlink case is not checked\n");
    return;
  }
  char d[600], link[600], target[600];
  path_of(d, sizeof(d), f->dir, "theirs");
  assert_int_equal(mkdir(d, 0755), 0);
  assert_int_equal(chown(d, OTHER_UID, OTHER_UID), 0);
  assert_int_equal(wisp_state_ensure_dir(d, 0700, err, sizeof(err)), WISP_ERR_USAGE);
  assert_non_null(strstr(err, "owned by uid 65534"));
  assert_int_equal(mode_of(d), 0755); /* not touched */

  /* A symlink owned by someone else, even to a directory of ours. */
  path_of(target, sizeof(target), f->dir, "mine");
  assert_int_equal(mkdir(target, 0700), 0);
  path_of(link, sizeof(link), f->dir, "planted");
  assert_int_equal(symlink(target, link), 0);
  assert_int_equal(lchown(link, OTHER_UID, OTHER_UID), 0);
  assert_int_equal(wisp_state_ensure_dir(link, 0700, err, sizeof(err)), WISP_ERR_USAGE);
  assert_non_null(strstr(err, "symlink owned by uid 65534"));
  /* A symlink of ours to their directory: refused for the directory. */
  path_of(link, sizeof(link), f->dir, "to-theirs");
  assert_int_equal(symlink(d, link), 0);
  assert_int_equal(wisp_state_ensure_dir(link, 0700, err, sizeof(err)), WISP_ERR_USAGE);
  assert_non_null(strstr(err, "owned by uid 65534"));
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_modes_ignore_umask, setup, teardown),
      cmocka_unit_test_setup_teardown(test_overwrite, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_write_keeps_old_content, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_rename_cleans_up, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_only_dir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_bound, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_missing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_refuses_non_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_err_buffer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ensure_dir_creates, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ensure_dir_fixes_mode, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ensure_dir_refuses, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ensure_dir_own_symlink, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ensure_dir_other_owner, setup, teardown),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
