/* wisp_ca: identity plumbing for the agent (the CA) and the proxy (its own
 * key and a CSR). X.509-SVIDs per the SPIFFE spec: ECDSA P-256 keys, the
 * SPIFFE ID as the one URI SAN, serverAuth + clientAuth.
 *
 * - Proxy side: wisp_ca_key_new_p256, wisp_ca_csr_new.
 * - Agent side: wisp_ca_csr_check (a parser: bytes in, result out, no I/O),
 *   wisp_ca_new_root / wisp_ca_load_pem, wisp_ca_issue.
 * - Both: PEM/DER encoding of keys and certificate chains.
 *
 * Byte and string buffers returned through out_ parameters come from
 * wisp_malloc: release them with free(). Keys and certificates are BoringSSL
 * objects: EVP_PKEY_free, X509_free, sk_X509_pop_free(certs, X509_free).
 * Ownership moves only on success; on failure out_ parameters are untouched
 * and |err| (may be NULL) holds a reason in plain words. */
#ifndef WISP_CA_H
#define WISP_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#ifndef OPENSSL_IS_BORINGSSL
#error "wisp builds against BoringSSL (android-libboringssl-dev)"
/* Issues a TLS server certificate for the DNS name |dns_name| (one DNS SAN,
 * CN the name, extKeyUsage serverAuth only, no URI SAN: it is no SVID and
 * no peer takes it as one), otherwise as wisp_ca_issue. For servers that
 * callers find by name: the agent's admission webhook, which the API
 * server calls at <service>.<namespace>.svc. WISP_ERR_USAGE for a name that
 * is not a lowercase DNS name. */
wisp_err wisp_ca_issue_server(wisp_ca *ca, X509 **out_cert, EVP_PKEY *subject_pubkey, const char *dns_name,
                              int64_t ttl_seconds, char *err, size_t err_len) WISP_MUST_CHECK;

#endif

#include "lib/wisp_err.h"
#include "lib/wisp_spiffe.h"

/* A CSR larger than this is refused before parsing (WISP_ERR_TOO_BIG). */
#define WISP_CA_CSR_MAX (16 * 1024)
/* PEM/DER inputs (keys, chains) larger than this are refused. */
#define WISP_CA_PEM_MAX (1024 * 1024)
/* Chains and bundles hold at most this many certificates. */
#define WISP_CA_CERTS_MAX 32
/* Accepted lifetimes (seconds) of issued SVIDs and of new roots. */
#define WISP_CA_TTL_MAX (100LL * 365 * 86400)
/* New certificates start this long before "now" (clock skew). */
#define WISP_CA_BACKDATE_SEC 60
/* Hex of a serial number: RFC 5280 allows 20 octets (40 digits + sign). */
#define WISP_CA_SERIAL_HEX_MAX 48

typedef struct wisp_ca wisp_ca;

/* ---- keys ----------------------------------------------------------------- */

/* Generates a new ECDSA P-256 key into |*out_key| (EVP_PKEY_free). */
wisp_err wisp_ca_key_new_p256(EVP_PKEY **out_key) WISP_MUST_CHECK;

/* Checks a key against the SVID key policy: EC P-256, or RSA of 2048..8192
 * bits. Other curves, small RSA and other key types are WISP_ERR_POLICY, with
 * a reason such as "RSA key of 512 bits is too small (need >= 2048, ECDSA
 * P-256 preferred)". |key| is borrowed. */
wisp_err wisp_ca_key_check_policy(const EVP_PKEY *key, char *err, size_t err_len) WISP_MUST_CHECK;

/* Encodes the private |key| (borrowed) as unencrypted PKCS#8 PEM ("PRIVATE
 * KEY"), NUL-terminated; |*out_len| excludes the NUL. */
wisp_err wisp_ca_key_to_pem(char **out_pem, size_t *out_len, EVP_PKEY *key) WISP_MUST_CHECK;

/* Decodes the first private key in |pem| (PKCS#8, SEC1 EC or PKCS#1 RSA;
 * encrypted keys are refused) into |*out_key| (EVP_PKEY_free).
 * WISP_ERR_PARSE if there is none. */
wisp_err wisp_ca_key_from_pem(EVP_PKEY **out_key, const char *pem, size_t len, char *err,
                              size_t err_len) WISP_MUST_CHECK;

/* ---- certificates --------------------------------------------------------- */

/* Encodes |certs| (borrowed, in order) as concatenated PEM blocks,
 * NUL-terminated; |*out_len| excludes the NUL. */
