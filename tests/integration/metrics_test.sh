#!/usr/bin/env bash
# Metrics by identity (issue 13): known calls through real sidecar pairs
# (curl over h2c into client sidecars, mTLS between them) and the exact
# counts /metrics shows for them, by caller and callee SPIFFE ID, status,
# gRPC status and policy decision; the latency histogram; bytes; L4
# connections; the --metrics-max-peers cap and its "overflow" labels; the
# --metrics listener scraped from another network namespace (GET /metrics
# only), while the admin port keeps /metrics to loopback.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
source "$WISP_SRC/tests/lib/netns.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
PY=/usr/bin/python3
make_pki
p=$WORK/pki
for who in ns/a/sa/b ns/a/sa/c; do
  bash "$PKI" svid "$p/ca" "$p/${who##*/}" "$TD/$who" >/dev/null
done
cat >"$WORK/policy.yaml" <<YAML
apiVersion: wisp.dev/v1
kind: AuthorizationPolicy
metadata: {name: echo-only, namespace: shop}
spec:
  selector: {serviceAccount: orders}
  action: ALLOW
  rules:
  - from: [{principals: ["$TD/ns/a/sa/b", "$TD/ns/a/sa/c"]}]
    to: [{methods: ["POST"], paths: ["/echo"]}]
YAML

# msum TEXT NAME [LABEL=VALUE...]: the sum of NAME's samples whose labels
# include all those given ("" when none matches).
msum() {
  local text=$1 name=$2 sel="" a
  shift 2
  for a in "$@"; do sel="$sel${sel:+,}${a%%=*}=\"${a#*=}\""; done
  prom_sum "$text" "$name{$sel}"
}

APP_PORT=$(free_port) IN_PORT=$(free_port) ADM_S=$(free_port)
start_app app "$APP_PORT" || { not_ok "app starts"; finish; }
start_proxy server --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --admin "127.0.0.1:$ADM_S" \
  --policy "$WORK/policy.yaml" --metrics-max-peers 2
caller() { # caller NAME: a client sidecar with NAME's SVID; sets OUT_NAME and ADM_NAME
  local port adm
  port=$(free_port)
  adm=$(free_port)
  start_proxy "c_$1" --cert "$p/$1.crt" --key "$p/$1.key" --bundle "$p/ca/ca.crt" --admin "127.0.0.1:$adm" \
    --route "127.0.0.1:$port=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders"
  eval "OUT_$1=$port ADM_$1=$adm"
  wait_port "$port"
}
wait_port "$IN_PORT" && caller b && caller frontend && caller c || { not_ok "sidecars start"; finish; }
wait_port "$ADM_S" && wait_port "$ADM_b" || { not_ok "admin ports up"; finish; }

head -c 100 /dev/zero | tr '\0' x >"$WORK/body100"
h2() { curl -s --max-time 10 --http2-prior-knowledge -o /dev/null -w '%{http_code}' "$@"; }
# b: 3 allowed POST /echo of 100 bytes each (echoed back), 1 denied GET.
codes=""
for i in 1 2 3; do codes="$codes $(h2 --data-binary @"$WORK/body100" "http://127.0.0.1:$OUT_b/echo")"; done
codes="$codes $(h2 "http://127.0.0.1:$OUT_b/secret")"
expect_eq "b's calls answer 200 200 200 403" " 200 200 200 403" "$codes"
# frontend: one gRPC call, denied (200 with grpc-status 7).
gs=$(curl -s --max-time 10 --http2-prior-knowledge -D - -o /dev/null -X POST -H 'content-type: application/grpc' \
  -H 'te: trailers' --data-binary @/dev/null "http://127.0.0.1:$OUT_frontend/pkg.Svc/Get" | tr -d '\r' |
  awk -F': ' 'tolower($1) == "grpc-status" { print $2 }')
expect_eq "frontend's gRPC call is denied with grpc-status 7" 7 "$gs"
# c: the third distinct peer, beyond --metrics-max-peers 2.
expect_eq "c's call answers 200" 200 "$(h2 --data-binary @"$WORK/body100" "http://127.0.0.1:$OUT_c/echo")"

S="curl -s --max-time 5 http://127.0.0.1:$ADM_S/metrics"
settled() { sm=$($S); [ "$(msum "$sm" wisp_requests_total direction=inbound)" = 6 ]; }
wait_for 10 settled || not_ok "the server counts 6 inbound requests" "$(printf '%s\n' "$sm" | grep ^wisp_requests_total)"
B=(direction=inbound reporter=destination source_principal="$TD/ns/a/sa/b" source_workload=b
  source_workload_namespace=a source_trust_domain=shop.local destination_workload=orders
  destination_workload_namespace=shop destination_principal="$TD/ns/shop/sa/orders")
