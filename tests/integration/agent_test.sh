#!/usr/bin/env bash
# wisp-agent with a real @grpc/grpc-js client loading proto/: Sign, Watch,
# Admin; state that survives a restart (a corrupt tokens file is refused
# with its line and reason); bad input that gets a clear gRPC
# status while the agent keeps serving; Watch tied to the identity a caller
# proved; callers that open much and read nothing stay bounded.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
AGENT=$(wisp_find_bin wisp-agent "$@") || exit 1
WISPCTL=$(wisp_find_bin wispctl "$@") || exit 1
TDOM=shop.local
ORDERS=$TD/ns/shop/sa/orders
STATE=$WORK/state
SOCK=$SOCKDIR/agent.sock
start_agent() {
  rm -f "$SOCK" # the last agent's: wait for this one's
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
# acs: the same over mTLS on the socket, with the orders SVID from Sign below
acs() { ac --tls "$WORK/leaf.pem" "$WORK/orders.key" "$WORK/bundle.pem" "$@"; }
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

# --- Config.Watch: snapshots, ACK/NACK, pushes ---
out=$(acs watch "$ORDERS" 1)
expect_match "Watch over mTLS sends a snapshot with version, nonce and bundle" '"version":"[0-9]+","nonce":"[0-9a-f]{32}".*"bundle":1' "$out"
printf 'apiVersion: wisp.dev/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {mode: STRICT}\n' >"$WORK/p1.yaml"
acs watch "$ORDERS" 2 timeout=60 >"$WORK/watch.out" &
WATCH=$!
wait_for 20 grep -q '"version"' "$WORK/watch.out" # subscribed: it has its first snapshot
v=$(ac apply "$WORK/p1.yaml" | field version)
wait "$WATCH"
expect_match "a policy push reaches the watcher" "\"version\":\"$v\".*PeerAuthentication" "$(tail -1 "$WORK/watch.out")"
# How fast a push arrives is measured by bench/push_latency.sh on a quiet
# machine, not asserted here: a loaded machine may add any delay.
status=$(ac status)
expect_match "Status remembers what the proxy ACKed" "\"spiffe_id\":\"$ORDERS\".*\"acked_version\":\"$v\"" "$status"
start_bg "$WORK/nacker" node "$NODE_DIR/agent_client.js" --target "unix://$SOCK" \
  --tls "$WORK/leaf.pem" "$WORK/orders.key" "$WORK/bundle.pem" watch "$ORDERS" 2 nack timeout=60
NACKER=$LAST_PID
nack_shown() { ac status | grep -q '"last_nack_error":"rejected by test"'; }
check "Status shows a NACK with its error while that sidecar is connected" wait_for 20 nack_shown
kill -TERM "$NACKER"
wait "$NACKER" 2>/dev/null
nack_gone() { ! ac status | grep -q '"last_nack_error":"rejected by test"'; }
check "... and no longer once it disconnected (the NACK was that sidecar's)" wait_for 20 nack_gone

# --- Watch is tied to the identity the caller proved ---
IMPOSTOR=$TD/ns/shop/sa/impostor
out=$(ac watch "$IMPOSTOR" 1)
expect_match "a plaintext Watch (no certificate, only a claimed spiffe_id) is refused UNAUTHENTICATED" \
  "\"name\":\"UNAUTHENTICATED\".*needs the proxy's SVID.*whatever spiffe_id it claims: $IMPOSTOR" "$out"
out=$(acs watch "$TD/ns/shop/sa/payments" 1)
expect_match "a Watch over mTLS claiming another proxy's spiffe_id: PERMISSION_DENIED naming both" \
  "\"name\":\"PERMISSION_DENIED\".*caller is $ORDERS.*not $TD/ns/shop/sa/payments" "$out"
"$WISPCTL" --agent "unix://$SOCK" status >"$WORK/status.txt" 2>&1
if grep -q "$ORDERS" "$WORK/status.txt" && ! grep -Eq "impostor|payments" "$WORK/status.txt"; then
  ok "wispctl status lists the proxy that proved its identity, none that only claimed one"
else
  not_ok "wispctl status lists only proven identities" "$(cat "$WORK/status.txt")"
fi
csr agentid "$TD/wisp/agent"
expect_match "Sign never issues the agent's own identity, even to a caller with a valid SVID" \
  "\"name\":\"PERMISSION_DENIED\".*$TD/wisp/agent is the agent's own identity" "$(acs sign "$WORK/agentid.der")"
expect_match "... and no join token is made for it" "\"name\":\"INVALID_ARGUMENT\".*agent's own identity" \
  "$(ac token "$TD/wisp/agent")"

# --- restart: same CA, tokens and policy ---
ca_before=$(openssl x509 -in "$STATE/ca.crt" -noout -fingerprint)
stop_agent
start_agent
expect_eq "after a restart the CA is the same" "$ca_before" "$(openssl x509 -in "$STATE/ca.crt" -noout -fingerprint)"
out=$(ac sign "$WORK/orders.der" "$tok2")
expect_match "a token created before the restart still works" "\"spiffe_id\":\"$ORDERS\"" "$out"
expect_match "the policy and its version survive the restart" "\"version\":\"$v\".*PeerAuthentication" "$(acs watch "$ORDERS" 1)"

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

# --- callers that open much and read nothing stay bounded ---
ctl() { "$WISPCTL" --agent "unix://$SOCK" "$@"; }
# raw HTTP/2 Watch streams that never read (a command, not a function, so
# that start_bg's PID is the client's own)
WATCHERS=(/usr/bin/python3 "$WISP_SRC/tests/lib/agent_watchers.py" --socket "$SOCK")
svid_of() { echo "$WORK/$1.crt" "$WORK/$1.key" "$WORK/bundle.pem"; }
cp "$WORK/leaf.pem" "$WORK/orders.crt"
# jfield FILE LINE KEY: KEY of the JSON object on LINE (1 or $) of FILE (objects as JSON)
jfield() {
  sed -n "$2p" "$1" | /usr/bin/python3 -c '
import json, sys
v = json.load(sys.stdin).get(sys.argv[1], "")
print(v if isinstance(v, (str, int)) else json.dumps(v, separators=(",", ":")))' "$3"
}
# big_policy TAG KB: AuthorizationPolicy documents making about KB kilobytes
big_policy() {
  awk -v tag="$1" -v kb="$2" 'BEGIN {
    n = int(kb * 1024 / 640) + 1
    for (i = 0; i < n; i++) {
      printf "apiVersion: wisp.dev/v1\nkind: AuthorizationPolicy\nmetadata: {name: big-%s-%d, namespace: shop}\n", tag, i
      printf "spec:\n  selector: {serviceAccount: svc%d}\n  action: ALLOW\n  rules:\n  - from: [{principals: [", i
      for (j = 0; j < 8; j++) printf "%s\"spiffe://shop.local/ns/shop/sa/caller-%d-%d\"", (j ? ", " : ""), i, j
      printf "]}]\n    to: [{methods: [\"GET\"], paths: [\"/api/v1/items/*\"], ports: [8080]}]\n---\n"
    }
  }'
}
# sample_rss PID: the peak RSS of PID, sampled every 0.1 s (at most 5 min)
# until $WORK/rss.stop exists, into $WORK/rss.peak
sample_rss() {
  local m=0 r i
  for i in $(seq 1 3000); do
    [ -e "$WORK/rss.stop" ] && break
    r=$(rss_kb "$1")
    [ "${r:-0}" -gt "$m" ] && m=$r && echo "$m" >"$WORK/rss.peak"
    sleep 0.1
  done
}

