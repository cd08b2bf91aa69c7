/* What `wispctl inject` adds to one pod spec: the wisp-init and wisp-proxy
 * init containers, their volumes and the wisp.dev/injected annotation. */
#include <stdio.h>

#include "control/wispctl/inject.h"
#include "control/wispctl/yaml_tree.h"

#define ADMIN_PORT WISPCTL_INJECT_ADMIN_PORT
#define ADMIN_LISTEN "0.0.0.0:15000" /* for the kubelet; beyond loopback only /healthz, /ready */
#define ANNOTATION_INJECTED "wisp.dev/injected"
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#define METRICS_PORT_TEXT STRINGIFY(WISPCTL_INJECT_METRICS_PORT)
#define METRICS_LISTEN "0.0.0.0:" METRICS_PORT_TEXT /* GET /metrics only, for Prometheus */
/* What Prometheus' kubernetes_sd "pod" role relabelling reads (the
 * prometheus.io/ convention of its example configuration). */
#define ANNOTATION_SCRAPE "prometheus.io/scrape"
#define ANNOTATION_SCRAPE_PORT "prometheus.io/port"
#define ANNOTATION_SCRAPE_PATH "prometheus.io/path"

/* Volumes: the join token (a Secret per service account, key "token"), the
 * agent's socket directory from the node (unix:) or the trust bundle that
 * verifies the agent (https://, a ConfigMap, key "bundle.pem"). */
#define VOL_TOKEN "wisp-join-token"
#define TOKEN_SECRET_PREFIX "wisp-join-"
#define TOKEN_KEY "token"
#define TOKEN_DIR "/var/run/secrets/wisp/join"
#define VOL_SOCKET "wisp-agent-socket"
/* --svid-cache on a memory emptyDir: lives as long as the pod, so a
 * restarted sidecar serves at once (and renews without the token); the
 * proxy makes its own 0700 directory inside the volume. */
#define VOL_CACHE "wisp-svid-cache"
#define CACHE_DIR "/var/run/wisp/cache"
#define CACHE_SIZE "1Mi"
/* The projected service-account token (the default identity). */
#define VOL_SA_TOKEN "wisp-sa-token"
#define SA_TOKEN_DIR "/var/run/secrets/wisp/sa"
#define SA_TOKEN_KEY "token"
/* The trust bundle in the pod itself: an annotation, a downward API file. */
#define ANNOTATION_BUNDLE "wisp.dev/trust-bundle"
#define VOL_BUNDLE "wisp-trust-bundle"
#define BUNDLE_CONFIGMAP "wisp-trust-bundle"
#define BUNDLE_KEY "bundle.pem"
#define BUNDLE_DIR "/var/run/wisp/bundle"

/* The proxy idles at about 5 MB RSS; one thread, so at most one core.
 * Its memory limit holds what its bounds let callers make it hold, with
 * margin (the proxy's defaults, 256M of bodies and 4096 connections per
 * listener, are for a host, not a pod):
 *   base (idle RSS, rounded up)                              8 MiB
 *   --buffer-limit: bodies waiting in the proxy             64 MiB
 *   2 listeners (inbound, outbound) x --max-connections
 *     1024 x about 27 KB (an idle mTLS or h2c connection)  ~54 MiB
 *                                                          126 MiB of 256 MiB
 * The other half is the margin for what --buffer-limit does not stop: it
 * refuses new requests, and streams already open may still fill their
 * 64 KiB windows; upstream connections; L4 tunnels' 64 KiB buffers. */
#define PROXY_CPU_REQUEST "10m"
#define PROXY_MEM_REQUEST "16Mi"
#define PROXY_CPU_LIMIT "1"
#define PROXY_MEM_LIMIT "256Mi"
#define PROXY_BUFFER_LIMIT "64M"
#define PROXY_MAX_CONNECTIONS "1024"
#define INIT_CPU_REQUEST "10m"
#define INIT_MEM_REQUEST "16Mi"
#define INIT_CPU_LIMIT "100m"
#define INIT_MEM_LIMIT "64Mi"

