"""zpipe run end to end: sha256 digests, ordered/lines output, failures,
exit codes, bad options and bad plugins."""
import base64
import hashlib
import os
import subprocess
import time

import zptest
from zptest import binary, check, read_jsonl, run


def test_sha256_200000_lines_match_hashlib():
    d = zptest.tmpdir()
    out = os.path.join(d, "out.jsonl")
    seq = "".join("%d\n" % i for i in range(1, 200001)).encode()
    r = run([binary("zpipe"), "run", "--plugin", "sha256", "--workers", "2",
             "--output", out], input=seq, capture_output=True, timeout=120)
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr.decode()))
    recs = read_jsonl(out)
    check(len(recs) == 200000, "got %d records" % len(recs))
    seen = set()
    for rec in recs:
        want = hashlib.sha256(str(rec["task"] + 1).encode()).hexdigest()
        check(rec["status"] == "ok", "task %d: %r" % (rec["task"], rec))
        check(rec["output"] == want, "task %d digest %s != %s" % (rec["task"], rec["output"], want))
        check(rec["attempts"] == 1 and rec["worker"] and "elapsed_us" in rec, repr(rec))
        seen.add(rec["task"])
    check(seen == set(range(200000)), "task ids are not exactly 0..199999")
    check(b"200000 succeeded, 0 failed" in r.stderr, r.stderr.decode())


def test_ordered_lines_output_matches_input_order():
    d = zptest.tmpdir()
    inp = os.path.join(d, "in.txt")
    with open(inp, "w") as f:
        for i in range(20000):
            f.write("line %d\n" % i)
    r = run([binary("zpipe"), "run", "--plugin", "echo", "--workers", "3",
             "--input", inp, "--format", "lines", "--ordered", "--batch", "7"],
            capture_output=True, timeout=120)
    check(r.returncode == 0, r.stderr.decode())
    lines = r.stdout.decode().splitlines()
    check(lines == ["line %d" % i for i in range(20000)], "order not restored")


def test_ordered_jsonl_has_ascending_task_ids():
    seq = "".join("%d\n" % i for i in range(5000)).encode()
    r = run([binary("zpipe"), "run", "--plugin", "echo", "--workers", "2",
             "--ordered", "--batch", "3"], input=seq, capture_output=True, timeout=60)
    check(r.returncode == 0, r.stderr.decode())
    ids = [int(l.split(b'"task":')[1].split(b",")[0]) for l in r.stdout.splitlines()]
    check(ids == list(range(5000)), "ids not ascending")


def test_failures_are_records_and_exit_nonzero():
    d = zptest.tmpdir()
    inp = os.path.join(d, "in.txt")
    with open(inp, "w") as f:
        f.write("ok0\nfail1\nretry2\nbin3\nbig4\nok5\n")
    out = os.path.join(d, "out.jsonl")
    r = run([binary("zpipe"), "run", "--plugin", os.path.join(zptest.FIXTURES, "fx_fail.so"),
             "--workers", "2", "--input", inp, "--output", out], capture_output=True,
            timeout=60)
    check(r.returncode == 1, "exit %d, want 1: %s" % (r.returncode, r.stderr.decode()))
    recs = {rec["task"]: rec for rec in read_jsonl(out)}
    check(sorted(recs) == list(range(6)), "records %r" % sorted(recs))
    check(recs[0]["status"] == "ok" and recs[0]["output"] == "ok0", repr(recs[0]))
    check(recs[1]["status"] == "failed" and recs[1]["cause"] == "plugin_error"
          and recs[1]["error"] == "asked to fail" and recs[1]["retryable"] is False, repr(recs[1]))
    check(recs[2]["cause"] == "plugin_retry" and recs[2]["retryable"] is True
          and recs[2]["attempts"] == 3, repr(recs[2]))
    check(recs[1]["attempts"] == 1, "a permanent failure was retried: %r" % recs[1])
    check(base64.b64decode(recs[3]["output_b64"]) == b"\xff\x00\xfez", repr(recs[3]))
    check(recs[4]["status"] == "failed" and recs[4]["cause"] == "output_too_large", repr(recs[4]))
    check(b"3 failed" in r.stderr, r.stderr.decode())


