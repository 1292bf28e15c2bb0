"""ctest kubernetes_manifests: deploy/kubernetes checked offline, as CI can
(no cluster; Debian has no kubectl or kustomize).

- the validator (deploy/kubernetes/validate, npm ci of the pinned
  kubernetes-models and @kubernetes-models/keda under the build tree) passes
  on the kustomization and extras/, and its self-test catches each of its
  broken copies;
- where kubectl or kustomize is installed, the real kustomize renders the
  same objects as the validator (else said: NOT RUN);
- every metric the autoscalers read is one the real ventilator exports;
- the keys Job's script, run with the build's zpipe against a fake
  Kubernetes API over HTTPS, makes the Secret once (a keypair per component,
  as zpipe keygen writes them), leaves it alone when run again or when
  another run made it first, refuses a Secret of that name that lacks keys,
  and makes no request its Role does not allow.

Needs node and npm (scripts/test.sh installs them) and openssl."""
import json
import os
import shutil

import k8sharness as h
import zpmetrics
import zptest
from zptest import check

D = zptest.tmpdir()


def test_validator_passes():
    r = h.node("validate.mjs", h.K8S_SRC)
    print("    " + (r.stdout + r.stderr).strip().replace("\n", "\n    "))
    check(r.returncode == 0, "the validator fails on deploy/kubernetes")


def test_validator_catches_broken_manifests():
    r = h.node("selftest.mjs", h.K8S_SRC)
    lines = r.stdout.splitlines()
    bad = [l for l in lines if l.startswith("FAIL")]
    check(r.returncode == 0 and not bad, "selftest:\n%s%s" % (r.stdout, r.stderr))
    cases = [l for l in lines if l.startswith("ok ")]
    check(len(cases) >= 30, "only %d self-test cases ran" % len(cases))
    print("    %s" % lines[-1])


def _kustomize():
    """The real kustomize's rendering, or None when there is none here."""
    for cmd in (["kubectl", "kustomize"], ["kustomize", "build"]):
        if not shutil.which(cmd[0]):
            continue
        r = zptest.run(cmd + [h.K8S_SRC], capture_output=True, text=True, timeout=120)
        if r.returncode == 0:
            return " ".join(cmd), r.stdout
        check(False, "%s %s failed: %s" % (" ".join(cmd), h.K8S_SRC, r.stderr[-2000:]))
    return None


def test_real_kustomize_agrees():
    got = _kustomize()
    if not got:
        raise zptest.Skip("neither kubectl nor kustomize is installed (Debian packages neither); "
                          "the validator's own rendering stands alone")
    tool, text = got
    # The YAML documents as JSON, through the validator's own parser (the
    # renderer under test parses with it too; the comparison is of objects).
    out = os.path.join(D, "kustomized.yaml")
    with open(out, "w") as f:
        f.write(text)
    conv = os.path.join(D, "tojson.mjs")
    with open(conv, "w") as f:
        f.write('import { loadYamlFile } from %s;\n'
                'console.log(JSON.stringify(loadYamlFile(process.argv[2]).map((e) => e.obj)));\n'
                % json.dumps(os.path.join(h.VALIDATE_SRC, "lib", "kustomize.mjs")))
    r = zptest.run([h.tools()["node"], conv, out], capture_output=True, text=True, timeout=60,
                   env=dict(os.environ, ZPIPE_K8S_NODE_MODULES=h.install_validator()))
    check(r.returncode == 0, "parse kustomize output: %s" % r.stderr)
    theirs = {"%s/%s" % (o["kind"], o["metadata"]["name"]): o for o in json.loads(r.stdout)}
    ours = {"%s/%s" % (o["kind"], o["metadata"]["name"]): o
            for o in h.rendered(D)["objects"]}
    check(sorted(theirs) == sorted(ours), "objects: %s renders %s, the validator %s"
          % (tool, sorted(theirs), sorted(ours)))
    for k in ours:
        check(theirs[k] == ours[k], "%s differs:\n%s\n%s" % (k, json.dumps(theirs[k], sort_keys=True)[:3000],
                                                            json.dumps(ours[k], sort_keys=True)[:3000]))
    print("    %s renders the same %d objects as the validator" % (tool, len(ours)))


