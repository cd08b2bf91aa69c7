#!/usr/bin/env bash
# wispctl against the real wisp-agent (token create, status, apply -f), its
# error messages and exit codes, and against tests/node/fake_agent.js, a
# @grpc/grpc-js stand-in: interop with another gRPC implementation, error
# statuses with encoded messages, deadlines, and what no gRPC server sends
# (HTTP 404, RST_STREAM, a dropped connection).
#   wispctl_test.sh [WISPCTL [WISP_AGENT]]
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISPCTL=$(wisp_find_bin wispctl "$@") || exit 1
AGENT=$(wisp_find_bin wisp-agent "$@") || exit 1
unset WISP_AGENT
# Sockets go in the harness's short $SOCKDIR (sun_path is 108 bytes).
SOCKS=$SOCKDIR

# ctl ARGS...: runs wispctl; sets OUT, ERR, RC.
ctl() {
  "$WISPCTL" "$@" >"$WORK/ctl.out" 2>"$WORK/ctl.err"
  RC=$?
  OUT=$(cat "$WORK/ctl.out")
  ERR=$(cat "$WORK/ctl.err")
}

# start_fake NAME ARGS...: a fake agent on $SOCKS/NAME.sock.
start_fake() {
  local name=$1
  shift
  start_bg "$WORK/$name" node "$NODE_DIR/fake_agent.js" --socket "$SOCKS/$name.sock" "$@"
  wait_for 20 grep -q '^listening' "$WORK/$name.out"
}

# ---- usage errors (no agent needed) ----
ctl
expect_eq "no command: exit 2" 2 "$RC"
expect_match "... with the usage" '^wispctl: no command given' "$ERR"
ctl --help
expect_eq "--help: exit 0" 0 "$RC"
expect_match "--help prints the usage on stdout" 'usage: wispctl .*COMMAND' "$OUT"
expect_match "... listing token create, apply and status" 'token create --spiffe-id ID.*' "$OUT"
expect_match "... and policy check" 'policy check FILE' "$OUT"
expect_match "... and ca rotate" 'ca rotate prepare\|activate\|finish' "$OUT"
expect_match "... and inject (tested in wispctl_inject_test.sh)" 'inject -f FILE' "$OUT"
ctl --bogus status
expect_eq "an unknown flag: exit 2" 2 "$RC"
expect_match "... naming it, then the usage" 'wispctl: unknown flag --bogus' "$ERR"
expect_match "... (usage follows)" 'usage: wispctl' "$ERR"
ctl frobnicate
expect_eq "an unknown command: exit 2" 2 "$RC"
expect_match "... naming it" 'wispctl: unknown command "frobnicate"' "$ERR"
ctl status --image x
expect_match "a flag of another command: exit 2, naming it" '2:wispctl: status does not take --image' "$RC:$ERR"
ctl token
expect_match "token without a subcommand: exit 2 and a hint" '2:.*token: missing subcommand' "$RC:$ERR"
ctl token create
expect_match "token create without --spiffe-id: exit 2" '2:.*--spiffe-id is required' "$RC:$ERR"
ctl token create --spiffe-id orders
expect_match "a malformed SPIFFE ID is refused before calling" '2:.*--spiffe-id orders: ' "$RC:$ERR"
ctl token create --spiffe-id spiffe://shop.local/ns/shop/sa/orders --ttl soon
expect_match "a bad --ttl: exit 2" '2:.*--ttl soon: want a duration' "$RC:$ERR"
ctl token create --spiffe-id spiffe://shop.local/ns/shop/sa/orders --ttl -5s
expect_match "a negative --ttl: exit 2" '^2:' "$RC:$ERR"
ctl status --spiffe-id spiffe://shop.local/ns/shop/sa/orders
expect_match "a flag of another command: exit 2" '2:.*status does not take --spiffe-id' "$RC:$ERR"
ctl apply
expect_match "apply without -f: exit 2" '2:.*apply: -f FILE is required' "$RC:$ERR"
ctl --agent unix://host/agent.sock status
expect_match "a malformed --agent: exit 2" '2:wispctl: --agent unix://host/agent.sock: ' "$RC:$ERR"
ctl --timeout forever status
expect_match "a bad --timeout: exit 2" '2:.*--timeout forever' "$RC:$ERR"

# ---- the agent is not there ----
ctl --agent "unix:$SOCKS/none.sock" status
expect_eq "agent missing: exit 1" 1 "$RC"
expect_eq "... saying where it looked and why" \
  "wispctl: cannot reach the agent at unix:$SOCKS/none.sock: No such file or directory" "$ERR"
