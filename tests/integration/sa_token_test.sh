#!/usr/bin/env bash
# Identity from Kubernetes service-account tokens (issue 11): wisp-agent
# verifies tokens minted by python3-jwt (tests/lib/sa_token.py, keys made by
# openssl) against a JWKS file it re-reads when it changes, and against keys
# it fetches from a stand-in API server on loopback (tests/lib/fake_kube_api.py,
# HTTPS, the agent's own bearer token). Each refusal reads the right words in
# the gRPC status; a wisp-proxy boots with --sa-token-file and re-reads it.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
AGENT=$(wisp_find_bin wisp-agent "$@") || exit 1
PY=/usr/bin/python3
ST="$WISP_SRC/tests/lib/sa_token.py"
ISS=https://kubernetes.default.svc.cluster.local
SOCK=$SOCKDIR/agent.sock
ac() { node "$NODE_DIR/agent_client.js" --target "unix://$SOCK" "$@"; }
mint() { "$PY" "$ST" mint --keys "$WORK/keys" "$@"; }
jwks() { "$PY" "$ST" jwks "$WORK/keys" "$@"; }
exp_of() { "$PY" -c 'import jwt,sys; print(jwt.decode(sys.argv[1], options={"verify_signature": False})["exp"])' "$1"; }
pem_of() { node -e 'const o=JSON.parse(require("fs").readFileSync(0));process.stdout.write(o[process.argv[1]])' "$1"; }
csr() { # csr NAME SPIFFE_ID: a DER CSR in $WORK/NAME.der
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/$1.key" 2>/dev/null
  openssl req -new -key "$WORK/$1.key" -subj /O=wisp -addext "subjectAltName=URI:$2" -outform DER \
    -out "$WORK/$1.der" 2>/dev/null
}
start_agent() { # start_agent NAME ARGS...
  local name=$1
  shift
  rm -f "$SOCK"
  start_bg "$WORK/$name" "$AGENT" --state-dir "$WORK/state" --listen "unix:$SOCK" --trust-domain shop.local \
    --svid-ttl 1h --kube-api off "$@"
  AGENT_PID=$LAST_PID
  wait_for 10 test -S "$SOCK"
}
stop_agent() {
  kill -TERM "$AGENT_PID"
  wait "$AGENT_PID"
  local rc=$?
  if [ "$rc" -eq 0 ] && ! grep -Eq 'Sanitizer|runtime error:' "$WORK/$1.err"; then ok "$1: exits 0 on SIGTERM, sanitizer clean"
  else not_ok "$1: exits 0 on SIGTERM, sanitizer clean" "exit $rc"; fi
}
# refused NAME CODE WORDS TOKEN [CSR]: Sign with TOKEN is refused with CODE and WORDS.
refused() {
  local out
  out=$(ac sign-sa "$WORK/${5:-orders}.der" "$4" 2>&1)
  expect_match "$1: $2, \"$3\"" "\"name\":\"$2\".*$3" "$out"
}

"$PY" "$ST" keys "$WORK/keys" || { not_ok "openssl and python3-jwt make keys"; finish; }
csr orders "$TD/ns/shop/sa/orders"
csr admin "$TD/ns/shop/sa/admin"

# --- no key source: tokens are refused saying how to enable them ---
start_agent plain || { not_ok "agent starts"; finish; }
refused "an agent without keys" UNAUTHENTICATED "takes no service-account tokens" "$(mint)"
stop_agent plain

