"""The plugin kit end to end: `zpipe plugin new` makes a folder that builds
outside the tree against an installed zpipe (with its CMakeLists.txt and
with its Makefile, through pkg-config), passes its own test.sh, passes
`zpipe plugin check` and runs in real jobs; `zpipe plugin check` refuses
what a worker refuses, with the worker's message, reports a plugin's crash
with the input that caused it, and exits 2 on bad usage."""
import os
import re
import shutil
import stat

import zptest
from zptest import Cluster, check, read_jsonl, run

_kit = {}


def _prefix():
    """zpipe installed once into a temporary prefix."""
    if "prefix" not in _kit:
        prefix = os.path.join(zptest.tmpdir(), "prefix")
        r = run(["cmake", "--install", zptest.BUILD, "--prefix", prefix],
                capture_output=True, timeout=120)
        check(r.returncode == 0, r.stderr.decode())
        check(os.path.exists(os.path.join(prefix, "share", "doc", "zpipe", "plugins.md")),
              "docs/plugins.md is not installed")
        _kit["prefix"] = prefix
    return _kit["prefix"]


def _env():
    prefix = _prefix()
    pcdirs = [os.path.join(prefix, l, "pkgconfig")
              for l in ("lib", "lib64", "lib/x86_64-linux-gnu")]
    env = dict(os.environ, PKG_CONFIG_PATH=":".join(pcdirs),
               PATH=os.path.join(prefix, "bin") + ":" + os.environ["PATH"])
    env.pop("ZPIPE_PLUGIN_PATH", None)
    return env


def _zpipe():
    return os.path.join(_prefix(), "bin", "zpipe")


def _hello():
    """A fresh `zpipe plugin new hello` in a folder outside the tree."""
    if "hello" not in _kit:
        d = zptest.tmpdir()
        check(not os.path.abspath(d).startswith(os.path.abspath(zptest.SOURCE)),
              "temporary folder inside the tree")
        r = run([_zpipe(), "plugin", "new", "hello"], cwd=d, env=_env(),
                capture_output=True, timeout=30)
        check(r.returncode == 0, "plugin new: %r" % (r,))
        _kit["hello"] = os.path.join(d, "hello")
    return _kit["hello"]


def _check(args, cwd=None):
    return run([_zpipe(), "plugin", "check"] + args, cwd=cwd, env=_env(),
               capture_output=True, timeout=60)


def test_new_writes_the_folder():
    h = _hello()
    names = sorted(os.listdir(h))
    check(names == ["CMakeLists.txt", "Makefile", "README.md", "hello.c", "test.sh"],
          names)
    check(os.stat(os.path.join(h, "test.sh")).st_mode & stat.S_IXUSR,
          "test.sh is not executable")
    src = open(os.path.join(h, "hello.c")).read()
    for want in ('.name = "hello"', "zpipe_config(host", "zpipe_init_fail(",
                 "zpipe_append(call", ".fini = s_fini", "ZPIPE_PLUGIN_HELLO_GREETING"):
        check(want in src, "hello.c lacks %s" % want)
    check("@NAME" not in "".join(open(os.path.join(h, n)).read() for n in names),
          "a placeholder was left unexpanded")
    cml = open(os.path.join(h, "CMakeLists.txt")).read()
    check("find_package(PkgConfig" in cml and "pkg_check_modules(ZPIPE REQUIRED zpipe)"
          in cml, cml)
    mk = open(os.path.join(h, "Makefile")).read()
    check("$(PKG_CONFIG) --cflags zpipe" in mk, "Makefile does not use pkg-config")


