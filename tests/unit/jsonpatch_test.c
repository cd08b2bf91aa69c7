/* Unit tests for lib/wisp_jsonpatch: the JSON Patch between two documents,
 * table-driven (from, to, the exact operations wanted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib/wisp_jsonpatch.h"
#include "tests/unit/test_util.h"

typedef struct {
  const char *name, *from, *to, *ops;
} diff_case;

static const diff_case kCases[] = {
    {"equal", "{\"a\":[1,{\"b\":null}]}", "{\"a\":[1,{\"b\":null}]}", "[]"},
    {"key added", "{\"a\":1}", "{\"a\":1,\"b\":[true]}", "[{\"op\":\"add\",\"path\":\"/b\",\"value\":[true]}]"},
    {"key removed", "{\"a\":1,\"b\":2}", "{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"/b\"}]"},
    {"value replaced", "{\"a\":{\"b\":1}}", "{\"a\":{\"b\":\"1\"}}",
     "[{\"op\":\"replace\",\"path\":\"/a/b\",\"value\":\"1\"}]"},
    {"integer and real differ", "{\"a\":1}", "{\"a\":1.0}", "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":1.0}]"},
    {"pointer escapes", "{}", "{\"wisp.dev/x~y\":1}", "[{\"op\":\"add\",\"path\":\"/wisp.dev~1x~0y\",\"value\":1}]"},
    {"inserted first", "{\"l\":[\"x\"]}", "{\"l\":[\"a\",\"b\",\"x\"]}",
     "[{\"op\":\"add\",\"path\":\"/l/0\",\"value\":\"a\"},{\"op\":\"add\",\"path\":\"/l/1\",\"value\":\"b\"}]"},
    {"appended", "{\"l\":[\"x\"]}", "{\"l\":[\"x\",\"y\"]}", "[{\"op\":\"add\",\"path\":\"/l/-\",\"value\":\"y\"}]"},
    {"inserted between", "{\"l\":[1,3]}", "{\"l\":[1,2,3]}", "[{\"op\":\"add\",\"path\":\"/l/1\",\"value\":2}]"},
    {"into an empty array", "{\"l\":[]}", "{\"l\":[1]}", "[{\"op\":\"add\",\"path\":\"/l/-\",\"value\":1}]"},
    {"same length, one item changed", "{\"l\":[{\"a\":1},2]}", "{\"l\":[{\"a\":5},2]}",
     "[{\"op\":\"replace\",\"path\":\"/l/0/a\",\"value\":5}]"},
    {"shorter: replaced whole", "{\"l\":[1,2,3]}", "{\"l\":[1,3]}",
     "[{\"op\":\"replace\",\"path\":\"/l\",\"value\":[1,3]}]"},
    {"type changed", "{\"a\":[1]}", "{\"a\":{}}", "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":{}}]"},
    {"root replaced", "[1]", "{}", "[{\"op\":\"replace\",\"path\":\"\",\"value\":{}}]"},
};

static void test_diff_table(void **state) {
  for (size_t i = 0; i < sizeof(kCases) / sizeof(kCases[0]); i++) {
    json_t *from = json_loads(kCases[i].from, 0, NULL), *to = json_loads(kCases[i].to, 0, NULL);
    json_t *want = json_loads(kCases[i].ops, 0, NULL);
    assert_non_null(from);
    assert_non_null(to);
    assert_non_null(want);
    json_t *got = wisp_jsonpatch_diff(from, to);
    if (!json_equal(got, want)) {
      char *text = json_dumps(got, JSON_COMPACT);
      fail_msg("%s: got %s, want %s", kCases[i].name, text, kCases[i].ops);
    }
    json_decref(got);
    json_decref(want);
    json_decref(from);
    json_decref(to);
  }
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test(test_diff_table),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
