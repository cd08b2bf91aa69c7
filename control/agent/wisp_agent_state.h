/* wisp_agent_state: what the agent keeps in --state-dir (each file written
 * atomically by lib/wisp_state), its CA loaded or made there, its own TLS
 * certificate, and the small helpers every file of the agent uses. Private
 * to the agent (see wisp_agent_internal.h). Functions taking |err| write
 * the reason there on failure. */
#ifndef WISP_AGENT_STATE_H
#define WISP_AGENT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "control/agent/wisp_agent_internal.h"
#include "lib/wisp_err.h"

/* Writes |len| bytes as the state file |name| (mode 0600). */
wisp_err wag_save(wisp_agent *a, const char *name, const void *data, size_t len, char *err,
                  size_t err_len) WISP_MUST_CHECK;
/* Reads a state file into a new NUL-terminated |*out| (the caller frees
 * it); WISP_ERR_IO with errno ENOENT when it is not there. */
wisp_err wag_load(wisp_agent *a, const char *name, char **out, size_t *out_len, char *err,
                  size_t err_len) WISP_MUST_CHECK;
bool wag_state_exists(const wisp_agent *a, const char *name);
/* Removes a state file; one that is not there is no error. */
void wag_remove_state(wisp_agent *a, const char *name);
/* Prunes the join tokens and writes them; a failure is logged here. */
wisp_err wag_save_tokens(wisp_agent *a) WISP_MUST_CHECK;
/* Writes a->ca's key and certificate. */
wisp_err wag_save_ca(wisp_agent *a, char *err, size_t err_len) WISP_MUST_CHECK;
/* Sets a->ca: --ca-cert/--ca-key, else the one in the state dir, else a
 * new root written there. */
wisp_err wag_load_ca(wisp_agent *a, char *err, size_t err_len) WISP_MUST_CHECK;
/* The agent's own SPIFFE ID, spiffe://<td>/wisp/agent. */
void wag_agent_id(const wisp_agent *a, char out[WISP_SPIFFE_MAX + 1]);
/* Issues the agent's own certificate from a->ca, writes it with its key
 * and the bundle, loads them into a->tls and refreshes the webhook's. */
wisp_err wag_issue_agent_cert(wisp_agent *a, char *err, size_t err_len) WISP_MUST_CHECK;

/* ---- shared helpers ---- */
int64_t wag_now(void);
/* notAfter as Unix time; 0 if it cannot be read (only shown to users). */
int64_t wag_not_after(const X509 *cert);
/* The policy version in force, in decimal. */
void wag_version_str(const wisp_agent *a, char *out, size_t len);
/* One JSON event line on stdout with two string fields. */
void wag_log_event(const char *type, const char *k1, const char *v1, const char *k2, const char *v2);
/* Writes to |err| that |what| could not be written as PEM, and why. */
void wag_encode_failed(char *err, size_t err_len, const char *what, wisp_err rc);
/* Whether |call| may use the Admin API; if not, the call is finished with
 * the reason. */
bool wag_admin_allowed(wisp_rpc_call *call);

#endif
