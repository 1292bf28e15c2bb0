"""The daemons run separately: credit dispatch is fair to a slow worker,
feeds a worker that joins late, never exceeds a worker's window, and a
task for a plugin a worker lacks becomes a clear failure record."""
import collections
import os
import signal
import time

import zptest
from zptest import Cluster, check, read_jsonl


def _input(d, lines):
    path = os.path.join(d, "in.txt")
    with open(path, "w") as f:
        f.write("".join("%s\n" % l for l in lines))
    return path


def _wait(p, timeout, cluster):
    try:
        return p.wait(timeout)
    except Exception:
        cluster.dump_logs()
        raise


def test_slow_worker_gets_a_fair_small_share():
    c = Cluster()
    c.worker(["spin"], name="fast")
    c.worker(["spin"], name="slow", env={"ZPIPE_SPIN_SCALE": "20"})
    v = c.ventilator("spin", _input(c.dir, ["1000"] * 2000))
    rc = _wait(v, 120, c)
    check(rc == 0, "ventilator exit %d" % rc)
    recs = read_jsonl(c.output)
    check(len(recs) == 2000, "%d records" % len(recs))
    by = collections.Counter(r["worker"] for r in recs)
    share = by["fast"] / 2000.0
    print("    fast worker share %.1f%% (%r)" % (100 * share, dict(by)))
    check(share >= 0.85, "fast worker did only %.1f%%: %r" % (100 * share, dict(by)))
    check(by["slow"] > 0, "slow worker got nothing: %r" % dict(by))


def test_worker_started_after_the_job_began_receives_tasks():
    c = Cluster()
    c.worker(["spin"], name="early")
    v = c.ventilator("spin", _input(c.dir, ["2000"] * 1500))
    time.sleep(0.5)
    check(v.poll() is None, "job ended before the late worker could join")
    c.worker(["spin"], name="late")
    rc = _wait(v, 120, c)
    check(rc == 0, "ventilator exit %d" % rc)
    by = collections.Counter(r["worker"] for r in read_jsonl(c.output))
    print("    %r" % dict(by))
    check(by["late"] > 100, "late worker got %d tasks" % by["late"])


def test_job_waits_for_workers_then_runs():
    c = Cluster()
    v = c.ventilator("echo", _input(c.dir, range(100)))
    time.sleep(1.0)
    check(v.poll() is None, "ventilator finished without workers")
    check(os.path.getsize(c.output) == 0, "output before any worker existed")
    c.worker(["echo"], name="w")
    check(_wait(v, 60, c) == 0, "ventilator failed")
    check(len(read_jsonl(c.output)) == 100, "records missing")


def test_no_worker_exceeds_its_credit_window():
    c = Cluster(sink_args=["--format", "jsonl"])
    for i, window in enumerate((3, 50, 1000)):
        c.worker(["echo", "spin"], name="w%d" % window, args=["--window", str(window)])
    lines = ["x" * (i % 50) for i in range(50000)]
    v = c.ventilator("echo", _input(c.dir, lines), args=["--batch", "64"])
    check(_wait(v, 120, c) == 0, "ventilator failed")
    check(len(read_jsonl(c.output)) == 50000, "records missing")
    # The workers report their counters on exit and to the sink.
    time.sleep(0.2)
    for p in list(zptest._procs):
        if p is not c.sink and p is not v:
            zptest.stop(p)
    seen = 0
    for path in c.logs:
        if "worker-w" not in path:
            continue
        text = open(path).read()
        line = [l for l in text.splitlines() if "stopping:" in l][-1]
        window = int(line.split("window ")[1].split(",")[0])
        held = int(line.split("max held ")[1].split(",")[0])
        violations = int(line.split("window violations ")[1].split(",")[0])
        print("    %s" % line.split("info: ")[1])
        check(held <= window, "held %d over window %d" % (held, window))
        check(violations == 0, "window violations in %s" % line)
        check(held >= 1, "worker held nothing: %s" % line)
        seen += 1
    check(seen == 3, "found %d worker reports" % seen)


def test_task_for_missing_plugin_fails_clearly():
    c = Cluster()
    # One worker has only echo; the job needs sha256; a second worker has both
    # and is the only one the ventilator may use.
    c.worker(["echo"], name="echo-only")
    c.worker(["echo", "sha256"], name="both")
    v = c.ventilator("sha256", _input(c.dir, ["a", "b", "c"]))
    check(_wait(v, 60, c) == 0, "ventilator failed")
    recs = read_jsonl(c.output)
    check(len(recs) == 3, "%d records" % len(recs))
    check(all(r["worker"] == "both" and r["status"] == "ok" for r in recs), repr(recs))