wisp_err wisp_ca_certs_to_pem(char **out_pem, size_t *out_len, const STACK_OF(X509) * certs) WISP_MUST_CHECK;

/* Decodes every CERTIFICATE block of |pem|, in order, into a new stack
 * (sk_X509_pop_free). At least one is required (WISP_ERR_PARSE), at most
 * WISP_CA_CERTS_MAX (WISP_ERR_TOO_BIG). */
wisp_err wisp_ca_certs_from_pem(STACK_OF(X509) * *out_certs, const char *pem, size_t len, char *err,
                                size_t err_len) WISP_MUST_CHECK;

/* Encodes |certs| as concatenated DER certificates: the "ASN.1 DER encoded
 * certificate chain" of the SPIFFE Workload API. */
wisp_err wisp_ca_certs_to_der(uint8_t **out_der, size_t *out_len, const STACK_OF(X509) * certs) WISP_MUST_CHECK;

/* Decodes concatenated DER certificates (every byte must belong to one) into
 * a new stack (sk_X509_pop_free). Same limits as wisp_ca_certs_from_pem. */
wisp_err wisp_ca_certs_from_der(STACK_OF(X509) * *out_certs, const uint8_t *der, size_t len, char *err,
                                size_t err_len) WISP_MUST_CHECK;

/* Sets |*out_unix| to |cert|'s notAfter in seconds since the Unix epoch.
 * (BoringSSL of this vintage has no ASN1_TIME_to_posix.) */
wisp_err wisp_ca_cert_not_after(const X509 *cert, int64_t *out_unix) WISP_MUST_CHECK;
/* The same for notBefore. */
wisp_err wisp_ca_cert_not_before(const X509 *cert, int64_t *out_unix) WISP_MUST_CHECK;

/* Seconds an SVID's notBefore may lie ahead of this host's clock and the
 * SVID still be taken (wisp_ca_svid_check): an issuer's clock a little
 * ahead. Its notAfter has no such grace. */
#define WISP_CA_CLOCK_SKEW_SEC 60

/* Bounds on an SVID's chain (leaf and intermediates): every TLS handshake
 * carries it, and peers refuse a certificate message much past 100 KB. */
#define WISP_CA_SVID_CHAIN_MAX 10
#define WISP_CA_SVID_DER_MAX (64 * 1024)

/* Checks an SVID before it is served: |chain| (leaf first, then its
 * intermediates) at most WISP_CA_SVID_CHAIN_MAX certificates and
 * WISP_CA_SVID_DER_MAX bytes of DER, a leaf that keeps the X.509-SVID
 * rules (wisp_spiffe_leaf_refused: not a CA, keyUsage), valid at |now|
 * (each notBefore at most |skew| seconds ahead, each notAfter to come) and
 * chaining by signature to a root of |roots|. WISP_ERR_VERIFY with a reason ("the SVID (spiffe://...) expired
 * at 2026-11-22 12:00:00 UTC", "... does not chain to the trust bundle (1
 * root): unable to get local issuer certificate"). Both stacks borrowed. */
wisp_err wisp_ca_svid_check(const STACK_OF(X509) * chain, const STACK_OF(X509) * roots, int64_t now, int64_t skew,
                            char *err, size_t err_len) WISP_MUST_CHECK;

/* Writes |cert|'s serial number as BoringSSL's BN_bn2hex does (lower-case
 * hex without leading zeros, "-" first if negative; OpenSSL's is upper-case)
 * to |out|, or "?" if it cannot be read.
 * Always NUL-terminates; WISP_CA_SERIAL_HEX_MAX bytes always suffice. */
void wisp_ca_cert_serial_hex(const X509 *cert, char *out, size_t out_len);

/* ---- CSR (proxy side) ----------------------------------------------------- */

/* Makes a DER PKCS#10 CSR for |spiffe_id|, signed with SHA-256 by |key|
 * (borrowed): subject O=wisp, CN=<last path segment>, and an extension
 * request whose only extension is a subjectAltName holding |spiffe_id| as its
 * one URI. WISP_ERR_IDENTITY if |spiffe_id| is not a SPIFFE ID with a path.
 * The key is not checked against the policy here: wisp_ca_csr_check does. */
wisp_err wisp_ca_csr_new(uint8_t **out_der, size_t *out_len, EVP_PKEY *key, const char *spiffe_id, char *err,
                         size_t err_len) WISP_MUST_CHECK;

/* ---- CSR checks (agent side) ---------------------------------------------- */

