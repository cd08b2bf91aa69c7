#include "proxy/wisp_authz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "proxy/wisp_agent_client.h"
#include "proxy/wisp_dests.h"
#include "proxy/wisp_proxy.h"

#define POLICY_POLL_MAX 0.5 /* a changed file governs new requests within 1 s */

static const char *workload_id(const wisp_proxy *px) {
  if (px->cfg->spiffe_id) return px->cfg->spiffe_id;
  return wisp_tls_get0_info(px->tls)->spiffe_id;
}

wisp_err wisp_authz_apply(wisp_proxy *px, const wisp_authz_update *u, char *err, size_t err_len) {
  const char *yaml = u->yaml, *source = u->source, *version = u->version;
  size_t len = u->len;
  wisp_policy *p = NULL;
  wisp_policy_view *v = NULL;
  wisp_dests *dests = NULL;
  char why[1024];
  wisp_err rc = wisp_policy_compile(&p, yaml, len, why, sizeof(why));
  if (rc == WISP_OK) {
    const char *id = workload_id(px);
    rc = wisp_policy_view_new(&v, p, id, strlen(id));
    if (rc != WISP_OK) snprintf(why, sizeof(why), "cannot apply the policy to %s", id);
  }
  if (rc == WISP_OK) {
    const wisp_policy_destination *d = u->dests;
    size_t n = u->dests_from_policy ? wisp_policy_get_destinations(p, &d) : u->ndests;
    rc = wisp_dests_new(&dests, d, n, why, sizeof(why));
  }
  if (rc != WISP_OK) {
    snprintf(err, err_len, "%s", why);
    wisp_policy_view_free(v);
    wisp_policy_free(p);
    wisp_json j;
    wisp_json_begin(&j, "policy");
    wisp_json_str(&j, "event", "rejected");
    wisp_json_str(&j, "source", source);
    wisp_json_str(&j, "error", why);
    wisp_json_str(&j, "in_force", px->policy ? "the last good policy" : "no policy");
    wisp_json_emit_err(&j);
    return rc;
  }
  wisp_policy_view_free(px->view);
  wisp_policy_free(px->policy);
  px->policy = p;
  px->view = v;
  px->permissive = wisp_policy_view_mode(v) == WISP_MTLS_PERMISSIVE;
  wisp_proxy_set_dests(px, dests);
  free(px->policy_yaml);
  px->policy_yaml = wisp_strndup(yaml, len);
  snprintf(px->policy_version, sizeof(px->policy_version), "%s", version ? version : "");
  wisp_policy_stats st;
  wisp_policy_view_info info;
  wisp_policy_get_stats(p, &st);
  wisp_policy_view_get_info(v, &info);
  wisp_json j;
  wisp_json_begin(&j, "policy");
  wisp_json_str(&j, "event", "applied");
  wisp_json_str(&j, "source", source);
  if (version) wisp_json_str(&j, "version", version);
  wisp_json_int(&j, "documents", (int64_t)st.documents);
  wisp_json_int(&j, "rules", (int64_t)st.rules);
  wisp_json_int(&j, "governing_allow", (int64_t)info.allow_policies);
  wisp_json_int(&j, "governing_deny", (int64_t)info.deny_policies);
  wisp_json_str(&j, "mtls_mode", wisp_mtls_mode_name(info.mode));
  wisp_json_int(&j, "destinations", (int64_t)wisp_dests_count(px->dests));
  wisp_json_emit_err(&j);
  return WISP_OK;
}

bool wisp_authz_pending(const wisp_proxy *px, char *why, size_t why_len) {
  if (!px->cfg->agent || px->policy) return false;
  snprintf(why, why_len, WISP_AUTHZ_REASON_PENDING ": %s", wisp_agent_client_watch_error(px->agent));
  return true;
}

