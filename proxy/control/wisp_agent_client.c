#include "proxy/control/wisp_agent_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "lib/wisp_ca.h"
#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_rpc_client.h"
#include "lib/wisp_state.h"
#include "lib/wisp_version.h"
#include "proxy/control/wisp_authz_load.h"
#include "wisp/v1/config.pb-c.h"
#include "wisp/v1/identity.pb-c.h"

#define BACKOFF_MIN 1.0
#define BACKOFF_MAX 30.0
#define SIGN_TIMEOUT 10.0
#define TOKEN_MAX 512
#define SA_TOKEN_MAX (16 * 1024) /* lib/wisp_jwt's WISP_JWT_TOKEN_MAX */
/* Renew between 50% and 60% of the SVID's remaining life. */
#define RENEW_AT 0.5
#define RENEW_JITTER 0.1
#define MIN_RENEW_DELAY 0.5
/* After this many failed renewals in a row, every other attempt uses the
 * join token (if any): the agent may no longer accept our SVID (a new CA
 * after its state was lost) while it would accept a new token. */
#define RENEW_FAILURES_BEFORE_TOKEN 3

struct wisp_agent_client {
  wisp_proxy *px;         /* whose credentials and policy it keeps (proxy/wisp_dataplane.h) */
  struct ev_loop *loop;   /* px's */
  const wisp_config *cfg; /* px's */
  const wisp_tls *tls;    /* px's, read-only: SVIDs go in through wisp_dataplane_install_* */
  char target[512];       /* unix:/path or HOST:PORT for wisp_rpcc */
  bool https;
  char agent_id[WISP_SPIFFE_MAX + 1];
  char token[TOKEN_MAX];
  wisp_tls *bootstrap_tls; /* trust-only, for https before the first SVID */
  ev_timer sign_timer, watch_timer;
  double sign_backoff, watch_backoff;
  wisp_rpcc *sign_conn, *watch_conn;
  bool installed;        /* the Sign in flight delivered a usable SVID */
  bool install_refused;  /* the Sign in flight delivered an SVID install refused (logged) */
  EVP_PKEY *pending_key; /* the key of the CSR in flight */
  bool have_svid;
  int64_t not_after;
  int renew_failures;              /* renewals failed in a row */
  bool closing;                    /* being freed: handlers only let go */
  char watch_error[256];           /* why no snapshot came yet (the last Watch failure) */
  bool watching;                   /* the Watch open now has delivered a snapshot */
  wisp_agent_client_health health; /* for /metrics; last_contact_unix is kept as of the last contact */
};

static double now_s(void) { return (double)time(NULL); }

static double jitter(void) {
  uint32_t r = 0;
  RAND_bytes((uint8_t *)&r, sizeof(r));
  return (double)r / 4294967296.0;
}

/* Lets go of a connection; wisp_rpcc_free is safe from its own handlers. */
static void retire(wisp_rpcc **conn) {
  wisp_rpcc *c = *conn;
  *conn = NULL;
  wisp_rpcc_free(c);
}

static void schedule(wisp_agent_client *ac, ev_timer *t, double after) {
  ev_timer_stop(ac->loop, t);
  ev_timer_set(t, after, 0);
  ev_timer_start(ac->loop, t);
}

static double next_backoff(double *b) {
  double cur = *b;
  *b = *b * 2 > BACKOFF_MAX ? BACKOFF_MAX : *b * 2;
  return cur * (0.8 + 0.4 * jitter());
}

static void log_cert(const char *event, const wisp_tls_info *info, const char *reason) {
  wisp_json j;
  wisp_json_begin(&j, "cert");
  wisp_json_str(&j, "event", event);
  if (info) {
    wisp_json_str(&j, "spiffe_id", info->spiffe_id);
    wisp_json_str(&j, "serial", info->serial);
    wisp_json_str(&j, "not_after", info->not_after);
    wisp_json_int(&j, "bundle_roots", info->bundle_roots);
  }
  wisp_json_str(&j, "reason", reason);
  wisp_json_emit_err(&j);
}

