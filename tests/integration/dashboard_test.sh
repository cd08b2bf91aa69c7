#!/usr/bin/env bash
# deploy/grafana-dashboard.json (issue 13): it loads as JSON, and every
# PromQL query in it names only metrics (and labels) that a running wisp
# pair exports on /metrics after HTTP traffic; a copy with a wrong metric
# or label name is refused, so the check can fail.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
PY=/usr/bin/python3
CHECK="$PY $WISP_SRC/tests/integration/dashboard_check.py"
DASH=$WISP_SRC/deploy/grafana-dashboard.json
make_pki
p=$WORK/pki
APP_PORT=$(free_port) IN_PORT=$(free_port) OUT_PORT=$(free_port) ADM_S=$(free_port) ADM_C=$(free_port)
start_app app "$APP_PORT" || { not_ok "app starts"; finish; }
start_proxy server --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --admin "127.0.0.1:$ADM_S"
start_proxy client --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" \
  --route "127.0.0.1:$OUT_PORT=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders" --admin "127.0.0.1:$ADM_C"
for port in $IN_PORT $OUT_PORT $ADM_S $ADM_C; do wait_port "$port" || { not_ok "pair starts"; finish; }; done

check "the dashboard is JSON" $PY -c 'import json, sys; json.load(open(sys.argv[1]))' "$DASH"
expect_eq "it is a Grafana dashboard with panels and a Prometheus datasource variable" "wisp-mesh yes prometheus" \
  "$($PY -c 'import json, sys; d = json.load(open(sys.argv[1]))
print(d["uid"], "yes" if len(d["panels"]) > 5 else "no", d["templating"]["list"][0]["query"])' "$DASH")"
for i in 1 2 3; do h2get -o /dev/null "http://127.0.0.1:$OUT_PORT/x$i"; done
served() { [ "$(prom_sum "$(curl -s --max-time 5 "http://127.0.0.1:$ADM_S/metrics")" 'wisp_requests_total{direction="inbound"}')" = 3 ]; }
check "the server counted the 3 requests" wait_for 10 served
curl -s --max-time 5 "http://127.0.0.1:$ADM_S/metrics" >"$WORK/server.metrics"
curl -s --max-time 5 "http://127.0.0.1:$ADM_C/metrics" >"$WORK/client.metrics"
out=$($CHECK "$DASH" "$WORK/server.metrics" "$WORK/client.metrics" 2>&1)
rc=$?
expect_eq "every query names only metrics and labels the live /metrics has ($out)" 0 "$rc"
expect_match "... and it read the queries (more than 10)" '^([1-9][0-9]+) queries, every metric and label exported$' "$out"
for q in 'histogram_quantile(0.99' 'histogram_quantile(0.5' 'wisp_svid_expiry_timestamp_seconds - time()' \
  'code!~\"5xx|none\"' 'source_workload' 'destination_workload'; do
  check "the dashboard has a query with $q" grep -qF "$q" "$DASH"
done

# The check can fail: a metric or label that wisp does not export.
sed 's/wisp_request_duration_milliseconds_bucket/istio_request_duration_milliseconds_bucket/' "$DASH" >"$WORK/bad-metric.json"
out=$($CHECK "$WORK/bad-metric.json" "$WORK/server.metrics" "$WORK/client.metrics" 2>&1)
expect_match "a dashboard naming istio_request_duration_milliseconds_bucket is refused, naming it" \
  'istio_request_duration_milliseconds_bucket is not a metric wisp exports' "$out"
sed 's/by (source_principal, destination_workload)/by (source_principl, destination_workload)/' "$DASH" >"$WORK/bad-label.json"
out=$($CHECK "$WORK/bad-label.json" "$WORK/server.metrics" "$WORK/client.metrics" 2>&1)
expect_match "a misspelt label is refused, naming it" 'label source_principl is on no exported sample' "$out"
sed 's/label_values(wisp_requests_total,/label_values(wisp_request_total,/' "$DASH" >"$WORK/bad-var.json"
out=$($CHECK "$WORK/bad-var.json" "$WORK/server.metrics" "$WORK/client.metrics" 2>&1)
expect_match "a template variable's query is checked too" "variable 'namespace': wisp_request_total is not" "$out"
finish
