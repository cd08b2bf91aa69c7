#!/usr/bin/env bash
# Upstreams that reset their connections (RST, SO_LINGER 0) after answering,
# as a crashing peer sidecar or app does, each hostile in its own way
# (reset_peer.py), under load from several callers (reset_client.py: POSTs
# with their own paths and bodies that keep the proxy writing upstream),
# beside a well-behaved client. A write that finds the reset first reads
# what the peer sent before it (lib/wisp_h2conn recv_before_reset): every
# request the peer answered is answered (before, some got 502 "write
# failed: Connection reset by peer"). No request reaches the peer again once
# it processed it, none more than twice (the one retry of a refused
# stream), none is left hanging, the good client is served, RSS stays
# bounded and both proxies exit clean.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
make_pki
p=$WORK/pki
PEER="/usr/bin/python3 $WISP_SRC/tests/integration/reset_peer.py"
CLIENT="/usr/bin/python3 $WISP_SRC/tests/integration/reset_client.py"
N=1000 CONNS=6 STREAMS=20 BODY=100000
MODES="answer goaway_low mid_record endless"
ORDERS=$TD/ns/shop/sa/orders

APP_PORT=$(free_port) IN_PORT=$(free_port) OUT_PORT=$(free_port)
start_app app "$APP_PORT" || { not_ok "the app starts"; finish; }
routes=(--route "127.0.0.1:$OUT_PORT=127.0.0.1:$IN_PORT,id=$ORDERS")
for m in $MODES; do # a peer sidecar per mode, and a route to it
  eval "PEER_$m=$(free_port) OUT_$m=$(free_port)"
  start_bg "$WORK/peer_$m" $PEER "$(eval echo \$PEER_$m)" "$p" "$m" 300 "$WORK/peer_$m.log"
  routes+=(--route "127.0.0.1:$(eval echo \$OUT_$m)=127.0.0.1:$(eval echo \$PEER_$m),id=$ORDERS")
done
# The h2c app behind an inbound proxy (appin) answers and resets too.
PEER_app=$(free_port) APPIN_PORT=$(free_port) OUT_app=$(free_port)
start_bg "$WORK/peer_app" $PEER "$PEER_app" - answer 300 "$WORK/peer_app.log"
routes+=(--route "127.0.0.1:$OUT_app=127.0.0.1:$APPIN_PORT,id=$ORDERS")
start_proxy server --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --admin off
start_proxy appin --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$APPIN_PORT" --app "127.0.0.1:$PEER_app" --app-protocol h2c --admin off
start_proxy client --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" --admin off "${routes[@]}"
for port in $IN_PORT $APPIN_PORT $OUT_PORT $OUT_app $PEER_app; do wait_port "$port" || { not_ok "all listen"; finish; }; done
for m in $MODES; do wait_port "$(eval echo \$OUT_$m)" && wait_port "$(eval echo \$PEER_$m)" || { not_ok "all listen"; finish; }; done

# The well-behaved client, one request at a time while the attacks run.
good_client() {
  local i code ok=0 all=0
  for i in $(seq 1 2000); do
    [ -e "$WORK/good.stop" ] && break
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --http2-prior-knowledge "http://127.0.0.1:$OUT_PORT/g$i")
    all=$((all + 1))
    [ "$code" = 200 ] && ok=$((ok + 1))
  done
  echo "$ok $all" >"$WORK/good.res"
}
good_client &
GOOD=$!

# attack NAME OUT_PORT PEER_LOG: the callers against one hostile upstream;
# checks what they got against what the peer saw ("recv PATH": a request
# reached it, "done PATH": it processed it).
peak=0
attack() {
  local name=$1 port=$2 log=$3 res=$WORK/client_$1.res job r
  $CLIENT "$port" $CONNS $STREAMS $N "/$name" 120 $BODY >"$res" &
  job=$!
  r=$(max_rss $job "$PID_client" "$PID_appin")
  wait $job
  [ "$r" -gt "$peak" ] && peak=$r
  expect_match "$name: each of the $N requests got an answer or an error" "missing=0$" "$(tail -1 "$res")"
  # The peer's answers reached their callers.
  local lost
  lost=$(awk 'NR == FNR { if ($1 == "done") d[$2] = 1; next } ($1 in d) && $2 != 200' "$log" "$res")
  if [ "$name" = goaway_low ]; then
    # Processed (at or below its GOAWAY's last stream) but never answered:
    # 502, never sent again.
    expect_eq "$name: what the peer processed without answering gets 502" "" \
      "$(awk 'NR == FNR { if ($1 == "done") d[$2] = 1; next } ($1 in d) && $2 != 502' "$log" "$res" | head -3)"
  elif [ "$name" != endless ]; then # endless: its answers never end
    expect_eq "$name: every request the peer answered got its answer" "" "$(printf '%s' "$lost" | head -3)"
  fi
  expect_eq "$name: no request reached the peer again after it processed one" 0 \
    "$(awk '/^done/ { d[$2] = 1 } /^recv/ && ($2 in d) { n++ } END { print n + 0 }' "$log")"
  expect_eq "$name: no request reached the peer more than twice" "" \
    "$(awk '/^recv/ { n[$2]++ } END { for (k in n) if (n[k] > 2) print k, n[k] }' "$log" | head -3)"
}
for m in $MODES; do attack "$m" "$(eval echo \$OUT_$m)" "$WORK/peer_$m.log"; done
attack app "$OUT_app" "$WORK/peer_app.log"

touch "$WORK/good.stop"
wait $GOOD
read -r good all <"$WORK/good.res"
if [ "$all" -gt 0 ] && [ $((good * 100)) -ge $((all * 99)) ]; then
  ok "the well-behaved client is served throughout ($good of $all)"
else
  not_ok "the well-behaved client is served throughout" "$good of $all"
fi
expect_rss_under "the proxies' RSS stays bounded" 65536 "$peak"
stop_proxy client
stop_proxy appin
stop_proxy server
finish
