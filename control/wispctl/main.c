/* wispctl: flags, commands, and what each prints. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/wispctl/check.h"
#include "control/wispctl/inject.h"
#include "control/wispctl/wispctl.h"
#include "lib/wisp_policy.h"
#include "lib/wisp_time.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_spiffe.h"

/* The agent's request limit (WISP_RPC_MAX_MSG), less room for framing. */
#define POLICY_MAX (1024 * 1024 - 4096)
#define MAX_POSITIONAL 8
#define STR_(x) #x
#define STR(x) STR_(x)

static const char kUsage[] =
    "usage: wispctl [--agent TARGET] [--timeout DURATION] COMMAND [FLAGS]\n"
    "\n"
    "Commands:\n"
    "  token create --spiffe-id ID [--ttl DURATION] [--reusable]\n"
    "                        create a join token for wisp-proxy --join-token; prints\n"
    "                        the token alone on stdout (its expiry on stderr).\n"
    "                        --ttl: lifetime, e.g. 90s, 30m, 1h (default 1h);\n"
    "                        --reusable: usable until it expires, not just once\n"
    "  apply -f FILE         apply an authorization policy (YAML documents; FILE - is\n"
    "                        stdin); replaces the whole policy; prints the version\n"
    "  status [--json]       the agent's policy version, CA and trust bundle, and\n"
    "                        every identity: sidecars connected, version acked,\n"
    "                        SVID expiry\n"
    "  check [--proxy ADMIN_ADDR] [-o text|json] [--ca-min-validity DURATION]\n"
    "        [--svid-min-validity DURATION]\n"
    "                        diagnose the mesh in plain words, one line per check\n"
    "                        (pass, warning or fail, with a hint): the agent answers,\n"
    "                        CA and bundle, CA rotation, every identity connected,\n"
    "                        every sidecar at the current policy version, NACKs,\n"
    "                        SVID expiry; with\n"
    "                        --proxy (IP:PORT of a sidecar's admin API) also that\n"
    "                        sidecar: ready, interception, SVID, bundle, policy, the\n"
    "                        upstreams it fails to reach. Exit 0 when none failed.\n"
    "                        Thresholds: --ca-min-validity (default " WISPCTL_CHECK_CA_MIN_DEFAULT "),\n"
    "                        --svid-min-validity (default: a quarter of each SVID's\n"
    "                        lifetime, at most " WISPCTL_CHECK_SVID_MIN_DEFAULT ")\n"
    "  policy check FILE     validate a policy file offline (no agent): exit 0 if it\n"
    "                        would be accepted, else 1 with the document, field, reason\n"
    "  ca rotate prepare|activate|finish [--force]\n"
    "                        rotate the CA in three steps: add a new root to every\n"
    "                        bundle; sign with it; drop the old root (refused until\n"
    "                        one SVID lifetime after activate, unless --force)\n"
    "  inject -f FILE [--proxy-uid UID] [--trust-domain TD] [--image IMAGE]\n"
    "         [--identity sa-token|join-token] [--bundle-file PEM]\n"
    "                        add wisp to the Kubernetes workloads in FILE (- for stdin;\n"
    "                        offline) and print the result: the wisp-init iptables init\n"
    "                        container and wisp-proxy as a native sidecar; other\n"
    "                        documents pass through. --agent: what the proxy dials,\n"
    "                        unix:///PATH (the node's socket, the default) or\n"
    "                        https://IP:PORT (WISP_AGENT is not used); --trust-domain\n"
    "                        (default " WISPCTL_INJECT_DEFAULT_TRUST_DOMAIN "), --proxy-uid (default " STR(WISPCTL_INJECT_DEFAULT_UID) "),\n"
    "                        --image (default " WISPCTL_INJECT_DEFAULT_IMAGE "),\n"
    "                        --identity sa-token|join-token: the first SVID with a\n"
    "                        projected service-account token (default) or the join\n"
    "                        token Secret wisp-join-<service account> (VMs, old agents);\n"
    "                        --bundle-file PEM: https agent, the trust bundle put in\n"
    "                        the pod (default: ConfigMap wisp-trust-bundle)\n"
    "\n"
    "Global flags (before or after the command):\n"
    "  --agent TARGET        the agent's API socket: unix:PATH or unix:///PATH\n"
    "                        (default " WISPCTL_DEFAULT_AGENT "; env WISP_AGENT)\n"
    "  --timeout DURATION    give up on the agent after this long (default 10s)\n"
    "  -h, --help            this help\n"
    "\n"
    "Exit status: 0 done, 1 the agent refused or could not be reached, or a file\n"
    "it cannot use (policy check, inject), or a check failed (check), 2 usage.\n";

