#!/usr/bin/env bash
# Fails when a C (or C++) source file differs from what clang-format makes of it
# (.clang-format at the top of the tree). Fix with:
#   clang-format -i $(git ls-files '*.c' '*.h' '*.cpp')
set -euo pipefail
cd "$1"
if ! command -v clang-format >/dev/null; then
    echo "FAIL: clang-format is not installed (apt-get install clang-format)"
    exit 1
fi
dirs=()
for d in common include ventilator workers sink zpipe plugins tests bench examples; do
    [ -d "$d" ] && dirs+=("$d")
done
files=$(find "${dirs[@]}" -name '*.[ch]' -o -name '*.cpp' | sort)
bad=0
for f in $files; do
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
        echo "not formatted: $f"
        bad=$((bad + 1))
    fi
done
n=$(echo "$files" | wc -w)
echo "$((n - bad)) passed, $bad failed"
[ "$bad" -eq 0 ]
