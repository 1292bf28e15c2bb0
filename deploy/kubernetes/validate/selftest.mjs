#!/usr/bin/env node
// The validator's own test: the real manifests pass, and each of a list of
// broken copies (one mistake each, the kind a manifest really gets) fails
// with the problem named. Exit 0 when every case behaves, 1 otherwise.
//
//   node selftest.mjs [DIR (default: ..)]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { render } from "./lib/kustomize.mjs";
import { validateObjects, validateDir } from "./lib/validate.mjs";

const here = path.dirname(new URL(import.meta.url).pathname);
const dir = path.resolve(process.argv[2] || path.join(here, ".."));
const base = render(dir);
const images = (base.kustomization.images || []).map((r) => `${r.newName || r.name}:${r.newTag}`);
let failed = 0;
let passed = 0;

const find = (objs, kind, name) => objs.find((e) => e.obj.kind === kind && (!name || e.obj.metadata.name === name)).obj;
const podSpec = (o) => (o.kind === "Pod" ? o.spec : o.spec.template.spec);
const container = (o, name) => podSpec(o).containers.find((c) => !name || c.name === name);
const env = (c, name) => c.env.find((e) => e.name === name);

function check(what, expect, mutate) {
  const entries = structuredClone(base.objects);
  mutate(entries);
  const { problems } = validateObjects(entries, { images });
  const hit = problems.filter((p) => expect.test(p));
  if (hit.length) {
    passed++;
    console.log(`ok   ${what}: ${hit[0]}`);
  } else {
    failed++;
    console.log(`FAIL ${what}: expected a problem matching ${expect}, got ${problems.length ? problems.join(" | ") : "none"}`);
  }
}

// The manifests as they are: no problem at all.
{
  const r = validateDir(dir);
  if (r.problems.length) {
    failed++;
    console.log(`FAIL the manifests in ${dir} have problems:\n  ${r.problems.join("\n  ")}`);
  } else {
    passed++;
    console.log(`ok   the manifests in ${dir}: no problem (${r.objects.length} objects, extras ${Object.keys(r.extras).join(", ")})`);
  }
}