/* Connects to the agent: over TLS with our SVID once we have one (renewal
 * and Watch prove who we are), plaintext on the local socket before that,
 * or TLS with only the bootstrap bundle over https. */
static wisp_rpcc *agent_connect(wisp_agent_client *ac, bool use_svid, char *err, size_t err_len) {
  const wisp_tls *tls = NULL;
  if (use_svid) {
    tls = ac->tls;
  } else if (ac->https) {
    tls = ac->bootstrap_tls;
  }
  return wisp_rpcc_connect(wisp_dataplane_h2loop(ac->px), ac->target, tls, tls ? ac->agent_id : NULL, err, err_len);
}

/* The policy and the address -> identity map of |snap|, as one update. */
static wisp_err apply_snapshot(wisp_proxy *px, const Wisp__V1__Snapshot *snap, const char *source, char *err,
                               size_t err_len) {
  wisp_policy_destination *d = snap->n_destinations ? wisp_calloc(snap->n_destinations, sizeof(*d)) : NULL;
  for (size_t i = 0; i < snap->n_destinations; i++) {
    d[i].address = snap->destinations[i]->address;
    d[i].spiffe_id = snap->destinations[i]->spiffe_id;
  }
  wisp_authz_load_update u = {.yaml = snap->policy_yaml,
                              .len = strlen(snap->policy_yaml),
                              .dests = d,
                              .ndests = snap->n_destinations,
                              .source = source,
                              .version = snap->version};
  wisp_err rc = wisp_authz_load_apply(px, &u, err, err_len);
  free(d);
  return rc;
}

/* Whether |chain| may be served now as |ac|'s SVID: valid (notBefore within
 * WISP_CA_CLOCK_SKEW_SEC, notAfter to come), chaining to |roots|, the bundle
 * it is served with, and naming our --spiffe-id: an SVID for another
 * identity, whoever signed it, would make peers' policy judge us as someone
 * else. |*out_not_after|: the leaf's notAfter. */
static wisp_err svid_usable(const wisp_agent_client *ac, STACK_OF(X509) * chain, STACK_OF(X509) * roots,
                            int64_t *out_not_after, char *err, size_t err_len) {
  const char *want = ac->cfg->spiffe_id;
  wisp_spiffe_id sid;
  WISP_GUARD(wisp_ca_svid_check(chain, roots, (int64_t)now_s(), WISP_CA_CLOCK_SKEW_SEC, err, err_len));
  WISP_GUARD(wisp_spiffe_from_cert(&sid, sk_X509_value(chain, 0), err, err_len));
  if (strcmp(sid.id, want) != 0) {
    snprintf(err, err_len, "the SVID is for %s, not %s (our --spiffe-id)", sid.id, want);
    return WISP_ERR_VERIFY;
  }
  if (wisp_ca_cert_not_after(sk_X509_value(chain, 0), out_not_after) != WISP_OK) {
    snprintf(err, err_len, "the SVID's notAfter cannot be read");
    return WISP_ERR_PARSE;
  }
  return WISP_OK;
}

/* ---- --svid-cache DIR ---- */

#define CACHE_SVID "svid.pem"     /* the key, then the chain */
#define CACHE_BUNDLE "bundle.pem" /* the trust bundle */
#define CACHE_CONFIG "config.pb"  /* the last Snapshot applied: policy and map */
#define CACHE_MAX (256 * 1024)

/* Writes the credentials in force to the cache (0600 files in a 0700 dir
 * of ours). A failure costs only the fast restart: logged, not fatal. */
