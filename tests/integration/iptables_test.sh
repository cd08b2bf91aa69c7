#!/usr/bin/env bash
# deploy/wisp-iptables.sh in network-namespace "pods", proven with real TCP
# traffic (no wisp-proxy yet: small listeners stand in for its ports and
# report the SO_ORIGINAL_DST of what they accept):
#   pod a (10.77.0.11)  the script, app processes as uid 4242, "proxy" uid 1337
#   pod b (10.77.0.12)  the script; a server on 8080, 9090, 2222, admin 15000, metrics 15090
#   pod c (10.77.0.13)  no rules: a plain peer and a plain caller
#   pod d (10.77.0.14)  an excluded CIDR for a; the legacy backend and the
#                       NET_ADMIN-only runs
# Everything lives in namespaces made here (tests/lib/netns.sh) and goes away
# at the end, pass or fail.
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
source "$WISP_SRC/tests/lib/netns.sh"
IPT_SH=$WISP_SRC/deploy/wisp-iptables.sh
APP_UID=4242
PROXY_UID=1337

PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)
if [ -z "$PY" ] || ! command -v setpriv >/dev/null; then
  skip "iptables interception" "needs python3 and setpriv (util-linux)"
  finish
fi
if ! netns_setup 0; then
  skip "iptables interception" "$NETNS_SKIP_REASON"
  finish
fi
for p in a:11 b:12 c:13 d:14; do
  netns_pod "${p%%:*}" "10.77.0.${p#*:}" || {
    not_ok "pod ${p%%:*} is wired to the bridge"
    finish
  }
done
V6=$NETNS_IPV6
if [ "$V6" = 1 ] && ! netns_exec a ip6tables -t nat -S >/dev/null 2>&1; then V6=0; fi

# The stand-in for every server: "listen NAME HOST PORT" answers each
# connection with one line (its name, local address, SO_ORIGINAL_DST, peer)
# and logs it; "connect HOST PORT" prints the line it got.
NETPY='
import socket, struct, sys
def fmt(a):
    return ("[%s]:%d" if ":" in a[0] else "%s:%d") % (a[0], a[1])
if sys.argv[1] == "listen":
    name, host, port = sys.argv[2], sys.argv[3], int(sys.argv[4])
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, port))
    s.listen(64)
    print("listening", flush=True)
    while True:
        c, peer = s.accept()
        try:
            if fam == socket.AF_INET:
                raw = c.getsockopt(socket.SOL_IP, 80, 16)  # SO_ORIGINAL_DST
                orig = "%s:%d" % (socket.inet_ntop(socket.AF_INET, raw[4:8]), struct.unpack("!H", raw[2:4])[0])
            else:
                raw = c.getsockopt(socket.IPPROTO_IPV6, 80, 28)  # IP6T_SO_ORIGINAL_DST
                orig = "[%s]:%d" % (socket.inet_ntop(socket.AF_INET6, raw[8:24]), struct.unpack("!H", raw[2:4])[0])
        except OSError:
            orig = "none"
        line = "%s local=%s orig=%s peer=%s" % (name, fmt(c.getsockname()), orig, fmt(peer))
        print(line, flush=True)
        try:
            c.sendall((line + "\n").encode())
        except OSError:
            pass
        c.close()
else:
    try:
        c = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=3)
        data = b""
        while not data.endswith(b"\n"):
            chunk = c.recv(512)
            if not chunk:
                break
            data += chunk
        print(data.decode().strip() or "no reply")
    except OSError as e:
        print("error: %s" % e)
        sys.exit(1)
'

