import { test } from "node:test";
import assert from "node:assert/strict";
import { judgeBatch } from "../src/guard.js";

const batch = (epoch, ...offsets) => ({ epoch, messages: offsets.map((offset) => ({ offset })) });

test("consecutive offsets after the last pass", () => {
  const v = judgeBatch({ epoch: "e", last: 4 }, batch("e", 5, 6, 7));
  assert.deepEqual(v.fresh.map((m) => m.offset), [5, 6, 7]);
  assert.equal(v.duplicates, 0);
  assert.equal(v.gap, null);
});

test("offsets at or below the last are dropped and counted", () => {
  const v = judgeBatch({ epoch: "e", last: 6 }, batch("e", 5, 6, 7, 8));
  assert.deepEqual(v.fresh.map((m) => m.offset), [7, 8]);
  assert.equal(v.duplicates, 2);
});

test("a batch entirely seen is all duplicates", () => {
  const v = judgeBatch({ epoch: "e", last: 9 }, batch("e", 3, 4));
  assert.deepEqual(v.fresh, []);
  assert.equal(v.duplicates, 2);
});

test("an offset above last + 1 is a gap and drops the whole batch", () => {
  const v = judgeBatch({ epoch: "e", last: 4 }, batch("e", 5, 7, 8));
  assert.deepEqual(v.fresh, []);
  assert.deepEqual(v.gap, { expected: 6, received: 7 });
  assert.deepEqual(judgeBatch({ epoch: "e", last: 0 }, batch("e", 2)).gap, { expected: 1, received: 2 });
});

test("out of order within a batch is caught", () => {
  const v = judgeBatch({ epoch: "e", last: 0 }, batch("e", 1, 3, 2));
  assert.deepEqual(v.gap, { expected: 2, received: 3 });
});

test("a batch of another epoch is foreign and dropped", () => {
  const v = judgeBatch({ epoch: "e", last: 0 }, batch("f", 1));
  assert.equal(v.foreign, true);
  assert.deepEqual(v.fresh, []);
});

test("whatever the order of arrival, each offset passes once and in order", () => {
  // Random re-deliveries of overlapping windows: the guard's output is 1..N exactly.
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const state = { epoch: "e", last: 0 };
  const out = [];
  while (state.last < 200) {
    const start = Math.max(1, state.last + 1 - Math.floor(random() * 10));
    const length = 1 + Math.floor(random() * 8);
    const v = judgeBatch(state, batch("e", ...Array.from({ length }, (_, i) => start + i)));
    assert.equal(v.gap, null);
    for (const m of v.fresh) out.push(m.offset);
    if (v.fresh.length) state.last = v.fresh.at(-1).offset;
  }
  assert.deepEqual(out.slice(0, 200), Array.from({ length: 200 }, (_, i) => i + 1));
});