def test_autoscaler_metrics_exist():
    want = h.rendered(D)["metrics"]
    check(want, "the autoscalers read no zpipe metric")
    svc = zpmetrics.Service(workers=1)
    url = zpmetrics.metrics_url(_vent_log(svc))
    families, _ = zpmetrics.parse(zpmetrics.fetch(url))
    missing = [m for m in want if m not in families]
    check(not missing, "the ventilator does not export %s (it exports %s)"
          % (missing, sorted(f for f in families if f.startswith("zpipe_job"))))
    print("    the ventilator exports %s (%s)" % (", ".join(want), ", ".join(families[m] for m in want)))


def _vent_log(svc):
    return next(p for p in svc.logs if os.path.basename(p) == "ventilator.log")


def _run_script(api, script, env=None):
    path = os.path.join(D, "make-keys.py")
    with open(path, "w") as f:
        f.write(script)
    e = dict(os.environ, ZPIPE_KEYS_SA_DIR=api.sa_dir,
             PATH=os.path.dirname(zptest.binary("zpipe")) + ":" + os.environ["PATH"], **api.env())
    e.update(env or {})
    return zptest.run(["/usr/bin/python3", path], capture_output=True, text=True, timeout=60, env=e)


def test_keys_job_script():
    objects = h.rendered(D)["objects"]
    script, job = h.keys_script(objects)
    spec = job["spec"]["template"]["spec"]
    c = spec["containers"][0]
    jenv = {e["name"]: e["value"] for e in c["env"]}
    name, comps = jenv["ZPIPE_KEYS_SECRET"], jenv["ZPIPE_KEYS_COMPONENTS"].split()
    sa = spec["serviceAccountName"]
    env = {"ZPIPE_KEYS_SECRET": name, "ZPIPE_KEYS_COMPONENTS": " ".join(comps)}
    api = h.FakeApi(D, namespace=job["metadata"]["namespace"])
    try:
        # first run: makes the Secret
        r = _run_script(api, script, env)
        check(r.returncode == 0, "first run: exit %d: %s%s" % (r.returncode, r.stdout, r.stderr))
        check("made secret" in r.stdout, "first run said: %s" % r.stdout)
        check(name in api.secrets, "no secret %s made: %r" % (name, api.requests))
        data = h.check_keys_secret(api.secrets[name], comps)
        # again: reads it, leaves it
        before = json.dumps(api.secrets, sort_keys=True)
        n = len(api.requests)
        r = _run_script(api, script, env)
        check(r.returncode == 0 and "left as it is" in r.stdout, "second run: %s%s" % (r.stdout, r.stderr))
        check([m for m, *_ in api.requests[n:]] == ["GET"], "second run made %r" % api.requests[n:])
        check(json.dumps(api.secrets, sort_keys=True) == before, "second run changed the keys")
        # a race: another run made it between our GET and POST
        api.fail = {"GET": 404}
        r = _run_script(api, script, env)
        check(r.returncode == 0 and "made meanwhile" in r.stdout, "race: %s%s" % (r.stdout, r.stderr))
        check(json.dumps(api.secrets, sort_keys=True) == before, "the race changed the keys")
        # someone else's Secret of that name, lacking keys: not touched
        api.fail = {}
        del api.secrets[name]["data"]["client.key_secret"]
        r = _run_script(api, script, env)
        check(r.returncode == 1 and "lacks client.key_secret" in r.stdout, "incomplete: %s%s" % (r.stdout, r.stderr))
        # the API refuses
        api.secrets.clear()
        api.fail = {"GET": 403}
        r = _run_script(api, script, env)
        check(r.returncode == 1 and "HTTP 403" in r.stdout, "forbidden: %s%s" % (r.stdout, r.stderr))
        # every request the script made, its Role allows
        for method, path, sname, _ in api.requests:
            verb = {"GET": "get", "POST": "create"}[method]
            check(h.role_allows(objects, sa, verb, sname),
                  "the Role of %s does not allow %s %s" % (sa, verb, path))
        print("    made %s (%s) once over HTTPS with the service account's token; left it on a "
              "second run and on a lost race; refused an incomplete one and a 403; %d requests, "
              "each allowed by its Role" % (name, ", ".join(sorted(data)), len(api.requests)))
    finally:
        api.close()


if __name__ == "__main__":
    zptest.main([test_validator_passes, test_validator_catches_broken_manifests,
                 test_real_kustomize_agrees, test_autoscaler_metrics_exist, test_keys_job_script])
