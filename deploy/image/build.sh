#!/usr/bin/env bash
# build.sh: builds the image wisp/wisp:<version> (lib/wisp_version.h) from
# this tree's own Bazel output (optimized), with no base image: an OCI
# archive written by oci_image.py from the binaries and what they need on
# this Debian 12 machine. The same tree gives the same image digest.
#
#   bash deploy/image/build.sh                 # build, and load into podman (if installed)
#   bash deploy/image/build.sh --archive FILE  # only the OCI archive, for
#       kind load image-archive FILE / ctr -n k8s.io images import FILE / podman load -i FILE
set -euo pipefail
SRC=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
PROG=build.sh

usage() {
  cat <<'EOF'
usage: deploy/image/build.sh [options]
  --archive FILE    write the OCI archive to FILE and stop (no load)
                    (default: dist/wisp-VERSION.oci.tar, then podman load)
  --name REF        the image's name (default docker.io/wisp/wisp:VERSION, which
                    Kubernetes' `wisp/wisp:VERSION` means)
  --proxy BIN --agent BIN --wispctl BIN
                    use these binaries (all three) instead of `bazel build`
  --no-load         do not load the archive into podman
  -h, --help        this help
Environment: SOURCE_DATE_EPOCH (default: the time of the HEAD commit) is every
timestamp in the image; WISP_REVISION (default: git's HEAD, "-dirty" if
tracked files changed) is the org.opencontainers.image.revision label,
WISP_IMAGE_SOURCE (default: git's remote.origin.url) the .source label and
WISP_IMAGE_LICENSES (an SPDX expression; default: none, the tree has no
license file) the .licenses label; an empty one is left out.
EOF
}

die() {
  echo "$PROG: $*" >&2
  exit 1
}

VERSION=$(sed -n 's/^#define WISP_VERSION "\(.*\)"$/\1/p' "$SRC/lib/wisp_version.h")
[ -n "$VERSION" ] || die "no WISP_VERSION in lib/wisp_version.h"
ARCHIVE=""
NAME="docker.io/wisp/wisp:$VERSION"
PROXY=""
AGENT=""
WISPCTL=""
LOAD=1
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help)
      usage
      exit 0
      ;;
    --archive | --name | --proxy | --agent | --wispctl)
      [ $# -ge 2 ] || die "$1 needs a value"
      case $1 in
        --archive) ARCHIVE=$2 LOAD=0 ;;
        --name) NAME=$2 ;;
        --proxy) PROXY=$2 ;;
        --agent) AGENT=$2 ;;
        --wispctl) WISPCTL=$2 ;;
      esac
      shift
      ;;
    --no-load) LOAD=0 ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
  shift
done

if [ -z "$PROXY$AGENT$WISPCTL" ]; then
  # The default configuration is the optimized one (.bazelrc: build -c opt).
  (cd "$SRC" && bazel build //proxy:wisp-proxy //control:wisp-agent //control:wispctl) ||
    die "bazel build failed"
  BIN=$(cd "$SRC" && bazel info bazel-bin 2>/dev/null)
  PROXY=$BIN/proxy/wisp-proxy
  AGENT=$BIN/control/wisp-agent
  WISPCTL=$BIN/control/wispctl
elif [ -z "$PROXY" ] || [ -z "$AGENT" ] || [ -z "$WISPCTL" ]; then
  die "--proxy, --agent and --wispctl go together"
fi

git_src() { git -C "$SRC" "$@" 2>/dev/null; }
if [ -z "${WISP_REVISION:-}" ]; then
  WISP_REVISION=$(git_src rev-parse HEAD) || WISP_REVISION=unknown
  if [ "$WISP_REVISION" != unknown ] && [ -n "$(git_src status --porcelain --untracked-files=no)" ]; then
    WISP_REVISION=$WISP_REVISION-dirty
  fi
fi
[ -n "${WISP_IMAGE_SOURCE+set}" ] || WISP_IMAGE_SOURCE=$(git_src config --get remote.origin.url || true)
EPOCH=${SOURCE_DATE_EPOCH:-$(git_src log -1 --format=%ct || echo 0)}
[[ $EPOCH =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH $EPOCH: want seconds since 1970"

if [ -z "$ARCHIVE" ]; then
  mkdir -p "$SRC/dist"
  ARCHIVE=$SRC/dist/wisp-$VERSION.oci.tar
fi
/usr/bin/python3 "$SRC/deploy/image/oci_image.py" --out "$ARCHIVE" --name "$NAME" --version "$VERSION" \
  --revision "$WISP_REVISION" --epoch "$EPOCH" --proxy "$PROXY" --agent "$AGENT" --wispctl "$WISPCTL" \
  --iptables-script "$SRC/deploy/wisp-iptables.sh" --source "${WISP_IMAGE_SOURCE:-}" \
  --licenses "${WISP_IMAGE_LICENSES:-}"
echo "archive $ARCHIVE"

if [ "$LOAD" = 1 ]; then
  if command -v podman >/dev/null 2>&1; then
    podman load -q -i "$ARCHIVE" || die "podman load -i $ARCHIVE failed"
  else
    echo "$PROG: podman is not installed; load $ARCHIVE with your runtime" >&2
  fi
fi
