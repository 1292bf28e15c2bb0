#!/usr/bin/python3
"""README.md's Speed section, built from bench/results.md: never typed by
hand. Every figure and every claim in it comes from the rows of the last
run of each part of the benchmark, with the date, machine and commit that
run recorded in its section header.

    /usr/bin/python3 bench/readme.py           # rewrite README.md between the markers
    /usr/bin/python3 bench/readme.py --check   # exit 1 (and a diff) when README.md differs
    /usr/bin/python3 bench/readme.py --print   # the generated text on stdout

bench/run.py calls it after writing results.md; ctest `readme_speed` runs
--check, so a hand edit of the section or a results.md committed without
its README fails.
"""
import argparse
import difflib
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BEGIN = "<!-- speed:begin -->"
END = "<!-- speed:end -->"

MAIN = "# zpipe benchmark results"
WHOLE = "## Whole process: the user's stopwatch"
EXEC = "## GNU parallel vs zpipe exec (one command per task)"
PYTHON = "## Python: zpipe.Pool and the python plugin"
PAYLOADS = "## Big payloads: zpipe against raw and plain libzmq"
SERVICE = "## Service path against zpipe run"


# ---- reading results.md ----

def sections(text):
    """{heading: body} for the file's title part and each "## " section."""
    out = {}
    parts = re.split(r"\n(?=## )", text)
    for i, part in enumerate(parts):
        head, _, body = part.partition("\n")
        if i == 0 and not head.startswith("## "):
            head = MAIN if head.strip() == MAIN else head.strip()
        out[head.strip()] = body
    return out


def split_row(line):
    """The cells of a markdown table row (an escaped \\| stays in its cell)."""
    cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [c.strip() for c in cells]


