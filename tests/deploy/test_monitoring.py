"""deploy/grafana/zpipe.json and deploy/prometheus/, checked:

1. promtool (Debian's prometheus) checks the rules and the example scrape
   configuration, and runs the rules' unit tests
   (deploy/prometheus/zpipe-alerts_test.yml); then each alert is broken on
   purpose (removed, its `for:` dropped, made to fire always) and the unit
   tests must fail every time, so they test something.
2. The dashboard's layout (a datasource variable, every panel on it, ids,
   the 24-column grid, no overlaps, one panel per topic the issue names)
   and its types: tests/deploy/grafana_types.py declares the JSON with
   Grafana's published types (npm @grafana/schema, pinned by
   tests/deploy/grafana/package-lock.json, installed under the build
   tree) and the TypeScript compiler checks it; a typo'd copy must fail.
3. A real cluster (sink, ventilator with an intake, 2 workers, all with
   --metrics) runs two jobs with known failures, scraped every second by a
   real Prometheus that loads deploy/prometheus/zpipe-alerts.yml. Every
   metric name and label the dashboard and the rules use must be one the
   daemons export; zpipe_tasks_failed_total must count the failures the
   records show, by cause; every dashboard query must return series from
   Prometheus; every rule must evaluate without error; and the failure
   rate alert must be pending for the cause that is over 5 %, not for the
   one under.

NOT run: Grafana itself (not in Debian); the dashboard's queries run on
Prometheus's API as Grafana would send them ($__rate_interval = 1m,
$job_id = All)."""
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

import grafana_types  # noqa: E402
import zpmetrics  # noqa: E402
import zptest  # noqa: E402
from zptest import check, start  # noqa: E402

import yaml  # noqa: E402  (Debian's python3-yaml)

SKIP = 77
DEPLOY = os.path.join(zptest.SOURCE, "deploy")
DASHBOARD = os.path.join(DEPLOY, "grafana", "zpipe.json")
RULES = os.path.join(DEPLOY, "prometheus", "zpipe-alerts.yml")
RULE_TESTS = os.path.join(DEPLOY, "prometheus", "zpipe-alerts_test.yml")
PROM_CONFIG = os.path.join(DEPLOY, "prometheus", "prometheus.yml")
NODE_SRC = os.path.join(HERE, "grafana")
NODE_DIR = os.path.join(zptest.BUILD, "tests", "deploy-grafana")
# Labels Prometheus adds to every scraped series, and histograms' bucket.
TARGET_LABELS = {"job", "instance", "le"}
# Series Prometheus makes itself.
PROMETHEUS_SERIES = {"up"}


