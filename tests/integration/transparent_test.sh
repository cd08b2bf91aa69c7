#!/usr/bin/env bash
# Transparent interception in pods made of network namespaces: the client
# app calls the server pod's real IP; iptables (deploy/wisp-iptables.sh)
# sends it through both sidecars over mTLS (SO_ORIGINAL_DST on each side);
# a capture on the wire shows TLS and not one byte of the request; a pod
# without a sidecar is refused by a STRICT pod and served by a PERMISSIVE one.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
source "$WISP_SRC/tests/lib/netns.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
IPT="$WISP_SRC/deploy/wisp-iptables.sh"
PROXY_UID=1337
APP_UID=4242
if ! netns_setup 0; then
  skip "transparent interception in network namespaces" "$NETNS_SKIP_REASON"
  finish
fi
netns_pod client 10.77.0.21 && netns_pod server 10.77.0.22 && netns_pod bare 10.77.0.23 || {
  not_ok "pods are wired"
  finish
}
# Certificates the proxy's uid can read (SOCKDIR is under /tmp).
P=$SOCKDIR/pki
mkdir -p "$P"
bash "$PKI" ca "$P/ca" >/dev/null
bash "$PKI" svid "$P/ca" "$P/frontend" "$TD/ns/shop/sa/frontend" >/dev/null
bash "$PKI" svid "$P/ca" "$P/orders" "$TD/ns/shop/sa/orders" >/dev/null
chmod -R a+rX "$SOCKDIR"
printf 'apiVersion: wisp.dev/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {mode: STRICT}\n' >"$P/policy.yaml"
chmod a+r "$P/policy.yaml"

in_pod() { # in_pod POD UID CMD...: run as UID inside POD
  local pod=$1 uid=$2
  shift 2
  netns_exec "$pod" setpriv --reuid "$uid" --regid "$uid" --clear-groups "$@"
}
pod_listens() { # pod_listens POD PORT...
  local pod=$1 port
  shift
  for port in "$@"; do netns_exec "$pod" ss -Htln "sport = :$port" | grep -q . || return 1; done
}
pod_proxy() { # pod_proxy NAME POD SVID ARGS...
  local name=$1 pod=$2 svid=$3
  shift 3
  # ip netns exec and setpriv both exec: the PID recorded is the proxy's.
  start_bg "$WORK/$name" ip netns exec "$(netns_name "$pod")" setpriv --reuid $PROXY_UID --regid $PROXY_UID --clear-groups \
    "$WISP_PROXY" --cert "$P/$svid.crt" --key "$P/$svid.key" --bundle "$P/ca/ca.crt" --transparent \
    --inbound 0.0.0.0:15006 --admin off "$@"
  PROXY_PIDS+=("$LAST_PID:$name")
  eval "PID_$name=$LAST_PID"
}

# The server pod: its app on loopback :8080, its sidecar, its rules.
start_bg "$WORK/app" ip netns exec "$(netns_name server)" setpriv --reuid $APP_UID --regid $APP_UID --clear-groups \
  node "$NODE_DIR/app.js" --port 8080 --host 127.0.0.1 --name orders
for pod in client server; do
  out=$(netns_exec "$pod" bash "$IPT" --proxy-uid $PROXY_UID 2>&1)
  expect_eq "iptables rules installed in the $pod pod" 0 "$?"
done
pod_proxy server server orders --policy "$P/policy.yaml"
pod_proxy client client frontend
check "the server's app and sidecar listen" wait_for 10 pod_listens server 8080 15006
check "the client's sidecar listens on 15001" wait_for 10 pod_listens client 15001

# --- the client app calls the server pod's real address ---
BR_CAP=$WORK/wire.pcap
start_bg "$WORK/tcpdump" ip netns exec "$(netns_name net)" tcpdump -i br0 -U -w "$BR_CAP" tcp
TCPDUMP=$LAST_PID
sleep 1
body=$(in_pod client $APP_UID curl -s --max-time 10 --http2-prior-knowledge \
  -H 'x-secret-header: hunter2-in-the-clear' "http://10.77.0.22:8080/secret-path-xyz")
expect_match "the client app reaches the server app at its real IP" '"path":"/secret-path-xyz"' "$body"
expect_match "the server app sees the caller's SPIFFE ID in x-forwarded-client-cert" \
  "\"x-forwarded-client-cert\":\"By=$TD/ns/shop/sa/orders;URI=$TD/ns/shop/sa/frontend\"" "$body"
sleep 1
kill -INT "$TCPDUMP"
wait "$TCPDUMP" 2>/dev/null
check "the capture saw the connection" test -s "$BR_CAP"
if grep -aq 'secret-path-xyz\|hunter2-in-the-clear' "$BR_CAP"; then
  not_ok "the wire carries not one byte of the request path or headers in clear"
else
  ok "the wire carries not one byte of the request path or headers in clear"
fi
if od -An -tx1 -v "$BR_CAP" | tr -d '\n' | grep -q ' 16 03 01\| 17 03 03'; then ok "the wire carries TLS records"
else not_ok "the wire carries TLS records"; fi
sleep 0.3
expect_match "the client sidecar logs the verified upstream ID and the original destination" \
  "\"peer_id\":\"$TD/ns/shop/sa/orders\".*\"upstream\":\"10.77.0.22:8080\"" "$(cat "$WORK/client.out")"
expect_match "the server sidecar sends it to the app's original port" '"upstream":"127.0.0.1:8080"' "$(cat "$WORK/server.out")"
if grep -q 'refusing to loop' "$WORK/client.out"; then not_ok "the sidecar's own connection is not looped back into itself"
else ok "the sidecar's own connection is not looped back into itself"; fi

# --- a pod without a sidecar ---
code=$(netns_exec bare curl -s --max-time 5 --http2-prior-knowledge -o /dev/null -w '%{http_code}' "http://10.77.0.22:8080/x")
expect_eq "STRICT: a pod without a sidecar is refused" 000 "$code"
check "the refusal is logged as plaintext in STRICT mode" wait_for 3 grep -q 'plaintext callers are refused' "$WORK/server.out"
printf 'apiVersion: wisp.dev/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {mode: PERMISSIVE}\n' >"$P/policy.yaml.new"
chmod a+r "$P/policy.yaml.new"
mv "$P/policy.yaml.new" "$P/policy.yaml"
check "PERMISSIVE is applied" wait_for 3 grep -q '"mtls_mode":"PERMISSIVE"' "$WORK/server.err"
code=$(netns_exec bare curl -s --max-time 5 --http2-prior-knowledge -o /dev/null -w '%{http_code}' "http://10.77.0.22:8080/x")
expect_eq "PERMISSIVE: a pod without a sidecar is served" 200 "$code"

stop_proxy client
stop_proxy server
for pod in client server; do netns_exec "$pod" bash "$IPT" --remove >/dev/null 2>&1; done
netns_cleanup
expect_eq "no namespace of ours is left" "" "$(netns_leftovers)"
finish
