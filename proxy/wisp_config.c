#include "proxy/wisp_config.h"

#include <ctype.h>
#include <stdarg.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_mem.h"
#include "lib/wisp_net.h"
#include "lib/wisp_spiffe.h"

/* OPT_LIMIT: a count limit, 0 (no limit) to WISP_LIMIT_MAX. */
/* OPT_SIZE: bytes, with an optional binary suffix K, M or G (size_t). */
typedef enum { OPT_STR, OPT_SECONDS, OPT_INT, OPT_LIMIT, OPT_SIZE, OPT_BOOL, OPT_ROUTE, OPT_HELP } opt_kind;
#define WISP_LIMIT_MAX 10000000
#define WISP_METRICS_CAP_MAX 1000000 /* --metrics-max-peers/-series: about 250 MB of tables at most */

typedef struct {
  const char *name;
  opt_kind kind;
  size_t off;          /* offset in wisp_config */
  const char *dflt;    /* default as text, NULL: unset */
} opt_def;

#define OFF(f) offsetof(wisp_config, f)

static const opt_def kOpts[] = {
    {"cert", OPT_STR, OFF(cert), NULL},
    {"key", OPT_STR, OFF(key), NULL},
    {"bundle", OPT_STR, OFF(bundle), NULL},
    {"route", OPT_ROUTE, 0, NULL},
    {"inbound", OPT_STR, OFF(inbound), "0.0.0.0:15006"},
    {"app", OPT_STR, OFF(app), NULL},
    {"app-protocol", OPT_STR, OFF(app_protocol), "h2c"},
    {"allow-tls12", OPT_BOOL, OFF(allow_tls12), "false"},
    {"connect-timeout", OPT_SECONDS, OFF(connect_timeout), "5"},
    {"handshake-timeout", OPT_SECONDS, OFF(handshake_timeout), "10"},
    {"idle-timeout", OPT_SECONDS, OFF(idle_timeout), "300"},
    {"drain-timeout", OPT_SECONDS, OFF(drain_timeout), "30"},
    {"reload-interval", OPT_SECONDS, OFF(reload_interval), "1"},
    {"pool-size", OPT_INT, OFF(pool_size), "4"},
    {"max-resets", OPT_INT, OFF(max_resets), "1000"},
    {"max-connections", OPT_LIMIT, OFF(max_connections), "4096"},
    {"max-connections-per-source", OPT_LIMIT, OFF(max_connections_per_source), "1024"},
    {"ipv6-source-prefix", OPT_INT, OFF(ipv6_source_prefix), "128"},
    {"max-queued", OPT_INT, OFF(max_queued), "512"},
    {"queue-timeout", OPT_SECONDS, OFF(queue_timeout), "5"},
    {"max-upstream-per-caller", OPT_INT, OFF(max_upstream_per_caller), "100"},
    {"max-concurrent-streams", OPT_INT, OFF(max_concurrent_streams), "100"},
    {"conn-buffer-limit", OPT_SIZE, OFF(conn_buffer_limit), "4M"},
    {"buffer-limit", OPT_SIZE, OFF(buffer_limit), "256M"},
    {"max-header-list-size", OPT_SIZE, OFF(max_header_list_size), "60K"},
    {"log-level", OPT_STR, OFF(log_level), "info"},
    {"admin", OPT_STR, OFF(admin), NULL}, /* default WISP_ADMIN_DEFAULT, see below */
    {"agent", OPT_STR, OFF(agent), NULL},
    {"spiffe-id", OPT_STR, OFF(spiffe_id), NULL},
    {"join-token", OPT_STR, OFF(join_token), NULL},
    {"join-token-file", OPT_STR, OFF(join_token_file), NULL},
    {"sa-token-file", OPT_STR, OFF(sa_token_file), NULL},
    {"policy", OPT_STR, OFF(policy_file), NULL},
    {"transparent", OPT_BOOL, OFF(transparent), "false"},
    {"outbound", OPT_STR, OFF(outbound), "127.0.0.1:15001"},
    {"opaque-ports", OPT_STR, OFF(opaque_ports), "25,3306,5432,6379,27017"},
    {"intercept-probe", OPT_STR, OFF(intercept_probe), "127.0.0.77:15009"},
    {"max-destinations", OPT_LIMIT, OFF(max_destinations), "4096"},
    {"svid-cache", OPT_STR, OFF(svid_cache), NULL},
    {"metrics", OPT_STR, OFF(metrics_listen), NULL},
    {"metrics-max-peers", OPT_LIMIT, OFF(metrics_max_peers), "256"},
    {"metrics-max-series", OPT_LIMIT, OFF(metrics_max_series), "2048"},
    {"help", OPT_HELP, OFF(help), NULL},
};
#define NOPTS (sizeof(kOpts) / sizeof(kOpts[0]))

