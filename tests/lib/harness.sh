# Shared helpers for wisp's integration tests (sourced, bash).
# Every test prints TAP lines ("ok - name" / "not ok - name: why"); the
# runner counts them. Everything a test starts is tracked by PID and stopped
# on exit, pass or fail; servers bind 127.0.0.1 only.

set -u
WISP_SRC=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
PKI="$WISP_SRC/deploy/wisp-pki.sh"
NODE_DIR="$WISP_SRC/tests/node"
TD=spiffe://shop.local

# wisp_find_bin NAME ARGS...: the binary NAME among the test's arguments
# (Bazel passes $(location ...) paths), else the built one in bazel-bin.
wisp_find_bin() {
  local name=$1 cand
  shift
  for cand in "$@" "$WISP_SRC/bazel-bin/proxy/$name" "$WISP_SRC/bazel-bin/control/$name"; do
    if [ "$(basename "$cand")" = "$name" ] && [ -x "$cand" ]; then
      readlink -f "$cand"
      return 0
    fi
  done
  echo "$name binary not found (bazel build //...)" >&2
  return 1
}
# The proxy binary ($WISP_PROXY_BIN wins).
wisp_find_proxy() {
  if [ -n "${WISP_PROXY_BIN:-}" ]; then
    echo "$WISP_PROXY_BIN"
  else
    wisp_find_bin wisp-proxy "$@"
  fi
}

WORK=$(mktemp -d "${TEST_TMPDIR:-/tmp}/wisp-it.XXXXXX")
# Unix socket paths must stay under 108 bytes; Bazel's TEST_TMPDIR is long.
SOCKDIR=$(mktemp -d /tmp/wisp-s.XXXXXX)
PIDS=()
PROXY_PIDS=()
PASS=0
FAIL=0

ok() { PASS=$((PASS + 1)); echo "ok - $1"; }
# skip NAME WHY: a TAP skip (counted as skipped by the runner).
skip() { echo "ok - $1 # SKIP $2"; }
# Memory numbers mean nothing under ASan (shadow memory, quarantine).
SANITIZED=${WISP_SANITIZED:-0}
# expect_rss_under NAME KB PEAK_KB
expect_rss_under() {
  if [ "$SANITIZED" = 1 ]; then
    skip "$1" "RSS is not meaningful under AddressSanitizer"
  elif [ "$3" -lt "$2" ]; then
    ok "$1 (peak $3 KB)"
  else
    not_ok "$1" "peak $3 KB"
  fi
}
not_ok() {
  FAIL=$((FAIL + 1))
  echo "not ok - $1${2:+: $2}"
}
# check NAME CMD...: runs CMD, ok if it succeeds.
check() {
  local name=$1
  shift
  if "$@"; then ok "$name"; else not_ok "$name" "command failed: $*"; fi
}
# expect_eq NAME WANT GOT
expect_eq() {
  if [ "$2" == "$3" ]; then ok "$1"; else not_ok "$1" "want [$2] got [$3]"; fi
}
# expect_match NAME REGEX TEXT
expect_match() {
  if printf '%s' "$3" | grep -Eq -- "$2"; then ok "$1"; else not_ok "$1" "[$3] does not match /$2/"; fi
}

# A free TCP port on 127.0.0.1 (bounded tries), below the kernel's
# ephemeral range: a port from that range can be taken by any outgoing
# connection between our check and the server's bind.
free_port() {
  local p i lo=10000 hi
  hi=$(awk '{print $1 - 1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
  [ -n "$hi" ] && [ "$hi" -gt $((lo + 1000)) ] || hi=32767
  for i in $(seq 1 200); do
    p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo)))
    if ! ss -Htan "sport = :$p" 2>/dev/null | grep -q .; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# wait_port PORT [SECONDS]: until something listens on 127.0.0.1:PORT.
wait_port() {
  local port=$1 deadline=$((SECONDS + ${2:-20}))
  while [ $SECONDS -lt $deadline ]; do
    ss -Htln "sport = :$port" 2>/dev/null | grep -q . && return 0
    sleep 0.05
  done
  echo "nothing listens on port $port after ${2:-20}s" >&2
  return 1
}

# wait_for SECONDS CMD...: until CMD succeeds (bounded).
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  while [ $SECONDS -lt $deadline ]; do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

