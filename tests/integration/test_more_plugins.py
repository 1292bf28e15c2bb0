"""The gzip plugin (zlib) and the topwords plugin (C++ behind the C ABI):
gzip output that Python's gzip and zlib modules read back, the level and
format settings, bad settings refused by name, gzip payloads decompressed
through a running cluster's intake, corrupt ones and decompression bombs
failed with the reason; topwords equal to the same computation in Python,
its std::bad_alloc under a memory limit a task failure, not a crash."""
import base64
import gzip
import os
import random
import re
import sys
import zlib
from collections import Counter

import zptest
from zptest import binary, check, read_jsonl, run, start

EXAMPLES = os.path.join(zptest.SOURCE, "examples", "python")

WORDS = ("the a and of to in is it that zpipe worker sink ventilator task "
         "plugin ZeroMQ Über naïve café don't 42 x1 GZIP deflate inflate "
         "stream window").split()


def _lines(n, seed=7):
    """n lines of varied text: repeated words, mixed case, punctuation,
    digits, UTF-8, a few long and a few empty lines."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        k = rnd.choice([0, 1, 3, 8, 20, 60, 400]) if i % 50 else 2000
        words = [rnd.choice(WORDS) for _ in range(k)]
        if rnd.random() < 0.3:
            words = [w.upper() if rnd.random() < 0.3 else w for w in words]
        sep = rnd.choice([" ", ", ", "; ", " -- ", "\t", "  "])
        tail = rnd.choice(["", ".", "!", " %d" % rnd.randrange(10 ** 6)])
        out.append((sep.join(words) + tail).encode())
    return out


def _run(plugin, lines, config=(), args=(), timeout=300):
    return zptest.run_plugin(plugin, lines, config, args, timeout)


def _output(rec):
    """A record's output bytes: binary outputs are base64 (output_b64)."""
    if "output_b64" in rec:
        return base64.b64decode(rec["output_b64"])
    return rec["output"].encode()


def _all_ok(r, recs, n):
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr[-2000:]))
    check(sorted(recs) == list(range(n)), "%d records of %d" % (len(recs), n))
    bad = [rec for rec in recs.values() if rec["status"] != "ok"]
    check(not bad, "%d failed, e.g. %r" % (len(bad), bad[:1]))


def test_gzip_round_trip_of_3000_lines_through_zpipe_run():
    lines = _lines(3000)
    r, recs = _run("gzip", lines, args=["--workers", "2"])
    _all_ok(r, recs, len(lines))
    outs = [_output(recs[i]) for i in range(len(lines))]
    wrong = [i for i, o in enumerate(outs) if gzip.decompress(o) != lines[i]]
    check(not wrong, "%d differ, e.g. task %d" % (len(wrong), wrong[0]) if wrong else "")
    check(all(o[:2] == b"\x1f\x8b" for o in outs), "not gzip members")
    check(sum("output_b64" in rec for rec in recs.values()) == len(lines),
          "binary output not written as output_b64")
    size_in = sum(map(len, lines))
    size_out = sum(map(len, outs))
    print("    %d lines (%d bytes): gzip.decompress of every output_b64 is its "
          "line; %d bytes compressed" % (len(lines), size_in, size_out))


def test_zlib_and_raw_formats_are_read_by_python_zlib():
    lines = _lines(1000, seed=11)
    figures = []
    for fmt, wbits in (("zlib", zlib.MAX_WBITS), ("raw", -zlib.MAX_WBITS)):
        r, recs = _run("gzip", lines, ["format=" + fmt], ["--workers", "2"])
        _all_ok(r, recs, len(lines))
        outs = [_output(recs[i]) for i in range(len(lines))]
        wrong = [i for i, o in enumerate(outs) if zlib.decompress(o, wbits) != lines[i]]
        check(not wrong, "format=%s: %d differ" % (fmt, len(wrong)))
        if fmt == "zlib":  # what Python's own zlib.compress writes, byte for byte
            same = sum(o == zlib.compress(l, 6) for o, l in zip(outs, lines))
            check(same == len(lines), "%d of %d equal zlib.compress" % (same, len(lines)))
        figures.append("%s %d bytes" % (fmt, sum(map(len, outs))))
    print("    %d lines each as format=zlib (byte-identical to zlib.compress) "
          "and format=raw, read back by Python's zlib: %s" % (len(lines), ", ".join(figures)))


