#include "lib/wisp_tls.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "lib/wisp_ca.h"
#include "lib/wisp_filewatch.h"
#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"

enum { FILE_CERT, FILE_KEY, FILE_BUNDLE, FILE_COUNT };

struct wisp_tls {
  wisp_tls_opts opts;
  SSL_CTX *server; /* owned; NULL until first load */
  SSL_CTX *client;
  wisp_tls_info info;
  wisp_filewatch files; /* the FILE_COUNT files in force; empty in agent mode */
  EVP_PKEY *key;        /* in-memory credentials (agent mode), owned */
  STACK_OF(X509) * chain;
  STACK_OF(X509) * roots;
};

static int g_verify_idx = -1;

static const uint8_t kAlpnH2[] = {2, 'h', '2'};

wisp_tls *wisp_tls_new(const wisp_tls_opts *opts) {
  if (g_verify_idx < 0) g_verify_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
  wisp_tls *t = wisp_calloc(1, sizeof(*t));
  if (opts) t->opts = *opts;
  return t;
}

void wisp_tls_free(wisp_tls *t) {
  if (!t) return;
  SSL_CTX_free(t->server);
  SSL_CTX_free(t->client);
  wisp_filewatch_cleanup(&t->files);
  EVP_PKEY_free(t->key);
  sk_X509_pop_free(t->chain, X509_free);
  sk_X509_pop_free(t->roots, X509_free);
  free(t);
}

static void asn1_time_str(const ASN1_TIME *tm, char *out, size_t out_len) {
  BIO *b = BIO_new(BIO_s_mem());
  const uint8_t *data;
  size_t len = 0;
  if (b && ASN1_TIME_print(b, tm) && BIO_mem_contents(b, &data, &len)) {
    snprintf(out, out_len, "%.*s", (int)len, (const char *)data);
  } else {
    snprintf(out, out_len, "?");
  }
  BIO_free(b);
}

const char *wisp_tls_failure_name(wisp_tls_failure f) {
  static const char *const kNames[WISP_TLS_FAIL_COUNT] = {
      [WISP_TLS_FAIL_NONE] = "",
      [WISP_TLS_FAIL_NO_CLIENT_CERT] = "no_client_cert",
      [WISP_TLS_FAIL_UNKNOWN_CA] = "unknown_ca",
      [WISP_TLS_FAIL_EXPIRED] = "expired",
      [WISP_TLS_FAIL_NOT_YET_VALID] = "not_yet_valid",
      [WISP_TLS_FAIL_IDENTITY] = "wrong_identity",
      [WISP_TLS_FAIL_PLAINTEXT] = "plaintext",
      [WISP_TLS_FAIL_TLS_VERSION] = "tls_version",
      [WISP_TLS_FAIL_ALPN] = "alpn",
      [WISP_TLS_FAIL_TIMEOUT] = "handshake_timeout",
      [WISP_TLS_FAIL_OTHER] = "other",
  };
  return (unsigned)f < WISP_TLS_FAIL_COUNT ? kNames[f] : "other";
}

/* The first reason set stands, with its kind. */
static void set_reason(wisp_tls_verify *v, wisp_tls_failure kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_reason(wisp_tls_verify *v, wisp_tls_failure kind, const char *fmt, ...) {
  if (v->reason[0]) return;
  v->failure = kind;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
  va_end(ap);
}

/* Turns an X.509 verification error into words a mesh operator can act on. */
static void describe_x509_error(wisp_tls_verify *v, X509_STORE_CTX *st, int err, X509 *cert) {
  char who[WISP_SPIFFE_MAX + 16] = "peer";
  char when[64] = "";
  if (cert) wisp_spiffe_describe_cert(cert, who, sizeof(who));
  switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      if (cert) asn1_time_str(X509_get0_notAfter(cert), when, sizeof(when));
      set_reason(v, WISP_TLS_FAIL_EXPIRED, "certificate of %s expired at %s", who, when);
      break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      if (cert) asn1_time_str(X509_get0_notBefore(cert), when, sizeof(when));
      set_reason(v, WISP_TLS_FAIL_NOT_YET_VALID, "certificate of %s is not valid before %s", who, when);
      break;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      set_reason(v, WISP_TLS_FAIL_UNKNOWN_CA,
                 "%s presented a self-signed certificate%s, not one issued by the trust bundle", who, "");
      break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: {
      char issuer[256] = "?";
      if (cert && X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)) == 0 &&
          X509_STORE_CTX_get_error_depth(st) == 0) {
        set_reason(v, WISP_TLS_FAIL_UNKNOWN_CA,
                   "%s presented a self-signed certificate%s, not one issued by the trust bundle", who, "");
        break;
      }
      if (cert) X509_NAME_oneline(X509_get_issuer_name(cert), issuer, sizeof(issuer));
      set_reason(v, WISP_TLS_FAIL_UNKNOWN_CA,
                 "certificate of %s was issued by a CA that is not in the trust bundle (issuer %s)", who, issuer);
      break;
    }
    default:
      set_reason(v, WISP_TLS_FAIL_OTHER, "certificate of %s failed verification: %s", who,
                 X509_verify_cert_error_string(err));
  }
}

