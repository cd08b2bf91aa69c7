#!/usr/bin/env bash
# tests/lib/harness.sh itself: its cleanup stops only what the test started
# and has not reaped yet, and a test's exit status is its checks' verdict.
# Each case runs a small test script of its own (bash, sourcing the harness).
source "$(dirname "$(readlink -f "$0")")/harness.sh"
HARNESS=$WISP_SRC/tests/lib/harness.sh

# inner NAME BODY: a test script sourcing the harness, run; its output in
# $WORK/NAME.out, its exit status in RC.
inner() {
  printf 'source %q\n%s\n' "$HARNESS" "$2" >"$WORK/$1.sh"
  bash "$WORK/$1.sh" >"$WORK/$1.out" 2>&1
  RC=$?
}

# A process this shell did not start stands for a recycled PID: the number
# of a client the test started and reaped, now owned by someone else.
sleep 60 &
STRANGER=$!
inner stale "
start_bg \"\$WORK/c\" true
wait \"\$LAST_PID\"
PIDS+=($STRANGER) # as if the reaped client's number had been recycled
start_bg \"\$WORK/live\" sleep 60
echo \"live=\$LAST_PID\"
ok done
finish"
if kill -0 "$STRANGER" 2>/dev/null; then
  ok "cleanup leaves alone a PID the test already reaped, now someone else's"
else
  not_ok "cleanup leaves alone a PID the test already reaped, now someone else's" "it was killed"
fi
kill "$STRANGER" 2>/dev/null
wait "$STRANGER" 2>/dev/null
live=$(sed -n 's/^live=//p' "$WORK/stale.out")
if [ -n "$live" ] && ! kill -0 "$live" 2>/dev/null; then
  ok "... and stops the processes the test started that still run"
else
  not_ok "... and stops the processes the test started that still run" "pid ${live:-?} alive"
fi
expect_eq "... and the test passes" "0 # 1 passed, 0 failed" "$RC $(tail -1 "$WORK/stale.out")"

inner failing 'ok a
not_ok b
finish'
expect_eq "a failed check: exit 1" "1 # 1 passed, 1 failed" "$RC $(tail -1 "$WORK/failing.out")"

# Cleanup's own commands may fail (a process that is gone, files that
# cannot be removed): the verdict is the checks'.
inner noisy 'start_bg "$WORK/x" sh -c "exit 3"
sleep 0.2
ok a
false
finish'
expect_eq "cleanup commands that fail do not fail a passing test" "0 # 1 passed, 0 failed" \
  "$RC $(tail -1 "$WORK/noisy.out")"

finish