static void cache_save(wisp_agent_client *ac, EVP_PKEY *key, STACK_OF(X509) * chain, STACK_OF(X509) * roots) {
  const char *dir = ac->cfg->svid_cache;
  if (!dir) return;
  char err[512] = "";
  char *kp = NULL, *cp = NULL, *rp = NULL;
  size_t kl = 0, cl = 0, rl = 0;
  wisp_err rc = wisp_state_ensure_dir(dir, 0700, err, sizeof(err));
  if (rc == WISP_OK && key && chain) {
    rc = wisp_ca_key_to_pem(&kp, &kl, key);
    if (rc == WISP_OK) rc = wisp_ca_certs_to_pem(&cp, &cl, chain);
    if (rc == WISP_OK) {
      char *both = wisp_malloc(kl + cl);
      memcpy(both, kp, kl);
      memcpy(both + kl, cp, cl);
      rc = wisp_state_write(dir, CACHE_SVID, both, kl + cl, 0600, err, sizeof(err));
      OPENSSL_cleanse(both, kl + cl);
      free(both);
    }
  }
  if (rc == WISP_OK && roots) {
    rc = wisp_ca_certs_to_pem(&rp, &rl, roots);
    if (rc == WISP_OK) rc = wisp_state_write(dir, CACHE_BUNDLE, rp, rl, 0600, err, sizeof(err));
  }
  if (kp) OPENSSL_cleanse(kp, kl);
  free(kp);
  free(cp);
  free(rp);
  if (rc != WISP_OK) WISP_WARN("--svid-cache %s: cannot save the SVID: %s", dir, err[0] ? err : wisp_err_str(rc));
}

/* The Snapshot just applied, as received: a restored SVID is served with
 * the policy and map that were in force, never with none. */
static void cache_save_config(wisp_agent_client *ac, const uint8_t *msg, size_t len) {
  const char *dir = ac->cfg->svid_cache;
  char err[512] = "";
  if (!dir || !ac->have_svid) return;
  if (wisp_state_ensure_dir(dir, 0700, err, sizeof(err)) != WISP_OK ||
      wisp_state_write(dir, CACHE_CONFIG, msg, len, 0600, err, sizeof(err)) != WISP_OK)
    WISP_WARN("--svid-cache %s: cannot save the configuration: %s", dir, err);
}

/* Puts the cached policy and map in force; false with |err| if there are
 * none or they do not apply. */
static bool cache_restore_config(wisp_agent_client *ac, char *err, size_t err_len) {
  uint8_t *raw = NULL;
  size_t len = 0;
  if (wisp_state_read(ac->cfg->svid_cache, CACHE_CONFIG, WISP_POLICY_MAX_INPUT * 2, &raw, &len, err, err_len) !=
      WISP_OK) {
    snprintf(err, err_len, "no policy was cached with the SVID, so it is not served without one");
    return false;
  }
  Wisp__V1__Snapshot *snap = wisp__v1__snapshot__unpack(NULL, len, raw);
  free(raw);
  bool ok = snap && apply_snapshot(ac->px, snap, "svid-cache", err, err_len) == WISP_OK;
  if (!snap) snprintf(err, err_len, "the cached configuration does not parse");
  wisp__v1__snapshot__free_unpacked(snap, NULL);
  return ok;
}

/* Puts a cached SVID back in force at start if it is ours and still
 * valid, with the policy and map cached with it. */
