#!/usr/bin/env bash
# wispctl inject -f MANIFEST, its output read back by a real YAML parser
# (Debian's python3-yaml): wisp-init and wisp-proxy (a native sidecar) first
# among the init containers of every workload kind, their args, env,
# volumes, probes and security contexts, the pod's wisp.dev/ annotations,
# what is left alone and why, idempotency, errors and exit codes.
# Then what Kubernetes would run, run here with the real binaries: wisp-init's
# args through deploy/wisp-iptables.sh --dry-run, the agent Deployment of
# deploy/kubernetes with its policy ConfigMap, and the injected wisp-proxy
# command until it holds an SVID (volume mounts mapped to local directories
# and $(VAR)s expanded, as the kubelet does; the listeners moved to free
# loopback ports): without wisp-init's rules its /ready fails closed, and
# with the interception probe off it is ready. There is no Kubernetes
# cluster here: the manifests are checked this way, not applied.
#   wispctl_inject_test.sh [WISPCTL [WISP_AGENT [WISP_PROXY]]]
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISPCTL=$(wisp_find_bin wispctl "$@") || exit 1
AGENT=$(wisp_find_bin wisp-agent "$@") || exit 1
WISP_PROXY=$(wisp_find_proxy "$@") || exit 1
unset WISP_AGENT
K8S=$WISP_SRC/deploy/kubernetes
APP=$K8S/example-app.yaml
VERSION=$(sed -n 's/^#define WISP_VERSION "\(.*\)"$/\1/p' "$WISP_SRC/lib/wisp_version.h")
IN=$WORK/in
mkdir -p "$IN"
# Debian's python3 with python3-yaml: a python3 earlier on PATH (pyenv) may
# not have yaml.
PY=/usr/bin/python3
if ! "$PY" -c 'import yaml' 2>/dev/null; then
  not_ok "python3-yaml is installed (deploy/install-deps.sh)" "$PY cannot import yaml"
  finish
fi

# q FILE EXPR: the Python expression EXPR over the YAML documents of FILE
# (docs), printed as compact JSON with sorted keys (a string as it is; with
# Q_LINES=1 a list one item a line). src: the documents of $SRC. Helpers:
# kind(K) / named(K, N) a document, tmpl(d) a workload's pod (template),
# spec(d) its pod spec, ctr(d, N) its container or init container N,
# inits(d) its init containers' names, ann(d) its pod annotations,
# uninject(d) d without what inject adds (and without empty lists).
q() {
  "$PY" - "$@" <<'PY'
import copy, json, os, sys, yaml

def load(path):
    with open(path) as f:
        return list(yaml.safe_load_all(f))

docs = load(sys.argv[1])
src = load(os.environ["SRC"]) if os.environ.get("SRC") else None
TEMPLATE = {"Pod": [], "CronJob": ["spec", "jobTemplate", "spec", "template"]}
WORKLOADS = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")
CLUSTER_SCOPED = ("Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration")

def kind(k, ds=None):
    return next(d for d in (ds or docs) if d and d.get("kind") == k)

def named(k, n, ds=None):
    return next(d for d in (ds or docs) if d and d.get("kind") == k and d["metadata"]["name"] == n)

def tmpl(d):
    for key in TEMPLATE.get(d["kind"], ["spec", "template"]):
        d = d[key]
    return d

def spec(d):
    return tmpl(d)["spec"]

def ctr(d, n):
    return next(c for c in spec(d).get("initContainers", []) + spec(d)["containers"] if c["name"] == n)

def inits(d):
    return [c["name"] for c in spec(d).get("initContainers", [])]

def ann(d):
    return (tmpl(d).get("metadata") or {}).get("annotations") or {}

def uninject(d):
    d = copy.deepcopy(d)
    if not d or d.get("kind") not in WORKLOADS:
        return d
    t, s = tmpl(d), spec(d)
    for key in ("initContainers", "volumes"):
        s[key] = [x for x in s.get(key, []) if not x["name"].startswith("wisp-")]
        if not s[key]:
            del s[key]
    for a in ("wisp.dev/injected", "prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path"):
        (t.get("metadata") or {}).get("annotations", {}).pop(a, None)
    if t.get("metadata", {}).get("annotations") == {}:
        del t["metadata"]["annotations"]
    if t.get("metadata") == {}:
        del t["metadata"]
    return d

def size(v):
    """Bytes of a Kubernetes quantity (128Mi) or a wisp size (64M, 16MiB)."""
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30,
             "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
    for u in sorted(units, key=len, reverse=True):
        if v.endswith(u):
            return int(v[:-len(u)]) * units[u]
    return int(v)

def kubelet(d, name, volumes, env, extra=()):
    """The command line container |name| runs: mounts at the local dirs of
    |volumes| (volume name -> dir), $(VAR) from |env|, then |extra|."""
    c = ctr(d, name)
    mounts = sorted(c.get("volumeMounts", []), key=lambda m: -len(m["mountPath"]))
    out = []
    for a in c["command"] + c.get("args", []):
        for m in mounts:
            a = a.replace(m["mountPath"], volumes[m["name"]])
        for k, v in env.items():
            a = a.replace("$(%s)" % k, v)
        out.append(a)
    return out + list(extra)

v = eval(sys.argv[2])
if os.environ.get("Q_LINES") == "1" and isinstance(v, list):
    print("\n".join(v))
elif isinstance(v, str):
    print(v)
else:
    print(json.dumps(v, sort_keys=True, separators=(",", ":")))
PY
}
# expect_q NAME FILE WANT_EXPR GOT_EXPR: both through q, compared.
expect_q() { expect_eq "$1" "$(q "$2" "$3")" "$(q "$2" "$4")"; }

# inject NAME ARGS...: wispctl inject ARGS; stdout in $WORK/NAME.yaml, its
# stderr in $ERR, the exit status in $RC. With --identity join-token unless
# ARGS name one: most checks here were written for join tokens; the default
# (sa-token) has its own section. Every output is checked against the
# Kubernetes schema at the end.
OUTPUTS=()
inject() {
  local name=$1 id=(--identity join-token)
  shift
  case " $* " in *" --identity "*) id=() ;; esac
  "$WISPCTL" inject "${id[@]}" "$@" >"$WORK/$name.yaml" 2>"$WORK/$name.err"
  RC=$?
  ERR=$(cat "$WORK/$name.err")
  [ "$RC" != 0 ] || OUTPUTS+=("$name")
}
# empty_stdout NAME: the run NAME printed nothing.
empty_stdout() { [ ! -s "$WORK/$1.yaml" ]; }

