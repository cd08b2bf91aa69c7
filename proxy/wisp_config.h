/* wisp_config: wisp-proxy's flags and WISP_* environment variables, parsed
 * into a plain struct. A flag overrides its environment variable. The
 * parser does no I/O beyond reading argv/environ, so it is unit-tested. */
#ifndef WISP_CONFIG_H
#define WISP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/wisp_err.h"

#define WISP_MAX_ROUTES 64

typedef struct {
  char *listen; /* owned: HOST:PORT the local app connects to */
  char *peer;   /* owned: HOST:PORT of the peer sidecar's inbound */
  char *id;     /* owned, NULL: any ID in our trust domain */
} wisp_route_cfg;

typedef struct {
  char *cert, *key, *bundle; /* owned PEM paths */
  wisp_route_cfg routes[WISP_MAX_ROUTES];
  size_t nroutes;
  char *inbound;      /* owned; mTLS listener address */
  char *app;          /* owned; NULL: no inbound side */
  char *app_protocol; /* owned; "auto", "h2c" (or "h2") or "http1": what the app (or, transparent, every
                                   * local port) is spoken to in; auto: the caller's original protocol (x-wisp-proto) */
  bool app_http1;     /* app_protocol is "http1": every request to the app as HTTP/1.1 */
  bool app_h2c;       /* app_protocol is "h2c": every request to the app as h2c */
  bool allow_tls12;
  double connect_timeout; /* seconds */
  double handshake_timeout;
  double idle_timeout;
  double drain_timeout;
  double reload_interval;
  int pool_size;                  /* upstream connections per peer */
  int max_resets;                 /* RST_STREAM frames a caller may send per 10 s */
  int max_connections;            /* open downstream connections per listener, 0: no limit */
  int max_connections_per_source; /* of those on the inbound listener, from one source; 0: no limit */
  int ipv6_source_prefix;         /* an IPv6 caller is one source per /N (lib/wisp_connlimit.h) */
  int max_queued;                 /* requests waiting for an upstream stream, per upstream */
  double queue_timeout;           /* how long one may wait */
  double stream_idle_timeout; /* a caller's stream that moves no byte either way this long ends (0: off, else >= 0.1) */
  double tunnel_idle_timeout; /* an L4 tunnel that moves no byte either way this long is closed (0: off, else >= 0.1) */
  int max_upstream_per_caller; /* upstream streams one caller connection may hold at once */
  int max_concurrent_streams;  /* streams a caller may open on one connection (SETTINGS) */
  size_t conn_buffer_limit;    /* body bytes buffered for one caller connection */
  size_t buffer_limit;         /* body bytes buffered in all */
  size_t max_header_list_size; /* a decoded header section (SETTINGS_MAX_HEADER_LIST_SIZE) */
  char *log_level;             /* owned */
  char *admin;                 /* owned; admin listener address, NULL: off */
  char *metrics_listen;        /* owned; --metrics: GET /metrics only, for remote scrapers; NULL: off */
  char *agent;                 /* owned; unix:///PATH or https://HOST:PORT, NULL: files */
  char *spiffe_id;             /* owned; the identity asked of the agent */
  char *join_token;            /* owned */
  char *join_token_file;       /* owned */
  char *sa_token_file;         /* owned; Kubernetes service-account token, re-read at each use */
  char *policy_file;           /* owned; --policy FILE, NULL: none (or from the agent) */
  bool transparent;            /* iptables mode: original destinations (SO_ORIGINAL_DST) */
  bool transparent_http1;      /* transparent: HTTP/1 request lines go L7 (default; false: L4, as any TCP) */
  char *outbound;              /* owned; transparent outbound listener */
  char *opaque_ports;          /* owned; comma list: L4 without detection */
  char *svid_cache;            /* owned; --agent: DIR keeping the last SVID and key (0600), NULL: none */
  char *intercept_probe;       /* owned; transparent: IP:PORT that proves the iptables rules, NULL: off */
  int max_destinations;        /* transparent: original destinations kept at once, 0: no limit */
  int metrics_max_peers;       /* distinct peer IDs labelled in /metrics; more: "overflow" */
  int metrics_max_series;      /* label combinations kept in /metrics; more: "overflow" */
  size_t metrics_max_bytes;    /* what those series may render at most; more: "overflow" */
  int workers;                 /* data-plane threads, each with its own loop and SO_REUSEPORT listeners */
  bool admin_set;              /* given by --admin/WISP_ADMIN, not the default */
  bool help;
} wisp_config;

#define WISP_ADMIN_DEFAULT "127.0.0.1:15000"
/* --workers at most: more threads than this only contend. */
#define WISP_WORKERS_MAX 64
/* --max-header-list-size bounds: below 1K ordinary requests fail; above 64K
 * is more than a stream's header store holds (proxy/dataplane/wisp_hdrs.h). */
#define WISP_HEADER_LIST_MIN 1024
#define WISP_HEADER_LIST_MAX (64 * 1024)
/* --stream-idle-timeout below this (but not 0) is refused: its sweep runs
 * every timeout/4. */
#define WISP_STREAM_IDLE_MIN 0.1
/* --tunnel-idle-timeout below this (but not 0) is refused: each tunnel's
 * timer would fire (and re-arm) that often. */
#define WISP_TUNNEL_IDLE_MIN 0.1

/* Parses argv then fills unset options from the environment and defaults.
 * On WISP_ERR_USAGE |err| names the flag and the problem. |out| must be
 * zeroed; release it with wisp_config_cleanup either way. */
wisp_err wisp_config_parse(wisp_config *out, int argc, char **argv, char *err, size_t err_len) WISP_MUST_CHECK;
/* Parses one --route value "LISTEN=PEER[,id=SPIFFE_ID]". */
wisp_err wisp_config_parse_route(wisp_route_cfg *out, const char *s, char *err, size_t err_len) WISP_MUST_CHECK;
void wisp_config_cleanup(wisp_config *c);
/* True if |port| is in --opaque-ports (server-first protocols: the client
 * sends nothing first, so detection would only wait). */
bool wisp_config_port_opaque(const wisp_config *c, unsigned port);
/* How long transparent outbound waits for a client's first bytes before
 * treating the connection as L4. */
#define WISP_DETECT_TIMEOUT 0.3
/* The usage text printed by --help. */
const char *wisp_config_usage(void);

#endif