# within_ms MS CMD...: CMD succeeds within MS milliseconds (polled every
# 20 ms; unlike wait_for, not rounded to whole seconds).
within_ms() {
  local limit=$1 start now
  shift
  start=$(date +%s%N)
  while :; do
    "$@" && return 0
    now=$(date +%s%N)
    [ $(((now - start) / 1000000)) -ge "$limit" ] && return 1
    sleep 0.02
  done
}

# ---- PKI ----
# make_pki: a CA and SVIDs for frontend and orders in $WORK/pki.
make_pki() {
  local d=$WORK/pki
  mkdir -p "$d"
  bash "$PKI" ca "$d/ca" >/dev/null
  bash "$PKI" svid "$d/ca" "$d/frontend" "$TD/ns/shop/sa/frontend" >/dev/null
  bash "$PKI" svid "$d/ca" "$d/orders" "$TD/ns/shop/sa/orders" >/dev/null
}

# ---- processes ----
start_bg() { # start_bg LOGPREFIX CMD... ; sets LAST_PID
  "${@:2}" >"$1.out" 2>"$1.err" &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# start_app NAME PORT: the node h2c test app.
start_app() {
  start_bg "$WORK/$1" node "$NODE_DIR/app.js" --port "$2" --name "$1"
  wait_port "$2"
}

# start_proxy NAME ARGS...: a wisp-proxy; logs in $WORK/NAME.out/.err.
start_proxy() {
  local name=$1
  shift
  start_bg "$WORK/$name" "$WISP_PROXY" "$@"
  PROXY_PIDS+=("$LAST_PID:$name")
  eval "PID_$name=$LAST_PID"
}

# start_pair: app, server-side proxy (orders) and client-side proxy
# (frontend) with a route to it. Sets APP_PORT, IN_PORT, OUT_PORT.
start_pair() {
  APP_PORT=$(free_port)
  IN_PORT=$(free_port)
  OUT_PORT=$(free_port)
  local p=$WORK/pki
  start_app app "$APP_PORT" || return 1
  start_proxy server --cert "$p/orders.crt" --key "$p/orders.key" --bundle "$p/ca/ca.crt" \
    --inbound "127.0.0.1:$IN_PORT" --app "127.0.0.1:$APP_PORT" "$@"
  start_proxy client --cert "$p/frontend.crt" --key "$p/frontend.key" --bundle "$p/ca/ca.crt" \
    --route "127.0.0.1:$OUT_PORT=127.0.0.1:$IN_PORT,id=$TD/ns/shop/sa/orders" "$@"
  wait_port "$IN_PORT" && wait_port "$OUT_PORT"
}

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# max_rss JOB PID...: the highest VmRSS (KB) of the PIDs while the
# background job JOB runs (sampled every 0.1 s).
max_rss() {
  local job=$1 m=0 r p
  shift
  while kill -0 "$job" 2>/dev/null; do
    for p in "$@"; do
      r=$(rss_kb "$p")
      [ "${r:-0}" -gt "$m" ] && m=$r
    done
    sleep 0.1
  done
  echo "$m"
}

# stop_proxy NAME: SIGTERM, and assert a clean exit (0, no sanitizer report).
stop_proxy() {
  local name=$1 pid entry rc
  pid=$(eval "echo \${PID_$name:-}")
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"
  rc=$?
  eval "PID_$name="
  if [ "$rc" -eq 0 ] && ! grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:' "$WORK/$name.err"; then
    ok "$name proxy exits 0 on SIGTERM, sanitizer clean"
  else
    not_ok "$name proxy exits 0 on SIGTERM, sanitizer clean" "exit $rc; $(grep -E -m3 'Sanitizer|runtime error' "$WORK/$name.err" | tr '\n' ' ')"
    sed 's/^/# /' "$WORK/$name.err" | tail -40
  fi
}

# our_child PID: PID is still a process this shell started and has not
# reaped. A PID the test already waited for (a stopped agent, a client)
# may by now be any process on the machine: tests run unsandboxed, and
# other Bazel servers run tests beside ours; killing it could stop another
# test (or its runner) and fail it for nothing.
our_child() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) } # past "PID (comm) ": "STATE PPID ..."; comm may hold spaces
  stat=${stat#* }
  [ "${stat%% *}" = "$$" ]
}

