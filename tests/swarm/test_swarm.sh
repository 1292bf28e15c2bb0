#!/usr/bin/env bash
# ctest `swarm`: deploy/swarm/stack.yml on a single-node Docker Swarm, end
# to end. Installs Docker from Debian and starts dockerd if needed (as
# tests/compose does, through tests/lib/docker.sh), builds the image (every
# layer cached when tests/compose built it), creates docker_gwbridge with
# 127.0.0.1 as its host binding address, then `docker swarm init` advertising
# on loopback with an address pool of its own inside 10.0.0.0/8 (Docker's
# default swarm range), keys made with `zpipe keygen` and handed out as
# secrets and configs, `docker stack deploy`. Then a 10,000-task SHA-256
# job fed through the published intake in steps: 2 workers, `docker service
# scale` to 6 mid-job (the new ones must take tasks), `docker service update
# --force` of the workers mid-job (a rolling restart), the rest; every record
# checked against Python's hashlib: lost, duplicated, unexpected and wrong
# must all be 0. Ends with `docker stack rm`, the stack's volumes removed,
# `docker swarm leave --force`, docker_gwbridge removed, and a check that
# nothing of it is left (also on failure).
# A swarm that was active before the test is not ours: the test skips.
# Exit 0 passed, 1 failed, 77 skipped (not root, Docker cannot run here, or
# a swarm is already active).
#
#   bash tests/swarm/test_swarm.sh        (as root; ZPIPE_KEEP=1 keeps logs)
set -uo pipefail

ZD_TEST=swarm
WORK=$(mktemp -d "${TMPDIR:-/tmp}/zpipe-swarm.XXXXXX")
source "$(dirname "${BASH_SOURCE[0]}")/../lib/docker.sh"
PY=/usr/bin/python3
N=10000
IMAGE=zpipe:swarm-test
STACK=zpswarm$$
JOB=swarm-job
STACK_FILE=$SRC/deploy/swarm/stack.yml
SWARM_CREATED="" GWBRIDGE_CREATED="" DEPLOYED=""
SUBMIT="" UPDATER="" FEED_OPEN=""

# Every container the test runs itself (clients) carries this label.
LABEL=zpipe.test=$STACK
crun() { docker run --rm --label "$LABEL" -v "$WORK/keys:/keys:ro" "$@"; }

dump_logs() {
    local s
    for s in sink ventilator worker; do
        log "last lines of ${STACK}_$s:"
        docker service logs --no-trunc --tail 30 "${STACK}_$s" 2>&1 | tail -60
    done
    docker stack ps --no-trunc "$STACK" 2>&1 | head -40
}

leftovers() { # what of this test is still on the daemon, one line each
    docker ps -aq --filter "label=com.docker.stack.namespace=$STACK" | sed 's/^/container /'
    docker ps -aq --filter "label=$LABEL" | sed 's/^/client container /'
    docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK" | sed 's/^/volume /'
    docker network ls -q --filter "name=${STACK}_" | sed 's/^/network /'
    if [ -n "$SWARM_CREATED" ]; then
        local state
        state=$(docker info -f '{{.Swarm.LocalNodeState}}' 2>/dev/null)
        [ "$state" = inactive ] || echo "swarm $state"
    fi
    if [ -n "$GWBRIDGE_CREATED" ] && docker network inspect docker_gwbridge >/dev/null 2>&1; then
        echo "network docker_gwbridge"
    fi
}

