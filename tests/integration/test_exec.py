"""The exec plugin: any command per task through zpipe run, like GNU
parallel: output equal to the direct command, payloads as arguments never
seen by a shell, exit status and stderr in failure records, settings
refused with the reason, and a command past its deadline killed with its
children."""
import os
import subprocess
import time

import zptest
from zptest import binary, check, read_jsonl, run


def _run(d, lines, config, args=(), timeout=300):
    return zptest.run_plugin("exec", lines, config, args, timeout, d=d)


def test_sha256sum_of_10000_tasks_equals_the_direct_command():
    d = zptest.tmpdir()
    n = 10000
    lines = [b"line %d of the exec test" % i for i in range(n)]
    t0 = time.monotonic()
    r, recs = _run(d, lines, ["cmd=sha256sum"], ["--workers", "2"])
    t_zpipe = time.monotonic() - t0
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr[-2000:]))
    check(sorted(recs) == list(range(n)), "%d records" % len(recs))
    # The same command run directly on each payload, one process per task.
    t0 = time.monotonic()
    direct = [subprocess.run(["sha256sum"], input=l, capture_output=True,
                             check=True).stdout for l in lines]
    t_direct = time.monotonic() - t0
    wrong = [i for i in range(n)
             if recs[i]["status"] != "ok" or recs[i]["output"] + "\n" != direct[i].decode()]
    check(not wrong, "%d differ, e.g. task %d: %r vs %r" % (
        len(wrong), wrong[0], recs[wrong[0]], direct[wrong[0]]) if wrong else "")
    print("    %d x sha256sum: every output equal to the direct command's "
          "(zpipe run, 2 workers: %.1f s; one by one from Python: %.1f s)"
          % (n, t_zpipe, t_direct))


def test_payload_is_one_argument_never_a_shell_command():
    d = zptest.tmpdir()
    marker = os.path.join(d, "pwned")
    lines = [b"a b; touch " + marker.encode(), b"$(touch " + marker.encode() + b")",
             b"quote ' and \" and \\ backslash", b"*"]
    r, recs = _run(d, lines, ["cmd=printf '[%s]' {}"])
    check(r.returncode == 0, r.stderr[-2000:])
    for i, l in enumerate(lines):
        check(recs[i]["output"] == "[%s]" % l.decode(), "task %d: %r" % (i, recs[i]))
    check(not os.path.exists(marker), "a payload ran as a shell command")
    # With shell=1 the payload is "$1" and stdin; the command line is shell.
    r, recs = _run(d, [b"x y"], ["cmd=echo \"<$1>\" | tr a-z A-Z", "shell=1"])
    check(r.returncode == 0 and recs[0]["output"] == "<X Y>", repr(recs))
    print("    {} is one argument: a ';', $(...), quotes and * reach the "
          "command unchanged; shell=1 runs a pipeline with $1")


def test_exit_status_stderr_env_and_cwd():
    d = zptest.tmpdir()
    r, recs = _run(d, [b"3", b"75", b"0"],
                   ["cmd=sh -c 'echo out; echo \"oops $0\" >&2; exit $0' {}"],
                   ["--max-attempts", "2"])
    check(r.returncode == 1, "exit %d" % r.returncode)
    check(recs[0]["status"] == "failed" and recs[0]["retryable"] is False
          and recs[0]["attempts"] == 1
          and recs[0]["error"] == "sh exited with status 3: oops 3\n", repr(recs[0]))
    check(recs[1]["retryable"] is True and recs[1]["attempts"] == 2,
          "exit 75 (EX_TEMPFAIL) is retried: %r" % recs[1])
    check(recs[2]["status"] == "ok" and recs[2]["output"] == "out", repr(recs[2]))
    r, recs = _run(d, [b"-"], ["cmd=sh -c 'echo \"$GREETING\"; pwd; cat'",
                               "env=GREETING='hello there' OTHER=1", "cwd=/tmp"])
    check(r.returncode == 0 and recs[0]["output"] == "hello there\n/tmp\n-",
          repr(recs))
    # stderr is kept to its last stderr_max bytes.
    r, recs = _run(d, [b"x"], ["cmd=sh -c 'head -c 100000 /dev/zero | tr \"\\\\0\" e >&2; "
                               "echo end >&2; exit 1'", "stderr_max=100"])
    err = recs[0]["error"]
    check(err.endswith("eeeeend\n") and len(err) < 200 and "..." in err, repr(err))
    # stderr that is not UTF-8 still makes a record that is strict JSON
    # (read_jsonl decodes the bytes as UTF-8 and would raise).
    r, recs = _run(d, [b"x"], ["cmd=sh -c 'printf \"bad \\377\\376 end\" >&2; "
                               "exit 3'"])
    check(recs[0]["error"] == "sh exited with status 3: bad \ufffd\ufffd end",
          repr(recs[0]))
    print("    exit 3 -> failed, not retried; exit 75 -> retried; stderr in the "
          "error (bounded); env and cwd applied")


