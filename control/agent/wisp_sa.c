/* Service-account token identity; see wisp_sa.h. The event loop's thread
 * owns the key set and verifies; the fetch thread only talks to the API
 * server and hands over the raw documents (under |mu|, then ev_async). */
#include "control/agent/wisp_sa.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "control/agent/wisp_kube.h"
#include "lib/wisp_jwt.h"
#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_spiffe.h"

#define JWKS_PATH "/openid/v1/jwks"
#define DISCOVERY_PATH "/.well-known/openid-configuration"

struct wisp_sa {
  struct ev_loop *loop;
  char *jwks_file; /* owned copies of the config */
  int64_t max_lifetime;
  char issuer[WISP_JWT_ISS_MAX + 1];
  wisp_jwks *keys;      /* the set in force, NULL until one loads */
  char source[64];      /* where |keys| came from, for reasons */
  char load_error[320]; /* why the last load failed, "" if it did not */
  /* --sa-jwks */
  ev_timer poll;
  struct stat seen; /* the file as last read */
  bool seen_valid;
  /* the API server */
  bool kube_on;
  wisp_kube kube;
  bool want_issuer; /* no --sa-issuer: take the server's */
  pthread_t thread;
  bool thread_started;
  ev_async fetched;
  pthread_mutex_t mu; /* guards the fields below */
  pthread_cond_t cv;
  bool stop, want_fetch;
  char *got_jwks; /* a fetched document, handed to the loop */
  char got_issuer[WISP_JWT_ISS_MAX + 1];
  char got_error[320];
  time_t last_refetch; /* loop thread only */
};

static void log_keys(const char *event, const char *source, size_t n, const char *issuer, const char *error) {
  wisp_json j;
  wisp_json_begin(&j, "sa_keys");
  wisp_json_str(&j, "event", event);
  wisp_json_str(&j, "source", source);
  if (!error) wisp_json_int(&j, "keys", (int64_t)n);
  wisp_json_str(&j, "issuer", issuer);
  wisp_json_str(&j, "error", error);
  wisp_json_emit_err(&j);
}

/* Puts |json| in force as the key set from |source|; on failure the last
 * good set stays and the reason is remembered (and logged once). */
static void install(wisp_sa *s, const char *json, size_t len, const char *source) {
  wisp_jwks *k = NULL;
  char err[256];
  if (wisp_jwks_parse(&k, NULL, json, len, err, sizeof(err)) != WISP_OK) {
    char why[320];
    snprintf(why, sizeof(why), "%s: %s", source, err);
    if (strcmp(why, s->load_error) != 0) log_keys("refused", source, 0, NULL, err);
    snprintf(s->load_error, sizeof(s->load_error), "%s", why);
    return;
  }
  wisp_jwks_free(s->keys);
  s->keys = k;
  s->load_error[0] = '\0';
  snprintf(s->source, sizeof(s->source), "%s", source);
  /* One odd key is left out on its own; say which and why. */
  for (size_t i = 0; i < wisp_jwks_skipped(k); i++)
    log_keys("key_skipped", source, 0, NULL, wisp_jwks_skip_reason(k, i));
  log_keys("loaded", source, wisp_jwks_count(k), s->issuer, NULL);
}

/* ---- --sa-jwks FILE, re-read when it changes ---- */