/* The leaf must be an X.509-SVID in our trust domain, and the expected ID
 * when the route names one. */
static int check_leaf_identity(wisp_tls_verify *v, X509 *leaf) {
  char why[256];
  const char *bad = wisp_spiffe_leaf_refused(leaf);
  if (bad) {
    char who[300];
    wisp_spiffe_describe_cert(leaf, who, sizeof(who));
    set_reason(v, WISP_TLS_FAIL_IDENTITY, "peer certificate (%s) is not a valid X.509-SVID leaf: %s", who, bad);
    return 0;
  }
  if (wisp_spiffe_from_cert(&v->peer, leaf, why, sizeof(why)) != WISP_OK) {
    char who[300];
    wisp_spiffe_describe_cert(leaf, who, sizeof(who));
    set_reason(v, WISP_TLS_FAIL_IDENTITY, "peer certificate (%s) is not a SPIFFE SVID: %s", who, why);
    return 0;
  }
  if (v->expect_id && strcmp(v->expect_id, v->peer.id) != 0) {
    set_reason(v, WISP_TLS_FAIL_IDENTITY, "peer presented %s, expected %s", v->peer.id, v->expect_id);
    return 0;
  }
  if (!v->expect_id && strcmp(v->trust_domain, v->peer.trust_domain) != 0) {
    char ours[WISP_SPIFFE_TD_MAX + 16];
    snprintf(ours, sizeof(ours), "spiffe://%s", v->trust_domain);
    set_reason(v, WISP_TLS_FAIL_IDENTITY, "peer presented %s, which is outside our trust domain %s", v->peer.id, ours);
    return 0;
  }
  v->peer_ok = true;
  return 1;
}

