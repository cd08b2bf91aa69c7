#include "lib/wisp_ca.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/obj.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "lib/wisp_ca_internal.h"
#include "lib/wisp_mem.h"

#define SERIAL_LEN 16

struct wisp_ca {
  char trust_domain[WISP_SPIFFE_TD_MAX + 1];
  X509 *cert;             /* signs SVIDs */
  EVP_PKEY *key;          /* |cert|'s key */
  STACK_OF(X509) * path;  /* |cert| and its issuers up to and including the root */
  STACK_OF(X509) * chain; /* sent after a leaf: |path| minus the root */
  STACK_OF(X509) * roots; /* the trust bundle */
  int64_t not_after_cap;  /* earliest notAfter on |path| */
};

/* ---- building certificates --------------------------------------------------- */

static void fmt_time(int64_t t, char *out, size_t out_len) {
  time_t tt = (time_t)t;
  struct tm tm;
  if (!gmtime_r(&tt, &tm) || !strftime(out, out_len, "%Y-%m-%d %H:%M:%S UTC", &tm))
    snprintf(out, out_len, "%lld", (long long)t);
}

static int64_t i64_min(int64_t a, int64_t b) { return a < b ? a : b; }

/* Checks |td| as a SPIFFE trust domain name. */
static wisp_err check_trust_domain(const char *td, char *err, size_t err_len) {
  char buf[sizeof("spiffe://") + WISP_SPIFFE_TD_MAX + 1];
  char why[160];
  wisp_spiffe_id id;
  if (!td || !*td) return wca_fail(err, err_len, WISP_ERR_IDENTITY, "trust domain is empty");
  size_t len = strnlen(td, WISP_SPIFFE_TD_MAX + 1);
  if (len > WISP_SPIFFE_TD_MAX)
    return wca_fail(err, err_len, WISP_ERR_IDENTITY, "trust domain is longer than 255 bytes");
  int n = snprintf(buf, sizeof(buf), "spiffe://%s", td);
  if (wisp_spiffe_parse(&id, buf, (size_t)n, why, sizeof(why)) != WISP_OK)
    return wca_fail(err, err_len, WISP_ERR_IDENTITY, "\"%s\" is not a trust domain name: %s", td, why);
  if (id.id[id.path_off])
    return wca_fail(err, err_len, WISP_ERR_IDENTITY, "\"%s\" is not a trust domain name: it has a '/' (a path)", td);
  return WISP_OK;
}

static bool add_san(X509 *x, int type, const char *value) {
  X509_EXTENSION *ext = wca_san_ext(type, value);
  bool ok = ext && X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  return ok;
}

/* RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING. */
static ASN1_OCTET_STRING *key_id(const X509 *x) {
  const ASN1_BIT_STRING *bits = X509_get0_pubkey_bitstr(x);
  uint8_t md[SHA_DIGEST_LENGTH];
  ASN1_OCTET_STRING *o = ASN1_OCTET_STRING_new();
  if (!bits || !o) goto fail;
  SHA1(ASN1_STRING_get0_data(bits), (size_t)ASN1_STRING_length(bits), md);
  if (!ASN1_OCTET_STRING_set(o, md, sizeof(md))) goto fail;
  return o;
fail:
  ASN1_OCTET_STRING_free(o);
  return NULL;
}

static bool add_basic_constraints(X509 *x, bool ca) {
  BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
  bool ok = bc != NULL;
  if (ok) bc->ca = ca ? 0xff : 0;
  ok = ok && X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_DEFAULT) == 1;
  BASIC_CONSTRAINTS_free(bc);
  return ok;
}

/* |bits|: RFC 5280 KeyUsage bit numbers (0 digitalSignature, 5 keyCertSign,
 * 6 cRLSign), ended by -1. */
static bool add_key_usage(X509 *x, const int *bits) {
  ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
  bool ok = ku != NULL;
  for (; ok && *bits >= 0; bits++) ok = ASN1_BIT_STRING_set_bit(ku, *bits, 1);
  ok = ok && X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT) == 1;
  ASN1_BIT_STRING_free(ku);
  return ok;
}

