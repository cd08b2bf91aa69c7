/* wisp_sa: identity from Kubernetes service-account tokens, for
 * Identity.Sign. A projected token (audience wisp) proves a namespace and
 * a service account; the CSR may then ask for
 * spiffe://<trust domain>/ns/<namespace>/sa/<service account> and nothing
 * else. The issuer's keys (a JWKS) come from a file the agent re-reads when
 * it changes (--sa-jwks: a ConfigMap made with `kubectl get --raw
 * /openid/v1/jwks`), or, in a cluster, from the API server itself
 * (/openid/v1/jwks, and the issuer from /.well-known/openid-configuration),
 * fetched on a thread of its own at start, every WISP_SA_REFRESH seconds,
 * and when a token names a key we do not have (at most every
 * WISP_SA_REFETCH_MIN seconds).
 *
 * The agent owns its wisp_sa; the wisp_sa owns its key set, its timer and
 * its fetch thread (joined by wisp_sa_free). */
#ifndef WISP_SA_H
#define WISP_SA_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "lib/wisp_err.h"
#include "lib/wisp_grpc.h"

#define WISP_SA_AUDIENCE "wisp"
#define WISP_SA_POLL_SECONDS 1.0 /* --sa-jwks: stat every second */
#define WISP_SA_REFRESH 300      /* seconds between fetches from the API server */
#define WISP_SA_REFETCH_MIN 30   /* unknown kid: fetch again, at most this often */
#define WISP_SA_RETRY 10         /* a failed fetch is retried after this long */
/* An SVID lives no longer than the token it was issued on; a token with
 * less than this left issues none. The kubelet replaces a token at 80% of
 * its life (expirationSeconds is at least 600), so a current one has more. */
#define WISP_SA_SVID_MIN_SECONDS 20
/* --sa-token-max-lifetime: exp - iat of a token taken, at most (default);
 * Kubernetes projects no token shorter than WISP_SA_PROJECTED_MIN. */
#define WISP_SA_MAX_LIFETIME_DEFAULT (24 * 3600)
#define WISP_SA_PROJECTED_MIN 600

typedef struct {
  const char *jwks_file; /* NULL: none */
  const char *issuer;    /* NULL: the API server's, from its discovery document */
  const char *kube_api;  /* auto, off or https://IP:PORT (see wisp_kube.h) */
  const char *kube_sa_dir;
  int64_t max_lifetime; /* seconds; exp - iat of a token taken, at most */
} wisp_sa_config;

typedef struct wisp_sa wisp_sa;

/* Sets up the key sources of |cfg|. Without any (no --sa-jwks, not in a
 * cluster) the wisp_sa still works and refuses every token saying how to
 * enable them. WISP_ERR_USAGE with the reason in |err| for flags that do not
 * go together (--sa-jwks without --sa-issuer outside a cluster). A bad or
 * missing --sa-jwks file is not fatal: logged, and retried. */
wisp_err wisp_sa_new(wisp_sa **out, struct ev_loop *loop, const wisp_sa_config *cfg, char *err,
                     size_t err_len) WISP_MUST_CHECK;
void wisp_sa_free(wisp_sa *s);

/* Whether |token| proves the right to an SVID for |spiffe_id| in
 * |trust_domain| (|token_len| bytes, as the request carried them: a NUL
 * byte among them is refused). WISP_GRPC_OK; UNAUTHENTICATED (the token: expired, wrong
 * audience, unknown key, bad signature, issuer mismatch, malformed, or
 * tokens not taken here; living longer than max_lifetime; not bound to a
 * pod, as legacy Secret-based tokens and kubectl create token's are);
 * PERMISSION_DENIED (the token's service account is
 * not the one |spiffe_id| names); UNAVAILABLE (the keys are not loaded
 * yet). The reason is in |why|. On WISP_GRPC_OK, |*out_exp| is the token's
 * exp, which the SVID must not outlive; a token with less than
 * WISP_SA_SVID_MIN_SECONDS left is refused (UNAUTHENTICATED). */
wisp_grpc_status wisp_sa_authorize(wisp_sa *s, const char *token, size_t token_len, const char *spiffe_id,
                                   const char *trust_domain, int64_t *out_exp, char *why, size_t why_len);

#endif