def test_bad_settings_are_refused_with_the_reason():
    d = zptest.tmpdir()
    for config, why in [(["cmd="], b"setting cmd=: empty"),
                        (["cmd=echo", "shell=maybe"], b"setting shell=maybe: expected 0 or 1"),
                        (["cmd=echo 'open"], b"unterminated quote"),
                        (["cmd=echo", "cwd=/no/such/dir"], b"setting cwd=/no/such/dir"),
                        (["cmd=echo", "retry_exit=300"], b"setting retry_exit=300")]:
        r, _ = _run(d, [b"x"], config, timeout=60)
        check(r.returncode != 0 and why in r.stderr and b"exec" in r.stderr,
              "%r: exit %d %r" % (config, r.returncode, r.stderr[-600:]))
    r = run([binary("zpipe"), "run", "--plugin", "exec", "--config", "novalue"],
            capture_output=True, input=b"", timeout=30)
    check(r.returncode == 2 and b"KEY=VALUE" in r.stderr, repr(r.stderr))
    # No cmd at all: the plugin loads (a worker may serve jobs that bring
    # their own), and each task fails saying what is missing.
    r, recs = _run(d, [b"x"], [], timeout=60)
    check(r.returncode == 1 and recs[0]["cause"] == "plugin_error" and
          "exec has no command" in recs[0]["error"], repr(recs))
    print("    5 bad settings: the run refuses the plugin naming the setting "
          "and the reason")


def _sleepers(tag):
    r = subprocess.run(["pgrep", "-f", tag], capture_output=True)
    return r.stdout.split()


def test_deadline_kills_the_command_and_its_children():
    d = zptest.tmpdir()
    tag = "37.%d" % os.getpid()  # sleep 37.<pid>: ours alone
    t0 = time.monotonic()
    r, recs = _run(d, [b"a", b"b", b"c"],
                   ["cmd=sleep %s & sleep %s & sleep %s; echo never" % (tag, tag, tag),
                    "shell=1"], ["--deadline-ms", "500", "--workers", "2"])
    elapsed = time.monotonic() - t0
    check(r.returncode == 1, "exit %d %r" % (r.returncode, r.stderr[-1000:]))
    for i in range(3):
        check(recs[i]["status"] == "failed" and "timed out after 500 ms; killed"
              in recs[i]["error"], repr(recs[i]))
    left = _sleepers("sleep " + tag)
    check(not left, "%d children outlived their task: %r" % (len(left), left))
    # A command that exits but leaves a child behind: the child goes too.
    tag2 = "38.%d" % os.getpid()
    r, recs = _run(d, [b"x"], ["cmd=sleep %s > /dev/null 2>&1 & echo started" % tag2,
                               "shell=1"])
    check(recs[0]["status"] == "ok" and recs[0]["output"] == "started", repr(recs))
    time.sleep(0.2)
    check(not _sleepers("sleep " + tag2), "a background child outlived its task")
    print("    3 tasks past a 500 ms deadline failed as timeouts in %.1f s; "
          "0 of their 9 sleeping children left; a leftover background child "
          "killed at exit" % elapsed)


