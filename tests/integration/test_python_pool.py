"""The zpipe Python package with the real binaries: zpipe.Pool as a
drop-in for multiprocessing.Pool (tests/python/dropin.py run with either
import prints the same), on a private cluster and on a running one of
separate daemons; no process left behind however the Pool ends (also when
its caller is SIGKILLed); zpipe.Client's submit, results (resumed after
the sink restarts), wait and status on the echo plugin."""
import json
import os
import signal
import subprocess
import sys
import time

import zptest
from zptest import binary, check, start

SCRIPTS = os.path.join(zptest.SOURCE, "tests", "python")
PY = "/usr/bin/python3"


def _script(name, *args, env=None, timeout=60):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([PY, os.path.join(SCRIPTS, name)] + list(args),
                       capture_output=True, env=e, timeout=timeout)
    check(r.returncode == 0, "%s %s: exit %d: %s" % (
        name, " ".join(args), r.returncode, r.stderr.decode()[-3000:]))
    return r.stdout.decode()


def _compare(mp, zp, what):
    a, b = json.loads(mp), json.loads(zp)
    diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    check(not diff, "%s: %s differ: %s" % (what, diff, [
        (k, str(a.get(k))[:200], str(b.get(k))[:200]) for k in diff]))
    return a


def test_dropin_local_pool_gives_what_multiprocessing_gives():
    mp = _script("dropin.py", "mp")
    zp = _script("dropin.py", "zpipe")
    a = _compare(mp, zp, "local")
    check(a["map_raises"][0] == "Boom" and a["map_raises"][2] ==
          "RemoteTraceback", a["map_raises"])
    print("    %d cases identical (map, chunksize, imap, imap_unordered, "
          "starmap, apply_async callbacks, exceptions, get timeout)" % len(a))


def test_zpipe_only_cases():
    out = json.loads(_script("remote_cases.py", zptest.tmpdir()))
    check(out.get("unpicklable") == ["__main__.Unpicklable", "1-1", True],
          out.get("unpicklable"))
    check(out.get("retry") == [100, 101, 102, 103], out.get("retry"))
    check(out.get("retry_marks") == ["tried-%d" % i for i in range(4)],
          "first attempts not seen (argv not passed?): %s" %
          out.get("retry_marks"))
    check(out.get("initializer") == [["set", i] for i in range(3)],
          out.get("initializer"))
    check(out.get("closed") == "Pool not running", out.get("closed"))
    check(out.get("oversized") == ["ValueError", True] and
          out.get("after_oversized") == [2, 1],
          "a 65 MiB task: %s, then %s" % (out.get("oversized"),
                                          out.get("after_oversized")))


def test_engine_edges():
    t0 = time.monotonic()
    out = json.loads(_script("engine_cases.py").splitlines()[-1])
    check(out.get("late") == ["first", "late"],
          "close()+join() with a slow callback: %s" % out.get("late"))
    check(out.get("queued") == ["failed", "failed"],
          "ventilator killed with calls queued: %s" % out.get("queued"))
    check(out.get("pokes") == "returned",
          "70,000 wake-ups during a callback: terminate() %s" %
          out.get("pokes"))
    sk = out.get("sinkkill") or {}
    print("    private sink SIGKILLed mid-imap: %d results before it, "
          "duplicated %d, wrong %d; then %s (%s)" % (
              sk.get("got", -1), sk.get("dup", -1), sk.get("wrong", -1),
              sk.get("ended"), sk.get("why", "")), flush=True)
    check(sk.get("ended") == "failed" and sk.get("dup") == 0 and
          sk.get("wrong") == 0 and 0 < sk.get("got", 0) < 3000,
          "private sink killed mid-imap: %r" % sk)
    print("    late result after close()+join(), queued calls failed, "
          "terminate() after 70,000 wake-ups: %.1f s" %
          (time.monotonic() - t0))


def test_a_pool_made_at_import_time_is_refused_on_the_workers():
    """A script without the __main__ guard (fork lets it pass): the
    workers, which run the script to find its functions, must not start
    a cluster of their own each; the caller gets the RuntimeError."""
    d = zptest.tmpdir()
    path = os.path.join(d, "unguarded.py")
    with open(path, "w") as f:
        f.write("import zpipe, os\n"
                "open(os.path.join(%r, 'ran-%%d' %% os.getpid()), 'w').close()\n"
                "p = zpipe.Pool(2)\n"
                "try:\n"
                "    p.map(abs, [-1, -2])\n"
                "except RuntimeError as e:\n"
                "    print('refused:', e)\n"
                "p.terminate()\n" % d)
    r = subprocess.run([PY, path], capture_output=True, timeout=60)
    out = r.stdout.decode()
    check(r.returncode == 0 and "refused: zpipe.Pool() was called while a "
          "worker was importing the main script" in out,
          "exit %d: %r %r" % (r.returncode, out, r.stderr.decode()[-2000:]))
    ran = [x for x in os.listdir(d) if x.startswith("ran-")]
    # The caller and at most one run per executor, never a nested cluster's.
    check(1 < len(ran) <= 3, "the script ran %d times: %s" % (len(ran), ran))
    print("    unguarded script: RuntimeError in the caller; the script ran "
          "%d times (caller + executors)" % len(ran))


