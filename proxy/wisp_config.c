#include "proxy/wisp_config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/wisp_flags.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_net.h"
#include "lib/wisp_spiffe.h"

/* The kinds of wisp-proxy's flags, as rows of lib/wisp_flags.h. INT: 1 to
 * 1024; LIMIT: a count limit, 0 (no limit) to WISP_LIMIT_MAX; SECS: a bare
 * number of seconds; SIZE: bytes with an optional suffix K, M or G, 1 byte
 * to 1 TiB. A bad value reads "--FLAG: invalid value 'VAL'". */
#define WISP_LIMIT_MAX 10000000
#define WISP_CFG_SECONDS_MAX 10000000
#define WISP_CFG_BYTES_MAX (1LL << 40)
#define WISP_METRICS_CAP_MAX 1000000 /* --metrics-max-peers/-series: about 250 MB of tables at most */

#define OFF(f) offsetof(wisp_config, f)
#define ROW_STR(n, f, d) \
  { .name = n, .kind = WISP_FLAG_STR, .off = OFF(f), .dflt = d }
#define ROW_BOOL(n, f, d) \
  { .name = n, .kind = WISP_FLAG_BOOL, .off = OFF(f), .dflt = d }
#define ROW_HELP(n, f, d) \
  { .name = n, .kind = WISP_FLAG_HELP, .off = OFF(f), .dflt = d }
#define ROW_SECS(n, f, d) \
  { .name = n, .kind = WISP_FLAG_SECONDS, .off = OFF(f), .dflt = d, .max = WISP_CFG_SECONDS_MAX }
#define ROW_INT(n, f, d) \
  { .name = n, .kind = WISP_FLAG_INT, .off = OFF(f), .dflt = d, .min = 1, .max = 1024 }
/* COUNT: 1 to WISP_COUNT_MAX, for counts a busy sidecar may need large
 * (resets per window, queued requests); a bad value says the range. */
#define WISP_COUNT_MAX 1000000
#define ROW_COUNT(n, f, d)                                                                       \
  {                                                                                              \
    .name = n, .kind = WISP_FLAG_INT, .off = OFF(f), .dflt = d, .min = 1, .max = WISP_COUNT_MAX, \
    .expect = "a count from 1 to 1000000"                                                        \
  }
#define ROW_LIMIT(n, f, d) \
  { .name = n, .kind = WISP_FLAG_INT, .off = OFF(f), .dflt = d, .max = WISP_LIMIT_MAX }
#define ROW_SIZE(n, f, d) \
  { .name = n, .kind = WISP_FLAG_SIZE, .off = OFF(f), .dflt = d, .min = 1, .max = WISP_CFG_BYTES_MAX }

static wisp_err add_routes(void *out, const char *val, char *err, size_t err_len);

static const wisp_flag kOpts[] = {
    ROW_STR("cert", cert, NULL),
    ROW_STR("key", key, NULL),
    ROW_STR("bundle", bundle, NULL),
    {.name = "route", .kind = WISP_FLAG_CUSTOM, .set = add_routes},
    ROW_STR("inbound", inbound, "0.0.0.0:15006"),
    ROW_STR("app", app, NULL),
    ROW_STR("app-protocol", app_protocol, "auto"),
    ROW_BOOL("allow-tls12", allow_tls12, "false"),
    ROW_SECS("connect-timeout", connect_timeout, "5"),
    ROW_SECS("handshake-timeout", handshake_timeout, "10"),
    ROW_SECS("idle-timeout", idle_timeout, "300"),
    ROW_SECS("drain-timeout", drain_timeout, "30"),
    ROW_SECS("reload-interval", reload_interval, "1"),
    ROW_INT("pool-size", pool_size, "4"),
    ROW_COUNT("max-resets", max_resets, "1000"),
    ROW_LIMIT("max-connections", max_connections, "4096"),
    ROW_LIMIT("max-connections-per-source", max_connections_per_source, "1024"),
    ROW_INT("ipv6-source-prefix", ipv6_source_prefix, "128"),
    ROW_COUNT("max-queued", max_queued, "512"),
    ROW_SECS("queue-timeout", queue_timeout, "5"),
    ROW_SECS("stream-idle-timeout", stream_idle_timeout, "300"),
    ROW_SECS("tunnel-idle-timeout", tunnel_idle_timeout, "3600"),
    ROW_INT("max-upstream-per-caller", max_upstream_per_caller, "100"),
    ROW_INT("max-concurrent-streams", max_concurrent_streams, "100"),
    ROW_SIZE("conn-buffer-limit", conn_buffer_limit, "4M"),
    ROW_SIZE("buffer-limit", buffer_limit, "256M"),
    ROW_SIZE("max-header-list-size", max_header_list_size, "60K"),
    ROW_STR("log-level", log_level, "info"),
    ROW_STR("admin", admin, NULL), /* default WISP_ADMIN_DEFAULT, see below */
    ROW_STR("agent", agent, NULL),
    ROW_STR("spiffe-id", spiffe_id, NULL),
    ROW_STR("join-token", join_token, NULL),
    ROW_STR("join-token-file", join_token_file, NULL),
    ROW_STR("sa-token-file", sa_token_file, NULL),
    ROW_STR("policy", policy_file, NULL),
    ROW_BOOL("transparent", transparent, "false"),
    ROW_BOOL("transparent-http1", transparent_http1, "true"),
    ROW_STR("outbound", outbound, "127.0.0.1:15001"),
    ROW_STR("opaque-ports", opaque_ports, "25,3306,5432,6379,27017"),
    ROW_STR("intercept-probe", intercept_probe, "127.0.0.77:15009"),
    ROW_LIMIT("max-destinations", max_destinations, "4096"),
    ROW_STR("svid-cache", svid_cache, NULL),
    ROW_STR("metrics", metrics_listen, NULL),
    ROW_LIMIT("metrics-max-peers", metrics_max_peers, "256"),
    ROW_LIMIT("metrics-max-series", metrics_max_series, "2048"),
    /* below 1M the reserved overflow series take it all; above 32M the
     * admin port's response bound (64 MiB) comes near */
    {.name = "metrics-max-bytes",
     .kind = WISP_FLAG_SIZE,
     .off = OFF(metrics_max_bytes),
     .dflt = "4M",
     .min = 1LL << 20,
     .max = 32LL << 20},
    {.name = "workers",
     .kind = WISP_FLAG_INT,
     .off = OFF(workers),
     .dflt = "1",
     .min = 1,
     .max = WISP_WORKERS_MAX,
     .expect = "a count of threads from 1 to 64"},
    ROW_HELP("help", help, NULL),
};

