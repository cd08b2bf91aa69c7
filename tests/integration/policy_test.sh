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
  - to: [{paths: ["/admin/*", "/users/@me*", "/x.secret", "*.key"]}]
  - to: [{methods: ["DELETE"]}]
  - to: [{methods: ["GET"], paths: ["/private/*"]}]
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
# --- the path the app would read is the one judged, and the one it gets (issue 9) ---
# The app decodes %61 to 'a' and resolves dot segments: each of these is
# /admin/x to it, so each must meet the DENY on /admin/*.
for path in "/%61dmin/x" "/adm%69n/x" "/x/../admin/x" "/./admin/x" "//admin/x" "/%2e%2e/admin/x" "/%2E./admin/x" \
  "/public/%2e%2E/%41dmin/../admin/x"; do
  expect_eq "$path is /admin/x once normalised: 403 by the DENY policy" 403 \
    "$(code --path-as-is "http://127.0.0.1:$PORT_admin$path")"
done
expect_match "... and the 403 names the DENY policy" 'denied by DENY policy: policy shop/no-admin' "$(cat "$WORK/body")"
for path in "/x/%2Fadmin" "/admin%2fx" "/public%5c..%5cadmin" "/public/..;/admin/x" "/%zz" "/public/%4"; do
  expect_eq "a path with no safe normal form ($path): 400" 400 "$(code --path-as-is "http://127.0.0.1:$PORT_admin$path")"
done
expect_match "... saying why" 'path refused under policy: bad percent-escape' \
  "$(code --path-as-is "http://127.0.0.1:$PORT_admin/%zz" >/dev/null; cat "$WORK/body")"
# Express, Flask (strict_slashes) and many Go routers serve /x.secret/ as
# /x.secret: a DENY exact or suffix path ignores one trailing '/'.
for path in "/x.secret" "/x.secret/" "/x.secret/?q=1" "/k/a.key/" "/k//a.key//"; do
  expect_eq "ops admin GET $path: 403 (DENY /x.secret and *.key)" 403 "$(code --path-as-is "http://127.0.0.1:$PORT_admin$path")"
done
expect_match "... by the DENY policy" 'denied by DENY policy: policy shop/no-admin, rule 0' "$(cat "$WORK/body")"
expect_eq "ops admin GET /x.secret/y (below it): allowed" 200 "$(code "http://127.0.0.1:$PORT_admin/x.secret/y")"
# HEAD is served by the app's GET handler: a DENY on GET denies HEAD too.
expect_eq "ops admin GET /private/x: 403 (DENY GET /private/*)" 403 "$(code "http://127.0.0.1:$PORT_admin/private/x")"
expect_eq "ops admin HEAD /private/x: 403 too" 403 "$(code -I "http://127.0.0.1:$PORT_admin/private/x")"
expect_eq "ops admin POST /private/x: allowed" 200 "$(code -d x "http://127.0.0.1:$PORT_admin/private/x")"
# Werkzeug/Flask upper-case the method: "delete" is DELETE to them.
expect_eq "ops admin DELETE /anything: 403 (DENY on DELETE)" 403 "$(code -X DELETE "http://127.0.0.1:$PORT_admin/anything")"
expect_eq "ops admin 'delete' /anything (lower case): 400" 400 "$(code -X delete "http://127.0.0.1:$PORT_admin/anything")"
expect_match "... saying why" "method refused under policy: lower-case letter in method" "$(cat "$WORK/body")"
# Servlet containers and Spring serve /admin;x/secret as /admin/secret.
expect_eq "/admin;x/secret (;params): 400" 400 "$(code --path-as-is "http://127.0.0.1:$PORT_admin/admin;x/secret")"
expect_match "... saying why" "path refused under policy: ';' in path" "$(cat "$WORK/body")"
expect_eq "/admin%3Bx/secret (an encoded ';'): 400" 400 "$(code --path-as-is "http://127.0.0.1:$PORT_admin/admin%3Bx/secret")"
expect_eq "/%2561dmin/x (double-encoded): 400" 400 "$(code --path-as-is "http://127.0.0.1:$PORT_admin/%2561dmin/x")"
expect_match "... saying why" "path refused under policy: double-encoded percent-escape" "$(cat "$WORK/body")"
# Go, Werkzeug and servlets decode %40 to '@': so does the normal form.
for path in "/users/%40me" "/users/%40me/keys" "/users/%2e/%40%6De"; do
  expect_eq "$path is /users/@me... once normalised: 403 (DENY /users/@me*)" 403 \
    "$(code --path-as-is "http://127.0.0.1:$PORT_admin$path")"
