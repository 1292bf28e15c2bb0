"""Security: CURVE on tcp:// between the real binaries (zpipe keygen's
certificates, allowed-key directories, rejected peers counted), components
that refuse to start when their authenticator is misconfigured, and plugin
directories that refuse files others could have written."""
import os
import re
import shutil
import socket
import stat
import subprocess
import time

import zptest
from zptest import binary, check, run, start, stop


def _port():
    return zptest.free_port()


def _keygen(d, *names):
    r = run([binary("zpipe"), "keygen", "--dir", d] + list(names),
            capture_output=True, timeout=30)
    check(r.returncode == 0, "keygen: %r" % r.stderr)
    return {line.split("\t")[0]: line.split("\t")[3]
            for line in r.stdout.decode().splitlines()}


def _refusals(log):
    """The exit line's counts: (unknown key, plaintext, failed handshake)."""
    with open(log, "rb") as f:
        text = f.read().decode(errors="replace")
    m = re.findall(r"CURVE refused \d+ peers: (\d+) unknown key, (\d+) "
                   r"plaintext, (\d+) failed handshake", text)
    check(m, "%s has no CURVE count line" % log)
    return tuple(int(x) for x in m[-1])


class Secure(zptest.Cluster):
    """A sink and a service ventilator on loopback tcp with CURVE; keys in
    DIR/keys, the allowed public keys in DIR/allow."""

    def __init__(self, allowed=("worker", "client", "ventilator")):
        self.dir = zptest.tmpdir()
        self.logs = []
        zptest._clusters.append(self)
        self.keys = os.path.join(self.dir, "keys")
        self.allow = os.path.join(self.dir, "allow")
        self.z85 = _keygen(self.keys, "sink", "ventilator", "worker", "client",
                           "rogue")
        os.mkdir(self.allow)
        for name in allowed:
            shutil.copy(os.path.join(self.keys, name + ".key"), self.allow)
        p = zptest.free_ports(7)
        (self.dispatch, self.results, self.control, self.publish, self.intake,
         self.sink_events, self.vent_events) = ("tcp://127.0.0.1:%d" % x
                                                for x in p)
        self.output = os.path.join(self.dir, "out.jsonl")
        os.mkdir(os.path.join(self.dir, "spool"))
        self.sink = start([binary("zpipe-sink"), "--results", self.results,
                           "--control", self.control, "--publish", self.publish,
                           "--output", self.output,
                           "--spool", os.path.join(self.dir, "spool"),
                           "--events", self.sink_events]
                          + self.secret("sink", serve=True),
                          stderr=self._log("sink"))
        self.vent = start([binary("zpipe-ventilator"), "--intake", self.intake,
                           "--bind", self.dispatch, "--sink", self.control,
                           "--events", self.vent_events]
                          + self.secret("ventilator", serve=True)
                          + ["--sink-key", self.key("sink")],
                          stderr=self._log("ventilator"))

    def key(self, name):
        return os.path.join(self.keys, name + ".key")

    def secret(self, name, serve=False):
        args = ["--curve-secret", self.key(name) + "_secret"]
        return args + (["--curve-allow", self.allow] if serve else [])

    def worker(self, key="worker", name=None, args=()):
        cmd = [binary("zpipe-worker"), "--ventilator", self.dispatch,
               "--sink", self.results, "--plugin", "echo",
               "--id", name or key]
        if key:
            cmd += self.secret(key) + ["--ventilator-key", self.key("ventilator"),
                                       "--sink-key", self.key("sink")]
        return start(cmd + list(args), stderr=self._log("worker-" + (name or key)))

    def submit(self, job, n, key="client", timeout=60, timeout_ms=20000):
        path = os.path.join(self.dir, job + ".txt")
        with open(path, "w") as f:
            f.writelines("%s-%d\n" % (job, i) for i in range(n))
        cmd = [binary("zpipe"), "submit", "--ventilator", self.intake,
               "--plugin", "echo", "--job", job, "--input", path,
               "--timeout-ms", str(timeout_ms)]
        if key:
            cmd += self.secret(key) + ["--ventilator-key", self.key("ventilator")]
        return run(cmd, capture_output=True, timeout=timeout)

    def wait(self, job, timeout_ms=60000):
        return run([binary("zpipe"), "wait", "--sink", self.control, job,
                    "--timeout-ms", str(timeout_ms)] + self.secret("client")
                   + ["--sink-key", self.key("sink")],
                   capture_output=True, timeout=timeout_ms / 1000 + 30)

    def stop_all(self):
        stop(self.vent)
        stop(self.sink)

    def records(self, job):
        return [r for r in zptest.read_jsonl(self.output) if r["job"] == job]


