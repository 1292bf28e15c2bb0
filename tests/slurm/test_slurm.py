"""deploy/slurm/zpipe.sbatch on a real single-node Slurm cluster (ctest
`slurm`): Debian's slurm-wlm and munge, started by this test as plain
processes on a private configuration (its own slurm.conf in a temporary
directory, SLURM_CONF, its own ports, and munged with its own key and
socket); nothing system-wide is read or changed.

1. `sbatch --ntasks=2 zpipe.sbatch` runs a 20,000-task sha256 job on two
   srun'd workers (CURVE on, the script's default): every record checked
   against hashlib (lost, duplicated, unexpected, wrong all 0), both
   workers connected, the sink's journal gone (a clean stop), and no
   process of the job left once sbatch returns.
2. A 1,000-task spin job (plaintext) is cancelled with `scancel` once
   records arrive: the script's trap stops the workers, the ventilator and
   the sink, Slurm ends the job as CANCELLED, and every process the job
   had (by pid, by a marker in their environment, and by pgrep on this
   test's paths) is gone; the records written before are right and none
   is there twice; the sink's journal is kept.
3. The same sbatch command again resumes that job: it ends COMPLETED with
   every task's record exactly once, the cancelled run's records as they
   were, and the journal gone.

Needs root (munged, slurmd) and the slurm-wlm and munge packages
(scripts/test.sh installs them); otherwise prints SKIP and exits 77. Every
daemon it starts is stopped at the end, even on failure; ZPIPE_KEEP=1
keeps the directory with the logs.

By hand: cd build && ZPIPE_BUILD_DIR=$PWD /usr/bin/python3 ../tests/slurm/test_slurm.py
"""
import atexit
import collections
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
import zptest  # noqa: E402
from zptest import binary, check  # noqa: E402

SKIP = 77
SCRIPT = os.path.join(zptest.SOURCE, "deploy", "slurm", "zpipe.sbatch")
TOOLS = ("munged", "slurmctld", "slurmd", "slurmstepd", "sbatch", "srun",
         "scancel", "squeue", "scontrol", "sinfo")
N_SHA = 20000
N_SPIN, SPIN_US = 1000, 5000  # 5 s of CPU on 2 workers: cancelled at ~100 done
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
         "BOOT_FAIL", "DEADLINE", "PREEMPTED")
MARK = "ZPIPE_SLURM_TEST_MARK"  # in the environment of every process we start


def skip(reason):
    print("*" * 70)
    print("SKIP slurm: NOT RUN: %s" % reason)
    print("*" * 70, flush=True)
    sys.exit(SKIP)


def log(msg):
    print("    %s" % msg, flush=True)


