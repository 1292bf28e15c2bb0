"""zpipe run --trace FILE: task timelines. The trace is valid Chrome
trace-event JSON (checked against tests/trace/trace_event.schema.json), has
one committed task event per task, every task's times are in order, and the
per-worker utilisation recomputed from the events matches the summary
zpipe run prints."""
import json
import os
import re
import time

import zptest
from zptest import binary, check, read_jsonl, run

SCHEMA = os.path.join(zptest.SOURCE, "tests", "trace", "trace_event.schema.json")
TL = "zpipe run: timeline: "


def _validate(doc):
    import jsonschema  # Debian's python3-jsonschema (scripts/setup.sh)
    with open(SCHEMA) as f:
        schema = json.load(f)
    v = jsonschema.Draft7Validator(schema)
    jsonschema.Draft7Validator.check_schema(schema)
    errors = list(v.iter_errors(doc))
    check(not errors, "%d schema errors, first: %s at %s" % (
        len(errors), errors[0].message if errors else "",
        list(errors[0].absolute_path) if errors else ""))


def _traced_run(plugin, lines, args=(), timeout=120):
    d = zptest.tmpdir()
    inp = os.path.join(d, "in.txt")
    with open(inp, "wb") as f:
        f.write(b"".join(l + b"\n" for l in lines))
    out = os.path.join(d, "out.jsonl")
    trace = os.path.join(d, "trace.json")
    t0 = time.monotonic()
    r = run([binary("zpipe"), "run", "--plugin", plugin, "--input", inp,
             "--output", out, "--no-progress", "--trace", trace] + list(args),
            capture_output=True, timeout=timeout)
    secs = time.monotonic() - t0
    err = r.stderr.decode()
    check(os.path.exists(trace), "no trace written: %s" % err)
    with open(trace) as f:
        doc = json.load(f)
    return r, err, doc, read_jsonl(out), secs, os.path.getsize(trace)


def _summary(err):
    """The figures zpipe run printed: wall, per-worker lines, its own
    worker task counts."""
    m = re.search(r"^" + TL + r"wall ([0-9.]+) s from first dispatch to last commit$",
                  err, re.M)
    check(m, "no wall line in:\n" + err)
    wall = float(m.group(1))
    workers = {}
    for m in re.finditer(r"^" + TL + r"worker (\S+): attempts (\d+), committed (\d+), "
                         r"busy ([0-9.]+) s, utilisation ([0-9.]+)%$", err, re.M):
        workers[m.group(1)] = {"attempts": int(m.group(2)), "committed": int(m.group(3)),
                               "busy": float(m.group(4)), "util": float(m.group(5))}
    run_workers = {m.group(1): int(m.group(2)) for m in re.finditer(
        r"^zpipe run:   worker (\S+): (\d+) tasks", err, re.M)}
    stages = {}
    for m in re.finditer(r"^" + TL + r"(\S+) ms: tasks (\d+), mean ([0-9.]+), p50 ([0-9.]+), "
                         r"p99 ([0-9.]+), max ([0-9.]+)$", err, re.M):
        stages[m.group(1)] = [float(x) for x in m.groups()[1:]]
    return wall, workers, run_workers, stages


def _tracks(doc):
    """pid -> worker id, from the process_name metadata."""
    names = {}
    for e in doc["traceEvents"]:
        if e["ph"] == "M" and e["name"] == "process_name":
            names[e["pid"]] = e["args"]["name"]
    return {pid: n[len("worker "):] for pid, n in names.items() if n.startswith("worker ")}