const char *wisp_config_usage(void) {
  return "usage: wisp-proxy [flags]\n"
         "  --cert FILE --key FILE --bundle FILE   SVID, its key and the trust bundle (PEM);\n"
         "                                         reloaded when they change\n"
         "  --agent unix:///PATH|https://HOST:PORT  get the SVID (and policy) from wisp-agent instead\n"
         "  --spiffe-id ID                         the identity to ask the agent for\n"
         "  --join-token T | --join-token-file F   bootstrap secret from `wispctl token create`\n"
         "  --sa-token-file F                      or a Kubernetes service-account token (audience wisp),\n"
         "                                         re-read at every use (the kubelet rotates it)\n"
         "  --svid-cache DIR                       keep the SVID and its key (0600) in DIR, so a restart\n"
         "                                         serves at once and renews without a token\n"
         "  --transparent                          iptables mode (deploy/wisp-iptables.sh): outbound on\n"
         "                                         --outbound (127.0.0.1:15001) to each connection's\n"
         "                                         original destination; inbound to 127.0.0.1:<original\n"
         "                                         port> unless --app is given\n"
         "  --opaque-ports P,P                     transparent: ports carried as L4 without waiting\n"
         "                                         to detect HTTP/2 (default 25,3306,5432,6379,27017)\n"
         "  --intercept-probe IP:PORT|off          transparent: /ready fails until a connection to this\n"
         "                                         address is seen redirected to --outbound (the rule\n"
         "                                         wisp-iptables.sh adds; default 127.0.0.77:15009)\n"
         "  --max-destinations N                   transparent: original destinations kept with\n"
         "                                         their pools (default 4096, 0: no limit); an unused\n"
         "                                         one is evicted for a new one, and only when all N\n"
         "                                         are in use is a new destination answered 503\n"
         "  --policy FILE                          authorization policy (YAML), re-read when it changes\n"
         "  --route LISTEN=PEER[,id=SPIFFE_ID]     outbound: plaintext h2c on LISTEN, mTLS to PEER,\n"
         "                                         which must present SPIFFE_ID (repeatable)\n"
         "  --inbound ADDR                         mTLS listener (default 0.0.0.0:15006)\n"
         "  --app HOST:PORT                        local app that inbound traffic goes to\n"
         "  --app-protocol h2c|http1               what the app speaks (default h2c)\n"
         "  --allow-tls12                          accept TLS 1.2 too (default: TLS 1.3 only)\n"
         "  --connect-timeout S (5) --handshake-timeout S (10) --idle-timeout S (300)\n"
         "  --drain-timeout S (30) --reload-interval S (1) --pool-size N (4)\n"
         "  --max-resets N (1000)                  RST_STREAMs a caller may send per 10 s; beyond:\n"
         "                                         GOAWAY ENHANCE_YOUR_CALM (rapid reset)\n"
         "  --max-connections N (4096)             open connections per listener; more are closed at\n"
         "                                         once (0: no limit)\n"
         "  --max-connections-per-source N (1024)  of those on --inbound, from one caller address;\n"
         "                                         0: no limit\n"
         "  --ipv6-source-prefix N (128)           IPv6 callers count as one per /N (here and for the\n"
         "                                         admin port's per-host bound)\n"
         "  --max-queued N (512) --queue-timeout S (5)  requests waiting for a free upstream stream,\n"
         "                                         per upstream, and how long each may wait; then 503\n"
         "  --max-upstream-per-caller N (100)      upstream streams one caller connection may hold\n"
         "  --max-concurrent-streams N (100)       streams a caller may open at once on one connection\n"
         "  --conn-buffer-limit BYTES (4M)         body bytes buffered for one caller connection\n"
         "  --buffer-limit BYTES (256M)            body bytes buffered in all\n"
         "                                         (header bytes held count against both budgets; a new\n"
         "                                         stream past either is refused: REFUSED_STREAM)\n"
         "  --max-header-list-size BYTES (60K)     a header or trailer section, decoded (name + value +\n"
         "                                         32 per field); larger requests get 431 (at most 64K)\n"
         "  --log-level debug|info|warn|error\n"
         "  --admin ADDR|off                       admin listener: /healthz /ready /certs /config\n"
         "                                         /metrics, POST /drain (default 127.0.0.1:15000)\n"
         "  --metrics ADDR|off                     a listener serving GET /metrics only (404 for the\n"
         "                                         rest), for scrapers beyond loopback (default off)\n"
         "  --metrics-max-peers N (256)            peer SPIFFE IDs labelled in /metrics; later ones\n"
         "                                         count under \"overflow\" labels (0: all do;\n"
         "                                         at most 1000000)\n"
         "  --metrics-max-series N (2048)          label combinations in /metrics; later ones count\n"
         "                                         in an \"overflow\" series per status class\n"
         "Every flag can also be set as WISP_<FLAG> (e.g. WISP_APP=127.0.0.1:8080);\n"
         "WISP_ROUTE may hold several routes separated by spaces. Flags win.\n";
}

