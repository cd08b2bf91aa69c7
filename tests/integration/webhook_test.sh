#!/usr/bin/env bash
# wisp-agent's admission webhook (issue 11): real AdmissionReview documents
# (tests/integration/webhook/review.py, the API reference's shape) POSTed
# over TLS with curl to --webhook, the serving certificate verified against
# the agent's bundle for the Service name; the answer's JSONPatch applied by
# an independent implementation (python3-jsonpatch) gives exactly what
# `wispctl inject` gives the same pod. Opted-out, hostNetwork and injected
# pods are allowed unchanged; a bad annotation is denied saying why;
# malformed, oversized and misdirected requests get clear refusals; the
# connection bound holds; the agent keeps serving throughout.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
AGENT=$(wisp_find_bin wisp-agent "$@") || exit 1
WISPCTL=$(wisp_find_bin wispctl "$@") || exit 1
PY=/usr/bin/python3
RV="$WISP_SRC/tests/integration/webhook/review.py"
NAME=wisp-agent.wisp-system.svc
SOCK=$SOCKDIR/agent.sock
PORT=$(free_port)
INJECT_AGENT=https://10.96.0.10:8443
start_bg "$WORK/agent" "$AGENT" --state-dir "$WORK/state" --listen "unix:$SOCK" --trust-domain shop.local \
  --kube-api off --webhook "127.0.0.1:$PORT" --inject-agent "$INJECT_AGENT" --webhook-max-body 64KiB \
  --webhook-max-connections 4
AGENT_PID=$LAST_PID
wait_port "$PORT" || { not_ok "the agent serves its webhook"; cat "$WORK/agent.err"; finish; }
BUNDLE=$WORK/state/bundle.pem
# post NAME FILE [curl args]: POST FILE to /mutate; the answer in $WORK/NAME.out, HTTP status in $CODE.
post() {
  local name=$1 file=$2
  shift 2
  CODE=$(curl -s -o "$WORK/$name.answer" -w '%{http_code}' --cacert "$BUNDLE" --resolve "$NAME:$PORT:127.0.0.1" \
    -H 'Content-Type: application/json' --data-binary "@$file" "$@" "https://$NAME:$PORT${URLPATH:-/mutate}")
}
answer() { "$PY" -c "import json,sys; r=json.load(open(sys.argv[1]))['response']; print($2)" "$WORK/$1.answer"; }
review() { # review NAME POD.yaml [make args | --max-time S]: the review in $WORK/NAME.json, posted
  local name=$1 pod=$2 curl_args=()
  shift 2
  [ "${1:-}" = --max-time ] && { curl_args=("$1" "$2"); shift 2; }
  "$PY" "$RV" make "$pod" "$@" >"$WORK/$name.json"
  post "$name" "$WORK/$name.json" "${curl_args[@]}"
}
same_as_inject() { # same_as_inject NAME: patched pod == wispctl inject's pod
  "$PY" "$RV" apply "$WORK/$1.json" "$WORK/$1.answer" >"$WORK/$1.patched" || return 1
  "$PY" "$RV" object "$WORK/$1.json" >"$WORK/$1.pod.yaml"
  "$WISPCTL" inject --agent "$INJECT_AGENT" --trust-domain shop.local --bundle-file "$BUNDLE" \
    -f "$WORK/$1.pod.yaml" >"$WORK/$1.injected.yaml" 2>/dev/null || return 1
  "$PY" "$RV" yaml "$WORK/$1.injected.yaml" >"$WORK/$1.want"
  cmp -s "$WORK/$1.want" "$WORK/$1.patched"
}

cat >"$WORK/orders.yaml" <<'POD'
apiVersion: v1
kind: Pod
metadata:
  name: orders-7d4b9-x2k
  labels: {app: orders}
spec:
  serviceAccountName: orders
  containers:
  - name: orders
    image: registry.example/orders:1.4
    ports: [{containerPort: 8080}]
