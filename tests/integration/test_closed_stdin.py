"""A closed-pipe stdin costs the ventilator nothing. poll(2) reports POLLHUP
on a pipe whose writer has closed at once and forever, so a descriptor
polled with no events asked for (or after its end) turns the loop into a
busy loop. Each test runs 3,000 tasks of 1 ms of CPU (spin) on 2 workers
with stdin a finished pipe and checks that the ventilator's CPU time
stays under 10 % of the job's wall time, and that every record is there
exactly once with the right output."""
import os
import subprocess
import time

import zptest
from zptest import binary, check, read_jsonl

N_TASKS = 3000
MAX_SHARE = 0.10


def _lines():
    """Distinct 1 ms-ish payloads, so a wrong output is seen."""
    return ["%d" % (900 + i % 200) for i in range(N_TASKS)]


def _input(d):
    path = os.path.join(d, "in.txt")
    with open(path, "w") as f:
        f.write("".join(l + "\n" for l in _lines()))
    return path


def _check_records(recs):
    """Lost, duplicated, unexpected and wrong records against the input."""
    want = _lines()
    seen = {}
    dup = unexpected = wrong = 0
    for rec in recs:
        t = rec.get("task")
        if not isinstance(t, int) or not 0 <= t < N_TASKS:
            unexpected += 1
            continue
        if t in seen:
            dup += 1
            continue
        seen[t] = rec
        if rec.get("status") != "ok" or rec.get("output") != want[t]:
            wrong += 1
    lost = N_TASKS - len(seen)
    check((lost, dup, unexpected, wrong) == (0, 0, 0, 0),
          "lost %d, duplicated %d, unexpected %d, wrong %d"
          % (lost, dup, unexpected, wrong))


def _stat(pid):
    """(ppid, comm, utime + stime in seconds) of a live process, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            raw = f.read()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1:raw.rindex(")")]
    st = raw.rsplit(")", 1)[1].split()
    if st[0] == "Z":
        return None
    hz = os.sysconf("SC_CLK_TCK")
    return int(st[1]), comm, (int(st[11]) + int(st[12])) / hz


def _find_child(ppid, comm):
    for name in os.listdir("/proc"):
        if name.isdigit():
            s = _stat(int(name))
            if s and s[0] == ppid and s[1] == comm:
                return int(name)
    return None


def _run_sampled(cmd, stdin, timeout=120):
    """Runs zpipe run; returns (exit code, wall seconds, the ventilator's
    CPU seconds, stderr). The ventilator's CPU time is read from /proc
    every 10 ms while it runs: the last reading misses at most 10 ms."""
    t0 = time.monotonic()
    p = zptest.start(cmd, stdin=stdin, stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE)
    if stdin == subprocess.PIPE:
        p.stdin.close()  # the writer is gone before the job starts
    vent, cpu = None, 0.0
    comm = "zpipe-ventilator"[:15]  # the kernel keeps 15 characters
    while p.poll() is None:
        if time.monotonic() - t0 > timeout:
            p.kill()
            raise AssertionError("zpipe run took over %d s" % timeout)
        if vent is None:
            vent = _find_child(p.pid, comm)
        if vent is not None:
            s = _stat(vent)
            if s:
                cpu = s[2]
        time.sleep(0.01)
    err = p.stderr.read()
    wall = time.monotonic() - t0
    check(vent is not None, "never saw the ventilator running")
    return p.returncode, wall, cpu, err


def _check_share(wall, cpu, what):
    print("  %s: ventilator CPU %.3f s in %.3f s of wall (%.1f %%)"
          % (what, cpu, wall, 100 * cpu / wall), flush=True)
    check(cpu < MAX_SHARE * wall,
          "%s: the ventilator used %.3f s of CPU in %.3f s (over %d %%): "
          "a busy loop" % (what, cpu, wall, MAX_SHARE * 100))


def test_run_input_file_with_closed_stdin():
    """zpipe run --input FILE, stdin a pipe whose writer closed at once."""
    d = zptest.tmpdir()
    out = os.path.join(d, "out.jsonl")
    rc, wall, cpu, err = _run_sampled(
        [binary("zpipe"), "run", "--plugin", "spin", "--workers", "2",
         "--input", _input(d), "--output", out, "--no-progress"],
        subprocess.PIPE)
    check(rc == 0, "exit %d: %s" % (rc, err.decode(errors="replace")))
    _check_records(read_jsonl(out))
    _check_share(wall, cpu, "--input FILE, stdin closed")


def test_cat_file_into_run():
    """cat FILE | zpipe run: stdin read to its end, then a finished pipe."""
    d = zptest.tmpdir()
    out = os.path.join(d, "out.jsonl")
    with open(_input(d), "rb") as f:
        cat = subprocess.Popen(["cat"], stdin=f, stdout=subprocess.PIPE)
    try:
        rc, wall, cpu, err = _run_sampled(
            [binary("zpipe"), "run", "--plugin", "spin", "--workers", "2",
             "--output", out, "--no-progress"], cat.stdout)
    finally:
        cat.stdout.close()
        cat.wait()
    check(rc == 0, "exit %d: %s" % (rc, err.decode(errors="replace")))
    _check_records(read_jsonl(out))
    _check_share(wall, cpu, "cat FILE | zpipe run")


def test_daemons_input_file_with_closed_stdin():
    """The daemons started by hand (as a service cluster is): the
    ventilator's own rusage from wait4, exact."""
    c = zptest.Cluster()
    try:
        for _ in range(2):
            c.worker(plugins=("spin",))
        t0 = time.monotonic()
        v = zptest.start([binary("zpipe-ventilator"), "--bind", c.dispatch,
                          "--sink", c.control, "--plugin", "spin", "--input",
                          _input(c.dir)], stdin=subprocess.PIPE,
                         stderr=c._log("ventilator"))
        v.stdin.close()
        deadline = t0 + 120
        while True:
            pid, status, ru = os.wait4(v.pid, os.WNOHANG)
            if pid:
                break
            check(time.monotonic() < deadline, "the ventilator did not finish")
            time.sleep(0.01)
        v.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        check(v.returncode == 0, "ventilator exit %d" % v.returncode)
        zptest.stop(c.sink)
        _check_records(read_jsonl(c.output))
        _check_share(wall, ru.ru_utime + ru.ru_stime, "daemons, stdin closed")
    except Exception:
        c.dump_logs()
        raise


if __name__ == "__main__":
    zptest.main([
        test_run_input_file_with_closed_stdin,
        test_cat_file_into_run,
        test_daemons_input_file_with_closed_stdin,
    ])
