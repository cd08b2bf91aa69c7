/* Unit tests for proxy/wisp_config: argv and WISP_* environment tables. Every
 * parse is followed by wisp_config_cleanup, success or not (LSan checks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/wisp_config.h"
#include "tests/unit/test_util.h"

#define MAX_ARGS 160

static const char *const kEnvVars[] = {
    "WISP_CERT",
    "WISP_KEY",
    "WISP_BUNDLE",
    "WISP_ROUTE",
    "WISP_INBOUND",
    "WISP_APP",
    "WISP_ALLOW_TLS12",
    "WISP_CONNECT_TIMEOUT",
    "WISP_HANDSHAKE_TIMEOUT",
    "WISP_IDLE_TIMEOUT",
    "WISP_DRAIN_TIMEOUT",
    "WISP_RELOAD_INTERVAL",
    "WISP_POOL_SIZE",
    "WISP_LOG_LEVEL",
    "WISP_HELP",
    "WISP_ADMIN",
    "WISP_MAX_CONNECTIONS",
    "WISP_MAX_CONNECTIONS_PER_SOURCE",
    "WISP_IPV6_SOURCE_PREFIX",
    "WISP_MAX_DESTINATIONS",
};

static int clear_env(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(kEnvVars) / sizeof(kEnvVars[0]); i++) unsetenv(kEnvVars[i]);
  return 0;
}

/* Sets "NAME=VALUE" entries from a NULL-terminated list. */
static void set_env(const char *const *env) {
  for (size_t i = 0; env && env[i]; i++) {
    const char *eq = strchr(env[i], '=');
    assert_non_null(eq);
    char name[64];
    snprintf(name, sizeof(name), "%.*s", (int)(eq - env[i]), env[i]);
    assert_int_equal(setenv(name, eq + 1, 1), 0);
  }
}

/* Parses "wisp-proxy" + |args| (NULL-terminated). */
static wisp_err parse(wisp_config *c, const char *const *args, char *err, size_t err_len) {
  char *argv[MAX_ARGS + 2];
  int argc = 0;
  argv[argc++] = (char *)"wisp-proxy";
  for (size_t i = 0; args[i]; i++) {
    assert_true(argc <= MAX_ARGS);
    argv[argc++] = (char *)args[i];
  }
  argv[argc] = NULL;
  memset(c, 0, sizeof(*c));
  return wisp_config_parse(c, argc, argv, err, err_len);
}

#define CERTS "--cert", "c.pem", "--key", "k.pem", "--bundle", "b.pem"

/* ---- checks for the valid cases ------------------------------------------- */

static void check_defaults(const wisp_config *c) {
  assert_string_equal(c->cert, "c.pem");
  assert_string_equal(c->key, "k.pem");
  assert_string_equal(c->bundle, "b.pem");
  assert_string_equal(c->app, "127.0.0.1:8080");
  assert_string_equal(c->inbound, "0.0.0.0:15006");
  assert_string_equal(c->app_protocol, "auto");
  assert_false(c->app_http1);
  assert_false(c->app_h2c);
  assert_true(c->transparent_http1);
  assert_int_equal(c->nroutes, 0);
  assert_false(c->allow_tls12);
  assert_true(c->connect_timeout == 5.0);
  assert_true(c->handshake_timeout == 10.0);
  assert_true(c->idle_timeout == 300.0);
  assert_true(c->drain_timeout == 30.0);
  assert_true(c->reload_interval == 1.0);
  assert_int_equal(c->pool_size, 4);
  assert_int_equal(c->max_connections, 4096);
  assert_int_equal(c->max_connections_per_source, 1024);
  assert_int_equal(c->ipv6_source_prefix, 128);
  assert_int_equal(c->max_destinations, 4096);
  assert_string_equal(c->log_level, "info");
  assert_string_equal(c->admin, "127.0.0.1:15000");
  assert_false(c->admin_set);
  assert_false(c->help);
}

static void check_route_with_id(const wisp_config *c) {
  assert_null(c->app);
  assert_int_equal(c->nroutes, 1);
  assert_string_equal(c->routes[0].listen, "127.0.0.1:15001");
  assert_string_equal(c->routes[0].peer, "10.0.0.2:15006");
  assert_string_equal(c->routes[0].id, "spiffe://example.org/b");
}

static void check_route_no_id(const wisp_config *c) {
  assert_int_equal(c->nroutes, 1);
  assert_string_equal(c->routes[0].listen, "127.0.0.1:15001");
  assert_string_equal(c->routes[0].peer, "10.0.0.2:15006");
  assert_null(c->routes[0].id);
}

static void check_two_routes(const wisp_config *c) {
  assert_int_equal(c->nroutes, 2);
  assert_string_equal(c->routes[0].listen, "127.0.0.1:15001");
  assert_string_equal(c->routes[0].peer, "10.0.0.2:15006");
  assert_string_equal(c->routes[0].id, "spiffe://example.org/b");
  assert_string_equal(c->routes[1].listen, "127.0.0.1:15002");
  assert_string_equal(c->routes[1].peer, "10.0.0.3:15006");
  assert_null(c->routes[1].id);
}

static void check_v6_route(const wisp_config *c) {
  assert_int_equal(c->nroutes, 1);
  assert_string_equal(c->routes[0].listen, "[::1]:15001");
  assert_string_equal(c->routes[0].peer, "[2001:db8::2]:15006");
  assert_string_equal(c->routes[0].id, "spiffe://example.org/ns/default/sa/b");
}

static void check_all_flags(const wisp_config *c) {
  assert_string_equal(c->inbound, "127.0.0.1:9000");
  assert_string_equal(c->app, "127.0.0.1:8080");
  assert_true(c->allow_tls12);
  assert_true(c->connect_timeout == 0.25);
  assert_true(c->handshake_timeout == 3.0);
  assert_true(c->idle_timeout == 60.0);
  assert_true(c->drain_timeout == 0.0);
  assert_true(c->reload_interval == 2.5);
  assert_int_equal(c->pool_size, 1024);
  assert_string_equal(c->log_level, "debug");
}

static void check_help(const wisp_config *c) { assert_true(c->help); }

static void check_last_cert_wins(const wisp_config *c) {
  assert_string_equal(c->cert, "second.pem");
  assert_string_equal(c->key, "k.pem");
}

static void check_env_only(const wisp_config *c) {
  assert_string_equal(c->cert, "env-c.pem");
  assert_string_equal(c->key, "env-k.pem");
  assert_string_equal(c->bundle, "env-b.pem");
  assert_string_equal(c->app, "127.0.0.1:7000");
  assert_int_equal(c->pool_size, 9);
  assert_true(c->idle_timeout == 12.5);
  assert_true(c->allow_tls12);
  assert_string_equal(c->log_level, "warn");
}

static void check_flag_over_env(const wisp_config *c) {
  assert_string_equal(c->cert, "c.pem");      /* flag */
  assert_string_equal(c->app, "127.0.0.1:2"); /* flag */
  assert_int_equal(c->pool_size, 7);          /* env, no flag given */
  assert_string_equal(c->inbound, "127.0.0.1:16000");
}

