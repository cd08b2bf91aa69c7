#!/usr/bin/env bash
# Never-indexed fields stay never indexed on every HTTP/2 hop (RFC 7541
# 7.1.3: an intermediary must not re-encode a "literal never indexed" field
# with a representation that would index it). A caller marks its secret
# x-api-key (and a request trailer) never indexed, as clients do to keep a
# token out of the shared HPACK tables that compression attacks probe; the
# outbound proxy puts every caller's requests on one pooled mTLS connection
# to the inbound proxy, so a field it indexed there could be probed by the
# next caller on that connection. Raw python3-h2 peers (noindex_peer.py)
# read each field's representation: the h2c app behind the inbound proxy
# checks the caller's marked fields arrived never indexed and its ordinary
# one did not, and answers with a never-indexed response field and trailer,
# which each caller checks in turn. Two callers, one after the other, share
# the pool: both are served, over one mTLS connection.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the source tree
PEER="$PY $WISP_SRC/tests/integration/noindex_peer.py"
make_pki
p=$WORK/pki
N=3 # requests per caller

APP_PORT=$(free_port) IN_PORT=$(free_port) OUT_PORT=$(free_port)
start_bg "$WORK/app" $PEER app "$APP_PORT" 120
start_proxy server --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" --admin off \
  --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --app-protocol h2c
start_proxy client --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" --admin off \
  --route "127.0.0.1:$OUT_PORT=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders"
for port in $APP_PORT $IN_PORT $OUT_PORT; do wait_port "$port" || { not_ok "all listen"; finish; }; done

for caller in alice mallory; do
  timeout 60 $PEER client "$OUT_PORT" "$caller" "$N" >"$WORK/$caller.res" 2>"$WORK/$caller.err"
  while read -r verdict rest; do
    if [ "$verdict" = PASS ]; then
      ok "$rest: never-indexed request field and trailer reach the app never indexed, its never-indexed answer field and trailer reach the caller so, ordinary fields stay ordinary"
    else
      not_ok "${rest%%:*}: never-indexed fields stay never indexed both ways" "${rest#*: }"
    fi
  done < <(grep -E '^(PASS|FAIL) ' "$WORK/$caller.res")
  expect_eq "$caller: all $N requests served with their fields as sent" "$N" "$(grep -c '^PASS ' "$WORK/$caller.res")"
done
expect_eq "the app saw every request's fields as sent" "$((2 * N))" "$(grep -c '^req [a-z]* ok$' "$WORK/app.out")"

# conns PROXY DIRECTION: the distinct "conn" ids of PROXY's request lines.
conns() {
  $PY -c '
import json, sys
ids = set()
for line in open(sys.argv[1]):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    if j.get("type") == "request" and j.get("direction") == sys.argv[2]:
        ids.add(j["conn"])
print(len(ids))' "$WORK/$1.out" "$2"
}
expect_eq "the outbound proxy served two callers' connections" 2 "$(conns client outbound)"
expect_eq "... over one pooled mTLS connection (the inbound proxy's requests share its conn)" 1 "$(conns server inbound)"
stop_proxy client
stop_proxy server
finish