static void set_err(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_len, fmt, ap);
  va_end(ap);
}

wisp_err wisp_config_parse_route(wisp_route_cfg *out, const char *s, char *err, size_t err_len) {
  const char *eq = strchr(s, '=');
  if (!eq || eq == s) {
    set_err(err, err_len, "--route %s: expected LISTEN=PEER[,id=SPIFFE_ID]%s", s, "");
    return WISP_ERR_USAGE;
  }
  const char *comma = strchr(eq, ',');
  char *listen = wisp_strndup(s, (size_t)(eq - s));
  char *peer = comma ? wisp_strndup(eq + 1, (size_t)(comma - eq - 1)) : wisp_strdup(eq + 1);
  char *id = NULL;
  wisp_addr a;
  const char *why = NULL;
  if (wisp_addr_parse(&a, listen) != WISP_OK) {
    why = "LISTEN is not HOST:PORT";
  } else if (wisp_addr_parse(&a, peer) != WISP_OK) {
    why = "PEER is not HOST:PORT";
  } else if (comma && strncmp(comma + 1, "id=", 3) != 0) {
    why = "only id=SPIFFE_ID may follow the peer";
  } else if (comma) {
    wisp_spiffe_id sid;
    char detail[128];
    id = wisp_strdup(comma + 4);
    if (wisp_spiffe_parse(&sid, id, strlen(id), detail, sizeof(detail)) != WISP_OK) {
      snprintf(err, err_len, "--route %s: id is not a SPIFFE ID: %s", s, detail);
      free(listen);
      free(peer);
      free(id);
      return WISP_ERR_USAGE;
    }
  }
  if (why) {
    set_err(err, err_len, "--route %s: %s", s, why);
    free(listen);
    free(peer);
    free(id);
    return WISP_ERR_USAGE;
  }
  out->listen = listen;
  out->peer = peer;
  out->id = id;
  return WISP_OK;
}

static wisp_err add_routes(wisp_config *c, const char *val, char *err, size_t err_len) {
  /* The environment form may hold several routes separated by spaces. */
  char *copy = wisp_strdup(val), *save = NULL;
  wisp_err rc = WISP_OK;
  for (char *tok = strtok_r(copy, " \t\n", &save); tok && rc == WISP_OK; tok = strtok_r(NULL, " \t\n", &save)) {
    if (c->nroutes == WISP_MAX_ROUTES) {
      set_err(err, err_len, "too many --route flags (at most %s)%s", "64", "");
      rc = WISP_ERR_USAGE;
    } else {
      rc = wisp_config_parse_route(&c->routes[c->nroutes], tok, err, err_len);
      if (rc == WISP_OK) c->nroutes++;
    }
  }
  free(copy);
  return rc;
}

