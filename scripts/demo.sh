#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install dependencies, build, and
# run a real job on 1 worker and then on every CPU, printing the speedup.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
zpipe_install_packages
zpipe_build >/dev/null

zpipe=$ZPIPE_BUILD/bin/zpipe
n=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 4,000 tasks of 1 ms of CPU time each (the spin plugin), then SHA-256 of
# 200,000 lines, checked against sha256sum.
awk 'BEGIN { for (i = 0; i < 4000; i++) print 1000 }' > "$work/spin.txt"
t() { local s=$(date +%s.%N); "$@"; awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN { print b - a }'; }
echo "demo: 4000 tasks x 1 ms CPU (plugin spin)"
t1=$(t "$zpipe" run --plugin spin --workers 1 --input "$work/spin.txt" \
        --output /dev/null --no-progress 2>/dev/null)
tn=$(t "$zpipe" run --plugin spin --workers "$n" --input "$work/spin.txt" \
        --output /dev/null --no-progress 2>/dev/null)
printf 'demo:   1 worker:  %.2f s\ndemo:   %d workers: %.2f s\ndemo:   speedup %.2fx on %d CPUs\n' \
    "$t1" "$n" "$tn" "$(awk -v a="$t1" -v b="$tn" 'BEGIN { print a / b }')" "$n"

echo "demo: SHA-256 of 200,000 lines (plugin sha256), $n workers"
seq 1 200000 | "$zpipe" run --plugin sha256 --workers "$n" --format lines \
    --ordered > "$work/digests.txt"
head -n 3 "$work/digests.txt" | sed 's/^/demo:   /'
want=$(printf '1' | sha256sum | cut -d' ' -f1)
[ "$(head -n 1 "$work/digests.txt")" = "$want" ] && echo "demo:   first digest matches sha256sum"
