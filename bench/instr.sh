#!/usr/bin/env bash
# bench/instr.sh WISP_PROXY_BINARY [REQUESTS]: user-space instructions per
# request of the wisp pair (both proxies under valgrind --tool=callgrind),
# h2load -c 10 -m 10 GETs of a 64-byte file from nghttpd, as bench/run.sh's
# "wisp" setup. Counted after a 2,000-request warm-up (callgrind_control
# -z, then -d: this zeroes and dumps every callgrind process of the user).
# Unlike CPU time it does not move with other load on the machine (run to
# run within 0.5%), so it compares two builds on a shared machine; it leaves
# out the kernel (about a quarter of the pair's CPU) and cache effects.
# glibc's memset/memcpy use rep stosb/movsb above 2 KiB, which callgrind
# counts one instruction per byte (zeroing a 3.3 KiB struct: 3,300; the
# CPU does it in ~100 cycles): GLIBC_TUNABLES keeps them vector loops, as
# counted. CG_REP=1 leaves glibc's choice (the recipe before 2026-12-07
# 13:30 UTC, whose numbers are 6-7k higher).
# CG_H1=1 measures HTTP/1.1 callers instead, as bench/run.sh's "wisp-h1"
# setup: h2load --h1 -c 10 -m 1 (keep-alive, no pipelining) into the
# outbound proxy's HTTP/1 gateway, HTTP/2 over mTLS between the proxies;
# a further 2,000-request HTTP/1 warm-up precedes the count.
# REQUESTS [5000]; CG_PORT_BASE [18300] (3 consecutive ports); CG_REP [0];
# CG_H1 [0]; CG_KEEP=DIR copies callgrind's files there (for
# callgrind_annotate).
set -euo pipefail
WISP=${1:?usage: bench/instr.sh WISP_PROXY_BINARY [REQUESTS]}
N=${2:-5000}
source "$(dirname "${BASH_SOURCE[0]}")/pair_setup.sh"
TUNE=glibc.cpu.x86_rep_stosb_threshold=0x1000000:glibc.cpu.x86_rep_movsb_threshold=0x1000000
[[ ${CG_REP:-0} == 1 ]] && TUNE=
bench_pair "$WISP" "${CG_PORT_BASE:-18300}" env GLIBC_TUNABLES=$TUNE valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.%p"
LOAD=(-c 10 -m 10)
if [[ ${CG_H1:-0} == 1 ]]; then
	LOAD=(--h1 -c 10 -m 1)
	h2load "${LOAD[@]}" -n 2000 "http://127.0.0.1:$OUT/" >/dev/null 2>&1 # warm-up of the HTTP/1 gateway
fi
callgrind_control -z >/dev/null 2>&1 || true
h2load "${LOAD[@]}" -n "$N" "http://127.0.0.1:$OUT/" >"$TMP/h2load.out" 2>&1
callgrind_control -d >/dev/null 2>&1 || true
sleep 1
ok=$(awk '/^requests:/ {print $8}' "$TMP/h2load.out")
tot=0
for f in "$TMP"/cg.*.[0-9]*; do
	ir=$(grep -m1 '^summary:' "$f" | awk '{print $2}')
	tot=$((tot + ir))
done
if [[ -n ${CG_KEEP:-} ]]; then
	mkdir -p "$CG_KEEP"
	cp "$TMP"/cg.* "$CG_KEEP"/
	echo "outbound proxy pid $CPID, inbound $SPID (callgrind files in $CG_KEEP)"
fi
echo "requests $ok  instructions/request (both proxies) $((tot / ok))"