# listen POD NAME HOST PORT
listen() {
  local log=$WORK/l-$1-$2
  start_bg "$log" ip netns exec "$(netns_name "$1")" "$PY" -I -c "$NETPY" listen "$2" "$3" "$4"
  wait_for 5 grep -q listening "$log.out" || not_ok "listener $2 starts in pod $1" "$(cat "$log.err")"
}
# conn POD UID HOST PORT: connect from POD as UID; prints the answer line.
conn() {
  local pod=$1 uid=$2
  shift 2
  (cd / && netns_exec "$pod" setpriv --reuid "$uid" --regid "$uid" --clear-groups \
    "$PY" -I -c "$NETPY" connect "$@" 2>&1)
}
# nat_save POD [SAVE_CMD]: the nat table, without comments and counters.
nat_save() {
  netns_exec "$1" "${2:-iptables-save}" -t nat 2>&1 | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]/[0:0]/g'
}
# wisp_ipt POD ARGS...: the script inside POD; output in $OUT, status in $RC.
wisp_ipt() {
  local pod=$1
  shift
  OUT=$(netns_exec "$pod" bash "$IPT_SH" "$@" 2>&1)
  RC=$?
}
expect_same() { # expect_same NAME WANT GOT (multi-line; diff on failure)
  if [ "$2" == "$3" ]; then
    ok "$1"
  else
    not_ok "$1" "tables differ"
    diff <(echo "$2") <(echo "$3") | sed 's/^/#   /'
  fi
}

listen a a-out 127.0.0.1 15001
listen a a-in 0.0.0.0 15006
listen a a-lo 127.0.0.1 7070
listen b b-app 0.0.0.0 8080
listen b b-9090 0.0.0.0 9090
listen b b-2222 0.0.0.0 2222
listen b b-in 0.0.0.0 15006
listen b b-admin 0.0.0.0 15000
listen b b-metrics 0.0.0.0 15090
listen c c-8080 0.0.0.0 8080
listen c c-9090 0.0.0.0 9090
listen d d-8080 0.0.0.0 8080
listen d d-out 127.0.0.1 15001
if [ "$V6" = 1 ]; then
  listen a a-out6 ::1 15001
  listen b b-in6 :: 15006
  listen d d-8080v6 :: 8080
fi

expect_match "pods reach each other over the bridge (no rules yet)" '^b-app local=10\.77\.0\.12:8080 ' \
  "$(conn a $APP_UID 10.77.0.12 8080)"

PRE_A=$(nat_save a)
PRE_A6=$(nat_save a ip6tables-save)
PRE_B=$(nat_save b)
PRE_B6=$(nat_save b ip6tables-save)
PRE_D=$(nat_save d)

wisp_ipt a --help
expect_eq "--help exits 0" 0 "$RC"
expect_match "--help lists the flags" '--exclude-outbound-cidrs' "$OUT"

# ---- (g) usage errors: exit 2, a message, nothing changed ----
bad() { # bad NAME REGEX ARGS...
  local name=$1 re=$2
  shift 2
  wisp_ipt a "$@"
  if [ "$RC" = 2 ] && printf '%s' "$OUT" | grep -Eq -- "$re"; then
    ok "$name"
  else
    not_ok "$name" "exit $RC: $OUT"
  fi
}
bad "a port out of range exits 2, naming it" '--outbound-port 70000: not a port' --outbound-port 70000
bad "an empty item in a port list exits 2" "--exclude-outbound-ports 80,,90: empty item" --exclude-outbound-ports 80,,90
bad "a name in a port list exits 2" "'http' is not a port" --exclude-inbound-ports 80,http
bad "a bad CIDR exits 2" "'10.0.0.300/8' is not an IPv4 or IPv6" --exclude-outbound-cidrs 10.0.0.1,10.0.0.300/8
bad "a bad IPv4 prefix length exits 2" "'10.0.0.0/33' is not" --exclude-outbound-cidrs 10.0.0.0/33
bad "a bad probe address exits 2" "--probe 127.0.0.77: expected IPv4:PORT or none" --probe 127.0.0.77
bad "an IPv6 probe address exits 2" "--probe \\[::1\\]:15009: expected IPv4:PORT or none" --probe "[::1]:15009"
bad "an unknown flag exits 2" 'unknown argument: --frobnicate' --frobnicate
bad "a flag without its value exits 2" '--proxy-uid needs a value' --proxy-uid
bad "an unknown proxy user exits 2" '--proxy-uid no-such-wisp-user: no such user' --proxy-uid no-such-wisp-user
bad "redirecting the proxy's own port inbound is refused" "15006 is one of the proxy's own ports" --inbound-ports 8080,15006
bad "equal listener ports are refused" 'must differ' --inbound-port 15001
bad "an unknown backend exits 2" '--backend foo: expected auto, nft or legacy' --backend foo
expect_same "usage errors leave the nat table alone" "$PRE_A" "$(nat_save a)"