def test_push_mode_worker_reports_missing_plugin():
    c = Cluster()
    c.worker(["echo"], name="pusher", args=["--dispatch", "push"])
    v = c.ventilator("sha256", _input(c.dir, ["a", "b"]), args=["--dispatch", "push"])
    rc = _wait(v, 60, c)
    check(rc == 1, "ventilator exit %d, want 1 (failed tasks)" % rc)
    recs = read_jsonl(c.output)
    check(len(recs) == 2, repr(recs))
    for r in recs:
        check(r["status"] == "failed" and r["cause"] == "no_such_plugin"
              and "sha256" in r["error"], repr(r))


def test_frozen_worker_is_declared_dead_and_says_hello_again():
    # A worker frozen (SIGSTOP) past the heartbeat timeout is declared dead,
    # its tasks go to the other worker, and once thawed it is told it was
    # forgotten and introduces itself again. Every task has one record.
    c = Cluster()
    c.worker(["spin"], name="steady")
    frozen = c.worker(["spin"], name="frozen")
    # Long enough that the job outlasts the freeze (300 x 20 ms of CPU).
    v = c.ventilator("spin", _input(c.dir, ["20000"] * 300),
                     args=["--heartbeat-timeout-ms", "600"])
    time.sleep(0.8)
    frozen.send_signal(signal.SIGSTOP)
    time.sleep(1.5)
    frozen.send_signal(signal.SIGCONT)
    check(_wait(v, 60, c) == 0, "ventilator failed")
    recs = read_jsonl(c.output)
    ids = sorted(r["task"] for r in recs)
    check(ids == list(range(300)), "lost or duplicated: %d records" % len(recs))
    vlog = open(os.path.join(c.dir, "ventilator.log")).read()
    check("sending them again" in vlog, "nothing was redelivered")
    check("worker frozen left (no heartbeat" in vlog, "frozen worker not declared dead")
    log = open([p for p in c.logs if "worker-frozen" in p][0]).read()
    check("saying hello again" in log, "worker never re-introduced itself")


def test_ventilator_without_workers_gives_up_with_a_clear_error():
    c = Cluster()
    v = c.ventilator("echo", _input(c.dir, ["a"]),
                     args=["--no-worker-timeout-ms", "700"])
    rc = _wait(v, 30, c)
    check(rc == 3, "exit %d, want 3" % rc)
    log = open(os.path.join(c.dir, "ventilator.log")).read()
    check("no worker for" in log and "--no-worker-timeout-ms" in log, log[-500:])


def test_short_slow_job_after_a_fast_one_is_split_across_workers():
    """Credit sized on a fast job is large; a short slow job that follows
    must still be shared, not all handed to the first worker with credit
    (found by the multi-host test: 400 of 400 tasks went to one worker)."""
    c = Cluster(sink_args=("--spool", zptest.tmpdir()))
    spool = c.sink.args[c.sink.args.index("--spool") + 1]
    intake = "ipc://%s/intake" % c.dir
    zptest.start([zptest.binary("zpipe-ventilator"), "--intake", intake,
                  "--bind", c.dispatch, "--sink", c.control],
                 stderr=c._log("ventilator"))
    for name in ("a", "b"):
        c.worker(["sha256", "spin"], name=name)
    submit = [zptest.binary("zpipe"), "submit", "--ventilator", intake]
    wait = [zptest.binary("zpipe"), "wait", "--sink", c.control]
    r = zptest.run(submit + ["--plugin", "sha256", "--job", "fast"],
                   input=b"".join(b"%d\n" % i for i in range(20000)),
                   capture_output=True, timeout=60)
    check(r.returncode == 0 and zptest.run(wait + ["fast"], capture_output=True,
                                           timeout=60).returncode == 0, "fast job")
    r = zptest.run(submit + ["--plugin", "spin", "--job", "slow"],
                   input=b"2000\n" * 400, capture_output=True, timeout=60)
    check(r.returncode == 0 and zptest.run(wait + ["slow"], capture_output=True,
                                           timeout=120).returncode == 0, "slow job")
    by = collections.Counter(r["worker"] for r in read_jsonl(
        os.path.join(spool, "slow.jsonl")))
    check(sum(by.values()) == 400 and min(by.get("a", 0), by.get("b", 0)) >= 80,
          "slow job split %r" % dict(by))
    print("    400 slow tasks after 20,000 fast ones: %r" % dict(by))


