/* wisp_ca_csr: certificate signing requests, made by the proxy for its
 * key and checked by the agent before it signs. See wisp_ca.h. */
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

/* ---- CSR (proxy side) ----------------------------------------------------- */

wisp_err wisp_ca_csr_new(uint8_t **out_der, size_t *out_len, EVP_PKEY *key, const char *spiffe_id, char *err,
                         size_t err_len) {
  wisp_spiffe_id id;
  WISP_GUARD(wca_parse_workload_id(&id, spiffe_id, err, err_len));
  X509_REQ *req = X509_REQ_new();
  X509_NAME *name = wca_name(wca_last_segment(&id));
  STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
  X509_EXTENSION *san = wca_san_ext(GEN_URI, id.id);
  bool ok = req && name && exts && san && sk_X509_EXTENSION_push(exts, san);
  if (ok) san = NULL; /* now owned by |exts| */
  ok = ok && X509_REQ_set_version(req, X509_REQ_VERSION_1) && X509_REQ_set_subject_name(req, name) &&
       X509_REQ_set_pubkey(req, key) && X509_REQ_add_extensions(req, exts) && X509_REQ_sign(req, key, EVP_sha256());
  int n = ok ? i2d_X509_REQ(req, NULL) : -1;
  uint8_t *der = n > 0 ? wisp_malloc((size_t)n) : NULL;
  uint8_t *p = der;
  if (der && i2d_X509_REQ(req, &p) != n) {
    free(der);
    der = NULL;
  }
  wisp_err rc = WISP_OK;
  if (der) {
    *out_der = der;
    *out_len = (size_t)n;
  } else {
    rc = wca_fail(err, err_len, WISP_ERR_INTERNAL, "cannot make the CSR (%s)", wca_ssl_reason());
  }
  X509_EXTENSION_free(san);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_NAME_free(name);
  X509_REQ_free(req);
  return rc;
}

/* ---- CSR checks (agent side) ---------------------------------------------- */

void wisp_ca_csr_info_cleanup(wisp_ca_csr_info *info) {
  if (!info) return;
  EVP_PKEY_free(info->pubkey);
  memset(info, 0, sizeof(*info));
}

/* Walks the outer DER structure of a CertificationRequest (RFC 2986) with
 * CBS, which accepts DER only, and reports the key's algorithm and, for EC,
 * its curve (BoringSSL's X509_REQ parser keeps the CSR even when it cannot
 * decode the key, and hides the algorithm). Returns NULL or what is wrong. */
static const char *csr_walk(const uint8_t *der, size_t len, int *out_key_nid, int *out_curve_nid) {
  CBS cbs, req, info, spki, alg, oid, params, skip;
  uint64_t version;
  CBS_init(&cbs, der, len);
  if (!CBS_get_asn1(&cbs, &req, CBS_ASN1_SEQUENCE)) return "not a DER PKCS#10 CSR (garbage or truncated)";
  if (CBS_len(&cbs) != 0) return "trailing bytes after the CSR";
  if (!CBS_get_asn1(&req, &info, CBS_ASN1_SEQUENCE) ||
      !CBS_get_asn1(&req, &skip, CBS_ASN1_SEQUENCE) || /* signatureAlgorithm */
      !CBS_get_asn1(&req, &skip, CBS_ASN1_BITSTRING) || CBS_len(&req) != 0)
    return "not a PKCS#10 CertificationRequest (SEQUENCE of info, algorithm, signature)";
  if (!CBS_get_asn1_uint64(&info, &version) || !CBS_get_asn1(&info, &skip, CBS_ASN1_SEQUENCE) || /* subject */
      !CBS_get_asn1(&info, &spki, CBS_ASN1_SEQUENCE) ||
      !CBS_get_asn1(&info, &skip, CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) || CBS_len(&info) != 0)
    return "malformed CertificationRequestInfo";
  if (version != 0) return "CSR version is not v1 (0)";
  if (!CBS_get_asn1(&spki, &alg, CBS_ASN1_SEQUENCE) || !CBS_get_asn1(&alg, &oid, CBS_ASN1_OBJECT))
    return "malformed subjectPublicKeyInfo";
  *out_key_nid = OBJ_cbs2nid(&oid);
  *out_curve_nid = NID_undef;
  if (*out_key_nid == NID_X9_62_id_ecPublicKey && CBS_get_asn1(&alg, &params, CBS_ASN1_OBJECT))
    *out_curve_nid = OBJ_cbs2nid(&params);
  return NULL;
}

static bool sig_nid_allowed(int nid) {
  switch (nid) {
    case NID_ecdsa_with_SHA256:
    case NID_ecdsa_with_SHA384:
    case NID_ecdsa_with_SHA512:
    case NID_sha256WithRSAEncryption:
    case NID_sha384WithRSAEncryption:
    case NID_sha512WithRSAEncryption:
    case NID_rsassaPss:
      return true;
    default:
      return false;
  }
}

/* "a DNS", "an IP address": for "CSR asks for %s SAN". */
static const char *gen_type_name(int type) {
  switch (type) {
    case GEN_OTHERNAME:
      return "an otherName";
    case GEN_EMAIL:
      return "an e-mail";
    case GEN_DNS:
      return "a DNS";
    case GEN_X400:
      return "an X.400";
    case GEN_DIRNAME:
      return "a directory name";
    case GEN_EDIPARTY:
      return "an EDI party";
    case GEN_URI:
      return "a URI";
    case GEN_IPADD:
      return "an IP address";
    case GEN_RID:
      return "a registered ID";
    default:
      return "an unknown";
  }
}

/* The SAN rules of an X.509-SVID request: exactly one SAN extension holding
 * exactly one name, a URI that is a workload SPIFFE ID. */
