"""Web view: the sink serves a self-contained page at / and its state as
JSON at /api/state on its --metrics address. /api/state stays valid JSON
whatever bytes arrive in a worker id or an error; headless Chromium (Debian's
chromium, driven by playwright-core from npm) opens the page after a job and
checks it shows the job done, the workers, the failures and a drawn chart,
without a request to any other origin. The screenshot is kept as a test
artifact: build/tests/artifacts/web.png.

Needs chromium, nodejs and npm (scripts/test.sh installs them with apt-get);
without them this test fails, it is never skipped. playwright-core, pinned in
tests/web/package-lock.json, is installed with npm ci under the build tree."""
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import zpmetrics
import zptest
from zptest import binary, check, run

try:
    import zmq
    import zpipe_pb2
except ImportError as e:
    raise SystemExit("test_web needs python3-zmq, python3-protobuf (run with "
                     "/usr/bin/python3) and zpipe_pb2 from the build: %s" % e)

WEB_SRC = os.path.join(zptest.SOURCE, "tests", "web")
NODE_DIR = os.path.join(zptest.BUILD, "tests", "web")
ARTIFACTS = os.path.join(zptest.BUILD, "tests", "artifacts")
URL = re.compile(rb"web view: serving (http://[0-9.]+:[0-9]+/)")

# Bytes a hostile worker may send: quotes, backslashes, a newline, markup
# that would load from another origin if it were ever parsed, and bytes that
# are not UTF-8 (a stray 0xff, a truncated sequence, an overlong '/').
HOSTILE_WORKER = b'w"\\\n<b>\xff'
HOSTILE_ERROR = (b'say "hi" \\ back\nslash <img src="http://203.0.113.9/x.png">'
                 b'<script>fetch("http://203.0.113.9/")</script> \xff\xfe \xe2\x82 \xc0\xaf')
WANT_WORKER = 'w"\\\n<b>\ufffd'
WANT_ERROR = ('say "hi" \\ back\nslash <img src="http://203.0.113.9/x.png">'
              '<script>fetch("http://203.0.113.9/")</script> \ufffd\ufffd '
              '\ufffd\ufffd \ufffd\ufffd')


def _tools():
    """node, npm and chromium, or a failure that says how to get them."""
    found = {t: shutil.which(t) for t in ("node", "npm")}
    found["chromium"] = os.environ.get("ZPIPE_CHROMIUM") or shutil.which("chromium")
    missing = [t for t, p in found.items() if not p]
    check(not missing, "test_web needs %s: apt-get install chromium nodejs "
          "npm (scripts/test.sh installs them)" % " and ".join(missing))
    return found


def _playwright(npm):
    """Installs playwright-core under the build tree as the lock file pins
    it, once (again when the lock file changes); returns the directory."""
    os.makedirs(NODE_DIR, exist_ok=True)
    lock = os.path.join(WEB_SRC, "package-lock.json")
    stamp = os.path.join(NODE_DIR, ".installed-lock")
    with open(lock, "rb") as f:
        want = f.read()
    try:
        with open(stamp, "rb") as f:
            if f.read() == want and os.path.isdir(
                    os.path.join(NODE_DIR, "node_modules", "playwright-core")):
                return NODE_DIR
    except OSError:
        pass
    for name in ("package.json", "package-lock.json"):
        shutil.copy(os.path.join(WEB_SRC, name), NODE_DIR)
    env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
    t0 = time.monotonic()
    r = run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR, env=env, capture_output=True, timeout=600)
    check(r.returncode == 0, "npm ci in %s failed (exit %d): %s" % (
        NODE_DIR, r.returncode, (r.stdout + r.stderr).decode(errors="replace")[-2000:]))
    with open(stamp, "wb") as f:
        f.write(want)
    print("    npm ci playwright-core into %s (%.1f s)" % (NODE_DIR, time.monotonic() - t0))
    return NODE_DIR


def _web_url(log_path):
    return zpmetrics.metrics_url(log_path, pattern=URL, what="web view")


def _get(url, timeout=5.0):
    """(content type, body) at url; waits out the 503 before the first
    render."""
    end = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.headers.get("Content-Type", ""), r.read()
        except urllib.error.HTTPError as e:
            if e.code != 503 or time.monotonic() > end:
                raise
        time.sleep(0.05)


