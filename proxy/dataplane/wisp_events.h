/* wisp_events: security exceptions counted for alerting (issue 16), for
 * /metrics: downstream connections refused (by reason, caller address and
 * the SPIFFE ID the refused certificate claims), requests and L4
 * connections denied by policy (by policy, rule, decision and caller), and
 * upstream verification failures (by reason, upstream address, the ID
 * expected and the one presented).
 *
 * Every reason and decision label is one of a fixed set (static strings);
 * addresses, IDs and policy names come from outside, so each family holds
 * at most |max_series| distinct series, and later ones count in an
 * overflow series of the same reason whose other labels say "overflow".
 * Series are allocated when first seen (bounded by the cap), never per
 * event. The local workload's labels come from our own SPIFFE ID at render
 * time.
 *
 * Ownership: the proxy owns the wisp_events (wisp_events_new/free); every
 * string argument is borrowed for the call (copied when a series is made).
 * No I/O, no globals: unit-tested alone. */
#ifndef WISP_EVENTS_H
#define WISP_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wisp_json.h"

typedef struct wisp_events wisp_events;

/* Reasons a connection is refused besides wisp_tls_failure_name's. */
#define WISP_EVENTS_NO_PREFACE "no_preface"         /* no valid HTTP/2 client preface in time */
#define WISP_EVENTS_NO_DESTINATION "no_destination" /* transparent mode found nowhere to send it */
#define WISP_EVENTS_OTHER "other"

/* Gives a new wisp_events; |max_series| >= 1 per family. */
wisp_events *wisp_events_new(size_t max_series);
/* Accepts NULL. */
void wisp_events_free(wisp_events *e);
/* From now on every call takes |e|'s own mutex (wisp-proxy's --workers:
 * several threads count into one wisp_events). Call before any other
 * thread sees |e|. */
void wisp_events_share(wisp_events *e);

/* A downstream connection refused. |reason|: static, a wisp_tls_failure
 * name or a WISP_EVENTS_* one; |peer_addr|: "HOST:PORT" (the port is
 * dropped); |claimed_id|: the SPIFFE ID the refused certificate names,
 * NULL or "": none. |e| may be NULL (no-op). */
void wisp_events_refused(wisp_events *e, bool inbound, const char *reason, const char *peer_addr,
                         const char *claimed_id);

/* A request or L4 connection denied by policy. |policy|: "namespace/name"
 * of the deciding policy, NULL: none decided; |rule|: its index, -1: none;
 * |decision|: a WISP_POLICY_REASON_* string (or NULL: the request itself
 * was refused, e.g. a path that cannot be normalised); |peer_id|: the
 * verified caller, NULL or "": none (plaintext). */
void wisp_events_denied(wisp_events *e, bool inbound, const char *policy, int rule, const char *decision,
                        const char *peer_id);

/* An upstream that failed verification. |reason|: a wisp_tls_failure name;
 * |upstream|: its "HOST:PORT"; |expected|: the ID it had to present (NULL:
 * any in our trust domain); |presented|: the ID it did present (NULL or "":
 * none readable). */
void wisp_events_upstream_failed(wisp_events *e, const char *reason, const char *upstream, const char *expected,
                                 const char *presented);

/* The decision label of a WISP_POLICY_REASON_* string: "deny_rule",
 * "no_allow_match", ... ("invalid_request" for NULL, "other" if unknown). */
const char *wisp_events_decision_name(const char *decision);

/* Events that went to an overflow series, all families. */
uint64_t wisp_events_overflowed(const wisp_events *e);

/* Appends the three families (Prometheus text 0.0.4) to |b|. |local_id|:
 * our own SPIFFE ID (NULL or "": "unknown"). */
void wisp_events_render(wisp_json_writer *b, const wisp_events *e, const char *local_id);

#endif