stop_agent
bad_flag() { "$AGENT" --state-dir "$STATE" --listen "unix:$SOCK" "$@" 2>&1 | tr "\n" " "; echo "exit ${PIPESTATUS[0]}"; }
expect_match "a bad size is refused with the flag and an example (exit 2)" \
  'max-conn-buffer 12XB: expected a size of at least 1KiB, e.g. 16MiB.*exit 2' "$(bad_flag --max-conn-buffer 12XB)"
expect_match "a zero count is refused (exit 2)" 'max-watchers-per-caller 0: expected a number.*exit 2' \
  "$(bad_flag --max-watchers-per-caller 0)"
start_agent --max-watchers-per-caller 400 --max-conn-buffer 16MiB
big_policy 0 864 >"$WORK/big0.yaml"
ctl apply -f "$WORK/big0.yaml" >"$WORK/apply0.out" 2>&1
v0=$(sed -n 's/.*version \([0-9]*\).*/\1/p' "$WORK/apply0.out")
start_bg "$WORK/flood" "${WATCHERS[@]}" --tls $(svid_of orders) --spiffe-id "$ORDERS" --conns 30 --streams 10 --hold 300
FLOOD=$LAST_PID
wait_for 30 grep -qs '"ready"' "$WORK/flood.out"
expect_eq "300 Watch streams over mTLS that never read (window 1 KiB, no WINDOW_UPDATE) are open" 300 \
  "$(jfield "$WORK/flood.out" 1 accepted)"
