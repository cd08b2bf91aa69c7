/* The admission webhook's decision; see wisp_admission.h. */
#include "control/agent/wisp_admission.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/base64.h>

#include "control/wispctl/yaml_json.h"
#include "lib/wisp_json.h"
#include "lib/wisp_jsonpatch.h"
#include "lib/wisp_mem.h"

#define REVIEW_API "admission.k8s.io/v1"
#define NOTES_MAX 4096

static void why(wisp_admission_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void why(wisp_admission_result *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
  va_end(ap);
}

static void put_text(wisp_buf *out, const char *s) {
  wisp_err rc = wisp_buf_append(out, s, strlen(s), WISP_ADMISSION_OUT_MAX);
  (void)rc; /* a reason is far below the bound */
}

/* HTTP 400: the body is not a review we can answer at all. */
static void bad_request(wisp_admission_result *r, wisp_buf *out) {
  r->http_status = 400;
  r->allowed = false;
  put_text(out, "wisp-agent: ");
  put_text(out, r->reason);
  put_text(out, "\n");
}

/* The AdmissionReview answer: allowed, or denied with a status message,
 * with |patch| (a JSON array, taken) when there is one. */
static void answer(wisp_admission_result *r, wisp_buf *out, json_t *patch) {
  json_t *resp = json_object();
  json_object_set_new(resp, "uid", json_string(r->uid));
  json_object_set_new(resp, "allowed", json_boolean(r->allowed));
  if (!r->allowed) {
    char msg[sizeof(r->reason) + 8];
    snprintf(msg, sizeof(msg), "wisp: %s", r->reason);
    json_object_set_new(resp, "status",
                        json_pack("{s:i, s:s, s:s}", "code", 400, "reason", "BadRequest", "message", msg));
  }
  if (patch) {
    char *ops = json_dumps(patch, JSON_COMPACT);
    size_t n = strlen(ops), b64_len = 0;
    EVP_EncodedLength(&b64_len, n);
    uint8_t *b64 = wisp_malloc(b64_len);
    EVP_EncodeBlock(b64, (const uint8_t *)ops, n);
    json_object_set_new(resp, "patchType", json_string("JSONPatch"));
    json_object_set_new(resp, "patch", json_string((const char *)b64));
    free(b64);
    free(ops);
    json_decref(patch);
  }
  json_t *review = json_pack("{s:s, s:s, s:o}", "apiVersion", REVIEW_API, "kind", "AdmissionReview", "response", resp);
  char *text = json_dumps(review, JSON_COMPACT);
  r->http_status = 200;
  if (!text || wisp_buf_append(out, text, strlen(text), WISP_ADMISSION_OUT_MAX) != WISP_OK) {
    wisp_buf_cleanup(out);
    why(r, "the answer would be larger than %d bytes", WISP_ADMISSION_OUT_MAX);
    bad_request(r, out);
  }
  free(text);
  json_decref(review);
}

static void copy(char *dst, size_t cap, const char *src) { snprintf(dst, cap, "%s", src ? src : ""); }

/* Whether the request is a Pod being created (not a subresource). */
static bool pod_create(const json_t *req) {
  const json_t *kind = json_object_get(req, "kind");
  const char *op = json_string_value(json_object_get(req, "operation"));
  const char *sub = json_string_value(json_object_get(req, "subResource"));
  const char *k = json_string_value(json_object_get(kind, "kind"));
  const char *group = json_string_value(json_object_get(kind, "group"));
  return op && !strcmp(op, "CREATE") && k && !strcmp(k, "Pod") && (!group || !*group) && (!sub || !*sub);
}

/* Injects |pod| (borrowed); a patch (new) when it was changed, else NULL
 * with the reason in |r|. |*denied| when inject refuses the pod. */
static json_t *inject(const wispctl_inject_cfg *cfg, const json_t *pod, wisp_admission_result *r, bool *denied) {
  yaml_document_t d;
  json_t *patch = NULL;
  *denied = false;
  if (!yaml_document_initialize(&d, NULL, NULL, NULL, 1, 1)) abort();
  wisp_buf notes = {0};
  char err[512] = "";
  bool injected = false;
  if (wispctl_yaml_from_json(&d, pod, WISPCTL_INJECT_MAX_DEPTH) != WISP_OK) {
    why(r, "the pod nests deeper than %d levels", WISPCTL_INJECT_MAX_DEPTH);
    *denied = true;
  } else if (wispctl_inject_pod_document(cfg, &d, &injected, &notes, err, sizeof(err)) != WISP_OK) {
    why(r, "cannot inject the pod: %s", err);
    *denied = true;
  } else {
    /* The note, less "document 1 (Pod "x"): " and its newline. */
    size_t n = wisp_buf_len(&notes);
    const char *text = n ? (const char *)wisp_buf_rptr(&notes) : "";
    const char *colon = n ? memmem(text, n, "): ", 3) : NULL;
    const char *from = colon ? colon + 3 : text;
    size_t len = n - (size_t)(from - text);
    while (len && from[len - 1] == '\n') len--;
    snprintf(r->reason, sizeof(r->reason), "%.*s", (int)len, from);
  }
  if (injected) {
    json_t *after = wispctl_yaml_to_json(&d, 1, WISPCTL_INJECT_MAX_DEPTH + 8);
    if (after) {
      patch = wisp_jsonpatch_diff(pod, after);
      json_decref(after);
    } else {
      why(r, "cannot turn the injected pod back into JSON");
      *denied = true;
    }
  }
  wisp_buf_cleanup(&notes);
  yaml_document_delete(&d);
  return patch;
}

/* Whether the pod asks for injection itself (annotation wisp.dev/inject). */
static bool annotated(const json_t *pod) {
  const json_t *ann = json_object_get(json_object_get(pod, "metadata"), "annotations");
  const char *v = json_string_value(json_object_get(ann, "wisp.dev/inject"));
  return v && !strcmp(v, "enabled");
}

static void review(const wispctl_inject_cfg *cfg, wisp_admission_scope scope, const json_t *doc, wisp_buf *out,
                   wisp_admission_result *r) {
  const char *api = json_string_value(json_object_get(doc, "apiVersion"));
  const char *kind = json_string_value(json_object_get(doc, "kind"));
  const json_t *req = json_object_get(doc, "request");
  const char *uid = json_string_value(json_object_get(req, "uid"));
  if (!api || strcmp(api, REVIEW_API) != 0 || !kind || strcmp(kind, "AdmissionReview") != 0) {
    why(r, "not an %s AdmissionReview (apiVersion %s, kind %s)", REVIEW_API, api ? api : "missing",
        kind ? kind : "missing");
    {
      bad_request(r, out);
      return;
    }
  }
  if (!json_is_object(req) || !uid || !*uid || strlen(uid) > WISP_ADMISSION_UID_MAX) {
    why(r, "the AdmissionReview has no request with a uid (1 to %d bytes)", WISP_ADMISSION_UID_MAX);
    {
      bad_request(r, out);
      return;
    }
  }
  copy(r->uid, sizeof(r->uid), uid);
  copy(r->ns, sizeof(r->ns), json_string_value(json_object_get(req, "namespace")));
  r->allowed = true;
  if (!pod_create(req)) {
    why(r, "not the creation of a Pod: allowed unchanged");
    {
      answer(r, out, NULL);
      return;
    }
  }
  const json_t *pod = json_object_get(req, "object");
  const json_t *meta = json_object_get(pod, "metadata");
  const char *name = json_string_value(json_object_get(meta, "name"));
  copy(r->name, sizeof(r->name), name ? name : json_string_value(json_object_get(meta, "generateName")));
  if (!json_is_object(pod)) {
    r->allowed = false;
    why(r, "the review holds no pod (request.object is not an object)");
    {
      answer(r, out, NULL);
      return;
    }
  }
  if (scope == WISP_ADMISSION_ANNOTATED && !annotated(pod)) {
    why(r, "not annotated wisp.dev/inject: enabled, in a namespace not labelled for injection: allowed unchanged");
    answer(r, out, NULL);
    return;
  }
  bool denied = false;
  json_t *patch = inject(cfg, pod, r, &denied);
  r->allowed = !denied;
  r->patched = patch != NULL;
  answer(r, out, patch);
}

void wisp_admission_review(const wispctl_inject_cfg *cfg, wisp_admission_scope scope, const char *body, size_t len,
                           wisp_buf *out, wisp_admission_result *r) {
  memset(r, 0, sizeof(*r));
  wisp_json_shape shape;
  if (wisp_json_measure(body, len, WISP_ADMISSION_MAX_VALUES, WISP_ADMISSION_MAX_NESTING, &shape) != WISP_OK) {
    if (shape.values > WISP_ADMISSION_MAX_VALUES) {
      why(r, "the review holds more than %d JSON values (a pod needs far fewer)", WISP_ADMISSION_MAX_VALUES);
    } else {
      why(r, "the review nests deeper than %d levels", WISP_ADMISSION_MAX_NESTING);
    }
    bad_request(r, out);
    return;
  }
  json_error_t je;
  json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
  if (!doc) {
    why(r, "the body is not JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    bad_request(r, out);
    return;
  }
  review(cfg, scope, doc, out, r);
  json_decref(doc);
}
