"""The python plugin: a Python function per task on the real binaries.
Codecs raw, json and pickle (with star), init and main settings; jobs
with different functions on the same service workers; every failure kind
in its record (exception with traceback, retryable retried, sys.exit and
KeyboardInterrupt, a C-extension segfault quarantined, a hung function
killed at the deadline, MemoryError under --memory-limit) inside a
10,000-task job where every good task has exactly one correct record; a
missing function or a module that fails to import refused with the Python
error; the reducer; zpipe plugin check and --isolation none."""
import base64
import json
import os
import pickle
import sys

import zptest
from zptest import binary, check, read_jsonl, run

MODULE = r'''
import ctypes, sys, time

class Retry(Exception):
    retryable = True

def upper(b):
    return b.upper()

def chatty(b):
    print("chatty says", b.decode())
    return b

def as_str(b):
    return b.decode() + "!"

def nothing(b):
    return None

def reverse(b):
    return bytearray(b[::-1])

def square(n):
    return n * n

def add(a, b):
    return a + b

def call(fn, x):
    return fn(x)

def boom(b):
    raise ValueError("no good: %r" % b)

STATE = {}

def setup():
    STATE["prefix"] = b"init:"

def prefixed(b):
    return STATE["prefix"] + b

class Box:
    def tag(b):
        return b"box:" + b

SEGV = {5, 5005}
HANG = {7777}
MEM = MEM_SET

def task(b):
    n = int(b)
    k = n % 1000
    if k == 11:
        raise ValueError("bad item %d" % n)
    if k == 22:
        sys.exit(4)
    if k == 33:
        raise Retry("busy %d" % n)
    if k == 44:
        raise KeyboardInterrupt()
    if n in SEGV:
        ctypes.string_at(0)
    if n in HANG:
        time.sleep(3600)
    if n in MEM:
        return bytes(1 << 31)
    return b"%d" % (n * 3)
'''

# Run as the caller's main script would be by multiprocessing's spawn:
# its functions are found as __main__.NAME, its main block never runs.
MAIN_SCRIPT = r'''
import sys

def main_g(x):
    return x * 7

if __name__ == "__main__":
    sys.exit("the main block ran in a worker")
'''


# MemoryError under --memory-limit: not under AddressSanitizer, whose
# shadow memory RLIMIT_AS cannot hold (test_crash says the same).
MEM = () if zptest.SANITIZED else (1234, 8888)


def main_g(x):
    """Pickled by reference as __main__.main_g: found in the workers
    through main=, as a Pool's function from its caller's script."""
    return x * 7


def _modules():
    d = zptest.tmpdir()
    with open(os.path.join(d, "pyt.py"), "w") as f:
        f.write(MODULE.replace("MEM_SET", repr(set(MEM))))
    with open(os.path.join(d, "broken.py"), "w") as f:
        f.write("import nonexistent_module_zz\n")
    with open(os.path.join(d, "mainscript.py"), "w") as f:
        f.write(MAIN_SCRIPT)
    return d


def _output(rec):
    if "output_b64" in rec:
        return base64.b64decode(rec["output_b64"])
    return rec["output"].encode()


