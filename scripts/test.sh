#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install dependencies, build, and
# run every test: the ctest suite (unit, integration, fault, style, compose,
# swarm, hosts, slurm, deploy, kubernetes and valgrind tests), the same
# suite built with AddressSanitizer and UndefinedBehaviorSanitizer (without
# the style, compose, swarm, hosts, slurm, deploy and kubernetes tests),
# and the fuzzers (60 s per target).
# ZPIPE_TEST_QUICK=1 runs only the first part.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
# The web view's browser test also needs Chromium, Node.js and npm (not
# Debian's npm when a NodeSource nodejs, which conflicts with it, brings one).
web_packages=(chromium nodejs)
command -v npm >/dev/null 2>&1 || web_packages+=(npm)
# tests/slurm starts its own single-node Slurm cluster (slurm-wlm's daemons
# and munged, on a private config): 3.8 MB to fetch, 13 MB installed, ~12 s.
# The deploy tests (tests/deploy): systemd-analyze and systemd-sysusers,
# strace, promtool and prometheus, and PyYAML for the rules.
deploy_packages=(systemd strace prometheus python3-yaml)
# The Kubernetes tests: node and npm (above) for the manifests' validator,
# openssl for its fake API server, podman to run the pods (runc: crun
# refuses hybrid cgroups; netavark and aardvark-dns: its networks;
# catatonit: the pods' pause process; iptables: netavark's NAT).
k8s_packages=(openssl podman runc netavark aardvark-dns catatonit iptables)
zpipe_install_packages "${web_packages[@]}" slurm-wlm munge "${deploy_packages[@]}" \
    "${k8s_packages[@]}"
status=0

echo "== ctest (gcc, RelWithDebInfo)"
zpipe_build
# The valgrind runs of the unit tests time nothing and share nothing: one
# per core, beside the rest (which run one at a time: many are timed).
(cd "$ZPIPE_BUILD" && ctest --output-on-failure --timeout 900 -LE valgrind "$@") || status=1
(cd "$ZPIPE_BUILD" && ctest --output-on-failure --timeout 900 -L valgrind \
    -j"$(nproc)" "$@") || status=1
[ "${ZPIPE_TEST_QUICK:-0}" = 1 ] && exit $status

echo "== ctest under AddressSanitizer + UndefinedBehaviorSanitizer"
zpipe_build "$ZPIPE_ROOT/build-asan" -DZPIPE_SANITIZE=ON
(cd "$ZPIPE_ROOT/build-asan" &&
    ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1 \
    LSAN_OPTIONS=suppressions="$ZPIPE_ROOT/tests/lsan.supp" \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure --timeout 900 -LE 'style|compose|hosts|swarm|slurm|deploy|kubernetes' "$@") || status=1

echo "== fuzzing"
bash "$ZPIPE_ROOT/scripts/fuzz.sh" || status=1

exit $status
