#!/usr/bin/python3
"""AdmissionReview documents for webhook_test.sh, shaped as the Kubernetes
API reference gives them (admission.k8s.io/v1), and the checks on answers.

  review.py make POD.yaml [--namespace NS] [--operation CREATE] [--kind Pod] [--uid U]
      prints the AdmissionReview asking about the pod in POD.yaml
  review.py apply REVIEW.json ANSWER.json
      applies the answer's JSONPatch (python3-jsonpatch) to the review's
      pod and prints the result as JSON (sorted keys)
  review.py yaml FILE.yaml    prints the first document as JSON (sorted keys)
  review.py object REVIEW.json   prints the review's pod as YAML (for wispctl inject)
"""
import base64
import json
import sys
import uuid

import jsonpatch
import yaml


def make(pod_path, ns="shop", operation="CREATE", kind="Pod", uid=None):
    with open(pod_path) as f:
        pod = yaml.safe_load(f)
    pod.setdefault("metadata", {}).setdefault("namespace", ns)
    pod.setdefault("spec", {}).setdefault("serviceAccountName", "default")  # the ServiceAccount admission plugin
    group, resource = ("", "pods") if kind == "Pod" else ("apps", kind.lower() + "s")
    gvk = {"group": group, "version": "v1", "kind": kind}
    gvr = {"group": group, "version": "v1", "resource": resource}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid or str(uuid.uuid4()),
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": pod["metadata"].get("name", ""),
            "namespace": ns,
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "uid": "a5f1c1f0-9d3e-4c55-8f8e-3b8f7f9a2c11",
                         "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system",
                                    "system:authenticated"]},
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def main():
    cmd = sys.argv[1]
    if cmd == "make":
        args = sys.argv[3:]
        kw = {}
        while args:
            k, v = args[0].lstrip("-"), args[1]
            kw[k] = v
            args = args[2:]
        print(json.dumps(make(sys.argv[2], **kw)))
    elif cmd == "apply":
        with open(sys.argv[2]) as f:
            review = json.load(f)
        with open(sys.argv[3]) as f:
            answer = json.load(f)
        resp = answer["response"]
        assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview", answer
        assert resp["uid"] == review["request"]["uid"], "uid not echoed"
        pod = review["request"]["object"]
        if "patch" in resp:
            assert resp["patchType"] == "JSONPatch"
            ops = json.loads(base64.b64decode(resp["patch"]))
            pod = jsonpatch.apply_patch(pod, ops)
        print(json.dumps(pod, sort_keys=True))
    elif cmd == "object":
        with open(sys.argv[2]) as f:
            yaml.safe_dump(json.load(f)["request"]["object"], sys.stdout)
    elif cmd == "yaml":
        with open(sys.argv[2]) as f:
            print(json.dumps(yaml.safe_load(f), sort_keys=True))


if __name__ == "__main__":
    main()
