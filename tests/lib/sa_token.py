#!/usr/bin/python3
"""Kubernetes service-account tokens for tests, minted the way the API
server mints them (a compact JWS, RS256 or ES256, kubernetes.io claims) by
an independent JWT library, python3-jwt, with key pairs made by openssl.

  sa_token.py keys DIR          openssl key pairs (rsa.pem, ec.pem, other-rsa.pem,
                                small-rsa.pem) and DIR/jwks.json (kids rsa-1, ec-1)
  sa_token.py mint [flags]      prints a token; see --help
  sa_token.py jwks DIR FILE:KID:ALG...  prints a JWKS of those keys of DIR
"""
import argparse
import json
import os
import subprocess
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization

ISSUER = "https://kubernetes.default.svc.cluster.local"


def openssl_keys(d):
    os.makedirs(d, exist_ok=True)
    cmds = {
        "rsa.pem": ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "other-rsa.pem": ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "small-rsa.pem": ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
        "ec.pem": ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    }
    for name, cmd in cmds.items():
        path = os.path.join(d, name)
        if not os.path.exists(path):
            subprocess.run(cmd + ["-out", path], check=True, stderr=subprocess.DEVNULL)


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def jwk(path, kid, alg):
    """The public JWK of the private key at |path|, as python3-jwt writes it."""
    key = load_key(path).public_key()
    algo = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
    out = json.loads(algo.to_jwk(key))
    out.update({"kid": kid, "use": "sig", "alg": alg})
    return out


def jwks(d):
    return {"keys": [jwk(os.path.join(d, "rsa.pem"), "rsa-1", "RS256"),
                     jwk(os.path.join(d, "ec.pem"), "ec-1", "ES256")]}


def claims(ns="shop", sa="orders", iss=ISSUER, aud=("wisp",), now=None, exp_in=600, pod="orders-7d4b9-x2k"):
    now = int(time.time()) if now is None else now
    c = {"aud": list(aud) if isinstance(aud, (list, tuple)) else aud, "exp": now + exp_in, "iat": now,
         "nbf": now, "iss": iss, "sub": "system:serviceaccount:%s:%s" % (ns, sa),
         "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": sa, "uid": "7a3c0f1e-5b1d-4d0e-9c1a-2f5e8d6b4a10"}}}
    if pod:
        c["kubernetes.io"]["pod"] = {"name": pod, "uid": "e1f2a3b4-c5d6-47e8-9f0a-1b2c3d4e5f60"}
    return c


def legacy_claims(ns="shop", sa="orders"):
    """What a Secret of type kubernetes.io/service-account-token holds: signed
    with the same key, never expiring, for no audience and no pod."""
    return {"iss": "kubernetes/serviceaccount", "kubernetes.io/serviceaccount/namespace": ns,
            "kubernetes.io/serviceaccount/secret.name": sa + "-token-x2k9q",
            "kubernetes.io/serviceaccount/service-account.name": sa,
            "kubernetes.io/serviceaccount/service-account.uid": "7a3c0f1e-5b1d-4d0e-9c1a-2f5e8d6b4a10",
            "sub": "system:serviceaccount:%s:%s" % (ns, sa)}


def mint(c, key_path=None, alg="RS256", kid="rsa-1", secret=None):
    headers = {"kid": kid} if kid else {}
    if alg == "none":
        return jwt.encode(c, None, algorithm="none", headers=headers)
    key = secret if alg.startswith("HS") else load_key(key_path)
    return jwt.encode(c, key, algorithm=alg, headers=headers)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keys")
    k.add_argument("dir")
    j = sub.add_parser("jwks")
    j.add_argument("dir")
    j.add_argument("keys", nargs="+", help="FILE:KID:ALG, e.g. rsa.pem:rsa-1:RS256")
    m = sub.add_parser("mint")
    m.add_argument("--keys", required=True, help="the directory `keys` made")
    m.add_argument("--alg", default="RS256", choices=["RS256", "ES256", "HS256", "none"])
    m.add_argument("--key", default=None, help="rsa.pem (default for RS256), ec.pem (ES256), other-rsa.pem ...")
    m.add_argument("--kid", default=None, help="default rsa-1 or ec-1; '' for none")
    m.add_argument("--iss", default=ISSUER)
    m.add_argument("--aud", default="wisp", help="comma-separated; one value is written as a string")
    m.add_argument("--ns", default="shop")
    m.add_argument("--sa", default="orders")
    m.add_argument("--pod", default="orders-7d4b9-x2k")
    m.add_argument("--exp-in", type=int, default=600, help="seconds from now (negative: expired)")
    m.add_argument("--nbf-in", type=int, default=0)
    m.add_argument("--iat-in", type=int, default=0, help="seconds added to iat (now)")
    m.add_argument("--now", type=int, default=None)
    m.add_argument("--legacy", action="store_true",
                   help="the claims of a Secret-based token (iss kubernetes/serviceaccount, no exp, no aud)")
    a = p.parse_args()
    if a.cmd == "keys":
        openssl_keys(a.dir)
        with open(os.path.join(a.dir, "jwks.json"), "w") as f:
            json.dump(jwks(a.dir), f, indent=1)
        return
    if a.cmd == "jwks":
        print(json.dumps({"keys": [jwk(os.path.join(a.dir, f), kid, alg)
                                   for f, kid, alg in (k.split(":") for k in a.keys)]}))
        return
    aud = a.aud.split(",")
    c = claims(a.ns, a.sa, a.iss, aud if len(aud) > 1 else aud[0], a.now, a.exp_in, a.pod or None)
    c["nbf"] += a.nbf_in
    c["iat"] += a.iat_in
    if a.legacy:
        c = legacy_claims(a.ns, a.sa)
    key = a.key or ("ec.pem" if a.alg == "ES256" else "rsa.pem")
    kid = a.kid if a.kid is not None else ("ec-1" if a.alg == "ES256" else "rsa-1")
    print(mint(c, os.path.join(a.keys, key), a.alg, kid or None, secret="secret"))


if __name__ == "__main__":
    sys.exit(main())