def test_new_refuses_a_busy_folder_and_bad_names():
    d = zptest.tmpdir()
    os.mkdir(os.path.join(d, "busy"))
    open(os.path.join(d, "busy", "keep.txt"), "w").close()
    r = run([_zpipe(), "plugin", "new", "busy", "--dir", d], capture_output=True,
            timeout=30)
    check(r.returncode == 3 and b"not empty" in r.stderr, repr(r))
    check(os.listdir(os.path.join(d, "busy")) == ["keep.txt"], "wrote into a busy folder")
    # An empty folder is fine; --dir is made when missing.
    os.mkdir(os.path.join(d, "empty"))
    r = run([_zpipe(), "plugin", "new", "empty", "--dir", d], capture_output=True,
            timeout=30)
    check(r.returncode == 0, repr(r))
    r = run([_zpipe(), "plugin", "new", "x_1", "--dir", os.path.join(d, "sub")],
            capture_output=True, timeout=30)
    check(r.returncode == 0 and os.path.exists(os.path.join(d, "sub", "x_1", "x_1.c")),
          repr(r))
    for bad in (["bad-name"], ["a.b"], ["x" * 65], [""], [], ["a", "b"]):
        r = run([_zpipe(), "plugin", "new"] + bad + ["--dir", d], capture_output=True,
                timeout=30)
        check(r.returncode == 2, "%r: %r" % (bad, r))


def test_builds_with_cmake_and_make_against_the_install():
    h = _hello()
    r = run(["cmake", "-S", h, "-B", os.path.join(h, "build")], env=_env(),
            capture_output=True, timeout=120)
    check(r.returncode == 0, r.stdout.decode() + r.stderr.decode())
    r = run(["cmake", "--build", os.path.join(h, "build")], env=_env(),
            capture_output=True, timeout=120)
    check(r.returncode == 0, r.stdout.decode() + r.stderr.decode())
    check(os.path.exists(os.path.join(h, "build", "hello.so")), "no build/hello.so")
    r = run(["make", "-C", h], env=_env(), capture_output=True, timeout=120)
    check(r.returncode == 0, r.stdout.decode() + r.stderr.decode())
    # The include flag came from the installed zpipe.pc, not the tree.
    check(_prefix().encode() in r.stdout or b"pkgconfig/../../include" in r.stdout,
          r.stdout)
    mode = os.stat(os.path.join(h, "hello.so")).st_mode
    check(not mode & (stat.S_IWGRP | stat.S_IWOTH), "hello.so is writable by others")


def test_its_own_test_sh_passes():
    h = _hello()
    for extra in ({}, {"PLUGIN": "build/hello.so"}):
        if extra and not os.path.exists(os.path.join(h, "build", "hello.so")):
            raise AssertionError("no CMake build to test")
        env = dict(_env(), **extra)
        r = run(["sh", "test.sh"], cwd=h, env=env, capture_output=True, timeout=180)
        out = r.stdout.decode()
        check(r.returncode == 0 and "test.sh: all passed" in out,
              "%r\n%s\n%s" % (extra, out, r.stderr.decode()[-3000:]))
        check(len(re.findall(r"^ok   ", out, re.M)) == 5, out)


def test_its_test_sh_fails_on_a_mismatch():
    h = _hello()
    d = os.path.join(zptest.tmpdir(), "hello")
    shutil.copytree(h, d, ignore=shutil.ignore_patterns("build", "*.so"))
    src = os.path.join(d, "hello.c")
    with open(src) as f:
        text = f.read()
    with open(src, "w") as f:
        f.write(text.replace('greeting = "Hello"', 'greeting = "Howdy"'))
    r = run(["sh", "test.sh"], cwd=d, env=_env(), capture_output=True, timeout=180)
    check(r.returncode != 0 and b"FAIL a job greets every line" in r.stdout,
          r.stdout.decode())


def test_check_prints_the_descriptor_and_the_calls():
    h = _hello()
    r = _check(["hello.so"], cwd=h)
    out = r.stdout.decode()
    check(r.returncode == 0, "%s\n%s" % (out, r.stderr.decode()))
    with open(os.path.join(zptest.SOURCE, "include", "zpipe", "plugin.h")) as f:
        abi = dict(re.findall(r"#define ZPIPE_ABI_(MAJOR|MINOR) (\d+)", f.read()))
    for want in (r"^plugin +hello$", r"^version +0\.1\.0$", r"^description +greets",
                 r"^abi +%s\.%s " % (abi["MAJOR"], abi["MINOR"]),
                 r"^struct_size +\d+", r"^callbacks +process; optional: init yes, fini yes, reducer no$",
                 r'output +"Hello, hello"', r'input #2 +"" \(0 bytes\)',
                 r"status +ZPIPE_INVALID", r'error +"empty input: nobody to greet"',
                 r"time +\d+ us", r"fini ran"):
        check(re.search(want, out, re.M), "no %r in:\n%s" % (want, out))
    # Inputs and settings of its own.
    r = _check(["./hello.so", "--input", "a", "--input", "b", "--config", "greeting=Yo"],
               cwd=h)
    out = r.stdout.decode()
    check(r.returncode == 0 and '"Yo, a"' in out and '"Yo, b"' in out
          and "input #3" not in out, out)
    # A bad setting fails init: refused like a worker refuses it.
    r = _check(["hello.so", "--config", "greeting="], cwd=h)
    check(r.returncode == 3 and b"greeting must be 1 to 64 bytes" in r.stderr, repr(r))


