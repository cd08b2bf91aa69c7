/* wisp_ca_internal: what the three files of //lib:ca share; private to
 * them (the public API is lib/wisp_ca.h).
 *   wisp_ca_x509.c  keys and certificates: P-256 keys, the key policy, PEM
 *                   and DER; the helpers below
 *   wisp_ca_csr.c   certificate signing requests: made (proxy side) and
 *                   checked (agent side)
 *   wisp_ca.c       the CA itself: a root made or loaded, leaves issued */
#ifndef WISP_CA_INTERNAL_H
#define WISP_CA_INTERNAL_H

#include <stdint.h>

#include <openssl/bio.h>
#include <openssl/x509.h>

#include "lib/wisp_ca.h"
#include "lib/wisp_err.h"
#include "lib/wisp_spiffe.h"

/* Writes a reason to |err|, clears BoringSSL's error queue (so that nothing
 * stale reaches a later SSL call on this thread) and returns |code|. */
wisp_err wca_fail(char *err, size_t err_len, wisp_err code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The first reason on BoringSSL's error queue, for messages. */
const char *wca_ssl_reason(void);
/* Copies a memory BIO's contents into a new NUL-terminated buffer. */
wisp_err wca_bio_take(char **out, size_t *out_len, BIO *b) WISP_MUST_CHECK;
/* A read-only memory BIO over |len| bytes (callers bound |len|). */
BIO *wca_mem_bio(const void *data, size_t len);
/* |tm| as unix seconds. */
wisp_err wca_asn1_time_unix(const ASN1_TIME *tm, int64_t *out) WISP_MUST_CHECK;
/* "P-256", or a short name, for messages. */
const char *wca_curve_name(int nid);
/* Parses |s| as a SPIFFE ID naming a workload (non-empty path). */
wisp_err wca_parse_workload_id(wisp_spiffe_id *out, const char *s, char *err, size_t err_len) WISP_MUST_CHECK;
/* O=wisp, CN=|cn| (cut to 64 bytes: SPIFFE paths are ASCII); NULL on
 * failure. */
X509_NAME *wca_name(const char *cn);
/* The last path segment of |id| (which has a path). */
const char *wca_last_segment(const wisp_spiffe_id *id);
/* A subjectAltName extension holding |value| as its one name of |type|
 * (GEN_URI, GEN_DNS); NULL on failure. */
X509_EXTENSION *wca_san_ext(int type, const char *value);

#endif