static wisp_err csr_check_san(wisp_spiffe_id *out, X509_REQ *req, char *err, size_t err_len) {
  STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
  if (!exts && X509_REQ_get_attr_by_NID(req, NID_ext_req, -1) >= 0)
    return wca_fail(err, err_len, WISP_ERR_PARSE, "CSR extension request does not decode (%s)", wca_ssl_reason());
  ERR_clear_error();
  GENERAL_NAMES *names = NULL;
  wisp_err rc = WISP_OK;
  int san_exts = 0;
  for (size_t i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
    X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name) continue;
    if (++san_exts > 1) break;
    names = X509V3_EXT_d2i(ext);
  }
  int uris = 0;
  const ASN1_IA5STRING *uri = NULL;
  if (san_exts == 0) {
    rc = wca_fail(err, err_len, WISP_ERR_IDENTITY,
                  "CSR has no subjectAltName; it must ask for exactly one URI SAN, the SPIFFE ID");
  } else if (san_exts > 1) {
    rc = wca_fail(err, err_len, WISP_ERR_IDENTITY, "CSR has more than one subjectAltName extension");
  } else if (!names) {
    rc = wca_fail(err, err_len, WISP_ERR_PARSE, "CSR subjectAltName does not decode (%s)", wca_ssl_reason());
  }
  for (size_t i = 0; rc == WISP_OK && i < sk_GENERAL_NAME_num(names); i++) {
    const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type != GEN_URI) {
      rc = wca_fail(err, err_len, WISP_ERR_IDENTITY,
                    "CSR asks for %s SAN; an X.509-SVID carries only its SPIFFE ID, as one URI SAN",
                    gen_type_name(gn->type));
    } else {
      uris++;
      uri = gn->d.uniformResourceIdentifier;
    }
  }
  if (rc == WISP_OK && uris != 1) {
    rc = wca_fail(err, err_len, WISP_ERR_IDENTITY,
                  "CSR asks for %d URI SANs; an X.509-SVID has exactly one (the SPIFFE ID)", uris);
  }
  if (rc == WISP_OK) {
    char why[160];
    size_t ulen = (size_t)ASN1_STRING_length(uri);
    const char *u = (const char *)ASN1_STRING_get0_data(uri);
    if (wisp_spiffe_parse(out, u, ulen, why, sizeof(why)) != WISP_OK)
      rc = wca_fail(err, err_len, WISP_ERR_IDENTITY, "CSR URI SAN is not a SPIFFE ID: %s", why);
    else if (out->id[out->path_off] == '\0')
      rc = wca_fail(err, err_len, WISP_ERR_IDENTITY,
                    "CSR asks for %s, the trust domain itself; an SVID needs a workload path", out->id);
  }
  GENERAL_NAMES_free(names);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  return rc;
}

wisp_err wisp_ca_csr_check(wisp_ca_csr_info *out, const uint8_t *der, size_t len, char *err, size_t err_len) {
  if (len > WISP_CA_CSR_MAX)
    return wca_fail(err, err_len, WISP_ERR_TOO_BIG, "CSR of %zu bytes is too big (at most %d)", len, WISP_CA_CSR_MAX);
  int key_nid, curve_nid;
  const char *why = csr_walk(der, len, &key_nid, &curve_nid);
  if (why) return wca_fail(err, err_len, WISP_ERR_PARSE, "%s", why);

  const uint8_t *p = der;
  X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
  if (!req || p != der + len) {
    X509_REQ_free(req);
    return wca_fail(err, err_len, WISP_ERR_PARSE, "not a PKCS#10 CSR (%s)", wca_ssl_reason());
  }
  ERR_clear_error();

  wisp_err rc = WISP_OK;
  wisp_spiffe_id id;
  EVP_PKEY *key = X509_REQ_get_pubkey(req);
  if (!key) {
    if (key_nid == NID_rsaEncryption || curve_nid == NID_X9_62_prime256v1)
      rc = wca_fail(err, err_len, WISP_ERR_PARSE, "CSR public key does not decode (%s)", wca_ssl_reason());
    else if (key_nid == NID_X9_62_id_ecPublicKey)
      rc = wca_fail(err, err_len, WISP_ERR_POLICY, "EC key on curve %s is not allowed (need P-256)",
                    wca_curve_name(curve_nid));
    else
      rc = wca_fail(err, err_len, WISP_ERR_POLICY, "%s key is not allowed (need ECDSA P-256, or RSA >= %d)",
                    key_nid != NID_undef ? OBJ_nid2sn(key_nid) : "unknown", RSA_MIN_BITS);
  }
  if (rc == WISP_OK) rc = wisp_ca_key_check_policy(key, err, err_len);
  if (rc == WISP_OK && !sig_nid_allowed(X509_REQ_get_signature_nid(req))) {
    int nid = X509_REQ_get_signature_nid(req);
    rc = wca_fail(err, err_len, WISP_ERR_POLICY, "CSR is signed with %s; need SHA-256 or stronger (ECDSA or RSA)",
                  nid != NID_undef ? OBJ_nid2ln(nid) : "an unknown algorithm");
  }
  if (rc == WISP_OK && X509_REQ_verify(req, key) != 1)
    rc = wca_fail(err, err_len, WISP_ERR_VERIFY,
                  "CSR signature does not verify (altered, or not signed by its own key)");
  if (rc == WISP_OK) rc = csr_check_san(&id, req, err, err_len);
  X509_REQ_free(req);
  if (rc != WISP_OK) {
    EVP_PKEY_free(key);
    return rc;
  }
  out->id = id;
  out->pubkey = key;
  return WISP_OK;
}
