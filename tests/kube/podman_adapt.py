#!/usr/bin/python3
"""podman_adapt.py: Kubernetes manifests -> what podman 4.3's `kube play`
runs the same way. The shipped manifests stay correct Kubernetes; every
change podman needs is made here, and each is named (PODMAN-n) where it is
made:

  PODMAN-1  Namespace, ServiceAccount and Service documents are dropped:
            podman ignores them (no cluster DNS, no Service IPs); so are
            RBAC objects and MutatingWebhookConfigurations (no API server).
  PODMAN-2  Names are global in podman (pods from Deployments, named
            volumes from PersistentVolumeClaims, ConfigMaps and emptyDirs):
            every one gets the test's prefix, so the test makes and removes
            only its own. emptyDirs also get the pod's
            name: podman shares an emptyDir across pods as one named volume.
  PODMAN-3  No native sidecars: podman waits for every init container to
            exit and ignores `restartPolicy: Always` on them, so an init
            container with it moves to the front of the containers.
  PODMAN-4  Init containers after a native sidecar that need the mesh
            (frontend's wait-for-orders) are dropped: podman would run them
            before the proxy, and their traffic would go nowhere.
  PODMAN-5  Probes are dropped: podman refuses init containers with probes,
            and its healthchecks need systemd, which this machine lacks.
  PODMAN-6  The downward API's metadata.namespace and $(VAR) expansion are
            unsupported: fieldRef env become values, and $(VAR) in command
            and args are expanded as the kubelet does.
  PODMAN-7  A secret volume crashes podman 4.3's kube play (a nil pointer
            in VolumeFromSecret), and its Secret data would be written
            without base64-decoding: each Secret becomes a ConfigMap of its
            decoded data, and each secret volume a configMap volume of it.
  PODMAN-8  Every containerPort is published on the host: ports are
            dropped (they are informational in Kubernetes).
  PODMAN-9  Images: the registry's app images are replaced by a local
            stand-in, wisp/wisp:VERSION by the test's own load of the same
            archive, and nothing is pulled (imagePullPolicy: Never).
  PODMAN-10 Services' names do not resolve: --host NAME=IP adds
            hostAliases, the stand-in for cluster DNS (with the Service IP
            replaced by the pod IP: no kube-proxy).
  PODMAN-11 podman 4.3 applies the pod's restartPolicy to init containers
            as well: with Always it restarts wisp-init after it succeeded,
            then fails to remove the still running "once" init container.
            The pod gets OnFailure (a killed container, exit 137, still
            comes back).
  PODMAN-12 kube play reads a volume's ConfigMap only from the documents
            before the pod: ConfigMaps and PersistentVolumeClaims go first.
  PODMAN-14 No API server to read the service-account issuer's keys from:
            --sa-jwks FILE --sa-issuer URL give the agent container
            (wisp-agent) --sa-jwks from a ConfigMap of FILE, the README's
            way for agents that do not read them from the API server.
  PODMAN-15 No projected service-account tokens: --sa-token SA=FILE makes
            each serviceAccountToken volume of a pod running as SA a
            ConfigMap of FILE (a token the test minted as the API server
            would, audience and all).
  PODMAN-16 No downward API volumes: each becomes a ConfigMap of the values
            the kubelet would write (the pod's annotations).
  PODMAN-13 No Service environment variables (WISP_AGENT_SERVICE_HOST...):
            --env NAME=VALUE gives them to every container, for $(VAR)
            expansion too, as the kubelet does for the Services of the
            pod's namespace.

usage: podman_adapt.py --prefix P [--image FROM=TO]... [--host NAME=IP]... [--env NAME=VALUE]...
                       [--sa-jwks FILE --sa-issuer URL] [--sa-token SA=FILE]...
                       IN.yaml... >OUT.yaml
"""

import argparse
import base64
import re
import sys

import yaml

DROPPED_KINDS = ("Namespace", "ServiceAccount", "Service", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                 "MutatingWebhookConfiguration")  # PODMAN-1
TEMPLATED = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")
VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def pod_of(doc):
    """(metadata, spec) of the object's pod (template)."""
    if doc["kind"] == "Pod":
        return doc["metadata"], doc["spec"]
    t = doc["spec"]["template"]
    return t.setdefault("metadata", {}), t["spec"]


def field_value(doc, spec, path):
    """What the downward API gives for fieldPath |path| (PODMAN-6)."""
    meta = doc["metadata"]
    values = {
        "metadata.namespace": meta.get("namespace", "default"),
        "metadata.name": meta["name"],
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
    }
    if path not in values:
        sys.exit("podman_adapt: fieldRef %s is not handled" % path)
    return values[path]


def adapt_container(doc, spec, c, a):
    c.pop("restartPolicy", None)  # PODMAN-3
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):  # PODMAN-5
        c.pop(probe, None)
    c.pop("ports", None)  # PODMAN-8
    c["image"] = a.images.get(c["image"], c["image"])  # PODMAN-9
    c["imagePullPolicy"] = "Never"
    env = dict(a.env)  # PODMAN-13
    if a.env:
        c["env"] = [{"name": k, "value": v} for k, v in sorted(a.env.items())] + c.get("env", [])
    for e in c.get("env", []):  # PODMAN-6
        if "valueFrom" in e:
            e["value"] = field_value(doc, spec, e.pop("valueFrom")["fieldRef"]["fieldPath"])
        env[e["name"]] = e.get("value", "")
    for key in ("command", "args"):
        if key in c:
            c[key] = [VAR.sub(lambda m: env.get(m.group(1), m.group(0)), str(s)) for s in c[key]]
    for m in c.get("volumeMounts", []):
        m["name"] = a.volume_names.get(m["name"], m["name"])