cleanup() {
  local entry pid
  for entry in "${PROXY_PIDS[@]}"; do
    name=${entry#*:}
    pid=$(eval "echo \${PID_$name:-}")
    [ -n "$pid" ] && stop_proxy "$name"
  done
  for pid in "${PIDS[@]}"; do our_child "$pid" && kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do our_child "$pid" && wait "$pid" 2>/dev/null; done
  if [ "${KEEP_WORK:-0}" != 1 ]; then rm -rf "$WORK" "$SOCKDIR"; fi
  return 0
}

# finish: cleans up, prints the counts, exits 0 exactly when no check
# failed (whatever the cleanup's own commands returned).
finish() {
  cleanup
  trap - EXIT
  echo "# $PASS passed, $FAIL failed"
  if [ "$FAIL" -eq 0 ]; then exit 0; fi
  exit 1
}
trap 'cleanup' EXIT

# ---- connection floods (tests/integration/limits_peer.py) ----
LIMITS_PEER="/usr/bin/python3 $WISP_SRC/tests/integration/limits_peer.py"
# flood NAME TARGET N SRC [h2]: N connections to TARGET (a port on
# 127.0.0.1, or unix:PATH) from address SRC, silent (h2: the HTTP/2 preface
# only), held until unflood NAME (at most 120 s); "open=X closed=Y" lands in
# $WORK/NAME.out, again whenever it changes.
flood() {
  start_bg "$WORK/$1" $LIMITS_PEER flood "$2" "$3" "$4" 120 "$WORK/$1.stop" ${5:-}
  eval "FLOOD_$1=$LAST_PID"
  wait_for 10 grep -qs open= "$WORK/$1.out"
}
unflood() {
  touch "$WORK/$1.stop"
  wait "$(eval "echo \$FLOOD_$1")" 2>/dev/null
}
flood_result() { tail -1 "$WORK/$1.out"; }
flood_is() { [ "$(flood_result "$1")" = "$2" ]; }
# expect_flood DESC NAME WANT: flood NAME comes to WANT (within 10 s: a
# server closes refused callers at accept, but a loaded machine is slow).
expect_flood() {
  wait_for 10 flood_is "$2" "$3"
  expect_eq "$1" "$3" "$(flood_result "$2")"
}
# fd_limited N BIN: a wrapper that runs BIN with at most N open files (soft
# and hard limit); prints its path.
fd_limited() {
  local w
  w=$WORK/fd$1-$(basename "$2")
  printf '#!/usr/bin/env bash\nulimit -n %d && exec %q "$@"\n' "$1" "$2" >"$w"
  chmod +x "$w"
  echo "$w"
}
# accept_failed_tries LISTENER LOG: the failed accept tries of LISTENER's
# pause episodes (lib/wisp_accept's "accepting again" lines in LOG), summed.
accept_failed_tries() {
  grep -o "accepting again on the $1 .* paused ([0-9]* failed tries)" "$2" |
    sed -E 's/.*\(([0-9]+) failed tries\)$/\1/' | awk '{ n += $1 } END { print n + 0 }'
}
# expect_no_spin NAME LISTENER LOG: LISTENER paused, not spun, while out of
# descriptors: 1 to 100 failed accept tries. A spin fails many thousands of
# times a second; a pause (0.1 s doubling to 1 s) needs over 90 s for 100.
expect_no_spin() {
  local tries
  tries=$(accept_failed_tries "$2" "$3")
  if [ "$tries" -ge 1 ] && [ "$tries" -le 100 ]; then
    ok "$1: $tries failed accept tries while out of descriptors"
  else
    not_ok "$1: at most 100 failed accept tries while out of descriptors" "$tries"
  fi
}

# h2c request through curl; prints the body. Extra args are passed on.
h2get() { curl -s --max-time 30 --http2-prior-knowledge "$@"; }

# Log lines of a proxy matching a jq-free grep.
log_of() { cat "$WORK/$1.out"; }

# prom_sum TEXT 'NAME{LABEL="VALUE",...}': the sum of NAME's samples in the
# Prometheus text TEXT whose labels include all those given ("" if none).
prom_sum() {
  /usr/bin/python3 -c '
import re, sys
text, key = sys.argv[1], sys.argv[2]
lab = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\\]|\\\\.)*)\"")
name, _, want = key.partition("{")
want = dict(lab.findall(want))
total, seen = 0.0, False
for line in text.splitlines():
    m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
    if m and m.group(1) == name and all(dict(lab.findall(m.group(3) or "")).get(k) == v for k, v in want.items()):
        total += float(m.group(4)); seen = True
print(("%d" % total if total == int(total) else repr(total)) if seen else "")' "$1" "$2"
}
