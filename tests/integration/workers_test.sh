#!/usr/bin/env bash
# --workers 2 (issue 15): an mTLS pair whose proxies run two data-plane
# workers each. Callers are spread over both workers (each counts its own
# accepts in /metrics), /metrics adds the workers' counters up to the
# requests made, a policy changed after start is enforced on new
# connections on both workers and on the pooled ones, rotated certificate
# files are served on new connections by both, SIGTERM lets requests in
# flight on both workers finish and the process exits 0. Bad --workers
# values are refused in words. A rapid-reset flood over 4 workers leaves
# the process serving, scraped and stoppable.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
make_pki
p=$WORK/pki

# --- bad values ---
for v in 0 -1 65 two; do
  out=$("$WISP_PROXY" --workers "$v" --app 127.0.0.1:1 2>&1)
  rc=$?
  expect_eq "--workers $v: exit 2" 2 "$rc"
  expect_match "... saying what is expected" "^wisp-proxy: --workers $v: expected a count of threads from 1 to 64$" "$out"
done
out=$(WISP_WORKERS=0 "$WISP_PROXY" --app 127.0.0.1:1 2>&1)
expect_match "WISP_WORKERS=0 is refused the same way" "--workers 0: expected a count of threads from 1 to 64" "$out"

POLICY=$WORK/policy.yaml
allow_all() {
  cat >"$POLICY.tmp" <<YAML
apiVersion: wisp.dev/v1
kind: AuthorizationPolicy
metadata: {name: orders, namespace: shop}
spec:
  selector: {serviceAccount: orders}
  action: ALLOW
  rules:
  - from: [{principals: ["$TD/ns/shop/sa/frontend"]}]
YAML
  mv "$POLICY.tmp" "$POLICY"
}
deny_secret() {
  cat >>"$POLICY.tmp" <<YAML
---
apiVersion: wisp.dev/v1
kind: AuthorizationPolicy
metadata: {name: no-secret, namespace: shop}
spec:
  selector: {serviceAccount: orders}
  action: DENY
  rules:
  - to: [{paths: ["/secret/*"]}]
YAML
  mv "$POLICY.tmp" "$POLICY"
}
allow_all

# The server's SVID files are copies, rotated below.
cp "$p/orders.crt" "$WORK/srv.crt"
cp "$p/orders.key" "$WORK/srv.key"
APP_PORT=$(free_port) IN_PORT=$(free_port) OUT_PORT=$(free_port) SADM=$(free_port) CADM=$(free_port)
start_app app "$APP_PORT"
start_proxy server --workers 2 --cert "$WORK/srv.crt" --key "$WORK/srv.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --policy "$POLICY" --admin "127.0.0.1:$SADM"
start_proxy client --workers 2 --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" \
  --route "127.0.0.1:$OUT_PORT=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders" --admin "127.0.0.1:$CADM"
wait_port "$IN_PORT" && wait_port "$OUT_PORT" && wait_port "$SADM" && wait_port "$CADM"
check "the server says it runs 2 workers" grep -q '"msg":"2 workers: each with its own loop on SO_REUSEPORT listeners"' \
  "$WORK/server.err"
# Worker 0 is the main thread (its TID is the PID); worker 1 is named.
WORKER1=$(grep -lx wisp-worker-1 /proc/$PID_server/task/*/comm | cut -d/ -f5)
check "the server runs worker 1 on a thread of its own, named wisp-worker-1" [ -n "$WORKER1" ]
check "... and no worker 2" [ -z "$(grep -lx wisp-worker-2 /proc/$PID_server/task/*/comm)" ]
expect_eq "... and its inbound port 2 listening sockets (SO_REUSEPORT)" 2 "$(ss -Htln "sport = :$IN_PORT" | wc -l)"

metrics() { curl -s --max-time 10 "http://127.0.0.1:$1/metrics"; }
worker_accepts() { prom_sum "$(metrics "$1")" "wisp_worker_connections_accepted_total{worker=\"$2\"}"; }
worker_requests() { prom_sum "$(metrics "$1")" "wisp_worker_requests_started_total{worker=\"$2\"}"; }
# direct N PATH: N mTLS callers of the server's inbound port (curl, one
# connection each, as frontend); prints their status codes, one a line.
direct() {
  local i
  for i in $(seq "$1"); do
    curl -sk --max-time 10 --http2 --cert "$p/frontend.crt" --key "$p/frontend.key" -o /dev/null -w '%{http_code}\n' \
      "https://127.0.0.1:$IN_PORT$2" &
  done
  wait
}

# --- many callers, both workers ---
N=2000 C=40
h2load -n $N -c $C -m 4 "http://127.0.0.1:$OUT_PORT/hello" >"$WORK/h2load.out" 2>&1
expect_match "h2load: $N requests through the pair, all 2xx" "status codes: $N 2xx" "$(cat "$WORK/h2load.out")"
cm=$(metrics "$CADM")
expect_eq "client /metrics: requests started = the $N made (the workers' sum)" "$N" \
  "$(prom_sum "$cm" 'wisp_requests_started_total')"
