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
cat >"$P/policy.yaml" <<YAML
apiVersion: wisp.dev/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mode: STRICT}
---
apiVersion: wisp.dev/v1
kind: AuthorizationPolicy
metadata: {name: no-7200, namespace: shop}
spec:
  selector: {serviceAccount: orders}
  action: DENY
  rules:
  - to: [{ports: [7200]}]
  - to: [{ports: [8081], paths: ["/h1-admin/*"]}]
YAML
chmod a+r "$P/policy.yaml"

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
# An HTTP/1.1 app (Python's http.server) on loopback :8081.
PY=/usr/bin/python3
start_bg "$WORK/h1app" ip netns exec "$(netns_name server)" setpriv --reuid $APP_UID --regid $APP_UID --clear-groups \
  $PY "$WISP_SRC/tests/integration/h1_app.py" 8081
# Another on :8082, which no rule names: Upgrade (an L4 stream) is carried.
start_bg "$WORK/h1app2" ip netns exec "$(netns_name server)" setpriv --reuid $APP_UID --regid $APP_UID --clear-groups \
  $PY "$WISP_SRC/tests/integration/h1_app.py" 8082
# L4 servers: a checksum echo that answers only after the client's FIN
# (half-close must be carried), and server-first banners.
start_bg "$WORK/sumsrv" ip netns exec "$(netns_name server)" setpriv --reuid $APP_UID --regid $APP_UID --clear-groups \
  $PY -c '
import hashlib, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 7000)); s.listen(8)
while True:
    c, _ = s.accept(); h = hashlib.sha256(); n = 0
    while True:
        b = c.recv(65536)
        if not b: break
        h.update(b); n += len(b)
    c.sendall(("%s %d\n" % (h.hexdigest(), n)).encode()); c.close()'
for port in 5432 7100 7200; do
  start_bg "$WORK/banner$port" ip netns exec "$(netns_name server)" setpriv --reuid $APP_UID --regid $APP_UID \
    --clear-groups $PY -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
while True:
    c, _ = s.accept(); c.sendall(b"HELLO-SERVER-FIRST\n"); f = c.makefile("rb"); line = f.readline(); c.sendall(line); c.close()' "$port"
done
for pod in client server; do
  out=$(netns_exec "$pod" bash "$IPT" --proxy-uid $PROXY_UID 2>&1)
  expect_eq "iptables rules installed in the $pod pod" 0 "$?"
done
pod_proxy server server orders --policy "$P/policy.yaml"
pod_proxy client client frontend
check "the server's apps and sidecar listen" wait_for 10 netns_listens server 8080 8081 15006 7000 5432 7100 7200
check "the client's sidecar listens on 15001" wait_for 10 netns_listens client 15001

# --- the client app calls the server pod's real address ---
BR_CAP=$WORK/wire.pcap
# --immediate-mode: each packet is handed over as it comes (else what is
# still in the capture buffer when tcpdump is stopped is lost); -U writes it
# out at once. The calls start once tcpdump says it is listening.
start_bg "$WORK/tcpdump" ip netns exec "$(netns_name net)" tcpdump -i br0 --immediate-mode -U -w "$BR_CAP" tcp
TCPDUMP=$LAST_PID
check "tcpdump listens on the pods' bridge" wait_for 10 grep -q 'listening on' "$WORK/tcpdump.err"
body=$(netns_as client $APP_UID curl -s --max-time 10 --http2-prior-knowledge \
  -H 'x-secret-header: hunter2-in-the-clear' "http://10.77.0.22:8080/secret-path-xyz")
expect_match "the client app reaches the server app at its real IP" '"path":"/secret-path-xyz"' "$body"
expect_match "the server app sees the caller's SPIFFE ID in x-forwarded-client-cert" \
  "\"x-forwarded-client-cert\":\"By=$TD/ns/shop/sa/orders;URI=$TD/ns/shop/sa/frontend\"" "$body"

# --- HTTP/1.1 from the app: a whole request line makes it L7, by default (issue 14) ---
# Both sidecars run with their defaults. The caller's HTTP/1.1 crosses the
# mesh as HTTP/2 with x-wisp-proto, so the server's sidecar speaks
# HTTP/1.1 to its HTTP/1.1 app (an h2c request would get 502 from it).
body=$(netns_as client $APP_UID curl -s --max-time 10 --http1.1 "http://10.77.0.22:8081/h1-transparent")
expect_match "an HTTP/1.1 client app reaches the HTTP/1.1 server app at its real IP; the app sees HTTP/1.1" \
  '"path": "/h1-transparent", "version": "HTTP/1.1"' "$body"