static int verify_cb(int ok, X509_STORE_CTX *st) {
  SSL *ssl = X509_STORE_CTX_get_ex_data(st, SSL_get_ex_data_X509_STORE_CTX_idx());
  wisp_tls_verify *v = ssl ? wisp_tls_get0_verify(ssl) : NULL;
  if (!v) return 0;
  X509 *cert = X509_STORE_CTX_get_current_cert(st);
  if (!ok) {
    /* The ID the refused leaf claims (unverified), for metrics and alerts;
     * peer_ok stays false. */
    X509 *leaf = X509_STORE_CTX_get0_cert(st);
    char why[8];
    if (leaf && !v->reason[0] && wisp_spiffe_from_cert(&v->peer, leaf, why, sizeof(why)) != WISP_OK)
      v->peer.id[0] = '\0';
    describe_x509_error(v, st, X509_STORE_CTX_get_error(st), cert);
    return 0;
  }
  if (X509_STORE_CTX_get_error_depth(st) == 0 && !check_leaf_identity(v, cert)) {
    X509_STORE_CTX_set_error(st, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  return 1;
}

/* h2 for HTTP/2, else wisp-l4 for a byte stream (the proxy's L4 tunnel);
 * offers without either are refused. A client that offers no ALPN at all
 * is refused too where require_alpn is set (select_cb below), else served
 * h2. */
static bool alpn_has(const uint8_t *in, unsigned in_len, const char *proto, const uint8_t **out) {
  size_t plen = strlen(proto);
  for (unsigned i = 0; i < in_len;) {
    unsigned n = in[i];
    if (i + 1 + n > in_len) break;
    if (n == plen && memcmp(in + i + 1, proto, plen) == 0) {
      *out = in + i + 1;
      return true;
    }
    i += 1 + n;
  }
  return false;
}

static int alpn_select_cb(SSL *ssl, const uint8_t **out, uint8_t *out_len, const uint8_t *in, unsigned in_len,
                          void *arg) {
  if (alpn_has(in, in_len, "h2", out)) {
    *out_len = 2;
    return SSL_TLSEXT_ERR_OK;
  }
  if (alpn_has(in, in_len, "wisp-l4", out)) {
    *out_len = 7;
    return SSL_TLSEXT_ERR_OK;
  }
  wisp_tls_verify *v = wisp_tls_get0_verify(ssl);
  if (v) set_reason(v, WISP_TLS_FAIL_ALPN, "peer offered ALPN without h2 or wisp-l4: refused");
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* A client without ALPN cannot say whether it brings HTTP/2 or a byte
 * stream, and every sidecar (wisp's, Envoy's) offers one: refused before
 * any certificate is exchanged. */
static enum ssl_select_cert_result_t require_alpn_cb(const SSL_CLIENT_HELLO *hello) {
  const uint8_t *data;
  size_t len;
  if (SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_application_layer_protocol_negotiation, &data, &len))
    return ssl_select_cert_success;
  wisp_tls_verify *v = wisp_tls_get0_verify(hello->ssl);
  if (v)
    set_reason(v, WISP_TLS_FAIL_ALPN,
               "peer offered no ALPN protocol: this mTLS port speaks h2 or wisp-l4 only (openssl s_client: -alpn h2)");
  return ssl_select_cert_error;
}

static void describe_ssl_errors(char *err, size_t err_len, const char *what, const char *path) {
  unsigned long e = ERR_get_error();
  char detail[256] = "unknown error";
  if (e) ERR_error_string_n(e, detail, sizeof(detail));
  ERR_clear_error();
  snprintf(err, err_len, "%s %s: %s", what, path, detail);
}

/* The settings every wisp context has, whatever its credentials. */
/* On failure (out of memory) |err| says so: every caller's failure path
 * then has its reason. */
static SSL_CTX *base_ctx(const wisp_tls *t, bool server, char *err, size_t err_len) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  if (!ctx) {
    snprintf(err, err_len, "out of memory: cannot make a TLS context");
    ERR_clear_error();
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, t->opts.allow_tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set1_curves_list(ctx, "X25519:P-256");
  /* No resumption: every connection proves its SVID afresh, so a rotated or
   * revoked identity never rides on an old ticket. */
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  bool optional = server && t->opts.client_cert_optional;
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (optional ? 0 : SSL_VERIFY_FAIL_IF_NO_PEER_CERT), verify_cb);
  if (server) {
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
    if (t->opts.require_alpn) SSL_CTX_set_select_certificate_cb(ctx, require_alpn_cb);
  } else {
    SSL_CTX_set_alpn_protos(ctx, kAlpnH2, sizeof(kAlpnH2));
  }
  return ctx;
}

static SSL_CTX *new_ctx(const wisp_tls *t, bool server, const char *cert, const char *key, const char *bundle,
                        char *err, size_t err_len) {
  SSL_CTX *ctx = base_ctx(t, server, err, err_len);
  if (!ctx) return NULL;
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
    describe_ssl_errors(err, err_len, "cannot load certificate", cert);
  } else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      snprintf(err, err_len, "private key %s does not match certificate %s", key, cert);
    } else {
      describe_ssl_errors(err, err_len, "cannot load private key", key);
    }
  } else if (SSL_CTX_check_private_key(ctx) != 1) {
    describe_ssl_errors(err, err_len, "private key does not match certificate", key);
  } else if (SSL_CTX_load_verify_locations(ctx, bundle, NULL) != 1) {
    describe_ssl_errors(err, err_len, "cannot load trust bundle", bundle);
  } else {
    return ctx;
  }
  SSL_CTX_free(ctx);
  return NULL;
}