POD
review orders "$WORK/orders.yaml"
expect_eq "a pod: HTTP 200" 200 "$CODE"
expect_eq "... allowed, with a JSONPatch" "True JSONPatch" "$(answer orders "r['allowed'], r.get('patchType')")"
expect_eq "... the uid echoed" "$("$PY" -c "import json; print(json.load(open('$WORK/orders.json'))['request']['uid'])")" \
  "$(answer orders "r['uid']")"
check "the patch, applied by python3-jsonpatch, gives exactly wispctl inject's pod" same_as_inject orders
expect_eq "... whose sidecar bootstraps with a projected service-account token" \
  '["wisp-init","wisp-proxy"]' "$("$PY" -c "import json; print(json.dumps([c['name'] for c in json.load(open('$WORK/orders.patched'))['spec']['initContainers']]).replace(' ',''))")"
check "... and the trust bundle in its annotation is the agent's" \
  "$PY" -c "import json,sys; p=json.load(open('$WORK/orders.patched')); sys.exit(p['metadata']['annotations']['wisp.dev/trust-bundle'] != open('$BUNDLE').read())"

# A pod with init containers, volumes and annotations of its own: inserted before, appended after.
cat >"$WORK/busy.yaml" <<'POD'
apiVersion: v1
kind: Pod
metadata:
  generateName: frontend-5c8f-
  annotations: {wisp.dev/exclude-outbound-ports: "5432", team: shop~web/ui}
spec:
  serviceAccountName: frontend
  initContainers:
  - {name: migrate, image: registry.example/migrate:2}
  containers:
  - name: frontend
    image: registry.example/frontend:3
    env: [{name: RATIO, value: "0.5"}, {name: ON, value: "yes"}]
    resources: {limits: {cpu: 0.5, memory: 64Mi}}
  volumes:
  - {name: data, emptyDir: {}}
POD
review busy "$WORK/busy.yaml"
check "a pod with its own init containers, volumes and annotations: the same as wispctl inject" same_as_inject busy
expect_match "... by inserting before its init container and appending after its volume" \
  '"op": "add", "path": "/spec/initContainers/0".*"op": "add", "path": "/spec/initContainers/1".*"path": "/spec/volumes/-"' \
  "$("$PY" -c "import json,base64; print(json.dumps(json.loads(base64.b64decode(json.load(open('$WORK/busy.answer'))['response']['patch']))))")"
check "... the pod's wisp.dev/ annotation reaching wisp-init's args" grep -q '"--exclude-outbound-ports", "5432"' "$WORK/busy.patched"

# /mutate-annotated (the entry for namespaces without the label): only pods annotated wisp.dev/inject: enabled.
URLPATH=/mutate-annotated post plain-annotated "$WORK/orders.json"
expect_eq "/mutate-annotated: a pod without the annotation is allowed unchanged" "True None" \
  "$(answer plain-annotated "r['allowed'], r.get('patch')")"
"$PY" -c "
import yaml; d = yaml.safe_load(open('$WORK/orders.yaml')); d['metadata']['annotations'] = {'wisp.dev/inject': 'enabled'}
yaml.safe_dump(d, open('$WORK/asked.yaml', 'w'))"
"$PY" "$RV" make "$WORK/asked.yaml" >"$WORK/asked.json"
URLPATH=/mutate-annotated post asked "$WORK/asked.json"
check "... one annotated wisp.dev/inject: enabled gets exactly wispctl inject's pod" same_as_inject asked

# The API server calls the webhook with a query: POST /mutate?timeout=10s.
cp "$WORK/orders.json" "$WORK/query.json"
URLPATH='/mutate?timeout=10s' post query "$WORK/query.json"
expect_eq "POST /mutate?timeout=10s (as the API server calls it): 200" 200 "$CODE"
check "... and the pod gets exactly wispctl inject's pod" same_as_inject query
URLPATH='/mutate-annotated?timeout=10s' post query-annotated "$WORK/asked.json"
expect_eq "POST /mutate-annotated?timeout=10s: 200" 200 "$CODE"

# Reinvocation: the injected pod is allowed unchanged.
"$PY" -c "
import json; r = json.load(open('$WORK/orders.json')); r['request']['object'] = json.load(open('$WORK/orders.patched'))
json.dump(r, open('$WORK/again.json', 'w'))"
post again "$WORK/again.json"
expect_eq "an injected pod, reviewed again (reinvocationPolicy): allowed, no patch" "True None" \
  "$(answer again "r['allowed'], r.get('patch')")"