static bool cache_restore(wisp_agent_client *ac) {
  const char *dir = ac->cfg->svid_cache;
  uint8_t *svid = NULL, *bundle = NULL;
  size_t sl = 0, bl = 0;
  char err[512] = "";
  EVP_PKEY *key = NULL;
  STACK_OF(X509) *chain = NULL, *roots = NULL;
  int64_t na = 0;
  bool ok = false;
  /* Only a directory of ours that nobody else can write into: else anyone
   * could plant a key, an SVID and a root of their own. */
  if (wisp_state_ensure_dir(dir, 0700, err, sizeof(err)) != WISP_OK) {
    log_cert("cache_unusable", NULL, err);
    return false;
  }
  if (wisp_state_read(dir, CACHE_SVID, CACHE_MAX, &svid, &sl, err, sizeof(err)) != WISP_OK) {
    if (errno != ENOENT) WISP_WARN("--svid-cache %s: %s", dir, err);
    return false;
  }
  if (wisp_state_read(dir, CACHE_BUNDLE, CACHE_MAX, &bundle, &bl, err, sizeof(err)) == WISP_OK &&
      wisp_ca_key_from_pem(&key, (const char *)svid, sl, err, sizeof(err)) == WISP_OK &&
      wisp_ca_certs_from_pem(&chain, (const char *)svid, sl, err, sizeof(err)) == WISP_OK &&
      wisp_ca_certs_from_pem(&roots, (const char *)bundle, bl, err, sizeof(err)) == WISP_OK) {
    if (svid_usable(ac, chain, roots, &na, err, sizeof(err)) != WISP_OK) {
      /* err says why: expired, not yet valid, not under the cached bundle,
       * another identity's */
    } else if (!cache_restore_config(ac, err, sizeof(err))) {
      /* err says why */
    } else {
      ok = wisp_dataplane_install_credentials(ac->px, key, chain, roots, err, sizeof(err)) == WISP_OK;
    }
  }
  if (ok) {
    ac->have_svid = true;
    ac->not_after = na;
    log_cert("restored", wisp_tls_get0_info(ac->tls), "from --svid-cache");
  } else {
    log_cert("cache_unusable", NULL, err);
  }
  if (svid) OPENSSL_cleanse(svid, sl);
  free(svid);
  free(bundle);
  EVP_PKEY_free(key);
  sk_X509_pop_free(chain, X509_free);
  sk_X509_pop_free(roots, X509_free);
  return ok;
}

/* ---- Identity.Sign ---- */

static STACK_OF(X509) * der_list(ProtobufCBinaryData *items, size_t n) {
  STACK_OF(X509) *out = sk_X509_new_null();
  for (size_t i = 0; out && i < n; i++) {
    const uint8_t *p = items[i].data;
    X509 *c = d2i_X509(NULL, &p, (long)items[i].len);
    if (!c || p != items[i].data + items[i].len) {
      X509_free(c);
      sk_X509_pop_free(out, X509_free);
      return NULL;
    }
    sk_X509_push(out, c);
  }
  return out;
}

static wisp_err install(wisp_agent_client *ac, const uint8_t *msg, size_t len, char *err, size_t err_len) {
  Wisp__V1__SignResponse *resp = wisp__v1__sign_response__unpack(NULL, len, msg);
  if (!resp) {
    snprintf(err, err_len, "malformed SignResponse");
    return WISP_ERR_PROTO;
  }
  STACK_OF(X509) *chain = der_list(resp->chain, resp->n_chain);
  STACK_OF(X509) *roots = der_list(resp->bundle, resp->n_bundle);
  wisp_err rc = WISP_ERR_PROTO;
  int64_t na = 0;
  if (!chain || !roots || sk_X509_num(chain) == 0 || sk_X509_num(roots) == 0) {
    snprintf(err, err_len, "SignResponse without a usable chain and bundle");
  } else if ((rc = svid_usable(ac, chain, roots, &na, err, err_len)) == WISP_OK) {
    /* Checked first: a refused SVID is neither served nor cached, the
     * credentials in force stay. */
    rc = wisp_dataplane_install_credentials(ac->px, ac->pending_key, chain, roots, err, err_len);
  }
  if (rc == WISP_OK) {
    ac->have_svid = true;
    ac->not_after = na;
    cache_save(ac, ac->pending_key, chain, roots);
  }
  sk_X509_pop_free(chain, X509_free);
  sk_X509_pop_free(roots, X509_free);
  wisp__v1__sign_response__free_unpacked(resp, NULL);
  return rc;
}

static void watch_start(wisp_agent_client *ac);