def _state(base):
    """/api/state, parsed strictly: UTF-8, and JSON with no NaN."""
    ctype, body = _get(base + "api/state")
    check(ctype == "application/json", "content type %r" % ctype)

    def no_constants(name):
        raise AssertionError("%s in /api/state" % name)
    return json.loads(body.decode("utf-8"), parse_constant=no_constants)


def _wait_state(base, pred, what, timeout=20.0):
    end = time.monotonic() + timeout
    while True:
        st = _state(base)
        if pred(st):
            return st
        check(time.monotonic() < end, "%s: %s" % (what, json.dumps(st)[:2000]))
        time.sleep(0.1)


def _open_job(control, job):
    """Opens job at the sink (it refuses results for a job never opened)."""
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(control)
    m = zpipe_pb2.Message()
    m.job_open.job_id, m.job_open.plugin = job, "echo"
    s.send(m.SerializeToString())
    check(s.poll(5000), "no answer to JobOpen %s" % job)
    check(zpipe_pb2.Message.FromString(s.recv()).ack.ok, "JobOpen %s" % job)
    s.close()


def _send_failure(results, job, task, worker, error, cause=b"plugin_error"):
    """Sends the sink a ResultBatch with one final failure whose job id,
    worker id and error are raw bytes: the generated Python code refuses
    strings that are not UTF-8, so placeholders of the same length are
    swapped for them in the encoded message."""
    marks = {}
    def mark(raw, c):
        ph = (c * len(raw)).decode()
        marks[ph.encode()] = raw
        return ph
    m = zpipe_pb2.Message()
    b = m.result_batch
    b.job_id = mark(job, b"J")
    b.worker_id = mark(worker, b"W")
    r = b.results.add()
    r.task_id = task
    r.status = zpipe_pb2.STATUS_FAILED
    r.error = mark(error, b"E")
    r.cause = mark(cause, b"C")
    r.attempt = 1
    data = m.SerializeToString()
    for ph, raw in marks.items():
        check(data.count(ph) == 1, "placeholder %r not unique" % ph)
        data = data.replace(ph, raw)
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.PUSH)
    s.setsockopt(zmq.LINGER, 2000)
    s.connect(results)
    s.send(data)
    s.close()


def _stop_sink(c):
    """SIGTERM: a clean exit, so a sanitized build reports leaks too."""
    rc = zptest.stop(c.sink, timeout=20)
    check(rc == 0, "sink exit %r" % rc)
    with open(c.logs[0], "rb") as f:
        log = f.read()
    check(b"Sanitizer" not in log, "sanitizer report in the sink's log")


