/* wispctl inject: reads a YAML stream document by document (libyaml's
 * document API, so any valid YAML works), decides for each object whether
 * to inject it or leave it alone and why, checks the pod's wisp.dev/
 * annotations, and writes the stream back. What a pod gets is in
 * inject_pod.c. See inject.h. */
#include "control/wispctl/inject.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/wispctl/yaml_tree.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_spiffe.h"

#define A_INJECT "wisp.dev/inject"
#define A_EXCLUDE_OUT_PORTS "wisp.dev/exclude-outbound-ports"
#define A_EXCLUDE_OUT_CIDRS "wisp.dev/exclude-outbound-cidrs"
#define A_EXCLUDE_IN_PORTS "wisp.dev/exclude-inbound-ports"
#define A_IN_PORTS "wisp.dev/inbound-ports"
#define NOTES_MAX (1024 * 1024)
#define IMAGE_MAX 512
#define UID_MAX 2147483647L

/* The names inject gives its containers: either one there means injected. */
static const char *const kOurContainers[] = {WISPCTL_INJECT_PROXY_NAME, WISPCTL_INJECT_INIT_NAME};

/* Where each kind keeps its pod (template): the mapping with metadata and
 * spec, reached from the object by these keys. */
typedef struct {
  const char *kind;
  const char *const *pod;
  const char *spec_path; /* for notes */
} workload;

static const char *const kSelf[] = {NULL};
static const char *const kTemplate[] = {"spec", "template", NULL};
static const char *const kJobTemplate[] = {"spec", "jobTemplate", "spec", "template", NULL};
static const workload kWorkloads[] = {
    {"Pod", kSelf, "spec"},
    {"Deployment", kTemplate, "spec.template.spec"},
    {"StatefulSet", kTemplate, "spec.template.spec"},
    {"DaemonSet", kTemplate, "spec.template.spec"},
    {"ReplicaSet", kTemplate, "spec.template.spec"},
    {"Job", kTemplate, "spec.template.spec"},
    {"CronJob", kJobTemplate, "spec.jobTemplate.spec.template.spec"},
};

/* One object looked at: a document's root, or an item of a List. */
typedef struct {
  const wispctl_inject_cfg *cfg;
  yaml_document_t *d;
  int list; /* the List's items holding |obj|, or 0 */
  int obj, pod, spec;
  char where[320]; /* document 2 (Deployment "orders") */
  wisp_buf *notes;
  char *err;
  size_t err_len;
  bool injected; /* something was added */
} object;

/* ---- notes and errors, each naming the object ---- */

