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

static int report(const wispctl_opts *o, const char *what, const call_result *r, bool reached) {
  if (r->code == WISP_GRPC_UNAVAILABLE && !reached) {
    fprintf(stderr, "wispctl: cannot reach the agent at %s: %s\n", o->agent, connect_reason(r->msg));
  } else if (r->code == WISP_GRPC_DEADLINE_EXCEEDED) {
    fprintf(stderr, "wispctl: %s: DEADLINE_EXCEEDED: the agent at %s did not answer within %gs (--timeout)\n",
            what, o->agent, o->timeout_s);
  } else if (r->msg[0]) {
    fprintf(stderr, "wispctl: %s: %s: %s\n", what, wisp_grpc_status_name((int)r->code), r->msg);
  } else {
    fprintf(stderr, "wispctl: %s: %s\n", what, wisp_grpc_status_name((int)r->code));
  }
  return WISPCTL_EXIT_FAIL;
}

int wispctl_call(const wispctl_opts *o, const char *what, const char *path, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **out_resp) {
  int rc = 0;
  char err[512];
  call_result r = {.loop = ev_loop_new(EVFLAG_AUTO)};
  if (!r.loop) {
    fprintf(stderr, "wispctl: cannot set up an event loop\n");
    return WISPCTL_EXIT_FAIL;
  }
  wisp_h2loop lp;
  memset(&lp, 0, sizeof(lp));
  wisp_h2loop_init(&lp, r.loop);
  wisp_rpcc *c = wisp_rpcc_connect(&lp, o->agent, NULL, NULL, err, sizeof(err));
  if (!c) {
    fprintf(stderr, "wispctl: --agent %s\n", err);
    rc = WISPCTL_EXIT_USAGE;
    goto out;
  }
  wisp_rpcc_unary(c, path, req, &kHandlers, &r, o->timeout_s);
  /* The call's deadline bounds this: on_done always comes, and breaks. */
  for (int i = 0; i < 1000 && !r.done; i++) ev_run(r.loop, 0);
  bool reached = wisp_rpcc_reached(c);
  wisp_rpcc_free(c);
  if (!r.done) {
    fprintf(stderr, "wispctl: %s: the call did not finish\n", what);
    rc = WISPCTL_EXIT_FAIL;
  } else if (r.code != WISP_GRPC_OK) {
    rc = report(o, what, &r, reached);
  } else if (r.nmsgs != 1) {
    fprintf(stderr, "wispctl: %s: the agent sent %d answers, expected one\n", what, r.nmsgs);
    rc = WISPCTL_EXIT_FAIL;
  } else {
    *out_resp = protobuf_c_message_unpack(resp_desc, NULL, r.resp_len, r.resp);
    if (!*out_resp) {
      fprintf(stderr, "wispctl: %s: cannot decode the agent's answer (%s)\n", what, resp_desc->name);
      rc = WISPCTL_EXIT_FAIL;
    }
  }
out:
  free(r.resp);
  wisp_h2loop_cleanup(&lp); /* tears the closed connection down */
  ev_loop_destroy(r.loop);
  return rc;
}