def test_worker_as_pid_1_configured_by_the_environment():
    """As in a container: the worker is pid 1 and gets its plugins from
    ZPIPE_PLUGINS. Its executors must still start (they once took a
    parent of pid 1 for a dead worker) and load each plugin once (the
    environment list once added to their --plugin arguments)."""
    import shutil
    import subprocess
    unshare = shutil.which("unshare")
    if not unshare:
        raise zptest.Skip("no unshare (util-linux)")
    pid1 = [unshare, "--pid", "--fork", "--kill-child"]
    if os.geteuid() != 0:
        pid1[1:1] = ["--user", "--map-root-user"]
    if subprocess.run(pid1 + ["true"], capture_output=True).returncode != 0:
        raise zptest.Skip("unshare --pid does not work here")
    c = Cluster()
    env = dict(os.environ, ZPIPE_PLUGINS="echo,sha256")
    zptest.start(pid1 + [zptest.binary("zpipe-worker"), "--ventilator", c.dispatch,
                         "--sink", c.results], env=env, stderr=c._log("worker"))
    v = c.ventilator("echo", _input(c.dir, range(1000)),
                     args=("--no-worker-timeout-ms", "15000"))
    check(_wait(v, 60, c) == 0, "job failed")
    zptest.stop(c.sink)
    recs = read_jsonl(c.output)
    check(len(recs) == 1000 and all(r["status"] == "ok" for r in recs),
          "%d records" % len(recs))
    with open(os.path.join(c.dir, "worker.log")) as f:
        log = f.read()
    check("already loaded" not in log and "cannot start an executor" not in log,
          log[-800:])


def test_a_worker_asks_for_tasks_only_once_its_executor_is_ready():
    """A worker whose executor is still starting (here a Python module
    that takes 3 s to import) asks for no task: all 20 go to the worker
    that is ready, at once. It used to grant credit in its hello, so 2
    tasks waited for the slow executor while the other worker idled."""
    c = Cluster()
    with open(os.path.join(c.dir, "slowstart.py"), "w") as f:
        f.write("import time\ntime.sleep(3)\ndef f(b):\n    return b\n")
    with open(os.path.join(c.dir, "ready.py"), "w") as f:
        f.write("def f(b):\n    return b\n")
    for name, mod in (("starting", "slowstart"), ("ready", "ready")):
        c.worker(["python"], name=name, args=[
            "--plugin-config", "python.func=%s:f" % mod,
            "--plugin-config", "python.path=%s" % c.dir])
    time.sleep(0.5)  # both said hello; the slow one is importing
    t0 = time.monotonic()
    v = c.ventilator("python", _input(c.dir, range(20)))
    rc = _wait(v, 60, c)
    took = time.monotonic() - t0
    check(rc == 0, "ventilator exit %d" % rc)
    recs = read_jsonl(c.output)
    check(sorted(int(r["output"]) for r in recs) == list(range(20)),
          "records: %r" % recs)
    by = collections.Counter(r["worker"] for r in recs)
    print("    %r in %.2f s" % (dict(by), took))
    check(by == {"ready": 20}, "tasks went to a worker not ready: %r"
          % dict(by))
    check(took < 2.0, "the job took %.2f s: it waited for the slow "
          "executor" % took)


if __name__ == "__main__":
    zptest.main([
        test_slow_worker_gets_a_fair_small_share,
        test_worker_started_after_the_job_began_receives_tasks,
        test_job_waits_for_workers_then_runs,
        test_no_worker_exceeds_its_credit_window,
        test_task_for_missing_plugin_fails_clearly,
        test_push_mode_worker_reports_missing_plugin,
        test_frozen_worker_is_declared_dead_and_says_hello_again,
        test_ventilator_without_workers_gives_up_with_a_clear_error,
        test_short_slow_job_after_a_fast_one_is_split_across_workers,
        test_worker_as_pid_1_configured_by_the_environment,
        test_a_worker_asks_for_tasks_only_once_its_executor_is_ready,
    ])