def test_runs_in_a_job_and_from_a_workers_plugin_dir():
    h = _hello()
    r = run([_zpipe(), "run", "--plugin", "./hello.so", "--workers", "2", "--format",
             "lines", "--ordered"], cwd=h, env=_env(), input=b"a\nb\nc\n",
            capture_output=True, timeout=60)
    check(r.returncode == 0, r.stderr.decode())
    check(r.stdout == b"Hello, a\nHello, b\nHello, c\n", r.stdout)
    # make install into a worker's --plugin-dir; the worker loads it by
    # scanning the folder, and a job naming "hello" runs there.
    plugdir = os.path.join(zptest.tmpdir(), "plugins")
    r = run(["make", "-C", h, "install", "PLUGINDIR=" + plugdir], env=_env(),
            capture_output=True, timeout=60)
    check(r.returncode == 0, r.stdout.decode() + r.stderr.decode())
    saved = zptest.BIN
    zptest.BIN = os.path.join(_prefix(), "bin")
    # A plugin beside it whose init fails is refused and skipped there
    # (workers initialise only in their executors, but a folder's plugins
    # are still checked one by one, so one bad file stops nothing).
    bad = os.path.join(plugdir, "fx_init_fails.so")
    shutil.copy(os.path.join(zptest.FIXTURES, "fx_init_fails.so"), bad)
    os.chmod(bad, 0o644)
    try:
        c = Cluster()
        c.worker(plugins=(), args=["--plugin-dir", plugdir], name="kit")
        inp = os.path.join(c.dir, "in.txt")
        with open(inp, "w") as f:
            f.write("".join("n%d\n" % i for i in range(100)))
        v = c.ventilator("hello", inp)
        try:
            rc = v.wait(60)
        except Exception:
            c.dump_logs()
            raise
        check(rc == 0, "ventilator exit %d" % rc)
        recs = read_jsonl(c.output)
        check(len(recs) == 100, "%d records" % len(recs))
        check(all(r["status"] == "ok" and r["output"] == "Hello, n%d" % r["task"]
                  and r["worker"] == "kit" for r in recs), recs[:3])
        with open(os.path.join(c.dir, "worker-kit.log"), "rb") as f:
            log = f.read()
        check(b"plugin refused: " + bad.encode() in log, log[-2000:])
    finally:
        zptest.BIN = saved
    # Named on the command line, the same plugin stops the worker (exit 3)
    # once its first executor cannot initialise it, with both messages.
    r = run([os.path.join(zptest.BIN, "zpipe-worker"), "--ventilator",
             "ipc://" + os.path.join(zptest.tmpdir(), "v"), "--sink",
             "ipc://" + os.path.join(zptest.tmpdir(), "s"), "--plugin",
             os.path.join(zptest.FIXTURES, "fx_init_fails.so")],
            capture_output=True, timeout=30)
    check(r.returncode == 3 and b"init failed" in r.stderr and
          b"could not initialise the plugins" in r.stderr, repr(r))


def _worker_refusal(path):
    r = run([os.path.join(_prefix(), "bin", "zpipe-worker"), "--plugin", path,
             "--describe"], env=_env(), capture_output=True, timeout=30)
    check(r.returncode == 3, repr(r))
    m = re.search(r"plugin refused: (.*)$", r.stderr.decode(), re.M)
    check(m, r.stderr)
    return m.group(1)