# ---- runtime errors: exit 1 with the reason ----
OUT=$(netns_exec a setpriv --bounding-set -net_admin bash "$IPT_SH" 2>&1)
RC=$?
expect_eq "without CAP_NET_ADMIN: exit 1" 1 "$RC"
expect_match "... saying NET_ADMIN is needed" 'needs CAP_NET_ADMIN' "$OUT"
OUT=$(WISP_IPTABLES_CMD=/nonexistent/iptables netns_exec a bash "$IPT_SH" 2>&1)
RC=$?
expect_eq "iptables missing: exit 1" 1 "$RC"
expect_match "... saying so" 'iptables not found: /nonexistent/iptables' "$OUT"
wisp_ipt a --dry-run --proxy-uid $PROXY_UID --exclude-outbound-ports 9090
expect_eq "--dry-run exits 0" 0 "$RC"
expect_match "--dry-run prints the iptables-restore commands" \
  "iptables-(nft|legacy)-restore -w 10 --noflush <<'EOF'.*-A WISP_OUTPUT -m owner --uid-owner 1337 -j RETURN.*-A WISP_REDIRECT -p tcp -j REDIRECT --to-ports 15001" \
  "$(echo "$OUT" | tr '\n' ' ')"
expect_same "--dry-run changes nothing" "$PRE_A" "$(nat_save a)"
expect_same "nor in IPv6" "$PRE_A6" "$(nat_save a ip6tables-save)"

# ---- install in a and b ----
A_ARGS=(--proxy-uid "$PROXY_UID" --exclude-outbound-ports 9090 --exclude-outbound-cidrs "10.77.0.14/32,fd00:77::14")
wisp_ipt a "${A_ARGS[@]}"
expect_eq "install in pod a exits 0" 0 "$RC"
[ "$RC" = 0 ] || echo "$OUT" | sed 's/^/# /'
SAVE_A=$(nat_save a)
SAVE_A6=$(nat_save a ip6tables-save)
echo "# pod a, iptables-save -t nat after install:"
echo "$SAVE_A" | sed 's/^/#   /'
wisp_ipt b --proxy-uid $PROXY_UID --exclude-inbound-ports 2222
expect_eq "install in pod b exits 0" 0 "$RC"
expect_match "OUTPUT jumps to WISP_OUTPUT" '^-A OUTPUT -p tcp -j WISP_OUTPUT$' "$(grep -- '-A OUTPUT' <<<"$SAVE_A")"
expect_match "PREROUTING jumps to WISP_PREROUTING" '^-A PREROUTING -p tcp -j WISP_PREROUTING$' "$(grep -- '-A PREROUTING' <<<"$SAVE_A")"
if [ "$V6" = 1 ]; then
  expect_match "the same rules in ip6tables" '-A WISP_REDIRECT -p tcp -j REDIRECT --to-ports 15001' "$SAVE_A6"
else
  skip "the same rules in ip6tables" "no IPv6 nat in this kernel"
fi

# ---- (a) the app's outbound TCP lands on 15001 with its original destination ----
expect_match "app (uid $APP_UID) -> pod b:8080 lands on the outbound port, SO_ORIGINAL_DST = b:8080" \
  '^a-out local=127\.0\.0\.1:15001 orig=10\.77\.0\.12:8080 peer=10\.77\.0\.11:' "$(conn a $APP_UID 10.77.0.12 8080)"
expect_match "a root app is redirected too (only the proxy's uid is exempt)" \
  '^a-out .* orig=10\.77\.0\.12:8080 ' "$(conn a 0 10.77.0.12 8080)"
expect_match "an unmeshed peer (pod c) is redirected as well" '^a-out .* orig=10\.77\.0\.13:8080 ' \
  "$(conn a $APP_UID 10.77.0.13 8080)"
