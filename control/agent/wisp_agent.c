#include "control/agent/wisp_agent.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "control/agent/wisp_agent_internal.h"
#include "control/agent/wisp_agent_registry.h"
#include "control/agent/wisp_agent_rotate.h"
#include "control/agent/wisp_agent_sign.h"
#include "control/agent/wisp_agent_state.h"
#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_state.h"
#include "wisp/v1/admin.pb-c.h"

#define POLICY_POLL_SECONDS 0.5
/* How often summaries of rate-limited log lines are written. */
#define LOG_FLUSH_SECONDS 1.0

static void on_log_flush(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_log_limit_flush(wisp_log_now());
  fflush(stdout);
}

static void on_cert_renew(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_agent *a = w->data;
  char err[512];
  if (wag_issue_agent_cert(a, err, sizeof(err)) != WISP_OK) WISP_ERROR("cannot renew the agent's certificate: %s", err);
}

static wisp_err load_policy(wisp_agent *a, char *err, size_t err_len) {
  size_t len;
  if (!wag_state_exists(a, F_POLICY)) {
    a->policy = wisp_strdup("");
    return WISP_OK;
  }
  WISP_GUARD(wag_load(a, F_POLICY, &a->policy, &len, err, err_len));
  if (wisp_policy_compile(&a->compiled, a->policy, len, err, err_len) != WISP_OK) {
    WISP_ERROR("the saved policy no longer compiles (%s); fix it with wispctl apply", err);
    a->compiled = NULL;
  }
  char *v;
  if (wag_load(a, F_VERSION, &v, &len, err, err_len) == WISP_OK) {
    a->version = strtoull(v, NULL, 10);
    free(v);
  }
  return WISP_OK;
}

/* ---- Admin: policy and status ---- */

/* Installs |yaml| as the next policy version and pushes it, if it compiles:
 * a bad policy is refused whole and the last good one stays in force. */
static wisp_err apply_policy(wisp_agent *a, const char *yaml, const char *source, char *err, size_t err_len) {
  wisp_policy *check = NULL;
  if (wisp_policy_compile(&check, yaml, strlen(yaml), err, err_len) != WISP_OK) {
    wag_log_event("policy_rejected", "source", source, "error", err);
    return WISP_ERR_POLICY;
  }
  char version[32];
  uint64_t next = a->version + 1;
  snprintf(version, sizeof(version), "%" PRIu64, next);
  wisp_err rc = wag_save(a, F_POLICY, yaml, strlen(yaml), err, err_len);
  if (rc == WISP_OK) rc = wag_save(a, F_VERSION, version, strlen(version), err, err_len);
  if (rc != WISP_OK) {
    wisp_policy_free(check);
    return rc;
  }
  free(a->policy);
  a->policy = wisp_strdup(yaml);
  wisp_policy_free(a->compiled);
  a->compiled = check;
  a->version = next;
  wag_log_event("policy_applied", "version", version, "source", source);
  wag_push_all(a);
  return WISP_OK;
}

static void on_apply_policy(wisp_rpc_call *call, const uint8_t *msg, size_t len) {
  wisp_agent *a = wisp_rpc_server_data(wisp_rpc_call_server(call));
  if (!wag_admin_allowed(call)) return;
  Wisp__V1__ApplyPolicyRequest *req = wisp__v1__apply_policy_request__unpack(NULL, len, msg);
  char err[512];
  if (!req) {
    wisp_rpc_finish(call, WISP_GRPC_INVALID_ARGUMENT, "malformed ApplyPolicyRequest");
    return;
  }
  wisp_err rc = apply_policy(a, req->yaml, req->source[0] ? req->source : "api", err, sizeof(err));
  if (rc == WISP_ERR_POLICY) {
    wisp_rpc_finishf(call, WISP_GRPC_INVALID_ARGUMENT, "policy refused, the last good one stays in force: %s", err);
  } else if (rc != WISP_OK) {
    wisp_rpc_finishf(call, WISP_GRPC_INTERNAL, "cannot store the policy: %s", err);
  } else {
    Wisp__V1__ApplyPolicyResponse resp = WISP__V1__APPLY_POLICY_RESPONSE__INIT;
    char version[32];
    wag_version_str(a, version, sizeof(version));
    resp.version = version;
    if (wisp_rpc_send(call, &resp.base) == WISP_OK) wisp_rpc_finish(call, WISP_GRPC_OK, NULL);
  }
  wisp__v1__apply_policy_request__free_unpacked(req, NULL);
}

