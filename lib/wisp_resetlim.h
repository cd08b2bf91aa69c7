/* wisp_resetlim: premature stream resets per caller, for wisp-proxy's
 * --max-resets (rapid reset, CVE-2023-44487; MadeYouReset, CVE-2025-8671).
 *
 * A premature reset is a stream that ended with RST_STREAM before its
 * response was complete, because of the caller: it sent RST_STREAM, or it
 * broke the protocol on that stream (a content-length its DATA does not
 * match, WINDOW_UPDATE 0, a window overflow, bad trailers, ...) so that
 * nghttp2 reset it. Either way the stream may already have gone upstream;
 * to the proxy the two cost the same, so they share one budget.
 *
 * Counted per caller (a wisp_connlimit_key: its address), not per
 * connection, so a caller that reconnects finds its debt waiting. Per
 * caller: a token bucket of |max_resets| resets, refilled at max_resets per
 * |window| seconds, and how many of its streams ended complete (the whole
 * response sent) and in premature resets over the last one to two
 * windows. A reset is over the limit when the bucket is empty AND more of
 * the caller's recent streams ended in premature resets than complete
 * (Envoy's premature-reset ratio, 50%): a busy caller that cancels a few
 * per cent of a high rate is never over. Streams that end with their
 * connection count as neither. Each reset over the
 * limit adds to a debt (at most one more bucket), which
 * wisp_resetlim_wait turns into how long the caller should be held back.
 *
 * Pure bookkeeping: no clock (times are passed in), no I/O; unit-tested in
 * tests/unit/resetlim_test.c.
 *
 * The record also carries what wisp-proxy bounds per caller beside resets:
 * the upstream streams its connections hold.
 *
 * Ownership: the table owns its records. A connection holds its caller's
 * record (wisp_resetlim_hold, then wisp_resetlim_release exactly once). A
 * record no connection holds is kept while it still has a debt, so that
 * reconnecting does not clear it; at most WISP_RESETLIM_IDLE_MAX such
 * records, the longest-released dropped first. */
#ifndef WISP_RESETLIM_H
#define WISP_RESETLIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wisp_connlimit.h"

/* A spent caller's probe that has been upstream this long no longer keeps
 * the next one back. The count is per address: one long request of a
 * resetter held its address's only probe, and the new connections of every
 * good caller sharing that address (all local callers of a sidecar) waited
 * out --queue-timeout behind it. Freeing the probe after a bound rather
 * than counting probes per connection keeps the bound per address: a
 * resetter that reconnects still gets at most one probe per interval while
 * its probes end (each reset spends more), and one per second while they
 * are held, whatever its number of connections. */
#define WISP_RESETLIM_PROBE_HOLD 1.0

/* Records kept for callers with no connection (about 100 bytes each). */
#define WISP_RESETLIM_IDLE_MAX 4096

typedef struct wisp_resetlim wisp_resetlim;
typedef struct wisp_resetlim_caller wisp_resetlim_caller;

/* A table allowing |max_resets| (at least 1) premature resets per |window|
 * seconds per caller. */
wisp_resetlim *wisp_resetlim_new(uint32_t max_resets, double window);
/* Frees every record, held or not. Accepts NULL. */
void wisp_resetlim_free(wisp_resetlim *rl);

/* The record of caller |key| at time |now|, made if new; never NULL. */
wisp_resetlim_caller *wisp_resetlim_hold(wisp_resetlim *rl, const wisp_connlimit_key *key, double now);
/* A connection lets go of |c|. */
void wisp_resetlim_release(wisp_resetlim_caller *c, double now);

/* A stream of the caller ended complete (its whole response sent). */
void wisp_resetlim_completed(wisp_resetlim_caller *c, double now);
/* The caller made a premature reset: true while within the limit, false
 * when over it. */
bool wisp_resetlim_reset(wisp_resetlim_caller *c, double now);
/* Premature resets the caller may still make now before it is over the
 * limit: its whole tokens (0 when it has none or a debt), or UINT32_MAX
 * while no more of its recent streams ended in resets than complete. */
uint32_t wisp_resetlim_left(const wisp_resetlim_caller *c, double now);
/* Seconds until the caller has a reset to spend again (0: it has one). */
double wisp_resetlim_wait(const wisp_resetlim_caller *c, double now);

/* The caller is a peer sidecar: one of its verified mTLS connections
 * carried the requests of more than one caller of its own. Kept with the
 * record, so its next pooled connection is known as shared from its first
 * stream on (a young one that had carried one caller so far was cut, and
 * the good requests on it with it). */
void wisp_resetlim_mark_shared(wisp_resetlim_caller *c);
bool wisp_resetlim_shared(const wisp_resetlim_caller *c);

