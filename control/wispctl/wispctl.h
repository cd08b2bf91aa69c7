/* wispctl: the operator's CLI for wisp-agent (DESIGN.md "wisp-agent and
 * wispctl"). Each command is one unary gRPC call to the agent's Admin
 * service over its Unix socket (lib/wisp_rpc_client), run on a private libev
 * loop with an overall deadline; but policy check and inject (inject.h) work
 * offline, on files, and check (check.h) also reads a sidecar's admin API.
 *
 * Exit codes: 0 success, 1 the call failed (agent unreachable, an error
 * status, an unreadable file, input inject cannot use, a failed check), 2
 * usage (bad flags, unknown command). */
#ifndef WISP_WISPCTL_H
#define WISP_WISPCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#include "lib/wisp_err.h"
#include "wisp/v1/admin.pb-c.h"

#define WISPCTL_DEFAULT_AGENT "unix:///run/wisp/agent.sock"
#define WISPCTL_DEFAULT_TIMEOUT 10.0
#define WISPCTL_EXIT_FAIL 1
#define WISPCTL_EXIT_USAGE 2

typedef struct {
  const char *agent; /* target, borrowed from argv or the environment */
  double timeout_s;  /* the whole call, connecting included */
} wispctl_opts;

/* Calls |path| with |req| and unpacks the one answer into |*out_resp| (free
 * with protobuf_c_message_free_unpacked). |what| names the command in error
 * messages ("token create"). Returns 0, or an exit code after printing the
 * error on stderr. */
int wispctl_call(const wispctl_opts *o, const char *what, const char *path, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **out_resp);
/* The same, saying why it failed in |err| instead of on stderr. */
int wispctl_call_quiet(const wispctl_opts *o, const char *what, const char *path, const ProtobufCMessage *req,
                       const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **out_resp, char *err,
                       size_t err_len);

/* "2025-06-01T12:00:00Z" (UTC); "-" for 0. */
void wispctl_format_time(char *out, size_t out_len, int64_t unix_s);
/* A rough span: "3d4h", "2h5m", "4m10s", "9s". */
void wispctl_format_span(char *out, size_t out_len, int64_t seconds);
/* "2025-06-01T12:00:00Z (in 23h59m)", "... (expired 2h ago)"; "-" for 0. */
void wispctl_format_expiry(char *out, size_t out_len, int64_t unix_s, int64_t now);

/* `wispctl status` output: a table, or JSON with |json|. Fails (with
 * WISP_ERR_TOO_BIG) only for an answer too large to render. */
wisp_err wispctl_print_status(FILE *f, const Wisp__V1__StatusResponse *st, bool json, int64_t now) WISP_MUST_CHECK;

#endif
