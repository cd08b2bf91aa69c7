#!/usr/bin/env bash
# Installs what wisp needs to build, test and run its demo on Debian 12:
# Debian packages (apt) and the Node test peers (npm, pinned by
# tests/node/package-lock.json). Idempotent; quiet when all is there.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

PKGS=(
  build-essential bazel-bootstrap
  android-libboringssl-dev libev-dev libnghttp2-dev
  libprotobuf-c-dev protobuf-c-compiler libyaml-dev libcmocka-dev
  curl openssl ca-certificates nghttp2-client nghttp2-server haproxy
  # bench/run.sh's stunnel setup (issue 15)
  stunnel4
  iproute2 iptables procps tcpdump python3 python3-yaml python3-h2
  clang libclang-rt-14-dev clang-format
  # tests/kube: rootful podman (runc, CNI, catatonit for its pause
  # container), busybox-static for the stand-in app image
  podman runc containernetworking-plugins catatonit busybox-static
  # JSON (jansson), service-account tokens and JSON Patch in the tests (issue 11)
  libjansson-dev python3-jwt python3-cryptography python3-jsonpatch
  # HTTP/1.x callers and apps (issue 14): the parser, ab as a test peer
  libhttp-parser-dev apache2-utils
  # alerting rules (issue 16): promtool, and a live Prometheus + Alertmanager in tests
  prometheus prometheus-alertmanager
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# Node may come from Debian (nodejs + npm) or elsewhere with npm bundled.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=()
  [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci when a dependency in package.json is not installed (a new one too).
node_deps_missing() {
  (cd tests/node && node -e 'const fs = require("fs"), p = require("./package.json");
    process.exit(Object.keys(p.dependencies).every((d) => fs.existsSync(`node_modules/${d}/package.json`)) ? 1 : 0)')
}
if node_deps_missing; then
  echo "install-deps: npm ci in tests/node" >&2
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