static void check_flag_route_over_env(const wisp_config *c) {
  assert_int_equal(c->nroutes, 1);
  assert_string_equal(c->routes[0].listen, "127.0.0.1:15009");
}

static void check_tls12_off(const wisp_config *c) { assert_false(c->allow_tls12); }

static void check_pool_default(const wisp_config *c) { assert_int_equal(c->pool_size, 4); }

static void check_pool_1(const wisp_config *c) { assert_int_equal(c->pool_size, 1); }

static void check_limits_set(const wisp_config *c) {
  assert_int_equal(c->max_connections, 100000);
  assert_int_equal(c->max_connections_per_source, 7);
}

static void check_limits_off(const wisp_config *c) {
  assert_int_equal(c->max_connections, 0);
  assert_int_equal(c->max_connections_per_source, 0);
}
static void check_v6_prefix_64(const wisp_config *c) { assert_int_equal(c->ipv6_source_prefix, 64); }

static void check_max_destinations(const wisp_config *c) { assert_int_equal(c->max_destinations, 100000); }

static void check_max_destinations_off(const wisp_config *c) { assert_int_equal(c->max_destinations, 0); }

static void check_admin_9901(const wisp_config *c) {
  assert_string_equal(c->admin, "127.0.0.1:9901");
  assert_true(c->admin_set);
}

static void check_admin_off(const wisp_config *c) {
  assert_null(c->admin);
  assert_true(c->admin_set);
}

static void check_metrics_default(const wisp_config *c) {
  assert_null(c->metrics_listen); /* off unless asked for */
  assert_int_equal(c->metrics_max_peers, 256);
  assert_int_equal(c->metrics_max_series, 2048);
  assert_int_equal(c->metrics_max_bytes, 4u << 20);
}

static void check_metrics_15090(const wisp_config *c) {
  assert_string_equal(c->metrics_listen, "0.0.0.0:15090");
  assert_int_equal(c->metrics_max_peers, 1000000);
  assert_int_equal(c->metrics_max_bytes, 16u << 20);
}

static void check_admin_v6(const wisp_config *c) { assert_string_equal(c->admin, "[::1]:15000"); }

/* ---- the table -------------------------------------------------------------- */

typedef struct {
  const char *name;
  const char *env[6];   /* "NAME=VALUE", NULL-terminated */
  const char *args[32]; /* NULL-terminated */
  wisp_err want;
  const char *err_has; /* USAGE: substring of the message */
  void (*check)(const wisp_config *c);
} cfg_case;

static void check_app_http1(const wisp_config *c) {
  assert_string_equal(c->app_protocol, "http1");
  assert_true(c->app_http1);
}

static void check_app_h2(const wisp_config *c) { assert_true(c->app_h2c && !c->app_http1); }
static void check_no_transparent_http1(const wisp_config *c) { assert_true(c->transparent && !c->transparent_http1); }