static void on_status(wisp_rpc_call *call, const uint8_t *msg, size_t len) {
  wisp_agent *a = wisp_rpc_server_data(wisp_rpc_call_server(call));
  if (!wag_admin_allowed(call)) return;
  Wisp__V1__StatusResponse resp = WISP__V1__STATUS_RESPONSE__INIT;
  char version[32];
  wag_version_str(a, version, sizeof(version));
  resp.version = version;
  resp.ca_not_after_unix = wag_not_after(wisp_ca_get0_cert(a->ca));
  STACK_OF(X509) *roots = wisp_ca_get0_roots(a->ca);
  resp.bundle_roots = (uint32_t)sk_X509_num(roots);
  /* prepared: the new root waits in the bundle; active: it signs, and the
   * old root stays in the bundle until finish. */
  resp.ca_rotation = (char *)(a->next_ca ? "prepared" : resp.bundle_roots > 1 ? "active" : "none");
  if (!a->next_ca && resp.bundle_roots > 1) resp.ca_rotation_finish_after_unix = wag_old_root_svids_until(a);
  int64_t *root_not_after = wisp_calloc(resp.bundle_roots ? resp.bundle_roots : 1, sizeof(*root_not_after));
  for (size_t i = 0; i < resp.bundle_roots; i++) root_not_after[i] = wag_not_after(sk_X509_value(roots, i));
  resp.bundle_not_after_unix = root_not_after;
  resp.n_bundle_not_after_unix = resp.bundle_roots;
  Wisp__V1__ProxyStatus *items = wisp_calloc(a->nproxies, sizeof(*items));
  Wisp__V1__ProxyStatus **ptrs = wisp_calloc(a->nproxies, sizeof(*ptrs));
  for (size_t i = 0; i < a->nproxies; i++) {
    proxy_record *r = a->proxies[i];
    wisp__v1__proxy_status__init(&items[i]);
    items[i].spiffe_id = r->spiffe_id;
    items[i].connected = r->watchers > 0;
    items[i].sidecars_connected = (uint32_t)r->watchers;
    items[i].acked_version = r->acked;
    r->status_index = i;
    items[i].svid_serial = r->serial;
    items[i].svid_not_after_unix = r->not_after;
    items[i].svid_signed_unix = r->signed_at;
    items[i].last_seen_unix = r->last_seen;
    ptrs[i] = &items[i];
  }
  wag_sidecar_answers(a, items, version);
  resp.proxies = ptrs;
  resp.n_proxies = a->nproxies;
  if (wisp_rpc_send(call, &resp.base) == WISP_OK) {
    wisp_rpc_finish(call, WISP_GRPC_OK, NULL);
  } else {
    wisp_rpc_finish(call, WISP_GRPC_INTERNAL, "status too large");
  }
  free(items);
  free(ptrs);
  free(root_not_after);
}

static const wisp_rpc_method kMethods[] = {
    {"/wisp.v1.Identity/Sign", false, wag_on_sign, NULL, NULL},
    {"/wisp.v1.Config/Watch", true, wag_on_watch_first, wag_on_watch_end, wag_on_watch_close},
    {"/wisp.v1.Admin/ApplyPolicy", false, on_apply_policy, NULL, NULL},
    {"/wisp.v1.Admin/CreateJoinToken", false, wag_on_create_token, NULL, NULL},
    {"/wisp.v1.Admin/Status", false, on_status, NULL, NULL},
    {"/wisp.v1.Admin/RotateCA", false, wag_on_rotate_ca, NULL, NULL},
};

/* ---- --policy-dir ---- */

static int yaml_name(const struct dirent *d) {
  size_t n = strlen(d->d_name);
  return d->d_name[0] != '.' &&
         ((n > 5 && !strcmp(d->d_name + n - 5, ".yaml")) || (n > 4 && !strcmp(d->d_name + n - 4, ".yml")));
}

