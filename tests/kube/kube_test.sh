#!/usr/bin/env bash
# Kubernetes for real, with podman: the image wisp/wisp:VERSION built by
# deploy/image/build.sh from the binaries under test, the shipped
# deploy/kubernetes manifests (agent with its admission webhook, policy) and
# example-app.yaml as the agent's webhook mutates it (AdmissionReviews
# posted to the agent pod as the API server would; each mutation checked
# against `wispctl inject`) run as pods with rootful `podman kube play` on
# a bridge network of the test's own (internal: no route off the machine).
# The sidecars bootstrap with service-account tokens minted by python3-jwt
# (podman projects none: the test provides the token file), verified by the
# agent against the issuer keys it is given.
# What podman runs differently from Kubernetes is adapted in
# podman_adapt.py, each change named there (PODMAN-n); the shipped
# manifests are not edited. Proven: the image is reproducible, small,
# labelled; the agent pod serves, hands out its bundle (podman exec) and
# answers AdmissionReviews over TLS; both sidecars get their SVIDs for
# service-account tokens; frontend's requests reach orders through both sidecars
# over mTLS, each logging the other's SPIFFE ID; wisp-init's interception
# is proven in both pods (/ready); the sidecar runs as 1337 on a read-only
# root; a capture on the bridge shows no plaintext, and the frontend ->
# orders flow is TLS records only; a container without a sidecar is refused (STRICT); a
# `wispctl apply` in the agent pod holds on the next request; a sidecar
# killed with its token gone comes back from its SVID cache.
# Everything made is named with a unique prefix (wispkt-PID) and removed at
# the end, also on failure; what a killed run left is removed by the next
# (tested with stand-ins for a killed run, a reused PID and a live run).
#   kube_test.sh [WISP_PROXY WISP_AGENT WISPCTL]
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
AGENT=$(wisp_find_bin wisp-agent "$@") || exit 1
WISPCTL=$(wisp_find_bin wispctl "$@") || exit 1
PATH=$PATH:/usr/sbin:/sbin
PY=/usr/bin/python3
HERE=$WISP_SRC/tests/kube
K8S=$WISP_SRC/deploy/kubernetes
VERSION=$(sed -n 's/^#define WISP_VERSION "\(.*\)"$/\1/p' "$WISP_SRC/lib/wisp_version.h")
TD=spiffe://cluster.local
KT=wispkt-$$ # every podman object of this run is named $KT-...
IMAGE=localhost/$KT-wisp:$VERSION
APPS=localhost/$KT-apps:1
NET=$KT-net

if [ "$SANITIZED" = 1 ]; then
  skip "pods with podman" "the image holds the optimized build; the plain run tests it"
  finish
fi
if [ "$(id -u)" != 0 ]; then
  skip "pods with podman" "rootful podman needs root (running as uid $(id -u))"
  finish
fi
if ! command -v podman >/dev/null 2>&1; then
  not_ok "podman is installed (deploy/install-deps.sh)" "podman not found"
  finish
fi
# podman 4.3 here: runc (crun refuses this host's hybrid cgroups), and
# ulimits its containers can have. A file of our own, not the machine's.
export CONTAINERS_CONF=$WORK/containers.conf
cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
EOF
pm() { podman "$@"; }