static const cfg_case kCases[] = {
    /* valid */
    {"minimal inbound", {0}, {CERTS, "--app", "127.0.0.1:8080"}, WISP_OK, NULL, check_defaults},
    {"route with id",
     {0},
     {CERTS, "--route", "127.0.0.1:15001=10.0.0.2:15006,id=spiffe://example.org/b"},
     WISP_OK,
     NULL,
     check_route_with_id},
    {"route without id", {0}, {CERTS, "--route", "127.0.0.1:15001=10.0.0.2:15006"}, WISP_OK, NULL, check_route_no_id},
    {"repeated --route",
     {0},
     {CERTS, "--route", "127.0.0.1:15001=10.0.0.2:15006,id=spiffe://example.org/b", "--route",
      "127.0.0.1:15002=10.0.0.3:15006"},
     WISP_OK,
     NULL,
     check_two_routes},
    {"IPv6 route",
     {0},
     {CERTS, "--route", "[::1]:15001=[2001:db8::2]:15006,id=spiffe://example.org/ns/default/sa/b"},
     WISP_OK,
     NULL,
     check_v6_route},
    {"every flag",
     {0},
     {CERTS,
      "--app",
      "127.0.0.1:8080",
      "--inbound",
      "127.0.0.1:9000",
      "--allow-tls12",
      "--connect-timeout",
      "0.25",
      "--handshake-timeout",
      "3",
      "--idle-timeout",
      "60",
      "--drain-timeout",
      "0",
      "--reload-interval",
      "2.5",
      "--pool-size",
      "1024",
      "--log-level",
      "debug"},
     WISP_OK,
     NULL,
     check_all_flags},
    {"--flag=value form",
     {0},
     {"--cert=c.pem", "--key=k.pem", "--bundle=b.pem", "--app=127.0.0.1:8080"},
     WISP_OK,
     NULL,
     check_defaults},
    {"--help without anything else", {0}, {"--help"}, WISP_OK, NULL, check_help},
    {"-h", {0}, {"-h"}, WISP_OK, NULL, check_help},
    {"repeated --cert: last wins",
     {0},
     {"--cert", "first.pem", CERTS, "--cert", "second.pem", "--app", ":1"},
     WISP_OK,
     NULL,
     check_last_cert_wins},
    {"environment only",
     {"WISP_CERT=env-c.pem", "WISP_KEY=env-k.pem", "WISP_BUNDLE=env-b.pem", "WISP_APP=127.0.0.1:7000",
      "WISP_POOL_SIZE=9", NULL},
     {0},
     WISP_OK,
     NULL,
     NULL /* see test_env_only */},
    {"flag overrides environment",
     {"WISP_CERT=env-c.pem", "WISP_APP=10.0.0.9:1", "WISP_POOL_SIZE=7", "WISP_INBOUND=127.0.0.1:16000", NULL},
     {CERTS, "--app", "127.0.0.1:2"},
     WISP_OK,
     NULL,
     check_flag_over_env},
    {"WISP_ROUTE holds two routes",
     {"WISP_ROUTE=127.0.0.1:15001=10.0.0.2:15006,id=spiffe://example.org/b 127.0.0.1:15002=10.0.0.3:15006", NULL},
     {CERTS},
     WISP_OK,
     NULL,
     check_two_routes},
    {"WISP_ROUTE with extra whitespace",
     {"WISP_ROUTE=  127.0.0.1:15001=10.0.0.2:15006,id=spiffe://example.org/b \t\n 127.0.0.1:15002=10.0.0.3:15006 ",
      NULL},
     {CERTS},
     WISP_OK,
     NULL,
     check_two_routes},
    {"--route overrides WISP_ROUTE",
     {"WISP_ROUTE=127.0.0.1:15001=10.0.0.2:15006 127.0.0.1:15002=10.0.0.3:15006", NULL},
     {CERTS, "--route", "127.0.0.1:15009=10.0.0.2:15006"},
     WISP_OK,
     NULL,
     check_flag_route_over_env},
    {"WISP_ALLOW_TLS12=0", {"WISP_ALLOW_TLS12=0", NULL}, {CERTS, "--app", ":1"}, WISP_OK, NULL, check_tls12_off},
    {"empty environment value is unset",
     {"WISP_POOL_SIZE=", NULL},
     {CERTS, "--app", ":1"},
     WISP_OK,
     NULL,
     check_pool_default},
    {"pool size 1", {0}, {CERTS, "--app", ":1", "--pool-size", "1"}, WISP_OK, NULL, check_pool_1},
    {"connection limits",
     {0},
     {CERTS, "--app", ":1", "--max-connections", "100000", "--max-connections-per-source", "7"},
     WISP_OK,
     NULL,
     check_limits_set},
    {"connection limits from the environment",
     {"WISP_MAX_CONNECTIONS=100000", "WISP_MAX_CONNECTIONS_PER_SOURCE=7", NULL},
     {CERTS, "--app", ":1"},
     WISP_OK,
     NULL,
     check_limits_set},
    {"connection limits 0: none",
     {0},
     {CERTS, "--app", ":1", "--max-connections", "0", "--max-connections-per-source", "0"},
     WISP_OK,
     NULL,
     check_limits_off},
    {"ipv6-source-prefix 64",
     {"WISP_IPV6_SOURCE_PREFIX=64", NULL},
     {CERTS, "--app", ":1"},
     WISP_OK,
     NULL,
     check_v6_prefix_64},
    {"max-destinations past 1024",
     {"WISP_MAX_DESTINATIONS=100000", NULL},
     {CERTS, "--transparent"},
     WISP_OK,
     NULL,
     check_max_destinations},
    {"max-destinations 0: no limit",
     {0},
     {CERTS, "--transparent", "--max-destinations", "0"},
     WISP_OK,
     NULL,
     check_max_destinations_off},

    /* --admin */
    {"--admin ADDR", {0}, {CERTS, "--app", ":1", "--admin", "127.0.0.1:9901"}, WISP_OK, NULL, check_admin_9901},
    {"--admin=ADDR", {0}, {CERTS, "--app", ":1", "--admin=127.0.0.1:9901"}, WISP_OK, NULL, check_admin_9901},
    {"--admin off", {0}, {CERTS, "--app", ":1", "--admin", "off"}, WISP_OK, NULL, check_admin_off},
    {"--admin IPv6", {0}, {CERTS, "--app", ":1", "--admin", "[::1]:15000"}, WISP_OK, NULL, check_admin_v6},
    {"WISP_ADMIN", {"WISP_ADMIN=127.0.0.1:9901", NULL}, {CERTS, "--app", ":1"}, WISP_OK, NULL, check_admin_9901},
    {"WISP_ADMIN=off", {"WISP_ADMIN=off", NULL}, {CERTS, "--app", ":1"}, WISP_OK, NULL, check_admin_off},
    {"empty WISP_ADMIN is unset",
     {"WISP_ADMIN=", NULL},
     {CERTS, "--app", "127.0.0.1:8080"},
     WISP_OK,
     NULL,
     check_defaults},
    {"--admin overrides WISP_ADMIN",
     {"WISP_ADMIN=off", NULL},
     {CERTS, "--app", ":1", "--admin", "127.0.0.1:9901"},
     WISP_OK,
     NULL,
     check_admin_9901},
    {"--admin overrides WISP_ADMIN=ADDR",
     {"WISP_ADMIN=127.0.0.1:9901", NULL},
     {CERTS, "--app", ":1", "--admin", "off"},
     WISP_OK,
     NULL,
     check_admin_off},
    {"bad --admin",
     {0},
     {CERTS, "--app", ":1", "--admin", "localhost"},
     WISP_ERR_USAGE,
     "--admin localhost: expected HOST:PORT or off",
     NULL},
    {"--admin OFF is not off", {0}, {CERTS, "--app", ":1", "--admin", "OFF"}, WISP_ERR_USAGE, "--admin OFF", NULL},
    {"empty --admin", {0}, {CERTS, "--app", ":1", "--admin="}, WISP_ERR_USAGE, "--admin : expected", NULL},
    {"bad WISP_ADMIN",
     {"WISP_ADMIN=127.0.0.1:70000", NULL},
     {CERTS, "--app", ":1"},
     WISP_ERR_USAGE,
     "--admin 127.0.0.1:70000",
     NULL},
    {"--admin without a value", {0}, {CERTS, "--app", ":1", "--admin"}, WISP_ERR_USAGE, "'--admin'", NULL},

    /* --metrics and its caps */
    {"--metrics off by default", {0}, {CERTS, "--app", ":1"}, WISP_OK, NULL, check_metrics_default},
    {"--metrics ADDR, caps at their maximum",
     {0},
     {CERTS, "--app", ":1", "--metrics", "0.0.0.0:15090", "--metrics-max-peers", "1000000", "--metrics-max-bytes",
      "16M"},
     WISP_OK,
     NULL,
     check_metrics_15090},
    {"--metrics off", {0}, {CERTS, "--app", ":1", "--metrics", "off"}, WISP_OK, NULL, check_metrics_default},
    {"bad --metrics",
     {0},
     {CERTS, "--app", ":1", "--metrics", "15090"},
     WISP_ERR_USAGE,
     "--metrics 15090: expected HOST:PORT or off",
     NULL},
    {"--metrics-max-series past its maximum",
     {0},
     {CERTS, "--app", ":1", "--metrics-max-series", "1000001"},
     WISP_ERR_USAGE,
     "--metrics-max-series 1000001: at most 1000000",
     NULL},
    {"--metrics-max-bytes below 1M",
     {0},
     {CERTS, "--app", ":1", "--metrics-max-bytes", "512K"},
     WISP_ERR_USAGE,
     "--metrics-max-bytes: invalid value '512K'",
     NULL},
    {"--metrics-max-bytes past 32M",
     {0},
     {CERTS, "--app", ":1", "--metrics-max-bytes", "33M"},
     WISP_ERR_USAGE,
     "--metrics-max-bytes: invalid value '33M'",
     NULL},
    {"--metrics-max-peers past its maximum",
     {0},
     {CERTS, "--app", ":1", "--metrics-max-peers", "2000000"},
     WISP_ERR_USAGE,
     "--metrics-max-peers 2000000: at most 1000000",
     NULL},

    /* required flags and sides */
    {"no flags at all", {0}, {0}, WISP_ERR_USAGE, "--cert, --key and --bundle are required", NULL},
    {"missing --cert", {0}, {"--key", "k", "--bundle", "b", "--app", ":1"}, WISP_ERR_USAGE, "--cert", NULL},
    {"missing --key", {0}, {"--cert", "c", "--bundle", "b", "--app", ":1"}, WISP_ERR_USAGE, "--key", NULL},
    {"missing --bundle", {0}, {"--cert", "c", "--key", "k", "--app", ":1"}, WISP_ERR_USAGE, "--bundle", NULL},
    {"nothing to do", {0}, {CERTS}, WISP_ERR_USAGE, "nothing to do", NULL},
    {"--app-protocol http1", {0}, {CERTS, "--app", ":1", "--app-protocol", "http1"}, WISP_OK, NULL, check_app_http1},
    {"--transparent-http1=false (the L4 escape hatch)",
     {0},
     {CERTS, "--transparent", "--transparent-http1=false"},
     WISP_OK,
     NULL,
     check_no_transparent_http1},
    {"--transparent-http1=maybe",
     {0},
     {CERTS, "--transparent", "--transparent-http1=maybe"},
     WISP_ERR_USAGE,
     "--transparent-http1",
     NULL},
    {"--app-protocol h2 (forces h2c)",
     {0},
     {CERTS, "--app", ":1", "--app-protocol", "h2"},
     WISP_OK,
     NULL,
     check_app_h2},
    {"bad --app-protocol",
     {0},
     {CERTS, "--app", ":1", "--app-protocol", "http/1.1"},
     WISP_ERR_USAGE,
     "--app-protocol http/1.1: expected auto, h2c or http1",
     NULL},
    {"bad --intercept-probe",
     {0},
     {CERTS, "--transparent", "--intercept-probe", "127.0.0.77"},
     WISP_ERR_USAGE,
     "--intercept-probe 127.0.0.77: expected IP:PORT or off",
     NULL},
    {"--intercept-probe on --outbound",
     {0},
     {CERTS, "--transparent", "--intercept-probe", "127.0.0.1:15001"},
     WISP_ERR_USAGE,
     "--intercept-probe 127.0.0.1:15001: must not be a listener of ours",
     NULL},
    {"--intercept-probe on the wildcard --inbound's port",
     {0},
     {CERTS, "--transparent", "--intercept-probe", "127.0.0.77:15006"},
     WISP_ERR_USAGE,
     "must not be a listener of ours",
     NULL},
    {"--svid-cache without --agent",
     {0},
     {CERTS, "--app", ":1", "--svid-cache", "/tmp/x"},
     WISP_ERR_USAGE,
     "--svid-cache needs --agent",
     NULL},
    {"nothing to do (env certs)",
     {"WISP_CERT=c", "WISP_KEY=k", "WISP_BUNDLE=b", NULL},
     {0},
     WISP_ERR_USAGE,
     "nothing to do",
     NULL},

    /* --route */
    {"route missing '='",
     {0},
     {CERTS, "--route", "127.0.0.1:15001"},
     WISP_ERR_USAGE,
     "--route 127.0.0.1:15001: expected LISTEN=PEER",
     NULL},
    {"route empty listen", {0}, {CERTS, "--route", "=10.0.0.2:15006"}, WISP_ERR_USAGE, "--route =10.0.0.2:15006", NULL},
    {"route empty peer", {0}, {CERTS, "--route", "127.0.0.1:1="}, WISP_ERR_USAGE, "PEER is not HOST:PORT", NULL},
    {"route bad listen",
     {0},
     {CERTS, "--route", "nowhere=10.0.0.2:15006"},
     WISP_ERR_USAGE,
     "--route nowhere=10.0.0.2:15006: LISTEN is not HOST:PORT",
     NULL},
    {"route listen port too big",
     {0},
     {CERTS, "--route", "127.0.0.1:70000=10.0.0.2:15006"},
     WISP_ERR_USAGE,
     "LISTEN is not HOST:PORT",
     NULL},
    {"route bad peer",
     {0},
     {CERTS, "--route", "127.0.0.1:15001=peer.example.org:15006"},
     WISP_ERR_USAGE,
     "--route 127.0.0.1:15001=peer.example.org:15006: PEER is not HOST:PORT",
     NULL},
    {"route id not SPIFFE",
     {0},
     {CERTS, "--route", "127.0.0.1:15001=10.0.0.2:15006,id=https://example.org/b"},
     WISP_ERR_USAGE,
     "id is not a SPIFFE ID: does not start with spiffe://",
     NULL},
    {"route id invalid SPIFFE",
     {0},
     {CERTS, "--route", "127.0.0.1:15001=10.0.0.2:15006,id=spiffe://Example.org/b"},
     WISP_ERR_USAGE,
     "id is not a SPIFFE ID: trust domain",
     NULL},
    {"route id empty",
     {0},
     {CERTS, "--route", "127.0.0.1:15001=10.0.0.2:15006,id="},
     WISP_ERR_USAGE,
     "id is not a SPIFFE ID",
     NULL},
    {"route unknown option",
     {0},
     {CERTS, "--route", "127.0.0.1:15001=10.0.0.2:15006,foo=bar"},
     WISP_ERR_USAGE,
     "only id=SPIFFE_ID may follow the peer",
     NULL},
    {"route empty option",
     {0},
     {CERTS, "--route", "127.0.0.1:15001=10.0.0.2:15006,"},
     WISP_ERR_USAGE,
     "only id=SPIFFE_ID may follow the peer",
     NULL},
    {"route extra option after id",
     {0},
     {CERTS, "--route", "127.0.0.1:15001=10.0.0.2:15006,id=spiffe://example.org/b,timeout=5"},
     WISP_ERR_USAGE,
     "--route 127.0.0.1:15001=10.0.0.2:15006,id=spiffe://example.org/b,timeout=5",
     NULL},
    {"second route bad",
     {0},
     {CERTS, "--route", "127.0.0.1:15001=10.0.0.2:15006", "--route", "x=y"},
     WISP_ERR_USAGE,
     "--route x=y",
     NULL},
    {"WISP_ROUTE second route bad",
     {"WISP_ROUTE=127.0.0.1:15001=10.0.0.2:15006 127.0.0.1:15002", NULL},
     {CERTS},
     WISP_ERR_USAGE,
     "--route 127.0.0.1:15002",
     NULL},

    /* numbers */
    {"connect-timeout not a number",
     {0},
     {CERTS, "--app", ":1", "--connect-timeout", "abc"},
     WISP_ERR_USAGE,
     "--connect-timeout: invalid value 'abc'",
     NULL},
    {"connect-timeout negative",
     {0},
     {CERTS, "--app", ":1", "--connect-timeout", "-1"},
     WISP_ERR_USAGE,
     "--connect-timeout",
     NULL},
    {"connect-timeout empty",
     {0},
     {CERTS, "--app", ":1", "--connect-timeout", ""},
     WISP_ERR_USAGE,
     "--connect-timeout",
     NULL},
    {"connect-timeout with unit",
     {0},
     {CERTS, "--app", ":1", "--connect-timeout", "5s"},
     WISP_ERR_USAGE,
     "--connect-timeout: invalid value '5s'",
     NULL},
    {"connect-timeout huge",
     {0},
     {CERTS, "--app", ":1", "--connect-timeout", "1e8"},
     WISP_ERR_USAGE,
     "--connect-timeout",
     NULL},
    {"connect-timeout inf",
     {0},
     {CERTS, "--app", ":1", "--connect-timeout", "inf"},
     WISP_ERR_USAGE,
     "--connect-timeout",
     NULL},
    {"handshake-timeout bad",
     {0},
     {CERTS, "--app", ":1", "--handshake-timeout", "x"},
     WISP_ERR_USAGE,
     "--handshake-timeout",
     NULL},
    {"idle-timeout bad", {0}, {CERTS, "--app", ":1", "--idle-timeout", "-5"}, WISP_ERR_USAGE, "--idle-timeout", NULL},
    {"drain-timeout bad",
     {0},
     {CERTS, "--app", ":1", "--drain-timeout", "1,5"},
     WISP_ERR_USAGE,
     "--drain-timeout",
     NULL},
    {"reload-interval bad",
     {0},
     {CERTS, "--app", ":1", "--reload-interval", "soon"},
     WISP_ERR_USAGE,
     "--reload-interval",
     NULL},
    {"max-destinations negative",
     {0},
     {CERTS, "--transparent", "--max-destinations", "-1"},
     WISP_ERR_USAGE,
     "--max-destinations: invalid value '-1'",
     NULL},
    {"max-destinations too big",
     {0},
     {CERTS, "--transparent", "--max-destinations", "10000001"},
     WISP_ERR_USAGE,
     "--max-destinations",
     NULL},
    {"pool-size zero",
     {0},
     {CERTS, "--app", ":1", "--pool-size", "0"},
     WISP_ERR_USAGE,
     "--pool-size: invalid value '0'",
     NULL},
    {"pool-size too big", {0}, {CERTS, "--app", ":1", "--pool-size", "1025"}, WISP_ERR_USAGE, "--pool-size", NULL},
    {"pool-size negative", {0}, {CERTS, "--app", ":1", "--pool-size", "-4"}, WISP_ERR_USAGE, "--pool-size", NULL},
    {"pool-size trailing junk", {0}, {CERTS, "--app", ":1", "--pool-size", "4x"}, WISP_ERR_USAGE, "--pool-size", NULL},
    {"pool-size fractional", {0}, {CERTS, "--app", ":1", "--pool-size", "2.5"}, WISP_ERR_USAGE, "--pool-size", NULL},
    {"pool-size overflow",
     {0},
     {CERTS, "--app", ":1", "--pool-size", "99999999999999999999"},
     WISP_ERR_USAGE,
     "--pool-size",
     NULL},
    {"pool-size empty", {0}, {CERTS, "--app", ":1", "--pool-size", ""}, WISP_ERR_USAGE, "--pool-size", NULL},
    {"max-connections negative",
     {0},
     {CERTS, "--app", ":1", "--max-connections", "-1"},
     WISP_ERR_USAGE,
     "--max-connections: invalid value '-1'",
     NULL},
    {"max-connections too big",
     {0},
     {CERTS, "--app", ":1", "--max-connections", "10000001"},
     WISP_ERR_USAGE,
     "--max-connections: invalid value",
     NULL},
    {"max-connections-per-source junk",
     {0},
     {CERTS, "--app", ":1", "--max-connections-per-source", "4k"},
     WISP_ERR_USAGE,
     "--max-connections-per-source: invalid value '4k'",
     NULL},
    {"ipv6-source-prefix past 128",
     {0},
     {CERTS, "--app", ":1", "--ipv6-source-prefix", "129"},
     WISP_ERR_USAGE,
     "--ipv6-source-prefix 129: expected a prefix length from 1 to 128",
     NULL},
    {"ipv6-source-prefix 0",
     {0},
     {CERTS, "--app", ":1", "--ipv6-source-prefix", "0"},
     WISP_ERR_USAGE,
     "--ipv6-source-prefix: invalid value '0'",
     NULL},
    {"WISP_MAX_CONNECTIONS bad",
     {"WISP_MAX_CONNECTIONS=many", NULL},
     {CERTS, "--app", ":1"},
     WISP_ERR_USAGE,
     "--max-connections: invalid value 'many'",
     NULL},
    {"WISP_POOL_SIZE bad",
     {"WISP_POOL_SIZE=lots", NULL},
     {CERTS, "--app", ":1"},
     WISP_ERR_USAGE,
     "--pool-size: invalid value 'lots'",
     NULL},
    {"WISP_CONNECT_TIMEOUT bad",
     {"WISP_CONNECT_TIMEOUT=-2", NULL},
     {CERTS, "--app", ":1"},
     WISP_ERR_USAGE,
     "--connect-timeout",
     NULL},
    {"WISP_ALLOW_TLS12 bad",
     {"WISP_ALLOW_TLS12=yes", NULL},
     {CERTS, "--app", ":1"},
     WISP_ERR_USAGE,
     "--allow-tls12 yes: expected true or false",
     NULL},

    /* addresses */
    {"bad --app", {0}, {CERTS, "--app", "app.local"}, WISP_ERR_USAGE, "--app app.local: expected HOST:PORT", NULL},
    {"bad WISP_APP", {"WISP_APP=127.0.0.1:99999", NULL}, {CERTS}, WISP_ERR_USAGE, "--app 127.0.0.1:99999", NULL},
    {"bad --inbound",
     {0},
     {CERTS, "--app", ":1", "--inbound", "everywhere"},
     WISP_ERR_USAGE,
     "--inbound everywhere: expected HOST:PORT",
     NULL},

    /* argv shape */
    {"unknown flag", {0}, {CERTS, "--app", ":1", "--bogus"}, WISP_ERR_USAGE, "'--bogus'", NULL},
    {"unknown flag with value", {0}, {CERTS, "--app", ":1", "--bogus=1"}, WISP_ERR_USAGE, "'--bogus=1'", NULL},
    {"unknown short flag", {0}, {CERTS, "--app", ":1", "-x"}, WISP_ERR_USAGE, "'-x'", NULL},
    {"flag missing its value", {0}, {CERTS, "--app"}, WISP_ERR_USAGE, "'--app'", NULL},
    {"bool flag given a value other than true or false",
     {0},
     {CERTS, "--app", ":1", "--allow-tls12=yes"},
     WISP_ERR_USAGE,
     "--allow-tls12 yes: expected true or false",
     NULL},
    {"ambiguous abbreviation", {0}, {CERTS, "--app", ":1", "--c", "x"}, WISP_ERR_USAGE, "'--c'", NULL},
    {"stray positional at end",
     {0},
     {CERTS, "--app", ":1", "extra"},
     WISP_ERR_USAGE,
     "unexpected argument 'extra'",
     NULL},
    {"stray positional in the middle",
     {0},
     {"--cert", "c", "stray", "--key", "k", "--bundle", "b", "--app", ":1"},
     WISP_ERR_USAGE,
     "unexpected argument 'stray'",
     NULL},
    {"positional after --",
     {0},
     {CERTS, "--app", ":1", "--", "--route"},
     WISP_ERR_USAGE,
     "unexpected argument '--route'",
     NULL},
};

