"""deploy/systemd end to end, without systemd running (this test runs in
containers where PID 1 is not systemd):

1. deploy/systemd/install.sh installs the units, the settings files and
   the zpipe user into a scratch root (DESTDIR) beside `cmake --install`'s
   binaries in ROOT/usr/local, and systemd-sysusers creates the user there.
2. `systemd-analyze verify --root=ROOT` passes every unit with no output at
   all (it exits 0 on unknown keys and bad values, so any output fails);
   a deliberately broken copy must be reported, so the check can fail.
   `systemd-analyze security --offline` keeps each unit's exposure at 2.0
   or less.
3. Each unit's ExecStart=, read from the unit file by tests/deploy/
   unitfile.py with its Environment= and EnvironmentFile= (the installed
   settings files; only their port numbers moved to free ones), runs as a
   plain process the way systemd would start it: the state directories
   made, the umask, a clean environment, an unprivileged user with no
   capabilities and no_new_privs (when the test is root). Two
   zpipe-worker@PORT instances, the ventilator and the sink run a sha256
   job through the intake, checked record by record (lost, duplicated,
   unexpected, wrong) in the sink's output and spool; then SIGTERM must
   stop each with exit 0 (what systemd counts as a clean stop).
4. Each daemon runs under strace, and the trace is held against its
   unit's sandbox: every system call in SystemCallFilter=, every socket
   family in RestrictAddressFamilies=, every file written inside its
   StateDirectory= or /tmp (ProtectSystem=strict, PrivateTmp=), nothing
   read under /home or /root (ProtectHome=), only /proc/PID with
   ProcSubset=pid, only the devices PrivateDevices= leaves.

NOT run: systemd itself. The sandbox is applied by the kernel only under
systemd, so step 4 checks what the daemons did against what the sandbox
would allow, rather than watching systemd enforce it."""
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

import unitfile  # noqa: E402
import zpmetrics  # noqa: E402
import zptest  # noqa: E402
from zptest import check  # noqa: E402

SKIP = 77
UNITS = ("zpipe-sink.service", "zpipe-ventilator.service",
         "zpipe-worker@.service")
TOOLS = ("systemd-analyze", "systemd-sysusers", "strace", "setpriv")
TASKS = 20000
POLICY = {"Restart": "on-failure", "NoNewPrivileges": "yes",
          "ProtectSystem": "strict", "PrivateTmp": "yes",
          "ProtectHome": "yes", "PrivateDevices": "yes",
          "CapabilityBoundingSet": []}
# The settings files name the zpipe defaults; the test moves each to a
# free port so it can run beside anything else on this machine.
DEFAULT_PORTS = (5557, 5558, 5559, 5560, 5561, 5562, 5563, 9557, 9559)


