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
  --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --admin "127.0.0.1:$ADM_S" --policy "$WORK/policy.yaml" \
  --handshake-timeout 2
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
    "${certargs[@]}" "${@:2}" >/dev/null 2>&1
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
present frontend -tls1_2 # a valid SVID, but TLS 1.2
settle 7
exec 3<>"/dev/tcp/127.0.0.1/$IN_PORT" # connects and says nothing: --handshake-timeout 2
settle 8
exec 3>&-
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
expect_eq "TLS 1.2 from a valid caller" 1 "$(msum "$m" $R reason=tls_version)"
expect_eq "a caller silent past --handshake-timeout" 1 "$(msum "$m" $R reason=handshake_timeout)"
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
# WispSVIDExpiringSoon compares the time left with the SVID's lifetime:
# the issue time is the certificate's notBefore (no agent, no backdating).
nb=$(date -u -d "$(openssl x509 -in "$p/frontend.crt" -noout -startdate | cut -d= -f2)" +%s)
expect_eq "SVID issue time is exported: the certificate's notBefore ($nb)" "$nb" \
  "$(msum "$m" wisp_svid_issued_timestamp_seconds)"

# ---- Part 2: Prometheus and Alertmanager, end to end ----
# Prometheus (scrape and evaluate every second) loads the shipped rules and
# scrapes both sidecars; Alertmanager (no cluster, 1 s group wait) sends
# every alert on its own to a webhook receiver of ours that appends each
# POSTed body to a file. Then two callers nobody has seen present bad
# certificates, and their alerts must arrive.
for bin in prometheus prometheus-alertmanager; do
  command -v "$bin" >/dev/null || { not_ok "$bin is installed (deploy/install-deps.sh)"; finish; }
done
bash "$PKI" svid "$p/other-ca" "$p/intruder" "$TD/ns/shop/sa/intruder" >/dev/null
bash "$PKI" svid "$p/ca" "$p/stale" "$TD/ns/shop/sa/stale" --expired >/dev/null
PROM_PORT=$(free_port) AM_PORT=$(free_port) HOOK_PORT=$(free_port)
cat >"$WORK/hook.py" <<'PY'
import http.server, sys
port, out = int(sys.argv[1]), sys.argv[2]
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(out, "ab") as f:
            f.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), Hook).serve_forever()
PY
cat >"$WORK/alertmanager.yml" <<YAML
route:
  receiver: hook
  group_by: ['...']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: http://127.0.0.1:$HOOK_PORT/
    send_resolved: false
YAML
cat >"$WORK/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["$WISP_SRC/deploy/prometheus/wisp-alerts.rules.yaml"]
alerting:
  alertmanagers:
  - static_configs: [{targets: ["127.0.0.1:$AM_PORT"]}]
scrape_configs:
- job_name: wisp
  static_configs: [{targets: ["127.0.0.1:$ADM_S", "127.0.0.1:$ADM_C"]}]
YAML
start_bg "$WORK/hook" $PY "$WORK/hook.py" "$HOOK_PORT" "$WORK/hook.jsonl"
start_bg "$WORK/alertmanager" prometheus-alertmanager --config.file="$WORK/alertmanager.yml" \
  --storage.path="$WORK/am" --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address=
start_bg "$WORK/prometheus" prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prom" \
  --web.listen-address="127.0.0.1:$PROM_PORT"
for port in "$HOOK_PORT" "$AM_PORT" "$PROM_PORT"; do
  wait_port "$port" 60 || { not_ok "Prometheus, Alertmanager and the receiver start"; sed 's/^/# /' "$WORK"/prometheus.err | tail -5; finish; }
done
ok "Prometheus, Alertmanager and the webhook receiver listen on loopback"
# targets_up: Prometheus has scraped both sidecars.
targets_up() {
  curl -s --max-time 5 "http://127.0.0.1:$PROM_PORT/api/v1/targets" |
    $PY -c 'import json, sys; t = json.load(sys.stdin)["data"]["activeTargets"]; sys.exit(not (len(t) == 2 and all(x["health"] == "up" for x in t)))'
}
check "Prometheus scrapes both sidecars" wait_for 60 targets_up
rules_ok() {
  curl -s --max-time 5 "http://127.0.0.1:$PROM_PORT/api/v1/rules" |
    $PY -c 'import json, sys; g = json.load(sys.stdin)["data"]["groups"]; r = [x for y in g for x in y["rules"]]
sys.exit(not (sum(x["type"] == "alerting" for x in r) >= 10 and all(x["health"] == "ok" for x in r)))'
}
check "Prometheus loaded the shipped rules, all evaluating without error" wait_for 30 rules_ok