# ---- cleanup: only what carries our prefix ----
# A run's pidfile holds its PID and the process's start time (/proc/PID/stat
# field 22), so a PID reused by another process is not taken for the run.
RUNS=/run/wispkt
start_time() { [ -r "/proc/$1/stat" ] && sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f20; }
# run_alive PREFIX: the run that made wispkt-PID-* is still running. Without
# a pidfile (a checkout from before pidfiles), a live PID running kube_test.
run_alive() {
  local pid=${1#wispkt-} want
  if [ -f "$RUNS/$1.pid" ]; then
    read -r _ want <"$RUNS/$1.pid"
    [ -n "$want" ] && [ "$(start_time "$pid")" = "$want" ]
  else
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q kube_test
  fi
}
# The IP allocations of a network of ours under the CNI backend: podman
# 4.3's `network rm` leaves the directory.
cni_dir() { echo "/var/lib/cni/networks/$1-net"; }
# kube_cleanup [PREFIX]: every podman object named PREFIX-... (default ours),
# its CNI allocations, then its pidfile.
# Pods are stopped first: a stopped pod's containers are not restarted.
kube_cleanup() {
  local kt=${1:-$KT} i name
  [[ $kt =~ ^wispkt-[0-9]+$ ]] || return 0
  named() { grep -E "^$kt-" || true; }
  for i in 1 2 3 4 5 6 7 8 9 10; do
    [ -n "$(pm pod ls --format '{{.Name}}' 2>/dev/null | named)" ] || break
    for name in $(pm pod ls --format '{{.Name}}' 2>/dev/null | named); do
      pm pod stop -t 0 "$name" >/dev/null 2>&1
      pm pod rm -f -t 0 "$name" >/dev/null 2>&1
    done
    sleep 0.5
  done
  for name in $(pm ps -a --format '{{.Names}}' 2>/dev/null | named); do pm rm -f -t 0 "$name" >/dev/null 2>&1; done
  for name in $(pm volume ls --format '{{.Name}}' 2>/dev/null | named); do pm volume rm -f "$name" >/dev/null 2>&1; done
  for name in $(pm secret ls --format '{{.Name}}' 2>/dev/null | named); do pm secret rm "$name" >/dev/null 2>&1; done
  pm network exists "$kt-net" 2>/dev/null && pm network rm -f "$kt-net" >/dev/null 2>&1
  rm -rf "$(cni_dir "$kt")"
  for name in $(pm images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | sed 's|^localhost/||' | named); do
    pm rmi "localhost/$name" >/dev/null 2>&1
  done
  rm -f "$RUNS/$kt.pid"
  return 0
}
# all_names: the names of every podman object and CNI network directory.
all_names() {
  {
    pm pod ls --format '{{.Name}}'
    pm ps -a --format '{{.Names}}'
    pm volume ls --format '{{.Name}}'
    pm secret ls --format '{{.Name}}'
    pm network ls --format '{{.Name}}'
    pm images --format '{{.Repository}}' | sed 's|^localhost/||'
    ls /var/lib/cni/networks
  } 2>/dev/null
}
ours() { grep -E "^$KT-" || true; }
leftovers() { all_names | ours | tr '\n' ' '; }
eval "harness_cleanup() $(declare -f cleanup | tail -n +2)"
cleanup() {
  local kt
  for kt in $KT $FAKES; do kube_cleanup "$kt"; done
  harness_cleanup
}
trap 'exit 130' INT
trap 'exit 143' TERM

# remove_stale: what runs killed before their cleanup left (pods, containers,
# volumes, secrets, images, networks and their CNI allocations named
# wispkt-PID-...) goes. A run still alive (another checkout's) is left alone.
remove_stale() {
  local stale
  for stale in $(all_names | sed -n 's/^\(wispkt-[0-9]*\)-.*/\1/p' | sort -u); do
    [ "$stale" != "$KT" ] && ! run_alive "$stale" || continue
    echo "# removing what a killed run left: $stale-*"
    kube_cleanup "$stale"
  done
}
remove_stale
mkdir -p "$RUNS" && echo "$$ $(start_time $$)" >"$RUNS/$KT.pid"

# ---- podman runs here at all ----
if ! out=$(pm info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupsVersion}} {{.Host.NetworkBackend}}' 2>&1); then
  not_ok "podman runs here" "$out"
  finish
fi
echo "# podman $(pm version --format '{{.Client.Version}}'): runtime, cgroups, network: $out"

# ---- the image ----
build() { # build ARCHIVE: the image from the binaries under test
  WISP_REVISION=test WISP_IMAGE_SOURCE=https://example.invalid/wisp.git WISP_IMAGE_LICENSES=LicenseRef-test \
    SOURCE_DATE_EPOCH=1700000000 bash "$WISP_SRC/deploy/image/build.sh" --name "$IMAGE" \
    --proxy "$WISP_PROXY" --agent "$AGENT" --wispctl "$WISPCTL" --archive "$1"
}
out1=$(build "$WORK/wisp.tar" 2>&1)
expect_match "deploy/image/build.sh writes the image as an OCI archive" "^archive $WORK/wisp.tar" "$out1"
out2=$(build "$WORK/wisp2.tar" 2>&1)
d1=$(sed -n 's/^manifest //p' <<<"$out1")
expect_eq "built twice from the same tree: the same image digest ($d1)" "$d1" "$(sed -n 's/^manifest //p' <<<"$out2")"
expect_eq "... byte for byte the same archive" "$(sha256sum <"$WORK/wisp.tar")" "$(sha256sum <"$WORK/wisp2.tar")"
size=$(sed -n 's/^size \([0-9]*\) bytes (\([0-9]*\) gzipped).*/\1 \2/p' <<<"$out1")
if [ -n "$size" ] && [ "${size% *}" -lt $((20 * 1024 * 1024)) ]; then
  ok "the image is small: ${size% *} bytes, ${size#* } gzipped (under 20 MiB)"