/* serverAuth, and clientAuth too unless |server_only|. */
static bool add_ext_key_usage_tls(X509 *x, bool server_only) {
  EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
  bool ok = eku && sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_server_auth)) &&
            (server_only || sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_client_auth))) &&
            X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, X509V3_ADD_DEFAULT) == 1;
  sk_ASN1_OBJECT_free(eku); /* built-in objects: nothing to free */
  return ok;
}

static bool add_ski(X509 *x) {
  ASN1_OCTET_STRING *ski = key_id(x);
  bool ok = ski && X509_add1_ext_i2d(x, NID_subject_key_identifier, ski, 0, X509V3_ADD_DEFAULT) == 1;
  ASN1_OCTET_STRING_free(ski);
  return ok;
}

/* AKI keyIdentifier: the issuer's SKI, or its key hash if it has none. */
static bool add_aki(X509 *x, X509 *issuer) {
  AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
  const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(issuer);
  bool ok = akid != NULL;
  if (ok) akid->keyid = ski ? ASN1_OCTET_STRING_dup(ski) : key_id(issuer);
  ok = ok && akid->keyid && X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT) == 1;
  AUTHORITY_KEYID_free(akid);
  return ok;
}

/* A positive serial of exactly SERIAL_LEN bytes: the top bit is clear (DER
 * INTEGERs are signed) and the next one set (no leading zero), 126 random
 * bits in all. */
static bool set_random_serial(X509 *x) {
  uint8_t b[SERIAL_LEN];
  RAND_bytes(b, sizeof(b));
  b[0] = (uint8_t)((b[0] & 0x7f) | 0x40);
  BIGNUM *bn = BN_bin2bn(b, sizeof(b), NULL);
  ASN1_INTEGER *serial = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
  bool ok = serial && X509_set_serialNumber(x, serial);
  ASN1_INTEGER_free(serial);
  BN_free(bn);
  return ok;
}

static bool set_validity(X509 *x, int64_t not_before, int64_t not_after) {
  return ASN1_TIME_set(X509_getm_notBefore(x), (time_t)not_before) &&
         ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after);
}

static bool self_signed(X509 *x) {
  EVP_PKEY *pk = X509_get_pubkey(x);
  bool ok = pk && X509_check_issued(x, x) == X509_V_OK && X509_verify(x, pk) == 1;
  EVP_PKEY_free(pk);
  return ok;
}

/* basicConstraints CA:TRUE and, if keyUsage is present, keyCertSign. */
static bool is_ca_cert(X509 *x) { return X509_check_ca(x) == 1 && (X509_get_key_usage(x) & KU_KEY_CERT_SIGN); }

static STACK_OF(X509) * stack_dup_up_ref(const STACK_OF(X509) * in, size_t from, size_t to) {
  STACK_OF(X509) *out = sk_X509_new_null();
  for (size_t i = from; out && i < to; i++) {
    X509 *x = sk_X509_value(in, i);
    if (!sk_X509_push(out, x)) {
      sk_X509_pop_free(out, X509_free);
      return NULL;
    }
    X509_up_ref(x);
  }
  return out;
}

/* ---- CA (agent side) ------------------------------------------------------ */

void wisp_ca_free(wisp_ca *ca) {
  if (!ca) return;
  X509_free(ca->cert);
  EVP_PKEY_free(ca->key);
  sk_X509_pop_free(ca->path, X509_free);
  sk_X509_pop_free(ca->chain, X509_free);
  sk_X509_pop_free(ca->roots, X509_free);
  free(ca);
}

/* A CA from |path| (the CA cert first, the root last; borrowed) and |key|
 * (borrowed). */
