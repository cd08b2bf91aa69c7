#include "lib/wisp_connlimit.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
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
  wisp_connlimit_key key;
  uint32_t count;
  struct wisp_connlimit_src *next;
} src_entry;

struct wisp_connlimit {
  uint32_t max_total, max_per_source;
  uint32_t count, nsources;
  uint64_t seed;
  src_entry *buckets[CONNLIMIT_BUCKETS];
  /* wisp_connlimit_share: every call takes |lock| (wisp-proxy --workers >
   * 1: one table for all workers' listeners on one address). */
  bool shared;
  pthread_mutex_t lock;
};

/* ---- keys ---- */

bool wisp_connlimit_key_addr(wisp_connlimit_key *out, const wisp_addr *a, unsigned v6_prefix) {
  memset(out, 0, sizeof(*out));
  if (a->sa.ss_family == AF_INET) {
    out->kind = WISP_CONNLIMIT_KEY_IP;
    out->bytes[10] = out->bytes[11] = 0xff;
    memcpy(out->bytes + 12, &((const struct sockaddr_in *)&a->sa)->sin_addr, 4);
    return true;
  }
  if (a->sa.ss_family != AF_INET6) return false;
  const struct in6_addr *v6 = &((const struct sockaddr_in6 *)&a->sa)->sin6_addr;
  out->kind = WISP_CONNLIMIT_KEY_IP;
  memcpy(out->bytes, v6->s6_addr, 16);
  if (IN6_IS_ADDR_V4MAPPED(v6)) return true; /* an IPv4 caller: its whole address */
  unsigned bits = v6_prefix == 0 || v6_prefix > 128 ? 128 : v6_prefix;
  out->prefix = (uint8_t)bits;
  for (unsigned i = bits / 8; i < 16; i++) {
    unsigned keep = i == bits / 8 ? bits % 8 : 0; /* leading bits of this byte that stay */
    out->bytes[i] &= (uint8_t)(0xff00u >> keep);
  }
  return true;
}

void wisp_connlimit_key_uid(wisp_connlimit_key *out, uint32_t uid) {
  memset(out, 0, sizeof(*out));
  out->kind = WISP_CONNLIMIT_KEY_UID;
  for (int i = 0; i < 4; i++) out->bytes[i] = (uint8_t)(uid >> (24 - 8 * i));
}

bool wisp_connlimit_key_equal(const wisp_connlimit_key *a, const wisp_connlimit_key *b) {
  return a->kind == b->kind && a->prefix == b->prefix && memcmp(a->bytes, b->bytes, sizeof(a->bytes)) == 0;
}

void wisp_connlimit_key_name(const wisp_connlimit_key *k, char *out, size_t out_len) {
  static const uint8_t kV4Mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  char host[INET6_ADDRSTRLEN];
  if (k->kind == WISP_CONNLIMIT_KEY_UID) {
    uint32_t uid = (uint32_t)k->bytes[0] << 24 | (uint32_t)k->bytes[1] << 16 | (uint32_t)k->bytes[2] << 8 | k->bytes[3];
    snprintf(out, out_len, "uid %" PRIu32, uid);
  } else if (k->kind != WISP_CONNLIMIT_KEY_IP) {
    snprintf(out, out_len, "?");
  } else if (memcmp(k->bytes, kV4Mapped, sizeof(kV4Mapped)) == 0) {
    inet_ntop(AF_INET, k->bytes + 12, host, sizeof(host));
    snprintf(out, out_len, "%s", host);
  } else {
    inet_ntop(AF_INET6, k->bytes, host, sizeof(host));
    if (k->prefix < 128) {
      snprintf(out, out_len, "%s/%u", host, (unsigned)k->prefix);
    } else {
      snprintf(out, out_len, "%s", host);
    }
  }
}

/* ---- counting ---- */

uint64_t wisp_connlimit_key_hash(const wisp_connlimit_key *key, uint64_t seed) {
  uint64_t w[2];
  memcpy(w, key->bytes, 16);
  uint64_t h = seed ^ ((uint64_t)key->kind << 8 | key->prefix);
  for (int i = 0; i < 2; i++) {
    h ^= w[i];
    h *= 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
  }
  return h;
}

uint64_t wisp_connlimit_seed(const void *salt) {
  uint64_t seed;
  if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
    seed = (uint64_t)(uintptr_t)salt * 0x2545F4914F6CDD1Dull; /* no entropy yet: still varies per run */
  return seed;
}

static size_t bucket_of(const wisp_connlimit *cl, const wisp_connlimit_key *key) {
  return (size_t)(wisp_connlimit_key_hash(key, cl->seed) % CONNLIMIT_BUCKETS);
}

