/* wisp_agent_registry: the proxies the agent knows and their Config.Watch
 * streams. It owns the records (a->proxies: one per SPIFFE ID, bounded by
 * --max-proxies, the one idle longest forgotten to make room), the open
 * streams (a->watchers, bounded by --max-watchers and
 * --max-watchers-per-caller) and the Snapshot packed for them
 * (a->snapshot, rebuilt after each change). Private to the agent. */
#ifndef WISP_AGENT_REGISTRY_H
#define WISP_AGENT_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "control/agent/wisp_agent_internal.h"
#include "wisp/v1/admin.pb-c.h"

/* The record of |id|, made if new; NULL when the table is full and none
 * is idle enough to forget. The agent owns it (a borrowed pointer that
 * stays valid while a watcher points at it, or until the next call). */
proxy_record *wag_proxy_get(wisp_agent *a, const char *id);
/* Identities whose last SVID, still valid at |now|, was signed before
 * |since|. */
size_t wag_proxies_not_renewed(const wisp_agent *a, int64_t since, int64_t now);
/* The policy or the bundle changed: every watcher gets the new snapshot. */
void wag_push_all(wisp_agent *a);
/* Counts each connected sidecar's answer into its identity's entry of
 * |items| (by proxy_record.status_index, set by the caller). */
void wag_sidecar_answers(const wisp_agent *a, Wisp__V1__ProxyStatus *items, const char *version);

/* Config.Watch handlers (wisp_rpc_method). */
void wag_on_watch_first(wisp_rpc_call *call, const uint8_t *msg, size_t len);
void wag_on_watch_end(wisp_rpc_call *call);
void wag_on_watch_close(wisp_rpc_call *call);

#endif