typedef struct {
  wispctl_opts o;
  const char *spiffe_id, *ttl, *file, *timeout, *proxy_uid, *trust_domain, *image, *identity, *bundle_file;
  const char *proxy, *output, *ca_min, *svid_min; /* check */
  bool reusable, json, force, help;
  unsigned seen; /* FLAG_* bits given */
  const char *pos[MAX_POSITIONAL];
  int npos;
} args;

enum {
  FLAG_AGENT = 1 << 0,
  FLAG_TIMEOUT = 1 << 1,
  FLAG_SPIFFE_ID = 1 << 2,
  FLAG_TTL = 1 << 3,
  FLAG_REUSABLE = 1 << 4,
  FLAG_FILE = 1 << 5,
  FLAG_JSON = 1 << 6,
  FLAG_PROXY_UID = 1 << 7,
  FLAG_TRUST_DOMAIN = 1 << 8,
  FLAG_IMAGE = 1 << 9,
  FLAG_IDENTITY = 1 << 10,
  FLAG_BUNDLE_FILE = 1 << 11,
  FLAG_FORCE = 1 << 12,
  FLAG_PROXY = 1 << 13,
  FLAG_OUTPUT = 1 << 14,
  FLAG_CA_MIN = 1 << 15,
  FLAG_SVID_MIN = 1 << 16,
};
#define FLAGS_GLOBAL (FLAG_AGENT | FLAG_TIMEOUT)

typedef struct {
  const char *name;  /* "--agent" */
  const char *alias; /* "-f", or NULL */
  unsigned bit;
  bool takes_value; /* a const char * at |off|; else a bool switch there */
  size_t off;       /* in args */
} flag_def;

static const flag_def kFlags[] = {
    {"--agent", NULL, FLAG_AGENT, true, offsetof(args, o.agent)},
    {"--timeout", NULL, FLAG_TIMEOUT, true, offsetof(args, timeout)},
    {"--spiffe-id", NULL, FLAG_SPIFFE_ID, true, offsetof(args, spiffe_id)},
    {"--ttl", NULL, FLAG_TTL, true, offsetof(args, ttl)},
    {"--reusable", NULL, FLAG_REUSABLE, false, offsetof(args, reusable)},
    {"--file", "-f", FLAG_FILE, true, offsetof(args, file)},
    {"--json", NULL, FLAG_JSON, false, offsetof(args, json)},
    {"--proxy-uid", NULL, FLAG_PROXY_UID, true, offsetof(args, proxy_uid)},
    {"--trust-domain", NULL, FLAG_TRUST_DOMAIN, true, offsetof(args, trust_domain)},
    {"--image", NULL, FLAG_IMAGE, true, offsetof(args, image)},
    {"--identity", NULL, FLAG_IDENTITY, true, offsetof(args, identity)},
    {"--bundle-file", NULL, FLAG_BUNDLE_FILE, true, offsetof(args, bundle_file)},
    {"--force", NULL, FLAG_FORCE, false, offsetof(args, force)},
    {"--proxy", NULL, FLAG_PROXY, true, offsetof(args, proxy)},
    {"--output", "-o", FLAG_OUTPUT, true, offsetof(args, output)},
    {"--ca-min-validity", NULL, FLAG_CA_MIN, true, offsetof(args, ca_min)},
    {"--svid-min-validity", NULL, FLAG_SVID_MIN, true, offsetof(args, svid_min)},
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("wispctl: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\n\n", stderr);
  fputs(kUsage, stderr);
  return WISPCTL_EXIT_USAGE;
}

/* Flags anywhere ("--flag VALUE" or "--flag=VALUE"), the rest positional. */
static int parse_args(args *a, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      a->help = true;
      continue;
    }
    if (arg[0] != '-' || strcmp(arg, "-") == 0) {
      if (a->npos == MAX_POSITIONAL) return usage_error("too many arguments (%s)", arg);
      a->pos[a->npos++] = arg;
      continue;
    }
    const char *eq = strchr(arg, '=');
    size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
    const flag_def *f = NULL;
    for (size_t k = 0; k < sizeof(kFlags) / sizeof(kFlags[0]); k++) {
      const flag_def *d = &kFlags[k];
      if ((strlen(d->name) == name_len && strncmp(arg, d->name, name_len) == 0) ||
          (d->alias && strlen(d->alias) == name_len && strncmp(arg, d->alias, name_len) == 0)) {
        f = d;
        break;
      }
    }
    if (!f) return usage_error("unknown flag %.*s", (int)name_len, arg);
    a->seen |= f->bit;
    if (!f->takes_value) {
      if (eq) return usage_error("%s takes no value", f->name);
      *(bool *)((char *)a + f->off) = true;
      continue;
    }
    const char *value = eq ? eq + 1 : (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0 ? argv[++i] : NULL);
    if (!value || !*value) return usage_error("%s needs a value", f->name);
    *(const char **)((char *)a + f->off) = value;
  }
  return 0;
}