static void note(object *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static wisp_err fail(object *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(object *c, const char *fmt, ...) {
  char line[1024];
  int n = snprintf(line, sizeof(line), "%s: ", c->where);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof(line) - 1 - (size_t)n, fmt, ap);
  va_end(ap);
  strcat(line, "\n");
  /* Notes are a courtesy: past NOTES_MAX they are dropped, not an error. */
  wisp_err dropped = wisp_buf_append(c->notes, line, strlen(line), NOTES_MAX);
  (void)dropped;
}

static wisp_err fail(object *c, const char *fmt, ...) {
  int n = snprintf(c->err, c->err_len, "%s: ", c->where);
  va_list ap;
  va_start(ap, fmt);
  if ((size_t)n < c->err_len) vsnprintf(c->err + n, c->err_len - (size_t)n, fmt, ap);
  va_end(ap);
  return WISP_ERR_PARSE;
}

static void describe(object *c, int doc_no, int item_no, const char *kind) {
  int meta = wispctl_yaml_get(c->d, c->obj, "metadata");
  const char *name = wispctl_yaml_str(c->d, wispctl_yaml_get(c->d, meta, "name"));
  if (!name) name = wispctl_yaml_str(c->d, wispctl_yaml_get(c->d, meta, "generateName"));
  int n = snprintf(c->where, sizeof(c->where), "document %d", doc_no);
  if (item_no) n += snprintf(c->where + n, sizeof(c->where) - (size_t)n, ", item %d", item_no);
  if (kind && name) {
    snprintf(c->where + n, sizeof(c->where) - (size_t)n, " (%s \"%s\")", kind, name);
  } else if (kind) {
    snprintf(c->where + n, sizeof(c->where) - (size_t)n, " (%s)", kind);
  }
}

/* ---- annotations ---- */

/* The value of annotation |key| on the pod (template), else on the object
 * itself (a Deployment's own metadata); NULL if neither has it. */
static const char *annotation(object *c, const char *key) {
  static const char *const kPath[] = {"metadata", "annotations", NULL};
  const char *v = wispctl_yaml_str(c->d, wispctl_yaml_get(c->d, wispctl_yaml_path(c->d, c->pod, kPath), key));
  if (!v) v = wispctl_yaml_str(c->d, wispctl_yaml_get(c->d, wispctl_yaml_path(c->d, c->obj, kPath), key));
  return v;
}

/* Reads annotation |key| into |*out| if given; an error if it is malformed. */
static wisp_err read_value(object *c, const char *key, wispctl_inject_value kind, const char **out) {
  const char *v = annotation(c, key);
  char why[256];
  *out = v;
  if (v && !wispctl_inject_value_ok(kind, v, why, sizeof(why)))
    return fail(c, "annotation %s: \"%s\": %s", key, v, why);
  return WISP_OK;
}

/* ---- the pod ---- */

/* Calls |fn| on each init container and container of the pod until it
 * returns false; false if one did. */
typedef bool (*container_fn)(object *c, int ctr, void *arg);
static bool each_container(object *c, container_fn fn, void *arg) {
  static const char *const kLists[] = {"initContainers", "containers"};
  for (size_t l = 0; l < sizeof(kLists) / sizeof(kLists[0]); l++) {
    yaml_node_t *s = wispctl_yaml_node(c->d, wispctl_yaml_get(c->d, c->spec, kLists[l]), YAML_SEQUENCE_NODE);
    for (yaml_node_item_t *i = s ? s->data.sequence.items.start : NULL; s && i < s->data.sequence.items.top; i++) {
      if (!fn(c, *i, arg)) return false;
    }
  }
  return true;
}

static bool not_named(object *c, int ctr, void *name) {
  const char *n = wispctl_yaml_str(c->d, wispctl_yaml_get(c->d, ctr, "name"));
  return !n || strcmp(n, name) != 0;
}

/* Whether the pod has a container or init container called |name|. */
static bool has_container(object *c, const char *name) { return !each_container(c, not_named, (void *)name); }

/* The first of our container names the pod already has, or NULL. */
static const char *our_container(object *c) {
  for (size_t k = 0; k < sizeof(kOurContainers) / sizeof(kOurContainers[0]); k++) {
    if (has_container(c, kOurContainers[k])) return kOurContainers[k];
  }
  return NULL;
}

/* The ports wisp-proxy listens on in the pod's network namespace, and what
 * for: an app container declaring one of them cannot share the pod with
 * it; one naming a port wisp-admin makes that name ambiguous. */
static const struct {
  long port;
  const char *what;
} kProxyPorts[] = {
    {WISPCTL_INJECT_ADMIN_PORT, "admin port (the kubelet's probes)"},
    {WISPCTL_INJECT_OUTBOUND_PORT, "outbound listener"},
    {WISPCTL_INJECT_INBOUND_PORT, "inbound listener"},
    {WISPCTL_INJECT_PROBE_PORT, "interception probe"},
    {WISPCTL_INJECT_METRICS_PORT, "metrics port (Prometheus)"},
};

/* A port of container |ctr| that is the proxy's: refused, naming it. */
static wisp_err port_clash(object *c, int ctr) {
  const char *name = wispctl_yaml_str(c->d, wispctl_yaml_get(c->d, ctr, "name"));
  yaml_node_t *s = wispctl_yaml_node(c->d, wispctl_yaml_get(c->d, ctr, "ports"), YAML_SEQUENCE_NODE);
  for (yaml_node_item_t *i = s ? s->data.sequence.items.start : NULL; s && i < s->data.sequence.items.top; i++) {
    const char *port = wispctl_yaml_str(c->d, wispctl_yaml_get(c->d, *i, "containerPort"));
    const char *port_name = wispctl_yaml_str(c->d, wispctl_yaml_get(c->d, *i, "name"));
    char *end = NULL;
    long n = port ? strtol(port, &end, 10) : 0;
    for (size_t k = 0; port && *end == '\0' && k < sizeof(kProxyPorts) / sizeof(kProxyPorts[0]); k++) {
      if (n == kProxyPorts[k].port)
        return fail(c,
                    "container %s declares containerPort %ld, wisp-proxy's %s: the pod could never be ready. "
                    "Move the app off ports %ld, %ld, %ld, %ld and %ld, or annotate the pod wisp.dev/inject: disabled",
                    name ? name : "?", n, kProxyPorts[k].what, kProxyPorts[0].port, kProxyPorts[1].port,
                    kProxyPorts[2].port, kProxyPorts[3].port, kProxyPorts[4].port);
    }
    if (port_name && !strcmp(port_name, WISPCTL_INJECT_ADMIN_PORT_NAME))
      return fail(c,
                  "container %s names a port %s, as wisp-proxy names its admin port: a Service or probe naming "
                  "it could reach either (Kubernetes warns of duplicate port names in a pod). Rename it, or "
                  "annotate the pod wisp.dev/inject: disabled",
                  name ? name : "?", port_name);
  }
  return WISP_OK;
}

static bool no_clash(object *c, int ctr, void *rc) { return (*(wisp_err *)rc = port_clash(c, ctr)) == WISP_OK; }

/* No container of the pod declares one of the proxy's ports. */
static wisp_err no_port_clash(object *c) {
  wisp_err rc = WISP_OK;
  each_container(c, no_clash, &rc);
  return rc;
}

/* The uid a container runs as, where the manifest says (its own
 * securityContext, else the pod's). */
static const char *run_as(object *c, int container) {
  static const char *const kUid[] = {"securityContext", "runAsUser", NULL};
  const char *uid = wispctl_yaml_str(c->d, wispctl_yaml_path(c->d, container, kUid));
  return uid ? uid : wispctl_yaml_str(c->d, wispctl_yaml_path(c->d, c->spec, kUid));
}

/* A container that runs as the proxy's uid bypasses interception. */
static void warn_uid(object *c) {
  yaml_node_t *s = wispctl_yaml_node(c->d, wispctl_yaml_get(c->d, c->spec, "containers"), YAML_SEQUENCE_NODE);
  for (yaml_node_item_t *i = s ? s->data.sequence.items.start : NULL; s && i < s->data.sequence.items.top; i++) {
    const char *uid = run_as(c, *i);
    if (uid && !strcmp(uid, c->cfg->proxy_uid)) {
      const char *name = wispctl_yaml_str(c->d, wispctl_yaml_get(c->d, *i, "name"));
      note(c,
           "warning: container %s runs as uid %s, the proxy's: its traffic is not intercepted "
           "(give wispctl inject another --proxy-uid)",
           name ? name : "?", uid);
    }
  }
}

/* Block style from the document's root down to the pod spec, so that what
 * is added reads like a manifest even where the input was written in flow
 * style ({...}, [...]). */
static void block_style_to_spec(object *c, const workload *w) {
  wispctl_yaml_set_block(c->d, 1); /* the root: a List or |obj| */
  wispctl_yaml_set_block(c->d, c->list);
  int id = c->obj;
  wispctl_yaml_set_block(c->d, id);
  for (const char *const *k = w->pod; *k; k++) wispctl_yaml_set_block(c->d, id = wispctl_yaml_get(c->d, id, *k));
  wispctl_yaml_set_block(c->d, c->spec);
}

/* The service account the pod runs as: its Secret holds the join token. */
static const char *service_account(object *c) {
  const char *sa = wispctl_yaml_str(c->d, wispctl_yaml_get(c->d, c->spec, "serviceAccountName"));
  if (!sa) sa = wispctl_yaml_str(c->d, wispctl_yaml_get(c->d, c->spec, "serviceAccount")); /* deprecated */
  return sa && *sa ? sa : "default";
}

/* The pod's plan from its annotations; |*out_cidrs| (the agent's address
 * and the pod's exclusions, in one flag) is the caller's to free. */
static wisp_err make_plan(object *c, wispctl_pod_plan *plan, char **out_cidrs) {
  const char *cidrs;
  *plan = (wispctl_pod_plan){.cfg = c->cfg, .service_account = service_account(c)};
  *out_cidrs = NULL;
  WISP_GUARD(read_value(c, A_EXCLUDE_OUT_PORTS, WISPCTL_INJECT_PORTS, &plan->exclude_outbound_ports));
  WISP_GUARD(read_value(c, A_EXCLUDE_IN_PORTS, WISPCTL_INJECT_PORTS, &plan->exclude_inbound_ports));
  WISP_GUARD(read_value(c, A_IN_PORTS, WISPCTL_INJECT_INBOUND_PORTS, &plan->inbound_ports));
  WISP_GUARD(read_value(c, A_EXCLUDE_OUT_CIDRS, WISPCTL_INJECT_CIDRS, &cidrs));
  const char *agent_ip = c->cfg->agent_https ? c->cfg->agent_ip : NULL;
  size_t len = (agent_ip ? strlen(agent_ip) : 0) + (cidrs ? strlen(cidrs) : 0) + 2;
  char *all = wisp_malloc(len);
  snprintf(all, len, "%s%s%s", agent_ip ? agent_ip : "", agent_ip && cidrs ? "," : "", cidrs ? cidrs : "");
  plan->exclude_outbound_cidrs = *all ? all : NULL;
  *out_cidrs = all;
  return WISP_OK;
}

static wisp_err inject_pod(object *c, const workload *w) {
  wispctl_pod_plan plan;
  char *cidrs = NULL;
  wisp_err rc = no_port_clash(c);
  const char *vol = rc == WISP_OK ? wispctl_inject_pod_volume_clash(c->d, c->spec) : NULL;
  if (vol)
    rc = fail(c,
              "the pod already has a volume named %s, as one the injection adds: the pod would be invalid "
              "(duplicate volume names). Rename it, or annotate the pod wisp.dev/inject: disabled",
              vol);
  if (rc == WISP_OK) rc = make_plan(c, &plan, &cidrs);
  int meta = rc == WISP_OK ? wispctl_yaml_want(c->d, c->pod, "metadata", YAML_MAPPING_NODE) : 0;
  if (rc == WISP_OK && !meta) rc = fail(c, "metadata is not a mapping");
  if (rc == WISP_OK) {
    warn_uid(c);
    block_style_to_spec(c, w);
    if (!wispctl_inject_pod(c->d, c->spec, meta, &plan))
      rc = fail(c, "initContainers, volumes or metadata.annotations is not a list or mapping as expected");
  }
  free(cidrs);
  if (rc == WISP_OK) note(c, "injected");
  c->injected = rc == WISP_OK;
  return rc;
}

/* ---- objects ---- */

static const workload *find_workload(const char *kind) {
  for (size_t i = 0; kind && i < sizeof(kWorkloads) / sizeof(kWorkloads[0]); i++) {
    if (!strcmp(kind, kWorkloads[i].kind)) return &kWorkloads[i];
  }
  return NULL;
}

static wisp_err inject_object(object *c, const char *kind) {
  const workload *w = find_workload(kind);
  if (!w) {
    note(c, "%s, passed through unchanged", kind ? "not a workload" : "no kind");
    return WISP_OK;
  }
  c->pod = wispctl_yaml_path(c->d, c->obj, w->pod);
  c->spec = wispctl_yaml_get(c->d, c->pod, "spec");
  const char *choice = annotation(c, A_INJECT);
  const char *ours;
  if (!wispctl_yaml_node(c->d, c->spec, YAML_MAPPING_NODE)) {
    note(c, "no pod spec at %s, passed through unchanged", w->spec_path);
  } else if (choice && strcmp(choice, "enabled") != 0 && strcmp(choice, "disabled") != 0) {
    return fail(c, "annotation %s: \"%s\": want enabled or disabled", A_INJECT, choice);
  } else if (choice && !strcmp(choice, "disabled")) {
    note(c, "annotation %s: disabled, left unchanged", A_INJECT);
  } else if (wispctl_yaml_is_true(c->d, wispctl_yaml_get(c->d, c->spec, "hostNetwork"))) {
    note(c,
         "hostNetwork: true, left unchanged: the pod shares the node's network namespace, "
         "and wisp-init's iptables rules would intercept the whole node's traffic");
  } else if ((ours = our_container(c)) != NULL) {
    note(c, "already injected (it has a %s container), left unchanged", ours);
  } else {
    return inject_pod(c, w);
  }
  return WISP_OK;
}

/* A document: one object, or the items of a List (kubectl get -o yaml). */
static wisp_err inject_document(object *c, int doc_no) {
  c->obj = 1; /* the root */
  const char *kind = wispctl_yaml_str(c->d, wispctl_yaml_get(c->d, c->obj, "kind"));
  describe(c, doc_no, 0, kind);
  yaml_node_t *items = wispctl_yaml_node(c->d, wispctl_yaml_get(c->d, c->obj, "items"), YAML_SEQUENCE_NODE);
  if (!kind || strcmp(kind, "List") != 0 || !items) return inject_object(c, kind);
  size_t n = (size_t)(items->data.sequence.items.top - items->data.sequence.items.start);
  int items_id = wispctl_yaml_get(c->d, c->obj, "items");
  for (size_t i = 0; i < n; i++) {
    /* Look the list up each time: injecting moves the nodes. */
    items = wispctl_yaml_node(c->d, items_id, YAML_SEQUENCE_NODE);
    c->list = items_id;
    c->obj = items->data.sequence.items.start[i];
    kind = wispctl_yaml_str(c->d, wispctl_yaml_get(c->d, c->obj, "kind"));
    describe(c, doc_no, (int)i + 1, kind);
    WISP_GUARD(inject_object(c, kind));
  }
  return WISP_OK;
}

wisp_err wispctl_inject_pod_document(const wispctl_inject_cfg *cfg, yaml_document_t *d, bool *out_injected,
                                     wisp_buf *notes, char *err, size_t err_len) {
  object c = {.cfg = cfg, .d = d, .notes = notes, .err = err, .err_len = err_len};
  *out_injected = false;
  c.obj = 1;
  const char *kind = wispctl_yaml_str(d, wispctl_yaml_get(d, c.obj, "kind"));
  describe(&c, 1, 0, kind ? kind : "Pod");
  if (kind && strcmp(kind, "Pod") != 0) {
    note(&c, "not a Pod, left unchanged");
    return WISP_OK;
  }
  WISP_GUARD(inject_object(&c, "Pod"));
  *out_injected = c.injected;
  return WISP_OK;
}

/* ---- the stream ---- */

typedef struct {
  wisp_buf *b;
  bool too_big;
} sink;

static int write_out(void *data, unsigned char *bytes, size_t len) {
  sink *s = data;
  if (wisp_buf_append(s->b, bytes, len, WISPCTL_INJECT_MAX_OUTPUT) == WISP_OK) return 1;
  s->too_big = true;
  return 0;
}

static wisp_err parse_error(const yaml_parser_t *p, char *err, size_t err_len) {
  const char *problem = p->problem ? p->problem : "out of memory";
  if (p->error == YAML_READER_ERROR) {
    snprintf(err, err_len, "byte %zu: %s", p->problem_offset, problem);
  } else if (p->context) {
    snprintf(err, err_len, "line %zu, column %zu: %s (%s at line %zu, column %zu)", p->problem_mark.line + 1,
             p->problem_mark.column + 1, problem, p->context, p->context_mark.line + 1, p->context_mark.column + 1);
  } else {
    snprintf(err, err_len, "line %zu, column %zu: %s", p->problem_mark.line + 1, p->problem_mark.column + 1, problem);
  }
  return WISP_ERR_PARSE;
}

static wisp_err emit_error(const yaml_emitter_t *e, const sink *s, char *err, size_t err_len) {
  if (s->too_big) {
    snprintf(err, err_len, "the output would be larger than %d bytes", WISPCTL_INJECT_MAX_OUTPUT);
  } else {
    snprintf(err, err_len, "cannot write YAML: %s", e->problem ? e->problem : "out of memory");
  }
  return WISP_ERR_PARSE;
}

/* Writes |d| and frees it (yaml_emitter_dump frees it even when it fails). */
static wisp_err dump(yaml_emitter_t *e, yaml_document_t *d, int doc_no, const sink *s, char *err, size_t err_len) {
  size_t depth = wispctl_yaml_depth(d);
  if (depth > WISPCTL_INJECT_MAX_DEPTH) {
    yaml_document_delete(d);
    snprintf(err, err_len, "document %d nests %zu levels deep (at most %d)", doc_no, depth, WISPCTL_INJECT_MAX_DEPTH);
    return WISP_ERR_PARSE;
  }
  /* An empty scalar as the first document ("!", "&a") would be written as
   * a blank line, which reads back as no document at all: say "---". */
  yaml_node_t *root = yaml_document_get_root_node(d);
  if (root && root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0) d->start_implicit = 0;
  return yaml_emitter_dump(e, d) ? WISP_OK : emit_error(e, s, err, err_len);
}

static wisp_err run(const wispctl_inject_cfg *cfg, yaml_parser_t *p, yaml_emitter_t *e, const sink *s, wisp_buf *notes,
                    char *err, size_t err_len) {
  if (!yaml_emitter_open(e)) return emit_error(e, s, err, err_len);
  for (int doc_no = 1;; doc_no++) {
    yaml_document_t d;
    if (!yaml_parser_load(p, &d)) return parse_error(p, err, err_len); /* it freed |d| */
    if (!yaml_document_get_root_node(&d)) {                            /* the end of the stream */
      yaml_document_delete(&d);
      break;
    }
    object c = {.cfg = cfg, .d = &d, .notes = notes, .err = err, .err_len = err_len};
    wisp_err rc = inject_document(&c, doc_no);
    if (rc != WISP_OK) {
      yaml_document_delete(&d);
      return rc;
    }
    WISP_GUARD(dump(e, &d, doc_no, s, err, err_len));
  }
  if (!yaml_emitter_close(e) || !yaml_emitter_flush(e)) return emit_error(e, s, err, err_len);
  return WISP_OK;
}

wisp_err wispctl_inject(const wispctl_inject_cfg *cfg, const char *in, size_t in_len, wisp_buf *out, wisp_buf *notes,
                        char *err, size_t err_len) {
  yaml_parser_t p;
  yaml_emitter_t e;
  sink s = {out, false};
  if (!yaml_parser_initialize(&p) || !yaml_emitter_initialize(&e)) {
    fputs("wispctl: out of memory (libyaml)\n", stderr);
    abort();
  }
  yaml_parser_set_input_string(&p, (const unsigned char *)in, in_len);
  yaml_emitter_set_output(&e, write_out, &s);
  yaml_emitter_set_encoding(&e, YAML_UTF8_ENCODING);
  yaml_emitter_set_unicode(&e, 1); /* UTF-8 as it is, not \u escapes */
  yaml_emitter_set_width(&e, -1);  /* no folding of long lines */
  wisp_err rc = run(cfg, &p, &e, &s, notes, err, err_len);
  yaml_emitter_delete(&e);
  yaml_parser_delete(&p);
  if (rc != WISP_OK) {
    wisp_buf_cleanup(out);
    wisp_buf_cleanup(notes);
  }
  return rc;
}

/* ---- options ---- */

static wisp_err usage(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static wisp_err usage(char *err, size_t err_len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_len, fmt, ap);
  va_end(ap);
  return WISP_ERR_USAGE;
}

/* unix:///DIR/SOCKET (DIR comes from the node) or https://IP:PORT. */
static wisp_err prepare_agent(wispctl_inject_cfg *c, char *err, size_t err_len) {
  wisp_rpcc_target t;
  char why[256];
  if (wisp_rpcc_target_parse(&t, c->o.agent, why, sizeof(why)) != WISP_OK)
    return usage(err, err_len, "--agent: %s%s", why,
                 strncmp(c->o.agent, "https://", 8) == 0 ? " (wisp does not resolve names: give the agent "
                                                           "Service's cluster IP)"
                                                         : "");
  if (t.kind == WISP_RPCC_TARGET_UNIX) {
    const char *slash = strrchr(t.path, '/');
    if (t.path[0] != '/' || slash == t.path)
      return usage(err, err_len,
                   "--agent %s: the socket must be an absolute path in a directory of its own "
                   "(the directory is mounted from the node)",
                   c->o.agent);
    snprintf(c->agent_dir, sizeof(c->agent_dir), "%.*s", (int)(slash - t.path), t.path);
    return WISP_OK;
  }
  if (!t.tls)
    return usage(err, err_len,
                 "--agent %s: want unix:///PATH or https://IP:PORT (the proxy reaches a remote "
                 "agent over TLS only)",
                 c->o.agent);
  c->agent_https = true;
  const struct sockaddr *sa = (const struct sockaddr *)&t.addr.sa;
  const void *ip = sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                                             : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
  inet_ntop(sa->sa_family, ip, c->agent_ip, sizeof(c->agent_ip));
  return WISP_OK;
}

static bool image_ok(const char *s) {
  size_t len = strlen(s);
  for (size_t i = 0; i < len; i++) {
    if (s[i] <= ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\\') return false;
  }
  return len > 0 && len <= IMAGE_MAX;
}

wisp_err wispctl_inject_prepare(wispctl_inject_cfg *out, const wispctl_inject_opts *o, char *err, size_t err_len) {
  memset(out, 0, sizeof(*out));
  out->o = *o;
  if (o->proxy_uid < 1 || o->proxy_uid > UID_MAX)
    return usage(err, err_len, "--proxy-uid %ld: want a user id from 1 to %ld (the proxy does not run as root)",
                 o->proxy_uid, UID_MAX);
  snprintf(out->proxy_uid, sizeof(out->proxy_uid), "%ld", o->proxy_uid);
  char id[WISP_SPIFFE_MAX + 1];
  wisp_spiffe_id parsed;
  char why[256];
  snprintf(id, sizeof(id), "spiffe://%s/ns/default/sa/default", o->trust_domain);
  if (wisp_spiffe_parse(&parsed, id, strlen(id), why, sizeof(why)) != WISP_OK ||
      strcmp(parsed.trust_domain, o->trust_domain) != 0)
    return usage(err, err_len, "--trust-domain %s: not a trust domain (lowercase letters, digits, '.', '-', '_')",
                 o->trust_domain);
  if (!image_ok(o->image))
    return usage(err, err_len, "--image %s: want an image reference such as %s", o->image,
                 WISPCTL_INJECT_DEFAULT_IMAGE);
  if (o->bundle_pem &&
      (strlen(o->bundle_pem) > WISPCTL_INJECT_BUNDLE_MAX || !strstr(o->bundle_pem, "-----BEGIN CERTIFICATE-----")))
    return usage(err, err_len, "the trust bundle is not PEM certificates of at most %d bytes",
                 WISPCTL_INJECT_BUNDLE_MAX);
  return prepare_agent(out, err, err_len);
}
