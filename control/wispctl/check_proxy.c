/* wispctl check --proxy: one sidecar's checks, from its admin API's
 * GET /status (proxy/admin/wisp_admin_status.h) over plain HTTP/1.1. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "control/wispctl/check.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_net.h"

/* /status is a few KB (16 upstream failures at most); far more is not it. */
#define STATUS_MAX (1024 * 1024)

static const char kHintAdmin[] =
    "is wisp-proxy running with --admin at this address? Its admin API serves /status to loopback callers only: "
    "run wispctl on the sidecar's host or in its pod (kubectl exec, or kubectl port-forward to the admin port)";
static const char kHintReady[] = "the checks below say which part is missing";
static const char kHintIntercept[] =
    "the pod's iptables rules are missing: deploy/wisp-iptables.sh must run in its network namespace (in "
    "Kubernetes the wisp-init container does it, with NET_ADMIN); until then app traffic bypasses the mesh";
static const char kHintSvid[] =
    "with --agent the proxy signs a CSR with the agent (its log has \"sign_failed\" lines when it cannot: the agent "
    "unreachable, a spent or expired join token); with --cert/--key the files must hold a current certificate";
static const char kHintBundle[] =
    "the trust bundle comes from the agent (Config.Watch) or --bundle; a proxy that lacks the agent's roots "
    "will refuse peers with SVIDs from a new root: check it is connected and ACKed (agent checks above)";
static const char kHintRotate[] =
    "rotate the CA (agent: wispctl ca rotate prepare) or renew the --bundle roots "
    "before they expire";
static const char kHintOldRoot[] =
    "the newer root takes over: once no peer's SVID chains to the old root, drop it (agent: wispctl ca rotate "
    "finish; files: from --bundle) before it ends";
static const char kHintPolicy[] =
    "the proxy enforces another policy than the agent's current one: it is not connected, or refused the "
    "newer one (see the agent's NACK check)";
static const char kHintAgentWatch[] =
    "it keeps serving with its last SVID and policy (fail static) and reconnects with backoff (1 s doubling to "
    "30 s): the agent must run and be reachable from the sidecar (--agent), trust its SVID (same CA), and have "
    "room for it (--max-watchers)";
static const char kHintUpstream[] =
    "a peer: is its sidecar running, and is its inbound port reachable from here (Service, firewall, "
    "NetworkPolicy)? A TLS or identity error means it presents a certificate our bundle does not trust or another "
    "SPIFFE ID than expected. The app: is it listening on the proxy's --app address?";

/* ---- a tiny HTTP/1.1 GET, bounded in time and size ---- */

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits for |events| on |fd| until |deadline|; 0 ready, else an errno. */
static int wait_fd(int fd, short events, double deadline) {
  for (;;) {
    double left = deadline - mono();
    if (left <= 0) return ETIMEDOUT;
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, (int)(left * 1000) + 1);
    if (n > 0) return 0;
    if (n < 0 && errno != EINTR) return errno;
  }
}

/* GET |path| from |addr| (IP:PORT); the status code in |*code|, the body
 * (NUL-terminated, free it) in |*body|. 0, or -1 with |err|. */
