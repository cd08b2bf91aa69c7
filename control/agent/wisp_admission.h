/* wisp_admission: the admission webhook's decision, pure: the body of a
 * POST /mutate (an admission.k8s.io/v1 AdmissionReview) in, the answer out.
 * A Pod being created is given exactly what `wispctl inject` gives a Pod
 * (the same code path: the Pod becomes a libyaml document, inject changes
 * it, the difference goes back as a JSONPatch); pods opted out, on the
 * host's network or already injected are allowed unchanged; anything else
 * is allowed unchanged too. A pod inject refuses (a malformed wisp.dev/
 * annotation) is denied, saying why, as wispctl inject exits 1 on it: the
 * webhook fails closed, so a pod meant to be meshed never runs without its
 * sidecar. A body that is not an AdmissionReview gets HTTP 400 and the
 * reason as text (the API server then applies the failurePolicy). */
#ifndef WISP_ADMISSION_H
#define WISP_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>

#include "control/wispctl/inject.h"
#include "lib/wisp_buf.h"

#define WISP_ADMISSION_UID_MAX 128
/* A review is refused (HTTP 400) before it is parsed if it holds more JSON
 * values than this or nests deeper: each value costs a few hundred bytes
 * and some CPU on its way through jansson, libyaml, inject and the diff,
 * all on the agent's loop. A large real pod (dozens of containers, each
 * with hundreds of env entries) is some 10,000 values; 3 MiB of
 * "[0,0,...]" was 1.5 million, 370 MB and seconds of CPU. */
#define WISP_ADMISSION_MAX_VALUES 65536
#define WISP_ADMISSION_MAX_NESTING 1024
/* Largest answer: a patch for a pod near etcd's 1.5 MB object limit. */
#define WISP_ADMISSION_OUT_MAX (8 * 1024 * 1024)

typedef struct {
  int http_status; /* 200: |out| is an AdmissionReview (JSON); 400: text */
  bool allowed;
  bool patched;
  char uid[WISP_ADMISSION_UID_MAX + 1];
  char ns[64];
  char name[254];   /* the pod's name or generateName, if any */
  char reason[512]; /* injected, why left unchanged, or why denied/refused */
} wisp_admission_result;

/* Which pods a webhook entry asks about. */
typedef enum {
  WISP_ADMISSION_ALL,       /* a labelled namespace's: every pod not opted out */
  WISP_ADMISSION_ANNOTATED, /* any namespace's: only pods annotated wisp.dev/inject: enabled */
} wisp_admission_scope;

/* Decides on the AdmissionReview in |body| and writes the answer to |out|. */
void wisp_admission_review(const wispctl_inject_cfg *cfg, wisp_admission_scope scope, const char *body, size_t len,
                           wisp_buf *out, wisp_admission_result *res);

#endif