else
  not_ok "the image is small (under 20 MiB)" "$size"
fi
expect_eq "the archive's OCI ref.name annotation is the tag alone (image-spec), the whole name in containerd's" \
  "$VERSION $IMAGE" "$(tar -xOf "$WORK/wisp.tar" index.json | "$PY" -c 'import json, sys
a = json.load(sys.stdin)["manifests"][0]["annotations"]
print(a["org.opencontainers.image.ref.name"], a["io.containerd.image.name"])')"
expect_eq "podman loads it, naming it $IMAGE" "Loaded image: $IMAGE" "$(pm load -q -i "$WORK/wisp.tar" 2>&1)"
IMAGE_S=$SECONDS
expect_eq "its labels say the version, the revision, the source and the licenses" \
  "$VERSION test https://example.invalid/wisp.git LicenseRef-test" \
  "$(pm image inspect "$IMAGE" --format '{{index .Labels "org.opencontainers.image.version"}} {{index .Labels "org.opencontainers.image.revision"}} {{index .Labels "org.opencontainers.image.source"}} {{index .Labels "org.opencontainers.image.licenses"}}')"
expect_eq "its default user is the proxy's, 1337" "1337:1337" "$(pm image inspect "$IMAGE" --format '{{.Config.User}}')"
# iptables in the image, both backends, with the modules the rules load,
# run as inject's wisp-init runs: its env, its read-only root (no tmpfs of
# podman's own on /run and /tmp) with a tmpfs for its emptyDir's mount.
"$WISPCTL" inject -f "$K8S/example-app.yaml" 2>/dev/null | "$PY" -c '
import sys, yaml
d = next(x for x in yaml.safe_load_all(sys.stdin) if x and x["kind"] == "Deployment")
c = next(c for c in d["spec"]["template"]["spec"]["initContainers"] if c["name"] == "wisp-init")
print("\n".join(["-e%s=%s" % (e["name"], e["value"]) for e in c["env"]] +
                ["--tmpfs=" + m["mountPath"] for m in c["volumeMounts"]] +
                ["--read-only", "--read-only-tmpfs=false"] * c["securityContext"]["readOnlyRootFilesystem"]))
' >"$WORK/init-run.args"
mapfile -t init_run <"$WORK/init-run.args"
expect_match "wisp-init's read-only root and lock file, as inject gives them" \
  '-eXTABLES_LOCKFILE=/tmp/xtables.lock.*--tmpfs=/tmp.*--read-only' "${init_run[*]}"