static int http_get(const char *addr, const char *path, double timeout, int *code, char **body, char *err,
                    size_t err_len) {
  wisp_addr a;
  if (wisp_addr_parse(&a, addr) != WISP_OK) {
    snprintf(err, err_len, "--proxy %s: want the admin address as IP:PORT, e.g. 127.0.0.1:15000", addr);
    return -1;
  }
  double deadline = mono() + timeout;
  int fd = -1, e = 0;
  if (wisp_net_connect(&fd, &a) != WISP_OK) {
    snprintf(err, err_len, "cannot connect to %s: %s", addr, strerror(errno));
    return -1;
  }
  if ((e = wait_fd(fd, POLLOUT, deadline)) != 0 || (e = wisp_net_connect_result(fd)) != 0) {
    snprintf(err, err_len, "cannot connect to %s: %s", addr, strerror(e));
    close(fd);
    return -1;
  }
  char req[512];
  int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr);
  if (write(fd, req, (size_t)n) != n) {
    snprintf(err, err_len, "cannot send the request to %s: %s", addr, strerror(errno));
    close(fd);
    return -1;
  }
  char *buf = wisp_malloc(STATUS_MAX + 1);
  size_t len = 0;
  for (;;) {
    if ((e = wait_fd(fd, POLLIN, deadline)) != 0) break;
    ssize_t got = read(fd, buf + len, STATUS_MAX - len);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (got < 0) e = errno;
    if (got <= 0 || (len += (size_t)got) == STATUS_MAX) break;
  }
  close(fd);
  buf[len] = 0;
  const char *sep = strstr(buf, "\r\n\r\n");
  if (e == ETIMEDOUT) {
    snprintf(err, err_len, "%s did not answer GET %s within %gs (--timeout)", addr, path, timeout);
  } else if (e) {
    snprintf(err, err_len, "reading from %s: %s", addr, strerror(e));
  } else if (len == STATUS_MAX) {
    snprintf(err, err_len, "%s answered GET %s with more than %d bytes", addr, path, STATUS_MAX);
  } else if (sscanf(buf, "HTTP/1.%*d %d", code) != 1 || !sep) {
    snprintf(err, err_len, "%s did not answer GET %s in HTTP/1.1", addr, path);
  } else {
    memmove(buf, sep + 4, len - (size_t)(sep + 4 - buf) + 1);
    *body = buf;
    return 0;
  }
  free(buf);
  return -1;
}

/* ---- the checks ---- */

static const char *str(json_t *o, const char *key) { return json_string_value(json_object_get(o, key)); }
static int64_t num(json_t *o, const char *key) { return (int64_t)json_integer_value(json_object_get(o, key)); }

static void check_ready(wispctl_report *r, json_t *s) {
  if (json_is_true(json_object_get(s, "ready"))) {
    wispctl_report_add(r, "proxy", "proxy.ready", WISPCTL_PASS, NULL, "the sidecar is ready");
    return;
  }
  wispctl_check *c =
      wispctl_report_add(r, "proxy", "proxy.ready", WISPCTL_FAIL, kHintReady, "the sidecar is not ready");
  wispctl_check_detail(c, "%s", str(s, "ready_reason") ? str(s, "ready_reason") : "no reason given");
}

static void check_interception(wispctl_report *r, json_t *s) {
  const char *state = str(s, "interception");
  bool transparent = json_is_true(json_object_get(s, "transparent"));
  const char *why = str(s, "interception_reason");
  if (!state || strcmp(state, "off") == 0) {
    if (transparent) {
      wispctl_report_add(r, "proxy", "proxy.interception", WISPCTL_WARN,
                         "without the probe nothing proves the iptables rules are in place: drop "
                         "--intercept-probe off",
                         "transparent interception is not checked (--intercept-probe off)");
    } else {
      wispctl_report_add(r, "proxy", "proxy.interception", WISPCTL_PASS, NULL,
                         "explicit mode (--route): no interception to prove");
    }
  } else if (strcmp(state, "verified") == 0) {
    wispctl_report_add(r, "proxy", "proxy.interception", WISPCTL_PASS, NULL,
                       "transparent interception is proven (a probe reached the outbound listener)");
  } else {
    wispctl_check *c = wispctl_report_add(r, "proxy", "proxy.interception", WISPCTL_FAIL, kHintIntercept,
                                          strcmp(state, "checking") == 0 ? "transparent interception is not proven yet"
                                                                         : "transparent interception is missing");
    if (why) wispctl_check_detail(c, "%s", why);
  }
}

static void check_svid(wispctl_report *r, json_t *s, const wispctl_check_opts *o, int64_t now) {
  const char *id = str(s, "spiffe_id");
  int64_t t = num(s, "svid_not_after_unix");
  int64_t min_s = wispctl_check_svid_min(o, num(s, "svid_issued_unix"), t);
  char w[128], min[32];
  wispctl_format_span(min, sizeof(min), o->svid_min_s);
  wispctl_check_when(w, sizeof(w), t, now);
  if (!id || !t) {
    wispctl_report_add(r, "proxy", "proxy.svid", WISPCTL_FAIL, kHintSvid, "the sidecar holds no SVID");
  } else if (t <= now) {
    wispctl_report_add(r, "proxy", "proxy.svid", WISPCTL_FAIL, kHintSvid, "its SVID for %s expired %s", id, w);
  } else if (t - now < min_s && o->svid_min_given) {
    wispctl_report_add(r, "proxy", "proxy.svid", WISPCTL_FAIL, kHintSvid,
                       "its SVID for %s expires %s, within --svid-min-validity %s", id, w, min);
  } else if (t - now < min_s) {
    wispctl_report_add(r, "proxy", "proxy.svid", WISPCTL_FAIL, kHintSvid,
                       "its SVID for %s expires %s: less than a quarter of its lifetime left, its renewal is overdue",
                       id, w);
  } else {
    wispctl_report_add(r, "proxy", "proxy.svid", WISPCTL_PASS, NULL, "its SVID for %s is valid, expires %s", id, w);
  }
}

