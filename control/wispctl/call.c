/* One unary call to the agent on a private loop, and the error messages a
 * user sees when it fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "control/wispctl/wispctl.h"
#include "lib/wisp_h2conn.h"
#include "lib/wisp_mem.h"
#include "lib/wisp_rpc_client.h"

typedef struct {
  struct ev_loop *loop;
  bool done;
  wisp_grpc_status code;
  char msg[WISP_RPCC_MESSAGE_MAX + 256];
  uint8_t *resp;
  size_t resp_len;
  int nmsgs;
} call_result;

static void on_message(wisp_rpcc_call *call, const uint8_t *msg, size_t len, void *arg) {
  call_result *r = arg;
  if (++r->nmsgs > 1) return; /* a unary answer is one message; more is an error below */
  r->resp = wisp_malloc(len ? len : 1);
  memcpy(r->resp, msg, len);
  r->resp_len = len;
}

static void on_done(wisp_rpcc_call *call, wisp_grpc_status code, const char *message, void *arg) {
  call_result *r = arg;
  r->done = true;
  r->code = code;
  snprintf(r->msg, sizeof(r->msg), "%s", message);
  ev_break(r->loop, EVBREAK_ALL);
}

static const wisp_rpcc_handlers kHandlers = {on_message, on_done};

/* The reason without the client's "cannot connect: " prefix, which the
 * message says in its own words. */
static const char *connect_reason(const char *msg) {
  static const char prefix[] = "cannot connect: ";
  return strncmp(msg, prefix, sizeof(prefix) - 1) == 0 ? msg + sizeof(prefix) - 1 : msg;
}

/* Says why the call failed in |err| (no "wispctl: " prefix). */
static void report(const wispctl_opts *o, const char *what, const call_result *r, bool reached, char *err,
                   size_t err_len) {
  if (r->code == WISP_GRPC_UNAVAILABLE && !reached) {
    snprintf(err, err_len, "cannot reach the agent at %s: %s", o->agent, connect_reason(r->msg));
  } else if (r->code == WISP_GRPC_DEADLINE_EXCEEDED) {
    snprintf(err, err_len, "%s: DEADLINE_EXCEEDED: the agent at %s did not answer within %gs (--timeout)", what,
             o->agent, o->timeout_s);
  } else if (r->msg[0]) {
    snprintf(err, err_len, "%s: %s: %s", what, wisp_grpc_status_name((int)r->code), r->msg);
  } else {
    snprintf(err, err_len, "%s: %s", what, wisp_grpc_status_name((int)r->code));
  }
}

int wispctl_call_quiet(const wispctl_opts *o, const char *what, const char *path, const ProtobufCMessage *req,
                       const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **out_resp, char *err,
                       size_t err_len) {
  int rc = 0;
  char why[512];
  call_result r = {.loop = ev_loop_new(EVFLAG_AUTO)};
  if (!r.loop) {
    snprintf(err, err_len, "cannot set up an event loop");
    return WISPCTL_EXIT_FAIL;
  }
  wisp_h2loop lp;
  memset(&lp, 0, sizeof(lp));
  wisp_h2loop_init(&lp, r.loop);
  wisp_rpcc *c = wisp_rpcc_connect(&lp, o->agent, NULL, NULL, why, sizeof(why));
  if (!c) {
    snprintf(err, err_len, "--agent %s", why);
    rc = WISPCTL_EXIT_USAGE;
    goto out;
  }
  wisp_rpcc_unary(c, path, req, &kHandlers, &r, o->timeout_s);
  /* The call's deadline bounds this: on_done always comes, and breaks. */
  for (int i = 0; i < 1000 && !r.done; i++) ev_run(r.loop, 0);
  bool reached = wisp_rpcc_reached(c);
  wisp_rpcc_free(c);
  rc = WISPCTL_EXIT_FAIL;
  if (!r.done) {
    snprintf(err, err_len, "%s: the call did not finish", what);
  } else if (r.code != WISP_GRPC_OK) {
    report(o, what, &r, reached, err, err_len);
  } else if (r.nmsgs != 1) {
    snprintf(err, err_len, "%s: the agent sent %d answers, expected one", what, r.nmsgs);
  } else if (!(*out_resp = protobuf_c_message_unpack(resp_desc, NULL, r.resp_len, r.resp))) {
    snprintf(err, err_len, "%s: cannot decode the agent's answer (%s)", what, resp_desc->name);
  } else {
    rc = 0;
  }
out:
  free(r.resp);
  wisp_h2loop_cleanup(&lp); /* tears the closed connection down */
  ev_loop_destroy(r.loop);
  return rc;
}

int wispctl_call(const wispctl_opts *o, const char *what, const char *path, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **out_resp) {
  char err[WISP_RPCC_MESSAGE_MAX + 1024];
  int rc = wispctl_call_quiet(o, what, path, req, resp_desc, out_resp, err, sizeof(err));
  if (rc) fprintf(stderr, "wispctl: %s\n", err);
  return rc;
}