/* Flags given that |command| does not take. */
static int check_flags(const args *a, const char *command, unsigned allowed) {
  unsigned extra = a->seen & ~(allowed | FLAGS_GLOBAL);
  for (size_t k = 0; k < sizeof(kFlags) / sizeof(kFlags[0]); k++) {
    if (extra & kFlags[k].bit) return usage_error("%s does not take %s", command, kFlags[k].name);
  }
  return 0;
}

static int64_t now_unix(void) { return (int64_t)time(NULL); }

/* ---- token create ---- */

static int cmd_token_create(const args *a) {
  int rc = check_flags(a, "token create", FLAG_SPIFFE_ID | FLAG_TTL | FLAG_REUSABLE);
  if (rc) return rc;
  if (a->npos > 2) return usage_error("token create: unexpected argument %s", a->pos[2]);
  if (!a->spiffe_id) return usage_error("token create: --spiffe-id is required");
  wisp_spiffe_id id;
  char why[256];
  if (wisp_spiffe_parse(&id, a->spiffe_id, strlen(a->spiffe_id), why, sizeof(why)) != WISP_OK)
    return usage_error("token create: --spiffe-id %s: %s", a->spiffe_id, why);
  double ttl = 3600;
  if (a->ttl && wisp_duration_parse_seconds(&ttl, a->ttl) != WISP_OK)
    return usage_error("token create: --ttl %s: want a duration such as 90s, 30m, 1h or 7d", a->ttl);
  Wisp__V1__CreateJoinTokenRequest req = WISP__V1__CREATE_JOIN_TOKEN_REQUEST__INIT;
  req.spiffe_id = (char *)a->spiffe_id;
  req.ttl_seconds = (int64_t)ceil(ttl);
  req.reusable = a->reusable;
  ProtobufCMessage *m = NULL;
  rc = wispctl_call(&a->o, "token create", "/wisp.v1.Admin/CreateJoinToken", &req.base,
                    &wisp__v1__create_join_token_response__descriptor, &m);
  if (rc) return rc;
  const Wisp__V1__CreateJoinTokenResponse *resp = (const Wisp__V1__CreateJoinTokenResponse *)m;
  if (!resp->token || !*resp->token) {
    fprintf(stderr, "wispctl: token create: the agent answered without a token\n");
    rc = WISPCTL_EXIT_FAIL;
  } else {
    char exp[128];
    wispctl_format_expiry(exp, sizeof(exp), resp->expires_unix, now_unix());
    printf("%s\n", resp->token);
    fflush(stdout);
    fprintf(stderr, "join token for %s (%s), expires %s\n", a->spiffe_id, a->reusable ? "reusable" : "single use", exp);
  }
  protobuf_c_message_free_unpacked(m, NULL);
  return rc;
}

/* ---- apply ---- */

/* Reads all of |file| ("-": stdin), at most |max| bytes of text, into a
 * NUL-terminated |*out| (free it). Returns 0, or an exit code after saying
 * why on stderr ("wispctl: WHAT: ..."). */
static int read_text(const char *what, const char *file, size_t max, char **out, size_t *out_len) {
  bool is_stdin = strcmp(file, "-") == 0;
  FILE *f = is_stdin ? stdin : fopen(file, "rb");
  if (!f) {
    fprintf(stderr, "wispctl: %s: cannot read %s: %s\n", what, file, strerror(errno));
    return WISPCTL_EXIT_FAIL;
  }
  char *buf = wisp_malloc(max + 1);
  size_t len = fread(buf, 1, max + 1, f);
  int err = ferror(f) ? errno : 0;
  if (!is_stdin) fclose(f);
  const char *name = is_stdin ? "stdin" : file;
  if (err) {
    fprintf(stderr, "wispctl: %s: cannot read %s: %s\n", what, name, strerror(err));
  } else if (len > max) {
    fprintf(stderr, "wispctl: %s: %s is larger than %zu bytes\n", what, name, max);
  } else if (memchr(buf, 0, len)) {
    fprintf(stderr, "wispctl: %s: %s is not text (it holds a NUL byte)\n", what, name);
  } else {
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    return 0;
  }
  free(buf);
  return WISPCTL_EXIT_FAIL;
}

