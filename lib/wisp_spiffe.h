/* wisp_spiffe: SPIFFE IDs (spiffe://<trust-domain>/<path>) and X.509-SVID
 * identity extraction. The parser takes bytes and returns a result; it does
 * no I/O and keeps no state, so it is unit-tested and fuzzed alone. */
#ifndef WISP_SPIFFE_H
#define WISP_SPIFFE_H

#include <stddef.h>

#include <openssl/x509.h>

#include "lib/wisp_err.h"

/* SPIFFE spec: a SPIFFE ID is at most 2048 bytes. */
#define WISP_SPIFFE_MAX 2048
#define WISP_SPIFFE_TD_MAX 255

typedef struct {
  char id[WISP_SPIFFE_MAX + 1]; /* the whole ID, NUL-terminated */
  char trust_domain[WISP_SPIFFE_TD_MAX + 1];
  size_t path_off; /* offset of the path in |id| ("" if none) */
} wisp_spiffe_id;

/* Parses and validates |s| (|len| bytes) per the SPIFFE ID spec: lowercase
 * trust domain of [a-z0-9.-_], path segments of [A-Za-z0-9.-_] that are not
 * empty, "." or "..", no query, fragment, port or userinfo. On error writes a
 * reason to |err_buf| (may be NULL) and returns WISP_ERR_IDENTITY. */
wisp_err wisp_spiffe_parse(wisp_spiffe_id *out, const char *s, size_t len, char *err_buf,
                           size_t err_len) WISP_MUST_CHECK;

/* Extracts the SPIFFE ID of an X.509-SVID: exactly one subjectAltName
 * extension, that decodes, with exactly one URI, and it must parse. |cert|
 * is borrowed. Leaves BoringSSL's error queue empty either way. */
wisp_err wisp_spiffe_from_cert(wisp_spiffe_id *out, const X509 *cert, char *err_buf, size_t err_len) WISP_MUST_CHECK;

/* The X.509-SVID rules for a leaf (SPIFFE X509-SVID spec 4.1, 4.3): not a
 * CA (basicConstraints CA:FALSE or absent), a keyUsage extension marked
 * critical that has digitalSignature and neither keyCertSign nor cRLSign.
 * Returns NULL when |leaf| keeps them, else a static sentence saying which
 * it breaks. |leaf| is borrowed (non-const: BoringSSL caches its parsed
 * extensions in it). Leaves the error queue as it was. */
const char *wisp_spiffe_leaf_refused(X509 *leaf);

/* ---- the parts metrics label ----------------------------------------
 * Metrics name a workload by its ID's trust domain and, for a Kubernetes
 * style path /ns/NS/sa/SA, its namespace and service account. */

/* Splits |id| into trust domain, namespace and service account (pure; each
 * output NUL-terminated, "unknown" where the ID has no such part: NULL or
 * not spiffe://, a path other than /ns/NS/sa/SA). */
void wisp_spiffe_split_names(const char *id, char *td, size_t td_len, char *ns, size_t ns_len, char *sa, size_t sa_len);

/* A workload's names for its labels: |id| (borrowed: the ID given, or
 * "unknown" for NULL or "") and its parts as wisp_spiffe_split_names
 * writes them. Large (6 KiB): callers keep it off the stack. */
typedef struct {
  const char *id;
  char td[WISP_SPIFFE_MAX + 1], ns[WISP_SPIFFE_MAX + 1], sa[WISP_SPIFFE_MAX + 1];
} wisp_spiffe_names;

void wisp_spiffe_names_init(wisp_spiffe_names *out, const char *id);

/* Writes a short description of |cert| for error messages: its SPIFFE ID if
 * it has one, else its subject. Always NUL-terminates. */
void wisp_spiffe_describe_cert(const X509 *cert, char *out, size_t out_len);

#endif