/* The directory's *.yaml files, in name order, joined as one YAML stream
 * (a mounted ConfigMap: its files change by an atomic symlink swap). */
static char *read_policy_dir(const char *dir) {
  struct dirent **names = NULL;
  int n = scandir(dir, &names, yaml_name, alphasort);
  if (n < 0) return NULL;
  wisp_buf b = {0};
  for (int i = 0; i < n; i++) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
    FILE *f = fopen(path, "r");
    char chunk[4096];
    size_t got;
    if (wisp_buf_len(&b) && wisp_buf_append(&b, "\n---\n", 5, STATE_MAX) != WISP_OK) break;
    while (f && (got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
      if (wisp_buf_append(&b, chunk, got, STATE_MAX) != WISP_OK) break;
    }
    if (f) fclose(f);
    free(names[i]);
  }
  free(names);
  char *out =
      wisp_strndup((const char *)(wisp_buf_len(&b) ? wisp_buf_rptr(&b) : (const uint8_t *)""), wisp_buf_len(&b));
  wisp_buf_cleanup(&b);
  return out;
}

/* The directory is applied when its files change (and when first read, if
 * they differ from the stored policy), not whenever they differ from the
 * policy in force: a `wispctl apply` in between holds until the next edit
 * of the ConfigMap, and a bad file set is refused (and logged) once. */
static void on_policy_poll(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_agent *a = w->data;
  char *yaml = read_policy_dir(a->cfg.policy_dir);
  if (!yaml) return;
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256((const uint8_t *)yaml, strlen(yaml), digest);
  if (memcmp(digest, a->policy_dir_digest, sizeof(digest)) != 0) {
    memcpy(a->policy_dir_digest, digest, sizeof(digest));
    char err[512];
    if (strcmp(yaml, a->policy) != 0 && apply_policy(a, yaml, a->cfg.policy_dir, err, sizeof(err)) != WISP_OK)
      WISP_ERROR("cannot apply the policy from %s: %s", a->cfg.policy_dir, err);
  }
  free(yaml);
}

/* ---- life ---- */

/* Builds |a| (zeroed) from |cfg| and starts it; on failure |a| holds what
 * was made, for wisp_agent_free. */
