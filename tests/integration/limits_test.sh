#!/usr/bin/env bash
# Listener limits (issue 9): connection caps per listener and per source
# address, handshake and idle timeouts, running out of file descriptors
# (ulimit -n 64) on the data and admin listeners, bounded logs, and an
# admin port that keeps answering probes while idle connections hold it.
# Raw peers are tests/integration/limits_peer.py; good clients are curl.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
PEER=$LIMITS_PEER
make_pki
p=$WORK/pki

adm() { curl -s --max-time 5 "$@"; }
metric() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k { print $2; exit }'; }
# mtls_get PORT SRC PATH: an mTLS HTTP/2 request as frontend from address
# SRC; prints the status (000: no answer).
mtls_get() {
  curl -sk --max-time 5 --http2 --cert "$p/frontend.crt" --key "$p/frontend.key" --interface "$2" \
    -o /dev/null -w '%{http_code}' "https://127.0.0.1:$1$3"
}
log_bytes() { cat "$WORK/$1.out" "$WORK/$1.err" | wc -c; }

APP_PORT=$(free_port)
start_app app "$APP_PORT" || { not_ok "app starts"; finish; }

# ---------------------------------------------------------------------------
# 1. Connection caps: per source on the inbound listener, per listener.
IN=$(free_port) ADM=$(free_port)
start_proxy capped --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$IN" --app "127.0.0.1:$APP_PORT" --admin "127.0.0.1:$ADM" \
  --max-connections 20 --max-connections-per-source 10 --handshake-timeout 60
wait_port "$IN" && wait_port "$ADM" || { not_ok "capped proxy starts"; finish; }
expect_eq "a good caller is served before any flood" 200 "$(mtls_get "$IN" 127.0.0.2 /before)"

flood f1 "$IN" 30 127.0.0.1
expect_flood "one source flooding: 10 connections held (--max-connections-per-source), 20 closed at once" \
  f1 "open=10 closed=20"
m=$(adm "http://127.0.0.1:$ADM/metrics")
expect_eq "... counted as refused by max_connections_per_source" 20 \
  "$(metric "$m" 'wisp_connections_limited_total{reason="max_connections_per_source"}')"
expect_eq "... the listener counts the 10 it holds" 10 \
  "$(metric "$m" "wisp_listener_connections{listener=\"127.0.0.1:$IN\",direction=\"inbound\"}")"
expect_eq "a second source (127.0.0.2) is still served while 127.0.0.1 floods" 200 "$(mtls_get "$IN" 127.0.0.2 /other)"
expect_eq "the flooding source gets no more connections" 000 "$(mtls_get "$IN" 127.0.0.1 /flooder)"
expect_match "the refusal names the limit" \
  '"event":"refused".*"reason":"127.0.0.1 holds 10 connections already \(--max-connections-per-source\)","limit":"max_connections_per_source"' \
  "$(cat "$WORK/capped.out")"

flood f3 "$IN" 15 127.0.0.3
expect_flood "a third source fills the listener to --max-connections 20" f3 "open=10 closed=5"
expect_eq "past --max-connections even a new source is closed at once" 000 "$(mtls_get "$IN" 127.0.0.2 /full)"
m=$(adm "http://127.0.0.1:$ADM/metrics")
expect_eq "... counted as refused by max_connections (5 of the third source's, the new one)" 6 \
  "$(metric "$m" 'wisp_connections_limited_total{reason="max_connections"}')"
expect_match "... and logged naming the flag" \
  '"reason":"the listener holds 20 connections already \(--max-connections\)","limit":"max_connections"' \
  "$(cat "$WORK/capped.out")"

# A big flood while full: the refusal lines are rate-limited, with a count.
before=$(grep -c '"event":"refused"' "$WORK/capped.out")
flood f4 "$IN" 400 127.0.0.4
expect_flood "400 more callers while full: all closed at once" f4 "open=0 closed=400"
# 20 lines a second pass: a few seconds' worth on a slow machine, never 400.
lines=$(($(grep -c '"event":"refused"' "$WORK/capped.out") - before))
if [ "$lines" -le 100 ]; then
  ok "... with at most 100 refusal lines for 400 refusals ($lines)"
