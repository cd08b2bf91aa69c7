#!/usr/bin/env bash
# bench/idle_rss.sh WISP_PROXY_BINARY [CONNS]: private memory of an inbound
# wisp proxy holding CONNS idle mTLS connections (handshake done, HTTP/2
# preface and SETTINGS sent, then nothing), from tests/attack/attack.py
# idle (5,000 connections per attacker process, so CONNS/5000 of them).
# Prints the proxy's Private (smaps_rollup) before any connection, with
# all of them open, and per connection. CONNS [10000]; IR_PORT [18500].
set -euo pipefail
WISP=${1:?usage: bench/idle_rss.sh WISP_PROXY_BINARY [CONNS]}
N=${2:-10000}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IN=${IR_PORT:-18500} APP=$((${IR_PORT:-18500} + 1))
TMP=$(mktemp -d /tmp/wisp-idle-rss.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
ulimit -n $((N + 4096))
wait_port() { for ((i = 0; i < 300; i++)); do ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.1; done; echo "port $1 not up" >&2; exit 1; }
private_kb() { awk '/^Private/ {s += $2} END {print s}' "/proc/$1/smaps_rollup"; }
"$REPO/deploy/wisp-pki.sh" ca "$TMP/ca" >/dev/null
"$REPO/deploy/wisp-pki.sh" svid "$TMP/ca" "$TMP/client" spiffe://bench.local/ns/bench/sa/client >/dev/null
"$REPO/deploy/wisp-pki.sh" svid "$TMP/ca" "$TMP/server" spiffe://bench.local/ns/bench/sa/server >/dev/null
"$WISP" --cert "$TMP/server.crt" --key "$TMP/server.key" --bundle "$TMP/ca/ca.crt" \
	--inbound "127.0.0.1:$IN" --app "127.0.0.1:$APP" --admin off --max-connections $((N + 100)) \
	--max-connections-per-source $((N + 100)) --idle-timeout 300 >/dev/null 2>"$TMP/in.err" & SPID=$!; PIDS+=($SPID)
wait_port "$IN"
sleep 0.5
before=$(private_kb "$SPID")
for ((left = N; left > 0; left -= 5000)); do
	c=$((left < 5000 ? left : 5000))
	/usr/bin/python3 "$REPO/tests/attack/attack.py" idle --port "$IN" --conns "$c" --seconds 30 \
		--tls "$TMP/client.crt" "$TMP/client.key" "$TMP/ca/ca.crt" >"$TMP/attack.$left" 2>&1 & PIDS+=($!)
done
# wait (bounded) until the proxy holds all of them
open=0
for ((i = 0; i < 280; i++)); do
	open=$(ss -Htn state established "sport = :$IN" | wc -l)
	[ "$open" -ge "$N" ] && break
	sleep 0.1
done
sleep 1
held=$(private_kb "$SPID")
echo "connections $open  private KB: idle $before, holding them $held, per connection $(awk -v a="$before" -v b="$held" -v n="$open" 'BEGIN {printf "%.2f", (b - a) / n}') KB"
