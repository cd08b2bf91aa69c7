#include "control/agent/wisp_agent_registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/agent/wisp_agent_snapshot.h"
#include "control/agent/wisp_agent_state.h"
#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "wisp/v1/config.pb-c.h"

/* Refused Watch streams logged per second; the rest are counted. */
#define WATCH_REFUSED_LOG_BURST 10

/* Forgets the record idle longest (no Watch open, not seen for
 * --proxy-idle); false if none is. Records with a watcher are pointed at
 * and stay. Without this, identities that signed once would fill the table
 * for good and refuse every new proxy's Watch. */
static bool proxy_evict_idle(wisp_agent *a) {
  int64_t cutoff = wag_now() - a->cfg.proxy_idle;
  size_t victim = a->nproxies;
  for (size_t i = 0; i < a->nproxies; i++) {
    const proxy_record *r = a->proxies[i];
    if (r->watchers == 0 && r->last_seen <= cutoff &&
        (victim == a->nproxies || r->last_seen < a->proxies[victim]->last_seen))
      victim = i;
  }
  if (victim == a->nproxies) return false;
  wag_log_event("proxy_forgotten", "spiffe_id", a->proxies[victim]->spiffe_id, "reason", "idle, to make room");
  free(a->proxies[victim]);
  a->proxies[victim] = a->proxies[--a->nproxies];
  return true;
}

proxy_record *wag_proxy_get(wisp_agent *a, const char *id) {
  for (size_t i = 0; i < a->nproxies; i++) {
    if (strcmp(a->proxies[i]->spiffe_id, id) == 0) return a->proxies[i];
  }
  if (a->nproxies >= a->cfg.max_proxies && !proxy_evict_idle(a)) return NULL;
  a->proxies = wisp_realloc(a->proxies, (a->nproxies + 1) * sizeof(*a->proxies));
  proxy_record *r = wisp_calloc(1, sizeof(*r));
  snprintf(r->spiffe_id, sizeof(r->spiffe_id), "%s", id);
  r->last_seen = wag_now();
  a->proxies[a->nproxies++] = r;
  return r;
}

/* Identities whose last SVID, still valid, was signed before |since|. */
size_t wag_proxies_not_renewed(const wisp_agent *a, int64_t since, int64_t now) {
  size_t n = 0;
  for (size_t i = 0; i < a->nproxies; i++) {
    const proxy_record *r = a->proxies[i];
    if (r->not_after > now && r->signed_at < since) n++;
  }
  return n;
}

/* A Watch stream refused or ended by the agent: a peer can make these
 * repeat, so they are rate-limited. */
static void log_watch_event(const char *type, wisp_rpc_call *call, const char *id, const char *claim, const char *why) {
  static wisp_log_limit limit = WISP_LOG_LIMIT_INIT("watch refusals", WATCH_REFUSED_LOG_BURST, 1.0, WISP_LOG_TO_STDOUT);
  uint64_t dropped = 0;
  if (!wisp_log_limit_pass(&limit, wisp_log_now(), &dropped)) return;
  wisp_json j;
  wisp_json_begin(&j, type);
  wisp_json_str(&j, "spiffe_id", id);
  wisp_json_str(&j, "claimed", claim[0] ? claim : NULL);
  wisp_json_str(&j, "origin", wisp_rpc_call_origin(call));
  wisp_json_str(&j, "reason", why);
  if (dropped) wisp_json_int(&j, "suppressed", (int64_t)dropped);
  wisp_json_emit(&j);
  fflush(stdout);
}

/* The Snapshot every watcher gets, packed once per change; each watcher's
 * nonce goes in front of it (see wisp_rpc_send_latest). */
static wisp_rpc_shared *current_snapshot(wisp_agent *a) {
  if (a->snapshot) return a->snapshot;
  char version[32];
  wag_version_str(a, version, sizeof(version));
  a->snapshot = wag_snapshot_pack(a->ca, a->compiled, a->policy, version);
  return a->snapshot;
}