out=$(pm run --rm --pull never --network none --user 0 --cap-drop ALL --cap-add NET_ADMIN --cap-add NET_RAW \
  "${init_run[@]}" "$IMAGE" bash -c 'for b in legacy nft; do wisp-iptables.sh --backend $b --proxy-uid 1337 >/dev/null 2>&1 &&
  echo "$b $(iptables-$b -t nat -S 2>/dev/null | grep -c -- "-j WISP_REDIRECT")" \
    "$(ip6tables-$b -t nat -S 2>/dev/null | grep -c -- "-j WISP_REDIRECT")" &&
  wisp-iptables.sh --backend $b --remove >/dev/null 2>&1; done' 2>&1)
# IPv4: the probe's rule and the catch-all; IPv6: the catch-all.
expect_eq "in the image, as wisp-init, wisp-iptables.sh installs its rules with the legacy and the nft backend (IPv4, IPv6)" \
  "legacy 2 1;nft 2 1" "$(tr '\n' ';' <<<"$out" | sed 's/;$//')"

# ---- what killed runs left is removed, what live runs made is not ----
# Three runs stand in: one gone (its PID dead), one whose PID now belongs to
# another process (started later than its pidfile says), one alive. Each
# leaves what a run makes before its network: a volume, a secret, an
# image, and CNI allocations.
fake_run() { # fake_run PID START: objects of run wispkt-PID, its pidfile saying START
  local kt=wispkt-$1
  echo "$1 $2" >"$RUNS/$kt.pid"
  pm volume create "$kt-state" >/dev/null && echo s | pm secret create "$kt-token" - >/dev/null &&
    pm tag "$IMAGE" "localhost/$kt-wisp:$VERSION" && mkdir -p "$(cni_dir "$kt")"
}
fake_left() { # fake_left PID: what of run wispkt-PID is still there
  local kt=wispkt-$1
  all_names | grep -E "^$kt-" | sort | tr '\n' ' '
}
sleep 0 & gone=$!
gone_start=$(start_time $gone)
wait $gone
sleep 300 & reused=$!
sleep 300 & alive=$!
PIDS+=("$reused" "$alive")
FAKES="wispkt-$gone wispkt-$reused wispkt-$alive" # cleanup() removes them whatever happens
fake_run $gone "$gone_start" && fake_run $reused 1 && fake_run $alive "$(start_time $alive)" ||
  not_ok "stand-ins for killed and live runs are made"
all="wispkt-$alive-net wispkt-$alive-state wispkt-$alive-token wispkt-$alive-wisp "
expect_eq "a live run's volume, secret, image and CNI allocations are there" "$all" "$(fake_left $alive)"
remove_stale >/dev/null
expect_eq "the next run removes what a killed run left (volume, secret, image, CNI allocations)" "" "$(fake_left $gone)"
expect_eq "... and what a run left whose PID another process has now" "" "$(fake_left $reused)"
expect_eq "... but not what a live run made" "$all" "$(fake_left $alive)"
kill $reused $alive
wait $reused $alive 2>/dev/null
kube_cleanup "wispkt-$alive"

"$PY" "$HERE/apps_image.py" "$WORK/apps.tar" "$APPS" >/dev/null && pm load -q -i "$WORK/apps.tar" >/dev/null ||
  not_ok "the stand-in app image loads"

# ---- the network: a subnet nothing here uses, internal (no gateway, no NAT) ----
subnet_free() { # subnet_free A.B.C: no route, address or podman network covers it
  local routes
  routes=$(ip -4 route show match "$1.0/24" 2>/dev/null | grep -v '^default')
  [ -z "$routes" ] && ! ip -4 -o addr show | grep -q " $1\." &&
    ! pm network inspect $(pm network ls -q) --format '{{range .Subnets}}{{.Subnet}} {{end}}' 2>/dev/null |
      grep -q "$1\."
}
SUBNET=""
for i in $(seq 0 63); do
  cand=10.231.$((($$ + i) % 250 + 1))
  if subnet_free "$cand"; then
    SUBNET=$cand
    break
  fi
done
[ -n "$SUBNET" ] || {
  not_ok "a free /24 in 10.231.0.0/16 for the test's network"
  finish
}
AGENT_IP=$SUBNET.10
ORDERS_IP=$SUBNET.11
FRONTEND_IP=$SUBNET.12
BARE_IP=$SUBNET.13
check "a bridge network of our own, $SUBNET.0/24, internal" pm network create --internal --subnet "$SUBNET.0/24" "$NET"
BRIDGE=$(pm network inspect "$NET" --format '{{.NetworkInterface}}')

adapt() { "$PY" "$HERE/podman_adapt.py" --prefix "$KT" --image "wisp/wisp:$VERSION=$IMAGE" \
  --image "hashicorp/http-echo:1.0=$APPS" --image "curlimages/curl:8.5.0=$APPS" "$@"; }
play() { # play FILE IP...: podman kube play on our network with these pod IPs
  local f=$1 ips=()
  shift
  for ip in "$@"; do ips+=(--ip "$ip"); done
  pm kube play --network "$NET" "${ips[@]}" "$f" >"$f.out" 2>&1 || {
    sed 's/^/# /' "$f.out"
    return 1
  }
}
ctr() { echo "$KT-$1-pod-0-$2"; } # the container of Deployment $1 named $2
logs_match() { pm logs "$1" 2>&1 | grep -q -- "$2"; } # logs_match CONTAINER REGEX

# ---- the agent: wisp-agent.yaml and wisp-policy.yaml as shipped ----
# The service-account issuer's keys (openssl) for tokens minted by python3-jwt.
ISS=https://kubernetes.default.svc.cluster.local
ST=$WISP_SRC/tests/lib/sa_token.py
"$PY" "$ST" keys "$WORK/keys" || not_ok "issuer keys made with openssl"
A=$(ctr wisp-agent wisp-agent)
adapt --env "WISP_AGENT_SERVICE_HOST=$AGENT_IP" --sa-jwks "$WORK/keys/jwks.json" --sa-issuer "$ISS" \
  "$K8S/wisp-agent.yaml" "$K8S/wisp-policy.yaml" >"$WORK/agent.yaml"
check "the agent's manifests run as a pod" play "$WORK/agent.yaml" "$AGENT_IP"
check "the agent pod serves: wispctl status in it (its readiness probe's command)" \
  wait_for 20 pm exec "$A" wispctl --timeout 3s status
check "... and it made its CA in the state volume the image's owner lets it write" \
  logs_match "$A" 'generated a new root CA'
pm exec "$A" cat /var/lib/wisp/state/bundle.pem >"$WORK/bundle.pem"
check "the trust bundle comes out with podman exec ... cat" grep -q 'BEGIN CERTIFICATE' "$WORK/bundle.pem"
# kubectl cp runs `tar cf - FILE` in the container (no shell).
expect_eq "... and as kubectl cp takes it (tar in the image)" "$(cat "$WORK/bundle.pem")" \
  "$(pm exec "$A" tar cf - -C /var/lib/wisp/state bundle.pem 2>/dev/null | tar xOf - bundle.pem)"
check "the agent pod serves its admission webhook" \
  wait_for 20 logs_match "$A" 'admission webhook on 0.0.0.0:9443 for wisp-agent.wisp-system.svc: pods get a sidecar that dials https://'"$AGENT_IP"':8443'

# ---- the app: example-app.yaml as the agent's webhook mutates it ----
# Each Deployment's pod, in an AdmissionReview as the API server sends it,
# POSTed over TLS (the agent's bundle, the Service's name) to the agent
# pod by curl in a container on the test's network (the API server's
# place); the JSONPatch applied (python3-jsonpatch) and compared with what
# wispctl inject gives the same pod.
"$PY" - "$WORK" "$K8S/example-app.yaml" "$AGENT_IP" "$WISPCTL" "$WISP_SRC" "$NET" "$APPS" "$KT" \
  >"$WORK/mutated.yaml" 2>"$WORK/mutate.err" <<'PY'
import base64, json, subprocess, sys, yaml
import jsonpatch
work, app, ip, wispctl, src, net, apps, kt = sys.argv[1:]
sys.path.insert(0, src + "/tests/integration/webhook")
import review
docs = [d for d in yaml.safe_load_all(open(app)) if d]
for d in docs:
    if d["kind"] != "Deployment":
        continue
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": dict(d["spec"]["template"]["metadata"],
           generateName=d["metadata"]["name"] + "-"), "spec": d["spec"]["template"]["spec"]}
    path = "%s/%s.pod.yaml" % (work, d["metadata"]["name"])
    yaml.safe_dump(pod, open(path, "w"))
    r = review.make(path, ns=d["metadata"]["namespace"])
    json.dump(r, open(path + ".review", "w"))
    name = d["metadata"]["name"]
    out = subprocess.run(["podman", "run", "--rm", "--pull", "never", "--name", "%s-review-%s" % (kt, name),
                          "--network", net, "-v", work + ":/w:ro", "--entrypoint", "curl", apps,
                          "-sS", "--cacert", "/w/bundle.pem", "--resolve", "wisp-agent.wisp-system.svc:9443:" + ip,
                          "-H", "Content-Type: application/json", "--data-binary", "@/w/%s.pod.yaml.review" % name,
                          "https://wisp-agent.wisp-system.svc:9443/mutate"], capture_output=True)
    if out.returncode:
        sys.exit("curl: " + out.stderr.decode())
    resp = json.loads(out.stdout)["response"]
    assert resp["uid"] == r["request"]["uid"] and resp["allowed"] and resp["patchType"] == "JSONPatch", resp
    patched = jsonpatch.apply_patch(r["request"]["object"], json.loads(base64.b64decode(resp["patch"])))
    yaml.safe_dump(r["request"]["object"], open(path, "w"))
    want = yaml.safe_load(subprocess.run([wispctl, "inject", "--agent", "https://%s:8443" % ip, "--bundle-file",
                                          work + "/bundle.pem", "-f", path], capture_output=True, check=True).stdout)
    assert patched == want, "%s: the webhook's mutation differs from wispctl inject's" % d["metadata"]["name"]
    print("mutated", d["metadata"]["name"], file=sys.stderr)
    d["spec"]["template"]["metadata"] = patched["metadata"]
    d["spec"]["template"]["metadata"].pop("generateName")
    d["spec"]["template"]["metadata"].pop("namespace")
    d["spec"]["template"]["spec"] = patched["spec"]
