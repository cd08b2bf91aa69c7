#!/usr/bin/env bash
# Transparent pods with the agent: three pods and an agent pod on a bridge.
#   agent  (10.77.0.30)  wisp-agent: the CA, policy source, TLS on :15012
#   client (10.77.0.21)  app + sidecar (SVID from the agent over https) + rules
#   server (10.77.0.22)  app + sidecar + rules; admin on 0.0.0.0:15000
#   bare   (10.77.0.23)  no sidecar: stands in for the kubelet
# Proven: the sidecar is not ready until the iptables rules are really in
# its namespace (and stops being ready when they go); the agent's
# address -> identity map (Destination documents) decides which identity
# a transparent destination must present, for HTTP/2 and L4 alike; the
# proxies' own connections to the agent and to peers are not looped back;
# the admin port answers only health checks beyond loopback.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
source "$WISP_SRC/tests/lib/netns.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
AGENT=$(wisp_find_bin wisp-agent "$@") || exit 1
WISPCTL=$(wisp_find_bin wispctl "$@") || exit 1
IPT="$WISP_SRC/deploy/wisp-iptables.sh"
PROXY_UID=1337
APP_UID=4242
AGENT_IP=10.77.0.30
AGENT_PORT=15012
SERVER=10.77.0.22
if ! netns_setup 0; then
  skip "transparent pods with the agent" "$NETNS_SKIP_REASON"
  finish
fi
for p in agent:30 client:21 server:22 bare:23; do
  netns_pod "${p%%:*}" "10.77.0.${p#*:}" || {
    not_ok "pod ${p%%:*} is wired to the bridge"
    finish
  }
done
SOCK=$SOCKDIR/agent.sock
P=$SOCKDIR/pki # what the proxies' uid may read
mkdir -p "$P"
ctl() { "$WISPCTL" --agent "unix:$SOCK" "$@"; }
ready_text() { netns_exec "$1" curl -s --max-time 3 "http://127.0.0.1:15000/ready"; }
ready_is() { [ "$(ready_text "$1")" = "$2" ]; }
ready_matches() { ready_text "$1" | grep -q -- "$2"; }
call() { # call PATH: the client app calls the server pod's real address
  netns_as client $APP_UID curl -s --max-time 10 --http2-prior-knowledge -D - "http://$SERVER:8080$1"
}
l4() { # l4: a TCP exchange from the client app with the server's echo on 7000
  netns_as client $APP_UID /usr/bin/python3 -c '
import socket
try:
    c = socket.create_connection(("10.77.0.22", 7000), timeout=5); c.sendall(b"l4-ping\n"); c.shutdown(socket.SHUT_WR)
    print(c.makefile("rb").readline().decode().strip() or "closed")
except OSError as e:
    print("error: %s" % e)' 2>&1
}
apply() { # apply YAML: as an operator does, through wispctl
  printf '%s\n' "$1" >"$WORK/policy.yaml"
  ctl apply -f "$WORK/policy.yaml" >/dev/null
}
dest_doc() { # dest_doc SPIFFE_ID: a Destination for the server pod's IP
  printf 'apiVersion: wisp.dev/v1\nkind: Destination\nmetadata: {name: orders, namespace: shop}\nspec:\n  addresses: ["%s"]\n  spiffeId: %s\n' \
    "$SERVER" "$1"
}

# --- the agent, in its own pod ---
start_bg "$WORK/agent" ip netns exec "$(netns_name agent)" "$AGENT" --state-dir "$WORK/state" --listen "unix:$SOCK" \
  --listen-tls "0.0.0.0:$AGENT_PORT" --trust-domain shop.local
check "the agent starts in its pod" wait_for 10 test -S "$SOCK"
check "... and listens for proxies over TLS" wait_for 10 netns_listens agent $AGENT_PORT
cp "$WORK/state/bundle.pem" "$P/bundle.pem"
for sa in frontend orders; do ctl token create --spiffe-id "$TD/ns/shop/sa/$sa" >"$P/$sa.token" 2>/dev/null; done
chmod -R a+rX "$SOCKDIR"
check "join tokens are made with wispctl" test -s "$P/orders.token" -a -s "$P/frontend.token"

