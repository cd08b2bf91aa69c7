#!/usr/bin/env bash
# L4 uploads (ALPN wisp-l4) through an inbound sidecar to a slow-reading
# app arrive whole: bytes the tunnel left inside the TLS object when its
# buffer toward the app filled must move once the app reads (issue 9
# follow-up: they waited for a socket event that never came).
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
PEER="/usr/bin/python3 $WISP_SRC/tests/integration/l4_upload_peer.py"
RUNS=${L4_RUNS:-8}
NBYTES=${L4_NBYTES:-$((30 << 20))}
make_pki
p=$WORK/pki
same=0
for run in $(seq "$RUNS"); do
  # A fresh app port per run: the proxy's --app is fixed, so restart it.
  APP_PORT=$(free_port)
  IN_PORT=$(free_port)
  start_proxy "s$run" --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
    --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" --admin off
  wait_port "$IN_PORT" || { not_ok "proxy s$run starts"; continue; }
  got=$(timeout 30 $PEER "$IN_PORT" "$APP_PORT" "$p" "$NBYTES" 2>"$WORK/run$run.err")
  echo "# run $run: $got"
  [ "$got" = same ] && same=$((same + 1))
done
expect_eq "$RUNS L4 uploads of $NBYTES bytes to a slow-reading app all arrive intact" "$RUNS" "$same"
finish