static wisp_err ca_from_path(wisp_ca **out_ca, const char *td, const STACK_OF(X509) * path, EVP_PKEY *key) {
  size_t n = sk_X509_num(path);
  wisp_ca *ca = wisp_calloc(1, sizeof(*ca));
  snprintf(ca->trust_domain, sizeof(ca->trust_domain), "%s", td);
  ca->cert = sk_X509_value(path, 0);
  X509_up_ref(ca->cert);
  ca->key = key;
  EVP_PKEY_up_ref(key);
  ca->path = stack_dup_up_ref(path, 0, n);
  ca->chain = stack_dup_up_ref(path, 0, n > 1 ? n - 1 : 0);
  ca->roots = stack_dup_up_ref(path, n - 1, n);
  ca->not_after_cap = INT64_MAX;
  for (size_t i = 0; i < n; i++) {
    int64_t t;
    if (wisp_ca_cert_not_after(sk_X509_value(path, i), &t) == WISP_OK)
      ca->not_after_cap = i64_min(ca->not_after_cap, t);
    else ca->not_after_cap = INT64_MIN;
  }
  if (!ca->path || !ca->chain || !ca->roots) {
    wisp_ca_free(ca);
    return WISP_ERR_INTERNAL;
  }
  *out_ca = ca;
  return WISP_OK;
}

wisp_ca *wisp_ca_new_root(const char *trust_domain, int64_t ttl_seconds, char *err, size_t err_len) {
  if (check_trust_domain(trust_domain, err, err_len) != WISP_OK) return NULL;
  if (ttl_seconds < 1 || ttl_seconds > WISP_CA_TTL_MAX) {
    (void)wca_fail(err, err_len, WISP_ERR_USAGE, "root TTL of %lld s is out of range (1..%lld)", (long long)ttl_seconds,
                   (long long)WISP_CA_TTL_MAX);
    return NULL;
  }
  char uri[sizeof("spiffe://") + WISP_SPIFFE_TD_MAX + 1];
  char cn[sizeof("wisp root ") + WISP_SPIFFE_TD_MAX + 1];
  snprintf(uri, sizeof(uri), "spiffe://%s", trust_domain);
  snprintf(cn, sizeof(cn), "wisp root %s", trust_domain);
  static const int kRootKeyUsage[] = {5 /* keyCertSign */, 6 /* cRLSign */, -1};
  int64_t now = (int64_t)time(NULL);

  EVP_PKEY *key = NULL;
  X509 *x = X509_new();
  X509_NAME *name = wca_name(cn);
  STACK_OF(X509) *path = sk_X509_new_null();
  wisp_ca *ca = NULL;
  bool ok = x && name && path && wisp_ca_key_new_p256(&key) == WISP_OK;
  ok = ok && X509_set_version(x, X509_VERSION_3) && set_random_serial(x) && X509_set_subject_name(x, name) &&
       X509_set_issuer_name(x, name) && set_validity(x, now - WISP_CA_BACKDATE_SEC, now + ttl_seconds) &&
       X509_set_pubkey(x, key) && add_basic_constraints(x, true) && add_key_usage(x, kRootKeyUsage) && add_ski(x) &&
       add_san(x, GEN_URI, uri) && X509_sign(x, key, EVP_sha256()) && sk_X509_push(path, x);
  if (ok) {
    X509_up_ref(x); /* |path| holds one reference, the X509_free below drops ours */
    ok = ca_from_path(&ca, trust_domain, path, key) == WISP_OK;
  }
  if (!ok) (void)wca_fail(err, err_len, WISP_ERR_INTERNAL, "cannot make a root (%s)", wca_ssl_reason());
  sk_X509_pop_free(path, X509_free);
  X509_NAME_free(name);
  X509_free(x);
  EVP_PKEY_free(key);
  return ca;
}

/* Whether |x| is valid at |now|: notBefore at most |skew| seconds ahead
 * (an issuer's clock a little ahead of ours), notAfter still to come (no
 * grace: peers refuse an expired certificate). |what| names it in |err|. */
