#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what is missing, builds,
# runs every test twice (plain, then under ASan+UBSan) and ends with
# "N passed, N failed" counting every test case that ran.
set -uo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
bash deploy/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

PASSED=0
FAILED=0
SKIPPED=0
BAZEL_OPTS=(--color=no --curses=no --noshow_progress)
[ "${CI:-}" = true ] && BAZEL_OPTS+=(--jobs=2)

# count_run LABEL SUMMARY TESTLOGS: adds the TAP results of every test.log
# of the run whose output is SUMMARY, read under TESTLOGS (that run's own
# directory: the bazel-testlogs symlink follows whichever configuration any
# later bazel command built). A target that failed without a "not ok" line
# (crash, timeout, a signal) counts as one failure, with the exit status
# Bazel recorded, so nothing that broke goes uncounted or unexplained.
count_run() {
  local label=$1 summary=$2 log p f why
  while read -r target status; do
    log="${3}/${target#//}"
    log="${log/://}/test.log"
    p=0
    f=0
    if [ -f "$log" ]; then
      # A skip is "ok ... # SKIP" (our scripts) or "not ok ... # SKIP" (cmocka).
      p=$(grep -E '^ok\b' "$log" | grep -vc '# SKIP')
      SKIPPED=$((SKIPPED + $(grep -E '^(not )?ok\b' "$log" | grep -c '# SKIP')))
      f=$(grep -E '^not ok\b' "$log" | grep -vc '# SKIP')
      grep -E '^not ok\b' "$log" | grep -v '# SKIP' | sed "s|^|[$label] $target: |"
    fi
    if [ "$status" != PASSED ] && [ "$f" -eq 0 ]; then
      f=1
      why=$(grep -o '<error message="[^"]*"' "${log%.log}.xml" 2>/dev/null | head -1 | sed 's/.*message="//; s/"$//')
      echo "[$label] $target: $status${why:+, $why} (see $log)"
    fi
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
  done < <(grep -E '^//[^ ]+ +(\(cached\) )?(PASSED|FAILED|TIMEOUT|FLAKY|NO STATUS|FAILED TO BUILD)' "$summary" |
    sed -E 's/ +\(cached\)//' | awk '{print $1, $2}')
}

run_suite() { # run_suite LABEL BAZEL_ARGS...
  local label=$1
  shift
  local out
  out=$(mktemp)
  echo "== bazel test $* //..." >&2
  bazel test "${BAZEL_OPTS[@]}" "$@" //... 2>&1 | tee "$out" | grep -E '^//|^(INFO: )?Build|ERROR' >&2
  if grep -q 'FAILED: Build did NOT complete' "$out" && ! grep -qE '^//' "$out"; then
    echo "[$label] build failed" >&2
    FAILED=$((FAILED + 1))
  fi
  count_run "$label" "$out" "$(bazel info "${BAZEL_OPTS[@]}" "$@" bazel-testlogs 2>/dev/null || echo bazel-testlogs)"
  rm -f "$out"
}

run_suite plain
# The sanitizer build keeps its own output tree (platform_suffix=asan).
run_suite asan --config=asan

echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" -eq 0 ]
