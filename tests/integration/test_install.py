"""cmake --install gives a working zpipe: installed binaries find the
shipped plugins, and the plugin from plugins/README.md, built outside the
tree with pkg-config exactly as the README says, loads and runs in a job."""
import os
import re
import subprocess

import zptest
from zptest import check, run


def _install():
    prefix = os.path.join(zptest.tmpdir(), "prefix")
    r = run(["cmake", "--install", zptest.BUILD, "--prefix", prefix],
            capture_output=True, timeout=120)
    check(r.returncode == 0, r.stderr.decode())
    return prefix


def test_install_layout_and_shipped_plugins_by_name():
    prefix = _install()
    libdir = [d for d in ("lib", "lib64", "lib/x86_64-linux-gnu")
              if os.path.exists(os.path.join(prefix, d, "pkgconfig", "zpipe.pc"))]
    check(libdir, "no zpipe.pc installed")
    for b in ("zpipe", "zpipe-ventilator", "zpipe-worker", "zpipe-executor",
              "zpipe-sink"):
        check(os.access(os.path.join(prefix, "bin", b), os.X_OK), "missing %s" % b)
    check(os.path.exists(os.path.join(prefix, "include", "zpipe", "plugin.h")), "no header")
    # The wire contract and its guide, for clients in other languages.
    check(os.path.exists(os.path.join(prefix, "share", "zpipe", "zpipe.proto")), "no .proto")
    check(os.path.exists(os.path.join(prefix, "share", "doc", "zpipe", "protocol.md")),
          "no protocol.md")
    env = dict(os.environ)
    env.pop("ZPIPE_PLUGIN_PATH", None)
    r = run([os.path.join(prefix, "bin", "zpipe"), "run", "--plugin", "sha256",
             "--workers", "1", "--format", "lines"], input=b"abc\n",
            capture_output=True, env=env, timeout=60)
    check(r.returncode == 0, r.stderr.decode())
    check(r.stdout == b"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n",
          r.stdout)


def test_readme_plugin_builds_with_pkg_config_and_runs():
    prefix = _install()
    readme = open(os.path.join(zptest.SOURCE, "plugins", "README.md")).read()
    code = re.search(r"```c\n(.*?)```", readme, re.S).group(1)
    build_line = re.search(r"^cc -shared .*$", readme, re.M).group(0)
    d = zptest.tmpdir()
    with open(os.path.join(d, "upper.c"), "w") as f:
        f.write(code)
    pcdirs = [os.path.join(prefix, l, "pkgconfig")
              for l in ("lib", "lib64", "lib/x86_64-linux-gnu")]
    env = dict(os.environ, PKG_CONFIG_PATH=":".join(pcdirs))
    r = run(["sh", "-c", build_line], cwd=d, env=env, capture_output=True, timeout=60)
    check(r.returncode == 0, "%s: %s" % (build_line, r.stderr.decode()))
    zpipe = os.path.join(prefix, "bin", "zpipe")
    r = run([os.path.join(prefix, "bin", "zpipe-worker"), "--plugin", "./upper.so",
             "--describe"], cwd=d, capture_output=True, timeout=30)
    with open(os.path.join(zptest.SOURCE, "include", "zpipe", "plugin.h")) as f:
        abi = dict(re.findall(r"#define ZPIPE_ABI_(MAJOR|MINOR) (\d+)", f.read()))
    want = b"upper\t1.0\t%s.%s" % (abi["MAJOR"].encode(), abi["MINOR"].encode())
    check(r.returncode == 0 and r.stdout.startswith(want), repr(r))
    r = run([zpipe, "run", "--plugin", "./upper.so", "--format", "lines", "--ordered",
             "--workers", "2"], cwd=d, input=b"hello\nworld\n", capture_output=True,
            timeout=60)
    check(r.returncode == 0, r.stderr.decode())
    check(r.stdout == b"HELLO\nWORLD\n", r.stdout)
    # By name on ZPIPE_PLUGIN_PATH; an empty line fails as the README says.
    env = dict(os.environ, ZPIPE_PLUGIN_PATH=d)
    r = run([zpipe, "run", "--plugin", "upper", "--workers", "1"], input=b"a\n\n",
            capture_output=True, env=env, timeout=60)
    check(r.returncode == 1, "exit %d: %s" % (r.returncode, r.stderr.decode()))
    check(b'"error":"empty input"' in r.stdout, r.stdout)


def test_python_package_installed_and_its_pool_runs():
    """The zpipe package lands in PREFIX/lib/python3.X/dist-packages (on
    Debian's sys.path for /usr/local) and its Pool finds PREFIX/bin."""
    prefix = _install()
    import glob
    pkgs = glob.glob(os.path.join(prefix, "lib", "python3*", "dist-packages",
                                  "zpipe", "__init__.py"))
    check(len(pkgs) == 1, "zpipe package not installed: %s" % pkgs)
    check(os.path.exists(os.path.join(os.path.dirname(pkgs[0]),
                                      "zpipe_pb2.py")), "no zpipe_pb2")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ZPIPE_") and k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(pkgs[0]))
    code = ("import zpipe, zpipe.zpipe_pb2, operator\n"
            "with zpipe.Pool(1) as p:\n"
            "    print(p.starmap(operator.mul, [(6, 7)])[0],"
            " zpipe.cluster.find_bin_dir())\n")
    r = run(["/usr/bin/python3", "-c", code], capture_output=True, env=env,
            cwd="/", timeout=60)
    check(r.returncode == 0, r.stderr.decode()[-2000:])
    check(r.stdout.decode().split() == ["42", os.path.join(prefix, "bin")],
          r.stdout)


if __name__ == "__main__":
    zptest.main([
        test_install_layout_and_shipped_plugins_by_name,
        test_readme_plugin_builds_with_pkg_config_and_runs,
        test_python_package_installed_and_its_pool_runs,
    ])