static wisp_err check_validity(const X509 *x, const char *what, int64_t now, int64_t skew, char *err, size_t err_len) {
  int64_t nb, na;
  char when[64], clock[64];
  if (wca_asn1_time_unix(X509_get0_notBefore(x), &nb) != WISP_OK ||
      wca_asn1_time_unix(X509_get0_notAfter(x), &na) != WISP_OK)
    return wca_fail(err, err_len, WISP_ERR_PARSE, "%s has unreadable validity", what);
  if (now >= na) {
    fmt_time(na, when, sizeof(when));
    return wca_fail(err, err_len, WISP_ERR_VERIFY, "%s expired at %s", what, when);
  }
  if (nb > now && nb - now > skew) {
    fmt_time(nb, when, sizeof(when));
    fmt_time(now, clock, sizeof(clock));
    return wca_fail(err, err_len, WISP_ERR_VERIFY, "%s is not valid before %s (this host's clock says %s)", what, when,
                    clock);
  }
  return WISP_OK;
}

/* The checks of wisp_ca_load_pem on the parsed certificates and key. */
static wisp_err check_ca_path(STACK_OF(X509) * certs, EVP_PKEY *key, char *err, size_t err_len) {
  size_t n = sk_X509_num(certs);
  char who[WISP_SPIFFE_MAX + 16], what[WISP_SPIFFE_MAX + 48];
  WISP_GUARD(wisp_ca_key_check_policy(key, err, err_len));
  if (!X509_check_private_key(sk_X509_value(certs, 0), key))
    return wca_fail(err, err_len, WISP_ERR_USAGE, "CA key does not match the CA certificate (the first in the file)");
  int64_t now = (int64_t)time(NULL);
  for (size_t i = 0; i < n; i++) {
    X509 *x = sk_X509_value(certs, i);
    wisp_spiffe_describe_cert(x, who, sizeof(who));
    if (!is_ca_cert(x))
      return wca_fail(err, err_len, WISP_ERR_USAGE,
                      "certificate %zu (%s) is not a CA (needs basicConstraints CA:TRUE and, with "
                      "keyUsage, keyCertSign)",
                      i + 1, who);
    snprintf(what, sizeof(what), "certificate %zu (%s)", i + 1, who);
    WISP_GUARD(check_validity(x, what, now, 0, err, err_len));
    if (i + 1 < n) {
      X509 *issuer = sk_X509_value(certs, i + 1);
      EVP_PKEY *ik = X509_get_pubkey(issuer);
      bool linked = ik && X509_check_issued(issuer, x) == X509_V_OK && X509_verify(x, ik) == 1;
      EVP_PKEY_free(ik);
      if (!linked)
        return wca_fail(err, err_len, WISP_ERR_VERIFY,
                        "certificate %zu (%s) is not issued by certificate %zu: put the CA "
                        "certificate first, then each issuer up to the root",
                        i + 1, who, i + 2);
    } else if (!self_signed(x)) {
      return wca_fail(err, err_len, WISP_ERR_VERIFY,
                      "the last certificate (%s) is not a self-signed root: append the chain up to "
                      "the root",
                      who);
    }
  }
  /* RFC 5280 path validation as a backstop (path lengths, constraints). */
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  STACK_OF(X509) *untrusted = stack_dup_up_ref(certs, 1, n > 1 ? n - 1 : 1);
  wisp_err rc = WISP_OK;
  if (!store || !ctx || !untrusted || !X509_STORE_add_cert(store, sk_X509_value(certs, n - 1)) ||
      !X509_STORE_CTX_init(ctx, store, sk_X509_value(certs, 0), untrusted)) {
    rc = wca_fail(err, err_len, WISP_ERR_INTERNAL, "out of memory");
  } else if (X509_verify_cert(ctx) != 1) {
    int e = X509_STORE_CTX_get_error(ctx);
    rc = wca_fail(err, err_len, WISP_ERR_VERIFY, "CA chain does not verify at depth %d: %s",
                  X509_STORE_CTX_get_error_depth(ctx), X509_verify_cert_error_string(e));
  }
  sk_X509_pop_free(untrusted, X509_free);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return rc;
}