# ---- the example app, agent on the node's socket (the default) ----
export SRC=$APP
inject app -f "$APP"
OUT=$WORK/app.yaml
FRONT='named("Deployment", "frontend")'
ORDERS='named("Deployment", "orders")'
expect_eq "example app: exit 0" 0 "$RC"
expect_eq "frontend: wisp-init, then wisp-proxy, then its own init container" \
  '["wisp-init","wisp-proxy","wait-for-orders"]' "$(q "$OUT" "inits($FRONT)")"
expect_eq "orders (had none): wisp-init, wisp-proxy" '["wisp-init","wisp-proxy"]' "$(q "$OUT" "inits($ORDERS)")"
expect_eq "wisp-proxy is a native sidecar (restartPolicy: Always)" Always \
  "$(q "$OUT" "ctr($FRONT, 'wisp-proxy')['restartPolicy']")"
expect_eq "wisp-init is an ordinary init container" null \
  "$(q "$OUT" "ctr($FRONT, 'wisp-init').get('restartPolicy')")"
expect_q "the app containers are untouched" "$OUT" "[spec(d)['containers'] for d in src if d['kind'] == 'Deployment']" \
  "[spec(d)['containers'] for d in docs if d['kind'] == 'Deployment']"
expect_q "the Service passes through unchanged" "$OUT" "kind('Service', src)" "kind('Service')"
expect_q "every document is as it was but for what inject adds" "$OUT" "[uninject(d) for d in src]" \
  "[uninject(d) for d in docs]"
expect_eq "wisp-proxy runs wisp-proxy" '["wisp-proxy"]' "$(q "$OUT" "ctr($FRONT, 'wisp-proxy')['command']")"
expect_eq "wisp-proxy's args: transparent, the node's agent socket, the pod's SPIFFE ID, token, SVID cache, admin" \
  '["--transparent","--agent","unix:///run/wisp/agent.sock","--spiffe-id","spiffe://cluster.local/ns/$(WISP_POD_NAMESPACE)/sa/$(WISP_POD_SERVICE_ACCOUNT)","--join-token-file","/var/run/secrets/wisp/join/token","--svid-cache","/var/run/wisp/cache/svid","--admin","0.0.0.0:15000","--metrics","0.0.0.0:15090","--buffer-limit","64M","--max-connections","1024"]' \
  "$(q "$OUT" "ctr($FRONT, 'wisp-proxy')['args']")"
expect_eq "... from env by the downward API" \
  '{"WISP_POD_NAMESPACE":"metadata.namespace","WISP_POD_SERVICE_ACCOUNT":"spec.serviceAccountName"}' \
  "$(q "$OUT" "{e['name']: e['valueFrom']['fieldRef']['fieldPath'] for e in ctr($FRONT, 'wisp-proxy')['env']}")"
expect_eq "every arg is a string (Kubernetes wants []string)" true \
  "$(q "$OUT" "all(isinstance(a, str) for d in docs if d['kind'] == 'Deployment' for n in ('wisp-init', 'wisp-proxy') for a in ctr(d, n)['args'])")"
expect_q "volumes: the service account's join token Secret, the node's agent socket dir, a memory emptyDir for the SVID cache" "$OUT" \
  "[{'name': 'wisp-join-token', 'secret': {'secretName': 'wisp-join-frontend', 'items': [{'key': 'token', 'path': 'token'}]}},
    {'name': 'wisp-agent-socket', 'hostPath': {'path': '/run/wisp', 'type': 'Directory'}},
    {'name': 'wisp-svid-cache', 'emptyDir': {'medium': 'Memory', 'sizeLimit': '1Mi'}},
    {'name': 'wisp-init-tmp', 'emptyDir': {'medium': 'Memory', 'sizeLimit': '1Mi'}}]" \
  "spec($FRONT)['volumes']"
expect_q "... mounted in wisp-proxy, read-only but for the cache" "$OUT" \
  "[{'name': 'wisp-join-token', 'mountPath': '/var/run/secrets/wisp/join', 'readOnly': True},
    {'name': 'wisp-agent-socket', 'mountPath': '/run/wisp', 'readOnly': True},
    {'name': 'wisp-svid-cache', 'mountPath': '/var/run/wisp/cache'}]" \
  "ctr($FRONT, 'wisp-proxy')['volumeMounts']"
expect_eq "probes: startup and readiness on /ready, liveness on /healthz, admin port 15000" \
  '{"livenessProbe":["/healthz",15000],"readinessProbe":["/ready",15000],"startupProbe":["/ready",15000]}' \
  "$(q "$OUT" "{k: [p['httpGet']['path'], p['httpGet']['port']] for k, p in ctr($FRONT, 'wisp-proxy').items() if k.endswith('Probe')}")"
expect_eq "... which wisp-proxy exposes, with the metrics port" '[["wisp-admin",15000],["wisp-metrics",15090]]' \
  "$(q "$OUT" "[[p['name'], p['containerPort']] for p in ctr($FRONT, 'wisp-proxy')['ports']]")"
expect_eq "Prometheus' pod discovery annotations: scrape port 15090, path /metrics" \
  '{"prometheus.io/path":"/metrics","prometheus.io/port":"15090","prometheus.io/scrape":"true"}' \
  "$(q "$OUT" "{k: v for k, v in ann($FRONT).items() if k.startswith('prometheus.io/')}")"
expect_q "wisp-proxy: uid 1337, non-root, read-only root, no capabilities, no escalation" "$OUT" \
  "{'runAsUser': 1337, 'runAsGroup': 1337, 'runAsNonRoot': True, 'readOnlyRootFilesystem': True,
    'allowPrivilegeEscalation': False, 'capabilities': {'drop': ['ALL']}, 'seccompProfile': {'type': 'RuntimeDefault'}}" \
  "ctr($FRONT, 'wisp-proxy')['securityContext']"
expect_q "wisp-init: root with NET_ADMIN and NET_RAW only, no escalation, read-only root, the runtime's seccomp filter" "$OUT" \
  "{'runAsUser': 0, 'runAsNonRoot': False, 'readOnlyRootFilesystem': True, 'allowPrivilegeEscalation': False,
    'capabilities': {'add': ['NET_ADMIN', 'NET_RAW'], 'drop': ['ALL']}, 'seccompProfile': {'type': 'RuntimeDefault'}}" \
  "ctr($FRONT, 'wisp-init')['securityContext']"
