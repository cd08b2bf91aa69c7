#!/usr/bin/env bash
# --tunnel-idle-timeout (issue 9 hardening): an L4 tunnel on which no byte
# moved either way for the timeout is closed, both ends, logged with the
# reason and counted in wisp_tunnel_idle_timeouts_total; one with a byte
# every 0.5 s is not cut. Before, a silent tunnel was held for good (its two
# descriptors and its caller's --max-connections-per-source slot).
#   raw:     l4_idle_peer.py (mTLS, ALPN wisp-l4) => wisp(orders, inbound, timeout 1) -> echo app
#   CONNECT: l4_idle_peer.py -> wisp(frontend, route, timeout 1) => wisp(orders, inbound) -> echo app
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
PEER="/usr/bin/python3 $WISP_SRC/tests/integration/l4_idle_peer.py"
REASON='tunnel idle: no byte moved either way for --tunnel-idle-timeout (1s)'
make_pki
p=$WORK/pki

expect_idle() { # expect_idle NAME ADMIN_PORT: one tunnel of NAME's was cut idle, logged and counted
  check "... logged by $1 with the reason" wait_for 5 grep -qF "\"reason\":\"$REASON\"" "$WORK/$1.out"
  expect_eq "... counted once in $1's wisp_tunnel_idle_timeouts_total" 1 \
    "$(prom_sum "$(curl -s --max-time 10 "http://127.0.0.1:$2/metrics")" wisp_tunnel_idle_timeouts_total)"
}

APP=$(free_port)
IN=$(free_port)
ADM_IN=$(free_port)
start_proxy server --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$IN" --app "127.0.0.1:$APP" --admin "127.0.0.1:$ADM_IN" --tunnel-idle-timeout 1
wait_port "$IN" || not_ok "the inbound sidecar starts"
expect_eq "a silent wisp-l4 tunnel through an inbound sidecar is closed, the app's end too" "closed app-closed" \
  "$(timeout 60 $PEER l4 silent "$IN" "$APP" "$p" 2>"$WORK/raw_silent.err")"
expect_idle server "$ADM_IN"
expect_eq "a wisp-l4 tunnel moving a byte every 0.5 s for 3 s is not cut" alive \
  "$(timeout 60 $PEER l4 active "$IN" "$APP" "$p" 2>"$WORK/raw_active.err")"
expect_eq "... and not counted" 1 \
  "$(prom_sum "$(curl -s --max-time 10 "http://127.0.0.1:$ADM_IN/metrics")" wisp_tunnel_idle_timeouts_total)"

# Outbound: the route sidecar's timer cuts the tunnel (its peer's is 3600 s).
APP2=$(free_port)
IN2=$(free_port)
OUT=$(free_port)
ADM_OUT=$(free_port)
start_proxy server2 --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$IN2" --app "127.0.0.1:$APP2" --admin off
start_proxy client --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" \
  --route "127.0.0.1:$OUT=127.0.0.1:$IN2,id=$TD/ns/shop/sa/orders" --admin "127.0.0.1:$ADM_OUT" \
  --tunnel-idle-timeout 1
wait_port "$IN2" && wait_port "$OUT" || not_ok "the sidecar pair starts"
expect_eq "a silent HTTP/1 CONNECT tunnel through a route listener is closed, the app's end too" \
  "closed app-closed" "$(timeout 60 $PEER connect silent "$OUT" "$APP2" "$p" 2>"$WORK/connect_silent.err")"
expect_idle client "$ADM_OUT"
expect_eq "a CONNECT tunnel moving a byte every 0.5 s for 3 s is not cut" alive \
  "$(timeout 60 $PEER connect active "$OUT" "$APP2" "$p" 2>"$WORK/connect_active.err")"

out=$("$WISP_PROXY" --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" --admin off \
  --tunnel-idle-timeout 0.01 2>&1)
expect_match "--tunnel-idle-timeout below 0.1 s is refused saying why" \
  'tunnel-idle-timeout 0.01: expected 0 \(off\) or at least 0.1 seconds' "$out"
stop_proxy server
stop_proxy server2
stop_proxy client
finish