/* Upstream streams held by the caller's connections that have not
 * completed more streams than they reset (wisp-proxy bounds them by the
 * caller's budget, all its connections together: a resetter that
 * reconnects brings no new share). |delta| +1 (one starts, at |now|) or
 * -1 (one ends). */
void wisp_resetlim_untrusted_add(wisp_resetlim_caller *c, int delta, double now);
uint32_t wisp_resetlim_untrusted(const wisp_resetlim_caller *c);
/* How many more such streams the caller may start at |now|: its whole
 * tokens less those it holds (UINT32_MAX while most of its recent streams
 * ended complete). With no tokens, one probe: 1 when it started none
 * within |probe_interval| seconds and holds none, or none it started
 * within WISP_RESETLIM_PROBE_HOLD seconds; else 0. */
uint32_t wisp_resetlim_room(const wisp_resetlim_caller *c, double now, double probe_interval);
/* Seconds until a probe is allowed by time (0: now): |probe_interval|
 * after the last start, or WISP_RESETLIM_PROBE_HOLD while it holds any. */
double wisp_resetlim_probe_wait(const wisp_resetlim_caller *c, double now, double probe_interval);

/* Upstream streams a peer sidecar's throttled connections of one source
 * share, at least, whatever its budget: so that the good callers on them
 * are served in turn. Shared, not per connection: a workload holding a
 * valid SVID that sends two x-wisp-caller values is taken for a peer
 * sidecar, and with one stream per connection each connection it opened
 * brought it one more. */
#define WISP_RESETLIM_THROTTLE_STREAMS 4

/* Upstream streams held by the caller's throttled peer-sidecar connections
 * (those that have not completed more streams than they reset). |delta|
 * +1 (one starts) or -1 (one ends). */
void wisp_resetlim_throttled_add(wisp_resetlim_caller *c, int delta);
uint32_t wisp_resetlim_throttled(const wisp_resetlim_caller *c);
/* One of them ended in a premature reset at |now|: its place stays taken
 * until |now| + |hold| (one of WISP_RESETLIM_THROTTLE_STREAMS places; when
 * all are taken so, nothing more). Freed at once, a place went to another
 * connection of the source about to reset, and again: 4 places passed on
 * 300 requests a second to the app, what 16 connections of one each did. */
void wisp_resetlim_throttled_park(wisp_resetlim_caller *c, double now, double hold);
/* How many more such streams they may start at |now|, all together:
 * max(wisp_resetlim_left, WISP_RESETLIM_THROTTLE_STREAMS) less those they
 * hold and the places still parked (UINT32_MAX while most of its recent
 * streams ended complete). */
uint32_t wisp_resetlim_throttle_room(const wisp_resetlim_caller *c, double now);
/* Seconds from |now| until a place may free: the next parked one's end,
 * or |recheck| while they hold any (0: none held or parked). Held places
 * are counted per source across all its targets, and a stream's end wakes
 * only its own target's queue: a connection of the source waiting on
 * another target (in --transparent, each original port is one) was never
 * told, and waited for an event of its own target or --queue-timeout. */
double wisp_resetlim_throttle_wait(const wisp_resetlim_caller *c, double now, double recheck);

/* Upstream streams held by all the caller's connections (wisp-proxy's
 * --max-upstream-per-caller, per source on --inbound). |delta| +1 or -1. */
void wisp_resetlim_upstream_add(wisp_resetlim_caller *c, int delta);
uint32_t wisp_resetlim_upstream(const wisp_resetlim_caller *c);

/* Request lines of the answers wisp-proxy makes itself to the caller,
 * bounded per caller (the source address): one caller overflowing
 * --max-queued got a 503 and a line for each refusal, 77 MB of log in
 * 8 s. ANSWER: 503/408/400/431/502 and the like; DENIAL: policy
 * refusals, security-relevant, so bounded apart and more loosely (a
 * flood of answers does not hide a denial). */
typedef enum { WISP_RESETLIM_LINE_ANSWER, WISP_RESETLIM_LINE_DENIAL, WISP_RESETLIM_LINE_KINDS } wisp_resetlim_line;
/* Whether the caller may have one more line of |kind| at |now|: at most
 * |burst| per |window| seconds. True: |*dropped| is how many were dropped
 * since its last line (for that line to say), and the count starts again;
 * false: this one is dropped and counted. */
bool wisp_resetlim_line_pass(wisp_resetlim_caller *c, wisp_resetlim_line kind, double now, uint32_t burst,
                             double window, uint64_t *dropped);

/* Records in the table, held or kept. */
size_t wisp_resetlim_callers(const wisp_resetlim *rl);

#endif
