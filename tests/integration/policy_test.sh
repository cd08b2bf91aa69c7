#!/usr/bin/env bash
# Authorization policy and STRICT/PERMISSIVE with real clients: curl sees
# 403, @grpc/grpc-js sees PERMISSION_DENIED, a plaintext caller is served or
# denied by policy in PERMISSIVE mode, a policy change mid-traffic changes
# decisions without dropping a connection, a bad policy is refused whole.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
WISPCTL=$(wisp_find_bin wispctl "$@") || exit 1
make_pki
p=$WORK/pki
for who in ns/shop/sa/intruder ns/ops/sa/admin; do
  bash "$PKI" svid "$p/ca" "$p/${who##*/}" "$TD/$who" >/dev/null
done
POLICY=$WORK/policy.yaml
write_policy() { # write_policy [extra YAML documents]: the base policy plus extras
  cat >"$POLICY.tmp" <<YAML
apiVersion: wisp.dev/v1
kind: AuthorizationPolicy
metadata: {name: orders-read, namespace: shop}
spec:
  selector: {serviceAccount: orders}
  action: ALLOW
  rules:
  - from: [{principals: ["$TD/ns/shop/sa/frontend"]}]
    to: [{methods: ["GET"], paths: ["/orders/*"]}]
  - from: [{principals: ["$TD/ns/ops/*"]}]
  - from: [{principals: ["$TD/ns/shop/sa/frontend"]}]
    to: [{paths: ["/wisp.test.Test/Unary"]}]
  - to: [{paths: ["/public/*"]}]
---
apiVersion: wisp.dev/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: shop}
spec:
  selector: {serviceAccount: orders}
  action: DENY
  rules:
  - to: [{paths: ["/admin/*"]}]
${1:-}
YAML
  mv "$POLICY.tmp" "$POLICY"
}
write_policy

APP_PORT=$(free_port) GRPC_PORT=$(free_port) IN_PORT=$(free_port) GIN_PORT=$(free_port)
start_app app "$APP_PORT"
start_bg "$WORK/grpc" node "$NODE_DIR/grpc_server.js" --port "$GRPC_PORT"
wait_port "$GRPC_PORT"
ADM=$(free_port)
start_proxy server --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" --admin "127.0.0.1:$ADM" \
  --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --policy "$POLICY"
start_proxy gserver --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" --admin off \
  --inbound "127.0.0.1:$GIN_PORT" --app "127.0.0.1:$GRPC_PORT" --policy "$POLICY"
caller() { # caller NAME: a client proxy with NAME's SVID; sets PORT_NAME (and GPORT_NAME for gRPC)
  local port gport
  port=$(free_port)
  gport=$(free_port)
  start_proxy "c_$1" --cert "$p/$1.crt" --key "$p/$1.key" --bundle "$p/ca/ca.crt" --admin off \
    --route "127.0.0.1:$port=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders" \
    --route "127.0.0.1:$gport=127.0.0.1:$GIN_PORT,id=$TD/ns/shop/sa/orders"
  eval "PORT_$1=$port GPORT_$1=$gport"
  wait_port "$port"
}
caller frontend
caller intruder
caller admin
wait_port "$IN_PORT" && wait_port "$GIN_PORT"
code() { curl -s --max-time 10 --http2-prior-knowledge -o "$WORK/body" -w '%{http_code}' "$@"; }

# --- decisions, seen by curl ---
expect_eq "frontend GET /orders/1: allowed" 200 "$(code "http://127.0.0.1:$PORT_frontend/orders/1")"
expect_eq "frontend POST /orders/1: 403 (only GET is allowed)" 403 "$(code -d x "http://127.0.0.1:$PORT_frontend/orders/1")"
expect_match "the 403 says why" 'RBAC: access denied \(no ALLOW rule matched\)' "$(cat "$WORK/body")"
expect_eq "frontend GET /payments: 403 (path not allowed)" 403 "$(code "http://127.0.0.1:$PORT_frontend/payments")"
expect_eq "intruder GET /orders/1: 403 (principal not allowed)" 403 "$(code "http://127.0.0.1:$PORT_intruder/orders/1")"
expect_eq "ops admin (ns/ops/*) GET /anything: allowed" 200 "$(code "http://127.0.0.1:$PORT_admin/anything")"
expect_eq "ops admin GET /admin/x: 403, DENY is checked first" 403 "$(code "http://127.0.0.1:$PORT_admin/admin/x")"
expect_match "... and says which policy denied it" 'denied by DENY policy: policy shop/no-admin, rule 0' "$(cat "$WORK/body")"
for path in "/x/../admin/x" "//admin/x" "/./admin/x" "/%2e%2e/admin/x" "/x/%2Fadmin"; do
  expect_eq "a path that could mean something else to the app ($path): 400, never the DENY bypass" 400 \
    "$(code --path-as-is "http://127.0.0.1:$PORT_admin$path")"
done
expect_eq "a query string does not change the path match" 200 "$(code "http://127.0.0.1:$PORT_frontend/orders/1?x=/admin/")"
sleep 0.3
expect_match "the log has the allow decision with policy and rule" \
  '"path":"/orders/1","status":200.*"decision":"allow","policy":"shop/orders-read","rule":0' "$(cat "$WORK/server.out")"
expect_match "the log has the deny decision with policy and rule" \
  '"path":"/admin/x","status":403.*"decision":"deny","policy":"shop/no-admin","rule":0' "$(cat "$WORK/server.out")"
check "the app logs the requests that reach it" grep -q '"path":"/orders/1"' "$WORK/app.out"
if grep -q '"path":"/admin/x\|"path":"/payments' "$WORK/app.out"; then not_ok "denied requests never reach the app"
else ok "denied requests never reach the app"; fi

