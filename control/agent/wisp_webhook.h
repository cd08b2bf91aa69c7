/* wisp_webhook: wisp-agent's MutatingAdmissionWebhook server: HTTPS/1.1 on
 * its own port (--webhook), POST /mutate (and /mutate-annotated) with an admission.k8s.io/v1
 * AdmissionReview, answered by wisp_admission (inject's code path). The
 * serving certificate is for the webhook Service's DNS name, issued by the
 * agent's CA, whose bundle is the webhook's caBundle.
 *
 * Bounded: a request body past |max_body| gets 413 before it is read, a
 * header past WISP_WEBHOOK_HEAD_MAX 431. At most |max_connections| are
 * held: a new one takes the place of the oldest connection holding no
 * request (idle, or in a handshake begun over a second ago), else of the
 * oldest busy one of the source holding the most, so callers holding
 * sockets open cannot lock the API server out (its failurePolicy Fail
 * would stop pod creation). Deadlines: the TLS handshake
 * within WISP_WEBHOOK_HANDSHAKE_TIMEOUT of accept, a request's head within
 * WISP_WEBHOOK_HEAD_TIMEOUT of its first byte and all of it within
 * WISP_WEBHOOK_REQUEST_TIMEOUT; an idle keep-alive connection is closed
 * after WISP_WEBHOOK_IDLE_TIMEOUT. Bodies in chunked encoding are refused
 * (411: the API server sends Content-Length).
 *
 * Reviews are decided on a worker thread the webhook owns, one at a time,
 * so the loop (the agent's RPCs) never waits for one; each review works on
 * its own copy of |inject|, taken when its request is whole. What waits is
 * bounded in bytes (each review counted as at least 4 KiB): |max_queue| in
 * all (503 past it), |max_queue_per_source| from one IP address (429); the
 * worker takes the oldest review of another source than the last one's
 * first. A connection stays watched while its review is out: if it goes
 * away, a review still waiting is dropped undecided. No request deadline
 * runs while a review is out; Connection: close closes after its answer.
 *
 * The webhook owns its listener, connections, worker and SSL_CTX; it
 * borrows |inject|, which must outlive it. */
#ifndef WISP_WEBHOOK_H
#define WISP_WEBHOOK_H

#include <stddef.h>

#include <ev.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "control/wispctl/inject.h"
#include "lib/wisp_err.h"

#define WISP_WEBHOOK_HEAD_MAX (16 * 1024)
/* The API server sends a request whole within milliseconds of connecting;
 * seconds are slack for a loaded node, not for slow callers. */
#define WISP_WEBHOOK_HANDSHAKE_TIMEOUT 3.0
#define WISP_WEBHOOK_HEAD_TIMEOUT 3.0
#define WISP_WEBHOOK_REQUEST_TIMEOUT 10.0
#define WISP_WEBHOOK_IDLE_TIMEOUT 60.0
/* Kubernetes takes requests up to 3 MiB and etcd objects up to 1.5 MiB, but
 * a pod is a few KiB, rarely tens: 1 MiB is ample, and bounds what one
 * connection holds (--webhook-max-connections of them at once). */
#define WISP_WEBHOOK_DEFAULT_MAX_BODY (1024 * 1024)
#define WISP_WEBHOOK_DEFAULT_MAX_CONNECTIONS 64
#define WISP_WEBHOOK_PATH "/mutate"                     /* labelled namespaces' pods */
#define WISP_WEBHOOK_PATH_ANNOTATED "/mutate-annotated" /* only pods annotated wisp.dev/inject: enabled */

typedef struct {
  const char *listen; /* HOST:PORT */
  size_t max_body;
  size_t max_connections;
  size_t max_queue;                 /* bytes of reviews waiting or being decided */
  size_t max_queue_per_source;      /* of them from one IP address */
  const wispctl_inject_cfg *inject; /* borrowed */
} wisp_webhook_config;

typedef struct wisp_webhook wisp_webhook;

wisp_err wisp_webhook_new(wisp_webhook **out, struct ev_loop *loop, const wisp_webhook_config *cfg, char *err,
                          size_t err_len) WISP_MUST_CHECK;
/* Serves with |key| and |chain| (the leaf first; both borrowed) from now
 * on; open connections keep the credentials they started with. */
wisp_err wisp_webhook_set_cert(wisp_webhook *w, EVP_PKEY *key, STACK_OF(X509) * chain, char *err,
                               size_t err_len) WISP_MUST_CHECK;
/* Closes every connection and the listener. NULL is fine. */
void wisp_webhook_free(wisp_webhook *w);

#endif