# --- --sa-jwks FILE ---
cp "$WORK/keys/jwks.json" "$WORK/jwks.json"
start_agent agent --sa-jwks "$WORK/jwks.json" --sa-issuer "$ISS" || { not_ok "agent starts with --sa-jwks"; finish; }
check "the agent logs the loaded keys" wait_for 5 grep -q '"type":"sa_keys","event":"loaded","source":"--sa-jwks","keys":2' "$WORK/agent.err"
out=$(ac sign-sa "$WORK/orders.der" "$(mint)")
expect_match "an RS256 token signs orders' CSR" "\"spiffe_id\":\"$TD/ns/shop/sa/orders\"" "$out"
out=$(ac sign-sa "$WORK/orders.der" "$(mint --alg ES256 --aud https://kubernetes.default.svc,wisp)")
expect_match "an ES256 token with aud [api, wisp] signs it" "\"spiffe_id\":\"$TD/ns/shop/sa/orders\"" "$out"
check "the agent logs the issue via service-account" grep -q "\"type\":\"sign\",\"spiffe_id\":\"$TD/ns/shop/sa/orders\",\"via\":\"service-account\"" "$WORK/agent.out"
refused "wrong audience" UNAUTHENTICATED "wrong audience: the token is for https://kubernetes.default.svc, not wisp" \
  "$(mint --aud https://kubernetes.default.svc)"
refused "expired" UNAUTHENTICATED "expired: the token expired 360[0-9] s ago" "$(mint --exp-in -3600)"
refused "not yet valid" UNAUTHENTICATED "not yet valid: nbf is (59[0-9]|600) s from now" "$(mint --nbf-in 600)"
refused "unknown key" UNAUTHENTICATED "unknown key: no key with kid rsa-9" "$(mint --kid rsa-9)"
refused "bad signature" UNAUTHENTICATED "bad signature: the RS256 signature does not verify with key rsa-1" \
  "$(mint --key other-rsa.pem)"
refused "issuer mismatch" UNAUTHENTICATED "issuer mismatch: the token's issuer is https://evil.example" \
  "$(mint --iss https://evil.example)"
refused "alg none" UNAUTHENTICATED "algorithm refused: alg none" "$(mint --alg none)"
refused "HS256" UNAUTHENTICATED "algorithm refused: alg HS256" "$(mint --alg HS256)"
refused "another service account's ID" PERMISSION_DENIED \
  "service account does not match the requested ID: the token is for shop/orders" "$(mint)" admin
# sa_token is bytes: what follows a NUL is not cut off (it once was, and the
# token before it was taken).
refused "a token with a NUL byte and more after it" UNAUTHENTICATED "malformed token: the token holds a NUL byte" \
  "$(mint)\\0junk"
# Only projected tokens, bound to their pod, living at most --sa-token-max-lifetime (24h).
refused "a token bound to no pod (kubectl create token)" UNAUTHENTICATED \
  "not bound to a pod: the token has no kubernetes.io pod" "$(mint --pod '')"
refused "a legacy Secret-based token" UNAUTHENTICATED \
  "not bound to a pod: a legacy Secret-based service-account token \\(iss kubernetes/serviceaccount" "$(mint --legacy)"
refused "a token living 25 h" UNAUTHENTICATED "lifetime too long: the token lives 90000 s \\(exp - iat\\), more than the 86400 s" \
  "$(mint --exp-in 90000)"
refused "another namespace's token" PERMISSION_DENIED "the token is for kube-system/orders" "$(mint --ns kube-system)"
check "refusals are logged with the reason" grep -q '"type":"sign_refused","spiffe_id":"spiffe://shop.local/ns/shop/sa/orders","reason":"service-account token refused: expired' "$WORK/agent.out"

# --- an SVID lives no longer than its token; renewing it needs a current one ---
tok=$(mint --exp-in 300)
out=$(ac sign-sa "$WORK/orders.der" "$tok")
expect_match "the SVID's notAfter is the token's exp, not --svid-ttl 1h" "\"not_after_unix\":$(exp_of "$tok")," "$out"
printf '%s' "$out" | pem_of leaf_pem >"$WORK/sa-leaf.pem"
printf '%s' "$out" | pem_of bundle_pem >"$WORK/sa-bundle.pem"
expect_match "its subject says it was issued on a service-account token" "OU ?= ?kubernetes-service-account-token" \
  "$(openssl x509 -in "$WORK/sa-leaf.pem" -noout -subject)"