static void run_case(const cfg_case *c) {
  clear_env(NULL);
  set_env(c->env);
  wisp_config cfg;
  char err[512] = "";
  wisp_err rc = parse(&cfg, c->args, err, sizeof(err));
  if (rc != c->want) {
    wisp_config_cleanup(&cfg);
    fail_msg("case '%s': got %d (%s), want %d", c->name, rc, err, c->want);
  }
  if (c->want == WISP_OK) {
    if (c->check) c->check(&cfg);
  } else if (!strstr(err, c->err_has)) {
    wisp_config_cleanup(&cfg);
    fail_msg("case '%s': error '%s' does not mention '%s'", c->name, err, c->err_has);
  }
  wisp_config_cleanup(&cfg);
  /* cleanup leaves a zeroed struct */
  wisp_config zero;
  memset(&zero, 0, sizeof(zero));
  assert_memory_equal(&cfg, &zero, sizeof(cfg));
}

static void test_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(kCases) / sizeof(kCases[0]); i++) {
    print_message("# case %zu: %s\n", i, kCases[i].name);
    run_case(&kCases[i]);
  }
  clear_env(NULL);
}

static void test_env_only(void **state) {
  (void)state;
  static const char *const env[] = {"WISP_CERT=env-c.pem",     "WISP_KEY=env-k.pem",  "WISP_BUNDLE=env-b.pem",
                                    "WISP_APP=127.0.0.1:7000", "WISP_POOL_SIZE=9",    "WISP_IDLE_TIMEOUT=12.5",
                                    "WISP_ALLOW_TLS12=1",      "WISP_LOG_LEVEL=warn", NULL};
  static const char *const none[] = {NULL};
  set_env(env);
  wisp_config c;
  char err[256] = "";
  assert_int_equal(parse(&c, none, err, sizeof(err)), WISP_OK);
  check_env_only(&c);
  wisp_config_cleanup(&c);
}