for case in "disabled:metadata: {name: x, annotations: {wisp.dev/inject: disabled}}" \
  "hostnet:metadata: {name: x}
spec: {hostNetwork: true}"; do
  name=${case%%:*}
  printf 'apiVersion: v1\nkind: Pod\n%s\n' "${case#*:}" >"$WORK/$name.yaml"
  grep -q '^spec:' "$WORK/$name.yaml" || printf 'spec: {}\n' >>"$WORK/$name.yaml"
  "$PY" -c "import yaml,sys; d=yaml.safe_load(open(sys.argv[1])); d['spec']['containers']=[{'name':'a','image':'b'}]; yaml.safe_dump(d, open(sys.argv[1],'w'))" "$WORK/$name.yaml"
  review "$name" "$WORK/$name.yaml"
  expect_eq "$name pod: allowed unchanged" "True None" "$(answer "$name" "r['allowed'], r.get('patch')")"
done
check "the agent logs why each was left unchanged" grep -q '"reason":"hostNetwork: true, left unchanged' "$WORK/agent.out"
review update "$WORK/orders.yaml" --operation UPDATE
expect_eq "an UPDATE: allowed unchanged" "True None" "$(answer update "r['allowed'], r.get('patch')")"
review deploy "$WORK/orders.yaml" --kind Deployment
expect_eq "a review of another kind: allowed unchanged" "True None" "$(answer deploy "r['allowed'], r.get('patch')")"

# A pod inject refuses: denied, saying why (fail closed).
printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\n  annotations: {wisp.dev/exclude-inbound-ports: "99999"}\nspec:\n  containers: [{name: a, image: b}]\n' >"$WORK/bad.yaml"
review bad "$WORK/bad.yaml"
expect_eq "a bad wisp.dev annotation: denied" "False 400" "$(answer bad "r['allowed'], r['status']['code']")"
expect_match "... with the reason in status.message" 'wisp: cannot inject the pod: .*annotation wisp.dev/exclude-inbound-ports: "99999": "99999" is not a port' \
  "$(answer bad "r['status']['message']")"
printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: smuggle}\nspec:\n  containers: [{name: a, image: b}]\n  volumes: [{name: wisp-sa-token, secret: {secretName: admin-token}}]\n' >"$WORK/smuggle.yaml"
review smuggle "$WORK/smuggle.yaml"
expect_match "a pod with its own volume named wisp-sa-token: denied, naming it (as wispctl inject refuses it)" \
  'False:wisp: cannot inject the pod: .*already has a volume named wisp-sa-token' \
  "$(answer smuggle "r['allowed']"):$(answer smuggle "r['status']['message']")"

