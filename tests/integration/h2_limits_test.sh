#!/usr/bin/env bash
# Hostile HTTP/2 callers against the outbound h2c listener, each beside a
# well-behaved client that must keep >= 99% success, with the proxies' RSS
# and log volume bounded (issue 9):
#   rapid reset (CVE-2023-44487), held streams, zero-window readers.
# The attackers are tests/integration/h2_abuse.py (python3-h2 and raw frames).
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
ABUSE="/usr/bin/python3 $WISP_SRC/tests/integration/h2_abuse.py"
make_pki

# good_client NAME N URL [SECONDS]: N sequential requests (h2load, one
# connection, given up after SECONDS, default 60); prints how many
# succeeded (2xx).
good_client() {
  local out
  out=$(timeout "${4:-60}" h2load -n "$2" -c 1 -m 1 "$3" 2>&1)
  printf '%s\n' "$out" >"$WORK/$1.h2load"
  printf '%s' "$out" | awk '/status codes:/ {gsub(",", "", $3); print $3; exit}'
}
# at_least NAME WANT GOT
at_least() {
  if [ "${3:-0}" -ge "$2" ]; then ok "$1 ($3)"; else not_ok "$1" "want >= $2, got ${3:-none}"; fi
}
# start_limits_pair [CLIENT_FLAGS...]: as harness's start_pair, with the
# client proxy's admin on $ADMIN_PORT (/metrics) and CLIENT_FLAGS for it.
start_limits_pair() {
  local p=$WORK/pki
  APP_PORT=$(free_port)
  IN_PORT=$(free_port)
  OUT_PORT=$(free_port)
  ADMIN_PORT=$(free_port)
  start_app "app$APP_PORT" "$APP_PORT" || return 1
  start_proxy server --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
    --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --admin off
  start_proxy client --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" \
    --route "127.0.0.1:$OUT_PORT=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders" --admin "127.0.0.1:$ADMIN_PORT" "$@"
  wait_port "$IN_PORT" && wait_port "$OUT_PORT"
}
json_field() { /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, d))' "$1" "$2"; }

