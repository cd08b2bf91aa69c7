/* wisp-agent: the CA and policy source. See README.md. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/agent/wisp_agent.h"
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
    "  --log-level debug|info|warn|error\n"
    "Each flag can also be set as WISP_AGENT_<FLAG> (e.g. WISP_AGENT_STATE_DIR).\n";

typedef struct {
  const char *name;
  const char **slot;
} flag;

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
  flag flags[] = {{"state-dir", &state_dir}, {"listen", &listen},        {"listen-tls", &listen_tls},
                  {"ca-cert", &ca_cert},     {"ca-key", &ca_key},        {"trust-domain", &td},
                  {"svid-ttl", &ttl},        {"policy-dir", &policy_dir}, {"log-level", &level}};
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
                           .ca_key = ca_key, .trust_domain = td, .policy_dir = policy_dir};
  if (strncmp(listen, "unix:", 5) != 0) {
    fprintf(stderr, "wisp-agent: --listen %s: expected unix:PATH (use --listen-tls for TCP)\n", listen);
    return 2;
  }
  cfg.listen_unix = listen + 5;
  while (cfg.listen_unix[0] == '/' && cfg.listen_unix[1] == '/') cfg.listen_unix++; /* unix:///p */
  if (wisp_duration_parse(&cfg.svid_ttl, ttl) != WISP_OK) {
    fprintf(stderr, "wisp-agent: --svid-ttl %s: expected a duration such as 24h, 30m or 5s\n", ttl);
    return 2;
  }
  if (!ca_cert != !ca_key) {
    fprintf(stderr, "wisp-agent: --ca-cert and --ca-key go together\n");
    return 2;
  }
  if (!strcmp(level, "debug")) wisp_log_set_level(WISP_LOG_DEBUG);
  if (!strcmp(level, "warn")) wisp_log_set_level(WISP_LOG_WARN);
  if (!strcmp(level, "error")) wisp_log_set_level(WISP_LOG_ERROR);

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
