/* Unit tests for lib/wisp_grpc: the streaming message reader under every
 * chunking (byte by byte, one chunk, many messages per chunk, split
 * messages), its limits and errors, the writer, status codes, grpc-message
 * percent-encoding, grpc-timeout and content-type; and a round trip of real
 * protobuf-c messages of //proto:wisp_v1 through writer and reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_grpc.h"
/* Both include spellings of the generated code work (see proto/BUILD.bazel). */
#include "proto/wisp/v1/identity.pb-c.h"
#include "wisp/v1/config.pb-c.h"
#include "tests/unit/test_util.h"

#define MAX_MSGS 16

/* What a whole stream produced: its messages, the first error, finish(). */
typedef struct {
  size_t n;
  size_t lens[MAX_MSGS];
  uint8_t *msgs[MAX_MSGS];
  wisp_err err;    /* first feed error, WISP_OK if none */
  size_t err_at;   /* stream offset of the chunk that failed */
  wisp_err finish; /* wisp_grpc_reader_finish at the end */
} run_result;

static void run_result_free(run_result *rr) {
  for (size_t i = 0; i < rr->n; i++) free(rr->msgs[i]);
  memset(rr, 0, sizeof(*rr));
}

/* Feeds |len| bytes of |data| to |r| in chunks whose sizes cycle through
 * |chunks| (0-terminated; NULL: one chunk), checking the feed contract on
 * every call. Stops at the first error. */
static void run_stream(run_result *rr, wisp_grpc_reader *r, const uint8_t *data, size_t len, const size_t *chunks) {
  memset(rr, 0, sizeof(*rr));
  size_t off = 0, ci = 0;
  while (off < len) {
    size_t clen = len - off;
    if (chunks) {
      if (chunks[ci] == 0) ci = 0;
      if (chunks[ci] < clen) clen = chunks[ci];
      ci++;
    }
    /* Copy the chunk so that a message borrowed from it is checked by ASan
     * against the chunk's real lifetime. */
    uint8_t *chunk = malloc(clen);
    assert_non_null(chunk);
    memcpy(chunk, data + off, clen);
    const uint8_t *p = chunk;
    size_t left = clen;
    while (left > 0) {
      wisp_grpc_msg m = {0};
      bool has = true;
      size_t used = 99;
      wisp_err e = wisp_grpc_reader_feed(r, &m, &has, &used, p, left);
      if (e != WISP_OK) {
        assert_false(has);
        assert_int_equal(used, 0);
        rr->err = e;
        rr->err_at = off;
        free(chunk);
        rr->finish = wisp_grpc_reader_finish(r);
        return;
      }
      assert_true(used <= left);
      /* Progress: each call takes bytes or hands out a message. */
      assert_true(used > 0 || has);
      p += used;
      left -= used;
      if (has) {
        assert_non_null(m.data);
        assert_true(rr->n < MAX_MSGS);
        rr->msgs[rr->n] = malloc(m.len + 1);
        assert_non_null(rr->msgs[rr->n]);
        if (m.len) memcpy(rr->msgs[rr->n], m.data, m.len);
        rr->lens[rr->n++] = m.len;
      }
    }
    free(chunk);
    off += clen;
  }
  rr->finish = wisp_grpc_reader_finish(r);
}

/* Appends one framed message (flag 0) to |out| at |*off|. */
static void frame(uint8_t *out, size_t *off, const char *msg, size_t len) {
  wisp_grpc_prefix_write(out + *off, (uint32_t)len);
  memcpy(out + *off + WISP_GRPC_PREFIX_LEN, msg, len);
  *off += WISP_GRPC_PREFIX_LEN + len;
}

/* ---- status codes ---- */

