#!/usr/bin/env bash
# Startup errors, upstream failures explained to the caller, idle timeout,
# and graceful drain on SIGTERM.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
make_pki
p=$WORK/pki

# --- startup: clear errors and exit codes ---
out=$("$WISP_PROXY" --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" --route nonsense 2>&1)
rc=$?
expect_eq "a bad --route exits 2" 2 "$rc"
expect_match "... with a message naming the flag" '--route nonsense: expected LISTEN=PEER' "$out"
out=$("$WISP_PROXY" --cert "$p/missing.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" --app 127.0.0.1:1 --inbound 127.0.0.1:0 2>&1)
expect_eq "a missing certificate exits 1" 1 "$?"
expect_match "... naming the file" 'cannot read .*missing.crt: No such file' "$out"
out=$("$WISP_PROXY" --cert "$p/frontend.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" --app 127.0.0.1:1 --inbound 127.0.0.1:0 2>&1)
expect_match "a key that does not match the certificate is refused at start" 'private key .*orders.key does not match certificate .*frontend.crt' "$out"
out=$("$WISP_PROXY" --help)
expect_match "--help lists the flags" '--route LISTEN=PEER' "$out"
out=$(WISP_CERT="$p/frontend.crt" WISP_KEY="$p/frontend.key" WISP_BUNDLE="$p/ca/ca.crt" WISP_ROUTE="bad" "$WISP_PROXY" 2>&1)
expect_match "WISP_* environment variables are read" 'bad: expected LISTEN=PEER' "$out"

start_pair --idle-timeout 2 || { not_ok "pair starts"; finish; }
OUT=http://127.0.0.1:$OUT_PORT

# --- upstream failures, explained ---
bash "$PKI" svid "$p/ca" "$p/old" "$TD/ns/shop/sa/orders" --expired >/dev/null
bash "$PKI" ca "$p/other-ca" >/dev/null
bash "$PKI" svid "$p/other-ca" "$p/impostor" "$TD/ns/shop/sa/orders" >/dev/null
EXP_IN=$(free_port)
IMP_IN=$(free_port)
SILENT=$(free_port)
start_proxy expired_server --cert "$p/old.crt" --key "$p/old.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$EXP_IN" --app "127.0.0.1:$APP_PORT"
start_proxy impostor --cert "$p/impostor.crt" --key "$p/impostor.key" --bundle "$p/other-ca/ca.crt" \
  --inbound "127.0.0.1:$IMP_IN" --app "127.0.0.1:$APP_PORT"
# A TCP server that accepts and never speaks (stalls every handshake).
start_bg "$WORK/silent" node -e '
const net = require("net"); const held = [];
net.createServer((s) => held.push(s)).listen(+process.argv[1], "127.0.0.1", () => console.log("listening"));' "$SILENT"
R1=$(free_port) R2=$(free_port) R3=$(free_port) R4=$(free_port)
start_proxy routes --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" --handshake-timeout 1 \
  --route "127.0.0.1:$R1=127.0.0.1:$EXP_IN" --route "127.0.0.1:$R2=127.0.0.1:$IMP_IN" \
  --route "127.0.0.1:$R3=127.0.0.1:$SILENT" --route "127.0.0.1:$R4=127.0.0.1:$APP_PORT"
for port in $EXP_IN $IMP_IN $SILENT $R1 $R2 $R3 $R4; do wait_port "$port"; done
err_of() { curl -s --max-time 10 --http2-prior-knowledge -o /dev/null -w '%{http_code} %header{x-wisp-error}' "http://127.0.0.1:$1/"; }
expect_match "upstream with an expired SVID: 502 saying when it expired" \
  "^502 .*certificate of $TD/ns/shop/sa/orders expired at " "$(err_of "$R1")"
expect_match "upstream from an unknown CA: 502 saying so" '^502 .*issued by a CA that is not in the trust bundle' "$(err_of "$R2")"
expect_match "upstream that never finishes the handshake: 502 after the timeout" \
  '^502 .*TLS handshake not finished within 1s' "$(err_of "$R3")"
expect_match "upstream that does not speak TLS: 502 saying so" '^502 .*did not speak TLS' "$(err_of "$R4")"
stop_proxy routes
stop_proxy expired_server
stop_proxy impostor

# --- connect timeout: a listener whose accept queue is full drops SYNs ---
FULL=$(free_port)
start_bg "$WORK/full" /usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(0)
held = []
for _ in range(4):  # fill the queue; it is never accepted from
    c = socket.socket(); c.setblocking(False)
    try: c.connect(("127.0.0.1", int(sys.argv[1])))
    except BlockingIOError: pass
    held.append(c)
print("ready", flush=True); time.sleep(120)' "$FULL"
wait_for 5 grep -q ready "$WORK/full.out"
R5=$(free_port)
start_proxy slowroute --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" --admin off \
  --connect-timeout 1 --route "127.0.0.1:$R5=127.0.0.1:$FULL"
wait_port "$R5"
t0=$(date +%s%N)
out=$(err_of "$R5")
ms=$((($(date +%s%N) - t0) / 1000000))
expect_match "an upstream that never completes the TCP handshake: 503 after --connect-timeout" \
  "^503 .*connect to 127.0.0.1:$FULL timed out after 1s" "$out"
# Only the lower bound is a fact about wisp; a loaded machine may add any delay.
if [ "$ms" -ge 900 ]; then ok "... not before 1 s (${ms} ms)"; else not_ok "connect timeout not before 1 s" "${ms} ms"; fi
stop_proxy slowroute

# --- idle upstream connections are closed with GOAWAY ---
h2get -o /dev/null "$OUT/warm"
pooled() { ss -Htn state established "( dport = :$IN_PORT )" | wc -l; }
n=$(pooled)
if [ "$n" -ge 1 ]; then ok "the pooled connection stays open after the request ($n)"; else not_ok "the pooled connection stays open after the request" "$n"; fi
none_pooled() { [ "$(pooled)" = 0 ]; }
check "an idle pooled connection is closed after --idle-timeout" wait_for 15 none_pooled
expect_eq "and the next request opens a new one" 200 "$(h2get -o /dev/null -w '%{http_code}' "$OUT/again")"

# --- SIGTERM: in-flight requests finish, new connections are refused ---
h2get -o /dev/null -w '%{http_code}' "$OUT/slow?ms=1500" >"$WORK/inflight.code" &
INFLIGHT=$!
wait_for 10 grep -q '"path":"/slow?ms=1500"' "$WORK/app.out" # in flight: the app has it
kill -TERM "$PID_client"
not_listening() { [ -z "$(ss -Htln "sport = :$OUT_PORT")" ]; }
wait_for 10 not_listening
code=$(curl -s --max-time 3 --http2-prior-knowledge -o /dev/null -w '%{http_code}' "$OUT/late")
expect_eq "after SIGTERM new connections are refused" 000 "$code"
wait "$INFLIGHT"
expect_eq "a request in flight at SIGTERM completes" 200 "$(cat "$WORK/inflight.code")"
stop_proxy client
expect_match "the drain is logged" 'draining' "$(cat "$WORK/client.err")"

# --- SIGTERM: a caller whose protocol is still being told is closed by the drain ---
# It sent one byte of a TLS ClientHello. Before, it was left to become a
# handshake and an HTTP/2 connection mid-drain (holding the drain open) and
# was leaked at exit. A slow request keeps the server draining meanwhile.
OUT2=$(free_port)
start_proxy client2 --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" \
  --route "127.0.0.1:$OUT2=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders"
wait_port "$OUT2"
h2get -o /dev/null -w '%{http_code}' "http://127.0.0.1:$OUT2/slow?ms=4000" >"$WORK/inflight2.code" &
INFLIGHT=$!
wait_for 10 grep -q '"path":"/slow?ms=4000"' "$WORK/app.out"
start_bg "$WORK/detecting" /usr/bin/python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"\x16")
print("sent", flush=True)
s.settimeout(30)
try:
    print("closed" if s.recv(1) == b"" else "data")
except ConnectionResetError:
    print("closed")
except socket.timeout:
    print("open")
' "$IN_PORT"
DETECTING=$LAST_PID
wait_for 10 grep -q sent "$WORK/detecting.out"
accepted() { [ "$(ss -Htln "sport = :$IN_PORT" | awk '{print $2}')" = 0 ]; } # not in the backlog
wait_for 10 accepted
kill -TERM "$PID_server"
wait "$DETECTING"
draining=$(kill -0 "$INFLIGHT" 2>/dev/null && echo still-draining || echo exited)
expect_eq "a caller still being detected at SIGTERM is closed as the drain starts" "closed still-draining" \
  "$(tail -1 "$WORK/detecting.out") $draining"
wait "$INFLIGHT"
expect_eq "... while a request in flight completes" 200 "$(cat "$WORK/inflight2.code")"
stop_proxy server
stop_proxy client2
finish
