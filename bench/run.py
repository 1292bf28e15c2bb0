"""zpipe benchmark: every system side by side, in one invocation, on the same
machine and inputs, alternating runs, reporting medians and ratios.

    /usr/bin/python3 bench/run.py [--quick] [--build DIR] [--repeat N]

Writes bench/results.md (and bench/results.png when gnuplot is installed).
Absolute times on a shared machine drift; the ratios, measured in the same
run with systems alternating, are what to read. See bench/README.md.
"""
import argparse
import datetime
import json
import multiprocessing
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


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

    def path(self, name):
        return os.path.join(self.tmp, name)

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
               "--output", self.path("out"), "--transport", transport]
        if spin:
            cmd.append("--spin")
        if latency:
            cmd.append("--latency")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
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

    def zpipe_run(self, inp, plugin, batch=1024, transport="ipc", isolation="process"):
        cmd = [self.zpipe, "run", "--plugin", plugin, "--workers", "2",
               "--input", inp, "--output", self.path("out"), "--format", "lines",
               "--batch", str(batch), "--isolation", isolation,
               "--transport", transport, "--no-progress"]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        secs = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError("zpipe run failed: %s" % r.stderr[-800:])
        rss = {}
        m = re.search(r"peak RSS KiB: sink (\d+), ventilator (\d+), workers (\d+)",
                      r.stderr)
        if m:
            rss = {"sink": int(m.group(1)), "ventilator": int(m.group(2)),
                   "worker": int(m.group(3))}
        return secs, rss, {}

    def python_run(self, call, what):
        """Times run.CALL in a fresh interpreter, as a user would run it."""
        code = "import sys; sys.path.insert(0, %r); import run; print(run.%s)" % (HERE, call)
        t0 = time.perf_counter()
        r = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True,
                           text=True, timeout=3600)
        secs = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError("%s failed: %s" % (what, r.stderr[-500:]))
        return secs, {}, {}

    def pool_run(self, inp, spin, chunksize):
        return self.python_run("run_pool(%r, %r, 2, %r, %r)"
                               % (inp, self.path("out"), chunksize, spin), "Pool.map")

    def dask_run(self, inp, spin):
        return self.python_run("run_dask(%r, %r, 2, %r)"
                               % (inp, self.path("out"), spin), "Dask")

    def measure(self, workload, n, systems, work_s=None):
        """Runs every system repeat times, alternating; records medians."""
        if self.args.only and self.args.only not in workload:
            return
        results = {name: [] for name, _ in systems}
        rss = {name: {} for name, _ in systems}
        extra = {name: {} for name, _ in systems}
        for rep in range(self.args.repeat):
            for name, fn in systems:
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
            self.rows.append(row)
            print("  %-28s %-34s %10.0f tasks/s  %s" % (
                workload, name, row["rate"],
                "ratio %.2f" % row["ratio"] if row["ratio"] else ""), flush=True)

    def run(self):
        q = self.args.quick
        n_empty = 20000 if q else 1000000
        print("empty tasks: %d" % n_empty, flush=True)
        inp = self.write_input("empty", (str(i) for i in range(n_empty)))
        systems = [
            ("raw libzmq (ipc)", lambda: self.raw_run(inp, False)),
            ("zpipe echo ipc batched", lambda: self.zpipe_run(inp, "echo")),
            ("zpipe echo ipc in-process", lambda: self.zpipe_run(inp, "echo", isolation="none")),
            ("zpipe echo ipc batch 1", lambda: self.zpipe_run(inp, "echo", batch=1)),
            ("raw libzmq (tcp)", lambda: self.raw_run(inp, False, "tcp")),
            ("zpipe echo tcp batched", lambda: self.zpipe_run(inp, "echo", transport="tcp")),
            ("Pool.map chunksize 1", lambda: self.pool_run(inp, False, 1)),
            ("Pool.map default chunksize", lambda: self.pool_run(inp, False, 0)),
        ]
        self.measure("empty", n_empty, systems)
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
                ("zpipe echo ipc", lambda: self.zpipe_run(inp, "echo")),
            ])

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
        if self.args.only:
            print("--only: a partial run; bench/results.md is left as it was")
            return
        self.report()

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

    def report(self):
        out = os.path.join(HERE, "results.md")
        host = "%s, %d CPUs, %s" % (platform.node(), self.ncpu, platform.platform())
        try:
            model = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                     if l.startswith("model name")][0]
            host += ", " + model
        except (OSError, IndexError):
            pass
        with open(out, "w") as f:
            f.write("# zpipe benchmark results\n\n")
            f.write("Measured %s on %s%s; medians of %d alternating runs. "
                    "Ratio = throughput / the raw libzmq pipeline's in the same "
                    "workload; efficiency = (CPU work / 2 cores) / wall time.\n\n"
                    % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), host,
                       " (quick mode: small inputs)" if self.args.quick else "",
                       self.args.repeat))
            f.write("| workload | system | tasks | tasks/s | ratio to raw | efficiency "
                    "| p50 / p99 µs | peak RSS KiB |\n|---|---|---|---|---|---|---|---|\n")
            for r in self.rows:
                if r.get("failed"):
                    f.write("| %s | %s | | failed | | | | |\n" % (r["workload"], r["system"]))
                    continue
                rss = ", ".join("%s %d" % kv for kv in sorted(r["rss"].items()))
                f.write("| %s | %s | %d | %.0f | %s | %s | %s | %s |\n" % (
                    r["workload"], r["system"], r["n"], r["rate"],
                    "%.2f" % r["ratio"] if r["ratio"] else "",
                    "%.0f %%" % (100 * r["efficiency"]) if r["efficiency"] else "",
                    "%d / %d" % (r["p50"], r["p99"]) if "p50" in r else "", rss))
        with open(os.path.join(self.tmp, "rows.json"), "w") as f:
            json.dump(self.rows, f)
        print("wrote %s" % out)
        self.chart()

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
    ap.add_argument("--only", help="run only workloads whose name contains this")
    args = ap.parse_args()
    b = Bench(args)
    try:
        b.run()
    finally:
        shutil.rmtree(b.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