expect_match "loopback destinations are not redirected" '^a-lo local=127\.0\.0\.1:7070 ' \
  "$(conn a $APP_UID 127.0.0.1 7070)"
if [ "$V6" = 1 ]; then
  expect_match "IPv6: app -> [fd00:77::12]:8080 lands on [::1]:15001, original destination kept" \
    '^a-out6 local=\[::1\]:15001 orig=\[fd00:77::12\]:8080 ' "$(conn a $APP_UID fd00:77::12 8080)"
else
  skip "IPv6 outbound redirect" "no IPv6 nat in this kernel"
fi

# ---- (b) the proxy's own connections go out as they are ----
expect_match "proxy uid $PROXY_UID -> pod c:8080 reaches c's server directly" \
  '^c-8080 local=10\.77\.0\.13:8080 .* peer=10\.77\.0\.11:' "$(conn a $PROXY_UID 10.77.0.13 8080)"
expect_match "proxy uid $PROXY_UID -> pod b:8080: not looped back, b's inbound port gets it (the mesh path)" \
  '^b-in local=10\.77\.0\.12:15006 orig=10\.77\.0\.12:8080 peer=10\.77\.0\.11:' "$(conn a $PROXY_UID 10.77.0.12 8080)"

# ---- (b') the interception probe: redirected even from the proxy's uid ----
expect_match "proxy uid $PROXY_UID -> the probe address 127.0.0.77:15009 lands on the outbound port (wisp-proxy's /ready check)" \
  '^a-out local=127\.0\.0\.1:15001 orig=127\.0\.0\.77:15009 ' "$(conn a $PROXY_UID 127.0.0.77 15009)"
expect_match "... and only that port of it: 127.0.0.77:15010 is not redirected (refused)" '^error: .*[Rr]efused' \
  "$(conn a $PROXY_UID 127.0.0.77 15010)"

# ---- (d) exclusions ----
expect_match "an excluded outbound port (9090) is not redirected" '^c-9090 ' "$(conn a $APP_UID 10.77.0.13 9090)"
expect_match "an excluded outbound CIDR (pod d) is not redirected" '^d-8080 .* peer=10\.77\.0\.11:' \
  "$(conn a $APP_UID 10.77.0.14 8080)"
if [ "$V6" = 1 ]; then
  expect_match "an excluded IPv6 address (pod d) is not redirected" '^d-8080v6 .* peer=\[fd00:77::11\]:' \
    "$(conn a $APP_UID fd00:77::14 8080)"
else
  skip "an excluded IPv6 address is not redirected" "no IPv6 nat in this kernel"
fi

# ---- (c) inbound ----
expect_match "pod c -> b:8080 lands on b's inbound port, SO_ORIGINAL_DST = b:8080" \
  '^b-in local=10\.77\.0\.12:15006 orig=10\.77\.0\.12:8080 peer=10\.77\.0\.13:' "$(conn c $APP_UID 10.77.0.12 8080)"
expect_match "every app port is redirected by default (9090)" '^b-in .* orig=10\.77\.0\.12:9090 ' \
  "$(conn c $APP_UID 10.77.0.12 9090)"
expect_match "the admin port (15000) is not redirected" '^b-admin local=10\.77\.0\.12:15000 ' \
  "$(conn c $APP_UID 10.77.0.12 15000)"
expect_match "the metrics port (15090, Prometheus scrapes it) is not redirected" '^b-metrics local=10\.77\.0\.12:15090 ' \
  "$(conn c $APP_UID 10.77.0.12 15090)"
expect_match "an excluded inbound port (2222) is not redirected" '^b-2222 ' "$(conn c $APP_UID 10.77.0.12 2222)"
if [ "$V6" = 1 ]; then
  expect_match "IPv6 inbound: c -> [fd00:77::12]:8080 lands on b's inbound port" \
    '^b-in6 .* orig=\[fd00:77::12\]:8080 ' "$(conn c $APP_UID fd00:77::12 8080)"
else
  skip "IPv6 inbound redirect" "no IPv6 nat in this kernel"
