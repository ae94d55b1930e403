import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from '../../src/io/packets.js';

// Engine.IO has already taken off its own type (the 4 of 42): these are socket.io packets.
test('EVENTs of / are scanned, with or without an ack id', () => {
  assert.deepEqual(inspect('2["replay:subscribe",{"channel":"a"}]'), { badNumbers: [] });
  assert.deepEqual(inspect('2/,["x",{"data":1e400}]'), { badNumbers: [[1, 'data']] });
  assert.ok(inspect('217["replay:subscribe",{"channel":"a","channel":"b"}]').error);
});

test('binary events are marked, other packets and namespaces are not ours', () => {
  assert.deepEqual(inspect('51-["replay:publish",{"data":{"_placeholder":true,"num":0}}]'), { binary: true });
  assert.equal(inspect('0{"token":"t"}'), null);
  assert.equal(inspect('3[{}]'), null);
  assert.equal(inspect('2/admin,["x",{}]'), null);
});