else
  not_ok "... with at most 100 refusal lines for 400 refusals" "$lines lines"
fi
summarised() { grep -q '"type":"suppressed","what":"refused or closed-early connections on the inbound listener' "$WORK/capped.out"; }
if wait_for 10 summarised; then
  sum() { grep -o "\"$1\":[0-9]*" "$WORK/capped.out" | awk -F: '{ n += $2 } END { print n + 0 }'; }
  got=$(grep '"type":"suppressed"' "$WORK/capped.out" | grep -o '"count":[0-9]*' | awk -F: '{ n += $2 } END { print n + 0 }')
  carried=$(sum suppressed)
  total=$((lines + got + carried))
  if [ "$total" -ge 400 ]; then
    ok "... and the rest are counted in a suppressed summary ($lines lines + $got + $carried suppressed)"
  else
    not_ok "... and the rest are counted in a suppressed summary" "$lines lines, $got + $carried suppressed"
  fi
else
  not_ok "... and the rest are counted in a suppressed summary" "no summary line in 10 s"
fi

unflood f1
unflood f3
unflood f4
drained() {
  m=$(adm "http://127.0.0.1:$ADM/metrics")
  [ "$(metric "$m" "wisp_listener_connections{listener=\"127.0.0.1:$IN\",direction=\"inbound\"}")" = 0 ]
}
if wait_for 10 drained; then
  ok "every slot is given back when the flood goes"
else
  not_ok "every slot is given back when the flood goes" "$(printf '%s\n' "$m" | grep wisp_listener_connections)"
fi
expect_eq "the source that flooded is served again" 200 "$(mtls_get "$IN" 127.0.0.1 /after)"
stop_proxy capped

# The cap holds on an outbound (route) listener too, and 0 means none.
OUTP=$(free_port) OUTQ=$(free_port)
start_proxy routecap --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" --admin off \
  --route "127.0.0.1:$OUTP=127.0.0.1:$APP_PORT" --max-connections 5 --max-connections-per-source 1
start_proxy nocap --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" --admin off \
  --route "127.0.0.1:$OUTQ=127.0.0.1:$APP_PORT" --max-connections 0
wait_port "$OUTP" && wait_port "$OUTQ"
flood f5 "$OUTP" 8 127.0.0.1
expect_flood "a route listener holds --max-connections 5 (no per-source cap on outbound)" f5 "open=5 closed=3"
unflood f5
flood f6 "$OUTQ" 50 127.0.0.1
expect_flood "--max-connections 0: no cap" f6 "open=50 closed=0"
unflood f6
stop_proxy routecap
stop_proxy nocap

# IPv6 callers are one source per whole address by default: Kubernetes
# gives each node a /64 of pod addresses, so one pod at its cap must not
# lock out its neighbours; --ipv6-source-prefix 64 makes a /64 one source.
# Two addresses of one /64 on the loopback of a network namespace of ours.
cat >"$WORK/v6.sh" <<'EOF'
set -u
proxy=$1 pki=$2 peer=$3 work=$4 prefix=$5 want_b=$6
ip link set lo up && ip -6 addr add fd00:1:2:3::5/128 dev lo && ip -6 addr add fd00:1:2:3::6/128 dev lo || exit 1
"$proxy" --cert "$pki/orders.crt" --key "$pki/orders.key" --bundle "$pki/ca/ca.crt" --inbound "[::1]:15006" \
  --app 127.0.0.1:1 --admin off --max-connections-per-source 2 --ipv6-source-prefix "$prefix" \
  >"$work/v6-$prefix.out" 2>"$work/v6-$prefix.err" &
pid=$!
upto() { # upto FILE LINE: until FILE's last line is LINE (at most 10 s), then prints it
  for _ in $(seq 1 200); do [ "$(tail -1 "$1" 2>/dev/null)" = "$2" ] && break; sleep 0.05; done
  tail -1 "$1"
}
for _ in $(seq 1 400); do ss -Htln "sport = :15006" | grep -q . && break; sleep 0.05; done
$peer flood 15006 4 fd00:1:2:3::5 60 "$work/v6a-$prefix.stop" >"$work/v6a-$prefix.txt" &
a=$!
upto "$work/v6a-$prefix.txt" "open=2 closed=2"
$peer flood 15006 2 fd00:1:2:3::6 60 "$work/v6b-$prefix.stop" >"$work/v6b-$prefix.txt" &
b=$!
upto "$work/v6b-$prefix.txt" "$want_b"
grep -m1 '"event":"refused"' "$work/v6-$prefix.out" | grep -o '"reason":"[^"]*"'
touch "$work/v6a-$prefix.stop" "$work/v6b-$prefix.stop"
wait $a $b
kill -TERM $pid
wait $pid
echo "exit=$?"
EOF
if unshare -n true 2>/dev/null; then
  out=$(unshare -n bash "$WORK/v6.sh" "$WISP_PROXY" "$p" "$PEER" "$WORK" 128 "open=2 closed=0")
  expect_eq "IPv6: a caller at --max-connections-per-source 2 is refused more" "open=2 closed=2" "$(sed -n 1p <<<"$out")"
  expect_eq "... while its neighbour in the same /64 is served" "open=2 closed=0" "$(sed -n 2p <<<"$out")"
  expect_eq "... the refusal names the whole address" \
    '"reason":"fd00:1:2:3::5 holds 2 connections already (--max-connections-per-source)"' "$(sed -n 3p <<<"$out")"
  expect_eq "... and the proxy exits 0" "exit=0" "$(sed -n 4p <<<"$out")"
  out=$(unshare -n bash "$WORK/v6.sh" "$WISP_PROXY" "$p" "$PEER" "$WORK" 64 "open=0 closed=2")
  expect_eq "--ipv6-source-prefix 64: the neighbour in the same /64 shares the cap" "open=0 closed=2" \
    "$(sed -n 2p <<<"$out")"
  expect_eq "... and the refusal names the /64" \
    '"reason":"fd00:1:2:3::/64 holds 2 connections already (--max-connections-per-source)"' "$(sed -n 3p <<<"$out")"
else
  skip "IPv6 sources per whole address" "cannot make a network namespace here"
fi

# ---------------------------------------------------------------------------
# 2. Handshake and idle timeouts hold on the inbound listener: never early,
# and long before the defaults (10 s, 300 s) however loaded the machine.
IN2=$(free_port)
start_proxy timeouts --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" --admin off \
  --inbound "127.0.0.1:$IN2" --app "127.0.0.1:$APP_PORT" --handshake-timeout 1 --idle-timeout 2
wait_port "$IN2"
for mode in silent partial late trickle; do
  t=$($PEER stall "$IN2" "$mode")
  if [ "$t" != open ] && awk -v t="$t" 'BEGIN { exit !(t >= 0.9 && t < 6) }'; then
    ok "--handshake-timeout 1 closes a caller that stalls ($mode) after ${t}s"
  else
    not_ok "--handshake-timeout 1 closes a caller that stalls ($mode)" "closed after: $t"
  fi
done
out=$($PEER idle "$IN2" "$p/frontend.crt" "$p/frontend.key" "$p/ca/ca.crt")
t=${out#*closed_after=}
if [ "${out%% *}" = goaway=1 ] && awk -v t="$t" 'BEGIN { exit !(t >= 1.9 && t < 10) }'; then
  ok "--idle-timeout 2: an mTLS connection without streams gets GOAWAY and is closed ($out)"
else
  not_ok "--idle-timeout 2: an mTLS connection without streams gets GOAWAY and is closed" "$out"
fi
stop_proxy timeouts

# ---------------------------------------------------------------------------
# 3. Out of file descriptors (ulimit -n 64): no spinning, bounded logs, and
# served again once descriptors are free; data and admin listeners alike.
# A spin shows as a huge count of failed accepts (one per loop turn, many
# thousands a second); a pause tries at most 10 times a second.
IN3=$(free_port) ADM3=$(free_port) OUT3=$(free_port)
REAL_PROXY=$WISP_PROXY
WISP_PROXY=$(fd_limited 64 "$WISP_PROXY")
start_proxy fd64 --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$IN3" --app "127.0.0.1:$APP_PORT" --admin "127.0.0.1:$ADM3"
WISP_PROXY=$REAL_PROXY
start_proxy fdclient --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" --admin off \
  --route "127.0.0.1:$OUT3=127.0.0.1:$IN3,id=$TD/ns/shop/sa/orders"
wait_port "$IN3" && wait_port "$ADM3" && wait_port "$OUT3" || { not_ok "fd64 proxy starts"; finish; }
expect_eq "the fd64 proxy runs with an open file limit of 64" 64 \
  "$(awk '/Max open files/ {print $4}' "/proc/$PID_fd64/limits")"
expect_match "... and says the limit is below what --max-connections may need" \
  'open file limit \(64\) is below what --max-connections 4096' "$(cat "$WORK/fd64.err")"
flood g1 "$IN3" 100 127.0.0.1
flood g2 "$ADM3" 100 127.0.0.1
paused_both() {
  grep -q 'accept on the inbound listener .* pausing' "$WORK/fd64.err" &&
    grep -q 'accept on the admin listener .* pausing' "$WORK/fd64.err"
}
check "both listeners run out of descriptors and pause" wait_for 10 paused_both
# Out of descriptors for 2 s more: a spinning listener would fail
# thousands of times meanwhile, and write as many lines.
b0=$(log_bytes fd64)
sleep 2
b1=$(log_bytes fd64)
if [ $((b1 - b0)) -le 4096 ]; then
  ok "... and do not flood the logs meanwhile ($((b1 - b0)) bytes)"
else
  not_ok "... and do not flood the logs meanwhile" "$((b1 - b0)) bytes"
fi
expect_eq "the pause is logged once per listener" 1 \
  "$(grep -c 'accept on the inbound listener .* failed: Too many open files (open file limit 64); pausing' "$WORK/fd64.err")"
expect_eq "... the admin listener's too" 1 \
  "$(grep -c 'accept on the admin listener .* failed: Too many open files' "$WORK/fd64.err")"
unflood g1
unflood g2
served() { [ "$(h2get -o /dev/null -w '%{http_code}' "http://127.0.0.1:$OUT3/after-fds")" = 200 ]; }
if wait_for 15 served; then
  ok "once descriptors are free a good client is served again"
else
  not_ok "once descriptors are free a good client is served again"
fi
expect_eq "... and /healthz answers" 200 "$(adm -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADM3/healthz")"
resumed() {
  grep -q 'accepting again on the inbound listener .* paused ([0-9]* failed tries)' "$WORK/fd64.err" &&
    grep -q 'accepting again on the admin listener .* paused ([0-9]* failed tries)' "$WORK/fd64.err"
}
if wait_for 10 resumed; then ok "the end of the episode is logged with its failed tries"; else not_ok "the end of the episode is logged with its failed tries"; fi
m=$(adm "http://127.0.0.1:$ADM3/metrics")
expect_eq "/metrics counts the pause" 1 \
  "$(metric "$m" "wisp_listener_accept_pauses_total{listener=\"127.0.0.1:$IN3\",direction=\"inbound\"}")"
for l in inbound admin; do expect_no_spin "the $l listener did not spin" "$l listener" "$WORK/fd64.err"; done
failures=$(metric "$m" "wisp_listener_accept_failures_total{listener=\"127.0.0.1:$IN3\",direction=\"inbound\"}")
expect_eq "... /metrics counts the same failed tries" "$(accept_failed_tries "inbound listener" "$WORK/fd64.err")" "$failures"
total=$(log_bytes fd64)
if [ "$total" -le 65536 ]; then
  ok "the whole episode wrote $total bytes of log"
else
  not_ok "the whole episode wrote at most 64 KiB of log" "$total bytes"
fi
stop_proxy fdclient
stop_proxy fd64

# ---------------------------------------------------------------------------
# 4. The admin port: idle connections do not lock out probes; status lines.
ADM4=$(free_port) IN4=$(free_port)
start_proxy admin --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$IN4" --app "127.0.0.1:$APP_PORT" --admin "127.0.0.1:$ADM4"
wait_port "$ADM4"
flood a1 "$ADM4" 40 127.0.0.1
# Before the fix a probe here waited for an idle connection to time out (5 s)
# and then got 503; now the longest-idle one makes room at once.
expect_eq "40 idle admin connections: /healthz still answers 200" 200 \
  "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADM4/healthz")"
codes=""
for i in 1 2 3 4 5; do codes="$codes$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADM4/ready") "; done
expect_eq "... and keeps answering (5 probes in a row)" "200 200 200 200 200 " "$codes"
m=$(adm "http://127.0.0.1:$ADM4/metrics")
evicted=$(metric "$m" 'wisp_admin_connections_dropped_total{reason="evicted"}')
if [ "${evicted:-0}" -ge 6 ]; then
  ok "the longest-idle admin connections made room (evicted $evicted)"
else
  not_ok "the longest-idle admin connections made room" "evicted ${evicted:-none}"
fi
unflood a1

status_line() { # METHOD PATH: the status line the admin port answers
  curl -s --max-time 5 -i -X "$1" "http://127.0.0.1:$ADM4$2" | head -1 | tr -d '\r'
}
expect_eq "status line 200" "HTTP/1.1 200 OK" "$(status_line GET /healthz)"
expect_eq "status line 404" "HTTP/1.1 404 Not Found" "$(status_line GET /nope)"
expect_eq "status line 405" "HTTP/1.1 405 Method Not Allowed" "$(status_line POST /healthz)"
expect_eq "status line 413" "HTTP/1.1 413 Content Too Large" \
  "$(curl -s --max-time 5 -i -H "X-Pad: $(head -c 9000 /dev/zero | tr '\0' a)" "http://127.0.0.1:$ADM4/healthz" | head -1 | tr -d '\r')"
stop_proxy admin

# 403 and 503 need a caller beyond loopback / a proxy that is not ready: a
# network namespace of our own with one more address on its loopback.
if unshare -n true 2>/dev/null; then
  ADM5=$(free_port)
  out=$(unshare -n bash -c '
    ip link set lo up && ip addr add 10.77.9.5/32 dev lo || exit 1
    "$1" --cert "$2/orders.crt" --key "$2/orders.key" --bundle "$2/ca/ca.crt" --inbound 127.0.0.1:1 \
      --app 127.0.0.1:1 --admin "0.0.0.0:$3" >/dev/null 2>&1 &
    pid=$!
    for i in $(seq 1 400); do curl -s -o /dev/null "http://127.0.0.1:$3/healthz" && break; sleep 0.05; done
    curl -s --max-time 5 -i --interface 10.77.9.5 "http://10.77.9.5:$3/config" | head -1 | tr -d "\r"
    curl -s --max-time 5 -i --interface 10.77.9.5 "http://10.77.9.5:$3/healthz" | head -1 | tr -d "\r"
    kill $pid; wait $pid' _ "$WISP_PROXY" "$p" "$ADM5")
  expect_eq "status line 403 for a remote caller" "HTTP/1.1 403 Forbidden" "$(sed -n 1p <<<"$out")"
  expect_eq "... whose probe gets 200" "HTTP/1.1 200 OK" "$(sed -n 2p <<<"$out")"
else
  skip "status line 403 for a remote caller" "cannot make a network namespace here"
fi
bash "$PKI" svid "$p/ca" "$p/old" "$TD/ns/shop/sa/orders" --expired >/dev/null
ADM6=$(free_port) IN6=$(free_port)
start_proxy expired --cert "$p/old.crt" --key "$p/old.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$IN6" --app "127.0.0.1:$APP_PORT" --admin "127.0.0.1:$ADM6"
wait_port "$ADM6"
expect_eq "status line 503" "HTTP/1.1 503 Service Unavailable" \
  "$(curl -s --max-time 5 -i "http://127.0.0.1:$ADM6/ready" | head -1 | tr -d '\r')"
stop_proxy expired

finish