WISP_AGENT="unix://$SOCKS/env.sock" ctl token create --spiffe-id spiffe://shop.local/ns/shop/sa/orders
expect_eq "WISP_AGENT is the default target" \
  "1:wispctl: cannot reach the agent at unix://$SOCKS/env.sock: No such file or directory" "$RC:$ERR"
WISP_AGENT="unix://$SOCKS/env.sock" ctl --agent "unix:$SOCKS/flag.sock" status
expect_match "--agent wins over WISP_AGENT" "at unix:$SOCKS/flag.sock:" "$ERR"
if [ ! -e /run/wisp/agent.sock ]; then
  ctl status
  expect_match "without either, unix:///run/wisp/agent.sock" \
    '^wispctl: cannot reach the agent at unix:///run/wisp/agent.sock: ' "$ERR"
fi
touch "$SOCKS/plain-file"
ctl --agent "unix:$SOCKS/plain-file" status
expect_match "a file that is not a socket" '1:wispctl: cannot reach the agent at .*plain-file: Connection refused' "$RC:$ERR"

# ---- the real agent ----
SOCK=$SOCKS/agent.sock
start_bg "$WORK/agent" "$AGENT" --state-dir "$WORK/state" --listen "unix:$SOCK" --trust-domain shop.local
AGENT_PID=$LAST_PID
if wait_for 20 test -S "$SOCK"; then ok "wisp-agent listens on its Unix socket"; else
  not_ok "wisp-agent listens on its Unix socket" "$(tail -5 "$WORK/agent.err")"
  finish
fi
export WISP_AGENT="unix://$SOCK"

ctl token create --spiffe-id spiffe://shop.local/ns/shop/sa/orders
expect_eq "token create: exit 0" 0 "$RC"
expect_match "... prints the token alone on stdout" '^[A-Za-z0-9._~+/=-]{16,}$' "$OUT"
expect_eq "... one line" 1 "$(wc -l <"$WORK/ctl.out")"
expect_match "... and the expiry on stderr (default 1h)" \
  'spiffe://shop.local/ns/shop/sa/orders \(single use\), expires 20[0-9-]{8}T[0-9:]{8}Z \(in (1h|59m5[0-9]s)\)' "$ERR"
TOKEN=$("$WISPCTL" token create --spiffe-id spiffe://shop.local/ns/shop/sa/web --ttl 90s --reusable 2>"$WORK/t2.err")
expect_match '$(wispctl token create) captures just the token' '^[A-Za-z0-9._~+/=-]{16,}$' "$TOKEN"
expect_match "--ttl 90s --reusable" '\(reusable\), expires .*\(in 1m(29|30)s\)' "$(cat "$WORK/t2.err")"
if [ "$TOKEN" != "$OUT" ]; then ok "tokens differ"; else not_ok "tokens differ"; fi
ctl token create --spiffe-id spiffe://other.local/ns/shop/sa/orders
expect_eq "a token outside the trust domain: exit 1" 1 "$RC"
expect_match "... with the agent's status and message" \
  '^wispctl: token create: (INVALID_ARGUMENT|PERMISSION_DENIED): .*other\.local' "$ERR"
expect_eq "... and nothing on stdout" "" "$OUT"

ctl status
expect_eq "status: exit 0" 0 "$RC"
expect_match "... shows the policy version" 'agent policy version: +[0-9]+' "$OUT"
expect_match "... the CA's expiry" 'CA not after: +20[0-9-]{8}T[0-9:]{8}Z \(in ' "$OUT"
expect_match "... the bundle" 'trust bundle roots: +1' "$OUT"
V0=$(printf '%s\n' "$OUT" | awk '/agent policy version/ {print $4}')

cat >"$WORK/policy.yaml" <<'EOF'
apiVersion: wisp.dev/v1
kind: AuthorizationPolicy
metadata: {name: orders-read, namespace: shop}
spec:
  selector: {serviceAccount: orders}
  action: ALLOW
  rules:
  - from: [{principals: ["spiffe://shop.local/ns/shop/sa/frontend"]}]
    to:   [{methods: ["GET"], paths: ["/orders/*"]}]
---
apiVersion: wisp.dev/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mode: STRICT}
EOF
ctl apply -f "$WORK/policy.yaml"
expect_eq "apply -f FILE: exit 0" 0 "$RC"
expect_match "... prints the new version" '^applied version [^ ]+$' "$OUT"
V1=${OUT#applied version }
if [ "$V1" != "$V0" ]; then ok "... which differs from the one before"; else not_ok "... which differs from the one before" "$V0 -> $V1"; fi
ctl status
expect_match "status shows the applied version" "agent policy version: +$V1\$" "$(printf '%s\n' "$OUT" | head -1)"
"$WISPCTL" apply -f - <"$WORK/policy.yaml" >"$WORK/ctl.out" 2>"$WORK/ctl.err"
expect_match "apply -f - reads stdin" '^0:applied version ' "$?:$(cat "$WORK/ctl.out")"
V2=$(sed 's/^applied version //' "$WORK/ctl.out")
ctl status --json
expect_eq "status --json: exit 0" 0 "$RC"
json_check=$(printf '%s' "$OUT" | node -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    const j = JSON.parse(s);
    const ok = typeof j.version === "string" && typeof j.ca_not_after_unix === "number" &&
      j.bundle_roots === 1 && Array.isArray(j.proxies);
    console.log(ok ? j.version : "bad shape");
  });' 2>&1)