fi
wisp_ipt b --proxy-uid $PROXY_UID --exclude-inbound-ports 2222 --inbound-ports 8080,8443
expect_match "--inbound-ports 8080,8443: 8080 is redirected" '^b-in .* orig=10\.77\.0\.12:8080 ' \
  "$(conn c $APP_UID 10.77.0.12 8080)"
expect_match "... and 9090 is not" '^b-9090 ' "$(conn c $APP_UID 10.77.0.12 9090)"
wisp_ipt b --proxy-uid $PROXY_UID --inbound-ports none
expect_match "--inbound-ports none: inbound goes straight to the app" '^b-app ' "$(conn c $APP_UID 10.77.0.12 8080)"
expect_eq "... and the PREROUTING chain is gone" "" "$(nat_save b | grep WISP_PREROUTING)"
wisp_ipt b --proxy-uid $PROXY_UID --exclude-inbound-ports 2222
expect_match "back to all ports: 9090 is redirected again" '^b-in .* orig=10\.77\.0\.12:9090 ' \
  "$(conn c $APP_UID 10.77.0.12 9090)"

# ---- (e) idempotent ----
wisp_ipt a "${A_ARGS[@]}"
expect_eq "a second run exits 0" 0 "$RC"
expect_same "a second run leaves the same nat table" "$SAVE_A" "$(nat_save a)"
expect_same "... and the same IPv6 nat table" "$SAVE_A6" "$(nat_save a ip6tables-save)"
expect_eq "exactly one jump from OUTPUT" 1 "$(nat_save a | grep -c -- '-A OUTPUT .*-j WISP_')"
wisp_ipt a "${A_ARGS[@]}" --outbound-port 15002
expect_match "a run with other flags replaces the rules" '--to-ports 15002' "$(nat_save a)"
expect_eq "... without leaving the old ones" "" "$(nat_save a | grep -- '--to-ports 15001')"
wisp_ipt a "${A_ARGS[@]}"
expect_same "and running the first flags again gives the first table back" "$SAVE_A" "$(nat_save a)"
expect_match "traffic is still redirected after the re-runs" '^a-out .* orig=10\.77\.0\.12:8080 ' \
  "$(conn a $APP_UID 10.77.0.12 8080)"

# ---- (f) --remove restores the table exactly ----
wisp_ipt a --remove
expect_eq "--remove exits 0" 0 "$RC"
expect_same "--remove restores pod a's nat table exactly" "$PRE_A" "$(nat_save a)"
expect_same "... and the IPv6 one" "$PRE_A6" "$(nat_save a ip6tables-save)"
expect_match "after --remove the app's connection goes out as it is" '^b-in .* peer=10\.77\.0\.11:' \
  "$(conn a $APP_UID 10.77.0.12 8080)"
wisp_ipt a --remove
expect_eq "--remove again is a no-op that exits 0" 0 "$RC"
expect_same "... and changes nothing" "$PRE_A" "$(nat_save a)"
wisp_ipt b --remove
expect_same "--remove restores pod b's nat table exactly" "$PRE_B" "$(nat_save b)"
expect_same "... and the IPv6 one" "$PRE_B6" "$(nat_save b ip6tables-save)"
expect_match "pod b's app gets inbound directly again" '^b-app ' "$(conn c $APP_UID 10.77.0.12 8080)"

# ---- capabilities: NET_ADMIN alone is enough (nf_tables) ----
OUT=$(netns_exec d setpriv --bounding-set -all,+net_admin bash "$IPT_SH" --proxy-uid $PROXY_UID 2>&1)
expect_eq "with only CAP_NET_ADMIN the install succeeds (nf_tables backend)" 0 "$?"
expect_match "... and the rules are in place" '-A OUTPUT -p tcp -j WISP_OUTPUT' "$(nat_save d)"
OUT=$(netns_exec d setpriv --bounding-set -all,+net_admin bash "$IPT_SH" --remove 2>&1)
expect_eq "with only CAP_NET_ADMIN --remove succeeds" 0 "$?"
expect_same "... and restores pod d's table" "$PRE_D" "$(nat_save d)"