def test_raw_json_init_and_dotted_names():
    d = _modules()
    p = "path=" + d
    lines = [b"item %d" % i for i in range(200)]
    cases = [("pyt:upper", [], lambda b: b.upper()),
             ("pyt:as_str", [], lambda b: b + b"!"),
             ("pyt:nothing", [], lambda b: b""),
             ("pyt:reverse", [], lambda b: b[::-1]),
             ("pyt:Box.tag", [], lambda b: b"box:" + b),
             ("pyt:prefixed", ["init=pyt:setup"], lambda b: b"init:" + b)]
    for func, extra, want in cases:
        r, recs = zptest.run_plugin("python", lines, ["func=" + func, p] + extra,
                                    timeout=60)
        check(r.returncode == 0, "%s: exit %d %r" % (func, r.returncode, r.stderr[-600:]))
        check(len(recs) == len(lines) and all(
            _output(recs[i]) == want(lines[i]) for i in range(len(lines))),
            "%s: %r" % (func, list(recs.values())[:2]))
    # json: a JSON value per line in, compact JSON out; star: an array
    # is the argument list.
    nums = [b"%d" % i for i in range(300)]
    r, recs = zptest.run_plugin("python", nums, ["func=pyt:square", "codec=json", p],
                                timeout=60)
    check(r.returncode == 0 and all(json.loads(recs[i]["output"]) == i * i
                                    for i in range(300)), "json square")
    pairs = [b'["a%d", "b"]' % i for i in range(100)]
    r, recs = zptest.run_plugin("python", pairs, ["func=pyt:add", "codec=json", "star=1", p],
                                timeout=60)
    check(r.returncode == 0 and all(recs[i]["output"] == '"a%db"' % i for i in range(100)),
          "json star: %r" % list(recs.values())[:1])
    # print() goes to the log, never into the records on stdout, and
    # each line whole: two executors share the log, and Python writes a
    # print()'s pieces one by one unless the stream is line-buffered.
    xs = [b"x%d" % i for i in range(200)]
    r = run([binary("zpipe"), "run", "--plugin", "python", "--config", "func=pyt:chatty",
             "--config", p, "--format", "lines", "--no-progress"],
            input=b"\n".join(xs) + b"\n", capture_output=True, timeout=60)
    said = [ln for ln in r.stderr.split(b"\n") if b"chatty" in ln]
    check(r.returncode == 0 and sorted(r.stdout.split()) == sorted(xs)
          and sorted(said) == sorted(b"chatty says " + x for x in xs),
          "print: %r %r" % (r.stdout[:100], said[:10]))
    # The same through --isolation none (the worker runs the calls).
    r, recs = zptest.run_plugin("python", lines, ["func=pyt:upper", p],
                                args=["--isolation", "none"], timeout=60)
    check(r.returncode == 0 and len(recs) == 200 and all(
        _output(recs[i]) == lines[i].upper() for i in range(200)), "isolation none")
    print("    raw (bytes, str, None, bytearray out), a dotted name, init, json "
          "with and without star, --isolation none: %d calls all equal" % (6 * 200 + 600))


def test_bad_settings_refuse_with_the_python_error():
    d = _modules()
    for config, why in [(["func=pyt:missing"],
                         b"func=pyt:missing: AttributeError: module 'pyt' has no "
                         b"attribute 'missing'"),
                        (["func=broken:f"],
                         b"func=broken:f: ModuleNotFoundError: No module named "
                         b"'nonexistent_module_zz'"),
                        (["func=pyt"], b"expected MODULE:QUALNAME"),
                        (["func=pyt:STATE"], b"is a dict, not callable"),
                        (["func=pyt:upper", "init=pyt:nope"], b"init=pyt:nope"),
                        (["func=pyt:upper", "codec=yaml"], b"codec must be raw"),
                        (["func=pyt:upper", "star=1"], b"star=1 needs codec")]:
        r, recs = zptest.run_plugin("python", [b"x"], config + ["path=" + d], timeout=60)
        check(r.returncode == 3 and why in r.stderr and not recs,
              "%r: exit %d %r" % (config, r.returncode, r.stderr[-800:]))
    print("    7 bad settings: zpipe run exits 3 with the Python error, no task run")