expect_eq "... is JSON with the current version" "$V2" "$json_check"
ctl apply -f "$WORK/nope.yaml"
expect_eq "apply -f of a missing file: exit 1" \
  "1:wispctl: apply: cannot read $WORK/nope.yaml: No such file or directory" "$RC:$ERR"

kill -TERM "$AGENT_PID"
wait "$AGENT_PID"
rc=$?
if [ "$rc" -eq 0 ] && ! grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$WORK/agent.err"; then
  ok "wisp-agent exits 0 on SIGTERM, sanitizer clean"
else
  not_ok "wisp-agent exits 0 on SIGTERM, sanitizer clean" "exit $rc"
  sed 's/^/# /' "$WORK/agent.err" | tail -20
fi
ctl status
expect_match "after the agent stopped: cannot reach it" '^1:wispctl: cannot reach the agent at ' "$RC:$ERR"

# ---- --policy-dir (a mounted ConfigMap) and wispctl apply ----
# The directory is pushed when it changes; a wispctl apply in between holds
# until the next edit (the agent polls the directory every 0.5 s).
PDIR=$WORK/policy-dir
mkdir -p "$PDIR"
cp "$WORK/policy.yaml" "$PDIR/shop.yaml"
SOCK=$SOCKS/pdir.sock
start_bg "$WORK/pagent" "$AGENT" --state-dir "$WORK/pstate" --listen "unix:$SOCK" --trust-domain shop.local \
  --policy-dir "$PDIR"
PAGENT_PID=$LAST_PID
export WISP_AGENT="unix://$SOCK"
version_is() { ctl status && [ "$(printf '%s\n' "$OUT" | awk '/agent policy version/ {print $4}')" = "$1" ]; }
check "an agent with --policy-dir applies the directory at start (version 1)" wait_for 20 version_is 1
sed 's/sa\/frontend/sa\/payments/' "$WORK/policy.yaml" >"$WORK/payments.yaml"
ctl apply -f "$WORK/payments.yaml"
expect_eq "wispctl apply beside --policy-dir: version 2" "0:applied version 2" "$RC:$OUT"
sleep 1.6
check "... and it holds: the unchanged directory is not pushed over it" version_is 2
cp "$WORK/payments.yaml" "$PDIR/shop.yaml.new"
sed -i 's/GET/POST/' "$PDIR/shop.yaml.new"
mv "$PDIR/shop.yaml.new" "$PDIR/shop.yaml"
check "an edit of the directory is pushed (version 3)" wait_for 10 version_is 3
check "... from the directory" wait_for 10 grep -q "\"type\":\"policy_applied\",\"version\":\"3\",\"source\":\"$PDIR\"" "$WORK/pagent.out"
printf 'kind: AuthorizationPolicy\nspec: {action: MAYBE}\n' >"$PDIR/zz-bad.yaml"
rejected() { [ "$(grep -c '"type":"policy_rejected"' "$WORK/pagent.out")" = "$1" ]; }
check "a bad file set is refused" wait_for 10 rejected 1
sleep 1.6
check "... once, not at every poll" rejected 1
check "... and the last good policy stays" version_is 3
kill -TERM "$PAGENT_PID"
wait "$PAGENT_PID"
expect_eq "the --policy-dir agent exits 0 on SIGTERM" 0 "$?"
unset WISP_AGENT

# ---- a @grpc/grpc-js server (tests/node/fake_agent.js) ----
if start_fake fake; then ok "fake agent (grpc-js) starts"; else not_ok "fake agent (grpc-js) starts" "$(cat "$WORK/fake.err")"; fi
export WISP_AGENT="unix://$SOCKS/fake.sock"
ctl token create --spiffe-id spiffe://shop.local/ns/shop/sa/orders --ttl 1h30m --reusable
expect_match "grpc-js: token create" '^0:wjt\.[0-9a-f]{32}$' "$RC:$OUT"
expect_match "... sent ttl_seconds and reusable" \
  '"spiffe_id":"spiffe://shop.local/ns/shop/sa/orders","ttl_seconds":5400,"reusable":true' "$(cat "$WORK/fake.out")"
