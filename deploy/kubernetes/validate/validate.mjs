#!/usr/bin/env node
// Checks deploy/kubernetes offline, as CI does (no cluster, no kubectl):
//
//   cd deploy/kubernetes/validate && npm ci && node validate.mjs ..
//
// Every file the kustomization lists exists and parses (YAML 1.1, as
// kubectl reads it); every object, and every one in extras/, validates
// against the Kubernetes or KEDA schema (kubernetes-models,
// @kubernetes-models/keda, pinned by package-lock.json) with no unknown
// field; and the cross-checks of lib/checks.mjs hold. Exit 0 when all pass,
// 1 with one line per problem otherwise. --json FILE also writes the
// rendered objects, the extras and the metric names the autoscalers use.
import fs from "node:fs";
import path from "node:path";
import { validateDir } from "./lib/validate.mjs";
import { versions } from "./lib/schema.mjs";

const args = process.argv.slice(2);
let json = null;
const rest = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--json") json = args[++i];
  else if (args[i] === "-h" || args[i] === "--help") {
    console.log("usage: node validate.mjs [--json FILE] [DIR (default: ..)]");
    process.exit(0);
  } else rest.push(args[i]);
}
const here = path.dirname(new URL(import.meta.url).pathname);
const dir = path.resolve(rest[0] || path.join(here, ".."));
const r = validateDir(dir);
const v = versions();
if (json) fs.writeFileSync(json, JSON.stringify({ versions: v, ...r }, null, 1));
const kinds = {};
for (const o of r.objects) kinds[o.kind] = (kinds[o.kind] || 0) + 1;
const n = Object.values(r.extras).reduce((a, x) => a + x.length, 0);
if (r.problems.length) {
  for (const p of r.problems) console.log(`FAIL ${p}`);
  console.log(`k8s-validate: ${r.problems.length} problem(s) in ${dir}`);
  process.exit(1);
}
console.log(`k8s-validate: ok: ${r.objects.length} objects from ${r.files.length} files (${Object.entries(kinds).map(([k, c]) => `${c} ${k}`).join(", ")}) and ${n} in extras/ (${Object.keys(r.extras).join(", ")}); schemas of kubernetes-models ${v["kubernetes-models"]}, @kubernetes-models/keda ${v["@kubernetes-models/keda"]}; autoscalers read ${r.metrics.join(", ")}`);
