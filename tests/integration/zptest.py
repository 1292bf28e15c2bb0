"""Helpers for zpipe integration tests: start the real binaries as
processes on ipc:// endpoints in a private directory, with timeouts, and
always clean them up. Stdlib only, so every test runs under /usr/bin/python3
with nothing else installed; tests that speak ZeroMQ import zmq themselves.
"""
import atexit
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("ZPIPE_BUILD_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")
BIN = os.environ.get("ZPIPE_BIN_DIR") or os.path.join(BUILD, "bin")
FIXTURES = os.environ.get("ZP_FIXTURE_DIR") or os.path.join(BUILD, "tests", "fixtures")
SOURCE = os.environ.get("ZPIPE_SOURCE_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..")

_procs = []
_dirs = []
_clusters = []


def binary(name):
    return os.path.join(BIN, name)


_ports_given = set()


def free_ports(n=1):
    """N distinct free loopback tcp ports, never handed out before in this
    process. They come from below the kernel's ephemeral range, so neither
    another pick nor an outgoing connection's local port can take one
    between this call and the daemon's bind (asking the kernel for port 0
    twice can return the same port: CI once started two daemons on one)."""
    lo, hi = 20000, 32000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            first = int(f.read().split()[0])
        if first > 1024 + 2000:
            lo, hi = max(1025, first - 12000), first
    except (OSError, ValueError, IndexError):
        pass
    held, out = [], []
    try:
        while len(out) < n:
            port = random.randrange(lo, hi)
            if port in _ports_given:
                continue
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            held.append(s)
            out.append(port)
            _ports_given.add(port)
    finally:
        for s in held:
            s.close()
    return out


def free_port():
    return free_ports(1)[0]


def tmpdir():
    d = tempfile.mkdtemp(prefix="zpipe-test-")
    _dirs.append(d)
    return d


class StandInIntake:
    """A ventilator's intake played by a test, in a thread: a ROUTER bound
    at self.endpoint. Each message goes to answer(message), which returns
    the Message to send back, or None to send nothing (a lost message).
    Subclasses set their own state before calling __init__ (the thread
    starts here)."""

    def __init__(self):
        import threading
        import zmq
        self.endpoint = "ipc://%s/intake" % tmpdir()
        self.stop = False
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.bind(self.endpoint)
        self.thread = threading.Thread(target=self._serve)
        self.thread.start()

    def _serve(self):
        import zpipe_pb2 as pb
        while not self.stop:
            if not self.sock.poll(100):
                continue
            rid, frame = self.sock.recv_multipart()
            r = self.answer(pb.Message.FromString(frame))
            if r is not None:
                self.sock.send_multipart([rid, r.SerializeToString()])

    def close(self):
        self.stop = True
        self.thread.join(10)
        self.sock.close(linger=0)
        self.ctx.term()


def start(args, env=None, stdin=None, stdout=None, stderr=None):
    """Start a process; it is killed at exit if still running."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.Popen(args, env=full_env, stdin=stdin, stdout=stdout,
                         stderr=stderr)
    _procs.append(p)
    return p


def stop(p, timeout=5.0):
    """SIGTERM, then SIGKILL after timeout. Returns the exit code."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


@atexit.register
def _cleanup():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    for d in _dirs:
        if os.environ.get("ZPIPE_KEEP"):
            sys.stderr.write("kept %s\n" % d)
        else:
            shutil.rmtree(d, ignore_errors=True)


def run(args, timeout=120, **kw):
    """Run to completion with a timeout; a stall fails the test fast."""
    return subprocess.run(args, timeout=timeout, **kw)


def read_jsonl(path):
    with open(path, "rb") as f:
        return [json.loads(line) for line in f if line.strip()]


def run_plugin(plugin, lines, config=(), args=(), timeout=300, d=None):
    """zpipe run of plugin on lines (bytes, one task each) with --config
    settings; returns (CompletedProcess, {task id: record})."""
    d = d or tmpdir()
    inp = os.path.join(d, "in.txt")
    with open(inp, "wb") as f:
        f.write(b"".join(l + b"\n" for l in lines))
    out = os.path.join(d, "out.jsonl")
    cmd = [binary("zpipe"), "run", "--plugin", plugin, "--input", inp,
           "--output", out, "--no-progress"]
    for c in config:
        cmd += ["--config", c]
    r = run(cmd + list(args), capture_output=True, timeout=timeout)
    recs = {rec["task"]: rec for rec in read_jsonl(out)} if os.path.exists(out) else {}
    return r, recs