def tables(body):
    """Every table of a section: (header, rows), each row {header: cell}
    and its cells in order under "_cells" (for repeated headers)."""
    out, lines, i = [], body.splitlines(), 0
    while i < len(lines):
        if (lines[i].startswith("|") and i + 1 < len(lines)
                and re.match(r"^\|(\s*:?-+:?\s*\|)+\s*$", lines[i + 1])):
            head = split_row(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = split_row(lines[i])
                cells += [""] * (len(head) - len(cells))
                row = dict(zip(head, cells))
                row["_cells"] = cells
                rows.append(row)
                i += 1
            out.append((head, rows))
        else:
            i += 1
    return out


def provenance(body):
    """{when, host, commit, cmd, runs} from a section's "Measured ..." line;
    what a header does not say is None."""
    m = re.search(r"Measured (\d{4}-\d\d-\d\d \d\d:\d\d) on ([^;]*);", body)
    p = {"when": m.group(1) if m else None, "host": m.group(2).strip() if m else None}
    m = re.search(r"zpipe built ([^;]*);", body)
    if m and p["host"] and "zpipe built" not in p["host"]:
        p["host"] += "; zpipe built " + m.group(1).strip()
    m = re.search(r"\bcommit (\S+) \(([^)]*)\)", body)
    p["commit"] = "%s (%s)" % (m.group(1), m.group(2)) if m else None
    m = re.search(r"`(/usr/bin/python3 bench/[^`]*)`", body)
    p["cmd"] = m.group(1) if m else None
    m = re.search(r"medians of (\d+)", body)
    p["runs"] = int(m.group(1)) if m else None
    p["quick"] = "--quick" in (p["cmd"] or "") or "quick mode" in body
    m = re.search(r"1-minute load average ([\d.]+) at the start, ([\d.]+) at the end",
                  body)
    p["load"] = m.groups() if m else None
    return p


def num(cell):
    """The number at the start of a cell ("1,234", "0.75", "95 %"), or None."""
    m = re.match(r"^\s*(-?[\d,]*\.?\d+)", cell or "")
    return float(m.group(1).replace(",", "")) if m else None


# ---- writing ----

def fmt_n(n):
    return "{:,}".format(int(n))


def fmt_ratio(x):
    """As bench/run.py writes ratios: 2 decimals, 2 significant digits
    below 0.1."""
    return "%.2f" % x if x >= 0.1 else "%.2g" % x


def stamp(p, what):
    """One line saying where a part's figures come from."""
    if not p["when"]:
        return "*%s: no date recorded.*" % what
    s = "*%s: measured %s on %s; %s" % (
        what, p["when"], p["host"],
        p["commit"] and "commit " + p["commit"] or "commit not recorded (run "
        "before bench/run.py wrote it)")
    if p["cmd"]:
        s += "; `%s`" % p["cmd"]
    if p["runs"]:
        s += "; medians of %d alternating runs" % p["runs"]
    if p["load"]:
        s += "; 1-minute load average %s at the start, %s at the end" % p["load"]
    if p["quick"]:
        s += "; **quick mode: small inputs, not the full benchmark**"
    return s + ".*"


def sizes_phrase(items, unit="lines"):
    """"1 line, 10,000 and 200,000 lines" from sizes."""
    items = [int(n) for n in items]
    if not items:
        return ""
    words = [fmt_n(n) for n in items]
    if len(words) == 1:
        return "%s %s" % (words[0], "line" if items[0] == 1 and unit == "lines" else unit)
    return "%s and %s %s" % (", ".join(words[:-1]), words[-1], unit)


def verdict(pairs):
    """pairs [(size, ratio)] of zpipe's time over another's: where zpipe
    took less time, more, the same (ratios as printed, 2 decimals)."""
    less = [n for n, r in pairs if round(r, 2) < 1]
    more = [n for n, r in pairs if round(r, 2) > 1]
    same = [n for n, r in pairs if round(r, 2) == 1]
    parts = []
    if less:
        parts.append("less time at %s" % sizes_phrase(less))
    if more:
        parts.append("more at %s" % sizes_phrase(more))
    if same:
        parts.append("the same at %s" % sizes_phrase(same))
    return "zpipe takes " + "; ".join(parts) if parts else ""


def whole_part(body):
    p = provenance(body)
    tabs = tables(body)
    secs = [t for t in tabs if t[0][:2] == ["system", "command"]]
    rats = [t for t in tabs if t[0][:2] == ["lines", "zpipe"]]
    if not secs or not rats:
        return None
    (thead, trows), (rhead, rrows) = secs[0], rats[0]
    sizes = thead[2:]
    out = [stamp(p, "Whole commands, timed from start to exit, 2 workers each"), "",
           "Seconds (medians; blank: not run at that size):", "",
           "| system | command | %s |" % " | ".join("%s lines" % s if s != "1" else "1 line"
                                                  for s in sizes),
           "|---|---|%s" % ("---|" * len(sizes))]
    for r in trows:
        out.append("| %s | %s | %s |" % (r["system"], r["command"],
                                         " | ".join(r[s] for s in sizes)))
    comp = rhead[3:]
    # ratios[(zpipe, other)] = [(size, ratio)]
    ratios = {}
    for r in rrows:
        for c in comp:
            x = num(r[c])
            if x is not None:
                ratios.setdefault((r["zpipe"], c), []).append((num(r["lines"]), x))
    out += ["", "zpipe's time over the other command's (below 1: zpipe takes less "
            "time), from the same runs:", ""]
    names = {
        "zpipe, JSON Lines": "`zpipe run` (JSON Lines, the default, `--input FILE </dev/null`)",
        "zpipe, lines": "`zpipe run --format lines`",
        "zpipe, JSON Lines, closed pipe": "`cat FILE | zpipe run` (JSON Lines)",
        "zpipe, lines, closed pipe": "`cat FILE | zpipe run --format lines`",
    }
    for z, c in (("zpipe, JSON Lines", "Pool.map default"),
                 ("zpipe, lines", "Pool.map default"),
                 ("zpipe, JSON Lines, closed pipe", "Pool.map default"),
                 ("zpipe, JSON Lines", "Pool.map chunksize 1"),
                 ("zpipe, JSON Lines", "raw_pipeline"),
                 ("zpipe, lines", "raw_pipeline"),
                 ("zpipe, JSON Lines", "xargs -P2"),
                 ("zpipe, JSON Lines", "GNU parallel"),
                 ("zpipe, JSON Lines", "Dask")):
        pairs = ratios.get((z, c))
        if not pairs:
            continue
        out.append("- %s / %s: %s: %s." % (
            names[z], c, ", ".join("%s (%s)" % (fmt_ratio(x), sizes_phrase([n]))
                                   for n, x in pairs), verdict(pairs)))
    # JSON Lines against lines, and a closed pipe against /dev/null, zpipe alone.
    times = {r["system"]: {s: num(r[s]) for s in sizes} for r in trows}

    def own(a, b, what):
        pairs = [(num(s), times[a][s] / times[b][s]) for s in sizes
                 if times.get(a, {}).get(s) and times.get(b, {}).get(s)]
        if pairs:
            out.append("- %s: %s." % (what, ", ".join(
                "%s (%s)" % (fmt_ratio(x), sizes_phrase([n])) for n, x in pairs)))

    own("zpipe, JSON Lines", "zpipe, lines",
        "JSON Lines output over `--format lines`, zpipe's time")
    own("zpipe, JSON Lines, closed pipe", "zpipe, JSON Lines",
        "a closed pipe on stdin (`cat FILE |`) over `--input FILE </dev/null`")
    notes = [l[2:] for l in body.splitlines() if l.startswith("- ")]
    if notes:
        out += ["", "Not run or not counted: " + "; ".join(notes)]
    out += ["", "xargs, GNU parallel and Dask run only the smaller inputs: the first "
            "two start a process per line, Dask pays about a millisecond per task; "
            "they are there because they are what one reaches for, not because they "
            "do the same work. Every run's output was checked (one record per input "
            "line, nothing lost, duplicated or extra) before it counted; the fastest "
            "and the slowest run of each cell are in bench/results.md."]
    return out


def cell_of(rows, workload, system):
    """The row of workload and system (named as run.py names it; a | in
    it is escaped in the table), unless it failed."""
    system = system.replace("|", "\\|")
    for r in rows:
        if r["workload"] == workload and r["system"] == system and r["tasks/s"] != "failed":
            return r
    return None


def main_part(body):
    p = provenance(body)
    tabs = tables(body)
    if not tabs:
        return None
    rows = tabs[0][1]
    wls = []
    for r in rows:
        if r["workload"] not in wls:
            wls.append(r["workload"])
    cols = [("raw libzmq", ("raw libzmq (ipc)",)),
            ("zpipe (executors)", ("zpipe echo ipc batched", "zpipe spin ipc", "zpipe echo ipc")),
            ("zpipe (in process)", ("zpipe echo ipc in-process", "zpipe spin ipc in-process")),
            ("Pool.map chunksize 1", ("Pool.map chunksize 1",)),
            ("Pool.map default", ("Pool.map default chunksize",)),
            ("Dask", ("Dask distributed",))]

    def find(wl, names):
        for s in names:
            r = cell_of(rows, wl, s)
            if r:
                return r
        return None

    out = [stamp(p, "The main run, 2 workers unless said (zpipe with `--format lines`; "
                 "zpipe, Pool.map and Dask timed as whole commands, raw libzmq from "
                 "its own spawn of its processes to its sink's exit)"),
           "", "| workload | %s |" % " | ".join(c for c, _ in cols),
           "|---|%s" % ("---|" * len(cols))]
    claims = []

    def add(label, fn):
        cells = []
        for _, names in cols:
            r = find(wl, names)
            cells.append(fn(r) if r else "")
        if any(cells):
            out.append("| %s | %s |" % (label, " | ".join(cells)))
        return cells

    rate = lambda r: fmt_n(num(r["tasks/s"]))
    for wl in wls:
        first = next(r for r in rows if r["workload"] == wl)
        n = num(first["tasks"])
        if wl == "empty" or wl.startswith("empty ("):
            add("%s empty tasks, tasks/s" % fmt_n(n), rate)
            z = find(wl, cols[1][1])
            if z:
                others = []
                for label, names in cols:
                    o = find(wl, names)
                    if o and label not in ("zpipe (executors)", "zpipe (in process)"):
                        others.append("%s× %s's" % (fmt_ratio(num(z["tasks/s"]) /
                                                               num(o["tasks/s"])), label))
                if others:
                    claims.append("%s empty tasks: zpipe (executors) moves %s tasks/s, %s "
                                  "throughput." % (fmt_n(n), rate(z), ", ".join(others)))
        m = re.match(r"^spin (\d+) us$", wl)
        if m:
            us = int(m.group(1))
            dur = "%d ms" % (us // 1000) if us % 1000 == 0 else "%d µs" % us
            cells = add("%s × %s CPU, efficiency" % (fmt_n(n), dur),
                        lambda r: r["efficiency"])
            if cells[1] and cells[4]:
                claims.append("%s of CPU per task: zpipe's parallel efficiency %s, "
                              "Pool.map default's %s%s." % (
                                  dur, cells[1], cells[4],
                                  ", raw libzmq's %s" % cells[0] if cells[0] else ""))
    pay = [w for w in wls if w.startswith("payload ")]
    if pay:
        names = []
        vals = []
        for w in pay:
            size = int(re.search(r"(\d+)", w).group(1))
            names.append("%d B" % size if size < 1024 else "%d KiB" % (size // 1024)
                         if size < 1 << 20 else "%d MiB" % (size >> 20))
            r = cell_of(rows, w, "zpipe echo ipc")
            vals.append(r["ratio to raw"] if r else "")
        out.append("| payload %s, throughput ratio to raw | 1 | %s | | | | |" % (
            " / ".join(names), " / ".join(vals)))
        claims.append("Payloads (%s): zpipe's throughput over raw libzmq's %s." % (
            " / ".join(names), " / ".join(vals)))
    raw, z = cell_of(rows, "latency", "raw libzmq (ipc)"), cell_of(rows, "latency",
                                                                    "zpipe echo ipc")
    if raw or z:
        out.append("| one task at a time, p50 / p99 µs | %s | %s | | | | |" % (
            raw["p50 / p99 µs"] if raw else "", z["p50 / p99 µs"] if z else ""))
    mem = [w for w in wls if w.startswith("memory ")]
    if len(mem) >= 2:
        def rss(system):
            got = [cell_of(rows, w, system) for w in (mem[0], mem[-1])]
            if not all(got):
                return ""
            parse = [dict(re.findall(r"(\w+) (\d+)", g["peak RSS KiB"])) for g in got]
            return ", ".join("%s %s → %s" % (k, fmt_n(parse[0][k]), fmt_n(parse[1][k]))
                             for k in ("sink", "ventilator", "worker")
                             if k in parse[0] and k in parse[1])
        n0, n1 = (num(cell_of(rows, w, "zpipe echo ipc")["tasks"]) for w in
                  (mem[0], mem[-1]))
        out.append("| peak RSS KiB at %s → %s tasks | %s | %s | | | | |" % (
            fmt_n(n0), fmt_n(n1), rss("raw libzmq (ipc)"), rss("zpipe echo ipc")))
        claims.append("Peak RSS, KiB, from %s to %s tasks: zpipe %s." % (
            fmt_n(n0), fmt_n(n1), rss("zpipe echo ipc")))
    for wl, a, b, what in (
            ("stdin, empty tasks", "zpipe echo --input FILE </dev/null", "cat FILE | zpipe echo",
             "Empty tasks, stdin: `zpipe run --input FILE </dev/null` against `cat FILE | "
             "zpipe run`"),
            ("stdin, spin 1000 us", "zpipe spin --input FILE </dev/null", "cat FILE | zpipe spin",
             "1 ms tasks, stdin: `zpipe run --input FILE </dev/null` against `cat FILE | "
             "zpipe run`"),
            ("spin 1000 us, 2 vs 32 workers", "zpipe spin, 2 workers", "zpipe spin, 32 workers",
             "1 ms tasks on 2 CPUs: 2 workers against 32")):
        ra, rb = cell_of(rows, wl, a), cell_of(rows, wl, b)
        if ra and rb:
            claims.append("%s: %s and %s tasks/s (the second's throughput over the "
                          "first's %s)." % (what, rate(ra), rate(rb), fmt_ratio(
                              num(rb["tasks/s"]) / num(ra["tasks/s"]))))
    m = re.search(r"Metrics cost \(([^)]*)\): ([^\n]*)", body)
    if m:
        claims.append("Metrics cost (%s): %s" % (m.group(1), m.group(2)))
    if len(out) == 4:  # no row of the table: no table
        out = out[:1]
    return out + [""] + ["- " + c for c in claims]


def exec_part(body):
    p = provenance(body)
    tabs = tables(body)
    if not tabs:
        return None
    rows = {r["system"]: r for r in tabs[0][1]}
    out = [stamp(p, "One command per task: `sha256sum` once per input line, 2 at a time"),
           "", "| system | command | tasks | tasks/s | ratio to GNU parallel |",
           "|---|---|---|---|---|"]
    for r in tabs[0][1]:
        out.append("| %s | %s | %s | %s | %s |" % (
            r["system"], r["command"], fmt_n(num(r["tasks"])) if num(r["tasks"]) else "",
            fmt_n(num(r["tasks/s"])) if num(r["tasks/s"]) is not None else r["tasks/s"],
            r["ratio to GNU parallel"]))
    z = rows.get("zpipe exec, 2 workers")
    x = next((r for s, r in rows.items() if s.startswith("xargs")), None)
    zs = next((r for s, r in rows.items() if s.startswith("zpipe exec") and "shell" in s),
              None)
    if z and num(z["tasks/s"]):
        s = "zpipe's exec plugin runs %s tasks/s, %s× GNU parallel's" % (
            fmt_n(num(z["tasks/s"])), z["ratio to GNU parallel"])
        if x and num(x["tasks/s"]):
            s += ", %s× `xargs -P2`'s with the shell pipeline parallel runs" % fmt_ratio(
                num(z["tasks/s"]) / num(x["tasks/s"]))
        if zs and x and num(zs["tasks/s"]) and num(x["tasks/s"]):
            s += "; given that same shell pipeline, zpipe runs %s× xargs's" % fmt_ratio(
                num(zs["tasks/s"]) / num(x["tasks/s"]))
        out += ["", "- " + s + "."]
    return out


def python_part(body):
    p = provenance(body)
    tabs = tables(body)
    if not tabs:
        return None
    out = [stamp(p, "Python scripts, timed whole"), ""]
    for r in tabs[0][1]:
        vals = r["_cells"]
        if len(vals) < 7 or vals[3] == "failed" or num(vals[6]) is None:
            out.append("- %s: failed." % vals[0])
            continue
        n = num(vals[1])
        out.append("- %s, %s item%s: %s %s s, %s %s s (%s's time over %s's %s)." % (
            vals[0], fmt_n(n), "" if n == 1 else "s", vals[2], vals[3], vals[4],
            vals[5], vals[2], vals[4], vals[6]))
    return out


def payloads_part(body):
    p = provenance(body)
    tabs = tables(body)
    if not tabs:
        return None
    out = [stamp(p, "Big payloads, whole `zpipe run --format lines` processes "
                    "against bench/raw_pipeline and bench/plain_pipeline (a "
                    "PUSH/PULL pipeline with no copy in user space)"), "",
           "| payload | tasks | raw s | plain s | zpipe s | zpipe / raw | "
           "zpipe / plain |", "|---|---|---|---|---|---|---|"]
    for r in tabs[0][1]:
        v = r["_cells"]
        if len(v) < 7:
            continue
        size = num(v[0])
        name = ("%d MiB" % (size // (1 << 20)) if size and size >= 1 << 20 else
                "%d KiB" % (size // 1024) if size else v[0])
        out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            name, fmt_n(num(v[1])) if num(v[1]) else v[1], v[2], v[3], v[4],
            v[5], v[6]))
    out += ["", "- Ratios are tasks/s, zpipe's over the other's (above 1: "
            "zpipe is faster)."]
    return out


def service_part(body):
    p = provenance(body)
    tabs = tables(body)
    if not tabs:
        return None
    out = [stamp(p, "The service path: a running cluster fed by `zpipe "
                    "submit`, against `zpipe run` on the same 1,000,000 empty "
                    "tasks (JSON Lines)"), "",
           "| system | s | / zpipe run |", "|---|---|---|"]
    copy = take = take1 = None
    for r in tabs[0][1]:
        v = r["_cells"]
        if len(v) >= 3:
            out.append("| %s | %s | %s |" % (v[0], v[1], v[2]))
        if len(v) >= 6 and v[0] == "submit + wait + results" and v[5]:
            copy = (v[5], v[1])
        if len(v) >= 6 and v[0].startswith("submit + wait + results --take") \
                and v[5]:
            take = (v[5], v[1], v[2])
        if len(v) >= 3 and v[0].startswith("submit --results FILE --take"):
            take1 = (v[1], v[2])
    out += ["", "- The last column is time over `zpipe run`'s (1.00: as fast; "
            "issue 19 asks for 1.1 or less)."]
    if copy:
        out.append("- Of the three commands' %s s, `zpipe results` took %s s: "
                   "it copies the job's spool into the file, a copy `zpipe run` "
                   "(which writes its file once) does not make." % (copy[1], copy[0]))
    if take:
        out.append("- `zpipe results --take -o FILE` moves the done job's spool "
                   "file to FILE instead (the sink's file system; the sink then "
                   "no longer holds the records): %s s of %s s, %s of `zpipe "
                   "run`'s time." % take)
    if take1:
        out.append("- `zpipe submit --results FILE --take` waits for the job "
                   "and moves its file the same way: %s s, %s of `zpipe "
                   "run`'s time." % take1)
    return out


def part(sec, key, fn, option):
    """fn's lines for results.md's section key (fn gives None when the
    section has no table it reads), else what to run to measure it."""
    out = fn(sec[key]) if key in sec else None
    return out or ["Not measured yet: `/usr/bin/python3 bench/run.py%s`." % option]


def generate(results_text):
    """The text between the README's markers, from results.md's text."""
    sec = sections(results_text)
    out = [BEGIN,
           "<!-- Generated by bench/readme.py from bench/results.md: do not edit "
           "by hand (ctest readme_speed fails when this differs). -->", "",
           "`bash scripts/bench.sh` runs zpipe side by side with a raw libzmq "
           "pipeline, a `multiprocessing.Pool.map` script, `xargs -P2`, GNU "
           "parallel and Dask distributed on the same inputs, alternating runs, "
           "and writes [bench/results.md](bench/results.md) and the chart below; "
           "`bench/readme.py` rebuilds this section from that file. Every figure "
           "here is from the last run of its part of the benchmark, with the date, "
           "machine and commit it was measured on. On a shared machine absolute "
           "times drift: read the ratios, measured within one run.", "",
           "### Whole commands, as a user times them", ""]
    out += part(sec, WHOLE, whole_part, " --whole")
    out += ["", "### The main run: throughput, efficiency, payloads, memory", ""]
    out += part(sec, MAIN, main_part, "")
    out += ["", "![throughput and efficiency](bench/results.png)", "",
            "### One command per task: GNU parallel and xargs", ""]
    out += part(sec, EXEC, exec_part, " --only parallel")
    out += ["", "### Big payloads", ""]
    out += part(sec, PAYLOADS, payloads_part, " --payloads")
    out += ["", "### The service path", ""]
    out += part(sec, SERVICE, service_part, " --service")
    out += ["", "### Python", ""]
    out += part(sec, PYTHON, python_part, " --python")
    out += ["", "How the benchmark works is in [bench/README.md](bench/README.md); "
            "what made zpipe fast, with the profiles, in "
            "[DEVELOPERS.md](DEVELOPERS.md#hot-paths).", END]
    return "\n".join(out) + "\n"


def splice(readme, generated):
    """README's text with the part between the markers replaced."""
    i, j = readme.find(BEGIN), readme.find(END)
    if i < 0 or j < i:
        raise ValueError("README.md has no %s ... %s markers" % (BEGIN, END))
    return readme[:i] + generated + readme[j + len(END) + 1:]


def update(results=os.path.join(HERE, "results.md"),
           readme=os.path.join(ROOT, "README.md")):
    """Rewrites README's Speed section from results; True if it changed."""
    with open(results, encoding="utf-8") as f:
        gen = generate(f.read())
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    want = splice(text, gen)
    if want == text:
        return False
    with open(readme, "w", encoding="utf-8") as f:
        f.write(want)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when README.md's Speed section is not what "
                    "results.md gives")
    ap.add_argument("--print", action="store_true", help="print the section")
    ap.add_argument("--results", default=os.path.join(HERE, "results.md"))
    ap.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    args = ap.parse_args()
    with open(args.results, encoding="utf-8") as f:
        gen = generate(f.read())
    if args.print:
        sys.stdout.write(gen)
        return 0
    with open(args.readme, encoding="utf-8") as f:
        readme = f.read()
    try:
        want = splice(readme, gen)
    except ValueError as exc:
        print("FAIL: %s" % exc)
        return 1
    if args.check:
        if want == readme:
            print("README.md's Speed section is what bench/results.md gives")
            return 0
        sys.stdout.writelines(difflib.unified_diff(
            readme.splitlines(True), want.splitlines(True), "README.md",
            "README.md as bench/readme.py writes it"))
        print("FAIL: README.md's Speed section differs from what bench/readme.py "
              "builds from bench/results.md: run /usr/bin/python3 bench/readme.py "
              "and commit both files")
        return 1
    if update(args.results, args.readme):
        print("rewrote the Speed section of %s" % args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