void wisp_authz_check(const wisp_proxy *px, const char *principal, const char *method, const char *path, uint16_t port,
                      wisp_policy_decision *out) {
  if (!px->view && px->cfg->agent) {
    *out = (wisp_policy_decision){.allow = false, .policy = NULL, .rule = -1, .reason = WISP_AUTHZ_REASON_PENDING};
    return;
  }
  if (!px->view) {
    *out = (wisp_policy_decision){.allow = true, .policy = NULL, .rule = -1, .reason = WISP_POLICY_REASON_NO_POLICY};
    return;
  }
  wisp_policy_request req = {
      .principal = principal,
      .principal_len = principal ? strlen(principal) : 0,
      .method = method,
      .method_len = method ? strlen(method) : 0,
      .path = path,
      .path_len = path ? strlen(path) : 0,
      .port = port,
  };
  wisp_policy_evaluate(px->view, &req, out);
}

/* ---- --policy FILE ---- */

void wisp_authz_describe(const wisp_policy_decision *d, char *why, size_t why_len) {
  if (d->policy) {
    snprintf(why, why_len, "RBAC: access denied (%s: policy %s, rule %d)", d->reason, d->policy, d->rule);
  } else {
    snprintf(why, why_len, "RBAC: access denied (%s)", d->reason);
  }
}

static char *read_file(const char *path, size_t *out_len, char *err, size_t err_len) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = wisp_malloc(WISP_POLICY_MAX_INPUT + 1);
  size_t n = fread(buf, 1, WISP_POLICY_MAX_INPUT + 1, f);
  fclose(f);
  if (n > WISP_POLICY_MAX_INPUT) {
    snprintf(err, err_len, "%s is larger than %u bytes", path, WISP_POLICY_MAX_INPUT);
    free(buf);
    return NULL;
  }
  *out_len = n;
  return buf;
}

static wisp_err load_file(wisp_proxy *px, char *err, size_t err_len) {
  size_t len = 0;
  char *yaml = read_file(px->cfg->policy_file, &len, err, err_len);
  if (!yaml) return WISP_ERR_IO;
  wisp_authz_update u = {.yaml = yaml, .len = len, .dests_from_policy = true, .source = px->cfg->policy_file};
  wisp_err rc = wisp_authz_apply(px, &u, err, err_len);
  free(yaml);
  return rc;
}

static void on_policy_poll(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_proxy *px = w->data;
  char err[1024];
  /* A refused policy is logged where it is judged (wisp_authz_apply, with
   * "the last good policy stays in force"); only read errors are new here. */
  if (wisp_filewatch_changed(&px->policy_watch) && load_file(px, err, sizeof(err)) == WISP_ERR_IO)
    WISP_ERROR("policy: %s", err);
}

wisp_err wisp_authz_start(wisp_proxy *px, char *err, size_t err_len) {
  if (!px->cfg->policy_file) return WISP_OK;
  const char *path = px->cfg->policy_file;
  size_t bad;
  if (wisp_filewatch_init(&px->policy_watch, &path, 1, &bad) != WISP_OK) {
    snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno));
    return WISP_ERR_IO;
  }
  WISP_GUARD(load_file(px, err, err_len)); /* a bad file at start is a start-up error */
  double every = px->cfg->reload_interval > 0 && px->cfg->reload_interval < POLICY_POLL_MAX ? px->cfg->reload_interval
                                                                                            : POLICY_POLL_MAX;
  ev_timer_init(&px->policy_poll, on_policy_poll, every, every);
  px->policy_poll.data = px;
  ev_timer_start(px->loop, &px->policy_poll);
  return WISP_OK;
}

void wisp_authz_cleanup(wisp_proxy *px) {
  if (px->loop) ev_timer_stop(px->loop, &px->policy_poll);
  wisp_filewatch_cleanup(&px->policy_watch);
  wisp_policy_view_free(px->view);
  wisp_policy_free(px->policy);
  px->view = NULL;
  px->policy = NULL;
}
