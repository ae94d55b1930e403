// The load generators' summaries: nearest-rank quantiles, rounding, the targets argument, pool.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseTargets, quantile, round } from "../lib/report.mjs";
import { pool } from "../lib/targets.mjs";

test("quantile is nearest-rank over sorted values, null when empty", () => {
  const sorted = Float64Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(quantile(sorted, 0.5), 50);
  assert.equal(quantile(sorted, 0.99), 99);
  assert.equal(quantile(sorted, 1), 100);
  assert.equal(quantile([7], 0.99), 7);
  assert.equal(quantile([], 0.5), null);
});

test("round keeps the asked digits", () => {
  assert.equal(round(1.23456, 2), 1.23);
  assert.equal(round(1234.5, 0), 1235);
});

test("parseTargets wants a non-empty JSON list", () => {
  assert.deepEqual(parseTargets('[{"name": "x"}]'), [{ name: "x" }]);
  assert.throws(() => parseTargets("[]"), /JSON list/);
  assert.throws(() => parseTargets("{}"), /JSON list/);
});

test("pool runs every task, never more than the limit at once, results in order", async () => {
  let running = 0;
  let most = 0;
  const results = await pool(20, 3, async (i) => {
    running += 1;
    most = Math.max(most, running);
    await new Promise((resolve) => setTimeout(resolve, 1));
    running -= 1;
    return i * 2;
  });
  assert.deepEqual(results, Array.from({ length: 20 }, (_, i) => i * 2));
  assert.equal(most, 3);
});
