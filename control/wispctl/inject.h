/* wispctl inject: adds wisp to the Kubernetes workloads of a YAML stream, as
 * `linkerd inject` does. Each Pod, Deployment, StatefulSet, DaemonSet,
 * ReplicaSet, Job and CronJob (also inside a List) gets, first among its
 * init containers, wisp-init (deploy/wisp-iptables.sh: intercept the pod's
 * TCP) and wisp-proxy as a native sidecar (restartPolicy: Always), their
 * volumes, and the annotation wisp.dev/injected. Every other document passes
 * through as it was; workloads that opt out, use the host's network or are
 * already injected too, with a note saying why. No I/O: bytes in, bytes out
 * (inject.c the documents and what to do with each, inject_values.c the
 * annotations' values, inject_pod.c what is added to a pod). */
#ifndef WISP_WISPCTL_INJECT_H
#define WISP_WISPCTL_INJECT_H

#include <stdbool.h>
#include <stddef.h>

#include <yaml.h>

#include "lib/wisp_buf.h"
#include "lib/wisp_err.h"
#include "lib/wisp_rpc_client.h"
#include "lib/wisp_version.h"

#define WISPCTL_INJECT_INIT_NAME "wisp-init"
#define WISPCTL_INJECT_PROXY_NAME "wisp-proxy"
/* wisp-proxy's listeners, as wisp-iptables.sh knows them (its defaults). */
#define WISPCTL_INJECT_ADMIN_PORT 15000
#define WISPCTL_INJECT_OUTBOUND_PORT 15001
#define WISPCTL_INJECT_INBOUND_PORT 15006
#define WISPCTL_INJECT_PROBE_PORT 15009 /* wisp-proxy's interception probe, on 127.0.0.77 */
#define WISPCTL_INJECT_ADMIN_PORT_NAME "wisp-admin"
/* wisp-proxy --metrics: GET /metrics for Prometheus (wisp-iptables.sh's
 * --metrics-port default; Envoy's Prometheus port in Istio). */
#define WISPCTL_INJECT_METRICS_PORT 15090
#define WISPCTL_INJECT_METRICS_PORT_NAME "wisp-metrics"
#define WISPCTL_INJECT_DEFAULT_UID 1337
#define WISPCTL_INJECT_DEFAULT_TRUST_DOMAIN "cluster.local" /* wisp-agent's default */
#define WISPCTL_INJECT_DEFAULT_IMAGE "wisp/wisp:" WISP_VERSION
/* Bounds: what we read and write, and how deeply a document may nest. */
#define WISPCTL_INJECT_MAX_INPUT (16 * 1024 * 1024)
#define WISPCTL_INJECT_MAX_OUTPUT (64 * 1024 * 1024)
#define WISPCTL_INJECT_MAX_DEPTH 512
#define WISPCTL_INJECT_BUNDLE_MAX (64 * 1024)
/* The projected service-account token: audience and lifetime (the
 * kubelet renews it at 80% of it; Kubernetes' minimum is 600 s). */
#define WISPCTL_INJECT_SA_AUDIENCE "wisp"
#define WISPCTL_INJECT_SA_EXPIRY 600

/* How the sidecar proves who it is for its first SVID. */
typedef enum {
  /* A projected service-account token (audience wisp, expires in 10 min,
   * rotated by the kubelet): nothing to create per service account. */
  WISPCTL_INJECT_SA_TOKEN = 0,
  /* The reusable join token in Secret wisp-join-<service account>. */
  WISPCTL_INJECT_JOIN_TOKEN,
} wispctl_inject_identity;

typedef struct {
  const char *agent; /* what the proxy dials: unix:///PATH or https://IP:PORT */
  const char *trust_domain;
  const char *image; /* holds wisp-proxy and wisp-iptables.sh */
  long proxy_uid;
  wispctl_inject_identity identity;
  /* https agent: the trust bundle (PEM) that verifies it, put in the pod
   * (annotation wisp.dev/trust-bundle, a downward API volume); NULL: from
   * ConfigMap wisp-trust-bundle of the pod's namespace. */
  const char *bundle_pem;
} wispctl_inject_opts;

