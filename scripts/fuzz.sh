#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan, UBSan) with the protobuf-c
# runtime compiled in from Debian's source package, replays the committed
# corpus, then fuzzes each target for ZPIPE_FUZZ_SECONDS (default 60), one
# target per core at a time.
# Prints the executions per target. Any crash fails the script.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
zpipe_install_packages clang libclang-rt-14-dev dpkg-dev

secs=${ZPIPE_FUZZ_SECONDS:-60}
out=$ZPIPE_ROOT/build-fuzz
mkdir -p "$out/src"

# The runtime's source, from the same archive the machine installs from.
src=$(ls -d "$out"/src/protobuf-c-*/ 2>/dev/null | head -n 1 || true)
if [ -z "$src" ]; then
    if ! (cd "$out/src" && apt-get source -qq protobuf-c >/dev/null 2>&1); then
        # No deb-src entries: derive them from this machine's own deb822
        # sources (no archive address is written into the repository).
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -f "$f" ] || continue
            sed -n 's/^Types:.*\bdeb\b.*/Types: deb-src/p; /^Types:/!p' "$f"
            echo
        done | $sudo tee /etc/apt/sources.list.d/zpipe-deb-src.sources >/dev/null
        $sudo apt-get update -qq
        (cd "$out/src" && apt-get source -qq protobuf-c >/dev/null)
    fi
    src=$(ls -d "$out"/src/protobuf-c-*/ | head -n 1)
fi
echo "fuzz: protobuf-c runtime from $src"

CC=clang cmake -S "$ZPIPE_ROOT/tests/fuzz" -B "$out/build" \
    -DZPIPE_PROTOBUF_C_SRC="$src" >/dev/null
cmake --build "$out/build" -j"$(nproc)" >/dev/null

export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=detect_leaks=1
# One target per core at a time (each is single-threaded): the same
# seconds of fuzzing per target in half the wall time on 2 cores.
fuzz_one() {
    local t=$1
    local corpus=$ZPIPE_ROOT/tests/fuzz/corpus/$t
    local work=$out/corpus-$t
    mkdir -p "$work"
    # The committed corpus must replay cleanly.
    "$out/build/fuzz_$t" -runs=0 "$corpus" >"$out/replay-$t.log" 2>&1 || {
        { echo "fuzz: $t: corpus replay FAILED"; tail -n 30 "$out/replay-$t.log"; } \
            >"$out/result-$t.txt"; return 1; }
    if "$out/build/fuzz_$t" -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="$out/crash-$t-" "$work" "$corpus" >"$out/fuzz-$t.log" 2>&1; then
        local runs
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/fuzz-$t.log" | grep -o '[0-9]*$')
        echo "fuzz: $t: ${runs:-?} executions in ${secs} s, no crash" >"$out/result-$t.txt"
    else
        { echo "fuzz: $t: FAILED"; tail -n 40 "$out/fuzz-$t.log"; } >"$out/result-$t.txt"
        return 1
    fi
}
targets=(decode journal opts recovery)
jobs_max=$(nproc)
status=0
pids=()
for t in "${targets[@]}"; do
    rm -f "$out/result-$t.txt"
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do
        wait -n || status=1
    done
    fuzz_one "$t" &
    pids+=($!)
done
for pid in "${pids[@]}"; do
    wait "$pid" || status=1
done
for t in "${targets[@]}"; do
    cat "$out/result-$t.txt" 2>/dev/null || { echo "fuzz: $t: no result"; status=1; }
done
[ $status -eq 0 ] && echo "${#targets[@]} passed, 0 failed" || echo "fuzz: FAILED"
exit $status
