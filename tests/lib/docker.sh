# Sourced by the tests that run the zpipe image (tests/compose,
# tests/swarm): messages, phase timing, SKIP/FAIL, installing Debian's Docker,
# starting a dockerd when none runs (and stopping only that one), the base
# image built offline with debootstrap when it cannot be pulled, and the
# zpipe image build. Before sourcing, set ZD_TEST (the test's name in every
# line) and WORK (a private temporary folder).
#
# The image is built with the classic builder, as docker-compose 1.29 builds
# it, so the compose and swarm tests share one build cache: the second to
# run finds every layer cached and gets the same image id.

SRC=${SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
ZD_BASE=debian:bookworm-slim
ZD_STARTED_DOCKERD=""
T_START=$EPOCHREALTIME
T_PHASE=$T_START

log() { echo "$ZD_TEST: $*"; }
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
phase_done() { # NAME: prints how long the phase that just ended took
    log "phase $1: $(elapsed "$T_PHASE") s"
    T_PHASE=$EPOCHREALTIME
}
skip() {
    echo "***************************************************************"
    echo "SKIP $ZD_TEST: NOT RUN: $*"
    echo "***************************************************************"
    exit 77
}
fail() {
    echo "FAIL $ZD_TEST: $*"
    exit 1
}

# The client that comes with the daemon the tests install (Debian's, at
# /usr/bin), not whichever newer one is first on PATH: `docker stack` and
# the builder flags differ between client versions.
docker() {
    if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else command docker "$@"; fi
}

apt_install() { # PACKAGE...: installs those missing, from Debian
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    apt-get -o DPkg::Lock::Timeout=600 update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
            --no-install-recommends "${missing[@]}" >"$WORK/apt.log" 2>&1 ||
        { tail -20 "$WORK/apt.log"; return 1; }
}

zd_start_dockerd() { # the dockerd that runs, or one of our own in the background
    docker info >/dev/null 2>&1 && return 0
    command -v dockerd >/dev/null || skip "no dockerd"
    log "starting dockerd (log: $WORK/dockerd.log)"
    # Its own session and no inherited descriptors, so ctest does not wait
    # on its output; zd_stop_dockerd stops it again.
    setsid dockerd >"$WORK/dockerd.log" 2>&1 </dev/null &
    ZD_STARTED_DOCKERD=$!
    for _ in $(seq 120); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$ZD_STARTED_DOCKERD" 2>/dev/null || break
        sleep 0.5
    done
    if ! docker info >/dev/null 2>&1; then
        tail -20 "$WORK/dockerd.log"
        skip "dockerd does not start here (log above)"
    fi
}

zd_stop_dockerd() { # the dockerd zd_start_dockerd started, if any
    [ -n "$ZD_STARTED_DOCKERD" ] || return 0
    # Another test on this machine may have found our dockerd running and
    # be using it: leave it to that test's containers.
    local others
    others=$(docker ps -q 2>/dev/null | wc -l)
    if [ "$others" -gt 0 ]; then
        log "left dockerd (pid $ZD_STARTED_DOCKERD) running: $others containers of others use it"
        return 0
    fi
    kill "$ZD_STARTED_DOCKERD" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$ZD_STARTED_DOCKERD" 2>/dev/null || break; sleep 0.2; done
}

zd_finish() { # RC: the end of a test's cleanup: stops our dockerd, removes
    # $WORK (kept with ZPIPE_KEEP=1), says the wall time since $T_START and
    # the verdict, and exits RC (77: skipped, said already)
    local rc=$1
    zd_stop_dockerd
    if [ -n "${ZPIPE_KEEP:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    log "total wall time $(elapsed "$T_START") s"
    case $rc in
    0) echo "1 passed, 0 failed" ;;
    77) ;;
    *) echo "0 passed, 1 failed" ;;
    esac
    exit "$rc"
}

zd_apt_mirror() { # the first `deb` source of bookworm in the host's apt configuration
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'BEGIN { RS = ""; FS = "\n" }
        {
            types = uris = suites = ""; enabled = 1
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^Types:/) types = $i
                else if ($i ~ /^URIs:/) uris = $i
                else if ($i ~ /^Suites:/) suites = $i
                else if ($i ~ /^Enabled:[ \t]*no/) enabled = 0
            }
            if (enabled && types ~ /[ \t]deb([ \t]|$)/ && suites ~ /[ \t]bookworm([ \t]|$)/) {
                sub(/^URIs:[ \t]*/, "", uris); split(uris, u, /[ \t]+/); print u[1]; exit
            }
        }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '$1 == "deb" {
            i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
            if ($(i + 1) == "bookworm") { print $i; exit }
        }' "$f"
    done
}

zd_base_image() { # debian:bookworm-slim: present, pulled, or built offline from the host's archive
    if docker image inspect "$ZD_BASE" >/dev/null 2>&1; then
        log "$ZD_BASE is present"
        return 0
    fi
    if timeout 60 docker pull -q "$ZD_BASE" >/dev/null 2>&1; then
        log "$ZD_BASE pulled"
        return 0
    fi
    local mirror root t
    mirror=$(zd_apt_mirror | head -n 1)
    [ -n "$mirror" ] || skip "no $ZD_BASE, no registry, and no bookworm source in /etc/apt to debootstrap from"
    apt_install debootstrap || skip "cannot install debootstrap"
    log "building $ZD_BASE with debootstrap --variant=minbase bookworm from the host's apt source"
    root=$WORK/rootfs
    t=$EPOCHREALTIME
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
        { tail -20 "$WORK/debootstrap.log"; fail "debootstrap failed"; }
    log "debootstrap: $(elapsed "$t") s"
    # Slim like the official image: no package lists, caches, documentation.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/usr/share/doc/* \
        "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
        'path-exclude /usr/share/locale/*' >"$root/etc/dpkg/dpkg.cfg.d/docker-slim"
    tar -C "$root" -c . | docker import -c 'CMD ["bash"]' \
        -m "debootstrap --variant=minbase bookworm (zpipe tests)" - "$ZD_BASE" >/dev/null ||
        fail "docker import failed"
    rm -rf "$root"
}

zd_build_image() { # TAG: the zpipe image from the Dockerfile (cached layers reused)
    log "docker build (image $1)"
    DOCKER_BUILDKIT=0 docker build -t "$1" "$SRC" >"$WORK/build.log" 2>&1 ||
        { tail -40 "$WORK/build.log"; fail "docker build failed"; }
    local cached
    cached=$(grep -c "Using cache" "$WORK/build.log")
    log "image $1 = $(docker image inspect -f '{{.Id}}' "$1" | cut -c1-19) ($cached steps from the cache)"
}
