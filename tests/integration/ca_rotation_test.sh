#!/usr/bin/env bash
# CA rotation end to end with traffic running: PREPARE (new root in every
# bundle), ACTIVATE (new root signs), FINISH (old root dropped), and not one
# failed request, with new mTLS handshakes happening all along.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
AGENT=$(wisp_find_bin wisp-agent "$@") || exit 1
WISPCTL=$(wisp_find_bin wispctl "$@") || exit 1
SOCK=$SOCKDIR/agent.sock
TTL=4
ac() { node "$NODE_DIR/agent_client.js" --target "unix://$SOCK" "$@"; }
field() { sed -n "s/.*\"$1\":\"\\{0,1\\}\\([^\",}]*\\).*/\\1/p"; }
start_bg "$WORK/agent" "$AGENT" --state-dir "$WORK/state" --listen "unix:$SOCK" --trust-domain shop.local --svid-ttl ${TTL}s
AGENT_PID=$LAST_PID
wait_for 10 test -S "$SOCK" || { not_ok "agent starts"; finish; }
APP_PORT=$(free_port) IN_PORT=$(free_port) OUT_PORT=$(free_port) LOOP_PORT=$(free_port) ADM_S=$(free_port) ADM_C=$(free_port)
start_app app "$APP_PORT"
# The server closes connections idle for 0.3 s, so the steady request loop
# below keeps making new mTLS handshakes through every step. The client
# proxy keeps the default: a 0.3 s stall of h2load on a loaded machine
# would get its connections a GOAWAY, and h2load does not reconnect.
start_proxy server --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/orders" --admin "127.0.0.1:$ADM_S" \
  --join-token "$(ac token "$TD/ns/shop/sa/orders" | field token)" --idle-timeout 0.3 \
  --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT"
start_proxy client --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/frontend" --admin "127.0.0.1:$ADM_C" \
  --join-token "$(ac token "$TD/ns/shop/sa/frontend" | field token)" \
  --route "127.0.0.1:$OUT_PORT=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders" \
  --route "127.0.0.1:$LOOP_PORT=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders"
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/ready")" = 200 ]; }
wait_for 10 ready "$ADM_S" && wait_for 10 ready "$ADM_C" || { not_ok "proxies get SVIDs"; finish; }

# Traffic for the whole rotation, however long a loaded machine makes it
# (until $WORK/rotated, bounded): h2load in rounds of 3 s, and a loop of
# single requests 0.4 s apart on a route of its own, whose pooled connection
# goes idle and is closed between them.
ROTATED=$WORK/rotated
(for round in $(seq 1 60); do
  [ -e "$ROTATED" ] && break
  h2load -D 3 -c 2 -m 2 "http://127.0.0.1:$OUT_PORT/" >"$WORK/h2load.$round.out" 2>&1
done) &
H2LOAD=$!
PIDS+=("$H2LOAD")
(for _ in $(seq 1 450); do
  [ -e "$ROTATED" ] && break
  curl -s --max-time 5 --http2-prior-knowledge -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$LOOP_PORT/loop"
  sleep 0.4
done >"$WORK/loop.codes") &
LOOP=$!
PIDS+=("$LOOP")
roots_acked() { # roots_acked PROXY N: the proxy ACKed a snapshot with N roots
  grep -q "\"event\":\"ack\",\"version\":\"[0-9]*\",\"bundle_roots\":$2" "$WORK/$1.err"
}
issuer_fp() { openssl x509 -in "$WORK/state/ca.crt" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d : | tr 'A-F' 'a-f'; }
# The SVID the server presents, into served.pem. No client certificate:
# the server's comes first in the handshake, and a probe's SVID would expire
# within the TTL (the server then refuses the probe before we look).
served_svid() {
  echo | timeout 5 openssl s_client -connect "127.0.0.1:$IN_PORT" -alpn h2 2>/dev/null |
    openssl x509 >"$WORK/served.pem" 2>/dev/null
}
verifies_with() { openssl verify -CAfile "$1" "$WORK/served.pem" >/dev/null 2>&1; }
served_root_ok() { served_svid && verifies_with "$1"; } # the served SVID verifies with |root| alone
issued() { grep -c '"type":"cert","event":"issued"' "$WORK/$1.err"; }
old_svids_renewed() { # each proxy installed two SVIDs since ACTIVATE
  [ "$(issued server)" -ge $((n_server + 2)) ] && [ "$(issued client)" -ge $((n_client + 2)) ]
}
cp "$WORK/state/ca.crt" "$WORK/old-root.pem"
sleep 2

out=$(ac rotate prepare)
expect_match "PREPARE: the bundle holds two roots" '"state":"prepared","bundle_roots":2' "$out"
check "PREPARE: the server proxy ACKs a bundle of 2 roots" wait_for 3 roots_acked server 2
check "PREPARE: the client proxy ACKs a bundle of 2 roots" wait_for 3 roots_acked client 2
sleep 2
out=$(ac rotate activate)
n_server=$(issued server) n_client=$(issued client)
# Asked at once (the TTL is 4 s: asked after waiting for the new SVID
# below, a loaded machine let the lifetime pass and FINISH was accepted).
activated=$out
out=$(ac rotate finish)
expect_match "FINISH right after ACTIVATE is refused: SVIDs of the old root are in use" \
  '"name":"FAILED_PRECONDITION".*SVIDs signed by the old root may be in use until 20[0-9-]+T[0-9:]+Z \(one SVID lifetime, 4 s, after ACTIVATE; [0-2] known identities have not renewed since\)' "$out"