static void test_help_via_env(void **state) {
  (void)state;
  static const char *const env[] = {"WISP_HELP=1", NULL};
  static const char *const none[] = {NULL};
  set_env(env);
  wisp_config c;
  char err[256] = "";
  assert_int_equal(parse(&c, none, err, sizeof(err)), WISP_OK);
  assert_true(c.help);
  wisp_config_cleanup(&c);
}

static void test_max_routes(void **state) {
  (void)state;
  static char routes[WISP_MAX_ROUTES + 1][64];
  const char *args[2 * (WISP_MAX_ROUTES + 1) + 8];
  for (size_t n = WISP_MAX_ROUTES; n <= WISP_MAX_ROUTES + 1; n++) {
    size_t a = 0;
    static const char *const certs[] = {CERTS};
    for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++) args[a++] = certs[i];
    for (size_t i = 0; i < n; i++) {
      snprintf(routes[i], sizeof(routes[i]), "127.0.0.1:%zu=10.0.0.2:15006", 20000 + i);
      args[a++] = "--route";
      args[a++] = routes[i];
    }
    args[a] = NULL;
    wisp_config c;
    char err[256] = "";
    wisp_err rc = parse(&c, args, err, sizeof(err));
    if (n == WISP_MAX_ROUTES) {
      assert_int_equal(rc, WISP_OK);
      assert_int_equal(c.nroutes, WISP_MAX_ROUTES);
      assert_string_equal(c.routes[WISP_MAX_ROUTES - 1].listen, "127.0.0.1:20063");
    } else {
      assert_int_equal(rc, WISP_ERR_USAGE);
      assert_non_null(strstr(err, "too many --route"));
      assert_int_equal(c.nroutes, WISP_MAX_ROUTES);
    }
    wisp_config_cleanup(&c);
  }
}

