import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allows, patternMatches } from '../../src/core/grants.js';

test('ACC-1 to ACC-3: exact, prefix and *', () => {
  assert.equal(patternMatches('orders:17', 'orders:17'), true);
  assert.equal(patternMatches('orders:17', 'orders:170'), false);
  assert.equal(patternMatches('orders:17', 'Orders:17'), false); // CHN-2
  assert.equal(patternMatches('room:*', 'room:'), true);
  assert.equal(patternMatches('room:*', 'room:a'), true);
  assert.equal(patternMatches('room:*', 'room'), false);
  assert.equal(patternMatches('*', 'anything'), true);
  assert.equal(patternMatches('a.b*', 'aXb'), false); // never a regular expression
});

test('ACC-4: one grant must both match and list the action', () => {
  const grants = [{ channels: 'a', actions: ['subscribe'] }, { channels: 'b*', actions: ['publish'] }];
  assert.equal(allows(grants, 'a', 'subscribe'), true);
  assert.equal(allows(grants, 'a', 'publish'), false);
  assert.equal(allows(grants, 'b1', 'publish'), true);
  assert.equal(allows(grants, 'b1', 'subscribe'), false);
  assert.equal(allows([], 'a', 'subscribe'), false);
});
