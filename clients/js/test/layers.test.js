// The layers index.js names hold: no module imports one above it, no cycles, and nothing in
// src/ imports a Node.js module (the library must load in browsers as it is).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";

const LAYERS = [
  ["errors.js", "emitter.js"],
  ["backoff.js", "guard.js", "policy.js", "positions.js", "acks.js"],
  ["history.js", "subscription.js"],
  ["client.js"],
  ["index.js"],
];
const layerOf = new Map(LAYERS.flatMap((names, i) => names.map((n) => [n, i])));
const src = new URL("../src/", import.meta.url);
const imports = (file) =>
  [...readFileSync(new URL(file, src), "utf8").matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/gm)].map((m) => m[1]);

test("every module of src/ has a layer", () => {
  assert.deepEqual(readdirSync(src).sort(), [...layerOf.keys()].sort());
});

test("modules import only from lower layers (index.js re-exports all)", () => {
  for (const [file, layer] of layerOf) {
    for (const spec of imports(file).filter((s) => s.startsWith("./"))) {
      const target = spec.slice(2);
      assert.ok(layerOf.has(target), `${file} imports unknown ${spec}`);
      if (file !== "index.js") assert.ok(layerOf.get(target) < layer, `${file} imports ${spec} from its own layer or above`);
    }
  }
});

test("the only package imported is socket.io-client, and no Node.js module", () => {
  const builtins = new Set(builtinModules);
  for (const file of layerOf.keys()) {
    for (const spec of imports(file).filter((s) => !s.startsWith("./"))) {
      assert.ok(!spec.startsWith("node:") && !builtins.has(spec), `${file} imports ${spec}`);
      assert.equal(spec, "socket.io-client", `${file} imports ${spec}`);
    }
  }
});