static const wisp_flags_table kTable = {
    .flags = kOpts,
    .nflags = sizeof(kOpts) / sizeof(kOpts[0]),
    .env_prefix = "WISP_",
    .unknown_hint = " (see --help)",
    .extra_hint = " (see --help)",
};

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
         "  --transparent-http1                    transparent: HTTP/1 request lines go L7 (off: L4;\n"
         "                                         needs HTTP/1.1 apps' sidecars on --app-protocol http1)\n"
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
         "  --max-resets N (1000)                  premature stream resets a caller (an address) may\n"
         "                                         make per 10 s: RST_STREAMs, and streams it made the\n"
         "                                         proxy reset by protocol errors; beyond, once over half\n"
         "                                         its streams end so: GOAWAY ENHANCE_YOUR_CALM (a peer\n"
         "                                         sidecar's mTLS connection: throttled); 1 to 1000000\n"
         "  --max-connections N (4096)             open connections per listener; more are closed at\n"
         "                                         once (0: no limit)\n"
         "  --max-connections-per-source N (1024)  of those on --inbound, from one caller address;\n"
         "                                         0: no limit\n"
         "  --ipv6-source-prefix N (128)           IPv6 callers count as one per /N (here and for the\n"
         "                                         admin port's per-host bound)\n"
         "  --stream-idle-timeout S (300)          a stream that moves no byte either way this long:\n"
         "                                         408, or reset once its response started (0: off;\n"
         "                                         else at least 0.1)\n"
         "  --tunnel-idle-timeout S (3600)         an L4 tunnel that moves no byte either way this long\n"
         "                                         is closed, both ends (0: off; else at least 0.1)\n"
         "  --max-queued N (512) --queue-timeout S (5)  requests waiting for a free upstream stream,\n"
         "                                         per upstream (1 to 1000000), and how long each may\n"
         "                                         wait; then 503\n"
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
         "  --metrics-max-bytes SIZE (4M)          the most the series of /metrics render (1M..32M);\n"
         "                                         later peers and series count as \"overflow\"\n"
         "  --workers N (1)                        threads serving the data listeners, each with its\n"
         "                                         own loop and connections (1 to 64); see README\n"
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

static wisp_err add_routes(void *out, const char *val, char *err, size_t err_len) {
  /* The environment form may hold several routes separated by spaces. */
  wisp_config *c = out;
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

static wisp_err check_idle_timeout(const char *flag, double v, double min, char *err, size_t err_len) {
  if (v == 0 || v >= min) return WISP_OK;
  snprintf(err, err_len, "%s %g: expected 0 (off) or at least %g seconds", flag, v, min);
  return WISP_ERR_USAGE;
}

wisp_err wisp_config_parse(wisp_config *out, int argc, char **argv, char *err, size_t err_len) {
  WISP_GUARD(wisp_flags_parse(&kTable, out, argc, argv, err, err_len));
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
  /* A tiny idle timeout would make its sweep (every timeout/4) or timers a busy loop. */
  WISP_GUARD(check_idle_timeout("--stream-idle-timeout", out->stream_idle_timeout, WISP_STREAM_IDLE_MIN, err, err_len));
  WISP_GUARD(check_idle_timeout("--tunnel-idle-timeout", out->tunnel_idle_timeout, WISP_TUNNEL_IDLE_MIN, err, err_len));
  if (out->ipv6_source_prefix > 128) {
    snprintf(err, err_len, "--ipv6-source-prefix %d: expected a prefix length from 1 to 128", out->ipv6_source_prefix);
    return WISP_ERR_USAGE;
  }
  wisp_addr a;
  if (out->app && wisp_addr_parse(&a, out->app) != WISP_OK) {
    set_err(err, err_len, "--app %s: expected HOST:PORT%s", out->app, "");
    return WISP_ERR_USAGE;
  }
  out->app_http1 = strcmp(out->app_protocol, "http1") == 0;
  out->app_h2c = strcmp(out->app_protocol, "h2c") == 0 || strcmp(out->app_protocol, "h2") == 0;
  if (!out->app_http1 && !out->app_h2c && strcmp(out->app_protocol, "auto") != 0) {
    set_err(err, err_len, "--app-protocol %s: expected auto, h2c or http1%s", out->app_protocol, "");
    return WISP_ERR_USAGE;
  }
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
    snprintf(err, err_len, "nothing to do: give --app (inbound side) and/or --route (outbound side), or --transparent");
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
  wisp_flags_cleanup(&kTable, c);
  memset(c, 0, sizeof(*c));
}
