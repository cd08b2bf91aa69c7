#!/usr/bin/env bash
# selftest.sh - check the Node test peers directly (no wisp in the path).
# Needs: node_modules (npm ci), curl, nghttp, sha256sum. Binds 127.0.0.1 only.
# Usage: tests/node/selftest.sh [--big]   (--big adds the 1 GiB /bytes check)
set -euo pipefail
cd "$(dirname "$0")"
BIG=0; [[ ${1:-} == --big ]] && BIG=1

W=$(mktemp -d "${TMPDIR:-/tmp}/wisp-node-selftest.XXXXXX")
PIDS=()
# shellcheck disable=SC2317  # invoked via trap
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf -- "$W"
}
trap cleanup EXIT

fail=0
ok() { echo "ok - $1"; }
notok() { echo "not ok - $1${2:+: $2}"; fail=1; }
expect() { # expect NAME WANT GOT
	if [[ $2 == "$3" ]]; then ok "$1"; else notok "$1" "want '$2', got '$3'"; fi
}

start() { # start OUTFILE CMD... ; sets PORT
	"${@:2}" >"$1" 2>"$1.err" &
	PIDS+=($!)
	for _ in $(seq 100); do
		if grep -q '^listening ' "$1"; then PORT=$(awk '/^listening /{print $2; exit}' "$1"); return; fi
		sleep 0.05
	done
	echo "Bail out! $* did not start: $(cat "$1.err")"
	exit 1
}

start "$W/app" node app.js --port 0 --name selftest
U=http://127.0.0.1:$PORT
C=(curl -sS --http2-prior-knowledge --max-time 60)

expect "app GET / name" selftest "$("${C[@]}" -H 'x-forwarded-client-cert: By=a;URI=b' "$U/" |
	node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);process.stdout.write(j.name)})')"
expect "app GET / headers" "By=a;URI=b" "$("${C[@]}" -H 'x-forwarded-client-cert: By=a;URI=b' "$U/x?y" |
	node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);process.stdout.write(j.headers["x-forwarded-client-cert"])})')"

head -c $((64 * 1024 * 1024)) /dev/urandom >"$W/big"
want=$(sha256sum <"$W/big" | cut -d' ' -f1)
expect "app POST /echo 64 MiB (curl)" "$want" "$("${C[@]}" --data-binary @"$W/big" "$U/echo" | sha256sum | cut -d' ' -f1)"
expect "app POST /echo 64 MiB (nghttp)" "$want" "$(nghttp -d "$W/big" "$U/echo" | sha256sum | cut -d' ' -f1)"
expect "app POST /sha256" "$want 67108864" "$("${C[@]}" --data-binary @"$W/big" "$U/sha256")"

n=$((10 * 1024 * 1024 + 17))
[[ $BIG -eq 1 ]] && n=$((1024 * 1024 * 1024))
expect "app GET /bytes?n=$n" "$(node app.js --gen-bytes $n | sha256sum | cut -d' ' -f1)" \
	"$("${C[@]}" "$U/bytes?n=$n" | sha256sum | cut -d' ' -f1)"
rss=$(awk '/VmHWM/{print $2}' "/proc/${PIDS[0]}/status")
if [[ $rss -lt 300000 ]]; then ok "app peak RSS ${rss} kB"; else notok "app peak RSS" "${rss} kB"; fi

expect "app GET /trailers" "x-trailer-test: yes" "$(nghttp -v "$U/trailers" 2>&1 | grep -a -o 'x-trailer-test: yes' | head -1)"
echo hi >"$W/small"
expect "app POST /trailers-echo" "x-echo-foo: bar" "$(nghttp -v -d "$W/small" --trailer 'foo: bar' "$U/trailers-echo" 2>&1 | grep -a -o 'x-echo-foo: bar' | head -1)"
expect "app GET /status/418" 418 "$("${C[@]}" -o /dev/null -w '%{http_code}' "$U/status/418")"
t0=$(date +%s%N)
"${C[@]}" -o /dev/null "$U/slow?ms=400"
dt=$((($(date +%s%N) - t0) / 1000000))
if [[ $dt -ge 400 && $dt -lt 2000 ]]; then ok "app GET /slow?ms=400 (${dt} ms)"; else notok "app GET /slow" "${dt} ms"; fi
expect "app GET /reset" "INTERNAL_ERROR" "$(nghttp -v "$U/reset" 2>&1 | grep -a -o 'error_code=INTERNAL_ERROR' | head -1 | cut -d= -f2)"
expect "app GET /goaway" "GOAWAY" "$(nghttp -v -m 1 "$U/slow?ms=200" "$U/goaway" 2>&1 | grep -a -o 'recv GOAWAY' | head -1 | cut -d' ' -f2)"
if kill -0 "${PIDS[0]}"; then ok "app still running"; else notok "app still running"; fi

start "$W/grpc" node grpc_server.js --port 0
if node grpc_client.js --target "127.0.0.1:$PORT" --case all; then ok "grpc client all cases"; else notok "grpc client all cases"; fi

exit $fail
