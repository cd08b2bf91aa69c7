#!/usr/bin/env bash
# A peer sidecar that finishes TLS and then sends no HTTP/2 SETTINGS (a
# wedged peer): its connection gets --handshake-timeout for its SETTINGS,
# as a caller does for its preface, and the requests on it a 502 saying
# why. Before, they waited for --stream-idle-timeout (300 s) and got 408.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
make_pki
p=$WORK/pki
MUTE_PORT=$(free_port)
OUT_PORT=$(free_port)
start_bg "$WORK/mute" /usr/bin/python3 "$WISP_SRC/tests/integration/mute_peer.py" "$MUTE_PORT" "$p" 60
wait_port "$MUTE_PORT" || { not_ok "the mute peer starts"; finish; }
start_proxy c --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" \
  --route "127.0.0.1:$OUT_PORT=127.0.0.1:$MUTE_PORT,id=$TD/ns/shop/sa/orders" \
  --handshake-timeout 1 --admin off
wait_port "$OUT_PORT" || { not_ok "the proxy starts"; finish; }
# curl's own limit (20 s) is far above the 1 s timeout and far below the
# 300 s stream idle timeout: only the SETTINGS deadline can answer in time.
code=$(curl -s --http2-prior-knowledge --max-time 20 -D "$WORK/h" -o /dev/null -w '%{http_code}' \
  "http://127.0.0.1:$OUT_PORT/x")
expect_eq "a request to a peer that never sends SETTINGS gets 502" 502 "$code"
expect_match "the 502 says why (x-wisp-error)" "no HTTP/2 SETTINGS within 1s" "$(grep -i '^x-wisp-error' "$WORK/h")"
grep -q '"reason":"peer sent no HTTP/2 SETTINGS within 1s of connecting"' "$WORK/c.out" &&
  ok "the upstream connection is logged closed with that reason" ||
  not_ok "the upstream connection is logged closed with that reason" "$(grep upstream_failed "$WORK/c.out")"
stop_proxy c
finish
