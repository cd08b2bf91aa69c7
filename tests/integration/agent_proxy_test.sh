#!/usr/bin/env bash
# A sidecar pair that gets its identity from wisp-agent: join-token
# bootstrap, 5 s SVIDs renewed under a long gRPC stream, policy push with
# ACK, fail static when the agent dies, reconnect when it returns.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
AGENT=$(wisp_find_bin wisp-agent "$@") || exit 1
SOCK=$SOCKDIR/agent.sock
ac() { node "$NODE_DIR/agent_client.js" --target "unix://$SOCK" "$@"; }
field() { sed -n "s/.*\"$1\":\"\\{0,1\\}\\([^\",}]*\\).*/\\1/p"; }
start_agent() {
  start_bg "$WORK/agent" "$AGENT" --state-dir "$WORK/state" --listen "unix:$SOCK" --trust-domain shop.local \
    --svid-ttl "$@"
  AGENT_PID=$LAST_PID
  wait_for 10 test -S "$SOCK"
}
start_agent 5s || { not_ok "agent starts"; finish; }
GRPC_PORT=$(free_port) IN_PORT=$(free_port) OUT_PORT=$(free_port) ADM_S=$(free_port) ADM_C=$(free_port)
ac token "$TD/ns/shop/sa/orders" | field token >"$WORK/orders.token"
ac token "$TD/ns/shop/sa/frontend" | field token >"$WORK/frontend.token"
start_bg "$WORK/grpc" node "$NODE_DIR/grpc_server.js" --port "$GRPC_PORT"
wait_port "$GRPC_PORT"
start_proxy server --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/orders" --join-token-file "$WORK/orders.token" \
  --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$GRPC_PORT" --admin "127.0.0.1:$ADM_S"
start_proxy client --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/frontend" \
  --join-token-file "$WORK/frontend.token" --admin "127.0.0.1:$ADM_C" \
  --route "127.0.0.1:$OUT_PORT=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders"
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/ready")" = 200 ]; }
check "server proxy becomes ready with an SVID from the agent" wait_for 10 ready "$ADM_S"
check "client proxy becomes ready with an SVID from the agent" wait_for 10 ready "$ADM_C"
expect_match "the SVID is for the asked identity" "\"spiffe_id\":\"$TD/ns/shop/sa/orders\"" \
  "$(curl -s "http://127.0.0.1:$ADM_S/certs")"
out=$(node "$NODE_DIR/grpc_client.js" --target "127.0.0.1:$OUT_PORT" --case unary,metadata 2>&1)
expect_match "gRPC through the agent-issued pair" 'ok - grpc unary' "$out"
check "the join token is spent (one-use)" grep -q '"type":"sign","spiffe_id":"spiffe://shop.local/ns/shop/sa/orders","via":"join-token"' "$WORK/agent.out"

# --- 5 s SVIDs: a long bidi stream across rotations ---
serial() { curl -s "http://127.0.0.1:$ADM_S/certs" | field serial; }
s0=$(serial)
out=$(node "$NODE_DIR/grpc_long_bidi.js" "127.0.0.1:$OUT_PORT" 16 200 2>&1)
expect_match "a bidi stream runs 16 s across SVID rotations with no error" '^ok [0-9]+' "$out"
n=$(grep -c '"event":"issued"' "$WORK/server.err")
if [ "$n" -ge 4 ]; then ok "the server proxy renewed at least 3 times meanwhile ($((n - 1)) renewals)"; else not_ok "3 renewals" "$n issued"; fi
check "renewals go over mTLS, not the token" grep -q '"via":"renewal"' "$WORK/agent.out"
handshake_serial() {
  echo | timeout 5 openssl s_client -connect "127.0.0.1:$IN_PORT" -alpn h2 -cert "$CERT" -key "$KEY" 2>/dev/null |
    openssl x509 -noout -serial 2>/dev/null | cut -d= -f2 | tr 'A-F' 'a-f'
}
# A client certificate for s_client: from the agent, with a token of its own.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/probe.key" 2>/dev/null
openssl req -new -key "$WORK/probe.key" -subj /O=wisp -addext "subjectAltName=URI:$TD/ns/shop/sa/probe" \
  -outform DER -out "$WORK/probe.der" 2>/dev/null
