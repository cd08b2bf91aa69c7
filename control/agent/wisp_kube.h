/* wisp_kube: the agent's few calls to the Kubernetes API server, as a pod
 * of the cluster makes them: HTTPS to KUBERNETES_SERVICE_HOST:PORT (wisp
 * does no DNS), the server verified against the service-account CA for the
 * name kubernetes.default.svc, the pod's own service-account token (re-read
 * on every call: the kubelet rotates it) as the bearer.
 *
 * Calls block, each for at most WISP_KUBE_DEADLINE in all (connect, TLS,
 * request and answer; on the monotonic clock): run them off the event
 * loop (wisp_sa and wisp_injector do, on threads of their own). A
 * wisp_kube is a plain value: copy it freely. */
#ifndef WISP_KUBE_H
#define WISP_KUBE_H

#include <stddef.h>

#include "lib/wisp_buf.h"
#include "lib/wisp_err.h"

#define WISP_KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define WISP_KUBE_TLS_NAME "kubernetes.default.svc"
#define WISP_KUBE_DEADLINE 10 /* seconds, a whole call */
#define WISP_KUBE_BODY_MAX (1024 * 1024)
#define WISP_KUBE_PATH_MAX 4096

typedef struct {
  char addr[320]; /* HOST:PORT or [V6]:PORT */
  char token_file[WISP_KUBE_PATH_MAX];
  char ca_file[WISP_KUBE_PATH_MAX];
} wisp_kube;

/* The API server to call. |api|: "auto" (in a cluster, from the
 * KUBERNETES_SERVICE_HOST/PORT environment, if the token and CA are in
 * |sa_dir|), "off", or https://IP:PORT. WISP_ERR_USAGE with the reason in
 * |err| when there is none to call: "off", or "auto" outside a cluster
 * (then |err| says so; the caller decides whether that is an error). */
wisp_err wisp_kube_init(wisp_kube *out, const char *api, const char *sa_dir, char *err, size_t err_len) WISP_MUST_CHECK;

/* One request: |method| |path| with |body| (may be NULL) of |content_type|.
 * On a response, WISP_OK with the HTTP status in |*out_status| and the body
 * in |out| (at most WISP_KUBE_BODY_MAX bytes); else WISP_ERR_IO/TLS/PROTO
 * with the reason in |err|. */
wisp_err wisp_kube_call(const wisp_kube *k, const char *method, const char *path, const char *content_type,
                        const char *body, int *out_status, wisp_buf *out, char *err, size_t err_len) WISP_MUST_CHECK;

#endif