def _run(args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(args, **kw)


class Root:
    """A scratch root holding what a host would after `cmake --install`
    and deploy/systemd/install.sh, plus a copy of the system's own units
    (systemd-analyze --root resolves sysinit.target and the rest there)."""

    def __init__(self):
        self.dir = zptest.tmpdir()
        os.chmod(self.dir, 0o755)  # the daemons' user must reach the binaries
        r = _run(["cmake", "--install", zptest.BUILD, "--prefix",
                  self.path("/usr/local")])
        check(r.returncode == 0, "cmake --install: %s" % r.stderr.decode())
        r = _run(["sh", os.path.join(zptest.SOURCE, "deploy", "systemd",
                                     "install.sh")],
                 env=dict(os.environ, DESTDIR=self.dir))
        check(r.returncode == 0, "install.sh: %s%s" % (r.stdout.decode(),
                                                       r.stderr.decode()))
        self.install_log = r.stdout.decode() + r.stderr.decode()
        shutil.copytree("/usr/lib/systemd/system",
                        self.path("/usr/lib/systemd/system"), symlinks=True)

    def path(self, p):
        check(p.startswith("/"), "not absolute: %r" % p)
        return self.dir + p

    def unit(self, file_name, name=None):
        return unitfile.Unit(self.path("/etc/systemd/system/" + file_name),
                             name)


_root = None


def root():
    global _root
    if _root is None:
        _root = Root()
    return _root


def _analyze(args):
    r = _run(["systemd-analyze"] + args + ["--root=" + root().dir])
    return r.returncode, (r.stdout + r.stderr).decode()


def test_install_creates_the_user_and_files():
    r = root()
    print(r.install_log.strip(), flush=True)
    with open(r.path("/etc/passwd")) as f:
        users = [line.split(":") for line in f.read().splitlines()]
    zp = [u for u in users if u[0] == "zpipe"]
    check(len(zp) == 1, "systemd-sysusers made no zpipe user: %r" % users)
    uid, gid, home, shell = int(zp[0][2]), zp[0][3], zp[0][5], zp[0][6]
    check(0 < uid < 1000, "zpipe's uid %d is not a system uid" % uid)
    check(shell == "/usr/sbin/nologin", "zpipe's shell is %r" % shell)
    check(home == "/var/lib/zpipe", "zpipe's home is %r" % home)
    with open(r.path("/etc/group")) as f:
        check(any(g.split(":")[:3:2] == ["zpipe", gid]
                  for g in f.read().splitlines()), "no zpipe group " + gid)
    for name in UNITS:
        u = r.unit(name)
        check(u.service("User") == "zpipe", "%s: User=%r" % (
            name, u.service("User")))
        # What every unit promises (issue 18): restarts, and a sandbox in
        # which only its state directories are writable.
        for key, want in POLICY.items():
            check(u.service(key) == want, "%s: %s=%r, want %r" % (
                name, key, u.service(key), want))
        check(not u.service("ReadWritePaths"), "%s: ReadWritePaths=" % name)
        for f in u.service("EnvironmentFile", []):
            f = f.lstrip("-")
            check(os.path.isfile(r.path(f)), "%s names %s, not installed"
                  % (name, f))
    # A settings file the admin changed survives a second install.
    sink_env = r.path("/etc/zpipe/sink.env")
    with open(sink_env, "a") as f:
        f.write("# mine\n")
    again = _run(["sh", os.path.join(zptest.SOURCE, "deploy", "systemd",
                                     "install.sh")],
                 env=dict(os.environ, DESTDIR=r.dir))
    check(again.returncode == 0, again.stderr.decode())
    with open(sink_env) as f:
        check(f.read().endswith("# mine\n"), "install.sh replaced sink.env")


def test_systemd_analyze_verify_every_unit():
    names = ["zpipe-sink.service", "zpipe-ventilator.service",
             "zpipe-worker@9601.service"]
    for name in names:
        t0 = time.monotonic()
        rc, out = _analyze(["verify", name])
        print("verify %s: rc %d, %d bytes of output (%.2f s)"
              % (name, rc, len(out), time.monotonic() - t0), flush=True)
        check(rc == 0 and out == "", "verify %s: rc %d:\n%s" % (name, rc, out))
    # The check can fail: a typo in a key, a bad value, a missing binary.
    with open(root().path("/etc/systemd/system/zpipe-sink.service")) as f:
        text = f.read()
    broken = (text.replace("ProtectSystem=strict", "ProtectSystem=strictt")
              .replace("Restart=on-failure", "Restrt=on-failure")
              .replace("/usr/local/bin/zpipe-sink", "/usr/local/bin/nothere"))
    with open(root().path("/etc/systemd/system/zpipe-broken.service"),
              "w") as f:
        f.write(broken)
    rc, out = _analyze(["verify", "zpipe-broken.service"])
    os.unlink(root().path("/etc/systemd/system/zpipe-broken.service"))
    for want in ("strictt", "Restrt", "nothere"):
        check(want in out, "verify missed %s in a broken unit:\n%s"
              % (want, out))


def test_systemd_analyze_security_exposure():
    for name in ("zpipe-sink.service", "zpipe-ventilator.service",
                 "zpipe-worker@9601.service"):
        rc, out = _analyze(["security", "--offline=yes", "--threshold=20",
                            name])
        level = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
        print("security %s: exposure %s" % (
            name, level.group(1) if level else "?"), flush=True)
        check(level, "no exposure level:\n" + out)
        check(rc == 0 and float(level.group(1)) <= 2.0,
              "%s: exposure %s over 2.0 (rc %d):\n%s"
              % (name, level.group(1), rc, out))


# ---- the units' command lines, run as plain processes ----

class Daemon:
    """One unit's ExecStart, started as systemd would start it."""

    def __init__(self, unit_file, unit_name, ports, user):
        r = root()
        self.unit = r.unit(unit_file, unit_name)
        self.name = unit_name
        state_root = r.path("/var/lib")
        spec = unitfile.specifiers(unit_name, socket.gethostname(),
                                   state_root)

        def env_path(p):
            check(p.startswith("/etc/zpipe/"), "env file %s outside "
                  "/etc/zpipe" % p)
            return r.path(p)
        env, self.env_files = unitfile.environment(self.unit, spec, env_path)
        check(self.env_files, "%s read no settings file" % unit_name)
        self.settings = {}
        for k, v in env.items():
            v = self._move_ports(v, ports)
            self.settings[k] = v.replace("/usr/local/", r.path("/usr/local/"))
        argv = unitfile.command_line(self.unit, "ExecStart", spec,
                                     self.settings)
        check(argv[0].startswith("/usr/local/bin/"), "%s runs %s" % (
            unit_name, argv[0]))
        self.argv = [r.path(argv[0])] + argv[1:]
        # StateDirectory=: made by systemd, owned by the unit's user.
        self.state_dirs = []
        mode = int(self.unit.service("StateDirectoryMode", "0755"), 8)
        for d in unitfile.state_directories(self.unit):
            path = os.path.join(state_root, d)
            os.makedirs(path, exist_ok=True)
            os.chmod(path, mode)
            if user:
                os.chown(path, user[0], user[1])
            self.state_dirs.append(path)
        # Every path the command line names under the state root lies in
        # one of the unit's state directories: nowhere else is writable.
        for a in self.argv[1:]:
            if a.startswith(state_root):
                check(any(a == d or a.startswith(d + "/")
                          for d in self.state_dirs),
                      "%s: %s is outside its StateDirectory=" % (
                          unit_name, a))
        self.user = user
        d = zptest.tmpdir()
        os.chmod(d, 0o777)
        self.log_path = os.path.join(d, "journal.log")
        self.trace_path = os.path.join(d, "strace.log")
        self.proc = None

    @staticmethod
    def _move_ports(v, ports):
        def tcp(m):
            port = int(m.group(2))
            check(port in ports, "unexpected port %d in %r" % (port, v))
            return "tcp://127.0.0.1:%d" % ports[port]
        v = re.sub(r"tcp://([^:/]+):(\d+)", tcp, v)
        m = re.fullmatch(r"([0-9.]+|localhost):(\d+)", v)
        if m:
            check(int(m.group(2)) in ports, "unexpected port in %r" % v)
            v = "127.0.0.1:%d" % ports[int(m.group(2))]
        return v

    def start(self):
        r = root()
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin",
               "LANG": "C.UTF-8", "USER": "zpipe", "LOGNAME": "zpipe",
               "HOME": r.path("/var/lib/zpipe"), "SHELL": "/usr/sbin/nologin",
               "STATE_DIRECTORY": ":".join(self.state_dirs)}
        if not self.state_dirs:
            del env["STATE_DIRECTORY"]
        env.update(self.settings)
        cmd = []
        if self.user:
            cmd = ["setpriv", "--reuid=%d" % self.user[0],
                   "--regid=%d" % self.user[1], "--clear-groups",
                   "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all"]
        if STRACE_OK:
            cmd += ["strace", "-f", "-qq", "-y", "-s", "256", "-o",
                    self.trace_path, "--"]
        cmd += self.argv
        umask = int(self.unit.service("UMask", "0022"), 8)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, env=env, cwd="/", umask=umask,
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        zptest._procs.append(self.proc)
        print("%s: %s" % (self.name, " ".join(self.argv).replace(r.dir, "ROOT")),
              flush=True)

    def pid(self):
        """The daemon's pid: strace's child."""
        if not STRACE_OK:
            return self.proc.pid
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                with open("/proc/%d/task/%d/children"
                          % (self.proc.pid, self.proc.pid)) as f:
                    kids = f.read().split()
                if kids:
                    return int(kids[0])
            except OSError:
                pass
            time.sleep(0.02)
        raise AssertionError("%s: no process under strace" % self.name)

    def stop(self, timeout):
        """SIGTERM to the daemon (KillMode=mixed/control-group both send
        it to the main process); returns (exit code, seconds)."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            os.kill(self.pid(), signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None, time.monotonic() - t0
        return self.proc.returncode, time.monotonic() - t0

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


def _user():
    """(uid, gid) the daemons run as: nobody when the test is root (the
    zpipe user exists only in the scratch root), else the test's own."""
    if os.geteuid() != 0:
        return None
    import pwd
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def _records(path, job):
    with open(path, "rb") as f:
        return [json.loads(line) for line in f if line.strip()
                and json.loads(line).get("job") == job]