ctl token create --spiffe-id spiffe://other.local/ns/a/sa/b
expect_eq "grpc-js: an error status, its message percent-decoded" \
  "1:wispctl: token create: PERMISSION_DENIED: spiffe://other.local/ns/a/sa/b is not in trust domain shop.local (100% sure, café)" \
  "$RC:$ERR"
printf 'apiVersion: wisp.dev/v1\nkind: Bogus\n' >"$WORK/bogus.yaml"
ctl apply -f "$WORK/bogus.yaml"
expect_eq "grpc-js: a rejected policy names the file" \
  "1:wispctl: apply: INVALID_ARGUMENT: $WORK/bogus.yaml: document 1: unknown kind \"Bogus\"" "$RC:$ERR"
ctl apply -f "$WORK/policy.yaml"
expect_eq "grpc-js: apply" "0:applied version 2" "$RC:$OUT"
ctl status
expect_eq "grpc-js: status" 0 "$RC"
expect_match "... a header row" '^SPIFFE ID +CONNECTED +ACKED +SVID SERIAL +SVID NOT AFTER +LAST SEEN$' "$OUT"
expect_match "... a connected proxy" \
  'spiffe://shop.local/ns/shop/sa/orders +1 sidecar +2 +1A2B3C4D +20[0-9-]{8}T[0-9:]{8}Z \(in 2[23]h[0-9]*m?\) +[0-9]+s ago' "$OUT"
expect_match "... a disconnected one with a NACK and an expired SVID" \
  'spiffe://shop.local/ns/shop/sa/frontend +no +1 \(NACK\) +0F +.*\(expired 1h ago\) +2h ago' "$OUT"
expect_match "... and the NACK's error" '^    last NACK: document 1 \(orders-read\): spec.rules' "$(printf '%s\n' "$OUT" | tail -1)"
ctl status --json
expect_eq "grpc-js: status --json" "2 true false" \
  "$(printf '%s' "$OUT" | node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>{const j=JSON.parse(s);console.log(j.proxies.length,j.proxies[0].connected,j.proxies[1].connected)})')"
start_s=$(date +%s%N)
ctl --timeout 1s token create --spiffe-id spiffe://shop.local/ns/shop/sa/slow
took_ms=$((($(date +%s%N) - start_s) / 1000000))
expect_match "--timeout: DEADLINE_EXCEEDED" \
  '^1:wispctl: token create: DEADLINE_EXCEEDED: the agent at .* did not answer within 1s' "$RC:$ERR"
# The fake agent answers that call after 5 s: DEADLINE_EXCEEDED above says
# the deadline ended it (not the answer); here that it did not fire early
# (how soon after 1 s it fires depends on the machine's load).
if [ "$took_ms" -ge 900 ]; then ok "... after the deadline, not before (${took_ms} ms)"; else not_ok "... after the deadline, not before" "${took_ms} ms"; fi

# ---- what no gRPC server sends ----
for mode in http404 reset close hang; do
  start_fake "raw-$mode" --raw "$mode" || not_ok "raw $mode server starts"
done
ctl --agent "unix:$SOCKS/raw-http404.sock" status
expect_eq "HTTP 404 is UNIMPLEMENTED" \
  "1:wispctl: status: UNIMPLEMENTED: HTTP status 404 from the server, not a gRPC response" "$RC:$ERR"
ctl --agent "unix:$SOCKS/raw-reset.sock" status
expect_eq "RST_STREAM CANCEL is CANCELLED" \
  "1:wispctl: status: CANCELLED: stream reset by the server (RST_STREAM CANCEL)" "$RC:$ERR"
# The server destroys the connection while frames wispctl sent (a SETTINGS
# ACK) may still be unread in its socket: the kernel then reports a reset,
# not an end of file (about 1 run in 100). Both are the server dropping it.
ctl --agent "unix:$SOCKS/raw-close.sock" status
expect_match "a dropped connection is UNAVAILABLE" \
  '^1:wispctl: status: UNAVAILABLE: (connection closed by the server|read failed: Connection reset by peer)$' "$RC:$ERR"
ctl --agent "unix:$SOCKS/raw-hang.sock" --timeout 300ms status
expect_match "no answer at all: DEADLINE_EXCEEDED" '^1:wispctl: status: DEADLINE_EXCEEDED: .*within 0.3s' "$RC:$ERR"

finish
