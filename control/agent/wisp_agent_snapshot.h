/* wisp_agent_snapshot: the agent's answers packed as protobuf: the roots
 * as DER (SignResponse.bundle, Snapshot.bundle), a Snapshot of the policy
 * and bundle for Config.Watch, and the nonces that tell them apart. Pure
 * packing: no agent state, no I/O. Private to the agent. */
#ifndef WISP_AGENT_SNAPSHOT_H
#define WISP_AGENT_SNAPSHOT_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "control/agent/wisp_rpc.h"
#include "lib/wisp_ca.h"
#include "lib/wisp_policy.h"

/* DER of every root of |ca|, |*out_n| of them; release with
 * wag_free_der. */
ProtobufCBinaryData *wag_bundle_der(const wisp_ca *ca, size_t *out_n);
void wag_free_der(ProtobufCBinaryData *der, size_t n);
/* 32 random lower-case hex digits. */
void wag_new_nonce(char out[33]);
/* A new Snapshot (without a nonce) of |version|, |policy_yaml|, |ca|'s
 * roots and |compiled|'s Destinations (|compiled| NULL: none), packed
 * once for every watcher; the caller owns it (wisp_rpc_shared_free). */
wisp_rpc_shared *wag_snapshot_pack(const wisp_ca *ca, const wisp_policy *compiled, const char *policy_yaml,
                                   const char *version);

#endif