/* An old root near its end beside a newer one that outlives it: a CA
 * rotation under way (as agent.bundle says), a warning naming its next
 * step; the agent's rotation state says which. */
static void old_root_near_end(wispctl_report *r, const wispctl_agent_facts *agent, const char *old_when, int64_t newest,
                              int64_t now) {
  char where[256], next[512], nw[128];
  bool rotating = agent && wispctl_check_rotation_step(agent->rotation, agent->finish_after, now, where, sizeof(where),
                                                       next, sizeof(next));
  wispctl_check *c = wispctl_report_add(r, "proxy", "proxy.bundle", WISPCTL_WARN, rotating ? next : kHintOldRoot,
                                        "its trust bundle holds an older root that expires %s, within "
                                        "--ca-min-validity, and a newer one",
                                        old_when);
  wispctl_check_when(nw, sizeof(nw), newest, now);
  wispctl_check_detail(c, "the newest root expires %s", nw);
  if (rotating) wispctl_check_detail(c, "%s", where);
}

static void check_bundle(wispctl_report *r, json_t *s, const wispctl_check_opts *o, const wispctl_agent_facts *agent,
                         int64_t now) {
  int64_t roots = num(s, "bundle_roots"), t = num(s, "bundle_not_after_unix");
  int64_t newest = num(s, "bundle_newest_not_after_unix");
  char w[128];
  wispctl_check_when(w, sizeof(w), t, now);
  if (roots <= 0) {
    wispctl_report_add(r, "proxy", "proxy.bundle", WISPCTL_FAIL, kHintBundle, "the sidecar holds no trust bundle");
  } else if (t && t <= now) {
    wispctl_report_add(r, "proxy", "proxy.bundle", WISPCTL_FAIL, kHintBundle,
                       "its trust bundle holds a root that expired %s", w);
  } else if (agent && (uint32_t)roots != agent->bundle_roots) {
    wispctl_report_add(r, "proxy", "proxy.bundle", WISPCTL_FAIL, kHintBundle,
                       "its trust bundle holds %lld root(s), the agent's %u", (long long)roots, agent->bundle_roots);
  } else if (t && t - now < o->ca_min_s && roots > 1 && newest - now >= o->ca_min_s) {
    old_root_near_end(r, agent, w, newest, now);
  } else if (t && t - now < o->ca_min_s) {
    wispctl_report_add(r, "proxy", "proxy.bundle", WISPCTL_FAIL, kHintRotate,
                       "its trust bundle holds a root that expires %s, within --ca-min-validity", w);
  } else {
    wispctl_report_add(r, "proxy", "proxy.bundle", WISPCTL_PASS, NULL,
                       "its trust bundle holds %lld valid root(s), the first to expire %s", (long long)roots, w);
  }
}

static void check_agent_watch(wispctl_report *r, json_t *s) {
  const char *target = str(s, "agent");
  if (!target) return; /* certificates from files */
  if (json_is_true(json_object_get(s, "agent_watching"))) {
    wispctl_report_add(r, "proxy", "proxy.agent", WISPCTL_PASS, NULL, "it receives its config from the agent at %s",
                       target);
    return;
  }
  wispctl_check *c = wispctl_report_add(r, "proxy", "proxy.agent", WISPCTL_FAIL, kHintAgentWatch,
                                        "it receives no config from the agent at %s", target);
  const char *why = str(s, "agent_error");
  if (why && *why) wispctl_check_detail(c, "%s", why);
}