static int cmd_apply(const args *a) {
  int rc = check_flags(a, "apply", FLAG_FILE);
  if (rc) return rc;
  if (a->npos > 1) return usage_error("apply: unexpected argument %s (the file goes after -f)", a->pos[1]);
  if (!a->file) return usage_error("apply: -f FILE is required (- for stdin)");
  char *yaml = NULL;
  size_t len = 0;
  rc = read_text("apply", a->file, POLICY_MAX, &yaml, &len);
  if (rc) return rc;
  Wisp__V1__ApplyPolicyRequest req = WISP__V1__APPLY_POLICY_REQUEST__INIT;
  req.yaml = yaml;
  req.source = (char *)(strcmp(a->file, "-") == 0 ? "<stdin>" : a->file);
  ProtobufCMessage *m = NULL;
  rc = wispctl_call(&a->o, "apply", "/wisp.v1.Admin/ApplyPolicy", &req.base,
                    &wisp__v1__apply_policy_response__descriptor, &m);
  free(yaml);
  if (rc) return rc;
  printf("applied version %s\n", ((const Wisp__V1__ApplyPolicyResponse *)m)->version);
  protobuf_c_message_free_unpacked(m, NULL);
  return 0;
}

/* ---- status ---- */

static int cmd_status(const args *a) {
  int rc = check_flags(a, "status", FLAG_JSON);
  if (rc) return rc;
  if (a->npos > 1) return usage_error("status: unexpected argument %s", a->pos[1]);
  Wisp__V1__StatusRequest req = WISP__V1__STATUS_REQUEST__INIT;
  ProtobufCMessage *m = NULL;
  rc = wispctl_call(&a->o, "status", "/wisp.v1.Admin/Status", &req.base, &wisp__v1__status_response__descriptor, &m);
  if (rc) return rc;
  wisp_err prc = wispctl_print_status(stdout, (const Wisp__V1__StatusResponse *)m, a->json, now_unix());
  protobuf_c_message_free_unpacked(m, NULL);
  if (prc != WISP_OK) {
    fprintf(stderr, "wispctl: status: cannot print the answer: %s\n", wisp_err_str(prc));
    return WISPCTL_EXIT_FAIL;
  }
  return 0;
}

/* ---- check ---- */

static int parse_min(const char *flag, const char *value, const char *dflt, int64_t *out) {
  double s = 0;
  if (wisp_duration_parse_seconds(&s, value ? value : dflt) != WISP_OK)
    return usage_error("check: %s %s: want a duration such as 1h, 30d", flag, value);
  *out = (int64_t)ceil(s);
  return 0;
}

static int cmd_check(const args *a) {
  int rc = check_flags(a, "check", FLAG_PROXY | FLAG_OUTPUT | FLAG_CA_MIN | FLAG_SVID_MIN);
  if (rc) return rc;
  if (a->npos > 1) return usage_error("check: unexpected argument %s", a->pos[1]);
  wispctl_check_opts o = {.agent = a->o, .proxy = a->proxy};
  o.agent_explicit = (a->seen & FLAG_AGENT) || getenv("WISP_AGENT");
  if (a->output && strcmp(a->output, "json") == 0) {
    o.json = true;
  } else if (a->output && strcmp(a->output, "text") != 0) {
    return usage_error("check: -o %s: want text or json", a->output);
  }
  if ((rc = parse_min("--ca-min-validity", a->ca_min, WISPCTL_CHECK_CA_MIN_DEFAULT, &o.ca_min_s)) != 0) return rc;
  if ((rc = parse_min("--svid-min-validity", a->svid_min, WISPCTL_CHECK_SVID_MIN_DEFAULT, &o.svid_min_s)) != 0)
    return rc;
  o.svid_min_given = a->svid_min != NULL;
  return wispctl_check_run(&o, now_unix());
}

/* ---- policy check ---- */

