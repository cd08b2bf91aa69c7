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
 * Ownership: the proxy owns its wisp_intercept (NULL when not transparent
 * or --intercept-probe off). */
#ifndef WISP_INTERCEPT_H
#define WISP_INTERCEPT_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/wisp_err.h"
#include "lib/wisp_net.h"
#include "proxy/internal.h"

/* Starts probing (the first probe at once) if the configuration asks. */
wisp_err wisp_intercept_start(wisp_proxy *px, char *err, size_t err_len) WISP_MUST_CHECK;
void wisp_intercept_free(wisp_proxy *px);
/* Stops probing and keeps the last result (draining: the listeners are
 * closed, so a probe would only fail). */
void wisp_intercept_stop(wisp_proxy *px);

/* Called by the outbound listener for each accepted connection: true if
 * |orig_dst| is the probe address, in which case the connection is the
 * intercept check's (the caller closes it) and |peer| says whether it was
 * ours. */
bool wisp_intercept_arrived(wisp_proxy *px, const wisp_addr *orig_dst, const wisp_addr *peer);

/* "off" (not transparent, or --intercept-probe off), "checking" (no probe
 * finished yet), "verified" or "missing"; |*reason| says why when not
 * verified (NULL when off or verified), borrowed until the next probe. */
const char *wisp_intercept_state(const wisp_proxy *px, const char **reason);

/* False with |reason| while interception is not proven; true when proven
 * or not asked for. */
bool wisp_intercept_ok(const wisp_proxy *px, char *reason, size_t reason_len);

#endif