# Malformed, oversized, misdirected.
printf '{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": ' >"$WORK/trunc.json"
post trunc "$WORK/trunc.json"
expect_match "a body that is not JSON: 400 saying so" '^400:wisp-agent: the body is not JSON' "$CODE:$(cat "$WORK/trunc.answer")"
printf '{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "u"}}' >"$WORK/beta.json"
post beta "$WORK/beta.json"
expect_match "a v1beta1 review: 400" '^400:.*not an admission.k8s.io/v1 AdmissionReview' "$CODE:$(cat "$WORK/beta.answer")"
printf '{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"kind": {"kind": "Pod"}}}' >"$WORK/nouid.json"
post nouid "$WORK/nouid.json"
expect_match "a review without request.uid: 400" '^400:.*no request with a uid' "$CODE:$(cat "$WORK/nouid.answer")"
printf '{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u1", "operation": "CREATE", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "object": [1]}}' >"$WORK/noobj.json"
post noobj "$WORK/noobj.json"
expect_eq "a review whose object is no pod: denied" "False" "$(answer noobj "r['allowed']")"
"$PY" -c "
import json; r = json.load(open('$WORK/orders.json')); r['request']['object']['metadata']['annotations'] = {'pad': 'x' * 70000}
json.dump(r, open('$WORK/big.json', 'w'))"
post big "$WORK/big.json"
expect_match "a review over --webhook-max-body (64 KiB): 413" '^413:the body is larger than 65536 bytes' "$CODE:$(cat "$WORK/big.answer")"
"$PY" -c "
import json
d = 'x'
for i in range(600): d = {'a': d}
r = json.load(open('$WORK/orders.json')); r['request']['object']['metadata']['annotations'] = {}
r['request']['object']['spec']['deep'] = d
json.dump(r, open('$WORK/deep.json', 'w'))"
post deep "$WORK/deep.json"
expect_match "a pod nested 600 levels deep: denied saying so" 'nests deeper than 512' "$(answer deep "r['status']['message']")"
# Numbers the JSON->YAML->JSON round trip must keep as numbers: a subnormal
# (strtod says ERANGE for it) and the smallest normal double.
"$PY" -c "
import json; r = json.load(open('$WORK/orders.json')); r['request']['object']['spec']['x-numbers'] = [5e-324, 2.2250738585072014e-308, 1e-320]
json.dump(r, open('$WORK/subnormal.json', 'w'))"
post subnormal "$WORK/subnormal.json"
expect_eq "a pod holding subnormal numbers: the patch leaves them alone, numbers" "[] [5e-324, 2.2250738585072014e-308, 1e-320]" \
  "$("$PY" -c "
import base64, json
a = json.load(open('$WORK/subnormal.answer'))['response']
ops = json.loads(base64.b64decode(a['patch']))
print([o for o in ops if o['path'].startswith('/spec/x-numbers')], end=' ')")$("$PY" "$RV" apply "$WORK/subnormal.json" "$WORK/subnormal.answer" |
    "$PY" -c "import json, sys; print(json.load(sys.stdin)['spec']['x-numbers'])")"
CODE=$(curl -s -o "$WORK/get.out" -w '%{http_code}' --cacert "$BUNDLE" --resolve "$NAME:$PORT:127.0.0.1" "https://$NAME:$PORT/mutate")
expect_eq "GET /mutate: 405" 405 "$CODE"
CODE=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$BUNDLE" --resolve "$NAME:$PORT:127.0.0.1" --data x "https://$NAME:$PORT/other")
expect_eq "another path: 404" 404 "$CODE"
CODE=$(curl -s -o "$WORK/chunked.out" -w '%{http_code}' --cacert "$BUNDLE" --resolve "$NAME:$PORT:127.0.0.1" \
  -H 'Transfer-Encoding: chunked' --data-binary "@$WORK/orders.json" "https://$NAME:$PORT/mutate")
expect_eq "a chunked body: 411" 411 "$CODE"
# A caller that closes after its answer (Connection: close, or HTTP/1.0)
# still gets the answer of its review, decided on the worker.
cp "$WORK/orders.json" "$WORK/close.json"
post close "$WORK/close.json" -H 'Connection: close'
expect_eq "a review with Connection: close: 200" 200 "$CODE"
check "... with exactly wispctl inject's pod" same_as_inject close
cp "$WORK/orders.json" "$WORK/http10.json"
post http10 "$WORK/http10.json" --http1.0
expect_eq "a review over HTTP/1.0: 200" 200 "$CODE"
check "... with exactly wispctl inject's pod" same_as_inject http10
check "the certificate is for $NAME only: curl to 127.0.0.1 refuses it" \
  bash -c "! curl -s -o /dev/null --cacert '$BUNDLE' --data x 'https://127.0.0.1:$PORT/mutate'"
san=$(echo | openssl s_client -connect "127.0.0.1:$PORT" -servername "$NAME" 2>/dev/null | openssl x509 -noout -ext subjectAltName,extendedKeyUsage)
expect_match "... its one SAN the DNS name, serverAuth only: no URI SAN, so it is no SVID" \
  "^X509v3 Extended Key Usage: TLS Web Server Authentication X509v3 Subject Alternative Name: DNS:$NAME\$" "$(echo $san)"