static void check_policy(wispctl_report *r, json_t *s, const wispctl_agent_facts *agent) {
  const char *v = str(s, "policy_version");
  if (!str(s, "agent")) return;          /* its own --policy file, or none */
  if (!agent || !agent->version) return; /* the agent checks say why */
  if (v && strcmp(v, agent->version) == 0) {
    wispctl_report_add(r, "proxy", "proxy.policy", WISPCTL_PASS, NULL, "it enforces the agent's policy version %s", v);
  } else {
    wispctl_report_add(r, "proxy", "proxy.policy", WISPCTL_FAIL, kHintPolicy,
                       "it enforces policy version %s, the agent's is %s", v ? v : "none", agent->version);
  }
}

static void check_upstreams(wispctl_report *r, json_t *s, int64_t now) {
  json_t *list = json_object_get(s, "upstream_failures");
  size_t n = json_array_size(list);
  if (n == 0) {
    wispctl_report_add(r, "proxy", "proxy.upstreams", WISPCTL_PASS, NULL,
                       "no upstream is failing (every peer and app it dialled lately answered)");
    return;
  }
  wispctl_check *c = wispctl_report_add(r, "proxy", "proxy.upstreams", WISPCTL_FAIL, kHintUpstream,
                                        "it failed to reach %zu upstream(s) since they last answered", n);
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_array_get(list, i);
    const char *kind = str(e, "kind"), *id = str(e, "expect_id");
    char ago[32];
    wispctl_format_span(ago, sizeof(ago), now - num(e, "last_unix"));
    bool app = kind && strcmp(kind, "app") == 0;
    wispctl_check_detail(c, "%s %s%s%s%s: %s (%lld time%s, last %s ago)", app ? "the app at" : "peer",
                         str(e, "upstream") ? str(e, "upstream") : "?", id ? " (" : "", id ? id : "", id ? ")" : "",
                         str(e, "reason") ? str(e, "reason") : "?", (long long)num(e, "count"),
                         num(e, "count") == 1 ? "" : "s", ago);
  }
}

struct wispctl_sidecar {
  json_t *status; /* GET /status, an object */
};

wispctl_sidecar *wispctl_sidecar_fetch(wispctl_report *r, const wispctl_check_opts *o) {
  char err[1024];
  char *body = NULL;
  int code = 0;
  if (http_get(o->proxy, "/status", o->agent.timeout_s, &code, &body, err, sizeof(err)) != 0) {
    wispctl_check *c = wispctl_report_add(r, "proxy", "proxy.admin", WISPCTL_FAIL, kHintAdmin,
                                          "the sidecar's admin API does not answer at %s", o->proxy);
    wispctl_check_detail(c, "%s", err);
    return NULL;
  }
  json_error_t jerr;
  json_t *s = code == 200 ? json_loads(body, 0, &jerr) : NULL;
  if (!json_is_object(s)) {
    wispctl_check *c = wispctl_report_add(r, "proxy", "proxy.admin", WISPCTL_FAIL, kHintAdmin,
                                          "the sidecar's admin API at %s answers, but not with its status", o->proxy);
    size_t blen = strcspn(body, "\n");
    wispctl_check_detail(c, "GET /status: HTTP %d%s%.*s", code, blen ? ": " : "", (int)(blen > 300 ? 300 : blen), body);
    json_decref(s);
    free(body);
    return NULL;
  }
  free(body);
  bool files = str(s, "agent") == NULL;
  wispctl_report_add(r, "proxy", "proxy.admin", WISPCTL_PASS, NULL, "the sidecar's admin API answers at %s%s", o->proxy,
                     files ? " (certificates from files)" : "");
  wispctl_sidecar *sc = wisp_calloc(1, sizeof(*sc));
  sc->status = s;
  return sc;
}

const char *wispctl_sidecar_agent(const wispctl_sidecar *sc) { return str(sc->status, "agent"); }

void wispctl_sidecar_check(wispctl_report *r, const wispctl_sidecar *sc, const wispctl_check_opts *o,
                           const wispctl_agent_facts *agent, int64_t now) {
  json_t *s = sc->status;
  check_ready(r, s);
  check_interception(r, s);
  check_svid(r, s, o, now);
  check_bundle(r, s, o, agent, now);
  check_agent_watch(r, s);
  check_policy(r, s, agent);
  check_upstreams(r, s, now);
}

void wispctl_sidecar_free(wispctl_sidecar *sc) {
  if (!sc) return;
  json_decref(sc->status);
  free(sc);
}
