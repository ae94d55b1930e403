import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NO_RETENTION, firstOf, mergeRetention, nextFloor } from '../../src/core/retention.js';

const none = () => undefined;

test('RET-9: no settings keep everything', () => {
  assert.equal(nextFloor({ floor: 1, head: 10 }, NO_RETENTION, 0, none), 1);
});

test('RET-12: max_messages keeps the M newest', () => {
  const s = { max_messages: 3, max_age_s: null };
  assert.equal(nextFloor({ floor: 1, head: 10 }, s, 0, none), 8);
  assert.equal(nextFloor({ floor: 1, head: 2 }, s, 0, none), 1);
});

test('RET-8: the floor never goes down when a limit is raised', () => {
  assert.equal(nextFloor({ floor: 8, head: 10 }, { max_messages: 100, max_age_s: null }, 0, none), 8);
});

test('RET-3, RET-7: expired messages are a prefix that is gone', () => {
  const ts = { 1: 0, 2: 500, 3: 5000 };
  const s = { max_messages: null, max_age_s: 2 };
  assert.equal(nextFloor({ floor: 1, head: 3 }, s, 3000, (o) => ts[o]), 3);
  assert.equal(nextFloor({ floor: 1, head: 3 }, s, 8000, (o) => ts[o]), 4);
  assert.equal(firstOf({ floor: 4, head: 3 }), null);
  assert.equal(firstOf({ floor: 3, head: 3 }), 3);
});

test('RET-1: an update keeps what it omits; null removes', () => {
  const cur = { max_messages: 5, max_age_s: 60 };
  assert.deepEqual(mergeRetention(cur, { max_age_s: null }), { max_messages: 5, max_age_s: null });
  assert.deepEqual(mergeRetention(NO_RETENTION, { max_messages: 2 }), { max_messages: 2, max_age_s: null });
});
