"""Reducers at the sink: wordcount's map in the workers and its reduce at
the sink give the same counts as a single-process count of a 10 MB text;
top N; a running sink reduces a submitted job; refusals."""
import collections
import itertools
import json
import os
import random
import time

import zptest
from zptest import binary, check, read_jsonl, run, start


def _text(path, size):
    """About size bytes of Zipf-ish text: a vocabulary of 50,000 words,
    some with punctuation and mixed case, tabs and runs of spaces."""
    rng = random.Random(7)
    vocab = ["w%d%s" % (i, rng.choice(["", "", "", ",", ".", "'s", "-x"]))
             for i in range(50000)]
    vocab += ["The", "the", "THE", "naïve", "café", "日本"]
    cum = list(itertools.accumulate(1.0 / (i + 1) for i in range(len(vocab))))
    written = 0
    with open(path, "wb") as f:
        while written < size:
            words = rng.choices(vocab, cum_weights=cum, k=rng.randint(0, 40))
            line = rng.choice([" ", "  ", "\t"]).join(words).encode()
            f.write(line + b"\n")
            written += len(line) + 1
    return written


def _single_process_count(path):
    c = collections.Counter()
    with open(path, "rb") as f:
        for line in f:
            c.update(line.split())
    return c


def _parse(output):
    out = collections.OrderedDict()
    for line in output.split("\n"):
        if line:
            word, count = line.rsplit(" ", 1)
            out[word.encode()] = int(count)
    return out


def test_wordcount_reduce_matches_a_single_process_count_on_10_mb():
    d = zptest.tmpdir()
    text = os.path.join(d, "text.txt")
    size = _text(text, 10 * 1024 * 1024 + 1)
    t0 = time.monotonic()
    expected = _single_process_count(text)
    t_py = time.monotonic() - t0
    out = os.path.join(d, "out.jsonl")
    t0 = time.monotonic()
    r = run([binary("zpipe"), "run", "--plugin", "wordcount", "--reduce",
             "--config", "top=0", "--input", text, "--output", out,
             "--workers", "2", "--no-progress"], capture_output=True, timeout=300)
    t_zp = time.monotonic() - t0
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr[-2000:]))
    recs = read_jsonl(out)
    check(len(recs) == 1 and recs[0]["reduced"] is True and recs[0]["status"] == "ok",
          "records: %r" % [dict(x, output="...") for x in recs[:3]])
    with open(text, "rb") as f:
        lines = sum(1 for _ in f)
    check(recs[0]["tasks"] == lines and recs[0]["succeeded"] == lines,
          "tasks %r, lines %d" % (recs[0]["tasks"], lines))
    got = _parse(recs[0]["output"])
    check(dict(got) == dict(expected),
          "counts differ: %d words vs %d; e.g. %r" % (
              len(got), len(expected),
              [(w, got.get(w), c) for w, c in expected.items() if got.get(w) != c][:5]))
    order = sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))
    check(list(got.items()) == order, "not most frequent first, ties by word")
    print("    %.1f MB, %d lines, %d distinct words, %d in all: equal to "
          "a single-process count (zpipe run --reduce, 2 workers: %.1f s; "
          "Python Counter: %.1f s)" % (size / 1e6, lines, len(expected),
                                       sum(expected.values()), t_zp, t_py))


def test_top_n_and_lines_format():
    d = zptest.tmpdir()
    text = os.path.join(d, "text.txt")
    _text(text, 300000)
    expected = sorted(_single_process_count(text).items(), key=lambda kv: (-kv[1], kv[0]))
    r = run([binary("zpipe"), "run", "--plugin", "wordcount", "--reduce",
             "--config", "top=7", "--input", text, "--format", "lines",
             "--no-progress"], capture_output=True, timeout=120)
    check(r.returncode == 0, r.stderr[-1000:])
    got = list(_parse(r.stdout.decode()).items())
    check(got == expected[:7], "top 7: %r vs %r" % (got, expected[:7]))
    # The default is the top 20.
    r = run([binary("zpipe"), "run", "--plugin", "wordcount", "--reduce", "--input", text,
             "--format", "lines", "--no-progress"], capture_output=True, timeout=120)
    check(len(r.stdout.splitlines()) == 20, "default top: %d lines" % len(r.stdout.splitlines()))
    print("    top=7 and the default top 20, as lines")


