#!/usr/bin/env bash
# Installs what the benchmark compares against (Debian's python3-distributed,
# parallel and gnuplot), builds, and runs bench/run.py with the given options.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
zpipe_install_packages python3-distributed gnuplot-nox parallel
zpipe_build
exec /usr/bin/python3 "$ZPIPE_ROOT/bench/run.py" --build "$ZPIPE_BUILD" "$@"