static void on_sign_message(wisp_rpcc_call *call, const uint8_t *msg, size_t len, void *arg) {
  wisp_agent_client *ac = arg;
  char err[512], reason[768];
  if (install(ac, msg, len, err, sizeof(err)) != WISP_OK) {
    snprintf(reason, sizeof(reason), "agent %s: %s; %s", ac->target, err,
             ac->have_svid ? "the SVID in force stays" : "no SVID yet");
    log_cert("install_failed", NULL, reason);
    ac->install_refused = true; /* on_sign_done logs nothing more */
    return;
  }
  double life = (double)ac->not_after - now_s(); /* > 0: install checked it */
  ac->installed = true;
  ac->renew_failures = 0;
  ac->health.last_contact_unix = (int64_t)now_s();
  const wisp_tls_info *info = wisp_tls_get0_info(ac->tls);
  log_cert("issued", info, NULL);
  double delay = life * (RENEW_AT + RENEW_JITTER * jitter());
  schedule(ac, &ac->sign_timer, delay > MIN_RENEW_DELAY ? delay : MIN_RENEW_DELAY);
  ac->sign_backoff = BACKOFF_MIN;
  if (!ac->watch_conn) watch_start(ac);
}

static void on_sign_done(wisp_rpcc_call *call, wisp_grpc_status code, const char *message, void *arg) {
  wisp_agent_client *ac = arg;
  if (ac->closing) return;
  EVP_PKEY_free(ac->pending_key);
  ac->pending_key = NULL;
  retire(&ac->sign_conn);
  if (code == WISP_GRPC_OK && ac->installed) return;
  bool logged = code == WISP_GRPC_OK && ac->install_refused;
  ac->install_refused = false;
  char reason[1024];
  if (code == WISP_GRPC_OK) {
    snprintf(reason, sizeof(reason), "agent %s answered without a usable SVID", ac->target);
  } else {
    snprintf(reason, sizeof(reason), "agent %s: %s: %s", ac->target, wisp_grpc_status_name(code), message);
  }
  if (!logged) log_cert("sign_failed", NULL, reason); /* else install_failed said why */
  if (ac->have_svid) ac->renew_failures++;
  schedule(ac, &ac->sign_timer, next_backoff(&ac->sign_backoff));
}

static const wisp_rpcc_handlers kSign = {on_sign_message, on_sign_done};

/* The service-account token, read afresh: the kubelet replaces it before it
 * expires. NULL (logged) without --sa-token-file or when it cannot be read:
 * the Sign then goes without, and the agent says what is missing. */
static char *read_sa_token(const char *path) {
  if (!path) return NULL;
  FILE *f = fopen(path, "r");
  if (!f) {
    WISP_WARN("--sa-token-file %s: %s", path, strerror(errno));
    return NULL;
  }
  char *tok = wisp_malloc(SA_TOKEN_MAX + 1);
  size_t n = fread(tok, 1, SA_TOKEN_MAX + 1, f);
  fclose(f);
  if (n > SA_TOKEN_MAX) {
    WISP_WARN("--sa-token-file %s: larger than %d bytes", path, SA_TOKEN_MAX);
    n = 0;
  }
  tok[n] = '\0';
  while (n > 0 && strchr(" \t\r\n", tok[n - 1])) tok[--n] = '\0';
  return tok;
}