static bool same_file(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void read_file(wisp_sa *s) {
  struct stat st;
  if (stat(s->jwks_file, &st) != 0) {
    char why[320];
    snprintf(why, sizeof(why), "--sa-jwks %s: %s", s->jwks_file, strerror(errno));
    if (strcmp(why, s->load_error) != 0) log_keys("unreadable", "--sa-jwks", 0, NULL, why);
    snprintf(s->load_error, sizeof(s->load_error), "%s", why);
    s->seen_valid = false;
    return;
  }
  /* A ConfigMap's file changes by a symlink swap: stat follows it. */
  if (s->seen_valid && same_file(&st, &s->seen)) return;
  s->seen = st;
  s->seen_valid = true;
  if (st.st_size > WISP_JWKS_MAX) {
    snprintf(s->load_error, sizeof(s->load_error), "--sa-jwks %s: larger than %d bytes", s->jwks_file, WISP_JWKS_MAX);
    log_keys("refused", "--sa-jwks", 0, NULL, s->load_error);
    return;
  }
  FILE *f = fopen(s->jwks_file, "rb");
  char *buf = wisp_malloc((size_t)st.st_size + 1);
  size_t n = f ? fread(buf, 1, (size_t)st.st_size, f) : 0;
  if (f) fclose(f);
  install(s, buf, n, "--sa-jwks");
  free(buf);
}

static void on_poll(struct ev_loop *loop, ev_timer *w, int revents) { read_file(w->data); }

/* ---- the API server, on the fetch thread ---- */

static bool get(const wisp_kube *k, const char *path, wisp_buf *body, char *err, size_t err_len) {
  int status = 0;
  char why[256];
  if (wisp_kube_call(k, "GET", path, NULL, NULL, &status, body, why, sizeof(why)) != WISP_OK) {
    snprintf(err, err_len, "GET %s: %s", path, why);
    return false;
  }
  if (status != 200) {
    snprintf(err, err_len, "GET %s: HTTP %d%s", path, status,
             status == 401 || status == 403 ? " (the agent's service account may not read it: see its RBAC)" : "");
    return false;
  }
  return true;
}

/* The discovery document's issuer. */
static bool fetch_issuer(const wisp_kube *k, char *out, size_t cap, char *err, size_t err_len) {
  wisp_buf b = {0};
  bool ok = get(k, DISCOVERY_PATH, &b, err, err_len);
  json_t *doc = ok ? json_loadb((const char *)wisp_buf_rptr(&b), wisp_buf_len(&b), 0, NULL) : NULL;
  const char *iss = json_string_value(json_object_get(doc, "issuer"));
  if (ok && (!iss || strlen(iss) >= cap)) {
    snprintf(err, err_len, "GET %s: no issuer in the answer", DISCOVERY_PATH);
    ok = false;
  }
  if (ok) snprintf(out, cap, "%s", iss);
  json_decref(doc);
  wisp_buf_cleanup(&b);
  return ok;
}

static void fetch_once(wisp_sa *s, bool want_issuer) {
  char issuer[WISP_JWT_ISS_MAX + 1] = "", err[320] = "";
  wisp_buf b = {0};
  bool ok = !want_issuer || fetch_issuer(&s->kube, issuer, sizeof(issuer), err, sizeof(err));
  ok = ok && get(&s->kube, JWKS_PATH, &b, err, sizeof(err));
  pthread_mutex_lock(&s->mu);
  free(s->got_jwks);
  s->got_jwks = ok ? wisp_strndup((const char *)wisp_buf_rptr(&b), wisp_buf_len(&b)) : NULL;
  snprintf(s->got_issuer, sizeof(s->got_issuer), "%s", issuer);
  snprintf(s->got_error, sizeof(s->got_error), "%s", ok ? "" : err);
  pthread_mutex_unlock(&s->mu);
  wisp_buf_cleanup(&b);
  ev_async_send(s->loop, &s->fetched);
}

static void *fetch_main(void *arg) {
  wisp_sa *s = arg;
  bool last_ok = false;
  pthread_mutex_lock(&s->mu);
  while (!s->stop) {
    if (!s->want_fetch) {
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_sec += last_ok ? WISP_SA_REFRESH : WISP_SA_RETRY;
      int rc = pthread_cond_timedwait(&s->cv, &s->mu, &until);
      if (s->stop) break;
      if (rc != ETIMEDOUT && !s->want_fetch) continue;
    }
    s->want_fetch = false;
    bool want_issuer = s->want_issuer;
    pthread_mutex_unlock(&s->mu);
    fetch_once(s, want_issuer);
    pthread_mutex_lock(&s->mu);
    last_ok = s->got_jwks != NULL;
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static void on_fetched(struct ev_loop *loop, ev_async *w, int revents) {
  wisp_sa *s = w->data;
  pthread_mutex_lock(&s->mu);
  char *jwks = s->got_jwks;
  s->got_jwks = NULL;
  char issuer[WISP_JWT_ISS_MAX + 1], err[320];
  snprintf(issuer, sizeof(issuer), "%s", s->got_issuer);
  snprintf(err, sizeof(err), "%s", s->got_error);
  pthread_mutex_unlock(&s->mu);
  if (!jwks) {
    if (strcmp(err, s->load_error) != 0) log_keys("fetch_failed", "api-server", 0, NULL, err);
    snprintf(s->load_error, sizeof(s->load_error), "%s", err);
    return;
  }
  if (issuer[0]) snprintf(s->issuer, sizeof(s->issuer), "%s", issuer);
  install(s, jwks, strlen(jwks), "api-server");
  free(jwks);
}

static void request_fetch(wisp_sa *s) {
  time_t now = time(NULL);
  if (!s->kube_on || now - s->last_refetch < WISP_SA_REFETCH_MIN) return;
  s->last_refetch = now;
  pthread_mutex_lock(&s->mu);
  s->want_fetch = true;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* ---- life ---- */

static wisp_err start_kube(wisp_sa *s, const wisp_sa_config *cfg, char *err, size_t err_len) {
  char why[320];
  if (wisp_kube_init(&s->kube, cfg->kube_api, cfg->kube_sa_dir, why, sizeof(why)) != WISP_OK) {
    /* auto outside a cluster is no error; an explicit URL that cannot work is. */
    if (strcmp(cfg->kube_api, "auto") != 0 && strcmp(cfg->kube_api, "off") != 0) {
      snprintf(err, err_len, "%s", why);
      return WISP_ERR_USAGE;
    }
    return WISP_OK;
  }
  s->kube_on = true;
  s->want_issuer = !cfg->issuer;
  s->want_fetch = true;
  ev_async_init(&s->fetched, on_fetched);
  s->fetched.data = s;
  ev_async_start(s->loop, &s->fetched);
  if (pthread_create(&s->thread, NULL, fetch_main, s) != 0) {
    snprintf(err, err_len, "cannot start the thread that fetches the service-account keys");
    return WISP_ERR_INTERNAL;
  }
  s->thread_started = true;
  WISP_INFO("service-account keys: fetching %s from the API server at %s", JWKS_PATH, s->kube.addr);
  return WISP_OK;
}

wisp_err wisp_sa_new(wisp_sa **out, struct ev_loop *loop, const wisp_sa_config *cfg, char *err, size_t err_len) {
  wisp_sa *s = wisp_calloc(1, sizeof(*s));
  *out = s;
  s->loop = loop;
  s->max_lifetime = cfg->max_lifetime;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  if (cfg->issuer) snprintf(s->issuer, sizeof(s->issuer), "%s", cfg->issuer);
  if (cfg->issuer && strlen(cfg->issuer) > WISP_JWT_ISS_MAX) {
    snprintf(err, err_len, "--sa-issuer is longer than %d bytes", WISP_JWT_ISS_MAX);
    return WISP_ERR_USAGE;
  }
  if (!cfg->jwks_file) return start_kube(s, cfg, err, err_len);
  /* A key file: the API server, if any, is not asked for keys. */
  if (!cfg->issuer) {
    snprintf(err, err_len,
             "--sa-jwks needs --sa-issuer (the iss of the cluster's tokens: kubectl get --raw "
             "/.well-known/openid-configuration)");
    return WISP_ERR_USAGE;
  }
  s->jwks_file = wisp_strdup(cfg->jwks_file);
  read_file(s);
  ev_timer_init(&s->poll, on_poll, WISP_SA_POLL_SECONDS, WISP_SA_POLL_SECONDS);
  s->poll.data = s;
  ev_timer_start(loop, &s->poll);
  return WISP_OK;
}

void wisp_sa_free(wisp_sa *s) {
  if (!s) return;
  if (s->thread_started) {
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    ev_async_stop(s->loop, &s->fetched);
  }
  if (s->jwks_file) ev_timer_stop(s->loop, &s->poll);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  wisp_jwks_free(s->keys);
  free(s->got_jwks);
  free(s->jwks_file);
  free(s);
}

/* ---- Sign ---- */

static wisp_grpc_status no_keys(const wisp_sa *s, char *why, size_t why_len) {
  if (!s->jwks_file && !s->kube_on) {
    snprintf(why, why_len,
             "this agent takes no service-account tokens: start it with --sa-jwks FILE and "
             "--sa-issuer URL, or run it in the cluster (it then fetches the keys)");
    return WISP_GRPC_UNAUTHENTICATED;
  }
  snprintf(why, why_len, "the service-account issuer's keys are not loaded yet%s%s", s->load_error[0] ? ": " : "",
           s->load_error);
  return WISP_GRPC_UNAVAILABLE;
}

wisp_grpc_status wisp_sa_authorize(wisp_sa *s, const char *token, size_t token_len, const char *spiffe_id,
                                   const char *trust_domain, int64_t *out_exp, char *why, size_t why_len) {
  if (!s->keys || !s->issuer[0]) return no_keys(s, why, why_len);
  int64_t now = (int64_t)time(NULL);
  /* Only projected tokens, which the kubelet binds to their pod and
   * rotates: never a Secret's or kubectl create token's. */
  wisp_jwt_expect want = {s->issuer, WISP_SA_AUDIENCE, now, WISP_JWT_DEFAULT_LEEWAY, s->max_lifetime, true};
  wisp_jwt_claims c;
  char reason[512];
  wisp_jwt_verdict v = wisp_jwt_verify(&c, s->keys, &want, token, token_len, reason, sizeof(reason));
  if (v == WISP_JWT_UNKNOWN_KEY) request_fetch(s); /* the issuer may have a new key */
  if (v != WISP_JWT_OK) {
    snprintf(why, why_len, "service-account token refused: %s", reason);
    return WISP_GRPC_UNAUTHENTICATED;
  }
  char id[WISP_SPIFFE_MAX + 1];
  snprintf(id, sizeof(id), "spiffe://%s/ns/%s/sa/%s", trust_domain, c.ns, c.sa_name);
  if (strcmp(id, spiffe_id) != 0) {
    snprintf(why, why_len,
             "service account does not match the requested ID: the token is for %s/%s (%s), the CSR "
             "asks for %s",
             c.ns, c.sa_name, id, spiffe_id);
    return WISP_GRPC_PERMISSION_DENIED;
  }
  if (c.exp <= now) { /* taken only within the leeway for clock skew */
    snprintf(why, why_len,
             "service-account token refused: it expired %lld s ago, too late to issue an SVID on it: "
             "send the kubelet's current token",
             (long long)(now - c.exp));
    return WISP_GRPC_UNAUTHENTICATED;
  }
  if (c.exp - now < WISP_SA_SVID_MIN_SECONDS) {
    snprintf(why, why_len,
             "service-account token refused: it expires in %lld s, too soon to issue an SVID on it (an "
             "SVID lives no longer than its token; at least %d s are needed): send the kubelet's current token",
             (long long)(c.exp - now), WISP_SA_SVID_MIN_SECONDS);
    return WISP_GRPC_UNAUTHENTICATED;
  }
  *out_exp = c.exp;
  return WISP_GRPC_OK;
}
