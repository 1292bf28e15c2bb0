"""A private local zpipe cluster for one Python process (zpipe.Pool), as
`zpipe run` starts one: a sink, a ventilator and N workers with the python
plugin, on ipc:// endpoints in a private temporary directory. The Pool's
job is the ventilator's input: task frames written to its stdin
(`--input-format frames`), and the records are read from the sink's
stdout (`--format frames`); closing the ventilator's stdin ends the job.

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
import time

# No subprocess, tempfile, shutil or signal here, nor the engine (pickle,
# threading): they cost a Pool() 15 ms of imports before its first spawn;
# os.posix_spawn and os.mkdir do what is needed.
_SIGKILL = 9


def close_fds(*fds):
    """Closes each descriptor that is not None, ignoring errors."""
    for fd in fds:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

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


_live = set()  # stop() takes each out; atexit stops the rest


def _inheritable():
    """The caller's descriptors above 2 that a child would inherit."""
    out = []
    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        return out
    for fd in fds:
        try:
            if fd > 2 and os.get_inheritable(fd):
                out.append(fd)
        except OSError:
            pass  # the listing's own descriptor, closed by now
    return out


def _pipe():
    """A pipe with room for a whole batch (1 MiB, where the system
    allows it; 64 KiB is the default): a chunk of results goes through in
    one write, not sixteen turns of the sink and the reader."""
    r, w = os.pipe()
    try:
        import fcntl
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)
    except (ImportError, AttributeError, OSError):
        pass
    return r, w


class _Proc:
    """A spawned daemon: pid, name and, once reaped, returncode (as
    subprocess: minus the signal that ended it)."""

    def __init__(self, pid, name):
        self.pid, self.name, self.returncode = pid, name, None

    def poll(self):
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1   # reaped by someone else
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout):
        """Waits up to timeout seconds, then kills it and waits."""
        end = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > end:
                try:
                    os.kill(self.pid, _SIGKILL)
                except ProcessLookupError:
                    pass
                end = float("inf")
            time.sleep(0.001)


def _tmpdir():
    for name in ("TMPDIR", "TEMP", "TMP"):
        d = os.environ.get(name)
        if d and os.path.isdir(d):
            return d
    return "/tmp"


def _rmtree(path):
    """Removes a private directory: flat (sockets and a log), so without
    shutil, whose import costs 5 to 8 ms of every Pool's stop."""
    try:
        with os.scandir(path) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    import shutil
                    shutil.rmtree(e.path, ignore_errors=True)
                else:
                    try:
                        os.unlink(e.path)
                    except FileNotFoundError:
                        pass
        os.rmdir(path)
    except OSError:
        pass


def _sweep():
    """Removes the private directories of callers that died without
    stop() (SIGKILL): zpipe-pool-PID-* of ours whose PID is gone."""
    tmp = _tmpdir()
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
            _rmtree(path)
        except OSError:
            continue


@atexit.register
def _stop_all():
    for c in list(_live):
        c.stop()


class LocalCluster:
    """Starts the cluster at once, without waiting for it: frames written
    to task_fd wait in the pipe until the ventilator reads them. task_fd
    and record_fd are the caller's ends of the two pipes (the engine owns
    them from then on). config: the job's plugin settings."""

    def __init__(self, workers, config, window=2,
                 log_level=os.environ.get("ZPIPE_POOL_LOG_LEVEL", "warn"),
                 bin_dir=None):
        self.bin_dir = bin_dir or find_bin_dir()
        while True:
            self.dir = os.path.join(_tmpdir(), "zpipe-pool-%d-%s" % (
                os.getpid(), os.urandom(6).hex()))
            try:
                os.mkdir(self.dir, 0o700)
                break
            except FileExistsError:
                continue
        d = self.dir
        control = "ipc://%s/control" % d
        dispatch, results = "ipc://%s/dispatch" % d, "ipc://%s/results" % d
        common = ["--parent-pid", str(os.getpid()), "--log-level", log_level]
        b = lambda name: os.path.join(self.bin_dir, name)  # noqa: E731
        sink = [b("zpipe-sink"), "--results", results, "--control", control,
                "--publish", "none", "--output", "-", "--format", "frames"] \
            + common
        vent = [b("zpipe-ventilator"), "--bind", dispatch, "--sink", control,
                "--input", "-", "--input-format", "frames",
                "--plugin", "python", "--job", "pool-%d" % os.getpid(),
                "--no-worker-timeout-ms", "0"]
        vent += common
        # The settings are the workers' (the job carries none): only their
        # executors initialise the plugin, so each starts its interpreter
        # and imports zpipe._worker as it starts, while the rest of the
        # cluster comes up, not when the first task arrives.
        worker = [b("zpipe-worker"), "--ventilator", dispatch, "--sink",
                  results, "--plugin", "python", "--window", str(window)]
        for k, v in config.items():
            worker += ["--plugin-config", "python.%s=%s" % (k, v)]
        worker += common
        self.procs = []
        self.pgid = None
        self.task_fd = self.record_fd = None
        self._log = os.open(os.path.join(d, "daemons.log"),
                            os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        env = _child_env()
        try:
            # The workers first: theirs is the longest way to a result
            # (worker, executor, interpreter, the caller's script).
            for _ in range(workers):
                self._spawn(worker, env, null, self._log)
            # Ours before the spawn: stop() closes them if it fails.
            self.record_fd, rec_w = _pipe()
            try:
                self._spawn(sink, env, null, rec_w)
            finally:
                os.close(rec_w)
            task_r, self.task_fd = _pipe()
            try:
                self._spawn(vent, env, task_r, self._log)
            finally:
                os.close(task_r)
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(null)
        _live.add(self)
        _sweep()  # after the spawns: not on the way to the first result

    def _spawn(self, argv, env, stdin, stdout):
        """Starts argv with stdin, stdout and the log as its 0, 1 and 2,
        and no other descriptor of the caller (Python makes its own
        close-on-exec; the inheritable ones the caller was given are
        closed in the child). The first child leads a new process group;
        the others join it."""
        actions = [(os.POSIX_SPAWN_DUP2, stdin, 0),
                   (os.POSIX_SPAWN_DUP2, stdout, 1),
                   (os.POSIX_SPAWN_DUP2, self._log, 2)]
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable()]
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions,
                             setpgroup=0 if self.pgid is None else self.pgid)
        if self.pgid is None:
            self.pgid = pid
        self.procs.append(_Proc(pid, os.path.basename(argv[0])))

    def pids(self):
        return [p.pid for p in self.procs]

    def dead(self, ended=False):
        """A description of the first daemon that has exited, or None.
        ended: the job's input is closed, so the ventilator and the
        workers end it and exit 0 (only the sink stays)."""
        for p in self.procs:
            if p.poll() is not None and not (
                    ended and p.returncode == 0 and p.name != "zpipe-sink"):
                return "%s exited %s" % (p.name, p.returncode)
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
                os.killpg(self.pgid, _SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.pgid = None
        for p in self.procs:
            p.wait(5)
        self.procs = []
        close_fds(self.task_fd, self.record_fd)
        self.task_fd = self.record_fd = None
        if self._log is not None:
            os.close(self._log)
            self._log = None
        if self.dir:
            _rmtree(self.dir)
            self.dir = None
        _live.discard(self)
