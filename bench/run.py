"""zpipe benchmark: every system side by side, in one invocation, on the same
machine and inputs, alternating runs, reporting medians and ratios.

    /usr/bin/python3 bench/run.py [--quick] [--build DIR] [--repeat N] [--only WORD]
    /usr/bin/python3 bench/run.py --only parallel   # GNU parallel vs exec alone

Writes bench/results.md (and bench/results.png when gnuplot is installed).
Absolute times on a shared machine drift; the ratios, measured in the same
run with systems alternating, are what to read. See bench/README.md.
"""
import argparse
import datetime
import hashlib
import io
import json
import multiprocessing
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# What the benchmark writes; a change to these does not make the measured
# source dirty.
OUTPUTS = ("bench/results.md", "bench/results.png", "README.md")


# Waiting for a command: Popen.wait(timeout) and subprocess.run(timeout=)
# poll waitpid with sleeps that grow to 50 ms, so a time taken around them
# comes in steps (1, 3, 7, 15, 31, 63, 113, 163 ms...): every whole-process
# row read 0.033, 0.064, 0.116, 0.165 s and so on. These wait blocking, and
# a timer kills the command at the timeout instead.
def _blocking(p, timeout, call):
    """call() (p.wait or p.communicate, with no timeout: they block);
    p is killed if it runs past timeout s."""
    t = threading.Timer(timeout, p.kill)
    t.daemon = True
    t.start()
    try:
        return call()
    finally:
        t.cancel()


def build_flags(build):
    """The build type and C flags a build used: its build-flags.txt (the
    top CMakeLists.txt writes the effective ones), else its CMake cache's.
    Two builds at -O2 and -O3 differ by 20 % on empty tasks: a before/after
    of the two measures that, not the change."""
    try:
        with open(os.path.join(build, "build-flags.txt")) as f:
            return " ".join(f.read().split())
    except OSError:
        pass
    cache = {}
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                cache[k.split(":")[0]] = v
    except OSError:
        return "(flags unknown)"
    bt = cache.get("CMAKE_BUILD_TYPE", "")
    return " ".join(("%s %s %s" % (bt, cache.get("CMAKE_C_FLAGS", ""),
                                   cache.get("CMAKE_C_FLAGS_" + bt.upper(), ""))).split())


def settle():
    """Before a timed run: the files earlier runs wrote go to disk now, not
    during it. Runs write 100 MB and more each; the kernel writes them back
    30 s later, and on 2 cores its flusher took CPU from whichever run was
    going: the service path's third run in a row took 1.00 s against 0.63
    s, its sink's CPU 0.56 s against 0.25 s."""
    os.sync()


def wait_blocking(p, timeout=3600):
    """p.wait() without polling; the command is killed after timeout s."""
    return _blocking(p, timeout, p.wait)


def communicate_blocking(p, timeout=3600):
    return _blocking(p, timeout, p.communicate)


def run_blocking(cmd, timeout=3600, check=False, capture_output=False, **kw):
    """subprocess.run without its timeout's polling."""
    if capture_output:
        kw["stdout"] = kw["stderr"] = subprocess.PIPE
    with subprocess.Popen(cmd, **kw) as p:
        out, err = communicate_blocking(p, timeout)
    r = subprocess.CompletedProcess(cmd, p.returncode, out, err)
    if check:
        r.check_returncode()
    return r


def ratio_str(x):
    """A ratio with 2 decimals, or 2 significant digits below 0.1 (0.0012,
    not 0.00)."""
    return "%.2f" % x if x >= 0.1 else "%.2g" % x


def source_state():
    """'commit abc1234 (clean)', or 'commit abc1234 (dirty: FILE, ...)' when
    tracked or new files differ from HEAD (the benchmark's own outputs,
    OUTPUTS, aside): the source the measured build came from, written in
    every section header (bench/readme.py reads it back)."""
    def git(*a):
        r = run_blocking(["git", "-C", ROOT] + list(a), capture_output=True,
                           text=True)
        return r.stdout if r.returncode == 0 else None
    head = (git("rev-parse", "--short", "HEAD") or "").strip()
    status = git("status", "--porcelain")
    if not head or status is None:
        return "commit unknown (not a git checkout)"
    changed = [l[3:].split(" -> ")[-1] for l in status.splitlines() if l.strip()]
    changed = [c for c in changed if c not in OUTPUTS]
    if not changed:
        return "commit %s (clean)" % head
    return "commit %s (dirty: %s%s)" % (head, ", ".join(changed[:5]),
                                        ", and %d more" % (len(changed) - 5)
                                        if len(changed) > 5 else "")


def cpu_spin(us):
    """Burn us microseconds of this thread's CPU time (as the spin plugin)."""
    end = time.thread_time() + us / 1e6
    while time.thread_time() < end:
        pass


def py_task(line):
    """The same work as zpipe's echo/spin: payload in, payload out."""
    if line and line[0].isdigit() and SPIN:
        cpu_spin(int(line))
    return line


SPIN = False


def py_echo(line):
    """The python plugin's task (raw codec): payload in, payload out."""
    return line


def py_spin(line):
    """The python plugin's spin task: burns the payload's microseconds."""
    cpu_spin(int(line))
    return line


def py_plugin(func):
    """zpipe run settings calling this file's func with the python plugin."""
    return ("--config", "func=run:" + func, "--config", "path=" + HERE)

# --only WORD with WORD in this name runs the GNU parallel section alone.
EXEC_WORKLOAD = "GNU parallel vs exec"
EXEC_HEADING = "## GNU parallel vs zpipe exec (one command per task)"
WHOLE_HEADING = "## Whole process: the user's stopwatch"


def _pool_worker_init(spin):
    global SPIN
    SPIN = spin


def run_pool(inp, out, workers, chunksize, spin):
    """multiprocessing.Pool.map reading the input file, writing the output."""
    t0 = time.perf_counter()
    with open(inp) as f:
        lines = f.read().splitlines()
    with multiprocessing.Pool(workers, initializer=_pool_worker_init,
                              initargs=(spin,)) as pool:
        if chunksize:
            res = pool.map(py_task, lines, chunksize=chunksize)
        else:
            res = pool.map(py_task, lines)
    with open(out, "w") as f:
        f.write("\n".join(res) + "\n")
    return time.perf_counter() - t0