# Bounds: --webhook-max-connections 4, held by an attacker: 4 plain TCP
# connections that never start TLS, then 4 slowloris ones (handshake done,
# a head trickled a byte at a time). The API server's review must still be
# answered: a newcomer takes the place of the oldest connection holding no
# request (failurePolicy Fail: refusing it would stop pod creation).
rm -f "$WORK/held" "$WORK/held.closed" "$WORK/held.stop"
start_bg "$WORK/hold" "$PY" "$WISP_SRC/tests/integration/webhook/hold.py" "$PORT" "$BUNDLE" "$NAME" 4 4 \
  "$WORK/held" "$WORK/held.stop"
HOLD_PID=$LAST_PID
wait_for 20 test -s "$WORK/held"
check "an attacker holds 8 connections (4 idle TCP, 4 slowloris TLS) to the webhook" test "$(cat "$WORK/held" 2>/dev/null)" = 8
review held "$WORK/orders.yaml" --max-time 20
expect_eq "... a real review over TLS is still answered: 200" 200 "$CODE"
check "... with exactly wispctl inject's pod" same_as_inject held
check "... the attacker's idle connections were closed to make room (oldest first)" \
  wait_for 10 grep -q '^idle 4 ' "$WORK/held.closed"
check "... the slowloris ones by the head deadline, though they keep sending" \
  wait_for 20 grep -q ' slow 4$' "$WORK/held.closed"
check "... and the agent says why" grep -q 'webhook-max-connections (4) reached: closed the oldest idle connection' "$WORK/agent.err"
touch "$WORK/held.stop"
wait "$HOLD_PID"
review after "$WORK/orders.yaml"
expect_eq "afterwards reviews are answered again" 200 "$CODE"
# The cap again, the attacker's 4 connections each holding half a request:
# a caller still in its TLS handshake (younger than a second) is not the
# one evicted when the attacker opens a fifth; the attacker's oldest is.
expect_eq "at the cap, an attacker's newcomer does not evict a caller in its handshake: the caller's review is answered" \
  "HTTP/1.1 200 OK" "$("$PY" "$WISP_SRC/tests/integration/webhook/evict.py" "$PORT" "$BUNDLE" "$NAME" "$WORK/orders.json")"
check "... the agent closed a busy connection of the attacker's instead" \
  grep -q 'reached: closed the oldest busy connection, from 127.0.0.2' "$WORK/agent.err"
check "every review is logged with its decision" grep -q '"type":"admission".*"namespace":"shop","pod":"orders-7d4b9-x2k","allowed":"true","patched":"true"' "$WORK/agent.out"

stop_agent() {
  kill -TERM "$AGENT_PID"
  wait "$AGENT_PID"
  local rc=$?
  if [ "$rc" -eq 0 ] && ! grep -Eq 'Sanitizer|runtime error:' "$WORK/$1.err"; then ok "$1: exits 0 on SIGTERM, sanitizer clean"
  else not_ok "$1: exits 0 on SIGTERM, sanitizer clean" "exit $rc"; fi
}
stop_agent agent

# Large reviews, against the defaults (--webhook-max-body 1MiB): what a
# review may cost is bounded before it is parsed, and the agent's RPCs are
# served while reviews are processed (on the webhook's worker thread, off
# the agent's loop; the times are printed, not asserted).
PORT=$(free_port)
start_bg "$WORK/big" "$AGENT" --state-dir "$WORK/bigstate" --listen "unix:$SOCKDIR/big.sock" --trust-domain shop.local \
  --kube-api off --webhook "127.0.0.1:$PORT" --inject-agent "$INJECT_AGENT"
AGENT_PID=$LAST_PID
wait_port "$PORT" || { not_ok "the agent serves its webhook (defaults)"; cat "$WORK/big.err"; finish; }
BUNDLE=$WORK/bigstate/bundle.pem
rss() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$AGENT_PID/status"; }
echo "# agent RSS before the large reviews: $(rss VmRSS) KB"
"$PY" - "$WORK/orders.json" "$WORK" <<'PY'
import json, sys
review, work = json.load(open(sys.argv[1])), sys.argv[2]
def write(name, **spec):
    r = json.loads(json.dumps(review))
    r["request"]["object"]["spec"].update(spec)
    open("%s/%s.json" % (work, name), "w").write(json.dumps(r, separators=(",", ":")))
