#include "proxy/control/wisp_authz_load.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "lib/wisp_filewatch.h"
#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "proxy/dataplane/wisp_dests.h"

#define POLICY_POLL_MAX 0.5 /* a changed file governs new requests within 1 s */

struct wisp_authz_load {
  wisp_proxy *px;
  const char *path; /* --policy FILE (the config's) */
  ev_timer poll;
  wisp_filewatch watch;
};

static const char *workload_id(const wisp_proxy *px) {
  const wisp_config *cfg = wisp_dataplane_config(px);
  if (cfg->spiffe_id) return cfg->spiffe_id;
  return wisp_tls_get0_info(wisp_dataplane_tls(px))->spiffe_id;
}

static void log_rejected(const wisp_proxy *px, const char *source, const char *why) {
  wisp_dataplane_policy_info cur;
  wisp_dataplane_get_policy(px, &cur);
  wisp_json j;
  wisp_json_begin(&j, "policy");
  wisp_json_str(&j, "event", "rejected");
  wisp_json_str(&j, "source", source);
  wisp_json_str(&j, "error", why);
  wisp_json_str(&j, "in_force", cur.policy ? "the last good policy" : "no policy");
  wisp_json_emit_err(&j);
}

static void log_applied(const wisp_policy *p, const wisp_policy_view *v, const char *source, const char *version,
                        size_t ndests) {
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
  wisp_json_int(&j, "destinations", (int64_t)ndests);
  wisp_json_emit_err(&j);
}

wisp_err wisp_authz_load_apply(wisp_proxy *px, const wisp_authz_load_update *u, char *err, size_t err_len) {
  wisp_policy *p = NULL;
  wisp_policy_view *v = NULL;
  wisp_dests *dests = NULL;
  char why[1024];
  wisp_err rc = wisp_policy_compile(&p, u->yaml, u->len, why, sizeof(why));
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
    log_rejected(px, u->source, why);
    return rc;
  }
  size_t ndests = wisp_dests_count(dests);
  wisp_dataplane_policy in = {.policy = p,
                              .view = v,
                              .permissive = wisp_policy_view_mode(v) == WISP_MTLS_PERMISSIVE,
                              .yaml = u->yaml,
                              .len = u->len,
                              .version = u->version};
  wisp_dataplane_apply_policy(px, &in);
  wisp_dataplane_set_dests(px, dests);
  log_applied(p, v, u->source, u->version, ndests);
  return WISP_OK;
}

/* ---- --policy FILE ---- */

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

static wisp_err load_file(wisp_authz_load *l, char *err, size_t err_len) {
  size_t len = 0;
  char *yaml = read_file(l->path, &len, err, err_len);
  if (!yaml) return WISP_ERR_IO;
  wisp_authz_load_update u = {.yaml = yaml, .len = len, .dests_from_policy = true, .source = l->path};
  wisp_err rc = wisp_authz_load_apply(l->px, &u, err, err_len);
  free(yaml);
  return rc;
}

static void on_policy_poll(struct ev_loop *loop, ev_timer *w, int revents) {
  wisp_authz_load *l = w->data;
  char err[1024];
  /* A refused policy is logged where it is judged (wisp_authz_load_apply,
   * with "the last good policy stays in force"); only read errors are new
   * here. */
  if (wisp_filewatch_changed(&l->watch) && load_file(l, err, sizeof(err)) == WISP_ERR_IO) WISP_ERROR("policy: %s", err);
}

wisp_err wisp_authz_load_start(wisp_authz_load **out, wisp_proxy *px, char *err, size_t err_len) {
  const wisp_config *cfg = wisp_dataplane_config(px);
  if (!cfg->policy_file) {
    *out = NULL;
    return WISP_OK;
  }
  wisp_authz_load *l = wisp_calloc(1, sizeof(*l));
  l->px = px;
  l->path = cfg->policy_file;
  size_t bad;
  if (wisp_filewatch_init(&l->watch, &l->path, 1, &bad) != WISP_OK) {
    snprintf(err, err_len, "cannot read %s: %s", l->path, strerror(errno));
    wisp_authz_load_free(l);
    return WISP_ERR_IO;
  }
  wisp_err rc = load_file(l, err, err_len); /* a bad file at start is a start-up error */
  if (rc != WISP_OK) {
    wisp_authz_load_free(l);
    return rc;
  }
  double every =
      cfg->reload_interval > 0 && cfg->reload_interval < POLICY_POLL_MAX ? cfg->reload_interval : POLICY_POLL_MAX;
  ev_timer_init(&l->poll, on_policy_poll, every, every);
  l->poll.data = l;
  ev_timer_start(wisp_dataplane_loop(px), &l->poll);
  *out = l;
  return WISP_OK;
}

void wisp_authz_load_free(wisp_authz_load *l) {
  if (!l) return;
  ev_timer_stop(wisp_dataplane_loop(l->px), &l->poll);
  wisp_filewatch_cleanup(&l->watch);
  free(l);
}