yaml.safe_dump_all(docs, sys.stdout)
PY
check "the agent's webhook mutates orders and frontend exactly as wispctl inject would" \
  test "$(grep -c '^mutated' "$WORK/mutate.err")" = 2
sed 's/^/# /' "$WORK/mutate.err"
check "... giving each a sidecar that bootstraps with a projected service-account token" \
  grep -q -- '--sa-token-file' "$WORK/mutated.yaml"
reviews() { [ "$(pm logs "$A" 2>/dev/null | grep -c '"type":"admission".*"patched":"true"')" -ge 2 ]; }
check "the agent logged both reviews" wait_for 5 reviews
# The tokens the kubelet would project (audience wisp, an hour, bound to the pod), minted by python3-jwt.
for sa in orders frontend; do
  "$PY" "$ST" mint --keys "$WORK/keys" --ns shop --sa "$sa" --pod "$sa-0" --exp-in 3600 >"$WORK/$sa.sa-token"
done
adapt --host "orders=$ORDERS_IP" --sa-token "orders=$WORK/orders.sa-token" --sa-token "frontend=$WORK/frontend.sa-token" \
  "$WORK/mutated.yaml" >"$WORK/app.yaml"
check "the mutated orders and frontend run as pods" play "$WORK/app.yaml" "$ORDERS_IP" "$FRONTEND_IP"
OP=$(ctr orders wisp-proxy)
FP=$(ctr frontend wisp-proxy)
OA=$(ctr orders orders)
FA=$(ctr frontend frontend)
ready() { [ "$(pm exec "$1" curl -s --max-time 3 http://127.0.0.1:15000/ready)" = ready ]; }
# /ready asked from each pod's app container: loopback, as the kubelet's probe would see it.
check "orders' sidecar is ready: SVID from the agent pod, and wisp-init's interception proven" wait_for 20 ready "$OA"
check "frontend's sidecar is ready, interception proven likewise" wait_for 20 ready "$FA"
for sa in orders frontend; do
  check "the agent issued $sa's first SVID for its service-account token" \
    logs_match "$A" "\"type\":\"sign\",\"spiffe_id\":\"$TD/ns/shop/sa/$sa\",\"via\":\"service-account\""
