// One place that runs every check on a kustomization and its extras/.
import fs from "node:fs";
import path from "node:path";
import { render, loadYamlFile, applyTransforms } from "./kustomize.mjs";
import { checkSchema } from "./schema.mjs";
import { crossCheck } from "./checks.mjs";

const label = (e) => `${e.file ? path.basename(e.file) + (e.doc ? "#" + e.doc : "") + " " : ""}${e.obj?.kind}/${e.obj?.metadata?.name}`;

// Schema and cross-checks of a set of {obj, file, doc}: [string].
export function validateObjects(entries, { images = [] } = {}) {
  const problems = [];
  for (const e of entries) {
    if (!e.obj || typeof e.obj !== "object" || Array.isArray(e.obj)) {
      problems.push(`${e.file}#${e.doc}: not an object`);
      continue;
    }
    // A value that fits neither side of an int-or-string also fails the
    // oneOf around them: that line says nothing more.
    const own = checkSchema(e.obj);
    for (const p of own) {
      const at = p.replace(/ must .*/, "");
      if (/must match exactly one schema in "oneOf"/.test(p) && own.some((q) => q !== p && q.startsWith(at + " ")))
        continue;
      problems.push(`${label(e)}: ${p}`);
    }
  }
  const byObj = new Map(entries.map((e) => [e.obj, e]));
  const { problems: cross, metrics } = crossCheck(entries.map((e) => e.obj), { images });
  for (const c of cross) {
    const e = entries.find((x) => x.obj && `${x.obj.kind}/${x.obj.metadata?.name}` === c.object);
    problems.push(`${e ? label(e) : c.object}: ${c.message}`);
  }
  void byObj;
  return { problems, metrics };
}

const imagesOf = (k) => (k.images || []).map((r) => (r.digest ? `${r.newName || r.name}@${r.digest}` : `${r.newName || r.name}${r.newTag ? ":" + r.newTag : ""}`));

// The kustomization in dir, then each extras/*.yaml applied beside it.
export function validateDir(dir) {
  const r = render(dir);
  const problems = [...r.errors];
  const images = r.kustomization ? imagesOf(r.kustomization) : [];
  const base = validateObjects(r.objects, { images });
  problems.push(...base.problems);
  const metrics = new Set(base.metrics);
  const extras = {};
  const exdir = path.join(dir, "extras");
  const files = fs.existsSync(exdir) ? fs.readdirSync(exdir).filter((f) => /\.ya?ml$/.test(f)).sort() : [];
  for (const f of files) {
    let entries;
    try {
      entries = loadYamlFile(path.join(exdir, f));
    } catch (e) {
      problems.push(e.message);
      continue;
    }
    if (r.kustomization) applyTransforms(entries, r.kustomization);
    // beside the base, less the ScaledObject an HPA replaces
    const isHpa = entries.some((e) => e.obj?.kind === "HorizontalPodAutoscaler");
    const beside = r.objects.filter((e) => !(isHpa && e.obj?.kind === "ScaledObject"));
    const res = validateObjects([...beside, ...entries], { images });
    const own = new Set(entries.map(label));
    const baseProblems = new Set(base.problems);
    for (const p of res.problems) if (!baseProblems.has(p)) problems.push(`extras/${f}: ${p}`);
    for (const m of res.metrics) metrics.add(m);
    extras[f] = entries.map((e) => e.obj);
    void own;
  }
  return {
    kustomization: r.kustomization,
    objects: r.objects.map((e) => e.obj),
    files: [...new Set(r.objects.map((e) => path.relative(dir, e.file)))],
    extras,
    metrics: [...metrics].sort(),
    problems,
  };
}