/* The SVID's size and leaf rules, before any signature is checked. */
static wisp_err check_svid_shape(const STACK_OF(X509) * chain, char *err, size_t err_len) {
  size_t n = sk_X509_num(chain), der = 0;
  if (n > WISP_CA_SVID_CHAIN_MAX)
    return wca_fail(err, err_len, WISP_ERR_VERIFY, "the SVID's chain has %zu certificates (at most %d)", n,
                    WISP_CA_SVID_CHAIN_MAX);
  for (size_t i = 0; i < n; i++) {
    int len = i2d_X509(sk_X509_value(chain, i), NULL);
    if (len <= 0) return wca_fail(err, err_len, WISP_ERR_VERIFY, "chain certificate %zu cannot be encoded", i + 1);
    der += (size_t)len;
  }
  if (der > WISP_CA_SVID_DER_MAX)
    return wca_fail(err, err_len, WISP_ERR_VERIFY, "the SVID's chain is %zu bytes of DER (at most %d)", der,
                    WISP_CA_SVID_DER_MAX);
  X509 *leaf = sk_X509_value(chain, 0);
  const char *why = wisp_spiffe_leaf_refused(leaf);
  if (why) {
    char who[WISP_SPIFFE_MAX + 16];
    wisp_spiffe_describe_cert(leaf, who, sizeof(who));
    return wca_fail(err, err_len, WISP_ERR_VERIFY, "the SVID (%s) is not a leaf SVID: %s", who, why);
  }
  return WISP_OK;
}

wisp_err wisp_ca_svid_check(const STACK_OF(X509) * chain, const STACK_OF(X509) * roots, int64_t now, int64_t skew,
                            char *err, size_t err_len) {
  size_t n = sk_X509_num(chain);
  if (n == 0 || sk_X509_num(roots) == 0)
    return wca_fail(err, err_len, WISP_ERR_VERIFY, "no %s", n == 0 ? "certificate" : "trust bundle");
  WISP_GUARD(check_svid_shape(chain, err, err_len));
  char who[WISP_SPIFFE_MAX + 16], what[WISP_SPIFFE_MAX + 48];
  /* Verified at |now|, or at the latest notBefore within |skew| of it. */
  int64_t at = now, nb;
  for (size_t i = 0; i < n; i++) {
    X509 *x = sk_X509_value(chain, i);
    wisp_spiffe_describe_cert(x, who, sizeof(who));
    if (i == 0) snprintf(what, sizeof(what), "the SVID (%s)", who);
    else snprintf(what, sizeof(what), "chain certificate %zu (%s)", i + 1, who);
    WISP_GUARD(check_validity(x, what, now, skew, err, err_len));
    if (wisp_ca_cert_not_before(x, &nb) == WISP_OK && nb > at) at = nb;
  }
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  STACK_OF(X509) *untrusted = stack_dup_up_ref(chain, 1, n);
  bool ok = store && ctx && untrusted;
  for (size_t i = 0; ok && i < sk_X509_num(roots); i++) ok = X509_STORE_add_cert(store, sk_X509_value(roots, i));
  wisp_err rc = WISP_OK;
  if (!ok || !X509_STORE_CTX_init(ctx, store, sk_X509_value(chain, 0), untrusted)) {
    rc = wca_fail(err, err_len, WISP_ERR_INTERNAL, "out of memory");
  } else {
    X509_STORE_CTX_set_time(ctx, 0, (time_t)at);
    if (X509_verify_cert(ctx) != 1) {
      int e = X509_STORE_CTX_get_error(ctx);
      rc = wca_fail(err, err_len, WISP_ERR_VERIFY, "the SVID does not chain to the trust bundle (%zu root%s): %s",
                    sk_X509_num(roots), sk_X509_num(roots) == 1 ? "" : "s", X509_verify_cert_error_string(e));
    }
  }
  sk_X509_pop_free(untrusted, X509_free);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return rc;
}