/* "65536", "64K", "4M", "1G": 1 byte to 1 TiB. */
static wisp_err parse_size(size_t *out, const char *val) {
  char *end = NULL;
  if (!isdigit((unsigned char)val[0])) return WISP_ERR_PARSE;
  unsigned long long n = strtoull(val, &end, 10);
  unsigned shift = 0;
  if (*end == 'K' || *end == 'k') shift = 10;
  if (*end == 'M' || *end == 'm') shift = 20;
  if (*end == 'G' || *end == 'g') shift = 30;
  if (shift) end++;
  if (end == val || *end || n == 0 || n > (1ULL << 40) >> shift) return WISP_ERR_PARSE;
  *out = (size_t)(n << shift);
  return WISP_OK;
}

static wisp_err set_opt(wisp_config *c, const opt_def *o, const char *val, char *err, size_t err_len) {
  char *base = (char *)c;
  char *end = NULL;
  switch (o->kind) {
    case OPT_STR: {
      char **p = (char **)(base + o->off);
      free(*p);
      *p = wisp_strdup(val);
      return WISP_OK;
    }
    case OPT_SECONDS: {
      double d = strtod(val, &end);
      if (end == val || *end || !(d >= 0 && d <= 1e7)) break; /* rejects NaN too */
      *(double *)(base + o->off) = d;
      return WISP_OK;
    }
    case OPT_INT: {
      long n = strtol(val, &end, 10);
      if (end == val || *end || n < 1 || n > 1024) break;
      *(int *)(base + o->off) = (int)n;
      return WISP_OK;
    }
    case OPT_LIMIT: {
      long n = strtol(val, &end, 10);
      if (end == val || *end || n < 0 || n > WISP_LIMIT_MAX) break;
      *(int *)(base + o->off) = (int)n;
      return WISP_OK;
    }
    case OPT_SIZE:
      if (parse_size((size_t *)(base + o->off), val) != WISP_OK) break;
      return WISP_OK;
    case OPT_BOOL:
    case OPT_HELP:
      if (strcmp(val, "true") == 0 || strcmp(val, "1") == 0) {
        *(bool *)(base + o->off) = true;
      } else if (strcmp(val, "false") == 0 || strcmp(val, "0") == 0) {
        *(bool *)(base + o->off) = false;
      } else {
        break;
      }
      return WISP_OK;
    case OPT_ROUTE:
      return add_routes(c, val, err, err_len);
  }
  set_err(err, err_len, "--%s: invalid value '%s'", o->name, val);
  return WISP_ERR_USAGE;
}

/* WISP_CONNECT_TIMEOUT for connect-timeout. */
static void env_name(char *out, size_t out_len, const char *flag) {
  size_t o = (size_t)snprintf(out, out_len, "WISP_");
  for (; *flag && o + 1 < out_len; flag++) out[o++] = *flag == '-' ? '_' : (char)toupper((unsigned char)*flag);
  out[o] = '\0';
}

/* With --agent the SVID comes from the agent: the proxy must say which
 * identity it wants, and files must not also be given. */
/* Could a connection to |probe| reach --outbound or --inbound directly? */
static bool probe_is_listener(const wisp_config *c, const wisp_addr *probe) {
  const char *listeners[] = {c->outbound, c->inbound};
  for (size_t i = 0; i < 2; i++) {
    wisp_addr l;
    if (!listeners[i] || wisp_addr_parse(&l, listeners[i]) != WISP_OK) continue;
    if (wisp_addr_port(&l) != wisp_addr_port(probe)) continue;
    char ls[64];
    wisp_addr_format(&l, ls, sizeof(ls));
    if (wisp_addr_equal(&l, probe) || strncmp(ls, "0.0.0.0:", 8) == 0 || strncmp(ls, "[::]:", 5) == 0) return true;
  }
  return false;
}

static wisp_err check_agent_flags(const wisp_config *c, char *err, size_t err_len) {
  wisp_spiffe_id id;
  char why[128];
  if (strncmp(c->agent, "unix:", 5) != 0 && strncmp(c->agent, "https://", 8) != 0) {
    set_err(err, err_len, "--agent %s: expected unix:///PATH or https://HOST:PORT%s", c->agent, "");
  } else if (c->cert || c->key) {
    snprintf(err, err_len, "--agent and --cert/--key exclude each other (the agent issues the SVID)");
  } else if (c->policy_file) {
    snprintf(err, err_len, "--agent and --policy exclude each other (the agent pushes the policy)");
  } else if (!c->spiffe_id) {
    snprintf(err, err_len, "--agent needs --spiffe-id (the identity to ask the agent for)");
  } else if (wisp_spiffe_parse(&id, c->spiffe_id, strlen(c->spiffe_id), why, sizeof(why)) != WISP_OK) {
    snprintf(err, err_len, "--spiffe-id %s: %s", c->spiffe_id, why);
  } else if (c->join_token && c->join_token_file) {
    snprintf(err, err_len, "give --join-token or --join-token-file, not both");
  } else if (strncmp(c->agent, "https://", 8) == 0 && !c->bundle) {
    snprintf(err, err_len, "--agent https://... needs --bundle (the trust bundle to verify the agent by)");
  } else {
    return WISP_OK;
  }
  return WISP_ERR_USAGE;
}