done
expect_eq "GET /public/%40x%3a%21 is allowed" 200 "$(code --path-as-is "http://127.0.0.1:$PORT_admin/public/%40x%3a%21")"
expect_match "... and the app gets /public/@x:!" '"path":"/public/@x:!"' "$(cat "$WORK/body")"
# curl cuts '#' and would not send a raw backslash as is: python3-h2 sends the bytes.
h2get() { # h2get PORT PATH [NAME=VALUE...]: one GET with this exact :path; prints status, grpc-status, body
  /usr/bin/python3 - "$@" <<'PY'
import os, socket, sys, urllib.parse
import h2.config, h2.connection, h2.events
port, path = int(sys.argv[1]), os.fsencode(sys.argv[2])
extra = [tuple(os.fsencode(x) for x in a.split("=", 1)) for a in sys.argv[3:]]
sock = socket.create_connection(("127.0.0.1", port), timeout=10)
conn = h2.connection.H2Connection(h2.config.H2Configuration(
    client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False))
conn.initiate_connection()
conn.send_headers(1, [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"orders"), (b":path", path)] + extra,
                  end_stream=True)
sock.sendall(conn.data_to_send())
hdrs, body, done = {}, b"", False
while not done:
    data = sock.recv(65536)
    if not data:
        break
    for ev in conn.receive_data(data):
        if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
            hdrs.update(dict(ev.headers))
        elif isinstance(ev, h2.events.DataReceived):
            body += ev.data
            conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
            done = True
    sock.sendall(conn.data_to_send())
msg = urllib.parse.unquote(hdrs.get(b"grpc-message", b"").decode())
print(hdrs.get(b":status", b"none").decode(), hdrs.get(b"grpc-status", b"-").decode(),
      (msg + body.decode(errors="replace")).strip())
PY
}
expect_match "'#' does not stop the dot-segment scan (/public#/../admin/x): 400" '^400 - path refused under policy: .#. in path' \
  "$(h2get "$PORT_admin" '/public#/../admin/x')"
expect_match "a raw backslash (/public\\..\\admin/x): 400" '^400 - path refused under policy: backslash in path' \
  "$(h2get "$PORT_admin" '/public\..\admin/x')"
expect_match "a gRPC call with a bad path: INVALID_ARGUMENT (3) saying why" \
  "^200 3 path refused under policy: encoded '/' \\(%2F\\)" \
  "$(h2get "$GPORT_admin" '/wisp.test.Test/Un%2fary' content-type=application/grpc te=trailers)"
# Allowed paths are sent to the app in their normal form, the query as is.
expect_eq "GET /public/./a/../%62%7e?q=/../%61: 200" 200 \
  "$(code --path-as-is "http://127.0.0.1:$PORT_admin/public/./a/../%62%7e?q=/../%61")"
expect_match "... and the app gets /public/b~?q=/../%61" '"path":"/public/b~\?q=/\.\./%61"' "$(cat "$WORK/body")"
expect_eq "frontend GET /orders//%31: allowed as /orders/1" 200 "$(code --path-as-is "http://127.0.0.1:$PORT_frontend/orders//%31")"
expect_match "... which the app gets" '"path":"/orders/1"' "$(cat "$WORK/body")"
expect_eq "a query string does not change the path match" 200 "$(code "http://127.0.0.1:$PORT_frontend/orders/1?x=/admin/")"
# A request's line is written when its stream closes, just after the
# response: wait for the last of them, however slow the machine.
logged() { grep -q "$2" "$WORK/$1.out"; }
wait_for 10 logged server '"path":"/orders/1?x=/admin/"'
expect_match "the log has the allow decision with policy and rule" \
  '"path":"/orders/1","status":200.*"decision":"allow","policy":"shop/orders-read","rule":0' "$(cat "$WORK/server.out")"
expect_match "the log has the deny decision with policy and rule" \
  '"path":"/admin/x","status":403.*"decision":"deny","policy":"shop/no-admin","rule":0' "$(cat "$WORK/server.out")"
expect_match "the log has the normalised path judged and the path received" \
  '"path":"/admin/x","path_received":"/%61dmin/x","status":403.*"decision":"deny"' "$(cat "$WORK/server.out")"
expect_match "the log has a refused method with decision deny and the reason" \
  '"method":"delete","path":"/anything","status":400.*"decision":"deny","policy_reason":"method cannot be judged"' \
  "$(cat "$WORK/server.out")"
expect_match "the log has a refused path with decision deny and the reason" \
  '"path":"/%zz","status":400.*"decision":"deny","policy_reason":"path cannot be normalised","error":"path refused under policy: bad percent-escape' \
  "$(cat "$WORK/server.out")"