acr() { ac --tls "$WORK/sa-leaf.pem" "$WORK/orders.key" "$WORK/sa-bundle.pem" "$@"; } # renewal over mTLS
out=$(acr sign "$WORK/orders.der" 2>&1)
expect_match "renewing it over mTLS with no token is refused (a stolen SVID key must not renew forever)" \
  '"name":"UNAUTHENTICATED".*issued on a service-account token and lives no longer than it: renewing it needs a current token' "$out"
out=$(acr sign-sa "$WORK/orders.der" "$(mint --exp-in -3600)" 2>&1)
expect_match "renewing it with an expired token is refused" '"name":"UNAUTHENTICATED".*expired: the token expired' "$out"
tok=$(mint --exp-in 900)
out=$(acr sign-sa "$WORK/orders.der" "$tok" 2>&1)
expect_match "renewing it with a current token: the new SVID ends at that token's exp" \
  "\"not_after_unix\":$(exp_of "$tok")," "$out"
refused "a token about to expire" UNAUTHENTICATED "it expires in ([0-9]|1[0-9]) s, too soon to issue an SVID on it" \
  "$(mint --exp-in 10)"
refused "a token expired 40 s ago (within the clock-skew leeway): said so" UNAUTHENTICATED \
  "it expired (39|4[0-9]) s ago, too late to issue an SVID on it" "$(mint --exp-in -40 --iat-in -600)"
refused "a token issued after it expires (iat > exp)" UNAUTHENTICATED "iat [0-9]+ is after its exp [0-9]+ \\(a lifetime of -15 s\\)" \
  "$(mint --exp-in 40 --iat-in 55)"

# The file changes (a ConfigMap update): a new key is taken without a restart;
# a broken file leaves the last good set in force.
# One odd key among them (bad base64url) is left out alone and logged; it
# once made the whole set refused.
jwks rsa.pem:rsa-1:RS256 ec.pem:ec-1:ES256 other-rsa.pem:rsa-2:RS256 |
  "$PY" -c 'import json,sys; d=json.load(sys.stdin); d["keys"].append({"kty":"RSA","kid":"odd","n":"!!","e":"AQAB"}); print(json.dumps(d))' \
  >"$WORK/jwks.json.new"
mv "$WORK/jwks.json.new" "$WORK/jwks.json"
check "a changed --sa-jwks is re-read (3 keys)" wait_for 5 grep -q '"event":"loaded","source":"--sa-jwks","keys":3' "$WORK/agent.err"
check "its odd key is left out and logged with the reason" grep -q \
  '"event":"key_skipped","source":"--sa-jwks","error":"keys\[3\] (kid odd): an RSA key without base64url n and e"' "$WORK/agent.err"
out=$(ac sign-sa "$WORK/orders.der" "$(mint --key other-rsa.pem --kid rsa-2)")
expect_match "a token signed by the new key is taken" "\"spiffe_id\":\"$TD/ns/shop/sa/orders\"" "$out"
echo '{"keys": [' >"$WORK/jwks.json.new" && mv "$WORK/jwks.json.new" "$WORK/jwks.json"
check "a broken --sa-jwks is refused and logged" wait_for 5 grep -q '"event":"refused","source":"--sa-jwks"' "$WORK/agent.err"
out=$(ac sign-sa "$WORK/orders.der" "$(mint --key other-rsa.pem --kid rsa-2)")
expect_match "the last good key set stays in force" "\"spiffe_id\":\"$TD/ns/shop/sa/orders\"" "$out"

