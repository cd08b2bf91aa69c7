#!/usr/bin/env bash
# Header blocks (HEADERS and their CONTINUATIONs) as attackers send them,
# on both sides of a proxy pair (--workers 2), on loopback, beside a
# well-behaved client: wisp_h2 keeps a block's stream on its connection
# (issue 15), so every way a block can be interrupted, reset or outlived is
# tried. Callers (h2_blocks.py, raw frames): blocks over many CONTINUATIONs,
# RST_STREAM / PRIORITY / GOAWAY / another stream's CONTINUATION inside one,
# headers and trailers on closed or reset streams, huge and many-field
# blocks, binary values, hundreds of concurrent streams reset after their
# blocks. Upstream (h2_blocks_app.py): answers whose blocks misbehave the
# same ways, trailers after a reset, interleaved blocks. Asserted: each
# caller sees what HTTP/2 says it should (answers, GOAWAY PROTOCOL_ERROR),
# every upstream answer ends (a status or 502), the good client is served,
# RSS stays bounded, and both proxies exit clean (no sanitizer report).
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the source tree
make_pki
p=$WORK/pki
ORDERS=$TD/ns/shop/sa/orders
RSS_MB=48

APP_PORT=$(free_port) BAD_PORT=$(free_port) IN_PORT=$(free_port) BADIN_PORT=$(free_port)
OUT_PORT=$(free_port) BADOUT_PORT=$(free_port)
start_app app "$APP_PORT" || { not_ok "the app starts"; finish; }
start_bg "$WORK/bad_app" $PY "$WISP_SRC/tests/integration/h2_blocks_app.py" "$BAD_PORT"
start_proxy server --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" --workers 2 \
  --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --admin off
start_proxy badin --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" --workers 2 \
  --inbound "127.0.0.1:$BADIN_PORT" --app "127.0.0.1:$BAD_PORT" --app-protocol h2c --admin off
start_proxy client --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" --workers 2 --admin off \
  --route "127.0.0.1:$OUT_PORT=127.0.0.1:$IN_PORT,id=$ORDERS" --route "127.0.0.1:$BADOUT_PORT=127.0.0.1:$BADIN_PORT,id=$ORDERS"
for port in $BAD_PORT $IN_PORT $BADIN_PORT $OUT_PORT $BADOUT_PORT; do wait_port "$port" || { not_ok "all listen"; finish; }; done

start_bg "$WORK/good" $PY "$WISP_SRC/tests/attack/good_client.py" --port "$OUT_PORT" --requests 300 --seconds 60
GOOD=$LAST_PID

# Callers' blocks, on the route port.
timeout 120 $PY "$WISP_SRC/tests/integration/h2_blocks.py" "$OUT_PORT" >"$WORK/callers.out" 2>&1
while read -r verdict name rest; do
  if [ "$verdict" = PASS ]; then ok "caller block $name: $rest"; else not_ok "caller block $name" "$rest"; fi
done < <(grep -E '^(PASS|FAIL) ' "$WORK/callers.out")
expect_eq "every caller scenario ran" 17 "$(grep -cE '^(PASS|FAIL) ' "$WORK/callers.out")"

# Answers' blocks, through the app's inbound proxy: each request ends, with
# the status a caller should see (a broken block: 502; trailers after the
# answer's reset: the answer's status, then the reset).
BASE=http://127.0.0.1:$BADOUT_PORT
for want in /cont=200 /rst-mid=502 /goaway-mid=502 /prio-mid=502 /huge=200 /many=502 /idle-stream=502 /=200 \
  /closed=200 /rst-after=000 /rst-before-trailers=000 /bin=000; do
  path=${want%=*}
  for round in 1 2 3; do
    code=$(timeout 20 curl -s --http2-prior-knowledge --max-time 15 -o /dev/null -w '%{http_code}' "$BASE$path")
    [ "$code" = "${want#*=}" ] || break
  done
  expect_eq "an answer with block $path ends as ${want#*=}, three times" "${want#*=}" "$code"
done
# Trailers whose block a RST_STREAM interrupts: the answer's status got out
# or not (a race with the connection's error), but the request ends.
code=$(timeout 20 curl -s --http2-prior-knowledge --max-time 15 -o /dev/null -w '%{http_code}' "$BASE/trailers-rst-mid")
expect_match "an answer whose trailers' block a reset interrupts ends" '^(200|000)$' "$code"
# Two answers' blocks interleaved (a CONTINUATION-less HEADERS of one inside
# the other's): a connection error upstream; both requests end.
(cd "$WORK" && timeout 30 nghttp -n "$BASE/interleave?a" "$BASE/interleave?b" >/dev/null 2>&1)
check "interleaved answer blocks end (nghttp returns)" test $? -ne 124
out=$(timeout 60 h2load -n 400 -c 4 -m 20 "$BASE/cont" 2>&1 | grep '^requests:')
expect_match "answers over CONTINUATIONs with trailers, 400 by h2load: all succeed" "400 succeeded" "$out"
timeout 60 h2load -n 400 -c 4 -m 20 "$BASE/rst-after" >/dev/null 2>&1
check "answers reset after their blocks, 400 by h2load: the load ends" test $? -ne 124

wait "$GOOD"
good=$(tail -1 "$WORK/good.out")
expect_match "the good client beside them is served" "success=300 " "$good"
expect_eq "curl still gets 200 from the route" 200 \
  "$(curl -s --http2-prior-knowledge --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$OUT_PORT/")"
for n in client server badin; do
  expect_rss_under "$n's RSS stays bounded" $((RSS_MB * 1024)) "$(awk '/VmHWM/ {print $2}' "/proc/$(eval echo \$PID_$n)/status")"
done
for n in client server badin; do stop_proxy "$n"; done
finish
