/* wisp-agent: the CA and policy source. See README.md. */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/agent/wisp_agent.h"
#include "control/agent/wisp_kube.h"
#include "control/agent/wisp_sa.h"
#include "control/wispctl/inject.h"
#include "lib/wisp_accept.h"
#include "lib/wisp_flags.h"
#include "lib/wisp_log.h"

/* Printed by --help and after an unknown flag (no final newline). */
#define USAGE                                                                                                             \
  "usage: wisp-agent [flags]\n"                                                                                           \
  "  --state-dir DIR        CA, join tokens and policy, written atomically (default /var/lib/wisp)\n"                     \
  "  --listen unix:PATH     gRPC API on a Unix socket (default unix:/run/wisp/agent.sock)\n"                              \
  "  --listen-tls HOST:PORT gRPC API over TLS for proxies on other hosts (default: off)\n"                                \
  "  --ca-cert FILE --ca-key FILE  sign with this CA (a root, or an intermediate followed by its\n"                       \
  "                         chain); default: a root generated into --state-dir on first start\n"                          \
  "  --trust-domain TD      trust domain of a generated root (default cluster.local)\n"                                   \
  "  --svid-ttl DURATION    lifetime of issued SVIDs, e.g. 24h, 30m, 5s (default 24h)\n"                                  \
  "  --policy-dir DIR       watch DIR/*.yaml (a mounted ConfigMap) and push it as policy\n"                               \
  "  --max-connections N    connections on all listeners together; more are closed at once\n"                             \
  "                         (default 4096; the open-files limit is raised to fit)\n"                                      \
  "  --max-connections-per-source N  of those, from one uid on the Unix socket or one IP address\n"                       \
  "                         over TCP (default 1024: a node's proxies share a uid)\n"                                      \
  "  --idle-timeout DURATION  close a connection that carries no call for this long (default 60s)\n"                      \
  "  --max-conn-buffer SIZE bytes held per connection: requests being received and responses\n"                           \
  "                         its peer has not read; a call passing it ends RESOURCE_EXHAUSTED\n"                           \
  "                         (default 16MiB; suffixes KiB, MiB, GiB)\n"                                                    \
  "  --max-watchers N       Config.Watch streams in all (default 4096)\n"                                                 \
  "  --max-watchers-per-caller N  Watch streams per SPIFFE ID from one uid on the Unix socket or\n"                       \
  "                         one IP address over TCP (default 8)\n"                                                        \
  "  --max-proxies N        proxy identities remembered for status and Watch (default 4096);\n"                           \
  "                         when full, the one idle longest (no Watch open, not seen for\n"                               \
  "                         --proxy-idle) is forgotten to make room, else new ones are refused\n"                         \
  "  --proxy-idle DURATION  see --max-proxies (default 10m)\n"                                                            \
  "  --sa-jwks FILE         Kubernetes service-account issuer keys (kubectl get --raw /openid/v1/jwks),\n"                \
  "                         re-read when it changes: Sign then takes service-account tokens\n"                            \
  "  --sa-issuer URL        the iss of those tokens (default: the API server's, in a cluster)\n"                          \
  "  --sa-token-max-lifetime DURATION  refuse service-account tokens that live longer (exp - iat;\n"                      \
  "                         default 24h, at least 10m: Kubernetes' shortest projected token)\n"                           \
  "  --kube-api auto|off|https://IP:PORT  fetch the issuer keys from the API server with the pod's\n"                     \
  "                         own token (default auto: when in a cluster and no --sa-jwks)\n"                               \
  "  --kube-sa-dir DIR      the pod's token and ca.crt (default " WISP_KUBE_SA_DIR                                        \
  ")\n"                                                                                                                   \
  "  --webhook HOST:PORT    serve the admission webhook (HTTPS, POST /mutate): pods get what\n"                           \
  "                         wispctl inject gives them (default: off)\n"                                                   \
  "  --webhook-name DNS     the webhook Service's name, in its certificate from the agent's CA\n"                         \
  "                         (default " WISP_INJECTOR_DEFAULT_NAME                                                         \
  ")\n"                                                                                                                   \
  "  --webhook-max-body SIZE  largest AdmissionReview taken (default 1MiB; 413 past it)\n"                                \
  "  --webhook-max-connections N  (default 64)\n"                                                                         \
  "  --webhook-max-queue SIZE  review bytes waiting for the webhook's worker, all callers (default 16MiB; 503 past it)\n" \
  "  --webhook-max-queue-per-source SIZE  of them from one IP address (default 4MiB; 429 past it)\n"                      \
  "  --inject-agent URL     what injected proxies dial: https://IP:PORT (the agent Service's\n"                           \
  "                         cluster IP) or unix:///PATH; required with --webhook\n"                                       \
  "  --inject-image IMAGE   (default " WISPCTL_INJECT_DEFAULT_IMAGE                                                       \
  ")\n"                                                                                                                   \
  "  --inject-proxy-uid UID (default 1337)\n"                                                                             \
  "  --inject-identity sa-token|join-token  how injected proxies bootstrap (default sa-token)\n"                          \
  "  --webhook-config NAME  in a cluster, keep this MutatingWebhookConfiguration's caBundle set\n"                        \
  "                         to the agent's bundle (default " WISP_INJECTOR_DEFAULT_CONFIG                                 \
  "; \"\" for none)\n"                                                                                                    \
  "  --log-level debug|info|warn|error\n"                                                                                 \
  "Each flag can also be set as WISP_AGENT_<FLAG> (e.g. WISP_AGENT_STATE_DIR)."