static void test_max_routes_env(void **state) {
  (void)state;
  char *val = malloc(80 * (WISP_MAX_ROUTES + 1));
  assert_non_null(val);
  size_t o = 0;
  for (size_t i = 0; i <= WISP_MAX_ROUTES; i++)
    o += (size_t)sprintf(val + o, "%s127.0.0.1:%zu=10.0.0.2:15006", i ? " " : "", 20000 + i);
  assert_int_equal(setenv("WISP_ROUTE", val, 1), 0);
  free(val);
  static const char *const args[] = {CERTS, NULL};
  wisp_config c;
  char err[256] = "";
  assert_int_equal(parse(&c, args, err, sizeof(err)), WISP_ERR_USAGE);
  assert_non_null(strstr(err, "too many --route"));
  wisp_config_cleanup(&c);
}

static void test_parse_route_direct(void **state) {
  (void)state;
  wisp_route_cfg r;
  char err[256] = "";
  memset(&r, 0, sizeof(r));
  assert_int_equal(wisp_config_parse_route(&r, ":15001=127.0.0.1:15006,id=spiffe://td", err, sizeof(err)), WISP_OK);
  assert_string_equal(r.listen, ":15001");
  assert_string_equal(r.peer, "127.0.0.1:15006");
  assert_string_equal(r.id, "spiffe://td");
  free(r.listen);
  free(r.peer);
  free(r.id);
  /* On failure |out| is untouched. */
  memset(&r, 0, sizeof(r));
  assert_int_equal(wisp_config_parse_route(&r, ":15001=127.0.0.1:15006,id=nope", err, sizeof(err)), WISP_ERR_USAGE);
  assert_null(r.listen);
  assert_null(r.peer);
  assert_null(r.id);
}

static void test_small_err_buffer(void **state) {
  (void)state;
  static const char *const args[] = {CERTS, "--route", "127.0.0.1:15001", NULL};
  wisp_config c;
  char err[12];
  memset(err, 'X', sizeof(err));
  assert_int_equal(parse(&c, args, err, 8), WISP_ERR_USAGE);
  assert_int_equal(strlen(err), 7);
  assert_int_equal(err[8], 'X');
  wisp_config_cleanup(&c);
}

static void test_usage_text(void **state) {
  (void)state;
  const char *u = wisp_config_usage();
  static const char *const flags[] = {"--cert",
                                      "--key",
                                      "--bundle",
                                      "--route",
                                      "--inbound",
                                      "--app",
                                      "--allow-tls12",
                                      "--connect-timeout",
                                      "--handshake-timeout",
                                      "--idle-timeout",
                                      "--drain-timeout",
                                      "--reload-interval",
                                      "--pool-size",
                                      "--log-level",
                                      "--admin",
                                      "WISP_ROUTE"};
  for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) assert_non_null(strstr(u, flags[i]));
}

/* The parser must not depend on what an earlier call left behind. */
static void test_repeat_parse_independent(void **state) {
  (void)state;
  static const char *const bad[] = {CERTS, "--bogus", NULL};
  static const char *const good[] = {CERTS, "--app", "127.0.0.1:8080", NULL};
  for (int i = 0; i < 3; i++) {
    wisp_config c;
    char err[256] = "";
    assert_int_equal(parse(&c, bad, err, sizeof(err)), WISP_ERR_USAGE);
    wisp_config_cleanup(&c);
    assert_int_equal(parse(&c, good, err, sizeof(err)), WISP_OK);
    check_defaults(&c);
    wisp_config_cleanup(&c);
  }
}

/* BUG: strtod accepts "nan", and NaN passes both d < 0 and d > 1e7, so a NaN
 * timeout gets into the config. */