expect_q "... its xtables lock (iptables-legacy) and TMPDIR on the wisp-init-tmp emptyDir" "$OUT" \
  "[[{'name': 'XTABLES_LOCKFILE', 'value': '/tmp/xtables.lock'}, {'name': 'TMPDIR', 'value': '/tmp'}],
    [{'name': 'wisp-init-tmp', 'mountPath': '/tmp'}]]" \
  "[ctr($FRONT, 'wisp-init')['env'], ctr($FRONT, 'wisp-init')['volumeMounts']]"
expect_eq "wisp-init runs wisp-iptables.sh for proxy uid 1337" '["wisp-iptables.sh","--proxy-uid","1337"]' \
  "$(q "$OUT" "ctr($FRONT, 'wisp-init')['command'] + ctr($FRONT, 'wisp-init')['args']")"
expect_eq "... and orders' wisp.dev/inbound-ports annotation becomes --inbound-ports" \
  '["--proxy-uid","1337","--inbound-ports","8080"]' "$(q "$OUT" "ctr($ORDERS, 'wisp-init')['args']")"
expect_q "modest resources for wisp-proxy" "$OUT" \
  "{'requests': {'cpu': '10m', 'memory': '16Mi'}, 'limits': {'cpu': '1', 'memory': '256Mi'}}" \
  "ctr($FRONT, 'wisp-proxy')['resources']"
# What the sidecar's bounds let callers make it hold fits its memory limit:
# idle RSS (8 MiB), --buffer-limit, 2 listeners x --max-connections x 27 KB,
# with a quarter of the limit to spare (inject_pod.c says the arithmetic).
# The proxy's defaults (256M, 4096) would not fit.
budget=$(q "$OUT" "(lambda c: (lambda a: [size(a['--buffer-limit']), int(a['--max-connections']),
  size(c['resources']['limits']['memory'])])(dict(zip(c['args'][:-1], c['args'][1:]))))(ctr($FRONT, 'wisp-proxy'))")
read -r buffer conns limit < <(tr -d '[]' <<<"$budget" | tr ',' ' ')
expect_eq "wisp-proxy's --buffer-limit ($buffer) is below its memory limit ($limit)" true \
  "$([ "${buffer:-0}" -gt 0 ] && [ "$buffer" -lt "${limit:-0}" ] && echo true)"
need=$((8 * 1024 * 1024 + buffer + 2 * conns * 27000))
expect_eq "... and with the base and 2 x --max-connections $conns x 27 KB ($need bytes) under 3/4 of it" true \
  "$([ "$need" -lt $((limit * 3 / 4)) ] && echo true)"
expect_eq "image wisp/wisp:$VERSION for both" "[\"wisp/wisp:$VERSION\",\"wisp/wisp:$VERSION\"]" \
  "$(q "$OUT" "[ctr($FRONT, n)['image'] for n in ('wisp-init', 'wisp-proxy')]")"
expect_eq "pod template annotated wisp.dev/injected: \"$VERSION\"" "[\"$VERSION\",\"$VERSION\"]" \
  "$(q "$OUT" "[ann(d)['wisp.dev/injected'] for d in docs if d['kind'] == 'Deployment']")"
expect_match "stderr: a note per workload injected" 'wispctl: inject: document 6 \(Deployment "frontend"\): injected' "$ERR"
expect_match "... and per document passed through" \
  'wispctl: inject: document 5 \(Service "orders"\): not a workload, passed through unchanged' "$ERR"

inject again -f "$OUT"
expect_eq "inject of its own output: exit 0" 0 "$RC"
check "... gives the same output, byte for byte (idempotent)" cmp -s "$OUT" "$WORK/again.yaml"
expect_match "... saying why" 'document 4 \(Deployment "orders"\): already injected \(it has a wisp-proxy container\)' "$ERR"
"$WISPCTL" inject --identity join-token -f - <"$APP" >"$WORK/stdin.yaml" 2>/dev/null
check "-f - reads stdin" cmp -s "$OUT" "$WORK/stdin.yaml"

# ---- the default identity: a projected service-account token ----
inject sa -f "$APP" --identity sa-token
expect_eq "default identity: exit 0" 0 "$RC"
"$WISPCTL" inject -f "$APP" >"$WORK/sa-default.yaml" 2>/dev/null
check "... and it is the default (no --identity)" cmp -s "$WORK/sa.yaml" "$WORK/sa-default.yaml"
expect_eq "wisp-proxy bootstraps with --sa-token-file" \
  '["--transparent","--agent","unix:///run/wisp/agent.sock","--spiffe-id","spiffe://cluster.local/ns/$(WISP_POD_NAMESPACE)/sa/$(WISP_POD_SERVICE_ACCOUNT)","--sa-token-file","/var/run/secrets/wisp/sa/token","--svid-cache","/var/run/wisp/cache/svid","--admin","0.0.0.0:15000","--metrics","0.0.0.0:15090","--buffer-limit","64M","--max-connections","1024"]' \
  "$(q "$WORK/sa.yaml" "ctr($FRONT, 'wisp-proxy')['args']")"
expect_q "volumes: a projected token (audience wisp, 600 s), no join token Secret" "$WORK/sa.yaml" \
  "[{'name': 'wisp-sa-token', 'projected': {'sources': [{'serviceAccountToken': {'audience': 'wisp', 'expirationSeconds': 600, 'path': 'token'}}]}},
    {'name': 'wisp-agent-socket', 'hostPath': {'path': '/run/wisp', 'type': 'Directory'}},
    {'name': 'wisp-svid-cache', 'emptyDir': {'medium': 'Memory', 'sizeLimit': '1Mi'}},
    {'name': 'wisp-init-tmp', 'emptyDir': {'medium': 'Memory', 'sizeLimit': '1Mi'}}]" \
  "spec($FRONT)['volumes']"
expect_eq "... mounted read-only at /var/run/secrets/wisp/sa" \
  '{"mountPath":"/var/run/secrets/wisp/sa","name":"wisp-sa-token","readOnly":true}' \
  "$(q "$WORK/sa.yaml" "ctr($FRONT, 'wisp-proxy')['volumeMounts'][0]")"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bundle -days 1 \
  -keyout "$WORK/b.key" -out "$WORK/b.pem" 2>/dev/null
