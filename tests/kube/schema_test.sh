#!/usr/bin/env bash
# The Kubernetes manifests against the API's own OpenAPI schema, offline:
# deploy/kubernetes/*.yaml and `wispctl inject`'s output of them checked by
# tests/node/k8s_schema.js (kubernetes-models' validators, plus a strict
# check that every field is one the schema names). And that the check
# fails where it should: a misspelled field at any depth, a wrong type or
# enum value, a missing required field, a duplicate key, an unknown kind,
# and what the API server checks on pod specs beyond the schema.
# (tests/integration/wispctl_inject_test.sh checks every output it makes
# the same way.)
#   schema_test.sh [WISPCTL]
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
WISPCTL=$(wisp_find_bin wispctl "$@") || exit 1
unset WISP_AGENT
K8S=$WISP_SRC/deploy/kubernetes
schema() { node "$NODE_DIR/k8s_schema.js" "$@" >"$WORK/schema.out" 2>"$WORK/schema.err"; }
# refused NAME FILE REGEX: the check fails on FILE and says REGEX.
refused() {
  if schema "$2"; then
    not_ok "$1" "accepted"
  elif grep -Eq -- "$3" "$WORK/schema.err"; then
    ok "$1"
  else
    not_ok "$1" "$(cat "$WORK/schema.err")"
  fi
}

for f in "$K8S"/*.yaml; do
  # A prometheus-operator CRD, not in the Kubernetes schema: checked by
  # tests/alerts/alert_rules_test.sh.
  [ "$(basename "$f")" = wisp-alerts-prometheusrule.yaml ] && continue
  check "$(basename "$f") is valid against the Kubernetes schema (strict fields)" schema "$f"
done
"$WISPCTL" inject -f "$K8S/example-app.yaml" >"$WORK/app-unix.yaml" 2>/dev/null
"$WISPCTL" inject --agent https://10.96.0.10:8443 -f "$K8S/example-app.yaml" >"$WORK/app-https.yaml" 2>/dev/null
"$WISPCTL" inject -f "$K8S/wisp-agent.yaml" >"$WORK/agent.yaml" 2>/dev/null
check "wispctl inject of example-app.yaml (agent on the node's socket) is valid" schema "$WORK/app-unix.yaml"
check "... with an https:// agent (trust bundle volume) is valid" schema "$WORK/app-https.yaml"
check "... the native sidecar's restartPolicy: Always is a field of Container" \
  grep -q 'restartPolicy: Always' "$WORK/app-https.yaml"
check "wispctl inject of wisp-agent.yaml (opted out) is valid" schema "$WORK/agent.yaml"
check "wisp-agent-networkpolicy.yaml selects the agent's pod and names its ports: the webhook's from an ipBlock only" \
  /usr/bin/python3 -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
dep = next(d for d in docs if d["kind"] == "Deployment")
pod = dep["spec"]["template"]
ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
np = yaml.safe_load(open(sys.argv[2]))["spec"]
rules = {r["ports"][0]["port"]: r.get("from") for r in np["ingress"]}
sys.exit(not (np["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
              and set(rules) == ports == {"webhook", "grpc-tls"} and rules["grpc-tls"] is None
              and [list(f) for f in rules["webhook"]] == [["ipBlock"]]))' "$K8S/wisp-agent.yaml" "$K8S/wisp-agent-networkpolicy.yaml"

# ---- the check fails where it should ----
sed 's/readOnlyRootFilesystem:/readOnlyRootFileSystem:/' "$K8S/wisp-agent.yaml" >"$WORK/typo.yaml"
refused "a misspelled field in wisp-agent.yaml is refused, with its path" "$WORK/typo.yaml" \
  'document [0-9]+ \(Deployment "wisp-agent"\): /spec/template/spec/containers/0/securityContext/readOnlyRootFileSystem: unknown field'
sed 's/  mountPath:/  mountPth:/' "$WORK/app-https.yaml" >"$WORK/typo2.yaml"
refused "... and in inject's output (a volume mount of wisp-proxy)" "$WORK/typo2.yaml" \
  '/spec/template/spec/initContainers/1/volumeMounts/0/mountPth: unknown field'
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspecs: {ports: [{port: 80}]}\n' >"$WORK/top.yaml"
refused "an unknown top-level field" "$WORK/top.yaml" '/specs: unknown field'
sed 's/replicas: 1/replicas: one/' "$K8S/wisp-agent.yaml" >"$WORK/type.yaml"
refused "a string where the schema wants an integer" "$WORK/type.yaml" '/spec/replicas: must be integer'
sed 's/type: Recreate/type: Replace/' "$K8S/wisp-agent.yaml" >"$WORK/enum.yaml"
refused "a value outside an enum" "$WORK/enum.yaml" '/spec/strategy/type: must be equal to one of the allowed values \(Recreate, RollingUpdate\)'
sed 's/- name: wisp-agent$/- nam: wisp-agent/' "$K8S/wisp-agent.yaml" >"$WORK/required.yaml"
refused "a container without its required name" "$WORK/required.yaml" 'containers/0: must have required property .?name'
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: "1", k: "2"}\n' >"$WORK/dup.yaml"
refused "a duplicate key" "$WORK/dup.yaml" 'Map keys must be unique'
printf 'apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p}\n  spec: {containers: [{name: a, image: b, volumeMount: []}]}\n' >"$WORK/list.yaml"
refused "a misspelled field in an item of a List" "$WORK/list.yaml" '/items/0/spec/containers/0/volumeMount: unknown field'
printf 'apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: x}\n' >"$WORK/kind.yaml"
refused "an unknown kind" "$WORK/kind.yaml" 'no schema for apiVersion apps/v1, kind Deploymnet'
# What the API server checks beyond the schema, on pod specs.
sed '/restartPolicy: Always/d' "$WORK/app-https.yaml" >"$WORK/sidecar.yaml"
refused "probes on an init container that is not a sidecar (inject's wisp-proxy without restartPolicy: Always)" \
  "$WORK/sidecar.yaml" '/spec/template/spec/initContainers/1/startupProbe: may not be set for init containers without restartPolicy: Always'
pod() { printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {%s}\n' "$1" >"$WORK/$2.yaml"; }
pod 'containers: [{name: a, image: b, restartPolicy: Always}]' restart
refused "restartPolicy on an app container" "$WORK/restart.yaml" '/spec/containers/0/restartPolicy: may not be set for non-init containers'
pod 'containers: [{name: a, image: b, volumeMounts: [{name: data, mountPath: /d}]}], volumes: [{name: date, emptyDir: {}}]' mount
refused "a volumeMount naming no volume of the pod" "$WORK/mount.yaml" '/spec/containers/0/volumeMounts/0/name: no volume "data" in the pod'
pod 'initContainers: [{name: a, image: b}], containers: [{name: a, image: b}]' names
refused "two containers of one name (an init container and an app container)" "$WORK/names.yaml" \
  '/spec/containers/0/name: duplicate container name "a"'
pod 'containers: [{name: a, image: b, ports: [{name: http, containerPort: 80}, {name: http, containerPort: 81}]}]' ports
refused "two ports of one name in a container" "$WORK/ports.yaml" '/spec/containers/0/ports/1/name: duplicate port name "http"'
schema
expect_eq "no file: usage, exit 2" "2" "$?"
finish