def test_jobs_bring_their_own_function_to_shared_workers():
    """Two workers load python with no func; five jobs each bring theirs:
    raw and json through zpipe submit, pickle with star and a function
    pickled from this script's __main__ (found through main=) through the
    Python producer, and two refused ones whose every task fails
    plugin_init with the Python error while the others run."""
    sys.path.insert(0, os.path.join(zptest.SOURCE, "examples", "python"))
    import producer
    d = _modules()
    c, intake, spool = zptest.service_cluster(["python", "echo"])
    n = 300
    subs = {"up": (["func=pyt:upper"], b"".join(b"w%d\n" % i for i in range(n))),
            "sq": (["func=pyt:square", "codec=json"], b"".join(b"%d\n" % i for i in range(n))),
            "nofunc": (["func=pyt:missing"], b"a\nb\nc\n"),
            "noimport": (["func=broken:f"], b"a\nb\nc\n")}
    for job, (config, data) in subs.items():
        args = [binary("zpipe"), "submit", "--ventilator", intake, "--plugin", "python",
                "--job", job, "--config", "path=" + d]
        for kv in config:
            args += ["--config", kv]
        r = run(args, input=data, capture_output=True, timeout=60)
        check(r.returncode == 0, "submit %s: %r" % (job, r.stderr))
    pr = producer.Producer(intake, "python", job_id="star", config={
        "func": "pyt:add", "codec": "pickle", "star": "1", "path": d})
    pr.send([pickle.dumps((i, 1000)) for i in range(n)])
    pr.close()
    pm = producer.Producer(intake, "python", job_id="main", config={
        "func": "pyt:call", "codec": "pickle", "star": "1", "path": d,
        "main": os.path.join(d, "mainscript.py")})
    pm.send([pickle.dumps((main_g, i)) for i in range(n)])
    pm.close()
    jobs = list(subs) + ["star", "main"]
    for job in jobs:
        r = run([binary("zpipe"), "wait", "--sink", c.control, job], capture_output=True,
                timeout=60)
        check(r.returncode in (0, 1), "wait %s: %r" % (job, r.stderr))
    rec = {j: {x["task"]: x for x in read_jsonl(os.path.join(spool, j + ".jsonl"))}
           for j in jobs}
    check(len(rec["up"]) == n and all(rec["up"][i]["output"] == "W%d" % i for i in range(n)),
          "up job")
    check(len(rec["sq"]) == n and all(rec["sq"][i]["output"] == str(i * i) for i in range(n)),
          "sq job")
    check(len(rec["star"]) == n and all(
        pickle.loads(_output(rec["star"][i])) == i + 1000 for i in range(n)), "star job")
    check(len(rec["main"]) == n and all(
        rec["main"][i]["status"] == "ok" and pickle.loads(_output(rec["main"][i])) == i * 7
        for i in range(n)), "main job: %r" % list(rec["main"].values())[:1])
    for job, why in [("nofunc", "AttributeError: module 'pyt' has no attribute 'missing'"),
                     ("noimport", "ModuleNotFoundError: No module named "
                                  "'nonexistent_module_zz'")]:
        check(len(rec[job]) == 3 and all(
            x["status"] == "failed" and x["cause"] == "plugin_init" and why in x["error"]
            for x in rec[job].values()), "%s: %r" % (job, list(rec[job].values())[:1]))
    print("    2 workers, 6 jobs with their own func: raw, json, pickle+star, "
          "__main__.main_g through main=, and 2 refused (plugin_init with the "
          "Python error)")


def test_every_failure_kind_among_10000_tasks():
    d = _modules()
    n = 10000
    lines = [b"%d" % i for i in range(n)]
    dd = zptest.tmpdir()
    inp = os.path.join(dd, "in.txt")
    with open(inp, "wb") as f:
        f.write(b"".join(l + b"\n" for l in lines))
    out = os.path.join(dd, "out.jsonl")
    r = run([binary("zpipe"), "run", "--plugin", "python", "--config", "func=pyt:task",
             "--config", "path=" + d, "--input", inp, "--output", out, "--no-progress",
             "--max-attempts", "3", "--deadline-ms", "1500"]
            + ([] if zptest.SANITIZED else ["--memory-limit", str(400 << 20)]),
            capture_output=True, timeout=120)
    check(r.returncode == 1, "exit %d %r" % (r.returncode, r.stderr[-800:]))
    recs = read_jsonl(out)
    by_task = {}
    dup = 0
    for x in recs:
        dup += x["task"] in by_task
        by_task[x["task"]] = x
    unexpected = sum(1 for t in by_task if not 0 <= t < n)
    lost = sum(1 for t in range(n) if t not in by_task)
    bad = {}
    wrong = 0
    for t, x in by_task.items():
        k = t % 1000
        kind = ("exception" if k == 11 else "exit" if k == 22 else "retry" if k == 33
                else "interrupt" if k == 44 else "segv" if t in (5, 5005)
                else "hang" if t == 7777 else "mem" if t in MEM else None)
        if kind is None:
            wrong += x["status"] != "ok" or x["output"] != str(t * 3)
            continue
        bad.setdefault(kind, []).append(x)
        want = {
            "exception": lambda x: x["cause"] == "python_exception" and x["error"].startswith(
                "ValueError: bad item %d\nTraceback (most recent call last):\n" % x["task"])
            and "pyt.py\", line" in x["error"] and x["error"].endswith(
                '\n    raise ValueError("bad item %d" % n)') and not x["retryable"]
            and x["attempts"] == 1,
            "exit": lambda x: x["cause"] == "python_exception"
            and x["error"].startswith("SystemExit: 4\n") and x["attempts"] == 1,
            "retry": lambda x: x["cause"] == "python_exception"
            and x["error"].startswith("pyt.Retry: busy") and x["attempts"] == 3,
            "interrupt": lambda x: x["cause"] == "python_exception"
            and x["error"].startswith("KeyboardInterrupt\n") and x["attempts"] == 1,
            "segv": lambda x: x["cause"] == "SIGSEGV" and "quarantined" in x["error"]
            and x["attempts"] == 3,
            "hang": lambda x: x["cause"] == "timeout" and x["attempts"] == 3,
            "mem": lambda x: x["cause"] == "resource_limit"
            and x["error"].startswith("MemoryError") and x["attempts"] == 1,
        }[kind]
        wrong += x["status"] != "failed" or not want(x)
        if x["status"] != "failed" or not want(x):
            sys.stderr.write("wrong %s record: %r\n" % (kind, x))
    counts = {k: len(v) for k, v in bad.items()}
    check(lost == 0 and dup == 0 and unexpected == 0 and wrong == 0,
          "lost %d, duplicated %d, unexpected %d, wrong %d" % (lost, dup, unexpected, wrong))
    want = {"exception": 10, "exit": 10, "retry": 10, "interrupt": 10, "segv": 2,
            "hang": 1, "mem": len(MEM)}
    check(counts == {k: v for k, v in want.items() if v}, repr(counts))
    print("    10,000 tasks, %d bad (%s): lost 0, duplicated 0, unexpected 0, "
          "wrong 0" % (sum(counts.values()), ", ".join(
              "%s %d" % kv for kv in sorted(counts.items()))))


