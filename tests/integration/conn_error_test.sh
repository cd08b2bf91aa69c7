#!/usr/bin/env bash
# A connection-level HTTP/2 error while a request is in flight (issue 9
# follow-up): nghttp2 ends the session, and the proxy must then close the
# connection and fail its streams instead of holding them forever.
#   caller side: WINDOW_UPDATE of 0, a 7-byte PING, DATA on stream 0;
#   app side: an h2c app answering a request with a connection error.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
PEER="/usr/bin/python3 $WISP_SRC/tests/integration/conn_error_peer.py"
make_pki
p=$WORK/pki

# metric ADMIN_PORT LINE_PREFIX: the value of the first /metrics line starting so.
metric() { curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v k="$2" 'index($0, k " ") == 1 {print $NF; exit}'; }
# settle ADMIN_PORT LINE_PREFIX WANT: polls (at most 5 s) until the metric is WANT; prints it.
settle() {
  local v i
  for i in $(seq 50); do
    v=$(metric "$1" "$2")
    [ "$v" = "$3" ] && break
    sleep 0.1
  done
  echo "$v"
}
# sockets PID PORT: the proxy's TCP sockets on PORT that are ESTABLISHED or CLOSE-WAIT.
sockets() { ss -tnpH state established state close-wait "( sport = :$2 )" | grep -c "pid=$1," || true; }

# ---------------------------------------------------------------------------
# Caller side: c (--route, h2c outbound) -> s (--inbound) -> app.
APP_PORT=$(free_port)
IN_PORT=$(free_port)
OUT_PORT=$(free_port)
C_ADMIN=$(free_port)
start_app app "$APP_PORT" || { not_ok "app starts"; finish; }
start_proxy s --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --admin off
start_proxy c --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" \
  --route "127.0.0.1:$OUT_PORT=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders" --admin "127.0.0.1:$C_ADMIN"
C_PID=$LAST_PID
wait_port "$IN_PORT" && wait_port "$OUT_PORT" || { not_ok "pair starts"; finish; }
OUT=http://127.0.0.1:$OUT_PORT

for kind in wu0 ping data0; do
  got=$($PEER caller "$OUT_PORT" "$kind" 2>"$WORK/caller_$kind.err")
  expect_eq "caller $kind mid-request: the proxy closes the connection" closed "$got"
  code=$(curl -s --http2-prior-knowledge --max-time 5 -o /dev/null -w '%{http_code}' "$OUT/hello")
  expect_eq "caller $kind: a good client beside it gets 200" 200 "$code"
  expect_eq "caller $kind: no request is left open" 0 "$(settle "$C_ADMIN" wisp_streams_open 0)"
  expect_eq "caller $kind: no caller connection is left open" 0 \
    "$(settle "$C_ADMIN" 'wisp_connections_open{side="downstream"}' 0)"
  expect_eq "caller $kind: the proxy holds no socket on its listener" 0 "$(sockets "$C_PID" "$OUT_PORT")"
done
grep -q '"reason":"HTTP/2 session ended (connection error) with 1 streams open"' "$WORK/c.out" &&
  ok "the closed caller connections are logged with a reason" ||
  not_ok "the closed caller connections are logged with a reason" "no such line in c.out"

# ---------------------------------------------------------------------------
# App side: s2 (--inbound) -> an app whose first answer is a connection error.
BAD_PORT=$(free_port)
IN2_PORT=$(free_port)
OUT2_PORT=$(free_port)
S2_ADMIN=$(free_port)
start_bg "$WORK/bad_app" $PEER app "$BAD_PORT" 60
wait_port "$BAD_PORT" || { not_ok "bad app starts"; finish; }
start_proxy s2 --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$IN2_PORT" --app "127.0.0.1:$BAD_PORT" --admin "127.0.0.1:$S2_ADMIN"
start_proxy c2 --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" \
  --route "127.0.0.1:$OUT2_PORT=127.0.0.1:$IN2_PORT,id=$TD/ns/shop/sa/orders" --admin off
wait_port "$IN2_PORT" && wait_port "$OUT2_PORT" || { not_ok "second pair starts"; finish; }
OUT2=http://127.0.0.1:$OUT2_PORT
curl -s --http2-prior-knowledge --max-time 8 -D "$WORK/first.h" -o /dev/null -w '%{http_code}' "$OUT2/x" >"$WORK/first.code"
expect_eq "app connection error mid-request: the request gets 502" 502 "$(cat "$WORK/first.code")"
if grep -qi '^x-wisp-error: .*connection error' "$WORK/first.h"; then
  ok "the 502 says why (x-wisp-error)"
else
  not_ok "the 502 says why (x-wisp-error)" "$(grep -i x-wisp-error "$WORK/first.h")"
fi
connects=$(metric "$S2_ADMIN" wisp_upstream_connects_total)
code=$(curl -s --http2-prior-knowledge --max-time 8 -o /dev/null -w '%{http_code}' "$OUT2/x")
expect_eq "app side: the next request succeeds" 200 "$code"
expect_eq "app side: it went over a new upstream connection" $((connects + 1)) "$(metric "$S2_ADMIN" wisp_upstream_connects_total)"
finish