ac sign "$WORK/probe.der" "$(ac token "$TD/ns/shop/sa/probe" | field token)" |
  node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(0)).leaf_pem)' >"$WORK/probe.crt"
CERT=$WORK/probe.crt KEY=$WORK/probe.key
a=$(handshake_serial)
renewed() { b=$(handshake_serial) && [ -n "$b" ] && [ "$b" != "$a" ]; }
wait_for 20 renewed # 5 s SVIDs are renewed at 50-60% of their life
b=$(handshake_serial)
if [ -n "$a" ] && [ -n "$b" ] && [ "$a" != "$b" ]; then ok "each new connection shows the new serial ($a -> $b)"; else not_ok "new serial per connection" "[$a] [$b]"; fi
expect_eq "the serial served is the one /certs reports" "$(serial | tr 'A-F' 'a-f')" "$(handshake_serial)"

# --- policy push reaches the proxies and is ACKed ---
printf 'apiVersion: wisp.dev/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {mode: STRICT}\n' >"$WORK/p.yaml"
v=$(ac apply "$WORK/p.yaml" | field version)
check "the server proxy ACKs the pushed version (README: within 1 s, bench/push_latency.sh)" wait_for 10 grep -q "\"event\":\"ack\",\"version\":\"$v\"" "$WORK/server.err"
check "the agent records the ACK" wait_for 10 bash -c "node '$NODE_DIR/agent_client.js' --target 'unix://$SOCK' status | grep -q '\"acked_version\":\"$v\"'"

# --- restart with longer SVIDs: same CA, proxies reconnect and renew ---
ca=$(openssl x509 -in "$WORK/state/ca.crt" -noout -fingerprint)
kill -TERM "$AGENT_PID"
wait "$AGENT_PID"
mv "$WORK/agent.out" "$WORK/agent1.out"
start_agent 30s
expect_eq "the restarted agent has the same CA" "$ca" "$(openssl x509 -in "$WORK/state/ca.crt" -noout -fingerprint)"
check "the proxy's Watch reconnects to the restarted agent and ACKs" \
  wait_for 20 grep -q "\"type\":\"ack\",\"spiffe_id\":\"$TD/ns/shop/sa/orders\"" "$WORK/agent.out"
check "the proxy renews over mTLS with the restarted agent" \
  wait_for 20 grep -q "\"type\":\"sign\",\"spiffe_id\":\"$TD/ns/shop/sa/orders\",\"via\":\"renewal\"" "$WORK/agent.out"

# --- fail static: the agent dies, traffic goes on ---
kill -TERM "$AGENT_PID"
wait "$AGENT_PID"
mv "$WORK/agent.out" "$WORK/agent2.out"
out=$(node "$NODE_DIR/grpc_long_bidi.js" "127.0.0.1:$OUT_PORT" 3 100 2>&1)
expect_match "with the agent gone, traffic goes on" '^ok [0-9]+' "$out"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADM_S/ready")
expect_eq "and the proxy stays ready on its last SVID" 200 "$code"
check "the proxy keeps trying the agent with backoff" wait_for 10 grep -q 'config watch ended' "$WORK/server.err"
expect_eq "both proxies still run" ok "$(kill -0 "$PID_client" && kill -0 "$PID_server" && echo ok)"
TLS_PORT=$(free_port)
start_agent 30s --listen-tls "127.0.0.1:$TLS_PORT"
check "when the agent returns, the Watch reconnects" \
  wait_for 40 grep -q "\"type\":\"ack\",\"spiffe_id\":\"$TD/ns/shop/sa/orders\"" "$WORK/agent.out"
out=$(node "$NODE_DIR/grpc_client.js" --target "127.0.0.1:$OUT_PORT" --case unary 2>&1)
expect_match "traffic works after the agent came back" 'ok - grpc unary' "$out"
# --- a proxy on "another host": the agent over TLS/TCP ---
ADM_R=$(free_port)
start_proxy remote --agent "https://127.0.0.1:$TLS_PORT" --bundle "$WORK/state/bundle.pem" \
  --spiffe-id "$TD/ns/shop/sa/remote" --join-token "$(ac token "$TD/ns/shop/sa/remote" | field token)" \
  --admin "127.0.0.1:$ADM_R" --route "127.0.0.1:$(free_port)=127.0.0.1:$IN_PORT"
