/* wisp_agent_sign: the agent as a CA to its callers. Identity.Sign issues
 * an X.509-SVID for a CSR to whoever proves the right to its ID (a join
 * token, a service-account token, or the current SVID for a renewal; never
 * the agent's own ID); Admin CreateJoinToken mints join tokens (a->tokens,
 * written to --state-dir before they are handed out or counted as spent).
 * Private to the agent. */
#ifndef WISP_AGENT_SIGN_H
#define WISP_AGENT_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "control/agent/wisp_rpc.h"

/* wisp_rpc_method handlers. */
void wag_on_sign(wisp_rpc_call *call, const uint8_t *msg, size_t len);
void wag_on_create_token(wisp_rpc_call *call, const uint8_t *msg, size_t len);

#endif