// Schemas
check("a container port as a string", /containerPort must be integer/, (e) => {
  container(find(e, "StatefulSet", "zpipe-sink")).ports[0].containerPort = "5558";
});
check("a memory limit that is no quantity", /limits\.memory must match format "quantity"/, (e) => {
  container(find(e, "Deployment")).resources.limits.memory = "1GB";
});
check("a Service type that does not exist", /spec\.type must be equal to one of the allowed values/, (e) => {
  find(e, "Service", "zpipe-sink").spec.type = "LoadBalancr";
});
check("a ScaledObject without triggers", /spec must have required property '?triggers/, (e) => {
  delete find(e, "ScaledObject").spec.triggers;
});
check("an unknown kind", /no schema for kind StatefulSets/, (e) => {
  find(e, "StatefulSet", "zpipe-sink").kind = "StatefulSets";
});
// Unknown fields
check("a misspelt probe", /unknown field spec\.template\.spec\.containers\[0\]\.livenesProbe/, (e) => {
  const c = container(find(e, "Deployment"));
  c.livenesProbe = c.livenessProbe;
  delete c.livenessProbe;
});
check("a misspelt KEDA field", /unknown field spec\.maxReplicas\b/, (e) => {
  find(e, "ScaledObject").spec.maxReplicas = 5;
});
check("a field one level too high", /unknown field spec\.template\.spec\.volumes\[\d\]\.secretName/, (e) => {
  const v = podSpec(find(e, "StatefulSet", "zpipe-sink")).volumes[0];
  v.secretName = v.secret.secretName;
});
// Cross-checks
check("a Service selecting no pod", /selector .* matches no pod/, (e) => {
  find(e, "Service", "zpipe-sink").spec.selector["app.kubernetes.io/component"] = "sinc";
});
check("a Service targeting a port the pod lacks", /targetPort events is not a port/, (e) => {
  const c = container(find(e, "StatefulSet", "zpipe-ventilator"));
  c.ports = c.ports.filter((p) => p.name !== "events");
});
check("a StatefulSet selector that misses its pods", /spec\.selector does not match/, (e) => {
  find(e, "StatefulSet", "zpipe-sink").spec.selector.matchLabels["app.kubernetes.io/component"] = "ventilator";
});
check("a probe on a port the container lacks", /readinessProbe port metric is not a port/, (e) => {
  container(find(e, "Deployment")).readinessProbe.httpGet.port = "metric";
});
check("a worker without a liveness probe", /no livenessProbe/, (e) => {
  delete container(find(e, "Deployment")).livenessProbe;
});
check("a container without a memory limit", /no resources\.limits\.memory/, (e) => {
  delete container(find(e, "StatefulSet", "zpipe-ventilator")).resources.limits.memory;
});
check("a volume naming a Secret no one makes", /no Secret zpipe-curv /, (e) => {
  podSpec(find(e, "Deployment")).volumes[0].secret.secretName = "zpipe-curv";
});
check("a Secret item the keys Job does not make", /has no key worker\.key_secrett/, (e) => {
  podSpec(find(e, "Deployment")).volumes[0].secret.items[0].key = "worker.key_secrett";
});
check("a key path outside what the volume holds", /\/etc\/zpipe\/curve\/sink\.pub is not in the volume/, (e) => {
  env(container(find(e, "Deployment")), "ZPIPE_SINK_KEY").value = "/etc/zpipe/curve/sink.pub";
});
check("a secret key no init container copies", /no init container puts sink\.key_secret/, (e) => {
  podSpec(find(e, "StatefulSet", "zpipe-sink")).initContainers[0].command[3] = "/run/zpipe/secret/worker.key_secret";
});
check("a mount naming no volume", /volumeMount tmpp names no volume/, (e) => {
  container(find(e, "Deployment")).volumeMounts.find((m) => m.name === "tmp").name = "tmpp";
});
check("a worker pointed at a Service that does not exist", /no Service zpipe-ventilater/, (e) => {
  env(container(find(e, "Deployment")), "ZPIPE_VENTILATOR").value = "tcp://zpipe-ventilater:5557";
});
check("a worker pointed at the wrong port", /Service zpipe-sink has no port 5557/, (e) => {
  env(container(find(e, "Deployment")), "ZPIPE_SINK").value = "tcp://zpipe-sink:5557";
});
check("a NetworkPolicy that cuts the workers off", /do not let it reach StatefulSet\/zpipe-ventilator on dispatch/, (e) => {
  find(e, "NetworkPolicy", "zpipe-ventilator").spec.ingress[0].ports[0].port = "intake";
});
check("a NetworkPolicy that lets the ventilator in on the wrong port", /do not let it reach StatefulSet\/zpipe-sink on control/, (e) => {
  find(e, "NetworkPolicy", "zpipe-sink").spec.ingress[1].ports[0].port = "results";
});
check("a Service port no NetworkPolicy opens", /no NetworkPolicy lets anyone reach StatefulSet\/zpipe-sink on publish/, (e) => {
  const pol = find(e, "NetworkPolicy", "zpipe-sink");
  pol.spec.ingress[2].ports = pol.spec.ingress[2].ports.filter((p) => p.port !== "publish");
});
check("a NetworkPolicy port no selected pod has", /ingress port dispatchh is a port of none/, (e) => {
  find(e, "NetworkPolicy", "zpipe-ventilator").spec.ingress[0].ports[0].port = "dispatchh";
});
check("a Role that cannot create the Secret", /may not create secrets/, (e) => {
  find(e, "Role").rules[1].verbs = ["get"];
});
check("a Role that reads another Secret", /may not get secret zpipe-curve/, (e) => {
  find(e, "Role").rules[0].resourceNames = ["zpipe-keys"];
});
check("a ScaledObject aimed at no Deployment", /scaleTargetRef: no Deployment zpipe-workers/, (e) => {
  find(e, "ScaledObject").spec.scaleTargetRef.name = "zpipe-workers";
});
check("an autoscaled Deployment with replicas set", /spec\.replicas is set, but ScaledObject\/zpipe-worker scales it/, (e) => {
  find(e, "Deployment").spec.replicas = 2;
});
check("a privileged escalation under the restricted standard", /allowPrivilegeEscalation must be false/, (e) => {
  container(find(e, "Job")).securityContext.allowPrivilegeEscalation = true;
});
check("a pod running as root under the restricted standard", /runAsNonRoot is not true/, (e) => {
  delete podSpec(find(e, "Deployment")).securityContext.runAsNonRoot;
});
check("an image the kustomization does not set", /image zpipe:lastest is not one/, (e) => {
  container(find(e, "Deployment")).image = "zpipe:lastest";
});
check("a StatefulSet governed by no Service", /serviceName zpipe-snk: no such Service/, (e) => {
  find(e, "StatefulSet", "zpipe-sink").spec.serviceName = "zpipe-snk";
});
check("a port name longer than 15 characters", /port name "metrics-endpoint" is not an IANA service name/, (e) => {
  const c = container(find(e, "Deployment"));
  c.ports[0].name = "metrics-endpoint";
  c.livenessProbe.httpGet.port = c.readinessProbe.httpGet.port = "metrics-endpoint";
});
check("a container name with capitals", /container name "Worker" is not a DNS-1123 label/, (e) => {
  container(find(e, "Deployment")).name = "Worker";
});
check("a Service name with a dot", /metadata\.name "zpipe\.sink" is not a DNS-1123 label/, (e) => {
  find(e, "Service", "zpipe-sink").metadata.name = "zpipe.sink";
});
check("a label value with a space", /label app\.kubernetes\.io\/component: value "the sink" is not a valid label value/, (e) => {
  find(e, "StatefulSet", "zpipe-sink").metadata.labels["app.kubernetes.io/component"] = "the sink";
});
check("an object defined twice", /defined twice/, (e) => {
  e.push(structuredClone(e.find((x) => x.obj.kind === "Service")));
});

