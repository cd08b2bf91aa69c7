/* Runs a fuzz target's LLVMFuzzerTestOneInput over every file of the
 * corpus directories given as arguments, so the corpus is exercised in the
 * normal suite (and under --config=asan) without libFuzzer. Prints TAP,
 * one line per file, as the cmocka tests do; a crash fails the test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Reads |path| whole into a new buffer; returns NULL on error. */
static uint8_t *slurp(const char *path, size_t *out_len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n, fp);
    if (n < cap) break;
    cap *= 2;
    uint8_t *grown = realloc(buf, cap);
    if (!grown) free(buf);
    buf = grown;
  }
  int bad = ferror(fp);
  fclose(fp);
  if (bad) {
    free(buf);
    return NULL;
  }
  *out_len = n;
  return buf;
}

int main(int argc, char **argv) {
  char *paths[4096];
  size_t n = 0;
  for (int a = 1; a < argc; a++) {
    DIR *d = opendir(argv[a]);
    if (!d) {
      fprintf(stderr, "cannot open corpus dir %s\n", argv[a]);
      return 1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < sizeof(paths) / sizeof(paths[0])) {
      if (e->d_name[0] == '.') continue;
      size_t len = strlen(argv[a]) + strlen(e->d_name) + 2;
      paths[n] = malloc(len);
      if (!paths[n]) return 1;
      snprintf(paths[n], len, "%s/%s", argv[a], e->d_name);
      n++;
    }
    closedir(d);
  }
  if (n == 0) {
    fprintf(stderr, "empty corpus\n");
    return 1;
  }
  qsort(paths, n, sizeof(paths[0]), by_name);
  printf("1..%zu\n", n);
  int failed = 0;
  for (size_t i = 0; i < n; i++) {
    size_t len = 0;
    uint8_t *data = slurp(paths[i], &len);
    if (!data) {
      printf("not ok %zu - %s (unreadable)\n", i + 1, paths[i]);
      failed = 1;
    } else {
      fflush(stdout);
      LLVMFuzzerTestOneInput(data, len);
      printf("ok %zu - %s\n", i + 1, paths[i]);
      free(data);
    }
    free(paths[i]);
  }
  return failed;
}