/* The options, checked, and what follows from them. */
typedef struct {
  wispctl_inject_opts o;
  char proxy_uid[16];
  bool agent_https;
  char agent_dir[WISP_RPCC_UNIX_PATH_MAX + 1]; /* unix: the socket's directory, from the node */
  char agent_ip[64];                           /* https: kept out of interception */
} wispctl_inject_cfg;

/* Checks |o| (WISP_ERR_USAGE with the reason in |err|) and fills |out|,
 * which borrows |o|'s strings. */
wisp_err wispctl_inject_prepare(wispctl_inject_cfg *out, const wispctl_inject_opts *o, char *err,
                                size_t err_len) WISP_MUST_CHECK;

/* Reads the YAML stream |in| and writes it, injected, to |out|; one line per
 * document it looked at to |notes| ("document 2 (Service \"orders\"): not a
 * workload, passed through"). WISP_ERR_PARSE for input it cannot use
 * (broken YAML with line and column, a bad wisp.dev/ annotation, a
 * container declaring one of the proxy's ports), with the
 * reason in |err|: then |out| holds nothing. */
wisp_err wispctl_inject(const wispctl_inject_cfg *cfg, const char *in, size_t in_len, wisp_buf *out, wisp_buf *notes,
                        char *err, size_t err_len) WISP_MUST_CHECK;

/* Injects one Pod object, the root of |d| (the admission webhook's path):
 * the same decisions and additions as wispctl_inject makes for a Pod in a
 * stream. |*out_injected| says whether |d| was changed; a note says why in
 * |notes| either way. WISP_ERR_PARSE (a bad wisp.dev/ annotation, a pod
 * spec of the wrong shape) with the reason in |err|. */
wisp_err wispctl_inject_pod_document(const wispctl_inject_cfg *cfg, yaml_document_t *d, bool *out_injected,
                                     wisp_buf *notes, char *err, size_t err_len) WISP_MUST_CHECK;

/* ---- internal to inject*.c ---- */

/* What a wisp.dev/ annotation holds: ports "P,P" (1-65535); inbound ports
 * "all", "none" or app ports (not the proxy's own); CIDRs "C,C" (IPv4 or
 * IPv6 addresses, with or without /PREFIX). */
typedef enum { WISPCTL_INJECT_PORTS, WISPCTL_INJECT_INBOUND_PORTS, WISPCTL_INJECT_CIDRS } wispctl_inject_value;

/* Whether |v| is a good |kind|; if not, the reason in |why|. */
bool wispctl_inject_value_ok(wispctl_inject_value kind, const char *v, char *why, size_t why_len);

/* What one pod gets, beyond |cfg|. NULL: the flag is left out. */
typedef struct {
  const wispctl_inject_cfg *cfg;
  const char *service_account;
  const char *exclude_outbound_cidrs; /* the agent's and the pod's */
  const char *exclude_outbound_ports;
  const char *exclude_inbound_ports;
  const char *inbound_ports;
} wispctl_pod_plan;

/* Adds wisp-init and wisp-proxy before |spec|'s init containers, their
 * volumes, and wisp.dev/injected to |meta|'s annotations. |spec| and |meta|
 * are mappings; 0 if |spec| holds initContainers, volumes or annotations of
 * the wrong type (nothing added then). */
bool wispctl_inject_pod(yaml_document_t *d, int spec, int meta, const wispctl_pod_plan *plan);
/* The first volume of pod spec |spec| named as one wispctl_inject_pod adds
 * (wisp-sa-token, ...), or NULL: such a pod is refused, not injected into
 * an invalid one (duplicate volume names). */
const char *wispctl_inject_pod_volume_clash(yaml_document_t *d, int spec);

#endif