// Files: a missing resource, YAML that does not parse, a duplicate key, a
// kustomization field the renderer does not know.
function checkDir(what, expect, files) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "zpipe-k8s-selftest-"));
  try {
    for (const [n, text] of Object.entries(files)) fs.writeFileSync(path.join(d, n), text);
    const r = validateDir(d);
    const hit = r.problems.filter((p) => expect.test(p));
    if (hit.length) {
      passed++;
      console.log(`ok   ${what}: ${hit[0]}`);
    } else {
      failed++;
      console.log(`FAIL ${what}: expected ${expect}, got ${r.problems.join(" | ") || "none"}`);
    }
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
}
const kust = (res, more = "") => `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n${res.map((r) => `  - ${r}\n`).join("")}${more}`;
const ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n";
checkDir("a listed file that does not exist", /resource gone\.yaml: no such file/, { "kustomization.yaml": kust(["ns.yaml", "gone.yaml"]), "ns.yaml": ns });
checkDir("a file that is not YAML", /bad\.yaml: document 1:/, { "kustomization.yaml": kust(["bad.yaml"]), "bad.yaml": "kind: [Namespace\n" });
checkDir("a key given twice", /dup\.yaml: document 1: .*[Uu]nique/, { "kustomization.yaml": kust(["dup.yaml"]), "dup.yaml": ns + "  name: y\n" });
checkDir("a kustomization field the validator does not render", /field "patches" is not understood/, { "kustomization.yaml": kust(["ns.yaml"], "patches: []\n"), "ns.yaml": ns });

console.log(`k8s-selftest: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