def test_reducer_shared_counter_and_list():
    ex = os.path.join(zptest.SOURCE, "examples", "python")
    nums = [b"%d" % i for i in range(1, 1001)]
    d = zptest.tmpdir()
    inp = os.path.join(d, "in.txt")
    with open(inp, "wb") as f:
        f.write(b"".join(x + b"\n" for x in nums))
    r = run([binary("zpipe"), "run", "--plugin", "python", "--reduce", "--input", inp,
             "--no-progress", "--config", "path=" + ex, "--config", "func=shared:square",
             "--config", "codec=json", "--config", "reduce=shared:collect",
             "--config", "reduce_final=shared:summary", "--format", "lines"],
            capture_output=True, timeout=60)
    got = json.loads(r.stdout)
    want = {"count": 1000, "total": sum(i * i for i in range(1, 1001)),
            "values": [i * i for i in range(1, 1001)]}
    check(r.returncode == 0 and got == want, "reduced: %r" % r.stdout[:200])
    # A reducer that raises fails the job's one record with the reason.
    out = os.path.join(d, "out.jsonl")
    r = run([binary("zpipe"), "run", "--plugin", "python", "--reduce", "--input", inp,
             "--no-progress", "--config", "path=" + ex, "--config", "func=shared:square",
             "--config", "codec=json", "--config", "reduce=shared:collect",
             "--config", "reduce_final=shared:nope", "--output", out],
            capture_output=True, timeout=60)
    recs = read_jsonl(out)
    check(r.returncode == 1 and len(recs) == 1 and recs[0]["status"] == "failed"
          and "reduce_final=shared:nope: AttributeError" in recs[0]["error"],
          "bad reducer: exit %d %r %r" % (r.returncode, recs, r.stderr[-600:]))
    print("    the shared counter and list of 1,000 squares folded at the sink "
          "(examples/python/shared.py); a missing reduce_final fails the job's record")


def test_plugin_check_shows_the_exception():
    d = _modules()
    r = run([binary("zpipe"), "plugin", "check", "python", "--config", "func=pyt:boom",
             "--config", "path=" + d, "--input", "x"], capture_output=True, timeout=60)
    check(r.returncode == 0 and b"cause python_exception" in r.stdout
          and b"ValueError: no good: b'x'" in r.stdout, r.stdout[-800:])
    r = run([binary("zpipe"), "plugin", "check", "python", "--config", "func=pyt:task",
             "--config", "path=" + d, "--input", "5"], capture_output=True, timeout=60)
    check(r.returncode == 1 and b"crashed with SIGSEGV" in r.stdout, r.stdout[-800:])
    print("    zpipe plugin check python: an exception's cause and text; a "
          "segfault reported as a crash")


if __name__ == "__main__":
    zptest.main([
        test_raw_json_init_and_dotted_names,
        test_bad_settings_refuse_with_the_python_error,
        test_jobs_bring_their_own_function_to_shared_workers,
        test_every_failure_kind_among_10000_tasks,
        test_reducer_shared_counter_and_list,
        test_plugin_check_shows_the_exception,
    ])