check "a proxy bootstraps over https with the bundle to verify the agent" wait_for 10 ready "$ADM_R"
check "... and its Watch over TLS is ACKed" \
  wait_for 5 grep -q "\"type\":\"ack\",\"spiffe_id\":\"$TD/ns/shop/sa/remote\"" "$WORK/agent.out"
stop_proxy remote
stop_proxy client
stop_proxy server

# --- --svid-cache: a restart during an agent outage serves at once ---
kill -TERM "$AGENT_PID"
wait "$AGENT_PID"
expect_eq "agent exits 0" 0 "$?"
start_agent 10s --listen-tls "127.0.0.1:$TLS_PORT" || not_ok "agent restarts with 10 s SVIDs"
CACHE=$WORK/svid-cache
ADM_K=$(free_port)
cached_proxy() { # cached_proxy NAME ARGS...
  local name=$1
  shift
  start_proxy "$name" --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/cached" --svid-cache "$CACHE" \
    --admin "127.0.0.1:$ADM_K" --inbound "127.0.0.1:$(free_port)" --app "127.0.0.1:$GRPC_PORT" "$@"
}
cached_proxy cached1 --join-token "$(ac token "$TD/ns/shop/sa/cached" | field token)"
check "a proxy with --svid-cache gets its SVID" wait_for 10 ready "$ADM_K"
SERIAL=$(curl -s "http://127.0.0.1:$ADM_K/certs" | field serial)
POLVER=$(ac status | field version)
expect_eq "the cache holds the key and chain, 0600 in a 0700 dir" "700 600 600" \
  "$(stat -c %a "$CACHE") $(stat -c %a "$CACHE/svid.pem") $(stat -c %a "$CACHE/bundle.pem")"
stop_proxy cached1
kill -TERM "$AGENT_PID"
wait "$AGENT_PID"
cached_proxy cached2
check "restarted while the agent is down, with no token: ready from the cache" wait_for 5 ready "$ADM_K"
expect_eq "... with the same SVID" "$SERIAL" "$(curl -s "http://127.0.0.1:$ADM_K/certs" | field serial)"
check "... and says where it came from" grep -q '"type":"cert","event":"restored".*"reason":"from --svid-cache"' \
  "$WORK/cached2.err"
check "... serving with the policy cached with it, not with none" \
  grep -q "\"type\":\"policy\",\"event\":\"applied\",\"source\":\"svid-cache\",\"version\":\"$POLVER\"" "$WORK/cached2.err"
start_agent 10s --listen-tls "127.0.0.1:$TLS_PORT" || not_ok "agent comes back"
check "when the agent is back, the cached SVID is renewed over mTLS (no token needed)" \
  wait_for 15 grep -q "\"type\":\"sign\",\"spiffe_id\":\"$TD/ns/shop/sa/cached\",\"via\":\"renewal\"" "$WORK/agent.out"
check "... and the renewed SVID is in force" wait_for 5 sh -c "[ \"\$(curl -s http://127.0.0.1:$ADM_K/certs | sed -n 's/.*\"serial\":\"\([^\"]*\).*/\\1/p')\" != '$SERIAL' ]"
stop_proxy cached2
start_proxy wrongid --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/other" --svid-cache "$CACHE" \
  --admin "127.0.0.1:$ADM_K" --inbound "127.0.0.1:$(free_port)" --app "127.0.0.1:$GRPC_PORT"
check "a cache holding another identity's SVID is not used, and the log says why" \
  wait_for 5 grep -q "\"event\":\"cache_unusable\".*is for $TD/ns/shop/sa/cached, not $TD/ns/shop/sa/other" "$WORK/wrongid.err"
if ready "$ADM_K"; then not_ok "... so that proxy is not ready (no token either)"; else ok "... so that proxy is not ready (no token either)"; fi
stop_proxy wrongid