# two more that stall now and recover after the pushes
start_bg "$WORK/stalled" "${WATCHERS[@]}" --tls $(svid_of orders) --spiffe-id "$ORDERS" --streams 2 --hold 300
STALLED=$LAST_PID
wait_for 20 grep -qs '"ready"' "$WORK/stalled.out"
last=$((v0 + 4))
acs watch "$ORDERS" 10 brief "until=$last" timeout=240 >"$WORK/good.out" 2>&1 &
GOOD=$!
wait_for 10 grep -q "\"version\":\"$v0\"" "$WORK/good.out"
rm -f "$WORK/rss.stop" "$WORK/rss.peak"
sample_rss "$AGENT_PID" &
SAMPLER=$!
for i in 1 2 3 4; do
  big_policy "$i" 864 >"$WORK/big$i.yaml"
  ctl apply -f "$WORK/big$i.yaml" >>"$WORK/apply.out" 2>&1
done
wait "$GOOD"
touch "$WORK/rss.stop"
wait "$SAMPLER"
expect_eq "4 pushes of an 864 KB policy were applied" "$last" "$(sed -n 's/.*version \([0-9]*\).*/\1/p' "$WORK/apply.out" | tail -1)"
expect_rss_under "... with 300 watchers that never read, agent RSS stays under 64 MB (one copy per version, not per watcher)" \
  65536 "$(cat "$WORK/rss.peak" 2>/dev/null || echo 999999)"
expect_match "a well-behaved watcher beside them receives the newest version" \
  "\"version\":\"$last\",.*\"policy_bytes\":[0-9]{6}" "$(tail -1 "$WORK/good.out")"
kill -USR1 "$STALLED"
wait_for 90 grep -qs '"drained"' "$WORK/stalled.out"
expect_eq "a stalled watcher that reads again gets the snapshot it had started, whole, then only the newest" \
  "{\"$v0,$last\":2}" "$(jfield "$WORK/stalled.out" '$' versions)"
kill -TERM "$STALLED"
expect_match "watchers whose connection holds more unread output than --max-conn-buffer are ended, with a log line" \
  '"type":"watch_ended".*"spiffe_id":"'"$ORDERS"'".*--max-conn-buffer' "$(cat "$WORK/agent.out")"
out=$("${WATCHERS[@]}" --conns 1 --streams 20 --path /wisp.v1.Identity/Sign --partial 1000000 --settle 5 --hold 0 \
  --spiffe-id "$ORDERS" | head -1)
expect_match "requests a caller never finishes are bounded per connection too (RESOURCE_EXHAUSTED)" \
  'RESOURCE_EXHAUSTED: this connection would hold more than 16777216 bytes.*--max-conn-buffer' "$out"
