#include "lib/wisp_spiffe.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define SCHEME "spiffe://"

static void set_err(char *buf, size_t len, const char *msg) {
  if (buf && len) snprintf(buf, len, "%s", msg);
}

static int td_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static int path_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

/* Validates the path (starting at '/', or empty) segment by segment. */
static const char *check_path(const char *p, size_t len) {
  size_t i = 0;
  while (i < len) {
    if (p[i] != '/') return "path must start with '/'";
    size_t start = ++i;
    while (i < len && p[i] != '/') {
      if (!path_char(p[i])) return "path contains a character outside [A-Za-z0-9.-_]";
      i++;
    }
    size_t seg = i - start;
    if (seg == 0) return "path has an empty segment (or a trailing '/')";
    if ((seg == 1 && p[start] == '.') || (seg == 2 && p[start] == '.' && p[start + 1] == '.'))
      return "path has a '.' or '..' segment";
  }
  return NULL;
}

wisp_err wisp_spiffe_parse(wisp_spiffe_id *out, const char *s, size_t len, char *err_buf, size_t err_len) {
  const size_t scheme_len = sizeof(SCHEME) - 1;
  const char *why = NULL;
  if (len > WISP_SPIFFE_MAX) {
    why = "longer than 2048 bytes";
  } else if (len < scheme_len || strncmp(s, SCHEME, scheme_len) != 0) {
    why = "does not start with spiffe://";
  }
  size_t td_end = scheme_len;
  while (!why && td_end < len && s[td_end] != '/') {
    if (!td_char(s[td_end])) why = "trust domain contains a character outside [a-z0-9.-_]";
    td_end++;
  }
  if (!why && td_end == scheme_len) why = "trust domain is empty";
  if (!why && td_end - scheme_len > WISP_SPIFFE_TD_MAX) why = "trust domain is longer than 255 bytes";
  if (!why) why = check_path(s + td_end, len - td_end);
  if (why) {
    set_err(err_buf, err_len, why);
    return WISP_ERR_IDENTITY;
  }
  memcpy(out->id, s, len);
  out->id[len] = '\0';
  memcpy(out->trust_domain, s + scheme_len, td_end - scheme_len);
  out->trust_domain[td_end - scheme_len] = '\0';
  out->path_off = td_end;
  return WISP_OK;
}

wisp_err wisp_spiffe_from_cert(wisp_spiffe_id *out, const X509 *cert, char *err_buf, size_t err_len) {
  int found = 0; /* -1: no SAN extension, -2: several, else it is there */
  GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, &found, NULL);
  /* A SAN that does not decode leaves BoringSSL errors queued, which a
   * later SSL_get_error on this thread would take as its own. */
  ERR_clear_error();
  if (!names && found != -1) {
    set_err(err_buf, err_len,
            found == -2 ? "certificate has more than one subjectAltName extension"
                        : "certificate's subjectAltName does not decode");
    return WISP_ERR_IDENTITY;
  }
  const ASN1_IA5STRING *uri = NULL;
  int uris = 0;
  for (size_t i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
    const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type == GEN_URI) {
      uris++;
      uri = gn->d.uniformResourceIdentifier;
    }
  }
  wisp_err rc = WISP_ERR_IDENTITY;
  if (uris == 0) {
    set_err(err_buf, err_len, "certificate has no URI SAN (not an X.509-SVID)");
  } else if (uris > 1) {
    set_err(err_buf, err_len, "certificate has more than one URI SAN (X.509-SVID allows exactly one)");
  } else {
    char why[128];
    rc = wisp_spiffe_parse(out, (const char *)ASN1_STRING_get0_data(uri), (size_t)ASN1_STRING_length(uri), why,
                           sizeof(why));
    if (rc != WISP_OK && err_buf && err_len) snprintf(err_buf, err_len, "URI SAN is not a SPIFFE ID: %s", why);
  }
  GENERAL_NAMES_free(names);
  return rc;
}

const char *wisp_spiffe_leaf_refused(X509 *leaf) {
  uint32_t flags = X509_get_extension_flags(leaf);
  if (flags & EXFLAG_CA) return "it is a CA certificate (basicConstraints CA:TRUE)";
  if (!(flags & EXFLAG_KUSAGE))
    return "it has no keyUsage extension (a leaf SVID needs a critical keyUsage with digitalSignature)";
  int at = X509_get_ext_by_NID(leaf, NID_key_usage, -1);
  if (at < 0 || !X509_EXTENSION_get_critical(X509_get_ext(leaf, at)))
    return "its keyUsage extension is not marked critical";
  uint32_t ku = X509_get_key_usage(leaf);
  if (!(ku & KU_DIGITAL_SIGNATURE)) return "its keyUsage lacks digitalSignature";
  if (ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) return "its keyUsage has keyCertSign or cRLSign, which only a CA may have";
  if (X509_check_ca(leaf) != 0) return "it can act as a CA";
  return NULL;
}

void wisp_spiffe_describe_cert(const X509 *cert, char *out, size_t out_len) {
  wisp_spiffe_id id;
  if (wisp_spiffe_from_cert(&id, cert, NULL, 0) == WISP_OK) {
    snprintf(out, out_len, "%s", id.id);
    return;
  }
  char subject[256];
  X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
  snprintf(out, out_len, "subject %s", subject);
}

void wisp_spiffe_split_names(const char *id, char *td, size_t td_len, char *ns, size_t ns_len, char *sa,
                             size_t sa_len) {
  static const char kScheme[] = "spiffe://";
  snprintf(td, td_len, "unknown");
  snprintf(ns, ns_len, "unknown");
  snprintf(sa, sa_len, "unknown");
  if (!id || strncmp(id, kScheme, sizeof(kScheme) - 1) != 0) return;
  const char *host = id + sizeof(kScheme) - 1;
  const char *path = strchr(host, '/');
  size_t host_len = path ? (size_t)(path - host) : strlen(host);
  if (host_len > 0) snprintf(td, td_len, "%.*s", (int)host_len, host);
  if (!path || strncmp(path, "/ns/", 4) != 0) return;
  const char *n = path + 4;
  const char *slash = strchr(n, '/');
  if (!slash || slash == n || strncmp(slash, "/sa/", 4) != 0) return;
  const char *s = slash + 4;
  if (!*s || strchr(s, '/')) return; /* exactly /ns/NS/sa/SA */
  snprintf(ns, ns_len, "%.*s", (int)(slash - n), n);
  snprintf(sa, sa_len, "%s", s);
}

void wisp_spiffe_names_init(wisp_spiffe_names *out, const char *id) {
  bool known = id && *id;
  out->id = known ? id : "unknown";
  wisp_spiffe_split_names(known ? id : NULL, out->td, sizeof(out->td), out->ns, sizeof(out->ns), out->sa,
                          sizeof(out->sa));
}