def test_state_is_valid_json_whatever_the_bytes():
    c = zptest.Cluster(sink_args=("--metrics", "127.0.0.1:0"))
    base = _web_url(c.logs[0])
    _open_job(c.control, "hostile-1")
    _open_job(c.control, "hostile-2")
    _send_failure(c.results, b"hostile-1", 7, HOSTILE_WORKER, HOSTILE_ERROR,
                  cause=b'cause"\n\xff')
    # A job id outside [A-Za-z0-9_.:-] is refused by the sink: counted,
    # never shown.
    _send_failure(c.results, b'bad"id\xff', 1, b"w", b"x")
    st = _wait_state(base, lambda s: s["failures"] and s["totals"]["bad_messages"],
                     "the hostile records")
    f = st["failures"][0]
    check(f["job"] == "hostile-1" and f["task"] == 7, "failure %r" % f)
    check(f["worker"] == WANT_WORKER, "worker %r" % f["worker"])
    check(f["error"] == WANT_ERROR, "error %r" % f["error"])
    check(f["cause"] == 'cause"\n\ufffd', "cause %r" % f["cause"])
    check([j["id"] for j in st["jobs"]] == ["hostile-2", "hostile-1"],
          "jobs %r" % st["jobs"])
    st["jobs"] = st["jobs"][1:]
    check(st["jobs"][0]["state"] == "open" and st["jobs"][0]["total"] is None
          and st["jobs"][0]["failed"] == 1, "job %r" % st["jobs"][0])
    check([w["id"] for w in st["workers"]] == [WANT_WORKER], "workers %r"
          % st["workers"])
    check(st["totals"]["bad_messages"] == 1, "totals %r" % st["totals"])
    # A long error is cut to 300 bytes, still valid JSON even when the cut
    # falls inside a character.
    _send_failure(c.results, b"hostile-2", 8, b"w2", b"x" + "\u20ac".encode() * 200)
    st = _wait_state(base, lambda s: s["failures"][0]["job"] == "hostile-2",
                     "the long error")
    e = st["failures"][0]["error"]
    check(e == "x" + "\u20ac" * 99 + "\ufffd\ufffd", "cut error %r" % e[-10:])
    # The page: the embedded file, as HTML, loading nothing from elsewhere.
    ctype, page = _get(base)
    check(ctype == "text/html; charset=utf-8", "page content type %r" % ctype)
    with open(os.path.join(zptest.SOURCE, "sink", "web", "index.html"), "rb") as f:
        check(page == f.read(), "the page served is not sink/web/index.html")
    check(not re.search(rb"""(src|href)\s*=\s*["']?(https?:)?//""", page),
          "the page refers to another origin")
    for path in ("/index.html", "/api", "/api/state/x"):
        try:
            _get(base.rstrip("/") + path)
            check(False, "%s: no 404" % path)
        except urllib.error.HTTPError as e:
            check(e.code == 404, "%s: HTTP %d" % (path, e.code))
    _stop_sink(c)


def _run_job(c, intake, plugin, job, lines, timeout=180):
    """Submits a job through the ventilator's intake and waits for the sink
    to have every record (zpipe wait exits 1 when some failed)."""
    r = run([zptest.binary("zpipe"), "submit", "--ventilator", intake,
             "--plugin", plugin, "--job", job],
            input=b"".join(l + b"\n" for l in lines), capture_output=True,
            timeout=60)
    check(r.returncode == 0, "submit %s: %r" % (job, r.stderr[-500:]))
    r = run([zptest.binary("zpipe"), "wait", "--sink", c.control, job],
            capture_output=True, timeout=timeout)
    check(r.returncode in (0, 1), "wait %s: exit %d %r" % (
        job, r.returncode, r.stderr[-500:]))