def test_level_changes_the_size():
    lines = _lines(1000, seed=3)
    size_in = sum(map(len, lines))
    sizes = {}
    for level in ("0", "1", "9"):
        r, recs = _run("gzip", lines, ["level=" + level], ["--workers", "2"])
        _all_ok(r, recs, len(lines))
        outs = [_output(recs[i]) for i in range(len(lines))]
        check(all(gzip.decompress(o) == l for o, l in zip(outs, lines)),
              "level %s: a round trip failed" % level)
        sizes[level] = sum(map(len, outs))
    check(sizes["0"] > size_in, "level 0 stores: %r vs %d" % (sizes, size_in))
    check(sizes["0"] > sizes["1"] > sizes["9"], repr(sizes))
    print("    %d bytes in: level 0 -> %d, level 1 -> %d, level 9 -> %d bytes"
          % (size_in, sizes["0"], sizes["1"], sizes["9"]))


def test_bad_settings_are_refused_naming_the_setting():
    cases = [("gzip", "level=10", b"setting level=10: expected 0 to 9"),
             ("gzip", "level=fast", b"setting level=fast: expected 0 to 9"),
             ("gzip", "mode=squash", b"setting mode=squash: expected compress or decompress"),
             ("gzip", "format=bz2", b"setting format=bz2: expected gzip, zlib or raw"),
             ("topwords", "top=-1", b"setting top=-1: expected 0 (all) to 1000000"),
             ("topwords", "top=many", b"setting top=many")]
    for plugin, config, why in cases:
        r, recs = _run(plugin, [b"x"], [config], ["--workers", "1"], timeout=60)
        check(r.returncode != 0 and not recs, "%s: exit %d" % (config, r.returncode))
        check(why in r.stderr and plugin.encode() in r.stderr,
              "%s: %r" % (config, r.stderr[-600:]))
    print("    %d bad settings: the run refuses the plugin, naming the setting "
          "and the reason" % len(cases))


class _Service(zptest.Cluster):
    """A sink with a spool, a ventilator with an intake, and workers."""

    def __init__(self, plugins, worker_args=(), workers=2):
        self.spool = zptest.tmpdir()
        super().__init__(sink_args=("--spool", self.spool))
        self.intake = "ipc://%s/intake" % self.dir
        self.vent = start([binary("zpipe-ventilator"), "--intake", self.intake,
                           "--bind", self.dispatch, "--sink", self.control],
                          stderr=self._log("ventilator"))
        for _ in range(workers):
            self.worker(plugins=plugins, args=worker_args)

    def submit(self, plugin, payloads):
        """One job of these payloads through the intake; its records by task."""
        sys.path.insert(0, EXAMPLES)
        import consumer
        import producer
        p = producer.Producer(self.intake, plugin)
        for k in range(0, len(payloads), 500):
            p.send(payloads[k:k + 500])
        p.close()
        return {rec["task"]: rec for rec, _ in consumer.records(self.control, p.job_id)}


def test_decompress_gzip_payloads_sent_through_the_intake():
    lines = _lines(2000, seed=5)
    rnd = random.Random(1)
    # Python's gzip at several levels, and some payloads of two members.
    payloads = []
    for i, l in enumerate(lines):
        if i % 10 == 0:
            h = len(l) // 2
            payloads.append(gzip.compress(l[:h]) + gzip.compress(l[h:]))
        else:
            payloads.append(gzip.compress(l, compresslevel=rnd.randrange(10)))
    s = _Service(["gzip"], ["--plugin-config", "gzip.mode=decompress"])
    recs = s.submit("gzip", payloads)
    check(sorted(recs) == list(range(len(lines))), "%d records" % len(recs))
    wrong = [i for i in range(len(lines))
             if recs[i]["status"] != "ok" or _output(recs[i]) != lines[i]]
    check(not wrong, "%d wrong, e.g. %r" % (len(wrong), recs[wrong[0]]) if wrong else "")
    print("    %d gzip payloads (%d bytes, 200 of two members) sent as binary "
          "tasks to the intake: every one decompressed to its line"
          % (len(payloads), sum(map(len, payloads))))


def test_corrupt_input_and_bombs_fail_with_the_reason():
    good = gzip.compress(b"fine")
    bad_crc = bytearray(gzip.compress(b"a line of text"))
    bad_crc[-5] ^= 0xFF  # CRC-32 in the trailer
    payloads = [
        good,
        b"not gzip at all",                              # bad magic
        gzip.compress(b"truncated line " * 20)[:-12],    # stream cut short
        bytes(bad_crc),
        b"",                                             # empty
        good + b"junk after the member",                 # trailing garbage
        gzip.compress(bytes(4 << 20)),                   # 4 MiB of zeros
        good,
    ]
    # The workers' --max-output bounds what one task may inflate to.
    s = _Service(["gzip"], ["--plugin-config", "gzip.mode=decompress",
                            "--max-output", str(1 << 20)])
    recs = s.submit("gzip", payloads)
    check(sorted(recs) == list(range(len(payloads))), "%d records" % len(recs))
    for i in (0, 7):
        check(recs[i]["status"] == "ok" and recs[i]["output"] == "fine", repr(recs[i]))
    want = {1: "corrupt input: incorrect header check",
            2: "truncated input: the stream does not end",
            3: "corrupt input: incorrect data check",
            4: "empty input",
            5: "corrupt input: incorrect header check",
            6: "output too large"}
    for i, error in want.items():
        rec = recs[i]
        # ZPIPE_INVALID and ZPIPE_ERROR are both permanent failures; the
        # record's cause is plugin_error for either (workers/worker.c).
        check(rec["status"] == "failed" and rec["cause"] == "plugin_error"
              and rec["retryable"] is False and rec["attempts"] == 1
              and rec["error"] == error, "task %d: %r" % (i, rec))
    print("    5 corrupt payloads failed with zlib's reason (not retried); a "
          "%d-byte payload inflating to 4 MiB stopped at --max-output 1 MiB; "
          "the good ones around them ok" % len(payloads[6]))