/* Probes on the admin port: the pod's app containers start once the proxy
 * holds an SVID (startup, up to 2 minutes), and it is restarted if it hangs. */
#define STARTUP_PERIOD_S 1
#define STARTUP_FAILURES 120
#define READY_PERIOD_S 5
#define LIVE_PERIOD_S 10
#define PROBE_FAILURES 3

#define MAP WISPCTL_YAML_MAP
#define SEQ WISPCTL_YAML_SEQ

static int str(yaml_document_t *d, const char *s) { return wispctl_yaml_add_str(d, s); }
static int yes(yaml_document_t *d) { return wispctl_yaml_add_plain(d, "true"); }
static int no(yaml_document_t *d) { return wispctl_yaml_add_plain(d, "false"); }

/* ---- pieces ---- */

static int resources(yaml_document_t *d, const char *cpu_req, const char *mem_req, const char *cpu_lim,
                     const char *mem_lim) {
  return MAP(d, {"requests", MAP(d, {"cpu", str(d, cpu_req)}, {"memory", str(d, mem_req)})},
             {"limits", MAP(d, {"cpu", str(d, cpu_lim)}, {"memory", str(d, mem_lim)})});
}

static int probe(yaml_document_t *d, const char *path, int period_s, int failures) {
  return MAP(d, {"httpGet", MAP(d, {"path", str(d, path)}, {"port", wispctl_yaml_add_int(d, ADMIN_PORT)})},
             {"periodSeconds", wispctl_yaml_add_int(d, period_s)},
             {"failureThreshold", wispctl_yaml_add_int(d, failures)});
}

/* env NAME from the downward API, field |path| of the pod. */
static int env_field(yaml_document_t *d, const char *name, const char *path) {
  return MAP(d, {"name", str(d, name)}, {"valueFrom", MAP(d, {"fieldRef", MAP(d, {"fieldPath", str(d, path)})})});
}

static int mount(yaml_document_t *d, const char *name, const char *path) {
  return MAP(d, {"name", str(d, name)}, {"mountPath", str(d, path)}, {"readOnly", yes(d)});
}

static int mount_rw(yaml_document_t *d, const char *name, const char *path) {
  return MAP(d, {"name", str(d, name)}, {"mountPath", str(d, path)});
}

/* Appends "FLAG VALUE" to |args| when |value| is given. */
static void arg(yaml_document_t *d, int args, const char *flag, const char *value) {
  if (!value) return;
  wispctl_yaml_append(d, args, str(d, flag));
  wispctl_yaml_append(d, args, str(d, value));
}

/* ---- wisp-init: the iptables rules, as root with NET_ADMIN only ---- */

/* wisp-init's root filesystem is read-only; iptables-legacy takes its lock
 * at /run/xtables.lock unless XTABLES_LOCKFILE says where (nft needs none),
 * and bash may put a large here-string in TMPDIR: both go to a small
 * memory emptyDir. */
#define VOL_INIT_TMP "wisp-init-tmp"
#define INIT_TMP_DIR "/tmp"
#define INIT_TMP_SIZE "1Mi"

