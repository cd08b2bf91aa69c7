/* Fuzz target for `wispctl inject` (control/wispctl/inject*.c): Kubernetes
 * manifests in, the same manifests with wisp added out. The manifests come
 * from wherever a deploy pipeline gets them, and their wisp.dev/
 * annotations end up as arguments of the pod's init container.
 *
 * Invariants: a refusal is WISP_ERR_PARSE or WISP_ERR_TOO_BIG with a
 * reason and no output; the output of an accepted stream is accepted in
 * turn, and injecting it again changes nothing: the same bytes, and no
 * document injected a second time.
 *
 * Replayed over corpus/inject/ by //tests/fuzz:inject_fuzz_replay in the
 * normal suite; tests/fuzz/run_fuzzers.sh fuzzes it for real. */
#include <stdbool.h>
#include <string.h>

#include "control/wispctl/inject.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_INPUT (64 * 1024) /* enough to reach every path; keeps runs fast */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static wispctl_inject_cfg cfg;
  static bool ready;
  if (!ready) {
    static const wispctl_inject_opts kOpts = {.agent = "unix:///var/run/wisp/agent.sock",
                                              .trust_domain = WISPCTL_INJECT_DEFAULT_TRUST_DOMAIN,
                                              .image = WISPCTL_INJECT_DEFAULT_IMAGE,
                                              .proxy_uid = WISPCTL_INJECT_DEFAULT_UID};
    CHECK(wispctl_inject_prepare(&cfg, &kOpts, NULL, 0) == WISP_OK);
    ready = true;
  }
  if (size > FUZZ_MAX_INPUT) return 0;
  wisp_buf out = {0}, notes = {0};
  char err[512] = "";
  wisp_err rc = wispctl_inject(&cfg, (const char *)data, size, &out, &notes, err, sizeof(err));
  if (rc != WISP_OK) {
    CHECK(rc == WISP_ERR_PARSE || rc == WISP_ERR_TOO_BIG);
    CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
    CHECK(wisp_buf_len(&out) == 0 && wisp_buf_len(&notes) == 0);
    return 0;
  }
  /* Once is enough: the output, injected again, is left as it is. */
  wisp_buf again = {0}, notes2 = {0};
  char err2[512] = "";
  rc = wispctl_inject(&cfg, (const char *)wisp_buf_rptr(&out), wisp_buf_len(&out), &again, &notes2, err2, sizeof(err2));
  if (rc != WISP_OK) fprintf(stderr, "the output does not inject: %s\n", err2);
  CHECK(rc == WISP_OK);
  CHECK(wisp_buf_len(&again) == wisp_buf_len(&out) &&
        memcmp(wisp_buf_rptr(&again), wisp_buf_rptr(&out), wisp_buf_len(&out)) == 0);
  const char *n2 = (const char *)wisp_buf_rptr(&notes2);
  CHECK(wisp_buf_len(&notes2) == 0 || memmem(n2, wisp_buf_len(&notes2), ": injected", 10) == NULL);
  wisp_buf_cleanup(&again);
  wisp_buf_cleanup(&notes2);
  wisp_buf_cleanup(&out);
  wisp_buf_cleanup(&notes);
  return 0;
}