def _count(records, inputs):
    seen, dup, wrong, unexpected = set(), 0, 0, 0
    for rec in records:
        t = rec.get("task")
        if not isinstance(t, int) or not 0 <= t < len(inputs):
            unexpected += 1
            continue
        if t in seen:
            dup += 1
        seen.add(t)
        want = hashlib.sha256(inputs[t]).hexdigest()
        if rec.get("status") != "ok" or rec.get("output") != want:
            wrong += 1
    return len(inputs) - len(seen), dup, wrong, unexpected


def _wait_up(daemons, urls, vent, timeout=30.0):
    """Every daemon serves /metrics, and the ventilator has both workers."""
    end = time.monotonic() + timeout
    for d in daemons:
        while True:
            check(d.proc.poll() is None, "%s exited %r:\n%s" % (
                d.name, d.proc.returncode, d.logs()[-2000:]))
            try:
                zpmetrics.fetch(urls[d.name])
                break
            except OSError:
                check(time.monotonic() < end, "%s: no /metrics at %s" % (
                    d.name, urls[d.name]))
                time.sleep(0.1)
    while True:
        _, s = zpmetrics.parse(zpmetrics.fetch(urls[vent.name]))
        if zpmetrics.value(s, "zpipe_workers") == len(daemons) - 2:
            return
        check(time.monotonic() < end, "workers did not join the ventilator")
        time.sleep(0.1)


