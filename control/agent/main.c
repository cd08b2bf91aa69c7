/* wisp-agent: the CA and policy source. See README.md. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/agent/wisp_agent.h"
#include "control/agent/wisp_kube.h"
#include "control/agent/wisp_sa.h"
#include "control/wispctl/inject.h"
#include "lib/wisp_accept.h"
#include "lib/wisp_log.h"
#include "lib/wisp_time.h"

static const char kUsage[] =
    "usage: wisp-agent [flags]\n"
    "  --state-dir DIR        CA, join tokens and policy, written atomically (default /var/lib/wisp)\n"
    "  --listen unix:PATH     gRPC API on a Unix socket (default unix:/run/wisp/agent.sock)\n"
    "  --listen-tls HOST:PORT gRPC API over TLS for proxies on other hosts (default: off)\n"
    "  --ca-cert FILE --ca-key FILE  sign with this CA (a root, or an intermediate followed by its\n"
    "                         chain); default: a root generated into --state-dir on first start\n"
    "  --trust-domain TD      trust domain of a generated root (default cluster.local)\n"
    "  --svid-ttl DURATION    lifetime of issued SVIDs, e.g. 24h, 30m, 5s (default 24h)\n"
    "  --policy-dir DIR       watch DIR/*.yaml (a mounted ConfigMap) and push it as policy\n"
    "  --max-connections N    connections on all listeners together; more are closed at once\n"
    "                         (default 4096; the open-files limit is raised to fit)\n"
    "  --max-connections-per-source N  of those, from one uid on the Unix socket or one IP address\n"
    "                         over TCP (default 1024: a node's proxies share a uid)\n"
    "  --idle-timeout DURATION  close a connection that carries no call for this long (default 60s)\n"
    "  --max-conn-buffer SIZE bytes held per connection: requests being received and responses\n"
    "                         its peer has not read; a call passing it ends RESOURCE_EXHAUSTED\n"
    "                         (default 16MiB; suffixes KiB, MiB, GiB)\n"
    "  --max-watchers N       Config.Watch streams in all (default 4096)\n"
    "  --max-watchers-per-caller N  Watch streams per SPIFFE ID from one uid on the Unix socket or\n"
    "                         one IP address over TCP (default 8)\n"
    "  --max-proxies N        proxy identities remembered for status and Watch (default 4096);\n"
    "                         when full, the one idle longest (no Watch open, not seen for\n"
    "                         --proxy-idle) is forgotten to make room, else new ones are refused\n"
    "  --proxy-idle DURATION  see --max-proxies (default 10m)\n"
    "  --sa-jwks FILE         Kubernetes service-account issuer keys (kubectl get --raw /openid/v1/jwks),\n"
    "                         re-read when it changes: Sign then takes service-account tokens\n"
    "  --sa-issuer URL        the iss of those tokens (default: the API server's, in a cluster)\n"
    "  --sa-token-max-lifetime DURATION  refuse service-account tokens that live longer (exp - iat;\n"
    "                         default 24h, at least 10m: Kubernetes' shortest projected token)\n"
    "  --kube-api auto|off|https://IP:PORT  fetch the issuer keys from the API server with the pod's\n"
    "                         own token (default auto: when in a cluster and no --sa-jwks)\n"
    "  --kube-sa-dir DIR      the pod's token and ca.crt (default " WISP_KUBE_SA_DIR ")\n"
    "  --webhook HOST:PORT    serve the admission webhook (HTTPS, POST /mutate): pods get what\n"
    "                         wispctl inject gives them (default: off)\n"
    "  --webhook-name DNS     the webhook Service's name, in its certificate from the agent's CA\n"
    "                         (default " WISP_INJECTOR_DEFAULT_NAME ")\n"
    "  --webhook-max-body SIZE  largest AdmissionReview taken (default 1MiB; 413 past it)\n"
    "  --webhook-max-connections N  (default 64)\n"
    "  --webhook-max-queue SIZE  review bytes waiting for the webhook's worker, all callers (default 16MiB; 503 past it)\n"
    "  --webhook-max-queue-per-source SIZE  of them from one IP address (default 4MiB; 429 past it)\n"
    "  --inject-agent URL     what injected proxies dial: https://IP:PORT (the agent Service's\n"
    "                         cluster IP) or unix:///PATH; required with --webhook\n"
    "  --inject-image IMAGE   (default " WISPCTL_INJECT_DEFAULT_IMAGE ")\n"
    "  --inject-proxy-uid UID (default 1337)\n"
    "  --inject-identity sa-token|join-token  how injected proxies bootstrap (default sa-token)\n"
    "  --webhook-config NAME  in a cluster, keep this MutatingWebhookConfiguration's caBundle set\n"
    "                         to the agent's bundle (default " WISP_INJECTOR_DEFAULT_CONFIG "; \"\" for none)\n"
    "  --log-level debug|info|warn|error\n"
    "Each flag can also be set as WISP_AGENT_<FLAG> (e.g. WISP_AGENT_STATE_DIR).\n";

typedef struct {
  const char *name;
  const char **slot;
} flag;

/* File descriptors kept besides connections: listeners, stdio, state files. */
#define FD_RESERVE 64