def _log_of(c, name):
    return os.path.join(c.dir, name + ".log")


def test_keygen_writes_czmq_certificates():
    import zmq.auth
    d = zptest.tmpdir()
    keys = _keygen(d, "alpha", "beta")
    check(sorted(keys) == ["alpha", "beta"], "names %r" % keys)
    for name, z85 in keys.items():
        pub, sec = os.path.join(d, name + ".key"), os.path.join(d, name + ".key_secret")
        check(stat.S_IMODE(os.stat(sec).st_mode) == 0o600, "secret mode")
        check(stat.S_IMODE(os.stat(pub).st_mode) == 0o644, "public mode")
        # pyzmq reads czmq's format: the same keys a Python client would use.
        p, s = zmq.auth.load_certificate(pub)
        p2, s2 = zmq.auth.load_certificate(sec)
        check(p.decode() == z85 and p2 == p and s is None and len(s2) == 40,
              "certificate of %s not as printed" % name)
    r = run([binary("zpipe"), "keygen", "--dir", d, "alpha"], capture_output=True)
    check(r.returncode == 3 and b"exists" in r.stderr, "overwrote: %r" % r.stderr)
    r = run([binary("zpipe"), "keygen", "--dir", d], capture_output=True)
    check(r.returncode == 2, "no NAME accepted")
    print("    2 keypairs written, read back by pyzmq; overwrite refused")


def test_allowed_keys_run_a_job_over_curve():
    c = Secure()
    c.worker(name="w1")
    c.worker(name="w2")
    n = 5000
    r = c.submit("ok", n)
    check(r.returncode == 0, "submit: %r" % r.stderr)
    r = c.wait("ok")
    check(r.returncode == 0, "wait: %r %r" % (r.stdout, r.stderr))
    # The Python examples speak CURVE too.
    import sys
    sys.path.insert(0, os.path.join(zptest.SOURCE, "examples", "python"))
    import consumer
    import producer
    p = producer.Producer(c.intake, "echo", curve_secret=c.key("client") + "_secret",
                          server_key=c.key("ventilator"))
    p.send([b"py-%d" % i for i in range(1000)])
    p.close()
    got = [r for r, _ in consumer.records(c.control, p.job_id,
                                          curve_secret=c.key("client") + "_secret",
                                          server_key=c.key("sink"))]
    check(sorted(r["output"] for r in got) == sorted("py-%d" % i for i in range(1000)),
          "python over CURVE: %d records" % len(got))
    c.stop_all()
    recs = c.records("ok")
    check(sorted(x["task"] for x in recs) == list(range(n)), "ids not 0..n-1")
    check(all(x["output"] == "ok-%d" % x["task"] for x in recs), "a wrong value")
    counts = _refusals(_log_of(c, "ventilator")), _refusals(_log_of(c, "sink"))
    check(counts == ((0, 0, 0), (0, 0, 0)), "refusals with allowed keys: %r" % (counts,))
    print("    %d tasks over CURVE (2 workers, zpipe submit/wait with a client "
          "key), 1,000 more from the Python producer read back by the Python "
          "consumer; 0 refusals" % n)