pod_proxy() { # pod_proxy POD SA ARGS...: a transparent sidecar as the proxy uid, SVID from the agent
  local pod=$1 sa=$2
  shift 2
  start_bg "$WORK/$pod" ip netns exec "$(netns_name "$pod")" setpriv --reuid $PROXY_UID --regid $PROXY_UID \
    --clear-groups "$WISP_PROXY" --agent "https://$AGENT_IP:$AGENT_PORT" --bundle "$P/bundle.pem" \
    --spiffe-id "$TD/ns/shop/sa/$sa" --join-token-file "$P/$sa.token" --transparent --inbound 0.0.0.0:15006 "$@"
  PROXY_PIDS+=("$LAST_PID:$pod")
}

# --- the server pod: app and sidecar first, rules after ---
start_bg "$WORK/app" ip netns exec "$(netns_name server)" setpriv --reuid $APP_UID --regid $APP_UID --clear-groups \
  node "$NODE_DIR/app.js" --port 8080 --host 127.0.0.1 --name orders
start_bg "$WORK/echo" ip netns exec "$(netns_name server)" setpriv --reuid $APP_UID --regid $APP_UID --clear-groups \
  /usr/bin/python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 7000)); s.listen(8)
while True:
    c, _ = s.accept(); line = c.makefile("rb").readline(); c.sendall(b"echo " + line); c.close()'
pod_proxy server orders --admin 0.0.0.0:15000
check "the server sidecar and app listen" wait_for 10 netns_listens server 8080 7000 15006 15000
check "without iptables rules the sidecar is not ready, and says why" \
  wait_for 10 ready_matches server "iptables interception is not in place: a probe to 127.0.0.77:15009"
expect_match "... though it holds its SVID from the agent" "\"spiffe_id\":\"$TD/ns/shop/sa/orders\"" \
  "$(netns_exec server curl -s --max-time 3 http://127.0.0.1:15000/certs)"
out=$(netns_exec server bash "$IPT" --proxy-uid $PROXY_UID --exclude-outbound-cidrs "$AGENT_IP/32" 2>&1)
expect_eq "iptables rules installed in the server pod (agent excluded by CIDR)" 0 "$?"
check "with the rules in place the sidecar becomes ready" wait_for 10 ready_is server ready
check "the check is logged once verified" grep -q '"type":"intercept","event":"verified","probe":"127.0.0.77:15009"' "$WORK/server.err"

# --- the client pod: rules first (no agent exclusion: the proxy's uid is enough) ---
out=$(netns_exec client bash "$IPT" --proxy-uid $PROXY_UID 2>&1)
expect_eq "iptables rules installed in the client pod" 0 "$?"
pod_proxy client frontend --admin 127.0.0.1:15000
check "the client sidecar becomes ready (SVID from the agent through its own rules, probe redirected)" \
  wait_for 10 ready_is client ready
check "both sidecars' Watch streams are ACKed by the agent" \
  wait_for 10 sh -c "grep -q '\"type\":\"ack\",\"spiffe_id\":\"$TD/ns/shop/sa/frontend\"' '$WORK/agent.out' && grep -q '\"type\":\"ack\",\"spiffe_id\":\"$TD/ns/shop/sa/orders\"' '$WORK/agent.out'"

# --- no Destination: any ID in the trust domain ---
out=$(call /before-map)
expect_match "no map: the client app reaches the server at its real IP" '"path":"/before-map"' "$out"
expect_eq "... and an L4 stream too" "echo l4-ping" "$(l4)"

# --- the map says who the server pod is ---
apply "$(dest_doc "$TD/ns/shop/sa/orders")"
check "the client sidecar ACKs the snapshot with one destination" \
  wait_for 5 grep -q '"type":"config","event":"ack".*"destinations":1' "$WORK/client.err"
