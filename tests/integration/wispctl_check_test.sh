#!/usr/bin/env bash
# wispctl check against a real wisp-agent and real proxies: all ✓ and exit
# 0 when the mesh is healthy; then each thing broken in turn, and the
# check's ✗ line, its details and hint, and exit 1 read back (text and
# -o json): the agent down, a proxy NACKing (a @grpc/grpc-js Config.Watch
# client: no wisp-proxy refuses what the agent accepted, since both compile
# the policy with lib/wisp_policy), SVIDs near expiry (--svid-ttl), a CA near
# expiry (--ca-cert), a sidecar that cannot reach its peer, a transparent
# sidecar without iptables interception, and a CA rotation (‼, exit 0).
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
AGENT=$(wisp_find_bin wisp-agent "$@") || exit 1
WISPCTL=$(wisp_find_bin wispctl "$@") || exit 1
unset WISP_AGENT
PY=/usr/bin/python3
SOCK=$SOCKDIR/agent.sock
ac() { node "$NODE_DIR/agent_client.js" --target "unix://$SOCK" "$@"; }
field() { sed -n "s/.*\"$1\":\"\\{0,1\\}\\([^\",}]*\\).*/\\1/p"; }
# chk ARGS...: wispctl check; sets OUT, ERR, RC.
chk() {
  "$WISPCTL" --timeout 5s check "$@" >"$WORK/chk.out" 2>"$WORK/chk.err"
  RC=$?
  OUT=$(cat "$WORK/chk.out")
  ERR=$(cat "$WORK/chk.err")
}
# jq_check ID: "status|title|details joined by ;|hint" of check ID in $OUT (-o json).
jq_check() {
  printf '%s' "$OUT" | $PY -c '
import json, sys
doc = json.load(sys.stdin)
for c in doc["checks"]:
    if c["id"] == sys.argv[1]:
        print("%s|%s|%s|%s" % (c["status"], c["title"], ";".join(c["details"]), c["hint"] or ""))
' "$1"
}
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/ready")" = 200 ]; }
start_agent() { # start_agent STATE_DIR ARGS...
  local dir=$1
  shift
  start_bg "$WORK/agent" "$AGENT" --state-dir "$dir" --listen "unix:$SOCK" --trust-domain shop.local "$@"
  AGENT_PID=$LAST_PID
  wait_for 10 test -S "$SOCK"
}
stop_agent() {
  kill -TERM "$AGENT_PID"
  wait "$AGENT_PID"
  rm -f "$SOCK"
}
export WISP_AGENT="unix://$SOCK"

# ---- a healthy mesh: agent, server and client sidecars, an app ----
start_agent "$WORK/state" || { not_ok "agent starts"; finish; }
APP_PORT=$(free_port) IN_PORT=$(free_port) OUT_PORT=$(free_port) DEAD_OUT=$(free_port) DEAD_PORT=$(free_port)
ADM_S=$(free_port) ADM_C=$(free_port)
ac token "$TD/ns/shop/sa/orders" | field token >"$WORK/orders.token"
ac token "$TD/ns/shop/sa/frontend" | field token >"$WORK/frontend.token"
start_app app "$APP_PORT"
start_proxy server --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/orders" --join-token-file "$WORK/orders.token" \
  --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --admin "127.0.0.1:$ADM_S"
# Two routes: to the server, and to a peer that is not there (used below).
start_proxy client --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/frontend" \
  --join-token-file "$WORK/frontend.token" --admin "127.0.0.1:$ADM_C" \
  --route "127.0.0.1:$OUT_PORT=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders" \
  --route "127.0.0.1:$DEAD_OUT=127.0.0.1:$DEAD_PORT,id=$TD/ns/shop/sa/payments"
check "both sidecars become ready" wait_for 20 bash -c "$(declare -f ready); ready $ADM_S && ready $ADM_C"
printf 'apiVersion: wisp.dev/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {mode: STRICT}\n' \
  >"$WORK/strict.yaml"
