/* wisp_connlimit: how many connections a listener holds, in total and per
 * source, against limits such as wisp-proxy's --max-connections and
 * --max-connections-per-source or wisp-agent's. Bookkeeping (no I/O, no
 * clock, no globals), unit-tested in tests/unit/connlimit_test.c.
 *
 * One thread, or many: a table is used by one thread unless
 * wisp_connlimit_share is called on it (wisp-proxy --workers N > 1: one
 * table per listener address, shared by the N workers' listeners on it, so
 * both limits hold for the process as the flags read). A shared table takes
 * its own mutex in every call below (take at accept, release at close,
 * the counts for /metrics), never while calling out: nothing else is done
 * under it. An unshared one takes no lock.
 *
 * A source is a wisp_connlimit_key: an IP address, or a local uid (the
 * agent's Unix socket). Keys are made here only, so every place that
 * counts callers (the proxy's data and admin listeners, the agent) agrees
 * on who one caller is:
 *   - an IPv4 address is itself; a v4-mapped IPv6 address is its IPv4
 *     address; the port never matters;
 *   - an IPv6 address is cut to the prefix the caller asks for: 128 (the
 *     whole address) by default, as Kubernetes gives each node a /64 of
 *     pod addresses and its CNI stops pods from spoofing one another's, so
 *     a shorter prefix would count a node's pods as one caller.
 *
 * Ownership: a slot taken with wisp_connlimit_take belongs to whatever
 * carries the connection (detection, an HTTP/2 connection, an L4 tunnel)
 * and moves with it; wisp_connlimit_release gives it back exactly once (it
 * zeroes the slot, so releasing again is harmless), on whichever thread
 * holds the carrier then: a shared table takes it back from any. Every
 * slot must be released before its wisp_connlimit is freed. */
#ifndef WISP_CONNLIMIT_H
#define WISP_CONNLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wisp_net.h"

/* IPv6 sources are whole addresses unless a caller asks for less. */
#define WISP_CONNLIMIT_V6_PREFIX_DEFAULT 128

typedef enum {
  WISP_CONNLIMIT_KEY_NONE, /* not an IP address or uid: not counted per source */
  WISP_CONNLIMIT_KEY_IP,   /* bytes: a v4-mapped IPv4 or an IPv6 address, host bits past the prefix zero */
  WISP_CONNLIMIT_KEY_UID,  /* bytes 0..3: the uid, big-endian */
} wisp_connlimit_key_kind;

/* Who a connection counts against; compare with wisp_connlimit_key_equal. */
typedef struct {
  uint8_t kind;   /* wisp_connlimit_key_kind */
  uint8_t prefix; /* KEY_IP over IPv6: the prefix length kept (for the name) */
  uint8_t bytes[16];
} wisp_connlimit_key;

/* The key of the IP address |a| (port ignored), IPv6 cut to |v6_prefix|
 * bits (1..128). Returns false, with a KEY_NONE key, for any other
 * address family. */
bool wisp_connlimit_key_addr(wisp_connlimit_key *out, const wisp_addr *a, unsigned v6_prefix);
/* The key of a local caller's uid. */
void wisp_connlimit_key_uid(wisp_connlimit_key *out, uint32_t uid);
bool wisp_connlimit_key_equal(const wisp_connlimit_key *a, const wisp_connlimit_key *b);
/* The source as text: "10.0.0.5", "fd00::5", "fd00:1:2:3::/64", "uid 1000",
 * "?" for KEY_NONE. */
void wisp_connlimit_key_name(const wisp_connlimit_key *k, char *out, size_t out_len);
/* For tables of sources (here, lib/wisp_resetlim): a hash of |key| under a
 * random |seed| from wisp_connlimit_seed (|salt|: any pointer, used only
 * when the kernel has no entropy yet), so callers cannot choose addresses
 * that all land in one chain. */
uint64_t wisp_connlimit_key_hash(const wisp_connlimit_key *key, uint64_t seed);
uint64_t wisp_connlimit_seed(const void *salt);

typedef struct wisp_connlimit wisp_connlimit;
struct wisp_connlimit_src;

typedef enum {
  WISP_CONNLIMIT_OK,
  WISP_CONNLIMIT_TOTAL,  /* the listener holds max_total connections */
  WISP_CONNLIMIT_SOURCE, /* this source holds max_per_source of them */
} wisp_connlimit_result;

typedef struct {
  wisp_connlimit *cl;             /* NULL: no slot held */
  struct wisp_connlimit_src *src; /* NULL when sources are not counted */
  wisp_connlimit_key key;         /* the source it was taken for, counted or not (who the caller is) */
} wisp_connlimit_slot;

/* A limiter of |max_total| connections, |max_per_source| from one source;
 * 0 means no limit (with max_per_source 0, sources are not tracked). */
wisp_connlimit *wisp_connlimit_new(uint32_t max_total, uint32_t max_per_source);
/* Accepts NULL. */
void wisp_connlimit_free(wisp_connlimit *cl);
/* From now on |cl| may be used by several threads at once (each call takes
 * its lock). Call before another thread sees it. */
void wisp_connlimit_share(wisp_connlimit *cl);
/* Takes a slot for a connection from |src| into |out| (zeroed on refusal).
 * A KEY_NONE source counts only against the total. Returns
 * WISP_CONNLIMIT_OK, or which limit refuses it. */
wisp_connlimit_result wisp_connlimit_take(wisp_connlimit *cl, const wisp_connlimit_key *src, wisp_connlimit_slot *out);
/* Gives the slot back and zeroes it; a zeroed slot is left alone. */
void wisp_connlimit_release(wisp_connlimit_slot *slot);
/* Moves a slot to a new holder: |*to| = |*from|, |from| zeroed. */
void wisp_connlimit_move(wisp_connlimit_slot *to, wisp_connlimit_slot *from);

/* Connections held now, in total and from the source |src|. */
uint32_t wisp_connlimit_count(const wisp_connlimit *cl);
uint32_t wisp_connlimit_source_count(const wisp_connlimit *cl, const wisp_connlimit_key *src);
/* Distinct sources holding connections now (0 when not tracked). */
uint32_t wisp_connlimit_sources(const wisp_connlimit *cl);

#endif