def _run(args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(args, **kw)


def _dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def _panels(d):
    out = []
    for p in d["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def _dashboard_queries(d):
    """(panel title, refId, expr) of every target, and the variables'
    queries."""
    out = []
    for p in _panels(d):
        for t in p.get("targets", []):
            out.append((p["title"], t.get("refId"), t.get("expr")))
    for v in d["templating"]["list"]:
        q = v.get("query")
        if v["type"] == "query":
            out.append(("variable " + v["name"], "-", q["query"]
                        if isinstance(q, dict) else q))
    return out


def _rules():
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    return [r for g in doc["groups"] for r in g["rules"]]


# ---- 1. promtool ----

def test_promtool_checks_rules_and_config():
    r = _run(["promtool", "check", "rules", RULES])
    out = (r.stdout + r.stderr).decode()
    print(out.strip(), flush=True)
    check(r.returncode == 0, out)
    n = len(_rules())
    check("SUCCESS: %d rules found" % n in out, "promtool found other than "
          "%d rules:\n%s" % (n, out))
    r = _run(["promtool", "check", "config", PROM_CONFIG])
    out = (r.stdout + r.stderr).decode()
    print(out.strip(), flush=True)
    check(r.returncode == 0, out)


def _unit_tests(variants):
    """promtool test rules of the shipped tests against each rules text in
    variants, in one promtool run; returns (exit code, output, [passed
    or not, per variant])."""
    d = zptest.tmpdir()
    tests = []
    for i, text in enumerate(variants):
        sub = os.path.join(d, "v%d" % i)
        os.mkdir(sub)
        with open(os.path.join(sub, "zpipe-alerts.yml"), "w") as f:
            f.write(text)
        shutil.copy(RULE_TESTS, sub)
        tests.append(os.path.join(sub, os.path.basename(RULE_TESTS)))
    # One stream: promtool names each file on stdout and says FAILED on
    # stderr.
    r = _run(["promtool", "test", "rules"] + tests, cwd=d,
             capture_output=False, stdout=subprocess.PIPE,
             stderr=subprocess.STDOUT)
    out = r.stdout.decode()
    verdicts = []
    for t in tests:
        m = re.search(r"Unit Testing: +%s\n +(SUCCESS|FAILED)" % re.escape(t),
                      out)
        check(m, "no verdict for %s in:\n%s" % (t, out[-3000:]))
        verdicts.append(m.group(1) == "SUCCESS")
    return r.returncode, out, verdicts


def test_promtool_rule_unit_tests_pass_and_can_fail():
    with open(RULES) as f:
        text = f.read()
    rc, out, ok = _unit_tests([text])
    print(out.strip(), flush=True)
    check(rc == 0 and ok == [True], out)
    doc = yaml.safe_load(text)
    names = [r["alert"] for r in doc["groups"][0]["rules"]]
    with open(RULE_TESTS) as f:
        tested = set(re.findall(r"alertname: (\w+)", f.read()))
    check(set(names) == tested, "alerts without unit tests: %s"
          % sorted(set(names) - tested))
    # Each alert broken three ways; the unit tests must catch every one.
    broken, what = [], []
    for i, name in enumerate(names):
        for how in ("removed", "without for:", "always firing"):
            m = copy.deepcopy(doc)
            rules = m["groups"][0]["rules"]
            if how == "removed":
                del rules[i]
            elif how == "without for:":
                rules[i].pop("for")
            else:
                rules[i]["expr"] = "(%s) or vector(1)" % rules[i]["expr"]
            broken.append(yaml.safe_dump(m, sort_keys=False))
            what.append("%s %s" % (name, how))
    rc, out, ok = _unit_tests(broken)
    passed = [w for w, v in zip(what, ok) if v]
    check(rc != 0 and not passed, "the unit tests pass with: %s" % passed)
    print("%d alerts, %d broken copies, every one caught by the unit tests"
          % (len(names), len(broken)), flush=True)


# ---- 2. the dashboard ----

def test_dashboard_layout_and_datasource():
    d = _dashboard()
    variables = {v["name"]: v for v in d["templating"]["list"]}
    ds = variables.get("datasource")
    check(ds and ds["type"] == "datasource" and ds["query"] == "prometheus",
          "no Prometheus datasource variable: %r" % variables)
    check(isinstance(d.get("schemaVersion"), int) and d.get("uid")
          and d.get("title"), "schemaVersion, uid and title")
    ids, cells = set(), {}
    for p in _panels(d):
        check(p["id"] not in ids, "panel id %r twice" % p["id"])
        ids.add(p["id"])
        g = p["gridPos"]
        check(0 <= g["x"] and g["x"] + g["w"] <= 24 and g["w"] > 0
              and g["h"] > 0, "%s: gridPos %r off the grid" % (p["title"], g))
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                check((x, y) not in cells, "%s overlaps %s" % (
                    p["title"], cells.get((x, y))))
                cells[(x, y)] = p["title"]
        if p["type"] == "row":
            continue
        check(p.get("datasource") == {"type": "prometheus",
                                      "uid": "${datasource}"},
              "%s: datasource %r" % (p["title"], p.get("datasource")))
        refs = [t["refId"] for t in p["targets"]]
        check(p["targets"] and len(set(refs)) == len(refs),
              "%s: targets %r" % (p["title"], refs))
        for t in p["targets"]:
            check(t["datasource"] == p["datasource"] and t["expr"].strip(),
                  "%s %s: datasource or expr" % (p["title"], t["refId"]))
    # What the issue asks the dashboard to show, each with its metric.
    wanted = {
        "throughput": "rate(zpipe_tasks_succeeded_total",
        "queue depth": "zpipe_job_queued_tasks",
        "in flight": "zpipe_job_inflight_tasks",
        "failures by cause": "sum by (cause) (rate(zpipe_tasks_failed_total",
        "worker count": "zpipe_workers",
        "plugin time histogram": "zpipe_plugin_call_seconds_bucket",
    }
    exprs = [q[2] for q in _dashboard_queries(d)]
    for topic, needle in wanted.items():
        check(any(needle in e for e in exprs), "no panel for %s (%s)"
              % (topic, needle))
    heat = [p for p in _panels(d) if p["type"] == "heatmap"]
    check(heat and heat[0]["targets"][0].get("format") == "heatmap",
          "the plugin time histogram is not a heatmap of buckets")
    print("%d panels, %d queries, %d variables" % (
        len([p for p in _panels(d) if p["type"] != "row"]), len(exprs),
        len(variables)), flush=True)


def _npm_install():
    """@grafana/schema and typescript under the build tree, as the lock
    file pins them, once (again when the lock file changes)."""
    npm = shutil.which("npm")
    check(npm and shutil.which("node"), "node and npm are needed "
          "(scripts/test.sh installs them)")
    os.makedirs(NODE_DIR, exist_ok=True)
    with open(os.path.join(NODE_SRC, "package-lock.json"), "rb") as f:
        want = f.read()
    stamp = os.path.join(NODE_DIR, ".installed-lock")
    tsc = os.path.join(NODE_DIR, "node_modules", ".bin", "tsc")
    try:
        with open(stamp, "rb") as f:
            if f.read() == want and os.path.exists(tsc):
                return tsc
    except OSError:
        pass
    for name in ("package.json", "package-lock.json"):
        shutil.copy(os.path.join(NODE_SRC, name), NODE_DIR)
    t0 = time.monotonic()
    r = _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
             cwd=NODE_DIR, timeout=600)
    check(r.returncode == 0, "npm ci in %s failed: %s" % (
        NODE_DIR, (r.stdout + r.stderr).decode(errors="replace")[-2000:]))
    with open(stamp, "wb") as f:
        f.write(want)
    print("npm ci @grafana/schema, typescript into %s (%.1f s)"
          % (NODE_DIR, time.monotonic() - t0), flush=True)
    return tsc


def _tsc(tsc, dashboard, name):
    path = os.path.join(NODE_DIR, name)
    with open(path, "w") as f:
        f.write(grafana_types.typescript(dashboard))
    r = _run([tsc, "--noEmit", "--strict", "--target", "es2022", "--module",
              "esnext", "--moduleResolution", "bundler", "--skipLibCheck",
              path], cwd=NODE_DIR)
    return r.returncode, (r.stdout + r.stderr).decode()


def test_dashboard_has_grafanas_types():
    tsc = _npm_install()
    with open(os.path.join(NODE_DIR, "node_modules", "@grafana", "schema",
                           "package.json")) as f:
        version = json.load(f)["version"]
    t0 = time.monotonic()
    rc, out = _tsc(tsc, _dashboard(), "zpipe_dashboard.ts")
    print("tsc against @grafana/schema %s: rc %d (%.1f s)"
          % (version, rc, time.monotonic() - t0), flush=True)
    check(rc == 0, out[-4000:])
    # The check can fail: a misspelt key, a setting out of its values.
    bad = _dashboard()
    timeseries = [p for p in bad["panels"] if p["type"] == "timeseries"][0]
    timeseries["gridpos"] = timeseries.pop("gridPos")
    timeseries["options"]["legend"]["displayMode"] = "tabel"
    rc, out = _tsc(tsc, bad, "zpipe_dashboard_broken.ts")
    check(rc != 0 and "gridpos" in out and "tabel" in out,
          "tsc passed a broken dashboard:\n" + out[-2000:])


# ---- 3. a real cluster, a real Prometheus ----

METRIC = re.compile(r"\b(zpipe_[a-z0-9_]+|up)\b")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)"
                      r"\s*\(([^)]*)\)")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