static int init_container(yaml_document_t *d, const wispctl_pod_plan *p) {
  int args = SEQ(d, str(d, "--proxy-uid"), str(d, p->cfg->proxy_uid));
  arg(d, args, "--exclude-outbound-cidrs", p->exclude_outbound_cidrs);
  arg(d, args, "--exclude-outbound-ports", p->exclude_outbound_ports);
  arg(d, args, "--exclude-inbound-ports", p->exclude_inbound_ports);
  arg(d, args, "--inbound-ports", p->inbound_ports);
  int caps = MAP(d, {"add", SEQ(d, str(d, "NET_ADMIN"), str(d, "NET_RAW"))}, {"drop", SEQ(d, str(d, "ALL"))});
  int security = MAP(d, {"runAsUser", wispctl_yaml_add_int(d, 0)}, {"runAsNonRoot", no(d)},
                     {"readOnlyRootFilesystem", yes(d)}, {"allowPrivilegeEscalation", no(d)}, {"capabilities", caps},
                     {"seccompProfile", MAP(d, {"type", str(d, "RuntimeDefault")})});
  int env = SEQ(d, MAP(d, {"name", str(d, "XTABLES_LOCKFILE")}, {"value", str(d, INIT_TMP_DIR "/xtables.lock")}),
                MAP(d, {"name", str(d, "TMPDIR")}, {"value", str(d, INIT_TMP_DIR)}));
  return MAP(d, {"name", str(d, WISPCTL_INJECT_INIT_NAME)}, {"image", str(d, p->cfg->o.image)},
             {"command", SEQ(d, str(d, "wisp-iptables.sh"))}, {"args", args}, {"env", env},
             {"resources", resources(d, INIT_CPU_REQUEST, INIT_MEM_REQUEST, INIT_CPU_LIMIT, INIT_MEM_LIMIT)},
             {"securityContext", security}, {"volumeMounts", SEQ(d, mount_rw(d, VOL_INIT_TMP, INIT_TMP_DIR))});
}

/* ---- wisp-proxy: the native sidecar ---- */

static int proxy_args(yaml_document_t *d, const wispctl_pod_plan *p) {
  char id[512];
  snprintf(id, sizeof(id), "spiffe://%s/ns/$(WISP_POD_NAMESPACE)/sa/$(WISP_POD_SERVICE_ACCOUNT)",
           p->cfg->o.trust_domain);
  int args = SEQ(d, str(d, "--transparent"));
  arg(d, args, "--agent", p->cfg->o.agent);
  arg(d, args, "--bundle", p->cfg->agent_https ? BUNDLE_DIR "/" BUNDLE_KEY : NULL);
  arg(d, args, "--spiffe-id", id);
  if (p->cfg->o.identity == WISPCTL_INJECT_JOIN_TOKEN) {
    arg(d, args, "--join-token-file", TOKEN_DIR "/" TOKEN_KEY);
  } else {
    arg(d, args, "--sa-token-file", SA_TOKEN_DIR "/" SA_TOKEN_KEY);
  }
  arg(d, args, "--svid-cache", CACHE_DIR "/svid");
  arg(d, args, "--admin", ADMIN_LISTEN);
  arg(d, args, "--metrics", METRICS_LISTEN);
  arg(d, args, "--buffer-limit", PROXY_BUFFER_LIMIT);
  arg(d, args, "--max-connections", PROXY_MAX_CONNECTIONS);
  return args;
}

static int proxy_security(yaml_document_t *d, const wispctl_pod_plan *p) {
  int uid = wispctl_yaml_add_plain(d, p->cfg->proxy_uid);
  int gid = wispctl_yaml_add_plain(d, p->cfg->proxy_uid);
  return MAP(d, {"runAsUser", uid}, {"runAsGroup", gid}, {"runAsNonRoot", yes(d)}, {"readOnlyRootFilesystem", yes(d)},
             {"allowPrivilegeEscalation", no(d)}, {"capabilities", MAP(d, {"drop", SEQ(d, str(d, "ALL"))})},
             {"seccompProfile", MAP(d, {"type", str(d, "RuntimeDefault")})});
}

