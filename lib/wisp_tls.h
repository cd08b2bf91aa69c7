/* wisp_tls: mTLS contexts over BoringSSL. A wisp_tls holds the current
 * credentials (own SVID, key, trust bundle) as a pair of SSL_CTXs, one per
 * role. Reloading builds a whole new pair and swaps it in only on success:
 * SSL objects already made keep a reference to the old SSL_CTX, so new
 * handshakes use the new certificate at once and open connections stay up.
 *
 * Peers are verified by chain to the bundle AND by SPIFFE ID, never by CN or
 * DNS name. The first failure is described in plain words in the
 * connection's wisp_tls_verify (e.g. "peer presented spiffe://a, route
 * expects spiffe://b"), so the edge that decides can log and report it. */
#ifndef WISP_TLS_H
#define WISP_TLS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>
#ifndef OPENSSL_IS_BORINGSSL
#error "wisp builds against BoringSSL (android-libboringssl-dev)"
#endif

#include "lib/wisp_err.h"
#include "lib/wisp_spiffe.h"

#define WISP_TLS_REASON_MAX 512

typedef struct wisp_tls wisp_tls;

/* Why a handshake (or the peer's certificate) was refused, as a small
 * fixed set for metrics and alerts; |reason| has the words. */
typedef enum {
  WISP_TLS_FAIL_NONE = 0,
  WISP_TLS_FAIL_NO_CLIENT_CERT, /* the caller presented none */
  WISP_TLS_FAIL_UNKNOWN_CA,     /* chain does not lead to the bundle (self-signed too) */
  WISP_TLS_FAIL_EXPIRED,
  WISP_TLS_FAIL_NOT_YET_VALID,
  WISP_TLS_FAIL_IDENTITY,    /* not an X.509-SVID, other ID or trust domain than wanted */
  WISP_TLS_FAIL_PLAINTEXT,   /* no TLS at all on an mTLS port */
  WISP_TLS_FAIL_TLS_VERSION, /* below TLS 1.3 (without --allow-tls12) */
  WISP_TLS_FAIL_ALPN,        /* no ALPN, or neither h2 nor wisp-l4 */
  WISP_TLS_FAIL_TIMEOUT,     /* handshake not finished in time */
  WISP_TLS_FAIL_OTHER,
  WISP_TLS_FAIL_COUNT
} wisp_tls_failure;

/* "unknown_ca", "expired", ...: the label value of |f| ("" for NONE). */
const char *wisp_tls_failure_name(wisp_tls_failure f);

typedef struct {
  bool allow_tls12;          /* default: TLS 1.3 only */
  bool client_cert_optional; /* server: verify a client cert if one comes (the agent) */
  bool require_alpn;         /* server: refuse a client that offers no ALPN (the proxy's mTLS port) */
} wisp_tls_opts;

/* Per-connection verification state, owned by the connection and borrowed
 * by its SSL (ex_data). Whoever takes an SSL over from the connection that
 * made it (the proxy's handshake stage handing an inbound caller to its
 * wisp_conn or L4 tunnel) points the SSL at its own copy with
 * wisp_tls_set_verify before the old one goes. */
typedef struct {
  const char *expect_id; /* borrowed; NULL: any ID in our trust domain */
  char trust_domain[WISP_SPIFFE_TD_MAX + 1];
  wisp_spiffe_id peer;              /* set once the peer is verified */
  bool peer_ok;                     /* !peer_ok: |peer| may hold the ID a refused cert claims */
  char reason[WISP_TLS_REASON_MAX]; /* first failure, "" if none */
  wisp_tls_failure failure;         /* its kind, set with |reason| */
} wisp_tls_verify;

/* Facts about the current credentials, for logs and the admin API. */
typedef struct {
  char spiffe_id[WISP_SPIFFE_MAX + 1];
  char serial[80];    /* hex */
  char not_after[64]; /* human-readable, GMT */
  int64_t not_after_unix;
  int64_t not_before_unix;
  char bundle_not_after[64];
  int64_t bundle_not_after_unix;        /* the earliest root's; 0: none */
  int64_t bundle_newest_not_after_unix; /* the latest-ending root's; 0: none */
  int bundle_roots;
  uint64_t generation; /* bumps on every successful load */
} wisp_tls_info;