expect_eq "... = the sum of the per-worker counts" "$N" "$(prom_sum "$cm" 'wisp_worker_requests_started_total')"
expect_eq "... and wisp_requests_total by identity counts them all" "$N" \
  "$(prom_sum "$cm" 'wisp_requests_total{direction="outbound"}')"
expect_eq "client: the $C callers' connections accepted, all workers" "$C" \
  "$(prom_sum "$cm" 'wisp_connections_accepted_total')"
a0=$(prom_sum "$cm" 'wisp_worker_connections_accepted_total{worker="0"}')
a1=$(prom_sum "$cm" 'wisp_worker_connections_accepted_total{worker="1"}')
check "client: both workers accepted callers (worker 0: $a0, worker 1: $a1)" [ "${a0:-0}" -gt 0 -a "${a1:-0}" -gt 0 ]
r0=$(prom_sum "$cm" 'wisp_worker_requests_started_total{worker="0"}')
r1=$(prom_sum "$cm" 'wisp_worker_requests_started_total{worker="1"}')
check "client: both workers served requests (worker 0: $r0, worker 1: $r1)" [ "${r0:-0}" -gt 0 -a "${r1:-0}" -gt 0 ]
codes=$(direct 40 /hello | sort | uniq -c | awk '{print $1 "x" $2}' | tr '\n' ' ')
expect_eq "40 direct mTLS callers of the server: all 200" "40x200 " "$codes"
sm=$(metrics "$SADM")
expect_eq "server /metrics: requests = the pair's $N + 40 direct" "$((N + 40))" \
  "$(prom_sum "$sm" 'wisp_requests_started_total')"
expect_eq "... and by identity, inbound, all 200" "$((N + 40))" \
  "$(prom_sum "$sm" 'wisp_requests_total{direction="inbound",response_code="200"}')"
s0=$(prom_sum "$sm" 'wisp_worker_connections_accepted_total{worker="0"}')
s1=$(prom_sum "$sm" 'wisp_worker_connections_accepted_total{worker="1"}')
check "server: both workers accepted callers (worker 0: $s0, worker 1: $s1)" [ "${s0:-0}" -gt 0 -a "${s1:-0}" -gt 0 ]
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID_server/task/$1/stat"; }
# CPU time is sampled per clock tick: a few requests may not show, so it
# is reported, not asserted (the counts above are exact).
echo "# server CPU ticks so far: worker 0 $(cpu_ticks "$PID_server"), worker 1 $(cpu_ticks "$WORKER1")"

# --- a policy changed after start: both workers, new and pooled connections ---
expect_eq "before the change, /secret/x is served" 200 \
  "$(curl -s --max-time 10 --http2-prior-knowledge -o /dev/null -w '%{http_code}' "http://127.0.0.1:$OUT_PORT/secret/x")"
cp "$POLICY" "$POLICY.tmp"
deny_secret
check "the server applies the new policy" wait_for 10 grep -q '"event":"applied".*"rules":2' "$WORK/server.err"
# Worker 0 hands it to worker 1 before it sleeps again, and worker 1 puts
# it in force before it reads anything more: before a new caller's
# handshake is through.
before0=$(worker_requests "$SADM" 0)
before1=$(worker_requests "$SADM" 1)
codes=$(direct 40 /secret/x | sort | uniq -c | awk '{print $1 "x" $2}' | tr '\n' ' ')
expect_eq "40 new direct connections: every /secret/x is 403" "40x403 " "$codes"
after0=$(worker_requests "$SADM" 0)
after1=$(worker_requests "$SADM" 1)
check "... and both server workers judged some ($((after0 - before0)) and $((after1 - before1)))" \
  [ $((after0 - before0)) -gt 0 -a $((after1 - before1)) -gt 0 ]
h2load -n 400 -c 20 -m 2 "http://127.0.0.1:$OUT_PORT/secret/x" >"$WORK/h2load2.out" 2>&1
expect_match "through the pair's pooled connections too: 400 x 403" "status codes: 0 2xx, 0 3xx, 400 4xx" \
  "$(cat "$WORK/h2load2.out")"
expect_eq "... while /hello still passes" 200 \
  "$(curl -s --max-time 10 --http2-prior-knowledge -o /dev/null -w '%{http_code}' "http://127.0.0.1:$OUT_PORT/hello")"

