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
# start_limits_pair NAME [CLIENT_FLAGS...]: as harness's start_pair, with
# the proxies named c_NAME and s_NAME ($C, $S; logs in $WORK/$C.out), the
# client proxy's admin on $ADMIN_PORT (/metrics) and CLIENT_FLAGS for it.
start_limits_pair() {
  local p=$WORK/pki
  C=c_$1
  S=s_$1
  shift
  APP_PORT=$(free_port)
  IN_PORT=$(free_port)
  OUT_PORT=$(free_port)
  ADMIN_PORT=$(free_port)
  start_app "app$APP_PORT" "$APP_PORT" || return 1
  start_proxy "$S" --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
    --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --admin off
  start_proxy "$C" --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" \
    --route "127.0.0.1:$OUT_PORT=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders" --admin "127.0.0.1:$ADMIN_PORT" "$@"
  wait_port "$IN_PORT" && wait_port "$OUT_PORT"
}
pid_of() { eval "echo \${PID_$1:-}"; }
json_field() { /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, d))' "$1" "$2"; }

# ---------------------------------------------------------------------------
# 1. Rapid reset: 4 connections of HEADERS+RST_STREAM for 8 s.
start_limits_pair rr || { not_ok "pair starts"; finish; }
OUT=http://127.0.0.1:$OUT_PORT
base_log=$(wc -c <"$WORK/$C.out")
$ABUSE rapid-reset --port "$OUT_PORT" --conns 4 --seconds 8 >"$WORK/rr.json" 2>"$WORK/rr.err" &
JOB=$!
sleep 1
good_client rr_good 300 "$OUT/hello" >"$WORK/rr_good.n" &
gpid=$!
peak=$(max_rss "$JOB" "$(pid_of "$C")" "$(pid_of "$S")")
wait "$gpid"
good=$(cat "$WORK/rr_good.n")
rr=$(cat "$WORK/rr.json")
echo "# attacker: $rr"
at_least "rapid reset: the good client completes >= 297 of 300 requests" 297 "$good"
calm=$(json_field "$rr" 'goaway.get("ENHANCE_YOUR_CALM", 0)')
at_least "rapid reset: the attacker's connections get GOAWAY ENHANCE_YOUR_CALM" 1 "$calm"
expect_rss_under "rapid reset: proxy RSS stays under 40 MB" 40960 "$peak"
streams_open() { curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^wisp_streams_open / {print $2}'; }
no_streams_open() { [ "$(streams_open)" = 0 ]; }
if wait_for 10 no_streams_open; then
  ok "rapid reset: no stream is left open after the attack"
else
  not_ok "rapid reset: no stream is left open after the attack" "$(streams_open) open 10 s after"
fi
streams_app=$(grep -c '"type":"request"' "$WORK/$S.out")
pairs=$(json_field "$rr" 'pairs_sent')
if [ "$streams_app" -lt $((pairs / 10)) ]; then
  ok "rapid reset: cancelled streams mostly never reach upstream ($streams_app of $pairs pairs)"
else
  not_ok "rapid reset: cancelled streams mostly never reach upstream" "$streams_app upstream of $pairs pairs"
fi
log_bytes=$(($(wc -c <"$WORK/$C.out") - base_log))
if [ "$log_bytes" -lt 1048576 ]; then
  ok "rapid reset: log volume bounded ($log_bytes bytes for $pairs resets)"
else
  not_ok "rapid reset: log volume bounded" "$log_bytes bytes of log for $pairs resets"
fi
expect_match "rapid reset: the closed connection is logged with the reason" \
  '"event":"closed".*rapid reset' "$(grep -m1 'rapid reset' "$WORK/$C.out")"
out=$(h2load -n 200 -c 2 -m 10 "$OUT/" 2>&1)
expect_match "after the attack, requests succeed" '200 succeeded, 0 failed' "$out"
expect_match "callers may open 100 streams at once by default (SETTINGS_MAX_CONCURRENT_STREAMS)" 'SETTINGS_MAX_CONCURRENT_STREAMS\(0x03\):100\]' \
  "$(nghttp -v "$OUT/hello" 2>&1)"
stop_proxy "$C"
stop_proxy "$S"

# ---------------------------------------------------------------------------
# 2. Held streams: callers that keep streams open on an app path that never
#    answers in time (/slow), more than the upstream pool's 4 x 100 streams.
# 2a. 3 connections x 150 held streams (--max-concurrent-streams 150): each
#     gets at most 100 upstream streams (--max-upstream-per-caller), so
#     another caller still gets one.
start_limits_pair hold --max-concurrent-streams 150 || { not_ok "pair starts"; finish; }
OUT=http://127.0.0.1:$OUT_PORT
$ABUSE hold --port "$OUT_PORT" --conns 3 --streams 150 --path '/slow?ms=15000' --seconds 12 \
  >"$WORK/hold.json" 2>"$WORK/hold.err" &
JOB=$!
sleep 1.5
# Held behind the attacker's streams they would wait until it lets go
# (12 s): the good client gives up after 8.
good=$(good_client hold_good 100 "$OUT/hello" 8)
at_least "held streams: another caller completes >= 99 of 100 requests" 99 "$good"
wait "$JOB"
echo "# attacker: $(cat "$WORK/hold.json")"
stop_proxy "$C"
stop_proxy "$S"

# 2b. 5 connections x 100 held streams fill the pool: 400 go upstream, 60
#     wait (--max-queued 60), 40 are refused at once; who waits longer than
#     --queue-timeout gets 503 saying why, gRPC callers UNAVAILABLE.
start_limits_pair pool --queue-timeout 1 --max-queued 60 || { not_ok "pair starts"; finish; }
OUT=http://127.0.0.1:$OUT_PORT
$ABUSE hold --port "$OUT_PORT" --conns 5 --streams 100 --path '/slow?ms=15000' --seconds 6 \
  >"$WORK/hold2.json" 2>"$WORK/hold2.err" &
JOB=$!
# The pool is full and the queue holds --max-queued: a gauge in /metrics
# (wisp_requests_queued) says so, waited for rather than slept on.
queued() { curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^wisp_requests_queued / {print $2}'; }
queue_full() { [ "$(queued)" = 60 ]; }
check "held pool: /metrics shows the queue full (wisp_requests_queued 60)" wait_for 5 queue_full
# ... until they time out (--queue-timeout 1): then a new request waits.
queue_empty() { [ "$(queued)" = 0 ]; }
check "held pool: the waiting requests leave the queue after --queue-timeout" wait_for 5 queue_empty
out=$(curl -s -D - -o /dev/null -w 'code=%{http_code} time=%{time_total}\n' --max-time 8 --http2-prior-knowledge "$OUT/hello")
expect_match "held pool: a waiting request gets 503" 'code=503' "$out"
expect_match "held pool: x-wisp-error says why" 'x-wisp-error: upstream 127.0.0.1:[0-9]+: no stream for this request within 1s: all streams of its 4 connections are busy' "$out"
t=$(printf '%s' "$out" | sed -n 's/.*time=\([0-9.]*\).*/\1/p')
if awk -v t="$t" 'BEGIN { exit !(t >= 0.9 && t < 8) }'; then
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
full=$(grep 'already waiting for a free stream (--max-queued)' "$WORK/$C.out" | grep -c '"path":"/slow')
refused=$(sed -n 's/.*"503": \([0-9]*\).*/\1/p' "$WORK/hold2.json")
# 40 refused at once and the 60 that waited out --queue-timeout; a stream
# the upstream refused and that came back to a full queue may add one.
if [ "${refused:-0}" -ge 100 ] && [ "${refused:-0}" -le 104 ]; then
  ok "held pool: requests beyond --max-queued are refused, the waiting ones time out (${refused} 503s)"
else
  not_ok "held pool: 40 requests beyond --max-queued refused at once, 60 time out" "${refused:-no} 503s"
fi
# Their lines are bounded per source (10 a second; 40 may straddle two): one line each wrote
# 77 MB in 8 s for a caller overflowing the queue (attack_test queue_flood).
if [ "$full" -ge 1 ] && [ "$full" -le 20 ]; then
  ok "held pool: the refusals at once are logged, bounded per source ($full lines)"
else
  not_ok "held pool: the refusals at once are logged, at most 10 a second" "$full lines"
fi
out=$(h2load -n 200 -c 2 -m 10 "$OUT/" 2>&1)
expect_match "held pool: once the holders are gone, requests succeed" '200 succeeded, 0 failed' "$out"
stop_proxy "$C"
stop_proxy "$S"

# ---------------------------------------------------------------------------
# 3. Buffer budgets.
# 3a. Zero-window readers: 3 connections x 256 streams of a large response,
#     granting no window. A stream nobody reads holds 64 KiB in each proxy.
start_limits_pair zw || { not_ok "pair starts"; finish; }
OUT=http://127.0.0.1:$OUT_PORT
$ABUSE zero-window --port "$OUT_PORT" --conns 3 --streams 256 --path '/bytes?n=8000000' --seconds 7 \
  >"$WORK/zw.json" 2>"$WORK/zw.err" &
JOB=$!
sleep 1.5
good_client zw_good 300 "$OUT/hello" 20 >"$WORK/zw_good.n" &
gpid=$!
max_rss "$JOB" "$(pid_of "$S")" >"$WORK/zw_peak_s" &
peak_c=$(max_rss "$JOB" "$(pid_of "$C")")
wait "$gpid" $!
peak_s=$(cat "$WORK/zw_peak_s")
echo "# attacker: $(cat "$WORK/zw.json")"
at_least "zero-window readers: another caller completes >= 297 of 300 requests" 297 "$(cat "$WORK/zw_good.n")"
expect_rss_under "zero-window readers: client proxy RSS stays under 40 MB" 40960 "$peak_c"
expect_rss_under "zero-window readers: server proxy RSS stays under 40 MB" 40960 "$peak_s"
want=$(h2get "http://127.0.0.1:$APP_PORT/bytes?n=33554432" | sha256sum | cut -c1-64)
got=$(h2get "$OUT/bytes?n=33554432" | sha256sum | cut -c1-64)
expect_eq "afterwards a 32 MiB response arrives intact" "$want" "$got"
stop_proxy "$C"
stop_proxy "$S"

# 3b. --buffer-limit: once the process holds that much, new streams are
#     refused (REFUSED_STREAM: nothing was done, the client may retry).
start_limits_pair buf --buffer-limit 2M || { not_ok "pair starts"; finish; }
OUT=http://127.0.0.1:$OUT_PORT
$ABUSE zero-window --port "$OUT_PORT" --conns 1 --streams 64 --path '/bytes?n=8000000' --seconds 4 \
  >"$WORK/zw2.json" 2>"$WORK/zw2.err" &
JOB=$!
sleep 2
out=$(curl -sS -o /dev/null --max-time 5 --http2-prior-knowledge "$OUT/hello" 2>&1)
# curl retries a refused stream (REFUSED_STREAM) and then gives up.
expect_match "--buffer-limit reached: a new stream is refused" 'REFUSED_STREAM|Connection died, tried [0-9]+ times' "$out"
check "--buffer-limit reached: the refusal is logged saying why" \
  grep -qs '"stream_refused".*"reason":"the proxy holds its --buffer-limit of header and body bytes"' "$WORK/$C.out"
wait "$JOB"
sleep 0.5
expect_eq "--buffer-limit: once the readers are gone, requests succeed" 200 \
  "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --http2-prior-knowledge "$OUT/hello")"
stop_proxy "$C"
stop_proxy "$S"

# 3c. --conn-buffer-limit: a caller uploading on 100 streams that cannot go
#     upstream yet (its share, 1, is held) may make the proxy buffer its
#     budget plus one connection window (1 MiB), not 100 stream windows.
start_limits_pair up --conn-buffer-limit 1M --max-upstream-per-caller 1 || { not_ok "pair starts"; finish; }
OUT=http://127.0.0.1:$OUT_PORT
$ABUSE upload --port "$OUT_PORT" --hold-path '/slow?ms=20000' --streams 100 --path /sha256 --seconds 4 \
  >"$WORK/up.json" 2>"$WORK/up.err"
up=$(cat "$WORK/up.json")
echo "# uploader: $up"
sent=$(json_field "$up" 'body_bytes_sent')
if [ "${sent:-0}" -gt 0 ] && [ "$sent" -le $((2 * 1048576 + 65536)) ]; then
  ok "--conn-buffer-limit: the caller could send $sent bytes (<= budget + connection window)"
else
  not_ok "--conn-buffer-limit: the caller could send at most budget + connection window" "$sent bytes"
fi
expect_eq "--conn-buffer-limit: other callers are served" 200 \
  "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --http2-prior-knowledge "$OUT/hello")"
stop_proxy "$C"
stop_proxy "$S"

# ---------------------------------------------------------------------------
# 4. --max-concurrent-streams: what the proxy announces to callers (a client
#    that wants more in flight keeps the rest on its side).
start_limits_pair mcs --max-concurrent-streams 8 || { not_ok "pair starts"; finish; }
OUT=http://127.0.0.1:$OUT_PORT
expect_match "--max-concurrent-streams 8 is announced" 'SETTINGS_MAX_CONCURRENT_STREAMS\(0x03\):8\]' \
  "$(nghttp -v "$OUT/hello" 2>&1)"
out=$(h2load -n 400 -c 1 -m 8 "$OUT/" 2>&1)
expect_match "--max-concurrent-streams 8: a client keeping 8 in flight completes all 400" '400 succeeded, 0 failed' "$out"
stop_proxy "$C"
stop_proxy "$S"

finish
