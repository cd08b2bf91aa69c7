/* wisp_agent_rotate: the CA rotation state machine, driven by Admin
 * RotateCA (wispctl ca rotate):
 *   none      the CA's own root signs and is the whole bundle
 *   prepared  PREPARE made a new root (a->next_ca, next-ca.crt/key) and
 *             added it to the bundle; the old root still signs
 *   active    ACTIVATE made the new root sign; the old root stays in the
 *             bundle (extra-roots.pem) until the last SVID it signed
 *             expires (old-root-until)
 *   none      FINISH (after that, or forced) drops the other roots.
 * Each step is written to --state-dir before it takes effect in memory, so
 * a restart resumes where it stood. Private to the agent. */
#ifndef WISP_AGENT_ROTATE_H
#define WISP_AGENT_ROTATE_H

#include <stddef.h>
#include <stdint.h>

#include "control/agent/wisp_agent_internal.h"
#include "lib/wisp_err.h"

/* At start: the extra roots into a->ca's bundle, a prepared a->next_ca. */
wisp_err wag_load_rotation(wisp_agent *a, char *err, size_t err_len) WISP_MUST_CHECK;
/* When the last SVID signed by a root other than the signing one expires;
 * 0 when none is known to be in use. */
int64_t wag_old_root_svids_until(wisp_agent *a);
/* Admin RotateCA (wisp_rpc_method). */
void wag_on_rotate_ca(wisp_rpc_call *call, const uint8_t *msg, size_t len);

#endif