_ran = {}


def test_units_run_a_sha256_job():
    user = _user()
    ports = dict(zip(DEFAULT_PORTS, zptest.free_ports(len(DEFAULT_PORTS))))
    worker_ports = zptest.free_ports(2)
    daemons = [Daemon("zpipe-sink.service", "zpipe-sink.service", ports,
                      user),
               Daemon("zpipe-ventilator.service", "zpipe-ventilator.service",
                      ports, user)]
    daemons += [Daemon("zpipe-worker@.service",
                       "zpipe-worker@%d.service" % p, ports, user)
                for p in worker_ports]
    _ran["daemons"] = daemons
    t0 = time.monotonic()
    for d in daemons:
        d.start()
    sink, vent = daemons[0], daemons[1]
    try:
        urls = {d.name: "http://%s/metrics" % d.argv[-1]
                if d.name.startswith("zpipe-worker@") else None
                for d in daemons}
        urls[sink.name] = "http://%s/metrics" % sink.settings["ZPIPE_METRICS"]
        urls[vent.name] = "http://%s/metrics" % vent.settings["ZPIPE_METRICS"]
        _wait_up(daemons, urls, vent)
        up = time.monotonic() - t0
        d = zptest.tmpdir()
        inputs = [b"systemd-%d" % i for i in range(TASKS)]
        with open(os.path.join(d, "tasks.txt"), "wb") as f:
            f.write(b"".join(x + b"\n" for x in inputs))
        intake = vent.settings["ZPIPE_INTAKE"]
        control = vent.settings["ZPIPE_SINK_CONTROL"]
        t1 = time.monotonic()
        r = _run([zptest.binary("zpipe"), "submit", "--ventilator", intake,
                  "--plugin", "sha256", "--input",
                  os.path.join(d, "tasks.txt")], timeout=60)
        check(r.returncode == 0, "submit: %s" % r.stderr.decode())
        job = r.stdout.decode().strip()
        r = _run([zptest.binary("zpipe"), "wait", "--sink", control, job],
                 timeout=120)
        ran = time.monotonic() - t1
        check(r.returncode == 0, "wait: rc %d %s %s" % (
            r.returncode, r.stdout.decode(), r.stderr.decode()))
        print("up in %.2f s; job %s: %s (%.2f s)" % (
            up, job, r.stdout.decode().strip(), ran), flush=True)
        state = sink.state_dirs[0]
        for path in (os.path.join(state, "all.jsonl"),
                     os.path.join(state, "spool", job + ".jsonl")):
            recs = _records(path, job)
            lost, dup, wrong, unexpected = _count(recs, inputs)
            print("%s: %d records, lost %d, duplicated %d, wrong %d, "
                  "unexpected %d" % (path.replace(root().dir, "ROOT"),
                                     len(recs), lost, dup, wrong, unexpected),
                  flush=True)
            check((lost, dup, wrong, unexpected) == (0, 0, 0, 0),
                  "records in %s" % path)
        # The metrics each unit's command line turned on, as Prometheus
        # would scrape them.
        # (rendered about every 250 ms: the last commits may be one late)
        end = time.monotonic() + 5
        while True:
            _, s = zpmetrics.parse(zpmetrics.fetch(urls[sink.name]))
            ok = zpmetrics.total(s, "zpipe_tasks_completed_total",
                                 job_id=job, status="ok")
            if ok == TASKS or time.monotonic() > end:
                break
            time.sleep(0.1)
        check(ok == TASKS, "sink metrics: %r of %d ok" % (ok, TASKS))
        _, s = zpmetrics.parse(zpmetrics.fetch(urls[vent.name]))
        check(zpmetrics.value(s, "zpipe_workers") == 2, "ventilator: workers")
        while True:
            done = 0
            for w in daemons[2:]:
                _, s = zpmetrics.parse(zpmetrics.fetch(urls[w.name]))
                done += zpmetrics.value(s, "zpipe_worker_tasks_total")
            if done >= TASKS or time.monotonic() > end + 5:
                break
            time.sleep(0.1)
        check(done >= TASKS, "workers finished %d of %d" % (done, TASKS))
        print("workers finished %d tasks between them" % done, flush=True)
    except Exception:
        for dm in daemons:
            sys.stderr.write("--- %s\n%s" % (dm.name, dm.logs()[-3000:]))
        raise
    finally:
        # Workers first, then the ventilator, then the sink, as systemd
        # orders a stop of units ordered After= one another.
        for dm in daemons[2:] + [vent, sink]:
            limit = float(dm.unit.service("TimeoutStopSec", "90s")[:-1])
            rc, took = dm.stop(limit)
            dm.rc = rc
            print("stop %s: exit %r in %.2f s" % (dm.name, rc, took),
                  flush=True)
    for dm in daemons:
        check(dm.rc == 0, "%s stopped with %r (systemd: failed)\n%s"
              % (dm.name, dm.rc, dm.logs()[-2000:]))