static void on_sign_timer(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_agent_client *ac = w->data;
  char err[512];
  uint8_t *csr = NULL;
  size_t csr_len = 0;
  if (ac->sign_conn) return; /* one at a time */
  ac->installed = false;
  ac->install_refused = false;
  EVP_PKEY_free(ac->pending_key);
  ac->pending_key = NULL;
  /* A fresh key for every SVID: the key never leaves this process. */
  snprintf(err, sizeof(err), "cannot make a P-256 key");
  if (wisp_ca_key_new_p256(&ac->pending_key) != WISP_OK ||
      wisp_ca_csr_new(&csr, &csr_len, ac->pending_key, ac->cfg->spiffe_id, err, sizeof(err)) != WISP_OK) {
    log_cert("csr_failed", NULL, err);
    schedule(ac, &ac->sign_timer, next_backoff(&ac->sign_backoff));
    return;
  }
  Wisp__V1__SignRequest req = WISP__V1__SIGN_REQUEST__INIT;
  req.csr.data = csr;
  req.csr.len = csr_len;
  /* Renewal proves identity with the current SVID over mTLS; the join
   * token is for the first one (or after the SVID expired). */
  bool renew = ac->have_svid && ac->not_after > (int64_t)now_s();
  bool have_token = ac->token[0] || ac->cfg->sa_token_file;
  if (renew && have_token && ac->renew_failures >= RENEW_FAILURES_BEFORE_TOKEN && ac->renew_failures % 2 == 1)
    renew = false;
  /* protobuf-c's strings are char *, only read: (char[]){...} is a writable literal. */
  req.join_token = renew ? (char[]){""} : ac->token;
  /* The service-account token goes with every Sign, renewals too: an SVID
   * issued on one lives no longer than it, and the agent renews it only on
   * a current one (the file, which the kubelet rotates, is read afresh). */
  char *sa_token = read_sa_token(ac->cfg->sa_token_file);
  req.sa_token.data = (uint8_t *)sa_token;
  req.sa_token.len = sa_token ? strlen(sa_token) : 0;
  ac->sign_conn = agent_connect(ac, renew, err, sizeof(err));
  wisp_rpcc_call *call =
      ac->sign_conn ? wisp_rpcc_unary(ac->sign_conn, "/wisp.v1.Identity/Sign", &req.base, &kSign, ac, SIGN_TIMEOUT)
                    : NULL;
  free(csr);
  if (sa_token) OPENSSL_cleanse(sa_token, strlen(sa_token));
  free(sa_token);
  if (!call) {
    if (!ac->sign_conn) log_cert("sign_failed", NULL, err);
    if (ac->have_svid) ac->renew_failures++;
    retire(&ac->sign_conn);
    schedule(ac, &ac->sign_timer, next_backoff(&ac->sign_backoff));
  }
}

/* ---- Config.Watch ---- */

static void watch_answer(wisp_agent_client *ac, wisp_rpcc_call *call, const Wisp__V1__Snapshot *snap,
                         const char *error) {
  Wisp__V1__WatchRequest req = WISP__V1__WATCH_REQUEST__INIT;
  req.spiffe_id = ac->cfg->spiffe_id;
  req.version = snap->version;
  req.nonce = snap->nonce;
  req.error_detail = (char *)(error ? error : "");
  if (wisp_rpcc_send(call, &req.base) != WISP_OK) wisp_rpcc_cancel(call);
}

static void on_snapshot(wisp_rpcc_call *call, const uint8_t *msg, size_t len, void *arg) {
  wisp_agent_client *ac = arg;
  wisp_proxy *px = ac->px;
  Wisp__V1__Snapshot *snap = wisp__v1__snapshot__unpack(NULL, len, msg);
  if (!snap) {
    wisp_rpcc_cancel(call);
    return;
  }
  char err[512] = "";
  STACK_OF(X509) *roots = snap->n_bundle ? der_list(snap->bundle, snap->n_bundle) : NULL;
  if (snap->n_bundle && !roots) {
    snprintf(err, sizeof(err), "bundle holds a certificate that does not parse");
  } else if (apply_snapshot(px, snap, "agent", err, sizeof(err)) != WISP_OK) {
    /* NACK: the last good policy and map stay in force */
  } else if (roots && ac->have_svid && wisp_dataplane_install_roots(ac->px, roots, err, sizeof(err)) != WISP_OK) {
    /* err says why */
  } else {
    if (roots && ac->have_svid) cache_save(ac, NULL, NULL, roots);
    cache_save_config(ac, msg, len);
    err[0] = '\0';
  }
  wisp_json j;
  wisp_json_begin(&j, "config");
  ac->health.connected = true;
  ac->health.unreachable_since_unix = 0;
  ac->health.last_contact_unix = (int64_t)now_s();
  ac->health.nacked = err[0] != '\0';
  if (err[0]) ac->health.nacks++;
  wisp_json_str(&j, "event", err[0] ? "nack" : "ack");
  wisp_json_str(&j, "version", snap->version);
  wisp_json_int(&j, "bundle_roots", (int64_t)snap->n_bundle);
  wisp_json_int(&j, "destinations", (int64_t)snap->n_destinations);
  if (err[0]) wisp_json_str(&j, "error", err);
  wisp_json_emit_err(&j);
  watch_answer(ac, call, snap, err[0] ? err : NULL);
  sk_X509_pop_free(roots, X509_free);
  wisp__v1__snapshot__free_unpacked(snap, NULL);
  ac->watch_backoff = BACKOFF_MIN;
  ac->watching = true;
}