static void test_nan_timeout_rejected(void **state) {
  (void)state;
  static const char *const flags[] = {"--connect-timeout", "--handshake-timeout", "--idle-timeout", "--drain-timeout",
                                      "--reload-interval"};
  for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
    const char *args[] = {CERTS, "--app", ":1", flags[i], "nan", NULL};
    wisp_config c;
    char err[256] = "";
    wisp_err rc = parse(&c, args, err, sizeof(err));
    wisp_config_cleanup(&c);
    assert_int_equal(rc, WISP_ERR_USAGE);
    assert_non_null(strstr(err, flags[i]));
  }
}

/* BUG: an unknown short option inside a cluster ("-xh") leaves glibc's
 * getopt mid-argument; the error names argv[optind - 1] (the program name),
 * and because the parser resets with optind = 1 instead of 0, the next
 * wisp_config_parse resumes inside the OLD argv (here: sees -h). */
static void test_short_option_cluster(void **state) {
  (void)state;
  static const char *const cluster[] = {CERTS, "--app", ":1", "-xh", NULL};
  static const char *const good[] = {CERTS, "--app", "127.0.0.1:8080", NULL};
  wisp_config c;
  char err[256] = "";
  wisp_err rc = parse(&c, cluster, err, sizeof(err));
  wisp_config_cleanup(&c);
  assert_int_equal(rc, WISP_ERR_USAGE);
  char err2[256] = "";
  wisp_err rc2 = parse(&c, good, err2, sizeof(err2));
  bool help = c.help;
  wisp_config_cleanup(&c);
  print_message("# first: '%s'; second: %d '%s'\n", err, rc2, err2);
  assert_int_equal(rc2, WISP_OK);
  assert_false(help);
  assert_non_null(strstr(err, "-x"));
}

/* The limits on what a caller can make the proxy hold (README "Limits"):
 * documented defaults, flags and WISP_* variables, bad values refused. */
static void test_stream_limits(void **state) {
  (void)state;
  static const char *const dflt[] = {CERTS, "--app", ":1", NULL};
  static const char *const flags[] = {CERTS,  "--app",
                                      ":1",   "--max-resets",
                                      "50",   "--max-queued",
                                      "8",    "--queue-timeout",
                                      "0.5",  "--max-upstream-per-caller",
                                      "3",    "--max-concurrent-streams",
                                      "1000", NULL};
  static const char *const zero[] = {CERTS, "--app", ":1", "--max-resets", "0", NULL};
  wisp_config c;
  char err[256] = "";
  assert_int_equal(parse(&c, dflt, err, sizeof(err)), WISP_OK);
  assert_int_equal(c.max_resets, 1000);
  assert_int_equal(c.max_queued, 512);
  assert_true(c.queue_timeout == 5.0);
  assert_int_equal(c.max_upstream_per_caller, 100);
  assert_int_equal(c.max_concurrent_streams, 100);
  assert_int_equal(c.conn_buffer_limit, 4 << 20);
  assert_int_equal(c.buffer_limit, 256 << 20);
  wisp_config_cleanup(&c);
  assert_int_equal(parse(&c, flags, err, sizeof(err)), WISP_OK);
  assert_int_equal(c.max_resets, 50);
  assert_int_equal(c.max_queued, 8);
  assert_true(c.queue_timeout == 0.5);
  assert_int_equal(c.max_upstream_per_caller, 3);
  assert_int_equal(c.max_concurrent_streams, 1000);
  wisp_config_cleanup(&c);
  setenv("WISP_MAX_RESETS", "7", 1);
  setenv("WISP_QUEUE_TIMEOUT", "2", 1);
  setenv("WISP_MAX_UPSTREAM_PER_CALLER", "9", 1);
  assert_int_equal(parse(&c, dflt, err, sizeof(err)), WISP_OK);
  assert_int_equal(c.max_resets, 7);
  assert_true(c.queue_timeout == 2.0);
  assert_int_equal(c.max_upstream_per_caller, 9);
  wisp_config_cleanup(&c);
  unsetenv("WISP_MAX_RESETS");
  unsetenv("WISP_QUEUE_TIMEOUT");
  unsetenv("WISP_MAX_UPSTREAM_PER_CALLER");
  assert_int_equal(parse(&c, zero, err, sizeof(err)), WISP_ERR_USAGE);
  assert_non_null(strstr(err, "--max-resets"));
  assert_non_null(strstr(err, "expected a count from 1 to 1000000"));
  wisp_config_cleanup(&c);
}

/* --max-resets and --max-queued go as high as a busy sidecar needs (they
 * were capped at 1024); past 1,000,000 they are refused saying the range. */
static void test_count_ranges(void **state) {
  (void)state;
  static const char *const big[] = {CERTS, "--app", ":1", "--max-resets", "1000000", "--max-queued", "200000", NULL};
  static const char *const over[] = {CERTS, "--app", ":1", "--max-queued", "1000001", NULL};
  static const char *const small_over[] = {CERTS, "--app", ":1", "--pool-size", "1025", NULL};
  wisp_config c;
  char err[256] = "";
  assert_int_equal(parse(&c, big, err, sizeof(err)), WISP_OK);
  assert_int_equal(c.max_resets, 1000000);
  assert_int_equal(c.max_queued, 200000);
  wisp_config_cleanup(&c);
  assert_int_equal(parse(&c, over, err, sizeof(err)), WISP_ERR_USAGE);
  assert_non_null(strstr(err, "--max-queued 1000001: expected a count from 1 to 1000000"));
  wisp_config_cleanup(&c);
  assert_int_equal(parse(&c, small_over, err, sizeof(err)), WISP_ERR_USAGE);
  assert_non_null(strstr(err, "--pool-size: invalid value '1025'"));
  wisp_config_cleanup(&c);
}

/* --workers: 1 by default, 1 to WISP_WORKERS_MAX, else refused in words. */
static void test_workers(void **state) {
  (void)state;
  static const char *const dflt[] = {CERTS, "--app", ":1", NULL};
  static const char *const two[] = {CERTS, "--app", ":1", "--workers", "2", NULL};
  static const char *const max[] = {CERTS, "--app", ":1", "--workers", "64", NULL};
  wisp_config c;
  char err[256] = "";
  assert_int_equal(parse(&c, dflt, err, sizeof(err)), WISP_OK);
  assert_int_equal(c.workers, 1);
  wisp_config_cleanup(&c);
  assert_int_equal(parse(&c, two, err, sizeof(err)), WISP_OK);
  assert_int_equal(c.workers, 2);
  wisp_config_cleanup(&c);
  assert_int_equal(parse(&c, max, err, sizeof(err)), WISP_OK);
  assert_int_equal(c.workers, WISP_WORKERS_MAX);
  wisp_config_cleanup(&c);
  static const char *const bad[] = {"0", "-1", "65", "1000", "x"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    const char *argv[] = {CERTS, "--app", ":1", "--workers", bad[i], NULL};
    assert_int_equal(parse(&c, argv, err, sizeof(err)), WISP_ERR_USAGE);
    char want[96];
    snprintf(want, sizeof(want), "--workers %s: expected a count of threads from 1 to 64", bad[i]);
    assert_string_equal(err, want);
    wisp_config_cleanup(&c);
  }
}