out=$activated
expect_match "ACTIVATE: the new root signs" '"state":"active","bundle_roots":2' "$out"
new_fp=$(issuer_fp)
expect_match "ACTIVATE: the signing root reported is the new one" "\"signing_root_sha256\":\"$new_fp\"" "$out"
cp "$WORK/state/ca.crt" "$WORK/new-root.pem"
check "ACTIVATE: within one TTL the server presents an SVID from the new root" \
  wait_for $((TTL + 3)) served_root_ok "$WORK/new-root.pem"
# Every SVID from the old root is renewed before FINISH drops that root: the
# second SVID each proxy installs after ACTIVATE was asked for after it
# (the first may answer a request sent just before). Renewals come about
# every TTL/2; a loaded machine can be slower.
check "ACTIVATE: both proxies renew their SVIDs from the new root" \
  wait_for $((4 * TTL)) old_svids_renewed
finished() { out=$(ac rotate finish) && [[ "$out" == *'"state":"done"'* ]]; }
wait_for $((2 * TTL)) finished # accepted once one SVID lifetime has passed since ACTIVATE
finished_at=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
expect_match "FINISH: the old root is dropped" '"state":"done","bundle_roots":1' "$out"
check "FINISH: the server proxy ACKs a bundle of 1 root" wait_for 3 roots_acked server 1
check "FINISH: the client proxy ACKs a bundle of 1 root" wait_for 3 roots_acked client 1
if served_svid; then
  if verifies_with "$WORK/old-root.pem"; then not_ok "after FINISH the old root no longer verifies served SVIDs"
  else ok "after FINISH the old root no longer verifies served SVIDs"; fi
else
  not_ok "after FINISH the server presents an SVID" "openssl s_client got none"
fi
sleep 1 # traffic after FINISH, with the old root gone
touch "$ROTATED"

wait "$LOOP"
wait "$H2LOAD"
codes=$(sort "$WORK/loop.codes" | uniq -c | tr -s ' ' | tr '\n' ';')
expect_match "every single request across the rotation got 200 (new handshakes each time)" '^ ?[0-9]+ 200;$' "$codes"
# Every round without a failure, and h2load still sending after FINISH
# (h2load stops using a connection that got a GOAWAY).
bad=$(grep -L ' 0 failed, 0 errored, 0 timeout' "$WORK"/h2load.*.out; grep -l 'Process Request Failure' "$WORK"/h2load.*.out)
rounds=$(ls "$WORK"/h2load.*.out | wc -l)
if [ -z "$bad" ] && [ "$rounds" -gt 0 ]; then ok "h2load across the rotation: no failure in $rounds rounds"
else not_ok "h2load across the rotation: no failure" "$(grep -h 'requests:\|Process Request' $bad | tr '\n' ' ')"; fi
last_h2load=$(grep '"path":"/"' "$WORK/client.out" | tail -1 | sed 's/^{"time":"\([^"]*\)".*/\1/')
if [[ "$last_h2load" > "$finished_at" ]]; then ok "h2load's requests went on past FINISH ($last_h2load > $finished_at)"
else not_ok "h2load's requests went on past FINISH" "last at [$last_h2load], FINISH at $finished_at"; fi
n=$(grep -o '"conn":[0-9]*' "$WORK/server.out" | sort -u | wc -l)
if [ "$n" -ge 20 ]; then ok "the server saw many new mTLS connections during the rotation ($n)"; else not_ok "many new connections" "$n"; fi
out=$("$WISPCTL" --agent "unix://$SOCK" ca rotate finish)
expect_match "wispctl ca rotate finish (again) reports the state" '^rotation done: 1 root\(s\) in the bundle, signing root sha256 [0-9a-f]{64}$' "$out"
out=$("$WISPCTL" --agent "unix://$SOCK" ca rotate activate 2>&1)
expect_match "wispctl ca rotate activate without prepare: FAILED_PRECONDITION" 'FAILED_PRECONDITION.*prepare first' "$out"
"$WISPCTL" --agent "unix://$SOCK" ca rotate sideways >/dev/null 2>&1
expect_eq "wispctl ca rotate with an unknown step exits 2" 2 "$?"
stop_proxy client
stop_proxy server
kill -TERM "$AGENT_PID"
wait "$AGENT_PID"
expect_eq "agent exits 0" 0 "$?"
expect_eq "a restarted agent keeps the new CA" "$new_fp" "$(issuer_fp)"

# The wait for the old root's SVIDs outlives an agent restart; --force cuts it short.
restart_agent() {
  start_bg "$WORK/agent2" "$AGENT" --state-dir "$WORK/state" --listen "unix:$SOCK" --trust-domain shop.local --svid-ttl 1h
  AGENT_PID=$LAST_PID
  wait_for 10 test -S "$SOCK"
}
restart_agent
ac rotate prepare >/dev/null
ac rotate activate >/dev/null
kill -TERM "$AGENT_PID"
wait "$AGENT_PID"
rm -f "$SOCK"
restart_agent
out=$("$WISPCTL" --agent "unix://$SOCK" ca rotate finish 2>&1)
expect_match "after a restart FINISH still waits one SVID lifetime (1 h) after ACTIVATE" \
  'FAILED_PRECONDITION.*may be in use until .*\(one SVID lifetime, 3600 s, after ACTIVATE' "$out"
out=$("$WISPCTL" --agent "unix://$SOCK" ca rotate prepare --force 2>&1)
expect_eq "wispctl: --force is for finish only (usage, exit 2)" 2 "$?"
out=$("$WISPCTL" --agent "unix://$SOCK" ca rotate finish --force)
expect_match "wispctl ca rotate finish --force drops the old root now" '^rotation done: 1 root\(s\) in the bundle' "$out"
kill -TERM "$AGENT_PID"
wait "$AGENT_PID"
expect_eq "agent exits 0" 0 "$?"
finish