def config_map(a, name, data):
    """A ConfigMap for what podman cannot mount otherwise (emitted first)."""
    a.extra.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
    return {"name": name}


def stand_in_volumes(doc, meta, spec, a):
    """PODMAN-14, 15, 16: volumes podman has not, as ConfigMaps."""
    name = doc["metadata"]["name"]
    for v in spec.get("volumes", []):
        if "projected" in v:  # PODMAN-15
            (src,) = v.pop("projected")["sources"]
            path = src["serviceAccountToken"]["path"]
            sa = spec.get("serviceAccountName", "default")
            if sa not in a.sa_tokens:
                sys.exit("podman_adapt: no --sa-token for service account %s" % sa)
            with open(a.sa_tokens[sa]) as f:
                v["configMap"] = config_map(a, "sa-token-" + sa, {path: f.read().strip()})
        elif "downwardAPI" in v:  # PODMAN-16
            data = {}
            for item in v.pop("downwardAPI")["items"]:
                m = re.fullmatch(r"metadata\.annotations\['([^']+)'\]", item["fieldRef"]["fieldPath"])
                if not m:
                    sys.exit("podman_adapt: downward API %s is not handled" % item["fieldRef"]["fieldPath"])
                data[item["path"]] = (meta.get("annotations") or {})[m.group(1)]
            v["configMap"] = config_map(a, "downward-%s-%s" % (name, v["name"]), data)
    if a.sa_jwks:  # PODMAN-14
        for c in spec["containers"]:
            if c["name"] != "wisp-agent":
                continue
            with open(a.sa_jwks) as f:
                cm = config_map(a, "sa-jwks", {"jwks.json": f.read()})
            spec.setdefault("volumes", []).append({"name": "wisp-sa-jwks", "configMap": cm})
            c.setdefault("volumeMounts", []).append({"name": "wisp-sa-jwks", "mountPath": "/etc/wisp/sa-jwks",
                                                     "readOnly": True})
            c["args"] += ["--sa-jwks=/etc/wisp/sa-jwks/jwks.json", "--sa-issuer=" + a.sa_issuer]


def adapt_pod(doc, a):
    meta, spec = pod_of(doc)
    name = doc["metadata"]["name"]
    stand_in_volumes(doc, meta, spec, a)
    inits, sidecars = [], []
    for c in spec.get("initContainers", []):
        if c.get("restartPolicy") == "Always":
            sidecars.append(c)  # PODMAN-3
        elif not sidecars:
            inits.append(c)
        # else PODMAN-4: after a native sidecar, dropped
    spec["containers"] = sidecars + spec["containers"]
    if inits:
        spec["initContainers"] = inits
    else:
        spec.pop("initContainers", None)
    a.volume_names = {}
    for v in spec.get("volumes", []):  # PODMAN-2
        new = "%s-%s-%s" % (a.prefix, name, v["name"]) if "emptyDir" in v else "%s-%s" % (a.prefix, v["name"])
        a.volume_names[v["name"]] = new
        v["name"] = new
        if "persistentVolumeClaim" in v:
            v["persistentVolumeClaim"]["claimName"] = a.prefix + "-" + v["persistentVolumeClaim"]["claimName"]
        elif "configMap" in v:
            v["configMap"]["name"] = a.prefix + "-" + v["configMap"]["name"]
        elif "secret" in v:  # PODMAN-7
            source = v.pop("secret")
            source["name"] = a.prefix + "-" + source.pop("secretName")
            v["configMap"] = source
    for c in spec.get("initContainers", []) + spec["containers"]:
        adapt_container(doc, spec, c, a)
    spec["restartPolicy"] = "OnFailure"  # PODMAN-11
    if a.hosts:  # PODMAN-10
        spec["hostAliases"] = [{"ip": ip, "hostnames": [h]} for h, ip in sorted(a.hosts.items())]
    doc["metadata"]["name"] = a.prefix + "-" + name  # PODMAN-2


def adapt(doc, a):
    kind = doc.get("kind")
    if kind in DROPPED_KINDS:
        return None
    if kind == "Secret":  # PODMAN-7
        data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
        data.update(doc.get("stringData") or {})
        doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"], "data": data}
        kind = "ConfigMap"
    if kind in ("Secret", "ConfigMap", "PersistentVolumeClaim"):
        doc["metadata"]["name"] = a.prefix + "-" + doc["metadata"]["name"]  # PODMAN-2
    elif kind == "Pod" or kind in TEMPLATED:
        adapt_pod(doc, a)
    else:
        sys.exit("podman_adapt: kind %s is not handled" % kind)
    return doc


def pairs(items, what):
    out = {}
    for item in items:
        if "=" not in item:
            sys.exit("podman_adapt: %s %s: want FROM=TO" % (what, item))
        k, v = item.split("=", 1)
        out[k] = v
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--prefix", required=True)
    p.add_argument("--image", action="append", default=[])
    p.add_argument("--host", action="append", default=[])
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--sa-jwks", default=None)
    p.add_argument("--sa-issuer", default=None)
    p.add_argument("--sa-token", action="append", default=[])
    p.add_argument("inputs", nargs="+")
    a = p.parse_args()
    a.sa_tokens = pairs(a.sa_token, "--sa-token")
    a.extra = []
    a.env = pairs(a.env, "--env")
    a.images = pairs(a.image, "--image")
    a.hosts = pairs(a.host, "--host")
    docs = []
    for path in a.inputs:
        with open(path) as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    out = [d for d in (adapt(d, a) for d in docs) if d]
    out = [adapt(d, a) for d in a.extra] + out
    out.sort(key=lambda d: d["kind"] not in ("ConfigMap", "PersistentVolumeClaim"))  # PODMAN-12
    yaml.safe_dump_all(out, sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