/* The Watch stream is gone (or could not start): unreachable from now,
 * unless it was already. */
static void watch_lost(wisp_agent_client *ac) {
  ac->health.connected = false;
  if (!ac->health.unreachable_since_unix) ac->health.unreachable_since_unix = (int64_t)now_s();
}

static void on_watch_done(wisp_rpcc_call *call, wisp_grpc_status code, const char *message, void *arg) {
  wisp_agent_client *ac = arg;
  if (ac->closing) return;
  ac->watching = false;
  watch_lost(ac);
  retire(&ac->watch_conn);
  snprintf(ac->watch_error, sizeof(ac->watch_error), "the agent ended Config.Watch: %s: %s",
           wisp_grpc_status_name(code), message);
  WISP_WARN("config watch ended (%s: %s); keeping the last policy, reconnecting", wisp_grpc_status_name(code), message);
  schedule(ac, &ac->watch_timer, next_backoff(&ac->watch_backoff));
}

static const wisp_rpcc_handlers kWatch = {on_snapshot, on_watch_done};

static void watch_start(wisp_agent_client *ac) {
  char err[512];
  ac->watch_conn = agent_connect(ac, ac->have_svid, err, sizeof(err));
  wisp_rpcc_call *call =
      ac->watch_conn ? wisp_rpcc_call_start(ac->watch_conn, "/wisp.v1.Config/Watch", &kWatch, ac, 0) : NULL;
  Wisp__V1__WatchRequest req = WISP__V1__WATCH_REQUEST__INIT;
  Wisp__V1__NodeInfo node = WISP__V1__NODE_INFO__INIT;
  node.proxy_version = (char[]){WISP_VERSION};
  req.spiffe_id = ac->cfg->spiffe_id;
  req.node = &node;
  if (!call || wisp_rpcc_send(call, &req.base) != WISP_OK) {
    snprintf(ac->watch_error, sizeof(ac->watch_error), "cannot start Config.Watch: %s",
             ac->watch_conn ? "the call failed" : err);
    if (call) wisp_rpcc_cancel(call);
    retire(&ac->watch_conn);
    watch_lost(ac);
    schedule(ac, &ac->watch_timer, next_backoff(&ac->watch_backoff));
  }
}

static void on_watch_timer(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_agent_client *ac = w->data;
  if (!ac->watch_conn) watch_start(ac);
}

/* ---- setup ---- */

static wisp_err read_token(wisp_agent_client *ac, const wisp_config *cfg, char *err, size_t err_len) {
  if (cfg->join_token) {
    snprintf(ac->token, sizeof(ac->token), "%s", cfg->join_token);
    return WISP_OK;
  }
  if (!cfg->join_token_file) return WISP_OK; /* renewal-only (e.g. a restart with a cached SVID) */
  FILE *f = fopen(cfg->join_token_file, "r");
  if (!f) {
    snprintf(err, err_len, "--join-token-file %s: %s", cfg->join_token_file, strerror(errno));
    return WISP_ERR_USAGE;
  }
  size_t n = fread(ac->token, 1, sizeof(ac->token) - 1, f);
  fclose(f);
  ac->token[n] = '\0';
  ac->token[strcspn(ac->token, " \t\r\n")] = '\0';
  return WISP_OK;
}

