#!/usr/bin/python3
"""Writes the fixed vectors of tests/unit/jwt_test.c: key pairs made by
openssl, tokens minted by python3-jwt (tests/lib/sa_token.py), each with the
verdict lib/wisp_jwt must give and a phrase its reason must hold. Run once;
the output is committed (vectors.json), so the unit test needs neither.
  /usr/bin/python3 tests/unit/jwt/make_vectors.py"""
import base64
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))
import sa_token as st  # noqa: E402

NOW = 1700000000


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def part(obj):
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def main():
    with tempfile.TemporaryDirectory() as keys:
        write(keys)


def write(KEYS):
    st.openssl_keys(KEYS)
    rsa, ec, other, small = (os.path.join(KEYS, n) for n in ("rsa.pem", "ec.pem", "other-rsa.pem", "small-rsa.pem"))
    jwks = st.jwks(KEYS)
    small_jwk = st.jwk(small, "small-1", "RS256")

    def c(**kw):
        kw.setdefault("now", NOW)
        return st.claims(**kw)

    good = st.mint(c(), rsa)
    h, p, s = good.split(".")
    bad_claims = c()
    bad_claims["kubernetes.io"]["namespace"] = "kube-system"
    no_exp = c()
    del no_exp["exp"]
    str_exp = c()
    str_exp["exp"] = "tomorrow"
    # Dates outside [0, 2^40]: now - exp once overflowed for INT64_MIN and
    # such a token passed as not expired.
    min_exp = c()
    min_exp["exp"] = -(2**63)
    neg_iat = c()
    neg_iat["iat"] = -1
    huge_nbf = c()
    huge_nbf["nbf"] = 10**18
    no_k8s = c()
    del no_k8s["kubernetes.io"]
    bad_sub = c()
    bad_sub["sub"] = "system:serviceaccount:shop:admin"
    slash = c(ns="shop/sa/admin")
    no_sub = c()
    del no_sub["sub"]
    no_iat = c()
    del no_iat["iat"]
    # TokenRequest bound to a Secret: kubernetes.io secret instead of pod.
    secret_bound = c(pod=None)
    secret_bound["kubernetes.io"]["secret"] = {"name": "orders-token", "uid": "0f1e2d3c-4b5a-4697-8877-665544332211"}
    legacy = st.legacy_claims()
    cases = [
        ("rs256", good, "ok", "", "shop", "orders"),
        ("es256 with aud as a string", st.mint(c(aud="wisp"), ec, "ES256", "ec-1"), "ok", "", "shop", "orders"),
        ("aud array holding wisp", st.mint(c(aud=["https://kubernetes.default.svc", "wisp"]), rsa), "ok", "", "shop",
         "orders"),
        ("no kid: every key of the alg is tried", st.mint(c(), rsa, kid=None), "ok", "", "shop", "orders"),
        ("no pod binding (kubectl create token)", st.mint(c(pod=None, sa="frontend"), rsa), "not bound to a pod",
         "no kubernetes.io pod", "", ""),
        ("bound to a Secret, not a pod", st.mint(secret_bound, rsa), "not bound to a pod", "no kubernetes.io pod", "",
         ""),
        ("legacy Secret-based token", st.mint(legacy, rsa), "not bound to a pod", "legacy Secret-based", "", ""),
        ("lives 24 h", st.mint(c(exp_in=86400), rsa), "ok", "", "shop", "orders"),
        ("lives 24 h and 1 s", st.mint(c(exp_in=86401), rsa), "lifetime too long", "lives 86401 s (exp - iat)", "",
         ""),
        ("no iat", st.mint(no_iat, rsa), "lifetime too long", "no iat", "", ""),
        ("no sub", st.mint(no_sub, rsa), "ok", "", "shop", "orders"),
        ("expired within leeway", st.mint(dict(c(exp_in=-30), iat=NOW - 600), rsa), "ok", "", "shop", "orders"),
        ("iat after exp", st.mint(dict(c(exp_in=40), iat=NOW + 55), rsa), "malformed token",
         "iat 1700000055 is after its exp 1700000040 (a lifetime of -15 s)", "", ""),
        ("wrong audience", st.mint(c(aud=["https://kubernetes.default.svc"]), rsa), "wrong audience",
         "kubernetes.default.svc", "", ""),
        ("expired", st.mint(c(exp_in=-3600), rsa), "expired", "expired 3600 s ago", "", ""),
        ("not yet valid (nbf)", st.mint(dict(c(), nbf=NOW + 600), rsa), "not yet valid", "nbf is 600 s from now",
         "", ""),
        ("issued in the future (iat)", st.mint(dict(c(), iat=NOW + 900), rsa), "not yet valid", "iat", "", ""),
        ("issuer mismatch", st.mint(c(iss="https://evil.example"), rsa), "issuer mismatch", "evil.example", "", ""),
        ("unknown kid", st.mint(c(), rsa, kid="rsa-2"), "unknown key", "no key with kid rsa-2", "", ""),
        ("signed by another key with our kid", st.mint(c(), other, kid="rsa-1"), "bad signature",
         "does not verify with key rsa-1", "", ""),
        ("claims changed after signing", h + "." + part(bad_claims) + "." + s, "bad signature", "does not verify",
         "", ""),
        ("ES256 naming the RSA key", st.mint(c(), ec, "ES256", "rsa-1"), "unknown key", "is not a key for ES256", "",
         ""),
        ("alg none", st.mint(c(), alg="none", kid="rsa-1"), "algorithm refused", "alg none", "", ""),
        ("HS256", st.mint(c(), alg="HS256", kid="rsa-1", secret="secret"), "algorithm refused", "alg HS256", "", ""),
        ("RS256 header with an empty signature", h + "." + p + ".", "malformed token", "signature is empty", "", ""),
        ("signed by a 1024-bit key left out of the set", st.mint(c(), small, kid="small-1"), "unknown key",
         "no key with kid small-1", "", ""),
        ("no exp", st.mint(no_exp, rsa), "malformed token", "no exp", "", ""),
        ("exp not a number", st.mint(str_exp, rsa), "malformed token", "exp is not a number", "", ""),
        ("exp INT64_MIN", st.mint(min_exp, rsa), "malformed token", "exp is not a number or not a date", "", ""),
        ("iat negative", st.mint(neg_iat, rsa), "malformed token", "iat is not a number or not a date", "", ""),
        ("nbf 1e18", st.mint(huge_nbf, rsa), "malformed token", "nbf is not a number or not a date", "", ""),
        ("no kubernetes.io claims", st.mint(no_k8s, rsa), "not a service-account token", "kubernetes.io", "", ""),
        ("sub disagrees", st.mint(bad_sub, rsa), "not a service-account token", "system:serviceaccount:shop:admin",
         "", ""),
        ("namespace with a slash", st.mint(slash, rsa), "not a service-account token", "not a Kubernetes namespace",
         "", ""),
        ("two parts", h + "." + p, "malformed token", "three base64url parts", "", ""),
        ("five parts (JWE)", good + ".x.y", "malformed token", "three base64url parts", "", ""),
        ("padded base64", h + "=." + p + "." + s, "malformed token", "header", "", ""),
        ("header not JSON", b64(b"not json") + "." + p + "." + s, "malformed token", "header", "", ""),
        ("duplicate aud claim", h + "." + b64(b'{"aud":"x","aud":"wisp"}') + "." + s, "malformed token", "claims",
         "", ""),
        ("crit header", part({"alg": "RS256", "kid": "rsa-1", "crit": ["exp"]}) + "." + p + "." + s,
         "malformed token", "crit", "", ""),
        ("empty", "", "malformed token", "three", "", ""),
    ]
    out = {
        "now": NOW,
        "issuer": st.ISSUER,
        "jwks": {"keys": jwks["keys"] + [small_jwk, {"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "ed"},
                                         {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB", "kid": "enc"}]},
        "cases": [{"name": n, "token": t, "verdict": v, "why": w, "ns": ns, "sa": sa} for n, t, v, w, ns, sa in cases],
    }
    with open(os.path.join(HERE, "vectors.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