/* File descriptors kept besides connections: listeners, stdio, state files. */
#define FD_RESERVE 64
#define COUNT_MAX (1 << 20)
#define WISP_KIB 1024 /* the smallest size flag */
#define STRINGIFY(x) #x
#define XSTR(x) STRINGIFY(x)

/* The flags, as lib/wisp_flags.h fills them; strings owned. */
typedef struct {
  char *state_dir, *listen, *listen_tls, *ca_cert, *ca_key, *trust_domain, *policy_dir, *log_level;
  char *sa_jwks, *sa_issuer, *kube_api, *kube_sa_dir;
  char *webhook, *webhook_name, *inject_agent, *inject_image, *inject_identity, *webhook_config;
  char *webhook_max_queue, *webhook_max_queue_per_source; /* sizes, checked together in check_flags */
  int64_t svid_ttl, proxy_idle, sa_max_lifetime;
  double idle_timeout;
  size_t max_connections, max_connections_per_source, max_conn_buffer, max_watchers, max_watchers_per_caller;
  size_t max_proxies, webhook_max_body, webhook_max_connections, webhook_queue, webhook_queue_per_source;
  int inject_proxy_uid;
  bool help;
} agent_flags;

#define OFF(f) offsetof(agent_flags, f)
#define ROW_STR(n, f, d) \
  { .name = n, .kind = WISP_FLAG_STR, .off = OFF(f), .dflt = d }
#define ROW_COUNT(n, f, d, hi, hi_text)                                                \
  {                                                                                    \
    .name = n, .kind = WISP_FLAG_COUNT, .off = OFF(f), .dflt = d, .min = 1, .max = hi, \
    .expect = "a number from 1 to " hi_text                                            \
  }
#define ROW_DURATION(n, kind_, f, d, text) \
  { .name = n, .kind = kind_, .off = OFF(f), .dflt = d, .expect = text }
#define ROW_SIZE(n, f, d, text) \
  { .name = n, .kind = WISP_FLAG_SIZE, .off = OFF(f), .dflt = d, .min = WISP_KIB, .max = SIZE_MAX >> 1, .expect = text }

/* Below Kubernetes' shortest projected token no token would pass, not
 * even the one the injection mounts. */
_Static_assert(WISPCTL_INJECT_SA_EXPIRY >= WISP_SA_PROJECTED_MIN &&
                   WISPCTL_INJECT_SA_EXPIRY <= WISP_SA_MAX_LIFETIME_DEFAULT,
               "the injected token's expirationSeconds must pass --sa-token-max-lifetime's default");