/* The parts of start that can fail, on |ac| (which the caller frees then). */
static wisp_err setup(wisp_agent_client *ac, const wisp_config *cfg, char *err, size_t err_len) {
  wisp_spiffe_id id;
  char why[160];
  if (wisp_spiffe_parse(&id, cfg->spiffe_id, strlen(cfg->spiffe_id), why, sizeof(why)) != WISP_OK) {
    snprintf(err, err_len, "--spiffe-id %s: %s", cfg->spiffe_id, why);
    return WISP_ERR_USAGE;
  }
  snprintf(ac->agent_id, sizeof(ac->agent_id), "spiffe://%s/wisp/agent", id.trust_domain);
  WISP_GUARD(read_token(ac, cfg, err, err_len));
  if (ac->https) {
    ac->bootstrap_tls = wisp_tls_new(NULL);
    WISP_GUARD(wisp_tls_load_trust_file(ac->bootstrap_tls, cfg->bundle, err, err_len));
  }
  return WISP_OK;
}

wisp_err wisp_agent_client_start(wisp_agent_client **out, wisp_proxy *px, char *err, size_t err_len) {
  const wisp_config *cfg = wisp_dataplane_config(px);
  wisp_agent_client *ac = wisp_calloc(1, sizeof(*ac));
  ac->px = px;
  ac->loop = wisp_dataplane_loop(px);
  ac->cfg = cfg;
  ac->tls = wisp_dataplane_tls(px);
  ac->sign_backoff = ac->watch_backoff = BACKOFF_MIN;
  snprintf(ac->watch_error, sizeof(ac->watch_error), "waiting for an SVID and the first snapshot");
  ac->health.unreachable_since_unix = (int64_t)now_s(); /* until the first snapshot */
  ac->https = strncmp(cfg->agent, "https://", 8) == 0;
  snprintf(ac->target, sizeof(ac->target), "%s", ac->https ? cfg->agent + 8 : cfg->agent);
  ev_init(&ac->sign_timer, on_sign_timer);
  ev_init(&ac->watch_timer, on_watch_timer);
  ac->sign_timer.data = ac->watch_timer.data = ac;
  wisp_err rc = setup(ac, cfg, err, err_len);
  if (rc != WISP_OK) {
    wisp_agent_client_free(ac);
    return rc;
  }
  /* With a cached SVID: serve now, and renew at once over mTLS (the agent
   * may be down: retried with backoff while the cached SVID serves; or it
   * may no longer accept it: then the token, see RENEW_FAILURES_...). */
  if (cfg->svid_cache && cache_restore(ac)) watch_start(ac);
  schedule(ac, &ac->sign_timer, 0);
  *out = ac;
  return WISP_OK;
}

const char *wisp_agent_client_watch_error(const wisp_agent_client *ac) { return ac ? ac->watch_error : ""; }

bool wisp_agent_client_watching(const wisp_agent_client *ac) { return ac && ac->watching; }
void wisp_agent_client_get_health(const wisp_agent_client *ac, wisp_agent_client_health *out) {
  *out = ac->health;
  if (out->connected) out->last_contact_unix = (int64_t)now_s();
}

void wisp_agent_client_free(wisp_agent_client *ac) {
  if (!ac) return;
  struct ev_loop *loop = ac->loop;
  ev_timer_stop(loop, &ac->sign_timer);
  ev_timer_stop(loop, &ac->watch_timer);
  /* wisp_rpcc_free runs the calls' on_done inline: they must find nothing
   * left to retire or reschedule. */
  ac->closing = true;
  retire(&ac->sign_conn);
  retire(&ac->watch_conn);
  EVP_PKEY_free(ac->pending_key);
  wisp_tls_free(ac->bootstrap_tls);
  free(ac);
}
