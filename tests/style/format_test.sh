#!/usr/bin/env bash
# The tree follows .clang-format (clang-format 14, Debian 12): every C file
# tracked by git, as `clang-format -i FILE` would leave it. And the check
# can fail: a file with one misplaced brace is caught.
#   format_test.sh
source "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
FMT=$(command -v clang-format-14 || command -v clang-format) || { skip "C files follow .clang-format" "clang-format is not installed"; finish; }

# unformatted FILE...: the files clang-format would change.
unformatted() {
  local f
  for f in "$@"; do
    "$FMT" --style=file:"$WISP_SRC/.clang-format" "$f" | cmp -s - "$f" || echo "${f#"$WISP_SRC"/}"
  done
}

mapfile -t files < <(cd "$WISP_SRC" && git ls-files -- '*.c' '*.h' 2>/dev/null | sed "s|^|$WISP_SRC/|")
if [ "${#files[@]}" -eq 0 ]; then
  mapfile -t files < <(find "$WISP_SRC/lib" "$WISP_SRC/proxy" "$WISP_SRC/control" "$WISP_SRC/tests" \
    -name '*.[ch]' -not -path '*/node_modules/*' | sort)
fi
check "found the tree's C files" test "${#files[@]}" -gt 100
bad=$(unformatted "${files[@]}")
if [ -z "$bad" ]; then ok "all ${#files[@]} C files follow .clang-format"
else not_ok "all C files follow .clang-format (run: clang-format -i FILE)" "$(echo "$bad" | head -20)"; fi

printf 'int f(void)\n{ return 1; }\n' >"$WORK/bad.c"
check "a misformatted file is caught" test "$(unformatted "$WORK/bad.c")" = "$WORK/bad.c"
finish
