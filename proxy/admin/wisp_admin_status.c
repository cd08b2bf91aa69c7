/* GET /status (see wisp_admin_status.h). */
#include "proxy/admin/wisp_admin_status.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/wisp_ca.h"
#include "lib/wisp_mem.h"
#include "proxy/control/wisp_agent_client.h"
#include "proxy/control/wisp_intercept.h"

static void put_str(wisp_json_writer *b, const char *key, const char *val) {
  wisp_json_writer_key(b, key);
  wisp_json_writer_str(b, val);
}

/* A Unix time; 0 (unknown) is null. */
static void put_time(wisp_json_writer *b, const char *key, int64_t unix_s) {
  wisp_json_writer_key(b, key);
  if (unix_s) {
    wisp_json_writer_int(b, unix_s);
  } else {
    wisp_json_writer_raw(b, "null", 4);
  }
}

static void put_upfails(wisp_json_writer *b, const wisp_upfail_table *t) {
  wisp_json_writer_key(b, "upstream_failures");
  wisp_json_writer_raw(b, "[", 1);
  for (size_t i = 0; i < t->n; i++) {
    const wisp_upfail *e = &t->v[i];
    wisp_json_writer_raw(b, i ? ",{" : "{", i ? 2 : 1);
    put_str(b, "upstream", e->upstream);
    put_str(b, "kind", e->app ? "app" : "peer");
    put_str(b, "expect_id", e->expect_id[0] ? e->expect_id : NULL);
    put_str(b, "reason", e->reason);
    wisp_json_writer_key(b, "count");
    wisp_json_writer_int(b, (int64_t)e->count);
    put_time(b, "first_unix", e->first_unix);
    put_time(b, "last_unix", e->last_unix);
    wisp_json_writer_raw(b, "}", 1);
  }
  wisp_json_writer_raw(b, "]", 1);
}

/* When the SVID was issued, for its lifetime: the agent starts SVIDs a
 * little early (clock skew), which is not lifetime. */
int64_t wisp_admin_svid_issued_unix(const wisp_admin_sources *src) {
  const wisp_tls_info *info = wisp_tls_get0_info(wisp_dataplane_tls(src->px));
  if (!info->not_before_unix) return 0;
  return info->not_before_unix + (src->agent ? WISP_CA_BACKDATE_SEC : 0);
}

void wisp_admin_render_status(wisp_json_writer *b, const wisp_admin_sources *src, bool ready,
                              const char *ready_reason) {
  const wisp_proxy *px = src->px;
  const wisp_tls *tls = wisp_dataplane_tls(px);
  const wisp_tls_info *info = wisp_tls_get0_info(tls);
  bool loaded = wisp_tls_ready(tls);
  const wisp_config *cfg = wisp_dataplane_config(px);
  const wisp_agent_client *agent = src->agent;
  wisp_dataplane_policy_info pol;
  wisp_dataplane_get_policy(px, &pol);
  const char *why = NULL;
  const char *intercept = wisp_intercept_state(src->intercept, &why);
  wisp_json_writer_raw(b, "{", 1);
  wisp_json_writer_key(b, "ready");
  wisp_json_writer_bool(b, ready);
  put_str(b, "ready_reason", ready ? NULL : ready_reason);
  wisp_json_writer_key(b, "now_unix");
  wisp_json_writer_int(b, (int64_t)time(NULL));
  put_str(b, "spiffe_id", loaded ? info->spiffe_id : NULL);
  put_str(b, "svid_serial", loaded ? info->serial : NULL);
  put_time(b, "svid_not_after_unix", loaded ? info->not_after_unix : 0);
  put_time(b, "svid_issued_unix", loaded ? wisp_admin_svid_issued_unix(src) : 0);
  wisp_json_writer_key(b, "bundle_roots");
  wisp_json_writer_int(b, loaded ? info->bundle_roots : 0);
  put_time(b, "bundle_not_after_unix", loaded ? info->bundle_not_after_unix : 0);
  put_time(b, "bundle_newest_not_after_unix", loaded ? info->bundle_newest_not_after_unix : 0);
  wisp_json_writer_key(b, "transparent");
  wisp_json_writer_bool(b, cfg->transparent);
  put_str(b, "interception", intercept);
  put_str(b, "interception_reason", why);
  put_str(b, "agent", cfg->agent);
  if (agent) {
    bool watching = wisp_agent_client_watching(agent);
    wisp_json_writer_key(b, "agent_watching");
    wisp_json_writer_bool(b, watching);
    put_str(b, "agent_error", watching ? NULL : wisp_agent_client_watch_error(agent));
  }
  put_str(b, "policy_version", pol.policy && pol.version[0] ? pol.version : NULL);
  wisp_json_writer_key(b, "draining");
  wisp_json_writer_bool(b, wisp_dataplane_draining(px));
  wisp_upfail_table *up = wisp_malloc(sizeof(*up)); /* 40 KiB: not on the stack */
  wisp_dataplane_get_upfails(px, up);
  put_upfails(b, up);
  free(up);
  wisp_json_writer_raw(b, "}\n", 2);
}