def run_dask(inp, out, workers, spin):
    from dask.distributed import Client, LocalCluster
    t0 = time.perf_counter()
    with open(inp) as f:
        lines = f.read().splitlines()
    with LocalCluster(n_workers=workers, threads_per_worker=1,
                      processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        futures = client.map(_dask_task, lines, [spin] * len(lines), pure=False)
        res = client.gather(futures)
    with open(out, "w") as f:
        f.write("\n".join(res) + "\n")
    return time.perf_counter() - t0


def _dask_task(line, spin):
    if spin:
        cpu_spin(int(line))
    return line


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.zpipe = os.path.join(self.build, "bin", "zpipe")
        self.raw = os.path.join(self.build, "bench", "raw_pipeline")
        self.tmp = tempfile.mkdtemp(prefix="zpipe-bench-")
        self.rows = []
        self.ncpu = os.cpu_count() or 2
        # Taken before anything runs: the tree that was built and measured.
        self.source = source_state()

    def path(self, name):
        return os.path.join(self.tmp, name)

    def fresh_out(self):
        """The output file's path, the previous run's output removed first
        (untimed): the time a filesystem takes to drop hundreds of MiB of
        an old file is no system's work, and a system that truncates it
        before its first result (zpipe's sink, before it takes the job)
        would pay it while one that does it beside other work would not."""
        p = self.path("out")
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
        return p

    def write_input(self, name, lines):
        p = self.path(name)
        with open(p, "w") as f:
            for l in lines:
                f.write(l)
                f.write("\n")
        return p

    # Each runner returns (seconds, {process: peak RSS KiB}, extra dict)
    def raw_run(self, inp, spin, transport="ipc", latency=False):
        cmd = [self.raw, "run", "--workers", "2", "--input", inp,
               "--output", self.fresh_out(), "--transport", transport]
        if spin:
            cmd.append("--spin")
        if latency:
            cmd.append("--latency")
        r = run_blocking(cmd, capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            raise RuntimeError("raw_pipeline failed: %s" % r.stderr[-500:])
        secs = float(re.search(r"seconds=([\d.]+)", r.stdout).group(1))
        rss = {}
        for m in re.finditer(r"rss (\w+) (\d+)", r.stderr):
            rss[m.group(1)] = max(rss.get(m.group(1), 0), int(m.group(2)))
        extra = {}
        m = re.search(r"p50_us=(\d+) p99_us=(\d+)", r.stdout)
        if m:
            extra = {"p50": int(m.group(1)), "p99": int(m.group(2))}
        return secs, rss, extra

    def plain_run(self, inp):
        """bench/plain_pipeline: plain libzmq with no copy in user space
        (the input read in blocks each line is sent from, forwarded as
        received, written with writev); lines must end with a newline."""
        cmd = [os.path.join(self.build, "bench", "plain_pipeline"), "run",
               "--workers", "2", "--input", inp, "--output", self.fresh_out()]
        r = run_blocking(cmd, capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            raise RuntimeError("plain_pipeline failed: %s" % r.stderr[-500:])
        secs = float(re.search(r"seconds=([\d.]+)", r.stdout).group(1))
        rss = {}
        for m in re.finditer(r"rss (\w+) (\d+)", r.stderr):
            rss[m.group(1)] = max(rss.get(m.group(1), 0), int(m.group(2)))
        return secs, rss, {}

    @staticmethod
    def children_cpu():
        """CPU seconds (user + system) of every waited-for descendant so
        far: zpipe run waits for its daemons, so a run's delta is the CPU
        the whole pipeline used."""
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    @staticmethod
    def sink_cpu_watch(root):
        """Follows the zpipe-sink below process root: returns (stop, cpu),
        stop() ending the watch and cpu() the sink's CPU seconds as last
        read from /proc/PID/schedstat (every 2 ms; the sink's last
        milliseconds before it exits are not seen)."""
        import threading
        seen, done = [0.0], threading.Event()

        def find():
            todo, visited = [root], set()
            while todo:
                pid = todo.pop()
                if pid in visited:
                    continue
                visited.add(pid)
                try:
                    with open("/proc/%d/comm" % pid) as f:
                        if pid != root and f.read().strip() == "zpipe-sink":
                            return pid
                    for t in os.listdir("/proc/%d/task" % pid):
                        with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                            todo += [int(x) for x in f.read().split()]
                except OSError:
                    pass
            return None

        def watch():
            sink = None
            while not done.wait(0.002):
                sink = sink or find()
                try:
                    with open("/proc/%d/schedstat" % sink) as f:
                        seen[0] = int(f.read().split()[0]) / 1e9
                except (OSError, TypeError):
                    pass

        th = threading.Thread(target=watch, daemon=True)
        th.start()

        def stop():
            done.set()
            th.join()
        return stop, lambda: seen[0]

    def zpipe_run(self, inp, plugin, batch=None, transport="ipc", isolation="process",
                  extra=(), zpipe=None, cat=False, sink_cpu=False, workers=2):
        """A whole `zpipe run --input inp </dev/null`, or with cat
        `cat inp | zpipe run` (stdin read to its end, then a finished
        pipe). The time includes cat's. With sink_cpu the sink's own CPU
        seconds are reported too ("sink_cpu")."""
        cmd = [zpipe or self.zpipe, "run", "--plugin", plugin, "--workers", str(workers),
               "--input", "-" if cat else inp, "--output", self.fresh_out(),
               "--format", "lines", "--isolation", isolation, "--transport",
               transport, "--no-progress"] + list(extra)
        if batch is not None:  # else zpipe's default
            cmd += ["--batch", str(batch)]
        c0 = self.children_cpu()
        t0 = time.perf_counter()
        src = subprocess.Popen(["cat", inp], stdout=subprocess.PIPE) if cat else None
        p = subprocess.Popen(cmd, stdin=src.stdout if cat else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stop, sink = self.sink_cpu_watch(p.pid) if sink_cpu else (None, None)
        _, err = communicate_blocking(p)
        r = subprocess.CompletedProcess(cmd, p.returncode, "", err)
        if src:
            src.stdout.close()
            src.wait()
        secs = time.perf_counter() - t0
        cpu = self.children_cpu() - c0
        if stop:
            stop()
        if r.returncode != 0:
            raise RuntimeError("zpipe run failed: %s" % r.stderr[-800:])
        rss = {}
        m = re.search(r"peak RSS KiB: sink (\d+), ventilator (\d+), workers (\d+)",
                      r.stderr)
        if m:
            rss = {"sink": int(m.group(1)), "ventilator": int(m.group(2)),
                   "worker": int(m.group(3))}
        extra = {"cpu": cpu}
        if sink:
            extra["sink_cpu"] = sink()
        return secs, rss, extra

    def zpipe_metrics_run(self, inp, plugin, scrape_s=0.5):
        """zpipe run with --metrics on in every process (ZPIPE_METRICS,
        port 0) and a scraper fetching each daemon's /metrics every
        scrape_s seconds while it runs, as Prometheus would (more often
        than its default 15 s, to make the cost visible)."""
        import threading
        import urllib.request
        # Info logs name each daemon's metrics address; the runs with
        # metrics off log at info too, so the two differ only in metrics.
        cmd = [self.zpipe, "run", "--plugin", plugin, "--workers", "2",
               "--input", inp, "--output", self.fresh_out(), "--format",
               "lines", "--no-progress", "--log-level", "info"]
        env = dict(os.environ, ZPIPE_METRICS="127.0.0.1:0")
        urls, scrapes, stop = [], [0], threading.Event()

        def scraper():
            while not stop.wait(scrape_s):
                for u in list(urls):
                    try:
                        urllib.request.urlopen(u, timeout=2).read()
                        scrapes[0] += 1
                    except OSError:
                        pass

        c0 = self.children_cpu()
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        th = threading.Thread(target=scraper, daemon=True)
        th.start()
        err = []
        for line in p.stderr:
            err.append(line)
            m = re.search(r"serving (http://\S+/metrics)", line)
            if m:
                urls.append(m.group(1))
        wait_blocking(p)
        secs = time.perf_counter() - t0
        cpu = self.children_cpu() - c0
        stop.set()
        th.join()
        if p.returncode != 0:
            raise RuntimeError("zpipe run failed: %s" % "".join(err)[-800:])
        if len(urls) < 4:
            raise RuntimeError("metrics served by %d processes, want 4" % len(urls))
        return secs, {}, {"scrapes": scrapes[0], "cpu": cpu}

    def python_run(self, call, what):
        """Times run.CALL in a fresh interpreter, as a user would run it."""
        code = "import sys; sys.path.insert(0, %r); import run; print(run.%s)" % (HERE, call)
        t0 = time.perf_counter()
        r = run_blocking(["/usr/bin/python3", "-c", code], capture_output=True,
                           text=True, timeout=3600)
        secs = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError("%s failed: %s" % (what, r.stderr[-500:]))
        return secs, {}, {}

    def pool_run(self, inp, spin, chunksize):
        return self.python_run("run_pool(%r, %r, 2, %r, %r)"
                               % (inp, self.fresh_out(), chunksize, spin), "Pool.map")

    def dask_run(self, inp, spin):
        return self.python_run("run_dask(%r, %r, 2, %r)"
                               % (inp, self.fresh_out(), spin), "Dask")

    def measure(self, workload, n, systems, work_s=None, repeat=None):
        """Runs every system repeat times (default --repeat), alternating;
        records medians (of CPU seconds too, when a runner reports them)."""
        if self.args.only and self.args.only not in workload:
            return
        results = {name: [] for name, _ in systems}
        rss = {name: {} for name, _ in systems}
        extra = {name: {} for name, _ in systems}
        # Figures a runner reports beside its time, reported as medians.
        medians = {name: {k: [] for k in ("cpu", "sink_cpu", "results_s")}
                   for name, _ in systems}
        for rep in range(repeat or self.args.repeat):
            for name, fn in systems:
                settle()
                try:
                    secs, r, e = fn()
                except Exception as exc:  # a system that fails is reported
                    print("  %s / %s: FAILED: %s" % (workload, name, exc), flush=True)
                    results[name] = None
                    continue
                if results[name] is None:
                    continue
                results[name].append(secs)
                for k, v in r.items():
                    rss[name][k] = max(rss[name].get(k, 0), v)
                extra[name] = e
                for k, vals in medians[name].items():
                    if k in e:
                        vals.append(e[k])
        limit = None
        for name, _ in systems:
            if name.startswith("raw") and results[name]:
                limit = n / statistics.median(results[name])
                break
        for name, _ in systems:
            times = results[name]
            if not times:
                self.rows.append({"workload": workload, "system": name, "failed": True})
                continue
            med = statistics.median(times)
            row = {"workload": workload, "system": name, "n": n, "seconds": med,
                   "rate": n / med, "ratio": (n / med) / limit if limit else None,
                   "efficiency": (work_s / 2) / med if work_s else None,
                   "rss": rss[name]}
            row.update(extra[name])
            for k, vals in medians[name].items():
                if vals:
                    row[k] = statistics.median(vals)
            if medians[name]["cpu"]:
                row["runs"] = len(times)
            self.rows.append(row)
            print("  %-28s %-34s %10.0f tasks/s  %s%s" % (
                workload, name, row["rate"],
                "ratio %.2f" % row["ratio"] if row["ratio"] else "",
                "  CPU %.2f s" % row["cpu"] if "cpu" in row else ""), flush=True)

    def before_after(self):
        """--before DIR: the same zpipe runs from two builds, alternating,
        to show what a change to the daemons costs. Writes its own section
        of bench/results.md and nothing else."""
        q = self.args.quick
        before = os.path.join(os.path.abspath(self.args.before), "bin", "zpipe")
        rep = max(5, self.args.repeat)
        label_b = self.args.before_label or self.args.before
        label_a = self.args.after_label or self.args.build
        rows = []

        def pair(workload, n, inp, plugin, work_s=None, repeat=rep, extra=()):
            print("%s x %d" % (workload, n), flush=True)
            self.rows = []
            self.measure(workload, n, [
                ("before", lambda: self.zpipe_run(inp, plugin, zpipe=before, extra=extra)),
                ("after", lambda: self.zpipe_run(inp, plugin, extra=extra)),
            ], work_s=work_s, repeat=repeat)
            rows.extend(self.rows)

        n_empty = 20000 if q else 1000000
        pair("empty tasks", n_empty,
             self.write_input("ba_empty", (str(i) for i in range(n_empty))), "echo")
        n_spin = 2000 if q else 20000
        for us in (100, 1000):
            n = n_spin if us == 100 else n_spin // 5
            pair("spin %d us" % us, n,
                 self.write_input("ba_spin%d" % us, (str(us) for _ in range(n))),
                 "spin", work_s=n * us / 1e6)
        n_big = 200 if q else 2000
        pair("payload 64 KiB", n_big,
             self.write_input("ba_64k", ("x" * 65536 for _ in range(n_big))), "echo")
        n_mib = 32 if q else 256
        pair("payload 1 MiB", n_mib,
             self.write_input("ba_1m", ("x" * (1 << 20) for _ in range(n_mib))), "echo")
        pair("one line (fixed cost)", 1, self.write_input("ba_one", ["1"]), "echo",
             repeat=max(15, rep))
        pair("empty tasks, JSON Lines", n_empty // 5,
             self.write_input("ba_json", (str(i) for i in range(n_empty // 5))), "echo",
             extra=("--format", "jsonl"))
        pair("empty tasks, JSON Lines", n_empty,
             self.write_input("ba_json1m", (str(i) for i in range(n_empty))), "echo",
             extra=("--format", "jsonl"))
        lines = ["## Before/after: a change to the daemons", "",
                 "Measured %s on %s; `/usr/bin/python3 bench/run.py --before %s%s`; "
                 "medians of %d alternating runs (15 for one line), whole `zpipe run` "
                 "processes with 2 workers, `--format lines` unless said. "
                 "before = %s (built %s), after = %s (built %s). Ratio = after's "
                 "tasks/s over before's (1.00: the same; above: faster)."
                 % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), self.where(),
                    self.args.before, " --quick" if q else "", rep, label_b,
                    build_flags(self.args.before), label_a, build_flags(self.build)),
                 "", "| workload | tasks | before s | after s | after/before | "
                 "efficiency before | efficiency after | CPU s before | CPU s after |",
                 "|---|---|---|---|---|---|---|---|---|"]
        by = {}
        for r in rows:  # one workload at two sizes: two rows
            by.setdefault((r["workload"], r.get("n")), {})[r["system"]] = r
        for (wl, _), d in by.items():
            b, a = d.get("before"), d.get("after")
            if not b or not a or b.get("failed") or a.get("failed"):
                lines.append("| %s | | failed | | | | | | |" % wl)
                continue
            eff = lambda r: "%.1f %%" % (100 * r["efficiency"]) if r.get("efficiency") else ""
            lines.append("| %s | %d | %.3f | %.3f | %.3f | %s | %s | %.2f | %.2f |" % (
                wl, a["n"], b["seconds"], a["seconds"], b["seconds"] / a["seconds"],
                eff(b), eff(a), b.get("cpu", 0), a.get("cpu", 0)))
            print("  %-28s after/before %.3f" % (wl, b["seconds"] / a["seconds"]))
        self.replace_section(lines)

    def payloads_section(self):
        """--payloads: big payloads (64 KiB and 1 MiB, 256 MiB a run) through
        raw_pipeline, plain_pipeline and zpipe run, alternating whole
        processes; writes its own section (issue 19's targets)."""
        rep = max(5, self.args.repeat)
        q = self.args.quick
        rows = []
        for size in (65536, 1 << 20):
            n = (256 << 20) // size // (8 if q else 1)
            inp = self.write_input("big%d" % size, ("x" * size for _ in range(n)))
            print("payload %d B x %d" % (size, n), flush=True)
            self.rows = []
            self.measure("payload %d B" % size, n, [
                ("raw", lambda: self.raw_run(inp, False)),
                ("plain", lambda: self.plain_run(inp)),
                ("zpipe", lambda: self.zpipe_run(inp, "echo")),
            ], repeat=rep)
            rows.extend(self.rows)
        lines = ["## Big payloads: zpipe against raw and plain libzmq", "",
                 "Measured %s on %s; `/usr/bin/python3 bench/run.py --payloads%s`; "
                 "medians of %d alternating runs, each a whole process from its "
                 "start (raw and plain report their own clock from before their "
                 "first spawn), the previous output removed first. raw = "
                 "`bench/raw_pipeline`, plain = `bench/plain_pipeline` (no copy in "
                 "user space), zpipe = `zpipe run --plugin echo --workers 2 "
                 "--format lines` (CPU: every process of the run). Ratio = "
                 "zpipe's tasks/s over the other's. 1-minute load average %.1f."
                 % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), self.where(),
                    " --quick" if q else "", rep, os.getloadavg()[0]),
                 "", "| payload | tasks | raw s | plain s | zpipe s | zpipe / raw | "
                 "zpipe / plain | zpipe CPU s |",
                 "|---|---|---|---|---|---|---|---|"]
        by = {}
        for r in rows:
            by.setdefault(r["workload"], {})[r["system"]] = r
        for wl, d in by.items():
            raw, plain, zp = d.get("raw"), d.get("plain"), d.get("zpipe")
            if any(not x or x.get("failed") for x in (raw, plain, zp)):
                lines.append("| %s | | failed | | | | | |" % wl)
                continue
            lines.append("| %s | %d | %.3f | %.3f | %.3f | %.2f | %.2f | %.2f |" % (
                wl.split(" ", 1)[1], zp["n"], raw["seconds"], plain["seconds"],
                zp["seconds"], raw["seconds"] / zp["seconds"],
                plain["seconds"] / zp["seconds"], zp.get("cpu", 0)))
        self.replace_section(lines)

    def service_run(self, inp, plugin, journal, results=False, sink_journal=True,
                    follow=False, take=False):
        """The service path as a user runs it: a sink (its spool is its
        output; with sink_journal, --journal, synced), a ventilator with an
        intake (journal on or off) and 2 workers are up; timed from
        `zpipe submit` to `zpipe wait` returning, or with results to
        `zpipe results` having written every record to a file (checked;
        with take, `zpipe results --take -o FILE`, which moves the done
        job's spool file to FILE, both in this bench's folder); with follow, one `zpipe submit --results FILE` (the records
        fetched while it submits) instead of the three commands. The
        sink's own CPU in that time is reported ("sink_cpu")."""
        d = tempfile.mkdtemp(dir=self.tmp)
        ep = lambda name: "ipc://%s/%s" % (d, name)
        bin_ = lambda name: os.path.join(self.build, "bin", name)
        sink_cmd = [bin_("zpipe-sink"), "--results", ep("results"), "--control",
                    ep("control"), "--publish", "none", "--spool", d,
                    "--log-level", "warn"]
        if sink_journal:
            sink_cmd += ["--journal", os.path.join(d, "sink.journal")]
        procs = [subprocess.Popen(sink_cmd)]
        vent = [bin_("zpipe-ventilator"), "--intake", ep("intake"), "--bind",
                ep("dispatch"), "--sink", ep("control"), "--log-level", "warn",
                "--no-worker-timeout-ms", "0"]
        if journal:
            vent += ["--journal", os.path.join(d, "vent.journal")]
        procs.append(subprocess.Popen(vent))
        for _ in range(2):
            procs.append(subprocess.Popen(
                [bin_("zpipe-worker"), "--ventilator", ep("dispatch"), "--sink",
                 ep("results"), "--plugin", plugin, "--log-level", "warn"]))
        def sink_cpu():
            with open("/proc/%d/schedstat" % procs[0].pid) as f:
                return int(f.read().split()[0]) / 1e9

        try:
            time.sleep(0.3)  # up and connected
            out = self.fresh_out()
            # A new id each run, as long as the one zpipe run makes itself
            # ("job-" and 12 hex digits): every record names its job, so a
            # longer id would be more bytes to format, write and copy than
            # the zpipe run it is compared with (21 characters were 5 MB
            # more of 1,000,000 records).
            job = "job-%012x" % random.getrandbits(48)
            c0 = self.children_cpu()
            s0 = sink_cpu()
            t0 = time.perf_counter()
            submit = [self.zpipe, "submit", "--ventilator", ep("intake"),
                      "--plugin", plugin, "--input", inp, "--job", job]
            if follow:
                submit += ["--sink", ep("control"), "--results", out]
                if take:
                    submit += ["--take"]
            run_blocking(submit, check=True, capture_output=True, timeout=3600)
            if not follow:
                run_blocking([self.zpipe, "wait", "--sink", ep("control"), job],
                               check=True, capture_output=True, timeout=3600)
            results_s = None
            if results and not follow:
                r0 = time.perf_counter()
                if take:
                    run_blocking([self.zpipe, "results", "--sink", ep("control"),
                                  "--take", "-o", out, job], check=True,
                                 timeout=3600)
                else:
                    with open(out, "wb") as f:
                        run_blocking([self.zpipe, "results", "--sink",
                                      ep("control"), job], check=True, stdout=f,
                                     timeout=3600)
                results_s = time.perf_counter() - r0
            secs = time.perf_counter() - t0
            s1 = sink_cpu()
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait()
            # Untimed: the spool (131 MB a run of 1,000,000) and journals
            # go, so runs do not pile up gigabytes in the page cache.
            shutil.rmtree(d, ignore_errors=True)
        if results or follow:
            with open(self.path("out"), "rb") as f:
                got = sum(1 for _ in f)
            with open(inp, "rb") as f:
                want = sum(1 for _ in f)
            if got != want:
                raise RuntimeError("zpipe results wrote %d records for %d tasks"
                                   % (got, want))
        extra = {"cpu": self.children_cpu() - c0, "sink_cpu": s1 - s0}
        if results_s is not None:
            extra["results_s"] = results_s
        return secs, {}, extra

    def service_section(self):
        """--service: the ventilator's journal on against off, alternating
        runs of the whole service path; writes its own section."""
        q = self.args.quick
        rep = max(5, self.args.repeat)
        rows = []

        def pair(workload, n, inp, plugin, work_s=None):
            print("%s x %d" % (workload, n), flush=True)
            self.rows = []
            self.measure(workload, n, [
                ("off", lambda: self.service_run(inp, plugin, False)),
                ("on", lambda: self.service_run(inp, plugin, True)),
            ], work_s=work_s, repeat=rep)
            rows.extend(self.rows)

        n_empty = 20000 if q else 200000
        pair("empty tasks", n_empty,
             self.write_input("sv_empty", (str(i) for i in range(n_empty))), "echo")
        n_spin = 2000 if q else 20000
        pair("spin 100 us", n_spin,
             self.write_input("sv_spin", ("100" for _ in range(n_spin))), "spin",
             work_s=n_spin * 100 / 1e6)
        lines = ["## Service mode: the ventilator's journal", "",
                 "Measured %s on %s; `/usr/bin/python3 bench/run.py --service%s`; "
                 "medians of %d alternating runs. A running cluster (sink with "
                 "--spool and --journal, ventilator with --intake, 2 workers), "
                 "timed from `zpipe submit` to `zpipe wait` returning; on = the "
                 "ventilator started with --journal (every batch synced before "
                 "its Ack). Ratio = on's tasks/s over off's."
                 % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), self.where(),
                    " --quick" if q else "", rep),
                 "", "| workload | tasks | off s | on s | on/off |",
                 "|---|---|---|---|---|"]
        by = {}
        for r in rows:
            by.setdefault(r["workload"], {})[r["system"]] = r
        for wl, dd in by.items():
            b, a = dd.get("off"), dd.get("on")
            if not b or not a or b.get("failed") or a.get("failed"):
                lines.append("| %s | | failed | | |" % wl)
                continue
            lines.append("| %s | %d | %.3f | %.3f | %.3f |" % (
                wl, a["n"], b["seconds"], a["seconds"], b["seconds"] / a["seconds"]))
            print("  %-28s on/off %.3f" % (wl, b["seconds"] / a["seconds"]))
        self.replace_section(lines)
        self.service_path_section()

    def service_path_section(self):
        """The service path against zpipe run on the same empty tasks, JSON
        Lines: `zpipe submit` + `zpipe wait` + `zpipe results` to a file on
        a running cluster (its sink's spool is its output), against a whole
        `zpipe run` writing its file; writes its own section."""
        q = self.args.quick
        rep = max(5, self.args.repeat)
        n = 20000 if q else 1000000
        inp = self.write_input("sp_empty", (str(i) for i in range(n)))
        print("service path vs zpipe run x %d" % n, flush=True)
        self.rows = []
        systems = [
            ("zpipe run", lambda: self.zpipe_run(inp, "echo", extra=("--format", "jsonl"),
                                                 sink_cpu=True)),
            ("submit + wait + results", lambda: self.service_run(
                inp, "echo", False, results=True, sink_journal=False)),
            ("the same, sink --journal (synced)", lambda: self.service_run(
                inp, "echo", False, results=True)),
            ("submit --results (one command)", lambda: self.service_run(
                inp, "echo", False, sink_journal=False, follow=True)),
            ("submit + wait + results --take -o FILE", lambda: self.service_run(
                inp, "echo", False, results=True, sink_journal=False, take=True)),
            ("submit --results FILE --take (one command)", lambda: self.service_run(
                inp, "echo", False, sink_journal=False, follow=True, take=True)),
        ]
        self.measure("service path", n, systems, repeat=rep)
        by = {r["system"]: r for r in self.rows}
        lines = ["## Service path against zpipe run", "",
                 "Measured %s on %s; `/usr/bin/python3 bench/run.py --service%s`; "
                 "medians of %d alternating runs, %d empty tasks, JSON Lines. "
                 "zpipe run: the whole command writing its file. Service: a "
                 "running cluster (sink with --spool and no --output: each record "
                 "written once, to the spool; its own journal, not synced, or "
                 "--journal, synced; ventilator with --intake; 2 workers), timed "
                 "from `zpipe submit` until `zpipe wait` and then `zpipe results` "
                 "(every record, to a file) return, or until one `zpipe submit "
                 "--results FILE` (which fetches the records while it submits) "
                 "returns. `--take`: the records taken, the done job's spool "
                 "file moved to FILE (same file system) instead of copied. Sink CPU: the sink's own, in that time. `zpipe "
                 "results` s: that command alone, which copies the job's spool "
                 "into the file (copy_file_range, as fast as this machine copies "
                 "a file in the page cache): a copy zpipe run, writing its file "
                 "once, does not make. Target: service / run <= 1.1."
                 % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), self.where(),
                    " --quick" if q else "", rep, n),
                 "", "| system | s | / zpipe run | sink CPU s | pipeline CPU s "
                 "| `zpipe results` s |",
                 "|---|---|---|---|---|---|"]
        base = by.get("zpipe run")
        for name, _ in systems:
            r = by.get(name)
            if not r or r.get("failed") or not base or base.get("failed"):
                lines.append("| %s | failed | | | | |" % name)
                continue
            lines.append("| %s | %.3f | %.2f | %.3f | %.2f | %s |" % (
                name, r["seconds"], r["seconds"] / base["seconds"],
                r.get("sink_cpu", 0), r.get("cpu", 0),
                "%.3f" % r["results_s"] if "results_s" in r else ""))
            print("  %-34s %.3f s, x%.2f, sink CPU %.3f s" % (
                name, r["seconds"], r["seconds"] / base["seconds"],
                r.get("sink_cpu", 0)))
        self.replace_section(lines)

    def formats_section(self):
        """--formats: JSON Lines (the default) against --format lines (and
        JSON Lines --ordered), whole zpipe run processes on empty tasks,
        alternating; the sink's own CPU beside the wall time. Writes its
        own section."""
        q = self.args.quick
        rep = max(5, self.args.repeat)
        n = 20000 if q else 1000000
        inp = self.write_input("fmt_empty", (str(i) for i in range(n)))
        print("JSON Lines vs lines x %d" % n, flush=True)
        self.rows = []
        systems = [
            ("--format lines", lambda: self.zpipe_run(inp, "echo", sink_cpu=True)),
            ("JSON Lines (the default)", lambda: self.zpipe_run(
                inp, "echo", extra=("--format", "jsonl"), sink_cpu=True)),
            ("JSON Lines --ordered", lambda: self.zpipe_run(
                inp, "echo", extra=("--format", "jsonl", "--ordered"), sink_cpu=True)),
        ]
        self.measure("JSON Lines vs lines", n, systems, repeat=rep)
        by = {r["system"]: r for r in self.rows}
        lines = ["## Output formats: JSON Lines against lines", "",
                 "Measured %s on %s; `/usr/bin/python3 bench/run.py --formats%s`; "
                 "medians of %d alternating runs of `zpipe run --plugin echo "
                 "--workers 2 --input FILE --output FILE` on %d lines (each its "
                 "number), whole process. Sink CPU: the sink's own (read from "
                 "/proc while it runs); pipeline CPU: every process's. Target: "
                 "JSON Lines / lines <= 1.2."
                 % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), self.where(),
                    " --quick" if q else "", rep, n),
                 "", "| format | s | / lines | sink CPU s | pipeline CPU s |",
                 "|---|---|---|---|---|"]
        base = by.get("--format lines")
        for name, _ in systems:
            r = by.get(name)
            if not r or r.get("failed") or not base or base.get("failed"):
                lines.append("| %s | failed | | | |" % name)
                continue
            lines.append("| %s | %.3f | %.2f | %.3f | %.2f |" % (
                name, r["seconds"], r["seconds"] / base["seconds"],
                r.get("sink_cpu", 0), r.get("cpu", 0)))
            print("  %-28s %.3f s, x%.2f, sink CPU %.3f s" % (
                name, r["seconds"], r["seconds"] / base["seconds"],
                r.get("sink_cpu", 0)))
        self.replace_section(lines)

    def pool_script(self, script, *args):
        """Times a Pool script in a fresh interpreter, start to exit, as a
        user times it (tests/python/*.py take mp|zpipe as their first
        argument; bench/python/lines.py a file). A script that prints a
        number of seconds (first.py) is timed by that figure instead."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [os.path.join(self.build, "python")]
            + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        t0 = time.perf_counter()
        r = run_blocking(["/usr/bin/python3", script] + list(args),
                           capture_output=True, text=True, timeout=3600, env=env,
                           stdin=subprocess.DEVNULL)
        secs = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError("%s %s failed: %s" % (os.path.basename(script),
                                                     " ".join(args), r.stderr[-800:]))
        m = re.fullmatch(r"\s*([\d.]+)\s*", r.stdout)
        return (float(m.group(1)) if m else secs), {}, {}

    def python_plugin_run(self, inp):
        """`seq ... | zpipe run --plugin python --config func=trivial:f`, the
        input piped in, the JSON Lines output to a file."""
        cmd = "cat %s | %s run --plugin python --workers 2 --config func=trivial:f " \
              "--config path=%s --no-progress -o %s" % (
                  inp, self.zpipe, os.path.join(HERE, "python"), self.fresh_out())
        t0 = time.perf_counter()
        r = run_blocking(["/bin/sh", "-c", cmd], capture_output=True, text=True,
                           timeout=3600)
        secs = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError("zpipe run --plugin python failed: %s" % r.stderr[-800:])
        with open(inp, "rb") as f, open(self.path("out"), "rb") as g:
            want, got = sum(1 for _ in f), sum(1 for _ in g)
        if want != got:
            raise RuntimeError("zpipe run --plugin python: %d records for %d lines"
                               % (got, want))
        return secs, {}, {}

    def python_section(self):
        """--python: zpipe.Pool against multiprocessing.Pool, and the python
        plugin against Pool.map(chunksize=1), alternating whole-script runs;
        writes its own section."""
        q = self.args.quick
        rep = max(5, self.args.repeat)
        rows = []

        def pair(workload, n, systems):
            print("%s x %d" % (workload, n), flush=True)
            self.rows = []
            self.measure(workload, n, systems, repeat=rep)
            rows.extend(self.rows)

        tp = os.path.join(ROOT, "tests", "python")
        for name, script, n in (("1 ms CPU function, map", "burn.py", 4000),
                                ("x * x, map, default chunksize", "squares.py", 1000000),
                                ("start to first result, 1-item map", "first.py", 1)):
            path = os.path.join(tp, script)
            pair(name, n, [
                ("multiprocessing.Pool", lambda: self.pool_script(path, "mp")),
                ("zpipe.Pool", lambda: self.pool_script(path, "zpipe"))])
        n = 100000 if q else 1000000
        inp = self.write_input("py_lines", (str(i) for i in range(1, n + 1)))
        pair("trivial f(bytes), one task per line", n, [
            ("Pool.map chunksize 1",
             lambda: self.pool_script(os.path.join(HERE, "python", "lines.py"), inp)),
            ("zpipe run --plugin python", lambda: self.python_plugin_run(inp))])
        lines = ["## Python: zpipe.Pool and the python plugin", "",
                 "Measured %s on %s; `/usr/bin/python3 bench/run.py --python%s`; "
                 "medians of %d alternating runs, 2 workers each, each a whole "
                 "script or command timed from start to exit (tests/python/"
                 "burn.py, squares.py, first.py: the same script with only its "
                 "Pool import changed), except the first-result row, timed inside the "
                 "script from before `Pool()` to the first result. Ratio = the "
                 "first system's time over the second's (above 1: zpipe is "
                 "faster)." % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                               self.where(), " --quick" if q else "", rep),
                 "", "| workload | items | system | s | system | s | ratio |",
                 "|---|---|---|---|---|---|---|"]
        by = {}
        for r in rows:
            by.setdefault(r["workload"], []).append(r)
        for wl, rr in by.items():
            if len(rr) != 2 or any(x.get("failed") for x in rr):
                lines.append("| %s | | %s | failed | | | |" % (
                    wl, ", ".join(x["system"] for x in rr if x.get("failed"))))
                continue
            a, b = rr
            lines.append("| %s | %d | %s | %.3f | %s | %.3f | %.2f |" % (
                wl, a["n"], a["system"], a["seconds"], b["system"], b["seconds"],
                a["seconds"] / b["seconds"]))
            print("  %-36s %s/%s %.2f" % (wl, a["system"], b["system"],
                                          a["seconds"] / b["seconds"]))
        self.replace_section(lines)

    # ---- Whole process: the user's stopwatch (--whole) ----

    def stopwatch(self, argv, out, stdin=None, cat=None, env=None):
        """Seconds from starting argv to its exit, as a user's stopwatch
        sees it. stdin: None for /dev/null, else a file to read; cat: a file
        piped in by `cat FILE | argv` (timed from cat's start to both
        exits); out: where argv's stdout goes, for a command that does not
        write its output itself (None: /dev/null). Raises when argv fails,
        with the end of its stderr."""
        fo = open(out, "w") if out else subprocess.DEVNULL
        fi = open(stdin) if stdin else subprocess.DEVNULL
        with tempfile.TemporaryFile() as err:
            try:
                t0 = time.perf_counter()
                src = subprocess.Popen(["cat", cat], stdout=subprocess.PIPE) if cat else None
                p = subprocess.Popen(argv, stdin=src.stdout if src else fi, stdout=fo,
                                     stderr=err, env=env)
                if src:
                    src.stdout.close()
                rc = wait_blocking(p)
                if src:
                    wait_blocking(src, 60)
                secs = time.perf_counter() - t0
            finally:
                if out:
                    fo.close()
                if stdin:
                    fi.close()
            if rc != 0:
                err.seek(0)
                raise RuntimeError("%s exited %d: %s" % (
                    os.path.basename(argv[0]), rc,
                    err.read()[-600:].decode(errors="replace")))
        return secs

    @staticmethod
    def check_numbers(out, n, jsonl):
        """None when OUT holds exactly one record for each of the input lines
        0 .. n-1 (any order; JSON Lines: status ok, output the line), else
        what is wrong: lost, duplicated or unexpected records."""
        with open(out) as f:
            recs = f.read().splitlines()
        try:
            if jsonl:
                vals = []
                for line in recs:
                    r = json.loads(line)
                    if r.get("status") != "ok":
                        return "a record with status %r" % r.get("status")
                    vals.append(int(r["output"]))
            else:
                vals = [int(x) for x in recs]
        except (ValueError, KeyError) as exc:
            return "an unexpected record (%s)" % exc
        vals.sort()
        if vals != list(range(n)):
            return "%d records for %d lines (%d distinct)" % (len(vals), n, len(set(vals)))
        return None

    def dask_version(self):
        """distributed's version for /usr/bin/python3, or None and why not."""
        r = subprocess.run(["/usr/bin/python3", "-c", "import distributed; "
                            "print(distributed.__version__)"], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            return None, ("python3-distributed is not installed for /usr/bin/python3 "
                          "(apt-get install python3-distributed)")
        return r.stdout.strip(), None

    def whole_section(self):
        """--whole: whole commands timed as a user times them, from start to
        exit: `zpipe run --plugin echo --workers 2` on empty tasks (JSON
        Lines and --format lines, --input FILE </dev/null and `cat FILE |`)
        against a Pool(2).map script, bench/raw_pipeline, xargs -P2, GNU
        parallel and Dask on the same lines, alternating; every run's output
        checked before it counts. Writes its own section of results.md."""
        q = self.args.quick
        rep = 3 if q else max(5, self.args.repeat)
        sizes = (1, 1000, 20000) if q else (1, 10000, 200000, 1000000)
        # One process per task (xargs, parallel) or about 1 ms per task (Dask):
        # only the smaller inputs.
        small = 1000 if q else 10000
        load0 = os.getloadavg()[0]
        skipped = []
        out = self.path("whole_out")
        pyver = subprocess.run(["/usr/bin/python3", "-c", "import platform; "
                                "print(platform.python_version())"],
                               capture_output=True, text=True).stdout.strip()
        try:
            pver, pdeb = self.ensure_parallel()
        except Exception as exc:
            pver = None
            skipped.append("GNU parallel: not run: %s" % exc)
        dver, why = self.dask_version()
        if not dver:
            skipped.append("Dask: not run: %s" % why)
        for s in skipped:
            print("  " + s, flush=True)
        penv = dict(os.environ, PARALLEL_SHELL="/bin/sh",
                    PARALLEL_HOME=self.path("parallel-home"))
        os.makedirs(penv["PARALLEL_HOME"], exist_ok=True)
        open(os.path.join(penv["PARALLEL_HOME"], "will-cite"), "w").close()
        zp = [self.zpipe, "run", "--plugin", "echo", "--workers", "2", "-o", out]
        pool = os.path.join(HERE, "python", "pool_map.py")
        dask = os.path.join(HERE, "python", "dask_map.py")
        py = "/usr/bin/python3"

        def zpipe(fmt, cat):
            def run(inp):
                argv = zp + (["--format", "lines"] if fmt == "lines" else [])
                if cat:
                    return self.stopwatch(argv, None, cat=inp)
                return self.stopwatch(argv + ["--input", inp], None)
            return run

        # key, command shown, runner(input), JSON Lines output?, largest input
        systems = [
            ("zpipe, JSON Lines", "zpipe run --plugin echo --workers 2 --input FILE "
             "-o OUT </dev/null", zpipe("jsonl", False), True, None),
            ("zpipe, JSON Lines, closed pipe", "cat FILE | zpipe run --plugin echo "
             "--workers 2 -o OUT", zpipe("jsonl", True), True, None),
            ("zpipe, lines", "zpipe run --plugin echo --workers 2 --format lines "
             "--input FILE -o OUT </dev/null", zpipe("lines", False), False, None),
            ("zpipe, lines, closed pipe", "cat FILE | zpipe run --plugin echo "
             "--workers 2 --format lines -o OUT", zpipe("lines", True), False, None),
            ("Pool.map default", "python3 bench/python/pool_map.py FILE OUT",
             lambda inp: self.stopwatch([py, pool, inp, out], None), False, None),
            ("Pool.map chunksize 1", "python3 bench/python/pool_map.py FILE OUT 1",
             lambda inp: self.stopwatch([py, pool, inp, out, "1"], None), False, None),
            ("raw_pipeline", "build/bench/raw_pipeline run --workers 2 --input FILE "
             "--output OUT", lambda inp: self.stopwatch(
                 [self.raw, "run", "--workers", "2", "--input", inp, "--output", out],
                 None), False, None),
            ("xargs -P2", "xargs -P2 -d '\\n' -n1 echo <FILE >OUT",
             lambda inp: self.stopwatch(["xargs", "-P2", "-d", "\n", "-n1", "echo"],
                                        out, stdin=inp), False, small),
        ]
        if pver:
            systems.append(("GNU parallel", "parallel -j2 echo <FILE >OUT",
                            lambda inp: self.stopwatch(["parallel", "-j2", "echo"], out,
                                                       stdin=inp, env=penv), False, small))
        if dver:
            systems.append(("Dask", "python3 bench/python/dask_map.py FILE OUT",
                            lambda inp: self.stopwatch([py, dask, inp, out], None),
                            False, small))
        # times[key][n]: the counted runs' seconds; bad[key][n]: why runs
        # were not counted.
        times = {k: {} for k, *_ in systems}
        bad = {k: {} for k, *_ in systems}
        for n in sizes:
            inp = self.write_input("whole%d" % n, (str(i) for i in range(n)))
            print("whole process, %d lines, %d rounds" % (n, rep), flush=True)
            todo = [s for s in systems if s[4] is None or n <= s[4]]
            for key, *_ in todo:
                times[key][n] = []
            for r in range(rep):
                for key, _, run, jsonl, _ in todo:
                    if os.path.exists(out):
                        os.unlink(out)
                    settle()
                    try:
                        secs = run(inp)
                        wrong = self.check_numbers(out, n, jsonl)
                    except Exception as exc:
                        secs, wrong = None, "failed: %s" % exc
                    if wrong:
                        bad[key].setdefault(n, []).append(wrong)
                        print("  round %d %-32s NOT COUNTED: %s" % (r + 1, key, wrong),
                              flush=True)
                        continue
                    times[key][n].append(secs)
                    print("  round %d %-32s %8.3f s" % (r + 1, key, secs), flush=True)
        load1 = os.getloadavg()[0]
        med = {k: {n: statistics.median(t) for n, t in d.items() if t}
               for k, d in times.items()}

        def cell(key, n):
            if n not in times[key]:
                return ""
            t = times[key][n]
            if not t:
                return "failed"
            return "%.3f%s" % (med[key][n], "" if len(t) == rep
                               else " (%d of %d runs)" % (len(t), rep))

        cmd = "/usr/bin/python3 bench/run.py --whole%s" % (" --quick" if q else "")
        if self.args.repeat > 5 and not q:
            cmd += " --repeat %d" % self.args.repeat
        if not self.args.whole:
            cmd = "/usr/bin/python3 bench/run.py%s (full run)" % (" --quick" if q else "")
        comp = [k for k, *_ in systems if not k.startswith("zpipe")]
        lines = [WHOLE_HEADING, "",
                 "Measured %s on %s; `%s`; medians of %d alternating runs (every "
                 "system in turn, round after round), 2 workers each, every time "
                 "from starting the command to its exit (spawn to wait, as a "
                 "user's stopwatch sees it). Input: a file of the numbers 0 to N-1, "
                 "one a line; each run's output is checked (one record for each "
                 "input line, nothing else) before it counts. zpipe runs the echo "
                 "plugin (empty tasks) in executor processes, the default; "
                 "Pool.map: bench/python/pool_map.py (a function returning its "
                 "argument; /usr/bin/python3, Python %s); raw_pipeline: the libzmq "
                 "pipeline of bench/raw_pipeline.c, timed from its own process "
                 "start; xargs -P2 and GNU parallel%s start a process per line "
                 "(`echo`) and Dask%s costs about a millisecond per task, so these "
                 "run only up to %s lines. 1-minute load average %.1f at the "
                 "start, %.1f at the end."
                 % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), self.where(),
                    cmd, rep, pyver, " %s" % pver.split()[-1] if pver else "",
                    " %s (LocalCluster of 2 single-threaded processes, "
                    "bench/python/dask_map.py)" % dver if dver else "",
                    "{:,}".format(small), load0, load1), "",
                 "Seconds (medians):", "",
                 "| system | command | %s |" % " | ".join("{:,}".format(n) for n in sizes),
                 "|---|---|%s" % ("---|" * len(sizes))]
        for key, shown, *_ in systems:
            lines.append("| %s | `%s` | %s |" % (key, shown.replace("|", "\\|"),
                                                 " | ".join(cell(key, n) for n in sizes)))
        lines += ["", "Spread: the fastest and the slowest counted run, seconds.", "",
                  "| system | %s |" % " | ".join("{:,}".format(n) for n in sizes),
                  "|---|%s" % ("---|" * len(sizes))]
        for key, *_ in systems:
            lines.append("| %s | %s |" % (key, " | ".join(
                "%.3f – %.3f" % (min(times[key][n]), max(times[key][n]))
                if times[key].get(n) else "" for n in sizes)))
        lines += ["", "Ratios: zpipe's time over the other system's at the same "
                  "size (below 1: zpipe takes less time).", "",
                  "| lines | zpipe | zpipe s | %s |" % " | ".join(comp),
                  "|---|---|---|%s" % ("---|" * len(comp))]
        for n in sizes:
            for key, *_ in systems:
                if not key.startswith("zpipe") or n not in med[key]:
                    continue
                z = med[key][n]
                ratios = [ratio_str(z / med[c][n]) if n in med[c] else "" for c in comp]
                lines.append("| %s | %s | %.3f | %s |" % ("{:,}".format(n), key, z,
                                                          " | ".join(ratios)))
        notes = list(skipped)
        for key, d in bad.items():
            for n, why in d.items():
                notes.append("%s at %s lines: %d run(s) not counted: %s" % (
                    key, "{:,}".format(n), len(why), "; ".join(sorted(set(why)))[:300]))
        if notes:
            lines += [""] + ["- %s" % x for x in notes]
        self.replace_section(lines)
        for n in sizes:
            for c in ("Pool.map default", "raw_pipeline"):
                if n in med["zpipe, JSON Lines"] and n in med[c]:
                    print("  %9d lines: zpipe JSON Lines / %s %.2f" % (
                        n, c, med["zpipe, JSON Lines"][n] / med[c][n]), flush=True)

    def results_path(self):
        """bench/results.md, or --results-file (a smoke run's)."""
        return self.args.results_file or os.path.join(HERE, "results.md")

    def readme(self):
        """README.md's Speed section rebuilt from the results.md just
        written (bench/readme.py); not for a --results-file elsewhere."""
        if self.args.results_file:
            return
        try:
            import readme
            if readme.update():
                print("rewrote README.md's Speed section (bench/readme.py)")
        except Exception as exc:  # the results are written either way
            print("README.md's Speed section not rebuilt: %s" % exc)

    def replace_section(self, lines):
        """Writes (or replaces) the section headed lines[0] in
        bench/results.md, keeping the rest of the file."""
        path = self.results_path()
        text = open(path).read() if os.path.exists(path) else ""
        head = lines[0]
        start = text.find(head)
        if start >= 0:
            end = text.find("\n## ", start + len(head))
            text = text[:start] + text[end + 1 if end >= 0 else len(text):]
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
        with open(path, "w") as f:
            f.write(text)
        print("wrote the section %r of %s" % (head, path))
        self.readme()

    def run(self):
        if self.args.before:
            self.before_after()
            return
        if self.args.service:
            self.service_section()
            return
        if self.args.formats:
            self.formats_section()
            return
        if self.args.python:
            self.python_section()
            return
        if self.args.whole:
            self.whole_section()
            return
        if self.args.payloads:
            self.payloads_section()
            return
        if self.args.only and self.args.only in EXEC_WORKLOAD:
            # --only parallel (or exec): this section alone, written as its
            # own section of bench/results.md; the other sections are kept.
            self.exec_section()
            self.write_exec_section()
            return
        q = self.args.quick
        n_empty = 20000 if q else 1000000
        print("empty tasks: %d" % n_empty, flush=True)
        inp = self.write_input("empty", (str(i) for i in range(n_empty)))
        systems = [
            ("raw libzmq (ipc)", lambda: self.raw_run(inp, False)),
            ("zpipe echo ipc batched", lambda: self.zpipe_run(inp, "echo")),
            ("zpipe echo ipc in-process", lambda: self.zpipe_run(inp, "echo", isolation="none")),
            ("zpipe echo ipc batch 1", lambda: self.zpipe_run(inp, "echo", batch=1)),
            ("zpipe python ipc (func returns its argument)",
             lambda: self.zpipe_run(inp, "python", extra=py_plugin("py_echo"))),
            ("raw libzmq (tcp)", lambda: self.raw_run(inp, False, "tcp")),
            ("zpipe echo tcp batched", lambda: self.zpipe_run(inp, "echo", transport="tcp")),
            ("Pool.map chunksize 1", lambda: self.pool_run(inp, False, 1)),
            ("Pool.map default chunksize", lambda: self.pool_run(inp, False, 0)),
        ]
        self.measure("empty", n_empty, systems)
        # stdin as users give it: </dev/null against `cat FILE | zpipe run`
        # (a finished pipe once read); CPU is the whole pipeline's.
        n_pipe = 2000 if q else 10000
        for us in (0, 1000):
            n = n_pipe if us else n_pipe * 20
            inp = self.write_input("stdin%d" % us, (str(us or i) for i in range(n)))
            plugin = "spin" if us else "echo"
            self.measure("stdin, %s" % ("spin 1000 us" if us else "empty tasks"), n, [
                ("zpipe %s --input FILE </dev/null" % plugin,
                 lambda: self.zpipe_run(inp, plugin)),
                ("cat FILE | zpipe %s" % plugin,
                 lambda: self.zpipe_run(inp, plugin, cat=True)),
            ], work_s=n * us / 1e6 if us else None)
        # Oversubscribed: 32 workers on the same cores as 2, the same 1 ms
        # tasks (idle workers must sleep while their executors work).
        n_over = 1000 if q else 5000
        inp = self.write_input("over", ("1000" for _ in range(n_over)))
        self.measure("spin 1000 us, 2 vs 32 workers", n_over, [
            ("zpipe spin, 2 workers", lambda: self.zpipe_run(inp, "spin")),
            ("zpipe spin, 32 workers", lambda: self.zpipe_run(inp, "spin", workers=32)),
        ], work_s=n_over / 1000.0)
        n_dask = 2000 if q else 10000
        dinp = self.write_input("dask", (str(i) for i in range(n_dask)))
        self.measure("empty (%d for Dask)" % n_dask, n_dask, [
            ("raw libzmq (ipc)", lambda: self.raw_run(dinp, False)),
            ("zpipe echo ipc batched", lambda: self.zpipe_run(dinp, "echo")),
            ("Dask distributed", lambda: self.dask_run(dinp, False)),
        ])

        n_spin = 2000 if q else 20000
        for us in (1000, 100, 10):
            inp = self.write_input("spin%d" % us, (str(us) for _ in range(n_spin)))
            work = n_spin * us / 1e6
            print("spin %d us x %d" % (us, n_spin), flush=True)
            self.measure("spin %d us" % us, n_spin, [
                ("raw libzmq (ipc)", lambda: self.raw_run(inp, True)),
                ("zpipe spin ipc", lambda: self.zpipe_run(inp, "spin")),
                ("zpipe spin ipc in-process", lambda: self.zpipe_run(inp, "spin", isolation="none")),
                ("zpipe python spin ipc",
                 lambda: self.zpipe_run(inp, "python", extra=py_plugin("py_spin"))),
                ("Pool.map chunksize 1", lambda: self.pool_run(inp, True, 1)),
                ("Pool.map default chunksize", lambda: self.pool_run(inp, True, 0)),
            ], work_s=work)

        for size in (64, 4096, 65536, 1 << 20):
            n = max(200, min(100000 if not q else 5000, (256 << 20) // size))
            if q:
                n = min(n, 2000)
            payload = "x" * size
            inp = self.write_input("size%d" % size, (payload for _ in range(n)))
            print("payload %d B x %d" % (size, n), flush=True)
            self.measure("payload %d B" % size, n, [
                ("raw libzmq (ipc)", lambda: self.raw_run(inp, False)),
                ("plain libzmq, no user-space copy (ipc)",
                 lambda: self.plain_run(inp)),
                ("zpipe echo ipc", lambda: self.zpipe_run(inp, "echo")),
            ])

        # The cost of --metrics: the same runs with every daemon serving
        # /metrics and scraped twice a second, against metrics off.
        # Runs of a few seconds and 9 alternating repeats: on 2 cores the
        # 4 busy processes make single runs vary by 10 % or more.
        n_met = 200000 if q else 5000000
        inp = self.write_input("metrics", (str(i) for i in range(n_met)))
        print("metrics on vs off, empty tasks x %d" % n_met, flush=True)
        self.measure("metrics cost, empty tasks", n_met, [
            ("zpipe echo, metrics off", lambda: self.zpipe_run(
                inp, "echo", extra=("--log-level", "info"))),
            ("zpipe echo, metrics on + scraped", lambda: self.zpipe_metrics_run(inp, "echo")),
        ], repeat=max(9, self.args.repeat))
        n_ms = 2000 if q else 100000
        inp = self.write_input("metrics_spin", ("100" for _ in range(n_ms)))
        self.measure("metrics cost, spin 100 us", n_ms, [
            ("zpipe spin, metrics off", lambda: self.zpipe_run(
                inp, "spin", extra=("--log-level", "info"))),
            ("zpipe spin, metrics on + scraped", lambda: self.zpipe_metrics_run(inp, "spin")),
        ], repeat=max(9, self.args.repeat))

        n_lat = 1000 if q else 10000
        inp = self.write_input("lat", (str(i) for i in range(n_lat)))
        print("latency, one task at a time x %d" % n_lat, flush=True)
        self.measure("latency", n_lat, [
            ("raw libzmq (ipc)", lambda: self.raw_run(inp, False, latency=True)),
            ("zpipe echo ipc", lambda: self.zpipe_latency(inp, n_lat)),
        ])

        n_mem = 10000 if q else 100000
        for n in (n_mem, n_mem * 10):
            inp = self.write_input("mem%d" % n, (str(i) for i in range(n)))
            print("memory at %d tasks" % n, flush=True)
            self.measure("memory %d tasks" % n, n, [
                ("raw libzmq (ipc)", lambda: self.raw_run(inp, False)),
                ("zpipe echo ipc", lambda: self.zpipe_run(inp, "echo")),
            ])
        if not self.args.only:
            self.exec_section()
        for wl, ratio, cpu in self.metrics_costs():
            print("  metrics on/off, %s: throughput %.3f, CPU %.3f"
                  % (wl, ratio, cpu))
        if self.args.only:
            print("--only: a partial run; bench/results.md is left as it was")
            return
        self.report()
        self.write_exec_section()
        self.whole_section()
        self.formats_section()

    def zpipe_latency(self, inp, n):
        """One task in flight: the ventilator is fed line by line and the
        next line goes in once the previous result is on the sink's PUB."""
        import zmq
        d = tempfile.mkdtemp(dir=self.tmp)
        ep = lambda name: "ipc://%s/%s" % (d, name)
        b = os.path.join(self.build, "bin")
        procs = [subprocess.Popen([os.path.join(b, "zpipe-sink"), "--results", ep("r"),
                                   "--control", ep("c"), "--publish", ep("p"),
                                   "--output", self.path("out"), "--log-level", "error"])]
        for i in range(2):
            procs.append(subprocess.Popen([os.path.join(b, "zpipe-worker"), "--ventilator",
                                           ep("d"), "--sink", ep("r"), "--plugin", "echo",
                                           "--log-level", "error"]))
        ctx = zmq.Context.instance()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"lat")
        sub.connect(ep("p"))
        vent = subprocess.Popen([os.path.join(b, "zpipe-ventilator"), "--bind", ep("d"),
                                 "--sink", ep("c"), "--plugin", "echo", "--job", "lat",
                                 "--input", "-", "--log-level", "error"],
                                stdin=subprocess.PIPE)
        procs.append(vent)
        time.sleep(0.5)
        lat = []
        t_all = time.perf_counter()
        with open(inp) as f:
            lines = f.read().splitlines()
        for line in lines:
            t0 = time.perf_counter()
            vent.stdin.write((line + "\n").encode())
            vent.stdin.flush()
            sub.recv_multipart()
            lat.append((time.perf_counter() - t0) * 1e6)
        secs = time.perf_counter() - t_all
        vent.stdin.close()
        vent.wait(30)
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        sub.close(0)
        lat.sort()
        return secs, {}, {"p50": int(lat[len(lat) // 2]), "p99": int(lat[len(lat) * 99 // 100])}

    # ---- GNU parallel against zpipe's exec plugin (one command per task) ----

    def ensure_parallel(self):
        """GNU parallel from Debian's archive; installs it when missing."""
        def version():
            exe = shutil.which("parallel")
            if not exe:
                return None
            r = subprocess.run([exe, "--version"], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL)
            first = (r.stdout.splitlines() or [""])[0]
            return first if first.startswith("GNU parallel") else None
        v = version()
        if not v:
            sudo = [] if os.geteuid() == 0 else ["sudo"]
            print("installing Debian's parallel (apt-get install -y parallel)", flush=True)
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            subprocess.run(sudo + ["apt-get", "update", "-qq"], env=env, check=False)
            subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "parallel"],
                           env=env, check=True)
            v = version()
            if not v:
                raise RuntimeError("/usr/bin/parallel is not GNU parallel "
                                   "(moreutils' parallel?)")
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "parallel"],
                           capture_output=True, text=True)
        return v, r.stdout.strip() if r.returncode == 0 else "?"

    @staticmethod
    def exec_lines(n):
        """n distinct short lines; some carry quotes, $, \\ and * so that
        each system's quoting of the payload is checked too."""
        words = ["alpha", "it's", '"quoted"', "$HOME", "a\\b", "*", "two  spaces",
                 "omega"]
        return ["task %05d %s" % (i, words[i % len(words)]) for i in range(n)]

    def timed(self, cmd, out, stdin=None, env=None):
        with open(out, "w") as fo:
            fi = open(stdin) if stdin else subprocess.DEVNULL
            try:
                t0 = time.perf_counter()
                r = run_blocking(cmd, stdin=fi, stdout=fo, stderr=subprocess.PIPE,
                                   text=True, env=env, timeout=3600)
                secs = time.perf_counter() - t0
            finally:
                if stdin:
                    fi.close()
        if r.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (cmd[0], r.returncode,
                                                       r.stderr[-500:]))
        return secs

    def exec_section(self):
        """GNU parallel -j2 against zpipe run --plugin exec --workers 2, both
        running sha256sum once per input line with the line on stdin; every
        timed run's output is checked against hashlib before it counts."""
        q = self.args.quick
        n = 1000 if q else 5000
        n_pipe = 100 if q else 200
        n_loop = 500 if q else 1000
        pver, pdeb = self.ensure_parallel()
        print("GNU parallel vs exec: sha256sum x %d (%s, Debian %s)" % (n, pver, pdeb),
              flush=True)
        lines = self.exec_lines(n)
        inp = self.write_input("exec", lines)
        pinp = self.write_input("exec_pipe", lines[:n_pipe])
        want = ["%s  -" % hashlib.sha256(l.encode()).hexdigest() for l in lines]
        out = self.path("exec_out")
        penv = dict(os.environ, PARALLEL_SHELL="/bin/sh", PARALLEL_HOME=self.path("parallel-home"))
        os.makedirs(penv["PARALLEL_HOME"], exist_ok=True)
        # Touching the citation notice once keeps parallel from printing it.
        open(os.path.join(penv["PARALLEL_HOME"], "will-cite"), "w").close()
        zp = [self.zpipe, "run", "--plugin", "exec", "--workers", "2", "--format",
              "lines", "--no-progress", "--log-level", "error", "--output", out]
        sh_pipe = 'printf %s "$1" | sha256sum'
        # name, command shown in the table, argv builder (input, ordered), stdin?, env, tasks
        systems = [
            ("GNU parallel -j2", 'parallel -j2 "printf %s {} | sha256sum"',
             lambda i, o: ["parallel", "-j2"] + (["-k"] if o else []) +
             ["printf %s {} | sha256sum"], True, penv, n),
            ("zpipe exec, 2 workers", "zpipe run --plugin exec --config cmd=sha256sum "
             "--workers 2",
             lambda i, o: zp + ["--config", "cmd=sha256sum", "--input", i] +
             (["--ordered"] if o else []), False, None, n),
            ("zpipe exec, 2 workers, same shell pipeline as parallel",
             "zpipe run --plugin exec --config shell=1 --config stdin=none "
             "--config cmd='%s' --workers 2" % sh_pipe,
             lambda i, o: zp + ["--config", "shell=1", "--config", "stdin=none",
                                "--config", "cmd=" + sh_pipe, "--input", i] +
             (["--ordered"] if o else []), False, None, n),
            ("xargs -P2, same shell pipeline (minimal dispatcher)",
             "xargs -P2 -d '\\n' -n1 sh -c '%s' sh" % sh_pipe,
             lambda i, o: ["xargs", "-P2", "-d", "\n", "-n1", "sh", "-c", sh_pipe, "sh"],
             True, None, n),
            ("GNU parallel -j2 --pipe -N1 --rrs", "parallel -j2 --pipe -N1 --rrs sha256sum",
             lambda i, o: ["parallel", "-j2", "--pipe", "-N1", "--rrs"] +
             (["-k"] if o else []) + ["sha256sum"], True, penv, n_pipe),
        ]
        # Before any timing: the first lines, in input order where the system
        # can keep it (parallel -k, zpipe --ordered), digest for digest.
        n_check = min(300, n)
        cinp = self.write_input("exec_check", lines[:n_check])
        ok = {}
        for name, _, argv, use_stdin, env, _ in systems:
            ordered = not name.startswith("xargs")
            try:
                self.timed(argv(cinp, ordered), out, cinp if use_stdin else None, env)
                got = open(out).read().splitlines()
                if not ordered:
                    got.sort()
                exp = want[:n_check] if ordered else sorted(want[:n_check])
                ok[name] = got == exp
            except Exception as exc:
                print("  check %s: FAILED: %s" % (name, exc), flush=True)
                ok[name] = False
            print("  check %-55s %s" % (name, "equal digests per line" if ok[name]
                                         else "MISMATCH: not timed"), flush=True)
        loop = ('i=0; while [ $i -lt %d ]; do printf %%s x | sha256sum >/dev/null; '
                'i=$((i+1)); done' % n_loop)
        times = {name: [] for name, *_ in systems}
        one, two = [], []
        load0 = os.getloadavg()[0]
        for rep in range(self.args.repeat):
            t0 = time.perf_counter()
            subprocess.run(["sh", "-c", loop], check=True)
            one.append(time.perf_counter() - t0)
            for name, _, argv, use_stdin, env, tasks in systems:
                if not ok[name]:
                    continue
                src = inp if tasks == n else pinp
                try:
                    secs = self.timed(argv(src, False), out, src if use_stdin else None, env)
                except Exception as exc:
                    print("  %s: FAILED: %s" % (name, exc), flush=True)
                    ok[name] = False
                    continue
                # Distinct inputs have distinct digests, so an equal sorted
                # list means every line got its own digest exactly once.
                got = sorted(open(out).read().splitlines())
                if got != sorted(want[:tasks]):
                    print("  %s: output differs: run not counted" % name, flush=True)
                    continue
                times[name].append(secs)
                print("  rep %d %-55s %7.2f s %7.0f tasks/s" % (rep + 1, name, secs,
                                                              tasks / secs), flush=True)
            t0 = time.perf_counter()
            subprocess.run(["sh", "-c", "(%s) & (%s) & wait" % (loop, loop)], check=True)
            two.append(time.perf_counter() - t0)
        rows = []
        for name, shown, _, _, _, tasks in systems:
            if not times[name]:
                rows.append({"system": name, "cmd": shown, "failed": True})
                continue
            med = statistics.median(times[name])
            rows.append({"system": name, "cmd": shown, "n": tasks, "seconds": med,
                         "rate": tasks / med, "runs": len(times[name])})
        base = rows[0].get("rate")
        for r in rows:
            r["ratio"] = r["rate"] / base if base and "rate" in r else None
        self.exec_result = {
            "rows": rows, "n": n, "parallel": pver, "parallel_deb": pdeb,
            "loop_n": n_loop, "one": statistics.median(one),
            "two": statistics.median(two),
            "load": (load0, os.getloadavg()[0]),
            # zpipe / parallel within each repetition (both runs counted)
            "rep_ratios": [p / z for p, z in zip(times["GNU parallel -j2"],
                                                 times["zpipe exec, 2 workers"])]
            if len(times["GNU parallel -j2"]) == len(times["zpipe exec, 2 workers"])
            == self.args.repeat else [],
            "when": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        }
        for r in rows:
            print("  %-55s %s" % (r["system"], "failed" if r.get("failed") else
                                  "%7.0f tasks/s  ratio to parallel %.2f" % (r["rate"], r["ratio"])),
                  flush=True)
        print("  fork/exec: 1 loop of %d (printf | sha256sum) %.2f s, 2 concurrent loops %.2f s"
              % (n_loop, self.exec_result["one"], self.exec_result["two"]), flush=True)

    def where(self):
        """HOST; commit C (state): the machine and source in a header."""
        return "%s; %s" % (self.host(), self.source)

    def host(self):
        host = "%s, %d CPUs, %s" % (platform.node(), self.ncpu, platform.platform())
        try:
            model = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                     if l.startswith("model name")][0]
            host += ", " + model
        except (OSError, IndexError):
            pass
        return host + "; zpipe built %s" % build_flags(self.build)

    def write_exec_section(self):
        """Writes (or replaces) the section in bench/results.md, keeping the
        rest of the file as it is."""
        res = getattr(self, "exec_result", None)
        if not res:
            return
        cmd = "/usr/bin/python3 bench/run.py --only parallel"
        if self.args.quick:
            cmd += " --quick"
        if self.args.repeat != 3:
            cmd += " --repeat %d" % self.args.repeat
        if not self.args.only:
            cmd = "/usr/bin/python3 bench/run.py%s (full run)" % (
                " --quick" if self.args.quick else "")
        z = [r for r in res["rows"] if r["system"] == "zpipe exec, 2 workers"]
        lines = [EXEC_HEADING, "",
                 "Measured %s on %s; `%s`; %s (Debian package %s); medians of %d "
                 "alternating runs. Every system runs `sha256sum` once per input "
                 "line with the line on stdin (%d distinct short lines, some with "
                 "quotes, `$`, `\\` and `*`); each timed run's output is checked "
                 "against Python's hashlib (one digest per line) before it counts, "
                 "and 300 lines were first checked in input order (`parallel -k`, "
                 "`zpipe --ordered`). Ratio = tasks/s / GNU parallel's. GNU parallel "
                 "and the shell pipelines run under /bin/sh (dash, `PARALLEL_SHELL`). "
                 "1-minute load average %.1f at the start, %.1f at the end."
                 % (res["when"], self.where(), cmd, res["parallel"], res["parallel_deb"],
                    self.args.repeat, res["n"], res["load"][0], res["load"][1]), "",
                 "| system | command | tasks | seconds | tasks/s | ratio to GNU parallel |",
                 "|---|---|---|---|---|---|"]
        for r in res["rows"]:
            if r.get("failed"):
                lines.append("| %s | `%s` | | failed | | |" % (r["system"], r["cmd"]))
                continue
            lines.append("| %s | `%s` | %d | %.2f | %.0f | %.2f |" % (
                r["system"], r["cmd"].replace("|", "\\|"), r["n"], r["seconds"],
                r["rate"], r["ratio"]))
        lines += ["",
                  "Fork/exec on this machine: one shell loop of %d `printf %%s x | "
                  "sha256sum` took %.2f s, two such loops at once %.2f s (x%.2f; "
                  "1.00 would be perfect scaling over 2 CPUs, 2.00 none)%s"
                  % (res["loop_n"], res["one"], res["two"], res["two"] / res["one"],
                     ": process creation does not scale here, so the absolute figures "
                     "are bound by it more than by the dispatchers."
                     if res["two"] / res["one"] >= 1.5 else
                     "; medians of loops alternated with the runs above.")]
        if z and not z[0].get("failed") and res["rows"][0].get("rate"):
            lines.append("")
            rr = res.get("rep_ratios") or []
            lines.append("zpipe / GNU parallel: **%.2f**%s." % (
                z[0]["ratio"], " (per repetition: %s)" % ", ".join("%.1f" % x for x in rr)
                if rr else ""))
        section = "\n".join(lines) + "\n"
        out = self.results_path()
        text = open(out).read() if os.path.exists(out) else "# zpipe benchmark results\n"
        i = text.find(EXEC_HEADING)
        if i >= 0:
            j = text.find("\n## ", i + len(EXEC_HEADING))
            text = text[:i] + section + (text[j + 1:] if j >= 0 else "")
        else:
            text = text.rstrip("\n") + "\n\n" + section
        with open(out, "w") as f:
            f.write(text)
        print("wrote the '%s' section of %s" % (EXEC_HEADING[3:], out))
        self.readme()

    def report(self):
        """Writes the main table as the top of bench/results.md (everything
        before its first "## " section), keeping the other sections."""
        out = self.results_path()
        f = io.StringIO()
        f.write("# zpipe benchmark results\n\n")
        f.write("Measured %s on %s; `/usr/bin/python3 bench/run.py%s`%s; medians "
                "of %d alternating runs, 2 workers everywhere, zpipe with `--format "
                "lines` unless said. Ratio = throughput / the raw libzmq "
                "pipeline's in the same workload; efficiency = (CPU work / 2 "
                "cores) / wall time. zpipe, Pool.map and Dask are timed as whole "
                "commands (start to exit); raw libzmq from its spawn of its "
                "processes to its sink's exit (its own figure).\n\n"
                % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), self.where(),
                   " --quick" if self.args.quick else "",
                   " (quick mode: small inputs)" if self.args.quick else "",
                   self.args.repeat))
        f.write("| workload | system | tasks | tasks/s | ratio to raw | efficiency "
                "| p50 / p99 µs | peak RSS KiB |\n|---|---|---|---|---|---|---|---|\n")
        for r in self.rows:
            # A system named for a shell pipeline ("cat FILE | zpipe echo")
            # keeps its | escaped, in one cell.
            system = r["system"].replace("|", "\\|")
            if r.get("failed"):
                f.write("| %s | %s | | failed | | | | |\n" % (r["workload"], system))
                continue
            rss = ", ".join("%s %d" % kv for kv in sorted(r["rss"].items()))
            f.write("| %s | %s | %d | %.0f | %s | %s | %s | %s |\n" % (
                r["workload"], system, r["n"], r["rate"],
                "%.2f" % r["ratio"] if r["ratio"] else "",
                "%.0f %%" % (100 * r["efficiency"]) if r["efficiency"] else "",
                "%d / %d" % (r["p50"], r["p99"]) if "p50" in r else "", rss))
        costs = self.metrics_costs()
        if costs:
            f.write("\nMetrics cost (every daemon serving /metrics, "
                    "scraped every 0.5 s, over metrics off; medians of "
                    "alternating runs; target: throughput >= 0.97): %s.\n"
                    % "; ".join("%s: throughput %.3f, CPU %.3f" % c
                                for c in costs))
        text = open(out).read() if os.path.exists(out) else ""
        rest = text.find("\n## ")
        text = f.getvalue() + ("\n" + text[rest + 1:] if rest >= 0 else "")
        with open(out, "w") as fo:
            fo.write(text)
        with open(os.path.join(self.tmp, "rows.json"), "w") as f:
            json.dump(self.rows, f)
        print("wrote %s" % out)
        self.chart()
        self.readme()

    def metrics_costs(self):
        """[(workload, on/off throughput, on/off CPU seconds)] of the
        metrics workloads (medians)."""
        out = []
        for wl in sorted({r["workload"] for r in self.rows
                          if r["workload"].startswith("metrics cost")}):
            rows = [r for r in self.rows if r["workload"] == wl
                    and not r.get("failed")]
            off = [r for r in rows if "metrics off" in r["system"]]
            on = [r for r in rows if "metrics on" in r["system"]]
            if off and on:
                out.append((wl[len("metrics cost, "):],
                            on[0]["rate"] / off[0]["rate"],
                            on[0].get("cpu", 0) / off[0]["cpu"]
                            if off[0].get("cpu") else float("nan")))
        return out

    def chart(self):
        gp = shutil.which("gnuplot")
        if not gp:
            print("gnuplot not installed: no chart (apt-get install gnuplot-nox)")
            return
        systems = ["raw libzmq (ipc)", "zpipe spin ipc", "zpipe spin ipc in-process",
                   "Pool.map chunksize 1", "Pool.map default chunksize"]
        dat = os.path.join(self.tmp, "spin.dat")
        with open(dat, "w") as f:
            for us in (1000, 100, 10):
                vals = []
                for s in systems:
                    r = [x for x in self.rows if x["workload"] == "spin %d us" % us
                         and x["system"] == s and not x.get("failed")]
                    vals.append("%.1f" % (100 * r[0]["efficiency"]) if r else "0")
                f.write("\"%d us\" %s\n" % (us, " ".join(vals)))
        png = os.path.join(HERE, "results.png")
        plots = ", ".join("'%s' using %d:xtic(1) title '%s'" % (dat, i + 2, s)
                          for i, s in enumerate(systems))
        # Throughput by task size: empty tasks and payloads, raw vs zpipe.
        tdat = os.path.join(self.tmp, "size.dat")
        tsys = [("raw libzmq (ipc)", "raw libzmq (ipc)"),
                ("zpipe echo ipc", "zpipe echo ipc batched")]
        with open(tdat, "w") as f:
            for label, wl in (("empty", "empty"), ("64 B", "payload 64 B"),
                              ("4 KiB", "payload 4096 B"),
                              ("64 KiB", "payload 65536 B"),
                              ("1 MiB", "payload 1048576 B")):
                vals = []
                for a, b in tsys:
                    r = [x for x in self.rows if x["workload"] == wl
                         and x["system"] in (a, b) and not x.get("failed")]
                    vals.append("%.0f" % r[0]["rate"] if r else "1")
                f.write("\"%s\" %s\n" % (label, " ".join(vals)))
        tplots = ", ".join("'%s' using %d:xtic(1) title '%s'" % (tdat, i + 2, a)
                           for i, (a, _) in enumerate(tsys))
        script = ("set terminal png size 900,900; set output '%s';"
                  "set multiplot layout 2,1;"
                  "set style data histograms; set style fill solid 0.8;"
                  "set title 'Parallel efficiency by task CPU time (2 workers, 2 cores)';"
                  "set ylabel 'efficiency %%'; set yrange [0:130]; set key top right;"
                  "plot %s;"
                  "set title 'Throughput by payload size (tasks/s, log scale)';"
                  "set ylabel 'tasks/s'; set logscale y; set yrange [100:*];"
                  "plot %s; unset multiplot" % (png, plots, tplots))
        subprocess.run([gp, "-e", script], check=False)
        print("wrote %s" % png)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small inputs (a smoke run)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", help="run only workloads whose name contains this; "
                    "--only parallel runs the GNU parallel vs exec section alone "
                    "and writes just its section of bench/results.md")
    ap.add_argument("--before", metavar="DIR",
                    help="compare zpipe from the build DIR (before a change) with "
                    "--build's (after), alternating; writes only that section")
    ap.add_argument("--service", action="store_true",
                    help="the service path with the ventilator's journal on and "
                    "off, and submit + wait + results against zpipe run, "
                    "alternating; writes only those sections")
    ap.add_argument("--formats", action="store_true",
                    help="JSON Lines against --format lines (whole zpipe run, "
                    "with the sink's CPU), alternating; writes only that section")
    ap.add_argument("--python", action="store_true",
                    help="zpipe.Pool against multiprocessing.Pool and the python "
                    "plugin against Pool.map(chunksize=1), alternating whole-script "
                    "runs; writes only that section")
    ap.add_argument("--whole", action="store_true",
                    help="whole commands timed from start to exit (zpipe run, "
                    "a Pool.map script, raw_pipeline, xargs, GNU parallel, Dask) "
                    "at 1 to 1,000,000 lines, alternating; writes only that "
                    "section (a full run writes it too)")
    ap.add_argument("--payloads", action="store_true",
                    help="64 KiB and 1 MiB payloads through raw_pipeline, "
                    "plain_pipeline and zpipe run, alternating; writes only "
                    "that section")
    ap.add_argument("--results-file", metavar="FILE",
                    help="write the sections to FILE instead of bench/results.md "
                    "and leave README.md alone (tests/integration/test_bench_smoke)")
    ap.add_argument("--before-label", help="what --before is (e.g. a commit)")
    ap.add_argument("--after-label", help="what --build is (e.g. a commit)")
    args = ap.parse_args()
    b = Bench(args)
    try:
        b.run()
    finally:
        shutil.rmtree(b.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
