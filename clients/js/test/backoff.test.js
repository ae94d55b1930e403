import { test } from "node:test";
import assert from "node:assert/strict";
import { Backoff } from "../src/backoff.js";

test("without jitter the delays double up to maxDelay", () => {
  const b = new Backoff({ minDelay: 100, maxDelay: 1000, jitter: 0 });
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => b.next()), [100, 200, 400, 800, 1000, 1000]);
});

test("reset starts again from minDelay", () => {
  const b = new Backoff({ minDelay: 100, maxDelay: 1000, jitter: 0 });
  b.next();
  b.next();
  b.reset();
  assert.equal(b.next(), 100);
});

test("jitter stays within [1 - jitter, 1 + jitter] of the base", () => {
  assert.equal(new Backoff({ minDelay: 100, jitter: 0.5, random: () => 0 }).next(), 50);
  assert.equal(new Backoff({ minDelay: 100, jitter: 0.5, random: () => 0.999999 }).next(), 150);
  const b = new Backoff({ minDelay: 100, maxDelay: 400, jitter: 0.25 });
  for (let i = 0; i < 200; i++) {
    const base = Math.min(400, 100 * 2 ** Math.min(i, 10));
    const d = b.next();
    assert.ok(d >= base * 0.75 - 1 && d <= base * 1.25 + 1, `${d} vs ${base}`);
  }
});

test("defaults are the model's: 250 ms, 10 s, 0.5", () => {
  const b = new Backoff();
  assert.deepEqual([b.minDelay, b.maxDelay, b.jitter], [250, 10_000, 0.5]);
});

test("many attempts do not overflow", () => {
  const b = new Backoff({ minDelay: 1, maxDelay: 50, jitter: 0 });
  for (let i = 0; i < 2000; i++) b.next();
  assert.equal(b.next(), 50);
});

test("bad options are refused", () => {
  assert.throws(() => new Backoff({ minDelay: 10, maxDelay: 5 }), RangeError);
  assert.throws(() => new Backoff({ jitter: 2 }), RangeError);
  assert.throws(() => new Backoff({ minDelay: -1 }), RangeError);
});