def test_empty_input_completes_with_zero_tasks():
    r = run([binary("zpipe"), "run", "--plugin", "echo", "--workers", "1"],
            input=b"", capture_output=True, timeout=30)
    check(r.returncode == 0, r.stderr.decode())
    check(r.stdout == b"", "unexpected output %r" % r.stdout)
    check(b"0 tasks" in r.stderr, r.stderr.decode())


def test_last_line_without_newline_is_a_task():
    r = run([binary("zpipe"), "run", "--plugin", "echo", "--workers", "1",
             "--format", "lines", "--ordered"], input=b"a\n\nc", capture_output=True,
            timeout=30)
    check(r.returncode == 0, r.stderr.decode())
    check(r.stdout == b"a\n\nc\n", "got %r" % r.stdout)


def test_bad_option_prints_usage_and_exits_2():
    for args in (["--workers", "0"], ["--bogus"], ["--format", "xml"], []):
        r = run([binary("zpipe"), "run"] + (["--plugin", "echo"] if args else []) + args,
                input=b"", capture_output=True, timeout=10)
        check(r.returncode == 2, "%r: exit %d" % (args, r.returncode))
        check(b"Usage: zpipe run" in r.stderr, "%r: no usage in %r" % (args, r.stderr))
    for b in ("zpipe-worker", "zpipe-sink", "zpipe-ventilator"):
        r = run([binary(b), "--no-such-option"], capture_output=True, timeout=10)
        check(r.returncode == 2 and b"Usage:" in r.stderr, "%s: %r" % (b, r.stderr))
        r = run([binary(b), "--help"], capture_output=True, timeout=10)
        check(r.returncode == 0 and b"Usage:" in r.stdout, b)
        r = run([binary(b), "--version"], capture_output=True, timeout=10)
        check(r.returncode == 0 and r.stdout.startswith(b.encode()), b)


def test_bad_plugin_is_refused_with_file_and_reason():
    bad = os.path.join(zptest.FIXTURES, "fx_bad_major.so")
    r = run([binary("zpipe"), "run", "--plugin", bad, "--workers", "1"],
            input=b"x\n", capture_output=True, timeout=30)
    check(r.returncode == 3, "exit %d" % r.returncode)
    err = r.stderr.decode()
    check(bad in err and "this host speaks major" in err, err)
    r = run([binary("zpipe"), "run", "--plugin", "no_such_plugin", "--workers", "1"],
            input=b"x\n", capture_output=True, timeout=30)
    check(r.returncode == 3 and b"no plugin of that name" in r.stderr, r.stderr.decode())


def test_env_equivalents_configure_run():
    env = dict(os.environ, ZPIPE_PLUGIN="echo", ZPIPE_WORKERS="1", ZPIPE_FORMAT="lines")
    r = run([binary("zpipe"), "run"], input=b"hello\n", capture_output=True,
            env=env, timeout=30)
    check(r.returncode == 0 and r.stdout == b"hello\n", repr(r))


def test_push_dispatch_completes():
    seq = "".join("%d\n" % i for i in range(30000)).encode()
    r = run([binary("zpipe"), "run", "--plugin", "echo", "--workers", "2",
             "--dispatch", "push", "--batch", "64", "--format", "lines", "--ordered"],
            input=seq, capture_output=True, timeout=60)
    check(r.returncode == 0, r.stderr.decode())
    check(r.stdout == seq, "push output differs")


def test_run_on_a_big_payload():
    payload = b"x" * (3 << 20)
    r = run([binary("zpipe"), "run", "--plugin", "sha256", "--workers", "2",
             "--format", "lines"], input=payload + b"\n" + payload + b"y\n",
            capture_output=True, timeout=60)
    check(r.returncode == 0, r.stderr.decode())
    got = sorted(r.stdout.decode().split())
    want = sorted([hashlib.sha256(payload).hexdigest(),
                   hashlib.sha256(payload + b"y").hexdigest()])
    check(got == want, "digests differ")