def test_a_running_sink_reduces_a_submitted_job():
    c = zptest.Cluster(sink_args=("--spool", zptest.tmpdir(), "--reduce", "wordcount",
                                  "--plugin-config", "wordcount.top=3"))
    spool = c.sink.args[c.sink.args.index("--spool") + 1]
    intake = "ipc://%s/intake" % c.dir
    start([binary("zpipe-ventilator"), "--intake", intake, "--bind", c.dispatch,
           "--sink", c.control], stderr=c._log("ventilator"))
    c.worker(["wordcount", "echo"])
    lines = b"".join(b"red green red blue red green\n" for _ in range(1000))
    r = run([binary("zpipe"), "submit", "--ventilator", intake, "--plugin", "wordcount",
             "--job", "colours"], input=lines, capture_output=True, timeout=60)
    check(r.returncode == 0, r.stderr)
    # A job of another plugin on the same sink keeps its per-task records.
    r = run([binary("zpipe"), "submit", "--ventilator", intake, "--plugin", "echo",
             "--job", "plain"], input=b"x\ny\n", capture_output=True, timeout=60)
    check(r.returncode == 0, r.stderr)
    for job in ("colours", "plain"):
        r = run([binary("zpipe"), "wait", "--sink", c.control, job],
                capture_output=True, timeout=60)
        check(r.returncode == 0, "wait %s: %r" % (job, r.stderr))
    r = run([binary("zpipe"), "results", "--sink", c.control, "colours"],
            capture_output=True, timeout=60)
    recs = [json.loads(l) for l in r.stdout.splitlines()]
    check(len(recs) == 1 and recs[0]["output"] == "red 3000\ngreen 2000\nblue 1000\n"
          and recs[0]["tasks"] == 1000, repr(recs))
    plain = [x for x in read_jsonl(os.path.join(spool, "plain.jsonl"))]
    check(sorted(x["output"] for x in plain) == ["x", "y"], repr(plain))
    # A sink whose reducer setting is bad: every wordcount job's reduction
    # fails; zpipe wait says so and exits 1 though every task succeeded.
    b = zptest.Cluster(sink_args=("--reduce", "wordcount", "--plugin-config",
                                  "wordcount.top=many"))
    bintake = "ipc://%s/intake" % b.dir
    start([binary("zpipe-ventilator"), "--intake", bintake, "--bind",
           b.dispatch, "--sink", b.control], stderr=b._log("ventilator"))
    b.worker(["wordcount"])
    r = run([binary("zpipe"), "submit", "--ventilator", bintake, "--plugin",
             "wordcount", "--job", "badtop"], input=b"a b\n",
            capture_output=True, timeout=60)
    check(r.returncode == 0, r.stderr)
    r = run([binary("zpipe"), "wait", "--sink", b.control, "badtop"],
            capture_output=True, timeout=60)
    check(r.returncode == 1 and b"the reduction failed: reduce_init failed: "
          b"setting top" in r.stdout, "wait badtop: %d %r %r" % (
              r.returncode, r.stdout, r.stderr))
    print("    a sink with --reduce wordcount: 1,000 submitted tasks -> one "
          "record (top 3), fetched by zpipe results; an echo job on the same "
          "sink kept its 2 records")


def test_a_plugin_without_reducer_or_a_bad_setting_is_refused():
    r = run([binary("zpipe"), "run", "--plugin", "echo", "--reduce", "--no-progress"],
            input=b"a\n", capture_output=True, timeout=60)
    check(r.returncode == 3 and b"has no reducer" in r.stderr, repr(r.stderr[-600:]))
    r = run([binary("zpipe"), "run", "--plugin", "wordcount", "--reduce",
             "--config", "top=many", "--no-progress"],
            input=b"a\n", capture_output=True, timeout=60)
    rec = json.loads(r.stdout)
    check(rec["status"] == "failed" and "reduce_init failed: setting top: expected"
          in rec["error"] and b"setting top" in r.stderr and b"restarting" not in r.stderr,
          repr((r.stdout, r.stderr[-600:])))
    # Every task succeeded, but the job's one record failed: exit 1.
    check(r.returncode == 1 and b"zpipe run: the reduction failed: "
          b"reduce_init failed: setting top" in r.stderr,
          "exit %d: %r" % (r.returncode, r.stderr[-600:]))
    print("    echo --reduce: refused (no reducer); top=many: refused")


if __name__ == "__main__":
    zptest.main([
        test_wordcount_reduce_matches_a_single_process_count_on_10_mb,
        test_top_n_and_lines_format,
        test_a_running_sink_reduces_a_submitted_job,
        test_a_plugin_without_reducer_or_a_bad_setting_is_refused,
    ])
