/* Fuzz target for the address parsers of lib/wisp_net and the transparent
 * destination map (proxy/dataplane/wisp_dests): wisp_addr_parse takes flag values
 * (listeners, --app, routes, the agent address), wisp_addr_parse_dest the
 * addresses of Destination documents, which arrive in a policy file or in
 * the agent's Snapshot. Input: lines; each is tried with both parsers, and
 * lines "ADDRESS SPIFFE-ID" make up a map.
 *
 * Invariants: a parsed address formats to text that parses back to the
 * same address and formats the same again (ports in range; a destination
 * is never unspecified, and has port 0 only when none was written). A map
 * is built only from entries that each parse, with no address twice; then
 * every lookup answers what a linear scan says: the entry for the IP and
 * port, else the IP's every-port entry, else none.
 *
 * Replayed over corpus/addr/ by //tests/fuzz:addr_fuzz_replay in the normal
 * suite; tests/fuzz/run_fuzzers.sh fuzzes it for real. */
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

#include "lib/wisp_net.h"
#include "lib/wisp_spiffe.h"
#include "proxy/dataplane/wisp_dests.h"
#include "tests/fuzz/fuzz.h"

#define MAX_LINE 256
#define MAX_ENTRIES 16

static void check_addr(const char *s) {
  wisp_addr a, b;
  char out[80], again[80];
  if (wisp_addr_parse(&a, s) != WISP_OK) return;
  CHECK(a.sa.ss_family == AF_INET || a.sa.ss_family == AF_INET6);
  CHECK(a.len == (a.sa.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)));
  CHECK(strrchr(s, ':') != NULL);
  wisp_addr_format(&a, out, sizeof(out));
  CHECK(wisp_addr_parse(&b, out) == WISP_OK && wisp_addr_equal(&a, &b));
  wisp_addr_format(&b, again, sizeof(again));
  CHECK(strcmp(out, again) == 0);
}

static bool unspecified(const wisp_addr *a) {
  static const uint8_t kZero[16];
  if (a->sa.ss_family == AF_INET) return ((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr == 0;
  return memcmp(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr, kZero, 16) == 0;
}

static bool check_dest(const char *s, wisp_addr *out) {
  wisp_addr b;
  char text[80], again[80];
  if (wisp_addr_parse_dest(out, s) != WISP_OK) return false;
  CHECK(!unspecified(out));
  wisp_addr_format_dest(out, text, sizeof(text));
  CHECK(wisp_addr_parse_dest(&b, text) == WISP_OK && wisp_addr_equal(out, &b));
  wisp_addr_format_dest(&b, again, sizeof(again));
  CHECK(strcmp(text, again) == 0);
  /* Port 0 means "every port" and is never written as such. */
  if (wisp_addr_port(out) == 0) CHECK(strstr(text, ":") == NULL || text[0] == '[');
  return true;
}

static bool same_ip(const wisp_addr *a, const wisp_addr *b) {
  wisp_addr x = *a, y = *b;
  if (x.sa.ss_family == AF_INET) {
    ((struct sockaddr_in *)&x.sa)->sin_port = ((struct sockaddr_in *)&y.sa)->sin_port;
  } else if (x.sa.ss_family == AF_INET6) {
    ((struct sockaddr_in6 *)&x.sa)->sin6_port = ((struct sockaddr_in6 *)&y.sa)->sin6_port;
  }
  return wisp_addr_equal(&x, &y);
}

/* What a lookup must answer, by a linear scan. */
static const char *scan(const wisp_addr *addrs, const char *const *ids, size_t n, const wisp_addr *q) {
  for (size_t i = 0; i < n; i++)
    if (wisp_addr_equal(&addrs[i], q)) return ids[i];
  for (size_t i = 0; i < n; i++)
    if (wisp_addr_port(&addrs[i]) == 0 && same_ip(&addrs[i], q)) return ids[i];
  return NULL;
}

static void set_port(wisp_addr *a, uint16_t port) {
  if (a->sa.ss_family == AF_INET) ((struct sockaddr_in *)&a->sa)->sin_port = htons(port);
  if (a->sa.ss_family == AF_INET6) ((struct sockaddr_in6 *)&a->sa)->sin6_port = htons(port);
}

static void check_map(const wisp_policy_destination *e, size_t n) {
  wisp_addr addrs[MAX_ENTRIES];
  const char *ids[MAX_ENTRIES];
  bool all_parse = true, dup = false;
  for (size_t i = 0; i < n; i++) {
    wisp_spiffe_id id;
    all_parse = all_parse && check_dest(e[i].address, &addrs[i]) &&
                wisp_spiffe_parse(&id, e[i].spiffe_id, strlen(e[i].spiffe_id), NULL, 0) == WISP_OK;
    ids[i] = e[i].spiffe_id;
    for (size_t k = 0; all_parse && k < i; k++) dup = dup || wisp_addr_equal(&addrs[k], &addrs[i]);
  }
  wisp_dests *d = NULL;
  char err[512];
  wisp_err rc = wisp_dests_new(&d, e, n, err, sizeof(err));
  CHECK((rc == WISP_OK) == (all_parse && !dup));
  if (rc != WISP_OK) {
    CHECK(rc == WISP_ERR_PARSE && err[0] != '\0');
    return;
  }
  CHECK(wisp_dests_count(d) == n);
  for (size_t i = 0; i < n; i++) {
    const char *id = NULL;
    CHECK(wisp_dests_entry(d, i, &id) != NULL && id != NULL);
    static const uint16_t kPorts[] = {0, 1, 80, 65535};
    for (size_t p = 0; p <= sizeof(kPorts) / sizeof(kPorts[0]); p++) {
      wisp_addr q = addrs[i];
      if (p > 0) set_port(&q, kPorts[p - 1]);
      const char *want = scan(addrs, ids, n, &q), *got = wisp_dests_lookup(d, &q);
      CHECK((want == NULL) == (got == NULL));
      if (want) CHECK(strcmp(want, got) == 0);
    }
  }
  wisp_dests_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char line[MAX_ENTRIES][MAX_LINE];
  wisp_policy_destination e[MAX_ENTRIES];
  size_t n = 0, i = 0;
  while (i < size) {
    const uint8_t *nl = memchr(data + i, '\n', size - i);
    size_t len = nl ? (size_t)(nl - (data + i)) : size - i;
    char s[MAX_LINE];
    size_t keep = len < MAX_LINE - 1 ? len : MAX_LINE - 1;
    memcpy(s, data + i, keep);
    s[keep] = '\0'; /* a NUL in the line ends it, as in a C string */
    check_addr(s);
    wisp_addr unused;
    (void)check_dest(s, &unused);
    char *sp = strchr(s, ' ');
    if (sp && n < MAX_ENTRIES) {
      memcpy(line[n], s, sizeof(s));
      line[n][sp - s] = '\0';
      e[n].address = line[n];
      e[n].spiffe_id = line[n] + (sp - s) + 1;
      n++;
    }
    i += len + 1;
  }
  check_map(e, n);
  return 0;
}