static void test_status_names(void **state) {
  (void)state;
  static const struct {
    int code;
    const char *name;
  } cases[] = {
      {WISP_GRPC_OK, "OK"},
      {WISP_GRPC_CANCELLED, "CANCELLED"},
      {WISP_GRPC_UNKNOWN, "UNKNOWN"},
      {WISP_GRPC_INVALID_ARGUMENT, "INVALID_ARGUMENT"},
      {WISP_GRPC_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"},
      {WISP_GRPC_NOT_FOUND, "NOT_FOUND"},
      {WISP_GRPC_ALREADY_EXISTS, "ALREADY_EXISTS"},
      {WISP_GRPC_PERMISSION_DENIED, "PERMISSION_DENIED"},
      {WISP_GRPC_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED"},
      {WISP_GRPC_FAILED_PRECONDITION, "FAILED_PRECONDITION"},
      {WISP_GRPC_ABORTED, "ABORTED"},
      {WISP_GRPC_OUT_OF_RANGE, "OUT_OF_RANGE"},
      {WISP_GRPC_UNIMPLEMENTED, "UNIMPLEMENTED"},
      {WISP_GRPC_INTERNAL, "INTERNAL"},
      {WISP_GRPC_UNAVAILABLE, "UNAVAILABLE"},
      {WISP_GRPC_DATA_LOSS, "DATA_LOSS"},
      {WISP_GRPC_UNAUTHENTICATED, "UNAUTHENTICATED"},
      {-1, "UNKNOWN"},
      {17, "UNKNOWN"},
      {1000, "UNKNOWN"},
  };
  /* The enum has the wire values. */
  assert_int_equal(WISP_GRPC_PERMISSION_DENIED, 7);
  assert_int_equal(WISP_GRPC_UNIMPLEMENTED, 12);
  assert_int_equal(WISP_GRPC_UNAUTHENTICATED, 16);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    assert_string_equal(wisp_grpc_status_name(cases[i].code), cases[i].name);
  }
}

static void test_status_parse(void **state) {
  (void)state;
  static const struct {
    const char *in;
    wisp_err err;
    wisp_grpc_status code;
  } cases[] = {
      {"0", WISP_OK, WISP_GRPC_OK},
      {"7", WISP_OK, WISP_GRPC_PERMISSION_DENIED},
      {"16", WISP_OK, WISP_GRPC_UNAUTHENTICATED},
      {"007", WISP_OK, WISP_GRPC_PERMISSION_DENIED},
      {"17", WISP_OK, WISP_GRPC_UNKNOWN},
      {"9999999999", WISP_OK, WISP_GRPC_UNKNOWN},
      {"", WISP_ERR_PARSE, 0},
      {"-1", WISP_ERR_PARSE, 0},
      {"+1", WISP_ERR_PARSE, 0},
      {" 1", WISP_ERR_PARSE, 0},
      {"1 ", WISP_ERR_PARSE, 0},
      {"1a", WISP_ERR_PARSE, 0},
      {"0x1", WISP_ERR_PARSE, 0},
      {"12345678901", WISP_ERR_PARSE, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    wisp_grpc_status code = (wisp_grpc_status)99;
    wisp_err e = wisp_grpc_status_parse(&code, cases[i].in, strlen(cases[i].in));
    if (e != cases[i].err) fail_msg("\"%s\": got %d, want %d", cases[i].in, e, cases[i].err);
    if (e == WISP_OK) {
      assert_int_equal(code, cases[i].code);
    } else {
      assert_int_equal(code, 99); /* untouched */
    }
  }
  /* Length-bounded: bytes after |len| are not looked at. */
  wisp_grpc_status code;
  assert_int_equal(wisp_grpc_status_parse(&code, "13xyz", 2), WISP_OK);
  assert_int_equal(code, WISP_GRPC_INTERNAL);
}

/* ---- reader: chunking ---- */

static const size_t CHUNK_BYTE[] = {1, 0};
static const size_t CHUNK_3_7[] = {3, 7, 0};
static const size_t CHUNK_2_5_11[] = {2, 5, 11, 0};
static const size_t CHUNK_4[] = {4, 0};
static const size_t CHUNK_6[] = {6, 0};

/* Every chunking yields the same messages. */
static void test_reader_chunkings(void **state) {
  (void)state;
  uint8_t stream[256];
  size_t len = 0;
  frame(stream, &len, "hello", 5);
  frame(stream, &len, "", 0);
  frame(stream, &len, "a", 1);
  frame(stream, &len, "the quick brown fox jumps over the lazy dog", 43);
  frame(stream, &len, "", 0);
  const struct {
    const char *name;
    const size_t *chunks;
  } chunkings[] = {
      {"one chunk", NULL}, {"byte by byte", CHUNK_BYTE}, {"3,7", CHUNK_3_7}, {"2,5,11", CHUNK_2_5_11}, {"4", CHUNK_4},
      {"6", CHUNK_6},
  };
  for (size_t c = 0; c < sizeof(chunkings) / sizeof(chunkings[0]); c++) {
    wisp_grpc_reader r;
    wisp_grpc_reader_init(&r, 1024);
    run_result rr;
    run_stream(&rr, &r, stream, len, chunkings[c].chunks);
    if (rr.err != WISP_OK || rr.n != 5) {
      fail_msg("%s: err %d, %zu messages", chunkings[c].name, rr.err, rr.n);
    }
    assert_int_equal(rr.finish, WISP_OK);
    assert_int_equal(rr.lens[0], 5);
    assert_memory_equal(rr.msgs[0], "hello", 5);
    assert_int_equal(rr.lens[1], 0);
    assert_int_equal(rr.lens[2], 1);
    assert_memory_equal(rr.msgs[2], "a", 1);
    assert_int_equal(rr.lens[3], 43);
    assert_memory_equal(rr.msgs[3], "the quick brown fox jumps over the lazy dog", 43);
    assert_int_equal(rr.lens[4], 0);
    run_result_free(&rr);
    wisp_grpc_reader_cleanup(&r);
  }
}

/* Table: one stream, one chunking, the expected outcome. */
static void test_reader_table(void **state) {
  (void)state;
  static const struct {
    const char *name;
    const char *bytes;
    size_t len;
    const size_t *chunks;
    size_t max;
    size_t n_msgs;   /* messages handed out before the end or the error */
    wisp_err err;    /* from feed */
    wisp_err finish; /* from finish */
  } cases[] = {
      {"empty stream", "", 0, NULL, 16, 0, WISP_OK, WISP_OK},
      {"zero-length message", "\0\0\0\0\0", 5, NULL, 16, 1, WISP_OK, WISP_OK},
      {"zero-length, byte by byte", "\0\0\0\0\0", 5, CHUNK_BYTE, 16, 1, WISP_OK, WISP_OK},
      {"zero-length with max 0 = default", "\0\0\0\0\0", 5, NULL, 0, 1, WISP_OK, WISP_OK},
      {"exactly max", "\0\0\0\0\3abc", 8, NULL, 3, 1, WISP_OK, WISP_OK},
      {"exactly max, byte by byte", "\0\0\0\0\3abc", 8, CHUNK_BYTE, 3, 1, WISP_OK, WISP_OK},
      {"oversize by one", "\0\0\0\0\4abcd", 9, NULL, 3, 0, WISP_ERR_TOO_BIG, WISP_ERR_TOO_BIG},
      {"oversize, prefix only", "\0\0\0\0\4", 5, CHUNK_BYTE, 3, 0, WISP_ERR_TOO_BIG, WISP_ERR_TOO_BIG},
      {"oversize 4 GiB - 1", "\0\xff\xff\xff\xff", 5, NULL, 0, 0, WISP_ERR_TOO_BIG, WISP_ERR_TOO_BIG},
      {"oversize after a good one", "\0\0\0\0\1a\0\0\0\1\0", 11, NULL, 1, 1, WISP_ERR_TOO_BIG, WISP_ERR_TOO_BIG},
      {"compressed flag", "\1\0\0\0\1a", 6, NULL, 16, 0, WISP_ERR_PROTO, WISP_ERR_PROTO},
      {"compressed, empty", "\1\0\0\0\0", 5, CHUNK_BYTE, 16, 0, WISP_ERR_PROTO, WISP_ERR_PROTO},
      {"compressed after a good one", "\0\0\0\0\1a\1\0\0\0\1b", 12, CHUNK_3_7, 16, 1, WISP_ERR_PROTO, WISP_ERR_PROTO},
      {"flag 2", "\2\0\0\0\1a", 6, NULL, 16, 0, WISP_ERR_PARSE, WISP_ERR_PARSE},
      {"flag 0x80", "\x80\0\0\0\1a", 6, NULL, 16, 0, WISP_ERR_PARSE, WISP_ERR_PARSE},
      {"flag 0xff", "\xff\0\0\0\0", 5, NULL, 16, 0, WISP_ERR_PARSE, WISP_ERR_PARSE},
      {"truncated in prefix", "\0\0\0", 3, NULL, 16, 0, WISP_OK, WISP_ERR_CLOSED},
      {"truncated after flag", "\0", 1, NULL, 16, 0, WISP_OK, WISP_ERR_CLOSED},
      {"truncated after prefix", "\0\0\0\0\2", 5, NULL, 16, 0, WISP_OK, WISP_ERR_CLOSED},
      {"truncated in body", "\0\0\0\0\3ab", 7, CHUNK_BYTE, 16, 0, WISP_OK, WISP_ERR_CLOSED},
      {"truncated in second", "\0\0\0\0\1a\0\0\0\0\2b", 12, NULL, 16, 1, WISP_OK, WISP_ERR_CLOSED},
      {"two, split 3/7", "\0\0\0\0\2ab\0\0\0\0\3cde", 15, CHUNK_3_7, 16, 2, WISP_OK, WISP_OK},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    wisp_grpc_reader r;
    wisp_grpc_reader_init(&r, cases[i].max);
    run_result rr;
    run_stream(&rr, &r, (const uint8_t *)cases[i].bytes, cases[i].len, cases[i].chunks);
    if (rr.n != cases[i].n_msgs || rr.err != cases[i].err || rr.finish != cases[i].finish) {
      fail_msg("%s: %zu msgs, err %d, finish %d; want %zu, %d, %d", cases[i].name, rr.n, rr.err, rr.finish,
               cases[i].n_msgs, cases[i].err, cases[i].finish);
    }
    run_result_free(&rr);
    wisp_grpc_reader_cleanup(&r);
  }
}

/* Several messages in one chunk: one feed call per message, each taking
 * exactly its own bytes, handed out in place (no copy). */
static void test_reader_one_chunk_in_place(void **state) {
  (void)state;
  uint8_t stream[64];
  size_t len = 0;
  frame(stream, &len, "abc", 3);
  frame(stream, &len, "", 0);
  frame(stream, &len, "defgh", 5);
  wisp_grpc_reader r;
  wisp_grpc_reader_init(&r, 16);
  wisp_grpc_msg m;
  bool has;
  size_t used;
  assert_int_equal(wisp_grpc_reader_feed(&r, &m, &has, &used, stream, len), WISP_OK);
  assert_true(has);
  assert_int_equal(used, 8);
  assert_ptr_equal(m.data, stream + 5);
  assert_int_equal(m.len, 3);
  assert_int_equal(wisp_grpc_reader_feed(&r, &m, &has, &used, stream + 8, len - 8), WISP_OK);
  assert_true(has);
  assert_int_equal(used, 5);
  assert_non_null(m.data);
  assert_int_equal(m.len, 0);
  assert_int_equal(wisp_grpc_reader_feed(&r, &m, &has, &used, stream + 13, len - 13), WISP_OK);
  assert_true(has);
  assert_int_equal(used, 10);
  assert_ptr_equal(m.data, stream + 18);
  assert_memory_equal(m.data, "defgh", 5);
  /* Nothing was buffered. */
  assert_null(r.body.data);
  assert_int_equal(wisp_grpc_reader_finish(&r), WISP_OK);
  /* An empty feed is a no-op. */
  assert_int_equal(wisp_grpc_reader_feed(&r, &m, &has, &used, NULL, 0), WISP_OK);
  assert_false(has);
  assert_int_equal(used, 0);
  wisp_grpc_reader_cleanup(&r);
}

/* A message split across chunks is buffered, handed out from the reader's
 * storage, and stays valid until the next call. */
static void test_reader_split_message(void **state) {
  (void)state;
  uint8_t stream[32];
  size_t len = 0;
  frame(stream, &len, "0123456789", 10);
  frame(stream, &len, "xy", 2);
  wisp_grpc_reader r;
  wisp_grpc_reader_init(&r, 64);
  wisp_grpc_msg m;
  bool has;
  size_t used;
  /* Prefix and 4 body bytes. */
  assert_int_equal(wisp_grpc_reader_feed(&r, &m, &has, &used, stream, 9), WISP_OK);
  assert_false(has);
  assert_int_equal(used, 9);
  assert_int_equal(wisp_grpc_reader_finish(&r), WISP_ERR_CLOSED);
  /* The rest of the body and the whole second message: stops after the
   * first. */
  assert_int_equal(wisp_grpc_reader_feed(&r, &m, &has, &used, stream + 9, len - 9), WISP_OK);
  assert_true(has);
  assert_int_equal(used, 6);
  assert_int_equal(m.len, 10);
  assert_memory_equal(m.data, "0123456789", 10);
  assert_ptr_equal(m.data, r.body.data);
  assert_int_equal(wisp_grpc_reader_finish(&r), WISP_OK);
  assert_int_equal(wisp_grpc_reader_feed(&r, &m, &has, &used, stream + 15, len - 15), WISP_OK);
  assert_true(has);
  assert_int_equal(used, 7);
  assert_int_equal(m.len, 2);
  assert_memory_equal(m.data, "xy", 2);
  wisp_grpc_reader_cleanup(&r);
}

/* Oversize is decided from the prefix: nothing of the body is buffered, and
 * the error sticks. */
static void test_reader_oversize_not_buffered(void **state) {
  (void)state;
  wisp_grpc_reader r;
  wisp_grpc_reader_init(&r, 1000);
  uint8_t prefix[WISP_GRPC_PREFIX_LEN];
  wisp_grpc_prefix_write(prefix, 1001);
  uint8_t chunk[1100] = {0};
  memcpy(chunk, prefix, sizeof(prefix));
  wisp_grpc_msg m;
  bool has;
  size_t used;
  assert_int_equal(wisp_grpc_reader_feed(&r, &m, &has, &used, chunk, sizeof(chunk)), WISP_ERR_TOO_BIG);
  assert_false(has);
  assert_int_equal(used, 0);
  assert_null(r.body.data);
  /* Sticky. */
  assert_int_equal(wisp_grpc_reader_feed(&r, &m, &has, &used, (const uint8_t *)"\0\0\0\0\0", 5), WISP_ERR_TOO_BIG);
  assert_int_equal(used, 0);
  assert_int_equal(wisp_grpc_reader_finish(&r), WISP_ERR_TOO_BIG);
  /* cleanup makes it usable again. */
  wisp_grpc_reader_cleanup(&r);
  assert_int_equal(wisp_grpc_reader_feed(&r, &m, &has, &used, (const uint8_t *)"\0\0\0\0\0", 5), WISP_OK);
  assert_true(has);
  wisp_grpc_reader_cleanup(&r);
}

/* A peer that announces a large message and sends little makes us hold
 * only what arrived. */
static void test_reader_memory_follows_arrival(void **state) {
  (void)state;
  wisp_grpc_reader r;
  wisp_grpc_reader_init(&r, 8u << 20);
  uint8_t chunk[WISP_GRPC_PREFIX_LEN + 10] = {0};
  wisp_grpc_prefix_write(chunk, 8u << 20);
  wisp_grpc_msg m;
  bool has;
  size_t used;
  assert_int_equal(wisp_grpc_reader_feed(&r, &m, &has, &used, chunk, sizeof(chunk)), WISP_OK);
  assert_false(has);
  assert_int_equal(used, sizeof(chunk));
  assert_true(r.body.cap <= 4096);
  wisp_grpc_reader_cleanup(&r);
  assert_null(r.body.data);
}

/* A zeroed reader is valid, with gRPC's default limit of 4 MiB. */
static void test_reader_zeroed_default_limit(void **state) {
  (void)state;
  wisp_grpc_reader r = {0};
  uint8_t p[WISP_GRPC_PREFIX_LEN];
  wisp_grpc_msg m;
  bool has;
  size_t used;
  assert_int_equal(wisp_grpc_reader_finish(&r), WISP_OK);
  wisp_grpc_prefix_write(p, WISP_GRPC_DEFAULT_MAX_MSG);
  assert_int_equal(wisp_grpc_reader_feed(&r, &m, &has, &used, p, sizeof(p)), WISP_OK);
  assert_int_equal(used, 5);
  assert_false(has);
  wisp_grpc_reader_cleanup(&r);
  wisp_grpc_reader_cleanup(&r); /* idempotent */
  wisp_grpc_prefix_write(p, WISP_GRPC_DEFAULT_MAX_MSG + 1);
  assert_int_equal(wisp_grpc_reader_feed(&r, &m, &has, &used, p, sizeof(p)), WISP_ERR_TOO_BIG);
  wisp_grpc_reader_cleanup(&r);
}

/* A large buffered message: its storage is given back on the next call, so
 * a long-lived stream does not pin it. */
static void test_reader_large_storage_released(void **state) {
  (void)state;
  const size_t big = 300 * 1024;
  uint8_t *stream = malloc(big + WISP_GRPC_PREFIX_LEN);
  assert_non_null(stream);
  wisp_grpc_prefix_write(stream, (uint32_t)big);
  for (size_t i = 0; i < big; i++) stream[WISP_GRPC_PREFIX_LEN + i] = (uint8_t)(i * 31);
  wisp_grpc_reader r;
  wisp_grpc_reader_init(&r, big);
  wisp_grpc_msg m;
  bool has = false;
  size_t used, off = 0;
  while (!has) {
    size_t n = big + WISP_GRPC_PREFIX_LEN - off;
    if (n > 16384) n = 16384; /* the default HTTP/2 frame size */
    assert_int_equal(wisp_grpc_reader_feed(&r, &m, &has, &used, stream + off, n), WISP_OK);
    off += used;
  }
  assert_int_equal(off, big + WISP_GRPC_PREFIX_LEN);
  assert_int_equal(m.len, big);
  assert_memory_equal(m.data, stream + WISP_GRPC_PREFIX_LEN, big);
  assert_true(r.body.cap >= big);
  /* The next call lets go of it. */
  assert_int_equal(wisp_grpc_reader_feed(&r, &m, &has, &used, (const uint8_t *)"\0\0", 2), WISP_OK);
  assert_null(r.body.data);
  assert_int_equal(wisp_grpc_reader_finish(&r), WISP_ERR_CLOSED);
  wisp_grpc_reader_cleanup(&r);
  free(stream);
}

/* Model check: random messages under random chunkings come out intact. */
static void test_reader_random_chunking(void **state) {
  (void)state;
  unsigned seed = 12345;
#define RND() (seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff)
  for (int round = 0; round < 200; round++) {
    uint8_t stream[4096];
    size_t len = 0, n_msgs = (size_t)RND() % MAX_MSGS;
    size_t lens[MAX_MSGS];
    for (size_t i = 0; i < n_msgs; i++) {
      lens[i] = (size_t)RND() % 200;
      if (RND() % 4 == 0) lens[i] = 0;
      wisp_grpc_prefix_write(stream + len, (uint32_t)lens[i]);
      for (size_t k = 0; k < lens[i]; k++) stream[len + 5 + k] = (uint8_t)(i * 16 + k);
      len += 5 + lens[i];
    }
    size_t chunks[5];
    for (int k = 0; k < 4; k++) chunks[k] = 1 + (size_t)RND() % 300;
    chunks[4] = 0;
    wisp_grpc_reader r;
    wisp_grpc_reader_init(&r, 199);
    run_result rr;
    run_stream(&rr, &r, stream, len, chunks);
    assert_int_equal(rr.err, WISP_OK);
    assert_int_equal(rr.finish, WISP_OK);
    assert_int_equal(rr.n, n_msgs);
    for (size_t i = 0; i < n_msgs; i++) {
      assert_int_equal(rr.lens[i], lens[i]);
      for (size_t k = 0; k < lens[i]; k++) assert_int_equal(rr.msgs[i][k], (uint8_t)(i * 16 + k));
    }
    run_result_free(&rr);
    wisp_grpc_reader_cleanup(&r);
  }
#undef RND
}

/* ---- writer ---- */

static void test_prefix_write(void **state) {
  (void)state;
  uint8_t p[WISP_GRPC_PREFIX_LEN];
  wisp_grpc_prefix_write(p, 0x01020304);
  assert_memory_equal(p, "\0\x01\x02\x03\x04", 5);
  wisp_grpc_prefix_write(p, 0);
  assert_memory_equal(p, "\0\0\0\0\0", 5);
  wisp_grpc_prefix_write(p, UINT32_MAX);
  assert_memory_equal(p, "\0\xff\xff\xff\xff", 5);
}

static void test_write_msg(void **state) {
  (void)state;
  wisp_buf b = {0};
  assert_int_equal(wisp_grpc_write_msg(&b, "abc", 3, 64), WISP_OK);
  assert_int_equal(wisp_buf_len(&b), 8);
  assert_memory_equal(wisp_buf_rptr(&b), "\0\0\0\0\3abc", 8);
  /* Empty message: just the prefix (NULL data is fine with length 0). */
  assert_int_equal(wisp_grpc_write_msg(&b, NULL, 0, 64), WISP_OK);
  assert_int_equal(wisp_buf_len(&b), 13);
  assert_memory_equal(wisp_buf_rptr(&b) + 8, "\0\0\0\0\0", 5);
  /* The limit counts what is already there, prefix included: 13 + 5 + 2 =
   * 20 fits in 20, not in 19; a failure leaves the buffer as it was. */
  assert_int_equal(wisp_grpc_write_msg(&b, "de", 2, 19), WISP_ERR_TOO_BIG);
  assert_int_equal(wisp_buf_len(&b), 13);
  assert_int_equal(wisp_grpc_write_msg(&b, "de", 2, 20), WISP_OK);
  assert_int_equal(wisp_buf_len(&b), 20);
  /* Limits smaller than a prefix, and huge lengths, fail cleanly. */
  wisp_buf e = {0};
  assert_int_equal(wisp_grpc_write_msg(&e, NULL, 0, 4), WISP_ERR_TOO_BIG);
  assert_int_equal(wisp_grpc_write_msg(&e, "x", SIZE_MAX, SIZE_MAX), WISP_ERR_TOO_BIG);
  assert_int_equal(wisp_grpc_write_msg(&e, "x", (size_t)UINT32_MAX + 1, SIZE_MAX), WISP_ERR_TOO_BIG);
  assert_null(e.data);

  /* What the writer writes, the reader reads. */
  wisp_grpc_reader r;
  wisp_grpc_reader_init(&r, 16);
  run_result rr;
  run_stream(&rr, &r, wisp_buf_rptr(&b), wisp_buf_len(&b), CHUNK_BYTE);
  assert_int_equal(rr.err, WISP_OK);
  assert_int_equal(rr.finish, WISP_OK);
  assert_int_equal(rr.n, 3);
  assert_int_equal(rr.lens[0], 3);
  assert_memory_equal(rr.msgs[0], "abc", 3);
  assert_int_equal(rr.lens[1], 0);
  assert_int_equal(rr.lens[2], 2);
  assert_memory_equal(rr.msgs[2], "de", 2);
  run_result_free(&rr);
  wisp_grpc_reader_cleanup(&r);
  wisp_buf_cleanup(&b);
}

/* ---- grpc-message ---- */

static void test_message_encode(void **state) {
  (void)state;
  static const struct {
    const char *in;
    size_t len;
    const char *want;
  } cases[] = {
      {"", 0, ""},
      {"hello world", 11, "hello world"},
      {"100%", 4, "100%25"},
      {"a\nb\tc\r", 6, "a%0Ab%09c%0D"},
      {"caf\xc3\xa9", 5, "caf%C3%A9"}, /* UTF-8 */
      {"\x7f~ !", 4, "%7F~ !"},        /* DEL is escaped, '~' and ' ' are not */
      {"a\0b", 3, "a%00b"},            /* a NUL byte */
      {"\x1f\x20", 2, "%1F "},
      {"\xff", 1, "%FF"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char out[64];
    size_t w = 99;
    assert_int_equal(wisp_grpc_message_encoded_len(cases[i].in, cases[i].len), strlen(cases[i].want));
    assert_int_equal(wisp_grpc_message_encode(out, sizeof(out), &w, cases[i].in, cases[i].len), WISP_OK);
    assert_string_equal(out, cases[i].want);
    assert_int_equal(w, strlen(cases[i].want));
    /* Exactly enough room. */
    assert_int_equal(wisp_grpc_message_encode(out, strlen(cases[i].want) + 1, &w, cases[i].in, cases[i].len), WISP_OK);
    assert_string_equal(out, cases[i].want);
  }
}

static void test_message_encode_truncates_at_escapes(void **state) {
  (void)state;
  static const struct {
    size_t out_len;
    const char *want;
  } cases[] = {
      /* "ab%" encodes to "ab%25": an escape is never split. */
      {1, ""}, {2, "a"}, {3, "ab"}, {4, "ab"}, {5, "ab"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char out[8];
    memset(out, 'Z', sizeof(out));
    size_t w = 99;
    assert_int_equal(wisp_grpc_message_encode(out, cases[i].out_len, &w, "ab%", 3), WISP_ERR_TOO_BIG);
    assert_string_equal(out, cases[i].want);
    assert_int_equal(w, strlen(cases[i].want));
    assert_int_equal(out[cases[i].out_len], 'Z'); /* nothing past out_len */
  }
  char out[1] = {'Z'};
  size_t w = 99;
  assert_int_equal(wisp_grpc_message_encode(out, 0, &w, "a", 1), WISP_ERR_TOO_BIG);
  assert_int_equal(w, 0);
  assert_int_equal(out[0], 'Z');
}

static void test_message_decode(void **state) {
  (void)state;
  static const struct {
    const char *in;
    const char *want;
    size_t want_len;
  } cases[] = {
      {"", "", 0},
      {"plain text", "plain text", 10},
      {"100%25", "100%", 4},
      {"caf%C3%A9", "caf\xc3\xa9", 5},
      {"caf%c3%a9", "caf\xc3\xa9", 5}, /* lowercase hex is accepted */
      {"a%0Ab", "a\nb", 3},
      {"a%00b", "a\0b", 3},
      /* Broken escapes are kept as they are, never an error. */
      {"%", "%", 1},
      {"abc%", "abc%", 4},
      {"%4", "%4", 2},
      {"%4G", "%4G", 3},
      {"%G1", "%G1", 3},
      {"%%41", "%A", 2},
      {"%2", "%2", 2},
      {"%%", "%%", 2},
      {"%+1", "%+1", 3},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char out[64];
    size_t w = 99;
    size_t in_len = strlen(cases[i].in);
    assert_int_equal(wisp_grpc_message_decode(out, sizeof(out), &w, cases[i].in, in_len), WISP_OK);
    if (w != cases[i].want_len || memcmp(out, cases[i].want, w) != 0) {
      fail_msg("\"%s\": got %zu bytes \"%.*s\"", cases[i].in, w, (int)w, out);
    }
    assert_int_equal(out[w], '\0');
    /* |in_len| + 1 always fits. */
    assert_int_equal(wisp_grpc_message_decode(out, in_len + 1, &w, cases[i].in, in_len), WISP_OK);
    assert_int_equal(w, cases[i].want_len);
  }
  /* Too small: the longest decoded prefix that fits. */
  char out[4];
  size_t w;
  assert_int_equal(wisp_grpc_message_decode(out, 3, &w, "a%41bc", 6), WISP_ERR_TOO_BIG);
  assert_string_equal(out, "aA");
  assert_int_equal(w, 2);
  assert_int_equal(wisp_grpc_message_decode(out, 0, &w, "a", 1), WISP_ERR_TOO_BIG);
  assert_int_equal(w, 0);
  /* Length-bounded: a '%' at the end of |len| is not completed from beyond. */
  assert_int_equal(wisp_grpc_message_decode(out, sizeof(out), &w, "x%41", 2), WISP_OK);
  assert_string_equal(out, "x%");
}

static void test_message_round_trip_all_bytes(void **state) {
  (void)state;
  uint8_t in[256];
  for (int i = 0; i < 256; i++) in[i] = (uint8_t)i;
  char enc[3 * 256 + 1];
  char dec[sizeof(enc)];
  size_t we, wd;
  assert_int_equal(wisp_grpc_message_encode(enc, sizeof(enc), &we, in, sizeof(in)), WISP_OK);
  assert_int_equal(we, wisp_grpc_message_encoded_len(in, sizeof(in)));
  /* 95 printable bytes stay, minus '%'; the other 162 become 3 bytes. */
  assert_int_equal(we, 94 + 162 * 3);
  for (size_t i = 0; i < we; i++) assert_true(enc[i] >= 0x20 && enc[i] <= 0x7e);
  assert_int_equal(wisp_grpc_message_decode(dec, sizeof(dec), &wd, enc, we), WISP_OK);
  assert_int_equal(wd, sizeof(in));
  assert_memory_equal(dec, in, sizeof(in));
}

/* ---- headers ---- */

static void test_timeout_parse(void **state) {
  (void)state;
  static const struct {
    const char *in;
    wisp_err err;
    uint64_t ms;
  } cases[] = {
      {"100m", WISP_OK, 100},
      {"5S", WISP_OK, 5000},
      {"1H", WISP_OK, 3600000},
      {"2M", WISP_OK, 120000},
      {"1000u", WISP_OK, 1},
      {"1001u", WISP_OK, 2}, /* rounded up */
      {"1u", WISP_OK, 1},    /* never 0 for a non-zero timeout */
      {"1n", WISP_OK, 1},
      {"12345678n", WISP_OK, 13},
      {"0n", WISP_OK, 0}, /* what grpc-go sends for an expired deadline */
      {"0m", WISP_OK, 0},
      {"00000001S", WISP_OK, 1000}, /* 8 digits, leading zeros */
      {"99999999H", WISP_OK, UINT64_C(359999996400000)},
      {"99999999n", WISP_OK, 100},
      {"", WISP_ERR_PARSE, 0},
      {"m", WISP_ERR_PARSE, 0},
      {"1", WISP_ERR_PARSE, 0},
      {"100", WISP_ERR_PARSE, 0},
      {"123456789m", WISP_ERR_PARSE, 0}, /* 9 digits */
      {"1h", WISP_ERR_PARSE, 0},         /* units are case-sensitive */
      {"1s", WISP_ERR_PARSE, 0},
      {"1x", WISP_ERR_PARSE, 0},
      {"-1m", WISP_ERR_PARSE, 0},
      {"+1m", WISP_ERR_PARSE, 0},
      {" 1m", WISP_ERR_PARSE, 0},
      {"1m ", WISP_ERR_PARSE, 0},
      {"1 m", WISP_ERR_PARSE, 0},
      {"1.5S", WISP_ERR_PARSE, 0},
      {"1mm", WISP_ERR_PARSE, 0},
      {"0x1m", WISP_ERR_PARSE, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    uint64_t ms = 4242;
    wisp_err e = wisp_grpc_timeout_parse(&ms, cases[i].in, strlen(cases[i].in));
    if (e != cases[i].err) fail_msg("\"%s\": got %d, want %d", cases[i].in, e, cases[i].err);
    assert_int_equal(ms, e == WISP_OK ? cases[i].ms : 4242);
  }
  /* A NUL inside the value is a bad byte, not the end. */
  uint64_t ms;
  assert_int_equal(wisp_grpc_timeout_parse(&ms, "1\0m", 3), WISP_ERR_PARSE);
}

static void test_content_type(void **state) {
  (void)state;
  static const struct {
    const char *in;
    bool ok;
  } cases[] = {
      {"application/grpc", true},
      {"application/grpc+proto", true},
      {"application/grpc+PROTO", true},
      {"application/grpc;charset=utf-8", true},
      {"application/grpc+proto;charset=utf-8", true},
      {"application/grpc;", true},
      {"application/grpc+", true}, /* empty subtype = proto, as grpc-go */
      {"application/grpc+;x=y", true},
      {"", false},
      {"application/grp", false},
      {"application/grpcx", false},
      {"application/grpc-web", false},
      {"application/grpc-web+proto", false},
      {"application/grpc+json", false},
      {"application/grpc+protobuf", false},
      {"application/grpc+prot", false},
      {"application/grpc ", false},
      {" application/grpc", false},
      {"Application/grpc", false},
      {"application/json", false},
      {"text/plain", false},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    if (wisp_grpc_content_type_ok(cases[i].in, strlen(cases[i].in)) != cases[i].ok) {
      fail_msg("\"%s\": want %s", cases[i].in, cases[i].ok ? "ok" : "refused");
    }
  }
  /* Length-bounded. */
  assert_true(wisp_grpc_content_type_ok("application/grpc+json", 16));
  assert_false(wisp_grpc_content_type_ok("application/grpc", 15));
}

/* ---- with real protobuf-c messages (//proto:wisp_v1) ---- */

static void test_protobuf_round_trip(void **state) {
  (void)state;
  static uint8_t csr[300];
  for (size_t i = 0; i < sizeof(csr); i++) csr[i] = (uint8_t)(i * 7);
  Wisp__V1__SignRequest req = WISP__V1__SIGN_REQUEST__INIT;
  req.csr.data = csr;
  req.csr.len = sizeof(csr);
  req.join_token = (char[]){"tok-123"};

  Wisp__V1__Destination d = WISP__V1__DESTINATION__INIT;
  d.address = (char[]){"10.0.0.7:8080"};
  d.spiffe_id = (char[]){"spiffe://shop.local/ns/shop/sa/orders"};
  Wisp__V1__Destination *dests[] = {&d};
  Wisp__V1__Snapshot snap = WISP__V1__SNAPSHOT__INIT;
  snap.version = (char[]){"v7"};
  snap.nonce = (char[]){"n1"};
  snap.policy_yaml = (char[]){"apiVersion: wisp.dev/v1\n"};
  snap.n_destinations = 1;
  snap.destinations = dests;

  wisp_buf b = {0};
  uint8_t tmp[1024];
  size_t n = wisp__v1__sign_request__pack(&req, tmp);
  assert_int_equal(n, wisp__v1__sign_request__get_packed_size(&req));
  assert_int_equal(wisp_grpc_write_msg(&b, tmp, n, 4096), WISP_OK);
  n = wisp__v1__snapshot__pack(&snap, tmp);
  assert_int_equal(wisp_grpc_write_msg(&b, tmp, n, 4096), WISP_OK);

  wisp_grpc_reader r;
  wisp_grpc_reader_init(&r, 1024);
  run_result rr;
  run_stream(&rr, &r, wisp_buf_rptr(&b), wisp_buf_len(&b), CHUNK_3_7);
  assert_int_equal(rr.err, WISP_OK);
  assert_int_equal(rr.finish, WISP_OK);
  assert_int_equal(rr.n, 2);

  Wisp__V1__SignRequest *got = wisp__v1__sign_request__unpack(NULL, rr.lens[0], rr.msgs[0]);
  assert_non_null(got);
  assert_int_equal(got->csr.len, sizeof(csr));
  assert_memory_equal(got->csr.data, csr, sizeof(csr));
  assert_string_equal(got->join_token, "tok-123");
  wisp__v1__sign_request__free_unpacked(got, NULL);

  Wisp__V1__Snapshot *gs = wisp__v1__snapshot__unpack(NULL, rr.lens[1], rr.msgs[1]);
  assert_non_null(gs);
  assert_string_equal(gs->version, "v7");
  assert_string_equal(gs->nonce, "n1");
  assert_int_equal(gs->n_destinations, 1);
  assert_string_equal(gs->destinations[0]->address, "10.0.0.7:8080");
  assert_int_equal(gs->n_bundle, 0);
  wisp__v1__snapshot__free_unpacked(gs, NULL);

  /* The service descriptors carry the gRPC method names. */
  assert_string_equal(wisp__v1__identity__descriptor.name, "wisp.v1.Identity");
  assert_string_equal(wisp__v1__identity__descriptor.methods[0].name, "Sign");
  assert_string_equal(wisp__v1__config__descriptor.name, "wisp.v1.Config");

  run_result_free(&rr);
  wisp_grpc_reader_cleanup(&r);
  wisp_buf_cleanup(&b);
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_status_names),
      cmocka_unit_test(test_status_parse),
      cmocka_unit_test(test_reader_chunkings),
      cmocka_unit_test(test_reader_table),
      cmocka_unit_test(test_reader_one_chunk_in_place),
      cmocka_unit_test(test_reader_split_message),
      cmocka_unit_test(test_reader_oversize_not_buffered),
      cmocka_unit_test(test_reader_memory_follows_arrival),
      cmocka_unit_test(test_reader_zeroed_default_limit),
      cmocka_unit_test(test_reader_large_storage_released),
      cmocka_unit_test(test_reader_random_chunking),
      cmocka_unit_test(test_prefix_write),
      cmocka_unit_test(test_write_msg),
      cmocka_unit_test(test_message_encode),
      cmocka_unit_test(test_message_encode_truncates_at_escapes),
      cmocka_unit_test(test_message_decode),
      cmocka_unit_test(test_message_round_trip_all_bytes),
      cmocka_unit_test(test_timeout_parse),
      cmocka_unit_test(test_content_type),
      cmocka_unit_test(test_protobuf_round_trip),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