expect_eq "inbound: 3 allowed 200s from b" 3 \
  "$(msum "$sm" wisp_requests_total "${B[@]}" response_code=200 code=2xx grpc_response_status= decision=allow)"
expect_eq "inbound: 1 denied 403 from b" 1 "$(msum "$sm" wisp_requests_total "${B[@]}" response_code=403 decision=deny)"
expect_eq "inbound: nothing else from b" 4 "$(msum "$sm" wisp_requests_total "${B[@]}")"
expect_eq "inbound: frontend's gRPC call denied with grpc_response_status 7" 1 \
  "$(msum "$sm" wisp_requests_total direction=inbound source_workload=frontend source_workload_namespace=shop \
    response_code=200 grpc_response_status=7 decision=deny)"
expect_eq "inbound: the third peer counts under overflow labels" 1 \
  "$(msum "$sm" wisp_requests_total direction=inbound source_principal=overflow source_workload=overflow \
    response_code=200 decision=allow)"
expect_eq "c's ID appears nowhere (--metrics-max-peers 2)" "" "$(printf '%s\n' "$sm" | grep -c 'sa/c"' | grep -v '^0$')"
expect_eq "wisp_metrics_peers is 2" 2 "$(msum "$sm" wisp_metrics_peers)"
expect_eq "wisp_metrics_overflow_total is 1" 1 "$(msum "$sm" wisp_metrics_overflow_total)"
expect_eq "request bytes of b's allowed calls: 300" 300 \
  "$(msum "$sm" wisp_request_bytes_total "${B[@]}" decision=allow)"
expect_eq "response bytes of b's allowed calls: 300 (echoed)" 300 \
  "$(msum "$sm" wisp_response_bytes_total "${B[@]}" decision=allow)"
H=wisp_request_duration_milliseconds
expect_eq "histogram: _count of b's allowed calls is 3" 3 "$(msum "$sm" ${H}_count "${B[@]}" decision=allow)"
expect_eq "histogram: le=+Inf bucket is 3" 3 "$(msum "$sm" ${H}_bucket "${B[@]}" decision=allow le=+Inf)"
expect_eq "histogram: le=3600000 bucket is 3" 3 "$(msum "$sm" ${H}_bucket "${B[@]}" decision=allow le=3600000)"
mono=$(printf '%s\n' "$sm" | grep "^${H}_bucket{" | grep 'sa/b"' | grep 'decision="allow"' |
  awk '{ v = $NF; if (v < prev) bad = 1; prev = v } END { print bad ? "no" : "yes" }')
expect_eq "histogram: buckets are cumulative (never decrease)" yes "$mono"
sum=$(msum "$sm" ${H}_sum "${B[@]}" decision=allow)
check "histogram: _sum is a positive number of milliseconds ($sum)" $PY -c "import sys; sys.exit(not float('$sum') > 0)"
expect_match "the histogram is typed histogram" "# TYPE $H histogram" "$sm"

# The caller's sidecar: outbound, source is itself, destination is orders.
cm=$(curl -s --max-time 5 "http://127.0.0.1:$ADM_b/metrics")
O=(direction=outbound reporter=source source_workload=b source_principal="$TD/ns/a/sa/b"
  destination_workload=orders destination_principal="$TD/ns/shop/sa/orders" destination_trust_domain=shop.local)
expect_eq "outbound (b's sidecar): 3 200s to orders" 3 "$(msum "$cm" wisp_requests_total "${O[@]}" response_code=200)"
expect_eq "outbound (b's sidecar): 1 403 from orders, decided there" 1 \
  "$(msum "$cm" wisp_requests_total "${O[@]}" response_code=403 decision=allow)"
expect_eq "the old query by direction and status class still adds up" 3 \
  "$(msum "$cm" wisp_requests_total direction=outbound code=2xx)"

# ---- L4: a caller with b's SVID speaks ALPN wisp-l4 to an echo app ----
ECHO_PORT=$(free_port) IN4=$(free_port) ADM4=$(free_port)
start_bg "$WORK/echo" $PY -c '
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
def serve(c):
    while True:
        d = c.recv(65536)
        if not d: break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()' "$ECHO_PORT"