TEMPLATE = re.compile(r"\{\{\s*\$?labels\.(\w+)|\{\{\s*(\w+)\s*\}\}")


def _names_and_labels(expr):
    names = set(METRIC.findall(expr))
    labels = set()
    for m in GROUPING.finditer(expr):
        labels |= {x.strip() for x in m.group(1).split(",") if x.strip()}
    labels |= set(MATCHER.findall(expr))
    return names, labels


class Prometheus:
    def __init__(self, targets, rules):
        d = zptest.tmpdir()
        cfg = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                          "evaluation_interval": "1s"},
               "rule_files": [rules],
               "scrape_configs": [
                   {"job_name": job, "static_configs": [{"targets": t}]}
                   for job, t in targets.items()]}
        config = os.path.join(d, "prometheus.yml")
        with open(config, "w") as f:
            yaml.safe_dump(cfg, f)
        port = zptest.free_port()
        self.base = "http://127.0.0.1:%d" % port
        self.log_path = os.path.join(d, "prometheus.log")
        self.log = open(self.log_path, "wb")
        self.proc = start(["prometheus", "--config.file=" + config,
                           "--storage.tsdb.path=" + os.path.join(d, "tsdb"),
                           "--web.listen-address=127.0.0.1:%d" % port],
                          stdout=self.log, stderr=self.log)

    def api(self, path, **params):
        url = "%s/api/v1/%s?%s" % (self.base, path,
                                   urllib.parse.urlencode(params, doseq=True))
        with urllib.request.urlopen(url, timeout=5) as r:
            doc = json.load(r)
        check(doc.get("status") == "success", "%s: %r" % (path, doc))
        return doc["data"]

    def query(self, q):
        return self.api("query", query=q)["result"]

    def wait_up(self, n, timeout=60):
        end = time.monotonic() + timeout
        while True:
            check(self.proc.poll() is None, "prometheus exited: %s"
                  % self.tail())
            try:
                up = self.query("sum(up)")
                if up and float(up[0]["value"][1]) == n:
                    return
            except OSError:
                pass
            if time.monotonic() > end:
                raise AssertionError("targets not all up: %r"
                                     % self.query("up"))
            time.sleep(0.3)

    def tail(self):
        with open(self.log_path, "rb") as f:
            return f.read()[-3000:].decode(errors="replace")


