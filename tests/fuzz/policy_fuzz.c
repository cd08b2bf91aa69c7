/* Fuzz target for lib/wisp_policy: compiles arbitrary bytes as a policy
 * stream. It must never crash or leak; a refusal must come with a message
 * that names the document (or the policy as a whole) and leave the output
 * alone; a success must compile the same way twice, and every view made of
 * it must answer a spread of requests with a consistent decision.
 *
 * Replayed over corpus/policy/ and the examples in tests/policy/ by
 * //tests/fuzz:policy_fuzz_replay in the normal suite;
 * tests/fuzz/run_fuzzers.sh fuzzes it for real (new inputs can be merged
 * into the first of those directories). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_policy.h"
#include "tests/fuzz/fuzz.h"

#define MAX_WORKLOADS 8

static bool one_of(const char *s, const char *const *set, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s == set[i] || strcmp(s, set[i]) == 0) return true;
  return false;
}

static void check_decision(const wisp_policy_decision *d) {
  static const char *const kAllow[] = {WISP_POLICY_REASON_ALLOW_RULE, WISP_POLICY_REASON_NO_POLICY,
                                       WISP_POLICY_REASON_NO_ALLOW_POLICY};
  static const char *const kDeny[] = {WISP_POLICY_REASON_DENY_RULE, WISP_POLICY_REASON_NO_ALLOW_MATCH,
                                      WISP_POLICY_REASON_NO_IDENTITY};
  CHECK(d->reason != NULL);
  CHECK(d->allow ? one_of(d->reason, kAllow, 3) : one_of(d->reason, kDeny, 3));
  bool by_rule =
      strcmp(d->reason, WISP_POLICY_REASON_ALLOW_RULE) == 0 || strcmp(d->reason, WISP_POLICY_REASON_DENY_RULE) == 0;
  CHECK(by_rule == (d->policy != NULL));
  CHECK(by_rule == (d->rule >= 0));
  if (by_rule) CHECK(strchr(d->policy, '/') != NULL);
}

/* Workload IDs for the selectors the summary lists ("selector=ns/sa"). */
static size_t workloads_from(const char *summary, char ids[][600]) {
  size_t n = 0;
  snprintf(ids[n++], 600, "spiffe://fuzz.td/ns/default/sa/default");
  for (const char *s = strstr(summary, "selector="); s && n < MAX_WORKLOADS; s = strstr(s + 1, "selector=")) {
    const char *ns = s + strlen("selector=");
    const char *slash = strchr(ns, '/');
    if (!slash) break;
    size_t sa_len = strcspn(slash + 1, " ;");
    const char *sa = slash + 1;
    if (sa_len == 1 && sa[0] == '*') sa = "any", sa_len = 3;
    snprintf(ids[n++], 600, "spiffe://fuzz.td/ns/%.*s/sa/%.*s", (int)(slash - ns), ns, (int)sa_len, sa);
  }
  return n;
}

static void exercise(wisp_policy *p, const char *summary) {
  char ids[MAX_WORKLOADS + 1][600];
  size_t n = workloads_from(summary, ids);
  static const char *const kMethods[] = {"GET", "PURGE", "get", NULL};
  static const char *const kPaths[] = {"/", "/a/b?c=/d", "", "/x.json", NULL};
  static const uint16_t kPorts[] = {80, 8080, 0};
  for (size_t w = 0; w < n; w++) {
    wisp_policy_view *v = NULL;
    if (wisp_policy_view_new(&v, p, ids[w], strlen(ids[w])) != WISP_OK) continue;
    wisp_policy_view_info info;
    wisp_policy_view_get_info(v, &info);
    CHECK(info.mode == wisp_policy_view_mode(v));
    CHECK(info.indexed_rules <= info.allow_rules + info.deny_rules);
    for (size_t c = 0; c <= n; c++) {
      const char *who = c < n ? ids[c] : NULL;
      for (size_t m = 0; m < 4; m++)
        for (size_t pa = 0; pa < 5; pa++)
          for (size_t po = 0; po < 3; po++) {
            wisp_policy_request req = {who,         who ? strlen(who) : 0,
                                       kMethods[m], kMethods[m] ? strlen(kMethods[m]) : 0,
                                       kPaths[pa],  kPaths[pa] ? strlen(kPaths[pa]) : 0,
                                       kPorts[po]};
            wisp_policy_decision d;
            wisp_policy_evaluate(v, &req, &d);
            check_decision(&d);
            if (!who && info.mode == WISP_MTLS_STRICT) CHECK(!d.allow);
          }
    }
    wisp_policy_view_free(v);
  }
  wisp_policy_view *bad = NULL;
  CHECK(wisp_policy_view_new(&bad, p, "spiffe://", 9) == WISP_ERR_IDENTITY && bad == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *yaml = (const char *)data;
  wisp_policy *p = NULL;
  char err[512];
  memset(err, 'x', sizeof(err));
  wisp_err e = wisp_policy_compile(&p, yaml, size, err, sizeof(err));
  if (e != WISP_OK) {
    CHECK(p == NULL);
    CHECK(e == WISP_ERR_PARSE || e == WISP_ERR_TOO_BIG);
    CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
    CHECK(strncmp(err, "document ", 9) == 0 || strncmp(err, "policy: ", 8) == 0);
    char tiny[6];
    CHECK(wisp_policy_compile(&p, yaml, size, tiny, sizeof(tiny)) == e && strlen(tiny) == 5);
    CHECK(wisp_policy_compile(&p, yaml, size, NULL, 0) == e && p == NULL);
    return 0;
  }
  wisp_policy_stats st;
  wisp_policy_get_stats(p, &st);
  CHECK(st.authorization_policies == st.allow_policies + st.deny_policies);
  CHECK(st.documents == st.authorization_policies + st.peer_authentications);
  CHECK(st.rules <= WISP_POLICY_MAX_RULES);
  size_t len = wisp_policy_summary(p, NULL, 0);
  char *summary = malloc(len + 1);
  CHECK(summary != NULL);
  CHECK(wisp_policy_summary(p, summary, len + 1) == len && strlen(summary) == len);

  /* Deterministic: the same bytes compile to the same policy. */
  wisp_policy *again = NULL;
  CHECK(wisp_policy_compile(&again, yaml, size, NULL, 0) == WISP_OK);
  char *summary2 = malloc(len + 1);
  CHECK(summary2 != NULL);
  CHECK(wisp_policy_summary(again, summary2, len + 1) == len && strcmp(summary, summary2) == 0);
  wisp_policy_free(again);
  free(summary2);

  exercise(p, summary);
  free(summary);
  wisp_policy_free(p);
  return 0;
}