start_proxy l4server --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$IN4" --app "127.0.0.1:$ECHO_PORT" --admin "127.0.0.1:$ADM4"
wait_port "$ECHO_PORT" && wait_port "$IN4" && wait_port "$ADM4" || { not_ok "L4 server starts"; finish; }
got=$(timeout 20 $PY -c '
import socket, ssl, sys
port, d = int(sys.argv[1]), sys.argv[2]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False
ctx.load_verify_locations(d + "/ca/ca.crt"); ctx.load_cert_chain(d + "/b.crt", d + "/b.key")
ctx.set_alpn_protocols(["wisp-l4"])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
s.sendall(b"y" * 1000)
got = b""
while len(got) < 1000:
    chunk = s.recv(4096)
    if not chunk: break
    got += chunk
print(len(got)); s.close()' "$IN4" "$p" 2>"$WORK/l4.err")
expect_eq "the L4 caller gets its 1000 bytes echoed" 1000 "$got"
L4=(direction=inbound source_principal="$TD/ns/a/sa/b" destination_workload=orders decision=allow)
l4closed() { lm=$(curl -s --max-time 5 "http://127.0.0.1:$ADM4/metrics"); [ "$(msum "$lm" wisp_tcp_connections_closed_total "${L4[@]}")" = 1 ]; }
check "L4: one connection closed from b" wait_for 10 l4closed
expect_eq "L4: one connection opened from b" 1 "$(msum "$lm" wisp_tcp_connections_opened_total "${L4[@]}")"
expect_eq "L4: 1000 bytes received from b" 1000 "$(msum "$lm" wisp_tcp_received_bytes_total "${L4[@]}")"
expect_eq "L4: 1000 bytes sent back to b" 1000 "$(msum "$lm" wisp_tcp_sent_bytes_total "${L4[@]}")"
expect_eq "L4: no HTTP request counted" "" "$(msum "$lm" wisp_requests_total)"

# ---- --metrics: a scraper in another pod (network namespace) ----
if ! netns_setup 2; then
  skip "the metrics port scraped from another network namespace" "$NETNS_SKIP_REASON"
  finish
fi
start_bg "$WORK/nsproxy" ip netns exec "$(netns_name pod1)" "$WISP_PROXY" --cert "$p/orders.crt" \
  --key "$p/orders.key" --bundle "$p/ca/ca.crt" --inbound 0.0.0.0:15006 --app 127.0.0.1:8080 \
  --admin 0.0.0.0:15000 --metrics 0.0.0.0:15090
PROXY_PIDS+=("$LAST_PID:nsproxy")
pod1_up() { netns_listens pod1 15006 15000 15090; }
check "the proxy in pod1 listens on 15006, 15000 and --metrics 15090" wait_for 10 pod1_up
scrape() { netns_exec pod2 curl -s --max-time 5 -o "$WORK/scrape.out" -w '%{http_code}' "$@"; }
expect_eq "pod2 scrapes http://10.77.0.11:15090/metrics: 200" 200 "$(scrape http://10.77.0.11:15090/metrics)"
expect_match "... Prometheus text with the identity metrics" '# TYPE wisp_request_duration_milliseconds histogram' \
  "$(cat "$WORK/scrape.out")"
for path in /certs /config /healthz /ready /nope; do
  expect_eq "pod2: $path on the metrics port is 404" 404 "$(scrape "http://10.77.0.11:15090$path")"
done
expect_match "... saying what the port serves" 'serves GET /metrics only' "$(cat "$WORK/scrape.out")"
expect_eq "pod2: POST /drain on the metrics port is 404" 404 "$(scrape -X POST http://10.77.0.11:15090/drain)"
expect_eq "pod2: POST /metrics is 405" 405 "$(scrape -X POST http://10.77.0.11:15090/metrics)"
expect_eq "pod2: /metrics on the admin port stays refused (403)" 403 "$(scrape http://10.77.0.11:15000/metrics)"
expect_eq "pod2: the admin port still answers /ready" 200 "$(scrape http://10.77.0.11:15000/ready)"
expect_eq "/config names the metrics listener and the caps" '0.0.0.0:15090 256 2048' \
  "$(netns_exec pod1 curl -s --max-time 5 http://127.0.0.1:15000/config | $PY -c 'import json, sys
c = json.load(sys.stdin); print(c["metrics"], c["metrics_max_peers"], c["metrics_max_series"])')"
expect_eq "the proxy did not drain" 0 \
  "$(msum "$(netns_exec pod1 curl -s --max-time 5 http://127.0.0.1:15000/metrics)" wisp_draining)"
finish