/* Root count and earliest expiry of a bundle, for wisp_tls_info. */
static void roots_info(wisp_tls_info *info, STACK_OF(X509) * roots) {
  const ASN1_TIME *earliest = NULL;
  const X509 *earliest_cert = NULL;
  info->bundle_roots = (int)sk_X509_num(roots);
  for (size_t i = 0; i < sk_X509_num(roots); i++) {
    const ASN1_TIME *na = X509_get0_notAfter(sk_X509_value(roots, i));
    int days = 0, secs = 0;
    if (!earliest || (ASN1_TIME_diff(&days, &secs, earliest, na) && (days < 0 || secs < 0))) {
      earliest = na;
      earliest_cert = sk_X509_value(roots, i);
    }
  }
  if (earliest) asn1_time_str(earliest, info->bundle_not_after, sizeof(info->bundle_not_after));
  if (!earliest_cert || wisp_ca_cert_not_after(earliest_cert, &info->bundle_not_after_unix) != WISP_OK)
    info->bundle_not_after_unix = 0;
  /* The newest root's end: an old root near its end is a rotation under
   * way when a newer one outlives it. */
  info->bundle_newest_not_after_unix = 0;
  for (size_t i = 0; i < sk_X509_num(roots); i++) {
    int64_t t = 0;
    if (wisp_ca_cert_not_after(sk_X509_value(roots, i), &t) == WISP_OK && t > info->bundle_newest_not_after_unix)
      info->bundle_newest_not_after_unix = t;
  }
}

