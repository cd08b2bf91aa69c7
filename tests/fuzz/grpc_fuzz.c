/* Fuzz target for lib/wisp_grpc's parsers, which all take bytes from peers:
 * the streaming message reader, grpc-status, grpc-timeout, grpc-message
 * decoding and the content-type check.
 *
 * The reader is checked differentially: the same stream fed in one chunk,
 * byte by byte, and in chunk sizes taken from the input must yield the same
 * messages and the same error, with the feed contract held on every call.
 *
 * Replayed over corpus/grpc/ by //tests/fuzz:grpc_fuzz_replay in the normal
 * suite; tests/fuzz/run_fuzzers.sh fuzzes it for real. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_grpc.h"
#include "tests/fuzz/fuzz.h"

/* What one way of feeding a stream produced. Messages are hashed to keep
 * this small and allocation-free. */
typedef struct {
  size_t n;
  size_t total;
  uint64_t hash;
  wisp_err err;
  wisp_err finish;
} outcome;

static uint64_t mix(uint64_t h, const uint8_t *p, size_t len) {
  h ^= len + 0x9e3779b97f4a7c15u;
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3u;
  return h * 0xff51afd7ed558ccdu;
}

/* Feeds |stream| in chunks: |chunk| bytes each if non-zero, else sizes
 * cycling through |sizes|. */
static outcome feed(const uint8_t *stream, size_t len, size_t max_msg, size_t chunk, const uint8_t *sizes,
                    size_t n_sizes) {
  outcome o = {0, 0, 0, WISP_OK, WISP_OK};
  wisp_grpc_reader r;
  wisp_grpc_reader_init(&r, max_msg);
  size_t off = 0, si = 0;
  while (off < len && o.err == WISP_OK) {
    size_t c = chunk;
    if (c == 0) c = n_sizes ? (size_t)1 + sizes[si++ % n_sizes] : len;
    if (c > len - off) c = len - off;
    /* A private copy, so ASan sees a message outlive its chunk. */
    uint8_t *copy = malloc(c);
    CHECK(copy != NULL);
    memcpy(copy, stream + off, c);
    const uint8_t *p = copy;
    size_t left = c;
    while (left > 0) {
      wisp_grpc_msg m = {NULL, 0};
      bool has = true;
      size_t used = (size_t)-1;
      wisp_err e = wisp_grpc_reader_feed(&r, &m, &has, &used, p, left);
      if (e != WISP_OK) {
        CHECK(!has && used == 0);
        CHECK(e == WISP_ERR_TOO_BIG || e == WISP_ERR_PROTO || e == WISP_ERR_PARSE);
        o.err = e;
        break;
      }
      CHECK(used <= left);
      CHECK(used > 0 || has);
      if (has) {
        CHECK(m.data != NULL);
        CHECK(m.len <= (max_msg ? max_msg : WISP_GRPC_DEFAULT_MAX_MSG));
        o.n++;
        o.total += m.len;
        o.hash = mix(o.hash, m.data, m.len);
      }
      p += used;
      left -= used;
    }
    free(copy);
    off += c;
  }
  o.finish = wisp_grpc_reader_finish(&r);
  if (o.err != WISP_OK) CHECK(o.finish == o.err);
  wisp_grpc_reader_cleanup(&r);
  return o;
}

static bool same(const outcome *a, const outcome *b) {
  return a->n == b->n && a->total == b->total && a->hash == b->hash && a->err == b->err && a->finish == b->finish;
}

static void fuzz_reader(const uint8_t *data, size_t size) {
  /* Byte 0: message limit; bytes 1-4: chunk sizes; the rest: the stream. */
  if (size < 5) return;
  size_t max_msg = data[0] < 16 ? data[0] : (size_t)data[0] * 37;
  const uint8_t *sizes = data + 1;
  const uint8_t *stream = data + 5;
  size_t len = size - 5;
  outcome whole = feed(stream, len, max_msg, len ? len : 1, NULL, 0);
  outcome bytes = feed(stream, len, max_msg, 1, NULL, 0);
  outcome mixed = feed(stream, len, max_msg, 0, sizes, 4);
  CHECK(same(&whole, &bytes));
  CHECK(same(&whole, &mixed));
}

static void fuzz_headers(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  uint64_t ms;
  if (wisp_grpc_timeout_parse(&ms, s, size) == WISP_OK) CHECK(size >= 2 && size <= 9);
  wisp_grpc_status code;
  if (wisp_grpc_status_parse(&code, s, size) == WISP_OK) {
    CHECK(code <= WISP_GRPC_UNAUTHENTICATED);
    CHECK(wisp_grpc_status_name(code) != NULL);
  }
  (void)wisp_grpc_content_type_ok(s, size);

  /* decode never fails with room for the input, never grows it. */
  char *dec = malloc(size + 1);
  CHECK(dec != NULL);
  size_t w = 0;
  CHECK(wisp_grpc_message_decode(dec, size + 1, &w, s, size) == WISP_OK);
  CHECK(w <= size && dec[w] == '\0');
  /* encode then decode is the identity. */
  size_t elen = wisp_grpc_message_encoded_len(data, size);
  char *enc = malloc(elen + 1);
  char *back = malloc(elen + 1);
  CHECK(enc != NULL && back != NULL);
  CHECK(wisp_grpc_message_encode(enc, elen + 1, &w, data, size) == WISP_OK);
  CHECK(w == elen);
  for (size_t i = 0; i < w; i++) CHECK(enc[i] >= 0x20 && enc[i] <= 0x7e);
  CHECK(wisp_grpc_message_decode(back, elen + 1, &w, enc, elen) == WISP_OK);
  CHECK(w == size && memcmp(back, data, size) == 0);
  /* A short buffer truncates cleanly, whatever its size. */
  if (elen > 0) {
    size_t short_len = 1 + (size ? data[0] : 0) % elen;
    CHECK(wisp_grpc_message_encode(enc, short_len, &w, data, size) == WISP_ERR_TOO_BIG);
    CHECK(w < short_len && enc[w] == '\0');
  }
  free(dec);
  free(enc);
  free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_reader(data, size);
  fuzz_headers(data, size);
  return 0;
}