/* Sends the current snapshot. One the watcher has not started to read is
 * replaced, not queued behind: only the newest matters. */
static void push_snapshot(watcher *w) {
  Wisp__V1__Snapshot own = WISP__V1__SNAPSHOT__INIT;
  wag_new_nonce(w->nonce);
  own.nonce = w->nonce;
  if (wisp_rpc_send_latest(w->call, current_snapshot(w->agent), &own.base) != WISP_OK) {
    static const char why[] =
        "watcher is not reading its snapshots: its connection holds too much unread output "
        "(--max-conn-buffer)";
    log_watch_event("watch_ended", w->call, w->rec->spiffe_id, "", why);
    wisp_rpc_finish(w->call, WISP_GRPC_RESOURCE_EXHAUSTED, why);
  }
}

/* The policy or the bundle changed: every watcher gets the new snapshot. */
void wag_push_all(wisp_agent *a) {
  wisp_rpc_shared_free(a->snapshot);
  a->snapshot = NULL;
  WISP_LIST_FOREACH_SAFE(it, &a->watchers) {
    watcher *w = WISP_LIST_ELEM(it, watcher, link);
    if (w->rec) push_snapshot(w);
  }
}

/* Each connected sidecar's answer, counted into its identity's entry of
 * |items| (by status_index): how many ACKed |version|, how many refused
 * (their last answer a NACK, shown: the newest such stream's). */
void wag_sidecar_answers(const wisp_agent *a, Wisp__V1__ProxyStatus *items, const char *version) {
  WISP_LIST_FOREACH(it, &a->watchers) {
    const watcher *w = WISP_LIST_ELEM(it, watcher, link);
    if (!w->rec) continue;
    Wisp__V1__ProxyStatus *p = &items[w->rec->status_index];
    if (strcmp(w->acked, version) == 0 && !w->nack[0]) p->sidecars_acked++;
    if (!w->nack[0]) continue;
    if (p->sidecars_nacked++ == 0) {
      p->last_nack_error = (char *)w->nack;
      p->nacked_version = (char *)w->nacked;
    }
  }
}

/* Watch streams open for |id| from |origin|. */
static size_t watchers_of(const wisp_agent *a, const char *id, const char *origin) {
  size_t n = 0;
  WISP_LIST_FOREACH(it, &a->watchers) {
    const watcher *w = WISP_LIST_ELEM(it, watcher, link);
    if (w->rec && strcmp(w->rec->spiffe_id, id) == 0 && strcmp(wisp_rpc_call_origin(w->call), origin) == 0) n++;
  }
  return n;
}

/* Admits a new watcher as the identity it proved: the SPIFFE ID of its
 * verified client certificate. What a request claims proves nothing (anyone
 * who can open the socket can claim anything), so a plaintext caller is
 * refused: proxies Watch over mTLS with the SVID they got from Sign. Then
 * the bounds: per caller (that ID from one uid or address) and in all. */