/* Parses a positive count (at most |max|). */
static bool parse_count(size_t *out, const char *s, size_t max) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || *s == '-' || v == 0 || v > max) return false;
  *out = (size_t)v;
  return true;
}

/* Parses a byte size: digits and an optional unit (B, KiB, MiB, GiB; K, M,
 * G mean the same), at least 1 KiB. */
static bool parse_size(size_t *out, const char *s) {
  static const struct {
    const char *unit;
    unsigned shift;
  } kUnits[] = {{"", 0}, {"B", 0}, {"K", 10}, {"KiB", 10}, {"M", 20}, {"MiB", 20}, {"G", 30}, {"GiB", 30}};
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *s == '-') return false;
  for (size_t i = 0; i < sizeof(kUnits) / sizeof(kUnits[0]); i++) {
    if (strcmp(end, kUnits[i].unit) != 0) continue;
    if (v > (SIZE_MAX >> 1) >> kUnits[i].shift || (v << kUnits[i].shift) < 1024) return false;
    *out = (size_t)(v << kUnits[i].shift);
    return true;
  }
  return false;
}

/* Raises the open-files limit to fit |*max_connections|; if the hard limit
 * is lower, serves fewer connections and says so. */
static void fit_fd_limit(size_t *max_connections) {
  uint64_t want = (uint64_t)*max_connections + FD_RESERVE;
  uint64_t have = wisp_accept_raise_fd_limit(want);
  if (have == 0 || have >= want) return;
  size_t fit = have > 2 * FD_RESERVE ? (size_t)have - FD_RESERVE : FD_RESERVE;
  WISP_WARN("--max-connections %zu needs %llu open files, the limit is %llu (ulimit -Hn): serving at most %zu",
            *max_connections, (unsigned long long)want, (unsigned long long)have, fit);
  *max_connections = fit;
}