cfg=$(netns_exec client curl -s --max-time 3 http://127.0.0.1:15000/config)
expect_match "/config shows the map" "\"destinations\":\\[{\"address\":\"$SERVER\",\"spiffe_id\":\"$TD/ns/shop/sa/orders\"}\\]" "$cfg"
out=$(call /mapped)
expect_match "the right identity at the mapped address: served" '"path":"/mapped"' "$out"
sleep 0.3
expect_match "the client sidecar logs the verified ID of the destination" \
  "\"peer_id\":\"$TD/ns/shop/sa/orders\".*\"path\":\"/mapped\".*\"upstream\":\"$SERVER:8080\"" "$(cat "$WORK/client.out")"

apply "$(dest_doc "$TD/ns/shop/sa/payments")"
acks_over() { [ "$(grep -c '"type":"config","event":"ack"' "$WORK/client.err")" -gt "$1" ]; }
check "a new map is ACKed" wait_for 5 acks_over 2
sleep 0.3
out=$(call /impostor)
expect_match "the map names another identity: the caller gets 502" '^HTTP/2 502' "$out"
expect_match "... saying who answered and who was expected" \
  "x-wisp-error: .*peer presented $TD/ns/shop/sa/orders, expected $TD/ns/shop/sa/payments" "$out"
check "the server app logs the requests that reach it" grep -q '"path":"/mapped"' "$WORK/app.out"
if grep -q '"path":"/impostor"' "$WORK/app.out"; then not_ok "... and the request never reached the server app"
else ok "... and the request never reached the server app"; fi
out=$(l4)
if [ "$out" = "echo l4-ping" ]; then not_ok "an L4 stream to the wrongly identified destination is refused" "$out"
else ok "an L4 stream to the wrongly identified destination is refused"; fi
check "... and logged with the reason" \
  wait_for 3 grep -q "\"event\":\"l4_failed\".*expected $TD/ns/shop/sa/payments" "$WORK/client.out" "$WORK/client.err"
upfails() { # the client sidecar's GET /status upstream_failures, "UPSTREAM REASON" a line
  netns_exec client curl -s --max-time 3 http://127.0.0.1:15000/status | /usr/bin/python3 -c 'import json, sys
for e in json.load(sys.stdin)["upstream_failures"]: print(e["upstream"], e["reason"])'
}
out=$(upfails)
expect_match "GET /status lists the HTTP/2 upstream that presented another identity" \
  "^$SERVER:8080 .*expected $TD/ns/shop/sa/payments" "$out"
expect_match "... and the L4 one" "^$SERVER:7000 .*expected $TD/ns/shop/sa/payments" "$out"

apply "$(dest_doc "$TD/ns/shop/sa/orders")"
check "the corrected map is ACKed" wait_for 5 acks_over 3
sleep 0.3
expect_match "corrected map: served again" '"path":"/again"' "$(call /again)"
expect_eq "... L4 too" "echo l4-ping" "$(l4)"
expect_eq "... and GET /status lists no failing upstream any more" "" "$(upfails)"

# --- the proxies' own connections are not looped ---
for pod in client server; do
  if grep -q "refusing to loop\|\"upstream\":\"$AGENT_IP" "$WORK/$pod.out" "$WORK/$pod.err"; then
    not_ok "the $pod sidecar's connections to the agent and peers are not looped back into itself"
  else
    ok "the $pod sidecar's connections to the agent and peers are not looped back into itself"
  fi
done

# --- admin beyond loopback: health only ---
code() { netns_exec bare curl -s --max-time 3 -o /dev/null -w '%{http_code}' "$@"; }
expect_eq "the kubelet's /ready probe from outside the pod: 200" 200 "$(code "http://$SERVER:15000/ready")"
expect_eq "... /healthz: 200" 200 "$(code "http://$SERVER:15000/healthz")"
expect_eq "... /config from outside the pod: 403" 403 "$(code "http://$SERVER:15000/config")"
expect_eq "... POST /drain from outside the pod: 403" 403 "$(code -X POST "http://$SERVER:15000/drain")"
expect_match "... and /ready says so in the same terms" "ready" \
  "$(netns_exec bare curl -s --max-time 3 "http://$SERVER:15000/ready")"
out=$(netns_exec bare /usr/bin/python3 -c '
import socket, sys, time
idle = [socket.create_connection((sys.argv[1], 15000), timeout=3) for _ in range(4)]
time.sleep(0.2)
c = socket.create_connection((sys.argv[1], 15000), timeout=3); c.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
print("5th:", c.recv(200).split(b"\r\n")[0].decode())
time.sleep(1.5)
def ended(s):  # closed, after at most a 408 (timed out) or 503 (evicted)
    data = b""
    for _ in range(16):
        chunk = s.recv(4096)
        if not chunk:
            return data == b"" or data.startswith((b"HTTP/1.1 408 ", b"HTTP/1.1 503 "))
        data += chunk
    return False
print("idle closed:", all(ended(i) for i in idle))' "$SERVER" 2>&1)
# Idle connections never lock out a probe (README, admin listener): the 5th
# connection of an address holding its 4 slots idle is served, and the one
# that waited longest without a request is closed to make room.
expect_match "one remote address holding 4 idle admin connections: its 5th is still served (an idle one makes room)" '5th: HTTP/1.1 200' "$out"
expect_match "... and the idle ones are closed (one evicted with 503, the rest after 1 s)" 'idle closed: True' "$out"
expect_eq "... and a probe from another address (the client pod, as the exempt proxy uid) gets through" 200 \
  "$(netns_as client $PROXY_UID curl -s --max-time 3 -o /dev/null -w '%{http_code}' "http://$SERVER:15000/ready")"

# --- rules removed: fail closed again ---
out=$(netns_exec server bash "$IPT" --remove 2>&1)
expect_eq "the server pod's rules are removed" 0 "$?"
check "without its rules the sidecar stops being ready within seconds" \
  wait_for 10 ready_matches server "iptables interception is not in place"
expect_eq "... the kubelet sees 503" 503 "$(code "http://$SERVER:15000/ready")"
check "... and the change is logged" grep -q '"type":"intercept","event":"missing"' "$WORK/server.err"
interception() { # wispctl check --proxy in the server pod: status|title|details of proxy.interception
  netns_exec server "$WISPCTL" --agent "unix:$SOCK" check --proxy 127.0.0.1:15000 -o json |
    /usr/bin/python3 -c 'import json, sys
for c in json.load(sys.stdin)["checks"]:
    if c["id"] == "proxy.interception": print("%s|%s|%s" % (c["status"], c["title"], ";".join(c["details"])))'
}
expect_match "wispctl check --proxy: ✗ interception missing, with the probe's failure" \
  '^fail\|transparent interception is missing\|iptables interception is not in place: a probe to 127.0.0.77:15009' \
  "$(interception)"
out=$(netns_exec server bash "$IPT" --proxy-uid $PROXY_UID --exclude-outbound-cidrs "$AGENT_IP/32" 2>&1)
check "rules back: ready again" wait_for 10 ready_is server ready
expect_eq "wispctl check --proxy: ✓ interception proven" \
  "pass|transparent interception is proven (a probe reached the outbound listener)|" "$(interception)"
out=$(netns_exec server env -u WISP_AGENT "$WISPCTL" check --proxy 127.0.0.1:15000 -o json |
  /usr/bin/python3 -c 'import json, sys
for c in json.load(sys.stdin)["checks"]:
    if c["id"] == "agent.reachable": print("%s|%s" % (c["status"], c["title"]))')
expect_eq "wispctl check --proxy, no --agent, the sidecar's agent over https: the agent checks left out (‼)" \
  "warning|the agent checks are left out: the sidecar's agent is https://$AGENT_IP:$AGENT_PORT, not a Unix socket" "$out"

stop_proxy client
stop_proxy server
for pod in client server; do netns_exec "$pod" bash "$IPT" --remove >/dev/null 2>&1; done
netns_cleanup
expect_eq "no namespace of ours is left" "" "$(netns_leftovers)"
finish