# --sa-token-max-lifetime: shorter than the injected tokens' 600 s is refused at start.
out=$("$AGENT" --state-dir "$WORK/state" --listen "unix:$WORK/x.sock" --kube-api off --sa-token-max-lifetime 5m 2>&1)
expect_match "--sa-token-max-lifetime 5m is refused at start" "sa-token-max-lifetime 5m: expected a duration of at least 600s" "$out"
stop_agent agent
jwks rsa.pem:rsa-1:RS256 ec.pem:ec-1:ES256 >"$WORK/jwks.json"
start_agent agent --sa-jwks "$WORK/jwks.json" --sa-issuer "$ISS" --sa-token-max-lifetime 1h ||
  { not_ok "agent starts with --sa-token-max-lifetime 1h"; finish; }
refused "with --sa-token-max-lifetime 1h, a token of 2 h" UNAUTHENTICATED "lifetime too long: the token lives 7200 s" \
  "$(mint --exp-in 7200)"
out=$(ac sign-sa "$WORK/orders.der" "$(mint --exp-in 3600)")
expect_match "... and one of 1 h is taken" "\"spiffe_id\":\"$TD/ns/shop/sa/orders\"" "$out"

# --- wisp-proxy --sa-token-file: bootstrap, re-read at every attempt ---
ADM=$(free_port) IN=$(free_port)
mint --aud vault >"$WORK/sa.token"
start_proxy proxy --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/orders" --sa-token-file "$WORK/sa.token" \
  --inbound "127.0.0.1:$IN" --app 127.0.0.1:1 --admin "127.0.0.1:$ADM"
check "with a token for another audience the proxy logs the agent's reason" \
  wait_for 10 grep -q '"event":"sign_failed".*UNAUTHENTICATED: service-account token refused: wrong audience' "$WORK/proxy.err"
# A token with 40 s left: the SVID ends with it, and the proxy renews it at
# about half its life with the token the file then holds.
mint --exp-in 40 >"$WORK/sa.token.new" && mv "$WORK/sa.token.new" "$WORK/sa.token"
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADM/ready")" = 200 ]; }
check "after the token file is replaced (as the kubelet rotates it) the proxy is ready" wait_for 20 ready
expect_match "its SVID is orders'" "\"spiffe_id\":\"$TD/ns/shop/sa/orders\"" "$(curl -s "http://127.0.0.1:$ADM/certs")"
mint --exp-in 900 >"$WORK/sa.token.new" && mv "$WORK/sa.token.new" "$WORK/sa.token"
renewed() { [ "$(grep -c '"event":"issued"' "$WORK/proxy.err")" -ge 2 ]; }
check "the proxy renews its SVID before the token's end" wait_for 40 renewed
check "sending its current token: no renewal was refused" bash -c "! grep -q 'sign_failed.*lives no longer than it' '$WORK/proxy.err'"
expect_match "with the token the file holds now: the SVID ends at its exp" \
  "\"not_after_unix\":$(exp_of "$(cat "$WORK/sa.token")")" "$(curl -s "http://127.0.0.1:$ADM/certs")"
stop_proxy proxy
stop_agent agent

# --- in a cluster: keys and issuer fetched from the API server ---
K=$WORK/kube
mkdir -p "$K/sa"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kube-ca -days 1 \
  -keyout "$K/ca.key" -out "$K/sa/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kube-apiserver \
  -keyout "$K/api.key" -out "$K/api.csr" 2>/dev/null
printf 'subjectAltName=DNS:kubernetes.default.svc,DNS:kubernetes.default\n' >"$K/ext"
openssl x509 -req -in "$K/api.csr" -CA "$K/sa/ca.crt" -CAkey "$K/ca.key" -CAcreateserial -days 1 \
  -extfile "$K/ext" -out "$K/api.crt" 2>/dev/null
mint --ns wisp-system --sa wisp-agent >"$K/sa/token"
jwks rsa.pem:rsa-1:RS256 >"$K/jwks.json"
API=$(free_port)
start_bg "$WORK/api" "$PY" "$WISP_SRC/tests/lib/fake_kube_api.py" --port "$API" --cert "$K/api.crt" \
  --key "$K/api.key" --token "$K/sa/token" --jwks "$K/jwks.json" --issuer "$ISS"