# A cache without its policy, or in a directory someone else owns, is not used.
cp -a "$CACHE" "$WORK/cache-nopolicy" && rm "$WORK/cache-nopolicy/config.pb"
start_proxy nopolicy --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/cached" --svid-cache "$WORK/cache-nopolicy" \
  --admin "127.0.0.1:$ADM_K" --inbound "127.0.0.1:$(free_port)" --app "127.0.0.1:$GRPC_PORT"
check "a cached SVID without the policy cached with it is not used" \
  wait_for 5 grep -q '"event":"cache_unusable".*no policy was cached with the SVID' "$WORK/nopolicy.err"
stop_proxy nopolicy
cp -a "$CACHE" "$WORK/cache-theirs" && chown -R 4242:4242 "$WORK/cache-theirs"
start_proxy theirs --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/cached" --svid-cache "$WORK/cache-theirs" \
  --admin "127.0.0.1:$ADM_K" --inbound "127.0.0.1:$(free_port)" --app "127.0.0.1:$GRPC_PORT"
check "a cache directory owned by another user is not read" \
  wait_for 5 grep -q '"event":"cache_unusable".*owned by' "$WORK/theirs.err"
stop_proxy theirs

# The agent lost its state (a new CA): the cached SVID, valid for a minute
# more, no longer renews; the proxy falls back to its (new, reusable) join
# token long before that SVID would expire.
kill -TERM "$AGENT_PID"
wait "$AGENT_PID"
start_agent 60s --listen-tls "127.0.0.1:$TLS_PORT" || not_ok "the agent restarts with 60 s SVIDs"
cached_proxy warm --join-token "$(ac token "$TD/ns/shop/sa/cached" | field token)"
check "a proxy caches a 60 s SVID" wait_for 10 grep -q "\"type\":\"sign\",\"spiffe_id\":\"$TD/ns/shop/sa/cached\"" "$WORK/agent.out"
check "... with its policy" wait_for 5 test -s "$CACHE/config.pb"
stop_proxy warm
kill -TERM "$AGENT_PID"
wait "$AGENT_PID"
mv "$WORK/state" "$WORK/state-lost"
start_agent 60s --listen-tls "127.0.0.1:$TLS_PORT" || not_ok "an agent with a new CA starts"
ac token "$TD/ns/shop/sa/cached" 3600 reusable | field token >"$WORK/cached.token"
cached_proxy cached3 --join-token-file "$WORK/cached.token"
check "restarted with the old CA's SVID in its cache: restored" wait_for 5 grep -q '"event":"restored"' "$WORK/cached3.err"
check "renewals with it fail, then the join token gets an SVID of the new CA" \
  wait_for 30 grep -q "\"type\":\"sign\",\"spiffe_id\":\"$TD/ns/shop/sa/cached\",\"via\":\"join-token\"" "$WORK/agent.out"
check "... which is the one cached now (it verifies against the new CA)" \
  wait_for 5 sh -c "openssl x509 -in '$CACHE/svid.pem' -out '$WORK/cached3.crt' && openssl verify -CAfile '$WORK/state/ca.crt' '$WORK/cached3.crt'"
stop_proxy cached3
kill -TERM "$AGENT_PID"
wait "$AGENT_PID"
expect_eq "agent exits 0" 0 "$?"

# --- fail closed: a proxy whose Watch the agent refuses serves nothing inbound ---
# One Watch slot (--max-watchers 1), held by the frontend: the orders
# proxy gets its SVID but no policy. The agent holds DENY /admin*; without
# the policy the proxy must not allow everything.
SOCK2=$SOCKDIR/agent2.sock
ac2() { node "$NODE_DIR/agent_client.js" --target "unix://$SOCK2" "$@"; }
start_bg "$WORK/agent3" "$AGENT" --state-dir "$WORK/state3" --listen "unix:$SOCK2" --trust-domain shop.local \
  --max-watchers 1
AGENT3_PID=$LAST_PID
wait_for 10 test -S "$SOCK2" || not_ok "an agent with --max-watchers 1 starts"
cat >"$WORK/deny.yaml" <<'Y'
apiVersion: wisp.dev/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: gate}
spec:
  selector: {serviceAccount: orders}
  action: DENY
  rules:
  - to: [{paths: ["/admin*"]}]
