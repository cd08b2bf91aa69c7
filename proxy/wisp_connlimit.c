#include "proxy/wisp_connlimit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "lib/wisp_mem.h"

/* Sources are chained in a fixed table; a chain holds at most the
 * listener's connections, and the seed keeps callers from choosing
 * addresses that all land in one chain. */
#define CONNLIMIT_BUCKETS 1024

typedef struct wisp_connlimit_src {
  uint8_t key[16]; /* v4-mapped IPv4, or an IPv6 /64 with the rest zero */
  uint32_t count;
  struct wisp_connlimit_src *next;
} src_entry;

struct wisp_connlimit {
  uint32_t max_total, max_per_source;
  uint32_t count, nsources;
  uint64_t seed;
  src_entry *buckets[CONNLIMIT_BUCKETS];
};

/* The source key of |a|; false for a non-IP address (not counted). */
static bool source_key(const wisp_addr *a, uint8_t out[16]) {
  memset(out, 0, 16);
  if (a->sa.ss_family == AF_INET) {
    out[10] = out[11] = 0xff;
    memcpy(out + 12, &((const struct sockaddr_in *)&a->sa)->sin_addr, 4);
    return true;
  }
  if (a->sa.ss_family != AF_INET6) return false;
  const struct in6_addr *v6 = &((const struct sockaddr_in6 *)&a->sa)->sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED(v6)) {
    memcpy(out, v6->s6_addr, 16);
  } else {
    memcpy(out, v6->s6_addr, 8); /* the /64 */
  }
  return true;
}

static size_t bucket_of(const wisp_connlimit *cl, const uint8_t key[16]) {
  uint64_t w[2];
  memcpy(w, key, 16);
  uint64_t h = cl->seed;
  for (int i = 0; i < 2; i++) {
    h ^= w[i];
    h *= 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
  }
  return (size_t)(h % CONNLIMIT_BUCKETS);
}

static src_entry *find(const wisp_connlimit *cl, const uint8_t key[16]) {
  for (src_entry *e = cl->buckets[bucket_of(cl, key)]; e; e = e->next) {
    if (memcmp(e->key, key, 16) == 0) return e;
  }
  return NULL;
}

wisp_connlimit *wisp_connlimit_new(uint32_t max_total, uint32_t max_per_source) {
  wisp_connlimit *cl = wisp_calloc(1, sizeof(*cl));
  cl->max_total = max_total;
  cl->max_per_source = max_per_source;
  if (getrandom(&cl->seed, sizeof(cl->seed), GRND_NONBLOCK) != (ssize_t)sizeof(cl->seed))
    cl->seed = (uint64_t)(uintptr_t)cl * 0x2545F4914F6CDD1Dull; /* no entropy yet: still varies per run */
  return cl;
}

void wisp_connlimit_free(wisp_connlimit *cl) {
  if (!cl) return;
  for (size_t b = 0; b < CONNLIMIT_BUCKETS; b++) {
    while (cl->buckets[b]) {
      src_entry *next = cl->buckets[b]->next;
      free(cl->buckets[b]);
      cl->buckets[b] = next;
    }
  }
  free(cl);
}

wisp_connlimit_result wisp_connlimit_take(wisp_connlimit *cl, const wisp_addr *src, wisp_connlimit_slot *out) {
  memset(out, 0, sizeof(*out));
  if (cl->max_total && cl->count >= cl->max_total) return WISP_CONNLIMIT_TOTAL;
  uint8_t key[16];
  src_entry *e = NULL;
  if (cl->max_per_source && source_key(src, key)) {
    e = find(cl, key);
    if (e && e->count >= cl->max_per_source) return WISP_CONNLIMIT_SOURCE;
    if (!e) {
      e = wisp_calloc(1, sizeof(*e));
      memcpy(e->key, key, 16);
      size_t b = bucket_of(cl, key);
      e->next = cl->buckets[b];
      cl->buckets[b] = e;
      cl->nsources++;
    }
    e->count++;
  }
  cl->count++;
  out->cl = cl;
  out->src = e;
  return WISP_CONNLIMIT_OK;
}

void wisp_connlimit_release(wisp_connlimit_slot *slot) {
  wisp_connlimit *cl = slot->cl;
  src_entry *e = slot->src;
  memset(slot, 0, sizeof(*slot));
  if (!cl) return;
  cl->count--;
  if (!e || --e->count > 0) return;
  for (src_entry **pp = &cl->buckets[bucket_of(cl, e->key)]; *pp; pp = &(*pp)->next) {
    if (*pp == e) {
      *pp = e->next;
      break;
    }
  }
  cl->nsources--;
  free(e);
}

void wisp_connlimit_move(wisp_connlimit_slot *to, wisp_connlimit_slot *from) {
  *to = *from;
  memset(from, 0, sizeof(*from));
}

uint32_t wisp_connlimit_count(const wisp_connlimit *cl) { return cl->count; }

uint32_t wisp_connlimit_sources(const wisp_connlimit *cl) { return cl->nsources; }

uint32_t wisp_connlimit_source_count(const wisp_connlimit *cl, const wisp_addr *src) {
  uint8_t key[16];
  if (!cl->max_per_source || !source_key(src, key)) return 0;
  const src_entry *e = find(cl, key);
  return e ? e->count : 0;
}

void wisp_connlimit_source_name(const wisp_addr *src, char *out, size_t out_len) {
  uint8_t key[16];
  char host[INET6_ADDRSTRLEN];
  if (!source_key(src, key)) {
    snprintf(out, out_len, "?");
  } else if (key[10] == 0xff && key[11] == 0xff && memcmp(key, "\0\0\0\0\0\0\0\0\0\0", 10) == 0) {
    inet_ntop(AF_INET, key + 12, host, sizeof(host));
    snprintf(out, out_len, "%s", host);
  } else {
    inet_ntop(AF_INET6, key, host, sizeof(host));
    snprintf(out, out_len, "%s/64", host);
  }
}
