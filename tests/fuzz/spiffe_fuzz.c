/* Fuzz target for lib/wisp_spiffe: the SPIFFE ID parser (every ID a peer
 * presents in a certificate, asks for in a CSR, or names in a policy or a
 * Watch goes through it) and identity extraction from X.509-SVIDs.
 *
 * The input is parsed as an ID and checked against an oracle written
 * independently from the SPIFFE ID spec; an ID that parses is exactly the
 * input, re-parses to the same result, and splits into its trust domain
 * and path as the spec says; a refusal leaves the output alone and fits
 * any error buffer. The same bytes are also tried as a DER certificate:
 * an identity taken from it is its one URI SAN, describing it fits any
 * buffer, and neither leaves an error on BoringSSL's queue.
 *
 * Replayed over corpus/spiffe/ by //tests/fuzz:spiffe_fuzz_replay in the
 * normal suite; tests/fuzz/run_fuzzers.sh fuzzes it for real. */
#include <stdbool.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "lib/wisp_spiffe.h"
#include "tests/fuzz/fuzz.h"

static bool in_set(uint8_t c, const char *extra, bool upper) {
  return (c >= 'a' && c <= 'z') || (upper && c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != 0 && strchr(extra, c) != NULL);
}

/* The spec, segment by segment: spiffe://TD[/SEG]... */
static bool oracle_valid(const uint8_t *s, size_t len, size_t *out_td_len) {
  static const char kScheme[] = "spiffe://";
  const size_t sl = sizeof(kScheme) - 1;
  if (len > WISP_SPIFFE_MAX || len < sl || memcmp(s, kScheme, sl) != 0) return false;
  const uint8_t *td = s + sl;
  const uint8_t *end = s + len;
  const uint8_t *slash = memchr(td, '/', (size_t)(end - td));
  const uint8_t *td_end = slash ? slash : end;
  size_t td_len = (size_t)(td_end - td);
  if (td_len == 0 || td_len > WISP_SPIFFE_TD_MAX) return false;
  for (const uint8_t *p = td; p < td_end; p++)
    if (!in_set(*p, ".-_", false)) return false;
  const uint8_t *seg = td_end;
  while (seg < end) {
    seg++; /* the '/' */
    const uint8_t *next = memchr(seg, '/', (size_t)(end - seg));
    const uint8_t *seg_end = next ? next : end;
    size_t n = (size_t)(seg_end - seg);
    if (n == 0) return false;
    if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) return false;
    for (const uint8_t *p = seg; p < seg_end; p++)
      if (!in_set(*p, ".-_", true)) return false;
    seg = seg_end;
  }
  *out_td_len = td_len;
  return true;
}

static void fuzz_parse(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  wisp_spiffe_id *id = malloc(sizeof(*id));
  CHECK(id != NULL);
  memset(id, 0xa5, sizeof(*id));
  char err[128];
  wisp_err rc = wisp_spiffe_parse(id, s, size, err, sizeof(err));
  size_t td_len = 0;
  bool valid = oracle_valid(data, size, &td_len);
  CHECK((rc == WISP_OK) == valid);
  if (rc != WISP_OK) {
    CHECK(rc == WISP_ERR_IDENTITY);
    CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
    for (size_t i = 0; i < sizeof(*id); i++) CHECK(((uint8_t *)id)[i] == 0xa5);
    /* Any error buffer, or none, is fine. */
    char tiny[3];
    CHECK(wisp_spiffe_parse(id, s, size, tiny, sizeof(tiny)) == rc && strlen(tiny) <= 2);
    CHECK(wisp_spiffe_parse(id, s, size, tiny, 1) == rc && tiny[0] == '\0');
    CHECK(wisp_spiffe_parse(id, s, size, NULL, 0) == rc);
    free(id);
    return;
  }
  CHECK(strlen(id->id) == size && memcmp(id->id, data, size) == 0);
  CHECK(strlen(id->trust_domain) == td_len && memcmp(id->trust_domain, data + 9, td_len) == 0);
  CHECK(id->path_off == 9 + td_len && id->path_off <= size);
  CHECK(id->id[id->path_off] == '\0' || id->id[id->path_off] == '/');
  /* Re-serialising (the ID as stored) parses to the same thing. */
  wisp_spiffe_id *again = malloc(sizeof(*again));
  CHECK(again != NULL);
  CHECK(wisp_spiffe_parse(again, id->id, strlen(id->id), NULL, 0) == WISP_OK);
  CHECK(strcmp(again->id, id->id) == 0 && strcmp(again->trust_domain, id->trust_domain) == 0 &&
        again->path_off == id->path_off);
  free(again);
  free(id);
}

static void fuzz_cert(const uint8_t *data, size_t size) {
  const uint8_t *p = data;
  X509 *x = d2i_X509(NULL, &p, (long)size);
  if (!x) {
    ERR_clear_error();
    return;
  }
  wisp_spiffe_id *id = malloc(sizeof(*id));
  CHECK(id != NULL);
  char err[160];
  ERR_clear_error(); /* what d2i_X509 left */
  wisp_err rc = wisp_spiffe_from_cert(id, x, err, sizeof(err));
  CHECK(ERR_peek_error() == 0); /* nothing stale for a later SSL call */
  if (rc == WISP_OK) {
    /* Exactly one URI SAN, and it is this ID. */
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int uris = 0;
    for (size_t i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
      const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
      if (gn->type != GEN_URI) continue;
      uris++;
      const ASN1_STRING *u = gn->d.uniformResourceIdentifier;
      CHECK((size_t)ASN1_STRING_length(u) == strlen(id->id) &&
            memcmp(ASN1_STRING_get0_data(u), id->id, strlen(id->id)) == 0);
    }
    GENERAL_NAMES_free(names);
    CHECK(uris == 1);
  } else {
    CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
  }
  for (size_t len = 1; len <= 64; len *= 4) {
    char *out = malloc(len);
    CHECK(out != NULL);
    wisp_spiffe_describe_cert(x, out, len);
    CHECK(memchr(out, '\0', len) != NULL);
    free(out);
  }
  char full[600];
  wisp_spiffe_describe_cert(x, full, sizeof(full));
  CHECK(full[0] != '\0');
  CHECK(ERR_peek_error() == 0);
  free(id);
  X509_free(x);
  ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_parse(data, size);
  fuzz_cert(data, size);
  return 0;
}