static int on_signal_stop(struct ev_loop *loop) {
  ev_break(loop, EVBREAK_ALL);
  return 0;
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents) { (void)on_signal_stop(loop); }

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  const char *state_dir = "/var/lib/wisp", *listen = "unix:/run/wisp/agent.sock", *listen_tls = NULL;
  const char *ca_cert = NULL, *ca_key = NULL, *td = "cluster.local", *ttl = "24h", *policy_dir = NULL;
  const char *level = "info";
  const char *max_conns = "4096", *max_buffer = "16MiB", *max_watchers = "4096", *max_per_caller = "8";
  const char *max_proxies = "4096", *proxy_idle = "10m";
  const char *max_per_source = "1024", *idle_timeout = "60s";
  const char *sa_jwks = NULL, *sa_issuer = NULL, *kube_api = "auto", *kube_sa_dir = WISP_KUBE_SA_DIR;
  const char *sa_max_lifetime = "24h";
  const char *webhook = NULL, *webhook_name = WISP_INJECTOR_DEFAULT_NAME, *webhook_body = "1MiB";
  const char *webhook_queue = "16MiB", *webhook_queue_src = "4MiB";
  const char *webhook_conns = "64", *inject_agent = NULL, *inject_image = WISPCTL_INJECT_DEFAULT_IMAGE;
  const char *inject_uid = "1337", *inject_identity = "sa-token", *webhook_config = WISP_INJECTOR_DEFAULT_CONFIG;
  flag flags[] = {{"state-dir", &state_dir},
                  {"listen", &listen},
                  {"listen-tls", &listen_tls},
                  {"ca-cert", &ca_cert},
                  {"ca-key", &ca_key},
                  {"trust-domain", &td},
                  {"svid-ttl", &ttl},
                  {"policy-dir", &policy_dir},
                  {"log-level", &level},
                  {"max-connections", &max_conns},
                  {"max-connections-per-source", &max_per_source},
                  {"idle-timeout", &idle_timeout},
                  {"max-conn-buffer", &max_buffer},
                  {"max-watchers", &max_watchers},
                  {"max-watchers-per-caller", &max_per_caller},
                  {"max-proxies", &max_proxies},
                  {"proxy-idle", &proxy_idle},
                  {"sa-jwks", &sa_jwks},
                  {"sa-issuer", &sa_issuer},
                  {"sa-token-max-lifetime", &sa_max_lifetime},
                  {"kube-api", &kube_api},
                  {"kube-sa-dir", &kube_sa_dir},
                  {"webhook", &webhook},
                  {"webhook-name", &webhook_name},
                  {"webhook-max-body", &webhook_body},
                  {"webhook-max-connections", &webhook_conns},
                  {"webhook-max-queue", &webhook_queue},
                  {"webhook-max-queue-per-source", &webhook_queue_src},
                  {"inject-agent", &inject_agent},
                  {"inject-image", &inject_image},
                  {"inject-proxy-uid", &inject_uid},
                  {"inject-identity", &inject_identity},
                  {"webhook-config", &webhook_config}};
  enum { NFLAGS = sizeof(flags) / sizeof(flags[0]) };
  /* Environment first, flags override. */
  for (int i = 0; i < NFLAGS; i++) {
    char env[64] = "WISP_AGENT_";
    size_t o = strlen(env);
    for (const char *p = flags[i].name; *p && o + 1 < sizeof(env); p++) env[o++] = *p == '-' ? '_' : (char)(*p & ~0x20);
    env[o] = '\0';
    const char *v = getenv(env);
    if (v && *v) *flags[i].slot = v;
  }
  struct option opts[NFLAGS + 2];
  for (int i = 0; i < NFLAGS; i++) opts[i] = (struct option){flags[i].name, required_argument, NULL, i};
  opts[NFLAGS] = (struct option){"help", no_argument, NULL, 'h'};
  memset(&opts[NFLAGS + 1], 0, sizeof(opts[0]));
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (c == 'h') {
      fputs(kUsage, stdout);
      return 0;
    }
    if (c < 0 || c >= NFLAGS) {
      fprintf(stderr, "wisp-agent: unknown or incomplete flag '%s'\n%s", argv[optind - 1], kUsage);
      return 2;
    }
    *flags[c].slot = optarg;
  }
  if (optind < argc) {
    fprintf(stderr, "wisp-agent: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  wisp_agent_config cfg = {.state_dir = state_dir, .listen_tls = listen_tls, .ca_cert = ca_cert,
                           .ca_key = ca_key, .trust_domain = td, .policy_dir = policy_dir,
                           .sa_jwks = sa_jwks, .sa_issuer = sa_issuer, .kube_api = kube_api,
                           .kube_sa_dir = kube_sa_dir};
  if (strncmp(listen, "unix:", 5) != 0) {
    fprintf(stderr, "wisp-agent: --listen %s: expected unix:PATH (use --listen-tls for TCP)\n", listen);
    return 2;
  }
  cfg.listen_unix = listen + 5;
  while (cfg.listen_unix[0] == '/' && cfg.listen_unix[1] == '/') cfg.listen_unix++; /* unix:///p */
  /* Below Kubernetes' shortest projected token no token would pass, not
   * even the one the injection mounts. */
  _Static_assert(WISPCTL_INJECT_SA_EXPIRY >= WISP_SA_PROJECTED_MIN &&
                     WISPCTL_INJECT_SA_EXPIRY <= WISP_SA_MAX_LIFETIME_DEFAULT,
                 "the injected token's expirationSeconds must pass --sa-token-max-lifetime's default");
  if (wisp_duration_parse(&cfg.sa_max_lifetime, sa_max_lifetime) != WISP_OK ||
      cfg.sa_max_lifetime < WISPCTL_INJECT_SA_EXPIRY) {
    fprintf(stderr, "wisp-agent: --sa-token-max-lifetime %s: expected a duration of at least %ds (the "
            "expirationSeconds of the token wispctl inject and the webhook mount, and Kubernetes' shortest), "
            "such as 24h or 1h\n", sa_max_lifetime, WISPCTL_INJECT_SA_EXPIRY);
    return 2;
  }
  if (wisp_duration_parse(&cfg.svid_ttl, ttl) != WISP_OK) {
    fprintf(stderr, "wisp-agent: --svid-ttl %s: expected a duration such as 24h, 30m or 5s\n", ttl);
    return 2;
  }
  if (!parse_count(&cfg.max_connections, max_conns, 1u << 20)) {
    fprintf(stderr, "wisp-agent: --max-connections %s: expected a number from 1 to 1048576\n", max_conns);
    return 2;
  }
  if (!parse_count(&cfg.max_connections_per_source, max_per_source, 1u << 20)) {
    fprintf(stderr, "wisp-agent: --max-connections-per-source %s: expected a number from 1 to 1048576\n",
            max_per_source);
    return 2;
  }
  if (wisp_duration_parse_seconds(&cfg.idle_timeout, idle_timeout) != WISP_OK) {
    fprintf(stderr, "wisp-agent: --idle-timeout %s: expected a duration such as 60s or 5m\n", idle_timeout);
    return 2;
  }
  if (!parse_size(&cfg.max_conn_buffer, max_buffer)) {
    fprintf(stderr, "wisp-agent: --max-conn-buffer %s: expected a size of at least 1KiB, e.g. 16MiB\n", max_buffer);
    return 2;
  }
  if (!parse_count(&cfg.max_watchers, max_watchers, 1u << 20)) {
    fprintf(stderr, "wisp-agent: --max-watchers %s: expected a number from 1 to 1048576\n", max_watchers);
    return 2;
  }
  if (!parse_count(&cfg.max_proxies, max_proxies, 1u << 20)) {
    fprintf(stderr, "wisp-agent: --max-proxies %s: expected a number from 1 to 1048576\n", max_proxies);
    return 2;
  }
  if (wisp_duration_parse(&cfg.proxy_idle, proxy_idle) != WISP_OK) {
    fprintf(stderr, "wisp-agent: --proxy-idle %s: expected a duration such as 10m or 30s\n", proxy_idle);
    return 2;
  }
  if (!parse_count(&cfg.max_watchers_per_caller, max_per_caller, 1u << 20)) {
    fprintf(stderr, "wisp-agent: --max-watchers-per-caller %s: expected a number from 1 to 1048576\n", max_per_caller);
    return 2;
  }
  size_t uid = 0;
  cfg.webhook = (wisp_injector_config){.listen = webhook, .name = webhook_name, .agent = inject_agent,
                                       .image = inject_image, .identity = inject_identity,
                                       .config_name = webhook_config, .kube_api = kube_api,
                                       .kube_sa_dir = kube_sa_dir};
  if (!parse_size(&cfg.webhook.max_body, webhook_body)) {
    fprintf(stderr, "wisp-agent: --webhook-max-body %s: expected a size such as 1MiB\n", webhook_body);
    return 2;
  }
  if (!parse_count(&cfg.webhook.max_connections, webhook_conns, 1u << 16)) {
    fprintf(stderr, "wisp-agent: --webhook-max-connections %s: expected a number from 1 to 65536\n", webhook_conns);
    return 2;
  }
  if (!parse_size(&cfg.webhook.max_queue, webhook_queue) ||
      !parse_size(&cfg.webhook.max_queue_per_source, webhook_queue_src) ||
      cfg.webhook.max_queue_per_source < cfg.webhook.max_body || cfg.webhook.max_queue < cfg.webhook.max_queue_per_source) {
    fprintf(stderr,
            "wisp-agent: --webhook-max-queue %s, --webhook-max-queue-per-source %s: expected sizes with "
            "--webhook-max-body <= per source <= --webhook-max-queue\n",
            webhook_queue, webhook_queue_src);
    return 2;
  }
  if (!parse_count(&uid, inject_uid, 2147483647u)) {
    fprintf(stderr, "wisp-agent: --inject-proxy-uid %s: expected a user id\n", inject_uid);
    return 2;
  }
  cfg.webhook.proxy_uid = (long)uid;
  if (!ca_cert != !ca_key) {
    fprintf(stderr, "wisp-agent: --ca-cert and --ca-key go together\n");
    return 2;
  }
  if (!strcmp(level, "debug")) wisp_log_set_level(WISP_LOG_DEBUG);
  if (!strcmp(level, "warn")) wisp_log_set_level(WISP_LOG_WARN);
  if (!strcmp(level, "error")) wisp_log_set_level(WISP_LOG_ERROR);

  fit_fd_limit(&cfg.max_connections);
  struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
  ev_signal sigterm, sigint;
  ev_signal_init(&sigterm, on_signal, SIGTERM);
  ev_signal_init(&sigint, on_signal, SIGINT);
  ev_signal_start(loop, &sigterm);
  ev_signal_start(loop, &sigint);
  wisp_agent *agent = NULL;
  char err[1024];
  int status = 0;
  if (wisp_agent_new(&agent, loop, &cfg, err, sizeof(err)) != WISP_OK) {
    WISP_ERROR("cannot start: %s", err);
    status = 1;
  } else {
    ev_run(loop, 0);
    WISP_INFO("stopped");
  }
  wisp_agent_free(agent);
  ev_loop_destroy(loop);
  return status;
}