wisp_err wisp_ca_load_pem(wisp_ca **out_ca, const char *trust_domain, const char *cert_pem, size_t cert_len,
                          const char *key_pem, size_t key_len, char *err, size_t err_len) {
  STACK_OF(X509) *certs = NULL;
  EVP_PKEY *key = NULL;
  char why[512];
  wisp_err rc = wisp_ca_certs_from_pem(&certs, cert_pem, cert_len, why, sizeof(why));
  if (rc != WISP_OK) return wca_fail(err, err_len, rc, "CA certificate: %s", why);
  rc = wisp_ca_key_from_pem(&key, key_pem, key_len, why, sizeof(why));
  if (rc != WISP_OK) {
    sk_X509_pop_free(certs, X509_free);
    return wca_fail(err, err_len, rc, "CA key: %s", why);
  }
  rc = check_ca_path(certs, key, err, err_len);

  /* The trust domain: given, from the CA's URI SAN, or both if they agree. */
  wisp_spiffe_id ca_id;
  bool has_id = wisp_spiffe_from_cert(&ca_id, sk_X509_value(certs, 0), NULL, 0) == WISP_OK;
  const char *td = trust_domain ? trust_domain : (has_id ? ca_id.trust_domain : NULL);
  if (rc == WISP_OK && !td)
    rc = wca_fail(err, err_len, WISP_ERR_IDENTITY, "CA certificate has no spiffe:// URI SAN: give the trust domain");
  if (rc == WISP_OK) rc = check_trust_domain(td, err, err_len);
  if (rc == WISP_OK && has_id && strcmp(td, ca_id.trust_domain) != 0)
    rc = wca_fail(err, err_len, WISP_ERR_IDENTITY, "CA certificate is for trust domain %s, not %s", ca_id.trust_domain,
                  td);
  if (rc == WISP_OK) {
    rc = ca_from_path(out_ca, td, certs, key);
    if (rc != WISP_OK) rc = wca_fail(err, err_len, rc, "out of memory");
  }
  sk_X509_pop_free(certs, X509_free);
  EVP_PKEY_free(key);
  return rc;
}

/* Appends the file at |path| to |*buf| (|*len| bytes so far). */
static wisp_err read_append(char **buf, size_t *len, const char *path, char *err, size_t err_len) {
  FILE *f = fopen(path, "rb");
  if (!f) return wca_fail(err, err_len, WISP_ERR_IO, "%s: %s", path, strerror(errno));
  wisp_err rc = WISP_OK;
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
    if (*len + n > WISP_CA_PEM_MAX) {
      rc = wca_fail(err, err_len, WISP_ERR_TOO_BIG, "%s: more than %d bytes", path, WISP_CA_PEM_MAX);
      break;
    }
    *buf = wisp_realloc(*buf, *len + n + 1);
    memcpy(*buf + *len, chunk, n);
    *len += n;
    (*buf)[*len] = '\0';
  }
  if (rc == WISP_OK && ferror(f)) rc = wca_fail(err, err_len, WISP_ERR_IO, "%s: read error", path);
  fclose(f);
  return rc;
}

wisp_err wisp_ca_load_files(wisp_ca **out_ca, const char *trust_domain, const char *cert_path, const char *chain_path,
                            const char *key_path, char *err, size_t err_len) {
  char *certs = NULL, *key = NULL;
  size_t certs_len = 0, key_len = 0;
  wisp_err rc = read_append(&certs, &certs_len, cert_path, err, err_len);
  if (rc == WISP_OK && chain_path) {
    /* PEM blocks need a line break between files. */
    certs = wisp_realloc(certs, certs_len + 2);
    certs[certs_len++] = '\n';
    certs[certs_len] = '\0';
    rc = read_append(&certs, &certs_len, chain_path, err, err_len);
  }
  if (rc == WISP_OK) rc = read_append(&key, &key_len, key_path, err, err_len);
  if (rc == WISP_OK) {
    char why[768];
    rc = wisp_ca_load_pem(out_ca, trust_domain, certs ? certs : "", certs_len, key ? key : "", key_len, why,
                          sizeof(why));
    if (rc != WISP_OK)
      (void)wca_fail(err, err_len, rc, "%s%s%s: %s", cert_path, chain_path ? " + " : "", chain_path ? chain_path : "",
                     why);
  }
  if (key) OPENSSL_cleanse(key, key_len);
  free(key);
  free(certs);
  return rc;
}