# --- certificate rotation: new connections on both workers get the new SVID ---
bash "$PKI" svid "$p/ca" "$WORK/new" "$TD/ns/shop/sa/orders" >/dev/null
new_serial=$(openssl x509 -in "$WORK/new.crt" -noout -serial)
old_serial=$(openssl x509 -in "$WORK/srv.crt" -noout -serial)
check "the new SVID has another serial" [ "$new_serial" != "$old_serial" ]
cp "$WORK/new.key" "$WORK/srv.key.tmp" && cp "$WORK/new.crt" "$WORK/srv.crt.tmp"
mv "$WORK/srv.key.tmp" "$WORK/srv.key" && mv "$WORK/srv.crt.tmp" "$WORK/srv.crt"
check "the server reloads its certificate" wait_for 10 grep -q '"type":"cert","event":"reloaded"' "$WORK/server.err"
served_serial() {
  echo | timeout 5 openssl s_client -connect "127.0.0.1:$IN_PORT" -alpn h2 -cert "$p/frontend.crt" \
    -key "$p/frontend.key" 2>/dev/null | openssl x509 -noout -serial 2>/dev/null
}
# Worker 1 takes the new credentials on worker 0's next loop iteration;
# the first probe may land before: wait for one, then count 30 more.
new_served() { [ "$(served_serial)" = "$new_serial" ]; }
wait_for 5 new_served
before0=$(worker_accepts "$SADM" 0)
before1=$(worker_accepts "$SADM" 1)
fresh=0
for i in $(seq 30); do [ "$(served_serial)" = "$new_serial" ] && fresh=$((fresh + 1)); done
expect_eq "30 new connections: every one is served the new SVID" 30 "$fresh"
after0=$(worker_accepts "$SADM" 0)
after1=$(worker_accepts "$SADM" 1)
check "... by both server workers ($((after0 - before0)) and $((after1 - before1)) of them)" \
  [ $((after0 - before0)) -gt 0 -a $((after1 - before1)) -gt 0 ]

# --- callers misbehaving on every worker at once ---
# A rapid-reset flood over 4 workers makes every worker log (and hold
# back) lines of callers it terminated: each worker's limiters are its
# own. Shared ones were linked into two threads' pending lists at once,
# which turned into a cycle: every worker spun in wisp_log_limit_flush
# holding its loop lock, and /metrics, SIGTERM and all traffic hung.
RST_PORT=$(free_port) RADM=$(free_port)
start_proxy resets --workers 4 --max-resets 200 --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" \
  --route "127.0.0.1:$RST_PORT=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders" --admin "127.0.0.1:$RADM"
wait_port "$RST_PORT" && wait_port "$RADM"
abuse=$(/usr/bin/python3 "$WISP_SRC/tests/integration/h2_abuse.py" rapid-reset --port "$RST_PORT" --conns 8 --seconds 5)
expect_match "a rapid-reset flood over 4 workers is cut off (GOAWAY ENHANCE_YOUR_CALM)" '"ENHANCE_YOUR_CALM": [1-9]' "$abuse"
check "... and afterwards /metrics answers" curl -sf --max-time 10 -o /dev/null "http://127.0.0.1:$RADM/metrics"
expect_eq "... and a well-behaved caller is served" 200 \
  "$(curl -s --max-time 10 --http2-prior-knowledge -o /dev/null -w '%{http_code}' "http://127.0.0.1:$RST_PORT/hello")"
kill -TERM "$PID_resets"
ended() { # gone (bash reaps its children early), or a zombie
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)
  [ -z "$st" ] || [ "$st" = Z ]
}
check "... and SIGTERM ends it within 15 s" wait_for 15 ended "$PID_resets"
kill -KILL "$PID_resets" 2>/dev/null
stop_proxy resets

# --- SIGTERM: requests in flight on both workers finish, exit 0 ---
before0=$(worker_requests "$SADM" 0)
before1=$(worker_requests "$SADM" 1)
for i in $(seq 16); do
  curl -sk --max-time 20 --http2 --cert "$p/frontend.crt" --key "$p/frontend.key" -o /dev/null \
    -w '%{http_code}\n' "https://127.0.0.1:$IN_PORT/slow?ms=1500" >"$WORK/slow.$i" &
  SLOW+=($!)
done
inflight() { [ $(($(worker_requests "$SADM" 0) + $(worker_requests "$SADM" 1) - before0 - before1)) -eq 16 ]; }
check "16 slow requests in flight" wait_for 10 inflight
mid0=$(worker_requests "$SADM" 0)
mid1=$(worker_requests "$SADM" 1)
check "... on both server workers ($((mid0 - before0)) and $((mid1 - before1)))" \
  [ $((mid0 - before0)) -gt 0 -a $((mid1 - before1)) -gt 0 ]
kill -TERM "$PID_server"
for pid in "${SLOW[@]}"; do wait "$pid"; done
expect_eq "every slow request in flight at SIGTERM is answered 200" "16" "$(cat "$WORK"/slow.* | grep -c '^200$')"
check "both workers drained (one 'draining' line each)" [ "$(grep -c '"msg":"draining' "$WORK/server.err")" -eq 2 ]
stop_proxy server
stop_proxy client
finish