static wisp_err agent_start(wisp_agent *a, struct ev_loop *loop, const wisp_agent_config *cfg, char *err,
                            size_t err_len) {
  a->loop = loop;
  a->cfg = *cfg;
  wisp_list_init(&a->watchers);
  wisp_tls_opts topts = {.client_cert_optional = true};
  a->tls = wisp_tls_new(&topts);
  WISP_GUARD(wisp_state_ensure_dir(cfg->state_dir, 0700, err, err_len));
  WISP_GUARD(wag_load_ca(a, err, err_len));
  char *tokens;
  size_t len;
  if (wag_state_exists(a, F_TOKENS)) {
    WISP_GUARD(wag_load(a, F_TOKENS, &tokens, &len, err, err_len));
    char why[320];
    wisp_err rc = wisp_tokens_parse(&a->tokens, tokens, len, why, sizeof(why));
    free(tokens);
    if (rc != WISP_OK) {
      snprintf(err, err_len, "%s/%s is corrupt: %s", cfg->state_dir, F_TOKENS, why);
      return rc;
    }
  }
  WISP_GUARD(wag_load_rotation(a, err, err_len));
  WISP_GUARD(load_policy(a, err, err_len));
  WISP_GUARD(wag_issue_agent_cert(a, err, err_len));
  wisp_sa_config sacfg = {cfg->sa_jwks, cfg->sa_issuer, cfg->kube_api ? cfg->kube_api : "off",
                          cfg->kube_sa_dir ? cfg->kube_sa_dir : "/var/run/secrets/kubernetes.io/serviceaccount",
                          cfg->sa_max_lifetime ? cfg->sa_max_lifetime : WISP_SA_MAX_LIFETIME_DEFAULT};
  WISP_GUARD(wisp_sa_new(&a->sa, loop, &sacfg, err, err_len));
  if (cfg->webhook.listen) WISP_GUARD(wisp_injector_new(&a->injector, loop, &cfg->webhook, a->ca, err, err_len));
  wisp_rpc_config rcfg = {.methods = kMethods,
                          .nmethods = sizeof(kMethods) / sizeof(kMethods[0]),
                          .data = a,
                          .max_connections = cfg->max_connections,
                          .max_conn_buffer = cfg->max_conn_buffer,
                          .max_per_source = cfg->max_connections_per_source,
                          .idle_timeout = cfg->idle_timeout};
  a->rpc = wisp_rpc_server_new(loop, &rcfg);
  wisp_rpc_server_set_tls(a->rpc, a->tls);
  if (cfg->listen_unix) WISP_GUARD(wisp_rpc_listen_unix(a->rpc, cfg->listen_unix, 0660, err, err_len));
  if (cfg->listen_tls) WISP_GUARD(wisp_rpc_listen_tls(a->rpc, cfg->listen_tls, err, err_len));
  ev_timer_init(&a->log_flush, on_log_flush, LOG_FLUSH_SECONDS, LOG_FLUSH_SECONDS);
  ev_timer_start(loop, &a->log_flush);
  ev_timer_init(&a->cert_renew, on_cert_renew, AGENT_CERT_TTL / 2, AGENT_CERT_TTL / 2);
  a->cert_renew.data = a;
  ev_timer_start(loop, &a->cert_renew);
  if (cfg->policy_dir) {
    ev_timer_init(&a->policy_poll, on_policy_poll, 0, POLICY_POLL_SECONDS);
    a->policy_poll.data = a;
    ev_timer_start(loop, &a->policy_poll);
  }
  wisp_json j;
  wisp_json_begin(&j, "agent");
  wisp_json_str(&j, "event", "started");
  wisp_json_str(&j, "trust_domain", wisp_ca_get0_trust_domain(a->ca));
  wisp_json_str(&j, "listen_unix", cfg->listen_unix);
  wisp_json_str(&j, "listen_tls", cfg->listen_tls);
  wisp_json_int(&j, "policy_version", (int64_t)a->version);
  wisp_json_int(&j, "svid_ttl_s", cfg->svid_ttl);
  wisp_json_int(&j, "max_connections", (int64_t)cfg->max_connections);
  wisp_json_int(&j, "max_connections_per_source", (int64_t)cfg->max_connections_per_source);
  wisp_json_double(&j, "idle_timeout_s", cfg->idle_timeout);
  wisp_json_int(&j, "max_watchers", (int64_t)cfg->max_watchers);
  wisp_json_int(&j, "max_proxies", (int64_t)cfg->max_proxies);
  wisp_json_int(&j, "max_watchers_per_caller", (int64_t)cfg->max_watchers_per_caller);
  wisp_json_int(&j, "max_conn_buffer", (int64_t)cfg->max_conn_buffer);
  wisp_json_emit_err(&j);
  return WISP_OK;
}

wisp_err wisp_agent_new(wisp_agent **out, struct ev_loop *loop, const wisp_agent_config *cfg, char *err,
                        size_t err_len) {
  wisp_agent *a = wisp_calloc(1, sizeof(*a));
  wisp_err rc = agent_start(a, loop, cfg, err, err_len);
  if (rc != WISP_OK) {
    wisp_agent_free(a);
    return rc;
  }
  *out = a;
  return WISP_OK;
}

void wisp_agent_free(wisp_agent *a) {
  if (!a) return;
  ev_timer_stop(a->loop, &a->cert_renew);
  ev_timer_stop(a->loop, &a->policy_poll);
  ev_timer_stop(a->loop, &a->log_flush);
  wisp_rpc_server_free(a->rpc); /* closes watchers through on_watch_close */
  wisp_rpc_shared_free(a->snapshot);
  wisp_sa_free(a->sa);
  wisp_injector_free(a->injector);
  wisp_tls_free(a->tls);
  wisp_ca_free(a->ca);
  wisp_ca_free(a->next_ca);
  wisp_tokens_cleanup(&a->tokens);
  free(a->policy);
  wisp_policy_free(a->compiled);
  for (size_t i = 0; i < a->nproxies; i++) free(a->proxies[i]);
  free(a->proxies);
  free(a);
}
