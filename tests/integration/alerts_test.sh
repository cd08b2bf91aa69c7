#!/usr/bin/env bash
# Exception alerts (issue 16). Part 1: a live pair's /metrics counts each
# refused caller by reason, its address and the ID its certificate claims
# (unknown CA, expired, no certificate, plaintext in STRICT, an ID outside
# the trust domain), denials by policy and rule, and upstream verification
# failures; their sum is the old unlabelled total. Part 2: Prometheus
# scraping the pair with deploy/prometheus/wisp-alerts.rules.yaml and
# Alertmanager routing to a webhook receiver of the test's own: the alerts
# for the unknown-CA and the expired caller arrive with the reason and the
# caller's address and claimed identity. Loopback only, stopped by PID,
# every wait bounded.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
PY=/usr/bin/python3
make_pki
p=$WORK/pki
bash "$PKI" ca "$p/other-ca" >/dev/null
bash "$PKI" svid "$p/other-ca" "$p/rogue" "$TD/ns/shop/sa/frontend" >/dev/null
bash "$PKI" svid "$p/ca" "$p/expired" "$TD/ns/shop/sa/frontend" --expired >/dev/null
bash "$PKI" svid "$p/ca" "$p/stranger" "spiffe://evil.local/ns/x/sa/mallory" >/dev/null
cat >"$WORK/policy.yaml" <<YAML
apiVersion: wisp.dev/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: shop}
spec:
  selector: {serviceAccount: orders}
  action: DENY
  rules:
  - to: [{paths: ["/nothing-here"]}]
  - from: [{principals: ["$TD/ns/shop/sa/frontend"]}]
    to: [{paths: ["/admin*"]}]
YAML

ADM_S=$(free_port) ADM_C=$(free_port)
APP_PORT=$(free_port) IN_PORT=$(free_port) OUT_PORT=$(free_port) BAD_PORT=$(free_port)
start_app app "$APP_PORT" || { not_ok "app starts"; finish; }
start_proxy server --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --admin "127.0.0.1:$ADM_S" --policy "$WORK/policy.yaml"
# The client's second route expects another identity than the server's:
# every call on it is an upstream verification failure (wrong_identity).
start_proxy client --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" --admin "127.0.0.1:$ADM_C" \
  --route "127.0.0.1:$OUT_PORT=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders" \
  --route "127.0.0.1:$BAD_PORT=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/payments"
for port in "$IN_PORT" "$OUT_PORT" "$BAD_PORT" "$ADM_S" "$ADM_C"; do
  wait_port "$port" || { not_ok "pair starts"; finish; }
done

metrics() { curl -s --max-time 10 "http://127.0.0.1:$1/metrics"; }
# msum TEXT NAME [LABEL=VALUE...]
msum() {
  local text=$1 name=$2 sel="" a
  shift 2
  for a in "$@"; do sel="$sel${sel:+,}${a%%=*}=\"${a#*=}\""; done
  prom_sum "$text" "$name{$sel}"
}
# present CERTNAME|none: one TLS handshake at the inbound port with that
# certificate (none: without one), as a caller would.
present() {
  local certargs=()
  [ "$1" != none ] && certargs=(-cert "$p/$1.crt" -key "$p/$1.key")
  echo | timeout 10 openssl s_client -connect "127.0.0.1:$IN_PORT" -alpn h2 -CAfile "$p/ca/ca.crt" \
    "${certargs[@]}" >/dev/null 2>&1
  return 0
}
refused_total() { msum "$(metrics "$ADM_S")" wisp_connections_refused_total; }
# settle N: until the server counted N refusals (teardown is asynchronous).
settle() { wait_for 10 test "$(refused_total)" = "$1"; }

present rogue
present rogue
present expired
present none
present stranger
curl -s --max-time 5 --http2-prior-knowledge -o /dev/null "http://127.0.0.1:$IN_PORT/plain" # plaintext in STRICT
settle 6
m=$(metrics "$ADM_S")
R=wisp_connection_refusals_total
FE=$TD/ns/shop/sa/frontend
expect_eq "two unknown-CA handshakes from 127.0.0.1 claiming $FE" 2 \
  "$(msum "$m" $R reason=unknown_ca source_address=127.0.0.1 source_principal=$FE destination_workload=orders)"
expect_eq "an expired certificate claiming $FE" 1 "$(msum "$m" $R reason=expired source_principal=$FE)"
expect_eq "no client certificate" 1 "$(msum "$m" $R reason=no_client_cert source_principal=unknown)"
expect_eq "an ID outside the trust domain" 1 \
  "$(msum "$m" $R reason=wrong_identity source_principal=spiffe://evil.local/ns/x/sa/mallory)"
expect_eq "plaintext on the mTLS port in STRICT" 1 "$(msum "$m" $R reason=plaintext source_address=127.0.0.1)"
expect_eq "the refusals by reason add up to the unlabelled total" "$(msum "$m" wisp_connections_refused_total)" \
  "$(msum "$m" $R)"

# Denials by policy and rule: frontend may not GET /admin (rule 1).
for i in 1 2 3; do h2get -o /dev/null "http://127.0.0.1:$OUT_PORT/admin/x"; done
h2get -o /dev/null "http://127.0.0.1:$OUT_PORT/echo"
m=$(metrics "$ADM_S")
expect_eq "three denials by shop/no-admin rule 1, caller named" 3 \
  "$(msum "$m" wisp_policy_denials_total decision=deny_rule policy=shop/no-admin rule=1 source_principal=$FE)"
expect_eq "allowed requests are not denials" 3 "$(msum "$m" wisp_policy_denials_total)"

# Upstream verification: the route expecting payments meets orders.
h2get -o /dev/null "http://127.0.0.1:$BAD_PORT/echo"
wait_for 10 test -n "$(msum "$(metrics "$ADM_C")" wisp_upstream_verification_failures_total)"
m=$(metrics "$ADM_C")
expect_match "upstream presenting another ID: wrong_identity, expected and presented named" '^[1-9]' \
  "$(msum "$m" wisp_upstream_verification_failures_total reason=wrong_identity destination_address=127.0.0.1:$IN_PORT \
    destination_principal=$TD/ns/shop/sa/payments presented_principal=$TD/ns/shop/sa/orders source_workload=frontend)"
bexp=$(msum "$m" wisp_trust_bundle_expiry_timestamp_seconds)
expect_match "trust bundle expiry is exported (a future unix time)" '^[0-9]{10}$' "$bexp"
[ "${bexp:-0}" -gt "$(date +%s)" ] && ok "trust bundle expiry lies ahead" || not_ok "trust bundle expiry lies ahead" "$bexp"

finish