done
for p in "$OP" "$FP"; do
  check "... $p logged the verified probe through its pod's rules" \
    logs_match "$p" '"type":"intercept","event":"verified"'
done
# What the manifest's securityContext promises, as seen inside the sidecar:
# its process (PID 1) runs as 1337:1337 with no capabilities, no privilege
# escalation and the runtime's seccomp filter, on a read-only root.
proc_status() { pm exec "$OP" cat /proc/1/status 2>/dev/null | awk -v k="$1:" '$1 == k {$1 = ""; print substr($0, 2)}'; }
expect_eq "orders' sidecar runs as uid 1337, gid 1337 (/proc/1/status in the container)" \
  "1337 1337 1337 1337;1337 1337 1337 1337" "$(proc_status Uid);$(proc_status Gid)"
expect_eq "... with no capabilities, no privilege escalation, a seccomp filter" "0000000000000000 1 2" \
  "$(proc_status CapEff) $(proc_status NoNewPrivs) $(proc_status Seccomp)"
expect_eq "... on a read-only root filesystem (/proc/1/mounts)" ro \
  "$(pm exec "$OP" cat /proc/1/mounts 2>/dev/null | awk '$2 == "/" {split($4, o, ","); print o[1]}' | tail -1)"

# ---- frontend -> orders over mTLS, seen on the bridge ----
# --immediate-mode: each packet is written as it comes (else what is still
# in the capture buffer when tcpdump is stopped is lost).
start_bg "$WORK/tcpdump" tcpdump -i "$BRIDGE" --immediate-mode -U -w "$WORK/wire.pcap" tcp
TCPDUMP=$LAST_PID
wait_for 10 grep -q 'listening on' "$WORK/tcpdump.err" || not_ok "tcpdump listens on the bridge $BRIDGE"
got=$(pm exec "$FA" curl -s --max-time 10 "http://orders:8080/?marker=plaintext-marker-4711")
expect_eq "frontend's app calls http://orders:8080 and orders' app answers" orders "$got"
check "frontend's own loop (its manifest's command) gets orders' answer too" \
  wait_for 15 logs_match "$FA" '^orders$'
segments() { # the data segments frontend sent to orders' app port, as captured
  tcpdump -r "$WORK/wire.pcap" -nn \
    "src $FRONTEND_IP and dst $ORDERS_IP and tcp dst port 8080 and tcp[tcpflags] & tcp-push != 0" 2>/dev/null | wc -l
}
seen() { [ "$(segments)" -gt 0 ]; }
wait_for 5 seen
kill -INT "$TCPDUMP"
wait "$TCPDUMP" 2>/dev/null
check "frontend's sidecar logs orders' SPIFFE ID for the call to orders' pod IP" \
  logs_match "$FP" "\"type\":\"request\",\"direction\":\"outbound\".*\"peer_id\":\"$TD/ns/shop/sa/orders\".*\"proto\":\"http/1.1\".*\"upstream\":\"$ORDERS_IP:8080\""
