#!/usr/bin/env bash
# wisp-iptables.sh: transparent interception for wisp-proxy (the Kubernetes
# init container and the VM's wisp-iptables.service both run it), in the
# style of istio-iptables / linkerd-init.
#
# In the nat table of the current network namespace it installs:
#
#   OUTPUT     -p tcp -j WISP_OUTPUT             (the app's outbound TCP)
#   WISP_OUTPUT            first, TCP to the probe address (--probe) from
#                          anyone, the proxy included, -j WISP_REDIRECT: the
#                          proxy dials it to prove interception (/ready);
#                          RETURN if out via lo, to 127.0.0.0/8 (::1),
#                          from the proxy's uid (its own upstream
#                          connections must not loop back into itself),
#                          or to an excluded port or CIDR;
#                          else -j WISP_REDIRECT
#   WISP_REDIRECT          REDIRECT --to-ports 15001 (outbound listener;
#                          it reads the original destination with
#                          SO_ORIGINAL_DST)
#   PREROUTING -p tcp -j WISP_PREROUTING         (inbound TCP)
#   WISP_PREROUTING        RETURN for the proxy's own ports (inbound,
#                          outbound, admin, metrics) and excluded ports; the app
#                          ports (all, or the given list) -j WISP_INBOUND_REDIRECT
#   WISP_INBOUND_REDIRECT  REDIRECT --to-ports 15006 (inbound listener)
#
# and the same with ip6tables when IPv6 is available. Every change is one
# iptables-restore --noflush transaction per family, so the table never
# holds half the rules. Running it again flushes and refills its own chains
# and keeps exactly one jump into each (idempotent, and a changed flag takes
# effect); --remove deletes exactly its jumps and WISP_* chains.
#
# Needs CAP_NET_ADMIN in the namespace (nf_tables backend; the legacy
# backend also needs CAP_NET_RAW). Exit status: 0 done, 1 failed (nothing
# changed), 2 usage error.
set -u
set -o pipefail
PATH=$PATH:/usr/sbin:/sbin
PROG=wisp-iptables

usage() {
  cat <<'EOF'
usage: wisp-iptables.sh [options]
  --proxy-uid UID|NAME        the proxy's user: its own connections are not
                              redirected (default 1337)
  --proxy-gid GID|NAME        also exempt connections of this group (default: none)
  --outbound-port P           the proxy's outbound listener (default 15001)
  --inbound-port P            the proxy's inbound listener (default 15006)
  --admin-port P              the proxy's admin listener, never redirected (default 15000)
  --metrics-port P            the proxy's --metrics listener (Prometheus scrapes it),
                              never redirected (default 15090)
  --exclude-outbound-ports P,P   outbound TCP to these ports goes out directly
  --exclude-outbound-cidrs C,C   ... and to these networks (e.g. the agent's
                              address); IPv4 and IPv6 CIDRs may be mixed
  --exclude-inbound-ports P,P    inbound TCP to these ports reaches the app directly
  --inbound-ports all|none|P,P   app ports whose inbound TCP is redirected to the
                              inbound listener (default all)
  --probe IP:PORT|none        IPv4 address whose TCP is redirected to the outbound
                              listener even from the proxy's uid, so that wisp-proxy
                              --transparent can prove the rules are in place before
                              /ready passes (default 127.0.0.77:15009, the proxy's
                              --intercept-probe default)
  --backend auto|nft|legacy   iptables backend (default auto: the one already
                              holding wisp's or other rules, else what
                              `iptables` is)
  --no-ipv6                   leave ip6tables alone (without it, a namespace with a
                              global IPv6 address whose IPv6 cannot be intercepted
                              is an error: that traffic would bypass the mesh)
  --remove                    remove wisp's rules and chains (exactly what was added)
  --dry-run                   print the iptables-restore commands, change nothing
  -h, --help                  this help
Outbound loopback traffic (-o lo) is never redirected. Exit status: 0 done,
1 failed (nothing was changed), 2 usage error.
Environment: WISP_IPTABLES_CMD / WISP_IP6TABLES_CMD override the iptables binaries.
EOF
}

