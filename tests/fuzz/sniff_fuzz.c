/* Fuzz target for lib/wisp_sniff's first-bytes classifier, which every
 * inbound, outbound and agent connection goes through before anything else
 * reads a byte. Checked for every prefix of the input:
 *   - a decision never changes as more bytes arrive, and NEED_MORE never
 *     lasts to WISP_SNIFF_PEEK_MAX bytes; bytes past that are never read;
 *   - each answer means what the header says: HTTP2 exactly when the whole
 *     24-byte preface is there (a prefix of it never is), TLS exactly for
 *     0x16 0x03, HTTP1 only for a method token of at most
 *     WISP_SNIFF_METHOD_MAX characters and a space.
 *
 * Replayed over corpus/sniff/ by //tests/fuzz:sniff_fuzz_replay in the
 * normal suite; tests/fuzz/run_fuzzers.sh fuzzes it for real. */
#include <stdbool.h>
#include <string.h>

#include "lib/wisp_sniff.h"
#include "tests/fuzz/fuzz.h"

static const char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static void check_meaning(const uint8_t *d, size_t len, wisp_sniff_proto p) {
  size_t plen = strlen(kPreface);
  switch (p) {
    case WISP_SNIFF_NEED_MORE:
      CHECK(len < WISP_SNIFF_PEEK_MAX);
      break;
    case WISP_SNIFF_HTTP2:
      CHECK(len >= plen && memcmp(d, kPreface, plen) == 0);
      break;
    case WISP_SNIFF_TLS:
      CHECK(len >= 2 && d[0] == 0x16 && d[1] == 0x03);
      break;
    case WISP_SNIFF_HTTP1: {
      size_t i = 0;
      while (i < len && d[i] != ' ') CHECK(fuzz_is_tchar(d[i++]));
      CHECK(i > 0 && i < len && i <= WISP_SNIFF_METHOD_MAX);
      break;
    }
    case WISP_SNIFF_OTHER:
      break;
    default:
      CHECK(!"the classifier returned a watcher-only code");
  }
  /* The converse of HTTP2 and TLS. */
  if (len >= plen && memcmp(d, kPreface, plen) == 0) CHECK(p == WISP_SNIFF_HTTP2);
  if (len >= 2 && d[0] == 0x16 && d[1] == 0x03) CHECK(p == WISP_SNIFF_TLS);
  if (len < plen && memcmp(d, kPreface, len) == 0) CHECK(p == WISP_SNIFF_NEED_MORE);
  CHECK(strlen(wisp_sniff_proto_name(p)) > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wisp_sniff_proto decided = WISP_SNIFF_NEED_MORE;
  size_t upto = size < 2 * WISP_SNIFF_PEEK_MAX ? size : 2 * WISP_SNIFF_PEEK_MAX;
  for (size_t n = 0; n <= upto; n++) {
    wisp_sniff_proto p = wisp_sniff_classify(data, n);
    check_meaning(data, n, p);
    if (decided != WISP_SNIFF_NEED_MORE) CHECK(p == decided);
    decided = p;
  }
  CHECK(wisp_sniff_classify(data, size) == wisp_sniff_classify(data, upto));
  /* Bytes past the look are never read: a private copy of just the look,
   * with the length claimed whole, would trip ASan otherwise. */
  if (size >= WISP_SNIFF_PEEK_MAX) {
    uint8_t *look = malloc(WISP_SNIFF_PEEK_MAX);
    CHECK(look != NULL);
    memcpy(look, data, WISP_SNIFF_PEEK_MAX);
    CHECK(wisp_sniff_classify(look, size) == decided);
    free(look);
  }
  return 0;
}