# --- decisions, seen by @grpc/grpc-js ---
grpc_call() { # grpc_call PORT METHOD: prints code=N details=...
  (cd "$NODE_DIR" && node -e '
const {loadTestService, grpc} = require("./grpc_common");
const Test = loadTestService().Test;
const c = new Test(process.argv[1], grpc.credentials.createInsecure());
c[process.argv[2]]({text: "x", count: 1}, {deadline: Date.now() + 10000}, (err) => {
  console.log(err ? `code=${err.code} details=${err.details}` : "code=0"); process.exit(0); });' "127.0.0.1:$1" "$2")
}
expect_eq "gRPC Unary allowed for frontend" "code=0" "$(grpc_call "$GPORT_frontend" Unary)"
expect_match "gRPC Fail method denied: PERMISSION_DENIED with a message" 'code=7 details=RBAC: access denied' \
  "$(grpc_call "$GPORT_frontend" Fail)"
expect_match "gRPC from the intruder: PERMISSION_DENIED" 'code=7 ' "$(grpc_call "$GPORT_intruder" Unary)"
sleep 0.3
expect_match "the gRPC denial is logged with grpc_status 7" '"path":"/wisp.test.Test/Fail".*"grpc_status":7.*"decision":"deny"' \
  "$(cat "$WORK/gserver.out")"

# --- STRICT refuses plaintext; PERMISSIVE serves it, under policy ---
expect_eq "STRICT: a plaintext curl gets no response" 000 "$(code "http://127.0.0.1:$IN_PORT/public/x")"
write_policy '---
apiVersion: wisp.dev/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mode: PERMISSIVE}'
check "the new policy is applied within 1 s" within_ms 1000 grep -q '"mtls_mode":"PERMISSIVE"' "$WORK/server.err"
expect_match "/config shows the policy in force" '"policy":\{"version":"","documents":3,"rules":5,.*"mtls_mode":"PERMISSIVE","mtls_mode_from":"shop/default"' \
  "$(curl -s "http://127.0.0.1:$ADM/config")"
expect_eq "PERMISSIVE: a plaintext curl is served where policy allows anyone" 200 "$(code "http://127.0.0.1:$IN_PORT/public/x")"
expect_eq "PERMISSIVE: a plaintext curl is denied where policy needs a principal" 403 "$(code "http://127.0.0.1:$IN_PORT/orders/1")"
body=$(curl -s --http2-prior-knowledge "http://127.0.0.1:$IN_PORT/public/x")
if printf '%s' "$body" | grep -q 'x-forwarded-client-cert'; then not_ok "a plaintext caller gets no client identity header"
else ok "a plaintext caller gets no client identity header"; fi
expect_eq "PERMISSIVE: mTLS callers still work" 200 "$(code "http://127.0.0.1:$PORT_frontend/orders/1")"

# --- a policy change mid-traffic: same connection, new decision ---
# The new policy: orders-read without the GET /orders/* rule.
sed 's#to: \[{methods: \["GET"\], paths: \["/orders/\*"\]}\]#to: [{methods: ["GET"], paths: ["/nothing"]}]#' "$POLICY" >"$WORK/deny-orders.yaml"
out=$(cd "$NODE_DIR" && node -e '
const http2 = require("http2"); const fs = require("fs");
const [url, policy, newPolicy] = process.argv.slice(1);
const s = http2.connect(url); let goaway = false; s.on("goaway", () => goaway = true);
const get = (p) => new Promise((res) => { const r = s.request({":path": p}); r.on("response", (h) => res(h[":status"])); r.resume(); r.end(); });
(async () => {
  const before = await get("/orders/1");
  fs.copyFileSync(newPolicy, policy + ".swap"); fs.renameSync(policy + ".swap", policy);
  await new Promise((r) => setTimeout(r, 1200));
  const after = await get("/orders/1");
  console.log(`before=${before} after=${after} goaway=${goaway} closed=${s.closed}`); s.close();
})();' "http://127.0.0.1:$PORT_frontend" "$POLICY" "$WORK/deny-orders.yaml" 2>&1)
expect_eq "a policy change judges the next request on the same connection" \
  "before=200 after=403 goaway=false closed=false" "$out"

# --- a bad policy is refused whole; the last good one stays ---
cp "$POLICY" "$WORK/good.yaml"
sed 's/action: DENY/action: MAYBE/' "$WORK/good.yaml" >"$POLICY.tmp" && mv "$POLICY.tmp" "$POLICY"
check "a bad policy is refused with the document, field and reason" \
  within_ms 2000 grep -qF '"event":"rejected","source":"'"$POLICY"'","error":"document 2 (AuthorizationPolicy \"no-admin\"): spec.action: \"MAYBE\" is not an action' "$WORK/server.err"
check "... and the log says the last good policy stays in force" grep -qF '"in_force":"the last good policy"' "$WORK/server.err"
expect_eq "the last good policy stays in force" 403 "$(code "http://127.0.0.1:$PORT_admin/admin/x")"

# --- wispctl policy check, offline ---
out=$("$WISPCTL" policy check "$WORK/good.yaml")
expect_match "wispctl policy check accepts a good file (exit 0)" ': ok \(3 documents' "$out"
out=$("$WISPCTL" policy check "$POLICY" 2>&1)
rc=$?
expect_eq "wispctl policy check refuses a bad file with exit 1" 1 "$rc"
expect_match "... naming the document, field and reason" 'document 2 \(AuthorizationPolicy "no-admin"\): spec.action' "$out"

for n in c_frontend c_intruder c_admin server gserver; do stop_proxy "$n"; done
finish