static void bundle_info(wisp_tls_info *info, const char *bundle) {
  FILE *f = fopen(bundle, "r");
  STACK_OF(X509) *roots = sk_X509_new_null();
  X509 *c;
  while (f && roots && (c = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) sk_X509_push(roots, c);
  ERR_clear_error();
  if (roots) roots_info(info, roots);
  sk_X509_pop_free(roots, X509_free);
  if (f) fclose(f);
}

/* Credentials held in memory (from the agent), as one context. */
static SSL_CTX *mem_ctx(const wisp_tls *t, bool server, EVP_PKEY *key, STACK_OF(X509) * chain, STACK_OF(X509) * roots,
                        char *err, size_t err_len) {
  SSL_CTX *ctx = base_ctx(t, server, err, err_len);
  if (!ctx) return NULL;
  bool ok = sk_X509_num(chain) > 0 && SSL_CTX_use_certificate(ctx, sk_X509_value(chain, 0)) == 1;
  for (size_t i = 1; ok && i < sk_X509_num(chain); i++) ok = SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i)) == 1;
  ok = ok && SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
  X509_STORE *store = SSL_CTX_get_cert_store(ctx);
  for (size_t i = 0; ok && i < sk_X509_num(roots); i++) ok = X509_STORE_add_cert(store, sk_X509_value(roots, i)) == 1;
  if (!ok) {
    describe_ssl_errors(err, err_len, "cannot install the SVID from", "the agent");
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

static wisp_err cert_info(wisp_tls_info *info, SSL_CTX *ctx, char *err, size_t err_len) {
  X509 *leaf = SSL_CTX_get0_certificate(ctx);
  char why[256];
  wisp_spiffe_id id;
  if (wisp_spiffe_from_cert(&id, leaf, why, sizeof(why)) != WISP_OK) {
    snprintf(err, err_len, "own certificate is not an X.509-SVID: %s", why);
    return WISP_ERR_IDENTITY;
  }
  snprintf(info->spiffe_id, sizeof(info->spiffe_id), "%s", id.id);
  wisp_ca_cert_serial_hex(leaf, info->serial, sizeof(info->serial));
  asn1_time_str(X509_get0_notAfter(leaf), info->not_after, sizeof(info->not_after));
  if (wisp_ca_cert_not_after(leaf, &info->not_after_unix) != WISP_OK) info->not_after_unix = 0;
  if (wisp_ca_cert_not_before(leaf, &info->not_before_unix) != WISP_OK) info->not_before_unix = 0;
  return WISP_OK;
}

/* Puts a new pair of contexts in force (taking them) if both were made and
 * the leaf is an SVID; the bundle facts come from |roots| or the |bundle|
 * file. On failure frees them and the old pair stays. */
static wisp_err swap_in(wisp_tls *t, SSL_CTX *server, SSL_CTX *client, STACK_OF(X509) * roots, const char *bundle,
                        char *err, size_t err_len) {
  wisp_tls_info info = t->info;
  if (!client || cert_info(&info, server, err, err_len) != WISP_OK) {
    SSL_CTX_free(server);
    SSL_CTX_free(client);
    return WISP_ERR_TLS;
  }
  if (roots) {
    roots_info(&info, roots);
  } else {
    bundle_info(&info, bundle);
  }
  info.generation++;
  SSL_CTX_free(t->server);
  SSL_CTX_free(t->client);
  t->server = server;
  t->client = client;
  t->info = info;
  return WISP_OK;
}

wisp_err wisp_tls_load_files(wisp_tls *t, const char *cert, const char *key, const char *bundle, char *err,
                             size_t err_len) {
  const char *paths[FILE_COUNT] = {cert, key, bundle};
  wisp_filewatch files = {0};
  size_t bad = 0;
  if (wisp_filewatch_init(&files, paths, FILE_COUNT, &bad) != WISP_OK) {
    snprintf(err, err_len, "cannot read %s: %s", paths[bad], strerror(errno));
    return WISP_ERR_USAGE;
  }
  SSL_CTX *server = new_ctx(t, true, cert, key, bundle, err, err_len);
  SSL_CTX *client = server ? new_ctx(t, false, cert, key, bundle, err, err_len) : NULL;
  wisp_err rc = swap_in(t, server, client, NULL, bundle, err, err_len);
  if (rc != WISP_OK) {
    wisp_filewatch_cleanup(&files);
    return rc;
  }
  /* |paths| may be the old watch's own: it goes only now. */
  wisp_filewatch_cleanup(&t->files);
  t->files = files;
  return WISP_OK;
}

static wisp_err install_mem(wisp_tls *t, EVP_PKEY *key, STACK_OF(X509) * chain, STACK_OF(X509) * roots, char *err,
                            size_t err_len) {
  SSL_CTX *server = mem_ctx(t, true, key, chain, roots, err, err_len);
  SSL_CTX *client = server ? mem_ctx(t, false, key, chain, roots, err, err_len) : NULL;
  WISP_GUARD(swap_in(t, server, client, roots, NULL, err, err_len));
  /* Keep what the contexts were made of, to rebuild on a new bundle. */
  EVP_PKEY_up_ref(key);
  EVP_PKEY_free(t->key);
  t->key = key;
  STACK_OF(X509) *c = X509_chain_up_ref(chain), *r = X509_chain_up_ref(roots);
  sk_X509_pop_free(t->chain, X509_free);
  sk_X509_pop_free(t->roots, X509_free);
  t->chain = c;
  t->roots = r;
  return WISP_OK;
}

wisp_err wisp_tls_set_creds(wisp_tls *t, EVP_PKEY *key, STACK_OF(X509) * chain, STACK_OF(X509) * roots, char *err,
                            size_t err_len) {
  return install_mem(t, key, chain, roots, err, err_len);
}

wisp_err wisp_tls_load_trust_file(wisp_tls *t, const char *bundle, char *err, size_t err_len) {
  SSL_CTX *ctx = base_ctx(t, false, err, err_len);
  if (!ctx) return WISP_ERR_NOMEM;
  if (SSL_CTX_load_verify_locations(ctx, bundle, NULL) != 1) {
    describe_ssl_errors(err, err_len, "cannot load trust bundle", bundle);
    SSL_CTX_free(ctx);
    return WISP_ERR_TLS;
  }
  SSL_CTX_free(t->client);
  t->client = ctx;
  return WISP_OK;
}

wisp_err wisp_tls_set_roots(wisp_tls *t, STACK_OF(X509) * roots, char *err, size_t err_len) {
  if (!t->key) {
    snprintf(err, err_len, "no SVID from the agent yet");
    return WISP_ERR_USAGE;
  }
  return install_mem(t, t->key, t->chain, roots, err, err_len);
}

wisp_err wisp_tls_reload_if_changed(wisp_tls *t, bool *out_changed, char *err, size_t err_len) {
  *out_changed = false;
  /* A file briefly missing mid-rotation is not a change yet; a broken file
   * counts as seen, so it is reported once, not at every tick. */
  if (!wisp_filewatch_changed(&t->files)) return WISP_OK;
  WISP_GUARD(wisp_tls_load_files(t, wisp_filewatch_get0_path(&t->files, FILE_CERT),
                                 wisp_filewatch_get0_path(&t->files, FILE_KEY),
                                 wisp_filewatch_get0_path(&t->files, FILE_BUNDLE), err, err_len));
  *out_changed = true;
  return WISP_OK;
}

void wisp_tls_adopt(wisp_tls *dst, const wisp_tls *src) {
  if (dst == src) return;
  if (src->server) SSL_CTX_up_ref(src->server);
  if (src->client) SSL_CTX_up_ref(src->client);
  SSL_CTX_free(dst->server);
  SSL_CTX_free(dst->client);
  dst->server = src->server;
  dst->client = src->client;
  dst->info = src->info;
}

bool wisp_tls_ready(const wisp_tls *t) { return t->server != NULL; }

const wisp_tls_info *wisp_tls_get0_info(const wisp_tls *t) { return &t->info; }

SSL *wisp_tls_new_ssl(const wisp_tls *t, bool server, wisp_tls_verify *v) {
  SSL_CTX *ctx = server ? t->server : t->client; /* client alone: trust-only mode */
  if (!ctx) return NULL;
  SSL *ssl = SSL_new(ctx);
  if (!ssl) return NULL;
  wisp_spiffe_id self;
  if (wisp_spiffe_parse(&self, t->info.spiffe_id, strlen(t->info.spiffe_id), NULL, 0) == WISP_OK)
    snprintf(v->trust_domain, sizeof(v->trust_domain), "%s", self.trust_domain);
  wisp_tls_set_verify(ssl, v);
  return ssl;
}

void wisp_tls_set_verify(SSL *ssl, wisp_tls_verify *v) { SSL_set_ex_data(ssl, g_verify_idx, v); }

wisp_tls_verify *wisp_tls_get0_verify(const SSL *ssl) { return SSL_get_ex_data(ssl, g_verify_idx); }

void wisp_tls_describe_failure(wisp_tls_verify *v, SSL *ssl, int ret) {
  unsigned long e = ERR_peek_error();
  int lib = ERR_GET_LIB(e), reason = ERR_GET_REASON(e);
  if (lib == ERR_LIB_SSL && reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
    set_reason(v, WISP_TLS_FAIL_NO_CLIENT_CERT, "peer presented no client certificate");
  } else if (lib == ERR_LIB_SSL && reason == SSL_R_UNSUPPORTED_PROTOCOL) {
    set_reason(v, WISP_TLS_FAIL_TLS_VERSION, "peer does not support TLS 1.3 (TLS 1.2 is off; see --allow-tls12)");
  } else if (lib == ERR_LIB_SSL && (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_HTTP_REQUEST ||
                                    reason == SSL_R_HTTPS_PROXY_REQUEST)) {
    set_reason(v, WISP_TLS_FAIL_PLAINTEXT, "peer did not speak TLS (plaintext on an mTLS port?)");
  } else if (lib == ERR_LIB_SSL && reason >= SSL_AD_REASON_OFFSET) {
    set_reason(v, WISP_TLS_FAIL_OTHER, "peer refused the handshake with TLS alert \"%s\"",
               SSL_alert_desc_string_long(reason - SSL_AD_REASON_OFFSET));
  } else if (e) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    set_reason(v, WISP_TLS_FAIL_OTHER, "TLS handshake failed: %s", buf);
  } else {
    set_reason(v, WISP_TLS_FAIL_OTHER, "TLS handshake failed (%s)",
               ret == 0 ? "peer closed the connection" : "i/o error");
  }
  ERR_clear_error();
}