/* What a CSR asks for. Caller-allocated; a zeroed one is valid and empty. */
typedef struct {
  wisp_spiffe_id id; /* the requested SPIFFE ID */
  EVP_PKEY *pubkey;  /* the public key, a new reference (get1) owned by this
                          struct: wisp_ca_csr_info_cleanup releases it */
} wisp_ca_csr_info;

/* Releases |info|'s key and zeroes it. Accepts a zeroed or NULL |info|. */
void wisp_ca_csr_info_cleanup(wisp_ca_csr_info *info);

/* Checks the DER PKCS#10 CSR in |der| (PEM is not accepted) and, on
 * success, fills |out| (its previous contents are overwritten, not
 * released). Errors, in the order they are checked:
 *   WISP_ERR_TOO_BIG   more than WISP_CA_CSR_MAX bytes
 *   WISP_ERR_PARSE     not exactly one DER CertificationRequest (garbage,
 *                      truncation, trailing bytes, version other than v1,
 *                      undecodable key or extensions)
 *   WISP_ERR_POLICY    key not EC P-256 or RSA 2048..8192; signature
 *                      algorithm weaker than SHA-256
 *   WISP_ERR_VERIFY    the self-signature does not verify
 *   WISP_ERR_IDENTITY  the SANs are not exactly one URI holding a SPIFFE ID
 *                      with a path (any DNS, IP, e-mail... SAN is refused) */
wisp_err wisp_ca_csr_check(wisp_ca_csr_info *out, const uint8_t *der, size_t len, char *err,
                           size_t err_len) WISP_MUST_CHECK;

/* ---- CA (agent side) ------------------------------------------------------ */

/* Generates a self-signed ECDSA P-256 root for |trust_domain| valid for
 * |ttl_seconds| (1..WISP_CA_TTL_MAX, backdated by WISP_CA_BACKDATE_SEC):
 * subject O=wisp, CN=wisp root <trust-domain> (cut to 64 bytes, the X.520
 * limit); basicConstraints CA:TRUE and
 * keyUsage keyCertSign+cRLSign, both critical; SKI; URI SAN
 * spiffe://<trust-domain>. Returns NULL with a reason in |err| if the trust
 * domain or TTL is invalid. Free with wisp_ca_free. */
wisp_ca *wisp_ca_new_root(const char *trust_domain, int64_t ttl_seconds, char *err, size_t err_len);

/* Loads a CA from |cert_pem|, the CA certificate first followed by its
 * issuers up to and including a self-signed root (just the root for a root
 * CA), and |key_pem|, the CA certificate's private key. |trust_domain| may be
 * NULL to take it from the CA certificate's spiffe:// URI SAN; if both are
 * present they must agree. Errors:
 *   WISP_ERR_PARSE / WISP_ERR_TOO_BIG  unreadable PEM
 *   WISP_ERR_POLICY    CA key is not EC P-256 or RSA 2048..8192
 *   WISP_ERR_USAGE     key does not match the certificate; a certificate is
 *                      not a CA (basicConstraints CA:TRUE, keyCertSign)
 *   WISP_ERR_VERIFY    certificates out of order or not signed by the next,
 *                      no root at the end, expired or not yet valid
 *   WISP_ERR_IDENTITY  no or mismatching trust domain
 * On success |*out_ca| is new (wisp_ca_free). */
wisp_err wisp_ca_load_pem(wisp_ca **out_ca, const char *trust_domain, const char *cert_pem, size_t cert_len,
                          const char *key_pem, size_t key_len, char *err, size_t err_len) WISP_MUST_CHECK;

/* Reads |cert_path| (then |chain_path| if not NULL, appended) and |key_path|
 * and calls wisp_ca_load_pem. WISP_ERR_IO if a file cannot be read. */
wisp_err wisp_ca_load_files(wisp_ca **out_ca, const char *trust_domain, const char *cert_path, const char *chain_path,
                            const char *key_path, char *err, size_t err_len) WISP_MUST_CHECK;

void wisp_ca_free(wisp_ca *ca);

/* Encodes |ca| in the layout wisp_ca_load_pem reads: the CA certificate and
 * its issuers up to the root as PEM, and the key as PKCS#8 PEM. Both
 * NUL-terminated (lengths exclude the NUL); the agent writes them to disk
 * itself (the key with mode 0600). */
wisp_err wisp_ca_save_pem(const wisp_ca *ca, char **out_cert_pem, size_t *out_cert_len, char **out_key_pem,
                          size_t *out_key_len) WISP_MUST_CHECK;