class Running(zptest.Cluster):
    """Separate daemons: sink with a spool, ventilator with an intake, two
    workers with the python and echo plugins."""

    def __init__(self):
        self.spool = zptest.tmpdir()
        super().__init__(sink_args=("--spool", self.spool))
        self.intake = "ipc://%s/intake" % self.dir
        self.events = "ipc://%s/events" % self.dir
        self.vent = start([binary("zpipe-ventilator"), "--intake", self.intake,
                           "--bind", self.dispatch, "--sink", self.control,
                           "--cluster", "pytest", "--events", self.events],
                          stderr=self._log("ventilator"))
        for _ in range(2):
            self.worker(plugins=("python", "echo"))

    def restart_sink(self):
        self.sink.kill()
        self.sink.wait()
        self.sink = start([binary("zpipe-sink"), "--results", self.results,
                           "--control", self.control, "--publish",
                           self.publish, "--output", self.output, "--spool",
                           self.spool], stderr=self._log("sink2"))


def test_dropin_on_a_running_cluster():
    c = Running()
    pkg = os.path.join(zptest.BUILD, "python")
    spec = "ventilator=%s,sink=%s,name=pytest,main=1,path=%s" % (
        c.intake, c.control, pkg)
    zp = _script("dropin.py", "zpipe", env={"ZPIPE_CLUSTER": spec})
    mp = _script("dropin.py", "mp")
    _compare(mp, zp, "running cluster")


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def test_scripts_sharing_a_cluster_each_run_their_own_code():
    """Two scripts on one running cluster, each with its own __main__.f
    (the same pickled bytes), then the first one edited and run again:
    every run gets its own function's results."""
    c = Running()
    pkg = os.path.join(zptest.BUILD, "python")
    spec = "ventilator=%s,sink=%s,name=pytest,main=1,path=%s" % (
        c.intake, c.control, pkg)
    d = zptest.tmpdir()
    body = ("from zpipe import Pool\n"
            "def f(x):\n    return %r + str(x)\n"
            "if __name__ == '__main__':\n"
            "    with Pool(2) as p:\n"
            "        print(','.join(p.map(f, range(6), chunksize=1)))\n")
    runs = []
    for tag, name in (("A", "a.py"), ("B", "b.py"), ("C", "a.py")):
        path = _write(os.path.join(d, name), body % tag)
        out = subprocess.run([PY, path], capture_output=True, timeout=60,
                             env=dict(os.environ, ZPIPE_CLUSTER=spec))
        check(out.returncode == 0, out.stderr.decode()[-2000:])
        runs.append(out.stdout.decode().strip())
    want = [",".join("%s%d" % (t, i) for i in range(6)) for t in "ABC"]
    check(runs == want, "runs gave %r, want %r" % (runs, want))
    print("    3 scripts on one cluster (a.py, b.py, a.py edited): each got "
          "its own f's results")


def test_a_crashed_executor_leaves_the_rest_of_its_batch_with_the_job():
    """An executor dies in the middle of a batch of a job with settings
    of its own (every Pool job): the tasks behind it go to the new
    executor with the job's settings. Before: they ran on the worker's
    own instance (no func) and failed with plugin_error."""
    d = zptest.tmpdir()
    mark = os.path.join(d, "died")
    path = _write(os.path.join(d, "die.py"), (
        "import os\n"
        "from zpipe import Pool\n"
        "MARK = %r\n"
        "def f(x):\n"
        "    if x == 3 and not os.path.exists(MARK):\n"
        "        open(MARK, 'w').close()\n"
        "        os._exit(1)\n"
        "    return x * 10\n"
        "if __name__ == '__main__':\n"
        "    with Pool(1, window=8) as p:\n"
        "        print(p.map(f, range(40), chunksize=1))\n") % mark)
    out = subprocess.run([PY, path], capture_output=True, timeout=60)
    check(out.returncode == 0, out.stderr.decode()[-2000:])
    check(os.path.exists(mark), "the executor never died")
    check(out.stdout.decode().strip() == str([x * 10 for x in range(40)]),
          out.stdout.decode()[-500:])
    print("    executor killed at item 3 of a 40-item map with 8 in flight: "
          "all 40 right")


