import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batches, contiguousFrom } from '../../src/core/batching.js';

const m = (offset) => ({ offset, id: String(offset), ts: 0, data: null });

test('contiguousFrom keeps only what continues the stream (SIG-1)', () => {
  assert.deepEqual(contiguousFrom([m(3), m(4), m(6)], 3).map((x) => x.offset), [3, 4]);
  assert.deepEqual(contiguousFrom([m(4), m(5)], 3), []);
  assert.deepEqual(contiguousFrom([], 1), []);
});

test('DLV-2: batches hold at most max_batch, in order', () => {
  const out = batches([1, 2, 3, 4, 5].map(m), 2);
  assert.deepEqual(out.map((b) => b.map((x) => x.offset)), [[1, 2], [3, 4], [5]]);
});
