#include "proxy/dataplane/wisp_dests.h"

#include <stdatomic.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_mem.h"
#include "lib/wisp_spiffe.h"

/* Sorted by (family, address, port); the every-port entry of an IP is its
 * port 0, so it sorts first among that IP's entries. */
typedef struct {
  uint8_t family;
  uint8_t ip[16];
  uint16_t port;
  char *id;      /* owned */
  char addr[64]; /* canonical, for messages */
} dest;

struct wisp_dests {
  atomic_int refs; /* wisp_dests_up_ref */
  size_t n;
  dest *v;
};

static void key_of(const wisp_addr *a, dest *k) {
  memset(k, 0, sizeof(*k));
  k->family = (uint8_t)a->sa.ss_family;
  k->port = wisp_addr_port(a);
  if (a->sa.ss_family == AF_INET) memcpy(k->ip, &((const struct sockaddr_in *)&a->sa)->sin_addr, 4);
  else memcpy(k->ip, &((const struct sockaddr_in6 *)&a->sa)->sin6_addr, 16);
}

static int cmp_dest(const void *x, const void *y) {
  const dest *a = x, *b = y;
  if (a->family != b->family) return a->family < b->family ? -1 : 1;
  int r = memcmp(a->ip, b->ip, sizeof(a->ip));
  if (r) return r;
  return a->port == b->port ? 0 : a->port < b->port ? -1 : 1;
}

wisp_err wisp_dests_new(wisp_dests **out, const wisp_policy_destination *entries, size_t n, char *err, size_t err_len) {
  wisp_dests *d = wisp_calloc(1, sizeof(*d));
  atomic_init(&d->refs, 1);
  d->v = n ? wisp_calloc(n, sizeof(dest)) : NULL;
  for (size_t i = 0; i < n; i++) {
    wisp_addr a;
    wisp_spiffe_id id;
    char why[160];
    if (!entries[i].address || wisp_addr_parse_dest(&a, entries[i].address) != WISP_OK) {
      snprintf(err, err_len, "destination %zu: address \"%.64s\" is not IP:PORT or an IP", i,
               entries[i].address ? entries[i].address : "");
      wisp_dests_free(d);
      return WISP_ERR_PARSE;
    }
    const char *sid = entries[i].spiffe_id ? entries[i].spiffe_id : "";
    if (wisp_spiffe_parse(&id, sid, strlen(sid), why, sizeof(why)) != WISP_OK) {
      snprintf(err, err_len, "destination %zu (%s): \"%.128s\" is not a SPIFFE ID: %s", i, entries[i].address, sid,
               why);
      wisp_dests_free(d);
      return WISP_ERR_PARSE;
    }
    key_of(&a, &d->v[d->n]);
    wisp_addr_format_dest(&a, d->v[d->n].addr, sizeof(d->v[d->n].addr));
    d->v[d->n++].id = wisp_strdup(sid);
  }
  if (d->n > 1) qsort(d->v, d->n, sizeof(dest), cmp_dest);
  for (size_t i = 1; i < d->n; i++) {
    if (cmp_dest(&d->v[i - 1], &d->v[i]) == 0) {
      snprintf(err, err_len, "destination %s is listed twice (%s and %s)", d->v[i].addr, d->v[i - 1].id, d->v[i].id);
      wisp_dests_free(d);
      return WISP_ERR_PARSE;
    }
  }
  *out = d;
  return WISP_OK;
}

void wisp_dests_up_ref(wisp_dests *d) { atomic_fetch_add(&d->refs, 1); }

void wisp_dests_free(wisp_dests *d) {
  if (!d || atomic_fetch_sub(&d->refs, 1) != 1) return;
  for (size_t i = 0; i < d->n; i++) free(d->v[i].id);
  free(d->v);
  free(d);
}

size_t wisp_dests_count(const wisp_dests *d) { return d ? d->n : 0; }

const char *wisp_dests_entry(const wisp_dests *d, size_t i, const char **id) {
  *id = d->v[i].id;
  return d->v[i].addr;
}

const char *wisp_dests_lookup(const wisp_dests *d, const wisp_addr *a) {
  if (!d || !d->n) return NULL;
  dest k;
  key_of(a, &k);
  const dest *hit = bsearch(&k, d->v, d->n, sizeof(dest), cmp_dest);
  if (hit) return hit->id;
  k.port = 0;
  hit = bsearch(&k, d->v, d->n, sizeof(dest), cmp_dest);
  return hit ? hit->id : NULL;
}
