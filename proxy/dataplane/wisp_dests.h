/* wisp_dests: transparent mode's address -> identity map. The outbound
 * proxy dials a destination's original address and, if the map names it,
 * the peer sidecar there must present exactly that SPIFFE ID; a destination
 * it does not name need only present an ID in our trust domain. The map
 * comes from the agent (Snapshot.destinations) or from the Destination
 * documents of --policy FILE.
 *
 * Ownership: wisp_dests_new makes an immutable, refcounted map the caller
 * owns (it copies the entries); lookups return strings borrowed from the map. The
 * proxy holds one map at a time (wisp_dataplane_set_dests) and copies the ID
 * into each connection it verifies, so a map can be replaced at any time. */
#ifndef WISP_DESTS_H
#define WISP_DESTS_H

#include <stddef.h>

#include "lib/wisp_err.h"
#include "lib/wisp_net.h"
#include "lib/wisp_policy.h"

typedef struct wisp_dests wisp_dests;

/* Builds a map from |n| entries (address as wisp_addr_parse_dest takes it,
 * SPIFFE ID). WISP_ERR_PARSE with |err| naming the entry when an address
 * or ID does not parse or an address is listed twice. */
wisp_err wisp_dests_new(wisp_dests **out, const wisp_policy_destination *entries, size_t n, char *err,
                        size_t err_len) WISP_MUST_CHECK;
/* Drops one reference (accepts NULL); the last frees the map. */
void wisp_dests_free(wisp_dests *d);
/* Takes another reference: a map never changes once made, so threads
 * (wisp-proxy's --workers) may read one at once. */
void wisp_dests_up_ref(wisp_dests *d);
size_t wisp_dests_count(const wisp_dests *d); /* 0 for NULL */
/* Entry |i| (< count) in address order: returns its address and sets
 * |*id|; both borrowed from |d|. */
const char *wisp_dests_entry(const wisp_dests *d, size_t i, const char **id);
/* The ID the sidecar at |a| must present: the entry for its IP and port,
 * else the entry for its IP alone, else NULL. |d| may be NULL. */
const char *wisp_dests_lookup(const wisp_dests *d, const wisp_addr *a);

#endif
