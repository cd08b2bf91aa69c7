#!/usr/bin/env bash
# bench/profile.sh - CPU per request of the wisp pair, and optionally a perf
# profile of it, under the load of bench/run.sh's "wisp" setup (h2load -c 10
# -m 10 -> wisp outbound -mTLS-> wisp inbound -> nghttpd, 64-byte file; the
# pair and the app on CPU 1, h2load on CPU 0). Quicker than bench/run.sh for
# A/B runs of two binaries; no HAProxy.
#
# Usage: bench/profile.sh WISP_PROXY_BINARY [PERF_OUT_PREFIX]
#   With PERF_OUT_PREFIX, `perf record --call-graph dwarf` samples both
#   proxies during the measured phase into PREFIX.data and writes
#   PREFIX.txt (perf report --stdio --no-children, sorted by self).
# Environment: PROF_DURATION [10] seconds measured, PROF_WARMUP [3] seconds,
#   PROF_PORT_BASE [18200] (3 consecutive ports), PROF_ERR [temp] the client
#   proxy's stderr.
# Prints: req/s, proxy CPU us per request (both proxies, utime+stime from
# /proc over the measured phase).
set -Eeuo pipefail
WISP=${1:?usage: bench/profile.sh WISP_PROXY_BINARY [PERF_OUT_PREFIX]}
PERF_OUT=${2:-}
DUR=${PROF_DURATION:-10}
WARM=${PROF_WARMUP:-3}
BASE=${PROF_PORT_BASE:-18200}
APP=$BASE OUT=$((BASE + 1)) IN=$((BASE + 2))
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TMP=$(mktemp -d /tmp/wisp-prof.XXXXXX)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT

wait_port() { # PORT: up to 10 s
	local i
	for ((i = 0; i < 100; i++)); do
		ss -Hltn "sport = :$1" | grep -q . && return 0
		sleep 0.1
	done
	echo "port $1 not listening" >&2
	exit 1
}
report() { # PREFIX: self time by shared object, then by symbol (top 45)
	{
		echo "# perf record --call-graph dwarf,16384 -F 999 -p <client proxy>,<server proxy> -- sleep $((DUR - 1))"
		echo "# perf report --stdio --no-children -g none --sort dso / --sort dso,symbol"
		perf report -i "$1.data" --stdio --no-children -g none --sort dso 2>/dev/null | grep -v '^#' | grep -v '^$' | head -20 || true
		echo
		perf report -i "$1.data" --stdio --no-children -g none --sort dso,symbol 2>/dev/null | grep -v '^#' | grep -v '^$' | head -45 || true
	} >"$1.txt"
}
cpu_ticks() { # PID: utime+stime in clock ticks
	awk '{print $14 + $15}' "/proc/$1/stat"
}

"$REPO/deploy/wisp-pki.sh" ca "$TMP/ca" >/dev/null
"$REPO/deploy/wisp-pki.sh" svid "$TMP/ca" "$TMP/client" spiffe://bench.local/ns/bench/sa/client >/dev/null
"$REPO/deploy/wisp-pki.sh" svid "$TMP/ca" "$TMP/server" spiffe://bench.local/ns/bench/sa/server >/dev/null
mkdir -p "$TMP/docroot"
head -c 64 /dev/zero | tr '\0' x >"$TMP/docroot/index.html"
taskset -c 1 nghttpd --no-tls -a 127.0.0.1 -m 1000 -d "$TMP/docroot" "$APP" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$APP"
taskset -c 1 "$WISP" --cert "$TMP/server.crt" --key "$TMP/server.key" --bundle "$TMP/ca/ca.crt" \
	--inbound "127.0.0.1:$IN" --app "127.0.0.1:$APP" --drain-timeout 2 --admin off >/dev/null 2>"$TMP/in.err" &
SPID=$!
PIDS+=("$SPID")
wait_port "$IN"
taskset -c 1 "$WISP" --cert "$TMP/client.crt" --key "$TMP/client.key" --bundle "$TMP/ca/ca.crt" \
	--route "127.0.0.1:$OUT=127.0.0.1:$IN,id=spiffe://bench.local/ns/bench/sa/server" --drain-timeout 2 \
	--admin off >/dev/null 2>"${PROF_ERR:-$TMP/out.err}" &
CPID=$!
PIDS+=("$CPID")
wait_port "$OUT"

taskset -c 0 h2load -c 10 -m 10 -t 1 --warm-up-time "$WARM" -D "$DUR" "http://127.0.0.1:$OUT/" >"$TMP/h2load.out" 2>&1 &
LPID=$!
sleep "$WARM"
c0=$(($(cpu_ticks "$CPID") + $(cpu_ticks "$SPID")))
r0=$(date +%s.%N)
PERF_PID=""
if [[ -n $PERF_OUT ]]; then
	taskset -c 0 perf record -q --call-graph dwarf,16384 -F 999 -p "$CPID,$SPID" -o "$PERF_OUT.data" \
		-- sleep "$((DUR - 1))" >/dev/null 2>&1 &
	PERF_PID=$!
fi
wait "$LPID"
c1=$(($(cpu_ticks "$CPID") + $(cpu_ticks "$SPID")))
r1=$(date +%s.%N)
[[ -n $PERF_PID ]] && wait "$PERF_PID"
ok=$(awk '/^requests:/ {print $8}' "$TMP/h2load.out")
rps=$(awk '/^finished in/ {print $4}' "$TMP/h2load.out")
hz=$(getconf CLK_TCK)
# h2load -D counts the measured phase only; CPU is over the same window
# (approximately: sampled at the end of warm-up and at exit).
awk -v c="$((c1 - c0))" -v hz="$hz" -v n="$ok" -v rps="$rps" -v w0="$r0" -v w1="$r1" 'BEGIN {
	printf "req/s %s  requests %d  proxy CPU %.1f us/req  (CPU %.2f s over %.2f s)\n", rps, n, c / hz * 1e6 / n, c / hz, w1 - w0 }'
grep -E '^requests:|^status codes:' "$TMP/h2load.out" >&2
if [[ -n $PERF_OUT ]]; then
	report "$PERF_OUT"
fi
