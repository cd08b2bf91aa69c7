#!/usr/bin/env bash
# The wisp demo: the control agent, two apps each with its wisp sidecar, and
# one real mTLS call between them, on 127.0.0.1. Installs what is missing
# and builds first.
#
#   frontend app --h2c--> wisp(frontend) ==mTLS==> wisp(orders) --h2c--> orders app
#                              \_____ SVIDs and policy from wisp-agent ____/
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
bash deploy/install-deps.sh
bazel build --color=no --curses=no --noshow_progress //proxy:wisp-proxy //control:wisp-agent //control:wispctl 2>&1 |
  grep -E 'ERROR|error:' && exit 1
BIN=$(bazel info --color=no bazel-bin 2>/dev/null)
PROXY=$BIN/proxy/wisp-proxy
AGENT=$BIN/control/wisp-agent
WISPCTL=$BIN/control/wispctl
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
SOCK=$DEMO/agent.sock

echo "== starting wisp-agent (CA and policy source; state in $DEMO/state, API on unix:$SOCK)"
"$AGENT" --state-dir "$DEMO/state" --listen "unix:$SOCK" --trust-domain shop.local --svid-ttl 1h \
  >"$DEMO/agent.log" 2>"$DEMO/agent.err" &
PIDS+=($!)
for _ in $(seq 1 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
ORDERS_TOKEN=$("$WISPCTL" --agent "unix://$SOCK" token create --spiffe-id "$TD/ns/shop/sa/orders" 2>/dev/null)
FRONTEND_TOKEN=$("$WISPCTL" --agent "unix://$SOCK" token create --spiffe-id "$TD/ns/shop/sa/frontend" 2>/dev/null)
echo "   join tokens created with: wispctl token create --spiffe-id $TD/ns/shop/sa/orders (and .../frontend)"

echo "== starting the orders app (h2c on 127.0.0.1:18080) and its sidecar (mTLS on 127.0.0.1:18006)"
node tests/node/app.js --port 18080 --name orders >"$DEMO/orders-app.log" 2>&1 &
PIDS+=($!)
"$PROXY" --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/orders" --join-token "$ORDERS_TOKEN" --admin 127.0.0.1:18500 \
  --inbound 127.0.0.1:18006 --app 127.0.0.1:18080 >"$DEMO/orders-sidecar.log" 2>"$DEMO/orders-sidecar.err" &
PIDS+=($!)
echo "== starting the frontend app (h2c on 127.0.0.1:18081) and its sidecar (route 127.0.0.1:18001 -> orders)"
node tests/node/app.js --port 18081 --name frontend >"$DEMO/frontend-app.log" 2>&1 &
PIDS+=($!)
"$PROXY" --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/frontend" --join-token "$FRONTEND_TOKEN" --admin 127.0.0.1:18501 \
  --route "127.0.0.1:18001=127.0.0.1:18006,id=$TD/ns/shop/sa/orders" \
  --inbound 127.0.0.1:18007 --app 127.0.0.1:18081 >"$DEMO/frontend-sidecar.log" 2>"$DEMO/frontend-sidecar.err" &
PIDS+=($!)
for p in 18080 18006 18081 18001 18500 18501; do wait_port $p; done
for a in 18500 18501; do # ready = holding an SVID from the agent
  for _ in $(seq 1 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$a/ready")" = 200 ] && break; sleep 0.1; done
done
echo "   both sidecars got their SVIDs from the agent: $(curl -s http://127.0.0.1:18500/certs | grep -o '"serial":"[0-9a-f]*"')"

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
echo "== the agent pushes a policy; the orders sidecar enforces it on the next request"
cat >"$DEMO/policy.yaml" <<YAML
apiVersion: wisp.dev/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: shop}
spec:
  selector: {serviceAccount: orders}
  action: DENY
  rules:
  - to: [{paths: ["/admin/*"]}]
YAML
echo "\$ wispctl apply -f policy.yaml"
"$WISPCTL" --agent "unix://$SOCK" apply -f "$DEMO/policy.yaml"
for _ in $(seq 1 50); do grep -q '"event":"applied","source":"agent"' "$DEMO/orders-sidecar.err" && break; sleep 0.1; done
echo "\$ curl --http2-prior-knowledge http://127.0.0.1:18001/admin/users"
curl -s --http2-prior-knowledge http://127.0.0.1:18001/admin/users
echo
echo "== wispctl status"
"$WISPCTL" --agent "unix://$SOCK" status
echo
echo "== wispctl check --proxy 127.0.0.1:18501 (the frontend's sidecar)"
"$WISPCTL" --agent "unix://$SOCK" check --proxy 127.0.0.1:18501 || echo "(wispctl check: a check failed, see above)"
grep -q "URI=$TD/ns/shop/sa/frontend" "$DEMO/body" && echo && echo "demo ok: orders saw the caller as $TD/ns/shop/sa/frontend over mTLS"