def test_browser_shows_the_finished_job_workers_and_failures():
    tools = _tools()
    node_dir = _playwright(tools["npm"])
    os.environ["ZPIPE_PLUGIN_PATH"] = zptest.FIXTURES
    c = zptest.Cluster(sink_args=("--metrics", "127.0.0.1:0"))
    base = _web_url(c.logs[0])
    intake = "ipc://%s/intake" % c.dir
    zptest.start([zptest.binary("zpipe-ventilator"), "--intake", intake,
                  "--bind", c.dispatch, "--sink", c.control],
                 stderr=c._log("ventilator"))
    workers = ["alpha", "beta"]
    for w in workers:
        c.worker(["spin", "fx_fail"], name=w)
    t0 = time.monotonic()
    # A first job of about 1.5 s of work gives the chart a curve, then the
    # job under test: 4000 tasks, the chosen ones failing.
    _run_job(c, intake, "spin", "warm-up", [b"1000"] * 3000)
    n, failing = 4000, [0, 17, 404, 999, 2222, 3001, 3999]
    lines = [b"fail-%d" % i if i in failing else b"task-%d" % i for i in range(n)]
    _run_job(c, intake, "fx_fail", "web-test", lines)
    recs = [r for r in zptest.read_jsonl(c.output) if r["job"] == "web-test"]
    check(len(recs) == n, "%d records" % len(recs))
    check(sorted(r["task"] for r in recs if r["status"] == "failed") == failing,
          "failed records in the output")
    st = _wait_state(base, lambda s: any(
        j["id"] == "web-test" and j["state"] == "done" for j in s["jobs"]),
        "the job done in /api/state")
    job = [j for j in st["jobs"] if j["id"] == "web-test"][0]
    check(job["done"] == n and job["total"] == n and job["failed"] == len(failing),
          "job %r" % job)
    check(sorted(w["id"] for w in st["workers"]) == workers, "workers %r" % st["workers"])
    check(sum(w["tasks"] for w in st["workers"]) == n + 3000,
          "worker tasks %r" % st["workers"])
    jobs_s = time.monotonic() - t0
    # A record whose text would be markup if the page ever parsed it.
    _open_job(c.control, "hostile")
    _send_failure(c.results, b"hostile", 1, HOSTILE_WORKER, HOSTILE_ERROR)
    _wait_state(base, lambda s: s["failures"][0]["job"] == "hostile",
                "the hostile record")

    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "web.png")
    if os.path.exists(shot):
        os.unlink(shot)
    spec = os.path.join(c.dir, "spec.json")
    with open(spec, "w") as f:
        json.dump({"url": base, "job": "web-test", "total": n,
                   "failed_tasks": failing, "workers": workers,
                   "hostile": {"worker": WANT_WORKER, "error": WANT_ERROR},
                   "screenshot": shot, "chromium": tools["chromium"]}, f)
    t1 = time.monotonic()
    env = dict(os.environ, NODE_PATH=os.path.join(node_dir, "node_modules"))
    r = run([tools["node"], os.path.join(WEB_SRC, "check_page.js"), spec],
            cwd=node_dir, env=env, capture_output=True, timeout=120)
    check(r.returncode == 0, "check_page.js exit %d: %s" % (
        r.returncode, (r.stderr or r.stdout).decode(errors="replace")[-3000:]))
    seen = json.loads(r.stdout.decode().strip().splitlines()[-1])
    check(os.path.getsize(shot) > 10000, "screenshot %s is empty" % shot)
    with open(shot, "rb") as f:
        check(f.read(8) == b"\x89PNG\r\n\x1a\n", "screenshot is not a PNG")
    print("    jobs ran in %.1f s; Chromium checked the page in %.1f s: job %s, "
          "workers %r, chart %r, %d requests, all same-origin"
          % (jobs_s, time.monotonic() - t1, seen["job"], seen["workers"],
             seen["chart"], seen["requests"]))
    _stop_sink(c)
    print("    screenshot: %s" % shot)


def test_zpipe_run_web_serves_the_running_job():
    # zpipe run --web 127.0.0.1:0 prints the page's URL; while the job runs
    # the page and /api/state answer there and show it.
    d = zptest.tmpdir()
    inp = os.path.join(d, "in.txt")
    n = 3000
    with open(inp, "w") as f:
        f.write("2000\n" * n)  # 2 ms each: about 3 s on 2 workers
    p = zptest.start([binary("zpipe"), "run", "--plugin", "spin", "--input",
                      inp, "--output", os.path.join(d, "out"), "--workers",
                      "2", "--job", "run-web", "--web", "127.0.0.1:0",
                      "--no-progress"], stderr=subprocess.PIPE)
    line = p.stderr.readline().decode()
    m = re.search(r"web view at (http://127\.0\.0\.1:\d+/)", line)
    check(m, "no URL: %r" % line)
    base = m.group(1)
    end = time.monotonic() + 20  # printed before the sink is up
    while True:
        try:
            ctype, page = _get(base, timeout=10)
            break
        except urllib.error.URLError as e:
            check(time.monotonic() < end and not isinstance(
                e, urllib.error.HTTPError), "%s: %r" % (base, e))
            time.sleep(0.05)
    check(ctype.startswith("text/html") and b"zpipe" in page, ctype)
    st = _wait_state(base, lambda st: any(
        j["id"] == "run-web" and 0 < j["done"] < n for j in st["jobs"]),
        "the running job, part done", timeout=30)
    rest = p.communicate(timeout=120)[1].decode()
    check(p.returncode == 0, "zpipe run: %d %s" % (p.returncode, rest))
    job = [j for j in st["jobs"] if j["id"] == "run-web"][0]
    print("    %s showed run-web at %d of %d while it ran"
          % (base, job["done"], n))


if __name__ == "__main__":
    zptest.main([test_state_is_valid_json_whatever_the_bytes,
                 test_browser_shows_the_finished_job_workers_and_failures,
                 test_zpipe_run_web_serves_the_running_job])
