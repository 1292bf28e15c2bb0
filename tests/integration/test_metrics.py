"""--metrics: every daemon serves Prometheus text at /metrics; the counts
agree with the job that ran and the text passes a strict parser of the
exposition format. (test_prometheus.py has a real Prometheus scrape it.)"""
import socket
import subprocess
import time
import urllib.error
import urllib.request

import zptest
from zptest import binary, check
import zpmetrics
from zpmetrics import fetch, parse, total, value


def _wait_for(url, name, want, timeout=60.0, **labels):
    """Fetches url until sample name{labels} equals want; returns the
    parsed families and samples of the last fetch."""
    end = time.monotonic() + timeout
    while True:
        fam, samples = parse(fetch(url))
        got = total(samples, name, **labels)
        if got == want or time.monotonic() > end:
            check(got == want, "%s%r = %r, want %r" % (name, labels, got, want))
            return fam, samples
        time.sleep(0.1)


def test_counts_agree_with_the_job_and_the_format_is_strict():
    s = zpmetrics.Service(workers=2)
    # Before any job: every daemon answers, and the text parses.
    for url in s.urls.values():
        parse(fetch(url))
    n = 3000
    job = s.submit("echo", [b"t%d" % i for i in range(n)])
    fam, sink = _wait_for(s.urls["sink"], "zpipe_tasks_completed_total", n,
                          job_id=job)
    check(fam["zpipe_tasks_completed_total"] == "counter", "type %r" % fam)
    check(value(sink, "zpipe_tasks_completed_total", job_id=job,
                status="ok") == n, "ok count")
    check(value(sink, "zpipe_tasks_completed_total", job_id=job,
                status="failed") == 0, "failed count")
    _, sink = _wait_for(s.urls["sink"], "zpipe_job_tasks", n, job_id=job)
    check(value(sink, "zpipe_job_done_tasks", job_id=job) == n, "done gauge")
    check(value(sink, "zpipe_bad_messages_total", socket="results") == 0,
          "bad messages on results")

    _, vent = _wait_for(s.urls["ventilator"], "zpipe_tasks_read_total", n)
    check(value(vent, "zpipe_tasks_dispatched_total") >= n, "dispatched %r"
          % vent["zpipe_tasks_dispatched_total"])
    _, vent = _wait_for(s.urls["ventilator"], "zpipe_workers", 2)
    for w in ("w0", "w1"):
        check(("worker", w) in [k[0] for k in vent["zpipe_worker_credit"]],
              "no credit series for %s: %r" % (w, vent["zpipe_worker_credit"]))
    _, vent = _wait_for(s.urls["ventilator"], "zpipe_tasks_held", 0)

    # Snapshots are rendered about every 250 ms: wait for the last tasks.
    end = time.monotonic() + 30
    while True:
        pages = [parse(fetch(s.urls[w])) for w in ("w0", "w1")]
        done = sum(total(ws, "zpipe_worker_tasks_total") for _, ws in pages)
        if done >= n or time.monotonic() > end:
            break
        time.sleep(0.1)
    check(done >= n, "workers did %d of %d tasks" % (done, n))
    for fam, ws in pages:
        check(fam["zpipe_plugin_call_seconds"] == "histogram", "type")
        k = value(ws, "zpipe_worker_tasks_total")
        check(value(ws, "zpipe_plugin_call_seconds_count") == k,
              "histogram count %r vs tasks %r" % (ws, k))
        buckets = sorted(((float(dict(key)["le"]), v) for key, v in
                          ws["zpipe_plugin_call_seconds_bucket"].items()))
        check(buckets[-1] == (float("inf"), k), "+Inf bucket %r" % buckets)
        check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])),
              "buckets not cumulative: %r" % buckets)
        check(value(ws, "zpipe_executor_restarts_total") == 0, "restarts")

def test_other_paths_are_404():
    c = zptest.Cluster(sink_args=("--metrics", "127.0.0.1:0"))
    url = zpmetrics.metrics_url(c.logs[0])
    try:
        urllib.request.urlopen(url.replace("/metrics", "/other"), timeout=5)
        check(False, "no 404")
    except urllib.error.HTTPError as e:
        check(e.code == 404, "HTTP %d" % e.code)


