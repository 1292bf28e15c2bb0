"""A private local zpipe cluster for one Python process (zpipe.Pool), as
`zpipe run` starts one: a sink, a ventilator taking jobs on an ipc://
intake, and N workers with the python plugin, all on ipc:// endpoints in a
private temporary directory.

Every child gets --parent-pid, so it exits when the caller is gone (also
when the caller is SIGKILLed), and the daemons run in one process group
of their own, so stop() ends them with one killpg; their executors (each
in a group of its own) follow their worker through --parent-pid. No
durability is needed: stop() does not wait for a clean exit. The private
directory is named for the caller's pid: one left by a caller that was
SIGKILLed is removed by the next LocalCluster.
"""
import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
import weakref

_HERE = os.path.dirname(os.path.abspath(__file__))


def find_bin_dir():
    """Where zpipe-sink, -ventilator and -worker are: $ZPIPE_BIN_DIR, the
    build tree's bin (beside build/python), the install prefix's bin, or
    the PATH."""
    env = os.environ.get("ZPIPE_BIN_DIR")
    cands = [env] if env else []
    up = os.path.dirname(os.path.dirname(_HERE))  # build/ or lib/python3.x
    cands += [os.path.join(up, "bin"),
              os.path.join(os.path.dirname(os.path.dirname(up)), "bin")]
    cands += os.environ.get("PATH", "").split(os.pathsep)
    for d in cands:
        if d and os.access(os.path.join(d, "zpipe-worker"), os.X_OK):
            return d
    raise FileNotFoundError("zpipe binaries not found (set ZPIPE_BIN_DIR or "
                            "put zpipe-worker on the PATH)")


def _child_env():
    """The caller's environment without the daemons' ZPIPE_* variables
    (a ZPIPE_SINK or ZPIPE_CURVE_SECRET meant for a client would change
    how the private daemons bind); the plugin path stays."""
    keep = ("ZPIPE_PLUGIN_PATH", "ZPIPE_SANITIZE")
    return {k: v for k, v in os.environ.items()
            if not k.startswith("ZPIPE_") or k in keep}


_live = weakref.WeakSet()


def _sweep():
    """Removes the private directories of callers that died without
    stop() (SIGKILL): zpipe-pool-PID-* of ours whose PID is gone."""
    tmp = tempfile.gettempdir()
    try:
        names = os.listdir(tmp)
    except OSError:
        return
    for name in names:
        parts = name.split("-")
        if len(parts) < 4 or parts[:2] != ["zpipe", "pool"] or \
                not parts[2].isdigit():
            continue
        path = os.path.join(tmp, name)
        try:
            if os.stat(path).st_uid != os.getuid():
                continue
            os.kill(int(parts[2]), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


@atexit.register
def _stop_all():
    for c in list(_live):
        c.stop()


class LocalCluster:
    """Starts the cluster at once (without waiting for it: clients connect
    and ZeroMQ delivers once the daemons have bound). intake and sink are
    the endpoints for a Client."""

    def __init__(self, workers, window=2, plugin_config=None, log_level=os.environ.get("ZPIPE_POOL_LOG_LEVEL", "warn"),
                 bin_dir=None):
        self.bin_dir = bin_dir or find_bin_dir()
        _sweep()
        self.dir = tempfile.mkdtemp(prefix="zpipe-pool-%d-" % os.getpid())
        d = self.dir
        self.intake = "ipc://%s/intake" % d
        self.sink = "ipc://%s/control" % d
        dispatch, results = "ipc://%s/dispatch" % d, "ipc://%s/results" % d
        common = ["--parent-pid", str(os.getpid()), "--log-level", log_level]
        b = lambda name: os.path.join(self.bin_dir, name)  # noqa: E731
        sink = [b("zpipe-sink"), "--results", results, "--control", self.sink,
                "--publish", "none", "--output", "/dev/null",
                "--spool", os.path.join(d, "spool"),
                "--journal", os.path.join(d, "sink.journal"),
                "--journal-sync", "no"] + common
        vent = [b("zpipe-ventilator"), "--bind", dispatch, "--sink", self.sink,
                "--intake", self.intake, "--no-worker-timeout-ms", "0"] + common
        worker = [b("zpipe-worker"), "--ventilator", dispatch, "--sink",
                  results, "--plugin", "python", "--window", str(window)]
        for k, v in (plugin_config or {}).items():
            worker += ["--plugin-config", "python.%s=%s" % (k, v)]
        worker += common
        self.procs = []
        self.pgid = None
        os.mkdir(os.path.join(d, "spool"))
        self._log = open(os.path.join(d, "daemons.log"), "ab")
        env = _child_env()
        try:
            for argv in [sink, vent] + [worker] * workers:
                self._spawn(argv, env)
        except BaseException:
            self.stop()
            raise
        _live.add(self)

    def _spawn(self, argv, env):
        # The first child leads a new process group; the others join it.
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                             stdout=self._log, stderr=self._log, env=env,
                             process_group=0 if self.pgid is None
                             else self.pgid, close_fds=True)
        if self.pgid is None:
            self.pgid = p.pid
        self.procs.append(p)

    def pids(self):
        return [p.pid for p in self.procs]

    def dead(self):
        """A description of the first daemon that has exited, or None."""
        for p in self.procs:
            if p.poll() is not None:
                return "%s exited %s" % (os.path.basename(p.args[0]),
                                         p.returncode)
        return None

    def log_tail(self, n=2000):
        try:
            with open(os.path.join(self.dir, "daemons.log"), "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        """Kills every process of the cluster (and their executors) and
        removes the directory. Safe to call twice."""
        if self.pgid is not None:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.pgid = None
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs = []
        if self._log:
            self._log.close()
            self._log = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        _live.discard(self)

    def wait_bound(self, timeout=5.0):
        """Waits (1 ms steps) until the intake's socket file exists."""
        path = self.intake[len("ipc://"):]
        end = time.monotonic() + timeout
        while not os.path.exists(path) and time.monotonic() < end:
            time.sleep(0.001)