kill -TERM "$FLOOD"
wait "$FLOOD"
expect_eq "... and the 300 never-reading streams were held open throughout" 300 "$(jfield "$WORK/flood.out" '$' accepted)"
expect_match "after the flood, the agent still serves" '"version":"'"$last"'"' "$(ac status)"

stop_agent
TLS_PORT=$(free_port)
start_agent --max-connections 16 --max-watchers 10 --listen-tls "127.0.0.1:$TLS_PORT"
wait_port "$TLS_PORT"
tokp=$(ac token "$TD/ns/shop/sa/payments" | field token)
out=$(ac sign "$WORK/other.der" "$tokp")
printf '%s' "$out" | node -e 'const o=JSON.parse(require("fs").readFileSync(0));process.stdout.write(o.leaf_pem)' >"$WORK/other.crt"
start_bg "$WORK/orders12" "${WATCHERS[@]}" --tls $(svid_of orders) --spiffe-id "$ORDERS" --streams 12 --hold 300
O12=$LAST_PID
wait_for 20 grep -qs '"ready"' "$WORK/orders12.out"
expect_eq "one caller gets --max-watchers-per-caller (default 8) Watch streams" 8 "$(jfield "$WORK/orders12.out" 1 accepted)"
expect_match "... the others are refused RESOURCE_EXHAUSTED, naming the identity, the uid and the flag" \
  "RESOURCE_EXHAUSTED: $ORDERS already has 8 Config.Watch streams open from uid $(id -u), the limit \\(--max-watchers-per-caller\\)\": 4" \
  "$(head -1 "$WORK/orders12.out")"
start_bg "$WORK/payments4" "${WATCHERS[@]}" --tls $(svid_of other) --spiffe-id "$TD/ns/shop/sa/payments" --streams 4 --hold 300
P4=$LAST_PID
wait_for 20 grep -qs '"ready"' "$WORK/payments4.out"
expect_match "another caller still gets its Watch, up to --max-watchers in all (10)" \
  '"accepted": 2, .*"RESOURCE_EXHAUSTED: the agent serves 10 Config.Watch streams, its limit \(--max-watchers\)": 2' \
  "$(head -1 "$WORK/payments4.out")"
kill -TERM "$O12" "$P4"
wait "$O12" "$P4"
expect_match "a Watch is served again once they are gone" '"version":"' "$(acs watch "$ORDERS" 1 brief)"
out=$(/usr/bin/python3 "$WISP_SRC/tests/lib/agent_watchers.py" --tcp "127.0.0.1:$TLS_PORT" --tls $(svid_of orders) \
  --spiffe-id "$ORDERS" --streams 9 --hold 0 | head -1)
expect_match "over TCP (--listen-tls) a caller is the identity from one address: 8 streams, the 9th refused naming it" \
  "\"accepted\": 8, .*RESOURCE_EXHAUSTED: $ORDERS already has 8 Config.Watch streams open from 127.0.0.1, the limit" "$out"
no_watchers() { ! ac status | grep -q '"connected":true'; }
wait_for 10 no_watchers
"${WATCHERS[@]}" --conns 24 --hold 1 --settle 5 --spiffe-id "$ORDERS" >"$WORK/conns.out"
closed=$(jfield "$WORK/conns.out" 1 conns_closed)
# 8, or 9 if the agent has not yet seen the last client above go
if [ "${closed:-0}" -ge 8 ] && [ "$closed" -le 9 ]; then
  ok "beyond --max-connections (16) new connections are closed at once ($closed of 24)"
else
  not_ok "beyond --max-connections (16) new connections are closed at once" "$(cat "$WORK/conns.out")"
fi
expect_match "... with a log line saying why" 'refused a connection: 16 are open, the limit \(--max-connections\)' \
  "$(cat "$WORK/agent.err")"
expect_match "... and the agent serves again once they go" '"version":"' "$(ac status)"
stop_agent

