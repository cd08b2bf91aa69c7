/* wisp_ca_x509: keys and certificates (P-256 keys, the key policy, PEM and
 * DER) and the helpers the CSR and CA code share. See
 * wisp_ca_internal.h. */
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

#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 8192
#define CN_MAX 64 /* RFC 5280 ub-common-name */

/* ---- helpers (wisp_ca_internal.h) ------------------------------------------ */

/* Writes a reason to |err|, clears BoringSSL's error queue (so that nothing
 * stale reaches a later SSL call on this thread) and returns |code|. */
wisp_err wca_fail(char *err, size_t err_len, wisp_err code, const char *fmt, ...) {
  if (err && err_len) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
  }
  ERR_clear_error();
  return code;
}

/* The first reason on BoringSSL's error queue, for messages. */
const char *wca_ssl_reason(void) {
  const char *r = ERR_reason_error_string(ERR_peek_error());
  return r ? r : "no detail";
}

/* Copies a memory BIO's contents into a new NUL-terminated buffer. */
wisp_err wca_bio_take(char **out, size_t *out_len, BIO *b) {
  const uint8_t *data;
  size_t len;
  if (!BIO_mem_contents(b, &data, &len)) return WISP_ERR_INTERNAL;
  /* An empty BIO gives data == NULL, and memcpy(d, NULL, 0) is UB. */
  *out = len ? wisp_strndup((const char *)data, len) : wisp_strdup("");
  *out_len = len;
  return WISP_OK;
}

BIO *wca_mem_bio(const void *data, size_t len) { return BIO_new_mem_buf(data, (int)len); /* callers bound |len| */ }

wisp_err wca_asn1_time_unix(const ASN1_TIME *tm, int64_t *out) {
  ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
  int days = 0, secs = 0;
  bool ok = epoch && tm && ASN1_TIME_diff(&days, &secs, epoch, tm);
  ASN1_TIME_free(epoch);
  if (!ok) {
    ERR_clear_error();
    return WISP_ERR_PARSE;
  }
  *out = (int64_t)days * 86400 + secs;
  return WISP_OK;
}

const char *wca_curve_name(int nid) {
  const char *n = EC_curve_nid2nist(nid);
  if (!n) n = OBJ_nid2sn(nid);
  return n && nid != NID_undef ? n : "(unknown)";
}

/* Parses |s| as a SPIFFE ID naming a workload (non-empty path). */
wisp_err wca_parse_workload_id(wisp_spiffe_id *out, const char *s, char *err, size_t err_len) {
  char why[160];
  if (!s) return wca_fail(err, err_len, WISP_ERR_IDENTITY, "no SPIFFE ID given");
  size_t len = strnlen(s, WISP_SPIFFE_MAX + 1);
  if (wisp_spiffe_parse(out, s, len, why, sizeof(why)) != WISP_OK)
    return wca_fail(err, err_len, WISP_ERR_IDENTITY, "\"%.256s\" is not a SPIFFE ID: %s", s, why);
  if (out->id[out->path_off] == '\0')
    return wca_fail(err, err_len, WISP_ERR_IDENTITY,
                    "%s names the trust domain itself; an SVID needs a workload path "
                    "such as /ns/<namespace>/sa/<service-account>",
                    out->id);
  return WISP_OK;
}

/* O=wisp, CN=|cn| (cut to 64 bytes: SPIFFE paths are ASCII). */
X509_NAME *wca_name(const char *cn) {
  X509_NAME *name = X509_NAME_new();
  size_t cn_len = strlen(cn) > CN_MAX ? CN_MAX : strlen(cn);
  if (name &&
      X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8, (const uint8_t *)"wisp", -1, -1, 0) &&
      X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, (const uint8_t *)cn, (int)cn_len, -1, 0))
    return name;
  X509_NAME_free(name);
  return NULL;
}

const char *wca_last_segment(const wisp_spiffe_id *id) { return strrchr(id->id + id->path_off, '/') + 1; }

/* A subjectAltName extension holding |value| as its one name of |type|
 * (GEN_URI, GEN_DNS). */
X509_EXTENSION *wca_san_ext(int type, const char *value) {
  GENERAL_NAMES *gens = GENERAL_NAMES_new();
  GENERAL_NAME *gn = GENERAL_NAME_new();
  ASN1_IA5STRING *s = ASN1_IA5STRING_new();
  X509_EXTENSION *ext = NULL;
  if (gens && gn && s && ASN1_STRING_set(s, value, (int)strlen(value))) {
    GENERAL_NAME_set0_value(gn, type, s);
    s = NULL;
    if (sk_GENERAL_NAME_push(gens, gn)) {
      gn = NULL;
      ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens);
    }
  }
  ASN1_IA5STRING_free(s);
  GENERAL_NAME_free(gn);
  GENERAL_NAMES_free(gens);
  return ext;
}

