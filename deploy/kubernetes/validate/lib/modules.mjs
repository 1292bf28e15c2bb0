// Where `npm ci` put the pinned packages: beside package.json by default, or
// ZPIPE_K8S_NODE_MODULES (the tests install them under the build tree, so
// the source tree holds no node_modules). Every package is loaded through
// modulesDir, never by a bare import, which would look only beside the
// source file.
import path from "node:path";
import { createRequire } from "node:module";

const here = path.dirname(new URL(import.meta.url).pathname);
export const modulesDir =
  process.env.ZPIPE_K8S_NODE_MODULES || path.join(here, "..", "node_modules");
export const require = createRequire(path.join(modulesDir, "..", "noop.js"));