# ---- the traces against the sandbox ----

_GROUPS = None


def _groups():
    """systemd's system call groups, as this systemd defines them."""
    global _GROUPS
    if _GROUPS is None:
        r = _run(["systemd-analyze", "syscall-filter"])
        check(r.returncode == 0, r.stderr.decode())
        groups, cur = {}, None
        for line in r.stdout.decode().splitlines():
            if line.startswith("@"):
                cur = groups.setdefault(line.strip(), set())
            elif line.startswith("    ") and cur is not None:
                item = line.strip()
                if item and not item.startswith("#"):
                    cur.add(item)
            elif not line.strip():
                cur = None
        _GROUPS = groups
    return _GROUPS


def _expand(items):
    out = set()
    for it in items:
        if it.startswith("@"):
            check(it in _groups(), "unknown group %s" % it)
            out |= _expand(_groups()[it])
        else:
            out.add(it)
    return out


def _allowed_syscalls(unit):
    """SystemCallFilter= as systemd.exec(5) combines it: the first line
    decides allow or deny list, later ~lines remove, @default always in."""
    lines = unit.service("SystemCallFilter", [])
    check(lines and not lines[0].startswith("~"),
          "%s: want an allow list" % unit.name)
    allowed = _expand(["@default"])
    for line in lines:
        deny = line.startswith("~")
        names = _expand(line.lstrip("~").split())
        allowed = allowed - names if deny else allowed | names
    return allowed


WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")
PATH_CALLS = ("mkdir", "mkdirat", "unlink", "unlinkat", "rename", "renameat",
              "renameat2", "rmdir", "link", "linkat", "symlink", "symlinkat",
              "truncate", "chmod", "fchmodat", "chown", "fchownat", "mknod",
              "mknodat", "utimensat")