def _topwords(line):
    words = re.findall(rb"[A-Za-z0-9']+", line)
    counts = Counter(w.lower() for w in words)
    pairs = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return b", ".join(b"%s %d" % kv for kv in pairs)


def test_topwords_equals_python_on_3000_lines():
    lines = _lines(3000, seed=9)
    r, recs = _run("topwords", lines, args=["--workers", "2"])
    _all_ok(r, recs, len(lines))
    wrong = [i for i in range(len(lines)) if _output(recs[i]) != _topwords(lines[i])]
    check(not wrong, "%d differ, e.g. %r vs %r" % (
        len(wrong), recs[wrong[0]], _topwords(lines[wrong[0]])) if wrong else "")
    # top=N keeps the first N pairs.
    r, recs3 = _run("topwords", lines[:300], ["top=3"], ["--workers", "1"])
    _all_ok(r, recs3, 300)
    check(all(_output(recs3[i]) == b", ".join(_topwords(l).split(b", ")[:3])
              for i, l in enumerate(lines[:300])), "top=3 differs")
    pairs = sum(_output(rec).count(b",") + 1 for rec in recs.values() if _output(rec))
    print("    %d lines: every output equal to Python's Counter and sort "
          "(%d word-count pairs); top=3 keeps the first three" % (len(lines), pairs))


def test_topwords_out_of_memory_is_a_task_failure():
    if zptest.SANITIZED:
        raise zptest.Skip("RLIMIT_AS cannot limit an AddressSanitizer process")
    # 4 million distinct words: far more map than 256 MiB of address space.
    hog = b" ".join(b"w%d" % i for i in range(4000000))
    r, recs = _run("topwords", [b"a b a", hog, b"c"],
                   args=["--workers", "1", "--memory-limit", str(256 << 20)])
    check(r.returncode == 1, "exit %d: %s" % (r.returncode, r.stderr[-2000:]))
    check(recs[1]["status"] == "failed" and recs[1]["cause"] == "resource_limit"
          and recs[1]["error"] == "out of memory", repr(recs[1]))
    check(recs[0]["output"] == "a 2, b 1" and recs[2]["output"] == "c 1", repr(recs))
    print("    a %d MB line of 4M distinct words under a 256 MiB limit: "
          "std::bad_alloc became a resource_limit failure, the tasks around "
          "it ok" % (len(hog) >> 20))


def test_plugins_are_loaded_by_worker_describe():
    with open(os.path.join(zptest.SOURCE, "include", "zpipe", "plugin.h")) as f:
        abi = dict(re.findall(r"#define ZPIPE_ABI_(MAJOR|MINOR) (\d+)", f.read()))
    version = ("%s.%s" % (abi["MAJOR"], abi["MINOR"])).encode()
    for name in ("topwords", "gzip"):
        r = run([binary("zpipe-worker"), "--plugin", name, "--describe"],
                capture_output=True, timeout=30)
        check(r.returncode == 0, r.stderr.decode())
        fields = r.stdout.rstrip(b"\n").split(b"\t")
        check(fields[:3] == [name.encode(), b"1.0", version]
              and fields[3].endswith(b"/" + name.encode() + b".so"), repr(r.stdout))
    print("    zpipe-worker --plugin topwords|gzip --describe: loaded, "
          "ABI %s" % version.decode())


if __name__ == "__main__":
    zptest.main([
        test_gzip_round_trip_of_3000_lines_through_zpipe_run,
        test_zlib_and_raw_formats_are_read_by_python_zlib,
        test_level_changes_the_size,
        test_bad_settings_are_refused_naming_the_setting,
        test_decompress_gzip_payloads_sent_through_the_intake,
        test_corrupt_input_and_bombs_fail_with_the_reason,
        test_topwords_equals_python_on_3000_lines,
        test_topwords_out_of_memory_is_a_task_failure,
        test_plugins_are_loaded_by_worker_describe,
    ])
