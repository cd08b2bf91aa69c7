#!/usr/bin/env bash
# Traces (issue 13): W3C traceparent/tracestate and B3 headers pass through
# a sidecar pair unchanged, to the app and back in its response (curl ->
# client sidecar -> mTLS -> server sidecar -> app that echoes them), and
# both sidecars' request log lines carry trace_id when a traceparent, b3
# or x-b3-traceid header is there (none otherwise).
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
PY=/usr/bin/python3
make_pki
# --app-protocol h2c: the node app speaks h2c only, also to the HTTP/1.1 caller below.
start_pair --admin off --app-protocol h2c || { not_ok "pair starts"; finish; }
URL=http://127.0.0.1:$OUT_PORT/trace-echo
W3C_TRACE=4bf92f3577b34da6a3ce929d0e0e4736
TP="00-$W3C_TRACE-00f067aa0ba902b7-01"
TS="rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
B3_TRACE=463ac35c9f6413ad48485a3953bb6124
B3_SPAN=a2fb4a1d1a96d312

# call NAME CURL_ARGS...: one request; response headers in $WORK/NAME.h, body in $WORK/NAME.b
call() {
  local name=$1
  shift
  curl -s --max-time 10 --http2-prior-knowledge -D "$WORK/$name.h" -o "$WORK/$name.b" "$@" "$URL"
}
# hdr NAME HEADER: that response header's value
hdr() { tr -d '\r' <"$WORK/$1.h" | awk -v h="$2" 'BEGIN { IGNORECASE = 1 } index(tolower($0), h ": ") == 1 { sub(/^[^:]*: /, ""); print }'; }
# seen NAME HEADER: the value the app received
seen() { $PY -c 'import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$WORK/$1.b" "$2"; }

call w3c -H "traceparent: $TP" -H "tracestate: $TS"
expect_eq "traceparent reaches the app unchanged" "$TP" "$(seen w3c traceparent)"
expect_eq "tracestate reaches the app unchanged" "$TS" "$(seen w3c tracestate)"
expect_eq "traceparent comes back in the response unchanged" "$TP" "$(hdr w3c traceparent)"
expect_eq "tracestate comes back in the response unchanged" "$TS" "$(hdr w3c tracestate)"

B3H=(-H "x-b3-traceid: $B3_TRACE" -H "x-b3-spanid: $B3_SPAN" -H "x-b3-parentspanid: 05e3ac9a4f6e3b90"
  -H "x-b3-sampled: 1" -H "x-b3-flags: 1")
call b3multi "${B3H[@]}"
for h in x-b3-traceid:$B3_TRACE x-b3-spanid:$B3_SPAN x-b3-parentspanid:05e3ac9a4f6e3b90 x-b3-sampled:1 x-b3-flags:1; do
  expect_eq "${h%%:*} reaches the app unchanged" "${h#*:}" "$(seen b3multi "${h%%:*}")"
  expect_eq "... and comes back unchanged" "${h#*:}" "$(hdr b3multi "${h%%:*}")"
done
B3S="80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"
call b3single -H "b3: $B3S"
expect_eq "b3 (single header) reaches the app unchanged" "$B3S" "$(seen b3single b3)"
expect_eq "... and comes back unchanged" "$B3S" "$(hdr b3single b3)"
call none
expect_eq "no trace header: the app gets none" "{}" "$(tr -d '\n' <"$WORK/none.b")"
H1_TP="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
curl -s --max-time 10 --http1.1 -D "$WORK/h1.h" -o "$WORK/h1.b" -H "traceparent: $H1_TP" -H "tracestate: $TS" "$URL"
expect_eq "HTTP/1.1 caller: traceparent reaches the app unchanged" "$H1_TP" "$(seen h1 traceparent)"
expect_eq "... tracestate too" "$TS" "$(seen h1 tracestate)"
expect_eq "... and traceparent comes back in the HTTP/1.1 response" "$H1_TP" "$(hdr h1 traceparent)"

# The log lines: one request line per call on each sidecar, in call order.
lines() { grep '"type":"request"' "$WORK/$1.out" | grep -F '/trace-echo'; }
logged() { [ "$(lines client | wc -l)" -ge 5 ] && [ "$(lines server | wc -l)" -ge 5 ]; }
check "both sidecars logged the 5 requests" wait_for 10 logged
for side in client server; do
  ids=$(lines "$side" | $PY -c 'import json, sys
print(" ".join(json.loads(l).get("trace_id", "-") for l in sys.stdin))')
  expect_eq "$side sidecar's request lines: trace_id from traceparent, x-b3-traceid, b3, none, HTTP/1.1 traceparent" \
    "$W3C_TRACE $B3_TRACE 80f198ee56343ba864fe8b2a57d3eff7 - 0af7651916cd43dd8448eb211c80319c" "$ids"
done
finish
