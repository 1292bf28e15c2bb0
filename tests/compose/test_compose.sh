#!/usr/bin/env bash
# ctest `compose`: the Dockerfile and docker-compose.yml end to end. Installs
# Docker from Debian if missing, starts dockerd if none runs, builds
# debian:bookworm-slim offline with debootstrap if it is not there (those
# three in tests/lib/docker.sh, shared with tests/swarm), builds
# the image, starts ventilator + sink + 3 workers, runs a 10,000-task SHA-256
# job checked against Python's hashlib, a Python job (the python plugin
# calling a module dropped into the plugin folder), then a CPU-bound job
# during which one worker container is killed: every task id must come back
# exactly once.
# Exit 0 passed, 1 failed, 77 skipped (not root, or Docker cannot be made to
# work here). Everything it starts is removed (docker-compose down -v), even
# on failure; the images stay, as Docker's build cache.
#
#   bash tests/compose/test_compose.sh        (as root; ZPIPE_KEEP=1 keeps logs)
set -uo pipefail

ZD_TEST=compose
WORK=$(mktemp -d "${TMPDIR:-/tmp}/zpipe-compose.XXXXXX")
source "$(dirname "${BASH_SOURCE[0]}")/../lib/docker.sh"
PY=/usr/bin/python3
N_SHA=10000
N_PY=2000
N_SPIN=2000 SPIN_US=5000 # 10 s of CPU time over 3 workers on 2 cores
export ZPIPE_IMAGE=${ZPIPE_IMAGE:-zpipe:compose-test}
PROJECT=zpipetest$$$RANDOM
UP="" READER=""

dc() { docker-compose -f "$SRC/docker-compose.yml" --project-directory "$SRC" -p "$PROJECT" "$@"; }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$READER" ] && kill "$READER" 2>/dev/null # not jobs -p: dockerd is one
    if [ -n "$UP" ]; then
        if [ "$rc" -ne 0 ]; then
            log "logs of the failed run (last lines of each service):"
            dc logs --no-color --tail 40 2>&1 | tail -200
        fi
        T_PHASE=$EPOCHREALTIME
        dc down -v --remove-orphans --timeout 10 >"$WORK/down.log" 2>&1 ||
            { cat "$WORK/down.log"; rc=1; }
        phase_done down
    fi
    zd_finish "$rc"
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
[ "$(id -u)" -eq 0 ] || skip "needs root (apt-get install docker.io, dockerd)"

# --- install: Debian's Docker and docker-compose, as scripts/setup.sh installs
apt_install docker.io docker-compose || skip "cannot install docker.io docker-compose"
phase_done install
zd_start_dockerd
phase_done dockerd
zd_base_image
phase_done "base image"
# The image docker-compose.yml names (it would build the same, but the
# classic builder's cache is shared with tests/swarm this way).
zd_build_image "$ZPIPE_IMAGE"
phase_done build

# --- up: host ports the test does not use, but must not collide on
# (three distinct ones below the ephemeral range: asking the kernel for port
# 0 three times can hand out one port twice).
export ZPIPE_COMPOSE_ADDR=127.0.0.1
read -r ZPIPE_COMPOSE_INTAKE_PORT ZPIPE_COMPOSE_CONTROL_PORT \
    ZPIPE_COMPOSE_PUBLISH_PORT < <($PY -c 'import sys; sys.path.insert(0, sys.argv[1]); import zptest; print(*zptest.free_ports(3))' "$SRC/tests/integration")