wait_port "$API"
start_agent incluster --kube-api "https://127.0.0.1:$API" --kube-sa-dir "$K/sa" || not_ok "agent starts in-cluster"
check "the agent fetched the issuer and keys with its own token" \
  wait_for 10 grep -q "\"type\":\"sa_keys\",\"event\":\"loaded\",\"source\":\"api-server\",\"keys\":1,\"issuer\":\"$ISS\"" "$WORK/incluster.err"
check "it asked for the discovery document and the JWKS" \
  grep -q 'GET /.well-known/openid-configuration 200' "$WORK/api.out"
out=$(ac sign-sa "$WORK/orders.der" "$(mint)")
expect_match "a token verifies against the fetched keys" "\"spiffe_id\":\"$TD/ns/shop/sa/orders\"" "$out"
# The issuer adds a key: a token naming it is refused once and fetches the keys again.
jwks rsa.pem:rsa-1:RS256 ec.pem:ec-1:ES256 >"$K/jwks.json.new" && mv "$K/jwks.json.new" "$K/jwks.json"
refused "a key the agent does not have yet" UNAUTHENTICATED "unknown key: no key with kid ec-1" "$(mint --alg ES256)"
check "the unknown key makes the agent fetch the keys again" \
  wait_for 10 grep -q '"event":"loaded","source":"api-server","keys":2' "$WORK/incluster.err"
out=$(ac sign-sa "$WORK/orders.der" "$(mint --alg ES256)")
expect_match "then the token is taken" "\"spiffe_id\":\"$TD/ns/shop/sa/orders\"" "$out"
stop_agent incluster
# A bad bearer token: the fetch fails with the HTTP status, the agent keeps serving and says why.
echo wrong >"$K/wrong-token"
mkdir -p "$K/sa2" && cp "$K/sa/ca.crt" "$K/sa2/" && cp "$K/wrong-token" "$K/sa2/token"
start_agent denied --kube-api "https://127.0.0.1:$API" --kube-sa-dir "$K/sa2" || not_ok "agent starts"
check "a refused fetch is logged with the HTTP status" \
  wait_for 10 grep -q '"event":"fetch_failed","source":"api-server","error":"GET /.well-known/openid-configuration: HTTP 401' "$WORK/denied.err"
refused "tokens while the keys are not loaded" UNAVAILABLE "keys are not loaded yet: GET /.well-known/openid-configuration: HTTP 401" "$(mint)"
stop_agent denied
# An API server whose certificate is not for kubernetes.default.svc is not talked to.
printf 'subjectAltName=DNS:evil.example\n' >"$K/ext2"
openssl x509 -req -in "$K/api.csr" -CA "$K/sa/ca.crt" -CAkey "$K/ca.key" -CAcreateserial -days 1 \
  -extfile "$K/ext2" -out "$K/evil.crt" 2>/dev/null
EVIL=$(free_port)
start_bg "$WORK/evil" "$PY" "$WISP_SRC/tests/lib/fake_kube_api.py" --port "$EVIL" --cert "$K/evil.crt" \
  --key "$K/api.key" --token "$K/sa/token" --jwks "$K/jwks.json" --issuer "$ISS"
wait_port "$EVIL"
start_agent misnamed --kube-api "https://127.0.0.1:$EVIL" --kube-sa-dir "$K/sa" || not_ok "agent starts"
check "an API server certificate for another name is refused" \
  wait_for 10 grep -q '"event":"fetch_failed","source":"api-server","error":"GET /.well-known/openid-configuration: TLS with the API server 127.0.0.1:[0-9]* failed: Hostname mismatch' "$WORK/misnamed.err"
check "and no request reached it" bash -c "! grep -q GET '$WORK/evil.out'"
stop_agent misnamed
finish
