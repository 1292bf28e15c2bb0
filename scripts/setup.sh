#!/usr/bin/env bash
# Installs what zpipe needs on Debian 12 (apt) and builds it into build/.
# Sourced by demo.sh and test.sh; safe to run again (skips what is there).
set -euo pipefail

ZPIPE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ZPIPE_BUILD=${ZPIPE_BUILD:-$ZPIPE_ROOT/build}

# Build and test dependencies, all from Debian's archive. libczmq-dev and
# libmicrohttpd-dev: headers to build; the binaries load libczmq4 and
# libmicrohttpd12 (which the -dev packages install) only when a feature
# needs them (common/zp_dyn.h).
ZPIPE_PACKAGES=(build-essential cmake pkg-config libzmq3-dev libczmq-dev
    libprotobuf-c-dev protobuf-c-compiler libsodium-dev protobuf-compiler
    python3 python3-zmq python3-protobuf python3-jsonschema clang-format
    valgrind clang libclang-rt-14-dev dpkg-dev zlib1g-dev libmicrohttpd-dev
    python3-dev libpython3.11-dev)

zpipe_install_packages() {
    local missing=()
    for p in "${ZPIPE_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "setup: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
}

# zpipe_build [BUILD_DIR [CMAKE_ARGS...]]
zpipe_build() {
    local dir=${1:-$ZPIPE_BUILD}
    [ $# -gt 0 ] && shift
    cmake -S "$ZPIPE_ROOT" -B "$dir" -DZPIPE_WERROR=ON \
        -DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
    cmake --build "$dir" -j"$(nproc)" >/dev/null
}