wisp_err wisp_ca_save_pem(const wisp_ca *ca, char **out_cert_pem, size_t *out_cert_len, char **out_key_pem,
                          size_t *out_key_len) {
  char *cert_pem, *key_pem;
  size_t cert_len, key_len;
  WISP_GUARD(wisp_ca_certs_to_pem(&cert_pem, &cert_len, ca->path));
  wisp_err rc = wisp_ca_key_to_pem(&key_pem, &key_len, ca->key);
  if (rc != WISP_OK) {
    free(cert_pem);
    return rc;
  }
  *out_cert_pem = cert_pem;
  *out_cert_len = cert_len;
  *out_key_pem = key_pem;
  *out_key_len = key_len;
  return WISP_OK;
}

const char *wisp_ca_get0_trust_domain(const wisp_ca *ca) { return ca->trust_domain; }

X509 *wisp_ca_get0_cert(const wisp_ca *ca) { return ca->cert; }

STACK_OF(X509) * wisp_ca_get0_chain(const wisp_ca *ca) { return ca->chain; }

STACK_OF(X509) * wisp_ca_get0_roots(const wisp_ca *ca) { return ca->roots; }

wisp_err wisp_ca_add1_root(wisp_ca *ca, X509 *root, char *err, size_t err_len) {
  char who[WISP_SPIFFE_MAX + 16];
  wisp_spiffe_describe_cert(root, who, sizeof(who));
  if (!is_ca_cert(root) || !self_signed(root))
    return wca_fail(err, err_len, WISP_ERR_USAGE, "%s is not a self-signed CA certificate", who);
  for (size_t i = 0; i < sk_X509_num(ca->roots); i++)
    if (X509_cmp(sk_X509_value(ca->roots, i), root) == 0) return WISP_OK;
  if (sk_X509_num(ca->roots) >= WISP_CA_CERTS_MAX)
    return wca_fail(err, err_len, WISP_ERR_TOO_BIG, "trust bundle already holds %d roots", WISP_CA_CERTS_MAX);
  if (!sk_X509_push(ca->roots, root)) return wca_fail(err, err_len, WISP_ERR_INTERNAL, "out of memory");
  X509_up_ref(root);
  return WISP_OK;
}

/* What issue_leaf puts in a leaf besides its key. */
typedef struct {
  const char *cn;
  int san_type;
  const char *san;
  bool server_only;
  const char *origin;    /* the subject's OU, NULL: none */
  int64_t not_after_max; /* 0: none */
} leaf_spec;

/* A leaf for |pubkey| as |spec| says, valid for |ttl_seconds| within the
 * CA's own life. */
static wisp_err issue_leaf(wisp_ca *ca, X509 **out_cert, EVP_PKEY *pubkey, const leaf_spec *spec, int64_t ttl_seconds,
                           char *err, size_t err_len) {
  if (ttl_seconds < 1 || ttl_seconds > WISP_CA_TTL_MAX)
    return wca_fail(err, err_len, WISP_ERR_USAGE, "SVID TTL of %lld s is out of range (1..%lld)",
                    (long long)ttl_seconds, (long long)WISP_CA_TTL_MAX);
  WISP_GUARD(wisp_ca_key_check_policy(pubkey, err, err_len));
  int64_t now = (int64_t)time(NULL);
  if (now >= ca->not_after_cap) {
    char when[64];
    fmt_time(ca->not_after_cap, when, sizeof(when));
    return wca_fail(err, err_len, WISP_ERR_VERIFY, "CA certificate chain expired at %s", when);
  }
  static const int kLeafKeyUsage[] = {0 /* digitalSignature */, -1};
  int64_t not_after = i64_min(now + ttl_seconds, ca->not_after_cap);
  if (spec->not_after_max) not_after = i64_min(not_after, spec->not_after_max);
  if (not_after <= now)
    return wca_fail(err, err_len, WISP_ERR_USAGE, "the certificate would already be expired (notAfter cap %lld)",
                    (long long)spec->not_after_max);
  X509 *x = X509_new();
  X509_NAME *name = wca_name(spec->cn);
  /* O=wisp, OU=<origin>, CN=...: the OU after O. */
  bool ok = x && name &&
            (!spec->origin || X509_NAME_add_entry_by_NID(name, NID_organizationalUnitName, MBSTRING_UTF8,
                                                         (const uint8_t *)spec->origin, -1, 1, 0)) &&
            X509_set_version(x, X509_VERSION_3) && set_random_serial(x) && X509_set_subject_name(x, name) &&
            X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) &&
            set_validity(x, now - WISP_CA_BACKDATE_SEC, not_after) && X509_set_pubkey(x, pubkey) &&
            add_basic_constraints(x, false) && add_key_usage(x, kLeafKeyUsage) &&
            add_ext_key_usage_tls(x, spec->server_only) && add_ski(x) && add_aki(x, ca->cert) &&
            add_san(x, spec->san_type, spec->san) && X509_sign(x, ca->key, EVP_sha256());
  X509_NAME_free(name);
  if (!ok) {
    X509_free(x);
    return wca_fail(err, err_len, WISP_ERR_INTERNAL, "cannot issue the certificate (%s)", wca_ssl_reason());
  }
  *out_cert = x;
  return WISP_OK;
}