/* The trust domain, e.g. "example.org" (get0). */
const char *wisp_ca_get0_trust_domain(const wisp_ca *ca);

/* The CA certificate that signs SVIDs (get0). */
X509 *wisp_ca_get0_cert(const wisp_ca *ca);

/* The certificates to send after an issued SVID so that peers can reach a
 * root: the CA certificate and the intermediates above it when the CA is an
 * intermediate, empty when the CA is a root (get0; never NULL). */
STACK_OF(X509) * wisp_ca_get0_chain(const wisp_ca *ca);

/* The trust bundle: the CA's root first, then any added with
 * wisp_ca_add1_root (get0; never NULL). */
STACK_OF(X509) * wisp_ca_get0_roots(const wisp_ca *ca);

/* Adds |root| (a new reference is taken; the caller keeps its own) to the
 * trust bundle, e.g. the previous root during a CA rotation. It must be a
 * self-signed CA certificate (WISP_ERR_USAGE otherwise); adding one already
 * present does nothing. */
wisp_err wisp_ca_add1_root(wisp_ca *ca, X509 *root, char *err, size_t err_len) WISP_MUST_CHECK;

/* Issues an X.509-SVID for |spiffe_id| and |subject_pubkey| (borrowed) into
 * |*out_cert| (X509_free): v3, random positive 16-byte serial (126 random
 * bits), subject O=wisp + CN=<last path segment, cut to 64 bytes>, one URI
 * SAN |spiffe_id|, basicConstraints
 * CA:FALSE and keyUsage digitalSignature (both critical), extKeyUsage
 * serverAuth+clientAuth, SKI, AKI; valid from now - WISP_CA_BACKDATE_SEC to
 * now + |ttl_seconds| (1..WISP_CA_TTL_MAX) but never past the notAfter of the
 * CA certificate or of any certificate above it; signed with SHA-256.
 * Errors: WISP_ERR_IDENTITY (not a SPIFFE ID with a path, or another trust
 * domain), WISP_ERR_POLICY (key), WISP_ERR_USAGE (TTL), WISP_ERR_VERIFY (the
 * CA has expired). Safe to call from several threads on one |ca| as long as
 * wisp_ca_add1_root is not running. */
wisp_err wisp_ca_issue(wisp_ca *ca, X509 **out_cert, EVP_PKEY *subject_pubkey, const char *spiffe_id,
                       int64_t ttl_seconds, char *err, size_t err_len) WISP_MUST_CHECK;

/* How an SVID's ID was proven, written in it so that the agent can ask for
 * the same proof when it is renewed. */
typedef struct {
  const char *name;      /* the subject's OU, e.g. WISP_CA_ORIGIN_SA_TOKEN */
  int64_t not_after_max; /* Unix seconds the SVID must not outlive (0: none), e.g. a token's exp */
} wisp_ca_origin;

/* An SVID issued on a Kubernetes service-account token. */
#define WISP_CA_ORIGIN_SA_TOKEN "kubernetes-service-account-token"

/* As wisp_ca_issue, and with |origin| (NULL: as wisp_ca_issue): the subject
 * gets OU=<origin->name> (O=wisp, OU, CN) and notAfter is also capped at
 * origin->not_after_max. WISP_ERR_USAGE when that cap is already past. */
wisp_err wisp_ca_issue_from(wisp_ca *ca, X509 **out_cert, EVP_PKEY *subject_pubkey, const char *spiffe_id,
                            const wisp_ca_origin *origin, int64_t ttl_seconds, char *err,
                            size_t err_len) WISP_MUST_CHECK;

/* The OU of |cert|'s subject (wisp_ca_issue_from's origin) into |out|
 * (|cap| bytes); false when it has none, or one that does not fit or holds
 * a NUL. */
bool wisp_ca_cert_origin(const X509 *cert, char *out, size_t cap);

/* Issues a TLS server certificate for the DNS name |dns_name| (one DNS SAN,
 * CN the name, extKeyUsage serverAuth only, no URI SAN: it is no SVID and
 * no peer takes it as one), otherwise as wisp_ca_issue. For servers that
 * callers find by name: the agent's admission webhook, which the API
 * server calls at <service>.<namespace>.svc. WISP_ERR_USAGE for a name that
 * is not a lowercase DNS name. */
wisp_err wisp_ca_issue_server(wisp_ca *ca, X509 **out_cert, EVP_PKEY *subject_pubkey, const char *dns_name,
                              int64_t ttl_seconds, char *err, size_t err_len) WISP_MUST_CHECK;

#endif
