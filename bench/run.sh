#!/usr/bin/env bash
# bench/run.sh - benchmark wisp side by side with a direct connection and with
# an equivalently configured HAProxy pair, in one run.
#
#   direct : h2load -> app
#   wisp   : h2load -h2c-> wisp outbound -mTLS(TLS1.3, h2)-> wisp inbound -h2c-> app
#   haproxy: h2load -h2c-> haproxy       -mTLS(TLS1.3, h2)-> haproxy       -h2c-> app
#   stunnel: h2load -h2c-> stunnel       -mTLS(TLS1.3)----> stunnel       -h2c-> app
#            (bytes relayed, no HTTP: the floor for any TLS sidecar pair)
#   wisp-h1, haproxy-h1: the same pairs with HTTP/1.1 in (h2load --h1): each
#            request goes as an HTTP/2 stream between the proxies
#
# The app is nghttpd (nghttp2's C h2c server) serving a small file.
# Then (BENCH_LATENCY) the same setups at one request at a time
# (h2load -c 1 -m 1): p50/p99 and what each adds over direct.
# Results: a Markdown table on stdout and in bench/results.md (overwritten).
# See bench/README.md for what is measured and how to read it.
#
# Usage: bench/run.sh [--quick] [--help]
# Parameters come from the environment (defaults in brackets):
#   BENCH_DURATION [10s]   measured run per setup (h2load -D)
#   BENCH_WARMUP   [3s]    warm-up before it (h2load --warm-up-time)
#   BENCH_ROUNDS   [3]     rounds per setup, interleaved; one round per setup
#                          is reported (BENCH_PICK), all rounds' req/s listed
#   BENCH_PICK     [best]  best: round with the highest req/s; median: median
#   BENCH_CLIENTS  [10]    h2load -c (connections)
#   BENCH_STREAMS  [10]    h2load -m (concurrent streams per connection)
#   BENCH_H2LOAD_THREADS [1]  h2load -t
#   BENCH_BODY_BYTES [64]  size of the file the app serves
#   BENCH_SETUPS   ["direct wisp haproxy stunnel"]  which setups, in this order
#                  (also wisp-1rule, wisp-1000rules: the pair with a policy;
#                  wisp-w2: the pair with --workers 2 on both proxies (give
#                  the SUT two CPUs, e.g. BENCH_SUT_CPUS=0,1, to use them);
#                  wisp-h1, haproxy-h1: HTTP/1.1 callers)
#   BENCH_H1_PIPELINE [1]  h2load -m for the -h1 setups (1: keep-alive, no
#                          pipelining; BENCH_CLIENTS connections)
#   BENCH_PIN      [1]     1: pin load generator and system under test to
#                          separate CPUs (taskset); 0: no pinning
#   BENCH_LOADGEN_CPUS [0]   CPU list for h2load, curl, the sampler, this script
#   BENCH_SUT_CPUS     [1]   CPU list for the app and all proxies
#   BENCH_LATENCY  [1]     1: after the throughput rounds, a latency section:
#                          h2load -c 1 -m 1 through each setup of BENCH_SETUPS
#                          (direct first), p50/p99 and added over direct;
#                          only: the latency section alone; 0: off
#   BENCH_LAT_DURATION [10s]  measured phase of each latency run (2s with
#                          --quick), after BENCH_WARMUP; BENCH_ROUNDS rounds,
#                          the round with the lowest p50 reported (BENCH_PICK
#                          median: the median p50)
#   BENCH_PORT_BASE [18100]  first of 7 consecutive 127.0.0.1 ports used
#   BENCH_SAMPLE_INTERVAL [0.2]  seconds between RSS samples under load
#   BENCH_QUIET_WAIT [30]  before each run, wait up to this many seconds for
#                          the SUT CPUs to be <=10% busy (shared machines); 0: off
#   BENCH_HAPROXY_REUSE [always]  haproxy backend "http-reuse" mode
#   BENCH_OUT      [bench/results.md]
#   BENCH_KEEP     [0]     1: keep the temp dir (configs, logs) for inspection
#   BENCH_BUILD    [opt]   opt: bazel build -c opt (bazel-* symlinks untouched);
#                          none: use bazel-bin/proxy/wisp-proxy (built if missing)
#   WISP_PROXY     []      use this binary instead (no build)
# --quick: BENCH_DURATION=2s BENCH_WARMUP=1s BENCH_ROUNDS=1 (smoke test;
#          env still wins).
set -Eeuo pipefail

PROG=bench/run.sh
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

QUICK=0
for arg in "$@"; do
	case $arg in
	--quick) QUICK=1 ;;
	-h | --help)
		sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "$PROG: unknown argument: $arg (try --help)" >&2
		exit 2
		;;
	esac
done

if [[ $QUICK == 1 ]]; then
	DURATION=${BENCH_DURATION:-2s}
	WARMUP=${BENCH_WARMUP:-1s}
	ROUNDS=${BENCH_ROUNDS:-1}
	LAT_DURATION=${BENCH_LAT_DURATION:-2s}
else
	DURATION=${BENCH_DURATION:-10s}
	LAT_DURATION=${BENCH_LAT_DURATION:-10s}
	WARMUP=${BENCH_WARMUP:-3s}
	ROUNDS=${BENCH_ROUNDS:-3}
fi
CLIENTS=${BENCH_CLIENTS:-10}
STREAMS=${BENCH_STREAMS:-10}
H2THREADS=${BENCH_H2LOAD_THREADS:-1}
H1_PIPELINE=${BENCH_H1_PIPELINE:-1}
BODY_BYTES=${BENCH_BODY_BYTES:-64}
SETUPS=${BENCH_SETUPS:-direct wisp haproxy stunnel}
LATENCY=${BENCH_LATENCY:-1}
case $LATENCY in 0 | 1 | only) ;; *)
	echo "$PROG: BENCH_LATENCY must be 0, 1 or only" >&2
	exit 2
	;;
esac
PIN=${BENCH_PIN:-1}
LOADGEN_CPUS=${BENCH_LOADGEN_CPUS:-0}
SUT_CPUS=${BENCH_SUT_CPUS:-1}
PORT_BASE=${BENCH_PORT_BASE:-18100}
SAMPLE_INTERVAL=${BENCH_SAMPLE_INTERVAL:-0.2}
QUIET_WAIT=${BENCH_QUIET_WAIT:-30}
PICK=${BENCH_PICK:-best}
case $PICK in best | median) ;; *)
	echo "$PROG: BENCH_PICK must be best or median" >&2
	exit 2
	;;
esac
HAPROXY_REUSE=${BENCH_HAPROXY_REUSE:-always}
OUT=${BENCH_OUT:-$SCRIPT_DIR/results.md}
KEEP=${BENCH_KEEP:-0}
WISP=${WISP_PROXY:-$REPO/bazel-bin/proxy/wisp-proxy}
BUILD=${BENCH_BUILD:-opt}
BUILD_LOG=""

