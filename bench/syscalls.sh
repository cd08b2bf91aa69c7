#!/usr/bin/env bash
# bench/syscalls.sh WISP_PROXY_BINARY [REQUESTS]: system calls per request of
# each proxy of the wisp pair (h2load -> outbound wisp -> mTLS -> inbound
# wisp -> nghttpd, 64-byte GETs, as bench/instr.sh), counted by strace -c -f
# attached to each proxy after a warm-up, at one request at a time (h2load
# -c 1 -m 1) and at 100 in flight (-c 10 -m 10). strace slows every system
# call, so the pair batches more at 100 in flight than it would untraced:
# compare builds with it, do not read it as the untraced count.
# SC_H1=1: HTTP/1.1 callers instead (h2load --h1, keep-alive, -m 1 in both
# passes: -c 1 and -c 10), as bench/run.sh's wisp-h1.
# REQUESTS [2000]; SC_PORT_BASE [18400] (3 consecutive ports); SC_H1 [0].
set -euo pipefail
WISP=${1:?usage: bench/syscalls.sh WISP_PROXY_BINARY [REQUESTS]}
N=${2:-2000}
source "$(dirname "${BASH_SOURCE[0]}")/pair_setup.sh"
bench_pair "$WISP" "${SC_PORT_BASE:-18400}"

# One pass: strace -c on both proxies around one h2load run ($@: its options).
pass() {
	local label=$1; shift
	strace -c -f -o "$TMP/out.sc" -p "$CPID" 2>/dev/null & local s1=$!
	strace -c -f -o "$TMP/in.sc" -p "$SPID" 2>/dev/null & local s2=$!
	sleep 1 # attached
	h2load "$@" -n "$N" "http://127.0.0.1:$OUT/" >"$TMP/h2load.out" 2>&1
	kill -INT "$s1" "$s2"; wait "$s1" "$s2" 2>/dev/null || true
	local ok; ok=$(awk '/^requests:/ {print $8}' "$TMP/h2load.out")
	for side in out in; do
		# rows: % time, seconds, usecs/call, calls, [errors], syscall
		local rows='$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total"'
		local calls; calls=$(awk "$rows {c += \$4} END {print c + 0}" "$TMP/$side.sc")
		printf '%-10s %-4s requests %s  syscalls/request %s\n' "$label" "$side" "$ok" "$(awk -v c="$calls" -v n="$ok" 'BEGIN {printf "%.2f", c / n}')"
		awk -v n="$ok" "$rows {printf \"    %-14s %.2f\\n\", \$NF, \$4 / n}" "$TMP/$side.sc" | sort -k2 -nr | head -8
	done
}
if [[ ${SC_H1:-0} == 1 ]]; then
	h2load --h1 -c 10 -m 1 -n 2000 "http://127.0.0.1:$OUT/" >/dev/null 2>&1 # warm-up of the HTTP/1 gateway
	pass "h1-1-at-once" --h1 -c 1 -m 1
	pass "h1-10" --h1 -c 10 -m 1
	exit 0
fi
pass "1-at-once" -c 1 -m 1
pass "100" -c 10 -m 10
