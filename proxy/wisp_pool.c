#include "proxy/wisp_pool.h"

#include <stdio.h>

#include "proxy/wisp_conn.h"

static bool usable(const wisp_conn *c) { return !c->io.closing && !c->goaway && !c->draining; }

wisp_conn *wisp_pool_get(wisp_target *t, char *err, size_t err_len) {
  if (t->refuse) { /* a stand-in: nowhere to go */
    snprintf(err, err_len, "%s", t->refuse);
    return NULL;
  }
  wisp_conn *least = NULL;
  for (wisp_conn *c = t->conns; c; c = c->pool_next) {
    if (!usable(c)) continue;
    uint32_t limit = nghttp2_session_get_remote_settings(c->io.h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    if (limit > WISP_POOL_STREAMS_PER_CONN) limit = WISP_POOL_STREAMS_PER_CONN;
    /* First fit keeps traffic on few connections. */
    if ((uint32_t)c->nstreams < limit) return c;
    if (!least || c->nstreams < least->nstreams) least = c;
  }
  if (least && t->nconns >= t->px->cfg->pool_size) return least; /* nghttp2 queues past the peer's limit */
  wisp_conn *c = wisp_conn_connect(t, err, err_len);
  if (!c) return NULL;
  c->pool_next = t->conns;
  t->conns = c;
  t->nconns++;
  return c;
}

void wisp_pool_remove(wisp_target *t, wisp_conn *c) {
  for (wisp_conn **p = &t->conns; *p; p = &(*p)->pool_next) {
    if (*p == c) {
      *p = c->pool_next;
      t->nconns--;
      return;
    }
  }
}
