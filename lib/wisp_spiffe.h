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
  char id[WISP_SPIFFE_MAX + 1];          /* the whole ID, NUL-terminated */
  char trust_domain[WISP_SPIFFE_TD_MAX + 1];
  size_t path_off;                       /* offset of the path in |id| ("" if none) */
} wisp_spiffe_id;

/* Parses and validates |s| (|len| bytes) per the SPIFFE ID spec: lowercase
 * trust domain of [a-z0-9.-_], path segments of [A-Za-z0-9.-_] that are not
 * empty, "." or "..", no query, fragment, port or userinfo. On error writes a
 * reason to |err_buf| (may be NULL) and returns WISP_ERR_IDENTITY. */
wisp_err wisp_spiffe_parse(wisp_spiffe_id *out, const char *s, size_t len,
                           char *err_buf, size_t err_len) WISP_MUST_CHECK;

/* Extracts the SPIFFE ID of an X.509-SVID: exactly one subjectAltName
 * extension, that decodes, with exactly one URI, and it must parse. |cert|
 * is borrowed. Leaves BoringSSL's error queue empty either way. */
wisp_err wisp_spiffe_from_cert(wisp_spiffe_id *out, const X509 *cert,
                               char *err_buf, size_t err_len) WISP_MUST_CHECK;

/* The X.509-SVID rules for a leaf (SPIFFE X509-SVID spec 4.1, 4.3): not a
 * CA (basicConstraints CA:FALSE or absent), a keyUsage extension marked
 * critical that has digitalSignature and neither keyCertSign nor cRLSign.
 * Returns NULL when |leaf| keeps them, else a static sentence saying which
 * it breaks. |leaf| is borrowed (non-const: BoringSSL caches its parsed
 * extensions in it). Leaves the error queue as it was. */
const char *wisp_spiffe_leaf_refused(X509 *leaf);

/* Writes a short description of |cert| for error messages: its SPIFFE ID if
 * it has one, else its subject. Always NUL-terminates. */
void wisp_spiffe_describe_cert(const X509 *cert, char *out, size_t out_len);

#endif