# ---------------------------------------------------------------------------
# 1. Rapid reset: 4 connections of HEADERS+RST_STREAM for 8 s.
start_limits_pair || { not_ok "pair starts"; finish; }
OUT=http://127.0.0.1:$OUT_PORT
base_log=$(wc -c <"$WORK/client.out")
$ABUSE rapid-reset --port "$OUT_PORT" --conns 4 --seconds 8 >"$WORK/rr.json" 2>"$WORK/rr.err" &
JOB=$!
sleep 1
good_client rr_good 300 "$OUT/hello" >"$WORK/rr_good.n" &
gpid=$!
peak=$(max_rss "$JOB" "$PID_client" "$PID_server")
wait "$gpid"
good=$(cat "$WORK/rr_good.n")
rr=$(cat "$WORK/rr.json")
echo "# attacker: $rr"
at_least "rapid reset: the good client completes >= 297 of 300 requests" 297 "$good"
calm=$(json_field "$rr" 'goaway.get("ENHANCE_YOUR_CALM", 0)')
at_least "rapid reset: the attacker's connections get GOAWAY ENHANCE_YOUR_CALM" 1 "$calm"
expect_rss_under "rapid reset: proxy RSS stays under 40 MB" 40960 "$peak"
sleep 2
open=$(curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^wisp_streams_open / {print $2}')
expect_eq "rapid reset: no stream is left open 2 s after the attack" 0 "$open"
streams_app=$(grep -c '"type":"request"' "$WORK/server.out")
pairs=$(json_field "$rr" 'pairs_sent')
if [ "$streams_app" -lt $((pairs / 10)) ]; then
  ok "rapid reset: cancelled streams mostly never reach upstream ($streams_app of $pairs pairs)"
else
  not_ok "rapid reset: cancelled streams mostly never reach upstream" "$streams_app upstream of $pairs pairs"
fi
log_bytes=$(($(wc -c <"$WORK/client.out") - base_log))
if [ "$log_bytes" -lt 1048576 ]; then
  ok "rapid reset: log volume bounded ($log_bytes bytes for $pairs resets)"
else
  not_ok "rapid reset: log volume bounded" "$log_bytes bytes of log for $pairs resets"
fi
expect_match "rapid reset: the closed connection is logged with the reason" \
  '"event":"closed".*rapid reset' "$(grep -m1 'rapid reset' "$WORK/client.out")"
out=$(h2load -n 200 -c 2 -m 10 "$OUT/" 2>&1)
expect_match "after the attack, requests succeed" '200 succeeded, 0 failed' "$out"
stop_proxy client
stop_proxy server

# ---------------------------------------------------------------------------
# 2. Held streams: callers that keep streams open on an app path that never
#    answers in time (/slow), more than the upstream pool's 4 x 100 streams.
# 2a. 3 connections x 150 held streams: each gets at most 100 upstream
#     streams (--max-upstream-per-caller), so another caller still gets one.
start_limits_pair || { not_ok "pair starts"; finish; }
OUT=http://127.0.0.1:$OUT_PORT
$ABUSE hold --port "$OUT_PORT" --conns 3 --streams 150 --path '/slow?ms=15000' --seconds 6 \
  >"$WORK/hold.json" 2>"$WORK/hold.err" &
JOB=$!
sleep 1.5
good=$(good_client hold_good 100 "$OUT/hello" 4)
at_least "held streams: another caller completes >= 99 of 100 requests" 99 "$good"
wait "$JOB"
echo "# attacker: $(cat "$WORK/hold.json")"
stop_proxy client
stop_proxy server

# 2b. 5 connections x 100 held streams fill the pool: 400 go upstream, 60
#     wait (--max-queued 60), 40 are refused at once; who waits longer than
#     --queue-timeout gets 503 saying why, gRPC callers UNAVAILABLE.
start_limits_pair --queue-timeout 1 --max-queued 60 || { not_ok "pair starts"; finish; }
OUT=http://127.0.0.1:$OUT_PORT
$ABUSE hold --port "$OUT_PORT" --conns 5 --streams 100 --path '/slow?ms=15000' --seconds 6 \
  >"$WORK/hold2.json" 2>"$WORK/hold2.err" &
JOB=$!
sleep 1.5
out=$(curl -s -D - -o /dev/null -w 'code=%{http_code} time=%{time_total}\n' --max-time 8 --http2-prior-knowledge "$OUT/hello")
expect_match "held pool: a waiting request gets 503" 'code=503' "$out"
expect_match "held pool: x-wisp-error says why" 'x-wisp-error: upstream 127.0.0.1:[0-9]+: no stream for this request within 1s: all streams of its 4 connections are busy' "$out"
t=$(printf '%s' "$out" | sed -n 's/.*time=\([0-9.]*\).*/\1/p')
if awk -v t="$t" 'BEGIN { exit !(t >= 0.9 && t < 3) }'; then
  ok "held pool: the 503 comes after --queue-timeout ($t s)"
else
  not_ok "held pool: the 503 comes after --queue-timeout" "after ${t:-?} s"
fi
out=$(curl -s -D - -o /dev/null --max-time 8 --http2-prior-knowledge -H 'content-type: application/grpc' \
  -H 'te: trailers' --data-binary '' "$OUT/wisp.test.Test/Unary")
expect_match "held pool: a gRPC caller gets UNAVAILABLE" 'grpc-status: 14' "$out"
wait "$JOB"
echo "# attacker: $(cat "$WORK/hold2.json")"
sleep 0.3
full=$(grep -c 'already waiting for a free stream (--max-queued)' "$WORK/client.out")
expect_eq "held pool: requests beyond --max-queued are refused at once" 40 "$full"
out=$(h2load -n 200 -c 2 -m 10 "$OUT/" 2>&1)
expect_match "held pool: once the holders are gone, requests succeed" '200 succeeded, 0 failed' "$out"
stop_proxy client
stop_proxy server

finish