DEVICES_LEFT = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                "/dev/urandom", "/dev/tty", "/dev/pts", "/dev/ptmx",
                "/dev/shm", "/dev/log", "/dev/stdin", "/dev/stdout",
                "/dev/stderr", "/dev/fd")
# Read where ProcSubset=pid hides them, by code that copes: glibc's
# malloc asks whether it may give heap back to the system (without the
# answer it keeps the default).
PROC_PROBES = ("/proc/sys/vm/overcommit_memory",)
CALL = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()")
PATHARG = re.compile(r'(?:(AT_FDCWD|\d+<([^>]*)>), )?"((?:[^"\\]|\\.)*)"')


def _resolve(dirpath, p):
    if p.startswith("/") or dirpath is None:
        return os.path.normpath(p if p.startswith("/") else "/" + p)
    return os.path.normpath(os.path.join(dirpath, p))


def _under(p, roots):
    return any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots)


def _audit(d):
    unit = d.unit
    allowed = _allowed_syscalls(unit)
    families = set(unit.service("RestrictAddressFamilies", [""])[0].split())
    writable = d.state_dirs + ["/tmp", "/var/tmp", "/dev/null", "/dev/shm"]
    proc_subset = unit.service("ProcSubset") == "pid"
    private_dev = unit.service("PrivateDevices") == "yes"
    calls, bad = {}, []
    with open(d.trace_path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    for line in lines:
        m = CALL.match(line)
        if not m:
            continue
        name = m.group(2) or m.group(3)
        calls[name] = calls.get(name, 0) + 1
        if m.group(2):
            continue  # the call's arguments were on its first line
        args = line[m.end():]
        if name == "socket":
            fam = args.split(",", 1)[0]
            if fam not in families:
                bad.append("socket family %s: %s" % (fam, line))
        pm = PATHARG.search(args) if name in PATH_CALLS or name in (
            "open", "openat", "openat2", "creat", "execve", "access",
            "faccessat", "faccessat2", "newfstatat", "stat", "statx",
            "readlink", "readlinkat") else None
        if not pm:
            continue
        dirpath = pm.group(2) if pm.group(1) and pm.group(1) != "AT_FDCWD" \
            else "/"
        path = _resolve(dirpath, pm.group(3))
        writes = name in PATH_CALLS or name == "creat" or (
            name.startswith("open") and any(fl in args for fl in WRITE_FLAGS))
        if writes and not _under(path, writable):
            bad.append("writes outside StateDirectory=/tmp: " + line)
        if _under(path, ["/home", "/root", "/run/user"]):
            bad.append("ProtectHome= hides it: " + line)
        if proc_subset and path.startswith("/proc/") and not re.match(
                r"/proc/(self|thread-self|\d+)(/|$)", path) and \
                path not in PROC_PROBES:
            bad.append("ProcSubset=pid hides it: " + line)
        if private_dev and path.startswith("/dev/") and not _under(
                path, DEVICES_LEFT):
            bad.append("PrivateDevices= hides it: " + line)
    for name in sorted(calls):
        if name not in allowed:
            bad.append("system call %s (%d times) not in SystemCallFilter="
                       % (name, calls[name]))
    return calls, bad


def test_the_audit_sees_a_sandbox_broken():
    """The audit can fail: a made-up trace of everything the sink's
    sandbox forbids is caught line by line, and the sink's own kinds of
    lines pass."""
    class Fake:
        pass
    d = Fake()
    d.unit = root().unit("zpipe-sink.service")
    d.name = "fake"
    d.state_dirs = ["/var/lib/zpipe/sink"]
    d.trace_path = os.path.join(zptest.tmpdir(), "strace.log")
    bad = [
        '10 reboot(LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, '
        'LINUX_REBOOT_CMD_RESTART) = -1 EPERM',
        '10 socket(AF_PACKET, SOCK_RAW, 768) = 5<socket:[1]>',
        '10 openat(AT_FDCWD</>, "/etc/zpipe/sink.env", O_WRONLY|O_TRUNC) = 6',
        '10 openat(3</var/lib>, "zpipe/elsewhere", O_RDWR|O_CREAT, 0640) = 7',
        '10 mkdir("/usr/local/x", 0755) = -1 EROFS',
        '10 openat(AT_FDCWD</>, "/root/.netrc", O_RDONLY) = -1 ENOENT',
        '10 openat(AT_FDCWD</>, "/proc/meminfo", O_RDONLY) = 8',
        '10 openat(AT_FDCWD</>, "/dev/sda", O_RDONLY) = -1 EACCES',
    ]
    good = [
        '10 openat(AT_FDCWD</>, "/var/lib/zpipe/sink/journal", '
        'O_WRONLY|O_CREAT|O_APPEND, 0640) = 9',
        '10 renameat(AT_FDCWD</>, "/var/lib/zpipe/sink/j.tmp", AT_FDCWD</>, '
        '"/var/lib/zpipe/sink/journal") = 0',
        '10 openat(9</var/lib/zpipe/sink/spool>, "job-1.jsonl", '
        'O_WRONLY|O_CREAT, 0640) = 10',
        '10 socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP) = 11',
        '10 openat(AT_FDCWD</>, "/proc/self/maps", O_RDONLY) = 12',
        '10 openat(AT_FDCWD</>, "/dev/urandom", O_RDONLY) = 13',
        '10 <... futex resumed>) = 0',
    ]
    with open(d.trace_path, "w") as f:
        f.write("\n".join(bad + good) + "\n")
    _, found = _audit(d)
    for line in bad[1:]:
        check(any(line in b for b in found), "audit missed: %s" % line)
    check(any("reboot" in b for b in found), "audit missed reboot")
    check(len(found) == len(bad), "audit flagged good lines too: %s"
          % "\n".join(found))


def test_what_the_daemons_did_fits_their_sandbox():
    if not STRACE_OK:
        raise zptest.Skip("strace cannot trace here: %s" % STRACE_WHY)
    daemons = _ran.get("daemons")
    check(daemons, "the job test did not run")
    problems = []
    for d in daemons:
        calls, bad = _audit(d)
        print("%s: %d distinct system calls, %d in all, %d outside its "
              "sandbox" % (d.name, len(calls), sum(calls.values()), len(bad)),
              flush=True)
        problems += ["%s: %s" % (d.name, b.replace(root().dir, "ROOT"))
                     for b in bad[:20]]
    check(not problems, "\n".join(problems))


def _tools_missing():
    return [t for t in TOOLS if not shutil.which(t)]


def _strace_works():
    """Whether ptrace is allowed here (a container's seccomp profile may
    refuse it)."""
    r = _run(["strace", "-f", "-qq", "-o", "/dev/null", "--", "true"],
             timeout=30)
    return r.returncode == 0, r.stderr.decode(errors="replace").strip()


STRACE_OK, STRACE_WHY = True, ""


def _main(tests):
    """zptest.main, but a test that could not run makes the whole run
    exit 77 (ctest: skipped, not passed) once the others passed."""
    failed = skipped = 0
    for t in tests:
        t0 = time.monotonic()
        try:
            t()
            print("ok   %s (%.2f s)" % (t.__name__, time.monotonic() - t0),
                  flush=True)
        except zptest.Skip as e:
            skipped += 1
            print("SKIP %s: NOT RUN: %s" % (t.__name__, e), flush=True)
        except Exception as e:
            failed += 1
            print("FAIL %s: %r" % (t.__name__, e), flush=True)
    print("%d passed, %d failed, %d not run" % (
        len(tests) - failed - skipped, failed, skipped), flush=True)
    sys.exit(1 if failed else SKIP if skipped else 0)


if __name__ == "__main__":
    missing = _tools_missing()
    if missing:
        print("SKIP test_systemd: NOT RUN: %s missing (scripts/setup.sh "
              "installs systemd and strace)" % ", ".join(missing), flush=True)
        sys.exit(SKIP)
    if not os.path.isdir("/usr/lib/systemd/system"):
        print("SKIP test_systemd: NOT RUN: no /usr/lib/systemd/system",
              flush=True)
        sys.exit(SKIP)
    STRACE_OK, STRACE_WHY = _strace_works()
    _main([test_install_creates_the_user_and_files,
                 test_systemd_analyze_verify_every_unit,
                 test_systemd_analyze_security_exposure,
                 test_units_run_a_sha256_job,
                 test_the_audit_sees_a_sandbox_broken,
                 test_what_the_daemons_did_fits_their_sandbox])