def _records_by_cause(path, jobs):
    causes, n = {}, 0
    with open(path, "rb") as f:
        for line in f:
            r = json.loads(line)
            if r["job"] not in jobs:
                continue
            n += 1
            if r["status"] == "failed":
                causes[r["cause"]] = causes.get(r["cause"], 0) + 1
    return n, causes


def test_names_queries_and_rules_on_a_real_cluster():
    fx = [os.path.join(zptest.FIXTURES, p) for p in ("fx_fail.so",
                                                     "fx_crash.so")]
    s = zpmetrics.Service(workers=2, plugins=fx + ["spin"])
    targets = {"zpipe-sink": [s.urls["sink"]],
               "zpipe-ventilator": [s.urls["ventilator"]],
               "zpipe-worker": [s.urls["w0"], s.urls["w1"]]}
    targets = {k: [u[len("http://"):-len("/metrics")] for u in v]
               for k, v in targets.items()}
    prom = Prometheus(targets, RULES)
    held = None
    try:
        t0 = time.monotonic()
        prom.wait_up(4)
        print("Prometheus scraping all 4 daemons after %.1f s"
              % (time.monotonic() - t0), flush=True)
        t0 = time.monotonic()
        # 1,000 tasks of which 200 fail (plugin_error: 12.5 % of the 1,600
        # committed, well over the alert's 5 %), and 300 of which 3 crash
        # their executor (SIGSEGV, 0.2 %: under it).
        fail = [b"fail-%d" % i if i % 5 == 0 else b"ok-%d" % i
                for i in range(1000)]
        crash = [b"segv" if i % 100 == 50 else b"ok-%d" % i
                 for i in range(300)]
        jobs = [s.submit("fx_fail", fail), s.submit("fx_crash", crash)]
        # A third job stays open to the end, so the ventilator's per-job
        # series (queued, in flight) exist when the queries run, as they
        # do for any running job: 200 tasks of 500 us of CPU.
        sys.path.insert(0, os.path.join(zptest.SOURCE, "examples", "python"))
        import producer
        held = producer.Producer(s.intake, "spin")
        held.send([b"500"] * 200)
        end = time.monotonic() + 120
        while True:
            _, sm = zpmetrics.parse(zpmetrics.fetch(s.urls["sink"]))
            done = sum(zpmetrics.total(sm, "zpipe_tasks_completed_total",
                                       job_id=j) for j in jobs)
            spun = zpmetrics.total(sm, "zpipe_tasks_completed_total",
                                   job_id=held.job_id)
            if (done, spun) == (1300, 200) or time.monotonic() > end:
                break
            time.sleep(0.2)
        check((done, spun) == (1300, 200), "sink committed %r of 1300 and "
              "%r of 200" % (done, spun))
        print("jobs done in %.1f s" % (time.monotonic() - t0), flush=True)
        n, causes = _records_by_cause(s.output, set(jobs))
        check(n == 1300, "%d records" % n)
        check(causes == {"plugin_error": 200, "SIGSEGV": 3},
              "records' causes %r" % causes)
        for cause, want in causes.items():
            got = zpmetrics.value(sm, "zpipe_tasks_failed_total", cause=cause)
            check(got == want, "zpipe_tasks_failed_total{cause=%s} = %r, "
                  "records say %d" % (cause, got, want))
        # Every name and label the dashboard and rules use, exported.
        exported, labels = set(PROMETHEUS_SERIES), set(TARGET_LABELS)
        for url in s.urls.values():
            fam, samples = zpmetrics.parse(zpmetrics.fetch(url))
            exported |= set(fam) | set(samples)
            for series in samples.values():
                for key in series:
                    labels |= {k for k, _ in key}
        used = [("dashboard " + t, e) for t, _, e in
                _dashboard_queries(_dashboard())]
        used += [("rule " + r["alert"], r["expr"]) for r in _rules()]
        missing = []
        names_used, labels_used = set(), set()
        for where, expr in used:
            names, lab = _names_and_labels(expr)
            check(names, "%s uses no metric: %s" % (where, expr))
            names_used |= names
            labels_used |= lab
            missing += ["%s: metric %s" % (where, x) for x in names - exported]
            missing += ["%s: label %s" % (where, x) for x in lab - labels]
        d = _dashboard()
        for p in _panels(d):
            for t in p.get("targets", []):
                for m in TEMPLATE.finditer(t.get("legendFormat", "")):
                    if (m.group(1) or m.group(2)) not in labels:
                        missing.append("%s legend: label %s" % (
                            p["title"], m.group(1) or m.group(2)))
        print("%d metric names and %d labels used; the daemons export %d "
              "names" % (len(names_used), len(labels_used), len(exported)),
              flush=True)
        check(not missing, "used but not exported:\n" + "\n".join(missing))

        # Every dashboard query returns series from Prometheus. Wait for
        # the last counts to be scraped.
        time.sleep(2.5)
        t1 = time.monotonic()
        empty = []
        for title, ref, expr in _dashboard_queries(d):
            q = expr.replace("$__rate_interval", "1m").replace(
                "$job_id", ".*")
            if q.startswith("label_values("):
                m = re.match(r"label_values\((\w+),\s*(\w+)\)", q)
                vals = prom.api("label/%s/values" % m.group(2),
                                **{"match[]": m.group(1)})
                check(set(jobs) <= set(vals), "%s: %r" % (title, vals))
                continue
            res = prom.query(q)
            if not res:
                empty.append("%s %s: %s" % (title, ref, q))
        check(not empty, "queries with no series:\n" + "\n".join(empty))
        print("%d dashboard queries answered by Prometheus (%.1f s)"
              % (len(_dashboard_queries(d)), time.monotonic() - t1),
              flush=True)

        # The rules evaluate without error; the failure-rate alert is
        # pending for plugin_error (12.5 %), not for SIGSEGV (0.2 %).
        t1 = time.monotonic()
        end = t1 + 60
        while True:
            groups = prom.api("rules")["groups"]
            rules = [r for g in groups for r in g["rules"]]
            rate = [r for r in rules if r["name"] == "ZpipeHighFailureRate"]
            alerts = rate[0]["alerts"] if rate else []
            if any(a["labels"].get("cause") == "plugin_error"
                   for a in alerts) or time.monotonic() > end:
                break
            time.sleep(0.5)
        check(len(rules) == len(_rules()), "Prometheus loaded %d rules"
              % len(rules))
        bad = [(r["name"], r.get("health"), r.get("lastError"))
               for r in rules if r.get("health") != "ok"]
        check(not bad, "rules failing to evaluate: %r" % bad)
        causes = {a["labels"].get("cause"): a["state"] for a in alerts}
        print("after %.1f s, ZpipeHighFailureRate: %r; other alerts: %r" % (
            time.monotonic() - t1, causes, sorted((r["name"], len(r["alerts"])) for r in rules
                           if r["alerts"] and r is not rate[0])), flush=True)
        check(causes.get("plugin_error") in ("pending", "firing"),
              "no failure-rate alert for plugin_error after %.1f s: %r; "
              "Prometheus has failed %r, succeeded %r" % (
                  time.monotonic() - t1, causes,
                  prom.query("zpipe_tasks_failed_total > 0"),
                  prom.query("zpipe_tasks_succeeded_total")))
        check("SIGSEGV" not in causes, "an alert for SIGSEGV at 1 %")
        others = [r["name"] for r in rules if r["alerts"]
                  and r["name"] != "ZpipeHighFailureRate"]
        check(not others, "alerts on a healthy cluster: %r" % others)
    except Exception:
        sys.stderr.write(prom.tail())
        raise
    finally:
        if held:
            held.close()
        zptest.stop(prom.proc, timeout=10)
        prom.log.close()


if __name__ == "__main__":
    missing = [t for t in ("promtool", "prometheus") if not shutil.which(t)]
    if missing:
        print("SKIP test_monitoring: NOT RUN: %s missing (scripts/setup.sh "
              "installs Debian's prometheus)" % " and ".join(missing),
              flush=True)
        sys.exit(SKIP)
    zptest.main([test_promtool_checks_rules_and_config,
                 test_promtool_rule_unit_tests_pass_and_can_fail,
                 test_dashboard_layout_and_datasource,
                 test_dashboard_has_grafanas_types,
                 test_names_queries_and_rules_on_a_real_cluster])
