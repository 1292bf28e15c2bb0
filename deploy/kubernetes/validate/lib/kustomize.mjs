// What `kubectl apply -k DIR` would send, for the kustomization.yaml fields
// this repository uses (resources: files, namespace, images); any other
// field is refused rather than ignored. The real kustomize, where installed,
// is compared with this in tests/kubernetes/test_manifests.py.
import fs from "node:fs";
import path from "node:path";
import { require } from "./modules.mjs";

const YAML = require("yaml");

// Kinds that have no namespace (the ones these manifests could contain).
export const CLUSTER_SCOPED = new Set([
  "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
  "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass",
  "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
]);

const KNOWN_FIELDS = new Set(["apiVersion", "kind", "namespace", "resources", "images"]);

// Parses YAML as Kubernetes does (YAML 1.1: 0400 is octal, yes/no are
// booleans). Returns [{obj, file, doc}] or throws with the file and line.
export function loadYamlFile(file) {
  const text = fs.readFileSync(file, "utf8");
  const docs = YAML.parseAllDocuments(text, { version: "1.1", uniqueKeys: true, prettyErrors: true });
  const out = [];
  docs.forEach((d, i) => {
    const problems = [...d.errors, ...d.warnings];
    if (problems.length) throw new Error(`${file}: document ${i + 1}: ${problems[0].message.split("\n")[0]}`);
    const obj = d.toJS({ maxAliasCount: 0 });
    if (obj === null || obj === undefined) return; // an empty document
    out.push({ obj, file, doc: i + 1 });
  });
  return out;
}

function splitImage(ref) {
  // name[:tag][@digest]; the tag's colon is after the last slash
  let digest = null;
  const at = ref.indexOf("@");
  if (at >= 0) {
    digest = ref.slice(at + 1);
    ref = ref.slice(0, at);
  }
  const slash = ref.lastIndexOf("/");
  const colon = ref.lastIndexOf(":");
  if (colon > slash) return { name: ref.slice(0, colon), tag: ref.slice(colon + 1), digest };
  return { name: ref, tag: null, digest };
}

export function podSpecsOf(obj) {
  // [ [jsonPath, podSpec] ] for every pod template an object carries
  const spec = obj.spec || {};
  switch (obj.kind) {
    case "Pod":
      return [["spec", spec]];
    case "Deployment":
    case "StatefulSet":
    case "DaemonSet":
    case "ReplicaSet":
    case "Job":
      return spec.template && spec.template.spec ? [["spec.template.spec", spec.template.spec]] : [];
    case "CronJob":
      return spec.jobTemplate?.spec?.template?.spec ? [["spec.jobTemplate.spec.template.spec", spec.jobTemplate.spec.template.spec]] : [];
    default:
      return [];
  }
}

function setImages(obj, images) {
  for (const [, ps] of podSpecsOf(obj))
    for (const c of [...(ps.initContainers || []), ...(ps.containers || [])]) {
      if (typeof c.image !== "string") continue;
      const cur = splitImage(c.image);
      const rule = images.find((r) => r.name === cur.name);
      if (!rule) continue;
      const name = rule.newName || cur.name;
      if (rule.digest) c.image = `${name}@${rule.digest}`;
      else {
        const tag = rule.newTag || cur.tag;
        c.image = name + (tag ? `:${tag}` : "") + (!rule.newTag && cur.digest ? `@${cur.digest}` : "");
      }
    }
}

// Renders DIR/kustomization.yaml. Returns {kustomization, objects, errors}:
// objects as [{obj, file, doc}] with the transformations applied.
export function render(dir) {
  const errors = [];
  const kfile = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
    .map((n) => path.join(dir, n))
    .find((f) => fs.existsSync(f));
  if (!kfile) return { objects: [], errors: [`${dir}: no kustomization.yaml`] };
  let k;
  try {
    const docs = loadYamlFile(kfile);
    if (docs.length !== 1) throw new Error(`${kfile}: expected one document, found ${docs.length}`);
    k = docs[0].obj;
  } catch (e) {
    return { objects: [], errors: [e.message] };
  }
  if (k.apiVersion !== "kustomize.config.k8s.io/v1beta1" || k.kind !== "Kustomization")
    errors.push(`${kfile}: apiVersion/kind must be kustomize.config.k8s.io/v1beta1 Kustomization`);
  for (const f of Object.keys(k))
    if (!KNOWN_FIELDS.has(f)) errors.push(`${kfile}: field "${f}" is not understood by this validator (extend lib/kustomize.mjs)`);
  const objects = [];
  const seen = new Set();
  for (const r of k.resources || []) {
    const f = path.join(dir, r);
    if (seen.has(r)) errors.push(`${kfile}: resource ${r} listed twice`);
    seen.add(r);
    if (!fs.existsSync(f) || !fs.statSync(f).isFile()) {
      errors.push(`${kfile}: resource ${r}: no such file`);
      continue;
    }
    try {
      objects.push(...loadYamlFile(f));
    } catch (e) {
      errors.push(e.message);
    }
  }
  applyTransforms(objects, k);
  return { kustomization: k, kfile, objects, errors };
}

// namespace and images, as kustomize applies them (also to extras/ files,
// which users apply with -n NAMESPACE).
export function applyTransforms(objects, k) {
  for (const { obj } of objects) {
    if (!obj || typeof obj !== "object") continue;
    if (k.namespace) {
      obj.metadata = obj.metadata || {};
      if (obj.kind === "Namespace") obj.metadata.name = k.namespace;
      else if (!CLUSTER_SCOPED.has(obj.kind)) obj.metadata.namespace = k.namespace;
      if (obj.kind === "RoleBinding" || obj.kind === "ClusterRoleBinding")
        for (const s of obj.subjects || []) if (s.kind === "ServiceAccount") s.namespace = k.namespace;
    }
    if (k.images) setImages(obj, k.images);
  }
}