# --- proxy records: when the table is full, the one idle longest is forgotten ---
# (lowered bounds: --max-proxies 2 --proxy-idle 20s; defaults 4096 and 10m.
# 20 s, so that the three signings below fit in the window on a loaded machine.)
start_agent --max-proxies 2 --proxy-idle 20s
evict_sign() { # evict_sign NAME: an SVID for .../ns/evict/sa/NAME in $WORK/NAME.{key,pem}
  csr "$1" "$TD/ns/evict/sa/$1"
  ac sign "$WORK/$1.der" "$(ac token "$TD/ns/evict/sa/$1" | field token)" |
    node -e 'const o=JSON.parse(require("fs").readFileSync(0));process.stdout.write(o.leaf_pem)' >"$WORK/$1.pem"
}
evict_watch() { ac --tls "$WORK/$1.pem" "$WORK/$1.key" "$WORK/bundle.pem" watch "$TD/ns/evict/sa/$1" 1 brief 2>&1; }
evict_sign e1
evict_sign e2
evict_sign e3
expect_match "with 2 proxies known and none idle for 20 s, a third identity's Watch is refused, naming the flags" \
  'RESOURCE_EXHAUSTED.*knows 2 proxies, its limit \(--max-proxies\), none idle for --proxy-idle' "$(evict_watch e3)"
e3_served() { evict_watch e3 | grep -q '"version":"'; }
check "once records are idle for --proxy-idle, the third identity's Watch is served" wait_for 60 e3_served
status=$(ac status)
expect_match "... the record idle longest was forgotten, Status lists the others" \
  'evict/sa/e2.*evict/sa/e3|evict/sa/e3.*evict/sa/e2' "$status"
if printf '%s' "$status" | grep -q 'evict/sa/e1'; then not_ok "e1 is no longer listed" "$status"; else ok "e1 is no longer listed"; fi
check "the agent logs what it forgot" grep -q '"type":"proxy_forgotten","spiffe_id":"spiffe://[^"]*/ns/evict/sa/e1"' "$WORK/agent.out"
stop_agent

# --- one caller cannot hold every connection ---
# All proxies of a node usually share a uid on the socket; over TCP each
# pod is its own address. Connections that speak HTTP/2 and start no call.
TLS_PORT=$(free_port)
start_agent --max-connections-per-source 3 --listen-tls "127.0.0.1:$TLS_PORT"
wait_port "$TLS_PORT"
flood u0 "unix:$SOCK" 5 - h2
expect_flood "one uid on the Unix socket holds --max-connections-per-source (3); more are closed at once" u0 \
  "open=3 closed=2"
expect_match "... with a log line naming the uid and the flag" \
  "refused a connection from uid $(id -u): it holds 3 already, the limit \\(--max-connections-per-source\\)" \
  "$(cat "$WORK/agent.err")"
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
  chmod 0777 "$SOCKDIR" && chmod 0666 "$SOCK"
  # (its stop file where uid 1337 can see it)
  start_bg "$WORK/u1337" setpriv --reuid 1337 --regid 1337 --clear-groups $LIMITS_PEER flood "unix:$SOCK" 2 - 120 \
    "$SOCKDIR/u1337.stop" h2
  U1337=$LAST_PID
  wait_for 10 grep -qs open= "$WORK/u1337.out"
  expect_flood "... another uid is served beside it" u1337 "open=2 closed=0"
  touch "$SOCKDIR/u1337.stop"
  wait "$U1337"
else
  skip "... another uid is served beside it" "needs root and setpriv"
fi
flood t1 "$TLS_PORT" 4 127.0.0.1
expect_flood "over TCP (--listen-tls) one address holds 3; more are closed at once" t1 "open=3 closed=1"
flood t2 "$TLS_PORT" 2 127.0.0.2
expect_flood "... another address is served beside it" t2 "open=2 closed=0"
expect_match "... logged naming the address" "refused a connection from 127.0.0.1: it holds 3 already" \
  "$(cat "$WORK/agent.err")"