static int cmd_policy_check(const args *a) {
  int rc = check_flags(a, "policy check", FLAG_FILE);
  if (rc) return rc;
  const char *path = a->file ? a->file : (a->npos == 3 ? a->pos[2] : NULL);
  if (!path || a->npos > 3) return usage_error("policy check: want one FILE (- for stdin)");
  char *yaml = NULL;
  size_t n = 0;
  rc = read_text("policy check", path, WISP_POLICY_MAX_INPUT, &yaml, &n);
  if (rc) return rc;
  wisp_policy *p = NULL;
  char err[1024];
  if (wisp_policy_compile(&p, yaml, n, err, sizeof(err)) != WISP_OK) {
    fprintf(stderr, "wispctl: policy check: %s: %s\n", path, err);
    free(yaml);
    return WISPCTL_EXIT_FAIL;
  }
  wisp_policy_stats st;
  wisp_policy_get_stats(p, &st);
  printf("%s: ok (%zu documents: %zu ALLOW and %zu DENY policies with %zu rules, %zu PeerAuthentication)\n", path,
         st.documents, st.allow_policies, st.deny_policies, st.rules, st.peer_authentications);
  wisp_policy_free(p);
  free(yaml);
  return 0;
}

/* ---- ca rotate ---- */

static int cmd_ca_rotate(const args *a) {
  int rc = check_flags(a, "ca rotate", FLAG_FORCE);
  if (rc) return rc;
  if (a->npos != 3) return usage_error("ca rotate: want one of prepare, activate, finish");
  Wisp__V1__RotateCARequest req = WISP__V1__ROTATE_CAREQUEST__INIT;
  const char *step = a->pos[2];
  if (a->force && strcmp(step, "finish") != 0) return usage_error("ca rotate: --force is for finish only");
  if (strcmp(step, "prepare") == 0) {
    req.phase = WISP__V1__CA_ROTATION_PHASE__CA_ROTATION_PREPARE;
  } else if (strcmp(step, "activate") == 0) {
    req.phase = WISP__V1__CA_ROTATION_PHASE__CA_ROTATION_ACTIVATE;
  } else if (strcmp(step, "finish") == 0) {
    req.phase = WISP__V1__CA_ROTATION_PHASE__CA_ROTATION_FINISH;
    req.force = a->force;
  } else {
    return usage_error("ca rotate: unknown step \"%s\" (prepare, activate, finish)", step);
  }
  ProtobufCMessage *m = NULL;
  rc = wispctl_call(&a->o, "ca rotate", "/wisp.v1.Admin/RotateCA", &req.base, &wisp__v1__rotate_caresponse__descriptor,
                    &m);
  if (rc) return rc;
  const Wisp__V1__RotateCAResponse *r = (const Wisp__V1__RotateCAResponse *)m;
  printf("rotation %s: %u root(s) in the bundle, signing root sha256 %s\n", r->state, r->bundle_roots,
         r->signing_root_sha256);
  protobuf_c_message_free_unpacked(m, NULL);
  return 0;
}

/* ---- inject ---- */

/* Prints the notes, one "wispctl: inject: ..." line each. */
static void print_notes(const wisp_buf *notes) {
  if (wisp_buf_len(notes) == 0) return;
  const char *p = (const char *)wisp_buf_rptr(notes), *end = p + wisp_buf_len(notes);
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
    fprintf(stderr, "wispctl: inject: %.*s\n", (int)len, p);
    p += len + 1;
  }
}

static int inject_opts(const args *a, wispctl_inject_opts *o) {
  /* The global --agent, but only as given: WISP_AGENT names this machine's
   * agent, not what a pod dials. */
  o->agent = (a->seen & FLAG_AGENT) ? a->o.agent : WISPCTL_DEFAULT_AGENT;
  o->trust_domain = a->trust_domain ? a->trust_domain : WISPCTL_INJECT_DEFAULT_TRUST_DOMAIN;
  o->image = a->image ? a->image : WISPCTL_INJECT_DEFAULT_IMAGE;
  o->proxy_uid = WISPCTL_INJECT_DEFAULT_UID;
  o->identity = WISPCTL_INJECT_SA_TOKEN;
  if (a->identity && !strcmp(a->identity, "join-token")) {
    o->identity = WISPCTL_INJECT_JOIN_TOKEN;
  } else if (a->identity && strcmp(a->identity, "sa-token") != 0) {
    return usage_error("inject: --identity %s: want sa-token or join-token", a->identity);
  }
  if (a->proxy_uid) {
    char *end = NULL;
    errno = 0;
    o->proxy_uid = strtol(a->proxy_uid, &end, 10);
    if (errno || end == a->proxy_uid || *end)
      return usage_error("inject: --proxy-uid %s: want a numeric user id", a->proxy_uid);
  }
  return 0;
}

