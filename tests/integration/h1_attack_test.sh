#!/usr/bin/env bash
# HTTP/1 callers and their L4 upgrades as an attacker sees them (issue 9):
# refused upgrades answered, callers that leave cancelled, pipelining,
# slow and odd requests bounded. Each case runs with a well-behaved client
# beside it whose success is asserted.
# app (h2c, --app-protocol h2c) <- wisp(orders, inbound) <= mTLS <= wisp(frontend, route) <- HTTP/1.1 <- client
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
make_pki
p=$WORK/pki
POLICY=$WORK/policy.yaml
cat >"$POLICY" <<YAML
apiVersion: wisp.dev/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: shop}
spec:
  selector: {serviceAccount: orders}
  action: DENY
  rules:
  - to: [{paths: ["/admin/*"]}]
YAML
SADM=$(free_port)
CADM=$(free_port)
APP_PORT=$(free_port)
IN_PORT=$(free_port)
OUT_PORT=$(free_port)
start_app app "$APP_PORT"
start_proxy server --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" --admin "127.0.0.1:$SADM" \
  --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --app-protocol h2c --policy "$POLICY" --handshake-timeout 3
start_proxy client --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" --admin "127.0.0.1:$CADM" \
  --route "127.0.0.1:$OUT_PORT=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders" --handshake-timeout 3
wait_port "$IN_PORT" && wait_port "$OUT_PORT" || { not_ok "pair starts"; finish; }
OUT=http://127.0.0.1:$OUT_PORT
RAW=(/usr/bin/python3 "$WISP_SRC/tests/integration/h1_raw.py")
ATTACK=(/usr/bin/python3 "$WISP_SRC/tests/integration/h1_attack.py")
h1() { curl -sS --http1.1 --max-time 20 "$@"; }
good() { # good NAME: a well-behaved HTTP/1.1 client beside the attack gets 200
  local code
  code=$(h1 -o /dev/null -w '%{http_code}' "$OUT/good")
  expect_eq "$1: a good HTTP/1.1 client beside it gets 200" 200 "$code"
}
metric() { # metric ADMIN_PORT NAME: a counter's value
  curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n {print $2}'
}