def test_trace_of_10000_tasks_is_valid_and_matches_the_summary():
    n = 10000
    # spin burns 300 µs of CPU per task: about 1.5 s per worker.
    r, err, doc, recs, secs, size = _traced_run("spin", [b"300"] * n,
                                                ["--workers", "2"])
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, err))
    check(len(recs) == n, "%d records" % len(recs))
    _validate(doc)
    wall, workers, run_workers, stages = _summary(err)
    tracks = _tracks(doc)
    events = doc["traceEvents"]

    # The trace's workers are the run's workers, each on a track of its own.
    check(set(tracks.values()) == set(run_workers) == set(workers),
          "workers: trace %r, run %r, timeline %r" % (sorted(tracks.values()),
                                                      sorted(run_workers), sorted(workers)))
    check(len(run_workers) == 2, "run workers %r" % run_workers)

    # One committed X event per task; every attempt is an X event.
    tasks = [e for e in events if e["ph"] == "X" and e.get("cat") == "task"]
    committed = {}
    for e in tasks:
        check(e["pid"] in tracks, "task event on pid %d" % e["pid"])
        a = e["args"]
        if a["outcome"] == "committed":
            check(a["task"] not in committed, "task %d committed twice" % a["task"])
            committed[a["task"]] = e
    check(set(committed) == set(range(n)), "committed task ids are not 0..%d" % (n - 1))
    check(len(tasks) == sum(w["attempts"] for w in workers.values()),
          "%d X events, %r attempts" % (len(tasks), workers))

    # Each task's life in order: queued <= dispatched <= started <=
    # finished <= received <= committed. One machine, one wall clock: the
    # times each process reads itself are strictly ordered. The worker
    # derives a task's wall times from one (monotonic, wall) pair per batch
    # read within ~20 µs, so where its times meet another process's
    # (dispatched -> started, finished -> received) a small slack is
    # allowed, and counted.
    slack, stretched = 1000, 0
    for tid, e in committed.items():
        a = e["args"]
        q, d, st, fin = a["queued_ts"], a["dispatched_ts"], e["ts"], e["ts"] + e["dur"]
        rcv, com = a["received_ts"], a["committed_ts"]
        check(None not in (q, d, rcv, com), "task %d lacks a time: %r" % (tid, a))
        check(q <= d and st <= fin and rcv <= com,
              "task %d out of order: %r" % (tid, [q, d, st, fin, rcv, com]))
        check(d <= st + slack and fin <= rcv + slack,
              "task %d: worker times beyond %d µs of the others: %r"
              % (tid, slack, [q, d, st, fin, rcv, com]))
        stretched += (d > st) + (fin > rcv)
        check(a["status"] == "ok" and a["attempt"] == 1, repr(a))
    check(stretched < n // 100, "%d tasks needed the slack" % stretched)

    # Utilisation recomputed from the events matches the summary.
    dispatches = [e["ts"] for e in events if e["ph"] == "i" and e["name"] == "dispatch"]
    commits = [e["ts"] for e in events if e["ph"] == "i" and e["name"] == "commit"]
    check(dispatches and commits, "no dispatch or commit instants")
    twall = max(commits) - min(dispatches)
    check(abs(twall / 1e6 - wall) < 2e-6, "wall %f s in the trace, %f s printed" % (twall / 1e6, wall))
    for pid, wid in tracks.items():
        busy = sum(e["dur"] for e in tasks if e["pid"] == pid)
        util = 100.0 * busy / twall
        w = workers[wid]
        check(abs(util - w["util"]) <= 0.5, "worker %s: utilisation %.2f%% from the trace, "
              "%.2f%% printed" % (wid, util, w["util"]))
        check(abs(busy / 1e6 - w["busy"]) < 1e-5, "worker %s busy %r vs %r" % (wid, busy, w))
        ntask = sum(1 for e in committed.values() if e["pid"] == pid)
        check(ntask == w["committed"] == run_workers[wid],
              "worker %s: %d committed in the trace, %r printed, %d by zpipe run"
              % (wid, ntask, w, run_workers[wid]))
        check(util > 10, "worker %s utilisation %.1f%% is implausibly low" % (wid, util))

    # The stages cover every committed task.
    for label in ("queued->dispatched", "dispatched->started", "started->finished",
                  "finished->committed"):
        check(label in stages and stages[label][0] == n, "stage %s: %r" % (label, stages))
    check(re.search(r"^" + TL + r"where the time went: queued [0-9.]+%, to worker [0-9.]+%, "
                    r"running [0-9.]+%, to sink [0-9.]+% .*pipeline overhead", err, re.M), err)
    # The pipeline's counter says how many tasks were at each stage.
    counters = [e for e in events if e["ph"] == "C"]
    check(counters and set(counters[0]["args"]) == {"queued", "to_worker", "running", "to_sink"},
          repr(counters[:1]))
    check(all(v == 0 for v in counters[-1]["args"].values()), "tasks left at the end: %r"
          % counters[-1])
    print("  10000 tasks: %.2f s, trace %d bytes, %d events, %d within the "
          "clock slack; %s" % (secs, size, len(events), stretched,
        ", ".join("%s %.2f%%" % (k, v["util"]) for k, v in sorted(workers.items()))))


def test_retries_and_in_process_workers_are_traced():
    # fx_fail: retry2 fails retryably on every attempt; the trace shows the
    # two retried attempts and the final record (in-process worker path).
    lines = [b"ok0", b"fail1", b"retry2", b"ok3"]
    r, err, doc, recs, _, _ = _traced_run(
        os.path.join(zptest.FIXTURES, "fx_fail.so"), lines,
        ["--workers", "1", "--isolation", "none"], timeout=60)
    check(r.returncode == 1, "exit %d: %s" % (r.returncode, err))
    _validate(doc)
    tasks = [e for e in doc["traceEvents"] if e["ph"] == "X" and e.get("cat") == "task"]
    by_task = {}
    for e in tasks:
        by_task.setdefault(e["args"]["task"], []).append(e["args"])
    check(sorted(by_task) == [0, 1, 2, 3], repr(sorted(by_task)))
    retry = sorted((a["attempt"], a["outcome"], a["status"]) for a in by_task[2])
    check(retry == [(1, "retry", "failed"), (2, "retry", "failed"), (3, "committed", "failed")],
          repr(retry))
    for a in by_task[2] + by_task[1] + by_task[0]:
        check(a["queued_ts"] is not None and a["dispatched_ts"] is not None,
              "in-process worker did not echo the times: %r" % a)
        check(a["queued_ts"] <= a["dispatched_ts"], repr(a))
    check(by_task[1][0]["status"] == "failed" and by_task[1][0]["outcome"] == "committed",
          repr(by_task[1]))


def test_untraced_run_prints_no_timeline():
    r, recs = zptest.run_plugin("echo", [b"a", b"b"], args=["--workers", "1"], timeout=60)
    check(r.returncode == 0, r.stderr.decode())
    check(b"timeline" not in r.stderr and b"trace" not in r.stderr, r.stderr.decode())


def test_bad_trace_path_fails_before_starting():
    d = zptest.tmpdir()
    inp = os.path.join(d, "in.txt")
    with open(inp, "w") as f:
        f.write("x\n")
    out = os.path.join(d, "out.jsonl")
    for bad in (d, os.path.join(d, "no", "such", "dir", "t.json")):
        t0 = time.monotonic()
        r = run([binary("zpipe"), "run", "--plugin", "echo", "--input", inp,
                 "--output", out, "--trace", bad], capture_output=True, timeout=30)
        err = r.stderr.decode()
        check(r.returncode == 2, "%s: exit %d: %s" % (bad, r.returncode, err))
        check("cannot write trace %s" % bad in err, err)
        check(time.monotonic() - t0 < 5, "took %.1f s" % (time.monotonic() - t0))
        check(not os.path.exists(out), "the job ran anyway")


def test_sink_refuses_an_unwritable_trace():
    d = zptest.tmpdir()
    r = run([binary("zpipe-sink"), "--results", "ipc://%s/r" % d, "--control",
             "ipc://%s/c" % d, "--publish", "none", "--output", os.path.join(d, "o"),
             "--trace", d], capture_output=True, timeout=30)
    check(r.returncode == 3, "exit %d: %s" % (r.returncode, r.stderr.decode()))
    check(b"cannot open trace" in r.stderr, r.stderr.decode())


if __name__ == "__main__":
    zptest.main([
        test_trace_of_10000_tasks_is_valid_and_matches_the_summary,
        test_retries_and_in_process_workers_are_traced,
        test_untraced_run_prints_no_timeline,
        test_bad_trace_path_fails_before_starting,
        test_sink_refuses_an_unwritable_trace,
    ])
