/* The values of wispctl inject's wisp.dev/ annotations, checked before
 * they become wisp-iptables.sh flags (with the script's own rules), so that a
 * typo stops inject instead of a pod whose init container fails. Pure: no
 * I/O, no state. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/wispctl/inject.h"

#define ITEM_MAX 127

typedef bool (*item_check)(const char *item, char *why, size_t why_len);

/* The proxy's own ports: never app ports (the redirect would loop). */
static const long kProxyPorts[] = {WISPCTL_INJECT_ADMIN_PORT, WISPCTL_INJECT_OUTBOUND_PORT, WISPCTL_INJECT_INBOUND_PORT,
                                   WISPCTL_INJECT_METRICS_PORT};

/* Checks each item of the comma-separated |list| with |ok|. */
static bool list_ok(const char *list, item_check ok, char *why, size_t why_len) {
  const char *p = list;
  do {
    size_t len = strcspn(p, ",");
    char item[ITEM_MAX + 1];
    if (len == 0) {
      snprintf(why, why_len, "an item is empty");
      return false;
    }
    if (len > ITEM_MAX) {
      snprintf(why, why_len, "an item is longer than %d bytes", ITEM_MAX);
      return false;
    }
    memcpy(item, p, len);
    item[len] = '\0';
    if (!ok(item, why, why_len)) return false;
    p += len;
  } while (*p++ == ',');
  return true;
}

static bool port_ok(const char *item, char *why, size_t why_len) {
  long v = 0;
  size_t n = strspn(item, "0123456789");
  if (n > 0 && n <= 5 && item[n] == '\0') v = strtol(item, NULL, 10);
  if (v >= 1 && v <= 65535) return true;
  snprintf(why, why_len, "\"%s\" is not a port (1-65535)", item);
  return false;
}

/* An app port: not one of the proxy's own (the redirect would loop). */
static bool app_port_ok(const char *item, char *why, size_t why_len) {
  if (!port_ok(item, why, why_len)) return false;
  for (size_t i = 0; i < sizeof(kProxyPorts) / sizeof(kProxyPorts[0]); i++) {
    if (strtol(item, NULL, 10) == kProxyPorts[i]) {
      snprintf(why, why_len, "%s is one of the proxy's own ports (%ld, %ld, %ld, %ld)", item, kProxyPorts[0],
               kProxyPorts[1], kProxyPorts[2], kProxyPorts[3]);
      return false;
    }
  }
  return true;
}

/* An IPv4 or IPv6 address, with or without /PREFIX. */
static bool cidr_ok(const char *item, char *why, size_t why_len) {
  char addr[64];
  unsigned char bin[16];
  const char *slash = strchr(item, '/');
  size_t len = slash ? (size_t)(slash - item) : strlen(item);
  if (len < sizeof(addr)) {
    memcpy(addr, item, len);
    addr[len] = '\0';
    int family = strchr(addr, ':') ? AF_INET6 : AF_INET;
    long max = family == AF_INET6 ? 128 : 32;
    size_t digits = slash ? strspn(slash + 1, "0123456789") : 0;
    bool prefix_ok =
        !slash || (digits > 0 && digits <= 3 && slash[1 + digits] == '\0' && strtol(slash + 1, NULL, 10) <= max);
    if (inet_pton(family, addr, bin) == 1 && prefix_ok) return true;
  }
  snprintf(why, why_len, "\"%s\" is not an IPv4 or IPv6 address or CIDR", item);
  return false;
}

static bool inbound_ports_ok(const char *v, char *why, size_t why_len) {
  char detail[256];
  if (!strcmp(v, "all") || !strcmp(v, "none") || list_ok(v, app_port_ok, detail, sizeof(detail))) return true;
  snprintf(why, why_len, "want all, none or app ports: %s", detail);
  return false;
}

bool wispctl_inject_value_ok(wispctl_inject_value kind, const char *v, char *why, size_t why_len) {
  switch (kind) {
    case WISPCTL_INJECT_PORTS:
      return list_ok(v, port_ok, why, why_len);
    case WISPCTL_INJECT_INBOUND_PORTS:
      return inbound_ports_ok(v, why, why_len);
    case WISPCTL_INJECT_CIDRS:
      return list_ok(v, cidr_ok, why, why_len);
  }
  return false;
}
