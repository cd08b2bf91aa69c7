#!/usr/bin/env bash
# The wisp demo: two apps, each with its wisp sidecar, and one real mTLS call
# between them, on 127.0.0.1. Installs what is missing and builds first.
#
#   frontend app --h2c--> wisp(frontend) ==mTLS==> wisp(orders) --h2c--> orders app
#
# Certificates come from deploy/wisp-pki.sh (a throwaway CA); the control
# agent takes this over once it lands.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
bash deploy/install-deps.sh
bazel build --color=no --curses=no --noshow_progress //proxy:wisp-proxy 2>&1 | grep -E 'ERROR|error:' && exit 1
PROXY=$(readlink -f bazel-bin/proxy/wisp-proxy)
DEMO=$(mktemp -d /tmp/wisp-demo.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$DEMO"
}
trap cleanup EXIT
wait_port() {
  for _ in $(seq 1 100); do
    ss -Htln "sport = :$1" | grep -q . && return 0
    sleep 0.1
  done
  echo "demo: nothing listens on port $1" >&2
  exit 1
}
TD=spiffe://shop.local
PKI=deploy/wisp-pki.sh
bash $PKI ca "$DEMO/ca" >/dev/null
bash $PKI svid "$DEMO/ca" "$DEMO/frontend" "$TD/ns/shop/sa/frontend" >/dev/null
bash $PKI svid "$DEMO/ca" "$DEMO/orders" "$TD/ns/shop/sa/orders" >/dev/null

echo "== starting the orders app (h2c on 127.0.0.1:18080) and its sidecar (mTLS on 127.0.0.1:18006)"
node tests/node/app.js --port 18080 --name orders >"$DEMO/orders-app.log" 2>&1 &
PIDS+=($!)
"$PROXY" --cert "$DEMO/orders.crt" --key "$DEMO/orders.key" --bundle "$DEMO/ca/ca.crt" \
  --inbound 127.0.0.1:18006 --app 127.0.0.1:18080 >"$DEMO/orders-sidecar.log" 2>"$DEMO/orders-sidecar.err" &
PIDS+=($!)
echo "== starting the frontend app (h2c on 127.0.0.1:18081) and its sidecar (route 127.0.0.1:18001 -> orders)"
node tests/node/app.js --port 18081 --name frontend >"$DEMO/frontend-app.log" 2>&1 &
PIDS+=($!)
"$PROXY" --cert "$DEMO/frontend.crt" --key "$DEMO/frontend.key" --bundle "$DEMO/ca/ca.crt" \
  --route "127.0.0.1:18001=127.0.0.1:18006,id=$TD/ns/shop/sa/orders" \
  --inbound 127.0.0.1:18007 --app 127.0.0.1:18081 >"$DEMO/frontend-sidecar.log" 2>"$DEMO/frontend-sidecar.err" &
PIDS+=($!)
for p in 18080 18006 18081 18001; do wait_port $p; done

echo
echo "== the frontend calls orders in plaintext h2c; the sidecars carry it over mTLS"
echo "\$ curl --http2-prior-knowledge http://127.0.0.1:18001/orders/42"
curl -s --http2-prior-knowledge -D "$DEMO/headers" http://127.0.0.1:18001/orders/42 >"$DEMO/body"
head -1 "$DEMO/headers"
echo "orders app saw: $(grep -o '"x-forwarded-client-cert":"[^"]*"' "$DEMO/body")"
sleep 0.3
echo
echo "== frontend sidecar log (outbound: the identity it verified)"
grep '"type":"request"' "$DEMO/frontend-sidecar.log"
echo "== orders sidecar log (inbound: the caller's SPIFFE ID)"
grep '"type":"request"' "$DEMO/orders-sidecar.log"
echo
echo "== and a caller the route does not trust is refused, in plain words:"
"$PROXY" --cert "$DEMO/frontend.crt" --key "$DEMO/frontend.key" --bundle "$DEMO/ca/ca.crt" \
  --route "127.0.0.1:18002=127.0.0.1:18006,id=$TD/ns/shop/sa/payments" >/dev/null 2>&1 &
PIDS+=($!)
wait_port 18002
curl -s --http2-prior-knowledge -i http://127.0.0.1:18002/orders/42 | grep -E '^HTTP|^x-wisp-error'
grep -q "URI=$TD/ns/shop/sa/frontend" "$DEMO/body" && echo && echo "demo ok: orders saw the caller as $TD/ns/shop/sa/frontend over mTLS"