def test_events_over_curve_only_to_allowed_keys():
    import sys
    sys.path.insert(0, os.path.join(zptest.SOURCE, "examples", "python"))
    import events
    c = Secure()
    pubs = [(c.vent_events, c.key("ventilator")), (c.sink_events, c.key("sink"))]
    ok = events.Events(pubs, curve_secret=c.key("client") + "_secret")
    rogue = events.Events(pubs, curve_secret=c.key("rogue") + "_secret")
    plain = events.Events([(e, None) for e, _ in pubs])
    check(ok.wait_connected(), "allowed SUB not connected")
    cli = start([binary("zpipe"), "events", "--ventilator", c.vent_events,
                 "--sink", c.sink_events, "--topic", "job_done", "--count", "1",
                 "--ventilator-key", c.key("ventilator"),
                 "--sink-key", c.key("sink")] + c.secret("client"),
                stdout=subprocess.PIPE)
    time.sleep(1.5)
    c.worker(name="w1")
    r = c.submit("ev", 300)
    check(r.returncode == 0, "submit: %r" % r.stderr)
    # The two publishers' streams interleave in arrival order: the
    # ventilator's job_closed may come after the sink's job_done.
    want = ["job_closed", "job_done", "job_opened", "worker_joined"]
    got, end = [], time.monotonic() + 30
    while sorted(t for t, _ in got) != want and time.monotonic() < end:
        e = ok.recv(1000)
        if e:
            got.append(e)
    kinds = [t for t, _ in got]
    check(sorted(kinds) == want, "allowed key saw %r" % kinds)
    out, _ = cli.communicate(timeout=30)
    check(cli.returncode == 0 and b'"job_done"' in out, "zpipe events: %r" % out)
    check(rogue.recv(500) is None and plain.recv(500) is None,
          "an unknown key or a plaintext SUB got an event")
    for e in (ok, rogue, plain):
        e.close()
    c.stop_all()
    # libzmq reports a plaintext peer as a mechanism mismatch or, when it
    # closes early, as a failed handshake: both are refusals.
    counts = {n: _refusals(_log_of(c, n)) for n in ("ventilator", "sink")}
    for name, (unknown, plaintext, failed) in counts.items():
        check(unknown >= 1 and plaintext + failed >= 1,
              "%s refused %r on events" % (name, counts[name]))
    print("    events over CURVE: the allowed key saw %d events, zpipe events "
          "too; an unknown key and a plaintext SUB saw none; refused "
          "(unknown, plaintext, failed handshake): %r" % (len(got), counts))


def test_unknown_key_receives_no_task():
    c = Secure()
    rogue = c.worker(key="rogue")
    r = c.submit("j", 2000)
    check(r.returncode == 0, "submit: %r" % r.stderr)
    time.sleep(2.0)
    check(not os.path.exists(c.output) or not c.records("j"),
          "records arrived with only the unknown-key worker")
    stop(rogue)
    with open(_log_of(c, "worker-rogue"), "rb") as f:
        check(re.search(rb"stopping: 0 tasks done", f.read()),
              "the unknown-key worker did tasks")
    c.worker(name="good")
    r = c.wait("j")
    check(r.returncode == 0, "wait: %r %r" % (r.stdout, r.stderr))
    # A client with an unknown key cannot submit either.
    r = c.submit("j2", 10, key="rogue", timeout_ms=3000)
    check(r.returncode == 3, "an unknown client's submit: %r" % r.returncode)
    c.stop_all()
    recs = c.records("j")
    check(len(recs) == 2000 and {x["worker"] for x in recs} == {"good"},
          "workers %r" % {x["worker"] for x in recs})
    check(not c.records("j2"), "the unknown client's job ran")
    v, s = _refusals(_log_of(c, "ventilator")), _refusals(_log_of(c, "sink"))
    check(v[0] >= 2 and s[0] >= 1, "unknown keys not counted: %r %r" % (v, s))
    print("    unknown key: 0 tasks to the worker, no job from the client; "
          "refused: ventilator %d, sink %d unknown-key connections" % (v[0], s[0]))