present intruder
present stale
# arrived ALERTNAME PRINCIPAL REASON: an alert with these labels (and the
# caller's address) reached the receiver; prints its summary.
arrived() {
  [ -s "$WORK/hook.jsonl" ] || return 1
  $PY - "$WORK/hook.jsonl" "$@" <<'PY'
import json, sys
path, name, principal, reason = sys.argv[1:5]
for line in open(path):
    for a in json.loads(line).get("alerts", []):
        l = a["labels"]
        if (a["status"] == "firing" and l.get("alertname") == name and l.get("source_principal") == principal
                and l.get("reason") == reason and l.get("source_address") == "127.0.0.1"):
            print(a["annotations"]["summary"])
            sys.exit(0)
sys.exit(1)
PY
}
if wait_for 90 arrived WispUnknownCACaller "$TD/ns/shop/sa/intruder" unknown_ca >/dev/null; then
  summary=$(arrived WispUnknownCACaller "$TD/ns/shop/sa/intruder" unknown_ca)
  ok "WispUnknownCACaller reached the receiver: reason unknown_ca, caller 127.0.0.1 claiming .../sa/intruder"
  expect_match "... its summary names the caller and the workload" "^127\.0\.0\.1 \(claiming $TD/ns/shop/sa/intruder\) .* to orders\.shop " "$summary"
else
  not_ok "WispUnknownCACaller reached the receiver" "$(tail -c 1500 "$WORK/hook.jsonl" 2>/dev/null)"
fi
if wait_for 90 arrived WispExpiredCertCaller "$TD/ns/shop/sa/stale" expired >/dev/null; then
  ok "WispExpiredCertCaller reached the receiver: reason expired, caller 127.0.0.1 claiming .../sa/stale"
else
  not_ok "WispExpiredCertCaller reached the receiver" "$(tail -c 1500 "$WORK/hook.jsonl" 2>/dev/null)"
fi
# Each caller's alert says its own reason: no expired alert for the
# unknown-CA caller, nor the other way round.
if $PY -c 'import json, sys
bad = {("WispExpiredCertCaller", sys.argv[2] + "/ns/shop/sa/intruder"), ("WispUnknownCACaller", sys.argv[2] + "/ns/shop/sa/stale")}
for line in open(sys.argv[1]):
    for a in json.loads(line)["alerts"]:
        if (a["labels"]["alertname"], a["labels"].get("source_principal")) in bad:
            sys.exit(1)' "$WORK/hook.jsonl" "$TD"; then
  ok "neither caller is named in the other's alert"
else
  not_ok "neither caller is named in the other's alert" "$(cat "$WORK/hook.jsonl")"
fi

# ---- Part 3: the agent's reachability, as WispAgentUnreachable reads it ----
AGENT=$(wisp_find_bin wisp-agent "$@") || { not_ok "wisp-agent binary"; finish; }
SOCK=$SOCKDIR/agent.sock
start_bg "$WORK/agent" "$AGENT" --state-dir "$WORK/state" --listen "unix:$SOCK" --trust-domain shop.local
AGENT_PID=$LAST_PID
wait_for 10 test -S "$SOCK" || { not_ok "agent starts"; finish; }
tok=$(node "$NODE_DIR/agent_client.js" --target "unix://$SOCK" token "$TD/ns/shop/sa/cart" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
ADM_A=$(free_port) IN_A=$(free_port)
start_proxy agented --agent "unix://$SOCK" --spiffe-id "$TD/ns/shop/sa/cart" --join-token "$tok" \
  --admin "127.0.0.1:$ADM_A" --inbound "127.0.0.1:$IN_A" --app "127.0.0.1:$APP_PORT"
gauge() { msum "$(metrics "$ADM_A")" "$1"; }
connected_is() { [ "$(gauge wisp_agent_connected)" = "$1" ]; }
check "with the agent up, wisp_agent_connected is 1" wait_for 20 connected_is 1
expect_eq "... and wisp_agent_unreachable_since_timestamp_seconds 0" 0 "$(gauge wisp_agent_unreachable_since_timestamp_seconds)"
expect_eq "... no NACK" "0 0" "$(gauge wisp_policy_nacks_total) $(gauge wisp_policy_nacked)"
expect_match "... wisp_identity_info names the workload" '^1$' \
  "$(msum "$(metrics "$ADM_A")" wisp_identity_info workload=cart workload_namespace=shop principal=$TD/ns/shop/sa/cart)"
before=$(date +%s)
kill -TERM "$AGENT_PID"
wait "$AGENT_PID"
check "with the agent gone, wisp_agent_connected turns 0" wait_for 30 connected_is 0
since=$(gauge wisp_agent_unreachable_since_timestamp_seconds)
last=$(gauge wisp_agent_last_contact_timestamp_seconds)
if [ "${since:-0}" -ge "$before" ] && [ "${last:-0}" -gt 0 ] && [ "$last" -le "$since" ]; then
  ok "... unreachable since it went ($since), last contact before ($last)"
else
  not_ok "unreachable since the agent went, last contact before" "since=$since last=$last stopped at $before"
fi

finish
