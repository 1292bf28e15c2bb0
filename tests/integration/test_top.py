"""zpipe top: a live view of a running cluster in a real terminal (a pty):
workers, a job's progress, rate, ETA and failures (from the sink); q and
Ctrl-C quit and the terminal is left as it was."""
import os
import pty
import re
import select
import subprocess
import termios
import time

import zptest
from zptest import binary, check, run, start


def _service():
    c = zptest.Cluster()
    intake = "ipc://%s/intake" % c.dir
    start([binary("zpipe-ventilator"), "--intake", intake, "--bind", c.dispatch,
           "--sink", c.control], stderr=c._log("ventilator"))
    c.worker(["spin", "fx_fail"], name="alpha")
    c.worker(["spin", "fx_fail"], name="beta")
    return c, intake


def _submit(intake, plugin, job, lines):
    r = run([binary("zpipe"), "submit", "--ventilator", intake, "--plugin", plugin,
             "--job", job], input=b"".join(l + b"\n" for l in lines),
            capture_output=True, timeout=60)
    check(r.returncode == 0, "submit %s: %r" % (job, r.stderr))


def test_once_shows_workers_progress_and_rates():
    env = dict(os.environ, ZPIPE_PLUGIN_PATH=zptest.FIXTURES)
    os.environ.update(env)
    c, intake = _service()
    _submit(intake, "fx_fail", "failing", [b"fail1", b"ok2", b"fail3"])
    r = run([binary("zpipe"), "wait", "--sink", c.control, "failing"],
            capture_output=True, timeout=60)
    _submit(intake, "spin", "slow", [b"3000"] * 3000)  # ~4.5 s on 2 workers
    time.sleep(0.5)
    r = run([binary("zpipe"), "top", "--ventilator", intake, "--sink", c.control,
             "--once"], capture_output=True, timeout=30)
    out = r.stdout.decode()
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr[-500:]))
    check("\033[" not in out, "--once wrote screen control codes")
    rates = {}
    for name in ("alpha", "beta"):
        m = re.search(r"^%s\s+%s\s+\S+\s+\d+\s+(\d+)\s+(\d+)" % (name, name), out, re.M)
        check(m, "worker %s row: %s" % (name, out))
        rates[name] = int(m.group(1))
    check(sum(rates.values()) > 0, "no worker rate: %s" % out)
    m = re.search(r"^total: (\d+) tasks/s over 2 workers", out, re.M)
    check(m and abs(int(m.group(1)) - sum(rates.values())) <= 2, "total: %s" % out)
    m = re.search(r"^slow\s+spin\s+\[[#.]{20}\]\s+([\d.]+)%\s+(\d+)\s+(\S+)\s+\d+\s+0$",
                  out, re.M)  # ... IN FLIGHT, FAILED (from the sink) 0
    check(m and 0 < float(m.group(1)) < 100 and int(m.group(2)) > 0
          and re.match(r"\d+[sm]$", m.group(3)), "job row: %s" % out)
    print("    --once: 2 workers (tasks/s %r), job 'slow' at %s%% at %s tasks/s, "
          "ETA %s" % (rates, m.group(1), m.group(2), m.group(3)))


def test_in_a_terminal_q_quits_and_restores_the_terminal():
    c, intake = _service()
    _submit(intake, "spin", "live", [b"2000"] * 4000)
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    p = subprocess.Popen([binary("zpipe"), "top", "--ventilator", intake,
                          "--interval-ms", "300"], stdin=slave, stdout=slave,
                         stderr=subprocess.PIPE)
    screen = b""
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            screen += os.read(master, 65536)
    if p.poll() is not None:
        raise AssertionError("top exited by itself: %r" % p.stderr.read())
    frames = screen.count(b"\033[H\033[2J")
    check(frames >= 5, "%d frames in 3 s at 300 ms" % frames)
    # The last whole frame (the newest may still be arriving).
    last = screen.split(b"\033[H\033[2J")[-2].decode(errors="replace")
    check("live" in last and "alpha" in last and "beta" in last, last)
    os.write(master, b"q")
    t1 = time.monotonic()
    rc = p.wait(5)
    quit_s = time.monotonic() - t1
    check(rc == 0 and quit_s < 1.5, "q: exit %s after %.1f s" % (rc, quit_s))
    check(termios.tcgetattr(slave) == before, "the terminal was left changed")
    # Ctrl-C (SIGINT) also ends it cleanly.
    p = subprocess.Popen([binary("zpipe"), "top", "--ventilator", intake],
                         stdin=slave, stdout=slave, stderr=subprocess.PIPE)
    time.sleep(0.8)
    p.send_signal(2)
    rc = p.wait(5)
    check(rc == 0 and termios.tcgetattr(slave) == before, "Ctrl-C: exit %s" % rc)
    os.close(master)
    os.close(slave)
    print("    %d frames in 3 s; q quit in %.2f s; Ctrl-C too; terminal restored"
          % (frames, quit_s))


def test_no_ventilator_is_a_clear_error():
    d = zptest.tmpdir()
    r = run([binary("zpipe"), "top", "--ventilator", "ipc://%s/none" % d, "--once",
             "--interval-ms", "100"], capture_output=True, timeout=30)
    check(r.returncode == 3 and b"no answer from" in r.stdout, repr(r))
    r = run([binary("zpipe"), "top", "--interval-ms", "5"], capture_output=True,
            timeout=30)
    check(r.returncode == 2, "bad interval: %r" % r.returncode)


if __name__ == "__main__":
    zptest.main([
        test_once_shows_workers_progress_and_rates,
        test_in_a_terminal_q_quits_and_restores_the_terminal,
        test_no_ventilator_is_a_clear_error,
    ])