static const wisp_flag kFlags[] = {
    ROW_STR("state-dir", state_dir, "/var/lib/wisp"),
    ROW_STR("listen", listen, "unix:/run/wisp/agent.sock"),
    ROW_STR("listen-tls", listen_tls, NULL),
    ROW_STR("ca-cert", ca_cert, NULL),
    ROW_STR("ca-key", ca_key, NULL),
    ROW_STR("trust-domain", trust_domain, "cluster.local"),
    ROW_DURATION("svid-ttl", WISP_FLAG_DURATION, svid_ttl, "24h", "a duration such as 24h, 30m or 5s"),
    ROW_STR("policy-dir", policy_dir, NULL),
    ROW_STR("log-level", log_level, "info"),
    ROW_COUNT("max-connections", max_connections, "4096", COUNT_MAX, "1048576"),
    ROW_COUNT("max-connections-per-source", max_connections_per_source, "1024", COUNT_MAX, "1048576"),
    ROW_DURATION("idle-timeout", WISP_FLAG_DURATION_F, idle_timeout, "60s", "a duration such as 60s or 5m"),
    ROW_SIZE("max-conn-buffer", max_conn_buffer, "16MiB", "a size of at least 1KiB, e.g. 16MiB"),
    ROW_COUNT("max-watchers", max_watchers, "4096", COUNT_MAX, "1048576"),
    ROW_COUNT("max-watchers-per-caller", max_watchers_per_caller, "8", COUNT_MAX, "1048576"),
    ROW_COUNT("max-proxies", max_proxies, "4096", COUNT_MAX, "1048576"),
    ROW_DURATION("proxy-idle", WISP_FLAG_DURATION, proxy_idle, "10m", "a duration such as 10m or 30s"),
    ROW_STR("sa-jwks", sa_jwks, NULL),
    ROW_STR("sa-issuer", sa_issuer, NULL),
    {.name = "sa-token-max-lifetime",
     .kind = WISP_FLAG_DURATION,
     .off = OFF(sa_max_lifetime),
     .dflt = "24h",
     .min = WISPCTL_INJECT_SA_EXPIRY,
     .expect = "a duration of at least " XSTR(
         WISPCTL_INJECT_SA_EXPIRY) "s (the expirationSeconds of the token "
                                   "wispctl inject and the webhook mount, and Kubernetes' shortest), such as 24h or 1h"},
    ROW_STR("kube-api", kube_api, "auto"),
    ROW_STR("kube-sa-dir", kube_sa_dir, WISP_KUBE_SA_DIR),
    ROW_STR("webhook", webhook, NULL),
    ROW_STR("webhook-name", webhook_name, WISP_INJECTOR_DEFAULT_NAME),
    ROW_SIZE("webhook-max-body", webhook_max_body, "1MiB", "a size such as 1MiB"),
    ROW_COUNT("webhook-max-connections", webhook_max_connections, "64", 1 << 16, "65536"),
    ROW_STR("webhook-max-queue", webhook_max_queue, "16MiB"),
    ROW_STR("webhook-max-queue-per-source", webhook_max_queue_per_source, "4MiB"),
    ROW_STR("inject-agent", inject_agent, NULL),
    ROW_STR("inject-image", inject_image, WISPCTL_INJECT_DEFAULT_IMAGE),
    {.name = "inject-proxy-uid",
     .kind = WISP_FLAG_INT,
     .off = OFF(inject_proxy_uid),
     .dflt = "1337",
     .min = 1,
     .max = 2147483647,
     .expect = "a user id"},
    ROW_STR("inject-identity", inject_identity, "sa-token"),
    ROW_STR("webhook-config", webhook_config, WISP_INJECTOR_DEFAULT_CONFIG),
    {.name = "help", .kind = WISP_FLAG_HELP, .off = OFF(help), .no_env = true},
};

static const wisp_flags_table kTable = {
    .flags = kFlags,
    .nflags = sizeof(kFlags) / sizeof(kFlags[0]),
    .env_prefix = "WISP_AGENT_",
    .unknown_hint = "\n" USAGE,
    .extra_hint = "",
    .help_stops = true,
};

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

/* Checks what the table cannot: --listen's scheme, the webhook queue
 * bounds (one message for the pair and their order), the CA pair. */