static int proxy_container(yaml_document_t *d, const wispctl_pod_plan *p) {
  int env = SEQ(d, env_field(d, "WISP_POD_NAMESPACE", "metadata.namespace"),
                env_field(d, "WISP_POD_SERVICE_ACCOUNT", "spec.serviceAccountName"));
  int agent_mount = p->cfg->agent_https ? mount(d, VOL_BUNDLE, BUNDLE_DIR) : mount(d, VOL_SOCKET, p->cfg->agent_dir);
  int token_mount = p->cfg->o.identity == WISPCTL_INJECT_JOIN_TOKEN ? mount(d, VOL_TOKEN, TOKEN_DIR)
                                                                    : mount(d, VOL_SA_TOKEN, SA_TOKEN_DIR);
  int mounts = SEQ(d, token_mount, agent_mount, mount_rw(d, VOL_CACHE, CACHE_DIR));
  int port =
      MAP(d, {"name", str(d, WISPCTL_INJECT_ADMIN_PORT_NAME)}, {"containerPort", wispctl_yaml_add_int(d, ADMIN_PORT)});
  int metrics = MAP(d, {"name", str(d, WISPCTL_INJECT_METRICS_PORT_NAME)},
                    {"containerPort", wispctl_yaml_add_int(d, WISPCTL_INJECT_METRICS_PORT)});
  return MAP(d, {"name", str(d, WISPCTL_INJECT_PROXY_NAME)}, {"image", str(d, p->cfg->o.image)},
             {"restartPolicy", str(d, "Always")}, {"command", SEQ(d, str(d, "wisp-proxy"))}, {"args", proxy_args(d, p)},
             {"env", env}, {"ports", SEQ(d, port, metrics)},
             {"resources", resources(d, PROXY_CPU_REQUEST, PROXY_MEM_REQUEST, PROXY_CPU_LIMIT, PROXY_MEM_LIMIT)},
             {"securityContext", proxy_security(d, p)}, {"volumeMounts", mounts},
             {"startupProbe", probe(d, "/ready", STARTUP_PERIOD_S, STARTUP_FAILURES)},
             {"readinessProbe", probe(d, "/ready", READY_PERIOD_S, PROBE_FAILURES)},
             {"livenessProbe", probe(d, "/healthz", LIVE_PERIOD_S, PROBE_FAILURES)});
}

/* ---- volumes ---- */

static int key_item(yaml_document_t *d, const char *key) {
  return SEQ(d, MAP(d, {"key", str(d, key)}, {"path", str(d, key)}));
}

/* A token the kubelet requests for the pod's service account, audience
 * wisp, and replaces before it expires. */
static int sa_token_volume(yaml_document_t *d) {
  int token =
      MAP(d, {"audience", str(d, WISPCTL_INJECT_SA_AUDIENCE)},
          {"expirationSeconds", wispctl_yaml_add_int(d, WISPCTL_INJECT_SA_EXPIRY)}, {"path", str(d, SA_TOKEN_KEY)});
  return MAP(d, {"name", str(d, VOL_SA_TOKEN)},
             {"projected", MAP(d, {"sources", SEQ(d, MAP(d, {"serviceAccountToken", token}))})});
}

static int token_volume(yaml_document_t *d, const wispctl_pod_plan *p) {
  char secret[320];
  if (p->cfg->o.identity != WISPCTL_INJECT_JOIN_TOKEN) return sa_token_volume(d);
  snprintf(secret, sizeof(secret), TOKEN_SECRET_PREFIX "%s", p->service_account);
  return MAP(d, {"name", str(d, VOL_TOKEN)},
             {"secret", MAP(d, {"secretName", str(d, secret)}, {"items", key_item(d, TOKEN_KEY)})});
}

static int agent_volume(yaml_document_t *d, const wispctl_pod_plan *p) {
  if (p->cfg->agent_https && p->cfg->o.bundle_pem) {
    int field = MAP(d, {"fieldPath", str(d, "metadata.annotations['" ANNOTATION_BUNDLE "']")});
    return MAP(d, {"name", str(d, VOL_BUNDLE)},
               {"downwardAPI", MAP(d, {"items", SEQ(d, MAP(d, {"path", str(d, BUNDLE_KEY)}, {"fieldRef", field}))})});
  }
  if (p->cfg->agent_https) {
    return MAP(d, {"name", str(d, VOL_BUNDLE)},
               {"configMap", MAP(d, {"name", str(d, BUNDLE_CONFIGMAP)}, {"items", key_item(d, BUNDLE_KEY)})});
  }
  return MAP(d, {"name", str(d, VOL_SOCKET)},
             {"hostPath", MAP(d, {"path", str(d, p->cfg->agent_dir)}, {"type", str(d, "Directory")})});
}