check "orders' sidecar logs frontend's SPIFFE ID and hands the call to the app's port" \
  logs_match "$OP" "\"type\":\"request\",\"direction\":\"inbound\".*\"peer_id\":\"$TD/ns/shop/sa/frontend\".*\"app_proto\":\"http/1.1\",\"upstream\":\"127.0.0.1:8080\""
n=$(segments)
if [ "$n" -gt 0 ]; then ok "the capture on the bridge saw frontend's data to orders' pod IP, port 8080 ($n segments)"
else not_ok "the capture on the bridge saw frontend's data to orders' pod IP, port 8080" "$(cat "$WORK/tcpdump.err")"; fi
if grep -aq 'plaintext-marker-4711\|GET /' "$WORK/wire.pcap"; then
  not_ok "the bridge carries not one byte of the request in clear"
else
  ok "the bridge carries not one byte of the request in clear"
fi
# The frontend -> orders flow alone (the sidecars' TLS to the agent is on
# the same bridge), its TCP payload reassembled per connection and walked
# record by record: every byte of it is a TLS record, and requests went as
# application data. A connection whose start the capture missed (the
# sidecar's pooled one) is walked from the first segment a record starts.
tcpdump -r "$WORK/wire.pcap" -w "$WORK/flow.pcap" "src $FRONTEND_IP and dst $ORDERS_IP and tcp dst port 8080" 2>/dev/null
tls=$("$PY" - "$WORK/flow.pcap" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
conns, off = {}, 24  # sport -> {"syn": bool, "segs": {seq: payload}}
while off + 16 <= len(data):
    caplen = struct.unpack(endian + "I", data[off + 8:off + 12])[0]
    pkt, off = data[off + 16:off + 16 + caplen], off + 16 + caplen
    ip = pkt[14:]  # Ethernet on the bridge
    if len(ip) < 20 or ip[0] >> 4 != 4:
        continue
    tcp = ip[(ip[0] & 15) * 4:struct.unpack(">H", ip[2:4])[0]]
    sport, _, seq = struct.unpack(">HHI", tcp[:8])
    c = conns.setdefault(sport, {"syn": False, "segs": {}})
    if tcp[13] & 2:
        c["syn"], c["isn"] = True, seq + 1
    payload = tcp[(tcp[12] >> 4) * 4:]
    if payload:
        c["segs"].setdefault(seq, payload)

def walk(b):
    """(handshake, application data) records if |b| is TLS records only (a partial last one allowed), else None."""
    i, hs, app = 0, 0, 0
    while i + 5 <= len(b):
        kind, ver, n = b[i], struct.unpack(">H", b[i + 1:i + 3])[0], struct.unpack(">H", b[i + 3:i + 5])[0]
        if kind not in (20, 21, 22, 23) or ver not in (0x0301, 0x0303) or n > 16384 + 256:
            return None
        hs, app, i = hs + (kind == 22), app + (kind == 23), i + 5 + n
    return hs, app

hs = app = bad = 0
for c in conns.values():
    segs = sorted(c["segs"].items())
    if not segs:
        continue  # ACKs only
    starts = [0] if c["syn"] else range(len(segs))
    for k in starts:
        stream, nxt = b"", segs[k][0] if segs else 0
        for seq, p in segs[k:]:
            if seq == nxt:
                stream, nxt = stream + p, nxt + len(p)
        r = walk(stream)
        if r:
            hs, app = hs + r[0], app + r[1]
            break
    else:
        bad += 1
print(len(conns), hs, app, bad)
PY
)
read -r conns hs app bad <<<"$tls"
if [ "${app:-0}" -gt 0 ] && [ "$bad" = 0 ]; then
  ok "... but TLS: frontend -> orders:8080 is TLS records only ($conns connections, $app application data records)"
else
  not_ok "... but TLS: frontend -> orders:8080 is TLS records only" "connections, handshake and application data records, connections not TLS: $tls"
fi

# ---- a container without a sidecar (plain HTTP to orders' pod IP) ----
out=$(pm run --rm --pull never --name "$KT-bare" --network "$NET" --ip "$BARE_IP" --entrypoint curl "$APPS" \
  -s --max-time 5 -o /dev/null -w '%{http_code}' "http://$ORDERS_IP:8080/" 2>&1)