expect_match "... with the caller's identity, and no x-wisp-* field" \
  "\"x-forwarded-client-cert\": \"By=$TD/ns/shop/sa/orders;URI=$TD/ns/shop/sa/frontend\"" "$(grep -vi '"x-wisp-' <<<"$body")"
check "... carried at L7: both sidecars log it as a request with method, path and the caller's protocol" wait_for 5 sh -c \
  "grep -q '\"type\":\"request\".*\"method\":\"GET\",\"path\":\"/h1-transparent\".*\"proto\":\"http/1.1\"' '$WORK/client.out' &&
   grep -q '\"type\":\"request\".*\"method\":\"GET\",\"path\":\"/h1-transparent\".*\"proto\":\"http/1.1\",\"app_proto\":\"http/1.1\"' '$WORK/server.out'"
out=$(netns_as client $APP_UID ab -n 200 -c 4 -k "http://10.77.0.22:8081/ab" 2>&1)
expect_match "ab (HTTP/1.0, keep-alive) through both default sidecars: 200 requests, none failed" \
  'Complete requests: +200.*Failed requests: +0.*Keep-Alive requests: +200' "$(tr -d '\n' <<<"$out")"
if grep -q 'Non-2xx' <<<"$out"; then not_ok "... all answered 200 by the app" "$(grep 'Non-2xx' <<<"$out")"; else ok "... all answered 200 by the app"; fi
out=$(netns_as client $APP_UID curl -s -i --max-time 10 --http1.1 "http://10.77.0.22:8081/h1-admin/keys")
expect_match "a DENY on a path applies to an HTTP/1.1 caller in transparent mode: 403 saying why" \
  '^HTTP/1.1 403 Forbidden.*x-wisp-error: RBAC: access denied.*policy shop/no-7200' "$(tr -d '\r\n' <<<"$out")"
check "... logged as denied by the server sidecar" wait_for 5 grep -q \
  '"method":"GET","path":"/h1-admin/keys","status":403.*"decision":"deny","policy":"shop/no-7200","rule":1' "$WORK/server.out"
code=$(netns_as client $APP_UID curl -s --max-time 10 --http1.1 -o /dev/null -w '%{http_code}' "http://10.77.0.22:8081/h1-allowed/keys")
expect_eq "... and a path it does not name is served" 200 "$code"
if grep -q '/h1-admin' "$WORK/h1app.out"; then not_ok "the denied request never reaches the app"; else ok "the denied request never reaches the app"; fi
# Upgrade (a WebSocket's opening, here the app's "echo" protocol) goes as an
# L4 stream inside the mesh, the same identity checks applied: the app's
# 101, then bytes both ways. Port 8081's DENY rule names paths, which an L4
# stream has none of to judge: refused there, with the reason.
upgrade_via() { # upgrade_via PORT: what a raw Upgrade from the client app gets back
  netns_as client $APP_UID $PY -c '
import socket, sys
c = socket.create_connection(("10.77.0.22", int(sys.argv[1])), timeout=10)
c.sendall(b"GET /ws HTTP/1.1\r\nHost: orders\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nbytes after the upgrade")
c.shutdown(socket.SHUT_WR)
got = b""
for _ in range(1000):
    d = c.recv(65536)
    if not d:
        break
    got += d
print(got.decode("latin-1").replace("\r\n", " "))' "$1" 2>&1
}
wait_for 10 netns_exec server sh -c "ss -ltn | grep -q 127.0.0.1:8082"
out=$(upgrade_via 8082)
expect_match "an Upgrade through both default sidecars (transparent): the app's 101, then the bytes echoed" \
  '^HTTP/1.[01] 101 Switching Protocols.*Upgrade: echo.*bytes after the upgrade$' "$out"
check "... carried as an L4 stream, logged so by both sidecars" wait_for 5 sh -c \
  "grep -q '\"event\":\"l4\".*\"direction\":\"outbound\".*:8082\"' '$WORK/client.out' && grep -q '\"event\":\"l4\".*\"direction\":\"inbound\".*:8082\"' '$WORK/server.out'"
