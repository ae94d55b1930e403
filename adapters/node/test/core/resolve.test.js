import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkAck, resolveHistoryStart, resolveStart } from '../../src/core/resolve.js';

const st = { epoch: 'E', first: 5, head: 9 };
const code = (fn) => {
  try {
    fn();
  } catch (e) {
    return e.code;
  }
  return 'ok';
};

test('SUB-7, SUB-8: beginning and latest never fail', () => {
  assert.deepEqual(resolveStart({ from: 'beginning' }, st, null), { from: 5 });
  assert.deepEqual(resolveStart({ from: 'latest' }, st, null), { from: 10 });
  assert.deepEqual(resolveStart({ from: 'beginning' }, { epoch: 'E', first: null, head: 0 }, null), { from: 1 });
  assert.deepEqual(resolveStart({ from: 'beginning' }, { epoch: 'E', first: null, head: 4 }, null), { from: 5 });
});

test('SUB-4 before SUB-5 before SUB-6', () => {
  assert.equal(code(() => resolveStart({ from: 99, epoch: 'old' }, st, null)), 'epoch_mismatch');
  assert.equal(code(() => resolveStart({ from: 11, epoch: 'E' }, st, null)), 'offset_out_of_range');
  assert.deepEqual(resolveStart({ from: 10, epoch: 'E' }, st, null), { from: 10 });
  assert.equal(code(() => resolveStart({ from: 4, epoch: 'E' }, st, null)), 'history_truncated');
  assert.deepEqual(resolveStart({ from: 5, epoch: 'E' }, st, null), { from: 5 });
});

test('SUB-11: allow_truncation starts at first and says so', () => {
  assert.deepEqual(resolveStart({ from: 2, epoch: 'E', allow_truncation: true }, st, null), {
    from: 5,
    truncated: { requested: 2, first_available: 5 },
  });
});

test('SUB-9, ACK-7: an omitted from uses a current cursor, else latest', () => {
  assert.deepEqual(resolveStart({}, st, { epoch: 'E', offset: 6 }), { from: 7 });
  assert.deepEqual(resolveStart({}, st, { epoch: 'old', offset: 6 }), { from: 10 });
  assert.deepEqual(resolveStart({}, st, null), { from: 10 });
  assert.equal(code(() => resolveStart({}, st, { epoch: 'E', offset: 2 })), 'history_truncated');
  assert.deepEqual(resolveStart({ allow_truncation: true }, st, { epoch: 'E', offset: 2 }).from, 5);
});

test('HIS-11: epoch, upper bound, lower bound', () => {
  assert.equal(resolveHistoryStart({}, st), 5);
  assert.equal(resolveHistoryStart({ from: 'beginning' }, st), 5);
  assert.equal(code(() => resolveHistoryStart({ from: 1, epoch: 'x' }, st)), 'epoch_mismatch');
  assert.equal(code(() => resolveHistoryStart({ from: 11, epoch: 'E' }, st)), 'offset_out_of_range');
  assert.equal(resolveHistoryStart({ from: 10, epoch: 'E' }, st), 10);
  assert.equal(code(() => resolveHistoryStart({ from: 4, epoch: 'E' }, st)), 'history_truncated');
});

test('ACK-10: epoch before range', () => {
  assert.equal(code(() => checkAck({ offset: 99, epoch: 'x' }, st)), 'epoch_mismatch');
  assert.equal(code(() => checkAck({ offset: 10, epoch: 'E' }, st)), 'offset_out_of_range');
  assert.equal(code(() => checkAck({ offset: 9, epoch: 'E' }, st)), 'ok');
  assert.equal(code(() => checkAck({ offset: 1, epoch: 'E' }, st)), 'ok'); // below first is fine
});
