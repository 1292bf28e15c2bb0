"""libczmq and libmicrohttpd are loaded on demand (common/zp_dyn.h): no
binary links them, a process maps them only when a feature needs them
(certificate files; --metrics), and a library that cannot be loaded is a
clear error and a non-zero exit, never a crash (simulated with the
test-only ZPIPE_TEST_LIBCZMQ / ZPIPE_TEST_LIBMHD overrides)."""
import os
import subprocess
import time

import zptest
from zptest import binary, check, run
from zpmetrics import fetch, metrics_url, parse

BINARIES = ("zpipe", "zpipe-ventilator", "zpipe-sink", "zpipe-worker")
LAZY = ("libczmq", "libmicrohttpd")
MISSING = "libzp-test-missing.so.0"


def _needed(path):
    """The NEEDED entries of an ELF file's dynamic section (readelf -d)."""
    r = run(["readelf", "-d", path], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, r.stderr)
    return [line.split("[", 1)[1].split("]", 1)[0]
            for line in r.stdout.splitlines() if "(NEEDED)" in line]


def _mapped(pid):
    """Shared objects mapped into process pid (/proc/PID/maps)."""
    with open("/proc/%d/maps" % pid) as f:
        return {os.path.basename(l.split()[-1]) for l in f
                if len(l.split()) >= 6 and ".so" in l.split()[-1]}


def _has(libs, prefix):
    return any(l.startswith(prefix + ".so") for l in libs)


def _keygen(d, name):
    r = run([binary("zpipe"), "keygen", "--dir", d, name], capture_output=True,
            timeout=30)
    check(r.returncode == 0, "keygen: %r" % r.stderr)
    return os.path.join(d, name + ".key_secret")


def test_no_binary_links_czmq_or_microhttpd():
    for b in BINARIES:
        needed = _needed(binary(b))
        check(any(n.startswith("libzmq.so") for n in needed),
              "%s: no libzmq in NEEDED %r (readelf parse?)" % (b, needed))
        for lib in LAZY:
            check(not _has(needed, lib), "%s links %s: %r" % (b, lib, needed))


def test_loaded_only_by_the_feature_that_needs_it():
    plain = zptest.Cluster()
    with_metrics = zptest.Cluster(sink_args=("--metrics", "127.0.0.1:0"))
    url = metrics_url(with_metrics.logs[0])
    parse(fetch(url))  # served, so libmicrohttpd is loaded and working
    end = time.monotonic() + 10
    while not os.path.exists(plain.results[len("ipc://"):]):
        check(time.monotonic() < end and plain.sink.poll() is None,
              "the plain sink did not start")
        time.sleep(0.02)
    libs = _mapped(plain.sink.pid)
    check(_has(libs, "libzmq"), "no libzmq in the sink's maps: %r" % libs)
    for lib in LAZY:
        check(not _has(libs, lib), "a sink without --metrics maps %s" % lib)
    libs = _mapped(with_metrics.sink.pid)
    check(_has(libs, "libmicrohttpd"), "--metrics sink maps %r" % libs)
    check(not _has(libs, "libczmq"), "--metrics sink maps libczmq")
    # A worker given a certificate loads libczmq to read it.
    secret = _keygen(zptest.tmpdir(), "w")
    w = plain.worker(args=("--curve-secret", secret))
    end = time.monotonic() + 10
    while not _has(_mapped(w.pid), "libczmq"):
        check(time.monotonic() < end and w.poll() is None,
              "a worker with --curve-secret never mapped libczmq")
        time.sleep(0.02)


def _children(ppid):
    out = []
    for name in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % name) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == ppid:
                    out.append(int(name))
        except (OSError, ValueError, IndexError):
            pass
    return out


