import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/stores/memory.js';

const opts = (now, windowMs = 1000) => ({ now, windowMs });

test('CHN-3, CHN-4: a never-used channel has an epoch that the first publish keeps', async () => {
  const s = new MemoryStore();
  const before = await s.state('c', 0);
  assert.deepEqual({ first: before.first, head: before.head }, { first: null, head: 0 });
  const a = await s.append('c', { data: 1 }, opts(0));
  assert.equal(a.epoch, before.epoch);
  assert.equal(a.offset, 1);
});

test('PUB-4: concurrent appends get dense, distinct offsets', async () => {
  const s = new MemoryStore();
  const got = await Promise.all(Array.from({ length: 50 }, (_, i) => s.append('c', { data: i }, opts(0))));
  assert.deepEqual(got.map((g) => g.offset).sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i + 1));
});

test('IDM-6 to IDM-8: a given id is a key for the window, a server id never is', async () => {
  const s = new MemoryStore();
  const first = await s.append('c', { data: 1, id: 'k' }, opts(0));
  assert.deepEqual(await s.append('c', { data: 2, id: 'k' }, opts(10)), { ...first, duplicate: true });
  assert.equal((await s.append('other', { data: 2, id: 'k' }, opts(10))).duplicate, false); // IDM-3
  assert.equal((await s.append('c', { data: 3, id: 'k' }, opts(1000))).duplicate, false); // window passed
  const server = await s.append('c', { data: 4 }, opts(1000));
  assert.equal((await s.append('c', { data: 5, id: server.id }, opts(1000))).duplicate, false);
});

test('RET-6, RET-8, IDM-5: retention applies at once, is final, and keeps keys', async () => {
  const s = new MemoryStore();
  for (let i = 1; i <= 5; i++) await s.append('c', { data: i, id: `k${i}` }, opts(0));
  await s.setRetention('c', { max_messages: 2 }, 0);
  assert.equal((await s.state('c', 0)).first, 4);
  await s.setRetention('c', { max_messages: null }, 0);
  const read = await s.read('c', 1, 10, 0);
  assert.deepEqual(read.messages.map((m) => m.offset), [4, 5]);
  assert.equal((await s.append('c', { data: 0, id: 'k1' }, opts(1))).duplicate, true);
});

test('RET-3: max_age_s removes by ts', async () => {
  const s = new MemoryStore();
  await s.append('c', { data: 1 }, opts(0));
  await s.append('c', { data: 2 }, opts(5000));
  assert.deepEqual(await s.setRetention('c', { max_age_s: 3 }, 6000), { max_messages: null, max_age_s: 3 });
  assert.equal((await s.state('c', 6000)).first, 2);
  assert.equal((await s.state('c', 9000)).first, null);
});

const session = (id, gen, hash, expires = 1000) => ({
  session_id: id, client_id: 'c', grants: [], subscribe: [], expires_at: expires, token_hash: hash, generation: gen,
});

test('SES-1 to SES-4, SES-16: upsert keeps the generation of a live session and rotates the token', async () => {
  const s = new MemoryStore();
  assert.equal((await s.upsertSession(session('s', 'g1', 'h1'), 0)).created, true);
  const again = await s.upsertSession(session('s', 'g2', 'h2'), 1);
  assert.equal(again.created, false);
  assert.equal(again.session.generation, 'g1');
  assert.equal(await s.sessionByTokenHash('h1', 2), null);
  assert.equal((await s.sessionByTokenHash('h2', 2)).session_id, 's');
  await s.ack('g1', 'c', 'E', 3);
  assert.equal(await s.deleteSession('s', 3), true);
  assert.equal(await s.deleteSession('s', 3), false);
  const fresh = await s.upsertSession(session('s', 'g3', 'h3'), 4);
  assert.equal(fresh.created, true);
  assert.equal(await s.cursor(fresh.session.generation, 'c'), null);
});

test('SES-10, SES-17: an expired session is gone', async () => {
  const s = new MemoryStore();
  await s.upsertSession(session('s', 'g1', 'h1', 100), 0);
  assert.equal(await s.sessionByTokenHash('h1', 100), null);
  assert.equal((await s.upsertSession(session('s', 'g2', 'h2', 500), 100)).created, true);
});

test('ACK-4, ACK-7: cursors move up only, within one epoch', async () => {
  const s = new MemoryStore();
  assert.deepEqual(await s.ack('g', 'c', 'E', 5), { epoch: 'E', offset: 5 });
  assert.deepEqual(await s.ack('g', 'c', 'E', 3), { epoch: 'E', offset: 5 });
  assert.deepEqual(await s.ack('g', 'c', 'F', 1), { epoch: 'F', offset: 1 });
});