for f in u0 t1 t2; do unflood "$f"; done
serves() { ac status | grep -q '"version":"'; }
check "once they go, that uid is served again" wait_for 10 serves

# --- connections that carry no call are closed after --idle-timeout ---
stop_agent
start_agent --idle-timeout 1s
flood idle "unix:$SOCK" 2 - h2
expect_flood "--idle-timeout 1s: connections that start no call are closed" idle "open=0 closed=2"
check "... with a log line saying why" \
  wait_for 10 grep -Eq '"event":"closed".*"reason":"no call for 1s \(--idle-timeout\)"' "$WORK/agent.out"
unflood idle
acs watch "$ORDERS" 2 timeout=60 >"$WORK/idle-watch.out" &
WATCH=$!
wait_for 20 grep -q '"version"' "$WORK/idle-watch.out"
sleep 3 # three idle timeouts: the Watch call keeps its connection
printf 'apiVersion: wisp.dev/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {mode: PERMISSIVE}\n' >"$WORK/p2.yaml"
v=$(ac apply "$WORK/p2.yaml" | field version)
wait "$WATCH"
expect_match "a connection that carries a Watch stays past --idle-timeout and gets the next push" \
  "\"version\":\"$v\".*PERMISSIVE" "$(tail -1 "$WORK/idle-watch.out")"

# --- out of file descriptors: the agent's listeners pause accepting, then serve ---
stop_agent
WEBHOOK_PORT=$(free_port)
REAL_AGENT=$AGENT
AGENT=$(fd_limited 64 "$AGENT")
start_agent --webhook "127.0.0.1:$WEBHOOK_PORT" --inject-agent https://10.96.0.10:8443 --kube-api off
AGENT=$REAL_AGENT
wait_port "$WEBHOOK_PORT"
expect_match "with ulimit -n 64 the agent serves fewer connections and says so" \
  'max-connections 4096 needs 4160 open files, the limit is 64' "$(cat "$WORK/agent.err")"
flood fd "unix:$SOCK" 100 - h2
paused() { grep -q "accept on the $1 failed: Too many open files (open file limit 64); pausing" "$WORK/agent.err"; }
check "100 callers exhaust its descriptors: the socket pauses accepting" wait_for 10 paused "agent socket unix:$SOCK"
flood fdw "$WEBHOOK_PORT" 10 127.0.0.1
check "... and so does the webhook's listener" wait_for 10 paused "webhook listener 127.0.0.1:$WEBHOOK_PORT"
sleep 2 # still out of descriptors: a spinning listener would fail thousands of times meanwhile
unflood fd
unflood fdw
check "once descriptors are free it serves again" wait_for 15 serves
resumed() { grep -q "accepting again on the $1 .* paused ([0-9]* failed tries)" "$WORK/agent.err"; }
for l in "agent socket unix:$SOCK" "webhook listener 127.0.0.1:$WEBHOOK_PORT"; do
  check "the $l logs the end of its pause" wait_for 10 resumed "$l"
  expect_no_spin "... it did not spin" "$l" "$WORK/agent.err"
done
stop_agent

# --- a corrupt tokens file: the agent does not start, and says which line and why ---
n=$(($(wc -l <"$STATE/tokens") + 1))
printf '0123456789abcdef0123456789abcdef %s/ns/shop/sa/x 1900000000 0 2\n' "$TD" >>"$STATE/tokens"
out=$(timeout 20 "$AGENT" --state-dir "$STATE" --listen "unix:$SOCK" --trust-domain "$TDOM" 2>&1)
rc=$?
check "a corrupt tokens file stops the agent" test "$rc" -ne 0 -a "$rc" -ne 124
expect_match "... naming the file, the line and what is wrong" \
  "$STATE/tokens is corrupt: line $n: the used flag is not 0 or 1" "$out"
finish