/* ---- keys ----------------------------------------------------------------- */

wisp_err wisp_ca_key_new_p256(EVP_PKEY **out_key) {
  EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
  EVP_PKEY *pkey = EVP_PKEY_new();
  if (!ec || !pkey || !EC_KEY_generate_key(ec) || !EVP_PKEY_assign_EC_KEY(pkey, ec)) {
    EC_KEY_free(ec);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return WISP_ERR_INTERNAL;
  }
  *out_key = pkey;
  return WISP_OK;
}

wisp_err wisp_ca_key_check_policy(const EVP_PKEY *key, char *err, size_t err_len) {
  if (!key) return wca_fail(err, err_len, WISP_ERR_POLICY, "no key");
  switch (EVP_PKEY_id(key)) {
    case EVP_PKEY_EC: {
      const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(key);
      const EC_GROUP *g = ec ? EC_KEY_get0_group(ec) : NULL;
      int nid = g ? EC_GROUP_get_curve_name(g) : NID_undef;
      if (nid == NID_X9_62_prime256v1) return WISP_OK;
      return wca_fail(err, err_len, WISP_ERR_POLICY, "EC key on curve %s is not allowed (need P-256)",
                      wca_curve_name(nid));
    }
    case EVP_PKEY_RSA: {
      unsigned bits = RSA_bits(EVP_PKEY_get0_RSA(key));
      if (bits < RSA_MIN_BITS)
        return wca_fail(err, err_len, WISP_ERR_POLICY,
                        "RSA key of %u bits is too small (need >= %d, ECDSA P-256 preferred)", bits, RSA_MIN_BITS);
      if (bits > RSA_MAX_BITS)
        return wca_fail(err, err_len, WISP_ERR_POLICY,
                        "RSA key of %u bits is too large (at most %d, ECDSA P-256 preferred)", bits, RSA_MAX_BITS);
      return WISP_OK;
    }
    default: {
      const char *sn = OBJ_nid2sn(EVP_PKEY_id(key));
      return wca_fail(err, err_len, WISP_ERR_POLICY, "%s key is not allowed (need ECDSA P-256, or RSA >= %d)",
                      sn ? sn : "unknown", RSA_MIN_BITS);
    }
  }
}

wisp_err wisp_ca_key_to_pem(char **out_pem, size_t *out_len, EVP_PKEY *key) {
  BIO *b = BIO_new(BIO_s_mem());
  wisp_err rc = WISP_ERR_INTERNAL;
  if (b && PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)) rc = wca_bio_take(out_pem, out_len, b);
  BIO_free(b);
  ERR_clear_error();
  return rc;
}

wisp_err wisp_ca_key_from_pem(EVP_PKEY **out_key, const char *pem, size_t len, char *err, size_t err_len) {
  if (len > WISP_CA_PEM_MAX) return wca_fail(err, err_len, WISP_ERR_TOO_BIG, "key PEM of %zu bytes is too big", len);
  BIO *b = wca_mem_bio(pem, len);
  if (!b) return wca_fail(err, err_len, WISP_ERR_INTERNAL, "out of memory");
  /* No password callback: BoringSSL's default (unlike OpenSSL's) never
   * prompts, so an encrypted key just fails. */
  EVP_PKEY *key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  BIO_free(b);
  if (!key) return wca_fail(err, err_len, WISP_ERR_PARSE, "no usable private key in PEM (%s)", wca_ssl_reason());
  *out_key = key;
  return WISP_OK;
}

/* ---- certificates --------------------------------------------------------- */

wisp_err wisp_ca_certs_to_pem(char **out_pem, size_t *out_len, const STACK_OF(X509) * certs) {
  BIO *b = BIO_new(BIO_s_mem());
  bool ok = b != NULL;
  for (size_t i = 0; ok && i < sk_X509_num(certs); i++) ok = PEM_write_bio_X509(b, sk_X509_value(certs, i)) == 1;
  wisp_err rc = ok ? wca_bio_take(out_pem, out_len, b) : WISP_ERR_INTERNAL;
  BIO_free(b);
  ERR_clear_error();
  return rc;
}

