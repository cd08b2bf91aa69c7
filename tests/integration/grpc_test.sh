#!/usr/bin/env bash
# gRPC through a wisp pair: @grpc/grpc-js client and server, nobody's mock.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
make_pki
GRPC_PORT=$(free_port)
IN_PORT=$(free_port)
OUT_PORT=$(free_port)
p=$WORK/pki
start_bg "$WORK/grpc" node "$NODE_DIR/grpc_server.js" --port "$GRPC_PORT"
wait_port "$GRPC_PORT" || { not_ok "grpc server starts"; finish; }
start_proxy server --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
  --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$GRPC_PORT"
start_proxy client --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" \
  --route "127.0.0.1:$OUT_PORT=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders"
wait_port "$IN_PORT" && wait_port "$OUT_PORT"

# The client prints one TAP line per case (unary, metadata, streaming both
# ways, bidi, error status, deadline, 4 MiB message, ...).
out=$(node "$NODE_DIR/grpc_client.js" --target "127.0.0.1:$OUT_PORT" --case all 2>&1)
rc=$?
printf '%s\n' "$out" | grep -E '^(not )?ok '
expect_eq "grpc client exits 0 through the pair" 0 "$rc"
n=$(printf '%s\n' "$out" | grep -c '^ok - grpc')
PASS=$((PASS + n))
FAIL=$((FAIL + $(printf '%s\n' "$out" | grep -c '^not ok')))

wait_for 10 grep -q '"path":"/wisp.test.Test/Fail".*"grpc_status"' "$WORK/client.out"
wait_for 10 grep -q '"path":"/wisp.test.Test/Unary".*"grpc_status"' "$WORK/server.out"
expect_match "gRPC status is in the access log" '"path":"/wisp.test.Test/Fail".*"grpc_status":3' "$(cat "$WORK/client.out")"
expect_match "gRPC OK is logged as grpc_status 0" '"path":"/wisp.test.Test/Unary".*"grpc_status":0' "$(cat "$WORK/server.out")"

# A dead upstream is UNAVAILABLE with the reason, not a hang.
DEAD=$(free_port)
start_proxy dead --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" \
  --route "127.0.0.1:$DEAD=127.0.0.1:$(free_port)"
wait_port "$DEAD"
out=$(node -e '
const {loadTestService, grpc} = require(process.argv[1]);
const Test = loadTestService().Test;
const c = new Test(process.argv[2], grpc.credentials.createInsecure());
c.Unary({text: "x"}, {deadline: Date.now() + 5000}, (err) => {
  console.log(err ? `code=${err.code} details=${err.details}` : "no error");
  process.exit(0);
});' "$NODE_DIR/grpc_common.js" "127.0.0.1:$DEAD" 2>&1)
expect_match "gRPC to an unreachable upstream: UNAVAILABLE with the reason" 'code=14 details=.*Connection refused' "$out"

stop_proxy client
stop_proxy server
stop_proxy dead
finish
