# Network namespaces as "pods" for wisp's tests (sourced after harness.sh).
#
#   netns_setup [N]       a private "net" namespace holding a bridge, and N
#                         pods pod1..podN (10.77.0.11.. and fd00:77::11..);
#                         returns 1 with NETNS_SKIP_REASON set when this
#                         machine cannot make namespaces (the caller skips)
#   netns_pod NAME IP     one more pod: namespace, loopback up, eth0 (a veth
#                         to the bridge) with IP/24 and fd00:77::LAST/64
#   netns_exec NAME CMD   run CMD inside pod NAME (or "net")
#   netns_as NAME UID CMD run CMD inside pod NAME as UID
#   netns_listens NAME PORT...  true when each PORT listens (TCP) in NAME
#   netns_name NAME       the namespace's real name (wisp-<unique id>-NAME)
#   netns_cleanup         kill every process in our namespaces, delete them;
#                         safe to call twice, also runs from harness cleanup
#
# Everything lives inside namespaces this file creates: the bridge and both
# ends of every veth are made in the "net" namespace (the pod end is moved
# straight into its pod), nothing is added to the host's namespace, and the
# addresses (10.77.0.0/24, fd00:77::/64) exist nowhere else.

PATH=$PATH:/usr/sbin:/sbin
NETNS_ID=${NETNS_ID:-$$-$RANDOM}
NETNS_PREFIX=wisp-$NETNS_ID
NETNS_NET=""
NETNS_ALL=()  # real names of every namespace we created
NETNS_PODS=() # short names of the pods
NETNS_SKIP_REASON=""
NETNS_IPV6=1

netns_name() { echo "$NETNS_PREFIX-$1"; }

netns_exec() {
  local ns
  ns=$(netns_name "$1")
  shift
  ip netns exec "$ns" "$@"
}

# netns_as POD UID CMD...: CMD inside POD as UID (an app's or the proxy's user).
netns_as() {
  local pod=$1 uid=$2
  shift 2
  netns_exec "$pod" setpriv --reuid "$uid" --regid "$uid" --clear-groups "$@"
}

# netns_listens POD PORT...: every PORT has a TCP listener inside POD.
netns_listens() {
  local pod=$1 port
  shift
  for port in "$@"; do netns_exec "$pod" ss -Htln "sport = :$port" | grep -q . || return 1; done
}