expect_eq "STRICT: a container without a sidecar is refused" 000 "$out"
check "... and orders' sidecar logs why" wait_for 5 logs_match "$OP" 'plaintext callers are refused'

# ---- wispctl apply in the agent pod, enforced on the next request ----
applied() { logs_match "$OP" "\"type\":\"policy\",\"event\":\"applied\",\"source\":\"agent\",\"version\":\"$1\""; }
sed -e 's|sa/frontend"|sa/payments"|' "$K8S/wisp-policy.yaml" | "$PY" -c 'import sys, yaml; print(yaml.safe_load(sys.stdin)["data"]["shop.yaml"])' \
  >"$WORK/deny.yaml"
out=$(pm exec -i "$A" wispctl apply -f - <"$WORK/deny.yaml" 2>&1)
expect_eq "wispctl apply in the agent pod: only payments may call orders now" "applied version 2" "$out"
check "orders' sidecar applies version 2" wait_for 10 applied 2
got=$(pm exec "$FA" curl -s --max-time 5 -w ' %{http_code}' http://orders:8080/ 2>&1 | tr -d '\n')
expect_eq "the next request from frontend is refused (HTTP/1.1 is judged per request: 403 with the reason)" \
  "RBAC: access denied (no ALLOW rule matched) 403" "$got"
check "... by orders' sidecar, which says why" \
  wait_for 5 logs_match "$OP" "\"peer_id\":\"$TD/ns/shop/sa/frontend\".*\"decision\":\"deny\""
"$PY" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["data"]["shop.yaml"])' "$K8S/wisp-policy.yaml" |
  pm exec -i "$A" wispctl apply -f - >/dev/null 2>&1
check "the shipped policy applied again (version 3)" wait_for 10 applied 3
expect_eq "... and frontend is served again" orders "$(pm exec "$FA" curl -s --max-time 10 http://orders:8080/)"

# ---- a killed sidecar comes back from its SVID cache, its token gone ----
# The token's volume (PODMAN-15: a ConfigMap's named volume) is emptied on
# the host: a restart that needed the token would fail.
tokvol=$(pm volume inspect "$KT-sa-token-orders" --format '{{.Mountpoint}}')
: >"$tokvol/token"
pid=$(pm inspect "$OP" --format '{{.State.Pid}}')
before=$(pm inspect "$OP" --format '{{.RestartCount}}')
restarted() { [ "$(pm inspect "$OP" --format '{{.RestartCount}} {{.State.Status}}')" = "$((before + 1)) running" ]; }
renewed() { pm logs "$OP" 2>&1 | sed -n '/"event":"restored"/,$p' | grep -q '"type":"cert","event":"issued"'; }
kill -KILL "$pid"
check "orders' sidecar, killed (SIGKILL), is restarted" wait_for 20 restarted
check "... serves at once with the SVID from --svid-cache" wait_for 10 logs_match "$OP" \
  "\"type\":\"cert\",\"event\":\"restored\",\"spiffe_id\":\"$TD/ns/shop/sa/orders\".*from --svid-cache"
check "... and is ready" wait_for 20 ready "$OA"
expect_eq "... and frontend is served" orders "$(pm exec "$FA" curl -s --max-time 10 http://orders:8080/)"
# An SVID issued on a service-account token renews only with a current one
# (a stolen SVID key must not renew forever): refused while the file is
# empty, renewed once the kubelet's next token is there.
renew_refused() { pm logs "$OP" 2>&1 | sed -n '/"event":"restored"/,$p' | grep -q '"event":"sign_failed".*needs a current token'; }
check "... its renewal without the token is refused, saying a current token is needed" wait_for 20 renew_refused
"$PY" "$ST" mint --keys "$WORK/keys" --ns shop --sa orders --pod orders-0 --exp-in 3600 >"$tokvol/token"
check "... and it renews over mTLS once the next token is in the file" wait_for 40 renewed

status_lists() { pm exec "$A" wispctl status 2>&1 | grep -q "sa/frontend" && pm exec "$A" wispctl status 2>&1 | grep -q "sa/orders"; }
check "wispctl status in the agent pod lists both sidecars" status_lists

kube_cleanup
expect_eq "nothing of ours is left in podman" "" "$(leftovers)"
echo "# took ${SECONDS} s (the image built twice and loaded: ${IMAGE_S:-?} s)"
finish