# --- refused upgrades get an answer, not a bare close ---
# The peer judges an L4 stream (Upgrade, CONNECT) by identity and port; a
# DENY with paths denies every L4 stream (no path to judge).
WS=(-H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==')
out=$(h1 -i "${WS[@]}" "$OUT/ws" 2>&1)
expect_match "a WebSocket Upgrade the peer's policy denies: 403 to curl" '^HTTP/1.1 403 Forbidden' "$out"
expect_match "... saying why (the policy)" 'x-wisp-error: RBAC: access denied \(.*policy shop/no-admin' "$out"
check "... and logged l4_denied by the peer" wait_for 5 grep -q '"event":"l4_denied".*"policy":"shop/no-admin"' \
  "$WORK/server.out"
out=$("${RAW[@]}" "$OUT_PORT" 'CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\ntunnelled bytes')
expect_match "a CONNECT the peer's policy denies: 403 saying why, then closed" \
  '^HTTP/1.1 403 Forbidden.*x-wisp-error: RBAC: access denied.*<closed>' "$(tr -d '\r\n' <<<"$out")"
out=$("${RAW[@]}" "$OUT_PORT" 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n' --keep-open --timeout 8)
expect_match "a denied Upgrade whose caller keeps its end open: 403, then closed by the proxy" \
  '^HTTP/1.1 403 Forbidden.*<closed>' "$(tr -d '\r\n' <<<"$out")"
good "denied upgrades"

# Upgrade abuse: a CONNECT whose target is not host:port is refused at the
# gateway (it was carried to the app as it came); an Upgrade with a body is
# a plain request (the Upgrade field dropped), as is Upgrade: h2c.
for target in /etc/passwd :0 example.test example.test:0; do
  out=$("${RAW[@]}" "$OUT_PORT" "CONNECT $target HTTP/1.1\r\nHost: x\r\n\r\nbytes")
  expect_match "CONNECT $target: 400 saying why, then closed" \
    '^HTTP/1.1 400 Bad Request.*x-wisp-error: CONNECT needs host:port.*<closed>' "$(tr -d '\r\n' <<<"$out")"
done
out=$("${RAW[@]}" "$OUT_PORT" 'POST /up-body HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\nContent-Length: 5\r\n\r\nhello')
expect_match "an Upgrade with a body is a plain request" '^HTTP/1.1 200 OK.*"path":"/up-body"' "$(tr -d '\r\n' <<<"$out")"
if grep -qi '"upgrade"' <<<"$out"; then not_ok "... its Upgrade field does not reach the app"; else ok "... its Upgrade field does not reach the app"; fi
out=$("${RAW[@]}" "$OUT_PORT" 'POST /h2c-body HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nContent-Length: 5\r\n\r\nhello')
expect_match "Upgrade: h2c with a body is a plain request" '^HTTP/1.1 200 OK.*"path":"/h2c-body"' "$(tr -d '\r\n' <<<"$out")"
good "upgrade abuse"

# --- requests HTTP/2 would refuse are refused at the gateway ---
# GET * went on as an HTTP/2 request that the h2c side reset (PROTOCOL_ERROR):
# the caller got 502 and the reset counted against its address's
# --max-resets budget, 2,000 a second from tiny connections, and same-address
# callers opening new connections got 85%.
out=$("${RAW[@]}" "$OUT_PORT" 'GET * HTTP/1.1\r\nHost: x\r\n\r\n')
expect_match "GET * (asterisk-form, not OPTIONS): 400 from the gateway saying why, then closed" \
  '^HTTP/1.1 400 Bad Request.*x-wisp-error: the asterisk-form request-target \(\*\) is for OPTIONS only.*<closed>' \
  "$(tr -d '\r\n' <<<"$out")"
out=$("${RAW[@]}" "$OUT_PORT" 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n')
expect_match "OPTIONS * goes on to the app and gets its answer" '^HTTP/1.1 200 OK' "$(tr -d '\r\n' <<<"$out")"
r0=$(metric "$CADM" 'wisp_premature_resets_total{by="protocol"}')
"${ATTACK[@]}" star "$OUT_PORT" 4 8 >"$WORK/star.out" &
STAR_PID=$!
goods=0
for i in $(seq 1 10); do
  [ "$(h1 -o /dev/null -w '%{http_code}' "$OUT/good-$i")" = 200 ] && goods=$((goods + 1))
done
wait "$STAR_PID"
expect_match "a GET * flood on new connections is answered 400 each" '^conns=[0-9]+ 400=[0-9]+$' "$(cat "$WORK/star.out")"
expect_eq "... and none counts as a premature reset of the callers' address" \
  0 $(($(metric "$CADM" 'wisp_premature_resets_total{by="protocol"}') - r0))
expect_eq "... a good caller beside it, a new connection per request, gets 10 of 10" 10 "$goods"

# An Upgrade to an app that cannot be reached, and to a peer that cannot.
DEAD=$(free_port)
IN2=$(free_port)
OUT2=$(free_port)
OUT3=$(free_port)
start_proxy server2 --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" --admin off \
  --inbound "127.0.0.1:$IN2" --app "127.0.0.1:$DEAD"
start_proxy client2 --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" --admin off \
  --route "127.0.0.1:$OUT2=127.0.0.1:$IN2,id=$TD/ns/shop/sa/orders" \
  --route "127.0.0.1:$OUT3=127.0.0.1:$DEAD,id=$TD/ns/shop/sa/orders"
wait_port "$IN2" && wait_port "$OUT2" && wait_port "$OUT3"
out=$(h1 -i "${WS[@]}" "http://127.0.0.1:$OUT2/ws" 2>&1)
expect_match "an Upgrade to an app that cannot be reached: 503 saying why" \
  "^HTTP/1.1 503 Service Unavailable.*x-wisp-error: cannot connect to 127.0.0.1:$DEAD" "$(tr -d '\r\n' <<<"$out")"
out=$(h1 -i "${WS[@]}" "http://127.0.0.1:$OUT3/ws" 2>&1)
expect_match "an Upgrade to a peer sidecar that cannot be reached: 503 saying why" \
  "^HTTP/1.1 503 Service Unavailable.*x-wisp-error: cannot connect to 127.0.0.1:$DEAD" "$(tr -d '\r\n' <<<"$out")"
stop_proxy client2
stop_proxy server2

# --- denied tunnels do not hold the peer's per-source slots ---
# A denied Upgrade's caller that kept its end open held its slot of the
# peer's --max-connections-per-source for --handshake-timeout: a burst of
# them from one client sidecar filled every slot of its address, and other
# callers' tunnels through any sidecar of that address got 503. After the
# 403 a refused caller now has 1 s to close (and 64 KiB to send).
bash "$PKI" svid "$p/ca" "$p/mallory" "$TD/ns/shop/sa/mallory" >/dev/null
cat >"$WORK/no-mallory.yaml" <<YAML
apiVersion: wisp.dev/v1
kind: AuthorizationPolicy
metadata: {name: no-mallory, namespace: shop}
spec:
  selector: {serviceAccount: orders}
  action: DENY
  rules:
  - from: [{principals: ["$TD/ns/shop/sa/mallory"]}]
YAML
APPE=$(free_port)
INE=$(free_port)
OUTM=$(free_port)
OUTG=$(free_port)
start_bg "$WORK/appe" /usr/bin/python3 "$WISP_SRC/tests/integration/h1_app.py" "$APPE"
wait_port "$APPE"
start_proxy servere --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" --admin off \
  --inbound "127.0.0.1:$INE" --app "127.0.0.1:$APPE" --app-protocol http1 --policy "$WORK/no-mallory.yaml" \
  --max-connections-per-source 30 --handshake-timeout 30
start_proxy mallory --cert "$p/mallory.crt" --key "$p/mallory.key" --bundle "$p/ca/ca.crt" --admin off \
  --route "127.0.0.1:$OUTM=127.0.0.1:$INE,id=$TD/ns/shop/sa/orders"
start_proxy goode --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" --admin off \
  --route "127.0.0.1:$OUTG=127.0.0.1:$INE,id=$TD/ns/shop/sa/orders"
wait_port "$INE" && wait_port "$OUTM" && wait_port "$OUTG"
good_tunnel() { # an Upgrade through the good caller's sidecar: 101 from the app, its bytes echoed
  "${RAW[@]}" "$OUTG" 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello' |
    tr -d '\r\n' | grep -q '101 Switching Protocols.*hello'
}
check "a good tunnel to a peer with --max-connections-per-source 30" good_tunnel
# Both gateways' hops to the HTTP/2 path are in-process pipes: after a
# request through each (the caller's wisp_h1, the app's wisp_h1app on a
# pooled upstream connection, kept), neither proxy holds a unix socket
# (a socketpair each before).
unix_socks() { ss -xp 2>/dev/null | grep -c "pid=$1," || true; }
expect_eq "a request through both HTTP/1 gateways (HTTP/1.1 caller, HTTP/1.1 app)" 200 \
  "$(h1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$OUTG/hello")"
expect_eq "... the inbound proxy, its pooled connection to the app's gateway kept, holds no unix socket" 0 \
  "$(unix_socks "$PID_servere")"
"${ATTACK[@]}" tunnels "$OUTM" 60 40 "$WORK/tunnels.stop" >"$WORK/tunnels.out" &
TUN_PID=$!
wait_for 30 grep -q opened= "$WORK/tunnels.out"
expect_match "60 denied tunnels from one sidecar, their callers keeping their ends open: 403s" '403=[0-9]+' \
  "$(cat "$WORK/tunnels.out")"
check "... a good tunnel through another sidecar of that address succeeds while they are held (not after --handshake-timeout 30)" \
  wait_for 10 good_tunnel
touch "$WORK/tunnels.stop"
wait "$TUN_PID"
stop_proxy goode
stop_proxy mallory
stop_proxy servere

# --- request bodies that trickle do not hold upstream streams ---
# Only the head had a deadline: a body at 1 byte / 5 s held its upstream
# stream for good, and 450 such callers held every pooled stream (a good
# caller got 70%). With --stream-idle-timeout 2 each gets 408 once its body
# moved nothing for 2 s. The route has one pooled connection (100 streams)
# and a long --queue-timeout, so a good request waits for a stream to free.
OUTS=$(free_port)
start_proxy slowc --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" --admin off \
  --pool-size 1 --queue-timeout 30 --stream-idle-timeout 2 \
  --route "127.0.0.1:$OUTS=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders"
wait_port "$OUTS"
h1 -o /dev/null "http://127.0.0.1:$OUTS/warm"
"${ATTACK[@]}" slowbody "$OUTS" 110 5 12 >"$WORK/slowbody.out" &
SLOW_PID=$!
wait_for 20 grep -q open= "$WORK/slowbody.out"
code=$(h1 -o /dev/null -w '%{http_code}' --max-time 8 -d 'a good body' "http://127.0.0.1:$OUTS/sha256")
expect_eq "110 callers trickling request bodies (1 byte / 5 s) over 100 upstream streams: a good caller beside them gets 200 (--stream-idle-timeout 2)" \
  200 "$code"
wait "$SLOW_PID"
expect_match "... each trickling caller got 408" '^answers 408=110$' "$(grep answers "$WORK/slowbody.out")"
expect_match "... logged with the reason" '"status":408.*"error":"stream idle: no byte moved either way for --stream-idle-timeout [(]2s[)]"' \
  "$(grep -m1 '"status":408' "$WORK/slowc.out")"
stop_proxy slowc

# --- a caller that pipelines many requests and leaves ---
# The gateway takes up to 16 requests at a time (WISP_H1_PIPELINE). A caller
# that sends 200 and closes must not have more reach the app after it left.
finished() { # finished ADMIN_PORT [CODE]: outbound requests finished (with response CODE)
  prom_sum "$(curl -s --max-time 5 "http://127.0.0.1:$1/metrics")" \
    "wisp_requests_total{direction=\"outbound\"${2:+,response_code=\"$2\"}}"
}
at_least() { [ "$("${@:2}")" -ge "$1" ] 2>/dev/null; } # at_least N CMD...: CMD prints N or more
pipeline_attack() { # pipeline_attack END CLIENT_ADMIN SERVER_ADMIN ROUTE_PORT IN_PROGRESS: prints "upstream arrivals cancelled"
  local c0 s0 f0 z0
  c0=$(metric "$2" wisp_upstream_requests_total)
  s0=$(metric "$3" wisp_upstream_requests_total)
  f0=$(finished "$2")
  z0=$(finished "$2" 0)
  "${ATTACK[@]}" pipeline "$4" 200 "/slow?ms=1500&a=$1" "$1" 0.3 >/dev/null
  # every request it had in progress finishes (answered or cancelled)
  wait_for 20 at_least $((${f0:-0} + $5)) finished "$2"
  # a barrier: a request sent after them reaches the app through the same peer
  h1 -o /dev/null "http://127.0.0.1:$4/after-$1"
  echo "$(($(metric "$2" wisp_upstream_requests_total) - c0 - 1)) $(($(metric "$3" wisp_upstream_requests_total) - s0 - 1))" \
    "$(($(finished "$2" 0) - ${z0:-0}))"
}
n=$(pipeline_attack close "$CADM" "$SADM" "$OUT_PORT" 16)
expect_eq "200 pipelined requests, then close(): only the 16 in progress go upstream and reach the app (32 before)" \
  "16 16" "${n% *}"
n=$(pipeline_attack rst "$CADM" "$SADM" "$OUT_PORT" 16)
expect_eq "200 pipelined requests, then a reset: only the 16 in progress went upstream" "16 16" "${n% *}"
expect_eq "... and all 16 are cancelled at once, unanswered (the app does not finish them for a caller that is gone)" \
  16 "${n##* }"
good "pipelining callers that leave"
out=$("${ATTACK[@]}" pipeline "$OUT_PORT" 20 /hello half)
expect_eq "20 pipelined requests and a FIN (half-close): the 16 in progress are answered, then the connection closes" \
  "sent=20 answers=16" "$out"

# The same behind a wait queue: the route holds 2 upstream streams per
# caller connection, so 14 of the 16 wait in the proxy's queue.
CADM2=$(free_port)
OUTQ=$(free_port)
start_proxy clientq --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" \
  --admin "127.0.0.1:$CADM2" --max-upstream-per-caller 2 \
  --route "127.0.0.1:$OUTQ=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders"
wait_port "$OUTQ"
h1 -o /dev/null "http://127.0.0.1:$OUTQ/warm"
n=$(pipeline_attack rst "$CADM2" "$SADM" "$OUTQ" 16)
expect_eq "a reset with 14 requests in the proxy's wait queue: none of them goes upstream (4 before)" "2 2" "${n% *}"
stop_proxy clientq

# --- many small pipelined requests: 20 callers x 500 in one write each ---
# The gateway takes 16 at a time and reads at most 16 KiB ahead, so what a
# read brings is bounded per loop turn; every request is answered.
"${ATTACK[@]}" flood "$OUT_PORT" 20 500 >"$WORK/flood.out" &
FLOOD_PID=$!
good "20 callers pipelining 500 small requests each"
peak=$(max_rss "$FLOOD_PID" "$PID_client")
wait "$FLOOD_PID"
expect_eq "... all 10000 are answered" "answers=10000" "$(cat "$WORK/flood.out")"
expect_rss_under "... and the proxy stays under 30 MB RSS" 30720 "$peak"

# --- callers that pipeline large responses and read none ---
# 20 connections, each 16 pipelined 1 MB responses, never read: the
# gateway takes only the head of the line's response (64 KiB); the rest
# wait in the proxy's stream buffers, which --buffer-limit counts. It held
# 16 x 64 KiB more per connection (52 MB growth; now about 32 MB).
settled() { # settled CMD...: what CMD prints once two runs 0.5 s apart agree (at most 20 tries)
  local a b i
  b=$("$@")
  for i in $(seq 1 20); do
    sleep 0.5
    a=$b
    b=$("$@")
    [ "$a" = "$b" ] && break
  done
  echo "$b"
}
# The growth is judged on the proxy's peak (VmHWM) over the whole attack, not
# on samples that may be taken before the buffers fill: the peak is reset
# first (clear_refs 5), so it is this attack's alone.
hwm_reset() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
rss0=$(settled rss_kb "$PID_client")
hwm_reset "$PID_client" || skip "the proxy's peak RSS can be reset" "clear_refs not writable"
"${ATTACK[@]}" hold "$OUT_PORT" 20 16 "/bytes?n=1000000" 60 "$WORK/big.stop" >"$WORK/big.out" &
BIG_PID=$!
wait_for 20 grep -q open= "$WORK/big.out"
good "20 zero-window callers with 16 pipelined 1 MB responses each"
settled rss_kb "$PID_client" >/dev/null # the buffers have filled
expect_rss_under "... the proxy's peak grows by under 40 MB (52 MB before the head-of-line window, about 32 MB now)" \
  40960 $(($(hwm_kb "$PID_client") - rss0))
touch "$WORK/big.stop"
wait "$BIG_PID"

# --- descriptors: an HTTP/1 caller costs 1 (its socket; the gateway's hop
# to the HTTP/2 path is an in-process pipe, lib/wisp_pipe, no socketpair) ---
fds() { ls "/proc/$1/fd" | wc -l; }
f0=$(settled fds "$PID_client") # the callers before have gone
"${ATTACK[@]}" hold "$OUT_PORT" 20 1 /hello 60 "$WORK/fds.stop" >"$WORK/fds.out" &
FDS_PID=$!
wait_for 10 grep -q open= "$WORK/fds.out"
wait_for 10 sh -c "[ \$(ls /proc/$PID_client/fd | wc -l) -ge $((f0 + 20)) ]"
settled fds "$PID_client" >/dev/null
expect_eq "20 kept-alive HTTP/1 callers hold 1 descriptor each in the proxy" 20 $(($(fds "$PID_client") - f0))
touch "$WORK/fds.stop"
wait "$FDS_PID"
OUTF=$(free_port)
PROXY_FULL=$WISP_PROXY
WISP_PROXY=$(fd_limited 200 "$PROXY_FULL")
start_proxy fd200 --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" --admin off \
  --max-connections 100 --route "127.0.0.1:$OUTF=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders"
WISP_PROXY=$PROXY_FULL
wait_port "$OUTF"
expect_match "the open file limit it wants counts 2 per --max-connections on an outbound listener (2 x 100 + 64: an L4 tunnel's two sockets; an HTTP/1 caller is one, its pipe none)" \
  'open file limit \(200\) is below what --max-connections 100 on 1 listener\(s\) may need \(264\)' "$(cat "$WORK/fd200.err")"
stop_proxy fd200

# --- one HTTP/1 resetter's --max-resets budget is its own address's ---
# Each HTTP/1 caller's requests go through the gateway's HTTP/2 side, which
# had no source key: every HTTP/1 caller, whatever its address, shared one
# budget, and one resetter on 127.0.0.1 got the HTTP/1.1 callers of
# 127.0.0.2 refused (7 of 20 served).
CADMR=$(free_port)
OUTR=$(free_port)
start_proxy clientr --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" \
  --admin "127.0.0.1:$CADMR" --max-resets 20 --queue-timeout 2 \
  --route "127.0.0.1:$OUTR=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders"
wait_port "$OUTR"
"${ATTACK[@]}" midbody "$OUTR" 30 "$WORK/midbody.stop" >"$WORK/midbody.out" &
MID_PID=$!
spent() { at_least 25 metric "$CADMR" 'wisp_premature_resets_total{by="peer"}'; }
check "an HTTP/1 caller closing its POSTs mid-body spends its --max-resets 20" wait_for 20 spent
CURLS=()
for i in $(seq 1 20); do
  curl -s --http1.1 --interface 127.0.0.2 --max-time 10 -o /dev/null -w '%{http_code}\n' \
    "http://127.0.0.1:$OUTR/slow?ms=300" >>"$WORK/other.codes" &
  CURLS+=($!)
done
wait "${CURLS[@]}"
expect_eq "... 20 HTTP/1.1 callers from another address beside it all get 200 (7 of 20 before)" \
  20 "$(grep -c '^200$' "$WORK/other.codes")"
touch "$WORK/midbody.stop"
wait "$MID_PID"
stop_proxy clientr

stop_proxy client
stop_proxy server
finish
