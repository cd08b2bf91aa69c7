/* Fuzz target for the admission webhook's decision (control/agent/
 * wisp_admission): an AdmissionReview body from the API server (or anyone
 * who reaches the port) in, the answer out, through inject's YAML code path
 * and the JSONPatch diff. Invariants: the answer is 200 with a JSON
 * AdmissionReview echoing the uid, or 400 with text; a patch only when
 * allowed; a denial always says why; the same body gives the same answer.
 *
 * Replayed over corpus/admission/ by //tests/fuzz:admission_fuzz_replay. To
 * fuzz for real, from the workspace root (90 s of it found nothing):
 *   clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -I. \
 *     -isystem /usr/include/android tests/fuzz/admission_fuzz.c control/agent/wisp_admission.c \
 *     control/wispctl/inject*.c control/wispctl/yaml_*.c lib/wisp_jsonpatch.c lib/wisp_buf.c \
 *     lib/wisp_mem.c lib/wisp_err.c lib/wisp_spiffe.c lib/wisp_rpc_client.c lib/wisp_h2conn.c \
 *     lib/wisp_tls.c lib/wisp_filewatch.c lib/wisp_net.c lib/wisp_grpc.c lib/wisp_ca*.c lib/wisp_log.c \
 *     lib/wisp_json.c \
 *     -L/usr/lib/x86_64-linux-gnu/android -Wl,-rpath,/usr/lib/x86_64-linux-gnu/android -lssl -lcrypto \
 *     -ljansson -lyaml -lev -lnghttp2 -lprotobuf-c -lm -o /tmp/admission_fuzz &&
 *   /tmp/admission_fuzz -max_total_time=60 -max_len=4096 tests/fuzz/corpus/admission */
#include <string.h>

#include <jansson.h>

#include "control/agent/wisp_admission.h"
#include "tests/fuzz/fuzz.h"

static const wispctl_inject_cfg *cfg(void) {
  static wispctl_inject_cfg c;
  static bool ready;
  if (!ready) {
    static const char kBundle[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    wispctl_inject_opts o = {.agent = "https://10.96.0.10:8443",
                             .trust_domain = "cluster.local",
                             .image = "wisp/wisp:0.1.0",
                             .proxy_uid = 1337,
                             .bundle_pem = kBundle};
    CHECK(wispctl_inject_prepare(&c, &o, NULL, 0) == WISP_OK);
    ready = true;
  }
  return &c;
}

static void check_answer(const wisp_admission_result *r, const wisp_buf *out) {
  CHECK(r->http_status == 200 || r->http_status == 400);
  CHECK(r->allowed || r->reason[0]);
  CHECK(!r->patched || r->allowed);
  if (r->http_status == 400) return;
  json_t *a = json_loadb((const char *)wisp_buf_rptr(out), wisp_buf_len(out), 0, NULL);
  CHECK(a != NULL);
  json_t *resp = json_object_get(a, "response");
  CHECK(json_is_object(resp));
  CHECK(!strcmp(json_string_value(json_object_get(resp, "uid")), r->uid));
  CHECK(json_is_true(json_object_get(resp, "allowed")) == r->allowed);
  CHECK((json_object_get(resp, "patch") != NULL) == r->patched);
  json_decref(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wisp_buf out1 = {0}, out2 = {0};
  wisp_admission_result r1, r2;
  /* Byte 0's low bit: which webhook entry asks (/mutate or /mutate-annotated). */
  if (size < 1) return 0;
  wisp_admission_scope scope = data[0] & 1 ? WISP_ADMISSION_ANNOTATED : WISP_ADMISSION_ALL;
  data++;
  size--;
  wisp_admission_review(cfg(), scope, (const char *)data, size, &out1, &r1);
  check_answer(&r1, &out1);
  wisp_admission_review(cfg(), scope, (const char *)data, size, &out2, &r2);
  CHECK(wisp_buf_len(&out1) == wisp_buf_len(&out2));
  CHECK(!wisp_buf_len(&out1) || !memcmp(wisp_buf_rptr(&out1), wisp_buf_rptr(&out2), wisp_buf_len(&out1)));
  wisp_buf_cleanup(&out1);
  wisp_buf_cleanup(&out2);
  return 0;
}