def test_check_refuses_what_a_worker_refuses_with_its_message():
    fixtures = {
        "fx_bad_major.so": "built for plugin ABI 2.0, this host speaks major 1",
        "fx_newer_minor.so": "newer than this host's",
        "fx_no_process.so": "has no process callback",
        "fx_init_fails.so": "init failed",
    }
    for name, reason in fixtures.items():
        path = os.path.join(zptest.FIXTURES, name)
        r = _check([path])
        err = r.stderr.decode()
        check(r.returncode == 3, "%s: exit %d\n%s" % (name, r.returncode, err))
        check(reason in err, "%s: %r not in %s" % (name, reason, err))
        worker_says = _worker_refusal(path)
        check("zpipe plugin check: plugin refused: " + worker_says in err,
              "%s: worker says %r, check says %r" % (name, worker_says, err))
        check(b"plugin " not in r.stdout, "%s: a descriptor was printed" % name)
    # The file-mode rule too: a group-writable copy is refused.
    d = zptest.tmpdir()
    shutil.copy(os.path.join(_hello(), "hello.so"), os.path.join(d, "hello.so"))
    os.chmod(os.path.join(d, "hello.so"), 0o775)
    r = _check([os.path.join(d, "hello.so")])
    check(r.returncode == 3 and b"group-writable" in r.stderr, repr(r))
    r = _check([os.path.join(d, "nosuch.so")])
    check(r.returncode == 3 and b"no such plugin file" in r.stderr, repr(r))


def test_check_reports_a_crash_with_its_input():
    crash = os.path.join(zptest.FIXTURES, "fx_crash.so")
    # Without a crashing input every call returns.
    r = _check([crash])
    check(r.returncode == 0, r.stdout.decode())
    r = _check([crash, "--input", "fine", "--input", "segv", "--input", "abort",
                "--input", "after"])
    out = r.stdout.decode()
    check(r.returncode == 1, "exit %d\n%s" % (r.returncode, out))
    check("crashed with SIGSEGV on input #2" in out, out)
    check("crashed with SIGABRT on input #3" in out, out)
    # The inputs around the crashes still ran, in fresh children.
    check('output     "fine"' in out and 'output     "after"' in out, out)
    check(re.search(r"4 inputs: 2 calls returned, 2 crashed", out), out)
    # A hang is cut at --timeout-ms and named.
    r = _check([crash, "--input", "sleep", "--timeout-ms", "300"])
    check(r.returncode == 1 and b"timed out after 300 ms on input #1" in r.stdout,
          repr(r))


def test_check_bad_usage_exits_2():
    crash = os.path.join(zptest.FIXTURES, "fx_crash.so")
    for args in ([], [crash, crash], [crash, "--config", "novalue"],
                 [crash, "--config", "=x"], [crash, "--no-such-option"],
                 [crash, "--timeout-ms", "soon"]):
        r = _check(args)
        check(r.returncode == 2, "%r: exit %d %s" % (args, r.returncode, r.stderr))
    r = run([_zpipe(), "plugin"], capture_output=True, timeout=30)
    check(r.returncode == 2, repr(r))
    r = run([_zpipe(), "plugin", "frobnicate"], capture_output=True, timeout=30)
    check(r.returncode == 2, repr(r))
    r = run([_zpipe(), "plugin", "check", "--help"], capture_output=True, timeout=30)
    check(r.returncode == 0 and b"Usage: zpipe plugin check" in r.stdout, repr(r))


if __name__ == "__main__":
    zptest.main([
        test_new_writes_the_folder,
        test_new_refuses_a_busy_folder_and_bad_names,
        test_builds_with_cmake_and_make_against_the_install,
        test_its_own_test_sh_passes,
        test_its_test_sh_fails_on_a_mismatch,
        test_check_prints_the_descriptor_and_the_calls,
        test_runs_in_a_job_and_from_a_workers_plugin_dir,
        test_check_refuses_what_a_worker_refuses_with_its_message,
        test_check_reports_a_crash_with_its_input,
        test_check_bad_usage_exits_2,
    ])