APP_PORT=$PORT_BASE
WISP_OUT_PORT=$((PORT_BASE + 1))
WISP_IN_PORT=$((PORT_BASE + 2))
HAP_OUT_PORT=$((PORT_BASE + 3))
HAP_IN_PORT=$((PORT_BASE + 4))
STN_OUT_PORT=$((PORT_BASE + 5))
STN_IN_PORT=$((PORT_BASE + 6))
CLIENT_ID=spiffe://bench.local/ns/bench/sa/client
SERVER_ID=spiffe://bench.local/ns/bench/sa/server

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

# ---------------------------------------------------------------- cleanup
PIDS=()      # every long-running process we started
TMP=""
cleanup() {
	local rc=$? pid i alive
	trap - EXIT INT TERM ERR
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for ((i = 0; i < 50; i++)); do # up to 5 s for a graceful exit
		alive=0
		for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		[[ $alive == 0 ]] && break
		sleep 0.1
	done
	for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	[[ -n $BUILD_LOG ]] && rm -f "$BUILD_LOG"
	if [[ -n $TMP && -d $TMP ]]; then
		# keep it for debugging after a failure (not after Ctrl-C / SIGTERM)
		if [[ $KEEP == 1 || ($rc != 0 && $rc != 130 && $rc != 143) ]]; then
			log "temp dir kept: $TMP"
		else
			rm -rf "$TMP"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM
# (only in the main shell: background jobs inherit the ERR trap via set -E)
trap '[[ $BASHPID == "$$" ]] && log "failed at line $LINENO: $BASH_COMMAND"' ERR

forget_pid() { # forget_pid PID: drop from PIDS (after we stopped it)
	local p out=()
	for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || out+=("$p"); done
	PIDS=("${out[@]}")
}

stop_pid() { # stop_pid PID: TERM, bounded wait, then KILL
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	forget_pid "$pid"
}

# ---------------------------------------------------------------- prerequisites
ensure_pkgs() {
	local missing=() cmd
	local -A want=([haproxy]=haproxy [h2load]=nghttp2-client [nghttpd]=nghttp2-server
		[curl]=curl [taskset]=util-linux [ss]=iproute2 [openssl]=openssl [stunnel4]=stunnel4)
	for cmd in "${!want[@]}"; do
		command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
	done
	[[ ${#missing[@]} == 0 ]] && return 0
	log "installing missing packages: ${missing[*]}"
	[[ $(id -u) == 0 ]] || die "missing packages ${missing[*]} and not root; install them first"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
		apt-get update >&2 || die "apt-get update failed"
		apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
			die "apt-get install ${missing[*]} failed"
	fi
	for cmd in "${!want[@]}"; do
		command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after installing ${want[$cmd]}"
	done
}

# Which wisp-proxy binary. bazel-bin/ is a symlink to whatever configuration
# was built last (e.g. an ASan build from `bazel test --config=asan`) and is
# fastbuild (-O0) by default, so by default we build an optimized binary
# (-c opt) without touching the bazel-* symlinks (--symlink_prefix=/).
ensure_wisp() {
	if [[ -n ${WISP_PROXY:-} ]]; then
		WISP_BUILD="given (WISP_PROXY)"
		[[ -x $WISP ]] || die "WISP_PROXY=$WISP is not executable"
	elif [[ $BUILD == opt ]]; then
		WISP_BUILD="bazel build -c opt"
		BUILD_LOG=$(mktemp /tmp/wisp-bench-build.XXXXXX)
		log "building an optimized wisp-proxy: bazel build -c opt //proxy:wisp-proxy"
		# -O2 enables warnings that -O0 does not; the tree builds with -Werror.
		(cd "$REPO" && bazel build -c opt --symlink_prefix=/ \
			--copt=-Wno-error=format-truncation --copt=-Wno-error=stringop-truncation \
			--copt=-Wno-error=maybe-uninitialized //proxy:wisp-proxy) >"$BUILD_LOG" 2>&1 || {
			tail -n 30 "$BUILD_LOG" >&2
			die "bazel build -c opt //proxy:wisp-proxy failed (BENCH_BUILD=none uses bazel-bin/proxy/wisp-proxy)"
		}
		WISP=$(cd "$REPO" && bazel info -c opt bazel-bin 2>/dev/null)/proxy/wisp-proxy
		[[ -x $WISP ]] || die "bazel build -c opt succeeded but $WISP is missing"
	elif [[ $BUILD == none ]]; then
		WISP_BUILD="bazel-bin as found"
		if [[ ! -x $WISP ]]; then
			WISP_BUILD="bazel build (fastbuild)"
			log "building //proxy:wisp-proxy (bazel-bin/proxy/wisp-proxy missing)"
			(cd "$REPO" && bazel build //proxy:wisp-proxy) >&2 || die "bazel build //proxy:wisp-proxy failed"
			[[ -x $WISP ]] || die "bazel build succeeded but $WISP is missing"
		fi
	else
		die "BENCH_BUILD must be opt or none, not '$BUILD'"
	fi
	if ldd "$WISP" 2>/dev/null | grep -qE 'lib(asan|ubsan|tsan|msan)'; then
		[[ ${BENCH_ALLOW_SANITIZED:-0} == 1 ]] ||
			die "$WISP is a sanitizer build (ldd shows libasan/ubsan): its numbers would be meaningless (BENCH_ALLOW_SANITIZED=1 to run anyway)"
		WISP_BUILD+=", SANITIZER BUILD"
	fi
	WISP_SHA=$(sha256sum "$WISP" | cut -c1-12)
	log "wisp-proxy: $WISP ($WISP_BUILD, sha256 $WISP_SHA)"
}

# ---------------------------------------------------------------- helpers
to_sec() { # "10s" "500ms" "2m" "7" -> seconds (decimal)
	local v=$1
	case $v in
	*ms) awk -v x="${v%ms}" 'BEGIN{print x/1000}' ;;
	*s) echo "${v%s}" ;;
	*m) awk -v x="${v%m}" 'BEGIN{print x*60}' ;;
	*h) awk -v x="${v%h}" 'BEGIN{print x*3600}' ;;
	*) echo "$v" ;;
	esac
}