inject sa-bundle -f "$APP" --agent https://10.96.0.10:8443 --bundle-file "$WORK/b.pem"
expect_eq "--bundle-file: the bundle in the pod's annotation wisp.dev/trust-bundle" "$(cat "$WORK/b.pem")" \
  "$(q "$WORK/sa-bundle.yaml" "ann($FRONT)['wisp.dev/trust-bundle'].strip()")"
expect_q "... read by a downward API volume (no ConfigMap per namespace)" "$WORK/sa-bundle.yaml" \
  "{'name': 'wisp-trust-bundle', 'downwardAPI': {'items': [{'path': 'bundle.pem', 'fieldRef': {'fieldPath': \"metadata.annotations['wisp.dev/trust-bundle']\"}}]}}" \
  "spec($FRONT)['volumes'][1]"
echo "not a certificate" >"$WORK/nb.pem"
inject sa-nobundle -f "$APP" --agent https://10.96.0.10:8443 --bundle-file "$WORK/nb.pem"
expect_match "a --bundle-file without certificates: exit 2" '^2:.*trust bundle is not PEM certificates' "$RC:$ERR"
inject sa-badid -f "$APP" --identity password
expect_match "a bad --identity: exit 2" '^2:.*--identity password: want sa-token or join-token' "$RC:$ERR"

# ---- every workload kind, the agent over https, flags, annotations ----
cat >"$IN/kinds.yaml" <<'EOF'
# a comment, and flow style: any valid YAML
apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations:
    wisp.dev/exclude-outbound-ports: "5432,6379"
    wisp.dev/exclude-outbound-cidrs: "192.168.0.0/16,fd00::/8"
    wisp.dev/exclude-inbound-ports: "9090"
    wisp.dev/inbound-ports: "8080,8443"