export ZPIPE_COMPOSE_INTAKE_PORT ZPIPE_COMPOSE_CONTROL_PORT ZPIPE_COMPOSE_PUBLISH_PORT
export ZPIPE_DEMO_TASKS=500
# The workers' plugin folder, empty for now (a plugin is dropped in later).
export ZPIPE_COMPOSE_PLUGINS=$WORK/plugins
mkdir -p "$ZPIPE_COMPOSE_PLUGINS"
chmod 755 "$ZPIPE_COMPOSE_PLUGINS"
UP=1
dc up -d --scale worker=3 >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; fail "docker-compose up failed"; }
# The ventilator's own key is allowed: zpipe status runs in its container.
VKEY=/etc/zpipe/keys/ventilator.key
status() { dc exec -T ventilator zpipe status --timeout-ms 3000 --ventilator tcp://127.0.0.1:5561 --ventilator-key $VKEY; }
wait_workers() {
    local deadline=$((SECONDS + 90))
    until status 2>/dev/null | grep -q "^[0-9]* jobs, 3 workers"; do
        [ $SECONDS -lt $deadline ] || { status; fail "3 workers did not register within 90 s"; }
        sleep 0.5
    done
}
wait_workers
phase_done up

# --- job: 10,000 SHA-256 digests, submitted from inside the compose network
producer() { dc run --rm --no-deps -T producer "$@"; }
producer sh -c "seq 1 $N_SHA | zpipe submit --plugin sha256 --job sha-job >&2 &&
    zpipe wait sha-job >&2 && zpipe results sha-job" >"$WORK/sha.jsonl" 2>"$WORK/sha.err" ||
    { cat "$WORK/sha.err"; fail "sha-job: submit, wait or results failed"; }
grep -q "$N_SHA tasks, $N_SHA succeeded, 0 failed" "$WORK/sha.err" ||
    { cat "$WORK/sha.err"; fail "sha-job: zpipe wait counts"; }
$PY - "$WORK/sha.jsonl" "$N_SHA" <<'EOF' || fail "sha-job: records are wrong"
import collections, hashlib, json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
n = int(sys.argv[2])
ids = collections.Counter(r["task"] for r in recs)
assert sorted(ids) == list(range(n)), "ids are not 0..%d: %d distinct" % (n - 1, len(ids))
dups = [t for t, c in ids.items() if c > 1]
assert not dups, "%d ids more than once, e.g. %r" % (len(dups), dups[:5])
bad = [r for r in recs if r["status"] != "ok" or r["job"] != "sha-job"
       or r["output"] != hashlib.sha256(str(r["task"] + 1).encode()).hexdigest()]
assert not bad, "%d wrong records, e.g. %r" % (len(bad), bad[:2])
workers = collections.Counter(r["worker"] for r in recs)
print("compose: sha-job: %d records, each id once, every digest right; per worker %s"
      % (len(recs), sorted(workers.values())))
EOF
# The example producer's demo job, started by `up`, must have succeeded.
pid=$(dc ps -q producer)
code=$(timeout 60 docker wait "$pid") || fail "the producer service did not finish"
[ "$code" = 0 ] || { dc logs producer; fail "the producer service exited $code"; }
log "producer service: $(dc logs --no-color producer | grep -o 'job .*: .*' | tail -1)"
phase_done job

# --- plugin folder: drop a .so in, restart the workers, it is loaded from there
docker run --rm --entrypoint cat "$ZPIPE_IMAGE" /usr/local/lib/zpipe/plugins/spin.so \
    >"$ZPIPE_COMPOSE_PLUGINS/spin.so" || fail "cannot copy spin.so out of the image"
chmod 644 "$ZPIPE_COMPOSE_PLUGINS/spin.so"
dc restart -t 10 worker >"$WORK/restart.log" 2>&1 || { cat "$WORK/restart.log"; fail "restart workers"; }
wait_workers
dc exec -T --index 1 worker zpipe-worker --describe 2>/dev/null | grep -q "^spin.*	/plugins/spin.so" ||
    { dc exec -T --index 1 worker zpipe-worker --describe; fail "spin.so is not loaded from /plugins"; }
log "plugin folder: spin.so dropped in, workers restarted, loaded from /plugins"
phase_done "plugin folder"

# --- python job: a module dropped into the plugin folder, named by the job
cat >"$ZPIPE_COMPOSE_PLUGINS/squares.py" <<'EOF'
def square(n):
    return {"n": n, "square": n * n}
EOF
chmod 644 "$ZPIPE_COMPOSE_PLUGINS/squares.py"
producer sh -c "seq 1 $N_PY | zpipe submit --plugin python --job py-job \
    --config func=squares:square --config codec=json --config path=/plugins >&2 &&
    zpipe wait py-job >&2 && zpipe results py-job" >"$WORK/py.jsonl" 2>"$WORK/py.err" ||
    { cat "$WORK/py.err"; fail "py-job: submit, wait or results failed"; }
grep -q "$N_PY tasks, $N_PY succeeded, 0 failed" "$WORK/py.err" ||
    { cat "$WORK/py.err"; fail "py-job: zpipe wait counts"; }
$PY - "$WORK/py.jsonl" "$N_PY" <<'EOF' || fail "py-job: records are wrong"
import collections, json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
n = int(sys.argv[2])
ids = collections.Counter(r["task"] for r in recs)
assert sorted(ids) == list(range(n)) and max(ids.values()) == 1, "ids: %r" % ids.most_common(3)
bad = [r for r in recs if r["status"] != "ok"
       or json.loads(r["output"]) != {"n": r["task"] + 1, "square": (r["task"] + 1) ** 2}]
assert not bad, "%d wrong records, e.g. %r" % (len(bad), bad[:2])
print("compose: py-job: %d records from squares.py in /plugins (python plugin, "
      "json codec), each id once, every value right; per worker %s"
      % (len(recs), sorted(collections.Counter(r["worker"] for r in recs).values())))
EOF
phase_done "python job"

# --- kill job: CPU-bound tasks; a worker container holding tasks is killed
vent=$(dc ps -q ventilator)
vstatus() { docker exec "$vent" zpipe status --timeout-ms 3000 --ventilator tcp://127.0.0.1:5561 --ventilator-key $VKEY; }
producer sh -c "yes $SPIN_US | head -n $N_SPIN | zpipe submit --plugin spin --job kill-job" \
    >/dev/null 2>"$WORK/kill-submit.err" || { cat "$WORK/kill-submit.err"; fail "kill-job: submit"; }
producer sh -c "zpipe wait kill-job >&2 && zpipe results kill-job" \
    >"$WORK/kill.jsonl" 2>"$WORK/kill.err" &
READER=$!
# The worker with the most tasks in flight (sent, not yet committed), once
# it has committed some: killed at once, mid-job. Whether it still held
# tasks when it died only the ventilator knows ("worker ... was holding");
# if it held none (it finished them in the meantime), a second one is killed.
victims=() caught=""
for attempt in 1 2; do
    victim="" deadline=$((SECONDS + 60))
    while [ $SECONDS -lt $deadline ]; do
        # WORKER PLUGINS WINDOW CREDIT SENT COMMITTED LAST SEEN
        read -r victim held < <(vstatus 2>/dev/null | awk '$1 ~ /-[0-9]+-/ && $6 >= 20 &&
            $5 - $6 > best { best = $5 - $6; id = $1 } END { if (id) print id, best }')
        [ -n "$victim" ] && break
        sleep 0.1
    done
    [ -n "$victim" ] || { vstatus; fail "kill-job: no worker with tasks in flight"; }
    container=${victim%%-*} # a worker's id starts with its host name: the container id
    docker kill "$container" >/dev/null || fail "docker kill $container"
    victims+=("$victim")
    log "killed worker container $container ($victim, $held tasks in flight just before)"
    deadline=$((SECONDS + 15))
    until docker logs "$vent" 2>&1 | grep -q "worker $victim left"; do
        [ $SECONDS -lt $deadline ] || fail "kill-job: the ventilator did not notice $victim die"
        sleep 0.2
    done
    line=$(docker logs "$vent" 2>&1 | grep "worker $victim was holding [0-9]* tasks") &&
        { caught=$victim; log "ventilator: ${line#* warn: }"; break; }
    log "$victim had finished its tasks when it died (attempt $attempt)"
done
[ -n "$caught" ] || fail "kill-job: neither killed worker held tasks; nothing was tested"
wait "$READER" || { cat "$WORK/kill.err"; fail "kill-job: wait or results failed"; }
READER=""
grep -q "$N_SPIN tasks, $N_SPIN succeeded, 0 failed" "$WORK/kill.err" ||
    { cat "$WORK/kill.err"; fail "kill-job: zpipe wait counts"; }
$PY - "$WORK/kill.jsonl" "$N_SPIN" "$SPIN_US" "${victims[@]}" <<'EOF' || fail "kill-job: records are wrong"
import collections, json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
n, payload, victims = int(sys.argv[2]), sys.argv[3], sys.argv[4:]
ids = collections.Counter(r["task"] for r in recs)
lost = sorted(set(range(n)) - set(ids))
dups = sorted(t for t, c in ids.items() if c > 1)
assert not lost and not dups and len(recs) == n, \
    "%d records: %d ids lost (%r...), %d twice (%r...)" % (len(recs), len(lost), lost[:5], len(dups), dups[:5])
bad = [r for r in recs if r["status"] != "ok" or r["output"] != payload]
assert not bad, "%d wrong records, e.g. %r" % (len(bad), bad[:2])
workers = collections.Counter(r["worker"] for r in recs)
print("compose: kill-job: %d records, none lost, none twice; %s by the killed worker(s); "
      "per worker %s" % (len(recs), [workers[v] for v in victims], sorted(workers.values())))
EOF
phase_done "kill job"

# --- ventilator killed: its journal (on the queue volume) carries the job
# over a crash while zpipe submit streams it and one after the close. The
# crash is a SIGKILL of the container's process from the host: Docker
# takes `docker kill` for a manual stop and does not restart after it,
# while a process that dies is what the restart policy is for.
# 60,000 x 100 us: 6 s of CPU, three times what the ventilator holds at
# once, so zpipe submit is still streaming when the ventilator dies.
N_VK=60000 VK_US=100
producer sh -c "yes $VK_US | head -n $N_VK | zpipe submit --plugin spin --batch 256 --timeout-ms 120000 --job vk-job" \
    >/dev/null 2>"$WORK/vk-submit.err" &
SUBMIT=$!
kill_vent() { # WHEN: SIGKILL the ventilator's process, wait for its return
    local started pid
    started=$(docker inspect -f '{{.State.StartedAt}}' "$vent")
    pid=$(docker inspect -f '{{.State.Pid}}' "$vent")
    [ "$pid" -gt 0 ] || fail "no ventilator process to kill"
    kill -KILL "$pid" || fail "kill the ventilator's process $pid"
    local deadline=$((SECONDS + 60))
    until [ "$(docker inspect -f '{{.State.Running}} {{.State.StartedAt}}' "$vent")" != "true $started" ] &&
        [ "$(docker inspect -f '{{.State.Running}}' "$vent")" = true ]; do
        [ $SECONDS -lt $deadline ] || fail "the ventilator was not restarted after its process was killed ($1)"
        sleep 0.1
    done
    log "ventilator's process killed $1; restarted by the restart policy"
}
deadline=$((SECONDS + 60))
until status 2>/dev/null | grep -q "vk-job"; do
    [ $SECONDS -lt $deadline ] || fail "vk-job: not at the ventilator within 60 s"
    sleep 0.2
done
kill -0 "$SUBMIT" 2>/dev/null || fail "vk-job: zpipe submit ended before the kill; nothing was tested"
kill_vent "while zpipe submit streamed vk-job"
wait "$SUBMIT" || { cat "$WORK/vk-submit.err"; fail "vk-job: zpipe submit did not finish across the restart"; }
kill_vent "after vk-job's close"
producer sh -c "zpipe wait --timeout-ms 300000 vk-job >&2 && zpipe results vk-job" >"$WORK/vk.jsonl" 2>"$WORK/vk.err" ||
    { cat "$WORK/vk.err"; fail "vk-job: wait or results failed"; }
grep -q "$N_VK tasks, $N_VK succeeded, 0 failed" "$WORK/vk.err" ||
    { cat "$WORK/vk.err"; fail "vk-job: zpipe wait counts"; }
$PY - "$WORK/vk.jsonl" "$N_VK" "$VK_US" <<'EOF2' || fail "vk-job: records are wrong"
import collections, json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
n, payload = int(sys.argv[2]), sys.argv[3]
ids = collections.Counter(r["task"] for r in recs)
lost = sorted(set(range(n)) - set(ids))
dups = sorted(t for t, c in ids.items() if c > 1)
extra = sorted(t for t in ids if not 0 <= t < n)
bad = [r for r in recs if r["status"] != "ok" or r["output"] != payload]
assert not lost and not dups and not extra and not bad, \
    "lost %d, duplicated %d, unexpected %d, wrong %d" % (len(lost), len(dups), len(extra), len(bad))
print("compose: vk-job: %d records, lost 0, duplicated 0, unexpected 0, wrong 0, "
      "across 2 ventilator crashes" % len(recs))
EOF2
phase_done "ventilator kill"

# --- security: every socket is CURVE; peers without an allowed key get nothing
# A client with a key of its own making (the right server key, from the
# producer's environment) and a plaintext client, inside the network:
dc run --rm --no-deps -T producer sh -c 'zpipe keygen --dir /tmp/r rogue >/dev/null &&
    zpipe status --curve-secret /tmp/r/rogue.key_secret --timeout-ms 2000' \
    >"$WORK/rogue.out" 2>&1 && { cat "$WORK/rogue.out"; fail "an unknown key got a status"; }
dc run --rm --no-deps -T -e ZPIPE_CURVE_SECRET= -e ZPIPE_VENTILATOR_KEY= producer \
    zpipe status --timeout-ms 2000 >"$WORK/plain.out" 2>&1 &&
    { cat "$WORK/plain.out"; fail "a plaintext client got a status"; }
# ... and a plaintext peer on the port published on the host.
$PY - "$ZPIPE_COMPOSE_INTAKE_PORT" <<'EOF' || fail "the published intake answered a plaintext client"
import sys, zmq
s = zmq.Context().socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect("tcp://127.0.0.1:%s" % sys.argv[1])
s.send(b"\x62\x00")  # a StatusRequest (Message field 12), empty
sys.exit(1 if s.poll(2000) else 0)
EOF
vlog=$(docker logs "$vent" 2>&1)
unknown=$(grep -c "is not in /etc/zpipe/keys/allow" <<<"$vlog")
plain=$(grep -c "does not speak CURVE\|left during the handshake" <<<"$vlog")
[ "$unknown" -ge 1 ] && [ "$plain" -ge 2 ] ||
    { grep -i curve <<<"$vlog" | tail; fail "refusals not logged (unknown key $unknown, plaintext $plain)"; }
dc stop -t 10 ventilator >/dev/null 2>&1
counts=$(docker logs "$vent" 2>&1 | grep -o "CURVE refused .*" | tail -1)
[ -n "$counts" ] || fail "the ventilator did not count its refusals at exit"
log "security: unknown-key and plaintext clients got nothing; ventilator: $counts"
phase_done security
exit 0