wisp_err wisp_ca_certs_from_pem(STACK_OF(X509) * *out_certs, const char *pem, size_t len, char *err, size_t err_len) {
  if (len > WISP_CA_PEM_MAX)
    return wca_fail(err, err_len, WISP_ERR_TOO_BIG, "certificate PEM of %zu bytes is too big", len);
  BIO *b = wca_mem_bio(pem, len);
  STACK_OF(X509) *certs = sk_X509_new_null();
  wisp_err rc = WISP_OK;
  if (!b || !certs) rc = wca_fail(err, err_len, WISP_ERR_INTERNAL, "out of memory");
  ERR_clear_error();
  while (rc == WISP_OK) {
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    if (!x) {
      /* The normal end is "no start line" at end of input. */
      uint32_t e = ERR_peek_last_error();
      if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE)
        rc = wca_fail(err, err_len, WISP_ERR_PARSE, "certificate %zu of the PEM does not decode (%s)",
                      sk_X509_num(certs) + 1, wca_ssl_reason());
      else if (sk_X509_num(certs) == 0) rc = wca_fail(err, err_len, WISP_ERR_PARSE, "no CERTIFICATE block in the PEM");
      break;
    }
    if (sk_X509_num(certs) == WISP_CA_CERTS_MAX) {
      X509_free(x);
      rc = wca_fail(err, err_len, WISP_ERR_TOO_BIG, "more than %d certificates in the PEM", WISP_CA_CERTS_MAX);
    } else if (!sk_X509_push(certs, x)) {
      X509_free(x);
      rc = wca_fail(err, err_len, WISP_ERR_INTERNAL, "out of memory");
    }
  }
  ERR_clear_error();
  BIO_free(b);
  if (rc != WISP_OK) {
    sk_X509_pop_free(certs, X509_free);
    return rc;
  }
  *out_certs = certs;
  return WISP_OK;
}

wisp_err wisp_ca_certs_to_der(uint8_t **out_der, size_t *out_len, const STACK_OF(X509) * certs) {
  size_t total = 0;
  for (size_t i = 0; i < sk_X509_num(certs); i++) {
    int n = i2d_X509(sk_X509_value(certs, i), NULL);
    if (n <= 0) return wca_fail(NULL, 0, WISP_ERR_INTERNAL, "i2d");
    total += (size_t)n;
  }
  uint8_t *der = wisp_malloc(total);
  uint8_t *p = der;
  for (size_t i = 0; i < sk_X509_num(certs); i++) {
    if (i2d_X509(sk_X509_value(certs, i), &p) <= 0) {
      free(der);
      return wca_fail(NULL, 0, WISP_ERR_INTERNAL, "i2d");
    }
  }
  *out_der = der;
  *out_len = total;
  return WISP_OK;
}

wisp_err wisp_ca_certs_from_der(STACK_OF(X509) * *out_certs, const uint8_t *der, size_t len, char *err,
                                size_t err_len) {
  if (len > WISP_CA_PEM_MAX)
    return wca_fail(err, err_len, WISP_ERR_TOO_BIG, "certificate DER of %zu bytes is too big", len);
  STACK_OF(X509) *certs = sk_X509_new_null();
  wisp_err rc = certs ? WISP_OK : wca_fail(err, err_len, WISP_ERR_INTERNAL, "out of memory");
  CBS cbs, elem;
  CBS_init(&cbs, der, len);
  while (rc == WISP_OK && CBS_len(&cbs) > 0) {
    size_t idx = sk_X509_num(certs) + 1;
    if (!CBS_get_asn1_element(&cbs, &elem, CBS_ASN1_SEQUENCE)) {
      rc = wca_fail(err, err_len, WISP_ERR_PARSE, "certificate %zu is not a DER SEQUENCE (garbage or truncated)", idx);
      break;
    }
    const uint8_t *p = CBS_data(&elem);
    X509 *x = d2i_X509(NULL, &p, (long)CBS_len(&elem));
    if (!x || p != CBS_data(&elem) + CBS_len(&elem)) {
      X509_free(x);
      rc = wca_fail(err, err_len, WISP_ERR_PARSE, "certificate %zu does not decode (%s)", idx, wca_ssl_reason());
    } else if (idx > WISP_CA_CERTS_MAX) {
      X509_free(x);
      rc = wca_fail(err, err_len, WISP_ERR_TOO_BIG, "more than %d certificates", WISP_CA_CERTS_MAX);
    } else if (!sk_X509_push(certs, x)) {
      X509_free(x);
      rc = wca_fail(err, err_len, WISP_ERR_INTERNAL, "out of memory");
    }
  }
  if (rc == WISP_OK && sk_X509_num(certs) == 0)
    rc = wca_fail(err, err_len, WISP_ERR_PARSE, "no certificate (empty input)");
  if (rc != WISP_OK) {
    sk_X509_pop_free(certs, X509_free);
    return rc;
  }
  *out_certs = certs;
  return WISP_OK;
}

wisp_err wisp_ca_cert_not_after(const X509 *cert, int64_t *out_unix) {
  return wca_asn1_time_unix(X509_get0_notAfter(cert), out_unix);
}

wisp_err wisp_ca_cert_not_before(const X509 *cert, int64_t *out_unix) {
  return wca_asn1_time_unix(X509_get0_notBefore(cert), out_unix);
}

void wisp_ca_cert_serial_hex(const X509 *cert, char *out, size_t out_len) {
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
  char *hex = bn ? BN_bn2hex(bn) : NULL;
  snprintf(out, out_len, "%s", hex ? hex : "?");
  OPENSSL_free(hex);
  BN_free(bn);
  ERR_clear_error();
}
