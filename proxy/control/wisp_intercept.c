#include "proxy/control/wisp_intercept.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "lib/wisp_log.h"
#include "lib/wisp_mem.h"

/* Probe while failing every second, then every few seconds to notice rules
 * that were removed; a probe that neither arrives nor fails in this long
 * counts as failed. */
#define PROBE_RETRY 1.0
#define PROBE_RECHECK 5.0
#define PROBE_TIMEOUT 1.0

struct wisp_intercept {
  struct ev_loop *loop;
  wisp_addr probe; /* where the probe dials (--intercept-probe) */
  char probe_str[64];
  int fd;           /* the probe in flight, -1: none */
  wisp_addr local;  /* its source address, to recognise it on arrival */
  ev_io io;         /* its connect completing */
  ev_timer timer;   /* next probe, or the one in flight timing out */
  bool ok;          /* the last probe arrived */
  bool decided;     /* at least one probe has finished */
  char reason[256]; /* why not ok */
};

static void next_probe(struct wisp_intercept *ic, double after);

static void log_change(struct wisp_intercept *ic, bool ok) {
  wisp_json j;
  wisp_json_begin(&j, "intercept");
  wisp_json_str(&j, "event", ok ? "verified" : "missing");
  wisp_json_str(&j, "probe", ic->probe_str);
  if (!ok) wisp_json_str(&j, "error", ic->reason);
  wisp_json_emit_err(&j);
}

/* Ends the probe in flight: |ok|, or not with a reason. */
static void finish(struct wisp_intercept *ic, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void finish(struct wisp_intercept *ic, bool ok, const char *fmt, ...) {
  ev_io_stop(ic->loop, &ic->io);
  ev_timer_stop(ic->loop, &ic->timer);
  if (ic->fd >= 0) close(ic->fd);
  ic->fd = -1;
  bool changed = !ic->decided || ic->ok != ok;
  if (!ok) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ic->reason, sizeof(ic->reason), fmt, ap);
    va_end(ap);
  }
  ic->ok = ok;
  ic->decided = true;
  if (changed) log_change(ic, ok);
  next_probe(ic, ok ? PROBE_RECHECK : PROBE_RETRY);
}

static const char kFix[] = "run deploy/wisp-iptables.sh in this network namespace";

static void on_connect(struct ev_loop *loop, ev_io *w, int revents) {
  struct wisp_intercept *ic = w->data;
  ev_io_stop(loop, w);
  int e = wisp_net_connect_result(ic->fd);
  /* Success is decided where the probe arrives (wisp_intercept_arrived);
   * a connection that completes without arriving is left to time out. */
  if (e != 0)
    finish(ic, false,
           "iptables interception is not in place: a probe to %s failed (%s) instead of reaching the "
           "outbound listener; %s",
           ic->probe_str, strerror(e), kFix);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents) {
  struct wisp_intercept *ic = w->data;
  if (ic->fd >= 0) {
    finish(ic, false,
           "iptables interception is not in place: a probe to %s did not reach the outbound listener "
           "within %.0f s; %s",
           ic->probe_str, PROBE_TIMEOUT, kFix);
    return;
  }
  if (wisp_net_connect(&ic->fd, &ic->probe) != WISP_OK) {
    int e = errno;
    ic->fd = -1;
    finish(ic, false, "iptables interception is not in place: a probe to %s failed (%s); %s", ic->probe_str,
           strerror(e), kFix);
    return;
  }
  if (wisp_net_local_addr(ic->fd, &ic->local) != WISP_OK) {
    finish(ic, false, "cannot read the probe's source address: %s", strerror(errno));
    return;
  }
  ev_io_set(&ic->io, ic->fd, EV_WRITE);
  ev_io_start(loop, &ic->io);
  ev_timer_set(&ic->timer, PROBE_TIMEOUT, 0);
  ev_timer_start(loop, &ic->timer);
}

static void next_probe(struct wisp_intercept *ic, double after) {
  ev_timer_set(&ic->timer, after, 0);
  ev_timer_start(ic->loop, &ic->timer);
}

wisp_err wisp_intercept_start(wisp_intercept **out, struct ev_loop *loop, const wisp_config *cfg, char *err,
                              size_t err_len) {
  if (!cfg->transparent || !cfg->intercept_probe) {
    *out = NULL;
    return WISP_OK;
  }
  struct wisp_intercept *ic = wisp_calloc(1, sizeof(*ic));
  ic->loop = loop;
  ic->fd = -1;
  if (wisp_addr_parse(&ic->probe, cfg->intercept_probe) != WISP_OK) {
    snprintf(err, err_len, "--intercept-probe %s: expected IP:PORT or off", cfg->intercept_probe);
    free(ic);
    return WISP_ERR_USAGE;
  }
  snprintf(ic->probe_str, sizeof(ic->probe_str), "%s", cfg->intercept_probe);
  snprintf(ic->reason, sizeof(ic->reason), "checking that iptables interception is in place (probe to %s)",
           ic->probe_str);
  ev_init(&ic->io, on_connect);
  ev_init(&ic->timer, on_timer);
  ic->io.data = ic->timer.data = ic;
  *out = ic;
  next_probe(ic, 0);
  return WISP_OK;
}

void wisp_intercept_free(wisp_intercept *ic) {
  wisp_intercept_stop(ic);
  free(ic);
}

void wisp_intercept_stop(wisp_intercept *ic) {
  if (!ic) return;
  ev_io_stop(ic->loop, &ic->io);
  ev_timer_stop(ic->loop, &ic->timer);
  if (ic->fd >= 0) close(ic->fd);
  ic->fd = -1;
}

bool wisp_intercept_arrived(wisp_intercept *ic, const wisp_addr *orig_dst, const wisp_addr *peer) {
  if (!ic || !wisp_addr_equal(orig_dst, &ic->probe)) return false;
  if (ic->fd >= 0 && wisp_addr_equal(peer, &ic->local)) {
    finish(ic, true, "%s", "");
  } else {
    char from[64];
    wisp_addr_format(peer, from, sizeof(from));
    WISP_WARN("a connection to the intercept probe address %s from %s is not our probe: closed", ic->probe_str, from);
  }
  return true;
}

const char *wisp_intercept_state(const wisp_intercept *ic, const char **reason) {
  *reason = ic && !ic->ok ? ic->reason : NULL;
  if (!ic) return "off";
  return !ic->decided ? "checking" : ic->ok ? "verified" : "missing";
}

bool wisp_intercept_ok(const wisp_intercept *ic, char *reason, size_t reason_len) {
  if (!ic || ic->ok) return true;
  snprintf(reason, reason_len, "%s", ic->reason);
  return false;
}