remove_stack() {
    docker stack rm "$STACK" >"$WORK/rm.log" 2>&1 || { cat "$WORK/rm.log"; return 1; }
    # The services go at once, their containers and the network a little
    # later; the named volumes stay until removed (stack rm never does).
    local deadline=$((SECONDS + 60))
    while [ -n "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] ||
        [ -n "$(docker network ls -q --filter "name=${STACK}_")" ]; do
        [ $SECONDS -lt $deadline ] || { log "the stack's containers or network outlived 60 s"; return 1; }
        sleep 0.5
    done
    local v
    for v in $(docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK"); do
        docker volume rm "$v" >/dev/null || return 1
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$FEED_OPEN" ] && exec 7>&-
    [ -n "$UPDATER" ] && kill "$UPDATER" 2>/dev/null
    [ -n "$SUBMIT" ] && kill "$SUBMIT" 2>/dev/null
    local c
    for c in $(docker ps -aq --filter "label=$LABEL" 2>/dev/null); do docker rm -f "$c" >/dev/null 2>&1; done
    T_PHASE=$EPOCHREALTIME
    if [ -n "$DEPLOYED" ]; then
        [ "$rc" -ne 0 ] && dump_logs
        remove_stack || rc=1
        phase_done "stack rm"
    fi
    if [ -n "$SWARM_CREATED" ]; then
        docker swarm leave --force >"$WORK/leave.log" 2>&1 || { cat "$WORK/leave.log"; rc=1; }
    fi
    if [ -n "$GWBRIDGE_CREATED" ]; then
        # Free once the ingress sandbox has left it, a moment after the leave.
        for _ in $(seq 50); do
            docker network rm docker_gwbridge >/dev/null 2>&1 && break
            sleep 0.2
        done
    fi
    if [ -n "$SWARM_CREATED$DEPLOYED" ]; then
        local left
        left=$(leftovers)
        if [ -n "$left" ]; then
            log "left behind:"
            echo "$left"
            rc=1
        else
            log "nothing left behind: stack, volumes, clients, swarm and docker_gwbridge gone"
        fi
        phase_done "swarm leave"
    fi
    zd_finish "$rc"
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
[ "$(id -u)" -eq 0 ] || skip "needs root (apt-get install docker.io, dockerd, docker swarm init)"

apt_install docker.io || skip "cannot install docker.io"
phase_done install
zd_start_dockerd
phase_done dockerd

# --- a swarm of our own, or none: another's is never touched
state=$(docker info -f '{{.Swarm.LocalNodeState}}' 2>/dev/null)
[ "$state" = inactive ] ||
    skip "this Docker is already in a swarm (state '$state', not made by this test): not touching it"

zd_base_image
phase_done "base image"
zd_build_image "$IMAGE"
phase_done build

# --- swarm: docker_gwbridge first (its host binding address is where swarm
# publishes ports in mode: host), then init on loopback
if docker network inspect docker_gwbridge >/dev/null 2>&1; then
    log "docker_gwbridge exists already (not ours): ports bind where it says"
else
    docker network create --driver bridge \
        -o com.docker.network.bridge.name=docker_gwbridge \
        -o com.docker.network.bridge.enable_icc=false \
        -o com.docker.network.bridge.enable_ip_masquerade=true \
        -o com.docker.network.bridge.host_binding_ipv4=127.0.0.1 \
        docker_gwbridge >/dev/null || fail "cannot create docker_gwbridge"
    GWBRIDGE_CREATED=1
fi
# An address pool inside Docker's default swarm range (10.0.0.0/8) that no
# route or address of this host overlaps, and a free port for the manager.
read -r POOL SWARM_PORT INTAKE_PORT WEB_PORT < <($PY - "$SRC/tests/integration" <<'EOF'
import ipaddress, random, subprocess, sys
sys.path.insert(0, sys.argv[1])
import zptest
used = []
for cmd in (["ip", "-4", "-o", "addr"], ["ip", "-4", "route", "show", "table", "all"]):
    for tok in subprocess.run(cmd, capture_output=True, text=True).stdout.split():
        try:
            net = ipaddress.ip_network(tok, strict=False)
        except ValueError:
            continue
        if net.prefixlen > 0:
            used.append(net)
cands = [ipaddress.ip_network("10.%d.0.0/16" % x) for x in range(200, 255)]
random.shuffle(cands)
pool = next(c for c in cands if not any(c.overlaps(u) for u in used))
print(pool, *zptest.free_ports(3))
EOF
)
[ -n "${WEB_PORT:-}" ] || fail "no free address pool or ports"
SWARM_CREATED=1
docker swarm init --advertise-addr 127.0.0.1 --listen-addr "127.0.0.1:$SWARM_PORT" \
    --default-addr-pool "$POOL" --default-addr-pool-mask-length 24 >"$WORK/init.log" 2>&1 ||
    { cat "$WORK/init.log"; fail "docker swarm init"; }
log "swarm: single node, advertised on 127.0.0.1:$SWARM_PORT, address pool $POOL"
phase_done "swarm init"

# --- keys, made by the image's zpipe keygen; the stack turns them into
# secrets (secret keys) and configs (public keys) when deployed
mkdir -p "$WORK/keys"
docker run --rm --label "$LABEL" -u 0 -v "$WORK/keys:/keys" "$IMAGE" \
    zpipe keygen --dir /keys sink ventilator worker client >/dev/null || fail "zpipe keygen"
chown -R 10001:10001 "$WORK/keys" # the client key, for the image's user

# --- deploy
export ZPIPE_KEYS=$WORK/keys ZPIPE_IMAGE=$IMAGE ZPIPE_SWARM_INTAKE_PORT=$INTAKE_PORT \
    ZPIPE_SWARM_WEB_PORT=$WEB_PORT ZPIPE_SWARM_WORKERS=2
DEPLOYED=1
t_deploy=$EPOCHREALTIME
docker stack deploy --resolve-image never -c "$STACK_FILE" "$STACK" >"$WORK/deploy.log" 2>&1 ||
    { cat "$WORK/deploy.log"; fail "docker stack deploy"; }
[ "$(docker secret ls -q --filter "label=com.docker.stack.namespace=$STACK" | wc -l)" -eq 3 ] &&
    [ "$(docker config ls -q --filter "label=com.docker.stack.namespace=$STACK" | wc -l)" -eq 4 ] ||
    { docker secret ls; docker config ls; fail "the stack did not create 3 secrets and 4 configs"; }
vent_ctr() { docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_ventilator" | head -n 1; }
vstatus() { # zpipe status in the ventilator's container, with its own key
    local v
    v=$(vent_ctr)
    [ -n "$v" ] && docker exec "$v" zpipe status --timeout-ms 3000 --ventilator tcp://127.0.0.1:5561 \
        --curve-secret /run/secrets/ventilator.key_secret --ventilator-key /etc/zpipe/allow/ventilator.key
}
wait_workers() { # N: the ventilator lists N workers
    local deadline=$((SECONDS + 90))
    until vstatus 2>/dev/null | grep -q "^[0-9]* jobs, $1 workers"; do
        [ $SECONDS -lt $deadline ] || { vstatus; fail "$1 workers did not register within 90 s"; }
        sleep 0.3
    done
}
worker_ctrs() { docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_worker" | sort; }
wait_workers 2
log "deployed: sink, ventilator, 2 workers registered in $(elapsed "$t_deploy") s"

# Only the intake and the web view are published, on 127.0.0.1 when the
# gwbridge is ours.
for s in sink:$WEB_PORT:9100 ventilator:$INTAKE_PORT:5561 worker::; do
    IFS=: read -r svc pub tgt <<<"$s"
    ports=$(docker service inspect -f '{{range .Endpoint.Ports}}{{.PublishedPort}}:{{.TargetPort}}/{{.PublishMode}} {{end}}' "${STACK}_$svc")
    want=""
    [ -n "$pub" ] && want="$pub:$tgt/host "
    [ "$ports" = "$want" ] || fail "${STACK}_$svc publishes '$ports', expected '$want'"
done
for p in "$INTAKE_PORT" "$WEB_PORT"; do
    addrs=$(ss -ltnH "sport = :$p" | awk '{ print $4 }' | sort -u | tr '\n' ' ')
    if [ -n "$GWBRIDGE_CREATED" ]; then
        [ "$addrs" = "127.0.0.1:$p " ] || fail "port $p listens on '$addrs', expected 127.0.0.1 only"
    fi
    log "published port $p listens on $addrs"
done
phase_done deploy

# --- the job, fed in steps through the published intake by a client outside
# the swarm (host network), so that the scale and the restart fall mid-job
mkfifo "$WORK/feed"
crun -i --network host "$IMAGE" zpipe submit --ventilator "tcp://127.0.0.1:$INTAKE_PORT" \
    --curve-secret /keys/client.key_secret --ventilator-key /keys/ventilator.key \
    --plugin sha256 --job "$JOB" <"$WORK/feed" >"$WORK/submit.out" 2>"$WORK/submit.err" &
SUBMIT=$!
exec 7>"$WORK/feed"
FEED_OPEN=1
fed=0
feed() { # COUNT: the next COUNT lines of 1..N
    seq $((fed + 1)) $((fed + $1)) >&7 || fail "feeding the job"
    fed=$((fed + $1))
}
done_count() { # records the sink has committed for the job (its web view's JSON)
    $PY - "$WEB_PORT" "$JOB" <<'EOF'
import json, sys, urllib.request
state = json.load(urllib.request.urlopen("http://127.0.0.1:%s/api/state" % sys.argv[1], timeout=3))
print(next((j["done"] for j in state["jobs"] if j["id"] == sys.argv[2]), 0))
EOF
}
wait_done() { # COUNT
    local deadline=$((SECONDS + 60)) d=0
    while :; do
        d=$(done_count 2>/dev/null) || d=0
        [ "${d:-0}" -ge "$1" ] && return 0
        [ $SECONDS -lt $deadline ] || fail "the sink has $d records of $JOB, not $1, after 60 s"
        sleep 0.2
    done
}
W0=$(worker_ctrs)
feed 2000
wait_done 2000
log "2 workers: 2000 of $N tasks done"
phase_done "job on 2 workers"

t=$EPOCHREALTIME
docker service scale "${STACK}_worker=6" >"$WORK/scale.log" 2>&1 || { cat "$WORK/scale.log"; fail "docker service scale"; }
wait_workers 6
W1=$(comm -13 <(echo "$W0") <(worker_ctrs))
[ "$(echo "$W1" | wc -w)" -eq 4 ] || fail "scale to 6: new worker containers '$W1'"
log "scaled 2 -> 6 mid-job ($fed fed, $N in all): 6 registered in $(elapsed "$t") s"
# Fed in small steps, as a live producer does, so the idle new workers
# ask for work while tasks come in.
for _ in $(seq 30); do
    feed 100
    sleep 0.05
done
wait_done "$fed"
phase_done "scale 2 -> 6"

# Rolling restart: each worker is replaced (two at a time, the new one first)
# while tasks keep coming in; 1,000 are kept for after it.
t=$EPOCHREALTIME
docker service update --force "${STACK}_worker" >"$WORK/update.log" 2>&1 &
UPDATER=$!
while kill -0 "$UPDATER" 2>/dev/null && [ $fed -lt $((N - 1000)) ]; do
    feed 20
    sleep 0.05
done
during=$fed
wait "$UPDATER" || { cat "$WORK/update.log"; fail "docker service update --force"; }
UPDATER=""
wait_workers 6
W2=$(worker_ctrs)
[ -z "$(comm -12 <(printf '%s\n' $W0 $W1 | sort) <(echo "$W2"))" ] ||
    fail "update --force: some worker containers were not replaced"
log "rolling restart mid-job: fed up to $during of $N while it ran ($(elapsed "$t") s); 6 new workers registered"
feed $((N - fed))
exec 7>&-
FEED_OPEN=""
wait "$SUBMIT" || { cat "$WORK/submit.err"; fail "zpipe submit"; }
SUBMIT=""
wait_done "$N"
phase_done "rolling restart"

# --- every record, read at the sink's control port from inside the stack's
# (attachable) overlay network
crun --network "${STACK}_zpipe" -e ZPIPE_SINK=tcp://sink:5559 \
    -e ZPIPE_CURVE_SECRET=/keys/client.key_secret -e ZPIPE_SINK_KEY=/keys/sink.key "$IMAGE" \
    sh -c "zpipe wait --timeout-ms 60000 $JOB >&2 && zpipe results $JOB" \
    >"$WORK/records.jsonl" 2>"$WORK/wait.err" || { cat "$WORK/wait.err"; fail "zpipe wait/results"; }
grep -q "$N tasks, $N succeeded, 0 failed" "$WORK/wait.err" || { cat "$WORK/wait.err"; fail "zpipe wait counts"; }
vlog=$(docker service logs --raw "${STACK}_ventilator" 2>&1)
left=$(grep -c "worker .* left" <<<"$vlog")
held=$(grep -o "worker [^ ]* was holding [0-9]* tasks" <<<"$vlog" | awk '{ s += $5 } END { print s + 0 }')
$PY - "$WORK/records.jsonl" "$N" "$JOB" "$W0" "$W1" "$W2" "$left" "$held" <<'EOF' || fail "records are wrong"
import collections, hashlib, json, sys
path, n, job = sys.argv[1], int(sys.argv[2]), sys.argv[3]
phases = [set(a.split()) for a in sys.argv[4:7]]
left, held = sys.argv[7], sys.argv[8]
recs = [json.loads(l) for l in open(path) if l.strip()]
ids = collections.Counter(r["task"] for r in recs)
lost = sorted(set(range(n)) - set(ids))
dups = sorted(t for t, c in ids.items() if c > 1)
extra = sorted(t for t in ids if not 0 <= t < n)
wrong = [r for r in recs if r["status"] != "ok" or r["job"] != job
         or r["output"] != hashlib.sha256(str(r["task"] + 1).encode()).hexdigest()]
print("swarm: %d records: lost %d, duplicated %d, unexpected %d, wrong %d"
      % (len(recs), len(lost), len(dups), len(extra), len(wrong)))
assert not lost and not dups and not extra and not wrong, \
    "lost %r, duplicated %r, unexpected %r, wrong %r" % (lost[:5], dups[:5], extra[:5], wrong[:2])
# A worker's id starts with its host name: in swarm, its container's id.
per_ctr = collections.Counter(r["worker"].split("-")[0] for r in recs)
names = ["the first 2 workers", "the 4 scaled-up workers", "the 6 workers after the restart"]
for name, ctrs in zip(names, phases):
    print("swarm: records by %s: %s" % (name, [per_ctr.get(c, 0) for c in sorted(ctrs)]))
unknown = set(per_ctr) - set().union(*phases)
assert not unknown, "records from workers of no known container: %r" % unknown
idle = [c for c in phases[1] if not per_ctr.get(c)]
assert not idle, "scaled-up workers that took no task: %r" % idle
assert sum(per_ctr.get(c, 0) for c in phases[2]) >= 1000, "the restarted workers did too little"
print("swarm: ventilator: %s workers left, %s tasks they held sent again" % (left, held))
EOF
phase_done "records"
exit 0