def test_the_executor_loads_no_zeromq():
    """zpipe-executor (a worker's executor) links neither libzmq nor what it
    brings, and a running worker's executor maps none of it: its start is
    on the way to a job's first result."""
    needed = _needed(binary("zpipe-executor"))
    check(needed and not any(n.startswith(("libzmq", "libsodium", "libstdc++"))
                             for n in needed),
          "zpipe-executor NEEDED %r" % needed)
    c = zptest.Cluster()
    w = c.worker()
    end = time.monotonic() + 10
    execs = []
    while not execs:
        check(time.monotonic() < end, "no executor under the worker")
        execs = [p for p in _children(w.pid)
                 if os.path.basename(os.readlink("/proc/%d/exe" % p)) ==
                 "zpipe-executor"]
        time.sleep(0.02)
    libs = _mapped(execs[0])
    check(not _has(libs, "libzmq") and not _has(libs, "libsodium"),
          "the executor maps %r" % sorted(libs))
    check(_has(_mapped(w.pid), "libzmq"), "the worker has no libzmq")
    # Bad usage is usage, as for the other binaries.
    r = run([binary("zpipe-executor"), "--no-such-option"], capture_output=True,
            timeout=10)
    check(r.returncode == 2 and b"Usage: zpipe-executor" in r.stderr, r.stderr)


def _refused(argv, env, want):
    """argv fails at once with want in its stderr, by an exit, not a signal."""
    r = run(argv, env=dict(os.environ, **env), capture_output=True,
            stdin=subprocess.DEVNULL, timeout=30)
    err = r.stderr.decode(errors="replace")
    check(r.returncode > 0, "exit %d (want > 0): %s" % (r.returncode, err))
    check(want in err and MISSING in err, "stderr %r lacks %r" % (err, want))


def test_missing_microhttpd_is_a_clear_error():
    d = zptest.tmpdir()
    env = {"ZPIPE_TEST_LIBMHD": MISSING}
    _refused([binary("zpipe-sink"), "--results", "ipc://%s/r" % d,
              "--control", "ipc://%s/c" % d, "--publish", "ipc://%s/p" % d,
              "--output", os.path.join(d, "out"), "--metrics", "127.0.0.1:0"],
             env, "--metrics needs libmicrohttpd.so.12: ")
    _refused([binary("zpipe-worker"), "--ventilator", "ipc://%s/d" % d,
              "--sink", "ipc://%s/r" % d, "--plugin", "echo",
              "--metrics", "127.0.0.1:0"],
             env, "--metrics needs libmicrohttpd.so.12: ")
    # zpipe run checks it before it starts a sink (which its supervisor
    # would start again and again).
    _refused([binary("zpipe"), "run", "--plugin", "echo", "--web",
              "127.0.0.1:0"], env, "zpipe run: --web needs libmicrohttpd.so.12: ")


def test_missing_czmq_is_a_clear_error():
    d = zptest.tmpdir()
    secret = _keygen(d, "w")
    env = {"ZPIPE_TEST_LIBCZMQ": MISSING}
    _refused([binary("zpipe"), "keygen", "--dir", d, "other"], env,
             "zpipe keygen needs libczmq.so.4: ")
    _refused([binary("zpipe-worker"), "--ventilator", "ipc://%s/d" % d,
              "--sink", "ipc://%s/r" % d, "--plugin", "echo",
              "--curve-secret", secret],
             env, "--curve-secret needs libczmq.so.4: ")
    # Neither variable touches a run that needs neither library.
    r = run([binary("zpipe"), "run", "--plugin", "echo", "--workers", "1",
             "--format", "lines"], input=b"a\nb\n", capture_output=True,
            env=dict(os.environ, ZPIPE_TEST_LIBCZMQ=MISSING,
                     ZPIPE_TEST_LIBMHD=MISSING), timeout=60)
    check(r.returncode == 0, r.stderr.decode())
    check(sorted(r.stdout.splitlines()) == [b"a", b"b"], r.stdout)


if __name__ == "__main__":
    zptest.main([test_no_binary_links_czmq_or_microhttpd,
                 test_loaded_only_by_the_feature_that_needs_it,
                 test_the_executor_loads_no_zeromq,
                 test_missing_microhttpd_is_a_clear_error,
                 test_missing_czmq_is_a_clear_error])