die_usage() {
  echo "$PROG: $*" >&2
  echo "$PROG: see --help" >&2
  exit 2
}
die() {
  echo "$PROG: $*" >&2
  exit 1
}
note() { echo "$PROG: $*" >&2; }

# ---- arguments ----
PROXY_UID=1337
PROXY_GID=""
OUT_PORT=15001
IN_PORT=15006
ADMIN_PORT=15000
METRICS_PORT=15090
EXCL_OUT_PORTS=""
EXCL_IN_PORTS=""
EXCL_OUT_CIDRS=""
IN_PORTS=all
BACKEND=auto
PROBE=127.0.0.77:15009
IPV6=1
REMOVE=0
DRY_RUN=0

while [ $# -gt 0 ]; do
  opt=$1
  val=""
  has_val=0
  case $opt in
    --*=*)
      val=${opt#*=}
      opt=${opt%%=*}
      has_val=1
      ;;
  esac
  case $opt in
    -h | --help)
      usage
      exit 0
      ;;
    --remove | --dry-run | --no-ipv6)
      [ "$has_val" = 0 ] || die_usage "$opt takes no value"
      case $opt in
        --remove) REMOVE=1 ;;
        --dry-run) DRY_RUN=1 ;;
        --no-ipv6) IPV6=0 ;;
      esac
      ;;
    --proxy-uid | --proxy-gid | --outbound-port | --inbound-port | --admin-port | --metrics-port | \
      --exclude-outbound-ports | --exclude-inbound-ports | --exclude-outbound-cidrs | \
      --inbound-ports | --backend | --probe)
      if [ "$has_val" = 0 ]; then
        [ $# -ge 2 ] || die_usage "$opt needs a value"
        val=$2
        shift
      fi
      case $opt in
        --proxy-uid) PROXY_UID=$val ;;
        --proxy-gid) PROXY_GID=$val ;;
        --outbound-port) OUT_PORT=$val ;;
        --inbound-port) IN_PORT=$val ;;
        --admin-port) ADMIN_PORT=$val ;;
        --metrics-port) METRICS_PORT=$val ;;
        --exclude-outbound-ports) EXCL_OUT_PORTS=$val ;;
        --exclude-inbound-ports) EXCL_IN_PORTS=$val ;;
        --exclude-outbound-cidrs) EXCL_OUT_CIDRS=$val ;;
        --inbound-ports) IN_PORTS=$val ;;
        --backend) BACKEND=$val ;;
        --probe) PROBE=$val ;;
      esac
      ;;
    *) die_usage "unknown argument: $1" ;;
  esac
  shift
done