/* Credentials to come (wisp_tls_load_*); never NULL (out of memory is
 * fatal). |opts| may be NULL: the defaults. */
wisp_tls *wisp_tls_new(const wisp_tls_opts *opts);
void wisp_tls_free(wisp_tls *t);

/* Loads PEM files (cert may hold the chain; bundle may hold several roots)
 * and installs them. On failure the previous credentials stay in force and
 * |err| says which file and why. */
wisp_err wisp_tls_load_files(wisp_tls *t, const char *cert, const char *key, const char *bundle, char *err,
                             size_t err_len) WISP_MUST_CHECK;

/* Installs credentials held in memory (an SVID from the agent): |key|, the
 * chain (leaf first, then intermediates) and the trust bundle |roots| are
 * borrowed; the wisp_tls takes its own references. Same swap semantics as
 * wisp_tls_load_files. */
wisp_err wisp_tls_set_creds(wisp_tls *t, EVP_PKEY *key, STACK_OF(X509) * chain, STACK_OF(X509) * roots, char *err,
                            size_t err_len) WISP_MUST_CHECK;
/* Replaces just the trust bundle of in-memory credentials (a bundle pushed
 * by the agent, e.g. during CA rotation). */
wisp_err wisp_tls_set_roots(wisp_tls *t, STACK_OF(X509) * roots, char *err, size_t err_len) WISP_MUST_CHECK;

/* Client-side trust only, no certificate of our own: for reaching wisp-agent
 * over TLS before the first SVID. The server must present |expect_id|. */
wisp_err wisp_tls_load_trust_file(wisp_tls *t, const char *bundle, char *err, size_t err_len) WISP_MUST_CHECK;

/* Re-reads the files given to wisp_tls_load_files if any of them changed
 * (mtime, size or inode). |out_changed| says whether new credentials are in
 * force. */
wisp_err wisp_tls_reload_if_changed(wisp_tls *t, bool *out_changed, char *err, size_t err_len) WISP_MUST_CHECK;

/* Puts |src|'s credentials in force in |dst| too: the same pair of
 * SSL_CTXs (one more reference each; BoringSSL's SSL_CTX may make SSLs on
 * several threads at once) and the same facts. For wisp-proxy's --workers:
 * each worker's loop has its own wisp_tls, which the thread that loads
 * credentials (worker 0) refreshes while that worker's loop is stopped (its
 * loop lock), so neither side reads the other's fields while they change.
 * |dst| gets no files to reload nor in-memory credentials: it only
 * follows |src|. */
void wisp_tls_adopt(wisp_tls *dst, const wisp_tls *src);

bool wisp_tls_ready(const wisp_tls *t);
const wisp_tls_info *wisp_tls_get0_info(const wisp_tls *t);

/* Makes a new SSL for one connection (caller owns it, SSL_free). |v| is
 * borrowed and must outlive the handshake; its trust domain is filled in.
 * Client SSLs offer ALPN h2. Returns NULL if no credentials are loaded. */
SSL *wisp_tls_new_ssl(const wisp_tls *t, bool server, wisp_tls_verify *v);

/* Points |ssl|'s verification state at |v| (borrowed; NULL: none). The
 * callbacks that read it (certificate verification, ALPN) find it only
 * during a handshake; with none they refuse, failing closed. */
void wisp_tls_set_verify(SSL *ssl, wisp_tls_verify *v);
/* The verification state |ssl| points at (borrowed), or NULL. */
wisp_tls_verify *wisp_tls_get0_verify(const SSL *ssl);

/* After a failed handshake: fills |v->reason| and |v->failure| (if still
 * empty) from the BoringSSL error queue and clears the queue. */
void wisp_tls_describe_failure(wisp_tls_verify *v, SSL *ssl, int ret);

#endif