static src_entry *find(const wisp_connlimit *cl, const wisp_connlimit_key *key) {
  for (src_entry *e = cl->buckets[bucket_of(cl, key)]; e; e = e->next) {
    if (wisp_connlimit_key_equal(&e->key, key)) return e;
  }
  return NULL;
}

wisp_connlimit *wisp_connlimit_new(uint32_t max_total, uint32_t max_per_source) {
  wisp_connlimit *cl = wisp_calloc(1, sizeof(*cl));
  cl->max_total = max_total;
  cl->max_per_source = max_per_source;
  cl->seed = wisp_connlimit_seed(cl);
  pthread_mutex_init(&cl->lock, NULL);
  return cl;
}

void wisp_connlimit_share(wisp_connlimit *cl) { cl->shared = true; }

static void lock(const wisp_connlimit *cl) {
  if (cl->shared) pthread_mutex_lock(&((wisp_connlimit *)cl)->lock);
}

static void unlock(const wisp_connlimit *cl) {
  if (cl->shared) pthread_mutex_unlock(&((wisp_connlimit *)cl)->lock);
}

void wisp_connlimit_free(wisp_connlimit *cl) {
  if (!cl) return;
  pthread_mutex_destroy(&cl->lock);
  for (size_t b = 0; b < CONNLIMIT_BUCKETS; b++) {
    while (cl->buckets[b]) {
      src_entry *next = cl->buckets[b]->next;
      free(cl->buckets[b]);
      cl->buckets[b] = next;
    }
  }
  free(cl);
}

static bool counted(const wisp_connlimit *cl, const wisp_connlimit_key *src) {
  return cl->max_per_source && src && src->kind != WISP_CONNLIMIT_KEY_NONE;
}

static wisp_connlimit_result take_locked(wisp_connlimit *cl, const wisp_connlimit_key *src, wisp_connlimit_slot *out) {
  if (cl->max_total && cl->count >= cl->max_total) return WISP_CONNLIMIT_TOTAL;
  src_entry *e = NULL;
  if (counted(cl, src)) {
    e = find(cl, src);
    if (e && e->count >= cl->max_per_source) return WISP_CONNLIMIT_SOURCE;
    if (!e) {
      e = wisp_calloc(1, sizeof(*e));
      e->key = *src;
      size_t b = bucket_of(cl, src);
      e->next = cl->buckets[b];
      cl->buckets[b] = e;
      cl->nsources++;
    }
    e->count++;
  }
  cl->count++;
  out->cl = cl;
  out->src = e;
  if (src) out->key = *src;
  return WISP_CONNLIMIT_OK;
}

wisp_connlimit_result wisp_connlimit_take(wisp_connlimit *cl, const wisp_connlimit_key *src, wisp_connlimit_slot *out) {
  memset(out, 0, sizeof(*out));
  lock(cl);
  wisp_connlimit_result r = take_locked(cl, src, out);
  unlock(cl);
  return r;
}

static void release_locked(wisp_connlimit *cl, src_entry *e) {
  cl->count--;
  if (!e || --e->count > 0) return;
  for (src_entry **pp = &cl->buckets[bucket_of(cl, &e->key)]; *pp; pp = &(*pp)->next) {
    if (*pp == e) {
      *pp = e->next;
      break;
    }
  }
  cl->nsources--;
  free(e);
}

void wisp_connlimit_release(wisp_connlimit_slot *slot) {
  wisp_connlimit *cl = slot->cl;
  src_entry *e = slot->src;
  memset(slot, 0, sizeof(*slot));
  if (!cl) return;
  lock(cl);
  release_locked(cl, e);
  unlock(cl);
}

void wisp_connlimit_move(wisp_connlimit_slot *to, wisp_connlimit_slot *from) {
  *to = *from;
  memset(from, 0, sizeof(*from));
}

uint32_t wisp_connlimit_count(const wisp_connlimit *cl) {
  lock(cl);
  uint32_t n = cl->count;
  unlock(cl);
  return n;
}

uint32_t wisp_connlimit_sources(const wisp_connlimit *cl) {
  lock(cl);
  uint32_t n = cl->nsources;
  unlock(cl);
  return n;
}

uint32_t wisp_connlimit_source_count(const wisp_connlimit *cl, const wisp_connlimit_key *src) {
  if (!counted(cl, src)) return 0;
  lock(cl);
  const src_entry *e = find(cl, src);
  uint32_t n = e ? e->count : 0;
  unlock(cl);
  return n;
}