# ---- validation ----
# port_ok P: 1..65535, digits only.
port_ok() { [[ $1 =~ ^[0-9]{1,5}$ ]] && [ $((10#$1)) -ge 1 ] && [ $((10#$1)) -le 65535 ]; }

# parse_ports FLAG LIST: validated, normalised, de-duplicated ports on
# stdout (space separated). An empty LIST is an empty list.
parse_ports() {
  local flag=$1 list=$2 item out=() seen=" "
  [ -n "$list" ] || return 0
  if [[ $list == ,* || $list == *, || $list == *,,* ]]; then
    echo "$PROG: $flag $list: empty item in the port list" >&2
    return 1
  fi
  IFS=, read -r -a items <<<"$list"
  for item in "${items[@]}"; do
    if ! port_ok "$item"; then
      echo "$PROG: $flag $list: '$item' is not a port (1-65535)" >&2
      return 1
    fi
    item=$((10#$item))
    case $seen in *" $item "*) continue ;; esac
    seen="$seen$item "
    out+=("$item")
  done
  echo "${out[*]}"
}

cidr4_ok() {
  local ip=${1%/*} o
  [[ $1 =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}(/[0-9]{1,2})?$ ]] || return 1
  if [[ $1 == */* ]] && [ $((10#${1#*/})) -gt 32 ]; then return 1; fi
  IFS=. read -r -a o <<<"$ip"
  for ip in "${o[@]}"; do [ $((10#$ip)) -le 255 ] || return 1; done
}
cidr6_ok() {
  local ip=${1%/*} rest groups
  [[ $1 =~ ^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$ && $ip == *:* ]] || return 1
  if [[ $1 == */* ]] && [ $((10#${1#*/})) -gt 128 ]; then return 1; fi
  rest=${ip#*::}
  [[ $rest == *::* ]] && return 1 # at most one "::"
  [[ $ip == *:::* ]] && return 1
  groups=${ip//[^:]/}
  [ ${#groups} -le 7 ]
}

# resolve_id KIND FLAG VALUE: a numeric uid/gid on stdout.
resolve_id() {
  local kind=$1 flag=$2 v=$3 n
  if [[ $v =~ ^[0-9]+$ ]]; then
    if [ "${#v}" -gt 10 ] || [ "$v" -gt 4294967294 ]; then
      echo "$PROG: $flag $v: out of range" >&2
      return 1
    fi
    echo $((10#$v))
    return 0
  fi
  if [[ ! $v =~ ^[A-Za-z_][A-Za-z0-9_.-]*$ ]]; then
    echo "$PROG: $flag '$v': not a ${kind} name or number" >&2
    return 1
  fi
  n=$(getent "$([ "$kind" = user ] && echo passwd || echo group)" "$v" 2>/dev/null | cut -d: -f3)
  if [ -z "$n" ]; then
    echo "$PROG: $flag $v: no such $kind" >&2
    return 1
  fi
  echo "$n"
}

for p in "--outbound-port:$OUT_PORT" "--inbound-port:$IN_PORT" "--admin-port:$ADMIN_PORT" "--metrics-port:$METRICS_PORT"; do
  port_ok "${p#*:}" || die_usage "${p%%:*} ${p#*:}: not a port (1-65535)"
done
OUT_PORT=$((10#$OUT_PORT))
IN_PORT=$((10#$IN_PORT))
ADMIN_PORT=$((10#$ADMIN_PORT))
METRICS_PORT=$((10#$METRICS_PORT))
if [ "$OUT_PORT" = "$IN_PORT" ] || [ "$OUT_PORT" = "$ADMIN_PORT" ] || [ "$IN_PORT" = "$ADMIN_PORT" ]; then
  die_usage "--outbound-port, --inbound-port and --admin-port must differ ($OUT_PORT, $IN_PORT, $ADMIN_PORT)"
fi
EXCL_OUT_PORTS=$(parse_ports --exclude-outbound-ports "$EXCL_OUT_PORTS") || exit 2
EXCL_IN_PORTS=$(parse_ports --exclude-inbound-ports "$EXCL_IN_PORTS") || exit 2
case $IN_PORTS in
  all | none) ;;
  *)
    [ -n "$IN_PORTS" ] || die_usage "--inbound-ports: expected all, none or a port list"
    IN_PORTS=$(parse_ports --inbound-ports "$IN_PORTS") || exit 2
    for p in $IN_PORTS; do
      case $p in
        "$OUT_PORT" | "$IN_PORT" | "$ADMIN_PORT" | "$METRICS_PORT")
          die_usage "--inbound-ports: $p is one of the proxy's own ports (it would loop)"
          ;;
      esac
    done
    ;;
esac
CIDRS4=()
CIDRS6=()
if [ -n "$EXCL_OUT_CIDRS" ]; then
  if [[ $EXCL_OUT_CIDRS == ,* || $EXCL_OUT_CIDRS == *, || $EXCL_OUT_CIDRS == *,,* ]]; then
    die_usage "--exclude-outbound-cidrs $EXCL_OUT_CIDRS: empty item in the list"
  fi
  IFS=, read -r -a items <<<"$EXCL_OUT_CIDRS"
  for c in "${items[@]}"; do
    if cidr4_ok "$c"; then
      [[ $c == */* ]] || c=$c/32
      CIDRS4+=("$c")
    elif cidr6_ok "$c"; then
      [[ $c == */* ]] || c=$c/128
      CIDRS6+=("$c")
    else
      die_usage "--exclude-outbound-cidrs: '$c' is not an IPv4 or IPv6 address or CIDR"
    fi
  done
fi
PROBE_IP=""
PROBE_PORT=""
if [ "$PROBE" != none ]; then
  PROBE_IP=${PROBE%:*}
  PROBE_PORT=${PROBE##*:}
  if [[ $PROBE != *:* ]] || ! cidr4_ok "$PROBE_IP" || [[ $PROBE_IP == */* ]] || ! port_ok "$PROBE_PORT"; then
    die_usage "--probe $PROBE: expected IPv4:PORT or none"
  fi
  PROBE_PORT=$((10#$PROBE_PORT))
fi
case $BACKEND in
  auto | nft | legacy) ;;
  *) die_usage "--backend $BACKEND: expected auto, nft or legacy" ;;
esac
if [ "$REMOVE" = 0 ]; then
  PROXY_UID=$(resolve_id user --proxy-uid "$PROXY_UID") || exit 2
  if [ -n "$PROXY_GID" ]; then PROXY_GID=$(resolve_id group --proxy-gid "$PROXY_GID") || exit 2; fi
fi

# ---- environment: binaries, backend, capabilities ----
have() { command -v "$1" >/dev/null 2>&1; }

# backend_of BIN: nft or legacy, from `BIN --version`.
backend_of() {
  case $("$1" --version 2>/dev/null) in
    *nf_tables*) echo nft ;;
    *legacy*) echo legacy ;;
    *) echo unknown ;;
  esac
}
# wisp_chains BIN: does BIN's nat table hold WISP_ chains?
wisp_chains() {
  local s
  s=$("$1" -w 10 -t nat -S 2>/dev/null) && [[ $'\n'$s == *$'\n-N WISP_'* ]]
}
# has_rules BIN: does BIN's nat table hold any rule?
has_rules() {
  local s
  s=$("$1" -w 10 -t nat -S 2>/dev/null) && [[ $'\n'$s == *$'\n-A '* ]]
}
# legacy_nat FAMILY: is there a legacy (x_tables) nat table in this netns?
# Checked through /proc so that looking does not create one.
legacy_nat() {
  local f=/proc/net/ip_tables_names
  [ "$1" = 6 ] && f=/proc/net/ip6_tables_names
  grep -qx nat "$f" 2>/dev/null
}

# pick the IPv4 binary: IPT (and the backend name in BACKEND_USED).
if [ -n "${WISP_IPTABLES_CMD:-}" ]; then
  IPT=$WISP_IPTABLES_CMD
  if ! have "$IPT"; then
    [ "$DRY_RUN" = 1 ] || die "iptables not found: $IPT (WISP_IPTABLES_CMD)"
  fi
  BACKEND_USED=$(backend_of "$IPT")
else
  NFT_BIN=iptables-nft
  LEG_BIN=iptables-legacy
  have "$NFT_BIN" || NFT_BIN=""
  have "$LEG_BIN" || LEG_BIN=""
  DEFAULT_BACKEND=unknown
  have iptables && DEFAULT_BACKEND=$(backend_of iptables)
  [ -n "$NFT_BIN" ] || { [ "$DEFAULT_BACKEND" = nft ] && NFT_BIN=iptables; }
  [ -n "$LEG_BIN" ] || { [ "$DEFAULT_BACKEND" = legacy ] && LEG_BIN=iptables; }
  case $BACKEND in
    nft)
      [ -n "$NFT_BIN" ] || [ "$DRY_RUN" = 1 ] || die "--backend nft: iptables-nft not found (install the iptables package)"
      BACKEND_USED=nft
      ;;
    legacy)
      [ -n "$LEG_BIN" ] || [ "$DRY_RUN" = 1 ] || die "--backend legacy: iptables-legacy not found (install the iptables package)"
      BACKEND_USED=legacy
      ;;
    auto)
      # Where our chains already are (so --remove and a re-run find them);
      # else where other rules are (never split a table across backends,
      # as kube-proxy/Docker would then miss ours); else what `iptables` is.
      if [ -n "$LEG_BIN" ] && legacy_nat 4 && wisp_chains "$LEG_BIN"; then
        BACKEND_USED=legacy
      elif [ -n "$NFT_BIN" ] && wisp_chains "$NFT_BIN"; then
        BACKEND_USED=nft
      elif [ -n "$LEG_BIN" ] && legacy_nat 4 && has_rules "$LEG_BIN" &&
        ! { [ -n "$NFT_BIN" ] && has_rules "$NFT_BIN"; }; then
        BACKEND_USED=legacy
      elif [ "$DEFAULT_BACKEND" != unknown ]; then
        BACKEND_USED=$DEFAULT_BACKEND
      elif [ -n "$NFT_BIN" ]; then
        BACKEND_USED=nft
      elif [ -n "$LEG_BIN" ]; then
        BACKEND_USED=legacy
      else
        [ "$DRY_RUN" = 1 ] || die "iptables not found (install the iptables package)"
        BACKEND_USED=nft
      fi
      ;;
  esac
  if [ "$BACKEND_USED" = nft ]; then IPT=${NFT_BIN:-iptables-nft}; else IPT=${LEG_BIN:-iptables-legacy}; fi
fi
if [ -n "${WISP_IP6TABLES_CMD:-}" ]; then
  IP6T=$WISP_IP6TABLES_CMD
else
  IP6T=$(dirname "$IPT")/$(basename "$IPT" | sed 's/^iptables/ip6tables/')
  [[ $IPT == */* ]] || IP6T=${IP6T#./}
fi

# cap_has BIT: is capability BIT in this process's effective set?
# (Unknown, e.g. no /proc: assume yes and let iptables say.)
cap_has() {
  local line
  [ -r /proc/self/status ] || return 0
  while read -r line; do
    case $line in
      CapEff:*)
        line=${line#CapEff:}
        line=${line//[[:space:]]/}
        [ $(((16#$line >> $1) & 1)) = 1 ]
        return
        ;;
    esac
  done </proc/self/status
  return 0
}

if [ "$DRY_RUN" = 0 ]; then
  cap_has 12 || die "needs CAP_NET_ADMIN in this network namespace (run as root, or give the init container the NET_ADMIN capability)"
  if [ "$BACKEND_USED" = legacy ] && ! cap_has 13; then
    die "the legacy iptables backend also needs CAP_NET_RAW (add the NET_RAW capability, or use --backend nft)"
  fi
fi

# ---- the rules ----
# current_nat BIN: `-S` of its nat table (empty when it cannot be read).
current_nat() { "$1" -w 10 -t nat -S 2>/dev/null; }

# remove_lines CURRENT: restore lines that delete every jump into a WISP_
# chain from another chain, then flush and delete every WISP_ chain.
remove_lines() {
  local cur=$1 line chains=()
  while IFS= read -r line; do
    case $line in
      "-A WISP_"*) ;;
      "-A "*" -j WISP_"*) echo "-D ${line#-A }" ;;
      "-N WISP_"*) chains+=("${line#-N }") ;;
    esac
  done <<<"$cur"
  for line in "${chains[@]}"; do echo "-F $line"; done
  for line in "${chains[@]}"; do echo "-X $line"; done
}

# install_lines FAMILY CURRENT: the restore lines that make the table hold
# exactly wisp's rules, whatever of them it held before.
install_lines() {
  local fam=$1 cur=$2 line p c want=() keep chains=() unwanted=() jumps=()
  local lo=127.0.0.0/8
  [ "$fam" = 6 ] && lo=::1/128
  want=(WISP_OUTPUT WISP_REDIRECT)
  jumps=("-A OUTPUT -p tcp -j WISP_OUTPUT")
  if [ "$IN_PORTS" != none ]; then
    want+=(WISP_PREROUTING WISP_INBOUND_REDIRECT)
    jumps+=("-A PREROUTING -p tcp -j WISP_PREROUTING")
  fi
  # Declaring a chain creates it, or flushes it if it exists.
  for c in "${want[@]}"; do echo ":$c - [0:0]"; done
  # Jumps into WISP_ chains: keep one of each wanted jump, delete the rest.
  keep=" "
  while IFS= read -r line; do
    case $line in
      "-A WISP_"*) ;;
      "-A "*" -j WISP_"*)
        for c in "${jumps[@]}"; do
          if [ "$line" = "$c" ] && [[ $keep != *" ${line##* } "* ]]; then
            keep="$keep${line##* } "
            continue 2
          fi
        done
        echo "-D ${line#-A }"
        ;;
      "-N WISP_"*)
        c=${line#-N }
        [[ " ${want[*]} " == *" $c "* ]] || unwanted+=("$c")
        ;;
    esac
  done <<<"$cur"
  for c in "${unwanted[@]}"; do echo "-F $c"; done
  for c in "${unwanted[@]}"; do echo "-X $c"; done

  if [ "$fam" = 4 ] && [ -n "$PROBE_IP" ]; then
    echo "-A WISP_OUTPUT -d $PROBE_IP/32 -p tcp -m tcp --dport $PROBE_PORT -j WISP_REDIRECT"
  fi
  echo "-A WISP_OUTPUT -o lo -j RETURN"
  echo "-A WISP_OUTPUT -d $lo -j RETURN"
  echo "-A WISP_OUTPUT -m owner --uid-owner $PROXY_UID -j RETURN"
  [ -z "$PROXY_GID" ] || echo "-A WISP_OUTPUT -m owner --gid-owner $PROXY_GID -j RETURN"
  for p in $EXCL_OUT_PORTS; do echo "-A WISP_OUTPUT -p tcp -m tcp --dport $p -j RETURN"; done
  if [ "$fam" = 4 ]; then
    for c in ${CIDRS4[@]+"${CIDRS4[@]}"}; do echo "-A WISP_OUTPUT -d $c -j RETURN"; done
  else
    for c in ${CIDRS6[@]+"${CIDRS6[@]}"}; do echo "-A WISP_OUTPUT -d $c -j RETURN"; done
  fi
  echo "-A WISP_OUTPUT -p tcp -j WISP_REDIRECT"
  echo "-A WISP_REDIRECT -p tcp -j REDIRECT --to-ports $OUT_PORT"
  if [ "$IN_PORTS" != none ]; then
    for p in "$IN_PORT" "$OUT_PORT" "$ADMIN_PORT" "$METRICS_PORT" $EXCL_IN_PORTS; do
      echo "-A WISP_PREROUTING -p tcp -m tcp --dport $p -j RETURN"
    done
    if [ "$IN_PORTS" = all ]; then
      echo "-A WISP_PREROUTING -p tcp -j WISP_INBOUND_REDIRECT"
    else
      for p in $IN_PORTS; do
        case " $EXCL_IN_PORTS " in *" $p "*) continue ;; esac
        echo "-A WISP_PREROUTING -p tcp -m tcp --dport $p -j WISP_INBOUND_REDIRECT"
      done
    fi
    echo "-A WISP_INBOUND_REDIRECT -p tcp -j REDIRECT --to-ports $IN_PORT"
  fi
  for c in "${jumps[@]}"; do
    [[ $keep == *" ${c##* } "* ]] || echo "$c"
  done
}

# apply FAMILY BIN: build the transaction for one family and run it (or print it).
apply() {
  local fam=$1 bin=$2 cur body restore err
  restore="$bin-restore"
  if [ "$DRY_RUN" = 1 ]; then
    cur=$(current_nat "$bin")
  else
    cur=$("$bin" -w 10 -t nat -S 2>&1) || {
      note "cannot read the IPv$fam nat table with $bin: $cur"
      return 1
    }
  fi
  if [ "$REMOVE" = 1 ]; then
    body=$(remove_lines "$cur")
    if [ -z "$body" ]; then
      [ "$DRY_RUN" = 1 ] && echo "# IPv$fam ($bin): no wisp rules, nothing to remove"
      [ "$DRY_RUN" = 1 ] || note "IPv$fam: no wisp rules in the nat table ($bin), nothing to remove"
      return 0
    fi
  else
    body=$(install_lines "$fam" "$cur")
  fi
  if [ "$DRY_RUN" = 1 ]; then
    echo "# IPv$fam, backend $BACKEND_USED"
    printf "%s -w 10 --noflush <<'EOF'\n*nat\n%s\nCOMMIT\nEOF\n" "$restore" "$body"
    return 0
  fi
  if ! err=$(printf '*nat\n%s\nCOMMIT\n' "$body" | "$restore" -w 10 --noflush 2>&1); then
    note "$restore failed, the IPv$fam nat table is unchanged: $err"
    return 1
  fi
  if [ "$REMOVE" = 1 ]; then
    note "IPv$fam: removed wisp's rules ($bin)"
  else
    local inb="inbound TCP to app ports ($IN_PORTS) -> $IN_PORT"
    [ "$IN_PORTS" != none ] || inb="no inbound redirect"
    note "IPv$fam: outbound TCP -> $OUT_PORT (not uid $PROXY_UID), $inb ($bin)"
  fi
}

if [ "$DRY_RUN" = 0 ] && ! have "$IPT"; then die "iptables not found: $IPT"; fi
if [ "$DRY_RUN" = 0 ] && ! have "$IPT-restore"; then die "iptables-restore not found: $IPT-restore"; fi

HAD4=0
wisp_chains "$IPT" && HAD4=1
apply 4 "$IPT" || exit 1

if [ "$IPV6" = 1 ]; then
  why=""
  if [ ! -e /proc/net/if_inet6 ]; then
    why="IPv6 is off in this kernel or namespace"
  elif ! have "$IP6T" || ! have "$IP6T-restore"; then
    why="$IP6T not found"
  elif [ "$DRY_RUN" = 0 ] && ! "$IP6T" -w 10 -t nat -S >/dev/null 2>&1; then
    why="$IP6T cannot use the nat table ($("$IP6T" -w 10 -t nat -S 2>&1 | head -1))"
  fi
  # IPv6 in use here (a global address) but not interceptable: its traffic
  # would bypass the mesh, and the proxy's probe (IPv4) could not tell.
  v6addr=""
  if [ -n "$why" ] && [ "$REMOVE" = 0 ] && [ "$DRY_RUN" = 0 ] && have ip; then
    v6addr=$(ip -6 -o addr show scope global 2>/dev/null | awk '{print $4; exit}')
  fi
  if [ -n "$v6addr" ]; then
    if [ "$HAD4" = 0 ]; then
      REMOVE=1
      apply 4 "$IPT" >/dev/null 2>&1 && note "IPv4 rules taken back out"
    fi
    die "this namespace has IPv6 address $v6addr but IPv6 cannot be intercepted ($why): its IPv6 traffic would bypass the mesh; make ip6tables' nat table usable, or pass --no-ipv6 to accept that"
  elif [ -n "$why" ]; then
    [ "$DRY_RUN" = 1 ] && echo "# IPv6 skipped: $why"
    [ "$DRY_RUN" = 1 ] || note "IPv6 skipped: $why"
  elif ! apply 6 "$IP6T"; then
    if [ "$REMOVE" = 0 ] && [ "$HAD4" = 0 ]; then
      # A first install is all or nothing: take the IPv4 rules back out.
      REMOVE=1
      apply 4 "$IPT" >/dev/null 2>&1 && note "IPv4 rules taken back out"
    elif [ "$DRY_RUN" = 0 ]; then
      note "the IPv4 nat table was changed, the IPv6 one was not"
    fi
    exit 1
  fi
fi
exit 0
