/* wisp_metrics: request and L4 metrics by peer identity, for /metrics.
 *
 * A series is one combination of labels: direction, the peer's SPIFFE ID
 * (split into trust domain, namespace and service account), the HTTP
 * status and gRPC status, and the policy decision; an L4 series has no
 * statuses. Each holds counters and a latency histogram in Istio's
 * millisecond buckets. The local workload's labels come from our own
 * SPIFFE ID at render time.
 *
 * Cardinality is bounded three times: at most |max_peers| distinct peer IDs
 * (later ones count under peer labels "overflow"), and at most |max_series|
 * series (later combinations count in a per-direction, per-decision,
 * per-status-class series whose response_code is "overflow"), and by the
 * bytes the series render (--metrics-max-bytes: past it, new peers and
 * series count under the overflow labels as well). Counting is
 * a hash lookup in fixed tables: no allocation per request, only when a
 * peer or series is first seen (bounded by the caps).
 *
 * Ownership: the proxy owns the wisp_metrics (wisp_metrics_new/free). A
 * wisp_metrics_series pointer from wisp_metrics_tcp_open is borrowed and
 * stays valid until wisp_metrics_free (series are never moved or freed
 * before). No I/O, no globals: unit-tested alone. Not thread-safe unless
 * shared (wisp_metrics_share). */
#ifndef WISP_METRICS_H
#define WISP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wisp_json.h"

#define WISP_METRICS_MAX_PEERS_DEFAULT 256
#define WISP_METRICS_MAX_SERIES_DEFAULT 2048
#define WISP_METRICS_MAX_BYTES_DEFAULT (4u << 20)

typedef struct wisp_metrics wisp_metrics;
typedef struct wisp_metrics_series wisp_metrics_series;

/* One finished HTTP request (stream). */
typedef struct {
  bool inbound;
  const char *peer_id; /* verified SPIFFE ID, NULL or "": none (plaintext caller, failed upstream) */
  int status;          /* HTTP status, 0: none */
  int grpc_status;     /* -1: none */
  bool denied;         /* refused by policy */
  double duration_ms;
  uint64_t bytes_in;  /* request body bytes */
  uint64_t bytes_out; /* response body bytes */
} wisp_metrics_request;

/* Gives a new wisp_metrics; |max_peers| and |max_series| >= 1.
 * |max_bytes| bounds what the series render (wisp_metrics_render): a
 * new peer or series that would take the estimate of its rendered lines
 * past it counts under the overflow labels instead. */
wisp_metrics *wisp_metrics_new(size_t max_peers, size_t max_series, size_t max_bytes);
/* Accepts NULL. */
void wisp_metrics_free(wisp_metrics *m);
/* From now on every call below takes |m|'s own mutex: wisp-proxy's
 * --workers (more than one) count into one table from several threads.
 * Call before any other thread sees |m|. Without it no call locks. */
void wisp_metrics_share(wisp_metrics *m);

/* Counts one finished request. |m| may be NULL (no-op). */
void wisp_metrics_request_done(wisp_metrics *m, const wisp_metrics_request *r);

/* Counts an L4 connection opened (after the peer is verified, or at once
 * when policy denies it) and returns its series (borrowed) for the bytes
 * and the close. NULL when |m| is NULL. */
wisp_metrics_series *wisp_metrics_tcp_open(wisp_metrics *m, bool inbound, const char *peer_id, bool denied);
/* Adds bytes received from the caller / sent back to it. Accepts NULL. */
void wisp_metrics_tcp_bytes(wisp_metrics_series *s, uint64_t received, uint64_t sent);
/* Counts the close. Accepts NULL. */
void wisp_metrics_tcp_close(wisp_metrics_series *s);

/* Distinct peers seen (not counting "unknown"/"overflow"), and requests or
 * connections that went to an overflow series or overflow peer. */
size_t wisp_metrics_peers(const wisp_metrics *m);
uint64_t wisp_metrics_overflowed(const wisp_metrics *m);

/* Appends every family (Prometheus text 0.0.4) to |b|, its series at most
 * |max_bytes| (plus the fixed HELP/TYPE lines and the gauges). |local_id|
 * is our own SPIFFE ID (NULL or "": not known yet, labelled "unknown");
 * its size is remembered for charging later series. */
void wisp_metrics_render(wisp_json_writer *b, wisp_metrics *m, const char *local_id);

/* Appends ,NAME="VALUE" with VALUE escaped as the text format wants
 * (backslash, double quote, newline); |dflt| when VALUE is NULL or "".
 * Every label value from outside goes through here (one home). */
void wisp_metrics_label(wisp_json_writer *b, const char *name, const char *value, const char *dflt);

#endif
