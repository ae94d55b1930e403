import { test } from "node:test";
import assert from "node:assert/strict";
import { AckBatcher } from "../src/acks.js";
import { ReplayError } from "../src/errors.js";

/** A batcher with a manual clock and a send whose replies the test releases. */
function rig(options = {}) {
  const timers = [];
  const sent = [];
  const errors = [];
  const batcher = new AckBatcher(options, {
    send: (position) => new Promise((resolve, reject) => sent.push({ position, resolve, reject })),
    onError: (e) => errors.push(e.code),
    setTimer: (fn, ms) => {
      const t = { fn, ms, cleared: false };
      timers.push(t);
      return t;
    },
    clearTimer: (t) => { t.cleared = true; },
  });
  const fire = () => timers.filter((t) => !t.cleared && !t.fired).forEach((t) => { t.fired = true; t.fn(); });
  return { batcher, timers, sent, errors, fire };
}
const tick = () => new Promise((r) => setImmediate(r));

test("acks wait for maxDelayMs and send only the last finished offset", async () => {
  const { batcher, timers, sent, fire } = rig({ maxDelayMs: 200 });
  batcher.finished({ epoch: "e", offset: 1 });
  batcher.finished({ epoch: "e", offset: 2 });
  batcher.finished({ epoch: "e", offset: 3 });
  assert.equal(sent.length, 0);
  assert.equal(timers.filter((t) => !t.cleared).length, 1);
  assert.equal(timers[0].ms, 200);
  fire();
  assert.deepEqual(sent.map((s) => s.position), [{ epoch: "e", offset: 3 }]);
});

test("maxMessages sends at once", () => {
  const { batcher, sent } = rig({ maxMessages: 10 });
  batcher.finished({ epoch: "e", offset: 4 }, 4);
  assert.equal(sent.length, 0);
  batcher.finished({ epoch: "e", offset: 10 }, 6);
  assert.deepEqual(sent.map((s) => s.position.offset), [10]);
});

test("at most one ack in flight; the newest follows when it returns", async () => {
  const { batcher, sent, fire } = rig({ maxMessages: 1 });
  batcher.finished({ epoch: "e", offset: 1 });
  batcher.finished({ epoch: "e", offset: 2 });
  batcher.finished({ epoch: "e", offset: 3 });
  assert.equal(sent.length, 1);
  sent[0].resolve({ ok: true });
  await tick();
  fire();
  assert.deepEqual(sent.map((s) => s.position.offset), [1, 3]);
  assert.deepEqual(batcher.acked, { epoch: "e", offset: 1 });
});

test("a failed ack is kept and sent by the next flush", async () => {
  const { batcher, sent, errors } = rig({ maxMessages: 1 });
  batcher.finished({ epoch: "e", offset: 5 });
  sent[0].reject(new ReplayError("disconnected"));
  await tick();
  assert.deepEqual(errors, ["disconnected"]);
  assert.deepEqual(batcher.pending, { epoch: "e", offset: 5 });
  batcher.flush();
  assert.deepEqual(sent.map((s) => s.position.offset), [5, 5]);
});

test("an ack of an epoch that is gone is dropped", async () => {
  const { batcher, sent } = rig({ maxMessages: 1 });
  batcher.finished({ epoch: "old", offset: 5 });
  sent[0].reject(new ReplayError("epoch_mismatch"));
  await tick();
  assert.equal(batcher.pending, null);
});

test("stop sends nothing more", () => {
  const { batcher, sent, fire } = rig({});
  batcher.finished({ epoch: "e", offset: 1 });
  batcher.stop();
  fire();
  batcher.finished({ epoch: "e", offset: 2 }, 1000);
  assert.equal(sent.length, 0);
});
