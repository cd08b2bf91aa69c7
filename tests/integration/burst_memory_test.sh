#!/usr/bin/env bash
# Memory after a burst (issue 15's review): a client proxy on --workers 2
# takes a burst of HTTP/1.1 and HTTP/2 callers (a thousand connections at
# once), then nothing. Once calm it gives the memory back (its slab
# freelists, then malloc_trim): its RSS, which the burst grew by tens of
# MB, falls back to near what it was idle before (glibc kept all of it
# before: the proxy stayed at its peak), wisp_memory_trims_total counts the
# give-backs, a good caller is still answered, and the proxies exit clean.
# RSS checks are skipped under ASan (its allocator is not glibc's).
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
make_pki
ulimit -n "$(ulimit -Hn)"
p=$WORK/pki
APP_PORT=$(free_port) IN_PORT=$(free_port) OUT=$(free_port) CADM=$(free_port)
start_app app "$APP_PORT"
start_proxy server --workers 2 --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --app-protocol h2c --admin off
start_proxy client --workers 2 --max-connections 8192 --max-queued 8192 --cert "$p/frontend.crt" --key "$p/frontend.key" \
  --bundle "$p/ca/ca.crt" --route "127.0.0.1:$OUT=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders" \
  --admin "127.0.0.1:$CADM"
wait_port "$IN_PORT" && wait_port "$OUT" && wait_port "$CADM" || exit 1
PID=$PID_client
metrics() { curl -s --max-time 10 "http://127.0.0.1:$CADM/metrics"; }
trims() { prom_sum "$(metrics)" wisp_memory_trims_total; }
good() { curl -s --max-time 10 -o /dev/null -w '%{http_code}' --http2-prior-knowledge "http://127.0.0.1:$OUT/hello"; }

expect_eq "a caller is answered before the burst" 200 "$(good)"
h2load -c 20 -m 10 -n 2000 "http://127.0.0.1:$OUT/hello" >"$WORK/warm.out" 2>&1
# Idle: wait (bounded) for the warm-up's give-back, then read the RSS.
wait_for 20 [ "$(trims)" -ge 1 ] 2>/dev/null
sleep 2
before=$(rss_kb "$PID")
trims_before=$(trims)
echo "# idle before the burst: RSS $before KB, $trims_before trims"

# The burst: 1,000 HTTP/1.1 keep-alive callers and 300 HTTP/2 callers at once.
(
  h2load --h1 -c 1000 -n 20000 "http://127.0.0.1:$OUT/hello" >"$WORK/h1.out" 2>&1 &
  h2load -c 300 -m 10 -n 20000 "http://127.0.0.1:$OUT/hello" >"$WORK/h2.out" 2>&1 &
  wait
) &
BURST=$!
peak=$(max_rss "$BURST" "$PID")
wait "$BURST"
echo "# burst: $(grep -h "^requests:\|^status codes:" "$WORK/h1.out" "$WORK/h2.out" | tr "\n" " ")"
# What the burst added, and what may stay of it once calm: a quarter (what
# live structures grew to and pages pinned by live chunks; glibc kept all
# of it before), at most 8 MB.
added=$((peak - before))
margin=$((added / 4 < 8192 ? added / 4 : 8192))
fallen() { [ "$(rss_kb "$PID")" -le $((before + margin)) ]; }
if [ "$SANITIZED" = 1 ]; then
  skip "the burst grew the client proxy by 20 MB or more" "RSS is not meaningful under AddressSanitizer"
  skip "once calm its RSS falls back near its idle RSS" "RSS is not meaningful under AddressSanitizer"
else
  check "the burst grew the client proxy by 20 MB or more (idle $before KB, peak $peak KB)" [ "$added" -ge 20480 ]
  # Bounded wait: give-backs come on a 1 s tick once a tick saw no request.
  if wait_for 20 fallen; then
    ok "once calm its RSS falls back to within $margin KB of its idle RSS (idle $before KB, peak $peak KB, now $(rss_kb "$PID") KB)"
  else
    not_ok "once calm its RSS falls back to within $margin KB of its idle RSS" "idle $before KB, peak $peak KB, now $(rss_kb "$PID") KB"
  fi
fi
# A spell's give-backs are done by now: one per worker, on its first tick
# without a new connection or request.
sleep 3
after=$(trims)
check "wisp_memory_trims_total counted give-backs ($trims_before before the burst, $after after)" [ "${after:-0}" -gt "${trims_before:-0}" ]
sleep 3
expect_eq "... and no more while nothing happens" "$after" "$(trims)"
expect_eq "a good caller is answered after it" 200 "$(good)"
out=$(h2load -c 4 -m 10 -n 400 "http://127.0.0.1:$OUT/hello" 2>&1)
expect_match "... and 400 requests more, all of them" "requests: 400 total, 400 started, 400 done, 400 succeeded" "$out"
stop_proxy client
stop_proxy server
finish
