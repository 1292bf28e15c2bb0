#!/usr/bin/env bash
# A zpipe cluster as a service on this machine, fed and read from the
# command line: a sink keeping every job's records (--spool), a ventilator
# taking jobs on its intake, two workers; then two jobs submitted at once,
# waited for, and read back.
#
#   bash examples/shell/cluster.sh [BIN_DIR]     (default: build/bin)
#
# Across hosts it is the same with tcp:// endpoints (see README.md).
set -euo pipefail
bin=${1:-$(dirname "$0")/../../build/bin}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
mkdir "$dir/spool"

"$bin/zpipe-sink" --results "ipc://$dir/results" --control "ipc://$dir/control" \
    --publish none --spool "$dir/spool" 2>"$dir/sink.log" &
"$bin/zpipe-ventilator" --intake "ipc://$dir/intake" --bind "ipc://$dir/dispatch" \
    --sink "ipc://$dir/control" 2>"$dir/ventilator.log" &
for _ in 1 2; do
    "$bin/zpipe-worker" --ventilator "ipc://$dir/dispatch" --sink "ipc://$dir/results" \
        --plugin sha256 --plugin echo 2>>"$dir/workers.log" &
done

# Two jobs at once: SHA-256 of 1..5000, and an echo of some words.
job1=$(seq 1 5000 | "$bin/zpipe" submit --ventilator "ipc://$dir/intake" --plugin sha256)
job2=$(printf '%s\n' alpha beta gamma | "$bin/zpipe" submit --ventilator "ipc://$dir/intake" \
    --plugin echo --priority 5)

"$bin/zpipe" wait --sink "ipc://$dir/control" "$job1"
"$bin/zpipe" wait --sink "ipc://$dir/control" "$job2"
"$bin/zpipe" results --sink "ipc://$dir/control" "$job2"
echo "first record of $job1:"
"$bin/zpipe" results --sink "ipc://$dir/control" "$job1" | grep '"task":0,'
