/* test_x509: builds keys and certificates inside unit tests with BoringSSL,
 * so no test depends on fixture files that expire or drift. Test-only. */
#ifndef WISP_TEST_X509_H
#define WISP_TEST_X509_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* One subjectAltName entry: GEN_URI or GEN_DNS, and its bytes (|len| 0:
 * strlen(value)). */
typedef struct {
  int type;
  const char *value;
  size_t len;
} test_san;

typedef struct {
  const char *cn;       /* subject CN, NULL: none */
  const test_san *sans; /* NULL/0: no SAN extension at all */
  size_t nsans;
  bool is_ca;     /* adds basicConstraints CA:TRUE (critical) */
  bool not_ca;    /* adds basicConstraints CA:FALSE (critical) */
  long key_usage; /* KU_* bits of x509v3.h; 0: digitalSignature on a
                              * leaf, none on a CA; TEST_KU_NONE: none */
  bool key_usage_noncritical;
  long serial;         /* 0: 1 */
  long not_before_sec; /* offset from now */
  long not_after_sec;  /* offset from now; 0: one day */
} test_cert_spec;

#define TEST_KU_NONE (-1L)

/* A new EC P-256 key (EVP_PKEY_free). */
EVP_PKEY *test_new_key(void);

/* A new v3 certificate for |key| from |spec| (X509_free), signed by
 * |issuer_key| and named after |issuer| (both NULL: self-signed). */
X509 *test_new_cert(const test_cert_spec *spec, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key);

/* Writes PEM to |path| through a temporary file and rename(2), as a
 * rotating agent does. Return true on success. */
bool test_write_certs(const char *path, X509 *const *certs, size_t n);
bool test_write_key(const char *path, EVP_PKEY *key);
bool test_write_file(const char *path, const char *data);

/* Makes a fresh directory under $TEST_TMPDIR (or /tmp) into |out|. */
bool test_make_tmpdir(char *out, size_t out_len, const char *prefix);
/* "|dir|/|name|", in one of 16 static buffers used in turn (so a few may
 * be used at once, e.g. a cert, key and bundle in one call). */
const char *test_path(const char *dir, const char *name);
/* Removes the files in |dir| (one level) and |dir| itself. */
void test_remove_tmpdir(const char *dir);

#endif
