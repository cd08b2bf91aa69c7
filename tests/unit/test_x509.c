#include "tests/unit/test_x509.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

EVP_PKEY *test_new_key(void) {
  EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
  EVP_PKEY *pkey = EVP_PKEY_new();
  if (!ec || !pkey || !EC_KEY_generate_key(ec) || !EVP_PKEY_assign_EC_KEY(pkey, ec)) {
    EC_KEY_free(ec);
    EVP_PKEY_free(pkey);
    return NULL;
  }
  return pkey;
}

static bool add_ext(X509 *x, int nid, int crit, void *value) {
  X509_EXTENSION *ext = X509V3_EXT_i2d(nid, crit, value);
  bool ok = ext && X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  return ok;
}

/* |bits|: KU_* masks of x509v3.h, which put RFC 5280's bit n at 0x80 >> n
 * (decipherOnly, bit 8, at 0x8000). */
static bool add_key_usage(X509 *x, uint32_t bits, bool critical) {
  ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
  bool ok = ku != NULL;
  for (int n = 0; ok && n < 8; n++)
    if (bits & (0x80u >> n)) ok = ASN1_BIT_STRING_set_bit(ku, n, 1);
  if (ok && (bits & KU_DECIPHER_ONLY)) ok = ASN1_BIT_STRING_set_bit(ku, 8, 1);
  ok = ok && add_ext(x, NID_key_usage, critical, ku);
  ASN1_BIT_STRING_free(ku);
  return ok;
}

static bool add_sans(X509 *x, const test_san *sans, size_t n) {
  GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
  bool ok = gens != NULL;
  for (size_t i = 0; ok && i < n; i++) {
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    size_t len = sans[i].len ? sans[i].len : strlen(sans[i].value);
    if (!gn || !s || !ASN1_STRING_set(s, sans[i].value, (int)len)) {
      GENERAL_NAME_free(gn);
      ASN1_IA5STRING_free(s);
      ok = false;
      break;
    }
    GENERAL_NAME_set0_value(gn, sans[i].type, s);
    if (!sk_GENERAL_NAME_push(gens, gn)) {
      GENERAL_NAME_free(gn);
      ok = false;
    }
  }
  ok = ok && add_ext(x, NID_subject_alt_name, 0, gens);
  GENERAL_NAMES_free(gens);
  return ok;
}

X509 *test_new_cert(const test_cert_spec *spec, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key) {
  X509 *x = X509_new();
  X509_NAME *name = X509_NAME_new();
  bool ok = x && name;
  ok = ok && X509_set_version(x, X509_VERSION_3);
  ok = ok && ASN1_INTEGER_set(X509_get_serialNumber(x), spec->serial ? spec->serial : 1);
  ok = ok && X509_gmtime_adj(X509_getm_notBefore(x), spec->not_before_sec);
  ok = ok && X509_gmtime_adj(X509_getm_notAfter(x), spec->not_after_sec ? spec->not_after_sec : 86400);
  if (ok && spec->cn) ok = X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const uint8_t *)spec->cn, -1, -1, 0);
  ok = ok && X509_set_subject_name(x, name);
  ok = ok && X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
  ok = ok && X509_set_pubkey(x, key);
  if (ok && spec->is_ca) {
    BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
    ok = bc != NULL;
    if (ok) bc->ca = 1;
    ok = ok && add_ext(x, NID_basic_constraints, 1, bc);
    BASIC_CONSTRAINTS_free(bc);
  }
  if (ok && spec->not_ca) {
    BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
    ok = bc != NULL && add_ext(x, NID_basic_constraints, 1, bc);
    BASIC_CONSTRAINTS_free(bc);
  }
  long ku = spec->key_usage ? spec->key_usage : spec->is_ca ? TEST_KU_NONE : KU_DIGITAL_SIGNATURE;
  if (ok && ku != TEST_KU_NONE) ok = add_key_usage(x, (uint32_t)ku, !spec->key_usage_noncritical);
  if (ok && spec->sans) ok = add_sans(x, spec->sans, spec->nsans);
  ok = ok && X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256());
  X509_NAME_free(name);
  if (!ok) {
    X509_free(x);
    return NULL;
  }
  return x;
}

/* Opens "<path>.tmp" for writing; test_commit renames it over |path|. */
static FILE *open_tmp(const char *path, char *tmp, size_t tmp_len) {
  snprintf(tmp, tmp_len, "%s.tmp", path);
  return fopen(tmp, "w");
}

static bool commit(FILE *f, bool ok, const char *tmp, const char *path) {
  ok = (fclose(f) == 0) && ok;
  if (ok) ok = rename(tmp, path) == 0;
  if (!ok) unlink(tmp);
  return ok;
}

bool test_write_certs(const char *path, X509 *const *certs, size_t n) {
  char tmp[4096];
  FILE *f = open_tmp(path, tmp, sizeof(tmp));
  if (!f) return false;
  bool ok = true;
  for (size_t i = 0; ok && i < n; i++) ok = PEM_write_X509(f, certs[i]) == 1;
  return commit(f, ok, tmp, path);
}

bool test_write_key(const char *path, EVP_PKEY *key) {
  char tmp[4096];
  FILE *f = open_tmp(path, tmp, sizeof(tmp));
  if (!f) return false;
  bool ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
  return commit(f, ok, tmp, path);
}

bool test_write_file(const char *path, const char *data) {
  char tmp[4096];
  FILE *f = open_tmp(path, tmp, sizeof(tmp));
  if (!f) return false;
  bool ok = fputs(data, f) >= 0;
  return commit(f, ok, tmp, path);
}

bool test_make_tmpdir(char *out, size_t out_len, const char *prefix) {
  const char *base = getenv("TEST_TMPDIR");
  if (!base || !*base) base = "/tmp";
  int n = snprintf(out, out_len, "%s/%s.XXXXXX", base, prefix);
  if (n < 0 || (size_t)n >= out_len) return false;
  return mkdtemp(out) != NULL;
}

const char *test_path(const char *dir, const char *name) {
  static char ring[16][1200];
  static int next;
  char *out = ring[next++ % 16];
  snprintf(out, sizeof(ring[0]), "%s/%s", dir, name);
  return out;
}

void test_remove_tmpdir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(dir);
}
