/* wisp_admin_status: the body of the admin API's GET /status, one JSON
 * object that says in one read what `wispctl check --proxy` checks: ready
 * (and why not), the SVID and trust bundle, whether transparent
 * interception is proven, the policy in force, and the upstreams that
 * failed lately (proxy/dataplane/wisp_upfail.h). Read-only; private to the admin
 * server (proxy/admin/wisp_admin.c). */
#ifndef WISP_ADMIN_STATUS_H
#define WISP_ADMIN_STATUS_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/wisp_json.h"
#include "proxy/admin/wisp_admin.h"
#include "proxy/wisp_dataplane.h"

/* |ready| and |ready_reason| as /ready answers them now. */
void wisp_admin_render_status(wisp_json_writer *b, const wisp_admin_sources *src, bool ready, const char *ready_reason);

/* When the current SVID was issued (its notBefore, less the agent's
 * backdating), unix time; 0: none loaded. */
int64_t wisp_admin_svid_issued_unix(const wisp_admin_sources *src);

#endif