def test_plaintext_peers_are_rejected_and_counted():
    import zmq
    c = Secure()
    plain = c.worker(key=None, name="plain")  # no CURVE at all
    ctx = zmq.Context()
    # Raw plaintext peers at every bound socket, each sending a message.
    socks = []
    for ep, kind in ((c.dispatch, zmq.DEALER), (c.intake, zmq.DEALER),
                     (c.results, zmq.PUSH), (c.control, zmq.DEALER)):
        s = ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(ep)
        s.send(b"\x0a\x00", zmq.NOBLOCK) if kind != zmq.PUSH else None
        socks.append(s)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(c.publish)
    # A CURVE client that has the wrong server key.
    wrong = ctx.socket(zmq.DEALER)
    wrong.setsockopt(zmq.LINGER, 0)
    pub, sec = zmq.auth.load_certificate(c.key("client") + "_secret")
    wrong.curve_publickey, wrong.curve_secretkey = pub, sec
    wrong.curve_serverkey = c.z85["rogue"].encode()
    wrong.connect(c.intake)
    c.worker(name="good")
    r = c.submit("p", 1000)
    check(r.returncode == 0, "submit: %r" % r.stderr)
    r = c.wait("p")
    check(r.returncode == 0, "wait: %r" % r.stderr)
    got = sub.poll(500)
    for s in socks + [sub, wrong]:
        s.close()
    ctx.term()
    stop(plain)
    c.stop_all()
    check(not got, "a plaintext subscriber received published results")
    recs = c.records("p")
    check({x["worker"] for x in recs} == {"good"} and len(recs) == 1000,
          "the plaintext worker got tasks")
    v, s = _refusals(_log_of(c, "ventilator")), _refusals(_log_of(c, "sink"))
    # A plaintext peer is seen as a mechanism mismatch, or (when it hangs up
    # first) as a handshake cut short: both are refusals.
    check(v[1] + v[2] >= 3 and s[1] + s[2] >= 3 and v[1] + s[1] >= 1,
          "plaintext not counted: %r %r" % (v, s))
    with open(_log_of(c, "ventilator"), "rb") as f:
        check(b"it may have a wrong server key" in f.read(),
              "the wrong server key was not reported")
    print("    plaintext peers refused: ventilator %d, sink %d; failed CURVE "
          "handshakes (a wrong server key, or cut short): %d" % (v[1], s[1], v[2]))


def test_misconfigured_authenticator_refuses_to_start():
    d = zptest.tmpdir()
    _keygen(os.path.join(d, "k"), "sink", "worker")
    k = lambda n: os.path.join(d, "k", n)
    empty, bad = os.path.join(d, "empty"), os.path.join(d, "bad")
    os.mkdir(empty)
    os.mkdir(bad)
    with open(os.path.join(bad, "x.key"), "w") as f:
        f.write("not a certificate\n")
    port = _port()
    sink = [binary("zpipe-sink"), "--results", "tcp://127.0.0.1:%d" % port,
            "--control", "tcp://127.0.0.1:%d" % _port(), "--publish", "none",
            "--output", os.devnull]
    cases = [
        (["--curve-secret", k("sink.key_secret"), "--curve-allow", d + "/none"],
         "cannot read the allowed keys"),
        (["--curve-secret", k("sink.key_secret"), "--curve-allow", empty],
         "no public certificates"),
        (["--curve-secret", k("sink.key_secret"), "--curve-allow", bad],
         "not a CURVE certificate"),
        (["--curve-secret", k("sink.key"), "--curve-allow", os.path.join(d, "k")],
         "has no secret key"),
        (["--curve-secret", k("nothing")], "No such file"),
        (["--curve-secret", k("sink.key_secret")], "needs --curve-allow"),
        (["--curve-allow", os.path.join(d, "k")], "needs --curve-secret"),
    ]
    for args, why in cases:
        r = run(sink + args, capture_output=True, timeout=30)
        check(r.returncode == 3 and why.encode() in r.stderr,
              "sink %r: rc %d, %r" % (args, r.returncode, r.stderr[-300:]))
        # Nothing was left listening.
        s = socket.socket()
        check(s.connect_ex(("127.0.0.1", port)) != 0, "a refused sink bound its port")
        s.close()
    worker = [binary("zpipe-worker"), "--ventilator", "tcp://127.0.0.1:%d" % port,
              "--sink", "tcp://127.0.0.1:%d" % port, "--plugin", "echo"]
    for args, why in [
            (["--curve-secret", k("worker.key_secret"), "--sink-key", k("sink.key")],
             "needs the server's public key"),
            (["--sink-key", k("sink.key")], "needs --curve-secret"),
            (["--curve-secret", k("worker.key_secret"), "--ventilator-key",
              "short", "--sink-key", k("sink.key")], "short")]:
        r = run(worker + args, capture_output=True, timeout=30)
        check(r.returncode == 3 and why.encode() in r.stderr,
              "worker %r: rc %d, %r" % (args, r.returncode, r.stderr[-300:]))
    print("    %d misconfigurations: each refused to start (exit 3) naming the "
          "file and reason" % (len(cases) + 3))