wisp_err wisp_config_parse(wisp_config *out, int argc, char **argv, char *err, size_t err_len) {
  struct option longopts[NOPTS + 1];
  bool seen[NOPTS] = {false};
  for (size_t i = 0; i < NOPTS; i++) {
    bool flag_only = kOpts[i].kind == OPT_BOOL || kOpts[i].kind == OPT_HELP;
    longopts[i] = (struct option){kOpts[i].name, flag_only ? no_argument : required_argument, NULL, (int)i};
  }
  memset(&longopts[NOPTS], 0, sizeof(longopts[NOPTS]));
  optind = 0; /* 0, not 1: also resets getopt's position inside a short-option cluster */
  opterr = 0;
  int idx;
  while ((idx = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    if (idx == 'h') idx = (int)NOPTS - 1;
    if (idx == '?' || idx < 0 || (size_t)idx >= NOPTS) {
      const char *arg = argv[optind - 1];
      if (strncmp(arg, "--", 2) != 0 && optopt > 0 && optopt < 256) {
        snprintf(err, err_len, "unknown flag '-%c' (see --help)", optopt);
      } else {
        snprintf(err, err_len, "unknown or incomplete flag '%s' (see --help)", arg);
      }
      return WISP_ERR_USAGE;
    }
    const opt_def *o = &kOpts[idx];
    bool flag_only = o->kind == OPT_BOOL || o->kind == OPT_HELP;
    WISP_GUARD(set_opt(out, o, flag_only ? "true" : optarg, err, err_len));
    seen[idx] = true;
  }
  if (optind < argc) {
    snprintf(err, err_len, "unexpected argument '%s' (see --help)", argv[optind]);
    return WISP_ERR_USAGE;
  }
  for (size_t i = 0; i < NOPTS; i++) {
    if (seen[i]) continue;
    char env[64];
    env_name(env, sizeof(env), kOpts[i].name);
    const char *val = getenv(env);
    if (val && *val) {
      WISP_GUARD(set_opt(out, &kOpts[i], val, err, err_len));
    } else if (kOpts[i].dflt) {
      WISP_GUARD(set_opt(out, &kOpts[i], kOpts[i].dflt, err, err_len));
    }
  }
  if (out->help) return WISP_OK;
  if (out->agent) {
    WISP_GUARD(check_agent_flags(out, err, err_len));
  } else if (out->svid_cache) {
    snprintf(err, err_len, "--svid-cache needs --agent (it keeps what the agent issued)");
    return WISP_ERR_USAGE;
  } else if (!out->cert || !out->key || !out->bundle) {
    snprintf(err, err_len,
             "--cert, --key and --bundle are required (PEM files of the SVID, its key, the trust bundle), "
             "or --agent to get them from wisp-agent");
    return WISP_ERR_USAGE;
  }
  if (out->max_header_list_size < WISP_HEADER_LIST_MIN || out->max_header_list_size > WISP_HEADER_LIST_MAX) {
    snprintf(err, err_len, "--max-header-list-size %zu: expected %d to %d bytes", out->max_header_list_size,
             WISP_HEADER_LIST_MIN, WISP_HEADER_LIST_MAX);
    return WISP_ERR_USAGE;
  }
  if (out->ipv6_source_prefix > 128) {
    snprintf(err, err_len, "--ipv6-source-prefix %d: expected a prefix length from 1 to 128",
             out->ipv6_source_prefix);
    return WISP_ERR_USAGE;
  }
  wisp_addr a;
  if (out->app && wisp_addr_parse(&a, out->app) != WISP_OK) {
    set_err(err, err_len, "--app %s: expected HOST:PORT%s", out->app, "");
    return WISP_ERR_USAGE;
  }
  if (strcmp(out->app_protocol, "h2c") != 0 && strcmp(out->app_protocol, "http1") != 0) {
    set_err(err, err_len, "--app-protocol %s: expected h2c or http1%s", out->app_protocol, "");
    return WISP_ERR_USAGE;
  }
  out->app_http1 = strcmp(out->app_protocol, "http1") == 0;
  if (wisp_addr_parse(&a, out->inbound) != WISP_OK) {
    set_err(err, err_len, "--inbound %s: expected HOST:PORT%s", out->inbound, "");
    return WISP_ERR_USAGE;
  }
  out->admin_set = out->admin != NULL;
  if (!out->admin) {
    out->admin = wisp_strdup(WISP_ADMIN_DEFAULT);
  } else if (strcmp(out->admin, "off") == 0) {
    free(out->admin);
    out->admin = NULL;
  } else if (wisp_addr_parse(&a, out->admin) != WISP_OK) {
    set_err(err, err_len, "--admin %s: expected HOST:PORT or off%s", out->admin, "");
    return WISP_ERR_USAGE;
  }
  /* The tables are sized by these at start (wisp_metrics): keep them sane. */
  if (out->metrics_max_peers > WISP_METRICS_CAP_MAX || out->metrics_max_series > WISP_METRICS_CAP_MAX) {
    bool peers = out->metrics_max_peers > WISP_METRICS_CAP_MAX;
    set_err(err, err_len, "--metrics-max-%s %d: at most %d", peers ? "peers" : "series",
            peers ? out->metrics_max_peers : out->metrics_max_series, WISP_METRICS_CAP_MAX);
    return WISP_ERR_USAGE;
  }
  if (out->metrics_listen && strcmp(out->metrics_listen, "off") == 0) {
    free(out->metrics_listen);
    out->metrics_listen = NULL;
  } else if (out->metrics_listen && wisp_addr_parse(&a, out->metrics_listen) != WISP_OK) {
    set_err(err, err_len, "--metrics %s: expected HOST:PORT or off%s", out->metrics_listen, "");
    return WISP_ERR_USAGE;
  }
  if (out->intercept_probe && strcmp(out->intercept_probe, "off") == 0) {
    free(out->intercept_probe);
    out->intercept_probe = NULL;
  } else if (out->intercept_probe && wisp_addr_parse(&a, out->intercept_probe) != WISP_OK) {
    set_err(err, err_len, "--intercept-probe %s: expected IP:PORT or off%s", out->intercept_probe, "");
    return WISP_ERR_USAGE;
  } else if (out->intercept_probe && out->transparent && probe_is_listener(out, &a)) {
    /* A probe that lands on our own listener unredirected proves nothing. */
    set_err(err, err_len, "--intercept-probe %s: must not be a listener of ours (--outbound, --inbound)%s",
            out->intercept_probe, "");
    return WISP_ERR_USAGE;
  }
  if (!out->app && out->nroutes == 0 && !out->transparent) {
    snprintf(err, err_len,
             "nothing to do: give --app (inbound side) and/or --route (outbound side), or --transparent");
    return WISP_ERR_USAGE;
  }
  return WISP_OK;
}

bool wisp_config_port_opaque(const wisp_config *c, unsigned port) {
  for (const char *p = c->opaque_ports; p && *p;) {
    char *end;
    unsigned long v = strtoul(p, &end, 10);
    if (end != p && v == port) return true;
    p = strchr(p, ',');
    if (p) p++;
  }
  return false;
}

void wisp_config_cleanup(wisp_config *c) {
  for (size_t i = 0; i < c->nroutes; i++) {
    free(c->routes[i].listen);
    free(c->routes[i].peer);
    free(c->routes[i].id);
  }
  free(c->cert);
  free(c->key);
  free(c->bundle);
  free(c->inbound);
  free(c->app);
  free(c->app_protocol);
  free(c->log_level);
  free(c->agent);
  free(c->spiffe_id);
  free(c->metrics_listen);
  free(c->join_token);
  free(c->join_token_file);
  free(c->sa_token_file);
  free(c->policy_file);
  free(c->outbound);
  free(c->opaque_ports);
  free(c->intercept_probe);
  free(c->svid_cache);
  free(c->admin);
  memset(c, 0, sizeof(*c));
}