class Cluster:
    """A sink and ventilator-side endpoints in one private directory;
    workers and the ventilator are started by the test."""

    def __init__(self, output_name="out.jsonl", sink_args=()):
        """output_name None: no --output (a sink with --spool then writes
        each record once, to its spool)."""
        self.dir = tmpdir()
        self.dispatch = "ipc://%s/dispatch" % self.dir
        self.results = "ipc://%s/results" % self.dir
        self.control = "ipc://%s/control" % self.dir
        self.publish = "ipc://%s/publish" % self.dir
        self.output = os.path.join(self.dir, output_name) if output_name else None
        self.logs = []
        _clusters.append(self)
        self.sink = start([binary("zpipe-sink"), "--results", self.results,
                           "--control", self.control, "--publish", self.publish]
                          + (["--output", self.output] if self.output else [])
                          + list(sink_args), stderr=self._log("sink"))

    def _log(self, name):
        path = os.path.join(self.dir, name + ".log")
        self.logs.append(path)
        return open(path, "wb")

    def worker(self, plugins=("echo",), args=(), env=None, name=None):
        cmd = [binary("zpipe-worker"), "--ventilator", self.dispatch,
               "--sink", self.results]
        for p in plugins:
            cmd += ["--plugin", p]
        if name:
            cmd += ["--id", name]
        return start(cmd + list(args), env=env,
                     stderr=self._log("worker-%s" % (name or len(self.logs))))

    def ventilator(self, plugin, input_path, args=()):
        cmd = [binary("zpipe-ventilator"), "--bind", self.dispatch, "--sink",
               self.control, "--plugin", plugin, "--input", input_path]
        return start(cmd + list(args), stderr=self._log("ventilator"))

    def dump_logs(self):
        dump_logs(self.logs)


def journal_records(path):
    """The records of the sink's journal at path, in order, from its whole
    lines (a torn last line left out): (line start, job, task, ok, offset)
    each. Reads R lines (one record) and version 4's M lines (a job's
    records, the first as an R line has it, each after it
    <task delta>:<offset delta>[f]). [] when there is no journal yet."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    res, pos = [], 0
    for line in data.split(b"\n")[:-1]:
        f = line.split(b" ")
        if f[0] in (b"R", b"M") and len(f) >= 6:
            job, task, ok, off = f[1].decode(), int(f[2]), f[3] == b"ok", int(f[4])
            res.append((pos, job, task, ok, off))
            if f[0] == b"M":
                for item in f[5:-1]:  # the last field is the checksum
                    failed = item.endswith(b"f")
                    dt, do = item.rstrip(b"f").split(b":")
                    task += int(dt)
                    off += int(do)
                    res.append((pos, job, task, not failed, off))
        pos += len(line) + 1
    return res


def dump_logs(paths):
    """The tail of each log on stderr, for a failed test."""
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()[-4000:]
            sys.stderr.write("---- %s\n%s\n" % (path, data.decode(errors="replace")))
        except OSError:
            pass


def check(cond, message):
    if not cond:
        raise AssertionError(message)


SANITIZED = os.environ.get("ZPIPE_SANITIZE") == "1"


class Skip(Exception):
    """A test that cannot run in this build says so; it is never counted
    as passed."""


def main(tests):
    """Run test functions in order; print the closing line ctest shows."""
    failed = skipped = 0
    for t in tests:
        t0 = time.monotonic()
        try:
            t()
            print("ok   %s (%.2f s)" % (t.__name__, time.monotonic() - t0), flush=True)
        except Skip as e:
            skipped += 1
            print("SKIP %s: NOT RUN: %s" % (t.__name__, e), flush=True)
        except Exception as e:  # report and go on to the next test
            failed += 1
            print("FAIL %s: %r" % (t.__name__, e), flush=True)
            for c in _clusters:
                c.dump_logs()
        del _clusters[:]
    print("%d passed, %d failed%s" % (len(tests) - failed - skipped, failed,
                                      ", %d skipped" % skipped if skipped else ""))
    sys.exit(1 if failed else 0)


def service_cluster(plugins, workers=2, vent_args=()):
    """A cluster as a service: a sink with a spool, a ventilator taking
    jobs on an ipc intake (with vent_args), and workers loading plugins.
    Returns (cluster, intake endpoint, spool directory)."""
    spool = tmpdir()
    c = Cluster(sink_args=("--spool", spool))
    intake = "ipc://%s/intake" % c.dir
    start([binary("zpipe-ventilator"), "--intake", intake, "--bind",
           c.dispatch, "--sink", c.control] + list(vent_args),
          stderr=c._log("ventilator"))
    for _ in range(workers):
        c.worker(list(plugins))
    return c, intake, spool