spec: {containers: [{name: web, image: "web:1", ports: [{containerPort: 8080}]}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      serviceAccountName: db
      initContainers: []
      volumes: [{name: data, emptyDir: {}}]
      containers: [{name: db, image: "db:1"}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: logs}
spec:
  selector: {matchLabels: {app: logs}}
  template:
    metadata: {labels: {app: logs}, annotations: {team: ops, prometheus.io/scrape: "false", prometheus.io/port: "9102"}}
    spec: {containers: [{name: logs, image: "logs:1"}]}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec:
  selector: {matchLabels: {app: rs}}
  template:
    metadata: {labels: {app: rs}}
    spec: {containers: [{name: rs, image: "rs:1"}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec: {restartPolicy: Never, containers: [{name: once, image: "job:1"}]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec: {restartPolicy: OnFailure, containers: [{name: nightly, image: "job:1"}]}
---
apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: listed}
  spec:
    selector: {matchLabels: {app: listed}}
    template:
      metadata: {labels: {app: listed}}
      spec: {containers: [{name: listed, image: "listed:1"}]}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: listed-config}
  data: {a: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data:
  port: "8080"
  script: |
    #!/bin/sh
    echo hi
---
apiVersion: v1
kind: Pod
metadata: {name: node-agent}
spec:
  hostNetwork: true
  containers: [{name: agent, image: "agent:1"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: legacy}
spec:
  selector: {matchLabels: {app: legacy}}
  template:
    metadata:
      labels: {app: legacy}
      annotations: {wisp.dev/inject: disabled}
    spec: {containers: [{name: legacy, image: "legacy:1"}]}
EOF
export SRC=$IN/kinds.yaml
inject kinds -f "$SRC" --agent https://10.96.0.10:8443 --trust-domain shop.local --proxy-uid 2102 \
  --image registry.local/wisp:test
OUT=$WORK/kinds.yaml
expect_eq "every kind, --agent https://, --trust-domain, --proxy-uid, --image: exit 0" 0 "$RC"
expect_eq "Pod, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob and a List's Deployment all get wisp-init, wisp-proxy" \
  '[["Pod","wisp-init","wisp-proxy"],["StatefulSet","wisp-init","wisp-proxy"],["DaemonSet","wisp-init","wisp-proxy"],["ReplicaSet","wisp-init","wisp-proxy"],["Job","wisp-init","wisp-proxy"],["CronJob","wisp-init","wisp-proxy"],["Deployment","wisp-init","wisp-proxy"]]' \
  "$(q "$OUT" "[[d['kind']] + inits(d)[:2] for d in docs[:6] + [docs[6]['items'][0]]]")"
expect_eq "... and each is annotated (the CronJob's pod template got metadata)" \
  "$(q "$OUT" "['$VERSION'] * 7")" "$(q "$OUT" "[ann(d).get('wisp.dev/injected') for d in docs[:6] + [docs[6]['items'][0]]]")"
check "the Pod's spec, flow style in the input, is written in block style with what was added" \
  grep -qx '  - name: wisp-init' "$OUT"
expect_eq "the DaemonSet's own annotations stay" ops "$(q "$OUT" "ann(kind('DaemonSet'))['team']")"
expect_eq "... and its own prometheus.io/ scrape settings win (the app scrapes its own metrics)" \
  '{"prometheus.io/port":"9102","prometheus.io/scrape":"false"}' \
  "$(q "$OUT" "{k: v for k, v in ann(kind('DaemonSet')).items() if k.startswith('prometheus.io/')}")"
expect_eq "the StatefulSet's own volume stays first" '["data","wisp-join-token","wisp-trust-bundle","wisp-svid-cache","wisp-init-tmp"]' \
  "$(q "$OUT" "[v['name'] for v in spec(kind('StatefulSet'))['volumes']]")"
expect_eq "the Pod's annotations become wisp-init's exclusions, after the agent's address" \
  '["--proxy-uid","2102","--exclude-outbound-cidrs","10.96.0.10,192.168.0.0/16,fd00::/8","--exclude-outbound-ports","5432,6379","--exclude-inbound-ports","9090","--inbound-ports","8080,8443"]' \
  "$(q "$OUT" "ctr(kind('Pod'), 'wisp-init')['args']")"
expect_eq "without annotations: only the agent's address is excluded" \
  '["--proxy-uid","2102","--exclude-outbound-cidrs","10.96.0.10"]' "$(q "$OUT" "ctr(kind('Job'), 'wisp-init')['args']")"
expect_eq "wisp-proxy over https: --bundle from the trust bundle ConfigMap, the trust domain given" \
  '["--transparent","--agent","https://10.96.0.10:8443","--bundle","/var/run/wisp/bundle/bundle.pem","--spiffe-id","spiffe://shop.local/ns/$(WISP_POD_NAMESPACE)/sa/$(WISP_POD_SERVICE_ACCOUNT)","--join-token-file","/var/run/secrets/wisp/join/token","--svid-cache","/var/run/wisp/cache/svid","--admin","0.0.0.0:15000","--metrics","0.0.0.0:15090","--buffer-limit","64M","--max-connections","1024"]' \
  "$(q "$OUT" "ctr(kind('CronJob'), 'wisp-proxy')['args']")"
expect_q "volumes: the token of service account default (none named), the wisp-trust-bundle ConfigMap" "$OUT" \
  "[{'name': 'wisp-join-token', 'secret': {'secretName': 'wisp-join-default', 'items': [{'key': 'token', 'path': 'token'}]}},
    {'name': 'wisp-trust-bundle', 'configMap': {'name': 'wisp-trust-bundle', 'items': [{'key': 'bundle.pem', 'path': 'bundle.pem'}]}},
    {'name': 'wisp-svid-cache', 'emptyDir': {'medium': 'Memory', 'sizeLimit': '1Mi'}},
    {'name': 'wisp-init-tmp', 'emptyDir': {'medium': 'Memory', 'sizeLimit': '1Mi'}}]" \
  "spec(kind('Pod'))['volumes']"
expect_eq "the token Secret follows serviceAccountName" wisp-join-db \
  "$(q "$OUT" "spec(kind('StatefulSet'))['volumes'][1]['secret']['secretName']")"
expect_eq "--proxy-uid: wisp-proxy runs as it" '[2102,2102]' \
  "$(q "$OUT" "[ctr(kind('Pod'), 'wisp-proxy')['securityContext'][k] for k in ('runAsUser', 'runAsGroup')]")"
expect_eq "--image: both containers" '["registry.local/wisp:test","registry.local/wisp:test"]' \
  "$(q "$OUT" "[ctr(kind('Pod'), n)['image'] for n in ('wisp-init', 'wisp-proxy')]")"
expect_q "the ConfigMaps, the hostNetwork Pod and the opted-out Deployment are unchanged" "$OUT" \
  "[docs[6]['items'][1]] + docs[7:]" "[src[6]['items'][1]] + src[7:]"
unlist='[dict(d, items=[uninject(i) for i in d["items"]]) if d["kind"] == "List" else uninject(d) for d in'
expect_q "everything is as it was but for what inject adds" "$OUT" "$unlist src]" "$unlist docs]"
expect_match "stderr: the hostNetwork pod is left alone, saying why" \
  'document 9 \(Pod "node-agent"\): hostNetwork: true, left unchanged: the pod shares the node.s network namespace' "$ERR"
expect_match "... the opted-out one" 'document 10 \(Deployment "legacy"\): annotation wisp.dev/inject: disabled, left unchanged' "$ERR"
expect_match "... List items are named" 'document 7, item 2 \(ConfigMap "listed-config"\): not a workload' "$ERR"
inject kinds-again -f "$OUT" --agent https://10.96.0.10:8443 --trust-domain shop.local --proxy-uid 2102 \
  --image registry.local/wisp:test
check "idempotent here too (flow style, a List, a literal block)" cmp -s "$OUT" "$WORK/kinds-again.yaml"

# ---- wisp-init's args through the real wisp-iptables.sh --dry-run ----
# In a network namespace of its own, so that not even the reading touches
# this machine's tables.
dry_run() { # dry_run FILE EXPR: the args EXPR gives, to the script
  local args
  mapfile -t args < <(Q_LINES=1 q "$1" "$2")
  unshare --net bash "$WISP_SRC/deploy/wisp-iptables.sh" "${args[@]}" --dry-run 2>&1
}
if [ "$(id -u)" = 0 ] && unshare --net true 2>/dev/null; then
  out=$(dry_run "$WORK/kinds.yaml" "ctr(kind('Pod'), 'wisp-init')['args']")
  rc=$?
  expect_eq "wisp-iptables.sh --dry-run accepts the Pod's wisp-init args" 0 "$rc"
  expect_match "... leaves the proxy's uid alone" 'WISP_OUTPUT -m owner --uid-owner 2102 -j RETURN' "$out"
  expect_match "... and the agent's address" 'WISP_OUTPUT -d 10.96.0.10/32 -j RETURN' "$out"
  expect_match "... and the excluded ports" 'WISP_OUTPUT -p tcp -m tcp --dport 6379 -j RETURN' "$out"
  expect_match "... and redirects the inbound ports listed" 'WISP_PREROUTING -p tcp -m tcp --dport 8443 -j WISP_INBOUND_REDIRECT' "$out"
  expect_match "... and the probe that wisp-proxy's /ready dials (both defaults: 127.0.0.77:15009)" \
    'WISP_OUTPUT -d 127.0.0.77/32 -p tcp -m tcp --dport 15009 -j WISP_REDIRECT' "$out"
  out=$(dry_run "$WORK/app.yaml" "ctr($ORDERS, 'wisp-init')['args']")
  expect_eq "... and the example app's" 0 "$?"
else
  skip "wisp-iptables.sh --dry-run accepts wisp-init's args" "needs root and unshare --net"
fi

# ---- the agent Deployment (deploy/kubernetes/wisp-agent.yaml), run ----
AGENT_YAML=$K8S/wisp-agent.yaml
AGENT_DOC='named("Deployment", "wisp-agent")'
AVOL=$WORK/agent-vol
RUN=$SOCKDIR/run
mkdir -p "$AVOL/pvc" "$AVOL/policy" "$RUN"
# The ConfigMap's keys, as the kubelet writes them into the volume.
for key in $(Q_LINES=1 q "$K8S/wisp-policy.yaml" "sorted(kind('ConfigMap')['data'])"); do
  q "$K8S/wisp-policy.yaml" "kind('ConfigMap')['data']['$key']" >"$AVOL/policy/$key"
done
policy_ok() { "$WISPCTL" policy check "$1" >/dev/null; }
for f in "$AVOL"/policy/*.yaml; do
  check "wisp-policy.yaml: $(basename "$f") passes wispctl policy check" policy_ok "$f"
done
TLS_PORT=$(free_port) HOOK_PORT=$(free_port)
# The Service's environment variable as the kubelet sets it; no API server here.
mapfile -t agent_cmd < <(Q_LINES=1 q "$AGENT_YAML" \
  "kubelet($AGENT_DOC, 'wisp-agent', {'state': '$AVOL/pvc', 'policy': '$AVOL/policy', 'run': '$RUN'},
           {'WISP_AGENT_SERVICE_HOST': '10.96.0.10'},
           ['--listen-tls=127.0.0.1:$TLS_PORT', '--webhook=127.0.0.1:$HOOK_PORT', '--kube-api=off'])")
# The image's PATH: the built binaries.
agent_cmd[0]=$AGENT
start_bg "$WORK/agent" "${agent_cmd[@]}"
if wait_for 20 test -S "$RUN/agent.sock"; then
  ok "the agent Deployment's command starts wisp-agent (state, socket, TLS listener, policy dir)"
else
  not_ok "the agent Deployment's command starts wisp-agent" "$(tail -3 "$WORK/agent.err")"
  finish
fi
# What callers can make the agent hold fits its memory limit: base 8 MiB,
# --max-connections x (--max-conn-buffer + 30 KB of TLS), the webhook's
# connections x its largest body (the agent's defaults where not given), a
# quarter to spare.
# Its defaults (4096 x 16MiB) would not fit; the running agent says what
# it took.
budget=$(q "$AGENT_YAML" "(lambda c: (lambda a: [int(a.get('--max-connections', '4096')), size(a.get('--max-conn-buffer', '16MiB')),
  int(a.get('--webhook-max-connections', '64')), size(a.get('--webhook-max-body', '3MiB')), size(c['resources']['limits']['memory'])])(
  dict(x.split('=', 1) for x in c['args'] if '=' in x)))(ctr($AGENT_DOC, 'wisp-agent'))")
read -r conns conn_buf hooks hook_body limit < <(tr -d '[]' <<<"$budget" | tr ',' ' ')
need=$((8 * 1024 * 1024 + ${conns:-0} * (${conn_buf:-0} + 30000) + ${hooks:-0} * ${hook_body:-0}))
expect_eq "wisp-agent's bounds ($conns x $conn_buf, $hooks x $hook_body: $need bytes) fit under 3/4 of its memory limit ($limit)" \
  true "$([ "$conns" -gt 0 ] && [ "$need" -lt $((${limit:-0} * 3 / 4)) ] && echo true)"
check "... and the agent runs with them (its started line)" \
  grep -q "\"max_connections\":$conns,.*\"max_conn_buffer\":$conn_buf\b" "$WORK/agent.out" "$WORK/agent.err"
probe=$(q "$AGENT_YAML" "ctr($AGENT_DOC, 'wisp-agent')['readinessProbe']['exec']['command']")
expect_eq "its probes run wispctl status on the pod's socket" '["wispctl","--timeout","3s","status"]' "$probe"
policy_applied() { WISP_AGENT=unix:$RUN/agent.sock "$WISPCTL" --timeout 3s status | grep -Eq 'agent policy version: +[1-9]'; }
check "... which answers, with the wisp-policy ConfigMap applied" wait_for 10 policy_applied
check "the Service's targetPorts are the agent container's TLS and webhook ports" test "$(q "$AGENT_YAML" \
  "[p['targetPort'] for p in kind('Service')['spec']['ports']] == [p['name'] for p in ctr($AGENT_DOC, 'wisp-agent')['ports']]")" = true
check "the agent serves its webhook (the Deployment's --webhook, moved to a free port)" wait_port "$HOOK_PORT"
expect_eq "the MutatingWebhookConfiguration calls the Service's webhook port, at the paths the agent serves" \
  '[["wisp-agent","wisp-system",443,"/mutate"],["wisp-agent","wisp-system",443,"/mutate-annotated"]]' \
  "$(q "$AGENT_YAML" "[[w['clientConfig']['service'][k] for k in ('name', 'namespace', 'port', 'path')] for w in kind('MutatingWebhookConfiguration')['webhooks']]")"
expect_eq "... and the webhook's certificate name is that Service's" \
  "$(q "$AGENT_YAML" "kind('Service')['metadata']['name'] + '.' + kind('Service')['metadata']['namespace'] + '.svc'")" \
  "$(q "$AGENT_YAML" "next(a.split('=', 1)[1] for a in ctr($AGENT_DOC, 'wisp-agent')['args'] if a.startswith('--webhook-name='))")"
expect_eq "the Service comes before the Deployment (its environment variable names the cluster IP)" true \
  "$(q "$AGENT_YAML" "[d['kind'] for d in docs].index('Service') < [d['kind'] for d in docs].index('Deployment')")"
expect_eq "... and its selector the agent pod's labels" true "$(q "$AGENT_YAML" \
  "kind('Service')['spec']['selector'].items() <= tmpl($AGENT_DOC)['metadata']['labels'].items()")"
# Pod Security's restricted level, which wisp-system enforces, checked as
# the admission plugin does for this pod: non-root (not uid 0), no
# escalation, capabilities dropped (ALL), RuntimeDefault seccomp, and only
# the volume types it allows.
expect_eq "wisp-system enforces Pod Security restricted, and the agent pod meets it" true "$(q "$AGENT_YAML" "(
  named('Namespace', 'wisp-system')['metadata']['labels']['pod-security.kubernetes.io/enforce'] == 'restricted' and
  (lambda p: p['securityContext']['runAsNonRoot'] is True and p['securityContext'].get('runAsUser', 1) != 0 and
   p['securityContext']['seccompProfile']['type'] == 'RuntimeDefault' and not p.get('hostNetwork') and
   all(c['securityContext']['allowPrivilegeEscalation'] is False and c['securityContext']['capabilities']['drop'] == ['ALL']
       and not c['securityContext']['capabilities'].get('add') and not any(x.get('hostPort') for x in c.get('ports', []))
       for c in p['containers'] + p.get('initContainers', [])) and
   all(set(v) - {'name'} <= {'configMap', 'emptyDir', 'persistentVolumeClaim', 'projected', 'secret', 'downwardAPI'}
       for v in p['volumes']))(spec($AGENT_DOC)))")"
expect_eq "one replica, replaced with Recreate (one writer of the state dir)" '[1,"Recreate"]' \
  "$(q "$AGENT_YAML" "[$AGENT_DOC['spec']['replicas'], $AGENT_DOC['spec']['strategy']['type']]")"
expect_eq "the state volume is the PersistentVolumeClaim" "$(q "$AGENT_YAML" "kind('PersistentVolumeClaim')['metadata']['name']")" \
  "$(q "$AGENT_YAML" "next(v for v in spec($AGENT_DOC)['volumes'] if v['name'] == 'state')['persistentVolumeClaim']['claimName']")"

# ---- the injected wisp-proxy, run against that agent (README's steps) ----
# The bundle ConfigMap and the token Secret, as deploy/kubernetes/README.md
# makes them; the listeners on free loopback ports.
BUNDLE_VOL=$WORK/vol/bundle TOKEN_VOL=$WORK/vol/token CACHE_VOL=$WORK/vol/cache
mkdir -p "$BUNDLE_VOL" "$TOKEN_VOL" "$CACHE_VOL"
cp "$AVOL/pvc/state/bundle.pem" "$BUNDLE_VOL/bundle.pem"
WISP_AGENT=unix:$RUN/agent.sock "$WISPCTL" token create --reusable --ttl 1h \
  --spiffe-id spiffe://cluster.local/ns/shop/sa/frontend >"$TOKEN_VOL/token" 2>"$WORK/token.err"
# run_injected NAME FILE [ARGS...]: runs FILE's frontend wisp-proxy as the
# kubelet would, ARGS appended; sets ADM to its admin port.
run_injected() {
  local name=$1 file=$2 cmd
  shift 2
  ADM=$(free_port)
  mapfile -t cmd < <(Q_LINES=1 q "$file" "kubelet($FRONT, 'wisp-proxy',
      {'wisp-join-token': '$TOKEN_VOL', 'wisp-agent-socket': '$RUN', 'wisp-trust-bundle': '$BUNDLE_VOL', 'wisp-svid-cache': '$CACHE_VOL'},
      {'WISP_POD_NAMESPACE': 'shop', 'WISP_POD_SERVICE_ACCOUNT': 'frontend'},
      ['--admin', '127.0.0.1:$ADM', '--inbound', '127.0.0.1:$(free_port)', '--outbound', '127.0.0.1:$(free_port)'])")
  start_proxy "$name" "${cmd[@]:1}" "$@"
}
has_svid() { curl -s "http://127.0.0.1:$ADM/certs" | grep -q '"spiffe_id":"spiffe://cluster.local/ns/shop/sa/frontend"'; }
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADM/ready")" = 200 ]; }
not_intercepted() { curl -s "http://127.0.0.1:$ADM/ready" | grep -q 'iptables interception is not in place: a probe to 127.0.0.77:15009'; }
run_injected node_socket "$WORK/app.yaml"
check "the injected wisp-proxy (agent on the node's socket) gets an SVID for the pod's service account" \
  wait_for 20 has_svid
check "... and, with no wisp-init rules here, /ready fails closed, saying so" wait_for 20 not_intercepted
stop_proxy node_socket
inject app-https -f "$APP" --agent "https://127.0.0.1:$TLS_PORT"
run_injected over_https "$WORK/app-https.yaml" --intercept-probe off
check "injected with --agent https://, the agent verified by the bundle ConfigMap: ready (probe off)" wait_for 20 ready
check "... with an SVID for the pod's service account" has_svid
check "... kept in the SVID cache volume (0600)" test "$(stat -c %a "$CACHE_VOL/svid/svid.pem" 2>/dev/null)" = 600
stop_proxy over_https
inject agent -f "$AGENT_YAML"
expect_match "the agent's own pod opts out (wisp.dev/inject: disabled)" \
  'Deployment "wisp-agent"\): annotation wisp.dev/inject: disabled' "$ERR"

# ---- the manifests, structurally ----
for f in "$K8S"/*.yaml; do
  expect_eq "$(basename "$f"): every document has apiVersion, kind, metadata.name, a namespace" true \
    "$(q "$f" "all(d.get('apiVersion') and d.get('kind') and d['metadata'].get('name') and
                   (d['kind'] in CLUSTER_SCOPED or d['metadata'].get('namespace')) for d in docs)")"
done
expect_eq "example app: each Deployment's selector matches its pod labels, its service account exists" true \
  "$(q "$APP" "all(d['spec']['selector']['matchLabels'].items() <= tmpl(d)['metadata']['labels'].items()
                   and spec(d)['serviceAccountName'] in [s['metadata']['name'] for s in docs if s['kind'] == 'ServiceAccount']
                   for d in docs if d['kind'] == 'Deployment')")"

# ---- what inject refuses ----
printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers:\n  - name: app\n   image: y\n' >"$IN/broken.yaml"
inject broken -f "$IN/broken.yaml"
expect_eq "broken YAML: exit 1" 1 "$RC"
expect_match "... naming the file, line and column, and libyaml's problem" \
  "^wispctl: inject: $IN/broken.yaml: line 8, column 4: did not find expected key" "$ERR"
check "... and nothing on stdout" empty_stdout broken
{ cat "$APP"; printf -- '---\nkind: [Pod\n'; } >"$IN/broken-later.yaml"
inject broken-later -f "$IN/broken-later.yaml"
expect_match "broken YAML after good documents: exit 1" '^1:.*line [0-9]+, column [0-9]+: ' "$RC:$ERR"
check "... and nothing on stdout, not even the good documents" empty_stdout broken-later
sed 's/"5432,6379"/"5432,postgres"/' "$IN/kinds.yaml" >"$IN/bad-port.yaml"
inject bad-port -f "$IN/bad-port.yaml"
expect_match "a bad exclusion annotation: exit 1, naming the document, the annotation and the item" \
  '^1:wispctl: inject: .*: document 1 \(Pod "web"\): annotation wisp.dev/exclude-outbound-ports: "5432,postgres": "postgres" is not a port' \
  "$RC:$ERR"
check "... nothing on stdout" empty_stdout bad-port
sed 's|"192.168.0.0/16,fd00::/8"|"192.168.0.0/33"|' "$IN/kinds.yaml" >"$IN/bad-cidr.yaml"
inject bad-cidr -f "$IN/bad-cidr.yaml"
expect_match "a bad CIDR: exit 1" '^1:.*wisp.dev/exclude-outbound-cidrs: .*"192.168.0.0/33" is not an IPv4 or IPv6' "$RC:$ERR"
sed 's|"8080,8443"|"8080,15006"|' "$IN/kinds.yaml" >"$IN/bad-inbound.yaml"
inject bad-inbound -f "$IN/bad-inbound.yaml"
expect_match "an inbound port that is the proxy's own: exit 1" '^1:.*15006 is one of the proxy.s own ports' "$RC:$ERR"
sed 's|"8080,8443"|"8080,15090"|' "$IN/kinds.yaml" >"$IN/bad-inbound.yaml"
inject bad-inbound -f "$IN/bad-inbound.yaml"
expect_match "... the metrics port too" '^1:.*15090 is one of the proxy.s own ports' "$RC:$ERR"
sed 's|wisp.dev/inject: disabled|wisp.dev/inject: "off"|' "$IN/kinds.yaml" >"$IN/bad-choice.yaml"
inject bad-choice -f "$IN/bad-choice.yaml"
expect_match "wisp.dev/inject neither enabled nor disabled: exit 1" '^1:.*annotation wisp.dev/inject: "off": want enabled or disabled' "$RC:$ERR"
# A container declaring one of wisp-proxy's ports (or its admin port's name)
# could never share the pod with it: the pod would never be ready.
for port in 15000:admin 15001:outbound 15006:inbound 15009:'interception probe' 15090:metrics; do
  sed "s/containerPort: 8080}/containerPort: ${port%%:*}}/" "$IN/kinds.yaml" >"$IN/clash.yaml"
  inject clash -f "$IN/clash.yaml"
  expect_match "an app container declaring containerPort ${port%%:*}: exit 1, naming it (wisp-proxy's ${port#*:})" \
    "^1:wispctl: inject: .*document 1 \(Pod \"web\"\): container web declares containerPort ${port%%:*}, wisp-proxy's ${port#*:}.*could never be ready" \
    "$RC:$ERR"
done
check "... nothing on stdout" empty_stdout clash
sed "s/containerPort: 8080}/containerPort: 9000, name: wisp-admin}/" "$IN/kinds.yaml" >"$IN/clash-name.yaml"
inject clash-name -f "$IN/clash-name.yaml"
expect_match "an app port named wisp-admin: exit 1" \
  '^1:.*container web names a port wisp-admin, as wisp-proxy names its admin port' "$RC:$ERR"
# A pod with a volume of its own named as one inject adds (a Secret as
# wisp-sa-token): refused naming it, not made into a pod the API server
# refuses for duplicate volume names.
"$PY" -c "
import yaml, sys
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get('kind') == 'Pod'][:1]
docs[0]['spec']['volumes'] = [{'name': 'wisp-sa-token', 'secret': {'secretName': 'admin-token'}}]
yaml.safe_dump(docs[0], open(sys.argv[2], 'w'))" "$IN/kinds.yaml" "$IN/vol-clash.yaml"
inject vol-clash -f "$IN/vol-clash.yaml"
expect_match "a pod with its own volume named wisp-sa-token: exit 1, naming it" \
  '^1:.*the pod already has a volume named wisp-sa-token, as one the injection adds' "$RC:$ERR"
"$PY" -c 'print("a: " + "[" * 100000 + "]" * 100000)' >"$IN/deep.yaml"
inject deep -f "$IN/deep.yaml"
expect_match "100,000 levels of nesting: exit 1, no crash" '^1:.*document 1 nests 100001 levels deep' "$RC:$ERR"
printf '' >"$IN/empty.yaml"
inject empty -f "$IN/empty.yaml"
expect_eq "an empty file: exit 0, nothing out" "0:" "$RC:$(cat "$WORK/empty.yaml")"
inject missing -f "$IN/no-such.yaml"
expect_match "a file that is not there: exit 1" "^1:wispctl: inject: cannot read $IN/no-such.yaml: No such file" "$RC:$ERR"
cat >"$IN/uid.yaml" <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: same-uid}
spec:
  securityContext: {runAsUser: 1337}
  containers: [{name: app, image: "app:1"}]
EOF
inject uid -f "$IN/uid.yaml"
expect_match "a container running as the proxy's uid: injected, with a warning" \
  'warning: container app runs as uid 1337, the proxy.s: its traffic is not intercepted' "$ERR"

# ---- usage: exit 2 ----
inject usage
expect_match "inject without -f: exit 2 and the usage" '^2:wispctl: inject: -f FILE is required' "$RC:$ERR"
expect_match "... which lists inject" 'inject -f FILE \[--proxy-uid UID\]' "$ERR"
inject usage -f "$APP" extra
expect_match "an extra argument: exit 2" '^2:wispctl: inject: unexpected argument extra' "$RC:$ERR"
inject usage -f "$APP" --agent https://wisp-agent.wisp-system:8443
expect_match "--agent with a host name: exit 2, asking for the cluster IP" "^2:.*cluster IP" "$RC:$ERR"
inject usage -f "$APP" --agent 10.0.0.5:8443
expect_match "--agent without TLS: exit 2" '^2:.*want unix:///PATH or https://IP:PORT' "$RC:$ERR"
inject usage -f "$APP" --proxy-uid 0
expect_match "--proxy-uid 0: exit 2" '^2:.*--proxy-uid 0: want a user id from 1' "$RC:$ERR"
inject usage -f "$APP" --trust-domain Shop.Local
expect_match "a bad --trust-domain: exit 2" '^2:.*--trust-domain Shop.Local: not a trust domain' "$RC:$ERR"
inject usage -f "$APP" --json
expect_match "a flag of another command: exit 2" '^2:wispctl: inject does not take --json' "$RC:$ERR"
WISP_AGENT=https://10.9.9.9:8443 inject env -f "$APP"
expect_eq "WISP_AGENT (this machine's agent) does not leak into pods" unix:///run/wisp/agent.sock \
  "$(q "$WORK/env.yaml" "ctr($FRONT, 'wisp-proxy')['args'][2]")"

# Every manifest inject wrote above (its inputs are valid Kubernetes) is valid
# against the API's OpenAPI schema, unknown fields included
# (tests/node/k8s_schema.js; tests/kube/schema_test.sh shows it failing).
files=()
for name in $(printf '%s\n' "${OUTPUTS[@]}" | sort -u); do
  [ -s "$WORK/$name.yaml" ] && files+=("$WORK/$name.yaml")
done
if node "$NODE_DIR/k8s_schema.js" "${files[@]}" >"$WORK/schema.out" 2>&1; then
  ok "every inject output (${#files[@]} files) is valid against the Kubernetes schema, no unknown field"
else
  not_ok "every inject output is valid against the Kubernetes schema" "$(grep -v '^ok ' "$WORK/schema.out" | head -5)"
fi

# Under ASan/UBSan: no run of wispctl, wisp-agent or wisp-proxy said anything.
sanitizer_clean() { ! grep -lE 'AddressSanitizer|LeakSanitizer|runtime error:' "$WORK"/*.err; }
check "no sanitizer report from any run" sanitizer_clean

finish