static int memory_volume(yaml_document_t *d, const char *name, const char *size) {
  return MAP(d, {"name", str(d, name)},
             {"emptyDir", MAP(d, {"medium", str(d, "Memory")}, {"sizeLimit", str(d, size)})});
}

/* ---- the pod ---- */

/* Missing, null, or a collection of |type|. */
static bool fits(yaml_document_t *d, int map, const char *key, yaml_node_type_t type) {
  int id = wispctl_yaml_get(d, map, key);
  return !id || wispctl_yaml_node(d, id, type) || wispctl_yaml_is_null(d, id);
}

const char *wispctl_inject_pod_volume_clash(yaml_document_t *d, int spec) {
  static const char *const kOurVolumes[] = {VOL_TOKEN, VOL_SA_TOKEN, VOL_SOCKET, VOL_BUNDLE, VOL_CACHE, VOL_INIT_TMP};
  yaml_node_t *s = wispctl_yaml_node(d, wispctl_yaml_get(d, spec, "volumes"), YAML_SEQUENCE_NODE);
  for (yaml_node_item_t *i = s ? s->data.sequence.items.start : NULL; s && i < s->data.sequence.items.top; i++) {
    const char *name = wispctl_yaml_str(d, wispctl_yaml_get(d, *i, "name"));
    for (size_t k = 0; name && k < sizeof(kOurVolumes) / sizeof(kOurVolumes[0]); k++)
      if (!strcmp(name, kOurVolumes[k])) return kOurVolumes[k];
  }
  return NULL;
}

bool wispctl_inject_pod(yaml_document_t *d, int spec, int meta, const wispctl_pod_plan *plan) {
  if (!fits(d, spec, "initContainers", YAML_SEQUENCE_NODE) || !fits(d, spec, "volumes", YAML_SEQUENCE_NODE) ||
      !fits(d, meta, "annotations", YAML_MAPPING_NODE))
    return false;
  int containers[] = {init_container(d, plan), proxy_container(d, plan)};
  int inits = wispctl_yaml_want(d, spec, "initContainers", YAML_SEQUENCE_NODE);
  wispctl_yaml_prepend(d, inits, containers, sizeof(containers) / sizeof(containers[0]));
  int volumes = wispctl_yaml_want(d, spec, "volumes", YAML_SEQUENCE_NODE);
  wispctl_yaml_append(d, volumes, token_volume(d, plan));
  wispctl_yaml_append(d, volumes, agent_volume(d, plan));
  wispctl_yaml_append(d, volumes, memory_volume(d, VOL_CACHE, CACHE_SIZE));
  wispctl_yaml_append(d, volumes, memory_volume(d, VOL_INIT_TMP, INIT_TMP_SIZE));
  int annotations = wispctl_yaml_want(d, meta, "annotations", YAML_MAPPING_NODE);
  wispctl_yaml_put(d, annotations, ANNOTATION_INJECTED, str(d, WISP_VERSION));
  if (!wispctl_yaml_get(d, annotations, ANNOTATION_SCRAPE)) { /* the app's own scrape settings win */
    wispctl_yaml_put(d, annotations, ANNOTATION_SCRAPE, str(d, "true"));
    wispctl_yaml_put(d, annotations, ANNOTATION_SCRAPE_PORT, str(d, METRICS_PORT_TEXT));
    wispctl_yaml_put(d, annotations, ANNOTATION_SCRAPE_PATH, str(d, "/metrics"));
  }
  if (plan->cfg->agent_https && plan->cfg->o.bundle_pem)
    wispctl_yaml_put(d, annotations, ANNOTATION_BUNDLE, str(d, plan->cfg->o.bundle_pem));
  return true;
}
