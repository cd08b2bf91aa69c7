/* wisp_agent_internal: the agent's own struct and records, shared by the
 * files of the agent and private to them (the public API is
 * control/agent/wisp_agent.h). Each file owns a part of it:
 *   wisp_agent.c           life (new/free), timers, the policy (Admin
 *                          ApplyPolicy, --policy-dir), Admin Status, the
 *                          method table
 *   wisp_agent_state.c     --state-dir (files below), the CA loaded or made,
 *                          the agent's own certificate, shared helpers
 *                          (wisp_agent_state.h)
 *   wisp_agent_snapshot.c  protobuf packing of roots and Snapshots (pure;
 *                          wisp_agent_snapshot.h)
 *   wisp_agent_registry.c  proxy records and Config.Watch streams: |proxies|,
 *                          |watchers|, |snapshot| (wisp_agent_registry.h)
 *   wisp_agent_rotate.c    the CA rotation state machine: |next_ca|, the
 *                          rotation files (wisp_agent_rotate.h)
 *   wisp_agent_sign.c      Identity.Sign and Admin CreateJoinToken: who may
 *                          have which SVID, |tokens| (wisp_agent_sign.h) */
#ifndef WISP_AGENT_INTERNAL_H
#define WISP_AGENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <openssl/sha.h>

#include "control/agent/wisp_agent.h"
#include "control/agent/wisp_injector.h"
#include "control/agent/wisp_rpc.h"
#include "control/agent/wisp_sa.h"
#include "control/agent/wisp_tokens.h"
#include "lib/wisp_ca.h"
#include "lib/wisp_list.h"
#include "lib/wisp_policy.h"
#include "lib/wisp_spiffe.h"
#include "lib/wisp_tls.h"

/* Files of --state-dir. */
#define F_CA_CERT "ca.crt"
#define F_CA_KEY "ca.key"
#define F_BUNDLE "bundle.pem"
#define F_AGENT_CERT "agent.crt"
#define F_AGENT_KEY "agent.key"
#define F_TOKENS "tokens"
#define F_NEXT_CERT "next-ca.crt"
#define F_NEXT_KEY "next-ca.key"
#define F_EXTRA_ROOTS "extra-roots.pem"   /* roots trusted besides the CA's own */
#define F_OLD_ROOT_UNTIL "old-root-until" /* when the last SVID the old root signed expires */
#define F_POLICY "policy.yaml"
#define F_VERSION "policy.version"
/* The largest state file read (and --policy-dir joined). */
#define STATE_MAX (4 * 1024 * 1024)
#define ROOT_TTL (10LL * 365 * 86400)
#define AGENT_CERT_TTL (24 * 3600)

/* What the agent knows of one proxy identity; its sidecars (replicas of
 * a Deployment share one) each answer on their own Watch stream (watcher). */
typedef struct {
  char spiffe_id[WISP_SPIFFE_MAX + 1];
  int watchers;   /* open Config.Watch streams: its connected sidecars */
  char acked[32]; /* the last version any of its sidecars ACKed */
  char serial[80];
  int64_t not_after;
  int64_t signed_at; /* when its last SVID was signed */
  int64_t last_seen;
  size_t status_index; /* its entry in the Status answer being built */
} proxy_record;

/* One open Config.Watch stream. */
typedef struct watcher {
  wisp_agent *agent;
  wisp_rpc_call *call;
  proxy_record *rec; /* NULL until admitted (its first request) */
  char nonce[33];    /* of the newest snapshot sent */
  /* This sidecar's own answers: a sibling's ACK does not clear its NACK. */
  char acked[32];
  char nack[256];  /* its last answer's error; "": an ACK, or none yet */
  char nacked[32]; /* the version that NACK refused */
  wisp_list link;  /* in wisp_agent.watchers */
} watcher;

struct wisp_agent {
  struct ev_loop *loop;
  wisp_agent_config cfg;
  wisp_ca *ca;
  wisp_ca *next_ca; /* a prepared rotation, not yet signing */
  wisp_tls *tls;
  wisp_rpc_server *rpc;
  wisp_tokens tokens;
  wisp_sa *sa;             /* service-account token identity */
  wisp_injector *injector; /* the admission webhook, NULL: none */
  char *policy;            /* owned, NUL-terminated YAML */
  wisp_policy *compiled;   /* owned: |policy| compiled, for its Destinations */
  uint64_t version;
  /* SHA-256 of the --policy-dir files last read: the directory is applied
   * when it changes, so a `wispctl apply` stays until the next edit. */
  uint8_t policy_dir_digest[SHA256_DIGEST_LENGTH];
  wisp_list watchers;        /* watcher.link, newest first */
  size_t nwatchers;          /* admitted ones */
  wisp_rpc_shared *snapshot; /* the current Snapshot without a nonce, packed once; NULL: to build */
  proxy_record **proxies;    /* owned; records never move (watchers point at them) */
  size_t nproxies;
  ev_timer policy_poll, cert_renew, log_flush;
};

#endif