def test_plugins_load_only_from_plugin_dirs_and_not_writable_by_others():
    d = zptest.tmpdir()
    os.chmod(d, 0o755)
    good, other = os.path.join(d, "plugins"), os.path.join(d, "other")
    for x in (good, other):
        os.mkdir(x)
        os.chmod(x, 0o755)
    src = os.path.join(zptest.BUILD, "lib", "zpipe", "plugins")
    shutil.copy(os.path.join(src, "echo.so"), good)
    shutil.copy(os.path.join(src, "sha256.so"), good)
    shutil.copy(os.path.join(src, "spin.so"), other)
    w = binary("zpipe-worker")

    def describe(*args):
        return run([w, "--describe"] + list(args), capture_output=True, timeout=30)

    r = describe("--plugin-dir", good)
    names = sorted(l.split("\t")[0] for l in r.stdout.decode().splitlines())
    check(r.returncode == 0 and names == ["echo", "sha256"], "dir load: %r" % names)
    r = describe("--plugin-dir", good, "--plugin", os.path.join(other, "spin.so"))
    check(r.returncode == 3 and b"not in a plugin directory" in r.stderr,
          "outside path: %r" % r.stderr)
    r = describe("--plugin-dir", good, "--plugin", "spin")
    check(r.returncode == 3 and b"no plugin of that name in the plugin directories"
          in r.stderr, "outside name: %r" % r.stderr)
    os.chmod(os.path.join(good, "sha256.so"), 0o775)
    r = describe("--plugin-dir", good)
    check(r.returncode == 0 and b"group-writable" in r.stderr and
          r.stdout.decode().split("\t")[0] == "echo",
          "group-writable file: %r %r" % (r.stdout, r.stderr))
    r = describe("--plugin", os.path.join(good, "sha256.so"))
    check(r.returncode == 3 and b"sha256.so: refused: the file is group-writable"
          in r.stderr, "group-writable by path: %r" % r.stderr)
    os.chmod(os.path.join(good, "sha256.so"), 0o755)
    os.chmod(other, 0o777)
    r = describe("--plugin", os.path.join(other, "spin.so"))
    check(r.returncode == 3 and b"world-writable" in r.stderr, "world dir: %r" % r.stderr)
    os.chmod(other, 0o755)
    r = describe("--plugin-dir", os.path.join(d, "missing"))
    check(r.returncode == 3 and b"missing" in r.stderr, "missing dir: %r" % r.stderr)

    # A plugin dropped into the folder is there after a worker restart.
    c = zptest.Cluster()
    inp = os.path.join(c.dir, "in.txt")
    with open(inp, "w") as f:
        f.writelines("%d\n" % i for i in range(200))
    shutil.copy(os.path.join(other, "spin.so"), good)
    wk = start([w, "--ventilator", c.dispatch, "--sink", c.results,
                "--plugin-dir", good], stderr=c._log("worker"))
    v = c.ventilator("spin", inp, args=("--job", "dropped"))
    check(v.wait(60) == 0, "job through a plugin from --plugin-dir failed")
    stop(wk)
    stop(c.sink)
    recs = zptest.read_jsonl(c.output)
    check(len(recs) == 200 and all(x["status"] == "ok" for x in recs),
          "records %d" % len(recs))
    print("    plugin dirs: outside path/name refused, group-writable file and "
          "world-writable dir refused, a dropped-in plugin ran 200 tasks")


if __name__ == "__main__":
    zptest.main([
        test_keygen_writes_czmq_certificates,
        test_allowed_keys_run_a_job_over_curve,
        test_events_over_curve_only_to_allowed_keys,
        test_unknown_key_receives_no_task,
        test_plaintext_peers_are_rejected_and_counted,
        test_misconfigured_authenticator_refuses_to_start,
        test_plugins_load_only_from_plugin_dirs_and_not_writable_by_others,
    ])