V=$(ac apply "$WORK/strict.yaml" | field version)
acked_by_both() { [ "$(ac status | grep -o "\"acked_version\":\"$V\"" | wc -l)" = 2 ]; }
check "both sidecars ACK policy version $V" wait_for 20 acked_by_both
expect_match "a request goes through the pair" '^200$' \
  "$(curl -s -o /dev/null -w '%{http_code}' --http2-prior-knowledge "http://127.0.0.1:$OUT_PORT/")"

chk
expect_eq "healthy: exit 0" 0 "$RC"
expect_eq "... no ✗ and no ‼ line" "" "$(printf '%s\n' "$OUT" | grep -E '^(✗|‼)')"
expect_match "... the agent answers" "^✓ the agent answers at unix://$SOCK \(policy version $V\)$" "$OUT"
expect_match "... the CA" '^✓ the CA certificate is valid, expires in 36[0-9][0-9]d' "$OUT"
expect_match "... the bundle" "^✓ the trust bundle's 1 root\(s\) are valid$" "$OUT"
expect_match "... rotation" '^✓ no CA rotation in progress$' "$OUT"
expect_match "... identities connected" '^✓ all 2 known identities have sidecars connected \(2 sidecars\)$' "$OUT"
expect_match "... ACKed" "^✓ every connected sidecar \(2, of 2 identities\) ACKed policy version $V$" "$OUT"
expect_match "... no NACK" '^✓ no connected sidecar refused a config \(no NACK\)$' "$OUT"
expect_match "... SVIDs" '^✓ the SVIDs of connected identities \(2\) are not near expiry$' "$OUT"
expect_match "... and the summary" '^✓ all 8 checks passed$' "$OUT"
chk --proxy "127.0.0.1:$ADM_C"
expect_eq "healthy sidecar: exit 0" "0" "$RC"
expect_match "... its admin API answers" "^✓ the sidecar's admin API answers at 127.0.0.1:$ADM_C$" "$OUT"
expect_match "... ready" '^✓ the sidecar is ready$' "$OUT"
expect_match "... explicit mode" '^✓ explicit mode \(--route\): no interception to prove$' "$OUT"
expect_match "... its SVID" "^✓ its SVID for $TD/ns/shop/sa/frontend is valid, expires in (1d|2[0-9]h)" "$OUT"
expect_match "... its bundle" '^✓ its trust bundle holds 1 valid root\(s\)' "$OUT"
expect_match "... its Watch" "^✓ it receives its config from the agent at unix://$SOCK$" "$OUT"
expect_match "... its policy" "^✓ it enforces the agent's policy version $V$" "$OUT"
expect_match "... no upstream failing" '^✓ no upstream is failing' "$OUT"
expect_match "... 16 checks" '^✓ all 16 checks passed$' "$OUT"
( unset WISP_AGENT; chk --proxy "127.0.0.1:$ADM_C"; printf '%s\n' "$RC" >"$WORK/own.rc" )
expect_eq "no --agent, no WISP_AGENT: the sidecar's own agent socket is checked, exit 0" 0 "$(cat "$WORK/own.rc")"
expect_match "... named in the agent line" "^✓ the agent answers at unix://$SOCK " "$(cat "$WORK/chk.out")"
chk --proxy "127.0.0.1:$ADM_C" -o json
expect_eq "-o json: exit 0" 0 "$RC"
expect_eq "... ok, 16 passed, every one \"pass\"" "True 16 0 0 pass" "$(printf '%s' "$OUT" | $PY -c '
import json, sys
d = json.load(sys.stdin)
print(d["ok"], d["passed"], d["warnings"], d["failed"], ",".join(sorted(set(c["status"] for c in d["checks"]))))')"
expect_eq "... ids for scripts" \
  "agent.reachable agent.ca agent.bundle agent.rotation agent.proxies agent.acked agent.nacks agent.svids proxy.admin proxy.ready proxy.interception proxy.svid proxy.bundle proxy.agent proxy.policy proxy.upstreams" \
  "$(printf '%s' "$OUT" | $PY -c 'import json,sys; print(" ".join(c["id"] for c in json.load(sys.stdin)["checks"]))')"

# ---- a peer the sidecar cannot reach ----
code=$(curl -s -o /dev/null -w '%{http_code}' --http2-prior-knowledge "http://127.0.0.1:$DEAD_OUT/")
expect_eq "a request to the absent peer fails (503)" 503 "$code"
chk --proxy "127.0.0.1:$ADM_C"
expect_eq "unreachable peer: exit 1" 1 "$RC"
expect_match "... ✗ naming it" '^✗ it failed to reach 1 upstream\(s\) since they last answered$' "$OUT"
expect_match "... the peer, its identity and why" \
  "^    peer 127.0.0.1:$DEAD_PORT \($TD/ns/shop/sa/payments\): cannot connect(: | to 127.0.0.1:$DEAD_PORT: )Connection refused \(1 time, last [0-9]+s ago\)$" \
  "$OUT"
expect_match "... and a hint" '^    hint: a peer: is its sidecar running, and is its inbound port reachable' "$OUT"
expect_match "... the rest still pass" '^✗ 1 of 16 checks failed$' "$OUT"
chk --proxy "127.0.0.1:$ADM_S"
expect_eq "the server sidecar has no failing upstream: exit 0" 0 "$RC"

# ---- a CA rotation under way: warnings, exit 0 ----
"$WISPCTL" ca rotate prepare >/dev/null
roots2() { curl -s "http://127.0.0.1:$ADM_C/status" | grep -q '"bundle_roots":2'; }
check "the sidecar gets the two-root bundle" wait_for 20 roots2
check "... and ACKs it" wait_for 20 bash -c "$(declare -f ac acked_by_both); SOCK=$SOCK NODE_DIR=$NODE_DIR V=$(ac status | field version | head -1) acked_by_both"
chk
expect_eq "rotation prepared: exit 0 (a warning is not a failure)" 0 "$RC"
expect_match "... ‼ with what it means" \
  '^‼ a CA rotation is prepared: a new root is in the bundle, the old root still signs$' "$OUT"
expect_match "... and what to do next" '^    hint: .*run wispctl ca rotate activate$' "$OUT"
expect_match "... summary" '^✓ all 8 checks passed \(1 warning\)$' "$OUT"
"$WISPCTL" ca rotate activate >/dev/null
chk -o json
expect_match "rotation active: a warning in -o json" \
  '^warning\|a CA rotation is active: the new root signs, 2 roots are trusted\|SVIDs the old root signed may still be in use: finish in (1d|2[34]h[0-9m]*) \(20[0-9-]+T[0-9:]+Z\) or later\|.*wispctl ca rotate finish$' \
  "$(jq_check agent.rotation)"
expect_eq "... exit 0" 0 "$RC"

# ---- a proxy that NACKs ----
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/legacy.key" 2>/dev/null
openssl req -new -key "$WORK/legacy.key" -subj /O=wisp -addext "subjectAltName=URI:$TD/ns/shop/sa/legacy" \
  -outform DER -out "$WORK/legacy.der" 2>/dev/null
ac sign "$WORK/legacy.der" "$(ac token "$TD/ns/shop/sa/legacy" | field token)" >"$WORK/legacy.json"
node -e 'const j=JSON.parse(require("fs").readFileSync(0));process.stdout.write(j.leaf_pem)' <"$WORK/legacy.json" \
  >"$WORK/legacy.pem"
node -e 'const j=JSON.parse(require("fs").readFileSync(0));process.stdout.write(j.bundle_pem||"")' <"$WORK/legacy.json" \
  >"$WORK/bundle.pem"
[ -s "$WORK/bundle.pem" ] || cp "$WORK/state/ca.crt" "$WORK/bundle.pem"
start_bg "$WORK/legacy" node "$NODE_DIR/agent_client.js" --target "unix://$SOCK" \
  --tls "$WORK/legacy.pem" "$WORK/legacy.key" "$WORK/bundle.pem" watch "$TD/ns/shop/sa/legacy" 5 nack timeout=120
LEGACY_PID=$LAST_PID
nacked() { ac status | grep -q '"last_nack_error":"rejected by test"'; }
check "the grpc-js watcher NACKs" wait_for 20 nacked
V=$(ac status | field version | head -1)
chk
expect_eq "a NACK: exit 1" 1 "$RC"
expect_match "... ✗ the NACK check" '^✗ 1 sidecar refused a config \(NACK\)$' "$OUT"
expect_match "... with who, which version and the reason" \
  "^    $TD/ns/shop/sa/legacy \(1 of 1 sidecar\) NACKed version $V: rejected by test$" "$OUT"
expect_match "... and the hint" '^    hint: the proxy refused the config and keeps enforcing its last good one: fix what the reason names \(wispctl policy check FILE\)' "$OUT"
expect_match "... ✗ the ACK check too" "^✗ 1 of 3 connected sidecars have not ACKed policy version $V$" "$OUT"
expect_match "... naming it" "^    $TD/ns/shop/sa/legacy: 1 of 1 sidecar not at it, 1 NACKed version $V \(see below\)$" "$OUT"
chk -o json
expect_eq "-o json: the NACK check" \
  "fail|1 sidecar refused a config (NACK)|$TD/ns/shop/sa/legacy (1 of 1 sidecar) NACKed version $V: rejected by test" \
  "$(jq_check agent.nacks | cut -d'|' -f1-3)"
kill -TERM "$LEGACY_PID"
wait "$LEGACY_PID" 2>/dev/null
gone() { ac status | grep -q "\"spiffe_id\":\"$TD/ns/shop/sa/legacy\",\"connected\":false"; }
check "the watcher is gone" wait_for 10 gone
chk
expect_match "a proxy that went away: ✗ not connected" \
  '^✗ 1 of 3 known identities have no sidecar connected \(2 sidecars connected\)$' "$OUT"
expect_match "... when it was last seen" "^    $TD/ns/shop/sa/legacy: no sidecar connected, last seen [0-9smh]+ ago" "$OUT"
expect_match "... its NACK went with it" '^✓ no connected sidecar refused a config \(no NACK\)$' "$OUT"
expect_match "... a hint" '^    hint: a running proxy reconnects by itself with backoff' "$OUT"

# ---- the unreachable peer comes up (a payments sidecar on its port): no longer listed ----
ac token "$TD/ns/shop/sa/payments" | field token >"$WORK/payments.token"
ADM_P=$(free_port)
start_proxy payments --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/payments" \
  --join-token-file "$WORK/payments.token" --inbound "127.0.0.1:$DEAD_PORT" --app "127.0.0.1:$APP_PORT" \
  --admin "127.0.0.1:$ADM_P"
check "the payments sidecar comes up on the dead port" wait_for 20 ready "$ADM_P"
code=$(curl -s -o /dev/null -w '%{http_code}' --http2-prior-knowledge "http://127.0.0.1:$DEAD_OUT/")
expect_eq "... and the request goes through (200)" 200 "$code"
chk --proxy "127.0.0.1:$ADM_C" -o json
expect_eq "a peer that answers again is no longer listed" "pass" "$(jq_check proxy.upstreams | cut -d'|' -f1)"
# Another identity than the route expects: the reason says so.
stop_proxy payments
ac token "$TD/ns/shop/sa/intruder" | field token >"$WORK/intruder.token"
start_proxy intruder --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/intruder" \
  --join-token-file "$WORK/intruder.token" --inbound "127.0.0.1:$DEAD_PORT" --app "127.0.0.1:$APP_PORT" \
  --admin "127.0.0.1:$ADM_P"
check "an intruder sidecar comes up on that port" wait_for 20 ready "$ADM_P"
code=$(curl -s -o /dev/null -w '%{http_code}' --http2-prior-knowledge "http://127.0.0.1:$DEAD_OUT/")
expect_match "a request to it fails (5xx)" '^5' "$code"
chk --proxy "127.0.0.1:$ADM_C"
expect_eq "wrong peer identity: exit 1" 1 "$RC"
expect_match "... the reason names both identities" \
  "^    peer 127.0.0.1:$DEAD_PORT \($TD/ns/shop/sa/payments\): .*$TD/ns/shop/sa/intruder.*\(1 time, last" "$OUT"
stop_proxy intruder

# ---- the agent down ----
stop_agent
chk
expect_eq "agent down: exit 1" 1 "$RC"
expect_match "... ✗ it does not answer" "^✗ the agent does not answer at unix://$SOCK$" "$OUT"
expect_match "... why" "^    cannot reach the agent at unix://$SOCK: (No such file or directory|Connection refused)$" "$OUT"
expect_match "... what to do" '^    hint: start wisp-agent .*or point --agent \(or WISP_AGENT\) at its API socket$' "$OUT"
expect_match "... and no further agent check" '^✗ 1 of 1 checks failed$' "$OUT"
unwatched() { curl -s "http://127.0.0.1:$ADM_S/status" | grep -q '"agent_watching":false'; }
check "the sidecar notices its Watch ended" wait_for 10 unwatched
chk --proxy "127.0.0.1:$ADM_S" -o json
expect_eq "agent down, sidecar serving (fail static): agent.reachable and proxy.agent fail" \
  "agent.reachable proxy.agent" "$(printf '%s' "$OUT" | $PY -c 'import json,sys; print(" ".join(c["id"] for c in json.load(sys.stdin)["checks"] if c["status"]=="fail"))')"
expect_match "... the sidecar's words: no config, why, and fail static" \
  "^fail\|it receives no config from the agent at unix://$SOCK\|the agent ended Config.Watch: UNAVAILABLE.*\|it keeps serving with its last SVID and policy \(fail static\)" \
  "$(jq_check proxy.agent)"
expect_eq "... and it is still ready" "pass" "$(jq_check proxy.ready | cut -d'|' -f1)"
stop_proxy client
stop_proxy server

# ---- short SVIDs and a CA near its end ----
# (-days 2 from now: checked within its first second it reads "2d", later "1d23h".)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/short-ca.key" \
  -out "$WORK/short-ca.crt" -days 2 -subj /O=wisp-short -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign -addext "subjectAltName=URI:$TD" 2>/dev/null
start_agent "$WORK/state2" --svid-ttl 2m --ca-cert "$WORK/short-ca.crt" --ca-key "$WORK/short-ca.key" ||
  not_ok "agent with a 2-day CA starts" "$(cat "$WORK/agent.err")"
ac token "$TD/ns/shop/sa/orders" | field token >"$WORK/orders2.token"
ADM_T=$(free_port) OUT_T=$(free_port) IN_T=$(free_port)
start_proxy short --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/orders" --join-token-file "$WORK/orders2.token" \
  --inbound "127.0.0.1:$IN_T" --app "127.0.0.1:$APP_PORT" --admin "127.0.0.1:$ADM_T"
check "a sidecar with a 2-minute SVID is ready" wait_for 20 ready "$ADM_T"
connected1() { ac status | grep -q '"connected":true'; }
check "... and connected" wait_for 20 connected1
chk --proxy "127.0.0.1:$ADM_T" -o json
expect_eq "2-minute SVIDs just issued are not near expiry (a quarter of their lifetime by default)" "pass pass" \
  "$(jq_check agent.svids | cut -d'|' -f1) $(jq_check proxy.svid | cut -d'|' -f1)"
chk --proxy "127.0.0.1:$ADM_T" --svid-min-validity 1h
expect_eq "--svid-min-validity 1h with 2-minute SVIDs, CA near its end: exit 1" 1 "$RC"
expect_match "CA: ✗ with its expiry and the threshold" \
  '^✗ the CA certificate expires in (1d2[0-9]h|2d).* \(20[0-9-]+T[0-9:]+Z\), within --ca-min-validity 30d$' "$OUT"
expect_match "... the hint: rotate" '^    hint: rotate the CA before it expires: wispctl ca rotate prepare' "$OUT"
expect_match "the bundle: ✗ too, each root with its expiry" \
  '^✗ the trust bundle holds 1 root\(s\), not all valid for long
    root 1 \(the signing CA.s\): expires in (1d2[0-9]h|2d)' "$OUT"
expect_match "SVIDs: ✗ with the threshold" \
  '^✗ 1 of 1 connected identities hold an SVID valid for less than 1h \(--svid-min-validity\)$' "$OUT"
expect_match "... which one, its serial and expiry" \
  "^    $TD/ns/shop/sa/orders: SVID [0-9a-fA-F]+ expires in [0-9ms]+ \(" "$OUT"
expect_match "... the hint" '^    hint: proxies renew at about half-life' "$OUT"
expect_match "the sidecar's SVID: ✗ too" \
  "^✗ its SVID for $TD/ns/shop/sa/orders expires in .*, within --svid-min-validity 1h$" "$OUT"
expect_match "the sidecar's bundle: ✗ near its end" '^✗ its trust bundle holds a root that expires in (1d|2d)' "$OUT"
chk --proxy "127.0.0.1:$ADM_T" --svid-min-validity 10s --ca-min-validity 1d -o json
expect_eq "lower thresholds (--svid-min-validity 10s --ca-min-validity 1d): all pass" "0 True" \
  "$RC $(printf '%s' "$OUT" | $PY -c 'import json,sys; print(json.load(sys.stdin)["ok"])')"
chk --ca-min-validity soon
expect_match "a bad threshold: exit 2" '^2:wispctl: check: --ca-min-validity soon: want a duration' "$RC:$ERR"
chk -o yaml
expect_match "a bad -o: exit 2" '^2:wispctl: check: -o yaml: want text or json' "$RC:$ERR"

# ---- rotating away from that CA: the old root near its end is the reason, not a failure ----
"$WISPCTL" ca rotate prepare >/dev/null
roots2t() { curl -s "http://127.0.0.1:$ADM_T/status" | grep -q '"bundle_roots":2'; }
check "rotation prepared: the sidecar gets the two-root bundle" wait_for 20 roots2t
chk --proxy "127.0.0.1:$ADM_T" --svid-min-validity 10s -o json
expect_match "prepared: the sidecar's bundle is a warning naming the next step (activate)" \
  '^warning\|its trust bundle holds an older root that expires in (1d|2d).*, within --ca-min-validity, and a newer one\|the newest root expires in 36[0-9][0-9]d.*;CA rotation prepared: .*\|a CA rotation is under way: next, once every proxy ACKed the current version, wispctl ca rotate activate' \
  "$(jq_check proxy.bundle)"
"$WISPCTL" ca rotate activate >/dev/null
chk --proxy "127.0.0.1:$ADM_T" --svid-min-validity 10s
expect_eq "active, before finish is allowed: exit 0" 0 "$RC"
expect_match "... the sidecar's bundle: ‼, not ✗" \
  '^‼ its trust bundle holds an older root that expires in (1d|2d).*, within --ca-min-validity, and a newer one$' "$OUT"
expect_match "... when finish is allowed" \
  '^    CA rotation active: the new root signs; finish is allowed in [0-9ms]+ \(20[0-9-]+T[0-9:]+Z\)$' "$OUT"
expect_match "... the true next step as hint" \
  '^    hint: a CA rotation is under way: next, wispctl ca rotate finish \(drops the old root\) once it is allowed \(see above\)' \
  "$OUT"
expect_eq "... no hint to rotate the CA" "" "$(printf '%s\n' "$OUT" | grep 'hint: rotate the CA')"
expect_match "... the agent's bundle check agrees (‼)" '^‼ the trust bundle holds 2 root\(s\), not all valid for long$' "$OUT"

# ---- transparent mode without iptables: interception not proven ----
ac token "$TD/ns/shop/sa/transp" | field token >"$WORK/transp.token"
ADM_X=$(free_port) OUT_X=$(free_port) IN_X=$(free_port) PROBE_PORT=$(free_port)
start_proxy transp --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/transp" --join-token-file "$WORK/transp.token" \
  --transparent --outbound "127.0.0.1:$OUT_X" --inbound "127.0.0.1:$IN_X" --admin "127.0.0.1:$ADM_X" \
  --intercept-probe "127.0.0.1:$PROBE_PORT"
missing() { curl -s "http://127.0.0.1:$ADM_X/status" | grep -q '"interception":"missing"'; }
check "a transparent sidecar without iptables finds interception missing" wait_for 20 missing
chk --proxy "127.0.0.1:$ADM_X" --svid-min-validity 10s --ca-min-validity 1d
expect_eq "interception missing: exit 1" 1 "$RC"
expect_match "... ✗ not ready" '^✗ the sidecar is not ready$' "$OUT"
expect_match "... ✗ interception" '^✗ transparent interception is missing$' "$OUT"
expect_match "... why" "^    iptables interception is not in place: a probe to 127.0.0.1:$PROBE_PORT failed \(Connection refused\)" "$OUT"
expect_match "... the hint" '^    hint: the pod.s iptables rules are missing: deploy/wisp-iptables.sh must run' "$OUT"

# ---- a sidecar admin address with nothing there ----
chk --proxy "127.0.0.1:$DEAD_PORT" --svid-min-validity 10s --ca-min-validity 1d
expect_match "no sidecar at --proxy: ✗" "^✗ the sidecar's admin API does not answer at 127.0.0.1:$DEAD_PORT$" "$OUT"
expect_match "... why" "^    cannot connect to 127.0.0.1:$DEAD_PORT: Connection refused$" "$OUT"
expect_eq "... exit 1" 1 "$RC"
chk --proxy "sidecar.local"
expect_match "--proxy wants IP:PORT" '^    --proxy sidecar.local: want the admin address as IP:PORT' "$OUT"

stop_proxy short
stop_proxy transp

# ---- renewals failing: an SVID near its end ----
# The agent's socket moves away: the sidecar cannot renew (a new connection
# each time) while its Watch stays open, and wispctl reaches the agent at
# the new name.
stop_agent
start_agent "$WORK/state3" --svid-ttl 24s
ac token "$TD/ns/shop/sa/orders" | field token >"$WORK/orders3.token"
ADM_O=$(free_port) IN_O=$(free_port)
start_proxy overdue --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/orders" --join-token-file "$WORK/orders3.token" \
  --inbound "127.0.0.1:$IN_O" --app "127.0.0.1:$APP_PORT" --admin "127.0.0.1:$ADM_O"
check "a sidecar with 24 s SVIDs is ready" wait_for 20 ready "$ADM_O"
check "... and connected" wait_for 20 connected1
mv "$SOCK" "$SOCK.moved"
overdue() {
  "$WISPCTL" --agent "unix://$SOCK.moved" check --proxy "127.0.0.1:$ADM_O" >"$WORK/chk.out" 2>&1
  grep -q "^✗ its SVID for $TD/ns/shop/sa/orders expires in [0-9]*s .*its renewal is overdue$" "$WORK/chk.out"
}
check "renewals failing: the sidecar's SVID is reported near expiry" wait_for 40 overdue
OUT=$(cat "$WORK/chk.out")
expect_match "... in words, with the cause" \
  "^✗ its SVID for $TD/ns/shop/sa/orders expires in [0-9]+s \(.*\): less than a quarter of its lifetime left, its renewal is overdue$" "$OUT"
expect_match "... the agent says so too" \
  '^✗ 1 of 1 connected identities hold an SVID near expiry \(less than a quarter of its lifetime, or 1h, left: its renewal is overdue\)$' "$OUT"
expect_match "... which, and when it was signed" "^    $TD/ns/shop/sa/orders: SVID [0-9a-fA-F]+ expires in [0-9]+s \(.*\), signed [0-9]+s ago$" "$OUT"
check "the sidecar logs the failed renewals" grep -q 'sign_failed' "$WORK/overdue.err"
mv "$SOCK.moved" "$SOCK"
stop_proxy overdue

# ---- replicas: two wisp-proxy sidecars of one identity, then a NACKing one beside an ACKing one ----
stop_agent
start_agent "$WORK/state4"
WEB=$TD/ns/shop/sa/web
ac token "$WEB" 0 reusable | field token >"$WORK/web.token"
ADM_R1=$(free_port) ADM_R2=$(free_port) IN_R1=$(free_port) IN_R2=$(free_port)
for r in 1 2; do
  eval "adm=\$ADM_R$r in=\$IN_R$r"
  start_proxy "r$r" --agent "unix://$SOCK" --spiffe-id "$WEB" --join-token-file "$WORK/web.token" \
    --inbound "127.0.0.1:$in" --app "127.0.0.1:$APP_PORT" --admin "127.0.0.1:$adm"
done
check "two replicas of one identity are ready" wait_for 20 bash -c "$(declare -f ready); ready $ADM_R1 && ready $ADM_R2"
sidecars_are() { ac status | grep -q "\"sidecars_connected\":$1,\"sidecars_acked\":$2,\"sidecars_nacked\":$3"; }
check "the agent counts 2 sidecars of the identity, both ACKed" wait_for 20 sidecars_are 2 2 0
V=$(ac status | field version | head -1)
chk
expect_eq "two replicas: exit 0" 0 "$RC"
expect_match "... one identity, 2 sidecars connected" '^✓ all 1 known identities have sidecars connected \(2 sidecars\)$' "$OUT"
expect_match "... both ACKed" "^✓ every connected sidecar \(2, of 1 identity\) ACKed policy version $V$" "$OUT"
"$WISPCTL" status >"$WORK/status.out" 2>&1
expect_match "wispctl status: the identity with 2 sidecars" "^$WEB +2 sidecars +$V " "$(cat "$WORK/status.out")"
stop_proxy r1
check "one replica stopped: the agent counts 1 sidecar" wait_for 20 sidecars_are 1 1 0
chk
expect_match "... and check says so" '^✓ all 1 known identities have sidecars connected \(1 sidecar\)$' "$OUT"
# A third sidecar of the identity refuses the config; a fourth, connecting
# after it, ACKs: the NACK stays (it was another sidecar's).
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/web.key" 2>/dev/null
openssl req -new -key "$WORK/web.key" -subj /O=wisp -addext "subjectAltName=URI:$WEB" -outform DER \
  -out "$WORK/web.der" 2>/dev/null
ac sign "$WORK/web.der" "$(cat "$WORK/web.token")" >"$WORK/web.json"
node -e 'const j=JSON.parse(require("fs").readFileSync(0));process.stdout.write(j.leaf_pem)' <"$WORK/web.json" \
  >"$WORK/web.pem"
cp "$WORK/state4/ca.crt" "$WORK/bundle4.pem"
watch_web() { # watch_web NAME ACK|nack
  start_bg "$WORK/$1" node "$NODE_DIR/agent_client.js" --target "unix://$SOCK" \
    --tls "$WORK/web.pem" "$WORK/web.key" "$WORK/bundle4.pem" watch "$WEB" 5 $2 timeout=120
}
watch_web nacker nack
NACKER_PID=$LAST_PID
check "a sidecar of the identity NACKs" wait_for 20 sidecars_are 2 1 1
watch_web acker ack
ACKER_PID=$LAST_PID
check "... another one ACKs after it" wait_for 20 sidecars_are 3 2 1
chk
expect_eq "a NACK beside ACKs of the same identity: exit 1" 1 "$RC"
expect_match "... ✗ the NACK stays" '^✗ 1 sidecar refused a config \(NACK\)$' "$OUT"
expect_match "... naming the identity, how many of its sidecars, the version and reason" \
  "^    $WEB \(1 of 3 sidecars\) NACKed version $V: rejected by test$" "$OUT"
expect_match "... ✗ the ACK check counts sidecars" "^✗ 1 of 3 connected sidecars have not ACKed policy version $V$" "$OUT"
expect_match "... with the identity" "^    $WEB: 1 of 3 sidecars not at it, 1 NACKed version $V \(see below\)$" "$OUT"
kill -TERM "$NACKER_PID"
wait "$NACKER_PID" 2>/dev/null
check "the NACKing sidecar disconnects" wait_for 20 sidecars_are 2 2 0
chk
expect_eq "... its NACK goes with it: exit 0" 0 "$RC"
expect_match "... no NACK" '^✓ no connected sidecar refused a config \(no NACK\)$' "$OUT"
kill -TERM "$ACKER_PID"
wait "$ACKER_PID" 2>/dev/null
stop_proxy r2

# ---- a sidecar on certificate files, no agent ----
make_pki
ADM_F=$(free_port) OUT_F=$(free_port)
unset WISP_AGENT # the proxy reads it too
start_proxy files --cert "$WORK/pki/frontend.crt" --key "$WORK/pki/frontend.key" --bundle "$WORK/pki/ca/ca.crt" \
  --route "127.0.0.1:$OUT_F=127.0.0.1:$IN_T,id=$TD/ns/shop/sa/orders" --admin "127.0.0.1:$ADM_F"
check "a sidecar on files is ready" wait_for 20 ready "$ADM_F"
export WISP_AGENT="unix://$SOCK"
stop_agent
if [ -e /run/wisp/agent.sock ]; then
  skip "a sidecar on files needs no agent" "this machine has an agent at the default /run/wisp/agent.sock"
else
  ( unset WISP_AGENT; chk --proxy "127.0.0.1:$ADM_F"; printf '%s\n' "$RC" >"$WORK/files.rc" )
  OUT=$(cat "$WORK/chk.out")
  expect_eq "a sidecar on files, no agent anywhere: exit 0" 0 "$(cat "$WORK/files.rc")"
  expect_match "... it says where the certificates come from" \
    "^✓ the sidecar's admin API answers at 127.0.0.1:$ADM_F \(certificates from files\)$" "$OUT"
  expect_eq "... and leaves the agent out" "" "$(printf '%s\n' "$OUT" | grep -i agent | grep -v 'certificates from files')"
  chk --proxy "127.0.0.1:$ADM_F"
  expect_match "... unless one is named (WISP_AGENT)" "^✗ the agent does not answer at unix://$SOCK$" "$OUT"
fi
stop_proxy files
out=$("$WISPCTL" --help)
expect_match "--help lists check and its flags" 'check \[--proxy ADMIN_ADDR\] \[-o text\|json\]' "$out"
finish
