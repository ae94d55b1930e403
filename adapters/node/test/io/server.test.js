// The adapter mounted as a user would mount it: a plain http server, socket.io on it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { Server } from 'socket.io';
import { io as connect } from 'socket.io-client';
import { attachReplay } from '../../src/index.js';

const KEY = 'test-key';
let server, io, replay, base;

before(async () => {
  server = createServer((req, res) => replay.handler(req, res));
  io = new Server(server);
  replay = await attachReplay(io, { apiKey: KEY });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${server.address().port}`;
});

after(async () => {
  io.close();
  await replay.close();
});

const api = (method, path, { body, key = KEY, type = 'application/json' } = {}) =>
  fetch(base + path, {
    method,
    headers: { ...(key ? { Authorization: `Bearer ${key}` } : {}), ...(type ? { 'Content-Type': type } : {}) },
    body,
  }).then(async (r) => ({ status: r.status, body: r.status === 204 ? null : await r.json() }));

test('API-15: the scheme in any case and more spaces carry the key; the key stays exact', async () => {
  const remove = (authorization) =>
    fetch(`${base}/replay/v1/sessions/nobody`, { method: 'DELETE', headers: { Authorization: authorization } }).then((r) => r.status);
  for (const form of [`bearer ${KEY}`, `BEARER ${KEY}`, `Bearer  ${KEY}`]) assert.equal(await remove(form), 404, form);
  for (const form of [`Bearer ${KEY.toUpperCase()}x`, `Bearer${KEY}`, `Basic ${KEY}`, 'Bearer  ']) assert.equal(await remove(form), 401, form);
});

test('API-9: route, then key, then Content-Type, then body', async () => {
  assert.equal((await api('PUT', '/replay/v1/sessions', { key: null })).status, 404); // API-10
  assert.equal((await api('POST', '/replay/v1/info', { key: 'wrong' })).status, 404);
  assert.equal((await api('GET', '/replay/v1/info', { key: 'wrong' })).status, 200); // API-12
  assert.equal((await api('POST', '/replay/v1/sessions', { key: 'wrong', type: 'text/plain', body: '{' })).status, 401);
  assert.equal((await api('POST', '/replay/v1/sessions', { type: 'text/plain', body: '{}' })).status, 400);
  const big = JSON.stringify({ data: 'x'.repeat(500000) });
  assert.equal((await api('POST', '/replay/v1/channels/c/messages', { body: big })).status, 413);
  const dup = await api('POST', '/replay/v1/channels/c/messages', { body: '{"data":1,"data":2}' });
  assert.deepEqual([dup.status, dup.body.error.code], [400, 'bad_request']); // API-13
  const tooLarge = JSON.stringify({ data: 'x'.repeat(70000) });
  assert.equal((await api('POST', '/replay/v1/channels/c/messages', { body: tooLarge })).status, 413); // PUB-9
  assert.equal((await api('POST', '/replay/v1/channels/bad%20name/messages', { body: '{"data":1}' })).status, 400);
  assert.equal((await api('DELETE', '/replay/v1/sessions/nobody')).status, 404);
});

test('a client subscribes from the beginning and gets history, then live, in order', async () => {
  const channel = 'room:e2e';
  for (let n = 1; n <= 3; n++) {
    const r = await api('POST', `/replay/v1/channels/${encodeURIComponent(channel)}/messages`, { body: JSON.stringify({ data: { n } }) });
    assert.equal(r.status, 201);
  }
  const reg = await api('POST', '/replay/v1/sessions', {
    body: JSON.stringify({ client_id: 'u', grants: [{ channels: 'room:*', actions: ['subscribe', 'publish'] }] }),
  });
  assert.equal(reg.status, 201);
  const client = connect(base, { auth: { token: reg.body.token }, transports: ['websocket'] });
  try {
    await once(client, 'connect');
    const offsets = [];
    client.on('replay:messages', (e) => offsets.push(...e.messages.map((m) => m.offset)));
    const reply = await client.emitWithAck('replay:subscribe', { channel, from: 'beginning' });
    assert.deepEqual([reply.ok, reply.from, reply.head], [true, 1, 3]);
    const pub = await client.emitWithAck('replay:publish', { channel, data: { n: 4 } });
    assert.equal(pub.offset, 4);
    const again = await client.emitWithAck('replay:subscribe', { channel });
    assert.equal(again.error.code, 'already_subscribed');
    while (offsets.length < 4) await once(client, 'replay:messages');
    assert.deepEqual(offsets, [1, 2, 3, 4]);
    const dup = await client.emitWithAck('replay:unsubscribe', { channel, extra: 1 });
    assert.equal(dup.error.code, 'bad_request');
  } finally {
    client.close();
  }
});

test('CON-2: a wrong token is refused with unauthorized', async () => {
  const client = connect(base, { auth: { token: 'nope' }, transports: ['websocket'], reconnection: false });
  const [err] = await once(client, 'connect_error');
  assert.equal(err.message, 'unauthorized');
  client.close();
});