write("zeros3m", x=[0] * 1500000)   # 3 MiB: once 370 MB and seconds of CPU
write("zeros1m", x=[0] * 500000)    # under 1 MiB, half a million values
# The most a review may be: near 1 MiB and 65536 values (12,900 env entries).
c = review["request"]["object"]["spec"]["containers"][0]
c["env"] = [{"name": "E%05d" % i, "value": "v" * 40} for i in range(12900)]
write("largest")
PY
post zeros3m "$WORK/zeros3m.json"
expect_match "a 3 MiB review: 413 (--webhook-max-body defaults to 1MiB)" '^413:the body is larger than 1048576 bytes' \
  "$CODE:$(head -c 200 "$WORK/zeros3m.answer")"
post zeros1m "$WORK/zeros1m.json"
expect_match "a review under 1 MiB of half a million JSON values: 400, refused before it is parsed" \
  '^400:wisp-agent: the review holds more than 65536 JSON values' "$CODE:$(head -c 200 "$WORK/zeros1m.answer")"
post largest "$WORK/largest.json"
expect_eq "the largest review taken (near 1 MiB, 64,500 values): injected" "200 True JSONPatch" \
  "$CODE $(answer largest "r['allowed'], r.get('patchType')")"
# Reviews back to back on 3 connections while an agent RPC is asked for:
# it is answered while they are still being processed.
t0=$(date +%s%N)
WISP_AGENT=unix:$SOCKDIR/big.sock "$WISPCTL" --timeout 20s status >/dev/null 2>&1
echo "# wispctl status alone took $((($(date +%s%N) - t0) / 1000000)) ms"
rm -f "$WORK/reviews.done"
n0=$(grep -c '"type":"admission"' "$WORK/big.out")
(for i in 1 2 3 4 5 6; do
  post "load$i" "$WORK/largest.json" &
  post "load$i-b" "$WORK/largest.json" &
  post "load$i-c" "$WORK/largest.json"
  wait
done
touch "$WORK/reviews.done") &
LOAD_PID=$!
wait_for 20 bash -c "[ \$(grep -c '\"type\":\"admission\"' '$WORK/big.out') -gt $n0 ]"
t0=$(date +%s%N)
WISP_AGENT=unix:$SOCKDIR/big.sock "$WISPCTL" --timeout 20s status >"$WORK/big.status" 2>&1
rc=$? t1=$(date +%s%N)
done_before=$([ -e "$WORK/reviews.done" ] && echo after || echo during)
expect_eq "an agent RPC (wispctl status) during 18 largest reviews is answered while they are processed" "0 during" \
  "$rc $done_before"
echo "# wispctl status took $(((t1 - t0) / 1000000)) ms during the reviews"
wait "$LOAD_PID"
expect_rss_under "... the agent's peak RSS after them all stays under 100 MB" 100000 "$(rss VmHWM)"
echo "# agent RSS after the large reviews: $(rss VmRSS) KB, peak $(rss VmHWM) KB"

# Abandoned reviews: an attacker (from 127.0.0.2) posts near-1 MiB reviews
# whole and closes each connection at once, from 8 threads. Each would
# cost the worker a large review's time; a review whose caller has gone is
# dropped undecided, what may wait is bounded per source and in all, and
# the worker takes other sources' reviews in turn: the API server's
# reviews meanwhile are answered within its timeoutSeconds (10 s).
start_bg "$WORK/orphan" "$PY" "$WISP_SRC/tests/integration/webhook/orphan.py" "$PORT" "$WORK/largest.json" 10 8 \
  127.0.0.2 3000
ORPHAN_PID=$LAST_PID
wait_for 20 grep -q 'first review sent' "$WORK/orphan.out"
answered=0
for i in 1 2 3 4; do
  post "flood$i" "$WORK/orders.json" --max-time 10
  [ "$CODE" = 200 ] && answered=$((answered + 1))
  echo "# review $i during the flood: HTTP $CODE"