# Command prefixes that pin to the SUT / load-generator CPUs. Used as
# "${SUT[@]}" cmd & (a simple command, so bash execs taskset, which execs cmd:
# $! is the PID of cmd itself and killing it needs no process-group tricks).
SUT=()
LOADGEN=()
port_listening() { # port_listening PORT
	[[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
}

port_must_be_free() {
	local p
	for p in "$@"; do
		port_listening "$p" && die "port 127.0.0.1:$p is already in use (set BENCH_PORT_BASE)"
	done
	return 0
}

wait_port() { # wait_port NAME PID PORT LOGFILE: up to 10 s
	local name=$1 pid=$2 port=$3 logf=$4 i
	for ((i = 0; i < 100; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "---- $logf (tail) ----" >&2
			tail -n 20 "$logf" >&2 || true
			die "$name (pid $pid) exited before listening on 127.0.0.1:$port"
		fi
		port_listening "$port" && return 0
		sleep 0.1
	done
	echo "---- $logf (tail) ----" >&2
	tail -n 20 "$logf" >&2 || true
	die "$name (pid $pid) not listening on 127.0.0.1:$port after 10 s"
}

rss_kb() { # VmRSS of PID in KB ("-" if gone)
	local k v _
	while read -r k v _; do
		[[ $k == VmRSS: ]] && {
			echo "$v"
			return
		}
	done <"/proc/$1/status" 2>/dev/null
	echo "-"
}

cpu_ticks() { # utime+stime of PID in clock ticks
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || {
		echo 0
		return
	}
	s=${s##*) } # drop "pid (comm) "
	# now field 1 is state (stat field 3): utime/stime are stat fields 14/15
	# shellcheck disable=SC2086 # split on purpose
	set -- $s
	echo $((${12} + ${13}))
}

now_ns() { date +%s%N; }

# cpu_busy CPULIST: busy (non-idle, non-iowait) ticks summed over those CPUs
# ("all" = every CPU), and how many CPUs that is: "TICKS NCPUS"
cpu_busy() {
	awk -v list="$1" '
		BEGIN {
			if (list == "all") all = 1
			n = split(list, parts, ",")
			for (i = 1; i <= n; i++) {
				if (split(parts[i], r, "-") == 2) { for (c = r[1]; c <= r[2]; c++) want["cpu" c] = 1 }
				else want["cpu" parts[i]] = 1
			}
		}
		/^cpu[0-9]/ && (all || ($1 in want)) {
			busy += $2 + $3 + $4 + $7 + $8 + $9; ncpu++
		}
		END { printf "%d %d\n", busy, ncpu }' /proc/stat
}

# one request through an entry point, must be 200 with the right body size
is_h1() { [[ $1 == *-h1 ]]; } # is_h1 SETUP: its callers speak HTTP/1.1

check_one() { # check_one NAME PORT
	local name=$1 port=$2 out proto=--http2-prior-knowledge
	is_h1 "$name" && proto=--http1.1
	out=$("${LOADGEN[@]}" curl -sS --max-time 5 "$proto" -o /dev/null \
		-w '%{http_code} %{size_download}' "http://127.0.0.1:$port/" 2>&1) ||
		die "$name: test request to 127.0.0.1:$port failed: $out"
	[[ $out == "200 $BODY_BYTES" ]] ||
		die "$name: test request to 127.0.0.1:$port returned '$out', want '200 $BODY_BYTES'"
}

# ---------------------------------------------------------------- setup
ensure_pkgs
ensure_wisp
if [[ $PIN == 1 ]]; then
	SUT=(taskset -c "$SUT_CPUS")
	LOADGEN=(taskset -c "$LOADGEN_CPUS")
	# This script, curl, sort and the sampler stay off the SUT CPUs.
	taskset -cp "$LOADGEN_CPUS" $$ >/dev/null ||
		die "taskset -cp $LOADGEN_CPUS failed (BENCH_PIN=0 to disable pinning)"
fi
CLK_TCK=$(getconf CLK_TCK)
if [[ $PIN == 1 ]]; then SUT_CPULIST=$SUT_CPUS; else SUT_CPULIST=all; fi
DUR_S=$(to_sec "$DURATION")
WARM_S=$(to_sec "$WARMUP")
for s in $SETUPS; do
	case $s in direct | wisp | wisp-1rule | wisp-1000rules | wisp-w2 | haproxy | wisp-h1 | haproxy-h1 | stunnel) ;; *) die "unknown setup '$s' in BENCH_SETUPS" ;; esac
done

LOADAVG0=$(cut -d' ' -f1-3 /proc/loadavg)
TMP=$(mktemp -d /tmp/wisp-bench.XXXXXX)
log "temp dir $TMP; duration $DURATION, warm-up $WARMUP, ${CLIENTS}x${STREAMS} streams, body ${BODY_BYTES} B"

port_must_be_free "$APP_PORT" "$WISP_OUT_PORT" "$WISP_IN_PORT" "$HAP_OUT_PORT" "$HAP_IN_PORT" \
	"$STN_OUT_PORT" "$STN_IN_PORT"

# PKI: one CA, a client SVID and a server SVID (ECDSA P-256).
"$REPO/deploy/wisp-pki.sh" ca "$TMP/ca" >/dev/null || die "wisp-pki.sh ca failed"
"$REPO/deploy/wisp-pki.sh" svid "$TMP/ca" "$TMP/client" "$CLIENT_ID" >/dev/null || die "wisp-pki.sh svid failed"
"$REPO/deploy/wisp-pki.sh" svid "$TMP/ca" "$TMP/server" "$SERVER_ID" >/dev/null || die "wisp-pki.sh svid failed"
cat "$TMP/client.crt" "$TMP/client.key" >"$TMP/client.pem" # haproxy: cert+key in one file
cat "$TMP/server.crt" "$TMP/server.key" >"$TMP/server.pem"

# The app.
mkdir -p "$TMP/docroot"
head -c "$BODY_BYTES" /dev/zero | tr '\0' 'x' >"$TMP/docroot/index.html"
"${SUT[@]}" nghttpd --no-tls -a 127.0.0.1 -m 1000 -d "$TMP/docroot" "$APP_PORT" \
	>"$TMP/app.log" 2>&1 &
APP_PID=$!
PIDS+=("$APP_PID")
wait_port "app (nghttpd)" "$APP_PID" "$APP_PORT" "$TMP/app.log"
check_one "app (nghttpd)" "$APP_PORT"

# HAProxy configs.
cat >"$TMP/haproxy-out.cfg" <<EOF
# client side: h2c in, mTLS TLS 1.3 + ALPN h2 out to the server-side haproxy
global
    nbthread 1
    maxconn 4096
    # no "log" line: logging off
defaults
    mode http
    timeout connect 5s
    timeout client  60s
    timeout server  60s
frontend out_h2c
    bind 127.0.0.1:$HAP_OUT_PORT proto h2
    default_backend peer
backend peer
    http-reuse $HAPROXY_REUSE
    server peer 127.0.0.1:$HAP_IN_PORT ssl crt $TMP/client.pem ca-file $TMP/ca/ca.crt verify required alpn h2 ssl-min-ver TLSv1.3
EOF
# haproxy-h1: the same client side taking HTTP/1.1 (h1 in, h2 over mTLS out).
# HAProxy writes an HTTP/2 answer's status line with no reason phrase
# ("HTTP/1.1 200 "), valid HTTP that h2load's HTTP/1 client counts as failed
# (it records the status with the reason): every request of the runs before
# 2026-12-07 22:20 UTC was reported failed though curl got 200 and the body.
# The rule gives HAProxy's line the reason wisp's gateway writes itself.
sed -e 's/ proto h2$//' -e 's/^frontend out_h2c$/frontend out_h1\n    http-response set-status 200 reason OK if { status 200 }/' \
	"$TMP/haproxy-out.cfg" >"$TMP/haproxy-out-h1.cfg"
cat >"$TMP/haproxy-in.cfg" <<EOF
# server side: mTLS TLS 1.3 + ALPN h2 in, h2c out to the app
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client  60s
    timeout server  60s
frontend in_mtls
    bind 127.0.0.1:$HAP_IN_PORT ssl crt $TMP/server.pem ca-file $TMP/ca/ca.crt verify required alpn h2 ssl-min-ver TLSv1.3
    default_backend app
backend app
    http-reuse $HAPROXY_REUSE
    server app 127.0.0.1:$APP_PORT proto h2
EOF

# stunnel configs: the same mTLS leg (TLS 1.3, both sides present a
# certificate from the CA and require the peer's), bytes relayed both ways.
# stunnel negotiates no ALPN and parses no HTTP: the h2c bytes of h2load
# reach the app unchanged.
stunnel_cfg() { # stunnel_cfg NAME client|server ACCEPT CONNECT CERT KEY
	cat <<EOF
foreground = yes
syslog = no
pid =
debug = warning
[$1]
client = $([[ $2 == client ]] && echo yes || echo no)
accept = 127.0.0.1:$3
connect = 127.0.0.1:$4
cert = $5
key = $6
CAfile = $TMP/ca/ca.crt
verifyChain = yes
sslVersionMin = TLSv1.3
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
EOF
}
stunnel_cfg out client "$STN_OUT_PORT" "$STN_IN_PORT" "$TMP/client.crt" "$TMP/client.key" >"$TMP/stunnel-out.conf"
stunnel_cfg in server "$STN_IN_PORT" "$APP_PORT" "$TMP/server.crt" "$TMP/server.key" >"$TMP/stunnel-in.conf"

# policy_file N: an ALLOW policy of N rules for the server workload where
# only the last rule admits the benchmark's client (the worst case: every
# rule is tried), written once; prints its path.
policy_file() {
	local f="$TMP/policy-$1.yaml" i
	if [ ! -f "$f" ]; then
		{
			printf 'apiVersion: wisp.dev/v1\nkind: AuthorizationPolicy\nmetadata: {name: bench, namespace: bench}\n'
			printf 'spec:\n  selector: {serviceAccount: server}\n  action: ALLOW\n  rules:\n'
			for ((i = 1; i < $1; i++)); do
				printf '  - from: [{principals: ["spiffe://bench.local/ns/team%d/sa/svc%d", "spiffe://bench.local/ns/x%d/*"]}]\n' "$i" "$i" "$i"
				printf '    to: [{methods: ["GET", "POST"], paths: ["/api/v%d/*", "*.%d"]}]\n' "$i" "$i"
			done
			printf '  - from: [{principals: ["%s"]}]\n    to: [{methods: ["GET"], paths: ["/*"]}]\n' "$CLIENT_ID"
		} >"$f"
	fi
	echo "$f"
}

# ---------------------------------------------------------------- per-setup
# start_setup NAME: starts the proxies, sets ENTRY_PORT, PROXY_PIDS (client server)
start_setup() {
	PROXY_PIDS=()
	case $1 in
	direct)
		ENTRY_PORT=$APP_PORT
		;;
	wisp | wisp-1rule | wisp-1000rules | wisp-h1 | wisp-w2)
		local policy=()
		case $1 in
		wisp-1rule) policy=(--policy "$(policy_file 1)") ;;
		wisp-1000rules) policy=(--policy "$(policy_file 1000)") ;;
		wisp-w2) policy=(--workers 2) ;; # not a policy: the same array keeps one hunk
		esac
		"${SUT[@]}" "$WISP" --cert "$TMP/server.crt" --key "$TMP/server.key" --bundle "$TMP/ca/ca.crt" \
			--inbound "127.0.0.1:$WISP_IN_PORT" --app "127.0.0.1:$APP_PORT" --app-protocol h2c --drain-timeout 2 --admin off "${policy[@]}" \
			>/dev/null 2>"$TMP/wisp-in.err" &
		local spid=$!
		PIDS+=("$spid")
		wait_port "wisp inbound" "$spid" "$WISP_IN_PORT" "$TMP/wisp-in.err"
		"${SUT[@]}" "$WISP" --cert "$TMP/client.crt" --key "$TMP/client.key" --bundle "$TMP/ca/ca.crt" \
			--route "127.0.0.1:$WISP_OUT_PORT=127.0.0.1:$WISP_IN_PORT,id=$SERVER_ID" --drain-timeout 2 --admin off \
			>/dev/null 2>"$TMP/wisp-out.err" &
		local cpid=$!
		PIDS+=("$cpid")
		wait_port "wisp outbound" "$cpid" "$WISP_OUT_PORT" "$TMP/wisp-out.err"
		PROXY_PIDS=("$cpid" "$spid")
		ENTRY_PORT=$WISP_OUT_PORT
		;;
	haproxy | haproxy-h1)
		local f out=out
		is_h1 "$1" && out=out-h1
		for f in in "$out"; do
			haproxy -c -f "$TMP/haproxy-$f.cfg" >"$TMP/haproxy-$f.check" 2>&1 || {
				cat "$TMP/haproxy-$f.check" >&2
				die "haproxy rejects its $f config ($TMP/haproxy-$f.cfg)"
			}
		done
		"${SUT[@]}" haproxy -db -f "$TMP/haproxy-in.cfg" >"$TMP/haproxy-in.log" 2>&1 &
		local spid=$!
		PIDS+=("$spid")
		wait_port "haproxy server side" "$spid" "$HAP_IN_PORT" "$TMP/haproxy-in.log"
		"${SUT[@]}" haproxy -db -f "$TMP/haproxy-$out.cfg" >"$TMP/haproxy-out.log" 2>&1 &
		local cpid=$!
		PIDS+=("$cpid")
		wait_port "haproxy client side" "$cpid" "$HAP_OUT_PORT" "$TMP/haproxy-out.log"
		PROXY_PIDS=("$cpid" "$spid")
		ENTRY_PORT=$HAP_OUT_PORT
		;;
	stunnel)
		"${SUT[@]}" stunnel4 "$TMP/stunnel-in.conf" >"$TMP/stunnel-in.log" 2>&1 &
		local spid=$!
		PIDS+=("$spid")
		wait_port "stunnel server side" "$spid" "$STN_IN_PORT" "$TMP/stunnel-in.log"
		"${SUT[@]}" stunnel4 "$TMP/stunnel-out.conf" >"$TMP/stunnel-out.log" 2>&1 &
		local cpid=$!
		PIDS+=("$cpid")
		wait_port "stunnel client side" "$cpid" "$STN_OUT_PORT" "$TMP/stunnel-out.log"
		PROXY_PIDS=("$cpid" "$spid")
		ENTRY_PORT=$STN_OUT_PORT
		;;
	esac
}