static bool watch_admit(wisp_agent *a, watcher *w, const Wisp__V1__WatchRequest *req) {
  wisp_rpc_call *call = w->call;
  const char *peer = wisp_rpc_call_peer_id(call);
  const char *origin = wisp_rpc_call_origin(call);
  wisp_grpc_status code = WISP_GRPC_OK;
  char why[512];
  if (!peer) {
    code = WISP_GRPC_UNAUTHENTICATED;
    snprintf(why, sizeof(why),
             "Config.Watch needs the proxy's SVID: call over mTLS (the Unix socket takes TLS too); "
             "a caller without a client certificate proves no identity%s%s",
             req->spiffe_id[0] ? ", whatever spiffe_id it claims: " : "", req->spiffe_id);
  } else if (req->spiffe_id[0] && strcmp(peer, req->spiffe_id) != 0) {
    code = WISP_GRPC_PERMISSION_DENIED;
    snprintf(why, sizeof(why), "caller is %s (its client certificate), not %s", peer, req->spiffe_id);
  } else if (a->nwatchers >= a->cfg.max_watchers) {
    code = WISP_GRPC_RESOURCE_EXHAUSTED;
    snprintf(why, sizeof(why), "the agent serves %zu Config.Watch streams, its limit (--max-watchers)", a->nwatchers);
  } else if (watchers_of(a, peer, origin) >= a->cfg.max_watchers_per_caller) {
    code = WISP_GRPC_RESOURCE_EXHAUSTED;
    snprintf(why, sizeof(why),
             "%s already has %zu Config.Watch streams open from %s, the limit (--max-watchers-per-caller)", peer,
             a->cfg.max_watchers_per_caller, origin);
  } else if ((w->rec = wag_proxy_get(a, peer)) == NULL) {
    code = WISP_GRPC_RESOURCE_EXHAUSTED;
    snprintf(why, sizeof(why),
             "the agent knows %zu proxies, its limit (--max-proxies), none idle for --proxy-idle to forget",
             a->nproxies);
  }
  if (code != WISP_GRPC_OK) {
    log_watch_event("watch_refused", call, peer, req->spiffe_id, why);
    wisp_rpc_finish(call, code, why);
    return false;
  }
  a->nwatchers++;
  w->rec->watchers++;
  w->rec->last_seen = wag_now();
  return true;
}

/* Config.Watch: the first request opens the stream for the identity the
 * caller proved (watch_admit), then each request ACKs (empty error_detail)
 * or NACKs the snapshot with that nonce. */
static void on_watch_message(wisp_rpc_call *call, const uint8_t *msg, size_t len) {
  wisp_agent *a = wisp_rpc_server_data(wisp_rpc_call_server(call));
  watcher *w = wisp_rpc_call_user(call);
  Wisp__V1__WatchRequest *req = wisp__v1__watch_request__unpack(NULL, len, msg);
  if (!req) {
    wisp_rpc_finish(call, WISP_GRPC_INVALID_ARGUMENT, "malformed WatchRequest");
    return;
  }
  if (!w->rec) {
    if (watch_admit(a, w, req)) push_snapshot(w);
  } else if (req->nonce[0] && strcmp(req->nonce, w->nonce) == 0) {
    /* An answer to what we sent last; stale nonces are ignored, as in xDS. */
    w->rec->last_seen = wag_now();
    if (req->error_detail[0]) {
      snprintf(w->nack, sizeof(w->nack), "%s", req->error_detail);
      snprintf(w->nacked, sizeof(w->nacked), "%s", req->version);
      wag_log_event("nack", "spiffe_id", w->rec->spiffe_id, "error", req->error_detail);
    } else {
      snprintf(w->acked, sizeof(w->acked), "%s", req->version);
      snprintf(w->rec->acked, sizeof(w->rec->acked), "%s", req->version);
      w->nack[0] = w->nacked[0] = '\0';
      wag_log_event("ack", "spiffe_id", w->rec->spiffe_id, "version", req->version);
    }
  }
  wisp__v1__watch_request__free_unpacked(req, NULL);
}

void wag_on_watch_end(wisp_rpc_call *call) { wisp_rpc_finish(call, WISP_GRPC_OK, NULL); }

void wag_on_watch_close(wisp_rpc_call *call) {
  watcher *w = wisp_rpc_call_user(call);
  if (!w) return;
  if (w->rec) {
    w->rec->watchers--;
    w->agent->nwatchers--;
  }
  wisp_list_unlink(&w->link);
  free(w);
}

/* The watcher is made when the call opens, before its first message. */
void wag_on_watch_first(wisp_rpc_call *call, const uint8_t *msg, size_t len) {
  if (!wisp_rpc_call_user(call)) {
    wisp_agent *a = wisp_rpc_server_data(wisp_rpc_call_server(call));
    watcher *w = wisp_calloc(1, sizeof(*w));
    w->agent = a;
    w->call = call;
    wisp_list_push_front(&a->watchers, &w->link);
    wisp_rpc_call_set_user(call, w);
  }
  on_watch_message(call, msg, len);
}