Y
ac2 apply "$WORK/deny.yaml" >/dev/null
APP3=$(free_port) IN3=$(free_port) OUT3=$(free_port) ADM_G=$(free_port) ADM_F=$(free_port)
start_app gateapp "$APP3"
wait_port "$APP3"
ac2 token "$TD/ns/gate/sa/frontend" 3600 reusable | field token >"$WORK/gf.token"
ac2 token "$TD/ns/gate/sa/orders" | field token >"$WORK/go.token"
gate_front() {
  start_proxy gfront --agent "unix://$SOCK2" --spiffe-id "$TD/ns/gate/sa/frontend" --join-token-file "$WORK/gf.token" \
    --admin "127.0.0.1:$ADM_F" --route "127.0.0.1:$OUT3=127.0.0.1:$IN3,id=$TD/ns/gate/sa/orders"
}
gate_front
check "the frontend takes the agent's one Watch slot" wait_for 10 ready "$ADM_F"
start_proxy gated --agent "unix://$SOCK2" --spiffe-id "$TD/ns/gate/sa/orders" --join-token-file "$WORK/go.token" \
  --inbound "127.0.0.1:$IN3" --app "127.0.0.1:$APP3" --admin "127.0.0.1:$ADM_G"
check "the orders proxy's Watch is refused (--max-watchers)" wait_for 10 grep -q 'config watch ended' "$WORK/gated.err"
wait_port "$IN3"
r=$(curl -s -w " %{http_code}" "http://127.0.0.1:$ADM_G/ready" | tr -d "\n")
expect_match "with an SVID but no policy yet, /ready is 503 with the Watch error" \
  '^no policy from the agent yet: the agent ended Config.Watch: RESOURCE_EXHAUSTED: .*--max-watchers.* 503$' "$r"
h=$(curl -s -D - -o /dev/null --http2-prior-knowledge "http://127.0.0.1:$OUT3/hello" | tr -d '\r')
expect_match "an inbound request is answered 503" '^HTTP/2 503' "$h"
expect_match "... with x-wisp-error saying why" '^x-wisp-error: no policy from the agent yet: .*max-watchers' "$h"
code=$(curl -s -o /dev/null -w '%{http_code}' --http2-prior-knowledge "http://127.0.0.1:$OUT3/admin/secret")
expect_eq "GET /admin/secret (DENY at the agent) is 503, not served" 503 "$code"
expect_eq "the app saw no request" 0 "$(grep -c '"path"' "$WORK/gateapp.out")"
# The slot frees: the orders proxy gets the policy and enforces it.
stop_proxy gfront
check "once the Watch slot frees, the orders proxy gets the policy and is ready" wait_for 40 ready "$ADM_G"
gate_front # its own Watch is refused now; outbound works without a policy
# Not ready (no policy, by design here), so wait for the rest of readiness:
# its SVID. Its outbound port opens before the SVID comes, and a request in
# between is refused 503 (no certificate loaded yet), not by policy.
has_svid() { curl -s "http://127.0.0.1:$ADM_F/status" | grep -q "\"spiffe_id\":\"$TD/ns/gate/sa/frontend\""; }
check "the restarted frontend has its SVID" wait_for 20 has_svid
expect_match "... and /ready says only the policy is missing" '^no policy from the agent yet' \
  "$(curl -s "http://127.0.0.1:$ADM_F/ready")"
wait_port "$OUT3"
code=$(curl -s -o /dev/null -w '%{http_code}' --http2-prior-knowledge "http://127.0.0.1:$OUT3/admin/secret")
expect_eq "GET /admin/secret is denied by the pushed DENY policy" 403 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' --http2-prior-knowledge "http://127.0.0.1:$OUT3/hello")
expect_eq "... and GET /hello is served (outbound works while the frontend waits for its policy)" 200 "$code"
expect_eq "the app saw /hello only" '1 0' \
  "$(grep -c '"path":"/hello"' "$WORK/gateapp.out") $(grep -c '"path":"/admin' "$WORK/gateapp.out")"
stop_proxy gfront
stop_proxy gated
kill -TERM "$AGENT3_PID"
wait "$AGENT3_PID"
finish