def marked_pids(mark):
    """pid -> command line of every process whose environment holds
    MARK=mark (the daemons, slurmstepd, the batch script and all it starts:
    the environment passes from sbatch to the script, srun and the workers'
    executors)."""
    needle = ("%s=%s" % (MARK, mark)).encode()
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read().split(b"\0")
            if needle not in env:
                continue
            with open("/proc/%s/cmdline" % d, "rb") as f:
                out[int(d)] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
    return out


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def free_base(n=3):
    """A first port of n consecutive free ones, below the ephemeral range."""
    for _ in range(200):
        base = random.randrange(20000, 32000 - n)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("0.0.0.0", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no %d consecutive free ports" % n)


class Cluster:
    """munged, slurmctld and slurmd of one run, in a directory of its own."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="zpipe-slurm-")
        # munged wants every directory above its socket searchable by all.
        os.chmod(self.dir, 0o711)
        self.mark = "%d-%x" % (os.getpid(), random.getrandbits(32))
        self.daemon_mark = self.mark + "-daemons"
        self.node = socket.gethostname().split(".")[0]
        self.conf = os.path.join(self.dir, "slurm.conf")
        self.procs = {}
        # A private binary directory, so every zpipe process of a job has
        # this test's path in its command line (pgrep) and nothing else has.
        self.bin = os.path.join(self.dir, "bin")
        os.symlink(os.path.dirname(binary("zpipe-worker")), self.bin)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        env["SLURM_CONF"] = self.conf
        env["PATH"] = self.bin + os.pathsep + env.get("PATH", "/usr/bin:/bin")
        self.env = env

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def _start(self, name, args):
        out = open(self.path("log", name + ".out"), "wb")
        env = dict(self.env, **{MARK: self.daemon_mark})
        self.procs[name] = subprocess.Popen(args, env=env, stdout=out,
                                            stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        out.close()

    def slurm(self, *args, timeout=60, check_rc=True):
        r = subprocess.run(list(args), env=self.env, capture_output=True,
                           timeout=timeout)
        if check_rc and r.returncode != 0:
            raise RuntimeError("%s: exit %d: %s" % (" ".join(args), r.returncode,
                                                     r.stderr.decode().strip()))
        return r.stdout.decode()

    def _munge(self):
        m = self.path("munge")
        os.mkdir(m, 0o711)
        key = os.path.join(m, "munge.key")
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, os.urandom(1024))
        os.close(fd)
        sock = os.path.join(m, "munge.socket")
        self._start("munged", ["munged", "--foreground", "--socket", sock,
                               "--key-file", key, "--pid-file", os.path.join(m, "munged.pid"),
                               "--log-file", os.path.join(m, "munged.log"),
                               "--seed-file", os.path.join(m, "munged.seed")])
        for _ in range(100):
            r = subprocess.run(["munge", "--socket", sock, "--no-input"],
                               capture_output=True)
            if r.returncode == 0:
                return sock
            if self.procs["munged"].poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("munged did not start: %s" % self.tail("munged.out"))

    def _write_conf(self, sock):
        ctld_port, slurmd_port = zptest.free_ports(2)
        for sub in ("state", "spool"):
            os.mkdir(self.path(sub), 0o700)
        # proctrack/linuxproc and task/none: no cgroups or systemd needed;
        # linuxproc follows every descendant of a step, so executors (which
        # the workers start in process groups of their own) are tracked too.
        conf = """\
ClusterName=zpipetest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={sock}
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=30
NodeName={node} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=zpipe Nodes={node} Default=YES MaxTime=INFINITE State=UP
""".format(node=self.node, ctld_port=ctld_port, slurmd_port=slurmd_port,
           sock=sock, d=self.dir)
        with open(self.conf, "w") as f:
            f.write(conf)

    def up(self):
        os.mkdir(self.path("log"))
        sock = self._munge()
        self._write_conf(sock)
        self._start("slurmctld", ["slurmctld", "-D", "-c", "-f", self.conf])
        self._start("slurmd", ["slurmd", "-D", "-N", self.node, "-f", self.conf])
        state = ""
        for _ in range(300):
            for name in ("slurmctld", "slurmd"):
                if self.procs[name].poll() is not None:
                    raise RuntimeError("%s exited: %s" % (name, self.tail(name + ".out")))
            state = self.slurm("sinfo", "--noheader", "--nodes", self.node,
                               "--format", "%t", check_rc=False).strip()
            if state == "idle":
                return
            time.sleep(0.1)
        raise RuntimeError("node %s not idle after 30 s (%r): %s"
                           % (self.node, state, self.tail("slurmd.out")))

    def tail(self, name, n=15):
        for p in (self.path("log", name), self.path(name)):
            try:
                with open(p, errors="replace") as f:
                    return "".join(f.readlines()[-n:])
            except OSError:
                pass
        return "(no %s)" % name

    def jobs(self):
        return self.slurm("squeue", "--noheader", "--format", "%i",
                          check_rc=False).split()

    def down(self):
        """Cancels what runs, stops the daemons, kills any straggler of
        ours. Returns the processes that had to be killed."""
        try:
            jobs = self.jobs()
            if jobs:
                self.slurm("scancel", *jobs, check_rc=False)
                for _ in range(400):
                    if not self.jobs():
                        break
                    time.sleep(0.1)
        except Exception as e:  # the daemons may be gone already
            log("cancelling jobs at the end: %s" % e)
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.procs.get(name)
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        left = dict(marked_pids(self.mark), **marked_pids(self.daemon_mark))
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if os.environ.get("ZPIPE_KEEP"):
            log("kept %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return left

    def submit(self, run, *args, env=None):
        """sbatch --ntasks=2 the script in run with args; returns the job id."""
        e = dict(self.env, **{MARK: self.mark, "ZPIPE_SLURM_BIN": self.bin,
                              "ZPIPE_SLURM_PORT": str(free_base())})
        e.update(env or {})
        r = subprocess.run(["sbatch", "--parsable", "--ntasks=2", "--chdir", run,
                            "--output", "job.out", SCRIPT] + list(args),
                           env=e, capture_output=True, timeout=60)
        check(r.returncode == 0, "sbatch: exit %d: %s" % (r.returncode,
                                                          r.stderr.decode().strip()))
        return r.stdout.decode().strip().split(";")[0]

    def state(self, job):
        """'STATE EXIT:SIGNAL' from scontrol (sbatch --wait polls every
        few seconds, and there is no accounting here for sacct)."""
        out = self.slurm("scontrol", "show", "job", job, check_rc=False)
        m = re.search(r"JobState=(\S+)", out)
        e = re.search(r"\bExitCode=(\S+)", out)
        return "%s %s" % (m.group(1) if m else "UNKNOWN", e.group(1) if e else "?")

    def wait_state(self, job, states, timeout):
        """(time, state) once the job's state is one of states, or at
        the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(job)
            if state.split()[0] in states or time.monotonic() > deadline:
                return time.monotonic(), state
            time.sleep(0.1)


CL = None


def count_records(recs, n, expect):
    """lost, duplicated, unexpected (task id outside the job), wrong."""
    count = collections.Counter(r["task"] for r in recs)
    lost = [i for i in range(n) if count[i] == 0]
    dup = {i: c for i, c in count.items() if c > 1}
    stray = [r for r in recs if not isinstance(r["task"], int) or not 0 <= r["task"] < n]
    wrong = [r["task"] for r in recs if r not in stray and
             (r["status"] != "ok" or r.get("output") != expect(r["task"]))]
    return lost, dup, stray, wrong


def read_file(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return "(no %s)" % path


def test_sbatch_runs_a_job_on_every_task():
    run = CL.path("run1")
    os.mkdir(run)
    lines = ["slurm-task-%d" % i for i in range(N_SHA)]
    with open(os.path.join(run, "tasks.txt"), "w") as f:
        f.write("".join(l + "\n" for l in lines))
    t0 = time.monotonic()
    job = CL.submit(run, "tasks.txt", "results.jsonl")
    t_run, state = CL.wait_state(job, ("RUNNING",) + ENDED, 60)
    t_end, state = CL.wait_state(job, ENDED, 300)
    out = read_file(os.path.join(run, "job.out"))
    check(state == "COMPLETED 0:0", "job %s ended %s; its output:\n%s" % (job, state, out))
    log("job %s running after %.2f s, %s after %.2f s; the job said:\n%s"
        % (job, t_run - t0, state, t_end - t0,
           "".join("      | " + l + "\n" for l in out.splitlines())))
    check("CURVE on" in out, "CURVE not on by default")
    recs = zptest.read_jsonl(os.path.join(run, "results.jsonl"))
    lost, dup, stray, wrong = count_records(
        recs, N_SHA, lambda i: hashlib.sha256(lines[i].encode()).hexdigest())
    log("%d records: lost %d, duplicated %d, unexpected %d, wrong %d"
        % (len(recs), len(lost), sum(c - 1 for c in dup.values()), len(stray), len(wrong)))
    check(len(recs) == N_SHA and not lost and not dup and not stray and not wrong,
          "lost %r duplicated %r unexpected %r wrong %r"
          % (lost[:10], list(dup.items())[:10], stray[:3], wrong[:10]))
    logs = os.path.join(run, "results.jsonl.d", job)
    ids = []
    for t in range(2):
        m = re.search(r"worker (\S+) connected to tcp://",
                      read_file(os.path.join(logs, "worker-%d.log" % t)))
        check(m, "srun task %d: no worker connected (worker-%d.log)" % (t, t))
        ids.append(m.group(1))
    by = collections.Counter(r["worker"] for r in recs)
    log("tasks per worker: %s" % dict(by))
    check(set(by) <= set(ids), "records from workers %r, not the job's %r" % (set(by), ids))
    check(not os.path.exists(os.path.join(run, "results.jsonl.journal")),
          "the sink's journal is still there: it did not stop cleanly")
    left = marked_pids(CL.mark)
    check(not left, "processes of the finished job still running: %r" % left)


def test_scancel_mid_job_leaves_nothing_behind():
    run = CL.path("run2")
    os.mkdir(run)
    with open(os.path.join(run, "tasks.txt"), "w") as f:
        f.write(("%d\n" % SPIN_US) * N_SPIN)
    results = os.path.join(run, "results.jsonl")
    t0 = time.monotonic()
    job = CL.submit(run, "tasks.txt", "results.jsonl",
                    env={"ZPIPE_SLURM_PLUGIN": "spin", "ZPIPE_SLURM_CURVE": "0"})
    t_run, state = CL.wait_state(job, ("RUNNING",) + ENDED, 60)
    check(state.split()[0] == "RUNNING", "job %s: %s" % (job, state))
    log("job %s running after %.2f s" % (job, t_run - t0))
    # Mid-job: records coming in.
    deadline = time.monotonic() + 60
    n = 0
    while time.monotonic() < deadline:
        try:
            with open(results, "rb") as f:
                n = f.read().count(b"\n")
        except OSError:
            n = 0
        if n >= 100:
            break
        time.sleep(0.1)
    check(n >= 100, "no records after 60 s: %s\n%s"
          % (read_file(os.path.join(run, "job.out")), CL.tail("slurmd.log")))
    procs = marked_pids(CL.mark)
    kinds = collections.Counter()
    for cmd in procs.values():
        argv = cmd.split(" ")
        name = os.path.basename(argv[0])
        if name == "zpipe-executor" or (name == "zpipe-worker" and
                                        "--executor" in argv):
            name = "executor"
        elif "slurm_script" in cmd:
            name = "batch script"
        kinds[name] += 1
    log("%d records in, cancelling job %s; its processes: %s"
        % (n, job, dict(kinds)))
    check(kinds["zpipe-worker"] == 2 and kinds["executor"] >= 2 and kinds["zpipe-sink"] == 1
          and kinds["zpipe-ventilator"] == 1 and kinds["srun"] >= 1,
          "not every process of the job is running: %r" % procs)
    t0 = time.monotonic()
    CL.slurm("scancel", job)
    gone = None
    deadline = t0 + 60
    while time.monotonic() < deadline:
        if gone is None and not any(alive(p) for p in procs):
            gone = time.monotonic() - t0
        if gone is not None and job not in CL.jobs() and not marked_pids(CL.mark):
            break
        time.sleep(0.1)
    out = read_file(os.path.join(run, "job.out"))
    log("scancel: every process gone after %s s, job out of squeue after %.2f s; "
        "the job said:\n%s" % ("%.2f" % gone if gone is not None else "(never)",
                               time.monotonic() - t0,
                               "".join("      | " + l + "\n" for l in out.splitlines())))
    still = {p: c for p, c in procs.items() if alive(p)}
    check(not still, "still running after scancel: %r" % still)
    left = marked_pids(CL.mark)
    check(not left, "processes with the job's marker after scancel: %r" % left)
    r = subprocess.run(["pgrep", "-a", "-f", "^%s/" % re.escape(CL.bin)],
                       capture_output=True)
    check(r.returncode == 1, "pgrep finds processes of this test's binaries: %s"
          % r.stdout.decode())
    check("; plaintext" in out, "ZPIPE_SLURM_CURVE=0 ignored")
    check("got SIGTERM" in out and "stopped;" in out,
          "the script's trap did not run to its end:\n%s" % out)
    state = CL.state(job)
    check(state.startswith("CANCELLED"), "job state: %s" % state)
    check("sink stopping" in read_file(os.path.join(results + ".d", job, "sink.log")),
          "the sink did not stop cleanly")
    recs = zptest.read_jsonl(results)
    lost, dup, stray, wrong = count_records(recs, N_SPIN, lambda i: str(SPIN_US))
    log("%d of %d records before the cancel: duplicated %d, unexpected %d, wrong %d"
        % (len(recs), N_SPIN, sum(c - 1 for c in dup.values()), len(stray), len(wrong)))
    check(0 < len(recs) < N_SPIN, "%d records: the job was not cancelled mid-way" % len(recs))
    check(not dup and not stray and not wrong, "duplicated %r unexpected %r wrong %r"
          % (list(dup.items())[:10], stray[:3], wrong[:10]))
    check(os.path.exists(results + ".journal"), "no journal kept for the unfinished job")
    CANCELLED.update({(r["task"], r["worker"]) for r in recs})


CANCELLED = set()  # (task, worker) of the records the cancelled job wrote


def test_the_same_command_resumes_the_cancelled_job():
    check(CANCELLED, "no cancelled job to resume")
    run = CL.path("run2")
    results = os.path.join(run, "results.jsonl")
    t0 = time.monotonic()
    job = CL.submit(run, "tasks.txt", "results.jsonl",
                    env={"ZPIPE_SLURM_PLUGIN": "spin", "ZPIPE_SLURM_CURVE": "0"})
    t_end, state = CL.wait_state(job, ENDED, 300)
    out = read_file(os.path.join(run, "job.out"))
    check(state == "COMPLETED 0:0", "job %s ended %s; its output:\n%s" % (job, state, out))
    log("job %s %s after %.2f s; the job said:\n%s"
        % (job, state, t_end - t0, "".join("      | " + l + "\n" for l in out.splitlines())))
    check("resuming job slurm-" in out, "the job was not resumed")
    recs = zptest.read_jsonl(results)
    lost, dup, stray, wrong = count_records(recs, N_SPIN, lambda i: str(SPIN_US))
    kept = CANCELLED & {(r["task"], r["worker"]) for r in recs}
    log("%d records: lost %d, duplicated %d, unexpected %d, wrong %d; %d of the "
        "cancelled job's %d kept as they were"
        % (len(recs), len(lost), sum(c - 1 for c in dup.values()), len(stray),
           len(wrong), len(kept), len(CANCELLED)))
    check(len(recs) == N_SPIN and not lost and not dup and not stray and not wrong,
          "lost %r duplicated %r unexpected %r wrong %r"
          % (lost[:10], list(dup.items())[:10], stray[:3], wrong[:10]))
    check(kept == CANCELLED, "records of the cancelled run were redone")
    check(not os.path.exists(results + ".journal"), "the journal outlived the job")
    check(not marked_pids(CL.mark), "processes of the finished job still running")


def main():
    global CL
    if os.geteuid() != 0:
        skip("needs root to run munged and slurmd (euid %d)" % os.geteuid())
    missing = [t for t in TOOLS + ("munge",) if not shutil.which(t, path=os.environ.get(
        "PATH", "") + ":/usr/sbin:/sbin")]
    if missing:
        skip("%s not installed (apt-get install --no-install-recommends slurm-wlm "
             "munge; scripts/test.sh does)" % ", ".join(missing))
    for b in ("zpipe-ventilator", "zpipe-worker", "zpipe-sink", "zpipe"):
        if not os.access(binary(b), os.X_OK):
            print("FAIL: %s is not built" % binary(b), flush=True)
            sys.exit(1)
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    # A SIGTERM (ctest's timeout, Ctrl-C) still stops the daemons.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t_start = time.monotonic()
    CL = Cluster()
    atexit.register(CL.down)  # if down() below is never reached
    tests = [test_sbatch_runs_a_job_on_every_task,
             test_scancel_mid_job_leaves_nothing_behind,
             test_the_same_command_resumes_the_cancelled_job]
    passed = failed = 0
    try:
        t0 = time.monotonic()
        CL.up()
        print("ok   munged, slurmctld and slurmd up, node %s idle (%.2f s)"
              % (CL.node, time.monotonic() - t0), flush=True)
        for t in tests:
            t0 = time.monotonic()
            try:
                t()
                passed += 1
                print("ok   %s (%.2f s)" % (t.__name__, time.monotonic() - t0), flush=True)
            except Exception as e:
                failed += 1
                print("FAIL %s: %s" % (t.__name__, e), flush=True)
                for name in ("slurmctld.log", "slurmd.log"):
                    print("---- %s\n%s" % (name, CL.tail(name)), flush=True)
    except Exception as e:
        failed += 1
        print("FAIL starting Slurm: %s" % e, flush=True)
        for name in ("munged.out", "slurmctld.out", "slurmd.out"):
            print("---- %s\n%s" % (name, CL.tail(name)), flush=True)
    finally:
        t0 = time.monotonic()
        left = CL.down()
        atexit.unregister(CL.down)
        print("     daemons stopped (%.2f s)" % (time.monotonic() - t0), flush=True)
    if left:
        failed += 1
        print("FAIL processes left behind at the end (killed): %r" % left, flush=True)
    print("%d passed, %d failed, %d not run; wall time %.1f s"
          % (passed, failed, len(tests) - passed - failed, time.monotonic() - t_start))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