stop_setup() {
	local p
	for p in "${PROXY_PIDS[@]}"; do stop_pid "$p"; done
	PROXY_PIDS=()
}

# sampler OUTFILE STOPFILE PID...: "pid rss" lines until STOPFILE exists (bounded)
sampler() {
	local out=$1 stop=$2 i p max
	shift 2
	max=$(awk -v d="$DUR_S" -v w="$WARM_S" -v s="$SAMPLE_INTERVAL" 'BEGIN{printf "%d", (d+w+60)/s}')
	for ((i = 0; i < max; i++)); do
		[[ -e $stop ]] && break
		for p in "$@"; do echo "$p $(rss_kb "$p")"; done >>"$out"
		sleep "$SAMPLE_INTERVAL"
	done
}

max_rss() { # max_rss FILE PID
	awk -v p="$2" '$1==p && $2!="-" && $2>m {m=$2} END{print (m==""?"-":m)}' "$1"
}

fmt_pair() { # "a / b" or "—"
	if [[ $# == 0 ]]; then echo "—"; else
		local IFS=/
		local j="$*"
		echo "${j//\// / }"
	fi
}

# wait_quiet NAME: on a shared machine, wait (up to BENCH_QUIET_WAIT s) until
# the SUT CPUs are at most 10% busy for a second before a run starts.
wait_quiet() {
	local i b0 b1 n pct
	for ((i = 0; i < QUIET_WAIT; i++)); do
		read -r b0 n < <(cpu_busy "$SUT_CPULIST")
		sleep 1
		read -r b1 _ < <(cpu_busy "$SUT_CPULIST")
		pct=$(((b1 - b0) * 100 / CLK_TCK / (n > 0 ? n : 1)))
		((pct <= 10)) && return 0
		((i == 0)) && log "$1: SUT CPUs ${pct}% busy with other work; waiting up to ${QUIET_WAIT}s for quiet"
	done
	((QUIET_WAIT > 0)) && log "$1: still busy after ${QUIET_WAIT}s; running anyway"
	return 0
}

declare -A R # results: R[setup.round,key], then R[setup,key] for the median round

# percentiles LOGFILE: nearest-rank p50, p99, p99.9 of an h2load --log-file
# (column 3: microseconds from sending the request to the end of the
# response), in µs, and the number of requests: "P50 P99 P999 N"
percentiles() {
	cut -f3 "$1" | sort -n -S 25% -T "$TMP" | awk '
		{ v[NR] = $1 }
		END {
			if (NR == 0) { print "- - - 0"; exit }
			i50 = int(NR * 0.50); if (i50 < NR * 0.50) i50++; if (i50 < 1) i50 = 1
			i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++; if (i99 < 1) i99 = 1
			i999 = int(NR * 0.999); if (i999 < NR * 0.999) i999++; if (i999 < 1) i999 = 1
			printf "%d %d %d %d\n", v[i50], v[i99], v[i999], NR
		}'
}
fmt_rps() { awk -v a="$1" 'BEGIN{printf "%.0f\n", a}'; }

run_setup() {
	local s=$1 round=$2 all p
	local K="$s.$round" # result keys of this round: R[$K,...]
	log "== $s (round $round/$ROUNDS): starting"
	start_setup "$s"
	all=("${PROXY_PIDS[@]}" "$APP_PID")

	# Idle RSS: proxies up, no connection yet.
	local idle=() first=()
	for p in "${PROXY_PIDS[@]}"; do idle+=("$(rss_kb "$p")"); done
	check_one "$s" "$ENTRY_PORT"
	for p in "${PROXY_PIDS[@]}"; do first+=("$(rss_kb "$p")"); done

	wait_quiet "$s"

	local hout=$TMP/h2load-$s.out hlog=$TMP/h2load-$s.tsv
	local samples=$TMP/rss-$s.txt stopf=$TMP/stop-$s
	: >"$samples"
	rm -f "$stopf"
	local tmo
	tmo=$(awk -v d="$DUR_S" -v w="$WARM_S" 'BEGIN{printf "%d", d+w+60}')
	local streams=$STREAMS h1=()
	if is_h1 "$s"; then
		streams=$H1_PIPELINE
		h1=(--h1)
	fi
	log "== $s: h2load ${h1[*]} -c $CLIENTS -m $streams -t $H2THREADS --warm-up-time $WARMUP -D $DURATION http://127.0.0.1:$ENTRY_PORT/"
	"${LOADGEN[@]}" timeout --kill-after=5 "$tmo" h2load "${h1[@]}" -c "$CLIENTS" -m "$streams" -t "$H2THREADS" \
		--warm-up-time "$WARMUP" -D "$DURATION" --log-file "$hlog" \
		"http://127.0.0.1:$ENTRY_PORT/" >"$hout" 2>&1 &
	local hpid=$!
	PIDS+=("$hpid")
	sampler "$samples" "$stopf" "${all[@]}" &
	local spid=$!
	PIDS+=("$spid")

	# CPU over the measured phase: sample after the warm-up and at the end.
	sleep "$WARM_S"
	local t0 t1 c0=() c1=() b0 b1 ncpu
	t0=$(now_ns)
	read -r b0 ncpu < <(cpu_busy "$SUT_CPULIST")
	for p in "${all[@]}"; do c0+=("$(cpu_ticks "$p")"); done
	local hrc=0
	wait "$hpid" || hrc=$?
	t1=$(now_ns)
	read -r b1 _ < <(cpu_busy "$SUT_CPULIST")
	for p in "${all[@]}"; do c1+=("$(cpu_ticks "$p")"); done
	forget_pid "$hpid"
	touch "$stopf"
	wait "$spid" 2>/dev/null || true
	forget_pid "$spid"
	[[ $hrc == 0 ]] || {
		tail -n 20 "$hout" >&2
		die "$s: h2load exited with status $hrc (output: $hout)"
	}

	# Throughput and errors from h2load's summary.
	local rps reqline total ok failed errored tmout codes
	rps=$(awk '/^finished in/{for(i=1;i<=NF;i++) if($(i+1) ~ /^req\/s/){gsub(",","",$i); print $i}}' "$hout")
	reqline=$(grep -m1 '^requests:' "$hout" || true)
	codes=$(grep -m1 '^status codes:' "$hout" || true)
	[[ -n $rps && -n $reqline ]] || {
		cat "$hout" >&2
		die "$s: cannot parse h2load output"
	}
	read -r total ok failed errored tmout < <(echo "$reqline" |
		awk '{gsub(",",""); print $2, $8, $10, $12, $14}')
	local n2xx
	n2xx=$(echo "$codes" | awk '{gsub(",",""); print $3}')
	R[$K,rps]=$rps
	R[$K,total]=$total
	R[$K,ok]=$ok
	R[$K,bad]=$((failed + errored + tmout))
	# (h2load may count one extra status code at the phase boundary)
	R[$K,non2xx]=$((ok > n2xx ? ok - n2xx : 0))
	# "time for request:  min  max  mean  sd  +/- sd"
	R[$K,h2mean]=$(awk '/^time for request:/{print $6}' "$hout")
	R[$K,h2max]=$(awk '/^time for request:/{print $5}' "$hout")
	if ((failed + errored + tmout > 0 || ok > n2xx)); then
		log "WARNING: $s: $reqline / $codes"
		R[$K,warn]="$reqline; $codes"
	fi

	# Latency percentiles from the per-request log (measured phase only):
	# column 3 = microseconds from request start to end of response.
	local lat
	lat=$(percentiles "$hlog" | awk '$4 == 0 {print; next} {printf "%.3f %.3f %.3f %d\n", $1 / 1000, $2 / 1000, $3 / 1000, $4}')
	read -r "R[$K,p50]" "R[$K,p99]" "R[$K,p999]" "R[$K,nlog]" <<<"$lat"
	rm -f "$hlog"

	# RSS and CPU.
	local loadr=() cpu=() i dt
	dt=$(((t1 - t0) / 1000000)) # ms
	for p in "${PROXY_PIDS[@]}"; do loadr+=("$(max_rss "$samples" "$p")"); done
	for i in "${!all[@]}"; do
		cpu+=("$(awk -v d="$((c1[i] - c0[i]))" -v hz="$CLK_TCK" -v ms="$dt" \
			'BEGIN{printf "%.0f", (ms > 0 ? d / hz / (ms / 1000) * 100 : 0)}')")
	done
	R[$K,rss_idle]=$(fmt_pair "${idle[@]}")
	R[$K,rss_first]=$(fmt_pair "${first[@]}")
	R[$K,rss_load]=$(fmt_pair "${loadr[@]}")
	R[$K,app_rss]=$(max_rss "$samples" "$APP_PID")
	R[$K,app_cpu]=${cpu[-1]}
	# Interference: busy % of the SUT CPUs minus what app + proxies used.
	local ours=0
	for i in "${!all[@]}"; do ours=$((ours + c1[i] - c0[i])); done
	R[$K,sut_busy]=$(awk -v b="$((b1 - b0))" -v n="$ncpu" -v hz="$CLK_TCK" -v ms="$dt" \
		'BEGIN{printf "%.0f", (ms > 0 && n > 0 ? b / hz / (ms / 1000) / n * 100 : 0)}')
	R[$K,other]=$(awk -v b="$((b1 - b0 - ours))" -v n="$ncpu" -v hz="$CLK_TCK" -v ms="$dt" \
		'BEGIN{v = (ms > 0 && n > 0 ? b / hz / (ms / 1000) / n * 100 : 0); printf "%.0f", (v < 0 ? 0 : v)}')
	# (unpinned, h2load shares the CPUs: "other" would mostly be h2load itself)
	if [[ $PIN != 1 ]]; then
		R[$K,other]="—"
	elif ((${R[$K,other]} > 10)); then
		log "WARNING: $s: ${R[$K,other]}% of the SUT CPUs went to other processes: results are noisy"
		R[$K,warn_noise]="${R[$K,other]}% of the SUT CPUs ($SUT_CPULIST) were used by processes other than the app and proxies during the measured phase"
	fi
	if ((${#PROXY_PIDS[@]} > 0)); then
		R[$K,cpu]=$(fmt_pair "${cpu[@]:0:${#PROXY_PIDS[@]}}")
		# proxy CPU time per request, both proxies together (us)
		local sum=0
		for i in "${!PROXY_PIDS[@]}"; do sum=$((sum + c1[i] - c0[i])); done
		R[$K,cpu_us_req]=$(awk -v t="$sum" -v hz="$CLK_TCK" -v ms="$dt" -v r="$rps" \
			'BEGIN{n = r * ms / 1000; printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0)}')
	else
		R[$K,cpu]="—"
		R[$K,cpu_us_req]="—"
	fi

	# RSS once the load is gone (h2load closed its connections): a leak shows here.
	local after=()
	sleep 0.5
	for p in "${PROXY_PIDS[@]}"; do after+=("$(rss_kb "$p")"); done
	R[$K,rss_after]=$(fmt_pair "${after[@]}")

	# Anything the proxies complained about (warnings/errors on stderr).
	local f
	for f in "$TMP"/haproxy-*.log "$TMP"/haproxy-*.check "$TMP"/wisp-*.err "$TMP"/stunnel-*.log; do
		[[ -e $f ]] || continue
		case $s:$f in haproxy*:*haproxy-* | wisp*:*wisp-* | stunnel:*stunnel-*) ;; *) continue ;; esac
		if grep -qiE 'warn|alert|error' "$f"; then
			R[$K,notes]+="$(basename "$f"): $(grep -iE 'warn|alert|error' "$f" | sed -n '1,3p' | tr '\n' ' ')"$'\n'
		fi
	done

	stop_setup
	log "== $s (round $round/$ROUNDS): ${R[$K,rps]} req/s, p50 ${R[$K,p50]} ms, p99 ${R[$K,p99]} ms"
}

# run_latency SETUP ROUND: one request at a time (h2load -c 1 -m 1) through
# fresh proxies; percentiles in µs into R[lat.SETUP.ROUND,...]
run_latency() {
	local s=$1 round=$2 K="lat.$1.$2" p
	log "== latency $s (round $round/$ROUNDS): starting"
	start_setup "$s"
	check_one "$s" "$ENTRY_PORT"
	wait_quiet "$s"
	local hout=$TMP/lat-$s.out hlog=$TMP/lat-$s.tsv tmo h1=()
	is_h1 "$s" && h1=(--h1)
	tmo=$(awk -v d="$(to_sec "$LAT_DURATION")" -v w="$WARM_S" 'BEGIN{printf "%d", d+w+60}')
	local b0 b1 ncpu ours=0 c0=() c1=() all=("${PROXY_PIDS[@]}" "$APP_PID") t0 t1
	read -r b0 ncpu < <(cpu_busy "$SUT_CPULIST")
	for p in "${all[@]}"; do c0+=("$(cpu_ticks "$p")"); done
	t0=$(now_ns)
	"${LOADGEN[@]}" timeout --kill-after=5 "$tmo" h2load "${h1[@]}" -c 1 -m 1 -t 1 \
		--warm-up-time "$WARMUP" -D "$LAT_DURATION" --log-file "$hlog" \
		"http://127.0.0.1:$ENTRY_PORT/" >"$hout" 2>&1 || {
		tail -n 20 "$hout" >&2
		die "latency $s: h2load failed (output: $hout)"
	}
	t1=$(now_ns)
	read -r b1 _ < <(cpu_busy "$SUT_CPULIST")
	for p in "${!all[@]}"; do ours=$((ours + $(cpu_ticks "${all[p]}") - c0[p])); done
	local reqline failed errored tmout
	reqline=$(grep -m1 '^requests:' "$hout" || true)
	[[ -n $reqline ]] || die "latency $s: cannot parse h2load output ($hout)"
	read -r failed errored tmout < <(echo "$reqline" | awk '{gsub(",",""); print $10, $12, $14}')
	((failed + errored + tmout == 0)) || {
		log "WARNING: latency $s: $reqline"
		R[$K,warn]=$reqline
	}
	read -r "R[$K,p50]" "R[$K,p99]" "R[$K,p999]" "R[$K,n]" < <(percentiles "$hlog")
	rm -f "$hlog"
	# other processes on the SUT CPUs (whole run, warm-up included)
	R[$K,other]=$(awk -v b="$((b1 - b0 - ours))" -v n="$ncpu" -v hz="$CLK_TCK" -v ns="$((t1 - t0))" \
		'BEGIN{v = (ns > 0 && n > 0 ? b / hz / (ns / 1e9) / n * 100 : 0); printf "%.0f", (v < 0 ? 0 : v)}')
	[[ $PIN == 1 ]] || R[$K,other]="—"
	stop_setup
	log "== latency $s (round $round/$ROUNDS): ${R[$K,n]} requests, p50 ${R[$K,p50]} µs, p99 ${R[$K,p99]} µs"
}

# Rounds are interleaved (direct wisp haproxy direct wisp haproxy ...) so that
# slow drifts of the machine hit every setup alike.
if [[ $LATENCY != only ]]; then
	for ((round = 1; round <= ROUNDS; round++)); do
		for s in $SETUPS; do run_setup "$s" "$round"; done
	done
fi
# The latency section: direct first (what the others add is measured
# against it), then the other setups, interleaved by round as well.
LAT_SETUPS=""
if [[ $LATENCY != 0 ]]; then
	LAT_SETUPS="direct"
	for s in $SETUPS; do [[ $s == direct ]] || LAT_SETUPS+=" $s"; done
	for ((round = 1; round <= ROUNDS; round++)); do
		for s in $LAT_SETUPS; do run_latency "$s" "$round"; done
	done
fi
# Per setup, the round with the lowest p50 (BENCH_PICK=best: noise only
# adds latency) or the median p50.
for s in $LAT_SETUPS; do
	mr=$(for ((round = 1; round <= ROUNDS; round++)); do echo "${R[lat.$s.$round,p50]} $round"; done |
		sort -n | awk -v n="$ROUNDS" -v pick="$PICK" \
		'NR == (pick == "best" ? 1 : int((n + 1) / 2)) {print $2}')
	for k in p50 p99 p999 n other; do R[lat.$s,$k]=${R[lat.$s.$mr,$k]}; done
	R[lat.$s,round]=$mr
	R[lat.$s,all_p50]=$(for ((round = 1; round <= ROUNDS; round++)); do echo "${R[lat.$s.$round,p50]}"; done | paste -sd' ')
	R[lat.$s,warn]=""
	for ((round = 1; round <= ROUNDS; round++)); do
		[[ -n ${R[lat.$s.$round,warn]:-} ]] && R[lat.$s,warn]+="round $round: ${R[lat.$s.$round,warn]} "
	done
done

# Report, per setup, one round (all its numbers come from that round): the
# best by req/s (BENCH_PICK=best: on a shared machine, noise only ever takes
# throughput away) or the median (BENCH_PICK=median); list every round's req/s.
[[ $LATENCY == only ]] && SETUPS_TP="" || SETUPS_TP=$SETUPS
for s in $SETUPS_TP; do
	mr=$(for ((round = 1; round <= ROUNDS; round++)); do echo "${R[$s.$round,rps]} $round"; done |
		sort -n | awk -v n="$ROUNDS" -v pick="$PICK" \
		'NR == (pick == "best" ? n : int((n + 1) / 2)) {print $2}')
	for k in "${!R[@]}"; do
		[[ $k == "$s.$mr,"* ]] && R[$s,${k#"$s.$mr,"}]=${R[$k]}
	done
	R[$s,round]=$mr
	R[$s,all_rps]=$(for ((round = 1; round <= ROUNDS; round++)); do fmt_rps "${R[$s.$round,rps]}"; done | paste -sd' ')
	R[$s,warn]=""
	R[$s,warn_noise]=""
	for ((round = 1; round <= ROUNDS; round++)); do
		tag="round $round"
		[[ $round == "$mr" ]] && tag+=" (the reported one)"
		[[ -n ${R[$s.$round,warn]:-} ]] && R[$s,warn]+="$tag: ${R[$s.$round,warn]} "
		[[ -n ${R[$s.$round,warn_noise]:-} ]] && R[$s,warn_noise]+="$tag: ${R[$s.$round,warn_noise]}. "
	done
done

# ---------------------------------------------------------------- report
ratio() { # ratio REQ_PER_S [SETUP]: to direct (HTTP/2), not for HTTP/1.1 callers
	if [[ -n ${R[direct,rps]:-} ]] && ! is_h1 "${2:-}"; then
		awk -v a="$1" -v b="${R[direct,rps]}" 'BEGIN{printf "%.2f", a / b}'
	else echo "—"; fi
}

table() {
	echo "| setup | req/s | vs direct | p50 ms | p99 ms | RSS idle KB (client / server proxy) | RSS load KB (client / server proxy) | proxy CPU µs/req (both) |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|"
	local s
	for s in $SETUPS_TP; do
		echo "| $s | $(fmt_rps "${R[$s,rps]}") | $(ratio "${R[$s,rps]}" "$s") | ${R[$s,p50]} | ${R[$s,p99]} | ${R[$s,rss_idle]} | ${R[$s,rss_load]} | ${R[$s,cpu_us_req]} |"
	done
}

details() {
	echo "| setup | req/s each round (reported: $PICK) | requests (measured) | failed+errored+timeout | non-2xx | p99.9 ms | mean (h2load) | max (h2load) | RSS after 1st request KB | RSS 0.5 s after the run KB | proxy CPU % (client / server) | app CPU % | app RSS KB | SUT CPUs busy % | other procs on SUT CPUs % |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	local s
	for s in $SETUPS_TP; do
		echo "| $s | ${R[$s,all_rps]} (round ${R[$s,round]}) | ${R[$s,total]} | ${R[$s,bad]} | ${R[$s,non2xx]} | ${R[$s,p999]} | ${R[$s,h2mean]} | ${R[$s,h2max]} | ${R[$s,rss_first]} | ${R[$s,rss_after]} | ${R[$s,cpu]} | ${R[$s,app_cpu]} | ${R[$s,app_rss]} | ${R[$s,sut_busy]} | ${R[$s,other]} |"
	done
}

lat_table() {
	echo "| setup | requests (measured) | p50 µs | p99 µs | p99.9 µs | added p50 µs | added p99 µs | p50 each round µs (reported: $PICK) | other procs on SUT CPUs % |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	local s add50 add99
	for s in $LAT_SETUPS; do
		add50="—" add99="—"
		if [[ $s != direct ]]; then
			add50=$((${R[lat.$s,p50]} - ${R[lat.direct,p50]}))
			add99=$((${R[lat.$s,p99]} - ${R[lat.direct,p99]}))
		fi
		echo "| $s | ${R[lat.$s,n]} | ${R[lat.$s,p50]} | ${R[lat.$s,p99]} | ${R[lat.$s,p999]} | $add50 | $add99 | ${R[lat.$s,all_p50]} (round ${R[lat.$s,round]}) | ${R[lat.$s,other]} |"
	done
}

cpu_model=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
hap_ver=$(haproxy -v 2>&1 | sed -n 1p)
hap_ssl=$(haproxy -vv 2>&1 | awk '/Running on OpenSSL/ && !n {sub(/^[ \t]+/, ""); print; n=1}')
h2_ver=$(h2load --version 2>&1 | sed -n 1p)
wisp_rev=$(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo unknown)
if [[ $PIN == 1 ]]; then
	pin_txt="h2load (and curl, the sampler, this script) on CPU $LOADGEN_CPUS; app and all proxies on CPU $SUT_CPUS (taskset)"
else
	pin_txt="none (scheduler decides)"
fi

TABLE=""
DETAILS=""
LAT_TABLE=""
[[ -n $SETUPS_TP ]] && TABLE=$(table) && DETAILS=$(details)
[[ -n $LAT_SETUPS ]] && LAT_TABLE=$(lat_table)
NOTES=""
for s in $LAT_SETUPS; do
	[[ -n ${R[lat.$s,warn]:-} ]] && NOTES+="- latency $s: h2load reported errors: ${R[lat.$s,warn]}"$'\n'
done
for s in $SETUPS_TP; do
	[[ -n ${R[$s,warn_noise]:-} ]] && NOTES+="- $s: noisy: ${R[$s,warn_noise]}"$'\n'
	[[ -n ${R[$s,warn]:-} ]] && NOTES+="- $s: h2load reported errors: ${R[$s,warn]}"$'\n'
	[[ -n ${R[$s,notes]:-} ]] && NOTES+="$(echo -n "${R[$s,notes]}" | sed "s/^/- $s: /")"$'\n'
done

if [[ -n $TABLE ]]; then
	echo
	echo "$TABLE"
	echo
	echo "$DETAILS"
fi
if [[ -n $LAT_TABLE ]]; then
	echo
	echo "One request at a time (h2load -c 1 -m 1):"
	echo
	echo "$LAT_TABLE"
fi
[[ -n $NOTES ]] && printf '\nNotes:\n%s' "$NOTES"

{
	echo "# wisp benchmark results"
	echo
	echo "Generated by \`bench/run.sh$([[ $QUICK == 1 ]] && echo ' --quick')\` on $(date -u '+%Y-%m-%d %H:%M:%S UTC')."
	echo "See bench/README.md for what is measured and how to read it."
	if [[ -n $TABLE ]]; then
		echo
		echo "$TABLE"
		echo
		echo "Details:"
		echo
		echo "$DETAILS"
	fi
	if [[ -n $LAT_TABLE ]]; then
		echo
		echo "## Latency, one request at a time"
		echo
		echo "h2load -c 1 -m 1 -t 1 through each setup (fresh proxies), warm-up $WARMUP, measured $LAT_DURATION; percentiles over every request of the measured phase; added = the setup's percentile minus direct's."
		echo
		echo "$LAT_TABLE"
	fi
	echo
	echo "## Setup"
	echo
	echo "- Machine: $(nproc --all) CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r); load average before the run: $LOADAVG0"
	echo "- wisp-proxy binary: $WISP ($WISP_BUILD; sha256 $WISP_SHA)"
	echo "- Versions: wisp $wisp_rev; $hap_ver${hap_ssl:+ ($hap_ssl)}; $h2_ver; app $(nghttpd --version 2>&1 | sed -n 1p)"
	echo "- Load: h2load -c $CLIENTS -m $STREAMS -t $H2THREADS ($((CLIENTS * STREAMS)) concurrent streams; the -h1 setups: --h1 -m $H1_PIPELINE), warm-up $WARMUP, measured $DURATION per setup and round; $ROUNDS round(s), interleaved, the $PICK round by req/s reported; GET of a $BODY_BYTES-byte file"
	echo "- Pinning: $pin_txt"
	echo "- wisp: --cert/--key/--bundle files, outbound --route with id= check, inbound --app, both --admin off; request logs (stdout) to /dev/null; default pool size"
	echo "- stunnel: $(stunnel4 -version 2>&1 | grep -m1 '^stunnel'); client = yes, cert/key + CAfile + verifyChain = yes on both sides (mTLS), sslVersionMin = TLSv1.3, TCP_NODELAY on both sockets, no ALPN (relays the h2c bytes)"
	echo "- HAProxy: nbthread 1, no logging, h2c bind (proto h2) -> server ssl verify required alpn h2 ssl-min-ver TLSv1.3 crt/ca-file -> bind ssl verify required alpn h2 ssl-min-ver TLSv1.3 -> server proto h2; http-reuse $HAPROXY_REUSE"
	echo "- PKI: one ECDSA P-256 CA (deploy/wisp-pki.sh), client and server SVIDs"
	echo "- Latency: p50/p99/p99.9 computed from h2load --log-file (every request of the measured phase); RSS: VmRSS, idle = proxies started, no connection yet; load = max over samples every ${SAMPLE_INTERVAL}s during the h2load run; CPU = (utime+stime) delta over the measured phase / wall time"
	if [[ -n $NOTES ]]; then
		echo
		echo "## Notes"
		echo
		printf '%s' "$NOTES"
	fi
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
log "results written to $OUT"