wisp_err wisp_ca_issue_from(wisp_ca *ca, X509 **out_cert, EVP_PKEY *subject_pubkey, const char *spiffe_id,
                            const wisp_ca_origin *origin, int64_t ttl_seconds, char *err, size_t err_len) {
  wisp_spiffe_id id;
  WISP_GUARD(wca_parse_workload_id(&id, spiffe_id, err, err_len));
  if (strcmp(id.trust_domain, ca->trust_domain) != 0)
    return wca_fail(err, err_len, WISP_ERR_IDENTITY, "%s is not in this CA's trust domain %s", id.id, ca->trust_domain);
  leaf_spec spec = {
      wca_last_segment(&id), GEN_URI, id.id, false, origin ? origin->name : NULL, origin ? origin->not_after_max : 0};
  return issue_leaf(ca, out_cert, subject_pubkey, &spec, ttl_seconds, err, err_len);
}

wisp_err wisp_ca_issue(wisp_ca *ca, X509 **out_cert, EVP_PKEY *subject_pubkey, const char *spiffe_id,
                       int64_t ttl_seconds, char *err, size_t err_len) {
  return wisp_ca_issue_from(ca, out_cert, subject_pubkey, spiffe_id, NULL, ttl_seconds, err, err_len);
}

bool wisp_ca_cert_origin(const X509 *cert, char *out, size_t cap) {
  X509_NAME *name = X509_get_subject_name(cert);
  int i = name ? X509_NAME_get_index_by_NID(name, NID_organizationalUnitName, -1) : -1;
  ASN1_STRING *v = i >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)) : NULL;
  if (!v || cap == 0 || (size_t)ASN1_STRING_length(v) >= cap) return false;
  memcpy(out, ASN1_STRING_get0_data(v), (size_t)ASN1_STRING_length(v));
  out[ASN1_STRING_length(v)] = '\0';
  return strlen(out) == (size_t)ASN1_STRING_length(v);
}

/* A DNS name: labels of [a-z0-9-], not starting or ending with '-', joined
 * by dots, at most 253 bytes. */
static bool dns_name_ok(const char *s) {
  size_t n = strlen(s), label = 0;
  if (n == 0 || n > 253) return false;
  for (size_t i = 0; i <= n; i++) {
    char c = s[i];
    if (c == '.' || c == '\0') {
      if (label == 0 || label > 63 || s[i - 1] == '-') return false;
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && label > 0)) {
      label++;
    } else {
      return false;
    }
  }
  return true;
}

wisp_err wisp_ca_issue_server(wisp_ca *ca, X509 **out_cert, EVP_PKEY *subject_pubkey, const char *dns_name,
                              int64_t ttl_seconds, char *err, size_t err_len) {
  if (!dns_name_ok(dns_name))
    return wca_fail(err, err_len, WISP_ERR_USAGE, "%s is not a DNS name (lowercase labels of a-z, 0-9, '-')", dns_name);
  leaf_spec spec = {dns_name, GEN_DNS, dns_name, true, NULL, 0};
  return issue_leaf(ca, out_cert, subject_pubkey, &spec, ttl_seconds, err, err_len);
}