# netns_has_cap BIT: is capability BIT in our effective set?
netns_has_cap() {
  local eff
  eff=$(awk '/^CapEff:/ {print $2}' /proc/self/status 2>/dev/null) || return 1
  [ -n "$eff" ] && [ $(((16#$eff >> $1) & 1)) = 1 ]
}

# netns_check: can this machine make namespaces? Sets NETNS_SKIP_REASON.
netns_check() {
  local probe err
  if ! command -v ip >/dev/null 2>&1; then
    NETNS_SKIP_REASON="iproute2 (ip) is not installed"
  elif [ "$(id -u)" != 0 ]; then
    NETNS_SKIP_REASON="needs root to create network namespaces (running as uid $(id -u))"
  elif ! netns_has_cap 21 || ! netns_has_cap 12; then
    NETNS_SKIP_REASON="needs CAP_SYS_ADMIN and CAP_NET_ADMIN to create network namespaces"
  else
    probe=$(netns_name probe)
    if ! err=$(ip netns add "$probe" 2>&1); then
      NETNS_SKIP_REASON="ip netns add fails here: $err"
    elif ! err=$(ip -n "$probe" link add wprobe0 type veth peer name wprobe1 2>&1); then
      NETNS_SKIP_REASON="cannot create veth devices: $err"
    elif ! err=$(ip -n "$probe" link add wprobebr type bridge 2>&1); then
      NETNS_SKIP_REASON="cannot create bridge devices: $err"
    fi
    ip netns del "$probe" 2>/dev/null
  fi
  [ -z "$NETNS_SKIP_REASON" ]
}

# netns_setup [N]
netns_setup() {
  local n=${1:-0} i err
  netns_check || return 1
  NETNS_NET=$(netns_name net)
  if ! err=$(ip netns add "$NETNS_NET" 2>&1); then
    NETNS_SKIP_REASON="ip netns add $NETNS_NET: $err"
    return 1
  fi
  NETNS_ALL+=("$NETNS_NET")
  if ! { ip -n "$NETNS_NET" link set lo up &&
    ip -n "$NETNS_NET" link add br0 type bridge &&
    ip -n "$NETNS_NET" link set br0 up; }; then
    NETNS_SKIP_REASON="cannot set up the bridge in $NETNS_NET"
    return 1
  fi
  for ((i = 1; i <= n && i <= 200; i++)); do
    netns_pod "pod$i" "10.77.0.$((10 + i))" || return 1
  done
}

# netns_pod NAME IP
netns_pod() {
  local name=$1 ip=$2 ns last veth
  case $ip in
    10.77.0.*) ;;
    *)
      echo "netns_pod: $ip is outside the test range 10.77.0.0/24" >&2
      return 1
      ;;
  esac
  last=${ip##*.}
  [ -n "$NETNS_NET" ] || {
    echo "netns_pod: call netns_setup first" >&2
    return 1
  }
  ns=$(netns_name "$name")
  ip netns add "$ns" || return 1
  NETNS_ALL+=("$ns")
  NETNS_PODS+=("$name")
  veth=v${#NETNS_PODS[@]}
  if ! { ip -n "$ns" link set lo up &&
    ip -n "$NETNS_NET" link add "$veth" type veth peer name eth0 netns "$ns" &&
    ip -n "$NETNS_NET" link set "$veth" master br0 &&
    ip -n "$NETNS_NET" link set "$veth" up &&
    ip -n "$ns" addr add "$ip/24" dev eth0; }; then
    echo "netns_pod: cannot wire $name ($ip)" >&2
    return 1
  fi
  if [ "$NETNS_IPV6" = 1 ] && ! ip -n "$ns" addr add "fd00:77::$last/64" dev eth0 nodad 2>/dev/null; then
    NETNS_IPV6=0
  fi
  ip -n "$ns" link set eth0 up
}

netns_cleanup() {
  local ns pids pid i left all=()
  # Ours by record, and by our unique prefix should the record be short.
  all=(${NETNS_ALL[@]+"${NETNS_ALL[@]}"})
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    case $ns in "$NETNS_PREFIX"-*) [[ " ${all[*]} " == *" $ns "* ]] || all+=("$ns") ;; esac
  done
  for ns in ${all[@]+"${all[@]}"}; do
    [ -e "/run/netns/$ns" ] || continue
    pids=$(ip netns pids "$ns" 2>/dev/null)
    [ -n "$pids" ] || continue
    for pid in $pids; do kill -TERM "$pid" 2>/dev/null; done
    for i in $(seq 1 30); do
      left=""
      for pid in $pids; do [ -e "/proc/$pid" ] && left="$left $pid"; done
      [ -n "$left" ] || break
      sleep 0.1
    done
    for pid in $left; do kill -KILL "$pid" 2>/dev/null; done
    for pid in $pids; do wait "$pid" 2>/dev/null; done
  done
  for ns in ${all[@]+"${all[@]}"}; do
    [ -e "/run/netns/$ns" ] && ip netns del "$ns" 2>/dev/null
  done
  NETNS_ALL=()
  NETNS_PODS=()
  NETNS_NET=""
  return 0
}

# Our namespaces still present (for the final assertion).
netns_leftovers() { ip netns list 2>/dev/null | awk '{print $1}' | grep -F -- "$NETNS_PREFIX-" || true; }

# Run netns_cleanup whenever the harness cleans up (finish and the EXIT
# trap), after it has stopped the processes it started; and turn INT/TERM
# (e.g. a Bazel timeout) into an exit so that the EXIT trap runs.
if declare -f cleanup >/dev/null && ! declare -f harness_cleanup >/dev/null; then
  eval "harness_cleanup() $(declare -f cleanup | tail -n +2)"
  cleanup() {
    harness_cleanup
    netns_cleanup
  }
fi
trap 'exit 130' INT
trap 'exit 143' TERM