done
expect_eq "4 reviews during a flood of abandoned 1 MiB reviews from another source: each answered 200 within 10 s" \
  4 "$answered"
check "... the agent noticed abandoned reviews and dropped them undecided" \
  grep -q 'connection from 127.0.0.2:[0-9]* closed with its review out: dropped undecided' "$WORK/big.err"
wait "$ORPHAN_PID"
echo "# $(cat "$WORK/orphan.out")"
post flood-after "$WORK/orders.json" --max-time 10
expect_eq "... and right after it" 200 "$CODE"
expect_rss_under "... the agent's peak RSS stays under 200 MB" 200000 "$(rss VmHWM)"
echo "# agent RSS after the flood: $(rss VmRSS) KB, peak $(rss VmHWM) KB"
stop_agent big
BUNDLE=$WORK/state/bundle.pem

# In a cluster: the agent keeps the MutatingWebhookConfiguration's caBundle
# set to its bundle (a stand-in API server on loopback takes the PATCH).
K=$WORK/kube
mkdir -p "$K/sa"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kube-ca -days 1 \
  -keyout "$K/ca.key" -out "$K/sa/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kube-apiserver \
  -keyout "$K/api.key" -out "$K/api.csr" 2>/dev/null
printf 'subjectAltName=DNS:kubernetes.default.svc\n' >"$K/ext"
openssl x509 -req -in "$K/api.csr" -CA "$K/sa/ca.crt" -CAkey "$K/ca.key" -CAcreateserial -days 1 \
  -extfile "$K/ext" -out "$K/api.crt" 2>/dev/null
echo agent-token >"$K/sa/token"
echo '{"keys": []}' >"$K/jwks.json"
API=$(free_port) PORT=$(free_port)
start_bg "$WORK/api" "$PY" "$WISP_SRC/tests/lib/fake_kube_api.py" --port "$API" --cert "$K/api.crt" \
  --key "$K/api.key" --token "$K/sa/token" --jwks "$K/jwks.json" --issuer https://kubernetes.default.svc \
  --patch-out "$K/patch"
wait_port "$API"
in_cluster() { # in_cluster NAME API_PORT: an agent in a "cluster" whose API server is on API_PORT
  start_bg "$WORK/$1" "$AGENT" --state-dir "$WORK/state" --listen "unix:$SOCK" --kube-api "https://127.0.0.1:$2" \
    --kube-sa-dir "$K/sa" --webhook "127.0.0.1:$PORT" --inject-agent "$INJECT_AGENT"
  AGENT_PID=$LAST_PID
}
in_cluster incluster "$API"
check "the agent sets the caBundle of MutatingWebhookConfiguration wisp-inject" \
  wait_for 10 grep -q 'caBundle of MutatingWebhookConfiguration wisp-inject set' "$WORK/incluster.err"
check "... with a JSON Patch: the bundle, base64, in each of its webhooks" "$PY" -c "
import base64, json, sys
lines = open('$K/patch').read().split('\n', 1)
ops = json.loads(lines[1]); b = base64.b64encode(open('$BUNDLE', 'rb').read()).decode()
sys.exit(not (lines[0] == 'application/json-patch+json' and ops == [
  {'op': 'add', 'path': '/webhooks/%d/clientConfig/caBundle' % i, 'value': b} for i in (0, 1)]))"
check "... authenticated with the agent's own token" grep -q 'PATCH /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/wisp-inject 200' "$WORK/api.out"
stop_agent incluster

# An API server that answers a byte every 0.5 s, never finishing: each
# call to it ends at its deadline (10 s in all), with the reason logged,
# and the agent retries.
SLOW=$(free_port) PORT=$(free_port)
start_bg "$WORK/trickle" "$PY" "$WISP_SRC/tests/integration/webhook/trickle.py" "$SLOW" "$K/api.crt" "$K/api.key"
wait_port "$SLOW"
in_cluster slowapi "$SLOW"
check "an API server that never finishes its answer: the call ends at its deadline, saying so" \
  wait_for 40 grep -q 'cannot set the caBundle.*no complete answer from the API server within 10 s' "$WORK/slowapi.err"
stop_agent slowapi
finish
