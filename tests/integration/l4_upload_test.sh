#!/usr/bin/env bash
# L4 uploads (ALPN wisp-l4) through an inbound sidecar to a slow-reading
# app arrive whole: bytes the tunnel left inside the TLS object when its
# buffer toward the app filled must move once the app reads (issue 9
# follow-up, commit c8df34c: they waited for a socket event that never came).
# l4_edge_peer.py puts the tunnel in exactly that state, every run (its
# buffer full, PENDING bytes of the last record inside the SSL, the socket
# empty, the caller silent), then lets the app read; a bulk upload to an
# app that starts late checks the ordinary path.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
EDGE="/usr/bin/python3 $WISP_SRC/tests/integration/l4_edge_peer.py"
BULK="/usr/bin/python3 $WISP_SRC/tests/integration/l4_upload_peer.py"
NBYTES=${L4_NBYTES:-$((30 << 20))}
make_pki
p=$WORK/pki
n=0
sidecar() { # sidecar: a fresh inbound sidecar (its --app is fixed); sets IN_PORT APP_PORT
  n=$((n + 1))
  APP_PORT=$(free_port)
  IN_PORT=$(free_port)
  start_proxy "s$n" --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
    --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --admin off
  wait_port "$IN_PORT"
}
for pending in 1 1000 9000 16000; do
  sidecar || { not_ok "sidecar s$n starts"; continue; }
  got=$(timeout 60 $EDGE "$IN_PORT" "$APP_PORT" "$p" "$pending" 2>"$WORK/edge$pending.err")
  expect_eq "$pending bytes left inside the proxy's SSL, its socket empty, the caller silent: the app gets every byte" \
    same "$got"
  stop_proxy "s$n"
done
sidecar || not_ok "sidecar s$n starts"
got=$(timeout 60 $BULK "$IN_PORT" "$APP_PORT" "$p" "$NBYTES" 2>"$WORK/bulk.err")
expect_eq "an L4 upload of $NBYTES bytes to an app that starts reading after 1 s arrives intact" same "$got"
finish
