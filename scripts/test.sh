#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install dependencies, build,
# and run every test through ctest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
zpipe_install_packages
zpipe_build
cd "$ZPIPE_BUILD"
ctest --output-on-failure --timeout 600 "$@"