# ---- the legacy (x_tables) backend ----
if command -v iptables-legacy >/dev/null && netns_exec d iptables-legacy -t nat -S >/dev/null 2>&1; then
  PRE_DL=$(nat_save d iptables-legacy-save)
  OUT=$(netns_exec d setpriv --bounding-set -all,+net_admin bash "$IPT_SH" --backend legacy 2>&1)
  expect_eq "legacy backend with only CAP_NET_ADMIN: exit 1" 1 "$?"
  expect_match "... saying it also needs NET_RAW" 'legacy iptables backend also needs CAP_NET_RAW' "$OUT"
  wisp_ipt d --backend legacy --proxy-uid $PROXY_UID
  expect_eq "--backend legacy installs" 0 "$RC"
  SAVE_DL=$(nat_save d iptables-legacy-save)
  expect_match "... into the legacy table" '-A OUTPUT -p tcp -j WISP_OUTPUT' "$SAVE_DL"
  expect_eq "... and not into nf_tables" "" "$(nat_save d | grep WISP_)"
  expect_match "legacy: app -> pod c:8080 lands on the outbound port" '^d-out .* orig=10\.77\.0\.13:8080 ' \
    "$(conn d $APP_UID 10.77.0.13 8080)"
  expect_match "legacy: the proxy's uid goes out directly" '^c-8080 ' "$(conn d $PROXY_UID 10.77.0.13 8080)"
  wisp_ipt d --proxy-uid $PROXY_UID
  expect_match "auto backend finds the legacy rules on a re-run" 'iptables-legacy' "$OUT"
  expect_same "... and leaves the legacy table as it was" "$SAVE_DL" "$(nat_save d iptables-legacy-save)"
  expect_eq "... and nf_tables untouched" "" "$(nat_save d | grep WISP_)"
  wisp_ipt d --remove
  expect_same "--remove (auto backend) restores the legacy table exactly" "$PRE_DL" "$(nat_save d iptables-legacy-save)"
  expect_match "after it pod d's app goes out directly" '^c-8080 ' "$(conn d $APP_UID 10.77.0.13 8080)"
else
  skip "legacy backend" "iptables-legacy is not usable here"
fi

# ---- IPv6 in use but not interceptable: refused, not skipped ----
if [ "$NETNS_IPV6" = 1 ]; then
  PRE_C=$(nat_save c)
  OUT=$(WISP_IP6TABLES_CMD=/nonexistent/ip6tables netns_exec c bash "$IPT_SH" --proxy-uid $PROXY_UID 2>&1)
  RC=$?
  expect_eq "a pod with a global IPv6 address and no usable ip6tables: exit 1" 1 "$RC"
  expect_match "... saying its IPv6 traffic would bypass the mesh" \
    'has IPv6 address fd00:77::13/64 but IPv6 cannot be intercepted .*would bypass the mesh.*--no-ipv6' "$OUT"
  expect_same "... and the IPv4 table is left as it was" "$PRE_C" "$(nat_save c)"
  OUT=$(WISP_IP6TABLES_CMD=/nonexistent/ip6tables netns_exec c bash "$IPT_SH" --proxy-uid $PROXY_UID --no-ipv6 2>&1)
  expect_eq "with --no-ipv6 the operator accepts that: exit 0" 0 "$?"
  wisp_ipt c --remove
  expect_same "... and --remove restores the table" "$PRE_C" "$(nat_save c)"
else
  skip "IPv6 in use but not interceptable is refused" "no IPv6 in these namespaces"
fi

# ---- everything we made is gone ----
LISTENERS=("${PIDS[@]}")
netns_cleanup
expect_eq "no namespace of this test is left" "" "$(netns_leftovers)"
left=0
for pid in "${LISTENERS[@]}"; do [ -e "/proc/$pid" ] && left=$((left + 1)); done
expect_eq "no process of this test is left" 0 "$left"
netns_cleanup
expect_eq "netns_cleanup is safe to call twice" "" "$(netns_leftovers)"
finish