check "the app logs the requests that reach it" grep -q '"path":"/orders/1"' "$WORK/app.out"
if grep -q '"method":"HEAD"' "$WORK/app.out"; then not_ok "no HEAD /private/x reaches the app" "$(grep '"method":"HEAD"' "$WORK/app.out")"
else ok "no HEAD /private/x reaches the app"; fi
if grep -qi '"method":"delete"' "$WORK/app.out"; then not_ok "no DELETE, in any case, reaches the app" "$(grep -i '"method":"delete"' "$WORK/app.out")"
else ok "no DELETE, in any case, reaches the app"; fi
check "... an allowed path in the normal form it was sent" grep -qF '"path":"/public/b~?q=/../%61"' "$WORK/app.out"
bad='"path":"[^?"]*(admin|/payments|%zz|%4"|%2f|%5c|#|\\|;|%3b|%25|@me|secret"|secret/"|secret/\?|\.key)' # in the path part; /orders/1?x=/admin/ was allowed
if grep -Eqi "$bad" "$WORK/app.out"; then not_ok "denied and refused requests never reach the app" "$(grep -Ei "$bad" "$WORK/app.out")"
else ok "denied and refused requests never reach the app"; fi

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
wait_for 10 logged gserver '"path":"/wisp.test.Test/Fail"'
expect_match "the gRPC denial is logged with grpc_status 7" '"path":"/wisp.test.Test/Fail".*"grpc_status":7.*"decision":"deny"' \
  "$(cat "$WORK/gserver.out")"

# --- STRICT refuses plaintext; PERMISSIVE serves it, under policy ---
expect_eq "STRICT: a plaintext curl gets no response" 000 "$(code "http://127.0.0.1:$IN_PORT/public/x")"
write_policy '---
apiVersion: wisp.dev/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mode: PERMISSIVE}'
check "the new policy is applied (README: within 1 s, bench/push_latency.sh)" wait_for 10 grep -q '"mtls_mode":"PERMISSIVE"' "$WORK/server.err"
expect_match "/config shows the policy in force" '"policy":\{"version":"","documents":3,"rules":7,.*"mtls_mode":"PERMISSIVE","mtls_mode_from":"shop/default"' \
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
  // Asks again on the same connection until the new policy is in force
  // (read within --reload-interval, 1 s; up to 10 s on a loaded machine).
  let after = before;
  for (let i = 0; i < 100 && after === before; i++) {
    await new Promise((r) => setTimeout(r, 100));
    after = await get("/orders/1");
  }
  console.log(`before=${before} after=${after} goaway=${goaway} closed=${s.closed}`); s.close();
})();' "http://127.0.0.1:$PORT_frontend" "$POLICY" "$WORK/deny-orders.yaml" 2>&1)
expect_eq "a policy change judges the next request on the same connection" \
  "before=200 after=403 goaway=false closed=false" "$out"

# --- a bad policy is refused whole; the last good one stays ---
cp "$POLICY" "$WORK/good.yaml"
sed 's/action: DENY/action: MAYBE/' "$WORK/good.yaml" >"$WORK/maybe.yaml"
cp "$WORK/maybe.yaml" "$POLICY.tmp" && mv "$POLICY.tmp" "$POLICY"
check "a bad policy is refused with the document, field and reason" \
  wait_for 10 grep -qF '"event":"rejected","source":"'"$POLICY"'","error":"document 2 (AuthorizationPolicy \"no-admin\"): spec.action: \"MAYBE\" is not an action' "$WORK/server.err"
check "... and the log says the last good policy stays in force" grep -qF '"in_force":"the last good policy"' "$WORK/server.err"
expect_eq "the last good policy stays in force" 403 "$(code "http://127.0.0.1:$PORT_admin/admin/x")"
# A DENY path written other than in the normal form requests are judged in
# would never match (fail open): the policy is refused, naming that form.
sed 's#"/users/@me\*"#"/users/%40me*"#' "$WORK/good.yaml" >"$WORK/encoded.yaml"
cp "$WORK/encoded.yaml" "$POLICY.tmp" && mv "$POLICY.tmp" "$POLICY"
never='spec.rules[0].to[0].paths[1]: \"/users/%40me*\" can never match a request: requests are matched in normal form \"/users/@me*\"'
check "a DENY path not in normal form (/users/%40me*) is refused, naming the normal form" \
  wait_for 10 grep -qF '"event":"rejected","source":"'"$POLICY"'","error":"document 2 (AuthorizationPolicy \"no-admin\"): '"$never" "$WORK/server.err"
expect_eq "... the last good policy stays in force: /users/%40me is 403" 403 \
  "$(code --path-as-is "http://127.0.0.1:$PORT_admin/users/%40me")"

# --- wispctl policy check, offline ---
out=$("$WISPCTL" policy check "$WORK/good.yaml")
expect_match "wispctl policy check accepts a good file (exit 0)" ': ok \(3 documents' "$out"
out=$("$WISPCTL" policy check "$WORK/maybe.yaml" 2>&1)
rc=$?
expect_eq "wispctl policy check refuses a bad file with exit 1" 1 "$rc"
expect_match "... naming the document, field and reason" 'document 2 \(AuthorizationPolicy "no-admin"\): spec.action' "$out"
out=$("$WISPCTL" policy check "$WORK/encoded.yaml" 2>&1)
rc=$?
expect_eq "wispctl policy check refuses a path pattern not in normal form with exit 1" 1 "$rc"
expect_match "... saying what form to write" \
  'paths\[1\]: "/users/%40me\*" can never match a request: requests are matched in normal form "/users/@me\*"' "$out"

for n in c_frontend c_intruder c_admin server gserver; do stop_proxy "$n"; done
finish
