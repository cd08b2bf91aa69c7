# bench/pair_setup.sh, sourced by bench/instr.sh and bench/syscalls.sh:
# bench_pair WISP BASE WRAP... starts the pair those measure: nghttpd
# (--no-tls) serving a file of BENCH_BODY bytes (64) on BASE, the inbound
# wisp on BASE+2 in front of it (--app-protocol h2c: nghttpd speaks only
# h2c, also to HTTP/1 callers, as bench/run.sh), the outbound wisp on BASE+1 routing to it
# over mTLS (credentials made here), each wisp run as WRAP... WISP ARGS
# (WRAP may be nothing), then warms up (2,000 requests, h2load -c 10 -m
# 10). Sets OUT, SPID (inbound wisp), CPID (outbound wisp). Sourcing
# makes TMP, a directory removed on exit with every process started here.
# BENCH_WISP_ARGS: more arguments for both wisps (e.g. "--workers 2");
# BENCH_OUT_ERR: a file for the outbound wisp's stderr (kept).
PIDS=()
TMP=$(mktemp -d /tmp/wisp-bench.XXXXXX)
bench_cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap bench_cleanup EXIT
wait_port() { for ((i = 0; i < 300; i++)); do ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.1; done; echo "port $1 not up" >&2; exit 1; }
bench_pair() {
	local wisp=$1 base=$2 repo
	shift 2
	repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	local app=$base in=$((base + 2))
	OUT=$((base + 1))
	"$repo/deploy/wisp-pki.sh" ca "$TMP/ca" >/dev/null
	"$repo/deploy/wisp-pki.sh" svid "$TMP/ca" "$TMP/client" spiffe://bench.local/ns/bench/sa/client >/dev/null
	"$repo/deploy/wisp-pki.sh" svid "$TMP/ca" "$TMP/server" spiffe://bench.local/ns/bench/sa/server >/dev/null
	mkdir -p "$TMP/docroot"; head -c "${BENCH_BODY:-64}" /dev/zero | tr '\0' x >"$TMP/docroot/index.html"
	nghttpd --no-tls -a 127.0.0.1 -m 1000 -d "$TMP/docroot" "$app" >/dev/null 2>&1 & PIDS+=($!)
	wait_port "$app"
	"$@" "$wisp" --cert "$TMP/server.crt" --key "$TMP/server.key" --bundle "$TMP/ca/ca.crt" \
		--inbound "127.0.0.1:$in" --app "127.0.0.1:$app" --app-protocol h2c --drain-timeout 2 --admin off ${BENCH_WISP_ARGS:-} >/dev/null 2>"$TMP/in.err" & SPID=$!; PIDS+=($SPID)
	wait_port "$in"
	"$@" "$wisp" --cert "$TMP/client.crt" --key "$TMP/client.key" --bundle "$TMP/ca/ca.crt" \
		--route "127.0.0.1:$OUT=127.0.0.1:$in,id=spiffe://bench.local/ns/bench/sa/server" --drain-timeout 2 \
		--admin off ${BENCH_WISP_ARGS:-} >/dev/null 2>"${BENCH_OUT_ERR:-$TMP/out.err}" & CPID=$!; PIDS+=($CPID)
	wait_port "$OUT"
	h2load -c 10 -m 10 -n 2000 "http://127.0.0.1:$OUT/" >/dev/null 2>&1 # warm-up: connections, pool
}