static bool check_flags(agent_flags *f, char *err, size_t err_len) {
  if (strncmp(f->listen, "unix:", 5) != 0) {
    snprintf(err, err_len, "--listen %s: expected unix:PATH (use --listen-tls for TCP)", f->listen);
  } else if (wisp_flags_parse_size(&f->webhook_queue, f->webhook_max_queue, WISP_KIB, SIZE_MAX >> 1) != WISP_OK ||
             wisp_flags_parse_size(&f->webhook_queue_per_source, f->webhook_max_queue_per_source, WISP_KIB,
                                   SIZE_MAX >> 1) != WISP_OK ||
             f->webhook_queue_per_source < f->webhook_max_body || f->webhook_queue < f->webhook_queue_per_source) {
    snprintf(err, err_len,
             "--webhook-max-queue %s, --webhook-max-queue-per-source %s: expected sizes with "
             "--webhook-max-body <= per source <= --webhook-max-queue",
             f->webhook_max_queue, f->webhook_max_queue_per_source);
  } else if (!f->ca_cert != !f->ca_key) {
    snprintf(err, err_len, "--ca-cert and --ca-key go together");
  } else {
    return true;
  }
  return false;
}

/* The agent's config from the flags; strings borrowed from |f|. */
static wisp_agent_config agent_config(const agent_flags *f) {
  wisp_agent_config cfg = {.state_dir = f->state_dir,
                           .listen_tls = f->listen_tls,
                           .ca_cert = f->ca_cert,
                           .ca_key = f->ca_key,
                           .trust_domain = f->trust_domain,
                           .policy_dir = f->policy_dir,
                           .sa_jwks = f->sa_jwks,
                           .sa_issuer = f->sa_issuer,
                           .kube_api = f->kube_api,
                           .kube_sa_dir = f->kube_sa_dir,
                           .svid_ttl = f->svid_ttl,
                           .sa_max_lifetime = f->sa_max_lifetime,
                           .max_connections = f->max_connections,
                           .max_connections_per_source = f->max_connections_per_source,
                           .idle_timeout = f->idle_timeout,
                           .max_conn_buffer = f->max_conn_buffer,
                           .max_watchers = f->max_watchers,
                           .max_watchers_per_caller = f->max_watchers_per_caller,
                           .max_proxies = f->max_proxies,
                           .proxy_idle = f->proxy_idle};
  cfg.listen_unix = f->listen + 5;
  while (cfg.listen_unix[0] == '/' && cfg.listen_unix[1] == '/') cfg.listen_unix++; /* unix:///p */
  cfg.webhook = (wisp_injector_config){.listen = f->webhook,
                                       .name = f->webhook_name,
                                       .agent = f->inject_agent,
                                       .image = f->inject_image,
                                       .identity = f->inject_identity,
                                       .config_name = f->webhook_config,
                                       .kube_api = f->kube_api,
                                       .kube_sa_dir = f->kube_sa_dir,
                                       .max_body = f->webhook_max_body,
                                       .max_connections = f->webhook_max_connections,
                                       .max_queue = f->webhook_queue,
                                       .max_queue_per_source = f->webhook_queue_per_source,
                                       .proxy_uid = f->inject_proxy_uid};
  return cfg;
}

static int run(wisp_agent_config *cfg) {
  fit_fd_limit(&cfg->max_connections);
  struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
  ev_signal sigterm, sigint;
  ev_signal_init(&sigterm, on_signal, SIGTERM);
  ev_signal_init(&sigint, on_signal, SIGINT);
  ev_signal_start(loop, &sigterm);
  ev_signal_start(loop, &sigint);
  wisp_agent *agent = NULL;
  char err[1024];
  int status = 0;
  if (wisp_agent_new(&agent, loop, cfg, err, sizeof(err)) != WISP_OK) {
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

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  agent_flags f = {0};
  char err[8192]; /* an unknown flag's message holds the usage */
  int status = 2;
  bool ok = wisp_flags_parse(&kTable, &f, argc, argv, err, sizeof(err)) == WISP_OK;
  if (!ok || (!f.help && !check_flags(&f, err, sizeof(err)))) {
    fprintf(stderr, "wisp-agent: %s\n", err);
  } else if (f.help) {
    puts(USAGE);
    status = 0;
  } else {
    if (!strcmp(f.log_level, "debug")) wisp_log_set_level(WISP_LOG_DEBUG);
    if (!strcmp(f.log_level, "warn")) wisp_log_set_level(WISP_LOG_WARN);
    if (!strcmp(f.log_level, "error")) wisp_log_set_level(WISP_LOG_ERROR);
    wisp_agent_config cfg = agent_config(&f);
    status = run(&cfg);
  }
  wisp_flags_cleanup(&kTable, &f);
  return status;
}
