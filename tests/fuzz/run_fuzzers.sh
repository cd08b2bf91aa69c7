#!/usr/bin/env bash
# Fuzzes wisp's parsers with libFuzzer, outside Bazel (clang 14's
# -fsanitize=fuzzer; Debian: clang, libclang-rt-14-dev).
#
#   tests/fuzz/run_fuzzers.sh [SECONDS] [--merge] [TARGET...]
#
# SECONDS (default 60) is per target; TARGETs are names such as "sniff" or
# "csr" (default: every //tests/fuzz:<name>_fuzz_replay). Each target is
# built from its replay test's own sources and link options (bazel query,
# so this script never goes stale) with ASan and UBSan, then run over its
# seed corpus. New inputs go to a scratch directory; with --merge the ones
# that add coverage are merged into tests/fuzz/corpus/<name>/ (review and
# commit them). Crashes are saved as $OUT/artifacts/<name>-crash-* and make
# the script exit 1; reproduce one with `$OUT/<name>_fuzz FILE`, then add
# it to the corpus as a regression seed once fixed.
#
# $WISP_FUZZ_OUT (default /tmp/wisp-fuzz) holds binaries, logs and scratch
# corpora. Extra libFuzzer flags: $WISP_FUZZ_FLAGS (e.g. "-max_len=65536").
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
cd "$ROOT"
OUT=${WISP_FUZZ_OUT:-/tmp/wisp-fuzz}
SECONDS_EACH=60
MERGE=0
WANT=()
for a in "$@"; do
  case $a in
    --merge) MERGE=1 ;;
    -h | --help)
      sed -n '2,/^[^#]/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *[!0-9]*) WANT+=("$a") ;;
    *) SECONDS_EACH=$a ;;
  esac
done
CLANG=${CLANG:-clang}
command -v "$CLANG" >/dev/null || {
  echo "run_fuzzers: $CLANG not found (apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
}
mkdir -p "$OUT/gen" "$OUT/artifacts" "$OUT/scratch"

# The protobuf-c code, as //proto:wisp_v1_pb_c generates it.
/usr/bin/protoc-c --proto_path=proto --c_out="$OUT/gen" proto/wisp/v1/*.proto

CFLAGS=(-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Wall -Wno-unused-parameter
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
  -isystem /usr/include/android -I. -I"$OUT/gen")

# bazel query, quietly.
q() { bazel query "$@" 2>/dev/null; }

mapfile -t ALL < <(q 'attr(name, "_fuzz_replay$", kind(cc_test, //tests/fuzz:all))' | sed 's/.*://; s/_fuzz_replay$//' | sort)
[ ${#WANT[@]} -gt 0 ] || WANT=("${ALL[@]}")

# build NAME: compiles $OUT/NAME_fuzz; sets SRCS, LIBS and CORPORA.
build() {
  local name=$1 label=//tests/fuzz:$1_fuzz_replay
  SRCS=() LIBS=() CORPORA=()
  local f
  while read -r f; do
    case $f in
      //tests/fuzz:replay_main.c) ;;
      //proto:*.c) SRCS+=("$OUT/gen/${f#//proto:}") ;;
      //*.c) f=${f#//}; SRCS+=("${f/://}") ;;
    esac
  done < <(q "kind('file', deps($label))")
  # Link options of every library it depends on, in dependency order.
  local opts
  opts=$(q "deps($label)" --output=build | sed -n 's/^  linkopts = \[\(.*\)\],$/\1/p' | grep -o '"[^"]*"' | tr -d '"')
  for f in $opts; do
    [[ " ${LIBS[*]} " == *" $f "* ]] || LIBS+=("$f")
  done
  # The corpora are the replay test's arguments: the first is the seed
  # corpus new inputs are merged into.
  mapfile -t CORPORA < <(q "$label" --output=build | sed -n 's/^  args = \[\(.*\)\],$/\1/p' | grep -o '"[^"]*"' | tr -d '"')
  if [ ${#SRCS[@]} -eq 0 ] || [ ${#CORPORA[@]} -eq 0 ]; then
    echo "run_fuzzers: cannot find the sources or corpus of $label" >&2
    return 1
  fi
  "$CLANG" "${CFLAGS[@]}" "${SRCS[@]}" "${LIBS[@]}" -o "$OUT/${name}_fuzz"
}

status=0
SUMMARY=()
for name in "${WANT[@]}"; do
  if [[ " ${ALL[*]} " != *" $name "* ]]; then
    echo "run_fuzzers: no target $name (have: ${ALL[*]})" >&2
    exit 2
  fi
  echo "== $name: building"
  if ! build "$name"; then
    SUMMARY+=("$name: BUILD FAILED")
    status=1
    continue
  fi
  scratch=$OUT/scratch/$name
  mkdir -p "$scratch"
  log=$OUT/$name.log
  echo "== $name: fuzzing for ${SECONDS_EACH}s over ${CORPORA[*]} (log: $log)"
  rc=0
  # shellcheck disable=SC2086 # WISP_FUZZ_FLAGS is a list of flags
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$OUT/${name}_fuzz" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$OUT/artifacts/$name-" ${WISP_FUZZ_FLAGS:-} "$scratch" "${CORPORA[@]}" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || true)
  if [ "$rc" -ne 0 ]; then
    status=1
    why=$(grep -m1 -E '^==[0-9]+==ERROR|invariant broken|runtime error|ERROR: libFuzzer' "$log" || echo "exit $rc")
    SUMMARY+=("$name: FAILED after ${runs:-?} runs: $why")
    ls "$OUT/artifacts/$name-"* 2>/dev/null | sed 's/^/    /'
    continue
  fi
  if [ "$MERGE" = 1 ]; then
    before=$(ls "${CORPORA[0]}" | wc -l)
    "$OUT/${name}_fuzz" -merge=1 "${CORPORA[0]}" "$scratch" >>"$log" 2>&1
    added=$(($(ls "${CORPORA[0]}" | wc -l) - before))
  else
    added="not merged"
  fi
  SUMMARY+=("$name: ok, ${SECONDS_EACH}s, $runs runs, $cov, new corpus files: $added")
done

echo
printf '%s\n' "${SUMMARY[@]}"
exit $status