/* Byte sizes: a number with an optional binary suffix, 1 byte to 1 TiB. */
static void test_buffer_sizes(void **state) {
  (void)state;
  static const struct {
    const char *val;
    size_t want; /* 0: refused */
  } cases[] = {
      {"65536", 65536},
      {"64K", 65536},
      {"64k", 65536},
      {"4M", 4 << 20},
      {"1G", 1 << 30},
      {"1024G", 1ULL << 40},
      {"1025G", 0},
      {"0", 0},
      {"0M", 0},
      {"-1", 0},
      {"5X", 0},
      {"M", 0},
      {"", 0},
      {" 4M", 0},
      {"4MB", 0},
      {"2T", 0},
      {"99999999999999999999", 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *args[] = {CERTS, "--app", ":1", "--conn-buffer-limit", cases[i].val, NULL};
    wisp_config c;
    char err[256] = "";
    wisp_err rc = parse(&c, args, err, sizeof(err));
    if (cases[i].want) {
      assert_int_equal(rc, WISP_OK);
      assert_int_equal(c.conn_buffer_limit, cases[i].want);
    } else {
      assert_int_equal(rc, WISP_ERR_USAGE);
      assert_non_null(strstr(err, "--conn-buffer-limit"));
    }
    wisp_config_cleanup(&c);
  }
  setenv("WISP_BUFFER_LIMIT", "512M", 1);
  const char *args[] = {CERTS, "--app", ":1", NULL};
  wisp_config c;
  char err[256] = "";
  assert_int_equal(parse(&c, args, err, sizeof(err)), WISP_OK);
  assert_int_equal(c.buffer_limit, 512 << 20);
  wisp_config_cleanup(&c);
  unsetenv("WISP_BUFFER_LIMIT");
}

/* --max-header-list-size: 60K by default (Envoy's max_request_headers_kb),
 * 1K to 64K (what a stream's header store holds). */
static void test_max_header_list_size(void **state) {
  (void)state;
  static const struct {
    const char *val;
    size_t want; /* 0: refused */
  } cases[] = {{"1K", 1024}, {"16K", 16384}, {"64K", 65536}, {"1023", 0}, {"65537", 0}, {"1M", 0}, {"0", 0}};
  wisp_config c;
  char err[256] = "";
  const char *dflt[] = {CERTS, "--app", ":1", NULL};
  assert_int_equal(parse(&c, dflt, err, sizeof(err)), WISP_OK);
  assert_int_equal(c.max_header_list_size, 60 * 1024);
  wisp_config_cleanup(&c);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *args[] = {CERTS, "--app", ":1", "--max-header-list-size", cases[i].val, NULL};
    wisp_err rc = parse(&c, args, err, sizeof(err));
    if (cases[i].want) {
      assert_int_equal(rc, WISP_OK);
      assert_int_equal(c.max_header_list_size, cases[i].want);
    } else {
      assert_int_equal(rc, WISP_ERR_USAGE);
      assert_non_null(strstr(err, "--max-header-list-size"));
    }
    wisp_config_cleanup(&c);
  }
}

/* --stream-idle-timeout (300 s) and --tunnel-idle-timeout (3600 s), Envoy's
 * stream_idle_timeout and tcp_proxy idle_timeout: 0 turns one off, seconds
 * with a fraction down to 0.1 (a sweep every timeout/4, a timer per
 * tunnel), WISP_*_IDLE_TIMEOUT; a negative, tiny or non-number refused. */
static void test_idle_timeouts(void **state) {
  (void)state;
  static const struct {
    const char *flag, *env;
    size_t field; /* offset of its double in wisp_config */
    double dflt;
  } flags[] = {
      {"--stream-idle-timeout", "WISP_STREAM_IDLE_TIMEOUT", offsetof(wisp_config, stream_idle_timeout), 300.0},
      {"--tunnel-idle-timeout", "WISP_TUNNEL_IDLE_TIMEOUT", offsetof(wisp_config, tunnel_idle_timeout), 3600.0}};
  static const struct {
    const char *val;
    double want; /* < 0: refused */
  } cases[] = {{"0", 0.0},     {"2", 2.0}, {"0.5", 0.5}, {"0.1", 0.1}, {"0.05", -1},
               {"0.0001", -1}, {"-1", -1}, {"5s", -1},   {"nan", -1}};
  wisp_config c;
  char err[256] = "";
  const char *dflt[] = {CERTS, "--app", ":1", NULL};
  for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++) {
#define FIELD (*(double *)((char *)&c + flags[f].field))
    assert_int_equal(parse(&c, dflt, err, sizeof(err)), WISP_OK);
    assert_true(FIELD == flags[f].dflt);
    wisp_config_cleanup(&c);
    setenv(flags[f].env, "0", 1);
    assert_int_equal(parse(&c, dflt, err, sizeof(err)), WISP_OK);
    assert_true(FIELD == 0.0);
    wisp_config_cleanup(&c);
    unsetenv(flags[f].env);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
      const char *args[] = {CERTS, "--app", ":1", flags[f].flag, cases[i].val, NULL};
      wisp_err rc = parse(&c, args, err, sizeof(err));
      if (cases[i].want >= 0) {
        assert_int_equal(rc, WISP_OK);
        assert_true(FIELD == cases[i].want);
      } else {
        assert_int_equal(rc, WISP_ERR_USAGE);
        assert_non_null(strstr(err, flags[f].flag));
      }
      wisp_config_cleanup(&c);
    }
#undef FIELD
  }
}

int main(void) {
  struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_stream_limits, clear_env, clear_env),
      cmocka_unit_test_setup_teardown(test_count_ranges, clear_env, clear_env),
      cmocka_unit_test_setup_teardown(test_workers, clear_env, clear_env),
      cmocka_unit_test_setup_teardown(test_buffer_sizes, clear_env, clear_env),
      cmocka_unit_test_setup_teardown(test_max_header_list_size, clear_env, clear_env),
      cmocka_unit_test_setup_teardown(test_idle_timeouts, clear_env, clear_env),
      cmocka_unit_test_setup_teardown(test_table, clear_env, clear_env),
      cmocka_unit_test_setup_teardown(test_env_only, clear_env, clear_env),
      cmocka_unit_test_setup_teardown(test_help_via_env, clear_env, clear_env),
      cmocka_unit_test_setup_teardown(test_max_routes, clear_env, clear_env),
      cmocka_unit_test_setup_teardown(test_max_routes_env, clear_env, clear_env),
      cmocka_unit_test_setup_teardown(test_parse_route_direct, clear_env, clear_env),
      cmocka_unit_test_setup_teardown(test_small_err_buffer, clear_env, clear_env),
      cmocka_unit_test_setup_teardown(test_usage_text, clear_env, clear_env),
      cmocka_unit_test_setup_teardown(test_repeat_parse_independent, clear_env, clear_env),
      cmocka_unit_test_setup_teardown(test_nan_timeout_rejected, clear_env, clear_env),
      cmocka_unit_test_setup_teardown(test_short_option_cluster, clear_env, clear_env),
  };
  return WISP_RUN_GROUP_TESTS(tests, NULL, NULL);
}