def test_sink_killed_mid_map_loses_and_duplicates_nothing():
    """The attack on a running cluster: the sink SIGKILLed in the middle
    of a Pool's map and started again. The map returns every item once,
    each right (its records come from the sink's journal and spool)."""
    c = Running()
    pkg = os.path.join(zptest.BUILD, "python")
    spec = "ventilator=%s,sink=%s,name=pytest,main=1,path=%s" % (
        c.intake, c.control, pkg)
    d = zptest.tmpdir()
    n = 40000  # about 2.5 s of work here: the kill at 1 s lands mid-map
    path = _write(os.path.join(d, "long.py"), (
        "import json, time\n"
        "from zpipe import Pool\n"
        "def f(x):\n"
        "    end = time.thread_time() + 0.0001\n"
        "    while time.thread_time() < end:\n"
        "        pass\n"
        "    return [x, x * x]\n"
        "if __name__ == '__main__':\n"
        "    with Pool(2) as p:\n"
        "        print(json.dumps(p.map(f, range(%d), chunksize=10)))\n") % n)
    proc = subprocess.Popen([PY, path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            env=dict(os.environ, ZPIPE_CLUSTER=spec))
    time.sleep(1.0)
    check(proc.poll() is None, "the map ended before the sink was killed")
    c.restart_sink()
    out, err = proc.communicate(timeout=120)
    check(proc.returncode == 0, err.decode()[-2000:])
    got = json.loads(out)
    lost = sum(1 for i in range(n) if i >= len(got) or got[i] != [i, i * i])
    check(len(got) == n and lost == 0,
          "%d results for %d items, %d wrong or missing" % (len(got), n, lost))
    print("    sink SIGKILLed 1 s into a %d-item map on a running cluster and "
          "restarted: %d results, lost 0, duplicated 0, wrong 0" % (n, len(got)))


def test_dropin_on_a_curve_cluster_over_tcp():
    """As the hosts test does across namespaces: tcp, CURVE keys given to
    the Pool in ZPIPE_CLUSTER as for the CLI (certificate files)."""
    d = zptest.tmpdir()
    keys, allow = os.path.join(d, "keys"), os.path.join(d, "allow")
    r = subprocess.run([binary("zpipe"), "keygen", "--dir", keys, "sink",
                        "ventilator", "worker", "client"],
                       capture_output=True, timeout=30)
    check(r.returncode == 0, r.stderr)
    os.mkdir(allow)
    import shutil
    for n in ("worker", "client", "ventilator"):
        shutil.copy(os.path.join(keys, n + ".key"), allow)
    k = lambda n: os.path.join(keys, n + ".key")  # noqa: E731
    disp, res, ctl, intake = ("tcp://127.0.0.1:%d" % p
                              for p in zptest.free_ports(4))
    os.mkdir(os.path.join(d, "spool"))
    logs = [os.path.join(d, n + ".log") for n in ("sink", "vent", "w1", "w2")]
    serve = lambda n: ["--curve-secret", k(n) + "_secret",  # noqa: E731
                       "--curve-allow", allow]
    start([binary("zpipe-sink"), "--results", res, "--control", ctl,
           "--publish", "none", "--output", "/dev/null", "--spool",
           os.path.join(d, "spool")] + serve("sink"),
          stderr=open(logs[0], "wb"))
    start([binary("zpipe-ventilator"), "--intake", intake, "--bind", disp,
           "--sink", ctl, "--sink-key", k("sink")] + serve("ventilator"),
          stderr=open(logs[1], "wb"))
    for log in logs[2:]:
        start([binary("zpipe-worker"), "--ventilator", disp, "--sink", res,
               "--plugin", "python", "--curve-secret", k("worker") + "_secret",
               "--ventilator-key", k("ventilator"), "--sink-key", k("sink")],
              stderr=open(log, "wb"))
    spec = ("ventilator=%s,sink=%s,curve_secret=%s,ventilator_key=%s,"
            "sink_key=%s,main=1,path=%s" % (
                intake, ctl, k("client") + "_secret", k("ventilator"),
                k("sink"), os.path.join(zptest.BUILD, "python")))
    try:
        zp = _script("dropin.py", "zpipe", env={"ZPIPE_CLUSTER": spec})
    except Exception:
        zptest.dump_logs(logs)
        raise
    _compare(_script("dropin.py", "mp"), zp, "CURVE cluster")


def _procs():
    """pid -> (ppid, pgid) of every live process (zombies left out)."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                st = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if st[0] != "Z":
            out[int(pid)] = (int(st[1]), int(st[2]))
    return out


def _cluster(pgid):
    """The private cluster's processes: its process group (the daemons)
    and their children (the workers' executors, in groups of their own)."""
    ps = _procs()
    group = {p for p, (_, g) in ps.items() if g == pgid}
    return group | {p for p, (pp, _) in ps.items() if pp in group}


def _gone(pids, within):
    end = time.monotonic() + within
    while time.monotonic() < end:
        left = set(pids) & set(_procs())
        if not left:
            return []
        time.sleep(0.05)
    return sorted(left)


def test_no_process_left_behind():
    for how in ("with", "closejoin", "terminate", "exit"):
        t0 = time.monotonic()
        info = json.loads(_script("lifetime.py", how).splitlines()[-1])
        check(len(info["pids"]) == 4 and len(info["executors"]) >= 2, info)
        left = _gone(info["pids"] + info["executors"], 1.0)
        check(not left and not os.path.exists(info["dir"]),
              "after %s: left %s" % (how, left))
        print("    %s: %d daemons and %d executors gone, script %.2f s" % (
            how, len(info["pids"]), len(info["executors"]),
            time.monotonic() - t0))
    p = subprocess.Popen([PY, os.path.join(SCRIPTS, "lifetime.py"),
                          "sigkill"], stdout=subprocess.PIPE)
    try:
        info = json.loads(p.stdout.readline())
        before = _cluster(info["pgid"])
        check(len(before) >= 6, "daemons and executors: %s" % before)
    finally:
        p.kill()
        p.wait()
    t0 = time.monotonic()
    left = _gone(before, 10.0)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    check(not left, "caller SIGKILLed: left %s" % left)
    print("    caller SIGKILLed: its %d processes gone in %.2f s" % (
        len(before), time.monotonic() - t0))
    import shutil
    shutil.rmtree(info["dir"], ignore_errors=True)


def test_client_submit_results_wait_status_on_echo():
    sys.path.insert(0, os.path.join(zptest.BUILD, "python"))
    import zpipe
    c = Running()
    client = zpipe.Client(c.intake, c.control, cluster="pytest",
                          events=[(c.events, None)])
    import threading
    from zpipe.events import as_dict
    seen = []

    def follow():
        stream = client.events(timeout=10)
        for topic, ev in stream:
            seen.append((topic, as_dict(ev).get("job_id")))
            if topic == "job_closed":
                return
    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    time.sleep(1.0)  # Client.events subscribes (0.5 s) before it yields
    n = 20000
    items = ["item-%d" % i for i in range(n)]
    job = client.submit("echo", items, batch=500)
    check(job.total == n, job.total)
    st = job.wait(timeout=60)
    check(st["state"] == "done" and st["total"] == n and
          st["succeeded"] == n and st["failed"] == 0, st)
    check(job.status()["done"] == n, job.status())
    follower.join(15)
    check(("job_opened", job.id) in seen and ("job_closed", job.id) in seen,
          "Client.events: %s" % seen[:10])
    got, it, cursor = {}, job.results(timeout=60), 0
    dup = wrong = 0
    for rec in it:
        dup += rec.task in got
        got[rec.task] = rec.output
        cursor = rec.cursor
        if len(got) == 5000:
            c.restart_sink()  # the iterator's connection drops
        if len(got) == 12000:
            break
    it.close()
    for rec in job.results(cursor=cursor, timeout=60):  # resume by cursor
        dup += rec.task in got
        got[rec.task] = rec.output
    for t, out in got.items():
        wrong += out != items[t].encode()
    lost = n - len(got)
    check((lost, dup, wrong) == (0, 0, 0),
          "lost %d, duplicated %d, wrong %d" % (lost, dup, wrong))
    print("    %d echo records: lost 0, duplicated 0, wrong 0, across a sink "
          "restart and a resume by cursor" % n)


if __name__ == "__main__":
    zptest.main([test_dropin_local_pool_gives_what_multiprocessing_gives,
                 test_engine_edges,
                 test_zpipe_only_cases,
                 test_a_pool_made_at_import_time_is_refused_on_the_workers,
                 test_dropin_on_a_running_cluster,
                 test_scripts_sharing_a_cluster_each_run_their_own_code,
                 test_a_crashed_executor_leaves_the_rest_of_its_batch_with_the_job,
                 test_sink_killed_mid_map_loses_and_duplicates_nothing,
                 test_dropin_on_a_curve_cluster_over_tcp,
                 test_no_process_left_behind,
                 test_client_submit_results_wait_status_on_echo])