out=$(upgrade_via 8081)
expect_match "an Upgrade to a port whose DENY rule names paths is refused: 403 saying why" \
  '^HTTP/1.1 403 Forbidden.*x-wisp-error: RBAC: access denied.*policy shop/no-7200' "$out"
body=$(netns_as client $APP_UID curl -s --max-time 10 --http2-prior-knowledge "http://10.77.0.22:8080/h2c-still")
expect_match "an h2c caller of the h2c app still gets h2c through the same default sidecars" '"path":"/h2c-still"' "$body"
out=$(netns_as client $APP_UID $PY -c '
import hashlib, socket
data = b"get some-key\r\n"
c = socket.create_connection(("10.77.0.22", 7000), timeout=10); c.sendall(data); c.shutdown(socket.SHUT_WR)
got = c.makefile("rb").read().split()
print("same" if got == [hashlib.sha256(data).hexdigest().encode(), str(len(data)).encode()] else "differs: %r" % got)' 2>&1)
expect_eq "a first word and space without an HTTP/1 request line (memcached's get) is still L4" same "$out"

# --- L4: not HTTP/2, carried as a byte stream over the same mTLS ---
out=$(netns_as client $APP_UID $PY -c '
import hashlib, os, socket
data = (b"L4-SECRET-MARKER " * 4096) + os.urandom(1 << 21)
c = socket.create_connection(("10.77.0.22", 7000), timeout=20); c.sendall(data); c.shutdown(socket.SHUT_WR)
reply = b""
while True:
    b = c.recv(4096)
    if not b: break
    reply += b
want = "%s %d" % (hashlib.sha256(data).hexdigest(), len(data))
print("same" if reply.decode().strip() == want else "differs: %r vs %r" % (reply, want))' 2>&1)
expect_eq "a 2 MiB TCP stream (not HTTP/2) arrives intact, answered after the client's half-close" same "$out"
# Only the whole HTTP/2 preface is HTTP/2: its first line, then a half-close
# (or a pause past detection, then more), is an L4 stream like any other.
half_preface() { # half_preface PAUSE: prints "same" if the echo's checksum matches
  netns_as client $APP_UID $PY -c '
import hashlib, socket, sys, time
data = b"PRI * HTTP/2.0\r\n"
c = socket.create_connection(("10.77.0.22", 7000), timeout=10); c.sendall(data)
if float(sys.argv[1]) > 0:
    time.sleep(float(sys.argv[1])); more = b"and then some L4 bytes"; c.sendall(more); data += more
c.shutdown(socket.SHUT_WR)
got = c.makefile("rb").read().split()
ok = got == [hashlib.sha256(data).hexdigest().encode(), str(len(data)).encode()]
print("same" if ok else "differs: %r" % got)' "$1" 2>&1
}
expect_eq "the first line of an HTTP/2 preface, then a half-close, is carried as L4" same "$(half_preface 0)"
expect_eq "the first line of an HTTP/2 preface, a pause past detection, then more, is carried as L4" same \
  "$(half_preface 0.8)"
banner() { # banner PORT: a server-first exchange from the client app
  netns_as client $APP_UID $PY -c '
import socket, sys, time
t = time.time(); c = socket.create_connection(("10.77.0.22", int(sys.argv[1])), timeout=10); f = c.makefile("rb")
first = f.readline().decode().strip(); c.sendall(b"ping\n"); echo = f.readline().decode().strip()
print("%s %s %.1f" % (first, echo, time.time() - t))' "$1" 2>&1
}
# How soon the banner comes is a latency (0.3 s of detection elsewhere), not
# asserted against the clock: a loaded machine takes that long for the
# handshakes alone. That an opaque port skips detection shows without one:
# a client opening with the HTTP/2 preface is carried as bytes there.
out=$(banner 5432)
expect_match "a server-first protocol on an opaque port (5432) gets its banner ($out)" '^HELLO-SERVER-FIRST ping [0-9]' "$out"
out=$(banner 7100)
expect_match "a server-first protocol elsewhere: detection gives up, then L4 ($out)" '^HELLO-SERVER-FIRST ping [0-9]' "$out"
first_reply() { # first_reply PORT: what a client that opens with the HTTP/2 preface gets back first
  netns_as client $APP_UID $PY -c '
import socket, sys
c = socket.create_connection(("10.77.0.22", int(sys.argv[1])), timeout=10)
c.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
b = c.recv(64)
print("banner" if b.startswith(b"HELLO-SERVER-FIRST") else "h2 SETTINGS" if len(b) >= 9 and b[3] == 4 else repr(b))' "$1" 2>&1
}
expect_eq "an opaque port (5432) skips detection: the HTTP/2 preface goes to the app as bytes, its banner comes back" \
  banner "$(first_reply 5432)"
expect_eq "... where another port (7100) takes the preface as HTTP/2 (the sidecar's SETTINGS come back)" "h2 SETTINGS" \
  "$(first_reply 7100)"
out=$(banner 7200)
if printf '%s' "$out" | grep -q HELLO; then not_ok "an L4 connection denied by port policy is closed" "$out"
else ok "an L4 connection denied by port policy is closed"; fi
check "the L4 denial is logged with the policy" wait_for 3 grep -q '"event":"l4_denied".*"policy":"shop/no-7200"' "$WORK/server.out"
check "the L4 stream is logged with the caller's verified ID" wait_for 5 grep -q \
  "\"event\":\"l4\",\"protocol\":\"l4\",\"direction\":\"inbound\".*\"peer_id\":\"$TD/ns/shop/sa/frontend\"" "$WORK/server.out"
captured() { # captured PORT: the client pod's data segments to the server pod's PORT, as captured
  tcpdump -r "$BR_CAP" -nn "src 10.77.0.21 and dst 10.77.0.22 and tcp dst port $1 and tcp[tcpflags] & tcp-push != 0" \
    2>/dev/null | wc -l
}
all_captured() { # every connection above is in the capture, so what it lacks below means something
  local port
  for port in 8080 7000 5432 7100 7200; do [ "$(captured "$port")" -gt 0 ] || return 1; done
}
check "the capture holds the client pod's data to the server pod on ports 8080, 7000, 5432, 7100 and 7200" \
  wait_for 10 all_captured
kill -INT "$TCPDUMP"
wait "$TCPDUMP" 2>/dev/null
if grep -aq 'secret-path-xyz\|hunter2-in-the-clear' "$BR_CAP"; then
  not_ok "the wire carries not one byte of the request path or headers in clear"
else
  ok "the wire carries not one byte of the request path or headers in clear"
fi
if grep -aq 'L4-SECRET-MARKER\|HELLO-SERVER-FIRST' "$BR_CAP"; then not_ok "nor of the L4 streams"; else ok "nor of the L4 streams"; fi
if od -An -tx1 -v "$BR_CAP" | tr -d '\n' | grep -q ' 16 03 01\| 17 03 03'; then ok "the wire carries TLS records"
else not_ok "the wire carries TLS records"; fi
check "the client sidecar logs the verified upstream ID and the original destination" wait_for 5 \
  grep -q "\"peer_id\":\"$TD/ns/shop/sa/orders\".*\"upstream\":\"10.77.0.22:8080\"" "$WORK/client.out"
check "the server sidecar sends it to the app's original port" wait_for 5 grep -q '"upstream":"127.0.0.1:8080"' "$WORK/server.out"
if grep -q 'refusing to loop' "$WORK/client.out"; then not_ok "the sidecar's own connection is not looped back into itself"
else ok "the sidecar's own connection is not looped back into itself"; fi

# --- a pod without a sidecar ---
code=$(netns_exec bare curl -s --max-time 5 --http2-prior-knowledge -o /dev/null -w '%{http_code}' "http://10.77.0.22:8080/x")
expect_eq "STRICT: a pod without a sidecar is refused" 000 "$code"
check "the refusal is logged as plaintext in STRICT mode" wait_for 3 grep -q 'plaintext callers are refused' "$WORK/server.out"

# --- an explicit-mode caller (--route to the inbound port) ---
# Its connection is not redirected: its original destination is the
# inbound port itself, which would map to 127.0.0.1:15006, into the sidecar
# again. The server sidecar has no --app, so it answers 503 saying why.
start_bg "$WORK/explicit" ip netns exec "$(netns_name bare)" "$WISP_PROXY" --cert "$P/frontend.crt" \
  --key "$P/frontend.key" --bundle "$P/ca/ca.crt" --route "127.0.0.1:9000=10.77.0.22:15006" --admin off
PROXY_PIDS+=("$LAST_PID:explicit")
PID_explicit=$LAST_PID
check "an explicit-mode sidecar listens in the bare pod" wait_for 10 netns_listens bare 9000
direct_call() { # direct_call URL: status and x-wisp-error, from the bare pod
  netns_exec bare curl -s --max-time 5 --http2-prior-knowledge -o /dev/null -w '%{http_code} %header{x-wisp-error}' "$1"
}
out=$(direct_call "http://127.0.0.1:9000/explicit-direct")
expect_match "an explicit-mode caller to the transparent inbound port gets 503 saying why" \
  "^503 connected to the sidecar's own port directly, not redirected from an app port" "$out"
check "the server sidecar logs the direct connection" wait_for 3 grep -q '"event":"misdirected"' "$WORK/server.out"
if grep -q 'explicit-direct' "$WORK/app.out"; then not_ok "... and the app sees nothing of it"; else ok "... and the app sees nothing of it"; fi
stop_proxy explicit
printf 'apiVersion: wisp.dev/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {mode: PERMISSIVE}\n' >"$P/policy.yaml.new"
chmod a+r "$P/policy.yaml.new"
mv "$P/policy.yaml.new" "$P/policy.yaml"
check "PERMISSIVE is applied" wait_for 3 grep -q '"mtls_mode":"PERMISSIVE"' "$WORK/server.err"
code=$(netns_exec bare curl -s --max-time 5 --http2-prior-knowledge -o /dev/null -w '%{http_code}' "http://10.77.0.22:8080/x")
expect_eq "PERMISSIVE: a pod without a sidecar is served" 200 "$code"
# x-wisp-proto is believed only from a peer sidecar (mTLS): a plaintext
# caller's would have the h2c app spoken to in HTTP/1.1 (502).
code=$(netns_exec bare curl -s --max-time 5 --http2-prior-knowledge -H 'x-wisp-proto: http/1.1' -o /dev/null \
  -w '%{http_code}' "http://10.77.0.22:8080/plain-forged")
expect_eq "PERMISSIVE: a plaintext caller's own x-wisp-proto is ignored: its h2c app still gets h2c" 200 "$code"
out=$(direct_call "http://10.77.0.22:15006/plain-direct")
expect_match "PERMISSIVE: plaintext straight to the inbound port gets 503, not a loop through the sidecar" \
  "^503 connected to the sidecar's own port directly" "$out"
expect_eq "... and the server sidecar still serves" 200 \
  "$(netns_exec bare curl -s --max-time 5 --http2-prior-knowledge -o /dev/null -w '%{http_code}' "http://10.77.0.22:8080/x")"

# --- SIGTERM drains: an open L4 stream runs to its end, then the sidecar exits ---
rm -f "$WORK/go-on"
start_bg "$WORK/drainl4" ip netns exec "$(netns_name client)" setpriv --reuid $APP_UID --regid $APP_UID --clear-groups \
  $PY -c '
import hashlib, os, socket, sys, time
data = os.urandom(1 << 20)
c = socket.create_connection(("10.77.0.22", 7000), timeout=20); c.sendall(data[:1 << 19])
print("half-sent", flush=True)
for _ in range(200):
    if os.path.exists(sys.argv[1]): break
    time.sleep(0.05)
c.sendall(data[1 << 19:]); c.shutdown(socket.SHUT_WR)
reply = c.makefile("rb").read().decode().strip()
print("same" if reply == "%s %d" % (hashlib.sha256(data).hexdigest(), len(data)) else "differs: " + reply, flush=True)' "$WORK/go-on"
DRAIN_L4=$LAST_PID
check "an L4 stream is open through the client sidecar" wait_for 10 grep -q half-sent "$WORK/drainl4.out"
kill -TERM "$PID_client"
check "the sidecar starts draining" wait_for 5 grep -q draining "$WORK/client.err"
touch "$WORK/go-on"
wait "$DRAIN_L4"
expect_eq "the open L4 stream finishes intact after SIGTERM (the second half sent during the drain)" same \
  "$(tail -1 "$WORK/drainl4.out")"
stop_proxy client
expect_match "... and is logged whole" '"event":"l4".*"upstream":"10.77.0.22:7000","bytes_in":1048576' \
  "$(cat "$WORK/client.out")"

# --- many distinct destinations: unused ones are evicted, 503 only when all are in use ---
# The server pod answers on more addresses; each is a destination of its own
# for the client sidecar, which may keep 2 (--max-destinations 2).
for i in 1 2 3 4 5; do netns_exec server ip addr add "10.77.0.3$i/24" dev eth0; done
pod_proxy client2 client frontend --max-destinations 2 --admin 127.0.0.1:15000 --transparent-http1=false
check "a client sidecar with --max-destinations 2 listens" wait_for 10 netns_listens client 15001 15000
metric_of() { # metric_of NAME: its value on the client sidecar's /metrics
  netns_exec client curl -s --max-time 5 http://127.0.0.1:15000/metrics | awk -v n="$1" '$1 == n {print $2}'
}
codes=""
for ip in 22 31 32 33 34 35; do
  codes="$codes $(netns_as client $APP_UID curl -s --max-time 10 --http2-prior-knowledge -o /dev/null \
    -w '%{http_code}' "http://10.77.0.$ip:8080/dest-$ip")"
done
expect_eq "6 distinct destinations one after another, with room for 2: every one is served" \
  " 200 200 200 200 200 200" "$codes"
expect_eq "... 2 destinations are kept" 2 "$(metric_of wisp_destinations)"
expect_eq "... 4 were evicted" 4 "$(metric_of wisp_destinations_evicted_total)"
upstreams_of_kept() { [ "$(metric_of 'wisp_connections_open{side="upstream"}')" = 2 ]; }
check "... and the evicted ones' idle upstream connections are closed (2 left, one per kept destination)" \
  wait_for 3 upstreams_of_kept
# Both slots in use (a slow request on each): a third destination gets 503 saying why.
for ip in 31 32; do
  start_bg "$WORK/held$ip" ip netns exec "$(netns_name client)" setpriv --reuid $APP_UID --regid $APP_UID \
    --clear-groups curl -s --max-time 20 --http2-prior-knowledge -o /dev/null -w '%{http_code}' \
    "http://10.77.0.$ip:8080/slow?ms=4000"
  eval "HELD$ip=$LAST_PID"
done
streams_held() { [ "$(metric_of wisp_streams_open)" = 2 ]; }
check "two slow requests hold both destinations" wait_for 5 streams_held
out=$(netns_as client $APP_UID curl -sS --max-time 10 --http2-prior-knowledge -o /dev/null \
  -w '%{http_code} %header{x-wisp-error}' "http://10.77.0.33:8080/while-full" 2>&1)
expect_match "with every destination in use, a new one gets 503 saying so" \
  '^503 all 2 transparent destinations are in use by open connections \(--max-destinations 2\)' "$out"
check "... logged as unavailable" grep -q '"event":"unavailable"' "$WORK/client2.out"
wait "$HELD31" "$HELD32"
expect_eq "the requests that held them finish" "200 200" "$(cat "$WORK/held31.out") $(cat "$WORK/held32.out")"
code=$(netns_as client $APP_UID curl -sS --max-time 10 --http2-prior-knowledge -o /dev/null -w '%{http_code}' \
  "http://10.77.0.33:8080/after-full" 2>&1)
expect_eq "once they are done, the new destination is served" 200 "$code"
# With --transparent-http1=false (the escape hatch) an HTTP/1.1 request goes
# L4: an app that is not HTTP (here the checksum echo) gets the caller's own bytes.
out=$(netns_as client $APP_UID $PY -c '
import hashlib, socket
data = b"GET /h1-as-l4 HTTP/1.1\r\nHost: 10.77.0.22:7000\r\n\r\n"
c = socket.create_connection(("10.77.0.22", 7000), timeout=10); c.sendall(data); c.shutdown(socket.SHUT_WR)
got = c.makefile("rb").read().split()
print("same" if got == [hashlib.sha256(data).hexdigest().encode(), str(len(data)).encode()] else "differs: %r" % got)' 2>&1)
expect_eq "with --transparent-http1=false an HTTP/1.1 request is carried as L4, byte for byte" same "$out"
stop_proxy client2
stop_proxy server
for pod in client server; do netns_exec "$pod" bash "$IPT" --remove >/dev/null 2>&1; done
netns_cleanup
expect_eq "no namespace of ours is left" "" "$(netns_leftovers)"
finish