def _slow_clients(host, port, source, n):
    """n connections from source that send a request one byte at a time
    and never finish it (slowloris); those refused are left out."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(2.0)
        try:
            s.bind((source, 0))
            s.connect((host, port))
            s.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(s)
        except OSError:
            s.close()
    return socks


def test_slow_clients_do_not_keep_a_scrape_out():
    # Issue 16: 20 slow connections on the sink's metrics port kept
    # every scrape out for 35 s (16 connections at most, select). Now 100
    # slow connections from another address and 10 from the scraper's
    # own, trickling a byte a second, and every scrape is answered at once.
    c = zptest.Cluster(sink_args=("--metrics", "127.0.0.1:0"))
    url = zpmetrics.metrics_url(c.logs[0])
    host, port = url.split("//")[1].split("/")[0].split(":")
    port = int(port)
    slow = _slow_clients(host, port, "127.0.0.2", 100)
    slow += _slow_clients(host, port, "127.0.0.1", 10)
    stop = []

    def trickle():
        while not stop:
            for s in slow:
                try:
                    s.send(b"a")
                except OSError:
                    pass
            time.sleep(1.0)

    import threading
    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        time.sleep(1.5)
        worst = 0.0
        for _ in range(20):
            t0 = time.monotonic()
            fam, samples = parse(fetch(url, timeout=5.0))
            worst = max(worst, time.monotonic() - t0)
            check("zpipe_jobs" in samples, "a scrape without zpipe_jobs")
            time.sleep(0.1)
        print("    %d slow connections held open; 20 scrapes, the slowest "
              "answered in %.3f s" % (len(slow), worst))
        check(worst < 1.0, "a scrape took %.1f s" % worst)
    finally:
        stop.append(1)
        t.join()
        for s in slow:
            s.close()


def test_parser_rejects_what_it_should():
    good = ('# HELP a_total x\\\\y\n# TYPE a_total counter\n'
            'a_total{k="q\\"\\\\\\n"} 1\n')
    _, s = parse(good)
    check(value(s, "a_total", k='q"\\\n') == 1, "escapes %r" % s)
    for bad in ("a_total 1\n",                                   # no HELP/TYPE
                "# HELP a x\n# TYPE a counter\na 1\n",           # no _total
                "# HELP a x\n# TYPE a gauge\na{k=\"v} 1\n",      # unterminated
                "# HELP a x\n# TYPE a gauge\na{k=\"\\t\"} 1\n",  # bad escape
                "# HELP a x\n# TYPE a gauge\nb 1\n",             # other family
                "# HELP 0a x\n# TYPE 0a gauge\n0a 1\n"):         # bad name
        try:
            parse(bad)
        except AssertionError:
            continue
        raise AssertionError("parser accepted %r" % bad)


def test_bad_address_or_busy_port_refuses_to_start():
    for spec in ("garbage", "127.0.0.1:70000", "nohost.invalid:9101", ":x"):
        r = subprocess.run([binary("zpipe-sink"), "--metrics", spec,
                            "--results", "inproc://r", "--control",
                            "inproc://c", "--publish", "none"],
                           capture_output=True, timeout=30)
        check(r.returncode == 3, "%s: exit %d" % (spec, r.returncode))
        check(b"--metrics " + spec.encode() in r.stderr, "%s: %r"
              % (spec, r.stderr))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    spec = "127.0.0.1:%d" % busy.getsockname()[1]
    d = zptest.tmpdir()
    for prog, args in (("zpipe-worker", ["--plugin", "echo", "--ventilator",
                                         "ipc://%s/d" % d]),
                       ("zpipe-ventilator", ["--intake", "ipc://%s/i" % d,
                                             "--bind", "ipc://%s/d" % d])):
        r = subprocess.run([binary(prog), "--metrics", spec] + args,
                           capture_output=True, timeout=30)
        check(r.returncode == 3, "%s: exit %d" % (prog, r.returncode))
        check(b"cannot listen on " + spec.encode() in r.stderr,
              "%s: %r" % (prog, r.stderr))
    busy.close()


if __name__ == "__main__":
    zptest.main([test_parser_rejects_what_it_should,
                 test_bad_address_or_busy_port_refuses_to_start,
                 test_other_paths_are_404,
                 test_slow_clients_do_not_keep_a_scrape_out,
                 test_counts_agree_with_the_job_and_the_format_is_strict])
