#!/usr/bin/env bash
# /metrics stays bounded under hostile cardinality (review 13, H1 and H2):
# callers with long SPIFFE IDs (near 2048 bytes, from the test CA) and
# many statuses each fill the series table at the default caps; /metrics
# still answers 200 with readiness, SVID expiry and the overflow labels,
# in a body under --metrics-max-bytes (default 4M). Then scrapers that
# send GET /metrics and read nothing share one rendering: the proxy's RSS
# stays bounded and a request through it still succeeds.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
PY=/usr/bin/python3
BUDGET=$((4 << 20))
make_pki
p=$WORK/pki
ns=$(printf 'a%.0s' $(seq 1000))
sa=$(printf 'b%.0s' $(seq 990))
CALLERS=5
for i in $(seq $CALLERS); do
  bash "$PKI" svid "$p/ca" "$p/long$i" "$TD/ns/$ns/sa/$sa-$i" >/dev/null || { not_ok "long SVID $i"; finish; }
done

APP_PORT=$(free_port) IN_PORT=$(free_port) ADM=$(free_port)
start_app app "$APP_PORT" || { not_ok "app starts"; finish; }
start_proxy server --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --admin "127.0.0.1:$ADM"
wait_port "$IN_PORT" && wait_port "$ADM" || { not_ok "the proxy starts"; finish; }

# Each long caller: one nghttp connection, /status/200../status/599 (400
# series each: 2000 in all, under --metrics-max-series 2048).
uris=()
for st in $(seq 200 599); do uris+=("https://127.0.0.1:$IN_PORT/status/$st"); done
fill=()
for i in $(seq $CALLERS); do
  timeout 60 nghttp -n --cert "$p/long$i.crt" --key "$p/long$i.key" "${uris[@]}" >"$WORK/fill$i.out" 2>&1 &
  fill+=($!)
done
wait "${fill[@]}"
# The body is megabytes: too big for an argument (prom_sum), read as a file.
# fsample PATTERN: the sum of the samples of lines starting with PATTERN.
fsample() { awk -v p="$1" 'index($0, p) == 1 { s += $NF; n++ } END { if (n) print s }' "$WORK/m.txt"; }
requests() { # scrapes into m.txt; the sum of wisp_requests_total on the inbound side
  curl -s --max-time 10 "http://127.0.0.1:$ADM/metrics" -o "$WORK/m.txt" -w '%{http_code}' >"$WORK/m.code"
  fsample 'wisp_requests_total{direction="inbound"'
}
filled() { [ "$(requests)" = $((CALLERS * 400)) ]; }
wait_for 30 filled
expect_eq "GET /metrics after 2000 long-ID series: 200" 200 "$(cat "$WORK/m.code")"
expect_eq "every request is counted (labelled or overflow)" $((CALLERS * 400)) "$(requests)"
expect_eq "wisp_ready is there and 1" 1 "$(fsample 'wisp_ready ')"
check "wisp_svid_expiry_timestamp_seconds is there" grep -Eq '^wisp_svid_expiry_timestamp_seconds [1-9]' "$WORK/m.txt"
check "later series count under overflow labels" grep -Eq \
  '^wisp_requests_total\{direction="inbound",reporter="destination",source_workload="overflow".*response_code="overflow"' \
  "$WORK/m.txt"
size=$(stat -c %s "$WORK/m.txt")
check "the body ($size bytes) is under the budget of $BUDGET bytes plus 64 KiB of other families" \
  test "$size" -lt $((BUDGET + 65536))
peers=$(fsample 'wisp_metrics_peers ')
check "some long IDs are labelled (wisp_metrics_peers $peers)" test "${peers:-0}" -ge 1
check "... and labelled series of theirs are there" grep -q "source_principal=\"$TD/ns/$ns/sa/$sa-" "$WORK/m.txt"
expect_eq "wisp_metrics_budget_bytes max is the default 4M" $BUDGET "$(fsample 'wisp_metrics_budget_bytes{kind="max"}')"
hd=$(curl -s --max-time 5 -I "http://127.0.0.1:$ADM/metrics" | tr -d '\r')
expect_match "HEAD /metrics: 200 without rendering (no Content-Length)" '^HTTP/1.1 200' "$hd"
expect_eq "... and no Content-Length" "" "$(printf '%s\n' "$hd" | grep -i '^content-length')"

# ---- scrapers that do not read ----
SCRAPERS=30
base=$(rss_kb "$PID_server")
start_bg "$WORK/hold" $PY -c '
import socket, sys, time
n, port = int(sys.argv[1]), int(sys.argv[2])
ss = []
for i in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    ss.append(s)
print("sent", flush=True)
time.sleep(4)' "$SCRAPERS" "$ADM"
HOLD=$LAST_PID
peak=$(max_rss "$HOLD" "$PID_server")
wait "$HOLD"
expect_eq "$SCRAPERS scrapers sent GET /metrics" sent "$(cat "$WORK/hold.out")"
# Without sharing each held its own copy of the body (about 4 MB each).
expect_rss_under "RSS with $SCRAPERS non-reading scrapers stays within base ($base KB) + 48 MB" \
  $((base + 48 * 1024)) "$peak"
check "a request through the proxy still succeeds" test -n "$(timeout 20 nghttp -v --cert "$p/frontend.crt" \
  --key "$p/frontend.key" "https://127.0.0.1:$IN_PORT/status/200" 2>&1 | grep ':status: 200')"
expect_eq "a scrape after them answers 200" 200 \
  "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADM/metrics")"
finish
