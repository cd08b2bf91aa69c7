#!/usr/bin/env bash
# bench/burst_rss.sh WISP_PROXY_BINARY: RSS of the wisp pair (bench/pair_setup.sh,
# loopback) idle, at the peak of a burst and idle again after it: what
# `kubectl top` and a cgroup memory limit see of a sidecar that took a burst.
# The burst, all at once into the outbound proxy: HTTP/2 callers (h2load
# -c BR_CONNS -m 10), HTTP/1.1 keep-alive callers (h2load --h1 -c
# BR_CONNS), HTTP/1.1 pipelining callers (h2load --h1 -c BR_CONNS/2 -m 8),
# and BR_MIDBODY processes of POSTs each closed mid-body (a new connection
# each, tests/integration/h1_attack.py midbody) while it lasts. Then nothing:
# RSS is read 1 s, 3 s and BR_IDLE s after the burst ended.
# Prints per proxy: RSS idle before, peak (VmHWM), after the burst; KB.
# BR_WORKERS [2] (--workers of both proxies); BR_CONNS [800];
# BR_REQUESTS [100000] per h2load; BR_MIDBODY [4]; BR_IDLE [8];
# BR_PORT_BASE [18700] (3 consecutive ports); BR_ARGS: more wisp-proxy
# arguments (with BENCH_OUT_ERR=FILE and "--log-level debug", how long
# each give-back took).
set -euo pipefail
WISP=${1:?usage: bench/burst_rss.sh WISP_PROXY_BINARY}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
W=${BR_WORKERS:-2} C=${BR_CONNS:-800} N=${BR_REQUESTS:-100000} MB=${BR_MIDBODY:-4} IDLE=${BR_IDLE:-8}
ulimit -n "$(ulimit -Hn)"
export BENCH_WISP_ARGS="--workers $W --max-connections 8192 ${BR_ARGS:-}"
source "$REPO/bench/pair_setup.sh"
bench_pair "$WISP" "${BR_PORT_BASE:-18700}"
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
sleep 3
before_c=$(kb "$CPID" VmRSS) before_s=$(kb "$SPID" VmRSS)
URL="http://127.0.0.1:$OUT/"
LOADS=()
h2load -c "$C" -m 10 -n "$N" "$URL" >"$TMP/h2.out" 2>&1 & LOADS+=($!)
h2load --h1 -c "$C" -n "$N" "$URL" >"$TMP/h1.out" 2>&1 & LOADS+=($!)
h2load --h1 -c $((C / 2)) -m 8 -n "$N" "$URL" >"$TMP/h1p.out" 2>&1 & LOADS+=($!)
MIDS=()
for ((i = 0; i < MB; i++)); do
	/usr/bin/python3 "$REPO/tests/integration/h1_attack.py" midbody "$OUT" 600 "$TMP/stop" >"$TMP/mid.$i" 2>&1 & MIDS+=($!)
done
for p in "${LOADS[@]}"; do wait "$p" || true; done
touch "$TMP/stop"
for p in "${MIDS[@]}"; do wait "$p" || true; done
grep -h "^requests:\|^status codes:" "$TMP"/h*.out >&2 || true
peak_c=$(kb "$CPID" VmHWM) peak_s=$(kb "$SPID" VmHWM)
ok() { awk '/^requests:/ {print $8 " of " $2}' "$1"; }
mid=0
for ((i = 0; i < MB; i++)); do mid=$((mid + $(sed -n 's/^sent=//p' "$TMP/mid.$i"))); done
echo "burst: --workers $W, HTTP/2 $(ok "$TMP/h2.out") ok, HTTP/1.1 $(ok "$TMP/h1.out") ok," \
	"pipelined $(ok "$TMP/h1p.out") ok, $mid closed mid-body"
t=0
after_c=() after_s=()
for at in 1 3 "$IDLE"; do
	sleep $((at - t))
	t=$at
	after_c+=("+${at}s $(kb "$CPID" VmRSS)") after_s+=("+${at}s $(kb "$SPID" VmRSS)")
done
echo "client proxy RSS KB: idle before $before_c, peak $peak_c, after the burst ${after_c[*]}"
echo "server proxy RSS KB: idle before $before_s, peak $peak_s, after the burst ${after_s[*]}"
if [[ -n ${BR_SMAPS:-} ]]; then # the client proxy's largest mappings by RSS now
	awk '/^[0-9a-f]+-[0-9a-f]+ / {m = $1 " " $6} /^Rss:/ {print $2, m}' "/proc/$CPID/smaps" | sort -rn | head -12
fi
