/* wisp_intercept: fail closed when transparent interception is missing.
 * In --transparent mode the pod is only protected if the iptables rules of
 * deploy/wisp-iptables.sh are in its network namespace. The proxy cannot
 * see its own traffic redirected (its uid is exempt), so the script adds
 * one rule ahead of that exemption: TCP to the probe address
 * (--intercept-probe, default 127.0.0.77:15009) goes to the outbound
 * listener. The proxy dials that address now and then; the check passes
 * only when the outbound listener accepts that very connection (same
 * source address and port) with the probe address as its original
 * destination. Until then, or once it stops passing, /ready answers 503
 * and says why.
 *
 * Ownership: the process owns its wisp_intercept (NULL when not transparent
 * or --intercept-probe off; proxy/wisp_sidecar); through the hooks that
 * registers (wisp_dataplane_hooks) the data plane reports arrivals and
 * stops it on drain; the admin API reads its state. It touches no proxy
 * state. */
#ifndef WISP_INTERCEPT_H
#define WISP_INTERCEPT_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/wisp_err.h"
#include "lib/wisp_net.h"
#include "proxy/wisp_config.h"

struct ev_loop;
typedef struct wisp_intercept wisp_intercept;

/* Starts probing on |loop| (the first probe at once) if |cfg| (borrowed for
 * the check's lifetime) asks: |*out| is the check, or NULL when it does
 * not ask. On failure |err| says why and |*out| is untouched. */
wisp_err wisp_intercept_start(wisp_intercept **out, struct ev_loop *loop, const wisp_config *cfg, char *err,
                              size_t err_len) WISP_MUST_CHECK;
/* Accepts NULL. */
void wisp_intercept_free(wisp_intercept *ic);
/* Stops probing and keeps the last result (draining: the listeners are
 * closed, so a probe would only fail). Accepts NULL. */
void wisp_intercept_stop(wisp_intercept *ic);

/* Called by the outbound listener for each accepted connection: true if
 * |orig_dst| is the probe address, in which case the connection is the
 * intercept check's (the caller closes it) and |peer| says whether it was
 * ours. |ic| NULL (no check): false. */
bool wisp_intercept_arrived(wisp_intercept *ic, const wisp_addr *orig_dst, const wisp_addr *peer);

/* "off" (not transparent, or --intercept-probe off), "checking" (no probe
 * finished yet), "verified" or "missing"; |*reason| says why when not
 * verified (NULL when off or verified), borrowed until the next probe. */
const char *wisp_intercept_state(const wisp_intercept *ic, const char **reason);

/* False with |reason| while interception is not proven; true when proven
 * or not asked for. */
bool wisp_intercept_ok(const wisp_intercept *ic, char *reason, size_t reason_len);

#endif