def test_each_job_brings_its_own_command_to_shared_workers():
    """Workers load exec with no command; jobs submitted to the running
    cluster each set theirs (zpipe submit --config, the Python producer,
    the ventilator's --config for a file job). A job with a bad setting
    fails every task with the reason, and the others are not disturbed."""
    import sys
    import hashlib
    sys.path.insert(0, os.path.join(zptest.SOURCE, "examples", "python"))
    import producer
    c, intake, spool = zptest.service_cluster(["exec", "echo"])
    n = 500
    lines = b"".join(b"item %d\n" % i for i in range(n))
    jobs = {"sha": ["cmd=sha256sum"], "upper": ["cmd=tr a-z A-Z"],
            "bad": ["cmd=echo", "shell=maybe"]}
    for job, config in jobs.items():
        args = [binary("zpipe"), "submit", "--ventilator", intake, "--plugin", "exec",
                "--job", job]
        for kv in config:
            args += ["--config", kv]
        r = run(args, input=lines, capture_output=True, timeout=60)
        check(r.returncode == 0, "submit %s: %r" % (job, r.stderr))
    p = producer.Producer(intake, "exec", job_id="py", config={"cmd": "wc -c"})
    p.send([b"x" * i for i in range(1, 101)])
    p.close()
    for job in list(jobs) + ["py"]:
        r = run([binary("zpipe"), "wait", "--sink", c.control, job], capture_output=True,
                timeout=120)
        check(r.returncode in (0, 1), "wait %s: %r" % (job, r.stderr))
    rec = lambda job: {x["task"]: x for x in read_jsonl(os.path.join(spool, job + ".jsonl"))}  # noqa
    sha, upper, bad, py = rec("sha"), rec("upper"), rec("bad"), rec("py")
    check(len(sha) == n and all(sha[i]["output"] == "%s  -" % hashlib.sha256(
        b"item %d" % i).hexdigest() for i in range(n)), "sha job")
    check(len(upper) == n and all(upper[i]["output"] == "ITEM %d" % i for i in range(n)),
          "upper job")
    check(len(py) == 100 and all(py[i]["output"].strip() == str(i + 1) for i in range(100)),
          "python job")
    check(len(bad) == n and all(x["status"] == "failed" and x["cause"] == "plugin_init"
                                and "setting shell=maybe: expected 0 or 1" in x["error"]
                                and x["attempts"] == 1 for x in bad.values()),
          "bad job: %r" % list(bad.values())[:1])
    # A file job's settings from the ventilator's --config.
    c2 = zptest.Cluster()
    c2.worker(["exec"])
    inp = os.path.join(c2.dir, "in.txt")
    with open(inp, "w") as f:
        f.write("a\nb\n")
    v = c2.ventilator("exec", inp, args=("--config", "cmd=sed s/^/got-/"))
    check(v.wait(60) == 0, "file job with --config failed")
    zptest.stop(c2.sink)
    got = sorted(x["output"] for x in read_jsonl(c2.output))
    check(got == ["got-a", "got-b"], repr(got))
    print("    one pair of workers, four jobs with their own commands "
          "(sha256sum, tr, wc -c from Python, a bad setting -> %d plugin_init "
          "failures with the reason), and a file job's --config" % len(bad))


if __name__ == "__main__":
    zptest.main([
        test_sha256sum_of_10000_tasks_equals_the_direct_command,
        test_payload_is_one_argument_never_a_shell_command,
        test_exit_status_stderr_env_and_cwd,
        test_bad_settings_are_refused_with_the_reason,
        test_deadline_kills_the_command_and_its_children,
        test_each_job_brings_its_own_command_to_shared_workers,
    ])