def test_payload_sizes_round_trip_through_executors():
    # Batches of ~1 MiB each way: the worker writes the next batch to its
    # executor while the executor writes results back (a blocking write
    # on both sides once deadlocked here).
    for size, n in ((4096, 20000), (65536, 1500), (1 << 20, 40)):
        d = zptest.tmpdir()
        inp = os.path.join(d, "in.txt")
        with open(inp, "w") as f:
            for i in range(n):
                f.write("%08d" % i + "x" * (size - 8) + "\n")
        out = os.path.join(d, "out.txt")
        r = run([binary("zpipe"), "run", "--plugin", "echo", "--workers", "2",
                 "--input", inp, "--output", out, "--format", "lines"],
                capture_output=True, timeout=120)
        check(r.returncode == 0, "%d B: exit %d: %s"
              % (size, r.returncode, r.stderr.decode()[-2000:]))
        with open(out) as f:
            got = sorted(f.read().split())
        check(len(got) == n and all(len(l) == size and l[:8] == "%08d" % i
                                    for i, l in enumerate(got)),
              "%d B: %d records, or some differ" % (size, len(got)))
        print("    %d x %d B: every payload back" % (n, size))


def test_progress_is_shown_when_asked():
    r = run([binary("zpipe"), "run", "--plugin", "spin", "--workers", "2",
             "--progress", "--output", "/dev/null"], input=b"1000\n" * 1500,
            capture_output=True, timeout=60)
    check(r.returncode == 0, r.stderr.decode())
    err = r.stderr.decode()
    check("tasks/s" in err and "ETA" in err and "/1500" in err, err)


def test_failing_component_ends_run_with_clear_error():
    # A directory as input: the ventilator cannot read it and exits; zpipe
    # run must notice, say so and exit 3 rather than wait forever.
    d = zptest.tmpdir()
    r = run([binary("zpipe"), "run", "--plugin", "echo", "--workers", "1",
             "--input", d], capture_output=True, timeout=30)
    check(r.returncode == 3, "exit %d: %s" % (r.returncode, r.stderr.decode()))
    check(b"ventilator" in r.stderr and b"cannot complete" in r.stderr, r.stderr.decode())


def test_an_output_that_cannot_be_opened_ends_the_run_at_once():
    # -o in a folder that does not exist: the sink cannot start, and would
    # not start the next time either. zpipe run used to restart it with a
    # growing backoff until interrupted.
    d = zptest.tmpdir()
    t0 = time.monotonic()
    r = run([binary("zpipe"), "run", "--plugin", "echo", "--workers", "1",
             "-o", os.path.join(d, "no", "such", "out.jsonl")],
            input=b"a\nb\n", capture_output=True, timeout=30)
    took = time.monotonic() - t0
    err = r.stderr.decode(errors="replace")
    check(r.returncode == 3, "exit %d: %s" % (r.returncode, err))
    check("cannot open output" in err and "could not start" in err, err)
    check("restarting" not in err, err)
    check(took < 5, "took %.1f s" % took)


if __name__ == "__main__":
    zptest.main([
        test_sha256_200000_lines_match_hashlib,
        test_ordered_lines_output_matches_input_order,
        test_ordered_jsonl_has_ascending_task_ids,
        test_failures_are_records_and_exit_nonzero,
        test_empty_input_completes_with_zero_tasks,
        test_last_line_without_newline_is_a_task,
        test_bad_option_prints_usage_and_exits_2,
        test_bad_plugin_is_refused_with_file_and_reason,
        test_env_equivalents_configure_run,
        test_push_dispatch_completes,
        test_run_on_a_big_payload,
        test_payload_sizes_round_trip_through_executors,
        test_progress_is_shown_when_asked,
        test_failing_component_ends_run_with_clear_error,
        test_an_output_that_cannot_be_opened_ends_the_run_at_once,
    ])