static int cmd_inject(const args *a) {
  int rc = check_flags(a, "inject",
                       FLAG_FILE | FLAG_PROXY_UID | FLAG_TRUST_DOMAIN | FLAG_IMAGE | FLAG_IDENTITY | FLAG_BUNDLE_FILE);
  if (rc) return rc;
  if (a->npos > 1) return usage_error("inject: unexpected argument %s (the manifest goes after -f)", a->pos[1]);
  if (!a->file) return usage_error("inject: -f FILE is required (- for stdin)");
  wispctl_inject_opts o;
  if ((rc = inject_opts(a, &o)) != 0) return rc;
  wispctl_inject_cfg cfg;
  char err[1024];
  char *bundle = NULL, *yaml = NULL;
  size_t len = 0;
  if (a->bundle_file &&
      (rc = read_text("inject --bundle-file", a->bundle_file, WISPCTL_INJECT_BUNDLE_MAX, &bundle, &len)) != 0)
    return rc;
  o.bundle_pem = bundle;
  if (wispctl_inject_prepare(&cfg, &o, err, sizeof(err)) != WISP_OK) {
    free(bundle);
    return usage_error("inject: %s", err);
  }
  rc = read_text("inject", a->file, WISPCTL_INJECT_MAX_INPUT, &yaml, &len);
  if (rc) {
    free(bundle);
    return rc;
  }
  wisp_buf out = {0}, notes = {0};
  if (wispctl_inject(&cfg, yaml, len, &out, &notes, err, sizeof(err)) != WISP_OK) {
    fprintf(stderr, "wispctl: inject: %s: %s\n", strcmp(a->file, "-") == 0 ? "stdin" : a->file, err);
    rc = WISPCTL_EXIT_FAIL;
  } else {
    print_notes(&notes);
    size_t n = wisp_buf_len(&out);
    if ((n && fwrite(wisp_buf_rptr(&out), 1, n, stdout) != n) || fflush(stdout) != 0) {
      fprintf(stderr, "wispctl: inject: cannot write to stdout: %s\n", strerror(errno));
      rc = WISPCTL_EXIT_FAIL;
    }
  }
  wisp_buf_cleanup(&out);
  wisp_buf_cleanup(&notes);
  free(yaml);
  free(bundle);
  return rc;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  args a;
  memset(&a, 0, sizeof(a));
  int rc = parse_args(&a, argc, argv);
  if (rc) return rc;
  if (a.help || (a.npos == 1 && strcmp(a.pos[0], "help") == 0)) {
    fputs(kUsage, stdout);
    return 0;
  }
  if (!a.o.agent) a.o.agent = getenv("WISP_AGENT");
  if (!a.o.agent || !*a.o.agent) a.o.agent = WISPCTL_DEFAULT_AGENT;
  a.o.timeout_s = WISPCTL_DEFAULT_TIMEOUT;
  if (a.timeout && wisp_duration_parse_seconds(&a.o.timeout_s, a.timeout) != WISP_OK)
    return usage_error("--timeout %s: want a duration such as 500ms, 10s or 1m", a.timeout);
  if (a.npos == 0) return usage_error("no command given");
  const char *cmd = a.pos[0];
  if (strcmp(cmd, "token") == 0) {
    if (a.npos < 2) return usage_error("token: missing subcommand (token create)");
    if (strcmp(a.pos[1], "create") != 0) return usage_error("unknown command \"token %s\"", a.pos[1]);
    return cmd_token_create(&a);
  }
  if (strcmp(cmd, "policy") == 0) {
    if (a.npos < 2 || strcmp(a.pos[1], "check") != 0) return usage_error("policy: want \"policy check FILE\"");
    return cmd_policy_check(&a);
  }
  if (strcmp(cmd, "ca") == 0) {
    if (a.npos < 2 || strcmp(a.pos[1], "rotate") != 0) return usage_error("ca: want \"ca rotate STEP\"");
    return cmd_ca_rotate(&a);
  }
  if (strcmp(cmd, "apply") == 0) return cmd_apply(&a);
  if (strcmp(cmd, "status") == 0) return cmd_status(&a);
  if (strcmp(cmd, "inject") == 0) return cmd_inject(&a);
  if (strcmp(cmd, "check") == 0) return cmd_check(&a);
  return usage_error("unknown command \"%s\"", cmd);
}
