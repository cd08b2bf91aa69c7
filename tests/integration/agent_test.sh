#!/usr/bin/env bash
# wisp-agent with a real @grpc/grpc-js client loading proto/: Sign, Watch,
# Admin; state that survives a restart; bad input that gets a clear gRPC
# status while the agent keeps serving.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
AGENT=$(wisp_find_bin wisp-agent "$@") || exit 1
TDOM=shop.local
ORDERS=$TD/ns/shop/sa/orders
STATE=$WORK/state
SOCK=$SOCKDIR/agent.sock
start_agent() {
  start_bg "$WORK/agent" "$AGENT" --state-dir "$STATE" --listen "unix:$SOCK" --trust-domain "$TDOM" --svid-ttl 1h "$@"
  AGENT_PID=$LAST_PID
  wait_for 10 test -S "$SOCK"
}
stop_agent() {
  kill -TERM "$AGENT_PID"
  wait "$AGENT_PID"
  local rc=$?
  if [ "$rc" -eq 0 ] && ! grep -Eq 'Sanitizer|runtime error:' "$WORK/agent.err"; then
    ok "agent exits 0 on SIGTERM, sanitizer clean"
  else
    not_ok "agent exits 0 on SIGTERM, sanitizer clean" "exit $rc $(grep -m3 -E 'Sanitizer|runtime error' "$WORK/agent.err")"
  fi
}
ac() { node "$NODE_DIR/agent_client.js" --target "unix://$SOCK" "$@"; }
field() { sed -n "s/.*\"$1\":\"\\{0,1\\}\\([^\",}]*\\).*/\\1/p"; }
csr() { # csr NAME SPIFFE_ID [openssl genpkey args]: a DER CSR in $WORK/NAME.der
  local name=$1 id=$2
  shift 2
  if [ $# -gt 0 ]; then openssl genpkey "$@" -out "$WORK/$name.key" 2>/dev/null
  else openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/$name.key" 2>/dev/null; fi
  openssl req -new -key "$WORK/$name.key" -subj /O=wisp -addext "subjectAltName=URI:$id" -outform DER -out "$WORK/$name.der" 2>/dev/null
}

start_agent || { not_ok "agent starts"; finish; }
check "the state dir is 0700" test "$(stat -c %a "$STATE")" = 700
check "the CA key is 0600" test "$(stat -c %a "$STATE/ca.key")" = 600
check "the socket exists" test -S "$SOCK"

# --- Admin.CreateJoinToken, Identity.Sign ---
tok=$(ac token "$ORDERS" | field token)
expect_match "CreateJoinToken returns a token" '^[0-9a-f]{32}$' "$tok"
csr orders "$ORDERS"
out=$(ac sign "$WORK/orders.der" "$tok")
expect_match "Sign with the token returns an SVID for the ID" "\"spiffe_id\":\"$ORDERS\"" "$out"
printf '%s' "$out" | node -e 'const o=JSON.parse(require("fs").readFileSync(0));process.stdout.write(o.leaf_pem)' >"$WORK/leaf.pem"
printf '%s' "$out" | node -e 'const o=JSON.parse(require("fs").readFileSync(0));process.stdout.write(o.bundle_pem)' >"$WORK/bundle.pem"
check "the SVID verifies against the returned bundle" openssl verify -CAfile "$WORK/bundle.pem" "$WORK/leaf.pem"
txt=$(openssl x509 -in "$WORK/leaf.pem" -noout -text)
expect_match "the SVID has the URI SAN" "URI:$ORDERS" "$txt"
expect_match "the SVID is CA:FALSE" 'CA:FALSE' "$txt"
expect_match "the SVID has digitalSignature usage" 'Digital Signature' "$txt"
life=$(($(date -d "$(openssl x509 -in "$WORK/leaf.pem" -noout -enddate | cut -d= -f2)" +%s) - $(date +%s)))
if [ "$life" -le 3600 ] && [ "$life" -gt 3000 ]; then ok "not-after is capped by --svid-ttl (${life}s)"; else not_ok "not-after capped by --svid-ttl" "${life}s"; fi
check "the key matches the CSR's key" test "$(openssl x509 -in "$WORK/leaf.pem" -noout -pubkey)" = "$(openssl pkey -in "$WORK/orders.key" -pubout)"

# --- bad input: a clear status, and the agent keeps serving ---
out=$(ac sign "$WORK/orders.der" "$tok")
expect_match "a reused one-use token: UNAUTHENTICATED, already used" '"name":"UNAUTHENTICATED".*already used' "$out"
out=$(ac sign "$WORK/orders.der" ffffffffffffffffffffffffffffffff)
expect_match "a wrong token: UNAUTHENTICATED, unknown" '"name":"UNAUTHENTICATED".*unknown join token' "$out"
short=$(ac token "$ORDERS" 1 | field token)
sleep 2
out=$(ac sign "$WORK/orders.der" "$short")
expect_match "an expired token: UNAUTHENTICATED, expired" '"name":"UNAUTHENTICATED".*expired' "$out"
tok=$(ac token "$ORDERS" | field token)
csr other "$TD/ns/shop/sa/payments"
out=$(ac sign "$WORK/other.der" "$tok")
expect_match "a CSR for another SPIFFE ID: PERMISSION_DENIED naming both" \
  "\"name\":\"PERMISSION_DENIED\".*asks for $TD/ns/shop/sa/payments.*token is for $ORDERS" "$out"
head -c 300 /dev/urandom >"$WORK/garbage.der"
out=$(ac sign "$WORK/garbage.der" "$tok")
expect_match "a garbage CSR: INVALID_ARGUMENT" '"name":"INVALID_ARGUMENT".*bad CSR' "$out"
if csr weak "$ORDERS" -algorithm RSA -pkeyopt rsa_keygen_bits:512 && [ -s "$WORK/weak.der" ]; then
  out=$(ac sign "$WORK/weak.der" "$tok")
  expect_match "an RSA-512 key: INVALID_ARGUMENT saying the key is too small" '"name":"INVALID_ARGUMENT".*512' "$out"
else
  not_ok "an RSA-512 CSR could be made for the test"
fi
out=$(ac sign "$WORK/orders.der")
expect_match "no token and no client certificate: UNAUTHENTICATED" '"name":"UNAUTHENTICATED".*no join token' "$out"
out=$(ac raw /wisp.v1.Identity/Sign zeros:1100000)
expect_match "an oversized message: RESOURCE_EXHAUSTED" '"name":"RESOURCE_EXHAUSTED"' "$out"
out=$(ac raw /wisp.v1.Identity/Sign 0a03ffffff)
expect_match "a malformed protobuf: INVALID_ARGUMENT" '"name":"INVALID_ARGUMENT"' "$out"
out=$(ac raw /wisp.v1.Nope/Nothing "")
expect_match "an unknown method: UNIMPLEMENTED" '"name":"UNIMPLEMENTED"' "$out"
code=$(curl -s --max-time 5 --http2-prior-knowledge --unix-socket "$SOCK" -o "$WORK/http.out" -w '%{http_code}' http://agent/)
expect_eq "a non-gRPC request gets a plain HTTP refusal" 405 "$code"
out=$(cd "$NODE_DIR" && node -e '
const grpc = require("@grpc/grpc-js"); const c = new grpc.Client(process.argv[1], grpc.credentials.createInsecure());
let done = 0, ok = 0; const N = 1000;
for (let i = 0; i < N; i++) c.makeUnaryRequest("/wisp.v1.Admin/Status", (x) => x, (x) => x, Buffer.alloc(0), {deadline: Date.now() + 20000},
  (err) => { if (!err) ok++; if (++done === N) { console.log(`ok=${ok}`); process.exit(0); } });' "unix://$SOCK" 2>&1)
expect_eq "1000 concurrent calls on one connection are all served" "ok=1000" "$out"
tok2=$(ac token "$ORDERS" | field token)
expect_match "after all that, the agent still serves" '^[0-9a-f]{32}$' "$tok2"

# --- Config.Watch: snapshots, ACK/NACK, pushes within 1 s ---
out=$(ac watch "$ORDERS" 1)
expect_match "Watch sends a snapshot with version, nonce and bundle" '"version":"[0-9]+","nonce":"[0-9a-f]{32}".*"bundle":1' "$out"
printf 'apiVersion: wisp.dev/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {mode: STRICT}\n' >"$WORK/p1.yaml"
ac watch "$ORDERS" 2 >"$WORK/watch.out" &
WATCH=$!
sleep 1
t0=$(date +%s%N)
v=$(ac apply "$WORK/p1.yaml" | field version)
wait "$WATCH"
t1=$(date +%s%N)
expect_match "a policy push reaches the watcher" "\"version\":\"$v\".*PeerAuthentication" "$(tail -1 "$WORK/watch.out")"
ms=$(((t1 - t0) / 1000000))
if [ "$ms" -lt 1500 ]; then ok "the push arrives within 1 s of apply (${ms} ms incl. client exit)"; else not_ok "push within 1 s" "${ms} ms"; fi
status=$(ac status)
expect_match "Status remembers what the proxy ACKed" "\"spiffe_id\":\"$ORDERS\".*\"acked_version\":\"$v\"" "$status"
ac watch "$ORDERS" 1 nack >/dev/null
expect_match "Status shows a NACK with its error" '"last_nack_error":"rejected by test"' "$(ac status)"

# --- restart: same CA, tokens and policy ---
ca_before=$(openssl x509 -in "$STATE/ca.crt" -noout -fingerprint)
stop_agent
start_agent
expect_eq "after a restart the CA is the same" "$ca_before" "$(openssl x509 -in "$STATE/ca.crt" -noout -fingerprint)"
out=$(ac sign "$WORK/orders.der" "$tok2")
expect_match "a token created before the restart still works" "\"spiffe_id\":\"$ORDERS\"" "$out"
expect_match "the policy and its version survive the restart" "\"version\":\"$v\".*PeerAuthentication" "$(ac watch "$ORDERS" 1)"

# --- a proxy's user on the socket may sign, but not administer ---
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
  chmod 0777 "$SOCKDIR" && chmod 0666 "$SOCK" # as a node's hostPath socket shared with proxies would be
  as_proxy() { (cd / && setpriv --reuid 1337 --regid 1337 --clear-groups node "$NODE_DIR/agent_client.js" --target "unix://$SOCK" "$@" 2>&1); }
  cp "$WORK/orders.der" "$WORK/p1.yaml" "$SOCKDIR/" && chmod a+r "$SOCKDIR/orders.der" "$SOCKDIR/p1.yaml"
  tok3=$(ac token "$ORDERS" | field token)
  expect_match "another uid on the Unix socket gets an SVID with a token" "\"spiffe_id\":\"$ORDERS\"" \
    "$(as_proxy sign "$SOCKDIR/orders.der" "$tok3")"
  expect_match "... but Admin (CreateJoinToken) is refused, naming the uids" \
    "PERMISSION_DENIED.*served to root and to the agent's user \\(uid $(id -u)\\) only, not to uid 1337" \
    "$(as_proxy token "$ORDERS")"
  expect_match "... and so is ApplyPolicy" "PERMISSION_DENIED" "$(as_proxy apply "$SOCKDIR/p1.yaml")"
  expect_match "root still administers" '"token":"' "$(ac token "$ORDERS")"
else
  skip "Admin refused to other uids on the socket" "needs root and setpriv"
fi
stop_agent
finish
